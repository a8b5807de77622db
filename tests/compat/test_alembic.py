"""Alembic's operations against a Borealis writer: a migration and its reversal, in one
transaction each, as ``alembic upgrade`` and ``downgrade`` run them (``Operations`` on a
``MigrationContext``: what a migration script's ``op`` is). ALTER COLUMN TYPE, SET NOT NULL,
SET/DROP DEFAULT, RENAME (without COLUMN: it renamed the table before), ADD/DROP CONSTRAINT
(foreign key, unique, check), CREATE/DROP INDEX, ADD/DROP COLUMN.

The expected states are what SQLAlchemy's inspector reflected from PostgreSQL 15 after the
same migration (a throwaway server on this machine, 2026-11-27), pasted; CHECK constraints
are compared by name (PostgreSQL prints the expression as ``amount > 0::numeric``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from compat_cluster import Cluster
from sqlalchemy import Column, Engine, Integer, Numeric, String, create_engine, inspect, text

alembic = pytest.importorskip("alembic", reason="Alembic is a test dependency (pyproject)")
from alembic.migration import MigrationContext  # noqa: E402
from alembic.operations import Operations  # noqa: E402


def upgrade(op: Operations) -> None:
    op.create_table("al_account", Column("id", Integer, primary_key=True),
                    Column("name", String(50), nullable=False))
    op.create_table("al_txn", Column("id", Integer, primary_key=True),
                    Column("account_id", Integer), Column("amount", Integer))
    op.add_column("al_account", Column("email", String(100)))
    op.execute("INSERT INTO al_account (name, email) VALUES ('a', 'a@x'), ('b', 'b@x')")
    op.execute("INSERT INTO al_txn (account_id, amount) VALUES (1, 5), (2, 7)")
    op.alter_column("al_txn", "amount", type_=Numeric(12, 2), existing_type=Integer)
    op.alter_column("al_account", "email", nullable=False, existing_type=String(100))
    op.create_foreign_key("al_txn_account_fk", "al_txn", "al_account", ["account_id"], ["id"],
                          ondelete="CASCADE")
    op.create_index("al_txn_account_idx", "al_txn", ["account_id"])
    op.create_unique_constraint("al_account_email_key", "al_account", ["email"])
    op.alter_column("al_account", "name", server_default="anon", existing_type=String(50))
    op.alter_column("al_account", "email", new_column_name="mail", existing_type=String(100))
    op.create_check_constraint("al_txn_amount_positive", "al_txn", "amount > 0")


def downgrade(op: Operations) -> None:
    op.drop_constraint("al_txn_amount_positive", "al_txn", type_="check")
    op.alter_column("al_account", "mail", new_column_name="email", existing_type=String(100))
    op.alter_column("al_account", "name", server_default=None, existing_type=String(50))
    op.drop_constraint("al_account_email_key", "al_account", type_="unique")
    op.drop_index("al_txn_account_idx", "al_txn")
    op.drop_constraint("al_txn_account_fk", "al_txn", type_="foreignkey")
    op.alter_column("al_account", "email", nullable=True, existing_type=String(100))
    op.alter_column("al_txn", "amount", type_=Integer, existing_type=Numeric(12, 2),
                    postgresql_using="amount::integer")
    op.drop_column("al_account", "email")


def migrate(engine: Engine, step: Callable[[Operations], None]) -> None:
    with engine.begin() as conn:
        step(Operations(MigrationContext.configure(conn)))


def state(engine: Engine) -> dict[str, Any]:
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in ("al_account", "al_txn"):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c["default"])
                        for c in insp.get_columns(table)],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": [(f["name"], f["constrained_columns"], f["referred_table"],
                     f["referred_columns"], f["options"]) for f in insp.get_foreign_keys(table)],
            "indexes": sorted((i["name"], i["column_names"], i["unique"])
                              for i in insp.get_indexes(table)),
            "uniques": sorted((u["name"], u["column_names"])
                              for u in insp.get_unique_constraints(table)),
            "checks": sorted(c["name"] for c in insp.get_check_constraints(table)),
        }
    return out


AFTER_UPGRADE = {
    "al_account": {
        "columns": [("id", "INTEGER", False, "nextval('al_account_id_seq'::regclass)"),
                    ("name", "VARCHAR(50)", False, "'anon'::character varying"),
                    ("mail", "VARCHAR(100)", False, None)],
        "pk": ["id"], "fks": [], "indexes": [("al_account_email_key", ["mail"], True)],
        "uniques": [("al_account_email_key", ["mail"])], "checks": []},
    "al_txn": {
        "columns": [("id", "INTEGER", False, "nextval('al_txn_id_seq'::regclass)"),
                    ("account_id", "INTEGER", True, None),
                    ("amount", "NUMERIC(12, 2)", True, None)],
        "pk": ["id"],
        "fks": [("al_txn_account_fk", ["account_id"], "al_account", ["id"],
                 {"ondelete": "CASCADE"})],
        "indexes": [("al_txn_account_idx", ["account_id"], False)], "uniques": [],
        "checks": ["al_txn_amount_positive"]},
}

AFTER_DOWNGRADE = {
    "al_account": {
        "columns": [("id", "INTEGER", False, "nextval('al_account_id_seq'::regclass)"),
                    ("name", "VARCHAR(50)", False, None)],
        "pk": ["id"], "fks": [], "indexes": [], "uniques": [], "checks": []},
    "al_txn": {
        "columns": [("id", "INTEGER", False, "nextval('al_txn_id_seq'::regclass)"),
                    ("account_id", "INTEGER", True, None), ("amount", "INTEGER", True, None)],
        "pk": ["id"], "fks": [], "indexes": [], "uniques": [], "checks": []},
}


def test_a_migration_and_its_reversal_leave_what_postgres_leaves(cluster: Cluster) -> None:
    engine = create_engine(cluster.url("psycopg"))
    try:
        migrate(engine, upgrade)
        got = state(engine)
        assert got == AFTER_UPGRADE
        with engine.begin() as conn:
            assert conn.execute(text("SELECT id, account_id, amount FROM al_txn ORDER BY id")
                                ).fetchall() == [(1, 1, 5), (2, 2, 7)]
            conn.execute(text("INSERT INTO al_account (mail) VALUES ('c@x')"))
            assert conn.execute(text("SELECT name FROM al_account WHERE mail = 'c@x'")
                                ).scalar_one() == "anon"
            conn.execute(text("DELETE FROM al_account WHERE id = 1"))   # ON DELETE CASCADE
            assert conn.execute(text("SELECT count(*) FROM al_txn")).scalar_one() == 1
        migrate(engine, downgrade)
        assert state(engine) == AFTER_DOWNGRADE
        with engine.connect() as conn:
            assert conn.execute(text("SELECT amount FROM al_txn")).fetchall() == [(7,)]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS al_txn, al_account"))
        engine.dispose()
