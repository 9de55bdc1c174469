"""The seam between node execution (`nodes`) and the run protocol (`protocol`).

Builds a node's context from the run's snapshot, and turns a `NodeOutcome` into the
`NodeCompletion` plain data the protocol commits. Shared by the in-process runtime and
the distributed executors so both prepare and report nodes identically.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from . import builtins
from .blueprint import Blueprint, Node
from .jsvalues import defined_or_none, json_safe
from .node_context import NodeContext, RunContextView
from .nodes import Offload, execute_node
from .protocol import NodeCompletion, resolve_node_input


def node_context_for(
    bp: Blueprint,
    node: Node,
    snapshot: Mapping[str, Any],
    run_id: str,
    dependencies: Mapping[str, Any],
    signal: Any = None,
    attempt: int = 1,
) -> NodeContext:
    """The NodeContext a node runs with: the run's snapshot, its resolved input, its params."""
    return NodeContext(
        context=RunContextView(snapshot),
        # A copy, so a node changing its input in place cannot alter the run's state unrecorded.
        input=copy.deepcopy(resolve_node_input(snapshot, node)),
        params=dict(node.params),
        dependencies=dict(dependencies),
        signal=signal,
        node_id=node.id,
        run_id=run_id,
        blueprint_id=bp.id,
        attempt=attempt,
    )


def completion_from_outcome(node_id: str, outcome: Any) -> NodeCompletion:
    """Plain data for the protocol from what `execute_node` returned."""
    if outcome.error is not None:
        return NodeCompletion(error=str(outcome.error), attempts=max(outcome.attempts, 1))
    result = outcome.result
    # As JSON.stringify does: no `undefined` inside what is stored (here, off the commit path).
    return NodeCompletion(
        output=json_safe(result.output),
        action=result.action,
        context_sets={key: json_safe(value) for key, value in outcome.context_writes.items()},
        context_deletes=frozenset(outcome.context_deletes),
        fallback_node_id=outcome.fallback_node_id if outcome.fallback_executed else None,
        catch_error=outcome.catch_error,
        attempts=max(outcome.attempts, 1),
    )


async def run_node(
    bp: Blueprint,
    node_id: str,
    snapshot: Mapping[str, Any],
    run_id: str,
    registry: Mapping[str, Any],
    dependencies: Mapping[str, Any],
    middleware: Sequence[Any] = (),
    signal: Any = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    logger: Any = None,
    offload: Offload | None = None,
) -> NodeCompletion:
    """Execute one node (and its fallback, inline) against a snapshot; plain data out.

    The one way a node is run: by the in-process runtime, the single-process adapter
    and the executor processes alike.
    """
    node = bp.node_by_id[node_id]
    if node.uses == builtins.BATCH_SCATTER and node.uses not in registry:
        return await run_batch_chunk(bp, node, snapshot, run_id, registry, dependencies, middleware, signal,
                                     sleep, logger, offload)
    ctx = node_context_for(bp, node, snapshot, run_id, dependencies, signal)
    fallback = bp.node_by_id.get(node.fallback) if node.fallback else None

    def fallback_context(_definition: Mapping[str, Any]) -> NodeContext:
        assert fallback is not None
        return node_context_for(bp, fallback, snapshot, run_id, dependencies, signal)

    outcome = await execute_node(
        node=dict(node.definition),
        registry=registry,
        context=ctx,
        middleware=middleware,
        fallback_node=dict(fallback.definition) if fallback else None,
        make_fallback_context=fallback_context if fallback else None,
        sleep=sleep,
        logger=logger,
        offload=offload,
    )
    return completion_from_outcome(node_id, outcome)


async def run_batch_chunk(
    bp: Blueprint,
    scatter: Node,
    snapshot: Mapping[str, Any],
    run_id: str,
    registry: Mapping[str, Any],
    dependencies: Mapping[str, Any],
    middleware: Sequence[Any] = (),
    signal: Any = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    logger: Any = None,
    offload: Offload | None = None,
) -> NodeCompletion:
    """One chunk of a batch: the worker implementation once per item, results in item order.

    `snapshot` is the chunk's own stored context (its items and their offset). The first
    item that fails fails the chunk, and so the batch, with that item's reason.
    """
    worker = str(scatter.params.get("workerUsesKey"))
    items = snapshot.get(builtins.CHUNK_ITEMS_KEY) or []
    offset = int(snapshot.get(builtins.CHUNK_OFFSET_KEY) or 0)
    results: list[Any] = []
    for index, item in enumerate(items, start=offset):
        item_id = f"{scatter.id}_item_{index}"
        config = {k: v for k, v in (scatter.definition.get("config") or {}).items() if k != "fallback"}
        definition: dict[str, Any] = {"id": item_id, "uses": worker, "config": config}
        ctx = NodeContext(
            context=RunContextView({}), input=copy.deepcopy(item), params={}, dependencies=dict(dependencies),
            signal=signal, node_id=item_id, run_id=run_id, blueprint_id=bp.id,
        )
        outcome = await execute_node(node=definition, registry=registry, context=ctx, middleware=middleware,
                                     sleep=sleep, logger=logger, offload=offload)
        if outcome.error is not None or outcome.result is None:
            return NodeCompletion(error=str(outcome.error))
        results.append(defined_or_none(json_safe(outcome.result.output)))
    return NodeCompletion(output=results)
