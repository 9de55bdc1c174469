"""The built-in nodes' steps, carried out the same way by the in-process runtime and the engine.

Each function decides what one built-in does given the run's state, as plain data; the
caller only performs what differs between one process and a fleet (running a subflow's
child in this process or as a run of its own, batch chunks in line or as jobs, a sleep's
wake-up by a scheduler or by a delayed message). Errors therefore read the same in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import builtins, protocol
from .blueprint import Blueprint, Node
from .jsvalues import UNDEFINED
from .protocol import NodeCompletion, RunState

SLEEP_EARLY_TOLERANCE_S = 0.5  # a sleep woken this close to its due time continues


def failed(node: Node, message: str) -> NodeCompletion:
    return NodeCompletion(error=f"Node '{node.id}' failed: {message}")


def input_or_failure(context: Mapping[str, Any], node: Node) -> tuple[Any, NodeCompletion | None]:
    """The node's input, or the failure of a path that cannot be read."""
    try:
        return protocol.resolve_node_input(context, node), None
    except protocol.InputPathError as exc:
        return UNDEFINED, failed(node, str(exc))


# --- wait and loop-controller: decided on the spot ------------------------------------------


def wait_step(node: Node) -> NodeCompletion:
    """`wait` parks its node until a client resumes it with an action and an output."""
    return NodeCompletion(awaiting=builtins.WAIT_DETAILS)


def loop_step(bp: Blueprint, node: Node, context: Mapping[str, Any], evaluator: Any) -> NodeCompletion:
    """`continue` while the condition holds (read over the flat context), else `break`."""
    scope = protocol.expression_scope(bp, context)
    output, action = builtins.loop_decision(node.params, scope, evaluator)
    return NodeCompletion(output=output, action=action)


# --- sleep ------------------------------------------------------------------------------------


def sleep_step(state: RunState, node: Node, now: float) -> NodeCompletion | None:
    """A first run records a due time (the run awaits a timer); a run at or after that time
    passes the input through. None: woken too early, the caller waits until the due time."""
    due = state.meta.timers.get(node.id)
    if due is None:
        try:
            seconds = builtins.sleep_seconds(node.params.get("duration"))
        except ValueError as exc:
            return failed(node, str(exc))
        if seconds > 0:
            return NodeCompletion(timer_due=now + seconds)
    elif now < due - SLEEP_EARLY_TOLERANCE_S:
        return None
    value, failure = input_or_failure(state.context, node)
    return failure or NodeCompletion(output=value)


def due_timers(state: RunState, now: float) -> list[str]:
    """Sleeping nodes whose time has come."""
    return [node_id for node_id, due in state.meta.timers.items() if now >= due - SLEEP_EARLY_TOLERANCE_S]


# --- subflow ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildStart:
    """A subflow's child run, to be started: its id, blueprint and initial context."""

    run_id: str
    blueprint: Blueprint
    context: dict[str, Any]


def subflow_start(
    state: RunState, node: Node, blueprints: Mapping[str, Blueprint], depth: int
) -> ChildStart | NodeCompletion:
    """The child run a subflow node starts, or its failure (unknown blueprint, too deep)."""
    if not node.params.get("blueprintId"):
        return failed(node, "subflow is missing its 'blueprintId' parameter")
    child_bp = blueprints.get(str(node.params.get("blueprintId")))
    if child_bp is None:
        return failed(node, f"subflow blueprint {node.params.get('blueprintId')!r} is not registered")
    if depth >= builtins.MAX_SUBFLOW_DEPTH:
        return failed(node, f"subflows nested deeper than {builtins.MAX_SUBFLOW_DEPTH}")
    value, failure = input_or_failure(state.context, node)
    if failure is not None:
        return failure
    initial = builtins.subflow_initial_context(node.params, state.context, value, child_bp)
    return ChildStart(builtins.subflow_run_id(state.run_id, node.id), child_bp, initial)


SUBFLOW_REASON = "subflow"


def subflow_step(
    node: Node, child_bp: Blueprint, status: str, reason: str | None, context: Mapping[str, Any],
    child_awaiting: Mapping[str, Any],
) -> NodeCompletion | None:
    """The subflow node's outcome once its child run reached `status`; None while it runs."""
    if status == protocol.COMPLETED:
        output, writes = builtins.subflow_output(node.params, context, child_bp)
        return NodeCompletion(output=output, context_sets=writes)
    if status == protocol.AWAITING:
        details = {"reason": SUBFLOW_REASON, "blueprintId": child_bp.id, "awaiting": dict(child_awaiting)}
        return NodeCompletion(awaiting=details)
    if status in protocol.FINAL_STATUSES:
        return failed(node, f"subflow '{child_bp.id}' {status}: {reason or status}")
    return None


# --- batch scatter / gather -------------------------------------------------------------------


def scatter_chunks(state: RunState, node: Node) -> list[list[Any]] | NodeCompletion:
    """The scatter's items cut into chunks of `chunkSize`, or its failure (not an array)."""
    items, failure = input_or_failure(state.context, node)
    if failure is not None:
        return failure
    if not isinstance(items, list):
        kind = "nothing" if items is None or items is UNDEFINED else f"a {type(items).__name__}"
        return failed(node, f"batch-scatter input must be an array, got {kind}")
    size = builtins.chunk_size(node.params)
    return [items[start:start + size] for start in range(0, len(items), size)]


def scatter_completion(node: Node, chunks: Sequence[Sequence[Any]]) -> NodeCompletion:
    gather = str(node.params.get("gatherNodeId"))
    count = sum(len(chunk) for chunk in chunks)
    return NodeCompletion(output={"gatherNodeId": gather, "hasMore": False, "chunks": len(chunks), "count": count})


def gather_completion(node: Node, results: list[Any]) -> NodeCompletion:
    """The gather's output: every item's result in item order, also under `outputKey`."""
    key = str(node.params.get("outputKey") or node.id)
    return NodeCompletion(output=results, context_sets={key: results})


def no_scatter_ran(node: Node) -> NodeCompletion:
    return failed(node, "no batch-scatter ran for this gather")
