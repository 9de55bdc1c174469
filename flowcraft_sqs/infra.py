"""Create (or check) the AWS resources flowcraft-sqs runs on: one job queue with its
dead-letter queue, and three DynamoDB tables (run contexts, run statuses, coordination).

`ensure_infrastructure` is idempotent: run it at every deploy or test. Resources that exist
are kept; a queue whose attributes drifted is updated (and the drift logged); a table whose
key schema differs cannot be changed in place, so that is reported as an error.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .errors import FlowcraftError

log = logging.getLogger(__name__)

# --- AWS limits (each value is AWS's documented bound) ---
SQS_MAX_VISIBILITY_TIMEOUT_S = 43_200  # 12 h: the longest a received message can stay hidden
SQS_MIN_RECEIVE_COUNT = 1  # RedrivePolicy maxReceiveCount range is 1..1000
SQS_MAX_RECEIVE_COUNT = 1_000
SQS_MAX_RETENTION_S = 1_209_600  # 14 days: the longest SQS keeps a message
# Standard queues only: 1-80 letters, digits, hyphens, underscores (no `.fifo`).
SQS_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
DDB_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")

# The DLQ keeps failed jobs as long as SQS allows, for inspection and redrive. It must also
# outlive the source queue's retention: a standard queue's message keeps its original enqueue
# time when it moves to the DLQ, so a shorter DLQ retention would drop it on arrival.
DLQ_RETENTION_S = SQS_MAX_RETENTION_S

# On-demand tables are ACTIVE within seconds on AWS (at once on emulators); 5 min means stuck.
TABLE_ACTIVE_TIMEOUT_S = 300.0
# describe_table polling: fast first (emulators), backing off to spare AWS's control plane.
POLL_FIRST_S = 0.05
POLL_MAX_S = 2.0

DEFAULT_TTL_ATTRIBUTE = "ttl"

_QUEUE_EXISTS_CODES = {"QueueAlreadyExists", "QueueNameExists",
                       "AWS.SimpleQueueService.QueueNameExists"}
_QUEUE_GONE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
# What emulators answer for an operation they lack (dynalite: UnknownOperationException).
_UNSUPPORTED_CODES = {"UnknownOperationException", "NotImplemented", "NotImplementedException",
                      "InvalidAction", "UnsupportedOperation", "501"}
_TTL_ON = {"ENABLED", "ENABLING"}


class InfrastructureError(FlowcraftError):
    """A queue or table cannot be made to fit; the message names it and what differs."""


@dataclass(frozen=True)
class Infrastructure:
    queue_url: str
    dlq_url: str
    queue_arn: str
    dlq_arn: str
    context_table: str
    status_table: str
    coordination_table: str
    run_id_key: str
    coordination_key: str
    ttl_attribute: str
    ttl_enabled: bool  # False only where the server lacks UpdateTimeToLive (some emulators)


def ensure_infrastructure(
    sqs_client: Any,
    dynamodb_client: Any,
    *,
    queue_name: str = "flowcraft-jobs",
    dlq_name: str = "flowcraft-jobs-dlq",
    max_receive_count: int = 5,
    visibility_timeout_s: int = 60,
    context_table: str = "flowcraft-contexts",
    status_table: str = "flowcraft-statuses",
    coordination_table: str = "flowcraft-coordination",
    coordination_key: str = "key",
    run_id_key: str = "runId",
    ttl_attribute: str = DEFAULT_TTL_ATTRIBUTE,
) -> Infrastructure:
    """Create whatever is missing, fix queue attributes that drifted, and return the names."""
    tables = {context_table: run_id_key, status_table: run_id_key,
              coordination_table: coordination_key}
    _validate(queue_name, dlq_name, max_receive_count, visibility_timeout_s, tables)
    # Tables first: AWS creates them in the background while we set up the queues.
    for table, key in tables.items():
        _create_table(dynamodb_client, table, key)
    dlq_url, dlq_arn = _ensure_queue(
        sqs_client, dlq_name, {"MessageRetentionPeriod": str(DLQ_RETENTION_S)})
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
    queue_url, queue_arn = _ensure_queue(sqs_client, queue_name, {
        "VisibilityTimeout": str(visibility_timeout_s), "RedrivePolicy": json.dumps(redrive)})
    for table, key in tables.items():
        _wait_active(dynamodb_client, table, key)
    ttl_enabled = _ensure_ttl(dynamodb_client, coordination_table, ttl_attribute)
    return Infrastructure(queue_url, dlq_url, queue_arn, dlq_arn, context_table, status_table,
                          coordination_table, run_id_key, coordination_key, ttl_attribute,
                          ttl_enabled)


def delete_infrastructure(sqs_client: Any, dynamodb_client: Any, infra: Infrastructure) -> None:
    """Delete the queues and tables (for tests and teardown); missing ones are fine."""
    for url in (infra.queue_url, infra.dlq_url):
        try:
            sqs_client.delete_queue(QueueUrl=url)
        except ClientError as exc:
            if _code(exc) not in _QUEUE_GONE_CODES:
                raise
    for table in (infra.context_table, infra.status_table, infra.coordination_table):
        try:
            dynamodb_client.delete_table(TableName=table)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise


def _validate(queue_name: str, dlq_name: str, max_receive_count: int,
              visibility_timeout_s: int, tables: dict[str, str]) -> None:
    problems = [f"queue name {n!r} must be 1-80 letters, digits, '-' or '_'"
                for n in (queue_name, dlq_name) if not SQS_QUEUE_NAME.fullmatch(n)]
    if queue_name == dlq_name:
        problems.append("the queue and its dead-letter queue need different names")
    if not SQS_MIN_RECEIVE_COUNT <= max_receive_count <= SQS_MAX_RECEIVE_COUNT:
        problems.append(f"max_receive_count {max_receive_count} must be "
                        f"{SQS_MIN_RECEIVE_COUNT}..{SQS_MAX_RECEIVE_COUNT}")
    if not 0 <= visibility_timeout_s <= SQS_MAX_VISIBILITY_TIMEOUT_S:
        problems.append(f"visibility_timeout_s {visibility_timeout_s} must be "
                        f"0..{SQS_MAX_VISIBILITY_TIMEOUT_S}")
    problems += [f"table name {t!r} must be 3-255 letters, digits, '_', '-' or '.'"
                 for t in tables if not DDB_TABLE_NAME.fullmatch(t)]
    if len(tables) != 3:
        problems.append("the context, status and coordination tables need different names")
    if problems:
        raise InfrastructureError("; ".join(problems))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- SQS ---

def _ensure_queue(sqs: Any, name: str, wanted: dict[str, str]) -> tuple[str, str]:
    """Create `name` with `wanted` attributes, or bring an existing one to them: (url, arn)."""
    try:
        url = sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"]
    except ClientError as exc:
        if _code(exc) not in _QUEUE_EXISTS_CODES:
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    # Read back even after a create: some emulators return an existing queue as is.
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    drift = {k: v for k, v in wanted.items() if not _same_attribute(k, current.get(k), v)}
    if drift:
        for key, value in drift.items():
            log.warning("queue %s: %s was %r; setting it to %r", name, key, current.get(key), value)
        sqs.set_queue_attributes(QueueUrl=url, Attributes=drift)
    return url, current["QueueArn"]


def _same_attribute(key: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if key != "RedrivePolicy":
        return current == wanted
    try:  # JSON whose maxReceiveCount may come back as a number or a string
        have, want = json.loads(current), json.loads(wanted)
    except ValueError:
        return False
    return (have.get("deadLetterTargetArn") == want["deadLetterTargetArn"]
            and str(have.get("maxReceiveCount")) == str(want["maxReceiveCount"]))


# --- DynamoDB ---

def _create_table(ddb: Any, table: str, key: str) -> None:
    try:
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":  # it exists: checked in _wait_active
            raise


def _wait_active(ddb: Any, table: str, key: str) -> None:
    deadline = time.monotonic() + TABLE_ACTIVE_TIMEOUT_S
    pause = POLL_FIRST_S
    while True:
        desc = ddb.describe_table(TableName=table)["Table"]
        _check_key_schema(desc, table, key)
        status = desc["TableStatus"]
        if status == "ACTIVE":
            return
        if status == "DELETING":
            raise InfrastructureError(f"table {table} is being deleted; retry once it is gone")
        if time.monotonic() > deadline:
            raise InfrastructureError(
                f"table {table} still {status} after {TABLE_ACTIVE_TIMEOUT_S:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, POLL_MAX_S)


def _check_key_schema(desc: dict[str, Any], table: str, key: str) -> None:
    schema = [(k["AttributeName"], k["KeyType"]) for k in desc["KeySchema"]]
    types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
    if schema != [(key, "HASH")] or types.get(key) != "S":
        raise InfrastructureError(
            f"table {table} exists with key schema {schema} {types}, but flowcraft-sqs needs "
            f"only a hash key {key!r} of type S; a key schema cannot change in place: "
            "use another table name, or delete the table")


def _ensure_ttl(ddb: Any, table: str, attribute: str) -> bool:
    """Turn on TTL for `attribute`; False (and a warning) if the server lacks the TTL API."""
    try:
        desc = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        status = desc.get("TimeToLiveStatus", "DISABLED")
        if status in _TTL_ON:
            if desc.get("AttributeName") == attribute:
                return True
            log.warning("table %s: TTL is on for %r, not %r; expired coordination items will "
                        "not be removed until TTL is switched to %r",
                        table, desc.get("AttributeName"), attribute, attribute)
            return False
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": attribute})
        return True
    except ClientError as exc:
        if "already enabled" in str(exc).lower():  # another deploy enabled it meanwhile
            return True
        if _code(exc) not in _UNSUPPORTED_CODES:
            raise
        log.warning("table %s: this DynamoDB endpoint does not support TTL (%s); expired "
                    "coordination items will stay", table, _code(exc))
        return False
