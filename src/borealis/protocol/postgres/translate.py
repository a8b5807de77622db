"""PostgreSQL SQL to SQLite SQL (DESIGN decision 8), behind a cache.

A statement is parsed with sqlglot's PostgreSQL dialect (``rewrite.PgDialect``), prepared by
whole-tree passes (``passes``), rewritten node by node into SQLite's forms (``rewrite``:
expressions; ``ddl``: schema changes) and checked against a whitelist of the nodes the
translator knows how to run with PostgreSQL's meaning. Where SQLite's own functions and
operators would give another result, the SQL calls ``_pg_*`` functions that each session
registers (``functions``, ``numeric``, ``temporal``, ``jsonops``, ``session``). A node
outside the whitelist refuses the statement with SQLSTATE 0A000 naming the feature:
Borealis never runs a statement with a different meaning than PostgreSQL would give it.
Statements that SQLite does not have (SET, SHOW, COPY, TRUNCATE, sequences,
``ALTER TABLE ... ADD PRIMARY KEY``) become an ``action`` that the server carries out;
transactions, settings, maintenance and COPY are recognised from their text, before sqlglot.

What the translation records besides the SQL, for the protocol (``statement.Statement``):
- the output columns' names as PostgreSQL names them (``?column?``, ``count``, the column's
  name), so that result sets look the same (``outputs``), and their types by PostgreSQL's
  rules (``exprtypes``): known where the statement alone decides them, else a formula over
  the table columns and parameters they read, which the server resolves against the schema
  at Describe; a plain column's type is SQLite's declared type when the statement is
  prepared (``types.type_from_decltype``);
- a hint per parameter (``$n``) for its type: the column it is compared with or assigned
  to, a cast, a LIMIT. The server resolves hints against the schema at Parse time and
  answers ParameterDescription with real OIDs (asyncpg encodes by them).

The cache: ``Translator.translate`` keys statements by their text; simple-protocol
statements are first normalised (``sqltext.normalize``) so that their literals become
parameters and one translation serves every value (pgbench ``-M simple``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError

from borealis.protocol.postgres import exprtypes, outputs, sqltext
from borealis.protocol.postgres.ddl import SEQUENCES_TABLE_DDL, Ddl, generate
from borealis.protocol.postgres.passes import mark_catalog_columns, name_reg_outputs, undo_lambdas
from borealis.protocol.postgres.rewrite import TEMPLATE_CALLS, PgDialect, Rewriter
from borealis.protocol.postgres.statement import (
    Action,
    Context,
    CopyAction,
    ExplainAction,
    Kind,
    NeedsLiteral,
    OutputColumn,
    ParamHint,
    SequenceOp,
    SetAction,
    ShowAction,
    Statement,
    TransactionAction,
    TranslationError,
    unsupported,
)

__all__ = ["CACHE_ENTRIES_MAX", "SEQUENCES_TABLE_DDL", "Action", "CopyAction", "ExplainAction",
           "Kind",
           "NeedsLiteral", "OutputColumn", "ParamHint", "SequenceOp", "SetAction",
           "ShowAction", "Statement", "TransactionAction", "TranslationError", "Translator",
           "translate_statement", "unsupported"]

STATEMENT_DEPTH_NOTE = "Python's recursion limit"
CACHE_ENTRIES_MAX = 4096
"""Translations kept (least recently used dropped): statement shapes, not statements."""


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
_SET_CONSTRAINTS = re.compile(
    r"^\s*SET\s+CONSTRAINTS\s+(?P<which>.+?)\s+(?P<mode>DEFERRED|IMMEDIATE)\s*$", re.I | re.S)
_RESET = re.compile(r"^\s*RESET\s+(?P<name>ALL|[A-Za-z_][\w.]*)\s*$", re.I)
_EXPLAIN = re.compile(
    r"^\s*EXPLAIN\s+(?:\((?P<options>[^()]*)\)\s*|(?P<words>(?:(?:ANALYZE|ANALYSE|VERBOSE)\s+)*))"
    r"(?P<query>[\s\S]+)$", re.I)
_ALTER_SEQUENCE = re.compile(
    r'^\s*ALTER\s+SEQUENCE\s+(?P<exists>IF\s+EXISTS\s+)?(?:public\.)?'
    r'(?P<name>"(?:[^"]|"")+"|[A-Za-z_][\w$]*)\s+(?P<options>[\s\S]+?)\s*$', re.I)
_SEQUENCE_OPTION = re.compile(
    r'\s*(?:(?P<restart>RESTART)(?:\s+(?:WITH\s+)?(?P<restart_to>[+-]?\d+))?'
    r'|INCREMENT\s+(?:BY\s+)?(?P<increment>[+-]?\d+)'
    r'|MINVALUE\s+(?P<minvalue>[+-]?\d+)|(?P<no_min>NO\s+MINVALUE)'
    r'|MAXVALUE\s+(?P<maxvalue>[+-]?\d+)|(?P<no_max>NO\s+MAXVALUE)'
    r'|START\s+(?:WITH\s+)?(?P<start>[+-]?\d+)|CACHE\s+\d+'
    r'|(?P<no_cycle>NO\s+CYCLE)|(?P<cycle>CYCLE)'
    r'|OWNED\s+BY\s+(?P<owned>NONE|(?:public\.)?(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
    r'\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)))(?=\s|$)', re.I)
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
    if (match := _SET_CONSTRAINTS.match(sql)) is not None:   # named ones: as ALL
        return Statement(Kind.DDL, "SET CONSTRAINTS", read_only=False, action=SequenceOp(
            "set_constraints", args=(match["mode"].lower(),)))
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


# -- the translator ------------------------------------------------------------------------

def parse(sql: str) -> exp.Expression:
    """One statement's tree (E'' strings read as text, ``$n`` spaced for the tokenizer)."""
    if "to_" in sql.lower():
        # sqlglot turns to_char, to_date and to_timestamp into strftime codes, losing what
        # PostgreSQL's templates say (FM, TH, padding, number templates): each stays a call
        # of its own name.
        sql = sqltext.rename_calls(sql, TEMPLATE_CALLS)
    try:
        trees = sqlglot.parse(sql, read=PgDialect, error_level=ErrorLevel.RAISE)
    except (ParseError, TokenError) as exc:
        raise TranslationError(f"syntax error: {_first_line(exc)}", "42601") from None
    except (TypeError, AttributeError, ValueError, IndexError, KeyError) as exc:
        # sqlglot's parser fails this way on some malformed input: still a syntax error
        raise TranslationError(f"syntax error ({type(exc).__name__} in the parser: "
                               f"{_first_line(exc)})", "42601") from None
    if len(trees) != 1 or trees[0] is None:
        raise TranslationError("expected one statement", "42601")
    return cast(exp.Expression, trees[0])


def translate_statement(sql: str, *, kinds: tuple[str, ...] = ()) -> Statement:
    """Translate one statement (no trailing semicolon). ``kinds``: the normalised literals'
    kinds when ``sql`` is a normalised shape (its ``$1..$n`` are literals)."""
    if sqltext.is_blank(sql):
        return Statement(Kind.EMPTY, "")
    utility = _utility(sql)
    if utility is not None:
        return utility
    if (match := _EXPLAIN.match(sql)) is not None:
        return _explain(match, kinds)
    if (match := _COPY.match(sql)) is not None:
        return _copy(match)
    if (match := _ALTER_SEQUENCE.match(sql)) is not None:
        return _alter_sequence(match)
    try:
        text, overriding = sqltext.strip_overriding(sqltext.prepare(sql))
    except sqltext.SqlTextError as exc:
        raise TranslationError(str(exc), exc.sqlstate) from None
    ctx = Context(literal_params=len(kinds), overriding=overriding)
    rw = Rewriter(ctx, kinds)
    try:
        tree = undo_lambdas(parse(text))
        mark_catalog_columns(tree)
        outputs.source_text.set(text)
        statement = _dispatch(tree, rw, Ddl(rw), kinds)
    except UnsupportedError as exc:
        raise unsupported(_first_line(exc)) from None
    except RecursionError:  # PostgreSQL: max_stack_depth
        raise TranslationError(f"statement nested more deeply than Borealis translates "
                               f"({STATEMENT_DEPTH_NOTE})", "54001") from None
    hints = tuple(ctx.hints.get(i, ParamHint()) for i in range(1, ctx.max_param + 1))
    if len(kinds):
        hints = tuple(ParamHint(oid={"int4": 23, "int8": 20, "numeric": 1700,
                                     "unknown": 0}[k]) if h == ParamHint() else h
                      for h, k in zip(hints, kinds, strict=False))
    return Statement(statement.kind, statement.tag, statement.sqlite, ctx.max_param, hints,
                     statement.columns, statement.action, statement.read_only,
                     statement.setup + tuple(ctx.setup), ctx.identity_check)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _dispatch(tree: exp.Expression, rw: Rewriter, ddl: Ddl,
              kinds: tuple[str, ...]) -> Statement:
    if isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except | exp.Values):
        if tree.args.get("locks"):
            tree = tree.copy()
            tree.set("locks", None)  # FOR UPDATE: SQLite's one writer already serialises
        names = outputs.outputs(tree)
        if names is not None:
            names = exprtypes.typed_outputs(tree, names, kinds)
        out = rw.rewrite(tree)
        name_reg_outputs(out, names)
        if names is not None:
            outputs.alias(out, names)
        return Statement(Kind.QUERY, "SELECT", (generate(out),),
                         columns=tuple(names) if names is not None else None)
    if isinstance(tree, exp.Insert | exp.Update | exp.Delete):
        tag = {exp.Insert: "INSERT", exp.Update: "UPDATE", exp.Delete: "DELETE"}[type(tree)]
        if isinstance(tree, exp.Delete) and tree.args.get("using"):
            raise unsupported("DELETE ... USING")
        returning = tree.args.get("returning")
        names = None
        if returning is not None:
            fake = exp.Select(expressions=list(returning.expressions))
            names = outputs.outputs(fake)
            if names is not None:
                target = _dml_table(tree)
                names = exprtypes.typed_outputs(fake, names, kinds,
                                                (target,) if target else ())
        if isinstance(tree, exp.Insert) and tree.args.get("conflict") is not None:
            _check_conflict(tree.args["conflict"])
        out = rw.rewrite(tree)
        if isinstance(out, exp.Insert) and out.args.get("conflict") is not None:
            _strip_conflict_nulls(out.args["conflict"])
        if returning is not None and names is not None:
            ret = out.args["returning"]
            fake = exp.Select(expressions=list(ret.expressions))
            outputs.alias(fake, names)
            ret.set("expressions", fake.expressions)
        kind = Kind.QUERY if returning is not None else Kind.DML
        return Statement(kind, tag, (generate(out),), read_only=False,
                         columns=(tuple(names) if names is not None else None)
                         if returning is not None else None)
    if isinstance(tree, exp.Create):
        created = str(tree.args.get("kind") or "").upper()
        if created == "TABLE":
            return ddl.create_table(tree)
        if created == "INDEX":
            return ddl.create_index(tree)
        if created == "VIEW":
            return ddl.create_view(tree)
        if created == "SEQUENCE":
            return ddl.create_sequence(tree)
        if created == "SCHEMA":
            raise unsupported("CREATE SCHEMA (Borealis has the one schema public)")
        raise unsupported(f"CREATE {created}")
    if isinstance(tree, exp.Drop):
        return ddl.drop(tree)
    if isinstance(tree, exp.Alter):
        return ddl.alter(tree)
    if isinstance(tree, exp.TruncateTable):
        tables = tuple(rw.table_name(t) for t in tree.expressions)
        restart = str(tree.args.get("identity") or "").upper() == "RESTART"
        if tree.args.get("option") and str(tree.args["option"]).upper() == "CASCADE":
            raise unsupported("TRUNCATE ... CASCADE")
        return Statement(Kind.DDL, "TRUNCATE TABLE",
                         tuple(f'DELETE FROM "{t}"' for t in tables), read_only=False,
                         action=SequenceOp("truncate", args=(tables, restart)))
    if isinstance(tree, exp.Command):
        word = str(tree.this).upper()
        raise unsupported(f"the {word} statement")
    raise unsupported(outputs_feature(tree))


def _alter_sequence(match: re.Match[str]) -> Statement:
    """ALTER SEQUENCE [IF EXISTS] name with RESTART, INCREMENT, MINVALUE/MAXVALUE, START,
    CACHE, [NO] CYCLE and OWNED BY (``schema.alter_sequence`` applies them)."""
    options: list[tuple[str, Any]] = []
    text, position = match["options"], 0
    while position < len(text):
        found = _SEQUENCE_OPTION.match(text, position)
        if found is None:
            raise unsupported(f"ALTER SEQUENCE ... {text[position:].strip()[:40]}")
        position = found.end()
        for key, value in found.groupdict().items():
            if value is None or key == "restart_to":
                continue
            if key == "restart":
                options.append(("restart", int(found["restart_to"]) if found["restart_to"]
                                else None))
            elif key == "owned":
                options.append(("owned", None if value.upper() == "NONE" else tuple(
                    _identifier(part) for part in re.split(r"\.(?=[^.]*$)",
                                                           value.removeprefix("public.")))))
            elif key in ("no_min", "no_max", "cycle", "no_cycle"):
                options.append((key, True))
            else:
                options.append((key, int(value)))
    return Statement(Kind.DDL, "ALTER SEQUENCE", (), read_only=False, action=SequenceOp(
        "alter_sequence", _identifier(match["name"]), (tuple(options),
                                                       bool(match["exists"]))))


def _explain(match: re.Match[str], kinds: tuple[str, ...]) -> Statement:
    """EXPLAIN [VERBOSE] statement, EXPLAIN (options) statement: the plan SQLite makes for
    the translated statement. ANALYZE (which runs it) and formats other than text are
    refused."""
    listed = match["options"].split(",") if match["options"] else (match["words"] or "").split()
    for option in filter(None, (o.strip().upper() for o in listed)):
        words = option.split()
        if words[0] == "FORMAT" and words[1:] not in ([], ["TEXT"]):
            raise unsupported(f"EXPLAIN (FORMAT {' '.join(words[1:])})")
        if words[0] in ("ANALYZE", "ANALYSE") and words[1:] not in (["FALSE"], ["OFF"]):
            raise unsupported("EXPLAIN ANALYZE")
    inner = translate_statement(match["query"].strip(), kinds=kinds)
    if inner.kind not in (Kind.QUERY, Kind.DML) or len(inner.sqlite) != 1:
        raise unsupported(f"EXPLAIN of {inner.tag or 'this statement'}")
    return Statement(Kind.SHOW, "EXPLAIN", param_count=inner.param_count,
                     param_hints=inner.param_hints, action=ExplainAction(inner.sqlite[0]),
                     columns=(OutputColumn("QUERY PLAN", 25),))


def _dml_table(tree: exp.Insert | exp.Update | exp.Delete) -> str:
    """The table an INSERT, UPDATE or DELETE writes (its RETURNING reads it)."""
    target = tree.this
    if isinstance(target, exp.Schema):
        target = target.this
    if isinstance(target, exp.Table) and isinstance(target.this, exp.Identifier):
        return target.name if target.this.quoted else target.name.lower()
    return ""


def outputs_feature(tree: exp.Expression) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(tree).__name__).lower()
    return f"{words} ({tree.sql('postgres')[:60]})"


def _check_conflict(conflict: exp.OnConflict) -> None:
    if conflict.args.get("constraint") is not None:
        raise unsupported("ON CONFLICT ON CONSTRAINT")


def _strip_conflict_nulls(conflict: exp.Expression) -> None:
    for ordered in list(conflict.find_all(exp.Ordered)):
        ordered.replace(ordered.this)


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
        try:
            normalized = sqltext.normalize(sql)
        except sqltext.SqlTextError as exc:
            raise TranslationError(str(exc), exc.sqlstate) from None
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
