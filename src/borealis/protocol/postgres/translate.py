"""PostgreSQL SQL to SQLite SQL (DESIGN decision 8), behind a cache.

A statement is parsed with sqlglot's PostgreSQL dialect, rewritten node by node into
SQLite's forms, and checked against a whitelist of the nodes this module knows how to run
with PostgreSQL's meaning. A node outside the whitelist refuses the statement with SQLSTATE
0A000 naming the feature: Borealis never runs a statement with a different meaning than
PostgreSQL would give it. Statements that SQLite does not have (SET, SHOW, COPY, TRUNCATE,
sequences, ``ALTER TABLE ... ADD PRIMARY KEY``) become an ``action`` that the server carries
out.

What the translation records besides the SQL, for the protocol:
- the output columns' names as PostgreSQL names them (``?column?``, ``count``, the column's
  name), so that result sets look the same, and their type where it follows from the
  statement alone (a cast, a count, a comparison); the rest come from SQLite's declared
  types when the statement is prepared (``types.type_from_decltype``);
- a hint per parameter (``$n``) for its type: the column it is compared with or assigned
  to, a cast, a LIMIT. The server resolves hints against the schema at Parse time and
  answers ParameterDescription with real OIDs (asyncpg encodes by them).

The cache: ``Translator.translate`` keys statements by their text; simple-protocol
statements are first normalised (``sqltext.normalize``) so that their literals become
parameters and one translation serves every value (pgbench ``-M simple``).
"""

from __future__ import annotations

import contextvars
import enum
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError

from borealis.errors import BorealisError
from borealis.protocol.postgres import sqltext
from borealis.protocol.postgres import types as pgtypes

CACHE_ENTRIES_MAX = 4096
"""Translations kept (least recently used dropped): statement shapes, not statements."""


class TranslationError(BorealisError):
    """A statement that cannot be run; ``sqlstate`` says why."""

    def __init__(self, message: str, sqlstate: str = "0A000") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def unsupported(feature: str) -> TranslationError:
    return TranslationError(f"{feature} is not supported by Borealis", "0A000")


class NeedsLiteral(Exception):
    """A parameter stands where only a literal has its meaning (ORDER BY 1, a type's
    literal): the normalised form cannot be used, translate the text as written."""


class Kind(enum.Enum):
    QUERY = "query"            # returns rows (SELECT, VALUES, DML with RETURNING)
    DML = "dml"                # INSERT/UPDATE/DELETE without RETURNING
    DDL = "ddl"
    TRANSACTION = "transaction"
    SET = "set"
    SHOW = "show"
    COPY = "copy"
    UTILITY = "utility"        # accepted and done with nothing to do (VACUUM, ANALYZE...)
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class OutputColumn:
    name: str
    type_oid: int = 0          # 0: not known from the statement alone
    typmod: int = -1


@dataclass(frozen=True, slots=True)
class ParamHint:
    """What a parameter's type follows from: a type (``oid``), or a column of one of
    ``tables`` (resolved against the schema)."""

    oid: int = 0
    tables: tuple[str, ...] = ()
    column: str = ""


@dataclass(frozen=True, slots=True)
class SetAction:
    name: str                  # lower-cased setting name
    value: str | None          # None: RESET
    local: bool = False


@dataclass(frozen=True, slots=True)
class ShowAction:
    name: str                  # lower-cased; 'all' for SHOW ALL


@dataclass(frozen=True, slots=True)
class CopyAction:
    table: str
    columns: tuple[str, ...]
    direction: str             # 'from' (client sends rows) or 'to' (server sends rows)
    query: str | None = None   # COPY (SELECT ...) TO STDOUT: the translated query
    format: str = "text"       # 'text', 'csv' or 'binary'
    delimiter: str = "\t"
    null: str = "\\N"
    header: bool = False
    quote: str = '"'
    escape: str = '"'


@dataclass(frozen=True, slots=True)
class TransactionAction:
    verb: str                  # begin, commit, rollback, savepoint, release, rollback_to
    name: str = ""
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class SequenceOp:
    """Statements on sequences and tables that need more than one SQLite statement,
    carried out by ``functions``/the server against the schema."""

    op: str                    # create_sequence, drop_sequence, alter_sequence,
    #                            add_primary_key, truncate
    name: str = ""
    args: tuple[Any, ...] = ()


Action = SetAction | ShowAction | CopyAction | TransactionAction | SequenceOp


@dataclass(frozen=True, slots=True)
class Statement:
    """One translated statement."""

    kind: Kind
    tag: str                   # CommandComplete's verb: 'SELECT', 'INSERT', 'CREATE TABLE'
    sqlite: tuple[str, ...] = ()
    param_count: int = 0
    param_hints: tuple[ParamHint, ...] = ()
    columns: tuple[OutputColumn, ...] | None = None
    action: Action | None = None
    read_only: bool = True
    setup: tuple[str, ...] = ()
    """SQLite statements run before ``sqlite`` in the same transaction (sequences that a
    CREATE TABLE's SERIAL columns own)."""


@dataclass
class _Context:
    """What a translation collects while it rewrites a tree."""

    literal_params: int = 0    # params from normalisation: 1..n stand for literals
    hints: dict[int, ParamHint] = field(default_factory=dict)
    max_param: int = 0
    setup: list[str] = field(default_factory=list)


# -- statements handled before sqlglot ----------------------------------------------------

_WORDS = re.compile(r"\s*([A-Za-z_]+)")
_BEGIN = re.compile(
    r"^\s*(BEGIN|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?(?P<modes>[\s\S]*)$", re.I)
_TX_MODE = re.compile(
    r"^(\s*,?\s*(ISOLATION\s+LEVEL\s+(SERIALIZABLE|REPEATABLE\s+READ|READ\s+COMMITTED|"
    r"READ\s+UNCOMMITTED)|READ\s+WRITE|READ\s+ONLY|(NOT\s+)?DEFERRABLE))*\s*$", re.I)
_COMMIT = re.compile(r"^\s*(COMMIT|END)(\s+(WORK|TRANSACTION))?\s*(AND\s+NO\s+CHAIN\s*)?$", re.I)
_ROLLBACK = re.compile(r"^\s*(ROLLBACK|ABORT)(\s+(WORK|TRANSACTION))?\s*(AND\s+NO\s+CHAIN\s*)?$",
                       re.I)
_ROLLBACK_TO = re.compile(
    r"^\s*ROLLBACK(\s+(WORK|TRANSACTION))?\s+TO\s+(SAVEPOINT\s+)?(?P<name>\S+)\s*$", re.I)
_SAVEPOINT = re.compile(r"^\s*SAVEPOINT\s+(?P<name>\S+)\s*$", re.I)
_RELEASE = re.compile(r"^\s*RELEASE\s+(SAVEPOINT\s+)?(?P<name>\S+)\s*$", re.I)
_SET = re.compile(
    r"^\s*SET\s+((?P<scope>SESSION|LOCAL)\s+)?(?P<name>[A-Za-z_][\w.]*)\s*(=|\s+TO\s+|\s)\s*"
    r"(?P<value>[\s\S]*?)\s*$", re.I)
_SET_TIME_ZONE = re.compile(r"^\s*SET\s+((SESSION|LOCAL)\s+)?TIME\s+ZONE\s+(?P<value>.+?)\s*$",
                            re.I)
_SET_TRANSACTION = re.compile(
    r"^\s*SET\s+(TRANSACTION|SESSION\s+CHARACTERISTICS\s+AS\s+TRANSACTION)\s+(?P<modes>.*)$",
    re.I | re.S)
_SET_NAMES = re.compile(r"^\s*SET\s+NAMES\s+(?P<value>.+?)\s*$", re.I)
_RESET = re.compile(r"^\s*RESET\s+(?P<name>ALL|[A-Za-z_][\w.]*)\s*$", re.I)
_SHOW = re.compile(r"^\s*SHOW\s+(?P<name>.+?)\s*$", re.I | re.S)
_UTILITY = re.compile(r"^\s*(VACUUM|ANALYZE|ANALYSE|CHECKPOINT|CLUSTER|REINDEX|DISCARD|"
                      r"LOAD|UNLISTEN)\b", re.I)
_COPY = re.compile(
    r"^\s*COPY\s+(?P<target>\((?P<query>[\s\S]+)\)|(?P<table>(?:\"[^\"]+\"|[\w.$]+))\s*"
    r"(?:\((?P<columns>[^)]*)\))?)\s+(?P<direction>FROM|TO)\s+(?P<where>STDIN|STDOUT)"
    r"(?P<options>[\s\S]*)$", re.I)

UTILITY_TAGS = {"vacuum": "VACUUM", "analyze": "ANALYZE", "analyse": "ANALYZE",
                "checkpoint": "CHECKPOINT", "cluster": "CLUSTER", "reindex": "REINDEX",
                "discard": "DISCARD ALL", "load": "LOAD", "unlisten": "UNLISTEN"}


def _identifier(text: str) -> str:
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def _setting_value(text: str) -> str:
    text = text.strip()
    if text.upper() in ("DEFAULT", "LOCAL"):
        return ""
    values = [v.strip() for v in _split_commas(text)]
    out = []
    for v in values:
        if v[:1] in "'eE" and v.endswith("'") and ("'" in v[:2]):
            out.append(sqltext.string_literal_value(v))
        elif v.startswith('"') and v.endswith('"'):
            out.append(v[1:-1].replace('""', '"'))
        else:
            out.append(v)
    return ", ".join(out)


def _split_commas(text: str) -> list[str]:
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _utility(sql: str) -> Statement | None:
    """Statements recognised from their text: transactions, settings, maintenance, COPY."""
    if (match := _BEGIN.match(sql)) is not None:
        modes = match.group("modes")
        if not _TX_MODE.match(modes):
            raise TranslationError(f"syntax error in transaction modes: {modes.strip()!r}",
                                   "42601")
        read_only = bool(re.search(r"READ\s+ONLY", modes, re.I))
        return Statement(Kind.TRANSACTION, "BEGIN",
                         action=TransactionAction("begin", read_only=read_only))
    if _COMMIT.match(sql):
        return Statement(Kind.TRANSACTION, "COMMIT", action=TransactionAction("commit"))
    if (match := _ROLLBACK_TO.match(sql)) is not None:
        return Statement(Kind.TRANSACTION, "ROLLBACK",
                         action=TransactionAction("rollback_to", _identifier(match["name"])))
    if _ROLLBACK.match(sql):
        return Statement(Kind.TRANSACTION, "ROLLBACK", action=TransactionAction("rollback"))
    if (match := _SAVEPOINT.match(sql)) is not None:
        return Statement(Kind.TRANSACTION, "SAVEPOINT",
                         action=TransactionAction("savepoint", _identifier(match["name"])))
    if (match := _RELEASE.match(sql)) is not None:
        return Statement(Kind.TRANSACTION, "RELEASE",
                         action=TransactionAction("release", _identifier(match["name"])))
    if (match := _SET_TRANSACTION.match(sql)) is not None:
        if not _TX_MODE.match(match["modes"]):
            raise TranslationError("syntax error in transaction modes", "42601")
        return Statement(Kind.SET, "SET", action=None)
    if (match := _SET_TIME_ZONE.match(sql)) is not None:
        return Statement(Kind.SET, "SET",
                         action=SetAction("timezone", _setting_value(match["value"])))
    if (match := _SET_NAMES.match(sql)) is not None:
        return Statement(Kind.SET, "SET",
                         action=SetAction("client_encoding", _setting_value(match["value"])))
    if (match := _SET.match(sql)) is not None:
        return Statement(Kind.SET, "SET", action=SetAction(
            match["name"].lower(), _setting_value(match["value"]),
            local=(match["scope"] or "").upper() == "LOCAL"))
    if (match := _RESET.match(sql)) is not None:
        return Statement(Kind.SET, "RESET", action=SetAction(match["name"].lower(), None))
    if (match := _SHOW.match(sql)) is not None:
        name = " ".join(match["name"].lower().split())
        return Statement(Kind.SHOW, "SHOW", action=ShowAction(name),
                         columns=(OutputColumn(name if name != "all" else "name", 25),))
    if (match := _UTILITY.match(sql)) is not None:
        return Statement(Kind.UTILITY, UTILITY_TAGS[match.group(1).lower()])
    return None


# -- the tree rewrite ------------------------------------------------------------------------

_ALLOWED = (
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.From, exp.Join,
    exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset,
    exp.With, exp.CTE, exp.TableAlias, exp.Table, exp.Column, exp.Identifier, exp.Star,
    exp.Alias, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Add, exp.Sub, exp.Mul,
    exp.Div, exp.Mod, exp.Neg, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.And,
    exp.Or, exp.Not, exp.Is, exp.In, exp.Between, exp.Like, exp.Case, exp.If, exp.Coalesce,
    exp.Anonymous, exp.Count, exp.Sum, exp.Min, exp.Max, exp.Lower, exp.Upper, exp.Length,
    exp.Abs, exp.DPipe, exp.Insert, exp.Values, exp.Tuple, exp.Schema, exp.OnConflict,
    exp.Returning, exp.Update, exp.Delete, exp.Exists, exp.Distinct, exp.Var, exp.Window,
    exp.WindowSpec, exp.RowNumber, exp.Nullif, exp.BitwiseAnd, exp.BitwiseOr,
    exp.BitwiseXor, exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift,
    exp.NullSafeEQ, exp.NullSafeNEQ, exp.DataType, exp.Cast, exp.ColumnDef,
    exp.ColumnConstraint, exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint,
    exp.UniqueColumnConstraint, exp.DefaultColumnConstraint, exp.Reference,
    exp.ForeignKey, exp.PrimaryKey, exp.Constraint, exp.CheckColumnConstraint,
    exp.Create, exp.Drop, exp.Index, exp.IndexParameters, exp.Properties,
    exp.Max, exp.GroupConcat, exp.Substring, exp.Trim, exp.Replace,
    exp.Round, exp.Avg, exp.CurrentTimestamp, exp.CurrentDate, exp.Concat, exp.Where,
    exp.Dot, exp.Pow, exp.Stddev, exp.Greatest, exp.Least, exp.JSONExtract,
    exp.JSONExtractScalar, exp.JSONPath, exp.JSONPathRoot, exp.JSONPathKey,
    exp.JSONPathSubscript, exp.Escape, exp.ILike, exp.Filter, exp.Hint,
    exp.OnCondition, exp.Alter, exp.AlterColumn, exp.RenameColumn, exp.AlterRename,
    exp.Command, exp.Semicolon, exp.Placeholder, exp.SetItem, exp.Collate, exp.Check,
)

# PostgreSQL function -> (SQLite function, result type oid or 0).
_FUNCTIONS: dict[str, tuple[str, int]] = {
    "now": ("_pg_now", 1184), "transaction_timestamp": ("_pg_now", 1184),
    "statement_timestamp": ("_pg_statement_timestamp", 1184),
    "clock_timestamp": ("_pg_clock_timestamp", 1184),
    "gen_random_uuid": ("_pg_gen_random_uuid", 2950),
    "uuid_generate_v4": ("_pg_gen_random_uuid", 2950),
    "nextval": ("_pg_nextval", 20), "currval": ("_pg_currval", 20),
    "setval": ("_pg_setval", 20), "lastval": ("_pg_lastval", 20),
    "current_setting": ("_pg_current_setting", 25), "set_config": ("_pg_set_config", 25),
    "random": ("_pg_random", 701),
    "char_length": ("length", 23), "character_length": ("length", 23),
    "octet_length": ("_pg_octet_length", 23),
    "strpos": ("instr", 23), "left": ("_pg_left", 25), "right": ("_pg_right", 25),
    "md5": ("_pg_md5", 25), "btrim": ("trim", 25), "repeat": ("_pg_repeat", 25),
    "split_part": ("_pg_split_part", 25), "starts_with": ("_pg_starts_with", 16),
    "floor": ("_pg_floor", 0), "ceil": ("_pg_ceil", 0), "ceiling": ("_pg_ceil", 0),
    "sqrt": ("sqrt", 701), "power": ("pow", 701), "exp": ("exp", 701), "ln": ("ln", 701),
    "mod": ("_pg_mod", 0), "sign": ("sign", 0), "trunc": ("_pg_trunc", 0),
    "reverse": ("_pg_reverse", 25),
    "pg_sleep": ("_pg_sleep", 2278), "to_hex": ("_pg_to_hex", 25),
    "quote_ident": ("_pg_quote_ident", 25), "quote_literal": ("_pg_quote_literal", 25),
    "encode": ("_pg_encode", 25), "decode": ("_pg_decode", 17),
    "jsonb_build_object": ("json_object", 3802), "json_build_object": ("json_object", 114),
    "jsonb_typeof": ("_pg_json_typeof", 25), "json_typeof": ("_pg_json_typeof", 25),
    "jsonb_array_length": ("json_array_length", 23),
    "json_array_length": ("json_array_length", 23),
    "to_json": ("_pg_to_json", 114), "to_jsonb": ("_pg_to_json", 3802),
    "array_position": ("_pg_array_position", 23), "array_length": ("_pg_array_length", 23),
    "array_to_string": ("_pg_array_to_string", 25), "cardinality": ("_pg_cardinality", 23),
    "array_upper": ("_pg_array_length", 23),
}
"""Functions whose SQLite counterpart has PostgreSQL's meaning (built-in SQLite functions
where they agree, ``_pg_*`` user functions from ``functions`` where they do not)."""

_SQLITE_SAME = {
    "abs": 0, "coalesce": 0, "length": 23, "lower": 25, "upper": 25, "replace": 25,
    "nullif": 0, "min": 0, "max": 0, "count": 20, "ltrim": 25, "rtrim": 25,
}

_PG_CATALOG_FUNCTIONS_PASS = True
"""Unknown functions are looked up in ``catalog.CATALOG_FUNCTIONS`` (introspection)."""


def _catalog_functions() -> frozenset[str]:
    try:
        from borealis.protocol.postgres import catalog
    except ImportError:  # pragma: no cover - the catalog module is optional while built
        return frozenset()
    return getattr(catalog, "CATALOG_FUNCTIONS", frozenset())


def _catalog_table(schema: str | None, name: str) -> str | None:
    try:
        from borealis.protocol.postgres import catalog
    except ImportError:  # pragma: no cover
        return None
    mapper = getattr(catalog, "catalog_table_name", None)
    return mapper(schema, name) if mapper is not None else None


_TYPE_CAST_FUNCTION = "_pg_cast"


def _type_of(node: exp.DataType | exp.Expression) -> tuple[pgtypes.PgType, int]:
    """The PostgreSQL type a sqlglot DataType names."""
    text = node.sql("postgres")
    try:
        return pgtypes.lookup(text)
    except pgtypes.UnknownTypeError:
        raise TranslationError(f'type "{text.lower()}" does not exist', "42704") from None


def _literal_int(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    if isinstance(node, exp.Neg):
        inner = _literal_int(node.this)
        return -inner if inner is not None else None
    return None


class _Rewriter:
    """Rewrites one PostgreSQL tree into SQLite's forms, collecting parameter hints."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.catalog_functions = _catalog_functions()

    # parameters -------------------------------------------------------------------
    def param(self, node: exp.Parameter | exp.Placeholder) -> int:
        raw = node.this
        text = raw.this if isinstance(raw, exp.Literal) else str(raw)
        try:
            number = int(text)
        except ValueError:
            raise TranslationError(f"invalid parameter reference ${text}", "42601") from None
        if not 1 <= number <= 65535:
            raise TranslationError(f"there is no parameter ${number}", "42P02")
        self.ctx.max_param = max(self.ctx.max_param, number)
        return number

    def hint(self, number: int, hint: ParamHint) -> None:
        self.ctx.hints.setdefault(number, hint)

    def is_literal_param(self, node: exp.Expression) -> bool:
        if isinstance(node, exp.Parameter):
            return self.param(node) <= self.ctx.literal_params
        return False

    # the pass ---------------------------------------------------------------------
    def rewrite(self, tree: exp.Expression) -> exp.Expression:
        self._hints(tree)
        self._check_literals(tree)
        out = _post_order(_inline_laterals(_strip_catalog_dots(tree.copy())), self._node)
        self._check(out)
        return out

    def _check_literals(self, tree: exp.Expression) -> None:
        if not self.ctx.literal_params:
            return
        for ordered in tree.find_all(exp.Ordered):
            if isinstance(ordered.this, exp.Parameter) and self.is_literal_param(ordered.this):
                raise NeedsLiteral
        for group in tree.find_all(exp.Group):
            for key in group.expressions:
                if isinstance(key, exp.Parameter) and self.is_literal_param(key):
                    raise NeedsLiteral
        for interval in tree.find_all(exp.Interval):
            if any(isinstance(n, exp.Parameter) for n in interval.walk()):
                raise NeedsLiteral

    def _hints(self, tree: exp.Expression) -> None:
        """Parameter hints from the tree as PostgreSQL wrote it."""
        for node in tree.walk():
            if isinstance(node, exp.Cast) and isinstance(node.this, exp.Parameter):
                pg, _ = _type_of(node.to)
                self.hint(self.param(node.this), ParamHint(oid=pg.oid))
            elif isinstance(node, exp.Limit | exp.Offset):
                target = node.expression
                if isinstance(target, exp.Parameter):
                    self.hint(self.param(target), ParamHint(oid=20))
            elif isinstance(node, exp.Binary) and not isinstance(node, exp.And | exp.Or):
                left, right = node.this, node.expression
                for a, b in ((left, right), (right, left)):
                    if isinstance(a, exp.Parameter) and isinstance(b, exp.Column):
                        self.hint(self.param(a), self._column_hint(b, tree))
                    elif isinstance(a, exp.Parameter) and isinstance(node, exp.DPipe | exp.Like
                                                                     | exp.ILike):
                        self.hint(self.param(a), ParamHint(oid=25))
            elif isinstance(node, exp.In) and isinstance(node.this, exp.Column):
                for item in node.expressions:
                    if isinstance(item, exp.Parameter):
                        self.hint(self.param(item), self._column_hint(node.this, tree))
            elif isinstance(node, exp.Between) and isinstance(node.this, exp.Column):
                for item in (node.args.get("low"), node.args.get("high")):
                    if isinstance(item, exp.Parameter):
                        self.hint(self.param(item), self._column_hint(node.this, tree))
            elif isinstance(node, exp.Parameter):
                self.param(node)
        if isinstance(tree, exp.Insert):
            self._insert_hints(tree)
        if isinstance(tree, exp.Update):
            table = self._table_name(tree.this)
            for assignment in tree.expressions:
                if isinstance(assignment, exp.EQ) and isinstance(assignment.expression,
                                                                 exp.Parameter):
                    column = assignment.this
                    if isinstance(column, exp.Column) and table:
                        self.hint(self.param(assignment.expression),
                                  ParamHint(tables=(table,), column=column.name.lower()))

    def _insert_hints(self, tree: exp.Insert) -> None:
        target = tree.this
        if isinstance(target, exp.Schema):
            table = self._table_name(target.this)
            columns = [c.name.lower() for c in target.expressions]
        else:
            table = self._table_name(target)
            columns = []
        values = tree.expression
        if not table or not isinstance(values, exp.Values):
            return
        for row in values.expressions:
            items = row.expressions if isinstance(row, exp.Tuple) else [row]
            for index, item in enumerate(items):
                if isinstance(item, exp.Parameter):
                    column = columns[index] if index < len(columns) else f"#{index}"
                    self.hint(self.param(item), ParamHint(tables=(table,), column=column))

    def _table_name(self, node: exp.Expression | None) -> str:
        if isinstance(node, exp.Table):
            return node.name.lower() if not node.this.quoted else node.name
        return ""

    def _column_hint(self, column: exp.Column, tree: exp.Expression) -> ParamHint:
        name = column.name if column.this.quoted else column.name.lower()
        qualifier = column.table.lower() if column.table else ""
        tables: list[str] = []
        for table in tree.find_all(exp.Table):
            alias = table.alias.lower() if table.alias else ""
            real = self._table_name(table)
            if not qualifier or qualifier in (alias, real):
                tables.append(real)
        return ParamHint(tables=tuple(dict.fromkeys(tables)), column=name)

    def _node(self, node: exp.Expression) -> exp.Expression:
        """One node, its children already rewritten."""
        if isinstance(node, exp.EQ | exp.NEQ) and isinstance(node.expression, exp.Any):
            return self._any(node, node.expression)
        if isinstance(node, exp.NEQ) and isinstance(node.expression, exp.Anonymous) and \
                str(node.expression.this).upper() == "ALL" and \
                len(node.expression.expressions) == 1:
            return exp.Not(this=self._in(node.this, node.expression.expressions[0]))
        if isinstance(node, exp.Parameter):
            return exp.Var(this=f"?{self.param(node)}")
        if isinstance(node, exp.Identifier):
            if not node.quoted and node.this != node.this.lower():
                return exp.Identifier(this=node.this.lower(), quoted=False)
            return node
        if isinstance(node, exp.Table):
            return self._table(node)
        if isinstance(node, exp.Column):
            return self._column(node)
        if isinstance(node, exp.Cast | exp.TryCast):
            return self._cast(node)
        if isinstance(node, exp.Boolean):
            return exp.Literal.number(1 if node.this else 0)
        if isinstance(node, exp.CurrentTimestamp | exp.Localtimestamp):
            name = "_pg_now" if isinstance(node, exp.CurrentTimestamp) else "_pg_localtimestamp"
            return exp.Anonymous(this=name, expressions=[])
        if isinstance(node, exp.CurrentDate):
            return exp.Anonymous(this="_pg_current_date", expressions=[])
        if isinstance(node, exp.CurrentUser | exp.SessionUser):
            return exp.Anonymous(this="current_user", expressions=[])
        if isinstance(node, exp.ILike):
            return exp.Like(this=exp.Lower(this=node.this),
                            expression=exp.Lower(this=node.expression))
        if isinstance(node, exp.RegexpLike):
            return exp.Anonymous(this="_pg_regexp", expressions=[node.this, node.expression,
                                                                  exp.Literal.string("")])
        if isinstance(node, exp.RegexpILike):
            return exp.Anonymous(this="_pg_regexp", expressions=[node.this, node.expression,
                                                                  exp.Literal.string("i")])
        if isinstance(node, exp.Uuid):
            return exp.Anonymous(this="_pg_gen_random_uuid", expressions=[])
        if isinstance(node, exp.Array):
            return exp.Anonymous(this="json_array", expressions=list(node.expressions))
        if isinstance(node, exp.ArrayAgg):
            return exp.Anonymous(this="json_group_array", expressions=[node.this])
        if isinstance(node, exp.GroupConcat):
            return node
        if isinstance(node, exp.Anonymous):
            return self._function(node)
        if isinstance(node, exp.Func) and not isinstance(node, _ALLOWED):
            name = node.sql_name().lower()
            mapped = _FUNCTIONS.get(name)
            if mapped is not None:
                return exp.Anonymous(this=mapped[0], expressions=_func_args(node))
        if isinstance(node, exp.Collate):
            collation = node.expression.name.lower() if node.expression else ""
            if collation in ("default", "c", "pg_catalog.default", "posix", "ucs_basic"):
                return node.this
            raise unsupported(f'collation "{collation}"')
        if isinstance(node, exp.Operator):
            return self._operator(node)
        if isinstance(node, exp.Unnest):
            raise unsupported("unnest()")
        return node

    def _table(self, node: exp.Table) -> exp.Expression:
        schema = node.db.lower() if node.db else None
        name = node.name if node.this.quoted else node.name.lower()
        if node.catalog:
            raise unsupported("cross-database references")
        mapped = _catalog_table(schema, name)
        if mapped is not None:
            alias = node.args.get("alias")
            out = exp.Table(this=exp.Identifier(this=mapped, quoted=True))
            if alias is None and name != mapped:
                alias = exp.TableAlias(this=exp.Identifier(this=name, quoted=False))
            if alias is not None:
                out.set("alias", alias)
            return out
        if schema not in (None, "public"):
            raise TranslationError(f'schema "{schema}" does not exist', "3F000")
        if schema == "public":
            node = node.copy()
            node.set("db", None)
        return node

    def _column(self, node: exp.Column) -> exp.Expression:
        # pg_catalog.pg_class.relname: drop the schema, the table name stays (an alias of
        # the catalog table when it is mapped, see _table).
        if node.args.get("db") is not None:
            node = node.copy()
            node.set("db", None)
            node.set("catalog", None)
        return node

    def _cast(self, node: exp.Cast) -> exp.Expression:
        to = node.to
        if isinstance(to, exp.DataType) and to.this == exp.DType.USERDEFINED:
            raw = to.sql("postgres").lower()
        else:
            raw = to.sql("postgres").lower()
        name = raw.replace("pg_catalog.", "")
        if name in ("regclass", "regtype", "regnamespace", "regproc", "regprocedure",
                    "regoper", "regrole"):
            return exp.Anonymous(this=f"_pg_{name}", expressions=[node.this])
        pg, typmod = _type_of(to)
        inner = node.this
        return exp.Anonymous(this=_TYPE_CAST_FUNCTION, expressions=[
            inner, exp.Literal.number(pg.oid), exp.Literal.number(typmod)])

    def _any(self, node: exp.EQ | exp.NEQ, any_: exp.Any) -> exp.Expression:
        """``x = ANY (array)`` is ``x IN (its elements)``; ``x <> ANY`` is refused."""
        if isinstance(node, exp.NEQ):
            raise unsupported("<> ANY (...)")
        return self._in(node.this, any_.this)

    def _in(self, value: exp.Expression, array: exp.Expression) -> exp.Expression:
        while isinstance(array, exp.Paren):
            array = array.this
        if isinstance(array, exp.Anonymous) and str(array.this) == "json_array":
            return exp.In(this=value, expressions=list(array.expressions))
        elements = exp.select("value").from_(
            exp.Anonymous(this="json_each", expressions=[array]))
        return exp.In(this=value, query=exp.Subquery(this=elements))

    def _operator(self, node: exp.Operator) -> exp.Expression:
        op = str(node.args.get("operator", "")).lower().replace("pg_catalog.", "")
        left, right = node.this, node.expression
        if op in ("~", "~*", "!~", "!~*"):
            call = exp.Anonymous(this="_pg_regexp", expressions=[
                left, right, exp.Literal.string("i" if "*" in op else "")])
            return exp.Not(this=call) if op.startswith("!") else call
        simple = {"=": exp.EQ, "<>": exp.NEQ, "!=": exp.NEQ, "<": exp.LT, ">": exp.GT,
                  "<=": exp.LTE, ">=": exp.GTE, "+": exp.Add, "-": exp.Sub, "*": exp.Mul,
                  "/": exp.Div, "||": exp.DPipe}
        if op in simple:
            return cast(exp.Expression, simple[op](this=left, expression=right))
        raise unsupported(f"operator {op}")

    def _function(self, node: exp.Anonymous) -> exp.Expression:
        name = str(node.this).lower()
        if name.startswith("pg_catalog."):
            name = name[len("pg_catalog."):]
        if name in _FUNCTIONS:
            return exp.Anonymous(this=_FUNCTIONS[name][0], expressions=list(node.expressions))
        if name in _SQLITE_SAME or name in self.catalog_functions or name.startswith("_pg_"):
            return exp.Anonymous(this=name, expressions=list(node.expressions))
        raise TranslationError(f"function {name}() does not exist in Borealis", "42883")

    def _check(self, tree: exp.Expression) -> None:
        for node in tree.walk():
            if not isinstance(node, _ALLOWED):
                raise unsupported(_feature_name(cast(exp.Expression, node)))


def _post_order(node: exp.Expression, fn: Any) -> exp.Expression:
    """Rewrite ``node``'s children first, then ``node`` (sqlglot's ``transform`` does not
    visit the children of a node it replaced)."""
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            node.set(key, _post_order(value, fn))
        elif isinstance(value, list):
            node.set(key, [_post_order(v, fn) if isinstance(v, exp.Expression) else v
                           for v in value])
    out = fn(node)
    assert isinstance(out, exp.Expression)
    return out


def _strip_catalog_dots(tree: exp.Expression) -> exp.Expression:
    """``pg_catalog.count(x)`` parses as a Dot of the schema and the call: keep the call."""
    for dot in list(tree.find_all(exp.Dot)):
        schema = dot.this
        if isinstance(schema, exp.Identifier) and schema.name.lower() == "pg_catalog" and \
                isinstance(dot.expression, exp.Func):
            call = cast(exp.Expression, dot.expression)
            if dot is tree:
                return call
            dot.replace(call)
    return tree


def _inline_laterals(tree: exp.Expression) -> exp.Expression:
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


def _func_args(node: exp.Func) -> list[exp.Expression]:
    args: list[exp.Expression] = []
    for key in node.arg_types:
        value = node.args.get(key)
        if isinstance(value, list):
            args.extend(v for v in value if isinstance(v, exp.Expression))
        elif isinstance(value, exp.Expression):
            args.append(value)
    return args


def _feature_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Func):
        return f"the function {node.sql_name().lower()}()"
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(node).__name__).lower()
    return f"{words} ({node.sql('postgres')[:60]})"


# -- output columns ------------------------------------------------------------------------

_NOW_CALL = re.compile(r"\bnow\s*\(", re.I)
_source_text: contextvars.ContextVar[str] = contextvars.ContextVar("source", default="")


def _column_name(node: exp.Expression) -> str:
    """PostgreSQL's FigureColname: what a result column is called."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Column):
        return node.name if node.this.quoted else node.name.lower()
    if isinstance(node, exp.Cast):
        inner = _column_name(node.this)
        if inner != "?column?":
            return inner
        try:
            pg, _ = _type_of(node.to)
        except TranslationError:
            return "?column?"
        return pg.name
    if isinstance(node, exp.Case):
        return "case"
    if isinstance(node, exp.Coalesce):
        return "coalesce"
    if isinstance(node, exp.Exists):
        return "exists"
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower().split(".")[-1]
    if isinstance(node, exp.CurrentTimestamp):
        # sqlglot parses now() and CURRENT_TIMESTAMP alike; the text tells them apart
        return "now" if _NOW_CALL.search(_source_text.get()) else "current_timestamp"
    if isinstance(node, exp.CurrentDate):
        return "current_date"
    if isinstance(node, exp.CurrentUser):
        return "current_user"
    if isinstance(node, exp.Count):
        return "count"
    if isinstance(node, exp.Array):
        return "array"
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    if isinstance(node, exp.Paren):
        return _column_name(node.this)
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return _column_name(cast(exp.Expression, node.expression))
    return "?column?"


def _static_type(node: exp.Expression, kinds: tuple[str, ...]) -> tuple[int, int]:
    """A result column's type when the expression alone decides it; (0, -1) otherwise."""
    if isinstance(node, exp.Alias):
        return _static_type(node.this, kinds)
    if isinstance(node, exp.Paren):
        return _static_type(node.this, kinds)
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        return _static_type(cast(exp.Expression, node.expression), kinds)
    if isinstance(node, exp.Cast):
        try:
            pg, typmod = _type_of(node.to)
        except TranslationError:
            return 0, -1
        return pg.oid, typmod
    if isinstance(node, exp.Literal):
        if node.is_string:
            return 25, -1
        kind = sqltext._number_value(node.this)[1] if re.fullmatch(
            r"[0-9.eE+-]+", node.this) else "numeric"
        return {"int4": 23, "int8": 20, "numeric": 1700}[kind], -1
    if isinstance(node, exp.Parameter):
        raw = node.this
        index = int(raw.this if isinstance(raw, exp.Literal) else str(raw)) - 1
        if 0 <= index < len(kinds):
            return {"int4": 23, "int8": 20, "numeric": 1700, "unknown": 25}[kinds[index]], -1
        return 0, -1
    if isinstance(node, exp.Boolean | exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT
                  | exp.LTE | exp.And | exp.Or | exp.Not | exp.Is | exp.In | exp.Between
                  | exp.Like | exp.ILike | exp.Exists | exp.RegexpLike | exp.NullSafeEQ
                  | exp.NullSafeNEQ):
        return 16, -1
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
        left = _static_type(node.this, kinds)[0]
        right = _static_type(node.expression, kinds)[0]
        return _promote(left, right), -1
    if isinstance(node, exp.Neg):
        return _static_type(node.this, kinds)[0], -1
    if isinstance(node, exp.Count):
        return 20, -1
    if isinstance(node, exp.DPipe | exp.Lower | exp.Upper | exp.Concat):
        return 25, -1
    if isinstance(node, exp.Length):
        return 23, -1
    if isinstance(node, exp.CurrentTimestamp):
        return 1184, -1
    if isinstance(node, exp.CurrentDate):
        return 1082, -1
    if isinstance(node, exp.CurrentUser | exp.SessionUser):
        return 19, -1
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower().split(".")[-1]
        if name in _FUNCTIONS:
            return _FUNCTIONS[name][1], -1
        return 0, -1
    if isinstance(node, exp.Func):
        mapped = _FUNCTIONS.get(node.sql_name().lower())
        if mapped is not None:
            return mapped[1], -1
    return 0, -1


_NUMERIC_RANK = {21: 1, 23: 2, 20: 3, 1700: 4, 700: 5, 701: 6}
"""PostgreSQL's implicit numeric promotion: int2 < int4 < int8 < numeric < float4 < float8
(an integer operand with a numeric or float one takes the wider type)."""


def _promote(left: int, right: int) -> int:
    """The type of an arithmetic expression on operands of these types (0: unknown)."""
    if left not in _NUMERIC_RANK or right not in _NUMERIC_RANK:
        return 0
    return max(left, right, key=_NUMERIC_RANK.__getitem__)


def _outputs(select: exp.Expression, kinds: tuple[str, ...]) -> list[OutputColumn] | None:
    """The named output columns of a query; None when a star leaves it to SQLite."""
    if isinstance(select, exp.Union | exp.Intersect | exp.Except):
        return _outputs(select.this, kinds)
    if isinstance(select, exp.Subquery):
        return _outputs(select.this, kinds)
    if not isinstance(select, exp.Select):
        return None
    out: list[OutputColumn] = []
    for expression in select.expressions:
        if isinstance(expression, exp.Star) or (isinstance(expression, exp.Column)
                                                and isinstance(expression.this, exp.Star)):
            return None
        oid, typmod = _static_type(expression, kinds)
        out.append(OutputColumn(_column_name(expression), oid, typmod))
    return out


def _alias_outputs(tree: exp.Expression, names: list[OutputColumn]) -> None:
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


# -- DDL -----------------------------------------------------------------------------------

def _sequence_row(name: str, pg: pgtypes.PgType, owner_table: str, owner_column: str,
                  identity: str) -> str:
    maximum = {"int2": 32767, "int4": 2147483647}.get(pg.name, 9223372036854775807)
    return ("INSERT INTO _borealis_sequences (name, data_type, start_value, min_value, "
            "max_value, increment_by, cycle, last_value, is_called, owner_table, "
            f"owner_column, identity) VALUES ({_sq(name)}, {_sq(pg.name)}, 1, 1, {maximum}, "
            f"1, 0, 1, 0, {_sq(owner_table)}, {_sq(owner_column)}, {_sq(identity)})")


SEQUENCES_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS _borealis_sequences (name TEXT PRIMARY KEY, "
    "data_type TEXT NOT NULL DEFAULT 'int8', start_value INTEGER NOT NULL, "
    "min_value INTEGER NOT NULL, max_value INTEGER NOT NULL, increment_by INTEGER NOT NULL, "
    "cycle INTEGER NOT NULL DEFAULT 0, last_value INTEGER NOT NULL, "
    "is_called INTEGER NOT NULL DEFAULT 0, owner_table TEXT, owner_column TEXT, "
    "identity TEXT NOT NULL DEFAULT '')"
)


def _sq(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Ddl:
    def __init__(self, rewriter: _Rewriter) -> None:
        self.rw = rewriter

    def create_table(self, tree: exp.Create) -> Statement:
        schema = tree.this
        if not isinstance(schema, exp.Schema):
            if tree.expression is not None:  # CREATE TABLE ... AS SELECT
                body = self.rw.rewrite(tree.expression)
                table = self.rw.rewrite(tree.this)
                exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
                sql = (f"CREATE TABLE{exists} {table.sql('sqlite')} AS "
                       f"{body.sql('sqlite', unsupported_level=ErrorLevel.RAISE)}")
                return Statement(Kind.DDL, "SELECT", (sql,), read_only=False)
            raise unsupported("this form of CREATE TABLE")
        table = schema.this
        assert isinstance(table, exp.Table)
        table_name = self.rw._table_name(table)
        if table.db and table.db.lower() != "public":
            raise TranslationError(f'schema "{table.db}" does not exist', "3F000")
        temporary = False
        for prop in (tree.args.get("properties") or exp.Properties()).expressions:
            if isinstance(prop, exp.TemporaryProperty):
                temporary = True
            elif isinstance(prop, exp.WithDataProperty | exp.OnCommitProperty):
                raise unsupported(prop.sql("postgres"))
            # storage parameters (WITH (fillfactor=...)), tablespaces: no effect here
        columns: list[str] = []
        setup: list[str] = []
        for item in schema.expressions:
            if isinstance(item, exp.ColumnDef):
                columns.append(self.column(table_name, item, setup))
            else:
                columns.append(self.constraint(item))
        exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
        temp = "TEMP " if temporary else ""
        sql = f"CREATE {temp}TABLE{exists} {_qi(table_name)} ({', '.join(columns)})"
        if setup:
            setup.insert(0, SEQUENCES_TABLE_DDL)
        return Statement(Kind.DDL, "CREATE TABLE", (sql,), read_only=False,
                         setup=tuple(setup))

    def column(self, table: str, item: exp.ColumnDef, setup: list[str]) -> str:
        name = item.name if item.this.quoted else item.name.lower()
        kind = item.args.get("kind")
        if kind is None:
            raise TranslationError(f'column "{name}" has no type', "42601")
        type_sql = kind.sql("postgres").lower()
        serial = {"serial": "int4", "serial4": "int4", "bigserial": "int8",
                  "serial8": "int8", "smallserial": "int2", "serial2": "int2"}.get(type_sql)
        pg, typmod = pgtypes.lookup(serial) if serial else _type_of(kind)
        decltype = pgtypes.sqlite_decltype(pg, typmod)
        sequence = ""
        identity = ""
        constraints = []
        for constraint in item.args.get("constraints") or []:
            c = constraint.args.get("kind")
            if isinstance(c, exp.GeneratedAsIdentityColumnConstraint):
                identity = "a" if c.args.get("this") else "d"
                continue
            constraints.append(self.column_constraint(constraint))
        if (serial or identity) and decltype == "INTEGER":
            # Not SQLite's rowid alias: SQLite ignores a rowid's DEFAULT and reuses the
            # highest value after a delete, where a sequence never goes back.
            decltype = "INT"
        parts = [_qi(name), decltype, *constraints]
        if serial or identity:
            sequence = f"{table}_{name}_seq"
            setup.append(_sequence_row(sequence, pg, table, name, identity))
            parts.append(f"NOT NULL DEFAULT (_pg_nextval({_sq(sequence)}))")
        return " ".join(parts)

    def column_constraint(self, constraint: exp.ColumnConstraint) -> str:
        name = constraint.args.get("this")
        prefix = f"CONSTRAINT {_qi(name.name)} " if name is not None else ""
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.NotNullColumnConstraint):
            return prefix + ("NULL" if kind.args.get("allow_null") else "NOT NULL")
        if isinstance(kind, exp.PrimaryKeyColumnConstraint):
            return prefix + "PRIMARY KEY"
        if isinstance(kind, exp.UniqueColumnConstraint):
            return prefix + "UNIQUE"
        if isinstance(kind, exp.DefaultColumnConstraint):
            value = self.rw.rewrite(kind.this)
            return prefix + f"DEFAULT ({value.sql('sqlite', unsupported_level=ErrorLevel.RAISE)})"
        if isinstance(kind, exp.CheckColumnConstraint):
            value = self.rw.rewrite(kind.this)
            return prefix + f"CHECK ({value.sql('sqlite', unsupported_level=ErrorLevel.RAISE)})"
        if isinstance(kind, exp.Reference):
            return prefix + self.reference(kind)
        raise unsupported(f"the column constraint {constraint.sql('postgres')}")

    def reference(self, ref: exp.Reference) -> str:
        target = ref.this
        if isinstance(target, exp.Schema):
            table = self.rw._table_name(target.this)
            cols = ", ".join(_qi(c.name.lower()) for c in target.expressions)
            text = f"REFERENCES {_qi(table)} ({cols})"
        else:
            text = f"REFERENCES {_qi(self.rw._table_name(target))}"
        for option in ref.args.get("options") or []:
            option_text = str(option).upper()
            if not re.fullmatch(r"ON (DELETE|UPDATE) (CASCADE|RESTRICT|NO ACTION|SET NULL|"
                                r"SET DEFAULT)", option_text):
                raise unsupported(f"the foreign key option {option_text}")
            text += " " + option_text
        return text

    def constraint(self, item: exp.Expression) -> str:
        prefix = ""
        if isinstance(item, exp.Constraint):
            prefix = f"CONSTRAINT {_qi(item.name)} "
            inner = item.expressions[0] if item.expressions else None
            if inner is None or len(item.expressions) != 1:
                raise unsupported(f"the constraint {item.sql('postgres')}")
            item = inner
        if isinstance(item, exp.PrimaryKey):
            cols = ", ".join(_qi(c.name.lower()) for c in item.expressions)
            return prefix + f"PRIMARY KEY ({cols})"
        if isinstance(item, exp.UniqueColumnConstraint):
            target = item.this
            cols_src = target.expressions if isinstance(target, exp.Schema) else item.expressions
            cols = ", ".join(_qi(c.name.lower()) for c in cols_src)
            return prefix + f"UNIQUE ({cols})"
        if isinstance(item, exp.ForeignKey):
            cols = ", ".join(_qi(c.name.lower()) for c in item.expressions)
            ref = item.args.get("reference")
            if not isinstance(ref, exp.Reference):
                raise unsupported("a FOREIGN KEY without REFERENCES")
            text = f"FOREIGN KEY ({cols}) {self.reference(ref)}"
            for key in ("delete", "update"):
                action = item.args.get(key)
                if action:
                    text += f" ON {key.upper()} {str(action).upper()}"
            return prefix + text
        if isinstance(item, exp.CheckColumnConstraint | exp.Check):
            value = self.rw.rewrite(item.this)
            return prefix + f"CHECK ({value.sql('sqlite', unsupported_level=ErrorLevel.RAISE)})"
        raise unsupported(f"the table constraint {item.sql('postgres')}")

    def create_index(self, tree: exp.Create) -> Statement:
        index = tree.this
        assert isinstance(index, exp.Index)
        name = index.name.lower() if index.name else ""
        table = self.rw._table_name(index.args.get("table"))
        params = index.args.get("params")
        using = params.args.get("using") if params is not None else None
        if using is not None and str(using.name if hasattr(using, "name") else using
                                     ).lower() != "btree":
            raise unsupported(f"index method {using}")
        if params is None or not params.args.get("columns"):
            raise unsupported("an index without columns")
        if params.args.get("include"):
            raise unsupported("INCLUDE columns")
        columns = []
        for column in params.args["columns"]:
            expr = column.this if isinstance(column, exp.Ordered) else column
            text = self.rw.rewrite(expr).sql("sqlite", unsupported_level=ErrorLevel.RAISE)
            if isinstance(column, exp.Ordered) and column.args.get("desc"):
                text += " DESC"
            columns.append(text)
        if not name:
            stems = [c.strip('"').split()[0] for c in columns]
            name = f"{table}_{'_'.join(stems)}_idx"
        unique = "UNIQUE " if tree.args.get("unique") else ""
        exists = "IF NOT EXISTS " if tree.args.get("exists") else ""
        sql = f"CREATE {unique}INDEX {exists}{_qi(name)} ON {_qi(table)} ({', '.join(columns)})"
        where = params.args.get("where")
        if where is not None:
            sql += " " + self.rw.rewrite(where).sql("sqlite", unsupported_level=ErrorLevel.RAISE)
        return Statement(Kind.DDL, "CREATE INDEX", (sql,), read_only=False)

    def drop(self, tree: exp.Drop) -> Statement:
        kind = str(tree.args.get("kind") or "").upper()
        if tree.args.get("cascade"):
            raise unsupported("DROP ... CASCADE")
        exists = " IF EXISTS" if tree.args.get("exists") else ""
        targets = list(tree.args.get("tables") or []) or [tree.this, *(tree.expressions or [])]
        names = [self.rw._table_name(t) if isinstance(t, exp.Table) else t.name.lower()
                 for t in targets if t is not None]
        if kind in ("TABLE", "VIEW", "INDEX"):
            sql = tuple(f"DROP {kind}{exists} {_qi(n)}" for n in names)
            setup: tuple[str, ...] = ()
            if kind == "TABLE":
                cleanup = tuple(
                    "DELETE FROM _borealis_sequences WHERE owner_table = " + _sq(n)
                    for n in names)
                return Statement(Kind.DDL, f"DROP {kind}", sql, read_only=False,
                                 action=SequenceOp("drop_owned", args=cleanup))
            return Statement(Kind.DDL, f"DROP {kind}", sql, read_only=False, setup=setup)
        if kind == "SEQUENCE":
            return Statement(Kind.DDL, "DROP SEQUENCE", (), read_only=False,
                             action=SequenceOp("drop_sequence", args=(tuple(names),
                                                                      bool(exists))))
        if kind == "SCHEMA":
            raise unsupported("DROP SCHEMA")
        raise unsupported(f"DROP {kind}")

    def alter(self, tree: exp.Alter) -> Statement:
        table = self.rw._table_name(tree.this)
        actions = tree.args.get("actions") or []
        if len(actions) != 1:
            raise unsupported("ALTER TABLE with several actions")
        action = actions[0]
        if isinstance(action, exp.ColumnDef):  # ADD COLUMN
            setup: list[str] = []
            column = self.column(table, action, setup)
            if setup:
                raise unsupported("ADD COLUMN of a SERIAL or IDENTITY column")
            return Statement(Kind.DDL, "ALTER TABLE",
                             (f"ALTER TABLE {_qi(table)} ADD COLUMN {column}",),
                             read_only=False)
        if isinstance(action, exp.AlterRename):
            new = self.rw._table_name(action.this)
            return Statement(Kind.DDL, "ALTER TABLE",
                             (f"ALTER TABLE {_qi(table)} RENAME TO {_qi(new)}",),
                             read_only=False)
        if isinstance(action, exp.RenameColumn):
            old, new = action.this.name.lower(), action.args["to"].name.lower()
            return Statement(Kind.DDL, "ALTER TABLE", (
                f"ALTER TABLE {_qi(table)} RENAME COLUMN {_qi(old)} TO {_qi(new)}",),
                read_only=False)
        if isinstance(action, exp.Drop) and str(action.args.get("kind", "")).upper() == "COLUMN":
            column = action.this.name.lower()
            return Statement(Kind.DDL, "ALTER TABLE",
                             (f"ALTER TABLE {_qi(table)} DROP COLUMN {_qi(column)}",),
                             read_only=False)
        add = action
        if isinstance(add, exp.AddConstraint):
            add = add.expressions[0] if add.expressions else add
        if isinstance(add, exp.Constraint):
            constraint_name = add.name
            inner = add.expressions[0] if add.expressions else None
        else:
            constraint_name, inner = "", add
        if isinstance(inner, exp.PrimaryKey):
            cols = tuple(c.name.lower() for c in inner.expressions)
            return Statement(Kind.DDL, "ALTER TABLE", (), read_only=False,
                             action=SequenceOp("add_primary_key", table,
                                               (cols, constraint_name)))
        if isinstance(inner, exp.UniqueColumnConstraint):
            target = inner.this
            cols_src = target.expressions if isinstance(target, exp.Schema) else inner.expressions
            unique_cols = [c.name.lower() for c in cols_src]
            index = constraint_name or f"{table}_{'_'.join(unique_cols)}_key"
            col_sql = ", ".join(_qi(c) for c in unique_cols)
            return Statement(Kind.DDL, "ALTER TABLE", (
                f"CREATE UNIQUE INDEX {_qi(index)} ON {_qi(table)} ({col_sql})",),
                read_only=False)
        raise unsupported(f"ALTER TABLE {action.sql('postgres')[:60]}")


# -- the translator ------------------------------------------------------------------------

def translate_statement(sql: str, *, kinds: tuple[str, ...] = ()) -> Statement:
    """Translate one statement (no trailing semicolon). ``kinds``: the normalised literals'
    kinds when ``sql`` is a normalised shape (its ``$1..$n`` are literals)."""
    if sqltext.is_blank(sql):
        return Statement(Kind.EMPTY, "")
    utility = _utility(sql)
    if utility is not None:
        return utility
    if (match := _COPY.match(sql)) is not None:
        return _copy(match)
    try:
        trees = sqlglot.parse(sqltext.space_parameters(sql), read="postgres",
                              error_level=ErrorLevel.RAISE)
    except (ParseError, TokenError) as exc:
        raise TranslationError(f"syntax error: {_first_line(exc)}", "42601") from None
    if len(trees) != 1 or trees[0] is None:
        raise TranslationError("expected one statement", "42601")
    tree = cast(exp.Expression, trees[0])
    _source_text.set(sql)
    ctx = _Context(literal_params=len(kinds))
    rw = _Rewriter(ctx)
    ddl = _Ddl(rw)
    try:
        statement = _dispatch(tree, rw, ddl, kinds)
    except UnsupportedError as exc:
        raise unsupported(_first_line(exc)) from None
    hints = tuple(ctx.hints.get(i, ParamHint()) for i in range(1, ctx.max_param + 1))
    if len(kinds):
        hints = tuple(ParamHint(oid={"int4": 23, "int8": 20, "numeric": 1700,
                                     "unknown": 0}[k]) if h == ParamHint() else h
                      for h, k in zip(hints, kinds, strict=False))
    return Statement(statement.kind, statement.tag, statement.sqlite, ctx.max_param, hints,
                     statement.columns, statement.action, statement.read_only,
                     statement.setup + tuple(ctx.setup))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _generate(tree: exp.Expression) -> str:
    return tree.sql("sqlite", unsupported_level=ErrorLevel.RAISE)


def _dispatch(tree: exp.Expression, rw: _Rewriter, ddl: _Ddl,
              kinds: tuple[str, ...]) -> Statement:
    if isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except | exp.Values):
        if tree.args.get("locks"):
            tree = tree.copy()
            tree.set("locks", None)  # FOR UPDATE: SQLite's one writer already serialises
        names = _outputs(tree, kinds)
        out = rw.rewrite(tree)
        if names is not None:
            _alias_outputs(out, names)
        return Statement(Kind.QUERY, "SELECT", (_generate(out),),
                         columns=tuple(names) if names is not None else None)
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete):
        tag = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE"}[type(tree)]
        if isinstance(tree, exp.Delete) and tree.args.get("using"):
            raise unsupported("DELETE ... USING")
        returning = tree.args.get("returning")
        names = None
        if returning is not None:
            names = _outputs(exp.Select(expressions=list(returning.expressions)), kinds)
        if isinstance(tree, exp.Insert) and tree.args.get("conflict") is not None:
            _check_conflict(tree.args["conflict"])
        out = rw.rewrite(tree)
        if isinstance(out, exp.Insert) and out.args.get("conflict") is not None:
            _strip_conflict_nulls(out.args["conflict"])
        if returning is not None and names is not None:
            ret = out.args["returning"]
            fake = exp.Select(expressions=list(ret.expressions))
            _alias_outputs(fake, names)
            ret.set("expressions", fake.expressions)
        kind = Kind.QUERY if returning is not None else Kind.DML
        return Statement(kind, tag, (_generate(out),), read_only=False,
                         columns=(tuple(names) if names is not None else None)
                         if returning is not None else None)
    if isinstance(tree, exp.Create):
        created = str(tree.args.get("kind") or "").upper()
        if created == "TABLE":
            return ddl.create_table(tree)
        if created == "INDEX":
            return ddl.create_index(tree)
        if created == "VIEW":
            body = rw.rewrite(tree.expression)
            name = rw._table_name(tree.this)
            exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
            if tree.args.get("replace"):
                raise unsupported("CREATE OR REPLACE VIEW")
            return Statement(Kind.DDL, "CREATE VIEW",
                             (f"CREATE VIEW{exists} {_qi(name)} AS {_generate(body)}",),
                             read_only=False)
        if created == "SEQUENCE":
            return _create_sequence(tree, rw)
        if created == "SCHEMA":
            raise unsupported("CREATE SCHEMA (Borealis has the one schema public)")
        raise unsupported(f"CREATE {created}")
    if isinstance(tree, exp.Drop):
        return ddl.drop(tree)
    if isinstance(tree, exp.Alter):
        return ddl.alter(tree)
    if isinstance(tree, exp.TruncateTable):
        tables = tuple(rw._table_name(t) for t in tree.expressions)
        restart = str(tree.args.get("identity") or "").upper() == "RESTART"
        if tree.args.get("option") and str(tree.args["option"]).upper() == "CASCADE":
            raise unsupported("TRUNCATE ... CASCADE")
        return Statement(Kind.DDL, "TRUNCATE TABLE",
                         tuple(f"DELETE FROM {_qi(t)}" for t in tables), read_only=False,
                         action=SequenceOp("truncate", args=(tables, restart)))
    if isinstance(tree, exp.Command):
        word = str(tree.this).upper()
        raise unsupported(f"the {word} statement")
    raise unsupported(_feature_name(tree))


def _check_conflict(conflict: exp.OnConflict) -> None:
    if conflict.args.get("constraint") is not None:
        raise unsupported("ON CONFLICT ON CONSTRAINT")


def _strip_conflict_nulls(conflict: exp.Expression) -> None:
    for ordered in list(conflict.find_all(exp.Ordered)):
        ordered.replace(ordered.this)


def _create_sequence(tree: exp.Create, rw: _Rewriter) -> Statement:
    name = rw._table_name(tree.this)
    options: dict[str, Any] = {}
    props = tree.args.get("properties")
    for prop in (props.expressions if props is not None else []):
        if isinstance(prop, exp.SequenceProperties):
            for key in ("start", "increment", "minvalue", "maxvalue", "cycle", "cache"):
                value = prop.args.get(key)
                if value is not None:
                    number = _literal_int(value) if isinstance(value, exp.Expression) else value
                    options[key] = number
    return Statement(Kind.DDL, "CREATE SEQUENCE", (), read_only=False,
                     action=SequenceOp("create_sequence", name, (
                         tuple(sorted(options.items())), bool(tree.args.get("exists")))))


_COPY_OPTION = re.compile(r"(\w+)(?:\s+('(?:[^']|'')*'|\w+))?", re.I)


def _copy(match: re.Match[str]) -> Statement:
    direction = match["direction"].lower()
    where = match["where"].lower()
    if (direction, where) not in (("from", "stdin"), ("to", "stdout")):
        raise unsupported(f"COPY {direction.upper()} {where.upper()}")
    options_text = match["options"].strip()
    options: dict[str, str] = {}
    if options_text.upper().startswith("WITH"):
        options_text = options_text[4:].strip()
    if options_text.startswith("(") and options_text.endswith(")"):
        for part in _split_commas(options_text[1:-1]):
            m = _COPY_OPTION.fullmatch(part.strip())
            if m is None:
                raise TranslationError(f"syntax error in COPY option {part.strip()!r}", "42601")
            options[m.group(1).lower()] = m.group(2) or ""
    elif options_text:
        # the pre-9.0 syntax: CSV, HEADER, DELIMITER 'x', NULL 'y'
        for m in re.finditer(r"(CSV|HEADER|BINARY|DELIMITER|NULL|QUOTE|ESCAPE)"
                             r"(?:\s+(?:AS\s+)?('(?:[^']|'')*'))?", options_text, re.I):
            key = m.group(1).lower()
            if key in ("csv", "binary"):
                options["format"] = key
            else:
                options[key] = m.group(2) or "true"
    fmt = _copy_value(options.pop("format", "text")).lower()
    if fmt not in ("text", "csv", "binary"):
        raise unsupported(f"COPY in {fmt} format")
    csv = fmt == "csv"
    delimiter = _copy_value(options.pop("delimiter", "," if csv else "\t"))
    null = _copy_value(options.pop("null", "" if csv else "\\N"))
    header = _copy_value(options.pop("header", "false")).lower() in ("true", "on", "1", "")
    quote = _copy_value(options.pop("quote", '"'))
    escape = _copy_value(options.pop("escape", quote))
    options.pop("freeze", None)
    options.pop("encoding", None)
    if options:
        raise unsupported(f"the COPY option {next(iter(options)).upper()}")
    if len(delimiter) != 1:
        raise TranslationError("COPY delimiter must be a single one-byte character", "0A000")
    query = None
    table, columns = "", cast(tuple[str, ...], ())
    if match["query"] is not None:
        inner = translate_statement(match["query"])
        if inner.kind is not Kind.QUERY:
            raise unsupported("COPY (statement) other than a query")
        query = inner.sqlite[0]
    else:
        raw = match["table"]
        table = raw[1:-1] if raw.startswith('"') else raw.lower()
        if table.startswith("public."):
            table = table[len("public."):]
        if match["columns"]:
            columns = tuple(_identifier(c) for c in match["columns"].split(","))
    return Statement(Kind.COPY, "COPY", read_only=direction == "to", action=CopyAction(
        table, columns, direction, query, fmt, delimiter, null, header, quote, escape))


def _copy_value(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("'") or stripped[:2].lower() == "e'":
        return sqltext.string_literal_value(stripped)
    return stripped or text  # a default of whitespace (the tab delimiter) stays


class Translator:
    """Translations by statement text and by normalised shape, least recently used out.

    Thread-safe: sessions translate in their own threads."""

    def __init__(self, entries_max: int = CACHE_ENTRIES_MAX) -> None:
        self.entries_max = entries_max
        self._cache: OrderedDict[Any, Statement | TranslationError] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _get(self, key: Any) -> Statement | TranslationError | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
                self.hits += 1
            return entry

    def _put(self, key: Any, entry: Statement | TranslationError) -> None:
        with self._lock:
            self.misses += 1
            self._cache[key] = entry
            if len(self._cache) > self.entries_max:
                self._cache.popitem(last=False)

    def translate(self, sql: str) -> Statement:
        """A statement as sent (extended protocol: its ``$n`` are the client's)."""
        entry = self._get(("text", sql))
        if entry is None:
            try:
                entry = translate_statement(sql)
            except NeedsLiteral:  # pragma: no cover - only normalised shapes raise it
                raise AssertionError("NeedsLiteral without normalised literals") from None
            except TranslationError as exc:
                entry = exc
            self._put(("text", sql), entry)
        if isinstance(entry, TranslationError):
            raise TranslationError(str(entry), entry.sqlstate)
        return entry

    def translate_simple(self, sql: str) -> tuple[Statement, tuple[Any, ...]]:
        """A simple-protocol statement: its translation and the values of the parameters
        its literals became (none when it was translated as written)."""
        normalized = sqltext.normalize(sql)
        if normalized is None:
            return self.translate(sql), ()
        key = ("shape", normalized.key, normalized.kinds)
        entry = self._get(key)
        if entry is None:
            try:
                entry = translate_statement(normalized.key, kinds=normalized.kinds)
            except NeedsLiteral:
                entry = None
            except TranslationError as exc:
                entry = exc
            if entry is None:
                self._put(key, TranslationError("", "needs-literal"))
                return self.translate(sql), ()
            self._put(key, entry)
        if isinstance(entry, TranslationError):
            if entry.sqlstate == "needs-literal":
                return self.translate(sql), ()
            raise TranslationError(str(entry), entry.sqlstate)
        return entry, normalized.values
