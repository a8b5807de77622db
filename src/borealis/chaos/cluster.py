"""A cluster of its own for one fault-injection run, built and torn down through the CLI.

A run must not depend on anything already running, so it starts a fresh cluster with
``borealis up --spec`` in a temporary data dir (every port 0, everything on 127.0.0.1, or,
for the network nemeses, each storage node and instance in a network namespace of its own:
``ClusterShape.network``, ``control.netns``) and stops it with ``borealis down``, exactly
as a user would; ``borealis up --data-dir D`` on the
running cluster is how a nemesis brings stopped storage nodes back. Everything else — the
view of the cluster, its events, the PIDs a nemesis signals — is read from the control
plane's HTTP API (``GET /v1/cluster``, ``GET /v1/events``), the same one the CLI uses.

A process is only ever signalled by its PID, and only after ``/proc/PID/cmdline`` shows it is
this data dir's (``owned``), so a PID reused by another program is never hit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis.cli.cluster_api import request
from borealis.control.netns import NETWORK_MODES, remove_namespaces
from borealis.control.processes import pid_alive
from borealis.errors import BorealisError
from borealis.transport.routes import ENV as ROUTES_ENV

log = logging.getLogger(__name__)

PASSWORD_DEFAULT = "borealis-chaos-password"
UP_TIMEOUT_S = 180.0
DOWN_TIMEOUT_S = 150.0
KILL_WAIT_S = 10.0
API_TIMEOUT_S = 10.0
HOST = "127.0.0.1"
ROUTES_FILE = "routes.json"
DATA_DIR_MARK = "{data_dir}"
"""In a value of a nemesis's ``cluster_env``: replaced by the run's data dir (per run)."""


class ChaosClusterError(BorealisError):
    """The run's own cluster did not start, or could not be driven: fatal for the run."""

    code = "chaos_cluster"


@dataclass(frozen=True, slots=True)
class ClusterShape:
    """What ``borealis up --spec`` builds for a run: the defaults of docs/cluster.md, but
    every port chosen by the system, small PGs (so that the volume grows during a run) and a
    short repair grace (so that a killed node is rebuilt on a spare within a run).
    ``network``: "loopback", or "netns" for the nemeses that cut links (root only)."""

    nodes_per_az: int = 3
    pg_mib: int = 1
    repair_after_s: float = 3.0
    writer_dead_after_s: float = 0.5
    writer_hung_after_s: float = 10.0
    instances: tuple[tuple[str, str, int], ...] = (
        ("i1", "az1", 0), ("i2", "az2", 1), ("i3", "az3", 2))
    network: str = "loopback"

    def __post_init__(self) -> None:
        assert self.network in NETWORK_MODES, self.network
        assert self.nodes_per_az >= 2, "each PG uses two nodes of every AZ"
        assert self.pg_mib >= 1
        assert self.repair_after_s > 0
        assert self.writer_dead_after_s > 0
        assert self.writer_hung_after_s > 0
        assert 1 <= len(self.instances) <= 16

    def toml(self) -> str:
        lines = [
            "[cluster]", f'host = "{HOST}"', "api_port = 0", "",
            "[storage]", f"nodes_per_az = {self.nodes_per_az}", f"pg_mib = {self.pg_mib}",
            f"repair_after_s = {self.repair_after_s}", "",
            "[endpoints]", "writer_port = 0", "reader_port = 0", "",
            "[failover]", f"writer_dead_after_s = {self.writer_dead_after_s}",
            f"writer_hung_after_s = {self.writer_hung_after_s}", "",
            "[network]", f'mode = "{self.network}"', "",
        ]
        for instance_id, az, tier in self.instances:
            lines += ["[[instances]]", f'id = "{instance_id}"', f'az = "{az}"',
                      f"promotion_tier = {tier}", ""]
        return "\n".join(lines)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ChaosClusterError(f"not a host:port address: {address!r}")
    return host, int(port)


class ChaosCluster:
    """One run's cluster. ``start`` builds it, ``down`` stops it (and, as a last resort,
    SIGKILLs by PID whatever of this data dir is still running); use it as a context manager
    so that ``down`` runs whatever happens."""

    def __init__(self, data_dir: Path, *, shape: ClusterShape | None = None,
                 password: str = PASSWORD_DEFAULT, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.shape = shape or ClusterShape()
        # What ``borealis up`` and so every process of the cluster is started with: a
        # nemesis's own (a storage crash model, a directory of clock files: ``DATA_DIR_MARK``
        # in a value names this run's data dir), and the routes file through which the fault
        # proxy can be put between processes (absent, so unused, until a nemesis writes it).
        self.env = {ROUTES_ENV: str(self.data_dir / ROUTES_FILE),
                    **{k: v.replace(DATA_DIR_MARK, str(self.data_dir))
                       for k, v in (env or {}).items()}}
        self.password = password
        self._started = False
        self._temporary_root: Path | None = None

    @classmethod
    def temporary(cls, *, shape: ClusterShape | None = None,
                  password: str = PASSWORD_DEFAULT,
                  env: Mapping[str, str] | None = None) -> ChaosCluster:
        """A cluster in a fresh temporary dir, removed by ``down``."""
        root = Path(tempfile.mkdtemp(prefix="borealis-chaos-"))
        cluster = cls(root / "data", shape=shape, password=password, env=env)
        cluster._temporary_root = root
        return cluster

    # -- the CLI ---------------------------------------------------------------------------

    def _borealis(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "borealis", *args, "--data-dir", str(self.data_dir)]
        env = {**os.environ, **self.env, "BOREALIS_MASTER_PASSWORD": self.password}
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                  check=False, env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ChaosClusterError(f"borealis {' '.join(args)} did not finish in "
                                    f"{timeout_s:.0f} s") from exc

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        spec = self.data_dir / "chaos-cluster.toml"
        spec.write_text(self.shape.toml())
        self._started = True
        done = self._borealis("up", "--spec", str(spec), "--quiet", timeout_s=UP_TIMEOUT_S)
        if done.returncode != 0:
            raise ChaosClusterError(f"borealis up failed ({done.returncode}): "
                                    f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        log.info("cluster up data_dir=%s writer=%s reader=%s", self.data_dir,
                 self.endpoint("writer"), self.endpoint("reader"))

    def up(self) -> dict[str, Any]:
        """``borealis up`` on the running cluster: starts the storage nodes that are not
        running. Returns what it said (a nemesis records it)."""
        done = self._borealis("up", "--quiet", timeout_s=UP_TIMEOUT_S)
        lines = [line for line in done.stdout.splitlines() if line.startswith(
            ("Started again", "Storage node "))]
        return {"returncode": done.returncode, "said": lines,
                "stderr": done.stderr.strip()[-500:]}

    def copy_logs(self, destination: Path) -> None:
        """Every process's log, for a person reading a run afterwards."""
        source = self.data_dir / "logs"
        if source.is_dir():
            shutil.copytree(source, destination, dirs_exist_ok=True)

    def down(self) -> None:
        if not self._started:
            if self._temporary_root is not None:
                shutil.rmtree(self._temporary_root, ignore_errors=True)
            return
        try:
            done = self._borealis("down", timeout_s=DOWN_TIMEOUT_S)
            if done.returncode != 0:
                log.warning("borealis down failed rc=%d: %s", done.returncode,
                            done.stderr.strip()[-500:])
        except ChaosClusterError as exc:
            log.warning("borealis down: %s", exc)
        finally:
            self._kill_leftovers()
            if self.shape.network == "netns":
                # Before the data dir goes: a namespace is named after its path.
                with contextlib.suppress(BorealisError):
                    remove_namespaces(self.data_dir)
            self._started = False
            if self._temporary_root is not None:
                shutil.rmtree(self._temporary_root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """SIGCONT then SIGKILL, by PID, every process whose command line names this data
        dir (a paused process would ignore ``down``'s SIGTERM)."""
        marker = os.fsencode(str(self.data_dir))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"borealis" not in cmdline or marker not in cmdline:
                continue
            pid = int(entry.name)
            log.warning("killing a leftover process pid=%d", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> ChaosCluster:
        try:
            self.start()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- the HTTP API ----------------------------------------------------------------------

    def _api(self, path: str) -> Any:
        """GET from the control plane's HTTP API, found through its ready file."""
        ready_path = self.data_dir / "control" / "ready.json"
        try:
            ready = json.loads(ready_path.read_text())
        except (OSError, ValueError) as exc:
            raise ChaosClusterError(f"no control plane ready file in {ready_path}") from exc
        pid = int(ready.get("pid") or 0)
        if not owned(pid, "control-plane", str(self.data_dir)):
            raise ChaosClusterError(f"the control plane of {self.data_dir} is not running")
        return request(str(ready["address"]), "GET", path, timeout_s=API_TIMEOUT_S)

    def status(self) -> dict[str, Any]:
        view: dict[str, Any] = self._api("/v1/cluster")
        return view

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self._api(f"/v1/events?after={after}")
        return events

    def endpoint(self, name: str, view: dict[str, Any] | None = None) -> tuple[str, int]:
        """(host, port) of an endpoint (``writer``, ``reader``): stable for the cluster's
        life (the router keeps its ports)."""
        view = view or self.status()
        return split_address(str(view["endpoints"][name]))

    def instances(self, *, role: str | None = None,
                  view: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        view = view or self.status()
        return [i for i in view["instances"] if role is None or i["role"] == role]

    def writer(self, view: dict[str, Any] | None = None) -> dict[str, Any] | None:
        writers = self.instances(role="writer", view=view)
        assert len(writers) <= 1, f"two writers recorded: {writers}"
        return writers[0] if writers else None

    def storage_nodes(self, *, az: str | None = None,
                      view: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        view = view or self.status()
        return [n for n in view["storage_nodes"] if az is None or n["az"] == az]

    def storage_dir(self, node_id: str) -> Path:
        return self.data_dir / "storage" / node_id

    def fully_healthy(self, view: dict[str, Any] | None = None) -> bool:
        """One writer, every instance available, and every PG with all six segments
        healthy (a node whose segments were rebuilt elsewhere may stay down: it holds none)."""
        view = view or self.status()
        instances = view["instances"]
        if [i["role"] for i in instances].count("writer") != 1:
            return False
        if any(i["state"] != "available" for i in instances):
            return False
        groups = view.get("protection_groups") or []
        return bool(groups) and all(pg.get("healthy") == 6 for pg in groups)

    # -- signals by PID --------------------------------------------------------------------

    def instance_owned(self, pid: int, instance_id: str) -> bool:
        return owned(pid, "instance", str(self.data_dir / "volume.json"), instance_id)

    def node_owned(self, pid: int, node_id: str) -> bool:
        return owned(pid, "storage-node", str(self.storage_dir(node_id)))

    def signal_instance(self, instance: dict[str, Any], sig: signal.Signals) -> bool:
        """Signal an instance by its PID if that PID is still this instance's process."""
        pid = int(instance.get("pid") or 0)
        if not self.instance_owned(pid, str(instance["id"])):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            return True
        return False

    def signal_node(self, node: dict[str, Any], sig: signal.Signals) -> bool:
        pid = int(node.get("pid") or 0)
        if not self.node_owned(pid, str(node["id"])):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            return True
        return False

    def wait_exit(self, pid: int, timeout_s: float = KILL_WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and not _zombie(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


def owned(pid: int, *markers: str) -> bool:
    """The PID is alive and each marker is one of its command-line arguments: this data
    dir's process, not whatever reused the PID (the rule ``control.plane`` follows too)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return not _zombie(pid) and all(os.fsencode(m) in cmdline for m in markers)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"
