"""The supervised worker against the local AWS-compatible server: real SQS and DynamoDB
semantics (visibility, redelivery), real processes and signals."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import AwsFleet as Fleet
from .helpers import executions, wait_until
from .workerapp import CHAIN_LENGTH

pytestmark = pytest.mark.process


@pytest.fixture
def fleet(tmp_path: Path, local_aws: Any, aws_clients: Any, infra: Any) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, local_aws, aws_clients, infra)
    yield fleet
    for worker in fleet.workers:
        worker.cleanup()


def test_executors_drain_thirty_chain_runs_through_sqs_and_every_run_completes(fleet: Fleet) -> None:
    # Given 30 chain runs started the way the client starts them, and a worker with 2 executors
    run_ids = fleet.start("chain", 30)
    worker = fleet.worker("--procs", "2")
    # When it drains the queue, Then every run completes with the chain's output
    finals = fleet.wait_final(run_ids, 60)
    assert {item["status"] for item in finals.values()} == {"completed"}
    assert all(item["result"]["context"][f"_outputs.n{CHAIN_LENGTH - 1}"] == CHAIN_LENGTH
               for item in finals.values())
    # And each node ran exactly once
    assert len(fleet.ran()) == 30 * CHAIN_LENGTH and set(fleet.ran().values()) == {1}
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_sigterm_mid_load_loses_nothing_and_a_restart_finishes_every_run_once(fleet: Fleet) -> None:
    # Given a worker busy with 12 chains of 0.2 s nodes
    run_ids = fleet.start("slow-chain", 12)
    first = fleet.worker("--procs", "2", "--graceful-timeout", "5")
    wait_until(lambda: sum(fleet.ran().values()) >= 6, 60, "some nodes to run")
    # When it gets SIGTERM mid-load
    stopped_at = time.monotonic()
    first.signal(signal.SIGTERM)
    # Then it exits cleanly within the graceful timeout + 1 s
    assert first.wait(6) == 0, first.log()
    assert time.monotonic() - stopped_at < 6
    assert not fleet.final(run_ids), "the load should outlast the first worker"
    # And after a restart every run completes, each node having run exactly once
    fleet.worker("--procs", "2")
    finals = fleet.wait_final(run_ids, 90)
    assert {item["status"] for item in finals.values()} == {"completed"}
    ran = fleet.ran()
    assert len(ran) == 12 * CHAIN_LENGTH and set(ran.values()) == {1}, ran
    # And the store holds each node's result once, with the chain's output
    for state in fleet.store.load_runs(run_ids).values():
        assert state is not None and sorted(state.meta.results) == [f"n{i}" for i in range(CHAIN_LENGTH)]
        assert state.context[f"_outputs.n{CHAIN_LENGTH - 1}"] == CHAIN_LENGTH


def test_a_killed_executor_is_replaced_and_its_message_is_redelivered(fleet: Fleet) -> None:
    # Given a run whose first node takes 1.5 s
    (run_id,) = fleet.start("pause", 1)
    worker = fleet.worker("--procs", "1")
    first = wait_until(lambda: executions(fleet.tmp / "exec.log"), 30, "the node to start")
    # When its executor is SIGKILLed mid-node
    os.kill(first[0][2], signal.SIGKILL)
    # Then a new executor replaces it, SQS redelivers the message, and the run completes
    finals = fleet.wait_final([run_id], 30)
    assert finals[run_id]["status"] == "completed"
    pause_pids = [pid for _, node, pid in executions(fleet.tmp / "exec.log") if node == "pause"]
    assert len(pause_pids) == 2 and pause_pids[0] != pause_pids[1]
    assert "executor[0] was killed (SIGKILL)" in worker.log()


def test_a_node_running_three_visibility_timeouts_runs_once_with_two_supervisors(fleet: Fleet) -> None:
    # Given two workers on the same queue, with a 2 s visibility timeout
    workers = [fleet.worker("--procs", "1", "--visibility-timeout", "2") for _ in range(2)]
    for worker in workers:
        worker.wait_ready(1)
    # When a node runs 7 s (3.5x the visibility timeout)
    (run_id,) = fleet.start("long", 1)
    finals = fleet.wait_final([run_id], 40)
    # Then its lease kept the message hidden: it ran exactly once, and the run completed
    assert finals[run_id]["status"] == "completed"
    assert fleet.ran() == Counter({(run_id, "long"): 1})


def test_sigterm_with_a_node_longer_than_the_grace_time_hands_its_message_back_and_exits_non_zero(
        fleet: Fleet) -> None:
    # Given a worker whose messages stay hidden 30 s, running a 7 s node
    (run_id,) = fleet.start("long", 1)
    first = fleet.worker("--procs", "1", "--graceful-timeout", "3", "--visibility-timeout", "30")
    wait_until(lambda: executions(fleet.tmp / "exec.log"), 30, "the long node to start")
    # When it gets SIGTERM, with a grace time shorter than the node
    stopped_at = time.monotonic()
    first.signal(signal.SIGTERM)
    # Then it kills the executor at the grace time, says so, and exits non-zero
    assert first.wait(6) != 0
    assert time.monotonic() - stopped_at < 3 + 1
    assert "still runs nodes at the graceful timeout" in first.log()
    # And the message was handed back at once: another worker runs it long before 30 s
    fleet.worker("--procs", "1", "--visibility-timeout", "30")
    finals = fleet.wait_final([run_id], 20)
    assert finals[run_id]["status"] == "completed"
    assert len(executions(fleet.tmp / "exec.log")) == 2
