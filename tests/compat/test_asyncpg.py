"""asyncpg against a Borealis writer: it prepares every statement and encodes parameters
in binary by the types Describe reported, so this checks parameter and result type OIDs
before anything runs, binary formats for many types, executemany, transactions and
``copy_records_to_table``."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from compat_cluster import Cluster


def run(cluster: Cluster, body: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        host, port = cluster.writer_address
        conn = await asyncpg.connect(host=host, port=port, user="postgres",
                                     database="postgres", ssl=False, timeout=10)
        try:
            return await asyncio.wait_for(body(conn), 60)
        finally:
            await conn.close()

    return asyncio.run(main())


def test_fetch_with_parameters_of_many_types(cluster: Cluster) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        assert await conn.fetchval("select 1") == 1
        row = await conn.fetchrow("select $1::int + 1, $2::text", 1, "x")
        assert tuple(row) == (2, "x")
        await conn.execute(
            "CREATE TABLE ap_types (id bigserial PRIMARY KEY, i int, s smallint, b bigint, "
            "f float8, r real, n numeric(12,3), t text, v varchar(10), ok boolean, "
            "d date, ts timestamp, tz timestamptz, u uuid, j jsonb, raw bytea)")
        values = (7, 3, 2**40, 1.5, 0.25, decimal.Decimal("12.345"), "text", "var", True,
                  dt.date(2024, 5, 6), dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
                  dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
                  uuid.UUID("12345678-1234-5678-1234-567812345678"), '{"a": [1, 2]}',
                  b"\x00\xff")
        new_id = await conn.fetchval(
            "INSERT INTO ap_types (i, s, b, f, r, n, t, v, ok, d, ts, tz, u, j, raw) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
            *values)
        assert new_id == 1
        row = await conn.fetchrow("SELECT i, s, b, f, r, n, t, v, ok, d, ts, tz, u, j, raw "
                                  "FROM ap_types WHERE id = $1", new_id)
        assert tuple(row) == values
        found = await conn.fetch("SELECT id FROM ap_types WHERE i > $1 AND t = $2", 5, "text")
        assert [r["id"] for r in found] == [1]

    run(cluster, body)


def test_executemany_and_transactions(cluster: Cluster) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("CREATE TABLE ap_many (k integer PRIMARY KEY, v text)")
        await conn.executemany("INSERT INTO ap_many (k, v) VALUES ($1, $2)",
                               [(k, f"v{k}") for k in range(50)])
        assert await conn.fetchval("SELECT count(*) FROM ap_many") == 50
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO ap_many VALUES (100, 'rolled back')")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        assert await conn.fetchval("SELECT count(*) FROM ap_many WHERE k = 100") == 0
        # executemany is atomic: a duplicate in the batch leaves nothing of it
        try:
            await conn.executemany("INSERT INTO ap_many (k, v) VALUES ($1, $2)",
                                   [(200, "a"), (201, "b"), (1, "duplicate")])
        except asyncpg.UniqueViolationError:
            pass
        else:
            raise AssertionError("the duplicate key was accepted")
        assert await conn.fetchval("SELECT count(*) FROM ap_many WHERE k >= 200") == 0

    run(cluster, body)


def test_cursors_prefetch_through_portals(cluster: Cluster) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("CREATE TABLE ap_cursor (i integer)")
        await conn.executemany("INSERT INTO ap_cursor VALUES ($1)", [(i,) for i in range(30)])
        async with conn.transaction():
            seen = [r["i"] async for r in conn.cursor(
                "SELECT i FROM ap_cursor WHERE i < $1 ORDER BY i", 25, prefetch=7)]
            assert seen == list(range(25))
            cursor = await conn.cursor("SELECT i FROM ap_cursor ORDER BY i")
            assert [r["i"] for r in await cursor.fetch(4)] == [0, 1, 2, 3]
            assert (await cursor.fetchrow())["i"] == 4

    run(cluster, body)


def test_copy_records_to_table(cluster: Cluster) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("CREATE TABLE ap_copy (id integer, name text, at timestamptz)")
        records = [(i, f"n{i}", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)) for i in range(100)]
        result = await conn.copy_records_to_table("ap_copy", records=records)
        assert result == "COPY 100"
        assert await conn.fetchval("SELECT count(*) FROM ap_copy") == 100
        assert await conn.fetchval("SELECT name FROM ap_copy WHERE id = $1", 42) == "n42"

    run(cluster, body)


def test_expressions_over_columns_are_typed_at_describe(cluster: Cluster) -> None:
    """asyncpg decodes every column by the type Describe reported, before anything runs:
    an expression over a table's columns must be described with PostgreSQL's type for it
    (issue 4), not as text."""
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "CREATE TABLE ap_accounts (id int PRIMARY KEY, balance int, amount numeric(12,2), "
            "ts timestamptz, name text, small smallint)")
        await conn.execute(
            "INSERT INTO ap_accounts VALUES (1, 100, 12.50, '2024-05-06 07:08:09+00', NULL, "
            "32767), (2, -5, 0.25, '2024-05-07 00:00:00+00', 'b', 1)")
        value = await conn.fetchval("SELECT balance + 1 FROM ap_accounts WHERE id = $1", 1)
        assert value == 101 and isinstance(value, int)
        total = await conn.fetchval("SELECT sum(amount) FROM ap_accounts")
        assert isinstance(total, decimal.Decimal) and total == decimal.Decimal("12.75")
        assert await conn.fetchval("SELECT max(ts) FROM ap_accounts") == dt.datetime(
            2024, 5, 7, tzinfo=dt.UTC)
        statement = await conn.prepare(
            "SELECT sum(balance), avg(balance), coalesce(name, 'x'), "
            "CASE WHEN balance > 0 THEN balance ELSE 0 END, a.balance * 2, s.top, c.low "
            "FROM ap_accounts a, (SELECT max(amount) AS top FROM ap_accounts) s, "
            "(WITH m AS (SELECT min(ts) AS low FROM ap_accounts) SELECT low FROM m) c "
            "GROUP BY a.name, a.balance, s.top, c.low ORDER BY 1")
        assert [a.type.name for a in statement.get_attributes()] == [
            "int8", "numeric", "text", "int4", "int4", "numeric", "timestamptz"]
        rows = [tuple(r) for r in await statement.fetch()]
        assert rows[0] == (-5, decimal.Decimal("-5.0000000000000000"), "b", 0, -10,
                           decimal.Decimal("12.50"), dt.datetime(2024, 5, 6, 7, 8, 9,
                                                                 tzinfo=dt.UTC))
        # smallint + smallint is a smallint in PostgreSQL: it overflows
        try:
            await conn.fetchval("SELECT small + small FROM ap_accounts WHERE id = $1", 1)
        except asyncpg.NumericValueOutOfRangeError:
            pass
        else:
            raise AssertionError("smallint overflow was not refused")
        assert await conn.fetchval("SELECT small + 1 FROM ap_accounts WHERE id = 1") == 32768

    run(cluster, body)


def test_identity_always_and_json_text(cluster: Cluster) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("CREATE TABLE ap_ident (id int GENERATED ALWAYS AS IDENTITY, "
                           "v text, j json)")
        await conn.execute("INSERT INTO ap_ident (v, j) VALUES ($1, $2)", "a",
                           '{"k" :  [1,  2.50]}')
        try:
            await conn.execute("INSERT INTO ap_ident (id, v) VALUES ($1, $2)", 5, "b")
        except asyncpg.GeneratedAlwaysError:
            pass
        else:
            raise AssertionError("a value for a GENERATED ALWAYS column was accepted")
        await conn.execute("INSERT INTO ap_ident (id, v) OVERRIDING SYSTEM VALUE "
                           "VALUES ($1, $2)", 50, "c")
        assert [tuple(r) for r in await conn.fetch("SELECT id, v FROM ap_ident ORDER BY id")] \
            == [(1, "a"), (50, "c")]
        # json keeps its input text, and so does its -> (jsonb's is normalised)
        assert await conn.fetchval("SELECT j -> 'k' FROM ap_ident WHERE id = 1") == \
            "[1,  2.50]"
        assert await conn.fetchval("SELECT j::jsonb -> 'k' FROM ap_ident WHERE id = 1") == \
            "[1, 2.50]"

    run(cluster, body)


def test_parameters_are_cast_to_their_columns(cluster: Cluster) -> None:
    """A parameter assigned to a column takes the column's type as PostgreSQL's assignment
    cast does: numeric's scale, varchar's length."""
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute("CREATE TABLE ap_cast (n numeric(6,2), v varchar(3))")
        await conn.execute("INSERT INTO ap_cast (n, v) VALUES ($1, $2)",
                           decimal.Decimal("1.005"), "abc")
        assert await conn.fetchval("SELECT n FROM ap_cast") == decimal.Decimal("1.01")
        try:
            await conn.execute("UPDATE ap_cast SET v = $1", "abcd")
        except asyncpg.StringDataRightTruncationError:
            pass
        else:
            raise AssertionError("a value too long for varchar(3) was stored")

    run(cluster, body)
