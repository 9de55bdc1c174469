"""SqsAdapter against a real local SQS + DynamoDB server (TS §10.2 and the contract's fixes)."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flowcraft_sqs.adapter import EXECUTED, SqsAdapter
from flowcraft_sqs.aws import RequestCounter, make_clients, requests_per_node
from flowcraft_sqs.client import FlowcraftClient
from flowcraft_sqs.errors import MalformedMessage, TransientError
from flowcraft_sqs.messages import Job
from flowcraft_sqs.stores.dynamodb import DynamoRunStore, DynamoStatusTable
from flowcraft_sqs.transport.sqs import MAX_BATCH_PAYLOAD_BYTES, SqsQueue
from tests.cases.behaviours import Behaviours
from tests.test_cases import CASES, check_expectations

# Tests that use the local-server fixtures get the `aws` mark from conftest; the SqsQueue and
# RequestCounter tests at the end need no server.

RUN_TIMEOUT_S = 30.0
TS_REQUESTS_PER_NODE = 11.1  # the TypeScript adapter, measured the same way (spec §9)


class DuplicatingSqsQueue(SqsQueue):
    """SQS at its most at-least-once: every job is sent twice."""

    def send_jobs(self, jobs: Any, delay_s: int = 0) -> None:
        super().send_jobs(jobs, delay_s)
        super().send_jobs(jobs, delay_s)


class CountingStatuses(DynamoStatusTable):
    """Counts the status writes that took effect."""

    published: list[str]

    def publish(self, run_id: str, status: str, *args: Any, **kwargs: Any) -> bool:
        written = super().publish(run_id, status, *args, **kwargs)
        if written:
            self.published.append(status)
        return written


class Fleet:
    """One adapter and one client on the test's queue and tables."""

    def __init__(self, clients: Any, infra: Any, registry: dict[str, Any], blueprints: dict[str, Any],
                 duplicate: bool = False, **options: Any) -> None:
        queue_type = DuplicatingSqsQueue if duplicate else SqsQueue
        self.infra = infra
        self.queue = queue_type(clients.sqs, infra.queue_url)
        self.statuses = CountingStatuses(clients.dynamodb, infra.status_table)
        self.statuses.published = []
        options.setdefault("wait_time_seconds", 1)
        self.adapter = SqsAdapter(
            sqs_client=clients.sqs, dynamodb_client=clients.dynamodb, queue_url=infra.queue_url,
            context_table_name=infra.context_table, status_table_name=infra.status_table,
            runtime_options={"registry": registry, "blueprints": blueprints},
            queue=self.queue, statuses=self.statuses, **options,
        )
        self.client = FlowcraftClient(
            clients.sqs, clients.dynamodb, infra.queue_url, infra.context_table, infra.status_table,
            blueprints=self.adapter.blueprints,
        )
        self.client.queue = self.queue

    def run_until_settled(self, run_id: str) -> dict[str, Any]:
        """Poll until the run has a final status and the queue is drained; the status item."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            results = self.adapter.poll_once()
            item = self.statuses.get(run_id) or {}
            if item.get("status") not in ("running", None) and not results and queue_is_empty(self.queue):
                return item
        raise AssertionError(f"run {run_id} did not settle: {self.statuses.get(run_id)}")


def queue_is_empty(queue: SqsQueue) -> bool:
    attributes = queue.client.get_queue_attributes(
        QueueUrl=queue.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(v) == 0 for v in attributes.values())


def case(stem: str) -> dict[str, Any]:
    path = next(p for p in CASES if p.stem.startswith(stem))
    return json.loads(path.read_text())


# --- TS §10.2 ----------------------------------------------------------------------------


def test_enqueue_job_puts_exactly_one_message_whose_body_is_the_job(aws_clients: Any, infra: Any) -> None:
    fleet = Fleet(aws_clients, infra, {}, {})
    job = {"runId": "r-1", "blueprintId": "bp", "nodeId": "A"}
    fleet.adapter.enqueue_job(job)
    messages = aws_clients.sqs.receive_message(QueueUrl=infra.queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1)["Messages"]
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"]) == job
    assert aws_clients.sqs.receive_message(QueueUrl=infra.queue_url, WaitTimeSeconds=1).get("Messages") is None


def test_handle_job_is_public_and_runs_a_single_node_run(aws_clients: Any, infra: Any) -> None:
    behaviours = Behaviours()
    bp = {"id": "single", "nodes": [{"id": "A", "uses": "const", "params": {"value": 42}}], "edges": []}
    fleet = Fleet(aws_clients, infra, behaviours.registry, {"single": bp})
    run_id = fleet.client.start_run("single")
    result = fleet.adapter.handle_job({"runId": run_id, "blueprintId": "single", "nodeId": "A"})
    assert (result.outcome, result.run_id, result.node_id) == (EXECUTED, run_id, "A")
    assert fleet.client.status(run_id).status == "completed"
    assert fleet.client.status(run_id).context == {"_outputs.A": 42}
    # The queued copy of the same job replays: the node does not run again.
    fleet.run_until_settled(run_id)
    assert behaviours.executions["A"] == 1


def test_register_webhook_endpoint_is_not_implemented(aws_clients: Any, infra: Any) -> None:
    fleet = Fleet(aws_clients, infra, {}, {})
    with pytest.raises(NotImplementedError, match="register_webhook_endpoint not implemented"):
        fleet.adapter.register_webhook_endpoint("r", "n")


def test_start_runs_a_consumer_once_and_stop_ends_it(aws_clients: Any, infra: Any) -> None:
    behaviours = Behaviours()
    fleet = Fleet(aws_clients, infra, behaviours.registry, {"chain": case("001")["blueprint"]})
    run_id = fleet.client.start_run("chain", case("001")["initialContext"])
    fleet.adapter.start()
    fleet.adapter.start()  # a second start keeps the running consumer
    try:
        result = fleet.client.wait(run_id, timeout_s=RUN_TIMEOUT_S, poll_s=0.1)
    finally:
        assert fleet.adapter.stop(timeout=10)
    assert result.status == "completed"
    assert not fleet.adapter.running


def test_a_failing_status_touch_does_not_fail_the_job(aws_clients: Any, infra: Any, caplog: Any) -> None:
    behaviours = Behaviours()
    fleet = Fleet(aws_clients, infra, behaviours.registry, {"chain": case("001")["blueprint"]})
    fleet.adapter._statuses_for_effects._statuses = BrokenTouches(fleet.statuses)
    run_id = fleet.client.start_run("chain", case("001")["initialContext"])
    fleet.adapter.engine.touch_interval_s = 0  # every commit touches
    with caplog.at_level(logging.WARNING):
        item = fleet.run_until_settled(run_id)
    assert item["status"] == "completed"
    assert any("status touch failed" in r.getMessage() for r in caplog.records)


class BrokenTouches:
    def __init__(self, statuses: DynamoStatusTable) -> None:
        self.statuses = statuses

    def publish(self, *args: Any, **kwargs: Any) -> bool:
        return self.statuses.publish(*args, **kwargs)

    def touch(self, run_id: str, now: float) -> None:
        raise TransientError("DynamoDB UpdateItem throttled")


# --- workflows on real SQS and DynamoDB ---------------------------------------------------


@pytest.mark.parametrize("local_continuation", [True, False], ids=["continuation", "every-hop-via-sqs"])
def test_a_diamond_delivered_twice_fires_its_join_once_and_publishes_once(
    aws_clients: Any, infra: Any, local_continuation: bool
) -> None:
    # Given a diamond whose every message is sent twice
    behaviours = Behaviours()
    diamond = case("002")
    fleet = Fleet(aws_clients, infra, behaviours.registry, {"diamond": diamond["blueprint"]},
                  duplicate=True, local_continuation=local_continuation)
    # When it runs to the end
    run_id = fleet.client.start_run("diamond", diamond["initialContext"])
    item = fleet.run_until_settled(run_id)
    # Then every node ran once, the join saw both branches, and the status was written once
    assert behaviours.executions == {"S": 1, "L": 1, "R": 1, "J": 1}
    state = DynamoRunStore(aws_clients.dynamodb, infra.context_table).load_runs([run_id])[run_id]
    assert state.context["_outputs.J"] == {"left": 3, "right": 4}
    assert set(state.meta.results) == {"S", "L", "R", "J"} and not state.meta.outstanding
    assert fleet.statuses.published == ["completed"]
    assert item["status"] == "completed" and item["result"]["context"]["_outputs.J"] == {"left": 3, "right": 4}


@pytest.mark.parametrize("stem", ["003", "004", "006", "014", "017"],
                         ids=["router-branch-terminals", "any-join-three-predecessors",
                              "failed-node-keeps-message", "no-output", "failure-stops-new-nodes"])
def test_golden_case_runs_on_sqs_and_dynamodb(aws_clients: Any, infra: Any, stem: str) -> None:
    behaviours = Behaviours()
    golden = case(stem)
    bp_id = golden["blueprint"]["id"]
    fleet = Fleet(aws_clients, infra, behaviours.registry, {bp_id: golden["blueprint"]})
    run_id = fleet.client.start_run(bp_id, golden["initialContext"])
    item = fleet.run_until_settled(run_id)
    state = DynamoRunStore(aws_clients.dynamodb, infra.context_table).load_runs([run_id])[run_id]
    check_expectations(golden["expect"], item["status"], dict(state.context), item.get("reason"), behaviours)
    assert fleet.statuses.published == [golden["expect"]["status"]]


def test_a_failed_node_fails_the_run_with_its_original_message(aws_clients: Any, infra: Any) -> None:
    def boom(ctx: Any) -> None:
        raise ValueError("boom")

    bp = {"id": "fails", "nodes": [{"id": "X", "uses": "boom"}, {"id": "Y", "uses": "boom"}],
          "edges": [{"source": "X", "target": "Y"}]}
    fleet = Fleet(aws_clients, infra, {"boom": boom}, {"fails": bp})
    run_id = fleet.client.start_run("fails")
    item = fleet.run_until_settled(run_id)
    assert (item["status"], item["reason"]) == ("failed", "Node 'X' failed: boom")


def test_a_cancelled_run_starts_nothing_new(aws_clients: Any, infra: Any) -> None:
    behaviours = Behaviours()
    fleet = Fleet(aws_clients, infra, behaviours.registry, {"chain": case("001")["blueprint"]})
    run_id = fleet.client.start_run("chain", case("001")["initialContext"])
    assert fleet.adapter.cancel(run_id, "no longer needed") == "cancelled"
    item = fleet.run_until_settled(run_id)
    assert behaviours.executions == {}
    assert (item["status"], item["reason"]) == ("cancelled", "no longer needed")
    assert fleet.statuses.published == ["cancelled"]


def test_malformed_messages_are_deleted_with_an_error_and_good_runs_go_on(
    aws_clients: Any, infra: Any, caplog: Any
) -> None:
    behaviours = Behaviours()
    fleet = Fleet(aws_clients, infra, behaviours.registry, {"chain": case("001")["blueprint"]})
    fleet.queue.send_raw(["not json {", '{"runId": "private-data"}', "[1, 2]",
                          '{"runId": "nope", "blueprintId": "chain", "nodeId": "A"}',
                          '{"runId": "x", "blueprintId": "chain", "nodeId": "ghost"}'])
    run_id = fleet.client.start_run("chain", case("001")["initialContext"])
    with caplog.at_level(logging.ERROR, logger="flowcraft_sqs.adapter"):
        item = fleet.run_until_settled(run_id)
    assert item["status"] == "completed"
    dropped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dropping message")]
    assert len(dropped) == 5
    assert not any("private-data" in text for text in dropped)
    assert queue_is_empty(fleet.queue)


# --- cost ---------------------------------------------------------------------------------


def chain(length: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "uses": "add", "params": {"n": 1}} for i in range(length)]
    nodes[0] = {"id": "n0", "uses": "const", "params": {"value": 0}}
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(length - 1)]
    return {"id": f"chain{length}", "nodes": nodes, "edges": edges}


@pytest.fixture
def counted_clients(local_aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, RequestCounter]]:
    for name, value in local_aws.env().items():
        monkeypatch.setenv(name, value)
    counter = RequestCounter()
    yield make_clients(counter=counter), counter


@pytest.mark.parametrize("local_continuation", [True, False], ids=["continuation", "every-hop-via-sqs"])
def test_aws_requests_per_node_of_a_ten_node_chain(
    aws_clients: Any, counted_clients: tuple[Any, RequestCounter], infra: Any, local_continuation: bool
) -> None:
    # Given a worker whose every AWS request is counted, and a 10-node chain started
    clients, counter = counted_clients
    fleet = Fleet(clients, infra, Behaviours().registry, {"chain10": chain(10)},
                  local_continuation=local_continuation, visibility_timeout=60)
    watcher = DynamoStatusTable(aws_clients.dynamodb, infra.status_table)  # not counted
    run_id = fleet.client.start_run("chain10")
    counter.reset()
    # When the worker runs it to the end
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while watcher.get(run_id)["status"] == "running" and time.monotonic() < deadline:
        fleet.adapter.poll_once()
    # Then it cost far fewer requests per node than the TS adapter
    assert watcher.get(run_id)["result"]["context"]["_outputs.n9"] == 9
    per_node = requests_per_node(counter, 10)
    print(f"\nAWS requests per node, 10-node chain, local_continuation={local_continuation} "
          f"(TS adapter: {TS_REQUESTS_PER_NODE}):")
    for operation, value in per_node.items():
        print(f"  {operation:36s} {value:.2f}")
    assert per_node["total"] < TS_REQUESTS_PER_NODE / 2
    if local_continuation:
        assert per_node["total"] <= 1.5
        assert counter.snapshot()["DynamoDB.UpdateItem"] == 11  # 10 commits + the final status
        assert "SQS.SendMessageBatch" not in per_node


def test_requests_per_node_reports_each_operation_and_the_total() -> None:
    counter = RequestCounter()
    counter._add(counter._requests, "SQS", "before-send.sqs.ReceiveMessage")
    counter._add(counter._requests, "DynamoDB", "before-send.dynamodb.UpdateItem")
    counter._add(counter._requests, "DynamoDB", "before-send.dynamodb.UpdateItem")
    assert requests_per_node(counter, 2) == {"DynamoDB.UpdateItem": 1.0, "SQS.ReceiveMessage": 0.5, "total": 1.5}


# --- the request counter counts retries -------------------------------------------------


class _Failing(http.server.BaseHTTPRequestHandler):
    """Answers every request with a retryable 500, as a struggling endpoint does."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"__type": "InternalFailure", "message": "try again"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_request_counter_counts_every_http_attempt_and_each_logical_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setattr("flowcraft_sqs.aws.MAX_ATTEMPTS", 3)
    try:
        counter = RequestCounter()
        clients = make_clients(endpoint_url=f"http://127.0.0.1:{server.server_port}", counter=counter)
        queue = SqsQueue(clients.sqs, f"http://127.0.0.1:{server.server_port}/000000000000/q")
        with pytest.raises(TransientError):
            queue.receive(10, 0)
        assert counter.calls() == {"SQS.ReceiveMessage": 1}
        assert counter.snapshot() == {"SQS.ReceiveMessage": 3}
    finally:
        server.shutdown()


# --- SqsQueue's per-entry handling, on a scripted client ------------------------------------


class ScriptedSqs:
    """A boto3 SQS client stand-in: each call pops the next scripted response (or raises it)."""

    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, operation: str) -> Any:
        def call(**request: Any) -> Any:
            self.requests.append((operation, request))
            response = self.responses.pop(0) if self.responses else {}
            if isinstance(response, Exception):
                raise response
            return response

        return call


def scripted_queue(*responses: Any) -> tuple[SqsQueue, ScriptedSqs]:
    client = ScriptedSqs(*responses)
    return SqsQueue(client, "https://sqs.example/1/q", sleep=lambda _s: None), client


def test_send_jobs_retries_only_the_refused_entries() -> None:
    queue, client = scripted_queue(
        {"Failed": [{"Id": "1", "Code": "InternalError", "SenderFault": False}]}, {})
    queue.send_jobs([Job("r", "b", "A"), Job("r", "b", "B")])
    retried = client.requests[1][1]["Entries"]
    assert [json.loads(e["MessageBody"])["nodeId"] for e in retried] == ["B"]


def test_send_jobs_gives_up_with_a_transient_error() -> None:
    refusal = {"Failed": [{"Id": "0", "Code": "InternalError", "SenderFault": False}]}
    queue, _ = scripted_queue(*[refusal] * 5)
    with pytest.raises(TransientError, match="still refused after 5 attempts"):
        queue.send_jobs([Job("r", "b", "A")])


def test_a_sender_fault_is_not_retried() -> None:
    queue, client = scripted_queue({"Failed": [{"Id": "0", "Code": "InvalidMessageContents", "SenderFault": True}]})
    with pytest.raises(MalformedMessage, match="InvalidMessageContents"):
        queue.send_jobs([Job("r", "b", "A")])
    assert len(client.requests) == 1


def test_sends_are_chunked_by_count_and_by_payload_size() -> None:
    queue, client = scripted_queue()
    queue.send_jobs([Job("r", "b", f"n{i}") for i in range(23)])
    assert [len(r["Entries"]) for _, r in client.requests] == [10, 10, 3]
    queue, client = scripted_queue()
    big = "x" * (MAX_BATCH_PAYLOAD_BYTES // 3 + 1)  # three of them pass the limit
    queue.send_raw([big] * 4)
    assert [len(r["Entries"]) for _, r in client.requests] == [2, 2]


def test_stale_receipts_are_not_failures_and_others_are_returned() -> None:
    queue, _ = scripted_queue({"Failed": [
        {"Id": "0", "Code": "ReceiptHandleIsInvalid", "SenderFault": True},
        {"Id": "1", "Code": "AWS.SimpleQueueService.MessageNotInflight", "SenderFault": True},
        {"Id": "2", "Code": "InternalError", "SenderFault": False},
    ]})
    assert queue.delete(["gone", "taken", "unlucky"]) == ["unlucky"]


def test_visibility_is_capped_at_twelve_hours() -> None:
    queue, client = scripted_queue()
    queue.change_visibility(["r"], 10**6)
    assert client.requests[0][1]["Entries"][0]["VisibilityTimeout"] == 12 * 60 * 60


def test_throttling_becomes_a_transient_error() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    throttled = ClientError({"Error": {"Code": "RequestThrottled"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                            "ReceiveMessage")
    queue, _ = scripted_queue(throttled, EndpointConnectionError(endpoint_url="https://sqs.example"))
    with pytest.raises(TransientError):
        queue.receive(10, 0)
    with pytest.raises(TransientError):
        queue.receive(10, 0)
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                         "ReceiveMessage")
    queue, _ = scripted_queue(denied)
    with pytest.raises(ClientError):
        queue.receive(10, 0)
