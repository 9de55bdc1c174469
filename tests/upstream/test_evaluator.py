"""Rewrites upstream Flowcraft's packages/core/test/evaluator.test.ts (PropertyEvaluator and UnsafeEvaluator)."""

from __future__ import annotations

from flowcraft_sqs.expressions import DefaultEvaluator, PropertyEvaluator
from flowcraft_sqs.jsvalues import UNDEFINED

# --- PropertyEvaluator ----------------------------------------------------------------------------


def test_top_level_properties_are_read() -> None:
    context = {"name": "test", "value": 42}
    assert PropertyEvaluator().evaluate("name", context) == "test"
    assert PropertyEvaluator().evaluate("value", context) == 42


def test_nested_properties_are_read() -> None:
    assert PropertyEvaluator().evaluate("result.output.status", {"result": {"output": {"status": "OK"}}}) == "OK"


def test_paths_that_do_not_exist_are_undefined() -> None:
    context = {"name": "test"}
    assert PropertyEvaluator().evaluate("nonexistent", context) is UNDEFINED
    assert PropertyEvaluator().evaluate("name.nonexistent", context) is UNDEFINED


def test_paths_through_null_are_undefined() -> None:
    assert PropertyEvaluator().evaluate("result.output.status", {"result": {"output": None}}) is UNDEFINED


def test_expressions_with_invalid_characters_are_undefined() -> None:
    context = {"name": "test"}
    for expression in ("name + 1", 'name === "test"', "Math.sqrt(name)"):
        assert PropertyEvaluator().evaluate(expression, context) is UNDEFINED


def test_an_empty_expression_is_undefined() -> None:
    assert PropertyEvaluator().evaluate("", {"name": "test"}) is UNDEFINED


def test_an_expression_of_only_dots_is_undefined() -> None:
    assert PropertyEvaluator().evaluate("...", {"name": "test"}) is UNDEFINED


# --- UnsafeEvaluator ------------------------------------------------------------------------------
# Ours has no evaluator that runs code (never eval): the default evaluator parses a safe
# subset of JavaScript expressions, which covers these cases.


def test_arithmetic_is_evaluated() -> None:
    assert DefaultEvaluator().evaluate("input * 2", {"input": 5}) == 10


def test_conditions_are_evaluated() -> None:
    context = {"result": {"output": {"status": "OK"}}}
    assert DefaultEvaluator().evaluate("result.output.status === 'OK'", context) is True


def test_an_unknown_variable_is_undefined_not_an_error() -> None:
    assert DefaultEvaluator().evaluate("undefinedVariable", {"name": "test"}) is UNDEFINED
