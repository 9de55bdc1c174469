"""One-way hand-off rate of the work queue against multiprocessing.Queue(maxsize=1000).

A spawned producer process puts pre-encoded 208-byte orjson messages as fast as it can; the
parent consumes them and counts what it receives during a fixed window (after a warm-up),
so the queue is kept busy and the rate is messages received per second. Two hand-offs:
1 message per put/get, and 10 per put (`put_many`/`get_many(10)`; a list of 10 for
mp.Queue). Each of the 3 runs measures every case once, cases interleaved so host noise
spreads over all of them; ratios are taken within a run, then the median of 3 is shown
(the method of /work/shared/perf/ipc-anchors.md, Part 1). Both queues hold at most 1000
entries; the WorkQueue has its default 8 MiB ring.

Each case also reports CPU time per message on each side (the producer's includes
mp.Queue's feeder thread) and the host's 1-minute load average. On a shared 2-vCPU host
the rate swings 2-3x with other processes' load; CPU per message moves much less, and the
slower side's figure bounds the rate two idle cores would give.

    .venv/bin/python benchmarks/workqueue_bench.py [--runs 3] [--seconds 1.5]
    .venv/bin/python benchmarks/workqueue_bench.py --profile   # cProfile of both sides

Prints a Markdown table and writes benchmarks/out/workqueue.json.
"""

from __future__ import annotations

import argparse
import cProfile
import faulthandler
import json
import multiprocessing as mp
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from flowcraft_sqs.workqueue import WorkQueue

#: Size of one node-work message, as in ipc-anchors Part 1.
MESSAGE_BYTES = 208
#: Messages per put in the batched case (an SQS receive returns at most 10).
BATCH = 10
#: Both queues are bounded at 1000 entries, the mp.Queue reference's maxsize.
MAX_ENTRIES = 1000
#: Seconds of consuming before the measured window starts (caches, branch predictors).
WARMUP_S = 0.2
#: Producer checks its stop flag once per this many puts: a flag read per put would be
#: measured too.
STOP_CHECK_EVERY = 256
#: Upper bound on any single blocking call in the benchmark: a stuck run fails loudly.
BLOCK_TIMEOUT_S = 30.0
#: Sentinel: the producer's last message.
END = b""

OUT = Path(__file__).resolve().parent / "out" / "workqueue.json"


def make_message() -> bytes:
    """A node-work message as the receivers will send it, padded to MESSAGE_BYTES."""
    body: dict[str, Any] = {
        "run": "r-7f3c2a9e-4b1d-4c8e-9a6f-2d5e8b1c0a37",
        "node": "fetch_customer_profile",
        "blueprint": "onboarding/v12",
        "attempt": 1,
        "origin": 0,
        "item": 123456789,
        "pad": "",
    }
    body["pad"] = "x" * (MESSAGE_BYTES - len(orjson.dumps(body)))
    message = orjson.dumps(body)
    assert len(message) == MESSAGE_BYTES, len(message)
    return message


# ---------------------------------------------------------------------- producers (children)


def produce_workqueue(queue: WorkQueue, batch: int, stop: Any, ready: Any, stats: Any) -> None:
    message = make_message()
    items = [message] * batch
    put, put_many = queue.put, queue.put_many
    ready.set()
    cpu, sent = time.process_time(), 0
    while not stop.value:
        if batch == 1:
            for _ in range(STOP_CHECK_EVERY):
                put(message, BLOCK_TIMEOUT_S)
        else:
            for _ in range(STOP_CHECK_EVERY // batch):
                put_many(items, BLOCK_TIMEOUT_S)
        sent += STOP_CHECK_EVERY // batch * batch
    stats[0], stats[1] = time.process_time() - cpu, sent
    queue.put(END, BLOCK_TIMEOUT_S)
    queue.close()


def produce_mp_queue(queue: Any, batch: int, stop: Any, ready: Any, stats: Any) -> None:
    message = make_message()
    items = [message] * batch
    put = queue.put  # no timeout: its own fastest path, as in ipc-anchors
    ready.set()
    cpu, sent = time.process_time(), 0
    while not stop.value:
        if batch == 1:
            for _ in range(STOP_CHECK_EVERY):
                put(message)
        else:
            for _ in range(STOP_CHECK_EVERY // batch):
                put(items)
        sent += STOP_CHECK_EVERY // batch * batch
    # Includes the feeder thread's CPU: it does the pickling and the pipe writes.
    stats[0], stats[1] = time.process_time() - cpu, sent
    queue.put(END, True, BLOCK_TIMEOUT_S)


def run_profiled(function: Any, path: str, *args: Any) -> Any:
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(function, *args)
    finally:
        profiler.dump_stats(path)


# ---------------------------------------------------------------------- consumer (parent)


def consume(receive: Any, seconds: float) -> tuple[float, float]:
    """Call `receive()` (returns how many messages it got) through a warm-up and a
    measured window; return (messages per second, consumer CPU us per message) over the
    window."""
    clock = time.perf_counter
    start = clock()
    window_start = start + WARMUP_S
    window_end = window_start + seconds
    counted = 0
    counting = False
    t0 = start
    cpu0 = 0.0
    while True:
        got = 0
        for _ in range(64):
            got += receive()
        now = clock()
        if counting:
            counted += got
            if now >= window_end:
                return counted / (now - t0), (time.process_time() - cpu0) / counted * 1e6
        elif now >= window_start:
            counting, t0, cpu0 = True, now, time.process_time()


def drain_until_end(receive_raw: Any) -> None:
    while True:
        got = receive_raw()
        if got is None:
            raise RuntimeError("producer stopped without sending END")
        if got == END or (isinstance(got, list) and END in got):
            return


def run_case(
    ctx: Any, transport: str, batch: int, seconds: float, profile_to: Path | None = None
) -> dict[str, float]:
    """One measurement: rate, CPU us per message on each side, and the host's load. With
    `profile_to`, both sides run under cProfile and write `<profile_to>.{producer,consumer}`."""
    stop = ctx.RawValue("b", 0)
    stats = ctx.RawArray("d", 2)
    ready = ctx.Event()
    if transport == "WorkQueue":
        queue: Any = WorkQueue.create(capacity_bytes=8 << 20, max_messages=MAX_ENTRIES)
        target = produce_workqueue
        if batch == 1:

            def receive() -> int:
                if queue.get(BLOCK_TIMEOUT_S) is None:
                    raise RuntimeError("WorkQueue.get timed out")
                return 1

            def receive_raw() -> Any:
                return queue.get(BLOCK_TIMEOUT_S)

        else:

            def receive() -> int:
                got = len(queue.get_many(batch, BLOCK_TIMEOUT_S))
                if not got:
                    raise RuntimeError("WorkQueue.get_many timed out")
                return got

            def receive_raw() -> Any:
                return queue.get_many(batch, BLOCK_TIMEOUT_S) or None

    else:
        queue = ctx.Queue(maxsize=MAX_ENTRIES)
        target = produce_mp_queue
        get = queue.get

        def receive() -> int:
            got = get()  # no timeout: mp.Queue's fastest path; the watchdog covers hangs
            return 1 if batch == 1 else len(got)

        def receive_raw() -> Any:
            return get(True, BLOCK_TIMEOUT_S)

    args: tuple[Any, ...] = (queue, batch, stop, ready, stats)
    if profile_to is not None:
        args = (target, f"{profile_to}.producer", *args)
        target = run_profiled
    producer = ctx.Process(target=target, args=args, daemon=True)
    producer.start()
    faulthandler.dump_traceback_later(seconds + WARMUP_S + 3 * BLOCK_TIMEOUT_S, exit=True)
    try:
        if not ready.wait(BLOCK_TIMEOUT_S):
            raise RuntimeError(f"{transport} producer did not start")
        if profile_to is not None:
            rate, consumer_cpu_us = run_profiled(
                consume, f"{profile_to}.consumer", receive, seconds
            )
        else:
            rate, consumer_cpu_us = consume(receive, seconds)
        stop.value = 1
        drain_until_end(receive_raw)
        producer.join(BLOCK_TIMEOUT_S)
        if producer.exitcode != 0:
            raise RuntimeError(f"{transport} producer exited with {producer.exitcode}")
        return {
            "rate": rate,
            "producer_cpu_us": stats[0] / stats[1] * 1e6,
            "consumer_cpu_us": consumer_cpu_us,
            "load_1m": os.getloadavg()[0],
        }
    finally:
        faulthandler.cancel_dump_traceback_later()
        if producer.is_alive():
            producer.kill()
            producer.join(BLOCK_TIMEOUT_S)
        if transport == "WorkQueue":
            queue.close()
            queue.unlink()
        else:
            queue.close()
            queue.join_thread()


CASES = [
    ("WorkQueue", 1),
    ("mp.Queue(1000)", 1),
    ("WorkQueue", BATCH),
    ("mp.Queue(1000)", BATCH),
]


def profile(ctx: Any, seconds: float, out_dir: Path) -> int:
    """Where the time goes: cProfile of both sides, WorkQueue at 1 and 10 per put.
    cProfile roughly doubles the cost of each Python call, so read the shares, not the
    rates."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for batch in (1, BATCH):
        base = out_dir / f"workqueue-{batch}-per-put.prof"
        result = run_case(ctx, "WorkQueue", batch, seconds, profile_to=base)
        print(f"\n## WorkQueue, {batch}/put: {result['rate']:,.0f} msg/s under cProfile\n")
        for side in ("producer", "consumer"):
            print(f"### {side} (top 8 by own time)\n")
            stats = pstats.Stats(f"{base}.{side}")
            stats.sort_stats("tottime").print_stats(8)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="measured window per case")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--profile", action="store_true", help="run the WorkQueue cases once under cProfile"
    )
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    if args.profile:
        return profile(ctx, args.seconds, args.out.parent)

    runs: list[dict[str, dict[str, float]]] = []
    for run in range(args.runs):
        results: dict[str, dict[str, float]] = {}
        for transport, batch in CASES:
            key = f"{transport} {batch}/put"
            results[key] = result = run_case(ctx, transport, batch, args.seconds)
            print(
                f"run {run + 1}: {key:<22} {result['rate']:>12,.0f} msg/s  "
                f"CPU us/msg producer {result['producer_cpu_us']:.2f} "
                f"consumer {result['consumer_cpu_us']:.2f}  load {result['load_1m']:.2f}",
                file=sys.stderr,
            )
        runs.append(results)

    def values(key: str, field: str = "rate") -> list[float]:
        return [r[key][field] for r in runs]

    def ratio(a: str, b: str) -> float:
        return statistics.median(r[a]["rate"] / r[b]["rate"] for r in runs)

    rows = []
    for transport, batch in CASES:
        key = f"{transport} {batch}/put"
        rates = values(key)
        rows.append(
            {
                "case": key,
                "transport": transport,
                "per_put": batch,
                "rate_median": statistics.median(rates),
                "rate_min": min(rates),
                "rate_max": max(rates),
                "vs_mp_queue": ratio(key, f"mp.Queue(1000) {batch}/put"),
                "batching_gain": ratio(f"{transport} {BATCH}/put", f"{transport} 1/put"),
                "producer_cpu_us": statistics.median(values(key, "producer_cpu_us")),
                "consumer_cpu_us": statistics.median(values(key, "consumer_cpu_us")),
            }
        )
    loads = [r[k]["load_1m"] for r in runs for k in r]

    print()
    print(
        f"One-way hand-off of {MESSAGE_BYTES} B messages, spawned producer -> consumer, "
        f"both queues bounded at {MAX_ENTRIES} entries; median of {args.runs} runs of "
        f"{args.seconds} s, ratios within a run; 1-min load average "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs"
    )
    print()
    print(
        "| transport | per put | msg/s | range of runs | vs mp.Queue(1000) "
        "| 10/put vs 1/put | producer CPU us/msg | consumer CPU us/msg |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['transport']} | {row['per_put']} | {row['rate_median']:,.0f} "
            f"| {row['rate_min']:,.0f}-{row['rate_max']:,.0f} | {row['vs_mp_queue']:.1f}x "
            f"| {row['batching_gain']:.1f}x | {row['producer_cpu_us']:.2f} "
            f"| {row['consumer_cpu_us']:.2f} |"
        )
    print()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "workqueue one-way hand-off",
        "message_bytes": MESSAGE_BYTES,
        "batch": BATCH,
        "max_entries": MAX_ENTRIES,
        "seconds_per_case": args.seconds,
        "warmup_s": WARMUP_S,
        "runs": runs,
        "summary": rows,
        "load_1m": {"min": min(loads), "max": max(loads)},
        "targets": {"one_per_put": 800_000, "ten_per_put": 2_000_000},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
