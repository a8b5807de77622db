"""The vocabulary of the volume: identifiers, quorum thresholds and geometry constants.

Every layer speaks in these names (see ../shared/DESIGN.md). They are ``NewType``s so that an
LSN is never passed where a page number is expected, at no run-time cost.
"""

from __future__ import annotations

from typing import NewType

LSN = NewType("LSN", int)
"""Log sequence number: 64-bit, strictly increasing, allocated by the writer, one per record."""

PageNo = NewType("PageNo", int)
"""Page number within a volume, from 0."""

Epoch = NewType("Epoch", int)
"""Volume epoch: raised by every new writer on a write quorum of every PG before it writes."""

MembershipEpoch = NewType("MembershipEpoch", int)
"""Raised for each change of a protection group's segment set."""

PgIndex = NewType("PgIndex", int)
"""Protection group number: PG ``i`` holds pages ``[i * pg_pages, (i + 1) * pg_pages)``."""

NodeId = NewType("NodeId", str)
"""A storage node, e.g. ``"az1-n1"``."""

SegmentId = NewType("SegmentId", str)
"""One replica of one PG of one volume, e.g. ``"vol1/pg0/s3"``."""

VolumeId = NewType("VolumeId", str)

LSN_ZERO = LSN(0)
LSN_MAX = LSN(2**64 - 1)

# Aurora SIGMOD 2017 §2.1: six copies, two per AZ, write quorum 4/6, read quorum 3/6.
COPIES = 6
AZ_COUNT = 3
COPIES_PER_AZ = 2
WRITE_QUORUM = 4
READ_QUORUM = 3

# Checked at import: every read quorum meets every write quorum, and two write quorums meet,
# so that a writer learns about every earlier write and two writers cannot both succeed.
assert COPIES == AZ_COUNT * COPIES_PER_AZ
assert WRITE_QUORUM + READ_QUORUM > COPIES
assert 2 * WRITE_QUORUM > COPIES
# Losing a whole AZ leaves a write quorum; losing an AZ plus one node leaves a read quorum.
assert COPIES - COPIES_PER_AZ >= WRITE_QUORUM
assert COPIES - COPIES_PER_AZ - 1 >= READ_QUORUM
assert COPIES - COPIES_PER_AZ - 1 < WRITE_QUORUM

PAGE_SIZE_DEFAULT = 4096
VOLUME_BYTES_MAX_DEFAULT = 128 * 2**40  # 128 TiB, like Aurora.
PG_BYTES_DEFAULT = 10 * 2**30  # 10 GiB protection groups, like Aurora.


def segment_id(volume: VolumeId | str, pg: int, slot: int) -> SegmentId:
    """The canonical name of the replica in ``slot`` (0..5) of PG ``pg``."""
    assert pg >= 0
    assert 0 <= slot < COPIES
    return SegmentId(f"{volume}/pg{pg}/s{slot}")
