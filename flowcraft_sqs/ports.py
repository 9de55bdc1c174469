"""The small interfaces between the workflow logic and the outside world.

Only the adapters under `transport/` and `stores/` implement these against AWS (and in
memory, for fast tests); everything else speaks in these terms and our own types, never
in boto3 responses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .messages import Job
from .protocol import Commit, RunState


@dataclass(frozen=True)
class Received:
    """One message taken from the queue; `receipt` is what deletes or extends it."""

    message_id: str
    receipt: str
    body: str
    receive_count: int = 1


class JobQueue(Protocol):
    def receive(self, max_messages: int, wait_s: int, visibility_s: int | None = None) -> list[Received]:
        """Long-poll up to `max_messages` messages (SQS caps a call at 10)."""

    def send_jobs(self, jobs: Sequence[Job], delay_s: int = 0) -> None:
        """Enqueue jobs in batches; raise TransientError if some could not be sent after retries."""

    def delete(self, receipts: Sequence[str]) -> list[str]:
        """Delete in batches; return receipts that failed for a reason other than being stale."""

    def change_visibility(self, receipts: Sequence[str], seconds: int) -> list[str]:
        """Set visibility in batches (0 makes a message visible again); return failed receipts."""


@dataclass(frozen=True)
class WriteResult:
    """Outcome of a conditional commit: `ok`, or the run's `current` state after a conflict."""

    ok: bool
    current: RunState | None = None
    sizes: Mapping[str, int] | None = None  # after a write: each attribute's stored size


class RunStore(Protocol):
    def load_runs(self, run_ids: Sequence[str]) -> dict[str, RunState | None]:
        """Strongly consistent reads of whole runs; None for a run with no item."""

    def write(self, commit: Commit, expected_version: int) -> WriteResult:
        """Apply a commit only if the stored version is still `expected_version`.

        Raises ContextTooLarge when the item would pass the 400 KB limit (nothing written),
        ValueNotStorable for a value that cannot be encoded, TransientError for throttling.
        """

    def create_run(self, state: RunState) -> None:
        """Store a brand-new run; RunStateError if the run id exists."""


class StatusTable(Protocol):
    def publish(
        self, run_id: str, status: str, reason: str | None, context: Mapping[str, Any] | None, now: float
    ) -> bool:
        """Write a status (final, or `awaiting`) once; False if a final status is already there."""

    def touch(self, run_id: str, now: float) -> None:
        """Refresh `lastUpdated` of a running run, so the reconciler knows it is alive."""

    def start(self, run_id: str, now: float) -> None:
        """Create the status item of a new run (`running`)."""
