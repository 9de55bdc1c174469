"""Medians, same-repetition ratios and target checks over a benchmarks/run_io.sh folder.

    .venv/bin/python benchmarks/summarize_io.py benchmarks/out/io-<time>  > summary.md

Reads the `<case>__<variant>__r<rep>.json` reports of `flowcraft-sqs loadtest` and of
benchmarks/peers.py (cases gpeer/hpeer: Dramatiq) and prints Markdown: the targets of
(a)-(d) and (g)-(i) with where each stands, ours and Dramatiq's side by side per repetition,
then the commands.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize import at_least, at_most, fmt, get, load, med, ratio_median, verdict  # noqa: E402

Reps = dict[int, dict[str, Any]]
STEADY = "throughput.steady_node_executions_per_s"
IN_FLIGHT = "in_flight.mean_steady"
MB = 1_000_000


def executor_peak_rss(report: dict[str, Any]) -> float | None:
    """The largest executor's (Dramatiq: worker process's) peak RSS in one report (bytes)."""
    roles = get(report, "resources.worker_peak_rss_by_role") or {}
    peaks = roles.get("executor") or roles.get("dramatiq worker") or []
    return max(peaks) if peaks else None


def spread(reps: Reps, path: str, spec: str) -> str:
    values = [v for r in reps.values() if (v := get(r, path)) is not None]
    if not values:
        return "n/a"
    text = fmt(statistics.median(values), spec)
    return text if len(values) == 1 else f"{text} ({', '.join(fmt(v, spec) for v in values)})"


def rss_row(reps: Reps, variant: str) -> list[str]:
    """(i): judged only on repetitions that reached 1,000 nodes in flight per executor (a total
    peak of --procs x 1,000, each executor being capped at --concurrency 1000)."""
    full = [r for r in reps.values() if (get(r, "in_flight.peak") or 0) >= 1000 * (get(r, "target.procs") or 1)]
    peaks = [p / MB for r in reps.values() if (p := executor_peak_rss(r)) is not None]
    full_peaks = [p / MB for r in full if (p := executor_peak_rss(r)) is not None]
    v = statistics.median(full_peaks) if full_peaks else None
    flights = ", ".join(f"{get(r, 'in_flight.peak') or 0:,}" for r in reps.values())
    judged = verdict(v, at_most(150)) if full_peaks else "n/a: under 1,000 per executor in flight"
    return ["(i) RSS per executor, 1,000 async nodes in flight: <= 150 MB", variant,
            f"{fmt(statistics.median(peaks) if peaks else None, '{:.0f}')} MB "
            f"({', '.join(f'{p:.0f}' for p in peaks)}); peak in flight, all executors: {flights}",
            judged, str(len(full_peaks))]


def target_rows(data: dict[tuple[str, str], Reps]) -> list[list[str]]:
    rows: list[list[str]] = []

    def rate(case: str, variant: str, label: str, limit: float) -> None:
        reps = data.get((case, variant), {})
        v = med(reps, STEADY)
        rows.append([label, variant, spread(reps, STEADY, "{:,.1f}") + " nodes/s; in flight "
                     + spread(reps, IN_FLIGHT, "{:,.0f}"), verdict(v, at_least(limit)), str(len(reps))])

    rate("g", "ministack-default", "(g) 1 s async node, defaults: >= 150 nodes/s", 150)
    rate("g", "memory-c1000", "(g) 1 s async node, --concurrency 1000, memory: >= 1,500 nodes/s", 1500)
    for variant in ("memory-t16", "ministack-t16"):
        rate("h", variant, "(h) 1 s blocking sync node, --threads 16: >= 25 nodes/s", 25)
    for variant in ("memory-c1000-t64", "memory-c1000", "ministack-c1000-t64", "ministack-c1000"):
        rows.append(rss_row(data.get(("g", variant), {}), variant))
    for case, limit in (("a", 1.25), ("b", 1.85)):
        reps = data.get((case, "ministack"), {})
        v = med(reps, "aws.per_node.total")
        name = "10-node chain" if case == "a" else "8-wide diamond"
        rows.append([f"({case}) {name} x 50: AWS requests per node <= {limit}", "ministack",
                     spread(reps, "aws.per_node.total", "{:.3f}"), verdict(v, at_most(limit)), str(len(reps))])
    reps = data.get(("d", "memory"), {})
    rows.append(["(d) no-op nodes, in-memory backend (10,300 before)", "memory",
                 spread(reps, STEADY, "{:,.0f}"), "reported", str(len(reps))])
    for backend in ("memory", "ministack"):
        p1, p2 = data.get(("c", f"{backend}-p1"), {}), data.get(("c", f"{backend}-p2"), {})
        r, each = ratio_median(p2, p1, STEADY)
        rows.append(["(c) CPU-bound, --threads 1: --procs 2 / --procs 1 (>= 1.8x)", backend,
                     (f"{r:.2f}x" if r else "n/a") + (f" ({', '.join(f'{x:.2f}' for x in each)})" if each else ""),
                     verdict(r, at_least(1.8)), str(len(each))])
    return rows


def side_by_side(data: dict[tuple[str, str], Reps]) -> list[str]:
    """Ours and Dramatiq's nodes/s and nodes in flight, per repetition of the same run."""
    pairs = [("g", "ministack-default", "gpeer", "1 s async node, defaults"),
             ("g", "ministack-c1000", "gpeer", "1 s async node, --concurrency 1000"),
             ("g", "ministack-c1000-t64", "gpeer", "1 s async node, --concurrency 1000 --threads 64 (not a target)"),
             ("h", "ministack-t16", "hpeer", "1 s blocking node, --threads 16")]
    out = ["| case (ministack, --procs 2 / -p 2) | flowcraft nodes/s | in flight | Dramatiq nodes/s | "
           "in flight | ratio, same repetition | median ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    for case, variant, peer_case, label in pairs:
        ours, peer = data.get((case, variant), {}), data.get((peer_case, "dramatiq-ministack"), {})
        r, each = ratio_median(ours, peer, STEADY)
        out.append(f"| {label} | {spread(ours, STEADY, '{:,.1f}')} | {spread(ours, IN_FLIGHT, '{:,.0f}')} | "
                   f"{spread(peer, STEADY, '{:,.1f}')} | {spread(peer, IN_FLIGHT, '{:,.0f}')} | "
                   f"{', '.join(f'{x:.1f}x' for x in each) or 'n/a'} | {f'{r:.1f}x' if r else 'n/a'} |")
    return out


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/out")
    data = load(folder)
    out = [f"# I/O-bound benchmarks: `{folder}`", ""]
    machine = folder / "machine.txt"
    if machine.exists():
        out += ["```", machine.read_text().strip(), "```", ""]
    out += ["## Targets (medians; every repetition in brackets)", "",
            "| target | variant | measured | verdict | reps |", "|---|---|---|---|---:|"]
    out += ["| " + " | ".join(r) + " |" for r in target_rows(data)]
    out += ["", "## Flowcraft and Dramatiq side by side", ""] + side_by_side(data)
    out += ["", "## Every case (median of repetitions)", "", "| case | variant | nodes/s | mean in flight | "
            "peak in flight | executor peak RSS MB | worker CPU ms/node | load average at start |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
    for (case, variant), reps in sorted(data.items()):
        rss = [p / MB for r in reps.values() if (p := executor_peak_rss(r)) is not None]
        loads = ", ".join(str((get(r, "meta.environment.load_average") or ["?"])[0]) for r in reps.values())
        out.append(f"| {case} | {variant} | {fmt(med(reps, STEADY), '{:,.1f}')} | {fmt(med(reps, IN_FLIGHT), '{:,.1f}')}"
                   f" | {fmt(med(reps, 'in_flight.peak'), '{:,.0f}')} | {fmt(statistics.median(rss) if rss else None, '{:.0f}')}"
                   f" | {fmt(med(reps, 'resources.worker_cpu_ms_per_node'), '{:.3f}')} | {loads} |")
    for name in ("commands.txt", "failures.txt"):
        path = folder / name
        if path.exists():
            out += ["", f"## {name.split('.')[0].capitalize()}", "", "```", path.read_text().strip(), "```"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
