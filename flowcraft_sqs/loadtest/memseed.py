"""`--memory-seed flowcraft_sqs.loadtest.memseed:seed`: a backlog for `--backend memory`.

With `flowcraft-worker --backend memory` each receiver has its own in-process queue and
tables, so the load must be created inside it. `seed` starts FLOWCRAFT_LOADTEST_RUNS runs of
FLOWCRAFT_LOADTEST_BLUEPRINT (state, status, start jobs: what `FlowcraftClient.start_run`
writes), all at once, then a thread waits until every run has a final status and writes
`{"runs": [...]}` to FLOWCRAFT_LOADTEST_REPORT: per run its submit time, status, status time
and each node's start/end, for the harness to turn into the same report as an AWS run.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any, Final

import orjson

from .. import protocol
from ..messages import Job

RUNS_ENV: Final = "FLOWCRAFT_LOADTEST_RUNS"
BLUEPRINT_ENV: Final = "FLOWCRAFT_LOADTEST_BLUEPRINT"
REPORT_ENV: Final = "FLOWCRAFT_LOADTEST_REPORT"
POLL_S: Final = 0.05


def seed(queue: Any, store: Any, statuses: Any, app: Any, receiver: int) -> None:
    count = int(os.environ.get(RUNS_ENV, "1000"))
    bp = app.blueprints[os.environ.get(BLUEPRINT_ENV, "lt-chain-10")]
    submitted: dict[str, float] = {}
    jobs: list[Job] = []
    for _ in range(count):
        run_id = uuid.uuid4().hex
        now = time.time()
        state = protocol.new_run(bp, run_id, {}, now)
        store.create_run(state)
        statuses.start(run_id, now)
        submitted[run_id] = now
        jobs.extend(Job(run_id, bp.id, node_id) for node_id in protocol.outstanding_jobs(state))
    queue.send_jobs(jobs)
    report = os.environ.get(REPORT_ENV)
    if report:
        path = f"{report}.{receiver}" if receiver else report
        threading.Thread(target=_report_when_done, args=(statuses, store, submitted, path),
                         name="lt-report", daemon=True).start()


def _report_when_done(statuses: Any, store: Any, submitted: dict[str, float], path: str) -> None:
    # Cheap while the load runs (this thread shares the receiver's GIL): count final
    # publishes, then check every run once.
    while getattr(statuses, "publish_writes", len(submitted)) < len(submitted):
        time.sleep(POLL_S)
    pending = set(submitted)
    while pending:
        pending = {r for r in pending
                   if statuses.items.get(r, {}).get("status") not in protocol.FINAL_STATUSES}
        if pending:
            time.sleep(POLL_S)
    runs = []
    for run_id, t in submitted.items():
        item = statuses.items[run_id]
        context = store.get(run_id).context
        nodes = {k[len(protocol.OUTPUTS_PREFIX):]: [v["s"], v["e"]] for k, v in context.items()
                 if k.startswith(protocol.OUTPUTS_PREFIX) and isinstance(v, dict) and "s" in v}
        runs.append({"run_id": run_id, "submitted": t, "status": item.get("status"),
                     "finished": item.get("lastUpdated"), "reason": item.get("reason"),
                     "nodes": nodes})
    data = {"runs": runs, "store_writes": getattr(store, "writes", None),
            "store_reads": getattr(store, "reads", None), "queue_calls": None}
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(data))
    os.replace(tmp, path)
