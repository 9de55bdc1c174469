"""Workflow events: what the in-process runtime and the distributed engine report as they go.

Event kinds and payloads follow TypeScript Flowcraft's `FlowcraftEvent`, so a bus written
for upstream's event names works unchanged:

    workflow:start / workflow:resume / workflow:stall / workflow:pause / workflow:finish
    node:start / node:finish / node:error / node:retry / node:fallback / node:skipped
    edge:evaluate / context:change / batch:start / batch:finish

Payloads are plain JSON-able dicts and carry `executionId` (the run id) and `blueprintId`
wherever upstream's do. A bus is anything with `emit(event)`, sync or async; a bus that
raises never fails the run (its error is logged).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

log = logging.getLogger("flowcraft_sqs.events")

WORKFLOW_START: Final = "workflow:start"
WORKFLOW_RESUME: Final = "workflow:resume"
WORKFLOW_STALL: Final = "workflow:stall"
WORKFLOW_PAUSE: Final = "workflow:pause"
WORKFLOW_FINISH: Final = "workflow:finish"
NODE_START: Final = "node:start"
NODE_FINISH: Final = "node:finish"
NODE_ERROR: Final = "node:error"
NODE_RETRY: Final = "node:retry"
NODE_FALLBACK: Final = "node:fallback"
NODE_SKIPPED: Final = "node:skipped"
EDGE_EVALUATE: Final = "edge:evaluate"
CONTEXT_CHANGE: Final = "context:change"
BATCH_START: Final = "batch:start"
BATCH_FINISH: Final = "batch:finish"

EVENT_TYPES: Final = frozenset({
    WORKFLOW_START, WORKFLOW_RESUME, WORKFLOW_STALL, WORKFLOW_PAUSE, WORKFLOW_FINISH,
    NODE_START, NODE_FINISH, NODE_ERROR, NODE_RETRY, NODE_FALLBACK, NODE_SKIPPED,
    EDGE_EVALUATE, CONTEXT_CHANGE, BATCH_START, BATCH_FINISH,
})


@dataclass(frozen=True)
class FlowcraftEvent:
    """One event: its kind (`EVENT_TYPES`) and its payload."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "payload": dict(self.payload)}


@runtime_checkable
class EventBus(Protocol):
    """Receives every event; `emit` may be a plain or an async method."""

    def emit(self, event: FlowcraftEvent) -> Any: ...


class NullEventBus:
    """The default bus: drops everything, costs one call."""

    def emit(self, event: FlowcraftEvent) -> None:
        return None


async def emit(bus: EventBus | None, type_: str, payload: Mapping[str, Any]) -> None:
    """Send one event to `bus` (awaiting an async `emit`); a failing bus is logged, not raised."""
    if bus is None or isinstance(bus, NullEventBus):
        return
    try:
        result = bus.emit(FlowcraftEvent(type_, payload))
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.warning("event bus failed on %s; the run goes on", type_, exc_info=True)


def emit_sync(bus: EventBus | None, type_: str, payload: Mapping[str, Any]) -> None:
    """`emit` for synchronous callers (the distributed engine): an async bus's coroutine is
    closed unawaited there, so buses used by workers should have a plain `emit`."""
    if bus is None or isinstance(bus, NullEventBus):
        return
    try:
        result = bus.emit(FlowcraftEvent(type_, payload))
        if inspect.iscoroutine(result):
            result.close()
            log.warning("event bus %r has an async emit; the worker calls it synchronously",
                        type(bus).__name__)
    except Exception:
        log.warning("event bus failed on %s; the run goes on", type_, exc_info=True)


__all__ = ["EVENT_TYPES", "EventBus", "FlowcraftEvent", "NullEventBus", "emit", "emit_sync"]
