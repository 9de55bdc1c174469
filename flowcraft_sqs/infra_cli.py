"""`flowcraft-sqs infra create|show`: the seed document's AWS CLI steps as one command.

    flowcraft-sqs infra create            # queue + DLQ + three tables; prints the queue URL
    export SQS_QUEUE_URL=$(flowcraft-sqs infra create)
    flowcraft-sqs infra show              # what exists, read-only; exit 1 if anything is missing

`create` is idempotent (`infra.ensure_infrastructure`): what exists is kept, queue attributes
that drifted are set back (with a warning), a table with the wrong key schema is an error.
It talks to whatever boto3's normal configuration names: credentials from the usual chain,
the region from --region / AWS_REGION, and local servers through AWS_ENDPOINT_URL,
AWS_ENDPOINT_URL_SQS and AWS_ENDPOINT_URL_DYNAMODB (or the --*-endpoint-url options).
Options also read FLOWCRAFT_<OPTION>, the same variables as `flowcraft-worker`'s, so one
EnvironmentFile configures both.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

# SQS queue attributes `show` reports: (attribute, label).
QUEUE_ATTRIBUTES = (
    ("VisibilityTimeout", "visibility timeout (s)"),
    ("MessageRetentionPeriod", "retention (s)"),
    ("ApproximateNumberOfMessages", "messages visible"),
    ("ApproximateNumberOfMessagesNotVisible", "messages in flight"),
    ("SqsManagedSseEnabled", "SSE-SQS encryption"),
)


def _env(name: str) -> list[str]:
    return [f"FLOWCRAFT_{name}"]


def name_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Resource names (the seed's by default) and where to find AWS."""
    options = [
        click.option("--queue-name", default="flowcraft-jobs", envvar=_env("QUEUE_NAME"),
                     show_default=True, help="SQS queue of jobs."),
        click.option("--dlq-name", default="flowcraft-jobs-dlq", envvar=_env("DLQ_NAME"),
                     show_default=True, help="Its dead-letter queue."),
        click.option("--context-table", default="flowcraft-contexts",
                     envvar=_env("CONTEXT_TABLE"), show_default=True,
                     help="DynamoDB table of run contexts (hash key runId)."),
        click.option("--status-table", default="flowcraft-statuses",
                     envvar=_env("STATUS_TABLE"), show_default=True,
                     help="DynamoDB table of run statuses (hash key runId)."),
        click.option("--coordination-table", default="flowcraft-coordination",
                     envvar=_env("COORDINATION_TABLE"), show_default=True,
                     help="DynamoDB table for coordination."),
        click.option("--coordination-key", default="key", envvar=_env("COORDINATION_KEY"),
                     show_default=True,
                     help="Hash key of the coordination table (the TS package README uses "
                          "coordinationKey)."),
        click.option("--region", envvar=["FLOWCRAFT_REGION", "AWS_REGION"], default=None,
                     help="AWS region [default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1]."),
        click.option("--sqs-endpoint-url", envvar=_env("SQS_ENDPOINT_URL"), default=None,
                     help="SQS endpoint (local servers); normally boto3's AWS_ENDPOINT_URL_SQS."),
        click.option("--dynamodb-endpoint-url", envvar=_env("DYNAMODB_ENDPOINT_URL"),
                     default=None,
                     help="DynamoDB endpoint; normally boto3's AWS_ENDPOINT_URL_DYNAMODB."),
        click.option("--json", "as_json", is_flag=True, help="Print everything as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def infra() -> None:
    """Create or inspect the queue, dead-letter queue and tables a worker needs."""


@infra.command()
@name_options
@click.option("--max-receive-count", type=int, default=5,
              envvar=_env("MAX_RECEIVE_COUNT"), show_default=True,
              help="Receives before a message moves to the DLQ (the redrive policy; 1-1000).")
@click.option("--visibility-timeout", type=int, default=60, envvar=_env("VISIBILITY_TIMEOUT"), show_default=True,
              help="The queue's visibility timeout, seconds (0-43200; workers extend it while a "
                   "node runs).")
def create(as_json: bool, region: str | None, sqs_endpoint_url: str | None,
           dynamodb_endpoint_url: str | None, max_receive_count: int, visibility_timeout: int,
           **names: str) -> None:
    """Create whatever is missing (idempotent) and print the queue URL.

    The same resources as the seed document's `aws sqs create-queue` and three
    `aws dynamodb create-table` commands, plus a dead-letter queue with a redrive policy
    and TTL on the coordination table. Only the queue URL goes to stdout, as
    `aws sqs get-queue-url --output text` prints it.
    """
    from .infra import ensure_infrastructure

    _log_to_stderr()
    clients = _clients(region, sqs_endpoint_url, dynamodb_endpoint_url)
    made = _aws_call(lambda: ensure_infrastructure(
        clients.sqs, clients.dynamodb, max_receive_count=max_receive_count,
        visibility_timeout_s=visibility_timeout, **names))
    if as_json:
        click.echo(json.dumps(asdict(made), indent=2))
        return
    click.echo(made.queue_url)
    click.echo(f"queue {names['queue_name']} (DLQ {names['dlq_name']} after {max_receive_count} "
               f"receives, visibility {visibility_timeout} s); tables {made.context_table}, "
               f"{made.status_table}, {made.coordination_table} (key {made.coordination_key!r}, "
               f"TTL on {made.ttl_attribute!r}: {'on' if made.ttl_enabled else 'unsupported here'})",
               err=True)


@infra.command()
@name_options
def show(as_json: bool, region: str | None, sqs_endpoint_url: str | None,
         dynamodb_endpoint_url: str | None, **names: str) -> None:
    """Show the queues and tables (read-only); exit 1 if any is missing."""
    clients = _clients(region, sqs_endpoint_url, dynamodb_endpoint_url)
    report = _aws_call(lambda: describe(clients.sqs, clients.dynamodb, **names))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for line in _report_lines(report):
            click.echo(line)
    missing = [name for name, part in report.items() if not part.get("exists")]
    if missing:
        click.echo(f"missing: {', '.join(missing)}; create them with `flowcraft-sqs infra create`",
                   err=True)
        sys.exit(1)


def describe(sqs: Any, ddb: Any, *, queue_name: str, dlq_name: str, context_table: str,
             status_table: str, coordination_table: str, coordination_key: str) -> dict[str, Any]:
    """{resource name: facts}, using only read calls (Get*, Describe*)."""
    report: dict[str, Any] = {}
    for name in (queue_name, dlq_name):
        report[name] = _describe_queue(sqs, name)
    for name in (context_table, status_table, coordination_table):
        report[name] = _describe_table(ddb, name)
    report[coordination_table]["expected_key"] = coordination_key
    for name in (context_table, status_table):
        report[name]["expected_key"] = "runId"
    return report


def _describe_queue(sqs: Any, name: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if "NonExistentQueue" in _code(exc) or "QueueDoesNotExist" in _code(exc):
            return {"kind": "queue", "exists": False}
        raise
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {"kind": "queue", "exists": True, "url": url, "attributes": attributes}


def _describe_table(ddb: Any, name: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        table = ddb.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return {"kind": "table", "exists": False}
        raise
    facts: dict[str, Any] = {
        "kind": "table", "exists": True, "arn": table.get("TableArn"),
        "status": table.get("TableStatus"),
        "key": [k["AttributeName"] for k in table.get("KeySchema", []) if k["KeyType"] == "HASH"],
        "range_key": [k["AttributeName"] for k in table.get("KeySchema", [])
                      if k["KeyType"] == "RANGE"],
        "billing": (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
        "items_approx": table.get("ItemCount"),
        "sse": (table.get("SSEDescription") or {}).get("Status", "AWS owned key"),
    }
    try:
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        facts["ttl"] = f"{ttl.get('TimeToLiveStatus')} {ttl.get('AttributeName', '')}".strip()
    except ClientError as exc:
        facts["ttl"] = f"unknown ({_code(exc)})"
    return facts


def _report_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for name, facts in report.items():
        if not facts["exists"]:
            lines.append(f"{facts['kind']} {name}: MISSING")
        elif facts["kind"] == "queue":
            lines.extend(_queue_lines(name, facts))
        else:
            lines.extend(_table_lines(name, facts))
    return lines


def _queue_lines(name: str, facts: dict[str, Any]) -> list[str]:
    attributes = facts["attributes"]
    lines = [f"queue {name}: {facts['url']}", f"  arn: {attributes.get('QueueArn')}"]
    lines += [f"  {label}: {attributes[key]}" for key, label in QUEUE_ATTRIBUTES
              if key in attributes]
    if "RedrivePolicy" in attributes:
        redrive = json.loads(attributes["RedrivePolicy"])
        lines.append(f"  dead-letter queue: {redrive.get('deadLetterTargetArn')} after "
                     f"{redrive.get('maxReceiveCount')} receives")
    return lines


def _table_lines(name: str, facts: dict[str, Any]) -> list[str]:
    key_ok = facts["key"] == [facts["expected_key"]] and not facts["range_key"]
    key = ", ".join(facts["key"] + facts["range_key"])
    return [
        f"table {name}: {facts['status']}",
        f"  arn: {facts['arn']}",
        f"  key: {key}" + ("" if key_ok else f"  (WRONG: workers need hash key "
                                                f"{facts['expected_key']!r} only)"),
        f"  billing: {facts['billing']}; items (approx.): {facts['items_approx']}",
        f"  encryption at rest: {facts['sse']}; TTL: {facts['ttl']}",
    ]


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _clients(region: str | None, sqs_endpoint_url: str | None,
             dynamodb_endpoint_url: str | None) -> Any:
    from .aws import make_clients

    return make_clients(region=region, sqs_endpoint_url=sqs_endpoint_url,
                        dynamodb_endpoint_url=dynamodb_endpoint_url)


def _aws_call(call: Callable[[], Any]) -> Any:
    """Run `call`; AWS and configuration errors become one readable line (exit 1)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .errors import FlowcraftError

    try:
        return call()
    except (ClientError, BotoCoreError, FlowcraftError) as exc:
        raise click.ClickException(str(exc)) from exc


def _log_to_stderr() -> None:
    # ensure_infrastructure reports drift it corrects as warnings: show them.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s",
                        stream=sys.stderr)


def register(group: click.Group) -> None:
    """Add `infra` to a click group (the `flowcraft-sqs` command)."""
    group.add_command(infra, name="infra")
