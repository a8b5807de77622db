"""A writer instance and two reader instances (processes) on six storage-node processes.

Readers follow the writer's redo stream: commits become visible there whole and in commit
order, a bank invariant holds at every read, writes are refused as read-only (25006), lag is
measured, a reader paused past the stream catches up from storage, and after kill -9 of the
writer a promoted reader serves every acknowledged commit and takes writes.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from storage_harness import run, start_instance

from borealis.control.processes import InstanceProcess
from borealis.errors import BorealisError, LockTimeoutError, ReadOnlyError, SerializationError
from borealis.instance.remote import InstanceClient

ACCOUNTS = 10
BALANCE = 100


@pytest.fixture
def cluster(instances: list[InstanceProcess], tmp_path: Path,
            volume: Path) -> list[InstanceProcess]:
    """A writer and two readers following it."""
    writer = start_instance(instances, tmp_path, volume, "writer")
    start_instance(instances, tmp_path, volume, "reader-1", role="reader",
                   writer=writer.address)
    start_instance(instances, tmp_path, volume, "reader-2", role="reader",
                   writer=writer.address)
    return instances


async def setup_bank(client: InstanceClient) -> None:
    await client.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
    await client.execute("CREATE TABLE seq (id INTEGER PRIMARY KEY)")
    await client.execute("BEGIN")
    for i in range(ACCOUNTS):
        await client.execute("INSERT INTO accounts VALUES (?, ?)", (i, BALANCE))
    await client.execute("COMMIT")


async def transfer(client: InstanceClient, session: str, rng: random.Random) -> None:
    src, dst = rng.sample(range(ACCOUNTS), 2)
    amount = rng.randint(1, 20)
    for _ in range(50):
        try:
            await client.execute("BEGIN IMMEDIATE", session=session)
            await client.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?",
                                 (amount, src), session=session)
            await client.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                                 (amount, dst), session=session)
            await client.execute("COMMIT", session=session)
            return
        except (SerializationError, LockTimeoutError):
            await client.execute("ROLLBACK", session=session)
    raise AssertionError("a transfer failed 50 times")


def test_readers_see_commits_whole_and_in_order_and_refuse_writes(
        cluster: list[InstanceProcess]) -> None:
    writer, *readers = cluster

    async def main() -> None:
        w = await InstanceClient.connect(writer.address)
        await setup_bank(w)
        rs = [await InstanceClient.connect(r.address) for r in readers]
        stop = asyncio.Event()
        reads = 0

        async def write_load(k: int) -> None:
            rng = random.Random(k)
            for n in range(30):
                await transfer(w, f"t{k}", rng)
                # The sequence: one row per commit, ids in commit order.
                await w.execute("INSERT INTO seq (id) VALUES (?)", (k * 1000 + n,),
                                session=f"s{k}")

        async def audit(r: InstanceClient, k: int) -> None:
            nonlocal reads
            last_count = 0
            while not stop.is_set():
                result = await r.execute("SELECT sum(balance), count(*) FROM accounts",
                                         session=f"a{k}")
                assert result.rows == [(ACCOUNTS * BALANCE, ACCOUNTS)]
                # A snapshot inside a transaction: two reads see the same state.
                await r.execute("BEGIN", session=f"b{k}")
                first = (await r.execute("SELECT count(*) FROM seq", session=f"b{k}")).rows
                await asyncio.sleep(0.005)
                second = (await r.execute("SELECT count(*) FROM seq", session=f"b{k}")).rows
                await r.execute("COMMIT", session=f"b{k}")
                assert first == second
                # Visible in commit order: the count never goes back.
                count = first[0][0]
                assert count >= last_count
                last_count = count
                reads += 1

        audits = [asyncio.create_task(audit(r, k)) for k, r in enumerate(rs)]
        await asyncio.gather(*(write_load(k) for k in range(4)))
        stop.set()
        await asyncio.gather(*audits)
        assert reads > 10

        expected = (await w.execute("SELECT count(*), sum(id) FROM seq")).rows
        for r in rs:
            for _ in range(200):  # the readers follow within milliseconds
                if (await r.execute("SELECT count(*), sum(id) FROM seq")).rows == expected:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("a reader did not catch up")
            with pytest.raises(ReadOnlyError) as info:
                await r.execute("INSERT INTO seq (id) VALUES (-1)")
            assert info.value.sqlstate == "25006"
            status = await r.status()
            assert status["role"] == "reader" and status["state"] == "serving"
            assert status["redo_messages"] > 0
            assert 0 <= status["lag_p50_ms"] <= status["lag_p99_ms"] < 1000
        assert sorted((await w.status())["readers"]) == ["reader-1", "reader-2"]
        for c in (w, *rs):
            await c.close()

    run(main())


def test_a_paused_reader_catches_up_from_storage(cluster: list[InstanceProcess]) -> None:
    writer, reader, _ = cluster

    async def main() -> None:
        w = await InstanceClient.connect(writer.address)
        await w.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        await w.execute("INSERT INTO t VALUES (0, zeroblob(100))")
        r = await InstanceClient.connect(reader.address)
        assert (await r.execute("SELECT count(*) FROM t")).rows == [(1,)]
        reader.pause()
        for i in range(1, 400):  # enough for the writer to drop the silent reader
            await w.execute("INSERT INTO t VALUES (?, randomblob(500))", (i,))
        await w.execute("UPDATE t SET v = zeroblob(7) WHERE id = 0")
        reader.resume()
        expected = (await w.execute("SELECT count(*), sum(length(v)) FROM t")).rows
        for _ in range(500):
            try:
                if (await r.execute("SELECT count(*), sum(length(v)) FROM t")).rows == expected:
                    break
            except BorealisError:
                pass
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the reader did not catch up")
        assert (await r.execute("PRAGMA integrity_check")).rows == [("ok",)]
        await w.close()
        await r.close()

    run(main(), timeout_s=90)


def test_a_reader_promoted_after_kill_9_of_the_writer_keeps_every_acknowledged_commit(
        cluster: list[InstanceProcess]) -> None:
    writer, reader, _ = cluster

    async def main() -> None:
        w = await InstanceClient.connect(writer.address)
        await w.execute("CREATE TABLE acked (id INTEGER PRIMARY KEY)")
        acknowledged: list[int] = []

        async def load(k: int) -> None:
            conn = await InstanceClient.connect(writer.address)
            try:
                for n in range(10**6):
                    await conn.execute("INSERT INTO acked VALUES (?)", (k * 10**6 + n,))
                    acknowledged.append(k * 10**6 + n)
            except BorealisError:
                return
            finally:
                await conn.close()

        tasks = [asyncio.create_task(load(k)) for k in range(4)]
        while len(acknowledged) < 200:
            await asyncio.sleep(0.01)
        await asyncio.get_running_loop().run_in_executor(None, writer.kill)
        await asyncio.gather(*tasks)
        await w.close()

        r = await InstanceClient.connect(reader.address)
        status = await r.rpc.call("promote", None, timeout_s=60)
        assert status["role"] == "writer" and status["state"] == "serving"
        found = {row[0] for row in (await r.execute("SELECT id FROM acked")).rows}
        lost = set(acknowledged) - found
        assert not lost, f"acknowledged commits lost: {sorted(lost)[:10]}"
        await r.execute("INSERT INTO acked VALUES (-1)")
        assert (await r.execute("SELECT count(*) FROM acked WHERE id = -1")).rows == [(1,)]
        await r.close()

    run(main())
