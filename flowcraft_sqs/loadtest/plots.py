"""PNG plots of a load test, when matplotlib is installed (`pip install 'flowcraft-sqs[plot]'`).

    <prefix>-throughput.png  node executions/s and runs/s over the measured window
    <prefix>-latency.png     histograms of hop latency and run end-to-end latency

Without matplotlib `write_plots` returns no paths and the report says how to get them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .report import latency_samples


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(report: Mapping[str, Any], raw: Mapping[str, Any], prefix: str | Path) -> list[Path]:
    if not available():
        notes = report.get("notes")
        if isinstance(notes, list):
            notes.append("plots skipped: matplotlib is not installed (pip install 'flowcraft-sqs[plot]')")
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = Path(prefix)
    title = str(report.get("title", "load test"))
    paths = []

    tl = report.get("timeline") or {}
    fig, ax = plt.subplots(figsize=(8, 4))
    for key, label in (("nodes", "node executions/s"), ("runs", "runs completed/s")):
        series = tl.get(key)
        if series and series.get("t"):
            ax.step(series["t"], series["per_s"], where="post", label=label)
    ax.set_xlabel("seconds since the first run started")
    ax.set_ylabel("per second")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    path = prefix.with_name(prefix.name + "-throughput.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    samples = latency_samples(raw)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "hop", "hop latency (node done -> successor started)"),
                           (axes[1], "run", "run latency (start_run -> final status)")):
        values = [v * 1000 for v in samples.get(key, [])]
        if values:
            ax.hist(values, bins=min(60, max(10, len(values) // 10)))
            stats = (report.get("latency_ms") or {}).get(key) or {}
            for p, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
                if stats.get(p) is not None:
                    ax.axvline(stats[p], color="k", linestyle=style, linewidth=1, label=f"{p} {stats[p]:.1f} ms")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("ms")
        ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=9)
    path = prefix.with_name(prefix.name + "-latency.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths
