"""Small constructors and tests of sqlglot nodes that the translator's passes share
(``rewrite``, ``passes``), and its view of the catalog: which names are catalog tables and
functions, and the PostgreSQL type of a catalog table's column.
"""

from __future__ import annotations

import re

from sqlglot import exp

from borealis.protocol.postgres import catalog

REG_TYPES = frozenset({"regclass", "regtype", "regnamespace", "regproc", "regprocedure",
                        "regoper", "regrole"})


REG_OUT = {"regprocedure": "regproc", "regoper": "regproc"}


def reg_type_of(node: exp.Expression) -> str | None:
    """The reg* type of a (rewritten) value: a reg* cast or a catalog column of one."""
    while isinstance(node, exp.Paren):
        node = node.this
    name = name_of(node)
    if name.startswith("_pg_reg") and name[len("_pg_"):] in REG_TYPES:
        return name[len("_pg_"):]
    typname = node.meta.get("pg_type") if isinstance(node, exp.Column) else None
    return typname if typname in REG_TYPES else None


VECTOR_TYPES = ("int2vector", "oidvector")


def catalog_functions() -> frozenset[str]:
    return catalog.CATALOG_FUNCTIONS


def catalog_table(schema: str | None, name: str) -> str | None:
    return catalog.catalog_table_name(schema, name)


def catalog_column_types(sqlite_name: str) -> dict[str, str]:
    return catalog.catalog_column_types(sqlite_name)


def literal_int(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    if isinstance(node, exp.Neg):
        inner = literal_int(node.this)
        return -inner if inner is not None else None
    return None


def call(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def name_of(call: exp.Expression) -> str:
    return str(call.this).lower() if isinstance(call, exp.Anonymous) else ""


def string_literal(text: str) -> exp.Literal:
    return exp.Literal.string(text)


def numeric_literal(text: str) -> exp.Literal:
    literal = exp.Literal.string(text)
    literal.meta["numeric"] = True
    return literal


def is_numeric_literal(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and bool(node.meta.get("numeric"))


def identifier_name(node: exp.Expression) -> str:
    identifier = node.this if isinstance(node, exp.Column) else node
    if isinstance(identifier, exp.Identifier):
        return identifier.name if identifier.quoted else identifier.name.lower()
    return node.name.lower()


def is_literal(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) or (isinstance(node, exp.Var)
                                             and str(node.this).startswith("?"))


def lower_bound(node: exp.Expression) -> int:
    """1, or 0 for an int2vector/oidvector (or one cast to an array, which keeps it)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column) and node.meta.get("pg_type") in VECTOR_TYPES:
        return 0
    return int(node.meta.get("lower", 1))


def from_items(select: exp.Select) -> list[exp.Expression]:
    items: list[exp.Expression] = []
    source = select.args.get("from_") or select.args.get("from")
    if isinstance(source, exp.From):
        items.append(source.this)
    for join in select.args.get("joins") or []:
        items.append(join.this)
    return items


def catalog_table_functions() -> dict[str, str]:
    return catalog.CATALOG_TABLE_FUNCTIONS


def func_args(node: exp.Func) -> list[exp.Expression]:
    args: list[exp.Expression] = []
    for key in node.arg_types:
        value = node.args.get(key)
        if isinstance(value, list):
            args.extend(v for v in value if isinstance(v, exp.Expression))
        elif isinstance(value, exp.Expression):
            args.append(value)
    return args


def feature_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Func):  # named as PostgreSQL spells it, not as sqlglot does
        name = node.sql("postgres").split("(", 1)[0].strip().lower() or node.sql_name()
        return f"the function {name}()"
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(node).__name__).lower()
    return f"{words} ({node.sql('postgres')[:60]})"
