"""Built-ins across the fleet, against a real local SQS + DynamoDB server.

The single-process SqsAdapter stands for a worker here; tests with real worker processes
killed mid-way live in tests/process.
"""

from __future__ import annotations

import time
from typing import Any

from flowcraft_sqs.stores.dynamodb import DynamoRunStore
from tests.aws.test_adapter import Fleet
from tests.unit.test_builtins_in_process import (
    APPROVAL,
    BATCH_REGISTRY,
    batch_blueprint,
    const,
    increment,
    loop_blueprint,
)

REGISTRY = {"const": const, "increment": increment, **BATCH_REGISTRY}
SETTLE_TIMEOUT_S = 60.0


def settle(fleet: Fleet, run_id: str, until: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        fleet.adapter.poll_once(wait_time_seconds=1)
        item = fleet.statuses.get(run_id) or {}
        if item.get("status") in until:
            return item
    raise AssertionError(f"run {run_id} never reached {until}: {fleet.statuses.get(run_id)}")


def test_a_wait_is_visible_to_clients_and_resume_routes_by_action(aws_clients: Any, infra: Any) -> None:
    fleet = Fleet(aws_clients, infra, REGISTRY, {"approval": APPROVAL})
    run_id = fleet.client.start_run("approval")
    item = settle(fleet, run_id, ("awaiting",))
    assert item["awaiting"] == {"review": {"reason": "external_event"}}
    assert fleet.client.status(run_id).awaiting == {"review": {"reason": "external_event"}}
    fleet.client.resume(run_id, action="reject", output={"by": "ann"})
    fleet.client.resume(run_id, action="reject", output={"by": "ann"})  # a repeat is harmless
    item = settle(fleet, run_id, ("completed",))
    context = item["result"]["context"]
    assert context["_outputs.discard"] == "discarded"
    assert "_outputs.publish" not in context
    assert fleet.statuses.published.count("completed") == 1


def test_a_sleep_holds_no_worker_and_continues_near_its_due_time(aws_clients: Any, infra: Any) -> None:
    nap = {
        "id": "nap",
        "nodes": [{"id": "a", "uses": "const", "params": {"value": 5}}, {"id": "z", "uses": "sleep", "params": {"duration": "2s"}}],
        "edges": [{"source": "a", "target": "z"}],
    }
    fleet = Fleet(aws_clients, infra, REGISTRY, {"nap": nap})
    started = time.time()
    run_id = fleet.client.start_run("nap")
    item = settle(fleet, run_id, ("completed",))
    elapsed = time.time() - started
    assert item["result"]["context"]["_outputs.z"] == 5
    assert 2.0 <= elapsed < 6.0


def test_a_loop_iterates_across_the_fleet(aws_clients: Any, infra: Any) -> None:
    fleet = Fleet(aws_clients, infra, REGISTRY, {"loop": loop_blueprint()}, duplicate=True)
    run_id = fleet.client.start_run("loop", {"count": 0})
    item = settle(fleet, run_id, ("completed", "failed"))
    assert item["status"] == "completed", item.get("reason")
    assert item["result"]["context"]["count"] == 3


def test_a_subflow_runs_as_a_child_run_and_the_parent_continues(aws_clients: Any, infra: Any) -> None:
    child = {"id": "child", "nodes": [{"id": "c", "uses": "const", "inputs": "n"}]}
    parent = {
        "id": "parent",
        "nodes": [{"id": "sub", "uses": "subflow", "params": {"blueprintId": "child", "inputs": {"n": "value"}}}],
    }
    fleet = Fleet(aws_clients, infra, REGISTRY, {"child": child, "parent": parent})
    run_id = fleet.client.start_run("parent", {"value": 9})
    item = settle(fleet, run_id, ("completed", "failed"))
    assert item["status"] == "completed", item.get("reason")
    assert item["result"]["context"]["_outputs.sub"] == 9


def test_ten_thousand_batch_items_never_pass_the_item_size_limit(aws_clients: Any, infra: Any) -> None:
    fleet = Fleet(aws_clients, infra, REGISTRY, {"batch": batch_blueprint(chunk_size=500)})
    items = list(range(10_000))
    run_id = fleet.client.start_run("batch", {"items": items})
    item = settle(fleet, run_id, ("completed", "failed"))
    assert item["status"] == "completed", item.get("reason")
    store = DynamoRunStore(aws_clients.dynamodb, infra.context_table)
    state = store.load_runs([run_id])[run_id]
    assert state is not None
    assert state.context["squares"] == [i * i for i in items]
    assert state.context["_outputs.total"] == sum(i * i for i in items)
    chunk_ids = [f"{run_id}#batch:scatter:{i}" for i in range(20)]
    chunks = store.load_runs(chunk_ids)
    sizes = [sum(c.attr_sizes.values()) for c in chunks.values() if c is not None]
    assert len(sizes) == 20 and max(sizes) < 400 * 1024
