"""The seed document's `client.ts` in Python, call for call, with raw boto3 requests.

    SQS_QUEUE_URL=... AWS_REGION=... python -m flowcraft_sqs.examples.client

It writes the context item and the `running` status item itself (PutItem, marshalled as
the TS DocumentClient does), enqueues the start nodes with one SendMessageBatch, and polls
the status table once a second until `status` leaves `running`: exactly the protocol the
seed documents, which our workers accept as is. `FlowcraftClient` (flowcraft_sqs.client)
does the same in one call: `FlowcraftClient().start_run("400", {...})`.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from flowcraft_sqs import analyze_blueprint

from .shared import blueprints, config

ACTIVE_USE_CASE = "4.content-moderation"

_to_attribute = TypeSerializer().serialize  # what lib-dynamodb's marshall does
_from_attribute = TypeDeserializer().deserialize


def _iso_now() -> str:
    """`new Date().toISOString()`: 2026-01-01T12:00:00.000Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wait_for_workflow(dynamodb_client: Any, status_table_name: str, run_id: str,
                      timeout_ms: int) -> dict[str, Any]:
    start_time = time.monotonic()
    print(f"Awaiting result for Run ID {run_id} in table: {status_table_name}")

    while (time.monotonic() - start_time) * 1000 < timeout_ms:
        try:
            response = dynamodb_client.get_item(
                TableName=status_table_name, Key={"runId": _to_attribute(run_id)})
            item = {k: _from_attribute(v) for k, v in response.get("Item", {}).items()}
            if item and item.get("status") != "running":
                return {
                    "status": item["status"],
                    "payload": item.get("result") if item["status"] == "completed" else None,
                    "reason": item.get("reason"),
                }
        except Exception as error:  # as the seed: log and keep polling
            print("Error checking workflow status:", error, file=sys.stderr)
        time.sleep(1)

    return {"status": "failed",
            "reason": f"Timeout: Client did not receive a result within {timeout_ms}ms."}


def main(
    sqs_client: Any = None,
    dynamodb_client: Any = None,
    queue_url: str | None = None,
    context_table_name: str = "flowcraft-contexts",
    status_table_name: str = "flowcraft-statuses",
    use_case: str = ACTIVE_USE_CASE,
    timeout_ms: int = 60_000,
) -> dict[str, Any]:
    """Start one run of `use_case` and print its end, as the seed's client does.

    The arguments default to the seed's values; the demo and the tests pass their own.
    """
    print("--- Distributed Workflow Client (AWS SQS/DynamoDB) ---")

    region = os.environ.get("AWS_REGION") or "us-east-1"
    run_id = str(random.randrange(1_000_000))

    # 1. The AWS SDK clients (same as the worker).
    sqs_client = sqs_client or boto3.client("sqs", region_name=region)
    dynamodb_client = dynamodb_client or boto3.client("dynamodb", region_name=region)

    # 2. (The seed creates a coordination store here; starting a run does not use it.)

    # 3. The workflow's configuration.
    chosen = config[use_case]
    blueprint = blueprints[chosen["mainWorkflowId"]]
    start_node_ids = analyze_blueprint(blueprint).start_node_ids
    initial_context_data = chosen["initialContext"]

    # 4. The initial context.
    dynamodb_client.put_item(TableName=context_table_name, Item={
        "runId": _to_attribute(run_id),
        "context": _to_attribute(initial_context_data),
        "createdAt": _to_attribute(_iso_now()),
    })

    # 5. The workflow's status.
    dynamodb_client.put_item(TableName=status_table_name, Item={
        "runId": _to_attribute(run_id),
        "status": _to_attribute("running"),
        "lastUpdated": _to_attribute(_iso_now()),
    })

    # 6. The start jobs.
    start_jobs = [
        {
            "Id": f"{run_id}-{node_id}",
            "MessageBody": json.dumps({"runId": run_id, "blueprintId": chosen["mainWorkflowId"],
                                       "nodeId": node_id}),
        }
        for node_id in start_node_ids
    ]
    queue_url = queue_url or os.environ.get("SQS_QUEUE_URL")
    if not queue_url:
        raise RuntimeError("SQS_QUEUE_URL environment variable is required")

    print(f"🚀 Enqueuing {len(start_jobs)} start job(s) for Run ID: {run_id}")
    sqs_client.send_message_batch(QueueUrl=queue_url, Entries=start_jobs)

    final_status = wait_for_workflow(dynamodb_client, status_table_name, run_id, timeout_ms)
    print("\n=============================================================")
    if final_status["status"] == "completed":
        print(f"✅ Workflow Run ID: {run_id} COMPLETED.")
        print("Final Output:", ((final_status["payload"] or {}).get("context") or {}).get(
            "moderation_result"))
    elif final_status["status"] == "cancelled":
        print(f"🛑 Workflow Run ID: {run_id} was successfully CANCELLED.")
        print(f"   Reason: {final_status['reason']}")
    else:
        print(f"❌ Workflow Run ID: {run_id} FAILED or timed out.", file=sys.stderr)
        print(f"   Reason: {final_status['reason']}", file=sys.stderr)
    print("=============================================================\n")
    return {"runId": run_id, **final_status}


if __name__ == "__main__":
    main()
