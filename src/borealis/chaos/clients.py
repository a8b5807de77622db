"""Clients: many at once, through the real endpoints with psycopg, recording a history.

The workloads (``.workloads``) say what one operation is; this module is what performs it
and what makes the recorded history honest, whatever database is behind the endpoints:

- **The recorder** gives every event an index and a monotonic time under one lock, so the
  history's order is the real order in which clients invoked and learnt outcomes.
- **Outcomes** follow Jepsen: *ok* when the database answered; *fail* when the operation
  certainly did not take effect — a refused connection, any error before COMMIT was sent
  (the transaction is rolled back), a definite SQL error (serialization failure 40001,
  read-only 25006, ...), or a refusal the workload itself decided (a compare-and-set that
  found another value); *info* when the outcome is unknown: the connection was lost, the
  operation timed out, or the server failed otherwise while the commit was in flight. A
  client whose operation ended in info takes a new process id (the old one may still be
  running on the server), and reconnects after any connection error.
- **A watchdog** bounds every operation (``OP_TIMEOUT_S``): libpq has no read timeout, and a
  paused writer would hold a client for ever, so the watchdog shuts the socket down under
  the client, which then sees a lost connection.

An endpoint is a Borealis address (host, port: user ``postgres`` and the cluster's
password) or a libpq connection string, so the same clients drive any PostgreSQL (the
oracle runs of ``.oracle``). Transactions begin at the environment's isolation level, or
at the server's default when it names none (Borealis's runs).

Besides its history, each completion keeps three facts the checkers do not need: the error
(SQLSTATE, ``conn``, ``timeout``, ``connect``, ``refused:WHY``), the instance that served
the connection (``aurora_db_instance_identifier()``) and the endpoint it came through. The
runner uses them for availability and for the fencing check, and stores them in
``history.jsonl`` beside each event (``history.load`` ignores them).
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from borealis.chaos.history import History, Op, OpType, Process

log = logging.getLogger(__name__)

OP_TIMEOUT_S = 5.0
"""An operation not answered in this long is cut off by the watchdog (info if it was
committing): shorter than a pause, so that a paused writer shows as info, not as a hang."""
CONNECT_TIMEOUT_S = 5
WATCHDOG_EVERY_S = 0.1
BACKOFF_S_MAX = 0.3
THINK_S_MAX = 0.02
FINAL_TIMEOUT_S = 90.0
"""How long the final reads are retried after healing before the check says unknown."""
FINAL_RETRY_S = 1.0

DEFINITE_SQLSTATE_CLASSES = frozenset({"22", "23", "25", "40", "42", "0A"})
"""SQLSTATE classes that mean the statement was refused and nothing took effect: data
errors, constraint violations, invalid transaction state (25006 read-only), transaction
rollback (40001), syntax or undefined objects, unsupported features."""
DEFINITE_SQLSTATES = frozenset({"55P03"})
"""A lock not obtained in time: the statement never ran."""

USER = "postgres"
DATABASE = "postgres"
IDENTIFY_SQL = "SELECT aurora_db_instance_identifier()"
"""Which instance serves a connection, asked once per connection (Borealis's function)."""

Address = tuple[str, int]
Target = Address | str
"""An endpoint's target: a Borealis address (user ``postgres``, the cluster's password), or
a libpq connection string used as it is (any PostgreSQL)."""


class Isolation(enum.Enum):
    """The SQL isolation level a transaction begins at (``BEGIN ISOLATION LEVEL ...``)."""

    READ_COMMITTED = "read-committed"
    REPEATABLE_READ = "repeatable-read"
    SERIALIZABLE = "serializable"

    @property
    def sql(self) -> str:
        return self.value.replace("-", " ").upper()


# --- the history as it is recorded ----------------------------------------------------------


class Recorder:
    """Events in the order they happened, under one lock; times from one monotonic origin."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: list[Op] = []
        self._meta: dict[int, dict[str, Any]] = {}
        self.origin_ns = time.monotonic_ns()
        self.origin_wall_s = time.time()

    def now_ns(self) -> int:
        return time.monotonic_ns() - self.origin_ns

    def _append(self, process: Process, kind: OpType, f: str, value: Any,
                meta: dict[str, Any] | None) -> Op:
        with self._lock:
            op = Op(len(self._ops), max(0, self.now_ns()), process, kind, f, value)
            self._ops.append(op)
            if meta:
                self._meta[op.index] = meta
            return op

    def invoke(self, process: Process, f: str, value: Any) -> Op:
        return self._append(process, OpType.INVOKE, f, value, None)

    def complete(self, invoke: Op, kind: OpType, value: Any, *, error: str | None = None,
                 instance: str | None = None, endpoint: str | None = None) -> Op:
        assert invoke.type is OpType.INVOKE
        assert kind is not OpType.INVOKE
        meta = {k: v for k, v in (("error", error), ("instance", instance),
                                  ("endpoint", endpoint)) if v is not None}
        return self._append(invoke.process, kind, invoke.f, value, meta)

    def history(self) -> History:
        with self._lock:
            return History(tuple(self._ops))

    def meta(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            return dict(self._meta)


# --- sessions, outcomes and the watchdog ----------------------------------------------------


class Phase(enum.Enum):
    IDLE = "idle"
    READ = "read"        # reading: an error means nothing happened
    BODY = "body"        # inside a transaction, before COMMIT: an error rolls it back
    COMMIT = "commit"    # COMMIT (or an autocommit write) sent: an error leaves it unknown


class Refused(Exception):
    """The workload decided that the operation did not happen (a cas that found another
    value, a transfer without the funds): recorded as fail, after a rollback."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_session_numbers = itertools.count(1)


class Session:
    """One client connection, the instance behind it, and the phase of its operation."""

    def __init__(self, conn: psycopg.Connection[Any], endpoint: str,
                 isolation: Isolation | None = None) -> None:
        self.conn = conn
        self.endpoint = endpoint
        self.isolation = isolation
        self.number = next(_session_numbers)
        self.instance: str | None = None
        self.phase = Phase.IDLE
        self.in_transaction = False
        self.wrote = False
        self.lock = threading.Lock()
        self.deadline: float | None = None
        self.timed_out = False

    @classmethod
    def connect(cls, target: Target, endpoint: str, password: str,
                isolation: Isolation | None = None) -> Session:
        if isinstance(target, str):
            conn = psycopg.connect(target, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        else:
            host, port = target
            conn = psycopg.connect(host=host, port=port, user=USER, password=password,
                                   dbname=DATABASE, connect_timeout=CONNECT_TIMEOUT_S,
                                   autocommit=True)
        return cls(conn, endpoint, isolation)

    # -- the watchdog's side --
    def arm(self, timeout_s: float) -> None:
        with self.lock:
            self.deadline = time.monotonic() + timeout_s
            self.timed_out = False
        self.phase = Phase.IDLE
        self.wrote = False

    def disarm(self) -> None:
        with self.lock:
            self.deadline = None

    def cut_if_late(self, now: float) -> bool:
        """Shut the socket down under a late operation: the client's libpq call returns
        with a lost connection. Returns whether it did."""
        with self.lock:
            if self.deadline is None or now < self.deadline or self.conn.closed:
                return False
            self.deadline = None
            self.timed_out = True
            try:
                fd = self.conn.fileno()
                with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as dup:
                    dup.shutdown(socket.SHUT_RDWR)
            except (OSError, psycopg.Error):
                pass
            return True

    def close(self) -> None:
        with self.lock:
            self.deadline = None
            with contextlib.suppress(psycopg.Error, OSError):
                self.conn.close()

    # -- SQL, phase by phase --
    def identify(self, sql: str = IDENTIFY_SQL) -> str:
        self.phase = Phase.READ
        row = self.conn.execute(sql).fetchone()
        self.instance = str(row[0]) if row else None
        return self.instance or "?"

    def read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """A read, alone (autocommit) or inside a transaction."""
        if not self.in_transaction:
            self.phase = Phase.READ
        return self.conn.execute(sql, tuple(params)).fetchall()

    def begin(self) -> None:
        self.phase = Phase.BODY
        if self.isolation is None:
            self.conn.execute("BEGIN")
        else:
            self.conn.execute(f"BEGIN ISOLATION LEVEL {self.isolation.sql}")
        self.in_transaction = True

    def body_write(self, sql: str, params: Iterable[Any] = ()) -> int:
        assert self.in_transaction
        self.phase = Phase.BODY
        self.wrote = True
        return self.conn.execute(sql, tuple(params)).rowcount

    def commit(self) -> None:
        assert self.in_transaction
        # A read-only transaction's commit changes nothing: its error is a plain failure.
        self.phase = Phase.COMMIT if self.wrote else Phase.READ
        self.conn.execute("COMMIT")
        self.in_transaction = False

    def write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One statement that commits by itself (autocommit): its answer is its commit."""
        assert not self.in_transaction
        self.phase = Phase.COMMIT
        self.wrote = True
        return self.conn.execute(sql, tuple(params)).rowcount

    def rollback(self) -> bool:
        """After a refusal or a definite error; False when the connection is unusable."""
        if not self.in_transaction:
            return not self.conn.closed
        self.in_transaction = False
        try:
            self.conn.execute("ROLLBACK")
        except psycopg.Error:
            return False
        return True


def definite(sqlstate: str | None) -> bool:
    """Whether an error with this SQLSTATE means the statement certainly took no effect."""
    if not sqlstate:
        return False
    return sqlstate[:2] in DEFINITE_SQLSTATE_CLASSES or sqlstate in DEFINITE_SQLSTATES


def classify(exc: psycopg.Error, phase: Phase) -> OpType:
    """fail or info for an error raised in ``phase`` (see the module docstring)."""
    if phase is not Phase.COMMIT:
        return OpType.FAIL
    return OpType.FAIL if definite(getattr(exc, "sqlstate", None)) else OpType.INFO


class Watchdog:
    """One thread that cuts off operations past their deadline."""

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-watchdog", daemon=True)
        self.cut_count = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def watch(self, session: Session) -> None:
        with self._lock:
            self._sessions.add(session)

    def forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def _run(self) -> None:
        while not self._stop.wait(WATCHDOG_EVERY_S):
            now = time.monotonic()
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                if session.cut_if_late(now):
                    self.cut_count += 1
                    log.info("operation timed out session=%d instance=%s endpoint=%s",
                             session.number, session.instance, session.endpoint)


# --- operations and clients -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    """One operation a client is about to perform."""

    f: str
    value: Any                          # the invocation's value
    run: Callable[[Session], Any]       # performs it; returns the ok value or raises
    endpoint: str = "writer"            # "writer" or "reader"
    write: bool = False                 # counts for write availability (else read)


@dataclass
class ClientEnvironment:
    """What every client shares: where the endpoints are, the recorder, the watchdog, and
    how transactions begin."""

    endpoints: Mapping[str, Target]
    password: str
    recorder: Recorder
    watchdog: Watchdog
    stop: threading.Event
    op_timeout_s: float = OP_TIMEOUT_S
    final_deadline: float | None = None
    """When the final reads give up (monotonic seconds); None: ``FINAL_TIMEOUT_S`` each."""
    isolation: Isolation | None = None
    """The level every transaction begins at; None: the server's default."""
    identify_sql: str | None = IDENTIFY_SQL
    """Which instance serves a new connection; None: not asked (a stock PostgreSQL)."""


class Performer:
    """Performs planned operations for one process id, keeping a session per endpoint."""

    def __init__(self, env: ClientEnvironment, process: Process) -> None:
        self.env = env
        self.process = process
        self.sessions: dict[str, Session] = {}

    def _session(self, endpoint: str) -> Session:
        session = self.sessions.get(endpoint)
        if session is not None and not session.conn.closed:
            return session
        session = Session.connect(self.env.endpoints[endpoint], endpoint, self.env.password,
                                  self.env.isolation)
        self.env.watchdog.watch(session)
        self.sessions[endpoint] = session
        if self.env.identify_sql is None:
            return session
        session.arm(self.env.op_timeout_s)
        try:
            session.identify(self.env.identify_sql)
        finally:
            session.disarm()
        return session

    def _drop(self, endpoint: str) -> None:
        session = self.sessions.pop(endpoint, None)
        if session is not None:
            self.env.watchdog.forget(session)
            session.close()

    def close(self) -> None:
        for endpoint in list(self.sessions):
            self._drop(endpoint)

    def perform(self, planned: Planned) -> tuple[OpType, Any]:
        """Invoke, perform and complete one operation; returns its outcome and value."""
        recorder = self.env.recorder
        invoke = recorder.invoke(self.process, planned.f, planned.value)
        try:
            session = self._session(planned.endpoint)
        except psycopg.Error as exc:
            self._drop(planned.endpoint)
            recorder.complete(invoke, OpType.FAIL, planned.value, error="connect")
            log.debug("connect failed endpoint=%s: %s", planned.endpoint, exc)
            return OpType.FAIL, None
        session.arm(self.env.op_timeout_s)
        try:
            value = planned.run(session)
        except Refused as refused:
            session.disarm()
            if not session.rollback():
                self._drop(planned.endpoint)
            recorder.complete(invoke, OpType.FAIL, planned.value,
                              error=f"refused:{refused.reason}", instance=session.instance,
                              endpoint=planned.endpoint)
            return OpType.FAIL, None
        except psycopg.Error as exc:
            session.disarm()
            kind = classify(exc, session.phase)
            sqlstate = getattr(exc, "sqlstate", None)
            error = "timeout" if session.timed_out else (sqlstate or "conn")
            recorder.complete(invoke, kind, planned.value, error=error,
                              instance=session.instance, endpoint=planned.endpoint)
            broken = session.conn.closed or session.timed_out or not definite(sqlstate)
            if broken or not session.rollback():
                self._drop(planned.endpoint)
            log.debug("op failed f=%s kind=%s error=%s: %s", planned.f, kind.value, error, exc)
            return kind, None
        session.disarm()
        recorder.complete(invoke, OpType.OK, value, instance=session.instance,
                          endpoint=planned.endpoint)
        return OpType.OK, value


class Planner(Protocol):
    """What a client asks of its workload: the next operation (``.workloads.Workload``)."""

    def plan(self, client: int, rng: random.Random) -> Planned:
        ...


class Client:
    """A thread per client: plan, perform, think, until told to stop. After an info the
    client goes on under a new process id (Jepsen's rule: the old one may still be running)."""

    def __init__(self, number: int, stride: int, workload: Planner, env: ClientEnvironment,
                 seed: int) -> None:
        assert stride > number >= 0
        self.number = number
        self.stride = stride
        self.workload = workload
        self.env = env
        self.rng = random.Random(seed * 1_000_003 + number)
        self.thread = threading.Thread(target=self._run, name=f"chaos-client-{number}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)

    def _run(self) -> None:
        performer = Performer(self.env, self.number)
        try:
            while not self.env.stop.is_set():
                planned = self.workload.plan(self.number, self.rng)
                kind, _ = performer.perform(planned)
                if kind is OpType.INFO:
                    performer.close()
                    performer.process = int(performer.process) + self.stride
                if kind is OpType.OK:
                    self.env.stop.wait(self.rng.uniform(0, THINK_S_MAX))
                else:
                    self.env.stop.wait(self.rng.uniform(0.05, BACKOFF_S_MAX))
        except Exception:
            log.exception("client %d crashed", self.number)
            raise
        finally:
            performer.close()


def perform_final(env: ClientEnvironment, planned: Planned) -> Any:
    """A final read, retried until it is ok or the final deadline passed (then None); every
    attempt is in the history, under the process ``final``."""
    performer = Performer(env, "final")
    deadline = env.final_deadline or time.monotonic() + FINAL_TIMEOUT_S
    try:
        while True:
            kind, value = performer.perform(planned)
            if kind is OpType.OK:
                return value
            if kind is OpType.INFO:
                performer.close()
            if time.monotonic() > deadline:
                log.warning("final read f=%s did not succeed in time", planned.f)
                return None
            time.sleep(FINAL_RETRY_S)
    finally:
        performer.close()


