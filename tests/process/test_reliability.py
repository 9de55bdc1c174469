"""Contract §4 under faults, with real worker processes, real signals and the local server
behind a FaultProxy: duplicated deliveries, throttling, an outage, a killed supervisor.

Every run is a diamond (src -> b0, b1, b2 -> join 'all') whose nodes log each execution
with a fresh token; `chaosapp.judge` turns the tables and that log into: runs lost, nodes
committed twice (two different tokens of one node seen as committed) and duplicate
executions. The long, randomised versions of these scenarios are `benchmarks/chaos.py`.
"""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from flowcraft_sqs.testing.fleet import Fleet, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

RUNS = 30
#: Every throttled request costs botocore's backoff (up to 1 s, then 2 s, ...), which stalls
#: the receiver's commit thread: keep the throttled load small.
THROTTLED_RUNS = 12
#: Short SQS timings so that redelivery after a fault happens within a test.
FAST = ("--procs", "2", "--visibility-timeout", "5", "--wait-time", "1")
RECORDED = frozenset({"DynamoDB_20120810.UpdateItem", "AmazonSQS.ReceiveMessage"})
FINAL = frozenset({"completed", "failed", "cancelled"})


@pytest.fixture
def fleet(tmp_path: Path, local_aws: Any, infra: Any) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, infra, local_aws.env(), seed=1234, record=RECORDED.__contains__)
    yield fleet
    fleet.close()


def final_status_writes(fleet: Fleet) -> Counter[str]:
    """Per run: UpdateItems of a final status on the status table that DynamoDB accepted."""
    accepted: Counter[str] = Counter()
    for exchange in fleet.ddb_proxy.exchanges():
        if exchange.target != "DynamoDB_20120810.UpdateItem" or exchange.status != 200:
            continue
        request = exchange.request_json()
        status = request.get("ExpressionAttributeValues", {}).get(":status", {}).get("S")
        if request.get("TableName") == fleet.infra.status_table and status in FINAL:
            accepted[request["Key"]["runId"]["S"]] += 1
    return accepted


def copies_received(fleet: Fleet) -> dict[bytes, set[str]]:
    """Job body -> the ids of the distinct SQS messages that delivered it."""
    copies: dict[bytes, set[str]] = defaultdict(set)
    for exchange in fleet.proxy.exchanges():
        if exchange.target == "AmazonSQS.ReceiveMessage" and exchange.status == 200:
            for message in orjson.loads(exchange.response).get("Messages", []):
                copies[message["Body"].encode()].add(message["MessageId"])
    return copies


def test_every_message_delivered_twice_still_runs_and_commits_each_node_once(fleet: Fleet) -> None:
    # Given a proxy that forwards every SendMessage(Batch) twice, the client's and the worker's
    fleet.duplicate_sends()
    run_ids = fleet.start("diamond", RUNS)
    # When a worker drains the queue
    worker = fleet.worker(*FAST)
    fleet.wait_final(run_ids, 60)
    # Then every job that went through SQS was delivered as two distinct messages
    copies = copies_received(fleet)
    assert copies and all(len(ids) >= 2 for ids in copies.values()), copies
    # And every run completed with the right output; no node ran twice or committed twice
    verdict = fleet.verdict(run_ids)
    assert verdict.ok and verdict.duplicate_executions == 0, (verdict.summary(), verdict.problems[:5])
    # And each join fired once and its arrivals were cleared
    joins = Counter(e.run_id for e in fleet.executions() if e.node_id == "join")
    assert joins == Counter(dict.fromkeys(run_ids, 1))
    for state in fleet.store.load_runs(run_ids).values():
        assert state is not None and "join" in state.meta.results and not state.meta.arrivals
    # And each run's final status was written exactly once
    assert final_status_writes(fleet) == Counter(dict.fromkeys(run_ids, 1))
    # And the duplicates were deleted, not left for the DLQ
    wait_until(lambda: fleet.queue_counts() == (0, 0), 20, "the queue to drain", 0.25)
    assert fleet.queue_counts(fleet.infra.dlq_url) == (0, 0)
    assert worker.alive()


def test_with_a_fifth_of_requests_throttled_every_run_completes_once(fleet: Fleet) -> None:
    # Given runs in the queue, and 20% of SQS and DynamoDB requests answered with throttling errors
    run_ids = fleet.start("diamond", THROTTLED_RUNS)
    fleet.throttle(0.2)
    # When a worker drains the queue
    worker = fleet.worker(*FAST)
    fleet.wait_final(run_ids, 90)
    # Then the faults really happened, and the worker backed off and got through them
    assert fleet.proxy.faults()["throttled"] >= 5
    verdict = fleet.verdict(run_ids)
    assert verdict.ok, (verdict.summary(), verdict.problems[:5])
    assert worker.alive() and "CRITICAL" not in worker.log()


def test_endpoints_down_for_three_seconds_mid_load_lose_no_run(fleet: Fleet) -> None:
    # Given a worker half-way through 30 runs of 50 ms nodes
    run_ids = fleet.start("diamond-slow", RUNS)
    worker = fleet.worker(*FAST)
    wait_until(lambda: len(fleet.executions()) >= RUNS * 2, 60, "the load to be under way")
    # When SQS and DynamoDB refuse every connection for 3 s (in-flight requests are cut)
    fleet.down(3)
    wait_until(lambda: not fleet.proxy.is_down, 10, "the endpoints to come back")
    # Then the worker survives, and every run completes with no node committed twice
    fleet.wait_final(run_ids, 90)
    assert worker.alive(), worker.log()[-3000:]
    verdict = fleet.verdict(run_ids)
    assert verdict.ok, (verdict.summary(), verdict.problems[:5])
    assert fleet.proxy.faults()["cut"] > 0


def test_a_supervisor_killed_with_sigkill_leaves_no_orphans_and_a_new_worker_finishes_every_run(
    fleet: Fleet,
) -> None:
    # Given a worker busy with 30 runs of 50 ms nodes
    run_ids = fleet.start("diamond-slow", RUNS)
    first = fleet.worker(*FAST)
    first.wait_ready(2)
    wait_until(lambda: len(fleet.executions()) >= RUNS, 60, "the load to be under way")
    children = first.children()
    assert len(children) >= 3  # two executors and a receiver
    # When its supervisor is killed with SIGKILL
    first.signal(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    # Then no child outlives it by more than 5 s
    killed_at = time.monotonic()
    wait_until(lambda: not [c for c in children if _running(c)], 5, "every child of the killed supervisor to exit")
    assert time.monotonic() - killed_at <= 5
    # And a new worker completes every run, no node committed twice
    fleet.worker(*FAST)
    fleet.wait_final(run_ids, 90)
    verdict = fleet.verdict(run_ids)
    assert verdict.ok, (verdict.summary(), verdict.problems[:5])


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
