"""sd_notify against a real unix datagram socket, and its silence outside systemd."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from flowcraft_sqs import systemd


@pytest.fixture
def listener(tmp_path: Path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def test_notify_sends_the_state_as_one_datagram(listener) -> None:
    path, sock = listener
    assert systemd.notify("READY=1\nSTATUS=running", {"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=running"


def test_notify_reaches_an_abstract_socket_named_with_an_at_sign() -> None:
    name = f"flowcraft-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        assert systemd.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_is_a_no_op_outside_systemd() -> None:
    assert systemd.notify("READY=1", {}) is False


def test_a_dead_socket_is_logged_at_debug_not_raised(tmp_path: Path, caplog) -> None:
    caplog.set_level("DEBUG", logger="flowcraft_sqs.systemd")
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    assert any("sd_notify" in r.message and r.levelname == "DEBUG" for r in caplog.records)


def test_the_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert systemd.watchdog_interval_s({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert systemd.watchdog_interval_s({}) is None
    assert systemd.watchdog_interval_s({"WATCHDOG_USEC": "nonsense"}) is None
    assert systemd.watchdog_interval_s({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None
    env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert systemd.watchdog_interval_s(env) == 0.5


def test_the_watchdog_beats_at_most_once_per_interval(listener) -> None:
    path, sock = listener
    dog = systemd.Watchdog({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    dog.beat(100.0)
    dog.beat(100.5)  # too soon: nothing sent
    dog.beat(101.0)
    assert sock.recv(64) == b"WATCHDOG=1"
    assert sock.recv(64) == b"WATCHDOG=1"
    sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        sock.recv(64)
