"""How context values are stored in DynamoDB, and the checks that keep them storable.

Context values are stored as orjson-encoded binary (B) attributes: the round trip is
exact (an int stays an int, 1.0 stays a float — DynamoDB's N type would turn 1.0 into 1)
and encoding is one C call. Values written by other clients in DynamoDB's native types
(the seed document's client writes a native map) are read through `from_attribute`.
The status table's `result` is written in native types so any DynamoDB client can read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import orjson

from .errors import ValueNotStorable
from .jsvalues import UNDEFINED

ITEM_SIZE_LIMIT_BYTES: Final = 400 * 1024  # DynamoDB's maximum item size, names included
MAX_NESTING_DEPTH: Final = 64  # deeper values are refused: they are bugs, not data
NUMBER_MAX_DIGITS: Final = 38  # DynamoDB N precision, for natively stored numbers


def check_storable(value: Any, where: str) -> None:
    """Raise ValueNotStorable naming `where` if DynamoDB (through us) cannot hold `value`."""
    _check(value, where, 0)


def _check(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, (str, bool)):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ValueNotStorable(f"{where}: integer {value} is outside the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueNotStorable(f"{where}: {value!r} cannot be stored (only finite numbers)")
        return
    if depth >= MAX_NESTING_DEPTH:
        raise ValueNotStorable(f"{where}: nested deeper than {MAX_NESTING_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueNotStorable(f"{where}: map key {key!r} is not a string")
            _check(item, f"{where}.{key}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]", depth + 1)
        return
    if value is UNDEFINED:
        return
    raise ValueNotStorable(f"{where}: a {type(value).__name__} cannot be stored; use JSON data")


def encode_value(value: Any, where: str = "value") -> bytes:
    """orjson bytes for a context value; `undefined` is stored as null."""
    if value is UNDEFINED:
        return b"null"
    check_storable(value, where)
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise ValueNotStorable(f"{where}: {exc}") from exc


def decode_value(data: bytes) -> Any:
    return orjson.loads(data)


# --- DynamoDB native attribute values (status table, values written by other clients) ----


def to_attribute(value: Any, where: str = "value") -> dict[str, Any]:
    """A Python value as a DynamoDB AttributeValue (native types)."""
    if value is None or value is UNDEFINED:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueNotStorable(f"{where}: {value!r} cannot be stored (only finite numbers)")
        return {"N": repr(value)}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attribute(v, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attribute(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    raise ValueNotStorable(f"{where}: a {type(value).__name__} cannot be stored; use JSON data")


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB AttributeValue as a Python value (ints stay ints)."""
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return _number(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if kind == "L":
        return [from_attribute(v) for v in value]
    if kind == "B":
        return decode_value(value)
    if kind == "SS":
        return list(value)
    if kind == "NS":
        return [_number(v) for v in value]
    if kind == "BS":
        return [bytes(v) for v in value]
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


# --- item size (DynamoDB counts attribute names plus values) -----------------------------


def attribute_size(name: str, attribute: Mapping[str, Any]) -> int:
    """DynamoDB's size of one top-level attribute, in bytes (an upper estimate for N)."""
    return len(name.encode()) + _value_size(attribute)


def _value_size(attribute: Mapping[str, Any]) -> int:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return len(value.encode())
    if kind == "B":
        return len(value)
    if kind == "N":
        return len(value) // 2 + 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in value.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in value)
    return sum(len(str(v)) for v in value)
