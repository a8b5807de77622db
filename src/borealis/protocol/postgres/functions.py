"""The SQL functions, aggregates, collation and set-returning tables that translated
statements call, registered on each session's SQLite connection (``register``).

The translator (``rewrite``) writes PostgreSQL's meaning as calls to ``_pg_*`` functions
wherever SQLite's own would differ; this module is the other half of that contract and
holds the functions that need no session state (``session`` registers those that do:
``now()``, settings, sequences). Arithmetic is in ``numeric`` and ``temporal``, JSON
operators in ``jsonops``; here are casts (``_pg_cast``), the coercion of a literal to the
type of the column it is assigned to or compared with (``_pg_coerce``: PostgreSQL types an
unknown literal by its context, which only the schema knows, so it is looked up when the
statement runs), arrays (subscripts, ``array_agg``, bounds), string functions with
PostgreSQL's edge cases, and the set-returning functions as eponymous virtual tables
(``generate_series``, ``unnest``, ``generate_subscripts``).

Arrays are JSON text (``types``); ``int2vector`` and ``oidvector`` (``pg_index.indkey``)
are the same JSON but their subscripts start at 0, so the array functions take the lower
bound the translator found for their operand.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import math
import random
import re
import threading
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import apsw

from borealis.protocol.postgres import exprtypes, formatting, jsonops, numeric, temporal
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.numeric import SqlFunctionError, decimal_of, numeric_text

__all__ = ["SqlFunctionError", "cast_value", "coerce_value", "register"]

SERIES_ROWS_MAX = 100_000_000
"""Rows one generate_series may produce (a runaway series must not hold a session)."""

_INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}
_INT_NAMES = {"int2": "smallint", "int4": "integer", "int8": "bigint"}
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name"})
_NUMBER_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8", "numeric"})


# --- casts and coercion ----------------------------------------------------------------------

def cast_value(value: Any, oid: int, typmod: int, from_text: int = 0) -> Any:
    """``value::type`` with PostgreSQL's meaning, from and to the storage forms.
    ``from_text``: the value is a string literal as written (its text is the type's input,
    so '1.5'::int is an error), not a value (1.5::int is 2)."""
    if value is None:
        return None
    target = pgtypes.BY_OID.get(int(oid))
    if target is None:
        raise SqlFunctionError(f"cast to the type with oid {oid} is not supported", "0A000")
    try:
        if isinstance(value, str) and from_text:
            stored = pgtypes.decode_text(target, value.encode())
        else:
            stored = _convert(value, target)
        return _apply_typmod(stored, target, int(typmod), explicit=True)
    except pgtypes.PgValueError as exc:
        raise SqlFunctionError(str(exc), exc.sqlstate) from None


def _convert(value: Any, target: pgtypes.PgType) -> Any:
    """A storage value of some type as a storage value of ``target`` (value semantics)."""
    name = target.name
    if isinstance(value, bool):
        value = int(value)
    if target.is_array:
        return _convert_array(value, target)
    if isinstance(value, str):
        number = decimal_of(value) if name in _NUMBER_TYPES or name == "bool" else None
        if number is not None and not number.is_nan() and not number.is_infinite():
            return _convert_number(number, value, target)
        return pgtypes.decode_text(target, value.encode())
    if isinstance(value, int):
        if name in _INT_RANGES:
            return _int_in_range(value, name)
        if name in ("float4", "float8"):
            return float(value)
        if name == "numeric":
            return str(value)
        if name == "bool":
            return 1 if value else 0
        if name in _TEXT_TYPES:
            return str(value)
        if name in ("oid", "regclass", "regtype", "regproc", "regnamespace", "regrole"):
            return value
        return pgtypes.decode_text(target, str(value).encode())
    if isinstance(value, float):
        if name in _INT_RANGES:
            if math.isnan(value) or math.isinf(value):
                raise SqlFunctionError(f"{_INT_NAMES[name]} out of range", "22003")
            return _int_in_range(round(value), name)  # half to even, as PostgreSQL's rint()
        if name in ("float4", "float8"):
            return value
        text = pgtypes.encode_text(pgtypes.BY_NAME["float8"], value)
        assert text is not None
        if name == "numeric":  # float8 to numeric keeps 15 significant digits
            return numeric_text(Decimal(f"{value:.15g}")) if math.isfinite(value) else \
                text.decode()
        return pgtypes.decode_text(target, text)
    if isinstance(value, bytes):
        if name == "bytea":
            return value
        if name in _TEXT_TYPES:
            text = pgtypes.encode_text(pgtypes.BY_NAME["bytea"], value)
            assert text is not None
            return text.decode()
    raise SqlFunctionError(f"cannot cast this value to {pgtypes.format_type(target.oid, -1)}",
                           "42846")


def _convert_number(number: Decimal, text: str, target: pgtypes.PgType) -> Any:
    name = target.name
    if name in _INT_RANGES:  # numeric to integer rounds half away from zero
        return _int_in_range(int(number.quantize(Decimal(1), ROUND_HALF_UP)), name)
    if name in ("float4", "float8"):
        return float(number)
    if name == "numeric":
        return numeric_text(number)
    if name == "bool":
        if number != number.to_integral_value():
            raise SqlFunctionError(f'invalid input syntax for type boolean: "{text}"', "22P02")
        return 1 if number else 0
    return pgtypes.decode_text(target, text.encode())


def _int_in_range(value: int, name: str) -> int:
    if not -_INT_RANGES[name] <= value < _INT_RANGES[name]:
        raise SqlFunctionError(f"{_INT_NAMES[name]} out of range", "22003")
    return value


def _convert_array(value: Any, target: pgtypes.PgType) -> Any:
    """An array cast: the storage JSON element by element, or PostgreSQL's array text."""
    if not isinstance(value, str):
        raise SqlFunctionError(f"cannot cast this value to {target.name}", "42846")
    stripped = value.lstrip()
    if not stripped.startswith("["):
        return pgtypes.decode_text(target, value.encode())
    try:
        items = json.loads(value)
    except ValueError:
        return pgtypes.decode_text(target, value.encode())
    if not isinstance(items, list):
        return pgtypes.decode_text(target, value.encode())
    element = pgtypes.BY_OID[target.elem_oid]

    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(i) for i in item]
        if item is None:
            return None
        stored = _convert(item, element)
        if isinstance(stored, bytes):
            return "\\x" + stored.hex()
        return stored

    return json.dumps(convert(items), ensure_ascii=False, separators=(",", ":"))


def _apply_typmod(value: Any, target: pgtypes.PgType, typmod: int, *, explicit: bool) -> Any:
    if typmod < 0 or value is None:
        return value
    return pgtypes.coerce_to_typmod(target, typmod, value, explicit=explicit)


def coerce_value(value: Any, target: pgtypes.PgType, typmod: int, kind: str) -> Any:
    """A literal or value assigned to (or compared with) a column of ``target``'s type, as
    PostgreSQL's assignment coercion gives it: ``kind`` 's' for a string literal (the
    type's input), 'n' for a number, 'v' for the value of an expression."""
    if value is None:
        return None
    try:
        if isinstance(value, str) and kind == "s":
            stored = pgtypes.decode_text(target, value.encode())
        elif isinstance(value, str) and target.name not in _NUMBER_TYPES and \
                target.name != "bool" and not target.is_array:
            stored = pgtypes.decode_text(target, value.encode())  # a storage form reads back
        else:
            stored = _convert(value, target)
        return _apply_typmod(stored, target, typmod, explicit=False)
    except pgtypes.PgValueError as exc:
        raise SqlFunctionError(str(exc), exc.sqlstate) from None


def identity_refusal(verb: str, column: str) -> SqlFunctionError:
    """PostgreSQL's refusal of a value for an identity column GENERATED ALWAYS."""
    if verb == "UPDATE":
        return SqlFunctionError(f'column "{column}" can only be updated to DEFAULT', "428C9")
    return SqlFunctionError(f'cannot insert a non-DEFAULT value into column "{column}": it is '
                            f"an identity column defined as GENERATED ALWAYS (use OVERRIDING "
                            f"SYSTEM VALUE to override)", "428C9")


@functools.lru_cache(maxsize=256)
def _identity_check(check: str) -> tuple[str, ...]:
    decoded = json.loads(check)
    assert isinstance(decoded, list) and decoded, check
    return tuple(str(item) for item in decoded)


def check_identity(conn: apsw.Connection, verb: str, table: str, given: tuple[str, ...]) -> None:
    """Refuse (428C9) a statement that gives a value to an identity column GENERATED ALWAYS
    of ``table`` (``given``: its columns by name, '#position' or '*' for all)."""
    _ColumnTypes(conn).check_identity(json.dumps([verb, *given]), table)


class _ColumnTypes:
    """The PostgreSQL type of each column of the connection's tables, read from their
    declared types and forgotten when the schema changes."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.version_cursor = conn.cursor()  # reused: half the cost of conn.execute
        self.version = -1
        self.tables: dict[str, list[tuple[str, str | None]]] = {}
        self.always: dict[str, list[str]] = {}  # identity columns GENERATED ALWAYS
        self.formulas: dict[str, int] = {}  # exprtypes.encode text -> its type oid
        self.formulas_version = -1

    def schema_version(self) -> int:
        version = self.version_cursor.execute("PRAGMA main.schema_version").get
        assert isinstance(version, int), version
        return version

    def _columns(self, table: str) -> list[tuple[str, str | None]]:
        version = self.schema_version()
        if version != self.version:
            self.tables.clear()
            self.always.clear()
            self.version = version
        columns = self.tables.get(table)
        if columns is None:
            columns, sequenced = [], False
            for name, decltype, default, hidden in self.conn.execute(
                    "SELECT name, type, dflt_value, hidden FROM pragma_table_xinfo(?)",
                    (table,)):
                if not hidden:
                    columns.append((name, decltype))
                    sequenced = sequenced or "_pg_nextval(" in (default or "")
            self.tables[table] = columns
            self.always[table] = [owner for owner, in self.conn.execute(
                "SELECT owner_column FROM _borealis_sequences WHERE owner_table = ? AND "
                "identity = 'a'", (table,))] if sequenced else []
        return columns

    def type_of(self, table: str, column: str) -> tuple[pgtypes.PgType, int] | None:
        columns = self._columns(table)
        decltype: str | None = None
        if column.startswith("#"):
            position = int(column[1:])
            if position >= len(columns):
                return None
            decltype = columns[position][1]
        else:
            found = [d for n, d in columns if n == column] or [
                d for n, d in columns if n.lower() == column.lower()]
            if not found:
                return None
            decltype = found[0]
        return pgtypes.type_from_decltype(decltype) if decltype else None

    def formula_type(self, encoded: str) -> int:
        """The type oid of an ``exprtypes`` formula (its ``encode`` text) with the schema
        as it is now (remembered until the schema changes)."""
        version = self.schema_version()
        if version != self.formulas_version:
            self.formulas.clear()
            self.formulas_version = version
        oid = self.formulas.get(encoded)
        if oid is None:
            oid = self.formulas[encoded] = exprtypes.evaluate(
                exprtypes.decode(encoded), self.oid_of, untyped_param=exprtypes.UNKNOWN)[0]
        return oid

    def literal_as(self, value: Any, encoded: str) -> Any:
        """An untyped literal among CASE/COALESCE branches, as the branches' common type
        (``exprtypes.literal_branch_type``)."""
        if value is None:
            return None
        oid = self.formula_type(encoded)
        target = pgtypes.BY_OID.get(oid)
        if target is None or oid in (25, 1043, 1042, 19):
            return value
        try:
            return pgtypes.decode_text(target, str(value).encode())
        except pgtypes.PgValueError as exc:
            raise SqlFunctionError(str(exc), exc.sqlstate) from None

    def oid_of(self, table: str, column: str) -> tuple[int, int] | None:
        """A column's (type oid, typmod) (``exprtypes.Columns``)."""
        typed = self.type_of(table, column)
        return (typed[0].oid, typed[1]) if typed is not None else None

    def check_identity(self, check: str, table: str, *, fresh: bool = False) -> None:
        """Refuse a value for an identity column GENERATED ALWAYS (428C9): ``check`` is
        ``assignments.identity_kind``'s JSON (the verb, the columns given values).
        ``fresh``: the table's columns were just looked up for this value."""
        if not fresh:
            self._columns(table)
        always = self.always.get(table)
        if not always:
            return
        verb, *given = _identity_check(check)
        names = [n for n, _ in self.tables[table]]
        for column in given:
            if column == "*":
                named = always[0]
            elif column.startswith("#"):
                position = int(column[1:])
                named = names[position] if position < len(names) else ""
            else:
                named = next((a for a in always if a == column or a.lower() == column.lower()),
                             "")
            if named in always:
                raise identity_refusal(verb, named)

    def coerce(self, value: Any, kind: str, column: str, *tables: str) -> Any:
        if len(kind) > 1:  # the columns to check for identity: assignments.identity_kind
            table = str(tables[0])
            typed = self.type_of(table, str(column))  # the table's columns, looked up now
            self.check_identity(kind[1:], table, fresh=True)
            kind = kind[0]
            if value is None or kind == "-":
                return value
            return coerce_value(value, typed[0], typed[1], kind) if typed else value
        if value is None:
            return None
        for table in tables:
            typed = self.type_of(str(table), str(column))
            if typed is not None:
                return coerce_value(value, typed[0], typed[1], str(kind))
        return value


# --- arrays ----------------------------------------------------------------------------------

def parse_array(value: Any) -> list[Any]:
    """An array's elements from its storage form (JSON text)."""
    try:
        items = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        items = None
    if not isinstance(items, list):
        raise SqlFunctionError(f"malformed array: {str(value)[:60]!r}", "22P02")
    return items


def _sql_value(item: Any) -> Any:
    """An element as SQLite gets it: nested arrays as JSON text, JSON booleans as 1/0."""
    if isinstance(item, list):
        return json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    if isinstance(item, bool):
        return int(item)
    return item


def _index(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool | int):
        return int(value)
    number = decimal_of(value)
    if number is None or number.is_nan() or number.is_infinite():
        raise SqlFunctionError("array subscript must have type integer", "42804")
    return int(number.quantize(Decimal(1), ROUND_HALF_UP))


def subscript(array: Any, lower: int, *indexes: Any) -> Any:
    """``array[i][j]...``: NULL outside the bounds, as PostgreSQL."""
    if array is None:
        return None
    value: Any = parse_array(array)
    for raw in indexes:
        index = _index(raw)
        if index is None or not isinstance(value, list):
            return None
        position = index - int(lower)
        if not 0 <= position < len(value):
            return None
        value = value[position]
    return _sql_value(value)


def _dimension(array: Any, dimension: Any) -> list[Any] | None:
    """The items along ``dimension`` (1-based), or None when the array has no such one."""
    if array is None or dimension is None:
        return None
    items = parse_array(array)
    for _ in range(int(dimension) - 1):
        if not items or not isinstance(items[0], list):
            return None
        items = items[0]
    return items or None


def array_upper(array: Any, dimension: Any, lower: int = 1) -> int | None:
    items = _dimension(array, dimension)
    return None if items is None else len(items) + int(lower) - 1


def array_lower(array: Any, dimension: Any, lower: int = 1) -> int | None:
    items = _dimension(array, dimension)
    return None if items is None else int(lower)


def array_length(array: Any, dimension: Any) -> int | None:
    items = _dimension(array, dimension)
    return None if items is None else len(items)


def cardinality(array: Any) -> int | None:
    if array is None:
        return None
    return len(_flatten(parse_array(array)))


def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def array_position(array: Any, value: Any) -> int | None:
    if array is None:
        return None
    for index, item in enumerate(parse_array(array), start=1):
        if value is not None and (item == value or numeric.compare(item, value) == 0):
            return index
    return None


def array_to_string(array: Any, separator: Any, null: Any = None) -> str | None:
    if array is None or separator is None:
        return None
    parts = []
    for item in _flatten(parse_array(array)):
        if item is None:
            if null is not None:
                parts.append(str(null))
            continue
        parts.append(_element_text(item))
    return str(separator).join(parts)


def _element_text(item: Any) -> str:
    if isinstance(item, bool):
        return "t" if item else "f"
    if isinstance(item, float):
        text = pgtypes.encode_text(pgtypes.BY_NAME["float8"], item)
        return text.decode() if text is not None else repr(item)
    return str(item)


def _json_element(value: Any) -> Any:
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def array_json(values: list[Any]) -> str:
    return json.dumps([_json_element(v) for v in values], ensure_ascii=False,
                      separators=(",", ":"))


class _ArrayAgg:
    """array_agg(): NULL for no rows (SQLite's json_group_array gives '[]')."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def step(self, value: Any) -> None:
        self.values.append(value)

    def final(self) -> str | None:
        return array_json(self.values) if self.values else None


def array_concat(left: Any, right: Any) -> str | None:
    """``array || array`` (and an element at either end)."""
    if left is None:
        return right if right is None or _is_array_text(right) else array_json([right])
    if right is None:
        return left if _is_array_text(left) else array_json([left])
    items: list[Any] = []
    for side in (left, right):
        items.extend(parse_array(side) if _is_array_text(side) else [_json_element(side)])
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


def _is_array_text(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("[")


def array_from_query(values: list[Any]) -> str:
    return array_json(values)


# --- set-returning functions -------------------------------------------------------------------

def generate_series(start: Any, stop: Any, step: Any = None) -> Iterator[tuple[Any, int]]:
    """generate_series(start, stop[, step]) for integers, numeric and timestamps, with each
    row's ordinality (WITH ORDINALITY)."""
    for ordinality, (value,) in enumerate(_series(start, stop, step), start=1):
        yield value, ordinality


def _series(start: Any, stop: Any, step: Any) -> Iterator[tuple[Any]]:
    if start is None or stop is None or (step is None and _is_interval(start, stop)):
        return
    if isinstance(start, int) and isinstance(stop, int) and (step is None
                                                            or isinstance(step, int)):
        increment = 1 if step is None else int(step)
        if increment == 0:
            raise SqlFunctionError("step size cannot equal zero", "22023")
        count = max(0, (stop - start) // increment + 1)
        if count > SERIES_ROWS_MAX:
            raise SqlFunctionError(f"generate_series of more than {SERIES_ROWS_MAX} rows "
                                   "is not supported by Borealis", "54000")
        for value in range(start, stop + (1 if increment > 0 else -1), increment):
            yield (value,)
        return
    span = temporal.as_interval(step) if step is not None else None
    if step is not None and span is None and isinstance(step, str) and not \
            numeric.is_numeric_text(step):
        span = temporal.as_interval(pgtypes.decode_text(pgtypes.BY_NAME["interval"],
                                                        step.encode()))
    if span is not None:
        yield from _timestamp_series(start, stop, span)
        return
    first, last = decimal_of(start), decimal_of(stop)
    increment_value = decimal_of(step) if step is not None else Decimal(1)
    if first is None or last is None or increment_value is None:
        raise SqlFunctionError("generate_series needs numbers, or timestamps and an interval",
                               "42883")
    if increment_value.is_zero():
        raise SqlFunctionError("step size cannot equal zero", "22023")
    if any(v.is_nan() or v.is_infinite() for v in (first, last, increment_value)):
        raise SqlFunctionError("start, stop and step values cannot be NaN or infinity",
                               "22023")
    number: Decimal = first
    produced = 0
    while (number <= last) if increment_value > 0 else (number >= last):
        produced += 1
        if produced > SERIES_ROWS_MAX:
            raise SqlFunctionError("generate_series of too many rows is not supported by "
                                   "Borealis", "54000")
        yield (numeric_text(number),)
        number = number + increment_value


def _is_interval(*values: Any) -> bool:
    return any(temporal.as_interval(v) is not None for v in values)


def _instant(value: Any) -> dt.datetime:
    moment = temporal.as_timestamp(value)
    if moment is None:
        day = temporal.as_date(value)
        if day is not None:
            return dt.datetime.combine(day, dt.time())
        stored = pgtypes.decode_text(pgtypes.BY_NAME["timestamptz"], str(value).encode())
        moment = temporal.as_timestamp(stored)
    if moment is None:
        raise SqlFunctionError(f"invalid timestamp for generate_series: {value!r}", "22007")
    return moment


def _timestamp_series(start: Any, stop: Any, span: temporal.Interval) -> Iterator[tuple[Any]]:
    first, last = _instant(start), _instant(stop)
    if not (span.months or span.days or span.usec):
        raise SqlFunctionError("step size cannot equal zero", "22023")
    forward = temporal.add_interval(first, span) > first
    value, produced = first, 0
    while (value <= last) if forward else (value >= last):
        produced += 1
        if produced > SERIES_ROWS_MAX:
            raise SqlFunctionError("generate_series of too many rows is not supported by "
                                   "Borealis", "54000")
        yield (temporal.timestamp_text(value),)
        value = temporal.add_interval(value, span)


def unnest(array: Any) -> Iterator[tuple[Any, int]]:
    """unnest(array): every element of every dimension, with its ordinality."""
    if array is None:
        return
    for position, item in enumerate(_flatten(parse_array(array)), start=1):
        yield (_sql_value(item), position)


def generate_subscripts(array: Any, dimension: Any, reverse: Any = 0,
                        lower: Any = 1) -> Iterator[tuple[int, int]]:
    items = _dimension(array, dimension)
    if items is None:
        return
    subscripts = range(int(lower), int(lower) + len(items))
    for ordinality, value in enumerate(reversed(subscripts) if reverse else subscripts,
                                       start=1):
        yield value, ordinality


ROWS_FROM_FUNCTIONS_MAX = 32   # Django's bulk_create: unnest() of an array per field
ROWS_FROM_ARGUMENTS_MAX = 64


def rows_from(spec: Any, *arguments: Any) -> Iterator[tuple[Any, ...]]:
    """Several set-returning functions of one select list, in lockstep as PostgreSQL runs
    them: row i has each function's i-th value, NULL past the end of the shorter ones.
    ``spec`` names them with their argument counts: 'unnest:1,generate_subscripts:4'."""
    iterators = []
    position = 0
    for item in str(spec).split(","):
        name, count = item.split(":")
        args = arguments[position:position + int(count)]
        position += int(count)
        module = SET_RETURNING_TABLES[name]
        while len(args) > module.required and args[-1] is None:
            args = args[:-1]
        iterators.append(module.function(*args))
    ordinality = 0
    while True:
        row = [next(it, None) for it in iterators]
        if all(r is None for r in row):
            return
        ordinality += 1
        values = [r[0] if r is not None else None for r in row]
        values += [None] * (ROWS_FROM_FUNCTIONS_MAX - len(values))
        yield (*values, ordinality)


class TableFunction:
    """A set-returning function as an eponymous SQLite table-valued function: its output
    columns (``value``, ``ordinality``), its parameters as HIDDEN columns. A plan that
    cannot give every argument is refused, so that SQLite reads the tables the arguments
    come from first (``FROM t, generate_series(1, t.n)``: PostgreSQL's LATERAL)."""

    def __init__(self, function: Callable[..., Iterator[tuple[Any, ...]]],
                 parameters: tuple[str, ...], required: int,
                 columns: tuple[str, ...] = ("value", "ordinality")) -> None:
        self.function = function
        self.parameters = parameters
        self.required = required
        self.columns = columns

    def Connect(self, _connection: apsw.Connection, _module: str, _database: str,
                _table: str, *_args: str) -> tuple[str, _FunctionTable]:
        visible = ", ".join(f'"{c}"' for c in self.columns)
        hidden = ", ".join(f'"{p}" HIDDEN' for p in self.parameters)
        return f"CREATE TABLE x({visible}, {hidden})", _FunctionTable(self)

    Create = Connect


class _FunctionTable:
    def __init__(self, module: TableFunction) -> None:
        self.module = module

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        first = len(self.module.columns)
        given: dict[int, int] = {}
        for i in range(info.nConstraint):
            column = info.get_aConstraint_iColumn(i) - first
            if column < 0 or info.get_aConstraint_op(i) != apsw.SQLITE_INDEX_CONSTRAINT_EQ:
                continue
            if not info.get_aConstraint_usable(i):
                return False  # another plan reads the argument's table first
            given[column] = i
        if any(p not in given for p in range(self.module.required)):
            return False
        mask = 0
        for position, parameter in enumerate(sorted(given), start=1):
            info.set_aConstraintUsage_argvIndex(given[parameter], position)
            info.set_aConstraintUsage_omit(given[parameter], True)
            mask |= 1 << parameter
        info.idxNum = mask
        info.estimatedCost = 10.0
        info.estimatedRows = 100
        return True

    def Open(self) -> _FunctionCursor:
        return _FunctionCursor(self.module)

    def Disconnect(self) -> None:
        pass

    Destroy = Disconnect


class _FunctionCursor:
    def __init__(self, module: TableFunction) -> None:
        self.module = module
        self.arguments: list[Any] = []
        self.rows: Iterator[tuple[Any, ...]] = iter(())
        self.row: tuple[Any, ...] | None = None
        self.rowid = 0

    def Filter(self, mask: int, _name: str | None, values: tuple[Any, ...]) -> None:
        supplied = iter(values)
        self.arguments = [next(supplied) if mask & (1 << p) else None
                          for p in range(len(self.module.parameters))]
        while len(self.arguments) > self.module.required and self.arguments[-1] is None \
                and not mask & (1 << (len(self.arguments) - 1)):
            self.arguments.pop()
        self.rows = self.module.function(*self.arguments)
        self.rowid = 0
        self.Next()

    def Eof(self) -> bool:
        return self.row is None

    def Rowid(self) -> int:
        return self.rowid

    def Column(self, number: int) -> Any:
        assert self.row is not None
        if number == -1:
            return self.rowid
        if number < len(self.row):
            return self.row[number]
        position = number - len(self.module.columns)
        return self.arguments[position] if position < len(self.arguments) else None

    def Next(self) -> None:
        self.row = next(self.rows, None)
        self.rowid += 1

    def Close(self) -> None:
        self.rows = iter(())


SET_RETURNING_TABLES = {
    "_pg_generate_series": TableFunction(generate_series, ("start", "stop", "step"), 2),
    "_pg_unnest": TableFunction(unnest, ("array",), 1),
    "_pg_generate_subscripts": TableFunction(generate_subscripts,
                                             ("array", "dimension", "reverse", "lower"), 2),
}
SET_RETURNING_TABLES["_pg_rows_from"] = TableFunction(
    rows_from, ("spec", *(f"a{i}" for i in range(ROWS_FROM_ARGUMENTS_MAX))), 1,
    (*(f"v{i}" for i in range(ROWS_FROM_FUNCTIONS_MAX)), "ordinality"))
"""The set-returning functions as SQLite table-valued functions."""


# --- strings and the rest ------------------------------------------------------------------

def substring(text: Any, start: Any, count: Any = None) -> Any:
    """substring(text from start [for count]): positions before 1 count, as PostgreSQL
    (SQLite's substr counts a negative start from the end)."""
    if text is None or start is None:
        return None
    first = int(start)
    if count is None:
        return text[max(first, 1) - 1:]
    length = int(count)
    if length < 0:
        raise SqlFunctionError("negative substring length not allowed", "22011")
    end = first + length
    begin = max(first, 1)
    return text[begin - 1:end - 1] if end > begin else text[:0]


def _pad(text: Any, length: Any, fill: Any, left: bool) -> str | None:
    if text is None or length is None or fill is None:
        return None
    size = int(length)
    value = str(text)
    if size <= len(value):
        return value[:max(size, 0)]
    filler = str(fill)
    if not filler:
        return value
    padding = (filler * (size // len(filler) + 1))[:size - len(value)]
    return padding + value if left else value + padding


def _case_map(text: str, mapping: Callable[[str], str]) -> str:
    """lower()/upper() as PostgreSQL's (towlower/towupper, one character at a time): a
    character whose mapping is several characters ('ß' -> 'SS') stays as it is."""
    mapped = mapping(text)
    if len(mapped) == len(text):
        return mapped
    out = []
    for character in text:
        single = mapping(character)
        out.append(single if len(single) == 1 else character)
    return "".join(out)


def _split_part(text: Any, delimiter: Any, field: Any) -> str | None:
    if text is None or delimiter is None or field is None:
        return None
    if int(field) == 0:
        raise SqlFunctionError("field position must not be zero", "22023")
    parts = str(text).split(str(delimiter)) if delimiter != "" else [str(text)]
    index = int(field) - 1 if int(field) > 0 else len(parts) + int(field)
    return parts[index] if 0 <= index < len(parts) else ""


def _json_typeof(value: Any) -> str | None:
    if value is None:
        return None
    parsed = jsonops.parse(value)
    if parsed is None:
        return "null"
    if isinstance(parsed, bool):
        return "boolean"
    if isinstance(parsed, str):
        return "number" if isinstance(parsed, jsonops._Number) else "string"
    return "array" if isinstance(parsed, list) else "object"


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return json.dumps("\\x" + value.hex())
    return json.dumps(value, ensure_ascii=False)


def _encode(data: Any, encoding: Any) -> str | None:
    if data is None or encoding is None:
        return None
    raw = data if isinstance(data, bytes) else str(data).encode()
    kind = str(encoding).lower()
    if kind == "hex":
        return raw.hex()
    if kind == "base64":
        return base64.encodebytes(raw).decode().rstrip("\n")
    raise SqlFunctionError(f'unrecognized encoding: "{encoding}"', "22023")


def _decode(text: Any, encoding: Any) -> bytes | None:
    if text is None or encoding is None:
        return None
    kind = str(encoding).lower()
    try:
        if kind == "hex":
            return bytes.fromhex(str(text))
        if kind == "base64":
            return base64.b64decode(str(text), validate=False)
    except ValueError as exc:
        raise SqlFunctionError(f"invalid {kind} data: {exc}", "22023") from None
    raise SqlFunctionError(f'unrecognized encoding: "{encoding}"', "22023")


def _sleep(seconds: Any) -> None:
    # A timed wait on a lock rather than time.sleep, which fails with EINVAL in a process
    # run under libfaketime with the monotonic clock left real (the clock-skew nemesis).
    if seconds is not None and float(seconds) > 0:
        threading.Event().wait(min(float(seconds), 3600.0))


def _quote_ident(name: Any) -> str | None:
    if name is None:
        return None
    text = str(name)
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", text):
        return text
    return '"' + text.replace('"', '""') + '"'


def _to_hex(value: Any) -> str | None:
    if value is None:
        return None
    number = int(value)
    return format(number & 0xFFFFFFFFFFFFFFFF if number < 0 else number, "x")


def _strict(function: Callable[..., Any]) -> Callable[..., Any]:
    """NULL in, NULL out (PostgreSQL's STRICT functions)."""
    def run(*args: Any) -> Any:
        if any(a is None for a in args):
            return None
        return function(*args)
    return run


def _aggregate(cls: type[_ArrayAgg]) -> Callable[[], tuple[Any, Any, Any]]:
    def factory() -> tuple[Any, Any, Any]:
        state = cls()
        return state, lambda _ctx, value: state.step(value), lambda _ctx: state.final()
    return factory


_SCALARS: dict[str, tuple[Callable[..., Any], int]] = {
    # numeric and temporal arithmetic
    "_pg_add": (numeric.add, 2), "_pg_sub": (numeric.subtract, 2),
    "_pg_mul": (numeric.multiply, 2), "_pg_div": (numeric.divide, 2),
    "_pg_mod": (numeric.modulo, 2), "_pg_neg": (numeric.negate, 1),
    "_pg_cmp": (numeric.compare, 2), "_pg_abs": (numeric.absolute, 1),
    "_pg_sign": (numeric.sign, 1), "_pg_floor": (numeric.floor, 1),
    "_pg_ceil": (numeric.ceiling, 1), "_pg_round": (numeric.round_value, -1),
    "_pg_trunc": (numeric.truncate, -1), "_pg_greatest": (numeric.greatest, -1),
    "_pg_least": (numeric.least, -1),
    "_pg_sqrt": (numeric.float_function("sqrt", math.sqrt), 1),
    "_pg_cbrt": (numeric.float_function("cbrt", lambda x: math.copysign(
        abs(x) ** (1 / 3), x)), 1),
    "_pg_exp": (numeric.float_function("exp", math.exp), 1),
    "_pg_ln": (numeric.float_function("ln", math.log), 1),
    "_pg_log10": (numeric.float_function("log", math.log10), 1),
    "_pg_power": (numeric.float_function("power", math.pow), 2),
    "_pg_extract": (temporal.extract, 2), "_pg_date_trunc": (temporal.date_trunc, 2),
    "_pg_to_char": (formatting.to_char, 3), "_pg_to_date": (formatting.to_date, 2),
    "_pg_to_timestamp": (formatting.to_timestamp, -1),
    # JSON
    "_pg_json_get": (jsonops.get, 2), "_pg_json_get_text": (jsonops.get_text, 2),
    "_pg_json_path": (jsonops.get_path, 2), "_pg_json_path_text": (jsonops.get_path_text, 2),
    "_pg_contains": (jsonops.contains, 2), "_pg_json_exists": (jsonops.exists, 2),
    "_pg_json_exists_any": (jsonops.exists_any, 2),
    "_pg_json_exists_all": (jsonops.exists_all, 2),
    "_pg_jsonb_build_object": (jsonops.build_object, -1),
    "_pg_json_build_object": (lambda *a: jsonops.build_object(*a, jsonb=False), -1),
    "_pg_jsonb_build_array": (jsonops.build_array, -1),
    "_pg_json_build_array": (lambda *a: jsonops.build_array(*a, jsonb=False), -1),
    "_pg_json_typeof": (_json_typeof, 1), "_pg_to_json": (_to_json, 1),
    # arrays
    "_pg_subscript": (subscript, -1), "_pg_array_upper": (array_upper, -1),
    "_pg_array_lower": (array_lower, -1), "_pg_array_length": (array_length, 2),
    "_pg_cardinality": (cardinality, 1), "_pg_array_position": (array_position, 2),
    "_pg_array_to_string": (array_to_string, -1), "_pg_array_cat": (array_concat, 2),
    # casts
    "_pg_cast": (cast_value, -1),
    # strings
    "_pg_substring": (substring, -1),
    "_pg_lower": (_strict(lambda s: _case_map(str(s), str.lower)), 1),
    "_pg_upper": (_strict(lambda s: _case_map(str(s), str.upper)), 1),
    "_pg_octet_length": (lambda v: None if v is None else len(
        v if isinstance(v, bytes) else str(v).encode()), 1),
    "_pg_left": (_strict(lambda s, n: s[:n]), 2),  # n < 0: all but the last -n
    "_pg_right": (_strict(lambda s, n: s[-n:] if n else s[:0]), 2),
    "_pg_md5": (_strict(lambda v: hashlib.md5(
        v if isinstance(v, bytes) else str(v).encode()).hexdigest()), 1),
    "_pg_repeat": (_strict(lambda s, n: s * max(n, 0)), 2),
    "_pg_split_part": (_split_part, 3),
    "_pg_starts_with": (_strict(lambda s, p: int(str(s).startswith(str(p)))), 2),
    "_pg_reverse": (_strict(lambda s: str(s)[::-1]), 1),
    "_pg_lpad": (lambda s, n, f=" ": _pad(s, n, f, True), -1),
    "_pg_rpad": (lambda s, n, f=" ": _pad(s, n, f, False), -1),
    "_pg_initcap": (_strict(lambda s: re.sub(r"[A-Za-z0-9]+", lambda m: m.group(0)[:1].upper()
                                              + m.group(0)[1:].lower(), str(s))), 1),
    "_pg_translate": (_strict(lambda s, a, b: str(s).translate(
        {ord(c): (b[i] if i < len(b) else None) for i, c in reversed(list(enumerate(a)))})),
        3),
    "_pg_ascii": (_strict(lambda s: ord(str(s)[0]) if str(s) else 0), 1),
    "_pg_chr": (_strict(lambda n: chr(int(n))), 1),
    "_pg_to_hex": (_to_hex, 1), "_pg_quote_ident": (_quote_ident, 1),
    "_pg_quote_literal": (_strict(lambda v: "'" + str(v).replace("'", "''") + "'"), 1),
    "_pg_encode": (_encode, 2), "_pg_decode": (_decode, 2),
}

_VOLATILE: dict[str, tuple[Callable[..., Any], int]] = {
    "_pg_random": (random.random, 0), "_pg_sleep": (_sleep, 1),
}


def register(conn: apsw.Connection) -> None:
    """Put this module's functions, aggregates, collation and tables into ``conn``."""
    for name, (function, args) in _SCALARS.items():
        conn.create_scalar_function(name, function, args, deterministic=True)
    for name, (function, args) in _VOLATILE.items():
        conn.create_scalar_function(name, function, args)
    columns = _ColumnTypes(conn)
    conn.create_scalar_function("_pg_coerce", columns.coerce,  # type: ignore[arg-type]
                                -1, deterministic=True)
    conn.create_scalar_function("_pg_literal_as", columns.literal_as,  # type: ignore[arg-type]
                                2, deterministic=True)
    narrow = numeric.NarrowIntegers(columns.formula_type)
    checked: tuple[tuple[str, Callable[..., Any], int], ...] = (
        ("_pg_add", narrow.add, 3), ("_pg_sub", narrow.subtract, 3),
        ("_pg_mul", narrow.multiply, 3), ("_pg_div", narrow.divide, 3),
        ("_pg_neg", narrow.negate, 2))
    for name, function, args in checked:  # the operators with an int_check: 3 arguments
        conn.create_scalar_function(name, function, args, deterministic=True)
    conn.create_window_function("_pg_sum", numeric.Sum, 1)  # and a plain aggregate
    conn.create_window_function("_pg_avg", numeric.Avg, 1)
    conn.create_aggregate_function("_pg_array_agg", _aggregate(_ArrayAgg))
    conn.create_collation(numeric.NUMERIC_COLLATION, numeric.collate)
    for name, module in SET_RETURNING_TABLES.items():
        conn.create_module(name, module, use_bestindex_object=True,  # type: ignore[arg-type]
                           eponymous=True, eponymous_only=True, read_only=True)
