"""Serializers: how a run's context becomes text and back (`Serializer`, default `JsonSerializer`).

A serializer is anything with `serialize(data) -> str` and `deserialize(text) -> dict`, as
upstream's ISerializer; pass your own where a tool takes `serializer=` to keep types JSON
cannot (dates, sets, decimals).

`JsonSerializer` is lossy on purpose, as upstream's: sets become lists and dates ISO text
(with one warning), and a context with a circular reference becomes a marker object
instead of an error. Other values JSON cannot hold raise TypeError naming their type.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("flowcraft_sqs.serializer")

CIRCULAR_MARKER: Mapping[str, Any] = {
    "_circularReference": True,
    "message": "Context contains circular references",
}


@runtime_checkable
class Serializer(Protocol):
    def serialize(self, data: Mapping[str, Any]) -> str: ...

    def deserialize(self, text: str) -> dict[str, Any]: ...


class JsonSerializer:
    """Standard JSON; see the module notes for what it cannot keep."""

    def __init__(self) -> None:
        self._warned = False

    def serialize(self, data: Mapping[str, Any]) -> str:
        try:
            return json.dumps(dict(data), default=self._lossy)
        except ValueError as exc:
            if "Circular reference" not in str(exc):
                raise
            log.warning("circular reference in a context; it is serialized as a marker object")
            return json.dumps(CIRCULAR_MARKER)

    def deserialize(self, text: str) -> dict[str, Any]:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a serialized context is a JSON object, not {type(data).__name__}")
        return data

    def _lossy(self, value: Any) -> Any:
        if isinstance(value, (set, frozenset)):
            converted: Any = sorted(value, key=repr)
        elif isinstance(value, (dt.datetime, dt.date, dt.time)):
            converted = value.isoformat()
        else:
            raise TypeError(f"JsonSerializer cannot serialize {type(value).__name__}; "
                            "pass a serializer that can")
        if not self._warned:
            self._warned = True
            log.warning("JsonSerializer turned a %s into %s; pass your own serializer to keep it",
                        type(value).__name__, type(converted).__name__)
        return converted


__all__ = ["CIRCULAR_MARKER", "JsonSerializer", "Serializer"]
