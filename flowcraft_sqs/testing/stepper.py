"""`create_stepper`: run a workflow one step at a time, to assert its state between steps.

    stepper = create_stepper(runtime, flow.to_blueprint(), flow.registry)
    first = await stepper.next()          # runs every node that is ready (or `concurrency` of them)
    assert first.status == "stalled"      # more to do
    assert stepper.context["_outputs.A"] == 10
    await stepper.prev()                  # back to before that step
    stepper.reset()                       # back to the start

It drives the same pure protocol and the same built-in steps as `FlowRuntime` (plan,
execute, commit), one wave of ready jobs per `next()`, so a stepped run routes, joins and
completes exactly as a whole one, and reports the same events to the runtime's bus. Each
state is immutable, so `prev()` restores the exact state before a step.

A `wait` node leaves the run `awaiting` until `resume()`; a `sleep` leaves it awaiting its
timer, and the step after the timer is due (by the runtime's clock) continues it. A subflow
runs whole within one step; a subflow whose child waits cannot be resumed from a stepper.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .. import builtin_steps, builtins, events, protocol, run_events
from ..blueprint import Blueprint, load_blueprint
from ..completion import run_batch_chunk, run_node
from ..protocol import JobAction, NodeCompletion, RunState
from ..runtime import FlowRuntime, WorkflowError, WorkflowResult

STALLED = "stalled"  # a step ended with work left, as upstream reports it


def create_stepper(
    runtime: FlowRuntime,
    blueprint: Any,
    registry: Mapping[str, Any] | None = None,
    initial_context: Mapping[str, Any] | None = None,
) -> WorkflowStepper:
    """A stepper over `blueprint` with `runtime`'s options plus `registry` (a builder's)."""
    return WorkflowStepper(runtime, blueprint, registry or {}, initial_context or {})


class WorkflowStepper:
    """One run, advanced by `next()`, rewound by `prev()` and `reset()`."""

    def __init__(self, runtime: FlowRuntime, blueprint: Any, registry: Mapping[str, Any],
                 initial_context: Mapping[str, Any]) -> None:
        self.runtime = runtime
        self.user_registry = {**runtime.user_registry, **registry}
        self.registry = {**runtime.registry, **registry}
        self.bp: Blueprint = load_blueprint(blueprint, registry=self.user_registry, evaluator=runtime.evaluator)
        self.run_id = uuid.uuid4().hex
        self._initial_context = dict(initial_context)
        self._batch_results: dict[str, Any] = {}  # gather node id -> the batch's results
        self.history: list[tuple[RunState, dict[str, Any]]] = []  # (state, batch results) before each step
        self.state = self._fresh_state()

    # --- reading ------------------------------------------------------------------------

    @property
    def context(self) -> dict[str, Any]:
        """The run's context now (a copy)."""
        return protocol.public_context(self.state)

    @property
    def completed_nodes(self) -> set[str]:
        return set(self.state.meta.results)

    def ready_nodes(self) -> list[str]:
        """The nodes the next step would run, in the order it would start them (a sleep
        only once its timer is due)."""
        due = set(builtin_steps.due_timers(self.state, self._clock()))
        timers = self.state.meta.timers
        return [n for n in protocol.outstanding_jobs(self.state) if n not in timers or n in due]

    def is_done(self) -> bool:
        """True once the run ended, or has nothing left to run and is not waiting."""
        if self.state.is_final:
            return True
        return not self.ready_nodes() and self.state.status != protocol.AWAITING

    # --- moving ---------------------------------------------------------------------------

    async def next(self, *, concurrency: int | None = None, signal: Any = None) -> WorkflowResult | None:
        """Run the ready nodes (at most `concurrency`) and commit them; None when done."""
        if self.is_done():
            return None
        ready = self.ready_nodes()[:concurrency] if concurrency else self.ready_nodes()
        if not ready:
            return self.result()  # awaiting: only a resume moves it on
        self._remember()
        if len(self.history) == 1:  # as a whole run, the first step reports both
            await self._emit(*run_events.workflow_event(events.WORKFLOW_START, self.run_id, self.bp))
            await self._emit(*run_events.workflow_event(events.WORKFLOW_RESUME, self.run_id, self.bp))
        runnable = [node_id for node_id in ready if self._plan(node_id)]
        completions = await asyncio.gather(*(self._run(node_id, signal) for node_id in runnable))
        for node_id, completion in zip(runnable, completions, strict=True):
            await self._commit(node_id, completion)
        return self.result()

    def next_sync(self, **options: Any) -> WorkflowResult | None:
        return asyncio.run(self.next(**options))

    async def resume(self, node_id: str | None = None, output: Any = None,
                     action: str | None = None) -> WorkflowResult:
        """Complete a waiting node with `output`, routed by `action`; its successors become ready."""
        self._remember()
        waiting = node_id or next(iter(self.state.meta.awaiting), "")
        commit = protocol.resume_node(self.state, self.bp, node_id, output, action, self.runtime.evaluator,
                                      self._clock(), bare_outputs=True)
        self.state = commit.state
        await self._report(waiting, NodeCompletion(output=output, action=action), commit)
        return self.result()

    async def prev(self) -> WorkflowResult | None:
        """Go back to the state before the last step; None if there is none."""
        if not self.history:
            return None
        self.state, batches = self.history.pop()
        self._batch_results = dict(batches)
        return self.result()

    def reset(self) -> None:
        """Back to the initial state, with no history."""
        self.history.clear()
        self._batch_results.clear()
        self.state = self._fresh_state()

    def result(self) -> WorkflowResult:
        """The run as a WorkflowResult; status `stalled` while there is work left."""
        state = self.state
        status = state.status
        if status == protocol.RUNNING and self.ready_nodes():
            status = STALLED
        errors = []
        if state.status == protocol.FAILED and state.meta.reason:
            failed_node = state.meta.extra.get(protocol.FAILED_NODE_KEY)
            errors.append(WorkflowError(state.meta.reason, node_id=failed_node, blueprint_id=self.bp.id))
        return WorkflowResult(status=status, context=self.context, errors=errors, run_id=state.run_id,
                              reason=state.meta.reason, awaiting=protocol.awaiting_details(state.meta),
                              state=state)

    def _remember(self) -> None:
        self.history.append((self.state, dict(self._batch_results)))

    # --- one node -------------------------------------------------------------------------

    def _fresh_state(self) -> RunState:
        return protocol.new_run(self.bp, self.run_id, self._initial_context, self._clock())

    def _plan(self, node_id: str) -> bool:
        """Whether the job runs a node; a job with nothing to run is committed here."""
        plan = protocol.plan_job(self.state, self.bp, node_id)
        if plan.action is JobAction.CONSUME:
            self.state = protocol.consume_job(self.state, node_id, self._clock()).state
        return plan.action is JobAction.EXECUTE

    async def _run(self, node_id: str, signal: Any) -> NodeCompletion:
        node = self.bp.node_by_id[node_id]
        if self.runtime.event_bus is not None:
            node_input = run_events.readable_input(self.state.context, node)
            await self._emit(*run_events.node_started(self.run_id, self.bp, node_id, node_input))
        try:
            return await self._execute(node, signal)
        except protocol.InputPathError as exc:
            return builtin_steps.failed(node, str(exc))

    async def _execute(self, node: Any, signal: Any) -> NodeCompletion:
        """As the runtime: a user implementation wins over the built-in of the same key."""
        builtin = node.uses if node.uses not in self.user_registry else None
        if builtin == builtins.WAIT:
            return builtin_steps.wait_step(node)
        if builtin == builtins.LOOP_CONTROLLER:
            return builtin_steps.loop_step(self.bp, node, self.state.context, self.runtime.evaluator)
        if builtin == builtins.SLEEP:
            return builtin_steps.sleep_step(self.state, node, self._clock()) or NodeCompletion(
                timer_due=self.state.meta.timers[node.id])
        if builtin == builtins.SUBFLOW:
            return await self._subflow(node, signal)
        if builtin == builtins.BATCH_SCATTER:
            return await self._scatter(node, signal)
        if builtin == builtins.BATCH_GATHER:
            return await self._gather(node)
        rt = self.runtime
        return await run_node(self.bp, node.id, dict(self.state.context), self.run_id, self.user_registry,
                              self._dependencies(), rt.middleware, signal, rt._sleep, rt.logger)

    async def _subflow(self, node: Any, signal: Any) -> NodeCompletion:
        start = builtin_steps.subflow_start(self.state, node, self.runtime.blueprints, 0)
        if isinstance(start, NodeCompletion):
            return start
        child = await self.runtime.run(start.blueprint, start.context, run_id=start.run_id, signal=signal)
        context = child.state.context if child.state is not None else child.context
        outcome = builtin_steps.subflow_step(node, start.blueprint, child.status, child.reason, context,
                                             child.awaiting)
        return outcome or builtin_steps.failed(node, f"subflow '{start.blueprint.id}' {child.status}")

    async def _scatter(self, node: Any, signal: Any) -> NodeCompletion:
        """Every chunk runs in the scatter's step; the results wait for the gather's."""
        chunks = builtin_steps.scatter_chunks(self.state, node)
        if isinstance(chunks, NodeCompletion):
            return chunks
        gather = str(node.params.get("gatherNodeId"))
        await self._emit(*run_events.batch_started(self.run_id, self.bp, node.id, gather, sum(map(len, chunks))))
        rt, results, offset = self.runtime, [], 0
        for items in chunks:
            chunk = {builtins.CHUNK_ITEMS_KEY: items, builtins.CHUNK_OFFSET_KEY: offset}
            done = await run_batch_chunk(self.bp, node, chunk, self.run_id, self.user_registry,
                                         self._dependencies(), rt.middleware, signal, rt._sleep, rt.logger)
            if done.failed:
                return done
            results.extend(done.output)
            offset += len(items)
        self._batch_results[gather] = results
        return builtin_steps.scatter_completion(node, chunks)

    async def _gather(self, node: Any) -> NodeCompletion:
        if node.id not in self._batch_results:
            return builtin_steps.no_scatter_ran(node)
        results = self._batch_results.pop(node.id)
        scatter = builtins.scatter_for(self.bp, node.id) or ""
        await self._emit(*run_events.batch_finished(self.run_id, self.bp, scatter, node.id, results))
        return builtin_steps.gather_completion(node, results)

    def _dependencies(self) -> dict[str, Any]:
        # As the runtime: every node gets its logger among the dependencies.
        return {**self.runtime.dependencies, "logger": self.runtime.logger}

    async def _commit(self, node_id: str, completion: NodeCompletion) -> None:
        commit = protocol.commit_node(self.state, self.bp, node_id, completion, self.runtime.evaluator,
                                      self._clock(), bare_outputs=True)
        self.state = commit.state
        await self._report(node_id, completion, commit)

    async def _report(self, node_id: str, completion: NodeCompletion, commit: protocol.Commit) -> None:
        if self.runtime.event_bus is None:
            return
        for event in run_events.node_settled(self.run_id, self.bp, node_id, completion, commit,
                                             self.runtime.evaluator):
            await self._emit(*event)
        if commit.final is not None:
            for event in run_events.finished(self.run_id, self.bp, commit.final.status, commit.final.reason):
                await self._emit(*event)

    async def _emit(self, type_: str, payload: Mapping[str, Any]) -> None:
        await events.emit(self.runtime.event_bus, type_, payload)

    def _clock(self) -> float:
        """The runtime's clock (a test's fake one); its default reads the running loop's
        monotonic time, which outside a loop is `time.monotonic()`."""
        try:
            return float(self.runtime._clock())
        except RuntimeError:
            return time.monotonic()


__all__ = ["STALLED", "WorkflowStepper", "create_stepper"]
