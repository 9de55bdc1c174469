"""Mermaid flowcharts of a blueprint, and of one run of it with each node coloured by its state.

    print(generate_mermaid(bp))                         # paste into any Mermaid viewer
    print(generate_mermaid_for_run(bp, logger.events))  # or a WorkflowResult

The text follows TypeScript Flowcraft's `generateMermaid`: `flowchart TD`, one
`id["label"]` line per node (params appended), one arrow per edge labelled with its action,
condition and transform. On purpose we differ in two places, so every blueprint renders:
ids Mermaid cannot take (`end`, `a-b`, spaces) get a safe alias, and quotes in labels
are escaped.

A run's nodes are coloured completed (green), failed (red), awaiting (yellow) or skipped
(grey), and the edges it took are drawn thick.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from . import events as ev
from . import protocol
from .blueprint import Blueprint

COMPLETED = "completed"
FAILED = "failed"
AWAITING = "awaiting"
SKIPPED = "skipped"

STATE_STYLES: Mapping[str, str] = {
    COMPLETED: "fill:#d4edda,stroke:#c3e6cb",
    FAILED: "fill:#f8d7da,stroke:#f5c6cb",
    AWAITING: "fill:#fff3cd,stroke:#ffeeba",
    SKIPPED: "fill:#e2e3e5,stroke:#d6d8db",
}
TAKEN_EDGE_STYLE = "stroke:#007bff,stroke-width:3px"
EMPTY_CHART = "flowchart TD\n    empty[Empty Blueprint]"

_PLAIN_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Words Mermaid's flowchart grammar reserves; a node named so breaks the chart.
_RESERVED = frozenset({"end", "graph", "flowchart", "subgraph", "style", "classDef", "class",
                       "click", "linkStyle", "direction", "default"})
_FAILED_NODE = re.compile(r"Node '(?P<id>.+?)' failed")


def generate_mermaid(blueprint: Blueprint | Mapping[str, Any]) -> str:
    """The blueprint as Mermaid flowchart text."""
    chart = _Chart(_raw(blueprint))
    if not chart.nodes:
        return EMPTY_CHART
    return "\n".join([*chart.head(), *chart.node_lines(), *chart.edge_lines()]) + "\n"


def generate_mermaid_for_run(blueprint: Blueprint | Mapping[str, Any], run: Any) -> str:
    """The chart with the run's node states and taken edges; `run` is a list of events
    (FlowcraftEvent or {"type", "payload"} dicts, as an InMemoryEventLogger holds) or a
    WorkflowResult."""
    chart = _Chart(_raw(blueprint))
    if not chart.nodes:
        return EMPTY_CHART
    states, taken = _from_result(chart, run) if hasattr(run, "status") else _from_events(chart, run)
    lines = [*chart.head(), *chart.node_lines()]
    lines += [f"    style {chart.alias(n['id'])} {STATE_STYLES[states[n['id']]]}"
              for n in chart.nodes if n["id"] in states]
    for index, line in enumerate(chart.edge_lines()):
        lines.append(line)
        if index in taken:
            lines.append(f"    linkStyle {index} {TAKEN_EDGE_STYLE}")
    return "\n".join(lines) + "\n"


class _Chart:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.nodes = [n for n in raw.get("nodes") or [] if isinstance(n, Mapping) and isinstance(n.get("id"), str)]
        self.edges = [e for e in raw.get("edges") or [] if isinstance(e, Mapping)]
        self._aliases = _aliases([n["id"] for n in self.nodes])

    def alias(self, node_id: Any) -> str:
        return self._aliases.get(str(node_id)) or _safe_id(str(node_id), len(self._aliases))

    def head(self) -> list[str]:
        return ["flowchart TD"]

    def node_lines(self) -> list[str]:
        return [f'    {self.alias(n["id"])}["{_escape(_node_label(n))}"]' for n in self.nodes]

    def edge_lines(self) -> list[str]:
        lines = []
        for edge in self.edges:
            source, target = self.alias(edge.get("source")), self.alias(edge.get("target"))
            label = " | ".join(str(edge[k]) for k in ("action", "condition", "transform") if edge.get(k))
            lines.append(f'    {source} -- "{_escape(label)}" --> {target}' if label else f"    {source} --> {target}")
        return lines


def _from_events(chart: _Chart, run: Iterable[Any]) -> tuple[dict[str, str], set[int]]:
    """Node states and taken edge indexes from a run's events, the later event winning."""
    states: dict[str, str] = {}
    started: set[str] = set()
    true_edges: set[tuple[str, str]] = set()
    final_status = None
    for event in run:
        kind, payload = _event_parts(event)
        node_id = payload.get("nodeId")
        if kind == ev.NODE_START:
            started.add(str(node_id))
        elif kind == ev.NODE_FINISH:
            states[str(node_id)] = COMPLETED
        elif kind == ev.NODE_ERROR:
            states[str(node_id)] = FAILED
        elif kind == ev.EDGE_EVALUATE and payload.get("result"):
            true_edges.add((str(payload.get("source")), str(payload.get("target"))))
        elif kind == ev.WORKFLOW_FINISH:
            final_status = payload.get("status")
        elif kind == ev.WORKFLOW_PAUSE:
            final_status = AWAITING
    _mark_awaiting(states, started, final_status)
    _mark_skipped(chart, states, final_status)
    return states, _taken_edges(chart, states, started, true_edges)


def _mark_awaiting(states: dict[str, str], started: set[str], final_status: Any) -> None:
    # A parked node (wait, sleep) reports its start but no finish until it is resumed.
    if final_status == AWAITING:
        for node_id in started - set(states):
            states[node_id] = AWAITING


def _mark_skipped(chart: _Chart, states: dict[str, str], final_status: Any) -> None:
    """Once a run has ended, a node that never ran was skipped."""
    if final_status in (COMPLETED, FAILED, "cancelled"):
        for node in chart.nodes:
            states.setdefault(node["id"], SKIPPED)


def _taken_edges(chart: _Chart, states: Mapping[str, str], started: set[str],
                 true_edges: set[tuple[str, str]]) -> set[int]:
    """A conditional edge is taken when it evaluated true; any other one when its source
    completed and its target then ran (conditional edges report `edge:evaluate`, others do not)."""
    reached = started | {n for n, s in states.items() if s != SKIPPED}

    def taken(edge: Mapping[str, Any]) -> bool:
        source, target = str(edge.get("source")), str(edge.get("target"))
        if (source, target) in true_edges:
            return True
        return not edge.get("condition") and states.get(source) == COMPLETED and target in reached

    return {index for index, edge in enumerate(chart.edges) if taken(edge)}


def _from_result(chart: _Chart, result: Any) -> tuple[dict[str, str], set[int]]:
    """Node states from a WorkflowResult's stored bookkeeping (its `state`)."""
    meta = getattr(getattr(result, "state", None), "meta", None)
    states = {node_id: COMPLETED for node_id in (meta.results if meta else ())}
    awaiting = dict(meta.awaiting) if meta else dict(result.awaiting or {})
    states.update({node_id: AWAITING for node_id in [*awaiting, *(meta.timers if meta else ())]})
    failed_node = _failed_node(result, meta)
    if failed_node:
        states[failed_node] = FAILED
    _mark_skipped(chart, states, result.status)
    fired = {(src, dst) for src, rec in (meta.results.items() if meta else ()) for dst in rec.get("f") or ()}
    reached = {n for n, s in states.items() if s != SKIPPED}
    taken = {index for index, e in enumerate(chart.edges)
             if (e.get("source"), e.get("target")) in fired
             or (states.get(str(e.get("source"))) == COMPLETED and e.get("target") in reached
                 and not e.get("condition"))}
    return states, taken


def _failed_node(result: Any, meta: Any) -> str | None:
    """The node whose failure ended the run: recorded by the protocol, else named in the reason."""
    if result.status != FAILED:
        return None
    recorded = meta.extra.get(protocol.FAILED_NODE_KEY) if meta else None
    named = _FAILED_NODE.match(result.reason or "")
    return recorded or (named.group("id") if named else None)


def _event_parts(event: Any) -> tuple[str, Mapping[str, Any]]:
    if isinstance(event, Mapping):
        return str(event.get("type")), event.get("payload") or {}
    return str(event.type), event.payload or {}


def _node_label(node: Mapping[str, Any]) -> str:
    params = node.get("params")
    if not params:
        return str(node["id"])
    return f"{node['id']}<br/>params: {json.dumps(params, default=str, separators=(',', ':'))}"


def _escape(text: str) -> str:
    # Mermaid ends a quoted label at the first `"`; its entity keeps the quote visible.
    return text.replace('"', "#quot;")


def _aliases(ids: list[str]) -> dict[str, str]:
    return {node_id: _safe_id(node_id, index) for index, node_id in enumerate(ids)}


def _safe_id(node_id: str, index: int) -> str:
    if _PLAIN_ID.match(node_id) and node_id not in _RESERVED:
        return node_id
    return f"n{index}_{re.sub(r'[^A-Za-z0-9_]', '_', node_id)}"


def _raw(blueprint: Blueprint | Mapping[str, Any]) -> Mapping[str, Any]:
    return blueprint.to_dict() if isinstance(blueprint, Blueprint) else blueprint


__all__ = ["STATE_STYLES", "generate_mermaid", "generate_mermaid_for_run"]
