"""A progress bar on stderr, no dependencies.

On a terminal it redraws one line at most 10 times a second; otherwise (CI logs, files)
it prints a plain line every PLAIN_EVERY_S seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Final, TextIO

WIDTH: Final = 28
REDRAW_S: Final = 0.1
PLAIN_EVERY_S: Final = 5.0


class Progress:
    """`update(done, **extra)` while running, `close()` at the end. total=None: unbounded."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None,
                 enabled: bool | None = None, clock: Any = time.monotonic) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.tty if enabled is None else enabled
        self.clock = clock
        self.started = clock()
        self._drawn = float("-inf")
        self._width = 0
        self.done = 0

    def update(self, done: int, force: bool = False, **extra: Any) -> None:
        self.done = done
        if not self.enabled:
            return
        now = self.clock()
        every = REDRAW_S if self.tty else PLAIN_EVERY_S
        if not force and now - self._drawn < every:
            return
        self._drawn = now
        line = self.render(done, now - self.started, extra)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def render(self, done: int, elapsed: float, extra: dict[str, Any]) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [self.label]
        if self.total:
            frac = min(1.0, done / self.total)
            filled = int(frac * WIDTH)
            parts.append("[" + "#" * filled + "." * (WIDTH - filled) + "]")
            parts.append(f"{done}/{self.total}")
            if rate > 0 and done < self.total:
                parts.append(f"ETA {(self.total - done) / rate:.0f}s")
        else:
            parts.append(f"{done}")
        parts.append(f"{rate:.1f}/s")
        parts.append(f"{elapsed:.0f}s")
        parts += [f"{k.replace('_', ' ')} {v}" for k, v in extra.items()]
        return " ".join(parts)

    def close(self, **extra: Any) -> None:
        if not self.enabled:
            return
        self.update(self.done, force=True, **extra)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
