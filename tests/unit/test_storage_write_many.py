"""``write_many`` (one request per node per flush) and the storage node's acknowledgement rule:
a reply that reports an SCL leaves only once every entry appended before it is synced.

The node runs in process (a temporary directory, no sockets): ``dispatch`` returns either the
reply or a future of it, exactly what the RPC server would send.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from borealis.errors import (
    CorruptionError,
    ProtocolError,
    StaleEpochError,
    UnknownSegmentError,
)
from borealis.storage import wire
from borealis.storage.messages import Truncation, WriteAck, WriteBatch
from borealis.storage.node import StorageNode
from borealis.storage.record import FLAG_CPL, RedoRecord, encode_block
from borealis.types import LSN, Epoch, PageNo, SegmentId

PEERS = tuple(SegmentId(f"v/pg0/s{slot}") for slot in range(6))
HOSTED = PEERS[:2]


def batch(segment: SegmentId, prev: int, through: int, *, epoch: int = 1,
          corrupt: bool = False) -> WriteBatch:
    records = tuple(
        RedoRecord.make(lsn, lsn % 4, b"image %d" % lsn, prev_pg_lsn=lsn - 1 if lsn > 1 else 0,
                        epoch=1, flags=FLAG_CPL if lsn == through else 0)
        for lsn in range(prev + 1, through + 1)
    )
    if corrupt:
        records = (records[0].with_payload_bit_flipped(3), *records[1:])
    return WriteBatch(segment, Epoch(epoch), "w1", LSN(prev), LSN(through), records)


def encoded(msg: WriteBatch) -> list[Any]:
    return wire.encode(msg)


async def resolved(reply: Any) -> Any:
    return await reply if isinstance(reply, asyncio.Future) else reply


def node_at(tmp_path: Path) -> StorageNode:
    node = StorageNode("n1", "az1", tmp_path / "n1")
    for sid in HOSTED:
        spec = wire.CreateSegment(sid, "v", 0, PageNo(0), 64,
                                  tuple((p, "127.0.0.1:1") for p in PEERS))
        node.dispatch("create", wire.encode(spec), "test")
    node.log.sync()
    return node


def test_write_many_answers_every_batch_in_order_and_a_refused_one_alone(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        node = node_at(tmp_path)
        body = [encoded(batch(HOSTED[0], 0, 3)), encoded(batch(SegmentId("v/pg0/s5"), 0, 3)),
                encoded(batch(HOSTED[1], 0, 3, corrupt=True))]
        reply = node.dispatch(wire.WRITE_MANY, body, "test")
        assert isinstance(reply, asyncio.Future), "acknowledgements wait for the sync"
        results = wire.write_many_results(await reply, 3)
        assert results[0] == WriteAck(HOSTED[0], LSN(3), Epoch(1))
        assert isinstance(results[1], UnknownSegmentError)
        # A corrupt record is found by the segment (the wire checks only the shape), and
        # its batch changes nothing.
        assert isinstance(results[2], CorruptionError)
        assert node.hosted[HOSTED[1]].segment.scl == 0
        assert node.log.synced_seq == node.log.next_seq - 1
        await node.close()

    asyncio.run(main())


def test_a_reply_without_entries_still_waits_for_the_entries_its_scl_rests_on(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        node = node_at(tmp_path)
        first = node.dispatch("write", encoded(batch(HOSTED[0], 0, 3)), "test")
        assert isinstance(first, asyncio.Future)
        # The same batch again (a resend) adds no entry, but its acknowledgement reports
        # SCL 3, which is durable only once the first request's entries are synced.
        again = node.dispatch("write", encoded(batch(HOSTED[0], 0, 3)), "test")
        assert isinstance(again, asyncio.Future)
        assert not again.done()
        assert wire.decode(WriteAck, await again).scl == 3
        assert node.log.synced_seq == node.log.next_seq - 1
        assert first.done()
        # Once everything is synced, a reply needs no wait.
        assert not isinstance(
            node.dispatch("write", encoded(batch(HOSTED[0], 0, 3)), "test"), asyncio.Future
        )
        await node.close()

    asyncio.run(main())


def test_write_many_results_keep_the_typed_error_and_check_the_shape() -> None:
    ack = WriteAck(HOSTED[0], LSN(9), Epoch(2))
    reply = [wire.write_result_ack(0, ack),
             wire.write_result_error(1, StaleEpochError("old", current_epoch=7))]
    first, second = wire.write_many_results(reply, 2)
    assert first == ack
    assert isinstance(second, StaleEpochError)
    assert second.current_epoch == 7
    with pytest.raises(ProtocolError):
        wire.write_many_results(reply, 3)
    with pytest.raises(ProtocolError):
        wire.write_many_results(list(reversed(reply)), 2)
    for body in (None, [], {"a": 1}, [[]] * (wire.WRITE_MANY_BATCHES_MAX + 1)):
        with pytest.raises(ProtocolError):
            wire.write_many_batches(body)


@pytest.mark.parametrize("truncation", [None, Truncation(Epoch(2), LSN(0), LSN(100))])
def test_encode_write_batch_matches_the_generic_encoder(truncation: Truncation | None) -> None:
    msg = batch(HOSTED[0], 0, 3, epoch=2)
    msg = WriteBatch(msg.segment, msg.epoch, msg.writer, msg.prev_through, msg.through,
                     msg.records, truncation, LSN(1), LSN(2), LSN(3))
    records = encode_block(msg.records)
    assert wire.encode_write_batch(msg, records) == wire.encode(msg)
    assert wire.decode(WriteBatch, wire.encode_write_batch(msg, records)) == msg
