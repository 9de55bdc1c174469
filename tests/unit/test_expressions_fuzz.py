"""Fuzzing the expression languages: arbitrary text in, only data or ExpressionError out.

Three generators: random text, soups of the grammar's tokens (mostly invalid, probing the
parser's error paths), and well-formed subset expressions (probing evaluation). For every
input, compiling raises nothing but ExpressionError, evaluating raises nothing at all,
finishes quickly, and never runs code of a Python object placed in the scope.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowcraft_sqs.errors import ExpressionError
from flowcraft_sqs.expressions import (
    MAX_EXPRESSION_LENGTH,
    MAX_STRING_LENGTH,
    DefaultEvaluator,
    compile_expression,
    property_evaluate,
)
from flowcraft_sqs.jsvalues import UNDEFINED

EVALUATION_TIME_LIMIT_S = 0.05
FUZZ_SETTINGS = settings(
    max_examples=400,
    deadline=1000,  # ms per example; generous so a busy CI machine does not flake
    suppress_health_check=[HealthCheck.too_slow],
)


class Recorder:
    """A scope value that records every hook Python could run on it."""

    calls: list[str] = []

    def _record(self, name: str) -> Any:
        Recorder.calls.append(name)
        return 1

    def __getattr__(self, name: str) -> Any:
        return self._record(f"getattr {name}")

    def __getitem__(self, key: Any) -> Any:
        return self._record("getitem")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._record("call")

    def __eq__(self, other: object) -> bool:
        return bool(self._record("eq"))

    def __ne__(self, other: object) -> bool:
        return bool(self._record("ne"))

    def __lt__(self, other: object) -> bool:
        return bool(self._record("lt"))

    def __gt__(self, other: object) -> bool:
        return bool(self._record("gt"))

    def __add__(self, other: object) -> Any:
        return self._record("add")

    def __radd__(self, other: object) -> Any:
        return self._record("radd")

    def __mul__(self, other: object) -> Any:
        return self._record("mul")

    def __neg__(self) -> Any:
        return self._record("neg")

    def __str__(self) -> str:
        self._record("str")
        return "recorder"

    def __repr__(self) -> str:
        self._record("repr")
        return "recorder"

    def __format__(self, spec: str) -> str:
        self._record("format")
        return "recorder"

    def __len__(self) -> int:
        self._record("len")
        return 1

    def __iter__(self) -> Any:
        self._record("iter")
        return iter(())

    def __contains__(self, item: object) -> bool:
        return bool(self._record("contains"))

    def __hash__(self) -> int:
        self._record("hash")
        return 1

    def __bool__(self) -> bool:
        return bool(self._record("bool"))

    def __index__(self) -> int:
        return int(self._record("index"))

    def __float__(self) -> float:
        return float(self._record("float"))


RECORDER = Recorder()
SCOPE: dict[str, Any] = {
    "a": 5,
    "b": "3",
    "s": "héllo 🚀",
    "n": None,
    "u": UNDEFINED,
    "f": 1.5,
    "zero": 0,
    "items": [1, "2", None, [3, [4]], {"k": "v"}],
    "obj": {"k": "v", "n": {"m": [1]}, "constructor": "data", "": "empty"},
    "empty": [],
    "big": "x" * 30_000,
    "huge": 10**30,
    "spy": RECORDER,
    "spies": [RECORDER, {"spy": RECORDER}],
}
SCOPE_OBJECTS = [SCOPE[key] for key in ("items", "obj", "empty", "spy", "spies")]
SCOPE_OBJECTS += [SCOPE["items"][3], SCOPE["items"][3][1], SCOPE["items"][4]]
SCOPE_OBJECTS += [SCOPE["obj"]["n"], SCOPE["obj"]["n"]["m"], SCOPE["spies"][1]]

NAMES = [*SCOPE, "missing", "constructor", "__proto__", "__class__", "__dict__", "length"]
NAMES += ["join", "undefined", "NaN", "Infinity", "true", "false", "null", "this"]
NAMES += ["new", "typeof", "in", "eval", "__import__", "globals", "process"]
LITERALS = ["0", "1", "2.5", "1e3", "0x1f", ".5", "1e400", "01", "1_0", "'x'", '"y"', "''"]
LITERALS += ["'__class__'", "'length'", "'\\u0041'", "'\\x'", "'\\'", "'k'", '"0"']
PUNCTUATION = ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "===", "!=="]
PUNCTUATION += ["&&", "||", "??", "!", "?", ":", ".", "?.", "(", ")", "[", "]", "=", ","]
PUNCTUATION += [";", "{", "}", "`", "**", "++", "=>", "...", "#", "\\", "'", '"']
TOKENS = NAMES + LITERALS + PUNCTUATION

token_soups = st.lists(
    st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", " ", "\t"])), max_size=30
).map(lambda pairs: "".join(token + space for token, space in pairs))

BINARY = ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "===", "!=="]
BINARY += ["&&", "||", "??"]
MEMBERS = [".length", ".k", "?.k", ".spy", "[0]", "[1]", "?.[3]", "['k']", "[a]", "[spy]"]
MEMBERS += [".constructor", ".__class__", "['__dict__']", ".join"]
ATOMS = [name for name in NAMES if name not in ("new", "typeof", "in", "this")] + LITERALS[:7]
ATOMS += ["'x'", '"y"', "''", "'k'"]


def _compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["!", "-", "+"]), children).map(lambda t: f"{t[0]} {t[1]}"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(children, st.sampled_from(MEMBERS)).map(lambda t: f"({t[0]}){t[1]}"),
    )


well_formed = st.recursive(st.sampled_from(ATOMS), _compound, max_leaves=25)


def _is_data(value: Any) -> bool:
    """JavaScript data, or an object that was already in the scope."""
    if value is None or value is UNDEFINED or type(value) in (bool, int, float, str):
        return True
    return any(value is known for known in SCOPE_OBJECTS)


def _check(text: str) -> Any:
    """Compile and evaluate `text` as the runtime does, asserting the safety properties."""
    Recorder.calls.clear()
    try:
        expression = compile_expression(text)
    except ExpressionError:
        return None
    started = time.perf_counter()
    value = expression.evaluate(SCOPE)
    elapsed = time.perf_counter() - started
    assert elapsed < EVALUATION_TIME_LIMIT_S, f"{text!r} took {elapsed:.3f}s"
    assert Recorder.calls == [], f"{text!r} ran {Recorder.calls}"
    assert _is_data(value), f"{text!r} gave {value!r}"
    return value


@FUZZ_SETTINGS
@given(st.text(max_size=120))
def test_random_text_compiles_or_raises_expression_error(text: str) -> None:
    _check(text)


@FUZZ_SETTINGS
@given(token_soups)
def test_token_soups_compile_or_raise_expression_error(text: str) -> None:
    _check(text)


@FUZZ_SETTINGS
@given(well_formed)
def test_well_formed_expressions_compile_and_evaluate_to_data(text: str) -> None:
    try:
        compile_expression(text)
    except ExpressionError as exc:
        # The generator may nest past the limit; nothing else may be refused.
        assert "nested deeper" in str(exc) or "longer than" in str(exc), str(exc)
    _check(text)


@FUZZ_SETTINGS
@given(st.text(alphabet="ab0_$.", max_size=12))
def test_every_property_path_evaluates_exactly_as_the_property_evaluator(text: str) -> None:
    # Literals (`0`, `1.5`, `0b1`) are read as JavaScript reads them, not as context keys.
    assume(not text or compile_expression(text).is_property_path)
    scope: dict[str, Any] = {"a": {"b": [1, {"a": "deep"}], "": {"": 0}}, "": {"a": "e"}}
    scope.update({"0": "zero", "b": "str", "_": None, "$": [[]]})
    expected = property_evaluate(text, scope)
    assert DefaultEvaluator().evaluate(text, scope) == expected or (
        isinstance(expected, float) and math.isnan(expected)
    )


def test_the_slowest_legal_string_building_stays_within_the_time_limit() -> None:
    # Each `+` builds at most MAX_STRING_LENGTH characters, and the length limit bounds how
    # many a text can hold: ~140 full-size concatenations, each also compared as a string.
    half = "x" * (MAX_STRING_LENGTH // 2)
    text = "(h+h)==" * ((MAX_EXPRESSION_LENGTH - 1) // 7) + "h"
    assert len(text) <= MAX_EXPRESSION_LENGTH
    started = time.perf_counter()
    assert compile_expression(text).evaluate({"h": half}) is False
    assert time.perf_counter() - started < EVALUATION_TIME_LIMIT_S
