"""Local continuation policy: which successor runs here, and what a recovery re-sends."""

from __future__ import annotations

import time

from flowcraft_sqs import protocol
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.continuation import chain_resends, take_continuation
from flowcraft_sqs.engine import Effects
from flowcraft_sqs.messages import Job
from flowcraft_sqs.protocol import NodeCompletion

BP = load_blueprint({"id": "bp", "nodes": [{"id": n, "uses": "f"} for n in "abcd"] + [
    {"id": "s", "uses": "sleep", "params": {"duration": "1s"}}],
    "edges": [{"source": "a", "target": "b"}, {"source": "a", "target": "c"},
              {"source": "b", "target": "d"}, {"source": "c", "target": "s"}]})


class Plain:
    def evaluate(self, expression, scope):
        raise AssertionError("no expressions here")


def commit(state, node):
    return protocol.commit_node(state, BP, node, NodeCompletion(output=1), Plain(), time.time()).state


def test_the_first_fired_job_runs_here_and_the_others_are_sent() -> None:
    state = commit(protocol.new_run(BP, "r", {}, 0.0), "a")
    effects = Effects(sends=[Job("r", "bp", "b"), Job("r", "bp", "c")], committed_here=True)
    following = take_continuation(effects, state, BP, hops=1)
    assert following is not None and following.job.node_id == "b"
    assert [j.node_id for j in effects.sends] == ["c"]


def test_no_continuation_past_the_chain_limit_or_for_delayed_or_builtin_jobs() -> None:
    state = commit(protocol.new_run(BP, "r", {}, 0.0), "a")
    def ours(*jobs: Job) -> Effects:
        return Effects(sends=list(jobs), committed_here=True)

    assert take_continuation(ours(Job("r", "bp", "b")), state, BP, hops=5, max_hops=5) is None
    assert take_continuation(ours(Job("r", "bp", "b", delay_until=1e12)), state, BP, 1) is None
    assert take_continuation(ours(Job("r", "bp", "s")), state, BP, 1) is None


def test_no_continuation_when_another_delivery_committed_the_node() -> None:
    state = commit(protocol.new_run(BP, "r", {}, 0.0), "a")
    assert take_continuation(Effects(sends=[Job("r", "bp", "b")]), state, BP, 1) is None


def test_a_recovery_re_sends_what_an_interrupted_chain_fired_and_nobody_ran() -> None:
    # Given a -> b ran as a chain (a's message undeleted), b fired d, and the worker died
    state = commit(commit(protocol.new_run(BP, "r", {}, 0.0), "a"), "b")
    # Then a redelivered a re-sends d (c is re-sent by the engine's own replay of a)
    assert chain_resends(state, BP, "a") == ["d"]
