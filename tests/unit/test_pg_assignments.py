"""What INSERT and UPDATE assign (``assignments``): INSERT ... SELECT coerced to the target
columns' types as INSERT ... VALUES is, DEFAULT in VALUES, identity columns GENERATED
ALWAYS (428C9 unless OVERRIDING SYSTEM VALUE); and json ``->`` keeping the input text.

Each statement is translated and run on a session's SQLite connection, as the server runs
it; the expected results are PostgreSQL 15's for the same statements.
"""

from __future__ import annotations

import apsw
import pytest
from test_pg_translate import carry_out, run, simple

from borealis.protocol.postgres import catalog, functions, schema
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.session import SqlFunctionError, SqlSession
from borealis.protocol.postgres.translate import TranslationError, translate_statement


def refused(conn: apsw.Connection, sql: str, *, protocol: str = "extended") -> str:
    """The SQLSTATE the statement is refused with."""
    with pytest.raises((SqlFunctionError, TranslationError)) as failure:
        simple(conn, sql) if protocol == "simple" else run(conn, sql)
    return str(failure.value.sqlstate)


@pytest.fixture
def conn() -> apsw.Connection:
    """A connection set up as the server sets up a session's."""
    connection = apsw.Connection(":memory:")
    connection.execute("PRAGMA foreign_keys=ON; PRAGMA case_sensitive_like=ON")
    SqlSession(user="postgres", database="postgres").register(connection)
    catalog.install(connection, database="postgres", user="postgres")
    return connection


# -- INSERT ... SELECT ----------------------------------------------------------------------

def test_insert_select_is_coerced_like_insert_values(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE target (id int, x int, at timestamptz, amount numeric(6,2))")
    run(conn, "CREATE TABLE source (n numeric, label text)")
    run(conn, "INSERT INTO source VALUES (2.5, '7'), (-2.5, '8')")
    # numeric to integer rounds half away from zero; text input of the column's type
    simple(conn, "INSERT INTO target (id, x, at, amount) SELECT 1, 2.5, '2024-01-02 03:04:05+02', "
                 "1.005")
    run(conn, "INSERT INTO target (id, x) SELECT 2, n FROM source WHERE n > 0")
    run(conn, "INSERT INTO target (id, x) SELECT 3, n FROM source WHERE n < 0")
    run(conn, "INSERT INTO target (id, x) SELECT 4, '7'")
    assert run(conn, "SELECT id, x, at, amount FROM target ORDER BY id") == [
        (1, 3, "2024-01-02 01:04:05", "1.01"), (2, 3, None, None), (3, -3, None, None),
        (4, 7, None, None)]
    assert refused(conn, "INSERT INTO target (id, x) SELECT 5, 3000000000") == "22003"
    assert refused(conn, "INSERT INTO target (id, x) SELECT 6, 'seven'") == "22P02"


def test_insert_select_set_operations_coerce_their_rows(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE target (id int, x int)")
    # UNION removes duplicates of the query's values (1.4 and 1.2), then each is coerced
    run(conn, "INSERT INTO target (id, x) SELECT 1, 1.4 UNION SELECT 1, 1.2")
    run(conn, "INSERT INTO target (id, x) SELECT DISTINCT 2, 2.5")
    assert run(conn, "SELECT id, x FROM target ORDER BY id, x") == [(1, 1), (1, 1), (2, 3)]
    statement = translate_statement("INSERT INTO target (id, x) SELECT * FROM target "
                                    "UNION ALL SELECT 3, 4.5")
    assert "_borealis_source" in statement.sqlite[0]
    carry_out(conn, statement)
    assert run(conn, "SELECT count(*), max(x) FROM target") == [(7, 5)]


def test_insert_select_star_into_a_column_list_is_coerced(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE target (x int, y text)")
    run(conn, "CREATE TABLE source (n numeric, d date)")
    run(conn, "INSERT INTO source VALUES (1.5, '2024-01-02')")
    run(conn, "INSERT INTO target (x, y) SELECT * FROM source")
    assert run(conn, "SELECT x, y FROM target") == [(2, "2024-01-02")]


# -- DEFAULT in VALUES ------------------------------------------------------------------------

def test_default_in_values(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE d (id serial, x int DEFAULT 5, y text DEFAULT 'y')")
    run(conn, "INSERT INTO d (id, x, y) VALUES (DEFAULT, 1, DEFAULT)")
    run(conn, "INSERT INTO d (x, y) VALUES (DEFAULT, 'a'), (DEFAULT, 'b')")
    run(conn, "INSERT INTO d (id) VALUES (DEFAULT)")
    assert run(conn, "SELECT id, x, y FROM d ORDER BY id") == [
        (1, 1, "y"), (2, 5, "a"), (3, 5, "b"), (4, 5, "y")]
    # DEFAULT in some rows only, and without a column list: evaluated row by row (the
    # serial's sequence advances once per row that takes it)
    run(conn, "INSERT INTO d (x, y) VALUES (DEFAULT, 'c'), (1, DEFAULT)")
    run(conn, "INSERT INTO d VALUES (DEFAULT, 2, 'z'), (DEFAULT, DEFAULT, DEFAULT)")
    assert run(conn, "SELECT id, x, y FROM d WHERE id > 4 ORDER BY id") == [
        (5, 5, "c"), (6, 1, "y"), (7, 2, "z"), (8, 5, "y")]
    run(conn, "UPDATE d SET x = DEFAULT, y = DEFAULT WHERE id = 7")
    assert run(conn, "SELECT x, y FROM d WHERE id = 7") == [(5, "y")]
    run(conn, "CREATE TABLE nodefault (k int PRIMARY KEY, v text)")
    run(conn, "INSERT INTO nodefault VALUES (1, 'v')")
    run(conn, "UPDATE nodefault SET v = DEFAULT")
    assert run(conn, "SELECT v FROM nodefault") == [(None,)]


def test_set_default_of_an_identity_column_always_is_allowed(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY, v text)")
    run(conn, "INSERT INTO ident (v) VALUES ('a')")
    run(conn, "UPDATE ident SET id = DEFAULT")
    assert run(conn, "SELECT id, v FROM ident") == [(2, "a")]


# -- identity columns -----------------------------------------------------------------------

IDENTITY = ("CREATE TABLE items (id int GENERATED ALWAYS AS IDENTITY, "
            "code int GENERATED BY DEFAULT AS IDENTITY, name text)")


def test_generated_always_refuses_a_value(conn: apsw.Connection) -> None:
    run(conn, IDENTITY)
    run(conn, "INSERT INTO items (name) VALUES ('x')")  # (an UPDATE of no row is not checked)
    # PostgreSQL 15: ERROR: cannot insert a non-DEFAULT value into column "id" (428C9)
    for protocol in ("simple", "extended"):
        assert refused(conn, "INSERT INTO items (id, name) VALUES (5, 'a')",
                       protocol=protocol) == "428C9"
        assert refused(conn, "INSERT INTO items (id, name) VALUES (NULL, 'a')",
                       protocol=protocol) == "428C9"
        assert refused(conn, "INSERT INTO items (name, id) VALUES ('a', now()::text::int)",
                       protocol=protocol) in ("428C9", "22P02")
        assert refused(conn, "INSERT INTO items VALUES (5, 6, 'a')", protocol=protocol) == \
            "428C9"
        assert refused(conn, "INSERT INTO items (id, name) SELECT 5, 'a'",
                       protocol=protocol) == "428C9"
        assert refused(conn, "INSERT INTO items SELECT * FROM items",
                       protocol=protocol) == "428C9"
        # column "id" can only be updated to DEFAULT
        assert refused(conn, "UPDATE items SET id = 7", protocol=protocol) == "428C9"
    assert run(conn, "SELECT count(*) FROM items") == [(1,)]


def test_overriding_user_value_gives_identity_columns_their_defaults(
        conn: apsw.Connection) -> None:
    """PostgreSQL 15: the values given to identity columns (ALWAYS or BY DEFAULT) are
    ignored, each takes its next sequence value; other columns keep theirs."""
    run(conn, IDENTITY)
    run(conn, "INSERT INTO items (name) VALUES ('first')")   # id 1, code 1
    for protocol in ("simple", "extended"):
        statement = ("INSERT INTO items (id, code, name) OVERRIDING USER VALUE "
                     "VALUES (50, 60, 'x'), (51, 61, 'y')")
        if protocol == "simple":
            simple(conn, statement)
        else:
            run(conn, statement)
    simple(conn, "INSERT INTO items OVERRIDING USER VALUE VALUES (70, 80, 'z')")
    assert run(conn, "SELECT id, code, name FROM items ORDER BY id") == [
        (1, 1, "first"), (2, 2, "x"), (3, 3, "y"), (4, 4, "x"), (5, 5, "y"), (6, 6, "z")]
    assert refused(conn, "INSERT INTO items (id, name) OVERRIDING USER VALUE "
                         "SELECT 5, 'a'") == "0A000"


def test_generated_always_takes_default_and_overriding(conn: apsw.Connection) -> None:
    run(conn, IDENTITY)
    simple(conn, "INSERT INTO items (name) VALUES ('a')")
    simple(conn, "INSERT INTO items (id, name) VALUES (DEFAULT, 'b')")
    simple(conn, "INSERT INTO items (id, code, name) OVERRIDING SYSTEM VALUE "
                 "VALUES (100, 200, 'c')")
    run(conn, "INSERT INTO items (code, name) VALUES (50, 'd')")  # BY DEFAULT takes one
    run(conn, "INSERT INTO items (id, name) OVERRIDING SYSTEM VALUE SELECT 300, 'e'")
    run(conn, "UPDATE items SET code = code + 1 WHERE name = 'a'")
    assert run(conn, "SELECT id, code, name FROM items ORDER BY name") == [
        (1, 2, "a"), (2, 2, "b"), (100, 200, "c"), (3, 50, "d"), (300, 3, "e")]


def test_generated_always_with_client_parameters_is_checked_at_parse(
        conn: apsw.Connection) -> None:
    run(conn, IDENTITY)
    statement = translate_statement("INSERT INTO items (id, name) VALUES ($1, $2)")
    # no check added to the statement itself: the server checks it once, at Parse
    assert "_pg_coerce" not in statement.sqlite[0].lower()
    assert statement.identity_check == ("INSERT", "items", "id", "name")
    with pytest.raises(SqlFunctionError) as failure:
        schema.check_identity(conn, statement.identity_check)
    assert failure.value.sqlstate == "428C9"
    fine = translate_statement("INSERT INTO items (code, name) VALUES ($1, $2)")
    schema.check_identity(conn, fine.identity_check)
    overriding = translate_statement(
        "INSERT INTO items (id, name) OVERRIDING SYSTEM VALUE VALUES ($1, $2)")
    assert overriding.identity_check == ()


def test_identity_check_costs_no_call_where_values_are_coerced() -> None:
    # pgbench's INSERT: the columns ride on the first value's coercion, no call is added
    statement = translate_statement(
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES "
        "(1, 2, 3, -4, CURRENT_TIMESTAMP)")
    assert statement.sqlite[0].count("_PG_COERCE") == 4
    prepared = translate_statement(
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES "
        "($1, $2, $3, $4, CURRENT_TIMESTAMP)")
    assert "_PG_COERCE" not in prepared.sqlite[0]


# -- json -> keeps the input text ---------------------------------------------------------------

def test_json_members_keep_their_text(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE docs (j json, b jsonb)")
    text = """'{"a" : {"x":  [1,  2.50 ]}, "k": 1, "k" :  2, "s": "q\\"r"}'"""
    simple(conn, f"INSERT INTO docs VALUES ({text}, {text})")
    # PostgreSQL 15 gives these (json keeps its input; jsonb its normalised form)
    assert run(conn, "SELECT j -> 'a', b -> 'a', j ->> 'a', j -> 'k', b -> 'k' FROM docs") == [
        ('{"x":  [1,  2.50 ]}', '{"x": [1, 2.50]}', '{"x":  [1,  2.50 ]}', "2", "2")]
    assert run(conn, "SELECT j #> '{a,x}', j #>> '{a,x,1}', j -> 'a' -> 'x' -> -1, "
                     "j ->> 's', j -> 's', j -> 'missing', j -> 0 FROM docs") == [
        ("[1,  2.50 ]", "2.50", "2.50", 'q"r', '"q\\"r"', None, None)]
    with pytest.raises(SqlFunctionError) as failure:
        run(conn, "SELECT '{\"a\": 1'::text::json -> 'a'")
    assert failure.value.sqlstate == "22P02"


# -- the client's parameters assigned to columns ----------------------------------------------

def bound(conn: apsw.Connection, sql: str, declared: tuple[int, ...],
          values: tuple[object, ...]) -> tuple[object, ...]:
    """The parameters as the server binds them: typed at Parse (the client's types, else the
    columns'), then cast to the columns they are assigned to."""
    statement = translate_statement(sql)
    types = schema.parameter_types(conn, statement.param_hints, declared)
    targets = schema.assignment_targets(conn, statement.param_hints, types)
    out = []
    for value, target in zip(values, targets, strict=True):
        if target is not None and value is not None:
            value = functions.coerce_value(value, pgtypes.BY_OID[target[0]], target[1], "v")
        out.append(value)
    return tuple(out)


def test_parameters_take_their_columns_type_by_assignment(conn: apsw.Connection) -> None:
    run(conn, "CREATE TABLE p (i int, n numeric(6,2), v varchar(3), b bigint)")
    # an int8 parameter (psycopg sends one for a large int) into an int4 column: 22003
    with pytest.raises(SqlFunctionError) as failure:
        bound(conn, "INSERT INTO p (i) VALUES ($1)", (20,), (2**40,))
    assert failure.value.sqlstate == "22003"
    assert bound(conn, "INSERT INTO p (i) VALUES ($1)", (20,), (7,)) == (7,)
    # numeric's scale and varchar's length apply to a parameter as to a literal
    assert bound(conn, "INSERT INTO p (n, b) VALUES ($1, $2)", (), ("1.005", 5)) == ("1.01", 5)
    with pytest.raises(SqlFunctionError) as failure:
        bound(conn, "UPDATE p SET v = $1", (), ("abcd",))
    assert failure.value.sqlstate == "22001"
    # nothing to do for a parameter of its column's own type (pgbench's): no target
    statement = translate_statement("INSERT INTO p (i, b) VALUES ($1, $2)")
    types = schema.parameter_types(conn, statement.param_hints, ())
    assert schema.assignment_targets(conn, statement.param_hints, types) == (None, None)
    # a comparison is no assignment
    where = translate_statement("SELECT 1 FROM p WHERE i = $1")
    assert schema.assignment_targets(conn, where.param_hints, (20,)) == (None,)
