"""JavaScript value semantics the workflow logic needs: `undefined` and truthiness.

Flowcraft blueprints were written against a JavaScript engine, so expressions and
conditions must give JavaScript's answers: `[]` and `{}` are truthy, `0`, `""`,
`null`, `NaN` and `undefined` are falsy. `UNDEFINED` is distinct from `None`
(JavaScript's `null`): an expression that finds nothing yields `UNDEFINED`.
"""

from __future__ import annotations

import math
from typing import Any, Final


class _Undefined:
    """The single `undefined` value. Falsy, equal only to itself, never stored."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()


def truthy(value: Any) -> bool:
    """JavaScript's ToBoolean."""
    if value is None or value is UNDEFINED or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return not (value == 0 or (isinstance(value, float) and math.isnan(value)))
    if isinstance(value, str):
        return value != ""
    return True


def defined_or_none(value: Any) -> Any:
    """Map `undefined` to `null` (None): what gets stored for a node with no output."""
    return None if value is UNDEFINED else value


_SCALARS = (str, int, float, bool, type(None))


def json_safe(value: Any) -> Any:
    """`value` with `undefined` nested inside turned as `JSON.stringify` does: dropped from
    objects, null in arrays. A top-level `undefined` stays (it means "no output")."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None or value is UNDEFINED:
        return value
    if isinstance(value, dict):
        if not _holds_undefined(value):
            return value
        return {k: json_safe(v) for k, v in value.items() if v is not UNDEFINED}
    if isinstance(value, (list, tuple)):
        if not _holds_undefined(value):
            return value
        return [None if v is UNDEFINED else json_safe(v) for v in value]
    return value


def _holds_undefined(value: Any) -> bool:
    """Whether `undefined` is anywhere inside `value` (walks without copying)."""
    stack = [value]
    while stack:
        current = stack.pop()
        items = current.values() if isinstance(current, dict) else current
        for item in items:
            if item is UNDEFINED:
                return True
            if isinstance(item, (dict, list, tuple)):
                stack.append(item)
    return False
