"""The run protocol, as pure functions over plain data.

One run's whole state is a `RunState`: the flat context map the nodes see, plus
`RunMeta`, the bookkeeping that makes the distributed protocol exact:

- `outstanding`: node id -> number of jobs queued or running. A run completes when
  this is empty (FIX of TS's "every structural terminal has output" rule).
- `results`: node id -> the committed result's action and the successors its commit
  fired. Presence is the completion marker; a redelivered job routes from here, so it
  routes exactly as the first time (FIX: TS loses the action).
- `arrivals`: join node id -> the set of predecessors that arrived. A join fires once,
  when the set is complete (FIX: TS counts, so redelivery double-counts).
- `status`, `reason`: the run's status; final statuses never change again.

Every function here returns new values and performs nothing: the in-process runtime
and the distributed worker both drive these same functions, and the storage edge
turns a `Commit` into one conditional write.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol

from . import builtins
from .blueprint import Blueprint, Edge, Node, input_path_problem
from .errors import RunStateError
from .expressions import read_property
from .jsvalues import UNDEFINED, defined_or_none, json_safe, truthy

RUNNING = "running"
AWAITING = "awaiting"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
ACTIVE_STATUSES = frozenset({RUNNING, AWAITING})
FINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED})

OUTPUTS_PREFIX = "_outputs."
FAILED_NODE_KEY = "failedNode"  # RunMeta.extra: the node whose failure ended the run
INPUTS_PREFIX = "_inputs."
CATCH_ERROR_KEY = "_catch_error"


class Evaluator(Protocol):
    def evaluate(self, expression: str, scope: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class RunMeta:
    blueprint_id: str
    blueprint_version: str | None
    status: str = RUNNING
    reason: str | None = None
    outstanding: Mapping[str, int] = field(default_factory=dict)
    results: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    arrivals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    created_at: float = 0.0
    touched_at: float = 0.0
    awaiting: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # wait: node -> details
    timers: Mapping[str, float] = field(default_factory=dict)  # sleep: node -> due (epoch s)
    iterations: Mapping[str, int] = field(default_factory=dict)  # loop-controller -> continues
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "bp": self.blueprint_id,
            "ver": self.blueprint_version,
            "st": self.status,
            "out": dict(self.outstanding),
            "res": {k: dict(v) for k, v in self.results.items()},
            "arr": {k: list(v) for k, v in self.arrivals.items()},
            "ca": self.created_at,
            "ta": self.touched_at,
        }
        if self.reason is not None:
            data["why"] = self.reason
        for key, value in (("aw", self.awaiting), ("tm", self.timers), ("it", self.iterations)):
            if value:
                data[key] = dict(value)
        if self.extra:
            data["x"] = dict(self.extra)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunMeta:
        return cls(
            blueprint_id=data["bp"],
            blueprint_version=data.get("ver"),
            status=data.get("st", RUNNING),
            reason=data.get("why"),
            outstanding=dict(data.get("out") or {}),
            results={k: dict(v) for k, v in (data.get("res") or {}).items()},
            arrivals={k: tuple(v) for k, v in (data.get("arr") or {}).items()},
            created_at=float(data.get("ca") or 0.0),
            touched_at=float(data.get("ta") or 0.0),
            awaiting={k: dict(v) for k, v in (data.get("aw") or {}).items()},
            timers={k: float(v) for k, v in (data.get("tm") or {}).items()},
            iterations={k: int(v) for k, v in (data.get("it") or {}).items()},
            extra=dict(data.get("x") or {}),
        )


@dataclass(frozen=True)
class RunState:
    """A run as stored: context, bookkeeping and the version used for optimistic writes.

    `version` 0 means nothing of ours is stored yet (a run seeded by the TypeScript-style
    client, or a run not yet written by the in-process runtime).
    """

    run_id: str
    context: Mapping[str, Any]
    meta: RunMeta
    version: int = 0
    # Stored size of each attribute, kept by the storage edge for the 400 KB check.
    attr_sizes: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def status(self) -> str:
        return self.meta.status

    @property
    def is_final(self) -> bool:
        return self.meta.status in FINAL_STATUSES


@dataclass(frozen=True)
class FinalStatus:
    status: str
    reason: str | None = None
    details: Mapping[str, Any] | None = None  # awaiting node ids -> what they wait for


@dataclass(frozen=True)
class Commit:
    """What one step changes: apply `sets`/`deletes` and `state.meta`, then enqueue `fired`."""

    state: RunState
    sets: Mapping[str, Any]
    deletes: frozenset[str]
    fired: tuple[str, ...]
    final: FinalStatus | None = None  # a status to publish: a final one, or awaiting/running
    touch: bool = False
    delayed: tuple[tuple[str, float], ...] = ()  # (node id, due epoch s): re-send its job delayed


class JobAction(Enum):
    EXECUTE = "execute"  # run the node, then commit
    REPLAY = "replay"  # already committed: re-send what its commit fired, re-publish a final status
    CONSUME = "consume"  # a job with nothing to run (fallback-only start node): commit its removal
    SKIP = "skip"  # nothing to do (run finished, or a job nobody expects): just acknowledge
    UNKNOWN_NODE = "unknown_node"  # the node id is not in the blueprint: bad message
    VERSION_MISMATCH = "version_mismatch"  # another blueprint version owns this run: requeue


@dataclass(frozen=True)
class JobPlan:
    action: JobAction
    node_id: str
    detail: str = ""
    fired: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeCompletion:
    """A node's outcome as the protocol needs it: plain data from an executor."""

    output: Any = UNDEFINED
    action: str | None = None
    error: str | None = None  # the failure reason, "Node 'X' failed: <message>"
    context_sets: Mapping[str, Any] = field(default_factory=dict)
    context_deletes: frozenset[str] = frozenset()
    fallback_node_id: str | None = None
    catch_error: Mapping[str, Any] | None = None
    awaiting: Mapping[str, Any] | None = None  # wait: park the node until a client resumes it
    timer_due: float | None = None  # sleep: the node continues at this epoch second
    attempts: int = 1  # attempts the node took (events report the retries)

    @property
    def failed(self) -> bool:
        return self.error is not None


# --- starting a run ---------------------------------------------------------------------


def new_run(
    bp: Blueprint, run_id: str, initial_context: Mapping[str, Any], now: float
) -> RunState:
    """A fresh run: every start node is outstanding (its job is about to be enqueued)."""
    meta = RunMeta(
        blueprint_id=bp.id,
        blueprint_version=bp.version,
        status=RUNNING if bp.start_node_ids else COMPLETED,  # nothing to run: already done
        outstanding={node_id: 1 for node_id in bp.start_node_ids},
        created_at=now,
        touched_at=now,
    )
    return RunState(run_id=run_id, context=dict(initial_context), meta=meta, version=0)


def adopt_seeded_run(
    bp: Blueprint, run_id: str, context: Mapping[str, Any], now: float
) -> RunState:
    """A run seeded without our bookkeeping (the seed document's client).

    That client enqueued every structural start node, fallback-only ones included,
    so all of them are outstanding.
    """
    meta = RunMeta(
        blueprint_id=bp.id,
        blueprint_version=bp.version,
        outstanding={node_id: 1 for node_id in bp.structural_start_ids},
        created_at=now,
        touched_at=now,
    )
    return RunState(run_id=run_id, context=dict(context), meta=meta, version=0)


# --- deciding what a job does -----------------------------------------------------------


def plan_job(state: RunState, bp: Blueprint, node_id: str) -> JobPlan:
    """What a job for `node_id` must do, given the run's stored state."""
    meta = state.meta
    if node_id not in bp.node_by_id:
        return JobPlan(JobAction.UNKNOWN_NODE, node_id, f"blueprint '{bp.id}' has no node '{node_id}'")
    if meta.blueprint_version != bp.version:
        detail = f"run has blueprint version {meta.blueprint_version!r}, worker has {bp.version!r}"
        return JobPlan(JobAction.VERSION_MISMATCH, node_id, detail)
    if node_id in meta.results and not _new_loop_pass(bp, meta, node_id):
        fired = tuple(meta.results[node_id].get("f") or ())
        return JobPlan(JobAction.REPLAY, node_id, "already committed", fired)
    if meta.status in FINAL_STATUSES:
        return JobPlan(JobAction.SKIP, node_id, f"run is {meta.status}")
    if meta.outstanding.get(node_id, 0) <= 0:
        return JobPlan(JobAction.SKIP, node_id, "no job for this node is outstanding")
    if node_id in bp.fallback_of and node_id not in _edge_targets(bp):
        return JobPlan(JobAction.CONSUME, node_id, "fallback-only node; runs only as a fallback")
    return JobPlan(JobAction.EXECUTE, node_id)


def _new_loop_pass(bp: Blueprint, meta: RunMeta, node_id: str) -> bool:
    """A loop controller keeps its last result (a redelivery replays it) and runs again
    when its body fires it once more."""
    return bp.node_by_id[node_id].uses == builtins.LOOP_CONTROLLER and meta.outstanding.get(node_id, 0) > 0


def _edge_targets(bp: Blueprint) -> set[str]:
    return {e.target for e in bp.edges}


# --- input resolution (TS §1.4) ---------------------------------------------------------


class InputPathError(ValueError):
    """A node's `inputs` names a path that no value can be read along."""


def resolve_node_input(context: Mapping[str, Any], node: Node) -> Any:
    """The node's `input`: from its `inputs` mapping, or `_inputs.<id>` as TS does.

    Raises InputPathError for a path segment outside `[A-Za-z0-9_$]` (callers fail the node).
    """
    if node.routed_input and INPUTS_PREFIX + node.id in context:
        return context[INPUTS_PREFIX + node.id]
    if isinstance(node.inputs, str):
        return resolve_value(context, node.inputs)
    if isinstance(node.inputs, Mapping):
        return {key: resolve_value(context, source) for key, source in node.inputs.items()}
    return context.get(INPUTS_PREFIX + node.id, UNDEFINED)


def resolve_value(context: Mapping[str, Any], source: str) -> Any:
    if source.startswith("_"):
        return context.get(source, UNDEFINED)
    if "." in source:
        problem = input_path_problem(source)
        if problem is not None:
            raise InputPathError(problem)
        base, path = source.split(".", 1)
        current = context.get(OUTPUTS_PREFIX + base, UNDEFINED)
        for segment in path.split("."):
            if current is None or current is UNDEFINED:
                return UNDEFINED
            current = read_property(current, segment)
        return current
    key = OUTPUTS_PREFIX + source
    return context[key] if key in context else context.get(source, UNDEFINED)




# --- committing a node's outcome --------------------------------------------------------


def commit_node(
    state: RunState,
    bp: Blueprint,
    node_id: str,
    completion: NodeCompletion,
    evaluator: Evaluator,
    now: float,
    touch_interval_s: float = 60.0,
    bare_outputs: bool = False,
) -> Commit:
    """Apply one node's outcome: record it, route, fire joins, and settle the run.

    The caller has checked with `plan_job` that the node is not committed yet.
    `bare_outputs` also writes the output under the bare node id (TS in-memory does).
    """
    meta = state.meta
    if completion.failed:
        return _commit_failure(state, node_id, completion, _decrement(meta.outstanding, node_id), now)
    if completion.awaiting is not None:
        return _commit_awaiting(state, node_id, completion.awaiting, now)
    if completion.timer_due is not None:
        return _commit_timer(state, node_id, completion.timer_due, now)
    book = _Book.of(meta)
    book.outstanding = _decrement(meta.outstanding, node_id)
    book.forget_waits(node_id)
    # Executors hand over JSON-safe outputs (`completion_from_outcome`); not walked again here.
    output = completion.output
    sets = _node_writes(node_id, completion, output, bare_outputs)
    context = _apply(state.context, sets, completion.context_deletes)
    new_iteration = book.start_loop_iteration(bp, node_id, completion)
    if new_iteration is False:
        reason = f"Loop '{node_id}' exceeded its maximum of {book.iterations[node_id] - 1} iterations"
        failed = replace(meta, outstanding=book.outstanding, status=FAILED, reason=reason, touched_at=now,
                         extra={**meta.extra, FAILED_NODE_KEY: node_id})
        return Commit(replace(state, meta=failed), {}, frozenset(), (), FinalStatus(FAILED, reason))
    fired: list[str] = []
    if meta.status in ACTIVE_STATUSES:
        for edge, target in route(bp, node_id, completion, context, evaluator):
            if not book.arrivals.get(target) or book.routes_input(bp, node_id, target):
                value = edge_input(bp, edge, output, context, evaluator)
                sets[INPUTS_PREFIX + target] = defined_or_none(value if value is output else json_safe(value))
                context[INPUTS_PREFIX + target] = sets[INPUTS_PREFIX + target]
            if target not in fired and book.join_ready(bp, node_id, target):
                fired.append(target)
        if len(bp.out_edges[node_id]) > len(fired):
            fired.extend(book.joins_completed_by(bp, node_id, fired))
    for target in fired:
        book.outstanding[target] = book.outstanding.get(target, 0) + 1
    book.results[node_id] = _result_record(completion, fired)
    if completion.fallback_node_id:
        book.results.setdefault(
            completion.fallback_node_id, {"a": completion.action, "f": [], "via": node_id}
        )
    status = book.settled_status(meta.status)
    final = _status_change(meta, status, book)
    touch = final is None and now - meta.touched_at >= touch_interval_s
    new_meta = book.into(meta, status, now if touch else meta.touched_at)
    new_state = RunState(state.run_id, context, new_meta, state.version, state.attr_sizes)
    return Commit(new_state, sets, frozenset(completion.context_deletes), tuple(fired), final, touch)


@dataclass
class _Book:
    """A working copy of the bookkeeping one commit changes."""

    outstanding: dict[str, int]
    results: dict[str, Mapping[str, Any]]
    arrivals: dict[str, tuple[str, ...]]
    awaiting: dict[str, Mapping[str, Any]]
    timers: dict[str, float]
    iterations: dict[str, int]

    @classmethod
    def of(cls, meta: RunMeta) -> _Book:
        return cls(
            dict(meta.outstanding), dict(meta.results), dict(meta.arrivals),
            dict(meta.awaiting), dict(meta.timers), dict(meta.iterations),
        )

    def into(self, meta: RunMeta, status: str, touched_at: float) -> RunMeta:
        # Spelled out rather than dataclasses.replace: this runs once per node commit.
        return RunMeta(
            meta.blueprint_id, meta.blueprint_version, status, meta.reason, self.outstanding,
            self.results, self.arrivals, meta.created_at, touched_at, self.awaiting,
            self.timers, self.iterations, meta.extra,
        )

    def forget_waits(self, node_id: str) -> None:
        self.awaiting.pop(node_id, None)
        self.timers.pop(node_id, None)

    def start_loop_iteration(self, bp: Blueprint, node_id: str, completion: NodeCompletion) -> bool | None:
        """On a loop controller's `continue`, reset its body so it runs again.

        None: not a new pass; True: a new pass began; False: past the maximum iterations.
        """
        node = bp.node_by_id[node_id]
        if node.uses != builtins.LOOP_CONTROLLER:
            return None
        # Every pass of a controller counts, so no graph of controllers can cycle forever.
        count = self.iterations.get(node_id, 0) + 1
        self.iterations[node_id] = count
        if count > builtins.max_iterations(node.params):
            return False
        if completion.action != "continue":
            return None
        targets = [e.target for e in _candidate_edges(bp, node_id) if e.action == "continue"]
        for member in builtins.loop_body(bp, node_id, targets):
            self.results.pop(member, None)
            self.arrivals.pop(member, None)
            self.forget_waits(member)
        return True

    def routes_input(self, bp: Blueprint, source: str, target: str) -> bool:
        """Whether `source` sets `target`'s input: a join takes its input from the last of its
        predecessors in blueprint order (TS in-memory), whichever arrives first here."""
        arrived = self.arrivals.get(target)
        if not arrived:
            return True
        rank = bp.node_index[source]
        return all(bp.node_index[other] <= rank for other in arrived)

    def join_ready(self, bp: Blueprint, source: str, target: str) -> bool:
        """Whether `source`'s arrival fires `target`. A join fires at most once per pass."""
        rerun = bp.node_by_id[target].uses == builtins.LOOP_CONTROLLER  # a controller runs every pass
        if target == source:
            return False  # a self-edge: the node runs once, as TS
        if (target in self.results and not rerun) or self.outstanding.get(target, 0) > 0:
            return False  # already ran or already queued: a join never fires twice
        if target in self.awaiting:
            return False
        preds = bp.predecessors[target]
        if len(preds) <= 1 or bp.node_by_id[target].join_strategy == "any":
            return True  # first arrival; later ones find it outstanding or committed
        arrived = set(self.arrivals.get(target, ())) | {source}
        if all(p in arrived or p in self.results for p in preds):
            self.arrivals.pop(target, None)
            return True
        self.arrivals[target] = tuple(p for p in preds if p in arrived)
        return False

    def joins_completed_by(self, bp: Blueprint, source: str, routed: list[str]) -> list[str]:
        """`all` joins that `source` completes without routing to them.

        As TS in-memory, an `all` join is ready once every predecessor has completed, taken
        edge or not, provided one of them routed to it. Checking here as well makes that
        independent of which predecessor finishes last.
        """
        ready: list[str] = []
        for edge in bp.out_edges[source]:
            target = edge.target
            if target in routed or target in ready or not self.arrivals.get(target):
                continue
            if target in self.results or self.outstanding.get(target, 0) > 0 or target in self.awaiting:
                continue
            preds = bp.predecessors[target]
            if all(p == source or p in self.arrivals[target] or p in self.results for p in preds):
                self.arrivals.pop(target, None)
                ready.append(target)
        return ready

    def settled_status(self, current: str) -> str:
        """Completed when nothing is outstanding; awaiting when only waits and timers remain."""
        if current not in ACTIVE_STATUSES:
            return current
        if not self.outstanding and not self.awaiting:
            return COMPLETED
        if all(node_id in self.timers for node_id in self.outstanding):
            return AWAITING
        return RUNNING


def _status_change(meta: RunMeta, status: str, book: _Book) -> FinalStatus | None:
    if status == meta.status and not (status == AWAITING and dict(book.awaiting) != dict(meta.awaiting)):
        return None
    if status == AWAITING:
        return FinalStatus(AWAITING, None, _waits(book.awaiting, book.timers))
    return FinalStatus(status)


def awaiting_details(meta: RunMeta) -> dict[str, dict[str, Any]]:
    """What each waiting node waits for: its wait details, or `{reason: timer, wakeUpAt}`."""
    return _waits(meta.awaiting, meta.timers)


def _waits(awaiting: Mapping[str, Mapping[str, Any]], timers: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    return {**{k: dict(v) for k, v in awaiting.items()},
            **{k: {"reason": "timer", "wakeUpAt": due} for k, due in timers.items()}}


def _commit_awaiting(state: RunState, node_id: str, details: Mapping[str, Any], now: float) -> Commit:
    book = _Book.of(state.meta)
    book.outstanding = _decrement(state.meta.outstanding, node_id)
    book.awaiting[node_id] = dict(details)
    status = book.settled_status(state.meta.status)
    final = _status_change(state.meta, status, book)
    meta = book.into(state.meta, status, now)
    return Commit(replace(state, meta=meta), {}, frozenset(), (), final)


def _commit_timer(state: RunState, node_id: str, due: float, now: float) -> Commit:
    book = _Book.of(state.meta)
    book.timers[node_id] = due
    status = book.settled_status(state.meta.status)
    final = _status_change(state.meta, status, book)
    meta = book.into(state.meta, status, now)
    return Commit(replace(state, meta=meta), {}, frozenset(), (), final, delayed=((node_id, due),))


def resume_node(
    state: RunState,
    bp: Blueprint,
    node_id: str | None,
    output: Any,
    action: str | None,
    evaluator: Evaluator,
    now: float,
    bare_outputs: bool = False,
) -> Commit:
    """A client resumes a waiting node: it completes with `output` and routes by `action`.

    Resuming a node that was already resumed changes nothing (no fired jobs); resuming a
    run that is not waiting there raises RunStateError.
    """
    node_id = _awaited_node(state, bp, node_id)
    completion = NodeCompletion(output=json_safe(output), action=action)
    return resume_with(state, bp, node_id, completion, evaluator, now, bare_outputs)


def resume_with(
    state: RunState,
    bp: Blueprint,
    node_id: str,
    completion: NodeCompletion,
    evaluator: Evaluator,
    now: float,
    bare_outputs: bool = False,
) -> Commit:
    """Complete the waiting `node_id` with `completion` (a wait's resume, a subflow's child end)."""
    if node_id in state.meta.results:
        return Commit(state, {}, frozenset(), (), None)
    outstanding = dict(state.meta.outstanding)
    outstanding[node_id] = outstanding.get(node_id, 0) + 1
    status = RUNNING if state.meta.status == AWAITING else state.meta.status
    waking = replace(state, meta=replace(state.meta, outstanding=outstanding, status=status))
    commit = commit_node(waking, bp, node_id, completion, evaluator, now, bare_outputs=bare_outputs)
    if commit.final is None and state.meta.status == AWAITING and commit.state.status == RUNNING:
        commit = replace(commit, final=FinalStatus(RUNNING))
    return commit


def _awaited_node(state: RunState, bp: Blueprint, node_id: str | None) -> str:
    awaiting = state.meta.awaiting
    if node_id is None:
        if len(awaiting) == 1:
            return next(iter(awaiting))
        resumed = [n.id for n in bp.nodes if n.uses == builtins.WAIT and n.id in state.meta.results]
        if not awaiting and len(resumed) == 1:
            return resumed[0]  # a repeat of the resume that already happened: harmless
        if not awaiting:
            raise RunStateError(f"run '{state.run_id}' is not awaiting (status {state.status})")
        raise RunStateError(
            f"run '{state.run_id}' awaits several nodes ({', '.join(sorted(awaiting))}): name one"
        )
    if node_id not in awaiting and node_id not in state.meta.results:
        raise RunStateError(
            f"run '{state.run_id}' is not awaiting node '{node_id}' (status {state.status})"
        )
    return node_id


def commit_chunk(state: RunState, node_id: str, completion: NodeCompletion, now: float) -> Commit:
    """A batch chunk's outcome: stored, the chunk finished; chunks route nowhere themselves."""
    outstanding = _decrement(state.meta.outstanding, node_id)
    if completion.failed:
        return _commit_failure(state, node_id, completion, outstanding, now)
    sets = {OUTPUTS_PREFIX + node_id: defined_or_none(completion.output)}
    results = {**state.meta.results, node_id: {"a": None, "f": []}}
    meta = replace(state.meta, outstanding=outstanding, results=results, status=COMPLETED, touched_at=now)
    context = _apply(state.context, sets, frozenset())
    return Commit(replace(state, context=context, meta=meta), sets, frozenset(), (), FinalStatus(COMPLETED))


def is_chunk(state: RunState) -> bool:
    return bool(state.meta.extra.get("chunk"))


def consume_job(state: RunState, node_id: str, now: float) -> Commit:
    """Remove an outstanding job that has nothing to run; may complete the run."""
    book = _Book.of(state.meta)
    book.outstanding = _decrement(state.meta.outstanding, node_id)
    status = book.settled_status(state.meta.status)
    final = _status_change(state.meta, status, book)
    return Commit(replace(state, meta=book.into(state.meta, status, now)), {}, frozenset(), (), final)


def end_run(state: RunState, status: str, reason: str | None, now: float) -> Commit:
    """Fail or cancel a run: its status becomes final and nothing new starts."""
    if state.is_final:
        return Commit(state, {}, frozenset(), (), None)
    meta = replace(state.meta, status=status, reason=reason, touched_at=now)
    return Commit(replace(state, meta=meta), {}, frozenset(), (), FinalStatus(status, reason))


def _commit_failure(
    state: RunState,
    node_id: str,
    completion: NodeCompletion,
    outstanding: dict[str, int],
    now: float,
) -> Commit:
    meta = replace(state.meta, outstanding=outstanding)
    if meta.status in FINAL_STATUSES:
        return Commit(replace(state, meta=meta), {}, frozenset(), (), None)
    meta = replace(meta, status=FAILED, reason=completion.error, touched_at=now,
                   extra={**meta.extra, FAILED_NODE_KEY: node_id})
    return Commit(replace(state, meta=meta), {}, frozenset(), (), FinalStatus(FAILED, completion.error))


def _decrement(outstanding: Mapping[str, int], node_id: str) -> dict[str, int]:
    result = dict(outstanding)
    remaining = result.get(node_id, 0) - 1
    if remaining > 0:
        result[node_id] = remaining
    else:
        result.pop(node_id, None)
    return result


def _node_writes(node_id: str, completion: NodeCompletion, output: Any, bare_outputs: bool) -> dict[str, Any]:
    sets = {k: v for k, v in completion.context_sets.items() if k not in completion.context_deletes}
    output = defined_or_none(output)
    sets[OUTPUTS_PREFIX + node_id] = output
    if bare_outputs:
        sets[node_id] = output
    if completion.fallback_node_id:
        sets[OUTPUTS_PREFIX + completion.fallback_node_id] = output
        if bare_outputs:
            sets[completion.fallback_node_id] = output
        if completion.catch_error is not None:
            sets[CATCH_ERROR_KEY] = dict(completion.catch_error)
    return sets


def _apply(
    context: Mapping[str, Any], sets: Mapping[str, Any], deletes: frozenset[str]
) -> dict[str, Any]:
    result = dict(context)
    for key in deletes:
        result.pop(key, None)
    result.update(sets)
    return result


def _result_record(completion: NodeCompletion, fired: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {"a": completion.action, "f": list(fired)}
    if completion.fallback_node_id:
        record["fb"] = completion.fallback_node_id
    return record


# --- routing (TS §4, distributed variant: no fall-through) ------------------------------


def route(
    bp: Blueprint,
    node_id: str,
    completion: NodeCompletion,
    context: Mapping[str, Any],
    evaluator: Evaluator,
) -> list[tuple[Edge, str]]:
    """The edges taken after `node_id` completed, in blueprint order, as (edge, target)."""
    candidates = _candidate_edges(bp, node_id)
    scope: dict[str, Any] | None = None

    def passes(edge: Edge) -> bool:
        nonlocal scope
        if edge.condition is None:
            return True
        if scope is None:
            scope = expression_scope(bp, context)
            scope["result"] = {"output": completion.output, "action": completion.action}
        return truthy(evaluator.evaluate(edge.condition, scope))

    if bp.node_by_id[node_id].uses == builtins.LOOP_CONTROLLER:
        conditional = [e for e in candidates if e.condition is not None and passes(e)]
        if conditional:
            return [(edge, edge.target) for edge in conditional]
    taken: list[Edge] = []
    if completion.action:
        taken = [e for e in candidates if e.action == completion.action and passes(e)]
    if not taken:
        taken = [e for e in candidates if e.action is None and passes(e)]
    return [(edge, edge.target) for edge in taken]


def candidate_edges(bp: Blueprint, node_id: str) -> list[Edge]:
    """The edges routing considers after `node_id`, in order (see `_candidate_edges`)."""
    return _candidate_edges(bp, node_id)


def _candidate_edges(bp: Blueprint, node_id: str) -> list[Edge]:
    """The node's own edges plus those of nodes it is the fallback of, de-duplicated as TS.

    TS keys edges by source-target-action-condition; a duplicate keeps the first one's
    position and the last one's edge (its transform).
    """
    edges = list(bp.out_edges[node_id])
    for primary in bp.fallback_of.get(node_id, ()):
        edges.extend(bp.out_edges[primary])
    positions: dict[tuple[Any, ...], int] = {}
    chosen: list[Edge] = []
    for edge in edges:
        key = (edge.source, edge.target, edge.action, edge.condition)
        if key in positions:
            chosen[positions[key]] = edge
        else:
            positions[key] = len(chosen)
            chosen.append(edge)
    return chosen


def edge_input(
    bp: Blueprint, edge: Edge, output: Any, context: Mapping[str, Any], evaluator: Evaluator
) -> Any:
    """The value routed to `_inputs.<target>` along `edge` (TS §4.3)."""
    source_value = output
    target = bp.node_by_id[edge.target]
    if edge.transform and isinstance(target.inputs, str):
        inputs = target.inputs
        key = inputs if inputs.startswith("_") else OUTPUTS_PREFIX + inputs
        if key in context and inputs != edge.source:
            source_value = context[key]
    if not edge.transform:
        return source_value
    return evaluator.evaluate(edge.transform, {"input": source_value, "context": expression_scope(bp, context)})


def expression_scope(bp: Blueprint, context: Mapping[str, Any]) -> dict[str, Any]:
    """The flat context an expression reads, with each completed node's output under its bare id.

    TS in-memory stores that bare copy (conditions like `route.total > 5` rely on it); the
    distributed engine does not store it (a run's item stays under 400 KB), so expressions
    see it here, the same in both.
    """
    scope = dict(context)
    for node_id in bp.node_by_id:
        key = OUTPUTS_PREFIX + node_id
        if key in context:
            scope[node_id] = context[key]
    return scope


# --- reading a run ----------------------------------------------------------------------


def outstanding_jobs(state: RunState) -> list[str]:
    """Node ids with a job queued or running: what a reconciler may have to re-enqueue."""
    return [node_id for node_id, count in state.meta.outstanding.items() if count > 0]


def public_context(state: RunState) -> dict[str, Any]:
    """The run's context as nodes and clients see it (a deep copy)."""
    return json_safe(copy.deepcopy(dict(state.context)))  # never an internal `undefined`
