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
