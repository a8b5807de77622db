"""Local storage-node and instance processes: start, stop, kill -9 and restart them, by PID.

Used by ``borealis up`` and by the integration tests. Every process binds to its host's
address (127.0.0.1, or its network namespace's in netns mode: ``control.netns``), writes a
ready file with its address once serving, and logs to ``DIR/logs/NODE.log``. Processes are
only ever signalled by the PID this module started or recorded; in a namespace it is
started through ``ip netns exec``, which execs it, so that PID and ``/proc/PID/cmdline``
are still the program's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from borealis.control.netns import LOOPBACK_ADDRESS, in_namespace
from borealis.errors import BorealisError
from borealis.types import AZ_COUNT, NodeId
from borealis.volume.spec import NodeInfo

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class _Managed:
    """Start, signal and wait for one local process, by the PID it was started with."""

    pid: int
    popen: subprocess.Popen[bytes] | None
    address: str
    port: int
    data_dir: Path
    log_path: Path
    host: str
    """The address it binds to."""
    netns: str
    """The network namespace it runs in ("": the caller's)."""

    @property
    def ready_file(self) -> Path:
        return self.data_dir / "ready.json"

    @property
    def label(self) -> str:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start (or restart on the same port) and wait until it serves."""
        assert self.popen is None or self.popen.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        argv = in_namespace(self.netns, self.argv()) if self.netns else self.argv()
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready_file.exists():
            if self.popen.poll() is not None:
                raise BorealisError(
                    f"{self.label} exited with {self.popen.returncode} while "
                    f"starting; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise BorealisError(f"{self.label} did not start in "
                                    f"{START_TIMEOUT_S}s; see {self.log_path}")
            time.sleep(0.02)
        self.ready = json.loads(self.ready_file.read_text())
        self.address = self.ready["address"]
        self.port = int(self.address.rpartition(":")[2])

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        self._signal(signal.SIGKILL)
        self._wait(STOP_TIMEOUT_S)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if not self.alive():
            return
        self._signal(signal.SIGTERM)
        if not self._wait(STOP_TIMEOUT_S):
            self.kill()

    def _signal(self, sig: int) -> None:
        if self.pid and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _wait(self, timeout_s: float) -> bool:
        if self.popen is not None:
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout_s
        while pid_alive(self.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


@dataclass
class NodeProcess(_Managed):
    node: NodeId
    az: str
    data_dir: Path
    log_path: Path
    port: int = 0
    pid: int = 0
    address: str = ""
    popen: subprocess.Popen[bytes] | None = None
    host: str = LOOPBACK_ADDRESS
    netns: str = ""

    @property
    def label(self) -> str:
        return f"storage node {self.node}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "borealis", "storage-node", "--az", self.az,
                "--data-dir", str(self.data_dir), "--node-id", self.node,
                "--listen", f"{self.host}:{self.port}", "--ready-file", str(self.ready_file)]

    def info(self) -> NodeInfo:
        return NodeInfo(self.node, self.az, self.address)


@dataclass
class InstanceProcess(_Managed):
    """A database instance (``borealis instance``) on the volume described by ``volume``."""

    instance_id: str
    az: str
    volume: Path
    data_dir: Path
    log_path: Path
    role: str = "writer"
    port: int = 0
    pid: int = 0
    address: str = ""
    popen: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()
    host: str = LOOPBACK_ADDRESS
    netns: str = ""

    @property
    def label(self) -> str:
        return f"instance {self.instance_id}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "borealis", "instance", "run", "--role", self.role,
                "--volume", str(self.volume), "--instance-id", self.instance_id,
                "--az", self.az, "--listen", f"{self.host}:{self.port}",
                "--ready-file", str(self.ready_file), *self.extra_args]


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def storage_fleet(data_dir: Path, *, nodes_per_az: int = 2) -> list[NodeProcess]:
    """The node processes of a local cluster: ``nodes_per_az`` in each of three AZs."""
    nodes = []
    for a in range(1, AZ_COUNT + 1):
        for n in range(1, nodes_per_az + 1):
            node = NodeId(f"az{a}-n{n}")
            nodes.append(NodeProcess(node, f"az{a}", data_dir / "storage" / node,
                                     data_dir / "logs" / f"{node}.log"))
    return nodes
