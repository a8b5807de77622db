"""Volume geometry and placement: which PG holds a page, and which nodes hold a PG's segments.

A volume is a logical array of pages split into protection groups of ``pg_pages`` pages.
It grows by adding PGs when a page beyond the last one is first written, up to
``volume_bytes_max``. Each PG has six segments, two in each of three AZs, on distinct nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from borealis.errors import ConfigError, VolumeFullError
from borealis.types import (
    AZ_COUNT,
    COPIES,
    COPIES_PER_AZ,
    PAGE_SIZE_DEFAULT,
    PG_BYTES_DEFAULT,
    VOLUME_BYTES_MAX_DEFAULT,
    NodeId,
    PageNo,
    PgIndex,
    SegmentId,
    VolumeId,
    segment_id,
)

SQLITE_PAGES_MAX = 4_294_967_294
"""SQLite's page-count limit: 128 TiB needs pages of 32 KiB or more (128 TiB / 4 KiB pages
is 2^35 pages, beyond it). With the default 4 KiB page a volume tops out near 16 TiB."""


@dataclass(frozen=True, slots=True)
class Geometry:
    volume: VolumeId
    page_size: int = PAGE_SIZE_DEFAULT
    pg_bytes: int = PG_BYTES_DEFAULT
    volume_bytes_max: int = VOLUME_BYTES_MAX_DEFAULT

    def __post_init__(self) -> None:
        if self.page_size < 512 or self.page_size & (self.page_size - 1):
            raise ConfigError(f"page_size must be a power of two >= 512, got {self.page_size}")
        if self.pg_bytes < self.page_size or self.pg_bytes % self.page_size:
            raise ConfigError(
                f"pg_bytes ({self.pg_bytes}) must be a positive multiple of page_size"
            )
        if self.volume_bytes_max < self.pg_bytes:
            raise ConfigError("volume_bytes_max must hold at least one protection group")

    @property
    def pg_pages(self) -> int:
        return self.pg_bytes // self.page_size

    @property
    def pages_max(self) -> int:
        return self.volume_bytes_max // self.page_size

    @property
    def pgs_max(self) -> int:
        return -(-self.pages_max // self.pg_pages)

    def pg_of(self, page: int) -> PgIndex:
        if not 0 <= page < self.volume_bytes_max // self.page_size:
            raise VolumeFullError(
                f"page {page} is beyond the volume maximum of {self.volume_bytes_max} bytes "
                f"({self.pages_max} pages of {self.page_size} bytes)"
            )
        return PgIndex(page // self.pg_pages)

    def first_page(self, pg: int) -> PageNo:
        return PageNo(pg * self.pg_pages)


@dataclass(frozen=True, slots=True)
class SegmentPlacement:
    segment: SegmentId
    node: NodeId
    az: str


@dataclass(frozen=True, slots=True)
class PgLayout:
    """The six segments of one PG (membership epoch ``membership_epoch``)."""

    pg: PgIndex
    segments: tuple[SegmentPlacement, ...]
    membership_epoch: int = 0

    def __post_init__(self) -> None:
        assert len(self.segments) == COPIES, self.segments
        azs: dict[str, int] = {}
        for s in self.segments:
            azs[s.az] = azs.get(s.az, 0) + 1
        assert len({s.node for s in self.segments}) == COPIES, "two segments on one node"
        assert len(azs) == AZ_COUNT and all(n == COPIES_PER_AZ for n in azs.values()), azs

    @property
    def segment_ids(self) -> tuple[SegmentId, ...]:
        return tuple(s.segment for s in self.segments)

    def replace(self, old: SegmentId, new: SegmentPlacement) -> PgLayout:
        segments = tuple(new if s.segment == old else s for s in self.segments)
        assert segments != self.segments
        return PgLayout(self.pg, segments, self.membership_epoch + 1)


def place_pg(
    volume: VolumeId, pg: int, nodes_by_az: dict[str, list[NodeId]], *, generation: int = 0
) -> PgLayout:
    """Two segments per AZ, on two distinct nodes of that AZ, rotating with the PG number so
    that PGs spread over all nodes of an AZ."""
    if len(nodes_by_az) != AZ_COUNT:
        raise ConfigError(f"need exactly {AZ_COUNT} AZs, got {sorted(nodes_by_az)}")
    placements = []
    slot = 0
    for az in sorted(nodes_by_az):
        nodes = nodes_by_az[az]
        if len(nodes) < COPIES_PER_AZ:
            raise ConfigError(f"AZ {az} has {len(nodes)} storage nodes; need {COPIES_PER_AZ}")
        for k in range(COPIES_PER_AZ):
            node = nodes[(pg * COPIES_PER_AZ + k) % len(nodes)]
            placements.append(
                SegmentPlacement(SegmentId(segment_id(volume, pg, slot) + _gen(generation)), node, az)
            )
            slot += 1
    return PgLayout(PgIndex(pg), tuple(placements))


def _gen(generation: int) -> str:
    return f".g{generation}" if generation else ""
