"""psycopg 3 against a Borealis writer and reader: the simple and extended protocols,
server-side prepared statements (``prepare_threshold=0``), binary results and parameters,
transactions with savepoints and the failed state, COPY in both directions, cancel,
typed errors, and writes refused on the reader with 25006."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time
import uuid

import psycopg
import pytest
from compat_cluster import Cluster
from psycopg import errors, sql


def connect(cluster: Cluster, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(cluster.dsn(), **kwargs)  # type: ignore[arg-type]


def test_simple_and_extended_queries_return_typed_values(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select %s::int + 1, %s", (1, "x")).fetchone() == (2, "x")
        conn.execute("CREATE TABLE pc_items (id serial PRIMARY KEY, name text NOT NULL, "
                     "price numeric(10,2), active boolean DEFAULT true, "
                     "added timestamptz DEFAULT now(), tag uuid, data bytea)")
        tag = uuid.uuid4()
        row = conn.execute(
            "INSERT INTO pc_items (name, price, tag, data) VALUES (%s, %s, %s, %s) "
            "RETURNING id, name, price, active, tag, data",
            ("apple", decimal.Decimal("1.10"), tag, b"\x00\x01")).fetchone()
        assert row == (1, "apple", decimal.Decimal("1.10"), True, tag, b"\x00\x01")
        added = conn.execute("SELECT added FROM pc_items").fetchone()
        assert added is not None and isinstance(added[0], dt.datetime)
        assert abs((dt.datetime.now(dt.UTC) - added[0]).total_seconds()) < 60
        # simple protocol through a client-side cursor
        with psycopg.ClientCursor(conn) as cursor:
            cursor.execute("SELECT name, price FROM pc_items WHERE id = %s", (1,))
            assert cursor.fetchone() == ("apple", decimal.Decimal("1.10"))


def test_prepared_statements_and_binary_formats(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True, prepare_threshold=0) as conn:
        conn.execute("CREATE TABLE pc_binary (k integer PRIMARY KEY, v bigint, f double "
                     "precision, t text, b boolean)")
        for k in range(5):
            conn.execute("INSERT INTO pc_binary VALUES (%s, %s, %s, %s, %s)",
                         (k, k * 10**10, k / 4, f"t{k}", k % 2 == 0))
        with conn.cursor(binary=True) as cursor:
            cursor.execute("SELECT k, v, f, t, b FROM pc_binary WHERE k >= %s ORDER BY k",
                           (3,))
            assert cursor.fetchall() == [(3, 3 * 10**10, 0.75, "t3", False),
                                         (4, 4 * 10**10, 1.0, "t4", True)]
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pc_binary WHERE b", binary=True)
            assert cursor.fetchone() == (3,)


def test_transactions_savepoints_and_the_failed_state(cluster: Cluster) -> None:
    with connect(cluster) as conn:
        conn.execute("CREATE TABLE pc_tx (id integer PRIMARY KEY, v text)")
        conn.commit()
        with conn.transaction():
            conn.execute("INSERT INTO pc_tx VALUES (1, 'kept')")
            with pytest.raises(errors.UniqueViolation), conn.transaction():  # a savepoint
                conn.execute("INSERT INTO pc_tx VALUES (2, 'undone')")
                conn.execute("INSERT INTO pc_tx VALUES (1, 'duplicate')")
        assert conn.execute("SELECT id, v FROM pc_tx ORDER BY id").fetchall() == [(1, "kept")]
        conn.commit()
        with pytest.raises(errors.UndefinedTable):
            conn.execute("SELECT * FROM pc_missing")
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM pc_tx").fetchone() == (1,)


def test_copy_in_and_out_in_text_and_csv(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE pc_copy (id integer, name text, score numeric, seen date)")
        with conn.cursor() as cursor:
            with cursor.copy("COPY pc_copy (id, name, score, seen) FROM STDIN") as copy:
                copy.write_row((1, "tab\there", decimal.Decimal("2.5"), dt.date(2024, 1, 2)))
                copy.write_row((2, None, None, None))
            with cursor.copy("COPY pc_copy FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write('3,"comma, quote ""x""",1.25,2024-02-03\n')
            rows = conn.execute("SELECT id, name, score, seen FROM pc_copy ORDER BY id"
                                ).fetchall()
            assert rows == [(1, "tab\there", decimal.Decimal("2.5"), dt.date(2024, 1, 2)),
                            (2, None, None, None),
                            (3, 'comma, quote "x"', decimal.Decimal("1.25"),
                             dt.date(2024, 2, 3))]
            out = b""
            with cursor.copy("COPY (SELECT id, name FROM pc_copy ORDER BY id) TO STDOUT "
                             "WITH (FORMAT csv, HEADER true)") as copy:
                for chunk in copy:
                    out += bytes(chunk)
            assert out.decode().splitlines() == [
                "id,name", "1,tab\there", "2,", '3,"comma, quote ""x"""']
        with pytest.raises(errors.InvalidTextRepresentation), conn.cursor() as cursor, \
                cursor.copy("COPY pc_copy (id) FROM STDIN") as copy:
            copy.write("not a number\n")
        assert conn.execute("SELECT count(*) FROM pc_copy").fetchone() == (3,)


def test_cancel_stops_a_running_statement(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                         "SELECT count(*) FROM n")
        assert time.monotonic() - started < 10
        timer.join()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_server_side_cursors_fetch_forward_and_scroll(cluster: Cluster) -> None:
    with connect(cluster) as conn:
        conn.execute("CREATE TABLE pc_cursor (i integer)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO pc_cursor VALUES (%s)", [(i,) for i in range(25)])
        conn.commit()
        with conn.cursor(name="walk") as named:  # DECLARE ... CURSOR, then FETCH
            named.itersize = 10
            named.execute("SELECT i, i * 2 FROM pc_cursor WHERE i >= %s ORDER BY i", (5,))
            assert named.fetchone() == (5, 10)
            assert named.fetchmany(3) == [(6, 12), (7, 14), (8, 16)]
            assert [row[0] for row in named] == list(range(9, 25))
        conn.commit()
        with conn.cursor(name="back", scrollable=True) as scroll:  # DECLARE ... SCROLL
            scroll.execute("SELECT i FROM pc_cursor ORDER BY i")
            assert scroll.fetchmany(3) == [(0,), (1,), (2,)]
            scroll.scroll(-2)                      # MOVE BACKWARD 2
            assert scroll.fetchone() == (1,)
            scroll.scroll(20, mode="absolute")     # MOVE ABSOLUTE 20
            assert scroll.fetchone() == (20,)
            assert conn.execute("FETCH LAST FROM back").fetchall() == [(24,)]
            assert conn.execute("FETCH BACKWARD 2 FROM back").fetchall() == [(23,), (22,)]
        conn.commit()
        with conn.cursor(name="ahead", scrollable=False) as ahead:  # NO SCROLL
            ahead.execute("SELECT i FROM pc_cursor ORDER BY i")
            assert ahead.fetchone() == (0,)
            with pytest.raises(errors.ObjectNotInPrerequisiteState):
                ahead.scroll(-1)
        conn.rollback()
        with pytest.raises(errors.InvalidCursorName):
            conn.execute("FETCH 1 FROM nowhere")


def test_statement_timeout_cancels_a_long_statement(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '300ms'")
        started = time.monotonic()
        with pytest.raises(errors.QueryCanceled, match="statement timeout"):
            conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                         "SELECT count(*) FROM n")
        assert time.monotonic() - started < 10
        conn.execute("SET statement_timeout = 0")
        assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(errors.InvalidParameterValue):
            conn.execute("SET statement_timeout = 'soon'")


def test_the_reader_refuses_writes_with_25006(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE pc_replicated (id integer PRIMARY KEY)")
        conn.execute("INSERT INTO pc_replicated VALUES (1)")
    with psycopg.connect(cluster.dsn(reader=True), autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while True:
            try:
                count = conn.execute("SELECT count(*) FROM pc_replicated").fetchone()
                break
            except errors.UndefinedTable:
                assert time.monotonic() < deadline, "the reader never saw the table"
                time.sleep(0.1)
        assert count == (1,)
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO pc_replicated VALUES (2)")
        assert conn.execute(sql.SQL("SHOW transaction_read_only")).fetchone() == ("on",)


def test_expressions_over_columns_are_typed_in_both_protocols(cluster: Cluster) -> None:
    """The simple protocol types its result columns after running the statement (no
    Describe): an expression over columns still comes back as PostgreSQL types it."""
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE pc_sums (k int, amount numeric(10,2), at timestamptz)")
        conn.execute("INSERT INTO pc_sums VALUES (1, 1.25, '2024-01-02 03:04:05+00'), "
                     "(2, 2.50, '2024-01-03 00:00:00+00')")
        query = "SELECT sum(amount), max(at), sum(k), k * 2 FROM pc_sums GROUP BY k ORDER BY k"
        expected = [(decimal.Decimal("1.25"), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
                     1, 2),
                    (decimal.Decimal("2.50"), dt.datetime(2024, 1, 3, tzinfo=dt.UTC), 2, 4)]
        with psycopg.ClientCursor(conn) as cursor:
            cursor.execute(query)
            assert cursor.fetchall() == expected
        assert conn.execute(query).fetchall() == expected
        with conn.cursor(binary=True) as cursor:
            cursor.execute(query)
            assert cursor.fetchall() == expected


def test_an_int8_parameter_into_an_int4_column_is_range_checked(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE pc_range (i integer)")
        conn.execute("INSERT INTO pc_range (i) VALUES (%s)", (2**31 - 1,))
        with pytest.raises(errors.NumericValueOutOfRange):
            conn.execute("INSERT INTO pc_range (i) VALUES (%s)", (2**40,))  # sent as int8
        with pytest.raises(errors.NumericValueOutOfRange):
            conn.execute("SELECT i + 1 FROM pc_range")
        assert conn.execute("SELECT i::int8 + 1 FROM pc_range").fetchone() == (2**31,)


def test_drop_cascade_runs_when_nothing_depends_and_names_what_does(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE dc_parent (id serial PRIMARY KEY)")
        conn.execute("CREATE TABLE dc_child (id int PRIMARY KEY, "
                     "parent int REFERENCES dc_parent (id))")
        conn.execute("CREATE VIEW dc_view AS SELECT id FROM dc_child")
        conn.execute("CREATE TABLE dc_alone (id serial PRIMARY KEY, v text)")
        conn.execute("INSERT INTO dc_alone (v) VALUES ('x')")
        # What scripts write: IF EXISTS ... CASCADE, on something nothing depends on.
        conn.execute("DROP TABLE IF EXISTS dc_missing CASCADE")
        conn.execute("DROP TABLE dc_alone CASCADE")
        with pytest.raises(errors.UndefinedTable):
            conn.execute("SELECT * FROM dc_alone")
        # The serial's sequence went with the table: a new one starts again at 1.
        conn.execute("CREATE TABLE dc_alone (id serial PRIMARY KEY)")
        assert conn.execute("INSERT INTO dc_alone DEFAULT VALUES RETURNING id").fetchone() == (1,)
        # Dependents: PostgreSQL would drop them too; Borealis refuses and names them.
        with pytest.raises(errors.FeatureNotSupported, match='foreign key of table "dc_child"'):
            conn.execute("DROP TABLE dc_parent CASCADE")
        with pytest.raises(errors.FeatureNotSupported, match='view "dc_view"'):
            conn.execute("DROP TABLE dc_child CASCADE")
        # Nothing changed; dropped together with their dependents, they go.
        assert conn.execute("SELECT count(*) FROM dc_view").fetchone() == (0,)
        conn.execute("DROP VIEW dc_view CASCADE")
        conn.execute("DROP TABLE dc_child, dc_parent CASCADE")
        with pytest.raises(errors.UndefinedTable):
            conn.execute("SELECT * FROM dc_parent")


def test_a_migration_alters_columns_in_a_transaction_and_the_reader_sees_it(
        cluster: Cluster) -> None:
    """What a migration tool sends (ALTER COLUMN TYPE / SET NOT NULL / SET DEFAULT, ADD
    CONSTRAINT FOREIGN KEY), in one transaction; a failing one rolls back whole."""
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE mg_user (id serial PRIMARY KEY, email varchar(40))")
        conn.execute("CREATE TABLE mg_order (id serial PRIMARY KEY, user_id int, total int)")
        conn.execute("INSERT INTO mg_user (email) VALUES ('a@example.org'), ('b@example.org')")
        conn.execute("INSERT INTO mg_order (user_id, total) VALUES (1, 5), (2, NULL)")
        with pytest.raises(errors.NotNullViolation), conn.transaction():
            conn.execute("ALTER TABLE mg_order ALTER COLUMN total TYPE numeric(12,2)")
            conn.execute("ALTER TABLE mg_order ALTER COLUMN total SET NOT NULL")
        # rolled back whole: the type change too
        assert conn.execute("SELECT total FROM mg_order WHERE id = 1").fetchone() == (5,)
        with conn.transaction():
            conn.execute("UPDATE mg_order SET total = 0 WHERE total IS NULL")
            conn.execute("ALTER TABLE mg_order ALTER COLUMN total TYPE numeric(12,2)")
            conn.execute("ALTER TABLE mg_order ALTER COLUMN total SET NOT NULL")
            conn.execute("ALTER TABLE mg_order ALTER COLUMN total SET DEFAULT 0")
            conn.execute("ALTER TABLE mg_user ALTER COLUMN email TYPE varchar(100)")
            conn.execute("ALTER TABLE mg_order ADD CONSTRAINT mg_order_user_fk "
                          "FOREIGN KEY (user_id) REFERENCES mg_user (id)")
        conn.execute("INSERT INTO mg_order (user_id) VALUES (1)")
        assert conn.execute("SELECT total FROM mg_order ORDER BY id").fetchall() == [
            (decimal.Decimal("5.00"),), (decimal.Decimal("0.00"),), (decimal.Decimal("0.00"),)]
        with pytest.raises(errors.ForeignKeyViolation):
            conn.execute("INSERT INTO mg_order (user_id, total) VALUES (99, 1)")
        conn.execute("UPDATE mg_order SET total = DEFAULT WHERE id = %s", (1,))
        assert conn.execute("SELECT total FROM mg_order WHERE id = 1").fetchone() == (
            decimal.Decimal("0.00"),)
        with pytest.raises(errors.DatatypeMismatch, match="USING email::integer"):
            conn.execute("ALTER TABLE mg_user ALTER COLUMN email TYPE integer")
    describe = ("SELECT column_name, data_type, is_nullable, character_maximum_length "
                "FROM information_schema.columns WHERE table_name = %s ORDER BY column_name")
    with psycopg.connect(cluster.dsn(reader=True), autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while (rows := conn.execute(describe, ("mg_order",)).fetchall()) != [
                ("id", "integer", "NO", None), ("total", "numeric", "NO", None),
                ("user_id", "integer", "YES", None)]:
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)
        assert conn.execute(describe, ("mg_user",)).fetchall() == [
            ("email", "character varying", "YES", 100), ("id", "integer", "NO", None)]
        assert conn.execute("SELECT count(*), sum(total) FROM mg_order").fetchone() == (
            3, decimal.Decimal("0.00"))


def test_to_char_to_date_and_to_timestamp_as_postgres(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE tc_sales (at timestamptz, amount numeric(12,2))")
        conn.execute("INSERT INTO tc_sales VALUES ('2024-03-05 07:08:09+00', 1234567.5)")
        row = conn.execute(
            "SELECT to_char(at, 'FMDay, DDth FMMonth YYYY HH12:MI AM'), "
            "to_char(amount, 'FM999,999,990.00'), to_char(at::timestamptz, 'TZ'), "
            "to_char(-amount, '9,999,999.9') FROM tc_sales").fetchone()
        assert row == ("Tuesday, 05th March 2024 07:08 AM", "1,234,567.50", "UTC",
                       "-1,234,567.5")
        with pytest.raises(errors.FeatureNotSupported):
            conn.execute("SELECT to_char(amount, 'RN') FROM tc_sales")
        assert conn.execute("SELECT to_date('05 Mar 2024', 'DD Mon YYYY'), "
                            "to_timestamp('2024-03-05 2:07 pm', 'YYYY-MM-DD HH:MI am'), "
                            "to_timestamp(0)").fetchone() == (
            dt.date(2024, 3, 5), dt.datetime(2024, 3, 5, 14, 7, tzinfo=dt.UTC),
            dt.datetime(1970, 1, 1, tzinfo=dt.UTC))


def test_an_empty_result_still_describes_its_columns(cluster: Cluster) -> None:
    """A query with no row is described like any other (it had no columns in the simple
    protocol: psql printed no header, pandas lost the column names)."""
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE pc_empty (k int, v text)")
        with psycopg.ClientCursor(conn) as cursor:   # the simple protocol
            cursor.execute("SELECT * FROM pc_empty WHERE k > 5")
            assert cursor.description is not None and cursor.fetchall() == []
            assert [(d.name, d.type_code) for d in cursor.description] == [
                ("k", 23), ("v", 25)]
        cursor = conn.execute("SELECT k, v FROM pc_empty")   # the extended protocol
        assert cursor.description is not None
        assert [(d.name, d.type_code) for d in cursor.description] == [("k", 23), ("v", 25)]


def test_explain_prints_the_plan(cluster: Cluster) -> None:
    with connect(cluster, autocommit=True) as conn:
        conn.execute("CREATE TABLE pc_explain (k int PRIMARY KEY, v text)")
        cursor = conn.execute("EXPLAIN SELECT v FROM pc_explain WHERE k = %s", (3,))
        assert cursor.description is not None
        assert [d.name for d in cursor.description] == ["QUERY PLAN"]
        plan = [row[0] for row in cursor.fetchall()]
        assert plan and "pc_explain" in plan[0], plan
        with pytest.raises(errors.FeatureNotSupported):
            conn.execute("EXPLAIN ANALYZE SELECT 1")
