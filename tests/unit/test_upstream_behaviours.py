"""Behaviours kept as upstream Flowcraft has them, in process and (where it applies) distributed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.blueprint import load_blueprint, load_blueprints
from flowcraft_sqs.errors import BlueprintError
from flowcraft_sqs.expressions import DefaultEvaluator, property_evaluate
from flowcraft_sqs.protocol import resolve_value
from tests.cases.distributed import run_distributed


def const(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.params.get("value")}


def echo(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.input}


async def late(ctx: Any) -> dict[str, Any]:
    # Yields `delay` times before finishing, so a node can finish after the ones listed later.
    for _ in range(ctx.params.get("delay", 0)):
        await asyncio.sleep(0)
    return {"output": ctx.params.get("value")}


REGISTRY = {"const": const, "echo": echo, "late": late}


def both_ways(raw: dict[str, Any], context: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The final contexts of `raw` run in process and distributed."""
    in_process = FlowRuntime(registry=REGISTRY).run_sync(raw, context or {})
    bp = load_blueprint(raw, registry=REGISTRY, evaluator=DefaultEvaluator())
    state, _ = run_distributed(bp, REGISTRY, context or {}, DefaultEvaluator())
    return [in_process.context, dict(state.context)]


FAN_IN = {
    "id": "fan-in",
    "nodes": [
        {"id": "first", "uses": "late", "params": {"value": "from first", "delay": 20}},
        {"id": "second", "uses": "late", "params": {"value": "from second"}},
        {"id": "join", "uses": "echo"},
    ],
    "edges": [{"source": "first", "target": "join"}, {"source": "second", "target": "join"}],
}


def test_a_join_takes_its_input_from_its_last_predecessor_in_blueprint_order() -> None:
    for context in both_ways(FAN_IN):
        assert context["_outputs.join"] == "from second"


def test_a_join_after_an_earlier_first_arrival_still_takes_the_last_predecessor() -> None:
    reordered = json.loads(json.dumps(FAN_IN))
    reordered["nodes"][0]["params"]["delay"] = 0
    reordered["nodes"][1]["params"]["delay"] = 20
    for context in both_ways(reordered):
        assert context["_outputs.join"] == "from second"


def test_a_node_fed_by_several_start_nodes_reads_the_last_of_them() -> None:
    raw = {
        "id": "starts",
        "nodes": [{"id": f"s{i}", "uses": "late", "params": {"value": i, "delay": 10 * (3 - i)}} for i in range(3)]
        + [{"id": "t", "uses": "echo"}],
        "edges": [{"source": f"s{i}", "target": "t"} for i in range(3)],
    }
    for context in both_ways(raw):
        assert context["_outputs.t"] == 2


def test_a_failed_runs_error_names_the_failed_node() -> None:
    def boom(ctx: Any) -> None:
        raise RuntimeError("broken")

    bp = {"id": "f", "nodes": [{"id": "a", "uses": "const"}, {"id": "b", "uses": "boom"}],
          "edges": [{"source": "a", "target": "b"}]}
    result = FlowRuntime(registry={"const": const, "boom": boom}).run_sync(bp)
    assert result.status == "failed"
    assert [(e.node_id, e.blueprint_id) for e in result.errors] == [("b", "f")]


def test_a_transform_into_a_node_with_explicit_inputs_is_what_that_node_reads() -> None:
    raw = {
        "id": "transform-inputs",
        "nodes": [
            {"id": "a", "uses": "const", "params": {"value": {"n": 4}}},
            {"id": "b", "uses": "echo", "inputs": "a"},
        ],
        "edges": [{"source": "a", "target": "b", "transform": "input.n"}],
    }
    for context in both_ways(raw):
        assert context["_inputs.b"] == 4
        assert context["_outputs.b"] == 4


ROUTE_TOTAL = {
    "id": "bare",
    "nodes": [
        {"id": "route", "uses": "const", "params": {"value": {"total": 9}}},
        {"id": "big", "uses": "const", "params": {"value": "big"}},
        {"id": "small", "uses": "const", "params": {"value": "small"}},
    ],
    "edges": [
        {"source": "route", "target": "big", "condition": "route.total > 5"},
        {"source": "route", "target": "small", "condition": "route.total <= 5"},
    ],
}


def test_the_in_process_runtime_writes_the_bare_node_id_key_and_conditions_read_it() -> None:
    result = FlowRuntime(registry=REGISTRY).run_sync(ROUTE_TOTAL)
    assert result.context["route"] == {"total": 9}
    assert result.context["_outputs.big"] == "big"
    assert "_outputs.small" not in result.context


def test_distributed_conditions_read_node_outputs_by_bare_id_without_storing_them() -> None:
    bp = load_blueprint(ROUTE_TOTAL, registry=REGISTRY, evaluator=DefaultEvaluator())
    state, _ = run_distributed(bp, REGISTRY, {}, DefaultEvaluator())
    assert state.context["_outputs.big"] == "big"
    assert "route" not in state.context  # the 400 KB item holds each output once


def test_a_resumed_wait_also_writes_its_bare_node_id() -> None:
    runtime = FlowRuntime()
    bp = {"id": "w", "nodes": [{"id": "review", "uses": "wait"}]}
    paused = runtime.run_sync(bp)
    done = runtime.resume_sync(bp, paused, output={"ok": True})
    assert done.context["review"] == {"ok": True}
    assert done.context["_outputs.review"] == {"ok": True}


def test_sleep_in_process_awaits_a_timer_and_the_scheduler_resumes_it() -> None:
    clock = {"now": 5000.0}
    runtime = FlowRuntime(registry=REGISTRY, clock=lambda: clock["now"])
    bp = {"id": "nap", "nodes": [{"id": "s", "uses": "sleep", "params": {"duration": 1500}}, {"id": "e", "uses": "echo"}],
          "edges": [{"source": "s", "target": "e"}]}

    async def scenario() -> tuple[Any, list[Any]]:
        paused = await runtime.run(bp, {"_inputs.s": "carried"})
        clock["now"] += 1.5
        return paused, await runtime.scheduler.resume_due()

    paused, woken = asyncio.run(scenario())
    assert paused.status == "awaiting"
    assert paused.awaiting == {"s": {"reason": "timer", "wakeUpAt": 5001.5}}
    assert woken[0].status == "completed"
    assert woken[0].context["_outputs.e"] == "carried"


def test_the_scheduler_polls_until_nothing_is_pending_without_real_sleeping() -> None:
    clock = {"now": 0.0}
    runtime = FlowRuntime(clock=lambda: clock["now"])
    bp = {"id": "nap", "nodes": [{"id": "s", "uses": "sleep", "params": {"duration": "2s"}}]}

    async def advance(seconds: float) -> None:
        clock["now"] += seconds

    async def scenario() -> Any:
        await runtime.run(bp)
        await asyncio.wait_for(runtime.scheduler.run(poll_s=1.0, sleep=advance, until_idle=True), 5)
        return runtime.scheduler.results

    results = asyncio.run(scenario())
    assert [r.status for r in results.values()] == ["completed"]


CHILD_WAITS = {"id": "child", "nodes": [{"id": "approve", "uses": "wait"}, {"id": "after", "uses": "echo"}],
               "edges": [{"source": "approve", "target": "after"}]}
PARENT = {"id": "parent", "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "child"}},
                                    {"id": "done", "uses": "echo"}],
          "edges": [{"source": "sub", "target": "done"}]}


def test_a_subflow_whose_child_waits_makes_the_parent_wait_on_the_subflow_node() -> None:
    runtime = FlowRuntime(registry=REGISTRY, blueprints={"child": CHILD_WAITS})
    paused = runtime.run_sync(PARENT)
    assert paused.status == "awaiting"
    assert paused.awaiting["sub"]["reason"] == "subflow"
    assert paused.awaiting["sub"]["awaiting"] == {"approve": {"reason": "external_event"}}


@pytest.mark.parametrize("node_id", [None, "sub", "approve"])
def test_resuming_the_parent_resumes_the_child_through_the_subflow_node(node_id: str | None) -> None:
    runtime = FlowRuntime(registry=REGISTRY, blueprints={"child": CHILD_WAITS})
    paused = runtime.run_sync(PARENT)
    done = runtime.resume_sync(PARENT, paused, node_id=node_id, output="yes")
    assert done.status == "completed", done.reason
    assert done.context["_outputs.sub"] == "yes"
    assert done.context["_outputs.done"] == "yes"


def test_a_loop_controller_without_a_continue_edge_is_refused_at_load() -> None:
    bp = {"id": "l", "nodes": [{"id": "loop", "uses": "loop-controller", "params": {"condition": "true"}},
                               {"id": "x", "uses": "const"}],
          "edges": [{"source": "loop", "target": "x", "action": "break"}]}
    with pytest.raises(BlueprintError, match="Loop 'loop' has no continue edge to start node"):
        FlowRuntime(registry=REGISTRY).load(bp)
    with pytest.raises(BlueprintError, match="Loop 'loop' has no continue edge"):
        load_blueprints([bp], registry=REGISTRY)


def test_the_result_context_never_holds_an_internal_undefined_marker() -> None:
    def wrap(ctx: Any) -> dict[str, Any]:
        return {"output": {"value": ctx.input, "list": [ctx.input, 1]}}

    async def stash(ctx: Any) -> None:
        await ctx.context.set("stashed", {"missing": ctx.input})

    bp = {"id": "u", "nodes": [{"id": "w", "uses": "wrap"}, {"id": "s", "uses": "stash"}]}
    result = FlowRuntime(registry={"wrap": wrap, "stash": stash}).run_sync(bp)
    assert result.status == "completed"
    assert result.context["_outputs.w"] == {"list": [None, 1]}
    assert result.context["stashed"] == {}
    json.dumps(result.context)


def test_an_undefined_nested_in_an_output_is_stored_distributed_as_json() -> None:
    def wrap(ctx: Any) -> dict[str, Any]:
        return {"output": {"value": ctx.input}}

    registry = {"wrap": wrap}
    bp = load_blueprint({"id": "u", "nodes": [{"id": "w", "uses": "wrap"}]}, registry=registry)
    state, _ = run_distributed(bp, registry, {}, DefaultEvaluator())
    assert state.status == "completed", state.meta.reason
    assert state.context["_outputs.w"] == {}


def test_literals_are_literals_under_the_default_evaluator() -> None:
    evaluator = DefaultEvaluator()
    assert evaluator.evaluate("true", {}) is True
    assert evaluator.evaluate("false", {}) is False
    assert evaluator.evaluate("null", {}) is None
    assert evaluator.evaluate("3", {}) == 3


def test_a_loop_with_condition_true_keeps_looping_until_its_maximum() -> None:
    bp = {
        "id": "forever",
        "nodes": [
            {"id": "loop", "uses": "loop-controller", "params": {"condition": "true", "maxIterations": 3},
             "config": {"joinStrategy": "any"}},
            {"id": "body", "uses": "const", "params": {"value": 1}},
        ],
        "edges": [{"source": "loop", "target": "body", "action": "continue"}, {"source": "body", "target": "loop"}],
    }
    result = FlowRuntime(registry=REGISTRY).run_sync(bp)
    assert result.status == "failed"
    assert result.reason == "Loop 'loop' exceeded its maximum of 3 iterations"


@pytest.mark.parametrize("path", ["a.x.01", "a.items.01", "a.items.1", "a.items.length", "a.s.0", "a.x.$y"])
def test_input_paths_read_as_property_expressions_do(path: str) -> None:
    value = {"x": {"01": "key 01", "$y": 5}, "items": ["zero", "one"], "s": "hi"}
    context = {"_outputs.a": value}
    assert resolve_value(context, path) == property_evaluate(path, {"a": value})


def test_an_input_path_with_a_non_ascii_segment_fails_the_run_with_a_clear_reason() -> None:
    bp = {"id": "p", "nodes": [{"id": "a", "uses": "const", "params": {"value": {"x": 1}}},
                               {"id": "b", "uses": "echo", "inputs": "a.²"}],
          "edges": [{"source": "a", "target": "b"}]}
    result = FlowRuntime(registry=REGISTRY).run_sync(bp)
    assert result.status == "failed"
    assert result.reason is not None and result.reason.startswith("Node 'b' failed: inputs 'a.²'")
    loaded = load_blueprint(bp, registry=REGISTRY)
    state, _ = run_distributed(loaded, REGISTRY, {}, DefaultEvaluator())
    assert state.status == "failed"
    assert state.meta.reason == result.reason


def test_a_sleep_inside_a_subflow_wakes_through_the_parent() -> None:
    clock = {"now": 100.0}
    child = {"id": "napper", "nodes": [{"id": "nap", "uses": "sleep", "params": {"duration": "1s"}},
                                       {"id": "after", "uses": "const", "params": {"value": "rested"}}],
             "edges": [{"source": "nap", "target": "after"}]}
    parent = {"id": "outer", "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "napper"}},
                                       {"id": "done", "uses": "echo"}],
              "edges": [{"source": "sub", "target": "done"}]}
    runtime = FlowRuntime(registry=REGISTRY, blueprints={"napper": child}, clock=lambda: clock["now"])

    async def scenario() -> tuple[Any, list[Any]]:
        paused = await runtime.run(parent)
        clock["now"] += 1
        return paused, await runtime.scheduler.resume_due()

    paused, woken = asyncio.run(scenario())
    assert paused.status == "awaiting"
    assert paused.awaiting["sub"]["awaiting"] == {"nap": {"reason": "timer", "wakeUpAt": 101.0}}
    assert [r.status for r in woken] == ["completed"]
    assert woken[0].context["_outputs.done"] == "rested"
    assert list(runtime.scheduler.pending) == []
