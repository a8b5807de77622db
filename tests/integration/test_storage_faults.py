"""The storage layer under faults, with real processes on 127.0.0.1.

Six storage nodes in three AZs (two per AZ) and a volume client as the writer, over a volume
of four small PGs (64 pages each). Every test keeps a model of what each page must hold and
checks real outcomes against it: commits acknowledged through kill -9 of nodes and of a whole
AZ, reads surviving AZ + 1 while writes wait, a new writer fencing the old one, a node's log
replaying what it acknowledged, a flipped byte in a stored page found by scrubbing and
repaired from a peer, and a node shrugging off requests that break the protocol.

The rules checked are the design brief's (``shared/DESIGN.md``, "Faults the system must
survive"): no acknowledged commit is lost, no reader sees uncommitted or non-durable data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import struct
import time
from pathlib import Path

import msgpack
import pytest
from storage_harness import (
    PAGE_SIZE,
    PAGES,
    PG_PAGES,
    PGS,
    TASKS,
    Load,
    Model,
    Probe,
    eventually,
    log_problems,
    make_spec,
    node_named,
    read_back,
    run,
)

from borealis.control.processes import NodeProcess
from borealis.errors import (
    BadRequestError,
    BorealisError,
    CorruptionError,
    FencedError,
    ProtocolError,
    StaleEpochError,
    UnknownSegmentError,
    UnknownVolumeError,
)
from borealis.storage import wire
from borealis.storage.messages import GetPage, WriteBatch
from borealis.storage.record import RedoRecord
from borealis.transport.rpc import RpcClient, connect
from borealis.types import LSN, PageNo, SegmentId
from borealis.volume.client import VolumeClient
from borealis.volume.spec import VolumeSpec
from borealis.volume.writer import PageWrite

CONVERGE_TIMEOUT_S = 30.0


async def open_writer(nodes: list[NodeProcess], tmp_path: Path,
                      writer_id: str = "w1") -> VolumeClient:
    client = VolumeClient(make_spec(nodes), writer_id=writer_id,
                          spec_path=tmp_path / "volume.json")
    await client.open_writer()
    return client


async def converge(probe: Probe, nodes: list[NodeProcess], client: VolumeClient) -> float:
    """Wait until every segment of every PG reports SCL == the last LSN the writer
    allocated (every PG is told it is complete through each flush point)."""
    assert client.core is not None
    target = client.core.allocated
    assert client.vdl == target, "converge() is for a quiet writer"
    return await eventually(lambda: probe.all_at(nodes, target), timeout_s=CONVERGE_TIMEOUT_S,
                            what=f"every segment at SCL {target}")


def kill_all(nodes: list[NodeProcess]) -> None:
    for n in nodes:
        n.kill()
        assert not n.alive()


def start_all(nodes: list[NodeProcess]) -> None:
    """Start (or restart) the nodes in parallel."""
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(n.start) for n in nodes]:
            future.result()


# --- 1. the happy path ---------------------------------------------------------------------


def test_concurrent_commits_read_back_at_vdl(storage_nodes: list[NodeProcess],
                                             tmp_path: Path) -> None:
    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            recovered = client.recovery_result
            assert recovered is not None
            model = Model()
            load = Load(client, model)
            load.start(commits_per_task=60)
            await load.wait()
            lsns = model.commit_lsns
            assert len(lsns) == 60 * TASKS
            assert len(set(lsns)) == len(lsns), "two commits got the same commit LSN"
            assert min(lsns) > recovered.start, "an LSN at or below the recovery point reused"
            # Aurora SIGMOD 2017 §4.1: a commit is acknowledged only once VDL covers it.
            assert client.vdl == max(lsns)
            assert sorted(client.spec.layouts) == list(range(PGS)), "the volume grew to 4 PGs"
            assert len(model.acked) > 0.9 * PAGES
            assert await read_back(client, model) == len(model.acked)
            await converge(probe, storage_nodes, client)
            reads = await probe.every_segment_matches(model, client.vdl)
            assert reads == 6 * len(model.acked)
        finally:
            await probe.close()
            await client.close()
        assert log_problems(storage_nodes) == []

    run(main())


# --- 2 and 3. kill -9 of a node, of an AZ, while the writer commits ------------------------


async def outage_while_committing(storage_nodes: list[NodeProcess], tmp_path: Path,
                                  victims: list[NodeProcess], outage_s: float) -> int:
    """Commit continuously; kill -9 ``victims``; keep committing for ``outage_s``; restart
    them; stop; check that they caught up and that every segment holds exactly the model.
    Returns the commits acknowledged during the outage."""
    client = await open_writer(storage_nodes, tmp_path)
    probe = Probe(client.spec)
    try:
        model = Model()
        load = Load(client, model)
        load.start()
        await eventually(lambda: _true(load.acked >= 200), timeout_s=20,
                         what="200 commits before the kill")
        await asyncio.to_thread(kill_all, victims)
        at_kill = load.acked
        await asyncio.sleep(outage_s)
        during = load.acked - at_kill
        assert not load.errors, load.errors
        await asyncio.to_thread(start_all, victims)
        await asyncio.sleep(1.0)  # writes go on while they catch up
        await load.stop()
        assert not load.errors, load.errors
        assert client.vdl == max(model.commit_lsns)
        assert await read_back(client, model) == len(model.acked)
        # Gossip (and the writer's resends) bring the restarted segments to the same SCL.
        await converge(probe, storage_nodes, client)
        # Byte for byte: each of the six segments of every PG serves the model's images.
        reads = await probe.every_segment_matches(model, client.vdl)
        assert reads == 6 * len(model.acked)
        for v in victims:
            status = await probe.status(v)
            for segment in probe.segments_on(v):
                assert status["segments"][segment]["scl"] == client.vdl
        return during
    finally:
        await probe.close()
        await client.close()


async def _true(value: bool) -> bool:
    return value


def test_kill9_one_node_while_committing_then_it_catches_up(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    victim = node_named(storage_nodes, "az2-n1")
    during = run(outage_while_committing(storage_nodes, tmp_path, [victim], outage_s=2.0))
    assert during > 0, "no commit was acknowledged while one node was down"
    assert log_problems(storage_nodes) == []


def test_kill9_whole_az_writes_go_on(storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    # Aurora SIGMOD 2017 §2.1: losing an AZ (2 of 6 copies) keeps the 4/6 write quorum.
    victims = [node_named(storage_nodes, "az1-n1"), node_named(storage_nodes, "az1-n2")]
    during = run(outage_while_committing(storage_nodes, tmp_path, victims, outage_s=2.0))
    assert during > 0, "no commit was acknowledged while an AZ was down"
    assert log_problems(storage_nodes) == []


# --- 4. AZ + 1: reads survive, writes wait, nothing is lost --------------------------------


def test_az_plus_one_reads_survive_writes_wait(storage_nodes: list[NodeProcess],
                                               tmp_path: Path) -> None:
    # Aurora SIGMOD 2017 §2.1: AZ + 1 down (3 of 6) leaves the 3/6 read quorum, not the
    # 4/6 write quorum: reads and data survive, writes wait.
    victims = [node_named(storage_nodes, n) for n in ("az1-n1", "az1-n2", "az2-n1")]

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            model = Model()
            load = Load(client, model, pages=PAGES - TASKS)  # the last pages are not its
            load.start()
            await eventually(lambda: _true(load.acked >= 200), timeout_s=20,
                             what="200 commits before the kill")
            await asyncio.to_thread(kill_all, victims)
            await asyncio.sleep(0.2)  # acknowledgements already on their way are counted
            vdl = client.vdl
            acked = load.acked
            # Every commit the model holds as acknowledged is at or below VDL, and every
            # commit at or below VDL was acknowledged to its task.
            assert max(model.commit_lsns) == vdl
            # attempts=2: a read may pick dead segments on all its tries (about one read in
            # 10^4 here); test_reads_survive_az_plus_one_whatever_the_segment_order pins it.
            assert await read_back(client, model, read_point=vdl, attempts=2) == \
                len(model.acked)

            pending = asyncio.create_task(client.commit(
                [PageWrite(PageNo(PAGES - 1), b"after AZ+1".ljust(PAGE_SIZE, b"\0"))]))
            done, _ = await asyncio.wait({pending}, timeout=3.0)
            assert not done, "a commit was acknowledged with only 3 of 6 segments up"
            assert load.acked == acked, "load commits were acknowledged during AZ + 1"
            assert client.vdl == vdl

            await asyncio.to_thread(start_all, victims)
            lsn = await asyncio.wait_for(pending, 20.0)
            assert lsn > vdl
            await eventually(lambda: _true(load.acked > acked), timeout_s=20,
                             what="the load commits again")
            await load.stop()
            assert not load.errors, load.errors
            model.acked[PAGES - 1] = b"after AZ+1".ljust(PAGE_SIZE, b"\0")
            assert await read_back(client, model) == len(model.acked)
            await converge(probe, storage_nodes, client)
            await probe.every_segment_matches(model, client.vdl)
        finally:
            await probe.close()
            await client.close()
        assert log_problems(storage_nodes) == []

    run(main())


def test_reads_survive_az_plus_one_whatever_the_segment_order(
        storage_nodes: list[NodeProcess], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every order of the segments is a possible shuffle; under AZ + 1 a read must succeed
    in each of them, since three live segments hold everything acknowledged. The order
    chosen here is the unlucky one: dead segments first, every time."""
    victims = [node_named(storage_nodes, n) for n in ("az1-n1", "az1-n2", "az2-n1")]
    dead = {n.node for n in victims}

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        try:
            node_of = {p.segment: p.node for layout in client.spec.layouts.values()
                       for p in layout.segments}
            model = Model()
            load = Load(client, model, pages=PG_PAGES)
            load.start(commits_per_task=5)
            await load.wait()
            node_of.update({p.segment: p.node for layout in client.spec.layouts.values()
                            for p in layout.segments})
            await asyncio.to_thread(kill_all, victims)

            def unlucky_shuffle(segments: list[SegmentId]) -> None:
                segments.sort(key=lambda s: (node_of[s] not in dead, s))

            monkeypatch.setattr(random, "shuffle", unlucky_shuffle)
            assert await read_back(client, model) == len(model.acked)
        finally:
            await client.close()

    run(main())


# --- 5. a new writer fences the old one -----------------------------------------------------


def test_writer_restart_recovers_every_acknowledged_commit_and_fences_the_old_writer(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    async def main() -> None:
        old = await open_writer(storage_nodes, tmp_path, "w1")
        new: VolumeClient | None = None
        try:
            model = Model()
            load = Load(old, model)
            load.start()
            await eventually(lambda: _true(load.acked >= 300), timeout_s=20,
                             what="300 commits before the crash")
            await load.crash()  # commits in flight are abandoned, nothing is closed
            assert not load.errors, load.errors
            assert model.maybe, "the crash was meant to abandon commits in flight"
            acked_max = max(model.commit_lsns)
            assert old.core is not None
            old_epoch = old.core.epoch

            spec = VolumeSpec.load(tmp_path / "volume.json")
            assert sorted(spec.layouts) == list(range(PGS))
            new = VolumeClient(spec, writer_id="w2", spec_path=tmp_path / "volume.json")
            recovered = await new.open_writer()
            # Aurora SIGMOD 2017 §4.3: recovery finds every acknowledged commit.
            assert recovered.vdl >= acked_max
            assert recovered.epoch > old_epoch
            # The old writer, still alive, is fenced: never another acknowledgement.
            with pytest.raises(FencedError):
                await asyncio.wait_for(old.commit(
                    [PageWrite(PageNo(3), b"stale writer".ljust(PAGE_SIZE, b"\0"))]), 10.0)
            assert old.vdl <= recovered.vdl, "the fenced writer acknowledged beyond the new VDL"

            # Every acknowledged commit reads back; an abandoned one is all or nothing.
            for page in sorted(set(model.acked) | set(model.maybe)):
                got = await new.read_page(page)
                assert got.image in model.allowed(page), f"page {page}: an image no commit made"
                model.settle(page, got.image)
            # The new writer writes deltas against what it read, and they apply.
            model.commit_lsns.clear()
            load = Load(new, model, seed=2)
            load.start(commits_per_task=20)
            await load.wait()
            assert min(model.commit_lsns) > recovered.start
            assert await read_back(new, model) == len(model.acked)
        finally:
            if new is not None:
                await new.close()
            await old.close()
        assert log_problems(storage_nodes) == []

    run(main())


def test_records_only_a_dead_node_holds_are_voided_when_it_returns(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    """The writer's last records reach one node only (the other five are down), the writer
    dies, that node dies, the five come back. A new writer recovers from the five and
    truncates above its VDL; when the node comes back, its records from the old epoch above
    that VDL must be voided, never served. Byte for byte, all six segments then agree."""
    holder = node_named(storage_nodes, "az3-n2")
    others = [n for n in storage_nodes if n is not holder]

    async def main() -> None:
        old = await open_writer(storage_nodes, tmp_path, "w1")
        new: VolumeClient | None = None
        probe = Probe(old.spec)
        try:
            model = Model()
            load = Load(old, model, pages=PAGES - TASKS)  # the last pages are not its
            load.start()
            await eventually(lambda: _true(load.acked >= 200), timeout_s=20,
                             what="200 commits")
            await asyncio.to_thread(kill_all, others)
            # Commits made now reach the holder only.
            late = []
            for page in range(PAGES - TASKS, PAGES):
                writes = [PageWrite(PageNo(page), f"late {page}".encode().ljust(PAGE_SIZE,
                                                                              b"\0"))]
                model.unknown(writes)
                late.append(asyncio.create_task(old.commit(writes)))
            await asyncio.sleep(0.5)
            assert not any(t.done() for t in late)
            holder_status = await probe.status(holder)
            acked_max = max(model.commit_lsns)
            await load.crash()
            for t in late:
                t.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            await old.close()  # the writer is gone: nothing more leaves it
            assert all(st["scl"] > acked_max for st in holder_status["segments"].values()), \
                "the holder was meant to hold records beyond the last acknowledged commit"
            await asyncio.to_thread(holder.kill)
            await asyncio.to_thread(start_all, others)

            spec = VolumeSpec.load(tmp_path / "volume.json")
            new = VolumeClient(spec, writer_id="w2", spec_path=tmp_path / "volume.json")
            recovered = await new.open_writer()
            assert recovered.vdl >= acked_max
            # Nothing that only the dead holder had can be recovered.
            assert recovered.vdl < min(st["scl"] for st in holder_status["segments"].values())
            for page in range(PAGES - TASKS, PAGES):
                assert (await new.read_page(page)).image is None
            for page in sorted(set(model.acked) | set(model.maybe)):
                got = await new.read_page(page)
                assert got.image in model.allowed(page), f"page {page}: an image no commit made"
                model.settle(page, got.image)
            model.commit_lsns.clear()
            load = Load(new, model, seed=3, pages=PAGES - TASKS)
            load.start(commits_per_task=10)
            await load.wait()

            await asyncio.to_thread(holder.start)
            await converge(probe, storage_nodes, new)
            await probe.every_segment_matches(model, new.vdl)
            status = await probe.status(holder)
            assert all(st["epoch"] == recovered.epoch for st in status["segments"].values())
            # The void records are not served by the holder either.
            for page in range(PAGES - TASKS, PAGES):
                layout = new.spec.layouts[new.spec.geometry.pg_of(page)]
                segment = next(p.segment for p in layout.segments if p.node == holder.node)
                got = await probe.get_page(segment, page, new.vdl)
                assert got.image is None, f"{segment} serves a truncated record of page {page}"
        finally:
            await probe.close()
            if new is not None:
                await new.close()
            await old.close()
        assert log_problems(storage_nodes) == []

    run(main())


def test_sigstop_longer_than_the_timeouts_while_committing(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    """A node frozen (SIGSTOP) for longer than every RPC and gossip timeout: the writer's
    calls to it time out, commits go on, and once thawed it catches up."""
    frozen = node_named(storage_nodes, "az1-n2")

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            model = Model()
            load = Load(client, model)
            load.start()
            await eventually(lambda: _true(load.acked >= 200), timeout_s=20,
                             what="200 commits")
            frozen.pause()
            at_pause = load.acked
            await asyncio.sleep(3.0)  # > RPC_TIMEOUT_S and GOSSIP_TIMEOUT_S (2 s)
            during = load.acked - at_pause
            frozen.resume()
            await asyncio.sleep(1.0)
            await load.stop()
            assert not load.errors, load.errors
            assert during > 0, "no commit was acknowledged while one node was frozen"
            await converge(probe, storage_nodes, client)
            await probe.every_segment_matches(model, client.vdl)
        finally:
            frozen.resume()
            await probe.close()
            await client.close()
        assert log_problems(storage_nodes) == []

    run(main())


# --- 6. a node's own log replays what it acknowledged ---------------------------------------


def test_kill9_node_replays_what_it_acknowledged(storage_nodes: list[NodeProcess],
                                                 tmp_path: Path) -> None:
    victim = node_named(storage_nodes, "az3-n2")
    others = [n for n in storage_nodes if n is not victim]

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            model = Model()
            load = Load(client, model)
            load.start()
            await eventually(lambda: _true(load.acked >= 300), timeout_s=20,
                             what="300 commits before the kill")
            segments = probe.segments_on(victim)
            assert len(segments) == PGS  # two nodes per AZ: every node holds every PG
            status_before = await probe.status(victim)
            await asyncio.to_thread(victim.kill)
            assert client.core is not None
            # What it acknowledged: the writer heard it only after the entries were synced.
            acked = {s: client.core.tracker.acked[s] for s in segments}
            assert client.recovery_result is not None
            assert min(acked.values()) > client.recovery_result.start
            await load.stop()

            # No peer can help it: whatever it serves now comes from its own disk.
            for n in others:
                n.pause()
            try:
                await asyncio.to_thread(victim.start)
                status = await probe.status(victim)
            finally:
                for n in others:
                    n.resume()
            for s in segments:
                after = status["segments"][s]
                assert after["scl"] >= acked[s], f"{s}: replay lost acknowledged entries"
                assert after["epoch"] == status_before["segments"][s]["epoch"]
            await converge(probe, storage_nodes, client)
            await probe.every_segment_matches(model, client.vdl, only=segments)
        finally:
            await probe.close()
            await client.close()
        assert log_problems(storage_nodes) == []

    run(main())


def test_a_caught_up_node_acknowledges_only_what_it_synced(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    """A node that comes back fills its hole by gossip, whose entries are appended to its
    log but synced only with a later request's. The writer's resends to it carry nothing
    new (a write quorum has it all), so they log no entry: the acknowledgement must still
    wait for the sync of everything its SCL rests on, or a kill -9 loses what it acknowledged.
    (Failed against node.py's ``_after_sync(0, reply)``, which answered such a request at
    once.)"""
    victim = node_named(storage_nodes, "az3-n2")
    others = [n for n in storage_nodes if n is not victim]

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            assert client.core is not None
            model = Model()
            load = Load(client, model)
            load.start()
            await eventually(lambda: _true(load.acked >= 100), timeout_s=20,
                             what="100 commits")
            await asyncio.to_thread(victim.kill)
            at_kill = load.acked
            await eventually(lambda: _true(load.acked >= at_kill + 200), timeout_s=20,
                             what="200 commits while it is down")
            await load.stop()
            target = client.core.allocated
            segments = probe.segments_on(victim)
            # The writer is quiet. The victim comes back, fills its hole by gossip, and
            # acknowledges the writer's resends.
            await asyncio.to_thread(victim.start)
            tracker = client.core.tracker
            await eventually(
                lambda: _true(all(tracker.acked[s] == target for s in segments)),
                timeout_s=CONVERGE_TIMEOUT_S, what="the victim acknowledges everything")
            acked = {s: client.core.tracker.acked[s] for s in segments}
            await asyncio.to_thread(victim.kill)
            for n in others:
                n.pause()
            try:
                await asyncio.to_thread(victim.start)
                status = await probe.status(victim)
            finally:
                for n in others:
                    n.resume()
            lost = {s: (acked[s], status["segments"][s]["scl"]) for s in segments
                    if status["segments"][s]["scl"] < acked[s]}
            assert not lost, f"acknowledged SCL lost by kill -9 (acked, after): {lost}"
        finally:
            await probe.close()
            await client.close()

    run(main())


# --- 7. a flipped byte in a stored page: scrubbing finds it, a peer repairs it ---------------

MARKER = b"<<borealis-flip>>"
MARKER_PAGE = PG_PAGES + 6  # in PG 1


def flip_marker_bytes(data_path: Path) -> int:
    """Flip one bit inside every copy of MARKER in the file; the number of copies."""
    data = bytearray(data_path.read_bytes())
    hits = 0
    position = data.find(MARKER)
    while position != -1:
        data[position + 5] ^= 0x01  # inside the image, never in LMDB's own structure
        hits += 1
        position = data.find(MARKER, position + len(MARKER))
    data_path.write_bytes(bytes(data))
    return hits


def test_flipped_byte_in_a_stored_page_is_scrubbed_and_repaired_from_a_peer(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    victim = node_named(storage_nodes, "az2-n2")
    marker_image = (MARKER * (PAGE_SIZE // len(MARKER) + 1))[:PAGE_SIZE]

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            model = Model()
            load = Load(client, model, pages=PG_PAGES)  # PG 0 only: page MARKER_PAGE is ours
            load.start(commits_per_task=10)
            await load.wait()
            marker_lsn = await client.commit([PageWrite(PageNo(MARKER_PAGE), marker_image)])
            model.acked[MARKER_PAGE] = marker_image
            # One more commit, so that storage learns a VDL at or above the marker and
            # materialises it into the page store.
            next_image = b"next".ljust(PAGE_SIZE, b"\0")
            await client.commit([PageWrite(PageNo(MARKER_PAGE + 1), next_image)])
            model.acked[MARKER_PAGE + 1] = next_image
            pg1 = client.spec.layouts[client.spec.geometry.pg_of(MARKER_PAGE)]
            segment = next(p.segment for p in pg1.segments if p.node == victim.node)

            async def materialised() -> bool:
                status = await probe.segment_status(storage_nodes)
                return all(status[s]["coalesced"] >= marker_lsn for s in pg1.segment_ids)

            await eventually(materialised, timeout_s=20,
                             what="the marker page materialised on all six segments")
            await asyncio.to_thread(victim.stop)  # SIGTERM: the page store is synced
            data_path = victim.data_dir / "pages" / "data.mdb"
            hits = await asyncio.to_thread(flip_marker_bytes, data_path)
            assert hits >= 200, f"the marker image is not in {data_path} ({hits} hits)"
            await asyncio.to_thread(victim.start)

            # Before the scrubber gets to it (it runs once a second) a read of the page
            # from this segment is refused: never wrong bytes.
            with pytest.raises(CorruptionError):
                await probe.get_page(segment, MARKER_PAGE, client.vdl)
            # The volume client reads the right page meanwhile, from another segment.
            for _ in range(20):
                assert (await client.read_page(MARKER_PAGE)).image == marker_image

            async def repaired() -> bool:
                status = await probe.status(victim)
                return status["pages_repaired"] > 0

            took_s = await eventually(repaired, timeout_s=10,
                                      what="scrubbing repairs the corrupt page version")
            status = await probe.status(victim)
            assert status["segments"][segment]["corrupt_found"] >= 1
            got = await probe.get_page(segment, MARKER_PAGE, client.vdl)
            assert got.image == marker_image
            assert got.version == marker_lsn
            # The repair is durable: after a restart, before any scrub, the page reads right.
            await asyncio.to_thread(victim.stop)
            await asyncio.to_thread(victim.start)
            got = await probe.get_page(segment, MARKER_PAGE, client.vdl)
            assert got.image == marker_image
            assert (await probe.status(victim))["pages_repaired"] == 0
            await probe.every_segment_matches(model, client.vdl)
            assert took_s < 10
        finally:
            await probe.close()
            await client.close()
        assert log_problems(storage_nodes) == []

    run(main())


# --- 8. requests that break the protocol -----------------------------------------------------


def frame(message: object) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


async def raw_exchange(address: str, data: bytes, *, wait_s: float = 3.0) -> tuple[bytes, bool]:
    """Send raw bytes on a new connection; what came back, and whether the node closed it."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    received = b""
    closed = False
    try:
        writer.write(data)
        await writer.drain()
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), remaining)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return received, closed


def replies(data: bytes) -> list[list[object]]:
    out = []
    while len(data) >= 4:
        (length,) = struct.unpack_from(">I", data)
        out.append(msgpack.unpackb(data[4:4 + length], raw=False))
        data = data[4 + length:]
    return out


def test_bad_input_gets_a_typed_error_or_a_closed_connection_and_the_node_serves_on(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    target = node_named(storage_nodes, "az1-n1")
    host, _, port = target.address.rpartition(":")

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        # A well-behaved client connected before the abuse, used again after it.
        bystander = await connect(host, int(port))
        try:
            assert client.core is not None
            epoch = client.core.epoch
            lsn = await client.commit([PageWrite(PageNo(5), b"before".ljust(PAGE_SIZE, b"\0"))])
            segment = client.spec.layouts[0].segments[0].segment
            assert client.spec.layouts[0].segments[0].node == target.node
            before = (await probe.status(target))["segments"][segment]
            rng = random.Random(8)

            # Random garbage in a frame: not a request, so the connection is closed.
            garbage = rng.randbytes(1000)
            got, closed = await raw_exchange(target.address,
                                             struct.pack(">I", len(garbage)) + garbage)
            assert closed and got == b""
            # Random garbage whose first bytes announce an impossible length.
            got, closed = await raw_exchange(target.address, b"\xf3" + rng.randbytes(4095))
            assert closed and got == b""
            # An oversized length prefix (4 GiB - 1) alone.
            got, closed = await raw_exchange(target.address, b"\xff\xff\xff\xff")
            assert closed and got == b""
            # A frame that is msgpack but not a request (a response, and a bare map).
            got, closed = await raw_exchange(target.address, frame([1, 1, None]))
            assert closed and got == b""
            got, closed = await raw_exchange(target.address, frame({"method": "write"}))
            assert closed and got == b""
            # A half frame held open (slowloris) ties up nothing but its own connection.
            host_, _, port_ = target.address.rpartition(":")
            _, stuck = await asyncio.open_connection(host_, int(port_))
            stuck.write(struct.pack(">I", 1000) + b"x" * 10)
            await stuck.drain()

            # A valid frame with an unknown method: a typed error, the connection kept
            # (the next request on it is answered).
            got, closed = await raw_exchange(
                target.address,
                frame([0, 1, "no_such_method", None]) + frame([0, 2, "node_status", None]),
                wait_s=1.0)
            answers = replies(got)
            assert not closed
            assert answers[0][:3] == [2, 1, "bad_request"]
            assert answers[1][0] == 1 and answers[1][1] == 2

            rpc = RpcClient(name="abuser")
            await rpc.connect(host, int(port))

            async def refused(method: str, body: object) -> BorealisError:
                try:
                    await rpc.call(method, body, timeout_s=5.0)
                except BorealisError as exc:
                    return exc
                raise AssertionError(f"{method} {body!r} was accepted")

            # Malformed write bodies: typed ProtocolErrors.
            for body in ([1, 2], "write", None, {"segment": segment},
                         [segment, epoch, "w", 0, 5, 7],
                         [segment, epoch, "w", 0, 5, [[1]]],
                         [segment, epoch, "w", 0, 5, [[1, 1, 0, 0, 1, 0, 0, 10**9, 0]]],
                         [segment, epoch, "w", 5, 0, []]):
                exc = await refused("write", body)
                assert isinstance(exc, ProtocolError), (body, exc)
            # A negative range must be refused before it changes anything: it once raised
            # the segment's epoch in memory (fencing the writer) and then failed an assert.
            exc = await refused("write", [segment, epoch + 5, "evil", -1, 0, []])
            assert isinstance(exc, ProtocolError), exc
            # A record whose CRC does not match: CorruptionError, nothing stored.
            record = RedoRecord.make(lsn + 1, 5, b"\x00" + b"z" * PAGE_SIZE, epoch=epoch,
                                     flags=1)
            bad = record.to_wire()
            bad[-1] ^= 1
            exc = await refused("write", [segment, epoch, "w1", lsn, lsn + 1, [bad]])
            assert isinstance(exc, CorruptionError), exc
            # A record for a page of another PG: BadRequestError.
            other = RedoRecord.make(lsn + 1, PG_PAGES + 1, b"\x00" + b"z" * PAGE_SIZE,
                                    epoch=epoch, flags=1)
            exc = await refused("write", wire.encode(
                WriteBatch(segment, epoch, "w1", LSN(lsn), LSN(lsn + 1), (other,))))
            assert isinstance(exc, BadRequestError), exc
            # A write from an older epoch: StaleEpochError naming the current epoch.
            exc = await refused("write", wire.encode(
                WriteBatch(segment, epoch - 1, "w0", LSN(lsn), LSN(lsn + 1), ())))
            assert isinstance(exc, StaleEpochError), exc
            assert exc.current_epoch == epoch
            exc = await refused("seal", [segment, epoch - 1, "w0"])
            assert isinstance(exc, StaleEpochError), exc
            # Unknown segments, of this volume and of a volume the node has never seen.
            for unknown in ("t/pg99/s0", "nope/pg0/s0"):
                exc = await refused("write", wire.encode(
                    WriteBatch(SegmentId(unknown), epoch, "w1", LSN(0), LSN(1), ())))
                assert isinstance(exc, UnknownSegmentError | UnknownVolumeError), exc
                exc = await refused("get_page", wire.encode(
                    GetPage(SegmentId(unknown), PageNo(0), LSN(lsn))))
                assert isinstance(exc, UnknownSegmentError | UnknownVolumeError), exc
            # A page outside the segment's PG.
            exc = await refused("get_page", wire.encode(GetPage(segment, PageNo(10**6),
                                                                LSN(lsn))))
            assert isinstance(exc, BadRequestError), exc
            # A create of an existing segment with another geometry (another peer list is
            # accepted: a writer creates every PG again after a membership change).
            exc = await refused("create", [segment, "t", 0, 0, 65, [[segment, "1.2.3.4:5"]]])
            assert isinstance(exc, BadRequestError), exc

            # The node is alive, unchanged, and serves everyone.
            await asyncio.sleep(0.5)
            assert target.alive()
            after = (await probe.status(target))["segments"][segment]
            assert after["epoch"] == before["epoch"] == epoch
            assert after["scl"] == before["scl"]
            assert (await bystander.call("node_status", None, timeout_s=5.0))["node"] == \
                target.node
            assert (await rpc.call("node_status", None, timeout_s=5.0))["node"] == target.node
            assert not client.core.fenced
            lsn2 = await asyncio.wait_for(client.commit(
                [PageWrite(PageNo(5), b"after".ljust(PAGE_SIZE, b"\0"))]), 10.0)
            assert lsn2 > lsn
            got_page = await probe.get_page(segment, 5, lsn2)
            assert got_page.image == b"after".ljust(PAGE_SIZE, b"\0")
            stuck.close()
            await rpc.close()
        finally:
            await bystander.close()
            await probe.close()
            await client.close()
        assert all(n.alive() for n in storage_nodes)
        assert log_problems(storage_nodes) == []

    run(main())


def test_malformed_page_version_request_is_a_protocol_error(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    target = node_named(storage_nodes, "az1-n1")
    host, _, port = target.address.rpartition(":")

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        try:
            segment = client.spec.layouts[0].segments[0].segment
            async with await connect(host, int(port)) as rpc:
                for body in ([segment, "a", "b"], [segment, -1, 5], [segment, 1, -5]):
                    with pytest.raises((ProtocolError, BadRequestError)):
                        await rpc.call("page_version", body, timeout_s=5.0)
        finally:
            await client.close()
        assert target.alive()
        assert log_problems([target]) == []

    run(main())
