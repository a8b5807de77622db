"""The cluster the real-client tests share (started by ``conftest.cluster``), as its own
module: test modules import it by a name no other test directory uses (two directories'
``conftest`` modules would shadow each other in one pytest run)."""

from __future__ import annotations

from dataclasses import dataclass

from borealis.control.processes import InstanceProcess, NodeProcess


@dataclass
class Cluster:
    nodes: list[NodeProcess]
    writer: InstanceProcess
    reader: InstanceProcess

    @property
    def writer_address(self) -> tuple[str, int]:
        host, _, port = self.writer.ready["pg_address"].rpartition(":")
        return host, int(port)

    @property
    def reader_address(self) -> tuple[str, int]:
        host, _, port = self.reader.ready["pg_address"].rpartition(":")
        return host, int(port)

    def dsn(self, *, reader: bool = False, **extra: str) -> str:
        host, port = self.reader_address if reader else self.writer_address
        options = {"host": host, "port": str(port), "user": "postgres",
                   "dbname": "postgres", "sslmode": "disable", "connect_timeout": "10",
                   **extra}
        return " ".join(f"{k}={v}" for k, v in options.items())

    def url(self, driver: str, *, reader: bool = False) -> str:
        host, port = self.reader_address if reader else self.writer_address
        return f"postgresql+{driver}://postgres@{host}:{port}/postgres"
