"""Faults through the fault proxy: ``net-chaos``, and partitions where namespaces are missing.

A run's cluster is started with ``BOREALIS_ROUTES`` naming ``DATA_DIR/routes.json``
(``ChaosCluster``), which does not exist until a nemesis here needs it, so an ordinary run is
untouched. ``ProxyNetwork.install`` starts one fault-proxy process
(``python -m borealis.chaos.faultproxy``) with a frame link per caller and target: every
instance and storage node calling every storage node and every instance's control port
(the writer's batches, readers' page reads, gossip and repair between storage nodes, the
redo stream both ways), and the control plane's RPC pool (caller ``control-plane``) calling
them all too (storage ``node_status`` checks, ``follow``, ``add_storage_node``, repairs).
It then writes the routes file, and each process sends its new connections through its
own links; a pool drops a connection whose route changed, so within a fraction of a second
everything flows through the proxy. ``remove`` deletes the routes (connections go direct
again) and stops the proxy by PID.

What a link cannot see: the PostgreSQL endpoints and the control plane's HTTP API are not
proxied (clients and the runner must reach the cluster), nor is any connection opened
without a routed pool — today the failover loop's instance ``status`` checks and
``promote`` (``Orchestrator._client`` connects directly). So a partition here cuts the data
path and the control plane's storage checks, but the control plane still hears every
instance's own ``status``: an isolated writer is found by what it says (its commits stall),
not by its silence as in netns mode, and clients still reach it through the router.

- ``net-chaos``: on every storage link of the data path (writer and readers to storage,
  gossip; not the control plane's checks), latency with jitter, loss as TCP stalls
  (retransmission timeouts), occasional resets, and on the RPC frames duplication and
  independent delays; in the window, a seeded mix of mild and harsh phases; healed at the
  end.
- ``partition`` and ``partition-one-way`` (``ProxyPartition``, ``ProxyPartitionOneWay``):
  the variants of ``nemesis_partition``, shared with the nftables nemeses (the same seed
  chooses the same variant and the same hosts), as blocked link directions
  (``link_blocks``): "drop what A sends to B" blocks ``to_target`` on A's links into B and
  ``from_target`` on B's links into A. A blocked direction holds its bytes and keeps the
  connection open and silent, as a partition does; healed with ``on_heal="reset"``: every
  held connection is reset, for a partition is held longer than ``rpc.USER_TIMEOUT_MS``
  (5 s), after which the kernel would have given up on the connection, so "deliver" (bytes
  seconds old reaching their peer, the retransmission of a connection TCP kept) is what the
  transport no longer does. Fencing is exercised all the same: the old writer sends its
  batches again on new connections, and storage must refuse their stale epoch.
  A one-way cut differs from nftables's in one thing: a new connection across it is made
  (the proxy's own connect passes), where a dropped SYN-ACK would stop the handshake.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borealis.chaos.cluster import ROUTES_FILE, ChaosCluster
from borealis.chaos.faultproxy.faults import BOTH, Direction
from borealis.chaos.nemesis_base import Nemesis, NemesisContext, NemesisError, sleep_until
from borealis.chaos.nemesis_partition import Cut, run_one_way, run_partition
from borealis.control.netns import CONTROL_PLANE
from borealis.control.processes import pid_alive
from borealis.transport.routes import write_routes

log = logging.getLogger(__name__)

PROXY_START_S = 20.0
ROUTES_SETTLE_S = 1.0
"""Long enough for every pool to read the routes again (``routes.CHECK_EVERY_S``) and for
the busy connections to move to the proxy."""
CONTROL_TIMEOUT_S = 5.0
PHASE_S = (3.0, 6.0)
CONTROL_PLANE_CALLER = "control-plane"
"""The caller name of the control plane's RPC pool (``control.plane``)."""
# A partition names the control plane as the netns mode does: one host, one name.
assert CONTROL_PLANE_CALLER == CONTROL_PLANE


def routes_path(cluster: ChaosCluster) -> Path:
    return cluster.data_dir / ROUTES_FILE


@dataclass
class ProxyNetwork:
    """The fault proxy of one run's cluster: its process, links and routes."""

    cluster: ChaosCluster
    seed: int
    pid: int = 0
    control: str = ""
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    """link name -> {"caller", "target" (process ids), "listen", "address"}"""
    node_ids: set[str] = field(default_factory=set)
    _popen: subprocess.Popen[bytes] | None = None

    def install(self, view: dict[str, Any]) -> dict[str, Any]:
        """Start the proxy with a link per caller and target of ``view`` (``GET
        /v1/cluster``), then route every caller through its links."""
        targets = {n["id"]: n["address"] for n in view["storage_nodes"] if n.get("address")}
        self.node_ids = set(targets)
        targets |= {i["id"]: i["control_address"] for i in view["instances"]
                    if i.get("control_address")}
        callers = [i["id"] for i in view["instances"]] + [n["id"] for n in view["storage_nodes"]]
        callers.append(CONTROL_PLANE_CALLER)
        wanted = {f"{c}.{t}": (c, t, address) for c in callers
                  for t, address in targets.items() if c != t}
        directory = self.cluster.data_dir / "faultproxy"
        directory.mkdir(parents=True, exist_ok=True)
        ready = directory / "ready.json"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "borealis.chaos.faultproxy", "--control", "127.0.0.1:0",
                "--ready-file", str(ready), "--seed", str(self.seed)]
        for name, (_, _, address) in sorted(wanted.items()):
            argv += ["--frame-link", f"{name}=0:{address}"]
        with open(directory / "faultproxy.log", "ab") as out:
            self._popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self._popen.pid
        deadline = time.monotonic() + PROXY_START_S
        while not ready.exists():
            if self._popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NemesisError(f"the fault proxy did not start; see {directory}")
            time.sleep(0.05)
        document = json.loads(ready.read_text())
        self.control = document["control"]
        routes: dict[str, dict[str, str]] = {}
        for name, (caller, target, address) in wanted.items():
            listen = document["links"][name]["listen"]
            self.links[name] = {"caller": caller, "target": target, "listen": listen,
                                "address": address}
            routes.setdefault(caller, {})[address] = listen
        write_routes(routes_path(self.cluster), routes)
        time.sleep(ROUTES_SETTLE_S)
        return {"proxy_pid": self.pid, "links": len(self.links), "callers": len(routes)}

    def set_faults(self, names: list[str], faults: dict[str, Any], *,
                   direction: str = "both") -> dict[str, Any]:
        for name in names:
            self._post(f"/links/{name}/faults",
                       {"direction": direction, "faults": faults, "replace": True})
        return {"faults": faults}

    def heal(self) -> dict[str, Any]:
        if self.control:
            self._post("/heal", {})
        return {}

    def storage_links(self) -> list[str]:
        """Links into storage nodes from instances and from other storage nodes (the data
        path; not the control plane's checks)."""
        return sorted(name for name, link in self.links.items()
                      if link["target"] in self.node_ids
                      and link["caller"] != CONTROL_PLANE_CALLER)

    def remove(self) -> None:
        """Direct connections again, then stop the proxy (by PID); idempotent."""
        routes_path(self.cluster).unlink(missing_ok=True)
        if self.pid:
            time.sleep(ROUTES_SETTLE_S)  # pools leave the proxy before it goes
        self.stop()

    def stop(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(10)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(10)
        elif self.pid and pid_alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = 0

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"http://{self.control}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_S) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise NemesisError(f"fault proxy {path}: {exc.code} {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise NemesisError(f"fault proxy {path}: {exc}") from exc


MILD = {"latency_ms": 5.0, "jitter_ms": 10.0, "stall_probability": 0.02, "stall_ms": 200.0,
        "duplicate_probability": 0.02, "frame_delay_ms_max": 20.0}
HARSH = {"latency_ms": 20.0, "jitter_ms": 40.0, "stall_probability": 0.08, "stall_ms": 200.0,
         "stall_ms_max": 1600.0, "reset_probability_per_s": 0.05,
         "duplicate_probability": 0.1, "frame_delay_ms_max": 60.0}


class NetChaos(Nemesis):
    name = "net-chaos"

    def __init__(self) -> None:
        self.network: ProxyNetwork | None = None

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        self.network = network = ProxyNetwork(ctx.cluster, ctx.rng.randrange(2**31))
        ctx.act("proxy", {"routes": str(routes_path(ctx.cluster))},
                lambda: network.install(ctx.status()))
        if not network.links:
            return
        while time.monotonic() < deadline - PHASE_S[0]:
            harsh = ctx.rng.random() < 0.5
            faults = HARSH if harsh else MILD
            links = network.storage_links()
            # A seeded half of the storage links at a time: some peers slow, others fine,
            # as a degraded network is.
            chosen = sorted(ctx.rng.sample(links, max(1, len(links) // 2)))
            ctx.act("net-chaos", {"phase": "harsh" if harsh else "mild", "links": len(chosen)},
                    functools.partial(network.set_faults, chosen, faults))
            sleep_until(min(deadline, time.monotonic() + ctx.rng.uniform(*PHASE_S)))
            ctx.act("heal-links", {}, network.heal)
        sleep_until(deadline)

    def heal(self, ctx: NemesisContext) -> None:
        network = self.network
        if network is None:
            return

        def heal() -> dict[str, Any]:
            with contextlib.suppress(NemesisError):
                network.heal()
            network.remove()
            return {}
        ctx.act("remove-proxy", {}, heal)
        self.network = None


# --- partitions ------------------------------------------------------------------------------

PARTITION_FAULTS: dict[str, Any] = {"blocked": True, "on_heal": "reset"}
"""A cut direction: held silent, its connections reset on heal (why reset: the module's
docstring)."""
PARTITION_PROXY_SEED = 0
"""Blocks draw nothing from the proxy's random source; a fixed seed leaves every draw of
the run's own to the partition, so that a seed chooses the variant the netns nemesis would."""


def link_blocks(links: Mapping[str, Mapping[str, str]], cut: Cut) -> dict[str, str]:
    """Pure: which direction of which link ``cut`` blocks — link name -> "to_target",
    "from_target" or "both" (links it leaves alone are absent).

    A link carries what its caller sends (``to_target``) and what its target answers
    (``from_target``). Dropping what a source sends to a target blocks ``to_target`` on the
    source's links into the target and ``from_target`` on the target's links into the
    source; ``both_ways``, both directions of both."""
    sources, targets = set(cut.sources), set(cut.targets)
    blocks: dict[str, str] = {}
    for name, link in links.items():
        caller, target = link["caller"], link["target"]
        if cut.both_ways:
            if (caller in sources and target in targets) or \
                    (caller in targets and target in sources):
                blocks[name] = BOTH
        elif caller in sources and target in targets:
            blocks[name] = Direction.TO_TARGET.value
        elif caller in targets and target in sources:
            blocks[name] = Direction.FROM_TARGET.value
    return blocks


class ProxyCutter(Nemesis):
    """Cuts links by blocking directions of the fault proxy's links (``nemesis_partition``'s
    ``Cutter``); ``heal`` lifts every block, then removes the proxy."""

    def __init__(self) -> None:
        self.network: ProxyNetwork | None = None
        self.blocked: dict[str, str] = {}

    def start(self, ctx: NemesisContext) -> ProxyNetwork:
        if ctx.cluster.shape.network != "loopback":
            raise NemesisError(f"nemesis {self.name} through the fault proxy needs a cluster "
                               f"on loopback, this run's is {ctx.cluster.shape.network!r}")
        self.network = network = ProxyNetwork(ctx.cluster, PARTITION_PROXY_SEED)
        ctx.act("proxy", {"routes": str(routes_path(ctx.cluster))},
                lambda: network.install(ctx.status()))
        return network

    def cut(self, ctx: NemesisContext, f: str, cut: Cut) -> bool:
        network = self.network
        assert network is not None, "start first"

        def block() -> dict[str, Any]:
            if not network.links:
                raise NemesisError("the fault proxy is not installed")
            blocks = link_blocks(network.links, cut)
            if not blocks:
                raise NemesisError(f"no link of the fault proxy joins {list(cut.sources)} "
                                   f"and {list(cut.targets)}")
            for name, direction in sorted(blocks.items()):
                network.set_faults([name], PARTITION_FAULTS, direction=direction)
                self.blocked[name] = direction
            return {"links": len(blocks), "on_heal": PARTITION_FAULTS["on_heal"]}

        return ctx.act(f, cut.value(), block) is not None

    def heal(self, ctx: NemesisContext) -> None:
        network = self.network
        if network is None:
            return

        def heal() -> dict[str, Any]:
            lifted = len(self.blocked)
            try:
                network.heal()  # every block lifted at once; held connections reset
            finally:
                self.blocked = {}
                network.remove()
            return {"links": lifted}

        try:
            ctx.act("heal", {}, heal)
        finally:
            self.network = None


class ProxyPartition(ProxyCutter):
    name = "partition"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        run_partition(self, ctx, deadline)


class ProxyPartitionOneWay(ProxyCutter):
    name = "partition-one-way"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        run_one_way(self, ctx, deadline)


PROXY_NEMESES: dict[str, type[Nemesis]] = {
    cls.name: cls for cls in (ProxyPartition, ProxyPartitionOneWay)
}
"""The network nemeses the fault proxy can stand in for (``nemesis_net.register``)."""
