"""Executor processes: turn work items into node results, many at once. No network I/O.

    work queue (shared by all receivers) --get_many--> executor[e] --put_many--> results[origin]

An executor keeps up to `--concurrency` nodes in flight (`slots.NodeSlots`): async nodes as
tasks on its uvloop loop, sync nodes in its pool of `--threads` threads. A *taker* thread
takes from the work queue only as many items as there are free slots (and, since an item
may turn out to be a sync node, no more than there are free threads), so no item waits
behind another inside an executor while a slot is free elsewhere. Each node runs through
`nodes.execute_node` (or the fast path below); the executor checks that what the node
produced can be stored, and sends the results back to the receiver that owns each item
(`origin`). It touches nothing but its queues, its pulse slot, its held table and its
metrics row, like the stdlib's `_process_worker` and dramatiq's `WorkerThread`.

Held table contract (see pulse.py): every item is published in the executor's held table
while the work queue hands it over, each attempt's start and deadline are published, and
an item leaves the table only after its result is in its receiver's result queue. So the
supervisor can report a dead executor's items, all of them, and enforce a deadline that a
node's code ignores (an async node that never awaits, C code holding the GIL).

Timeouts, per node: an async attempt past its `timeout` is cancelled; a sync attempt is
abandoned (its thread cannot be stopped) and fails at once, retried or replaced by its
fallback as its config says. An executor with an abandoned thread stops taking work, lets
its other nodes finish, and exits to be replaced; so do `--max-nodes-per-executor` and
`--max-memory-per-executor` (drain, then replace). SIGTERM and the STOP sentinel: take
nothing more, finish what is in flight, exit.

Wire format (never pickle):
  work item  16-byte header (item id, origin: two little-endian int64, read under the work
             queue's lock without parsing JSON) + orjson {"run", "bp", "node", "ctx", "attempt"}
  result     {"id", "out"?, "act"?, "err"?, "sets"?, "dels"?, "fb"?, "catch"?, "n"}
  synthetic  {"id", "lost": "timeout" | "died" | "unstarted", "attempt", "timeout_ms"}
             (written by the supervisor for items of an executor that is gone)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import faulthandler
import inspect
import logging
import os
import random
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from . import builtins, logs, metrics, pulse
from .app import App, AppLoadError, load_app
from .blueprint import Blueprint, Node
from .completion import completion_from_outcome, node_context_for, run_batch_chunk
from .config import PULSE_INTERVAL_S, Settings
from .errors import EXIT_APP_LOAD, EXIT_BOOT, EXIT_FAILURE, EXIT_OK, ValueNotStorable
from .jsvalues import UNDEFINED
from .node_context import NodeContext
from .nodes import (
    Offload,
    execute_node,
    node_failure,  # the one rule for turning an exception into a reason
    normalize_result,
)
from .protocol import NodeCompletion
from .slots import NodeSlots
from .values import check_storable

log = logging.getLogger("flowcraft_sqs.executor")

#: The sentinel that tells one executor to exit; shorter than a work header, so never work.
STOP: Final = b"STOP"
#: A work item's binary header: item id and origin (receiver index).
WORK_HEADER: Final = struct.Struct("<qq")
#: Results are held back at most this long (s) to go out several per put.
RESULT_FLUSH_S: Final = 0.002
#: The taker waits for work at most this long (s) at a time, so a stop is seen promptly.
TAKE_WAIT_S: Final = 0.25
#: RSS is checked at most this often (s): psutil costs ~10 us a call.
MEMORY_CHECK_INTERVAL_S: Final = 1.0
#: Executors recycle after --max-nodes-per-executor plus a random share of up to this
#: fraction of it, so executors started together are not all replaced at once.
RECYCLE_JITTER: Final = 0.1
#: prctl(2): deliver a signal to this process when its parent dies.
PR_SET_PDEATHSIG: Final = 1


# --- wire format -------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if value is UNDEFINED:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"a {type(value).__name__} cannot be sent to an executor")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default)


def encode_work(item_id: int, origin: int, run_id: str, bp_id: str, node_id: str,
                context: Mapping[str, Any], attempt: int = 1) -> bytes:
    return WORK_HEADER.pack(item_id, origin) + dumps(
        {"run": run_id, "bp": bp_id, "node": node_id, "ctx": context, "attempt": attempt})


def work_header(raw: bytes) -> tuple[int, int]:
    """(item id, origin) of a work item, without parsing its body."""
    item_id, origin = WORK_HEADER.unpack_from(raw)
    return item_id, origin


def encode_completion(item_id: int, c: NodeCompletion, attempts: int) -> bytes:
    data: dict[str, Any] = {"id": item_id, "n": attempts}
    if c.error is not None:
        data["err"] = c.error
        return dumps(data)
    if c.output is not UNDEFINED:
        data["out"] = c.output
    if c.action is not None:
        data["act"] = c.action
    if c.context_sets:
        data["sets"] = c.context_sets
    if c.context_deletes:
        data["dels"] = sorted(c.context_deletes)
    if c.fallback_node_id is not None:
        data["fb"] = c.fallback_node_id
    if c.catch_error is not None:
        data["catch"] = c.catch_error
    return dumps(data)


def decode_completion(data: Mapping[str, Any]) -> NodeCompletion:
    """A result message (not a synthetic one) as the protocol's NodeCompletion."""
    if "err" in data:
        return NodeCompletion(error=data["err"])
    return NodeCompletion(
        output=data.get("out", UNDEFINED),
        action=data.get("act"),
        context_sets=data.get("sets") or {},
        context_deletes=frozenset(data.get("dels") or ()),
        fallback_node_id=data.get("fb"),
        catch_error=data.get("catch"),
    )


def synthetic_result(item_id: int, lost: str, attempt: int = 0, timeout_ms: float = 0.0) -> bytes:
    return dumps({"id": item_id, "lost": lost, "attempt": attempt, "timeout_ms": timeout_ms})


def unstorable_reason(node_id: str, c: NodeCompletion) -> str | None:
    """Why a successful completion cannot be committed (naming the key), or None."""
    try:
        check_storable(c.output, f"output of node '{node_id}'")
        for key, value in c.context_sets.items():
            check_storable(value, f"context key '{key}' written by node '{node_id}'")
    except ValueNotStorable as exc:
        return str(exc)
    return None


# --- running nodes -----------------------------------------------------------------------


class _TrackedContext(NodeContext):
    """A NodeContext that reports each attempt's start: `execute_node` sets `ctx.attempt`
    before every attempt, so the held table gets the attempt's own deadline."""

    def __setattr__(self, name: str, value: Any) -> None:
        report = self.__dict__.get("_report")
        if name == "attempt" and report is not None:
            value = value + self.__dict__["_offset"]
            object.__setattr__(self, name, value)
            report(value)
            return
        object.__setattr__(self, name, value)


def _tracked(ctx: NodeContext, report: Callable[[int], None], offset: int) -> NodeContext:
    tracked = _TrackedContext(**{f.name: getattr(ctx, f.name) for f in dataclasses.fields(NodeContext)})
    object.__setattr__(tracked, "_offset", offset)
    object.__setattr__(tracked, "_report", report)
    return tracked


@dataclass(frozen=True)
class WorkItem:
    id: int
    origin: int
    run_id: str
    bp_id: str
    node_id: str
    context: dict[str, Any]
    attempt: int
    entry: int = -1  # its entry in this executor's held table (not on the wire)

    @classmethod
    def decode(cls, raw: bytes, entry: int = -1) -> WorkItem:
        item_id, origin = work_header(raw)
        d = orjson.loads(memoryview(raw)[WORK_HEADER.size:])
        return cls(item_id, origin, d["run"], d["bp"], d["node"], d["ctx"], d.get("attempt", 1), entry)


class NodeRunner:
    """Runs one work item's node and returns (completion, attempts). Knows no queues.

    `offload` runs sync node code off the loop (`NodeSlots.offload`); without it, sync
    code runs inline, as in the in-process runtime."""

    def __init__(self, app: App, on_attempt: Callable[[WorkItem, int, float | None], None],
                 offload: Offload | None = None) -> None:
        self.app = app
        self.on_attempt = on_attempt
        self.offload = offload
        self._fast: dict[tuple[str, str], Any] = {}

    def fast_impl(self, bp: Blueprint, node: Node) -> Any:
        """The plain sync function to call directly, or None if the node needs execute_node.

        Measured on the project machine: a no-op node costs ~3 us called directly, ~12 us
        through execute_node inside an already running loop, ~44 us with a loop entry each.
        """
        key = (bp.id, node.id)
        if key not in self._fast:
            impl = self.app.registry.get(node.uses)
            plain = (inspect.isfunction(impl) or inspect.isbuiltin(impl)) and not (
                inspect.iscoroutinefunction(impl) or inspect.isasyncgenfunction(impl))
            simple = (node.max_retries == 1 and node.timeout_ms is None and not node.fallback
                      and not self.app.middleware)
            self._fast[key] = impl if plain and simple else None
        return self._fast[key]

    async def run(self, item: WorkItem) -> tuple[NodeCompletion, int]:
        bp = self.app.blueprints.get(item.bp_id)
        if bp is None or item.node_id not in bp.node_by_id:
            return NodeCompletion(error=f"Node '{item.node_id}' failed: blueprint '{item.bp_id}' "
                                        "or its node is not in this worker's app"), 0
        node = bp.node_by_id[item.node_id]
        if node.uses == builtins.BATCH_SCATTER and node.uses not in self.app.registry:
            return await self._run_chunk(item, bp, node), 1
        impl = self.fast_impl(bp, node) if item.attempt == 1 else None
        if impl is not None:
            return await self._call_directly(item, bp, node, impl), 1
        return await self._execute(item, bp, node)

    async def _run_chunk(self, item: WorkItem, bp: Blueprint, node: Node) -> NodeCompletion:
        """A batch chunk: the worker implementation once per item (completion.run_batch_chunk)."""
        self.on_attempt(item, 1, None)
        app = self.app
        return await run_batch_chunk(bp, node, item.context, item.run_id, app.registry,
                                     app.dependencies, app.middleware, logger=log, offload=self.offload)

    async def _call_directly(self, item: WorkItem, bp: Blueprint, node: Node, impl: Any) -> NodeCompletion:
        self.on_attempt(item, 1, None)
        ctx = node_context_for(bp, node, item.context, item.run_id, self.app.dependencies)
        try:
            value = await self.offload(lambda: impl(ctx)) if self.offload is not None else impl(ctx)
            if inspect.isawaitable(value):
                value = await value
            result = normalize_result(value, node.id)
        except Exception as exc:
            ctx.context.close()
            return NodeCompletion(error=str(node_failure(node.id, exc)))
        ctx.context.close()
        return NodeCompletion(output=result.output, action=result.action,
                              context_sets=ctx.context.writes(),
                              context_deletes=frozenset(ctx.context.deletes()))

    async def _execute(self, item: WorkItem, bp: Blueprint, node: Node) -> tuple[NodeCompletion, int]:
        definition = dict(node.definition)
        if item.attempt > 1:  # earlier attempts ran in an executor that was stopped at its timeout
            config = dict(definition.get("config") or {})
            config["maxRetries"] = node.max_retries - item.attempt + 1
            definition["config"] = config
        deps = self.app.dependencies
        ctx = _tracked(node_context_for(bp, node, item.context, item.run_id, deps),
                       lambda n: self.on_attempt(item, n, node.timeout_ms), item.attempt - 1)
        fallback = bp.node_by_id.get(node.fallback) if node.fallback else None

        def fallback_context(_definition: Mapping[str, Any]) -> NodeContext:
            assert fallback is not None
            report = lambda n: self.on_attempt(item, -n, fallback.timeout_ms)  # noqa: E731
            return _tracked(node_context_for(bp, fallback, item.context, item.run_id, deps), report, 0)

        outcome = await execute_node(
            node=definition, registry=self.app.registry, context=ctx, middleware=self.app.middleware,
            fallback_node=dict(fallback.definition) if fallback else None,
            make_fallback_context=fallback_context if fallback else None, logger=log,
            offload=self.offload,
        )
        return completion_from_outcome(node.id, outcome), outcome.attempts


# --- the process -------------------------------------------------------------------------


class Executor:
    """One executor process: a taker thread feeding many node tasks on one event loop.

    The loop thread (the main thread) runs the nodes, returns results and pulses; the
    taker thread only waits for room and takes work. Counts shared by the two are guarded
    by `self.room` (a Condition)."""

    def __init__(self, settings: Settings, index: int, work: Any, results: list[Any],
                 pulse_board: Any, held_tables: Any, metrics_board: Any, parent_pid: int) -> None:
        self.settings = settings
        self.index = index
        self.work = work
        self.results = results
        self.pulse = pulse.PulseWriter(pulse_board, index)
        self.held = pulse.HeldWriter(held_tables, index, settings.concurrency)
        self.metrics = metrics.MetricsRow(metrics_board, index)
        self.parent_pid = parent_pid
        self.room = threading.Condition()
        self.take_lock = threading.Lock()
        self.in_flight = 0  # items taken and not yet returned (under self.room)
        self.unstarted: set[int] = set()  # entries taken whose first attempt has not begun
        self.stopping = False  # SIGTERM or STOP: take nothing more, finish, exit
        self.recycle_reason: str | None = None  # drain, then exit to be replaced
        self.parent_gone = False
        self.executed = 0
        limit = settings.max_nodes_per_executor
        self.max_nodes = limit + random.randint(0, int(limit * RECYCLE_JITTER)) if limit else 0
        self._memory_checked_at = 0.0
        self._pending: dict[int, list[bytes]] = {}
        self._pending_entries: list[int] = []
        self._flush_handle: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def boot(self) -> None:
        self.app = load_app(self.settings.app)
        self.slots = NodeSlots(self.settings.concurrency, self.settings.threads)
        self.loop = _new_loop()
        self.loop.set_default_executor(self.slots.pool)  # asyncio.to_thread shares the limit
        self.runner = NodeRunner(self.app, self._attempt_started, self.slots.offload)
        self.held.clear()
        self.pulse.start(os.getpid())

    def run(self) -> int:
        log.info("executor ready (up to %d nodes at once, %d threads for sync nodes)",
                 self.settings.concurrency, self.settings.threads)
        self.changed = asyncio.Event()
        self.taker = threading.Thread(target=self._guard(self.take_loop), name="taker", daemon=True)
        self.taker.start()
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.slots.shutdown()
        if self.recycle_reason and not self.parent_gone:
            log.info("recycling: %s", self.recycle_reason)
        return EXIT_OK

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def guarded() -> None:
            try:
                loop()
            except BaseException:
                log.critical("executor taker thread crashed; its items will be redelivered", exc_info=True)
                _exit(EXIT_FAILURE)

        return guarded

    # --- the taker thread ----------------------------------------------------------------

    def take_loop(self) -> None:
        while not self._closing():
            if self._wait_for_room() > 0:
                with self.take_lock:  # the loop thread may take too: one taker at a time
                    self._take(TAKE_WAIT_S, self._start_soon)

    def _closing(self) -> bool:
        return self.stopping or self.recycle_reason is not None or self.parent_gone

    def _room_now(self) -> int:
        """Items to take now: free slots, and no more than free threads, since any item
        taken may be a sync node. Call with `self.room` held."""
        free_slots = self.settings.concurrency - self.in_flight
        free_threads = self.slots.free_threads() - len(self.unstarted)
        return max(0, min(free_slots, free_threads))

    def _wait_for_room(self) -> int:
        with self.room:
            room = self._room_now()
            if room <= 0:
                self.room.wait(TAKE_WAIT_S)
                room = self._room_now()
            return room

    def _take(self, timeout: float, start: Callable[[list[WorkItem]], None]) -> None:
        """Take what there is room for now (waiting up to `timeout` for work), publishing each
        item while the queue hands it over, then have `start` run them. Hold `take_lock`."""
        with self.room:
            room = self._room_now()
        if room <= 0:
            return
        self._taken_entries: list[int] = []
        raws = self.work.get_many(room, timeout=timeout, on_take=self._publish_taken)
        if raws:
            self._accept(raws, self._taken_entries, start)

    def _start_soon(self, items: list[WorkItem]) -> None:
        self.loop.call_soon_threadsafe(self._start, items)

    def _publish_taken(self, raws: list[bytes]) -> None:
        """Under the work queue's lock: publish each item in the held table, parse nothing
        (JSON is decoded after the lock is released). STOP gets no entry (-1)."""
        entries = self._taken_entries
        for raw in raws:
            if raw == STOP:
                entries.append(-1)
                continue
            item_id, origin = work_header(raw)
            entry = self.held.take(item_id, origin)
            self.unstarted.add(entry)
            entries.append(entry)

    def _accept(self, raws: list[bytes], entries: list[int], start: Callable[[list[WorkItem]], None]) -> None:
        items = [WorkItem.decode(raw, entry) for raw, entry in zip(raws, entries, strict=True) if entry >= 0]
        stops = len(raws) - len(items)
        if stops:
            self.stopping = True
            for _ in range(stops - 1):  # one STOP is ours; the others belong to siblings
                self.work.put(STOP, timeout=1.0)
        if items:
            with self.room:
                self.in_flight += len(items)
            start(items)
        if stops:
            self.loop.call_soon_threadsafe(self.changed.set)

    # --- the loop thread -----------------------------------------------------------------

    async def _serve(self) -> None:
        """Pulse, watch the parent and memory, and return once closing with nothing held."""
        while True:
            self.pulse.beat()
            self.metrics.set("running", self.in_flight)
            if os.getppid() != self.parent_pid:
                log.warning("supervisor is gone; exiting")
                self.parent_gone = True
                return
            self._check_memory()
            # Done once closing with nothing held and the taker gone: a take it had begun
            # before seeing the stop ends within TAKE_WAIT_S, and what it took runs first.
            if self._closing() and self.in_flight == 0 and not self.taker.is_alive():
                return
            self.changed.clear()
            wait = TAKE_WAIT_S if self._closing() else PULSE_INTERVAL_S / 2
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), wait)

    def _start(self, items: list[WorkItem]) -> None:
        for item in items:
            task = self.loop.create_task(self._run_one(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_one(self, item: WorkItem) -> None:
        started = time.perf_counter()
        try:
            completion, attempts = await self.runner.run(item)
        except Exception as exc:  # a bug of ours, not the node's: fail the node, keep the others
            log.exception("running node %s of run %s failed", item.node_id, item.run_id)
            completion, attempts = NodeCompletion(error=f"Node '{item.node_id}' failed: {exc}"), 1
        self.unstarted.discard(item.entry)
        self._after_node(item, completion, attempts, time.perf_counter() - started)

    def _after_node(self, item: WorkItem, c: NodeCompletion, attempts: int, elapsed: float) -> None:
        if c.error is None and (reason := unstorable_reason(item.node_id, c)):
            c = NodeCompletion(error=f"Node '{item.node_id}' failed: {reason}")
        try:
            data = encode_completion(item.id, c, attempts)
        except TypeError as exc:  # check_storable passed it, yet orjson cannot encode it
            data = encode_completion(item.id, NodeCompletion(error=f"Node '{item.node_id}' failed: {exc}"), attempts)
        self.executed += 1
        self.metrics.inc("executed")
        if c.error is not None:
            self.metrics.inc("failed")
        self._pending.setdefault(item.origin, []).append(data)
        self._pending_entries.append(item.entry)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Flush at once when nothing else runs; else hold results back RESULT_FLUSH_S so
        that several go out per put."""
        if len(self._pending_entries) >= self.in_flight:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush_handle = self.loop.call_soon(self._flush)
        elif self._flush_handle is None:
            self._flush_handle = self.loop.call_later(RESULT_FLUSH_S, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        for origin, batch in self._pending.items():
            sent = 0
            while sent < len(batch):  # a full result queue means its receiver is slow: wait
                sent += self.results[origin].put_many(batch[sent:], timeout=PULSE_INTERVAL_S)
                self.pulse.beat()
        entries = self._pending_entries
        for entry in entries:  # only now: a result in a queue can no longer be lost
            self.held.release(entry)
        self._pending = {}
        self._pending_entries = []
        self._check_recycle()
        with self.room:
            self.in_flight -= len(entries)
            self.room.notify()
        self.changed.set()
        self._take_here()

    def _take_here(self) -> None:
        """Slots just freed: take queued work from the loop thread at once, without waking
        the taker (a thread hand-off per node), if the taker is not taking right now."""
        if self._closing() or not self.take_lock.acquire(blocking=False):
            return
        try:
            self._take(0, self._start)
        finally:
            self.take_lock.release()

    def _attempt_started(self, item: WorkItem, attempt: int, timeout_ms: float | None) -> None:
        self.unstarted.discard(item.entry)
        self.held.running(item.entry, attempt, timeout_ms)

    def _check_recycle(self) -> None:
        if self.recycle_reason is not None:
            return
        if self.slots.abandoned:
            self.recycle_reason = ("a sync node ignored its timeout and its thread cannot be "
                                   "stopped; finishing the other nodes, then exiting to be replaced")
        elif self.max_nodes and self.executed >= self.max_nodes:
            self.recycle_reason = f"ran {self.executed} nodes (--max-nodes-per-executor, with jitter)"

    def _check_memory(self) -> None:
        s = self.settings
        if self.recycle_reason is not None or not s.max_memory_per_executor_mb:
            return
        if time.monotonic() - self._memory_checked_at < MEMORY_CHECK_INTERVAL_S:
            return
        self._memory_checked_at = time.monotonic()
        rss_mb = _rss_mb()
        if rss_mb > s.max_memory_per_executor_mb:
            self.recycle_reason = f"RSS {rss_mb:.0f} MB is above --max-memory-per-executor"

    def handle_term(self, signum: int, frame: Any) -> None:
        """SIGTERM: take nothing more, finish the nodes in flight, then exit (records only)."""
        self.stopping = True


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio works the same
        return asyncio.new_event_loop()


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / (1024 * 1024)


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when the supervisor dies (Linux), so a killed
    supervisor leaves no orphans; `os.getppid()` checks in the loops cover other systems."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(EXIT_OK)


def child_setup(settings: Settings, role: str, index: int, parent_pid: int) -> None:
    """What every spawned child does first: die with the parent, logging, signals."""
    die_with_parent(parent_pid)
    logs.setup(role, index, settings.log_format, settings.log_level)
    faulthandler.enable()  # SIGABRT from the supervisor dumps every thread's stack first
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the supervisor decides


def executor_main(settings: Settings, index: int, work: Any, results: list[Any],
                  pulse_board: Any, held_tables: Any, metrics_board: Any, parent_pid: int) -> None:
    """Process target of executor[index]; exits with an EXIT_* code."""
    child_setup(settings, "executor", index, parent_pid)
    executor = Executor(settings, index, work, results, pulse_board, held_tables, metrics_board, parent_pid)
    signal.signal(signal.SIGTERM, executor.handle_term)
    try:
        executor.boot()
    except AppLoadError as exc:
        log.critical("%s", exc)
        _exit(EXIT_APP_LOAD)
    except Exception:
        log.critical("executor could not start", exc_info=True)
        _exit(EXIT_BOOT)
    try:
        code = executor.run()
    except Exception:
        log.critical("executor crashed; its items will be redelivered", exc_info=True)
        code = EXIT_FAILURE
    _exit(code)


def _exit(code: int) -> None:
    """Exit without joining threads: a timed-out sync node's thread would never let go."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
