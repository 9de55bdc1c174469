"""Drive a run through the distributed path (Engine, queue, store) in memory.

Every message can be delivered twice, the way SQS's at-least-once delivery and a
worker crash between commit and delete do it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from flowcraft_sqs import builtins, protocol
from flowcraft_sqs.blueprint import Blueprint
from flowcraft_sqs.completion import run_node
from flowcraft_sqs.engine import Engine, perform
from flowcraft_sqs.messages import Job
from flowcraft_sqs.stores.memory import MemoryRunStore, MemoryStatusTable
from flowcraft_sqs.transport.memory import MemoryQueue

MAX_ROUNDS = 1000  # a case that needs more receive rounds than this is stuck, not slow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class DuplicatingQueue(MemoryQueue):
    """Sends every job twice when `duplicate` is set."""

    def __init__(self, duplicate: bool, clock: Any) -> None:
        super().__init__(visibility_s=3600, clock=clock)
        self.duplicate = duplicate
        self.delays: list[int] = []

    def send_jobs(self, jobs: Any, delay_s: int = 0) -> None:
        if delay_s:
            self.delays.append(delay_s)
        super().send_jobs(jobs, delay_s)
        if self.duplicate:
            super().send_jobs(jobs, delay_s)


def run_distributed(
    bp: Blueprint,
    registry: Mapping[str, Any],
    initial_context: Mapping[str, Any],
    evaluator: Any,
    duplicate: bool = False,
    sleep: Any = asyncio.sleep,
    event_bus: Any = None,
    children: Mapping[str, Blueprint] | None = None,
    resumes: Sequence[Mapping[str, Any]] = (),
) -> tuple[protocol.RunState, MemoryStatusTable]:
    """Run `bp` to its end; each of `resumes` resumes the run (or a subflow child) waiting
    on its node, as a client would, once the queue is empty."""
    clock = FakeClock()
    store, statuses, queue = MemoryRunStore(), MemoryStatusTable(), DuplicatingQueue(duplicate, clock)
    engine = Engine({**(children or {}), bp.id: bp}, store, evaluator, clock=clock, event_bus=event_bus)
    run_id = uuid.uuid4().hex
    store.create_run(protocol.new_run(bp, run_id, initial_context, clock()))
    statuses.start(run_id, clock())
    queue.send_jobs([Job(run_id, bp.id, node_id) for node_id in bp.start_node_ids])
    drain(engine, queue, statuses, clock, registry, sleep)
    for step in resumes:
        waiting = _run_awaiting(store, bp, run_id, str(step["node"]))
        effects = engine.resume(waiting, str(step["node"]), step.get("action"), step.get("output"))
        perform(effects, queue, statuses, clock)
        drain(engine, queue, statuses, clock, registry, sleep)
    state = store.get(run_id)
    assert state is not None
    return state, statuses


def _run_awaiting(store: MemoryRunStore, bp: Blueprint, run_id: str, node_id: str) -> str:
    """The run, or one of its subflow children, that waits on `node_id`."""
    children = [builtins.subflow_run_id(run_id, n.id) for n in bp.nodes if n.uses == builtins.SUBFLOW]
    candidates = [run_id, *children]
    for candidate in candidates:
        state = store.get(candidate)
        if state is not None and node_id in state.meta.awaiting:
            return candidate
    raise AssertionError(f"no run waits on node '{node_id}'")


def drain(
    engine: Engine, queue: MemoryQueue, statuses: Any, clock: FakeClock,
    registry: Mapping[str, Any], sleep: Any = asyncio.sleep,
) -> None:
    """Process messages until the queue is empty, moving the clock past delayed ones."""
    for _ in range(MAX_ROUNDS):
        messages = queue.receive(10, 0)
        if not messages:
            if not len(queue):
                return
            clock.now = max(clock.now, queue.next_visible_at() or clock.now)  # let delayed ones come
            continue
        for planned in engine.plan_messages(messages):
            assert planned.received is not None
            if planned.requeue_after_s is not None:
                queue.change_visibility([planned.received.receipt], planned.requeue_after_s)
                continue
            effects = planned.effects
            if planned.execute is not None:
                ex = planned.execute
                completion = asyncio.run(
                    run_node(ex.blueprint, ex.job.node_id, dict(ex.state.context), ex.job.run_id, registry, {}, sleep=sleep)
                )
                effects, _ = engine.complete(ex, completion)
            perform(effects, queue, statuses, clock)
            queue.delete([planned.received.receipt])
    raise AssertionError(f"queue not drained after {MAX_ROUNDS} rounds")
