"""Port of upstream packages/core/test/analysis.test.ts (cycles, analyzeBlueprint, Mermaid)."""

from __future__ import annotations

from typing import Any

from flowcraft_sqs import (
    FlowRuntime,
    analyze_blueprint,
    create_flow,
    generate_mermaid,
    generate_mermaid_for_run,
)
from flowcraft_sqs.analysis import find_cycles
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.events import FlowcraftEvent
from flowcraft_sqs.testing import InMemoryEventLogger

GREEN = "fill:#d4edda,stroke:#c3e6cb"
RED = "fill:#f8d7da,stroke:#f5c6cb"
TAKEN = "stroke:#007bff,stroke-width:3px"


def blueprint(node_ids: str, edges: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    return {"id": "test", "nodes": [{"id": n, "uses": "node"} for n in node_ids],
            "edges": [{"source": s, "target": t} for s, t in edges or []]}


# --- cycles ------------------------------------------------------------------------------


def test_a_dag_has_no_cycles() -> None:
    assert find_cycles(load_blueprint(blueprint("ABC", [("A", "B"), ("B", "C")]))) == []


def test_a_two_node_cycle_is_found() -> None:
    assert find_cycles(load_blueprint(blueprint("AB", [("A", "B"), ("B", "A")]))) == [["A", "B", "A"]]


def test_a_three_node_cycle_is_found() -> None:
    cycles = find_cycles(load_blueprint(blueprint("ABC", [("A", "B"), ("B", "C"), ("C", "A")])))
    assert cycles == [["A", "B", "C", "A"]]


# --- analyze_blueprint -----------------------------------------------------------------------


def test_start_nodes_are_the_nodes_without_incoming_edges() -> None:
    analysis = analyze_blueprint(blueprint("ABC", [("A", "B"), ("B", "C")]))
    assert (analysis.start_node_ids, analysis.terminal_node_ids, analysis.is_dag) == (["A"], ["C"], True)


def test_terminal_nodes_are_the_nodes_without_outgoing_edges() -> None:
    analysis = analyze_blueprint(blueprint("ABC", [("A", "B"), ("A", "C")]))
    assert (analysis.startNodeIds, analysis.terminalNodeIds, analysis.isDag) == (["A"], ["B", "C"], True)


def test_is_dag_is_false_for_a_graph_with_a_cycle() -> None:
    assert analyze_blueprint(blueprint("AB", [("A", "B")])).is_dag
    assert not analyze_blueprint(blueprint("AB", [("A", "B"), ("B", "A")])).is_dag


# --- generate_mermaid ----------------------------------------------------------------------


def test_a_linear_flow_is_drawn_node_by_node_and_edge_by_edge() -> None:
    mermaid = generate_mermaid(blueprint("AB", [("A", "B")]))
    for line in ("flowchart TD", 'A["A"]', 'B["B"]', "A --> B"):
        assert line in mermaid


def test_edges_are_labelled_with_their_action_and_condition() -> None:
    bp = blueprint("AB")
    bp["edges"] = [{"source": "A", "target": "B", "action": "success", "condition": 'status == "ok"'}]
    # Upstream leaves the inner quotes raw, which ends Mermaid's label early; ours escapes them.
    assert 'A -- "success | status == #quot;ok#quot;" --> B' in generate_mermaid(bp)


def test_a_diamond_is_drawn_with_all_four_edges() -> None:
    mermaid = generate_mermaid(blueprint("ABCD", [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]))
    for line in ('A["A"]', 'B["B"]', 'C["C"]', 'D["D"]', "A --> B", "A --> C", "B --> D", "C --> D"):
        assert line in mermaid


def test_params_are_shown_in_the_node_label() -> None:
    bp = {"id": "t", "nodes": [{"id": "A", "uses": "n", "params": {"k": 1}}]}
    assert 'A["A<br/>params: {#quot;k#quot;:1}"]' in generate_mermaid(bp)


def test_ids_mermaid_cannot_take_get_a_safe_alias() -> None:
    # Ours: upstream writes `end` and `a-b` verbatim, which breaks the chart.
    mermaid = generate_mermaid(blueprint(["start", "end", "a-b"], [("start", "end"), ("end", "a-b")]))
    assert 'n1_end["end"]' in mermaid
    assert "start --> n1_end" in mermaid
    assert "n1_end --> n2_a_b" in mermaid


def test_an_empty_blueprint_is_drawn_as_one_placeholder() -> None:
    assert generate_mermaid({"id": "t", "nodes": []}) == "flowchart TD\n    empty[Empty Blueprint]"


# --- generate_mermaid_for_run ------------------------------------------------------------


def finished(node_id: str) -> FlowcraftEvent:
    return FlowcraftEvent("node:finish", {"nodeId": node_id, "result": {"output": "success"},
                                          "executionId": "test", "blueprintId": "test"})


def failed(node_id: str) -> FlowcraftEvent:
    return FlowcraftEvent("node:error", {"nodeId": node_id, "error": "fail", "executionId": "test",
                                         "blueprintId": "test"})


def evaluated(source: str, target: str) -> FlowcraftEvent:
    return FlowcraftEvent("edge:evaluate", {"source": source, "target": target, "condition": "true",
                                            "result": True})


def test_a_finished_node_is_green() -> None:
    mermaid = generate_mermaid_for_run(blueprint("AB", [("A", "B")]), [finished("A")])
    for line in ("flowchart TD", 'A["A"]', 'B["B"]', "A --> B", f"style A {GREEN}"):
        assert line in mermaid
    assert "style B" not in mermaid


def test_a_failed_node_is_red() -> None:
    mermaid = generate_mermaid_for_run(blueprint("AB", [("A", "B")]), [failed("A")])
    assert f"style A {RED}" in mermaid
    assert "style B" not in mermaid


def test_an_edge_that_evaluated_true_is_drawn_thick() -> None:
    mermaid = generate_mermaid_for_run(blueprint("AB", [("A", "B")]), [evaluated("A", "B")])
    assert f"linkStyle 0 {TAKEN}" in mermaid


def test_several_events_colour_several_nodes_and_edges() -> None:
    bp = blueprint("ABC", [("A", "B"), ("B", "C")])
    mermaid = generate_mermaid_for_run(bp, [finished("A"), failed("B"), evaluated("A", "B")])
    assert f"style A {GREEN}" in mermaid
    assert f"style B {RED}" in mermaid
    assert f"linkStyle 0 {TAKEN}" in mermaid
    assert "linkStyle 1" not in mermaid


def test_events_as_plain_dicts_work_too() -> None:
    events = [{"type": "node:finish", "payload": {"nodeId": "A"}}]
    assert f"style A {GREEN}" in generate_mermaid_for_run(blueprint("A"), events)


# --- ours: states of real runs ------------------------------------------------------------


def routed_flow() -> Any:
    return (create_flow("routed").node("A", lambda c: {"output": 1, "action": "left"})
            .node("L", lambda c: {"output": "l"}).node("R", lambda c: {"output": "r"})
            .edge("A", "L", action="left").edge("A", "R", action="right"))


def test_a_run_shows_completed_and_skipped_nodes_from_its_events() -> None:
    flow, logger = routed_flow(), InMemoryEventLogger()
    FlowRuntime(registry=flow.registry, event_bus=logger).run_sync(flow.to_blueprint())
    mermaid = generate_mermaid_for_run(flow.to_blueprint(), logger.events)
    assert f"style A {GREEN}" in mermaid
    assert f"style L {GREEN}" in mermaid
    assert "style R fill:#e2e3e5,stroke:#d6d8db" in mermaid  # skipped: grey
    assert f"linkStyle 0 {TAKEN}" in mermaid
    assert "linkStyle 1" not in mermaid


def test_a_run_shows_the_same_states_from_its_result() -> None:
    flow = routed_flow()
    result = FlowRuntime(registry=flow.registry).run_sync(flow.to_blueprint())
    mermaid = generate_mermaid_for_run(flow.to_blueprint(), result)
    assert f"style L {GREEN}" in mermaid
    assert "style R fill:#e2e3e5" in mermaid
    assert f"linkStyle 0 {TAKEN}" in mermaid


def test_a_waiting_node_is_yellow_and_a_failed_one_red() -> None:
    waiting = create_flow("w").node("A", lambda c: {"output": 1}).wait("approve").edge("A", "approve")
    logger = InMemoryEventLogger()
    result = FlowRuntime(registry=waiting.registry, event_bus=logger).run_sync(waiting.to_blueprint())
    assert result.status == "awaiting"
    for run in (logger.events, result):
        assert "style approve fill:#fff3cd,stroke:#ffeeba" in generate_mermaid_for_run(waiting.to_blueprint(), run)
    broken = create_flow("b").node("A", lambda c: 1 / 0)
    result = FlowRuntime(registry=broken.registry).run_sync(broken.to_blueprint())
    assert f"style A {RED}" in generate_mermaid_for_run(broken.to_blueprint(), result)
