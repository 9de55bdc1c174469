"""Built-in nodes in the in-process runtime: wait/resume, sleep, loops, subflows, webhook."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.errors import BlueprintError, RunStateError


def const(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.params.get("value", ctx.input)}


def increment(ctx: Any) -> dict[str, Any]:
    count = ctx.context.get_sync("count", 0) + 1
    ctx.context.set_sync("count", count)
    return {"output": count}


APPROVAL = {
    "id": "approval",
    "nodes": [
        {"id": "draft", "uses": "const", "params": {"value": "text"}},
        {"id": "review", "uses": "wait"},
        {"id": "publish", "uses": "const", "params": {"value": "published"}},
        {"id": "discard", "uses": "const", "params": {"value": "discarded"}},
    ],
    "edges": [
        {"source": "draft", "target": "review"},
        {"source": "review", "target": "publish", "action": "approve"},
        {"source": "review", "target": "discard", "action": "reject"},
    ],
}


def test_a_wait_node_pauses_the_run_as_awaiting_with_its_details() -> None:
    runtime = FlowRuntime(registry={"const": const})
    result = runtime.run_sync(APPROVAL)
    assert result.status == "awaiting"
    assert result.awaiting == {"review": {"reason": "external_event"}}
    assert "_outputs.publish" not in result.context


def test_resume_routes_by_the_given_action() -> None:
    # FIX: TS ignores the action on resume and runs every branch
    runtime = FlowRuntime(registry={"const": const})
    paused = runtime.run_sync(APPROVAL)
    done = runtime.resume_sync(APPROVAL, paused, action="reject", output={"by": "ann"})
    assert done.status == "completed"
    assert done.context["_outputs.review"] == {"by": "ann"}
    assert done.context["_outputs.discard"] == "discarded"
    assert "_outputs.publish" not in done.context


def test_resuming_a_run_that_is_not_awaiting_is_a_clear_error() -> None:
    runtime = FlowRuntime(registry={"const": const})
    finished = runtime.run_sync({"id": "one", "nodes": [{"id": "a", "uses": "const"}]})
    with pytest.raises(RunStateError, match="is not awaiting"):
        runtime.resume_sync({"id": "one", "nodes": [{"id": "a", "uses": "const"}]}, finished, action="x")


def test_a_repeated_resume_is_harmless() -> None:
    runtime = FlowRuntime(registry={"const": const})
    paused = runtime.run_sync(APPROVAL)
    done = runtime.resume_sync(APPROVAL, paused, node_id="review", action="approve")
    again = runtime.resume_sync(APPROVAL, done, node_id="review", action="approve")
    assert again.status == "completed"
    assert again.context == done.context


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


NAP = {
    "id": "nap",
    "nodes": [{"id": "a", "uses": "const", "params": {"value": 7}}, {"id": "z", "uses": "sleep", "params": {"duration": "2m"}}],
    "edges": [{"source": "a", "target": "z"}],
}


def test_sleep_marks_the_run_awaiting_a_timer_with_its_wake_up_time() -> None:
    clock = FakeClock()
    runtime = FlowRuntime(registry={"const": const}, clock=clock)
    result = runtime.run_sync(NAP)
    assert result.status == "awaiting"
    assert result.awaiting == {"z": {"reason": "timer", "wakeUpAt": 1120.0}}
    assert "_outputs.z" not in result.context


def test_the_scheduler_resumes_a_due_timer_and_the_sleep_passes_its_input_through() -> None:
    clock = FakeClock()
    runtime = FlowRuntime(registry={"const": const}, clock=clock)

    async def scenario() -> list[Any]:
        await runtime.run(NAP)
        clock.now += 60
        early = await runtime.scheduler.resume_due()
        clock.now += 60
        return [early, await runtime.scheduler.resume_due()]

    early, woken = asyncio.run(scenario())
    assert early == []
    assert [r.status for r in woken] == ["completed"]
    assert woken[0].context["_outputs.z"] == 7
    assert runtime.scheduler.pending == {}


def test_resuming_timers_before_they_are_due_changes_nothing() -> None:
    clock = FakeClock()
    runtime = FlowRuntime(registry={"const": const}, clock=clock)
    paused = runtime.run_sync(NAP)
    assert asyncio.run(runtime.resume_timers(NAP, paused)) is paused


def test_a_sleep_of_zero_passes_through_at_once() -> None:
    runtime = FlowRuntime(registry={"const": const})
    bp = {**NAP, "nodes": [NAP["nodes"][0], {"id": "z", "uses": "sleep", "params": {"duration": 0}}]}
    result = runtime.run_sync(bp)
    assert result.status == "completed"
    assert result.context["_outputs.z"] == 7


def loop_blueprint(max_iterations: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"condition": "count < 3"}
    if max_iterations is not None:
        params["maxIterations"] = max_iterations
    return {
        "id": "loop",
        "nodes": [
            {"id": "start", "uses": "const", "params": {"value": 0}},
            {"id": "ctrl", "uses": "loop-controller", "params": params, "config": {"joinStrategy": "any"}},
            {"id": "body", "uses": "increment"},
            {"id": "done", "uses": "const", "params": {"value": "finished"}},
        ],
        "edges": [
            {"source": "start", "target": "ctrl"},
            {"source": "ctrl", "target": "body", "action": "continue"},
            {"source": "body", "target": "ctrl"},
            {"source": "ctrl", "target": "done", "action": "break"},
        ],
    }


def test_a_loop_iterates_until_its_condition_fails() -> None:
    runtime = FlowRuntime(registry={"const": const, "increment": increment})
    result = runtime.run_sync(loop_blueprint(), {"count": 0})
    assert result.status == "completed", result.reason
    assert result.context["count"] == 3
    assert result.context["_outputs.done"] == "finished"


def test_a_loop_past_its_maximum_iterations_fails_the_run() -> None:
    runtime = FlowRuntime(registry={"const": const, "increment": increment})
    result = runtime.run_sync(loop_blueprint(max_iterations=2), {"count": 0})
    assert result.status == "failed"
    assert result.reason == "Loop 'ctrl' exceeded its maximum of 2 iterations"
    assert result.context["count"] == 2


def test_a_subflow_runs_its_child_and_maps_inputs_and_outputs() -> None:
    child = {"id": "child", "nodes": [{"id": "double", "uses": "double", "inputs": "n"}]}

    def double(ctx: Any) -> dict[str, Any]:
        return {"output": ctx.input * 2}

    parent = {
        "id": "parent",
        "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "child", "inputs": {"n": "value"}, "outputs": {"doubled": "double"}}}],
    }
    runtime = FlowRuntime(registry={"double": double}, blueprints={"child": child})
    result = runtime.run_sync(parent, {"value": 21})
    assert result.status == "completed", result.reason
    assert result.context["doubled"] == 42


def test_a_failing_subflow_fails_the_parent_with_the_childs_reason() -> None:
    def boom(ctx: Any) -> None:
        raise RuntimeError("child broke")

    child = {"id": "child", "nodes": [{"id": "x", "uses": "boom"}]}
    parent = {"id": "parent", "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "child"}}]}
    runtime = FlowRuntime(registry={"boom": boom}, blueprints={"child": child})
    result = runtime.run_sync(parent)
    assert result.status == "failed"
    assert "Node 'x' failed: child broke" in (result.reason or "")


def test_a_webhook_node_is_refused_at_load_with_what_to_use_instead() -> None:
    with pytest.raises(BlueprintError, match="use a 'wait' node"):
        FlowRuntime().load({"id": "hook", "nodes": [{"id": "h", "uses": "webhook"}]})


def batch_blueprint(chunk_size: int = 3) -> dict[str, Any]:
    return {
        "id": "batch",
        "nodes": [
            {"id": "scatter", "uses": "batch-scatter", "inputs": "items",
             "params": {"workerUsesKey": "square", "gatherNodeId": "gather", "chunkSize": chunk_size}},
            {"id": "gather", "uses": "batch-gather", "params": {"gatherNodeId": "gather", "outputKey": "squares"}},
            {"id": "total", "uses": "sum", "inputs": "squares"},
        ],
        "edges": [{"source": "scatter", "target": "gather"}, {"source": "gather", "target": "total"}],
    }


def square(ctx: Any) -> dict[str, Any]:
    if ctx.input == "bad":
        raise ValueError("cannot square 'bad'")
    return {"output": ctx.input * ctx.input}


def total(ctx: Any) -> dict[str, Any]:
    return {"output": sum(ctx.input)}


BATCH_REGISTRY = {"square": square, "sum": total}


def test_a_batch_runs_the_worker_per_item_and_gathers_in_item_order() -> None:
    runtime = FlowRuntime(registry=BATCH_REGISTRY)
    result = runtime.run_sync(batch_blueprint(), {"items": [1, 2, 3, 4, 5]})
    assert result.status == "completed", result.reason
    assert result.context["squares"] == [1, 4, 9, 16, 25]
    assert result.context["_outputs.total"] == 55


def test_a_failing_batch_item_fails_the_run_with_its_reason() -> None:
    runtime = FlowRuntime(registry=BATCH_REGISTRY)
    result = runtime.run_sync(batch_blueprint(), {"items": [1, "bad"]})
    assert result.status == "failed"
    assert result.reason == "Node 'scatter_item_1' failed: cannot square 'bad'"


def test_a_batch_without_a_registered_worker_is_refused_at_load() -> None:
    with pytest.raises(BlueprintError, match="workerUsesKey 'square' is not registered"):
        FlowRuntime(registry={"sum": total}).load(batch_blueprint())
