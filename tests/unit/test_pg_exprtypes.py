"""Result types of expressions over table columns (resolved against the schema at Describe,
as ``schema.result_types`` does for the server) and PostgreSQL's int2/int4 overflow inside
expressions.

The expected types are what PostgreSQL 15's ``pg_typeof`` gives for the same expressions
on the same table; each statement is also run, and its values encoded in text and binary
by the described type, as the server sends them.
"""

from __future__ import annotations

import apsw
import pytest
from test_pg_translate import carry_out, run, simple

from borealis.protocol.postgres import catalog, schema
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.session import SqlFunctionError, SqlSession
from borealis.protocol.postgres.statement import Statement
from borealis.protocol.postgres.translate import Translator, translate_statement

TABLE = ("CREATE TABLE tt (i int, s smallint, b bigint, n numeric(10,2), f real, "
         "d float8, ts timestamptz, t text, v varchar(5), j json, jb jsonb)")
ROWS = ("INSERT INTO tt VALUES (1, 2, 3, 1.5, 0.5, 2.5, '2024-01-01', 'q', 'vv', "
        "'{\"a\":  [1,  2.50]}', '{\"a\": 1}'), (4, 5, 6, 2.25, 1.5, 3.5, '2024-02-01', NULL, "
        "NULL, NULL, NULL)")

# PostgreSQL 15: SELECT pg_typeof(<expression>) FROM tt
POSTGRES_TYPES = [
    ("i + 1", "integer"), ("i + b", "bigint"), ("s + s", "smallint"), ("s + 1", "integer"),
    ("i / 2", "integer"), ("i % 3", "integer"), ("b * 2", "bigint"), ("n + 1", "numeric"),
    ("n * i", "numeric"), ("d * 2", "double precision"), ("f * 2", "double precision"),
    ("f * f", "real"), ("f + n", "double precision"), ("-s", "smallint"), ("-n", "numeric"),
    ("sum(i)", "bigint"), ("sum(s)", "bigint"), ("sum(b)", "numeric"), ("sum(n)", "numeric"),
    ("sum(f)", "real"), ("avg(i)", "numeric"), ("avg(n)", "numeric"),
    ("avg(d)", "double precision"), ("avg(f)", "double precision"),
    ("max(ts)", "timestamp with time zone"), ("min(n)", "numeric"), ("max(v)", "text"),
    ("min(t)", "text"), ("count(i)", "bigint"), ("coalesce(t, 'x')", "text"),
    ("coalesce(v, 'x')", "character varying"), ("coalesce(i, 0)", "integer"),
    ("coalesce(i, 0.5)", "numeric"), ("coalesce(i, b)", "bigint"),
    ("coalesce(ts, '2024-01-01')", "timestamp with time zone"),
    ("case when i > 0 then i else 0 end", "integer"),
    ("case when i > 0 then n else 0 end", "numeric"),
    ("case when i > 0 then d else i end", "double precision"), ("nullif(i, 0)", "integer"),
    ("greatest(i, b)", "bigint"), ("abs(s)", "smallint"), ("abs(n)", "numeric"),
    ("floor(i)", "double precision"), ("round(n)", "numeric"), ("round(n, 1)", "numeric"),
    ("round(d)", "double precision"), ("j -> 'a'", "json"), ("jb -> 'a'", "jsonb"),
    ("j #> '{a}'", "json"), ("j ->> 'a'", "text"), ("ts - ts", "interval"),
    ("ts + interval '1 day'", "timestamp with time zone"),
    ("date_trunc('day', ts)", "timestamp with time zone"),
    ("extract(year from ts)", "numeric"), ("lag(n) over (order by i)", "numeric"),
    ("sum(i) over (order by i)", "bigint"), ("array_agg(i)", "integer[]"),
    ("upper(v)", "text"), ("i > 0", "boolean"),
]


def described(conn: apsw.Connection, statement: Statement,
              params: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """The result columns' types as the server describes them: the statement's own, else
    the formula's against the schema (a plain column's is SQLite's declared type)."""
    assert statement.columns is not None
    resolved = schema.result_types(conn, statement.columns, params)
    return [(c.type_oid, c.typmod) if c.type_oid else resolved[i]
            for i, c in enumerate(statement.columns)]


@pytest.fixture
def conn() -> apsw.Connection:
    """A connection set up as the server sets up a session's."""
    connection = apsw.Connection(":memory:")
    connection.execute("PRAGMA foreign_keys=ON; PRAGMA case_sensitive_like=ON")
    SqlSession(user="postgres", database="postgres").register(connection)
    catalog.install(connection, database="postgres", user="postgres")
    return connection


@pytest.fixture
def table(conn: apsw.Connection) -> apsw.Connection:
    run(conn, TABLE)
    simple(conn, ROWS)
    return conn


@pytest.mark.parametrize(("expression", "expected"), POSTGRES_TYPES)
def test_result_type_is_postgres_type(table: apsw.Connection, expression: str,
                                      expected: str) -> None:
    statement = translate_statement(f"SELECT {expression} FROM tt")
    [(oid, _)] = described(table, statement)
    assert oid in pgtypes.BY_OID, (expression, oid)
    assert pgtypes.format_type(oid, -1) == expected
    # the values are what the described type encodes (asyncpg decodes by it)
    pgtype = pgtypes.BY_OID[oid]
    for (value,) in carry_out(table, statement):
        if value is not None:
            assert pgtypes.encode_text(pgtype, value) is not None
            assert pgtypes.encode_binary(pgtype, value) is not None


def test_the_issue_examples_are_typed_before_anything_runs(table: apsw.Connection) -> None:
    run(table, "CREATE TABLE accounts (id int PRIMARY KEY, balance int, amount numeric(12,2),"
               " created_at timestamptz, name text)")
    cases = {
        "SELECT balance + 1 FROM accounts WHERE id = $1": 23,
        "SELECT sum(balance) FROM accounts": 20,
        "SELECT sum(amount) FROM accounts": 1700,
        "SELECT max(created_at) FROM accounts": 1184,
        "SELECT coalesce(name, 'x') FROM accounts": 25,
        "SELECT CASE WHEN balance > 0 THEN balance ELSE 0 END FROM accounts": 23,
        "SELECT a.balance * 2 FROM accounts a JOIN tt b ON b.i = a.id": 23,
        "SELECT s.total FROM (SELECT sum(amount) AS total FROM accounts) s": 1700,
        "WITH c AS (SELECT balance - 1 AS less FROM accounts) SELECT less FROM c": 23,
        "WITH c (x) AS (SELECT max(created_at) FROM accounts) SELECT c.x FROM c": 1184,
        "SELECT (SELECT max(balance) FROM accounts) + 1": 23,
        "SELECT x FROM (SELECT balance * 2.5 FROM accounts) AS d (x)": 1700,
    }
    for sql, oid in cases.items():
        assert described(table, translate_statement(sql), (23,))[0][0] == oid, sql


def test_untyped_literals_take_the_branches_type(table: apsw.Connection) -> None:
    # PostgreSQL 15: coalesce(i, '5') is the integer 5 where i is NULL
    run(table, "INSERT INTO tt (i, ts) VALUES (NULL, NULL)")
    for sql in ("SELECT coalesce(i, '5'), coalesce(i + 1, '7'), coalesce(ts, '2024-01-01'), "
                "CASE WHEN i IS NULL THEN '9' ELSE i END, coalesce(t, 'x') FROM tt "
                "WHERE i IS NULL",
                "UPDATE tt SET s = 1 WHERE i IS NULL RETURNING coalesce(i, '5'), "
                "coalesce(i + 1, '7'), coalesce(ts, '2024-01-01'), "
                "CASE WHEN i IS NULL THEN '9' ELSE i END, coalesce(t, 'x')"):
        for protocol in (run, simple):
            statement = translate_statement(sql)
            assert [oid for oid, _ in described(table, statement)] == [23, 23, 1184, 23, 25]
            assert protocol(table, sql) == [(5, 7, "2024-01-01 00:00:00", 9, "x")]
    with pytest.raises(SqlFunctionError) as failure:
        run(table, "SELECT coalesce(i, 'five') FROM tt WHERE i IS NULL")
    assert failure.value.sqlstate == "22P02"


def test_set_operations_take_their_branches_common_type(table: apsw.Connection) -> None:
    # PostgreSQL 15: numeric, bigint, integer
    statement = translate_statement("SELECT i FROM tt UNION SELECT 1.5")
    assert described(table, statement) == [(1700, -1)]
    rows = carry_out(table, statement)
    assert sorted(str(v) for v, in rows) == ["1", "1.5", "4"]
    assert described(table, translate_statement(
        "SELECT i FROM tt UNION ALL SELECT b FROM tt"))[0][0] == 20
    assert described(table, translate_statement(
        "SELECT i FROM tt EXCEPT SELECT 2"))[0][0] == 23


def test_dml_returning_is_typed_from_its_table(table: apsw.Connection) -> None:
    statement = translate_statement("UPDATE tt SET i = i + 1 RETURNING i * 2, b - 1")
    assert [oid for oid, _ in described(table, statement)] == [23, 20]
    insert = translate_statement("INSERT INTO tt (i, n) VALUES (9, 1.25) RETURNING n * 2")
    assert described(table, insert) == [(1700, -1)]


def test_parameters_take_the_client_type(table: apsw.Connection) -> None:
    assert described(table, translate_statement("SELECT $1"), (20,)) == [(20, -1)]
    assert described(table, translate_statement("SELECT i + $1 FROM tt"), (23,)) == [(23, -1)]
    # a parameter nothing typed takes the other operand's type, as PostgreSQL infers it
    assert described(table, translate_statement("SELECT b + $1 FROM tt")) == [(20, -1)]


def test_plain_columns_are_left_to_sqlite_declared_types() -> None:
    # nothing to resolve: no round trip to the session's thread at Describe or per run
    statement = translate_statement("SELECT abalance FROM pgbench_accounts WHERE aid = $1")
    assert statement.columns is not None
    assert [c.formula for c in statement.columns] == [None]
    statement = translate_statement("SELECT count(*), 1, 'x'::text FROM pgbench_accounts")
    assert statement.columns is not None
    assert [(c.type_oid, c.formula) for c in statement.columns] == [
        (20, None), (23, None), (25, None)]


def test_the_shape_cache_serves_typed_statements() -> None:
    translator = Translator()
    first, values = translator.translate_simple("SELECT i + 1 FROM tt WHERE i = 5")
    second, other = translator.translate_simple("SELECT i + 7 FROM tt WHERE i = 6")
    assert first is second and values == (1, 5) and other == (7, 6)
    assert translator.hits == 1 and translator.misses == 1


# -- int2 / int4 overflow -------------------------------------------------------------------

def sqlstate_of(conn: apsw.Connection, sql: str, params: tuple[object, ...] = (),
                *, protocol: str = "extended") -> tuple[str, str]:
    with pytest.raises(SqlFunctionError) as failure:
        if protocol == "simple":
            simple(conn, sql)
        else:
            run(conn, sql, params)
    return failure.value.sqlstate, str(failure.value)


def test_int4_arithmetic_overflows_as_in_postgres(table: apsw.Connection) -> None:
    # PostgreSQL 15: ERROR: integer out of range (22003) for each of these
    for protocol in ("simple", "extended"):
        assert sqlstate_of(table, "SELECT 2147483647 + 1", protocol=protocol) == (
            "22003", "integer out of range")
        assert sqlstate_of(table, "SELECT -2147483647 - 2", protocol=protocol)[0] == "22003"
        assert sqlstate_of(table, "SELECT 65536 * 65536", protocol=protocol)[0] == "22003"
        assert sqlstate_of(table, "SELECT 9223372036854775807 + 1", protocol=protocol) == (
            "22003", "bigint out of range")
    assert run(table, "SELECT 2147483647::int8 + 1") == [(2147483648,)]
    assert run(table, "SELECT 2147483647 + 1.5") == [("2147483648.5",)]
    assert run(table, "SELECT 2147483647 + 2147483648") == [(4294967295,)]  # int4 + int8


def test_column_arithmetic_overflows_by_the_column_type(table: apsw.Connection) -> None:
    run(table, "UPDATE tt SET i = 2147483647, s = 32767, b = 2147483647")
    assert sqlstate_of(table, "SELECT i + 1 FROM tt") == ("22003", "integer out of range")
    assert sqlstate_of(table, "SELECT s + s FROM tt") == ("22003", "smallint out of range")
    assert run(table, "SELECT s + 1 FROM tt") == [(32768,), (32768,)]  # int2 + int4: int4
    assert run(table, "SELECT b + 1 FROM tt") == [(2147483648,), (2147483648,)]
    assert run(table, "SELECT i::int8 + 1 FROM tt") == [(2147483648,), (2147483648,)]
    # an intermediate result: PostgreSQL refuses it even when the end result fits
    assert sqlstate_of(table, "SELECT i * 2 / 2 FROM tt")[0] == "22003"
    assert sqlstate_of(table, "SELECT -i - 2 FROM tt")[0] == "22003"
    # outside the select list, and assigned to a wider column
    assert sqlstate_of(table, "SELECT 1 FROM tt WHERE i + 1 > 0")[0] == "22003"
    assert sqlstate_of(table, "UPDATE tt SET b = i + 1")[0] == "22003"
    # a parameter takes the column's type
    assert sqlstate_of(table, "SELECT i + $1 FROM tt", (1,))[0] == "22003"
    assert run(table, "SELECT b + $1 FROM tt", (1,)) == [(2147483648,), (2147483648,)]


def test_overflow_follows_a_schema_change(table: apsw.Connection) -> None:
    run(table, "CREATE TABLE w (x int)")
    run(table, "INSERT INTO w VALUES (2147483647)")
    statement = translate_statement("SELECT x + 1 FROM w")
    with pytest.raises(SqlFunctionError):
        carry_out(table, statement)
    run(table, "DROP TABLE w")
    run(table, "CREATE TABLE w (x bigint)")
    run(table, "INSERT INTO w VALUES (2147483647)")
    assert carry_out(table, statement) == [(2147483648,)]


def test_storing_out_of_range_into_int4_is_refused(table: apsw.Connection) -> None:
    assert sqlstate_of(table, "INSERT INTO tt (i) VALUES (2147483648)")[0] == "22003"
    assert sqlstate_of(table, "INSERT INTO tt (s) VALUES (40000)") == (
        "22003", "smallint out of range")
    assert sqlstate_of(table, "INSERT INTO tt (i) SELECT b * 1000000000 FROM tt")[0] == "22003"
    assert sqlstate_of(table, "UPDATE tt SET i = b * 1000000000")[0] == "22003"
    run(table, "UPDATE tt SET b = 2147483648")
    assert sqlstate_of(table, "UPDATE tt SET i = b")[0] == "22003"  # int8 into int4
    run(table, "UPDATE tt SET b = 7")
    run(table, "UPDATE tt SET i = b, n = d")
    assert run(table, "SELECT i, n FROM tt") == [(7, "2.50"), (7, "3.50")]


@pytest.mark.parametrize("sql", ["SELECT $0", "SELECT $0 + 1", "SELECT $foo"])
def test_a_parameter_that_is_no_positional_parameter_has_no_known_type(sql: str) -> None:
    """Regression (protocol fuzz test): ``$0`` took the last literal's kind, or raised
    IndexError, which closed the connection with an internal error."""
    import sqlglot

    from borealis.protocol.postgres import exprtypes

    node = sqlglot.parse_one(sql, read="postgres").expressions[0]
    for kinds in ((), ("int4",)):  # before: IndexError, or the last literal's int4
        assert exprtypes.derive(node, kinds=kinds) == exprtypes.NOT_KNOWN
