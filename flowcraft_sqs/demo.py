"""`flowcraft-sqs demo`: the example workflows end to end, on this machine, in about 20 s.

    local SQS + DynamoDB (ministack on 127.0.0.1; no AWS account, no Docker)
      -> queue + DLQ + three tables (infra.ensure_infrastructure)
      -> flowcraft-worker --procs N --app flowcraft_sqs.examples:app   (a subprocess)
      -> runs started with FlowcraftClient: content moderation x4, a diamond, a long node
      -> the seed document's client.ts, call for call (raw PutItem / SendMessageBatch / polling)
      -> AWS requests per node (the worker's /metrics), then SIGTERM the worker, stop the server

With --no-local nothing local starts: boto3's normal configuration decides where the
queue and tables are (credentials chain, AWS_REGION, AWS_ENDPOINT_URL*), which is all that
changes between this demo and a real deployment.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

APP_SPEC = "flowcraft_sqs.examples:app"
# The worker's visibility timeout in the demo: short, so the long node (6 s) outlives it
# and its lease is extended (production keeps the default 60 s).
DEMO_VISIBILITY_S = 4
# Long poll of the demo's worker: SQS's maximum, as in production (fewest empty receives).
DEMO_WAIT_TIME_S = 20
# The in-process SqsAdapter stops only after its current long poll returns: keep it short.
ADAPTER_WAIT_TIME_S = 2
POLL_S = 0.1  # how often the demo reads the statuses of its runs
READY_TIMEOUT_S = 60.0  # worker start (imports, spawning children) on a loaded 2-core machine
STOP_TIMEOUT_S = 45.0  # above the worker's --graceful-timeout (30 s)
PR_SET_PDEATHSIG = 1
# Where each example keeps its result in the run's context.
RESULT_KEYS = ("moderation_result", "diamond_result", "long_result")
_METRIC = re.compile(r'^flowcraft_(\w+?)(?:_total)?(?:\{operation="([^"]+)"\})? ([0-9.e+-]+)$')


@dataclass
class Run:
    label: str
    blueprint_id: str
    initial_context: dict[str, Any]
    expect: str | None = None  # the moderation action this post should get
    run_id: str = ""
    started: float = 0.0
    took_s: float | None = None
    status: str = "running"
    result: Any = None
    reason: str | None = None
    nodes: int = 0


@dataclass
class Worker:
    """The worker the demo runs: a flowcraft-worker subprocess, or an SqsAdapter thread."""

    describe: str
    proc: subprocess.Popen[bytes] | None = None
    adapter: Any = None
    metrics_url: str | None = None
    log_path: Path | None = None
    counter: Any = None  # in-process: the adapter's RequestCounter
    extra: dict[str, Any] = field(default_factory=dict)


def echo(text: str = "") -> None:
    click.echo(text)


@click.command()
@click.option("--procs", "-p", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Executor processes of the demo's worker.")
@click.option("--receivers", "-r", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Receiver processes of the demo's worker.")
@click.option("--backend", type=click.Choice(["ministack", "moto"]), default="ministack",
              show_default=True, help="Local AWS-compatible server.")
@click.option("--local/--no-local", default=True, show_default=True,
              help="--no-local: use the AWS that boto3's configuration names (credentials chain, "
                   "AWS_REGION, AWS_ENDPOINT_URL*); creates the seed's queue and tables there.")
@click.option("--in-process", is_flag=True,
              help="Run the single-process SqsAdapter in a thread instead of flowcraft-worker.")
@click.option("--long-seconds", type=click.FloatRange(0, 600), default=6.0, show_default=True,
              help="How long the long workflow's node sleeps.")
@click.option("--timeout", type=click.FloatRange(1), default=120.0, show_default=True,
              help="Seconds the runs may take in all.")
@click.option("--worker-logs", is_flag=True, help="Show the worker's log lines (stderr).")
def demo(procs: int, receivers: int, backend: str, local: bool, in_process: bool,
         long_seconds: float, timeout: float, worker_logs: bool) -> None:
    """Run the example workflows on a local SQS + DynamoDB: no AWS account, no Docker."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .errors import FlowcraftError

    try:
        ok = _run(procs, receivers, backend, local, in_process, long_seconds, timeout, worker_logs)
    except (FlowcraftError, BotoCoreError, ClientError) as exc:  # no server, no credentials...
        raise click.ClickException(str(exc)) from exc
    if not ok:
        sys.exit(1)


def _run(procs: int, receivers: int, backend: str, local: bool, in_process: bool,
         long_seconds: float, timeout: float, worker_logs: bool) -> bool:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(_local_aws(backend) if local else _current_aws())
        stack.enter_context(_patched_environ(env))
        clients, counter = _clients()
        made = _infrastructure(clients)
        worker = _start_worker(stack, made, env, procs, receivers, in_process, worker_logs)
        baseline = _worker_requests(worker)
        runs = _submit(clients, made, long_seconds)
        _follow(clients, made, runs, timeout)
        _show_results(runs)
        _show_costs(worker, baseline, runs, counter)
        seed_status = _seed_client(clients, made)
        ok = seed_status == "completed" and all(r.status == "completed" for r in runs)
    echo(f"\ndone in {time.monotonic() - started:.1f} s" + ("" if ok else " (some runs FAILED)"))
    return ok


# --- step 1: where AWS is -------------------------------------------------------------------

@contextlib.contextmanager
def _local_aws(backend: str) -> Iterator[dict[str, str]]:
    from .local import start_local_aws

    echo("flowcraft-sqs demo: example workflows on a local SQS + DynamoDB (no AWS account)\n")
    began = time.monotonic()
    aws = start_local_aws(backend)
    try:
        echo(f"[1/6] local AWS: {backend} at {aws.sqs_endpoint} "
             f"(started in {time.monotonic() - began:.1f} s)")
        yield aws.env()
    finally:
        aws.stop()
        echo(f"      local AWS ({backend}) stopped")


@contextlib.contextmanager
def _current_aws() -> Iterator[dict[str, str]]:
    from .aws import resolve_region

    echo("flowcraft-sqs demo: example workflows on the AWS boto3 is configured for\n")
    where = os.environ.get("AWS_ENDPOINT_URL_SQS") or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
    echo(f"[1/6] AWS: {where}, region {resolve_region()}")
    yield {}


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `values` set, restored afterwards (boto3 reads endpoints from it)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _clients() -> tuple[Any, Any]:
    from .aws import RequestCounter, make_clients

    counter = RequestCounter()  # the demo's own requests (starting runs, reading statuses)
    return make_clients(counter=counter), counter


# --- step 2: infrastructure ------------------------------------------------------------------

def _infrastructure(clients: Any) -> Any:
    from .infra import ensure_infrastructure

    made = ensure_infrastructure(clients.sqs, clients.dynamodb)
    echo(f"[2/6] infrastructure: queue flowcraft-jobs + DLQ flowcraft-jobs-dlq, tables "
         f"{made.context_table}, {made.status_table}, {made.coordination_table}")
    echo(f"      SQS_QUEUE_URL={made.queue_url}")
    return made


# --- step 3: the worker ----------------------------------------------------------------------

def _start_worker(stack: contextlib.ExitStack, made: Any, env: Mapping[str, str], procs: int,
                  receivers: int, in_process: bool, worker_logs: bool) -> Worker:
    began = time.monotonic()
    if in_process:
        worker = _start_adapter(made)
        stack.callback(_stop_adapter, worker)
    else:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flowcraft-demo-")))
        worker = _spawn_worker(made, env, procs, receivers, tmp, worker_logs)
        stack.callback(_stop_worker, worker)
        _wait_ready(worker, tmp / "notify.sock")
    echo(f"[3/6] worker: {worker.describe} (ready in {time.monotonic() - began:.1f} s)")
    return worker


def _start_adapter(made: Any) -> Worker:
    from .adapter import SqsAdapter
    from .aws import RequestCounter
    from .examples import app

    counter = RequestCounter()
    adapter = SqsAdapter(
        queue_url=made.queue_url, context_table_name=made.context_table,
        status_table_name=made.status_table,
        runtime_options={"registry": app.registry, "blueprints": app.blueprints,
                         "dependencies": app.dependencies},
        wait_time_seconds=ADAPTER_WAIT_TIME_S, visibility_timeout=DEMO_VISIBILITY_S,
        request_counter=counter)
    adapter.start()
    return Worker("SqsAdapter in a thread of this process", adapter=adapter, counter=counter)


def _stop_adapter(worker: Worker) -> None:
    began = time.monotonic()
    stopped = worker.adapter.stop(timeout=ADAPTER_WAIT_TIME_S + 10)
    echo(f"      worker stopped{'' if stopped else ' (still polling: abandoned)'} in "
         f"{time.monotonic() - began:.1f} s")


def _worker_argv(procs: int, receivers: int, metrics_port: int) -> tuple[list[str], str]:
    options = ["--procs", str(procs), "--receivers", str(receivers), "--app", APP_SPEC,
               "--visibility-timeout", str(DEMO_VISIBILITY_S), "--wait-time", str(DEMO_WAIT_TIME_S),
               "--metrics-port", str(metrics_port)]
    script = Path(sys.executable).with_name("flowcraft-worker")
    if script.exists():
        argv = [str(script), *options]
    else:  # not installed as a script (e.g. run from a source tree): the same entry point
        argv = [sys.executable, "-c", "from flowcraft_sqs.cli import worker_main; worker_main()",
                *options]
    return argv, " ".join(["flowcraft-worker", *options[:6]])


def _spawn_worker(made: Any, env: Mapping[str, str], procs: int, receivers: int, tmp: Path,
                  worker_logs: bool) -> Worker:
    port = _free_port()
    argv, shown = _worker_argv(procs, receivers, port)
    log_path = tmp / "worker.log"
    child_env = {**os.environ, **env, "SQS_QUEUE_URL": made.queue_url,
                 "FLOWCRAFT_CONTEXT_TABLE": made.context_table,
                 "FLOWCRAFT_STATUS_TABLE": made.status_table,
                 "NOTIFY_SOCKET": str(tmp / "notify.sock"), "PYTHONUNBUFFERED": "1"}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp / "notify.sock"))  # the worker says READY=1 here, as to systemd
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=child_env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=None if worker_logs else log, start_new_session=True,
                                preexec_fn=_term_with_parent(os.getpid()))
    return Worker(f"{shown} (pid {proc.pid})", proc=proc,
                  metrics_url=f"http://127.0.0.1:{port}/metrics", log_path=log_path,
                  extra={"notify": listener})


def _term_with_parent(parent_pid: int) -> Any:
    """preexec_fn: the kernel sends the worker SIGTERM (a graceful stop) if the demo dies."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(worker: Worker, notify_path: Path) -> None:
    listener: socket.socket = worker.extra["notify"]
    deadline = time.monotonic() + READY_TIMEOUT_S
    assert worker.proc is not None
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise click.ClickException(
                f"the worker exited with code {worker.proc.returncode}:\n{_log_tail(worker)}")
        listener.settimeout(0.2)
        try:
            if b"READY=1" in listener.recv(4096):
                return
        except TimeoutError:
            continue
    raise click.ClickException(f"the worker was not ready within {READY_TIMEOUT_S:.0f} s:\n"
                               f"{_log_tail(worker)}")


def _log_tail(worker: Worker, chars: int = 3000) -> str:
    try:
        return worker.log_path.read_text(errors="replace")[-chars:] if worker.log_path else ""
    except OSError:
        return ""


def _stop_worker(worker: Worker) -> None:
    assert worker.proc is not None
    worker.extra["notify"].close()
    began = time.monotonic()
    if worker.proc.poll() is None:
        worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        code = worker.proc.wait()
    echo(f"      worker: SIGTERM -> exited with code {code} in {time.monotonic() - began:.1f} s")


def _worker_requests(worker: Worker) -> dict[str, float]:
    """AWS requests by operation (and `executed`, `leases_extended`) the worker made so far."""
    if worker.counter is not None:
        return {f"aws:{op}": float(n) for op, n in worker.counter.snapshot().items()}
    assert worker.metrics_url is not None
    time.sleep(0.5)  # receivers copy their counts into the metrics every 0.25 s
    with urllib.request.urlopen(worker.metrics_url, timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            name, operation, value = match.groups()
            values[f"aws:{operation}" if operation else name] = float(value)
    return values


# --- step 4: runs ----------------------------------------------------------------------------

def _submit(clients: Any, made: Any, long_seconds: float) -> list[Run]:
    from .client import FlowcraftClient
    from .examples import blueprints, config, moderation

    client = FlowcraftClient(clients.sqs, clients.dynamodb, made.queue_url, made.context_table,
                             made.status_table, blueprints=blueprints)
    runs = [Run(f"moderation: {label}", moderation.BLUEPRINT_ID, context, expect)
            for label, context, expect in moderation.SAMPLE_POSTS]
    runs.append(Run("diamond", "diamond", dict(config["diamond"]["initialContext"])))
    runs.append(Run(f"long ({long_seconds:g} s node)", "long", {"seconds": long_seconds}))
    echo(f"[4/6] runs: {len(runs)} started with FlowcraftClient.start_run "
         "(context item, status item, start jobs)")
    for run in runs:
        run.started = time.monotonic()
        run.run_id = client.start_run(run.blueprint_id, run.initial_context)
    return runs


def _follow(clients: Any, made: Any, runs: list[Run], timeout: float) -> None:
    from .client import RunResult
    from .stores.dynamodb import DynamoStatusTable

    statuses = DynamoStatusTable(clients.dynamodb, made.status_table)
    began = min(r.started for r in runs)
    deadline = time.monotonic() + timeout
    pending = list(runs)
    while pending and time.monotonic() < deadline:
        for run in list(pending):
            item = statuses.get(run.run_id)
            if item is None or item.get("status") in ("running", None):
                continue
            seen = RunResult.from_item(run.run_id, item)
            run.took_s = time.monotonic() - run.started
            run.status, run.reason = seen.status, seen.reason
            run.result = next((seen.context[k] for k in RESULT_KEYS
                               if seen.context and k in seen.context), None)
            pending.remove(run)
            echo(f"      +{time.monotonic() - began:5.1f} s  {run.status:<9}  {run.label}")
        time.sleep(POLL_S)
    for run in pending:
        run.status, run.reason = "timed out", f"still running after {timeout:g} s"
    _count_nodes(clients, made, runs)


def _count_nodes(clients: Any, made: Any, runs: list[Run]) -> None:
    from .stores.dynamodb import DynamoRunStore

    states = DynamoRunStore(clients.dynamodb, made.context_table).load_runs(
        [r.run_id for r in runs])
    for run in runs:
        state = states.get(run.run_id)
        run.nodes = len(state.meta.results) if state is not None else 0


def _show_results(runs: list[Run]) -> None:
    echo("\n      run                         status     nodes  time    result")
    for run in runs:
        took = f"{run.took_s:5.1f} s" if run.took_s is not None else "   -   "
        shown = run.result if run.status == "completed" else run.reason
        echo(f"      {run.label:<27} {run.status:<10} {run.nodes:>5}  {took}  {shown}")
        if run.expect and run.status == "completed" and not str(run.result).startswith(run.expect):
            echo(f"      ^ expected {run.expect}")
            run.status = "wrong result"


# --- step 5: costs ---------------------------------------------------------------------------

def _show_costs(worker: Worker, baseline: Mapping[str, float], runs: list[Run],
                counter: Any) -> None:
    now = _worker_requests(worker)
    used = {k[4:]: now[k] - baseline.get(k, 0) for k in now
            if k.startswith("aws:") and now[k] - baseline.get(k, 0) > 0}
    nodes = sum(r.nodes for r in runs)
    total = sum(used.values())
    echo(f"\n[5/6] AWS requests made by the worker for these {len(runs)} runs "
         f"({nodes} nodes): {total:g}, {total / max(nodes, 1):.2f} per node")
    for operation, count in sorted(used.items(), key=lambda kv: -kv[1]):
        echo(f"      {operation:<34} {count:>5g}  ({count / max(nodes, 1):.2f} per node)")
    if "leases_extended" in now:
        extended = now["leases_extended"] - baseline.get("leases_extended", 0)
        echo(f"      leases extended (the long node outliving the {DEMO_VISIBILITY_S} s "
             f"visibility timeout): {extended:g}")
    starts = counter.snapshot()
    per_run = (starts.get("DynamoDB.PutItem", 0) + starts.get("SQS.SendMessageBatch", 0)) / len(runs)
    echo(f"      starting a run (client): {per_run:g} requests "
         "(PutItem context, PutItem status, SendMessageBatch)")


# --- step 6: the seed document's client.ts ---------------------------------------------------

def _seed_client(clients: Any, made: Any) -> str:
    from .examples import client as seed_client

    echo("\n[6/6] the seed document's client.ts, call for call "
         "(python -m flowcraft_sqs.examples.client):\n")
    outcome = seed_client.main(clients.sqs, clients.dynamodb, made.queue_url,
                               context_table_name=made.context_table,
                               status_table_name=made.status_table)
    return str(outcome["status"])


def register(group: click.Group) -> None:
    """Add `demo` to a click group (the `flowcraft-sqs` command)."""
    group.add_command(demo, name="demo")
