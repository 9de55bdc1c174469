"""Many nodes in flight per executor, with real worker processes on the local server.

Nodes that wait (an LLM call, an HTTP API) overlap: async ones as tasks on an executor's
event loop, blocking ones in its thread pool. Each execution writes its start and end to a
span log, from which the tests read how many nodes ran at once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import AwsFleet, executions, wait_until
from .workerapp import SPAN_LOG_ENV

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]


@pytest.fixture
def fleet(tmp_path: Path, local_aws: Any, aws_clients: Any, infra: Any) -> Iterator[AwsFleet]:
    fleet = AwsFleet(tmp_path, local_aws, aws_clients, infra)
    fleet.env[SPAN_LOG_ENV] = str(tmp_path / "spans.log")
    yield fleet
    for worker in fleet.workers:
        worker.cleanup()


def spans(fleet: AwsFleet) -> list[tuple[float, float]]:
    path = fleet.tmp / "spans.log"
    if not path.exists():
        return []
    return [(float(start), float(end)) for _, _, start, end in
            (line.split() for line in path.read_text().splitlines())]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def started(fleet: AwsFleet) -> int:
    return len(executions(fleet.tmp / "exec.log"))


def assert_all_completed(finals: dict[str, dict[str, Any]]) -> None:
    reasons = {item.get("reason") for item in finals.values() if item["status"] != "completed"}
    assert {item["status"] for item in finals.values()} == {"completed"}, reasons


def test_forty_one_second_async_nodes_overlap_and_all_finish_within_a_few_seconds(fleet: AwsFleet) -> None:
    # Given 40 runs of one node that awaits 1 s, and a worker with 2 executors
    run_ids = fleet.start("await-1s", 40)
    fleet.worker("--procs", "2")
    # When it drains them, Then every run completes
    assert_all_completed(fleet.wait_final(run_ids, 60))
    # And the nodes ran side by side: all 40 within a few seconds, not 20 s two at a time
    intervals = spans(fleet)
    assert len(intervals) == 40
    first_start, last_end = min(s for s, _ in intervals), max(e for _, e in intervals)
    assert last_end - first_start < 6, f"40 nodes took {last_end - first_start:.1f} s"
    assert most_at_once(intervals) >= 20


def test_blocking_nodes_overlap_up_to_the_thread_count_and_no_further(fleet: AwsFleet) -> None:
    # Given 24 runs of a node that blocks its thread for 1 s, and 2 executors of 4 threads
    run_ids = fleet.start("block-1s", 24)
    fleet.worker("--procs", "2", "--threads", "4")
    # When it drains them, Then every run completes
    assert_all_completed(fleet.wait_final(run_ids, 60))
    # And at most 2 x 4 of them ran at once, but well more than one per executor
    intervals = spans(fleet)
    assert len(intervals) == 24
    assert 4 < most_at_once(intervals) <= 8
    first_start, last_end = min(s for s, _ in intervals), max(e for _, e in intervals)
    assert last_end - first_start < 9, f"24 nodes took {last_end - first_start:.1f} s (12 s one per executor)"


def test_a_short_run_is_not_held_back_by_a_long_node_in_the_same_executor(fleet: AwsFleet) -> None:
    # Given one executor running a 7 s node
    (long_run,) = fleet.start("long", 1)
    fleet.worker("--procs", "1")
    wait_until(lambda: started(fleet) >= 1, 30, "the long node to start")
    # When a short run (four quick nodes) arrives
    submitted = time.monotonic()
    (short_run,) = fleet.start("chain", 1)
    # Then it completes long before the long node ends
    finals = fleet.wait_final([short_run], 30)
    assert_all_completed(finals)
    assert time.monotonic() - submitted < 4
    assert not fleet.final([long_run]), "the long node should still be running"


def test_a_node_ignoring_its_timeout_fails_alone_while_the_other_forty_nine_commit(fleet: AwsFleet) -> None:
    # Given 49 runs of a 1 s async node and one of a sync node that ignores its 500 ms timeout
    quick = fleet.start("await-1s", 49)
    (stubborn,) = fleet.start("stubborn", 1)
    worker = fleet.worker("--procs", "1")
    # When one executor runs them all at once
    finals = fleet.wait_final([*quick, stubborn], 60)
    # Then the stubborn node's attempt fails at its timeout, and only its run fails
    assert finals[stubborn]["status"] == "failed"
    assert "timed out after 500 ms" in finals[stubborn]["reason"]
    assert_all_completed({run_id: finals[run_id] for run_id in quick})
    # And the executor, whose thread cannot be stopped, is replaced once the others finished
    wait_until(lambda: "recycling: a sync node ignored its timeout" in worker.log(), 30,
               "the executor to recycle")


def test_an_executor_killed_holding_a_hundred_nodes_loses_none_and_commits_none_twice(fleet: AwsFleet) -> None:
    # Given one executor with 100 nodes of 4 s in flight
    run_ids = fleet.start("await-4s", 100)
    fleet.worker("--procs", "1", "--concurrency", "200")
    wait_until(lambda: started(fleet) >= 100, 60, "100 nodes in flight")
    # When it is killed with SIGKILL
    (executor_pid,) = {pid for _, _, pid in executions(fleet.tmp / "exec.log")}
    killed_at = time.time()
    os.kill(executor_pid, signal.SIGKILL)
    # Then every run still completes, each node committed once
    assert_all_completed(fleet.wait_final(run_ids, 90))
    for state in fleet.store.load_runs(run_ids).values():
        assert state is not None and list(state.meta.results) == ["ask"]
    # And each of the 100 ran again soon: within the visibility timeout (3 s), plus a receive
    reruns = [start for start, _ in spans(fleet) if start > killed_at]
    assert len(reruns) == 100
    assert max(reruns) - killed_at < 3 + 4


def test_sigterm_with_two_hundred_in_flight_finishes_them_within_the_grace_time(fleet: AwsFleet) -> None:
    # Given 200 nodes of 4 s in flight across two executors
    run_ids = fleet.start("await-4s", 200)
    worker = fleet.worker("--procs", "2", "--graceful-timeout", "8")
    wait_until(lambda: started(fleet) >= 200, 60, "200 nodes in flight")
    # When the worker gets SIGTERM
    stopped_at = time.monotonic()
    worker.signal(signal.SIGTERM)
    # Then it exits cleanly within the grace time plus a second
    assert worker.wait(10) == 0, worker.log()[-2000:]
    assert time.monotonic() - stopped_at < 8 + 1
    # And nothing was lost: every in-flight node finished and committed
    assert_all_completed(fleet.wait_final(run_ids, 10))
    assert started(fleet) == 200
