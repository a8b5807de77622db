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

from borealis.control.processes import NodeProcess, storage_fleet


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
