"""The reconciler against real local SQS and DynamoDB: resume stalled runs, leave finished ones."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from flowcraft_sqs.adapter import SqsAdapter
from flowcraft_sqs.client import FlowcraftClient
from flowcraft_sqs.completion import run_node
from flowcraft_sqs.messages import Job
from flowcraft_sqs.reconciler import ReconciliationStats, create_sqs_reconciler
from tests.cases.behaviours import Behaviours

pytestmark = pytest.mark.aws

TIMEOUT_S = 30.0
CHAIN = {
    "id": "chain",
    "nodes": [{"id": "A", "uses": "const", "params": {"value": 1}},
              {"id": "B", "uses": "add", "params": {"n": 1}},
              {"id": "C", "uses": "add", "params": {"n": 1}}],
    "edges": [{"source": "A", "target": "B"}, {"source": "B", "target": "C"}],
}


class Setup:
    def __init__(self, clients: Any, infra: Any, blueprint: dict[str, Any] = CHAIN) -> None:
        self.clients, self.infra = clients, infra
        self.behaviours = Behaviours()
        self.adapter = SqsAdapter(
            sqs_client=clients.sqs, dynamodb_client=clients.dynamodb, queue_url=infra.queue_url,
            context_table_name=infra.context_table, status_table_name=infra.status_table,
            runtime_options={"registry": self.behaviours.registry, "blueprints": {"chain": blueprint}},
            wait_time_seconds=1,
        )
        self.client = FlowcraftClient(clients.sqs, clients.dynamodb, infra.queue_url, infra.context_table,
                                      infra.status_table, blueprints=self.adapter.blueprints)

    def reconciler(self, threshold_s: float = 0, dynamodb_client: Any = None) -> Any:
        return create_sqs_reconciler(adapter=self.adapter, dynamodb_client=dynamodb_client or self.clients.dynamodb,
                                     status_table_name=self.infra.status_table,
                                     stalled_threshold_seconds=threshold_s)

    def crash_after_commit(self, run_id: str, node_id: str) -> None:
        """A worker commits `node_id`, then dies before it sends, publishes or deletes; the
        queue loses the message (as after the DLQ, or a purge)."""
        planned = self.adapter.engine.plan_job(Job(run_id, "chain", node_id))
        assert planned.execute is not None
        ex = planned.execute
        completion = asyncio.run(run_node(ex.blueprint, node_id, dict(ex.state.context), run_id,
                                          self.behaviours.registry, {}))
        self.adapter.engine.complete(ex, completion)
        self.purge_queue()

    def purge_queue(self) -> None:
        while messages := self.adapter.queue.receive(10, 0):
            self.adapter.queue.delete([m.receipt for m in messages])

    def drain(self, run_id: str) -> str:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            self.adapter.poll_once()
            status = self.client.status(run_id)
            if status and status.status != "running":
                return status.status
        raise AssertionError(f"run {run_id} did not finish")

    def queued(self) -> list[str]:
        return [m.body for m in self.adapter.queue.receive(10, 1)]


def test_the_reconciler_resumes_a_run_whose_worker_died_after_a_commit(aws_clients: Any, infra: Any) -> None:
    # Given a run whose worker committed A and died before enqueuing B, its message lost
    setup = Setup(aws_clients, infra)
    run_id = setup.client.start_run("chain")
    setup.crash_after_commit(run_id, "A")
    assert setup.client.status(run_id).status == "running"
    # When the reconciler runs
    stats = setup.reconciler().run()
    # Then it re-enqueues B (never the committed A), and the run completes with A run once
    assert (stats.stalled_runs, stats.reconciled_runs, stats.failed_runs) == (1, 1, 0)
    assert setup.drain(run_id) == "completed"
    assert setup.behaviours.executions == {"A": 1, "B": 1, "C": 1}
    assert setup.client.status(run_id).context["_outputs.C"] == 3


def test_the_reconciler_leaves_finished_and_fresh_runs_alone(aws_clients: Any, infra: Any) -> None:
    setup = Setup(aws_clients, infra)
    done = setup.client.start_run("chain")
    assert setup.drain(done) == "completed"
    fresh = setup.client.start_run("chain")
    setup.purge_queue()
    # A finished run is not even a candidate; a run updated within the threshold is not stalled.
    stats = setup.reconciler(threshold_s=300).run()
    assert stats == ReconciliationStats(scanned_items=2, stalled_runs=0, reconciled_runs=0, failed_runs=0)
    assert (stats.scannedItems, stats.stalledRuns, stats.reconciledRuns, stats.failedRuns) == (2, 0, 0, 0)
    assert setup.queued() == []
    assert setup.client.status(done).status == "completed"
    assert setup.client.status(fresh).status == "running"


def test_the_reconciler_publishes_a_final_status_a_crash_left_unpublished(aws_clients: Any, infra: Any) -> None:
    single = {"id": "chain", "nodes": [{"id": "A", "uses": "const", "params": {"value": 5}}], "edges": []}
    setup = Setup(aws_clients, infra, single)
    run_id = setup.client.start_run("chain")
    setup.crash_after_commit(run_id, "A")  # the run is complete in the contexts table only
    stats = setup.reconciler().run()
    assert (stats.stalled_runs, stats.reconciled_runs, stats.repaired_runs) == (1, 0, 1)
    status = setup.client.status(run_id)
    assert status.status == "completed" and status.context == {"_outputs.A": 5}
    assert setup.queued() == []


def test_the_reconciler_starts_a_seeded_run_nobody_picked_up(aws_clients: Any, infra: Any) -> None:
    setup = Setup(aws_clients, infra)
    aws_clients.dynamodb.put_item(TableName=infra.context_table, Item={
        "runId": {"S": "seeded-1"}, "context": {"M": {"userId": {"S": "u"}}},
        "createdAt": {"S": "2026-01-01T00:00:00.000Z"}})
    aws_clients.dynamodb.put_item(TableName=infra.status_table, Item={
        "runId": {"S": "seeded-1"}, "status": {"S": "running"}, "lastUpdated": {"S": "2026-01-01T00:00:00.000Z"}})
    stats = setup.reconciler(threshold_s=300).run()
    assert (stats.stalled_runs, stats.reconciled_runs) == (1, 1)
    assert setup.drain("seeded-1") == "completed"
    assert setup.client.status("seeded-1").context["userId"] == "u"


def test_a_run_that_cannot_be_reconciled_counts_as_failed(aws_clients: Any, infra: Any, caplog: Any) -> None:
    setup = Setup(aws_clients, infra)
    aws_clients.dynamodb.put_item(TableName=infra.status_table, Item={
        "runId": {"S": "ghost"}, "status": {"S": "running"}, "lastUpdated": {"N": "1"}})
    with caplog.at_level(logging.ERROR, logger="flowcraft_sqs.reconciler"):
        stats = setup.reconciler().run()
    assert (stats.stalled_runs, stats.reconciled_runs, stats.failed_runs) == (1, 0, 1)
    assert any("ghost" in r.getMessage() for r in caplog.records)


class PagedScans:
    """The DynamoDB client, with every Scan page cut to `limit` items examined."""

    def __init__(self, client: Any, limit: int) -> None:
        self.client, self.limit, self.pages = client, limit, 0

    def scan(self, **request: Any) -> Any:
        self.pages += 1
        return self.client.scan(Limit=self.limit, **request)


def test_the_reconciler_follows_every_page_of_the_scan(aws_clients: Any, infra: Any) -> None:
    setup = Setup(aws_clients, infra)
    run_ids = [setup.client.start_run("chain") for _ in range(7)]
    setup.purge_queue()
    paged = PagedScans(aws_clients.dynamodb, limit=2)
    stats = setup.reconciler(dynamodb_client=paged).run()
    assert paged.pages >= 4
    assert (stats.scanned_items, stats.stalled_runs, stats.reconciled_runs) == (7, 7, 7)
    for run_id in run_ids:
        assert setup.drain(run_id) == "completed"
