"""The SqsAdapter's message handling over the in-memory queue and stores: fast, no AWS.

The same adapter code runs against SQS and DynamoDB in tests/aws; here the ports are
`MemoryQueue`, `MemoryRunStore` and `MemoryStatusTable`, on a fake clock.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import pytest

from flowcraft_sqs import protocol
from flowcraft_sqs.adapter import EXECUTED, REJECTED, REQUEUED, SKIPPED, SqsAdapter
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.errors import BlueprintError, ConfigError
from flowcraft_sqs.messages import Job
from flowcraft_sqs.stores.memory import MemoryRunStore, MemoryStatusTable
from flowcraft_sqs.transport.memory import MemoryQueue

VISIBILITY_S = 30


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def chain_blueprint(length: int, bp_id: str = "chain") -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "uses": "step"} for i in range(length)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(length - 1)]
    return {"id": bp_id, "nodes": nodes, "edges": edges}


FAN_OUT = {
    "id": "fan",
    "nodes": [{"id": "S", "uses": "step"}, {"id": "L", "uses": "step"}, {"id": "R", "uses": "step"},
              {"id": "J", "uses": "step"}],
    "edges": [{"source": "S", "target": "L"}, {"source": "S", "target": "R"},
              {"source": "L", "target": "J"}, {"source": "R", "target": "J"}],
}


class World:
    """An adapter on memory ports, plus what its nodes did."""

    def __init__(self, blueprints: dict[str, Any], **options: Any) -> None:
        self.clock = FakeClock()
        self.executions: Counter[str] = Counter()
        self.node_delay_s = 0.0
        self.queue = MemoryQueue(visibility_s=VISIBILITY_S, clock=self.clock)
        self.store = MemoryRunStore()
        self.statuses = MemoryStatusTable()
        self.adapter = SqsAdapter(
            runtime_options={"registry": {"step": self.step}, "blueprints": blueprints},
            queue=self.queue, store=self.store, statuses=self.statuses, clock=self.clock,
            wait_time_seconds=0, **options,
        )

    def step(self, ctx: Any) -> dict[str, Any]:
        self.executions[ctx.node_id] += 1
        self.clock.advance(self.node_delay_s)
        return {"output": f"{ctx.node_id} done"}

    def start(self, bp_id: str, run_id: str = "run-1") -> str:
        bp = self.adapter.blueprints[bp_id]
        state = protocol.new_run(bp, run_id, {}, self.clock())
        self.store.create_run(state)
        self.statuses.start(run_id, self.clock())
        self.queue.send_jobs([Job(run_id, bp_id, n) for n in bp.start_node_ids])
        return run_id

    def drain(self, rounds: int = 100) -> None:
        for _ in range(rounds):
            if not self.adapter.poll_once(0):
                return

    def status(self, run_id: str = "run-1") -> str:
        return self.statuses.items[run_id]["status"]


def test_a_chain_runs_to_completion_on_one_message_with_local_continuation() -> None:
    # Given a 10-node chain
    world = World({"chain": chain_blueprint(10)})
    world.start("chain")
    # When one poll receives its only message
    results = world.adapter.poll_once(0)
    # Then the whole chain ran on it, and the message is gone
    assert [r.outcome for r in results] == [EXECUTED]
    assert results[0].hops == 10
    assert world.status() == "completed"
    assert world.executions == Counter({f"n{i}": 1 for i in range(10)})
    assert len(world.queue) == 0
    assert world.queue.calls["SendMessageBatch"] == 1  # the start job only
    assert world.statuses.publish_writes == 1


def test_without_local_continuation_every_hop_goes_through_the_queue() -> None:
    world = World({"chain": chain_blueprint(4)}, local_continuation=False)
    world.start("chain")
    world.drain()
    assert world.status() == "completed"
    assert world.queue.calls["SendMessageBatch"] == 4  # start + 3 successors
    assert world.executions == Counter({"n0": 1, "n1": 1, "n2": 1, "n3": 1})


def test_a_chain_stops_continuing_at_its_length_cap() -> None:
    world = World({"chain": chain_blueprint(10)}, max_chain_length=3)
    world.start("chain")
    first = world.adapter.poll_once(0)
    assert first[0].hops == 3
    world.drain()
    assert world.status() == "completed"
    assert sum(world.executions.values()) == 10


def test_a_fan_out_continues_with_one_successor_and_sends_the_others() -> None:
    world = World({"fan": FAN_OUT})
    world.start("fan")
    first = world.adapter.poll_once(0)
    assert first[0].hops == 2  # S, then L locally; R sent
    assert len(world.queue) == 1
    world.drain()
    assert world.status() == "completed"
    assert world.executions == Counter({"S": 1, "L": 1, "R": 1, "J": 1})


def test_a_crash_mid_chain_is_recovered_from_the_redelivered_message(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a chain whose worker "dies" right after committing its third node
    world = World({"chain": chain_blueprint(6)})
    world.start("chain")
    real_perform = world.adapter._perform
    performed = Counter[str]()

    def crashing_perform(effects: Any) -> None:
        performed["n"] += 1
        if performed["n"] == 3:
            raise RuntimeError("simulated crash after the commit of n2")
        real_perform(effects)

    monkeypatch.setattr(world.adapter, "_perform", crashing_perform)
    crashed = world.adapter.poll_once(0)
    assert crashed[0].outcome == "failed"
    assert world.queue.receive(10, 0) == []  # the message is still in flight, not deleted
    # When its visibility runs out and it is redelivered
    monkeypatch.setattr(world.adapter, "_perform", real_perform)
    world.clock.advance(VISIBILITY_S + 1)
    world.drain()
    # Then the run completes and no committed node ran again
    assert world.status() == "completed"
    assert world.executions == Counter({f"n{i}": 1 for i in range(6)})


def test_a_long_chain_extends_its_message_visibility() -> None:
    world = World({"chain": chain_blueprint(4)})
    world.node_delay_s = VISIBILITY_S * 0.6  # past half the visibility after every node
    world.start("chain")
    world.adapter.poll_once(0)
    assert world.status() == "completed"
    assert world.queue.calls["ChangeMessageVisibilityBatch"] == 3  # before hops 2, 3 and 4
    assert len(world.queue) == 0


def test_a_job_for_another_blueprint_version_goes_back_to_the_queue() -> None:
    world = World({"v": {**chain_blueprint(2, "v"), "metadata": {"version": "2"}}})
    state = protocol.new_run(load_blueprint({**chain_blueprint(2, "v"), "metadata": {"version": "1"}}),
                             "old", {}, world.clock())
    world.store.create_run(state)
    world.queue.send_jobs([Job("old", "v", "n0")])
    results = world.adapter.poll_once(0)
    assert [r.outcome for r in results] == [REQUEUED]
    assert world.queue.calls["ChangeMessageVisibilityBatch"] == 1
    assert len(world.queue) == 1 and world.executions == Counter()


def test_a_malformed_message_is_logged_by_id_and_deleted(caplog: pytest.LogCaptureFixture) -> None:
    world = World({"chain": chain_blueprint(2)})
    world.start("chain")
    message_id = world.queue.send_body('{"runId": "secret-body", "nodeId": 7}')
    with caplog.at_level(logging.ERROR, logger="flowcraft_sqs.adapter"):
        world.drain()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(message_id in e and "blueprintId" in e for e in errors)
    assert not any("secret-body" in e for e in errors)
    assert len(world.queue) == 0
    assert world.status() == "completed"


def test_handle_job_processes_one_job_and_rejects_a_malformed_one() -> None:
    world = World({"chain": chain_blueprint(2)}, local_continuation=False)
    run_id = world.start("chain")
    world.queue.receive(10, 0)  # take the start message out of the way
    result = world.adapter.handle_job({"runId": run_id, "blueprintId": "chain", "nodeId": "n0"})
    assert (result.outcome, result.hops) == (EXECUTED, 1)
    again = world.adapter.handle_job(Job(run_id, "chain", "n0"))
    assert again.outcome in ("replayed", SKIPPED)
    assert world.adapter.handle_job({"runId": run_id}).outcome == REJECTED


def test_a_cancelled_run_starts_nothing_new() -> None:
    world = World({"chain": chain_blueprint(3)})
    run_id = world.start("chain")
    assert world.adapter.cancel(run_id, "stop it") == "cancelled"
    world.drain()
    assert world.executions == Counter()
    assert world.statuses.items[run_id]["status"] == "cancelled"
    assert world.statuses.items[run_id]["reason"] == "stop it"
    assert world.adapter.cancel(run_id) == "cancelled"  # idempotent
    assert world.statuses.publish_writes == 1


def test_runtime_options_take_camel_case_and_refuse_unknown_keys() -> None:
    queue, store, statuses = MemoryQueue(), MemoryRunStore(), MemoryStatusTable()
    adapter = SqsAdapter(runtime_options={"registry": {"step": print}, "blueprints": {},
                                          "eventBus": object()},
                         queue=queue, store=store, statuses=statuses)
    assert adapter.blueprints == {}
    with pytest.raises(ConfigError, match="unknown runtime option 'registy'"):
        SqsAdapter(runtime_options={"registy": {}}, queue=queue, store=store, statuses=statuses)


def test_a_bad_blueprint_fails_construction_naming_it() -> None:
    bad = {"id": "broken", "nodes": [{"id": "A", "uses": "missing"}], "edges": []}
    with pytest.raises(BlueprintError, match="broken"):
        SqsAdapter(runtime_options={"registry": {}, "blueprints": {"broken": bad}},
                   queue=MemoryQueue(), store=MemoryRunStore(), statuses=MemoryStatusTable())


def test_start_and_stop_run_the_consumer_thread() -> None:
    world = World({"chain": chain_blueprint(3)})
    world.adapter.wait_time_seconds = 1
    world.start("chain")
    world.adapter.start()
    world.adapter.start()  # a second start is a no-op
    deadline = time.monotonic() + 10
    while world.statuses.items["run-1"]["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert world.adapter.stop(timeout=5)
    assert not world.adapter.running
    assert world.status() == "completed"
