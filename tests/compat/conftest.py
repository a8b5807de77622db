"""Fixtures for the real-client tests: one Borealis cluster per test module.

``cluster`` starts six storage nodes (two per AZ), a writer and a reader, each instance
serving the PostgreSQL protocol on a free loopback port, and stops every process by PID
when the module's tests are done. Tests share it, so each uses its own table names.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest
from compat_cluster import Cluster

from borealis.control.processes import InstanceProcess, storage_fleet
from borealis.types import VolumeId
from borealis.volume.geometry import Geometry
from borealis.volume.spec import VolumeSpec


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    nodes = storage_fleet(root)
    made: list[InstanceProcess] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            for future in [pool.submit(n.start) for n in nodes]:
                future.result()
        spec = root / "volume.json"
        VolumeSpec(Geometry(VolumeId("compat")), {n.node: n.info() for n in nodes}).save(spec)
        writer = InstanceProcess("writer", "az1", spec, root / "instances" / "writer",
                                 root / "logs" / "writer.log",
                                 extra_args=("--pg-listen", "127.0.0.1:0"))
        made.append(writer)
        writer.start()
        reader = InstanceProcess("reader", "az2", spec, root / "instances" / "reader",
                                 root / "logs" / "reader.log", role="reader",
                                 extra_args=("--writer", writer.address,
                                             "--pg-listen", "127.0.0.1:0"))
        made.append(reader)
        reader.start()
        yield Cluster(nodes, writer, reader)
    finally:
        for p in made:
            p.resume()
            p.stop()
        for n in nodes:
            n.resume()
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.stop(), nodes))
        for p in made:
            assert not p.alive(), f"{p.instance_id} (pid {p.pid}) still running"
        for n in nodes:
            assert not n.alive(), f"{n.node} (pid {n.pid}) still running"
