"""`FlowRuntime`: runs a whole workflow in this process, on the same protocol as the fleet.

It drives `protocol` exactly as the distributed worker does — plan, execute, commit,
enqueue what the commit fired — with an in-memory queue instead of SQS, so a workflow
behaves the same here and across machines (distributed routing, set-based joins,
completion when nothing is outstanding).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import protocol
from .blueprint import Blueprint, load_blueprint
from .completion import run_node
from .expressions import DefaultEvaluator
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
    ) -> None:
        self.registry = dict(registry or {})
        self.evaluator = evaluator or DefaultEvaluator()
        self.blueprints = {
            key: load_blueprint(value, blueprint_id=key) for key, value in (blueprints or {}).items()
        }
        self.dependencies = dict(dependencies or {})
        self.middleware = list(middleware)
        self.logger = logger
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._sleep = sleep

    def load(self, blueprint: Blueprint | Mapping[str, Any] | str) -> Blueprint:
        if isinstance(blueprint, str) and blueprint in self.blueprints:
            return self.blueprints[blueprint]
        return load_blueprint(blueprint, registry=self.registry, evaluator=self.evaluator)

    def run_sync(self, blueprint: Any, initial_context: Mapping[str, Any] | None = None, **kw: Any) -> WorkflowResult:
        return asyncio.run(self.run(blueprint, initial_context, **kw))

    async def run(
        self,
        blueprint: Blueprint | Mapping[str, Any] | str,
        initial_context: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        signal: Any = None,
    ) -> WorkflowResult:
        bp = self.load(blueprint)
        state = protocol.new_run(bp, run_id or uuid.uuid4().hex, initial_context or {}, self._clock())
        return await _InProcessRun(self, bp, state, signal).drive()


class _InProcessRun:
    """One run's loop: start every outstanding job, commit each as it finishes."""

    def __init__(self, runtime: FlowRuntime, bp: Blueprint, state: RunState, signal: Any) -> None:
        self.rt = runtime
        self.bp = bp
        self.state = state
        self.signal = signal
        self.tasks: dict[asyncio.Task[Any], str] = {}

    async def drive(self) -> WorkflowResult:
        for node_id in protocol.outstanding_jobs(self.state):
            self._start(node_id)
        while self.tasks:
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                node_id = self.tasks.pop(task)
                self._commit(node_id, task.result())
            if _is_set(self.signal) and not self.state.is_final:
                self._apply(protocol.end_run(self.state, protocol.CANCELLED, "Workflow cancelled", self.rt._clock()))
        return self._result()

    def _start(self, node_id: str) -> None:
        plan = protocol.plan_job(self.state, self.bp, node_id)
        if plan.action is JobAction.CONSUME:
            self._apply(protocol.consume_job(self.state, node_id, self.rt._clock()))
            return
        if plan.action is not JobAction.EXECUTE:
            return
        if _is_set(self.signal):
            return
        task = asyncio.ensure_future(self._execute(node_id))
        self.tasks[task] = node_id

    async def _execute(self, node_id: str) -> protocol.NodeCompletion:
        rt = self.rt
        return await run_node(
            self.bp, node_id, dict(self.state.context), self.state.run_id, rt.registry,
            rt.dependencies, rt.middleware, self.signal, rt._sleep, rt.logger,
        )

    def _commit(self, node_id: str, completion: protocol.NodeCompletion) -> None:
        commit = protocol.commit_node(
            self.state, self.bp, node_id, completion, self.rt.evaluator, self.rt._clock()
        )
        self._apply(commit)
        for target in commit.fired:
            self._start(target)

    def _apply(self, commit: protocol.Commit) -> None:
        self.state = commit.state

    def _result(self) -> WorkflowResult:
        state = self.state
        status = state.status
        if status == protocol.RUNNING:
            status = protocol.COMPLETED if not state.meta.outstanding else protocol.RUNNING
        errors = []
        if status == protocol.FAILED and state.meta.reason:
            errors.append(WorkflowError(state.meta.reason, blueprint_id=self.bp.id))
        return WorkflowResult(
            status=status,
            context=protocol.public_context(state),
            errors=errors,
            run_id=state.run_id,
            reason=state.meta.reason,
        )


def _is_set(signal: Any) -> bool:
    if signal is None:
        return False
    for name in ("is_set", "aborted", "cancelled"):
        probe = getattr(signal, name, None)
        if callable(probe):
            return bool(probe())
        if probe is not None:
            return bool(probe)
    return False
