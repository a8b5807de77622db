"""The SQL text of the emulated catalog, and its SQL functions.

``catalog`` owns the data (the live SQLite schema seen as ``pg_catalog`` rows); this module
owns the text on either side of it: what the SQLite DDL says that the pragmas do not
(constraint names, CHECK and generated-column expressions, deferrability, MATCH FULL, index
expressions and predicates: ``parse_table_ddl``, ``parse_index_ddl``), and PostgreSQL's
spelling of an identifier (``quote_ident``), of a generated name (``choose_name``), of a
column default (``render_default``), of an index (``pg_get_indexdef``) and of a constraint
(``pg_get_constraintdef``). ``register`` puts the catalog's SQL functions (``FUNCTIONS``:
those, the ``reg*`` conversions and every other function a client's introspection calls) on
a connection; they read that connection's catalog, so they see the schema as it is now.

The deparsers reproduce PostgreSQL 15 for what Borealis' translator writes (literals,
columns, ``nextval``, ``now()``, CURRENT_TIMESTAMP, comparisons and arithmetic, the exact
arithmetic functions read back as operators) and add the implicit cast PostgreSQL shows for
a constant compared with a column (``score >= 0::numeric``, ``name <> ''::text``);
expressions beyond that are printed by sqlglot's PostgreSQL dialect, which matches
PostgreSQL's text closely but adds no other implicit cast.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import os
import platform
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import apsw
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from borealis.errors import BorealisError
from borealis.protocol.postgres import types as pgtypes

if TYPE_CHECKING:
    from borealis.protocol.postgres.catalog import Catalog, Constraint, Index

NAME_BYTES_MAX = 63
"""PostgreSQL's NAMEDATALEN - 1: generated names are cut to fit, as PostgreSQL cuts them."""

BOOL_OID = 16
INT4_OID = 23
NUMERIC_OID = 1700
TEXT_OID = 25

# Keywords that quote_ident must quote: every category but UNRESERVED
# (SELECT word FROM pg_get_keywords() WHERE catcode <> 'U', PostgreSQL 15).
_QUOTED_KEYWORDS = frozenset((
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
    "authorization", "between", "bigint", "binary", "bit", "boolean", "both", "case", "cast",
    "char", "character", "check", "coalesce", "collate", "collation", "column", "concurrently",
    "constraint", "create", "cross", "current_catalog", "current_date", "current_role",
    "current_schema", "current_time", "current_timestamp", "current_user", "dec", "decimal",
    "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists",
    "extract", "false", "fetch", "float", "for", "foreign", "freeze", "from", "full", "grant",
    "greatest", "group", "grouping", "having", "ilike", "in", "initially", "inner", "inout",
    "int", "integer", "intersect", "interval", "into", "is", "isnull", "join", "lateral",
    "leading", "least", "left", "like", "limit", "localtime", "localtimestamp", "national",
    "natural", "nchar", "none", "normalize", "not", "notnull", "null", "nullif", "numeric",
    "offset", "on", "only", "or", "order", "out", "outer", "overlaps", "overlay", "placing",
    "position", "precision", "primary", "real", "references", "returning", "right", "row",
    "select", "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric",
    "table", "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim",
    "true", "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose",
    "when", "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists",
    "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable",
))

_SIMPLE_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")

_ENCODINGS = (
    "SQL_ASCII", "EUC_JP", "EUC_CN", "EUC_KR", "EUC_TW", "EUC_JIS_2004", "UTF8",
    "MULE_INTERNAL", "LATIN1", "LATIN2", "LATIN3", "LATIN4", "LATIN5", "LATIN6", "LATIN7",
    "LATIN8", "LATIN9", "LATIN10", "WIN1256", "WIN1258", "WIN866", "WIN874", "KOI8R",
    "WIN1251", "WIN1252", "ISO_8859_5", "ISO_8859_6", "ISO_8859_7", "ISO_8859_8", "WIN1250",
    "WIN1253", "WIN1254", "WIN1255", "WIN1257", "KOI8U", "SJIS", "BIG5", "GBK", "UHC",
    "GB18030", "JOHAB", "SHIFT_JIS_2004",
)
"""pg_encoding_to_char's names by encoding number (PostgreSQL 15's pg_enc)."""

FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
               "d": "SET DEFAULT"}

_STARTED_AT = dt.datetime.now(dt.UTC)
"""pg_postmaster_start_time(): when this process (the instance's server) started."""

VERSION = (
    f"PostgreSQL 15.0 (Borealis) on {platform.machine() or 'x86_64'}-pc-linux-gnu, "
    f"compiled by CPython {platform.python_version()}, {64 if sys.maxsize > 2**32 else 32}-bit"
)
"""version(): clients (SQLAlchemy, psql) parse the number after 'PostgreSQL '."""


class CatalogError(BorealisError):
    """A catalog function refused its argument, with the SQLSTATE PostgreSQL would send."""

    code = "sql"

    def __init__(self, message: str, sqlstate: str) -> None:
        assert len(sqlstate) == 5, sqlstate
        super().__init__(message)
        self.sqlstate = sqlstate


# --- names -----------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """PostgreSQL's quote_identifier: quotes unless lower-case, simple and not a keyword."""
    if _SIMPLE_IDENTIFIER.fullmatch(name) and name not in _QUOTED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cut(name: str, limit: int) -> str:
    """Cut ``name`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    encoded = name.encode()
    if len(encoded) <= limit:
        return name
    return encoded[:limit].decode(errors="ignore")


def make_object_name(name1: str, name2: str, label: str) -> str:
    """PostgreSQL's makeObjectName: ``name1_name2_label`` cut to 63 bytes, taking from the
    longer of the two names first (so ``t_pkey``, ``t_a_b_key``, ``t_col_fkey``)."""
    overhead = len(label.encode()) + 1 if label else 0
    if name2:
        overhead += 1
    available = NAME_BYTES_MAX - overhead
    length1, length2 = len(name1.encode()), len(name2.encode())
    while length1 + length2 > available:
        if length1 > length2:
            length1 -= 1
        else:
            length2 -= 1
    out = _cut(name1, length1)
    if name2:
        out += "_" + _cut(name2, length2)
    return out + ("_" + label if label else "")


def choose_name(name1: str, name2: str, label: str, taken: set[str]) -> str:
    """PostgreSQL's ChooseRelationName: the first of ``name``, ``name1``, ``name2``... that
    is not in ``taken`` (which it joins)."""
    for attempt in range(len(taken) + 1):
        if attempt == 0:
            candidate = make_object_name(name1, name2, label)
        else:
            suffix = str(attempt)
            candidate = make_object_name(name1, name2, label + suffix if label else suffix)
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    raise AssertionError("unreachable: len(taken) + 1 attempts always find a free name")


def split_qualified_name(text: str) -> list[str]:
    """``public."My T"`` -> ``['public', 'My T']``: unquoted parts are lower-cased, as
    PostgreSQL's parser does (the input of regclass, regtype, pg_get_serial_sequence)."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] == '"':
            j, part = i + 1, []
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        part.append('"')
                        j += 2
                        continue
                    break
                part.append(text[j])
                j += 1
            if j >= n:
                raise CatalogError(f'invalid name syntax: "{text}"', "42602")
            parts.append("".join(part))
            i = j + 1
        else:
            j = i
            while j < n and text[j] != "." and not text[j].isspace():
                j += 1
            if j == i:
                raise CatalogError(f'invalid name syntax: "{text}"', "42602")
            parts.append(text[i:j].lower())
            i = j
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return parts
        if text[i] != ".":
            raise CatalogError(f'invalid name syntax: "{text}"', "42602")
        i += 1


# --- the SQLite DDL, read for what the pragmas do not say ----------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+|--[^\n]*|/\*.*?(?:\*/|$))
  | (?P<string>'(?:[^']|'')*')
  | (?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<word>[A-Za-z_\u0080-\uffff][A-Za-z_0-9$\u0080-\uffff]*)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, ident, string, other
    text: str  # an identifier unquoted; other tokens as written
    start: int
    end: int

    def word(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    def name(self) -> str:
        return self.text if self.kind in ("word", "ident", "string") else ""


def _tokens(sql: str) -> list[_Token]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        assert kind is not None
        if kind == "space":
            continue
        text = m.group()
        if kind == "ident":
            close = {"[": "]"}.get(text[0], text[0])
            text = text[1:-1].replace(close * 2, close) if close != "]" else text[1:-1]
        elif kind == "string":
            text = text[1:-1].replace("''", "'")
        out.append(_Token(kind, text, m.start(), m.end()))
    return out


def _group_end(tokens: list[_Token], i: int) -> int:
    """The index of the ``)`` closing the ``(`` at ``i``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].text == "(" and tokens[j].kind == "other":
            depth += 1
        elif tokens[j].text == ")" and tokens[j].kind == "other":
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def _split_items(tokens: list[_Token]) -> list[list[_Token]]:
    """Comma-separated items at depth 0."""
    items: list[list[_Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == "other" and t.text == "(":
            depth += 1
        elif t.kind == "other" and t.text == ")":
            depth -= 1
        if depth == 0 and t.kind == "other" and t.text == ",":
            items.append([])
        else:
            items[-1].append(t)
    return [item for item in items if item]


def _paren_names(tokens: list[_Token], i: int) -> tuple[list[str], int]:
    """The first name of each item in the parenthesised list at ``i``, and where it ends."""
    end = _group_end(tokens, i)
    names = [item[0].name() for item in _split_items(tokens[i + 1:end])]
    return names, end


@dataclass(slots=True)
class DdlConstraint:
    kind: str  # p u f c
    name: str | None
    columns: list[str]
    expression: str | None = None  # CHECK's SQLite text
    ref_table: str = ""
    ref_columns: list[str] = field(default_factory=list)
    match_full: bool = False
    deferrable: bool = False
    deferred: bool = False


@dataclass(slots=True)
class TableDdl:
    constraints: list[DdlConstraint] = field(default_factory=list)
    generated: dict[str, str] = field(default_factory=dict)  # column -> SQLite expression


_CONSTRAINT_WORDS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}
_COLUMN_CLAUSE_WORDS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "REFERENCES", "DEFAULT",
                        "COLLATE", "GENERATED", "AS", "NULL"}


def _foreign_key_options(tokens: list[_Token], i: int, constraint: DdlConstraint) -> int:
    """Read ``REFERENCES t (cols) [MATCH x] [ON ...] [[NOT] DEFERRABLE [INITIALLY ...]]``
    from ``tokens[i]`` (the word REFERENCES); returns the index after it."""
    i += 1
    if i < len(tokens):
        constraint.ref_table = tokens[i].name()
        i += 1
    if i < len(tokens) and tokens[i].text == "(" and tokens[i].kind == "other":
        constraint.ref_columns, i = _paren_names(tokens, i)
        i += 1
    while i < len(tokens):
        word = tokens[i].word()
        following = tokens[i + 1].word() if i + 1 < len(tokens) else ""
        after_set = tokens[i - 1].word() == "SET"  # ON DELETE SET NULL / SET DEFAULT
        if (word in _COLUMN_CLAUSE_WORDS and not after_set) or (word, following) == ("NOT",
                                                                                    "NULL"):
            break
        if word == "MATCH":
            constraint.match_full = following == "FULL"
        elif word == "DEFERRABLE":
            constraint.deferrable = tokens[i - 1].word() != "NOT"
        elif word == "INITIALLY":
            constraint.deferred = following == "DEFERRED" and constraint.deferrable
        i += 1
    return i


def _expression_text(sql: str, tokens: list[_Token], i: int) -> tuple[str, int]:
    """The SQL text inside the parentheses opened at ``tokens[i]``."""
    end = _group_end(tokens, i)
    return sql[tokens[i].end:tokens[end].start].strip(), end


@functools.lru_cache(maxsize=1024)
def parse_table_ddl(sql: str) -> TableDdl:
    """Constraint names, CHECK expressions, deferrability, MATCH FULL and generated-column
    expressions of a ``CREATE TABLE`` (SQLite's syntax, as the translator writes it)."""
    out = TableDdl()
    tokens = _tokens(sql)
    opening = next((i for i, t in enumerate(tokens) if t.kind == "other" and t.text == "("),
                   None)
    if opening is None:  # CREATE TABLE ... AS SELECT: no constraints
        return out
    closing = _group_end(tokens, opening)
    if any(t.word() == "AS" for t in tokens[:opening]):
        return out
    for item in _split_items(tokens[opening + 1:closing]):
        if item[0].word() in _CONSTRAINT_WORDS:
            _table_constraint(sql, item, out)
        else:
            _column_constraints(sql, item, out)
    return out


def _table_constraint(sql: str, item: list[_Token], out: TableDdl) -> None:
    i, name = 0, None
    if item[0].word() == "CONSTRAINT" and len(item) > 2:
        name, i = item[1].name(), 2
    word = item[i].word()
    paren = next((j for j in range(i, len(item)) if item[j].text == "(" and
                  item[j].kind == "other"), None)
    if paren is None:
        return
    if word in ("PRIMARY", "UNIQUE"):
        columns, _ = _paren_names(item, paren)
        out.constraints.append(DdlConstraint("p" if word == "PRIMARY" else "u", name, columns))
    elif word == "CHECK":
        text, _ = _expression_text(sql, item, paren)
        out.constraints.append(DdlConstraint("c", name, [], expression=text))
    elif word == "FOREIGN":
        columns, end = _paren_names(item, paren)
        constraint = DdlConstraint("f", name, columns)
        references = next((j for j in range(end, len(item)) if item[j].word() == "REFERENCES"),
                          None)
        if references is not None:
            _foreign_key_options(item, references, constraint)
        out.constraints.append(constraint)


def _column_constraints(sql: str, item: list[_Token], out: TableDdl) -> None:
    column = item[0].name()
    pending: str | None = None
    i = 1
    while i < len(item):
        token, word = item[i], item[i].word()
        if word == "CONSTRAINT" and i + 1 < len(item):
            pending = item[i + 1].name()
            i += 2
            continue
        if word in ("PRIMARY", "UNIQUE"):
            out.constraints.append(DdlConstraint("p" if word == "PRIMARY" else "u", pending,
                                                  [column]))
            pending = None
        elif word == "CHECK" and i + 1 < len(item) and item[i + 1].text == "(":
            text, i = _expression_text(sql, item, i + 1)
            out.constraints.append(DdlConstraint("c", pending, [column], expression=text))
            pending = None
        elif word == "REFERENCES":
            constraint = DdlConstraint("f", pending, [column])
            i = _foreign_key_options(item, i, constraint)
            out.constraints.append(constraint)
            pending = None
            continue
        elif word == "AS" and i + 1 < len(item) and item[i + 1].text == "(":
            out.generated[column], i = _expression_text(sql, item, i + 1)
            pending = None
        elif token.kind == "other" and token.text == "(":
            i = _group_end(item, i)
        i += 1


@dataclass(slots=True)
class IndexDdl:
    expressions: list[str]  # each key column's SQLite text (without COLLATE/ASC/DESC)
    predicate: str | None


@functools.lru_cache(maxsize=1024)
def parse_index_ddl(sql: str) -> IndexDdl:
    tokens = _tokens(sql)
    on = next((i for i, t in enumerate(tokens) if t.word() == "ON"), None)
    opening = next((i for i in range(on or 0, len(tokens)) if tokens[i].text == "(" and
                    tokens[i].kind == "other"), None)
    if on is None or opening is None:
        return IndexDdl([], None)
    closing = _group_end(tokens, opening)
    expressions = []
    for item in _split_items(tokens[opening + 1:closing]):
        end = len(item)
        while end > 1 and item[end - 1].word() in ("ASC", "DESC"):
            end -= 1
        collate = next((j for j in range(end) if item[j].word() == "COLLATE"), None)
        if collate is not None and collate > 0:
            end = collate
        expressions.append(sql[item[0].start:item[end - 1].end])
    predicate = None
    if closing + 1 < len(tokens) and tokens[closing + 1].word() == "WHERE":
        predicate = sql[tokens[closing + 1].end:].strip().rstrip(";").strip()
    return IndexDdl(expressions, predicate)


def view_query(sql: str) -> str | None:
    """The query of a ``CREATE VIEW`` (the text after its ``AS``)."""
    tokens = _tokens(sql)
    depth = 0
    for t in tokens:
        if t.kind == "other" and t.text in "()":
            depth += 1 if t.text == "(" else -1
        elif depth == 0 and t.word() == "AS":
            return sql[t.end:].strip().rstrip(";").strip()
    return None


@functools.lru_cache(maxsize=1024)
def columns_of(sqlite_expression: str) -> list[str]:
    try:
        node = sqlglot.parse_one(sqlite_expression, read="sqlite")
    except (ParseError, TokenError, ValueError):
        return []
    seen: list[str] = []
    for column in node.find_all(exp.Column):
        if column.name not in seen:
            seen.append(column.name)
    return seen


# --- expressions as PostgreSQL prints them ---------------------------------------------------

_SQLITE_FUNCTIONS_AS_PG = {
    "_pg_now": "now()", "_pg_current_timestamp": "CURRENT_TIMESTAMP",
    "_pg_localtimestamp": "LOCALTIMESTAMP", "_pg_current_date": "CURRENT_DATE",
    "_pg_current_time": "CURRENT_TIME", "_pg_localtime": "LOCALTIME",
    "_pg_gen_random_uuid": "gen_random_uuid()",
    "_pg_statement_timestamp": "statement_timestamp()",
    "_pg_clock_timestamp": "clock_timestamp()", "_pg_random": "random()",
}
"""The translator's spelling of PostgreSQL's argument-less functions, read back."""


@functools.lru_cache(maxsize=1024)
def _parse_expression(sqlite_text: str) -> exp.Expr | None:
    try:
        node = sqlglot.parse_one(sqlite_text, read="sqlite")
    except (ParseError, TokenError, ValueError):
        return None
    return node


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _literal_number(node: exp.Expr) -> str | None:
    """The text of a numeric literal, with its sign (``-1``), or None."""
    node = _unparen(node)
    if isinstance(node, exp.Neg):
        inner = _literal_number(node.this)
        if inner is None:
            return None
        return inner[1:] if inner.startswith("-") else "-" + inner
    if isinstance(node, exp.Literal) and not node.is_string:
        return str(node.this)
    return None


def _number_const(text: str) -> str:
    """How PostgreSQL prints the constant a numeric literal becomes (get_const_expr)."""
    if re.fullmatch(r"-?[0-9]+", text):
        value = int(text)
        if -(2**31) <= value < 2**31:
            return str(value) if value >= 0 else f"'{value}'::integer"
        if -(2**63) <= value < 2**63:
            return f"'{value}'::bigint"
        return f"'{value}'::numeric"
    try:
        value_text = format(decimal.Decimal(text), "f")
    except decimal.InvalidOperation:
        return text
    if value_text[:1].isdigit() and "." in value_text:
        return value_text
    return f"'{value_text}'::numeric"


def _string_const(text: str, type_oid: int) -> str:
    """How PostgreSQL prints a string literal coerced to the column's type."""
    if type_oid == BOOL_OID:
        word = text.strip().lower()
        truthy = word in ("t", "tr", "tru", "true", "y", "ye", "yes", "on", "1")
        return "true" if truthy else "false"
    if type_oid == INT4_OID and re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        return _number_const(str(int(text)))
    if type_oid == NUMERIC_OID and re.fullmatch(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)"
                                                r"([eE][+-]?[0-9]+)?\s*", text):
        value_text = format(decimal.Decimal(text.strip()), "f")
        if value_text[:1].isdigit() and "." in value_text:
            return value_text
        return f"'{value_text}'::numeric"
    return f"{quote_literal(text)}::{pgtypes.format_type(type_oid, -1)}"


def render_default(sqlite_text: str, type_oid: int) -> str | None:
    """A column default as ``pg_get_expr`` prints it, from the SQLite text that
    ``pragma_table_xinfo`` shows (the translator writes ``DEFAULT (<expression>)``).
    None for ``DEFAULT NULL``, which PostgreSQL does not store either."""
    node = _parse_expression(sqlite_text)
    if node is None:
        return sqlite_text
    node = _unparen(node)
    if isinstance(node, exp.Null):
        return None
    number = _literal_number(node)
    if number is not None:
        if type_oid == BOOL_OID:
            return "false" if float(number) == 0 else "true"
        return _number_const(number)
    if isinstance(node, exp.Literal) and node.is_string:
        return _string_const(str(node.this), type_oid)
    if isinstance(node, exp.Boolean):
        return "true" if node.this else "false"
    return render_expression(sqlite_text, pretty=False)  # pg_get_expr(adbin, adrelid)


def _to_postgres(node: exp.Expr) -> exp.Expr:
    """Rewrite the translator's SQLite spellings back into PostgreSQL's, and identifiers
    into PostgreSQL's quoting."""
    if isinstance(node, exp.Identifier):
        return exp.Identifier(this=node.name, quoted=quote_ident(node.name) != node.name)
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        args = node.expressions
        if name in _SQLITE_FUNCTIONS_AS_PG and not args:
            return exp.var(_SQLITE_FUNCTIONS_AS_PG[name])
        if name == "_pg_nextval" and len(args) == 1 and isinstance(args[0], exp.Literal):
            sequence = quote_ident(str(args[0].this))  # as regclass prints it
            return exp.var(f"nextval({quote_literal(sequence)}::regclass)")
        if name == "_pg_cast" and len(args) == 3:  # the translator's CAST
            oid, typmod = _literal_number(args[1]), _literal_number(args[2])
            if oid is not None and typmod is not None:
                target = pgtypes.format_type(int(oid), int(typmod))
                inner = args[0]
                if isinstance(inner, exp.Literal) and inner.is_string:
                    return exp.var(f"{quote_literal(str(inner.this))}::{target}")
                text = inner.transform(_to_postgres).sql("postgres", normalize_functions="lower")
                return exp.var(f"({text})::{target}")
        operator = _OPERATOR_FUNCTIONS.get(name)
        if operator is not None and len(args) == 2:
            return exp.Paren(this=operator(this=args[0], expression=args[1]))
        if name == "_pg_neg" and len(args) == 1:
            return exp.Neg(this=args[0])
        if name == "_pg_regexp" and len(args) == 3:
            flags = args[2].this if isinstance(args[2], exp.Literal) else ""
            op = "~*" if "i" in str(flags) else "~"
            left = args[0].sql("postgres", normalize_functions="lower")
            right = args[1].sql("postgres", normalize_functions="lower")
            return exp.var(f"{left} {op} {right}")
        if name.startswith("_pg_"):
            return exp.Anonymous(this=name[len("_pg_"):], expressions=args)
    if isinstance(node, exp.CurrentTimestamp):
        return exp.var("CURRENT_TIMESTAMP")
    if isinstance(node, exp.Binary) and _name_of(node.this) == "_pg_cmp" and \
            _literal_number(node.expression) == "0":
        compared = node.this.expressions  # _pg_cmp(a, b) <op> 0 is a <op> b
        return type(node)(this=compared[0], expression=compared[1])
    if isinstance(node, exp.Escape) and isinstance(node.expression, exp.Literal) and \
            node.expression.this == "\\":
        return node.this  # the translator's ESCAPE '\' is PostgreSQL's default
    return node


_OPERATOR_FUNCTIONS: dict[str, type[exp.Binary]] = {
    "_pg_add": exp.Add, "_pg_sub": exp.Sub, "_pg_mul": exp.Mul, "_pg_div": exp.Div,
    "_pg_mod": exp.Mod,
}
"""The translator's exact-arithmetic functions, read back as PostgreSQL's operators."""


def _name_of(node: exp.Expr) -> str:
    return str(node.this).lower() if isinstance(node, exp.Anonymous) else ""


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_CAST_OF_TEXT = {1043: "text", 25: "text", 1042: "bpchar", 1082: "date",
                 1114: "timestamp without time zone", 1184: "timestamp with time zone",
                 2950: "uuid", 3802: "jsonb", 114: "json", 1186: "interval"}


def _implicit_casts(types: dict[str, int], pretty: bool) -> Callable[[exp.Expr], exp.Expr]:
    """PostgreSQL prints the implicit coercions it made when it parsed an expression: a
    constant compared with a column takes the column's type (``price >= 0::numeric``,
    ``name <> ''::text``), a varchar column is compared as text (``(name)::text``)."""
    def cast_constant(constant: exp.Expr, type_oid: int) -> exp.Expr | None:
        number = _literal_number(constant)
        if isinstance(constant, exp.Literal) and constant.is_string and \
                type_oid == NUMERIC_OID and re.fullmatch(r"-?[0-9.]+", str(constant.this)):
            number = str(constant.this)
        if number is not None:
            name = {NUMERIC_OID: "numeric", 701: "double precision", 700: "real"}.get(type_oid)
            if name is None:
                return None
            if type_oid == NUMERIC_OID and "." in number and not number.startswith("-"):
                return exp.var(number)
            if number.startswith("-"):
                return exp.var(f"{quote_literal(number)}::{name}")
            return exp.var(f"{number}::{name}" if pretty else f"({number})::{name}")
        if isinstance(constant, exp.Literal) and constant.is_string and \
                type_oid in _CAST_OF_TEXT:
            return exp.var(f"{quote_literal(str(constant.this))}::{_CAST_OF_TEXT[type_oid]}")
        return None

    def rewrite(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, _COMPARISONS):
            return node
        for column_side, constant_side in (("this", "expression"), ("expression", "this")):
            column, constant = node.args.get(column_side), node.args.get(constant_side)
            if not isinstance(column, exp.Column) or constant is None:
                continue
            type_oid = types.get(column.name)
            if type_oid is None:
                continue
            cast = cast_constant(constant, type_oid)
            if cast is None:
                continue
            node.set(constant_side, cast)
            if type_oid == 1043:
                node.set(column_side, exp.var(f"({quote_ident(column.name)})::text"))
            break
        return node

    return rewrite


def _parenthesize(node: exp.Expr) -> exp.Expr:
    """PostgreSQL's non-pretty deparse puts every operator expression in parentheses."""
    if isinstance(node, exp.Binary | exp.Not | exp.Is | exp.In | exp.Between) and not \
            isinstance(node.parent, exp.Paren):
        return exp.Paren(this=node)
    return node


@functools.lru_cache(maxsize=1024)
def render_expression(sqlite_text: str, *, pretty: bool,
                      column_types: tuple[tuple[str, int], ...] = ()) -> str:
    """An SQLite expression (a CHECK, an index expression, a predicate) as PostgreSQL's
    ``pg_get_expr`` prints it, pretty or not (approximately: see the module docstring).
    ``column_types``: the table's columns, for the implicit casts PostgreSQL shows."""
    node = _parse_expression(sqlite_text)
    if node is None:
        return sqlite_text
    node = node.copy()
    if column_types:
        node = node.transform(_implicit_casts(dict(column_types), pretty))
    node = node.transform(_to_postgres)
    if not pretty:
        node = node.transform(_parenthesize)
    elif isinstance(node, exp.Paren):
        node = _unparen(node)
    return node.sql("postgres", normalize_functions="lower")


def is_function_call(text: str) -> bool:
    node = _parse_expression(text)
    return isinstance(node, exp.Func) and not isinstance(node, exp.Binary | exp.Cast)


# --- definitions as PostgreSQL prints them ---------------------------------------------------


def index_column_text(index: Index, position: int, *, pretty: bool) -> str:
    """One key column of an index (``pg_get_indexdef(oid, n, pretty)``), 0-based."""
    expression = index.expressions[position]
    if expression is None:
        return quote_ident(index.columns[position])
    text = render_expression(expression, pretty=pretty)
    return text if is_function_call(expression) else f"({text})"


def index_definition(catalog: Catalog, index: Index, *, pretty: bool) -> str:
    table = catalog.relation(index.table_oid)
    table_name = catalog.relation_name(table, qualify=not pretty) if table else "???"
    columns = []
    for position in range(len(index.columns)):
        text = index_column_text(index, position, pretty=pretty)
        if index.descending[position]:
            text += " DESC"
        columns.append(text)
    unique = "UNIQUE " if index.unique else ""
    out = (f"CREATE {unique}INDEX {quote_ident(index.name)} ON {table_name} USING btree "
           f"({', '.join(columns)})")
    if index.predicate is not None:
        out += " WHERE " + render_expression(index.predicate, pretty=pretty)
    return out


def constraint_definition(catalog: Catalog, constraint: Constraint, *, pretty: bool) -> str:
    columns = ", ".join(quote_ident(c) for c in constraint.columns)
    if constraint.kind == "p":
        out = f"PRIMARY KEY ({columns})"
    elif constraint.kind == "u":
        out = f"UNIQUE ({columns})"
    elif constraint.kind == "c":
        assert constraint.expression is not None
        text = render_expression(constraint.expression, pretty=pretty,
                                 column_types=catalog.column_types(constraint.table_oid))
        if not pretty and not text.startswith("("):
            text = f"({text})"
        return f"CHECK ({text})"
    else:
        assert constraint.kind == "f", constraint.kind
        parent = catalog.relation(constraint.ref_table_oid)
        target = (catalog.relation_name(parent, qualify=False) if parent is not None
                  else quote_ident(constraint.ref_table_name))
        out = (f"FOREIGN KEY ({columns}) REFERENCES {target}"
               f"({', '.join(quote_ident(c) for c in constraint.ref_columns)})")
        if constraint.match == "f":
            out += " MATCH FULL"
        if constraint.on_update != "a":
            out += " ON UPDATE " + FK_ACTIONS[constraint.on_update]
        if constraint.on_delete != "a":
            out += " ON DELETE " + FK_ACTIONS[constraint.on_delete]
    if constraint.deferrable:
        out += " DEFERRABLE"
    if constraint.deferred:
        out += " INITIALLY DEFERRED"
    return out


def size_pretty(size: int) -> str:
    """pg_size_pretty(bigint), PostgreSQL 15's rounding (half away from zero per unit)."""
    units = (("bytes", 10 * 1024, False, 0), ("kB", 20 * 1024 - 1, True, 10),
             ("MB", 20 * 1024 - 1, True, 20), ("GB", 20 * 1024 - 1, True, 30),
             ("TB", 20 * 1024 - 1, True, 40), ("PB", 20 * 1024 - 1, True, 50))

    def divide(value: int, divisor: int) -> int:  # C's division: toward zero
        quotient = abs(value) // divisor
        return quotient if value >= 0 else -quotient

    for i, (name, limit, rounded, bits) in enumerate(units):
        last = i == len(units) - 1
        if last or abs(size) < limit:
            if rounded:
                size = divide(size + (-1 if size < 0 else 1), 2)
            return f"{size} {name}"
        next_rounded, next_bits = units[i + 1][2], units[i + 1][3]
        shift = next_bits - bits - int(next_rounded) + int(rounded)
        size = divide(size, 1 << shift)
    raise AssertionError("unreachable: the last unit always returns")


# --- the SQL functions -----------------------------------------------------------------------


def _oid(value: Any) -> int | None:
    """An oid argument: SQLite hands over an int, or the text of one (``'16413'``)."""
    if isinstance(value, bool) or value is None:
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    return None


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("t", "true", "y", "yes", "on", "1")
    return bool(value)


def _undefined_relation(text: str) -> CatalogError:
    return CatalogError(f'relation "{".".join(split_qualified_name(text))}" does not exist',
                        "42P01")


def render_select(view_sql: str) -> str:
    """A view's query (the text after ``AS`` in its CREATE VIEW) in PostgreSQL's dialect."""
    node = _parse_expression(view_sql)
    if node is None:
        return view_sql
    return node.transform(_to_postgres).sql("postgres", normalize_functions="lower")


class _Functions:
    """The catalog functions of one connection; ``FUNCTIONS`` names them in SQL."""

    def __init__(self, catalog: Catalog, *, database: str, user: str, in_recovery: bool,
                 backend_pid: int) -> None:
        self.catalog = catalog
        self.database = database
        self.user = user
        self.in_recovery = in_recovery
        self.backend_pid = backend_pid

    # the session
    def current_database(self) -> str:
        return self.database

    def current_user(self) -> str:
        return self.user

    @staticmethod
    def current_schema() -> str:
        return "public"

    @staticmethod
    def current_schemas(implicit: Any) -> str:
        return '["pg_catalog","public"]' if _boolean(implicit) else '["public"]'

    @staticmethod
    def version() -> str:
        return VERSION

    def pg_backend_pid(self) -> int:
        return self.backend_pid

    @staticmethod
    def pg_postmaster_start_time() -> str:
        return _STARTED_AT.strftime("%Y-%m-%d %H:%M:%S.%f+00")

    def pg_is_in_recovery(self) -> int:
        return int(self.in_recovery)

    @staticmethod
    def granted(*_args: Any) -> int:
        """has_*_privilege, pg_has_role: Borealis has one role, a superuser."""
        return 1

    @staticmethod
    def false(*_args: Any) -> int:
        return 0

    @staticmethod
    def null(*_args: Any) -> None:
        """Comments, triggers, extended statistics, functions' signatures: Borealis has
        none (pg_proc is empty: no function can be created)."""
        return None

    @staticmethod
    def pg_tablespace_location(_oid: Any) -> str:
        """pg_default and pg_global, the two tablespaces, are in the data directory: ''."""
        return ""

    @staticmethod
    def pg_encoding_to_char(number: Any) -> str:
        return _ENCODINGS[number] if isinstance(number, int) and 0 <= number < len(
            _ENCODINGS) else ""

    @staticmethod
    def pg_size_pretty(size: Any) -> str | None:
        return None if size is None else size_pretty(int(size))

    # types
    def format_type(self, type_oid: Any, typmod: Any = None) -> str | None:
        oid = _oid(type_oid)
        return None if oid is None else self.catalog.format_type(oid, _oid(typmod))

    def to_regtype(self, text: Any) -> int | None:
        return None if text is None else self.catalog.find_type(str(text))

    def regtype_in(self, value: Any) -> int | None:
        oid = _oid(value)
        if value is None or oid is not None:
            return oid
        found = self.catalog.find_type(str(value))
        if found is None:
            raise CatalogError(f'type "{value}" does not exist', "42704")
        return found

    def regtype_out(self, value: Any) -> str | None:
        oid = _oid(value)
        if oid is None or oid == 0:
            return None if value is None else "-" if oid == 0 else str(value)
        text = self.catalog.format_type(oid, None)
        return str(oid) if text == "???" else text

    def pg_type_is_visible(self, value: Any) -> int | None:
        oid = _oid(value)
        return None if oid is None else self.catalog.type_visible(oid)

    # relations
    def to_regclass(self, text: Any) -> int | None:
        return None if text is None else self.catalog.find_relation_oid(str(text))

    def regclass_in(self, value: Any) -> int | None:
        oid = _oid(value)
        if value is None or oid is not None:
            return oid
        found = self.catalog.find_relation_oid(str(value))
        if found is None:
            raise _undefined_relation(str(value))
        return found

    def regclass_out(self, value: Any) -> str | None:
        oid = _oid(value)
        if oid is None or oid == 0:
            return None if value is None else "-" if oid == 0 else str(value)
        return self.catalog.relation_name_by_oid(oid) or str(oid)

    def pg_table_is_visible(self, value: Any) -> int | None:
        oid = _oid(value)
        return None if oid is None else self.catalog.relation_visible(oid)

    # namespaces, roles, procedures
    def regnamespace_in(self, value: Any) -> int | None:
        oid = _oid(value)
        if value is None or oid is not None:
            return oid
        found = self.to_regnamespace(value)
        if found is None:
            raise CatalogError(f'schema "{value}" does not exist', "3F000")
        return found

    def to_regnamespace(self, text: Any) -> int | None:
        if text is None:
            return None
        parts = split_qualified_name(str(text))
        return self.catalog.namespace_oid(parts[0]) if len(parts) == 1 else None

    def regnamespace_out(self, value: Any) -> str | None:
        oid = _oid(value)
        name = self.catalog.namespace_name(oid) if oid is not None else None
        return quote_ident(name) if name is not None else None if value is None else str(value)

    def regrole_in(self, value: Any) -> int | None:
        oid = _oid(value)
        if value is None or oid is not None:
            return oid
        found = self.to_regrole(value)
        if found is None:
            raise CatalogError(f'role "{value}" does not exist', "42704")
        return found

    def to_regrole(self, text: Any) -> int | None:
        if text is None:
            return None
        return self.catalog.role_oid(split_qualified_name(str(text))[-1])

    def regrole_out(self, value: Any) -> str | None:
        oid = _oid(value)
        name = self.catalog.role_name(oid) if oid is not None else None
        return quote_ident(name) if name is not None else None if value is None else str(value)

    def pg_get_userbyid(self, value: Any) -> str | None:
        oid = _oid(value)
        if oid is None:
            return None
        return self.catalog.role_name(oid) or f"unknown (OID={oid})"

    @staticmethod
    def regproc_in(value: Any) -> Any:
        """regproc values are names in this catalog (there is no pg_proc to number them):
        a name stays a name (unqualified, without an argument list), a number a number."""
        if value is None or _oid(value) is not None:
            return _oid(value)
        name = re.sub(r"^\s*pg_catalog\.", "", str(value))
        return name.split("(", 1)[0].strip().strip('"')

    @staticmethod
    def regproc_out(value: Any) -> str | None:
        return None if value is None else "-" if _oid(value) == 0 else str(value)

    # definitions
    @staticmethod
    def pg_get_expr(text: Any, _relation: Any = None, _pretty: Any = None) -> Any:
        """The catalog stores expressions deparsed (adbin, conbin, indpred hold PostgreSQL's
        text, not node trees), so pg_get_expr returns them."""
        return text

    def pg_get_indexdef(self, value: Any, column: Any = 0, pretty: Any = False) -> str | None:
        oid = _oid(value)
        index = self.catalog.index(oid) if oid is not None else None
        if index is None:
            return None
        position = _oid(column) or 0
        if position == 0:
            return index_definition(self.catalog, index, pretty=_boolean(pretty))
        if position > len(index.columns):
            return ""
        return index_column_text(index, position - 1, pretty=_boolean(pretty))

    def pg_get_constraintdef(self, value: Any, pretty: Any = False) -> str | None:
        oid = _oid(value)
        constraint = self.catalog.constraint(oid) if oid is not None else None
        if constraint is None:
            return None
        return constraint_definition(self.catalog, constraint, pretty=_boolean(pretty))

    def pg_get_viewdef(self, value: Any, _pretty: Any = None) -> str | None:
        oid = _oid(value)
        if oid is None and value is not None:
            oid = self.catalog.find_relation_oid(str(value))
        relation = self.catalog.relation(oid)
        if relation is None or relation.kind != "v" or relation.view_sql is None:
            return None
        return " " + render_select(relation.view_sql) + ";"

    def pg_get_serial_sequence(self, table: Any, column: Any) -> str | None:
        if table is None or column is None:
            return None
        oid = self.catalog.find_relation_oid(str(table))
        relation = self.catalog.relation(oid)
        if relation is None:
            raise _undefined_relation(str(table))
        if not any(a.name == str(column) for a in relation.attributes):
            raise CatalogError(f'column "{column}" of relation "{relation.name}" does not '
                               "exist", "42703")
        sequence = self.catalog.owned_sequence(relation.oid, str(column))
        return None if sequence is None else "public." + quote_ident(sequence.name)

    # sizes: the pages of the relation's b-tree in SQLite's file (dbstat)
    def pg_relation_size(self, value: Any, _fork: Any = None) -> int | None:
        oid = self.regclass_in(value)
        return None if oid is None else self.catalog.relation_bytes(oid)

    def pg_indexes_size(self, value: Any) -> int | None:
        oid = self.regclass_in(value)
        if oid is None:
            return None
        return sum(self.catalog.relation_bytes(i.oid) for i in self.catalog.indexes_of(oid))

    def pg_total_relation_size(self, value: Any) -> int | None:
        table, indexes = self.pg_relation_size(value), self.pg_indexes_size(value)
        return None if table is None or indexes is None else table + indexes

    def pg_database_size(self, _name: Any) -> int:
        return self.catalog.database_bytes()


_SAME = "same"  # the method has the SQL function's name
FUNCTIONS: dict[str, tuple[str, bool]] = {
    # SQL name: (method of _Functions, deterministic)
    "pg_get_expr": (_SAME, True), "pg_encoding_to_char": (_SAME, True),
    "pg_size_pretty": (_SAME, True), "_pg_regproc": ("regproc_in", True),
    "_pg_regprocedure": ("regproc_in", True), "_pg_regoper": ("regproc_in", True),
    "_pg_regproc_out": ("regproc_out", True),
    "format_type": (_SAME, False), "pg_table_is_visible": (_SAME, False),
    "pg_type_is_visible": (_SAME, False), "pg_get_indexdef": (_SAME, False),
    "pg_get_constraintdef": (_SAME, False), "pg_get_viewdef": (_SAME, False),
    "pg_get_serial_sequence": (_SAME, False), "pg_get_userbyid": (_SAME, False),
    "pg_get_triggerdef": ("null", False), "pg_get_statisticsobjdef_columns": ("null", False),
    "obj_description": ("null", False), "col_description": ("null", False),
    "shobj_description": ("null", False), "pg_get_function_result": ("null", False),
    "pg_get_function_arguments": ("null", False),
    "pg_get_function_identity_arguments": ("null", False),
    "pg_function_is_visible": ("granted", False),
    "pg_tablespace_location": (_SAME, False),
    "has_table_privilege": ("granted", False), "has_schema_privilege": ("granted", False),
    "has_database_privilege": ("granted", False), "has_column_privilege": ("granted", False),
    "has_sequence_privilege": ("granted", False), "has_function_privilege": ("granted", False),
    "pg_has_role": ("granted", False), "pg_relation_is_publishable": ("false", False),
    "pg_collation_is_visible": ("granted", False),
    "current_database": (_SAME, False), "current_catalog": ("current_database", False),
    "current_schema": (_SAME, False), "current_schemas": (_SAME, False),
    "current_user": (_SAME, False), "session_user": ("current_user", False),
    "current_role": ("current_user", False), "user": ("current_user", False),
    "version": (_SAME, False), "pg_backend_pid": (_SAME, False),
    "pg_postmaster_start_time": (_SAME, False), "pg_is_in_recovery": (_SAME, False),
    "pg_relation_size": (_SAME, False), "pg_table_size": ("pg_relation_size", False),
    "pg_indexes_size": (_SAME, False), "pg_total_relation_size": (_SAME, False),
    "pg_database_size": (_SAME, False),
    "to_regtype": (_SAME, False), "to_regclass": (_SAME, False),
    "to_regnamespace": (_SAME, False), "to_regrole": (_SAME, False),
    "_pg_regclass": ("regclass_in", False), "_pg_regclass_out": ("regclass_out", False),
    "_pg_regtype": ("regtype_in", False), "_pg_regtype_out": ("regtype_out", False),
    "_pg_regnamespace": ("regnamespace_in", False),
    "_pg_regnamespace_out": ("regnamespace_out", False),
    "_pg_regrole": ("regrole_in", False), "_pg_regrole_out": ("regrole_out", False),
}
"""Every SQL function ``register`` puts on a connection. Deterministic means the same
arguments always give the same result: not so for those that read the schema."""


def register(conn: apsw.Connection, catalog: Catalog, *, database: str, user: str,
             in_recovery: bool, backend_pid: int | None) -> None:
    """Register ``FUNCTIONS`` on ``conn``, reading ``catalog``."""
    functions = _Functions(catalog, database=database, user=user, in_recovery=in_recovery,
                           backend_pid=os.getpid() if backend_pid is None else backend_pid)
    for name, (method, deterministic) in FUNCTIONS.items():
        function = getattr(functions, name if method == _SAME else method)
        conn.create_scalar_function(name, function, -1, deterministic=deterministic)
