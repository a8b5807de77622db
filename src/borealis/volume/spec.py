"""The volume's metadata: geometry, storage nodes and the placement of every PG.

Until the control plane exists (a later issue) it lives in a JSON file beside the cluster,
written atomically (temp file, fsync, rename) before any write reaches a new PG, so that a
recovering writer always knows every PG that may hold data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borealis.errors import ConfigError
from borealis.types import NodeId, PgIndex, SegmentId, VolumeId
from borealis.volume.geometry import Geometry, PgLayout, SegmentPlacement


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node: NodeId
    az: str
    address: str


@dataclass
class VolumeSpec:
    geometry: Geometry
    nodes: dict[NodeId, NodeInfo]
    layouts: dict[PgIndex, PgLayout] = field(default_factory=dict)
    epoch: int = 0

    def nodes_by_az(self) -> dict[str, list[NodeId]]:
        out: dict[str, list[NodeId]] = {}
        for info in sorted(self.nodes.values(), key=lambda n: n.node):
            out.setdefault(info.az, []).append(info.node)
        return out

    def address_of(self, segment: SegmentId) -> str:
        for layout in self.layouts.values():
            for p in layout.segments:
                if p.segment == segment:
                    return self.nodes[p.node].address
        raise ConfigError(f"segment {segment} is not in the volume spec")

    def to_json(self) -> dict[str, Any]:
        g = self.geometry
        return {
            "volume": g.volume, "page_size": g.page_size, "pg_bytes": g.pg_bytes,
            "volume_bytes_max": g.volume_bytes_max, "epoch": self.epoch,
            "nodes": [[n.node, n.az, n.address] for n in self.nodes.values()],
            "pgs": {
                str(pg): {"membership_epoch": layout.membership_epoch,
                          "segments": [[p.segment, p.node, p.az] for p in layout.segments]}
                for pg, layout in sorted(self.layouts.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VolumeSpec:
        try:
            geometry = Geometry(
                VolumeId(data["volume"]), page_size=int(data["page_size"]),
                pg_bytes=int(data["pg_bytes"]), volume_bytes_max=int(data["volume_bytes_max"]),
            )
            nodes = {NodeId(n): NodeInfo(NodeId(n), az, addr) for n, az, addr in data["nodes"]}
            layouts = {
                PgIndex(int(pg)): PgLayout(
                    PgIndex(int(pg)),
                    tuple(SegmentPlacement(SegmentId(s), NodeId(n), az)
                          for s, n, az in entry["segments"]),
                    int(entry["membership_epoch"]),
                )
                for pg, entry in data["pgs"].items()
            }
            return cls(geometry, nodes, layouts, int(data.get("epoch", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed volume spec: {exc}") from exc

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, path: Path) -> VolumeSpec:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read volume spec {path}: {exc}") from exc
