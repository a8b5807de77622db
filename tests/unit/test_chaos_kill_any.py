"""kill-any's choice of a victim: from the cluster's view, by role, seeded, and never a
process that is not (any more) the one the view names. The kill itself runs in chaos runs
(`python -m borealis.chaos --nemesis kill-any`, docs/reliability.md)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from borealis.chaos.clients import Recorder
from borealis.chaos.nemesis import KillAny
from borealis.chaos.nemesis_base import NemesisContext

VIEW: dict[str, Any] = {
    "instances": [
        {"id": "i1", "role": "writer", "state": "available", "pid": 101},
        {"id": "i2", "role": "reader", "state": "available", "pid": 102},
        {"id": "i3", "role": "reader", "state": "unavailable", "pid": None},
    ],
    "storage_nodes": [
        {"id": "az1-n1", "state": "up", "pid": 201},
        {"id": "az2-n1", "state": "down", "pid": None},
    ],
    "router": {"pid": 301},
    "control_plane": {"pid": 401},
}


class FakeCluster:
    data_dir = Path("/nonexistent/data")

    def __init__(self) -> None:
        self.alive = {101: "i1", 102: "i2", 201: "az1-n1"}

    def status(self) -> dict[str, Any]:
        return VIEW

    def instance_owned(self, pid: int, instance_id: str) -> bool:
        return self.alive.get(pid) == instance_id

    def node_owned(self, pid: int, node_id: str) -> bool:
        return self.alive.get(pid) == node_id


def context(cluster: FakeCluster, seed: int = 1) -> NemesisContext:
    return NemesisContext(cluster, Recorder(), random.Random(seed))


def test_each_role_picks_a_live_process_of_that_role() -> None:
    cluster = FakeCluster()
    ctx = context(cluster)
    picks = {role: KillAny.victim(ctx, role) for role in KillAny.ROLES}
    assert {role: (v[0], v[1]) for role, v in picks.items() if v} == {
        "writer": ("i1", 101), "reader": ("i2", 102), "storage": ("az1-n1", 201),
        "router": ("router", 301), "control-plane": ("control-plane", 401)}
    writer, reader, storage = picks["writer"], picks["reader"], picks["storage"]
    assert writer and reader and storage
    assert writer[2]() and reader[2]() and storage[2]()
    # A PID that is no longer that process is never killed.
    cluster.alive[101] = "something else"
    assert not writer[2]()
    # The router and control plane are checked against /proc: these PIDs are not theirs.
    router, plane = picks["router"], picks["control-plane"]
    assert router and plane and not router[2]() and not plane[2]()


def test_no_victim_when_none_of_that_role_runs() -> None:
    view = {**VIEW, "instances": [i for i in VIEW["instances"] if i["role"] != "reader"],
            "router": {"pid": None}}
    cluster = FakeCluster()
    cluster.status = lambda: view  # type: ignore[method-assign]
    ctx = context(cluster)
    assert KillAny.victim(ctx, "reader") is None
    assert KillAny.victim(ctx, "router") is None
