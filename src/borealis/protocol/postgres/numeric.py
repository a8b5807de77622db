"""Exact arithmetic for translated SQL: PostgreSQL's numeric, int and float operators as
SQLite functions, chosen by the values they are given.

Borealis stores numeric values as their exact decimal text ('1.50', see ``types``), which
SQLite's own ``+``, ``SUM`` and ``AVG`` would read as floats and round. The translator
(``rewrite``) does not know a column's type, so every arithmetic operator whose operands are
not known to be integers or floats becomes one of these functions, and each decides from the
values: integers stay integers (PostgreSQL's integer division, overflow refused with 22003),
a float makes the result a float, and anything else is a ``decimal.Decimal`` with
PostgreSQL's result scale (``select_div_scale`` for division, rounding half away from zero)
returned as numeric text. Temporal operands (dates, timestamps, intervals in their storage
text) are handed to ``temporal``.

The same values must compare and sort as numbers: ``NUMERIC_COLLATION`` is the collation the
translator declares on numeric columns (so that ``'10.5' > '9'``, ``ORDER BY``, ``MIN``,
indexes and UNIQUE see numbers, and '1.0' equals '1.00'), and ``compare`` is the comparison
of expressions that may be numeric text.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from borealis.errors import BorealisError
from borealis.protocol.postgres import exprtypes
from borealis.protocol.postgres.types import decimal_text as numeric_text

NUMERIC_COLLATION = "_pg_numeric"
"""The collation of numeric columns: numeric text compares as numbers."""

INT8_MIN, INT8_MAX = -(2**63), 2**63 - 1
NUMERIC_MIN_SIG_DIGITS = 16
NUMERIC_MAX_DISPLAY_SCALE = 1000
DEC_DIGITS = 4  # PostgreSQL's numeric digits are base 10000

_CONTEXT = decimal.Context(prec=140_000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                           traps=[decimal.InvalidOperation, decimal.DivisionByZero])
"""Wide enough that numeric addition and multiplication are exact (PostgreSQL's numeric has
at most 131072 digits before the point and 16383 after)."""

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_SPECIAL = {"nan": Decimal("NaN"), "infinity": Decimal("Infinity"), "inf": Decimal("Infinity"),
            "+infinity": Decimal("Infinity"), "-infinity": Decimal("-Infinity"),
            "-inf": Decimal("-Infinity")}


class SqlFunctionError(BorealisError):
    """An error raised inside an SQL function of a translated statement (here and in the
    other runtime modules: ``temporal``, ``jsonops``, ``functions``, ``session``), with the
    SQLSTATE PostgreSQL sends for it."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def division_by_zero() -> SqlFunctionError:
    return SqlFunctionError("division by zero", "22012")


def decimal_of(value: Any) -> Decimal | None:
    """A numeric operand as a Decimal; None when it is not a number or numeric text."""
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal(str(value))
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return Decimal(value.strip())
        return _SPECIAL.get(value.strip().lower())
    return None


def is_numeric_text(value: Any) -> bool:
    return isinstance(value, str) and decimal_of(value) is not None


def dscale(number: Decimal) -> int:
    """The display scale: digits after the point as the value shows them."""
    exponent = number.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _int8(value: int) -> int:
    if not INT8_MIN <= value <= INT8_MAX:
        raise SqlFunctionError("bigint out of range", "22003")
    return value


def _checked_float(value: float) -> float:
    if math.isinf(value):
        raise SqlFunctionError("value out of range: overflow", "22003")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


# --- the operators ---------------------------------------------------------------------------

def _binary(a: Any, b: Any, on_int: Callable[[int, int], Any],
            on_float: Callable[[float, float], float],
            on_decimal: Callable[[Decimal, Decimal], Decimal],
            temporal: Callable[[Any, Any], Any] | None) -> Any:
    if a is None or b is None:
        return None
    if _is_int(a) and _is_int(b):
        return on_int(int(a), int(b))
    if isinstance(a, float | int) and isinstance(b, float | int):
        return _checked_float(on_float(float(a), float(b)))
    x, y = decimal_of(a), decimal_of(b)
    if x is not None and y is not None:
        if isinstance(a, float) or isinstance(b, float):
            return _checked_float(on_float(float(x), float(y)))
        return numeric_text(on_decimal(x, y))
    if temporal is not None:
        return temporal(a, b)
    raise SqlFunctionError(f"operator does not exist for {_kind(a)} and {_kind(b)}", "42883")


def _kind(value: Any) -> str:
    return {int: "integer", float: "double precision", str: "text", bytes: "bytea"}.get(
        type(value), type(value).__name__)


def _temporal(name: str) -> Callable[[Any, Any], Any]:
    def run(a: Any, b: Any) -> Any:
        from borealis.protocol.postgres import temporal
        return temporal.arithmetic(name, a, b)
    return run


def add(a: Any, b: Any) -> Any:
    return _binary(a, b, lambda x, y: _int8(x + y), lambda x, y: x + y,
                   lambda x, y: _CONTEXT.add(x, y), _temporal("+"))


def subtract(a: Any, b: Any) -> Any:
    return _binary(a, b, lambda x, y: _int8(x - y), lambda x, y: x - y,
                   lambda x, y: _CONTEXT.subtract(x, y), _temporal("-"))


def multiply(a: Any, b: Any) -> Any:
    return _binary(a, b, lambda x, y: _int8(x * y), lambda x, y: x * y,
                   lambda x, y: _CONTEXT.multiply(x, y), _temporal("*"))


def _int_divide(x: int, y: int) -> int:
    if y == 0:
        raise division_by_zero()
    quotient = abs(x) // abs(y)
    return _int8(quotient if (x >= 0) == (y >= 0) else -quotient)


def _float_divide(x: float, y: float) -> float:
    if y == 0:
        raise division_by_zero()
    return x / y


def divide(a: Any, b: Any) -> Any:
    return _binary(a, b, _int_divide, _float_divide, decimal_divide, _temporal("/"))


def _int_modulo(x: int, y: int) -> int:
    """C's %: the sign of the dividend."""
    if y == 0:
        raise division_by_zero()
    remainder = abs(x) % abs(y)
    return remainder if x >= 0 else -remainder


def _decimal_modulo(x: Decimal, y: Decimal) -> Decimal:
    if y.is_zero():
        raise division_by_zero()
    return _CONTEXT.remainder(x, y)  # the sign of the dividend, as PostgreSQL's mod_var


def modulo(a: Any, b: Any) -> Any:
    return _binary(a, b, _int_modulo, lambda x, y: math.fmod(x, y) if y else _raise_zero(),
                   _decimal_modulo, None)


def _raise_zero() -> float:
    raise division_by_zero()


INT2_MAX, INT4_MAX = 2**15 - 1, 2**31 - 1


class NarrowIntegers:
    """The integer operators with PostgreSQL's int2 and int4 overflow.

    PostgreSQL computes ``int4 + int4`` in int4 and refuses a result beyond it (22003);
    Borealis' integers are SQLite's 64-bit ones, and a column's width is in the schema,
    not in the value. The translator passes each operator whose result may be a narrow
    integer its ``exprtypes.int_check``: the narrowest width it may have and its type
    formula. A result within that width is returned at once (the common case costs one
    comparison); beyond it, the formula is evaluated against the schema (``columns``), and
    the result is refused if PostgreSQL's type for it is narrower than the value.
    """

    def __init__(self, formula_type: Callable[[str], int]) -> None:
        self.formula_type = formula_type  # an encoded formula's type oid, from the schema

    def _checked(self, value: Any, check: str) -> Any:
        if value.__class__ is int:
            bound = INT2_MAX if check[0] == "2" else INT4_MAX
            if value > bound or value < -bound - 1:
                self._refuse_if_narrow(_int8(value), check)
        return value

    def _refuse_if_narrow(self, value: int, check: str) -> None:
        oid = self.formula_type(check[1:])
        if oid == exprtypes.INT2 and not -INT2_MAX - 1 <= value <= INT2_MAX:
            raise SqlFunctionError("smallint out of range", "22003")
        if oid == exprtypes.INT4 and not -INT4_MAX - 1 <= value <= INT4_MAX:
            raise SqlFunctionError("integer out of range", "22003")

    # two integers are the common case (pgbench's balance + delta): computed here, the
    # others as ``add``/``subtract``/``multiply`` do

    def add(self, a: Any, b: Any, check: str) -> Any:
        if a.__class__ is int and b.__class__ is int:
            return self._checked(a + b, check)
        return self._checked(add(a, b), check)

    def subtract(self, a: Any, b: Any, check: str) -> Any:
        if a.__class__ is int and b.__class__ is int:
            return self._checked(a - b, check)
        return self._checked(subtract(a, b), check)

    def multiply(self, a: Any, b: Any, check: str) -> Any:
        if a.__class__ is int and b.__class__ is int:
            return self._checked(a * b, check)
        return self._checked(multiply(a, b), check)

    def divide(self, a: Any, b: Any, check: str) -> Any:
        return self._checked(divide(a, b), check)  # MIN / -1

    def negate(self, a: Any, check: str) -> Any:
        return self._checked(negate(a), check)


def negate(a: Any) -> Any:
    if a is None:
        return None
    if _is_int(a):
        return _int8(-int(a))
    if isinstance(a, float):
        return -a
    number = decimal_of(a)
    if number is not None:
        return numeric_text(-number if not number.is_zero() else number)
    from borealis.protocol.postgres import temporal
    return temporal.negate(a)


def _weight_and_first_digit(number: Decimal) -> tuple[int, int]:
    """The weight (in base-10000 digits) and first base-10000 digit of a nonzero value, as
    PostgreSQL's NumericVar holds it; (0, 0) for zero."""
    if number.is_zero():
        return 0, 0
    weight = number.adjusted() // DEC_DIGITS
    first = int(abs(number).scaleb(-DEC_DIGITS * weight, _CONTEXT))
    return weight, first


def division_scale(x: Decimal, y: Decimal) -> int:
    """PostgreSQL's select_div_scale: the result scale of numeric division."""
    weight1, first1 = _weight_and_first_digit(x)
    weight2, first2 = _weight_and_first_digit(y)
    quotient_weight = weight1 - weight2
    if first1 <= first2:
        quotient_weight -= 1
    scale = NUMERIC_MIN_SIG_DIGITS - quotient_weight * DEC_DIGITS
    scale = max(scale, dscale(x), dscale(y), 0)
    return min(scale, NUMERIC_MAX_DISPLAY_SCALE)


def round_half_away(value: Fraction, scale: int) -> Decimal:
    """``value`` rounded half away from zero to ``scale`` digits after the point."""
    scaled = value * Fraction(10) ** scale
    magnitude = abs(scaled)
    whole = magnitude.numerator // magnitude.denominator
    if (magnitude - whole) * 2 >= 1:
        whole += 1
    result = Decimal(-whole if scaled < 0 else whole).scaleb(-scale, _CONTEXT)
    return result


def decimal_divide(x: Decimal, y: Decimal) -> Decimal:
    if y.is_zero():
        raise division_by_zero()
    if x.is_nan() or y.is_nan():
        return Decimal("NaN")
    if x.is_infinite() or y.is_infinite():
        if x.is_infinite() and y.is_infinite():
            return Decimal("NaN")
        return Decimal(0) if y.is_infinite() else x if y > 0 else -x
    scale = division_scale(x, y)
    return round_half_away(Fraction(x) / Fraction(y), scale)


def compare(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 as PostgreSQL compares two values of which one may be numeric text; NULL
    when either is NULL. Non-numeric text compares as text (C collation: code points)."""
    if a is None or b is None:
        return None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return (a > b) - (a < b)
    x, y = decimal_of(a), decimal_of(b)
    if x is not None and y is not None:
        return _compare_decimals(x, y)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    if isinstance(a, bytes) and isinstance(b, bytes):
        return (a > b) - (a < b)
    # SQLite's order of storage classes: numbers, text, blobs
    rank = {int: 0, float: 0, str: 1, bytes: 2}
    return (rank.get(type(a), 3) > rank.get(type(b), 3)) - (
        rank.get(type(a), 3) < rank.get(type(b), 3))


def _compare_decimals(x: Decimal, y: Decimal) -> int:
    if x.is_nan() or y.is_nan():  # NaN is above every number and equal to itself
        return int(x.is_nan()) - int(y.is_nan())
    return (x > y) - (x < y)


def collate(a: str, b: str) -> int:
    """``NUMERIC_COLLATION``: numeric text as numbers, anything else as text."""
    x, y = decimal_of(a), decimal_of(b)
    if x is not None and y is not None:
        return _compare_decimals(x, y)
    return (a > b) - (a < b)


# --- functions -------------------------------------------------------------------------------

def _unary(value: Any, on_int: Callable[[int], Any], on_float: Callable[[float], Any],
           on_decimal: Callable[[Decimal], Decimal]) -> Any:
    if value is None:
        return None
    if _is_int(value):
        return on_int(int(value))
    if isinstance(value, float):
        return on_float(value)
    number = decimal_of(value)
    if number is None:
        raise SqlFunctionError(f"function does not exist for {_kind(value)}", "42883")
    if number.is_nan() or number.is_infinite():
        return numeric_text(number)
    return numeric_text(on_decimal(number))


def absolute(value: Any) -> Any:
    return _unary(value, lambda x: _int8(abs(x)), abs, abs)


def sign(value: Any) -> Any:
    return _unary(value, lambda x: (x > 0) - (x < 0), lambda x: float((x > 0) - (x < 0)),
                  lambda x: Decimal((x > 0) - (x < 0)))


def floor(value: Any) -> Any:
    return _unary(value, lambda x: x, lambda x: float(math.floor(x)),
                  lambda x: x.to_integral_value(decimal.ROUND_FLOOR, _CONTEXT))


def ceiling(value: Any) -> Any:
    return _unary(value, lambda x: x, lambda x: float(math.ceil(x)),
                  lambda x: x.to_integral_value(decimal.ROUND_CEILING, _CONTEXT))


def _scaled(number: Decimal, digits: int, rounding: str) -> Decimal:
    quantum = Decimal(1).scaleb(-digits)
    result = number.quantize(quantum, rounding, _CONTEXT)
    return result if digits >= 0 else result.quantize(Decimal(1), context=_CONTEXT)


def round_value(value: Any, digits: Any = None) -> Any:
    """round(x) and round(numeric, n): half away from zero for numeric, rint (half to
    even) for float8, as PostgreSQL."""
    if value is None:
        return None
    if digits is None:
        return _unary(value, lambda x: x, lambda x: float(round(x)),
                      lambda x: _scaled(x, 0, decimal.ROUND_HALF_UP))
    if not isinstance(digits, int):
        raise SqlFunctionError("round(numeric, integer) needs an integer scale", "42883")
    number = decimal_of(value)
    if number is None:
        raise SqlFunctionError(f"function round does not exist for {_kind(value)}", "42883")
    if number.is_nan() or number.is_infinite():
        return numeric_text(number)
    return numeric_text(_scaled(number, digits, decimal.ROUND_HALF_UP))


def truncate(value: Any, digits: Any = None) -> Any:
    if value is None:
        return None
    if digits is None:
        return _unary(value, lambda x: x, lambda x: float(math.trunc(x)),
                      lambda x: _scaled(x, 0, decimal.ROUND_DOWN))
    number = decimal_of(value)
    if number is None or not isinstance(digits, int):
        raise SqlFunctionError("trunc(numeric, integer) needs numbers", "42883")
    if number.is_nan() or number.is_infinite():
        return numeric_text(number)
    return numeric_text(_scaled(number, digits, decimal.ROUND_DOWN))


def float_function(name: str, function: Callable[..., float]) -> Callable[..., Any]:
    """sqrt, exp, ln, power...: float8 for integer and float arguments; refused for numeric
    ones, whose PostgreSQL results have digits a float cannot reproduce."""
    def run(*args: Any) -> Any:
        if any(a is None for a in args):
            return None
        values = []
        for a in args:
            if isinstance(a, bool | int | float):
                values.append(float(a))
            else:
                raise SqlFunctionError(f"{name}() of a numeric value is not supported by Borealis",
                                   "0A000")
        try:
            return _checked_float(function(*values))
        except ValueError:
            raise SqlFunctionError(f"cannot take {name}() of this value", "2201F") from None
        except OverflowError:
            raise SqlFunctionError("value out of range: overflow", "22003") from None
    return run


def greatest(*values: Any) -> Any:
    """greatest(): NULLs are ignored (SQLite's max() of several arguments returns NULL)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    best = present[0]
    for value in present[1:]:
        if compare(value, best) == 1:
            best = value
    return best


def least(*values: Any) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    best = present[0]
    for value in present[1:]:
        if compare(value, best) == -1:
            best = value
    return best


# --- aggregates ------------------------------------------------------------------------------

class Sum:
    """sum(): integers stay integers (PostgreSQL's bigint or numeric result has the same
    value), numeric is exact with the largest scale seen, a float makes it a float. Also a
    window function (``inverse`` takes a row out of the frame)."""

    def __init__(self) -> None:
        self.total: int | float | Decimal = 0
        self.count = 0

    def _add(self, value: Any, sign: int) -> None:
        total = self.total
        if isinstance(value, bool | int) and isinstance(total, int):
            self.total = total + sign * int(value)
        elif isinstance(value, float) or isinstance(total, float):
            number = value if isinstance(value, float) else decimal_of(value)
            if number is None:
                raise SqlFunctionError(f"function sum does not exist for {_kind(value)}",
                                       "42883")
            self.total = float(total) + sign * float(number)
        else:
            number = decimal_of(value)
            if number is None:
                raise SqlFunctionError(f"function sum does not exist for {_kind(value)}",
                                       "42883")
            base = total if isinstance(total, Decimal) else Decimal(total)
            self.total = _CONTEXT.add(base, number) if sign > 0 else _CONTEXT.subtract(
                base, number)

    def step(self, value: Any) -> None:
        if value is not None:
            self._add(value, 1)
            self.count += 1

    def inverse(self, value: Any) -> None:
        if value is not None:
            self._add(value, -1)
            self.count -= 1

    def value(self) -> Any:
        if self.count == 0:
            return None
        total = self.total
        if isinstance(total, Decimal):
            return numeric_text(total)
        if isinstance(total, int) and not INT8_MIN <= total <= INT8_MAX:
            return str(total)
        return total

    final = value


class Avg(Sum):
    """avg(): numeric for integer and numeric input (sum / count with numeric division's
    scale), float8 for float input."""

    def value(self) -> Any:
        if self.count == 0:
            return None
        total = self.total
        if isinstance(total, float):
            return total / self.count
        number = total if isinstance(total, Decimal) else Decimal(total)
        return numeric_text(decimal_divide(number, Decimal(self.count)))

    final = value


