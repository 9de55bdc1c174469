"""The load-test harness end to end: a real `flowcraft-worker` on the local server, a tiny load
(5 runs of a 3-node chain), and a report with per-node AWS figures for every run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from flowcraft_sqs.loadtest import report
from flowcraft_sqs.loadtest.runner import (
    FleetTarget,
    LoadOptions,
    LoadTest,
    launch_worker,
    wait_worker_ready,
)
from flowcraft_sqs.loadtest.workloads import parse_workload

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def test_tiny_load_reports_requests_per_node(local_aws: Any, infra: Any, tmp_path: Path) -> None:
    workload = parse_workload("lt-chain-3")
    env = {**os.environ, **local_aws.env()}
    work_dir = Path(tempfile.mkdtemp(prefix="lt-smoke-", dir=tmp_path))
    worker = launch_worker(infra, workload.id, env, work_dir, procs=1, receivers=1, log_level="INFO")
    try:
        wait_worker_ready(worker, receivers=1, backend_memory=False, timeout_s=60)
        fleet = FleetTarget(infra.queue_url, infra.context_table, infra.status_table, local_aws.region,
                            local_aws.sqs_endpoint, local_aws.dynamodb_endpoint,
                            [worker.metrics_url], str(work_dir / "meter"))
        options = LoadOptions(runs=5, concurrency=2, warmup_runs=1, run_timeout_s=60)
        old = {k: os.environ.get(k) for k in local_aws.env()}
        os.environ.update(local_aws.env())  # the harness's own clients need (dummy) credentials
        try:
            raw = LoadTest(workload, options, fleet=fleet, progress=False).run()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        worker.stop()
    assert worker.exit_code == 0, worker.log_tail()

    r = report.build_report(raw)
    assert r["throughput"]["statuses"] == {"completed": 5}
    assert r["throughput"]["node_executions"] == 15
    assert r["latency_ms"]["hop"]["n"] == 10
    assert r["latency_ms"]["run"]["p50"] > 0
    per_node = r["aws"]["per_node"]
    assert r["aws"]["node_executions"] == 15  # the worker's own committed count
    assert 0 < per_node["total"] < 10
    assert per_node["DynamoDB.UpdateItem"] > 0
    assert r["dynamodb_units"]["wru_per_node"] >= 1.0  # every commit writes at least 1 KB-unit
    assert r["cost"]["worker_usd_per_million_nodes"]["total"] > 0
    assert r["cost"]["start_run"]["requests"]["total"] == pytest.approx(3.0)  # state, status, jobs
    paths = report.write_outputs(r, raw, tmp_path / "smoke", plots=False)
    assert "## AWS requests per node execution (worker)" in paths[1].read_text()
