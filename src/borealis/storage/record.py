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
from collections.abc import Iterable
from typing import Any, NamedTuple

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


class RedoRecord(NamedTuple):
    """(lsn, page, prev lsn of the page, prev lsn of the PG, epoch, flags, kind, payload, crc).

    ``prev_page_lsn`` is the LSN of the page version this record applies to (0: none, so the
    record must be an image). ``prev_pg_lsn`` is the back-link to the previous record of the
    same protection group; a segment uses it to check that its chain has no hole.

    A named tuple rather than a dataclass: a storage node builds one per record it receives,
    and a tuple costs a quarter of a frozen dataclass to build (measured: 1.0 us against
    4.4). So the plain constructor does not validate: records from outside enter only
    through ``make``, ``from_wire`` and ``decode_block``, which do (``check``).
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

    def check(self) -> RedoRecord:
        """Raise ProtocolError unless every field is in range; returns the record."""
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
        if type(self.payload) is not bytes:
            raise ProtocolError(f"record lsn={self.lsn}: payload is not bytes")
        _check_links(self.lsn, self.prev_page_lsn, self.prev_pg_lsn, self.flags, self.kind)
        return self

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
        if type(payload) is not bytes:
            payload = bytes(payload)
        fields = (lsn, page, prev_page_lsn, prev_pg_lsn, epoch, flags, _KINDS[kind], payload)
        tuple.__new__(cls, (*fields, 0)).check()
        crc = record_crc(lsn, page, prev_page_lsn, prev_pg_lsn, epoch, flags, kind, payload)
        return tuple.__new__(cls, (*fields, crc))

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
            ).check()
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"malformed redo record: {exc}") from exc
        if verify:
            record.verify()
        return record

    def with_payload_bit_flipped(self, bit: int) -> RedoRecord:
        """A copy with one payload bit flipped and the old CRC: for fault injection."""
        data = bytearray(self.payload or b"\0")
        data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
        return self._replace(payload=bytes(data))


def _check_links(lsn: int, prev_page_lsn: int, prev_pg_lsn: int, flags: int, kind: int) -> None:
    if not 0 <= prev_page_lsn < lsn:
        raise ProtocolError(f"record lsn={lsn}: prev_page_lsn={prev_page_lsn} not below it")
    if not 0 <= prev_pg_lsn < lsn:
        raise ProtocolError(f"record lsn={lsn}: prev_pg_lsn={prev_pg_lsn} not below it")
    if flags & ~_FLAGS_KNOWN:
        raise ProtocolError(f"record lsn={lsn}: unknown flags {flags:#x}")
    if kind == RecordKind.DELTA and prev_page_lsn == 0:
        raise ProtocolError(f"record lsn={lsn}: a delta needs a base version")


# --- record blocks -------------------------------------------------------------------------

_BLOCK_HEADER = struct.Struct("<QQQQQBBII")
"""A record in a block: the CRC'd header fields (the layout of ``_HEADER``), the payload's
length and the CRC, then the payload."""

BLOCK_RECORDS_MAX = 65_536


def encode_block(records: Iterable[RedoRecord]) -> bytes:
    """Records as one byte string: how batches carry them on the wire and in a node's log.

    One ``bytes`` per batch rather than a msgpack array of nine fields a record: the writer
    encodes a PG's records once for its six segments, msgpack copies a single buffer, and a
    storage node logs what it received without encoding it again."""
    pack = _BLOCK_HEADER.pack
    parts: list[bytes] = []
    for r in records:
        parts.append(pack(r.lsn, r.page, r.prev_page_lsn, r.prev_pg_lsn, r.epoch, r.flags,
                          r.kind, len(r.payload), r.crc))
        parts.append(r.payload)
    return b"".join(parts)


def decode_block(data: bytes) -> tuple[RedoRecord, ...]:
    """The records of a block, every field validated (not the CRCs: see ``from_wire``).
    A malformed block raises ProtocolError."""
    if type(data) is not bytes:
        raise ProtocolError(f"a record block is bytes, not {type(data).__name__}")
    unpack = _BLOCK_HEADER.unpack_from
    header_bytes = _BLOCK_HEADER.size
    kinds = _KINDS
    new = tuple.__new__
    out: list[RedoRecord] = []
    offset = 0
    size = len(data)
    while offset < size:
        if size - offset < header_bytes:
            raise ProtocolError(f"record block: {size - offset} trailing bytes")
        lsn, page, prev_page, prev_pg, epoch, flags, kind, length, crc = unpack(data, offset)
        offset += header_bytes
        end = offset + length
        if end > size:
            raise ProtocolError(f"record block: record lsn={lsn} runs past the end")
        if lsn == 0 or kind >= len(kinds):
            raise ProtocolError(f"record block: bad record lsn={lsn} kind={kind}")
        _check_links(lsn, prev_page, prev_pg, flags, kind)
        # The fields are validated: build the tuple without the named tuple's __new__.
        out.append(new(RedoRecord, (lsn, page, prev_page, prev_pg, epoch, flags, kinds[kind],
                                    data[offset:end], crc)))
        offset = end
        if len(out) > BLOCK_RECORDS_MAX:
            raise ProtocolError(f"record block of more than {BLOCK_RECORDS_MAX} records")
    return tuple(out)
