"""The node implementations the golden cases use, recording every execution."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any


class Behaviours:
    """A registry of small deterministic nodes plus an execution counter per node id."""

    def __init__(self) -> None:
        self.executions: Counter[str] = Counter()
        self.sleeps_ms: list[float] = []
        self.registry = {
            "const": self.const,
            "echo": self.echo,
            "add": self.add,
            "collect": self.collect,
            "flaky": self.flaky,
            "slow": self.slow,
            "set_context": self.set_context,
            "read_context": self.read_context,
            "nothing": self.nothing,
            "double": self.double,
            "increment": self.increment,
        }

    async def fake_sleep(self, seconds: float) -> None:
        self.sleeps_ms.append(round(seconds * 1000))

    def _count(self, ctx: Any) -> None:
        self.executions[ctx.node_id] += 1

    def const(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        return {"output": ctx.params.get("value"), "action": ctx.params.get("action")}

    def echo(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        return {"output": ctx.input}

    def add(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        return {"output": ctx.input + ctx.params["n"]}

    def collect(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        return {"output": {k: v for k, v in ctx.input.items() if v is not None and repr(v) != "UNDEFINED"}}

    def flaky(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        if self.executions[ctx.node_id] <= ctx.params.get("failTimes", 0):
            raise RuntimeError(ctx.params.get("message", "flaky failure"))
        return {"output": ctx.params.get("value")}

    async def slow(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        await asyncio.sleep(ctx.params["ms"] / 1000)
        return {"output": "slow done"}

    async def set_context(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        await ctx.context.set(ctx.params["key"], ctx.params["value"])
        return {"output": "set"}

    async def read_context(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        return {"output": await ctx.context.get(ctx.params["key"])}

    def nothing(self, ctx: Any) -> None:
        self._count(ctx)
        return None

    def double(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        return {"output": ctx.input * 2}

    def increment(self, ctx: Any) -> dict[str, Any]:
        self._count(ctx)
        count = ctx.context.get_sync("count", 0) + 1
        ctx.context.set_sync("count", count)
        return {"output": count}
