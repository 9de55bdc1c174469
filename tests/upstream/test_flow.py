"""Port of upstream packages/core/test/flow.test.ts (the FlowBuilder)."""

from __future__ import annotations

from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime, create_flow, load_blueprint
from flowcraft_sqs.errors import BlueprintError
from flowcraft_sqs.nodes import BaseNode


def empty_node(ctx: Any) -> dict[str, Any]:
    return {}


def test_node_with_a_function_adds_a_definition_naming_its_registered_key() -> None:
    flow = create_flow("test").node("A", empty_node)
    blueprint = flow.to_blueprint()
    # Upstream's definition also shows `params: undefined`; JSON has no undefined, so it is absent.
    assert blueprint["nodes"] == [{"id": "A", "uses": next(iter(flow.registry))}]
    assert blueprint["nodes"][0]["uses"].startswith("fn_empty_node_")


def test_node_with_a_class_adds_a_definition() -> None:
    class TestNode(BaseNode):
        def exec(self, prep_result: Any, ctx: Any) -> Any:
            return {"output": "test"}

    blueprint = create_flow("test").node("A", TestNode).to_blueprint()
    assert [n["id"] for n in blueprint["nodes"]] == ["A"]


def test_edge_adds_an_edge_definition() -> None:
    flow = create_flow("test").node("A", empty_node).node("B", empty_node).edge("A", "B")
    assert flow.to_blueprint()["edges"] == [{"source": "A", "target": "B"}]


def test_edge_returns_the_builder_for_chaining() -> None:
    flow = create_flow("test").node("A", empty_node).node("B", empty_node).node("C", empty_node)
    assert flow.edge("A", "B").edge("B", "C") is flow
    assert len(flow.to_blueprint()["edges"]) == 2


def test_edge_options_action_condition_and_transform_are_kept() -> None:
    flow = create_flow("test").node("A", empty_node).node("B", empty_node)
    flow.edge("A", "B", action="success", condition="true", transform="input")
    assert flow.to_blueprint()["edges"][0] == {
        "source": "A", "target": "B", "action": "success", "condition": "true", "transform": "input",
    }


def test_to_blueprint_with_no_nodes_raises() -> None:
    with pytest.raises(BlueprintError, match="Cannot build a blueprint with no nodes."):
        create_flow("test").to_blueprint()


def test_to_blueprint_returns_a_loadable_blueprint() -> None:
    flow = create_flow("test").node("A", empty_node).node("B", empty_node).edge("A", "B")
    blueprint = flow.to_blueprint()
    assert blueprint["id"] == "test"
    assert (len(blueprint["nodes"]), len(blueprint["edges"])) == (2, 1)
    assert load_blueprint(blueprint, registry=flow.registry).id == "test"


def test_a_function_implementation_is_registered_under_a_unique_key() -> None:
    flow = create_flow("test").node("A", empty_node)
    assert list(flow.get_function_registry().values()) == [empty_node]


def test_a_class_implementation_is_registered_under_its_name() -> None:
    class TestNode(BaseNode):
        pass

    assert "TestNode" in create_flow("test").node("A", TestNode).registry


def test_a_class_without_a_name_of_its_own_gets_a_class_key() -> None:
    # Python has no anonymous classes; a class named BaseNode (or with no name) stands in.
    unnamed = type("BaseNode", (BaseNode,), {})
    registry = create_flow("test").node("A", unnamed).registry
    assert len(registry) == 1
    assert next(iter(registry)).startswith("class_")


def test_the_registry_holds_every_implementation() -> None:
    class TestNode(BaseNode):
        pass

    flow = create_flow("test").node("A", empty_node).node("B", TestNode)
    assert len(flow.registry) == 2


def test_keys_are_deterministic_so_a_worker_building_the_same_flow_gets_the_same_keys() -> None:
    # Ours on purpose: upstream's keys come from a process-wide counter.
    def build() -> dict[str, Any]:
        return create_flow("t").node("A", empty_node).node("B", lambda c: {}).node("C", lambda c: {}).to_blueprint()

    assert build() == build()
    keys = [n["uses"] for n in build()["nodes"]]
    assert keys[0].startswith("fn_empty_node_")
    assert keys[1].startswith("fn_lambda_") and keys[2].startswith("fn_lambda_")
    assert len(set(keys)) == 3


def test_two_flows_registries_merge_without_clashing_keys() -> None:
    first = create_flow("a").node("A", lambda c: {"output": 1})
    second = create_flow("b").node("B", lambda c: {"output": 2})
    assert not set(first.registry) & set(second.registry)


def test_the_same_implementation_used_twice_keeps_one_key() -> None:
    flow = create_flow("t").node("A", empty_node).node("B", empty_node)
    first, second = (n["uses"] for n in flow.to_blueprint()["nodes"])
    assert first == second
    assert len(flow.registry) == 1


def test_batch_makes_a_scatter_and_a_gather_node() -> None:
    blueprint = create_flow("test").batch("batch1", empty_node, input_key="items", output_key="results").to_blueprint()
    assert [n["uses"] for n in blueprint["nodes"]] == ["batch-scatter", "batch-gather"]


def test_batch_wires_its_scatter_to_its_gather() -> None:
    blueprint = create_flow("test").batch("batch1", empty_node, input_key="items", output_key="results").to_blueprint()
    assert blueprint["edges"] == [{"source": "batch1_scatter", "target": "batch1_gather"}]


def test_batch_with_a_class_worker_registers_the_class_by_name() -> None:
    class BatchWorker(BaseNode):
        def exec(self, prep_result: Any, ctx: Any) -> Any:
            return {"output": "processed"}

    flow = create_flow("test").batch("batch1", BatchWorker, input_key="items", output_key="results")
    assert [n["uses"] for n in flow.to_blueprint()["nodes"]] == ["batch-scatter", "batch-gather"]
    assert "BatchWorker" in flow.registry


def test_loop_adds_a_loop_controller_node() -> None:
    flow = create_flow("test").node("start", empty_node).node("end", empty_node).edge("start", "end")
    flow.loop("loop1", start_node_id="start", end_node_id="end", condition="i < 10")
    assert flow.to_blueprint()["nodes"][2]["uses"] == "loop-controller"


def test_loop_wires_continue_and_break_paths() -> None:
    flow = create_flow("test").node("start", empty_node).node("inner", empty_node).node("end", empty_node)
    flow.edge("start", "loop").edge("loop", "end")
    flow.loop("loop", start_node_id="inner", end_node_id="inner", condition="i < 10")
    edges = flow.to_blueprint()["edges"]
    assert len(edges) == 4
    # Ours reads `_outputs.inner` where upstream reads the bare key `inner`, which only
    # upstream's in-memory runtime writes.
    assert edges[2] == {"source": "inner", "target": "loop"}
    assert edges[3] == {"source": "loop", "target": "inner", "action": "continue",
                        "transform": 'context["_outputs.inner"]'}
    assert edges[0] == {"source": "loop", "target": "end", "action": "break",
                        "transform": 'context["_outputs.inner"]'}


def test_loop_with_a_missing_end_node_raises() -> None:
    flow = create_flow("test").node("start", empty_node).edge("start", "end")
    flow.loop("loop1", start_node_id="start", end_node_id="nonexistent", condition="i < 10")
    with pytest.raises(BlueprintError, match="Loop 'loop1' references non-existent end node 'nonexistent'."):
        flow.to_blueprint()


def test_loop_with_a_missing_start_node_raises() -> None:
    flow = create_flow("test").node("end", empty_node)
    flow.loop("loop1", start_node_id="nonexistent", end_node_id="end", condition="i < 10")
    with pytest.raises(BlueprintError, match="Loop 'loop1' references non-existent start node 'nonexistent'."):
        flow.to_blueprint()


def test_cycle_entry_points_go_into_metadata() -> None:
    flow = create_flow("test").node("A", empty_node).set_cycle_entry_point("A")
    assert flow.to_blueprint()["metadata"]["cycleEntryPoints"] == ["A"]


def test_to_graph_of_a_simple_workflow() -> None:
    graph = create_flow("test").node("A", empty_node).node("B", empty_node).edge("A", "B").to_graph()
    assert [n["id"] for n in graph["nodes"]] == ["A", "B"]
    assert graph["edges"] == [{"source": "A", "target": "B"}]


def test_to_graph_draws_a_loop_controller_as_a_loop_back_edge() -> None:
    flow = create_flow("test").node("start", empty_node).node("end", empty_node).edge("start", "end")
    flow.loop("loop1", start_node_id="start", end_node_id="end", condition="i < 10")
    graph = flow.to_graph_representation()
    assert len(graph["nodes"]) == 2
    assert len(graph["edges"]) == 2
    loopback = next(e for e in graph["edges"] if e.get("data", {}).get("isLoopback"))
    assert loopback == {"source": "end", "target": "start",
                        "data": {"isLoopback": True, "condition": "i < 10", "label": "continue if: i < 10"}}


def test_to_graph_draws_break_edges_from_the_loop_end() -> None:
    flow = create_flow("test").node("start", empty_node).node("end", empty_node).node("exit", empty_node)
    flow.edge("start", "end").edge("loop", "exit")
    flow.loop("loop", start_node_id="start", end_node_id="end", condition="i < 10")
    graph = flow.to_graph()
    assert len(graph["nodes"]) == 3
    assert len(graph["edges"]) == 3
    assert any(e["source"] == "end" and e["target"] == "exit" for e in graph["edges"])


def test_to_graph_draws_a_batch_as_one_worker_node() -> None:
    graph = create_flow("test").batch("batch1", empty_node, input_key="items", output_key="results").to_graph()
    assert [(n["id"], n["type"], n["data"]["isBatchPlaceholder"]) for n in graph["nodes"]] == [
        ("batch1", "batch-worker", True)]
    assert graph["edges"] == []


def test_to_graph_of_loops_and_batches_combined() -> None:
    flow = create_flow("test").node("input", empty_node)
    flow.batch("batch1", empty_node, input_key="items", output_key="results").node("output", empty_node)
    flow.edge("input", "batch1").edge("batch1", "output")
    flow.loop("loop1", start_node_id="input", end_node_id="output", condition="i < 5")
    graph = flow.to_graph()
    assert len(graph["nodes"]) == 3
    assert len(graph["edges"]) == 3


def test_to_graph_keeps_node_params_and_edge_actions() -> None:
    flow = create_flow("test").node("A", empty_node, params={"key": "value"}).node("B", empty_node)
    graph = flow.edge("A", "B", action="success").to_graph()
    assert graph["nodes"][0]["params"] == {"key": "value"}
    assert graph["edges"][0]["action"] == "success"


# --- ours: the built flow runs ------------------------------------------------------------


def test_a_built_loop_runs_until_its_condition_is_false() -> None:
    def init(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("count", 0)
        return {"output": "init"}

    def work(ctx: Any) -> dict[str, Any]:
        count = ctx.context.get_sync("count")
        ctx.context.set_sync("count", count + 1)
        return {"output": f"work_{count}"}

    flow = (create_flow("loop").node("init", init).node("work", work).node("end", lambda c: {"output": c.input})
            .edge("init", "again").loop("again", start_node_id="work", end_node_id="work", condition="count < 3")
            .edge("again", "end"))
    result = FlowRuntime(registry=flow.registry).run_sync(flow.to_blueprint())
    assert result.status == "completed"
    assert result.context["count"] == 3
    assert result.context["_outputs.end"] == "work_2"


def test_a_built_batch_runs_its_worker_on_every_item() -> None:
    flow = create_flow("batch").batch("upper", lambda c: {"output": c.input.upper()},
                                      input_key="items", output_key="results")
    result = FlowRuntime(registry=flow.registry).run_sync(flow.to_blueprint(), {"items": ["a", "b"]})
    assert result.status == "completed"
    assert result.context["results"] == ["A", "B"]


def test_wait_sleep_and_subflow_add_their_built_in_nodes() -> None:
    flow = (create_flow("t").wait("approve").sleep("pause", duration="5m")
            .subflow("child", "other", inputs={"x": "y"}, outputs={"z": "w"}))
    assert flow.to_blueprint()["nodes"] == [
        {"id": "approve", "uses": "wait"},
        {"id": "pause", "uses": "sleep", "params": {"duration": "5m"}},
        {"id": "child", "uses": "subflow", "params": {"blueprintId": "other", "inputs": {"x": "y"},
                                                      "outputs": {"z": "w"}}},
    ]


def test_a_built_subflow_runs_its_child_blueprint() -> None:
    child = create_flow("child").node("double", lambda c: {"output": c.input * 2})
    parent = create_flow("parent").node("start", lambda c: {"output": 21}).subflow("call", "child")
    parent.edge("start", "call")
    runtime = FlowRuntime(registry={**child.registry, **parent.registry}, blueprints={"child": child.to_blueprint()})
    result = runtime.run_sync(parent.to_blueprint())
    assert result.status == "completed"
    assert result.context["_outputs.call"] == 42
