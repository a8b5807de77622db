"""Faults through the fault proxy: ``net-chaos``, and partitions where namespaces are missing.

A run's cluster is started with ``BOREALIS_ROUTES`` naming ``DATA_DIR/routes.json``
(``ChaosCluster``), which does not exist until a nemesis here needs it, so an ordinary run is
untouched. ``ProxyNetwork.install`` starts one fault-proxy process
(``python -m borealis.chaos.faultproxy``) with a frame link per caller and target: every
instance and storage node calling every storage node and every instance's control port
(the writer's batches, readers' page reads, gossip and repair between storage nodes, the
redo stream both ways). It then writes the routes file, and each process sends its new
connections through its own links; a pool drops a connection whose route changed, so
within a fraction of a second everything flows through the proxy. ``remove`` deletes the
routes (connections go direct again) and stops the proxy by PID.

What a link cannot see: the PostgreSQL endpoints and the control plane's HTTP API are not
proxied (clients and the runner must reach the cluster), and neither are the control
plane's own health checks, so a partition here cuts the data path but not the control
plane's view.

- ``net-chaos``: on every storage link (writer and readers to storage, gossip), latency with
  jitter, loss as TCP stalls (retransmission timeouts), occasional resets, and on the RPC
  frames duplication and independent delays; in the window, a seeded mix of mild and harsh
  phases; healed at the end.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borealis.chaos.cluster import ROUTES_FILE, ChaosCluster
from borealis.chaos.nemesis_base import Nemesis, NemesisContext, NemesisError, sleep_until
from borealis.control.processes import pid_alive
from borealis.transport.routes import write_routes

log = logging.getLogger(__name__)

PROXY_START_S = 20.0
ROUTES_SETTLE_S = 1.0
"""Long enough for every pool to read the routes again (``routes.CHECK_EVERY_S``) and for
the busy connections to move to the proxy."""
CONTROL_TIMEOUT_S = 5.0
PHASE_S = (3.0, 6.0)


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
        """Links into storage nodes (from instances and from other storage nodes)."""
        return sorted(name for name, link in self.links.items()
                      if link["target"] in self.node_ids)

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
