"""Per-process logging: text or JSON lines on stderr, every line tagged with role and slot.

Each process (supervisor, receiver[r], executor[e]) calls `setup()` once at start; spawned
children inherit nothing from the parent's logging. Message bodies and credentials are never
logged at INFO: our code logs ids only, and the AWS libraries' loggers (which can print
request parameters) are held at WARNING unless --log-level DEBUG.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

#: Loggers of libraries that may echo request parameters; quiet unless debugging.
NOISY_LIBRARIES = ("botocore", "boto3", "urllib3", "s3transfer")

_ROLE = {"role": "main", "slot": -1}


class _ProcessTag(logging.Filter):
    """Adds `role` (supervisor, receiver, executor) and `slot` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = _ROLE["role"]
        record.slot = _ROLE["slot"]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, role, slot, pid, logger, msg (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "role": getattr(record, "role", None),
            "slot": getattr(record, "slot", None),
            "pid": record.process,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(tag)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        role, slot = getattr(record, "role", "main"), getattr(record, "slot", -1)
        tag = f"{role}[{slot}]" if slot is not None and slot >= 0 else role
        record.tag = f"{tag} pid={record.process}"  # read by the format string
        return super().format(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.localtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}"


def setup(role: str, slot: int = -1, fmt: str = "text", level: str = "INFO") -> None:
    """Configure the root logger for this process; replaces any handlers already there."""
    _ROLE["role"], _ROLE["slot"] = role, slot
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ProcessTag())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)


def get_logger(module: str, role: str, slot: int | None = None) -> logging.Logger:
    """A logger named by module and role, e.g. `flowcraft_sqs.receiver.intake[0]`."""
    suffix = f"[{slot}]" if slot is not None and slot >= 0 else ""
    return logging.getLogger(f"{module}.{role}{suffix}")
