"""LeaseBook and LeaseKeeper: which messages to extend, when, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from flowcraft_sqs.errors import TransientError
from flowcraft_sqs.leases import MAX_EXTENSION_FAILURES, LeaseBook, LeaseKeeper, RunToucher


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_falls_due_after_the_fraction_of_its_visibility() -> None:
    clock = Clock()
    book = LeaseBook(visibility_s=30, fraction=0.5, clock=clock)
    book.track("r1")
    clock.now += 14.9
    assert book.due() == []
    assert book.wait_s() == pytest.approx(0.1)
    clock.now += 0.1
    assert book.due() == ["r1"]


def test_an_extension_restarts_the_period() -> None:
    clock = Clock()
    book = LeaseBook(30, 0.5, clock)
    book.track("r1")
    clock.now += 15
    book.extended(book.due())
    assert book.due() == []
    clock.now += 15
    assert book.due() == ["r1"]


def test_released_receipts_are_no_longer_extended() -> None:
    clock = Clock()
    book = LeaseBook(30, 0.5, clock)
    book.track("r1")
    book.track("r2")
    assert book.release("r1") is True
    assert book.release("r1") is False
    clock.now += 20
    assert book.due() == ["r2"]
    assert "r1" not in book and len(book) == 1


def test_a_receipt_is_dropped_after_repeated_failed_extensions() -> None:
    clock = Clock()
    book = LeaseBook(30, 0.5, clock)
    book.track("r1")
    for _ in range(MAX_EXTENSION_FAILURES - 1):
        assert book.failed(["r1"]) == []
    assert book.failed(["r1"]) == ["r1"]
    assert "r1" not in book


def test_a_success_resets_the_failure_count() -> None:
    book = LeaseBook(30, 0.5, Clock())
    book.track("r1")
    book.failed(["r1"])
    book.extended(["r1"])
    for _ in range(MAX_EXTENSION_FAILURES - 1):
        assert book.failed(["r1"]) == []


def test_a_message_is_not_extended_past_sqs_twelve_hour_limit() -> None:
    clock = Clock()
    book = LeaseBook(visibility_s=600, fraction=0.5, clock=clock, max_age_s=1000)
    book.track("r1")
    clock.now += 300
    assert book.due() == ["r1"]  # 300 + 600 <= 1000
    book.extended(["r1"])
    clock.now += 300
    assert book.due() == []  # 600 + 600 > 1000: dropped, it will be redelivered
    assert "r1" not in book


def test_fraction_must_be_between_zero_and_one() -> None:
    with pytest.raises(ValueError):
        LeaseBook(30, 1.0, Clock())


class FakeQueue:
    def __init__(self, failing: set[str] = frozenset(), error: Exception | None = None) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.failing = failing
        self.error = error

    def change_visibility(self, receipts, seconds):
        self.calls.append((list(receipts), seconds))
        if self.error:
            raise self.error
        return [r for r in receipts if r in self.failing]


def test_the_keeper_extends_due_leases_in_batches_of_ten() -> None:
    clock = Clock()
    book = LeaseBook(30, 0.5, clock)
    for i in range(23):
        book.track(f"r{i}")
    clock.now += 15
    queue = FakeQueue()
    extended: list[int] = []
    keeper = LeaseKeeper(book, queue, threading.Lock(), threading.Event(), on_extended=extended.append)
    keeper.extend_due()
    assert [len(receipts) for receipts, _ in queue.calls] == [10, 10, 3]
    assert {seconds for _, seconds in queue.calls} == {30}
    assert sum(extended) == 23
    assert book.due() == []


def test_the_keeper_retries_failed_extensions_on_the_next_tick() -> None:
    clock = Clock()
    book = LeaseBook(30, 0.5, clock)
    book.track("ok")
    book.track("bad")
    clock.now += 15
    keeper = LeaseKeeper(book, FakeQueue(failing={"bad"}), threading.Lock(), threading.Event())
    keeper.extend_due()
    assert book.due() == ["bad"]


def test_a_transient_error_keeps_every_lease_due() -> None:
    clock = Clock()
    book = LeaseBook(30, 0.5, clock)
    book.track("r1")
    clock.now += 15
    keeper = LeaseKeeper(book, FakeQueue(error=TransientError("throttled")), threading.Lock(), threading.Event())
    keeper.extend_due()
    assert book.due() == ["r1"]


def test_runs_with_long_nodes_are_touched_once_per_interval() -> None:
    clock = Clock()
    toucher = RunToucher(60, clock)
    running = {"run-a": clock.now, "run-b": clock.now + 30}
    clock.now += 59
    assert toucher.due(running) == []
    clock.now += 1
    assert toucher.due(running) == ["run-a"]
    clock.now += 30
    assert toucher.due(running) == ["run-b"]
    clock.now += 30
    assert toucher.due(running) == ["run-a"]
    assert toucher.due({}) == []
