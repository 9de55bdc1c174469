"""Which worker process is which, for RSS per executor.

Every process of a `flowcraft-worker` imports the `--app`; `flowcraft_sqs.loadtest.app`
calls `record()` there, which writes this process's multiprocessing name (the supervisor
names its children `flowcraft executor[0]`, `flowcraft receiver[0]`, ...) to
`$FLOWCRAFT_LOADTEST_PROC_DIR/<pid>`. The harness maps the process sampler's peak RSS per
pid onto those roles. Without the variable nothing is written.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

PROC_DIR_ENV: Final = "FLOWCRAFT_LOADTEST_PROC_DIR"
_ROLE = re.compile(r"^flowcraft (?P<role>[a-z]+)\[\d+\]$")


def record() -> None:
    folder = os.environ.get(PROC_DIR_ENV)
    if not folder:
        return
    with contextlib.suppress(OSError):  # a missing role costs a report figure, never the worker
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / str(os.getpid())).write_text(multiprocessing.current_process().name)


def read(folder: str | Path) -> dict[int, str]:
    """pid -> the process's multiprocessing name, for every process that recorded one."""
    names: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for path in Path(folder).iterdir():
            if path.name.isdigit():
                with contextlib.suppress(OSError):
                    names[int(path.name)] = path.read_text().strip()
    return names


def role_of(name: str) -> str:
    """`flowcraft executor[1]` -> `executor`; anything else (the supervisor) -> `other`."""
    m = _ROLE.match(name)
    return m["role"] if m else "other"


def peak_rss_by_role(peak_by_pid: Mapping[int, int], names: Mapping[int, str]) -> dict[str, list[int]]:
    """role -> the peak RSS (bytes) of each of its processes, largest first."""
    out: dict[str, list[int]] = {}
    for pid, rss in peak_by_pid.items():
        if pid in names:
            out.setdefault(role_of(names[pid]), []).append(rss)
    return {role: sorted(v, reverse=True) for role, v in sorted(out.items())}
