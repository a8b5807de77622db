"""The instance's control interface for the control plane, with real processes on 127.0.0.1:
``follow`` (a reader re-pointed to a promoted writer catches up and serves its writes),
volume health in ``status`` (a killed storage node's segments turn unhealthy while commits go
on), ``add_storage_node`` and ``replace_segment`` (the lost segments rebuilt on a spare, health
back to 6 of 6), Prometheus ``/metrics``, and an exit within the shutdown grace on SIGTERM even
with a worker thread stuck in an SQL function.

The last section tests the reader's side of a writer change (``ReaderState``) without
processes: the cases a run with processes cannot force (a new stream that starts exactly at
the reader's position).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from borealis import delta
from borealis.cli.instance import SHUTDOWN_GRACE_S
from borealis.control.processes import InstanceProcess, NodeProcess
from borealis.engine.pagecache import PageCache
from borealis.engine.replication import ReaderState
from borealis.errors import BadRequestError, FencedError, TransportError
from borealis.instance.remote import InstanceClient
from borealis.storage.record import RecordKind, RedoRecord, encode_block
from borealis.types import LSN, NodeId
from borealis.volume.spec import VolumeSpec
from borealis.volume.writer import PageWrite

T = TypeVar("T")

TEST_TIMEOUT_S = 45.0
ROWS = 400
"""Rows of about 1 KiB: the table spans several PGs of 64 pages (storage_harness)."""


def run(main: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main, TEST_TIMEOUT_S)

    return asyncio.run(bounded())


async def eventually(what: str, check: Callable[[], Awaitable[T | None]],
                     timeout_s: float = 10.0) -> T:
    """Poll ``check`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await check()
        if got is not None and got is not False:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


def start(instances: list[InstanceProcess], tmp_path: Path, volume: Path, name: str, az: str,
          *extra: str, role: str = "writer") -> InstanceProcess:
    p = InstanceProcess(name, az, volume, tmp_path / "instances" / name,
                        tmp_path / "logs" / f"{name}.log", role=role, extra_args=extra)
    instances.append(p)
    p.start()
    return p


@pytest.fixture
def spare(tmp_path: Path) -> Iterator[NodeProcess]:
    """A seventh storage node in az1 that the volume does not know (yet)."""
    node = NodeProcess(NodeId("az1-n3"), "az1", tmp_path / "storage" / "az1-n3",
                       tmp_path / "logs" / "az1-n3.log")
    try:
        node.start()
        yield node
    finally:
        node.stop()
        assert not node.alive()


async def fill(client: InstanceClient) -> None:
    await client.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, pad BLOB)")
    await client.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
        "INSERT INTO big SELECT x, randomblob(1000) FROM c", (ROWS,))
    await client.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, n INTEGER)")


# --- follow ----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_follow_repoints_a_reader_to_the_promoted_writer(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess], tmp_path: Path,
        volume: Path) -> None:
    w1 = start(instances, tmp_path, volume, "w1", "az1")
    r1 = start(instances, tmp_path, volume, "r1", "az2", "--writer", w1.address, role="reader")
    r2 = start(instances, tmp_path, volume, "r2", "az3", "--writer", w1.address, role="reader")

    async def main() -> None:
        w, c1, c2 = [await InstanceClient.connect(p.address) for p in (w1, r1, r2)]
        await w.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        await w.execute("INSERT INTO kv VALUES (1, 'before')")

        async def on_r2() -> list[tuple[Any, ...]]:
            return (await c2.execute("SELECT k, v FROM kv ORDER BY k")).rows

        async def r2_sees(rows: list[tuple[Any, ...]]) -> bool:
            return await on_r2() == rows

        await eventually("r2 sees the first row", lambda: r2_sees([(1, "before")]))
        epoch_before = (await w.status())["epoch"]

        promoted = await c1.promote()
        assert promoted["role"] == "writer"
        assert promoted["epoch"] > epoch_before
        # r2 still follows the old writer, and still serves what it had.
        assert await on_r2() == [(1, "before")]
        with pytest.raises(BadRequestError):
            await c1.follow(r2.address)  # r1 is the writer now
        with pytest.raises(BadRequestError):
            await c2.follow("no-port")

        status = await c2.follow(r1.address)
        assert status["writer"] == r1.address
        assert status["role"] == "reader"
        # Writes through the new writer reach r2: a new row, and a page r2 had cached from
        # the old writer's stream changed by the new one.
        await c1.execute("INSERT INTO kv VALUES (2, 'after')")
        await c1.execute("UPDATE kv SET v = 'updated' WHERE k = 1")
        await eventually("r2 sees the new writer's commits",
                         lambda: r2_sees([(1, "updated"), (2, "after")]))
        status = await c2.status()
        assert status["redo_epoch"] == promoted["epoch"]
        assert status["redo_writer_changes"] == 1
        # The old writer (fenced, still running) is refused as r2's writer, and its stream,
        # now stale, is refused by r2: it drops r2 (and r1, which is no reader any more).
        with pytest.raises(BadRequestError):
            await c2.follow(w1.address)
        assert (await c2.status())["writer"] == r1.address

        async def old_writer_dropped_its_readers() -> bool:
            return (await w.status())["readers"] == []

        await eventually("the old writer drops its readers", old_writer_dropped_its_readers)
        for n in range(3, 13):
            await c1.execute("INSERT INTO kv VALUES (?, 'more')", (n,))
        await eventually("r2 keeps following",
                         lambda: r2_sees([(1, "updated"), (2, "after"),
                                          *[(n, "more") for n in range(3, 13)]]))
        assert (await c1.status())["readers"] == ["r2"]
        for c in (w, c1, c2):
            await c.close()

    run(main())


# --- volume health, add_storage_node, replace_segment ----------------------------------------


def victim_segments(status: dict[str, Any], node: str) -> dict[int, dict[str, Any]]:
    out = {}
    for pg in status["volume"]["protection_groups"]:
        for segment in pg["segments"]:
            if segment["node"] == node:
                out[pg["pg"]] = segment
    return out


@pytest.mark.timeout(120)
def test_a_dead_nodes_segments_turn_unhealthy_and_are_rebuilt_on_a_spare(
        storage_nodes: list[NodeProcess], spare: NodeProcess,
        instances: list[InstanceProcess], tmp_path: Path, volume: Path) -> None:
    w1 = start(instances, tmp_path, volume, "w1", "az1")
    r1 = start(instances, tmp_path, volume, "r1", "az2", "--writer", w1.address, role="reader")
    victim = next(n for n in storage_nodes if n.node == "az1-n1")

    async def main() -> None:
        w = await InstanceClient.connect(w1.address)
        await fill(w)
        status = await w.status()
        pgs = status["volume"]["pgs"]
        assert pgs >= 2, "the table spans several PGs"
        assert len(status["volume"]["protection_groups"]) == pgs
        reader_status = await (await InstanceClient.connect(r1.address)).status()
        assert reader_status["volume"]["pgs"] >= 1

        async def all_healthy() -> dict[str, Any] | None:
            s = await w.status()
            groups = s["volume"]["protection_groups"]
            ok = all(g["healthy"] == 6 and all(x["healthy"] for x in g["segments"])
                     and not g["changing"] for g in groups)
            return s if ok else None

        healthy = await eventually("every PG healthy", all_healthy)
        assert {s["node"] for g in healthy["volume"]["protection_groups"]
                for s in g["segments"]} == {n.node for n in storage_nodes}
        lost = victim_segments(healthy, victim.node)
        assert sorted(lost) == list(range(pgs)), "two nodes per AZ: the victim is in every PG"

        # kill -9 one storage node while the writer keeps committing.
        load = await InstanceClient.connect(w1.address)
        stop = asyncio.Event()
        commits = 0

        async def commit_load() -> None:
            nonlocal commits
            while not stop.is_set():
                await load.execute("INSERT INTO log (n) VALUES (?)", (commits,))
                commits += 1

        loader = asyncio.create_task(commit_load())
        await asyncio.get_running_loop().run_in_executor(None, victim.kill)
        killed = time.monotonic()

        async def victim_unhealthy() -> dict[str, Any] | None:
            s = await w.status()
            groups = s["volume"]["protection_groups"]
            ok = all(not x["healthy"] for x in victim_segments(s, victim.node).values())
            return s if ok and all(g["healthy"] == 5 for g in groups) else None

        sick = await eventually("the dead node's segments unhealthy", victim_unhealthy)
        print(f"unhealthy {time.monotonic() - killed:.2f} s after kill -9")
        for pg in sick["volume"]["protection_groups"]:
            for segment in pg["segments"]:
                assert segment["healthy"] == (segment["node"] != victim.node)
                if not segment["healthy"]:
                    assert segment["acked"] < sick["volume"]["vdl"]

        # The spare joins the volume; the same call again changes nothing; conflicts fail.
        assert await w.add_storage_node(spare.node, "az1", spare.address) is True
        assert await w.add_storage_node(spare.node, "az1", spare.address) is False
        with pytest.raises(BadRequestError):
            await w.add_storage_node(spare.node, "az2", spare.address)
        with pytest.raises(BadRequestError):
            await w.add_storage_node("az1-n9", "az1", spare.address)  # the spare's address
        with pytest.raises(BadRequestError):
            await w.add_storage_node("az9-n1", "az9", "127.0.0.1:1")  # no such AZ here
        assert spare.node in VolumeSpec.load(volume).nodes

        # Rebuild every lost segment on the spare, all PGs at once; a second change of a
        # PG already changing is refused; status and commits are served meanwhile.
        clients = [await InstanceClient.connect(w1.address) for _ in lost]
        replacing = [asyncio.create_task(c.replace_segment(pg, lost[pg]["segment"], spare.node))
                     for c, pg in zip(clients, sorted(lost), strict=True)]
        # On the same connection, so that it arrives after the first one for PG 0.
        twice = asyncio.create_task(
            clients[0].replace_segment(0, lost[0]["segment"], spare.node))
        with pytest.raises(BadRequestError, match="already changing"):
            await twice
        during = await w.status(timeout_s=1.0)
        assert during["state"] == "serving"
        new_ids = await asyncio.gather(*replacing)
        assert len(set(new_ids)) == len(lost)
        commits_at_repair = commits
        assert commits_at_repair > 0

        async def repaired() -> dict[str, Any] | None:
            s = await all_healthy()
            return s if s is not None and not victim_segments(s, victim.node) else None

        back = await eventually("health back to 6 of 6", repaired)
        for pg in back["volume"]["protection_groups"]:
            on_spare = [x for x in pg["segments"] if x["node"] == spare.node]
            assert [x["segment"] for x in on_spare] == [new_ids[sorted(lost).index(pg["pg"])]]
            assert pg["membership_epoch"] == 1
        saved = VolumeSpec.load(volume)
        assert all(p.node != victim.node for layout in saved.layouts.values()
                   for p in layout.segments)
        with pytest.raises(BadRequestError):  # the old segment is gone
            await w.replace_segment(0, lost[0]["segment"], spare.node)
        with pytest.raises(BadRequestError):  # readers do not change the volume
            r = await InstanceClient.connect(r1.address)
            await r.replace_segment(0, new_ids[0], "az1-n2")

        stop.set()
        await loader
        assert commits > commits_at_repair, "commits went on after the repair"
        count = await w.execute("SELECT count(*) FROM log")
        assert count.rows == [(commits,)]
        for c in (w, load, *clients):
            await c.close()

    run(main())


# --- metrics ---------------------------------------------------------------------------------


def scrape(address: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample line."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples


def value(samples: dict[str, float], name: str, **labels: str) -> float | None:
    """The sample of ``name`` whose labels include ``labels``."""
    for key, v in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


@pytest.mark.timeout(90)
def test_metrics_of_a_writer_and_a_reader(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess], tmp_path: Path,
        volume: Path) -> None:
    w1 = start(instances, tmp_path, volume, "w1", "az1", "--metrics-listen", "127.0.0.1:0",
               "--pg-listen", "127.0.0.1:0")
    r1 = start(instances, tmp_path, volume, "r1", "az2", "--writer", w1.address,
               "--metrics-listen", "127.0.0.1:0", role="reader")
    assert w1.ready["metrics_address"] and r1.ready["metrics_address"]
    commits_made = 30

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def scrape_of(p: InstanceProcess) -> dict[str, float]:
            return await loop.run_in_executor(None, scrape, p.ready["metrics_address"])

        w = await InstanceClient.connect(w1.address)
        await w.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for n in range(commits_made):
            await w.execute("INSERT INTO t VALUES (?, 'x')", (n,))
        await w.execute("SELECT count(*) FROM t")
        status = await w.status()
        m = await scrape_of(w1)
        name = "borealis_commit_latency_seconds"
        assert value(m, "borealis_commits_total", instance_id="w1") == status["commits"]
        assert status["commits"] >= commits_made + 1
        count = value(m, name + "_count")
        assert count is not None and count >= commits_made + 1
        assert value(m, name + "_bucket", le="+Inf") == count
        buckets = [v for k, v in m.items() if k.startswith(name + "_bucket")]
        assert buckets == sorted(buckets), "cumulative buckets"
        total_s = value(m, name + "_sum")
        assert total_s is not None and 0 < total_s < 30
        assert value(m, "borealis_statements_total") == status["statements"]
        assert value(m, "borealis_serialization_failures_total") == 0
        assert value(m, "borealis_role", role="writer") == 1
        assert value(m, "borealis_role", role="reader") == 0
        assert value(m, "borealis_fenced") == 0
        vdl = value(m, "borealis_vdl")
        assert vdl is not None and status["vdl"] <= vdl > 0
        assert value(m, "borealis_epoch") == status["epoch"] >= 1
        assert (value(m, "borealis_cache_hits_total") or 0) > 0
        assert value(m, "borealis_cache_misses_total") is not None
        ratio = value(m, "borealis_cache_hit_ratio")
        assert ratio is not None and 0 < ratio <= 1
        assert (value(m, "borealis_volume_bytes_sent_total") or 0) > 0
        assert (value(m, "borealis_replication_bytes_sent_total") or 0) > 0
        assert value(m, "borealis_replica_lag_ms") is None, "a writer has no lag"
        assert value(m, "borealis_sessions") == 1
        assert value(m, "borealis_postgres_connections_open") == 0

        async def pg_healthy() -> dict[str, float] | None:
            got = await scrape_of(w1)
            return got if value(got, "borealis_protection_group_healthy_segments",
                                pg="0") == 6 else None

        await eventually("PG 0 healthy in the metrics", pg_healthy)

        host, _, port = w1.ready["pg_address"].rpartition(":")
        conn = await psycopg.AsyncConnection.connect(
            f"host={host} port={port} user=postgres dbname=postgres sslmode=disable",
            autocommit=True)
        m = await scrape_of(w1)
        assert value(m, "borealis_postgres_connections_open") == 1
        assert value(m, "borealis_sessions") == 2
        await conn.execute("INSERT INTO t VALUES (1000, 'pg')")
        m2 = await scrape_of(w1)
        assert value(m2, "borealis_commits_total") == value(m, "borealis_commits_total") + 1
        assert value(m2, name + "_count") == value(m, name + "_count") + 1
        await conn.close()

        async def pg_closed() -> bool:
            return value(await scrape_of(w1), "borealis_postgres_connections_open") == 0

        await eventually("the PostgreSQL connection counted closed", pg_closed)

        async def reader_caught_up() -> dict[str, float] | None:
            got = await scrape_of(r1)
            return got if value(got, "borealis_vdl") == value(m2, "borealis_vdl") else None

        mr = await eventually("the reader's VDL in its metrics", reader_caught_up)
        assert value(mr, "borealis_role", role="reader", instance_id="r1") == 1
        assert value(mr, "borealis_replica_lag_ms") is not None
        assert value(mr, "borealis_replica_lag_lsns") is not None
        assert value(mr, "borealis_protection_group_healthy_segments") is None
        assert value(mr, "borealis_commits_total") == 0
        await w.close()

    run(main())


# --- SIGTERM ---------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_sigterm_exits_within_the_grace_with_a_worker_thread_stuck(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess], tmp_path: Path,
        volume: Path) -> None:
    w1 = start(instances, tmp_path, volume, "w1", "az1")

    async def main() -> float:
        w = await InstanceClient.connect(w1.address)
        await w.execute("SELECT 1")
        # A sleep inside an SQL function: sqlite3_interrupt does not reach it, and closing
        # the session waits for its thread.
        stuck = asyncio.create_task(w.execute("SELECT _pg_sleep(60)", session="stuck",
                                              timeout_s=90))

        async def stuck_session_open() -> bool:
            return (await w.status())["sessions"] == 2

        await eventually("the stuck session open", stuck_session_open)
        await asyncio.sleep(0.5)  # and its statement running
        assert not stuck.done()
        os.kill(w1.pid, signal.SIGTERM)
        signalled = time.monotonic()
        assert w1.popen is not None
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, w1.popen.wait, SHUTDOWN_GRACE_S + 5)
        except subprocess.TimeoutExpired:
            stuck.cancel()
            raise AssertionError("the instance did not exit after SIGTERM") from None
        exited_s = time.monotonic() - signalled
        with pytest.raises(TransportError):
            await stuck
        await w.close()
        return exited_s

    exited_s = run(main())
    assert exited_s <= SHUTDOWN_GRACE_S + 3
    assert w1.popen is not None and w1.popen.returncode == 0
    assert "shutdown not finished" in w1.log_path.read_text()


# --- the reader's side of a writer change, without processes -------------------------------


class History:
    """Durable page versions, as storage would serve them at a read point."""

    page_size = 4096

    def __init__(self) -> None:
        self.versions: dict[int, list[tuple[LSN, bytes]]] = {}

    def add(self, page: int, lsn: int, image: bytes) -> None:
        self.versions.setdefault(page, []).append((LSN(lsn), image))

    def read_page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        assert read_point is not None
        found = [(v, image) for v, image in self.versions.get(page, []) if v <= read_point]
        return found[-1] if found else (LSN(0), None)

    def append(self, writes: list[PageWrite]) -> LSN:
        raise AssertionError("a reader never appends")


def image(fill: int) -> bytes:
    return bytes([fill]) * 4096


def message(prev: int, records: list[tuple[int, int, bytes]], vdl: int, epoch: int
            ) -> list[Any]:
    block = encode_block([RedoRecord.make(lsn, page, delta.encode(None, img),
                                          kind=RecordKind.IMAGE, epoch=epoch)
                          for lsn, page, img in records])
    last = records[-1][0] if records else prev
    return [prev, last, block, vdl, last, time.time(), epoch]


def test_a_new_writers_stream_voids_what_the_old_one_streamed_above_its_vdl() -> None:
    history = History()
    reader = ReaderState(history, PageCache(1 << 20))  # type: ignore[arg-type]
    history.add(5, 10, image(1))
    reader.apply(message(0, [(10, 5, image(1))], vdl=10, epoch=1))
    point = reader.begin_read()
    assert reader.page(5, point) == (10, image(1))
    reader.end_read(point)
    # The old writer streams a change of page 5 at LSN 20 and dies before it is durable.
    reader.apply(message(10, [(20, 5, image(2))], vdl=10, epoch=1))
    reader.apply(message(20, [], vdl=10, epoch=1))  # a heartbeat
    assert reader.cache.newest(5) == (20, image(2)), "kept, to serve once VDL covers it"
    # The new writer's recovery voids (10, 20]; its stream starts at 20, which happens to
    # be the reader's position: only the epoch tells the reader the stream changed.
    history.add(7, 21, image(3))
    reader.apply(message(20, [(21, 7, image(3))], vdl=21, epoch=2))
    assert reader.stats.writer_changes == 1
    assert reader.cache.newest(5) is None, "the page with a void version is dropped"
    point = reader.begin_read()
    assert point == 21
    assert reader.page(5, point) == (10, image(1)), "the void version must not be read"
    assert reader.cache.get(5, point) == (10, image(1)), "and the page is cached again"
    assert reader.page(7, point) == (21, image(3))
    reader.end_read(point)
    # The old writer, fenced but still sending, is refused.
    with pytest.raises(FencedError):
        reader.apply(message(20, [], vdl=10, epoch=1))
    assert reader.stats.stale_refused == 1
    assert reader.vdl == 21


def test_a_page_read_below_a_gap_is_not_cached_as_the_newest() -> None:
    history = History()
    reader = ReaderState(history, PageCache(1 << 20))  # type: ignore[arg-type]
    history.add(9, 3, image(1))
    reader.apply(message(0, [(10, 1, image(0))], vdl=10, epoch=1))
    history.add(1, 10, image(0))
    old = reader.begin_read()  # a long read transaction at 10
    # Records 11..15 never reach the reader (it was dropped, or re-subscribed); one of
    # them changed page 9.
    history.add(9, 12, image(2))
    reader.apply(message(15, [(16, 1, image(5))], vdl=16, epoch=1))
    history.add(1, 16, image(5))
    assert reader.stats.gaps == 1
    assert reader.page(9, old) == (3, image(1))
    reader.end_read(old)
    new = reader.begin_read()
    assert new == 16
    assert reader.page(9, new) == (12, image(2)), "read at 10, it must not be cached as newest"
    reader.end_read(new)
