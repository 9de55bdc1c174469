"""Drive a load: start runs, follow them to their end, and gather everything the report needs.

    LoadTest.run()
      target: a running fleet (--queue-url, tables, optional --metrics-url of its workers)
              or self-contained: local servers + infrastructure + `flowcraft-worker` started here
      warm-up phase (not measured) -> snapshot -> measured phase -> settle -> snapshot
      -> read every measured run's final context (node start/end times) -> raw result dict

Runs are started through `FlowcraftClient.start_run` (state, status, start jobs) from a few
threads, in a closed loop (keep `concurrency` runs in flight) or an open loop (start `rate`
runs per second whatever happens). Completions are found by polling the status table with
BatchGetItem (100 runs per call, only the status attributes); the contexts are read once, at
the end, so the harness does not compete with the worker while it is measured.

The worker's AWS requests come from its own `aws.RequestCounter`, served on its metrics port
(`--metrics-port`); the harness's requests are counted apart, by a RequestCounter on its own
clients: starting runs (part of any real use) and polling (only the harness does that).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from . import meter as meter_mod
from .procroles import PROC_DIR_ENV, peak_rss_by_role
from .procroles import read as read_proc_roles
from .progress import Progress
from .workloads import Workload, blueprint, node_times

log = logging.getLogger("flowcraft_sqs.loadtest")

#: Local backends for --self-contained: name -> (SQS server, DynamoDB server); None = in-memory.
BACKENDS: Final[dict[str, tuple[str, str] | None]] = {
    "ministack": ("ministack", "ministack"),
    "moto": ("moto", "moto"),
    "fauxqs-ddblocal": ("fauxqs", "dynamodb-local"),
    "ministack-ddblocal": ("ministack", "dynamodb-local"),
    "memory": None,
}
STATUS_BATCH: Final = 100  # BatchGetItem keys per call
WORKER_READY_TIMEOUT_S: Final = 90.0
SETTLE_S: Final = 1.0  # counters reach the metrics board within 0.25 s, meter files within 0.5 s
STOP_TIMEOUT_S: Final = 45.0
MAX_START_ERRORS: Final = 20
MAX_POLL_ERRORS: Final = 20  # in a row
METRICS_SCRAPE_S: Final = 0.25  # --backend memory: how often progress reads the worker's metrics
APP_SPEC: Final = "flowcraft_sqs.loadtest.app"
MEMSEED_SPEC: Final = "flowcraft_sqs.loadtest.memseed:seed"


class LoadTestError(Exception):
    """The load test cannot go on; the message says why and what to do."""


@dataclass
class LoadOptions:
    runs: int | None = 50  # None: until --duration
    concurrency: int = 10  # closed loop: runs in flight
    loop: str = "closed"  # closed | open
    rate: float | None = None  # open loop: runs started per second
    max_in_flight: int | None = None  # open loop: cap (None: none)
    duration_s: float | None = None  # stop starting runs after this long
    warmup_runs: int = 0
    warmup_s: float = 0.0
    run_timeout_s: float = 300.0
    poll_s: float = 0.05
    starters: int = 4
    backlog: bool = False  # write every run first, then drain them (no closed or open loop)

    def validate(self) -> LoadOptions:
        if self.loop not in ("closed", "open"):
            raise LoadTestError("--loop must be closed or open")
        if self.loop == "open" and not self.rate:
            raise LoadTestError("an open loop needs --rate (runs started per second)")
        if self.runs is None and self.duration_s is None:
            raise LoadTestError("give --runs, --duration, or both")
        if self.concurrency < 1 or self.starters < 1:
            raise LoadTestError("--concurrency and --starters must be at least 1")
        if self.backlog and self.runs is None:
            raise LoadTestError("a backlog drain needs --runs (the backlog's size)")
        return self


@dataclass
class FleetTarget:
    """Where runs go: an existing queue and tables (real AWS or any endpoint)."""

    queue_url: str
    context_table: str = "flowcraft-contexts"
    status_table: str = "flowcraft-statuses"
    region: str | None = None
    sqs_endpoint_url: str | None = None
    dynamodb_endpoint_url: str | None = None
    metrics_urls: Sequence[str] = ()
    meter_dir: str | None = None


@dataclass
class SelfContained:
    backend: str = "ministack"
    procs: int = 2
    receivers: int = 1
    worker_args: Sequence[str] = ()
    log_level: str = "WARNING"
    keep_logs: str | None = None  # folder for the worker's log
    node_concurrency: int | None = None  # flowcraft-worker --concurrency (None: its default)
    threads: int | None = None  # flowcraft-worker --threads (None: its default)


def worker_flags() -> set[str]:
    """The options this installation's `flowcraft-worker` accepts (read from its click command,
    so a harness newer than the worker passes only what the worker knows)."""
    from .. import cli

    return {opt for param in cli.worker.params for opt in getattr(param, "opts", ())}


def node_limit_args(sc: SelfContained, known: set[str] | None = None) -> tuple[list[str], list[str]]:
    """(worker arguments, notes) for --concurrency/--threads; a flag the worker lacks is
    left out and said so in the notes."""
    wanted = {"--concurrency": sc.node_concurrency, "--threads": sc.threads}
    if all(v is None for v in wanted.values()):
        return [], []
    known = worker_flags() if known is None else known
    args: list[str] = []
    notes: list[str] = []
    for flag, value in wanted.items():
        if value is None:
            continue
        if flag in known:
            args += [flag, str(value)]
        else:
            notes.append(f"flowcraft-worker has no {flag} option in this version: {flag} {value} not passed")
    return args, notes


# --- small helpers --------------------------------------------------------------------------


def _now() -> float:
    return time.time()


def _metric_names() -> dict[str, str]:
    """Exposed metric name -> the worker's counter name (metrics.COUNTERS), both layouts."""
    from .. import metrics

    names: dict[str, str] = {}
    for key, spec in metrics.COUNTERS.items():
        if len(spec) == 3:  # (metric name, kind, help)
            names[spec[0]] = key
        else:  # (kind, help): flowcraft_<key>[_total]
            names[f"flowcraft_{key}" + ("_total" if spec[0] == "counter" else "")] = key
    return names


def parse_prometheus(text: str) -> dict[str, float]:
    """The worker's samples as {"committed": n, ..., "aws:SQS.ReceiveMessage": n}: counters
    by their metrics.COUNTERS name, AWS requests by operation, gauges by their bare name."""
    known = _metric_names()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^(flowcraft_[a-z_]+)(?:\{operation="([^"]+)"\})?\s+(\S+)$', line)
        if not m:
            continue
        metric, op, value = m.groups()
        if op:
            key = f"aws:{op}"
        else:
            key = known.get(metric) or re.sub(r"_total$", "", metric[len("flowcraft_"):])
        out[key] = out.get(key, 0.0) + float(value)
    return out


def scrape(urls: Sequence[str], timeout: float = 5.0) -> dict[str, float] | None:
    """Summed metrics of every worker URL; None if there are none."""
    if not urls:
        return None
    total: dict[str, float] = {}
    for url in urls:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (operator-given URL)
            for k, v in parse_prometheus(response.read().decode()).items():
                total[k] = total.get(k, 0.0) + v
    return total


def diff_counts(after: Mapping[str, float] | None, before: Mapping[str, float] | None) -> dict[str, float]:
    if not after:
        return {}
    before = before or {}
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def environment() -> dict[str, Any]:
    """Machine notes for the report."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(Exception):
        import boto3
        import botocore

        info["boto3"], info["botocore"] = boto3.__version__, botocore.__version__
    with contextlib.suppress(Exception):
        root = Path(__file__).resolve().parents[2]
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=5)
        if head.returncode == 0:
            info["git"] = head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    return info


def command_line() -> str:
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if len(argv) > 1 and argv[0] == sys.executable and argv[1].endswith(("/flowcraft-sqs", "/flowcraft-worker")):
        argv = argv[1:]
    if argv and argv[0] == sys.executable:
        argv[0] = "python"
    return " ".join(shlex.quote(a) for a in argv)


class ProcessSampler:
    """Samples CPU seconds and RSS of process trees (psutil) from a daemon thread."""

    def __init__(self, groups: Mapping[str, int], interval_s: float = 0.25) -> None:
        import psutil

        self.psutil = psutil
        self.groups = dict(groups)
        self.interval_s = interval_s
        self.cpu: dict[str, dict[int, float]] = {g: {} for g in groups}
        self.peak_total_rss: dict[str, int] = dict.fromkeys(groups, 0)
        self.peak_process_rss: dict[str, int] = dict.fromkeys(groups, 0)
        self.peak_rss_by_pid: dict[int, int] = {}
        self.processes: dict[str, set[int]] = {g: set() for g in groups}
        self.series: list[tuple[float, dict[str, float], dict[str, int]]] = []
        self._procs: dict[int, Any] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="lt-sampler", daemon=True)

    def start(self) -> ProcessSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _tree(self, root: int) -> list[Any]:
        ps = self.psutil
        try:
            top = self._procs.get(root) or ps.Process(root)
            self._procs[root] = top
            members = [top, *top.children(recursive=True)]
        except ps.Error:
            return []
        out = []
        for p in members:
            cached = self._procs.setdefault(p.pid, p)
            out.append(cached)
        return out

    def sample(self) -> None:
        ps = self.psutil
        now = _now()
        cpu_now: dict[str, float] = {}
        rss_now: dict[str, int] = {}
        with self._lock:
            for group, root in self.groups.items():
                total_rss = 0
                for p in self._tree(root):
                    try:
                        with p.oneshot():
                            t = p.cpu_times()
                            rss = p.memory_info().rss
                    except ps.Error:
                        continue
                    self.cpu[group][p.pid] = max(self.cpu[group].get(p.pid, 0.0), t.user + t.system)
                    self.processes[group].add(p.pid)
                    self.peak_process_rss[group] = max(self.peak_process_rss[group], rss)
                    self.peak_rss_by_pid[p.pid] = max(self.peak_rss_by_pid.get(p.pid, 0), rss)
                    total_rss += rss
                self.peak_total_rss[group] = max(self.peak_total_rss[group], total_rss)
                cpu_now[group] = sum(self.cpu[group].values())
                rss_now[group] = total_rss
            self.series.append((now, cpu_now, rss_now))

    def cpu_seconds(self) -> dict[str, float]:
        self.sample()
        with self._lock:
            return {g: sum(v.values()) for g, v in self.cpu.items()}


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --- the status poller and the load loop -------------------------------------------------


@dataclass
class RunRecord:
    run_id: str
    submitted: float  # wall clock just before start_run
    start_call_s: float  # how long start_run took
    scheduled: float | None = None  # open loop: when it was due
    status: str = "running"
    finished: float | None = None  # the status item's lastUpdated (written by the worker)
    observed: float | None = None  # when the harness saw the final status
    reason: str | None = None


class StatusPoller:
    """Final statuses of many runs, 100 per BatchGetItem, only the status attributes."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        from ..stores.dynamodb import HASH_KEY, LAST_UPDATED_ATTR, REASON_ATTR, STATUS_ATTR

        self.client, self.table = dynamodb, table
        self.key = HASH_KEY
        self.projection = {"ProjectionExpression": "#k, #s, #u, #r",
                           "ExpressionAttributeNames": {"#k": HASH_KEY, "#s": STATUS_ATTR,
                                                        "#u": LAST_UPDATED_ATTR, "#r": REASON_ATTR}}
        self.attrs = (STATUS_ATTR, LAST_UPDATED_ATTR, REASON_ATTR)

    def poll(self, run_ids: Sequence[str]) -> dict[str, tuple[str, float | None, str | None]]:
        """run id -> (status, lastUpdated, reason) for those whose status is final."""
        from ..protocol import FINAL_STATUSES

        found: dict[str, tuple[str, float | None, str | None]] = {}
        for start in range(0, len(run_ids), STATUS_BATCH):
            keys = [{self.key: {"S": r}} for r in run_ids[start:start + STATUS_BATCH]]
            response = self.client.batch_get_item(
                RequestItems={self.table: {"Keys": keys, "ConsistentRead": False, **self.projection}})
            status_attr, updated_attr, reason_attr = self.attrs
            for item in response.get("Responses", {}).get(self.table, []):
                status = item.get(status_attr, {}).get("S")
                if status in FINAL_STATUSES:
                    updated = item.get(updated_attr, {}).get("N")
                    reason = item.get(reason_attr, {}).get("S")
                    found[item[self.key]["S"]] = (status, float(updated) if updated else None, reason)
        return found


@dataclass
class PhaseResult:
    records: list[RunRecord]
    started_at: float
    ended_at: float
    start_errors: list[str] = field(default_factory=list)
    max_in_flight: int = 0
    start_lag_s: list[float] = field(default_factory=list)  # open loop: actual - scheduled


def drive(start: Callable[[], str], poller: StatusPoller, opts: LoadOptions, *, runs: int | None,
          duration_s: float | None, progress: Progress | None = None) -> PhaseResult:
    """Start runs (closed or open loop) until `runs` or `duration_s`, then wait for them all."""
    pool = ThreadPoolExecutor(opts.starters, thread_name_prefix="lt-start")
    pending: dict[Future[RunRecord], float | None] = {}
    in_flight: dict[str, RunRecord] = {}
    done: list[RunRecord] = []
    errors: list[str] = []
    lags: list[float] = []
    t0 = _now()
    stop_starting_at = t0 + duration_s if duration_s else float("inf")
    started = 0
    next_due = t0
    last_poll = 0.0
    poll_errors = 0
    peak = 0

    def one(scheduled: float | None) -> RunRecord:
        t = _now()
        run_id = start()
        return RunRecord(run_id, t, _now() - t, scheduled)

    def may_start(now: float) -> bool:
        return (runs is None or started < runs) and now < stop_starting_at

    try:
        while True:
            now = _now()
            if opts.loop == "closed":
                while may_start(now) and len(in_flight) + len(pending) < opts.concurrency:
                    pending[pool.submit(one, None)] = None
                    started += 1
            else:
                assert opts.rate
                cap = opts.max_in_flight
                while may_start(now) and next_due <= now and (cap is None or len(in_flight) + len(pending) < cap):
                    pending[pool.submit(one, next_due)] = next_due
                    started += 1
                    next_due += 1.0 / opts.rate
            if pending:
                finished, _ = wait_futures(list(pending), timeout=0.002, return_when=FIRST_COMPLETED)
                for f in finished:
                    pending.pop(f)
                    try:
                        rec = f.result()
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        if len(errors) >= MAX_START_ERRORS and not (in_flight or done):
                            raise LoadTestError(f"starting runs fails: {errors[0]}") from exc
                        continue
                    if rec.scheduled is not None:
                        lags.append(rec.submitted - rec.scheduled)
                    in_flight[rec.run_id] = rec
            peak = max(peak, len(in_flight) + len(pending))
            now = _now()
            chunks = -(-len(in_flight) // STATUS_BATCH)
            if in_flight and now - last_poll >= max(opts.poll_s, 0.01 * chunks):
                last_poll = now
                try:
                    finals = poller.poll(list(in_flight))
                    poll_errors = 0
                except Exception as exc:  # throttling, a dropped connection: poll again later
                    poll_errors += 1
                    if poll_errors >= MAX_POLL_ERRORS:
                        raise LoadTestError(f"polling run statuses keeps failing: {exc}") from exc
                    log.warning("status poll failed (%s); retrying", exc)
                    finals = {}
                seen = _now()
                for run_id, (status, updated, reason) in finals.items():
                    rec = in_flight.pop(run_id)
                    rec.status, rec.finished, rec.reason, rec.observed = status, updated, reason, seen
                    done.append(rec)
                for rec in [r for r in in_flight.values() if seen - r.submitted > opts.run_timeout_s]:
                    in_flight.pop(rec.run_id)
                    rec.status, rec.reason = "timeout", f"not final after {opts.run_timeout_s:g} s"
                    done.append(rec)
            if progress is not None:
                progress.update(len(done), in_flight=len(in_flight) + len(pending))
            if not may_start(_now()) and not in_flight and not pending:
                break
            if not pending:
                waits = [opts.poll_s - (_now() - last_poll)]
                if opts.loop == "open" and may_start(_now()):
                    waits.append(next_due - _now())
                time.sleep(min(max(0.0005, min(waits)), opts.poll_s))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if progress is not None:
        progress.close()
    return PhaseResult(done, t0, _now(), errors, peak, lags)


def seed_backlog(start: Callable[[], str], runs: int, starters: int) -> PhaseResult:
    """Start `runs` runs as fast as `starters` threads can: the backlog a drain measures."""
    t0 = _now()

    def one(_: int) -> RunRecord | str:
        t = _now()
        try:
            run_id = start()
        except Exception as exc:  # counted and reported, like a failed start in a loop
            return f"{type(exc).__name__}: {exc}"
        return RunRecord(run_id, t, _now() - t)

    with ThreadPoolExecutor(starters, thread_name_prefix="lt-seed") as pool:
        results = list(pool.map(one, range(runs)))
    records = [r for r in results if isinstance(r, RunRecord)]
    errors = [r for r in results if isinstance(r, str)]
    if len(errors) >= MAX_START_ERRORS and not records:
        raise LoadTestError(f"starting runs fails: {errors[0]}")
    return PhaseResult(records, t0, _now(), errors, len(records))


def wait_for_count(count: Callable[[], float], target: int, deadline: float,
                   progress: Progress | None = None) -> None:
    """Until `count()` reaches `target` or the deadline; a failing count is retried."""
    while _now() < deadline:
        with contextlib.suppress(OSError):
            done = count()
            if progress is not None:
                progress.update(int(done))
            if done >= target:
                return
        time.sleep(METRICS_SCRAPE_S)


def follow_backlog(seeded: PhaseResult, poller: StatusPoller, opts: LoadOptions,
                   progress: Progress | None = None,
                   finished: Callable[[], float] | None = None) -> PhaseResult:
    """Poll the seeded runs until each is final or past --run-timeout (counted from when
    the drain began, since a backlog's last run waits behind all the others).

    `finished` (the worker's own count of runs it finished) lets the statuses be polled once
    the drain is over instead of all along: polling thousands of runs would take a share of
    the server (and the 2 cores) from the worker being measured. Finish times come from the
    status items either way, so this changes no figure but the load."""
    in_flight = {r.run_id: r for r in seeded.records}
    done: list[RunRecord] = []
    deadline = _now() + opts.run_timeout_s
    if finished is not None:
        wait_for_count(finished, len(in_flight), deadline, progress)
    poll_errors = 0
    while in_flight:
        try:
            finals = poller.poll(list(in_flight))
            poll_errors = 0
        except Exception as exc:  # throttling, a dropped connection: poll again later
            poll_errors += 1
            if poll_errors >= MAX_POLL_ERRORS:
                raise LoadTestError(f"polling run statuses keeps failing: {exc}") from exc
            finals = {}
        seen = _now()
        for run_id, (status, updated, reason) in finals.items():
            rec = in_flight.pop(run_id)
            rec.status, rec.finished, rec.reason, rec.observed = status, updated, reason, seen
            done.append(rec)
        if seen > deadline:
            for rec in in_flight.values():
                rec.status, rec.reason = "timeout", f"not final {opts.run_timeout_s:g} s into the drain"
                done.append(rec)
            break
        if progress is not None:
            progress.update(len(done), in_flight=len(in_flight))
        if in_flight:
            time.sleep(max(opts.poll_s, 0.01 * (len(in_flight) // STATUS_BATCH)))
    if progress is not None:
        progress.close()
    return PhaseResult(done, seeded.started_at, _now(), seeded.start_errors, seeded.max_in_flight)


# --- targets -------------------------------------------------------------------------------


@dataclass
class Worker:
    """A `flowcraft-worker` started by the harness."""

    process: subprocess.Popen[bytes]
    metrics_url: str
    log_path: Path
    argv: list[str]
    rusage: Any = None
    exit_code: int | None = None

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait (collecting the tree's rusage), SIGKILL if it overstays."""
        proc = self.process
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                self.rusage = rusage
                self.exit_code = os.waitstatus_to_exitcode(status)
                proc.returncode = self.exit_code
                return
            if time.monotonic() > deadline:
                log.warning("worker did not stop within %.0f s; killing it", timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)


def worker_command() -> list[str]:
    script = Path(sys.executable).with_name("flowcraft-worker")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from flowcraft_sqs.cli import worker_main; worker_main()"]


def start_worker(args: list[str], env: Mapping[str, str], metrics_url: str, log_dir: Path) -> Worker:
    log_path = log_dir / "worker.log"
    argv = [*worker_command(), *args]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env), start_new_session=True)
    return Worker(proc, metrics_url, log_path, argv)


def launch_worker(infra: Any, blueprint_ids: str, env: Mapping[str, str], work_dir: Path, *,
                  procs: int = 2, receivers: int = 1, worker_args: Sequence[str] = (),
                  log_level: str = "WARNING") -> Worker:
    """Start `flowcraft-worker --app flowcraft_sqs.loadtest.app` on `infra` (queue and
    tables), with its metrics on a free local port and its AWS calls metered into
    `work_dir/meter`. `env` must point boto3 at the endpoints (and credentials)."""
    from ..local.servers import free_port

    port = free_port()
    args = ["--app", APP_SPEC, "--procs", str(procs), "--receivers", str(receivers),
            "--queue-url", infra.queue_url, "--context-table", infra.context_table,
            "--status-table", infra.status_table, "--coordination-table", infra.coordination_table,
            "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
            "--metrics-interval", "3600", "--log-level", log_level, *worker_args]
    env = {**env, "FLOWCRAFT_LOADTEST_BLUEPRINTS": blueprint_ids,
           meter_mod.METER_DIR_ENV: str(work_dir / "meter"), PROC_DIR_ENV: str(work_dir / "procs")}
    return start_worker(args, env, f"http://127.0.0.1:{port}/metrics", work_dir)


def wait_worker_ready(worker: Worker, receivers: int, backend_memory: bool,
                      timeout_s: float = WORKER_READY_TIMEOUT_S) -> None:
    """Ready once every receiver has called ReceiveMessage (AWS), or the metrics port answers
    and every executor is alive (memory)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise LoadTestError(f"flowcraft-worker exited with code {worker.process.returncode} while "
                                f"starting; its log ends:\n{worker.log_tail()}")
        try:
            m = scrape([worker.metrics_url], timeout=1.0) or {}
            receives = m.get("aws:SQS.ReceiveMessage", 0.0)
            if backend_memory and m.get("receivers", 0) >= receivers:
                return
            if receives >= receivers:
                return
            last = f"{receives:.0f} ReceiveMessage calls so far"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise LoadTestError(f"flowcraft-worker not ready after {timeout_s:.0f} s ({last}); "
                        f"its log ends:\n{worker.log_tail()}")


def needs_netns(backend: str) -> bool:
    pair = BACKENDS.get(backend)
    if pair is None:
        return False
    from ..local import BACKENDS as SERVERS

    return any(SERVERS[name].binds_all_interfaces for name in set(pair))


@dataclass
class Harness:
    """The load generator's clients: start runs, poll statuses, read contexts; counted apart."""

    blueprint_id: str
    client: Any  # FlowcraftClient
    poller: StatusPoller
    reader: Any  # a DynamoDB client for the final contexts
    start_counter: Any
    poll_counter: Any
    start_meter: Any
    poll_meter: Any

    def start(self) -> str:
        return str(self.client.start_run(self.blueprint_id))


# --- the load test ---------------------------------------------------------------------------


@dataclass
class LoadTest:
    workload: Workload
    options: LoadOptions
    fleet: FleetTarget | None = None
    self_contained: SelfContained | None = None
    progress: bool | None = None  # None: when stderr is a terminal
    profile: str | None = None  # self-contained: py-spy the worker during the measured phase
    notes: list[str] = field(default_factory=list)

    def run(self) -> dict[str, Any]:
        self.options.validate()
        if (self.fleet is None) == (self.self_contained is None):
            raise LoadTestError("give either a fleet (--queue-url) or --self-contained")
        env = environment()
        meta: dict[str, Any] = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "command": command_line(), "environment": env}
        if self.self_contained is not None and self.self_contained.backend == "memory":
            raw = self._run_memory(self.self_contained)
        elif self.self_contained is not None:
            raw = self._run_self_contained(self.self_contained)
        else:
            assert self.fleet is not None
            raw = self._run_fleet(self.fleet, worker=None, sampler=None)
            raw["target"] = {"mode": "fleet", "queue_url": self.fleet.queue_url,
                             "backend": self.fleet.sqs_endpoint_url and "custom endpoint" or "aws",
                             "metrics_urls": list(self.fleet.metrics_urls)}
        env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        raw["meta"] = meta
        raw["workload"] = {**asdict(self.workload), "id": self.workload.id, "nodes_per_run": self.workload.nodes,
                           "hops_per_run": self.workload.hops, "description": self.workload.describe()}
        raw["options"] = asdict(self.options)
        raw.setdefault("notes", []).extend(self.notes)
        return raw

    # -- fleet (also used by self-contained once the worker runs) --

    def _harness(self, fleet: FleetTarget) -> Harness:
        from ..aws import RequestCounter, make_clients
        from ..client import FlowcraftClient

        start_counter, poll_counter = RequestCounter(), RequestCounter()
        start_meter, poll_meter = meter_mod.AwsMeter(), meter_mod.AwsMeter()
        starters = make_clients(fleet.region, sqs_endpoint_url=fleet.sqs_endpoint_url,
                                dynamodb_endpoint_url=fleet.dynamodb_endpoint_url,
                                max_pool_connections=max(10, 2 * self.options.starters), counter=start_counter)
        pollers = make_clients(fleet.region, sqs_endpoint_url=fleet.sqs_endpoint_url,
                               dynamodb_endpoint_url=fleet.dynamodb_endpoint_url, counter=poll_counter)
        for c in (starters.sqs, starters.dynamodb):
            start_meter.attach(c)
        poll_meter.attach(pollers.dynamodb)
        bp = blueprint(self.workload)
        client = FlowcraftClient(starters.sqs, starters.dynamodb, fleet.queue_url, fleet.context_table,
                                 fleet.status_table, blueprints={bp["id"]: bp})
        return Harness(bp["id"], client, StatusPoller(pollers.dynamodb, fleet.status_table), pollers.dynamodb,
                       start_counter, poll_counter, start_meter, poll_meter)

    def _seed(self, harness: Harness) -> tuple[PhaseResult, dict[str, Any]]:
        """The backlog, and the harness's start-request counts from before it was written."""
        before = {"start_requests": harness.start_counter.snapshot(),
                  "start_meter": harness.start_meter.snapshot()}
        assert self.options.runs is not None  # validate() requires --runs for a backlog
        seeded = seed_backlog(harness.start, self.options.runs, self.options.starters)
        return seeded, before

    @staticmethod
    def _finished_count(fleet: FleetTarget, worker: Worker | None) -> Callable[[], float] | None:
        """Runs finished by the worker started here (it starts from 0); None for a fleet,
        whose counters include runs from before this test."""
        if worker is None or not fleet.metrics_urls:
            return None
        urls = list(fleet.metrics_urls)
        return lambda: (scrape(urls, timeout=1.0) or {}).get("runs_finished", 0.0)

    def _run_fleet(self, fleet: FleetTarget, worker: Worker | None, sampler: ProcessSampler | None,
                   harness: Harness | None = None,
                   backlog: tuple[PhaseResult, dict[str, Any]] | None = None) -> dict[str, Any]:
        from ..stores.dynamodb import DynamoRunStore

        h = harness or self._harness(fleet)
        start_counter, poll_counter, start_meter, poll_meter = (h.start_counter, h.poll_counter,
                                                                h.start_meter, h.poll_meter)
        poller, start, bp = h.poller, h.start, {"id": h.blueprint_id}
        opts = self.options
        show = self.progress
        warm = None
        if opts.backlog and backlog is None:  # a running fleet drains it while it is written
            backlog = self._seed(h)
        if backlog is None and (opts.warmup_runs or opts.warmup_s):
            warm = drive(start, poller, opts, runs=opts.warmup_runs or None, duration_s=opts.warmup_s or None,
                         progress=Progress("warm-up", opts.warmup_runs or None, enabled=show))
            bad = [r for r in warm.records if r.status != "completed"]
            if bad:
                raise LoadTestError(f"{len(bad)} of {len(warm.records)} warm-up runs did not complete "
                                    f"(first: {bad[0].status}: {bad[0].reason}); is a worker running "
                                    f"with --app {APP_SPEC} and blueprint {bp['id']}?")
        if warm is not None:
            time.sleep(SETTLE_S)  # the warm-up's last deletes and counter copies land before the snapshot
        before = self._snapshot(fleet, sampler, start_counter, poll_counter, start_meter, poll_meter)
        spy = self._start_profile(worker)
        try:
            if backlog is not None:
                before.update(backlog[1])
                phase = follow_backlog(backlog[0], poller, opts,
                                       progress=Progress(f"{bp['id']} (backlog)", opts.runs, enabled=show),
                                       finished=self._finished_count(fleet, worker))
            else:
                phase = drive(start, poller, opts, runs=opts.runs, duration_s=opts.duration_s,
                              progress=Progress(f"{bp['id']}", opts.runs, enabled=show))
        finally:
            profile = self._stop_profile(spy)
        time.sleep(SETTLE_S)
        after = self._snapshot(fleet, sampler, start_counter, poll_counter, start_meter, poll_meter)
        completed = [r.run_id for r in phase.records if r.status == "completed"]
        states = DynamoRunStore(h.reader, fleet.context_table).load_runs(completed) if completed else {}
        runs = []
        for rec in phase.records:
            row = asdict(rec)
            state = states.get(rec.run_id)
            if state is not None:
                row["nodes"] = {k: list(v) for k, v in node_times(state.context).items()}
                row["item_bytes"] = sum(state.attr_sizes.values()) if state.attr_sizes else None
            else:
                row["nodes"] = {}
            runs.append(row)
        worker_part = self._worker_part(before, after, worker, sampler, fleet)
        return {
            "target": {},
            "runs": runs,
            "phase": {"started_at": phase.started_at, "ended_at": phase.ended_at,
                      "max_in_flight": phase.max_in_flight, "start_errors": phase.start_errors[:5],
                      "start_error_count": len(phase.start_errors),
                      "open_loop_start_lag_s": phase.start_lag_s, "backlog": backlog is not None},
            "warmup": {"runs": len(warm.records) if warm else 0,
                       "seconds": (warm.ended_at - warm.started_at) if warm else 0.0},
            "worker": worker_part,
            "client": {
                "start_requests": diff_counts(after["start_requests"], before["start_requests"]),
                "poll_requests": diff_counts(after["poll_requests"], before["poll_requests"]),
                "start_meter": meter_mod.subtract(after["start_meter"], before["start_meter"]),
                "poll_meter": meter_mod.subtract(after["poll_meter"], before["poll_meter"]),
                "cpu_s": after["harness_cpu"] - before["harness_cpu"],
            },
            "servers": {"cpu_s": {g: after["cpu"].get(g, 0.0) - before["cpu"].get(g, 0.0)
                                  for g in (after["cpu"] or {}) if g != "worker"}},
            "series": _series(sampler, phase.started_at, phase.ended_at) if sampler else None,
            "profile": profile,
        }

    def _start_profile(self, worker: Worker | None) -> Any:
        if not self.profile:
            return None
        if worker is None:
            self.notes.append("--profile needs --self-contained (the worker must run here); not profiled")
            return None
        from . import profile

        spy = profile.start(worker.process.pid, self.profile)
        if spy is None:
            self.notes.append("--profile: py-spy is not installed (pip install py-spy); not profiled")
        return spy

    def _stop_profile(self, spy: Any) -> dict[str, Any] | None:
        if spy is None or not self.profile:
            return None
        from . import profile

        err = profile.stop(spy)
        try:
            summary = profile.summarize(self.profile)
        except OSError:
            self.notes.append(f"--profile: py-spy wrote nothing ({err.strip()})")
            return None
        summary["path"] = self.profile
        return summary

    def _snapshot(self, fleet: FleetTarget, sampler: ProcessSampler | None, start_counter: Any,
                  poll_counter: Any, start_meter: Any, poll_meter: Any) -> dict[str, Any]:
        metrics = None
        if fleet.metrics_urls:
            try:
                metrics = scrape(fleet.metrics_urls)
            except OSError as exc:
                self.notes.append(f"could not read worker metrics ({exc}); worker request counts missing")
        return {
            "metrics": metrics,
            "meter": meter_mod.read_dir(fleet.meter_dir) if fleet.meter_dir else None,
            "cpu": sampler.cpu_seconds() if sampler else {},
            "start_requests": start_counter.snapshot(), "poll_requests": poll_counter.snapshot(),
            "start_meter": start_meter.snapshot(), "poll_meter": poll_meter.snapshot(),
            "harness_cpu": _self_cpu(), "t": _now(),
        }

    def _worker_part(self, before: Mapping[str, Any], after: Mapping[str, Any], worker: Worker | None,
                     sampler: ProcessSampler | None, fleet: FleetTarget) -> dict[str, Any] | None:
        part: dict[str, Any] = {"source": None}
        if after["metrics"] is not None:
            counts = diff_counts(after["metrics"], before["metrics"])
            part["source"] = "metrics port (aws.RequestCounter in each receiver)"
            part["counters"] = {k: v for k, v in counts.items() if not k.startswith("aws:")}
            part["requests"] = {k[4:]: v for k, v in counts.items() if k.startswith("aws:") and v}
        if after["meter"] is not None:
            part["meter"] = meter_mod.subtract(after["meter"], before["meter"] or {})
        if sampler is not None:
            part["cpu_s"] = after["cpu"].get("worker", 0.0) - before["cpu"].get("worker", 0.0)
            part["peak_rss_bytes"] = sampler.peak_total_rss.get("worker")
            part["peak_process_rss_bytes"] = sampler.peak_process_rss.get("worker")
            part["processes"] = len(sampler.processes.get("worker", ()))
        if part["source"] is None and "meter" not in part and sampler is None:
            self.notes.append("worker-side AWS requests were not measured: pass --metrics-url for each "
                              "worker (flowcraft-worker --metrics-port) to count them")
            return None
        return part

    # -- self-contained: local servers + infrastructure + worker --

    def _run_self_contained(self, sc: SelfContained) -> dict[str, Any]:
        from ..aws import make_clients
        from ..infra import delete_infrastructure, ensure_infrastructure
        from ..local import start_local_aws

        pair = BACKENDS.get(sc.backend)
        if pair is None and sc.backend not in BACKENDS:
            raise LoadTestError(f"unknown backend {sc.backend!r}; choose one of {', '.join(BACKENDS)}")
        assert pair is not None
        aws = start_local_aws(sqs_backend=pair[0], ddb_backend=pair[1])
        with contextlib.ExitStack() as stack:
            stack.callback(aws.stop)
            stack.enter_context(_environ(aws.env()))  # dummy credentials, if none are set
            env = dict(os.environ)
            clients = make_clients(aws.region, sqs_endpoint_url=aws.sqs_endpoint,
                                   dynamodb_endpoint_url=aws.dynamodb_endpoint)
            prefix = f"lt-{uuid.uuid4().hex[:10]}"
            infra = ensure_infrastructure(
                clients.sqs, clients.dynamodb, queue_name=f"{prefix}-jobs", dlq_name=f"{prefix}-dlq",
                context_table=f"{prefix}-contexts", status_table=f"{prefix}-statuses",
                coordination_table=f"{prefix}-coordination")
            stack.callback(_quietly, delete_infrastructure, clients.sqs, clients.dynamodb, infra)
            work_dir = Path(tempfile.mkdtemp(prefix="flowcraft-loadtest-"))
            fleet = FleetTarget(infra.queue_url, infra.context_table, infra.status_table, aws.region,
                                aws.sqs_endpoint, aws.dynamodb_endpoint, [], str(work_dir / "meter"))
            harness = self._harness(fleet)
            # A backlog is written before the worker starts, so the drain is measured whole.
            backlog = self._seed(harness) if self.options.backlog else None
            limits, notes = node_limit_args(sc)
            self.notes.extend(notes)
            worker = launch_worker(infra, self.workload.id, env, work_dir, procs=sc.procs,
                                   receivers=sc.receivers, worker_args=[*limits, *sc.worker_args],
                                   log_level=sc.log_level)
            metrics_url = worker.metrics_url
            stack.callback(self._finish_worker, worker, sc, work_dir)
            wait_worker_ready(worker, sc.receivers, backend_memory=False)
            groups = {"worker": worker.process.pid}
            for server in aws.servers:
                if server.pid:
                    groups[server.name] = server.pid
            sampler = ProcessSampler(groups).start()
            stack.callback(sampler.stop)
            fleet.metrics_urls = [metrics_url]
            raw = self._run_fleet(fleet, worker, sampler, harness, backlog)
            raw["target"] = {"mode": "self-contained", "backend": sc.backend, "sqs_server": pair[0],
                             "dynamodb_server": pair[1], "procs": sc.procs, "receivers": sc.receivers,
                             "worker_command": _redact(worker.argv), "worker_args": [*limits, *sc.worker_args]}
            worker.stop()
            raw["worker"] = raw["worker"] or {}
            raw["worker"].update(self._lifetime(worker, sampler))
            raw["worker"]["peak_rss_by_role"] = peak_rss_by_role(sampler.peak_rss_by_pid,
                                                                 read_proc_roles(work_dir / "procs"))
            return raw
        raise AssertionError("unreachable")  # pragma: no cover

    def _finish_worker(self, worker: Worker, sc: SelfContained, work_dir: Path) -> None:
        worker.stop()
        if sc.keep_logs:
            dest = Path(sc.keep_logs)
            dest.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                (dest / "worker.log").write_bytes(worker.log_path.read_bytes())
        if worker.exit_code not in (0, None):
            self.notes.append(f"the worker exited with code {worker.exit_code}; log tail:\n{worker.log_tail(1500)}")
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)

    @staticmethod
    def _lifetime(worker: Worker, sampler: ProcessSampler) -> dict[str, Any]:
        out: dict[str, Any] = {"exit_code": worker.exit_code}
        if worker.rusage is not None:
            # The supervisor reaps its children, so its rusage covers the whole tree.
            out["cpu_s_lifetime"] = worker.rusage.ru_utime + worker.rusage.ru_stime
        return out

    # -- in-memory backend: the runtime's own overhead --

    def _run_memory(self, sc: SelfContained) -> dict[str, Any]:
        from ..local.servers import free_port
        from .memseed import BLUEPRINT_ENV, REPORT_ENV, RUNS_ENV

        runs = self.options.runs or 1000
        work_dir = Path(tempfile.mkdtemp(prefix="flowcraft-loadtest-"))
        report_path = work_dir / "memory-report.json"
        reports = [report_path] + [Path(f"{report_path}.{i}") for i in range(1, sc.receivers)]
        port = free_port()
        limits, notes = node_limit_args(sc)
        self.notes.extend(notes)
        args = ["--app", APP_SPEC, "--backend", "memory", "--memory-seed", MEMSEED_SPEC,
                "--procs", str(sc.procs), "--receivers", str(sc.receivers),
                "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
                "--metrics-interval", "3600", "--log-level", sc.log_level, *limits, *sc.worker_args]
        env = {**os.environ, "FLOWCRAFT_LOADTEST_BLUEPRINTS": self.workload.id,
               RUNS_ENV: str(runs), BLUEPRINT_ENV: self.workload.id, REPORT_ENV: str(report_path),
               PROC_DIR_ENV: str(work_dir / "procs")}
        env.pop(meter_mod.METER_DIR_ENV, None)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        total_nodes = runs * sc.receivers * self.workload.nodes
        cpu_before = _self_cpu()
        worker = start_worker(args, env, metrics_url, work_dir)
        sampler = ProcessSampler({"worker": worker.process.pid}).start()
        spy = None
        profile = None
        first: tuple[float, float, float] | None = None  # (time, worker CPU s, committed) at the first commit
        try:
            wait_worker_ready(worker, sc.receivers, backend_memory=True)
            progress = Progress(f"{self.workload.id} (memory)", total_nodes, enabled=self.progress)
            deadline = time.monotonic() + self.options.run_timeout_s
            metrics: dict[str, float] = {}
            next_scrape = 0.0
            while not all(p.exists() for p in reports):
                if worker.process.poll() is not None:
                    raise LoadTestError(f"flowcraft-worker exited with code {worker.process.returncode}; "
                                        f"its log ends:\n{worker.log_tail()}")
                if time.monotonic() > deadline:
                    raise LoadTestError(f"the in-memory runs did not finish within {self.options.run_timeout_s:g} s")
                if time.monotonic() >= next_scrape:  # the supervisor serves each scrape: not too often
                    next_scrape = time.monotonic() + METRICS_SCRAPE_S
                    with contextlib.suppress(OSError):
                        metrics = scrape([metrics_url], timeout=1.0) or metrics
                if first is None and metrics.get("committed", 0) > 0:
                    # executors have booted and the pipeline runs: measure (and profile) from here
                    first = (_now(), sampler.cpu_seconds().get("worker", 0.0), metrics["committed"])
                    spy = self._start_profile(worker)
                progress.update(int(metrics.get("committed", 0)))
                time.sleep(0.05)
            progress.close()
            profile, spy = self._stop_profile(spy), None
            time.sleep(SETTLE_S)
            metrics = scrape([metrics_url]) or metrics
            cpu_end = sampler.cpu_seconds().get("worker", 0.0)
            datas = [orjson.loads(p.read_bytes()) for p in reports]
            roles = read_proc_roles(work_dir / "procs")
        finally:
            if spy is not None:
                self._stop_profile(spy)
            sampler.stop()
            self._finish_worker(worker, sc, work_dir)
        ended = _now()
        runs_out = [{**r, "start_call_s": 0.0, "scheduled": None, "observed": None}
                    for d in datas for r in d["runs"]]
        started = min((r["submitted"] for r in runs_out), default=ended)
        counters = {k: v for k, v in metrics.items() if not k.startswith("aws:")}
        if first is not None:  # per-node CPU over the nodes committed after the first one
            counters["committed"] = counters.get("committed", 0.0) - first[2]
        self.notes.append(
            "in-memory backend (`flowcraft-worker --backend memory`): every run is enqueued at once "
            "inside the receiver (a backlog drain, not a closed loop); no AWS requests. Run and hop "
            "latencies include the time spent queued behind the backlog; the throughput over the "
            "middle 80% of node completions is the headline figure. Worker CPU is counted from the "
            "first commit (after the executors booted) to the last.")
        return {
            "target": {"mode": "self-contained", "backend": "memory", "procs": sc.procs,
                       "receivers": sc.receivers, "worker_command": _redact(worker.argv),
                       "worker_args": [*limits, *sc.worker_args]},
            "runs": runs_out,
            "phase": {"started_at": started, "ended_at": ended, "backlog": True},
            "warmup": {"runs": 0, "seconds": 0.0},
            "worker": {"source": "metrics port", "counters": counters, "requests": {},
                       "cpu_s": cpu_end - (first[1] if first else 0.0),
                       "peak_rss_bytes": sampler.peak_total_rss.get("worker"),
                       "peak_process_rss_bytes": sampler.peak_process_rss.get("worker"),
                       "processes": len(sampler.processes.get("worker", ())),
                       "peak_rss_by_role": peak_rss_by_role(sampler.peak_rss_by_pid, roles),
                       **self._lifetime(worker, sampler),
                       "store_writes": sum(d.get("store_writes") or 0 for d in datas)},
            "client": {"cpu_s": _self_cpu() - cpu_before},
            "servers": {},
            "series": _series(sampler, started, ended),
            "profile": profile,
        }


def _series(sampler: ProcessSampler | None, start: float, end: float) -> dict[str, Any] | None:
    if sampler is None:
        return None
    rows = [r for r in sampler.series if start - 1 <= r[0] <= end + 1]
    groups = sorted({g for _, cpu, _ in rows for g in cpu})
    return {"t": [r[0] for r in rows],
            "cpu_s": {g: [r[1].get(g, 0.0) for r in rows] for g in groups},
            "rss_bytes": {g: [r[2].get(g, 0) for r in rows] for g in groups}}


def _redact(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


@contextlib.contextmanager
def _environ(changes: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # teardown of throwaway local resources
        log.debug("cleanup %s failed: %s", getattr(fn, "__name__", fn), exc)

