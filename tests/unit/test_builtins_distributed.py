"""Built-ins through the distributed path (Engine, queue, store in memory), redelivery included."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from flowcraft_sqs import protocol
from flowcraft_sqs.blueprint import load_blueprints
from flowcraft_sqs.engine import Engine, perform
from flowcraft_sqs.errors import RunStateError
from flowcraft_sqs.expressions import DefaultEvaluator
from flowcraft_sqs.messages import Job
from flowcraft_sqs.stores.memory import MemoryRunStore, MemoryStatusTable
from tests.cases.distributed import DuplicatingQueue, FakeClock, drain
from tests.unit.test_builtins_in_process import APPROVAL, const, increment, loop_blueprint

REGISTRY = {"const": const, "increment": increment}


class Fleet:
    """One engine over an in-memory queue and store, with a clock the test moves."""

    def __init__(self, blueprints: dict[str, Any], duplicate: bool = False) -> None:
        self.clock = FakeClock()
        self.queue = DuplicatingQueue(duplicate, self.clock)
        self.store, self.statuses = MemoryRunStore(), MemoryStatusTable()
        self.blueprints = load_blueprints(blueprints, registry=REGISTRY)
        self.engine = Engine(self.blueprints, self.store, DefaultEvaluator(), clock=self.clock)

    def start(self, bp_id: str, context: dict[str, Any] | None = None) -> str:
        bp = self.blueprints[bp_id]
        run_id = uuid.uuid4().hex
        self.store.create_run(protocol.new_run(bp, run_id, context or {}, self.clock()))
        self.statuses.start(run_id, self.clock())
        self.queue.send_jobs([Job(run_id, bp.id, n) for n in bp.start_node_ids])
        return run_id

    def drain(self) -> None:
        drain(self.engine, self.queue, self.statuses, self.clock, REGISTRY)

    def state(self, run_id: str) -> protocol.RunState:
        state = self.store.get(run_id)
        assert state is not None
        return state


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "twice"])
def test_a_wait_parks_the_run_and_a_resume_routes_by_its_action(duplicate: bool) -> None:
    fleet = Fleet({"approval": APPROVAL}, duplicate)
    run_id = fleet.start("approval")
    fleet.drain()
    assert fleet.state(run_id).status == "awaiting"
    assert fleet.statuses.items[run_id]["status"] == "awaiting"
    assert fleet.statuses.items[run_id]["awaiting"] == {"review": {"reason": "external_event"}}
    perform(fleet.engine.resume(run_id, None, "approve", {"ok": True}), fleet.queue, fleet.statuses, fleet.clock)
    fleet.drain()
    state = fleet.state(run_id)
    assert state.status == "completed"
    assert state.context["_outputs.publish"] == "published"
    assert "_outputs.discard" not in state.context
    assert fleet.statuses.publish_writes == 1


def test_resuming_twice_is_harmless_and_resuming_a_finished_run_is_an_error() -> None:
    fleet = Fleet({"approval": APPROVAL})
    run_id = fleet.start("approval")
    fleet.drain()
    perform(fleet.engine.resume(run_id, "review", "reject", None), fleet.queue, fleet.statuses, fleet.clock)
    assert fleet.engine.resume(run_id, "review", "reject", None).sends == []
    fleet.drain()
    with pytest.raises(RunStateError):
        fleet.engine.resume(run_id, "other", "x", None)


def test_a_long_sleep_is_re_delayed_in_hops_of_at_most_fifteen_minutes() -> None:
    nap = {
        "id": "nap",
        "nodes": [{"id": "a", "uses": "const", "params": {"value": 5}}, {"id": "z", "uses": "sleep", "params": {"duration": "1h"}}],
        "edges": [{"source": "a", "target": "z"}],
    }
    fleet = Fleet({"nap": nap})
    run_id = fleet.start("nap")
    started = fleet.clock()
    fleet.drain()
    state = fleet.state(run_id)
    assert state.status == "completed"
    assert state.context["_outputs.z"] == 5
    assert fleet.clock() - started >= 3600
    delays = fleet.queue.delays
    assert delays and max(delays) == 900 and len(delays) >= 4


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "twice"])
def test_a_loop_iterates_distributed_and_commits_each_pass_once(duplicate: bool) -> None:
    fleet = Fleet({"loop": loop_blueprint()}, duplicate)
    run_id = fleet.start("loop", {"count": 0})
    fleet.drain()
    state = fleet.state(run_id)
    assert state.status == "completed", state.meta.reason
    assert state.context["count"] == 3
    assert state.meta.iterations == {"ctrl": 4}  # three passes that continue, one that breaks


def test_a_subflow_runs_as_its_own_distributed_run() -> None:
    child = {"id": "child", "nodes": [{"id": "c", "uses": "const", "inputs": "n"}]}
    parent = {
        "id": "parent",
        "nodes": [
            {"id": "sub", "uses": "subflow", "params": {"blueprintId": "child", "inputs": {"n": "value"}}},
            {"id": "after", "uses": "const"},
        ],
        "edges": [{"source": "sub", "target": "after"}],
    }
    fleet = Fleet({"child": child, "parent": parent})
    run_id = fleet.start("parent", {"value": 9})
    fleet.drain()
    state = fleet.state(run_id)
    assert state.status == "completed", state.meta.reason
    assert state.context["_outputs.sub"] == 9
    assert fleet.state(f"{run_id}:sub").status == "completed"


def test_time_is_only_the_fake_clock() -> None:
    assert time.time() > 0  # the fleet above never slept for real: its clock only moved


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "twice"])
def test_a_batch_runs_one_job_per_chunk_and_gathers_once_in_item_order(duplicate: bool) -> None:
    from tests.unit.test_builtins_in_process import BATCH_REGISTRY, batch_blueprint

    REGISTRY.update(BATCH_REGISTRY)
    fleet = Fleet({"batch": batch_blueprint(chunk_size=4)}, duplicate)
    run_id = fleet.start("batch", {"items": list(range(10))})
    fleet.drain()
    state = fleet.state(run_id)
    assert state.status == "completed", state.meta.reason
    assert state.context["squares"] == [i * i for i in range(10)]
    assert state.context["_outputs.total"] == 285
    assert [fleet.state(f"{run_id}#batch:scatter:{i}").status for i in range(3)] == ["completed"] * 3
    assert fleet.statuses.publish_writes == 1
