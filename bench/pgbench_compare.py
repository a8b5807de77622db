"""pgbench against Borealis, stock PostgreSQL 15, and PostgreSQL with five synchronous standbys.

What it measures: in one run, with pgbench's built-in scripts at ``--scale`` (default 10:
1,000,000 accounts), each ``--seconds`` long (default 30) and in the same ``--mode`` (default
``simple``, the plain query protocol) for every target:

- ``tpcb_c1``: TPC-B (sort of), 1 client;
- ``tpcb_c8``: TPC-B (sort of), 8 clients;
- ``select_c8``: select-only, 8 clients;

against three targets, one after the other so that they never share the two cores:

- ``borealis``: six ``borealis storage-node`` processes (two in each of three AZs), a writer
  instance serving the PostgreSQL protocol (``--pg-listen``), and one reader instance
  following its redo stream. A commit is acknowledged once durable on 4 of 6 nodes.
- ``postgres``: one stock PostgreSQL 15 (``initdb --auth=trust``, loopback only,
  ``synchronous_commit=on``, ``fsync=on``, ``full_page_writes=on``, the default
  ``shared_buffers=128MB``, ``max_connections=100``). A commit is durable on one disk.
- ``mirrored``: a PostgreSQL primary and five streaming standbys (``pg_basebackup -R``),
  ``synchronous_standby_names = 'ANY 3 (s1,s2,s3,s4,s5)'`` and ``synchronous_commit=on``:
  a commit is acknowledged once flushed on the primary and three standbys, four durable
  copies like Borealis' 4/6 write quorum. The run starts only once all five standbys
  stream with ``sync_state = quorum``.

Every pgbench talks TCP to 127.0.0.1 (Unix sockets of PostgreSQL live in a private temp
dir); pgbench's usual set-up runs before each run (``vacuum`` of branches and tellers,
``truncate pgbench_history``), and the PostgreSQL targets get a ``CHECKPOINT`` before each
run so that no run starts with the previous one's dirty buffers. ``-j`` is
``min(clients, --jobs)`` (default 2, the machine's cores). Borealis gets
``--cache-mib 128``, PostgreSQL's ``shared_buffers``.

Reported per target and run: tps (without initial connection time), average latency and
pgbench's "number of failed transactions" (``*_failed``: a run with failed transactions is
flagged in the summary and listed under ``failed_runs``). A target that cannot start or
whose ``pgbench -i`` fails is reported with the first error lines of pgbench (or of the
process) in ``<target>_error`` and nulls for its numbers; the other targets still run.

Replica lag: ``replica_lag_p99_ms`` is the Borealis reader's lag (from the writer sending a
VDL advance to the reader applying it), p99 over its last 4,096 advances, read from its
``status`` right after the TPC-B 8-client run. ``mirrored_replica_lag_p99_ms`` is
PostgreSQL's ``replay_lag`` of the five standbys (``pg_stat_replication``: from the primary
flushing WAL to a standby reporting it replayed), sampled every 0.5 s during the TPC-B
8-client run; it is a per-standby moving figure, not a per-commit one, so the two are
comparable only roughly.

PostgreSQL refuses to run as root: as root, initdb, postgres and pg_basebackup run as the
OS user ``--pg-user`` (default ``postgres``; subprocess' ``user=``/``group=``, so each PID we
hold is the postmaster itself, not a wrapper); as another user they run as that user. The
server binaries come from ``--pg-bin`` (default ``/usr/lib/postgresql/15/bin``).

Every process this starts is stopped by its PID when its target is done, and also on
Ctrl-C, SIGTERM or an exception; the temp dir is removed unless ``--keep``.

    python bench/pgbench_compare.py                      # the full, required run
    python bench/pgbench_compare.py --only postgres,mirrored --seconds 10   # ~80 s here
    python bench/pgbench_compare.py --only borealis --seconds 5 --keep

With the defaults the two PostgreSQL targets take about 4 minutes on the 2-core VM (each
``pgbench -i -s 10`` 2-5 s, then three 30 s runs); Borealis adds its own ``pgbench -i``,
whose time is not known yet (it fails today: see below).

Status (2026-11-27): the Borealis target fails at ``pgbench -i`` (its first statement,
``drop table if exists a, b, c, d``, is a SQLite syntax error; with ``--init-steps t`` the
``create table ... with (fillfactor=100)`` is) until the PostgreSQL SQL translation lands;
the script reports that in ``borealis_error`` and goes on. Its run and reader-lag path was
checked with a stand-in for pgbench.

Progress goes to stderr; the last line on stdout is one JSON object (sorted keys), with
at least ``borealis_tpcb_c8_tps``, ``postgres_tpcb_c8_tps``, ``mirrored_tpcb_c8_tps``,
``ratio_vs_postgres`` (Borealis TPC-B c8 tps / PostgreSQL's), ``ratio_vs_mirrored``
(/ mirrored's), ``borealis_select_c8_tps``, ``postgres_select_c8_tps`` and
``replica_lag_p99_ms``; a target not run or failed has nulls, and so do the ratios it
takes part in. Exit status 1 if a requested target failed, else 0.

The bar (issue): Borealis TPC-B with 8 clients at least 1.5x the mirrored PostgreSQL
(``ratio_vs_mirrored >= 1.5``); the aim, at least stock PostgreSQL (``ratio_vs_postgres >=
1.0``).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime
import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from borealis.control.processes import InstanceProcess, NodeProcess, storage_fleet
from borealis.errors import BorealisError
from borealis.instance.remote import InstanceClient
from borealis.types import VolumeId
from borealis.volume.geometry import Geometry
from borealis.volume.spec import VolumeSpec

TARGETS = ("borealis", "postgres", "mirrored")
MODES = ("simple", "extended", "prepared")
PG_BIN_DEFAULT = Path("/usr/lib/postgresql/15/bin")
STANDBYS = 5
SYNC_QUORUM = 3
"""ANY 3 of 5 standbys plus the primary: four durable copies, as Borealis' 4/6."""
assert SYNC_QUORUM + 1 == 4
assert SYNC_QUORUM <= STANDBYS
BOREALIS_PG_MIB = 64
BOREALIS_CACHE_MIB = 128
"""The same memory for pages as PostgreSQL's default shared_buffers."""
PG_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "synchronous_commit": "on",
    "fsync": "on",
    "full_page_writes": "on",
    "shared_buffers": "128MB",
    "max_connections": "100",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "logging_collector": "off",
}
READY_TIMEOUT_S = 60.0
QUORUM_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
CLIENT_STOP_TIMEOUT_S = 5.0
INIT_TIMEOUT_S_DEFAULT = 1800.0
RUN_GRACE_S = 120.0
"""How long past ``--seconds`` a pgbench run may take before it is killed as hung."""
LAG_SAMPLE_INTERVAL_S = 0.5
ERROR_LINES_MAX = 5
ERROR_CHARS_MAX = 600
LOG_TAIL_LINES = 8
PSQL_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class RunSpec:
    name: str
    script: str
    clients: int


RUNS = (
    RunSpec("tpcb_c1", "tpcb-like", 1),
    RunSpec("tpcb_c8", "tpcb-like", 8),
    RunSpec("select_c8", "select-only", 8),
)
LAG_RUN = "tpcb_c8"
"""Replica lag is measured during (PostgreSQL) or right after (Borealis) this run."""


class BenchError(Exception):
    """A target could not be set up or measured; the message is what the report says."""


# --- progress, signals and cleanup ------------------------------------------------------

_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class _Deferral:
    depth: int = 0
    pending: int | None = None


_deferral = _Deferral()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM and Ctrl-C end the run through the same path: SystemExit unwinds every cleanup
    # scope, which stops processes by PID. While a scope is cleaning up the signal waits.
    if _deferral.depth:
        _deferral.pending = signum
        return
    log(f"signal {signal.Signals(signum).name}: stopping every process started, by PID")
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    _deferral.depth += 1
    try:
        yield
    finally:
        _deferral.depth -= 1
        if _deferral.depth == 0 and _deferral.pending is not None:
            signum, _deferral.pending = _deferral.pending, None
            raise SystemExit(128 + signum)


@contextlib.contextmanager
def cleanup_scope() -> Iterator[contextlib.ExitStack]:
    """An ExitStack whose callbacks (stopping processes) run with signals deferred."""
    stack = contextlib.ExitStack()
    try:
        yield stack
    finally:
        with signals_deferred():
            stack.close()


def stop_popen(popen: subprocess.Popen[Any], label: str, *, sig: int = signal.SIGTERM,
               timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Signal the process we started (by its PID), wait, SIGKILL if it does not exit."""
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(popen.pid, sig)
    try:
        popen.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log(f"{label} (pid {popen.pid}) did not stop in {timeout_s:.0f} s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, signal.SIGKILL)
        popen.wait(STOP_TIMEOUT_S)


def spawn(stack: contextlib.ExitStack, argv: list[str], *, label: str,
          stop_signal: int = signal.SIGTERM, stop_timeout_s: float = STOP_TIMEOUT_S,
          **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start a process in its own session (Ctrl-C reaches us, not it) and register its stop
    on ``stack`` before a signal can come between the two."""
    with signals_deferred():
        popen: subprocess.Popen[Any] = subprocess.Popen(argv, start_new_session=True,
                                                        **popen_kwargs)
        stack.callback(stop_popen, popen, label, sig=stop_signal, timeout_s=stop_timeout_s)
    return popen


def first_error_lines(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines
              if re.search(r"error|fatal|abort|refused|not supported|detail|hint", line, re.I)]
    chosen = errors[:ERROR_LINES_MAX] if errors else lines[-ERROR_LINES_MAX:]
    joined = " | ".join(chosen) or "(no output)"
    return joined[:ERROR_CHARS_MAX]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def client_env() -> dict[str, str]:
    """No PG* variables of the caller's shell leak into our clients."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


# --- pgbench -----------------------------------------------------------------------------


@dataclass(slots=True)
class RunResult:
    tps: float | None = None
    latency_ms: float | None = None
    failed: int | None = None
    processed: int | None = None
    error: str | None = None


@dataclass(slots=True)
class TargetResult:
    runs: dict[str, RunResult] = field(default_factory=dict)
    error: str | None = None
    init_s: float | None = None
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    notes: list[str] = field(default_factory=list)


def parse_pgbench(stdout: str) -> RunResult:
    def number(pattern: str) -> str | None:
        match = re.search(pattern, stdout, re.M)
        return match.group(1) if match else None

    tps = number(r"^tps = ([\d.]+) \(without initial connection time\)")
    latency = number(r"^latency average = ([\d.]+) ms")
    failed = number(r"^number of failed transactions: (\d+)")
    processed = number(r"^number of transactions actually processed: (\d+)")
    return RunResult(tps=float(tps) if tps is not None else None,
                     latency_ms=float(latency) if latency is not None else None,
                     failed=int(failed) if failed is not None else None,
                     processed=int(processed) if processed is not None else None)


def run_client(stack: contextlib.ExitStack, argv: list[str], *, label: str, timeout_s: float,
               echo: bool) -> tuple[int, str, str]:
    """Run a client (pgbench) to completion: its stderr echoed as progress when ``echo``,
    killed by PID after ``timeout_s``. Returns (exit status, stdout, stderr)."""
    popen = spawn(stack, argv, label=label, stop_timeout_s=CLIENT_STOP_TIMEOUT_S,
                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  text=True, env=client_env())
    out: list[str] = []
    err: list[str] = []

    def drain(stream: IO[str], into: list[str], show: bool) -> None:
        for line in stream:
            into.append(line)
            if show:
                log(f"  {label}: {line.rstrip()}")

    assert popen.stdout is not None and popen.stderr is not None
    readers = [threading.Thread(target=drain, args=(popen.stdout, out, False), daemon=True),
               threading.Thread(target=drain, args=(popen.stderr, err, echo), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        status = popen.wait(timeout_s)
    except subprocess.TimeoutExpired:
        stop_popen(popen, label, timeout_s=CLIENT_STOP_TIMEOUT_S)
        for reader in readers:
            reader.join(5)
        raise BenchError(f"{label} did not finish in {timeout_s:.0f} s (killed); last "
                         f"output: {first_error_lines(''.join(err))}") from None
    for reader in readers:
        reader.join(5)
    return status, "".join(out), "".join(err)


@dataclass(frozen=True, slots=True)
class Bench:
    """The run's parameters, shared by every target."""

    scale: int
    seconds: float
    mode: str
    jobs: int
    init_timeout_s: float
    init_steps: str | None

    def conn(self, port: int) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]

    def init(self, stack: contextlib.ExitStack, target: str, port: int) -> float:
        argv = ["pgbench", *self.conn(port), "-i", "-s", str(self.scale), "-q"]
        if self.init_steps:
            argv += ["-I", self.init_steps]
        log(f"{target}: pgbench -i -s {self.scale}")
        started = time.monotonic()
        status, _, err = run_client(stack, [*argv, "postgres"], label=f"{target} init",
                                    timeout_s=self.init_timeout_s, echo=True)
        if status != 0:
            raise BenchError(f"pgbench -i exited with {status}: {first_error_lines(err)}")
        elapsed = time.monotonic() - started
        log(f"{target}: loaded scale {self.scale} in {elapsed:.1f} s")
        return elapsed

    def run(self, stack: contextlib.ExitStack, target: str, port: int,
            spec: RunSpec) -> RunResult:
        progress_s = 5 if self.seconds >= 10 else 1
        options = ["-b", spec.script, "-M", self.mode, "-c", str(spec.clients),
                   "-j", str(min(spec.clients, self.jobs)), "-T", str(max(1, round(self.seconds))),
                   "-P", str(progress_s)]
        log(f"{target}: {spec.name}: pgbench {' '.join(options)}")
        argv = ["pgbench", *self.conn(port), *options, "postgres"]
        status, out, err = run_client(stack, argv, label=f"{target} {spec.name}",
                                      timeout_s=self.seconds + RUN_GRACE_S, echo=True)
        result = parse_pgbench(out)
        if status != 0 or result.tps is None:
            # pgbench exits 2 when a client aborted (any error but a serialization or
            # deadlock failure): its numbers are then incomplete, so none are reported.
            result = RunResult(error=f"{spec.name}: pgbench exited with {status}: "
                                     f"{first_error_lines(err + out)}")
            log(f"{target}: {spec.name} FAILED: {result.error}")
        else:
            failed = f", {result.failed} FAILED transactions" if result.failed else ""
            log(f"{target}: {spec.name}: {result.tps:.1f} tps, latency average "
                f"{result.latency_ms} ms{failed}")
        return result

    def suite(self, stack: contextlib.ExitStack, target: str, port: int, out: TargetResult, *,
              before_run: Callable[[], None] | None = None,
              around_lag_run: Callable[[], contextlib.AbstractContextManager[Any]] | None
              = None,
              after_lag_run: Callable[[], None] | None = None) -> None:
        out.init_s = round(self.init(stack, target, port), 2)
        for spec in RUNS:
            if before_run is not None:
                before_run()
            with contextlib.ExitStack() as around:
                if spec.name == LAG_RUN and around_lag_run is not None:
                    around.enter_context(around_lag_run())
                out.runs[spec.name] = self.run(stack, target, port, spec)
            if spec.name == LAG_RUN and after_lag_run is not None:
                after_lag_run()


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PgHost:
    """Where and as whom PostgreSQL's server programs run."""

    bin_dir: Path
    user: str | None
    """The OS user to run as (we are root), or None: as ourselves."""
    root: Path
    """A directory that user owns, for data dirs and the Unix sockets."""

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def as_user(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env["LC_ALL"] = "C"
        kwargs: dict[str, Any] = {"cwd": str(self.root), "env": env}
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            env["HOME"] = entry.pw_dir
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        return kwargs

    def run(self, argv: list[str], *, what: str, timeout_s: float = 300.0) -> None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                  stdin=subprocess.DEVNULL, start_new_session=True,
                                  **self.as_user())
        except subprocess.TimeoutExpired as exc:
            # subprocess.run kills the child (its PID) on timeout before raising.
            raise BenchError(f"{what} did not finish in {timeout_s:.0f} s") from exc
        if done.returncode != 0:
            raise BenchError(f"{what} exited with {done.returncode}: "
                             f"{first_error_lines(done.stderr + done.stdout)}")


def pg_host(bin_dir: Path, requested_user: str, tmp: Path) -> PgHost:
    """Find the server binaries and an OS user PostgreSQL will run as, or say why not."""
    for program in ("initdb", "postgres", "pg_basebackup", "pg_isready"):
        if not (bin_dir / program).exists():
            raise BenchError(f"no {bin_dir / program}: install PostgreSQL 15's server "
                             "(postgresql-15) or pass --pg-bin")
    user: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(requested_user)
        except KeyError:
            raise BenchError(
                f"running as root, which PostgreSQL refuses, and there is no OS user "
                f"{requested_user!r} to run it as: create one (useradd --system "
                f"{requested_user}), pass --pg-user, or run this as a non-root user"
            ) from None
        user = requested_user
    root = tmp / "pg"
    root.mkdir()
    (root / "sock").mkdir()
    if user is not None:
        # The temp dir itself stays root's; its owner lets others traverse it, not list it.
        tmp.chmod(0o711)
        for path in (root, root / "sock"):
            shutil.chown(path, user, user)
    return PgHost(bin_dir, user, root)


def psql(port: int, sql: str, *, timeout_s: float = PSQL_TIMEOUT_S) -> str:
    argv = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-p", str(port), "-U", "postgres", "-d", "postgres", "-c", sql]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, env=client_env(),
                              start_new_session=True)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"psql {sql!r} did not finish in {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        raise BenchError(f"psql {sql!r}: {first_error_lines(done.stderr)}")
    return done.stdout.strip()


@dataclass
class PgServer:
    name: str
    data_dir: Path
    port: int
    log_path: Path
    popen: subprocess.Popen[Any] | None = None


def start_postgres(stack: contextlib.ExitStack, host: PgHost, server: PgServer,
                   settings: dict[str, str]) -> None:
    all_settings = {**PG_SETTINGS, "port": str(server.port),
                    "unix_socket_directories": str(host.socket_dir), **settings}
    argv = [str(host.bin_dir / "postgres"), "-D", str(server.data_dir)]
    for key, value in all_settings.items():
        argv += ["-c", f"{key}={value}"]
    server.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(server.log_path, "ab") as log_file:
        # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, not waited for.
        server.popen = spawn(stack, argv, label=f"postgres {server.name}",
                             stop_signal=signal.SIGINT, stdin=subprocess.DEVNULL,
                             stdout=log_file, stderr=subprocess.STDOUT, **host.as_user())
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if server.popen.poll() is not None:
            raise BenchError(f"postgres {server.name} exited with {server.popen.returncode} "
                             f"while starting: {first_error_lines(log_tail(server.log_path))}")
        ready = subprocess.run([str(host.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(server.port), "-U", "postgres", "-d", "postgres"],
                               env=client_env(), stdin=subprocess.DEVNULL, check=False)
        if ready.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"postgres {server.name} did not accept connections in "
                             f"{READY_TIMEOUT_S:.0f} s; log: {log_tail(server.log_path)}")
        time.sleep(0.2)
    log(f"postgres {server.name}: pid {server.popen.pid}, port {server.port}")


def initdb(host: PgHost, data_dir: Path) -> None:
    host.run([str(host.bin_dir / "initdb"), "-D", str(data_dir), "--auth=trust",
              "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-instructions"],
             what=f"initdb {data_dir.name}")


def checkpoint(port: int) -> Callable[[], None]:
    def run() -> None:
        psql(port, "CHECKPOINT")

    return run


def run_postgres(stack: contextlib.ExitStack, bench: Bench, host: PgHost, logs: Path,
                 out: TargetResult) -> None:
    server = PgServer("postgres", host.root / "postgres", free_port(),
                      logs / "postgres.log")
    initdb(host, server.data_dir)
    start_postgres(stack, host, server, {})
    bench.suite(stack, "postgres", server.port, out, before_run=checkpoint(server.port))


@dataclass
class LagSampler:
    """``replay_lag`` of every standby from ``pg_stat_replication``, every
    LAG_SAMPLE_INTERVAL_S, by one psql ``\\watch`` (one process, one connection)."""

    port: int
    samples_ms: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        query = ("SELECT 'lag:' || coalesce(string_agg((extract(epoch FROM replay_lag) * 1000)"
                 "::text, ','), '') FROM pg_stat_replication WHERE replay_lag IS NOT NULL")
        argv = ["psql", "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "-d", "postgres"]
        with cleanup_scope() as own:
            popen = spawn(own, argv, label="replay-lag sampler",
                          stop_timeout_s=CLIENT_STOP_TIMEOUT_S, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env=client_env())
            assert popen.stdin is not None and popen.stdout is not None
            popen.stdin.write(f"{query}\n\\watch {LAG_SAMPLE_INTERVAL_S}\n")
            popen.stdin.flush()
            stdout = popen.stdout

            def read() -> None:
                for line in stdout:
                    if line.startswith("lag:") and line[4:].strip():
                        self.samples_ms += [float(v) for v in line[4:].strip().split(",")]

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                yield
            finally:
                stop_popen(popen, "replay-lag sampler", timeout_s=CLIENT_STOP_TIMEOUT_S)
                reader.join(5)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_mirrored(stack: contextlib.ExitStack, bench: Bench, host: PgHost, logs: Path,
                 out: TargetResult) -> None:
    names = [f"s{k}" for k in range(1, STANDBYS + 1)]
    primary = PgServer("mirrored-primary", host.root / "mirrored-primary", free_port(),
                       logs / "mirrored-primary.log")
    initdb(host, primary.data_dir)
    sync_names = f"ANY {SYNC_QUORUM} ({','.join(names)})"
    start_postgres(stack, host, primary, {"synchronous_standby_names": sync_names})
    for name in names:
        standby = PgServer(f"mirrored-{name}", host.root / f"mirrored-{name}", free_port(),
                           logs / f"mirrored-{name}.log")
        host.run([str(host.bin_dir / "pg_basebackup"), "-h", "127.0.0.1",
                  "-p", str(primary.port), "-U", "postgres", "-D", str(standby.data_dir),
                  "-R", "-X", "stream", "-c", "fast"], what=f"pg_basebackup {name}")
        # On the command line, primary_conninfo overrides the one -R wrote, so that each
        # standby names itself in synchronous_standby_names.
        conninfo = (f"host=127.0.0.1 port={primary.port} user=postgres "
                    f"application_name={name}")
        start_postgres(stack, host, standby, {"primary_conninfo": conninfo,
                                              "hot_standby": "on"})
    deadline = time.monotonic() + QUORUM_TIMEOUT_S
    while True:
        quorum = int(psql(primary.port, "SELECT count(*) FROM pg_stat_replication WHERE "
                                        "state = 'streaming' AND sync_state = 'quorum'"))
        if quorum == STANDBYS:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"only {quorum} of {STANDBYS} standbys streaming in quorum "
                             f"after {QUORUM_TIMEOUT_S:.0f} s")
        time.sleep(0.5)
    log(f"mirrored: {STANDBYS} standbys streaming, synchronous_standby_names = "
        f"'{sync_names}'")
    sampler = LagSampler(primary.port)
    bench.suite(stack, "mirrored", primary.port, out, before_run=checkpoint(primary.port),
                around_lag_run=sampler.sampling)
    p50, p99 = percentile(sampler.samples_ms, 0.5), percentile(sampler.samples_ms, 0.99)
    out.lag_p50_ms = round(p50, 3) if p50 is not None else None
    out.lag_p99_ms = round(p99, 3) if p99 is not None else None
    log(f"mirrored: replay_lag over {len(sampler.samples_ms)} samples: p50 {out.lag_p50_ms} "
        f"ms, p99 {out.lag_p99_ms} ms")


# --- Borealis ------------------------------------------------------------------------------


def stop_all(processes: list[NodeProcess]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(processes)) as pool:
        list(pool.map(lambda p: p.stop(), processes))


async def reader_status(address: str) -> dict[str, Any]:
    client = await InstanceClient.connect(address)
    try:
        return await client.status()
    finally:
        await client.close()


def run_borealis(stack: contextlib.ExitStack, bench: Bench, tmp: Path, port: int,
                 cache_mib: int, out: TargetResult) -> None:
    root = tmp / "borealis"
    nodes = storage_fleet(root)
    stack.callback(stop_all, nodes)
    try:
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.start(), nodes))
    except BorealisError as exc:
        raise BenchError(f"storage nodes did not start: {exc}") from exc
    log(f"borealis: {len(nodes)} storage nodes (pids "
        f"{', '.join(str(n.pid) for n in nodes)})")
    spec_path = root / "volume.json"
    geometry = Geometry(VolumeId("pgbench"), pg_bytes=BOREALIS_PG_MIB * 2**20)
    VolumeSpec(geometry, {n.node: n.info() for n in nodes}).save(spec_path)
    writer = InstanceProcess(
        "pgbench-writer", "az1", spec_path, root / "instances" / "writer",
        root / "logs" / "writer.log",
        extra_args=("--pg-listen", f"127.0.0.1:{port}", "--cache-mib", str(cache_mib)))
    stack.callback(writer.stop)
    try:
        writer.start()
    except BorealisError as exc:
        raise BenchError(f"writer did not start: {exc}: "
                         f"{first_error_lines(log_tail(writer.log_path))}") from exc
    pg_address = writer.ready.get("pg_address")
    if not pg_address:
        raise BenchError("the writer serves no PostgreSQL protocol (no pg_address in its "
                         "ready file)")
    pg_port = int(str(pg_address).rpartition(":")[2])
    log(f"borealis: writer pid {writer.pid}, PostgreSQL protocol on {pg_address}")
    reader = InstanceProcess(
        "pgbench-reader", "az2", spec_path, root / "instances" / "reader",
        root / "logs" / "reader.log", role="reader",
        extra_args=("--writer", writer.address, "--cache-mib", str(cache_mib)))
    stack.callback(reader.stop)
    try:
        reader.start()
        log(f"borealis: reader pid {reader.pid}, following the writer")
    except BorealisError as exc:
        # The reader only gives the lag; the throughput runs go on without it.
        out.notes.append(f"reader did not start ({exc}): no replica lag")
        log(f"borealis: {out.notes[-1]}")

    def read_lag() -> None:
        if not reader.alive() or out.runs[LAG_RUN].tps is None:
            return
        try:
            status = asyncio.run(reader_status(reader.address))
        except (BorealisError, OSError) as exc:
            out.notes.append(f"reader status failed: {exc}")
            return
        out.lag_p50_ms = status.get("lag_p50_ms")
        out.lag_p99_ms = status.get("lag_p99_ms")
        log(f"borealis: reader lag p50 {out.lag_p50_ms} ms, p99 {out.lag_p99_ms} ms over "
            f"its last VDL advances ({status.get('redo_messages')} redo messages)")

    try:
        bench.suite(stack, "borealis", pg_port, out, after_lag_run=read_lag)
    except BenchError:
        tail = log_tail(writer.log_path)
        if tail:
            log(f"borealis: the writer's log ends with:\n{tail}")
        raise


# --- the report ----------------------------------------------------------------------------


def version_of(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def report(args: argparse.Namespace, targets: list[str], results: dict[str, TargetResult],
           pg_bin: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    failed_runs: list[str] = []
    for target in TARGETS:
        result = results.get(target)
        for spec in RUNS:
            run = result.runs.get(spec.name) if result else None
            run = run or RunResult()
            prefix = f"{target}_{spec.name}"
            summary[f"{prefix}_tps"] = round(run.tps, 1) if run.tps is not None else None
            summary[f"{prefix}_latency_ms"] = run.latency_ms
            summary[f"{prefix}_failed"] = run.failed
            if run.failed:
                failed_runs.append(prefix)
        errors = [e for e in ([result.error] if result else []) if e]
        errors += [r.error for r in (result.runs.values() if result else []) if r.error]
        summary[f"{target}_error"] = "; ".join(errors) if errors else None
        summary[f"{target}_init_s"] = result.init_s if result else None
        if result and result.notes:
            summary[f"{target}_notes"] = result.notes
    borealis, mirrored = results.get("borealis"), results.get("mirrored")
    summary["replica_lag_p99_ms"] = borealis.lag_p99_ms if borealis else None
    summary["replica_lag_p50_ms"] = borealis.lag_p50_ms if borealis else None
    summary["mirrored_replica_lag_p99_ms"] = mirrored.lag_p99_ms if mirrored else None
    summary["mirrored_replica_lag_p50_ms"] = mirrored.lag_p50_ms if mirrored else None
    b8 = summary["borealis_tpcb_c8_tps"]
    summary["ratio_vs_postgres"] = ratio(b8, summary["postgres_tpcb_c8_tps"])
    summary["ratio_vs_mirrored"] = ratio(b8, summary["mirrored_tpcb_c8_tps"])
    summary["ratio_vs_postgres_c1"] = ratio(summary["borealis_tpcb_c1_tps"],
                                            summary["postgres_tpcb_c1_tps"])
    summary["ratio_select_vs_postgres"] = ratio(summary["borealis_select_c8_tps"],
                                                summary["postgres_select_c8_tps"])
    summary["bar_ratio_vs_mirrored"] = 1.5
    summary["meets_bar"] = (summary["ratio_vs_mirrored"] >= 1.5
                            if summary["ratio_vs_mirrored"] is not None else None)
    summary["failed_runs"] = failed_runs
    summary.update({
        "targets": targets, "scale": args.scale, "seconds": args.seconds, "mode": args.mode,
        "jobs": args.jobs, "borealis_cache_mib": args.borealis_cache_mib,
        "pg_shared_buffers": PG_SETTINGS["shared_buffers"],
        "standbys": STANDBYS, "sync_quorum": SYNC_QUORUM,
        "cpu_count": os.cpu_count(),
        "load_average_start": args.load_average_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "date": args.started_at,
        "pgbench_version": version_of(["pgbench", "--version"]),
        "postgres_version": version_of([str(pg_bin / "postgres"), "--version"]),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    })
    return summary


def print_summary(summary: dict[str, Any], targets: list[str]) -> None:
    log("summary (tps, average latency ms):")
    for target in targets:
        cells = []
        for spec in RUNS:
            prefix = f"{target}_{spec.name}"
            tps = summary[f"{prefix}_tps"]
            if tps is None:
                cells.append(f"{spec.name} -")
                continue
            failed = summary[f"{prefix}_failed"]
            flag = f" [{failed} FAILED transactions]" if failed else ""
            cells.append(f"{spec.name} {tps} tps / {summary[f'{prefix}_latency_ms']} ms{flag}")
        log(f"  {target:9} " + "; ".join(cells))
        if summary[f"{target}_error"]:
            log(f"  {target:9} ERROR: {summary[f'{target}_error']}")
    log(f"  replica lag p99: borealis {summary['replica_lag_p99_ms']} ms, mirrored "
        f"(replay_lag) {summary['mirrored_replica_lag_p99_ms']} ms")
    log(f"  ratio_vs_postgres {summary['ratio_vs_postgres']} (aim >= 1.0), ratio_vs_mirrored "
        f"{summary['ratio_vs_mirrored']} (bar >= 1.5)")
    if summary["failed_runs"]:
        log(f"  runs with failed transactions: {', '.join(summary['failed_runs'])}")


# --- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale (default 10)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each pgbench run (default 30)")
    parser.add_argument("--only", default=",".join(TARGETS),
                        help="comma-separated subset of borealis,postgres,mirrored")
    parser.add_argument("--mode", choices=MODES, default="simple",
                        help="pgbench query protocol for every target (default simple)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="pgbench threads: -j min(clients, JOBS) (default 2)")
    parser.add_argument("--init-steps", help="pgbench -I steps (default: pgbench's dtgvp)")
    parser.add_argument("--init-timeout", type=float, default=INIT_TIMEOUT_S_DEFAULT,
                        help="seconds pgbench -i may take (default 1800)")
    parser.add_argument("--borealis-port", type=int, default=0,
                        help="port of the writer's PostgreSQL protocol (default: a free one)")
    parser.add_argument("--borealis-cache-mib", type=int, default=BOREALIS_CACHE_MIB,
                        help="Borealis instances' page cache (default 128, as shared_buffers)")
    parser.add_argument("--pg-bin", type=Path, default=PG_BIN_DEFAULT,
                        help="PostgreSQL server binaries (default /usr/lib/postgresql/15/bin)")
    parser.add_argument("--pg-user", default="postgres",
                        help="OS user to run PostgreSQL as when we are root (default postgres)")
    parser.add_argument("--data-dir", type=Path,
                        help="where to make the temp dir (default: the system's temp dir)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (data and logs) after the run")
    args = parser.parse_args()
    targets = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        parser.error(f"--only takes a subset of {','.join(TARGETS)}; got {args.only!r}")
    args.targets = [t for t in TARGETS if t in targets]
    if args.scale < 1 or args.seconds < 1 or args.jobs < 1:
        parser.error("--scale, --seconds and --jobs must be at least 1")
    # Other sessions share this machine: the load it had when the run began is part of the
    # result.
    args.load_average_start = [round(x, 2) for x in os.getloadavg()]
    args.started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if shutil.which("pgbench") is None or shutil.which("psql") is None:
        log("pgbench and psql must be on PATH")
        return 2
    bench = Bench(args.scale, args.seconds, args.mode, args.jobs, args.init_timeout,
                  args.init_steps)
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="borealis-pgbench-", dir=args.data_dir))
    results: dict[str, TargetResult] = {}
    log(f"targets {','.join(args.targets)}; scale {args.scale}, {args.seconds:g} s a run, "
        f"-M {args.mode}; {os.cpu_count()} cores; temp dir {tmp}")
    try:
        host: PgHost | None = None
        host_error: str | None = None
        if {"postgres", "mirrored"} & set(args.targets):
            try:
                host = pg_host(args.pg_bin, args.pg_user, tmp)
                log(f"PostgreSQL from {host.bin_dir}, as OS user "
                    f"{host.user or pwd.getpwuid(os.geteuid()).pw_name}")
            except BenchError as exc:
                host_error = str(exc)
        for target in args.targets:
            out = results[target] = TargetResult()
            log(f"--- {target} ---")
            try:
                with cleanup_scope() as stack:
                    if target == "borealis":
                        run_borealis(stack, bench, tmp, args.borealis_port,
                                     args.borealis_cache_mib, out)
                    elif host is None:
                        raise BenchError(host_error or "no PostgreSQL")
                    elif target == "postgres":
                        run_postgres(stack, bench, host, tmp / "logs", out)
                    else:
                        run_mirrored(stack, bench, host, tmp / "logs", out)
                    log(f"{target}: stopping its processes")
            except (BenchError, BorealisError) as exc:
                out.error = str(exc)
                log(f"{target} FAILED: {exc}")
    finally:
        with signals_deferred():
            if args.keep:
                log(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    summary = report(args, args.targets, results, args.pg_bin)
    print_summary(summary, args.targets)
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 1 if any(summary[f"{t}_error"] for t in args.targets) else 0


if __name__ == "__main__":
    sys.exit(main())
