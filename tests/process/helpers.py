"""Running real `flowcraft-worker` processes in tests: start, signal, wait with deadlines.

Every wait polls a condition against a deadline and fails with what it was waiting for;
nothing sleeps for a fixed time hoping something happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import psutil

from flowcraft_sqs.testing.fleet import (
    WorkerProcess,
    wait_until,  # noqa: F401  (used by the process tests)
)

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.process.workerapp"


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
