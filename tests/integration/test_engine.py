"""SQL on the shared volume: a writer's sessions over six real storage-node processes.

The engine (``borealis.engine``) runs in the test's process on its event loop, SQL in
session threads, the volume on the real RPC transport. What is checked: statements round
trip; every acknowledged commit survives a new writer taking over (no redo replay); the old
writer is fenced; many sessions keep a bank invariant under concurrent transfers; a
transaction larger than SQLite's cache commits, and rolled back leaves nothing; unsafe
settings are refused with a clear error and change nothing.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from storage_harness import make_spec, run

from borealis.control.processes import NodeProcess
from borealis.engine.database import Database, Session
from borealis.errors import (
    BorealisError,
    FencedError,
    LockTimeoutError,
    SerializationError,
    SqlError,
    UnsafeSettingError,
)
from borealis.volume.client import VolumeClient
from borealis.volume.spec import VolumeSpec

ACCOUNTS = 20
BALANCE = 1_000


async def open_db(nodes: list[NodeProcess], tmp_path: Path, writer: str,
                  **kwargs: object) -> tuple[VolumeClient, Database]:
    spec_path = tmp_path / "volume.json"
    spec = make_spec(nodes)
    if spec_path.exists():
        spec = VolumeSpec.load(spec_path)
    client = VolumeClient(spec, writer_id=writer, spec_path=spec_path)
    db = await Database.open_writer(client, **kwargs)  # type: ignore[arg-type]
    return client, db


async def close(client: VolumeClient, db: Database) -> None:
    await db.close()
    await client.close()


def test_statements_round_trip_and_survive_a_new_writer(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    async def main() -> None:
        client, db = await open_db(storage_nodes, tmp_path, "w1")
        s = await db.session()
        await s.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        for i in range(30):
            result = await s.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
            assert result.changes == 1
        # Every acknowledged commit is durable: VDL covers the last one.
        assert db.vdl > 0
        result = await s.execute("SELECT count(*), min(v), max(id) FROM t")
        assert result.rows == [(30, "row 0", 30)]
        assert result.columns == ["count(*)", "min(v)", "max(id)"]
        with pytest.raises(SqlError, match="no such table"):
            await s.execute("SELECT * FROM missing")
        # The session is still usable after an error.
        assert (await s.execute("SELECT count(*) FROM t")).rows == [(30,)]
        await close(client, db)

        client, db = await open_db(storage_nodes, tmp_path, "w2")
        s = await db.session()
        result = await s.execute("SELECT count(*), max(id) FROM t")
        assert result.rows == [(30, 30)]
        assert (await s.execute("PRAGMA integrity_check")).rows == [("ok",)]
        await close(client, db)

    run(main())


@pytest.mark.parametrize("statement", [
    "PRAGMA journal_mode=WAL",
    "PRAGMA journal_mode=OFF",
    "PRAGMA journal_mode=DELETE",
    "PRAGMA synchronous=OFF",
    "PRAGMA synchronous=0",
    "PRAGMA locking_mode=EXCLUSIVE",
    "PRAGMA page_size=8192",
    "ATTACH DATABASE 'other.db' AS other",
])
def test_unsafe_settings_are_refused_and_change_nothing(
        storage_nodes: list[NodeProcess], tmp_path: Path, statement: str) -> None:
    async def main() -> None:
        client, db = await open_db(storage_nodes, tmp_path, "w1")
        s = await db.session()
        with pytest.raises(UnsafeSettingError) as info:
            await s.execute(statement)
        assert info.value.sqlstate == "0A000"
        assert "not supported" in str(info.value)
        assert (await s.execute("PRAGMA journal_mode")).rows == [("memory",)]
        assert (await s.execute("PRAGMA synchronous")).rows == [(1,)]  # NORMAL
        # Safe settings are allowed.
        await s.execute("PRAGMA synchronous=FULL")
        await s.execute("PRAGMA journal_mode=MEMORY")
        await s.execute("CREATE TABLE t (x)")
        await s.execute("INSERT INTO t VALUES (1)")
        assert (await s.execute("SELECT x FROM t")).rows == [(1,)]
        await close(client, db)

    run(main())


async def transfer(session: Session, rng: random.Random, ledger: list[int],
                   transfer_id: int) -> bool:
    """One transfer between two accounts; retried on a serialization failure."""
    src, dst = rng.sample(range(ACCOUNTS), 2)
    amount = rng.randint(1, 50)
    for _attempt in range(50):
        try:
            await session.execute("BEGIN IMMEDIATE")
            await session.execute(
                "UPDATE accounts SET balance = balance - ? WHERE id = ?", (amount, src))
            await session.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ?", (amount, dst))
            await session.execute("INSERT INTO transfers (id) VALUES (?)", (transfer_id,))
            await session.execute("COMMIT")
            ledger.append(transfer_id)
            return True
        except (SerializationError, LockTimeoutError):
            if session.in_transaction:
                await session.execute("ROLLBACK")
            await asyncio.sleep(0.001)
    return False


def test_many_sessions_keep_a_bank_invariant_and_every_acknowledged_transfer(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    async def main() -> None:
        client, db = await open_db(storage_nodes, tmp_path, "w1")
        setup = await db.session()
        await setup.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        await setup.execute("CREATE TABLE transfers (id INTEGER PRIMARY KEY)")
        await setup.execute("BEGIN")
        for i in range(ACCOUNTS):
            await setup.execute("INSERT INTO accounts VALUES (?, ?)", (i, BALANCE))
        await setup.execute("COMMIT")

        ledger: list[int] = []
        stop = asyncio.Event()
        reads = 0

        async def worker(k: int) -> None:
            session = await db.session()
            rng = random.Random(k)
            for n in range(25):
                assert await transfer(session, rng, ledger, k * 1000 + n)

        async def auditor() -> None:
            nonlocal reads
            session = await db.session()
            while not stop.is_set():
                result = await session.execute("SELECT sum(balance), count(*) FROM accounts")
                assert result.rows == [(ACCOUNTS * BALANCE, ACCOUNTS)]
                reads += 1
                await asyncio.sleep(0)

        audit = asyncio.create_task(auditor())
        await asyncio.gather(*(worker(k) for k in range(8)))
        stop.set()
        await audit
        assert reads > 0
        assert len(ledger) == 8 * 25
        assert db.stats.commits >= len(ledger)
        await close(client, db)

        # A new writer: every acknowledged transfer is there, and the books balance.
        client, db = await open_db(storage_nodes, tmp_path, "w2")
        s = await db.session()
        found = {row[0] for row in (await s.execute("SELECT id FROM transfers")).rows}
        assert set(ledger) <= found
        result = await s.execute("SELECT sum(balance) FROM accounts")
        assert result.rows == [(ACCOUNTS * BALANCE,)]
        await close(client, db)

    run(main())


def test_a_transaction_larger_than_the_cache_commits_and_a_rolled_back_one_leaves_nothing(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    async def main() -> None:
        client, db = await open_db(storage_nodes, tmp_path, "w1")
        s = await db.session()
        await s.execute("PRAGMA cache_size=20")  # 20 pages: the transactions below spill
        await s.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, blob BLOB)")
        blob = bytes(range(256)) * 8  # 2 KiB a row
        await s.execute("BEGIN")
        for i in range(600):
            await s.execute("INSERT INTO big VALUES (?, ?)", (i, blob))
        await s.execute("COMMIT")
        assert (await s.execute("SELECT count(*), sum(length(blob)) FROM big")).rows == [
            (600, 600 * len(blob))]

        appended_before = db.stats.commits
        await s.execute("BEGIN")
        await s.execute("DELETE FROM big WHERE id < 300")
        for i in range(600, 1200):
            await s.execute("INSERT INTO big VALUES (?, ?)", (i, blob))
        await s.execute("ROLLBACK")
        assert db.stats.commits == appended_before, "a rolled-back transaction committed"
        assert (await s.execute("SELECT count(*), min(id), max(id) FROM big")).rows == [
            (600, 0, 599)]
        assert (await s.execute("PRAGMA integrity_check")).rows == [("ok",)]
        await close(client, db)

        client, db = await open_db(storage_nodes, tmp_path, "w2")
        s = await db.session()
        assert (await s.execute("SELECT count(*), min(id), max(id) FROM big")).rows == [
            (600, 0, 599)]
        assert (await s.execute("PRAGMA integrity_check")).rows == [("ok",)]
        await close(client, db)

    run(main())


def test_the_old_writer_is_fenced_and_never_acknowledges_again(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    async def main() -> None:
        client1, db1 = await open_db(storage_nodes, tmp_path, "w1")
        s1 = await db1.session()
        await s1.execute("CREATE TABLE t (x INTEGER)")
        await s1.execute("INSERT INTO t VALUES (1)")

        client2, db2 = await open_db(storage_nodes, tmp_path, "w2")
        s2 = await db2.session()
        await s2.execute("INSERT INTO t VALUES (2)")

        # The old writer learns of the new epoch on its next write: it is never acknowledged.
        with pytest.raises(BorealisError) as info:
            await s1.execute("INSERT INTO t VALUES (3)")
        assert isinstance(info.value, FencedError), info.value
        with pytest.raises(FencedError):
            await s1.execute("INSERT INTO t VALUES (4)")

        assert (await s2.execute("SELECT x FROM t ORDER BY x")).rows == [(1,), (2,)]
        await close(client1, db1)
        await close(client2, db2)

    run(main())


def test_a_large_commit_encodes_its_deltas_off_the_event_loop(
        storage_nodes: list[NodeProcess], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions must not block each other on the event loop: the page deltas of a commit
    (~20 us a page) are made on the committing session's thread, not the loop's."""
    import threading

    from borealis import delta

    encode = delta.encode
    deltas_by_thread: dict[str, int] = {"loop": 0, "session": 0}
    loop_thread: list[int] = []

    def recording_encode(base: bytes | None, new: bytes) -> bytes:
        if base is not None:
            where = "loop" if threading.get_ident() in loop_thread else "session"
            deltas_by_thread[where] += 1
        return encode(base, new)

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        client, db = await open_db(storage_nodes, tmp_path, "w1")
        s = await db.session()
        await s.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        await s.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                        "WHERE x < 4000) INSERT INTO t (v) SELECT printf('%0200d', x) FROM n")
        monkeypatch.setattr(delta, "encode", recording_encode)
        result = await s.execute("UPDATE t SET v = printf('%0200d', id + 1)")
        assert result.changes == 4000
        assert deltas_by_thread["session"] > 100  # the commit rewrote hundreds of pages
        assert deltas_by_thread["loop"] == 0, deltas_by_thread
        monkeypatch.setattr(delta, "encode", encode)
        assert (await s.execute("SELECT count(*) FROM t WHERE v = printf('%0200d', id + 1)")
                ).rows == [(4000,)]
        await close(client, db)

    run(main())
