"""Durability tracking: SCL acknowledgements -> PGCL -> VCL -> VDL.

Aurora SIGMOD 2017 §4.1: a PG is complete to the highest LSN that a write quorum of its
segments acknowledge (PGCL); the volume is complete to the lowest PGCL (VCL), because the
writer advances every PG's range with each flush, so a PG that received no record is still
told that it is complete to the flush point; VDL is the highest commit point at or below
VCL. A commit is acknowledged only when VDL covers it.

During a membership change a PG has two segment sets and needs a write quorum in each.
"""

from __future__ import annotations

import bisect

from borealis.types import LSN, WRITE_QUORUM, PgIndex, SegmentId


def quorum_lsn(acked: list[int], quorum: int = WRITE_QUORUM) -> LSN:
    """The highest LSN that at least ``quorum`` of the given SCLs reach."""
    if len(acked) < quorum:
        return LSN(0)
    return LSN(sorted(acked, reverse=True)[quorum - 1])


class DurabilityTracker:
    """Pure bookkeeping; the writer feeds it acknowledgements and commit points."""

    def __init__(self, start: LSN = LSN(0)) -> None:
        self.quorum_sets: dict[PgIndex, list[tuple[SegmentId, ...]]] = {}
        self.acked: dict[SegmentId, LSN] = {}
        self.pgcl: dict[PgIndex, LSN] = {}
        self.vcl: LSN = start
        self.vdl: LSN = start
        self._cpls: list[int] = []

    def set_pg(self, pg: PgIndex, quorum_sets: list[tuple[SegmentId, ...]]) -> bool:
        """Declare the segment set(s) of a PG (two during a membership change). Returns True
        if VDL advanced: dropping a lagging old set can complete a PG at once, and no
        acknowledgement may arrive later to notice it."""
        assert quorum_sets
        for segments in quorum_sets:
            assert len(segments) == 6
        self.quorum_sets[pg] = quorum_sets
        for segments in quorum_sets:
            for s in segments:
                self.acked.setdefault(s, LSN(0))
        old = self.pgcl.get(pg)
        self._recompute_pg(pg)
        if old is None or self.pgcl[pg] == old:
            return False
        return self._recompute_volume()

    def start_at(self, lsn: LSN) -> None:
        """After recovery: everything up to ``lsn`` is known durable on every PG."""
        assert lsn >= self.vdl
        self.vcl = self.vdl = lsn
        for pg in self.quorum_sets:
            self.pgcl[pg] = max(self.pgcl.get(pg, LSN(0)), lsn)

    def add_cpl(self, lsn: LSN) -> None:
        assert lsn > self.vdl
        assert not self._cpls or lsn > self._cpls[-1], "CPLs are added in LSN order"
        self._cpls.append(lsn)

    def on_ack(self, pg: PgIndex, segment: SegmentId, scl: LSN) -> bool:
        """Record an acknowledged SCL. Returns True if VDL advanced."""
        if scl <= self.acked.get(segment, LSN(0)):
            return False
        self.acked[segment] = scl
        if pg not in self.quorum_sets:
            return False
        old = self.pgcl.get(pg, LSN(0))
        self._recompute_pg(pg)
        if self.pgcl[pg] == old:
            return False
        return self._recompute_volume()

    def _recompute_pg(self, pg: PgIndex) -> None:
        values = [
            quorum_lsn([self.acked.get(s, LSN(0)) for s in segments])
            for segments in self.quorum_sets[pg]
        ]
        new = max(min(values), self.pgcl.get(pg, LSN(0)))
        self.pgcl[pg] = new

    def _recompute_volume(self) -> bool:
        if not self.pgcl:
            return False
        vcl = min(self.pgcl.values())
        if vcl <= self.vcl:
            return False
        self.vcl = LSN(vcl)
        i = bisect.bisect_right(self._cpls, vcl)
        if i == 0:
            return False
        new_vdl = LSN(self._cpls[i - 1])
        del self._cpls[:i]
        assert new_vdl > self.vdl, "VDL never goes backwards"
        self.vdl = new_vdl
        return True

    def all_scl(self, pg: PgIndex) -> LSN:
        """The lowest SCL acknowledged by every segment of the PG."""
        return LSN(min(self.acked.get(s, 0) for ss in self.quorum_sets[pg] for s in ss))
