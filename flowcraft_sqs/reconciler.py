"""The reconciler: finds runs whose workers died and puts their outstanding jobs back.

Run it on a schedule (cron, a scheduled Lambda). `run()` scans the status table for
`running` items whose `lastUpdated` is older than the threshold — every page of the Scan
(FIX: TS reads one) — and for each stalled run, from its state in the contexts table:

- the run is still going: re-enqueue the jobs its state lists as outstanding (queued or
  running: never a committed node; a run seeded by another client and never picked up:
  its start nodes) and touch `lastUpdated`;
- the state says the run has ended but the status item still says `running` (a worker
  died between its commit and its publish): publish the final status;
- a finished run is never touched (the Scan only matches `running`).

A node that is still running when the threshold passes gets a second job; the protocol
commits one of the two executions. Choose the threshold above the longest node.
`lastUpdated` is compared here, not in the Scan, because it is epoch seconds (N) when we
or TS wrote it and an ISO string when the seed document's client did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from . import protocol
from .blueprint import Blueprint
from .engine import Effects, perform
from .messages import Job
from .protocol import FinalStatus, RunState
from .stores.dynamodb import parse_last_updated

log = logging.getLogger("flowcraft_sqs.reconciler")

DEFAULT_STALLED_THRESHOLD_S: Final = 300  # the seed document's 5 minutes


@dataclass
class ReconciliationStats:
    scanned_items: int = 0  # status items the Scan examined (every page)
    stalled_runs: int = 0  # running items older than the threshold
    reconciled_runs: int = 0  # stalled runs with at least one job re-enqueued
    failed_runs: int = 0  # stalled runs whose reconciliation raised
    repaired_runs: int = 0  # stalled runs whose final status was published late

    # The seed document's spelling.
    @property
    def scannedItems(self) -> int:  # noqa: N802
        return self.scanned_items

    @property
    def stalledRuns(self) -> int:  # noqa: N802
        return self.stalled_runs

    @property
    def reconciledRuns(self) -> int:  # noqa: N802
        return self.reconciled_runs

    @property
    def failedRuns(self) -> int:  # noqa: N802
        return self.failed_runs


class SqsReconciler:
    """Uses the adapter's store, queue and blueprints; scans with `dynamodb_client`."""

    def __init__(
        self,
        adapter: Any,
        dynamodb_client: Any,
        status_table_name: str,
        stalled_threshold_seconds: float = DEFAULT_STALLED_THRESHOLD_S,
        logger: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.adapter = adapter
        self.client = dynamodb_client
        self.status_table_name = status_table_name
        self.stalled_threshold_seconds = stalled_threshold_seconds
        self.log = logger or log
        self.clock = clock

    def run(self) -> ReconciliationStats:
        stats = ReconciliationStats()
        cutoff = self.clock() - self.stalled_threshold_seconds
        for run_id in self._stalled_run_ids(stats, cutoff):
            stats.stalled_runs += 1
            try:
                outcome = self.reconcile(run_id)
            except Exception:
                stats.failed_runs += 1
                self.log.exception("reconciling run %s failed", run_id)
                continue
            stats.reconciled_runs += outcome == "resumed"
            stats.repaired_runs += outcome == "repaired"
        return stats

    def _stalled_run_ids(self, stats: ReconciliationStats, cutoff: float) -> Iterator[str]:
        for item in self._running_items(stats):
            run_id = item.get("runId", {}).get("S")
            updated = parse_last_updated(item.get("lastUpdated"))
            # An item without a readable time cannot show it is alive: treat it as stalled.
            if run_id and (updated is None or updated < cutoff):
                yield run_id

    def _running_items(self, stats: ReconciliationStats) -> Iterator[Mapping[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.status_table_name,
            "FilterExpression": "#st = :running",
            "ProjectionExpression": "runId, #lu",
            "ExpressionAttributeNames": {"#st": "status", "#lu": "lastUpdated"},
            "ExpressionAttributeValues": {":running": {"S": protocol.RUNNING}},
        }
        while True:
            page = self.client.scan(**request)
            stats.scanned_items += int(page.get("ScannedCount", 0))
            yield from page.get("Items", [])
            last_key = page.get("LastEvaluatedKey")
            if not last_key:
                return
            request["ExclusiveStartKey"] = last_key

    def reconcile(self, run_id: str) -> str:
        """Resume or repair one run: 'resumed', 'repaired' or 'unchanged'."""
        state = self.adapter.store.load_runs([run_id]).get(run_id)
        if state is None:
            raise LookupError(f"Cannot reconcile runId '{run_id}': it has no state in the contexts table")
        if state.is_final:
            self._publish_final(state)
            return "repaired"
        bp = self._blueprint_of(state)
        if state.version == 0:
            state = protocol.adopt_seeded_run(bp, run_id, state.context, self.clock())
        nodes = [n for n in protocol.outstanding_jobs(state) if n not in state.meta.results]
        if nodes:
            self.adapter.queue.send_jobs([Job(run_id, bp.id, n) for n in nodes])
            self.log.warning("run %s stalled: re-enqueued %s", run_id, nodes)
        self.adapter.statuses.touch(run_id, self.clock())
        return "resumed" if nodes else "unchanged"

    def _publish_final(self, state: RunState) -> None:
        self.log.warning("run %s ended %s but its status said running: publishing it", state.run_id, state.status)
        effects = Effects(publishes=[(state, FinalStatus(state.status, state.meta.reason))])
        perform(effects, self.adapter.queue, self.adapter.statuses, self.clock)

    def _blueprint_of(self, state: RunState) -> Blueprint:
        blueprints: Mapping[str, Blueprint] = self.adapter.blueprints
        bp_id = state.meta.blueprint_id
        if not bp_id and len(blueprints) == 1:
            # A seeded run never picked up: only its queued jobs named the blueprint. With one
            # blueprint registered there is no doubt which it is.
            bp_id = next(iter(blueprints))
        if not bp_id:
            raise LookupError(
                f"Cannot reconcile runId '{state.run_id}': blueprintId not found in its state "
                f"(a run seeded by another client that no worker has picked up yet)"
            )
        if bp_id not in blueprints:
            raise LookupError(f"Cannot reconcile runId '{state.run_id}': Blueprint with ID '{bp_id}' not found.")
        return blueprints[bp_id]


def create_sqs_reconciler(
    *,
    adapter: Any,
    dynamodb_client: Any,
    status_table_name: str,
    stalled_threshold_seconds: float = DEFAULT_STALLED_THRESHOLD_S,
    logger: Any = None,
) -> SqsReconciler:
    """The seed document's `createSqsReconciler`, in Python spelling."""
    return SqsReconciler(adapter, dynamodb_client, status_table_name, stalled_threshold_seconds, logger)
