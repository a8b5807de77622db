"""What an INSERT or UPDATE assigns, as PostgreSQL assigns it: the coercion of each value to
its column's type, DEFAULT, and identity columns.

SQLite stores whatever it is given (its type affinity converts text that looks like a
number, and nothing else), where PostgreSQL converts a value to its column's type by the
assignment cast: numeric to an integer rounds, an int8 beyond int4 is refused (22003),
'2024-01-01' becomes a timestamp. Only the schema knows a column's type, so the translator
wraps each assigned value in ``_pg_coerce`` (``functions``), which looks the type up when
the statement runs:

- ``VALUES`` and ``SET``: a literal, an arithmetic value or another column's value (the kind
  tells a string literal, which is the type's input, from a number or a computed value);
  the client's parameters are cast at Bind instead (``schema.assignment_targets``);
- ``INSERT ... SELECT``: every column of the query. A plain select list is wrapped where it
  stands; a set operation, DISTINCT or a GROUP BY/ORDER BY by position would then see the
  coerced values rather than the query's, so the query becomes a CTE with positional column
  names and its rows are coerced. A ``SELECT *`` without a target column list has a width
  only the schema knows: its values are stored as they come.

DEFAULT in VALUES (SQLite has none): a column that is DEFAULT in every row is left out of the
column list (``DEFAULT VALUES`` when none is left); DEFAULT in some rows only, or without a
column list, and ``UPDATE ... SET c = DEFAULT``, become ``_pg_default(table, column)``, which
evaluates the column's default as the row is written.

Identity columns GENERATED ALWAYS refuse a value (428C9) unless the INSERT says OVERRIDING
SYSTEM VALUE; with OVERRIDING USER VALUE every identity column takes its default whatever
the VALUES give it (``_pg_user_value``). Which columns they are is in the schema, so the check runs with it: the
columns a statement gives values travel in the kind of a ``_pg_coerce`` call of its first
row that the statement makes anyway (``functions`` checks them, once per row, with the
column types it has looked up), and when there is none, one is added around the first
value. A statement with the client's parameters (the extended protocol) gets no added call:
the server checks it at Parse (``schema.check_identity``), as PostgreSQL does when it
analyses the statement. The check riding on a row's values runs only if there is a row: an
UPDATE that matches none, or an INSERT ... SELECT that selects none, is not refused (it
changes nothing), where PostgreSQL refuses it before it runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

from sqlglot import exp

from borealis.protocol.postgres.nodes import call, identifier_name, string_literal
from borealis.protocol.postgres.statement import unsupported

if TYPE_CHECKING:
    from borealis.protocol.postgres.rewrite import Rewriter

SOURCE_CTE = "_borealis_source"
"""The CTE an INSERT's query becomes when its rows are coerced after it (a ``_borealis_``
name: no user table can take it)."""

NO_COERCION = "-"
"""The kind of a ``_pg_coerce`` call that only checks identity columns."""

First = list[tuple[exp.Expression, str, exp.Anonymous | None]]
"""The values of a statement's first row: (the value, its column, its ``_pg_coerce`` call
or None)."""


def _is_default(node: exp.Expression) -> bool:
    """The DEFAULT keyword (sqlglot reads it as a Var in VALUES, a column in SET)."""
    if isinstance(node, exp.Column) and not node.table and isinstance(node.this,
                                                                      exp.Identifier):
        return not node.this.quoted and node.name.upper() == "DEFAULT"
    return isinstance(node, exp.Var) and str(node.this).upper() == "DEFAULT"


def _items(row: exp.Expression) -> list[exp.Expression]:
    return list(row.expressions) if isinstance(row, exp.Tuple) else [row]


def _default(table: str, column: str | int) -> exp.Expression:
    """``table``'s default for ``column`` (a name, or a position), evaluated when the
    statement runs (``session._column_default``)."""
    which = string_literal(column) if isinstance(column, str) else \
        exp.Literal.number(column)
    return call("_pg_default", string_literal(table), which)


def _user_value(node: exp.Expression, table: str, column: str, index: int) -> None:
    """OVERRIDING USER VALUE: ``node`` unless its column is an identity column, whose
    default it then takes (``session._user_value``)."""
    placeholder = exp.Null()
    node.replace(placeholder)
    which = exp.Literal.number(index) if column.startswith("#") else string_literal(column)
    placeholder.replace(call("_pg_user_value", string_literal(table), which, node))


def drop_defaults(insert: exp.Insert, values: exp.Values, columns: list[str],
                  table: str) -> list[str]:
    """Take DEFAULT out of an INSERT's VALUES (SQLite has none): the columns left. A column
    that is DEFAULT in every row is left out; any other DEFAULT becomes the default,
    evaluated as its row is written."""
    rows = [_items(row) for row in values.expressions]
    defaults = [{i for i, item in enumerate(items) if _is_default(item)} for items in rows]
    if not any(defaults):
        return columns
    dropped = set.intersection(*defaults) if columns else set()
    width = len(rows[0])
    if dropped and len(dropped) == width:
        target = insert.this.this if isinstance(insert.this, exp.Schema) else insert.this
        insert.set("this", target)
        insert.set("expression", None)
        insert.set("default", True)
        return []
    for row, items in zip(values.expressions, rows, strict=True):
        for i, item in enumerate(items):
            if i not in dropped and _is_default(item):
                item.replace(_default(table, columns[i] if i < len(columns) else i))
        if dropped and isinstance(row, exp.Tuple):
            row.set("expressions", [item for i, item in enumerate(row.expressions)
                                    if i not in dropped])
    if dropped:
        schema = insert.this
        assert isinstance(schema, exp.Schema)
        schema.set("expressions", [c for i, c in enumerate(schema.expressions)
                                   if i not in dropped])
    return [c for i, c in enumerate(columns) if i not in dropped]


def coerce_insert(rw: Rewriter, insert: exp.Insert) -> None:
    """Coerce an INSERT's values to its columns' types and check its identity columns."""
    table, columns = rw.insert_target(insert)
    if not table:
        return
    values = insert.expression
    if isinstance(values, exp.Values):
        columns = drop_defaults(insert, values, columns, table)
        if insert.args.get("default"):
            return
        given: list[str] = []
        first: First = []
        for number, row in enumerate(values.expressions):
            for index, item in enumerate(_items(row)):
                column = columns[index] if index < len(columns) else f"#{index}"
                if column not in given:
                    given.append(column)
                kind = rw.assigned_kind(item)
                coerced = rw.coerce(item, kind, column, (table,)) if kind else None
                if rw.ctx.overriding == "user":  # an identity column takes its default
                    _user_value(coerced or item, table, column, index)
                if number == 0:
                    first.append((coerced or item, column, coerced))
        _check_identity(rw, "INSERT", table, given, first)
    elif isinstance(values, exp.Query):
        if rw.ctx.overriding == "user":
            raise unsupported("OVERRIDING USER VALUE with a query")
        first = _coerce_query(rw, insert, values, table, columns)
        _check_identity(rw, "INSERT", table, [c for _, c, _ in first] or ["*"], first)
    conflict = insert.args.get("conflict")
    if isinstance(conflict, exp.OnConflict):
        coerce_assignments(rw, conflict.expressions, table)


def coerce_update(rw: Rewriter, update: exp.Update) -> None:
    """Coerce an UPDATE's assigned values and check its identity columns."""
    table = rw.table_name(update.this)
    if table:
        first = coerce_assignments(rw, update.expressions, table)
        _check_identity(rw, "UPDATE", table, [c for _, c, _ in first], first)


def coerce_assignments(rw: Rewriter, assignments: list[exp.Expression], table: str) -> First:
    """``SET column = value, ...`` (UPDATE, ON CONFLICT DO UPDATE): each value coerced."""
    out: First = []
    for assignment in assignments:
        if isinstance(assignment, exp.EQ) and isinstance(assignment.this, exp.Column):
            value = assignment.expression
            column = identifier_name(assignment.this)
            if _is_default(value):   # the default, evaluated as the row is written
                assignment.set("expression", _default(table, column))
                continue
            kind = rw.assigned_kind(value)
            coerced = rw.coerce(value, kind, column, (table,)) if kind else None
            out.append((coerced or value, column, coerced))
    return out


def _is_star(node: exp.Expression) -> bool:
    return isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(
        node.this, exp.Star))


def _by_position(select: exp.Select) -> bool:
    """Whether the select groups or sorts by a column's position (which would then be the
    coerced value)."""
    for clause in (select.args.get("group"), select.args.get("order")):
        if clause is not None and any(
                isinstance(e.this if isinstance(e, exp.Ordered) else e, exp.Literal)
                for e in clause.expressions):
            return True
    return False


def _coerce_query(rw: Rewriter, insert: exp.Insert, query: exp.Query, table: str,
                  columns: list[str]) -> First:
    """INSERT ... SELECT: the query's columns coerced to the target columns' types."""
    leftmost: exp.Expression = cast(exp.Expression, query)
    while isinstance(leftmost, exp.Union | exp.Intersect | exp.Except | exp.Subquery):
        leftmost = leftmost.this
    if not isinstance(leftmost, exp.Select):
        return []
    star = any(_is_star(e) for e in leftmost.expressions)
    if leftmost is query and not star and not leftmost.args.get("distinct") and \
            not _by_position(leftmost):
        first: First = []
        for index, expression in enumerate(list(leftmost.expressions)):
            column = columns[index] if index < len(columns) else f"#{index}"
            value = expression.this if isinstance(expression, exp.Alias) else expression
            kind = rw.assigned_kind(value) or ("" if isinstance(value, exp.Null) else "v")
            coerced = rw.coerce(value, kind, column, (table,)) if kind else None
            first.append((coerced or value, column, coerced))
        return first
    width = len(columns) if columns else (None if star else len(leftmost.expressions))
    if width is None:  # SELECT * into every column: the width is the schema's
        if not rw.ctx.overriding:
            # no value to coerce; the identity check on its own, once (a constant)
            query.replace(exp.Null())
            check = call("_pg_coerce", exp.Null(), string_literal(identity_kind(
                NO_COERCION, "INSERT", ["*"])), string_literal("#0"), string_literal(table))
            insert.set("expression", exp.Select(expressions=[exp.Star()]).from_(
                exp.Subquery(this=query)).where(exp.Is(this=check, expression=exp.Null())))
        return []
    names = [f"c{i}" for i in range(width)]
    body = exp.Select(expressions=[exp.column(n) for n in names]).from_(SOURCE_CTE)
    first = []
    for index, expression in enumerate(list(body.expressions)):
        column = columns[index] if index < len(columns) else f"#{index}"
        coerced = rw.coerce(expression, "v", column, (table,))
        first.append((coerced or expression, column, coerced))
    query.replace(exp.Null())
    body.set("with_", exp.With(expressions=[exp.CTE(this=query, alias=exp.TableAlias(
        this=exp.Identifier(this=SOURCE_CTE), columns=[exp.Identifier(this=n) for n in names]))]))
    insert.set("expression", body)
    return first


def identity_kind(kind: str, verb: str, given: list[str]) -> str:
    """A ``_pg_coerce`` kind that also checks the identity columns of ``given``."""
    return kind + json.dumps([verb, *given], separators=(",", ":"))


def _check_identity(rw: Rewriter, verb: str, table: str, given: list[str],
                    first: First) -> None:
    """Make the statement refuse a value for an identity column GENERATED ALWAYS."""
    if not given or rw.ctx.overriding in ("system", "user"):
        return
    rw.ctx.identity_check = (verb, table, *given)
    for _, _, coerced in first:
        if coerced is not None:
            value, kind, *rest = coerced.expressions
            coerced.set("expressions", [
                value, string_literal(identity_kind(str(kind.this), verb, given)), *rest])
            return
    if rw.ctx.max_param > rw.ctx.literal_params or not first:
        return  # the client's parameters: checked at Parse
    value, column, _ = first[0]
    placeholder = exp.Null()
    value.replace(placeholder)
    placeholder.replace(call("_pg_coerce", value,
                             string_literal(identity_kind(NO_COERCION, verb, given)),
                             string_literal(column), string_literal(table)))
