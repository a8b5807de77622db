"""PostgreSQL to SQLite translation: statement splitting, literal normalisation, the
rewrite of each supported construct, and refusals with the right SQLSTATE.

The translated SQL is run on a real SQLite connection (with the session's functions and the
catalog, as the server sets up each session) where the meaning matters, rather than compared
as text only; ``run`` carries out a statement's action (sequences, table rebuilds) with
``schema``'s functions, as the server does. The expected values are PostgreSQL 15's for the
same statements. The client-traffic test replays every statement that psql, psycopg,
asyncpg, SQLAlchemy and pgbench sent to a real PostgreSQL 15 (shared/reference).
"""

from __future__ import annotations

import re
from pathlib import Path

import apsw
import pytest

from borealis.errors import SqlError
from borealis.protocol.postgres import alter, catalog, schema, sqltext
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.session import SqlFunctionError, SqlSession
from borealis.protocol.postgres.translate import (
    CopyAction,
    ExplainAction,
    Kind,
    OutputColumn,
    SequenceOp,
    SetAction,
    ShowAction,
    Statement,
    TransactionAction,
    TranslationError,
    Translator,
    translate_statement,
)


def carry_out(conn: apsw.Connection, statement: Statement,
              params: tuple[object, ...] = ()) -> list[tuple]:
    """Run a translated statement as the server does: setup, SQL, then its action."""
    for setup in statement.setup:
        conn.execute(setup)
    rows: list[tuple] = []
    for text in statement.sqlite:
        rows = list(conn.execute(text, params or None))
    action = statement.action
    if isinstance(action, SequenceOp):
        if action.op == "alter":
            alter.run(conn, action.name, *action.args)
        elif action.op == "alter_sequence":
            schema.alter_sequence(conn, action.name, *action.args)
        elif action.op == "create_sequence":
            schema.create_sequence(conn, action.name, dict(action.args[0]), action.args[1])
        elif action.op == "drop_sequence":
            schema.drop_sequences(conn, *action.args)
        elif action.op == "drop_owned":
            schema.drop_owned_sequences(conn, action.args)
        elif action.op == "truncate" and action.args[1]:
            schema.restart_owned_sequences(conn, action.args[0])
    return rows


def run(conn: apsw.Connection, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """A statement with the client's own parameters (the extended protocol)."""
    return carry_out(conn, translate_statement(sql), params)


def simple(conn: apsw.Connection, sql: str) -> list[tuple]:
    """A statement as psql sends it: its literals made parameters (the simple protocol)."""
    statement, values = Translator().translate_simple(sql)
    return carry_out(conn, statement, values)


@pytest.fixture
def conn() -> apsw.Connection:
    connection = apsw.Connection(":memory:")
    connection.execute("PRAGMA foreign_keys=ON; PRAGMA case_sensitive_like=ON")
    SqlSession(user="postgres", database="postgres").register(connection)
    catalog.install(connection, database="postgres", user="postgres")
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
    assert big is not None and big.values == (3000000000, "1.5", "a\nb")  # exact text
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
    assert key.action == SequenceOp("alter", "pgbench_branches",
                                    (False, ("primary_key", ("bid",), "")))
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
    for sql in ("CREATE SCHEMA other", "DROP SEQUENCE s CASCADE",
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


# -- the clients' own statements -------------------------------------------------------

TRAFFIC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "client-traffic"
TRAFFIC_ORDER = ("psql_dt", "psql_d", "psql_dplain", "psql_di", "psql_dn", "psql_l",
                 "psycopg", "asyncpg", "asyncpg_custom", "sqla_psycopg", "sqla_asyncpg",
                 "pgbench_init", "pgbench_init_G", "pgbench_simple", "pgbench_extended",
                 "pgbench_prepared", "pgbench_selectonly")
"""The logs in an order whose DDL comes first (pgbench's runs need pgbench -i's tables)."""
_LOG_LINE = re.compile(r"^[^|]*\|[^|]*\|[^|]*\| (LOG|DETAIL|ERROR|STATEMENT|HINT|NOTICE|"
                       r"WARNING):  (.*)$")
_LOG_PARAMETER = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')")
REFUSED_TRAFFIC = {  # statement's start -> SQLSTATE: asyncpg_custom's enum type
    "drop type if exists mood cascade": "0A000",  # DROP ... CASCADE, DROP TYPE
    "create type mood as enum": "0A000",  # CREATE TYPE: Borealis has no enum types
    "select 'a'::mood": "42704",  # ... so the type does not exist
}


def traffic(path: Path) -> list[tuple[str, str, tuple[str | None, ...]]]:
    """(how it was sent: 'statement' or 'execute', SQL, parameter texts) of a server log
    written with log_statement=all and log_line_prefix '%a|%d|%c| '."""
    out: list[list] = []
    current: list | None = None
    for line in path.read_text().splitlines():
        match = _LOG_LINE.match(line)
        if match is not None:
            if current is not None:
                out.append(current)
                current = None
            kind, text = match.groups()
            logged = re.match(r"(statement|execute [^:]*): (.*)$", text)
            if kind == "LOG" and logged is not None:
                current = [logged.group(1).split()[0], logged.group(2), ()]
            elif kind == "DETAIL" and text.startswith("parameters:") and out:
                out[-1][2] = tuple(None if v == "NULL" else v[1:-1].replace("''", "'")
                                   for _, v in _LOG_PARAMETER.findall(text))
        elif line.startswith("\t") and current is not None:
            current[1] += "\n" + line[1:]
    if current is not None:
        out.append(current)
    return [tuple(entry) for entry in out]  # type: ignore[misc]


@pytest.mark.skipif(not TRAFFIC.is_dir(), reason="shared/reference is not beside the project")
def test_every_logged_client_statement_runs_or_is_refused_with_0A000(
        conn: apsw.Connection) -> None:
    """Each statement psql (\\d, \\dt, \\di, \\dn, \\l), psycopg, asyncpg (its type
    introspection), SQLAlchemy (reflection) and pgbench sent to PostgreSQL 15 translates and
    runs here, with its logged parameters typed as the server types them; the only
    refusals are asyncpg's enum type, which Borealis does not have."""
    translator = Translator()
    ran = 0
    for name in TRAFFIC_ORDER:
        for how, sql, texts in traffic(TRAFFIC / f"{name}.log"):
            for one in sqltext.split(sql):
                refused = next((code for start, code in REFUSED_TRAFFIC.items()
                                if one.strip().startswith(start)), None)
                try:
                    if how == "statement":
                        statement, values = translator.translate_simple(one)
                    else:
                        statement, values = translator.translate(one), ()
                        if statement.param_count:
                            oids = schema.parameter_types(conn, statement.param_hints, ())
                            values = tuple(
                                None if t is None else pgtypes.decode_text(
                                    pgtypes.BY_OID[oid], t.encode())
                                for oid, t in zip(oids, texts, strict=False))
                except TranslationError as exc:
                    assert refused == exc.sqlstate, (name, one, exc)
                    continue
                assert refused is None, (name, one)
                if statement.kind in (Kind.QUERY, Kind.DML, Kind.DDL):
                    carry_out(conn, statement, tuple(values))
                    ran += 1
    assert ran > 100


# -- the features applications use ----------------------------------------------------

def test_serial_and_identity_columns_draw_from_their_sequences(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE s (id serial PRIMARY KEY, big bigserial, "
              "ident int GENERATED BY DEFAULT AS IDENTITY, v text)")
    assert run(conn, "INSERT INTO s (v) VALUES ('a'), ('b') RETURNING id, big, ident") == [
        (1, 1, 1), (2, 2, 2)]
    assert run(conn, "SELECT currval('s_id_seq'), lastval()") == [(2, 2)]
    assert run(conn, "SELECT setval('s_id_seq', 10)") == [(10,)]
    assert run(conn, "INSERT INTO s (v) VALUES ('c') RETURNING id") == [(11,)]
    assert run(conn, "SELECT pg_get_serial_sequence('s', 'id')") == [("public.s_id_seq",)]
    run(conn, "TRUNCATE s RESTART IDENTITY")
    assert run(conn, "INSERT INTO s (v) VALUES ('d') RETURNING id") == [(1,)]


def test_sequences_create_nextval_setval_drop(conn: apsw.Connection) -> None:
    run(conn, "CREATE SEQUENCE counter START 5 INCREMENT BY 5")
    assert run(conn, "SELECT nextval('counter'), nextval('counter')") == [(5, 10)]
    assert run(conn, "SELECT currval('counter')") == [(10,)]
    assert run(conn, "SELECT setval('counter', 100, false)") == [(100,)]
    assert run(conn, "SELECT nextval('counter')") == [(100,)]
    run(conn, "DROP SEQUENCE counter")
    with pytest.raises(SqlFunctionError) as failure:
        run(conn, "SELECT nextval('counter')")
    assert failure.value.sqlstate == "42P01"


def test_upserts_and_returning(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE kv (k text PRIMARY KEY, v int NOT NULL, n int DEFAULT 0)")
    assert simple(conn, "INSERT INTO kv (k, v) VALUES ('a', 1) RETURNING k, v, n") == [
        ("a", 1, 0)]
    upsert = ("INSERT INTO kv (k, v) VALUES ('a', 5) ON CONFLICT (k) DO UPDATE "
              "SET v = kv.v + excluded.v, n = kv.n + 1 RETURNING v, n")
    assert simple(conn, upsert) == [(6, 1)]
    assert simple(conn, "INSERT INTO kv (k, v) VALUES ('a', 9) ON CONFLICT DO NOTHING "
                        "RETURNING k") == []
    assert simple(conn, "UPDATE kv SET v = v * 2 WHERE k = 'a' RETURNING v") == [(12,)]
    assert simple(conn, "DELETE FROM kv WHERE v > 10 RETURNING k") == [("a",)]


def test_booleans_are_booleans(conn: apsw.Connection) -> None:
    statement = translate_statement("SELECT true, 1 = 1, NOT false, 'x' IS NULL, "
                                    "CASE WHEN 1 > 0 THEN true ELSE false END, "
                                    "bool_and(true), every(1 < 2)")
    assert statement.columns is not None
    assert {c.type_oid for c in statement.columns} == {16}
    run(conn, "CREATE TABLE flags (f boolean, g boolean DEFAULT 'yes')")
    simple(conn, "INSERT INTO flags (f) VALUES ('no'), (true), ('t')")
    assert simple(conn, "SELECT f, g FROM flags WHERE f = 'true' OR f IS FALSE") == [
        (0, 1), (1, 1), (1, 1)]
    decltype = conn.execute("SELECT type FROM pragma_table_info('flags')").fetchall()[0][0]
    assert pgtypes.type_from_decltype(decltype)[0].name == "bool"


def test_numeric_is_exact(conn: apsw.Connection) -> None:
    assert simple(conn, "SELECT 0.1 + 0.2, 1.10 * 3, 10.0 / 4, 1 / 3.0, 7.5 % 2, -1.5") == [
        ("0.3", "3.30", "2.5000000000000000", "0.33333333333333333333", "1.5", "-1.5")]
    run(conn, "CREATE TABLE prices (id int, p numeric(10,2))")
    simple(conn, "INSERT INTO prices VALUES (1, 10.5), (2, 9), (3, 0.125), (4, NULL)")
    assert simple(conn, "SELECT p FROM prices ORDER BY id") == [
        ("10.50",), ("9.00",), ("0.13",), (None,)]  # numeric(10,2): rounded half away
    # compared and sorted as numbers, not as text ('10.50' < '9.00')
    assert simple(conn, "SELECT id FROM prices WHERE p > 5 ORDER BY p DESC") == [(1,), (2,)]
    assert simple(conn, "SELECT id FROM prices WHERE p = 10.5") == [(1,)]
    assert simple(conn, "SELECT min(p), max(p), sum(p), avg(p), count(p) FROM prices") == [
        ("0.13", "10.50", "19.63", "6.5433333333333333", 3)]
    assert simple(conn, "SELECT sum(id), avg(id) FROM prices") == [(10, "2.5000000000000000")]
    assert simple(conn, "SELECT id, sum(p) OVER (ORDER BY id ROWS 1 PRECEDING) FROM prices "
                        "ORDER BY id") == [(1, "10.50"), (2, "19.50"), (3, "9.13"), (4, "0.13")]
    simple(conn, "UPDATE prices SET p = p * 1.1 WHERE id = 1")
    assert simple(conn, "SELECT p FROM prices WHERE id = 1") == [("11.55",)]
    assert simple(conn, "SELECT id FROM prices WHERE p * 2 > 20 ORDER BY p * 2") == [(1,)]
    with pytest.raises(SqlFunctionError) as failure:
        simple(conn, "SELECT 1 / 0")
    assert failure.value.sqlstate == "22012"
    with pytest.raises(SqlFunctionError) as failure:  # no float-rounded digits: refused
        simple(conn, "SELECT sqrt(2.0)")
    assert failure.value.sqlstate == "0A000"
    assert simple(conn, "SELECT sqrt(16), round(2.5), round(2.345, 2), trunc(-2.7)") == [
        (4.0, "3", "2.35", "-2")]


def test_timestamps_dates_and_intervals(conn: apsw.Connection) -> None:
    session = SqlSession(user="postgres", database="postgres")
    session.register(conn)
    session.begin_statement(in_transaction=False)
    now, current = simple(conn, "SELECT now(), CURRENT_TIMESTAMP")[0]
    assert now == current and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?", now)
    statement = translate_statement("SELECT now(), CURRENT_TIMESTAMP")
    assert statement.columns is not None
    assert [(c.name, c.type_oid) for c in statement.columns] == [
        ("now", 1184), ("current_timestamp", 1184)]
    assert "_pg_current_timestamp" in statement.sqlite[0].lower()
    run(conn, "CREATE TABLE ev (id int, at timestamptz, day date, span interval)")
    simple(conn, "INSERT INTO ev VALUES (1, '2024-01-31 10:00:00+02', '2024-01-31', "
                 "'1 day 02:00:00')")
    assert simple(conn, "SELECT at, day, span FROM ev") == [
        ("2024-01-31 08:00:00", "2024-01-31", "P1DT2H")]  # storage: UTC, ISO 8601
    assert simple(conn, "SELECT id FROM ev WHERE at = '2024-01-31T08:00:00Z'") == [(1,)]
    assert simple(conn, "SELECT at + interval '1 month', day + 1, day - date '2024-01-01', "
                        "at - timestamptz '2024-01-30 08:00:00+00', span * 2 FROM ev") == [
        ("2024-02-29 08:00:00", "2024-02-01", 30, "P1D", "P2DT4H")]
    assert simple(conn, "SELECT extract(year FROM at), extract(epoch FROM day), "
                        "date_trunc('month', at) FROM ev") == [
        (2024, "1706659200", "2024-01-01 00:00:00")]


def test_json_and_jsonb_operators(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE docs (id int, d jsonb)")
    simple(conn, """INSERT INTO docs VALUES (1, '{"a": {"b": [1, 2.50, "x"]}, "n": 1}'),
                    (2, '{"tags": ["red", "blue"], "ok": true}'), (3, NULL)""")
    assert simple(conn, "SELECT d -> 'a', d ->> 'n', d #> '{a,b,1}', d #>> '{a,b,2}', "
                        "d -> 'a' -> 'b' ->> 0 FROM docs WHERE id = 1") == [
        ('{"b": [1, 2.50, "x"]}', "1", "2.50", "x", "1")]
    assert simple(conn, "SELECT id FROM docs WHERE d ->> 'n' = '1'") == [(1,)]
    assert simple(conn, """SELECT id FROM docs WHERE d @> '{"tags": ["blue"]}'""") == [(2,)]
    assert simple(conn, "SELECT id FROM docs WHERE d ? 'ok' OR d ?| array['n']") == [
        (1,), (2,)]
    assert simple(conn, "SELECT d ->> 'ok', jsonb_typeof(d -> 'tags') FROM docs "
                        "WHERE id = 2") == [("true", "array")]
    assert simple(conn, "SELECT jsonb_build_object('k', 1, 'b', 1 = 1, 'n', NULL)") == [
        ('{"b": true, "k": 1, "n": null}',)]
    statement = translate_statement("SELECT d -> 'a', d ->> 'a' FROM docs")
    assert statement.columns is not None
    assert [(c.name, c.type_oid) for c in statement.columns] == [("?column?", 0),
                                                                  ("?column?", 25)]
    # -> gives its operand's type (json or jsonb): the schema decides it, at Describe
    assert schema.result_types(conn, statement.columns, ())[0] == (3802, -1)


def test_bytea_and_uuid(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE blobs (id uuid DEFAULT gen_random_uuid(), data bytea)")
    simple(conn, "INSERT INTO blobs (data) VALUES ('\\x0102ff')")
    simple(conn, "INSERT INTO blobs (id, data) VALUES "
                 "('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', decode('aGk=', 'base64'))")
    rows = simple(conn, "SELECT id, data, encode(data, 'hex') FROM blobs ORDER BY data")
    assert rows[0][1:] == (b"\x01\x02\xff", "0102ff")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        rows[0][0])
    assert rows[1] == ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", b"hi", "6869")
    assert simple(conn, "SELECT data FROM blobs WHERE id = "
                        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'") == [(b"hi",)]


def test_generate_series_in_from_and_in_the_select_list(conn: apsw.Connection) -> None:
    assert simple(conn, "SELECT * FROM generate_series(1, 3)") == [(1,), (2,), (3,)]
    assert simple(conn, "SELECT g, g * 2 AS d FROM generate_series(5, 1, -2) AS g") == [
        (5, 10), (3, 6), (1, 2)]
    assert simple(conn, "SELECT generate_series(1, 2), 'x'") == [(1, "x"), (2, "x")]
    assert simple(conn, "SELECT * FROM generate_series(1.0, 2, 0.5) WITH ORDINALITY "
                        "AS s(v, n)") == [("1.0", 1), ("1.5", 2), ("2.0", 3)]
    assert simple(conn, "SELECT * FROM generate_series('2024-01-01'::timestamp, "
                        "'2024-01-02', '12 hours')") == [
        ("2024-01-01 00:00:00",), ("2024-01-01 12:00:00",), ("2024-01-02 00:00:00",)]
    run(conn, "CREATE TABLE n (k int)")
    simple(conn, "INSERT INTO n VALUES (1), (3)")
    assert simple(conn, "SELECT k, s FROM n, generate_series(1, k) s ORDER BY k, s") == [
        (1, 1), (3, 1), (3, 2), (3, 3)]  # LATERAL: the series reads the row before it
    # pgbench -i -I G: INSERT ... SELECT from a series
    run(conn, "CREATE TABLE acc (aid int, bid int)")
    simple(conn, "insert into acc(aid, bid) select aid, (aid - 1) / 2 + 1 "
                 "from generate_series(1, 4) as aid")
    assert simple(conn, "SELECT aid, bid FROM acc") == [(1, 1), (2, 1), (3, 2), (4, 2)]
    statement = translate_statement("SELECT generate_series(1, 3)")
    assert statement.columns is not None
    assert (statement.columns[0].name, statement.columns[0].type_oid) == ("generate_series",
                                                                          23)


def test_arrays_aggregates_and_unnest(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE tags (id int, t text[])")
    simple(conn, "INSERT INTO tags VALUES (1, '{a,b}'), (2, ARRAY['c']), (3, '{}')")
    assert simple(conn, "SELECT t[1], t[2], t[0], array_length(t, 1), cardinality(t) "
                        "FROM tags ORDER BY id") == [
        ("a", "b", None, 2, 2), ("c", None, None, 1, 1), (None, None, None, None, 0)]
    assert simple(conn, "SELECT id FROM tags WHERE 'c' = ANY (t)") == [(2,)]
    assert simple(conn, "SELECT id, unnest(t) FROM tags ORDER BY 1, 2") == [
        (1, "a"), (1, "b"), (2, "c")]
    assert simple(conn, "SELECT array_agg(id ORDER BY id DESC), string_agg(t[1], '-') "
                        "FROM tags") == [("[3,2,1]", "a-c")]
    assert simple(conn, "SELECT array_agg(id) FROM tags WHERE false") == [(None,)]
    assert simple(conn, "SELECT ARRAY(SELECT id FROM tags WHERE id > 1 ORDER BY id DESC), "
                        "ARRAY(SELECT 1 WHERE false)") == [("[3,2]", "[]")]
    assert simple(conn, "SELECT generate_subscripts(t, 1) FROM tags WHERE id = 1") == [
        (1,), (2,)]


def test_int2vector_subscripts_start_at_0(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE pair (a int, b int, c int)")
    run(conn, "CREATE INDEX pair_cb ON pair (c, b)")
    # indkey is an int2vector: its subscripts run from 0 (array_upper is n - 1)
    assert run(conn, "SELECT i.indkey[0], i.indkey[1], array_upper(i.indkey, 1), "
                     "array_lower(i.indkey, 1) FROM pg_catalog.pg_index i "
                     "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
                     "WHERE c.relname = 'pair_cb'") == [(3, 2, 1, 0)]
    assert run(conn, "SELECT a.attname FROM pg_catalog.pg_index i, pg_catalog.pg_class c, "
                     "pg_catalog.pg_attribute a, generate_subscripts(i.indkey, 1) AS k "
                     "WHERE c.oid = i.indexrelid AND c.relname = 'pair_cb' "
                     "AND a.attrelid = i.indrelid AND a.attnum = i.indkey[k] "
                     "ORDER BY k") == [("c",), ("b",)]


def test_text_functions_keep_postgresql_s_edge_cases(conn: apsw.Connection) -> None:
    assert simple(conn, "SELECT E'a\\tb', 'a_b' LIKE 'a\\_b', 'axb' LIKE 'a\\_b', "
                        "'ÉCOLE' ILIKE 'école', upper('straße'), "
                        "substring('abcdef' FROM -1 FOR 3), lpad('7', 3, '0')") == [
        ("a\tb", 1, 0, 1, "STRAßE", "a", "007")]


def test_session_statements_and_functions(conn: apsw.Connection) -> None:
    assert translate_statement("SET application_name = 'x'").action == SetAction(
        "application_name", "x")
    assert translate_statement("SHOW server_version").action == ShowAction("server_version")
    assert run(conn, "SELECT version() LIKE 'PostgreSQL 15%', current_schema(), "
                     "current_schema, current_user, current_database()") == [
        (1, "public", "public", "postgres", "postgres")]
    assert run(conn, "SELECT set_config('application_name', 'app', false), "
                     "current_setting('application_name')") == [("app", "app")]
    assert run(conn, "SELECT current_setting('default_table_access_method')") == [("heap",)]
    for maintenance, tag in (("VACUUM", "VACUUM"), ("ANALYZE t", "ANALYZE"),
                             ("VACUUM ANALYZE t", "VACUUM")):
        statement = translate_statement(maintenance)
        assert (statement.kind, statement.tag, statement.sqlite) == (Kind.UTILITY, tag, ())


def test_ddl_truncate_drop_and_add_primary_key(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE a1 (x int, y numeric(5,2) DEFAULT 0, code char(3))")
    run(conn, "CREATE TABLE a2 (x int)")
    simple(conn, "INSERT INTO a1 (x, code) VALUES (2, 'ab'), (1, 'cd')")
    assert simple(conn, "SELECT y, code FROM a1 WHERE code = 'ab'") == [("0.00", "ab ")]
    run(conn, "ALTER TABLE a1 ADD PRIMARY KEY (x)")
    with pytest.raises(apsw.ConstraintError):
        simple(conn, "INSERT INTO a1 (x) VALUES (1)")
    run(conn, "TRUNCATE a1, a2")
    assert simple(conn, "SELECT count(*) FROM a1") == [(0,)]
    drop = translate_statement("DROP TABLE a1, a2")
    assert drop.sqlite == ('DROP TABLE "a1"', 'DROP TABLE "a2"')
    carry_out(conn, drop)
    assert list(conn.execute("SELECT name FROM sqlite_schema WHERE name LIKE 'a_'")) == []


def test_what_cannot_be_run_exactly_is_refused_with_0A000() -> None:
    for sql, feature in (
            ("SELECT a[1:2] FROM t", "array slices"),
            ("SELECT count(*), generate_series(1, 2) FROM t", "set-returning function"),
            ("SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.a = t.a) x", "LATERAL"),
            ("SELECT x > ALL (SELECT 1)", ""),
            ("ALTER TABLE t ALTER COLUMN c SET STATISTICS 100", "ALTER"),
            ("ALTER TABLE t DROP CONSTRAINT c CASCADE", "DROP CONSTRAINT ... CASCADE"),
            ("CREATE TYPE mood AS ENUM ('a')", "CREATE TYPE"),
            ("SELECT a FROM t WHERE a SIMILAR TO 'x'", "similar to")):
        with pytest.raises(TranslationError) as failure:
            translate_statement(sql)
        assert failure.value.sqlstate == "0A000", sql
        assert feature.lower() in str(failure.value).lower(), (sql, str(failure.value))


def test_malformed_and_too_deep_statements_are_errors_not_crashes() -> None:
    for sql in ("SELECT d FROM t WHERE d ? ", "CREATE UNIQUE default ON t1 (b)",
                "ALTER TABLE t1 ADD COLUMN * jsonb", "select e'\\u12'"):
        with pytest.raises(TranslationError) as failure:
            Translator().translate_simple(sql)
        assert failure.value.sqlstate in ("42601", "22025", "0A000"), sql
    with pytest.raises(TranslationError) as failure:
        translate_statement("SELECT " + "(" * 5000 + "1" + ")" * 5000)
    assert failure.value.sqlstate in ("54001", "42601")


def test_pgbench_s_statements_stay_shape_cache_hits() -> None:
    """pgbench -M simple sends each statement with new literals: one translation a shape."""
    translator = Translator()
    for i in range(200):
        for sql in (f"UPDATE pgbench_accounts SET abalance = abalance + {i - 100} "
                    f"WHERE aid = {i + 1}",
                    f"SELECT abalance FROM pgbench_accounts WHERE aid = {i + 1}",
                    f"UPDATE pgbench_tellers SET tbalance = tbalance + {i} WHERE tid = {i}",
                    f"UPDATE pgbench_branches SET bbalance = bbalance + {i} WHERE bid = 1",
                    f"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES "
                    f"({i}, 1, {i * 7}, {i - 5}, CURRENT_TIMESTAMP)"):
            translator.translate_simple(sql)
    # a negative literal is its own shape (abalance + -$1): the UPDATE of the accounts and
    # the INSERT each have two, 7 shapes in all
    assert translator.misses == 7
    assert translator.hits == 200 * 5 - 7


def test_unnest_of_several_arrays_and_with_ordinality(conn: apsw.Connection) -> None:
    """Side by side, the shorter padded with NULLs, as PostgreSQL does (Django 5.2's
    bulk_create inserts through it); WITH ORDINALITY adds the row number."""
    assert run(conn, "SELECT * FROM unnest(ARRAY[1, 2, 3], ARRAY['a', 'b'])") == [
        (1, "a"), (2, "b"), (3, None)]
    assert run(conn, "SELECT n, s FROM unnest(ARRAY[1, 2], ARRAY['x', 'y']) AS u(n, s) "
                     "ORDER BY n DESC") == [(2, "y"), (1, "x")]
    assert run(conn, "SELECT * FROM unnest(ARRAY[5, 6]) WITH ORDINALITY") == [(5, 1), (6, 2)]
    assert run(conn, "SELECT * FROM unnest(ARRAY[5], ARRAY[7, 8]) WITH ORDINALITY AS t(a, b, i)"
               ) == [(5, 7, 1), (None, 8, 2)]
    run(conn, "CREATE TABLE perm (name text, ct int, code text)")
    run(conn, "INSERT INTO perm (name, ct, code) SELECT * FROM unnest($1::varchar[], "
              "$2::integer[], $3::varchar[])", ('{"Can add","Can view"}', "{1,2}", "{add,view}"))
    assert run(conn, "SELECT * FROM perm ORDER BY ct") == [("Can add", 1, "add"),
                                                           ("Can view", 2, "view")]


def test_explain_shows_the_plan_of_the_translated_statement(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE ex (id int PRIMARY KEY, c int, v numeric)")
    run(conn, "CREATE INDEX ex_c ON ex (c)")
    statement = translate_statement("EXPLAIN (COSTS OFF) SELECT * FROM ex WHERE c = $1 "
                                    "AND v > 1")
    assert statement.columns == (OutputColumn("QUERY PLAN", 25),)
    assert statement.param_count == 1
    assert isinstance(statement.action, ExplainAction)
    plan = schema.query_plan(conn, statement.action.sql, (5,))
    assert plan == [("SEARCH ex USING INDEX ex_c (c=?)",)], plan
    for refused in ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN (ANALYZE) SELECT 1",
                    "EXPLAIN (FORMAT JSON) SELECT 1"):
        with pytest.raises(TranslationError) as failure:
            translate_statement(refused)
        assert failure.value.sqlstate == "0A000", refused


def test_alter_sequence_as_postgres_moves_it(conn: apsw.Connection) -> None:
    """The same statements on PostgreSQL 15 gave these values and errors."""
    run(conn, "CREATE SEQUENCE s")
    run(conn, "CREATE TABLE sq (id int)")
    got = [run(conn, "SELECT nextval('s'), nextval('s')")]
    for change, query in (("RESTART WITH 10", "nextval('s')"), ("INCREMENT BY 5", "nextval('s')"),
                          ("RESTART", "nextval('s')"), ("START WITH 100 RESTART", "nextval('s')"),
                          ("MAXVALUE 110 CYCLE", "nextval('s'), nextval('s'), nextval('s')")):
        run(conn, f"ALTER SEQUENCE s {change}")
        got.append(run(conn, f"SELECT {query}"))
    assert got == [[(1, 2)], [(10,)], [(15,)], [(1,)], [(100,)], [(105, 110, 1)]]
    run(conn, "ALTER SEQUENCE s OWNED BY sq.id")
    for change, sqlstate in (("MINVALUE 200", "22023"), ("RESTART WITH 500", "22023"),
                             ("INCREMENT 0", "22023"), ("OWNED BY sq.nope", "42703")):
        with pytest.raises(SqlError) as failure:
            run(conn, f"ALTER SEQUENCE s {change}")
        assert failure.value.sqlstate == sqlstate, change
    with pytest.raises(SqlError) as missing:
        run(conn, "ALTER SEQUENCE nope RESTART")
    assert missing.value.sqlstate == "42P01"
    run(conn, "ALTER SEQUENCE IF EXISTS nope RESTART")
    with pytest.raises(TranslationError) as refused:
        translate_statement("ALTER SEQUENCE s RENAME TO t")
    assert refused.value.sqlstate == "0A000"
