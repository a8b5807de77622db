"""Storage messages on the wire: each dataclass as a positional msgpack array.

``encode`` turns a message into plain lists and ints; ``decode(cls, body)`` validates and
rebuilds it. A malformed body raises ``ProtocolError`` (the RPC layer answers it as a typed
error): never a foreign exception. The records of a ``WriteBatch`` or a ``GossipPush`` are
checked for shape here and for their CRC by the segment, which verifies every record before
it uses one (``Segment.on_write``, ``Segment.on_gossip_push``) and answers a corrupt one with
``CorruptionError``: one CRC check per record, not two.

``write_many`` carries the batches of one flush for every segment a node hosts in one
request (one round trip per node rather than per segment); its reply holds one result per
batch, each a transport response or error message whose id is the batch's index, so a
refused batch (a stale epoch, an unknown segment) fails alone.
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
from borealis.storage.record import RedoRecord, decode_block, encode_block
from borealis.transport import messages as rpc_messages
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
    # The CRC is verified by the segment before any record is used (module docstring).
    if type(value) is bytes:
        return decode_block(value)
    # An array of records, each an array of fields: what nodes sent before record blocks.
    if type(value) is not list:
        raise ProtocolError(f"records: expected a block, got {type(value).__name__}")
    from_wire = RedoRecord.from_wire
    return tuple([from_wire(item, verify=False) for item in value])


def decode_records(value: Any, *, verify: bool) -> tuple[RedoRecord, ...]:
    """Records from the wire (a block), validated, and CRC-checked when ``verify``."""
    records = _records(value)
    if verify:
        for record in records:
            record.verify()
    return records


def received_block(encoded_batch: Any) -> bytes | None:
    """The record block of an encoded ``WriteBatch`` that ``decode`` accepted, as received
    (None for the older array-of-records form): a node logs it without encoding it again."""
    records = encoded_batch[_WRITE_BATCH_RECORDS]
    return records if type(records) is bytes else None


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


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"expected a boolean, got {type(value).__name__}")
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
    "rebuild": _flag,
    "segment": _str,
    "requester": _str,
    "sender": _str,
    "writer": _str,
    "sealed_by": _str,
    "volume": _str,
}


def _encode_value(value: Any) -> Any:
    if isinstance(value, Truncation):
        return value.to_wire()
    if isinstance(value, tuple):
        return [_encode_value(v) for v in value]
    return value


_FIELD_ENCODERS: dict[str, Callable[[Any], Any]] = {"records": encode_block}


@dataclass(frozen=True, slots=True)
class _Shape:
    """What ``encode``/``decode`` need of a message class, computed once per class:
    ``dataclasses.fields`` costs more than decoding a small message."""

    names: tuple[str, ...]
    encoders: tuple[Callable[[Any], Any], ...]
    decoders: tuple[Callable[[Any], Any], ...]
    required: int


_SHAPES: dict[type[Any], _Shape] = {}


def _shape(cls: type[Any]) -> _Shape:
    shape = _SHAPES.get(cls)
    if shape is None:
        fields = dataclasses.fields(cls)
        shape = _SHAPES[cls] = _Shape(
            tuple(f.name for f in fields),
            tuple(_FIELD_ENCODERS.get(f.name, _encode_value) for f in fields),
            tuple(_FIELD_DECODERS.get(f.name, _int) for f in fields),
            sum(1 for f in fields
                if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING),
        )
    return shape


def encode(message: Any) -> list[Any]:
    """A message dataclass as a positional list."""
    shape = _shape(type(message))
    return [encoder(getattr(message, name))
            for name, encoder in zip(shape.names, shape.encoders, strict=True)]


def decode(cls: type[T], body: Any) -> T:
    """Rebuild and validate a ``cls`` from ``body``; ProtocolError if it does not fit."""
    shape = _shape(cls)
    if not isinstance(body, list | tuple):
        raise ProtocolError(f"{cls.__name__}: expected an array, got {type(body).__name__}")
    if not shape.required <= len(body) <= len(shape.names):
        raise ProtocolError(f"{cls.__name__}: {len(body)} fields, expected {len(shape.names)}")
    try:
        values = [
            decoder(value) for decoder, value in zip(shape.decoders, body, strict=False)
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


def encode_write_batch(batch: WriteBatch, records: bytes) -> list[Any]:
    """``encode(batch)`` with its records already encoded (``records``, an
    ``encode_block``): a flush encodes a PG's records once for its six batches."""
    truncation = batch.truncation
    return [
        batch.segment, batch.epoch, batch.writer, batch.prev_through, batch.through, records,
        None if truncation is None else truncation.to_wire(), batch.min_read_point,
        batch.all_scl, batch.vdl,
    ]


_WRITE_BATCH_RECORDS = 5

assert _shape(WriteBatch).names == (
    "segment", "epoch", "writer", "prev_through", "through", "records", "truncation",
    "min_read_point", "all_scl", "vdl",
), "encode_write_batch must follow WriteBatch's fields"


WRITE_MANY = "write_many"
WRITE_MANY_BATCHES_MAX = 4096
"""Batches in one ``write_many`` request: a flush has one per segment the node hosts."""


def write_many_request(batches: list[list[Any]]) -> list[list[Any]]:
    """The body of a ``write_many`` request: encoded ``WriteBatch``es."""
    assert 0 < len(batches) <= WRITE_MANY_BATCHES_MAX
    return batches


def write_many_batches(body: Any) -> list[Any]:
    """The encoded batches of a ``write_many`` body (each still to ``decode``)."""
    if type(body) is not list:
        raise ProtocolError(f"write_many: expected an array, got {type(body).__name__}")
    if not 0 < len(body) <= WRITE_MANY_BATCHES_MAX:
        raise ProtocolError(f"write_many: {len(body)} batches, expected 1 to "
                            f"{WRITE_MANY_BATCHES_MAX}")
    return body


def write_result_ack(index: int, ack: WriteAck) -> list[Any]:
    return rpc_messages.response(index, encode(ack))


def write_result_error(index: int, exc: BorealisError) -> list[Any]:
    return rpc_messages.error(index, exc)


def write_many_results(reply: Any, count: int) -> list[WriteAck | BorealisError]:
    """The result of every batch of a ``write_many`` of ``count`` batches, in order: its
    ``WriteAck`` or the typed error that refused it."""
    if type(reply) is not list or len(reply) != count:
        raise ProtocolError(f"write_many reply: expected {count} results")
    out: list[WriteAck | BorealisError] = []
    for index, item in enumerate(reply):
        result_index, body, error = rpc_messages.parse_reply(item)
        if result_index != index:
            raise ProtocolError(f"write_many reply: result {result_index} at {index}")
        out.append(_write_ack(body) if error is None else error)
    return out


def _write_ack(body: Any) -> WriteAck:
    """``decode(WriteAck, body)``, on the writer's hot path: 24 acknowledgements a flush."""
    if type(body) is list and len(body) == 3:
        segment, scl, epoch = body
        if type(segment) is str and type(scl) is int and type(epoch) is int:
            return WriteAck(SegmentId(segment), scl, epoch)  # type: ignore[arg-type]
    return decode(WriteAck, body)
