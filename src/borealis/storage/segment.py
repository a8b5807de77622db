"""The segment: one of the six replicas of a protection group, as a pure state machine.

A segment's durable state is a fold over the entries it logs (``apply_entry``): epochs,
truncations, covered ranges with their records, and membership. Handlers validate a message,
turn it into entries, apply them and return the reply; the host (a storage node, or the
simulator) appends the entries to its redo log and sends the reply only once they are
synced. That is why an acknowledged SCL is always durable. Nothing here reads a clock,
sleeps or does I/O beyond the two backends it is given (a redo log is the host's; the page
store is passed in and is synchronous).

Background work is driven by ``tick(now_s)``: gossip for holes, coalescing of records into
page versions, garbage collection below the minimum read point, and scrubbing.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from borealis import delta
from borealis.errors import (
    BadRequestError,
    CorruptionError,
    NotCaughtUpError,
    PageGarbageCollectedError,
    ProtocolError,
    StaleEpochError,
)
from borealis.storage.coverage import Coverage
from borealis.storage.messages import (
    BATCH_RECORDS_MAX,
    GetPage,
    GossipPull,
    GossipPush,
    PageVersion,
    ReadRecords,
    Seal,
    SegmentState,
    SetMembership,
    Truncation,
    WriteAck,
    WriteBatch,
)
from borealis.storage.pagestore import PageStore
from borealis.storage.record import (
    FLAG_CPL,
    RecordKind,
    RedoRecord,
    decode_block,
    encode_block,
)
from borealis.types import LSN, Epoch, MembershipEpoch, PageNo, SegmentId

log = logging.getLogger(__name__)

COALESCE_BATCH_MAX = 512
"""Records materialised per tick, so that coalescing never starves foreground requests."""

SCRUB_BATCH_MAX = 256
"""Records and page versions verified per scrub step."""

GOSSIP_RECORDS_MAX = 4096
"""Records per gossip reply; the puller asks again for the rest."""

CHECKPOINT_RECORDS_PER_ENTRY = 4096
"""Retained records per ``held`` entry of a checkpoint (about 600 KiB at 150 bytes each)."""

Entry = tuple[Any, ...]


class ParentVolume(Protocol):
    """Where a copy-on-write clone's segment looks up pages it never wrote: the parent
    volume's version of the page at or below the branch LSN (clones are a later issue;
    the lookup path is here so that they need no change to the segment)."""

    branch_lsn: LSN

    def version_at(self, page: int, lsn: int) -> tuple[int, bytes] | None: ...


@dataclass(frozen=True, slots=True)
class SendGossip:
    """An effect: send this pull to a peer segment."""

    message: GossipPull


@dataclass(frozen=True, slots=True)
class RepairNeeded:
    """An effect: a page version was corrupt and cannot be rebuilt locally."""

    page: PageNo
    version: LSN


@dataclass(slots=True)
class SegmentStats:
    records_received: int = 0
    records_coalesced: int = 0
    versions_gced: int = 0
    gossip_pulls: int = 0
    gossip_records_in: int = 0
    corrupt_found: int = 0
    snapshots_installed: int = 0
    scrubbed: int = 0
    rebuilds_asked: int = 0


@dataclass
class Segment:
    """One replica of one PG: feed it logged entries (replay) or messages (live)."""

    segment_id: SegmentId
    store: PageStore
    first_page: PageNo
    pg_pages: int
    peers: tuple[SegmentId, ...] = ()
    membership_epoch: MembershipEpoch = MembershipEpoch(0)
    epoch: Epoch = Epoch(0)
    sealed_by: str = ""
    truncations: list[Truncation] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    # Records not yet dropped: by LSN, and per page in LSN order.
    records: dict[int, RedoRecord] = field(default_factory=dict)
    page_lsns: dict[int, list[int]] = field(default_factory=dict)
    # Records at or below this were dropped after being materialised.
    records_floor: LSN = LSN(0)
    # No page version older than this is held (a rebuilt segment starts at its snapshot).
    history_floor: LSN = LSN(0)
    coalesced: LSN = LSN(0)
    cpls: list[int] = field(default_factory=list)
    known_through: LSN = LSN(0)
    min_read_point: LSN = LSN(0)
    all_scl: LSN = LSN(0)
    known_vdl: LSN = LSN(0)
    gossip_due_s: float = 0.0
    gossip_round: int = 0
    scrub_cursor: int = 0
    stats: SegmentStats = field(default_factory=SegmentStats)
    unlogged: list[Entry] = field(default_factory=list)
    parent: ParentVolume | None = None
    # A stored version that reads or coalescing start from is corrupt and no peer could show
    # it: rebuild from a peer's snapshot (not logged: a restart finds the corruption again).
    rebuild_wanted: str = ""

    gossip_interval_s: float = 0.05
    # The keys of ``records``, sorted: coalescing, scrubbing and gossip take slices of it
    # rather than sorting every retained record (measured: with a coalescing backlog of
    # ~27,000 records a segment, the sorts took most of each coalescing pass).
    record_lsns: list[int] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.segment_id)

    @property
    def scl(self) -> LSN:
        return self.coverage.complete_through(0)

    # --- the durable fold ------------------------------------------------------------------

    def apply_entry(self, entry: Entry) -> None:
        """Apply one logged entry: the only way durable state changes."""
        kind = entry[0]
        if kind == "cover":
            _, start, end, block = entry
            self._apply_cover(start, end, _logged_records(block))
        elif kind == "epoch":
            _, epoch, writer = entry
            assert epoch >= self.epoch
            self.epoch, self.sealed_by = Epoch(epoch), writer
        elif kind == "trunc":
            self._apply_truncation(Truncation.from_wire(entry[1]))
        elif kind == "uncover":
            _, start, end = entry
            for lsn in [lsn for lsn in self.records if start < lsn <= end]:
                self._drop_record(lsn)
            self.coverage.remove(start, end)
        elif kind == "member":
            _, mepoch, peers = entry
            if mepoch >= self.membership_epoch:
                self.membership_epoch = MembershipEpoch(mepoch)
                self.peers = tuple(SegmentId(p) for p in peers)
        elif kind == "ckpt":
            self._restore(entry[1])
        elif kind == "held":
            for record in _logged_records(entry[1]):
                self._add_record(record)
        elif kind == "rebase":
            # A snapshot from a peer was installed in the page store at ``base``: everything
            # known locally is replaced by it.
            _, base, cpl = entry
            self.records.clear()
            self.page_lsns.clear()
            self.record_lsns.clear()
            # The snapshot carries the sender's newest commit point at or below its base,
            # which recovery may ask this segment for.
            self.cpls = ([cpl] if cpl else []) + [c for c in self.cpls if c > base]
            self.coverage = Coverage()
            self.coverage.add(0, base)
            # Truncated ranges hold no valid record anywhere: still covered (sim seed 37 of
            # 'random': a rebase wiped that coverage and the SCL went back below the VDL).
            for t in self.truncations:
                self.coverage.add(t.start, t.end)
            self.coalesced = LSN(base)
            self.records_floor = LSN(base)
            self.history_floor = LSN(base)
        else:
            raise CorruptionError(f"segment {self.segment_id}: unknown log entry {kind!r}")

    def _apply_truncation(self, t: Truncation) -> None:
        """The ``trunc`` entry. The newest truncation known decides which are in force
        (``Truncation.supersedes``): one older than it is in force only if it honoured it.

        A newer truncation replaces every one it supersedes: their ranges are uncovered, so
        that gossip fetches again the records they voided (the newer recovery may have
        declared them committed; a peer outside the superseded truncation's few segments
        holds them). Then every truncation it holds in force is applied."""
        newest = self.truncations[-1] if self.truncations else None
        if newest is not None and t == newest:
            return
        if newest is not None and t.epoch < newest.epoch:
            if newest.honoured is not None or t in self.truncations:
                # In force already (honoured), or superseded: nothing to do either way.
                return
            # The newest predates honoured lists: it honours what is known, as then.
            newest = None
            in_force: tuple[Truncation, ...] = (t,)
        else:
            in_force = t.in_force()
        superseded = [old for old in self.truncations if t.supersedes(old)]
        if superseded:
            self.truncations = [old for old in self.truncations if old not in superseded]
            for old in superseded:
                if self.coalesced > old.start:
                    # Never expected: records above a truncation's start are not
                    # materialised before a writer's VDL passes it, and such a writer's
                    # batches carry its own truncation, which is applied first.
                    log.error("segment %s: superseded truncation %s starts below the "
                              "coalesced point %d", self.segment_id, old, self.coalesced)
                    self.want_rebuild(f"superseded truncation {old} below the coalesced point")
                for lsn in [lsn for lsn in self.record_lsns if old.start < lsn <= old.end]:
                    self._drop_record(lsn)
                self.coverage.remove(old.start, old.end)
            log.warning("segment %s: truncation %s supersedes %s: refetching their ranges",
                        self.segment_id, t.to_wire()[:3], [old.to_wire()[:3] for old in superseded])
        for u in in_force:
            self.known_vdl = max(self.known_vdl, u.start)
            if u not in self.truncations:
                self.truncations.append(u)
                for lsn in [lsn for lsn in self.records if u.voids(self.records[lsn])]:
                    self._drop_record(lsn, void=True)
        # The newest keeps its honoured list: it is what later entries are judged by.
        if newest is None or t.epoch >= newest.epoch:
            self.truncations = [u for u in self.truncations if u != t] + [t]
        self.truncations.sort(key=lambda x: x.epoch)
        # No valid record exists in a truncated range: it is covered by definition.
        for u in self.truncations:
            self.coverage.add(u.start, u.end)

    def truncation_superseded(self, t: Truncation) -> bool:
        """Whether ``t`` is out of force here: the newest truncation known supersedes it."""
        return bool(self.truncations) and self.truncations[-1].supersedes(t)

    def checkpoint(self) -> list[Entry]:
        """Entries that rebuild this segment's durable state with no entry logged before
        them: a ``ckpt`` entry with everything but the records, then ``held`` entries with
        the records still retained. Every record at or below ``records_floor`` is in the page
        store: the host syncs the store before it logs these, and once they are synced it
        may drop every entry logged before them (``StorageNode.checkpoint``).

        Replayed after the entries they replace (a crash before the host trimmed, or in the
        middle of logging them), they change nothing: ``ckpt`` sets what those entries had
        already set and keeps the records they added, and ``held`` adds no record twice.

        A retained record whose CRC fails is not copied: its slot is uncovered first (as
        scrubbing would), so that gossip fetches it again."""
        for lsn in [lsn for lsn in self.record_lsns if not self.records[lsn].crc_ok()]:
            if lsn in self.records:
                self._found_corrupt_record(self.records[lsn])
        state = {
            "epoch": int(self.epoch),
            "sealed_by": self.sealed_by,
            "truncations": [t.to_wire() for t in self.truncations],
            "coverage": [[start, end] for start, end in self.coverage.intervals()],
            "membership_epoch": int(self.membership_epoch),
            "peers": [str(peer) for peer in self.peers],
            "cpls": list(self.cpls),
            "records_floor": int(self.records_floor),
            "history_floor": int(self.history_floor),
        }
        entries: list[Entry] = [("ckpt", state)]
        lsns = self.record_lsns
        for i in range(0, len(lsns), CHECKPOINT_RECORDS_PER_ENTRY):
            block = encode_block([self.records[lsn] for lsn in
                                  lsns[i : i + CHECKPOINT_RECORDS_PER_ENTRY]])
            entries.append(("held", block))
        return entries

    def _restore(self, state: dict[str, Any]) -> None:
        """The ``ckpt`` entry: take its state; keep the retained records above its floor."""
        try:
            truncations = sorted((Truncation.from_wire(t) for t in state["truncations"]),
                                 key=lambda t: t.epoch)
            coverage = Coverage()
            for start, end in state["coverage"]:
                coverage.add(int(start), int(end))
            epoch, sealed_by = Epoch(int(state["epoch"])), str(state["sealed_by"])
            membership_epoch = MembershipEpoch(int(state["membership_epoch"]))
            peers = tuple(SegmentId(str(peer)) for peer in state["peers"])
            cpls = sorted(int(lsn) for lsn in state["cpls"])
            records_floor = LSN(int(state["records_floor"]))
            history_floor = LSN(int(state["history_floor"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptionError(f"segment {self.segment_id}: malformed checkpoint: "
                                  f"{exc!r}") from exc
        self.epoch, self.sealed_by = epoch, sealed_by
        self.truncations = truncations
        self.known_vdl = LSN(max(self.known_vdl, *(t.start for t in truncations), 0))
        self.coverage = coverage
        self.membership_epoch, self.peers = membership_epoch, peers
        self.cpls = cpls
        self.history_floor = history_floor
        self.records_floor = records_floor
        self.coalesced = LSN(max(self.coalesced, records_floor))
        # Entries before the checkpoint (when it was not trimmed yet) added these records
        # and dropped the same ones the live segment had; below the floor they are stored.
        k = bisect.bisect_right(self.record_lsns, records_floor)
        for old in self.record_lsns[:k]:
            self._forget_record(old)
        del self.record_lsns[:k]
        # Except a record found corrupt in memory: the checkpoint uncovered its slot.
        for lsn in [lsn for lsn in self.record_lsns if not coverage.covers(lsn - 1, lsn)]:
            self._drop_record(lsn)

    def restarted(self, coalesced_meta: bytes | None) -> None:
        """After the log was replayed: take the coalesced point the page store holds and
        drop the records already materialised (replay keeps everything it reads)."""
        if coalesced_meta is None:
            return
        coalesced = LSN(int(coalesced_meta))
        self.coalesced = max(self.coalesced, coalesced)
        self.known_vdl = max(self.known_vdl, self.coalesced)
        self.coalesced_to(self.coalesced)

    def _apply_cover(self, start: int, end: int, records: Iterable[RedoRecord]) -> None:
        """The ``cover`` entry: ``apply_entry`` decodes its records from the log, a live
        handler passes the records it already decoded and verified (the same values)."""
        for record in records:
            self._add_record(record)
        self.coverage.add(start, end)

    def _add_record(self, record: RedoRecord) -> None:
        lsn = record.lsn
        if lsn <= self.records_floor or lsn in self.records:
            return
        # A truncation voids only records of epochs older than its own; the list is sorted
        # by epoch, so the newest writer's records skip the scan.
        truncations = self.truncations
        if truncations and record.epoch < truncations[-1].epoch and any(
            t.voids(record) for t in truncations
        ):
            return
        self.records[lsn] = record
        lsns = self.record_lsns
        if not lsns or lsns[-1] < lsn:
            lsns.append(lsn)
        else:
            bisect.insort(lsns, lsn)
        bisect.insort(self.page_lsns.setdefault(record.page, []), lsn)
        if record.flags & FLAG_CPL:
            i = bisect.bisect_left(self.cpls, record.lsn)
            if i == len(self.cpls) or self.cpls[i] != record.lsn:
                self.cpls.insert(i, record.lsn)

    def _drop_record(self, lsn: int, *, void: bool = False) -> None:
        """Forget a retained record. Its commit point is kept unless the record is void
        (truncated): recovery asks for commit points long after records are materialised."""
        i = bisect.bisect_left(self.record_lsns, lsn)
        assert self.record_lsns[i] == lsn
        del self.record_lsns[i]
        self._forget_record(lsn, void=void)

    def _forget_record(self, lsn: int, *, void: bool = False) -> None:
        """``_drop_record`` but for ``record_lsns``, which the caller updates."""
        record = self.records.pop(lsn)
        lsns = self.page_lsns[record.page]
        lsns.remove(lsn)
        if not lsns:
            del self.page_lsns[record.page]
        if void and record.is_cpl:
            i = bisect.bisect_left(self.cpls, lsn)
            if i < len(self.cpls) and self.cpls[i] == lsn:
                del self.cpls[i]

    def _apply_all(self, entries: list[Entry]) -> list[Entry]:
        for entry in entries:
            self.apply_entry(entry)
        return entries

    # --- epochs ---------------------------------------------------------------------------

    def _check_epoch(self, epoch: int, what: str) -> None:
        if epoch < self.epoch:
            raise StaleEpochError(
                f"segment {self.segment_id}: {what} from epoch {epoch} < {self.epoch}",
                current_epoch=self.epoch,
            )

    def on_seal(self, msg: Seal) -> tuple[list[Entry], SegmentState]:
        """Raise the epoch (strictly, or idempotently for the same writer) and report state."""
        if msg.epoch < self.epoch or (msg.epoch == self.epoch and msg.writer != self.sealed_by):
            raise StaleEpochError(
                f"segment {self.segment_id}: seal at epoch {msg.epoch} refused "
                f"(at {self.epoch}, sealed by {self.sealed_by!r})",
                current_epoch=self.epoch,
            )
        entries: list[Entry] = []
        if msg.epoch > self.epoch:
            entries = self._apply_all([("epoch", msg.epoch, msg.writer)])
        return entries, self.state()

    def state(self) -> SegmentState:
        return SegmentState(
            self.segment_id, self.epoch, self.scl, self.coverage.high(),
            self.membership_epoch, self.coalesced, tuple(self.truncations),
        )

    # --- writes ---------------------------------------------------------------------------

    def on_write(self, msg: WriteBatch, *, block: bytes | None = None
                 ) -> tuple[list[Entry], WriteAck]:
        """``block``: the record block ``msg.records`` were decoded from, when the host has
        it (a storage node: the bytes it received), logged as it is instead of encoded
        again."""
        self._check_epoch(msg.epoch, "write")
        msg.check_records()
        entries: list[Entry] = []
        if msg.truncation is not None and msg.truncation not in self.truncations:
            # Only records at or below a writer's VDL are materialised, and a recovering
            # writer truncates only above the VDL it recovered, which is at least every VDL
            # reached before: the writer's own truncation below what we materialised is a
            # protocol breach. An older one a recovery adopts may well lie below it: a PG
            # created after that truncation never had it (and no record in its range), and
            # has materialised past it since (bench/engine.py, 1 GB: recovery stuck).
            if (msg.truncation.epoch >= msg.epoch and msg.truncation.start < self.coalesced
                    and not self._void_between(msg.truncation.start, self.coalesced)):
                raise ProtocolError(
                    f"segment {self.segment_id}: truncation {msg.truncation} starts below "
                    f"the materialised point {self.coalesced}"
                )
            entries.append(("trunc", msg.truncation.to_wire()))
        if msg.epoch > self.epoch:
            # The writer's seal did not reach us, but its batches prove it holds the epoch.
            entries.append(("epoch", msg.epoch, msg.writer))
        if msg.through > msg.prev_through and not self.coverage.covers(
            msg.prev_through, msg.through
        ):
            first_page = self.first_page
            end_page = first_page + self.pg_pages
            for record in msg.records:
                if not first_page <= record.page < end_page:
                    self._check_page(record)
                # Before any entry is applied: a handler that raises must change nothing.
                record.verify()
            if block is None:
                block = encode_block(msg.records)
            entries.append(("cover", msg.prev_through, msg.through, block))
            self.stats.records_received += len(msg.records)
        for entry in entries:
            if entry[0] == "cover":
                # The same fold as apply_entry, without decoding the records again.
                self._apply_cover(msg.prev_through, msg.through, msg.records)
            else:
                self.apply_entry(entry)
        self.known_through = max(self.known_through, msg.through)
        self.min_read_point = max(self.min_read_point, msg.min_read_point)
        self.all_scl = max(self.all_scl, msg.all_scl)
        self.known_vdl = max(self.known_vdl, msg.vdl)
        return entries, WriteAck(self.segment_id, self.scl, self.epoch)

    def _void_between(self, lo: LSN, hi: LSN) -> bool:
        """Whether every LSN in ``(lo, hi]`` lies in a truncation we hold, so that nothing
        valid can have been materialised there: a writer of epoch E allocates only above
        its own truncation, so the LSNs of a truncation's range hold only void records.
        (After a recovery that found nothing to keep, coalescing moves over the truncated
        range; a second such recovery truncates from the same VDL again: legitimate.)"""
        reached = lo
        for t in sorted(self.truncations, key=lambda t: t.start):
            if t.start > reached:
                break
            reached = max(reached, t.end)
            if reached >= hi:
                return True
        return reached >= hi

    def _check_page(self, record: RedoRecord) -> None:
        if not self.first_page <= record.page < self.first_page + self.pg_pages:
            raise BadRequestError(
                f"segment {self.segment_id}: page {record.page} is outside this PG "
                f"[{self.first_page}, {self.first_page + self.pg_pages})"
            )

    def on_membership(self, msg: SetMembership) -> list[Entry]:
        if msg.membership_epoch < self.membership_epoch:
            return []
        return self._apply_all(
            [("member", msg.membership_epoch, [str(p) for p in msg.peers])]
        )

    # --- reads ----------------------------------------------------------------------------

    def on_get_page(self, msg: GetPage) -> PageVersion:
        """The page as of ``read_point``: newest materialised version plus newer records."""
        read_point = msg.read_point
        if read_point > self.scl:
            raise NotCaughtUpError(
                f"segment {self.segment_id}: read point {read_point} > SCL {self.scl}"
            )
        # Below the coalesced point (itself never above the minimum read point) only one
        # version per page per pass was kept, and below the history floor nothing.
        floor = max(self.history_floor, self.coalesced)
        if read_point < floor:
            raise PageGarbageCollectedError(
                f"segment {self.segment_id}: read point {read_point} is below what it keeps "
                f"({floor}; minimum read point {self.min_read_point})"
            )
        self._check_page_no(msg.page)
        return self.materialise(msg.page, read_point)

    def _check_page_no(self, page: int) -> None:
        if not self.first_page <= page < self.first_page + self.pg_pages:
            raise BadRequestError(f"segment {self.segment_id}: page {page} is not in this PG")

    def _base(self, page: int, lsn: int) -> tuple[int, bytes] | None:
        """The newest materialised version at or below ``lsn``: this segment's own, or for
        a copy-on-write clone, the parent volume's as of the branch point."""
        base = self.store.get_version_at(self.key, page, lsn)
        if base is None and self.parent is not None:
            # A clone's LSNs continue above the branch point: its reads see the parent as
            # it was there.
            return self.parent.version_at(page, self.parent.branch_lsn)
        return base

    def _bases(self, pages: Iterable[int], lsn: int) -> dict[int, tuple[int, bytes]]:
        """``_base`` of many pages, in one read of the page store."""
        bases = self.store.get_versions_at(self.key, pages, lsn)
        if self.parent is not None:
            for page in pages:
                if page not in bases:
                    base = self._base(page, lsn)
                    if base is not None:
                        bases[page] = base
        return bases

    def materialise(self, page: int, read_point: int) -> PageVersion:
        base = self._base(page, min(read_point, self.coalesced))
        version, image = (base[0], base[1]) if base is not None else (0, None)
        lsns = self.page_lsns.get(page, ())
        i = bisect.bisect_right(lsns, version)
        j = bisect.bisect_right(lsns, read_point)
        for lsn in lsns[i:j]:
            record = self.records[lsn]
            if not record.crc_ok():
                self.unlogged.extend(self._found_corrupt_record(record))
                raise CorruptionError(f"segment {self.segment_id}: record lsn={lsn} corrupt")
            if record.kind == RecordKind.DELTA and record.prev_page_lsn != version:
                raise CorruptionError(
                    f"segment {self.segment_id}: page {page} record lsn={lsn} applies to "
                    f"version {record.prev_page_lsn} but the base is {version}"
                )
            image = delta.apply(image, record.payload)
            version = lsn
        return PageVersion(PageNo(page), LSN(version), image)

    def on_read_records(self, msg: ReadRecords) -> tuple[tuple[RedoRecord, ...], LSN]:
        """Records in ``(after, upto]`` and how far that range is known complete."""
        if msg.after < self.records_floor:
            raise PageGarbageCollectedError(
                f"segment {self.segment_id}: records at or below {self.records_floor} "
                "were materialised and dropped"
            )
        covered_to = min(msg.upto, self.coverage.complete_through(msg.after))
        return self._records_between(msg.after, covered_to, BATCH_RECORDS_MAX)

    def _records_between(
        self, after: int, upto: int, limit: int
    ) -> tuple[tuple[RedoRecord, ...], LSN]:
        """Retained records in ``(after, upto]``, CRC-checked: a corrupt one is never sent;
        the range stops below it and it is uncovered here, to be fetched again."""
        lsns = self._lsns_between(after, upto)
        if len(lsns) > limit:
            lsns = lsns[:limit]
            upto = lsns[-1]
        out: list[RedoRecord] = []
        for lsn in lsns:
            record = self.records[lsn]
            if not record.crc_ok():
                self.unlogged.extend(self._found_corrupt_record(record))
                return tuple(out), LSN(max(after, lsn - 1))
            out.append(record)
        return tuple(out), LSN(upto)

    def _lsns_between(self, after: int, upto: int, limit: int | None = None) -> list[int]:
        """The retained records' LSNs in ``(after, upto]``, ascending (at most ``limit``)."""
        i = bisect.bisect_right(self.record_lsns, after)
        j = bisect.bisect_right(self.record_lsns, upto)
        if limit is not None:
            j = min(j, i + limit)
        return self.record_lsns[i:j]

    def highest_cpl_at_or_below(self, lsn: int) -> LSN:
        i = bisect.bisect_right(self.cpls, lsn)
        return LSN(self.cpls[i - 1]) if i else LSN(0)

    # --- gossip ---------------------------------------------------------------------------

    def on_gossip_pull(self, msg: GossipPull) -> GossipPush:
        covered_to = min(msg.upto, self.coverage.complete_through(msg.after))
        if msg.after < self.records_floor or msg.rebuild:
            # We no longer keep records that far back (or the requester's own pages are
            # damaged): send materialised pages instead.
            # Versions below the minimum read point may be collected already, so the
            # snapshot is taken at the coalesced point, where every page has its version.
            base = self.coalesced
            snapshot = tuple(
                (int(p), int(v), bytes(img))
                for p, v, img in self.store.iter_pages(self.key, base)
            )
            records, covered_to = self._records_between(base, self.scl, BATCH_RECORDS_MAX)
            return GossipPush(
                msg.requester, self.segment_id, self.epoch, self.sealed_by,
                tuple(self.truncations), base, covered_to, records, snapshot,
                self.highest_cpl_at_or_below(base),
            )
        records, covered_to = self._records_between(msg.after, covered_to, GOSSIP_RECORDS_MAX)
        return GossipPush(
            msg.requester, self.segment_id, self.epoch, self.sealed_by,
            tuple(self.truncations), msg.after, max(covered_to, msg.after), records,
        )

    def on_gossip_push(self, msg: GossipPush) -> tuple[list[Entry], list[tuple[int, int, bytes]]]:
        """Merge a peer's reply. Returns entries to log and snapshot pages, which the host
        stores (after dropping the segment's old versions) before logging the entries.

        The entries are applied here in the order they are returned, so that replaying the
        log reproduces exactly the state the live segment reached."""
        entries: list[Entry] = []
        pages: list[tuple[int, int, bytes]] = []
        covered_to = msg.covered_to
        # A peer that still holds a truncation we know is superseded counts the range it
        # voided as covered without the records there: trust its coverage only below it.
        stale = [t.start for t in msg.truncations if self.truncation_superseded(t)]
        if stale:
            covered_to = min(covered_to, max(min(stale), msg.after))
        # A snapshot replaces everything held here: only when it covers at least as far as
        # this segment does (its SCL was acknowledged and must never go back).
        if msg.snapshot is not None and not stale and (
            self.scl < covered_to or (self.rebuild_wanted and self.scl <= covered_to)
        ):
            pages = list(msg.snapshot)
            entries.append(("rebase", msg.after, msg.snapshot_cpl))
            self.stats.snapshots_installed += 1
            self.rebuild_wanted = ""
        known = set(self.truncations)
        for t in msg.truncations:
            if t not in known and not self.truncation_superseded(t):
                entries.append(("trunc", t.to_wire()))
        if msg.epoch > self.epoch:
            entries.append(("epoch", msg.epoch, msg.sealed_by))
        if msg.epoch < self.epoch:
            # The peer may not know a truncation we know: trust its coverage only below it.
            lowest = min(
                (t.start for t in self.truncations if t.epoch > msg.epoch), default=covered_to
            )
            covered_to = min(covered_to, max(lowest, msg.after))
        if msg.snapshot is None or pages:
            records = [r for r in msg.records if r.lsn <= covered_to]
            for record in records:
                record.verify()
            if covered_to > msg.after and (pages or not self.coverage.covers(msg.after, covered_to)):
                entries.append(("cover", msg.after, covered_to, encode_block(records)))
                self.stats.gossip_records_in += len(records)
        return self._apply_all(entries), pages

    def gossip_target(self) -> int:
        """How far this segment knows it should be complete."""
        return max(self.known_through, self.coverage.high())

    # --- background work -----------------------------------------------------------------

    def tick(self, now_s: float) -> tuple[list[Entry], list[Any]]:
        """Gossip for holes, and logging of what was found corrupt while serving. Returns
        entries to log and effects (``SendGossip``). Coalescing (``coalesce`` then
        ``coalesced_to``, which must be called even when nothing was coalesced: it also
        drops records below a newly learnt ``all_scl``), ``gc`` and ``scrub_step`` are
        separate calls so that the host can pace them."""
        effects: list[Any] = []
        # Corrupt records found while serving reads were uncovered in memory: log that now.
        entries, self.unlogged = self.unlogged, []
        target = self.gossip_target()
        rebuild = bool(self.rebuild_wanted)
        if (self.scl < target or rebuild) and now_s >= self.gossip_due_s and self.peers:
            others = [p for p in self.peers if p != self.segment_id]
            if others:
                peer = others[self.gossip_round % len(others)]
                self.gossip_round += 1
                self.stats.gossip_pulls += 1
                effects.append(SendGossip(GossipPull(peer, self.segment_id, self.epoch,
                                                     self.scl, LSN(max(target, self.scl)),
                                                     rebuild)))
            self.gossip_due_s = now_s + self.gossip_interval_s
        return entries, effects

    def coalesce(
        self, durable_scl: int, limit: int = COALESCE_BATCH_MAX
    ) -> tuple[list[tuple[str, int, int, bytes]], int]:
        """Materialise records up to ``durable_scl``, the writer's VDL and the minimum read
        point: only synced, committed records, so the page store never runs ahead of the log
        and never holds a version a truncation could void; and only where no read can look
        below, so that one version per page per pass is enough (the page's newest record in
        the pass): a read at or above the minimum read point takes that version and the
        records above it, which are kept. On a hot page this stores one version where there
        were many records. Returns versions to store and the new coalesced point; the host
        stores them with the point as meta, then calls ``coalesced_to``. At most ``limit``
        records per call (the host paces its work)."""
        assert 0 < limit <= COALESCE_BATCH_MAX
        # Above VDL a record may still be truncated by a recovering writer: never
        # materialise it.
        upto = min(durable_scl, self.scl, self.known_vdl, self.min_read_point)
        if upto <= self.coalesced or self.rebuild_wanted:
            return [], self.coalesced
        lsns = self._lsns_between(self.coalesced, upto, limit + 1)
        if len(lsns) > limit:
            lsns = lsns[:limit]
            upto = lsns[-1]
        records = self.records
        bases = self._bases({records[lsn].page for lsn in lsns}, self.coalesced)
        images: dict[int, tuple[int, bytes | None]] = {}
        for lsn in lsns:
            record = records[lsn]
            if record.page in images:
                version, image = images[record.page]
            else:
                base = bases.get(record.page)
                version, image = (base[0], base[1]) if base is not None else (0, None)
            if not record.crc_ok():
                self.unlogged.extend(self._found_corrupt_record(record))
                return [], self.coalesced
            if record.kind == RecordKind.DELTA and record.prev_page_lsn != version:
                raise CorruptionError(
                    f"segment {self.segment_id}: coalescing page {record.page}: record "
                    f"lsn={lsn} applies to {record.prev_page_lsn} but the base is {version}"
                )
            images[record.page] = (lsn, delta.apply(image, record.payload))
        self.stats.records_coalesced += len(lsns)
        out = [(self.key, page, lsn, image) for page, (lsn, image) in images.items()
               if image is not None]
        return out, upto

    def coalesced_to(self, lsn: int) -> None:
        """The host stored the versions up to ``lsn``; drop records nobody needs any more."""
        assert lsn >= self.coalesced
        self.coalesced = LSN(lsn)
        keep_above = min(self.coalesced, self.all_scl)
        if keep_above > self.records_floor:
            k = bisect.bisect_right(self.record_lsns, keep_above)
            for old in self.record_lsns[:k]:
                self._forget_record(old)
            del self.record_lsns[:k]
            assert len(self.record_lsns) == len(self.records)
            self.records_floor = LSN(keep_above)
            # Of the commit points below the floor only the newest can still be asked for.
            i = bisect.bisect_right(self.cpls, keep_above)
            if i > 1:
                del self.cpls[: i - 1]

    def gc(self) -> int:
        below = min(self.min_read_point, self.coalesced)
        if below <= 0:
            return 0
        n = self.store.gc(self.key, below)
        self.stats.versions_gced += n
        return n

    def scrub_step(self) -> list[Entry]:
        """Verify a bounded slice of the retained records; a corrupt one is uncovered so that
        gossip fetches it again from a peer."""
        lsns = self.record_lsns
        if not lsns:
            return []
        start = bisect.bisect_right(lsns, self.scrub_cursor)
        if start >= len(lsns):
            start = 0
        chunk = lsns[start : start + SCRUB_BATCH_MAX]
        self.scrub_cursor = chunk[-1]
        entries: list[Entry] = []
        for lsn in chunk:
            record = self.records.get(lsn)
            self.stats.scrubbed += 1
            if record is not None and not record.crc_ok():
                entries.extend(self._found_corrupt_record(record))
        return entries

    def _found_corrupt_record(self, record: RedoRecord) -> list[Entry]:
        """Uncover the corrupt record's slot: from the previous retained record to it."""
        self.stats.corrupt_found += 1
        lsns = self.record_lsns
        i = bisect.bisect_left(lsns, record.lsn)
        prev = lsns[i - 1] if i else self.records_floor
        log.warning("corrupt record segment=%s lsn=%d: refetching (%d, %d]",
                    self.segment_id, record.lsn, prev, record.lsn)
        entry: Entry = ("uncover", prev, int(record.lsn))
        self.apply_entry(entry)
        return [entry]

    def image_at(self, page: int, version: int) -> bytes | None:
        """The image of ``page`` as of exactly ``version`` (an LSN of one of its records), for
        a peer repairing its copy of that version; None when this segment cannot show it.

        A stored copy of that very version is the answer. Otherwise the read path gives it:
        the page as of a read point at or above ``version`` is that version's image as long
        as no later record of the page lies at or below the read point, which the version
        the read returns tells. Segments coalesce at their own points, so a peer seldom
        stores the same versions; it can still show most of them this way."""
        self._check_page_no(page)
        stored = self.store.get_version_at(self.key, page, version)
        if stored is not None and stored[0] == version:
            return stored[1]
        read_point = max(version, self.history_floor, self.coalesced)
        if read_point > self.scl:
            return None
        found = self.materialise(page, read_point)
        return found.image if found.version == version else None

    def want_rebuild(self, reason: str) -> None:
        """A stored version this segment reads from is corrupt and no peer can show that
        version: replace every page from a peer's snapshot (with the records above it), as a
        segment rebuilt elsewhere is filled. Until then coalescing waits (it would start
        from the corrupt version) and reads of that page are refused by its CRC, so the
        volume client reads it elsewhere; nothing acknowledged depends on the page store
        alone, since records stay in the log until coalesced."""
        if not self.rebuild_wanted:
            self.stats.rebuilds_asked += 1
        self.rebuild_wanted = reason

    def superseded(self, page: int, version: int) -> bool:
        """Whether a read can never start from this stored version of ``page`` again: a newer
        one at or below the coalesced point is the base of every read this segment serves
        (reads below that point are refused), so this one only waits for GC."""
        return any(version < v <= self.coalesced for v in self.store.versions(self.key, page))

    def scrub_pages(self, pages: list[int]) -> list[Any]:
        """Verify the stored versions of ``pages``; report those that must be repaired."""
        effects: list[Any] = []
        for page in pages:
            for version in self.store.versions(self.key, page):
                try:
                    self.store.get_version_at(self.key, page, version)
                except CorruptionError:
                    self.stats.corrupt_found += 1
                    effects.append(RepairNeeded(PageNo(page), LSN(version)))
        return effects


def _logged_records(block: Any) -> Iterable[RedoRecord]:
    """The records of a logged ``cover`` entry, CRC-checked: a block, or (in logs written
    before record blocks) an array of records."""
    if type(block) is bytes:
        records: Iterable[RedoRecord] = decode_block(block)
    else:
        records = [RedoRecord.from_wire(item, verify=False) for item in block]
    for record in records:
        record.verify()
    return records
