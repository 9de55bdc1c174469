"""Real worker processes behind a FaultProxy, on a local AWS-compatible server, and the
verdict on their runs: what the reliability tests and `benchmarks/chaos.py` drive.

    fleet = Fleet(tmp_path, infra, local_aws.env())          # proxies start here
    worker = fleet.worker("--procs", "2")                     # python -m flowcraft_sqs worker ...
    run_ids = fleet.start("diamond", 50)                      # through the proxies, like a client
    fleet.proxy.throttle(0.2)
    fleet.wait_final(run_ids, 60)
    assert fleet.verdict(run_ids).ok
    fleet.close()                                             # kills what is left, stops proxies

Workers and the fleet's own client reach SQS and DynamoDB only through the proxies (so every
fault applies to both); the verdict reads the tables directly. Every wait polls a condition
against a deadline and fails saying what it waited for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import psutil

from . import chaosapp
from .faults import FaultProxy

APP: Final = "flowcraft_sqs.testing.chaosapp"
FINAL_STATUSES: Final = frozenset({"completed", "failed", "cancelled"})
#: Between two reads of the statuses of runs still running.
POLL_INTERVAL_S: Final = 0.25
#: Runs that did not move this long (s), with nothing queued or in flight, never will: the
#: longest wait for a redelivery here is one visibility timeout plus lease extensions.
STALL_S: Final = 20.0
ROOT: Final = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class WorkerProcess:
    """One `python -m flowcraft_sqs worker` (a supervisor and its children), in its own session."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in cleanup()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flowcraft_sqs", "worker", *args],
            cwd=ROOT, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup reaches every child
        )
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def child_pids(self, role: str) -> list[int]:
        """Pids of children whose process name (`flowcraft executor[0]`...) names `role`."""
        pids = []
        for child in self.children():
            with contextlib.suppress(psutil.Error):
                if role in " ".join(child.cmdline()) or role in child.name():
                    pids.append(child.pid)
        return pids

    def wait_ready(self, executors: int, timeout: float = 30.0) -> None:
        wait_until(lambda: self.log().count("executor ready") >= executors or not self.alive(),
                   timeout, f"{executors} executors to be ready")
        if not self.alive():
            raise AssertionError(f"worker exited early:\n{self.log()[-4000:]}")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout:.1f} s:\n{self.log()[-4000:]}") from None

    def cleanup(self) -> None:
        """SIGKILL whatever is left of this worker's process group (only ours)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(10)
        for child in self.children():  # a child that left the group (it should not)
            with contextlib.suppress(psutil.Error):
                child.kill()
        self._log.close()


class Fleet:
    """Workers, a client and FaultProxies on one queue + tables (an `infra.Infrastructure`).

    `env` is the environment that points boto3 at the local servers (`LocalAws.env()`):
    its AWS_ENDPOINT_URL_SQS / _DYNAMODB are the proxies' upstreams.
    """

    def __init__(self, workdir: Path, infra: Any, env: Mapping[str, str], *, seed: int | None = None,
                 record: Callable[[str], bool] | None = None) -> None:
        import boto3

        from ..aws import client_config
        from ..client import FlowcraftClient
        from ..stores.dynamodb import DynamoRunStore, DynamoStatusTable

        self.workdir = workdir
        self.infra = infra
        self.exec_log = workdir / "exec.log"
        sqs_up, ddb_up = env["AWS_ENDPOINT_URL_SQS"], env["AWS_ENDPOINT_URL_DYNAMODB"]
        self.proxy = FaultProxy(sqs_up, seed=seed, record=record).start()
        self.ddb_proxy = self.proxy if ddb_up == sqs_up else FaultProxy(ddb_up, seed=seed, record=record).start()
        self.env = {**os.environ, **env, "AWS_ENDPOINT_URL_SQS": self.proxy.url,
                    "AWS_ENDPOINT_URL_DYNAMODB": self.ddb_proxy.url, chaosapp.EXEC_LOG_ENV: str(self.exec_log)}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        session = boto3.session.Session(aws_access_key_id=self.env.get("AWS_ACCESS_KEY_ID"),
                                        aws_secret_access_key=self.env.get("AWS_SECRET_ACCESS_KEY"),
                                        region_name=self.env.get("AWS_REGION", "us-east-1"))
        config = client_config()
        self.sqs = session.client("sqs", endpoint_url=self.proxy.url, config=config)
        self.dynamodb = session.client("dynamodb", endpoint_url=self.ddb_proxy.url, config=config)
        self.direct_sqs = session.client("sqs", endpoint_url=sqs_up, config=config)
        direct_ddb = session.client("dynamodb", endpoint_url=ddb_up, config=config)
        self.client = FlowcraftClient(self.sqs, self.dynamodb, infra.queue_url, infra.context_table,
                                      infra.status_table, blueprints=chaosapp.blueprints)
        self.store = DynamoRunStore(direct_ddb, infra.context_table)
        self.statuses = DynamoStatusTable(direct_ddb, infra.status_table)
        self.workers: list[WorkerProcess] = []

    @property
    def proxies(self) -> list[FaultProxy]:
        return list(dict.fromkeys([self.proxy, self.ddb_proxy]))

    # --- faults on every proxy -------------------------------------------------------------

    def duplicate_sends(self, fraction: float = 1.0) -> None:
        self.proxy.duplicate_sends(fraction)

    def throttle(self, fraction: float) -> None:
        for proxy in self.proxies:
            proxy.throttle(fraction)

    def down(self, seconds: float | None = None, mode: str = "refuse") -> None:
        for proxy in self.proxies:
            proxy.down(seconds, mode)

    def up(self) -> None:
        for proxy in self.proxies:
            proxy.up()

    def clear_faults(self) -> None:
        for proxy in self.proxies:
            proxy.clear()

    # --- workers and runs --------------------------------------------------------------------

    def worker_args(self, *args: str) -> list[str]:
        return ["--app", APP, "--queue-url", self.infra.queue_url, "--context-table", self.infra.context_table,
                "--status-table", self.infra.status_table, *args]

    def worker(self, *args: str, env: Mapping[str, str] | None = None) -> WorkerProcess:
        """Start a worker with the fleet's queue and tables; `args` add or override flags."""
        log_path = self.workdir / f"worker{len(self.workers)}.log"
        worker = WorkerProcess(self.worker_args(*args), {**self.env, **(env or {})}, log_path)
        self.workers.append(worker)
        return worker

    def start(self, blueprint: str, count: int, first_x: int = 0) -> list[str]:
        """Start `count` runs through the proxies; diamond runs get `x` = first_x, first_x + 1, ..."""
        return [self.client.start_run(blueprint, {"x": first_x + i}) for i in range(count)]

    def status_items(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        return {run_id: self.statuses.get(run_id) for run_id in run_ids}

    def unfinished(self, run_ids: Sequence[str]) -> list[str]:
        items = self.status_items(run_ids)
        return [r for r, item in items.items() if not item or item.get("status") not in FINAL_STATUSES]

    def wait_final(self, run_ids: Sequence[str], timeout: float,
                   stall_s: float = STALL_S) -> dict[str, dict[str, Any] | None]:
        """Wait until every run has a final status; returns the status items.

        Fails early when runs are stuck: none ended for `stall_s` while the queue held
        nothing, visible or in flight (so nothing can ever move them again).
        """
        pending = list(run_ids)
        deadline = time.monotonic() + timeout
        progress_at = time.monotonic()
        while pending:
            still = self.unfinished(pending)
            if len(still) < len(pending):
                progress_at = time.monotonic()
            pending = still
            if not pending:
                break
            if time.monotonic() - progress_at > stall_s and self.queue_counts() == (0, 0):
                raise AssertionError(f"{len(pending)} of {len(run_ids)} runs stuck: none ended for "
                                     f"{stall_s:.0f} s and the queue is empty, e.g. {pending[:3]}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s: {len(pending)} of {len(run_ids)} "
                                     f"runs not final, e.g. {pending[:3]}")
            time.sleep(POLL_INTERVAL_S)
        return self.status_items(run_ids)

    def executions(self) -> list[chaosapp.Execution]:
        return chaosapp.read_executions(self.exec_log)

    def verdict(self, run_ids: Sequence[str]) -> chaosapp.Verdict:
        """Judge diamond runs from the tables (read directly, not through the proxies)."""
        states = self.store.load_runs(list(run_ids))
        contexts = {r: (dict(s.context) if s is not None else None) for r, s in states.items()}
        return chaosapp.judge(run_ids, contexts, self.status_items(run_ids), self.executions())

    def queue_counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the job queue, or of `url` (the DLQ)."""
        attributes = self.direct_sqs.get_queue_attributes(
            QueueUrl=url or self.infra.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def close(self) -> None:
        for worker in self.workers:
            worker.cleanup()
        for proxy in self.proxies:
            proxy.stop()
