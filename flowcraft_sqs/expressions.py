"""Edge conditions and transforms: TS's PropertyEvaluator, and a safe JavaScript subset.

Two languages share one entry point, `compile_expression`:

* Text made only of `[A-Za-z0-9_$.]` is a property path, evaluated exactly as TS
  Flowcraft's default `PropertyEvaluator` does it (spec §5.1): `true` is a key, `items.0`
  is an index, `a..b` reads the key "". This is the compatibility promise: every expression
  TS's default evaluator accepts gives the TS result.
* Any other text is parsed as a small JavaScript expression language (contract §2, FIX):
  literals, member access, `?.`, unary `! - +`, `* / % + -`, comparisons, `&& || ??` and
  `?:`, with JavaScript's value semantics. Our own parser builds an AST that is evaluated by
  walking it: no eval/exec, no calls, no Python attributes. Member access reads dict keys,
  list indices and `length` only, so `constructor`, `__proto__` and `__class__` are
  `undefined` unless a dict holds them as data.

Evaluation never raises. Where JavaScript would throw (reading a property of null, building
an overlong string) the whole expression is `undefined`, because TS's evaluators catch every
error and return undefined. Syntax errors are found by `compile_expression` when a
blueprint loads, and raised as ExpressionError naming the expression and the column.

Deliberate differences from JavaScript:

* No prototype chain: `(1).constructor`, `{}.toString`, `'a'.concat` are undefined
  (TS's PropertyEvaluator reaches the prototype: `a.constructor.name` is "Number" there).
* An identifier that is not a key of the scope is `undefined` (JavaScript throws a
  ReferenceError, which TS turns into undefined for the whole expression).
* `undefined`, `NaN` and `Infinity` are the only globals; a scope key shadows them, as
  the parameters of TS's UnsafeEvaluator do.
* Numbers keep Python's int where JavaScript's result is an exact integer up to 2**53
  (`6 / 3` is 2, not 2.0), so stored values round-trip as ints.
* A string built by `+` may not exceed MAX_STRING_LENGTH; past it the result is undefined.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, Final, NamedTuple

from .errors import ExpressionError
from .jsvalues import UNDEFINED, truthy

logger = logging.getLogger(__name__)

# Blueprint conditions are one-liners. The cap bounds parse work and AST size, and since
# the language has no loops, it bounds evaluation time too. Property paths are exempt:
# TS accepts any length and reading a path is linear.
MAX_EXPRESSION_LENGTH: Final = 1000
# Parentheses, brackets, ternary branches and unary operators each nest one level. The
# parser and evaluator recurse per level, so this keeps them far below Python's limit.
MAX_NESTING_DEPTH: Final = 32
# The longest string `+` (or turning an array into a string) may build. An expression has at
# most ~500 operators, so one evaluation copies at most ~50 MB. Past it the expression is
# undefined, like JavaScript's RangeError for an overlong string under TS's evaluators.
MAX_STRING_LENGTH: Final = 100_000
COMPILE_CACHE_SIZE: Final = 1024  # distinct expression texts a DefaultEvaluator keeps compiled

_MAX_SAFE_INTEGER: Final = 2**53  # past it a JavaScript number is no longer an exact integer
_MAX_ARRAY_DEPTH: Final = 64  # nested arrays deeper than this are not turned into strings

_PROPERTY_PATH: Final = re.compile(r"[A-Za-z0-9_$.]+")  # TS: /^[a-zA-Z0-9_$.]+$/, ASCII only
_ARRAY_INDEX: Final = re.compile(r"0|[1-9][0-9]{0,9}")  # canonical index strings, as JS reads them


class _JsThrow(Exception):
    """Where JavaScript would throw; `Expression.evaluate` turns it into undefined."""


# --- TS's PropertyEvaluator ------------------------------------------------------------


def property_evaluate(expression: str, scope: dict[str, Any]) -> Any:
    """TS `PropertyEvaluator.evaluate`: a dotted path read from `scope`. Never raises."""
    if not isinstance(expression, str) or not _PROPERTY_PATH.fullmatch(expression):
        logger.debug("expression contains invalid characters: %.80r", expression)
        return UNDEFINED
    if not isinstance(scope, dict):
        return UNDEFINED
    return _read_path(expression.split("."), scope)


def _read_path(segments: list[str] | tuple[str, ...], scope: dict[str, Any]) -> Any:
    """The first segment must be an own key of `scope`; null along the way gives undefined."""
    if not dict.__contains__(scope, segments[0]):
        return UNDEFINED
    current = dict.__getitem__(scope, segments[0])
    for segment in segments[1:]:
        if current is None or current is UNDEFINED:
            return UNDEFINED
        current = _get_property(current, segment)
    return current


def read_property(obj: Any, key: str) -> Any:
    """One step of a property path, as `property_evaluate` takes it (for input paths too)."""
    return UNDEFINED if obj is None or obj is UNDEFINED else _get_property(obj, key)


def _get_property(obj: Any, key: str) -> Any:
    """`obj[key]` for a value that is not null, restricted to data.

    Dicts give their own keys, arrays and strings their indices and `length`; anything else
    is undefined. The base classes' methods are called directly so that a subclass's
    overrides never run, and no Python attribute is ever read.
    """
    kind = type(obj)
    if issubclass(kind, dict):
        return dict.__getitem__(obj, key) if dict.__contains__(obj, key) else UNDEFINED
    if issubclass(kind, list):
        return _array_property(list.__len__(obj), list.__getitem__, obj, key)
    if issubclass(kind, tuple):
        return _array_property(tuple.__len__(obj), tuple.__getitem__, obj, key)
    if issubclass(kind, str):
        return _string_property(str.__str__(obj), key)
    return UNDEFINED


def _array_property(size: int, item: Callable[[Any, int], Any], array: Any, key: str) -> Any:
    if key == "length":
        return size
    if _ARRAY_INDEX.fullmatch(key) and int(key) < size:
        return item(array, int(key))
    return UNDEFINED


def _string_property(text: str, key: str) -> Any:
    """`length` and indices count UTF-16 code units, as JavaScript strings do."""
    if key == "length":
        return _utf16_length(text)
    if not _ARRAY_INDEX.fullmatch(key):
        return UNDEFINED
    index = int(key)
    if text.isascii():
        return text[index] if index < len(text) else UNDEFINED
    units = text.encode("utf-16-le", "surrogatepass")
    if 2 * index + 2 > len(units):
        return UNDEFINED
    return units[2 * index : 2 * index + 2].decode("utf-16-le", "surrogatepass")


def _utf16_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


# --- JavaScript values ---------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value read from the scope, as data: subclasses of str, int and float (enums, say)
    become the base type, so no operator ever dispatches to code the scope supplied."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool:
        return value
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, int):
        return int.__int__(value)
    if issubclass(kind, float):
        return float.__float__(value)
    return value


def _type_of(value: Any) -> str:
    """JavaScript's type of a plain value; dicts, arrays and other objects are 'object'."""
    kind = type(value)
    if kind is str:
        return "string"
    if kind is int or kind is float:
        return "number"
    if kind is bool:
        return "boolean"
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    return "object"


def _is_array(value: Any) -> bool:
    return issubclass(type(value), (list, tuple))


def _is_nullish(value: Any) -> bool:
    return value is None or value is UNDEFINED


def _int_number(value: int) -> int | float:
    """An int as a JavaScript number: exact up to 2**53, a float past it."""
    if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return value
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _to_primitive(value: Any) -> Any:
    if _type_of(value) != "object":
        return value
    return _array_to_string(value, 0) if _is_array(value) else "[object Object]"


def _to_number(value: Any) -> int | float:
    kind = _type_of(value)
    if kind == "number":
        return _int_number(value) if type(value) is int else value
    if kind == "boolean":
        return int(value)
    if kind == "string":
        return _string_to_number(value)
    if kind == "null":
        return 0
    if kind == "undefined":
        return math.nan
    return _to_number(_to_primitive(value))


_JS_SPACE: Final = "\t\n\v\f\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)
_RADIX_STRING: Final = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
_INTEGER_STRING: Final = re.compile(r"[+-]?[0-9]{1,20}")
_DECIMAL_STRING: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _string_to_number(text: str) -> int | float:
    """JavaScript's StringToNumber: '' is 0, ' 12 ' is 12, '0x1f' is 31, junk is NaN."""
    text = text.strip(_JS_SPACE)
    if not text:
        return 0
    if text in ("Infinity", "+Infinity", "-Infinity"):
        return -math.inf if text[0] == "-" else math.inf
    if _RADIX_STRING.fullmatch(text):
        return _int_number(int(text, 0))
    if _INTEGER_STRING.fullmatch(text):
        return _int_result(int(text), negative=text[0] == "-")
    if _DECIMAL_STRING.fullmatch(text):
        return float(text)
    return math.nan


def _to_string(value: Any) -> str:
    kind = _type_of(value)
    if kind == "string":
        return value
    if kind == "number":
        return _number_to_string(value)
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("null", "undefined"):
        return kind
    return _to_primitive(value)


def _array_to_string(array: Any, depth: int) -> str:
    """Array.prototype.join(','): null and undefined items are empty strings."""
    if depth > _MAX_ARRAY_DEPTH:
        raise _JsThrow("array nested too deeply to convert to a string")
    parts: list[str] = []
    size = 0
    for item in (list.__iter__ if issubclass(type(array), list) else tuple.__iter__)(array):
        item = _plain(item)
        if _is_nullish(item):
            part = ""
        elif _is_array(item):
            part = _array_to_string(item, depth + 1)
        else:
            part = _to_string(item)
        size += len(part) + 1
        if size > MAX_STRING_LENGTH + 1:
            raise _JsThrow("string too long")
        parts.append(part)
    return ",".join(parts)


def _number_to_string(number: int | float) -> str:
    """JavaScript's Number::toString: shortest round-trip digits, exponent past 1e21."""
    if type(number) is int and abs(number) < 10**21:
        return str(number)
    value = float(_int_number(number)) if type(number) is int else number
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip, as JavaScript does; only the layout differs.
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    leading_zeros = len(whole) + len(fraction) - len(digits)
    point = len(whole) - leading_zeros + int(exponent or 0)  # value = 0.<digits> * 10**point
    return sign + _place_decimal_point(digits.rstrip("0"), point)


def _place_decimal_point(digits: str, point: int) -> str:
    if len(digits) <= point <= 21:
        return digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    mantissa = digits if len(digits) == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def _to_property_key(value: Any) -> str:
    return _to_string(_to_primitive(value))


# --- operators -----------------------------------------------------------------------------


def _strict_equals(left: Any, right: Any) -> bool:
    kind = _type_of(left)
    if kind != _type_of(right):
        return False
    if kind in ("number", "string", "boolean"):
        return bool(left == right)  # plain values only; NaN is unequal to itself
    if kind in ("null", "undefined"):
        return True
    return left is right  # objects are equal only to themselves


def _loose_equals(left: Any, right: Any) -> bool:
    """JavaScript's `==` (IsLooselyEqual)."""
    left_kind, right_kind = _type_of(left), _type_of(right)
    if left_kind == right_kind:
        return _strict_equals(left, right)
    if _is_nullish(left) or _is_nullish(right):
        return _is_nullish(left) and _is_nullish(right)
    if left_kind == "boolean":
        return _loose_equals(int(left), right)
    if right_kind == "boolean":
        return _loose_equals(left, int(right))
    if left_kind == "object":
        return _loose_equals(_to_primitive(left), right)
    if right_kind == "object":
        return _loose_equals(left, _to_primitive(right))
    return bool(_to_number(left) == _to_number(right))  # a number and a string


def _less_than(left: Any, right: Any) -> bool | None:
    """JavaScript's IsLessThan: None when either side is NaN (every comparison is false)."""
    left, right = _to_primitive(left), _to_primitive(right)
    if type(left) is str and type(right) is str:
        if left.isascii() and right.isascii():
            return left < right
        # JavaScript compares UTF-16 code units; big-endian bytes order the same way.
        return left.encode("utf-16-be", "surrogatepass") < right.encode(
            "utf-16-be", "surrogatepass"
        )
    left_number, right_number = _to_number(left), _to_number(right)
    if math.isnan(left_number) or math.isnan(right_number):
        return None
    return left_number < right_number


def _add(left: Any, right: Any) -> Any:
    left, right = _to_primitive(left), _to_primitive(right)
    if type(left) is str or type(right) is str:
        left, right = _to_string(left), _to_string(right)
        if len(left) + len(right) > MAX_STRING_LENGTH:
            raise _JsThrow("string too long")
        return left + right
    return _number(_to_number(left) + _to_number(right))


def _subtract(left: Any, right: Any) -> int | float:
    return _number(_to_number(left) - _to_number(right))


def _multiply(left: Any, right: Any) -> int | float:
    x, y = _to_number(left), _to_number(right)
    if type(x) is int and type(y) is int:
        return _int_result(x * y, negative=x < 0 or y < 0)
    return x * y


def _divide(left: Any, right: Any) -> int | float:
    dividend, divisor = _to_number(left), _to_number(right)
    if divisor == 0:
        if dividend == 0 or math.isnan(dividend):
            return math.nan
        return math.copysign(math.inf, dividend) * math.copysign(1.0, divisor)
    if type(dividend) is int and type(divisor) is int and dividend % divisor == 0:
        return _int_result(dividend // divisor, negative=divisor < 0)
    return dividend / divisor


def _remainder(left: Any, right: Any) -> int | float:
    """JavaScript's `%`: the sign follows the dividend (Python's follows the divisor)."""
    dividend, divisor = _to_number(left), _to_number(right)
    if divisor == 0 or math.isnan(divisor) or math.isnan(dividend) or math.isinf(dividend):
        return math.nan
    if math.isinf(divisor):
        return dividend
    if type(dividend) is int and type(divisor) is int:
        rest = abs(dividend) % abs(divisor)
        return _int_result(-rest if dividend < 0 else rest, negative=dividend < 0)
    return math.fmod(dividend, divisor)


def _number(value: int | float) -> int | float:
    """An arithmetic result as a JavaScript number (ints past 2**53 become floats)."""
    return _int_number(value) if type(value) is int else value


def _is_set(value: Any) -> bool:
    return not _is_nullish(value)


def _falsy(value: Any) -> bool:
    return not truthy(value)


def _negate(value: Any) -> int | float:
    number = _to_number(value)
    return _int_result(-number, negative=number == 0) if type(number) is int else -number


def _int_result(value: int, negative: bool) -> int | float:
    """An exact integer result stays an int (so it is stored as one), except JavaScript's
    -0: a zero whose sign is negative, kept as -0.0 because `1 / -0` is -Infinity."""
    if value == 0 and negative:
        return -0.0
    return _int_number(value)


_BINARY_LEVELS: Final[tuple[dict[str, Callable[[Any, Any], Any]], ...]] = (
    {
        "===": _strict_equals,
        "!==": lambda a, b: not _strict_equals(a, b),
        "==": _loose_equals,
        "!=": lambda a, b: not _loose_equals(a, b),
    },
    {
        "<": lambda a, b: _less_than(a, b) is True,
        ">": lambda a, b: _less_than(b, a) is True,
        "<=": lambda a, b: _less_than(b, a) is False,
        ">=": lambda a, b: _less_than(a, b) is False,
    },
    {"+": _add, "-": _subtract},
    {"*": _multiply, "/": _divide, "%": _remainder},
)
_UNARY: Final[dict[str, Callable[[Any], Any]]] = {
    "!": _falsy,
    "-": _negate,
    "+": _to_number,
}
_GLOBALS: Final = {"undefined": UNDEFINED, "NaN": math.nan, "Infinity": math.inf}


# --- syntax tree ---------------------------------------------------------------------------
# Each node evaluates itself against the scope. Same-precedence chains (`a + b + c`,
# `a.b.c`, `a && b && c`) are flat nodes evaluated in a loop, so tree depth grows only with
# real nesting, which the parser bounds.


class _Node:
    __slots__ = ()

    def evaluate(self, scope: dict[str, Any]) -> Any:
        raise NotImplementedError


class _Literal(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def evaluate(self, scope: dict[str, Any]) -> Any:
        return self.value


class _Name(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, scope: dict[str, Any]) -> Any:
        if dict.__contains__(scope, self.name):
            return _plain(dict.__getitem__(scope, self.name))
        return _GLOBALS.get(self.name, UNDEFINED)


class _Step(NamedTuple):
    """One `.name`, `[key]`, `?.name` or `?.[key]` of a member chain."""

    key: str | _Node  # a name, or the expression computing the key
    optional: bool  # `?.`: a null or undefined object ends the whole chain as undefined


class _Member(_Node):
    __slots__ = ("base", "steps")

    def __init__(self, base: _Node, steps: tuple[_Step, ...]) -> None:
        self.base = base
        self.steps = steps

    def evaluate(self, scope: dict[str, Any]) -> Any:
        value = self.base.evaluate(scope)
        for step in self.steps:
            if _is_nullish(value):
                if step.optional:
                    return UNDEFINED
                raise _JsThrow("cannot read a property of null or undefined")
            key = step.key
            name = key if isinstance(key, str) else _to_property_key(key.evaluate(scope))
            value = _plain(_get_property(value, name))
        return value


class _Unary(_Node):
    __slots__ = ("apply", "operand")

    def __init__(self, apply: Callable[[Any], Any], operand: _Node) -> None:
        self.apply = apply
        self.operand = operand

    def evaluate(self, scope: dict[str, Any]) -> Any:
        return self.apply(self.operand.evaluate(scope))


class _Binary(_Node):
    """A left-associative chain of same-precedence operators: `a - b + c`."""

    __slots__ = ("first", "rest")

    def __init__(self, first: _Node, rest: tuple[tuple[Callable[[Any, Any], Any], _Node], ...]):
        self.first = first
        self.rest = rest

    def evaluate(self, scope: dict[str, Any]) -> Any:
        value = self.first.evaluate(scope)
        for apply, operand in self.rest:
            value = apply(value, operand.evaluate(scope))
        return value


class _ShortCircuit(_Node):
    """`a && b && c`, `a || b` or `a ?? b`: the first operand that stops the chain, else the
    last one, without evaluating the rest (JavaScript returns operands, not booleans)."""

    __slots__ = ("operands", "stops")

    def __init__(self, operands: tuple[_Node, ...], stops: Callable[[Any], bool]) -> None:
        self.operands = operands
        self.stops = stops

    def evaluate(self, scope: dict[str, Any]) -> Any:
        for operand in self.operands[:-1]:
            value = operand.evaluate(scope)
            if self.stops(value):
                return value
        return self.operands[-1].evaluate(scope)


class _Conditional(_Node):
    __slots__ = ("test", "then", "otherwise")

    def __init__(self, test: _Node, then: _Node, otherwise: _Node) -> None:
        self.test = test
        self.then = then
        self.otherwise = otherwise

    def evaluate(self, scope: dict[str, Any]) -> Any:
        branch = self.then if truthy(self.test.evaluate(scope)) else self.otherwise
        return branch.evaluate(scope)


class _PropertyPath(_Node):
    __slots__ = ("segments",)

    def __init__(self, segments: tuple[str, ...]) -> None:
        self.segments = segments

    def evaluate(self, scope: dict[str, Any]) -> Any:
        return _read_path(self.segments, scope)


# --- tokens ---------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # "number", "string", "name", "punct" or "end"
    value: Any
    pos: int
    end: int


_PUNCTUATORS: Final = (
    *("===", "!==", "==", "!=", "<=", ">=", "<", ">", "&&", "||", "??", "?.", "?", ":"),
    *("+", "-", "*", "/", "%", "!", ".", "(", ")", "[", "]"),
)
# JavaScript symbols outside the subset, read whole so the error names what is refused.
_REFUSED: Final = {
    "assignment is not allowed": (
        *("=", "+=", "-=", "*=", "/=", "%=", "**=", "<<=", ">>=", ">>>="),
        *("&=", "|=", "^=", "&&=", "||=", "??="),
    ),
    "functions are not allowed": ("=>",),
    "increment and decrement are not allowed": ("++", "--"),
    "spread syntax is not allowed": ("...",),
    "comma sequences are not allowed": (",",),
    "statements are not allowed": (";",),
    "object literals and blocks are not supported": ("{", "}"),
    "template strings are not supported": ("`",),
    "the exponent operator is not supported": ("**",),
    "bitwise operators are not supported": ("<<", ">>", ">>>", "~", "&", "|", "^"),
}
_REFUSED_SYMBOLS: Final = {symbol: why for why, symbols in _REFUSED.items() for symbol in symbols}
# Longest first, so `===` is read before `==` and `=`.
_SYMBOLS: Final = sorted([*_PUNCTUATORS, *_REFUSED_SYMBOLS], key=len, reverse=True)
_NUMBER: Final = re.compile(
    r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+"
    r"|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}
_HEX4: Final = re.compile(r"[0-9a-fA-F]{4}")
_HEX2: Final = re.compile(r"[0-9a-fA-F]{2}")
_CODE_POINT: Final = re.compile(r"\{([0-9a-fA-F]{1,6})\}")
_LINE_CONTINUATIONS: Final = ("\r\n", "\n", "\r", "\u2028", "\u2029")


def _fail(text: str, pos: int, message: str) -> ExpressionError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return ExpressionError(f"expression {shown!r}: {message} at column {pos + 1}")


def _is_name_start(char: str) -> bool:
    if char.isascii():
        return char.isalpha() or char in "_$"
    return char.isidentifier()


def _is_name_part(char: str) -> bool:
    if char.isascii():
        return char.isalnum() or char in "_$"
    return ("a" + char).isidentifier()


_ASCII_DIGITS = frozenset("0123456789")


def _tokenize(text: str) -> Iterator[_Token]:
    """Tokens on demand, so that the first problem in reading order is the one reported."""
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char in _JS_SPACE:
            pos += 1
            continue
        following = text[pos + 1 : pos + 2]
        # ASCII digits only: str.isdigit() also accepts '²' and the like, which no number has.
        if char in _ASCII_DIGITS or (char == "." and following != "" and following in _ASCII_DIGITS):
            token = _read_number(text, pos)
        elif char in "'\"":
            token = _read_string(text, pos)
        elif _is_name_start(char):
            token = _read_name(text, pos)
        else:
            token = _read_symbol(text, pos)
        yield token
        pos = token.end
    yield _Token("end", None, len(text), len(text))


def _read_name(text: str, pos: int) -> _Token:
    end = pos + 1
    while end < len(text) and _is_name_part(text[end]):
        end += 1
    return _Token("name", text[pos:end], pos, end)


def _read_number(text: str, pos: int) -> _Token:
    match = _NUMBER.match(text, pos)
    assert match is not None  # the caller saw a digit, or '.' and a digit
    lexeme, end = match.group(), match.end()
    if len(lexeme) > 1 and lexeme[0] == "0" and lexeme[1].isdigit():
        raise _fail(text, pos, "numbers with a leading zero are not supported")
    if end < len(text) and _is_name_part(text[end]):
        raise _fail(text, pos, f"invalid number {text[pos : end + 1]!r}")
    if lexeme[:2].lower() in ("0x", "0o", "0b"):
        value: int | float = _int_number(int(lexeme, 0))
    elif any(mark in lexeme for mark in ".eE"):
        value = float(lexeme)
    else:
        value = _int_number(int(lexeme))
    return _Token("number", value, pos, end)


def _read_string(text: str, start: int) -> _Token:
    quote, pos, chars = text[start], start + 1, []
    while True:
        if pos >= len(text) or text[pos] in "\r\n":
            raise _fail(text, start, "unterminated string")
        char = text[pos]
        if char == quote:
            break
        if char == "\\":
            piece, pos = _read_escape(text, pos)
            chars.append(piece)
        else:
            chars.append(char)
            pos += 1
    # Join escaped surrogate pairs (`\ud83d\ude80`) into one character, as UTF-16 does.
    value = "".join(chars).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _Token("string", value, start, pos + 1)


def _read_escape(text: str, pos: int) -> tuple[str, int]:
    """One escape sequence starting at the backslash at `pos`: (its text, the next pos)."""
    char = text[pos + 1 : pos + 2]
    if not char:
        raise _fail(text, pos, "unterminated string")
    for ending in _LINE_CONTINUATIONS:
        if text.startswith(ending, pos + 1):
            return "", pos + 1 + len(ending)
    if char in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[char], pos + 2
    if char == "0" and not text[pos + 2 : pos + 3].isdigit():
        return "\0", pos + 2
    if char.isdigit():
        raise _fail(text, pos, "octal escapes are not supported")
    if char == "x":
        return _hex_escape(text, pos, _HEX2.match(text, pos + 2))
    if char == "u":
        braced = _CODE_POINT.match(text, pos + 2)
        return _hex_escape(text, pos, braced or _HEX4.match(text, pos + 2))
    return char, pos + 2  # `\'`, `\"`, `\\`, and any other character stands for itself


def _hex_escape(text: str, pos: int, match: re.Match[str] | None) -> tuple[str, int]:
    if match is None:
        raise _fail(text, pos, "invalid escape sequence")
    code = int(match.group(match.lastindex or 0), 16)
    if code > 0x10FFFF:
        raise _fail(text, pos, "invalid escape sequence")
    return chr(code), match.end()


def _read_symbol(text: str, pos: int) -> _Token:
    for symbol in _SYMBOLS:
        if text.startswith(symbol, pos):
            break
    else:
        raise _fail(text, pos, f"unexpected character {text[pos]!r}")
    if symbol == "?." and text[pos + 2 : pos + 3].isdigit():
        symbol = "?"  # `a?.5:1` is a conditional, as in JavaScript
    if symbol in _REFUSED_SYMBOLS:
        raise _fail(text, pos, _REFUSED_SYMBOLS[symbol])
    return _Token("punct", symbol, pos, pos + len(symbol))


# --- parser ---------------------------------------------------------------------------------

_KEYWORD_VALUES: Final = {"true": True, "false": False, "null": None}
_RESERVED_WORDS: Final = frozenset(
    (
        *("break", "case", "catch", "class", "const", "continue", "debugger", "default"),
        *("delete", "do", "else", "enum", "export", "extends", "finally", "for", "function"),
        *("if", "import", "in", "instanceof", "new", "return", "super", "switch", "this"),
        *("throw", "try", "typeof", "var", "void", "while", "with"),
    )
)


class _Parser:
    """Recursive descent over the tokens, one method per precedence level, loosest first."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.current = next(self.tokens)
        self.depth = 0

    def parse(self) -> _Node:
        node = self._expression()
        if self._peek().kind != "end":
            raise self._unexpected(self._peek())
        return node

    # -- precedence levels

    def _expression(self) -> _Node:
        self._enter()
        try:
            return self._conditional()
        finally:
            self.depth -= 1

    def _conditional(self) -> _Node:
        test = self._short_circuit()
        if not self._accept("?"):
            return test
        then = self._expression()
        self._expect(":")
        return _Conditional(test, then, self._expression())

    def _short_circuit(self) -> _Node:
        first = self._binary(0)
        if self._at("??"):
            operands = [first]
            while self._accept("??"):
                operands.append(self._binary(0))
            node: _Node = _ShortCircuit(tuple(operands), _is_set)
        else:
            node = self._logical_or(first)
        if self._at("??") or self._at("&&") or self._at("||"):
            # JavaScript refuses `a ?? b || c` too: the reading would be ambiguous.
            raise self._error("'??' cannot be mixed with '&&' or '||' without parentheses")
        return node

    def _logical_or(self, first: _Node) -> _Node:
        terms = [self._logical_and(first)]
        while self._accept("||"):
            terms.append(self._logical_and(self._binary(0)))
        return terms[0] if len(terms) == 1 else _ShortCircuit(tuple(terms), truthy)

    def _logical_and(self, first: _Node) -> _Node:
        terms = [first]
        while self._accept("&&"):
            terms.append(self._binary(0))
        return terms[0] if len(terms) == 1 else _ShortCircuit(tuple(terms), _falsy)

    def _binary(self, level: int) -> _Node:
        """Equality, relational, additive, multiplicative: left-associative chains."""
        if level == len(_BINARY_LEVELS):
            return self._unary()
        operators = _BINARY_LEVELS[level]
        first = self._binary(level + 1)
        rest = []
        while self._peek().kind == "punct" and self._peek().value in operators:
            apply = operators[self._next().value]
            rest.append((apply, self._binary(level + 1)))
        return _Binary(first, tuple(rest)) if rest else first

    def _unary(self) -> _Node:
        token = self._peek()
        if token.kind != "punct" or token.value not in _UNARY:
            return self._member()
        self._next()
        self._enter()
        try:
            return _Unary(_UNARY[token.value], self._unary())
        finally:
            self.depth -= 1

    def _member(self) -> _Node:
        base = self._primary()
        steps: list[_Step] = []
        while True:
            if self._accept("."):
                steps.append(_Step(self._property_name(), False))
            elif self._accept("?."):
                steps.append(self._optional_step())
            elif self._accept("["):
                steps.append(_Step(self._bracketed_key(), False))
            elif self._at("("):
                raise self._error("function calls are not allowed")
            else:
                return _Member(base, tuple(steps)) if steps else base

    def _optional_step(self) -> _Step:
        if self._accept("["):
            return _Step(self._bracketed_key(), True)
        if self._at("("):
            raise self._error("function calls are not allowed")
        return _Step(self._property_name(), True)

    def _bracketed_key(self) -> _Node:
        key = self._expression()
        self._expect("]")
        return key

    def _property_name(self) -> str:
        token = self._next()
        if token.kind != "name":  # any identifier name, reserved words included: `a.new`
            raise _fail(self.text, token.pos, "expected a property name")
        return str(token.value)

    def _primary(self) -> _Node:
        token = self._next()
        if token.kind in ("number", "string"):
            return _Literal(token.value)
        if token.kind == "name":
            return self._name(token)
        if token.kind == "punct" and token.value == "(":
            inner = self._expression()
            self._expect(")")
            return inner
        if token.kind == "punct" and token.value == "[":
            raise _fail(self.text, token.pos, "array literals are not supported")
        raise self._unexpected(token)

    def _name(self, token: _Token) -> _Node:
        if token.value in _KEYWORD_VALUES:
            return _Literal(_KEYWORD_VALUES[token.value])
        if token.value in _RESERVED_WORDS:
            raise _fail(self.text, token.pos, f"'{token.value}' is not supported")
        return _Name(token.value)

    # -- token helpers

    def _peek(self) -> _Token:
        return self.current

    def _next(self) -> _Token:
        token = self.current
        if token.kind != "end":
            self.current = next(self.tokens)
        return token

    def _at(self, symbol: str) -> bool:
        token = self._peek()
        return token.kind == "punct" and token.value == symbol

    def _accept(self, symbol: str) -> bool:
        if self._at(symbol):
            self._next()
            return True
        return False

    def _expect(self, symbol: str) -> None:
        if not self._accept(symbol):
            token = self._peek()
            found = "the end" if token.kind == "end" else repr(self.text[token.pos : token.end])
            raise _fail(self.text, token.pos, f"expected '{symbol}' but found {found}")

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            raise self._error(f"nested deeper than {MAX_NESTING_DEPTH} levels")

    def _error(self, message: str) -> ExpressionError:
        return _fail(self.text, self._peek().pos, message)

    def _unexpected(self, token: _Token) -> ExpressionError:
        if token.kind == "end":
            return _fail(self.text, token.pos, "unexpected end of expression")
        if token.kind == "name" and token.value in _RESERVED_WORDS:
            return _fail(self.text, token.pos, f"'{token.value}' is not supported")
        return _fail(self.text, token.pos, f"unexpected {self.text[token.pos : token.end]!r}")


# --- public API -----------------------------------------------------------------------------


class Expression:
    """A compiled expression. `evaluate` never raises: what fails at run time is undefined."""

    __slots__ = ("text", "is_property_path", "_root")

    def __init__(self, text: str, root: _Node, is_property_path: bool) -> None:
        self.text = text
        self.is_property_path = is_property_path  # evaluated exactly as TS's PropertyEvaluator
        self._root = root

    def evaluate(self, scope: dict[str, Any]) -> Any:
        if not isinstance(scope, dict):
            return UNDEFINED
        try:
            return self._root.evaluate(scope)
        except _JsThrow:
            return UNDEFINED

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def compile_expression(text: str) -> Expression:
    """Parse `text` once, at blueprint load. Raises ExpressionError saying what and where.

    A property path (`[A-Za-z0-9_$.]+`, e.g. `result.output.ok`, `items.0`, `123start`)
    takes TS's PropertyEvaluator route even where JavaScript would read it differently
    (`true`, `1.5`): that keeps every TS blueprint's result. Anything else is the subset.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be a string, not {type(text).__name__}")
    if _PROPERTY_PATH.fullmatch(text):
        literal = _literal(text)
        if literal is not None:
            return literal
        return Expression(text, _PropertyPath(tuple(text.split("."))), is_property_path=True)
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise _fail(text, MAX_EXPRESSION_LENGTH, f"longer than {MAX_EXPRESSION_LENGTH} characters")
    if not text.strip():
        raise _fail(text, 0, "the expression is empty")
    return Expression(text, _Parser(text).parse(), is_property_path=False)


def _literal(text: str) -> Expression | None:
    """`true`, `false`, `null` and numbers are literals, as in JavaScript, not context keys
    (so a loop's `condition: "true"` holds); TS's PropertyEvaluator reads them as keys. Text
    JavaScript does not read as a number (`00`) stays a property path."""
    if text not in _KEYWORD_VALUES and not _NUMBER.fullmatch(text):
        return None
    try:
        return Expression(text, _Parser(text).parse(), is_property_path=False)
    except ExpressionError:
        return None


def _compile_or_message(text: str) -> Expression | str:
    """compile_expression for a cache: an error is kept as its message, not its traceback."""
    try:
        return compile_expression(text)
    except ExpressionError as exc:
        return str(exc)


class DefaultEvaluator:
    """The runtime's default evaluator: TS property paths plus the safe JavaScript subset."""

    def __init__(self, cache_size: int = COMPILE_CACHE_SIZE) -> None:
        # lru_cache is bounded and thread-safe; compiling is pure, so caching is exact.
        self._compile = functools.lru_cache(maxsize=cache_size)(_compile_or_message)

    def validate(self, expression: str) -> None:
        """Raise ExpressionError if `expression` cannot be compiled."""
        compiled = self._compiled(expression)
        if isinstance(compiled, str):
            raise ExpressionError(compiled)

    def evaluate(self, expression: str, scope: dict[str, Any]) -> Any:
        """The expression's value; undefined if it does not compile (TS returns undefined)."""
        compiled = self._compiled(expression)
        if isinstance(compiled, str):
            logger.debug("%s; its value is undefined", compiled)
            return UNDEFINED
        return compiled.evaluate(scope)

    def _compiled(self, expression: str) -> Expression | str:
        if not isinstance(expression, str):
            return f"an expression must be a string, not {type(expression).__name__}"
        return self._compile(expression)


class PropertyEvaluator:
    """TS's default evaluator exactly (spec §5.1): dotted paths, nothing else."""

    def validate(self, expression: str) -> None:
        """Accept anything: TS's PropertyEvaluator returns undefined for what it cannot read."""

    def evaluate(self, expression: str, scope: dict[str, Any]) -> Any:
        return property_evaluate(expression, scope)
