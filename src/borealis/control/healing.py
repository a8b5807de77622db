"""Storage healing: which storage nodes are down, and rebuilding their segments elsewhere.

Part of the control plane (``control.plane.ControlPlane`` mixes it in): every
``NODE_CHECK_S`` each node is asked ``node_status``; one that does not answer is *down*;
after ``repair_after_s`` each of its segments is rebuilt on a spare node of the same AZ
(``choose_spare``: a node holding no segment of that PG) by the writer's
``replace_segment``, a membership change during which commits need a quorum in both the
old and the new set, so they go on. A node that holds nothing any more leaves the volume
spec (``remove_storage_node``), so that no new PG is placed on it while it is down; when
it answers again it is offered to the writer as a spare. The decisions are pure functions
(``choose_spare``, ``segments_on``), tested without processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Set
from typing import TYPE_CHECKING, Any

from borealis.errors import BorealisError, ConfigError
from borealis.types import WRITE_QUORUM, NodeId
from borealis.volume.spec import VolumeSpec

if TYPE_CHECKING:
    from pathlib import Path

    from borealis.control.clusterspec import ClusterSpec
    from borealis.control.netns import Network
    from borealis.control.orchestrator import Managed
    from borealis.control.processes import NodeProcess
    from borealis.transport.pool import ConnectionPool

log = logging.getLogger(__name__)

NODE_CHECK_S = 1.0
NODE_CHECK_TIMEOUT_S = 1.0
RPC_TIMEOUT_S = 10.0
REPLACE_TIMEOUT_S = 300.0


def choose_spare(spec: VolumeSpec, pg: int, az: str, down: set[str]) -> str | None:
    """A node of ``az`` that holds no segment of ``pg`` and is not down (lowest id)."""
    layout = spec.layouts[pg]  # type: ignore[index]
    holding = {p.node for p in layout.segments}
    spares = sorted(n.node for n in spec.nodes.values()
                    if n.az == az and n.node not in holding and n.node not in down)
    return spares[0] if spares else None


def segments_on(spec: VolumeSpec, node: str) -> list[tuple[int, str]]:
    """(pg, segment) of every segment placed on ``node``."""
    return sorted((int(layout.pg), str(p.segment)) for layout in spec.layouts.values()
                  for p in layout.segments if p.node == node)


def writable(spec: VolumeSpec, up: Set[str]) -> bool:
    """Whether every PG has a write quorum of segments on nodes in ``up``."""
    return all(sum(1 for p in layout.segments if p.node in up) >= WRITE_QUORUM
               for layout in spec.layouts.values())


class StorageHealing:
    """The storage half of the control plane's supervision (see the module docstring)."""

    spec: ClusterSpec
    pool: ConnectionPool
    lock: asyncio.Lock
    nodes: Mapping[str, NodeProcess]
    network: Network
    node_records: dict[str, Any]
    node_down_since: dict[str, float]
    node_status: dict[str, dict[str, Any]]
    repaired: set[str]
    repair_blocked: dict[str, str]
    _last_node_check: float

    if TYPE_CHECKING:  # provided by ControlPlane
        @property
        def volume_path(self) -> Path: ...

        def writer_id(self) -> str | None: ...

        def _managed_of(self, instance_id: str) -> Managed: ...

        def event(self, kind: str, message: str, **detail: Any) -> None: ...

    def storage_writable(self) -> bool:
        """A write quorum of every PG answered the last storage check (False before one)."""
        try:
            spec = VolumeSpec.load(self.volume_path)
        except ConfigError:
            return False
        return writable(spec, set(self.node_status))

    async def _check_storage(self) -> None:
        now = time.monotonic()
        if now - self._last_node_check < NODE_CHECK_S:
            return
        self._last_node_check = now

        async def check(node: NodeProcess) -> None:
            if not node.alive():
                self.node_status.pop(node.node, None)
                return
            try:
                rpc = await self.pool.get(node.address)
                self.node_status[node.node] = await rpc.call(
                    "node_status", None, timeout_s=NODE_CHECK_TIMEOUT_S)
            except (BorealisError, OSError, TimeoutError):
                self.node_status.pop(node.node, None)

        await asyncio.gather(*(check(n) for n in self.nodes.values()))
        for node_id in self.nodes:
            up = node_id in self.node_status
            if up:
                if node_id in self.node_down_since:
                    self.event("storage-node-up", f"storage node {node_id} answers again",
                               node=node_id)
                    if node_id in self.repaired:
                        await self._offer_as_spare(node_id)
                self.node_down_since.pop(node_id, None)
                self.repaired.discard(node_id)  # it may hold segments again later
                continue
            if node_id not in self.node_down_since:
                self.node_down_since[node_id] = now
                self.event("storage-node-down", f"storage node {node_id} is down; its "
                           f"segments are rebuilt on a spare after "
                           f"{self.spec.repair_after_s:.0f} s", node=node_id)
            elif (now - self.node_down_since[node_id] >= self.spec.repair_after_s
                  and node_id not in self.repaired):
                await self._repair(node_id)

    async def _offer_as_spare(self, node_id: str) -> None:
        """A repaired node is back: the writer may place segments on it again."""
        writer = self.writer_id()
        if writer is None:
            return
        r = self.node_records[node_id]
        try:
            rpc = await self.pool.get(self._managed_of(writer).control_address)
            await rpc.call("add_storage_node",
                           [r.id, r.az, f"{self.network.address(r.id)}:{r.port}"],
                           timeout_s=RPC_TIMEOUT_S)
        except BorealisError as exc:
            log.warning("storage node %s is back but not offered as a spare: %s", node_id, exc)

    async def _repair(self, node_id: str) -> None:
        writer = self.writer_id()
        if writer is None or not self._managed_of(writer).healthy:
            return
        spec = VolumeSpec.load(self.volume_path)
        todo = segments_on(spec, node_id)
        if not todo:
            self.repaired.add(node_id)
            return
        az = self.node_records[node_id].az
        down = set(self.node_down_since)
        async with self.lock:
            rpc = await self.pool.get(self._managed_of(writer).control_address)
            for pg, segment in todo:
                spare = choose_spare(spec, pg, az, down)
                if spare is None:
                    reason = (f"no spare storage node in {az} for PG {pg}: add one with "
                              f"`borealis storage add-node --az {az}`")
                    if self.repair_blocked.get(node_id) != reason:
                        self.repair_blocked[node_id] = reason
                        self.event("repair-blocked", reason, node=node_id, pg=pg)
                    return
                info = spec.nodes[NodeId(spare)]
                started = time.monotonic()
                self.event("repair-started", f"rebuilding segment {segment} of PG {pg} "
                           f"(on {node_id}, down) on {spare}", node=node_id, pg=pg,
                           spare=spare)
                try:
                    await rpc.call("add_storage_node", [info.node, info.az, info.address],
                                   timeout_s=RPC_TIMEOUT_S)
                    new_id = await rpc.call("replace_segment", [pg, segment, spare],
                                            timeout_s=REPLACE_TIMEOUT_S)
                except BorealisError as exc:
                    # The writer aborted the change (the PG is back on its old set): the
                    # next check tries again.
                    self.event("repair-failed", f"rebuilding {segment} of PG {pg} on {spare} "
                               f"failed: {exc}; trying again", node=node_id, pg=pg)
                    return
                self.event("repair-done", f"PG {pg}: segment {new_id} on {spare} replaces "
                           f"{segment} in {time.monotonic() - started:.1f} s; 6/6 again",
                           node=node_id, pg=pg, spare=spare, segment=new_id)
                spec = VolumeSpec.load(self.volume_path)
        # It holds nothing now: no new PG may be placed on it while it is down.
        try:
            await rpc.call("remove_storage_node", node_id, timeout_s=RPC_TIMEOUT_S)
        except BorealisError as exc:  # the repair stands; only new PGs could land on it
            log.warning("storage node %s repaired but still in the volume spec: %s",
                        node_id, exc)
        self.repaired.add(node_id)
        self.repair_blocked.pop(node_id, None)

