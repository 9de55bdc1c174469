"""`WorkQueue`: a bounded multi-producer, multi-consumer queue of `bytes` in shared memory.

Receivers put node-work messages (whole SQS batches with `put_many`); executors take them
one or several at a time (`get`, `get_many`). Messages are raw bytes (orjson, encoded by the
caller), never pickled. Only the handle is pickled, to hand it to a `spawn`ed child, which
re-attaches to the segment by name.

Layout of the one `multiprocessing.shared_memory` segment (offsets in bytes):

    offset  size  field                                            written by
    ------  ----  -----------------------------------------------  ----------------------
         0    32  magic, layout version, capacity C, max_messages   create() only
        64     8  HEAD = put count (high 32 bits) | position (low)  producers, under P-lock
       128     8  TAIL = get count (high 32 bits) | position (low)  consumers, under C-lock
       192    16  consumers asleep, their generation               consumers, under C-lock
       256    16  producers asleep, their generation               producers, under P-lock
       512    64  P-lock: robust, process-shared pthread mutex      -
       576    64  C-lock: robust, process-shared pthread mutex      -
      1024  1024  pids of sleeping consumers (256 x u32, 0 = free)   consumers, under C-lock
      2048  1024  pids of sleeping producers (256 x u32, 0 = free)   producers, under P-lock
      4096     C  the ring of records                               see below

    the ring, segment offsets 4096 .. 4096 + C, circular:

      | len | payload ......... |pad| len | payload ... | free ............ | len | pa
      ^                               ^                 ^                   ^
      4096              TAIL position: oldest record    HEAD position:      a payload may
                                                        the next record     wrap past the end

    A record is a native u32 length, the payload, and 0-3 pad bytes, so records start at
    multiples of 4; C is a multiple of 4, so a length never straddles the end of the ring,
    and a payload that does is copied in two parts. HEAD and TAIL hold segment offsets
    ("positions"). Each 64-byte line has one writer side, so producers and consumers do
    not bounce cache lines needlessly.

Why a killed process (SIGKILL at any instruction) cannot freeze or corrupt the queue:

- One lock per side. Producers serialise on the P-lock and write only HEAD and free
  space; consumers serialise on the C-lock and write only TAIL. Each side reads the other
  side's word without locking.
- Each side publishes its progress with one aligned 8-byte store of (count, position), so
  a reader sees the old or the new record boundary, never a mix. (`struct.pack_into`
  zero-fills before writing, and a reader saw an index drop to 0: ipc-anchors hazard (a).)
  Counts are kept mod 2**32; `max_messages` < 2**31 keeps their difference unambiguous.
  HEAD == TAIL exactly when the queue is empty.
- A record becomes visible only when HEAD moves past it, and its space is reused only
  after TAIL moves past it. A producer killed mid-write leaves HEAD alone, and the next put
  overwrites the half-written record. A consumer killed mid-copy leaves TAIL alone, and the
  next consumer takes the same messages again (at-least-once); killed after the TAIL
  store, it loses only what it took.
- The locks are robust pthread mutexes. When a holder dies, the kernel (robust futex
  list) marks the mutex, and the next locker gets EOWNERDEAD, marks it consistent and goes
  on; by the points above there is nothing to undo. A POSIX semaphore used as a mutex
  stays taken forever (ipc-anchors hazard (c)). `fcntl.flock`, the other kernel-released
  lock, costs 1.22 us per lock+unlock pair here (two syscalls), nearly all of the 1.25 us
  per message that 800 k msg/s allows; an uncontended robust mutex makes no syscall and
  costs ~0.19 us per pair through ctypes.PyDLL (measured here).
- Sleeping and waking are futexes on the count halves of HEAD (consumers wait for a put)
  and TAIL (producers wait for a get). FUTEX_WAIT compares the count in the kernel, so a
  put between "I saw it empty" and "I sleep" is never missed, and the kernel keeps no
  state for a dead sleeper. A sleeper counts itself under its side's lock, so the other
  side makes the wake syscall only when someone sleeps. The unlock right after each
  publishing store is a full barrier (x86 `xchg`), which is what makes "store my word,
  then read your sleeper count" safe on both sides. A dead sleeper stays counted until
  `recover()` removes its pid: until then the other side makes one needless wake syscall
  per operation, and never misses a wake-up.
- A producer killed between publishing and waking leaves sleepers asleep next to queued
  work: `recover()` wakes everyone, and no single wait lasts longer than WAIT_SLICE_S.

Platform: Linux on x86-64 only. The lock-free reads rely on x86-64's ordering (stores
become visible in program order, loads are not reordered with each other); a weakly
ordered CPU (aarch64) would need barriers that Python cannot issue. Robust mutexes and
futexes are reached through glibc with ctypes; nothing is compiled.

A handle may be shared between threads (the mutexes exclude threads too), though a handle
per process is simpler. Under Python 3.11 every process that attaches registers the
segment with multiprocessing's resource tracker; `spawn`ed children share their parent's
tracker, so the segment lives until the creator calls `unlink()` (or the whole process
tree is gone, when the tracker removes it).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from itertools import islice
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
#: Positions (segment offsets) live in the low 32 bits of HEAD/TAIL, so the whole segment
#: must fit in them.
MAX_CAPACITY_BYTES = (1 << 32) - HEADER_BYTES - RECORD_ALIGN
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
#: Times a blocked call re-checks the other side's word (~0.15 us each) before it sleeps.
#: In a stream the other side publishes again within a few us, while a futex sleep and
#: wake-up costs ~30-35 us in Python here (ipc-anchors Part 1): in the 10-per-put benchmark
#: the consumer finds the queue empty on 93 % of its calls and this short spin finds the
#: next batch after ~4 checks. Spinning longer (10-200 us, bounded by the clock) never
#: raised the one-way or the ping-pong rate and always raised CPU per message, measured on
#: the 2-vCPU host: the spinner takes CPU from the very process it waits for when there
#: are more processes than cores (R receivers + N executors + supervisor).
SPIN_CHECKS = 16
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
_W_CONSUMERS_ASLEEP, _W_PRODUCERS_ASLEEP = 192 // 8, 256 // 8  # sleeper counts
_GENERATION = 1  # the word after a sleeper count: that side's sleeper generation
_P_LOCK_OFFSET, _C_LOCK_OFFSET = 512, 576  # 64 bytes each; glibc's mutex is 40 on x86-64
_SLEEPERS_BYTES = MAX_SLEEPERS * 4  # one u32 pid per sleeper
_C_SLEEPERS_OFFSET = 1024
_P_SLEEPERS_OFFSET = _C_SLEEPERS_OFFSET + _SLEEPERS_BYTES
_SLEEPERS_END = _P_SLEEPERS_OFFSET + _SLEEPERS_BYTES  # <= HEADER_BYTES

_OFFSET_MASK = 0xFFFF_FFFF  # low half of HEAD/TAIL: a position; also "mod 2**32"
_COUNT_MASK = 0xFFFF_FFFF_0000_0000  # high half: count mod 2**32
_COUNT_ONE = 1 << 32
_PAD = LENGTH_BYTES + RECORD_ALIGN - 1  # record size = (len + _PAD) & _ALIGN_MASK
_ALIGN_UP = RECORD_ALIGN - 1  # padding to the next record: (end + _ALIGN_UP) & _ALIGN_MASK
_ALIGN_MASK = -RECORD_ALIGN
_WAKE_ALL = (1 << 31) - 1

_PTHREAD_PROCESS_SHARED = 1
_PTHREAD_MUTEX_ROBUST = 1
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # shared futexes (not FUTEX_PRIVATE): waiters are processes
_SYS_FUTEX = {"x86_64": 202, "amd64": 202}
_SYS_FUTEX_NR = _SYS_FUTEX.get(platform.machine().lower(), -1)
_FUTEX_ARGTYPES: list[Any] = [
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
        blocking = ctypes.CDLL(None)
        quick = ctypes.PyDLL(None)
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
        "_woke_consumers",
        "_woke_producers",
    )
    _shm: shared_memory.SharedMemory
    _name: str
    _owner: bool
    _capacity: int
    _max_messages: int
    _meta: memoryview  # the header as u64 words
    _words: memoryview  # the segment as u32 words: record lengths
    _ring_end: int  # segment offset just past the ring
    _consumer_pids: memoryview
    _producer_pids: memoryview
    _mm: Any  # the mmap behind the segment
    # ctypes objects; None once closed, so that nothing can reach unmapped memory.
    _anchor: Any
    _p_lock: Any
    _c_lock: Any
    _head_futex: Any
    _tail_futex: Any
    _trylock: Callable[..., int]
    _unlock: Callable[..., Any]
    _wake: Callable[..., int]
    _woke_consumers: tuple[int, int]
    _woke_producers: tuple[int, int]

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
        self._attach(shared_memory.SharedMemory(name=state["name"]), owner=False)

    def _attach(self, shm: shared_memory.SharedMemory, owner: bool) -> None:
        libc = _require_platform()
        buf = shm.buf
        assert buf is not None
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
        self._consumer_pids = buf[_C_SLEEPERS_OFFSET:_P_SLEEPERS_OFFSET].cast("I")
        self._producer_pids = buf[_P_SLEEPERS_OFFSET:_SLEEPERS_END].cast("I")
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
        # (sleeper generation, how many this handle woke in it): see _wake_sleepers.
        self._woke_consumers = self._woke_producers = (-1, 0)

    def close(self) -> None:
        """Detach this handle from the segment; other handles are unaffected. Idempotent.
        Not while another thread is inside a call on this same handle."""
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
        with contextlib.suppress(Exception):  # at interpreter exit there is nothing to do
            self.close()

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
                end = start + n
                if end <= self._ring_end:
                    self._mm[start:end] = data
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
                self._wake_consumers(1)
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
        if not items:
            return 0
        # One pass in C, not a Python loop: it was a fifth of put_many under cProfile.
        longest = max(map(len, items))
        if (longest + _PAD) & _ALIGN_MASK > self._capacity:
            raise self._too_large(longest, (longest + _PAD) & _ALIGN_MASK)
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
            slots = self._max_messages - queued
            words = self._words
            mm = self._mm
            put = 0
            for data in islice(items, first, None) if first else items:
                n = len(data)
                size = (n + _PAD) & _ALIGN_MASK
                if size > room or put == slots:
                    break
                words[pos >> 2] = n
                start = pos + LENGTH_BYTES
                end = start + n
                if end <= ring_end:
                    mm[start:end] = data
                else:
                    self._write_wrapped(data, start)
                pos += size
                if pos >= ring_end:
                    pos -= capacity
                room -= size
                put += 1
            if put:
                meta[_W_HEAD] = ((head + put * _COUNT_ONE) & _COUNT_MASK) | pos
        finally:
            self._unlock(lock)
        if put and meta[_W_CONSUMERS_ASLEEP]:
            self._wake_consumers(put)
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
                end = start + n
                if end <= self._ring_end:
                    item = self._mm[start:end]
                else:
                    item = self._read_wrapped(start, n)
                pos = (end + _ALIGN_UP) & _ALIGN_MASK
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
                self._wake_producers()
            return item
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._wait_for_items(deadline):
                return None
            taken = self._take(1)
            if taken:
                return taken[0]

    def get_many(self, max_items: int, timeout: float | None = None,
                 on_take: Callable[[list[bytes]], None] | None = None) -> list[bytes]:
        """Take up to `max_items` of the oldest messages, returning as soon as there is at
        least one, waiting up to `timeout` s (None: as long as it takes). [] on timeout.

        `on_take(messages)` runs under the consumer lock after the messages are copied and
        before the queue lets go of them: a consumer records what it holds there, so a kill
        at any instruction leaves each message queued, recorded, or both (never neither).
        If it raises, the messages stay queued and the exception propagates."""
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        taken = self._take(max_items, on_take)
        if taken:
            return taken
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._wait_for_items(deadline):
                return []
            taken = self._take(max_items, on_take)
            if taken:
                return taken

    def _take(self, max_items: int, on_take: Callable[[list[bytes]], None] | None = None) -> list[bytes]:
        """Under the C-lock, copy out up to `max_items` records; [] if there are none."""
        meta = self._meta
        lock = self._c_lock
        err = self._trylock(lock)
        if err:
            self._lock_contended(err, lock, self._consumer_pids, _W_CONSUMERS_ASLEEP)
        try:
            tail = meta[_W_TAIL]
            queued = ((meta[_W_HEAD] >> 32) - (tail >> 32)) & _OFFSET_MASK
            if queued:
                ring_end = self._ring_end
                words = self._words
                mm = self._mm
                pos = tail & _OFFSET_MASK
                count = queued if queued < max_items else max_items
                taken: list[bytes] = [b""] * count
                for index in range(count):
                    n = words[pos >> 2]
                    start = pos + LENGTH_BYTES
                    end = start + n
                    if end <= ring_end:
                        taken[index] = mm[start:end]
                    else:
                        taken[index] = self._read_wrapped(start, n)
                    pos = (end + _ALIGN_UP) & _ALIGN_MASK
                    if pos >= ring_end:
                        pos -= self._capacity
                if on_take is not None:
                    on_take(taken)
                # Free the space: one 8-byte store, after every copy is complete.
                meta[_W_TAIL] = ((tail + count * _COUNT_ONE) & _COUNT_MASK) | pos
            else:
                taken = []
        finally:
            self._unlock(lock)
        if taken and meta[_W_PRODUCERS_ASLEEP]:
            self._wake_producers()
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

        Re-check the other side's word SPIN_CHECKS times, then count ourselves asleep and
        sleep on `futex`, the count half of `watched_word` (the other side's word), for at
        most WAIT_SLICE_S. The caller retries its operation on True.
        """
        meta = self._meta
        for _ in range(SPIN_CHECKS):
            if ready(meta):
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

    def _wake_consumers(self, items: int) -> None:
        """Wake up to `items` sleeping consumers: one per message put."""
        self._woke_consumers = self._wake_sleepers(
            _W_CONSUMERS_ASLEEP, self._woke_consumers, self._head_futex, items
        )

    def _wake_producers(self) -> None:
        """Wake every sleeping producer: each waits for room for its own record, and there
        are few of them (the receivers)."""
        self._woke_producers = self._wake_sleepers(
            _W_PRODUCERS_ASLEEP, self._woke_producers, self._tail_futex, _WAKE_ALL
        )

    def _wake_sleepers(
        self, asleep_word: int, woke: tuple[int, int], futex: Any, n: int
    ) -> tuple[int, int]:
        """FUTEX_WAKE up to `n` sleepers, unless this handle already woke all of those now
        counted. Returns the new (generation, woken) record for this handle.

        A woken sleeper stays counted until it runs and unregisters, ~30 us later; without
        this record, every put (or get) in that window would make a wake syscall for
        nobody, doubling its cost in a stream. Every change to the set of sleepers bumps
        the generation, before the count (and both are read here in that order): within
        one generation the set is fixed and each wake reaches a different member, so
        `woken >= asleep` means all of them were woken. (Bumping it only on registration
        lost wake-ups: of two sleepers, the woken one leaves, the count drops to 1 = woken,
        and the other slept on.)
        """
        meta = self._meta
        asleep = meta[asleep_word]
        generation = meta[asleep_word + _GENERATION]
        woken = woke[1] if woke[0] == generation else 0
        if woken >= asleep:
            return generation, woken
        woke_now = self._wake(_SYS_FUTEX_NR, futex, _FUTEX_WAKE, n, None, None, 0)
        return generation, woken + max(woke_now, 0)

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
    buf = shm.buf
    assert buf is not None
    meta = buf[:HEADER_BYTES].cast("Q")
    anchor = (ctypes.c_char * HEADER_BYTES).from_buffer(buf)
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
            meta[asleep_word + _GENERATION] += 1  # before the count: see _wake_sleepers
            meta[asleep_word] += 1
            return slot
    return -1


def _unregister_sleeper(meta: memoryview, pids: memoryview, asleep_word: int, slot: int) -> None:
    pids[slot] = 0
    meta[asleep_word + _GENERATION] += 1  # before the count: see _wake_sleepers
    meta[asleep_word] = max(meta[asleep_word] - 1, 0)


def _forget_sleepers(meta: memoryview, pids: memoryview, asleep_word: int, dead_pid: int) -> None:
    """Drop `dead_pid`, and pids that no longer exist, from a sleeper table; recount it
    (the caller holds the side's lock). A SIGKILLed child still exists, as a zombie, until
    its parent reaps it: that is why the supervisor passes its pid."""
    for slot in range(MAX_SLEEPERS):
        pid = pids[slot]
        if pid and (pid == dead_pid or not _pid_exists(pid)):
            pids[slot] = 0
    meta[asleep_word + _GENERATION] += 1  # a new generation: wakers forget whom they woke
    meta[asleep_word] = sum(1 for slot in range(MAX_SLEEPERS) if pids[slot])


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
