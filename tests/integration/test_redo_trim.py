"""Redo-log trimming on real storage-node processes.

The nodes checkpoint every 0.1 MiB of redo (``BOREALIS_CHECKPOINT_MIB``, 64 MiB by default),
so a short load makes each of them trim its log several times. Then every node is killed
with -9 at once and started again from its trimmed log and page store alone: a new writer
must recover every acknowledged commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest
from storage_harness import Load, Model, Probe, eventually, log_problems, make_spec, run

from borealis.cli.storage_node import CHECKPOINT_MIB_ENV
from borealis.control.processes import NodeProcess
from borealis.storage.redolog import REDO_DIR_NAME
from borealis.volume.client import VolumeClient
from borealis.volume.spec import VolumeSpec

CHECKPOINTS_MIN = 3


@pytest.fixture(autouse=True)
def frequent_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before ``storage_nodes`` starts them: the nodes inherit the environment."""
    monkeypatch.setenv(CHECKPOINT_MIB_ENV, "0.1")


def redo_bytes_on_disk(node: NodeProcess) -> int:
    return sum(path.stat().st_size for path in (node.data_dir / REDO_DIR_NAME).iterdir())


def test_every_node_trims_its_log_and_a_restart_of_all_six_loses_no_commit(
        storage_nodes: list[NodeProcess], tmp_path: Path) -> None:
    async def main() -> None:
        spec_path = tmp_path / "volume.json"
        old = VolumeClient(make_spec(storage_nodes), writer_id="w1", spec_path=spec_path)
        await old.open_writer()
        probe = Probe(old.spec)
        new: VolumeClient | None = None
        try:
            model = Model()
            load = Load(old, model)
            load.start()

            async def every_node_checkpointed() -> bool:
                statuses = await asyncio.gather(*(probe.status(n) for n in storage_nodes))
                return all(s["redo"]["checkpoints"] >= CHECKPOINTS_MIN for s in statuses)

            await eventually(every_node_checkpointed, timeout_s=60,
                             what=f"{CHECKPOINTS_MIN} checkpoints on every node")
            await load.crash()  # commits in flight are abandoned
            assert not load.errors, load.errors
            acked_max = max(model.commit_lsns)
            for node in storage_nodes:
                redo = (await probe.status(node))["redo"]
                assert redo["first_seq"] > 1, f"{node.node}: the log was never trimmed"
                on_disk = redo_bytes_on_disk(node)
                assert on_disk < redo["bytes_logged"] / 2, (
                    f"{node.node}: {on_disk} bytes of redo on disk after logging "
                    f"{redo['bytes_logged']}: the trims freed too little")

            # Every node at once, then every node from its own files.
            with concurrent.futures.ThreadPoolExecutor(len(storage_nodes)) as pool:
                list(pool.map(lambda n: n.kill(), storage_nodes))
                list(pool.map(lambda n: n.start(), storage_nodes))

            new = VolumeClient(VolumeSpec.load(spec_path), writer_id="w2", spec_path=spec_path)
            recovered = await new.open_writer()
            assert recovered.vdl >= acked_max
            for page in sorted(set(model.acked) | set(model.maybe)):
                got = await new.read_page(page)
                assert got.image in model.allowed(page), f"page {page}: an image no commit made"
        finally:
            if new is not None:
                await new.close()
            await old.close()
            await probe.close()
        assert log_problems(storage_nodes) == []

    run(main())
