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
