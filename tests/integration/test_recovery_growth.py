"""Recovery after the volume grew: every truncation in force reaches every PG.

Regression for bench/engine.py at 1 GB: a volume that grew after a recovery could not be
recovered again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from storage_harness import PG_PAGES, PGS, make_spec, run

from borealis.control.processes import NodeProcess
from borealis.types import PageNo
from borealis.volume.client import VolumeClient
from borealis.volume.spec import VolumeSpec
from borealis.volume.writer import PageWrite


async def coalesced_points(client: VolumeClient) -> list[int]:
    """Every segment's coalesced point, from its node's status."""
    points: list[int] = []
    for info in client.spec.nodes.values():
        rpc = await client.pool.get(info.address)
        status = await rpc.call("node_status", None, timeout_s=5)
        points += [seg["coalesced"] for seg in status["segments"].values()]
    return points


def test_a_volume_that_grew_after_a_recovery_recovers_again(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Regression (bench/engine.py, 1 GB): the first writer's truncation lives only on the
    PGs that existed then. The next writer grew the volume; the third recovery adopted the
    first truncation onto the new PGs' segments, which had materialised past its start
    and refused it as a protocol breach: recovery stuck in its adopt phase for good."""
    spec_path = tmp_path / "volume.json"
    make_spec(storage_nodes).save(spec_path)
    lal = 64  # small truncation ranges, so that materialising passes them quickly

    async def writer(name: str, pages: range) -> None:
        client = VolumeClient(VolumeSpec.load(spec_path), writer_id=name, spec_path=spec_path,
                              lal=lal)
        await asyncio.wait_for(client.open_writer(), 30)
        for page in pages:
            await client.commit([PageWrite(PageNo(page), bytes([page % 251]) * 4096)])
        # Let every segment materialise past the first truncation's start (0) before the
        # next recovery: that is what made the adoption of it look like a breach.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            coalesced = await coalesced_points(client)
            if coalesced and min(coalesced) > 0:
                break
            await asyncio.sleep(0.05)
        await client.close()

    async def main() -> None:
        await writer("w1", range(0, 8))  # PG 0 only: its truncation is (0, 64] at epoch 1
        await writer("w2", range(8, PGS * PG_PAGES, 7))  # grows to every PG
        client = VolumeClient(VolumeSpec.load(spec_path), writer_id="w3", spec_path=spec_path,
                              lal=lal)
        await asyncio.wait_for(client.open_writer(), 30)
        for page in (0, range(8, PGS * PG_PAGES, 7)[-1]):
            reply = await client.read_page(page)
            assert reply.image == bytes([page % 251]) * 4096
        await client.close()

    run(main())


def test_a_second_recovery_with_nothing_committed_keeps_every_segment_writable(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    """Regression (found by `borealis up`, `down`, `up` with nothing written): the first
    writer commits nothing, so VDL stays 0 and segments materialise over its truncated
    range (0, LAL]. The second recovery truncates from VDL 0 again, legitimately; segments
    that had materialised past 0 refused every batch carrying that truncation as a protocol
    breach, and the PG ran on 4 of its 6 segments for good."""
    spec_path = tmp_path / "volume.json"
    make_spec(storage_nodes).save(spec_path)
    lal = 64

    async def main() -> None:
        first = VolumeClient(VolumeSpec.load(spec_path), writer_id="w1", spec_path=spec_path,
                             lal=lal)
        await asyncio.wait_for(first.open_writer(), 30)
        # A read tells the segment it reaches the writer's VDL, the recovery's start (the
        # truncated range is durable as void): that segment materialises over it.
        deadline = time.monotonic() + 20
        while max(await coalesced_points(first)) == 0:
            assert time.monotonic() < deadline, "no segment materialised the truncation"
            await first.read_page(0)
            await asyncio.sleep(0.05)
        await first.close()
        second = VolumeClient(VolumeSpec.load(spec_path), writer_id="w2", spec_path=spec_path,
                              lal=lal)
        await asyncio.wait_for(second.open_writer(), 30)
        for page in range(4):
            await second.commit([PageWrite(PageNo(page), bytes([page + 1]) * 4096)])
        core = second.core
        assert core is not None
        deadline = time.monotonic() + 10
        while not all(core.tracker.acked.get(s, 0) >= core.vdl for s in core.segment_pg):
            assert time.monotonic() < deadline, {
                s: core.tracker.acked.get(s, 0) for s in core.segment_pg}
            await asyncio.sleep(0.05)
        await second.close()

    run(main())
