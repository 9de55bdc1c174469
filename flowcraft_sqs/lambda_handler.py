"""An AWS Lambda handler for an SQS event source, on the same engine path as the worker.

    handler = make_handler(registry, blueprints)        # at import: once per container

Configure the event source with `ReportBatchItemFailures` in its
FunctionResponseTypes: the handler returns `{"batchItemFailures": [...]}` listing the
messages to retry (processing raised, or a job for another blueprint version, which is
also given that delay with ChangeMessageVisibility); Lambda deletes the others. Bad
messages are logged and dropped by the adapter's policy (see `adapter`). Local
continuation stops early enough to return before the function's timeout; the queue's
visibility timeout must be at least the function's timeout (AWS requires it anyway).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .adapter import REQUEUED, SqsAdapter
from .aws import make_clients
from .blueprint import load_blueprints
from .ports import Received

# Stop starting nodes locally this long before the function's timeout: what is left is
# sent through SQS, and a commit plus its sends must still fit.
DEADLINE_MARGIN_S: Final = 10.0


def make_handler(
    registry: Mapping[str, Any],
    blueprints: Mapping[str, Any],
    *,
    queue_url: str | None = None,
    context_table_name: str | None = None,
    status_table_name: str | None = None,
    dependencies: Mapping[str, Any] | None = None,
    evaluator: Any = None,
    middleware: Sequence[Any] = (),
    sqs_client: Any = None,
    dynamodb_client: Any = None,
    local_continuation: bool = True,
    logger: Any = None,
) -> Callable[[Mapping[str, Any], Any], dict[str, Any]]:
    """A `handler(event, context)` for SQS events. Blueprints are validated now, clients made now.

    The queue URL (for successor jobs) is `queue_url`, else SQS_QUEUE_URL, else looked up
    once from the first event's queue ARN. Table names default to FLOWCRAFT_CONTEXT_TABLE /
    FLOWCRAFT_STATUS_TABLE, else the seed document's names.
    """
    loaded = load_blueprints(blueprints, registry=registry)
    if sqs_client is None or dynamodb_client is None:
        made = make_clients()
        sqs_client, dynamodb_client = sqs_client or made.sqs, dynamodb_client or made.dynamodb
    options = {"registry": registry, "blueprints": loaded, "dependencies": dependencies or {},
               "evaluator": evaluator, "middleware": list(middleware)}
    cache: dict[str, SqsAdapter] = {}  # one adapter per container, made on the first event

    def adapter_for(event: Mapping[str, Any]) -> SqsAdapter:
        if "adapter" not in cache:
            url = queue_url or os.environ.get("SQS_QUEUE_URL") or _queue_url_from_event(sqs_client, event)
            cache["adapter"] = SqsAdapter(
                sqs_client=sqs_client, dynamodb_client=dynamodb_client, queue_url=url,
                context_table_name=context_table_name or os.environ.get("FLOWCRAFT_CONTEXT_TABLE", "flowcraft-contexts"),
                status_table_name=status_table_name or os.environ.get("FLOWCRAFT_STATUS_TABLE", "flowcraft-statuses"),
                runtime_options=options, local_continuation=local_continuation, logger=logger,
            )
        return cache["adapter"]

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        records = [r for r in event.get("Records", []) if r.get("eventSource", "aws:sqs") == "aws:sqs"]
        if not records:
            return {"batchItemFailures": []}
        adapter = adapter_for(event)
        return process_records(adapter, records, _deadline(adapter, context))

    handler.adapter_for = adapter_for  # type: ignore[attr-defined]  # for tests and warm-up
    return handler


def process_records(adapter: SqsAdapter, records: Sequence[Mapping[str, Any]], deadline: float | None) -> dict[str, Any]:
    """Process SQS event records; the ones to retry come back as batchItemFailures."""
    received = [_received(record) for record in records]
    try:
        results = adapter.process_messages(received, settle=False, deadline=deadline)
    except Exception:
        # The batch read failed (throttling, endpoint down): every message is retried.
        adapter.log.exception("processing an SQS event batch failed; all %d messages retried", len(received))
        return {"batchItemFailures": [{"itemIdentifier": m.message_id} for m in received]}
    requeued = [(m.receipt, r.retry_after_s) for m, r in zip(received, results, strict=True)
                if r.outcome == REQUEUED and r.retry_after_s is not None]
    for receipt, seconds in requeued:
        adapter.queue.change_visibility([receipt], seconds)
    return {"batchItemFailures": [{"itemIdentifier": r.message_id} for r in results if not r.done]}


def _received(record: Mapping[str, Any]) -> Received:
    attributes = record.get("attributes") or {}
    return Received(
        message_id=record["messageId"],
        receipt=record.get("receiptHandle", ""),
        body=record.get("body", ""),
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
    )


def _deadline(adapter: SqsAdapter, context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return adapter.clock() + remaining() / 1000 - DEADLINE_MARGIN_S


def _queue_url_from_event(sqs_client: Any, event: Mapping[str, Any]) -> str:
    """`arn:aws:sqs:<region>:<account>:<name>` of the first record -> its queue URL (one call)."""
    arn = str(event["Records"][0]["eventSourceARN"])
    _, _, _, _, account, name = arn.split(":", 5)
    return str(sqs_client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


__all__ = ["DEADLINE_MARGIN_S", "make_handler", "process_records"]
