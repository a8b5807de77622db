"""Messages between the volume client and segments, and between segments (gossip).

Each is a frozen dataclass that validates on construction. ``to_wire``/``from_wire`` map them
to plain msgpack-able lists; a malformed message raises ProtocolError at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from borealis.errors import ProtocolError
from borealis.storage.record import RedoRecord
from borealis.types import LSN, Epoch, MembershipEpoch, PageNo, SegmentId

BATCH_RECORDS_MAX = 65_536
"""A write batch or gossip reply never carries more records than this."""


@dataclass(frozen=True, slots=True)
class Truncation:
    """Records of an epoch older than ``epoch`` in ``(start, end]`` are void.

    Written by a recovering writer: ``start`` is the recovered VDL and ``end`` is above every
    LSN the fenced writer could have allocated (VDL + LAL), so the new writer's LSNs never
    collide with the old writer's.

    ``honoured`` is every older truncation that recovery held in force (it adopted them
    before its SCLs counted). An older truncation it did not know is *superseded*: it never
    reached a write quorum of any PG (a recovery seals a write quorum of every PG, and two
    write quorums meet), so the recovery that wrote it never finished and nothing rests on
    it, while this recovery may have declared committed records it voids. So the newest
    truncation a segment knows decides every truncation in force there: itself and what it
    honoured (``in_force``). One recovery per epoch: a truncation is named by its epoch,
    range included (equality and hashing ignore ``honoured``).
    """

    epoch: Epoch
    start: LSN
    end: LSN
    honoured: tuple[Truncation, ...] | None = field(default=None, compare=False)
    """None: written before truncations said what they honoured (three fields on the
    wire); such a truncation honours every one known with it, as recoveries then did."""

    def __post_init__(self) -> None:
        if self.epoch <= 0:
            raise ProtocolError(f"truncation epoch must be positive, got {self.epoch}")
        if not 0 <= self.start < self.end:
            raise ProtocolError(f"truncation range ({self.start}, {self.end}] is empty")
        for older in self.honoured or ():
            if older.epoch >= self.epoch or older.honoured:
                raise ProtocolError(f"truncation at epoch {self.epoch}: honours {older}, "
                                    "which is not an older, plain truncation")

    def voids(self, record: RedoRecord) -> bool:
        return record.epoch < self.epoch and self.start < record.lsn <= self.end

    def in_force(self) -> tuple[Truncation, ...]:
        """Every truncation in force where this is the newest known, oldest first (for one
        without an ``honoured`` list: itself; whatever else is known stays in force)."""
        return (*sorted(self.honoured or (), key=lambda t: t.epoch), self.plain())

    def plain(self) -> Truncation:
        """This truncation with an empty ``honoured`` list, as honoured lists hold them."""
        return self if self.honoured == () else Truncation(self.epoch, self.start, self.end, ())

    def supersedes(self, older: Truncation) -> bool:
        """Whether ``older`` is no longer in force once this one is known."""
        return (self.honoured is not None and older.epoch < self.epoch
                and older not in self.honoured)

    def to_wire(self) -> list[Any]:
        if self.honoured is None:
            return [self.epoch, self.start, self.end]
        return [self.epoch, self.start, self.end, [t.to_wire() for t in self.honoured]]

    @classmethod
    def from_wire(cls, item: Any) -> Truncation:
        try:
            if len(item) == 4:
                epoch, start, end, honoured = item
                older: tuple[Truncation, ...] | None = tuple(cls.from_wire(t) for t in honoured)
            else:
                epoch, start, end = item
                older = None
            return cls(Epoch(int(epoch)), LSN(int(start)), LSN(int(end)), older)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed truncation: {exc}") from exc


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """Every record of the segment's PG in ``(prev_through, through]``, from the writer.

    A batch with ``prev_through == through`` carries no coverage (it may carry a truncation
    or hints only). ``min_read_point`` is PGMRPL (storage may GC below it) and
    ``all_scl`` is the lowest SCL the writer has seen acknowledged by all six segments
    (records below it need not be kept for gossip once materialised). ``vdl`` is the
    writer's VDL: records at or below it are committed and can never be truncated, so a
    segment materialises records only up to it.
    """

    segment: SegmentId
    epoch: Epoch
    writer: str
    prev_through: LSN
    through: LSN
    records: tuple[RedoRecord, ...]
    truncation: Truncation | None = None
    min_read_point: LSN = LSN(0)
    all_scl: LSN = LSN(0)
    vdl: LSN = LSN(0)

    def __post_init__(self) -> None:
        # Checked here, before a segment turns the batch into entries: a negative range
        # would otherwise fail an assert in Coverage.add half way through applying them.
        if self.prev_through < 0:
            raise ProtocolError(f"batch range starts at a negative LSN {self.prev_through}")
        if self.prev_through > self.through:
            raise ProtocolError(
                f"batch range ({self.prev_through}, {self.through}] goes backwards"
            )
        if len(self.records) > BATCH_RECORDS_MAX:
            raise ProtocolError(f"batch of {len(self.records)} records > {BATCH_RECORDS_MAX}")

    def check_records(self) -> None:
        """Raise ProtocolError unless the records are in order, inside the batch's range and
        of no later epoch than it. Called by the segment that receives the batch rather than
        on construction: a writer builds six batches of the same records every flush."""
        last = self.prev_through
        through = self.through
        epoch = self.epoch
        for record in self.records:
            if not last < record.lsn <= through:
                raise ProtocolError(
                    f"batch ({self.prev_through}, {through}]: record lsn={record.lsn} "
                    "out of order or out of range"
                )
            if record.epoch > epoch:
                raise ProtocolError(f"record lsn={record.lsn} from a future epoch")
            last = record.lsn


@dataclass(frozen=True, slots=True)
class WriteAck:
    segment: SegmentId
    scl: LSN
    epoch: Epoch


@dataclass(frozen=True, slots=True)
class Seal:
    """Raise the segment's volume epoch: from now on it refuses older writers."""

    segment: SegmentId
    epoch: Epoch
    writer: str


@dataclass(frozen=True, slots=True)
class SegmentState:
    """What recovery and membership changes learn from a segment."""

    segment: SegmentId
    epoch: Epoch
    scl: LSN
    high: LSN
    membership_epoch: MembershipEpoch
    coalesced: LSN
    truncations: tuple[Truncation, ...] = ()


@dataclass(frozen=True, slots=True)
class GetPage:
    segment: SegmentId
    page: PageNo
    read_point: LSN


@dataclass(frozen=True, slots=True)
class PageVersion:
    """The page as of a read point: ``version`` is the LSN of the newest record applied
    (0 and ``image`` None when the page was never written)."""

    page: PageNo
    version: LSN
    image: bytes | None


@dataclass(frozen=True, slots=True)
class ReadRecords:
    """Records of the segment's PG in ``(after, upto]``: used by recovery to re-replicate."""

    segment: SegmentId
    after: LSN
    upto: LSN


@dataclass(frozen=True, slots=True)
class GossipPull:
    """A segment asks a peer for what it misses in ``(after, upto]``; with ``rebuild``, for
    a snapshot of its pages whatever it keeps (the requester's own pages are damaged)."""

    segment: SegmentId  # the peer asked
    requester: SegmentId
    epoch: Epoch
    after: LSN
    upto: LSN
    rebuild: bool = False


@dataclass(frozen=True, slots=True)
class GossipPush:
    """Records in ``(after, covered_to]`` (all of the PG's valid records there), plus the
    sender's epoch knowledge. When the sender no longer keeps records that far back,
    ``snapshot`` holds its materialised pages ``(page, version, image)`` as of ``after``
    (its coalesced point) instead, with ``snapshot_cpl``, its newest commit point at or
    below ``after``, and the receiver rebuilds from them."""

    segment: SegmentId  # the receiver
    sender: SegmentId
    epoch: Epoch
    sealed_by: str
    truncations: tuple[Truncation, ...]
    after: LSN
    covered_to: LSN
    records: tuple[RedoRecord, ...]
    snapshot: tuple[tuple[int, int, bytes], ...] | None = None
    snapshot_cpl: LSN = LSN(0)


@dataclass(frozen=True, slots=True)
class SetMembership:
    """The PG's segment set under ``membership_epoch`` (during a change: old and new sets)."""

    segment: SegmentId
    membership_epoch: MembershipEpoch
    peers: tuple[SegmentId, ...]


@dataclass(frozen=True, slots=True)
class QueryCpl:
    """The highest consistency point at or below ``upto`` that the segment holds."""

    segment: SegmentId
    upto: LSN
