"""Turn a load test's raw result into figures: JSON, Markdown, and (optionally) plots. Pure.

Every figure is computed here from the raw dict the runner produces (see runner.LoadTest),
so a raw result can be re-reported later (`python -m flowcraft_sqs.loadtest report RAW`).

Cost model: AWS list prices in PRICES (us-east-1, as of the date in it, from the AWS
pricing page), applied to the worker's requests and DynamoDB request units per node
execution. It leaves out free tiers, storage, data transfer, and the machines themselves.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from .workloads import Workload, hop_latencies

#: AWS list prices this report assumes. Source: AWS pricing page (Amazon SQS pricing and
#: Amazon DynamoDB on-demand pricing), us-east-1, as of 2024-11-01, after the November
#: 2024 DynamoDB on-demand price cut (write $1.25 -> $0.625, read $0.25 -> $0.125 per million).
PRICES: Final = {
    "as_of": "2024-11-01",
    "region": "us-east-1",
    "source": "AWS pricing page (Amazon SQS pricing; Amazon DynamoDB on-demand pricing)",
    "sqs_standard_usd_per_million_requests": 0.40,
    "sqs_billing_chunk_bytes": 64 * 1024,
    "dynamodb_on_demand_usd_per_million_wru": 0.625,
    "dynamodb_on_demand_usd_per_million_rru": 0.125,
}
PRICE_NOTES: Final = (
    "Excluded: free tiers (SQS's first 1 million requests a month), DynamoDB storage, "
    "data transfer, and the machines the workers run on. SQS bills each 64 KB chunk of a "
    "request's payload as one request; DynamoDB on-demand bills a write request unit per 1 KB "
    "of the item written (2 for transactions) and a read request unit per 4 KB read strongly "
    "consistently (half for eventually consistent reads)."
)
PERCENTILES: Final = (50, 95, 99)
STEADY_TRIM: Final = 0.10  # steady throughput: node completions between the 10th and 90th percentile


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) with linear interpolation between closest ranks
    (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summarize_ms(values_s: Sequence[float]) -> dict[str, float | int | None]:
    """n, min, mean, p50, p95, p99, max of seconds, in milliseconds."""
    if not values_s:
        return {"n": 0, "min": None, "mean": None, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    ms = [v * 1000.0 for v in values_s]
    out: dict[str, float | int | None] = {"n": len(ms), "min": min(ms), "mean": sum(ms) / len(ms)}
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(ms, p)
    out["max"] = max(ms)
    return out


def steady_rate(times: Sequence[float], trim: float = STEADY_TRIM) -> float | None:
    """Events per second between the `trim` and `1 - trim` quantiles of their times."""
    if len(times) < 10:
        return None
    ordered = sorted(times)
    lo, hi = int(len(ordered) * trim), int(len(ordered) * (1 - trim)) - 1
    span = ordered[hi] - ordered[lo]
    return (hi - lo) / span if span > 0 else None


def timeline(times: Sequence[float], start: float, end: float, buckets: int = 60) -> dict[str, Any]:
    """Events per second in equal buckets from `start` to `end`."""
    span = max(end - start, 1e-6)
    width = max(span / buckets, min(0.5, span / 20))  # short windows: fewer, less noisy buckets
    n = max(1, math.ceil(span / width))
    counts = [0] * n
    for t in times:
        i = int((t - start) / width)
        if 0 <= i < n:
            counts[i] += 1
        elif i == n:
            counts[-1] += 1
    return {"bucket_s": width, "t": [round(i * width, 4) for i in range(n)],
            "per_s": [c / width for c in counts]}


IN_FLIGHT_POINTS: Final = 40  # samples in the nodes-in-flight series of a report


def node_intervals(runs: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(start, end) of every node of the completed runs, as the nodes themselves recorded."""
    return [(float(v[0]), float(v[1])) for r in runs if r.get("status") == "completed"
            for v in (r.get("nodes") or {}).values()]


def mean_in_flight(intervals: Sequence[tuple[float, float]], lo: float, hi: float) -> float | None:
    """Time-averaged nodes running between `lo` and `hi`: the node-seconds inside the window
    over its length (Little's law: node/s x seconds per node)."""
    if hi <= lo:
        return None
    busy = sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in intervals)
    return busy / (hi - lo)


def in_flight_at(starts: Sequence[float], ends: Sequence[float], t: float) -> int:
    """Nodes running at `t`, from sorted starts and sorted ends (started by t, not ended by t)."""
    return bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t)


def in_flight(intervals: Sequence[tuple[float, float]], points: int = IN_FLIGHT_POINTS) -> dict[str, Any]:
    """Nodes in flight over time: the mean over the steady window (the middle 80% of node
    completions, as for the steady throughput), the mean over the whole span, the peak, and
    `points` evenly spaced samples from the first start to the last end."""
    if not intervals:
        return {"n": 0, "mean_steady": None, "mean_span": None, "peak": 0, "series": {"t": [], "nodes": []}}
    starts = sorted(s for s, _ in intervals)
    ends = sorted(e for _, e in intervals)
    first, last = starts[0], ends[-1]
    lo, hi = ends[int(len(ends) * STEADY_TRIM)], ends[max(0, int(len(ends) * (1 - STEADY_TRIM)) - 1)]
    # The peak is reached just after some node starts: checking every start finds it.
    peak = max(in_flight_at(starts, ends, s) for s in starts)
    step = (last - first) / max(points - 1, 1)
    ts = [first + i * step for i in range(points)] if last > first else [first]
    return {"n": len(intervals), "mean_steady": mean_in_flight(intervals, lo, hi),
            "mean_span": mean_in_flight(intervals, first, last), "peak": peak,
            "steady_window_s": [lo - first, hi - first],
            "series": {"t": [round(t - first, 3) for t in ts],
                       "nodes": [in_flight_at(starts, ends, t) for t in ts]}}


# --- AWS requests, units and cost --------------------------------------------------------------


def per_node(counts: Mapping[str, float], nodes: float) -> dict[str, float]:
    """Counts by operation divided by node executions, plus totals by service and overall."""
    if nodes <= 0:
        return {}
    out = {op: n / nodes for op, n in sorted(counts.items()) if n}
    for service in ("SQS", "DynamoDB"):
        out[f"{service} total"] = sum(n for op, n in counts.items() if op.startswith(service + ".")) / nodes
    out["total"] = sum(counts.values()) / nodes
    return out


def units_from_meter(meter: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """DynamoDB read/write request units, SQS billed requests and bytes from meter rows."""
    out = {"wru": 0.0, "rru": 0.0, "measured_calls": 0.0, "estimated_calls": 0.0, "sqs_billed": 0.0,
           "sqs_bytes_out": 0.0, "dynamodb_bytes_out": 0.0, "dynamodb_write_bytes_out": 0.0}
    for op, row in meter.items():
        if op.startswith("DynamoDB."):
            out["wru"] += row.get("wru_measured", 0.0) + row.get("wru_estimated", 0.0)
            out["rru"] += row.get("rru_measured", 0.0) + row.get("rru_estimated", 0.0)
            out["measured_calls"] += row.get("calls_measured", 0.0)
            out["estimated_calls"] += row.get("calls_estimated", 0.0)
            out["dynamodb_bytes_out"] += row.get("bytes_out", 0.0)
            if row.get("wru_measured", 0.0) + row.get("wru_estimated", 0.0) > 0:
                out["dynamodb_write_bytes_out"] += row.get("bytes_out", 0.0)
        elif op.startswith("SQS."):
            out["sqs_billed"] += row.get("sqs_billed", 0.0)
            out["sqs_bytes_out"] += row.get("bytes_out", 0.0)
    return out


DYNAMODB_WRITE_OPS: Final = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def estimate_units(requests: Mapping[str, float], mean_item_bytes: float | None) -> dict[str, float]:
    """Units when DynamoDB's own figures are unavailable: each write request is billed on the
    final item size (an upper bound: items grow as a run goes), each read request reads one
    such item strongly consistently (a lower bound for BatchGetItem of several runs)."""
    size = mean_item_bytes or 1024.0
    wru_each = max(1, math.ceil(size / 1024))
    rru_each = max(1, math.ceil(size / 4096))
    wru = rru = 0.0
    for op, n in requests.items():
        if not op.startswith("DynamoDB."):
            continue
        name = op.split(".", 1)[1]
        if name in DYNAMODB_WRITE_OPS:
            wru += n * wru_each * (2 if name == "TransactWriteItems" else 1)
        else:
            rru += n * rru_each
    sqs = sum(n for op, n in requests.items() if op.startswith("SQS."))
    return {"wru": wru, "rru": rru, "sqs_billed": sqs}


def cost(sqs_billed: float, wru: float, rru: float, prices: Mapping[str, Any] = PRICES) -> dict[str, float]:
    """USD for these quantities *per unit of work*, scaled to a million units of work: pass
    per-node figures to get USD per million node executions."""
    parts = {
        "sqs": sqs_billed * prices["sqs_standard_usd_per_million_requests"],
        "dynamodb_write": wru * prices["dynamodb_on_demand_usd_per_million_wru"],
        "dynamodb_read": rru * prices["dynamodb_on_demand_usd_per_million_rru"],
    }
    parts["total"] = sum(parts.values())
    return parts


# --- the report ------------------------------------------------------------------------------


def workload_of(raw: Mapping[str, Any]) -> Workload:
    w = raw["workload"]
    return Workload(shape=w["shape"], size=w["size"], kind=w["kind"], amount=w["amount"])


def latency_samples(raw: Mapping[str, Any]) -> dict[str, list[float]]:
    """Seconds: hops, run end to end, queue wait before the first node, start_run calls."""
    w = workload_of(raw)
    hops: list[float] = []
    e2e: list[float] = []
    first: list[float] = []
    calls: list[float] = []
    for run in raw["runs"]:
        if run.get("start_call_s"):
            calls.append(run["start_call_s"])
        if run.get("status") != "completed":
            continue
        nodes = run.get("nodes") or {}
        hops.extend(hop_latencies(w, nodes))
        if run.get("finished") is not None:
            e2e.append(run["finished"] - run["submitted"])
        if nodes:
            first.append(min(v[0] for v in nodes.values()) - run["submitted"])
    return {"hop": hops, "run": e2e, "queue_wait": first, "start_call": calls}


def build_report(raw: Mapping[str, Any]) -> dict[str, Any]:
    w = workload_of(raw)
    runs = raw["runs"]
    completed = [r for r in runs if r.get("status") == "completed"]
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.get("status", "?")] = statuses.get(r.get("status", "?"), 0) + 1
    node_ends = [v[1] for r in completed for v in (r.get("nodes") or {}).values()]
    node_count = len(node_ends)
    notes = list(raw.get("notes") or [])
    start = min((r["submitted"] for r in runs), default=0.0)
    ends = [r["finished"] for r in completed if r.get("finished") is not None] + node_ends
    end = max(ends, default=start)
    window = max(end - start, 1e-9)
    expected_nodes = len(completed) * w.nodes
    if completed and node_count != expected_nodes:
        notes.append(f"{node_count} node timings found for {len(completed)} completed runs "
                     f"({expected_nodes} expected)")
    samples = latency_samples(raw)
    throughput = {
        "runs": len(runs), "statuses": statuses, "completed": len(completed),
        "window_s": window, "runs_per_s": len(completed) / window,
        "node_executions": node_count, "node_executions_per_s": node_count / window,
        "steady_node_executions_per_s": steady_rate(node_ends),
        "steady_runs_per_s": steady_rate([r["finished"] for r in completed if r.get("finished")]),
        "max_in_flight": (raw.get("phase") or {}).get("max_in_flight"),
    }
    lag = (raw.get("phase") or {}).get("open_loop_start_lag_s") or []
    if lag:
        throughput["open_loop_start_lag_ms"] = summarize_ms(lag)
    latency = {name: summarize_ms(values) for name, values in samples.items()}

    worker = raw.get("worker") or {}
    counters = worker.get("counters") or {}
    denominator = counters.get("committed") or node_count
    phase = raw.get("phase") or {}
    if phase.get("start_error_count"):
        notes.append(f"{phase['start_error_count']} start_run calls failed (first: "
                     f"{(phase.get('start_errors') or ['?'])[0]}); those runs are not counted")
    if not phase.get("backlog") and counters.get("committed") and node_count and \
            abs(counters["committed"] - node_count) > 0.01 * node_count:
        notes.append(f"the worker committed {counters['committed']:.0f} nodes in the measured window, "
                     f"the completed runs show {node_count}: per-node figures use the worker's count")
    requests = worker.get("requests") or {}
    aws: dict[str, Any] = {"node_executions": denominator, "source": worker.get("source")}
    if requests:
        aws["requests"] = requests
        aws["per_node"] = per_node(requests, denominator)
    item_sizes = [r["item_bytes"] for r in completed if r.get("item_bytes")]
    mean_item = sum(item_sizes) / len(item_sizes) if item_sizes else None
    units: dict[str, Any] = {"final_item_bytes_mean": mean_item,
                             "final_item_bytes_per_node": mean_item / w.nodes if mean_item else None}
    meter = worker.get("meter")
    if meter and denominator:
        u = units_from_meter(meter)
        calls = u["measured_calls"] + u["estimated_calls"]
        units.update({
            "method": "measured" if not u["estimated_calls"] else (
                "mixed: DynamoDB's ReturnConsumedCapacity where the server returned it, "
                "else estimated from item/request sizes"),
            "measured_share": u["measured_calls"] / calls if calls else None,
            "wru_per_node": u["wru"] / denominator, "rru_per_node": u["rru"] / denominator,
            "sqs_billed_per_node": u["sqs_billed"] / denominator,
            "sqs_bytes_sent_per_node": u["sqs_bytes_out"] / denominator,
            "dynamodb_bytes_sent_per_node": u["dynamodb_bytes_out"] / denominator,
            "dynamodb_write_bytes_sent_per_node": u["dynamodb_write_bytes_out"] / denominator,
            "failed_calls_per_node": {op: row["errors"] / denominator for op, row in sorted(meter.items())
                                      if row.get("errors")},
        })
    elif requests and denominator:
        u = estimate_units(requests, mean_item)
        units.update({
            "method": "estimated from final context item sizes (no ReturnConsumedCapacity figures "
                      "from the worker): writes billed on the final item (upper bound), one item "
                      "per read request",
            "measured_share": 0.0,
            "wru_per_node": u["wru"] / denominator, "rru_per_node": u["rru"] / denominator,
            "sqs_billed_per_node": u["sqs_billed"] / denominator,
        })
    costs: dict[str, Any] = {"prices": dict(PRICES), "notes": PRICE_NOTES}
    if "wru_per_node" in units:
        costs["worker_usd_per_million_nodes"] = cost(units["sqs_billed_per_node"], units["wru_per_node"],
                                                     units["rru_per_node"])
    client = raw.get("client") or {}
    start_requests = client.get("start_requests") or {}
    if start_requests and runs:
        n_runs = len(runs)
        sm = units_from_meter(client.get("start_meter") or {})
        wru, rru = sm["wru"] / n_runs, sm["rru"] / n_runs
        sqs_billed = (sm["sqs_billed"] or sum(n for op, n in start_requests.items()
                                              if op.startswith("SQS."))) / n_runs
        start_cost = cost(sqs_billed, wru, rru)
        costs["start_run"] = {"requests": per_node(start_requests, n_runs), "wru": wru, "rru": rru,
                              "sqs_billed": sqs_billed, "usd_per_million_runs": start_cost}
        if "worker_usd_per_million_nodes" in costs:
            costs["all_in_usd_per_million_nodes"] = \
                costs["worker_usd_per_million_nodes"]["total"] + start_cost["total"] / w.nodes
    resources: dict[str, Any] = {}
    if worker.get("cpu_s") is not None:
        resources["worker_cpu_s"] = worker["cpu_s"]
        resources["worker_cpu_ms_per_node"] = 1000 * worker["cpu_s"] / denominator if denominator else None
        resources["worker_cpu_cores_busy"] = worker["cpu_s"] / window
    for key in ("peak_rss_bytes", "peak_process_rss_bytes", "peak_rss_by_role", "processes", "cpu_s_lifetime",
                "exit_code"):
        if worker.get(key) is not None:
            resources[f"worker_{key}"] = worker[key]
    servers = (raw.get("servers") or {}).get("cpu_s") or {}
    if servers:
        resources["server_cpu_s"] = servers
    if client.get("cpu_s") is not None:
        resources["harness_cpu_s"] = client["cpu_s"]
    harness = {"start_requests": start_requests,
               "start_requests_per_run": per_node(start_requests, len(runs)) if runs else {},
               "poll_requests": client.get("poll_requests") or {},
               "poll_requests_per_run": per_node(client.get("poll_requests") or {}, len(runs)) if runs else {}}
    return {
        "title": f"{w.id}: {w.describe()}",
        "meta": raw.get("meta"), "target": raw.get("target"), "workload": raw.get("workload"),
        "options": raw.get("options"), "warmup": raw.get("warmup"),
        "throughput": throughput, "latency_ms": latency, "aws": aws, "dynamodb_units": units,
        "cost": costs, "resources": resources, "harness": harness, "worker_counters": counters,
        "in_flight": in_flight(node_intervals(completed)),
        "timeline": {"nodes": timeline(node_ends, start, end),
                     "runs": timeline([r["finished"] for r in completed if r.get("finished")], start, end)},
        "profile": raw.get("profile"),
        "notes": notes,
    }


# --- Markdown ----------------------------------------------------------------------------------


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _mib(n: Any) -> str:
    return "n/a" if n is None else f"{n / 1024 / 1024:,.1f} MiB"


def _in_flight_markdown(f: Mapping[str, Any] | None) -> list[str]:
    if not f or not f.get("n"):
        return []
    series = f["series"]
    pairs = ", ".join(f"{t:g}s {n}" for t, n in zip(series["t"], series["nodes"], strict=True))
    return ["", "## Nodes in flight (from the nodes' own start and end times)", "",
            *_table(["mean, steady window", "mean, first start to last end", "peak"],
                    [[_f(f["mean_steady"], 1), _f(f["mean_span"], 1), _f(f["peak"])]]),
            "", f"Over time (seconds from the first node start): {pairs}."]


def to_markdown(report: Mapping[str, Any]) -> str:
    meta = report.get("meta") or {}
    target = report.get("target") or {}
    env = meta.get("environment") or {}
    opts = report.get("options") or {}
    out = [f"# Load test {report['title']}", ""]
    where = target.get("backend", "?")
    if target.get("mode") == "self-contained":
        where = (f"self-contained, backend **{target.get('backend')}**, "
                 f"`--procs {target.get('procs')} --receivers {target.get('receivers')}`"
                 + (f" `{' '.join(target.get('worker_args') or [])}`" if target.get("worker_args") else ""))
    elif target.get("mode") == "fleet":
        where = f"running fleet ({target.get('backend')}), queue `{target.get('queue_url')}`"
    out += [f"- Date (UTC): {meta.get('date_utc', '?')}", f"- Target: {where}",
            f"- Command: `{meta.get('command', '?')}`",
            f"- Load: {opts.get('loop')} loop"
            + (f", concurrency {opts.get('concurrency')}" if opts.get("loop") == "closed" else f", {opts.get('rate')} runs/s")
            + f", runs {opts.get('runs')}, duration {opts.get('duration_s') or '-'} s; warm-up "
            f"{(report.get('warmup') or {}).get('runs', 0)} runs",
            f"- Machine: {env.get('cpus')} CPUs ({env.get('cpu_model', '?')}), {env.get('memory_gib', '?')} GiB, "
            f"Python {env.get('python')}, load average {env.get('load_average')} -> "
            f"{env.get('load_average_end')}, git {env.get('git', '?')}", ""]

    t = report["throughput"]
    out += ["## Throughput", ""]
    out += _table(["runs", "completed", "other statuses", "window s", "runs/s", "node executions/s",
                   "steady node executions/s (middle 80%)"],
                  [[t["runs"], t["completed"],
                    ", ".join(f"{k} {v}" for k, v in t["statuses"].items() if k != "completed") or "-",
                    _f(t["window_s"]), _f(t["runs_per_s"]), _f(t["node_executions_per_s"], 1),
                    _f(t["steady_node_executions_per_s"], 1)]])
    out += _in_flight_markdown(report.get("in_flight"))
    out += ["", "## Latency (ms)", ""]
    names = {"hop": "hop: node done -> successor started", "run": "run end to end: start_run -> final status written",
             "queue_wait": "start_run -> first node started", "start_call": "start_run call (client)"}
    rows = []
    for key, label in names.items():
        s = report["latency_ms"].get(key) or {}
        rows.append([label, s.get("n", 0), _f(s.get("p50")), _f(s.get("p95")), _f(s.get("p99")), _f(s.get("max"))])
    out += _table(["measure", "n", "p50", "p95", "p99", "max"], rows)

    aws = report.get("aws") or {}
    out += ["", "## AWS requests per node execution (worker)", ""]
    if aws.get("per_node"):
        pn = aws["per_node"]
        rows = [[op, _f(aws["requests"].get(op, 0), 0), _f(v, 3)] for op, v in pn.items()
                if op in aws["requests"]]
        rows += [[f"**{k}**", "", f"**{_f(pn[k], 3)}**"] for k in ("SQS total", "DynamoDB total", "total")]
        out += _table(["operation", "requests", "per node"], rows)
        out += ["", f"Per {_f(aws['node_executions'], 0)} node executions; source: {aws.get('source')}."]
    else:
        out += ["Not measured (no worker metrics: pass --metrics-url)."]

    u = report.get("dynamodb_units") or {}
    out += ["", "## DynamoDB units and bytes per node execution", ""]
    rows = [["write request units (WRU)", _f(u.get("wru_per_node"), 3)],
            ["read request units (RRU)", _f(u.get("rru_per_node"), 3)],
            ["SQS billed requests (64 KB chunks)", _f(u.get("sqs_billed_per_node"), 3)],
            ["bytes sent to SQS", _f(u.get("sqs_bytes_sent_per_node"), 0)],
            ["bytes sent to DynamoDB (all calls / writes)",
             f"{_f(u.get('dynamodb_bytes_sent_per_node'), 0)} / {_f(u.get('dynamodb_write_bytes_sent_per_node'), 0)}"],
            ["calls answered with an error (e.g. ConditionalCheckFailed: version conflicts)",
             ", ".join(f"{op} {v:.3f}" for op, v in (u.get("failed_calls_per_node") or {}).items()) or "none"],
            ["final context item per run (bytes, per node)",
             f"{_f(u.get('final_item_bytes_mean'), 0)} ({_f(u.get('final_item_bytes_per_node'), 0)})"]]
    out += _table(["", "per node"], rows)
    if u.get("method"):
        share = u.get("measured_share")
        out += ["", f"Units: {u['method']}" + (f" ({share:.0%} of DynamoDB calls measured)." if share is not None else ".")]

    c = report.get("cost") or {}
    prices = c.get("prices") or PRICES
    out += ["", f"## Estimated cost (list prices, {prices['region']}, as of {prices['as_of']}, {prices['source']})", ""]
    if c.get("worker_usd_per_million_nodes"):
        wc = c["worker_usd_per_million_nodes"]
        rows = [["SQS requests", f"${prices['sqs_standard_usd_per_million_requests']} / M", _f(u.get("sqs_billed_per_node"), 3), _f(wc["sqs"], 3)],
                ["DynamoDB write units", f"${prices['dynamodb_on_demand_usd_per_million_wru']} / M", _f(u.get("wru_per_node"), 3), _f(wc["dynamodb_write"], 3)],
                ["DynamoDB read units", f"${prices['dynamodb_on_demand_usd_per_million_rru']} / M", _f(u.get("rru_per_node"), 3), _f(wc["dynamodb_read"], 3)],
                ["**worker total**", "", "", f"**{_f(wc['total'], 3)}**"]]
        if c.get("start_run"):
            sr = c["start_run"]
            rows.append(["starting runs (client), per run", "", f"{_f(sr['requests'].get('total'), 2)} requests",
                         f"{_f(sr['usd_per_million_runs']['total'], 3)} per M runs"])
        if c.get("all_in_usd_per_million_nodes") is not None:
            rows.append(["**all in** (worker + starting runs)", "", "", f"**{_f(c['all_in_usd_per_million_nodes'], 3)}**"])
        out += _table(["item", "price", "per node", "USD per million node executions"], rows)
        out += ["", c.get("notes", PRICE_NOTES)]
    else:
        out += ["Not available without the worker's request counts."]

    r = report.get("resources") or {}
    out += ["", "## Resources", ""]
    rows = [["worker CPU seconds (measured window)", _f(r.get("worker_cpu_s"))],
            ["worker CPU ms per node execution", _f(r.get("worker_cpu_ms_per_node"), 3)],
            ["worker cores busy (CPU s / window s)", _f(r.get("worker_cpu_cores_busy"))],
            ["worker peak RSS, all processes", _mib(r.get("worker_peak_rss_bytes"))],
            ["worker peak RSS, largest process", _mib(r.get("worker_peak_process_rss_bytes"))],
            *[[f"worker peak RSS per {role} process", ", ".join(_mib(b) for b in peaks)]
              for role, peaks in (r.get("worker_peak_rss_by_role") or {}).items()],
            ["worker processes", _f(r.get("worker_processes"))],
            ["worker CPU seconds, whole life (boot + warm-up + shutdown)", _f(r.get("worker_cpu_s_lifetime"))]]
    rows += [[f"server CPU seconds: {name}", _f(v)] for name, v in (r.get("server_cpu_s") or {}).items()]
    rows.append(["harness CPU seconds (load generator)", _f(r.get("harness_cpu_s"))])
    out += _table(["", ""], rows)

    h = report.get("harness") or {}
    if h.get("start_requests") or h.get("poll_requests"):
        out += ["", "## Harness requests (not part of the worker figures)", ""]
        ops = sorted(set(h.get("start_requests") or {}) | set(h.get("poll_requests") or {}))
        rows = [[op, _f((h.get("start_requests_per_run") or {}).get(op), 2),
                 _f((h.get("poll_requests_per_run") or {}).get(op), 2)] for op in ops]
        out += _table(["operation", "start_run, per run", "status polling, per run"], rows)
    prof = report.get("profile")
    if prof and prof.get("roles"):
        out += ["", f"## Profile (py-spy, {prof.get('rate_hz')} Hz, measured phase; `{prof.get('path', '')}`)", ""]
        for role, r in prof["roles"].items():
            out += [f"**{role}** ({r['processes']} process(es), {r['samples']:,} samples)", ""]
            rows = []
            for i in range(max(len(r["self"]), len(r["inclusive"]))):
                own = r["self"][i] if i < len(r["self"]) else ["", 0.0]
                inc = r["inclusive"][i] if i < len(r["inclusive"]) else ["", 0.0]
                rows.append([f"`{own[0]}`" if own[0] else "", f"{own[1]:.1%}" if own[0] else "",
                             f"`{inc[0]}`" if inc[0] else "", f"{inc[1]:.1%}" if inc[0] else ""])
            out += _table(["self", "share", "including callees", "share"], rows) + [""]
    notes = report.get("notes") or []
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in notes]
    out += ["- Latencies use wall clocks: node start/end from the executors, the final status time "
            "from the receiver, submit time from the harness (one host here; across hosts they are "
            "only as good as clock sync)."]
    return "\n".join(out) + "\n"


def write_outputs(report: Mapping[str, Any], raw: Mapping[str, Any] | None, prefix: str | Path,
                  plots: bool = True, keep_raw: bool = False) -> list[Path]:
    """`<prefix>.json`, `<prefix>.md`, optionally `<prefix>.raw.json` and PNG plots."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".md")]
    paths[0].write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    paths[1].write_text(to_markdown(report))
    if keep_raw and raw is not None:
        raw_path = prefix.with_name(prefix.name + ".raw.json")
        raw_path.write_bytes(orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS))
        paths.append(raw_path)
    if plots and raw is not None:
        from .plots import write_plots

        paths += write_plots(report, raw, prefix)
    return paths
