"""The shared-memory work queue, driven by real processes started with `spawn`.

Every blocking call has a timeout, and nothing sleeps to wait for another process: tests
wait on the queue itself, on events, or on the queue's own count of sleepers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import random
import signal
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from flowcraft_sqs import workqueue
from flowcraft_sqs.workqueue import WorkQueue

pytestmark = pytest.mark.timeout(90)

CTX = mp.get_context("spawn")
#: Upper bound on every blocking call in these tests: a failure shows up, never a hang.
BLOCK_S = 20.0
#: Slack allowed past a timeout before calling the return late (a loaded 2-vCPU host).
LATE_S = 0.25
STOP = b"STOP"
_RECORD = struct.Struct("<QI")  # message id, crc32 of the body


# ---------------------------------------------------------------------- messages


def body_for(message_id: int, size: int) -> bytes:
    """Deterministic bytes for a message, so any process can check what it received."""
    return random.Random(message_id).randbytes(size)


def encode(message_id: int, size: int) -> bytes:
    body = body_for(message_id, size)
    return _RECORD.pack(message_id, zlib.crc32(body)) + body


def decode(message: bytes) -> int:
    """The id of an intact message; raises AssertionError on a corrupted one."""
    message_id, crc = _RECORD.unpack_from(message)
    assert zlib.crc32(message[_RECORD.size :]) == crc, f"message {message_id} corrupted"
    return message_id


def small_size(message_id: int) -> int:
    return message_id % 300


def sleeping_consumers(queue: WorkQueue) -> int:
    return queue._meta[workqueue._W_CONSUMERS_ASLEEP]


def wait_until(condition: Callable[[], bool], timeout: float = BLOCK_S) -> None:
    """Poll a cross-process condition without sleeping (yield the CPU between checks)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        os.sched_yield()


@pytest.fixture
def make_queue() -> Any:
    created: list[WorkQueue] = []

    def make(**kwargs: Any) -> WorkQueue:
        queue = WorkQueue.create(**kwargs)
        created.append(queue)
        return queue

    yield make
    for queue in created:
        queue.close()
        queue.unlink()


def start(target: Callable[..., None], *args: Any) -> Any:
    process = CTX.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def join(process: Any) -> None:
    process.join(BLOCK_S)
    assert not process.is_alive(), "child did not finish in time"
    assert process.exitcode == 0, f"child exited with {process.exitcode}"


# ---------------------------------------------------------------------- children (spawned)


def produce(queue: WorkQueue, first_id: int, count: int, batch: int) -> None:
    ids = range(first_id, first_id + count)
    for start_at in range(0, count, batch):
        chunk = [encode(i, small_size(i)) for i in ids[start_at : start_at + batch]]
        assert queue.put_many(chunk, timeout=BLOCK_S) == len(chunk)
    queue.close()


def consume_until_stop(queue: WorkQueue, results: Any, batch: int) -> None:
    received: list[int] = []
    while True:
        messages = queue.get_many(batch, timeout=BLOCK_S)
        assert messages, "timed out waiting for messages"
        for index, message in enumerate(messages):
            if message == STOP:
                assert index == len(messages) - 1, "messages after STOP"
                results.put(received)
                queue.close()
                return
            received.append(decode(message))


def produce_sized(queue: WorkQueue, seed: int, count: int) -> None:
    for index, size in enumerate(wrap_sizes(seed, count)):
        assert queue.put(body_for(seed + index, size), timeout=BLOCK_S)
    queue.close()


def get_one_blocking_forever(queue: WorkQueue, results: Any) -> None:
    workqueue.WAIT_SLICE_S = 0.01  # many wake-ups while blocked: none may end the wait
    results.put(queue.get(timeout=None))


def block_in_get(queue: WorkQueue) -> None:
    queue.get(timeout=None)


def get_one_with_no_wait_slice(queue: WorkQueue, results: Any) -> None:
    workqueue.WAIT_SLICE_S = BLOCK_S * 3  # a missed wake-up now outlasts every timeout
    results.put(queue.get(timeout=None))


def take_in_a_loop(queue: WorkQueue, started: Any) -> None:
    while True:
        if queue.get_many(10, timeout=BLOCK_S):
            started.set()


def drain_until(queue: WorkQueue, last_id: int, results: Any) -> None:
    received: list[int] = []
    while not received or received[-1] != last_id:
        messages = queue.get_many(10, timeout=BLOCK_S)
        assert messages, f"timed out; got {len(received)} messages, last {received[-1:]}"
        received.extend(decode(m) for m in messages)
    results.put(received)


def hold_lock_until_killed(queue: WorkQueue, side: str, holding: Any) -> None:
    lock = queue._p_lock if side == "producer" else queue._c_lock
    assert queue._trylock(lock) == 0
    holding.set()
    time.sleep(BLOCK_S)  # killed long before this ends


def put_from_child(queue: WorkQueue, message: bytes) -> None:
    assert queue.put(message, timeout=BLOCK_S)
    queue.close()


# ---------------------------------------------------------------------- ordering, exactly once


def test_one_producer_and_one_consumer_see_every_message_in_order_exactly_once(make_queue):
    # Given a small queue that fills up many times over
    queue = make_queue(capacity_bytes=64 << 10, max_messages=256)
    count = 20_000
    # When a spawned producer puts 20,000 messages of 0-299 byte bodies one at a time
    producer = start(produce, queue, 0, count, 1)
    received: list[int] = []
    for _ in range(count):
        message = queue.get(timeout=BLOCK_S)
        assert message is not None, f"timed out after {len(received)} messages"
        received.append(decode(message))
    join(producer)
    # Then they arrive intact, in order, once each, and nothing else is left
    assert received == list(range(count))
    assert queue.get(timeout=0.05) is None
    assert queue.qsize() == 0


def test_two_producers_and_two_consumers_deliver_each_message_exactly_once(make_queue):
    # Given a queue small enough that producers block on it
    queue = make_queue(capacity_bytes=32 << 10, max_messages=64)
    results = CTX.Queue()
    per_producer = 10_000
    # When two producers put (one per put, and ten per put) and two consumers take
    # (one per get, and up to ten per get)
    consumers = [start(consume_until_stop, queue, results, batch) for batch in (1, 10)]
    producers = [
        start(produce, queue, 0, per_producer, 1),
        start(produce, queue, 1_000_000, per_producer, 10),
    ]
    for producer in producers:
        join(producer)
    got = []
    for _ in consumers:  # one STOP at a time: get_many could take two at once
        assert queue.put(STOP, timeout=BLOCK_S)
        got.append(results.get(timeout=BLOCK_S))
    for consumer in consumers:
        join(consumer)
    # Then every message arrived intact at exactly one consumer
    everything = sorted(got[0] + got[1])
    expected = sorted([*range(per_producer), *range(1_000_000, 1_000_000 + per_producer)])
    assert everything == expected
    # And each consumer saw each producer's messages in the order they were put
    for received in got:
        for low, high in ((0, per_producer), (1_000_000, 1_000_000 + per_producer)):
            mine = [i for i in received if low <= i < high]
            assert mine == sorted(mine)


# ---------------------------------------------------------------------- wrap-around


def wrap_sizes(seed: int, count: int) -> list[int]:
    """1 B to 500 KB, with the small sizes that land records at every alignment."""
    rng = random.Random(seed)
    sizes = [1, 2, 3, 4, 5, 7, 8, 500_000, 0, 499_999, 131_071]
    while len(sizes) < count:
        sizes.append(
            rng.choice([rng.randint(1, 64), rng.randint(1, 4096), rng.randint(1, 500_000)])
        )
    return sizes


def test_variable_sizes_from_1_byte_to_500_kb_survive_wrapping_around_the_ring(make_queue):
    # Given a 1 MiB ring: a 500 KB message fills half of it
    queue = make_queue(capacity_bytes=1 << 20, max_messages=1000)
    seed, count = 7, 300
    # When a spawned producer puts 300 messages of 1 B .. 500 KB (tens of MB in total)
    producer = start(produce_sized, queue, seed, count)
    # Then each comes out byte for byte
    for index, size in enumerate(wrap_sizes(seed, count)):
        message = queue.get(timeout=BLOCK_S)
        assert message is not None, f"timed out at message {index}"
        assert len(message) == size and message == body_for(seed + index, size), index
    join(producer)
    assert queue.qsize() == 0


def test_a_record_split_at_every_offset_of_the_ring_end_reads_back_intact(make_queue):
    # Given a ring of 64 bytes, and records whose ends fall on every offset
    queue = make_queue(capacity_bytes=64, max_messages=8)
    for step in range(400):
        sizes = [step % 61, (step * 7) % 29, 3]
        batch = [body_for(step * 3 + i, size) for i, size in enumerate(sizes)]
        # When they are put and taken, in one batch and one by one
        got: list[bytes] = []
        if step % 2:
            sent = 0
            while len(got) < len(batch):
                sent += queue.put_many(batch[sent:], timeout=0)
                got += queue.get_many(len(batch), timeout=BLOCK_S)
        else:
            for message in batch:
                assert queue.put(message, timeout=BLOCK_S)
                got.append(queue.get(timeout=BLOCK_S))
        # Then every payload is whole, including those split across the end
        assert got == batch, step
    assert queue.qsize() == 0


# ---------------------------------------------------------------------- bounds and timeouts


def test_a_message_larger_than_the_queue_raises_value_error_naming_the_sizes(make_queue):
    queue = make_queue(capacity_bytes=1024, max_messages=8)
    with pytest.raises(ValueError, match=r"2000 bytes.*2004 bytes.*capacity is 1024 bytes"):
        queue.put(b"x" * 2000)
    # put_many checks every item before putting any
    with pytest.raises(ValueError, match="2000 bytes"):
        queue.put_many([b"small", b"x" * 2000])
    assert queue.qsize() == 0


def test_a_full_queue_blocks_put_until_the_timeout_then_returns_false(make_queue):
    # Given a queue full by message count, and one full by bytes
    by_count = make_queue(capacity_bytes=4096, max_messages=4)
    assert by_count.put_many([b"m"] * 4, timeout=0) == 4
    by_bytes = make_queue(capacity_bytes=256, max_messages=100)
    assert by_bytes.put(b"b" * 200, timeout=0)
    for queue, message in ((by_count, b"m"), (by_bytes, b"b" * 200)):
        # When a put waits 0.2 s
        started = time.monotonic()
        assert queue.put(message, timeout=0.2) is False
        elapsed = time.monotonic() - started
        # Then it waited the whole timeout, and not much longer
        assert 0.2 <= elapsed < 0.2 + LATE_S
    # And put_many puts the prefix that fits, and says how many
    assert by_count.get(timeout=0) == b"m" and by_count.get(timeout=0) == b"m"
    assert by_count.put_many([b"1", b"2", b"3"], timeout=0.05) == 2
    assert by_count.get_many(10, timeout=0) == [b"m", b"m", b"1", b"2"]


def test_get_with_a_timeout_returns_none_promptly_on_an_empty_queue(make_queue):
    queue = make_queue(capacity_bytes=4096, max_messages=8)
    for timeout in (0.0, 0.05, 0.3):
        started = time.monotonic()
        assert queue.get(timeout=timeout) is None
        elapsed = time.monotonic() - started
        assert timeout <= elapsed < timeout + LATE_S
    started = time.monotonic()
    assert queue.get_many(10, timeout=0.1) == []
    assert 0.1 <= time.monotonic() - started < 0.1 + LATE_S


def test_get_many_returns_as_soon_as_one_message_is_there(make_queue):
    queue = make_queue(capacity_bytes=4096, max_messages=8)
    queue.put(b"only one")
    started = time.monotonic()
    assert queue.get_many(10, timeout=BLOCK_S) == [b"only one"]
    assert time.monotonic() - started < LATE_S


def test_get_without_a_timeout_waits_until_another_process_puts(make_queue):
    # Given a consumer blocked in get(timeout=None), asleep on the queue
    queue = make_queue(capacity_bytes=4096, max_messages=8)
    results = CTX.Queue()
    consumer = start(get_one_blocking_forever, queue, results)
    wait_until(lambda: sleeping_consumers(queue) == 1)
    # When 0.3 s pass, with its wait slice cut to 10 ms (30 wake-ups, no timeout)
    consumer.join(0.3)
    # Then it is still waiting
    assert consumer.is_alive() and results.empty()
    # And when another process puts, it returns that message at once
    queue.put(b"at last")
    assert results.get(timeout=BLOCK_S) == b"at last"
    join(consumer)
    assert sleeping_consumers(queue) == 0


@pytest.mark.parametrize("sleepers", [2, 3])
def test_each_put_wakes_a_consumer_while_others_still_sleep(make_queue, sleepers):
    queue = make_queue(capacity_bytes=4096, max_messages=8)
    for round_ in range(3):
        # Given consumers asleep in get(timeout=None), whose waits never time out
        results = CTX.Queue()
        consumers = [start(get_one_with_no_wait_slice, queue, results) for _ in range(sleepers)]
        wait_until(lambda: sleeping_consumers(queue) == sleepers)
        # When messages come one at a time, each after the last one was taken (its taker
        # then leaves, so the count of sleepers drops to what this handle has woken)
        for i in range(sleepers):
            queue.put(b"%d" % i)
            # Then another sleeper wakes up and takes each one
            assert results.get(timeout=5) == b"%d" % i, f"round {round_}, message {i}"
        for consumer in consumers:
            join(consumer)


# ---------------------------------------------------------------------- killed processes


def test_a_consumer_killed_while_blocked_in_get_leaves_the_queue_usable(make_queue):
    # Given a consumer asleep in get()
    queue = make_queue(capacity_bytes=64 << 10, max_messages=512)
    victim = start(block_in_get, queue)
    wait_until(lambda: sleeping_consumers(queue) == 1)
    # When it is SIGKILLed
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(BLOCK_S)
    assert victim.exitcode == -signal.SIGKILL
    # Then another consumer still receives everything put afterwards
    results = CTX.Queue()
    survivor = start(drain_until, queue, 299, results)
    for i in range(300):
        assert queue.put(encode(i, small_size(i)), timeout=BLOCK_S)
    assert results.get(timeout=BLOCK_S) == list(range(300))
    join(survivor)
    # And recover() forgets the dead sleeper, so producers stop waking it
    queue.recover(victim.pid)
    assert sleeping_consumers(queue) == 0


@pytest.mark.parametrize("attempt", range(3))
def test_a_consumer_killed_in_a_get_many_loop_loses_at_most_what_it_took(make_queue, attempt):
    # Given a consumer taking 64 KB messages 10 at a time as fast as we put them: it spends
    # most of its time copying under the consumer lock, where the kill will likely land
    # (7 times in 10 when this was written)
    queue = make_queue(capacity_bytes=16 << 20, max_messages=1000)
    started = CTX.Event()
    victim = start(take_in_a_loop, queue, started)
    sent = queue.put_many([encode(i, 64 << 10) for i in range(10)], timeout=BLOCK_S)
    assert started.wait(BLOCK_S)
    for _ in range(30):
        batch = [encode(i, 64 << 10) for i in range(sent, sent + 10)]
        sent += queue.put_many(batch, timeout=BLOCK_S)
    # When it is SIGKILLed mid-loop
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(BLOCK_S)
    assert victim.exitcode == -signal.SIGKILL
    queue.recover(victim.pid)
    # Then another consumer drains the rest and what comes next: intact, in order, from
    # where the victim's last completed take ended (a take cut short is delivered again)
    results = CTX.Queue()
    survivor = start(drain_until, queue, sent + 9, results)
    assert queue.put_many([encode(i, 64) for i in range(sent, sent + 10)], timeout=BLOCK_S) == 10
    received = results.get(timeout=BLOCK_S)
    join(survivor)
    first = received[0]
    assert first >= 10 and received == list(range(first, sent + 10))
    assert queue.qsize() == 0


@pytest.mark.parametrize("side", ["producer", "consumer"])
def test_a_process_killed_holding_a_lock_does_not_freeze_the_queue(make_queue, side):
    # Given a process that holds the producer (or consumer) lock
    queue = make_queue(capacity_bytes=4096, max_messages=8)
    assert queue.put(b"before", timeout=0)
    holding = CTX.Event()
    victim = start(hold_lock_until_killed, queue, side, holding)
    assert holding.wait(BLOCK_S)
    # When it is SIGKILLed without releasing it
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(BLOCK_S)
    queue.recover(victim.pid)
    # Then both sides still work: the kernel released the lock and we repaired it
    assert queue.put(b"after", timeout=BLOCK_S)
    assert queue.get_many(10, timeout=BLOCK_S) == [b"before", b"after"]


# ---------------------------------------------------------------------- the handle


def test_the_handle_pickles_across_spawn_and_reattaches_by_name(make_queue):
    queue = make_queue(capacity_bytes=4096, max_messages=8)
    # A spawned child given the handle as a Process argument puts into the same queue
    child = start(put_from_child, queue, b"hello from a child")
    assert queue.get(timeout=BLOCK_S) == b"hello from a child"
    join(child)
    # An unpickled copy in this process is a second handle on the same segment
    copy = pickle.loads(pickle.dumps(queue))
    try:
        assert copy.name == queue.name
        copy.put(b"via the copy")
        assert queue.get(timeout=BLOCK_S) == b"via the copy"
        with pytest.raises(RuntimeError, match="only the handle that created"):
            copy.unlink()
    finally:
        copy.close()
    # A closed handle refuses to work or to be pickled
    with pytest.raises(ValueError, match="closed"):
        copy.put(b"x")
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(copy)
