"""Recovery without redo replay, driven against real Segment cores in memory
(Aurora SIGMOD 2017 §4.3: seal a write quorum, compute VDL, truncate above it)."""

from __future__ import annotations

from typing import Any

from borealis.errors import StaleEpochError
from borealis.storage.messages import QueryCpl, ReadRecords, Seal, WriteBatch
from borealis.storage.pagestore import MemoryPageStore
from borealis.storage.segment import Segment
from borealis.types import Epoch, NodeId, PageNo, PgIndex, VolumeId
from borealis.volume.geometry import Geometry, place_pg
from borealis.volume.recovery import Phase, Recovery
from borealis.volume.writer import PageWrite, WriterCore

GEOMETRY = Geometry(VolumeId("v"), page_size=512, pg_bytes=512 * 8)
NODES = {f"az{a}": [NodeId(f"az{a}-n{n}") for n in (1, 2)] for a in (1, 2, 3)}
LAYOUTS = {PgIndex(pg): place_pg(VolumeId("v"), pg, NODES) for pg in range(2)}


def segments() -> dict[Any, Segment]:
    out = {}
    for pg, layout in LAYOUTS.items():
        for sid in layout.segment_ids:
            out[sid] = Segment(sid, MemoryPageStore(), GEOMETRY.first_page(pg), 8,
                               layout.segment_ids)
    return out


def deliver(segs: dict[Any, Segment], msg: Any) -> Any:
    seg = segs[msg.segment]
    if isinstance(msg, Seal):
        return seg.on_seal(msg)[1]
    if isinstance(msg, QueryCpl):
        return seg.highest_cpl_at_or_below(msg.upto)
    if isinstance(msg, ReadRecords):
        return seg.on_read_records(msg)
    if isinstance(msg, WriteBatch):
        return seg.on_write(msg)[1]
    raise AssertionError(msg)


def recover(segs: dict[Any, Segment], epoch: int, *, down: set[Any] = frozenset()) -> Recovery:
    rec = Recovery(LAYOUTS, writer_id=f"w{epoch}", epoch=Epoch(epoch), lal=1000)
    queue = list(rec.start())
    while queue and rec.phase not in (Phase.DONE, Phase.FAILED):
        msg = queue.pop(0)
        if msg.segment in down:
            continue
        try:
            reply = deliver(segs, msg)
        except StaleEpochError as exc:
            queue += rec.on_refused(msg.segment, exc.current_epoch)
            continue
        if isinstance(msg, Seal):
            queue += rec.on_sealed(reply)
        elif isinstance(msg, QueryCpl):
            queue += rec.on_cpl(msg.segment, reply)
        elif isinstance(msg, ReadRecords):
            queue += rec.on_records(msg.segment, *reply)
        else:
            queue += rec.on_ack(reply)
    return rec


def test_recovery_keeps_every_acknowledged_commit_and_truncates_the_rest() -> None:
    segs = segments()
    rec = recover(segs, 1)
    assert rec.phase == Phase.DONE and rec.result is not None
    writer = WriterCore(GEOMETRY, LAYOUTS, writer_id="w1", epoch=Epoch(1),
                        start=rec.result.start, truncation=rec.result.truncation, lal=1000)
    # Commit A reaches every segment and is acknowledged.
    lsn_a = writer.append_group([PageWrite(PageNo(1), b"a" * 512), PageWrite(PageNo(9), b"A" * 512)])
    for batch in writer.flush():
        ack = deliver(segs, batch)
        writer.on_ack(ack.segment, ack.scl, ack.epoch)
    assert writer.vdl == lsn_a
    # Commit B reaches two segments of PG 0 and none of PG 1: never acknowledged, and
    # incomplete (its PG 1 record is nowhere), so recovery must void it.
    lsn_b = writer.append_group([PageWrite(PageNo(1), b"b" * 512), PageWrite(PageNo(9), b"B" * 512)])
    for batch in writer.flush():
        if batch.segment in ("v/pg0/s0", "v/pg0/s1"):
            deliver(segs, batch)
    assert writer.vdl == lsn_a < lsn_b
    # The writer dies; a new one recovers without two of the segments that had B.
    down = {sid for sid in segs if sid.endswith("s0")}
    rec2 = recover(segs, 2, down=down)
    assert rec2.phase == Phase.DONE and rec2.result is not None
    assert rec2.result.vdl == lsn_a
    assert rec2.result.truncation.start == lsn_a < lsn_b <= rec2.result.truncation.end
    point = rec2.result.start
    for sid in segs:
        if sid in down:
            continue
        page = 1 if "/pg0/" in sid else 9
        got = segs[sid].materialise(page, min(point, segs[sid].scl))
        # B is void wherever the truncation reached; A is everywhere.
        assert got.image in (b"a" * 512, b"A" * 512), sid
    # The old writer is fenced on the sealed segments.
    stale = writer.flush()  # nothing new: no batches
    assert stale == []
    writer.append_group([PageWrite(PageNo(2), b"c" * 512)])
    refused = 0
    for batch in writer.flush():
        if batch.segment in down:
            continue
        try:
            deliver(segs, batch)
        except StaleEpochError:
            refused += 1
    assert refused >= 4


def test_a_taken_epoch_fails_recovery_with_the_newer_epoch() -> None:
    segs = segments()
    assert recover(segs, 3).phase == Phase.DONE
    rec = recover(segs, 2)
    assert rec.phase == Phase.FAILED
    assert rec.newer_epoch == 3


def test_a_complete_unacknowledged_commit_may_be_kept() -> None:
    """Aurora semantics: a commit that was never acknowledged but whose records all survive
    on the sealed quorum is recovered as committed; the client saw no answer either way."""
    segs = segments()
    rec = recover(segs, 1)
    assert rec.result is not None
    writer = WriterCore(GEOMETRY, LAYOUTS, writer_id="w1", epoch=Epoch(1),
                        start=rec.result.start, truncation=rec.result.truncation, lal=1000)
    lsn = writer.append_group([PageWrite(PageNo(1), b"x" * 512), PageWrite(PageNo(9), b"X" * 512)])
    for batch in writer.flush():
        if batch.segment.endswith("s1"):  # one copy per PG: not durable, not acknowledged
            deliver(segs, batch)
    assert writer.vdl < lsn
    rec2 = recover(segs, 2)
    assert rec2.result is not None and rec2.result.vdl == lsn
    # ...and recovery re-replicated it to a write quorum before declaring it.
    for pg in (0, 1):
        holders = [sid for sid in LAYOUTS[PgIndex(pg)].segment_ids if segs[sid].scl >= lsn]
        assert len(holders) >= 4


def test_a_truncation_from_an_unfinished_recovery_is_adopted_not_contradicted() -> None:
    """Sim seed 91 of 'random': recovery at epoch 2 truncated above A on one segment only
    and died. Recovery at epoch 3 seals segments that still hold B (above A, never
    acknowledged) next to that one: it must not declare B committed while a segment has
    voided it. Each sealed segment first adopts every truncation any of them knows."""
    segs = segments()
    rec = recover(segs, 1)
    assert rec.result is not None
    writer = WriterCore(GEOMETRY, LAYOUTS, writer_id="w1", epoch=Epoch(1),
                        start=rec.result.start, truncation=rec.result.truncation, lal=1000)
    lsn_a = writer.append_group([PageWrite(PageNo(1), b"a" * 512), PageWrite(PageNo(9), b"A" * 512)])
    for batch in writer.flush():
        ack = deliver(segs, batch)
        writer.on_ack(ack.segment, ack.scl, ack.epoch)
    lsn_b = writer.append_group([PageWrite(PageNo(1), b"b" * 512), PageWrite(PageNo(9), b"B" * 512)])
    for batch in writer.flush():
        if batch.segment.endswith(("s0", "s1")):
            deliver(segs, batch)
    # Epoch 2 recovers without s0 and s1 (VDL = A), truncates only s2 of PG 0, dies.
    rec2 = Recovery(LAYOUTS, writer_id="w2", epoch=Epoch(2), lal=1000)
    queue = list(rec2.start())
    while queue and rec2.phase != Phase.REPAIR:
        msg = queue.pop(0)
        if msg.segment.endswith(("s0", "s1")):
            continue
        reply = deliver(segs, msg)
        queue += rec2.on_sealed(reply) if isinstance(msg, Seal) else rec2.on_cpl(msg.segment, reply)
    assert rec2.vdl == lsn_a
    for msg in queue:
        if isinstance(msg, WriteBatch) and msg.segment == "v/pg0/s2":
            deliver(segs, msg)
    # Epoch 3 seals s0..s2 and s3 of each PG (s4, s5 down): B is on s0 and s1.
    down = {sid for sid in segs if sid.endswith(("s4", "s5"))}
    rec3 = recover(segs, 3, down=down)
    assert rec3.phase == Phase.DONE and rec3.result is not None
    assert rec3.result.vdl == lsn_a < lsn_b
    for sid, seg in segs.items():
        if sid in down:
            continue
        page = 1 if "/pg0/" in sid else 9
        assert seg.materialise(page, rec3.result.start).image in (b"a" * 512, b"A" * 512), sid


def test_an_aborted_membership_change_leaves_the_old_set_alone() -> None:
    """A membership change whose new segment never catches up is aborted: the PG needs a
    quorum of its old set only again, the new segment's acknowledgements count for
    nothing, and another change can start."""
    segs = segments()
    rec = recover(segs, 1)
    assert rec.result is not None
    writer = WriterCore(GEOMETRY, LAYOUTS, writer_id="w1", epoch=Epoch(1),
                        start=rec.result.start, truncation=rec.result.truncation, lal=1000)
    pg = PgIndex(0)
    old = writer.layouts[pg]
    victim = old.segments[0]
    new_id = type(victim.segment)(f"{victim.segment}.m1")
    new = old.replace(victim.segment, type(victim)(new_id, NodeId("az1-n3"), victim.az))
    writer.change_membership(pg, new)
    assert writer.in_membership_change(pg)
    lsn = writer.append_group([PageWrite(PageNo(1), b"a" * 512)])
    # The victim and three others acknowledge: a quorum of the old set, not of the new.
    acking = {victim.segment, *old.segment_ids[1:4]}
    for batch in writer.flush():
        other_pg = batch.segment not in old.segment_ids and batch.segment in segs
        if batch.segment in acking or other_pg:
            ack = deliver(segs, batch)
            writer.on_ack(ack.segment, ack.scl, ack.epoch)
    assert writer.vdl < lsn, "no quorum in the new set"
    assert writer.abort_membership(pg, old), "with the old set alone, four acks are durable"
    assert writer.vdl >= lsn and not writer.in_membership_change(pg)
    assert writer.layouts[pg] == old and new_id not in writer.segment_pg
    assert not writer.on_ack(new_id, writer.allocated, Epoch(1))  # counts for nothing
    writer.change_membership(pg, new)  # may be tried again
    assert writer.in_membership_change(pg)


def test_a_truncation_no_later_recovery_knew_is_superseded_everywhere() -> None:
    """A recovery that died after its truncation reached one segment of each PG: the next
    recovery, sealed without those, never knew it and honours only what it knew; the one
    after that knows both, keeps the newer's view, and the stale segments drop the old
    truncation (sim scenario 'unknown-truncation')."""
    from borealis.storage.messages import Truncation
    from borealis.types import LSN

    segs = segments()
    rec1 = recover(segs, 1)
    assert rec1.result is not None
    t1 = rec1.result.truncation
    assert t1.honoured == ()
    lonely = {sid for sid in segs if sid.endswith("s0")}
    t2 = Truncation(Epoch(2), LSN(t1.end + 5), LSN(t1.end + 1005), (t1.plain(),))
    for sid in lonely:
        segs[sid].on_seal(Seal(sid, Epoch(2), "w2"))
        segs[sid].on_write(WriteBatch(sid, Epoch(2), "w2", LSN(0), LSN(0), (), t2))
        assert segs[sid].truncations == [t1, t2]

    rec3 = recover(segs, 3, down=lonely)
    assert rec3.result is not None
    t3 = rec3.result.truncation
    assert t3.honoured == (t1,)  # t2 never reached a sealed segment

    rec4 = recover(segs, 4)
    assert rec4.phase == Phase.DONE and rec4.result is not None
    t4 = rec4.result.truncation
    assert t4.honoured == (t1, t3)
    # Done at a write quorum of every PG; the stale segments were sealed (first in line)
    # and adopted t3, which superseded t2 there.
    reached = {sid for sid, seg in segs.items() if seg.truncations[-1:] == [t4]}
    assert lonely <= reached and len(reached) >= 4 * len(LAYOUTS)
    for sid in reached:
        assert segs[sid].truncations == [t1, t3, t4], sid
        assert segs[sid].truncations[-1].honoured == (t1, t3)
        assert segs[sid].truncation_superseded(t2) and not segs[sid].truncation_superseded(t1)


def test_truncations_from_before_honoured_lists_are_all_adopted_and_honoured() -> None:
    """Segments whose logs predate honoured lists (three-field truncations) hold different
    ones: recovery adopts every one on every sealed segment, as it used to, and does not
    loop, and its own truncation honours them all."""
    from borealis.storage.messages import Truncation

    segs = segments()
    old1, old2 = Truncation.from_wire([1, 0, 1000]), Truncation.from_wire([2, 0, 1500])
    ids = sorted(segs)
    for k, sid in enumerate(ids):
        entries = [("epoch", 2, "w2"), ("trunc", old1.to_wire())]
        if k % 2:
            entries.append(("trunc", old2.to_wire()))
        for entry in entries:
            segs[sid].apply_entry(entry)
    rec = recover(segs, 3)
    assert rec.phase == Phase.DONE and rec.result is not None
    t3 = rec.result.truncation
    assert t3.honoured == (old1, old2)
    reached = [sid for sid in ids if segs[sid].truncations[-1:] == [t3]]
    assert len(reached) >= 4 * len(LAYOUTS)
    for sid in reached:
        assert segs[sid].truncations == [old1, old2, t3], sid
