"""Power loss on real storage-node processes: kill -9, then ``lose_unsynced`` on their files.

The nodes run with ``BOREALIS_CRASH_MODEL=lose-unsynced`` (``storage/crashmodel.py``), so
each records what its syncs made durable and ``lose_unsynced`` can roll it back to exactly
that. What a node acknowledged was synced first: a node rolled back must still hold it, from
its own disk alone, and the volume must read back every acknowledged commit.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from storage_harness import Load, Model, Probe, eventually, log_problems, make_spec, node_named
from storage_harness import run as run_bounded

from borealis.cli.storage_node import CHECKPOINT_MIB_ENV
from borealis.control.processes import NodeProcess
from borealis.storage.crashmodel import CRASH_MODEL_ENV, LOSE_UNSYNCED, lose_unsynced
from borealis.types import LSN
from borealis.volume.client import VolumeClient

CONVERGE_TIMEOUT_S = 30.0


@pytest.fixture(autouse=True)
def crash_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before ``storage_nodes`` starts them: the nodes inherit the environment. Checkpoints
    every 0.2 MiB of redo, so that the power losses meet logs that were trimmed."""
    monkeypatch.setenv(CRASH_MODEL_ENV, LOSE_UNSYNCED)
    monkeypatch.setenv(CHECKPOINT_MIB_ENV, "0.2")


async def open_writer(nodes: list[NodeProcess], tmp_path: Path) -> VolumeClient:
    client = VolumeClient(make_spec(nodes), writer_id="w1", spec_path=tmp_path / "volume.json")
    await client.open_writer()
    return client


async def _true(value: bool) -> bool:
    return value


async def _checkpointed(probe: Probe, node: NodeProcess) -> bool:
    return bool((await probe.status(node))["redo"]["first_seq"] > 1)


def power_loss(node: NodeProcess, seed: int) -> dict[str, Any]:
    node.kill()
    assert not node.alive()
    return lose_unsynced(node.data_dir, random.Random(seed), torn_probability=1.0)


def test_a_node_rolled_back_to_its_syncs_still_holds_what_it_acknowledged(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    victim = node_named(storage_nodes, "az3-n2")
    others = [n for n in storage_nodes if n is not victim]

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            assert client.core is not None
            model = Model()
            load = Load(client, model)
            load.start()
            await eventually(lambda: _true(load.acked >= 300), timeout_s=20,
                             what="300 commits before the power loss")
            segments = probe.segments_on(victim)
            await eventually(lambda: _checkpointed(probe, victim), timeout_s=20,
                             what="a trimmed log on the victim")
            report = await asyncio.to_thread(power_loss, victim, 7)
            acked = {s: client.core.tracker.acked[s] for s in segments}
            assert min(acked.values()) > 0
            assert report["pages"] == {**report["pages"], "restored": True}
            await load.stop()
            # No peer can help it: what it serves now comes from its own disk.
            for n in others:
                n.pause()
            try:
                await asyncio.to_thread(victim.start)
                status = await probe.status(victim)
            finally:
                for n in others:
                    n.resume()
            lost = {s: (acked[s], status["segments"][s]["scl"]) for s in segments
                    if status["segments"][s]["scl"] < acked[s]}
            assert not lost, f"acknowledged SCL lost by a power loss ({report}): {lost}"
            target = client.core.allocated
            assert client.vdl == target
            await eventually(lambda: probe.all_at(storage_nodes, LSN(target)),
                             timeout_s=CONVERGE_TIMEOUT_S, what=f"every segment at {target}")
            await probe.every_segment_matches(model, client.vdl, only=segments)
        finally:
            await probe.close()
            await client.close()
        assert log_problems(storage_nodes) == []

    run_bounded(main())


def test_a_whole_az_loses_power_while_committing(storage_nodes: list[NodeProcess],
                                                 tmp_path: Path) -> None:
    # Aurora SIGMOD 2017 §2.1: an AZ holds 2 of 6 copies; the 4/6 write quorum survives it.
    victims = [node_named(storage_nodes, "az1-n1"), node_named(storage_nodes, "az1-n2")]

    async def main() -> None:
        client = await open_writer(storage_nodes, tmp_path)
        probe = Probe(client.spec)
        try:
            assert client.core is not None
            model = Model()
            load = Load(client, model)
            load.start()
            await eventually(lambda: _true(load.acked >= 200), timeout_s=20,
                             what="200 commits before the power loss")
            for n in victims:   # one after the other, within milliseconds
                n.kill()
            for seed, n in enumerate(victims):
                lose_unsynced(n.data_dir, random.Random(seed), torn_probability=1.0)
            at_loss = load.acked
            await eventually(lambda: _true(load.acked >= at_loss + 100), timeout_s=20,
                             what="100 commits with the AZ down")
            await asyncio.gather(*(asyncio.to_thread(n.start) for n in victims))
            await asyncio.sleep(1.0)   # writes go on while they catch up
            await load.stop()
            assert not load.errors, load.errors
            target = client.core.allocated
            assert client.vdl == target
            await eventually(lambda: probe.all_at(storage_nodes, LSN(target)),
                             timeout_s=CONVERGE_TIMEOUT_S, what=f"every segment at {target}")
            assert await probe.every_segment_matches(model, client.vdl) == 6 * len(model.acked)
        finally:
            await probe.close()
            await client.close()
        assert log_problems(storage_nodes) == []

    run_bounded(main())
