"""Leases: keeping received SQS messages hidden while their nodes run.

A received message is hidden for the queue's visibility timeout. A node may run longer, so
the receiver that owns the message extends its visibility (its *lease*) once the message's
last extension is `fraction` of the visibility old. `LeaseBook` is the pure bookkeeping
(which receipts, due when, on an injected clock); `LeaseKeeper` is the thin thread in each
receiver that performs the extensions, ten per ChangeMessageVisibilityBatch call.

Naming: the *pulse* is a child's liveness signal to the supervisor; the *lease* is a
receiver's hold on a message in SQS. They are different things and never share a name.

A thread is fine here despite the GIL: it sleeps almost always and its work is one HTTP call
per ten messages per extension period.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .config import SQS_MAX_BATCH, SQS_MAX_VISIBILITY_S
from .errors import FlowcraftError

log = logging.getLogger("flowcraft_sqs.leases")

#: Consecutive failed extensions after which a receipt is dropped: by then it is stale
#: (the message was deleted, or became visible and was taken by another receiver).
MAX_EXTENSION_FAILURES: Final = 3
#: The lease thread never sleeps longer than this (s), so stop requests are seen promptly.
LEASE_TICK_S: Final = 0.25


@dataclass
class _Lease:
    received_at: float
    extended_at: float
    failures: int = 0


class LeaseBook:
    """Which receipts to extend, and when. Not thread-safe: callers hold their own lock."""

    def __init__(
        self,
        visibility_s: float,
        fraction: float,
        clock: Callable[[], float],
        max_age_s: float = SQS_MAX_VISIBILITY_S,
    ) -> None:
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
        self.visibility_s = visibility_s
        self.fraction = fraction
        self.clock = clock
        self.max_age_s = max_age_s
        self._leases: dict[str, _Lease] = {}

    @property
    def period_s(self) -> float:
        """How long after an extension the next one falls due."""
        return self.visibility_s * self.fraction

    def track(self, receipt: str, received_at: float | None = None) -> None:
        """Start tracking a receipt received at `received_at` (default: now)."""
        at = self.clock() if received_at is None else received_at
        self._leases.setdefault(receipt, _Lease(at, at))

    def release(self, receipt: str) -> bool:
        """Stop tracking (the message was deleted or handed back); False if unknown."""
        return self._leases.pop(receipt, None) is not None

    def due(self, now: float | None = None) -> list[str]:
        """Receipts whose extension is due, oldest first.

        A receipt that could not be extended by a full visibility period without passing
        SQS's 12-hour limit is dropped (it will become visible again and be redelivered).
        """
        now = self.clock() if now is None else now
        due: list[str] = []
        for receipt, lease in list(self._leases.items()):
            if now - lease.extended_at < self.period_s:
                continue
            if now - lease.received_at + self.visibility_s > self.max_age_s:
                log.warning("message held for %.0f s reaches SQS's 12 h visibility limit; "
                            "it will be redelivered", now - lease.received_at)
                del self._leases[receipt]
                continue
            due.append(receipt)
        return due

    def extended(self, receipts: Iterable[str], now: float | None = None) -> None:
        """Record successful extensions at `now`."""
        now = self.clock() if now is None else now
        for receipt in receipts:
            lease = self._leases.get(receipt)
            if lease is not None:
                lease.extended_at = now
                lease.failures = 0

    def failed(self, receipts: Iterable[str]) -> list[str]:
        """Record failed extensions; returns the receipts given up on (no longer tracked)."""
        dropped = []
        for receipt in receipts:
            lease = self._leases.get(receipt)
            if lease is None:
                continue
            lease.failures += 1
            if lease.failures >= MAX_EXTENSION_FAILURES:
                del self._leases[receipt]
                dropped.append(receipt)
        return dropped

    def wait_s(self, now: float | None = None) -> float | None:
        """Seconds until the next extension falls due; None when nothing is tracked."""
        if not self._leases:
            return None
        now = self.clock() if now is None else now
        oldest = min(lease.extended_at for lease in self._leases.values())
        return max(0.0, oldest + self.period_s - now)

    def __contains__(self, receipt: object) -> bool:
        return receipt in self._leases

    def __len__(self) -> int:
        return len(self._leases)


class RunToucher:
    """Which runs' status `lastUpdated` to refresh while their nodes run long.

    The reconciler treats a `running` run whose `lastUpdated` is old as stalled; a single
    node running for many minutes must not look like that.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._touched: dict[str, float] = {}

    def due(self, running_since: dict[str, float], now: float | None = None) -> list[str]:
        """Run ids (from run id -> start of its oldest running node) that need a touch now."""
        now = self.clock() if now is None else now
        for run_id in list(self._touched):
            if run_id not in running_since:
                del self._touched[run_id]
        due = []
        for run_id, since in running_since.items():
            last = self._touched.get(run_id, since)
            if now - last >= self.interval_s:
                due.append(run_id)
                self._touched[run_id] = now
        return due


def chunks(items: Sequence[str], size: int = SQS_MAX_BATCH) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class LeaseKeeper:
    """The receiver's lease thread: extends due leases, and runs `on_tick` each time round.

    `lock` guards `book` (the commit and intake threads track and release receipts). AWS
    calls are made outside the lock, on a snapshot of due receipts.
    """

    def __init__(
        self,
        book: LeaseBook,
        queue: Any,
        lock: threading.Lock,
        stop: threading.Event,
        on_tick: Callable[[], None] | None = None,
        on_extended: Callable[[int], None] | None = None,
    ) -> None:
        self.book = book
        self.queue = queue
        self.lock = lock
        self.stop = stop
        self.on_tick = on_tick
        self.on_extended = on_extended
        self.last_loop_at = book.clock()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                wait = self.book.wait_s()
            self.stop.wait(LEASE_TICK_S if wait is None else min(wait, LEASE_TICK_S))
            self.extend_due()
            if self.on_tick is not None:
                self.on_tick()
            self.last_loop_at = self.book.clock()

    def extend_due(self) -> None:
        with self.lock:
            due = self.book.due()
        for batch in chunks(due):
            self._extend(batch)

    def _extend(self, receipts: Sequence[str]) -> None:
        try:
            failed = set(self.queue.change_visibility(receipts, int(self.book.visibility_s)))
        except FlowcraftError as exc:  # transient: every receipt stays due for the next tick
            log.warning("could not extend %d leases (%s); retrying", len(receipts), exc)
            failed = set(receipts)
        now = self.book.clock()
        with self.lock:
            self.book.extended([r for r in receipts if r not in failed], now)
            dropped = self.book.failed([r for r in receipts if r in failed])
        if dropped:
            log.warning("gave up extending %d leases after %d failures; those messages will be "
                        "redelivered", len(dropped), MAX_EXTENSION_FAILURES)
        if self.on_extended is not None:
            self.on_extended(len(receipts) - len(failed))
