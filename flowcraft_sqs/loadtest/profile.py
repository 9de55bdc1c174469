"""Sampling profiles of the worker with py-spy (optional: `pip install py-spy`).

`--profile PATH` (self-contained mode) records every worker process with
`py-spy record --subprocesses --format raw` during the measured phase, so the figures and the
profile come from the same load. The raw file is folded stacks (one `frame;frame;... count`
line per stack, the format of flamegraph.pl and speedscope); `summarize` turns it into the
hottest functions of each process role (supervisor, receiver, executor), by self time and
including callees. py-spy samples from outside the process (--nonblocking: without pausing
it), so the load is barely disturbed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Final

RATE_HZ: Final = 200
# With --subprocesses each stack starts with one `process PID:"cmdline"` frame per ancestor
# (a cmdline may itself contain ';', so these are matched before splitting).
_PROCESS = re.compile(r'process (\d+):"[^"]*"(?:;|$)')
_LINE_NO = re.compile(r":\d+\)$")


def pyspy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, out: str | Path, rate: int = RATE_HZ) -> subprocess.Popen[bytes] | None:
    """Start recording `pid` and its children; None if py-spy is not installed."""
    exe = pyspy()
    if exe is None:
        return None
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", str(rate),
         "--format", "raw", "--output", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 20.0) -> str:
    """Stop recording (SIGINT makes py-spy write its file); returns its stderr tail."""
    if proc is None:
        return ""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return (err or b"").decode(errors="replace")[-500:]


def _role(frames: set[str]) -> str:
    text = " ".join(frames)
    for role, marker in (("receiver", "receiver.py"), ("executor", "executor.py"),
                         ("supervisor", "supervisor.py")):
        if marker in text:
            return role
    return "other"


def summarize(path: str | Path, top: int = 12) -> dict[str, Any]:
    """{"roles": {role: {"processes", "samples", "self": [[frame, share]], "inclusive": [...]}}}.

    Shares are of that role's samples; frames drop line numbers so a function is one row.
    """
    per_process: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        process, pos = "?", 0
        while m := _PROCESS.match(stack, pos):
            process, pos = m.group(1), m.end()
        frames = [_LINE_NO.sub(")", f) for f in stack[pos:].split(";") if f and not f.startswith("thread ")]
        per_process[process].append((frames, int(count)))
        total += int(count)
    roles: dict[str, dict[str, Any]] = {}
    for stacks in per_process.values():
        role = _role({f for frames, _ in stacks for f in frames})
        r = roles.setdefault(role, {"processes": 0, "samples": 0, "self": Counter(), "inclusive": Counter()})
        r["processes"] += 1
        for frames, n in stacks:
            r["samples"] += n
            if frames:
                r["self"][frames[-1]] += n
            for f in set(frames):
                r["inclusive"][f] += n
    out: dict[str, Any] = {"samples": total, "rate_hz": RATE_HZ, "roles": {}}
    for role, r in sorted(roles.items(), key=lambda kv: -kv[1]["samples"]):
        n = max(1, r["samples"])
        out["roles"][role] = {
            "processes": r["processes"], "samples": r["samples"],
            "self": [[f, c / n] for f, c in r["self"].most_common(top)],
            "inclusive": [[f, c / n] for f, c in r["inclusive"].most_common(top + 8)
                          if not f.startswith(("<module>", "_run_module_as_main", "_run_code", "spawn_main",
                                               "_main (multiprocessing", "_bootstrap", "run (multiprocessing"))][:top],
        }
    return out
