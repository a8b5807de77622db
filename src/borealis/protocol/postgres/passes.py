"""Whole-tree passes of the translation, before and after the node-by-node rewrite.

Before (``rewrite.Rewriter.rewrite`` runs them on its copy of the tree): ``pg_catalog.f()``
calls unwrapped, ``now()`` told apart from CURRENT_TIMESTAMP, the columns of catalog tables
marked with their PostgreSQL types (``mark_catalog_columns``: int2vector subscripts start
at 0), lambdas that sqlglot reads into ``f(d -> 'k')`` made JSON operators again
(``undo_lambdas``), set-returning functions made SQLite table-valued functions
(``set_returning``), column lists of derived tables moved inside them
(``name_derived_columns``) and LATERAL one-row subqueries inlined (``inline_laterals``).
After: a query's reg* results named rather than numbered (``name_reg_outputs``).

Set-returning functions. ``generate_series``, ``unnest``, ``generate_subscripts`` and the
catalog's ``pg_partition_ancestors`` are table-valued functions (``functions``): in FROM, one
whose arguments read another FROM item of its query (PostgreSQL's implicit LATERAL) stays a
table function there, its columns renamed in the query; otherwise it becomes a subquery that
names its column as PostgreSQL does (the alias, or the function's name). In the select list,
the functions join the query's FROM, several of them in lockstep (``_pg_rows_from``) as
PostgreSQL 10+ runs them; refused in a query that aggregates (PostgreSQL expands them after
the aggregation).
"""

from __future__ import annotations

from typing import Any, cast

from sqlglot import exp

from borealis.protocol.postgres.functions import ROWS_FROM_ARGUMENTS_MAX, ROWS_FROM_FUNCTIONS_MAX
from borealis.protocol.postgres.nodes import (
    REG_OUT,
    VECTOR_TYPES,
    call,
    catalog_column_types,
    catalog_table,
    catalog_table_functions,
    from_items,
    identifier_name,
    name_of,
    reg_type_of,
    string_literal,
)
from borealis.protocol.postgres.statement import OutputColumn, TranslationError, unsupported


def name_reg_outputs(tree: exp.Expression, names: list[OutputColumn] | None) -> None:
    """A query's reg* results (``c.oid::regclass``) as PostgreSQL prints them, names rather
    than OIDs, typed text: only the query's own result (a reg* value compared inside the
    query stays an OID)."""
    if isinstance(tree, exp.Union | exp.Intersect | exp.Except):
        name_reg_outputs(tree.this, names)
        name_reg_outputs(tree.expression, names)
        return
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    if not isinstance(tree, exp.Select):
        return
    for position, expression in enumerate(tree.expressions):
        inner = expression.this if isinstance(expression, exp.Alias) else expression
        reg = reg_type_of(inner)
        if reg is None:
            continue
        placeholder = exp.Null()
        inner.replace(placeholder)
        out = call(f"_pg_{REG_OUT.get(reg, reg)}_out", inner)
        if placeholder is expression:
            tree.expressions[position] = out
            out.parent = tree
        else:
            placeholder.replace(out)
        if names is not None and position < len(names):
            names[position] = OutputColumn(names[position].name, 25)


def undo_lambdas(tree: exp.Expression) -> exp.Expression:
    """sqlglot reads ``f(d -> 'k')`` as a lambda ``d -> 'k'`` (PostgreSQL has none): it is
    the JSON operator, associating to the left (``d -> 'a' -> 'b'`` is ``(d -> 'a') -> 'b'``
    where the lambda reading nests the other way)."""
    def operand(identifier: exp.Expression, body: exp.Expression) -> exp.Expression:
        if isinstance(body, exp.JSONExtract | exp.JSONExtractScalar):
            return type(body)(this=operand(identifier, body.this),
                              expression=body.expression)
        return exp.JSONExtract(this=exp.Column(this=identifier), expression=body)

    for lam in list(tree.find_all(exp.Lambda)):
        parameters = lam.expressions
        if len(parameters) != 1 or not isinstance(parameters[0], exp.Identifier):
            raise unsupported(f"the lambda {lam.sql('postgres')[:60]}")
        replacement = operand(parameters[0], lam.this)
        if lam is tree:
            return replacement
        lam.replace(replacement)
    return tree


def post_order(node: exp.Expression, fn: Any) -> exp.Expression:
    """Rewrite ``node``'s children first, then ``node`` (sqlglot's ``transform`` does not
    visit the children of a node it replaced)."""
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, post_order(value, fn))
        elif isinstance(value, list):
            node.set(key, [post_order(v, fn) if isinstance(v, exp.Expression) else v
                           for v in value])
    out = fn(node)
    assert isinstance(out, exp.Expression)
    return out


def strip_catalog_dots(tree: exp.Expression) -> exp.Expression:
    """``pg_catalog.count(x)`` parses as a Dot of the schema and the call: keep the call."""
    for dot in list(tree.find_all(exp.Dot)):
        schema = dot.this
        if isinstance(schema, exp.Identifier) and schema.name.lower() == "pg_catalog" and \
                isinstance(dot.expression, exp.Func):
            function = cast(exp.Expression, dot.expression)
            if dot is tree:
                return function
            dot.replace(function)
    return tree


def mark_catalog_columns(tree: exp.Expression) -> None:
    """Mark each column of a catalog table with its PostgreSQL type (``meta['pg_type']``):
    int2vector and oidvector subscripts start at 0, array literals compare as JSON, and the
    result column has that type (``outputs``)."""
    for column in tree.find_all(exp.Column):
        if isinstance(column.this, exp.Identifier):
            found = _catalog_column_type(column)
            if found is not None:
                column.meta["pg_type"] = found


def _catalog_column_type(column: exp.Column) -> str | None:
    name = column.name.lower()
    qualifier = column.table.lower() if column.table else ""
    scope = column.parent_select
    while scope is not None:
        for item in from_items(scope):
            if not isinstance(item, exp.Table) or not isinstance(item.this, exp.Identifier):
                continue
            alias = (item.alias or item.name).lower()
            if qualifier and qualifier != alias:
                continue
            mapped = catalog_table(item.db.lower() if item.db else None, item.name.lower())
            types = catalog_column_types(mapped) if mapped else {}
            if name in types:
                return types[name]
            if qualifier:
                return None
        scope = scope.parent_select
    return None


def inline_laterals(tree: exp.Expression) -> exp.Expression:
    """``CROSS JOIN LATERAL (SELECT expr) AS o(n)`` without a FROM is one row of
    expressions over the row before it: replace ``o.n`` by ``expr`` and drop the join
    (SQLite has no LATERAL). Any other LATERAL is refused."""
    for join in list(tree.find_all(exp.Join)):
        lateral = join.this
        if not isinstance(lateral, exp.Lateral):
            continue
        body = lateral.this
        if isinstance(body, exp.Subquery):
            body = body.this
        alias = lateral.args.get("alias")
        if not isinstance(body, exp.Select) or body.args.get("from_") or \
                body.args.get("from") or alias is None:
            raise unsupported("LATERAL subqueries with a FROM clause")
        names = [c.name.lower() for c in alias.columns] or [
            e.alias_or_name.lower() for e in body.expressions]
        values = {name: (e.this if isinstance(e, exp.Alias) else e)
                  for name, e in zip(names, body.expressions, strict=False)}
        table = alias.name.lower()
        join.pop()
        for column in list(tree.find_all(exp.Column)):
            if column.table.lower() == table and column.name.lower() in values:
                column.replace(exp.Paren(this=values[column.name.lower()].copy()))
    return tree


_SRF_NAMES = ("generate_series", "unnest", "generate_subscripts")


_ROWS_FROM_TABLES = ("_pg_generate_series", "_pg_unnest", "_pg_generate_subscripts")


def _srf_call(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """(PostgreSQL name, arguments) of a set-returning function call, or None."""
    if isinstance(node, exp.ExplodingGenerateSeries | exp.GenerateSeries):
        args = [node.args["start"], node.args["end"]]
        if node.args.get("step") is not None:
            args.append(node.args["step"])
        return "generate_series", args
    if isinstance(node, exp.Explode):
        return "unnest", [node.this]
    if isinstance(node, exp.Unnest):
        return "unnest", list(node.expressions)
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower().removeprefix("pg_catalog.")
        if name in _SRF_NAMES or name in catalog_table_functions():
            return name, list(node.expressions)
    return None


def _srf_table(name: str, args: list[exp.Expression]) -> tuple[exp.Expression, list[str]]:
    """The SQLite table-valued function for a set-returning call, and its columns."""
    if name == "generate_subscripts":
        if len(args) not in (2, 3):
            raise TranslationError("generate_subscripts takes 2 or 3 arguments", "42883")
        reverse = args[2] if len(args) == 3 else exp.Literal.number(0)
        lower = exp.Literal.number(_lower_bound_of_source(args[0]))
        return call("_pg_generate_subscripts", args[0], args[1], reverse, lower), [
            "value", "ordinality"]
    if name == "unnest":
        if len(args) > 1:  # unnest(a, b, ...): the arrays side by side (ROWS FROM)
            if len(args) > ROWS_FROM_FUNCTIONS_MAX:
                raise unsupported(f"unnest() of more than {ROWS_FROM_FUNCTIONS_MAX} arrays")
            spec = ",".join(["_pg_unnest:1"] * len(args))
            return call("_pg_rows_from", string_literal(spec), *args), [
                *(f"v{i}" for i in range(len(args))), "ordinality"]
        if not args:
            raise TranslationError("function unnest() does not exist", "42883")
        return call("_pg_unnest", args[0]), ["value", "ordinality"]
    if name == "generate_series":
        return call("_pg_generate_series", *args), ["value", "ordinality"]
    table = catalog_table_functions()[name]
    return call(table, *args), ["relid"]


def _lower_bound_of_source(node: exp.Expression) -> int:
    """The lower bound of an array argument before the rewrite (a marked vector column)."""
    while isinstance(node, exp.Paren | exp.Cast):
        node = node.this
    return 0 if isinstance(node, exp.Column) and node.meta.get("pg_type") in VECTOR_TYPES \
        else 1


def _references_from(args: list[exp.Expression], select: exp.Select,
                     skip: exp.Expression) -> bool:
    """Whether the arguments read a column of another FROM item of ``select`` (LATERAL)."""
    names = set()
    for item in from_items(select):
        if item is skip:
            continue
        alias = item.alias_or_name.lower() if isinstance(item, exp.Expression) else ""
        if alias:
            names.add(alias)
    for arg in args:
        for column in arg.find_all(exp.Column):
            if column.parent_select is not select:
                continue
            qualifier = column.table.lower()
            if not qualifier or qualifier in names:
                return True
    return False


def set_returning(select: exp.Select) -> None:
    """Set-returning functions of one SELECT (FROM items and select list) as SQLite
    table-valued functions (see the module docstring)."""
    direct: dict[str, dict[str, str]] = {}  # alias -> PostgreSQL column -> SQLite column
    for item in from_items(select):
        _from_function(select, item, direct)
    _select_list_function(select, direct)
    if direct:
        _point_columns(select, direct)


def _from_function(select: exp.Select, item: exp.Expression,
                   direct: dict[str, dict[str, str]]) -> None:
    node = item
    alias = item.args.get("alias")
    ordinality = False
    if isinstance(node, exp.Lateral):
        ordinality = bool(node.args.get("ordinality"))
        node = node.this
    if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
        alias = alias or node.args.get("alias")
        ordinality = ordinality or bool(node.args.get("ordinality"))
        node = node.this
    found = _srf_call(node)
    if found is None:
        return
    name, args = found
    if isinstance(node, exp.Unnest):
        offset = node.args.get("offset")
        if offset is True or isinstance(offset, exp.Identifier):  # WITH ORDINALITY [AS t(.., n)]
            ordinality = True
        alias = alias or node.args.get("alias")
    table_name = alias.name.lower() if alias is not None and alias.name else name
    columns = [c.name for c in alias.columns] if alias is not None else []
    lateral = _references_from(args, select, item)  # before the call takes the arguments
    source, sqlite_columns = _srf_table(name, args)
    pg_columns: list[str] = []
    catalog_function = name in catalog_table_functions()
    if catalog_function:  # its column has its own name (an OUT parameter)
        pg_columns = columns[:1] or ["relid"]
        if ordinality:
            if lateral:
                raise unsupported(f"{name}() WITH ORDINALITY over another table's column")
            pg_columns.append(columns[1] if len(columns) > 1 else "ordinality")
    else:
        width = len(sqlite_columns) - 1   # the values, without the ordinality
        pg_columns = [columns[i] if i < len(columns) else table_name for i in range(width)]
        if ordinality:
            offset_name = None
            if isinstance(node, exp.Unnest) and isinstance(node.args.get("offset"),
                                                           exp.Identifier):
                offset_name = node.args["offset"].name
            pg_columns.append(offset_name or (columns[width] if len(columns) > width
                                              else "ordinality"))
    if lateral:
        replacement: exp.Expression = exp.Table(this=source, alias=exp.TableAlias(
            this=exp.Identifier(this=table_name, quoted=True)))
        direct[table_name] = dict(zip(pg_columns, sqlite_columns, strict=False))
    else:
        values: list[exp.Expression] = [exp.column(c, quoted=True) for c in sqlite_columns]
        if catalog_function:  # the catalog's table has no ordinality: number the rows
            values.append(exp.Window(this=exp.RowNumber()))
        body = exp.Select(expressions=[
            exp.Alias(this=value, alias=exp.Identifier(this=pg, quoted=True))
            for pg, value in zip(pg_columns, values, strict=False)]).from_(exp.Table(this=source))
        replacement = exp.Subquery(this=body, alias=exp.TableAlias(
            this=exp.Identifier(this=table_name, quoted=True)))
    item.replace(replacement)


def _same_select_nodes(node: exp.Expression) -> list[exp.Expression]:
    """``node`` and its descendants, without descending into nested queries."""
    out = [node]
    for child in node.iter_expressions():
        if isinstance(child, exp.Select | exp.Subquery | exp.Union | exp.Intersect
                      | exp.Except):
            continue
        out.extend(_same_select_nodes(child))
    return out


def _select_list_function(select: exp.Select, direct: dict[str, dict[str, str]]) -> None:
    calls = []
    for expression in select.expressions:
        for node in _same_select_nodes(expression):
            if _srf_call(node) is not None:
                calls.append(node)
    if not calls:
        return
    if select.args.get("group") is not None or select.args.get("having") is not None or \
            any(select.find_all(exp.AggFunc, exp.Window)):
        raise unsupported("a set-returning function in the select list of an aggregate")
    alias = "_borealis_set_returning"
    tables = []
    for node in calls:
        found = _srf_call(node)
        assert found is not None
        tables.append(_srf_table(*found))
    if len(calls) == 1:
        source, sqlite_columns = tables[0]
        columns = [sqlite_columns[0]]
    else:  # several: in lockstep (ROWS FROM)
        if any(name_of(c) not in _ROWS_FROM_TABLES for c, _ in tables):
            raise unsupported("a catalog set-returning function beside another one")
        if len(calls) > ROWS_FROM_FUNCTIONS_MAX:
            raise unsupported(f"more than {ROWS_FROM_FUNCTIONS_MAX} set-returning functions "
                              "in one select list")
        spec = ",".join(f"{name_of(c)}:{len(c.expressions)}" for c, _ in tables)
        arguments = [a for c, _ in tables for a in c.expressions]
        if len(arguments) > ROWS_FROM_ARGUMENTS_MAX:
            raise unsupported("set-returning functions with this many arguments")
        source = call("_pg_rows_from", string_literal(spec), *arguments)
        columns = [f"v{i}" for i in range(len(calls))]
    _expand_star(select, direct)
    for node, column in zip(calls, columns, strict=True):
        node.replace(exp.column(column, table=alias, quoted=True))
    table = exp.Table(this=source, alias=exp.TableAlias(this=exp.Identifier(this=alias,
                                                                            quoted=True)))
    if select.args.get("from_") is None and select.args.get("from") is None:
        select.set("from_", exp.From(this=table))
    else:
        select.append("joins", exp.Join(this=table))


def _expand_star(select: exp.Select, direct: dict[str, dict[str, str]]) -> None:
    """``*`` as each FROM item's columns, so that a joined table function adds none."""
    if not any(isinstance(e, exp.Star) for e in select.expressions):
        return
    if any(j.args.get("using") or j.args.get("method") for j in select.args.get("joins")
           or []):
        raise unsupported("SELECT * with USING or NATURAL joins and a set-returning function")
    expanded: list[exp.Expression] = []
    for expression in select.expressions:
        if not isinstance(expression, exp.Star):
            expanded.append(expression)
            continue
        for item in from_items(select):
            name = item.alias_or_name
            if not name:
                raise unsupported("SELECT * over an unnamed subquery and a set-returning "
                                  "function")
            columns = direct.get(name.lower())
            if columns is None:
                expanded.append(exp.Column(this=exp.Star(), table=exp.Identifier(
                    this=name, quoted=True)))
            else:
                expanded.extend(exp.Alias(this=exp.column(sqlite, table=name, quoted=True),
                                          alias=exp.Identifier(this=pg, quoted=True))
                                for pg, sqlite in columns.items())
    select.set("expressions", expanded)


def _point_columns(select: exp.Select, direct: dict[str, dict[str, str]]) -> None:
    """Columns of a LATERAL table function, named as PostgreSQL names them, read from the
    SQLite table-valued function's own columns."""
    _expand_star(select, direct)
    for column in list(select.find_all(exp.Column)):
        if isinstance(column.this, exp.Star):
            continue
        qualifier = column.table.lower() if column.table else ""
        name = column.name
        if qualifier:
            mapping = direct.get(qualifier)
            if mapping is not None and name in mapping:
                column.replace(exp.column(mapping[name], table=qualifier, quoted=True))
            continue
        for alias, mapping in direct.items():
            if name in mapping:
                column.replace(exp.column(mapping[name], table=alias, quoted=True))
                break


def name_derived_columns(tree: exp.Expression) -> None:
    """``(VALUES ...) AS v(a, b)`` and ``(SELECT ...) AS s(a, b)``: SQLite has no column
    list on a derived table, so the columns are named inside it."""
    for alias in list(tree.find_all(exp.TableAlias)):
        derived = alias.parent
        names = list(alias.columns)
        if not names or not isinstance(derived, exp.Values | exp.Subquery):
            continue
        if isinstance(derived, exp.Values):
            width = len(derived.expressions[0].expressions) if isinstance(
                derived.expressions[0], exp.Tuple) else 1
            body = derived.copy()
            body.set("alias", None)
            select = exp.Select(expressions=[
                exp.Alias(this=exp.column(f"column{i + 1}"), alias=exp.Identifier(
                    this=identifier_name(name), quoted=True))
                for i, name in enumerate(names[:width])]).from_(exp.Subquery(this=body))
            alias.set("columns", None)
            derived.replace(exp.Subquery(this=select, alias=alias.copy()))
            continue
        inner = derived.this
        while isinstance(inner, exp.Union | exp.Intersect | exp.Except):
            inner = inner.this
        if not isinstance(inner, exp.Select) or any(
                isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(
                    e.this, exp.Star)) for e in inner.expressions):
            raise unsupported("column names for a derived table with SELECT *")
        expressions = list(inner.expressions)
        for i, name in enumerate(names[:len(expressions)]):
            value = expressions[i].this if isinstance(expressions[i], exp.Alias) \
                else expressions[i]
            expressions[i] = exp.Alias(this=value, alias=exp.Identifier(
                this=identifier_name(name), quoted=True))
        inner.set("expressions", expressions)
        alias.set("columns", None)
