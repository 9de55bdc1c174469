"""Rewrites upstream Flowcraft's packages/core/test/runtime/builtins.test.ts (batch, loop, subflow, wait, sleep)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.errors import BlueprintError


def run(bp: dict[str, Any], registry: dict[str, Any], blueprints: dict[str, Any] | None = None,
        clock: Any = None) -> Any:
    options: dict[str, Any] = {"registry": registry, "blueprints": blueprints}
    if clock is not None:
        options["clock"] = clock
    runtime = FlowRuntime(**options)
    return asyncio.run(asyncio.wait_for(runtime.run(bp, {}), 20))


def batch_flow(bp_id: str, items: Any, worker_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What upstream's `flow.batch('test-batch', worker, {inputKey: 'prepare', outputKey: 'results'})`
    builds: `<id>_scatter` -> `<id>_gather`, wired between `prepare` and `verify`."""
    params = {"workerUsesKey": "worker", "outputKey": "results", "gatherNodeId": "test-batch_gather"}
    if worker_params is not None:
        params = worker_params
    return {
        "id": bp_id,
        "nodes": [
            {"id": "prepare", "uses": "prepare", "params": {"items": items}},
            {"id": "test-batch_scatter", "uses": "batch-scatter", "inputs": "prepare", "params": params},
            {"id": "test-batch_gather", "uses": "batch-gather", "config": {"joinStrategy": "all"},
             "params": {"gatherNodeId": "test-batch_gather", "outputKey": "results"}},
            {"id": "verify", "uses": "verify"},
        ],
        "edges": [
            {"source": "prepare", "target": "test-batch_scatter"},
            {"source": "test-batch_scatter", "target": "test-batch_gather"},
            {"source": "test-batch_gather", "target": "verify"},
        ],
    }


def prepare(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.params["items"]}


ITEMS = [{"id": 1, "data": "item1"}, {"id": 2, "data": "item2"}, {"id": 3, "data": "item3"}]


# --- Batch Operations ---------------------------------------------------------------------------


def test_a_batch_runs_the_worker_for_every_item_and_gathers_in_order() -> None:
    count = {"n": 0}
    seen: list[Any] = []

    def worker(ctx: Any) -> dict[str, Any]:
        count["n"] += 1
        return {"output": f"processed_{ctx.input['id']}_{ctx.input['data']}"}

    def verify(ctx: Any) -> dict[str, Any]:
        seen.append(ctx.input)
        return {"output": "verified"}

    result = run(batch_flow("batch-test", ITEMS), {"prepare": prepare, "worker": worker, "verify": verify})
    assert result.status == "completed"
    assert seen == [["processed_1_item1", "processed_2_item2", "processed_3_item3"]]
    assert result.context["_outputs.verify"] == "verified"
    assert count["n"] == 3


def test_an_empty_batch_runs_no_worker_and_gathers_nothing() -> None:
    def worker(ctx: Any) -> None:
        raise AssertionError("Worker should not execute")

    seen: list[Any] = []

    def verify(ctx: Any) -> dict[str, Any]:
        seen.append(ctx.input)
        return {"output": "verified"}

    result = run(batch_flow("empty-batch-test", []), {"prepare": prepare, "worker": worker, "verify": verify})
    assert result.status == "completed"
    assert seen == [[]]
    assert result.context["_outputs.verify"] == "verified"


def test_a_failing_batch_worker_fails_the_run() -> None:
    count = {"n": 0}

    def worker(ctx: Any) -> dict[str, Any]:
        count["n"] += 1
        if ctx.input["id"] == 2:
            raise RuntimeError("Worker 2 failed")
        return {"output": "ok"}

    result = run(batch_flow("batch-fail-test", ITEMS[:2]), {"prepare": prepare, "worker": worker,
                                                             "verify": lambda ctx: {"output": "verified"}})
    assert result.status == "failed"
    # Ours keeps the worker's message (upstream: the generic "execution failed").
    assert result.errors[0].message == "Node 'test-batch_scatter_item_1' failed: Worker 2 failed"
    assert count["n"] == 2


def test_a_batch_scatter_without_an_array_fails_the_run() -> None:
    result = run(batch_flow("non-array-input-test", "not an array"),
                 {"prepare": prepare, "worker": lambda ctx: {"output": "w"}, "verify": lambda ctx: {"output": "x"}})
    assert result.status == "failed"
    assert result.reason == "Node 'test-batch_scatter' failed: batch-scatter input must be an array, got a str"


def test_a_batch_scatter_without_its_params_is_refused_at_load() -> None:
    # Upstream's builder fills the params in, so its run completes; a blueprint written
    # without them is refused here when it is loaded, naming what is missing.
    bp = batch_flow("missing-params-test", [], worker_params={})
    with pytest.raises(BlueprintError, match="batch-scatter needs params.workerUsesKey"):
        run(bp, {"prepare": prepare, "verify": lambda ctx: {"output": "should not reach"}})


# --- Loop Controller ------------------------------------------------------------------------------


def loop_flow(bp_id: str, body: list[str], condition: str, before: str, after: str,
              max_iterations: int | None = None) -> dict[str, Any]:
    """A loop as upstream's builder wires it: entry and exit through the controller."""
    params: dict[str, Any] = {"condition": condition}
    if max_iterations is not None:
        params["maxIterations"] = max_iterations
    nodes = [before, *body, after]
    edges = [{"source": before, "target": "loop"}, {"source": "loop", "target": body[0], "action": "continue"}]
    edges += [{"source": a, "target": b} for a, b in zip(body, body[1:], strict=False)]
    edges += [{"source": body[-1], "target": "loop"}, {"source": "loop", "target": after, "action": "break"}]
    return {"id": bp_id, "nodes": [{"id": n, "uses": n} for n in nodes]
            + [{"id": "loop", "uses": "loop-controller", "params": params, "config": {"joinStrategy": "any"}}],
            "edges": edges}


def test_a_loop_exits_once_its_condition_fails() -> None:
    def initialize(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("count", 0)
        return {"output": "Initialized"}

    def increment(ctx: Any) -> dict[str, Any]:
        count = (ctx.context.get_sync("count") or 0) + 1
        ctx.context.set_sync("count", count)
        return {"output": count}

    def finalize(ctx: Any) -> dict[str, Any]:
        return {"output": f"Finalized at {ctx.context.get_sync('count')}"}

    bp = loop_flow("simple-loop-exit-test", ["increment"], "count < 5", "initialize", "finalize")
    result = run(bp, {"initialize": initialize, "increment": increment, "finalize": finalize})
    assert result.status == "completed"
    assert result.context["_outputs.finalize"] == "Finalized at 5"
    assert result.context["count"] == 5


def test_a_loop_runs_its_body_the_given_number_of_times_then_breaks() -> None:
    runs = {"n": 0}

    def initialize(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("counter", 0)
        return {"output": "initialized"}

    def increment(ctx: Any) -> dict[str, Any]:
        runs["n"] += 1
        counter = ctx.context.get_sync("counter") or 0
        ctx.context.set_sync("counter", counter + 1)
        return {"output": f"iteration_{counter + 1}"}

    bp = loop_flow("loop-iterations-test", ["increment", "check"], "counter < 3", "initialize", "final")
    registry = {"initialize": initialize, "increment": increment,
                "check": lambda ctx: {"output": f"checked_{ctx.context.get_sync('counter')}"},
                "final": lambda ctx: {"output": "final"}}
    result = run(bp, registry)
    assert result.status == "completed"
    assert result.context["_outputs.final"] == "final"
    assert runs["n"] == 3


def test_a_loop_that_never_ends_is_stopped_by_its_iteration_limit() -> None:
    # Upstream throws "Traversal exceeded maximum iterations"; ours fails the run at the
    # controller's maxIterations (default 1000), in process and distributed alike.
    bp = loop_flow("infinite-loop-test", ["work", "always-true"], "true", "entry", "never")
    registry = {n: (lambda ctx: {"output": "x"}) for n in ("entry", "work", "always-true", "never")}
    result = run(bp, registry)
    assert result.status == "failed"
    assert result.reason == "Loop 'loop' exceeded its maximum of 1000 iterations"


# --- Subflow --------------------------------------------------------------------------------------


def test_a_subflow_runs_and_maps_its_outputs_into_the_parent() -> None:
    seen: list[Any] = []

    def output(ctx: Any) -> dict[str, Any]:
        seen.append(ctx.context.get_sync("subflow_output"))
        return {"output": "main_complete"}

    main = {"id": "main-subflow-test", "nodes": [
        {"id": "input", "uses": "input"},
        {"id": "test-subflow", "uses": "subflow",
         "params": {"blueprintId": "subflow-test", "inputs": {"input": "input"}, "outputs": {"subflow_output": "process"}}},
        {"id": "output", "uses": "output"}],
        "edges": [{"source": "input", "target": "test-subflow"}, {"source": "test-subflow", "target": "output"}]}
    sub = {"id": "subflow-test", "nodes": [{"id": "process", "uses": "process", "inputs": "input"}]}
    registry = {"input": lambda ctx: {"output": {"value": "test"}}, "output": output,
                "process": lambda ctx: {"output": f"processed_{ctx.input['value']}"}}
    result = run(main, registry, {"subflow-test": sub})
    assert result.status == "completed"
    assert seen == ["processed_test"]
    assert result.context["_outputs.output"] == "main_complete"


def subflow_parent(bp_id: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"id": bp_id, "nodes": [{"id": "input", "uses": "input"}, {"id": "test-subflow", "uses": "subflow", "params": params}],
            "edges": [{"source": "input", "target": "test-subflow"}]}


INPUT = {"input": lambda ctx: {"output": "test"}}


def test_a_failing_subflow_fails_the_parent_with_its_nodes_error() -> None:
    def fail(ctx: Any) -> None:
        raise RuntimeError("Subflow failed")

    main = subflow_parent("subflow-error-test", {"blueprintId": "failing-subflow", "inputs": {"input": "input"}})
    sub = {"id": "failing-subflow", "nodes": [{"id": "fail", "uses": "fail"}]}
    result = run(main, {**INPUT, "fail": fail}, {"failing-subflow": sub})
    assert result.status == "failed"
    # Ours keeps the child's message (upstream: "Node 'fail' execution failed").
    assert any("Node 'fail' failed: Subflow failed" in e.message for e in result.errors)


def test_a_subflow_without_a_blueprint_id_fails_the_run() -> None:
    result = run(subflow_parent("missing-blueprintid-test", {"inputs": {"input": "input"}}), INPUT)
    assert result.status == "failed"
    assert any("missing its 'blueprintId' parameter" in e.message for e in result.errors)


def test_a_subflow_naming_an_unknown_blueprint_fails_the_run() -> None:
    params = {"blueprintId": "nonexistent-subflow", "inputs": {"input": "input"}}
    result = run(subflow_parent("missing-subblueprint-test", params), INPUT)
    assert result.status == "failed"
    assert any("'nonexistent-subflow' is not registered" in e.message for e in result.errors)


# --- WaitNode -------------------------------------------------------------------------------------


def test_a_wait_node_marks_the_run_awaiting() -> None:
    bp = {"id": "wait-test", "nodes": [{"id": "start", "uses": "start"}, {"id": "wait", "uses": "wait"},
                                      {"id": "end", "uses": "end"}],
          "edges": [{"source": "start", "target": "wait"}, {"source": "wait", "target": "end"}]}
    result = run(bp, {"start": lambda ctx: {"output": "start"}, "end": lambda ctx: {"output": "end"}})
    assert result.status == "awaiting"


def test_a_subflow_with_several_terminals_outputs_each_of_them() -> None:
    seen: list[Any] = []

    def output(ctx: Any) -> dict[str, Any]:
        seen.append(ctx.context.get_sync("_outputs.test-subflow"))
        return {"output": "main_complete"}

    main = subflow_parent("multiple-terminals-test", {"blueprintId": "multi-terminal-subflow", "inputs": {"input": "input"}})
    main["nodes"].append({"id": "output", "uses": "output"})
    main["edges"].append({"source": "test-subflow", "target": "output"})
    sub = {"id": "multi-terminal-subflow", "nodes": [{"id": "term1", "uses": "term1"}, {"id": "term2", "uses": "term2"}]}
    registry = {**INPUT, "output": output, "term1": lambda ctx: {"output": "term1"}, "term2": lambda ctx: {"output": "term2"}}
    result = run(main, registry, {"multi-terminal-subflow": sub})
    assert result.status == "completed"
    assert seen == [{"term1": "term1", "term2": "term2"}]
    assert result.context["_outputs.output"] == "main_complete"


# --- SleepNode ------------------------------------------------------------------------------------


def sleep_flow(bp_id: str, duration: Any) -> dict[str, Any]:
    return {"id": bp_id, "nodes": [{"id": "start", "uses": "start"},
                                   {"id": "sleep", "uses": "sleep", "params": {"duration": duration}},
                                   {"id": "end", "uses": "end"}],
            "edges": [{"source": "start", "target": "sleep"}, {"source": "sleep", "target": "end"}]}


ENDS = {"start": lambda ctx: {"output": "start"}, "end": lambda ctx: {"output": "end"}}


def test_a_sleep_marks_the_run_awaiting_with_its_timer() -> None:
    result = run(sleep_flow("sleep-test", 1000), ENDS, clock=lambda: 100.0)
    assert result.status == "awaiting"
    # Ours: the details are in `result.awaiting` (upstream: `_awaitingDetails` in the context),
    # and wakeUpAt is epoch seconds.
    assert result.awaiting == {"sleep": {"reason": "timer", "wakeUpAt": 101.0}}


def test_a_negative_sleep_duration_fails_the_run() -> None:
    result = run(sleep_flow("invalid-sleep-test", -100), ENDS)
    assert result.status == "failed"
    assert result.errors[0].message == "Node 'sleep' failed: sleep duration must not be negative, not -100"


def test_a_sleep_duration_may_be_text_like_5s() -> None:
    result = run(sleep_flow("string-sleep-test", "5s"), ENDS)
    assert result.status == "awaiting"
    assert "sleep" in result.awaiting


def test_a_sleep_duration_that_cannot_be_read_fails_the_run() -> None:
    assert run(sleep_flow("invalid-string-sleep-test", "invalid"), ENDS).status == "failed"
