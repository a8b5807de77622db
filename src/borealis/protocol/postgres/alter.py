"""``ALTER TABLE`` changes SQLite has no statement for, made by editing the table's
definition in ``sqlite_schema``.

SQLite's own ALTER TABLE renames and adds or drops columns. A column's NOT NULL, default
and type, and a table's CHECK and FOREIGN KEY constraints, live only in the CREATE TABLE
text that SQLite keeps, so they are changed the way SQLite documents for changes that leave
the stored rows as they are: in the statement's transaction, the text is rewritten
(``tabledef``), the schema cookie is bumped (readers and other sessions reload the schema)
and SQLite rereads it. The rows are then checked, or converted, as PostgreSQL would:
``SET NOT NULL`` fails on a NULL (23502), an added CHECK on a row that breaks it (23514), an
added foreign key on an orphan row (23503), a type change on a value the new type cannot
hold. Rebuilding the table instead (copy, drop, rename) would, with foreign keys enforced,
run the ON DELETE actions of every table that references it.

Each change runs inside a savepoint: it happens whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import apsw

from borealis.errors import SqlError
from borealis.protocol.postgres import schema as pgschema
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.ddl import DefaultSpec, default_sql, quote_identifier
from borealis.protocol.postgres.statement import (
    UNIQUE_CONSTRAINT_MARK,
    TranslationError,
    unsupported,
)
from borealis.protocol.postgres.tabledef import Column, TableDef, parse, tokens

_INTEGERS = frozenset({"int2", "int4", "int8"})
_NUMBERS = _INTEGERS | {"numeric", "float4", "float8"}
_STRINGS = frozenset({"text", "varchar"})
_TIMES = frozenset({"date", "timestamp", "timestamptz"})
_ASSIGNMENT = frozenset({("json", "jsonb"), ("jsonb", "json")}) | frozenset(
    (a, b) for a in _TIMES for b in _TIMES if a != b)
"""PostgreSQL's assignment casts between types outside the number and string families."""


@contextmanager
def _atomic(conn: apsw.Connection) -> Iterator[None]:
    conn.execute("SAVEPOINT _borealis_alter")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO _borealis_alter")
        conn.execute("RELEASE _borealis_alter")
        raise
    conn.execute("RELEASE _borealis_alter")


def _definition(conn: apsw.Connection, table: str) -> TableDef | None:
    rows = list(conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE",
        (table,)))
    if not rows:
        return None
    return parse(rows[0][0], table)


def _write_definition(conn: apsw.Connection, table: str, definition: TableDef) -> None:
    """Replace ``table``'s CREATE TABLE text; SQLite rereads its schema."""
    version = next(iter(conn.execute("PRAGMA schema_version")))[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ? "
                     "COLLATE NOCASE", (definition.sql(), table))
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = RESET")


def _missing_column(table: str, column: str) -> SqlError:
    return SqlError(f'column "{column}" of relation "{table}" does not exist', "42703")


def _column(definition: TableDef, table: str, name: str) -> Column:
    try:
        return definition.column(name)
    except KeyError:
        raise _missing_column(table, name) from None


def _pg_type(column: Column) -> tuple[pgtypes.PgType, int]:
    found = pgtypes.type_from_decltype(column.decltype or None)
    if found is None:
        raise unsupported(f'ALTER COLUMN on column "{column.name}" of no PostgreSQL type')
    return found


def _foreign_key_columns(conn: apsw.Connection, table: str) -> set[str]:
    """Columns of ``table`` a foreign key reads: its own, or another table's onto it."""
    out = {str(row[0]).lower() for row in conn.execute(
        'SELECT "from" FROM pragma_foreign_key_list(?)', (table,))}
    for other, in list(conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")):
        for target, to in conn.execute(
                'SELECT "table", "to" FROM pragma_foreign_key_list(?)', (other,)):
            if str(target).lower() == table.lower():
                if to is None:  # REFERENCES t: its primary key
                    out |= {str(r[1]).lower() for r in conn.execute(
                        "SELECT pk, name FROM pragma_table_info(?) WHERE pk > 0", (table,))}
                else:
                    out.add(str(to).lower())
    return out


def _primary_key(conn: apsw.Connection, table: str) -> list[str]:
    rows = sorted(conn.execute("SELECT pk, name FROM pragma_table_info(?) WHERE pk > 0",
                               (table,)))
    return [str(name).lower() for _, name in rows]


def _rowid_alias(conn: apsw.Connection, table: str, column: str) -> bool:
    """Whether ``column`` is SQLite's rowid under another name (INTEGER PRIMARY KEY)."""
    if _primary_key(conn, table) != [column.lower()]:
        return False
    rows = list(conn.execute("SELECT type FROM pragma_table_info(?) WHERE pk > 0", (table,)))
    without_rowid = list(conn.execute("SELECT wr FROM pragma_table_list WHERE name = ?",
                                      (table,)))
    return str(rows[0][0]).upper() == "INTEGER" and not (without_rowid and
                                                         without_rowid[0][0])


# --- the changes ------------------------------------------------------------------------------


def set_not_null(conn: apsw.Connection, table: str, definition: TableDef, name: str,
                 not_null: bool) -> None:
    column = _column(definition, table, name)
    if not not_null and column.name.lower() in _primary_key(conn, table):
        raise SqlError(f'column "{column.name}" is in a primary key', "42P16")
    if not_null == column.not_null:
        return
    if not_null:
        nulls = list(conn.execute(f"SELECT 1 FROM {quote_identifier(table)} WHERE "
                                  f"{quote_identifier(column.name)} IS NULL LIMIT 1"))
        if nulls:
            raise SqlError(f'column "{column.name}" of relation "{table}" contains null '
                           "values", "23502")
    definition.replace_column(column.with_not_null(not_null))
    _write_definition(conn, table, definition)


def set_default(conn: apsw.Connection, table: str, definition: TableDef, name: str,
                spec: DefaultSpec | None) -> None:
    column = _column(definition, table, name)
    text = None
    if spec is not None:
        pg, typmod = _pg_type(column)
        text = f"({default_sql(spec, pg, typmod)})"
    definition.replace_column(column.with_default(text))
    _write_definition(conn, table, definition)


def set_type(conn: apsw.Connection, table: str, definition: TableDef, name: str,
             new: tuple[str, int], target: tuple[str, str | None], conversion: str,
             text_of: str, using: bool) -> None:
    """``ALTER COLUMN name TYPE``: ``new`` is the (type name, typmod) asked for, ``target``
    its declared type and collation; ``conversion`` and ``text_of`` are SQLite's text of the
    casts of the column (or of the USING expression) to it and to text."""
    column = _column(definition, table, name)
    old_pg, old_typmod = _pg_type(column)
    new_pg, new_typmod = pgtypes.lookup(new[0])[0], new[1]
    type_text = pgtypes.format_type(new_pg.oid, new_typmod)
    old_name, new_name = old_pg.name, new_pg.name
    # Values that keep their stored form need only checking; a USING expression always
    # computes new ones.
    same_storage = not using and (
        (old_name in _INTEGERS and new_name in _INTEGERS)
        or (old_name in _STRINGS and new_name in _STRINGS)
        or (old_name == new_name and old_typmod == new_typmod))
    if not using and not (old_name == new_name or (old_name in _NUMBERS and new_name in
                                                   _NUMBERS) or new_name in _STRINGS
                          or (old_name, new_name) in _ASSIGNMENT):
        raise SqlError(
            f'column "{column.name}" cannot be cast automatically to type {type_text} '
            f'(you might need to specify "USING {column.name}::{type_text}")', "42804")
    convertible = old_name in _NUMBERS | _STRINGS and (
        new_name in _NUMBERS | _STRINGS or (using and old_name in _STRINGS))
    if not (same_storage or convertible) or (old_pg.is_array or new_pg.is_array):
        raise unsupported(f"ALTER COLUMN TYPE from {old_name} to {new_name}")
    if not same_storage and column.name.lower() in _foreign_key_columns(conn, table):
        raise unsupported(f"ALTER COLUMN TYPE from {old_name} to {new_name} of a column "
                          "a foreign key uses")
    default = column.default
    if default is not None and "_pg_nextval(" not in default.lower() and not same_storage:
        raise unsupported("ALTER COLUMN TYPE of a column with a default (drop the default, "
                          "change the type, then set the default again)")
    quoted = quote_identifier(column.name)
    table_q = quote_identifier(table)
    # Every value through the cast first: the new type must hold it (22003, 22P02...), and
    # a varchar(n) refuses a longer value as an assignment does, where a cast would cut it.
    for _ in conn.execute(f"SELECT {conversion} FROM {table_q}"):
        pass
    if new_name == "varchar" and new_typmod >= 4:
        limit = new_typmod - 4
        too_long = list(conn.execute(
            f"SELECT 1 FROM {table_q} WHERE length({text_of}) > ? LIMIT 1", (limit,)))
        if too_long:
            raise SqlError(f"value too long for type character varying({limit})", "22001")
    decltype, collation = target
    if _rowid_alias(conn, table, column.name):
        if decltype != "INTEGER":
            raise unsupported(f"ALTER COLUMN TYPE of {table}.{column.name}, an integer "
                              "primary key that is the table's rowid")
    elif decltype == "INTEGER" and column.name.lower() in _primary_key(conn, table):
        decltype = "INT"   # not SQLite's rowid alias: it would read the rows wrongly
    collation_changed = collation != column.collation
    definition.replace_column(column.with_type(decltype, collation))
    _write_definition(conn, table, definition)
    if collation_changed:
        conn.execute(f"REINDEX {table_q}")
    if not same_storage:
        conn.execute(f"UPDATE {table_q} SET {quoted} = {conversion}")


def add_constraint(conn: apsw.Connection, table: str, definition: TableDef, name: str,
                   item: str, check: str | None) -> None:
    """A CHECK (``check``: its expression, which every row must not make false) or FOREIGN
    KEY constraint, ``item`` as CREATE TABLE would have it."""
    if name:
        try:
            definition.constraint_index(name)
        except KeyError:
            pass
        else:
            raise SqlError(f'constraint "{name}" for relation "{table}" already exists',
                           "42710")
    definition.items.append(item)
    _write_definition(conn, table, definition)
    table_q = quote_identifier(table)
    if check is not None:
        if list(conn.execute(f"SELECT 1 FROM {table_q} WHERE NOT ({check}) LIMIT 1")):
            raise SqlError(f'check constraint "{name or table + "_check"}" of relation '
                           f'"{table}" is violated by some row', "23514")
    else:
        orphans = list(conn.execute("SELECT 1 FROM pragma_foreign_key_check(?) LIMIT 1",
                                    (table,)))
        if orphans:
            raise SqlError(f'insert or update on table "{table}" violates foreign key '
                           f'constraint "{name or table + "_fkey"}"', "23503")


def drop_constraint(conn: apsw.Connection, table: str, definition: TableDef, name: str,
                    if_exists: bool) -> None:
    """A named CHECK or FOREIGN KEY constraint; a UNIQUE constraint added by ALTER TABLE
    (an index of that name)."""
    try:
        index = definition.constraint_index(name)
    except KeyError:
        index = -1
    if index >= 0:
        toks = tokens(definition.items[index])   # CONSTRAINT name KIND ...
        kind = toks[2].text.upper() if len(toks) > 2 else ""
        if kind not in ("CHECK", "FOREIGN"):
            raise unsupported(f"DROP CONSTRAINT of a {kind} constraint")
        del definition.items[index]
        _write_definition(conn, table, definition)
        return
    indexes = list(conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? COLLATE NOCASE "
        "AND name = ? COLLATE NOCASE AND sql LIKE ?", (table, name, f"%{UNIQUE_CONSTRAINT_MARK}")))
    if indexes:
        conn.execute(f"DROP INDEX {quote_identifier(indexes[0][0])}")
        return
    if not if_exists:
        raise SqlError(f'constraint "{name}" of relation "{table}" does not exist', "42704")


def _column_exists(conn: apsw.Connection, table: str, name: str) -> bool:
    return any(c.name.lower() == name.lower() for c in pgschema.columns(conn, table))


CHANGES: dict[str, Callable[..., None]] = {
    "not_null": set_not_null,
    "default": set_default,
    "type": set_type,
    "add_constraint": add_constraint,
    "drop_constraint": drop_constraint,
}


def run(conn: apsw.Connection, table: str, if_exists: bool, change: tuple[Any, ...]) -> None:
    """Carry out an ``ALTER TABLE`` (``ddl.Ddl.alter``'s ``SequenceOp``): one change, or
    ``("several", changes)`` made in order, whole or not at all."""
    if _definition(conn, table) is None:
        if if_exists:
            return
        raise SqlError(f'relation "{table}" does not exist', "42P01")
    with _atomic(conn):
        for one in (change[1] if change[0] == "several" else (change,)):
            _apply(conn, table, one)


def _apply(conn: apsw.Connection, table: str, change: tuple[Any, ...]) -> None:
    what, args = change[0], change[1:]
    if what == "sql":      # SQLite's own ALTER TABLE, run once the table is known
        for statement in args[0]:
            conn.execute(statement)
    elif what == "add_column":
        name, sql, if_not_exists = args
        if not (if_not_exists and _column_exists(conn, table, name)):
            conn.execute(sql)
    elif what == "drop_column":
        name, if_exists_column, cascade = args
        if _column_exists(conn, table, name):
            drop_column(conn, table, name, cascade)
        elif not if_exists_column:
            raise _missing_column(table, name)
    elif what == "primary_key":
        keys, constraint = args
        pgschema.add_primary_key(conn, table, keys, constraint)
    elif what in CHANGES:
        definition = _definition(conn, table)
        assert definition is not None
        CHANGES[what](conn, table, definition, *args)
    else:  # pragma: no cover - ddl.Ddl.alter makes only the changes above
        raise TranslationError(f"unknown ALTER TABLE change {what}", "XX000")


def rename_object(conn: apsw.Connection, kind: str, name: str, new: str,
                  if_exists: bool) -> None:
    """ALTER INDEX|VIEW name RENAME TO new: SQLite renames neither, so the object is made
    anew under its new name from the statement SQLite keeps."""
    with _atomic(conn):
        _rename_object(conn, kind, name, new, if_exists)


def _rename_object(conn: apsw.Connection, kind: str, name: str, new: str,
                   if_exists: bool) -> None:
    found = list(conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = ? AND "
                              "name = ? COLLATE NOCASE", (kind, name)))
    if not found:
        if if_exists:
            return
        raise SqlError(f'relation "{name}" does not exist', "42P01")
    old_name, sql = found[0]
    if sql is None:
        raise unsupported(f"ALTER INDEX RENAME of the index of a constraint ({name})")
    if any(conn.execute("SELECT 1 FROM sqlite_schema WHERE name = ? COLLATE NOCASE", (new,))):
        raise SqlError(f'relation "{new}" already exists', "42P07")
    # CREATE [UNIQUE] INDEX name ... / CREATE VIEW name ... (SQLite keeps the text without
    # IF NOT EXISTS)
    toks = tokens(sql)
    name_token = toks[next(i for i, t in enumerate(toks) if t.word == kind) + 1]
    conn.execute(f"DROP {kind.upper()} {quote_identifier(old_name)}")
    conn.execute(sql[:name_token.start] + quote_identifier(new) + sql[name_token.end:])


def replace_view(conn: apsw.Connection, name: str, create_sql: str) -> None:
    """CREATE OR REPLACE VIEW: as PostgreSQL, the new query must give the view's columns
    first, with the same names (42P16), and may add columns after them."""
    with _atomic(conn):
        _replace_view(conn, name, create_sql)


def _replace_view(conn: apsw.Connection, name: str, create_sql: str) -> None:
    found = list(conn.execute("SELECT type FROM sqlite_schema WHERE name = ? COLLATE NOCASE",
                              (name,)))
    if found and found[0][0] != "view":
        raise SqlError(f'"{name}" is not a view', "42809")
    old = [str(row[0]) for row in conn.execute("SELECT name FROM pragma_table_info(?)",
                                               (name,))] if found else []
    if found:
        conn.execute(f"DROP VIEW {quote_identifier(name)}")
    conn.execute(create_sql)
    new = [str(row[0]) for row in conn.execute("SELECT name FROM pragma_table_info(?)",
                                               (name,))]
    if len(new) < len(old):
        raise SqlError("cannot drop columns from view", "42P16")
    for before, after in zip(old, new, strict=False):
        if before != after:
            raise SqlError(f'cannot change name of view column "{before}" to "{after}"',
                           "42P16")


def drop_column(conn: apsw.Connection, table: str, name: str, cascade: bool) -> None:
    """DROP COLUMN: the indexes on the column go with it, as in PostgreSQL (SQLite refuses
    to drop an indexed column). What else uses the column (a view, a constraint, a trigger)
    makes SQLite refuse: without CASCADE that is PostgreSQL's refusal too (2BP01); with it,
    PostgreSQL would drop those objects, which Borealis does not do (0A000)."""
    for index, in list(conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? "
            "COLLATE NOCASE AND sql IS NOT NULL", (table,))):
        used = {str(row[0]).lower() for row in conn.execute(
            "SELECT name FROM pragma_index_info(?) WHERE name IS NOT NULL", (index,))}
        if name.lower() in used:
            conn.execute(f"DROP INDEX {quote_identifier(index)}")
    try:
        conn.execute(f"ALTER TABLE {quote_identifier(table)} DROP COLUMN "
                     f"{quote_identifier(name)}")
    except apsw.SQLError as exc:
        if cascade:
            raise unsupported(f"DROP COLUMN ... CASCADE of a column other objects use "
                              f"({exc})") from None
        raise SqlError(f'cannot drop column {name} of table {table} because other objects '
                       f"depend on it ({exc})", "2BP01") from None
