"""The pulse board and the held tables: shared memory the supervisor reads.

A *pulse* is a child's liveness signal to the supervisor (our version of gunicorn's
WorkerTmp): the child writes `time.monotonic()` into its slot at least every
PULSE_INTERVAL_S; the supervisor stops a child whose pulse is older than --pulse-timeout.

An executor also keeps a *held table*: one entry per work item it took and has not yet
returned, with the item's owning receiver, the attempt running (0: not started yet) and
that attempt's deadline. From it the supervisor enforces node timeouts that a node's own
code ignores, and tells each receiver what a dead executor was holding, all of it. An
executor writes an item's entry while it takes the item from the work queue, before the
queue lets go of it (`WorkQueue.get_many(on_take=...)`), so no moment exists where an item
is neither queued nor held.

Writers never lock. Multi-field updates are bracketed by a sequence number (a seqlock:
odd while writing); the reader retries until it sees the same even number on both sides.
A writer killed mid-update leaves its sequence odd for good: a reader then takes what is
there (`settled=True` for a child known to be gone), never waits forever. Every field is
an aligned 8-byte word, so each store is one machine write. `time.monotonic()` is
system-wide on Linux (CLOCK_MONOTONIC), so times from different processes compare.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import Any, Final

#: Words per held-table entry: seq, item id, origin, attempt, deadline (ns), timeout (us).
ENTRY_WORDS: Final = 6
_SEQ, _ITEM, _ORIGIN, _ATTEMPT, _DEADLINE, _TIMEOUT = range(ENTRY_WORDS)
#: Reads of a slot or entry that is mid-write before it is taken as it is.
READ_TRIES: Final = 1000


class Slot(ctypes.Structure):
    _fields_ = [
        ("seq", ctypes.c_uint64),
        ("pid", ctypes.c_int64),
        ("pulse", ctypes.c_double),  # monotonic time of the last pulse
    ]


@dataclass(frozen=True)
class SlotView:
    """A copy of one slot."""

    pid: int
    pulse: float


@dataclass(frozen=True)
class HeldItem:
    """One work item an executor holds."""

    item: int
    origin: int  # its receiver's index
    attempt: int  # running now (1-based); negative: the fallback's; 0: not started
    deadline: float  # monotonic deadline of this attempt; 0: none
    timeout_ms: float


def create_board(ctx: Any, slots: int) -> Any:
    """A zeroed shared array of `slots` slots, passable to spawned children."""
    return ctx.RawArray(Slot, slots)


def create_held_tables(ctx: Any, executors: int, entries: int) -> Any:
    """Zeroed held tables: `entries` per executor, passable to spawned children."""
    return ctx.RawArray(ctypes.c_int64, executors * entries * ENTRY_WORDS)


class PulseWriter:
    """A child's handle on its own slot."""

    def __init__(self, board: Any, index: int) -> None:
        self.slot: Slot = board[index]

    def start(self, pid: int) -> None:
        self.slot.seq += 1
        self.slot.pid = pid
        self.slot.pulse = time.monotonic()
        self.slot.seq += 1

    def beat(self) -> None:
        self.slot.pulse = time.monotonic()


def read_slot(board: Any, index: int) -> SlotView:
    """A consistent copy of slot `index` (what is there, if its writer died mid-write)."""
    slot: Slot = board[index]
    for _ in range(READ_TRIES):
        before = slot.seq
        view = SlotView(pid=slot.pid, pulse=slot.pulse)
        if before % 2 == 0 and slot.seq == before:
            return view
        time.sleep(0)
    return view


def reset_slot(board: Any, index: int) -> None:
    """Clear a slot whose child is gone (only the supervisor calls this)."""
    ctypes.memset(ctypes.addressof(board[index]), 0, ctypes.sizeof(Slot))


def _words(tables: Any, executor: int, entries: int) -> memoryview:
    whole = memoryview(tables).cast("B").cast("q")
    size = entries * ENTRY_WORDS
    return whole[executor * size:(executor + 1) * size]


class HeldWriter:
    """An executor's handle on its own held table. Entries are reused through a free list
    kept in the executor; `take` and `release` may be called from different threads, as
    long as one entry is written by one thread at a time."""

    def __init__(self, tables: Any, executor: int, entries: int) -> None:
        self.words = _words(tables, executor, entries)
        self.entries = entries
        self.free = list(range(entries - 1, -1, -1))

    def clear(self) -> None:
        self.words[:] = memoryview(bytes(8 * len(self.words))).cast("q")
        self.free = list(range(self.entries - 1, -1, -1))

    def take(self, item: int, origin: int) -> int:
        """Publish a newly taken item; returns its entry (IndexError: the table is full)."""
        entry = self.free.pop()
        w, base = self.words, entry * ENTRY_WORDS
        w[base + _SEQ] += 1
        w[base + _ORIGIN] = origin
        w[base + _ATTEMPT] = w[base + _DEADLINE] = w[base + _TIMEOUT] = 0
        w[base + _ITEM] = item
        w[base + _SEQ] += 1
        return entry

    def running(self, entry: int, attempt: int, timeout_ms: float | None) -> None:
        """An attempt of the entry's item starts now; its deadline follows from `timeout_ms`."""
        w, base = self.words, entry * ENTRY_WORDS
        deadline = time.monotonic_ns() + int(timeout_ms * 1e6) if timeout_ms else 0
        w[base + _SEQ] += 1
        w[base + _ATTEMPT] = attempt
        w[base + _DEADLINE] = deadline
        w[base + _TIMEOUT] = int(timeout_ms * 1000) if timeout_ms else 0
        w[base + _SEQ] += 1

    def release(self, entry: int) -> None:
        """The entry's item was returned: it is no longer held."""
        w, base = self.words, entry * ENTRY_WORDS
        w[base + _SEQ] += 1
        w[base + _ITEM] = 0
        w[base + _SEQ] += 1
        self.free.append(entry)


def read_held(tables: Any, executor: int, entries: int, settled: bool = False) -> list[HeldItem]:
    """The items executor `executor` holds. `settled`: its process is gone, so an entry left
    mid-write is final; it is read as it is (an item whose id was written is reported)."""
    words = _words(tables, executor, entries)
    held: list[HeldItem] = []
    snapshot = words.tolist()  # one copy; entries that were mid-write are re-read below
    for base in range(0, len(snapshot), ENTRY_WORDS):
        entry = snapshot[base:base + ENTRY_WORDS]
        if entry[_SEQ] % 2 and not settled:
            entry = _reread(words, base)
        if entry[_ITEM]:
            held.append(HeldItem(entry[_ITEM], entry[_ORIGIN], entry[_ATTEMPT],
                                 entry[_DEADLINE] / 1e9, entry[_TIMEOUT] / 1000))
    return held


def _reread(words: memoryview, base: int) -> list[int]:
    for _ in range(READ_TRIES):
        before = words[base + _SEQ]
        entry = words[base:base + ENTRY_WORDS].tolist()
        if before % 2 == 0 and words[base + _SEQ] == before:
            return entry
        time.sleep(0)
    return entry


def reset_held(tables: Any, executor: int, entries: int) -> None:
    """Clear the table of an executor that is gone (only the supervisor calls this)."""
    words = _words(tables, executor, entries)
    words[:] = memoryview(bytes(8 * len(words))).cast("q")
