"""I/O-bound load-test workloads, nodes in flight, backlog drains and worker limits. Pure, fast:
no processes, no AWS, no sleeping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from click.testing import CliRunner

from flowcraft_sqs.loadtest import procroles, report, workloads
from flowcraft_sqs.loadtest.cli import loadtest
from flowcraft_sqs.loadtest.runner import (
    LoadOptions,
    LoadTestError,
    PhaseResult,
    RunRecord,
    SelfContained,
    follow_backlog,
    node_limit_args,
    seed_backlog,
)

# --- workloads ---------------------------------------------------------------------------------


def test_io_workloads_are_one_node_runs() -> None:
    a = workloads.io_workload("async-wait", 1000)
    s = workloads.io_workload("sync-wait", 250)
    assert (a.id, a.nodes, a.hops) == ("lt-await-1000ms-single", 1, 0)
    assert s.id == "lt-long-250ms-single"
    assert workloads.parse_workload(a.id) == a
    assert workloads.blueprint(a)["nodes"][0] == {"id": "n0", "uses": "lt-await", "params": {"ms": 1000}}
    assert "lt-await-1000ms-single" in workloads.CATALOGUE
    with pytest.raises(ValueError):
        workloads.io_workload("cpu-wait", 10)
    with pytest.raises(ValueError):
        workloads.parse_workload("lt-await-5kb-single")


def test_await_node_is_async_and_records_its_times() -> None:
    class Ctx:
        params = {"ms": 0}

    assert asyncio.iscoroutinefunction(workloads.REGISTRY["lt-await"])
    out = asyncio.run(workloads.await_(Ctx()))["output"]
    assert out["e"] >= out["s"] > 0


# --- nodes in flight -----------------------------------------------------------------------------


def test_mean_in_flight_is_node_seconds_over_the_window() -> None:
    intervals = [(0.0, 1.0), (0.5, 1.5), (2.0, 3.0)]
    assert report.mean_in_flight(intervals, 0.0, 3.0) == pytest.approx(3.0 / 3.0)
    assert report.mean_in_flight(intervals, 0.5, 1.0) == pytest.approx(2.0)
    assert report.mean_in_flight(intervals, 1.0, 1.0) is None


def test_in_flight_at_counts_started_and_not_ended() -> None:
    starts, ends = [0.0, 0.5, 2.0], [1.0, 1.5, 3.0]
    assert [report.in_flight_at(starts, ends, t) for t in (0.25, 0.75, 1.0, 1.75, 2.5, 3.0)] == [1, 2, 1, 0, 1, 0]


def test_in_flight_of_a_steady_backlog_drain() -> None:
    # 100 nodes start every second for 10 s and each takes 1 s: 100 in flight once ramped up.
    intervals = [(i / 100, i / 100 + 1.0) for i in range(1000)]
    f = report.in_flight(intervals, points=12)
    assert f["n"] == 1000
    assert f["mean_steady"] == pytest.approx(100, rel=0.02)
    assert f["mean_span"] < f["mean_steady"]  # the ramp-up and the tail pull the span's mean down
    assert 100 <= f["peak"] <= 101
    assert len(f["series"]["t"]) == len(f["series"]["nodes"]) == 12
    assert f["series"]["t"][0] == 0.0 and f["series"]["nodes"][0] == 1
    assert f["series"]["nodes"][-1] == 0  # the last end: nothing runs any more


def test_in_flight_without_nodes() -> None:
    assert report.in_flight([])["mean_steady"] is None
    assert report._in_flight_markdown(report.in_flight([])) == []


def test_report_has_nodes_in_flight_from_the_runs() -> None:
    w = workloads.io_workload("async-wait", 1000)
    runs = [{"run_id": f"r{i}", "submitted": 0.0, "status": "completed", "finished": i / 50 + 1.01,
             "nodes": {"n0": [i / 50, i / 50 + 1.0]}} for i in range(1000)]
    runs.append({"run_id": "x", "submitted": 0.0, "status": "failed", "nodes": {"n0": [0.0, 9.0]}})
    raw = {"workload": {"shape": w.shape, "size": w.size, "kind": w.kind, "amount": w.amount},
           "runs": runs, "phase": {"backlog": True},
           "worker": {"peak_rss_by_role": {"executor": [90 << 20, 80 << 20]}}}
    r = report.build_report(raw)
    assert r["in_flight"]["n"] == 1000  # completed runs only
    assert r["in_flight"]["mean_steady"] == pytest.approx(50, rel=0.03)
    md = report.to_markdown(r)
    assert "## Nodes in flight" in md and "Over time (seconds from the first node start): 0s 1," in md
    assert "worker peak RSS per executor process | 90.0 MiB, 80.0 MiB" in md


# --- worker limits, roles ------------------------------------------------------------------------


def test_node_limits_pass_only_what_the_worker_knows() -> None:
    sc = SelfContained(node_concurrency=1000, threads=16)
    args, notes = node_limit_args(sc, known={"--concurrency", "--threads"})
    assert args == ["--concurrency", "1000", "--threads", "16"] and notes == []
    args, notes = node_limit_args(sc, known={"--procs"})
    assert args == [] and len(notes) == 2 and "--concurrency 1000 not passed" in notes[0]
    assert node_limit_args(SelfContained(), known=set()) == ([], [])


def test_peak_rss_by_role(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(procroles.PROC_DIR_ENV, str(tmp_path / "procs"))
    procroles.record()  # this process: MainProcess
    (tmp_path / "procs" / "11").write_text("flowcraft executor[0]")
    (tmp_path / "procs" / "12").write_text("flowcraft executor[1]")
    (tmp_path / "procs" / "13").write_text("flowcraft receiver[0]")
    names = procroles.read(tmp_path / "procs")
    assert len(names) == 4
    peaks = procroles.peak_rss_by_role({11: 5, 12: 9, 13: 7, 14: 100}, names)
    assert peaks == {"executor": [9, 5], "receiver": [7]}
    assert procroles.read(tmp_path / "missing") == {}


# --- backlog -------------------------------------------------------------------------------------


class FinalAtOnce:
    """A status poller whose runs are all final at the first poll (so nothing waits)."""

    def __init__(self, status: str = "completed") -> None:
        self.status, self.calls = status, 0

    def poll(self, run_ids: list[str]) -> dict[str, tuple[str, float | None, str | None]]:
        self.calls += 1
        return {r: (self.status, 5.0, None) for r in run_ids}


def test_seed_backlog_starts_every_run_and_counts_failures() -> None:
    calls = iter(range(10))

    def start() -> str:
        n = next(calls)
        if n == 3:
            raise RuntimeError("throttled")
        return f"run{n}"

    seeded = seed_backlog(start, runs=10, starters=1)
    assert len(seeded.records) == 9 and seeded.start_errors == ["RuntimeError: throttled"]
    assert seeded.max_in_flight == 9


def test_seed_backlog_gives_up_when_nothing_starts() -> None:
    def start() -> str:
        raise RuntimeError("no queue")

    with pytest.raises(LoadTestError, match="no queue"):
        seed_backlog(start, runs=25, starters=2)


def test_follow_backlog_collects_final_statuses() -> None:
    seeded = PhaseResult([RunRecord(f"r{i}", 1.0, 0.01) for i in range(250)], 1.0, 2.0)
    poller = FinalAtOnce()
    phase = follow_backlog(seeded, poller, LoadOptions(runs=250, backlog=True))  # type: ignore[arg-type]
    assert poller.calls == 1
    assert len(phase.records) == 250 and {r.status for r in phase.records} == {"completed"}
    assert phase.started_at == 1.0 and phase.records[0].finished == 5.0


def test_follow_backlog_times_out_runs_past_the_deadline() -> None:
    class NeverFinal:
        def poll(self, run_ids: list[str]) -> dict[str, Any]:
            return {}

    seeded = PhaseResult([RunRecord("r0", 1.0, 0.01)], 1.0, 2.0)
    opts = LoadOptions(runs=1, backlog=True, run_timeout_s=0.0)  # past the deadline at once
    phase = follow_backlog(seeded, NeverFinal(), opts)  # type: ignore[arg-type]
    assert phase.records[0].status == "timeout"


def test_a_backlog_needs_a_size() -> None:
    with pytest.raises(LoadTestError, match="--runs"):
        LoadOptions(runs=None, duration_s=5.0, backlog=True).validate()


def test_cli_offers_the_io_workloads_and_worker_limits() -> None:
    out = CliRunner().invoke(loadtest, ["--help"]).output
    for text in ("async-wait", "sync-wait", "--node-ms", "--backlog", "--worker-concurrency", "--threads"):
        assert text in out
    bad = CliRunner().invoke(loadtest, ["--workload", "async-wait", "--node-ms", "0", "--self-contained"])
    assert bad.exit_code == 2 and "positive amount" in bad.output


def test_follow_backlog_polls_once_the_worker_counts_every_run_finished() -> None:
    seeded = PhaseResult([RunRecord(f"r{i}", 1.0, 0.01) for i in range(3)], 1.0, 2.0)
    poller = FinalAtOnce()
    counts = iter([3.0])  # the worker has finished all three at the first look
    phase = follow_backlog(seeded, poller, LoadOptions(runs=3, backlog=True),  # type: ignore[arg-type]
                           finished=lambda: next(counts))
    assert poller.calls == 1 and len(phase.records) == 3


def test_wait_for_count_stops_at_the_deadline() -> None:
    from flowcraft_sqs.loadtest.runner import wait_for_count

    looks: list[int] = []

    def count() -> float:
        looks.append(1)
        raise OSError("metrics port not answering")

    wait_for_count(count, 5, deadline=0.0)  # already past: returns without looking
    assert looks == []
