"""The result columns of a query as PostgreSQL names and types them.

PostgreSQL names an unaliased result column after its expression (FigureColname: the
column's name, the function's, ``?column?``...); SQLite would name it after the
expression's text. ``outputs`` reads the statement as PostgreSQL wrote it (before
``rewrite``) and gives each column its name, ``alias`` then names the rewritten expressions
so. The columns' types are ``exprtypes``' (PostgreSQL's typing rules, resolved against the
schema at Describe); a plain column's type the server learns when the statement is
prepared (``types.type_from_decltype`` of its declared type).
"""

from __future__ import annotations

import contextvars
from typing import cast

from sqlglot import exp

from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.statement import OutputColumn, TranslationError

source_text: contextvars.ContextVar[str] = contextvars.ContextVar("source", default="")
"""The statement being translated (``now()`` and CURRENT_TIMESTAMP parse alike)."""

SET_RETURNING_NAMES = {"ExplodingGenerateSeries": "generate_series",
                       "GenerateSeries": "generate_series", "Explode": "unnest",
                       "Unnest": "unnest"}

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
        name = str(node.this).lower().split(".")[-1]
        return name.removeprefix("_borealis_") if name.startswith("_borealis_to_") else name
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


def outputs(select: exp.Expression) -> list[OutputColumn] | None:
    """The named output columns of a query (typed by ``exprtypes.typed_outputs``); None
    when a star leaves them to SQLite."""
    if isinstance(select, exp.Union | exp.Intersect | exp.Except):
        return outputs(select.this)
    if isinstance(select, exp.Subquery):
        return outputs(select.this)
    if not isinstance(select, exp.Select):
        return None
    out: list[OutputColumn] = []
    for expression in select.expressions:
        if isinstance(expression, exp.Star) or (isinstance(expression, exp.Column)
                                                and isinstance(expression.this, exp.Star)):
            return None
        out.append(OutputColumn(column_name(expression)))
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
