"""`FlowRuntime`: runs a whole workflow in this process, on the same protocol as the fleet.

It drives `protocol` exactly as the distributed worker does — plan, execute, commit,
enqueue what the commit fired — with an in-memory queue instead of SQS, so a workflow
behaves the same here and across machines (distributed routing, set-based joins,
completion when nothing is outstanding). Built-ins are the steps of `builtin_steps`,
shared with the engine. As TS in-memory does, each node's output is also written under
its bare node id.

A run that waits (`wait`, a `sleep` timer, a subflow whose child waits) returns
`awaiting`; `resume` continues a wait, and `TimerScheduler` resumes due timers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import builtin_steps, builtins, events, protocol, run_events
from .analysis import find_cycles
from .blueprint import Blueprint, load_blueprint
from .completion import run_batch_chunk, run_node
from .errors import BlueprintError, RunStateError
from .expressions import DefaultEvaluator
from .nodes import is_cancelled
from .protocol import JobAction, NodeCompletion, RunState


@dataclass(frozen=True)
class WorkflowError:
    message: str
    node_id: str | None = None
    blueprint_id: str | None = None


@dataclass(frozen=True)
class WorkflowResult:
    status: str
    context: dict[str, Any]
    errors: list[WorkflowError] = field(default_factory=list)
    run_id: str = ""
    reason: str | None = None
    awaiting: dict[str, Any] = field(default_factory=dict)  # node id -> what it waits for
    state: RunState | None = field(default=None, repr=False)  # to resume an awaiting run
    # Awaiting subflow children (node id -> the child's result) and gathered batches not yet
    # collected: what a resumed run continues from.
    subflows: dict[str, WorkflowResult] = field(default_factory=dict, repr=False, compare=False)
    batches: dict[str, list[Any]] = field(default_factory=dict, repr=False, compare=False)


class FlowRuntime:
    """Runs blueprints in-process: `await runtime.run(bp, ctx)` or `runtime.run_sync(bp, ctx)`."""

    def __init__(
        self,
        registry: Mapping[str, Any] | None = None,
        blueprints: Mapping[str, Any] | None = None,
        dependencies: Mapping[str, Any] | None = None,
        evaluator: Any = None,
        middleware: Sequence[Any] = (),
        logger: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        event_bus: events.EventBus | None = None,
    ) -> None:
        # The user's implementations; one of them overrides the built-in of the same key (as TS).
        self.user_registry = dict(registry or {})
        self.registry = {**builtins.builtin_registry(), **self.user_registry}
        self.evaluator = evaluator or DefaultEvaluator()
        self.blueprints = {
            key: load_blueprint(value, blueprint_id=key) for key, value in (blueprints or {}).items()
        }
        self.dependencies = dict(dependencies or {})
        self.middleware = list(middleware)
        self.logger = logger if logger is not None else logging.getLogger("flowcraft_sqs.runtime")
        self.event_bus = event_bus
        self._clock = clock  # epoch seconds: sleep timers' `wakeUpAt` read as the engine's
        self._sleep = sleep  # retry delays
        self.scheduler = TimerScheduler(self, clock)

    def load(self, blueprint: Blueprint | Mapping[str, Any] | str) -> Blueprint:
        if isinstance(blueprint, str) and blueprint in self.blueprints:
            return self.blueprints[blueprint]
        return load_blueprint(blueprint, registry=self.user_registry, evaluator=self.evaluator)

    def run_sync(self, blueprint: Any, initial_context: Mapping[str, Any] | None = None, **kw: Any) -> WorkflowResult:
        return asyncio.run(self.run(blueprint, initial_context, **kw))

    async def run(
        self,
        blueprint: Blueprint | Mapping[str, Any] | str,
        initial_context: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        signal: Any = None,
        strict: bool = False,
        concurrency: int | None = None,
        _depth: int = 0,
    ) -> WorkflowResult:
        """Run to the end, or until only waits remain. `strict` refuses a graph with cycles
        (as TS); `concurrency` bounds how many nodes execute at once (default: no bound)."""
        bp = self.load(blueprint)
        if strict:
            _refuse_cycles(bp)
        state = protocol.new_run(bp, run_id or uuid.uuid4().hex, initial_context or {}, self._clock())
        if _depth:
            state = replace(state, meta=replace(state.meta, extra={"depth": _depth}))
        run = _InProcessRun(self, bp, state, signal, concurrency=concurrency)
        # Upstream reports both at the start of every run.
        await run.emit(*run_events.workflow_event(events.WORKFLOW_START, state.run_id, bp))
        await run.emit(*run_events.workflow_event(events.WORKFLOW_RESUME, state.run_id, bp))
        return await run.drive()

    async def resume(
        self,
        blueprint: Blueprint | Mapping[str, Any] | str,
        result: WorkflowResult,
        *,
        node_id: str | None = None,
        output: Any = None,
        action: str | None = None,
        signal: Any = None,
    ) -> WorkflowResult:
        """Continue an `awaiting` run from its waiting node, routed by `action` (FIX: TS ignores it).

        A subflow node waiting on its child resumes the child (naming the child's node, or
        the subflow node, or none when one node waits), and completes when the child does.
        """
        state = _resumable(result)
        bp = self.load(blueprint)
        run = _InProcessRun(self, bp, state, signal, result)
        await run.emit(*run_events.workflow_event(events.WORKFLOW_RESUME, state.run_id, bp))
        subflow = _awaited_subflow(state, result, node_id)
        if subflow is not None:
            return await run.resume_subflow(subflow, None if node_id == subflow else node_id, output, action)
        completion = NodeCompletion(output=output, action=action)
        commit = protocol.resume_node(state, bp, node_id, output, action, self.evaluator, self._clock(),
                                      bare_outputs=True)
        return await run.continue_after(node_id or _only_awaited(state), completion, commit)

    async def resume_timers(self, blueprint: Blueprint | Mapping[str, Any] | str, result: WorkflowResult,
                            signal: Any = None) -> WorkflowResult:
        """Continue the run's sleeps whose time has come; an awaiting run stays so until then."""
        state = _resumable(result)
        if not timers_due(result, self._clock()):
            return result
        bp = self.load(blueprint)
        run = _InProcessRun(self, bp, state, signal, result)
        await run.emit(*run_events.workflow_event(events.WORKFLOW_RESUME, state.run_id, bp))
        due = builtin_steps.due_timers(state, self._clock())
        return await (run.drive(due) if due else run.wake_children())

    def resume_sync(self, blueprint: Any, result: WorkflowResult, **kw: Any) -> WorkflowResult:
        return asyncio.run(self.resume(blueprint, result, **kw))


def _refuse_cycles(bp: Blueprint) -> None:
    cycles = find_cycles(bp)
    if cycles:
        shown = ", ".join(" -> ".join(cycle) for cycle in cycles)
        raise BlueprintError(bp.id, [f"Cycles are not allowed in strict mode: {shown}"])


def _resumable(result: WorkflowResult) -> RunState:
    if result.state is None:
        raise RunStateError(f"run '{result.run_id}' has no state to resume")
    return result.state


def has_timers(result: WorkflowResult) -> bool:
    """Whether the run, or a subflow child it waits on, sleeps on a timer."""
    if result.state is None or result.state.is_final:
        return False
    return bool(result.state.meta.timers) or any(has_timers(child) for child in result.subflows.values())


def timers_due(result: WorkflowResult, now: float) -> bool:
    """Whether a timer of the run, or of a subflow child it waits on, is due at `now`."""
    if result.state is None or result.state.is_final:
        return False
    if builtin_steps.due_timers(result.state, now):
        return True
    return any(timers_due(child, now) for child in result.subflows.values())


def _only_awaited(state: RunState) -> str:
    return next(iter(state.meta.awaiting), "")


def _awaited_subflow(state: RunState, result: WorkflowResult, node_id: str | None) -> str | None:
    """The subflow node a resume goes through: named, waiting alone, or waiting on `node_id`."""
    waiting = [n for n in state.meta.awaiting if n in result.subflows]
    if node_id in waiting:
        return node_id
    if node_id is None:
        return waiting[0] if len(waiting) == 1 and len(state.meta.awaiting) == 1 else None
    for subflow in waiting:
        child = result.subflows[subflow]
        if child.state is not None and (node_id in child.state.meta.awaiting or _awaited_subflow(child.state, child, node_id)):
            return subflow
    return None


class TimerScheduler:
    """Resumes in-process runs whose sleep timers are due (upstream's `runtime.scheduler`).

    A run that ends awaiting a timer is registered here by the runtime. `resume_due()` wakes
    every run whose time has come, by the injected clock; `run()` polls until stopped.
    """

    def __init__(self, runtime: FlowRuntime, clock: Callable[[], float]) -> None:
        self.runtime = runtime
        self.clock = clock
        self.pending: dict[str, tuple[Blueprint, WorkflowResult]] = {}
        self.results: dict[str, WorkflowResult] = {}  # run id -> its latest result
        self._stop = False

    def add(self, bp: Blueprint, result: WorkflowResult) -> None:
        """Track the run's latest result; it stays pending while it sleeps on a timer."""
        self.results[result.run_id] = result
        if has_timers(result):
            self.pending[result.run_id] = (bp, result)
        else:
            self.pending.pop(result.run_id, None)

    async def resume_due(self) -> list[WorkflowResult]:
        """Resume each run with a due timer once; returns their new results."""
        now = self.clock()
        woken: list[WorkflowResult] = []
        for run_id, (bp, result) in list(self.pending.items()):
            if timers_due(result, now):
                del self.pending[run_id]
                woken.append(await self.runtime.resume_timers(bp, result))
        for result in woken:
            self.results[result.run_id] = result
        return woken

    async def run(self, poll_s: float = 1.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                  until_idle: bool = False) -> None:
        """Poll every `poll_s` (through `sleep`) until `stop()`, or until nothing is pending."""
        self._stop = False
        while not self._stop and not (until_idle and not self.pending):
            await self.resume_due()
            await sleep(poll_s)

    def stop(self) -> None:
        self._stop = True


class _InProcessRun:
    """One run's loop: start every outstanding job, commit each as it finishes."""

    def __init__(self, runtime: FlowRuntime, bp: Blueprint, state: RunState, signal: Any,
                 carried: WorkflowResult | None = None, concurrency: int | None = None) -> None:
        self.rt = runtime
        self.slots = asyncio.Semaphore(concurrency) if concurrency else None
        self.bp = bp
        self.state = state
        self.signal = signal
        self.tasks: dict[asyncio.Task[Any], str] = {}
        self.batches: dict[str, list[Any]] = dict(carried.batches) if carried else {}
        self.subflows: dict[str, WorkflowResult] = dict(carried.subflows) if carried else {}

    @property
    def depth(self) -> int:
        """How many subflows deep this run is."""
        return int(self.state.meta.extra.get("depth", 0))

    async def drive(self, start: list[str] | None = None) -> WorkflowResult:
        for node_id in protocol.outstanding_jobs(self.state) if start is None else start:
            self._start(node_id)
        while self.tasks:
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                node_id = self.tasks.pop(task)
                await self._commit(node_id, task.result())
            if is_cancelled(self.signal) and not self.state.is_final:
                self._apply(protocol.end_run(self.state, protocol.CANCELLED, "Workflow cancelled", self.rt._clock()))
        result = self._result()
        if self.depth == 0 and (has_timers(result) or result.run_id in self.rt.scheduler.pending):
            self.rt.scheduler.add(self.bp, result)  # a subflow child's timers wake through its parent
        for event in run_events.finished(result.run_id, self.bp, result.status, result.reason):
            await self.emit(*event)
        return result

    async def continue_after(self, node_id: str, completion: NodeCompletion, commit: protocol.Commit) -> WorkflowResult:
        """Go on from a commit made outside the loop (a resume): report it, start what it fired."""
        self._apply(commit)
        await self.report_commit(node_id, completion, commit)
        return await self.drive(list(commit.fired))

    async def resume_subflow(self, node_id: str, child_node: str | None, output: Any, action: str | None) -> WorkflowResult:
        """Resume the child a subflow node waits on; the node completes, fails or waits with it."""
        child_bp = self._child_blueprint(node_id)
        child = await self.rt.resume(child_bp, self.subflows.pop(node_id), node_id=child_node, output=output,
                                     action=action, signal=self.signal)
        return await self._after_child(node_id, child_bp, child)

    async def wake_children(self) -> WorkflowResult:
        """Resume the due timers of the subflow children this run waits on."""
        for node_id in [n for n, child in self.subflows.items() if timers_due(child, self.rt._clock())]:
            child_bp = self._child_blueprint(node_id)
            child = await self.rt.resume_timers(child_bp, self.subflows.pop(node_id), signal=self.signal)
            result = await self._after_child(node_id, child_bp, child)
            if result.status != protocol.AWAITING:
                return result
        return await self.drive([])

    def _child_blueprint(self, node_id: str) -> Blueprint:
        return self.rt.load(str(self.bp.node_by_id[node_id].params.get("blueprintId")))

    async def _after_child(self, node_id: str, child_bp: Blueprint, child: WorkflowResult) -> WorkflowResult:
        completion = self._subflow_outcome(self.bp.node_by_id[node_id], child_bp, child)
        assert completion is not None  # a resumed in-process child always ends in a status
        if completion.awaiting is not None:
            self.subflows[node_id] = child
            meta = replace(self.state.meta, awaiting={**self.state.meta.awaiting, node_id: completion.awaiting})
            self.state = replace(self.state, meta=meta)
            return await self.drive([])
        commit = protocol.resume_with(self.state, self.bp, node_id, completion, self.rt.evaluator,
                                      self.rt._clock(), bare_outputs=True)
        return await self.continue_after(node_id, completion, commit)

    async def emit(self, type_: str, payload: Mapping[str, Any]) -> None:
        if self.rt.event_bus is not None:
            await events.emit(self.rt.event_bus, type_, payload)

    async def report_commit(self, node_id: str, completion: NodeCompletion, commit: protocol.Commit) -> None:
        if self.rt.event_bus is None:
            return
        for event in run_events.node_settled(self.state.run_id, self.bp, node_id, completion, commit, self.rt.evaluator):
            await self.emit(*event)

    def _start(self, node_id: str) -> None:
        plan = protocol.plan_job(self.state, self.bp, node_id)
        if plan.action is JobAction.CONSUME:
            self._apply(protocol.consume_job(self.state, node_id, self.rt._clock()))
            return
        if plan.action is not JobAction.EXECUTE or is_cancelled(self.signal):
            return
        node = self.bp.node_by_id[node_id]
        uses = node.uses if node.uses not in self.rt.user_registry else None
        task = asyncio.ensure_future(self._started(node_id, uses))
        self.tasks[task] = node_id

    async def _started(self, node_id: str, builtin: str | None) -> NodeCompletion:
        if self.rt.event_bus is not None:
            node_input = run_events.readable_input(self.state.context, self.bp.node_by_id[node_id])
            await self.emit(*run_events.node_started(self.state.run_id, self.bp, node_id, node_input))
        try:
            if self.slots is None:
                return await self._execute(node_id, builtin)
            async with self.slots:
                return await self._execute(node_id, builtin)
        except protocol.InputPathError as exc:
            return builtin_steps.failed(self.bp.node_by_id[node_id], str(exc))

    async def _execute(self, node_id: str, builtin: str | None = None) -> NodeCompletion:
        node = self.bp.node_by_id[node_id]
        if builtin == builtins.WAIT:
            return builtin_steps.wait_step(node)
        if builtin == builtins.LOOP_CONTROLLER:
            return builtin_steps.loop_step(self.bp, node, self.state.context, self.rt.evaluator)
        if builtin == builtins.SLEEP:
            # Woken early (never by the scheduler, which wakes due timers only): wait on.
            return builtin_steps.sleep_step(self.state, node, self.rt._clock()) or NodeCompletion(
                timer_due=self.state.meta.timers[node_id])
        if builtin == builtins.SUBFLOW:
            return await self._subflow(node_id)
        if builtin == builtins.BATCH_SCATTER:
            return await self._scatter(node_id)
        if builtin == builtins.BATCH_GATHER:
            return await self._gather(node_id)
        rt = self.rt
        return await run_node(
            self.bp, node_id, dict(self.state.context), self.state.run_id, rt.user_registry,
            self._dependencies(), rt.middleware, self.signal, rt._sleep, rt.logger,
        )

    def _dependencies(self) -> dict[str, Any]:
        # As upstream, every node gets the runtime's logger among its dependencies.
        return {**self.rt.dependencies, "logger": self.rt.logger}

    async def _subflow(self, node_id: str) -> NodeCompletion:
        """The child runs here, to its end or until it waits (then this node waits with it)."""
        node = self.bp.node_by_id[node_id]
        start = builtin_steps.subflow_start(self.state, node, self.rt.blueprints, self.depth)
        if isinstance(start, NodeCompletion):
            return start
        child = await self.rt.run(start.blueprint, start.context, run_id=start.run_id, signal=self.signal,
                                  _depth=self.depth + 1)
        completion = self._subflow_outcome(node, start.blueprint, child)
        assert completion is not None  # an in-process child always ends in a status
        if completion.awaiting is not None:
            self.subflows[node_id] = child
        return completion

    def _subflow_outcome(self, node: Any, child_bp: Blueprint, child: WorkflowResult) -> NodeCompletion | None:
        context = child.state.context if child.state is not None else child.context
        return builtin_steps.subflow_step(node, child_bp, child.status, child.reason, context, child.awaiting)

    async def _scatter(self, node_id: str) -> NodeCompletion:
        """In-process, every chunk runs here; their results wait for the gather."""
        node = self.bp.node_by_id[node_id]
        chunks = builtin_steps.scatter_chunks(self.state, node)
        if isinstance(chunks, NodeCompletion):
            return chunks
        gather = str(node.params.get("gatherNodeId"))
        await self.emit(*run_events.batch_started(self.state.run_id, self.bp, node_id, gather, sum(map(len, chunks))))
        rt = self.rt
        results: list[Any] = []
        offset = 0
        for items in chunks:
            chunk = {builtins.CHUNK_ITEMS_KEY: items, builtins.CHUNK_OFFSET_KEY: offset}
            done = await run_batch_chunk(self.bp, node, chunk, self.state.run_id, rt.user_registry,
                                         self._dependencies(), rt.middleware, self.signal, rt._sleep, rt.logger)
            if done.failed:
                return done
            results.extend(done.output)
            offset += len(items)
        self.batches[gather] = results
        return builtin_steps.scatter_completion(node, chunks)

    async def _gather(self, node_id: str) -> NodeCompletion:
        node = self.bp.node_by_id[node_id]
        if node_id not in self.batches:
            return builtin_steps.no_scatter_ran(node)
        results = self.batches.pop(node_id)
        scatter = builtins.scatter_for(self.bp, node_id) or ""
        await self.emit(*run_events.batch_finished(self.state.run_id, self.bp, scatter, node_id, results))
        return builtin_steps.gather_completion(node, results)

    async def _commit(self, node_id: str, completion: NodeCompletion) -> None:
        commit = protocol.commit_node(
            self.state, self.bp, node_id, completion, self.rt.evaluator, self.rt._clock(), bare_outputs=True
        )
        self._apply(commit)
        await self.report_commit(node_id, completion, commit)
        for target in commit.fired:
            self._start(target)

    def _apply(self, commit: protocol.Commit) -> None:
        self.state = commit.state

    def _result(self) -> WorkflowResult:
        state = self.state
        errors = []
        if state.status == protocol.FAILED and state.meta.reason:
            failed_node = state.meta.extra.get(protocol.FAILED_NODE_KEY)
            errors.append(WorkflowError(state.meta.reason, node_id=failed_node, blueprint_id=self.bp.id))
        return WorkflowResult(
            status=state.status,
            context=protocol.public_context(state),
            errors=errors,
            run_id=state.run_id,
            reason=state.meta.reason,
            awaiting=protocol.awaiting_details(state.meta),
            state=state,
            subflows=dict(self.subflows),
            batches=dict(self.batches),
        )
