"""The segment state machine, driven the way a storage node host drives it.

A naive ``WriterModel`` plays the writer: it allocates LSNs, builds redo records from
``borealis.delta.encode`` against the page's previous version, and keeps *every* version of
every page, so that any read at any read point has an obvious expected answer. ``Host`` plays
the storage node around one segment: it logs the entries every handler returns, stores
snapshot pages, and runs coalescing the way ``Segment.coalesce`` documents.
"""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from borealis import delta
from borealis.errors import (
    BadRequestError,
    CorruptionError,
    NotCaughtUpError,
    PageGarbageCollectedError,
    ProtocolError,
    StaleEpochError,
)
from borealis.storage.messages import (
    GetPage,
    GossipPush,
    Seal,
    SetMembership,
    Truncation,
    WriteBatch,
)
from borealis.storage.pagestore import MemoryPageStore
from borealis.storage.record import FLAG_CPL, RecordKind, RedoRecord, encode_block
from borealis.storage.segment import Entry, Segment, SendGossip
from borealis.types import LSN, Epoch, MembershipEpoch, PageNo, SegmentId

PEERS = tuple(SegmentId(f"v/pg0/s{slot}") for slot in range(6))
PG_PAGES = 64
PAGE_BYTES = 256
PAGES = range(8)
"""The pages the tests write (a few, so that most records are deltas)."""


# --- the writer: a naive model that keeps every page version -------------------------------


class WriterModel:
    def __init__(self, seed: int = 0, *, epoch: int = 1, name: str = "w1") -> None:
        self.rng = random.Random(seed)
        self.epoch = epoch
        self.name = name
        self.last_lsn = 0  # the last LSN allocated (to any PG)
        self.last_pg_lsn = 0  # the last record of this PG
        self.sent_through = 0  # the end of the last batch
        # The VDL the writer reports in its next batch. With auto_vdl, every batch sent
        # before is committed and quorum-durable by the time the next one goes out.
        self.vdl = 0
        self.auto_vdl = True
        self.history: dict[int, list[tuple[int, bytes]]] = {}  # page -> [(lsn, image)]

    def new_image(self, old: bytes | None) -> bytes:
        if old is None:
            return self.rng.randbytes(PAGE_BYTES)
        data = bytearray(old)
        for _ in range(self.rng.randint(1, 4)):
            at = self.rng.randrange(PAGE_BYTES)
            run = self.rng.randint(1, 12)
            data[at : at + run] = self.rng.randbytes(len(data[at : at + run]))
        return bytes(data)

    def change(self, page: int, *, skip: int = 0, cpl: bool = False) -> RedoRecord:
        """A record for ``page``; ``skip`` LSNs go to other PGs first."""
        history = self.history.setdefault(page, [])
        old_lsn, old = history[-1] if history else (0, None)
        new = self.new_image(old)
        lsn = self.last_lsn + 1 + skip
        record = RedoRecord.make(
            lsn, page, delta.encode(old, new),
            kind=RecordKind.IMAGE if old is None else RecordKind.DELTA,
            prev_page_lsn=old_lsn, prev_pg_lsn=self.last_pg_lsn, epoch=self.epoch,
            flags=FLAG_CPL if cpl else 0,
        )
        self.last_lsn = self.last_pg_lsn = lsn
        history.append((lsn, new))
        return record

    def batch(self, pages: list[int], *, skip: int = 0, **hints: object) -> WriteBatch:
        """Every record of the PG in (sent_through, through]: one change per page given,
        the last one a commit point. With no pages: a batch of hints only."""
        records = [
            self.change(page, skip=skip, cpl=index == len(pages) - 1)
            for index, page in enumerate(pages)
        ]
        self.last_lsn += skip  # LSNs after the last record may go to other PGs too
        prev, self.sent_through = self.sent_through, self.last_lsn
        hints.setdefault("vdl", LSN(self.vdl))
        # Like the real writer: no read in progress, so the minimum read point is VDL.
        hints.setdefault("min_read_point", LSN(self.vdl))
        if self.auto_vdl:
            self.vdl = self.sent_through
        return WriteBatch(
            PEERS[0], Epoch(self.epoch), self.name, LSN(prev), LSN(self.sent_through),
            tuple(records), **hints,
        )

    def random_batch(self, size_max: int = 4) -> WriteBatch:
        pages = [self.rng.choice(PAGES) for _ in range(self.rng.randint(1, size_max))]
        return self.batch(pages, skip=self.rng.randint(0, 2))

    def content_at(self, page: int, read_point: int) -> tuple[int, bytes | None]:
        found: tuple[int, bytes | None] = (0, None)
        for lsn, image in self.history.get(page, ()):
            if lsn <= read_point:
                found = (lsn, image)
        return found

    def forget_above(self, lsn: int) -> None:
        """A new writer's view after recovery at VDL ``lsn``: later records never happened."""
        for page, history in self.history.items():
            self.history[page] = [(v, image) for v, image in history if v <= lsn]
        self.last_pg_lsn = max(
            (h[-1][0] for h in self.history.values() if h), default=0
        )


# --- the host: what a storage node does around a segment ------------------------------------


def make_segment(slot: int = 0, store: MemoryPageStore | None = None) -> Segment:
    return Segment(
        segment_id=PEERS[slot], store=store if store is not None else MemoryPageStore(),
        first_page=PageNo(0), pg_pages=PG_PAGES, peers=PEERS,
    )


class Host:
    def __init__(self, slot: int = 0) -> None:
        self.segment = make_segment(slot)
        self.log: list[Entry] = []

    @property
    def store(self) -> MemoryPageStore:
        store = self.segment.store
        assert isinstance(store, MemoryPageStore)
        return store

    def write(self, batch: WriteBatch) -> LSN:
        entries, ack = self.segment.on_write(
            dataclasses.replace(batch, segment=self.segment.segment_id)
        )
        self.log += entries
        assert ack.scl == self.segment.scl
        return ack.scl

    def coalesce_all(self) -> None:
        """Coalesce up to the SCL, as the segment documents: store, then coalesced_to.

        ``coalesced_to`` is called even when there was nothing new to coalesce: it is also
        where records below a newly learnt ``all_scl`` are dropped.
        """
        segment = self.segment
        while True:
            versions, upto = segment.coalesce(segment.scl)
            assert upto >= segment.coalesced
            self.store.put_versions(versions, meta={self.meta_key: b"%d" % upto})
            segment.coalesced_to(upto)
            if upto >= min(segment.scl, segment.known_vdl, segment.min_read_point):
                return

    def receive(self, push: GossipPush) -> None:
        """Merge a gossip reply; a snapshot's pages replace the store's, before the log."""
        entries, pages = self.segment.on_gossip_push(push)
        if pages:
            self.store.drop_segment(self.segment.key)
            self.store.put_versions(
                [(self.segment.key, page, version, image) for page, version, image in pages],
                meta={self.meta_key: b"%d" % push.after},
            )
        self.log += entries

    @property
    def meta_key(self) -> str:
        return f"{self.segment.key}/coalesced"

    def checkpoint(self, *, trim: bool) -> None:
        """Log a checkpoint; with ``trim``, drop every entry before it, as a node does once
        the checkpoint is synced (without: a crash came before the trim)."""
        entries = self.segment.checkpoint()
        self.log = entries if trim else self.log + entries

    def replay(self) -> Segment:
        """A fresh segment over the same store, fed the log as it would come back from disk."""
        fresh = make_segment(PEERS.index(self.segment.segment_id), self.store)
        for entry in self.log:
            fresh.apply_entry(msgpack.unpackb(msgpack.packb(entry), raw=False))
        fresh.restarted(self.store.get_meta(self.meta_key))
        return fresh


def gossip(hosts: list[Host], rounds_max: int = 100, *, must_converge: bool = True) -> None:
    """Tick every host until none has a hole; pulls to absent peers are lost."""
    by_id = {host.segment.segment_id: host for host in hosts}
    now_s = 0.0
    for _ in range(rounds_max):
        if all(h.segment.scl >= h.segment.gossip_target() for h in hosts):
            return
        now_s += 1.0
        for host in hosts:
            entries, effects = host.segment.tick(now_s)
            host.log += entries
            for effect in effects:
                assert isinstance(effect, SendGossip)
                peer = by_id.get(effect.message.segment)
                if peer is None:
                    continue
                push = peer.segment.on_gossip_pull(effect.message)
                host.receive(push)
    assert not must_converge, "gossip did not converge"


def read(segment: Segment, page: int, read_point: int) -> tuple[int, bytes | None]:
    got = segment.on_get_page(GetPage(segment.segment_id, PageNo(page), LSN(read_point)))
    assert got.page == page
    return got.version, got.image


def assert_reads_match(segment: Segment, writer: WriterModel, low: int | None = None) -> None:
    """Every page at every read point in [low, SCL] is exactly the model's version; below
    the history a segment holds (a rebuilt one starts at its snapshot) reads are refused."""
    for read_point in range(segment.history_floor):
        with pytest.raises(PageGarbageCollectedError):
            read(segment, 0, read_point)
    if low is None:
        # Below the coalesced point (never above the minimum read point) reads are refused.
        low = max(segment.history_floor, segment.coalesced)
    for read_point in range(low, segment.scl + 1):
        for page in (*PAGES, PG_PAGES - 1):
            assert read(segment, page, read_point) == writer.content_at(page, read_point), (
                page, read_point,
            )


def assert_same_state(a: Segment, b: Segment, *, commit_points: bool = True) -> None:
    assert a.scl == b.scl
    assert a.coverage.intervals() == b.coverage.intervals()
    assert a.epoch == b.epoch
    assert a.sealed_by == b.sealed_by
    assert a.truncations == b.truncations
    floor = max(a.records_floor, b.records_floor)
    assert {k: v for k, v in a.records.items() if k > floor} == {
        k: v for k, v in b.records.items() if k > floor
    }
    low = max(floor, a.history_floor, b.history_floor, a.coalesced, b.coalesced)
    for read_point in range(low, a.scl + 1):
        if commit_points:
            assert a.highest_cpl_at_or_below(read_point) == b.highest_cpl_at_or_below(
                read_point
            ), read_point
        for page in PAGES:
            assert read(a, page, read_point) == read(b, page, read_point), (page, read_point)


def assert_exactly_restored(restored: Segment, live: Segment) -> None:
    """What a checkpoint must give back: every logged field, exactly."""
    assert_same_state(restored, live)
    assert restored.records == live.records
    assert restored.record_lsns == live.record_lsns == sorted(live.records)
    assert restored.page_lsns == live.page_lsns
    assert restored.cpls == live.cpls
    assert restored.records_floor == live.records_floor
    assert restored.history_floor == live.history_floor
    assert restored.membership_epoch == live.membership_epoch
    assert restored.peers == live.peers


# --- writes and the SCL ---------------------------------------------------------------------


def test_scl_advances_over_contiguous_batches() -> None:
    writer, host = WriterModel(1), Host()
    assert host.segment.scl == 0
    for _ in range(5):
        batch = writer.random_batch()
        assert host.write(batch) == batch.through
    assert host.segment.scl == writer.sent_through
    assert host.segment.state().high == writer.sent_through
    assert_reads_match(host.segment, writer)


def test_a_batch_after_a_hole_is_an_island_and_the_scl_stays() -> None:
    writer, host = WriterModel(2), Host()
    host.write(writer.batch([0, 1]))
    scl = host.segment.scl
    lost = writer.batch([2])
    island = writer.batch([0, 3])
    assert host.write(island) == scl  # the ack does not move past the hole
    assert host.segment.coverage.first_hole() == (scl, lost.through)
    assert host.segment.state().high == island.through
    assert island.records[0].lsn in host.segment.records
    with pytest.raises(NotCaughtUpError):
        read(host.segment, 0, scl + 1)
    # The lost batch arrives late: the island merges.
    assert host.write(lost) == island.through
    assert_reads_match(host.segment, writer)


def test_a_repeated_batch_changes_nothing() -> None:
    writer, host = WriterModel(3), Host()
    batch = writer.batch([0, 1, 2])
    host.write(batch)
    entries, ack = host.segment.on_write(batch)
    assert entries == []
    assert ack.scl == batch.through


def test_a_record_outside_the_pg_is_refused_and_nothing_is_applied() -> None:
    writer, host = WriterModel(4), Host()
    batch = writer.batch([0, PG_PAGES])
    with pytest.raises(BadRequestError):
        host.write(batch)
    assert host.segment.scl == 0
    assert host.segment.records == {}


def test_a_corrupt_record_in_a_batch_is_refused_and_nothing_is_applied() -> None:
    """A handler that raises must leave the state as it was: the host logs nothing."""
    writer, host = WriterModel(5), Host()
    host.write(writer.batch([0]))
    writer.epoch = 2
    batch = writer.batch([1, 2])
    corrupt = dataclasses.replace(
        batch,
        records=(batch.records[0], batch.records[1].with_payload_bit_flipped(5)),
        truncation=Truncation(Epoch(2), LSN(0), LSN(1)),
    )
    before = (host.segment.scl, dict(host.segment.records), host.segment.epoch)
    with pytest.raises(CorruptionError):
        host.write(corrupt)
    assert (host.segment.scl, dict(host.segment.records), host.segment.epoch) == before
    assert host.segment.truncations == []


def test_a_received_block_is_logged_as_it_is_and_replays_to_the_same_records() -> None:
    writer, host = WriterModel(8), Host()
    batch = writer.batch([0, 1, 2])
    block = encode_block(batch.records)
    entries, _ = host.segment.on_write(batch, block=block)
    (cover,) = [e for e in entries if e[0] == "cover"]
    assert cover[3] is block  # not encoded again
    replayed = make_segment()
    for entry in entries:
        replayed.apply_entry(entry)
    assert replayed.records == host.segment.records


@pytest.mark.parametrize("fault", ["reversed", "above-through", "at-prev-through",
                                   "future-epoch"])
def test_a_batch_with_misplaced_records_is_refused_and_nothing_is_applied(fault: str) -> None:
    """The records of a batch must be ascending, inside (prev_through, through] and of no
    later epoch than the batch: checked by the receiving segment (``check_records``)."""
    writer, host = WriterModel(7), Host()
    host.write(writer.batch([0]))
    batch = writer.batch([1, 2, 3])
    records = batch.records
    if fault == "reversed":
        bad = dataclasses.replace(batch, records=records[::-1])
    elif fault == "above-through":
        bad = dataclasses.replace(batch, through=LSN(records[-1].lsn - 1))
    elif fault == "at-prev-through":
        bad = dataclasses.replace(batch, prev_through=LSN(records[0].lsn))
    else:
        future = records[0]._replace(epoch=Epoch(batch.epoch + 1))
        bad = dataclasses.replace(batch, records=(future, *records[1:]))
    before = (host.segment.scl, dict(host.segment.records))
    with pytest.raises(ProtocolError):
        host.write(bad)
    assert (host.segment.scl, dict(host.segment.records)) == before


# --- gossip ---------------------------------------------------------------------------------


def test_gossip_fills_a_hole_from_a_peer() -> None:
    writer, a, b = WriterModel(6), Host(0), Host(1)
    for _ in range(3):
        batch = writer.random_batch()
        a.write(batch)
        b.write(batch)
    lost = writer.random_batch()
    b.write(lost)  # a misses it
    after = writer.random_batch()
    a.write(after)
    b.write(after)
    assert a.segment.scl == lost.prev_through
    gossip([a, b])
    assert a.segment.scl == b.segment.scl == writer.sent_through
    assert a.segment.records == b.segment.records
    assert a.segment.stats.gossip_pulls >= 1
    assert_reads_match(a.segment, writer)
    # What gossip brought in was logged: a restart keeps it.
    assert_same_state(a.replay(), a.segment)


# --- reads ----------------------------------------------------------------------------------


def test_get_page_is_exact_at_every_read_point_and_refuses_above_the_scl() -> None:
    writer, host = WriterModel(7), Host()
    for _ in range(12):
        host.write(writer.random_batch())
    assert_reads_match(host.segment, writer)
    with pytest.raises(NotCaughtUpError):
        read(host.segment, 0, host.segment.scl + 1)
    with pytest.raises(BadRequestError):
        read(host.segment, PG_PAGES, host.segment.scl)


def test_coalescing_keeps_reads_exact_and_drops_records_below_all_scl() -> None:
    writer, host = WriterModel(8), Host()
    for _ in range(10):
        last = writer.random_batch()
        host.write(last)
    scl = host.segment.scl
    host.coalesce_all()
    # Above the writer's VDL a record may still be truncated: it is not materialised yet.
    assert host.segment.coalesced == last.vdl == last.prev_through
    assert_reads_match(host.segment, writer)
    host.write(writer.batch([]))  # hints only: the writer's VDL reached the SCL
    host.coalesce_all()
    assert host.segment.coalesced == scl
    assert host.store.get_meta(f"{host.segment.key}/coalesced") == b"%d" % scl
    # all_scl is still 0: every record is kept for peers that may need it.
    assert min(host.segment.records) == 1
    assert host.segment.records_floor == 0
    assert_reads_match(host.segment, writer)

    # The writer reports that all six segments reached half way, then writes more.
    half = scl // 2
    host.write(writer.batch([], all_scl=LSN(half)))
    host.write(writer.random_batch())
    host.coalesce_all()
    assert host.segment.records_floor == half
    assert all(lsn > half for lsn in host.segment.records)
    assert host.segment.records  # those above all_scl are kept
    assert_reads_match(host.segment, writer)


def test_gc_keeps_reads_at_or_above_the_minimum_read_point() -> None:
    writer, host = WriterModel(9), Host()
    for _ in range(10):  # a pass after each batch: several versions per page
        host.write(writer.random_batch())
        host.write(writer.batch([]))
        host.coalesce_all()
    min_read_point = max(host.segment.scl - 3, host.segment.min_read_point)
    host.write(writer.batch([], min_read_point=LSN(min_read_point)))
    assert host.segment.gc() > 0
    assert_reads_match(host.segment, writer, low=min_read_point)
    with pytest.raises(PageGarbageCollectedError):
        read(host.segment, 0, min_read_point - 1)


# --- snapshots ------------------------------------------------------------------------------


def test_a_pull_below_the_records_floor_gets_a_snapshot_and_rebuilds_the_same_pages() -> None:
    writer, a, b = WriterModel(10), Host(0), Host(1)
    for _ in range(10):
        a.write(writer.random_batch())
    a.coalesce_all()
    floor = a.segment.scl - 4
    a.write(writer.batch([], all_scl=LSN(floor)))
    a.coalesce_all()
    for _ in range(3):
        a.write(writer.random_batch())
    assert a.segment.records_floor == floor

    # b is a brand-new replica: the writer's next batch makes it notice how far behind it is.
    batch = writer.random_batch()
    a.write(batch)
    b.write(batch)
    gossip([a, b])
    assert b.segment.stats.snapshots_installed == 1
    assert b.segment.scl == a.segment.scl == writer.sent_through
    # The snapshot is as of some point at or above a's records floor; b serves from there.
    base = b.segment.history_floor
    assert floor <= base <= a.segment.coalesced
    assert_reads_match(b.segment, writer)
    assert_same_state(b.segment, a.segment)
    assert_same_state(b.replay(), b.segment)


def test_a_snapshot_receiver_never_serves_a_wrong_page_below_the_snapshot() -> None:
    writer, a, b = WriterModel(11), Host(0), Host(1)
    for _ in range(10):
        a.write(writer.random_batch())
    a.coalesce_all()
    floor = a.segment.scl - 4
    a.write(writer.batch([], all_scl=LSN(floor)))
    a.coalesce_all()
    batch = writer.random_batch()
    a.write(batch)
    b.write(batch)
    gossip([a, b])
    assert b.segment.stats.snapshots_installed == 1
    # Below the snapshot b must answer exactly or refuse (PGMRPL is 0: a reader may ask).
    for read_point in range(floor):
        for page in PAGES:
            try:
                got = read(b.segment, page, read_point)
            except PageGarbageCollectedError:
                continue
            assert got == writer.content_at(page, read_point), (page, read_point)


def test_a_snapshot_after_gc_above_the_records_floor_is_complete() -> None:
    writer, a, b = WriterModel(12), Host(0), Host(1)
    a.write(writer.batch([0]))
    a.write(writer.batch([1]))
    a.write(writer.batch([0]))  # page 0: versions 1 and 3
    a.write(writer.batch([1]))
    a.coalesce_all()
    # One replica lags at 2 (all_scl), while readers have all moved past 3.
    a.write(writer.batch([], all_scl=LSN(2), min_read_point=LSN(4)))
    a.coalesce_all()
    assert a.segment.records_floor == 2
    # One version per page per pass: page 0 was stored only as version 3 (its version 1
    # was never materialised), page 1 as 2 then 4; GC drops 2, a read at 4 sees 3 and 4.
    assert a.segment.store.versions(a.segment.key, 0) == [3]
    assert a.segment.gc() == 1
    assert read(a.segment, 0, 4) == writer.content_at(0, 4)
    batch = writer.batch([2])
    a.write(batch)
    b.write(batch)
    gossip([a, b])
    assert b.segment.stats.snapshots_installed == 1
    assert_reads_match(b.segment, writer)


def rebuild_from_snapshot(seed: int) -> tuple[WriterModel, Host, Host]:
    """a has materialised and dropped its records; b is new and rebuilds from a snapshot."""
    writer, a, b = WriterModel(seed), Host(0), Host(1)
    for _ in range(6):
        a.write(writer.random_batch())
    a.write(writer.batch([], all_scl=LSN(writer.sent_through)))
    a.coalesce_all()
    assert a.segment.records_floor == a.segment.scl
    return writer, a, b


def test_a_rebuilt_replica_still_knows_the_last_commit_point() -> None:
    writer, a, b = rebuild_from_snapshot(22)
    batch = writer.batch([])  # hints only: b learns how far behind it is
    a.write(batch)
    b.write(batch)
    gossip([a, b])
    assert b.segment.stats.snapshots_installed == 1
    scl = a.segment.scl
    assert a.segment.highest_cpl_at_or_below(scl) > 0
    assert b.segment.highest_cpl_at_or_below(scl) == a.segment.highest_cpl_at_or_below(scl)


def test_a_snapshot_with_a_new_truncation_replays_to_the_same_coverage() -> None:
    writer, a, b = rebuild_from_snapshot(23)
    writer.random_batch()  # the old writer's last committed batch: a misses it (a hole)
    vdl = writer.vdl = writer.sent_through
    # Recovery at epoch 2 truncates (VDL, VDL + LAL]: an island on a, above its hole.
    # b only sees the new writer's second batch, so it learns the truncation from a's
    # snapshot reply, which covers only up to a's SCL.
    new = WriterModel(24, epoch=2, name="w2")
    new.history = {page: list(h) for page, h in writer.history.items()}
    new.forget_above(vdl)
    new.last_lsn = new.sent_through = vdl + 50
    new.vdl = vdl
    a.log += a.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))[0]
    a.write(new.batch([1], truncation=Truncation(Epoch(2), LSN(vdl), LSN(vdl + 50))))
    second = new.batch([2])
    a.write(second)
    b.write(second)
    gossip([a, b], must_converge=False)  # a's hole (the missed batch) is filled by no one
    assert b.segment.stats.snapshots_installed == 1
    assert b.segment.scl == a.segment.scl < vdl
    assert b.replay().coverage.intervals() == b.segment.coverage.intervals()


# --- epochs ---------------------------------------------------------------------------------


def test_seals_and_writes_from_older_epochs_are_refused() -> None:
    writer, host = WriterModel(13), Host()
    host.write(writer.batch([0]))
    entries, state = host.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))
    host.log += entries
    assert entries == [("epoch", 2, "w2")]
    assert state.epoch == 2
    assert state.scl == writer.sent_through
    # The same writer sealing again is idempotent: nothing to log.
    entries, state = host.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))
    assert entries == []
    assert state.epoch == 2
    # Another writer at the same epoch is refused: two writers can never share an epoch.
    with pytest.raises(StaleEpochError) as refused:
        host.segment.on_seal(Seal(PEERS[0], Epoch(2), "w3"))
    assert refused.value.current_epoch == 2
    with pytest.raises(StaleEpochError):
        host.segment.on_seal(Seal(PEERS[0], Epoch(1), "w1"))
    scl = host.segment.scl
    with pytest.raises(StaleEpochError) as stale:
        host.write(writer.batch([1]))  # the fenced writer, still at epoch 1
    assert stale.value.current_epoch == 2
    assert host.segment.scl == scl
    assert host.segment.sealed_by == "w2"
    assert_same_state(host.replay(), host.segment)


def test_a_batch_from_a_newer_epoch_raises_the_epoch() -> None:
    writer, host = WriterModel(14), Host()
    host.write(writer.batch([0]))
    writer.epoch, writer.name = 3, "w3"
    host.write(writer.batch([1]))
    assert (host.segment.epoch, host.segment.sealed_by) == (3, "w3")
    with pytest.raises(StaleEpochError):
        host.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))


def test_truncation_voids_older_records_in_its_range_and_covers_it() -> None:
    writer, a, b = WriterModel(15), Host(0), Host(1)
    for pages in ([0, 1], [2], [0]):
        batch = writer.batch(pages)
        a.write(batch)
        b.write(batch)
    vdl = writer.sent_through
    # The old writer got two more batches out to some replicas before it died.
    writer.auto_vdl = False  # the writer's VDL stays where recovery will find it
    doomed = [writer.batch([0, 3]), writer.batch([1])]
    for batch in doomed:
        a.write(batch)
        b.write(batch)
    doomed_lsns = [r.lsn for batch in doomed for r in batch.records]
    assert all(lsn in a.segment.records for lsn in doomed_lsns)

    # Recovery: a new writer at epoch 2 truncates (VDL, VDL + LAL] and writes above it.
    lal = 50
    new = WriterModel(16, epoch=2, name="w2")
    new.history = {page: list(h) for page, h in writer.history.items()}
    new.forget_above(vdl)
    new.last_lsn = new.sent_through = vdl + lal
    new.vdl = vdl
    truncation = Truncation(Epoch(2), LSN(vdl), LSN(vdl + lal))
    a.log += a.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))[0]
    a.write(new.batch([0, 3], truncation=truncation))

    assert a.segment.truncations == [truncation]
    assert all(lsn not in a.segment.records for lsn in doomed_lsns)
    assert a.segment.coverage.covers(vdl, vdl + lal)
    assert a.segment.scl == new.sent_through
    assert_reads_match(a.segment, new)
    # A straggler from the fenced writer is refused.
    with pytest.raises(StaleEpochError):
        a.write(writer.batch([2]))
    assert_same_state(a.replay(), a.segment)

    # b never saw the truncation: the new writer's next batch leaves it a hole, and gossip
    # from a brings the truncation, the new epoch and the records, voiding the old ones.
    batch = new.batch([4])
    a.write(batch)
    b.write(batch)
    gossip([a, b])
    assert b.segment.epoch == 2
    assert b.segment.truncations == [truncation]
    assert all(lsn not in b.segment.records for lsn in doomed_lsns)
    assert b.segment.scl == a.segment.scl
    assert_reads_match(b.segment, new)
    assert_same_state(b.replay(), b.segment)


def test_gossip_from_an_older_epoch_peer_never_brings_back_truncated_records() -> None:
    writer, a, b = WriterModel(19), Host(0), Host(1)
    first = writer.batch([0, 1])
    a.write(first)
    b.write(first)
    b.write(writer.batch([2]))  # committed, but a misses it: a hole below the VDL
    c = writer.batch([3])
    a.write(c)
    b.write(c)
    vdl = writer.sent_through
    writer.auto_vdl = False
    doomed = writer.batch([0, 1])  # never committed; only b has it
    b.write(doomed)
    # b is partitioned away through recovery: it stays at epoch 1, without the truncation.
    new = WriterModel(20, epoch=2, name="w2")
    new.history = {page: list(h) for page, h in writer.history.items()}
    new.forget_above(vdl)
    new.last_lsn = new.sent_through = vdl + 50
    new.vdl = vdl
    a.log += a.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))[0]
    a.write(new.batch([4], truncation=Truncation(Epoch(2), LSN(vdl), LSN(vdl + 50))))
    assert a.segment.scl < vdl

    # a pulls its hole from b, which offers everything it has, the doomed records too.
    entries, effects = a.segment.tick(1.0)
    assert entries == []
    (effect,) = effects
    assert isinstance(effect, SendGossip)
    assert effect.message.segment == b.segment.segment_id
    push = b.segment.on_gossip_pull(effect.message)
    assert push.epoch == 1
    assert {r.lsn for r in doomed.records} <= {r.lsn for r in push.records}
    a.receive(push)
    assert a.segment.scl == new.sent_through
    assert all(r.lsn not in a.segment.records for r in doomed.records)
    assert a.segment.epoch == 2
    assert_reads_match(a.segment, new)
    assert_same_state(a.replay(), a.segment)


# --- crash recovery -------------------------------------------------------------------------


OPERATIONS = [
    "both", "both", "both", "a_only", "b_only", "gossip", "gossip",
    "coalesce_a", "coalesce_a", "coalesce_b", "all_scl", "all_scl", "replace_b",
    "checkpoint_a", "checkpoint_b", "checkpoint_a_untrimmed",
]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32),
    st.lists(st.sampled_from(OPERATIONS), min_size=15, max_size=40),
)
def test_replaying_the_log_reproduces_the_segment(seed: int, operations: list[str]) -> None:
    """The durable state is a fold over the logged entries: a restart loses nothing."""
    writer, a, b = WriterModel(seed), Host(0), Host(1)
    sent: list[WriteBatch] = []
    for operation in operations:
        if operation in ("both", "a_only", "b_only"):
            batch = writer.random_batch()
            sent.append(batch)
            if operation != "b_only":
                a.write(batch)
            if operation != "a_only":
                b.write(batch)
        elif operation == "gossip":
            # A batch only an island of a rebuilt b held may be gone (the writer never
            # counted it: acks report the SCL): convergence waits for the resend below.
            gossip([a, b], must_converge=False)
        elif operation == "coalesce_a":
            a.coalesce_all()
        elif operation == "coalesce_b":
            b.coalesce_all()
        elif operation == "all_scl":
            hint = writer.batch([], all_scl=LSN(min(a.segment.scl, b.segment.scl)))
            a.write(hint)
            b.write(hint)
        elif operation == "checkpoint_a":
            a.checkpoint(trim=True)
            assert_exactly_restored(a.replay(), a.segment)
        elif operation == "checkpoint_a_untrimmed":
            a.checkpoint(trim=False)
            assert_exactly_restored(a.replay(), a.segment)
        elif operation == "checkpoint_b":
            b.checkpoint(trim=True)
        elif operation == "replace_b" and a.segment.scl == writer.sent_through:
            # A new, empty replica in b's place (only while a holds everything: with two
            # replicas standing in for six, b may be the only one with some batch).
            b = Host(1)
    for host in (a, b):
        assert_reads_match(host.segment, writer)
        assert_same_state(host.replay(), host.segment)
    # The writer resends what is not acknowledged (here: everything), then its next batch
    # tells each replica how far it is behind.
    for batch in [*sent, writer.random_batch()]:
        a.write(batch)
        b.write(batch)
    gossip([a, b])
    assert a.segment.scl == b.segment.scl == writer.sent_through
    assert_reads_match(a.segment, writer)
    assert_reads_match(b.segment, writer)
    event(f"snapshots installed: {b.segment.stats.snapshots_installed}")
    event(f"records dropped by a: {a.segment.records_floor > 0}")


# --- scrubbing ------------------------------------------------------------------------------


def test_scrub_finds_a_corrupt_record_uncovers_it_and_gossip_repairs_it() -> None:
    writer, a, b = WriterModel(17), Host(0), Host(1)
    for _ in range(8):
        batch = writer.random_batch()
        a.write(batch)
        b.write(batch)
    scl = a.segment.scl
    lsns = sorted(a.segment.records)
    victim = lsns[len(lsns) // 2]
    good = a.segment.records[victim]
    a.segment.records[victim] = good.with_payload_bit_flipped(3)

    entries = a.segment.scrub_step()
    a.log += entries
    assert entries == [("uncover", lsns[len(lsns) // 2 - 1], victim)]
    assert a.segment.stats.corrupt_found == 1
    assert victim not in a.segment.records
    assert a.segment.scl < victim
    assert a.segment.scl == lsns[len(lsns) // 2 - 1]
    with pytest.raises(NotCaughtUpError):
        read(a.segment, good.page, victim)

    gossip([a, b])
    assert a.segment.scl == scl
    assert a.segment.records[victim] == good
    assert_reads_match(a.segment, writer)
    assert a.segment.scrub_step() == []
    assert_same_state(a.replay(), a.segment)


def test_a_read_that_meets_a_corrupt_record_refuses_and_uncovers_it() -> None:
    writer, a, b = WriterModel(18), Host(0), Host(1)
    for _ in range(6):
        batch = writer.random_batch()
        a.write(batch)
        b.write(batch)
    victim = max(a.segment.records)
    good = a.segment.records[victim]
    a.segment.records[victim] = good.with_payload_bit_flipped(0)
    with pytest.raises(CorruptionError):
        read(a.segment, good.page, victim)
    assert a.segment.scl < victim
    gossip([a, b])
    assert a.segment.records[victim] == good
    assert_reads_match(a.segment, writer)


def test_a_clone_segment_falls_through_to_its_parent_at_the_branch_lsn() -> None:
    """Room for copy-on-write clones: a page the clone never wrote is the parent's page as
    of the branch LSN; once the clone writes it, the clone's own version wins."""
    from dataclasses import dataclass as _dataclass

    from borealis.storage.pagestore import MemoryPageStore as _Store

    @_dataclass
    class Parent:
        branch_lsn: LSN
        versions: dict[int, list[tuple[int, bytes]]]

        def version_at(self, page: int, lsn: int) -> tuple[int, bytes] | None:
            found = [v for v in self.versions.get(page, []) if v[0] <= lsn]
            return found[-1] if found else None

    parent = Parent(LSN(10), {3: [(4, b"a" * 64), (12, b"b" * 64)]})
    seg = Segment(SegmentId("c/pg0/s0"), _Store(), PageNo(0), 64, parent=parent)
    assert seg.materialise(3, 10).image == b"a" * 64  # as of the branch, not the parent's 12
    assert seg.materialise(5, 10).image is None
    seg.coverage.add(0, 20)
    seg.apply_entry(("cover", 10, 20, [RedoRecord.make(11, 3, delta.encode(None, b"c" * 64)).to_wire()]))
    assert seg.materialise(3, 20).image == b"c" * 64


def test_a_peer_shows_a_corrupt_version_it_never_stored_through_its_read_path() -> None:
    """Segments coalesce at their own points, so a peer seldom stores the very version a
    repair asks for: it shows it by a read at that version, when no later record of the
    page lies in between; a version that a newer one supersedes needs no peer at all."""
    writer, a, b = WriterModel(19), Host(0), Host(1)
    for i in range(8):  # a coalesces after every batch, b once half way
        batch = writer.random_batch()
        a.write(batch)
        b.write(batch)
        a.write(writer.batch([]))
        b.write(writer.batch([]))
        a.coalesce_all()
        if i == 3:
            b.coalesce_all()
    key = a.segment.key
    stored_on_b = {(p, v) for p in PAGES for v in b.store.versions(b.segment.key, p)}
    newest = {p: a.store.get_version_at(key, p, a.segment.coalesced) for p in PAGES}
    bases = [(p, found[0]) for p, found in newest.items() if found is not None]
    older = [(p, v) for p in PAGES for v in a.store.versions(key, p)
             if newest[p] is not None and v < newest[p][0]]  # type: ignore[index]
    assert bases and older
    assert any(pv not in stored_on_b for pv in bases), "b stores every version a reads from"

    for page, version in bases:
        assert b.segment.image_at(page, version) == dict(writer.history[page])[version]
    # An older one b may not be able to show (a later record of the page lies below what
    # b still reads at), but it never shows a wrong image; and a needs none for it.
    shown = [b.segment.image_at(p, v) for p, v in older]
    assert any(image is None for image in shown)
    for (page, version), image in zip(older, shown, strict=True):
        assert image is None or image == dict(writer.history[page])[version]
    assert not any(a.segment.superseded(p, v) for p, v in bases)
    assert all(a.segment.superseded(p, v) for p, v in older)

    # The repair a node makes: drop the corrupt base, store the image the peer showed.
    page, version = bases[0]
    a.store.flip_bit(key, page, version, bit=5)
    with pytest.raises(CorruptionError):
        read(a.segment, page, a.segment.scl)
    image = b.segment.image_at(page, version)
    assert image is not None
    a.store.delete_version(key, page, version)
    a.store.put_versions([(key, page, version, image)])
    assert_reads_match(a.segment, writer, low=a.segment.coalesced)


def test_a_corrupt_base_no_peer_can_show_is_replaced_by_a_rebuild_from_a_snapshot() -> None:
    writer, a, b = WriterModel(20), Host(0), Host(1)
    for i in range(8):  # a coalesces early, b only at the end: past a, skipping versions
        batch = writer.random_batch()
        a.write(batch)
        b.write(batch)
        a.write(writer.batch([]))
        b.write(writer.batch([]))
        if i == 2:
            a.coalesce_all()
    b.coalesce_all()
    key = a.segment.key
    hidden = [(p, found[0]) for p in PAGES
              if (found := a.store.get_version_at(key, p, a.segment.coalesced)) is not None
              and b.segment.image_at(p, found[0]) is None]
    assert hidden, "b can show every base a reads from: no case to test"
    page, version = hidden[0]
    a.store.flip_bit(key, page, version, bit=9)
    with pytest.raises(CorruptionError):
        a.segment.coalesce(a.segment.scl)
    scl = a.segment.scl

    a.segment.want_rebuild(f"page {page} version {version} is corrupt")
    assert a.segment.coalesce(a.segment.scl) == ([], a.segment.coalesced)  # it waits
    _, effects = a.segment.tick(now_s=1.0)
    pulls = [e.message for e in effects if isinstance(e, SendGossip)]
    assert len(pulls) == 1 and pulls[0].rebuild
    a.receive(b.segment.on_gossip_pull(dataclasses.replace(pulls[0],
                                                           segment=b.segment.segment_id)))
    assert a.segment.stats.snapshots_installed == 1
    assert a.segment.rebuild_wanted == ""
    assert a.segment.scl >= scl  # nothing it acknowledged went back
    assert_reads_match(a.segment, writer, low=max(a.segment.coalesced,
                                                  a.segment.history_floor))
    a.coalesce_all()
    assert_reads_match(a.segment, writer, low=max(a.segment.coalesced,
                                                  a.segment.history_floor))
    assert_same_state(a.replay(), a.segment)


# --- checkpoints ----------------------------------------------------------------------------


def test_a_checkpoint_alone_restores_truncations_epochs_membership_and_held_records() -> None:
    writer, host = WriterModel(41), Host()
    for _ in range(6):
        host.write(writer.random_batch())
    host.write(writer.batch([], all_scl=LSN(host.segment.scl)))
    host.coalesce_all()
    floor = host.segment.records_floor
    assert floor > 0
    # Records above the floor: written after the all-SCL hint, not yet coalesced.
    writer.auto_vdl = False
    for _ in range(3):
        host.write(writer.random_batch())
    # A new writer recovers at the VDL, truncates above it, and writes on.
    vdl = writer.vdl
    replacement = SegmentId("v/pg0/s6")
    host.log += host.segment.on_membership(SetMembership(
        host.segment.segment_id, MembershipEpoch(3), (*PEERS[:5], replacement),
    ))
    truncation = Truncation(Epoch(2), LSN(vdl), LSN(writer.sent_through + 10))
    new = WriterModel(41, epoch=2, name="w2")
    new.history = writer.history
    new.forget_above(vdl)
    new.last_lsn = new.sent_through = truncation.end
    new.vdl = vdl
    host.write(new.batch([1, 2], truncation=truncation))
    assert host.segment.truncations == [truncation]
    retained = len(host.segment.records)
    assert retained > 0
    host.checkpoint(trim=True)
    assert [entry[0] for entry in host.log] == ["ckpt", "held"]
    restored = host.replay()
    assert_exactly_restored(restored, host.segment)
    assert restored.epoch == 2 and restored.sealed_by == "w2"
    assert restored.membership_epoch == 3 and restored.peers[-1] == replacement
    assert len(restored.records) == retained
    assert_reads_match(restored, new)


def test_checkpoint_records_are_split_into_entries_of_bounded_size(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import borealis.storage.segment as segment_module

    monkeypatch.setattr(segment_module, "CHECKPOINT_RECORDS_PER_ENTRY", 3)
    writer, host = WriterModel(5), Host()
    writer.auto_vdl = False
    for _ in range(4):
        host.write(writer.batch([0, 1, 2]))
    entries = host.segment.checkpoint()
    assert [entry[0] for entry in entries] == ["ckpt"] + ["held"] * 4
    host.log = entries
    assert_exactly_restored(host.replay(), host.segment)


def test_a_malformed_checkpoint_is_corruption() -> None:
    with pytest.raises(CorruptionError, match="malformed checkpoint"):
        make_segment().apply_entry(("ckpt", {"epoch": 1}))


# --- superseded truncations ---------------------------------------------------------------


def test_a_truncation_its_successor_never_knew_is_superseded_and_its_range_refetched() -> None:
    """A recovery truncated above the VDL it saw on ``a`` only and died; the next recovery
    never knew it, found the later batches (on b) and declared them committed. When ``a``
    learns the newer truncation it drops the old one and gossip brings the records back."""
    writer, a, b = WriterModel(21), Host(0), Host(1)
    for pages in ([0, 1], [2], [0]):
        batch = writer.batch(pages)
        a.write(batch)
        b.write(batch)
    vdl2 = writer.sent_through
    writer.auto_vdl = False
    late = [writer.batch([0, 3]), writer.batch([1, 2])]
    for batch in late:
        a.write(batch)
        b.write(batch)
    late_lsns = [r.lsn for batch in late for r in batch.records]
    lal = 50

    second = WriterModel(22, epoch=2, name="w2")
    second.last_lsn = second.sent_through = second.vdl = vdl2
    t2 = Truncation(Epoch(2), LSN(vdl2), LSN(vdl2 + lal), ())
    a.log += a.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))[0]
    a.write(second.batch([], truncation=t2))
    assert all(lsn not in a.segment.records for lsn in late_lsns)

    vdl3 = writer.sent_through
    third = WriterModel(23, epoch=3, name="w3")
    third.history = {page: list(h) for page, h in writer.history.items()}
    third.last_lsn = third.sent_through = vdl3 + lal
    third.vdl = vdl3
    t3 = Truncation(Epoch(3), LSN(vdl3), LSN(vdl3 + lal), ())
    batch = third.batch([4], truncation=t3)
    a.write(batch)
    b.write(batch)
    assert a.segment.truncations == [t3]
    assert a.segment.truncation_superseded(t2)
    assert a.segment.scl == vdl2  # t2's range is a hole again
    assert_same_state(a.replay(), a.segment)

    # A peer that still holds t2 (it missed t3) changes nothing: its truncation is
    # ignored, and its coverage is trusted only below t2.
    stale_push = GossipPush(PEERS[0], PEERS[2], Epoch(2), "w2", (t2,), LSN(vdl2),
                            LSN(vdl2 + lal), ())
    entries, _ = a.segment.on_gossip_push(stale_push)
    assert entries == []
    assert a.segment.scl == vdl2

    gossip([a, b])
    assert all(lsn in a.segment.records for lsn in late_lsns)
    assert a.segment.scl == b.segment.scl == third.sent_through
    assert_reads_match(a.segment, third, low=vdl3)
    assert_same_state(a.replay(), a.segment)


def test_a_truncation_the_successor_honoured_stays_in_force() -> None:
    writer, a = WriterModel(24), Host(0)
    a.write(writer.batch([0, 1]))
    t2 = Truncation(Epoch(2), LSN(writer.sent_through), LSN(writer.sent_through + 50), ())
    a.log += a.segment.on_seal(Seal(PEERS[0], Epoch(2), "w2"))[0]
    second = WriterModel(25, epoch=2, name="w2")
    second.last_lsn = second.sent_through = second.vdl = writer.sent_through
    a.write(second.batch([], truncation=t2))
    t3 = Truncation(Epoch(3), LSN(t2.end), LSN(t2.end + 50), (t2,))
    third = WriterModel(26, epoch=3, name="w3")
    third.last_lsn = third.sent_through = third.vdl = t3.end
    a.write(third.batch([], truncation=t3))
    assert a.segment.truncations == [t2, t3]
    assert a.segment.truncations[-1].honoured == (t2,)
    assert not a.segment.truncation_superseded(t2)
    assert a.segment.scl == t3.end
    assert_exactly_restored(a.replay(), a.segment)


def test_truncations_from_before_honoured_lists_all_stay_in_force() -> None:
    """A log written before truncations said what they honour: every one stays in force,
    as recoveries then adopted every truncation they knew."""
    segment = make_segment()
    t1 = Truncation.from_wire([1, 0, 100])
    t2 = Truncation.from_wire([2, 120, 220])
    assert t1.honoured is None and not t2.supersedes(t1)
    segment.apply_entry(("trunc", t2.to_wire()))
    segment.apply_entry(("trunc", t1.to_wire()))
    assert segment.truncations == [t1, t2]
    assert segment.coverage.intervals() == [(0, 100), (120, 220)]
