"""The events one protocol step produces, as plain (type, payload) pairs.

Both the in-process runtime and the distributed engine report through these builders, so
a bus sees the same events, with the same payloads, wherever a workflow runs. Payloads
carry `executionId` (the run id) and `blueprintId`, as upstream's do; values are made
JSON-able (`undefined` becomes absent or null), so no internal marker reaches a bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import events, protocol
from .blueprint import Blueprint, Node
from .jsvalues import UNDEFINED, defined_or_none, json_safe, truthy

Event = tuple[str, dict[str, Any]]


def _base(run_id: str, bp: Blueprint | str) -> dict[str, Any]:
    return {"executionId": run_id, "blueprintId": bp if isinstance(bp, str) else bp.id}


def node_started(run_id: str, bp: Blueprint, node_id: str, node_input: Any) -> Event:
    return events.NODE_START, {**_base(run_id, bp), "nodeId": node_id, "input": defined_or_none(json_safe(node_input))}


def readable_input(context: Mapping[str, Any], node: Node) -> Any:
    """The node's input for `node:start`; an unreadable path (which fails the node) is null."""
    try:
        return protocol.resolve_node_input(context, node)
    except protocol.InputPathError:
        return None


def batch_started(run_id: str, bp: Blueprint, scatter_id: str, gather_id: str, count: int) -> Event:
    workers = [f"{scatter_id}_item_{i}" for i in range(count)]
    return events.BATCH_START, {**_base(run_id, bp), "batchId": f"{run_id}:{scatter_id}",
                                "scatterNodeId": scatter_id, "workerNodeIds": workers}


def batch_finished(run_id: str, bp: Blueprint, scatter_id: str, gather_id: str, results: list[Any]) -> Event:
    return events.BATCH_FINISH, {**_base(run_id, bp), "batchId": f"{run_id}:{scatter_id}",
                                 "gatherNodeId": gather_id, "results": json_safe(results)}


def workflow_event(kind: str, run_id: str, bp: Blueprint | str, **extra: Any) -> Event:
    return kind, {**_base(run_id, bp), **extra}


def node_settled(
    run_id: str, bp: Blueprint, node_id: str, completion: protocol.NodeCompletion, commit: protocol.Commit,
    evaluator: Any,
) -> list[Event]:
    """What committing `completion` for `node_id` reports: retries, the node's end, edges, writes."""
    base = {**_base(run_id, bp), "nodeId": node_id}
    found: list[Event] = [
        (events.NODE_RETRY, {**base, "attempt": attempt}) for attempt in range(1, completion.attempts)
    ]
    if completion.failed:
        found.append((events.NODE_ERROR, {**base, "error": completion.error}))
        return found
    if completion.fallback_node_id:
        found.append((events.NODE_FALLBACK, {**base, "fallback": completion.fallback_node_id}))
    if completion.awaiting is not None or completion.timer_due is not None:
        return found  # parked: it finishes when it is resumed
    result = {"output": defined_or_none(completion.output), "action": completion.action}
    found.append((events.NODE_FINISH, {**base, "result": result}))
    found.extend(edge_events(run_id, bp, node_id, completion, commit.state.context, evaluator))
    found.extend(context_events(run_id, bp, node_id, commit))
    return found


def edge_events(
    run_id: str, bp: Blueprint, node_id: str, completion: protocol.NodeCompletion,
    context: Mapping[str, Any], evaluator: Any,
) -> list[Event]:
    """`edge:evaluate` for every conditional edge out of the node, `node:skipped` for false ones.

    Conditions are pure, so evaluating them again here gives what routing saw; it happens
    only when a bus listens.
    """
    scope: dict[str, Any] | None = None
    found: list[Event] = []
    for edge in protocol.candidate_edges(bp, node_id):
        if edge.condition is None:
            continue
        if scope is None:
            scope = protocol.expression_scope(bp, context)
            scope["result"] = {"output": completion.output, "action": completion.action}
        passed = truthy(evaluator.evaluate(edge.condition, scope))
        described = _edge(edge)
        found.append((events.EDGE_EVALUATE, {**_base(run_id, bp), "source": edge.source, "target": edge.target,
                                             "condition": edge.condition, "result": passed}))
        if not passed:
            found.append((events.NODE_SKIPPED, {**_base(run_id, bp), "nodeId": node_id, "edge": described}))
    return found


def context_events(run_id: str, bp: Blueprint, node_id: str, commit: protocol.Commit) -> list[Event]:
    base = {**_base(run_id, bp), "sourceNode": node_id}
    found: list[Event] = [
        (events.CONTEXT_CHANGE, {**base, "key": key, "op": "set", "value": defined_or_none(value)})
        for key, value in commit.sets.items()
    ]
    found.extend((events.CONTEXT_CHANGE, {**base, "key": key, "op": "delete"}) for key in sorted(commit.deletes))
    return found


def finished(run_id: str, bp: Blueprint | str, status: str, reason: str | None) -> list[Event]:
    """The run-level event(s) for a status a commit published."""
    if status == protocol.AWAITING:
        return [workflow_event(events.WORKFLOW_PAUSE, run_id, bp)]
    if status in protocol.FINAL_STATUSES:
        errors = [{"message": reason}] if status == protocol.FAILED and reason else []
        extra: dict[str, Any] = {"status": status}
        if errors:
            extra["errors"] = errors
        return [workflow_event(events.WORKFLOW_FINISH, run_id, bp, **extra)]
    return []


def _edge(edge: Any) -> dict[str, Any]:
    described = {"source": edge.source, "target": edge.target}
    for name in ("action", "condition", "transform"):
        value = getattr(edge, name)
        if value is not None and value is not UNDEFINED:
            described[name] = value
    return described
