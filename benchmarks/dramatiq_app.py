"""The Dramatiq side of benchmarks/peers.py: an SQS broker (dramatiq_sqs) on a local endpoint
and the two I/O-bound nodes of benchmarks (g) and (h) as Dramatiq actors.

    dramatiq -p 2 -P benchmarks dramatiq_app      # run by peers.py, environment below

PEER_SQS_ENDPOINT, PEER_NAMESPACE: the SQS endpoint and queue prefix (peers.py creates both).
PEER_TIMES_DIR: each worker process appends "start end" (epoch seconds) per node to
<dir>/<pid>, the same start/end pair the Flowcraft load-test nodes record.
"""

from __future__ import annotations

import asyncio
import os
import time

import dramatiq
from dramatiq.middleware.asyncio import AsyncIO
from dramatiq_sqs import SQSBroker

broker = SQSBroker(namespace=os.environ.get("PEER_NAMESPACE", "peer"),
                   endpoint_url=os.environ.get("PEER_SQS_ENDPOINT"),
                   region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
broker.add_middleware(AsyncIO())  # async actors run on one event loop per worker process
dramatiq.set_broker(broker)

_files: dict[int, int] = {}


def _record(start: float, end: float) -> None:
    # One short O_APPEND write per node: atomic across the process's threads. Opened per pid
    # because Dramatiq forks its worker processes after importing this module.
    pid = os.getpid()
    fd = _files.get(pid)
    if fd is None:
        path = os.path.join(os.environ["PEER_TIMES_DIR"], str(pid))
        fd = _files[pid] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, f"{start:.6f} {end:.6f}\n".encode())


@dramatiq.actor(queue_name="io", max_retries=0)
async def await_node(ms: int) -> None:
    """Awaits `ms` (asyncio.sleep), like flowcraft_sqs.loadtest.workloads.await_."""
    start = time.time()
    await asyncio.sleep(ms / 1000)
    _record(start, time.time())


@dramatiq.actor(queue_name="io", max_retries=0)
def block_node(ms: int) -> None:
    """Blocks `ms` (time.sleep), like flowcraft_sqs.loadtest.workloads.long."""
    start = time.time()
    time.sleep(ms / 1000)
    _record(start, time.time())
