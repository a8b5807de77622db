"""The result columns of a query as PostgreSQL names and types them.

PostgreSQL names an unaliased result column after its expression (FigureColname: the
column's name, the function's, ``?column?``...) and types it from the expression; SQLite
would name it after the expression's text and knows no types beyond a column's declared
one. ``outputs`` reads the statement as PostgreSQL wrote it (before ``rewrite``) and gives
each column its name and, where the expression alone decides it (a cast, a count, a
comparison, a literal), its type; ``alias`` then names the rewritten expressions so. The
other types the server learns when the statement is prepared (``types.type_from_decltype``
of a column) or, failing both, from the values.
"""

from __future__ import annotations

import contextvars
import re
from typing import cast

from sqlglot import exp

from borealis.protocol.postgres import sqltext
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.statement import OutputColumn, TranslationError

source_text: contextvars.ContextVar[str] = contextvars.ContextVar("source", default="")
"""The statement being translated (``now()`` and CURRENT_TIMESTAMP parse alike)."""

SET_RETURNING_NAMES = {"ExplodingGenerateSeries": "generate_series",
                       "GenerateSeries": "generate_series", "Explode": "unnest",
                       "Unnest": "unnest"}

_KIND_OIDS = {"int4": 23, "int8": 20, "numeric": 1700, "unknown": 25}

# PostgreSQL function -> result type oid, where the arguments do not decide it.
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
    "current_user": 19, "session_user": 19, "pg_backend_pid": 23, "aurora_db_instance_identifier": 25, "format_type": 25,
    "pg_get_expr": 25, "pg_get_indexdef": 25, "pg_get_constraintdef": 25,
    "pg_get_viewdef": 25, "pg_get_userbyid": 19, "pg_table_is_visible": 16,
    "pg_type_is_visible": 16, "pg_is_in_recovery": 16, "has_table_privilege": 16,
    "has_schema_privilege": 16, "has_database_privilege": 16, "pg_has_role": 16,
    "pg_get_serial_sequence": 25, "to_regclass": 2205, "to_regtype": 2206,
    "pg_encoding_to_char": 19, "obj_description": 25, "col_description": 25,
    "pg_relation_size": 20, "pg_total_relation_size": 20, "pg_table_size": 20,
    "pg_indexes_size": 20, "pg_database_size": 20, "pg_size_pretty": 25,
    "generate_subscripts": 23, "row_number": 20, "rank": 20,
    "dense_rank": 20, "ntile": 23, "percent_rank": 701, "cume_dist": 701, "upper": 25,
    "lower": 25, "length": 23, "replace": 25, "substring": 25, "substr": 25, "trim": 25,
    "ltrim": 25, "rtrim": 25, "current_schemas": 1003, "every": 16,
}


def column_name(node: exp.Expression) -> str:
    """PostgreSQL's FigureColname: what a result column is called."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star):
            return "?column?"
        return node.name if node.this.quoted else node.name.lower()
    if isinstance(node, exp.Cast):
        inner = column_name(node.this)
        if inner != "?column?":
            return inner
        try:
            pg, _ = type_of(node.to)
        except TranslationError:
            return "?column?"
        return pg.name
    if isinstance(node, exp.Case):
        return "case"
    if isinstance(node, exp.Coalesce):
        return "coalesce"
    if isinstance(node, exp.Exists):
        return "exists"
    name = SET_RETURNING_NAMES.get(type(node).__name__)
    if name is not None:
        return name
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower().split(".")[-1]
    if isinstance(node, exp.CurrentTimestamp):
        # sqlglot parses now() and CURRENT_TIMESTAMP alike; the text tells them apart
        return "now" if is_now_call(node) else "current_timestamp"
    if isinstance(node, exp.CurrentDate):
        return "current_date"
    if isinstance(node, exp.CurrentUser):
        return "current_user"
    if isinstance(node, exp.SessionUser):
        return "session_user"
    if isinstance(node, exp.CurrentSchema):
        return "current_schema"
    if isinstance(node, exp.CurrentCatalog):
        return "current_catalog"
    if isinstance(node, exp.Localtimestamp):
        return "localtimestamp"
    if isinstance(node, exp.Count):
        return "count"
    if isinstance(node, exp.Array):
        return "array"
    if isinstance(node, exp.ArrayAgg):
        return "array_agg"
    if isinstance(node, exp.LogicalAnd):
        return "bool_and"
    if isinstance(node, exp.LogicalOr):
        return "bool_or"
    if isinstance(node, exp.GroupConcat):
        return "string_agg"
    if isinstance(node, exp.Filter):
        return column_name(node.this)
    if isinstance(node, exp.Window):
        return column_name(node.this)
    if isinstance(node, exp.Extract):
        return "extract"
    if isinstance(node, _OPERATOR_NODES):
        return "?column?"
    if isinstance(node, exp.CurrentVersion):
        return "version"
    if isinstance(node, exp.TimestampTrunc):
        return "date_trunc"
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    if isinstance(node, exp.Paren):
        return column_name(node.this)
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return column_name(cast(exp.Expression, node.expression))
    return "?column?"


_OPERATOR_NODES = (exp.JSONExtract, exp.JSONExtractScalar, exp.JSONBExtract,
                   exp.JSONBExtractScalar, exp.ArrayContainsAll, exp.ArrayContainedBy,
                   exp.JSONBContains, exp.JSONBContainsTopKey, exp.JSONBContainsAnyTopKeys,
                   exp.JSONBContainsAllTopKeys, exp.Bracket, exp.Mod, exp.Pow)
"""Operators that sqlglot parses as functions: PostgreSQL calls their column ?column?."""


def is_now_call(node: exp.Expression) -> bool:
    """``now()`` (a function call) rather than the CURRENT_TIMESTAMP keyword."""
    start, end = node.meta.get("start"), node.meta.get("end")
    if start is None or end is None:
        return False
    return source_text.get()[start:end + 1].lower() == "now"


def type_of(node: exp.Expression) -> tuple[pgtypes.PgType, int]:
    """The PostgreSQL type a sqlglot DataType names."""
    text = node.sql("postgres")
    try:
        return pgtypes.lookup(text)
    except pgtypes.UnknownTypeError:
        raise TranslationError(f'type "{text.lower()}" does not exist', "42704") from None
    except pgtypes.PgValueError as exc:  # a bad type modifier
        raise TranslationError(str(exc), exc.sqlstate) from None


_BOOLEAN_NODES = (exp.Boolean, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And,
                  exp.Or, exp.Not, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike,
                  exp.Exists, exp.RegexpLike, exp.RegexpILike, exp.NullSafeEQ,
                  exp.NullSafeNEQ, exp.ArrayContainsAll, exp.ArrayContainedBy,
                  exp.JSONBContainsTopKey, exp.JSONBContainsAnyTopKeys,
                  exp.JSONBContainsAllTopKeys, exp.LogicalAnd, exp.LogicalOr)


def static_type(node: exp.Expression, kinds: tuple[str, ...]) -> tuple[int, int]:
    """A result column's type when the expression alone decides it; (0, -1) otherwise."""
    if isinstance(node, exp.Alias | exp.Paren | exp.Filter):
        return static_type(node.this, kinds)
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return static_type(cast(exp.Expression, node.expression), kinds)
    if isinstance(node, exp.Cast):
        try:
            pg, typmod = type_of(node.to)
        except TranslationError:
            return 0, -1
        return pg.oid, typmod
    if isinstance(node, exp.Literal):
        if node.is_string:
            return 25, -1
        kind = sqltext.number_kind(node.this) if re.fullmatch(r"[0-9.eE+-]+", node.this) \
            else "numeric"
        return _KIND_OIDS[kind], -1
    if isinstance(node, exp.Parameter):
        raw = node.this
        index = int(raw.this if isinstance(raw, exp.Literal) else str(raw)) - 1
        if 0 <= index < len(kinds):
            return _KIND_OIDS[kinds[index]], -1
        return 0, -1
    if isinstance(node, _BOOLEAN_NODES):
        return 16, -1
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
        return _arithmetic_type(node, kinds), -1
    if isinstance(node, exp.Neg):
        return static_type(node.this, kinds)[0], -1
    if isinstance(node, exp.Count):
        return 20, -1
    if isinstance(node, exp.Column):
        return _column_type(node, kinds), -1
    if isinstance(node, exp.Subquery):  # a scalar subquery: its one column's type
        body = node.this
        while isinstance(body, exp.Union | exp.Intersect | exp.Except | exp.Subquery):
            body = body.this
        if isinstance(body, exp.Select) and len(body.expressions) == 1:
            return static_type(body.expressions[0], kinds)
        return 0, -1
    if isinstance(node, exp.Min | exp.Max) and not node.expressions:
        return static_type(node.this, kinds)[0], -1
    if isinstance(node, exp.Sum | exp.Avg):
        argument = node.this.expressions[0] if isinstance(node.this, exp.Distinct) and \
            node.this.expressions else node.this
        oid = static_type(argument, kinds)[0]
        if isinstance(node, exp.Sum):
            return {21: 20, 23: 20, 20: 1700, 1700: 1700, 700: 700, 701: 701,
                    1186: 1186}.get(oid, 0), -1
        return {21: 1700, 23: 1700, 20: 1700, 1700: 1700, 700: 701, 701: 701,
                1186: 1186}.get(oid, 0), -1
    if isinstance(node, exp.DPipe | exp.Lower | exp.Upper | exp.Concat | exp.GroupConcat
                  | exp.JSONExtractScalar | exp.JSONBExtractScalar | exp.Substring
                  | exp.Trim | exp.Replace | exp.ConcatWs):
        return 25, -1
    if isinstance(node, exp.JSONExtract | exp.JSONBExtract):
        return 3802, -1
    if isinstance(node, exp.Length):
        return 23, -1
    if isinstance(node, exp.CurrentTimestamp):
        return 1184, -1
    if isinstance(node, exp.Localtimestamp):
        return 1114, -1
    if isinstance(node, exp.CurrentDate):
        return 1082, -1
    if isinstance(node, exp.CurrentUser | exp.SessionUser | exp.CurrentSchema
                  | exp.CurrentCatalog):
        return 19, -1
    if isinstance(node, exp.CurrentVersion):
        return 25, -1
    if isinstance(node, exp.Extract):
        return 1700, -1
    if isinstance(node, exp.TimestampTrunc):  # date_trunc keeps timestamp or timestamptz
        oid = static_type(node.this, kinds)[0]
        return (oid if oid in (1114, 1184) else 0), -1
    if isinstance(node, exp.Interval):
        return 1186, -1
    if isinstance(node, exp.Case):
        return _branches_type([node.args.get("default"), *(
            i.args.get("true") for i in node.args.get("ifs") or [])], kinds)
    if isinstance(node, exp.Coalesce | exp.Greatest | exp.Least):
        return _branches_type([node.this, *node.expressions], kinds)
    if isinstance(node, exp.Nullif):
        return static_type(node.this, kinds)
    if isinstance(node, exp.ArrayAgg):
        element = node.this.this if isinstance(node.this, exp.Order) else node.this
        oid, _ = static_type(element, kinds)
        array = pgtypes.BY_OID[oid].array_oid if oid in pgtypes.BY_OID else 0
        return array, -1
    if isinstance(node, exp.Window):
        return static_type(node.this, kinds)
    if isinstance(node, exp.ExplodingGenerateSeries | exp.GenerateSeries):
        start = static_type(node.args["start"], kinds)[0]
        end = static_type(node.args["end"], kinds)[0]
        if start in (1114, 1184):
            return start, -1
        return _promote(start, end) if start and end else 0, -1
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower().split(".")[-1]
        return FUNCTION_TYPES.get(name, 0), -1
    if isinstance(node, exp.Func):
        return FUNCTION_TYPES.get(node.sql_name().lower(), 0), -1
    return 0, -1


_DERIVED_DEPTH_MAX = 16
"""Derived tables followed to type a column (a recursive CTE refers to itself)."""


def _column_type(column: exp.Column, kinds: tuple[str, ...], depth: int = 0) -> int:
    """A column's type when the statement decides it: a catalog table's column (marked by
    ``rewrite.mark_catalog_columns``) or a derived table's (subquery, CTE) expression."""
    typname = column.meta.get("pg_type")
    if typname is not None:
        pg = pgtypes.BY_NAME.get(typname)
        return pg.oid if pg is not None else 0
    if depth >= _DERIVED_DEPTH_MAX or isinstance(column.this, exp.Star):
        return 0
    name = column.name if column.this.quoted else column.name.lower()
    qualifier = column.table.lower() if column.table else ""
    scope = column.parent_select
    while scope is not None:
        ctes = {cte.alias_or_name.lower(): cte.this for cte in scope.find_all(exp.CTE)}
        for item in _from_items(scope):
            alias = (item.alias_or_name or "").lower()
            if qualifier and qualifier != alias:
                continue
            body: exp.Expression | None = None
            if isinstance(item, exp.Subquery):
                body = item.this
            elif isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
                body = ctes.get(item.name.lower())
            while isinstance(body, exp.Union | exp.Intersect | exp.Except | exp.Subquery):
                body = body.this
            if isinstance(body, exp.Select):
                for expression in body.expressions:
                    if column_name(expression) == name:
                        inner = expression.this if isinstance(expression, exp.Alias) \
                            else expression
                        if isinstance(inner, exp.Column):
                            return _column_type(inner, kinds, depth + 1)
                        return static_type(inner, kinds)[0]
            if qualifier:
                return 0
        scope = scope.parent_select
    return 0


def _from_items(select: exp.Select) -> list[exp.Expression]:
    items: list[exp.Expression] = []
    source = select.args.get("from_") or select.args.get("from")
    if isinstance(source, exp.From):
        items.append(source.this)
    for join in select.args.get("joins") or []:
        items.append(join.this)
    return items


def _branches_type(branches: list[exp.Expression | None], kinds: tuple[str, ...]) -> tuple[
        int, int]:
    """The type of CASE/COALESCE: the branches' common type when they agree."""
    found = {static_type(b, kinds)[0] for b in branches
             if b is not None and not isinstance(b, exp.Null)}
    if len(found) == 1:
        return found.pop(), -1
    if found and found <= set(_NUMERIC_RANK) and 0 not in found:
        return max(found, key=_NUMERIC_RANK.__getitem__), -1
    return 0, -1


_NUMERIC_RANK = {21: 1, 23: 2, 20: 3, 1700: 4, 700: 5, 701: 6}
"""PostgreSQL's implicit numeric promotion: int2 < int4 < int8 < numeric < float4 < float8
(an integer operand with a numeric or float one takes the wider type)."""


def _promote(left: int, right: int) -> int:
    """The type of an arithmetic expression on operands of these types (0: unknown)."""
    if left not in _NUMERIC_RANK or right not in _NUMERIC_RANK:
        return 0
    return max(left, right, key=_NUMERIC_RANK.__getitem__)


_TEMPORAL_RESULTS = {  # (left, operator, right) -> result, PostgreSQL's operators
    (1184, "+", 1186): 1184, (1184, "-", 1186): 1184, (1186, "+", 1184): 1184,
    (1114, "+", 1186): 1114, (1114, "-", 1186): 1114, (1186, "+", 1114): 1114,
    (1082, "+", 23): 1082, (1082, "-", 23): 1082, (23, "+", 1082): 1082,
    (1082, "-", 1082): 23, (1082, "+", 1186): 1114, (1082, "-", 1186): 1114,
    (1184, "-", 1184): 1186, (1114, "-", 1114): 1186, (1186, "+", 1186): 1186,
    (1186, "-", 1186): 1186,
}


def _arithmetic_type(node: exp.Expression, kinds: tuple[str, ...]) -> int:
    left = static_type(node.this, kinds)[0]
    right = static_type(node.args["expression"], kinds)[0]
    operator = "+" if isinstance(node, exp.Add) else "-" if isinstance(node, exp.Sub) else ""
    temporal = _TEMPORAL_RESULTS.get((left, operator, right))
    if temporal is not None:
        return temporal
    if isinstance(node, exp.Mul | exp.Div) and 1186 in (left, right):
        return 1186 if _promote(left if right == 1186 else right, 23) else 0
    return _promote(left, right)


def outputs(select: exp.Expression, kinds: tuple[str, ...]) -> list[OutputColumn] | None:
    """The named output columns of a query; None when a star leaves it to SQLite."""
    if isinstance(select, exp.Union | exp.Intersect | exp.Except):
        return outputs(select.this, kinds)
    if isinstance(select, exp.Subquery):
        return outputs(select.this, kinds)
    if not isinstance(select, exp.Select):
        return None
    out: list[OutputColumn] = []
    for expression in select.expressions:
        if isinstance(expression, exp.Star) or (isinstance(expression, exp.Column)
                                                and isinstance(expression.this, exp.Star)):
            return None
        oid, typmod = static_type(expression, kinds)
        out.append(OutputColumn(column_name(expression), oid, typmod))
    return out


def alias(tree: exp.Expression, names: list[OutputColumn]) -> None:
    """Give every output expression of the (rewritten) query its PostgreSQL name."""
    select = tree
    while isinstance(select, exp.Union | exp.Intersect | exp.Except | exp.Subquery):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    new: list[exp.Expression] = []
    for expression, column in zip(select.expressions, names, strict=True):
        inner = expression.this if isinstance(expression, exp.Alias) else expression
        if isinstance(inner, exp.Column) and inner.name == column.name:
            new.append(inner)
        else:
            new.append(exp.Alias(this=inner, alias=exp.Identifier(this=column.name,
                                                                  quoted=True)))
    select.set("expressions", new)
