"""The emulated pg_catalog / information_schema (protocol/postgres/catalog.py).

The schema is the SQLite DDL Borealis' translator writes for REFERENCE_DDL (its output,
pasted), and the expected values are what PostgreSQL 15.18 answers for REFERENCE_DDL itself
(a throwaway server, the same queries). The queries are SQLite renderings of those in
shared/reference/client-traffic/*.log and of SQLAlchemy 2.0's reflection queries, with the
catalog tables under their SQLite names (``_sql`` maps ``pg_catalog.x`` as the translator
does).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import apsw
import pytest

from borealis.protocol.postgres import catalog, catalog_functions, functions
from borealis.protocol.postgres.catalog import (
    CATALOG_FUNCTIONS,
    CatalogError,
    catalog_table_name,
    install,
)

REFERENCE_DDL = """
CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL DEFAULT 'x',
  score NUMERIC(10,2) CHECK (score >= 0), flag BOOLEAN DEFAULT true,
  created TIMESTAMP DEFAULT CURRENT_TIMESTAMP, tags INTEGER[], note TEXT DEFAULT 'abc',
  n BIGINT DEFAULT 0, r REAL DEFAULT 1.5, d DOUBLE PRECISION, neg INTEGER DEFAULT -1,
  js JSONB, dt DATE, ts TIMESTAMPTZ DEFAULT now(), c CHAR(5), bl BYTEA, u UUID);
CREATE TABLE u (uid SERIAL PRIMARY KEY, t_id INTEGER NOT NULL REFERENCES t(id)
  ON DELETE CASCADE, code CHAR(3) UNIQUE, a INT, b INT, CONSTRAINT u_ab_key UNIQUE (a,b));
CREATE INDEX u_t_id_idx ON u (t_id);
CREATE INDEX u_a_b_idx ON u (a, b DESC);
CREATE TABLE w (x BIGINT GENERATED ALWAYS AS IDENTITY, y INT, z INT, PRIMARY KEY (x, y),
  CONSTRAINT w_fk FOREIGN KEY (y, z) REFERENCES u (a, b) ON UPDATE SET NULL
  DEFERRABLE INITIALLY DEFERRED);
CREATE VIEW v AS SELECT id, name FROM t;
"""

SEQUENCES_DDL = (
    "CREATE TABLE IF NOT EXISTS _borealis_sequences (name TEXT PRIMARY KEY, "
    "data_type TEXT NOT NULL DEFAULT 'int8', start_value INTEGER NOT NULL, "
    "min_value INTEGER NOT NULL, max_value INTEGER NOT NULL, increment_by INTEGER NOT NULL, "
    "cycle INTEGER NOT NULL DEFAULT 0, last_value INTEGER NOT NULL, "
    "is_called INTEGER NOT NULL DEFAULT 0, owner_table TEXT, owner_column TEXT, "
    "identity TEXT NOT NULL DEFAULT '')"
)

SQLITE_DDL = [  # translate.Translator's output for REFERENCE_DDL
    'CREATE TABLE "t" ("id" INTEGER PRIMARY KEY, "name" VARCHAR(20) NOT NULL DEFAULT (\'x\'), '
    '"score" NUMERIC_TEXT(10,2) COLLATE _pg_numeric CHECK (score >= 0), '
    '"flag" BOOL_INT DEFAULT (1), "created" TIMESTAMP_TEXT DEFAULT (_PG_CURRENT_TIMESTAMP()), '
    '"tags" ARRAY_TEXT(1007), "note" TEXT DEFAULT (\'abc\'), "n" BIGINT DEFAULT (0), '
    '"r" REAL DEFAULT (1.5), "d" DOUBLE PRECISION, "neg" INTEGER DEFAULT (-1), '
    '"js" JSONB_TEXT, "dt" DATE_TEXT, "ts" TIMESTAMPTZ_TEXT DEFAULT (_PG_NOW()), '
    '"c" BPCHAR(5) COLLATE RTRIM, "bl" BYTEA_BLOB, "u" UUID_TEXT)',
    SEQUENCES_DDL,
    "INSERT INTO _borealis_sequences (name, data_type, start_value, min_value, max_value, "
    "increment_by, cycle, last_value, is_called, owner_table, owner_column, identity) VALUES "
    "('u_uid_seq', 'int4', 1, 1, 2147483647, 1, 0, 1, 0, 'u', 'uid', '')",
    'CREATE TABLE "u" ("uid" INT PRIMARY KEY NOT NULL DEFAULT (_pg_nextval(\'u_uid_seq\')), '
    '"t_id" INTEGER NOT NULL REFERENCES "t" ("id") ON DELETE CASCADE, '
    '"code" BPCHAR(3) COLLATE RTRIM UNIQUE, "a" INTEGER, "b" INTEGER, '
    'CONSTRAINT "u_ab_key" UNIQUE ("a", "b"))',
    'CREATE INDEX "u_t_id_idx" ON "u" (t_id)',
    'CREATE INDEX "u_a_b_idx" ON "u" (a, b DESC)',
    "INSERT INTO _borealis_sequences (name, data_type, start_value, min_value, max_value, "
    "increment_by, cycle, last_value, is_called, owner_table, owner_column, identity) VALUES "
    "('w_x_seq', 'int8', 1, 1, 9223372036854775807, 1, 0, 1, 0, 'w', 'x', 'a')",
    'CREATE TABLE "w" ("x" BIGINT NOT NULL DEFAULT (_pg_nextval(\'w_x_seq\')), "y" INTEGER, '
    '"z" INTEGER, PRIMARY KEY ("x", "y"), CONSTRAINT "w_fk" FOREIGN KEY ("y", "z") REFERENCES '
    '"u" ("a", "b") ON UPDATE SET NULL DEFERRABLE INITIALLY DEFERRED)',
    'CREATE VIEW "v" AS SELECT id, name FROM t',
]


def _sql(text: str) -> str:
    """``pg_catalog.x`` / ``information_schema.x`` to the catalog's SQLite names, as the
    translator rewrites them; ``pg_catalog.`` before a function is dropped."""
    def table(match: re.Match[str]) -> str:
        if match.group(1) is None:  # a string literal
            return match.group()
        mapped = catalog_table_name(match.group(1), match.group(2))
        return f'"{mapped}"' if mapped else match.group(2)
    return re.sub(r"'(?:[^']|'')*'|\b(pg_catalog|information_schema)\.(\w+)", table, text)


def q(conn: apsw.Connection, text: str, *params: object) -> list[tuple[object, ...]]:
    return list(conn.execute(_sql(text), params))


def one(conn: apsw.Connection, text: str, *params: object) -> object:
    rows = q(conn, text, *params)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def _schema(conn: apsw.Connection) -> None:
    for statement in SQLITE_DDL:
        conn.execute(statement)


@pytest.fixture
def conn() -> apsw.Connection:
    connection = apsw.Connection(":memory:")
    functions.register(connection)  # the numeric collation the DDL names, as a session has
    install(connection, database="ref", user="postgres")
    _schema(connection)
    return connection


def oid_of(conn: apsw.Connection, name: str) -> int:
    value = one(conn, "SELECT oid FROM pg_catalog.pg_class WHERE relname = ?", name)
    assert isinstance(value, int)
    return value


# --- names -----------------------------------------------------------------------------------


def test_catalog_table_name_maps_pg_catalog_first_and_information_schema_when_qualified() -> None:
    assert catalog_table_name("pg_catalog", "pg_class") == "_borealis_pg_catalog_pg_class"
    assert catalog_table_name(None, "pg_class") == "_borealis_pg_catalog_pg_class"
    assert catalog_table_name("information_schema", "columns") == \
        "_borealis_information_schema_columns"
    assert catalog_table_name(None, "columns") is None  # not on the search path
    assert catalog_table_name("public", "pg_class") is None  # the user's table
    assert catalog_table_name("pg_catalog", "no_such_table") is None
    assert catalog_table_name(None, "pg_partition_ancestors") is None  # a function
    assert catalog.CATALOG_TABLE_FUNCTIONS["pg_partition_ancestors"].startswith("_borealis_")


def test_every_function_is_registered(conn: apsw.Connection) -> None:
    registered = {name for (name,) in conn.execute(
        "SELECT name FROM pragma_function_list")}
    assert CATALOG_FUNCTIONS.issubset(registered)
    expected = {"format_type", "pg_get_indexdef", "_pg_regclass", "_pg_regclass_out",
                "pg_is_in_recovery", "version"}
    assert expected <= CATALOG_FUNCTIONS


def test_quote_ident_and_generated_names_follow_postgresql() -> None:
    assert catalog_functions.quote_ident("abc") == "abc"
    assert catalog_functions.quote_ident("Abc") == '"Abc"'
    assert catalog_functions.quote_ident("user") == '"user"'
    assert catalog_functions.quote_ident("a b\"c") == '"a b""c"'
    assert catalog_functions.quote_ident("name") == "name"  # unreserved keyword
    # PostgreSQL 15: CREATE TABLE <63 x "a"> (<63 x "b"> int UNIQUE) names its index so
    taken: set[str] = set()
    name = catalog_functions.choose_name("a" * 63, "b" * 63, "key", taken)
    assert name == "a" * 29 + "_" + "b" * 29 + "_key" and len(name) == 63
    assert catalog_functions.choose_name("t", "", "check", taken) == "t_check"
    assert catalog_functions.choose_name("t", "", "check", taken) == "t_check1"


# --- psql ------------------------------------------------------------------------------------


def test_psql_d_finds_the_table_then_reads_its_header(conn: apsw.Connection) -> None:
    rows = q(conn, """
        SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c
        LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = 'u' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3""")
    assert [r[1:] for r in rows] == [("public", "u")]
    oid = str(rows[0][0])  # psql passes it back as a literal: '16463'
    header = q(conn, """
        SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers,
          c.relrowsecurity, c.relforcerowsecurity, 0 AS relhasoids, c.relispartition, '',
          c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE
          _pg_regtype_out(c.reloftype) END, c.relpersistence, c.relreplident, am.amname
        FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_class tc
          ON (c.reltoastrelid = tc.oid)
        LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid) WHERE c.oid = ?""", oid)
    # relhastriggers: u has foreign keys both ways (PostgreSQL's RI triggers on each side)
    assert header == [(0, "r", 1, 0, 1, 0, 0, 0, 0, "", 0, "", "p", "d", "heap")]
    assert q(conn, "SELECT relchecks FROM pg_catalog.pg_class WHERE relname = 't'") == [(1,)]


PSQL_COLUMNS = """
    SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
      (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, 1) FROM pg_catalog.pg_attrdef d
       WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
      a.attnotnull,
      (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
       WHERE c.oid = a.attcollation AND t.oid = a.atttypid
         AND a.attcollation <> t.typcollation) AS attcollation,
      a.attidentity, a.attgenerated
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = ? AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"""


def test_psql_d_columns_are_postgresql_s(conn: apsw.Connection) -> None:
    rows = q(conn, PSQL_COLUMNS, oid_of(conn, "t"))
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [  # psql's \d t on PostgreSQL 15
        ("id", "integer", None, 1),
        ("name", "character varying(20)", "'x'::character varying", 1),
        ("score", "numeric(10,2)", None, 0),
        ("flag", "boolean", "true", 0),
        # the translator writes CURRENT_TIMESTAMP as _pg_current_timestamp(), now() as
        # _pg_now(): each reads back as PostgreSQL prints it
        ("created", "timestamp without time zone", "CURRENT_TIMESTAMP", 0),
        ("tags", "integer[]", None, 0),
        ("note", "text", "'abc'::text", 0),
        ("n", "bigint", "0", 0),
        ("r", "real", "1.5", 0),
        ("d", "double precision", None, 0),
        ("neg", "integer", "'-1'::integer", 0),
        ("js", "jsonb", None, 0),
        ("dt", "date", None, 0),
        ("ts", "timestamp with time zone", "now()", 0),
        ("c", "character(5)", None, 0),
        ("bl", "bytea", None, 0),
        ("u", "uuid", None, 0),
    ]
    assert all(r[4] is None and r[5] == "" and r[6] == "" for r in rows)


def test_psql_d_serial_and_identity_columns(conn: apsw.Connection) -> None:
    rows = q(conn, PSQL_COLUMNS, oid_of(conn, "u"))
    assert [r[:4] + r[5:6] for r in rows] == [
        ("uid", "integer", "nextval('u_uid_seq'::regclass)", 1, ""),
        ("t_id", "integer", None, 1, ""),
        ("code", "character(3)", None, 0, ""),
        ("a", "integer", None, 0, ""),
        ("b", "integer", None, 0, ""),
    ]
    rows = q(conn, PSQL_COLUMNS, oid_of(conn, "w"))
    assert [r[:4] + r[5:6] for r in rows] == [  # "generated always as identity"
        ("x", "bigint", None, 1, "a"),
        ("y", "integer", None, 1, ""),  # a primary key column is NOT NULL
        ("z", "integer", None, 0, ""),
    ]


def test_psql_d_indexes_with_their_constraints(conn: apsw.Connection) -> None:
    rows = q(conn, """
        SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid,
          pg_catalog.pg_get_indexdef(i.indexrelid, 0, 1),
          pg_catalog.pg_get_constraintdef(con.oid, 1), contype, condeferrable, condeferred,
          i.indisreplident, c2.reltablespace
        FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i
          LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid
            AND conindid = i.indexrelid AND contype IN ('p','u','x'))
        WHERE c.oid = ? AND c.oid = i.indrelid AND i.indexrelid = c2.oid
        ORDER BY i.indisprimary DESC, c2.relname""", str(oid_of(conn, "u")))
    assert rows == [
        ("u_pkey", 1, 1, 0, 1, "CREATE UNIQUE INDEX u_pkey ON u USING btree (uid)",
         "PRIMARY KEY (uid)", "p", 0, 0, 0, 0),
        ("u_a_b_idx", 0, 0, 0, 1, "CREATE INDEX u_a_b_idx ON u USING btree (a, b DESC)",
         None, None, None, None, 0, 0),
        ("u_ab_key", 0, 1, 0, 1, "CREATE UNIQUE INDEX u_ab_key ON u USING btree (a, b)",
         "UNIQUE (a, b)", "u", 0, 0, 0, 0),
        ("u_code_key", 0, 1, 0, 1, "CREATE UNIQUE INDEX u_code_key ON u USING btree (code)",
         "UNIQUE (code)", "u", 0, 0, 0, 0),
        ("u_t_id_idx", 0, 0, 0, 1, "CREATE INDEX u_t_id_idx ON u USING btree (t_id)",
         None, None, None, None, 0, 0),
    ]
    # An INTEGER PRIMARY KEY has no SQLite index: t_pkey is synthesised.
    assert q(conn, """SELECT pg_catalog.pg_get_indexdef(indexrelid), indkey
                      FROM pg_catalog.pg_index WHERE indrelid = ?""", oid_of(conn, "t")) == [
        ("CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)", "[1]")]


def test_psql_d_foreign_keys_and_referenced_by(conn: apsw.Connection) -> None:
    fks = q(conn, """
        SELECT 1 AS sametable, conname, pg_catalog.pg_get_constraintdef(r.oid, 1) AS condef,
          _pg_regclass_out(conrelid) AS ontable
        FROM pg_catalog.pg_constraint r
        WHERE r.conrelid = ? AND r.contype = 'f' AND conparentid = 0 ORDER BY conname""",
            str(oid_of(conn, "w")))
    assert fks == [(1, "w_fk", "FOREIGN KEY (y, z) REFERENCES u(a, b) ON UPDATE SET NULL "
                               "DEFERRABLE INITIALLY DEFERRED", "w")]
    referenced_by = q(conn, """
        SELECT conname, _pg_regclass_out(conrelid) AS ontable,
               pg_catalog.pg_get_constraintdef(oid, 1) AS condef
        FROM pg_catalog.pg_constraint c
        WHERE confrelid IN (SELECT relid FROM _borealis_pg_catalog_pg_partition_ancestors(?)
                            UNION ALL VALUES (_pg_regclass(?)))
          AND contype = 'f' AND conparentid = 0 ORDER BY conname""",
                      oid_of(conn, "t"), str(oid_of(conn, "t")))
    assert referenced_by == [
        ("u_t_id_fkey", "u", "FOREIGN KEY (t_id) REFERENCES t(id) ON DELETE CASCADE")]


def test_psql_d_check_constraints_are_approximate(conn: apsw.Connection) -> None:
    row = q(conn, """SELECT conname, pg_catalog.pg_get_constraintdef(oid, 1),
                            pg_catalog.pg_get_constraintdef(oid), conkey
                     FROM pg_catalog.pg_constraint WHERE contype = 'c'""")
    # PostgreSQL adds the implicit cast: CHECK (score >= 0::numeric) and
    # CHECK ((score >= (0)::numeric)). The name and the parenthesising are its own.
    assert row == [("t_score_check", "CHECK (score >= 0::numeric)",
                    "CHECK ((score >= (0)::numeric))", "[3]")]


def test_psql_d_empty_sections(conn: apsw.Connection) -> None:
    oid = str(oid_of(conn, "t"))
    for text in (
        "SELECT polname FROM pg_catalog.pg_policy pol WHERE pol.polrelid = ?",
        "SELECT oid FROM pg_catalog.pg_statistic_ext WHERE stxrelid = ?",
        "SELECT pubname FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_rel "
        "pr ON p.oid = pr.prpubid WHERE pr.prrelid = ?",
        "SELECT tgname FROM pg_catalog.pg_trigger t WHERE t.tgrelid = ?",
        "SELECT c.oid FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i "
        "WHERE c.oid = i.inhparent AND i.inhrelid = ?",
    ):
        assert q(conn, text, oid) == []
    assert one(conn, "SELECT pg_catalog.pg_relation_is_publishable(?)", oid) == 0


def test_psql_dt_di_d(conn: apsw.Connection) -> None:
    listing = """
        SELECT n.nspname, c.relname, CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view'
          WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' END,
          pg_catalog.pg_get_userbyid(c.relowner) {extra}
        FROM pg_catalog.pg_class c
          LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam {join}
        WHERE c.relkind IN ({kinds}) AND n.nspname <> 'pg_catalog'
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname <> 'information_schema'
          AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1, 2"""
    dt = q(conn, listing.format(extra="", join="", kinds="'r','p',''"))
    assert dt == [("public", n, "table", "postgres") for n in ("t", "u", "w")]
    d = q(conn, listing.format(extra="", join="", kinds="'r','p','v','m','S','f',''"))
    assert d == [("public", "t", "table", "postgres"), ("public", "u", "table", "postgres"),
                 ("public", "u_uid_seq", "sequence", "postgres"),
                 ("public", "v", "view", "postgres"), ("public", "w", "table", "postgres"),
                 ("public", "w_x_seq", "sequence", "postgres")]
    di = q(conn, listing.format(
        extra=", c2.relname", kinds="'i','I',''",
        join="LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid "
             "LEFT JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid"))
    assert di == [("public", name, "index", "postgres", table) for name, table in (
        ("t_pkey", "t"), ("u_a_b_idx", "u"), ("u_ab_key", "u"), ("u_code_key", "u"),
        ("u_pkey", "u"), ("u_t_id_idx", "u"), ("w_pkey", "w"))]


def test_psql_dn_and_l(conn: apsw.Connection) -> None:
    assert q(conn, """SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner)
                      FROM pg_catalog.pg_namespace n
                      WHERE n.nspname NOT LIKE 'pg\\_%' ESCAPE '\\'
                        AND n.nspname <> 'information_schema' ORDER BY 1""") == [
        ("public", "pg_database_owner")]
    assert q(conn, """
        SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba),
          pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
          d.daticulocale, CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END,
          d.datacl
        FROM pg_catalog.pg_database d ORDER BY 1""") == [
        ("ref", "postgres", "UTF8", "C.UTF-8", "C.UTF-8", None, "libc", None)]


def test_psql_d_sequence(conn: apsw.Connection) -> None:
    oid = oid_of(conn, "u_uid_seq")
    assert q(conn, """SELECT pg_catalog.format_type(seqtypid, NULL), seqstart, seqmin, seqmax,
                        seqincrement, CASE WHEN seqcycle THEN 'yes' ELSE 'no' END, seqcache
                      FROM pg_catalog.pg_sequence WHERE seqrelid = ?""", str(oid)) == [
        ("integer", 1, 1, 2147483647, 1, "no", 1)]
    assert q(conn, """
        SELECT n.nspname || '.' || c.relname || '.' || a.attname, d.deptype
        FROM pg_catalog.pg_class c
        INNER JOIN pg_catalog.pg_depend d ON c.oid = d.refobjid
        INNER JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        INNER JOIN pg_catalog.pg_attribute a ON (a.attrelid = c.oid
          AND a.attnum = d.refobjsubid)
        WHERE d.classid = _pg_regclass('pg_catalog.pg_class')
          AND d.refclassid = _pg_regclass('pg_catalog.pg_class')
          AND d.objid = ? AND d.deptype IN ('a', 'i')""", str(oid)) == [("public.u.uid", "a")]


# --- SQLAlchemy 2.0 reflection ------------------------------------------------------------------

SQLA_RELATIONS = """
    SELECT pg_class.relname FROM pg_catalog.pg_class AS pg_class
    JOIN pg_catalog.pg_namespace AS pg_namespace ON pg_namespace.oid = pg_class.relnamespace
    WHERE {where} pg_class.relkind IN ({kinds})
      AND pg_catalog.pg_table_is_visible(pg_class.oid)
      AND pg_namespace.nspname != 'pg_catalog'"""


def test_sqlalchemy_has_table_and_names(conn: apsw.Connection) -> None:
    has = SQLA_RELATIONS.format(where="pg_class.relname IN (?) AND",
                                kinds="'r', 'p', 'f', 'v', 'm'")
    assert q(conn, has, "t") == [("t",)]
    assert q(conn, has, "users") == []
    names = SQLA_RELATIONS.format(where="pg_class.relpersistence != 't' AND", kinds="'r', 'p'")
    assert sorted(q(conn, names)) == [("t",), ("u",), ("w",)]
    assert q(conn, SQLA_RELATIONS.format(where="", kinds="'v', 'm'")) == [("v",)]
    assert q(conn, """SELECT nspname FROM pg_catalog.pg_namespace
                      WHERE nspname NOT LIKE 'pg_%' ORDER BY nspname""") == [
        ("information_schema",), ("public",)]


def test_sqlalchemy_get_columns(conn: apsw.Connection) -> None:
    rows = q(conn, """
        SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
          CASE WHEN a.atthasdef THEN (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid)
            FROM pg_catalog.pg_attrdef d WHERE a.atthasdef AND d.adrelid = a.attrelid
            AND d.adnum = a.attnum) END AS "default",
          a.attnotnull, c.relname, descr.description, a.attgenerated,
          CASE WHEN a.attidentity != '' THEN (SELECT json_object(
            'always', a.attidentity = 'a', 'start', s.seqstart, 'increment', s.seqincrement,
            'minvalue', s.seqmin, 'maxvalue', s.seqmax, 'cache', s.seqcache,
            'cycle', s.seqcycle) FROM pg_catalog.pg_sequence s
            WHERE a.attidentity != '' AND s.seqrelid = _pg_regclass(
              pg_catalog.pg_get_serial_sequence(_pg_regclass_out(a.attrelid), a.attname)))
          END AS identity_options
        FROM pg_catalog.pg_class c
        LEFT OUTER JOIN pg_catalog.pg_attribute a ON c.oid = a.attrelid AND a.attnum > 0
          AND NOT a.attisdropped
        LEFT OUTER JOIN pg_catalog.pg_description descr ON descr.objoid = a.attrelid
          AND descr.objsubid = a.attnum
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
          AND pg_catalog.pg_table_is_visible(c.oid) AND n.nspname != 'pg_catalog'
          AND c.relname IN ('u', 'w') ORDER BY c.relname, a.attnum""")
    assert rows == [
        ("uid", "integer", "nextval('u_uid_seq'::regclass)", 1, "u", None, "", None),
        ("t_id", "integer", None, 1, "u", None, "", None),
        ("code", "character(3)", None, 0, "u", None, "", None),
        ("a", "integer", None, 0, "u", None, "", None),
        ("b", "integer", None, 0, "u", None, "", None),
        ("x", "bigint", None, 1, "w", None, "", json.dumps(
            {"always": 1, "start": 1, "increment": 1, "minvalue": 1,
             "maxvalue": 9223372036854775807, "cache": 1, "cycle": 0}, separators=(",", ":"))),
        ("y", "integer", None, 1, "w", None, "", None),
        ("z", "integer", None, 0, "w", None, "", None),
    ]


def test_sqlalchemy_get_pk_constraint(conn: apsw.Connection) -> None:
    # unnest(indkey) / generate_subscripts(indkey, 1): int2vector subscripts start at 0.
    rows = q(conn, """
        SELECT con.conrelid, json_group_array(a.attname), con.conname
        FROM (SELECT con.conrelid, con.conname, k.value AS attnum, k.key AS ord
              FROM pg_catalog.pg_constraint con
              JOIN pg_catalog.pg_index i ON con.conindid = i.indexrelid,
                   json_each(i.indkey) k
              WHERE con.contype = 'p' ORDER BY con.conrelid, ord) con
        JOIN pg_catalog.pg_attribute a ON a.attnum = con.attnum AND a.attrelid = con.conrelid
        GROUP BY con.conrelid, con.conname ORDER BY con.conrelid""")
    assert [(json.loads(str(r[1])), r[2]) for r in rows] == [
        (["id"], "t_pkey"), (["uid"], "u_pkey"), (["x", "y"], "w_pkey")]


def test_sqlalchemy_get_foreign_keys(conn: apsw.Connection) -> None:
    rows = q(conn, """
        SELECT c.relname, con.conname, pg_catalog.pg_get_constraintdef(con.oid, 1),
          nsp_ref.nspname
        FROM pg_catalog.pg_class c
        LEFT OUTER JOIN pg_catalog.pg_constraint con ON c.oid = con.conrelid
          AND con.contype = 'f'
        LEFT OUTER JOIN pg_catalog.pg_class cls_ref ON cls_ref.oid = con.confrelid
        LEFT OUTER JOIN pg_catalog.pg_namespace nsp_ref ON cls_ref.relnamespace = nsp_ref.oid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND c.relname IN ('t', 'u')
          AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY c.relname, con.conname""")
    assert rows == [
        ("t", None, None, None),
        ("u", "u_t_id_fkey", "FOREIGN KEY (t_id) REFERENCES t(id) ON DELETE CASCADE",
         "public"),
    ]
    # SQLAlchemy's own pattern (dialects/postgresql/base.py) must read the definition.
    pattern = (r"FOREIGN KEY \((.*?)\) REFERENCES (?:(.*?)\.)?(.*?)\((.*?)\)[\s]?"
               r"(MATCH (FULL|PARTIAL|SIMPLE)+)?[\s]?(ON UPDATE "
               r"(CASCADE|RESTRICT|NO ACTION|SET NULL|SET DEFAULT)+)?[\s]?(ON DELETE "
               r"(CASCADE|RESTRICT|NO ACTION|SET NULL|SET DEFAULT)+)?[\s]?"
               r"(DEFERRABLE|NOT DEFERRABLE)?[\s]?(INITIALLY (DEFERRED|IMMEDIATE)+)?")
    match = re.search(pattern, str(rows[1][2]))
    assert match is not None and match.group(1, 3, 4, 10) == ("t_id", "t", "id", "CASCADE")


def test_sqlalchemy_get_indexes(conn: apsw.Connection) -> None:
    rows = q(conn, """
        SELECT i.indrelid, c.relname, i.indisunique, con.conrelid IS NOT NULL, i.indoption,
          c.relam, i.indpred, i.indnkeyatts,
          (SELECT json_group_array(CASE WHEN k.value = 0
                  THEN pg_catalog.pg_get_indexdef(i.indexrelid, k.key + 1, 1)
                  ELSE a.attname END)
           FROM json_each(i.indkey) k LEFT JOIN pg_catalog.pg_attribute a
             ON a.attrelid = i.indrelid AND a.attnum = k.value)
        FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON i.indexrelid = c.oid
        LEFT OUTER JOIN pg_catalog.pg_constraint con ON i.indrelid = con.conrelid
          AND i.indexrelid = con.conindid AND con.contype IN ('p', 'u', 'x')
        WHERE i.indrelid = ? AND NOT i.indisprimary ORDER BY i.indrelid, c.relname""",
             oid_of(conn, "u"))
    assert [r[1:] for r in rows] == [
        ("u_a_b_idx", 0, 0, "[0,3]", 403, None, 2, '["a","b"]'),
        ("u_ab_key", 1, 1, "[0,0]", 403, None, 2, '["a","b"]'),
        ("u_code_key", 1, 1, "[0]", 403, None, 1, '["code"]'),
        ("u_t_id_idx", 0, 0, "[0]", 403, None, 1, '["t_id"]'),
    ]


def test_expression_and_partial_indexes_as_postgresql_prints_them() -> None:
    conn = apsw.Connection(":memory:")
    install(conn, database="ref", user="postgres")
    conn.execute('CREATE TABLE "ck" ("a" INTEGER, "b" INTEGER, "c" TEXT); '
                 'CREATE INDEX "ck_expr" ON "ck" ((a + b)); '
                 'CREATE INDEX "ck_lower" ON "ck" (lower(c)) WHERE a > 0; '
                 'CREATE INDEX "ck_multi" ON "ck" (a DESC, lower(c), (b * 2))')
    rows = q(conn, """SELECT pg_catalog.pg_get_indexdef(indexrelid),
                        pg_catalog.pg_get_indexdef(indexrelid, 0, 1),
                        pg_catalog.pg_get_indexdef(indexrelid, 1, 1),
                        pg_catalog.pg_get_indexdef(indexrelid, 2, 0), indkey, indpred
                      FROM pg_catalog.pg_index ORDER BY indexrelid""")
    assert rows == [  # PostgreSQL 15's output for the same indexes
        ("CREATE INDEX ck_expr ON public.ck USING btree (((a + b)))",
         "CREATE INDEX ck_expr ON ck USING btree ((a + b))", "(a + b)", "", "[0]", None),
        ("CREATE INDEX ck_lower ON public.ck USING btree (lower(c)) WHERE (a > 0)",
         "CREATE INDEX ck_lower ON ck USING btree (lower(c)) WHERE a > 0", "lower(c)", "",
         "[0]", "(a > 0)"),
        ("CREATE INDEX ck_multi ON public.ck USING btree (a DESC, lower(c), ((b * 2)))",
         "CREATE INDEX ck_multi ON ck USING btree (a DESC, lower(c), (b * 2))", "a",
         "lower(c)", "[1,0,0]", None),
    ]


# --- asyncpg ---------------------------------------------------------------------------------

ASYNCPG_TYPES = """
    SELECT t.oid, ns.nspname, t.typname, t.typtype,
      CASE WHEN t.typtype = 'd' THEN t.typbasetype END AS basetype,
      t.typelem, elem_t.typdelim, coalesce(range_t.rngsubtype, multirange_t.rngsubtype),
      CASE WHEN t.typtype = 'c' THEN (SELECT json_group_array(atttypid) FROM (
        SELECT ia.atttypid FROM pg_catalog.pg_attribute ia INNER JOIN pg_catalog.pg_class c
          ON ia.attrelid = c.oid
        WHERE ia.attnum > 0 AND NOT ia.attisdropped AND c.reltype = t.oid
        ORDER BY ia.attnum)) END AS attrtypoids,
      CASE WHEN t.typtype = 'c' THEN (SELECT json_group_array(attname) FROM (
        SELECT ia.attname FROM pg_catalog.pg_attribute ia INNER JOIN pg_catalog.pg_class c
          ON ia.attrelid = c.oid
        WHERE ia.attnum > 0 AND NOT ia.attisdropped AND c.reltype = t.oid
        ORDER BY ia.attnum)) END AS attrnames,
      _pg_regtype_out(t.typelem)
    FROM pg_catalog.pg_type AS t
    INNER JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace
    LEFT JOIN pg_catalog.pg_type elem_t ON t.typlen = -1 AND t.typelem != 0
      AND t.typelem = elem_t.oid
    LEFT JOIN pg_catalog.pg_range range_t ON t.oid = range_t.rngtypid
    LEFT JOIN pg_catalog.pg_range multirange_t ON t.oid = multirange_t.rngmultitypid
    WHERE t.oid IN (SELECT value FROM json_each(?))"""


def test_asyncpg_type_introspection(conn: apsw.Connection) -> None:
    # PostgreSQL 15 for '{1007}': _int4 then (depth 1) its element int4
    assert q(conn, ASYNCPG_TYPES, "[1007, 23]") == [
        (23, "pg_catalog", "int4", "b", None, 0, None, None, None, None, "-"),
        (1007, "pg_catalog", "_int4", "b", None, 23, ",", None, None, None, "integer"),
    ]
    assert q(conn, ASYNCPG_TYPES, "[25]") == [
        (25, "pg_catalog", "text", "b", None, 0, None, None, None, None, "-")]
    row_type = one(conn, "SELECT reltype FROM pg_catalog.pg_class WHERE relname = 't'")
    (row,) = q(conn, ASYNCPG_TYPES, json.dumps([row_type]))
    assert row[1:4] == ("public", "t", "c")
    assert json.loads(str(row[8])) == [23, 1043, 1700, 16, 1114, 1007, 25, 20, 700, 701, 23,
                                       3802, 1082, 1184, 1042, 17, 2950]
    assert json.loads(str(row[9])) == ["id", "name", "score", "flag", "created", "tags",
                                       "note", "n", "r", "d", "neg", "js", "dt", "ts", "c",
                                       "bl", "u"]
    array_type = one(conn, "SELECT typarray FROM pg_catalog.pg_type WHERE oid = ?", row_type)
    assert q(conn, "SELECT typname, typelem, typcategory FROM pg_catalog.pg_type WHERE oid = ?",
             array_type) == [("_t", row_type, "A")]
    assert one(conn, "SELECT _pg_regtype_out(?)", array_type) == "t[]"


def test_builtin_types_match_postgresql(conn: apsw.Connection) -> None:
    rows = q(conn, """SELECT oid, typname, typnamespace, typlen, typbyval, typtype,
                        typcategory, typispreferred, typdelim, typrelid, typsubscript, typelem,
                        typarray, typinput, typoutput, typreceive, typsend, typmodin, typmodout,
                        typanalyze, typalign, typstorage, typcollation
                      FROM pg_catalog.pg_type WHERE oid IN (16, 23, 25, 1007, 1043, 1114, 1700,
                        2249, 2287, 3802, 19, 1009) ORDER BY oid""")
    assert rows == [  # pg_type of PostgreSQL 15.18
        (16, "bool", 11, 1, 1, "b", "B", 1, ",", 0, "-", 0, 1000, "boolin", "boolout",
         "boolrecv", "boolsend", "-", "-", "-", "c", "p", 0),
        (19, "name", 11, 64, 0, "b", "S", 0, ",", 0, "raw_array_subscript_handler", 18, 1003,
         "namein", "nameout", "namerecv", "namesend", "-", "-", "-", "c", "p", 950),
        (23, "int4", 11, 4, 1, "b", "N", 0, ",", 0, "-", 0, 1007, "int4in", "int4out",
         "int4recv", "int4send", "-", "-", "-", "i", "p", 0),
        (25, "text", 11, -1, 0, "b", "S", 1, ",", 0, "-", 0, 1009, "textin", "textout",
         "textrecv", "textsend", "-", "-", "-", "i", "x", 100),
        (1007, "_int4", 11, -1, 0, "b", "A", 0, ",", 0, "array_subscript_handler", 23, 0,
         "array_in", "array_out", "array_recv", "array_send", "-", "-", "array_typanalyze",
         "i", "x", 0),
        (1009, "_text", 11, -1, 0, "b", "A", 0, ",", 0, "array_subscript_handler", 25, 0,
         "array_in", "array_out", "array_recv", "array_send", "-", "-", "array_typanalyze",
         "i", "x", 100),
        (1043, "varchar", 11, -1, 0, "b", "S", 0, ",", 0, "-", 0, 1015, "varcharin",
         "varcharout", "varcharrecv", "varcharsend", "varchartypmodin", "varchartypmodout",
         "-", "i", "x", 100),
        (1114, "timestamp", 11, 8, 1, "b", "D", 0, ",", 0, "-", 0, 1115, "timestamp_in",
         "timestamp_out", "timestamp_recv", "timestamp_send", "timestamptypmodin",
         "timestamptypmodout", "-", "d", "p", 0),
        (1700, "numeric", 11, -1, 0, "b", "N", 0, ",", 0, "-", 0, 1231, "numeric_in",
         "numeric_out", "numeric_recv", "numeric_send", "numerictypmodin", "numerictypmodout",
         "-", "i", "m", 0),
        (2249, "record", 11, -1, 0, "p", "P", 0, ",", 0, "-", 0, 2287, "record_in",
         "record_out", "record_recv", "record_send", "-", "-", "-", "d", "x", 0),
        (2287, "_record", 11, -1, 0, "p", "P", 0, ",", 0, "array_subscript_handler", 2249, 0,
         "array_in", "array_out", "array_recv", "array_send", "-", "-", "array_typanalyze",
         "d", "x", 0),
        (3802, "jsonb", 11, -1, 0, "b", "U", 0, ",", 0, "jsonb_subscript_handler", 0, 3807,
         "jsonb_in", "jsonb_out", "jsonb_recv", "jsonb_send", "-", "-", "-", "i", "x", 0),
    ]


def test_psycopg_type_lookup(conn: apsw.Connection) -> None:
    text = """SELECT typname AS name, oid, typarray AS array_oid,
                _pg_regtype_out(oid) AS regtype, typdelim AS delimiter
              FROM pg_catalog.pg_type t WHERE t.oid = to_regtype(?) ORDER BY t.oid"""
    assert q(conn, text, "hstore") == []
    assert q(conn, text, "character varying") == [
        ("varchar", 1043, 1015, "character varying", ",")]


# --- functions -------------------------------------------------------------------------------


def test_format_type_is_postgresql_s(conn: apsw.Connection) -> None:
    cases = [  # (oid, typmod) -> PostgreSQL 15's format_type
        ((1042, None), "character"), ((1042, -1), "bpchar"), ((1043, None), "character varying"),
        ((1043, 24), "character varying(20)"), ((18, None), '"char"'),
        ((1700, 655366), "numeric(10,2)"), ((1184, -1), "timestamp with time zone"),
        ((1083, None), "time without time zone"), ((99999, None), "???"),
        ((1007, -1), "integer[]"), ((1015, 24), "character varying(20)[]"), ((19, None), "name"),
        ((2249, -1), "record"), ((23, None), "integer"), ((None, 1), None),
    ]
    for (oid, typmod), expected in cases:
        assert one(conn, "SELECT format_type(?, ?)", oid, typmod) == expected, (oid, typmod)
    assert one(conn, "SELECT format_type(?, NULL)", oid_of(conn, "v") + 1) == "v"


@pytest.mark.parametrize(("decltype", "default", "expected"), [
    # PostgreSQL 15: CREATE TABLE dflt (<column> <type> DEFAULT <value>), pg_get_expr(adbin)
    ("INTEGER", "(-1)", "'-1'::integer"),
    ("BIGINT", "(-5)", "'-5'::integer"),
    ("BIGINT", "(5000000000)", "'5000000000'::bigint"),
    ("NUMERIC_TEXT", "(1.5)", "1.5"),
    ("NUMERIC_TEXT", "(-1.5)", "'-1.5'::numeric"),
    ("NUMERIC_TEXT", "(5)", "5"),
    ("DOUBLE PRECISION", "(-2)", "'-2'::integer"),
    ("TEXT", "(5)", "5"),
    ("BPCHAR(3)", "('ab')", "'ab'::bpchar"),
    ("DATE_TEXT", "('2020-01-01')", "'2020-01-01'::date"),
    ("BOOL_INT", "('yes')", "true"),
    ("BOOL_INT", "(0)", "false"),
    ("INTEGER", "('7')", "7"),
    ("BIGINT", "('7')", "'7'::bigint"),
    ("NUMERIC_TEXT", "('1e3')", "'1000'::numeric"),
    ("VARCHAR(4)", "('it''s')", "'it''s'::character varying"),
    ("SMALLINT", "(3)", "3"),
    ("DURATION_TEXT", "('1 day')", "'1 day'::interval"),
    ("TEXT", "(NULL)", None),
    ("TIMESTAMP_TEXT", "(_pg_localtimestamp())", "LOCALTIMESTAMP"),
    ("DATE_TEXT", "(_pg_current_date())", "CURRENT_DATE"),
    ("UUID_TEXT", "(_pg_gen_random_uuid())", "gen_random_uuid()"),
    ("REAL", "(1.5)", "1.5"),
    ("TEXT", "CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"),
    ("VARCHAR(5)", "(_PG_CAST('x', 1043, -1))", "'x'::character varying"),
    ("BIGINT", "(_PG_CAST(0, 20, -1))", "(0)::bigint"),
    ("ARRAY_TEXT(1007)", "(_PG_CAST('{}', 1007, -1))", "'{}'::integer[]"),
    ("JSONB_TEXT", "(_PG_CAST('{}', 3802, -1))", "'{}'::jsonb"),
    ("NUMERIC_TEXT", "(1.50)", "1.50"),
    ("INTEGER", "(2 + 3)", "(2 + 3)"),
])
def test_defaults_as_pg_get_expr_prints_them(decltype: str, default: str,
                                              expected: str | None) -> None:
    conn = apsw.Connection(":memory:")
    install(conn, database="ref", user="postgres")
    conn.execute(f'CREATE TABLE "dflt" ("c" {decltype} DEFAULT {default})')
    assert q(conn, """SELECT (SELECT pg_catalog.pg_get_expr(adbin, adrelid)
                              FROM pg_catalog.pg_attrdef WHERE adrelid = a.attrelid), atthasdef
                      FROM pg_catalog.pg_attribute a WHERE attrelid = _pg_regclass('dflt')
                      """) == [(expected, int(expected is not None))]


def test_regclass_conversions(conn: apsw.Connection) -> None:
    u = oid_of(conn, "u")
    assert one(conn, "SELECT _pg_regclass('u')") == u
    assert one(conn, "SELECT _pg_regclass('public.u')") == u
    assert one(conn, "SELECT _pg_regclass(' \"u\" ')") == u
    assert one(conn, "SELECT _pg_regclass('ref.public.u')") == u
    assert one(conn, "SELECT _pg_regclass('U')") == u  # unquoted names are folded
    assert one(conn, "SELECT _pg_regclass(?)", str(u)) == u
    assert one(conn, "SELECT _pg_regclass(12345)") == 12345  # an OID is not checked
    assert one(conn, "SELECT _pg_regclass('pg_catalog.pg_class')") == 1259
    assert one(conn, "SELECT _pg_regclass('pg_constraint')") == 2606
    assert one(conn, "SELECT _pg_regclass('information_schema.columns')") == 13295
    assert one(conn, "SELECT _pg_regclass_out(?)", u) == "u"
    assert one(conn, "SELECT _pg_regclass_out(1259)") == "pg_class"
    assert one(conn, "SELECT _pg_regclass_out(13295)") == "information_schema.columns"
    assert one(conn, "SELECT _pg_regclass_out(424242)") == "424242"
    assert one(conn, "SELECT _pg_regclass_out(0)") == "-"
    assert one(conn, "SELECT to_regclass('nope')") is None
    assert one(conn, "SELECT to_regclass('u_uid_seq')") == oid_of(conn, "u_uid_seq")
    for name, message in (("nope", 'relation "nope" does not exist'),
                          ('public."Nope"', 'relation "public.Nope" does not exist')):
        with pytest.raises(CatalogError, match=re.escape(message)) as info:
            q(conn, "SELECT _pg_regclass(?)", name)
        assert info.value.sqlstate == "42P01"


def test_regtype_regnamespace_regrole_conversions(conn: apsw.Connection) -> None:
    assert one(conn, "SELECT _pg_regtype('integer')") == 23
    assert one(conn, "SELECT _pg_regtype('character varying(20)')") == 1043
    assert one(conn, "SELECT _pg_regtype('int4[]')") == 1007
    assert one(conn, "SELECT _pg_regtype('t')") == oid_of(conn, "t") + 1
    assert one(conn, "SELECT _pg_regtype_out(1042)") == "character"
    assert one(conn, "SELECT _pg_regtype_out(0)") == "-"
    assert one(conn, "SELECT to_regtype('hstore')") is None
    with pytest.raises(CatalogError, match='type "hstore" does not exist') as info:
        q(conn, "SELECT _pg_regtype('hstore')")
    assert info.value.sqlstate == "42704"
    assert one(conn, "SELECT _pg_regnamespace_out(2200)") == "public"
    assert one(conn, "SELECT _pg_regnamespace_out(11)") == "pg_catalog"
    assert one(conn, "SELECT _pg_regnamespace('information_schema')") == 13207
    assert one(conn, "SELECT _pg_regrole_out(10)") == "postgres"
    assert one(conn, "SELECT _pg_regrole('postgres')") == 10
    assert one(conn, "SELECT _pg_regproc_out('array_in')") == "array_in"
    assert one(conn, "SELECT _pg_regproc('pg_catalog.array_in')") == "array_in"


def test_session_and_misc_functions() -> None:
    conn = apsw.Connection(":memory:")
    install(conn, database="shop", user="alice", in_recovery=True, backend_pid=4242)
    row = q(conn, """SELECT current_database(), current_schema(), current_schemas(1),
                       current_schemas(0), current_user(), session_user(), pg_is_in_recovery(),
                       pg_backend_pid(), pg_get_userbyid(10), pg_get_userbyid(7),
                       pg_encoding_to_char(6), pg_encoding_to_char(99),
                       has_table_privilege('alice', 't', 'SELECT'),
                       has_schema_privilege('public', 'USAGE'),
                       obj_description(1259, 'pg_class'), col_description(1259, 1)""")
    assert row == [("shop", "public", '["pg_catalog","public"]', '["public"]', "alice",
                    "alice", 1, 4242, "alice", "unknown (OID=7)", "UTF8", "", 1, 1, None,
                    None)]
    version = str(one(conn, "SELECT version()"))
    assert version.startswith("PostgreSQL 15.0 (Borealis) on ")
    assert re.match(r"PostgreSQL (\d+)\.?(\d+)?(?:\.(\d+))?", version)  # SQLAlchemy's parse
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00",
                        str(one(conn, "SELECT pg_postmaster_start_time()")))
    assert q(conn, "SELECT rolname, rolsuper FROM pg_catalog.pg_roles WHERE oid = 10") == [
        ("alice", 1)]
    assert q(conn, "SELECT usename FROM pg_catalog.pg_user") == [("alice",)]


def test_pg_size_pretty_is_postgresql_s(conn: apsw.Connection) -> None:
    cases = {0: "0 bytes", 1: "1 bytes", 10239: "10239 bytes", 10240: "10 kB",
             10752: "11 kB", 10753: "11 kB", 1048575: "1024 kB", 20971519: "20 MB",
             20971520: "20 MB", 21474836479: "20 GB", 10995116277760: "10 TB",
             1125899906842624: "1024 TB", 23058430092136940: "20 PB", -10240: "-10 kB",
             -10753: "-11 kB"}
    for size, expected in cases.items():
        assert one(conn, "SELECT pg_size_pretty(?)", size) == expected, size


def test_relation_sizes_count_pages(conn: apsw.Connection) -> None:
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
                 "INSERT INTO t (id, name, created, ts) SELECT i, 'x', '', '' FROM n")
    page = one(conn, "PRAGMA page_size")
    assert isinstance(page, int)
    table = one(conn, "SELECT pg_relation_size('t')")
    assert isinstance(table, int) and table > page and table % page == 0
    assert one(conn, "SELECT pg_indexes_size('t')") == 0  # its pkey is the table's b-tree
    assert one(conn, "SELECT pg_indexes_size('u')") == 5 * page  # five empty indexes
    assert one(conn, "SELECT pg_total_relation_size('u')") == 6 * page
    assert one(conn, "SELECT pg_relation_size('v')") == 0
    assert one(conn, "SELECT pg_database_size('ref')") == page * one(conn, "PRAGMA page_count")


# --- information_schema ----------------------------------------------------------------------


def test_information_schema_columns(conn: apsw.Connection) -> None:
    rows = q(conn, """
        SELECT table_name, column_name, ordinal_position, column_default, is_nullable,
          data_type, character_maximum_length, character_octet_length, numeric_precision,
          numeric_precision_radix, numeric_scale, datetime_precision, udt_schema, udt_name,
          dtd_identifier, is_identity, identity_generation, identity_start, identity_maximum,
          is_generated, is_updatable
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY table_name, ordinal_position""")
    by_column = {(r[0], r[1]): r[2:] for r in rows}
    assert len(rows) == 27
    assert by_column[("t", "id")] == (1, None, "NO", "integer", None, None, 32, 2, 0, None,
                                      "pg_catalog", "int4", "1", "NO", None, None, None,
                                      "NEVER", "YES")
    assert by_column[("t", "name")][:6] == (2, "'x'::character varying", "NO",
                                            "character varying", 20, 80)
    assert by_column[("t", "score")][3:9] == ("numeric", None, None, 10, 10, 2)
    assert by_column[("t", "created")][3:9] == ("timestamp without time zone", None, None,
                                                None, None, None)
    assert by_column[("t", "created")][9] == 6
    assert by_column[("t", "tags")][3] == "ARRAY" and by_column[("t", "tags")][11] == "_int4"
    assert by_column[("t", "note")][4:6] == (None, 1073741824)
    assert by_column[("t", "r")][6:9] == (24, 2, None)
    assert by_column[("t", "dt")][9] == 0
    assert by_column[("t", "c")][3:6] == ("character", 5, 20)
    assert by_column[("u", "uid")][1] == "nextval('u_uid_seq'::regclass)"
    assert by_column[("w", "x")][13:17] == ("YES", "ALWAYS", "1", "9223372036854775807")
    assert by_column[("v", "name")][2:5] == ("YES", "character varying", 20)
    assert by_column[("v", "name")][-1] == "NO"  # SQLite views are not updatable


def test_information_schema_tables_and_constraints(conn: apsw.Connection) -> None:
    assert q(conn, """SELECT table_name, table_type, is_insertable_into
                      FROM information_schema.tables WHERE table_schema = 'public'
                      ORDER BY table_name""") == [
        ("t", "BASE TABLE", "YES"), ("u", "BASE TABLE", "YES"), ("v", "VIEW", "NO"),
        ("w", "BASE TABLE", "YES")]
    oid_t, oid_u, oid_w = (oid_of(conn, n) for n in "tuw")
    assert sorted(q(conn, """SELECT constraint_name, table_name, constraint_type,
                               is_deferrable, initially_deferred, nulls_distinct
                             FROM information_schema.table_constraints
                             WHERE table_schema = 'public'""")) == sorted([
        (f"2200_{oid_t}_1_not_null", "t", "CHECK", "NO", "NO", None),
        (f"2200_{oid_t}_2_not_null", "t", "CHECK", "NO", "NO", None),
        ("t_pkey", "t", "PRIMARY KEY", "NO", "NO", None),
        ("t_score_check", "t", "CHECK", "NO", "NO", None),
        (f"2200_{oid_u}_1_not_null", "u", "CHECK", "NO", "NO", None),
        (f"2200_{oid_u}_2_not_null", "u", "CHECK", "NO", "NO", None),
        ("u_ab_key", "u", "UNIQUE", "NO", "NO", "YES"),
        ("u_code_key", "u", "UNIQUE", "NO", "NO", "YES"),
        ("u_pkey", "u", "PRIMARY KEY", "NO", "NO", None),
        ("u_t_id_fkey", "u", "FOREIGN KEY", "NO", "NO", None),
        (f"2200_{oid_w}_1_not_null", "w", "CHECK", "NO", "NO", None),
        (f"2200_{oid_w}_2_not_null", "w", "CHECK", "NO", "NO", None),
        ("w_fk", "w", "FOREIGN KEY", "YES", "YES", None),
        ("w_pkey", "w", "PRIMARY KEY", "NO", "NO", None)])
    assert q(conn, """SELECT constraint_name, table_name, column_name, ordinal_position,
                        position_in_unique_constraint FROM information_schema.key_column_usage
                      ORDER BY table_name, constraint_name, ordinal_position""") == [
        ("t_pkey", "t", "id", 1, None), ("u_ab_key", "u", "a", 1, None),
        ("u_ab_key", "u", "b", 2, None), ("u_code_key", "u", "code", 1, None),
        ("u_pkey", "u", "uid", 1, None), ("u_t_id_fkey", "u", "t_id", 1, 1),
        ("w_fk", "w", "y", 1, 1), ("w_fk", "w", "z", 2, 2), ("w_pkey", "w", "x", 1, None),
        ("w_pkey", "w", "y", 2, None)]
    assert q(conn, """SELECT constraint_name, unique_constraint_name, match_option,
                        update_rule, delete_rule FROM information_schema.referential_constraints
                      ORDER BY constraint_name""") == [
        ("u_t_id_fkey", "t_pkey", "NONE", "NO ACTION", "CASCADE"),
        ("w_fk", "u_ab_key", "NONE", "SET NULL", "NO ACTION")]
    assert q(conn, """SELECT table_name, column_name, constraint_name
                      FROM information_schema.constraint_column_usage
                      ORDER BY constraint_name, column_name""") == [
        ("t", "id", "t_pkey"), ("t", "score", "t_score_check"), ("u", "a", "u_ab_key"),
        ("u", "b", "u_ab_key"), ("u", "code", "u_code_key"), ("u", "uid", "u_pkey"),
        ("t", "id", "u_t_id_fkey"), ("u", "a", "w_fk"), ("u", "b", "w_fk"),
        ("w", "x", "w_pkey"), ("w", "y", "w_pkey")]
    assert q(conn, """SELECT check_clause FROM information_schema.check_constraints
                      WHERE constraint_name = ?""", f"2200_{oid_t}_2_not_null") == [
        ("name IS NOT NULL",)]


def test_information_schema_schemata_views_sequences(conn: apsw.Connection) -> None:
    assert q(conn, "SELECT catalog_name, schema_name, schema_owner "
                   "FROM information_schema.schemata ORDER BY schema_name") == [
        ("ref", "information_schema", "postgres"), ("ref", "pg_catalog", "postgres"),
        ("ref", "pg_toast", "postgres"), ("ref", "public", "pg_database_owner")]
    assert q(conn, "SELECT table_name, view_definition, check_option "
                   "FROM information_schema.views") == [("v", " SELECT id, name FROM t;", "NONE")]
    assert one(conn, "SELECT pg_get_viewdef(_pg_regclass('v'))") == " SELECT id, name FROM t;"
    assert q(conn, "SELECT * FROM information_schema.sequences") == [
        ("ref", "public", "u_uid_seq", "integer", 32, 2, 0, "1", "1", "2147483647", "1", "NO"),
        ("ref", "public", "w_x_seq", "bigint", 64, 2, 0, "1", "1", "9223372036854775807", "1",
         "NO")]


def test_pg_sequences_show_the_live_value(conn: apsw.Connection) -> None:
    text = "SELECT sequencename, data_type, last_value FROM pg_catalog.pg_sequences"
    assert q(conn, text) == [("u_uid_seq", 23, None), ("w_x_seq", 20, None)]
    conn.execute("UPDATE _borealis_sequences SET last_value = 7, is_called = 1 "
                 "WHERE name = 'u_uid_seq'")  # nextval: no DDL, no schema change
    assert q(conn, text)[0] == ("u_uid_seq", 23, 7)
    assert one(conn, "SELECT pg_get_serial_sequence('u', 'uid')") == "public.u_uid_seq"
    assert one(conn, "SELECT pg_get_serial_sequence('public.u', 'a')") is None
    with pytest.raises(CatalogError, match='column "nope" of relation "u" does not exist'):
        q(conn, "SELECT pg_get_serial_sequence('u', 'nope')")


# --- the mechanism ---------------------------------------------------------------------------


def test_every_row_has_its_table_s_columns(conn: apsw.Connection) -> None:
    for spec in catalog.SPECS.values():
        width = len(spec.columns)
        for row in q(conn, f'SELECT * FROM "{spec.sqlite_name}"'):
            assert len(row) == width, spec.name
        _, rows = catalog.Catalog(conn, database="ref", user="postgres",
                                  settings=None).rows(spec)
        assert all(len(row) == width for row in rows), spec.name


def test_lookups_agree_with_scans(conn: apsw.Connection) -> None:
    """The equality lookup (BestIndex) is an optimisation of the scan: for every table and
    column, ``WHERE col = value`` finds what it finds in a plain SQLite copy of the table
    (the reference model: SQLite's own comparison and affinity rules), for the value and for
    its text (psql writes ``WHERE c.oid = '16413'``)."""
    for spec in catalog.SPECS.values():
        if spec.hidden:
            continue
        table = f'"{spec.sqlite_name}"'
        conn.execute(f"DROP TABLE IF EXISTS temp.reference; "
                     f"CREATE TEMP TABLE reference AS SELECT * FROM {table}")
        rows = q(conn, "SELECT * FROM temp.reference")
        for i, (column, _) in enumerate(spec.columns):
            values = sorted({row[i] for row in rows if row[i] is not None}, key=repr)
            for value in [*values[:2], *[str(v) for v in values[:1]], None]:
                where = f' WHERE "{column}" = ?'
                found = q(conn, f"SELECT * FROM {table}{where}", value)
                expected = q(conn, f"SELECT * FROM temp.reference{where}", value)
                assert sorted(found, key=repr) == sorted(expected, key=repr), (
                    spec.name, column, value)


def test_schema_changes_are_visible_at_once(conn: apsw.Connection) -> None:
    columns = "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = ? AND attnum > 0"
    conn.execute('CREATE TABLE "extra" ("a" INTEGER)')
    oid = oid_of(conn, "extra")
    assert q(conn, columns, oid) == [("a",)]
    conn.execute('ALTER TABLE "extra" ADD COLUMN "b" TEXT')
    assert q(conn, columns, oid) == [("a",), ("b",)]
    conn.execute('ALTER TABLE "extra" RENAME TO "renamed"')
    assert oid_of(conn, "renamed") == oid  # a rename keeps the OID, as in PostgreSQL
    conn.execute('DROP TABLE "renamed"')
    assert q(conn, "SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'renamed'") == []


def test_a_rolled_back_schema_version_is_not_mistaken_for_another() -> None:
    # Inside a transaction, DDL then ROLLBACK then other DDL reuses schema_version numbers.
    conn = apsw.Connection(":memory:")
    install(conn, database="ref", user="postgres")
    names = "SELECT relname FROM pg_catalog.pg_class WHERE relnamespace = 2200"
    conn.execute("BEGIN; CREATE TABLE first (a INTEGER)")
    assert q(conn, names) == [("first",)]
    conn.execute("ROLLBACK")
    conn.execute("BEGIN; CREATE TABLE second (a INTEGER)")
    assert q(conn, names) == [("second",)]
    conn.execute("COMMIT")
    assert q(conn, names) == [("second",)]
    conn.execute("BEGIN; CREATE TABLE third (a INTEGER)")
    assert q(conn, names) == [("second",), ("third",)]
    conn.execute("ROLLBACK; CREATE TABLE fourth (a INTEGER)")
    assert q(conn, names) == [("second",), ("fourth",)]


def test_snapshot_is_reused_until_the_schema_changes(conn: apsw.Connection) -> None:
    cat = catalog.Catalog(conn, database="ref", user="postgres", settings=None)
    first = cat.snapshot()
    assert cat.snapshot() is first
    conn.execute("UPDATE _borealis_sequences SET last_value = 9")  # data, not schema
    assert cat.snapshot() is first
    conn.execute("UPDATE _borealis_sequences SET owner_table = NULL")  # ownership
    second = cat.snapshot()
    assert second is not first
    conn.execute("CREATE INDEX extra ON t (name)")
    assert cat.snapshot() is not second


def test_oids_are_stable_across_connections(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite")
    first = apsw.Connection(path)
    functions.register(first)
    install(first, database="ref", user="postgres")
    _schema(first)
    text = """SELECT oid, relname FROM pg_catalog.pg_class WHERE relnamespace = 2200
              UNION ALL SELECT oid, conname FROM pg_catalog.pg_constraint
              UNION ALL SELECT oid, typname FROM pg_catalog.pg_type WHERE typnamespace = 2200
              ORDER BY 1"""
    before = q(first, text)
    second = apsw.Connection(path)
    install(second, database="ref", user="postgres")
    assert q(second, text) == before
    assert all(oid >= 16384 for oid, _ in before)  # type: ignore[operator]
    assert len({oid for oid, _ in before}) == len(before)
    first.execute('CREATE TABLE "later" ("a" INTEGER)')  # another connection's DDL
    assert oid_of(second, "later") == oid_of(first, "later")


def test_read_only_connection_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    writer = apsw.Connection(str(path))
    functions.register(writer)
    _schema(writer)
    writer.close()
    content = path.read_bytes()
    reader = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    install(reader, database="ref", user="postgres", in_recovery=True)
    assert q(reader, "SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = 2200") == [
        (13,)]
    assert one(reader, "SELECT pg_get_indexdef(_pg_regclass('u_pkey'))") == \
        "CREATE UNIQUE INDEX u_pkey ON public.u USING btree (uid)"
    assert one(reader, "SELECT pg_is_in_recovery()") == 1
    assert q(reader, "SELECT name FROM sqlite_temp_schema") == []
    reader.close()
    assert path.read_bytes() == content


def test_a_user_table_named_pg_class(conn: apsw.Connection) -> None:
    conn.execute('CREATE TABLE "pg_class" ("mine" TEXT)')
    conn.execute("INSERT INTO pg_class VALUES ('row')")
    assert q(conn, "SELECT * FROM pg_class") == [("row",)]  # public.pg_class: untouched
    mine = q(conn, """SELECT oid, relnamespace FROM pg_catalog.pg_class
                      WHERE relname = 'pg_class' ORDER BY oid""")
    assert mine[0] == (1259, 11) and mine[1][1] == 2200
    # pg_catalog comes first on the search path: the user's table is not visible by name
    assert one(conn, "SELECT pg_table_is_visible(?)", mine[1][0]) == 0
    assert one(conn, "SELECT _pg_regclass('pg_class')") == 1259
    assert one(conn, "SELECT _pg_regclass('public.pg_class')") == mine[1][0]
    assert one(conn, "SELECT _pg_regclass_out(?)", mine[1][0]) == "public.pg_class"


def test_sqlite_and_borealis_tables_are_hidden() -> None:
    conn = apsw.Connection(":memory:")
    install(conn, database="ref", user="postgres")
    conn.execute('CREATE TABLE "auto" ("id" INTEGER PRIMARY KEY AUTOINCREMENT); '
                 "INSERT INTO auto DEFAULT VALUES; ANALYZE; "
                 "CREATE TABLE _borealis_internal (x); CREATE INDEX _borealis_i ON "
                 "_borealis_internal (x)")
    assert q(conn, "SELECT relname, relkind, reltuples FROM pg_catalog.pg_class "
                   "WHERE relnamespace = 2200 ORDER BY 1") == [
        ("auto", "r", 1.0), ("auto_pkey", "i", 0.0)]


def test_sqlite_ddl_forms_are_read() -> None:
    ddl = catalog_functions.parse_table_ddl(
        'CREATE TABLE "My T" ([Id] INTEGER CONSTRAINT "my pk" PRIMARY KEY DESC ON CONFLICT '
        "REPLACE, b INT CONSTRAINT b_pos CHECK (b > 0) CONSTRAINT b_u UNIQUE, "
        "c TEXT COLLATE NOCASE DEFAULT 'CHECK (x)', g INT GENERATED ALWAYS AS (b * 2) STORED, "
        "r INT REFERENCES other MATCH FULL DEFERRABLE INITIALLY DEFERRED NOT NULL, "
        "CHECK (b < 10 AND c <> ','), FOREIGN KEY (b, c) REFERENCES other (x, y) "
        "ON DELETE CASCADE NOT DEFERRABLE) WITHOUT ROWID, STRICT")
    summary = [(c.kind, c.name, c.columns, c.expression, c.ref_table, c.ref_columns,
                c.match_full, c.deferrable, c.deferred) for c in ddl.constraints]
    assert summary == [
        ("p", "my pk", ["Id"], None, "", [], False, False, False),
        ("c", "b_pos", ["b"], "b > 0", "", [], False, False, False),
        ("u", "b_u", ["b"], None, "", [], False, False, False),
        ("f", None, ["r"], None, "other", [], True, True, True),
        ("c", None, [], "b < 10 AND c <> ','", "", [], False, False, False),
        ("f", None, ["b", "c"], None, "other", ["x", "y"], False, False, False),
    ]
    assert ddl.generated == {"g": "b * 2"}
    index = catalog_functions.parse_index_ddl(
        'CREATE UNIQUE INDEX IF NOT EXISTS "i" ON "t" (lower(a) DESC, b COLLATE NOCASE ASC) '
        "WHERE a > 0")
    assert (index.expressions, index.predicate) == (["lower(a)", "b"], "a > 0")


def test_unnamed_constraints_get_postgresql_s_generated_names() -> None:
    conn = apsw.Connection(":memory:")
    install(conn, database="ref", user="postgres")
    conn.execute('CREATE TABLE "p" ("a" INTEGER, "b" INTEGER, "c" INTEGER, '
                 'UNIQUE ("a", "b"), CHECK ("a" > 0), CHECK ("a" < "b"), CHECK ("c" > 0), '
                 'CHECK ("c" < 9), PRIMARY KEY ("c")); '
                 'CREATE TABLE "k" ("x" INTEGER REFERENCES "p" ("c"), "y" INTEGER, "z" INTEGER, '
                 'FOREIGN KEY ("y", "z") REFERENCES "p" ("a", "b"))')
    assert q(conn, "SELECT conname, contype FROM pg_catalog.pg_constraint ORDER BY 1") == [
        ("k_x_fkey", "f"), ("k_y_z_fkey", "f"), ("p_a_b_key", "u"), ("p_a_check", "c"),
        ("p_c_check", "c"), ("p_c_check1", "c"), ("p_check", "c"), ("p_pkey", "p")]
    assert one(conn, """SELECT pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint
                        WHERE conname = 'k_y_z_fkey'""") == \
        "FOREIGN KEY (y, z) REFERENCES p(a, b)"
    assert one(conn, """SELECT _pg_regclass_out(conindid) FROM pg_catalog.pg_constraint
                        WHERE conname = 'k_y_z_fkey'""") == "p_a_b_key"


def test_pg_settings_reads_the_session_s_settings() -> None:
    conn = apsw.Connection(":memory:")
    settings = {"application_name": "psql", "TimeZone": "UTC"}
    install(conn, database="ref", user="postgres", settings=settings)
    text = "SELECT name, setting FROM pg_catalog.pg_settings ORDER BY name"
    assert q(conn, text) == [("TimeZone", "UTC"), ("application_name", "psql")]
    settings["application_name"] = "other"
    assert q(conn, text)[1] == ("application_name", "other")
