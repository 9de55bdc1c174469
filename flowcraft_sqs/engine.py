"""The job engine: one message's way through the protocol, with the I/O kept outside.

    received message --parse--> Job --load (one consistent batch read)--> RunState
        --plan--> Execute | Ack | Requeue
    Execute --(node runs elsewhere: this process, or an executor process)--> NodeCompletion
        --complete--> conditional commit (retried on version conflict) --> Effects

`Effects` are what the caller must still do, in this order, before it deletes the
message: send `sends`, publish `publishes`, touch `touches`. State is written first,
successors are enqueued next, the message is deleted last (contract §4): a crash at any
point leaves the message to be redelivered, and a redelivered job finds its node
committed and replays the same routing instead of executing again.

Both the single-process `SqsAdapter` and the multiprocess receivers drive this class,
so the protocol exists once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import builtin_steps, builtins, events, protocol, run_events
from .blueprint import Blueprint
from .errors import ContextTooLarge, MalformedMessage, RunStateError, ValueNotStorable
from .messages import Job, parse_job
from .ports import Received, RunStore
from .protocol import Commit, FinalStatus, JobAction, NodeCompletion, RunState

log = logging.getLogger("flowcraft_sqs.engine")

MAX_COMMIT_ATTEMPTS = 50  # version conflicts come from parallel branches of one run; each retry is one request
VERSION_MISMATCH_RETRY_S = 30  # a job for another blueprint version goes back to the queue for this long
# A duplicate of a job already executing here waits this long and is then planned again:
# by then the first copy has committed, so the duplicate replays instead of executing twice.
DUPLICATE_RETRY_S = 2
LATEST_STATES_MAX = 2_000  # runs whose newest state is kept to commit parallel branches without conflicts
RECENTLY_SETTLED_MAX = 50_000  # committed jobs remembered against stale duplicates (~5 MB)


@dataclass(frozen=True)
class Execute:
    """Run `job.node_id` with `state` as its snapshot, then call `Engine.complete`."""

    job: Job
    state: RunState
    blueprint: Blueprint


@dataclass
class Effects:
    sends: list[Job] = field(default_factory=list)
    publishes: list[tuple[RunState, FinalStatus]] = field(default_factory=list)
    touches: list[str] = field(default_factory=list)
    delayed: list[tuple[Job, int]] = field(default_factory=list)  # (job, SQS delay in seconds)
    # True when this engine's own write committed the node; False when another delivery's
    # commit was found (then the caller must not continue the chain: the other one does).
    committed_here: bool = False

    def merge(self, other: Effects) -> None:
        self.sends.extend(other.sends)
        self.publishes.extend(other.publishes)
        self.touches.extend(other.touches)
        self.delayed.extend(other.delayed)


@dataclass
class Planned:
    """What to do with one received message."""

    received: Received | None
    job: Job | None
    execute: Execute | None = None
    effects: Effects = field(default_factory=Effects)
    requeue_after_s: int | None = None  # leave the message in the queue, visible again after this
    error: str | None = None  # why a message was dropped (logged by the caller's policy)


class Engine:
    """Plans jobs and commits their outcomes against a `RunStore`."""

    def __init__(
        self,
        blueprints: Mapping[str, Blueprint],
        store: RunStore,
        evaluator: Any,
        clock: Callable[[], float],
        touch_interval_s: float = 60.0,
        user_uses: Collection[str] = (),
        event_bus: events.EventBus | None = None,
    ) -> None:
        self.blueprints = blueprints
        self.store = store
        self.evaluator = evaluator
        self.clock = clock
        self.touch_interval_s = touch_interval_s
        # A user registry entry overrides the built-in of the same key (as TS).
        self.user_uses = frozenset(user_uses)
        # Reported synchronously; None (the default) costs one comparison per step.
        self.event_bus = event_bus
        self._executing: set[tuple[str, str]] = set()
        # Jobs this engine committed lately -> the run version their commit wrote: a copy
        # planned from an older read of the run must not execute again (it replays later).
        self._settled: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._latest: OrderedDict[str, RunState] = OrderedDict()  # run id -> newest state we wrote or saw
        self._executing_lock = threading.Lock()

    # --- intake ------------------------------------------------------------------------

    def plan_messages(self, messages: Sequence[Received]) -> list[Planned]:
        """Parse, read every run once (one batch read), and decide what each message does."""
        parsed: list[Planned] = []
        for message in messages:
            try:
                parsed.append(Planned(message, parse_job(message.body)))
            except MalformedMessage as exc:
                parsed.append(Planned(message, None, error=f"malformed message: {exc}"))
        jobs = [p.job for p in parsed if p.job is not None]
        states = self.store.load_runs(sorted({j.run_id for j in jobs})) if jobs else {}
        for item in parsed:
            if item.job is not None:
                self._plan_into(item, item.job, states.get(item.job.run_id))
        return parsed

    def plan_job(self, job: Job) -> Planned:
        """The same decision for a single job (Lambda, `handle_job`)."""
        state = self.store.load_runs([job.run_id]).get(job.run_id)
        planned = Planned(None, job)
        self._plan_into(planned, job, state)
        return planned

    def _plan_into(self, item: Planned, job: Job, state: RunState | None) -> None:
        bp = self.blueprints.get(job.blueprint_id)
        if state is None:
            item.error = f"run '{job.run_id}' has no state in the contexts table (job for node '{job.node_id}')"
            return
        if bp is None:
            reason = f"Blueprint with ID '{job.blueprint_id}' not found in the worker's runtime registry."
            item.effects = self._end(state, protocol.FAILED, reason)
            item.error = reason
            return
        state = self._adopt(state, bp)
        plan = protocol.plan_job(state, bp, job.node_id)
        self._apply_plan(item, job, state, bp, plan)

    def _adopt(self, state: RunState, bp: Blueprint) -> RunState:
        """A run seeded by another client has no bookkeeping yet: start it as that client did."""
        if state.version == 0 and not state.meta.blueprint_id:
            adopted = protocol.adopt_seeded_run(bp, state.run_id, state.context, self.clock())
            return RunState(state.run_id, adopted.context, adopted.meta, 0, state.attr_sizes)
        return state

    def _apply_plan(
        self, item: Planned, job: Job, state: RunState, bp: Blueprint, plan: protocol.JobPlan
    ) -> None:
        action = plan.action
        if action is JobAction.EXECUTE and self.event_bus is not None:
            self._report_start(job, state, bp)
        if action is JobAction.EXECUTE and bp.node_by_id[job.node_id].input_error is not None:
            failure = builtin_steps.failed(bp.node_by_id[job.node_id], str(bp.node_by_id[job.node_id].input_error))
            item.effects = self._write_until_done(job, state, bp, failure)
        elif action is JobAction.EXECUTE and self._is_builtin(bp, job.node_id) and not protocol.is_chunk(state):
            item.effects = self._run_builtin(job, state, bp)
        elif action is JobAction.EXECUTE:
            if self._claim(job.key, state.version):
                item.execute = Execute(job, state, bp)
            else:
                item.requeue_after_s = DUPLICATE_RETRY_S
        elif action is JobAction.REPLAY:
            item.effects = self._replay(state, bp, plan)
        elif action is JobAction.CONSUME:
            item.effects = self._write_until_done(job, state, bp, None)
        elif action is JobAction.VERSION_MISMATCH:
            item.requeue_after_s = VERSION_MISMATCH_RETRY_S
            log.warning("run %s node %s: %s; returned to the queue", job.run_id, job.node_id, plan.detail)
        elif action is JobAction.UNKNOWN_NODE:
            item.error = f"run '{job.run_id}': {plan.detail}"
        # SKIP: acknowledged, nothing to do.

    def _is_builtin(self, bp: Blueprint, node_id: str) -> bool:
        uses = bp.node_by_id[node_id].uses
        return uses in builtins.PROTOCOL_BUILTINS and uses not in self.user_uses

    def _run_builtin(self, job: Job, state: RunState, bp: Blueprint) -> Effects:
        """Carry out wait, sleep, loop-controller or subflow: no executor, no worker held."""
        node = bp.node_by_id[job.node_id]
        step = {
            builtins.WAIT: self._wait,
            builtins.SLEEP: self._sleep,
            builtins.LOOP_CONTROLLER: self._loop_controller,
            builtins.SUBFLOW: self._subflow,
            builtins.BATCH_SCATTER: self._scatter,
            builtins.BATCH_GATHER: self._gather,
        }[node.uses]
        completion, effects = step(job, state, bp)
        if completion is None:
            return effects
        committed = self._write_until_done(job, state, bp, completion)
        committed.merge(effects)  # after the commit: e.g. chunk jobs only once the scatter is stored
        return committed

    def _scatter(self, job: Job, state: RunState, bp: Blueprint) -> tuple[NodeCompletion | None, Effects]:
        node = bp.node_by_id[job.node_id]
        chunks = builtin_steps.scatter_chunks(state, node)
        if isinstance(chunks, NodeCompletion):
            return chunks, Effects()
        gather = str(node.params.get("gatherNodeId"))
        size = builtins.chunk_size(node.params)
        jobs = [self._create_chunk(state, bp, node.id, gather, i, chunk, i * size) for i, chunk in enumerate(chunks)]
        if self.event_bus is not None:
            self._emit_all([run_events.batch_started(state.run_id, bp, node.id, gather, sum(map(len, chunks)))])
        return builtin_steps.scatter_completion(node, chunks), Effects(sends=jobs)

    def _create_chunk(self, state: RunState, bp: Blueprint, scatter: str, gather: str,
                      index: int, items: list[Any], offset: int) -> Job:
        chunk_id = builtins.chunk_run_id(state.run_id, scatter, index)
        meta = protocol.RunMeta(
            blueprint_id=bp.id, blueprint_version=bp.version, outstanding={scatter: 1},
            created_at=self.clock(), touched_at=self.clock(),
            extra={"chunk": True, "parent": {"run": state.run_id, "node": gather, "bp": bp.id}},
        )
        context = {builtins.CHUNK_ITEMS_KEY: items, builtins.CHUNK_OFFSET_KEY: offset}
        with contextlib.suppress(RunStateError):
            self.store.create_run(RunState(chunk_id, context, meta))  # an earlier delivery may have
        return Job(chunk_id, bp.id, scatter)

    def _gather(self, job: Job, state: RunState, bp: Blueprint) -> tuple[NodeCompletion | None, Effects]:
        node = bp.node_by_id[job.node_id]
        scatter = builtins.scatter_for(bp, node.id)
        info = state.context.get(f"{protocol.OUTPUTS_PREFIX}{scatter}")
        if scatter is None or not isinstance(info, Mapping):
            return builtin_steps.no_scatter_ran(node), Effects()
        ids = [builtins.chunk_run_id(state.run_id, scatter, i) for i in range(int(info.get("chunks", 0)))]
        chunks = self.store.load_runs(ids) if ids else {}
        if any(chunk is None or not chunk.is_final for chunk in chunks.values()):
            return None, Effects()  # the last chunk to finish re-sends this job
        for chunk in chunks.values():
            if chunk is not None and chunk.status != protocol.COMPLETED:
                return NodeCompletion(error=chunk.meta.reason or f"batch chunk {chunk.run_id} {chunk.status}"), Effects()
        results: list[Any] = []
        for chunk_id in ids:
            chunk = chunks[chunk_id]
            assert chunk is not None
            results.extend(chunk.context.get(f"{protocol.OUTPUTS_PREFIX}{scatter}") or [])
        if self.event_bus is not None:
            self._emit_all([run_events.batch_finished(state.run_id, bp, scatter, node.id, results)])
        return builtin_steps.gather_completion(node, results), Effects()

    def _wait(self, job: Job, state: RunState, bp: Blueprint) -> tuple[NodeCompletion | None, Effects]:
        return builtin_steps.wait_step(bp.node_by_id[job.node_id]), Effects()

    def _loop_controller(self, job: Job, state: RunState, bp: Blueprint) -> tuple[NodeCompletion | None, Effects]:
        return builtin_steps.loop_step(bp, bp.node_by_id[job.node_id], state.context, self.evaluator), Effects()

    def _sleep(self, job: Job, state: RunState, bp: Blueprint) -> tuple[NodeCompletion | None, Effects]:
        completion = builtin_steps.sleep_step(state, bp.node_by_id[job.node_id], self.clock())
        if completion is None:  # a delayed message came early (SQS delays at most 15 minutes)
            return None, Effects(delayed=[(job, _delay_s(state.meta.timers[job.node_id], self.clock()))])
        return completion, Effects()

    def _subflow(self, job: Job, state: RunState, bp: Blueprint) -> tuple[NodeCompletion | None, Effects]:
        node = bp.node_by_id[job.node_id]
        start = builtin_steps.subflow_start(state, node, self.blueprints, int(state.meta.extra.get("depth", 0)))
        if isinstance(start, NodeCompletion):
            return start, Effects()
        child = self.store.load_runs([start.run_id]).get(start.run_id)
        if child is None or (not child.is_final and not child.meta.results):
            # Not started, or started by a delivery that died before its start jobs went out:
            # (re-)sending them is safe, a duplicate start job replays.
            return None, self._start_child(state, bp, node, start)
        if not child.is_final:
            return None, Effects()  # running or awaiting: the child's end re-sends this job
        completion = builtin_steps.subflow_step(node, start.blueprint, child.status, child.meta.reason, child.context, {})
        return completion, Effects()

    def _start_child(self, state: RunState, bp: Blueprint, node: Any, start: builtin_steps.ChildStart) -> Effects:
        child = protocol.new_run(start.blueprint, start.run_id, start.context, self.clock())
        parent = {"run": state.run_id, "node": node.id, "bp": bp.id}
        depth = int(state.meta.extra.get("depth", 0)) + 1
        child = replace(child, meta=replace(child.meta, extra={"parent": parent, "depth": depth}))
        with contextlib.suppress(RunStateError):
            self.store.create_run(child)  # an earlier delivery may have created it already
        return Effects(sends=[Job(start.run_id, start.blueprint.id, s) for s in start.blueprint.start_node_ids])

    def _claim(self, key: tuple[str, str], read_version: int) -> bool:
        """Mark a job as executing here; False if a copy of it already is, or if this
        engine committed it after the read the plan was made from."""
        with self._executing_lock:
            if key in self._executing or self._settled.get(key, -1) > read_version:
                return False
            self._executing.add(key)
            return True

    def _settle(self, key: tuple[str, str], written_version: int) -> None:
        with self._executing_lock:
            self._settled[key] = written_version
            self._settled.move_to_end(key)
            while len(self._settled) > RECENTLY_SETTLED_MAX:
                self._settled.popitem(last=False)

    def release(self, execute: Execute) -> None:
        """Forget an execution that ends without a commit (its executor died: redelivery)."""
        with self._executing_lock:
            self._executing.discard(execute.job.key)

    def claim_continuation(self, execute: Execute) -> bool:
        """Claim a job continued locally (not received from the queue)."""
        return self._claim(execute.job.key, execute.state.version)

    def _replay(self, state: RunState, bp: Blueprint, plan: protocol.JobPlan) -> Effects:
        """A committed node's job again: re-send what its commit fired, re-publish the end."""
        effects = Effects()
        if not state.is_final:
            effects.sends = [Job(state.run_id, bp.id, target) for target in plan.fired
                             if target not in state.meta.results]
        else:
            if not protocol.is_chunk(state):
                effects.publishes.append((state, FinalStatus(state.status, state.meta.reason)))
            effects.sends.extend(_parent_jobs(state))
        return effects

    # --- completion --------------------------------------------------------------------

    def complete(self, execute: Execute, completion: NodeCompletion) -> tuple[Effects, RunState]:
        """Commit a node's outcome; returns the effects still to perform and the new state."""
        try:
            effects, state = self._commit_loop(execute.job, execute.state, execute.blueprint, completion)
        finally:
            self.release(execute)
        if effects.committed_here:
            self._settle(execute.job.key, state.version)
        return effects, state

    def _write_until_done(
        self, job: Job, state: RunState, bp: Blueprint, completion: NodeCompletion | None
    ) -> Effects:
        effects, _ = self._commit_loop(job, state, bp, completion)
        return effects

    def _commit_loop(
        self, job: Job, state: RunState, bp: Blueprint, completion: NodeCompletion | None
    ) -> tuple[Effects, RunState]:
        state = self._freshest(state)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            plan = protocol.plan_job(state, bp, job.node_id)
            if plan.action is JobAction.REPLAY:
                return self._replay(state, bp, plan), state
            if plan.action not in (JobAction.EXECUTE, JobAction.CONSUME):
                return Effects(), state  # run ended meanwhile, or the job is no longer expected
            commit = self._build_commit(state, bp, job.node_id, completion)
            attempt = self._write(commit, state)
            if attempt.written is not None:
                self._remember(attempt.written)
                if self.event_bus is not None and completion is not None:
                    self._report_commit(job.node_id, completion, attempt.commit, bp)
                return self._effects_of(attempt.commit, attempt.written, bp), attempt.written
            state = self._adopt(attempt.current or self._reload(job.run_id), bp)
            self._remember(state)
        raise RuntimeError(f"run '{job.run_id}': gave up after {MAX_COMMIT_ATTEMPTS} version conflicts")

    def _freshest(self, state: RunState) -> RunState:
        """The newest state of the run this engine knows: its own last write, if newer.

        Parallel branches of one run were planned from one read; committing each from the
        state the previous commit wrote avoids a version conflict (a refused write) each.
        """
        with self._executing_lock:
            known = self._latest.get(state.run_id)
        return known if known is not None and known.version > state.version else state

    def _remember(self, state: RunState) -> None:
        with self._executing_lock:
            self._latest[state.run_id] = state
            self._latest.move_to_end(state.run_id)
            while len(self._latest) > LATEST_STATES_MAX:
                self._latest.popitem(last=False)

    def _build_commit(
        self, state: RunState, bp: Blueprint, node_id: str, completion: NodeCompletion | None
    ) -> Commit:
        now = self.clock()
        if completion is None:
            return protocol.consume_job(state, node_id, now)
        if protocol.is_chunk(state):
            return protocol.commit_chunk(state, node_id, completion, now)
        return protocol.commit_node(
            state, bp, node_id, completion, self.evaluator, now, self.touch_interval_s
        )

    def _write(self, commit: Commit, state: RunState) -> _WriteAttempt:
        """Write `commit`; if its values cannot be stored, fail the run instead (state intact)."""
        try:
            result = self.store.write(commit, state.version)
        except (ContextTooLarge, ValueNotStorable) as exc:
            log.error("run %s: %s", state.run_id, exc)
            commit = protocol.end_run(state, protocol.FAILED, str(exc), self.clock())
            result = self.store.write(commit, state.version)
        if result.ok:
            return _WriteAttempt(commit, _bumped(commit.state, state.version, result.sizes), None)
        return _WriteAttempt(commit, None, result.current)

    def _reload(self, run_id: str) -> RunState:
        fresh = self.store.load_runs([run_id]).get(run_id)
        if fresh is None:
            raise RuntimeError(f"run '{run_id}' disappeared from the contexts table")
        return fresh

    def _effects_of(self, commit: Commit, written: RunState, bp: Blueprint) -> Effects:
        effects = Effects(committed_here=True)
        effects.sends = [Job(written.run_id, bp.id, target) for target in commit.fired]
        now = self.clock()
        effects.delayed = [(Job(written.run_id, bp.id, node_id), _delay_s(due, now)) for node_id, due in commit.delayed]
        if commit.final is not None:
            if not protocol.is_chunk(written):
                effects.publishes.append((written, commit.final))
            effects.sends.extend(_parent_jobs(written))
        if commit.touch:
            effects.touches.append(written.run_id)
        return effects

    # --- run-level changes -------------------------------------------------------------

    def _end(self, state: RunState, status: str, reason: str) -> Effects:
        """Fail or cancel a run (retrying conflicts); the final status is published once."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            if state.is_final:
                return Effects(publishes=[(state, FinalStatus(state.status, state.meta.reason))],
                               sends=_parent_jobs(state))
            commit = protocol.end_run(state, status, reason, self.clock())
            result = self.store.write(commit, state.version)
            if result.ok:
                written = _bumped(commit.state, state.version)
                if self.event_bus is not None:
                    self._emit_all(run_events.finished(state.run_id, state.meta.blueprint_id, status, reason))
                return Effects(publishes=[(written, FinalStatus(status, reason))], sends=_parent_jobs(written))
            state = result.current or self._reload(state.run_id)
        raise RuntimeError(f"run '{state.run_id}': gave up ending the run after version conflicts")

    def resume(self, run_id: str, node_id: str | None, action: str | None, output: Any) -> Effects:
        """Complete a waiting node with `output`, routed by `action`; RunStateError if not waiting."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            state = self._reload(run_id)
            bp = self.blueprints.get(state.meta.blueprint_id)
            if bp is None:
                raise RunStateError(f"run '{run_id}': blueprint '{state.meta.blueprint_id}' is not registered here")
            commit = protocol.resume_node(state, bp, node_id, output, action, self.evaluator, self.clock())
            if commit.state is state:
                return Effects()  # resumed before: nothing to do
            result = self.store.write(commit, state.version)
            if result.ok:
                if self.event_bus is not None:
                    self._emit_all([run_events.workflow_event(events.WORKFLOW_RESUME, run_id, bp)])
                    resumed = node_id or next(iter(state.meta.awaiting), "")
                    self._report_commit(resumed, NodeCompletion(output=output, action=action), commit, bp)
                return self._effects_of(commit, _bumped(commit.state, state.version), bp)
        raise RuntimeError(f"run '{run_id}': gave up resuming after version conflicts")

    # --- events ------------------------------------------------------------------------

    def _emit_all(self, found: Sequence[run_events.Event]) -> None:
        for type_, payload in found:
            events.emit_sync(self.event_bus, type_, payload)

    def _report_start(self, job: Job, state: RunState, bp: Blueprint) -> None:
        found = []
        if not state.meta.results and bp.start_node_ids and job.node_id == bp.start_node_ids[0] and not protocol.is_chunk(state):
            found.append(run_events.workflow_event(events.WORKFLOW_START, job.run_id, bp))
        node_input = run_events.readable_input(state.context, bp.node_by_id[job.node_id])
        found.append(run_events.node_started(job.run_id, bp, job.node_id, node_input))
        self._emit_all(found)

    def _report_commit(self, node_id: str, completion: NodeCompletion, commit: Commit, bp: Blueprint) -> None:
        run_id = commit.state.run_id
        found = run_events.node_settled(run_id, bp, node_id, completion, commit, self.evaluator)
        if commit.final is not None and not protocol.is_chunk(commit.state):
            found.extend(run_events.finished(run_id, bp, commit.final.status, commit.final.reason))
        self._emit_all(found)

    def end_run(self, run_id: str, status: str, reason: str) -> Effects:
        state = self.store.load_runs([run_id]).get(run_id)
        if state is None:
            raise KeyError(run_id)
        bp = self.blueprints.get(state.meta.blueprint_id) if state.meta.blueprint_id else None
        if bp is not None:
            state = self._adopt(state, bp)
        return self._end(state, status, reason)


@dataclass(frozen=True)
class _WriteAttempt:
    commit: Commit  # what was written (a run failure replaces an unstorable node result)
    written: RunState | None  # the state after a successful write
    current: RunState | None  # the stored state after a version conflict, when the store returned it


def _delay_s(due: float, now: float) -> int:
    """SQS delay for a timer: whole seconds, rounded up, at most SQS's 15 minutes."""
    return max(0, min(builtins.SQS_MAX_DELAY_S, math.ceil(due - now)))


def _parent_jobs(state: RunState) -> list[Job]:
    """A finished subflow run re-sends its parent's subflow job, which then collects it."""
    parent = state.meta.extra.get("parent") if state.is_final else None
    if not isinstance(parent, Mapping):
        return []
    return [Job(str(parent["run"]), str(parent["bp"]), str(parent["node"]))]


def _bumped(state: RunState, old_version: int, sizes: Mapping[str, int] | None = None) -> RunState:
    attr_sizes = state.attr_sizes if sizes is None else sizes
    return RunState(state.run_id, state.context, state.meta, old_version + 1, attr_sizes)


def is_seeded_without_meta(state: RunState) -> bool:
    return state.version == 0 and not state.meta.blueprint_id


def perform(effects: Effects, queue: Any, statuses: Any, clock: Callable[[], float]) -> None:
    """Carry out a message's effects in the durable order: send, then publish, then touch.

    The caller deletes the message only after this returns.
    """
    if effects.sends:
        queue.send_jobs(effects.sends)
    for delay in sorted({d for _, d in effects.delayed}):
        queue.send_jobs([job for job, d in effects.delayed if d == delay], delay)
    for state, final in effects.publishes:
        context = protocol.public_context(state) if final.status == protocol.COMPLETED else None
        if final.details is not None:
            statuses.publish(state.run_id, final.status, final.reason, context, clock(), awaiting=final.details)
        else:
            statuses.publish(state.run_id, final.status, final.reason, context, clock())
    for run_id in effects.touches:
        statuses.touch(run_id, clock())
