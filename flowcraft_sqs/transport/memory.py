"""In-memory `JobQueue` with SQS's visibility semantics on an injected clock."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..messages import Job
from ..ports import Received

SQS_MAX_BATCH = 10  # SQS returns and accepts at most 10 messages per call


@dataclass
class _Message:
    message_id: str
    body: str
    visible_at: float
    receive_count: int = 0
    receipt: str = ""


class MemoryQueue:
    """A queue where received messages stay invisible until deleted or their visibility ends."""

    def __init__(self, visibility_s: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.visibility_s = visibility_s
        self.clock = clock
        self._messages: dict[str, _Message] = {}
        self._order: deque[str] = deque()
        self._by_receipt: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self.calls: dict[str, int] = {}

    def _count(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1

    def send_body(self, body: str, delay_s: int = 0) -> str:
        with self._lock:
            message_id = f"m{next(self._ids)}"
            self._messages[message_id] = _Message(message_id, body, self.clock() + delay_s)
            self._order.append(message_id)
            self._lock.notify_all()
            return message_id

    def send_jobs(self, jobs: Sequence[Job], delay_s: int = 0) -> None:
        for start in range(0, len(jobs), SQS_MAX_BATCH):
            self._count("SendMessageBatch")
            for job in jobs[start : start + SQS_MAX_BATCH]:
                self.send_body(job.to_body().decode(), delay_s)

    def receive(self, max_messages: int, wait_s: int, visibility_s: int | None = None) -> list[Received]:
        self._count("ReceiveMessage")
        deadline = time.monotonic() + wait_s
        with self._lock:
            while True:
                taken = self._take(min(max_messages, SQS_MAX_BATCH), visibility_s)
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    return taken
                self._lock.wait(min(remaining, 0.05))

    def _take(self, limit: int, visibility_s: int | None) -> list[Received]:
        now = self.clock()
        taken: list[Received] = []
        for message_id in list(self._order):
            message = self._messages.get(message_id)
            if message is None or message.visible_at > now:
                continue
            message.receive_count += 1
            message.visible_at = now + (self.visibility_s if visibility_s is None else visibility_s)
            message.receipt = f"{message_id}#{message.receive_count}"
            self._by_receipt[message.receipt] = message_id
            taken.append(Received(message_id, message.receipt, message.body, message.receive_count))
            if len(taken) >= limit:
                break
        return taken

    def delete(self, receipts: Sequence[str]) -> list[str]:
        with self._lock:
            self.calls["DeleteMessageBatch"] = self.calls.get("DeleteMessageBatch", 0) + -(
                -len(receipts) // SQS_MAX_BATCH
            )
            for receipt in receipts:
                message_id = self._by_receipt.pop(receipt, None)
                message = self._messages.get(message_id or "")
                if message is not None and message.receipt == receipt:
                    del self._messages[message.message_id]
                    self._order.remove(message.message_id)
        return []

    def change_visibility(self, receipts: Sequence[str], seconds: int) -> list[str]:
        with self._lock:
            self._count("ChangeMessageVisibilityBatch")
            for receipt in receipts:
                message = self._messages.get(self._by_receipt.get(receipt, ""))
                if message is not None and message.receipt == receipt:
                    message.visible_at = self.clock() + seconds
            self._lock.notify_all()
        return []

    def next_visible_at(self) -> float | None:
        """When the next hidden or delayed message becomes visible (on this queue's clock)."""
        with self._lock:
            return min((m.visible_at for m in self._messages.values()), default=None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)
