"""The supervised worker with `--backend memory`: real processes and signals, no AWS server.

Each receiver holds its own in-memory queue and tables, seeded by tests.process.workerapp:seed,
which writes a report file once every run has a final status.
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from flowcraft_sqs.errors import EXIT_APP_LOAD, EXIT_CONFIG

from .helpers import Worker, executions, read_report, wait_until
from .workerapp import CHAIN_LENGTH, EXEC_LOG_ENV, REPORT_ENV, RUNS_ENV

pytestmark = pytest.mark.process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    workers: list[Worker] = []

    def start_worker(runs: int, blueprint: str = "chain", *args: str) -> Worker:
        env = {RUNS_ENV: str(runs), REPORT_ENV: str(tmp_path / "report.json"),
               EXEC_LOG_ENV: str(tmp_path / "exec.log"), "FLOWCRAFT_TEST_BLUEPRINT": blueprint}
        worker = Worker(tmp_path, ["--backend", "memory", "--memory-seed",
                                   "tests.process.workerapp:seed", *args], env, name=f"w{len(workers)}")
        workers.append(worker)
        return worker

    yield start_worker
    for worker in workers:
        worker.cleanup()


def test_two_executors_drain_thirty_chain_runs_and_every_run_completes(start, tmp_path: Path) -> None:
    # Given a worker with 2 executors and 30 seeded chain runs, serving metrics
    port = free_port()
    worker = start(30, "chain", "--procs", "2", "--metrics-port", str(port))
    # When it drains them
    report = wait_until(lambda: read_report(tmp_path / "report.json"), 30, "all runs to end")
    # Then every run completed with its whole chain, each node executed once, status written once
    assert report["statuses"] == ["completed"] * 30
    assert report["publish_writes"] == 30
    assert all(out[f"_outputs.n{CHAIN_LENGTH - 1}"] == CHAIN_LENGTH for out in report["outputs"])
    ran = Counter((run, node) for run, node, _ in executions(tmp_path / "exec.log"))
    assert len(ran) == 30 * CHAIN_LENGTH and set(ran.values()) == {1}
    # And the metrics count every committed node and finished run
    def scraped() -> str | None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return text if f"flowcraft_nodes_committed_total {30 * CHAIN_LENGTH}" in text else None
    text = wait_until(scraped, 10, "the metrics to count every node", interval=0.2)
    assert "flowcraft_runs_finished_total 30" in text and "flowcraft_executors 2" in text
    # And SIGTERM stops it cleanly
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert "stopped (exit code 0)" in worker.log()


def test_a_sync_node_that_never_returns_fails_its_attempt_at_its_timeout(start, tmp_path: Path) -> None:
    # Given a node `while True: pass` with a 300 ms timeout (it runs in a thread of its executor)
    start(1, "spin", "--procs", "1")
    # When it runs, Then the attempt fails at the timeout and the run fails with that reason
    report = wait_until(lambda: read_report(tmp_path / "report.json"), 30, "the run to fail")
    assert report["statuses"] == ["failed"]
    assert report["reasons"] == ["Node 'spin' failed: timed out after 300 ms (attempt 1 of 1)"]


def test_an_async_node_that_blocks_its_loop_is_killed_at_its_timeout_and_retried(start, tmp_path: Path) -> None:
    # Given an async node that never yields (only the supervisor can stop it), 2 attempts
    worker = start(1, "spin-async", "--procs", "1")
    # When it runs
    report = wait_until(lambda: read_report(tmp_path / "report.json"), 30, "the run to fail")
    # Then each attempt was stopped by killing its executor, and the last failure is the reason
    assert report["statuses"] == ["failed"]
    assert report["reasons"] == ["Node 'spin' failed: timed out after 300 ms (attempt 2 of 2)"]
    pids = [pid for _, _, pid in executions(tmp_path / "exec.log")]
    assert len(pids) == 2 and len(set(pids)) == 2, "each attempt ran in a fresh executor"
    assert worker.log().count("killed for a node timeout") == 2
    # And the replacement executor is up again
    wait_until(lambda: worker.log().count("executor ready") >= 3, 20, "a third executor")


def test_killing_the_supervisor_leaves_no_orphans(start, tmp_path: Path) -> None:
    # Given a running worker with 2 executors and 1 receiver
    worker = start(1, "chain", "--procs", "2")
    worker.wait_ready(2)
    children = wait_until(lambda: len(worker.children()) >= 3 and worker.children(), 10, "children")
    # When the supervisor is SIGKILLed
    worker.signal(signal.SIGKILL)
    # Then every child is gone within 5 s
    def all_gone() -> bool:
        return not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    wait_until(all_gone, 5, "every child to exit")


def test_an_app_that_cannot_be_loaded_halts_the_worker_with_its_exit_code(start, tmp_path: Path) -> None:
    # Given --app naming a module that does not exist (the last --app wins)
    bad = Worker(tmp_path, ["--backend", "memory", "--app", "no_such_module_here"], name="bad2")
    try:
        # Then the supervisor halts (no restart loop) with EXIT_APP_LOAD, naming the module
        assert bad.wait(30) == EXIT_APP_LOAD
        assert "cannot import module 'no_such_module_here'" in bad.log()
    finally:
        bad.cleanup()


def test_invalid_settings_exit_with_ex_config_and_say_how_to_fix(tmp_path: Path) -> None:
    worker = Worker(tmp_path, ["--backend", "memory", "--visibility-timeout", "1"], name="cfg")
    try:
        assert worker.wait(20) == EXIT_CONFIG
        assert "raising --visibility-timeout or lowering --lease-fraction" in worker.log()
    finally:
        worker.cleanup()


def test_sigterm_under_load_exits_within_the_graceful_timeout(start, tmp_path: Path) -> None:
    # Given a worker busy with slow chains (0.2 s per node)
    worker = start(20, "slow-chain", "--procs", "2", "--graceful-timeout", "5")
    wait_until(lambda: len(executions(tmp_path / "exec.log")) >= 4, 20, "some nodes to run")
    # When it gets SIGTERM
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    # Then it exits cleanly well within the graceful timeout (+1 s)
    assert worker.wait(6) == 0
    assert time.monotonic() - started < 6
    # And no node ran twice
    ran = Counter((run, node) for run, node, _ in executions(tmp_path / "exec.log"))
    assert set(ran.values()) == {1}


def test_a_second_sigint_stops_at_once_without_waiting_for_running_nodes(start, tmp_path: Path) -> None:
    # Given a worker running a node that takes 7 s
    worker = start(1, "long", "--procs", "1", "--graceful-timeout", "30")
    wait_until(lambda: executions(tmp_path / "exec.log"), 20, "the long node to start")
    # When Ctrl-C is pressed twice
    started = time.monotonic()
    worker.signal(signal.SIGINT)
    wait_until(lambda: "press Ctrl-C again" in worker.log(), 5, "the first SIGINT to be handled")
    worker.signal(signal.SIGINT)
    # Then it stops without waiting for the node (the executor is killed; SQS would redeliver)
    assert worker.wait(6) == 0
    assert time.monotonic() - started < 6
    assert "stopping fast" in worker.log()
