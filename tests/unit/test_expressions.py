"""Expressions: TS's PropertyEvaluator exactly, and the safe JavaScript subset.

Cases marked "TS:" are ported from `packages/core/test/evaluator.test.ts` and
`evaluator-property.test.ts` (spec §5.4). Cases marked "FIX:" differ from TS on purpose.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pytest

from flowcraft_sqs import expressions
from flowcraft_sqs.errors import ExpressionError
from flowcraft_sqs.expressions import (
    MAX_EXPRESSION_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_STRING_LENGTH,
    DefaultEvaluator,
    PropertyEvaluator,
    compile_expression,
    property_evaluate,
)
from flowcraft_sqs.jsvalues import UNDEFINED, truthy

PROPERTY = PropertyEvaluator()
DEFAULT = DefaultEvaluator()


def js(text: str, scope: dict[str, Any] | None = None) -> Any:
    """Evaluate with the default evaluator after checking that `text` compiles."""
    DEFAULT.validate(text)
    return DEFAULT.evaluate(text, scope if scope is not None else {})


# --- TS PropertyEvaluator: evaluator.test.ts and evaluator-property.test.ts ----------------


@pytest.mark.parametrize("evaluate", [property_evaluate, PROPERTY.evaluate, DEFAULT.evaluate])
def test_property_paths_read_top_level_and_nested_keys(evaluate: Any) -> None:
    # TS: "should correctly access top-level / nested properties", "safe property paths"
    assert evaluate("name", {"name": "test", "value": 42}) == "test"
    assert evaluate("value", {"name": "test", "value": 42}) == 42
    assert evaluate("a.b.c", {"a": {"b": {"c": 3}}}) == 3
    assert evaluate("result.output.status", {"result": {"output": {"status": "OK"}}}) == "OK"
    assert evaluate("context.user.isAdmin", {"context": {"user": {"isAdmin": True}}}) is True


@pytest.mark.parametrize("evaluate", [property_evaluate, PROPERTY.evaluate, DEFAULT.evaluate])
def test_missing_paths_and_paths_through_null_are_undefined(evaluate: Any) -> None:
    # TS: "should return undefined for non-existent paths / paths through null or undefined"
    assert evaluate("missing", {}) is UNDEFINED
    assert evaluate("a.missing", {"a": {}}) is UNDEFINED
    assert evaluate("name.nonexistent", {"name": "test"}) is UNDEFINED
    assert evaluate("a.b.c", {"a": {"b": None}}) is UNDEFINED
    assert evaluate("a.b.c", {"a": {"b": UNDEFINED}}) is UNDEFINED
    assert evaluate("result.output.status", {"result": {"output": None}}) is UNDEFINED


UNSAFE_FOR_PROPERTY_EVALUATOR = [
    "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z",  # fails only because `a` is a number
    "a()",
    "a + b",
    "a === b",
    "Math.random()",
    "process.env",
    "global",
    "window",
    "document",
    'eval("code")',
    'Function("code")',
    'require("module")',
    "__proto__",
    "constructor",
    "prototype",
    "toString.call()",
    "a; b",
    "a, b",
    "a || b",
    "a && b",
    "a ? b : c",
    "!a",
    "~a",
    "a++",
    "++a",
    "a--",
    "--a",
    "new Object()",
    "delete a",
    "void a",
    "typeof a",
    "a instanceof Object",
    "a in b",
    "name + 1",
    'name === "test"',
    "Math.sqrt(name)",
]


@pytest.mark.parametrize("text", UNSAFE_FOR_PROPERTY_EVALUATOR)
def test_property_evaluator_gives_undefined_for_unsafe_strings(text: str) -> None:
    # TS: "rejects unsafe expressions", "should reject expressions with invalid characters"
    scope = {"a": 1, "b": 2, "name": "test"}
    assert PROPERTY.evaluate(text, scope) is UNDEFINED
    assert property_evaluate(text, scope) is UNDEFINED


def test_digits_and_underscores_in_property_names_are_accepted() -> None:
    # TS: "handles edge cases in property names"
    assert property_evaluate("a1", {"a1": "value"}) == "value"
    assert property_evaluate("a_1", {"a_1": "value"}) == "value"
    assert property_evaluate("a.b1", {"a": {"b1": "value"}}) == "value"
    assert property_evaluate("$x", {"$x": "dollar"}) == "dollar"


def test_keys_starting_with_digits_are_accepted_by_every_evaluator() -> None:
    # TS: "123start" is a key. JavaScript could not even parse it; it takes the property route.
    scope = {"123start": "number"}
    assert property_evaluate("123start", scope) == "number"
    assert js("123start", scope) == "number"


@pytest.mark.parametrize(
    ("text", "key"),
    [("a-b", "a-b"), ("with-dash", "with-dash"), ("with spaces", "with spaces"), ("🚀", "🚀")]
    + [("café", "café"), ("a.b-c", "a")],
)
def test_property_evaluator_rejects_dash_space_emoji_and_non_ascii(text: str, key: str) -> None:
    scope = {key: "value", "a": {"b-c": "value"}}
    assert property_evaluate(text, scope) is UNDEFINED


def test_empty_expression_is_undefined() -> None:
    # TS: "should handle empty expressions"; also `{'': 'value'}` stays unreachable
    assert property_evaluate("", {"": "value"}) is UNDEFINED
    assert DEFAULT.evaluate("", {"": "value"}) is UNDEFINED


def test_expression_of_only_dots_is_undefined() -> None:
    # TS: "should handle expressions with only dots"
    assert property_evaluate("...", {"name": "test"}) is UNDEFINED
    assert js("...", {"name": "test"}) is UNDEFINED


def test_double_dot_reads_the_empty_string_key() -> None:
    assert property_evaluate("a..b", {"a": {"": {"b": 7}}}) == 7
    assert js("a..b", {"a": {"": {"b": 7}}}) == 7


def test_true_false_null_and_numbers_are_literals_under_the_default_evaluator() -> None:
    # FIX: TS's PropertyEvaluator reads "true" as a context key, so `condition: "true"` never
    # holds; the default evaluator reads these as JavaScript does.
    assert js("true", {}) is True
    assert js("true", {"true": "yes"}) is True
    assert js("false", {}) is False
    assert js("null", {}) is None
    assert js("1", {"1": "one"}) == 1
    assert js("1.5", {}) == 1.5
    assert js("x === true", {"x": True}) is True


def test_the_property_evaluator_still_reads_true_as_a_key_as_ts() -> None:
    assert property_evaluate("true", {}) is UNDEFINED
    assert property_evaluate("true", {"true": "yes"}) == "yes"
    assert property_evaluate("1", {"1": "one"}) == "one"


def test_numeric_segments_index_arrays_and_strings() -> None:
    scope = {"items": ["a", "b"], "s": "hi"}
    assert property_evaluate("items.0", scope) == "a"
    assert property_evaluate("items.1", scope) == "b"
    assert property_evaluate("items.2", scope) is UNDEFINED
    assert property_evaluate("items.01", scope) is UNDEFINED  # not a canonical index in JS
    assert property_evaluate("s.1", scope) == "i"


def test_length_works_on_lists_and_strings_and_is_a_plain_key_on_dicts() -> None:
    # TS: "handles large arrays" (data.length) and the UnsafeEvaluator's items.length
    scope = {"data": list(range(1000)), "s": "abc", "d": {"length": "own key"}, "e": {}}
    assert property_evaluate("data.length", scope) == 1000
    assert js("data.length", scope) == 1000
    assert property_evaluate("s.length", scope) == 3
    assert property_evaluate("d.length", scope) == "own key"
    assert property_evaluate("e.length", scope) is UNDEFINED


def test_string_length_counts_utf16_code_units_like_javascript() -> None:
    scope = {"s": "é🚀"}
    assert property_evaluate("s.length", scope) == 3
    assert js("s.length + 0", scope) == 3
    assert js("'\\u{1F680}'.length") == 2


def test_bracket_index_is_rejected_by_property_evaluator_but_allowed_by_the_subset() -> None:
    # TS: "handles arrays of objects" and "handles large arrays"
    scope = {
        "users": [{"name": "Alice", "age": 25}, {"name": "Bob", "age": 30}],
        "firstUser": {"name": "Alice", "age": 25},
        "data": list(range(1000)),
    }
    assert property_evaluate("firstUser.name", scope) == "Alice"
    assert property_evaluate("firstUser.age", scope) == 25
    assert property_evaluate("users[0].name", scope) is UNDEFINED
    assert property_evaluate("data[0]", scope) is UNDEFINED
    # FIX: the default evaluator accepts the JavaScript subset
    assert js("users[0].name", scope) == "Alice"
    assert js("data[0]", scope) == 0
    assert js("data[999]", scope) == 999


def test_twenty_levels_of_nesting_are_read() -> None:
    # TS: "handles extreme nesting levels" and "handles deeply nested structures"
    scope: dict[str, Any] = {"value": "deep"}
    text = "value"
    for level in range(20):
        scope = {f"level{level}": scope}
        text = f"level{level}.{text}"
    assert property_evaluate(text, scope) == "deep"
    assert js(text, scope) == "deep"


def test_evaluation_is_idempotent() -> None:
    # TS: "is idempotent - same input always produces same output"
    cases: list[tuple[str, dict[str, Any]]] = [
        ("a.b.c", {"a": {"b": {"c": 42}}}),
        ("missing", {}),
        ("invalid[0]", {"invalid[0]": "should not match"}),
    ]
    for text, scope in cases:
        results = [PROPERTY.evaluate(text, scope) for _ in range(3)]
        assert results[0] == results[1] == results[2]
        results = [DEFAULT.evaluate(text, scope) for _ in range(3)]
        assert results[0] == results[1] == results[2]


def test_special_values_are_read_without_raising() -> None:
    # TS: "handles special values"
    scope = {
        "zero": 0,
        "negative": -1,
        "float": 3.14,
        "infinity": math.inf,
        "negInfinity": -math.inf,
        "nan": math.nan,
        "emptyString": "",
        "null": None,
        "undefined": UNDEFINED,
        "true": True,
        "false": False,
    }
    for key in scope:
        PROPERTY.evaluate(key, scope)
        DEFAULT.evaluate(key, scope)
        assert DEFAULT.evaluate(f"{key}.x", scope) is UNDEFINED


def test_constructor_name_is_undefined() -> None:
    # FIX: no prototype chain. TS returns "Number" for a.constructor.name (spec §5.1).
    assert property_evaluate("a.constructor.name", {"a": 1}) is UNDEFINED
    assert js("a.constructor.name", {"a": 1}) is UNDEFINED


def test_proto_is_undefined() -> None:
    # FIX: no prototype chain. TS returns Number.prototype for a.__proto__.
    assert property_evaluate("a.__proto__", {"a": 1}) is UNDEFINED
    assert js("obj.__proto__", {"obj": {}}) is UNDEFINED
    assert js("obj.prototype", {"obj": {}}) is UNDEFINED


def test_prototype_names_at_top_level_are_undefined() -> None:
    # TS: the first segment must be an own key, so these are undefined in TS too
    for name in ("constructor", "__proto__", "toString", "hasOwnProperty", "process", "global"):
        assert property_evaluate(name, {"a": 1}) is UNDEFINED
        assert js(name, {"a": 1}) is UNDEFINED


def test_dict_keys_named_like_prototype_properties_are_plain_data() -> None:
    scope = {"obj": {"constructor": "c", "__proto__": "p", "__class__": "k"}}
    assert property_evaluate("obj.constructor", scope) == "c"
    assert js("obj.__proto__", scope) == "p"
    assert js("obj['__class__'] + '!'", scope) == "k!"


def test_property_evaluate_never_raises_on_odd_inputs() -> None:
    assert property_evaluate(None, {"a": 1}) is UNDEFINED  # type: ignore[arg-type]
    assert property_evaluate("a", None) is UNDEFINED  # type: ignore[arg-type]
    assert property_evaluate("a.b", {"a": 5}) is UNDEFINED
    assert property_evaluate("a.b", {"a": True}) is UNDEFINED
    assert property_evaluate("a.b", {"a": object()}) is UNDEFINED
    assert DEFAULT.evaluate(None, {"a": 1}) is UNDEFINED  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["a", "a.b", "a.b.c", "items.0", "items.1.x", "items.length", "s.length", "s.0"]
    + ["", "...", "a..b", ".a", "a.", "n.x", "u.x", "constructor", "123start"],
)
def test_default_evaluator_gives_the_ts_result_for_every_property_path(text: str) -> None:
    scope = {
        "a": {"b": {"c": 1}, "": {"b": 2}},
        "items": [10, {"x": "y"}],
        "s": "str",
        "true": "key",
        "1": {"5": "one-five"},
        "": {"a": "empty"},
        "n": None,
        "u": UNDEFINED,
        "123start": 7,
    }
    expected = property_evaluate(text, scope)
    assert DEFAULT.evaluate(text, scope) == expected
    if text:
        assert compile_expression(text).is_property_path


# --- the JavaScript subset: literals and names ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 0", 1),
        ("2.5 + 0", 2.5),
        (".5 + 0", 0.5),
        ("1e3 + 0", 1000.0),
        ("1E-3 + 0", 0.001),
        ("0x1f + 0", 31),
        ("'it\\'s' + ''", "it's"),
        ('"say \\"hi\\"" + ""', 'say "hi"'),
        ("'a\\nb\\tc' + ''", "a\nb\tc"),
        ("'\\x41\\u0042\\u{43}' + ''", "ABC"),
        ("'\\ud83d\\ude80' + ''", "🚀"),
        ("(true)", True),
        ("(false)", False),
        ("(null)", None),
    ],
)
def test_literals_have_their_javascript_values(text: str, expected: Any) -> None:
    assert js(text) == expected
    assert type(js(text)) is type(expected)


def test_undefined_nan_and_infinity_are_globals_that_a_scope_key_shadows() -> None:
    assert js("(undefined)") is UNDEFINED
    assert math.isnan(js("(NaN)"))
    assert js("-Infinity") == -math.inf
    assert js("(undefined)", {"undefined": 5}) == 5


def test_unknown_identifiers_are_undefined() -> None:
    # TS UnsafeEvaluator: "should handle errors gracefully"
    assert js("undefinedVariable", {"name": "test"}) is UNDEFINED
    assert js("missing === undefined") is True
    assert js("missing == null") is True


def test_bracket_keys_reach_keys_that_are_not_identifiers() -> None:
    scope = {"a": {"b-c": 1, "with spaces": 2}, "items": [10, 20], "s": "xyz"}
    assert js('a["b-c"]', scope) == 1
    assert js("a['with spaces']", scope) == 2
    assert js("items[1]", scope) == 20
    assert js("items['1']", scope) == 20
    assert js("items[1.0]", scope) == 20
    assert js("items[-1]", scope) is UNDEFINED
    assert js("items[2]", scope) is UNDEFINED
    assert js("s[0] + s[2]", scope) == "xz"


# --- the JavaScript subset: semantics -------------------------------------------------------


def test_empty_array_and_empty_object_are_truthy() -> None:
    scope = {"list": [], "obj": {}, "zero": 0, "empty": "", "nan": math.nan}
    assert js("!list", scope) is False
    assert js("obj ? 'yes' : 'no'", scope) == "yes"
    assert truthy(js("list && obj", scope))
    for falsy_name in ("zero", "empty", "nan", "missing"):
        assert js(f"!{falsy_name}", scope) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 === 1.0", True),
        ("1 === '1'", False),
        ("1 == '1'", True),
        ("0 == ''", True),
        ("0 == null", False),
        ("null == undefined", True),
        ("null === undefined", False),
        ("true == 1", True),
        ("true === 1", False),
        ("'1' == true", True),
        ("NaN == NaN", False),
        ("NaN !== NaN", True),
        ("list == '1,2'", True),
        ("list === list", True),
        ("list == other", False),
        ("obj == '[object Object]'", True),
        ("1 != 2", True),
    ],
)
def test_strict_and_loose_equality_follow_javascript(text: str, expected: bool) -> None:
    assert js(text, {"list": [1, 2], "other": [1, 2], "obj": {}}) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'b' > 'a'", True),
        ("'10' < '9'", True),  # two strings compare as strings
        ("10 < '9'", False),  # a number and a numeric string compare as numbers
        ("'abc' < 5", False),  # NaN compares false every way
        ("'abc' >= 5", False),
        ("null >= 0", True),
        ("undefined >= 0", False),
        ("2 <= 2.0", True),
    ],
)
def test_comparisons_follow_javascript(text: str, expected: bool) -> None:
    assert js(text) is expected


def test_and_or_return_operands_and_short_circuit() -> None:
    scope = {"a": 5, "b": "text", "zero": 0, "empty": ""}
    assert js("a && b", scope) == "text"
    assert js("zero && b", scope) == 0
    assert js("empty || 'default'", scope) == "default"
    assert js("a || b", scope) == 5
    # the right side is not evaluated: it would read a property of null
    assert js("zero && missing.x.y", scope) == 0
    assert js("a || missing.x.y", scope) == 5


def test_nullish_coalescing_keeps_falsy_values_other_than_null() -> None:
    scope = {"zero": 0, "n": None}
    assert js("n ?? 'default'", scope) == "default"
    assert js("missing ?? n ?? 3", scope) == 3
    assert js("zero ?? 'default'", scope) == 0
    assert js("(zero || n) ?? 'x'", scope) == "x"


def test_optional_chaining_short_circuits_the_whole_chain() -> None:
    scope = {"a": {"b": None}, "items": [1], "n": None}
    # TS: "both evaluators handle undefined gracefully" (`a.b?.c`)
    assert js("a.b?.c", scope) is UNDEFINED
    assert js("n?.x.y.z", scope) is UNDEFINED
    assert js("n?.[0]", scope) is UNDEFINED
    assert js("items?.[0]", scope) == 1
    assert js("a?.b", scope) is None


def test_reading_a_property_of_null_without_optional_chaining_makes_the_expression_undefined() -> (
    None
):
    # JavaScript throws a TypeError and TS's evaluators then return undefined for everything.
    scope = {"a": {"b": None}}
    assert js("a.b.c", scope) is UNDEFINED
    assert js("a.b.c || 'fallback'", scope) is UNDEFINED
    assert js("(a?.b).c", scope) is UNDEFINED


def test_ternaries_nest_to_the_right() -> None:
    assert js("x > 5 ? 'big' : x > 2 ? 'mid' : 'small'", {"x": 3}) == "mid"
    assert js("x ? y ? 1 : 2 : 3", {"x": True, "y": False}) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'a' + 1", "a1"),
        ("1 + 2 + 'x'", "3x"),
        ("'x' + 1 + 2", "x12"),
        ("1.5 + ''", "1.5"),
        ("2.0 + ''", "2"),
        ("1e21 + ''", "1e+21"),
        ("0.1 + 0.2 + ''", "0.30000000000000004"),
        ("null + 'x'", "nullx"),
        ("undefined + 'x'", "undefinedx"),
        ("true + 'x'", "truex"),
        ("list + ''", "1,,2"),
        ("obj + ''", "[object Object]"),
        ("list + 1", "1,,21"),
        ("true + 1", 2),
        ("null + 1", 1),
    ],
)
def test_plus_concatenates_when_either_side_is_a_string(text: str, expected: Any) -> None:
    assert js(text, {"list": [1, None, 2], "obj": {}}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 % 3", 1),
        ("-7 % 3", -1),  # the sign of the dividend, as JavaScript
        ("7 % -3", 1),
        ("5.5 % 2", 1.5),
        ("7 / 2", 3.5),
        ("6 / 3", 2),
        ("1 / 0", math.inf),
        ("-1 / 0", -math.inf),
        ("1 / -0", -math.inf),
        ("'6' * '2'", 12),
        ("'  3 ' - 1", 2),
        ("+'0x10'", 16),
        ("-'abc' === -'abc'", False),
    ],
)
def test_arithmetic_follows_javascript_numbers(text: str, expected: Any) -> None:
    assert js(text) == expected


def test_exact_integer_results_stay_ints() -> None:
    assert type(js("6 / 3")) is int
    assert type(js("a * 2", {"a": 21})) is int
    assert type(js("7 / 2")) is float


def test_impossible_arithmetic_gives_nan() -> None:
    for text in ("0 / 0", "'abc' * 2", "undefined + 1", "obj - 1", "1 % 0"):
        assert math.isnan(js(text, {"obj": {}})), text


def test_precedence_and_parentheses_follow_javascript() -> None:
    assert js("1 + 2 * 3") == 7
    assert js("(1 + 2) * 3") == 9
    assert js("10 - 4 - 3") == 3
    assert js("2 * 3 % 4") == 2
    assert js("-2 * 3") == -6
    assert js("1 < 2 === true") is True
    assert js("!a && b", {"a": False, "b": "B"}) == "B"
    assert js("a || b && c", {"a": 0, "b": 1, "c": "C"}) == "C"
    assert js("a && b || c", {"a": 0, "b": 1, "c": "C"}) == "C"
    assert js("1 + 1 == 2 ? 'y' : 'n'") == "y"
    assert js("!!x", {"x": []}) is True


def test_ts_unsafe_evaluator_cases_that_fit_the_subset() -> None:
    # TS: "handles basic arithmetic and logic", "can access safe context properties",
    # "should evaluate complex expressions / conditions", "more restrictive than Unsafe"
    scope = {"a": 5, "b": 3, "c": True, "d": False}
    assert js("a + b", scope) == 8
    assert js("a * b", scope) == 15
    assert js("a > b", scope) is True
    assert js("c && d", scope) is False
    assert js("c || d", scope) is True
    context = {"user": {"name": "Alice", "age": 30}, "items": [1, 2, 3]}
    assert js("user.age + 5", context) == 35
    assert js("items.length", context) == 3
    assert js("input * 2", {"input": 5}) == 10
    assert js("result.output.status === 'OK'", {"result": {"output": {"status": "OK"}}}) is True
    assert js("a.b.c + 1", {"a": {"b": {"c": 42}}}) == 43
    assert PROPERTY.evaluate("a.b.c + 1", {"a": {"b": {"c": 42}}}) is UNDEFINED


def test_loop_conditions_compare_context_values() -> None:
    assert js("counter < maxIterations", {"counter": 2, "maxIterations": 3}) is True
    assert js("counter < maxIterations", {"counter": 3, "maxIterations": 3}) is False


# --- errors and limits ------------------------------------------------------------------------


def test_a_syntax_error_quotes_the_expression_and_gives_the_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("a + * b")
    message = str(caught.value)
    assert "'a + * b'" in message
    assert "unexpected '*'" in message
    assert "column 5" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("f(x)", "function calls are not allowed at column 2"),
        ("a.b.c()", "function calls are not allowed"),
        ("a?.(1)", "function calls are not allowed"),
        ("a = 1", "assignment is not allowed"),
        ("a += 1", "assignment is not allowed"),
        ("new Object()", "'new' is not supported"),
        ("typeof a", "'typeof' is not supported"),
        ("a instanceof b", "'instanceof' is not supported"),
        ("a in b", "'in' is not supported"),
        ("`x${a}`", "template strings are not supported"),
        ("/a/.test(b)", "unexpected '/'"),
        ("a, b", "comma sequences are not allowed"),
        ("a; b", "statements are not allowed"),
        ("x => x", "functions are not allowed"),
        ("a ** 2", "exponent operator is not supported"),
        ("a & 1", "bitwise operators are not supported"),
        ("a++", "increment and decrement are not allowed"),
        ("[1, 2]", "array literals are not supported"),
        ("{a: 1}", "object literals and blocks are not supported"),
        ("a ?? b || c", "'??' cannot be mixed"),
        ("a && b ?? c", "'??' cannot be mixed"),
        ("a +", "unexpected end of expression at column 4"),
        ("(a", "expected ')' but found the end"),
        ("'open", "unterminated string at column 1"),
        ("01 + 1", "leading zero"),
        ("1abc + 1", "invalid number"),
        ("a + #", "unexpected character '#'"),
        ("'\\1'", "octal escapes are not supported"),
        ("'\\xZZ'", "invalid escape sequence"),
        ("   ", "empty"),
    ],
)
def test_text_outside_the_subset_is_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert says in str(caught.value)
    assert repr(text) in str(caught.value)


def test_expressions_longer_than_the_limit_are_refused_but_property_paths_are_not() -> None:
    long_subset = "a + " * (MAX_EXPRESSION_LENGTH // 4) + "a"
    with pytest.raises(ExpressionError, match=f"longer than {MAX_EXPRESSION_LENGTH}"):
        compile_expression(long_subset)
    long_path = ".".join(["k"] * 3000)  # TS accepts any path length
    assert compile_expression(long_path).evaluate({"k": {}}) is UNDEFINED


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    ok = "(" * (MAX_NESTING_DEPTH - 1) + "a" + ")" * (MAX_NESTING_DEPTH - 1)
    assert js(ok, {"a": 1}) == 1
    too_deep = "(" * MAX_NESTING_DEPTH + "a" + ")" * MAX_NESTING_DEPTH
    with pytest.raises(ExpressionError, match=f"nested deeper than {MAX_NESTING_DEPTH}"):
        compile_expression(too_deep)
    with pytest.raises(ExpressionError, match="nested deeper"):
        compile_expression("!" * 40 + "a")
    with pytest.raises(ExpressionError, match="nested deeper"):
        compile_expression("a ? " * 40 + "1" + " : 2" * 40)


def test_long_flat_chains_are_not_nesting() -> None:
    text = "+".join(["a"] * 300)
    assert js(text, {"a": 1}) == 300
    assert js("&&".join(["a"] * 300), {"a": "x"}) == "x"


def test_strings_longer_than_the_limit_make_the_expression_undefined() -> None:
    half = "x" * (MAX_STRING_LENGTH // 2)
    scope = {"half": half, "list": [half, half, half]}
    assert js("half + half", scope) == half + half
    assert js("half + half + 'y'", scope) is UNDEFINED
    assert js("list + ''", scope) is UNDEFINED


def test_default_evaluator_validate_raises_and_evaluate_gives_undefined_for_bad_text() -> None:
    evaluator = DefaultEvaluator()
    with pytest.raises(ExpressionError, match="function calls"):
        evaluator.validate("a()")
    assert evaluator.evaluate("a()", {"a": 1}) is UNDEFINED
    evaluator.validate("a.b")
    evaluator.validate("a.b === 1 && c")


def test_default_evaluator_cache_is_bounded() -> None:
    evaluator = DefaultEvaluator(cache_size=4)
    for number in range(50):
        assert evaluator.evaluate(f"x + {number}", {"x": 1}) == 1 + number
    assert evaluator._compile.cache_info().currsize <= 4


def test_property_evaluator_validate_accepts_anything() -> None:
    # TS's PropertyEvaluator never rejects a blueprint; it returns undefined at run time.
    for text in ("a()", "a + b", "", "🚀"):
        PROPERTY.validate(text)


def test_compile_expression_refuses_text_that_is_not_a_string() -> None:
    with pytest.raises(ExpressionError, match="must be a string"):
        compile_expression(123)  # type: ignore[arg-type]


# --- security ---------------------------------------------------------------------------------


class Tripwire:
    """A scope value whose every hook records that it ran; nothing may run it."""

    calls: list[str] = []

    def _record(self, name: str) -> Any:
        Tripwire.calls.append(name)
        return True

    def __getattr__(self, name: str) -> Any:
        return self._record(f"getattr {name}")

    def __getitem__(self, key: Any) -> Any:
        return self._record("getitem")

    def __call__(self, *args: Any) -> Any:
        return self._record("call")

    def __eq__(self, other: object) -> bool:
        return bool(self._record("eq"))

    def __lt__(self, other: object) -> bool:
        return bool(self._record("lt"))

    def __add__(self, other: object) -> Any:
        return self._record("add")

    def __radd__(self, other: object) -> Any:
        return self._record("radd")

    def __str__(self) -> str:
        self._record("str")
        return "tripwire"

    def __len__(self) -> int:
        self._record("len")
        return 1

    def __hash__(self) -> int:
        self._record("hash")
        return 1

    def __bool__(self) -> bool:
        return bool(self._record("bool"))

    def __float__(self) -> float:
        self._record("float")
        return 1.0

    def __index__(self) -> int:
        self._record("index")
        return 1


class TripwireDict(dict):
    def __getitem__(self, key: Any) -> Any:
        Tripwire.calls.append("dict getitem")
        return "overridden"

    def __contains__(self, key: object) -> bool:
        Tripwire.calls.append("dict contains")
        return True

    def get(self, key: Any, default: Any = None) -> Any:
        Tripwire.calls.append("dict get")
        return "overridden"


class TripwireList(list):
    def __getitem__(self, index: Any) -> Any:
        Tripwire.calls.append("list getitem")
        return "overridden"

    def __len__(self) -> int:
        Tripwire.calls.append("list len")
        return 99

    def __iter__(self) -> Any:
        Tripwire.calls.append("list iter")
        return iter(["overridden"])


class TripwireStr(str):
    def __add__(self, other: object) -> Any:
        Tripwire.calls.append("str add")
        return "overridden"

    def __eq__(self, other: object) -> bool:
        Tripwire.calls.append("str eq")
        return True

    __hash__ = str.__hash__


def security_scope() -> dict[str, Any]:
    return {
        "a": {"b": {"c": 1}},
        "x": {"k": "v"},
        "items": [1, 2],
        "s": "text",
        "spy": Tripwire(),
        "spy_dict": TripwireDict(k="data"),
        "spy_list": TripwireList([1, 2]),
        "spy_str": TripwireStr("data"),
        "os": "not a module",
    }


HOSTILE = [
    "__import__('os')",
    "__import__('os').system('touch /tmp/pwned')",
    "constructor.constructor('return process')()",
    "a.constructor.constructor('return process')()",
    "a.__class__.__mro__",
    "a.__class__.__base__.__subclasses__()",
    "().__class__",
    "[].__class__",
    "''.join",
    "''.__class__",
    "x.__dict__",
    "x.__class__",
    "x['__class__']",
    "x['__init__']['__globals__']",
    "globals",
    "globals()",
    "locals()",
    'eval("1")',
    "exec('1')",
    "open('/etc/passwd')",
    "open('/etc/passwd').read()",
    "a.b.c()",
    "process.env",
    "require('fs')",
    "this.constructor",
    "Function('return this')()",
    "items.constructor",
    "items.__len__",
    "items.pop",
    "s.upper",
    "s.__class__",
    "s.format",
    "spy.system",
    "spy.__dict__",
    "spy['__class__']",
    "spy.x.y",
    "spy.length",
    "spy()",
    "spy + 1",
    "spy + ''",
    "spy == 1",
    "spy < 1",
    "spy ? 1 : 2",
    "!spy",
    "items[spy]",
    "x[spy]",
    "spy_dict.k",
    "spy_dict['k'] + 1",
    "spy_dict.missing",
    "spy_list[0]",
    "spy_list.length",
    "spy_list + ''",
    "spy_str + 'x'",
    "spy_str == 'other'",
    "spy_str.length",
    "os.system",
    "lambda: 1",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_expressions_are_refused_or_evaluate_to_data(text: str) -> None:
    Tripwire.calls.clear()
    try:
        compiled = compile_expression(text)
    except ExpressionError:
        return
    result = compiled.evaluate(security_scope())
    assert Tripwire.calls == []
    # Only JavaScript data comes out: no function, module, type or bound method.
    assert not callable(result) or isinstance(result, Tripwire)
    assert not isinstance(result, type)


def test_subclassed_containers_are_read_as_plain_data() -> None:
    Tripwire.calls.clear()
    scope = security_scope()
    assert js("spy_dict.k", scope) == "data"
    assert js("spy_dict.missing", scope) is UNDEFINED
    assert js("spy_list[1] + spy_list.length", scope) == 4
    assert js("spy_list + ''", scope) == "1,2"
    assert js("spy_str + '!'", scope) == "data!"
    assert js("spy_str === 'data'", scope) is True
    assert js("spy_str == 'other'", scope) is False
    assert property_evaluate("spy_dict.k", scope) == "data"
    assert property_evaluate("spy_list.length", scope) == 2
    assert Tripwire.calls == []


def test_opaque_python_objects_are_objects_without_properties() -> None:
    Tripwire.calls.clear()
    scope = security_scope()
    assert js("spy.anything", scope) is UNDEFINED
    assert js("spy + ''", scope) == "[object Object]"
    assert js("spy === spy", scope) is True
    assert js("spy == 1", scope) is False
    assert js("spy ? 1 : 2", scope) == 1
    assert Tripwire.calls == []


def test_the_module_never_executes_or_introspects_dynamically() -> None:
    source = Path(expressions.__file__).read_text()
    forbidden = {"eval", "exec", "compile", "getattr", "setattr", "__import__", "vars", "globals"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in forbidden, f"line {node.lineno} calls {node.func.id}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] + [getattr(node, "module", "") or ""]
            assert not {"os", "subprocess", "builtins", "importlib"} & set(modules)
