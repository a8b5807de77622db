"""The local cluster's state file (``DATA_DIR/cluster.json``): which processes it runs.

Kept small and rewritten atomically. PIDs recorded here are only signalled after checking
that the process is still the storage node this cluster started (its command line names
this data dir), so that a reused PID is never killed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis.control.processes import NodeProcess, pid_alive, storage_fleet
from borealis.types import NodeId

STATE_FILE = "cluster.json"
SPEC_FILE = "volume.json"


@dataclass
class ClusterState:
    data_dir: Path
    nodes: list[NodeProcess]

    @property
    def path(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def spec_path(self) -> Path:
        return self.data_dir / SPEC_FILE

    @classmethod
    def load_or_new(cls, data_dir: Path) -> ClusterState:
        data_dir = data_dir.resolve()
        path = data_dir / STATE_FILE
        nodes = storage_fleet(data_dir)
        if path.exists():
            saved = {n["id"]: n for n in json.loads(path.read_text())["storage_nodes"]}
            for node in nodes:
                entry = saved.get(node.node)
                if entry is not None:
                    node.port = int(entry["port"])
                    node.address = entry.get("address", "")
                    node.pid = int(entry.get("pid") or 0)
        return cls(data_dir, nodes)

    def save(self) -> None:
        data: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "storage_nodes": [
                {"id": n.node, "az": n.az, "port": n.port, "address": n.address,
                 "pid": n.pid if self.is_ours(n) else 0, "data_dir": str(n.data_dir),
                 "log": str(n.log_path)}
                for n in self.nodes
            ],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    def is_ours(self, node: NodeProcess) -> bool:
        """The recorded PID is alive and is this cluster's storage node."""
        if not pid_alive(node.pid):
            return False
        try:
            cmdline = Path(f"/proc/{node.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"storage-node" in cmdline and os.fsencode(str(node.data_dir)) in cmdline

    def node(self, node_id: str) -> NodeProcess:
        for n in self.nodes:
            if n.node == NodeId(node_id):
                return n
        raise KeyError(node_id)
