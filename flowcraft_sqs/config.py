"""`Settings`: every knob of `flowcraft-worker`, as one frozen dataclass.

The CLI builds it (flags, then FLOWCRAFT_* environment variables), calls `validate()`,
and hands it whole to the supervisor, which passes it to every child. Nothing else reads
the environment for settings. Every AWS quota we rely on is a named constant below, with
its unit and why it matters.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import Final

from .errors import ConfigError
from .slots import DEFAULT_CONCURRENCY, DEFAULT_THREADS, MAX_CONCURRENCY, MAX_THREADS

# --- AWS quotas ---------------------------------------------------------------------------

#: SQS ReceiveMessage long-poll ceiling (s): WaitTimeSeconds above 20 is rejected.
SQS_MAX_WAIT_TIME_S: Final = 20
#: SQS messages per ReceiveMessage, and entries per Send/Delete/ChangeVisibility batch call.
SQS_MAX_BATCH: Final = 10
#: SQS visibility timeout ceiling (s), 12 h; it also caps the total time a received
#: message can be kept hidden by extensions, counted from when it was received.
SQS_MAX_VISIBILITY_S: Final = 12 * 60 * 60
#: DynamoDB BatchWriteItem entries per call.
DYNAMODB_MAX_BATCH_WRITE: Final = 25

# --- our own limits and defaults ----------------------------------------------------------

#: A lease extension must land this long (s) before the message would become visible:
#: the lease thread ticks several times a second and one ChangeMessageVisibilityBatch takes
#: tens of ms, so one second covers a slow call and a missed tick.
MIN_LEASE_MARGIN_S: Final = 1.0
# Held messages are leased (their visibility is extended), so a few beyond one per executor
# cost no redelivery; they let a fan-out continue locally and receives come in fuller
# batches. Measured (8-wide diamond, --procs 2): 2.49 AWS requests per node with 1, 1.80
# with 4 (benchmarks/RESULTS.md).
MIN_DEFAULT_PREFETCH: Final = 4
#: Children pulse (child -> supervisor liveness) about this often (s).
PULSE_INTERVAL_S: Final = 1.0
#: The supervisor's loop wakes at least this often (s) to check pulses and deadlines.
SUPERVISOR_TICK_S: Final = 0.5
#: An executor whose node overran its timeout is killed this long (s) after the deadline:
#: the node's own timeout (asyncio, in the executor) gets the first chance to fail it.
TIMEOUT_GRACE_S: Final = 0.5

BACKENDS: Final = ("aws", "memory")
LOG_FORMATS: Final = ("text", "json")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def default_procs() -> int:
    """One executor per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """Everything a worker fleet member needs; `validate()` before use."""

    app: str = ""
    queue_url: str = ""
    procs: int = field(default_factory=default_procs)
    concurrency: int = DEFAULT_CONCURRENCY  # nodes in flight per executor (async and sync)
    threads: int = DEFAULT_THREADS  # sync nodes in flight per executor (its thread pool)
    receivers: int = 1
    context_table: str = "flowcraft-contexts"
    status_table: str = "flowcraft-statuses"
    coordination_table: str = "flowcraft-coordination"
    region: str | None = None
    sqs_endpoint_url: str | None = None  # normally boto3's AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL
    dynamodb_endpoint_url: str | None = None
    wait_time_s: int = SQS_MAX_WAIT_TIME_S
    receive_batch: int = SQS_MAX_BATCH
    visibility_timeout_s: int = 60
    lease_fraction: float = 0.5
    prefetch: int | None = None  # work items queued beyond the executors' slots; None: procs // 4, at least 4
    flush_max_items: int = SQS_MAX_BATCH
    flush_max_age_ms: int = 50
    graceful_timeout_s: float = 30.0
    max_nodes_per_executor: int = 0  # 0: never recycle on count
    max_memory_per_executor_mb: int = 0  # 0: never recycle on memory
    pulse_timeout_s: float = 30.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_interval_s: float = 60.0
    log_format: str = "text"
    log_level: str = "INFO"
    local_continuation: bool = True
    backend: str = "aws"
    memory_seed: str | None = None  # backend=memory: "module:attr" called in each receiver to seed runs

    @property
    def slots(self) -> int:
        """Nodes the executors can run at once, all together."""
        return self.procs * self.concurrency

    @property
    def admitted_per_receiver(self) -> int:
        """How many work items one receiver may have queued or running at once."""
        total = self.slots + self.extra_queued
        return max(1, -(-total // self.receivers))

    @property
    def queued_per_receiver(self) -> int:
        """How many of a receiver's items may wait in the work queue, not yet taken.

        Executors take only what they have free slots for, so items waiting in the queue
        mean the executors are full (of sync nodes, say, with few threads): admitting more
        would only hold SQS messages that another machine could run. A receive batch's
        worth keeps receives full."""
        return max(self.receive_batch, -(-self.extra_queued // self.receivers))

    @property
    def extra_queued(self) -> int:
        # Every queued item is an SQS message whose visibility clock is already running,
        # and a message held here is one another machine cannot take. A small surplus
        # over the executors' slots hides the hand-off latency without hoarding.
        return self.prefetch if self.prefetch is not None else max(MIN_DEFAULT_PREFETCH, self.procs // 4)

    @property
    def lease_margin_s(self) -> float:
        """Time between a lease extension falling due and the message becoming visible."""
        return self.visibility_timeout_s * (1.0 - self.lease_fraction)

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def validate(self) -> Settings:
        """Return self, or raise ConfigError saying which flag is wrong and how to fix it."""
        problems = [p for check in _CHECKS if (p := check(self))]
        if problems:
            raise ConfigError("invalid settings:\n  - " + "\n  - ".join(problems))
        return self


def _check_required(s: Settings) -> str | None:
    if not s.app:
        return ("--app is required: the module that provides `registry` and `blueprints`, "
                "e.g. --app myflows.worker:app (or FLOWCRAFT_APP)")
    if s.backend == "aws" and not s.queue_url:
        return "--queue-url is required (or FLOWCRAFT_QUEUE_URL / SQS_QUEUE_URL)"
    return None


def _check_counts(s: Settings) -> str | None:
    if s.procs < 1:
        return f"--procs must be at least 1 (got {s.procs}); it is the number of executor processes"
    if not 1 <= s.concurrency <= MAX_CONCURRENCY:
        return (f"--concurrency must be between 1 and {MAX_CONCURRENCY} (nodes in flight per "
                f"executor), got {s.concurrency}")
    if not 1 <= s.threads <= MAX_THREADS:
        return f"--threads must be between 1 and {MAX_THREADS} (sync nodes per executor), got {s.threads}"
    if s.threads > s.concurrency:
        return (f"--threads {s.threads} is more than --concurrency {s.concurrency}: a sync node "
                "also takes one of the executor's slots; raise --concurrency or lower --threads")
    if s.receivers < 1:
        return f"--receivers must be at least 1 (got {s.receivers})"
    if s.receivers > s.procs:
        return (f"--receivers {s.receivers} is more than --procs {s.procs}: a receiver only "
                "admits what executors can run, so extra receivers would only poll SQS; "
                "lower --receivers")
    if s.prefetch is not None and not 0 <= s.prefetch <= 10 * s.procs:
        return f"--prefetch must be between 0 and 10x --procs ({10 * s.procs}), got {s.prefetch}"
    return None


def _check_polling(s: Settings) -> str | None:
    if not 0 <= s.wait_time_s <= SQS_MAX_WAIT_TIME_S:
        return (f"--wait-time must be between 0 and {SQS_MAX_WAIT_TIME_S} s (SQS's long-poll "
                f"limit), got {s.wait_time_s}")
    if not 1 <= s.receive_batch <= SQS_MAX_BATCH:
        return f"--receive-batch must be between 1 and {SQS_MAX_BATCH} (SQS's limit), got {s.receive_batch}"
    return None


def _check_visibility(s: Settings) -> str | None:
    if not 1 <= s.visibility_timeout_s <= SQS_MAX_VISIBILITY_S:
        return (f"--visibility-timeout must be between 1 and {SQS_MAX_VISIBILITY_S} s "
                f"(SQS's 12 h limit), got {s.visibility_timeout_s}")
    if not 0.1 <= s.lease_fraction <= 0.9:
        return f"--lease-fraction must be between 0.1 and 0.9, got {s.lease_fraction}"
    flush_age_s = s.flush_max_age_ms / 1000
    if s.visibility_timeout_s < 2 * flush_age_s:
        return (f"--visibility-timeout must be at least 2x the flush age (--flush-max-age "
                f"{s.flush_max_age_ms} ms), or a finished message could reappear before its "
                f"delete is flushed; raise it to {max(1, int(2 * flush_age_s + 0.999))} s or more")
    if s.lease_margin_s < max(MIN_LEASE_MARGIN_S, flush_age_s):
        return (f"--visibility-timeout {s.visibility_timeout_s} s with --lease-fraction "
                f"{s.lease_fraction} extends leases only {s.lease_margin_s:.2f} s before they "
                f"expire; leave at least {max(MIN_LEASE_MARGIN_S, flush_age_s):.2f} s by raising "
                "--visibility-timeout or lowering --lease-fraction")
    return None


def _check_flush(s: Settings) -> str | None:
    if not 1 <= s.flush_max_items <= 1000:
        return f"--flush-max-items must be between 1 and 1000, got {s.flush_max_items}"
    if not 0 <= s.flush_max_age_ms <= 10_000:
        return f"--flush-max-age must be between 0 and 10000 ms, got {s.flush_max_age_ms}"
    return None


def _check_lifetimes(s: Settings) -> str | None:
    if s.graceful_timeout_s <= 0:
        return f"--graceful-timeout must be positive (s), got {s.graceful_timeout_s}"
    if s.pulse_timeout_s < 3 * PULSE_INTERVAL_S:
        return (f"--pulse-timeout must be at least {3 * PULSE_INTERVAL_S:g} s: children pulse "
                f"every {PULSE_INTERVAL_S:g} s, got {s.pulse_timeout_s}")
    if s.max_nodes_per_executor < 0 or s.max_memory_per_executor_mb < 0:
        return "--max-nodes-per-executor and --max-memory-per-executor must be 0 (off) or positive"
    return None


def _check_output(s: Settings) -> str | None:
    if s.log_format not in LOG_FORMATS:
        return f"--log-format must be one of {', '.join(LOG_FORMATS)}, got {s.log_format!r}"
    if s.log_level.upper() not in LOG_LEVELS or not isinstance(logging.getLevelName(s.log_level.upper()), int):
        return f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {s.log_level!r}"
    if s.metrics_port is not None and not 0 <= s.metrics_port <= 65535:
        return f"--metrics-port must be a TCP port (0-65535), got {s.metrics_port}"
    if s.metrics_interval_s <= 0:
        return f"--metrics-interval must be positive (s), got {s.metrics_interval_s}"
    return None


def _check_backend(s: Settings) -> str | None:
    if s.backend not in BACKENDS:
        return f"--backend must be one of {', '.join(BACKENDS)}, got {s.backend!r}"
    if s.memory_seed and s.backend != "memory":
        return "--memory-seed only applies with --backend memory"
    return None


_CHECKS = (
    _check_required,
    _check_counts,
    _check_polling,
    _check_visibility,
    _check_flush,
    _check_lifetimes,
    _check_output,
    _check_backend,
)
