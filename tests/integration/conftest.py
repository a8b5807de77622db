"""Fixtures for integration tests that run real storage-node processes on 127.0.0.1.

``storage_nodes`` starts the six nodes of a local fleet (two per AZ) in their own data
directories under ``tmp_path`` and stops every one of them by PID when the test ends, whatever
state the test left it in (killed, paused, stopped). Helpers live in ``storage_harness.py``.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_harness import make_spec

from borealis.control.processes import InstanceProcess, NodeProcess, storage_fleet


@pytest.fixture
def storage_nodes(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    """Six storage nodes (az1-n1 .. az3-n2), started in parallel; all stopped at the end."""
    nodes = storage_fleet(tmp_path)
    try:
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            for future in [pool.submit(n.start) for n in nodes]:
                future.result()
        yield nodes
    finally:
        for n in nodes:
            n.resume()  # a SIGSTOPped node would not act on SIGTERM
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.stop(), nodes))
        for n in nodes:
            assert not n.alive(), f"{n.node} (pid {n.pid}) still running"


@pytest.fixture
def volume(storage_nodes: list[NodeProcess], tmp_path: Path) -> Path:
    """The spec file of a volume on the six storage nodes (for instance processes)."""
    path = tmp_path / "volume.json"
    make_spec(storage_nodes).save(path)
    return path


@pytest.fixture
def instances(tmp_path: Path, volume: Path) -> Iterator[list[InstanceProcess]]:
    """Instance processes a test starts (``start_instance``); every one is stopped by PID
    at the end, whatever state the test left it in."""
    made: list[InstanceProcess] = []
    try:
        yield made
    finally:
        for p in made:
            p.resume()
            p.stop()
        for p in made:
            assert not p.alive(), f"{p.instance_id} (pid {p.pid}) still running"
