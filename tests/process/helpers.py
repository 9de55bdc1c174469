"""Running real `flowcraft-worker` processes in tests: start, signal, wait with deadlines.

Every wait polls a condition against a deadline and fails with what it was waiting for;
nothing sleeps for a fixed time hoping something happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psutil

from flowcraft_sqs import protocol
from flowcraft_sqs.app import load_app
from flowcraft_sqs.stores.dynamodb import DynamoRunStore, DynamoStatusTable
from flowcraft_sqs.testing.fleet import (
    WorkerProcess,
    wait_until,
)
from flowcraft_sqs.transport.sqs import SqsQueue

from .workerapp import EXEC_LOG_ENV, start_run

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.process.workerapp"
#: Short SQS timings so redelivery and lease extension happen within a test.
FAST_SQS = ["--visibility-timeout", "3", "--lease-fraction", "0.5", "--wait-time", "2"]


class Worker(WorkerProcess):
    """`flowcraft_sqs.testing.fleet.WorkerProcess` with this suite's app, a log per name in
    the test's tmp dir, and a cleanup that lets the worker unlink its shared memory first."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str] | None = None, name: str = "worker"):
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("PYTHONPATH", str(ROOT))
        super().__init__(["--app", APP, *args], full_env, tmp / f"{name}.log")

    def exited(self) -> bool:
        return not self.alive()

    def cleanup(self) -> None:
        """Stop this worker: SIGTERM first, so it unlinks its shared memory; then SIGKILL
        whatever is left of its process group (only ours)."""
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        # multiprocessing's resource tracker (same group) unlinks what a killed supervisor
        # left behind once every child is gone: give it a moment before the group is killed.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not _group_alive(self.pid), 5, "the process group to exit", 0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)
        self._log.close()


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


def read_report(path: Path) -> dict[str, Any] | None:
    return orjson.loads(path.read_bytes()) if path.exists() else None


def executions(log_path: Path) -> list[tuple[str, str, int]]:
    """(run id, node id, pid) per node execution recorded by tests.process.workerapp."""
    if not log_path.exists():
        return []
    lines = log_path.read_text().splitlines()
    return [(run, node, int(pid)) for run, node, pid in (line.split() for line in lines)]


class AwsFleet:
    """Workers on one fresh queue + tables, and the client-side view of their runs."""

    def __init__(self, tmp: Path, local_aws: Any, clients: Any, infra: Any) -> None:
        self.tmp = tmp
        self.infra = infra
        self.env = {**local_aws.env(), EXEC_LOG_ENV: str(tmp / "exec.log")}
        self.app = load_app(APP)
        self.store = DynamoRunStore(clients.dynamodb, infra.context_table)
        self.statuses = DynamoStatusTable(clients.dynamodb, infra.status_table)
        self.queue = SqsQueue(clients.sqs, infra.queue_url)
        self.workers: list[Worker] = []

    def worker(self, *args: str) -> Worker:
        tables = ["--queue-url", self.infra.queue_url, "--context-table", self.infra.context_table,
                  "--status-table", self.infra.status_table]
        worker = Worker(self.tmp, [*tables, *FAST_SQS, *args], self.env, name=f"w{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def start(self, blueprint: str, count: int) -> list[str]:
        bp = self.app.blueprints[blueprint]
        return [start_run(bp, self.store, self.statuses, self.queue) for _ in range(count)]

    def final(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        items = {run_id: self.statuses.get(run_id) or {} for run_id in run_ids}
        return items if all(i.get("status") in protocol.FINAL_STATUSES for i in items.values()) else {}

    def wait_final(self, run_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        return wait_until(lambda: self.final(run_ids), timeout, f"{len(run_ids)} runs to end", 0.2)

    def ran(self) -> Counter[tuple[str, str]]:
        return Counter((run, node) for run, node, _ in executions(self.tmp / "exec.log"))
