"""The writer's side of the volume protocol, as a pure state machine.

It allocates LSNs (never more than LAL above VDL: back-pressure), builds redo records with
their back-links, groups them per PG into write batches that cover ``(prev_through,
through]`` of every PG at each flush, tracks durability from acknowledgements, and keeps
the records a segment may still need resent until a write quorum of its PG has them.
The asyncio adapter (``borealis.volume.client``) and the simulator both drive this class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from borealis import delta
from borealis.errors import FencedError
from borealis.storage.messages import Truncation, WriteBatch
from borealis.storage.record import FLAG_CPL, RecordKind, RedoRecord
from borealis.types import LSN, Epoch, PageNo, PgIndex, SegmentId
from borealis.volume.durability import DurabilityTracker
from borealis.volume.geometry import Geometry, PgLayout

log = logging.getLogger(__name__)

LAL_DEFAULT = 100_000
"""LSN allocation limit: the writer never allocates more than this above VDL."""

_IMAGE_TAG = int(delta.DeltaFormat.IMAGE)
"""The first byte of a ``delta.encode`` payload that is a full image."""

GROUP_RECORDS_MAX = 10_000
"""Records in one commit group; a bigger transaction is split by the caller."""


@dataclass(frozen=True, slots=True)
class PageWrite:
    """One page change in a commit group: the new image, and the image it replaces when the
    caller has it (the writer then sends a delta against that version)."""

    page: PageNo
    new: bytes
    base: bytes | None = None
    base_version: LSN | None = None
    """The version ``base`` is, when the caller knows it: the writer then sends a delta
    only if that is the version it last wrote or read of the page (otherwise an image), so
    a delta is never made against other bytes than the ones storage will apply it to."""
    delta: bytes | None = None
    """``delta.encode(base, new)``, when the caller made it: a database instance makes it
    on the committing session's thread, so that a commit of thousands of pages does not
    hold the event loop (and every other session) for the encoding (~20 us a page)."""


class WriterCore:
    def __init__(
        self,
        geometry: Geometry,
        layouts: dict[PgIndex, PgLayout],
        *,
        writer_id: str,
        epoch: Epoch,
        start: LSN,
        truncation: Truncation | None = None,
        lal: int = LAL_DEFAULT,
    ) -> None:
        assert lal > 0
        self.geometry = geometry
        self.layouts = dict(layouts)
        self.writer_id = writer_id
        self.epoch = epoch
        self.lal = lal
        self.truncation = truncation
        self.fenced = False
        self.next_lsn = LSN(start + 1)
        self.tracker = DurabilityTracker(start)
        self.segment_pg: dict[SegmentId, PgIndex] = {}
        self.through_sent: dict[PgIndex, LSN] = {}
        self.pending: dict[PgIndex, list[RedoRecord]] = {}
        self.unacked: dict[PgIndex, list[RedoRecord]] = {}
        self.pg_last_lsn: dict[PgIndex, LSN] = {}
        self.page_versions: dict[int, LSN] = {}
        self.min_read_point = start
        self.vdl_sent = start
        self.last_group: tuple[RedoRecord, ...] = ()
        """The records of the last ``append_group``, in LSN order (the redo stream)."""
        for pg, layout in self.layouts.items():
            self._add_pg(pg, layout, start)

    # --- layout ---------------------------------------------------------------------------

    def _add_pg(self, pg: PgIndex, layout: PgLayout, through: LSN) -> None:
        self.layouts[pg] = layout
        self.tracker.set_pg(pg, [layout.segment_ids])
        for s in layout.segment_ids:
            self.segment_pg[s] = pg
        self.through_sent.setdefault(pg, through)
        self.pending.setdefault(pg, [])
        self.unacked.setdefault(pg, [])

    def pgs_needed(self, pages: Sequence[int]) -> list[PgIndex]:
        """PGs that ``pages`` need and that do not exist yet (growth)."""
        missing = {self.geometry.pg_of(p) for p in pages} - set(self.layouts)
        if not missing:
            return []
        top = max(missing)
        return [PgIndex(pg) for pg in range(top + 1) if pg not in self.layouts]

    def add_pg(self, layout: PgLayout) -> None:
        """A new PG (volume growth). Its segments are complete through the current point:
        no record of it exists yet."""
        assert layout.pg not in self.layouts
        self._add_pg(layout.pg, layout, LSN(0))

    def change_membership(self, pg: PgIndex, new: PgLayout) -> None:
        """Start a membership change: quorums in both the old and the new set."""
        old = self.layouts[pg]
        self.tracker.set_pg(pg, [old.segment_ids, new.segment_ids])
        self.layouts[pg] = new
        for s in new.segment_ids:
            self.segment_pg[s] = pg

    def finish_membership(self, pg: PgIndex) -> bool:
        """The new segment caught up: only the new set counts, the replaced one is gone.
        Returns True when VDL advanced (the old set was the one holding it back)."""
        current = self.layouts[pg].segment_ids
        old_sets = self.tracker.quorum_sets[pg]
        advanced = self.tracker.set_pg(pg, [current])
        for segments in old_sets:
            for s in segments:
                if s not in current:
                    self.segment_pg.pop(s, None)
                    self.tracker.acked.pop(s, None)
        return advanced

    def abort_membership(self, pg: PgIndex, old: PgLayout) -> bool:
        """The new segment did not catch up: back to the old set alone. Safe: every commit
        acknowledged during the change had a write quorum in the old set too. Returns True
        when VDL advanced (the new set was the one holding it back)."""
        dropped = set(self.layouts[pg].segment_ids) - set(old.segment_ids)
        self.layouts[pg] = old
        advanced = self.tracker.set_pg(pg, [old.segment_ids])
        for s in dropped:
            self.segment_pg.pop(s, None)
            self.tracker.acked.pop(s, None)
        return advanced

    def in_membership_change(self, pg: PgIndex) -> bool:
        return len(self.tracker.quorum_sets[pg]) > 1

    # --- allocation -----------------------------------------------------------------------

    @property
    def vdl(self) -> LSN:
        return self.tracker.vdl

    @property
    def vcl(self) -> LSN:
        return self.tracker.vcl

    @property
    def allocated(self) -> LSN:
        return LSN(self.next_lsn - 1)

    def room(self) -> int:
        """How many LSNs may be allocated now (LAL back-pressure)."""
        return max(0, self.tracker.vdl + self.lal - self.allocated)

    def append_group(self, writes: Sequence[PageWrite]) -> LSN:
        """Allocate LSNs for one committed transaction; returns its commit LSN (the CPL)."""
        if self.fenced:
            raise FencedError(f"writer {self.writer_id} at epoch {self.epoch} was fenced")
        assert writes, "a commit group has at least one page"
        assert len(writes) <= GROUP_RECORDS_MAX
        assert len(writes) <= self.room(), "caller must wait for room() (LAL)"
        pg_of = self.geometry.pg_of
        pgs = [pg_of(w.page) for w in writes]
        pending = self.pending
        assert all(pg in pending for pg in pgs), "caller must add PGs first (pgs_needed)"
        page_versions = self.page_versions
        pg_last_lsn = self.pg_last_lsn
        epoch = self.epoch
        make = RedoRecord.make
        last = len(writes) - 1
        lsn = self.next_lsn
        group: list[RedoRecord] = []
        for i, w in enumerate(writes):
            pg = pgs[i]
            base_version = page_versions.get(w.page, 0)
            kind = RecordKind.IMAGE
            if w.base is not None and base_version and (
                w.base_version is None or w.base_version == base_version
            ):
                payload = w.delta if w.delta is not None else delta.encode(w.base, w.new)
                if payload[0] != _IMAGE_TAG:
                    kind = RecordKind.DELTA
            else:
                payload = delta.encode(None, w.new)
            record = make(
                lsn, w.page, payload, kind=kind,
                prev_page_lsn=base_version if kind == RecordKind.DELTA else 0,
                prev_pg_lsn=pg_last_lsn.get(pg, 0),
                epoch=epoch, flags=FLAG_CPL if i == last else 0,
            )
            pending[pg].append(record)
            group.append(record)
            pg_last_lsn[pg] = LSN(lsn)
            page_versions[w.page] = LSN(lsn)
            lsn = LSN(lsn + 1)
        commit = LSN(lsn - 1)
        self.next_lsn = lsn
        self.tracker.add_cpl(commit)
        self.last_group = tuple(group)
        return commit

    def note_page_version(self, page: int, version: LSN) -> None:
        """A read told us the page's current version: later writes can send deltas."""
        if version > self.page_versions.get(page, LSN(0)):
            self.page_versions[page] = version

    # --- flushing -------------------------------------------------------------------------

    def flush(self) -> list[WriteBatch]:
        """Batches for every segment of every PG covering everything allocated so far.

        When nothing new was allocated but VDL moved since the last flush, the batches carry
        only the hints (an empty range): segments materialise records only up to the VDL they
        were told, so an idle writer must still tell them its last one."""
        through = self.allocated
        batches: list[WriteBatch] = []
        vdl_news = self.tracker.vdl > self.vdl_sent
        self.vdl_sent = self.tracker.vdl
        for pg, layout in self.layouts.items():
            prev = self.through_sent[pg]
            if through <= prev and not self.pending[pg] and not vdl_news:
                continue
            records = tuple(self.pending[pg])
            self.unacked[pg].extend(records)
            self.pending[pg] = []
            self.through_sent[pg] = through
            all_scl = self.tracker.all_scl(pg)
            for s in self._targets(pg, layout):
                batches.append(WriteBatch(
                    s, self.epoch, self.writer_id, prev, through, records, self.truncation,
                    self.min_read_point, all_scl, self.tracker.vdl,
                ))
        return batches

    def _targets(self, pg: PgIndex, layout: PgLayout) -> list[SegmentId]:
        targets: list[SegmentId] = []
        for segments in self.tracker.quorum_sets[pg]:
            targets.extend(s for s in segments if s not in targets)
        return targets

    def resend(self, segment: SegmentId) -> WriteBatch | None:
        """A batch with what ``segment`` has not acknowledged, as far as we still hold it.
        Below what we hold, a write quorum has it and gossip fills the segment."""
        pg = self.segment_pg[segment]
        acked = self.tracker.acked.get(segment, LSN(0))
        through = self.through_sent[pg]
        if acked >= through:
            return None
        start = max(acked, self.tracker.pgcl.get(pg, LSN(0)))
        records = tuple(r for r in self.unacked[pg] if r.lsn > start)
        return WriteBatch(
            segment, self.epoch, self.writer_id, LSN(start), through, records,
            self.truncation, self.min_read_point, self.tracker.all_scl(pg), self.tracker.vdl,
        )

    def lagging_segments(self) -> list[SegmentId]:
        return [
            s for s, pg in self.segment_pg.items()
            if self.tracker.acked.get(s, LSN(0)) < self.through_sent[pg]
        ]

    def on_ack(self, segment: SegmentId, scl: LSN, epoch: Epoch) -> bool:
        """Returns True when VDL advanced."""
        if epoch > self.epoch:
            self.on_stale_epoch(epoch)
        pg = self.segment_pg.get(segment)
        if pg is None or self.fenced:
            return False
        advanced = self.tracker.on_ack(pg, segment, scl)
        floor = self.tracker.pgcl.get(pg, LSN(0))
        unacked = self.unacked[pg]
        if unacked and unacked[0].lsn <= floor:
            self.unacked[pg] = [r for r in unacked if r.lsn > floor]
        return advanced

    def on_stale_epoch(self, current_epoch: int) -> None:
        """A segment knows a newer epoch: a new writer took over. Never acknowledge again."""
        if current_epoch > self.epoch and not self.fenced:
            log.warning("writer fenced writer=%s epoch=%d newer=%d",
                        self.writer_id, self.epoch, current_epoch)
            self.fenced = True
