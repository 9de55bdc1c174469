"""Bounded chaos: contract §4 and the bad-input policy under long, randomised faults.

    .venv/bin/python benchmarks/chaos.py                       # every scenario, ~10 min
    .venv/bin/python benchmarks/chaos.py --only duplicates,sigterm --runs 50

Scenarios: kill-children (SIGKILL random executors and receivers every ~2 s), kill-supervisor,
sigterm, duplicates (every send forwarded twice), long-node-two-hosts, outage-10s (both
endpoints refuse connections for 10 s), connection-drops (1-3 s resets every 2-4 s),
throttling (20% of requests), malformed-10k (10,000 bad messages in a good load).

Loopback only: a local AWS-compatible server (ministack, `flowcraft_sqs.local`), real
`python -m flowcraft_sqs worker` processes, real signals, and `FaultProxy` between every
client and the server. Each scenario gets a fresh queue + DLQ + tables, stops by itself
(faults end, then runs get a bounded time to finish), and is judged from the tables:

- runs lost: runs without a `completed` status and the right output (join.v = 6x) when the
  scenario ends; a run stuck `running` with an empty queue counts as lost at once.
- nodes committed twice: a node for which two different execution tokens are seen as
  committed (stored output, status item, successors' inputs): see `chaosapp.judge`.
- duplicate executions: executions beyond the first of each (run, node), from the nodes'
  own O_APPEND execution log. Allowed by §4 when a process dies before its commit.

Writes benchmarks/CHAOS.md (the table, the command, the date) and benchmarks/out/chaos.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flowcraft_sqs.infra import delete_infrastructure, ensure_infrastructure  # noqa: E402
from flowcraft_sqs.local import start_local_aws  # noqa: E402
from flowcraft_sqs.testing import chaosapp  # noqa: E402
from flowcraft_sqs.testing.fleet import Fleet, WorkerProcess, wait_until  # noqa: E402

OUT_MD = ROOT / "benchmarks" / "CHAOS.md"
OUT_JSON = ROOT / "benchmarks" / "out" / "chaos.json"
#: CHAOS.md below this line is written by people (what the numbers mean, bugs found) and kept.
NOTES_MARKER = "<!-- notes below are kept when chaos.py rewrites this file -->"
#: Worker flags for every scenario: short visibility so that redeliveries come within seconds.
FAST = ("--visibility-timeout", "6", "--wait-time", "1", "--graceful-timeout", "10")
#: Repeated faults (kills, connection drops) stop after this long (s) at most.
FAULT_PHASE_S = 120.0
#: After the faults end, runs get at most this long to finish (s) ...
SETTLE_S = 120.0
#: ... and a load that made no progress this long with an empty queue is over (s).
STALL_S = 30.0
KILL_EVERY_S = (1.5, 2.5)
#: The supervisor halts after 10 crashes of one slot in 5 min (supervisor.HALT_AFTER_CRASHES):
#: the kill scenario stays below that per slot, as a crash loop is not what it tests.
MAX_KILLS_PER_SLOT = 7
#: Receivers cannot be told apart by slot from outside; all of them together stay below 10.
MAX_RECEIVER_KILLS = 9


@dataclass
class Row:
    scenario: str
    load: str
    faults: str
    runs_lost: int = 0
    committed_twice: int = 0
    duplicate_executions: int = 0
    wall_s: float = 0.0
    checks: list[str] = field(default_factory=list)
    passed: bool = True
    error: str | None = None


class Scenario:
    """One scenario's fleet, load and verdict; `run()` is overridden per scenario."""

    name = ""
    blueprint = "diamond-slow"

    def __init__(self, aws: Any, clients: tuple[Any, Any], workdir: Path, runs: int, seed: int) -> None:
        self.aws, self.clients, self.workdir, self.runs = aws, clients, workdir, runs
        self.rng = random.Random(seed)
        prefix = f"chaos-{self.name}-{uuid.uuid4().hex[:6]}"
        self.infra = ensure_infrastructure(*clients, queue_name=f"{prefix}-q", dlq_name=f"{prefix}-dlq",
                                           context_table=f"{prefix}-c", status_table=f"{prefix}-s",
                                           coordination_table=f"{prefix}-k", visibility_timeout_s=6)
        self.fleet = Fleet(workdir, self.infra, aws.env(), seed=seed, record=self.record)
        self.row = Row(self.name, "", "")
        self._unfinished: int | None = None
        self._moved_at = time.monotonic()

    def record(self, target: str) -> bool:
        return False

    def check(self, ok: bool, text: str) -> None:
        self.row.checks.append(("" if ok else "FAILED: ") + text)
        self.row.passed &= ok

    def settle(self, run_ids: list[str], timeout: float = SETTLE_S) -> list[str]:
        """Wait for runs to end; returns those still not final (given up on: lost)."""
        deadline, last_change, pending = time.monotonic() + timeout, time.monotonic(), list(run_ids)
        while pending and time.monotonic() < deadline:
            still = self.fleet.unfinished(pending)
            if len(still) < len(pending):
                last_change = time.monotonic()
            pending = still
            if pending and time.monotonic() - last_change > STALL_S and self.fleet.queue_counts() == (0, 0):
                break  # nothing queued, nothing in flight, nothing moving: these runs are stuck
            time.sleep(0.5)
        return pending

    def under_load(self, run_ids: list[str], until: float) -> bool:
        """Whether to keep injecting faults: runs are still moving, and the fault phase's
        deadline has not passed. Stuck runs (no progress, nothing queued) end it early."""
        unfinished = len(self.fleet.unfinished(run_ids))
        now = time.monotonic()
        if unfinished != self._unfinished:
            self._unfinished, self._moved_at = unfinished, now
        stalled = now - self._moved_at > STALL_S and self.fleet.queue_counts() == (0, 0)
        return unfinished > 0 and now < until and not stalled

    def judge(self, run_ids: list[str]) -> None:
        verdict = self.fleet.verdict(run_ids)
        self.row.runs_lost = len(verdict.lost)
        self.row.committed_twice = len(verdict.committed_twice)
        self.row.duplicate_executions = verdict.duplicate_executions
        self.check(verdict.ok, verdict.summary())
        if verdict.problems:
            self.row.checks.append("lost: " + "; ".join(verdict.problems[:3]))

    def run(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.fleet.close()
        with contextlib.suppress(Exception):
            delete_infrastructure(*self.clients, self.infra)


class KillChildren(Scenario):
    name = "kill-children"

    def run(self) -> None:
        self.row.load = f"{self.runs} diamond runs (5 nodes of 50 ms), --procs 4 --receivers 2"
        run_ids = self.fleet.start(self.blueprint, self.runs)
        worker = self.fleet.worker(*FAST, "--procs", "4", "--receivers", "2")
        worker.wait_ready(4)
        kills: Counter[str] = Counter()
        until = time.monotonic() + FAULT_PHASE_S
        while self.under_load(run_ids, until) and worker.alive():
            time.sleep(self.rng.uniform(*KILL_EVERY_S))
            victim = self._pick(worker, kills)
            if victim is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim[1], signal.SIGKILL)
                    kills[victim[0]] += 1
        executors = sum(n for k, n in kills.items() if k.startswith("executor"))
        self.row.faults = (f"SIGKILL a random executor or receiver every {KILL_EVERY_S[0]}-{KILL_EVERY_S[1]} s "
                           f"until the load ended: {executors} executors, {kills['receiver']} receivers killed")
        lost = self.settle(run_ids)
        self.check(worker.alive(), "supervisor alive after every kill")
        self.check(not lost, f"{len(run_ids) - len(lost)}/{len(run_ids)} runs final")
        self.judge(run_ids)

    def _pick(self, worker: WorkerProcess, kills: Counter[str]) -> tuple[str, int] | None:
        """A random live executor or receiver, as (kill-count key, pid). Executors are known by
        their `executor[i] pid=N ... executor ready` log lines; the resource tracker is spared;
        the other children are receivers (which log nothing at start)."""
        executors: dict[int, str] = {}
        for line in worker.log().splitlines():
            if "executor ready" in line and " executor[" in line and "pid=" in line:
                slot = line[line.index(" executor[") + 1:].split()[0]
                executors[int(line[line.index("pid=") + 4:].split()[0])] = slot
        choices = []
        for child in worker.children():
            with contextlib.suppress(psutil.Error):
                if not _alive(child) or "resource_tracker" in " ".join(child.cmdline()):
                    continue
                key = executors.get(child.pid, "receiver")
                limit = MAX_KILLS_PER_SLOT if key != "receiver" else MAX_RECEIVER_KILLS
                if kills[key] < limit:
                    choices.append((key, child.pid))
        return self.rng.choice(choices) if choices else None


class KillSupervisor(Scenario):
    name = "kill-supervisor"

    def run(self) -> None:
        self.row.load = f"{self.runs} diamond runs (5 nodes of 50 ms), --procs 4"
        self.row.faults = "SIGKILL the supervisor at ~30% of executions, then start a new worker"
        run_ids = self.fleet.start(self.blueprint, self.runs)
        first = self.fleet.worker(*FAST, "--procs", "4")
        wait_until(lambda: len(self.fleet.executions()) >= self.runs * 5 * 0.3, 120, "30% of the load")
        children = first.children()
        first.signal(signal.SIGKILL)
        first.wait(5)
        killed_at = time.monotonic()
        while any(_alive(c) for c in children) and time.monotonic() - killed_at < 10:
            time.sleep(0.05)
        orphans = [c.pid for c in children if _alive(c)]
        gone_s = time.monotonic() - killed_at
        self.check(not orphans, f"{len(children)} children gone {gone_s:.2f} s after the supervisor "
                                f"(orphans after 5 s: {len(orphans) if gone_s > 5 else 0})")
        self.check(gone_s <= 5, "no orphan after 5 s")
        self.fleet.worker(*FAST, "--procs", "4")
        lost = self.settle(run_ids)
        self.check(not lost, f"{len(run_ids) - len(lost)}/{len(run_ids)} runs final after the restart")
        self.judge(run_ids)


class Sigterm(Scenario):
    name = "sigterm"
    graceful_s = 10

    def run(self) -> None:
        self.row.load = f"{self.runs} diamond runs (5 nodes of 50 ms), --procs 4"
        self.row.faults = f"SIGTERM at ~30% of executions (--graceful-timeout {self.graceful_s}), then a new worker"
        run_ids = self.fleet.start(self.blueprint, self.runs)
        first = self.fleet.worker(*FAST, "--procs", "4")
        wait_until(lambda: len(self.fleet.executions()) >= self.runs * 5 * 0.3, 120, "30% of the load")
        started = time.monotonic()
        first.signal(signal.SIGTERM)
        code = first.wait(self.graceful_s + 5)
        exit_s = time.monotonic() - started
        visible, in_flight = self.fleet.queue_counts()
        self.check(code == 0 and exit_s <= self.graceful_s + 1,
                   f"exit code {code} {exit_s:.2f} s after SIGTERM (limit {self.graceful_s + 1} s)")
        self.check(in_flight == 0, f"at exit: {visible} messages visible, {in_flight} in flight (0 expected)")
        self.check(bool(self.fleet.unfinished(run_ids)), "the load outlasted the first worker")
        self.fleet.worker(*FAST, "--procs", "4")
        lost = self.settle(run_ids)
        self.check(not lost, f"{len(run_ids) - len(lost)}/{len(run_ids)} runs final after the restart")
        self.judge(run_ids)


class Duplicates(Scenario):
    name = "duplicates"
    blueprint = "diamond"

    def record(self, target: str) -> bool:
        return target == "DynamoDB_20120810.UpdateItem"

    def run(self) -> None:
        self.row.load = f"{self.runs} diamond runs (instant nodes), --procs 2"
        self.row.faults = "every SendMessage(Batch) forwarded twice (client and worker)"
        self.fleet.duplicate_sends()
        run_ids = self.fleet.start(self.blueprint, self.runs)
        worker = self.fleet.worker(*FAST, "--procs", "2")
        lost = self.settle(run_ids)
        self.check(not lost and worker.alive(), f"{len(run_ids) - len(lost)}/{len(run_ids)} runs final")
        writes = self._final_status_writes()
        twice = sum(1 for r in run_ids if writes[r] != 1)
        self.check(twice == 0, f"final status written exactly once for {len(run_ids) - twice}/{len(run_ids)} runs")
        joins = Counter(e.run_id for e in self.fleet.executions() if e.node_id == "join")
        self.check(all(joins[r] == 1 for r in run_ids),
                   f"joins executed more than once: {sum(1 for r in run_ids if joins[r] > 1)}")
        self.judge(run_ids)
        self.check(self.row.duplicate_executions == 0, "one execution per node despite every message twice")

    def _final_status_writes(self) -> Counter[str]:
        accepted: Counter[str] = Counter()
        for exchange in self.fleet.ddb_proxy.exchanges():
            if exchange.status != 200:
                continue
            request = exchange.request_json()
            status = request.get("ExpressionAttributeValues", {}).get(":status", {}).get("S")
            if request.get("TableName") == self.infra.status_table and status in ("completed", "failed", "cancelled"):
                accepted[request["Key"]["runId"]["S"]] += 1
        return accepted


class LongNodeTwoHosts(Scenario):
    name = "long-node-two-hosts"
    runs_long = 4

    def run(self) -> None:
        self.row.load = f"{self.runs_long} runs of one 7 s node; two workers (--procs 2 each)"
        self.row.faults = "visibility timeout 2 s: each node outlives it 3.5x (lease extension)"
        workers = [self.fleet.worker(*FAST, "--procs", "2", "--visibility-timeout", "2") for _ in range(2)]
        for worker in workers:
            worker.wait_ready(2)
        run_ids = self.fleet.start("long", self.runs_long)
        lost = self.settle(run_ids, 60)
        statuses = self.fleet.status_items(run_ids)
        completed = [r for r in run_ids if (statuses[r] or {}).get("status") == "completed"]
        ran = Counter(e.run_id for e in self.fleet.executions())
        hosts = {e.pid for e in self.fleet.executions()}
        self.row.runs_lost = len(run_ids) - len(completed)
        self.row.duplicate_executions = sum(n - 1 for n in ran.values() if n > 1)
        self.check(not lost and len(completed) == len(run_ids), f"{len(completed)}/{len(run_ids)} completed")
        self.check(all(ran[r] == 1 for r in run_ids), f"executions per node: {sorted(ran.values())} "
                                                       f"(in {len(hosts)} executor processes)")


class Outage(Scenario):
    name = "outage-10s"
    seconds = 10

    def run(self) -> None:
        self.row.load = f"{self.runs} diamond runs (5 nodes of 50 ms), --procs 4"
        self.row.faults = (f"SQS + DynamoDB refuse connections for {self.seconds} s at ~30% of executions "
                           "(in-flight requests cut)")
        run_ids = self.fleet.start(self.blueprint, self.runs)
        worker = self.fleet.worker(*FAST, "--procs", "4")
        wait_until(lambda: len(self.fleet.executions()) >= self.runs * 5 * 0.3, 120, "30% of the load")
        self.fleet.down(self.seconds)
        wait_until(lambda: not self.fleet.proxy.is_down, self.seconds + 5, "the endpoints to come back")
        lost = self.settle(run_ids)
        self.check(worker.alive(), "worker survived the outage")
        self.check(not lost, f"{len(run_ids) - len(lost)}/{len(run_ids)} runs final")
        errors = [line for line in worker.log().splitlines() if " ERROR " in line]
        self.row.checks.append(f"{len(errors)} ERROR lines, e.g. {errors[0][24:220] if errors else '-'}")
        self.judge(run_ids)


class ConnectionDrops(Scenario):
    name = "connection-drops"
    every_s = (2.0, 4.0)
    down_s = (1.0, 3.0)

    def run(self) -> None:
        self.row.load = f"{self.runs} diamond runs (5 nodes of 50 ms), --procs 2"
        run_ids = self.fleet.start(self.blueprint, self.runs)
        worker = self.fleet.worker(*FAST, "--procs", "2")
        drops, until = 0, time.monotonic() + FAULT_PHASE_S
        while self.under_load(run_ids, until):
            time.sleep(self.rng.uniform(*self.every_s))
            seconds = self.rng.uniform(*self.down_s)
            self.fleet.down(seconds, mode="reset")
            drops += 1
            wait_until(lambda: not self.fleet.proxy.is_down, seconds + 5, "the endpoints to come back")
        self.row.faults = (f"{drops} outages of {self.down_s[0]:.0f}-{self.down_s[1]:.0f} s every "
                           f"{self.every_s[0]:.0f}-{self.every_s[1]:.0f} s until the load ended: "
                           "connections reset, in-flight requests cut")
        lost = self.settle(run_ids)
        self.check(worker.alive(), "worker survived every outage")
        self.check(not lost, f"{len(run_ids) - len(lost)}/{len(run_ids)} runs final")
        self.judge(run_ids)


class Throttling(Scenario):
    name = "throttling"
    fraction = 0.2

    def run(self) -> None:
        runs = max(10, self.runs // 2)
        self.row.load = f"{runs} diamond runs (instant nodes), --procs 4 --receivers 2"
        run_ids = self.fleet.start("diamond", runs)
        self.fleet.throttle(self.fraction)
        worker = self.fleet.worker(*FAST, "--procs", "4", "--receivers", "2")
        lost = self.settle(run_ids, 240)
        requests = sum(p.requests().total() for p in self.fleet.proxies)
        throttled = sum(p.faults()["throttled"] for p in self.fleet.proxies)
        self.row.faults = (f"{self.fraction:.0%} of SQS and DynamoDB requests answered with throttling "
                           f"errors ({throttled} of {requests} requests)")
        self.check(worker.alive(), "worker alive")
        self.check(not lost, f"{len(run_ids) - len(lost)}/{len(run_ids)} runs final")
        self.judge(run_ids)


class Malformed(Scenario):
    name = "malformed-10k"
    blueprint = "diamond"
    count = 10_000

    def run(self) -> None:
        self.row.load = f"{self.runs} diamond runs (instant nodes), --procs 2"
        half = self.runs // 2
        good = self.fleet.start(self.blueprint, half)
        victims = [self._sacrificial(i) for i in range(5)]
        bad = chaosapp.bad_messages(self.count, good_runs=good, sacrificial_runs=victims, seed=7)
        sent = chaosapp.send_bad_messages(self.fleet.direct_sqs, self.infra.queue_url, bad)
        good += self.fleet.start(self.blueprint, self.runs - half, first_x=half)
        categories = Counter(m.category for m in sent.values())
        self.row.faults = f"{len(sent)} malformed messages mixed in: " + ", ".join(
            f"{n} {c}" for c, n in sorted(categories.items()))
        worker = self.fleet.worker(*FAST, "--procs", "2")
        lost = self.settle(good + victims, 300)
        with contextlib.suppress(AssertionError):
            wait_until(lambda: self.fleet.queue_counts() == (0, 0), 60, "the queue to drain", 0.5)
        dropped = chaosapp.dropped_messages(worker.log())
        missing = [mid for mid in sent if mid not in dropped]
        wrong = [mid for mid, m in sent.items() if mid in dropped and m.fault not in dropped[mid]]
        dlq = self.fleet.queue_counts(self.infra.dlq_url)
        self.check(worker.alive() and "CRITICAL" not in worker.log(), "worker alive, no CRITICAL line")
        self.check(not lost, f"{len(good) - len([r for r in lost if r in good])}/{len(good)} good runs final")
        self.check(not missing and not wrong, f"bad messages dropped with an ERROR naming the fault: "
                                              f"{len(sent) - len(missing) - len(wrong)}/{len(sent)}")
        self.check(dlq == (0, 0) and self.fleet.queue_counts() == (0, 0), f"queue and DLQ empty (DLQ: {dlq})")
        failed = [r for r in victims if (self.fleet.statuses.get(r) or {}).get("status") == "failed"]
        self.check(len(failed) == len(victims), f"runs named by an unknown-blueprint job failed: {len(failed)}/{len(victims)}")
        self.judge(good)

    def _sacrificial(self, i: int) -> str:
        from flowcraft_sqs import protocol

        run_id = f"sacrificial-{i}-{uuid.uuid4().hex[:8]}"
        bp = self.fleet.client.blueprints["diamond"]
        self.fleet.store.create_run(protocol.new_run(bp, run_id, {"x": 1}, time.time()))
        self.fleet.statuses.start(run_id, time.time())
        return run_id


SCENARIOS: dict[str, type[Scenario]] = {s.name: s for s in (
    KillChildren, KillSupervisor, Sigterm, Duplicates, LongNodeTwoHosts, Outage, ConnectionDrops, Throttling,
    Malformed)}


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_scenario(cls: type[Scenario], aws: Any, clients: tuple[Any, Any], runs: int, seed: int) -> Row:
    workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{cls.name}-"))
    started = time.monotonic()
    scenario: Scenario | None = None
    try:
        scenario = cls(aws, clients, workdir, runs, seed)
        scenario.run()
        row = scenario.row
    except Exception as exc:  # a scenario that breaks is reported, and the others still run
        row = scenario.row if scenario else Row(cls.name, "", "")
        row.passed, row.error = False, f"{type(exc).__name__}: {exc}"
    finally:
        if scenario is not None:
            scenario.close()
    row.wall_s = round(time.monotonic() - started, 1)
    print(f"[{row.scenario}] {'ok' if row.passed else 'FAILED'} in {row.wall_s} s: lost {row.runs_lost}, "
          f"committed twice {row.committed_twice}, duplicate executions {row.duplicate_executions}; "
          f"{'; '.join(row.checks)}{' ERROR ' + row.error if row.error else ''} (logs: {workdir})", flush=True)
    return row


def markdown(rows: list[Row], command: str, total_s: float) -> str:
    lines = [
        "# Chaos results",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {platform.node() or 'this machine'} "
        f"({psutil.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}), "
        f"local ministack on 127.0.0.1 behind `flowcraft_sqs.testing.faults.FaultProxy`; "
        f"total {total_s / 60:.1f} min.",
        "",
        f"    {command}",
        "",
        "Columns: *runs lost* = runs not `completed` with the right output when the scenario ended; "
        "*committed twice* = nodes with two different execution tokens seen as committed (stored "
        "output, status item, successors' inputs: `chaosapp.judge`); *duplicate executions* = "
        "executions beyond the first per node, from the nodes' own execution log (allowed by "
        "contract §4 only when a process died before its commit).",
        "",
        "| scenario | load | faults | runs lost | nodes committed twice | duplicate executions | wall time | result |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        result = "pass" if r.passed else "**FAIL**"
        lines.append(f"| {r.scenario} | {r.load} | {r.faults} | {r.runs_lost} | {r.committed_twice} | "
                     f"{r.duplicate_executions} | {r.wall_s:.0f} s | {result} |")
    lines += ["", "## Checks per scenario", ""]
    for r in rows:
        lines.append(f"- **{r.scenario}**: " + "; ".join(r.checks + ([f"error: {r.error}"] if r.error else [])))
    notes = OUT_MD.read_text().partition(NOTES_MARKER)[2] if OUT_MD.exists() else ""
    return "\n".join(lines) + "\n\n" + NOTES_MARKER + (notes or "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--runs", type=int, default=200, help="diamond runs per scenario")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-write", action="store_true", help="print only; leave CHAOS.md alone")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    import boto3

    command = " ".join(["$ .venv/bin/python benchmarks/chaos.py", *sys.argv[1:]])
    started = time.monotonic()
    rows: list[Row] = []
    with start_local_aws() as aws:
        env = aws.env()
        session = boto3.session.Session(aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "test"),
                                        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "test"),
                                        region_name=aws.region)
        clients = (session.client("sqs", endpoint_url=aws.sqs_endpoint),
                   session.client("dynamodb", endpoint_url=aws.dynamodb_endpoint))
        for name in chosen:
            rows.append(run_scenario(SCENARIOS[name], aws, clients, args.runs, args.seed))
    total = time.monotonic() - started
    text = markdown(rows, command, total)
    print(text)
    if not args.no_write:
        OUT_MD.write_text(text)
        OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
        OUT_JSON.write_text(json.dumps({"command": command, "total_s": round(total, 1),
                                        "rows": [asdict(r) for r in rows]}, indent=2))
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
