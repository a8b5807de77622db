"""ALTER TABLE beyond SQLite's own: a column's NOT NULL, default and type, CHECK and
FOREIGN KEY constraints, and the IF [NOT] EXISTS forms, run as the server runs them
(translation, then ``alter.run``) on a SQLite database with foreign keys enforced."""

from __future__ import annotations

from typing import Any

import apsw
import pytest

from borealis.errors import BorealisError
from borealis.protocol.postgres import alter, tabledef
from borealis.protocol.postgres import schema as pgschema
from borealis.protocol.postgres.session import SqlSession
from borealis.protocol.postgres.statement import SequenceOp
from borealis.protocol.postgres.translate import translate_statement


@pytest.fixture
def conn() -> apsw.Connection:
    connection = apsw.Connection(":memory:")
    SqlSession(user="postgres", database="postgres").register(connection)
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def run(conn: apsw.Connection, sql: str) -> list[tuple[Any, ...]]:
    """One PostgreSQL statement, in a transaction of its own as the server runs it."""
    statement = translate_statement(sql)
    conn.execute("BEGIN")
    try:
        rows: list[tuple[Any, ...]] = []
        for setup in statement.setup:
            conn.execute(setup)
        for text in statement.sqlite:
            rows = list(conn.execute(text))
        action = statement.action
        if isinstance(action, SequenceOp):
            if action.op == "rename_object":
                kind, new, if_exists = action.args
                alter.rename_object(conn, kind, action.name, new, if_exists)
            elif action.op == "replace_view":
                alter.replace_view(conn, action.name, *action.args)
            else:
                assert action.op == "alter", action
                alter.run(conn, action.name, *action.args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return rows


def fails(conn: apsw.Connection, sql: str, sqlstate: str) -> str:
    with pytest.raises((BorealisError, apsw.Error)) as info:
        run(conn, sql)
    assert getattr(info.value, "sqlstate", None) == sqlstate, info.value
    return str(info.value)


def table_sql(conn: apsw.Connection, table: str) -> str:
    return str(next(iter(conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,))))[0])


def test_set_and_drop_not_null(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    run(conn, "INSERT INTO t VALUES (1, NULL)")
    message = fails(conn, "ALTER TABLE t ALTER COLUMN v SET NOT NULL", "23502")
    assert 'column "v" of relation "t" contains null values' in message
    run(conn, "UPDATE t SET v = 'x'")
    run(conn, "ALTER TABLE t ALTER COLUMN v SET NOT NULL")
    with pytest.raises(apsw.ConstraintError):
        run(conn, "INSERT INTO t VALUES (2, NULL)")
    run(conn, "ALTER TABLE t ALTER v DROP NOT NULL")
    run(conn, "INSERT INTO t VALUES (2, NULL)")
    assert fails(conn, "ALTER TABLE t ALTER COLUMN id DROP NOT NULL", "42P16")
    assert list(conn.execute("PRAGMA integrity_check")) == [("ok",)]


def test_set_default_is_coerced_to_the_column_type_and_drop_default(
        conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, flag boolean, amount numeric(10,2), "
              "at timestamptz, n int)")
    run(conn, "ALTER TABLE t ALTER COLUMN flag SET DEFAULT 'yes'")
    run(conn, "ALTER TABLE t ALTER COLUMN amount SET DEFAULT 1.5")
    run(conn, "ALTER TABLE t ALTER COLUMN at SET DEFAULT now()")
    run(conn, "ALTER TABLE t ALTER COLUMN n SET DEFAULT -3")
    run(conn, "INSERT INTO t (id) VALUES (1)")
    flag, amount, at, n = next(iter(conn.execute("SELECT flag, amount, at, n FROM t")))
    assert (flag, amount, n) == (1, "1.50", -3) and isinstance(at, str) and at
    fails(conn, "ALTER TABLE t ALTER COLUMN n SET DEFAULT 'abc'", "22P02")
    run(conn, "ALTER TABLE t ALTER COLUMN n DROP DEFAULT")
    run(conn, "INSERT INTO t (id) VALUES (2)")
    assert list(conn.execute("SELECT n FROM t WHERE id = 2")) == [(None,)]
    fails(conn, "ALTER TABLE t ALTER COLUMN nope SET DEFAULT 1", "42703")
    fails(conn, "ALTER TABLE nope ALTER COLUMN n SET DEFAULT 1", "42P01")


def test_changes_keep_the_declared_types_and_the_rows_that_reference_the_table(
        conn: apsw.Connection) -> None:
    """Editing the definition in place: a rebuild would run the children's ON DELETE
    CASCADE, and regenerating the text would turn INT into INTEGER (the rowid alias)."""
    run(conn, "CREATE TABLE parent (id serial PRIMARY KEY, name varchar(20))")
    run(conn, "CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent (id) "
              "ON DELETE CASCADE)")
    run(conn, "INSERT INTO parent (name) VALUES ('a'), ('b')")
    run(conn, "INSERT INTO child VALUES (10, 1), (11, 2)")
    run(conn, "ALTER TABLE parent ALTER COLUMN name SET NOT NULL")
    run(conn, "ALTER TABLE parent ALTER COLUMN name SET DEFAULT 'anon'")
    assert list(conn.execute("SELECT id, p FROM child ORDER BY id")) == [(10, 1), (11, 2)]
    sql = table_sql(conn, "parent")
    assert '"id" INT PRIMARY KEY' in sql and '"name" VARCHAR(20)' in sql, sql
    run(conn, "INSERT INTO parent DEFAULT VALUES")
    assert list(conn.execute("SELECT id, name FROM parent WHERE id = 3")) == [(3, "anon")]
    assert list(conn.execute("PRAGMA foreign_key_check")) == []


def test_a_change_that_fails_changes_nothing(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    run(conn, "INSERT INTO t VALUES (1, 'abcdef')")
    before = table_sql(conn, "t")
    fails(conn, "ALTER TABLE t ALTER COLUMN v TYPE varchar(3)", "22001")
    assert table_sql(conn, "t") == before


def test_type_changes_convert_or_check_every_value(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, small int, amount int, label text, "
              "code text, score float8)")
    run(conn, "INSERT INTO t VALUES (1, 7, 5, 'abc', '12', 2.5), (2, 40000, 6, 'de', '7', 1)")
    fails(conn, "ALTER TABLE t ALTER COLUMN small TYPE smallint", "22003")
    run(conn, "ALTER TABLE t ALTER COLUMN small TYPE bigint")
    run(conn, "ALTER TABLE t ALTER COLUMN amount TYPE numeric(8,2)")
    run(conn, "ALTER TABLE t ALTER COLUMN label TYPE varchar(5)")
    run(conn, "ALTER TABLE t ALTER COLUMN score TYPE numeric")
    message = fails(conn, "ALTER TABLE t ALTER COLUMN code TYPE integer", "42804")
    assert 'USING code::integer' in message
    run(conn, "ALTER TABLE t ALTER COLUMN code TYPE integer USING code::integer")
    rows = list(conn.execute("SELECT small, amount, label, code, score FROM t ORDER BY id"))
    assert rows == [(7, "5.00", "abc", 12, "2.5"), (40000, "6.00", "de", 7, "1")]
    sql = table_sql(conn, "t")
    assert '"amount" NUMERIC_TEXT(8,2) COLLATE _pg_numeric' in sql, sql
    assert '"label" VARCHAR(5)' in sql and '"code" INTEGER' in sql, sql
    # the numeric collation now orders the converted column: 10 after 9
    run(conn, "INSERT INTO t VALUES (3, 1, 10, 'x', 1, 10)")
    run(conn, "INSERT INTO t VALUES (4, 1, 9, 'y', 1, 9)")
    assert [r[0] for r in conn.execute("SELECT amount FROM t ORDER BY amount")] == \
        ["5.00", "6.00", "9.00", "10.00"]
    fails(conn, "ALTER TABLE t ALTER COLUMN label TYPE bytea", "42804")
    fails(conn, "ALTER TABLE t ALTER COLUMN id TYPE bigint", "0A000")   # the rowid
    assert list(conn.execute("PRAGMA integrity_check")) == [("ok",)]


def test_an_indexed_column_changing_collation_is_reindexed(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, amount numeric)")
    run(conn, "CREATE INDEX t_amount ON t (amount)")
    run(conn, "INSERT INTO t VALUES (1, 9), (2, 10), (3, 100)")
    run(conn, "ALTER TABLE t ALTER COLUMN amount TYPE bigint")
    assert list(conn.execute("SELECT id FROM t WHERE amount = 10")) == [(2,)]
    assert [r[0] for r in conn.execute("SELECT amount FROM t ORDER BY amount")] == \
        [9, 10, 100]
    assert list(conn.execute("PRAGMA integrity_check")) == [("ok",)]


def test_check_and_foreign_key_constraints_are_added_checked_and_dropped(
        conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE u (id int PRIMARY KEY)")
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, u_id int, n int)")
    run(conn, "INSERT INTO u VALUES (1)")
    run(conn, "INSERT INTO t VALUES (1, 1, 5), (2, 2, -1)")
    fails(conn, "ALTER TABLE t ADD CONSTRAINT n_positive CHECK (n > 0)", "23514")
    fails(conn, "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u_id) REFERENCES u (id)",
          "23503")
    run(conn, "DELETE FROM t WHERE id = 2")
    run(conn, "ALTER TABLE t ADD CONSTRAINT n_positive CHECK (n > 0)")
    run(conn, "ALTER TABLE t ADD CONSTRAINT t_u FOREIGN KEY (u_id) REFERENCES u (id) "
              "ON DELETE CASCADE")
    fails(conn, "ALTER TABLE t ADD CONSTRAINT n_positive CHECK (n > 1)", "42710")
    with pytest.raises(apsw.ConstraintError):
        run(conn, "INSERT INTO t VALUES (3, 1, 0)")
    run(conn, "DELETE FROM u WHERE id = 1")   # the new foreign key's action
    assert list(conn.execute("SELECT count(*) FROM t")) == [(0,)]
    run(conn, "ALTER TABLE t DROP CONSTRAINT n_positive")
    run(conn, "INSERT INTO t VALUES (3, NULL, 0)")
    run(conn, "ALTER TABLE t DROP CONSTRAINT IF EXISTS n_positive")
    fails(conn, "ALTER TABLE t DROP CONSTRAINT n_positive", "42704")
    run(conn, "ALTER TABLE t ADD CONSTRAINT t_n_key UNIQUE (n)")
    run(conn, "ALTER TABLE t DROP CONSTRAINT t_n_key")
    run(conn, "INSERT INTO t VALUES (4, NULL, 0)")


def test_if_exists_forms(conn: apsw.Connection) -> None:
    run(conn, "ALTER TABLE IF EXISTS missing ADD COLUMN x int")
    run(conn, "ALTER TABLE IF EXISTS missing RENAME TO other")
    run(conn, "CREATE TABLE t (id int PRIMARY KEY)")
    run(conn, "ALTER TABLE t ADD COLUMN IF NOT EXISTS x int")
    run(conn, "ALTER TABLE t ADD COLUMN IF NOT EXISTS x text")
    run(conn, "ALTER TABLE t DROP COLUMN IF EXISTS nope")
    fails(conn, "ALTER TABLE t DROP COLUMN nope", "42703")
    run(conn, "ALTER TABLE t DROP COLUMN IF EXISTS x")
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["id"]
    run(conn, "ALTER TABLE IF EXISTS t RENAME TO t2")
    assert list(conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")) == \
        [("t2",)]


def test_add_primary_key_keeps_the_declared_types(conn: apsw.Connection) -> None:
    """It rebuilt the table from sqlglot's regeneration of the definition, which turned
    VARCHAR(20) into TEXT(20) and a SERIAL's INT into INTEGER."""
    run(conn, "CREATE TABLE t (k int NOT NULL, n serial, v varchar(20))")
    run(conn, "INSERT INTO t (k, v) VALUES (2, 'b'), (1, 'a')")
    run(conn, "ALTER TABLE t ADD PRIMARY KEY (k)")
    sql = table_sql(conn, "t")
    assert '"n" INT NOT NULL' in sql and '"v" VARCHAR(20)' in sql, sql
    assert list(conn.execute("SELECT k, n, v FROM t ORDER BY k")) == [(1, 2, "a"), (2, 1, "b")]


@pytest.mark.parametrize("sql", [
    'CREATE TABLE "t" ("a" INT PRIMARY KEY NOT NULL DEFAULT (_pg_nextval(\'t_a_seq\')), '
    '"n" NUMERIC_TEXT(10,2) COLLATE _pg_numeric DEFAULT (\'1.50\'), "c" BPCHAR(3) COLLATE '
    'RTRIM UNIQUE, CONSTRAINT "ck" CHECK (n > 0), FOREIGN KEY ("a") REFERENCES "u" ("x"))',
    "CREATE TABLE t(a, b DEFAULT -1 NOT NULL, c TEXT CONSTRAINT nn NULL)",
])
def test_definitions_split_and_join_to_the_same_text(sql: str) -> None:
    definition = tabledef.TableDef.parse(sql)
    assert definition.sql() == sql
    columns = definition.columns()
    assert [c.name for c in columns] == (["a", "n", "c"] if '"t"' in sql else ["a", "b", "c"])


def test_column_edits() -> None:
    column = tabledef.Column.parse('"b" BIGINT CONSTRAINT nn NOT NULL DEFAULT -1 UNIQUE')
    assert (column.decltype, column.not_null, column.default) == ("BIGINT", True, "-1")
    assert column.with_not_null(False).text == '"b" BIGINT DEFAULT -1 UNIQUE'
    assert column.with_default("(7)").text == '"b" BIGINT CONSTRAINT nn NOT NULL UNIQUE ' \
        'DEFAULT (7)'
    typed = column.with_type("NUMERIC_TEXT(8,2)", "_pg_numeric")
    assert typed.text == '"b" NUMERIC_TEXT(8,2) COLLATE _pg_numeric CONSTRAINT nn NOT NULL ' \
        'DEFAULT -1 UNIQUE'
    assert typed.with_type("TEXT", None).collation is None
    assert tabledef.Column.parse('"x" TEXT NULL').with_not_null(True).text == '"x" TEXT NOT NULL'


def test_several_actions_run_in_order_and_whole(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int, v text)")
    run(conn, "INSERT INTO t VALUES (1, 'a'), (2, NULL)")
    run(conn, "ALTER TABLE t ADD COLUMN n int DEFAULT 0, ADD COLUMN m text, "
              "ALTER COLUMN v SET DEFAULT 'd', ADD PRIMARY KEY (id)")
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["id", "v", "n", "m"]
    before = table_sql(conn, "t")
    fails(conn, "ALTER TABLE t ADD COLUMN x int, ALTER COLUMN v SET NOT NULL", "23502")
    assert table_sql(conn, "t") == before   # the first action was undone with the second
    run(conn, "INSERT INTO t (id) VALUES (3)")
    assert list(conn.execute("SELECT v, n FROM t WHERE id = 3")) == [("d", 0)]


def test_drop_column_drops_the_indexes_on_it(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, a int, b int)")
    run(conn, "CREATE INDEX t_a ON t (a)")
    run(conn, "CREATE INDEX t_ab ON t (a, b)")
    run(conn, "CREATE INDEX t_b ON t (b)")
    run(conn, "ALTER TABLE t DROP COLUMN a")
    assert [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")] == ["t_b"]


def test_rename_without_the_column_keyword_renames_the_column(conn: apsw.Connection) -> None:
    """``ALTER TABLE t RENAME c TO d`` (Alembic sends it so) renamed the table to c."""
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, email text)")
    run(conn, "ALTER TABLE t RENAME email TO mail")
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["id", "mail"]
    run(conn, "ALTER TABLE IF EXISTS missing RENAME a TO b")


def test_drop_column_cascade_and_what_depends_on_the_column(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, a int, b int)")
    run(conn, "CREATE VIEW v AS SELECT id, b FROM t")
    run(conn, "ALTER TABLE t DROP COLUMN a CASCADE")          # Django sends CASCADE
    fails(conn, "ALTER TABLE t DROP COLUMN b", "2BP01")        # the view reads it
    fails(conn, "ALTER TABLE t DROP COLUMN b CASCADE", "0A000")  # PostgreSQL drops the view
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["id", "b"]


def test_index_operator_classes_of_btree(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, name varchar(20))")
    run(conn, "CREATE INDEX t_name_like ON t (name varchar_pattern_ops)")   # Django's
    run(conn, "CREATE INDEX t_id ON t (id int4_ops DESC)")
    fails(conn, "CREATE INDEX t_j ON t (name jsonb_path_ops)", "0A000")


def test_set_constraints_immediate_checks_what_is_pending(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE parent (id int PRIMARY KEY)")
    run(conn, "CREATE TABLE child (id int PRIMARY KEY, p int REFERENCES parent (id) "
              "DEFERRABLE INITIALLY DEFERRED)")
    statement = translate_statement('SET CONSTRAINTS "child_p_fkey" IMMEDIATE')
    assert statement.action == SequenceOp("set_constraints", args=("immediate",))
    conn.execute("BEGIN")
    conn.execute("INSERT INTO child VALUES (1, 7)")   # deferred: no error yet
    with pytest.raises(BorealisError) as failure:
        pgschema.set_constraints(conn, "immediate")
    assert failure.value.sqlstate == "23503"
    conn.execute("ROLLBACK")
    # DEFERRED: even a key that is not deferrable is checked at the commit only
    run(conn, "CREATE TABLE strict (id int PRIMARY KEY, p int REFERENCES parent (id))")
    conn.execute("BEGIN")
    pgschema.set_constraints(conn, "deferred")
    conn.execute("INSERT INTO strict VALUES (1, 7)")
    conn.execute("INSERT INTO parent VALUES (7)")
    conn.execute("COMMIT")
    assert list(conn.execute("SELECT p FROM strict")) == [(7,)]


def test_create_or_replace_view_keeps_its_columns_first(conn: apsw.Connection) -> None:
    """PostgreSQL 15: the new query may add columns after the view's, not drop or rename
    them (42P16)."""
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, a int, b int)")
    run(conn, "INSERT INTO t VALUES (1, 2, 3)")
    run(conn, "CREATE OR REPLACE VIEW v AS SELECT id, a FROM t")      # a new view
    run(conn, "CREATE VIEW w AS SELECT id FROM v")                     # depends on it
    run(conn, "CREATE OR REPLACE VIEW v AS SELECT id, a * 10 AS a, b FROM t")
    assert list(conn.execute("SELECT * FROM v")) == [(1, 20, 3)]
    assert list(conn.execute("SELECT * FROM w")) == [(1,)]
    fails(conn, "CREATE OR REPLACE VIEW v AS SELECT id FROM t", "42P16")
    fails(conn, "CREATE OR REPLACE VIEW v AS SELECT id, a AS x, b FROM t", "42P16")
    fails(conn, "CREATE OR REPLACE VIEW t AS SELECT 1 AS id", "42809")
    assert list(conn.execute("SELECT * FROM v")) == [(1, 20, 3)]   # unchanged


def test_alter_index_and_view_rename_to(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, a int)")
    run(conn, "CREATE UNIQUE INDEX IF NOT EXISTS t_a ON t (a)")
    run(conn, "CREATE VIEW v AS SELECT id, a FROM t")
    run(conn, "ALTER INDEX t_a RENAME TO t_a_key")      # Django's RenameIndex
    run(conn, "ALTER VIEW v RENAME TO v2")
    names = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_schema")}
    assert "t_a" not in names and names["t_a_key"].startswith(
        'CREATE UNIQUE INDEX "t_a_key" ON')
    assert "v" not in names and names["v2"].startswith('CREATE VIEW "v2" AS')
    run(conn, "INSERT INTO t VALUES (1, 5)")
    with pytest.raises(apsw.ConstraintError):   # still unique
        run(conn, "INSERT INTO t VALUES (2, 5)")
    assert list(conn.execute("SELECT * FROM v2")) == [(1, 5)]
    fails(conn, "ALTER INDEX nope RENAME TO x", "42P01")
    run(conn, "ALTER INDEX IF EXISTS nope RENAME TO x")
    fails(conn, "ALTER VIEW v2 RENAME TO t", "42P07")
    fails(conn, "ALTER VIEW v2 ALTER COLUMN id SET DEFAULT 1", "0A000")


def test_a_using_expression_computes_the_new_values(conn: apsw.Connection) -> None:
    """Between types with one stored form (text to varchar) the values were only checked,
    and USING was ignored."""
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, name text)")
    run(conn, "INSERT INTO t VALUES (1, 'ann'), (2, 'bob')")
    run(conn, "ALTER TABLE t ALTER COLUMN name TYPE varchar(10) USING upper(name)")
    assert list(conn.execute("SELECT name FROM t ORDER BY id")) == [("ANN",), ("BOB",)]


def test_a_constraint_with_a_quoted_name_is_dropped(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE t (id int PRIMARY KEY, n int)")
    run(conn, 'ALTER TABLE t ADD CONSTRAINT "n is positive" CHECK (n > 0)')
    with pytest.raises(apsw.ConstraintError):
        run(conn, "INSERT INTO t VALUES (1, 0)")
    run(conn, 'ALTER TABLE t DROP CONSTRAINT "n is positive"')
    run(conn, "INSERT INTO t VALUES (1, 0)")
