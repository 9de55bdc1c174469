"""The run protocol on plain data: the TS adapter checklist (§10.1) items that are pure logic.

Each test says whether it keeps the TypeScript behaviour (TS-compatible) or fixes a
defect of it (FIX), as the contract decides.
"""

from __future__ import annotations

import copy
from typing import Any

from flowcraft_sqs import protocol
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.expressions import DefaultEvaluator
from flowcraft_sqs.protocol import JobAction, NodeCompletion

EVALUATOR = DefaultEvaluator()
NOW = 1_700_000_000.0


def blueprint(edges: list[tuple[str, str]] | list[dict[str, Any]], nodes: list[str], **node_config: dict) -> Any:
    node_defs = [{"id": n, "uses": "x", "config": node_config.get(n, {})} for n in nodes]
    edge_defs = [e if isinstance(e, dict) else {"source": e[0], "target": e[1]} for e in edges]
    return load_blueprint({"id": "bp", "nodes": node_defs, "edges": edge_defs})


def run(bp: Any) -> protocol.RunState:
    return protocol.new_run(bp, "run1", {}, NOW)


def commit(state: protocol.RunState, bp: Any, node: str, **kw: Any) -> protocol.Commit:
    return protocol.commit_node(state, bp, node, NodeCompletion(**kw), EVALUATOR, NOW)


def test_linear_flow_commits_the_output_and_fires_the_next_node_without_finishing() -> None:
    # TS-compatible (§10.1 #1)
    bp = blueprint([("A", "B")], ["A", "B"])
    c = commit(run(bp), bp, "A", output="a")
    assert c.sets["_outputs.A"] == "a"
    assert c.fired == ("B",)
    assert c.final is None


def test_the_last_node_completes_the_run() -> None:
    # TS-compatible (§10.1 #2, #3)
    bp = blueprint([], ["A"])
    c = commit(run(bp), bp, "A", output=1)
    assert c.final == protocol.FinalStatus("completed")
    assert c.state.status == "completed"


def test_one_of_two_terminals_finishing_does_not_complete_the_run() -> None:
    # TS-compatible (§10.1 #4)
    bp = blueprint([("A", "B"), ("A", "C")], ["A", "B", "C"])
    state = commit(run(bp), bp, "A").state
    c = commit(state, bp, "B")
    assert c.final is None and c.fired == ()


def test_an_all_join_waits_for_every_predecessor_then_fires_once() -> None:
    # TS-compatible (§10.1 #5, #6), FIX: arrivals are a set, so a repeat cannot count twice
    bp = blueprint([("S", "A"), ("S", "B"), ("A", "C"), ("B", "C")], ["S", "A", "B", "C"])
    state = commit(run(bp), bp, "S").state
    first = commit(state, bp, "A")
    assert first.fired == ()
    assert first.state.meta.arrivals == {"C": ("A",)}
    second = commit(first.state, bp, "B")
    assert second.fired == ("C",)


def test_an_any_join_fires_on_the_first_arrival_and_ignores_later_ones() -> None:
    # TS-compatible (§10.1 #7, #8), FIX: a third arrival is not a failure
    bp = blueprint(
        [("S", "A"), ("S", "B"), ("S", "D"), ("A", "C"), ("B", "C"), ("D", "C")],
        ["S", "A", "B", "D", "C"],
        C={"joinStrategy": "any"},
    )
    state = commit(run(bp), bp, "S").state
    a = commit(state, bp, "A")
    b = commit(a.state, bp, "B")
    d = commit(b.state, bp, "D")
    assert (a.fired, b.fired, d.fired) == (("C",), (), ())
    assert d.state.status == "running"
    assert commit(d.state, bp, "C").final == protocol.FinalStatus("completed")


def test_a_failed_node_fails_the_run_with_its_original_message_and_fires_nothing() -> None:
    # FIX (§10.1 #10): the reason keeps the node's own message
    bp = blueprint([("A", "B")], ["A", "B"])
    c = commit(run(bp), bp, "A", error="Node 'A' failed: boom")
    assert c.final == protocol.FinalStatus("failed", "Node 'A' failed: boom")
    assert c.fired == ()


def test_a_failed_predecessor_means_the_join_never_runs() -> None:
    # FIX (§10.1 #9, #12, #13): the run fails; no poison keys, no join, nothing new starts
    bp = blueprint([("S", "A"), ("S", "B"), ("A", "C"), ("B", "C")], ["S", "A", "B", "C"])
    state = commit(run(bp), bp, "S").state
    failed = commit(state, bp, "A", error="Node 'A' failed: x").state
    late = commit(failed, bp, "B")
    assert late.fired == ()
    assert late.state.status == "failed"
    assert protocol.plan_job(late.state, bp, "C").action is JobAction.SKIP


def test_a_job_for_another_blueprint_version_goes_back_to_the_queue() -> None:
    # FIX (§10.1 #26): TS drops it; we requeue so a worker with the right version takes it
    v1 = load_blueprint({"id": "bp", "metadata": {"version": "1.0"}, "nodes": [{"id": "A", "uses": "x"}]})
    v2 = load_blueprint({"id": "bp", "metadata": {"version": "2.0"}, "nodes": [{"id": "A", "uses": "x"}]})
    state = protocol.new_run(v1, "r", {}, NOW)
    assert protocol.plan_job(state, v2, "A").action is JobAction.VERSION_MISMATCH
    assert protocol.plan_job(state, v1, "A").action is JobAction.EXECUTE  # TS-compatible (#27, #28)


def test_a_committed_node_is_not_executed_again_and_replays_its_routing_with_its_action() -> None:
    # FIX (§10.1 #29, §9.3): the stored result keeps the action, so a router replays its branch
    bp = blueprint(
        [{"source": "R", "target": "L", "action": "left"}, {"source": "R", "target": "X", "action": "right"}],
        ["R", "L", "X"],
    )
    state = commit(run(bp), bp, "R", output=1, action="left").state
    plan = protocol.plan_job(state, bp, "R")
    assert plan.action is JobAction.REPLAY
    assert plan.fired == ("L",)


def test_the_outstanding_jobs_are_what_a_reconciler_re_enqueues() -> None:
    # FIX (§10.1 #17-#25): only jobs that were enqueued and not committed, never a committed node
    bp = blueprint([("A", "B"), ("B", "C")], ["A", "B", "C"])
    state = commit(run(bp), bp, "A").state
    assert protocol.outstanding_jobs(state) == ["B"]


def test_routing_never_mutates_the_blueprint() -> None:
    # FIX (§10.1 #35, §1.4): TS rewrites target.inputs and config.maxRetries in the shared blueprint
    raw = {
        "id": "bp",
        "nodes": [{"id": "A", "uses": "x", "config": {"maxRetries": 5}}, {"id": "B", "uses": "x", "inputs": {"v": "A"}}],
        "edges": [{"source": "A", "target": "B", "transform": "input"}],
    }
    bp = load_blueprint(raw)
    before = copy.deepcopy(bp.to_dict())
    commit(run(bp), bp, "A", output={"k": 1})
    assert bp.to_dict() == before
    assert raw["nodes"][1]["inputs"] == {"v": "A"}


def test_a_seeded_run_starts_with_every_structural_start_node_outstanding() -> None:
    # TS-compatible: the seed's client enqueues analyze_blueprint(bp).start_node_ids
    bp = load_blueprint({"id": "bp", "nodes": [{"id": "A", "uses": "x", "config": {"fallback": "F"}}, {"id": "F", "uses": "x"}]})
    state = protocol.adopt_seeded_run(bp, "r", {"userId": 1}, NOW)
    assert sorted(protocol.outstanding_jobs(state)) == ["A", "F"]
    assert protocol.plan_job(state, bp, "F").action is JobAction.CONSUME
    assert protocol.new_run(bp, "r2", {}, NOW).meta.outstanding == {"A": 1}


def test_cancelled_run_starts_nothing_new() -> None:
    bp = blueprint([("A", "B")], ["A", "B"])
    state = protocol.end_run(run(bp), "cancelled", "by client", NOW).state
    late = commit(state, bp, "A", output=1)
    assert late.fired == ()
    assert late.state.status == "cancelled"
