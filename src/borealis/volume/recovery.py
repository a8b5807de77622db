"""Volume recovery without redo replay, as a pure state machine.

A new writer (after a crash, or a reader being promoted) must find the point up to which
the volume is consistent and make it durable before serving (Aurora SIGMOD 2017 §4.3):

1. **Seal**: raise the volume epoch on a write quorum of every PG. Sealed segments refuse
   the old writer, so from here on it cannot make anything durable. Their replies carry
   their SCLs (a write quorum contains a read quorum) and the truncations they know.
   **Adopt**: a truncation written by an earlier recovery, even one that never finished,
   may already have voided records on some segments; every sealed segment takes the
   newest truncation any of them knows, with every older one it honoured, before its SCL
   counts (sim seed 91 of 'random'). An older truncation the newest does not honour is
   superseded (``Truncation.supersedes``): a segment drops it and refetches its range.
2. **Compute**: a PG is complete to the highest SCL among its sealed segments (that
   segment holds every record of the PG up to it); VCL is the lowest of those over all
   PGs; ask that segment of each PG for its highest commit point at or below VCL; VDL is
   the highest of them.
3. **Repair and truncate**: re-send the records of each PG between what a write quorum
   surely has and VDL to all six segments, with the truncation ``(VDL, VDL + LAL]`` at the
   new epoch: it voids whatever the old writer left above VDL, and the new writer starts
   above it so that no LSN is ever reused.
4. **Done** when a write quorum of every PG acknowledges an SCL at or beyond ``VDL + LAL``.

The work is proportional to the records in flight at the crash (at most LAL), never to
the size of the volume.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from borealis.storage.messages import (
    QueryCpl,
    ReadRecords,
    Seal,
    SegmentState,
    Truncation,
    WriteAck,
    WriteBatch,
)
from borealis.storage.record import RedoRecord
from borealis.types import LSN, WRITE_QUORUM, Epoch, PgIndex, SegmentId
from borealis.volume.durability import quorum_lsn
from borealis.volume.geometry import PgLayout


class Phase(enum.Enum):
    SEAL = "seal"
    ADOPT = "adopt"
    CPL = "cpl"
    REPAIR = "repair"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    epoch: Epoch
    vdl: LSN
    start: LSN
    truncation: Truncation
    acked: dict[SegmentId, LSN]


@dataclass
class _PgState:
    layout: PgLayout
    sealed: dict[SegmentId, SegmentState] = field(default_factory=dict)
    source: SegmentId | None = None
    complete: LSN = LSN(0)
    quorum_has: LSN = LSN(0)
    cpl: LSN | None = None
    repaired_to: LSN = LSN(0)
    acked: dict[SegmentId, LSN] = field(default_factory=dict)


class Recovery:
    """Drive with ``start()`` then the ``on_*`` handlers; each returns messages to send."""

    def __init__(
        self, layouts: dict[PgIndex, PgLayout], *, writer_id: str, epoch: Epoch, lal: int
    ) -> None:
        assert layouts, "a volume has at least one PG"
        assert epoch > 0
        self.writer_id = writer_id
        self.epoch = epoch
        self.lal = lal
        self.phase = Phase.SEAL
        self.pgs = {pg: _PgState(layout) for pg, layout in layouts.items()}
        self.segment_pg = {
            s: pg for pg, layout in layouts.items() for s in layout.segment_ids
        }
        self.failure = ""
        self.newer_epoch = Epoch(0)
        self.vcl = LSN(0)
        self.vdl = LSN(0)
        self.truncation: Truncation | None = None
        self.result: RecoveryResult | None = None
        self.known_truncations: set[Truncation] = set()
        self.newest_truncation: Truncation | None = None
        """The newest truncation a sealed segment knows: with the older ones it honoured,
        the truncations in force for this recovery (those its own truncation honours)."""

    def start(self) -> list[Any]:
        return [Seal(s, self.epoch, self.writer_id) for s in self.segment_pg]

    def on_refused(self, segment: SegmentId, current_epoch: int) -> list[Any]:
        """A segment refused the seal: another writer holds this epoch or a newer one."""
        if self.phase in (Phase.DONE, Phase.FAILED):
            return []
        self.phase = Phase.FAILED
        self.newer_epoch = Epoch(max(self.newer_epoch, current_epoch))
        self.failure = (
            f"segment {segment} is at epoch {current_epoch}: epoch {self.epoch} is taken"
        )
        return []

    def on_sealed(self, state: SegmentState) -> list[Any]:
        pg = self.segment_pg.get(state.segment)
        if pg is None or self.phase not in (Phase.SEAL, Phase.ADOPT):
            return []
        assert state.epoch == self.epoch
        if self.phase == Phase.ADOPT:
            # A fresh state, asked for after an adoption batch was acknowledged.
            if state.segment in self.pgs[pg].sealed:
                self.pgs[pg].sealed[state.segment] = state
            if self._lacking():
                return []
            return self._compute()
        self.pgs[pg].sealed[state.segment] = state
        if any(len(p.sealed) < WRITE_QUORUM for p in self.pgs.values()):
            return []
        # Every PG has a sealed write quorum: the old writer can no longer commit.
        # A truncation an earlier recovery wrote (even one that never finished) voids
        # records that it may already have dropped somewhere: every sealed segment adopts
        # every such truncation before its SCL counts, or this recovery could declare
        # committed a record that other segments have voided.
        self.known_truncations = {
            t for p in self.pgs.values() for st in p.sealed.values() for t in st.truncations
        }
        # Each segment lists its truncations in force, the newest last with what it
        # honoured; the newest of all decides (Truncation.supersedes).
        newest = [st.truncations[-1] for p in self.pgs.values() for st in p.sealed.values()
                  if st.truncations]
        self.newest_truncation = max(newest, key=lambda t: t.epoch, default=None)
        lacking = self._lacking()
        if lacking:
            self.phase = Phase.ADOPT
            return [m for segment in lacking for m in self._adopt(segment)]
        return self._compute()

    def in_force(self) -> tuple[Truncation, ...]:
        """The truncations this recovery holds in force (and its own will honour): the
        newest and those it honours; every one known if the newest predates honoured
        lists (as recoveries then did)."""
        newest = self.newest_truncation
        if newest is None:
            return ()
        if newest.honoured is None:
            # As they are (without lists): adopted one by one, none supersedes another.
            return tuple(sorted(self.known_truncations, key=lambda t: t.epoch))
        return newest.in_force()

    def _missing(self, state: SegmentState) -> list[Truncation]:
        """What the segment must adopt: the newest truncation (which brings every one it
        honours and drops every one it supersedes), unless it holds exactly those."""
        newest = self.newest_truncation
        in_force = self.in_force()
        if newest is None or set(state.truncations) == set(in_force):
            return []
        if newest.honoured is None:
            return [t for t in in_force if t not in state.truncations]
        return [newest]

    def _lacking(self) -> list[SegmentId]:
        return [
            st.segment for p in self.pgs.values() for st in p.sealed.values()
            if self._missing(st)
        ]

    def _adopt(self, segment: SegmentId) -> list[Any]:
        pg = self.segment_pg[segment]
        missing = self._missing(self.pgs[pg].sealed[segment])
        return [self._adopt_batch(segment, t) for t in missing]

    def _adopt_batch(self, segment: SegmentId, t: Truncation) -> WriteBatch:
        return WriteBatch(segment, self.epoch, self.writer_id, LSN(0), LSN(0), (), t)

    def _compute(self) -> list[Any]:
        for p in self.pgs.values():
            best = max(p.sealed.values(), key=lambda st: st.scl)
            p.source = best.segment
            p.complete = best.scl
            p.quorum_has = quorum_lsn([st.scl for st in p.sealed.values()])
            assert p.quorum_has <= p.complete
        self.vcl = LSN(min(p.complete for p in self.pgs.values()))
        self.phase = Phase.CPL
        out: list[Any] = []
        for p in self.pgs.values():
            assert p.source is not None
            out.append(QueryCpl(p.source, self.vcl))
        return out

    def on_cpl(self, segment: SegmentId, cpl: LSN) -> list[Any]:
        pg = self.segment_pg.get(segment)
        if pg is None or self.phase != Phase.CPL or self.pgs[pg].source != segment:
            return []
        assert cpl <= self.vcl
        self.pgs[pg].cpl = cpl
        if any(p.cpl is None for p in self.pgs.values()):
            return []
        self.vdl = LSN(max(p.cpl or 0 for p in self.pgs.values()))
        self.truncation = Truncation(self.epoch, self.vdl, LSN(self.vdl + self.lal),
                                     self.in_force())
        self.phase = Phase.REPAIR
        out: list[Any] = []
        for pg, p in self.pgs.items():
            p.repaired_to = min(p.quorum_has, self.vdl)
            out.extend(self._next_repair(pg))
        return out

    def _next_repair(self, pg: PgIndex) -> list[Any]:
        p = self.pgs[pg]
        assert p.source is not None
        if p.repaired_to < self.vdl:
            return [ReadRecords(p.source, p.repaired_to, self.vdl)]
        # Nothing left to copy: send the truncation alone.
        return [self._batch(s, LSN(0), LSN(0), ()) for s in p.layout.segment_ids]

    def _batch(
        self, segment: SegmentId, prev: LSN, through: LSN, records: tuple[RedoRecord, ...]
    ) -> WriteBatch:
        return WriteBatch(segment, self.epoch, self.writer_id, prev, through, records,
                          self.truncation)

    def on_records(
        self, segment: SegmentId, records: tuple[RedoRecord, ...], covered_to: LSN
    ) -> list[Any]:
        pg = self.segment_pg.get(segment)
        if pg is None or self.phase != Phase.REPAIR:
            return []
        p = self.pgs[pg]
        if covered_to <= p.repaired_to:
            self.phase = Phase.FAILED
            self.failure = f"segment {segment} could not supply records above {p.repaired_to}"
            return []
        prev, p.repaired_to = p.repaired_to, LSN(min(covered_to, self.vdl))
        records = tuple(r for r in records if r.lsn <= p.repaired_to)
        out: list[Any] = [
            self._batch(s, prev, p.repaired_to, records) for s in p.layout.segment_ids
        ]
        out.extend(self._next_repair(pg) if p.repaired_to < self.vdl else [
            self._batch(s, LSN(0), LSN(0), ()) for s in p.layout.segment_ids
        ])
        return out

    def on_ack(self, ack: WriteAck) -> list[Any]:
        if self.phase == Phase.ADOPT:
            return self._on_adopted(ack)
        pg = self.segment_pg.get(ack.segment)
        if pg is None or self.phase != Phase.REPAIR or self.truncation is None:
            return []
        p = self.pgs[pg]
        p.acked[ack.segment] = max(p.acked.get(ack.segment, LSN(0)), ack.scl)
        target = self.truncation.end
        done = all(
            sum(1 for v in q.acked.values() if v >= target) >= WRITE_QUORUM
            for q in self.pgs.values()
        )
        if done:
            self.phase = Phase.DONE
            acked = {s: v for q in self.pgs.values() for s, v in q.acked.items()}
            self.result = RecoveryResult(self.epoch, self.vdl, target, self.truncation, acked)
        return []

    def _on_adopted(self, ack: WriteAck) -> list[Any]:
        """A sealed segment applied a truncation it lacked: ask for its state again (a seal
        at the same epoch by the same writer is idempotent); its SCL counts once its state
        shows every known truncation."""
        pg = self.segment_pg.get(ack.segment)
        if pg is None or ack.segment not in self.pgs[pg].sealed:
            return []
        return [Seal(ack.segment, self.epoch, self.writer_id)]

    def pending_for(self, segment: SegmentId) -> list[Any]:
        """What to send again to a segment that did not answer (a retry timer fired)."""
        pg = self.segment_pg.get(segment)
        if pg is None:
            return []
        p = self.pgs[pg]
        if self.phase == Phase.SEAL and segment not in p.sealed:
            return [Seal(segment, self.epoch, self.writer_id)]
        if self.phase == Phase.ADOPT and segment in self._lacking():
            return [*self._adopt(segment), Seal(segment, self.epoch, self.writer_id)]
        if self.phase == Phase.CPL and p.cpl is None and p.source == segment:
            return [QueryCpl(segment, self.vcl)]
        # Records it misses below VDL reach it by gossip from the segments repaired.
        if (self.phase == Phase.REPAIR and self.truncation is not None
                and p.acked.get(segment, LSN(0)) < self.truncation.end):
            return [self._batch(segment, LSN(0), LSN(0), ())]
        return []
