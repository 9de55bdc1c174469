"""Rewrites upstream Flowcraft's packages/core/test/runtime.test.ts (the runtime's integration tests)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.errors import BlueprintError
from flowcraft_sqs.events import FlowcraftEvent


class MockEventBus:
    def __init__(self) -> None:
        self.events: list[FlowcraftEvent] = []

    async def emit(self, event: FlowcraftEvent) -> None:
        self.events.append(event)

    def has(self, type_: str) -> bool:
        return any(e.type == type_ for e in self.events)


def returns(value: Any, action: str | None = None) -> Any:
    def node(ctx: Any) -> dict[str, Any]:
        return {"output": value, "action": action}

    return node


def fails(message: str) -> Any:
    def node(ctx: Any) -> None:
        raise RuntimeError(message)

    return node


def flow(bp_id: str, nodes: dict[str, Any], edges: list[tuple[str, str]] | list[dict[str, Any]] = (),
         **node_options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A blueprint and its registry, one implementation per node (as upstream's createFlow)."""
    blueprint = {
        "id": bp_id,
        "nodes": [{"id": nid, "uses": f"{bp_id}:{nid}", **node_options.get(nid, {})} for nid in nodes],
        "edges": [e if isinstance(e, dict) else {"source": e[0], "target": e[1]} for e in edges],
    }
    return blueprint, {f"{bp_id}:{nid}": impl for nid, impl in nodes.items()}


def run(blueprint: dict[str, Any], registry: dict[str, Any], context: dict[str, Any] | None = None,
        **options: Any) -> Any:
    runtime_options = {k: options.pop(k) for k in ("event_bus", "middleware", "dependencies") if k in options}
    runtime = FlowRuntime(registry=registry, **runtime_options)
    return asyncio.run(asyncio.wait_for(runtime.run(blueprint, context or {}, **options), 10))


# --- Core Execution -----------------------------------------------------------------------------


def test_a_simple_linear_blueprint_runs() -> None:
    bp, reg = flow("linear", {"A": returns("resultA"), "B": lambda ctx: {"output": f"{ctx.input}_B"}}, [("A", "B")])
    result = run(bp, reg)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "resultA_B"


def test_a_dag_with_fan_out_and_fan_in_runs_the_join_once() -> None:
    bp, reg = flow("fan", {"A": returns("A"), "B": returns("B"), "C": returns("C"),
                           "D": lambda ctx: {"output": f"input was {ctx.input}"}},
                   [("A", "D"), ("B", "D"), ("C", "D")])
    result = run(bp, reg)
    assert result.status == "completed"
    # Ours: the join reads its last predecessor in blueprint order (the snapshot's rule);
    # this later upstream test expects no input for a join without `inputs`.
    assert result.context["_outputs.D"] == "input was C"


def test_a_failing_branch_of_a_fan_in_fails_the_run_and_the_join_never_runs() -> None:
    bp, reg = flow("stall", {"A": returns("A"), "B": fails("Fail"), "C": returns("C"), "D": returns("D")},
                   [("A", "D"), ("B", "D"), ("C", "D")])
    result = run(bp, reg)
    assert result.status == "failed"
    assert any(e.node_id == "B" for e in result.errors)
    assert "_outputs.D" not in result.context


def test_a_blueprint_with_several_start_nodes_runs_each() -> None:
    bp, reg = flow("multi", {"A": returns("A"), "B": returns("B"),
                             "C": lambda ctx: {"output": f"input was {ctx.input}"}}, [("A", "C"), ("B", "C")])
    result = run(bp, reg)
    assert result.status == "completed"
    assert result.context["_outputs.C"] == "input was B"  # ours: the last start node in blueprint order


def test_a_graph_with_a_cycle_runs_each_node_once_when_not_strict() -> None:
    bp, reg = flow("cycle", {"A": returns("A"), "B": returns("B")}, [("A", "B"), ("B", "A")])
    result = run(bp, reg, strict=False)
    assert result.status == "completed"


def test_a_loop_breaks_when_its_condition_stops_holding() -> None:
    calls = {"n": 0}

    def loop_body(ctx: Any) -> dict[str, Any]:
        calls["n"] += 1
        current = ctx.context.get_sync("counter", 0)
        ctx.context.set_sync("counter", current + 1)
        return {"output": f"iteration_{current + 1}"}

    def start(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("counter", 0)
        return {"output": 0}

    bp, reg = flow("loop-break-test", {"start": start, "loopBody": loop_body, "end": returns("finished")},
                   [("start", "mainLoop-loop"),
                    {"source": "mainLoop-loop", "target": "loopBody", "action": "continue"},
                    ("loopBody", "mainLoop-loop"),
                    {"source": "mainLoop-loop", "target": "end", "action": "break"}])
    # As upstream's builder wires a loop: the entry edge goes into the controller.
    bp["nodes"].append({"id": "mainLoop-loop", "uses": "loop-controller", "params": {"condition": "counter < 2"},
                        "config": {"joinStrategy": "any"}})
    result = run(bp, reg)
    assert result.status == "completed"
    assert calls["n"] == 2
    assert result.context["counter"] == 2
    assert result.context["_outputs.end"] == "finished"


def test_a_failing_node_runs_its_fallback() -> None:
    bp, reg = flow("fallback-test", {"A": fails("Main failed"), "B": returns("fallback success")},
                   A={"config": {"fallback": "B"}})
    result = run(bp, reg)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "fallback success"
    assert result.errors == []


def test_a_node_retries_then_its_fallback_routes_along_its_edges() -> None:
    calls = {"failing": 0, "fallback": 0}

    def failing(ctx: Any) -> None:
        calls["failing"] += 1
        raise RuntimeError("Failing permanently")

    def fallback(ctx: Any) -> dict[str, Any]:
        calls["fallback"] += 1
        return {"output": "fallback-success"}

    bp, reg = flow("retry-fallback-flow",
                   {"start": returns("start"), "failingNode": failing, "fallbackNode": fallback,
                    "endNode": lambda ctx: {"output": f"end-with-{ctx.input}"}},
                   [("start", "failingNode"), ("failingNode", "endNode")],
                   failingNode={"config": {"maxRetries": 3, "fallback": "fallbackNode"}})
    result = run(bp, reg)
    assert result.status == "completed"
    assert calls == {"failing": 3, "fallback": 1}
    assert result.context["_outputs.endNode"] == "end-with-fallback-success"


def test_strict_mode_refuses_a_graph_with_a_cycle() -> None:
    bp, reg = flow("cycle", {"A": returns("A"), "B": returns("B")}, [("A", "B"), ("B", "A")])
    with pytest.raises(BlueprintError, match="Cycles are not allowed"):
        run(bp, reg, strict=True)


def concurrency_probe(count: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    seen = {"now": 0, "max": 0}

    async def work(ctx: Any) -> dict[str, Any]:
        seen["now"] += 1
        seen["max"] = max(seen["max"], seen["now"])
        for _ in range(3):  # yield to the other nodes, as simulated work would
            await asyncio.sleep(0)
        seen["now"] -= 1
        return {"output": ctx.node_id}

    bp, reg = flow("concurrency-test", {f"node{i}": work for i in range(count)})
    return bp, reg, seen


def test_a_concurrency_limit_bounds_the_nodes_running_at_once() -> None:
    bp, reg, seen = concurrency_probe(5)
    assert run(bp, reg, concurrency=2).status == "completed"
    assert seen["max"] <= 2


def test_without_a_limit_every_ready_node_runs_at_once() -> None:
    bp, reg, seen = concurrency_probe(4)
    assert run(bp, reg).status == "completed"
    assert seen["max"] == 4


def test_a_concurrency_of_one_runs_nodes_one_after_another() -> None:
    bp, reg, seen = concurrency_probe(3)
    assert run(bp, reg, concurrency=1).status == "completed"
    assert seen["max"] == 1


def test_conditional_edges_route_by_action_and_nodes_share_the_context() -> None:
    def a(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("shared_value", 42)
        return {"output": "start"}

    bp, reg = flow("conditional-flow",
                   {"A": a, "B": returns(True, "path-c"),
                    "C": lambda ctx: {"output": f"C received {ctx.context.get_sync('shared_value')}"},
                    "D": returns("D should not run")},
                   [("A", "B"), {"source": "B", "target": "C", "action": "path-c"},
                    {"source": "B", "target": "D", "action": "path-d"}])
    result = run(bp, reg)
    assert result.status == "completed"
    assert result.context["_outputs.C"] == "C received 42"
    assert "_outputs.D" not in result.context
    assert result.context["shared_value"] == 42


# --- State Management & Data Flow --------------------------------------------------------------


def test_a_nodes_output_is_saved_under_its_id() -> None:
    bp, reg = flow("save", {"A": returns("test")})
    assert run(bp, reg).context["_outputs.A"] == "test"


def test_a_string_inputs_mapping_selects_the_input() -> None:
    bp, reg = flow("input", {"A": returns("data"), "B": lambda ctx: {"output": f"{ctx.input}_B"}}, [("A", "B")],
                   B={"inputs": "A"})
    assert run(bp, reg).context["_outputs.B"] == "data_B"


def test_an_object_inputs_mapping_builds_the_input() -> None:
    bp, reg = flow("complex", {"A": returns({"key": "value"}),
                               "B": lambda ctx: {"output": f"{ctx.input['data']['key']}_B"}},
                   [("A", "B")], B={"inputs": {"data": "A"}})
    assert run(bp, reg).context["_outputs.B"] == "value_B"


def test_a_single_predecessors_output_is_the_input_without_a_mapping() -> None:
    bp, reg = flow("single", {"A": returns("data"), "B": lambda ctx: {"output": f"{ctx.input}_B"}}, [("A", "B")])
    assert run(bp, reg).context["_outputs.B"] == "data_B"


def test_an_edge_transform_changes_the_data_flowing_along_it() -> None:
    bp, reg = flow("transform", {"A": returns(10), "B": lambda ctx: {"output": ctx.input}},
                   [{"source": "A", "target": "B", "transform": "input * 2"}])
    assert run(bp, reg).context["_outputs.B"] == 20  # the default evaluator's safe subset, not eval


def test_an_undefined_output_is_saved_as_a_completed_node() -> None:
    bp, reg = flow("undefined", {"A": returns(None)})
    result = run(bp, reg)
    assert "_outputs.A" in result.context
    assert result.context["_outputs.A"] is None  # undefined is stored as null (JSON, DynamoDB)


def test_a_node_with_several_predecessors_and_no_mapping_reads_the_last_of_them() -> None:
    bp, reg = flow("multi-no-input", {"A": returns("A"), "B": returns("B"),
                                      "C": lambda ctx: {"output": "no-input" if ctx.input is None else f"had {ctx.input}"}},
                   [("A", "C"), ("B", "C")])
    # Ours: the snapshot's rule (the last predecessor in blueprint order); this later
    # upstream test expects no input.
    assert run(bp, reg).context["_outputs.C"] == "had B"


# --- Control Flow --------------------------------------------------------------------------------


def test_an_edge_is_followed_by_the_returned_action() -> None:
    bp, reg = flow("action", {"A": returns("A", "success"), "B": returns("B"), "C": returns("C")},
                   [{"source": "A", "target": "B", "action": "success"}, {"source": "A", "target": "C", "action": "fail"}])
    result = run(bp, reg)
    assert result.context["_outputs.B"] == "B"
    assert "_outputs.C" not in result.context


def test_a_true_edge_condition_is_followed() -> None:
    bp, reg = flow("condition-true", {"A": returns({"status": "OK"}), "B": returns("B"), "C": returns("C")},
                   [{"source": "A", "target": "B", "condition": "result.output.status === 'OK'"},
                    {"source": "A", "target": "C", "condition": "result.output.status === 'ERROR'"}])
    result = run(bp, reg)
    assert result.context["_outputs.B"] == "B"
    assert "_outputs.C" not in result.context


def test_a_false_edge_condition_is_not_followed() -> None:
    bp, reg = flow("condition-false", {"A": returns("A"), "B": returns("B"), "C": returns("C")},
                   [{"source": "A", "target": "B", "condition": "1 === 2"}, ("A", "C")])
    result = run(bp, reg)
    assert "_outputs.B" not in result.context
    assert result.context["_outputs.C"] == "C"


def test_the_default_edge_is_followed_when_no_action_matches() -> None:
    bp, reg = flow("default", {"A": returns("A", "unknown"), "B": returns("B"), "C": returns("C")},
                   [{"source": "A", "target": "B", "action": "known"}, ("A", "C")])
    result = run(bp, reg)
    assert "_outputs.B" not in result.context
    assert result.context["_outputs.C"] == "C"


# --- Extensibility & Observability ---------------------------------------------------------------


def test_around_node_middleware_wraps_execution_first_registered_outermost() -> None:
    order: list[str] = []

    def around(name: str) -> Any:
        async def hook(ctx: Any, node_id: str, next_: Any) -> Any:
            order.append(f"before{name}")
            result = await next_()
            order.append(f"after{name}")
            return result
        return {"around_node": hook}

    def a(ctx: Any) -> dict[str, Any]:
        order.append("exec")
        return {"output": "A"}

    bp, reg = flow("mw-around", {"A": a})
    run(bp, reg, middleware=[around("1"), around("2")])
    assert order == ["before1", "before2", "exec", "after2", "after1"]


def test_around_node_may_short_circuit_by_not_calling_next() -> None:
    async def short(ctx: Any, node_id: str, next_: Any) -> dict[str, Any]:
        return {"output": "short-circuit"}

    bp, reg = flow("mw-short", {"A": returns("should-not-run")})
    assert run(bp, reg, middleware=[{"aroundNode": short}]).context["_outputs.A"] == "short-circuit"


def test_before_and_after_node_run_once_for_each_node() -> None:
    calls: list[str] = []
    middleware = [{"beforeNode": lambda ctx, nid: calls.append("before"),
                   "afterNode": lambda ctx, nid, result, error: calls.append("after")}]
    bp, reg = flow("mw-before-after", {"A": returns("A")})
    run(bp, reg, middleware=middleware)
    assert calls == ["before", "after"]


def test_after_node_runs_even_when_the_node_fails() -> None:
    calls: list[Any] = []
    bp, reg = flow("mw-after-fail", {"A": fails("Fail")})
    run(bp, reg, middleware=[{"afterNode": lambda ctx, nid, result, error: calls.append(error)}])
    assert len(calls) == 1


def test_workflow_start_and_finish_are_emitted() -> None:
    bus = MockEventBus()
    bp, reg = flow("events-workflow", {"A": returns("A")})
    run(bp, reg, event_bus=bus)
    assert bus.has("workflow:start")
    assert bus.has("workflow:finish")


def test_node_start_finish_retry_and_error_are_emitted() -> None:
    bus = MockEventBus()
    attempts = {"n": 0}

    def a(ctx: Any) -> dict[str, Any]:
        attempts["n"] += 1
        if attempts["n"] < 2:
            raise RuntimeError("Retry me")
        return {"output": "A"}

    bp, reg = flow("events-node", {"A": a, "B": fails("Fail me")}, A={"config": {"maxRetries": 2}})
    run(bp, reg, event_bus=bus)
    for kind in ("node:start", "node:finish", "node:retry", "node:error"):
        assert bus.has(kind), kind


def test_dependencies_and_the_logger_reach_a_function_node() -> None:
    deps = {"db": {"query": lambda: "data"}}
    captured: dict[str, Any] = {}

    def a(ctx: Any) -> dict[str, Any]:
        captured.update(ctx.dependencies)
        return {"output": "A"}

    bp, reg = flow("deps-fn", {"A": a})
    run(bp, reg, dependencies=deps)
    assert captured["db"] is deps["db"]
    assert captured["logger"] is not None


# --- Cancellation ---------------------------------------------------------------------------------


def test_a_signal_set_mid_flight_cancels_the_run() -> None:
    signal = threading.Event()

    def a(ctx: Any) -> dict[str, Any]:
        signal.set()  # cancelled after the first node started
        return {"output": "A"}

    bp, reg = flow("cancel-me", {"A": a, "B": returns("B")}, [("A", "B")])
    result = run(bp, reg, signal=signal)
    assert result.status == "cancelled"
    assert "_outputs.B" not in result.context


def test_the_signal_is_passed_to_the_node_context() -> None:
    signal = threading.Event()
    received: list[Any] = []

    def a(ctx: Any) -> dict[str, Any]:
        received.append(ctx.signal)
        return {"output": "A"}

    bp, reg = flow("cancel-signal", {"A": a})
    run(bp, reg, signal=signal)
    assert received == [signal]
