"""Batcher: flush by count or by age, on a fake clock."""

from __future__ import annotations

import pytest

from flowcraft_sqs.batching import Batcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_empty_batcher_is_never_due_and_has_no_wait() -> None:
    batcher: Batcher[int] = Batcher(3, 0.05, Clock())
    assert not batcher.due()
    assert batcher.wait_s() is None
    assert batcher.drain() == []


def test_a_batch_is_due_once_it_holds_max_items() -> None:
    batcher: Batcher[int] = Batcher(3, 10.0, Clock())
    assert batcher.add(1) is False
    assert batcher.add(2) is False
    assert batcher.add(3) is True
    assert batcher.due() and batcher.wait_s() == 0.0


def test_a_batch_is_due_when_its_oldest_item_reaches_max_age() -> None:
    clock = Clock()
    batcher: Batcher[str] = Batcher(10, 0.25, clock)
    batcher.add("a")
    clock.now += 0.125
    batcher.add("b")
    assert not batcher.due()
    assert batcher.wait_s() == pytest.approx(0.125)
    clock.now += 0.125
    assert batcher.due()


def test_drain_returns_items_oldest_first_and_restarts_the_age() -> None:
    clock = Clock()
    batcher: Batcher[str] = Batcher(10, 0.2, clock)
    batcher.add("a")
    batcher.add("b")
    clock.now += 1
    assert batcher.drain() == ["a", "b"]
    assert len(batcher) == 0
    batcher.add("c")
    assert not batcher.due()  # the age counts from "c", not from "a"


def test_zero_age_flushes_every_item_at_once() -> None:
    batcher: Batcher[int] = Batcher(10, 0.0, Clock())
    batcher.add(1)
    assert batcher.due()


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_items"):
        Batcher(0, 1.0, Clock())
    with pytest.raises(ValueError, match="max_age_s"):
        Batcher(1, -1.0, Clock())
