"""Local storage-node and instance processes: start, stop, kill -9 and restart them, by PID.

Used by ``borealis up`` and by the integration tests. Every process binds to its host's
address (127.0.0.1, or its network namespace's in netns mode: ``control.netns``), writes a
ready file with its address once serving, and logs to ``DIR/logs/NODE.log``. Processes are
only ever signalled by the PID this module started or recorded; in a namespace it is
started through ``ip netns exec``, which execs it, so that PID and ``/proc/PID/cmdline``
are still the program's own.

With ``BOREALIS_FAKETIME_DIR`` set (the chaos suite's ``clock-skew`` nemesis sets it for
``borealis up``, and the control plane inherits it), every process started here runs under
libfaketime with a clock file of its own, ``DIR/<clock_name>`` (``faketime_env``), so that a
nemesis can skew each process's wall clock while it runs. The control plane itself is not
one of them: it keeps the real clock of whoever ran ``borealis up`` (the chaos runner's),
so the failover timing and the event times it records are never skewed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from borealis.control.netns import LOOPBACK_ADDRESS, in_namespace
from borealis.errors import BorealisError, ConfigError
from borealis.types import AZ_COUNT, NodeId
from borealis.volume.spec import NodeInfo

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

FAKETIME_DIR_ENV = "BOREALIS_FAKETIME_DIR"
"""A directory of clock files: when set, every process started here runs under libfaketime."""
LIBFAKETIME_ENV = "BOREALIS_LIBFAKETIME"
"""The libfaketime shared object to preload, if not at ``LIBFAKETIME_DEFAULT``."""
LIBFAKETIME_DEFAULT = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
"""Where Debian's ``libfaketime`` package puts the thread-safe library."""
CLOCK_OFFSET_NONE = "+0"
"""A clock file's content for the real time (libfaketime's relative offset syntax)."""


def faketime_env(clock_name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a process named ``clock_name`` runs under libfaketime with, or ``{}``
    when ``BOREALIS_FAKETIME_DIR`` is not set in ``environ`` (default: ``os.environ``).

    The process's wall clock is the real one shifted by the offset in
    ``DIR/clock_name`` (created with ``+0`` if absent; a nemesis rewrites it, e.g. ``-60s``),
    read again on every call (``FAKETIME_NO_CACHE``: a ``time.time()`` costs about 3 µs
    instead of 0.2 µs, and a rewrite takes effect at once, as a clock step does).
    ``CLOCK_MONOTONIC`` stays real (``DONT_FAKE_MONOTONIC``): a machine's clock skew or NTP
    step moves its wall time, never its monotonic clock, and every timeout here runs on the
    monotonic clock. So libfaketime must not "fix" waits on the monotonic clock either
    (``FAKETIME_FORCE_MONOTONIC_FIX=0``): with its default fix (0.9.10), the GIL's timed
    waits (``pthread_cond_timedwait`` on ``CLOCK_MONOTONIC``) misfire and a process with a
    few busy threads runs about 10 times slower (200 inserts: 23 s instead of 1.8 s).

    Known gap (libfaketime 0.9.10, its issue 426): with ``DONT_FAKE_MONOTONIC``,
    ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` fails with EINVAL, so Python's
    ``time.sleep`` raises ``OSError`` in such a process (SQL ``pg_sleep`` is the only server
    code that calls it); ``asyncio``, ``select``, ``usleep`` and ``threading`` waits work."""
    environ = os.environ if environ is None else environ
    directory = environ.get(FAKETIME_DIR_ENV, "")
    if not directory:
        return {}
    assert clock_name and "/" not in clock_name and not clock_name.startswith("."), clock_name
    library = Path(environ.get(LIBFAKETIME_ENV) or LIBFAKETIME_DEFAULT)
    if not library.is_file():
        raise ConfigError(f"{FAKETIME_DIR_ENV} is set but libfaketime is not at {library}: "
                          f"install the faketime package, or name the library in "
                          f"{LIBFAKETIME_ENV}")
    clock_file = Path(directory) / clock_name
    clock_file.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError), open(clock_file, "x") as f:
        f.write(CLOCK_OFFSET_NONE + "\n")   # a process restarted keeps its machine's skew
    preload = " ".join(p for p in (str(library), environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload, "FAKETIME_TIMESTAMP_FILE": str(clock_file),
            "FAKETIME_NO_CACHE": "1", "DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_FORCE_MONOTONIC_FIX": "0"}


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

    @property
    def clock_name(self) -> str:
        """The name of its clock file under ``BOREALIS_FAKETIME_DIR`` (``faketime_env``)."""
        return self.label.rpartition(" ")[2]

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start (or restart on the same port) and wait until it serves."""
        assert self.popen is None or self.popen.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        argv = in_namespace(self.netns, self.argv()) if self.netns else self.argv()
        faketime = faketime_env(self.clock_name)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **faketime} if faketime else None,
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

    @property
    def clock_name(self) -> str:
        return str(self.node)

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

    @property
    def clock_name(self) -> str:
        return self.instance_id

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
