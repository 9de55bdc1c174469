"""Built-in nodes that the protocol itself carries out: wait, sleep, loop-controller, subflow.

Their steps are in `builtin_steps`, shared by the in-process runtime and the engine. They
run no user code, so the engine performs them where it plans a job, with no executor and
no worker held while a run waits:

- `wait` parks its node as *awaiting* until a client resumes it with an action and output.
- `sleep` records a due time (the run is `awaiting` a timer once nothing else runs) and
  re-sends its own job with an SQS delay (at most 15 minutes per hop, re-delayed for
  longer) until the time has come; then it passes its input through. In process the
  runtime's `TimerScheduler` resumes it.
- `loop-controller` evaluates its condition; `continue` resets the loop body so it runs
  again; a `maxIterations` guard (default 1000) fails the run with a clear reason.
- `subflow` starts the child blueprint as a run of its own (id `<parent>:<node>`), and
  completes when the child's completion re-sends the subflow job.
- `webhook` needs an HTTP endpoint this product does not have: it is refused when a
  blueprint is loaded (use `wait` and `FlowcraftClient.resume`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .blueprint import Blueprint
from .jsvalues import UNDEFINED, truthy

WAIT: Final = "wait"
SLEEP: Final = "sleep"
LOOP_CONTROLLER: Final = "loop-controller"
SUBFLOW: Final = "subflow"
WEBHOOK: Final = "webhook"
PROTOCOL_BUILTINS: Final = frozenset(
    {WAIT, SLEEP, LOOP_CONTROLLER, SUBFLOW, "batch-scatter", "batch-gather"}
)

SQS_MAX_DELAY_S: Final = 900  # SendMessage DelaySeconds limit: 15 minutes; longer sleeps re-delay
MAX_SUBFLOW_DEPTH: Final = 16  # nested subflows deeper than this are a runaway recursion, not a design
DEFAULT_MAX_ITERATIONS: Final = 1000  # a loop without its own maxIterations stops here, failing the run
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def sleep_seconds(duration: Any) -> float:
    """`duration` in ms (a number), or text like `30s`, `5m`, `2h`, `1d`."""
    if isinstance(duration, bool):
        raise ValueError(f"sleep duration must be milliseconds or like '30s', not {duration!r}")
    if isinstance(duration, (int, float)):
        if duration < 0:
            raise ValueError(f"sleep duration must not be negative, not {duration!r}")
        return float(duration) / 1000.0
    if isinstance(duration, str):
        match = _DURATION.match(duration.strip())
        if match:
            return float(int(match.group(1)) * _UNIT_S[match.group(2)])
    raise ValueError(f"sleep duration must be milliseconds or like '30s', '5m', '2h', '1d', not {duration!r}")


def loop_body(bp: Blueprint, controller_id: str, continue_targets: list[str]) -> set[str]:
    """Nodes reachable from the `continue` targets without passing through a loop controller."""
    body: set[str] = set()
    stack = list(continue_targets)
    while stack:
        node_id = stack.pop()
        if node_id in body or node_id == controller_id:
            continue
        if bp.node_by_id[node_id].uses == LOOP_CONTROLLER:
            continue
        body.add(node_id)
        stack.extend(edge.target for edge in bp.out_edges[node_id])
    return body


def max_iterations(params: Mapping[str, Any]) -> int:
    value = params.get("maxIterations", DEFAULT_MAX_ITERATIONS)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else DEFAULT_MAX_ITERATIONS


def subflow_run_id(parent_run_id: str, node_id: str) -> str:
    return f"{parent_run_id}:{node_id}"


def subflow_initial_context(
    params: Mapping[str, Any], parent: Mapping[str, Any], node_input: Any, child: Blueprint
) -> dict[str, Any]:
    """The child's initial context (TS §7.4): `inputs` {childKey: parentKey}, else the input."""
    mapping = params.get("inputs")
    if isinstance(mapping, Mapping) and mapping:
        context: dict[str, Any] = {}
        for child_key, parent_key in mapping.items():
            value = parent.get(parent_key, UNDEFINED)
            if value is UNDEFINED:
                value = parent.get(f"_outputs.{parent_key}", UNDEFINED)
            if value is not UNDEFINED:
                context[child_key] = value
        return context
    if node_input is UNDEFINED:
        return {}
    return {f"_inputs.{start}": node_input for start in child.start_node_ids}


def subflow_output(
    params: Mapping[str, Any], child_context: Mapping[str, Any], child: Blueprint
) -> tuple[Any, dict[str, Any]]:
    """(output, parent context writes) once the child completed (TS §7.4)."""
    mapping = params.get("outputs")
    if isinstance(mapping, Mapping) and mapping:
        writes: dict[str, Any] = {}
        for parent_key, child_key in mapping.items():
            value = child_context.get(f"_outputs.{child_key}", child_context.get(child_key))
            writes[parent_key] = value
        return dict(child_context), writes
    terminals = [t for t in child.terminal_node_ids if f"_outputs.{t}" in child_context]
    if len(child.terminal_node_ids) == 1:
        return child_context.get(f"_outputs.{child.terminal_node_ids[0]}"), {}
    return {t: child_context[f"_outputs.{t}"] for t in terminals}, {}


def loop_decision(params: Mapping[str, Any], context: Mapping[str, Any], evaluator: Any) -> tuple[Any, str]:
    """(output, action) of a loop controller: `continue` while its condition holds, else `break`."""
    condition = params.get("condition")
    if isinstance(condition, str) and truthy(evaluator.evaluate(condition, dict(context))):
        return UNDEFINED, "continue"
    return None, "break"


WAIT_DETAILS: Final = {"reason": "external_event"}


# --- batch scatter / gather ---------------------------------------------------------------
#
# The scatter splits its input array into chunks; each chunk is stored as an item of its own
# in the contexts table (run id `<run>#batch:<scatter>:<index>`), so 10,000 items never put
# one DynamoDB item near 400 KB, and each chunk is one job, run by any executor: the worker
# implementation is called once per item. A finished chunk re-sends the gather's job; the
# gather completes when every chunk has, with the results in item order.

BATCH_SCATTER: Final = "batch-scatter"
BATCH_GATHER: Final = "batch-gather"
DEFAULT_CHUNK_SIZE: Final = 100  # items per chunk job: large enough to amortise a job, small enough to spread
CHUNK_ITEMS_KEY: Final = "items"
CHUNK_OFFSET_KEY: Final = "offset"


def chunk_run_id(run_id: str, scatter_id: str, index: int) -> str:
    return f"{run_id}#batch:{scatter_id}:{index}"


def chunk_size(params: Mapping[str, Any]) -> int:
    value = params.get("chunkSize", DEFAULT_CHUNK_SIZE)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        return DEFAULT_CHUNK_SIZE
    return int(value)


def scatter_for(bp: Blueprint, gather_id: str) -> str | None:
    """The batch-scatter node that feeds `gather_id`."""
    for node in bp.nodes:
        if node.uses == BATCH_SCATTER and node.params.get("gatherNodeId") == gather_id:
            return node.id
    return None


class BuiltinNode:
    """The registry entry of a built-in: the runtime carries it out itself, never calls it."""

    def __init__(self, uses: str) -> None:
        self.uses = uses

    def __call__(self, ctx: Any) -> Any:
        raise RuntimeError(f"built-in '{self.uses}' is carried out by the runtime, not called as a node")

    def __repr__(self) -> str:
        return f"BuiltinNode({self.uses!r})"


def builtin_registry() -> dict[str, BuiltinNode]:
    """Every built-in the protocol carries out, keyed by its `uses`."""
    return {uses: BuiltinNode(uses) for uses in sorted(PROTOCOL_BUILTINS)}
