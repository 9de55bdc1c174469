"""The supervisor (arbiter): keeps R receivers and N executors alive. No AWS I/O here.

            supervisor (spawns, waits, reaps, restarts, enforces node timeouts, shuts down)
                 |  spawn + sentinels + pulse board (shared memory, one slot per child)
   +-------------+-----------------------------------+
   |                                                 |
receiver[r] (x R)                              executor[e] (x N = --procs)
  intake: SQS receive -> admit -> work queue (bounded) ----------> run node
  commit: <- results[r] <------------------------------------------ result (orjson)
          Engine.complete -> Batcher -> send, statuses, THEN delete
  lease:  LeaseBook -> ChangeMessageVisibilityBatch

The supervisor talks to children only through process sentinels, signals, the pulse board
(read), and by writing synthetic results on a receiver's result queue when an executor that
held its items is gone ("timeout", "died", "unstarted") or when all executors have stopped
during shutdown ("drained").

Exit codes are a protocol (errors.py): a child exiting with EXIT_BOOT, EXIT_CONFIG or
EXIT_APP_LOAD halts the supervisor with that code, since restarting cannot help; any other
exit while running is restarted, with backoff once a slot crashes repeatedly.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from typing import Any, Final

import orjson
import psutil

from . import metrics, pulse, systemd
from .config import SUPERVISOR_TICK_S, TIMEOUT_GRACE_S, Settings
from .errors import EXIT_APP_LOAD, EXIT_BOOT, EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from .executor import STOP, executor_main, synthetic_result
from .receiver import receiver_main
from .workqueue import WorkQueue

log = logging.getLogger("flowcraft_sqs.supervisor")

#: A child exiting with one of these halts the supervisor: restarting cannot fix it.
HALT_CODES: Final = {EXIT_BOOT: "could not boot", EXIT_CONFIG: "bad configuration",
                     EXIT_APP_LOAD: "could not load --app"}
HANDLED_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
#: Restarts of one slot are delayed once it crashed this often within the window (s) ...
BACKOFF_AFTER_CRASHES: Final = 3
CRASH_WINDOW_S: Final = 60.0
MAX_BACKOFF_S: Final = 30.0
#: ... and the supervisor gives up (so systemd sees a failed unit) at this many.
HALT_AFTER_CRASHES: Final = 10
#: After SIGABRT (a silent child dumps its stacks), SIGKILL follows this much later (s).
ABORT_GRACE_S: Final = 2.0
#: A fast stop (second SIGINT, SIGQUIT) gives receivers this long (s) to flush.
FAST_STOP_S: Final = 3.0
#: A reload gives up on an app that takes longer than this (s) to load.
APP_CHECK_TIMEOUT_S: Final = 60.0
#: The end of a failed app check's output that a reload logs (characters).
APP_CHECK_OUTPUT_CHARS: Final = 4000
#: Of the graceful timeout, receivers keep this long (s) at the end (at most a quarter of
#: it) to hand back and flush what executors still running nodes then leave behind.
RECEIVER_FINISH_S: Final = 2.0
#: Slack in the work and result queues beyond the admitted items: STOP sentinels, wake-ups,
#: synthetic results, results of a restarted receiver's predecessor.
QUEUE_SLACK: Final = 64
#: How long (s) the supervisor tries to put a gone executor's items on a full result queue.
REPORT_PUT_S: Final = 5.0


class HaltServer(Exception):
    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class Child:
    role: str  # "executor" | "receiver"
    index: int  # within its role
    slot: int  # in the pulse board and metrics board
    process: Any = None
    started_at: float = 0.0
    aborted_at: float | None = None
    timed_out: dict[int, pulse.HeldItem] | None = None  # item id -> the attempt we killed it for
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float = 0.0
    active: bool = True  # kept running; a standby receiver slot is inactive until a reload


@dataclass
class Reload:
    """A SIGHUP in progress (gunicorn's order): check that the app loads, start the new
    receivers beside the old, retire the old ones, then replace executors one at a time
    (each drains while the others keep taking work). Intake never stops, and a broken app
    on disk leaves the running children as they are."""

    check: AppCheck
    stage: str = "checking"  # -> "receivers" -> "executors"
    new_receivers: list[Child] = field(default_factory=list)
    executors: list[Child] = field(default_factory=list)
    replacing: Child | None = None
    replacing_pid: int = 0


QUEUE_NAME_PREFIX = "flowcraft-wq-"  # /dev/shm/flowcraft-wq-<supervisor pid>-work, -results<r>
SHM_DIR = "/dev/shm"


def remove_stale_queues() -> None:
    """Unlink work queues left by supervisors that were killed (SIGKILL skips cleanup).

    Their names carry the supervisor's pid; a queue whose supervisor is gone is stale.
    """
    with contextlib.suppress(OSError):
        for name in os.listdir(SHM_DIR):
            if not name.startswith(QUEUE_NAME_PREFIX):
                continue
            pid = name[len(QUEUE_NAME_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(SHM_DIR, name))
                    log.info("removed %s, left by a supervisor that was killed", name)


class Supervisor:
    """Keeps `settings.receivers` receivers and `settings.procs` executors alive. Decides
    three things only: who to start, who to stop, and in what order to shut down."""

    def __init__(self, settings: Settings, ctx: Any = None) -> None:
        self.settings = settings
        self.ctx = ctx or multiprocessing.get_context("spawn")  # receivers run threads: no fork
        self.children = [Child("executor", i, i) for i in range(settings.procs)]
        # Twice the receiver slots: a reload starts new receivers before the old ones retire.
        self.children += [Child("receiver", r, settings.procs + r, active=r < settings.receivers)
                          for r in range(2 * settings.receivers)]
        self.reload: Reload | None = None
        self.signals: deque[int] = deque()
        self.stopping: str | None = None  # None, "graceful" or "fast"
        self.exit_code = EXIT_OK
        self.watchdog = systemd.Watchdog()
        self.reported_at = time.monotonic()
        self.metrics_server: metrics.MetricsServer | None = None

    def run(self) -> int:
        """Start everything, supervise until told to stop, shut down; returns the exit code."""
        self._install_signal_handlers()
        try:
            self._start()
            systemd.notify(f"READY=1\nSTATUS=running {self.settings.procs} executors, "
                           f"{self.settings.receivers} receivers")
            while not self.stopping:
                self._wait(SUPERVISOR_TICK_S)
                self._handle_signals()
                self._reap_exited()
                self._stop_silent()
                self._enforce_deadlines()
                self._spawn_missing()
                self._advance_reload()
                self._report()
        except HaltServer as halt:
            log.critical("halting: %s", halt)
            self.exit_code, self.stopping = halt.code, self.stopping or "graceful"
        except Exception:  # a supervisor that stopped supervising must not stay up silently
            log.critical("the supervisor loop failed; stopping so that systemd restarts the "
                         "worker", exc_info=True)
            self.exit_code, self.stopping = EXIT_FAILURE, self.stopping or "graceful"
        return self._shutdown()

    # --- start ---------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        """Handlers only record the signal; the loop wakes through the wakeup fd."""
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._record_signal)

    def _record_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)  # NO logging here: it can deadlock on the logging lock

    def _start(self) -> None:
        s = self.settings
        admitted = s.admitted_per_receiver * s.receivers
        remove_stale_queues()
        prefix = f"{QUEUE_NAME_PREFIX}{os.getpid()}-"
        # Room for two generations of receivers' items: a reload runs both for a while.
        self.work = WorkQueue.create(max_messages=2 * admitted + s.procs + QUEUE_SLACK, name=f"{prefix}work")
        self.results = [WorkQueue.create(max_messages=2 * s.admitted_per_receiver + QUEUE_SLACK,
                                         name=f"{prefix}results{r}") for r in range(2 * s.receivers)]
        self.pulse_board = pulse.create_board(self.ctx, len(self.children))
        self.held_tables = pulse.create_held_tables(self.ctx, s.procs, s.concurrency)
        self.metrics_board = metrics.create_board(self.ctx, len(self.children) + 1)
        self.counters = metrics.MetricsRow(self.metrics_board, len(self.children))
        if s.metrics_port is not None:
            self.metrics_server = metrics.MetricsServer(self.metrics_board, s.metrics_host,
                                                        s.metrics_port, self._gauges).start()
            log.info("metrics on http://%s:%d/metrics", *self.metrics_server.address[:2])
        log.info("starting %d executors and %d receivers (app %s, admitting %d items per receiver)",
                 s.procs, s.receivers, s.app, s.admitted_per_receiver)
        for child in self.children:
            if child.active:
                self._spawn(child)

    def _spawn(self, child: Child) -> None:
        s, boards = self.settings, (self.pulse_board, self.metrics_board)
        if child.role == "executor":
            target: Any = executor_main
            args: tuple[Any, ...] = (s, child.index, self.work, self.results, self.pulse_board, self.held_tables,
                    self.metrics_board, os.getpid())
        else:
            target = receiver_main
            args = (s, child.index, self.work, self.results[child.index], *boards, os.getpid())
        child.process = self.ctx.Process(target=target, name=f"flowcraft {child.role}[{child.index}]",
                                         args=args)
        child.process.start()
        child.started_at, child.aborted_at, child.timed_out = time.monotonic(), None, None
        log.debug("spawned %s[%d] pid %d", child.role, child.index, child.process.pid)

    # --- the loop's steps ----------------------------------------------------------------

    def _wait(self, timeout: float) -> None:
        """Sleep until a child exits, a signal arrives, or `timeout` passes."""
        sentinels = [c.process.sentinel for c in self.children if c.process is not None]
        wait_for([self.wakeup_r, *sentinels], timeout)
        try:
            while os.read(self.wakeup_r, 512):
                pass
        except BlockingIOError:
            pass

    def _handle_signals(self) -> None:
        while self.signals:
            name = signal.Signals(self.signals.popleft()).name.lower()
            getattr(self, f"handle_{name[3:]}")()

    def handle_term(self) -> None:
        log.info("SIGTERM: stopping gracefully (at most %.0f s)", self.settings.graceful_timeout_s)
        self.stopping = self.stopping or "graceful"

    def handle_int(self) -> None:
        if self.stopping:
            self.handle_quit()
            return
        log.info("SIGINT: stopping gracefully; press Ctrl-C again to stop at once")
        self.stopping = "graceful"

    def handle_quit(self) -> None:
        log.info("stopping fast: executors are killed, their messages will be redelivered")
        self.stopping = "fast"

    def handle_hup(self) -> None:
        if self.reload is not None:
            log.info("SIGHUP: a reload is already under way (%s)", self.reload.stage)
            return
        log.info("SIGHUP: checking that %s loads before replacing any child", self.settings.app)
        self.reload = Reload(AppCheck.start(self.settings.app))

    def _reap_exited(self) -> None:
        for child in self.children:
            if child.process is not None and child.process.exitcode is not None:
                self._on_child_exit(child)

    def _on_child_exit(self, child: Child) -> None:
        process, code = child.process, child.process.exitcode
        self._report_held(child)
        for queue in (self.work, *self.results):
            queue.recover(process.pid)
        child.process = None
        log.log(*_exit_reason(child, code, bool(self.stopping) or not child.active))
        if self.stopping or not child.active:
            return
        if code in HALT_CODES and self.reload is not None and child in self.reload.new_receivers:
            self._abandon_reload(f"a new receiver {HALT_CODES[code]} (exit code {code})")
            return
        if code in HALT_CODES:
            raise HaltServer(f"{child.role}[{child.index}] {HALT_CODES[code]} (exit code {code})", code)
        if code != EXIT_OK and child.timed_out is None:
            self._note_crash(child)
        self.counters.inc("child_restarts")

    def _note_crash(self, child: Child) -> None:
        now = time.monotonic()
        child.crashes.append(now)
        while child.crashes and now - child.crashes[0] > CRASH_WINDOW_S * 5:
            child.crashes.popleft()
        recent = sum(1 for t in child.crashes if now - t <= CRASH_WINDOW_S)
        if len(child.crashes) >= HALT_AFTER_CRASHES:
            raise HaltServer(f"{child.role}[{child.index}] crashed {len(child.crashes)} times in "
                             f"{CRASH_WINDOW_S * 5:.0f} s", EXIT_FAILURE)
        if recent >= BACKOFF_AFTER_CRASHES:
            delay = min(MAX_BACKOFF_S, 0.5 * 2 ** (recent - BACKOFF_AFTER_CRASHES))
            child.restart_at = now + delay
            log.warning("%s[%d] is crash-looping; restarting it in %.1f s", child.role, child.index, delay)

    def _report_held(self, child: Child) -> None:
        """Tell receivers about every item a gone executor held: a timeout fails that
        attempt, a crash mid-node means redelivery, an item never started is handed back
        at once."""
        if child.role != "executor":
            return
        entries = self.settings.concurrency
        timed_out = child.timed_out or {}
        by_origin: dict[int, list[bytes]] = {}
        for held in pulse.read_held(self.held_tables, child.index, entries, settled=True):
            if held.item in timed_out:
                t = timed_out[held.item]
                data = synthetic_result(held.item, "timeout", t.attempt, t.timeout_ms)
            else:
                data = synthetic_result(held.item, "died" if held.attempt else "unstarted")
            by_origin.setdefault(held.origin, []).append(data)
        for origin, batch in by_origin.items():
            if 0 <= origin < len(self.results):
                self._put_all(self.results[origin], batch)
        pulse.reset_held(self.held_tables, child.index, entries)
        pulse.reset_slot(self.pulse_board, child.slot)

    @staticmethod
    def _put_all(queue: WorkQueue, batch: list[bytes]) -> None:
        sent, deadline = 0, time.monotonic() + REPORT_PUT_S
        while sent < len(batch) and time.monotonic() < deadline:
            sent += queue.put_many(batch[sent:], timeout=SUPERVISOR_TICK_S)
        if sent < len(batch):
            log.error("could not report %d items of a gone executor; their messages reappear "
                      "when their visibility runs out", len(batch) - sent)

    def _stop_silent(self) -> None:
        """A child whose pulse is older than --pulse-timeout gets SIGABRT, then SIGKILL.
        An executor running a node is exempt: its nodes' deadlines apply instead."""
        now = time.monotonic()
        for child in self.children:
            if child.process is None:
                continue
            view = pulse.read_slot(self.pulse_board, child.slot)
            own = view.pid == child.process.pid
            if own and child.role == "executor" and self._running(child):
                continue
            last = view.pulse if own else child.started_at
            if now - last > self.settings.pulse_timeout_s:
                self._escalate(child, now, f"silent for {now - last:.1f} s")

    def _running(self, child: Child) -> bool:
        held = pulse.read_held(self.held_tables, child.index, self.settings.concurrency)
        return any(h.attempt for h in held)

    def _escalate(self, child: Child, now: float, why: str) -> None:
        if child.aborted_at is None:
            log.error("%s[%d] pid %d %s; sending SIGABRT", child.role, child.index, child.process.pid, why)
            child.aborted_at = now
            _kill(child.process.pid, signal.SIGABRT)
        elif now - child.aborted_at > ABORT_GRACE_S:
            log.error("%s[%d] pid %d still there after SIGABRT; sending SIGKILL",
                      child.role, child.index, child.process.pid)
            _kill(child.process.pid, signal.SIGKILL)

    def _enforce_deadlines(self) -> None:
        """SIGKILL an executor holding a node attempt past its timeout (+ grace): the
        executor fails its own timed-out attempts, so this one's code kept the whole
        process from doing so (an async node that never awaits, C code holding the GIL).
        Its other items are reported as died or unstarted and run again."""
        now = time.monotonic()
        for child in self.children:
            if child.role != "executor" or child.process is None or child.timed_out is not None:
                continue
            held = pulse.read_held(self.held_tables, child.index, self.settings.concurrency)
            late = {h.item: h for h in held if h.deadline and now > h.deadline + TIMEOUT_GRACE_S}
            if late:
                first = next(iter(late.values()))
                log.warning("executor[%d] pid %d: %d node attempt(s) passed their timeout (e.g. "
                            "attempt %d, %g ms) and the executor did not stop them; killing it",
                            child.index, child.process.pid, len(late), first.attempt, first.timeout_ms)
                child.timed_out = late
                self.counters.inc("timeouts_enforced")
                _kill(child.process.pid, signal.SIGKILL)

    def _spawn_missing(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.active and child.process is None and not self.stopping and now >= child.restart_at:
                self._spawn(child)

    # --- reload (SIGHUP) -----------------------------------------------------------------

    def _advance_reload(self) -> None:
        """One step of a reload, if one is under way (see `Reload`)."""
        reload = self.reload
        if reload is not None:
            getattr(self, f"_reload_{reload.stage}")(reload)

    def _reload_checking(self, reload: Reload) -> None:
        outcome = reload.check.outcome()
        if outcome is None:
            return
        if outcome:
            log.error("SIGHUP: %s does not load; keeping the running children:\n%s",
                      self.settings.app, outcome)
            self.reload = None
            return
        standby = [c for c in self.children if c.role == "receiver" and not c.active]
        for child in standby:
            child.active, child.crashes, child.restart_at = True, deque(), 0.0
            self._spawn(child)
        reload.new_receivers, reload.stage = standby, "receivers"

    def _reload_receivers(self, reload: Reload) -> None:
        """Once every new receiver is up, the old ones stop receiving, finish and exit."""
        if not all(self._booted(c) for c in reload.new_receivers):
            return
        for child in self.children:
            if child.role == "receiver" and child.active and child not in reload.new_receivers:
                child.active = False
                if child.process is not None:
                    _kill(child.process.pid, signal.SIGTERM)
        reload.executors = [c for c in self.children if c.role == "executor"]
        reload.stage = "executors"

    def _reload_executors(self, reload: Reload) -> None:
        """Executors one at a time: each takes no more work, finishes what it holds, exits
        and is respawned with the new code while the others keep running nodes."""
        current = reload.replacing
        if current is not None:
            replaced = current.process is not None and current.process.pid != reload.replacing_pid
            if not (replaced and self._booted(current)):
                return
            reload.replacing = None
        if not reload.executors:
            log.info("SIGHUP: every child runs the reloaded app")
            self.reload = None
            return
        child = reload.executors.pop(0)
        if child.process is None:  # it is being restarted anyway, with the new code
            return
        reload.replacing, reload.replacing_pid = child, child.process.pid
        _kill(child.process.pid, signal.SIGTERM)

    def _abandon_reload(self, why: str) -> None:
        assert self.reload is not None
        log.error("SIGHUP: reload abandoned, %s; keeping the running children", why)
        for child in self.reload.new_receivers:
            child.active = False
            if child.process is not None:
                _kill(child.process.pid, signal.SIGTERM)
        self.reload = None

    def _booted(self, child: Child) -> bool:
        """Whether a child finished booting: it publishes its pid in its slot once ready."""
        if child.process is None:
            return False
        return pulse.read_slot(self.pulse_board, child.slot).pid == child.process.pid

    def _report(self) -> None:
        now = time.monotonic()
        self.watchdog.beat(now)
        if now - self.reported_at >= self.settings.metrics_interval_s:
            self.reported_at = now
            line = metrics.summary_line(metrics.totals(self.metrics_board))
            log.info("%s", line)
            systemd.notify(f"STATUS={line[:200]}")

    def _gauges(self) -> dict[str, float]:
        alive = [c for c in self.children if c.process is not None]
        return {"executors": sum(c.role == "executor" for c in alive),
                "receivers": sum(c.role == "receiver" for c in alive)}

    # --- shutdown ------------------------------------------------------------------------

    def _shutdown(self) -> int:
        """Stop intake, let executors finish, let receivers commit and hand back the rest,
        then SIGKILL whoever is left at the deadline."""
        systemd.notify("STOPPING=1")
        s = self.settings
        fast = self.stopping == "fast"
        deadline = time.monotonic() + (min(FAST_STOP_S, s.graceful_timeout_s) if fast else s.graceful_timeout_s)
        self._signal_role("receiver", signal.SIGTERM)
        if fast:
            self._signal_role("executor", signal.SIGKILL)
        else:  # executors take nothing more and finish what is in flight
            self._signal_role("executor", signal.SIGTERM)
            self.work.put_many([STOP] * s.procs, timeout=1.0)
        # Executors get the grace time less what receivers need to hand back and flush what
        # the executors leave, so a node longer than the grace time costs a redelivery, not
        # a message left leased.
        executors_deadline = deadline - min(RECEIVER_FINISH_S, (deadline - time.monotonic()) / 4)
        drained = False
        while any(c.process is not None for c in self.children) and time.monotonic() < deadline:
            self._wait(min(SUPERVISOR_TICK_S, max(0.0, deadline - time.monotonic())))
            self.watchdog.beat(time.monotonic())
            if self._fast_requested() and not fast:
                self.handle_quit()
                fast, deadline = True, min(deadline, time.monotonic() + FAST_STOP_S)
                self._signal_role("executor", signal.SIGKILL)
            if not drained and time.monotonic() >= executors_deadline:
                self._kill_late_executors()
            self._reap_exited()
            if not drained and not any(c.process for c in self.children if c.role == "executor"):
                drained = True
                self._tell_receivers_drained()
        self._kill_stragglers()
        log.info("stopped (exit code %d): %s", self.exit_code,
                 metrics.summary_line(metrics.totals(self.metrics_board)))
        self._close()
        return self.exit_code

    def _fast_requested(self) -> bool:
        fast = False
        while self.signals:
            fast |= self.signals.popleft() in (signal.SIGINT, signal.SIGQUIT)
        return fast

    def _tell_receivers_drained(self) -> None:
        """Executors are gone: whatever a receiver still waits for will never come."""
        for results in self.results:
            results.put(orjson.dumps({"drained": True}), timeout=1.0)

    def _signal_role(self, role: str, signum: int) -> None:
        for child in self.children:
            if child.role == role and child.process is not None:
                _kill(child.process.pid, signum)

    def _kill_late_executors(self) -> None:
        """Executors still running nodes near the deadline are killed; their items are
        reported to the receivers when they are reaped, and handed back to SQS."""
        for child in self.children:
            if child.role == "executor" and child.process is not None and child.aborted_at is None:
                log.error("executor[%d] pid %d still runs nodes at the graceful timeout; killing "
                          "it, its messages go back to the queue", child.index, child.process.pid)
                child.aborted_at = time.monotonic()
                _kill(child.process.pid, signal.SIGKILL)
                self.exit_code = self.exit_code or EXIT_FAILURE

    def _kill_stragglers(self) -> None:
        for child in self.children:
            if child.process is not None:
                log.error("%s[%d] pid %d did not stop within the graceful timeout; killing it",
                          child.role, child.index, child.process.pid)
                _kill(child.process.pid, signal.SIGKILL)
                child.process.join(5.0)
                child.process = None
                self.exit_code = self.exit_code or EXIT_FAILURE

    def _close(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.stop()
        for queue in (self.work, *self.results):
            queue.close()
            queue.unlink()
        signal.set_wakeup_fd(-1)
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)


class AppCheck:
    """`--app` loaded in a fresh interpreter, as a new child would load it; never blocks."""

    def __init__(self, process: subprocess.Popen[bytes], output: Any, started: float) -> None:
        self.process, self.output, self.started = process, output, started

    @classmethod
    def start(cls, app: str) -> AppCheck:
        output = tempfile.TemporaryFile()  # noqa: SIM115 (closed in outcome()); not a pipe, which a long traceback would fill
        code = "import sys; from flowcraft_sqs.app import load_app; load_app(sys.argv[1])"
        process = subprocess.Popen([sys.executable, "-c", code, app], stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT)
        return cls(process, output, time.monotonic())

    def outcome(self) -> str | None:
        """None while it runs; "" when the app loaded; else what went wrong."""
        code = self.process.poll()
        if code is None and time.monotonic() - self.started < APP_CHECK_TIMEOUT_S:
            return None
        if code is None:
            self.process.kill()
            self.process.wait()
            return f"loading it took more than {APP_CHECK_TIMEOUT_S:.0f} s"
        self.output.seek(0)
        text = self.output.read().decode(errors="replace")
        self.output.close()
        return "" if code == 0 else (text.strip()[-APP_CHECK_OUTPUT_CHARS:] or f"exit code {code}")


def _exit_reason(child: Child, code: int, stopping: bool) -> tuple[int, str]:
    """(log level, message) for a child's exit, by cause."""
    who = f"{child.role}[{child.index}]"
    if child.timed_out is not None:
        return logging.WARNING, f"{who} killed for a node timeout; replacing it"
    if code == -signal.SIGKILL:
        return logging.ERROR, f"{who} was killed (SIGKILL); perhaps out of memory?"
    if code < 0:
        return logging.ERROR, f"{who} died of signal {signal.Signals(-code).name}"
    if code == EXIT_OK:
        return (logging.INFO if stopping else logging.DEBUG), f"{who} exited"
    return logging.ERROR, f"{who} exited with code {code}"


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
        os.kill(pid, signum)
