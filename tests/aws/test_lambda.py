"""The Lambda handler, fed SQS events built from real local SQS messages as Lambda's poller does."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from flowcraft_sqs import protocol
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.client import FlowcraftClient
from flowcraft_sqs.lambda_handler import DEADLINE_MARGIN_S, make_handler
from flowcraft_sqs.messages import Job
from flowcraft_sqs.stores.dynamodb import DynamoRunStore
from tests.cases.behaviours import Behaviours

pytestmark = pytest.mark.aws

TIMEOUT_S = 30.0


def chain(length: int, version: str | None = None) -> dict[str, Any]:
    nodes = [{"id": "n0", "uses": "const", "params": {"value": 0}}]
    nodes += [{"id": f"n{i}", "uses": "add", "params": {"n": 1}} for i in range(1, length)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(length - 1)]
    bp: dict[str, Any] = {"id": "chain", "nodes": nodes, "edges": edges}
    if version is not None:
        bp["metadata"] = {"version": version}
    return bp


class LambdaContext:
    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class Poller:
    """Lambda's SQS poller: receive, invoke, delete what the response does not list."""

    def __init__(self, clients: Any, infra: Any) -> None:
        self.sqs, self.infra = clients.sqs, infra

    def event(self) -> dict[str, Any]:
        messages = self.sqs.receive_message(
            QueueUrl=self.infra.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        return {"Records": [self._record(m) for m in messages]}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"], "attributes": message.get("Attributes", {}),
            "messageAttributes": {}, "md5OfBody": message["MD5OfBody"], "eventSource": "aws:sqs",
            "eventSourceARN": self.infra.queue_arn, "awsRegion": "us-east-1",
        }

    def invoke(self, handler: Any, context: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        event = self.event()
        response = handler(event, context or LambdaContext()) if event["Records"] else {"batchItemFailures": []}
        retry = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        done = [r for r in event["Records"] if r["messageId"] not in retry]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.infra.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)])
        return event, response


def handler_for(clients: Any, infra: Any, registry: Any, blueprint: dict[str, Any], **options: Any) -> Any:
    options.setdefault("queue_url", infra.queue_url)
    return make_handler(registry, {"chain": blueprint}, sqs_client=clients.sqs, dynamodb_client=clients.dynamodb,
                        context_table_name=infra.context_table, status_table_name=infra.status_table, **options)


def client_for(clients: Any, infra: Any, blueprint: dict[str, Any]) -> FlowcraftClient:
    return FlowcraftClient(clients.sqs, clients.dynamodb, infra.queue_url, infra.context_table,
                           infra.status_table, blueprints={"chain": blueprint})


def run_to_end(poller: Poller, handler: Any, client: FlowcraftClient, run_id: str) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        poller.invoke(handler)
        status = client.status(run_id)
        if status and status.status != "running":
            return status.status
    raise AssertionError("the run did not finish")


def test_the_handler_runs_a_chain_and_reports_no_failures(aws_clients: Any, infra: Any) -> None:
    behaviours = Behaviours()
    handler = handler_for(aws_clients, infra, behaviours.registry, chain(5))
    client = client_for(aws_clients, infra, chain(5))
    run_id = client.start_run("chain")
    poller = Poller(aws_clients, infra)
    event, response = poller.invoke(handler)
    assert len(event["Records"]) == 1 and response == {"batchItemFailures": []}
    assert client.status(run_id).context["_outputs.n4"] == 4
    assert behaviours.executions == {f"n{i}": 1 for i in range(5)}
    assert handler.adapter_for(event) is handler.adapter_for(event)  # one adapter per container


def test_malformed_messages_are_dropped_not_retried(aws_clients: Any, infra: Any, caplog: Any) -> None:
    handler = handler_for(aws_clients, infra, Behaviours().registry, chain(2))
    aws_clients.sqs.send_message(QueueUrl=infra.queue_url, MessageBody="{not json")
    with caplog.at_level(logging.ERROR, logger="flowcraft_sqs.adapter"):
        event, response = Poller(aws_clients, infra).invoke(handler)
    assert len(event["Records"]) == 1 and response == {"batchItemFailures": []}
    assert any(event["Records"][0]["messageId"] in r.getMessage() for r in caplog.records)


def test_a_job_for_another_blueprint_version_is_reported_for_retry(aws_clients: Any, infra: Any) -> None:
    handler = handler_for(aws_clients, infra, Behaviours().registry, chain(2, version="2"))
    old = load_blueprint(chain(2, version="1"))
    DynamoRunStore(aws_clients.dynamodb, infra.context_table).create_run(protocol.new_run(old, "r-old", {}, time.time()))
    aws_clients.sqs.send_message(QueueUrl=infra.queue_url, MessageBody=Job("r-old", "chain", "n0").to_body().decode())
    poller = Poller(aws_clients, infra)
    event, response = poller.invoke(handler)
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert poller.event()["Records"] == []  # held back for the requeue delay, not visible at once


def test_a_batch_that_cannot_be_processed_is_retried_whole(aws_clients: Any, infra: Any) -> None:
    import boto3
    from botocore.config import Config

    dead = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    handler = make_handler(Behaviours().registry, {"chain": chain(2)}, sqs_client=aws_clients.sqs,
                           dynamodb_client=dead, queue_url=infra.queue_url)
    for node in ("n0", "n1"):
        aws_clients.sqs.send_message(QueueUrl=infra.queue_url, MessageBody=Job("r", "chain", node).to_body().decode())
    poller = Poller(aws_clients, infra)
    event = poller.event()
    response = handler(event, LambdaContext())
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == \
        sorted(r["messageId"] for r in event["Records"])


def test_the_queue_url_is_found_from_the_event_source_arn(
    aws_clients: Any, infra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQS_QUEUE_URL", raising=False)
    handler = handler_for(aws_clients, infra, Behaviours().registry, chain(3), queue_url=None,
                          local_continuation=False)
    client = client_for(aws_clients, infra, chain(3))
    run_id = client.start_run("chain")
    poller = Poller(aws_clients, infra)
    assert run_to_end(poller, handler, client, run_id) == "completed"
    assert handler.adapter_for({}).queue.queue_url == infra.queue_url


def test_near_the_timeout_the_rest_of_a_chain_goes_through_sqs(aws_clients: Any, infra: Any) -> None:
    behaviours = Behaviours()
    handler = handler_for(aws_clients, infra, behaviours.registry, chain(4))
    client = client_for(aws_clients, infra, chain(4))
    run_id = client.start_run("chain")
    poller = Poller(aws_clients, infra)
    # Less time left than the margin: no node is started locally after the first.
    poller.invoke(handler, LambdaContext(remaining_ms=int(DEADLINE_MARGIN_S * 1000)))
    assert behaviours.executions == {"n0": 1}
    assert run_to_end(poller, handler, client, run_id) == "completed"
    assert behaviours.executions == {f"n{i}": 1 for i in range(4)}
