"""The protocol engine alone: plan, commit and perform no-op nodes in one process.

Memory queue and memory store, no executors, no processes: the cost of the run protocol
itself (parse, plan, commit_node, the store's conditional write, effects), which bounds
what any receiver can commit per core.

    .venv/bin/python benchmarks/engine_bench.py [--runs 2000] [--length 10] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from flowcraft_sqs import protocol
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.engine import Engine, perform
from flowcraft_sqs.expressions import DefaultEvaluator
from flowcraft_sqs.messages import Job
from flowcraft_sqs.protocol import NodeCompletion
from flowcraft_sqs.stores.memory import MemoryRunStore, MemoryStatusTable
from flowcraft_sqs.transport.memory import MemoryQueue


def chain(length: int) -> dict:
    nodes = [{"id": f"n{i}", "uses": "noop"} for i in range(length)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(length - 1)]
    return {"id": "chain", "nodes": nodes, "edges": edges}


def one_rep(runs: int, length: int) -> float:
    bp = load_blueprint(chain(length))
    store, statuses, queue = MemoryRunStore(), MemoryStatusTable(), MemoryQueue(visibility_s=3600)
    engine = Engine({bp.id: bp}, store, DefaultEvaluator(), clock=time.time)
    for _ in range(runs):
        run_id = uuid.uuid4().hex
        store.create_run(protocol.new_run(bp, run_id, {}, time.time()))
        statuses.start(run_id, time.time())
        queue.send_jobs([Job(run_id, bp.id, "n0")])
    started, nodes = time.perf_counter(), 0
    while messages := queue.receive(10, 0):
        for planned in engine.plan_messages(messages):
            effects = planned.effects
            if planned.execute is not None:
                effects, _ = engine.complete(planned.execute, NodeCompletion(output=1))
                nodes += 1
            perform(effects, queue, statuses, time.time)
            queue.delete([planned.received.receipt])
    assert nodes == runs * length, nodes
    return nodes / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--length", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rates = [one_rep(args.runs, args.length) for _ in range(args.reps)]
    print(f"engine alone: {statistics.median(rates):,.0f} node commits/s "
          f"(median of {args.reps}: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
