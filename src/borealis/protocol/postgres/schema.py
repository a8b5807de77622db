"""What the PostgreSQL server needs to know about, and do to, the SQLite schema.

Every function here takes the session's SQLite connection and runs in the session's thread
(``Session.call``): column types for parameter and COPY decoding and for result columns
computed from columns (``result_types``), and the schema changes
that SQLite has no statement for: ``ALTER TABLE ... ADD PRIMARY KEY`` (the table is rebuilt
with the key, so that an integer key becomes SQLite's rowid and lookups by it take one
B-tree descent), sequences (``CREATE/DROP SEQUENCE``, ``TRUNCATE ... RESTART IDENTITY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import apsw

from borealis.errors import SqlError
from borealis.protocol.postgres import exprtypes, functions, tabledef
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.ddl import SEQUENCES_TABLE_DDL, quote_identifier
from borealis.protocol.postgres.statement import OutputColumn, TranslationError

TEXT = 25


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type_oid: int
    typmod: int
    not_null: bool
    primary_key: bool
    default: str | None = None  # the SQLite DDL's default expression


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns(conn: apsw.Connection, table: str) -> list[ColumnInfo]:
    """A table's (or view's) columns in order; empty when there is no such table."""
    out = []
    for _cid, name, decltype, notnull, default, pk, hidden in conn.execute(
            "SELECT cid, name, type, \"notnull\", dflt_value, pk, hidden "
            "FROM pragma_table_xinfo(?)", (table,)):
        if hidden:
            continue
        typed = pgtypes.type_from_decltype(decltype) if decltype else None
        oid, typmod = (typed[0].oid, typed[1]) if typed is not None else (TEXT, -1)
        out.append(ColumnInfo(name, oid, typmod, bool(notnull), bool(pk), default))
    return out


def _hinted_column(conn: apsw.Connection, hint: Any,
                   cache: dict[str, list[ColumnInfo]]) -> ColumnInfo | None:
    """The column a parameter hint names: in the first of its tables that has it."""
    for table in hint.tables:
        if table not in cache:
            cache[table] = columns(conn, table)
        found = cache[table]
        if hint.column.startswith("#"):
            position = int(hint.column[1:])
            if position < len(found):
                return found[position]
        else:
            for column in found:
                if column.name.lower() == hint.column:
                    return column
    return None


def parameter_types(conn: apsw.Connection, hints: tuple[Any, ...],
                    declared: tuple[int, ...],
                    cache: dict[str, list[ColumnInfo]] | None = None) -> tuple[int, ...]:
    """Each parameter's type OID: the client's, else the hint's, else text. ``cache``:
    tables' columns already read in this call to the session's thread."""
    cache = {} if cache is None else cache
    out = []
    for index, hint in enumerate(hints):
        oid = declared[index] if index < len(declared) else 0
        if not oid:
            oid = hint.oid
        if not oid and hint.column:
            column = _hinted_column(conn, hint, cache)
            oid = column.type_oid if column is not None else 0
        out.append(oid or TEXT)
    return tuple(out)


def assignment_targets(conn: apsw.Connection, hints: tuple[Any, ...],
                       param_types: tuple[int, ...],
                       cache: dict[str, list[ColumnInfo]] | None = None
                       ) -> tuple[tuple[int, int] | None, ...]:
    """For each parameter assigned to a column (INSERT VALUES, UPDATE SET), the column's
    (type oid, typmod) when its value needs PostgreSQL's assignment cast: the client sent
    another type (an int8 for an int4 column: 22003 beyond its range), or the column has a
    modifier (numeric scale, varchar length); None for the others (nothing to do at Bind)."""
    cache = {} if cache is None else cache
    out: list[tuple[int, int] | None] = []
    for index, hint in enumerate(hints):
        target: tuple[int, int] | None = None
        if hint.assigned and hint.column:
            column = _hinted_column(conn, hint, cache)
            if column is not None and column.type_oid in pgtypes.BY_OID and (
                    column.typmod >= 0 or column.type_oid != param_types[index]):
                target = (column.type_oid, column.typmod)
        out.append(target)
    return tuple(out)


def column_types(conn: apsw.Connection) -> exprtypes.Columns:
    """A lookup of table columns' (type oid, typmod) for ``exprtypes.evaluate``, reading
    each table once; a column SQLite declares no type for (a view's expression) is 0."""
    tables: dict[str, list[tuple[str, int, int]]] = {}

    def lookup(table: str, column: str) -> tuple[int, int] | None:
        found = tables.get(table)
        if found is None:
            found = []
            for name, decltype, hidden in conn.execute(
                    "SELECT name, type, hidden FROM pragma_table_xinfo(?)", (table,)):
                if hidden:
                    continue
                typed = pgtypes.type_from_decltype(decltype) if decltype else None
                found.append((name, *((typed[0].oid, typed[1]) if typed else (0, -1))))
            tables[table] = found
        for name, oid, typmod in found:
            if name == column:
                return oid, typmod
        for name, oid, typmod in found:
            if name.lower() == column.lower():
                return oid, typmod
        return None

    return lookup


def result_types(conn: apsw.Connection, columns: tuple[OutputColumn, ...],
                 param_types: tuple[int, ...]) -> list[tuple[int, int]]:
    """Each result column's (type oid, typmod): its formula's against the schema and the
    parameters' types; (0, -1) for a column without a formula or one still undecided."""
    lookup = column_types(conn)
    return [exprtypes.evaluate(c.formula, lookup, param_types,
                               untyped_param=exprtypes.UNKNOWN) if c.formula is not None
            else (0, -1) for c in columns]


def check_identity(conn: apsw.Connection, check: tuple[str, ...],
                   cache: dict[str, list[ColumnInfo]] | None = None) -> None:
    """At Parse: refuse (428C9) an INSERT or UPDATE that gives a value to an identity column
    GENERATED ALWAYS (``Statement.identity_check``: verb, table, columns). ``cache`` as for
    ``parameter_types``: a table without a sequence default costs no other query."""
    if not check:
        return
    verb, table, *given = check
    cache = {} if cache is None else cache
    if table not in cache:
        cache[table] = columns(conn, table)
    if any("_pg_nextval(" in (c.default or "") for c in cache[table]):
        functions.check_identity(conn, verb, table, tuple(given))


def add_primary_key(conn: apsw.Connection, table: str, keys: tuple[str, ...],
                    constraint: str) -> None:
    """Rebuild ``table`` with a primary key on ``keys`` (SQLite cannot add one in place),
    keeping its rows, indexes and triggers. Fails as PostgreSQL would on NULLs (23502)
    or duplicates (23505); refused when another table's foreign key references it."""
    rows = list(conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?",
                             (table,)))
    if not rows:
        raise SqlError(f'relation "{table}" does not exist', "42P01")
    info = {c.name.lower(): c for c in columns(conn, table)}
    for key in keys:
        if key not in info:
            raise SqlError(f'column "{key}" of relation "{table}" does not exist', "42703")
    if any(c.primary_key for c in info.values()):
        raise SqlError(f'multiple primary keys for table "{table}" are not allowed', "42P16")
    for other, in list(conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")):
        for fk in conn.execute("SELECT \"table\" FROM pragma_foreign_key_list(?)", (other,)):
            if fk[0].lower() == table.lower() and other != table:
                raise TranslationError(
                    f"ALTER TABLE ADD PRIMARY KEY on a table that {other} references")
    for key in keys:
        nulls = list(conn.execute(f"SELECT 1 FROM {_q(table)} WHERE {_q(key)} IS NULL LIMIT 1"))
        if nulls:
            raise SqlError(f'column "{key}" of relation "{table}" contains null values',
                           "23502")
    # The definition is edited as text: regenerating it (sqlglot) rewrote declared types.
    definition = tabledef.parse(rows[0][0], table)
    rowid = len(keys) == 1 and definition.column(keys[0]).decltype == "INTEGER"
    for key in keys:
        column = definition.column(key).with_not_null(True)
        if rowid:
            column = tabledef.Column.parse(column.text + " PRIMARY KEY")
        definition.replace_column(column)
    definitions = list(definition.items)
    name = constraint or f"{table}_pkey"
    if not rowid:
        definitions.append(f"CONSTRAINT {_q(name)} PRIMARY KEY "
                           f"({', '.join(_q(k) for k in keys)})")
    extras = [sql for sql, in conn.execute(
        "SELECT sql FROM sqlite_schema WHERE tbl_name = ? AND type IN ('index', 'trigger') "
        "AND sql IS NOT NULL", (table,))]
    temporary = "_borealis_rebuild_" + table
    conn.execute(f"CREATE TABLE {_q(temporary)} ({', '.join(definitions)})")
    order = ", ".join(_q(k) for k in keys)
    try:
        conn.execute(f"INSERT INTO {_q(temporary)} SELECT * FROM {_q(table)} ORDER BY {order}")
    except apsw.ConstraintError:
        conn.execute(f"DROP TABLE {_q(temporary)}")
        raise SqlError(f'could not create unique index "{name}": the key has duplicates',
                       "23505") from None
    conn.execute(f"DROP TABLE {_q(table)}")
    conn.execute(f"ALTER TABLE {_q(temporary)} RENAME TO {_q(table)}")
    for sql in extras:
        conn.execute(sql)


def ensure_sequences(conn: apsw.Connection) -> None:
    conn.execute(SEQUENCES_TABLE_DDL)


def create_sequence(conn: apsw.Connection, name: str, options: dict[str, Any],
                    if_not_exists: bool) -> None:
    ensure_sequences(conn)
    if list(conn.execute("SELECT 1 FROM _borealis_sequences WHERE name = ?", (name,))):
        if if_not_exists:
            return
        raise SqlError(f'relation "{name}" already exists', "42P07")
    step = int(options.get("increment") or 1)
    if step == 0:
        raise SqlError("INCREMENT must not be zero", "22023")
    low = int(options["minvalue"]) if options.get("minvalue") is not None else (
        1 if step > 0 else -(2**63))
    high = int(options["maxvalue"]) if options.get("maxvalue") is not None else (
        2**63 - 1 if step > 0 else -1)
    start = int(options["start"]) if options.get("start") is not None else (
        low if step > 0 else high)
    conn.execute(
        "INSERT INTO _borealis_sequences (name, data_type, start_value, min_value, max_value, "
        "increment_by, cycle, last_value, is_called) VALUES (?, 'int8', ?, ?, ?, ?, ?, ?, 0)",
        (name, start, low, high, step, 1 if options.get("cycle") else 0, start))


def alter_sequence(conn: apsw.Connection, name: str, options: tuple[tuple[str, Any], ...],
                   if_exists: bool) -> None:
    """ALTER SEQUENCE: its options in order, checked together as PostgreSQL checks them."""
    exists = any(conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '_borealis_sequences'"))
    rows = list(conn.execute(
        "SELECT data_type, start_value, min_value, max_value, increment_by, cycle, "
        "last_value, is_called, owner_table, owner_column FROM _borealis_sequences "
        "WHERE name = ?", (name,))) if exists else []
    if not rows:
        if if_exists:
            return
        raise SqlError(f'relation "{name}" does not exist', "42P01")
    kind, start, low, high, step, cycle, last, called, table, column = rows[0]
    limit = {"int2": 32767, "int4": 2147483647}.get(kind, 2**63 - 1)
    restart: int | None = None
    restarting = False
    for option, value in options:
        if option == "increment":
            if value == 0:
                raise SqlError("INCREMENT must not be zero", "22023")
            step = value
        elif option == "minvalue":
            low = value
        elif option == "no_min":
            low = 1 if step > 0 else -limit - 1
        elif option == "maxvalue":
            high = value
        elif option == "no_max":
            high = limit if step > 0 else -1
        elif option == "start":
            start = value
        elif option in ("cycle", "no_cycle"):
            cycle = 1 if option == "cycle" else 0
        elif option == "restart":
            restarting, restart = True, value
        elif option == "owned":
            table, column = (None, None) if value is None else value
            if value is not None:
                check_tables_exist(conn, (str(table),))
                if not any(c.name.lower() == str(column).lower()
                           for c in columns(conn, str(table))):
                    raise SqlError(f'column "{column}" of relation "{table}" does not exist',
                                   "42703")
    if low >= high:
        raise SqlError(f"MINVALUE ({low}) must be less than MAXVALUE ({high})", "22023")
    _check_bounds("START", start, low, high)
    if restarting:
        last, called = (start if restart is None else restart), 0
        _check_bounds("RESTART", last, low, high)
    conn.execute(
        "UPDATE _borealis_sequences SET start_value = ?, min_value = ?, max_value = ?, "
        "increment_by = ?, cycle = ?, last_value = ?, is_called = ?, owner_table = ?, "
        "owner_column = ? WHERE name = ?",
        (start, low, high, step, cycle, last, called, table, column, name))


def _check_bounds(what: str, value: int, low: int, high: int) -> None:
    if value < low:
        raise SqlError(f"{what} value ({value}) cannot be less than MINVALUE ({low})", "22023")
    if value > high:
        raise SqlError(f"{what} value ({value}) cannot be greater than MAXVALUE ({high})",
                       "22023")


def drop_sequences(conn: apsw.Connection, names: tuple[str, ...], if_exists: bool) -> None:
    exists = bool(list(conn.execute("SELECT 1 FROM sqlite_schema WHERE name = "
                                    "'_borealis_sequences'")))
    for name in names:
        found = exists and list(conn.execute(
            "SELECT 1 FROM _borealis_sequences WHERE name = ?", (name,)))
        if not found:
            if if_exists:
                continue
            raise SqlError(f'sequence "{name}" does not exist', "42P01")
        conn.execute("DELETE FROM _borealis_sequences WHERE name = ?", (name,))


def restart_owned_sequences(conn: apsw.Connection, tables: tuple[str, ...]) -> None:
    if not list(conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '_borealis_sequences'")):
        return
    for table in tables:
        conn.execute("UPDATE _borealis_sequences SET last_value = start_value, is_called = 0 "
                     "WHERE owner_table = ?", (table,))


def drop_owned_sequences(conn: apsw.Connection, statements: tuple[str, ...]) -> None:
    if not list(conn.execute("SELECT 1 FROM sqlite_schema WHERE name = '_borealis_sequences'")):
        return
    for sql in statements:
        conn.execute(sql)


def check_no_dependents(conn: apsw.Connection, kind: str, names: tuple[str, ...]) -> None:
    """``DROP TABLE|VIEW ... CASCADE`` runs only if nothing else depends on ``names``: no
    foreign key of another table references them and no other view reads them (each view
    is compiled with them dropped, in a savepoint rolled back at once). PostgreSQL would
    drop those dependents too; that is refused (0A000), naming them."""
    dropping = {name.lower() for name in names}
    dependents: list[str] = []
    if kind == "TABLE":
        for table, target in conn.execute(
                "SELECT m.name, f.\"table\" FROM sqlite_schema AS m, "
                "pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table'"):
            if str(target).lower() in dropping and str(table).lower() not in dropping:
                dependents.append(f'foreign key of table "{table}"')
    views = [str(row[0]) for row in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'view'")
        if str(row[0]).lower() not in dropping]
    if views:
        conn.execute("SAVEPOINT borealis_drop_cascade")
        try:
            for name in names:
                conn.execute(f"DROP {kind} IF EXISTS {quote_identifier(name)}")
            for view in views:
                try:
                    list(conn.execute(f"SELECT * FROM {quote_identifier(view)} LIMIT 0"))
                except apsw.SQLError:
                    dependents.append(f'view "{view}"')
        finally:
            conn.execute("ROLLBACK TO borealis_drop_cascade")
            conn.execute("RELEASE borealis_drop_cascade")
    if dependents:
        raise SqlError(
            f"DROP {kind} ... CASCADE is not supported when other objects depend on it "
            f"({', '.join(sorted(set(dependents)))}): drop them first", "0A000")


def check_tables_exist(conn: apsw.Connection, tables: tuple[str, ...]) -> None:
    for table in tables:
        if not list(conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND "
                                 "name = ?", (table,))):
            raise SqlError(f'relation "{table}" does not exist', "42P01")


def set_constraints(conn: apsw.Connection, mode: str) -> None:
    """SET CONSTRAINTS {ALL | name, ...} DEFERRED | IMMEDIATE, for the rest of the
    transaction; named constraints are taken as ALL (Django names the foreign key it just
    added, to check it at once).

    SQLite checks a DEFERRABLE INITIALLY DEFERRED foreign key at the commit and any other at
    the statement, and has one switch, ``defer_foreign_keys``, that defers them all.
    DEFERRED turns it on. IMMEDIATE checks now what is pending (23503 for a row that breaks
    a foreign key, as PostgreSQL reports it at SET CONSTRAINTS) and turns it off; a
    DEFERRABLE INITIALLY DEFERRED key broken later in the transaction is then reported at
    the commit, where PostgreSQL reports it at the statement: the transaction fails either
    way, and nothing that breaks a foreign key is committed. With names, IMMEDIATE may
    report a pending row of another deferred key now rather than at the commit."""
    if mode == "deferred":
        conn.execute("PRAGMA defer_foreign_keys = ON")
        return
    conn.execute("PRAGMA defer_foreign_keys = OFF")
    for table, _rowid, parent, _key in conn.execute("SELECT * FROM pragma_foreign_key_check"):
        raise SqlError(f'insert or update on table "{table}" violates a foreign key '
                       f'constraint: its key is not present in table "{parent}"', "23503")


def query_plan(conn: apsw.Connection, sql: str, params: Any) -> list[tuple[str]]:
    """EXPLAIN: SQLite's plan for ``sql`` (EXPLAIN QUERY PLAN), one line a step, a step
    under its parent as PostgreSQL prints a plan's nodes ("->" and indentation)."""
    rows = list(conn.execute(f"EXPLAIN QUERY PLAN {sql}", params or None))
    depth: dict[int, int] = {}
    lines: list[tuple[str]] = []
    for node, parent, _unused, detail in rows:
        level = depth.get(parent, -1) + 1
        depth[node] = level
        lines.append((("      " * (level - 1) + "  ->  " if level else "") + str(detail),))
    return lines or [("(no plan)",)]
