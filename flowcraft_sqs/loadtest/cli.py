"""`flowcraft-sqs loadtest` (and `python -m flowcraft_sqs.loadtest`).

    # against a running fleet (its workers run --app flowcraft_sqs.loadtest.app)
    flowcraft-sqs loadtest --workload chain --length 10 --runs 50 --concurrency 10 \
        --queue-url https://sqs... --metrics-url http://worker-1:9100/metrics

    # self-contained: local servers + infrastructure + flowcraft-worker, all started here
    flowcraft-sqs loadtest --workload diamond --width 8 --runs 50 --self-contained \
        --procs 2 --backend ministack --out benchmarks/out/diamond

Importing this module is cheap (click only): `register(group)` adds the command to the
`flowcraft-sqs` group without slowing down the worker's start.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any

import click

SHAPES = ("chain", "diamond", "fanout", "single")
IO_WORKLOADS = ("async-wait", "sync-wait")  # one-node runs, drained from a backlog
NETNS_MARK = "FLOWCRAFT_LOADTEST_IN_NETNS"


def _warmup(value: str) -> tuple[int, float] | None:
    """"auto" -> None; "20" -> 20 runs; "15s" -> 15 seconds."""
    value = value.strip().lower()
    if value == "auto":
        return None
    if value.endswith("s"):
        return 0, float(value[:-1])
    return int(value), 0.0


@click.command("loadtest", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100,
                                             "show_default": True})
@click.option("--workload", "shape", type=click.Choice(SHAPES + IO_WORKLOADS), default="chain",
              help="Shape of each run; async-wait / sync-wait: one node that awaits (asyncio.sleep) / "
                   "blocks (time.sleep) --node-ms, drained from a backlog.")
@click.option("--node-ms", type=int, default=1000, help="async-wait / sync-wait: milliseconds each node waits.")
@click.option("--length", type=int, default=10, help="chain: nodes in the chain.")
@click.option("--width", type=int, default=8, help="diamond/fanout: parallel branches.")
@click.option("--node", type=click.Choice(("noop", "cpu", "long", "await", "payload")), default=None,
              show_default="noop, or what --cpu-ms/--long-ms/--payload-kb imply", help="What each node does.")
@click.option("--cpu-ms", type=int, default=0, help="cpu nodes: CPU milliseconds each (busy loop).")
@click.option("--long-ms", type=int, default=0, help="long nodes: milliseconds each sleeps.")
@click.option("--payload-kb", type=int, default=0, help="payload nodes: KB each writes into the context.")
@click.option("--blueprint", default=None, metavar="ID",
              help="A load-test blueprint id instead of the options above, e.g. lt-cpu-20ms-chain-5.")
@click.option("--runs", type=int, default=None, show_default="50, or unlimited with --duration",
              help="Runs to start in the measured phase.")
@click.option("--concurrency", "-c", type=int, default=10, help="Closed loop: runs kept in flight.")
@click.option("--loop", type=click.Choice(("closed", "open")), default=None,
              show_default="closed, or open with --rate", help="Closed: start a run when one ends. Open: start at --rate.")
@click.option("--rate", type=float, default=None, help="Open loop: runs started per second.")
@click.option("--max-in-flight", type=int, default=None, help="Open loop: never more runs in flight than this.")
@click.option("--duration", type=float, default=None, help="Stop starting runs after this many seconds.")
@click.option("--backlog/--no-backlog", default=None, show_default="on for async-wait / sync-wait",
              help="Write all --runs runs first, then measure their drain (self-contained: before the "
                   "worker starts).")
@click.option("--warmup", default="auto", metavar="N|Ns",
              help="Warm-up before measuring: N runs, or N seconds ('15s'); auto: --concurrency runs.")
@click.option("--run-timeout", type=float, default=300.0, help="A run not final this long after its start is a timeout.")
@click.option("--poll-interval", type=float, default=0.05, help="Seconds between status polls.")
@click.option("--starters", type=int, default=4, help="Threads calling start_run.")
@click.option("--self-contained", is_flag=True, help="Start local servers and flowcraft-worker here.")
@click.option("--backend", type=click.Choice(("ministack", "moto", "fauxqs-ddblocal", "ministack-ddblocal", "memory")),
              default="ministack", help="--self-contained: local servers (memory: no AWS at all).")
@click.option("--procs", type=int, default=2, help="--self-contained: flowcraft-worker --procs.")
@click.option("--receivers", type=int, default=1, help="--self-contained: flowcraft-worker --receivers.")
@click.option("--worker-concurrency", type=int, default=None, show_default="the worker's default",
              help="--self-contained: flowcraft-worker --concurrency (nodes in flight per executor).")
@click.option("--worker-threads", "--threads", "worker_threads", type=int, default=None,
              show_default="the worker's default",
              help="--self-contained: flowcraft-worker --threads (sync nodes in flight per executor).")
@click.option("--worker-arg", "worker_args", multiple=True, metavar="ARG",
              help="--self-contained: extra flowcraft-worker argument (repeat), e.g. --worker-arg=--no-local-continuation.")
@click.option("--worker-log-level", default="WARNING", help="--self-contained: the worker's --log-level.")
@click.option("--queue-url", envvar="SQS_QUEUE_URL", default=None, help="Fleet: the job queue.")
@click.option("--context-table", default="flowcraft-contexts", help="Fleet: contexts table.")
@click.option("--status-table", default="flowcraft-statuses", help="Fleet: statuses table.")
@click.option("--region", default=None, help="Fleet: AWS region [default: AWS_REGION, us-east-1].")
@click.option("--sqs-endpoint-url", default=None, help="Fleet: SQS endpoint (local servers).")
@click.option("--dynamodb-endpoint-url", default=None, help="Fleet: DynamoDB endpoint.")
@click.option("--metrics-url", "metrics_urls", multiple=True, metavar="URL",
              help="Fleet: a worker's metrics (flowcraft-worker --metrics-port); repeat per worker.")
@click.option("--out", "out", default=None, metavar="PREFIX",
              show_default="benchmarks/out/<blueprint>-<backend>-<time>",
              help="Write PREFIX.json, PREFIX.md and PREFIX-*.png.")
@click.option("--raw/--no-raw", default=False, help="Also write PREFIX.raw.json (every run's timings).")
@click.option("--plots/--no-plots", default=True, help="PNG plots (needs the [plot] extra: matplotlib).")
@click.option("--progress/--no-progress", default=None, show_default="on a terminal",
              help="Progress bar on stderr.")
@click.option("--profile", "profile", default=None, metavar="FILE",
              help="--self-contained: record the worker with py-spy during the measured phase "
                   "(folded stacks in FILE; the hottest functions go into the report).")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the Markdown report.")
def loadtest(**o: Any) -> None:
    """Start runs of a workload against a fleet (or a self-contained local one) and report
    throughput, hop and run latency, AWS requests, DynamoDB units and cost per node."""
    from .report import build_report, to_markdown, write_outputs
    from .runner import (
        BACKENDS,
        FleetTarget,
        LoadOptions,
        LoadTest,
        LoadTestError,
        SelfContained,
        needs_netns,
    )
    from .workloads import io_workload, parse_workload, workload_from_options

    try:
        if o["blueprint"]:
            workload = parse_workload(o["blueprint"])
        elif o["shape"] in IO_WORKLOADS:
            workload = io_workload(o["shape"], o["node_ms"])
        else:
            node = o["node"] or ("cpu" if o["cpu_ms"] else "long" if o["long_ms"] else
                                 "payload" if o["payload_kb"] else "noop")
            workload = workload_from_options(o["shape"], length=o["length"], width=o["width"], node=node,
                                             cpu_ms=o["cpu_ms"], long_ms=o["long_ms"], payload_kb=o["payload_kb"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if o["self_contained"] and needs_netns(o["backend"]):
        _enter_netns_or_fail(o["backend"])
    runs = o["runs"] if o["runs"] is not None else (None if o["duration"] else 50)
    backlog = o["backlog"] if o["backlog"] is not None else o["shape"] in IO_WORKLOADS and not o["blueprint"]
    warm = _warmup(o["warmup"])
    loop = o["loop"] or ("open" if o["rate"] else "closed")
    if warm is None:
        warm = (0, 0.0) if o["self_contained"] and o["backend"] == "memory" else (o["concurrency"], 0.0)
    options = LoadOptions(runs=runs, concurrency=o["concurrency"], loop=loop, rate=o["rate"],
                          max_in_flight=o["max_in_flight"], duration_s=o["duration"], warmup_runs=warm[0],
                          warmup_s=warm[1], run_timeout_s=o["run_timeout"], poll_s=o["poll_interval"],
                          starters=o["starters"], backlog=backlog)
    test = LoadTest(workload, options, progress=o["progress"], profile=o["profile"])
    if o["self_contained"]:
        assert o["backend"] in BACKENDS
        test.self_contained = SelfContained(o["backend"], o["procs"], o["receivers"], list(o["worker_args"]),
                                            o["worker_log_level"], node_concurrency=o["worker_concurrency"],
                                            threads=o["worker_threads"])
        backend = o["backend"]
    else:
        if not o["queue_url"]:
            raise click.UsageError("give --queue-url (a running fleet) or --self-contained")
        test.fleet = FleetTarget(o["queue_url"], o["context_table"], o["status_table"], o["region"],
                                 o["sqs_endpoint_url"], o["dynamodb_endpoint_url"], list(o["metrics_urls"]))
        backend = "fleet"
    out = o["out"] or f"benchmarks/out/{workload.id}-{backend}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    try:
        raw = test.run()
    except LoadTestError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    report = build_report(raw)
    paths = write_outputs(report, raw, out, plots=o["plots"], keep_raw=o["raw"])
    if not o["quiet"]:
        click.echo(to_markdown(report))
    for path in paths:
        click.echo(f"wrote {path}", err=True)
    t = report["throughput"]
    if t["completed"] != t["runs"]:
        click.echo(f"{t['runs'] - t['completed']} of {t['runs']} runs did not complete: {t['statuses']}", err=True)
        sys.exit(1)


def _enter_netns_or_fail(backend: str) -> None:
    """fauxqs and DynamoDB Local bind every interface: run this whole command again inside a
    loopback-only network namespace (root), or explain how to."""
    from ..local import in_loopback_only_netns

    if in_loopback_only_netns():
        return
    unshare = shutil.which("unshare")
    hint = ("run it inside a loopback-only network namespace: "
            "unshare -n sh -c 'ip link set lo up && exec flowcraft-sqs loadtest ...'")
    if os.environ.get(NETNS_MARK) or unshare is None or os.geteuid() != 0:
        raise click.UsageError(f"--backend {backend} starts servers that listen on every interface; {hint}")
    argv = [sys.executable, *list(getattr(sys, "orig_argv", sys.argv))[1:]]
    click.echo(f"--backend {backend}: re-running inside a loopback-only network namespace (unshare -n)", err=True)
    os.environ[NETNS_MARK] = "1"
    os.execv(unshare, [unshare, "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv])


def register(group: click.Group) -> None:
    """Add `loadtest` to a click group (the `flowcraft-sqs` command group)."""
    group.add_command(loadtest, name="loadtest")


def main() -> None:
    loadtest(prog_name="python -m flowcraft_sqs.loadtest")
