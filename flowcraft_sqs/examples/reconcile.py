"""The seed document's `reconcile.ts` in Python: resume runs whose workers died.

    SQS_QUEUE_URL=... AWS_REGION=... python -m flowcraft_sqs.examples.reconcile

Run it on a schedule (cron, a systemd timer, a scheduled Lambda). It scans the status table
for `running` runs not updated for `stalled_threshold_seconds` and re-enqueues their
outstanding jobs. Choose the threshold above your longest node.
"""

from __future__ import annotations

import os
from typing import Any

import boto3

from flowcraft_sqs import create_sqs_reconciler

from .worker import make_adapter


def make_reconciler(sqs_client: Any = None, dynamodb_client: Any = None,
                    queue_url: str | None = None, threshold_s: int = 300,
                    **table_names: str) -> Any:
    # The adapter and the DynamoDB client, initialized just like in the worker.
    region = os.environ.get("AWS_REGION") or "us-east-1"
    sqs_client = sqs_client or boto3.client("sqs", region_name=region)
    dynamodb_client = dynamodb_client or boto3.client("dynamodb", region_name=region)
    adapter = make_adapter(sqs_client, dynamodb_client, queue_url, **table_names)
    return create_sqs_reconciler(
        adapter=adapter,
        dynamodb_client=dynamodb_client,
        status_table_name=table_names.get("status_table_name", "flowcraft-statuses"),
        stalled_threshold_seconds=threshold_s,  # 5 minutes by default
    )


def run_reconciliation(reconciler: Any = None) -> Any:
    reconciler = reconciler or make_reconciler()
    print("Starting reconciliation cycle...")
    stats = reconciler.run()
    print(f"Reconciliation complete. Scanned: {stats.scanned_items}, "
          f"Stalled: {stats.stalled_runs}, Resumed: {stats.reconciled_runs}, "
          f"Failed: {stats.failed_runs}")
    return stats


if __name__ == "__main__":
    run_reconciliation()
