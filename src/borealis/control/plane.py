"""The control plane: one process that builds, watches and repairs a local cluster.

``borealis up`` starts it (``borealis control-plane --data-dir DIR``, detached); it then:

1. **boots** what the cluster spec (``control.clusterspec``) and the coordination store
   say: the storage nodes, the volume spec (``DIR/volume.json``, shared with the
   instances), the writer, the readers (``--writer`` the writer's control address) and the
   router process serving the endpoints. Processes run in their own sessions, so a
   control plane that dies or restarts leaves them serving; a new one adopts them by the
   PIDs in the store after checking ``/proc/PID/cmdline`` names this data dir. Where they
   run is the spec's network mode (``control.netns``): all on 127.0.0.1, or each storage
   node and instance in a network namespace of its own, named by its address everywhere
   (volume spec, ``--writer``, health checks, the topology);
2. **watches**, every ``TICK_S``: the failover loop (``control.orchestrator``: health
   checks, ``failover.plan``, promotion) under ``self.lock``; then the supervision step:
   - an instance whose process died is started again as a *reader* of the current writer
     (the old writer after a failover returns this way); a writer still running but
     fenced (a newer writer took the volume) is stopped and restarted as a reader;
     readers following an old writer are re-pointed (``follow`` RPC);
   - a storage node that does not answer is *down*; after ``repair_after_s`` each of its
     segments is rebuilt on a spare node of the same AZ (``control.healing``, mixed in);
   - the volume growing by PGs (the writer places them) is recorded as an event;
3. **serves** the HTTP API (``control.api``) that the CLI is a thin client of, the topology
   the router long-polls, and the cluster's aggregated Prometheus metrics.

Everything that must survive a restart is in the coordination store (``control.store``):
``spec``, ``instances/ID``, ``nodes/ID``, ``endpoints/NAME``, ``events/SEQ``. Decisions
stay pure functions where they are more than bookkeeping (``failover.plan``,
``choose_spare``), tested without processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from borealis.control.clusterspec import ClusterSpec, InstanceSpec, check_instance
from borealis.control.failover import Policy, Role, candidates
from borealis.control.healing import (
    RPC_TIMEOUT_S,
    StorageHealing,
    segments_on,
)
from borealis.control.netns import LOOPBACK_ADDRESS, Network, network_for
from borealis.control.orchestrator import Managed, Orchestrator
from borealis.control.processes import InstanceProcess, NodeProcess, _Managed, pid_alive
from borealis.control.store import CoordinationStore
from borealis.errors import BadRequestError, BorealisError, ConfigError
from borealis.transport.pool import ConnectionPool
from borealis.types import NodeId, VolumeId
from borealis.volume.geometry import Geometry
from borealis.volume.spec import NodeInfo, VolumeSpec

log = logging.getLogger(__name__)

TICK_S = 0.2
EVENTS_MAX = 10_000
RESTART_BACKOFF_S = 5.0
BUILTIN_ENDPOINTS = ("writer", "reader")
CUSTOM_KINDS = ("reader", "any")
"""Custom endpoint types, as Aurora names them: READER (its members that are readers) and
ANY (its members, whatever their role)."""


class ConflictingRequest(BadRequestError):
    """The request contradicts the cluster's state (HTTP 409)."""


# --- records kept in the store -------------------------------------------------------------


@dataclass
class NodeRecord:
    id: str
    az: str
    port: int = 0
    metrics_port: int = 0
    pid: int = 0


@dataclass
class InstanceRecord:
    id: str
    az: str
    promotion_tier: int = 1
    role: str = "reader"
    port: int = 0          # control interface
    pg_port: int = 0
    metrics_port: int = 0
    pid: int = 0


@dataclass
class EndpointRecord:
    name: str
    kind: str              # writer, reader, any, custom-reader (router.proxy.EndpointKind)
    port: int = 0
    members: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


# --- processes -------------------------------------------------------------------------------


@dataclass
class ClusterNode(NodeProcess):
    metrics_port: int = 0

    def argv(self) -> list[str]:
        return [*super().argv(), "--metrics-listen", f"{self.host}:{self.metrics_port}"]


@dataclass
class RouterProcess(_Managed):
    control_url: str = ""
    data_dir: Path = Path()
    log_path: Path = Path()
    port: int = 0
    pid: int = 0
    address: str = ""
    popen: Any = None
    metrics_port: int = 0
    host: str = LOOPBACK_ADDRESS   # the router stays in the root namespace, by the clients
    netns: str = ""

    @property
    def label(self) -> str:
        return "router"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "borealis", "router", "--control", self.control_url,
                "--ready-file", str(self.ready_file),
                "--metrics-listen", f"{self.host}:{self.metrics_port}"]


def owned(pid: int, *markers: str) -> bool:
    """The PID is alive and its command line holds every marker (this cluster's process)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return all(os.fsencode(m) in cmdline for m in markers)


def _port(address: Any) -> int:
    """The port of a "host:port" from a ready file (0 when absent)."""
    return int(str(address).rpartition(":")[2]) if address else 0


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# --- the control plane ----------------------------------------------------------------------


class ControlPlane(StorageHealing):
    def __init__(self, data_dir: Path, store: CoordinationStore, spec: ClusterSpec) -> None:
        self.data_dir = data_dir.resolve()
        self.store = store
        self.spec = spec
        self.state = "starting"
        self.lock = asyncio.Lock()   # one cluster change at a time (failover, add, remove)
        self.pool = ConnectionPool(name="control plane", caller="control-plane")
        self.api_address = ""
        self.nodes: dict[str, ClusterNode] = {}
        self.node_records: dict[str, NodeRecord] = {}
        self.node_down_since: dict[str, float] = {}
        self.node_status: dict[str, dict[str, Any]] = {}
        self.repaired: set[str] = set()
        self.repair_blocked: dict[str, str] = {}
        self.instances: dict[str, InstanceProcess] = {}
        self.instance_records: dict[str, InstanceRecord] = {}
        self.instance_status: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, EndpointRecord] = {}
        self.router = RouterProcess(data_dir=self.data_dir / "router",
                                    log_path=self.data_dir / "logs" / "router.log")
        self.orchestrator = Orchestrator([], Policy(spec.writer_dead_after_s,
                                                    spec.writer_hung_after_s,
                                                    spec.writer_stalled_after_s),
                                         storage_writable=self.storage_writable)
        self.network: Network = network_for(spec.network_mode, self.data_dir)
        self.revision = 0
        self._topology_seen: Any = None
        self._changed = asyncio.Condition()
        self._failovers_seen = 0
        self._pgs_seen = 0
        self._last_node_check = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self.boot_error: str | None = None
        self.stopping = False
        self._event_seq: int | None = None
        self._events_kept = 0
        self._restart_not_before: dict[str, float] = {}

    # -- paths --------------------------------------------------------------------------------
    @property
    def volume_path(self) -> Path:
        return self.data_dir / "volume.json"

    def writer_id(self) -> str | None:
        for r in self.instance_records.values():
            if r.role == "writer":
                return r.id
        return None

    # -- events -------------------------------------------------------------------------------
    def event(self, kind: str, message: str, **detail: Any) -> None:
        if self._event_seq is None:
            entries = self.store.range("events/")
            self._event_seq = int(entries[-1].key.split("/")[1]) if entries else 0
            self._events_kept = len(entries)
        self._event_seq += 1
        seq = self._event_seq
        entry = {"seq": seq, "at": time.time(), "kind": kind, "message": message, **detail}
        self.store.put(f"events/{seq:010d}", json.dumps(entry).encode())
        self._events_kept += 1
        log.info("event %s: %s", kind, message)
        if self._events_kept > EVENTS_MAX + EVENTS_MAX // 10:  # trimmed now and then
            old = self.store.range("events/")
            for stale in old[:max(0, len(old) - EVENTS_MAX)]:
                self.store.delete(stale.key)
            self._events_kept = min(len(old), EVENTS_MAX)

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        out = []
        for entry in self.store.range("events/"):
            if int(entry.key.split("/")[1]) > after:
                out.append(json.loads(entry.value))
        return out

    # -- the store ----------------------------------------------------------------------------
    def _save(self, prefix: str, key: str, record: Any) -> None:
        self.store.put(f"{prefix}/{key}", json.dumps(asdict(record)).encode())

    def load(self) -> None:
        """Records from the store; on a first boot, from the cluster spec."""
        saved = self.store.get("spec")
        if saved is None:
            self.store.put("spec", json.dumps(self.spec.to_json()).encode())
        else:
            self.spec = ClusterSpec.from_json(json.loads(saved.value))
            if self.spec.network_mode != self.network.mode:
                self.network = network_for(self.spec.network_mode, self.data_dir)
            self.orchestrator.policy = Policy(self.spec.writer_dead_after_s,
                                              self.spec.writer_hung_after_s,
                                              self.spec.writer_stalled_after_s)
        for entry in self.store.range("nodes/"):
            r = NodeRecord(**json.loads(entry.value))
            self.node_records[r.id] = r
        if not self.node_records:
            for az in self.spec.azs:
                for k in range(1, self.spec.nodes_per_az + 1):
                    r = NodeRecord(f"{az}-n{k}", az)
                    self.node_records[r.id] = r
                    self._save("nodes", r.id, r)
        for entry in self.store.range("instances/"):
            ri = InstanceRecord(**json.loads(entry.value))
            self.instance_records[ri.id] = ri
        if not self.instance_records:
            for n, i in enumerate(self.spec.instances):
                ri = InstanceRecord(i.id, i.az, i.promotion_tier,
                                    "writer" if n == 0 else "reader")
                self.instance_records[ri.id] = ri
                self._save("instances", ri.id, ri)
        for entry in self.store.range("endpoints/"):
            e = EndpointRecord(**json.loads(entry.value))
            self.endpoints[e.name] = e
        for name, port in (("writer", self.spec.writer_port), ("reader", self.spec.reader_port)):
            if name not in self.endpoints:
                e = EndpointRecord(name, name, port or free_port(self.spec.host))
                self.endpoints[name] = e
                self._save("endpoints", name, e)
        for r in self.node_records.values():
            self.nodes[r.id] = self._node_process(r)
        for ri in self.instance_records.values():
            self.instances[ri.id] = self._instance_process(ri)
            self.orchestrator.instances.append(self._managed(ri))

    def _node_process(self, r: NodeRecord) -> ClusterNode:
        host = self.network.address(r.id)
        p = ClusterNode(NodeId(r.id), r.az, self.data_dir / "storage" / r.id,
                        self.data_dir / "logs" / f"{r.id}.log", port=r.port,
                        metrics_port=r.metrics_port, host=host)
        if owned(r.pid, "storage-node", str(p.data_dir)):
            p.pid = r.pid
            p.address = f"{host}:{r.port}"
        return p

    def _instance_process(self, r: InstanceRecord) -> InstanceProcess:
        host = self.network.address(r.id)
        p = InstanceProcess(r.id, r.az, self.volume_path, self.data_dir / "instances" / r.id,
                            self.data_dir / "logs" / f"{r.id}.log", role=r.role, port=r.port,
                            host=host)
        if owned(r.pid, "instance", str(self.volume_path), r.id):
            p.pid = r.pid
            p.address = f"{host}:{r.port}"
        return p

    def _managed(self, r: InstanceRecord) -> Managed:
        host = self.network.address(r.id)
        return Managed(r.id, f"{host}:{r.port}", (host, r.pg_port), r.az,
                       Role.WRITER if r.role == "writer" else Role.READER,
                       promotion_tier=r.promotion_tier)

    def _managed_of(self, instance_id: str) -> Managed:
        return next(m for m in self.orchestrator.instances if m.instance_id == instance_id)

    # -- boot -----------------------------------------------------------------------------------
    async def boot(self) -> None:
        try:
            await self._boot()
        except BorealisError as exc:
            self.boot_error = str(exc)
            self.state = "failed"
            self.event("boot-failed", f"the cluster did not start: {exc}")
            return
        self.state = "healthy"
        self.event("cluster-up", "the cluster is up: "
                   f"writer endpoint {self.endpoint_address('writer')}, "
                   f"reader endpoint {self.endpoint_address('reader')}")
        self._tasks.append(asyncio.create_task(self._watch()))

    def _check_endpoint_ports(self) -> None:
        for e in self.endpoints.values():
            if not port_free(self.spec.host, e.port):
                raise ConfigError(
                    f"port {e.port} of the {e.name} endpoint is in use on {self.spec.host} "
                    f"(another PostgreSQL?): stop what uses it, or give the cluster other "
                    f"ports ([endpoints] in a spec for a new data dir)")

    async def _boot(self) -> None:
        if not self.router.alive():
            self._check_endpoint_ports()  # before starting anything
        running = {n for n, p in self.nodes.items() if p.alive()} | {
            i for i, p in self.instances.items() if p.alive()}
        await asyncio.to_thread(self.network.prepare, running)
        await asyncio.gather(*(self._start_node(n) for n in self.nodes.values()
                               if not n.alive()))
        self._volume_spec()
        writer = self.writer_id()
        if writer is None:
            raise ConfigError("the store records no writer instance")
        if not self.instances[writer].alive():
            await self._start_instance(writer, "writer")
        await asyncio.gather(*(self._start_instance(i, "reader")
                               for i, p in self.instances.items()
                               if i != writer and not p.alive()))
        await self._start_router()
        await self._refresh_instances()

    async def _start_node(self, p: ClusterNode) -> None:
        r = self.node_records[p.node]
        p.netns = await asyncio.to_thread(self.network.attach, r.id)
        await asyncio.to_thread(p.start)
        r.port = p.port
        r.metrics_port = _port(p.ready.get("metrics_address"))
        p.metrics_port = r.metrics_port
        r.pid = p.pid
        self._save("nodes", r.id, r)
        # (Whether it was down is for the next check to see: it offers a repaired node as a
        # spare again.)
        self.event("storage-node-started", f"storage node {r.id} ({r.az}) started, pid "
                   f"{p.pid}, {p.address}", node=r.id, pid=p.pid)

    def _volume_spec(self) -> None:
        nodes = {NodeId(r.id): NodeInfo(NodeId(r.id), r.az,
                                        f"{self.network.address(r.id)}:{r.port}")
                 for r in self.node_records.values()}
        if self.volume_path.exists():
            spec = VolumeSpec.load(self.volume_path)
            if {n: i.address for n, i in spec.nodes.items()} != \
                    {n: i.address for n, i in nodes.items()}:
                spec.nodes.update(nodes)
                spec.save(self.volume_path)
            return
        geometry = Geometry(VolumeId("borealis"), pg_bytes=self.spec.pg_mib * 2**20,
                            volume_bytes_max=self.spec.volume_gib_max * 2**30)
        VolumeSpec(geometry, nodes).save(self.volume_path)
        self.event("volume-created", f"volume created: PGs of {self.spec.pg_mib} MiB, up to "
                   f"{self.spec.volume_gib_max} GiB")

    async def _start_instance(self, instance_id: str, role: str) -> None:
        r = self.instance_records[instance_id]
        p = self.instances[instance_id]
        r.role = role
        p.role = role
        p.port = r.port
        args = ["--pg-listen", f"{p.host}:{r.pg_port}",
                "--metrics-listen", f"{p.host}:{r.metrics_port}",
                "--pg-user", self.spec.master_user, "--pg-database", self.spec.database]
        if role == "reader":
            writer = self.writer_id()
            if writer is None or writer == instance_id:
                raise BadRequestError("a reader needs a writer to follow")
            args += ["--writer", f"{self.instances[writer].host}:"
                     f"{self.instance_records[writer].port}"]
        p.extra_args = tuple(args)
        started = time.monotonic()
        p.netns = await asyncio.to_thread(self.network.attach, instance_id)
        await asyncio.to_thread(p.start)
        r.port = p.port
        r.pg_port = _port(p.ready.get("pg_address"))
        r.metrics_port = _port(p.ready.get("metrics_address"))
        r.pid = p.pid
        self._save("instances", r.id, r)
        m = self._managed_of(instance_id)
        m.control_address = p.address
        m.pg_address = (p.host, r.pg_port)
        m.role = Role.WRITER if role == "writer" else Role.READER
        m.healthy = True
        m.state = "serving"
        m.last_seen_s = time.monotonic()
        self.orchestrator._clients.pop(instance_id, None)
        self.event("instance-started", f"instance {r.id} ({role}, {r.az}) started in "
                   f"{time.monotonic() - started:.1f} s, pid {p.pid}, PostgreSQL on "
                   f"{p.host}:{r.pg_port}", instance=r.id, role=role, pid=p.pid)
        self._topology_changed()

    async def _start_router(self) -> None:
        self.router.control_url = f"http://{self.api_address}"
        if self.router.pid and owned(self.router.pid, "router", self.router.control_url):
            return  # adopted: it polls this control plane already
        if self.router.pid and owned(self.router.pid, "router", str(self.router.ready_file)):
            await asyncio.to_thread(self.router.stop)  # it polls an older address
        self._check_endpoint_ports()
        await asyncio.to_thread(self.router.start)
        self.router.metrics_port = _port(self.router.ready.get("metrics_address"))
        self.store.put("router", json.dumps({"pid": self.router.pid,
                                             "metrics_port": self.router.metrics_port}).encode())
        self.event("router-started", f"router started, pid {self.router.pid}: "
                   + ", ".join(f"{e.name} {self.endpoint_address(e.name)}"
                               for e in self.endpoints.values()))

    # -- topology (for the router) ----------------------------------------------------------------
    def topology(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "instances": [
                {"id": m.instance_id, "role": m.role.value, "healthy": m.healthy,
                 "pg_address": f"{m.pg_address[0]}:{m.pg_address[1]}", "az": m.az}
                for m in self.orchestrator.instances],
            "endpoints": [
                {"name": e.name, "kind": "custom-reader" if e.kind == "reader" and
                 e.name not in BUILTIN_ENDPOINTS else e.kind,
                 "host": self.spec.host, "port": e.port, "members": e.members,
                 "excluded": e.excluded}
                for e in self.endpoints.values()],
        }

    def _topology_changed(self) -> None:
        snapshot = json.dumps({k: v for k, v in self.topology().items() if k != "revision"},
                              sort_keys=True)
        if snapshot != self._topology_seen:
            self._topology_seen = snapshot
            self.revision += 1
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_topology(self, after: int, wait_s: float) -> dict[str, Any]:
        if self.revision <= after:
            with contextlib.suppress(TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self.revision > after), wait_s)
        return self.topology()

    def endpoint_address(self, name: str) -> str:
        return f"{self.spec.host}:{self.endpoints[name].port}"

    # -- the watch loop ---------------------------------------------------------------------------
    async def _watch(self) -> None:
        while not self.stopping:
            try:
                async with self.lock:
                    await self.orchestrator.step()
                self._topology_changed()
                await self._after_failover()
                await self._supervise()
            except (BorealisError, OSError) as exc:
                log.warning("control step failed: %s", exc)
            except Exception:
                log.exception("control step failed")
            await asyncio.sleep(TICK_S)

    async def _after_failover(self) -> None:
        events = self.orchestrator.events
        while self._failovers_seen < len(events):
            e = events[self._failovers_seen]
            self._failovers_seen += 1
            for r in self.instance_records.values():
                r.role = "writer" if r.id == e.new_writer else "reader"
                self._save("instances", r.id, r)
                self.instances[r.id].role = r.role
            self.event("failover", f"failover: {e.new_writer} is the writer (was "
                       f"{e.old_writer}); promotion took {e.promote_s:.2f} s",
                       old_writer=e.old_writer, new_writer=e.new_writer,
                       promote_s=round(e.promote_s, 3))

    async def _refresh_instances(self) -> None:
        for m in self.orchestrator.instances:
            if not m.healthy:
                continue
            with contextlib.suppress(BorealisError, OSError, TimeoutError):
                client = await self.orchestrator._client(m)
                self.instance_status[m.instance_id] = await client.status(timeout_s=1.0)

    async def _supervise(self) -> None:
        await self._refresh_instances()
        writer = self.writer_id()
        writer_m = self._managed_of(writer) if writer else None
        for ri in list(self.instance_records.values()):
            p = self.instances[ri.id]
            m = self._managed_of(ri.id)
            status = self.instance_status.get(ri.id, {})
            if ri.id == writer:
                if (not p.alive() and time.monotonic() >= self._restart_not_before.get(
                        ri.id, 0.0) and not any(
                        r.role == "reader" for r in self.instance_records.values())):
                    # A writer with no reader to fail over to is started again.
                    self.event("instance-restart", f"writer {ri.id} died; no reader to fail "
                               "over to: restarting it", instance=ri.id)
                    try:
                        await self._start_instance(ri.id, "writer")
                    except BorealisError as exc:
                        self._restart_not_before[ri.id] = time.monotonic() + RESTART_BACKOFF_S
                        self.event("instance-restart-failed", f"writer {ri.id} did not "
                                   f"restart: {exc}; trying again in "
                                   f"{RESTART_BACKOFF_S:.0f} s", instance=ri.id)
                continue
            if p.alive() and (m.state in ("fenced", "deposed")
                              or status.get("state") == "fenced"):
                self.event("instance-fenced", f"{ri.id} was fenced by the new writer: "
                           "restarting it as a reader", instance=ri.id)
                await asyncio.to_thread(p.stop)
            if not p.alive() and writer_m is not None and writer_m.healthy:
                if time.monotonic() < self._restart_not_before.get(ri.id, 0.0):
                    continue
                self.event("instance-restart", f"instance {ri.id} is down: starting it as a "
                           f"reader of {writer}", instance=ri.id)
                try:
                    await self._start_instance(ri.id, "reader")
                except BorealisError as exc:
                    self._restart_not_before[ri.id] = time.monotonic() + RESTART_BACKOFF_S
                    self.event("instance-restart-failed", f"instance {ri.id} did not "
                               f"restart: {exc}; trying again in {RESTART_BACKOFF_S:.0f} s",
                               instance=ri.id)
                continue
            following = status.get("writer")
            if (writer_m is not None and writer_m.healthy and m.healthy
                    and status.get("role") == "reader" and following
                    and following != writer_m.control_address):
                try:
                    rpc = await self.pool.get(m.control_address)
                    await rpc.call("follow", writer_m.control_address, timeout_s=RPC_TIMEOUT_S)
                    self.event("instance-follow", f"reader {ri.id} now follows {writer}",
                               instance=ri.id, writer=writer)
                    self.instance_status.pop(ri.id, None)
                except BorealisError as exc:
                    log.warning("follow on %s failed: %s", ri.id, exc)
        if not self.router.alive():
            self.event("router-restart", "the router is down: starting it again")
            try:
                await self._start_router()
            except BorealisError as exc:
                self.event("router-restart-failed", f"the router did not restart: {exc}")
        await self._check_storage()
        self._note_growth()

    def _note_growth(self) -> None:
        try:
            pgs = len(VolumeSpec.load(self.volume_path).layouts)
        except ConfigError:
            return
        if self._pgs_seen and pgs > self._pgs_seen:
            self.event("volume-grew", f"the volume grew to {pgs} protection groups "
                       f"({pgs * self.spec.pg_mib} MiB)", pgs=pgs)
        self._pgs_seen = pgs

    # -- operations (the API's POSTs) -------------------------------------------------------------
    async def start_stopped(self) -> dict[str, Any]:
        """Start the storage nodes that are not running (``borealis up`` on a running
        cluster: after a node or an AZ was stopped or killed). Instances and the router are
        restarted by supervision already."""
        async with self.lock:
            stopped = [n for n in self.nodes.values() if not n.alive()]
            results = await asyncio.gather(*(self._start_node(n) for n in stopped),
                                           return_exceptions=True)
        failed = {n.node: str(r) for n, r in zip(stopped, results, strict=True)
                  if isinstance(r, BaseException)}
        return {"started": [n.node for n in stopped if n.node not in failed],
                "failed": failed}

    async def failover(self, target: str | None) -> dict[str, Any]:
        """Manual failover (switchover): the writer is stopped cleanly first, then ``target``
        (or the best reader by tier, then lag) is promoted; the old writer comes back as a
        reader."""
        async with self.lock:
            view = await self.orchestrator.observe()
            old = self.writer_id()
            if target is None:
                ranked = candidates(view)
                if not ranked:
                    raise ConflictingRequest("no healthy reader to fail over to")
                target = ranked[0].instance_id
            if target not in self.instance_records:
                raise BadRequestError(f"no instance {target!r}")
            chosen = view.get(target)
            if target == old:
                raise ConflictingRequest(f"{target} is already the writer")
            if chosen is None or chosen.role is not Role.READER or not chosen.healthy:
                raise ConflictingRequest(f"{target} is not a healthy reader")
            started = time.monotonic()
            if old is not None:
                self._managed_of(old).healthy = False
                self._topology_changed()
                await asyncio.to_thread(self.instances[old].stop)
            await self.orchestrator._promote(view, target)
            elapsed = time.monotonic() - started
        self._topology_changed()
        await self._after_failover()
        return {"old_writer": old, "new_writer": target, "seconds": round(elapsed, 3)}

    async def add_instance(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self.lock:
            if len(self.instance_records) >= 16:
                raise ConflictingRequest("a cluster has at most 16 instances")
            instance_id = str(body.get("id") or self._new_instance_id())
            if instance_id in self.instance_records:
                raise ConflictingRequest(f"instance {instance_id} exists")
            az = str(body.get("az") or self._least_used_az())
            tier = int(body.get("promotion_tier", 1))
            check_instance(InstanceSpec(instance_id, az, tier), self.spec.azs)
            r = InstanceRecord(instance_id, az, tier, "reader")
            self.instance_records[r.id] = r
            self.instances[r.id] = self._instance_process(r)
            self.orchestrator.instances.append(self._managed(r))
            self._save("instances", r.id, r)
            try:
                await self._start_instance(r.id, "reader")
            except BorealisError:
                self._forget_instance(r.id)
                raise
        return self.instance_view(r.id)

    async def remove_instance(self, instance_id: str) -> dict[str, Any]:
        async with self.lock:
            if instance_id not in self.instance_records:
                raise BadRequestError(f"no instance {instance_id!r}")
            if self.writer_id() == instance_id:
                raise ConflictingRequest(f"{instance_id} is the writer: fail over first "
                                         "(borealis failover)")
            await asyncio.to_thread(self.instances[instance_id].stop)
            self._forget_instance(instance_id)
        self.event("instance-removed", f"instance {instance_id} removed",
                   instance=instance_id)
        self._topology_changed()
        return {"removed": instance_id}

    def _forget_instance(self, instance_id: str) -> None:
        self.instance_records.pop(instance_id, None)
        self.instances.pop(instance_id, None)
        self.instance_status.pop(instance_id, None)
        self.orchestrator.instances = [m for m in self.orchestrator.instances
                                       if m.instance_id != instance_id]
        self.store.delete(f"instances/{instance_id}")
        for e in self.endpoints.values():
            if instance_id in e.members:
                e.members.remove(instance_id)
                self._save("endpoints", e.name, e)

    def _new_instance_id(self) -> str:
        n = 1
        while f"i{n}" in self.instance_records:
            n += 1
        return f"i{n}"

    def _least_used_az(self) -> str:
        used = {az: 0 for az in self.spec.azs}
        for r in self.instance_records.values():
            used[r.az] = used.get(r.az, 0) + 1
        return min(self.spec.azs, key=lambda az: (used[az], az))

    async def create_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name") or "")
        kind = str(body.get("kind") or "any").lower()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise BadRequestError("an endpoint needs a name: letters, digits, - and _")
        if name in self.endpoints:
            raise ConflictingRequest(f"endpoint {name} exists")
        if kind not in CUSTOM_KINDS:
            raise BadRequestError(f"a custom endpoint's type is READER or ANY, not {kind!r}")
        members = [str(m) for m in body.get("members") or []]
        excluded = [str(m) for m in body.get("excluded") or []]
        if members and excluded:
            raise BadRequestError("give static members or excluded members, not both")
        unknown = [m for m in members + excluded if m not in self.instance_records]
        if unknown:
            raise BadRequestError(f"no such instances: {unknown}")
        port = int(body.get("port") or 0) or free_port(self.spec.host)
        if any(e.port == port for e in self.endpoints.values()):
            raise ConflictingRequest(f"port {port} is used by another endpoint")
        e = EndpointRecord(name, kind, port, members, excluded)
        self.endpoints[name] = e
        self._save("endpoints", name, e)
        self.event("endpoint-created", f"endpoint {name} ({kind.upper()}) on "
                   f"{self.endpoint_address(name)}", endpoint=name)
        self._topology_changed()
        await self._router_listening(name)
        return self.endpoint_view(e)

    async def _router_listening(self, name: str, timeout_s: float = 10.0) -> None:
        """Wait until the router accepts connections on the endpoint's port."""
        deadline = time.monotonic() + timeout_s
        port = self.endpoints[name].port
        while time.monotonic() < deadline:
            try:
                _, w = await asyncio.open_connection(self.spec.host, port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            w.close()
            return
        log.warning("the router did not open endpoint %s within %.0f s", name, timeout_s)

    async def delete_endpoint(self, name: str) -> dict[str, Any]:
        if name in BUILTIN_ENDPOINTS:
            raise ConflictingRequest(f"the {name} endpoint cannot be deleted")
        if name not in self.endpoints:
            raise BadRequestError(f"no endpoint {name!r}")
        del self.endpoints[name]
        self.store.delete(f"endpoints/{name}")
        self.event("endpoint-deleted", f"endpoint {name} deleted", endpoint=name)
        self._topology_changed()
        return {"deleted": name}

    async def add_storage_node(self, az: str) -> dict[str, Any]:
        if az not in self.spec.azs:
            raise BadRequestError(f"AZ {az!r} is not one of {self.spec.azs}")
        async with self.lock:
            k = 1
            while f"{az}-n{k}" in self.node_records:
                k += 1
            r = NodeRecord(f"{az}-n{k}", az)
            self.node_records[r.id] = r
            self._save("nodes", r.id, r)
            p = self._node_process(r)
            self.nodes[r.id] = p
            await self._start_node(p)
            writer = self.writer_id()
            if writer is not None:
                rpc = await self.pool.get(self._managed_of(writer).control_address)
                await rpc.call("add_storage_node", [r.id, az, p.address],
                               timeout_s=RPC_TIMEOUT_S)
            # A repair waiting for a spare goes on at the next check.
            self.repair_blocked.clear()
        self.event("storage-node-added", f"storage node {r.id} added to {az} (a spare)",
                   node=r.id)
        return self.node_view(r.id)

    # -- views ----------------------------------------------------------------------------------
    def instance_view(self, instance_id: str) -> dict[str, Any]:
        r = self.instance_records[instance_id]
        p = self.instances[instance_id]
        m = self._managed_of(instance_id)
        status = self.instance_status.get(instance_id, {})
        alive = p.alive()
        state = ("available" if alive and m.healthy else
                 "starting" if alive and self.state == "starting" else
                 "unhealthy" if alive else "down")
        return {"id": r.id, "role": m.role.value, "az": r.az, "state": state,
                "pid": p.pid if alive else None, "promotion_tier": r.promotion_tier,
                "pg_address": f"{p.host}:{r.pg_port}", "control_address": p.address,
                "metrics_address": f"{p.host}:{r.metrics_port}",
                "lag_ms": status.get("lag_ms") if m.role is Role.READER else None,
                "vdl": status.get("vdl"), "epoch": status.get("epoch")}

    def node_view(self, node_id: str) -> dict[str, Any]:
        r = self.node_records[node_id]
        p = self.nodes[node_id]
        alive = p.alive()
        state = "up" if node_id in self.node_status else "unresponsive" if alive else "down"
        if self.state == "starting" and alive:
            state = "up"
        return {"id": r.id, "az": r.az, "state": state, "pid": p.pid if alive else None,
                "address": f"{p.host}:{r.port}",
                "metrics_address": f"{p.host}:{r.metrics_port}",
                "segments": len(self._volume_layouts_on(node_id))}

    def _volume_layouts_on(self, node_id: str) -> list[tuple[int, str]]:
        try:
            return segments_on(VolumeSpec.load(self.volume_path), node_id)
        except ConfigError:
            return []

    def _endpoints_in_order(self) -> list[EndpointRecord]:
        """The writer endpoint, the reader endpoint, then the custom ones by name."""
        return sorted(self.endpoints.values(),
                      key=lambda e: (e.name != "writer", e.name != "reader", e.name))

    def endpoint_view(self, e: EndpointRecord) -> dict[str, Any]:
        kind = e.kind if e.name in BUILTIN_ENDPOINTS else e.kind.upper()
        return {"name": e.name, "type": kind, "address": self.endpoint_address(e.name),
                "members": e.members, "excluded": e.excluded,
                "custom": e.name not in BUILTIN_ENDPOINTS}

    def protection_groups(self) -> list[dict[str, Any]]:
        writer = self.writer_id()
        volume = self.instance_status.get(writer or "", {}).get("volume") or {}
        pgs = volume.get("protection_groups")
        if pgs is not None:
            return list(pgs)
        try:
            spec = VolumeSpec.load(self.volume_path)
        except ConfigError:
            return []
        return [{"pg": int(layout.pg), "membership_epoch": layout.membership_epoch,
                 "healthy": None,
                 "segments": [{"segment": p.segment, "node": p.node, "az": p.az,
                               "healthy": None} for p in layout.segments]}
                for layout in spec.layouts.values()]

    def cluster_view(self) -> dict[str, Any]:
        writer = self.writer_id()
        wstatus = self.instance_status.get(writer or "", {})
        return {
            "state": self.state if not self.boot_error else "failed",
            "error": self.boot_error,
            "data_dir": str(self.data_dir),
            "master_user": self.spec.master_user,
            "database": self.spec.database,
            "endpoints": {e.name: self.endpoint_address(e.name)
                          for e in self._endpoints_in_order()},
            "endpoint_list": [self.endpoint_view(e) for e in self._endpoints_in_order()],
            "writer": writer,
            "instances": [self.instance_view(i) for i in self.instance_records],
            "storage_nodes": [self.node_view(n) for n in sorted(self.node_records)],
            "protection_groups": self.protection_groups(),
            "volume": {"epoch": wstatus.get("epoch"), "vdl": wstatus.get("vdl"),
                       "pgs": len(self.protection_groups()), "pg_mib": self.spec.pg_mib},
            "control_plane": {"pid": os.getpid(), "api": self.api_address},
            "router": {"pid": self.router.pid if self.router.alive() else None,
                       "state": "up" if self.router.alive() else "down"},
            "failovers": len(self.orchestrator.events),
        }

    # -- shutdown -----------------------------------------------------------------------------
    async def shutdown(self) -> dict[str, Any]:
        """Stop everything (readers, then the writer, the router, the storage nodes)."""
        self.stopping = True
        self.state = "stopping"
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        stopped = []
        async with self.lock:
            writer = self.writer_id()
            readers = [p for i, p in self.instances.items() if i != writer]
            await asyncio.gather(*(asyncio.to_thread(p.stop) for p in readers if p.alive()))
            stopped += [p.instance_id for p in readers]
            if writer is not None and self.instances[writer].alive():
                await asyncio.to_thread(self.instances[writer].stop)
                stopped.append(writer)
            if self.router.alive():
                await asyncio.to_thread(self.router.stop)
                stopped.append("router")
            await asyncio.gather(*(asyncio.to_thread(n.stop) for n in self.nodes.values()
                                   if n.alive()))
            stopped += list(self.nodes)
            try:
                await asyncio.to_thread(self.network.remove)
            except BorealisError as exc:   # down still stops; the next up clears them
                log.warning("network namespaces not removed: %s", exc)
        for r in self.instance_records.values():
            r.pid = 0
            self._save("instances", r.id, r)
        for nr in self.node_records.values():
            nr.pid = 0
            self._save("nodes", nr.id, nr)
        self.store.delete("router")
        await self.orchestrator.close()
        await self.pool.close()
        self.event("cluster-down", "the cluster was stopped; data kept")
        return {"stopped": stopped}

    def adopt_router(self) -> None:
        saved = self.store.get("router")
        if saved is not None:
            record = json.loads(saved.value)
            self.router.metrics_port = int(record.get("metrics_port") or 0)
            pid = int(record.get("pid") or 0)
            if owned(pid, "router", str(self.router.ready_file)):
                self.router.pid = pid

