"""`replay`: rebuild a run's final context from its event log, running no node.

    logger = InMemoryEventLogger()
    result = await FlowRuntime(registry=..., event_bus=logger).run(bp, {"user": 1})
    again = replay(bp, logger.events, result.run_id, initial_context={"user": 1})
    assert again.context == result.context

Every context write of a run is reported as a `context:change` event, outputs included,
so applying them in order gives the final context. Events are not told the initial
context; pass it as `initial_context` to get it back too. Only the events of
`execution_id` count (all of them when it is None).

Upstream's replay always answers `completed`; ours reports the status the log recorded
(`workflow:finish`, or `awaiting` after `workflow:pause`), and `completed` when the log
records none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import events as ev
from . import protocol
from .runtime import WorkflowError, WorkflowResult


def replay(
    blueprint: Any,
    events: Iterable[Any],
    execution_id: str | None = None,
    *,
    initial_context: Mapping[str, Any] | None = None,
) -> WorkflowResult:
    """The run `execution_id` as its events describe it: final context, status, errors."""
    run = _Replay(dict(initial_context or {}))
    for kind, payload in _events_of(events, execution_id):
        run.apply(kind, payload)
    return WorkflowResult(status=run.status, context=run.context, errors=run.errors,
                          run_id=execution_id or "", reason=run.reason)


class _Replay:
    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context
        self.status = protocol.COMPLETED
        self.reason: str | None = None
        self.errors: list[WorkflowError] = []
        self.fallback_of: dict[str, str] = {}  # fallback node -> the node it stood in for

    def apply(self, kind: str, payload: Mapping[str, Any]) -> None:
        if kind == ev.CONTEXT_CHANGE:
            self._change(payload)
        elif kind == ev.NODE_FINISH:
            self._finish(payload)
        elif kind == ev.NODE_FALLBACK:
            self.fallback_of[str(payload.get("fallback"))] = str(payload.get("nodeId"))
        elif kind == ev.NODE_ERROR:
            self.errors.append(WorkflowError(str(payload.get("error")), node_id=_text(payload.get("nodeId")),
                                             blueprint_id=_text(payload.get("blueprintId"))))
        elif kind == ev.WORKFLOW_PAUSE:
            self.status = protocol.AWAITING
        elif kind == ev.WORKFLOW_FINISH:
            self.status = str(payload.get("status") or protocol.COMPLETED)
            self.reason = next((str(e.get("message")) for e in payload.get("errors") or []
                                if isinstance(e, Mapping)), None)
        # Every other kind (starts, retries, edges, batches) changes no state.

    def _change(self, payload: Mapping[str, Any]) -> None:
        key = str(payload.get("key"))
        if payload.get("op") == "delete":
            self.context.pop(key, None)
        else:
            self.context[key] = payload.get("value")

    def _finish(self, payload: Mapping[str, Any]) -> None:
        # The output is also in a context:change; setting it here keeps logs that lack
        # those (upstream's or a filtered log) replayable.
        node_id = str(payload.get("nodeId"))
        result = payload.get("result")
        output = result.get("output") if isinstance(result, Mapping) else None
        self.context[protocol.OUTPUTS_PREFIX + self.fallback_of.get(node_id, node_id)] = output


def _events_of(events: Iterable[Any], execution_id: str | None) -> list[tuple[str, Mapping[str, Any]]]:
    found = []
    for event in events:
        kind, payload = (str(event.get("type")), event.get("payload") or {}) if isinstance(event, Mapping) \
            else (event.type, event.payload)
        if execution_id is None or payload.get("executionId") == execution_id:
            found.append((kind, payload))
    return found


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


__all__ = ["replay"]
