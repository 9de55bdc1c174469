"""The seed document's `worker.ts` in Python: one `SqsAdapter` polling SQS in this process.

    SQS_QUEUE_URL=https://sqs.us-east-1.amazonaws.com/123456789012/flowcraft-jobs \\
    AWS_REGION=us-east-1 python -m flowcraft_sqs.examples.worker

Ctrl-C or SIGTERM stops it after the messages in hand are finished. For a fleet member
(several processes, supervised, systemd-ready) run instead:

    flowcraft-worker --procs 4 --app flowcraft_sqs.examples:app
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import boto3

from flowcraft_sqs import DynamoDbCoordinationStore, SqsAdapter

from .shared import agent_node_registry, blueprints, dependencies


def make_adapter(
    sqs_client: Any = None,
    dynamodb_client: Any = None,
    queue_url: str | None = None,
    context_table_name: str = "flowcraft-contexts",
    status_table_name: str = "flowcraft-statuses",
    coordination_table_name: str = "flowcraft-coordination",
    **options: Any,
) -> SqsAdapter:
    """The seed's worker setup; the arguments default to its values (tests pass their own)."""
    region = os.environ.get("AWS_REGION") or "us-east-1"

    # 1. The AWS SDK clients. Credentials come from boto3's normal chain (IAM role,
    #    environment, profile); AWS_ENDPOINT_URL_SQS / _DYNAMODB point them at local servers.
    sqs_client = sqs_client or boto3.client("sqs", region_name=region)
    dynamodb_client = dynamodb_client or boto3.client("dynamodb", region_name=region)

    # 2. The coordination store (DynamoDB atomic counters and conditional writes).
    coordination_store = DynamoDbCoordinationStore(
        client=dynamodb_client,
        table_name=coordination_table_name,  # you must create this table
    )

    # 3. The adapter.
    return SqsAdapter(
        sqs_client=sqs_client,
        dynamodb_client=dynamodb_client,
        # e.g. 'https://sqs.us-east-1.amazonaws.com/123456789012/flowcraft-jobs'
        queue_url=queue_url or os.environ.get("SQS_QUEUE_URL"),
        context_table_name=context_table_name,  # you must create this table
        status_table_name=status_table_name,  # you must create this table
        coordination_store=coordination_store,
        runtime_options={
            "registry": agent_node_registry,
            "blueprints": blueprints,
            "dependencies": dependencies,
        },
        **options,
    )


def main() -> None:
    print("--- Starting Flowcraft Worker (AWS SQS/DynamoDB) ---")
    adapter = make_adapter()

    # 4. Start the worker: a thread long-polls SQS for jobs.
    adapter.start()
    print("Worker is running. Waiting for jobs...")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    adapter.stop()
    print("Worker stopped.")


if __name__ == "__main__":
    main()
