"""CPU per commit of the storage write path's parts, in one process, without the network.

``bench/storage.py`` measures the whole path with real processes; on a shared 2-core machine
its rates move with the load. This one measures CPU seconds (``time.process_time``) of each
part alone, on the same shape of work: a volume of ``--pgs`` PGs, flushes of 8 commit groups
of 4 page writes (~110-byte PATCH deltas), as with 8 committers.

- ``writer_us``: ``WriterCore.append_group`` (deltas, records) and ``flush``, encoding the
  batches as the volume client does (one record block per PG) and packing one ``write_many``
  body per node, and the acknowledgements;
- ``node_write_us``: one storage node's ``write_many`` handler for the batches of its
  segments (msgpack decoding included), its redo log append and the group-commit fdatasync
  (a real ``FileRedoLog`` in a temporary directory);
- ``node_coalesce_us``: that node coalescing every record received into its LMDB page store
  and garbage-collecting the replaced versions (what its background work must do for each
  commit, sooner or later).

All per commit. ``python bench/storage_cpu.py [--flushes 600] [--pgs 4]``; the last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

from borealis.storage import wire
from borealis.storage.messages import WriteBatch
from borealis.storage.node import StorageNode
from borealis.storage.record import encode_block
from borealis.types import LSN, Epoch, NodeId, PageNo, PgIndex, SegmentId, VolumeId
from borealis.volume.geometry import Geometry, place_pg
from borealis.volume.writer import PageWrite, WriterCore

sys.path.insert(0, str(Path(__file__).parent))
from storage import Pages  # the same page changes as bench/storage.py

PG_PAGES = 1024
COMMITS_PER_FLUSH = 8
PAGES_PER_COMMIT = 4
FILL_GROUP_PAGES = 16
NODES_BY_AZ = {"az1": [NodeId("n1"), NodeId("n2")], "az2": [NodeId("n3"), NodeId("n4")],
               "az3": [NodeId("n5"), NodeId("n6")]}
MEASURED_NODE = NodeId("n1")


def encode_flush(batches: list[WriteBatch], node_of: dict[SegmentId, NodeId]
                 ) -> dict[NodeId, list[Any]]:
    """The ``write_many`` bodies of a flush by node, encoded as the volume client does."""
    blocks: dict[int, bytes] = {}
    bodies: dict[NodeId, list[Any]] = {}
    for batch in batches:
        block = blocks.get(id(batch.records))
        if block is None:
            block = blocks[id(batch.records)] = encode_block(batch.records)
        bodies.setdefault(node_of[batch.segment], []).append(
            wire.encode_write_batch(batch, block))
    return bodies


async def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    geometry = Geometry(VolumeId("cpu"), page_size=4096, pg_bytes=PG_PAGES * 4096)
    layouts = {PgIndex(pg): place_pg(geometry.volume, pg, NODES_BY_AZ)
               for pg in range(args.pgs)}
    node_of = {p.segment: p.node for layout in layouts.values() for p in layout.segments}
    core = WriterCore(geometry, layouts, writer_id="cpu", epoch=Epoch(1), start=LSN(0))
    rng = random.Random(args.seed)
    page_count = args.pgs * PG_PAGES
    pages = Pages(page_count, rng)

    node = StorageNode(MEASURED_NODE, "az1", data_dir)
    for pg, layout in layouts.items():
        peers = tuple((p.segment, "127.0.0.1:1") for p in layout.segments)
        for p in layout.segments:
            if p.node == MEASURED_NODE:
                created = node._create(wire.CreateSegment(
                    p.segment, geometry.volume, pg, geometry.first_page(pg), PG_PAGES, peers))
                node._sync_now()
                await created

    async def deliver(batches: list[WriteBatch]) -> None:
        body = msgpack.packb(encode_flush(batches, node_of)[MEASURED_NODE])
        reply = node.dispatch(wire.WRITE_MANY, msgpack.unpackb(body), "bench")
        node._sync_now()
        msgpack.packb(await reply)
        for batch in batches:
            core.on_ack(batch.segment, batch.through, batch.epoch)

    for first in range(0, page_count, FILL_GROUP_PAGES):
        core.append_group([PageWrite(PageNo(p), pages.images[p])
                           for p in range(first, first + FILL_GROUP_PAGES)])
        await deliver(core.flush())
    for hosted in node.hosted.values():  # materialise everything, as after a long quiet time
        hosted.segment.known_vdl = hosted.segment.min_read_point = core.vdl
    node._coalesce(list(node.hosted.items()))
    while any(h.segment.coalesced < h.synced_scl for h in node.hosted.values()):
        node._coalesce(list(node.hosted.items()))

    commits = args.flushes * COMMITS_PER_FLUSH
    changes = [[pages.change(p) for p in rng.sample(range(page_count), PAGES_PER_COMMIT)]
               for _ in range(commits)]
    flushes: list[list[WriteBatch]] = []
    started = time.process_time()
    for f in range(args.flushes):
        for k in range(COMMITS_PER_FLUSH):
            core.append_group(changes[f * COMMITS_PER_FLUSH + k])
        batches = core.flush()
        for items in encode_flush(batches, node_of).values():
            msgpack.packb([wire.WRITE_MANY, f, items], use_bin_type=True)
        for batch in batches:
            core.on_ack(batch.segment, batch.through, batch.epoch)
        flushes.append(batches)
    writer_s = time.process_time() - started

    node_bodies = [msgpack.packb(encode_flush(b, node_of)[MEASURED_NODE], use_bin_type=True)
                   for b in flushes]
    started = time.process_time()
    for packed in node_bodies:
        reply = node.dispatch(wire.WRITE_MANY, msgpack.unpackb(packed), "bench")
        node._sync_now()
        msgpack.packb(await reply, use_bin_type=True)
    node_write_s = time.process_time() - started

    for hosted in node.hosted.values():
        hosted.segment.known_vdl = hosted.segment.min_read_point = core.vdl
    hosted_now = list(node.hosted.items())
    started = time.process_time()
    passes = 0
    while any(h.segment.coalesced < h.synced_scl for _, h in hosted_now):
        node._coalesce(hosted_now)
        passes += 1
    for _, hosted in hosted_now:
        hosted.segment.gc()
    coalesce_s = time.process_time() - started
    await node.close()
    return {
        "writer_us": round(writer_s / commits * 1e6, 1),
        "node_write_us": round(node_write_s / commits * 1e6, 1),
        "node_coalesce_us": round(coalesce_s / commits * 1e6, 1),
        "commits": commits,
        "records_per_commit": PAGES_PER_COMMIT,
        "coalesce_passes": passes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flushes", type=int, default=600, help="flushes of 8 commits")
    parser.add_argument("--pgs", type=int, default=4, help="protection groups (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="borealis-cpu-"))
    try:
        result = asyncio.run(run(args, data_dir))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"per commit: writer {result['writer_us']} us, one node's write handler "
          f"{result['node_write_us']} us, its coalescing {result['node_coalesce_us']} us")
    print(json.dumps({"bench": "storage_cpu", **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
