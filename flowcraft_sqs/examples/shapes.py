"""Two small workflows that show the distributed mechanics: a diamond and a long node.

`diamond`: fan-out and an `all` join.

    split --> double --.
          \\            +--> combine   (waits for both, writes `diamond_result`)
           --> square -'

`long`: one node that sleeps for `seconds` (initial context, default 6). It runs longer than
the demo's 4-second visibility timeout, so its message's lease is extended while it runs
(watch `leases_extended` in the worker's metrics) and nobody else receives it meanwhile.

    prepare --> long_task --> report   (writes `long_result`)
"""

from __future__ import annotations

import os
import time
from typing import Any

DEFAULT_SLEEP_S = 6.0
# Per attempt, in ms (TS units): well above the sleep, so only a hung node times out.
LONG_TIMEOUT_MS = 120_000


def split(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.context.get_sync("value", 1)}


def double(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.input * 2}


def square(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.input**2}


def combine(ctx: Any) -> dict[str, Any]:
    total = ctx.input["doubled"] + ctx.input["squared"]
    result = {"value": ctx.context.get_sync("value", 1), "doubled": ctx.input["doubled"],
              "squared": ctx.input["squared"], "sum": total}
    ctx.context.set_sync("diamond_result", result)
    return {"output": total}


def prepare(ctx: Any) -> dict[str, Any]:
    return {"output": float(ctx.context.get_sync("seconds", DEFAULT_SLEEP_S))}


def long_task(ctx: Any) -> dict[str, Any]:
    started = time.monotonic()
    time.sleep(ctx.input)
    return {"output": {"slept_s": round(time.monotonic() - started, 2), "pid": os.getpid()}}


def report(ctx: Any) -> dict[str, Any]:
    ctx.context.set_sync("long_result", ctx.input)
    return {"output": ctx.input}


registry: dict[str, Any] = {
    "split": split, "double": double, "square": square, "combine": combine,
    "prepare": prepare, "long-task": long_task, "report": report,
}

diamond: dict[str, Any] = {
    "id": "diamond",
    "nodes": [
        {"id": "split", "uses": "split"},
        {"id": "double", "uses": "double"},
        {"id": "square", "uses": "square"},
        {"id": "combine", "uses": "combine", "inputs": {"doubled": "double", "squared": "square"}},
    ],
    "edges": [
        {"source": "split", "target": "double"},
        {"source": "split", "target": "square"},
        {"source": "double", "target": "combine"},
        {"source": "square", "target": "combine"},
    ],
}

long: dict[str, Any] = {
    "id": "long",
    "nodes": [
        {"id": "prepare", "uses": "prepare"},
        {"id": "long_task", "uses": "long-task", "config": {"timeout": LONG_TIMEOUT_MS}},
        {"id": "report", "uses": "report"},
    ],
    "edges": [
        {"source": "prepare", "target": "long_task"},
        {"source": "long_task", "target": "report"},
    ],
}
