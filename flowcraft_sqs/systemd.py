"""sd_notify for `Type=notify` units: READY, STATUS, WATCHDOG, STOPPING.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op. A failed send is logged at debug
level and never raised: losing a status line must not take the worker down. Only the
supervisor notifies (the unit uses NotifyAccess=main).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("flowcraft_sqs.systemd")


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1", "STATUS=...") to systemd; True if it was sent."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket: the name starts with a NUL byte
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify(%r) to %r failed: %s", state, address, exc)
        return False


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """How often to send WATCHDOG=1 (half of WatchdogSec), or None if the watchdog is off.

    WATCHDOG_PID, when set, names the process the watchdog applies to.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        log.debug("ignoring WATCHDOG_USEC=%r: not an integer", usec)
        return None
    return value / 1_000_000 / 2 if value > 0 else None


class Watchdog:
    """Sends WATCHDOG=1 at most every half WatchdogSec; call `beat(now)` from the main loop."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = env
        self.interval_s = watchdog_interval_s(env)
        self._last = float("-inf")

    def beat(self, now: float) -> None:
        if self.interval_s is not None and now - self._last >= self.interval_s:
            self._last = now
            notify("WATCHDOG=1", self.env)
