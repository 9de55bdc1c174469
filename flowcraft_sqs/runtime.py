"""`FlowRuntime`: runs a whole workflow in this process, on the same protocol as the fleet.

It drives `protocol` exactly as the distributed worker does — plan, execute, commit,
enqueue what the commit fired — with an in-memory queue instead of SQS, so a workflow
behaves the same here and across machines (distributed routing, set-based joins,
completion when nothing is outstanding).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import builtins, events, protocol, run_events
from .blueprint import Blueprint, load_blueprint
from .completion import run_batch_chunk, run_node
from .errors import RunStateError
from .expressions import DefaultEvaluator
from .nodes import is_cancelled
from .protocol import JobAction, RunState


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
        clock: Callable[[], float] | None = None,
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
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._sleep = sleep

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
        _depth: int = 0,
    ) -> WorkflowResult:
        bp = self.load(blueprint)
        state = protocol.new_run(bp, run_id or uuid.uuid4().hex, initial_context or {}, self._clock())
        run = _InProcessRun(self, bp, state, signal, _depth)
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
        """Continue an `awaiting` run from its waiting node, routed by `action` (FIX: TS ignores it)."""
        if result.state is None:
            raise RunStateError(f"run '{result.run_id}' has no state to resume")
        bp = self.load(blueprint)
        commit = protocol.resume_node(result.state, bp, node_id, output, action, self.evaluator, self._clock())
        run = _InProcessRun(self, bp, commit.state, signal)
        await run.emit(*run_events.workflow_event(events.WORKFLOW_RESUME, commit.state.run_id, bp))
        await run.report_commit(node_id or "", protocol.NodeCompletion(output=output, action=action), commit)
        return await run.drive(list(commit.fired))

    def resume_sync(self, blueprint: Any, result: WorkflowResult, **kw: Any) -> WorkflowResult:
        return asyncio.run(self.resume(blueprint, result, **kw))


class _InProcessRun:
    """One run's loop: start every outstanding job, commit each as it finishes."""

    def __init__(self, runtime: FlowRuntime, bp: Blueprint, state: RunState, signal: Any, depth: int = 0) -> None:
        self.depth = depth  # how many subflows deep this run is
        self.rt = runtime
        self.bp = bp
        self.state = state
        self.signal = signal
        self.tasks: dict[asyncio.Task[Any], str] = {}
        self.batch_results: dict[str, Any] = {}

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
        for event in run_events.finished(result.run_id, self.bp, result.status, result.reason):
            await self.emit(*event)
        return result

    async def emit(self, type_: str, payload: Mapping[str, Any]) -> None:
        if self.rt.event_bus is not None:
            await events.emit(self.rt.event_bus, type_, payload)

    async def report_commit(self, node_id: str, completion: protocol.NodeCompletion, commit: protocol.Commit) -> None:
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

    async def _started(self, node_id: str, builtin: str | None) -> protocol.NodeCompletion:
        if self.rt.event_bus is not None:
            node_input = protocol.resolve_node_input(self.state.context, self.bp.node_by_id[node_id])
            await self.emit(*run_events.node_started(self.state.run_id, self.bp, node_id, node_input))
        return await self._execute(node_id, builtin)

    def _instant_builtin(self, node: Any) -> protocol.NodeCompletion:
        if node.uses == builtins.WAIT:
            return protocol.NodeCompletion(awaiting=builtins.WAIT_DETAILS)
        output, action = builtins.loop_decision(node.params, self.state.context, self.rt.evaluator)
        return protocol.NodeCompletion(output=output, action=action)

    async def _execute(self, node_id: str, builtin: str | None = None) -> protocol.NodeCompletion:
        if builtin in (builtins.WAIT, builtins.LOOP_CONTROLLER):
            return self._instant_builtin(self.bp.node_by_id[node_id])
        if builtin == builtins.SLEEP:
            return await self._sleep(node_id)
        if builtin == builtins.SUBFLOW:
            return await self._subflow(node_id)
        if builtin == builtins.BATCH_SCATTER:
            return await self._scatter(node_id)
        if builtin == builtins.BATCH_GATHER:
            return self._gather(node_id)
        rt = self.rt
        return await run_node(
            self.bp, node_id, dict(self.state.context), self.state.run_id, rt.user_registry,
            self._dependencies(), rt.middleware, self.signal, rt._sleep, rt.logger,
        )

    def _dependencies(self) -> dict[str, Any]:
        # As upstream, every node gets the runtime's logger among its dependencies.
        return {**self.rt.dependencies, "logger": self.rt.logger}

    async def _sleep(self, node_id: str) -> protocol.NodeCompletion:
        node = self.bp.node_by_id[node_id]
        try:
            seconds = builtins.sleep_seconds(node.params.get("duration"))
        except ValueError as exc:
            return protocol.NodeCompletion(error=f"Node '{node_id}' failed: {exc}")
        await self.rt._sleep(seconds)
        return protocol.NodeCompletion(output=protocol.resolve_node_input(self.state.context, node))

    async def _subflow(self, node_id: str) -> protocol.NodeCompletion:
        node = self.bp.node_by_id[node_id]
        child_bp = self.rt.blueprints.get(str(node.params.get("blueprintId")))
        if child_bp is None:
            missing = node.params.get("blueprintId")
            return protocol.NodeCompletion(error=f"Node '{node_id}' failed: subflow blueprint {missing!r} is not registered")
        if self.depth >= builtins.MAX_SUBFLOW_DEPTH:
            return protocol.NodeCompletion(error=f"Node '{node_id}' failed: subflows nested deeper than {builtins.MAX_SUBFLOW_DEPTH}")
        node_input = protocol.resolve_node_input(self.state.context, node)
        initial = builtins.subflow_initial_context(node.params, self.state.context, node_input, child_bp)
        child_id = builtins.subflow_run_id(self.state.run_id, node_id)
        result = await self.rt.run(child_bp, initial, run_id=child_id, signal=self.signal, _depth=self.depth + 1)
        if result.status != protocol.COMPLETED:
            reason = result.reason or result.status
            return protocol.NodeCompletion(error=f"Node '{node_id}' failed: subflow '{child_bp.id}' {result.status}: {reason}")
        output, writes = builtins.subflow_output(node.params, result.context, child_bp)
        return protocol.NodeCompletion(output=output, context_sets=writes)

    async def _scatter(self, node_id: str) -> protocol.NodeCompletion:
        """In-process, a batch runs as one chunk; its results wait here for the gather."""
        node = self.bp.node_by_id[node_id]
        items = protocol.resolve_node_input(self.state.context, node)
        if not isinstance(items, list):
            return protocol.NodeCompletion(error=f"Node '{node_id}' failed: batch-scatter input must be an array")
        rt = self.rt
        chunk = {builtins.CHUNK_ITEMS_KEY: items, builtins.CHUNK_OFFSET_KEY: 0}
        done = await run_batch_chunk(self.bp, node, chunk, self.state.run_id, rt.user_registry, self._dependencies(),
                                     rt.middleware, self.signal, rt._sleep, rt.logger)
        if done.failed:
            return done
        gather = str(node.params.get("gatherNodeId"))
        self.batch_results[gather] = done.output
        return protocol.NodeCompletion(output={"gatherNodeId": gather, "hasMore": False, "chunks": 1, "count": len(items)})

    def _gather(self, node_id: str) -> protocol.NodeCompletion:
        results = self.batch_results.pop(node_id, [])
        key = str(self.bp.node_by_id[node_id].params.get("outputKey") or node_id)
        return protocol.NodeCompletion(output=results, context_sets={key: results})

    async def _commit(self, node_id: str, completion: protocol.NodeCompletion) -> None:
        commit = protocol.commit_node(
            self.state, self.bp, node_id, completion, self.rt.evaluator, self.rt._clock()
        )
        self._apply(commit)
        await self.report_commit(node_id, completion, commit)
        for target in commit.fired:
            self._start(target)

    def _apply(self, commit: protocol.Commit) -> None:
        self.state = commit.state

    def _result(self) -> WorkflowResult:
        state = self.state
        status = state.status
        errors = []
        if status == protocol.FAILED and state.meta.reason:
            errors.append(WorkflowError(state.meta.reason, blueprint_id=self.bp.id))
        return WorkflowResult(
            status=status,
            context=protocol.public_context(state),
            errors=errors,
            run_id=state.run_id,
            reason=state.meta.reason,
            awaiting={k: dict(v) for k, v in state.meta.awaiting.items()},
            state=state,
        )
