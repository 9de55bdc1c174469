"""The `--app` the process tests run: small blueprints with well-behaved and misbehaving nodes.

Nodes that must be counted append one line per execution to the file named by
$FLOWCRAFT_TEST_EXEC_LOG (O_APPEND writes of one short line are atomic), so a test can see
how often each node ran across every process of every worker.

`seed` is the `--memory-seed` hook for `--backend memory`: it starts $FLOWCRAFT_TEST_RUNS
chain runs inside the receiver, and a thread that writes a JSON report to
$FLOWCRAFT_TEST_REPORT once every run has a final status.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from typing import Any

import orjson

from flowcraft_sqs import protocol

EXEC_LOG_ENV = "FLOWCRAFT_TEST_EXEC_LOG"
SPAN_LOG_ENV = "FLOWCRAFT_TEST_SPAN_LOG"
RUNS_ENV = "FLOWCRAFT_TEST_RUNS"
REPORT_ENV = "FLOWCRAFT_TEST_REPORT"
CHAIN_LENGTH = 4


def _append_line(env: str, line: str) -> None:
    """One short line appended to the file named by $env, if set (atomic with O_APPEND)."""
    path = os.environ.get(env)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def record(ctx: Any) -> None:
    _append_line(EXEC_LOG_ENV, f"{ctx.run_id} {ctx.node_id} {os.getpid()}\n")


def record_span(ctx: Any, started: float) -> None:
    """One line per finished execution: run, node, start and end (time.time())."""
    _append_line(SPAN_LOG_ENV, f"{ctx.run_id} {ctx.node_id} {started:.6f} {time.time():.6f}\n")


async def await_io(ctx: Any) -> dict[str, Any]:
    """An LLM or HTTP call: waits without holding its event loop."""
    record(ctx)
    started = time.time()
    await asyncio.sleep(float(ctx.params["seconds"]))
    record_span(ctx, started)
    return {"output": "answered"}


def block_io(ctx: Any) -> dict[str, Any]:
    """A blocking client (requests-style): holds its thread while it waits."""
    record(ctx)
    started = time.time()
    time.sleep(float(ctx.params["seconds"]))
    record_span(ctx, started)
    return {"output": "answered"}


def step(ctx: Any) -> dict[str, Any]:
    """One link of a chain: counts how far the run got, with a short pause."""
    record(ctx)
    time.sleep(float(ctx.params.get("sleep", 0.0)))
    previous = ctx.input if isinstance(ctx.input, int) else 0
    return {"output": previous + 1}


def noop(ctx: Any) -> dict[str, Any]:
    return {"output": 1}


def slow(ctx: Any) -> dict[str, Any]:
    record(ctx)
    time.sleep(float(ctx.params["seconds"]))
    return {"output": "done"}


def spin(ctx: Any) -> None:
    record(ctx)
    while True:
        pass


async def spin_async(ctx: Any) -> None:
    """Blocks its event loop: only the supervisor can stop it."""
    record(ctx)
    while True:
        pass


async def nap(ctx: Any) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"output": "rested"}


def crash(ctx: Any) -> None:
    record(ctx)
    marker = os.environ.get(EXEC_LOG_ENV, "") + ".crashed"
    if not os.path.exists(marker):  # the first execution kills its executor; later ones succeed
        open(marker, "w").close()
        os._exit(137)


def _chain(bp_id: str, uses: str, length: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "uses": uses, "params": params or {}} for i in range(length)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(length - 1)]
    return {"id": bp_id, "nodes": nodes, "edges": edges}


def count_up(ctx: Any) -> dict[str, Any]:
    """A loop body: one more pass, recorded, after a short pause."""
    record(ctx)
    time.sleep(float(ctx.params.get("sleep", 0.0)))
    count = int(ctx.context.get_sync("count", 0)) + 1
    ctx.context.set_sync("count", count)
    return {"output": count}


def square(ctx: Any) -> dict[str, Any]:
    """A batch worker: one item, after a short pause, so a test can kill a batch midway."""
    time.sleep(0.02)
    return {"output": ctx.input * ctx.input}


registry = {"step": step, "noop": noop, "slow": slow, "spin": spin, "spin-async": spin_async,
            "nap": nap, "crash": crash, "count-up": count_up, "square": square,
            "await-io": await_io, "block-io": block_io}

blueprints = {
    "chain": _chain("chain", "step", CHAIN_LENGTH),
    "slow-chain": _chain("slow-chain", "step", CHAIN_LENGTH, {"sleep": 0.2}),
    "noop-chain": _chain("noop-chain", "noop", 10),
    "pause": {"id": "pause", "nodes": [{"id": "pause", "uses": "slow", "params": {"seconds": 1.5}},
                                       {"id": "after", "uses": "step"}],
              "edges": [{"source": "pause", "target": "after"}]},
    "long": {"id": "long", "nodes": [{"id": "long", "uses": "slow", "params": {"seconds": 7}}]},
    "await-1s": {"id": "await-1s", "nodes": [{"id": "ask", "uses": "await-io", "params": {"seconds": 1}}]},
    "await-4s": {"id": "await-4s", "nodes": [{"id": "ask", "uses": "await-io", "params": {"seconds": 4}}]},
    "block-1s": {"id": "block-1s", "nodes": [{"id": "call", "uses": "block-io", "params": {"seconds": 1}}]},
    "stubborn": {"id": "stubborn", "nodes": [  # a sync node that ignores its 500 ms timeout
        {"id": "call", "uses": "block-io", "params": {"seconds": 20}, "config": {"timeout": 500}}]},
    "spin": {"id": "spin", "nodes": [{"id": "spin", "uses": "spin", "config": {"timeout": 300}}]},
    "spin-async": {"id": "spin-async", "nodes": [
        {"id": "spin", "uses": "spin-async", "config": {"timeout": 300, "maxRetries": 2}}]},
    "crash": {"id": "crash", "nodes": [{"id": "crash", "uses": "crash"}, {"id": "after", "uses": "step"}],
              "edges": [{"source": "crash", "target": "after"}]},
    "approval": {"id": "approval", "nodes": [
        {"id": "draft", "uses": "step"}, {"id": "review", "uses": "wait"},
        {"id": "publish", "uses": "step"}, {"id": "discard", "uses": "step"}],
        "edges": [{"source": "draft", "target": "review"},
                  {"source": "review", "target": "publish", "action": "approve"},
                  {"source": "review", "target": "discard", "action": "reject"}]},
    "nap": {"id": "nap", "nodes": [{"id": "before", "uses": "step"},
                                   {"id": "zz", "uses": "sleep", "params": {"duration": "4s"}},
                                   {"id": "after", "uses": "step"}],
            "edges": [{"source": "before", "target": "zz"}, {"source": "zz", "target": "after"}]},
    "loop": {"id": "loop", "nodes": [
        {"id": "start", "uses": "step"},
        {"id": "ctrl", "uses": "loop-controller", "params": {"condition": "count < 5"},
         "config": {"joinStrategy": "any"}},
        {"id": "body", "uses": "count-up", "params": {"sleep": 0.4}},
        {"id": "done", "uses": "step"}],
        "edges": [{"source": "start", "target": "ctrl"},
                  {"source": "ctrl", "target": "body", "action": "continue"},
                  {"source": "body", "target": "ctrl"},
                  {"source": "ctrl", "target": "done", "action": "break"}]},
    "batch": {"id": "batch", "nodes": [
        {"id": "scatter", "uses": "batch-scatter", "inputs": "items",
         "params": {"workerUsesKey": "square", "gatherNodeId": "gather", "chunkSize": 20}},
        {"id": "gather", "uses": "batch-gather", "params": {"gatherNodeId": "gather", "outputKey": "squares"}}],
        "edges": [{"source": "scatter", "target": "gather"}]},
}


def start_run(bp: Any, store: Any, statuses: Any, queue: Any, run_id: str | None = None,
              context: dict[str, Any] | None = None) -> str:
    """Start a run the way our client does: state, status, then the start jobs."""
    from flowcraft_sqs.messages import Job

    run_id = run_id or uuid.uuid4().hex
    state = protocol.new_run(bp, run_id, context or {}, time.time())
    store.create_run(state)
    statuses.start(run_id, time.time())
    queue.send_jobs([Job(run_id, bp.id, node_id) for node_id in bp.start_node_ids])
    return run_id


def seed(queue: Any, store: Any, statuses: Any, app: Any, receiver: int) -> None:
    """--memory-seed: start the runs, and report when all have ended."""
    count = int(os.environ.get(RUNS_ENV, "10"))
    bp = app.blueprints[os.environ.get("FLOWCRAFT_TEST_BLUEPRINT", "chain")]
    run_ids = [start_run(bp, store, statuses, queue) for _ in range(count)]
    report = os.environ.get(REPORT_ENV)
    if report:
        threading.Thread(target=_report_when_done, args=(statuses, store, run_ids, report),
                         daemon=True).start()


def _report_when_done(statuses: Any, store: Any, run_ids: list[str], path: str) -> None:
    started = time.monotonic()
    while True:
        items = [statuses.items.get(run_id, {}) for run_id in run_ids]
        if all(item.get("status") in protocol.FINAL_STATUSES for item in items):
            break
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    data = {
        "elapsed_s": elapsed,
        "statuses": [item.get("status") for item in items],
        "reasons": [item.get("reason") for item in items],
        "publish_writes": statuses.publish_writes,
        "outputs": [dict(store.get(r).context) for r in run_ids],
    }
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(data))
    os.replace(tmp, path)
