"""The PostgreSQL type of an expression, as a formula over the columns and parameters it
reads: PostgreSQL's typing rules, applied when the schema is known.

PostgreSQL types every expression when it analyses a statement, from the schema: ``balance
+ 1`` is int4 because ``balance`` is, ``sum(balance)`` int8, ``max(created_at)``
timestamptz. The translator works without the schema (a translation is cached by the
statement's shape and serves whatever the schema is when it runs), so ``derive`` types an
expression as a ``Formula``: the types the statement decides (a literal, a cast, ``count``)
and references to the table columns (``ColumnOf``) and parameters (``ParamOf``) whose types
only the schema or the client knows, combined by PostgreSQL's rules (``Rule``). ``evaluate``
applies the rules once those are known:

- at Describe, for each result column (``schema.result_types``), so that RowDescription
  carries the OID PostgreSQL would send before anything runs (asyncpg decodes by it);
- when an integer operator's result leaves the int2 or int4 range (``int_check``, read by
  ``functions``): PostgreSQL computes ``int4 + int4`` in int4 and refuses an overflow with
  22003, where Borealis' integers are 64-bit; the formula tells whether the operands were
  narrow. Only that rare path reads the schema.

The rules are PostgreSQL 15's, checked with ``pg_typeof``: integers of one width stay that
width (``int4 / int4`` too), the wider one wins (int2 < int4 < int8), any numeric operand
makes numeric, real with real is real and a float with anything else double precision;
``%`` of floats does not exist. ``sum`` of int2/int4 is int8, of int8 and numeric numeric;
``avg`` of integers numeric, of floats double precision; ``min``/``max`` keep their
argument's type (varchar's is text); ``count`` is int8. CASE, COALESCE, GREATEST, LEAST
and the columns of UNION, INTERSECT and EXCEPT take the branches' common type (untyped literals and NULL take the others'; among numbers
the one all others convert to; among strings the first). An untyped literal in an operator
takes the other operand's type. ``round``, ``floor``, ``ceil``, ``trunc`` and ``sign`` of an
integer are double precision (PostgreSQL has them for numeric and float8 only, and picks
float8), of numeric numeric.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlglot import exp

from borealis.protocol.postgres import sqltext
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.nodes import from_items
from borealis.protocol.postgres.outputs import column_name, type_of
from borealis.protocol.postgres.statement import OutputColumn, TranslationError

UNKNOWN = 705
"""PostgreSQL's type of an untyped literal ('x', NULL): it takes its context's type, and is
text where nothing decides it."""

INT2, INT4, INT8, NUMERIC, FLOAT4, FLOAT8 = 21, 23, 20, 1700, 700, 701
TEXT, VARCHAR, BPCHAR, NAME = 25, 1043, 1042, 19
DATE, TIMESTAMP, TIMESTAMPTZ, INTERVAL = 1082, 1114, 1184, 1186
JSON, JSONB = 114, 3802


@dataclass(frozen=True, slots=True)
class Known:
    """A type the statement decides (0: nothing decides it)."""

    oid: int
    typmod: int = -1

    def __post_init__(self) -> None:
        assert self.oid >= 0, self.oid


@dataclass(frozen=True, slots=True)
class ColumnOf:
    """A table column's type: ``column`` of the first of ``tables`` that has it (the
    tables a name could refer to, the innermost query's first)."""

    tables: tuple[str, ...]
    column: str

    def __post_init__(self) -> None:
        assert self.tables, "a column of no table"
        assert self.column, "a column without a name"


@dataclass(frozen=True, slots=True)
class ParamOf:
    """The type of the client's parameter ``$number``."""

    number: int

    def __post_init__(self) -> None:
        assert 1 <= self.number <= 65535, self.number


RULES = frozenset({"+", "-", "*", "/", "%", "neg", "sum", "avg", "minmax", "same", "common",
                   "array", "date_trunc", "series", "json_get", "to_float", "to_numeric"})


@dataclass(frozen=True, slots=True)
class Rule:
    """PostgreSQL's typing rule ``name`` applied to its operands' types."""

    name: str
    operands: tuple[Formula, ...]

    def __post_init__(self) -> None:
        assert self.name in RULES, self.name
        assert self.operands, f"the rule {self.name} without operands"


Formula = Known | ColumnOf | ParamOf | Rule
NOT_KNOWN = Known(0)

Columns = Callable[[str, str], tuple[int, int] | None]
"""(table, column) -> the column's (type oid, typmod), None when the table has no such
column."""


# -- evaluation ---------------------------------------------------------------------------

_NUMERIC_RANK = {INT2: 1, INT4: 2, INT8: 3, NUMERIC: 4, FLOAT4: 5, FLOAT8: 6}
"""The implicit conversions among numbers: each converts to the ones ranked above it."""

_STRINGS = frozenset({TEXT, VARCHAR, BPCHAR, NAME})

_TEMPORAL_RANK = {DATE: 1, TIMESTAMP: 2, TIMESTAMPTZ: 3}

_TEMPORAL_RESULTS = {  # (left, operator, right) -> result, PostgreSQL's operators
    (TIMESTAMPTZ, "+", INTERVAL): TIMESTAMPTZ, (TIMESTAMPTZ, "-", INTERVAL): TIMESTAMPTZ,
    (INTERVAL, "+", TIMESTAMPTZ): TIMESTAMPTZ, (TIMESTAMP, "+", INTERVAL): TIMESTAMP,
    (TIMESTAMP, "-", INTERVAL): TIMESTAMP, (INTERVAL, "+", TIMESTAMP): TIMESTAMP,
    (DATE, "+", INT4): DATE, (DATE, "-", INT4): DATE, (INT4, "+", DATE): DATE,
    (DATE, "-", DATE): INT4, (DATE, "+", INTERVAL): TIMESTAMP, (DATE, "-", INTERVAL): TIMESTAMP,
    (TIMESTAMPTZ, "-", TIMESTAMPTZ): INTERVAL, (TIMESTAMP, "-", TIMESTAMP): INTERVAL,
    (INTERVAL, "+", INTERVAL): INTERVAL, (INTERVAL, "-", INTERVAL): INTERVAL,
}

_SUM = {INT2: INT8, INT4: INT8, INT8: NUMERIC, NUMERIC: NUMERIC, FLOAT4: FLOAT4,
        FLOAT8: FLOAT8, INTERVAL: INTERVAL}
_AVG = {INT2: NUMERIC, INT4: NUMERIC, INT8: NUMERIC, NUMERIC: NUMERIC, FLOAT4: FLOAT8,
        FLOAT8: FLOAT8, INTERVAL: INTERVAL}


def promote(left: int, right: int) -> int:
    """The type of ``left op right`` for + - * / on numbers (0: not two numbers)."""
    if left not in _NUMERIC_RANK or right not in _NUMERIC_RANK:
        return 0
    if FLOAT4 in (left, right) or FLOAT8 in (left, right):
        return FLOAT4 if left == right == FLOAT4 else FLOAT8
    return max(left, right, key=_NUMERIC_RANK.__getitem__)


def _arithmetic(operator: str, left: int, right: int) -> int:
    if left == UNKNOWN and right == UNKNOWN:
        return 0  # PostgreSQL: operator is not unique
    if left == UNKNOWN:
        left = right
    elif right == UNKNOWN:
        right = left
    temporal = _TEMPORAL_RESULTS.get((left, operator, right))
    if temporal is not None:
        return temporal
    if operator in "*/" and INTERVAL in (left, right):
        other = left if right == INTERVAL else right
        return INTERVAL if other in _NUMERIC_RANK and (operator == "*" or right != INTERVAL) \
            else 0
    if operator == "%" and (left in (FLOAT4, FLOAT8) or right in (FLOAT4, FLOAT8)):
        return 0  # PostgreSQL has no % for floats
    return promote(left, right)


def _common(types: list[tuple[int, int]]) -> tuple[int, int]:
    """The common type of CASE/COALESCE branches (select_common_type)."""
    found = [(oid, typmod) for oid, typmod in types if oid != UNKNOWN]
    if not found:
        return (UNKNOWN, -1) if types else (0, -1)
    oids = [oid for oid, _ in found]
    if 0 in oids:
        return 0, -1
    typmod = found[0][1] if all(t == found[0][1] for _, t in found) else -1
    if len(set(oids)) == 1:
        return oids[0], typmod
    if all(oid in _NUMERIC_RANK for oid in oids):
        return max(oids, key=_NUMERIC_RANK.__getitem__), -1
    if all(oid in _STRINGS for oid in oids):
        return oids[0], -1  # they convert to each other: the first one stays
    if all(oid in _TEMPORAL_RANK for oid in oids):
        return max(oids, key=_TEMPORAL_RANK.__getitem__), -1
    return 0, -1


def _rounding(oid: int) -> int:
    if oid == NUMERIC:
        return NUMERIC
    return FLOAT8 if oid in _NUMERIC_RANK else 0


def _apply(name: str, operands: list[tuple[int, int]]) -> tuple[int, int]:
    first = operands[0][0]
    if name in ("+", "-", "*", "/", "%"):
        return _arithmetic(name, first, operands[1][0]), -1
    if name == "neg":
        return (first if first in _NUMERIC_RANK or first == INTERVAL else 0), -1
    if name == "sum":
        return _SUM.get(first, 0), -1
    if name == "avg":
        return _AVG.get(first, 0), -1
    if name == "minmax":
        return (TEXT if first == VARCHAR else first), -1
    if name == "same":
        return operands[0]
    if name == "common":
        return _common(operands)
    if name == "array":
        element = pgtypes.BY_OID.get(TEXT if first == UNKNOWN else first)
        return (element.array_oid if element is not None else 0), -1
    if name == "date_trunc":  # a date is truncated as the timestamptz it converts to
        return (first if first in (TIMESTAMP, TIMESTAMPTZ, INTERVAL) else
                TIMESTAMPTZ if first == DATE else 0), -1
    if name == "series":
        end = operands[1][0]
        if first in (TIMESTAMP, TIMESTAMPTZ):
            return first, -1
        return (promote(first, end) if first in (INT4, INT8, NUMERIC) else 0), -1
    if name == "json_get":
        return (first if first in (JSON, 0) else JSONB), -1
    if name == "to_float":
        return _rounding(first), -1
    if name == "to_numeric":
        return (NUMERIC if first in _NUMERIC_RANK else 0), -1
    raise AssertionError(f"no rule {name}")


def _evaluate(formula: Formula, columns: Columns | None, params: tuple[int, ...],
              untyped: int) -> tuple[int, int]:
    if isinstance(formula, Known):
        return formula.oid, formula.typmod
    if isinstance(formula, ColumnOf):
        if columns is None:
            return 0, -1
        for table in formula.tables:
            found = columns(table, formula.column)
            if found is not None:
                return found
        return 0, -1
    if isinstance(formula, ParamOf):
        oid = params[formula.number - 1] if formula.number <= len(params) else 0
        return (oid or untyped), -1
    operands = [_evaluate(o, columns, params, untyped) for o in formula.operands]
    return _apply(formula.name, operands)


def evaluate(formula: Formula, columns: Columns | None = None,
             params: tuple[int, ...] = (), *, untyped_param: int = 0) -> tuple[int, int]:
    """The (type oid, typmod) of ``formula`` with these columns and parameter types
    (oid 0: still not known; an untyped literal alone is text, as PostgreSQL shows it).
    ``untyped_param``: the type of a parameter ``params`` does not give (UNKNOWN: it takes
    the other operand's, as PostgreSQL infers an untyped parameter's)."""
    oid, typmod = _evaluate(formula, columns, params, untyped_param)
    return (TEXT if oid == UNKNOWN else oid), typmod


def reads_schema(formula: Formula) -> bool:
    """Whether the formula refers to a column or a parameter (the schema or the client may
    decide its type)."""
    if isinstance(formula, ColumnOf | ParamOf):
        return True
    if isinstance(formula, Rule):
        return any(reads_schema(o) for o in formula.operands)
    return False


# -- from the statement -------------------------------------------------------------------

FUNCTION_TYPES: dict[str, int] = {
    "now": 1184, "transaction_timestamp": 1184, "statement_timestamp": 1184,
    "clock_timestamp": 1184, "gen_random_uuid": 2950, "uuid_generate_v4": 2950,
    "nextval": 20, "currval": 20, "setval": 20, "lastval": 20, "current_setting": 25,
    "set_config": 25, "random": 701, "char_length": 23, "character_length": 23,
    "octet_length": 23, "strpos": 23, "left": 25, "right": 25, "md5": 25, "btrim": 25,
    "repeat": 25, "split_part": 25, "starts_with": 16, "sqrt": 701, "power": 701,
    "pow": 701, "exp": 701, "ln": 701, "log10": 701, "cbrt": 701, "reverse": 25,
    "pg_sleep": 2278, "to_hex": 25, "quote_ident": 25, "quote_literal": 25, "encode": 25,
    "decode": 17, "jsonb_build_object": 3802, "json_build_object": 114,
    "jsonb_build_array": 3802, "json_build_array": 114, "jsonb_typeof": 25,
    "json_typeof": 25, "jsonb_array_length": 23, "json_array_length": 23, "to_json": 114,
    "to_jsonb": 3802, "array_position": 23, "array_length": 23, "array_to_string": 25,
    "cardinality": 23, "array_upper": 23, "array_lower": 23, "lpad": 25, "rpad": 25,
    "initcap": 25, "translate": 25, "ascii": 23, "chr": 25, "concat": 25, "concat_ws": 25,
    "string_agg": 25, "version": 25, "current_schema": 19, "current_database": 19,
    "current_user": 19, "session_user": 19, "pg_backend_pid": 23,
    "aurora_db_instance_identifier": 25, "format_type": 25,
    "pg_get_expr": 25, "pg_get_indexdef": 25, "pg_get_constraintdef": 25,
    "pg_get_viewdef": 25, "pg_get_userbyid": 19, "pg_get_function_result": 25,
    "pg_get_function_arguments": 25, "pg_get_function_identity_arguments": 25,
    "pg_function_is_visible": 16, "pg_tablespace_location": 25, "pg_table_is_visible": 16,
    "pg_type_is_visible": 16, "pg_is_in_recovery": 16, "has_table_privilege": 16,
    "has_schema_privilege": 16, "has_database_privilege": 16, "pg_has_role": 16,
    "pg_get_serial_sequence": 25, "to_regclass": 2205, "to_regtype": 2206,
    "pg_encoding_to_char": 19, "obj_description": 25, "col_description": 25,
    "pg_relation_size": 20, "pg_total_relation_size": 20, "pg_table_size": 20,
    "pg_indexes_size": 20, "pg_database_size": 20, "pg_size_pretty": 25,
    "generate_subscripts": 23, "row_number": 20, "rank": 20,
    "dense_rank": 20, "ntile": 23, "percent_rank": 701, "cume_dist": 701, "upper": 25,
    "_borealis_to_char": 25, "_borealis_to_date": 1082, "_borealis_to_timestamp": 1184,
    "lower": 25, "length": 23, "replace": 25, "substring": 25, "substr": 25, "trim": 25,
    "ltrim": 25, "rtrim": 25, "current_schemas": 1003, "every": 16,
}
"""PostgreSQL function -> result type oid, where the arguments do not decide it."""

_ARGUMENT_RULES: dict[str, str] = {
    "abs": "same", "floor": "to_float", "ceil": "to_float", "ceiling": "to_float",
    "sign": "to_float",
}
"""Functions (called by name) whose result type follows their first argument's."""

_KIND_OIDS = {"int4": INT4, "int8": INT8, "numeric": NUMERIC, "unknown": UNKNOWN}

_BOOLEAN_NODES = (exp.Boolean, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And,
                  exp.Or, exp.Not, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike,
                  exp.Exists, exp.RegexpLike, exp.RegexpILike, exp.NullSafeEQ,
                  exp.NullSafeNEQ, exp.ArrayContainsAll, exp.ArrayContainedBy,
                  exp.JSONBContainsTopKey, exp.JSONBContainsAnyTopKeys,
                  exp.JSONBContainsAllTopKeys, exp.LogicalAnd, exp.LogicalOr)

_TEXT_NODES = (exp.DPipe, exp.Lower, exp.Upper, exp.Concat, exp.GroupConcat,
               exp.JSONExtractScalar, exp.JSONBExtractScalar, exp.Substring, exp.Trim,
               exp.Replace, exp.ConcatWs, exp.CurrentVersion)

_ARITHMETIC: dict[type[exp.Expression], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*",
                                                 exp.Div: "/", exp.Mod: "%"}

_SAME_AS_ARGUMENT = (exp.Lag, exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
                     exp.Abs, exp.Nullif)

DERIVED_DEPTH_MAX = 16
"""Derived tables followed to type a column (a recursive CTE refers to itself)."""


def derive(node: exp.Expression, kinds: tuple[str, ...] = (),
           tables: tuple[str, ...] = (), depth: int = 0) -> Formula:
    """The formula of an expression as PostgreSQL wrote it (before ``rewrite``). ``kinds``:
    the normalised literals' kinds ($1..$n of a normalised shape are literals); ``tables``:
    the tables a column outside any query's FROM reads (a DML statement's RETURNING)."""
    if isinstance(node, exp.Alias | exp.Paren | exp.Filter | exp.Window):
        return derive(node.this, kinds, tables, depth)
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return derive(cast(exp.Expression, node.expression), kinds, tables, depth)
    if isinstance(node, exp.Cast):
        try:
            pg, typmod = type_of(node.to)
        except TranslationError:
            return NOT_KNOWN
        return Known(pg.oid, typmod)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return Known(UNKNOWN)
        kind = sqltext.number_kind(node.this) if re.fullmatch(r"[0-9.eE+-]+", node.this) \
            else "numeric"
        return Known(_KIND_OIDS[kind])
    if isinstance(node, exp.Null):
        return Known(UNKNOWN)
    if isinstance(node, exp.Parameter):
        raw = node.this
        try:
            number = int(raw.this if isinstance(raw, exp.Literal) else str(raw))
        except ValueError:  # $name: not a positional parameter
            return NOT_KNOWN
        if 1 <= number <= len(kinds):  # ($0 is no parameter: the fuzz test sent one)
            return Known(_KIND_OIDS[kinds[number - 1]])
        return ParamOf(number) if 1 <= number <= 65535 else NOT_KNOWN
    if isinstance(node, _BOOLEAN_NODES):
        return Known(16)

    def sub(child: exp.Expression | None) -> Formula:
        return derive(child, kinds, tables, depth) if child is not None else Known(UNKNOWN)

    operator = _ARITHMETIC.get(type(node))
    if operator is not None:
        return _rule(operator, sub(node.this), sub(node.args.get("expression")))
    if isinstance(node, exp.Neg):
        return _rule("neg", sub(node.this))
    if isinstance(node, exp.Count):
        return Known(INT8)
    if isinstance(node, exp.Column):
        return _column(node, kinds, tables, depth)
    if isinstance(node, exp.Subquery):  # a scalar subquery: its one column's type
        body = _query_body(node.this)
        if isinstance(body, exp.Select) and len(body.expressions) == 1:
            return sub(body.expressions[0])
        return NOT_KNOWN
    if isinstance(node, exp.Min | exp.Max):
        if node.expressions:  # min(a, b): least(a, b)
            return _rule("common", sub(node.this), *(sub(e) for e in node.expressions))
        return _rule("minmax", sub(node.this))
    if isinstance(node, exp.Sum | exp.Avg):
        argument = node.this.expressions[0] if isinstance(node.this, exp.Distinct) and \
            node.this.expressions else node.this
        return _rule("sum" if isinstance(node, exp.Sum) else "avg", sub(argument))
    if isinstance(node, _TEXT_NODES):
        return Known(TEXT)
    if isinstance(node, exp.JSONExtract | exp.JSONBExtract):
        return _rule("json_get", sub(node.this))
    if isinstance(node, exp.Length):
        return Known(INT4)
    if isinstance(node, exp.CurrentTimestamp):
        return Known(TIMESTAMPTZ)
    if isinstance(node, exp.Localtimestamp):
        return Known(TIMESTAMP)
    if isinstance(node, exp.CurrentDate):
        return Known(DATE)
    if isinstance(node, exp.CurrentUser | exp.SessionUser | exp.CurrentSchema
                  | exp.CurrentCatalog):
        return Known(NAME)
    if isinstance(node, exp.Extract):
        return Known(NUMERIC)
    if isinstance(node, exp.TimestampTrunc):  # date_trunc keeps timestamp or timestamptz
        return _rule("date_trunc", sub(node.this))
    if isinstance(node, exp.Interval):
        return Known(INTERVAL)
    if isinstance(node, exp.Case):
        return _rule("common", *(sub(b) for b in [node.args.get("default"), *(
            i.args.get("true") for i in node.args.get("ifs") or [])] if b is not None))
    if isinstance(node, exp.Coalesce | exp.Greatest | exp.Least):
        return _rule("common", sub(node.this), *(sub(e) for e in node.expressions))
    if isinstance(node, _SAME_AS_ARGUMENT):
        return _rule("same", sub(node.this))
    if isinstance(node, exp.Round | exp.Trunc):
        decimals = node.args.get("decimals")
        return _rule("to_numeric" if decimals is not None else "to_float", sub(node.this))
    if isinstance(node, exp.Floor | exp.Ceil | exp.Sign):
        return _rule("to_float", sub(node.this))
    if isinstance(node, exp.Array) and node.expressions:
        body = _query_body(node.expressions[0])
        if isinstance(body, exp.Select):  # ARRAY(subquery): its one column's array type
            return _rule("array", sub(body.expressions[0])) \
                if len(node.expressions) == 1 and len(body.expressions) == 1 else NOT_KNOWN
        return _rule("array", _rule("common", *(sub(e) for e in node.expressions)))
    if isinstance(node, exp.ArrayAgg):
        element = node.this.this if isinstance(node.this, exp.Order) else node.this
        return _rule("array", sub(element))
    if isinstance(node, exp.ExplodingGenerateSeries | exp.GenerateSeries):
        return _rule("series", sub(node.args["start"]), sub(node.args["end"]))
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower().split(".")[-1]
        rule = _ARGUMENT_RULES.get(name)
        if rule is not None and node.expressions:
            return _rule(rule, sub(node.expressions[0]))
        return Known(FUNCTION_TYPES.get(name, 0))
    if isinstance(node, exp.Func):
        return Known(FUNCTION_TYPES.get(node.sql_name().lower(), 0))
    return NOT_KNOWN


def _rule(name: str, *operands: Formula) -> Formula:
    """A rule, evaluated now when its operands are all known."""
    if not operands:
        return Known(UNKNOWN)
    rule = Rule(name, operands)
    if all(isinstance(o, Known) for o in operands):
        oid, typmod = _evaluate(rule, None, (), 0)
        return Known(oid, typmod)
    return rule


def _query_body(node: exp.Expression | None) -> exp.Expression | None:
    while isinstance(node, exp.Union | exp.Intersect | exp.Except | exp.Subquery):
        node = node.this
    return node


def _table_name(table: exp.Table) -> str:
    identifier = table.this
    assert isinstance(identifier, exp.Identifier)
    return identifier.name if identifier.quoted else identifier.name.lower()


def _column(column: exp.Column, kinds: tuple[str, ...], tables: tuple[str, ...],
            depth: int) -> Formula:
    """A column's formula: a catalog column's type (``passes.mark_catalog_columns``), the
    expression a derived table (subquery, CTE) gives it, or a table's column."""
    typname = column.meta.get("pg_type")
    if typname is not None:
        pg = pgtypes.BY_NAME.get(typname)
        return Known(pg.oid) if pg is not None else NOT_KNOWN
    if depth >= DERIVED_DEPTH_MAX or isinstance(column.this, exp.Star):
        return NOT_KNOWN
    name = column.name if column.this.quoted else column.name.lower()
    qualifier = column.table.lower() if column.table else ""
    candidates: list[str] = []
    scope = column.parent_select
    while scope is not None:
        ctes = {cte.alias_or_name.lower(): cte for cte in scope.find_all(exp.CTE)}
        for item in from_items(scope):
            alias = (item.alias_or_name or "").lower()
            if qualifier and qualifier != alias:
                continue
            body: exp.Expression | None = None
            names: list[str] = []
            if isinstance(item, exp.Subquery):
                body = item.this
                names = _alias_columns(item)
            elif isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
                cte = ctes.get(item.name.lower()) if not item.args.get("db") else None
                if cte is not None:
                    body, names = cte.this, _alias_columns(cte)
                else:
                    candidates.append(_table_name(item))
                    if qualifier:
                        return ColumnOf(tuple(candidates), name)
                    continue
            found = _derived_column(_query_body(body), names, name)
            if found is not None:  # (were a table's too, PostgreSQL would call it ambiguous)
                return derive(found, kinds, tables, depth + 1)
            if qualifier:
                return NOT_KNOWN
        scope = scope.parent_select
    candidates.extend(t for t in tables if t not in candidates)
    return ColumnOf(tuple(candidates), name) if candidates else NOT_KNOWN


def _alias_columns(item: exp.Expression) -> list[str]:
    alias = item.args.get("alias")
    if isinstance(alias, exp.TableAlias):
        return [c.name if c.quoted else c.name.lower() for c in alias.columns
                if isinstance(c, exp.Identifier)]
    return []


def _derived_column(body: exp.Expression | None, names: list[str],
                    name: str) -> exp.Expression | None:
    """The expression of a derived table's column ``name`` (None: it has no such)."""
    if not isinstance(body, exp.Select):
        return None
    for position, expression in enumerate(body.expressions):
        given = names[position] if position < len(names) else column_name(expression)
        if given == name:
            return expression
    return None


def typed_outputs(select: exp.Expression, columns: list[OutputColumn],
                  kinds: tuple[str, ...], tables: tuple[str, ...] = ()) -> list[OutputColumn]:
    """The result columns named by ``outputs.outputs``, each with its type where the
    statement decides it and otherwise the formula the server resolves at Describe."""
    branches = _branches(select)
    if not branches or any(len(b.expressions) != len(columns) or any(
            isinstance(e, exp.Star) for e in b.expressions) for b in branches[1:]):
        branches = branches[:1]  # (PostgreSQL refuses branches of unequal widths)
    if not branches:
        return columns
    typed = []
    for position, column in enumerate(columns):
        formulas = [derive(b.expressions[position], kinds, tables) for b in branches]
        # UNION and the others: the branches' common type, as for CASE
        formula = formulas[0] if len(formulas) == 1 else _rule("common", *formulas)
        oid, typmod = evaluate(formula)
        kept: Formula | None = None
        if not oid and reads_schema(formula) and not isinstance(formula, ColumnOf):
            kept = formula  # a plain column: SQLite declares its type when prepared
        typed.append(OutputColumn(column.name, oid, typmod, kept))
    return typed


def _branches(query: exp.Expression) -> list[exp.Select]:
    """The selects of a query, each branch of a UNION, INTERSECT or EXCEPT in order."""
    while isinstance(query, exp.Subquery):
        query = query.this
    if isinstance(query, exp.Union | exp.Intersect | exp.Except):
        return _branches(query.this) + _branches(query.expression)
    return [query] if isinstance(query, exp.Select) else []


# -- integer overflow ----------------------------------------------------------------------

def narrowest(formula: Formula) -> int:
    """The narrowest integer width (2, 4, 8 bytes) the formula's value may have; 0 when it
    is not an integer."""
    if isinstance(formula, Known):
        return {INT2: 2, INT4: 4, INT8: 8, UNKNOWN: 8, 0: 8}.get(formula.oid, 0)
    if isinstance(formula, ColumnOf | ParamOf):
        return 2
    if formula.name in ("+", "-", "*", "/", "%", "neg", "same", "minmax", "common"):
        widths = [narrowest(o) for o in formula.operands
                  if not (isinstance(o, Known) and o.oid == UNKNOWN)]
        if not widths or 0 in widths:
            return 0 if widths else 8
        return max(widths)  # the wider operand's type (a common type is the widest)
    return 8 if formula.name == "sum" else 0


def int_check(node: exp.Expression, kinds: tuple[str, ...],
              tables: tuple[str, ...] = ()) -> str:
    """What an integer operator's function needs to refuse an int2/int4 overflow: the
    narrowest width its result may have (one digit) and its formula (``encode``); '' when
    its result cannot be a narrow integer. ``kinds`` and ``tables`` as for ``derive``."""
    formula = derive(node, kinds, tables)
    width = narrowest(formula)
    if width not in (2, 4):
        return ""
    return f"{width}{encode(formula)}"


_TEXT_LIKE = frozenset({TEXT, VARCHAR, BPCHAR, NAME, UNKNOWN})


def literal_branch_type(node: exp.Expression, kinds: tuple[str, ...],
                        tables: tuple[str, ...] = ()) -> str:
    """The type an untyped literal among a CASE/COALESCE/GREATEST/LEAST's branches takes
    (PostgreSQL converts it to the branches' common type, so that ``coalesce(x, '5')`` of
    an int4 ``x`` is the int4 5): a type oid as digits when the statement decides it, else
    the common formula (``encode``) to evaluate against the schema when it runs; '' when
    the literal stays text."""
    formula = derive(node, kinds, tables)
    oid, _ = evaluate(formula)
    if oid:
        return "" if oid in _TEXT_LIKE else str(oid)
    return encode(formula) if reads_schema(formula) else ""


def encode(formula: Formula) -> str:
    """The formula as compact JSON text, for a SQL literal."""
    return json.dumps(_to_json(formula), separators=(",", ":"))


def _to_json(formula: Formula) -> Any:
    if isinstance(formula, Known):
        return formula.oid
    if isinstance(formula, ColumnOf):
        return ["c", list(formula.tables), formula.column]
    if isinstance(formula, ParamOf):
        return ["p", formula.number]
    return [formula.name, *(_to_json(o) for o in formula.operands)]


@functools.lru_cache(maxsize=1024)
def decode(text: str) -> Formula:
    """``encode``'s text back."""
    return _from_json(json.loads(text))


def _from_json(value: Any) -> Formula:
    if isinstance(value, int):
        return Known(value)
    head = value[0]
    if head == "c":
        return ColumnOf(tuple(value[1]), value[2])
    if head == "p":
        return ParamOf(value[1])
    return Rule(head, tuple(_from_json(v) for v in value[1:]))
