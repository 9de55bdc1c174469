"""`SqsQueue`: the `JobQueue` port on a standard SQS queue, through the boto3 low-level client.

Every batch call reads its per-entry results: SQS answers a batch with HTTP 200 and a
`Failed` list. Receipts that are stale (the message was deleted already, or its
visibility ran out and another consumer holds it) are not failures: there is nothing
left for us to do with them. Throttling and network errors become `TransientError`;
nothing above this module sees a boto3 response.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from ..errors import MalformedMessage, TransientError
from ..messages import Job
from ..ports import Received

log = logging.getLogger("flowcraft_sqs.transport.sqs")

# --- SQS limits (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html)
MAX_BATCH_ENTRIES: Final = 10  # Send/Delete/ChangeVisibility batches and ReceiveMessage take at most 10
MAX_WAIT_TIME_S: Final = 20  # the longest long poll
MAX_VISIBILITY_S: Final = 12 * 60 * 60  # a receipt's visibility cannot pass 12 h from its receive
MAX_DELAY_S: Final = 15 * 60  # DelaySeconds of one message
# The sum of all bodies in one SendMessageBatch. 256 KiB is the limit on every queue made
# before 2025 (new queues allow 1 MiB); staying under it works on all of them.
MAX_BATCH_PAYLOAD_BYTES: Final = 256 * 1024

# --- our retries of entries SQS refused in a batch ---------------------------------------
SEND_ATTEMPTS: Final = 5  # per entry; botocore already retried the whole call
SEND_BASE_DELAY_S: Final = 0.05  # doubles each round, full jitter
SEND_MAX_DELAY_S: Final = 2.0

# A batch entry whose receipt no longer holds the message. SQS spells these with and
# without the "AWS.SimpleQueueService." prefix depending on protocol and operation.
STALE_RECEIPT_CODES: Final = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidReceiptHandle"})
# Whole-call errors that a later attempt can get past.
TRANSIENT_CODES: Final = frozenset(
    {
        "RequestThrottled",
        "ThrottlingException",
        "Throttling",
        "RequestThrottledException",
        "KmsThrottled",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
    }
)


def _short_code(code: str) -> str:
    return code.rsplit(".", 1)[-1]


class SqsQueue:
    """A standard SQS queue as a `JobQueue`. `client` is a boto3 SQS client (thread-safe)."""

    def __init__(
        self, client: Any, queue_url: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self._sleep = sleep
        self._default_visibility_s: int | None = None

    # --- receiving ------------------------------------------------------------------------

    def receive(self, max_messages: int, wait_s: int, visibility_s: int | None = None) -> list[Received]:
        request: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": max(1, min(max_messages, MAX_BATCH_ENTRIES)),
            "WaitTimeSeconds": max(0, min(wait_s, MAX_WAIT_TIME_S)),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if visibility_s is not None:
            request["VisibilityTimeout"] = _visibility(visibility_s)
        response = self._call("receive_message", **request)
        return [_received(m) for m in response.get("Messages", [])]

    def default_visibility_s(self) -> int:
        """The queue's own VisibilityTimeout (one GetQueueAttributes, then cached)."""
        if self._default_visibility_s is None:
            response = self._call(
                "get_queue_attributes", QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
            )
            self._default_visibility_s = int(response["Attributes"]["VisibilityTimeout"])
        return self._default_visibility_s

    # --- sending --------------------------------------------------------------------------

    def send_jobs(self, jobs: Sequence[Job], delay_s: int = 0) -> None:
        """Send every job; TransientError if some are still refused after our retries."""
        self._send_bodies([job.to_body().decode() for job in jobs], delay_s)

    def send_raw(self, bodies: Sequence[str | bytes]) -> None:
        """Send arbitrary bodies (tests of malformed messages, tools)."""
        self._send_bodies([b.decode() if isinstance(b, bytes) else b for b in bodies], 0)

    def _send_bodies(self, bodies: list[str], delay_s: int) -> None:
        pending = list(enumerate(bodies))
        errors: list[str] = []
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                self._sleep(random.uniform(0, min(SEND_MAX_DELAY_S, SEND_BASE_DELAY_S * 2**attempt)))
            retry: list[tuple[int, str]] = []
            errors = []
            for chunk in _send_chunks(pending):
                for failed in self._send_batch(chunk, delay_s):
                    index = int(failed["Id"])
                    errors.append(f"{failed.get('Code')}: {failed.get('Message', '')}")
                    if failed.get("SenderFault"):
                        # Our request is wrong (a body SQS refuses): another attempt cannot help.
                        raise MalformedMessage(f"SQS refused message {index} of a batch: {errors[-1]}")
                    retry.append((index, bodies[index]))
            if not retry:
                return
            pending = retry
        raise TransientError(
            f"SQS SendMessageBatch to {self.queue_url}: {len(pending)} message(s) still refused "
            f"after {SEND_ATTEMPTS} attempts ({'; '.join(sorted(set(errors)))})"
        )

    def _send_batch(self, chunk: list[tuple[int, str]], delay_s: int) -> list[dict[str, Any]]:
        entries = []
        for index, body in chunk:
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": body}
            if delay_s > 0:
                entry["DelaySeconds"] = min(int(delay_s), MAX_DELAY_S)
            entries.append(entry)
        response = self._call("send_message_batch", QueueUrl=self.queue_url, Entries=entries)
        return list(response.get("Failed", []))

    # --- deleting and changing visibility -------------------------------------------------

    def delete(self, receipts: Sequence[str]) -> list[str]:
        """Delete in batches of 10; returns receipts that failed for a reason other than staleness."""
        return self._per_receipt("delete_message_batch", receipts, {})

    def change_visibility(self, receipts: Sequence[str], seconds: int) -> list[str]:
        """Set visibility (0 releases a message at once); returns receipts that failed."""
        return self._per_receipt(
            "change_message_visibility_batch", receipts, {"VisibilityTimeout": _visibility(seconds)}
        )

    def _per_receipt(self, operation: str, receipts: Sequence[str], extra: dict[str, Any]) -> list[str]:
        unique = list(dict.fromkeys(receipts))
        failed: list[str] = []
        for start in range(0, len(unique), MAX_BATCH_ENTRIES):
            chunk = unique[start : start + MAX_BATCH_ENTRIES]
            entries = [{"Id": str(i), "ReceiptHandle": r, **extra} for i, r in enumerate(chunk)]
            response = self._call(operation, QueueUrl=self.queue_url, Entries=entries)
            for entry in response.get("Failed", []):
                receipt = chunk[int(entry["Id"])]
                if _short_code(str(entry.get("Code", ""))) in STALE_RECEIPT_CODES:
                    log.debug("%s: stale receipt ignored (%s)", operation, entry.get("Code"))
                    continue
                log.warning("%s failed for one message: %s %s", operation, entry.get("Code"), entry.get("Message"))
                failed.append(receipt)
        return failed

    # --- errors ---------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Call the client; throttling and network errors (after botocore's retries) -> TransientError."""
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = _short_code(str(exc.response.get("Error", {}).get("Code", "")))
            if code in TRANSIENT_CODES or _http_status(exc) >= 500:
                raise TransientError(f"SQS {operation} on {self.queue_url}: {code}") from exc
            raise
        except (ConnectionError, HTTPClientError) as exc:
            raise TransientError(f"SQS {operation} on {self.queue_url}: {exc}") from exc


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _visibility(seconds: int) -> int:
    return max(0, min(int(seconds), MAX_VISIBILITY_S))


def _send_chunks(entries: list[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    """Chunks of at most 10 entries whose bodies add up to at most 256 KiB."""
    chunk: list[tuple[int, str]] = []
    size = 0
    for index, body in entries:
        body_size = len(body.encode())
        if chunk and (len(chunk) == MAX_BATCH_ENTRIES or size + body_size > MAX_BATCH_PAYLOAD_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((index, body))
        size += body_size
    if chunk:
        yield chunk


def _received(message: dict[str, Any]) -> Received:
    attributes = message.get("Attributes") or {}
    return Received(
        message_id=message["MessageId"],
        receipt=message["ReceiptHandle"],
        body=message.get("Body", ""),
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
    )
