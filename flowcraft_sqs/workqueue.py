"""`WorkQueue`: a bounded multi-producer, multi-consumer queue of `bytes` in shared memory.

Receivers put node-work messages (whole SQS batches with `put_many`); executors take them
one or several at a time (`get`, `get_many`). Messages are raw bytes (orjson, encoded by the
caller), never pickled. Only the handle is pickled, to hand it to a `spawn`ed child, which
re-attaches to the segment by name.

Layout of the one `multiprocessing.shared_memory` segment (offsets in bytes):

    offset  size  field                                           written by
    ------  ----  ----------------------------------------------  ----------------------
         0    32  magic, layout version, capacity C, max_messages  create() only
        64     8  HEAD = put count (high 32 bits) | ring offset    producers, under P-lock
       128     8  TAIL = get count (high 32 bits) | ring offset    consumers, under C-lock
       192     8  number of consumers asleep                       consumers, under C-lock
       256     8  number of producers asleep                       producers, under P-lock
       512    64  P-lock: robust, process-shared pthread mutex     -
       576    64  C-lock: robust, process-shared pthread mutex     -
      1024  1024  pids of sleeping consumers (256 x u32, 0 = free)  consumers, under C-lock
      2048  1024  pids of sleeping producers (256 x u32, 0 = free)  producers, under P-lock
      4096     C  the ring of records                              see below

    ring (C bytes, circular):

      | len | payload ......... |pad| len | payload ... | free ............ | len | pa
      ^                               ^                 ^                   ^
      0                    TAIL offset: oldest record   HEAD offset: next   a payload may wrap
                                                        record goes here    past the end

    A record is a native u32 length, the payload, and 0-3 pad bytes: records start at
    multiples of 4 and C is a multiple of 4, so a length never straddles the end of the
    ring; a payload that does is copied in two parts. Each 64-byte line holds fields with a
    single writer side, so producers and consumers do not bounce cache lines for nothing.

Why a killed process (SIGKILL at any instruction) cannot freeze or corrupt the queue:

- One lock per side. Producers serialise on the P-lock and touch only HEAD and free space;
  consumers serialise on the C-lock and touch only TAIL and filled space. Each side reads
  the other side's word without locking.
- Each side publishes its progress with one aligned 8-byte store of (count, offset), so a
  reader sees the old or the new record boundary, never a mix. (`struct.pack_into`
  zero-fills before writing, and a reader saw an index drop to 0: ipc-anchors hazard (a).)
  Counts are kept mod 2**32; `max_messages` < 2**31 keeps their difference unambiguous.
- A record becomes visible only when HEAD moves past it, and its space is reused only
  after TAIL moves past it. A producer killed mid-write leaves HEAD alone, and the next put
  overwrites the half-written record. A consumer killed mid-copy leaves TAIL alone, and the
  next consumer takes the same message (at-least-once); killed after the TAIL store, it
  loses only what it took.
- The locks are robust pthread mutexes. When a holder dies, the kernel (robust futex
  list) marks the mutex and the next locker gets EOWNERDEAD, marks it consistent and goes
  on; the points above mean there is nothing to undo. A POSIX semaphore used as a mutex
  stays taken forever (ipc-anchors hazard (c)). We measured `fcntl.flock`, the other
  kernel-released lock, at 1.22 us per lock+unlock pair here (two syscalls): that alone
  exceeds the 1.25 us per message the 800 k msg/s target allows. An uncontended robust
  mutex costs no syscall, 0.25-0.28 us per pair through ctypes.
- Sleeping and waking are futexes on the count halves of HEAD (consumers wait for a put)
  and TAIL (producers wait for a get). FUTEX_WAIT compares the count in the kernel, so a
  put between "I saw it empty" and "I sleep" is never missed, and the kernel keeps no
  state for a dead sleeper. A sleeper counts itself (under its side's lock) so the other
  side makes the wake syscall only when someone sleeps; the unlock right after each
  publishing store is a full barrier (x86 `xchg`), which is what makes "store my word,
  then read your sleeper count" safe on both sides. A dead sleeper's pid stays counted
  until `recover()` removes it: that costs the other side one needless wake syscall per
  operation, never a missed wake-up.
- A producer killed between publishing and waking leaves sleepers asleep with work
  queued: `recover()` wakes everyone, and no wait lasts longer than WAIT_SLICE_S anyway.

Platform: Linux on x86-64 only. The lock-free reads rely on x86-64's ordering (stores
become visible in program order, loads are not reordered with each other); a weakly
ordered CPU (aarch64) would need barriers that Python cannot issue. Robust mutexes and
futexes are reached through glibc with ctypes.

A handle is safe to share between threads (the mutexes exclude threads too), but it is
cheaper to give each process its own handle. Under Python 3.11 every attaching process
registers the segment with multiprocessing's resource tracker; `spawn`ed children share
their parent's tracker, so the segment lives until the creator calls `unlink()`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing import shared_memory
from typing import Any

__all__ = ["WorkQueue"]

#: Bytes of the u32 length that starts every record.
LENGTH_BYTES = 4
#: Records start at multiples of this many bytes, so their length never wraps.
RECORD_ALIGN = 4
#: One page of metadata, locks and sleeper tables before the ring; the ring starts
#: page-aligned.
HEADER_BYTES = 4096
#: Ring offsets live in the low 32 bits of HEAD/TAIL, so the ring must fit in them.
MAX_CAPACITY_BYTES = (1 << 32) - RECORD_ALIGN
#: Smallest ring accepted, in bytes: room for a few small records.
MIN_CAPACITY_BYTES = 64
#: Counts are kept mod 2**32; below 2**31 messages their difference is never ambiguous.
MAX_MESSAGES_LIMIT = (1 << 31) - 1
#: Sleepers (processes or threads) tracked per side. A sleeper that finds its table full
#: is not counted and polls every FALLBACK_POLL_S instead: a full table costs latency,
#: never a lost wake-up. R receivers + N executors stay far below it.
MAX_SLEEPERS = 256
#: Poll period, in seconds, of a sleeper that found its sleeper table full.
FALLBACK_POLL_S = 0.001
#: Seconds a blocked call polls the other side's word before it goes to sleep. A futex
#: sleep and wake costs ~30-35 us in Python here (ipc-anchors Part 1), while in a stream
#: the other side moves again within a few us: spinning this long keeps a streaming
#: producer or consumer off the sleep path, and an idle queue costs one short spin per
#: blocking call.
SPIN_S = 50e-6
#: Longest single futex wait, in seconds. A producer killed after publishing a message
#: but before waking anyone leaves sleepers asleep next to queued work; `recover()` wakes
#: them at once, and this bounds the delay if nobody calls it. It is not a timeout: a call
#: with `timeout=None` simply waits again.
WAIT_SLICE_S = 0.5

_MAGIC = 0x3152_4F57_4346  # b"FCWOR1", little-endian
_VERSION = 1

# Header fields, as indices into the header viewed as u64 words (byte offset // 8).
_W_MAGIC, _W_VERSION, _W_CAPACITY, _W_MAX_MESSAGES = 0, 1, 2, 3
_HEAD_OFFSET, _TAIL_OFFSET = 64, 128
_W_HEAD, _W_TAIL = _HEAD_OFFSET // 8, _TAIL_OFFSET // 8
_W_CONSUMERS_ASLEEP, _W_PRODUCERS_ASLEEP = 192 // 8, 256 // 8
_P_LOCK_OFFSET, _C_LOCK_OFFSET = 512, 576  # 64 bytes each; glibc's mutex is 40 on x86-64
_C_SLEEPERS_OFFSET, _P_SLEEPERS_OFFSET = 1024, 2048
_SLEEPERS_BYTES = MAX_SLEEPERS * 4

_OFFSET_MASK = 0xFFFF_FFFF  # low half of HEAD/TAIL: ring offset; also "mod 2**32"
_COUNT_MASK = 0xFFFF_FFFF_0000_0000  # high half: count mod 2**32
_COUNT_ONE = 1 << 32
_PAD = LENGTH_BYTES + RECORD_ALIGN - 1  # record size = (len + _PAD) & _ALIGN_MASK
_ALIGN_MASK = -RECORD_ALIGN
_WAKE_ALL = (1 << 31) - 1

_PTHREAD_PROCESS_SHARED = 1
_PTHREAD_MUTEX_ROBUST = 1
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # shared futexes (not FUTEX_PRIVATE): waiters are processes
_SYS_FUTEX = {"x86_64": 202, "amd64": 202}
_SYS_FUTEX_NR = _SYS_FUTEX.get(platform.machine().lower(), -1)
_FUTEX_ARGTYPES = [
    ctypes.c_long,  # SYS_futex
    ctypes.c_void_p,  # uaddr
    ctypes.c_int,  # op
    ctypes.c_uint,  # val: expected word for WAIT, how many to wake for WAKE
    ctypes.c_void_p,  # relative timeout, or NULL
    ctypes.c_void_p,
    ctypes.c_int,
]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Libc:
    """glibc entry points, bound twice on purpose.

    `blocking` (ctypes.CDLL) releases the GIL around the call: used for calls that may
    sleep (a contended lock, FUTEX_WAIT), so the process's other threads run meanwhile, one
    of which may be the lock's holder. `quick` (ctypes.PyDLL) keeps the GIL: used for calls
    that never block (trylock, unlock, FUTEX_WAKE), saving the GIL round trip, about 40 % of
    an uncontended lock+unlock pair (~190 ns against ~270-390 ns, measured here).
    """

    def __init__(self) -> None:
        blocking = ctypes.CDLL(None, use_errno=True)
        quick = ctypes.PyDLL(None, use_errno=True)
        self.lock = blocking.pthread_mutex_lock
        self.trylock = quick.pthread_mutex_trylock
        self.unlock = quick.pthread_mutex_unlock
        self.unlock.restype = None
        self.consistent = quick.pthread_mutex_consistent
        self.mutexattr_init = quick.pthread_mutexattr_init
        self.mutexattr_setpshared = quick.pthread_mutexattr_setpshared
        self.mutexattr_setrobust = quick.pthread_mutexattr_setrobust
        self.mutexattr_destroy = quick.pthread_mutexattr_destroy
        self.mutex_init = quick.pthread_mutex_init
        self.futex_wait = blocking.syscall
        self.futex_wake = quick.syscall
        for call in (self.futex_wait, self.futex_wake):
            call.restype = ctypes.c_long
            call.argtypes = _FUTEX_ARGTYPES


def _load_libc() -> _Libc | None:
    if not sys.platform.startswith("linux") or _SYS_FUTEX_NR < 0:
        return None
    return _Libc()


_libc = _load_libc()


def _require_platform() -> _Libc:
    if _libc is None:
        raise RuntimeError(
            "WorkQueue needs Linux on x86-64 (robust mutexes, futexes, x86 store ordering); "
            f"this is {sys.platform} on {platform.machine()}"
        )
    return _libc


def _closed(*_args: Any) -> int:
    raise ValueError("WorkQueue handle is closed")


class WorkQueue:
    """A bounded MPMC queue of `bytes` in shared memory; see the module docstring.

    Create it once (the supervisor) with `WorkQueue.create(...)` and pass the handle to
    `spawn`ed children as a Process argument: unpickling attaches by name. Every blocking
    call takes `timeout` in seconds; `None` waits as long as it takes: there is no hidden
    default timeout.
    """

    __slots__ = (
        "_shm",
        "_name",
        "_owner",
        "_capacity",
        "_max_messages",
        "_meta",
        "_words",
        "_ring_end",
        "_consumer_pids",
        "_producer_pids",
        "_mm",
        "_anchor",
        "_p_lock",
        "_c_lock",
        "_head_futex",
        "_tail_futex",
        "_trylock",
        "_unlock",
        "_wake",
    )

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls, capacity_bytes: int = 8 << 20, max_messages: int = 4096, name: str | None = None
    ) -> WorkQueue:
        """A new queue with a ring of `capacity_bytes` (rounded up to a multiple of 4),
        holding at most `max_messages` messages. A message of n bytes takes n + 4 bytes,
        rounded up to a multiple of 4."""
        libc = _require_platform()
        if not MIN_CAPACITY_BYTES <= capacity_bytes <= MAX_CAPACITY_BYTES:
            raise ValueError(
                f"capacity_bytes must be between {MIN_CAPACITY_BYTES} and "
                f"{MAX_CAPACITY_BYTES}, got {capacity_bytes}"
            )
        if not 1 <= max_messages <= MAX_MESSAGES_LIMIT:
            raise ValueError(
                f"max_messages must be between 1 and {MAX_MESSAGES_LIMIT}, got {max_messages}"
            )
        capacity = -(-capacity_bytes // RECORD_ALIGN) * RECORD_ALIGN
        shm = shared_memory.SharedMemory(name=name, create=True, size=HEADER_BYTES + capacity)
        try:
            _init_segment(libc, shm, capacity, max_messages)
        except BaseException:
            shm.close()
            shm.unlink()
            raise
        queue = cls.__new__(cls)
        queue._attach(shm, owner=True)
        return queue

    def __getstate__(self) -> dict[str, str]:
        if self._trylock is _closed:
            raise ValueError("cannot pickle a closed WorkQueue handle")
        return {"name": self._name}

    def __setstate__(self, state: dict[str, str]) -> None:
        _require_platform()
        self._attach(shared_memory.SharedMemory(name=state["name"]), owner=False)

    def _attach(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        libc = _require_platform()
        buf = shm.buf
        meta = buf[:HEADER_BYTES].cast("Q")
        if meta[_W_MAGIC] != _MAGIC or meta[_W_VERSION] != _VERSION:
            meta.release()
            shm.close()
            raise ValueError(f"shared memory {shm.name!r} is not a WorkQueue (layout v{_VERSION})")
        self._shm = shm
        self._name = shm.name
        self._owner = owner
        self._capacity = capacity = meta[_W_CAPACITY]
        self._max_messages = meta[_W_MAX_MESSAGES]
        self._meta = meta
        # The whole segment as u32 words: a record's length is words[position >> 2].
        self._words = buf[: HEADER_BYTES + capacity].cast("I")
        self._ring_end = HEADER_BYTES + capacity
        self._consumer_pids = buf[_C_SLEEPERS_OFFSET : _C_SLEEPERS_OFFSET + _SLEEPERS_BYTES].cast("I")
        self._producer_pids = buf[_P_SLEEPERS_OFFSET : _P_SLEEPERS_OFFSET + _SLEEPERS_BYTES].cast("I")
        # Slicing the mmap copies straight into a new bytes object: 0.09 us for 208 B,
        # against 0.20 us for bytes(memoryview[a:b]) (measured here).
        self._mm = shm._mmap  # type: ignore[attr-defined]
        self._anchor = (ctypes.c_char * HEADER_BYTES).from_buffer(buf)
        self._p_lock = ctypes.byref(self._anchor, _P_LOCK_OFFSET)
        self._c_lock = ctypes.byref(self._anchor, _C_LOCK_OFFSET)
        base = ctypes.addressof(self._anchor)
        high = 4 if sys.byteorder == "little" else 0  # the count half of HEAD/TAIL
        self._head_futex = ctypes.c_void_p(base + _HEAD_OFFSET + high)
        self._tail_futex = ctypes.c_void_p(base + _TAIL_OFFSET + high)
        self._trylock = libc.trylock
        self._unlock = libc.unlock
        self._wake = libc.futex_wake

    def close(self) -> None:
        """Detach this handle from the segment; other handles are unaffected. Idempotent."""
        if getattr(self, "_trylock", _closed) is _closed:
            return
        # Later calls must raise, not hand glibc a pointer into unmapped memory.
        self._trylock = self._unlock = self._wake = _closed
        self._p_lock = self._c_lock = self._head_futex = self._tail_futex = None
        self._anchor = None  # drops the ctypes export of the buffer
        for view in (self._meta, self._words, self._consumer_pids, self._producer_pids):
            view.release()
        self._mm = None
        self._shm.close()

    def unlink(self) -> None:
        """Destroy the segment's name (creator only). Handles already attached keep
        working until they close; nothing new can attach."""
        if not self._owner:
            raise RuntimeError("only the handle that created a WorkQueue may unlink it")
        self._owner = False
        self._shm.unlink()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing useful left to do
            pass

    def __repr__(self) -> str:
        state = "closed" if self._trylock is _closed else f"qsize={self.qsize()}"
        return (
            f"WorkQueue(name={self._name!r}, capacity_bytes={self._capacity}, "
            f"max_messages={self._max_messages}, {state})"
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def capacity_bytes(self) -> int:
        return self._capacity

    @property
    def max_messages(self) -> int:
        return self._max_messages

    # ------------------------------------------------------------------ producers

    def put(self, data: bytes, timeout: float | None = None) -> bool:
        """Append one message, waiting for room up to `timeout` s (None: as long as it
        takes). Returns False on timeout. Raises ValueError if it can never fit."""
        n = len(data)
        size = (n + _PAD) & _ALIGN_MASK
        if size > self._capacity:
            raise self._too_large(n, size)
        # put_many's loop unrolled for one message. At ~1 us a put, every attribute load
        # and big-int operation here shows in the benchmark; a third of it is the lock.
        meta = self._meta
        lock = self._p_lock
        err = self._trylock(lock)
        if err:
            self._lock_contended(err, lock, self._producer_pids, _W_PRODUCERS_ASLEEP)
        try:
            head = meta[_W_HEAD]
            tail = meta[_W_TAIL]
            pos = head & _OFFSET_MASK
            # Equal words: empty. Otherwise check the message bound, then the bytes free
            # from HEAD to TAIL (0 when full: the positions meet with messages queued).
            if head == tail or (
                ((head >> 32) - (tail >> 32)) & _OFFSET_MASK < self._max_messages
                and size <= ((tail & _OFFSET_MASK) - pos) % self._capacity
            ):
                self._words[pos >> 2] = n
                start = pos + LENGTH_BYTES
                if start + n <= self._ring_end:
                    self._mm[start : start + n] = data
                else:
                    self._write_wrapped(data, start)
                pos += size
                if pos >= self._ring_end:
                    pos -= self._capacity
                # Publish: one 8-byte store moves the count and the position together.
                meta[_W_HEAD] = ((head + _COUNT_ONE) & _COUNT_MASK) | pos
                done = True
            else:
                done = False
        finally:
            self._unlock(lock)
        if done:
            # Our unlock was a full barrier: HEAD is visible before we read the count of
            # sleeping consumers, each of which counted itself before reading HEAD.
            if meta[_W_CONSUMERS_ASLEEP]:
                self._wake(_SYS_FUTEX_NR, self._head_futex, _FUTEX_WAKE, 1, None, None, 0)
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._wait_for_room(size, deadline):
                return False
            if self._put_some((data,), 0):
                return True

    def put_many(self, items: Sequence[bytes], timeout: float | None = None) -> int:
        """Append `items` in order, as many per lock as fit, waiting for room up to
        `timeout` s. Returns how many were put: all, or on timeout the prefix that fit.
        Raises ValueError, putting nothing, if any item can never fit."""
        capacity = self._capacity
        for data in items:
            size = (len(data) + _PAD) & _ALIGN_MASK
            if size > capacity:
                raise self._too_large(len(data), size)
        total = len(items)
        done = self._put_some(items, 0)
        if done == total:
            return done
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._wait_for_room((len(items[done]) + _PAD) & _ALIGN_MASK, deadline):
                return done
            done += self._put_some(items, done)
            if done == total:
                return done

    def _put_some(self, items: Sequence[bytes], first: int) -> int:
        """Under the P-lock, write items[first:] while they fit; return how many."""
        meta = self._meta
        lock = self._p_lock
        err = self._trylock(lock)
        if err:
            self._lock_contended(err, lock, self._producer_pids, _W_PRODUCERS_ASLEEP)
        try:
            head = meta[_W_HEAD]
            tail = meta[_W_TAIL]
            capacity = self._capacity
            ring_end = self._ring_end
            queued = ((head >> 32) - (tail >> 32)) & _OFFSET_MASK
            pos = head & _OFFSET_MASK
            room = ((tail & _OFFSET_MASK) - pos) % capacity if queued else capacity
            last = first + min(self._max_messages - queued, len(items) - first)
            words = self._words
            mm = self._mm
            index = first
            while index < last:
                data = items[index]
                n = len(data)
                size = (n + _PAD) & _ALIGN_MASK
                if size > room:
                    break
                words[pos >> 2] = n
                start = pos + LENGTH_BYTES
                if start + n <= ring_end:
                    mm[start : start + n] = data
                else:
                    self._write_wrapped(data, start)
                pos += size
                if pos >= ring_end:
                    pos -= capacity
                room -= size
                index += 1
            put = index - first
            if put:
                meta[_W_HEAD] = ((head + put * _COUNT_ONE) & _COUNT_MASK) | pos
        finally:
            self._unlock(lock)
        if put and meta[_W_CONSUMERS_ASLEEP]:
            self._wake(_SYS_FUTEX_NR, self._head_futex, _FUTEX_WAKE, put, None, None, 0)
        return put

    def _write_wrapped(self, data: bytes, start: int) -> None:
        """Write a payload that runs past the end of the ring: the rest goes to its start."""
        view = memoryview(data).cast("B")
        fits = self._ring_end - start
        self._mm[start : self._ring_end] = view[:fits]
        self._mm[HEADER_BYTES : HEADER_BYTES + len(view) - fits] = view[fits:]

    def _wait_for_room(self, size: int, deadline: float | None) -> bool:
        """Return True once a `size`-byte record may fit, False at `deadline`."""
        capacity = self._capacity
        max_messages = self._max_messages

        def has_room(meta: memoryview) -> bool:
            head = meta[_W_HEAD]
            tail = meta[_W_TAIL]
            return head == tail or (
                ((head >> 32) - (tail >> 32)) & _OFFSET_MASK < max_messages
                and size <= ((tail & _OFFSET_MASK) - (head & _OFFSET_MASK)) % capacity
            )

        return self._wait(
            has_room,
            deadline,
            self._p_lock,
            self._producer_pids,
            _W_PRODUCERS_ASLEEP,
            _W_TAIL,
            self._tail_futex,
        )

    # ------------------------------------------------------------------ consumers

    def get(self, timeout: float | None = None) -> bytes | None:
        """Take the oldest message, waiting up to `timeout` s (None: as long as it takes).
        Returns None on timeout."""
        meta = self._meta
        lock = self._c_lock
        err = self._trylock(lock)
        if err:
            self._lock_contended(err, lock, self._consumer_pids, _W_CONSUMERS_ASLEEP)
        try:
            tail = meta[_W_TAIL]
            if meta[_W_HEAD] != tail:  # equal words: empty
                pos = tail & _OFFSET_MASK
                n = self._words[pos >> 2]
                start = pos + LENGTH_BYTES
                if start + n <= self._ring_end:
                    item = self._mm[start : start + n]
                else:
                    item = self._read_wrapped(start, n)
                pos += (n + _PAD) & _ALIGN_MASK
                if pos >= self._ring_end:
                    pos -= self._capacity
                # Free the space: one 8-byte store, after the copy is complete.
                meta[_W_TAIL] = ((tail + _COUNT_ONE) & _COUNT_MASK) | pos
            else:
                item = None
        finally:
            self._unlock(lock)
        if item is not None:
            if meta[_W_PRODUCERS_ASLEEP]:
                self._wake(_SYS_FUTEX_NR, self._tail_futex, _FUTEX_WAKE, _WAKE_ALL, None, None, 0)
            return item
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._wait_for_items(deadline):
                return None
            taken = self._take(1)
            if taken:
                return taken[0]

    def get_many(self, max_items: int, timeout: float | None = None) -> list[bytes]:
        """Take up to `max_items` of the oldest messages, returning as soon as there is at
        least one, waiting up to `timeout` s (None: as long as it takes). [] on timeout."""
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        taken = self._take(max_items)
        if taken:
            return taken
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._wait_for_items(deadline):
                return []
            taken = self._take(max_items)
            if taken:
                return taken

    def _take(self, max_items: int) -> list[bytes]:
        """Under the C-lock, copy out up to `max_items` records; [] if there are none."""
        meta = self._meta
        lock = self._c_lock
        err = self._trylock(lock)
        if err:
            self._lock_contended(err, lock, self._consumer_pids, _W_CONSUMERS_ASLEEP)
        try:
            tail = meta[_W_TAIL]
            taken: list[bytes] = []
            queued = ((meta[_W_HEAD] >> 32) - (tail >> 32)) & _OFFSET_MASK
            if queued:
                ring_end = self._ring_end
                capacity = self._capacity
                words = self._words
                mm = self._mm
                append = taken.append
                pos = tail & _OFFSET_MASK
                for _ in range(queued if queued < max_items else max_items):
                    n = words[pos >> 2]
                    start = pos + LENGTH_BYTES
                    if start + n <= ring_end:
                        append(mm[start : start + n])
                    else:
                        append(self._read_wrapped(start, n))
                    pos += (n + _PAD) & _ALIGN_MASK
                    if pos >= ring_end:
                        pos -= capacity
                meta[_W_TAIL] = ((tail + len(taken) * _COUNT_ONE) & _COUNT_MASK) | pos
        finally:
            self._unlock(lock)
        if taken and meta[_W_PRODUCERS_ASLEEP]:
            # Wake every sleeping producer: each waits for room for its own record, and
            # there are few of them (the receivers).
            self._wake(_SYS_FUTEX_NR, self._tail_futex, _FUTEX_WAKE, _WAKE_ALL, None, None, 0)
        return taken

    def _read_wrapped(self, start: int, n: int) -> bytes:
        """Copy out a payload that runs past the end of the ring."""
        mm = self._mm
        fits = self._ring_end - start
        return mm[start : self._ring_end] + mm[HEADER_BYTES : HEADER_BYTES + n - fits]

    def _wait_for_items(self, deadline: float | None) -> bool:
        """Return True once a message may be there, False at `deadline`."""

        def has_items(meta: memoryview) -> bool:
            return bool(meta[_W_HEAD] != meta[_W_TAIL])

        return self._wait(
            has_items,
            deadline,
            self._c_lock,
            self._consumer_pids,
            _W_CONSUMERS_ASLEEP,
            _W_HEAD,
            self._head_futex,
        )

    def qsize(self) -> int:
        """Messages queued now (a snapshot: other processes may change it at once)."""
        if self._trylock is _closed:
            raise ValueError("WorkQueue handle is closed")
        meta = self._meta
        return ((meta[_W_HEAD] >> 32) - (meta[_W_TAIL] >> 32)) & _OFFSET_MASK

    # ------------------------------------------------------------------ waiting

    def _wait(
        self,
        ready: Callable[[memoryview], bool],
        deadline: float | None,
        lock: Any,
        pids: memoryview,
        asleep_word: int,
        watched_word: int,
        futex: ctypes.c_void_p,
    ) -> bool:
        """Wait until `ready(meta)` may hold (True) or `deadline` passes (False).

        Spin on the other side's word for SPIN_S, then count ourselves asleep and sleep on
        `futex`, the count half of `watched_word` (the other side's word), for at most
        WAIT_SLICE_S. The caller retries its operation on True.
        """
        meta = self._meta
        spin_end = time.monotonic() + SPIN_S
        if deadline is not None and deadline < spin_end:
            spin_end = deadline
        spins = 0
        while not ready(meta):
            spins += 1
            if not spins & 15 and time.monotonic() >= spin_end:
                break
        else:
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False

        err = self._trylock(lock)
        if err:
            self._lock_contended(err, lock, pids, asleep_word)
        try:
            if ready(meta):
                return True
            expected = meta[watched_word] >> 32
            slot = _register_sleeper(meta, pids, asleep_word)
        finally:
            self._unlock(lock)
        try:
            # Our unlock was a full barrier: our count is visible before the kernel compares
            # `expected`, so a concurrent publish either sees us and wakes us, or changes
            # the word and the wait returns at once.
            wait = WAIT_SLICE_S if slot >= 0 else FALLBACK_POLL_S
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if wait > 0:
                timespec = _Timespec(int(wait), int(wait % 1.0 * 1e9))
                _libc.futex_wait(  # type: ignore[union-attr]
                    _SYS_FUTEX_NR, futex, _FUTEX_WAIT, expected, ctypes.byref(timespec), None, 0
                )
        finally:
            if slot >= 0:
                err = self._trylock(lock)
                if err:
                    self._lock_contended(err, lock, pids, asleep_word)
                try:
                    _unregister_sleeper(meta, pids, asleep_word, slot)
                finally:
                    self._unlock(lock)
        return deadline is None or time.monotonic() < deadline or ready(meta)

    # ------------------------------------------------------------------ recovery

    def recover(self, dead_pid: int) -> None:
        """Clean up after process `dead_pid` died (SIGKILL, OOM, crash).

        The supervisor calls this after reaping any child that had the queue attached.
        Locks need nothing: the kernel marks a dead holder's mutex and its next locker
        repairs it. This drops `dead_pid` from the sleeper tables (so the other side stops
        making wake syscalls for it) and wakes every sleeper, in case the dead process
        published messages or room and died before waking anyone. Cheap and idempotent.
        """
        if self._trylock is _closed:
            raise ValueError("WorkQueue handle is closed")
        for lock, pids, asleep_word in (
            (self._p_lock, self._producer_pids, _W_PRODUCERS_ASLEEP),
            (self._c_lock, self._consumer_pids, _W_CONSUMERS_ASLEEP),
        ):
            err = self._trylock(lock)
            if err:
                self._lock_contended(err, lock, pids, asleep_word)
            try:
                _forget_sleepers(self._meta, pids, asleep_word, dead_pid)
            finally:
                self._unlock(lock)
        for futex in (self._head_futex, self._tail_futex):
            self._wake(_SYS_FUTEX_NR, futex, _FUTEX_WAKE, _WAKE_ALL, None, None, 0)

    def _lock_contended(self, err: int, lock: Any, pids: memoryview, asleep_word: int) -> None:
        """The trylock returned `err`: wait for the lock if it is busy, and repair it if
        its holder died. Returns holding the lock; raises (not holding it) on anything
        else, which would be a bug."""
        libc = _libc
        assert libc is not None
        if err == errno.EBUSY:
            err = libc.lock(lock)  # sleeps in the kernel with the GIL released
            if not err:
                return
        if err != errno.EOWNERDEAD:
            raise OSError(err, f"pthread_mutex_lock failed: {os.strerror(err)}")
        # We hold the lock of a process that died holding it. Every store it could have
        # left half-done is either unpublished (ignored) or published whole, except the
        # sleeper count next to a pid: recount it.
        try:
            failed = libc.consistent(lock)
            if failed:
                raise OSError(failed, f"pthread_mutex_consistent failed: {os.strerror(failed)}")
            _forget_sleepers(self._meta, pids, asleep_word, 0)
        except BaseException:
            self._unlock(lock)
            raise

    def _too_large(self, n: int, size: int) -> ValueError:
        return ValueError(
            f"message of {n} bytes needs {size} bytes of queue space (a 4-byte length, "
            f"padded to 4) but the queue's capacity is {self._capacity} bytes; create it "
            f"with capacity_bytes >= {size}"
        )


def _init_segment(
    libc: _Libc, shm: shared_memory.SharedMemory, capacity: int, max_messages: int
) -> None:
    """Fill in a zeroed header: sizes, two robust process-shared mutexes; magic last."""
    meta = shm.buf[:HEADER_BYTES].cast("Q")
    anchor = (ctypes.c_char * HEADER_BYTES).from_buffer(shm.buf)
    attr = ctypes.create_string_buffer(64)  # pthread_mutexattr_t is 4 bytes on glibc
    try:
        for offset in (_P_LOCK_OFFSET, _C_LOCK_OFFSET):
            mutex = ctypes.byref(anchor, offset)
            for call, args in (
                (libc.mutexattr_init, (attr,)),
                (libc.mutexattr_setpshared, (attr, _PTHREAD_PROCESS_SHARED)),
                (libc.mutexattr_setrobust, (attr, _PTHREAD_MUTEX_ROBUST)),
                (libc.mutex_init, (mutex, attr)),
                (libc.mutexattr_destroy, (attr,)),
            ):
                err = call(*args)
                if err:
                    raise OSError(err, f"{call.__name__} failed: {os.strerror(err)}")
            del mutex, args
        meta[_W_CAPACITY] = capacity
        meta[_W_MAX_MESSAGES] = max_messages
        meta[_W_HEAD] = meta[_W_TAIL] = HEADER_BYTES  # count 0, at the start of the ring
        meta[_W_VERSION] = _VERSION
        meta[_W_MAGIC] = _MAGIC
    finally:
        del anchor
        meta.release()


def _register_sleeper(meta: memoryview, pids: memoryview, asleep_word: int) -> int:
    """Count this process as asleep (the caller holds the side's lock). Returns its slot,
    or -1 if the table is full: the caller then polls instead of being woken."""
    for slot in range(MAX_SLEEPERS):
        if not pids[slot]:
            pids[slot] = os.getpid()
            meta[asleep_word] += 1
            return slot
    return -1


def _unregister_sleeper(meta: memoryview, pids: memoryview, asleep_word: int, slot: int) -> None:
    pids[slot] = 0
    meta[asleep_word] = max(meta[asleep_word] - 1, 0)


def _forget_sleepers(meta: memoryview, pids: memoryview, asleep_word: int, dead_pid: int) -> None:
    """Drop `dead_pid`, and pids that no longer exist, from a sleeper table; recount it
    (the caller holds the side's lock). A SIGKILLed child still exists, as a zombie, until
    its parent reaps it: that is why the supervisor passes its pid."""
    for slot in range(MAX_SLEEPERS):
        pid = pids[slot]
        if pid and (pid == dead_pid or not _pid_exists(pid)):
            pids[slot] = 0
    meta[asleep_word] = sum(1 for slot in range(MAX_SLEEPERS) if pids[slot])


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
