"""The instance process (``borealis instance``) over six real storage-node processes.

Kill -9 of the writer instance mid-load loses no acknowledged commit, and a new instance
serves again after volume recovery (no redo replay). A writer paused past a takeover comes
back fenced: its statements fail and it acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from storage_harness import run, start_instance

from borealis.control.processes import InstanceProcess, NodeProcess
from borealis.errors import BorealisError, FencedError, SqlError
from borealis.instance.remote import InstanceClient

SESSIONS = 8


def test_kill_9_of_the_writer_mid_load_loses_no_acknowledged_commit(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess],
        tmp_path: Path, volume: Path) -> None:
    first = start_instance(instances, tmp_path, volume, "writer-1")

    async def load() -> set[int]:
        client = await InstanceClient.connect(first.address)
        await client.execute("CREATE TABLE acked (id INTEGER PRIMARY KEY, session INTEGER)")
        acknowledged: set[int] = set()
        ids = itertools.count(1)

        async def session(k: int) -> None:
            conn = await InstanceClient.connect(first.address)
            try:
                while True:
                    n = next(ids)
                    await conn.execute("INSERT INTO acked VALUES (?, ?)", (n, k))
                    acknowledged.add(n)
            except BorealisError:
                return  # the instance died under us: anything in flight is unknown
            finally:
                await conn.close()

        tasks = [asyncio.create_task(session(k)) for k in range(SESSIONS)]
        while len(acknowledged) < 300:
            await asyncio.sleep(0.01)
        await asyncio.get_running_loop().run_in_executor(None, first.kill)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await client.close()
        return acknowledged

    acknowledged = run(load())
    assert len(acknowledged) >= 300
    second = start_instance(instances, tmp_path, volume, "writer-2")

    async def check() -> None:
        client = await InstanceClient.connect(second.address)
        status = await client.status()
        assert status["role"] == "writer" and status["state"] == "serving"
        assert status["recovery_s"] < 5.0
        rows = (await client.execute("SELECT id FROM acked")).rows
        found = {r[0] for r in rows}
        lost = acknowledged - found
        assert not lost, f"acknowledged commits lost: {sorted(lost)[:10]}"
        assert (await client.execute("PRAGMA integrity_check")).rows == [("ok",)]
        # And it serves writes.
        await client.execute("INSERT INTO acked VALUES (?, ?)", (10**9, -1))
        await client.close()

    run(check())


def test_a_paused_writer_comes_back_fenced(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess],
        tmp_path: Path, volume: Path) -> None:
    old = start_instance(instances, tmp_path, volume, "old")

    async def before() -> None:
        client = await InstanceClient.connect(old.address)
        await client.execute("CREATE TABLE t (x INTEGER)")
        await client.execute("INSERT INTO t VALUES (1)")
        await client.close()

    run(before())
    old.pause()
    new = start_instance(instances, tmp_path, volume, "new")

    async def after() -> None:
        client = await InstanceClient.connect(new.address)
        await client.execute("INSERT INTO t VALUES (2)")
        old.resume()
        stale = await InstanceClient.connect(old.address)
        with pytest.raises(FencedError):
            await stale.execute("INSERT INTO t VALUES (3)")
        with pytest.raises(FencedError):
            await stale.execute("INSERT INTO t VALUES (4)")
        assert (await stale.status())["state"] == "fenced"
        assert (await client.execute("SELECT x FROM t ORDER BY x")).rows == [(1,), (2,)]
        await stale.close()
        await client.close()

    run(after())


def test_bad_requests_get_typed_errors_and_the_connection_stays_usable(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess],
        tmp_path: Path, volume: Path) -> None:
    p = start_instance(instances, tmp_path, volume, "w")

    async def main() -> None:
        client = await InstanceClient.connect(p.address)
        with pytest.raises(SqlError) as info:
            await client.execute("SELEKT 1")
        assert info.value.sqlstate == "42000"
        with pytest.raises(BorealisError):
            await client.rpc.call("execute", ["s", 42, None], timeout_s=5)
        with pytest.raises(BorealisError):
            await client.rpc.call("no-such-method", None, timeout_s=5)
        assert (await client.execute("SELECT 1 + 1")).rows == [(2,)]
        await client.close()

    run(main())
