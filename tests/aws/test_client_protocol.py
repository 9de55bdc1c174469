"""Starting and following runs: the seed document's client.ts protocol, and FlowcraftClient."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from flowcraft_sqs import analyze_blueprint
from flowcraft_sqs.adapter import SqsAdapter
from flowcraft_sqs.aws import make_clients, resolve_region
from flowcraft_sqs.client import FlowcraftClient, RunResult
from flowcraft_sqs.errors import ConfigError, RunStateError
from flowcraft_sqs.stores.dynamodb import DynamoRunStore

pytestmark = pytest.mark.aws

TIMEOUT_S = 30.0

# The seed's use case "4.content-moderation", small: fetch, classify, then one verdict branch.
MODERATION = {
    "id": "content-moderation",
    "nodes": [
        {"id": "fetch", "uses": "fetch_content"},
        {"id": "classify", "uses": "classify", "inputs": "fetch"},
        {"id": "approve", "uses": "decide", "params": {"verdict": "approved"}},
        {"id": "reject", "uses": "decide", "params": {"verdict": "rejected"}},
    ],
    "edges": [
        {"source": "fetch", "target": "classify"},
        {"source": "classify", "target": "approve", "action": "safe"},
        {"source": "classify", "target": "reject", "action": "unsafe"},
    ],
}


async def fetch_content(ctx: Any) -> dict[str, Any]:
    # The seeded context map is the run's context: `userId`, not `context.userId`.
    return {"output": {"user": await ctx.context.get("userId"), "text": await ctx.context.get("content")}}


def classify(ctx: Any) -> dict[str, Any]:
    unsafe = "spam" in ctx.input["text"]
    return {"output": {"user": ctx.input["user"]}, "action": "unsafe" if unsafe else "safe"}


async def decide(ctx: Any) -> dict[str, Any]:
    verdict = {"verdict": ctx.params["verdict"], "user": (await ctx.context.get("userId"))}
    await ctx.context.set("moderation_result", verdict)
    return {"output": verdict}


REGISTRY = {"fetch_content": fetch_content, "classify": classify, "decide": decide}


def worker(clients: Any, infra: Any, **options: Any) -> SqsAdapter:
    return SqsAdapter(
        sqs_client=clients.sqs, dynamodb_client=clients.dynamodb, queue_url=infra.queue_url,
        context_table_name=infra.context_table, status_table_name=infra.status_table,
        runtime_options={"registry": REGISTRY, "blueprints": {MODERATION["id"]: MODERATION}},
        wait_time_seconds=1, **options,
    )


# --- the seed document's client.ts, call for call --------------------------------------


def seed_client_starts_a_run(clients: Any, infra: Any, initial_context: dict[str, Any]) -> str:
    """client.ts steps 3-6 with raw boto3 calls, marshalled as the DocumentClient does."""
    run_id = str(random.randrange(1_000_000))
    marshal = TypeSerializer().serialize
    start_node_ids = analyze_blueprint(MODERATION).startNodeIds
    now_iso = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    clients.dynamodb.put_item(TableName=infra.context_table, Item={
        "runId": marshal(run_id), "context": marshal(initial_context), "createdAt": marshal(now_iso),
    })
    clients.dynamodb.put_item(TableName=infra.status_table, Item={
        "runId": marshal(run_id), "status": marshal("running"), "lastUpdated": marshal(now_iso),
    })
    clients.sqs.send_message_batch(QueueUrl=infra.queue_url, Entries=[
        {"Id": f"{run_id}-{node_id}",
         "MessageBody": f'{{"runId":"{run_id}","blueprintId":"{MODERATION["id"]}","nodeId":"{node_id}"}}'}
        for node_id in start_node_ids
    ])
    return run_id


def seed_client_waits(clients: Any, infra: Any, run_id: str) -> dict[str, Any]:
    """client.ts `waitForWorkflow`: GetItem (eventually consistent) until status != 'running'."""
    unmarshal = TypeDeserializer().deserialize
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        item = clients.dynamodb.get_item(TableName=infra.status_table, Key={"runId": {"S": run_id}}).get("Item")
        if item and unmarshal(item["status"]) != "running":
            plain = {k: unmarshal(v) for k, v in item.items()}
            payload = plain.get("result") if plain["status"] == "completed" else None
            return {"status": plain["status"], "payload": payload, "reason": plain.get("reason")}
        time.sleep(0.2)
    return {"status": "failed", "reason": "Timeout"}


@pytest.mark.parametrize("content,verdict", [("hello world", "approved"), ("buy spam now", "rejected")])
def test_a_run_started_exactly_as_the_seed_client_does_completes(
    aws_clients: Any, infra: Any, content: str, verdict: str
) -> None:
    # Given the seed's worker.ts: an adapter started in the background
    adapter = worker(aws_clients, infra)
    adapter.start()
    try:
        # When the seed's client.ts starts a run and polls for it
        run_id = seed_client_starts_a_run(aws_clients, infra, {"userId": "user-123", "content": content})
        final = seed_client_waits(aws_clients, infra, run_id)
    finally:
        adapter.stop(timeout=10)
    # Then it sees the run complete, and reads result.context.moderation_result
    assert final["status"] == "completed", final
    assert final["payload"]["context"]["moderation_result"] == {"verdict": verdict, "user": "user-123"}
    assert final["payload"]["status"] == "completed"


def test_the_seed_worker_and_reconciler_examples_work_in_python_spelling(
    aws_clients: Any, infra: Any, local_aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # worker.ts, line for line: clients from the environment, the coordination store, the adapter.
    for name, value in local_aws.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SQS_QUEUE_URL", infra.queue_url)
    import os

    import boto3

    from flowcraft_sqs import DynamoDbCoordinationStore, ReconciliationStats, create_sqs_reconciler
    from flowcraft_sqs import SqsAdapter as PublicSqsAdapter

    region = os.environ.get("AWS_REGION") or "us-east-1"
    sqs_client = boto3.client("sqs", region_name=region)
    dynamodb_client = boto3.client("dynamodb", region_name=region)
    coordination_store = DynamoDbCoordinationStore(client=dynamodb_client, table_name=infra.coordination_table)
    adapter = PublicSqsAdapter(
        sqs_client=sqs_client,
        dynamodb_client=dynamodb_client,
        queue_url=os.environ.get("SQS_QUEUE_URL"),
        context_table_name=infra.context_table,
        status_table_name=infra.status_table,
        coordination_store=coordination_store,
        runtime_options={"registry": REGISTRY, "blueprints": {MODERATION["id"]: MODERATION}},
        wait_time_seconds=1,
    )
    adapter.start()
    try:
        run_id = seed_client_starts_a_run(aws_clients, infra, {"userId": "u-7", "content": "ok"})
        assert seed_client_waits(aws_clients, infra, run_id)["status"] == "completed"
    finally:
        adapter.stop(timeout=10)
    # reconcile.ts
    reconciler = create_sqs_reconciler(adapter=adapter, dynamodb_client=dynamodb_client,
                                       status_table_name=infra.status_table, stalled_threshold_seconds=300)
    stats = reconciler.run()
    assert isinstance(stats, ReconciliationStats)
    assert (stats.scannedItems, stats.stalledRuns, stats.reconciledRuns, stats.failedRuns) == (1, 0, 0, 0)


# --- FlowcraftClient ------------------------------------------------------------------------


def client_for(clients: Any, infra: Any) -> FlowcraftClient:
    return FlowcraftClient(clients.sqs, clients.dynamodb, infra.queue_url, infra.context_table,
                           infra.status_table, blueprints={MODERATION["id"]: MODERATION})


class Recorder:
    def __init__(self, target: Any, name: str, calls: list[str]) -> None:
        self._target, self._name, self._calls = target, name, calls

    def __getattr__(self, attribute: str) -> Any:
        method = getattr(self._target, attribute)

        def record(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(f"{self._name}.{attribute}")
            return method(*args, **kwargs)

        return record


def test_start_run_writes_state_then_status_then_jobs(aws_clients: Any, infra: Any) -> None:
    client = client_for(aws_clients, infra)
    calls: list[str] = []
    client.store = Recorder(client.store, "store", calls)
    client.statuses = Recorder(client.statuses, "statuses", calls)
    client.queue = Recorder(client.queue, "queue", calls)
    run_id = client.start_run("content-moderation", {"userId": "u", "content": "hi"})
    assert calls == ["store.create_run", "statuses.start", "queue.send_jobs"]
    state = DynamoRunStore(aws_clients.dynamodb, infra.context_table).load_runs([run_id])[run_id]
    assert state.context == {"userId": "u", "content": "hi"} and dict(state.meta.outstanding) == {"fetch": 1}
    assert client.status(run_id) == RunResult("running", run_id=run_id)
    bodies = [m["Body"] for m in aws_clients.sqs.receive_message(
        QueueUrl=infra.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]]
    assert bodies == [f'{{"runId":"{run_id}","blueprintId":"content-moderation","nodeId":"fetch"}}']


def test_wait_returns_the_completed_context(aws_clients: Any, infra: Any) -> None:
    client = client_for(aws_clients, infra)
    adapter = worker(aws_clients, infra)
    adapter.start()
    try:
        run_id = client.start_run("content-moderation", {"userId": "u-9", "content": "fine"})
        result = client.wait(run_id, timeout_s=TIMEOUT_S, poll_s=0.1)
    finally:
        adapter.stop(timeout=10)
    assert result.status == "completed" and result.reason is None
    assert result.context is not None and result.context["moderation_result"]["verdict"] == "approved"


def test_cancel_publishes_cancelled_once_and_wait_sees_it(aws_clients: Any, infra: Any) -> None:
    client = client_for(aws_clients, infra)
    run_id = client.start_run("content-moderation", {"userId": "u", "content": "hi"})
    assert client.cancel(run_id) == "cancelled"
    first = client.status(run_id)
    assert client.cancel(run_id, "again") == "cancelled"  # no second write
    assert client.status(run_id) == first == RunResult("cancelled", None, "cancelled by client", run_id)
    assert client.wait(run_id, timeout_s=1) == first
    with pytest.raises(RunStateError, match="no-such-run"):
        client.cancel("no-such-run")


def test_wait_times_out_on_a_run_nobody_works_on(aws_clients: Any, infra: Any) -> None:
    client = client_for(aws_clients, infra)
    run_id = client.start_run("content-moderation", {"userId": "u", "content": "hi"})
    with pytest.raises(TimeoutError, match="still running"):
        client.wait(run_id, timeout_s=0.3, poll_s=0.1)


def test_an_unknown_blueprint_name_is_refused(aws_clients: Any, infra: Any) -> None:
    with pytest.raises(ConfigError, match="unknown blueprint 'nope'"):
        client_for(aws_clients, infra).start_run("nope")


# --- clients from the environment ----------------------------------------------------------


def test_endpoint_environment_variables_route_the_clients(
    local_aws: Any, infra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in local_aws.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SQS_QUEUE_URL", infra.queue_url)
    clients = make_clients()
    assert clients.sqs.meta.endpoint_url == local_aws.sqs_endpoint
    assert clients.dynamodb.meta.endpoint_url == local_aws.dynamodb_endpoint
    assert infra.context_table in clients.dynamodb.list_tables()["TableNames"]
    # A client built with no arguments at all uses them too.
    client = FlowcraftClient(context_table_name=infra.context_table, status_table_name=infra.status_table,
                             blueprints={MODERATION["id"]: MODERATION})
    assert client.status(client.start_run("content-moderation")).status == "running"


def test_the_generic_endpoint_variable_routes_both_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    clients = make_clients(region="eu-west-1")
    assert clients.sqs.meta.endpoint_url == clients.dynamodb.meta.endpoint_url == "http://127.0.0.1:4566"
    assert clients.sqs.meta.region_name == "eu-west-1"
    explicit = make_clients(sqs_endpoint_url="http://127.0.0.1:9324")
    assert explicit.sqs.meta.endpoint_url == "http://127.0.0.1:9324"
    assert explicit.dynamodb.meta.endpoint_url == "http://127.0.0.1:4566"


def test_the_region_comes_from_the_argument_then_aws_region_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert resolve_region("us-west-2") == "us-west-2"
    assert resolve_region() == "eu-central-1"
    monkeypatch.delenv("AWS_REGION")
    assert resolve_region() == "ap-south-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert resolve_region() == "us-east-1"
