"""The pulse board: one shared-memory slot per child, read by the supervisor.

A *pulse* is a child's liveness signal to the supervisor (our version of gunicorn's
WorkerTmp): the child writes `time.monotonic()` into its slot at least every
PULSE_INTERVAL_S; the supervisor stops a child whose pulse is older than --pulse-timeout.
Executors also publish what they are running: the work item id, its owning receiver, the
attempt and that attempt's deadline, so the supervisor can enforce node timeouts a node's
own code ignores and tell the owning receiver what a dead executor was holding.

Writers never lock. Multi-field updates are bracketed by a sequence number (a seqlock:
odd while writing); the reader retries until it sees the same even number on both sides.
Every field is 8-byte aligned, so each store is one machine write. `time.monotonic()` is
system-wide on Linux (CLOCK_MONOTONIC), so times from different processes compare.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import Any

#: Executors hold at most this many work items at once (taken from the work queue in one
#: `get_many`); their ids are published so a dead executor's items are all reported.
MAX_HELD_ITEMS = 8


class Slot(ctypes.Structure):
    _fields_ = [
        ("seq", ctypes.c_uint64),
        ("pid", ctypes.c_int64),
        ("pulse", ctypes.c_double),  # monotonic time of the last pulse
        ("item", ctypes.c_int64),  # work item running now; 0 when idle
        ("origin", ctypes.c_int64),  # its receiver's index
        ("attempt", ctypes.c_int64),  # attempt running now (1-based); negative: the fallback's
        ("deadline", ctypes.c_double),  # monotonic deadline of this attempt; 0: none
        ("timeout_ms", ctypes.c_double),
        ("held_count", ctypes.c_int64),
        ("held", ctypes.c_int64 * MAX_HELD_ITEMS),  # items taken and not yet returned
        ("held_origin", ctypes.c_int64 * MAX_HELD_ITEMS),
    ]


@dataclass(frozen=True)
class SlotView:
    """A consistent copy of one slot."""

    pid: int
    pulse: float
    item: int
    origin: int
    attempt: int
    deadline: float
    timeout_ms: float
    held: tuple[tuple[int, int], ...]  # (item id, origin)


def create_board(ctx: Any, slots: int) -> Any:
    """A zeroed shared array of `slots` slots, passable to spawned children."""
    return ctx.RawArray(Slot, slots)


class PulseWriter:
    """A child's handle on its own slot."""

    def __init__(self, board: Any, index: int) -> None:
        self.slot: Slot = board[index]

    def _begin(self) -> None:
        self.slot.seq += 1

    def _end(self) -> None:
        self.slot.seq += 1

    def start(self, pid: int) -> None:
        self._begin()
        self.slot.pid = pid
        self.slot.pulse = time.monotonic()
        self.slot.item = self.slot.origin = self.slot.attempt = 0
        self.slot.deadline = self.slot.timeout_ms = 0.0
        self.slot.held_count = 0
        self._end()

    def beat(self) -> None:
        self.slot.pulse = time.monotonic()

    def hold(self, items: list[tuple[int, int]]) -> None:
        """Publish the items just taken from the work queue (at most MAX_HELD_ITEMS)."""
        self._begin()
        for i, (item, origin) in enumerate(items[:MAX_HELD_ITEMS]):
            self.slot.held[i] = item
            self.slot.held_origin[i] = origin
        self.slot.held_count = min(len(items), MAX_HELD_ITEMS)
        self._end()

    def release(self, item: int) -> None:
        """An item's result was returned: it is no longer held."""
        self._begin()
        count = self.slot.held_count
        for i in range(count):
            if self.slot.held[i] == item:
                last = count - 1
                self.slot.held[i] = self.slot.held[last]
                self.slot.held_origin[i] = self.slot.held_origin[last]
                self.slot.held_count = last
                break
        self._end()

    def running(self, item: int, origin: int, attempt: int, timeout_ms: float | None) -> None:
        """An attempt of `item` starts now; its deadline follows from `timeout_ms`."""
        self._begin()
        now = time.monotonic()
        self.slot.pulse = now
        self.slot.item = item
        self.slot.origin = origin
        self.slot.attempt = attempt
        self.slot.timeout_ms = timeout_ms or 0.0
        self.slot.deadline = now + timeout_ms / 1000.0 if timeout_ms else 0.0
        self._end()

    def idle(self) -> None:
        self._begin()
        self.slot.item = self.slot.attempt = 0
        self.slot.deadline = self.slot.timeout_ms = 0.0
        self.slot.pulse = time.monotonic()
        self._end()


def read_slot(board: Any, index: int) -> SlotView:
    """A consistent copy of slot `index` (retries while a writer is mid-update)."""
    slot: Slot = board[index]
    for _ in range(1000):
        before = slot.seq
        if before % 2 == 0:
            view = SlotView(
                pid=slot.pid,
                pulse=slot.pulse,
                item=slot.item,
                origin=slot.origin,
                attempt=slot.attempt,
                deadline=slot.deadline,
                timeout_ms=slot.timeout_ms,
                held=tuple((slot.held[i], slot.held_origin[i]) for i in range(min(slot.held_count, MAX_HELD_ITEMS))),
            )
            if slot.seq == before:
                return view
        time.sleep(0)
    raise RuntimeError(f"pulse slot {index} kept changing while being read")


def reset_slot(board: Any, index: int) -> None:
    """Clear a slot whose child is gone (only the supervisor calls this)."""
    ctypes.memset(ctypes.addressof(board[index]), 0, ctypes.sizeof(Slot))
