"""The supervisor's decisions without real processes: what a gone executor's items become,
when a node's deadline is enforced, and that a failing loop halts with a non-zero code."""

from __future__ import annotations

import multiprocessing
import signal
import time
from typing import Any

import orjson
import pytest

from flowcraft_sqs import pulse, supervisor
from flowcraft_sqs.config import TIMEOUT_GRACE_S, Settings
from flowcraft_sqs.errors import EXIT_FAILURE
from flowcraft_sqs.executor import WORK_HEADER
from flowcraft_sqs.supervisor import Child, Supervisor

CTX = multiprocessing.get_context("spawn")


class GoneProcess:
    def __init__(self, pid: int, exitcode: int = -9) -> None:
        self.pid, self.exitcode = pid, exitcode


class ResultQueue:
    """Stands in for a receiver's result queue: keeps what is put."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def put_many(self, batch: list[bytes], timeout: float | None = None) -> int:
        self.items.extend(orjson.loads(raw) for raw in batch)
        return len(batch)


def supervisor_with_boards(procs: int = 1, receivers: int = 2) -> Supervisor:
    settings = Settings(app="x", backend="memory", procs=procs, receivers=receivers, concurrency=8)
    sup = Supervisor(settings, CTX)
    sup.pulse_board = pulse.create_board(CTX, len(sup.children))
    sup.held_tables = pulse.create_held_tables(CTX, procs, settings.concurrency)
    sup.results = [ResultQueue() for _ in range(receivers)]  # type: ignore[misc]
    return sup


def backdate_deadline(sup: Supervisor, entry: int, seconds: float) -> None:
    words = memoryview(sup.held_tables).cast("B").cast("q")
    words[entry * pulse.ENTRY_WORDS + 4] = time.monotonic_ns() - int(seconds * 1e9)


def test_a_gone_executors_items_are_all_reported_to_their_own_receivers() -> None:
    sup = supervisor_with_boards()
    writer = pulse.HeldWriter(sup.held_tables, 0, 8)
    running = writer.take(101, 0)
    writer.running(running, 1, None)
    writer.take(102, 1)  # taken, never started
    writer.take(103, 1)
    child = sup.children[0]
    child.process = GoneProcess(pid=4242)
    sup._report_held(child)
    assert sup.results[0].items == [{"id": 101, "lost": "died", "attempt": 0, "timeout_ms": 0.0}]
    assert [(r["id"], r["lost"]) for r in sup.results[1].items] == [(102, "unstarted"), (103, "unstarted")]
    # and the table is clear for the executor that replaces it
    assert pulse.read_held(sup.held_tables, 0, 8) == []


def test_an_item_half_written_by_a_killed_executor_is_still_reported() -> None:
    sup = supervisor_with_boards()
    words = memoryview(sup.held_tables).cast("B").cast("q")
    words[0] = 1  # the sequence left odd: killed mid-write, after the item id was stored
    words[1], words[2] = 77, 1
    child = sup.children[0]
    child.process = GoneProcess(pid=4242)
    sup._report_held(child)
    assert [(r["id"], r["lost"]) for r in sup.results[1].items] == [(77, "unstarted")]


def test_a_node_past_its_deadline_gets_its_executor_killed_and_its_attempt_reported_as_a_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sup = supervisor_with_boards()
    sup.counters = type("Counters", (), {"inc": lambda self, *a: None})()
    writer = pulse.HeldWriter(sup.held_tables, 0, 8)
    late = writer.take(201, 0)
    writer.running(late, 2, 1.0)
    backdate_deadline(sup, late, seconds=TIMEOUT_GRACE_S + 1)  # its 1 ms timeout passed long ago
    fine = writer.take(202, 0)
    writer.running(fine, 1, None)
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(supervisor, "_kill", lambda pid, signum: killed.append((pid, signum)))
    child = sup.children[0]
    child.process = GoneProcess(pid=5151, exitcode=None)  # type: ignore[arg-type]
    sup._enforce_deadlines()
    assert killed == [(5151, signal.SIGKILL)]
    # When it is reaped, the late attempt fails as a timeout and the other runs again
    sup._report_held(child)
    assert sorted((r["id"], r["lost"], r["attempt"]) for r in sup.results[0].items) == [
        (201, "timeout", 2), (202, "died", 0)]


def test_an_executor_within_its_deadlines_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    sup = supervisor_with_boards()
    writer = pulse.HeldWriter(sup.held_tables, 0, 8)
    writer.running(writer.take(301, 0), 1, 60_000.0)
    monkeypatch.setattr(supervisor, "_kill", lambda pid, signum: pytest.fail("killed"))
    sup.children[0].process = GoneProcess(pid=1, exitcode=None)  # type: ignore[arg-type]
    sup._enforce_deadlines()
    assert sup.children[0].timed_out is None


def test_a_failing_supervisor_loop_halts_with_a_non_zero_code(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    sup = Supervisor(Settings(app="x", backend="memory", procs=1), CTX)
    monkeypatch.setattr(sup, "_install_signal_handlers", lambda: None)
    monkeypatch.setattr(sup, "_start", lambda: None)
    monkeypatch.setattr(sup, "_wait", lambda timeout: None)
    monkeypatch.setattr(sup, "_reap_exited", lambda: (_ for _ in ()).throw(RuntimeError("torn slot")))
    monkeypatch.setattr(sup, "_shutdown", lambda: sup.exit_code)
    assert sup.run() == EXIT_FAILURE
    assert "the supervisor loop failed" in caplog.text and "torn slot" in caplog.text


def test_a_work_items_header_carries_its_id_and_origin() -> None:
    assert WORK_HEADER.unpack(WORK_HEADER.pack(2**60 + 5, 3)) == (2**60 + 5, 3)


def test_children_are_laid_out_executors_first_then_receivers_with_a_standby_for_reloads() -> None:
    sup = Supervisor(Settings(app="x", backend="memory", procs=2, receivers=1), CTX)
    assert [(c.role, c.slot, c.active) for c in sup.children] == [
        ("executor", 0, True), ("executor", 1, True), ("receiver", 2, True), ("receiver", 3, False)]
    assert all(isinstance(c, Child) for c in sup.children)
