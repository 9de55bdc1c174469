"""`Batcher`: collect items and say when to flush them, by count or by age.

Pure: the caller supplies the clock and decides what a flush does. The receiver's commit
thread coalesces finished messages' effects here so SendMessageBatch, the status writes and
DeleteMessageBatch go out in few calls, yet no finished message waits longer than
`max_age_s` for its delete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """Items wait until there are `max_items` of them or the oldest is `max_age_s` old."""

    def __init__(self, max_items: int, max_age_s: float, clock: Callable[[], float]) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_age_s < 0:
            raise ValueError(f"max_age_s must not be negative, got {max_age_s}")
        self.max_items = max_items
        self.max_age_s = max_age_s
        self.clock = clock
        self._items: list[T] = []
        self._oldest_at: float | None = None

    def add(self, item: T) -> bool:
        """Add an item; True if the batch is now full (flush it)."""
        if self._oldest_at is None:
            self._oldest_at = self.clock()
        self._items.append(item)
        return len(self._items) >= self.max_items

    def due(self, now: float | None = None) -> bool:
        """Whether the batch should be flushed now: full, or its oldest item is old enough."""
        if not self._items:
            return False
        if len(self._items) >= self.max_items:
            return True
        now = self.clock() if now is None else now
        assert self._oldest_at is not None
        return now - self._oldest_at >= self.max_age_s

    def wait_s(self, now: float | None = None) -> float | None:
        """Seconds until the batch falls due (0 if due now); None when it is empty."""
        if not self._items:
            return None
        if len(self._items) >= self.max_items:
            return 0.0
        now = self.clock() if now is None else now
        assert self._oldest_at is not None
        return max(0.0, self._oldest_at + self.max_age_s - now)

    def drain(self) -> list[T]:
        """Take every item, oldest first; the batcher is empty afterwards."""
        items, self._items, self._oldest_at = self._items, [], None
        return items

    def __len__(self) -> int:
        return len(self._items)
