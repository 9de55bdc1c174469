"""The job message: the SQS body `{"runId","blueprintId","nodeId"}` plus optional fields.

Unknown fields are ignored, so messages written by the TypeScript client are accepted.
Everything arriving from the queue is parsed here, with orjson, into plain data: a bad
body becomes `MalformedMessage` naming the field at fault; nothing is ever unpickled.
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

import orjson

from .errors import MalformedMessage

SQS_MAX_MESSAGE_BYTES: Final = 256 * 1024  # the safe body size on every SQS queue (AWS raised its default to 1 MiB in 2025)
MAX_ID_LENGTH: Final = 512  # run, blueprint and node ids longer than this are refused as garbage
REQUIRED_FIELDS: Final = ("runId", "blueprintId", "nodeId")
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Job(NamedTuple):
    """One job: run this node of this run. A tuple: one is built per fired node."""

    run_id: str
    blueprint_id: str
    node_id: str
    delay_until: float | None = None  # set by the sleep built-in: do not run before (epoch s)

    def to_body(self) -> bytes:
        body: dict[str, Any] = {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "nodeId": self.node_id,
        }
        if self.delay_until is not None:
            body["notBefore"] = self.delay_until
        return orjson.dumps(body)

    @property
    def key(self) -> tuple[str, str]:
        return (self.run_id, self.node_id)


def parse_job(body: str | bytes | dict[str, Any]) -> Job:
    """A Job from a message body, or MalformedMessage saying which field is wrong."""
    if isinstance(body, dict):
        data = body
    else:
        if len(body) > SQS_MAX_MESSAGE_BYTES:
            raise MalformedMessage(f"body is {len(body)} bytes, over {SQS_MAX_MESSAGE_BYTES}")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessage(f"body is not valid JSON ({exc.msg} at position {exc.pos})") from exc
    if not isinstance(data, dict):
        raise MalformedMessage(f"body must be a JSON object, not {type(data).__name__}")
    for name in REQUIRED_FIELDS:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise MalformedMessage(f"field '{name}' must be a non-empty string, got {_describe(value)}")
        if len(value) > MAX_ID_LENGTH:
            raise MalformedMessage(f"field '{name}' is longer than {MAX_ID_LENGTH} characters")
        if _CONTROL_CHARACTERS.search(value):
            # Ids are quoted in log lines and failure reasons: a newline in one could forge a line.
            raise MalformedMessage(f"field '{name}' contains control characters")
    not_before = data.get("notBefore")
    if not_before is not None and (isinstance(not_before, bool) or not isinstance(not_before, (int, float))):
        raise MalformedMessage(f"field 'notBefore' must be a number, got {_describe(not_before)}")
    return Job(data["runId"], data["blueprintId"], data["nodeId"], not_before)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"
