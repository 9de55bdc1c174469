"""Rewrites upstream Flowcraft's packages/core/test/evaluator-property.test.ts (systematic evaluator cases)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flowcraft_sqs.expressions import DefaultEvaluator, PropertyEvaluator
from flowcraft_sqs.jsvalues import UNDEFINED

PROPERTY = PropertyEvaluator()
# Upstream's UnsafeEvaluator runs JavaScript; ours never evals. Its cases run against the
# default evaluator's safe subset, and what the subset refuses (calls, lambdas, spread,
# prototypes) is undefined instead.
SUBSET = DefaultEvaluator()


# --- PropertyEvaluator ----------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "context", "expected"), [
    ("a", {"a": 1}, 1),
    ("a.b", {"a": {"b": 2}}, 2),
    ("a.b.c", {"a": {"b": {"c": 3}}}, 3),
    ("result.output.status", {"result": {"output": {"status": "OK"}}}, "OK"),
    ("context.user.isAdmin", {"context": {"user": {"isAdmin": True}}}, True),
    ("missing", {}, UNDEFINED),
    ("a.missing", {"a": {}}, UNDEFINED),
    ("a.b.c", {"a": {"b": None}}, UNDEFINED),
    ("a.b.c", {"a": {"b": UNDEFINED}}, UNDEFINED),
])
def test_safe_property_paths_are_read(expression: str, context: dict[str, Any], expected: Any) -> None:
    assert PROPERTY.evaluate(expression, context) == expected


UNSAFE = [
    "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z", "a()", "a + b", "a === b", "Math.random()",
    "process.env", "global", "window", "document", 'eval("code")', 'Function("code")', 'require("module")',
    "__proto__", "constructor", "prototype", "toString.call()", "a; b", "a, b", "a || b", "a && b",
    "a ? b : c", "!a", "~a", "a++", "++a", "a--", "--a", "new Object()", "delete a", "void a", "typeof a",
    "a instanceof Object", "a in b",
]


@pytest.mark.parametrize("expression", UNSAFE)
def test_unsafe_expressions_are_undefined(expression: str) -> None:
    assert PROPERTY.evaluate(expression, {"a": 1, "b": 2}) is UNDEFINED


@pytest.mark.parametrize(("expression", "context", "expected"), [
    ("a1", {"a1": "value"}, "value"),
    ("a_1", {"a_1": "value"}, "value"),
    ("a.b1", {"a": {"b1": "value"}}, "value"),
    ("", {"": "value"}, UNDEFINED),
    ("a-b", {"a-b": "value"}, UNDEFINED),
    ("a.b-c", {"a": {"b-c": "value"}}, UNDEFINED),
])
def test_edge_cases_in_property_names(expression: str, context: dict[str, Any], expected: Any) -> None:
    assert PROPERTY.evaluate(expression, context) == expected


@pytest.mark.parametrize(("expression", "context"), [
    ("a.b.c", {"a": {"b": {"c": 42}}}), ("missing", {}), ("invalid[0]", {"invalid[0]": "should not match"}),
])
def test_the_same_input_always_gives_the_same_output(expression: str, context: dict[str, Any]) -> None:
    results = [PROPERTY.evaluate(expression, context) for _ in range(3)]
    assert results[0] == results[1] == results[2]


def test_deeply_nested_structures_are_read() -> None:
    context = {"level1": {"level2": {"level3": {"level4": {"level5": {"value": "deep"}}}}}}
    assert PROPERTY.evaluate("level1.level2.level3.level4.level5.value", context) == "deep"


def test_object_properties_are_read_but_bracket_indexing_is_not() -> None:
    context = {"users": [{"name": "Alice", "age": 25}, {"name": "Bob", "age": 30}],
               "firstUser": {"name": "Alice", "age": 25}}
    assert PROPERTY.evaluate("firstUser.name", context) == "Alice"
    assert PROPERTY.evaluate("firstUser.age", context) == 25
    assert PROPERTY.evaluate("users[0].name", context) is UNDEFINED


# --- UnsafeEvaluator (ours: the safe subset) -------------------------------------------------------


def test_arithmetic_and_logic() -> None:
    context = {"a": 5, "b": 3, "c": True, "d": False}
    assert SUBSET.evaluate("a + b", context) == 8
    assert SUBSET.evaluate("a * b", context) == 15
    assert SUBSET.evaluate("a > b", context) is True
    assert SUBSET.evaluate("c && d", context) is False
    assert SUBSET.evaluate("c || d", context) is True


def test_context_properties_are_read() -> None:
    context = {"user": {"name": "Alice", "age": 30}, "items": [1, 2, 3], "config": {"enabled": True}}
    assert SUBSET.evaluate("user.name", context) == "Alice"
    assert SUBSET.evaluate("user.age + 5", context) == 35
    assert SUBSET.evaluate("items.length", context) == 3
    assert SUBSET.evaluate("config.enabled", context) is True


def test_prototype_members_are_not_reachable() -> None:
    # Upstream's UnsafeEvaluator returns the context object's prototype methods.
    for expression in ("constructor", "toString", "hasOwnProperty"):
        assert SUBSET.evaluate(expression, {"a": 1, "b": 2}) is UNDEFINED


def test_calls_lambdas_and_spread_are_refused() -> None:
    # Upstream evaluates these as JavaScript (2, 15, 5); the subset does not run code.
    context = {"data": [1, 2, 3, 4, 5], "threshold": 3}
    for expression in ("data.filter(x => x > threshold).length", "data.reduce((sum, x) => sum + x, 0)",
                       "Math.max(...data)"):
        assert SUBSET.evaluate(expression, context) is UNDEFINED


def test_prototype_and_constructor_of_a_value_are_not_reachable() -> None:
    context: dict[str, Any] = {"obj": {}}
    assert SUBSET.evaluate("obj.__proto__", context) is UNDEFINED
    assert SUBSET.evaluate("obj.constructor", context) is UNDEFINED
    assert SUBSET.evaluate("obj.prototype", context) is UNDEFINED
    assert SUBSET.evaluate("Object.prototype", context) is UNDEFINED


# --- Evaluator comparison ---------------------------------------------------------------------------


def test_the_property_evaluator_is_more_restrictive_than_the_subset() -> None:
    context = {"a": {"b": {"c": 42}}}
    assert PROPERTY.evaluate("a.b.c", context) == 42
    assert SUBSET.evaluate("a.b.c", context) == 42
    assert PROPERTY.evaluate("a.b.c + 1", context) is UNDEFINED
    assert SUBSET.evaluate("a.b.c + 1", context) == 43


def test_both_evaluators_give_undefined_through_null() -> None:
    context = {"a": {"b": None}}
    assert PROPERTY.evaluate("a.b.c", context) is UNDEFINED
    assert SUBSET.evaluate("a.b?.c", context) is UNDEFINED


# --- Systematic edge cases, for both evaluators ---------------------------------------------------

EVALUATORS = [("PropertyEvaluator", PROPERTY), ("DefaultEvaluator", SUBSET)]


@pytest.mark.parametrize(("name", "evaluator"), EVALUATORS)
def test_extreme_nesting_is_read(name: str, evaluator: Any) -> None:
    context: dict[str, Any] = {"value": "deep"}
    expression = "value"
    for i in range(20):
        context = {f"level{i}": context}
        expression = f"level{i}.{expression}"
    assert evaluator.evaluate(expression, context) == "deep"


@pytest.mark.parametrize(("name", "evaluator"), EVALUATORS)
def test_large_arrays(name: str, evaluator: Any) -> None:
    context = {"data": list(range(1000)), "firstItem": 0, "lastItem": 999}
    assert evaluator.evaluate("data.length", context) == 1000
    if name == "PropertyEvaluator":
        assert evaluator.evaluate("data[0]", context) is UNDEFINED
        assert evaluator.evaluate("firstItem", context) == 0
    else:
        assert evaluator.evaluate("data[0]", context) == 0
        assert evaluator.evaluate("data[999]", context) == 999


@pytest.mark.parametrize(("name", "evaluator"), EVALUATORS)
def test_special_values_never_raise(name: str, evaluator: Any) -> None:
    context = {"zero": 0, "negative": -1, "float": 3.14, "infinity": math.inf, "negInfinity": -math.inf,
               "nan": math.nan, "emptyString": "", "null": None, "undefined": UNDEFINED, "true": True, "false": False}
    for key in context:
        evaluator.evaluate(key, context)


@pytest.mark.parametrize(("name", "evaluator"), EVALUATORS)
def test_unicode_and_special_characters_in_property_names(name: str, evaluator: Any) -> None:
    context = {"normal": "normal", "with-dash": "dash", "with_underscore": "underscore", "with spaces": "spaces",
               "with.dots": "dots", "123start": "number", "🚀": "emoji", "café": "accented"}
    if name == "PropertyEvaluator":
        assert evaluator.evaluate("normal", context) == "normal"
        assert evaluator.evaluate("with_underscore", context) == "underscore"
        assert evaluator.evaluate("123start", context) == "number"
        for refused in ("with-dash", "with spaces", "🚀", "café"):
            assert evaluator.evaluate(refused, context) is UNDEFINED
    else:
        assert evaluator.evaluate("normal", context) == "normal"
