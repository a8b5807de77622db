"""PostgreSQL to SQLite translation: statement splitting, literal normalisation, the
rewrite of each supported construct, and refusals with the right SQLSTATE.

The translated SQL is run on a real SQLite connection (with the session's functions) where
the meaning matters, rather than compared as text only.
"""

from __future__ import annotations

import apsw
import pytest

from borealis.protocol.postgres import sqltext
from borealis.protocol.postgres.session import SqlSession
from borealis.protocol.postgres.translate import (
    CopyAction,
    Kind,
    SequenceOp,
    SetAction,
    ShowAction,
    TransactionAction,
    TranslationError,
    Translator,
    translate_statement,
)


def run(conn: apsw.Connection, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    statement = translate_statement(sql)
    for setup in statement.setup:
        conn.execute(setup)
    rows: list[tuple] = []
    for text in statement.sqlite:
        rows = list(conn.execute(text, params or None))
    return rows


@pytest.fixture
def conn() -> apsw.Connection:
    connection = apsw.Connection(":memory:")
    connection.execute("PRAGMA foreign_keys=ON; PRAGMA case_sensitive_like=ON")
    SqlSession(user="postgres", database="postgres").register(connection)
    return connection


# -- sqltext ---------------------------------------------------------------------------

def test_split_respects_quotes_comments_and_dollar_quoting() -> None:
    text = "select 1; select ';' -- a;\n; /* x /* y */ ; */ select $$a;b$$; select $t$;$t$"
    assert sqltext.split(text) == [
        "select 1", " select ';' -- a;\n", " /* x /* y */ ; */ select $$a;b$$",
        " select $t$;$t$"]
    assert sqltext.split(" ; -- nothing\n;") == []
    with pytest.raises(sqltext.SqlTextError):
        sqltext.split("select 'unterminated")
    with pytest.raises(sqltext.SqlTextError):
        sqltext.split("select $$unterminated")


def test_normalize_makes_data_literals_parameters() -> None:
    shape = sqltext.normalize(
        "UPDATE pgbench_accounts SET abalance = abalance + -2348 WHERE aid = 24144")
    assert shape is not None
    assert shape.key == "UPDATE pgbench_accounts SET abalance = abalance + -$1 WHERE aid = $2"
    assert shape.values == (2348, 24144)
    assert shape.kinds == ("int4", "int4")
    other = sqltext.normalize(
        "UPDATE pgbench_accounts SET abalance = abalance + -17 WHERE aid = 5")
    assert other is not None and other.key == shape.key


def test_normalize_keeps_literals_that_carry_meaning() -> None:
    shape = sqltext.normalize("select * from t where d > interval '1 day' and x = 'it''s' "
                              "and c = 'x'::regclass order by 1 limit 10")
    assert shape is not None
    assert "interval '1 day'" in shape.key and "'x'::regclass" in shape.key
    assert "order by 1" in shape.key
    assert shape.values == ("it's", 10)
    assert sqltext.normalize("CREATE TABLE t (a int DEFAULT 5)") is None
    assert sqltext.normalize("SELECT $1") is None  # the client's own parameters
    big = sqltext.normalize("select 3000000000, 1.5, E'a\\nb'")
    assert big is not None and big.values == (3000000000, 1.5, "a\nb")
    assert big.kinds == ("int8", "numeric", "unknown")


# -- queries and DML -------------------------------------------------------------------

def test_names_and_static_types_of_result_columns() -> None:
    statement = translate_statement(
        "SELECT 1, 'a', count(*), x::int, a.b, lower(n) AS low, now(), 1 = 1 FROM t a")
    assert statement.columns is not None
    assert [(c.name, c.type_oid) for c in statement.columns] == [
        ("?column?", 23), ("?column?", 25), ("count", 20), ("x", 23), ("b", 0),
        ("low", 25), ("now", 1184), ("?column?", 16)]


def test_queries_run_with_postgres_meaning(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE items (id serial PRIMARY KEY, name varchar(20) NOT NULL, "
              "active boolean DEFAULT true, price numeric(10,2))")
    run(conn, "INSERT INTO items (name, price) VALUES ('Apple', '1.10'), ('pear', '2.50')")
    assert run(conn, "SELECT id, name, active, price FROM items ORDER BY id") == [
        (1, "Apple", 1, "1.10"), (2, "pear", 1, "2.50")]
    # LIKE is case-sensitive in PostgreSQL, ILIKE is not
    assert run(conn, "SELECT name FROM items WHERE name LIKE 'a%'") == []
    assert run(conn, "SELECT name FROM items WHERE name ILIKE 'a%'") == [("Apple",)]
    assert run(conn, "SELECT name FROM items WHERE name ~ '^p'") == [("pear",)]
    assert run(conn, "INSERT INTO items (name) VALUES ($1) RETURNING id", ("fig",)) == [(3,)]
    assert run(conn, "SELECT currval('items_id_seq')") == [(3,)]
    upsert = ("INSERT INTO items (id, name) VALUES (1, 'apple') ON CONFLICT (id) "
              "DO UPDATE SET name = excluded.name RETURNING name")
    assert run(conn, upsert) == [("apple",)]
    assert run(conn, "SELECT $1::int + 1", (41,)) == [(42,)]
    assert run(conn, "SELECT '42'::int8, '1.5'::numeric(5,2), 't'::boolean") == [
        (42, "1.50", 1)]


def test_a_cast_of_a_bad_value_fails_as_in_postgres(conn: apsw.Connection) -> None:
    from borealis.protocol.postgres.session import SqlFunctionError
    with pytest.raises(SqlFunctionError) as failure:
        run(conn, "SELECT 'abc'::int")
    assert failure.value.sqlstate == "22P02"


def test_parameter_hints_name_the_columns_they_are_compared_with() -> None:
    statement = translate_statement(
        "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2")
    assert statement.param_count == 2
    assert statement.param_hints[1].column == "aid"
    assert statement.param_hints[1].tables == ("pgbench_accounts",)
    insert = translate_statement("INSERT INTO t (a, b) VALUES ($1, $2)")
    assert [h.column for h in insert.param_hints] == ["a", "b"]
    cast = translate_statement("SELECT $1::int8 LIMIT $2")
    assert [h.oid for h in cast.param_hints] == [20, 20]


def test_pgbench_initialisation_statements_translate() -> None:
    drop = translate_statement("drop table if exists pgbench_accounts, pgbench_branches")
    assert drop.sqlite == ('DROP TABLE IF EXISTS "pgbench_accounts"',
                           'DROP TABLE IF EXISTS "pgbench_branches"')
    create = translate_statement("create table pgbench_tellers(tid int not null,bid int,"
                                 "tbalance int,filler char(84)) with (fillfactor=100)")
    assert create.kind is Kind.DDL and create.tag == "CREATE TABLE"
    assert '"tid" INTEGER NOT NULL' in create.sqlite[0]
    truncate = translate_statement("truncate table pgbench_accounts, pgbench_history")
    assert truncate.sqlite == ('DELETE FROM "pgbench_accounts"', 'DELETE FROM "pgbench_history"')
    key = translate_statement("alter table pgbench_branches add primary key (bid)")
    assert key.action == SequenceOp("add_primary_key", "pgbench_branches", (("bid",), ""))
    vacuum = translate_statement("vacuum analyze pgbench_branches")
    assert vacuum.kind is Kind.UTILITY and vacuum.tag == "VACUUM"
    copy = translate_statement("copy pgbench_accounts from stdin with (freeze on)")
    assert copy.action == CopyAction("pgbench_accounts", (), "from")


def test_transaction_and_session_statements() -> None:
    assert translate_statement("BEGIN ISOLATION LEVEL SERIALIZABLE").action == \
        TransactionAction("begin")
    assert translate_statement("START TRANSACTION READ ONLY").action == \
        TransactionAction("begin", read_only=True)
    assert translate_statement("END").action == TransactionAction("commit")
    assert translate_statement("ROLLBACK TO SAVEPOINT sp1").action == \
        TransactionAction("rollback_to", "sp1")
    assert translate_statement("RELEASE \"_pg3_1\"").action == \
        TransactionAction("release", "_pg3_1")
    assert translate_statement("SET search_path TO public").action == \
        SetAction("search_path", "public")
    assert translate_statement("SET TIME ZONE 'UTC'").action == SetAction("timezone", "UTC")
    assert translate_statement("show transaction isolation level").action == \
        ShowAction("transaction isolation level")


def test_unsupported_features_are_refused_with_0A000() -> None:
    for sql in ("CREATE SCHEMA other", "DROP TABLE t CASCADE",
                "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
                "LISTEN channel"):
        with pytest.raises(TranslationError) as failure:
            translate_statement(sql)
        assert failure.value.sqlstate == "0A000", sql
    with pytest.raises(TranslationError) as failure:
        translate_statement("SELECT FROM WHERE")
    assert failure.value.sqlstate == "42601"
    with pytest.raises(TranslationError) as failure:
        translate_statement("SELECT no_such_function(1)")
    assert failure.value.sqlstate == "42883"


def test_the_cache_translates_each_shape_once() -> None:
    translator = Translator()
    first, values = translator.translate_simple("SELECT abalance FROM a WHERE aid = 7")
    second, other = translator.translate_simple("SELECT abalance FROM a WHERE aid = 99")
    assert first is second
    assert (values, other) == ((7,), (99,))
    assert translator.misses == 1 and translator.hits == 1
    ordinal, values = translator.translate_simple("SELECT a FROM t ORDER BY a, 2")
    assert values == ()  # ORDER BY 2 is a column position: translated as written
    assert "2" in ordinal.sqlite[0]
