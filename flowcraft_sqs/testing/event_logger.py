"""`InMemoryEventLogger`: an event bus that keeps every workflow event, for tests.

    logger = InMemoryEventLogger()
    runtime = FlowRuntime(registry=..., event_bus=logger)
    await runtime.run(bp)
    assert len(logger.filter("node:retry")) == 1
    logger.print_log()   # a readable trace, when a test fails

As upstream's logger of the same name: `events`, `clear`, `find`, `filter`, `print_log`.
Its `emit` is synchronous, so it also serves the distributed engine (which calls buses
synchronously).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from .. import events as ev
from ..events import FlowcraftEvent


class InMemoryEventLogger:
    """Collects events in the order they are emitted."""

    def __init__(self) -> None:
        self.events: list[FlowcraftEvent] = []

    def emit(self, event: FlowcraftEvent) -> None:
        self.events.append(event)

    def clear(self) -> None:
        self.events.clear()

    def find(self, type_: str) -> FlowcraftEvent | None:
        """The first event of this type, or None."""
        return next((event for event in self.events if event.type == type_), None)

    def filter(self, type_: str) -> list[FlowcraftEvent]:
        """Every event of this type, in order."""
        return [event for event in self.events if event.type == type_]

    def for_node(self, node_id: str) -> list[FlowcraftEvent]:
        """Every event about one node, in order."""
        return [event for event in self.events if event.payload.get("nodeId") == node_id]

    def types(self) -> list[str]:
        """The kinds of the events, in order: handy to assert a whole trace."""
        return [event.type for event in self.events]

    def format_log(self, title: str = "Workflow Execution Trace") -> str:
        """The trace `print_log` prints."""
        lines = [f"\n--- {title} ---"]
        if not self.events:
            return "\n".join([*lines, "No events were captured.", "----------------------------------\n"])
        for number, event in enumerate(self.events, start=1):
            lines.append(f"\n[{number}] {event.type}")
            lines.extend(describe_event(event))
        lines.append("\n--- End of Trace ---")
        return "\n".join(lines)

    def print_log(self, title: str = "Workflow Execution Trace", file: TextIO | None = None) -> None:
        """Print every captured event, numbered, with the details that matter for its kind."""
        print(self.format_log(title), file=file or sys.stdout)


def describe_event(event: FlowcraftEvent) -> list[str]:
    """The detail lines of one event in a trace."""
    payload = event.payload
    if event.type == ev.NODE_START:
        return [f'  - Node: "{payload.get("nodeId")}" | Input: {_json(payload.get("input"))}']
    if event.type == ev.NODE_FINISH:
        return [f'  - Node: "{payload.get("nodeId")}" | Result: {_json(payload.get("result"))}']
    if event.type == ev.NODE_ERROR:
        return [f'  - Node: "{payload.get("nodeId")}"', f"  - Error: {payload.get('error')}"]
    if event.type == ev.EDGE_EVALUATE:
        return [f'  - Edge: "{payload.get("source")}" -> "{payload.get("target")}"',
                f"  - Condition: {payload.get('condition') or 'N/A'} | Result: {_js_bool(payload.get('result'))}"]
    if event.type == ev.CONTEXT_CHANGE:
        return [_describe_context_change(payload)]
    return [f"  - Payload: {_json(dict(payload), indent=2)}"]


def _describe_context_change(payload: Mapping[str, Any]) -> str:
    node, key = payload.get("sourceNode"), payload.get("key")
    if payload.get("op") == "delete":
        return f'  - Node "{node}" deleted from context -> Key: "{key}"'
    return f'  - Node "{node}" wrote to context -> Key: "{key}" | Value: {_json(payload.get("value"))}'


def _json(value: Any, indent: int | None = None) -> str:
    # Values that JSON cannot hold are shown by their repr: a trace must never fail.
    return json.dumps(value, default=repr, indent=indent)


def _js_bool(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


__all__ = ["InMemoryEventLogger", "describe_event"]
