"""Medians and target checks over a benchmarks/run_all.sh output folder.

    .venv/bin/python benchmarks/summarize.py benchmarks/out/<time>  > summary.md

Reads every `<case>__<variant>__r<rep>.json` load-test report (flowcraft-sqs loadtest) and
`workqueue.json` (benchmarks/workqueue_bench.py); prints Markdown: the targets with where
each stands, then per case the median (and range) of every repetition's figures, the AWS
requests per node by operation and the exact commands.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAME = re.compile(r"^(?P<case>[a-z]+)__(?P<variant>[A-Za-z0-9-]+)__r(?P<rep>\d+)\.json$")


def load(folder: Path) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    found: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for path in sorted(folder.glob("*.json")):
        m = NAME.match(path.name)
        if m:
            found[(m["case"], m["variant"])][int(m["rep"])] = json.loads(path.read_text())
    return found


def get(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


FIGURES: list[tuple[str, str, str]] = [
    ("runs/s", "throughput.runs_per_s", "{:.2f}"),
    ("node executions/s", "throughput.node_executions_per_s", "{:,.1f}"),
    ("steady node exec/s", "throughput.steady_node_executions_per_s", "{:,.1f}"),
    ("hop p50 ms", "latency_ms.hop.p50", "{:.1f}"),
    ("hop p95 ms", "latency_ms.hop.p95", "{:.1f}"),
    ("hop p99 ms", "latency_ms.hop.p99", "{:.1f}"),
    ("run p50 ms", "latency_ms.run.p50", "{:,.0f}"),
    ("run p95 ms", "latency_ms.run.p95", "{:,.0f}"),
    ("run p99 ms", "latency_ms.run.p99", "{:,.0f}"),
    ("AWS requests/node", "aws.per_node.total", "{:.3f}"),
    ("WRU/node", "dynamodb_units.wru_per_node", "{:.3f}"),
    ("RRU/node", "dynamodb_units.rru_per_node", "{:.3f}"),
    ("DDB write bytes sent/node", "dynamodb_units.dynamodb_write_bytes_sent_per_node", "{:,.0f}"),
    ("USD per M nodes (worker)", "cost.worker_usd_per_million_nodes.total", "{:.3f}"),
    ("USD per M nodes (all in)", "cost.all_in_usd_per_million_nodes", "{:.3f}"),
    ("worker CPU ms/node", "resources.worker_cpu_ms_per_node", "{:.3f}"),
    ("worker cores busy", "resources.worker_cpu_cores_busy", "{:.2f}"),
    ("worker peak RSS MiB", "resources.worker_peak_rss_bytes", "mib"),
]


def fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "n/a"
    if spec == "mib":
        return f"{value / 1024 / 1024:,.0f}"
    return spec.format(value)


def median_range(values: list[float], spec: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med, spec)
    return f"{fmt(med, spec)} ({fmt(min(values), spec)}-{fmt(max(values), spec)})"


def med(reports: dict[int, dict[str, Any]], path: str) -> float | None:
    values = [v for r in reports.values() if (v := get(r, path)) is not None]
    return statistics.median(values) if values else None


def ratio_median(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]], path: str) -> tuple[float | None, list[float]]:
    """Median over repetitions of a[rep] / b[rep] (same-repetition ratios)."""
    ratios = [get(a[r], path) / get(b[r], path) for r in sorted(set(a) & set(b))
              if get(a[r], path) and get(b[r], path)]
    return (statistics.median(ratios) if ratios else None), ratios


def verdict(value: float | None, ok: Callable[[float], bool]) -> str:
    if value is None:
        return "not measured"
    return "**met**" if ok(value) else "**missed**"


def at_most(limit: float) -> Callable[[float], bool]:
    return lambda x: x <= limit


def at_least(limit: float) -> Callable[[float], bool]:
    return lambda x: x >= limit


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/out")
    data = load(folder)
    out: list[str] = [f"# Benchmark summary: `{folder}`", ""]
    machine = folder / "machine.txt"
    if machine.exists():
        out += ["```", machine.read_text().strip(), "```", ""]
    variants = sorted({v for (_, v) in data})
    backends = [v for v in variants if not v.startswith("memory") and not re.search(r"-p\d$", v)]

    rows: list[list[str]] = []
    for b in backends:
        for case, limit, label in (("a", 1.5, "(a) 10-node chain x 50: AWS requests per node <= 1.5"),
                                   ("b", 2.0, "(b) 8-wide diamond x 50: AWS requests per node <= 2.0")):
            reps = data.get((case, b), {})
            v = med(reps, "aws.per_node.total")
            rows.append([label, b, fmt(v, "{:.3f}"), verdict(v, at_most(limit)), str(len(reps))])
    c_backends = sorted({v.rsplit("-p", 1)[0] for (case, v) in data if case == "c"},
                        key=lambda b: (b == "memory", b))
    for b in c_backends:
        p1, p2 = data.get(("c", f"{b}-p1"), {}), data.get(("c", f"{b}-p2"), {})
        if p1 or p2:
            r, each = ratio_median(p2, p1, "throughput.steady_node_executions_per_s")
            rows.append(["(c) CPU-bound nodes: --procs 2 / --procs 1 >= 1.8x (steady node exec/s)", b,
                         (f"{r:.2f}x" if r else "n/a") + (f" ({', '.join(f'{x:.2f}' for x in each)})" if each else ""),
                         verdict(r, lambda x: x >= 1.8), str(len(each))])
    for variant in ("memory", "memory-tuned"):
        reps = data.get(("d", variant), {})
        if reps:
            v = med(reps, "throughput.steady_node_executions_per_s")
            rows.append([f"(d) no-op nodes, in-memory backend{' (tuned)' if 'tuned' in variant else ''}: "
                         ">= 50,000 node exec/s", variant, fmt(v, "{:,.0f}"), verdict(v, lambda x: x >= 50_000),
                         str(len(reps))])
    for b in backends:
        reps = data.get(("e", b), {})
        v = med(reps, "latency_ms.hop.p50")
        rows.append(["(e) hop latency under light load: p50 <= 15 ms", b, fmt(v, "{:.1f} ms"),
                     verdict(v, lambda x: x <= 15), str(len(reps))])
    wq = folder / "workqueue.json"
    if wq.exists():
        summary = {row["case"]: row for row in json.loads(wq.read_text())["summary"]}
        for case, limit, label in (("WorkQueue 1/put", 800_000, "(f) work queue one way, 1 per put: >= 800k msg/s"),
                                   ("WorkQueue 10/put", 2_000_000, "(f) work queue one way, 10 per put: >= 2M msg/s")):
            row = summary.get(case)
            v = row["rate_median"] if row else None
            rows.append([label, "shared memory", fmt(v, "{:,.0f}") + (
                f" ({row['rate_min']:,.0f}-{row['rate_max']:,.0f})" if row else ""),
                verdict(v, at_least(limit)), "3"])
    out += ["## Targets", "", "| target | backend | measured (median) | verdict | reps |",
            "|---|---|---:|---|---:|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]

    for (case, variant), reps in sorted(data.items()):
        out += ["", f"## ({case}) {variant}: {len(reps)} repetition(s), median (min-max)", ""]
        first = reps[min(reps)]
        out += [f"{first.get('title', '')}; target: {get(first, 'target.backend')}, "
                f"--procs {get(first, 'target.procs')} --receivers {get(first, 'target.receivers')}"
                + (f" {' '.join(get(first, 'target.worker_args') or [])}" if get(first, 'target.worker_args') else ""), ""]
        out += ["| figure | value |", "|---|---:|"]
        for label, path, spec in FIGURES:
            values = [get(r, path) for r in reps.values()]
            if any(v is not None for v in values):
                out.append(f"| {label} | {median_range(values, spec)} |")
        ops: dict[str, list[float]] = defaultdict(list)
        for report in reps.values():
            for op, per in (get(report, "aws.per_node") or {}).items():
                ops[op].append(per)
        if ops:
            out += ["", "AWS requests per node execution by operation (median of repetitions):", "",
                    "| operation | per node |", "|---|---:|"]
            out += [f"| {op} | {statistics.median(v):.3f} |" for op, v in ops.items()]
        statuses = [get(r, "throughput.statuses") for r in reps.values()]
        if any(s and set(s) != {"completed"} for s in statuses):
            out += ["", f"Run statuses: {statuses}"]
    commands = folder / "commands.txt"
    if commands.exists():
        out += ["", "## Commands", "", "```", commands.read_text().strip(), "```"]
    failures = folder / "failures.txt"
    if failures.exists():
        out += ["", "## Failures", "", "```", failures.read_text().strip(), "```"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
