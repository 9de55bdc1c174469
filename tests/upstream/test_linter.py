"""Port of upstream packages/core/test/linter.test.ts (lintBlueprint)."""

from __future__ import annotations

from typing import Any

from flowcraft_sqs import create_flow, lint_blueprint, load_blueprint
from flowcraft_sqs.nodes import BaseNode


def node(ctx: Any) -> dict[str, Any]:
    return {}


REGISTRY = {"node": node}


def blueprint(nodes: list[tuple[str, str]], edges: list[tuple[str, str]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"id": "test", "nodes": [{"id": i, "uses": u} for i, u in nodes],
            "edges": [{"source": s, "target": t} for s, t in edges]}


def codes(result: Any) -> list[str]:
    return [issue.code for issue in result.issues]


# --- implementation checks ------------------------------------------------------------------


def test_a_blueprint_whose_implementations_are_all_registered_is_valid() -> None:
    class TestNode(BaseNode):
        pass

    result = lint_blueprint(blueprint([("A", "func1"), ("B", "TestNode")]), {"func1": node, "TestNode": TestNode})
    assert result.is_valid
    assert result.issues == []


def test_a_uses_key_missing_from_the_registry_is_reported() -> None:
    result = lint_blueprint(blueprint([("A", "missing")]), {})
    assert not result.is_valid
    assert codes(result) == ["MISSING_NODE_IMPLEMENTATION"]


def test_every_missing_implementation_is_reported() -> None:
    result = lint_blueprint(blueprint([("A", "missing1"), ("B", "missing2")]), {})
    assert codes(result) == ["MISSING_NODE_IMPLEMENTATION", "MISSING_NODE_IMPLEMENTATION"]


def test_built_in_nodes_need_no_implementation() -> None:
    # Upstream exempts batch-* and loop-* only; wait, sleep and subflow are built in here too.
    nodes = [("A", "loop-controller"), ("B", "wait"), ("C", "sleep")]
    result = lint_blueprint(blueprint(nodes, [("A", "B"), ("B", "C")]), {})
    assert "MISSING_NODE_IMPLEMENTATION" not in codes(result)


def test_a_batch_scatter_without_a_worker_key_is_a_batch_issue_not_a_missing_implementation() -> None:
    # Upstream's case lints a bare `batch-scatter` and finds it valid; ours asks for its keys.
    result = lint_blueprint(blueprint([("A", "batch-scatter")]), {})
    assert codes(result) == ["INVALID_BATCH_WORKER_KEY", "INVALID_BATCH_GATHER_NODE"]


def test_an_empty_registry_reports_the_missing_implementation() -> None:
    result = lint_blueprint(blueprint([("A", "missing")]), {})
    assert not result.is_valid
    assert len(result.issues) == 1


def test_no_registry_skips_the_implementation_checks() -> None:
    # Ours: the graph can be linted before any implementation exists.
    assert lint_blueprint(blueprint([("A", "missing")])).is_valid


# --- graph integrity ----------------------------------------------------------------------


def test_edges_between_existing_nodes_are_valid() -> None:
    assert lint_blueprint(blueprint([("A", "node"), ("B", "node")], [("A", "B")]), REGISTRY).is_valid


def test_an_edge_from_an_unknown_node_is_reported() -> None:
    result = lint_blueprint(blueprint([("A", "node")], [("B", "A")]), REGISTRY)
    assert not result.is_valid
    assert result.issues[0].code == "INVALID_EDGE_SOURCE"
    assert result.issues[0].related_id == "A"


def test_an_edge_to_an_unknown_node_is_reported() -> None:
    result = lint_blueprint(blueprint([("A", "node")], [("A", "B")]), REGISTRY)
    assert not result.is_valid
    assert result.issues[0].code == "INVALID_EDGE_TARGET"
    assert result.issues[0].related_id == "A"


def test_several_invalid_edges_are_all_reported() -> None:
    result = lint_blueprint(blueprint([("A", "node")], [("B", "A"), ("A", "C")]), REGISTRY)
    assert codes(result) == ["INVALID_EDGE_SOURCE", "INVALID_EDGE_TARGET"]


def test_a_blueprint_with_no_edges_is_valid() -> None:
    assert lint_blueprint(blueprint([("A", "node")]), REGISTRY).is_valid


# --- orphans ------------------------------------------------------------------------------


def test_a_fully_connected_graph_has_no_orphans() -> None:
    result = lint_blueprint(blueprint([("A", "node"), ("B", "node"), ("C", "node")], [("A", "B"), ("B", "C")]),
                            REGISTRY)
    assert result.is_valid


def test_a_single_disconnected_node_is_its_own_start() -> None:
    assert lint_blueprint(blueprint([("A", "node")]), REGISTRY).is_valid


def test_an_island_no_start_node_reaches_is_reported() -> None:
    result = lint_blueprint(blueprint([("A", "node"), ("B", "node"), ("C", "node")], [("A", "B"), ("C", "C")]),
                            REGISTRY)
    assert not result.is_valid
    assert any(issue.node_id == "C" and issue.code == "ORPHAN_NODE" for issue in result.issues)


def test_a_graph_with_several_start_nodes_has_no_orphans() -> None:
    result = lint_blueprint(blueprint([("A", "node"), ("B", "node"), ("C", "node")], [("A", "C"), ("B", "C")]),
                            REGISTRY)
    assert result.is_valid


# --- the result ---------------------------------------------------------------------------


def test_a_valid_blueprint_has_an_empty_issue_list() -> None:
    result = lint_blueprint(blueprint([("A", "node")]), REGISTRY)
    assert result.is_valid
    assert result.issues == []


def test_any_error_makes_the_blueprint_invalid() -> None:
    assert not lint_blueprint(blueprint([("A", "missing")]), {}).is_valid


def test_issues_of_every_check_are_reported_together() -> None:
    result = lint_blueprint(blueprint([("A", "missing"), ("B", "node")], [("C", "B")]), REGISTRY)
    assert codes(result) == ["MISSING_NODE_IMPLEMENTATION", "INVALID_EDGE_SOURCE", "ORPHAN_NODE"]


def test_an_issue_has_a_code_a_message_and_a_node_id() -> None:
    issue = lint_blueprint(blueprint([("A", "missing")]), {}).issues[0]
    assert (issue.code, issue.node_id) == ("MISSING_NODE_IMPLEMENTATION", "A")
    assert issue.message == "Node implementation key 'missing' is not found in the provided registry."


# --- ours: the checks upstream lacks ------------------------------------------------------


def test_a_subflow_naming_an_unknown_blueprint_is_reported() -> None:
    bp = {"id": "p", "nodes": [{"id": "S", "uses": "subflow", "params": {"blueprintId": "child"}}]}
    assert codes(lint_blueprint(bp, {}, blueprints={})) == ["INVALID_SUBFLOW_BLUEPRINT_ID"]
    assert lint_blueprint(bp, {}, blueprints={"child": {}}).is_valid


def test_a_batch_worker_key_missing_from_the_registry_is_reported() -> None:
    flow = create_flow("b").batch("items", node, input_key="items", output_key="out")
    assert lint_blueprint(flow.to_blueprint(), flow.registry).is_valid
    assert codes(lint_blueprint(flow.to_blueprint(), {})) == ["INVALID_BATCH_WORKER_KEY"]


def test_duplicate_ids_bad_fallbacks_and_unparsable_expressions_are_reported() -> None:
    bp = {"id": "t", "nodes": [{"id": "A", "uses": "node", "config": {"fallback": "nope"}},
                               {"id": "A", "uses": "node"}],
          "edges": [{"source": "A", "target": "A", "condition": "a ==="}]}
    found = codes(lint_blueprint(bp, REGISTRY))
    assert {"DUPLICATE_NODE_ID", "INVALID_FALLBACK", "INVALID_EXPRESSION"} <= set(found)


def test_a_webhook_node_is_reported_as_unsupported() -> None:
    assert codes(lint_blueprint(blueprint([("W", "webhook")]), {})) == ["UNSUPPORTED_BUILTIN"]


def test_a_loop_controller_without_a_continue_edge_is_an_error() -> None:
    bp = {"id": "t", "nodes": [{"id": "L", "uses": "loop-controller"}, {"id": "B", "uses": "node"}],
          "edges": [{"source": "L", "target": "B", "action": "break"}]}
    assert codes(lint_blueprint(bp, REGISTRY)) == ["LOOP_WITHOUT_CONTINUE"]


def test_a_loop_with_no_way_out_and_a_cycle_without_a_controller_are_warnings() -> None:
    looping = {"id": "t", "nodes": [{"id": "S", "uses": "node"}, {"id": "L", "uses": "loop-controller"},
                                    {"id": "B", "uses": "node"}],
               "edges": [{"source": "S", "target": "L"}, {"source": "L", "target": "B", "action": "continue"},
                         {"source": "B", "target": "L"}]}
    result = lint_blueprint(looping, REGISTRY)
    assert result.is_valid
    assert [w.code for w in result.warnings] == ["LOOP_WITHOUT_EXIT"]
    cycle = blueprint([("A", "node"), ("B", "node"), ("C", "node")], [("A", "B"), ("B", "C"), ("C", "B")])
    assert [w.code for w in lint_blueprint(cycle, REGISTRY).warnings] == ["CYCLE_WITHOUT_LOOP_CONTROLLER"]


def test_a_built_loop_lints_clean() -> None:
    flow = (create_flow("l").node("init", node).node("work", node).node("end", node)
            .edge("init", "again").loop("again", start_node_id="work", end_node_id="work", condition="count < 3")
            .edge("again", "end"))
    assert lint_blueprint(flow.to_blueprint(), flow.registry).issues == []


def test_a_loaded_blueprint_and_json_text_lint_like_the_dict() -> None:
    raw = blueprint([("A", "node"), ("B", "missing")], [("A", "B")])
    import json

    assert codes(lint_blueprint(load_blueprint(raw), {"node": node})) == ["MISSING_NODE_IMPLEMENTATION"]
    assert codes(lint_blueprint(json.dumps(raw), {"node": node})) == ["MISSING_NODE_IMPLEMENTATION"]


def test_node_shapes_a_worker_would_refuse_are_reported() -> None:
    bp = {"id": "t", "nodes": [
        {"id": "A", "uses": "node", "config": {"maxRetries": "3", "timeout": 0, "joinStrategy": "some"}},
        {"id": "B", "uses": "", "inputs": 5},
        {"uses": "node"},
        "not a node",
    ]}
    messages = [i.message for i in lint_blueprint(bp, REGISTRY).issues if i.code == "INVALID_NODE_DEFINITION"]
    assert messages == [
        "Node 'A': config.maxRetries must be a number, not '3'.",
        "Node 'A': config.timeout must be a positive number of milliseconds, not 0.",
        "Node 'A': config.joinStrategy must be 'all' or 'any', not 'some'.",
        "Node 'B': 'uses' must be a non-empty string.",
        "Node 'B': 'inputs' must be a string or a map of strings.",
        "nodes[2]: 'id' must be a non-empty string.",
        "nodes[3]: must be an object.",
    ]
