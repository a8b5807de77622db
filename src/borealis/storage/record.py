"""Redo records: the only thing a writer ever sends to storage.

A record is one change to one page. ``kind`` says whether ``payload`` is a full page image or
a delta against the page's version at ``prev_page_lsn`` (see ``borealis.delta``). The last
record of a committed transaction carries the CPL flag (a consistency point). Each record
carries a CRC over every field, computed by the writer and verified by every reader of it:
storage nodes on receipt, on replay of their log, and when they materialise a page.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from borealis.errors import CorruptionError, ProtocolError
from borealis.types import LSN, Epoch, PageNo

_HEADER = struct.Struct("<QQQQQBB")


class RecordKind(enum.IntEnum):
    IMAGE = 0
    DELTA = 1


FLAG_CPL = 0x01
"""The record ends a committed transaction: a consistency point."""

_FLAGS_KNOWN = FLAG_CPL

_KINDS = tuple(RecordKind)
_KIND_BY_VALUE = {int(kind): kind for kind in RecordKind}
_U64_MAX = 2**64 - 1


def record_crc(
    lsn: int, page: int, prev_page_lsn: int, prev_pg_lsn: int, epoch: int,
    flags: int, kind: int, payload: bytes,
) -> int:
    try:
        header = _HEADER.pack(lsn, page, prev_page_lsn, prev_pg_lsn, epoch, flags, kind)
    except struct.error as exc:
        raise ProtocolError(f"record lsn={lsn}: a field is out of range: {exc}") from exc
    return zlib.crc32(payload, zlib.crc32(header))


@dataclass(frozen=True, slots=True)
class RedoRecord:
    """(lsn, page, prev lsn of the page, prev lsn of the PG, epoch, flags, kind, payload, crc).

    ``prev_page_lsn`` is the LSN of the page version this record applies to (0: none, so the
    record must be an image). ``prev_pg_lsn`` is the back-link to the previous record of the
    same protection group; a segment uses it to check that its chain has no hole.
    """

    lsn: LSN
    page: PageNo
    prev_page_lsn: LSN
    prev_pg_lsn: LSN
    epoch: Epoch
    flags: int
    kind: RecordKind
    payload: bytes
    crc: int

    def __post_init__(self) -> None:
        # Every integer field is packed as a u64 (or u8) for the CRC: bound them here, so that
        # a bad value is a ProtocolError and never a struct.error from record_crc.
        if not 0 < self.lsn <= _U64_MAX:
            raise ProtocolError(f"record lsn must be in [1, 2**64), got {self.lsn}")
        if not 0 <= self.page <= _U64_MAX:
            raise ProtocolError(f"record page must be in [0, 2**64), got {self.page}")
        if not 0 <= self.epoch <= _U64_MAX:
            raise ProtocolError(f"record lsn={self.lsn}: epoch {self.epoch} out of range")
        if self.kind not in _KINDS:
            raise ProtocolError(f"record lsn={self.lsn}: unknown kind {self.kind!r}")
        if not isinstance(self.payload, bytes):
            raise ProtocolError(f"record lsn={self.lsn}: payload is not bytes")
        if not 0 <= self.prev_page_lsn < self.lsn:
            raise ProtocolError(
                f"record lsn={self.lsn}: prev_page_lsn={self.prev_page_lsn} not below it"
            )
        if not 0 <= self.prev_pg_lsn < self.lsn:
            raise ProtocolError(
                f"record lsn={self.lsn}: prev_pg_lsn={self.prev_pg_lsn} not below it"
            )
        if self.flags & ~_FLAGS_KNOWN:
            raise ProtocolError(f"record lsn={self.lsn}: unknown flags {self.flags:#x}")
        if self.kind == RecordKind.DELTA and self.prev_page_lsn == 0:
            raise ProtocolError(f"record lsn={self.lsn}: a delta needs a base version")

    @classmethod
    def make(
        cls,
        lsn: int,
        page: int,
        payload: bytes,
        *,
        kind: RecordKind = RecordKind.IMAGE,
        prev_page_lsn: int = 0,
        prev_pg_lsn: int = 0,
        epoch: int = 0,
        flags: int = 0,
    ) -> RedoRecord:
        if kind not in _KINDS:
            raise ProtocolError(f"record lsn={lsn}: unknown kind {kind!r}")
        crc = record_crc(lsn, page, prev_page_lsn, prev_pg_lsn, epoch, flags, kind, payload)
        return cls(
            LSN(lsn), PageNo(page), LSN(prev_page_lsn), LSN(prev_pg_lsn), Epoch(epoch),
            flags, RecordKind(kind), bytes(payload), crc,
        )

    @property
    def is_cpl(self) -> bool:
        return bool(self.flags & FLAG_CPL)

    def crc_ok(self) -> bool:
        return self.crc == record_crc(
            self.lsn, self.page, self.prev_page_lsn, self.prev_pg_lsn, self.epoch,
            self.flags, self.kind, self.payload,
        )

    def verify(self) -> None:
        """Raise CorruptionError unless the CRC matches every field."""
        if not self.crc_ok():
            raise CorruptionError(f"record lsn={self.lsn} page={self.page}: CRC mismatch")

    def to_wire(self) -> list[Any]:
        return [
            self.lsn, self.page, self.prev_page_lsn, self.prev_pg_lsn, self.epoch,
            self.flags, int(self.kind), self.payload, self.crc,
        ]

    @classmethod
    def from_wire(cls, item: Any, *, verify: bool = True) -> RedoRecord:
        """Decode and verify; a malformed or corrupt item raises ProtocolError/CorruptionError.

        ``verify=False`` skips only the CRC check, for a caller that verifies every record
        before it uses one (``Segment.on_write`` and ``Segment.on_gossip_push`` do): the
        storage node then checks each record's CRC once rather than twice."""
        try:
            lsn, page, prev_page, prev_pg, epoch, flags, kind, payload, crc = item
            if type(payload) is not bytes:
                if not isinstance(payload, bytearray | memoryview):
                    # bytes(n) of an int n would allocate n zero bytes: never accept it.
                    raise TypeError(f"payload is {type(payload).__name__}, not bytes")
                payload = bytes(payload)
            record_kind = _KIND_BY_VALUE.get(int(kind))
            if record_kind is None:
                raise ValueError(f"{kind!r} is not a valid RecordKind")
            # The NewTypes (LSN, PageNo, Epoch) are identities: not called on this hot path.
            record = cls(
                int(lsn), int(page), int(prev_page), int(prev_pg),  # type: ignore[arg-type]
                int(epoch), int(flags), record_kind, payload, int(crc),  # type: ignore[arg-type]
            )
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"malformed redo record: {exc}") from exc
        if verify:
            record.verify()
        return record

    def with_payload_bit_flipped(self, bit: int) -> RedoRecord:
        """A copy with one payload bit flipped and the old CRC: for fault injection."""
        data = bytearray(self.payload or b"\0")
        data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
        return RedoRecord(
            self.lsn, self.page, self.prev_page_lsn, self.prev_pg_lsn, self.epoch,
            self.flags, self.kind, bytes(data), self.crc,
        )
