"""Live counters in shared memory: written by children, summed by the supervisor.

Each child owns one row of a shared array of doubles and is its only writer (no locks); the
supervisor sums the rows, logs a one-line summary every --metrics-interval seconds, and
serves Prometheus text on --metrics-port. A restarted child keeps its slot's row, so totals
only grow (Prometheus counters must not go down). AWS requests are counted exactly by
`aws.RequestCounter` inside each receiver and copied into its row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

log = logging.getLogger("flowcraft_sqs.metrics")

#: field -> (Prometheus name, type, help).
COUNTERS: Final = {
    "received": ("flowcraft_messages_received_total", "counter", "SQS messages received"),
    "executed": ("flowcraft_nodes_executed_total", "counter",
                 "node executions finished by executors (fallbacks included)"),
    "committed": ("flowcraft_nodes_committed_total", "counter", "node results committed to the run store"),
    "failed": ("flowcraft_node_failures_total", "counter",
               "node attempts that failed (exceptions, timeouts, unstorable values)"),
    "runs_finished": ("flowcraft_runs_finished_total", "counter", "runs whose final status was published"),
    "continued": ("flowcraft_nodes_continued_total", "counter",
                  "successor nodes run locally without an SQS round trip"),
    "requeued": ("flowcraft_messages_requeued_total", "counter",
                 "messages handed back to SQS (shutdown, version mismatch, executor death)"),
    "receive_calls": ("flowcraft_receive_calls_total", "counter", "ReceiveMessage calls"),
    "flushes": ("flowcraft_flushes_total", "counter",
                "effect flushes (SendMessageBatch, statuses, DeleteMessageBatch)"),
    "flushed_messages": ("flowcraft_flushed_messages_total", "counter", "messages deleted by flushes"),
    "leases_extended": ("flowcraft_leases_extended_total", "counter", "message visibility extensions"),
    "timeouts_enforced": ("flowcraft_timeouts_enforced_total", "counter",
                          "executors killed because a node passed its timeout"),
    "child_restarts": ("flowcraft_child_restarts_total", "counter", "children restarted after exiting"),
    "in_flight": ("flowcraft_in_flight", "gauge", "work items admitted and not yet committed"),
    "running": ("flowcraft_nodes_running", "gauge", "nodes running in executors right now"),
}
#: AWS operations with a column of their own; anything else is counted as "other".
AWS_OPERATIONS: Final = (
    "SQS.ReceiveMessage",
    "SQS.SendMessageBatch",
    "SQS.DeleteMessageBatch",
    "SQS.ChangeMessageVisibilityBatch",
    "SQS.SendMessage",
    "SQS.GetQueueAttributes",
    "DynamoDB.BatchGetItem",
    "DynamoDB.GetItem",
    "DynamoDB.UpdateItem",
    "DynamoDB.PutItem",
    "DynamoDB.TransactWriteItems",
    "DynamoDB.Query",
    "other",
)
FIELDS: Final = (*COUNTERS, *(f"aws:{op}" for op in AWS_OPERATIONS))
_INDEX: Final = {name: i for i, name in enumerate(FIELDS)}


def create_board(ctx: Any, rows: int) -> Any:
    return ctx.RawArray("d", rows * len(FIELDS))


class MetricsRow:
    """One process's row. `inc`/`set` from one thread per field (each field has one writer)."""

    def __init__(self, board: Any, row: int) -> None:
        self.board = board
        self.base = row * len(FIELDS)
        self._aws_base = {op: board[self.base + _INDEX[f"aws:{op}"]] for op in AWS_OPERATIONS}
        self.set("in_flight", 0)

    def inc(self, name: str, amount: float = 1) -> None:
        self.board[self.base + _INDEX[name]] += amount

    def set(self, name: str, value: float) -> None:
        self.board[self.base + _INDEX[name]] = value

    def set_aws(self, requests: Mapping[str, int]) -> None:
        """Copy a RequestCounter snapshot (counts since this process started) into the row."""
        other = sum(n for op, n in requests.items() if op not in self._aws_base)
        for op, start in self._aws_base.items():
            count = other if op == "other" else requests.get(op, 0)
            self.board[self.base + _INDEX[f"aws:{op}"]] = start + count


def totals(board: Any) -> dict[str, float]:
    """Every field summed over all rows."""
    width = len(FIELDS)
    rows = len(board) // width
    values = board[:]
    return {name: sum(values[r * width + i] for r in range(rows)) for i, name in enumerate(FIELDS)}


def summary_line(t: Mapping[str, float]) -> str:
    aws = {k[4:]: int(v) for k, v in t.items() if k.startswith("aws:") and v}
    parts = [f"{name}={int(t[name])}" for name in COUNTERS if t.get(name)]
    if aws:
        parts.append("aws=" + ",".join(f"{op}:{n}" for op, n in sorted(aws.items())))
    return " ".join(parts) or "idle"


def prometheus_text(t: Mapping[str, float], gauges: Mapping[str, float] | None = None) -> str:
    lines: list[str] = []
    for name, (metric, kind, help_text) in COUNTERS.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}", f"{metric} {t.get(name, 0):g}"]
    lines += ["# HELP flowcraft_aws_requests_total AWS HTTP requests by operation (retries included)",
              "# TYPE flowcraft_aws_requests_total counter"]
    for op in AWS_OPERATIONS:
        lines.append(f'flowcraft_aws_requests_total{{operation="{op}"}} {t.get(f"aws:{op}", 0):g}')
    for name, value in (gauges or {}).items():
        lines += [f"# TYPE flowcraft_{name} gauge", f"flowcraft_{name} {value:g}"]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Prometheus text on http://host:port/metrics, served from a daemon thread."""

    def __init__(self, board: Any, host: str, port: int, gauges: Any = None) -> None:
        self.board = board
        self.gauges: Any = gauges or (lambda: {})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = prometheus_text(totals(server.board), server.gauges()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("metrics request: " + format, *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
