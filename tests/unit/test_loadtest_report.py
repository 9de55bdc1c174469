"""The load-test report: percentiles, the cost model, workloads and Markdown. Pure, fast."""

from __future__ import annotations

import math

import pytest

from flowcraft_sqs.loadtest import report, workloads
from flowcraft_sqs.loadtest.runner import _metric_names, parse_prometheus

# --- percentiles ---------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [15, 20, 35, 40, 50]
    assert report.percentile(values, 0) == 15
    assert report.percentile(values, 50) == 35
    assert report.percentile(values, 100) == 50
    assert report.percentile(values, 40) == pytest.approx(29.0)  # numpy.percentile(values, 40)
    assert report.percentile(values, 95) == pytest.approx(48.0)
    assert report.percentile(list(reversed(values)), 95) == pytest.approx(48.0)  # order does not matter


def test_percentile_edge_cases() -> None:
    assert report.percentile([], 50) is None
    assert report.percentile([7.0], 99) == 7.0
    assert report.percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_summarize_ms_converts_seconds() -> None:
    s = report.summarize_ms([0.001, 0.002, 0.003, 0.004])
    assert s["n"] == 4
    assert s["p50"] == pytest.approx(2.5)
    assert s["min"] == pytest.approx(1.0) and s["max"] == pytest.approx(4.0)
    assert report.summarize_ms([])["p99"] is None


def test_steady_rate_ignores_ramp_up_and_tail() -> None:
    # 1000 events at 100/s, plus a slow ramp-up and a long tail.
    times = [i / 100 for i in range(1000)] + [-50.0, -40.0, 60.0, 90.0]
    assert report.steady_rate(times) == pytest.approx(100, rel=0.02)
    assert report.steady_rate([1.0] * 5) is None


def test_timeline_counts_per_second() -> None:
    tl = report.timeline([0.5, 1.5, 1.6, 9.99], start=0.0, end=10.0, buckets=10)
    assert tl["bucket_s"] == pytest.approx(1.0)
    assert tl["per_s"][:3] == [1.0, 2.0, 0.0]
    assert tl["per_s"][-1] == 1.0


# --- requests, units and cost ------------------------------------------------------------------


def test_per_node_totals_by_service() -> None:
    pn = report.per_node({"SQS.ReceiveMessage": 10, "DynamoDB.UpdateItem": 120, "DynamoDB.BatchGetItem": 10}, 100)
    assert pn["SQS total"] == pytest.approx(0.1)
    assert pn["DynamoDB total"] == pytest.approx(1.3)
    assert pn["total"] == pytest.approx(1.4)
    assert report.per_node({"SQS.ReceiveMessage": 1}, 0) == {}


def test_cost_uses_the_dated_price_table() -> None:
    assert report.PRICES["as_of"] == "2024-11-01"
    c = report.cost(sqs_billed=1.0, wru=1.0, rru=1.0)
    assert c["sqs"] == pytest.approx(0.40)
    assert c["dynamodb_write"] == pytest.approx(0.625)
    assert c["dynamodb_read"] == pytest.approx(0.125)
    assert c["total"] == pytest.approx(1.15)
    # 1.5 requests per node split 0.2 SQS / 1.3 DynamoDB writes at 1 WRU each:
    assert report.cost(0.2, 1.3, 0.0)["total"] == pytest.approx(0.08 + 0.8125)


def test_units_from_meter_add_measured_and_estimated() -> None:
    meter = {
        "DynamoDB.UpdateItem": {"wru_measured": 10.0, "calls_measured": 8.0, "bytes_out": 800.0},
        "DynamoDB.BatchGetItem": {"rru_estimated": 3.0, "calls_estimated": 2.0, "bytes_out": 100.0},
        "SQS.SendMessageBatch": {"sqs_billed": 4.0, "bytes_out": 2000.0},
    }
    u = report.units_from_meter(meter)
    assert (u["wru"], u["rru"], u["sqs_billed"]) == (10.0, 3.0, 4.0)
    assert u["measured_calls"] == 8.0 and u["estimated_calls"] == 2.0
    assert u["dynamodb_write_bytes_out"] == 800.0


def test_estimate_units_from_item_size() -> None:
    u = report.estimate_units({"DynamoDB.UpdateItem": 10, "DynamoDB.BatchGetItem": 2, "SQS.ReceiveMessage": 3}, 2500)
    assert u["wru"] == 30  # 3 KB -> 3 WRU each
    assert u["rru"] == 2  # <= 4 KB -> 1 RRU each
    assert u["sqs_billed"] == 3


# --- workloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bp_id, nodes, hops", [
    ("lt-chain-10", 10, 9), ("lt-diamond-8", 10, 9), ("lt-fanout-4", 5, 4), ("lt-single", 1, 0),
    ("lt-cpu-20ms-chain-5", 5, 4), ("lt-long-2000ms-single", 1, 0), ("lt-payload-16kb-chain-3", 3, 2),
])
def test_blueprint_ids_round_trip(bp_id: str, nodes: int, hops: int) -> None:
    w = workloads.parse_workload(bp_id)
    assert w.id == bp_id
    assert (w.nodes, w.hops) == (nodes, hops)
    bp = workloads.blueprint(w)
    assert bp["id"] == bp_id and len(bp["nodes"]) == nodes


@pytest.mark.parametrize("bad", ["chain-10", "lt-chain", "lt-cpu-20kb-chain-3", "lt-single-3", "lt-ring-3"])
def test_bad_blueprint_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        workloads.parse_workload(bad)


def test_catalogue_loads_as_an_app() -> None:
    from flowcraft_sqs.blueprint import load_blueprints

    bps = workloads.catalogue(["lt-chain-7", " ", "lt-cpu-3ms-fanout-2"])
    assert {"lt-chain-10", "lt-diamond-8", "lt-chain-7", "lt-cpu-3ms-fanout-2"} <= set(bps)
    loaded = load_blueprints(bps, registry=workloads.REGISTRY)
    join = loaded["lt-diamond-8"].node_by_id["join"]
    assert join.join_strategy == "all"


def test_hop_latency_of_a_join_is_from_its_last_predecessor() -> None:
    w = workloads.parse_workload("lt-diamond-2")
    times = {"src": (0.0, 1.0), "b0": (1.010, 1.5), "b1": (1.020, 2.0), "join": (2.005, 2.1)}
    hops = workloads.hop_latencies(w, times)
    assert sorted(round(h, 3) for h in hops) == [0.005, 0.01, 0.02]


def test_nodes_record_their_times() -> None:
    class Ctx:
        params = {"ms": 2, "kb": 2}

    out = workloads.cpu(Ctx())["output"]
    assert out["e"] - out["s"] >= 0.0015
    assert len(workloads.payload(Ctx())["output"]["p"]) == 2048
    times = workloads.node_times({"_outputs.n0": out, "other": 1})
    assert list(times) == ["n0"]


# --- the whole report --------------------------------------------------------------------------


def _raw(runs: int = 20) -> dict:
    w = workloads.parse_workload("lt-chain-3")
    rows = []
    for i in range(runs):
        t = 1000.0 + i * 0.1
        nodes = {"n0": [t + 0.010, t + 0.011], "n1": [t + 0.021, t + 0.022], "n2": [t + 0.032, t + 0.033]}
        rows.append({"run_id": f"r{i}", "submitted": t, "start_call_s": 0.004, "status": "completed",
                     "finished": t + 0.040, "reason": None, "nodes": nodes, "item_bytes": 900})
    rows.append({"run_id": "bad", "submitted": 1000.0, "start_call_s": 0.004, "status": "failed",
                 "finished": 1000.5, "reason": "boom", "nodes": {}})
    return {
        "meta": {"date_utc": "2026-01-01T00:00:00Z", "command": "flowcraft-sqs loadtest ...", "environment": {}},
        "target": {"mode": "self-contained", "backend": "ministack", "procs": 2, "receivers": 1},
        "workload": {"shape": w.shape, "size": w.size, "kind": w.kind, "amount": w.amount, "id": w.id},
        "options": {"loop": "closed", "concurrency": 2, "runs": runs + 1},
        "runs": rows,
        "warmup": {"runs": 2},
        "worker": {"source": "test", "counters": {"committed": 3 * runs},
                   "requests": {"SQS.ReceiveMessage": runs, "DynamoDB.UpdateItem": 3 * runs},
                   "meter": {"DynamoDB.UpdateItem": {"wru_measured": 3.0 * runs, "calls_measured": 3.0 * runs},
                             "SQS.ReceiveMessage": {"sqs_billed": float(runs)}},
                   "cpu_s": 0.6, "peak_rss_bytes": 100 << 20},
        "client": {"start_requests": {"DynamoDB.PutItem": 2 * (runs + 1), "SQS.SendMessageBatch": runs + 1},
                   "poll_requests": {"DynamoDB.BatchGetItem": 5}, "cpu_s": 0.1},
    }


def test_build_report_figures() -> None:
    r = report.build_report(_raw())
    t = r["throughput"]
    assert t["completed"] == 20 and t["statuses"] == {"completed": 20, "failed": 1}
    assert t["node_executions"] == 60
    assert r["latency_ms"]["hop"]["n"] == 40
    assert r["latency_ms"]["hop"]["p50"] == pytest.approx(10.0)
    assert r["latency_ms"]["run"]["p50"] == pytest.approx(40.0)
    assert r["latency_ms"]["queue_wait"]["p50"] == pytest.approx(10.0)
    pn = r["aws"]["per_node"]
    assert pn["total"] == pytest.approx(4 / 3)
    assert pn["SQS.ReceiveMessage"] == pytest.approx(1 / 3)
    assert r["dynamodb_units"]["wru_per_node"] == pytest.approx(1.0)
    assert r["dynamodb_units"]["method"] == "measured"
    worker_cost = r["cost"]["worker_usd_per_million_nodes"]["total"]
    assert worker_cost == pytest.approx(0.40 / 3 + 0.625)
    assert r["cost"]["start_run"]["requests"]["total"] == pytest.approx(3.0)
    assert r["cost"]["all_in_usd_per_million_nodes"] > worker_cost
    assert r["resources"]["worker_cpu_ms_per_node"] == pytest.approx(10.0)
    assert not math.isnan(t["runs_per_s"])


def test_report_without_worker_figures_estimates_nothing() -> None:
    raw = _raw()
    raw["worker"] = None
    r = report.build_report(raw)
    assert "per_node" not in r["aws"]
    assert "worker_usd_per_million_nodes" not in r["cost"]
    assert "Not measured" in report.to_markdown(r)


def test_markdown_has_every_section() -> None:
    md = report.to_markdown(report.build_report(_raw()))
    for heading in ("## Throughput", "## Latency (ms)", "## AWS requests per node execution (worker)",
                    "## DynamoDB units and bytes per node execution", "## Estimated cost", "## Resources",
                    "## Harness requests", "## Notes"):
        assert heading in md
    assert "as of 2024-11-01" in md and "AWS pricing page" in md
    assert "| DynamoDB.UpdateItem | 60 | 1.000 |" in md
    assert "failed 1" in md


def test_write_outputs_without_plots(tmp_path) -> None:
    r = report.build_report(_raw())
    paths = report.write_outputs(r, _raw(), tmp_path / "x" / "run", plots=False, keep_raw=True)
    assert sorted(p.name for p in paths) == ["run.json", "run.md", "run.raw.json"]


def test_parse_prometheus_metrics() -> None:
    committed = {key: metric for metric, key in _metric_names().items()}["committed"]
    text = f"""# HELP {committed} x
# TYPE {committed} counter
{committed} 42
flowcraft_in_flight 3
flowcraft_aws_requests_total{{operation="SQS.ReceiveMessage"}} 7
flowcraft_aws_requests_total{{operation="DynamoDB.UpdateItem"}} 50
"""
    m = parse_prometheus(text)
    assert m["committed"] == 42 and m["in_flight"] == 3
    assert m["aws:SQS.ReceiveMessage"] == 7 and m["aws:DynamoDB.UpdateItem"] == 50
