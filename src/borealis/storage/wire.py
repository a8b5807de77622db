"""Storage messages on the wire: each dataclass as a positional msgpack array.

``encode`` turns a message into plain lists and ints; ``decode(cls, body)`` validates and
rebuilds it. A malformed body raises ``ProtocolError`` (the RPC layer answers it as a typed
error), a corrupt record ``CorruptionError``: never a foreign exception.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from borealis.errors import BorealisError, ProtocolError
from borealis.storage.messages import (
    GetPage,
    GossipPull,
    GossipPush,
    PageVersion,
    QueryCpl,
    ReadRecords,
    Seal,
    SegmentState,
    SetMembership,
    Truncation,
    WriteAck,
    WriteBatch,
)
from borealis.storage.record import RedoRecord
from borealis.types import PageNo, SegmentId

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CreateSegment:
    """Host a new segment (idempotent). ``peers`` maps every segment of the PG, this one
    included, to the ``host:port`` of its node, for gossip."""

    segment: SegmentId
    volume: str
    pg: int
    first_page: PageNo
    pg_pages: int
    peers: tuple[tuple[SegmentId, str], ...]

    def __post_init__(self) -> None:
        if self.pg < 0 or self.first_page < 0 or self.pg_pages <= 0:
            raise ProtocolError(f"create {self.segment}: bad geometry")
        if self.segment not in {s for s, _ in self.peers}:
            raise ProtocolError(f"create {self.segment}: it is not among its peers")


def _records(value: Any) -> tuple[RedoRecord, ...]:
    return tuple(RedoRecord.from_wire(item) for item in value)


def _truncation(value: Any) -> Truncation | None:
    return None if value is None else Truncation.from_wire(value)


def _truncations(value: Any) -> tuple[Truncation, ...]:
    return tuple(Truncation.from_wire(item) for item in value)


def _snapshot(value: Any) -> tuple[tuple[int, int, bytes], ...] | None:
    if value is None:
        return None
    return tuple((int(p), int(v), _bytes(img)) for p, v, img in value)


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProtocolError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else _bytes(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"expected an integer, got {type(value).__name__}")
    return value


def _peers(value: Any) -> tuple[Any, ...]:
    if value and isinstance(value[0], list | tuple):
        return tuple((SegmentId(_str(s)), _str(a)) for s, a in value)
    return tuple(SegmentId(_str(s)) for s in value)


_FIELD_DECODERS: dict[str, Callable[[Any], Any]] = {
    "records": _records,
    "truncation": _truncation,
    "truncations": _truncations,
    "snapshot": _snapshot,
    "image": _opt_bytes,
    "peers": _peers,
    "segment": _str,
    "requester": _str,
    "sender": _str,
    "writer": _str,
    "sealed_by": _str,
    "volume": _str,
}


def _encode_value(value: Any) -> Any:
    if isinstance(value, RedoRecord | Truncation):
        return value.to_wire()
    if isinstance(value, tuple):
        return [_encode_value(v) for v in value]
    return value


def encode(message: Any) -> list[Any]:
    """A message dataclass as a positional list."""
    return [_encode_value(getattr(message, f.name)) for f in dataclasses.fields(message)]


def decode(cls: type[T], body: Any) -> T:
    """Rebuild and validate a ``cls`` from ``body``; ProtocolError if it does not fit."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not isinstance(body, list | tuple):
        raise ProtocolError(f"{cls.__name__}: expected an array, got {type(body).__name__}")
    required = sum(
        1 for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if not required <= len(body) <= len(fields):
        raise ProtocolError(f"{cls.__name__}: {len(body)} fields, expected {len(fields)}")
    try:
        values = [
            _FIELD_DECODERS.get(f.name, _int)(value)
            for f, value in zip(fields, body, strict=False)
        ]
        return cls(*values)
    except BorealisError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"malformed {cls.__name__}: {exc}") from exc


METHODS: dict[str, type[Any]] = {
    "create": CreateSegment,
    "write": WriteBatch,
    "seal": Seal,
    "get_page": GetPage,
    "read_records": ReadRecords,
    "query_cpl": QueryCpl,
    "gossip": GossipPull,
    "membership": SetMembership,
}
"""Request types by RPC method. Replies: write -> WriteAck, seal -> SegmentState,
get_page -> PageVersion, read_records -> [records, covered_to], query_cpl -> lsn,
gossip -> GossipPush, create/membership -> None."""

REPLIES: dict[str, type[Any]] = {
    "write": WriteAck,
    "seal": SegmentState,
    "get_page": PageVersion,
    "gossip": GossipPush,
}
