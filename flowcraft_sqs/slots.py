"""`NodeSlots`: where a process runs its nodes, many at once.

Most nodes wait (an LLM call, an HTTP API, a database query), so one process keeps many in
flight: an async node runs as a task on the process's event loop, a sync node in a thread
of a bounded pool. Two limits apply:

- `concurrency`: nodes in flight at once, async and sync together (each holds a leased SQS
  message, so this also bounds what a process holds);
- `threads`: sync nodes in flight at once, each in a thread of the pool. CPU-bound code
  gains nothing from threads under the GIL: `threads == 1` runs one sync node at a time,
  and the other processes take the rest.

A sync node whose attempt timed out is abandoned, not stopped (a thread cannot be killed):
its thread stays busy until the node's code returns. `abandoned` counts such threads, so
the owner can stop taking work and be replaced once the others finished.

Used by the executor processes, the single-process `SqsAdapter` and the Lambda handler,
so every driver runs nodes the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

#: Default nodes in flight per process: enough for LLM/HTTP-bound work to overlap widely
#: while one process's memory stays small (a waiting async node with a small context
#: costs about 7 KB in the node runner, measured on the project machine).
DEFAULT_CONCURRENCY: Final = 100
#: Default sync nodes in flight per process: dramatiq's default thread count, enough for a
#: blocking HTTP client to overlap; CPU-bound code should use 1 (see the module docstring).
DEFAULT_THREADS: Final = 8
#: Upper bounds accepted for the two limits (per process).
MAX_CONCURRENCY: Final = 10_000
MAX_THREADS: Final = 1_000


class _CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the calls running in it right now."""

    def __init__(self, threads: int) -> None:
        super().__init__(max_workers=threads, thread_name_prefix="node")
        self.running = 0
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        def counted() -> Any:
            with self._lock:
                self.running += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        return super().submit(counted)


class NodeSlots:
    """The limits and the thread pool of one process's nodes."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, threads: int = DEFAULT_THREADS) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")
        if not 1 <= threads <= MAX_THREADS:
            raise ValueError(f"threads must be between 1 and {MAX_THREADS}, got {threads}")
        self.concurrency = concurrency
        self.threads = threads
        self.pool = _CountingPool(threads)
        self._awaited = 0  # offloaded calls whose caller still awaits them

    async def offload(self, call: Callable[[], Any]) -> Any:
        """Run a sync call in the pool and await it (the `offload` of `execute_node`)."""
        self._awaited += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, call)
        finally:
            self._awaited -= 1

    @property
    def abandoned(self) -> int:
        """Threads still running a call nobody awaits any more (a timed-out sync attempt).

        A call's thread stops counting before its future resolves, so a call that simply
        finished is never counted here."""
        return max(0, self.pool.running - self._awaited)

    def free_threads(self) -> int:
        """Sync nodes that could start now without waiting for a thread."""
        # Busy threads: the awaited calls (started or queued in the pool) plus abandoned ones.
        return max(0, self.threads - max(self.pool.running, self._awaited))

    def shutdown(self) -> None:
        """Stop the pool without waiting: an abandoned thread would never let go."""
        self.pool.shutdown(wait=False, cancel_futures=True)
