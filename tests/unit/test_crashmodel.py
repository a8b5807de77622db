"""The lose-unsynced crash model: real files, a simulated kill -9, then ``lose_unsynced``.

A "kill" here closes the files without syncing (what a kill -9 leaves: everything written is
in the page cache); ``inner.sync()`` called around the wrapper is a sync the kill interrupted
after its write, before it returned (so before its record). Then ``lose_unsynced`` plays the
power loss, and the node's files are opened again as a restarted node would.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import lmdb
import pytest

from borealis.errors import ConfigError
from borealis.storage import wire
from borealis.storage.crashmodel import (
    CRASH_MODEL_ENV,
    LOSE_UNSYNCED,
    PAGES_CHECKPOINT_NAME,
    REDO_RECORD_NAME,
    CheckpointingPageStore,
    CrashModelError,
    SyncRecordingRedoLog,
    crash_model_from_env,
    lose_unsynced,
    model_dir,
    open_node_files,
    read_redo_record,
)
from borealis.storage.messages import WriteAck, WriteBatch
from borealis.storage.node import StorageNode
from borealis.storage.pagestore import LmdbPageStore
from borealis.storage.record import FLAG_CPL, RedoRecord
from borealis.storage.redolog import FileRedoLog, encode_entry
from borealis.types import LSN, Epoch, PageNo, SegmentId


def payload(i: int) -> bytes:
    return b"entry %d " % i + bytes([i % 256]) * 40


def open_redo(data_dir: Path, **kwargs: int) -> tuple[SyncRecordingRedoLog,
                                                      list[tuple[int, bytes]]]:
    directory = model_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    redo = SyncRecordingRedoLog(FileRedoLog(data_dir / "redo", **kwargs), directory)
    return redo, list(redo.replay())


def crash_with_unsynced(data_dir: Path, synced: int, written: int, buffered: int,
                        **kwargs: int) -> None:
    """Append and sync ``synced`` entries, then ``written`` more whose sync was killed
    before it returned, then ``buffered`` never written; kill."""
    redo, entries = open_redo(data_dir, **kwargs)
    assert entries == []
    for i in range(1, synced + 1):
        redo.append(payload(i))
    assert redo.sync() == synced
    for i in range(synced + 1, synced + written + 1):
        redo.append(payload(i))
    redo.inner.sync()  # written (and even fdatasynced), but the sync never returned
    for i in range(synced + written + 1, synced + written + buffered + 1):
        redo.append(payload(i))
    redo.inner.close()  # the kill: the buffer is gone, the written bytes are in the file


def test_synced_entries_replay_and_unsynced_ones_do_not(tmp_path: Path) -> None:
    crash_with_unsynced(tmp_path, synced=5, written=3, buffered=2)
    report = lose_unsynced(tmp_path, random.Random(1), torn_probability=0.0)
    assert report["redo"]["entries"] == 3
    assert report["redo"]["seqs"] == [6, 8]
    assert report["redo"]["bytes"] == sum(len(encode_entry(i, payload(i))) for i in (6, 7, 8))
    assert report["redo"]["torn"] is None
    redo, entries = open_redo(tmp_path)
    assert entries == [(i, payload(i)) for i in range(1, 6)]
    assert redo.synced_seq == 5
    assert redo.append(b"after") == 6  # the lost seqs are reused, as after any crash
    assert redo.sync() == 6
    redo.close()


def test_a_crash_with_nothing_unsynced_loses_nothing(tmp_path: Path) -> None:
    crash_with_unsynced(tmp_path, synced=4, written=0, buffered=0)
    report = lose_unsynced(tmp_path, random.Random(1), torn_probability=1.0)
    assert report["redo"] == {"bytes": 0, "entries": 0, "seqs": [], "chunks_cut": [],
                              "chunks_deleted": [], "torn": None}
    _, entries = open_redo(tmp_path)
    assert entries == [(i, payload(i)) for i in range(1, 5)]


@pytest.mark.parametrize("seed", range(12))
def test_a_torn_tail_is_truncated_by_the_logs_recovery(tmp_path: Path, seed: int) -> None:
    crash_with_unsynced(tmp_path, synced=5, written=2, buffered=0)
    report = lose_unsynced(tmp_path, random.Random(seed), torn_probability=1.0)
    torn = report["redo"]["torn"]
    assert torn is not None and torn["bytes"] >= 1
    chunk = tmp_path / "redo" / torn["chunk"]
    synced_bytes = sum(len(encode_entry(i, payload(i))) for i in range(1, 6))
    assert chunk.stat().st_size == synced_bytes + torn["bytes"]
    redo, entries = open_redo(tmp_path)
    assert entries == [(i, payload(i)) for i in range(1, 6)]
    assert chunk.stat().st_size == synced_bytes, "recovery truncates the torn write"
    assert redo.append(b"next") == 6
    redo.sync()
    redo.close()
    _, entries = open_redo(tmp_path)
    assert entries[-1] == (6, b"next")


def test_chunks_created_after_the_last_sync_are_deleted(tmp_path: Path) -> None:
    # Chunks of ~3 entries: the unsynced entries fill new chunks.
    chunk_bytes_max = 3 * len(encode_entry(1, payload(1))) + 10
    crash_with_unsynced(tmp_path, synced=4, written=7, buffered=0,
                        chunk_bytes_max=chunk_bytes_max)
    names = sorted(p.name for p in (tmp_path / "redo").glob("*.redo"))
    assert len(names) == 4
    report = lose_unsynced(tmp_path, random.Random(2), torn_probability=0.0)
    assert report["redo"]["entries"] == 7
    assert report["redo"]["chunks_cut"] == [names[1]]   # it held seq 4 (synced) and 5, 6
    assert report["redo"]["chunks_deleted"] == names[2:]
    _, entries = open_redo(tmp_path, chunk_bytes_max=chunk_bytes_max)
    assert entries == [(i, payload(i)) for i in range(1, 5)]


def test_recovery_makes_what_it_found_durable(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A node killed -9 between a write and its fdatasync comes back with those entries in
    the page cache only, yet its recovery reports them synced (``synced_seq``) and the node
    acknowledges them without a sync (``_after_sync``). A power loss then would lose
    acknowledged entries: so recovery must fdatasync what it found (found while building
    this model)."""
    redo, _ = open_redo(tmp_path)
    for i in range(1, 4):
        redo.append(payload(i))
    redo.sync()
    redo.inner.close()
    with open(tmp_path / "redo" / redo.inner.chunk_paths[-1].name, "ab") as chunk:
        chunk.write(encode_entry(4, payload(4)) + encode_entry(5, payload(5)))  # no fsync
    fdatasyncs: list[int] = []
    real_fdatasync = os.fdatasync

    def counting(fd: int) -> None:
        fdatasyncs.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    redo, entries = open_redo(tmp_path)
    assert [seq for seq, _ in entries] == [1, 2, 3, 4, 5]
    assert redo.synced_seq == 5
    assert fdatasyncs, "recovery reported entries synced that nothing had fdatasynced"
    assert redo.sync() == 5  # nothing new: a no-op, which the node's acks rely on
    redo.inner.close()
    # The model agrees: recovery's fdatasync made them durable, a power loss keeps them.
    report = lose_unsynced(tmp_path, random.Random(3), torn_probability=1.0)
    assert report["redo"]["entries"] == 0
    _, entries = open_redo(tmp_path)
    assert [seq for seq, _ in entries] == [1, 2, 3, 4, 5]


def test_a_record_claiming_more_than_the_file_holds_is_refused(tmp_path: Path) -> None:
    crash_with_unsynced(tmp_path, synced=3, written=1, buffered=0)
    chunk = next((tmp_path / "redo").glob("*.redo"))
    # The end of synced entry 3 lost: not the model's doing.
    os.truncate(chunk, chunk.stat().st_size - len(encode_entry(4, payload(4))) - 10)
    before = chunk.read_bytes()
    with pytest.raises(CrashModelError, match="lost synced data"):
        lose_unsynced(tmp_path, random.Random(1))
    assert chunk.read_bytes() == before, "nothing changed"


def test_a_node_not_run_with_the_model_is_refused(tmp_path: Path) -> None:
    redo = FileRedoLog(tmp_path / "redo")
    list(redo.replay())
    redo.close()
    with pytest.raises(CrashModelError, match="did not run with the crash model"):
        lose_unsynced(tmp_path, random.Random(1))


def test_the_record_survives_a_torn_slot(tmp_path: Path) -> None:
    redo, _ = open_redo(tmp_path)
    redo.append(b"a")
    redo.sync()
    counter, record = read_redo_record(model_dir(tmp_path) / REDO_RECORD_NAME) or (0, {})
    redo.append(b"b")
    redo.sync()
    redo.close()
    path = model_dir(tmp_path) / REDO_RECORD_NAME
    newer = read_redo_record(path)
    assert newer is not None and newer[0] == counter + 1
    data = bytearray(path.read_bytes())
    slot = (counter + 1) % 2
    data[slot * 16384 + 30] ^= 0xFF  # the kill tore the newer slot
    path.write_bytes(bytes(data))
    assert read_redo_record(path) == (counter, record)


# --- the page store --------------------------------------------------------------------------


def open_store(data_dir: Path) -> CheckpointingPageStore:
    directory = model_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return CheckpointingPageStore(LmdbPageStore(data_dir / "pages"), directory)


def test_the_page_store_rolls_back_to_its_last_sync_and_stays_usable(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.put_versions([("v/pg0/s0", 1, 10, b"A" * 4096), ("v/pg0/s0", 2, 10, b"B" * 100)],
                       meta={"coalesced:v/pg0/s0": b"10"})
    store.sync()
    store.put_versions([("v/pg0/s0", 1, 20, b"C" * 4096)], meta={"coalesced:v/pg0/s0": b"20"})
    store.gc("v/pg0/s0", 20)   # drops version 10 of page 1: unsynced too
    assert store.versions("v/pg0/s0", 1) == [20]
    store.inner.close()   # the kill
    report = lose_unsynced_pages_only(tmp_path)
    assert report == {"restored": True, "bytes": report["bytes"], "segments_rolled_back": 1,
                      "lsns_rolled_back": 10}
    store = open_store(tmp_path)
    assert store.versions("v/pg0/s0", 1) == [10]
    assert store.get_version_at("v/pg0/s0", 1, 100) == (10, b"A" * 4096)
    assert store.get_version_at("v/pg0/s0", 2, 100) == (10, b"B" * 100)
    assert store.get_meta("coalesced:v/pg0/s0") == b"10"
    store.put_versions([("v/pg0/s0", 1, 30, b"D" * 4096)])
    store.sync()
    assert store.versions("v/pg0/s0", 1) == [10, 30]
    store.close()


def lose_unsynced_pages_only(data_dir: Path) -> dict[str, Any]:
    # A redo record (empty log) so that lose_unsynced accepts the node.
    redo, _ = open_redo(data_dir)
    redo.close()
    pages: dict[str, Any] = lose_unsynced(data_dir, random.Random(0))["pages"]
    return pages


def test_a_sync_without_writes_takes_no_checkpoint(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert store.stats.checkpoints == 1   # the baseline at the first open
    store.sync()
    assert store.stats.checkpoints == 1
    store.put_meta({"k": b"v"})
    store.sync()
    store.sync()
    assert store.stats.checkpoints == 2
    store.close()
    # Opened again, it checkpoints at its first sync even without a write: the previous
    # process may have committed after its last sync.
    store = open_store(tmp_path)
    assert store.stats.checkpoints == 0
    store.sync()
    assert store.stats.checkpoints == 1
    store.close()
    checkpoint = model_dir(tmp_path) / PAGES_CHECKPOINT_NAME
    env = lmdb.open(str(checkpoint), readonly=True, lock=False, subdir=False, max_dbs=2)
    with env.begin(db=env.open_db(b"meta", create=False)) as txn:
        assert txn.get(b"k") == b"v"
    env.close()


# --- the storage node ------------------------------------------------------------------------

PEERS = tuple(SegmentId(f"v/pg0/s{slot}") for slot in range(6))
SEGMENT = PEERS[0]


def batch(prev: int, through: int) -> list[Any]:
    records = tuple(
        RedoRecord.make(lsn, lsn % 4, b"image %d" % lsn, prev_pg_lsn=lsn - 1 if lsn > 1 else 0,
                        epoch=1, flags=FLAG_CPL if lsn == through else 0)
        for lsn in range(prev + 1, through + 1)
    )
    return wire.encode(WriteBatch(SEGMENT, Epoch(1), "w1", LSN(prev), LSN(through), records))


def start_node(data_dir: Path) -> StorageNode:
    redo, store = open_node_files(data_dir)
    return StorageNode("n1", "az1", data_dir, redo_log=redo, store=store)


def kill(node: StorageNode) -> None:
    """What a kill -9 leaves: files closed unsynced; the scheduled group commit never runs."""
    node._closing = True
    assert isinstance(node.log, SyncRecordingRedoLog)
    assert isinstance(node.store, CheckpointingPageStore)
    node.log.inner.close()
    node.store.inner.close()


def test_a_storage_node_keeps_what_it_acknowledged_and_loses_the_rest(tmp_path: Path) -> None:
    data_dir = tmp_path / "n1"

    async def before_crash() -> None:
        node = start_node(data_dir)
        spec = wire.CreateSegment(SEGMENT, "v", 0, PageNo(0), 64,
                                  tuple((p, "127.0.0.1:1") for p in PEERS))
        await_reply = node.dispatch("create", wire.encode(spec), "test")
        if isinstance(await_reply, asyncio.Future):
            await await_reply
        reply = node.dispatch("write", batch(0, 5), "test")
        assert isinstance(reply, asyncio.Future)
        assert wire.decode(WriteAck, await reply).scl == 5
        reply = node.dispatch("write", batch(5, 9), "test")
        assert isinstance(reply, asyncio.Future), "not acknowledged before its sync"
        assert isinstance(node.log, SyncRecordingRedoLog)
        node.log.inner.sync()   # written; killed before the sync returned
        kill(node)

    asyncio.run(before_crash())
    report = lose_unsynced(data_dir, random.Random(5), torn_probability=1.0)
    assert report["redo"]["entries"] >= 1
    assert report["pages"]["restored"]

    async def after_crash() -> None:
        node = start_node(data_dir)
        assert node.hosted[SEGMENT].segment.scl == 5, "acknowledged: kept; the rest: lost"
        reply = node.dispatch("write", batch(5, 9), "test")   # the writer sends it again
        assert isinstance(reply, asyncio.Future)
        assert wire.decode(WriteAck, await reply).scl == 9
        await node.close()

    asyncio.run(after_crash())


def test_the_crash_model_is_read_from_the_environment() -> None:
    assert crash_model_from_env({}) is None
    assert crash_model_from_env({CRASH_MODEL_ENV: ""}) is None
    assert crash_model_from_env({CRASH_MODEL_ENV: LOSE_UNSYNCED}) == LOSE_UNSYNCED
    with pytest.raises(ConfigError):
        crash_model_from_env({CRASH_MODEL_ENV: "lose-everything"})


# --- the nemesis's choice of victims ---------------------------------------------------------


def cluster_view(layout: dict[int, list[str]]) -> dict[str, Any]:
    """A ``GET /v1/cluster`` view: nodes az{1..3}-n{1..3}, each PG on the nodes given."""
    nodes = [f"az{a}-n{k}" for a in (1, 2, 3) for k in (1, 2, 3)]
    holding = {node: sum(pg_nodes.count(node) for pg_nodes in layout.values())
               for node in nodes}
    return {
        "storage_nodes": [{"id": n, "az": n[:3], "state": "up", "pid": 100 + i,
                           "segments": holding[n]} for i, n in enumerate(nodes)],
        "protection_groups": [{"pg": pg, "healthy": 6, "segments": [
            {"segment": f"v/pg{pg}/s{k}", "node": node} for k, node in enumerate(pg_nodes)]}
            for pg, pg_nodes in layout.items()],
    }


def test_the_nemesis_never_crashes_more_than_two_nodes_of_a_pg() -> None:
    # nemesis.py first: once it registers LoseUnsynced it imports nemesis_disk itself.
    import borealis.chaos.nemesis  # noqa: F401
    from borealis.chaos.nemesis_disk import NODES_PER_PG_DOWN_MAX, choose_victims

    usual = {0: ["az1-n1", "az1-n2", "az2-n1", "az2-n2", "az3-n1", "az3-n2"],
             1: ["az1-n2", "az1-n3", "az2-n2", "az2-n3", "az3-n2", "az3-n3"]}
    view = cluster_view(usual)
    # Aurora SIGMOD 2017 §2.1: an AZ holds two copies of each PG; the other four write.
    assert [n["id"] for n in choose_victims(view, "az2", whole_az=True,
                                            rng=random.Random(1))] == ["az2-n1", "az2-n2",
                                                                       "az2-n3"]
    for seed in range(20):
        (one,) = choose_victims(view, "az3", whole_az=False, rng=random.Random(seed))
        assert one["az"] == "az3" and one["segments"] > 0
    # After repairs put three copies of PG 0 in az1, a whole-AZ loss takes only two of them.
    repaired = {0: ["az1-n1", "az1-n2", "az1-n3", "az2-n2", "az3-n1", "az3-n2"]}
    chosen = choose_victims(cluster_view(repaired), "az1", whole_az=True,
                            rng=random.Random(1))
    assert [n["id"] for n in chosen] == ["az1-n1", "az1-n2"]
    assert NODES_PER_PG_DOWN_MAX == 2
    down = cluster_view(usual)
    for node in down["storage_nodes"]:
        if node["az"] == "az1":
            node["state"], node["pid"] = "down", None
    assert choose_victims(down, "az1", whole_az=True, rng=random.Random(1)) == []
