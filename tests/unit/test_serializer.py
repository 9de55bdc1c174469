"""The pluggable serializer interface and its JSON default."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from flowcraft_sqs.serializer import CIRCULAR_MARKER, JsonSerializer, Serializer


def test_a_context_round_trips_through_json() -> None:
    data = {"a": 1, "b": [1.5, None, True], "c": {"d": "e"}}
    serializer = JsonSerializer()
    assert serializer.deserialize(serializer.serialize(data)) == data


def test_sets_and_dates_are_kept_lossily_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    text = JsonSerializer().serialize({"tags": {"b", "a"}, "when": dt.date(2024, 1, 2), "also": {"c"}})
    assert json.loads(text) == {"tags": ["a", "b"], "when": "2024-01-02", "also": ["c"]}
    assert caplog.text.count("JsonSerializer turned") == 1


def test_a_circular_context_becomes_the_marker_object() -> None:
    data: dict[str, Any] = {}
    data["self"] = data
    assert json.loads(JsonSerializer().serialize(data)) == dict(CIRCULAR_MARKER)


def test_a_value_json_cannot_hold_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="cannot serialize object"):
        JsonSerializer().serialize({"x": object()})


def test_a_serialized_context_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="JSON object, not list"):
        JsonSerializer().deserialize("[1]")


def test_any_object_with_both_methods_is_a_serializer() -> None:
    class Upper:
        def serialize(self, data: Any) -> str:
            return json.dumps(data).upper()

        def deserialize(self, text: str) -> dict[str, Any]:
            return json.loads(text.lower())

    assert isinstance(Upper(), Serializer)
    assert isinstance(JsonSerializer(), Serializer)
