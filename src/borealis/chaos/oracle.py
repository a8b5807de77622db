"""The checkers checked: a workload against stock PostgreSQL 15, whose isolation levels are known.

A checker that finds nothing wrong with Borealis proves little until it has been seen to find
what is there. PostgreSQL documents what each of its levels allows, so it serves as an
oracle: REPEATABLE READ is snapshot isolation, which allows write skew (G2-item) and forbids
G0, G1a, G1b, G1c and G-single (Adya 1999 §4; Berenson et al. 1995; Fekete et al. 2005);
SERIALIZABLE (serializable snapshot isolation, Ports & Grittner, VLDB 2012) allows none and
refuses the transactions that would close a cycle with SQLSTATE 40001, which the clients
record as fail; READ COMMITTED forbids G0 and G1 but allows read skew (G-single), the
positive control for the G-single search. A stock server is also real-time ordered (a
transaction that began after another was acknowledged sees it), so the ``-realtime``
cycles follow the same rule. An oracle run is thus a test of the checker: at REPEATABLE
READ the list-append checker must report G2-item and nothing it forbids; at SERIALIZABLE
nothing at all; at READ COMMITTED G-single and nothing from G0 or G1; every other workload
must pass at every level (``EXPECTATIONS``).

The server is a throwaway (``StockPostgres``): ``initdb`` in a temporary directory, listening
on 127.0.0.1 only, on a free port, without fsync (durability is not what is tested), run as
the OS user ``postgres`` when we are root (PostgreSQL refuses to run as root), and stopped by
its PID when the run ends, whatever happened. The clients are those of ``.clients``, given a
libpq connection string instead of a Borealis address; the contention is high (many clients
over ``keys`` keys) so that anomalies show within seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from borealis.chaos.clients import Client, ClientEnvironment, Isolation, Recorder, Watchdog
from borealis.chaos.history import History, OpType
from borealis.chaos.runner import ChaosRunError, save_history
from borealis.chaos.workloads import WORKLOADS, ListAppendWorkload, Workload, WorkloadCheck
from borealis.control.plane import free_port
from borealis.errors import BorealisError

log = logging.getLogger(__name__)

PG_BIN_DEFAULT = Path("/usr/lib/postgresql/15/bin")
PG_OS_USER_DEFAULT = "postgres"
HOST = "127.0.0.1"
INITDB_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.1
STOP_TIMEOUT_S = 10.0
CLIENT_JOIN_S = 20.0
FINAL_TIMEOUT_S = 30.0
TIME_S_MIN = 1.0
CLIENTS_MAX = 64
KEYS_DEFAULT = 4
LOG_TAIL_BYTES = 2_000
EXAMPLES_PER_ANOMALY_MAX = 1

ORACLES = ("postgres",)


class OracleError(BorealisError):
    """The oracle run could not be carried out (no server, no OS user to run it as): no
    verdict either way."""

    code = "chaos_oracle"


class OracleConfigError(ChaosRunError):
    """An oracle run asked for something it cannot do: a usage error."""

    code = "chaos_oracle_config"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a level of stock PostgreSQL must show: every ``required`` anomaly, and nothing
    outside ``allowed`` (which holds ``required``)."""

    required: frozenset[str]
    allowed: frozenset[str]

    def __post_init__(self) -> None:
        assert self.required <= self.allowed


NOTHING = Expectation(frozenset(), frozenset())
EXPECTATIONS: Mapping[Isolation, Expectation] = {
    # Adya's PL-2 and more: no G0 or G1, but each statement sees a new snapshot, so read
    # skew (G-single), write skew, and a transaction's second read of a key showing others'
    # commits since its first (the checker's "internal").
    Isolation.READ_COMMITTED: Expectation(
        frozenset({"G-single"}),
        frozenset({"G-single", "G-single-realtime", "G2-item", "G2-item-realtime",
                   "internal"})),
    # Snapshot isolation: write skew, and with real time nothing stronger than write skew.
    Isolation.REPEATABLE_READ: Expectation(frozenset({"G2-item"}),
                                           frozenset({"G2-item", "G2-item-realtime"})),
    Isolation.SERIALIZABLE: NOTHING,
}
"""For list-append; every other workload is expected valid at every level."""


def expectation(workload: str, isolation: Isolation) -> Expectation:
    return EXPECTATIONS[isolation] if workload == ListAppendWorkload.name else NOTHING


# --- the server -----------------------------------------------------------------------------


def binaries_missing(bin_dir: Path = PG_BIN_DEFAULT) -> list[str]:
    """The server programs an oracle run needs that ``bin_dir`` lacks."""
    return [name for name in ("initdb", "postgres") if not (bin_dir / name).exists()]


class StockPostgres:
    """One throwaway PostgreSQL on 127.0.0.1 (trust authentication, user ``postgres``), in a
    temporary directory removed when it stops. Signalled only by the PID it was started
    with; ``user=`` makes that PID the postmaster itself, not a wrapper."""

    def __init__(self, bin_dir: Path = PG_BIN_DEFAULT, os_user: str = PG_OS_USER_DEFAULT,
                 *, keep: bool = False) -> None:
        self.bin_dir = bin_dir
        self.os_user = os_user
        self.keep = keep
        self.base: Path | None = None
        self.port = 0
        self.popen: subprocess.Popen[bytes] | None = None
        self._as_user: dict[str, Any] = {}

    @property
    def dsn(self) -> str:
        assert self.port, "not started"
        return f"host={HOST} port={self.port} user=postgres dbname=postgres"

    @property
    def log_path(self) -> Path:
        assert self.base is not None
        return self.base / "postgres.log"

    def __enter__(self) -> StockPostgres:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        assert self.popen is None, "already started"
        missing = binaries_missing(self.bin_dir)
        if missing:
            raise OracleError(f"no {', '.join(missing)} in {self.bin_dir}: install the "
                              "PostgreSQL 15 server (the postgresql package) or pass --pg-bin")
        self.base = Path(tempfile.mkdtemp(prefix="borealis-oracle-pg-"))
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(self.os_user)
            except KeyError:
                raise OracleError(f"running as root, which PostgreSQL refuses, and there is no "
                                  f"OS user {self.os_user!r} to run it as") from None
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        data = self.base / "data"
        initdb = [str(self.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        try:
            done = subprocess.run(initdb, capture_output=True, text=True,
                                  timeout=INITDB_TIMEOUT_S, stdin=subprocess.DEVNULL,
                                  start_new_session=True, check=False, **self._as_user)
        except subprocess.TimeoutExpired as exc:
            raise OracleError(f"initdb did not finish in {INITDB_TIMEOUT_S:.0f} s") from exc
        if done.returncode != 0:
            raise OracleError(f"initdb exited with {done.returncode}: {done.stderr[-500:]}")
        self.port = free_port(HOST)
        argv = [str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
                "-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories=",
                "-c", "fsync=off", "-c", "full_page_writes=off",
                "-c", f"max_connections={CLIENTS_MAX * 2 + 10}"]
        with open(self.log_path, "ab") as log_file:
            self.popen = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          **self._as_user)
        log.info("postgres starting pid=%d port=%d dir=%s", self.popen.pid, self.port, self.base)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.popen.poll() is not None:
                raise OracleError(f"postgres exited with {self.popen.returncode} while "
                                  f"starting: {self.log_tail()}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise OracleError(f"postgres did not accept connections in "
                                      f"{READY_TIMEOUT_S:.0f} s: {exc}; {self.log_tail()}"
                                      ) from exc
            time.sleep(READY_POLL_S)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-LOG_TAIL_BYTES:].decode(errors="replace")
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, not waited for), SIGKILL if it
        does not exit in time; then the directory goes, unless ``keep``."""
        popen = self.popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGINT)
            try:
                popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("postgres did not stop in %.0f s pid=%d: killed", STOP_TIMEOUT_S,
                            popen.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, signal.SIGKILL)
                popen.wait(STOP_TIMEOUT_S)
            log.info("postgres stopped pid=%d returncode=%s", popen.pid, popen.returncode)
        if self.base is not None and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OracleConfig:
    workload: str
    isolation: Isolation
    time_s: float
    clients: int
    seed: int
    keys: int = KEYS_DEFAULT
    """Active keys of list-append: fewer, more contention."""
    bin_dir: Path = PG_BIN_DEFAULT
    os_user: str = PG_OS_USER_DEFAULT
    out: Path | None = None
    """Where history.jsonl and verdict.json go; None: nowhere."""
    keep: bool = field(default=False)
    """Keep the server's directory (its log) after it stops."""

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise OracleConfigError(f"unknown workload {self.workload!r}; "
                                    f"one of {sorted(WORKLOADS)}")
        if self.isolation not in EXPECTATIONS:
            raise OracleConfigError(f"no oracle for {self.isolation.value}; one of "
                              f"{sorted(i.value for i in EXPECTATIONS)}")
        if self.time_s < TIME_S_MIN:
            raise OracleConfigError(f"--time must be at least {TIME_S_MIN:.0f} s")
        minimum = WORKLOADS[self.workload].client_minimum
        if not minimum <= self.clients <= CLIENTS_MAX:
            raise OracleConfigError(f"{self.workload} runs with {minimum} to {CLIENTS_MAX} clients")
        if self.keys < 1:
            raise OracleConfigError("--keys must be at least 1")


def make_workload(config: OracleConfig) -> Workload:
    if config.workload == ListAppendWorkload.name:
        return ListAppendWorkload(config.clients, config.seed, keys_active=config.keys)
    return WORKLOADS[config.workload](config.clients, config.seed)


def run_oracle(config: OracleConfig) -> dict[str, Any]:
    """Start a throwaway PostgreSQL, run the workload against it and judge the history;
    the server is stopped (by its PID) whatever happens."""
    with StockPostgres(config.bin_dir, config.os_user, keep=config.keep) as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        version = str(row[0]) if row else "?"
        log.info("oracle postgres version=%s isolation=%s workload=%s clients=%d keys=%d "
                 "time_s=%s seed=%d", version, config.isolation.value, config.workload,
                 config.clients, config.keys, config.time_s, config.seed)
        verdict = run_on(server.dsn, config)
        assert server.popen is not None
        facts = {"version": version, "pid": server.popen.pid, "port": server.port,
                 "dir": str(server.base)}
    return {"server": facts, **verdict}


def run_on(dsn: str, config: OracleConfig) -> dict[str, Any]:
    """Run the workload against the PostgreSQL at ``dsn`` (its tables must not exist yet)
    at ``config.isolation``, and judge the history (``judge``)."""
    workload = make_workload(config)
    with psycopg.connect(dsn, autocommit=True) as conn:
        workload.setup(conn)
    recorder = Recorder()
    stop = threading.Event()
    watchdog = Watchdog()
    # A single server is both endpoints (replica-reads reads through "reader").
    env = ClientEnvironment({"writer": dsn, "reader": dsn}, "", recorder, watchdog, stop,
                            isolation=config.isolation, identify_sql=None)
    clients = [Client(n, config.clients, workload, env, config.seed)
               for n in range(config.clients)]
    watchdog.start()
    try:
        for client in clients:
            client.start()
        stop.wait(config.time_s)
        stop.set()
        for client in clients:
            client.join(CLIENT_JOIN_S)
        env.final_deadline = time.monotonic() + FINAL_TIMEOUT_S
        workload.final(env)
    finally:
        stop.set()
        watchdog.stop()
    history = recorder.history()
    meta = recorder.meta()
    started = time.monotonic()
    verdict = judge(workload, config, history, meta)
    verdict["check_s"] = round(time.monotonic() - started, 3)
    if config.out is not None:
        config.out.mkdir(parents=True, exist_ok=True)
        save_history(history, meta, config.out / "history.jsonl")
        (config.out / "verdict.json").write_text(json.dumps(verdict, indent=1, default=str))
    return verdict


def judge(workload: Workload, config: OracleConfig, history: History,
          meta: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The workload's checkers on the history, and whether what they found is what
    PostgreSQL allows at this level (``as_expected``: true, false, or "unknown" when a
    checker could not decide)."""
    check: WorkloadCheck = workload.check(history, meta)
    expected = expectation(config.workload, config.isolation)
    found = set(check.anomaly_counts())
    missing = sorted(expected.required - found)
    unexpected = sorted(found - expected.allowed)
    as_expected: bool | str = not missing and not unexpected
    if as_expected and check.valid == "unknown":
        as_expected = "unknown"
    clients = [pair for pair in history.pairs() if isinstance(pair.process, int)]
    outcomes = Counter(pair.outcome.value for pair in clients)
    errors = Counter(str(m["error"]) for m in meta.values() if "error" in m)
    return {
        "oracle": "postgres",
        "isolation": config.isolation.value,
        "workload": config.workload,
        "as_expected": as_expected,
        "valid": check.valid,
        "expected": {"required": sorted(expected.required),
                     "allowed": sorted(expected.allowed)},
        "missing": missing,
        "unexpected": unexpected,
        "anomalies": check.anomaly_counts(),
        "seed": config.seed,
        "time_s": config.time_s,
        "clients": config.clients,
        "params": workload.params(),
        "operations": {"total": len(clients),
                       **{t.value: outcomes.get(t.value, 0)
                          for t in (OpType.OK, OpType.FAIL, OpType.INFO)}},
        "errors": dict(errors),
        "examples": _examples(check),
        "checkers": [verdict.to_dict() for verdict in check.verdicts],
    }


def _examples(check: WorkloadCheck) -> dict[str, list[Any]]:
    """The first report of each anomaly, for a person reading the summary."""
    examples: dict[str, list[Any]] = {}
    for verdict in check.verdicts:
        for name, reports in verdict.anomalies.items():
            chosen = [dict(report) for report in reports[:EXAMPLES_PER_ANOMALY_MAX]]
            if chosen:
                examples.setdefault(name, []).extend(chosen)
    return examples


def summary(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The one-line JSON an oracle run prints last: the verdict less the checkers' reports."""
    line = {key: value for key, value in verdict.items() if key != "checkers"}
    for checker in verdict.get("checkers", []):
        line[f"{checker['checker']}_counts"] = {
            key: value for key, value in checker.items()
            if key not in ("valid", "checker", "anomaly_types", "anomalies")}
    return line
