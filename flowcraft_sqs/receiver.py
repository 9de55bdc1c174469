"""Receiver processes: each owns its SQS messages from receive to delete.

    intake thread:  wait for room -> ReceiveMessage (long poll) -> Engine.plan_messages
                      -> Execute: work item ----------------------> work queue -> executors
                      -> replay / skip / bad message: effects ---+
    commit thread:  results[r] <--------------------------------|----------- executors, supervisor
                      -> Engine.complete -> next node locally (local continuation) or
                      -> Batcher -> flush: SendMessageBatch, statuses, DeleteMessageBatch
    lease thread:   LeaseBook.due -> ChangeMessageVisibilityBatch; touch long runs' status

Admission: a receiver has at most `Settings.admitted_per_receiver` work items queued or
running (its share of the executors' slots, `--procs` x `--concurrency`, plus prefetch),
and at most `Settings.queued_per_receiver` waiting untaken in the work queue, and asks SQS
only for as many messages as it has room for. Executors take only what they have free
slots for, so untaken items mean full executors. Every message it holds is one whose
visibility clock runs and that no other machine can take, so it holds no more than its
executors can start soon; the lease thread extends all of them.

The protocol lives in `Engine` (plan, complete) and `engine.perform` (the durable order:
state is written, then successors are sent, then the message is deleted); this module only
schedules those calls. A failure anywhere leaves the message undeleted: SQS redelivers it,
and the engine replays a committed node instead of running it again.

Graceful stop (SIGTERM from the supervisor): intake stops receiving; commit and lease go on
until every admitted item has a result, or until the supervisor reports that the executors
are gone (`{"drained": true}`), after which items still without a result never started and
their messages are made visible again (visibility 0). Then the last batch is flushed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from . import metrics, pulse
from .app import AppLoadError, load_app
from .batching import Batcher
from .config import PULSE_INTERVAL_S, Settings
from .continuation import chain_resends, next_locals
from .engine import Effects, Engine, Execute, Planned, perform
from .errors import EXIT_APP_LOAD, EXIT_BOOT, EXIT_FAILURE, EXIT_OK, FlowcraftError
from .executor import _exit, child_setup, decode_completion, encode_work
from .leases import LeaseBook, LeaseKeeper, RunToucher
from .messages import Job
from .ports import Received
from .protocol import NodeCompletion

log = logging.getLogger("flowcraft_sqs.receiver")

#: Written by the intake thread on its own result queue to wake the commit thread.
WAKE: Final = b"WAKE"
#: After a failed ReceiveMessage, wait this long (s) so a broken endpoint is not hammered.
RECEIVE_RETRY_DELAY_S: Final = 1.0
#: The commit thread wakes at least this often (s) even with nothing to do.
COMMIT_TICK_S: Final = 0.1
#: Results taken from the result queue per wake-up.
RESULTS_TAKE: Final = 64
#: A run with a node running this long (s) gets its status `lastUpdated` refreshed.
TOUCH_INTERVAL_S: Final = 60.0
#: How long (s) the main thread waits for a long poll in flight when stopping: the poll
#: cannot be cancelled, and what it returns after exit reappears after its visibility.
INTAKE_JOIN_S: Final = 1.0
#: How often (s) a receiver held back by untaken work in the work queue looks again.
QUEUE_RECHECK_S: Final = 0.02


RECEIVE_GATHER_S = 0.02  # how long a receive waits for room for a fuller batch (s)
FLUSH_RETRY_BASE_S = 0.2  # first wait before a failed flush is tried again (s), doubling
FLUSH_RETRY_MAX_S = 5.0  # longest wait between tries of a failed flush (s)


@dataclass
class Held:
    """A received message this receiver owns until it is deleted or handed back."""

    received: Received
    hops: int = 0  # nodes run for it (local continuation included)
    # Chains running for it: a fan-out may continue several branches here. The message is
    # deleted when the last one ends; an item that ends otherwise (its executor died, a
    # hand-back at shutdown) never counts down, so the message is redelivered and replays.
    live: int = 1


@dataclass
class InFlight:
    item_id: int
    execute: Execute
    message: Held
    attempt: int
    since: float


@dataclass
class Finished:
    """One entry of the commit batch: effects to perform, then what to do with the message."""

    effects: Effects = field(default_factory=Effects)
    delete: str | None = None
    requeue: tuple[str, int] | None = None  # (receipt, visibility seconds)


class Receiver:
    """One receiver process: three threads around one Engine, one queue client, one store."""

    def __init__(self, settings: Settings, index: int, work: Any, results: Any,
                 pulse_board: Any, metrics_board: Any, parent_pid: int) -> None:
        self.s = settings
        self.index = index
        self.work = work
        self.results = results
        self.pulse = pulse.PulseWriter(pulse_board, settings.procs + index)
        self.metrics = metrics.MetricsRow(metrics_board, settings.procs + index)
        self.parent_pid = parent_pid
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)
        self.items: dict[int, InFlight] = {}
        self.retries: list[tuple[float, int, InFlight]] = []  # heap of (due, id, item)
        self.handoff: deque[Finished] = deque()
        self.unflushed: list[Finished] = []  # a batch whose effects failed, kept in order for a retry
        self.retry_flush_at = 0.0
        self.flush_failures = 0
        self.continued: list[bytes] = []  # work items of successors run locally, put per batch
        self.wake_pending = False
        self.accepting = 0  # intake batches between receive and hand-off (the commit thread waits)
        self.stopping = threading.Event()
        self.lease_stop = threading.Event()
        self.drained = False
        self.signalled = False
        self._ids = itertools.count(((index + 1) << 56) | ((os.getpid() & 0xFFFFFF) << 32))

    # --- boot ----------------------------------------------------------------------------

    def boot(self) -> None:
        self.app = load_app(self.s.app)
        self.queue, self.store, self.statuses, self.counter = build_ports(self.s, self.app, self.index)
        self.engine = Engine(self.app.blueprints, self.store, self.app.evaluator, time.time, event_bus=self.app.event_bus,
                             user_uses=self.app.registry.keys())
        self.book = LeaseBook(self.s.visibility_timeout_s, self.s.lease_fraction, time.monotonic)
        self.batcher: Batcher[Finished] = Batcher(self.s.flush_max_items, self.s.flush_max_age_ms / 1000,
                                                  time.monotonic)
        self.toucher = RunToucher(TOUCH_INTERVAL_S, time.monotonic)
        self.keeper = LeaseKeeper(self.book, self.queue, self.lock, self.lease_stop,
                                  on_tick=self._touch_long_runs,
                                  on_extended=lambda n: self.metrics.inc("leases_extended", n))
        self.pulse.start(os.getpid())

    def run(self) -> int:
        threads = {
            "intake": threading.Thread(target=self._guard(self.intake_loop), name="intake", daemon=True),
            "commit": threading.Thread(target=self._guard(self.commit_loop), name="commit", daemon=True),
            "lease": threading.Thread(target=self._guard(self.keeper.run), name="lease", daemon=True),
        }
        for thread in threads.values():
            thread.start()
        while threads["commit"].is_alive():
            threads["commit"].join(PULSE_INTERVAL_S / 4)
            self._main_tick()
        self.lease_stop.set()
        threads["lease"].join(PULSE_INTERVAL_S)
        threads["intake"].join(INTAKE_JOIN_S)
        self._copy_aws_counts()
        log.info("receiver stopped")
        return EXIT_OK

    def _main_tick(self) -> None:
        self.pulse.beat()
        self._copy_aws_counts()
        if self.signalled and not self.stopping.is_set():
            self.begin_stop()
        if os.getppid() != self.parent_pid:
            log.warning("supervisor is gone; stopping")
            self.begin_stop()

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            try:
                loop()
            except BaseException:
                log.critical("receiver thread crashed; its messages will be redelivered", exc_info=True)
                _exit(EXIT_FAILURE)

        return guarded

    def handle_term(self, signum: int, frame: Any) -> None:
        """SIGTERM: stop receiving, finish what was admitted (records only)."""
        self.signalled = True

    def begin_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: no new messages; finishing %d admitted items", len(self.items))
            self.stopping.set()
            self._wake_commit()
            with self.room:
                self.room.notify_all()

    # --- intake thread -------------------------------------------------------------------

    def intake_loop(self) -> None:
        while not self.stopping.is_set():
            room = self._wait_for_room()
            if room <= 0:
                continue
            try:
                messages = self.queue.receive(min(room, self.s.receive_batch), self.s.wait_time_s,
                                              self.s.visibility_timeout_s)
            except FlowcraftError as exc:
                log.warning("receive failed (%s); retrying in %.0f s", exc, RECEIVE_RETRY_DELAY_S)
                self.stopping.wait(RECEIVE_RETRY_DELAY_S)
                continue
            self.metrics.inc("receive_calls")
            if messages:
                with self.lock:
                    self.accepting += 1
                try:
                    self._accept(messages)
                finally:
                    with self.lock:
                        self.accepting -= 1

    def _wait_for_room(self) -> int:
        with self.room:
            room = self._room()
            if room <= 0 and not self.stopping.is_set():
                # Results notify `self.room`; executors taking queued work do not, so a
                # receiver held back by a full work queue looks again soon.
                queue_bound = self._queue_room() <= 0
                self.room.wait(QUEUE_RECHECK_S if queue_bound else PULSE_INTERVAL_S)
                room = self._room()
            return self._gather_room(room)

    def _gather_room(self, room: int) -> int:
        """Wait a moment for room for a fuller receive: one receive (and one batch read)
        per message costs far more than waiting RECEIVE_GATHER_S for half a batch.
        Call with `self.room` held."""
        target = max(1, min(self.s.receive_batch, self.s.admitted_per_receiver // 2))
        deadline = time.monotonic() + RECEIVE_GATHER_S
        while 0 < room < target and not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.room.wait(remaining)
            room = self._room()
        return room

    def _room(self) -> int:
        """Messages to admit now: what the executors have slots for (plus prefetch), and no
        more than the work queue should hold untaken (`Settings.queued_per_receiver`)."""
        busy = len(self.items) + len(self.retries) + len(self.handoff)
        return min(self.s.admitted_per_receiver - busy, self._queue_room())

    def _queue_room(self) -> int:
        return self.s.queued_per_receiver * self.s.receivers - self.work.qsize()

    def _accept(self, messages: list[Received]) -> None:
        self.metrics.inc("received", len(messages))
        now = time.monotonic()
        with self.lock:
            for message in messages:
                self.book.track(message.receipt, now)
        if self.stopping.is_set():  # received during shutdown: hand back at once
            self._hand_back([m.receipt for m in messages], 0)
            return
        try:
            planned = self.engine.plan_messages(messages)
        except Exception as exc:
            log.warning("planning %d messages failed (%s); they will be redelivered", len(messages), exc)
            self._forget([m.receipt for m in messages])
            return
        work = [data for p in planned if (data := self._route_planned(p)) is not None]
        log.debug("admitted %d messages: %d work items", len(messages), len(work))
        self._put_work(work)
        self._wake_commit()

    def _route_planned(self, p: Planned) -> bytes | None:
        """A work item for an Execute; every other plan becomes a Finished entry."""
        assert p.received is not None
        receipt = p.received.receipt
        if p.execute is not None:
            return self._new_item(p.execute, Held(p.received), 1)
        if p.requeue_after_s is not None:
            finished = Finished(requeue=(receipt, p.requeue_after_s))
        else:
            if p.error is not None:
                log.error("dropping message %s: %s", p.received.message_id, p.error)
            elif p.received.receive_count > 1 and self.s.local_continuation and p.job is not None:
                self._resend_chain(p.job, p.effects)
            finished = Finished(p.effects, delete=receipt)
        with self.lock:
            self.handoff.append(finished)
        return None

    def _resend_chain(self, job: Job, effects: Effects) -> None:
        """A redelivered message whose node is committed: it may have started a local chain
        that was cut short; re-send what that chain fired and nobody ran."""
        state = self.store.load_runs([job.run_id]).get(job.run_id)
        bp = self.app.blueprints.get(job.blueprint_id)
        if state is None or bp is None:
            return
        lost = chain_resends(state, bp, job.node_id)
        if lost:
            log.warning("run %s: re-sending %s after an interrupted chain", job.run_id, lost)
            effects.sends.extend(Job(job.run_id, bp.id, node_id) for node_id in lost)

    def _new_item(self, execute: Execute, held: Held, attempt: int) -> bytes:
        item = InFlight(next(self._ids), execute, held, attempt, time.monotonic())
        with self.lock:
            self.items[item.item_id] = item
            self.metrics.set("in_flight", len(self.items))
        job, state = execute.job, execute.state
        return encode_work(item.item_id, self.index, job.run_id, job.blueprint_id, job.node_id,
                           state.context, attempt)

    def _put_work(self, work: list[bytes]) -> None:
        while work:  # the queue is sized for every admitted item, so this rarely waits
            work = work[self.work.put_many(work, timeout=PULSE_INTERVAL_S):]

    def _wake_commit(self) -> None:
        with self.lock:
            if self.wake_pending:
                return
            self.wake_pending = True
        self.results.put(WAKE, timeout=PULSE_INTERVAL_S)

    # --- commit thread -------------------------------------------------------------------

    def commit_loop(self) -> None:
        while not self._commit_done():
            raws = self.results.get_many(RESULTS_TAKE, timeout=self._commit_wait())
            for raw in raws:
                self._on_result(raw)
            self._put_work(self.continued)  # one put for every successor this batch continued
            self.continued = []
            self._take_handoff()
            self._dispatch_due_retries()
            if self.batcher.due() or (self.unflushed and time.monotonic() >= self.retry_flush_at):
                self.flush()
        self.flush()

    def _commit_wait(self) -> float:
        waits = [COMMIT_TICK_S, self.batcher.wait_s()]
        if self.retries:
            waits.append(self.retries[0][0] - time.monotonic())
        return max(0.0, min(w for w in waits if w is not None))

    def _commit_done(self) -> bool:
        if not self.stopping.is_set():
            return False
        if self.drained:
            self._release_unanswered()
        with self.lock:
            return not (self.items or self.retries or self.handoff or self.accepting)

    def _take_handoff(self) -> None:
        with self.lock:
            self.wake_pending = False
            entries = list(self.handoff)
            self.handoff.clear()
            self.room.notify_all()
        for entry in entries:
            self.batcher.add(entry)

    def _on_result(self, raw: bytes) -> None:
        if raw == WAKE:
            return
        data = orjson.loads(raw)
        if data.get("drained"):
            self.drained = True
            return
        with self.room:
            item = self.items.pop(data["id"], None)
            self.metrics.set("in_flight", len(self.items))
            self.room.notify_all()
        if item is None:  # an item of this slot's previous process, or settled already
            log.debug("ignoring result for unknown item %s", data["id"])
            return
        lost = data.get("lost")
        if lost is None:
            self._commit(item, decode_completion(data))
        elif lost == "timeout":
            self._on_timeout(item, data)
        elif lost == "unstarted" or self.stopping.is_set():  # never ran, or cut short by a stop
            self.engine.release(item.execute)
            self._hand_back([item.message.received.receipt], 0)
        else:  # died mid-node: a crash is a redelivery, after the message's visibility runs out
            # (not at once: a node that kills its executor must not crash-loop the fleet)
            self.engine.release(item.execute)
            log.warning("executor died running node %s of run %s; the message will be redelivered",
                        item.execute.job.node_id, item.execute.job.run_id)
            self._forget([item.message.received.receipt])

    def _commit(self, item: InFlight, completion: NodeCompletion) -> None:
        held, job = item.message, item.execute.job
        try:
            effects, state = self.engine.complete(item.execute, completion)
        except Exception as exc:
            log.error("could not commit node %s of run %s (%s); the message will be redelivered",
                      job.node_id, job.run_id, exc)
            self._forget([held.received.receipt])
            return
        self.metrics.inc("committed")
        self.metrics.inc("runs_finished", len(effects.publishes))
        held.hops += 1
        followings: list[Execute] = []
        if self.s.local_continuation and not self.stopping.is_set():  # only our own commits go on
            # This item's slot is free again (popped from items); a fan-out may also take the
            # receiver's other spare room.
            limit = max(1, self._room())
            followings = next_locals(self.engine, effects, state, item.execute.blueprint, held.hops, limit)
        held.live += len(followings) - 1
        if held.live <= 0:
            self.batcher.add(Finished(effects, delete=held.received.receipt))
            return
        self.batcher.add(Finished(effects))  # the others it fired; the message stays ours
        self.metrics.inc("continued", len(followings))
        self.continued.extend(self._new_item(following, held, 1) for following in followings)

    def _on_timeout(self, item: InFlight, data: dict[str, Any]) -> None:
        """The supervisor stopped an executor whose attempt overran the node's timeout."""
        job, bp = item.execute.job, item.execute.blueprint
        node, attempt, ms = bp.node_by_id[job.node_id], int(data["attempt"]), _ms(data["timeout_ms"])
        self.metrics.inc("failed")
        if attempt < 0:
            reason = f"Node '{job.node_id}' failed: fallback '{node.fallback}' timed out after {ms} ms"
        elif attempt < node.max_retries and not self.stopping.is_set():
            log.warning("Node '%s' attempt %d of %d timed out after %s ms; retrying in %s ms",
                        job.node_id, attempt, node.max_retries, ms, _ms(node.retry_delay_ms))
            retry = InFlight(item.item_id, item.execute, item.message, attempt + 1, item.since)
            with self.lock:
                heapq.heappush(self.retries, (time.monotonic() + node.retry_delay_ms / 1000, item.item_id, retry))
            return
        else:
            reason = f"Node '{job.node_id}' failed: timed out after {ms} ms (attempt {attempt} of {node.max_retries})"
        self._commit(item, NodeCompletion(error=reason))

    def _dispatch_due_retries(self) -> None:
        now, due = time.monotonic(), []
        with self.lock:
            while self.retries and (self.retries[0][0] <= now or self.stopping.is_set()):
                due.append(heapq.heappop(self.retries)[2])
        if self.stopping.is_set():
            for retry in due:
                self.engine.release(retry.execute)
            self._hand_back([r.message.received.receipt for r in due], 0)
            return
        self._put_work([self._new_item(r.execute, r.message, r.attempt) for r in due])

    def _release_unanswered(self) -> None:
        """The executors are gone: items without a result never started (or died)."""
        with self.lock:
            unanswered = list(self.items.values())
            self.items.clear()
        for item in unanswered:
            self.engine.release(item.execute)
        receipts = [item.message.received.receipt for item in unanswered]
        if receipts:
            log.info("handing back %d messages whose nodes never started", len(receipts))
            self._hand_back(receipts, 0)

    # --- flushing ------------------------------------------------------------------------

    def flush(self) -> None:
        """Perform the batch's effects (sends, statuses, touches), then delete its messages.

        If the effects cannot be performed (an outage), the whole batch is kept, in order,
        and tried again with backoff: an entry without a delete belongs to a message still
        running a local chain, whose end would delete it, so dropping the entry would lose
        what it fired. The messages stay leased meanwhile. Only the last flush, at
        shutdown, gives up: its messages are then redelivered and replay.
        """
        final = self.stopping.is_set() and self._commit_done()
        if self.unflushed and not final and time.monotonic() < self.retry_flush_at:
            return
        entries = self.unflushed + self.batcher.drain()
        self.unflushed = []
        if not entries:
            return
        effects = Effects()
        for entry in entries:
            effects.merge(entry.effects)
        deletes = [e.delete for e in entries if e.delete]
        try:
            perform(effects, self.queue, self.statuses, time.time)
        except Exception as exc:
            self._keep_for_retry(entries, deletes, exc, final)
            return
        self.flush_failures = 0
        self._delete(deletes)
        for seconds, receipts in _by_seconds(e.requeue for e in entries if e.requeue).items():
            self._hand_back(receipts, seconds)
        self.metrics.inc("flushes")
        self.metrics.inc("flushed_messages", len(deletes))

    def _keep_for_retry(self, entries: list[Finished], deletes: list[str], exc: Exception, final: bool) -> None:
        if final:
            log.error("could not send successors or statuses (%s); %d messages will be "
                      "redelivered and replayed", exc, len(deletes))
            self._forget(deletes)
            return
        self.flush_failures += 1
        delay = min(FLUSH_RETRY_MAX_S, FLUSH_RETRY_BASE_S * 2 ** (self.flush_failures - 1))
        log.error("could not send successors or statuses (%s); retrying %d entries in %.1f s",
                  exc, len(entries), delay)
        self.unflushed = entries
        self.retry_flush_at = time.monotonic() + delay

    def _delete(self, receipts: list[str]) -> None:
        if not receipts:
            return
        try:
            failed = self.queue.delete(receipts)
        except FlowcraftError as exc:
            failed = receipts
            log.warning("DeleteMessageBatch failed (%s)", exc)
        if failed:
            log.warning("%d messages not deleted; they will be redelivered and replayed", len(failed))
        self._forget(receipts)

    def _hand_back(self, receipts: list[str], seconds: int) -> None:
        """Stop leasing and make the messages visible again after `seconds`."""
        if not receipts:
            return
        self._forget(receipts)
        try:
            self.queue.change_visibility(receipts, seconds)
        except FlowcraftError as exc:
            log.warning("could not hand back %d messages (%s); they reappear when their "
                        "visibility runs out", len(receipts), exc)
        self.metrics.inc("requeued", len(receipts))

    def _forget(self, receipts: Iterable[str]) -> None:
        with self.lock:
            for receipt in receipts:
                self.book.release(receipt)

    # --- lease thread helpers ------------------------------------------------------------

    def _touch_long_runs(self) -> None:
        with self.lock:
            since: dict[str, float] = {}
            for item in self.items.values():
                run_id = item.execute.job.run_id
                since[run_id] = min(since.get(run_id, item.since), item.since)
        for run_id in self.toucher.due(since):
            try:
                self.statuses.touch(run_id, time.time())
            except Exception as exc:
                log.warning("run %s: status touch failed (%s); the run goes on", run_id, exc)

    def _copy_aws_counts(self) -> None:
        if self.counter is not None:
            self.metrics.set_aws(self.counter.snapshot())


def _by_seconds(requeues: Iterable[tuple[str, int]]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for receipt, seconds in requeues:
        grouped.setdefault(seconds, []).append(receipt)
    return grouped


def _ms(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def build_ports(settings: Settings, app: Any, index: int) -> tuple[Any, Any, Any, Any]:
    """(queue, run store, status table, request counter) for this receiver.

    Clients are made here, in the child, after it started: boto3 clients are thread-safe
    and shared by the receiver's threads, but must not cross a process boundary.
    """
    if settings.backend == "memory":
        return _memory_ports(settings, app, index)
    from .aws import RequestCounter, make_clients
    from .stores.dynamodb import DynamoRunStore, DynamoStatusTable
    from .transport.sqs import SqsQueue

    counter = RequestCounter()
    clients = make_clients(settings.region, sqs_endpoint_url=settings.sqs_endpoint_url,
                           dynamodb_endpoint_url=settings.dynamodb_endpoint_url, counter=counter)
    return (SqsQueue(clients.sqs, settings.queue_url),
            DynamoRunStore(clients.dynamodb, settings.context_table),
            DynamoStatusTable(clients.dynamodb, settings.status_table), counter)


def _memory_ports(settings: Settings, app: Any, index: int) -> tuple[Any, Any, Any, Any]:
    """In-process queue and tables: overhead benchmarks and tests, one receiver's own world."""
    from .app import _import_target
    from .stores.memory import MemoryRunStore, MemoryStatusTable
    from .transport.memory import MemoryQueue

    queue = MemoryQueue(settings.visibility_timeout_s, time.monotonic)
    store, statuses = MemoryRunStore(), MemoryStatusTable()
    if settings.memory_seed:
        seed = _import_target(settings.memory_seed)
        seed(queue=queue, store=store, statuses=statuses, app=app, receiver=index)
    return queue, store, statuses, None


def receiver_main(settings: Settings, index: int, work: Any, results: Any,
                  pulse_board: Any, metrics_board: Any, parent_pid: int) -> None:
    """Process target of receiver[index]; exits with an EXIT_* code."""
    child_setup(settings, "receiver", index, parent_pid)
    receiver = Receiver(settings, index, work, results, pulse_board, metrics_board, parent_pid)
    signal.signal(signal.SIGTERM, receiver.handle_term)
    try:
        receiver.boot()
    except AppLoadError as exc:
        log.critical("%s", exc)
        _exit(EXIT_APP_LOAD)
    except Exception:
        log.critical("receiver could not start", exc_info=True)
        _exit(EXIT_BOOT)
    _exit(receiver.run())


__all__: Sequence[str] = ("Receiver", "receiver_main", "WAKE", "build_ports")
