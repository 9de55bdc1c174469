"""Rewrites upstream Flowcraft's packages/core/test/runtime/runtime.test.ts (resume, scheduler, constructor, blueprints)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.errors import RunStateError


def run(runtime: FlowRuntime, bp: dict[str, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(runtime.run(bp, {}), 10))


# --- Resume ---------------------------------------------------------------------------------------


def step(name: str) -> Any:
    def node(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("step", name)
        return {"output": name}

    return node


def test_an_awaiting_run_resumes_to_its_end() -> None:
    # Upstream's node marks itself awaiting through `dependencies.workflowState`; ours uses
    # the `wait` built-in, which is how a node waits here.
    bp = {"id": "resume-test", "nodes": [{"id": "start", "uses": "started"}, {"id": "wait", "uses": "wait"},
                                        {"id": "finish", "uses": "finished"}],
          "edges": [{"source": "start", "target": "wait"}, {"source": "wait", "target": "finish"}]}
    runtime = FlowRuntime(registry={"started": step("started"), "finished": step("finished")})
    first = run(runtime, bp)
    assert first.status == "awaiting"
    second = runtime.resume_sync(bp, first, node_id="wait", output="resumed")
    assert second.status == "completed"
    assert second.context["step"] == "finished"


def test_resuming_a_run_that_is_not_awaiting_raises() -> None:
    bp = {"id": "resume-no-await", "nodes": [{"id": "a", "uses": "done"}]}
    runtime = FlowRuntime(registry={"done": lambda ctx: {"output": "done"}})
    result = run(runtime, bp)
    assert result.status == "completed"
    with pytest.raises(RunStateError, match="is not awaiting"):
        runtime.resume_sync(bp, result, output="x")


def test_resuming_a_node_that_does_not_wait_raises() -> None:
    bp = {"id": "resume-invalid-node", "nodes": [{"id": "a", "uses": "wait"}]}
    runtime = FlowRuntime()
    result = run(runtime, bp)
    assert result.status == "awaiting"
    with pytest.raises(RunStateError, match="is not awaiting node 'nonexistent'"):
        runtime.resume_sync(bp, result, node_id="nonexistent", output="x")


# --- Scheduler ------------------------------------------------------------------------------------


def test_the_scheduler_starts_and_stops() -> None:
    runtime = FlowRuntime()
    polls: list[float] = []

    async def poll(seconds: float) -> None:
        polls.append(seconds)
        runtime.scheduler.stop()

    asyncio.run(asyncio.wait_for(runtime.scheduler.run(poll_s=0.1, sleep=poll), 5))
    assert polls == [0.1]


def test_the_scheduler_polls_at_the_interval_it_is_given() -> None:
    runtime = FlowRuntime()
    polls: list[float] = []

    async def poll(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:
            runtime.scheduler.stop()

    asyncio.run(asyncio.wait_for(runtime.scheduler.run(poll_s=0.05, sleep=poll), 5))
    assert runtime.scheduler is not None
    assert polls == [0.05, 0.05, 0.05]


# --- Constructor variants -------------------------------------------------------------------------


def test_a_runtime_without_options_has_a_logger_and_a_registry() -> None:
    runtime = FlowRuntime()
    assert runtime.logger is not None
    assert len(runtime.registry) > 0


def test_a_runtime_keeps_the_event_bus_it_is_given() -> None:
    class Bus:
        def emit(self, event: Any) -> None:
            pass

    bus = Bus()
    assert FlowRuntime(event_bus=bus).event_bus is bus


def test_the_builtins_are_registered() -> None:
    registry = FlowRuntime().registry
    for uses in ("wait", "sleep", "subflow", "batch-scatter", "batch-gather", "loop-controller"):
        assert uses in registry, uses
    # Ours refuses `webhook` when a blueprint is loaded (no HTTP endpoint), so it is not a built-in.
    assert "webhook" not in registry


def test_the_users_registry_is_merged_with_the_builtins() -> None:
    runtime = FlowRuntime(registry={"custom": lambda ctx: {"output": "custom"}})
    assert "custom" in runtime.registry
    assert "wait" in runtime.registry


# --- getBlueprint ---------------------------------------------------------------------------------


def test_an_unknown_blueprint_is_not_registered() -> None:
    assert FlowRuntime().blueprints.get("unknown") is None


def test_a_registered_blueprint_is_kept_by_its_id() -> None:
    # Ours keeps the validated Blueprint, not the given dict.
    bp = {"id": "test", "nodes": [], "edges": []}
    registered = FlowRuntime(blueprints={"test": bp}).blueprints["test"]
    assert registered.id == "test"
    assert registered.to_dict()["nodes"] == []
