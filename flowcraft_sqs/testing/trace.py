"""`run_with_trace`: run a workflow in a test and, if it fails, print what happened.

    result = await run_with_trace(runtime, flow.to_blueprint(), {"x": 1}, registry=flow.registry)

It runs on a copy of `runtime` (same options) whose event bus is an `InMemoryEventLogger`
(the runtime's own bus still gets every event). A run that ends `failed`, or raises, prints
the numbered event trace; with `DEBUG` set in the environment a successful run prints it too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any, TextIO

from ..events import FlowcraftEvent
from ..runtime import FlowRuntime, WorkflowResult
from .event_logger import InMemoryEventLogger


async def run_with_trace(
    runtime: FlowRuntime,
    blueprint: Any,
    initial_context: Mapping[str, Any] | str | None = None,
    *,
    registry: Mapping[str, Any] | None = None,
    logger: InMemoryEventLogger | None = None,
    file: TextIO | None = None,
    **run_options: Any,
) -> WorkflowResult:
    """Run `blueprint` like `runtime.run`, printing the event trace when the run fails.

    `registry` adds implementations for this run (a builder's `flow.registry`); `logger`
    lets the test inspect the events afterwards; a JSON string is accepted as the
    initial context, as upstream accepts a serialized one.
    """
    logger = logger if logger is not None else InMemoryEventLogger()
    traced = derived_runtime(runtime, registry=registry, event_bus=_Tee(logger, runtime.event_bus))
    bp = traced.load(blueprint)
    try:
        result = await traced.run(bp, _initial(initial_context), **run_options)
    except BaseException:
        logger.print_log(f"Failing Test Trace: {bp.id}", file=file)
        raise
    if result.status == "failed":
        logger.print_log(f"Failing Test Trace: {bp.id}", file=file)
    elif os.environ.get("DEBUG"):
        logger.print_log(f"Successful Trace: {bp.id}", file=file)
    return result


def run_with_trace_sync(runtime: FlowRuntime, blueprint: Any, initial_context: Any = None,
                        **options: Any) -> WorkflowResult:
    """`run_with_trace` for synchronous tests."""
    return asyncio.run(run_with_trace(runtime, blueprint, initial_context, **options))


def derived_runtime(
    runtime: FlowRuntime, *, registry: Mapping[str, Any] | None = None, event_bus: Any = None
) -> FlowRuntime:
    """A FlowRuntime with `runtime`'s options, more implementations and another event bus."""
    return FlowRuntime(
        registry={**runtime.user_registry, **(registry or {})},
        blueprints=runtime.blueprints,
        dependencies=runtime.dependencies,
        evaluator=runtime.evaluator,
        middleware=runtime.middleware,
        logger=runtime.logger,
        clock=runtime._clock,  # noqa: SLF001 - the same clock keeps timers comparable
        sleep=runtime._sleep,  # noqa: SLF001 - a test's fake sleep must stay in force
        event_bus=event_bus,
    )


class _Tee:
    """Sends each event to the logger and on to the runtime's own bus, if it had one."""

    def __init__(self, logger: InMemoryEventLogger, bus: Any) -> None:
        self.logger = logger
        self.bus = bus

    async def emit(self, event: FlowcraftEvent) -> None:
        self.logger.emit(event)
        if self.bus is not None:
            result = self.bus.emit(event)
            if asyncio.iscoroutine(result):
                await result


def _initial(initial_context: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    if isinstance(initial_context, str):
        from ..serializer import JsonSerializer

        return JsonSerializer().deserialize(initial_context)
    return initial_context or {}


__all__ = ["derived_runtime", "run_with_trace", "run_with_trace_sync"]
