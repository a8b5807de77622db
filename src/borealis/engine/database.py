"""A database instance's SQL engine: SQLite sessions over the shared volume.

``Database`` lives on the instance's asyncio loop with its ``VolumeClient``; SQL runs in
worker threads, one per session (a session waiting for the write lock must never take the
thread that the lock holder needs to commit). The VFS (``borealis.engine.vfs``) calls back
into the loop for page reads and to hand commit groups to the volume.

A statement's answer waits for durability: the session returns its rows only once VDL
covers both its own commit (if it wrote) and every page version it read (DESIGN decision
6: a commit is acknowledged only when durable, and no session sees data that is not). The
write lock is released earlier, when the commit group is handed to the volume, so commits
of several sessions pipeline. One exception, inside an explicit transaction: a statement
that returns no rows (an UPDATE, an INSERT) answers at once with its row count, and the
wait moves to the transaction's end; its COMMIT is acknowledged only once VDL covers its
own LSN, which is above everything the transaction read. Waiting at each such statement
would hold the write lock through a durability round trip and serialise every commit
behind the previous one (bench/engine.py: 63 commits/s with 8 sessions).

Settings that would break durability or the shared volume are refused with
``UnsafeSettingError`` (through SQLite's authorizer, which sees every PRAGMA and ATTACH
before it runs): ``journal_mode`` other than MEMORY, ``synchronous=OFF``,
``locking_mode=EXCLUSIVE``, a ``page_size`` other than the volume's, ``ATTACH``. A
transaction that must be retried (it read, then wanted the write lock while another session
held it) fails with ``SerializationError``; waiting for the write lock is bounded by
``lock_timeout_s`` (``LockTimeoutError``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import apsw

from borealis.engine.pagecache import CACHE_BYTES_DEFAULT, PageCache
from borealis.engine.replication import ReaderState
from borealis.engine.vfs import DATABASE_FILE, VolumeFile, VolumeState, VolumeVfs
from borealis.errors import (
    BorealisError,
    EngineError,
    LockTimeoutError,
    ReadOnlyError,
    SerializationError,
    SqlError,
    StorageError,
    UnsafeSettingError,
)
from borealis.metrics import Histogram
from borealis.types import LSN
from borealis.volume.client import VolumeClient
from borealis.volume.writer import PageWrite

log = logging.getLogger(__name__)

LOCK_TIMEOUT_S_DEFAULT = 10.0
READ_TIMEOUT_S = 30.0
"""A page read that storage cannot answer in this long fails the statement (an I/O error)."""
BUSY_WAIT_SLICE_S = 0.05
SQLITE_CACHE_KIB = 2000
"""SQLite's own per-connection page cache, in KiB (its default). The process-wide cache
behind the VFS (``cache_bytes``) is what the instance is sized by."""

_vfs_names = itertools.count(1)

_WRITE_START = re.compile(
    r"\s*(BEGIN\s+(IMMEDIATE|EXCLUSIVE)|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER)\b",
    re.IGNORECASE,
)
"""Statements that take the write lock at once: their sessions queue for it in order."""

_ALLOWED_JOURNAL_MODES = {"memory"}
_UNSAFE_SYNCHRONOUS = {"off", "0"}


class LoopBackend:
    """The VFS's ``Backend`` on a ``VolumeClient`` that runs on ``loop`` (another thread)."""

    def __init__(self, client: VolumeClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.page_size = client.spec.geometry.page_size

    def _run(self, coro: Any, timeout_s: float | None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise StorageError(f"the volume did not answer within {timeout_s} s") from exc

    def read_page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        reply = self._run(self.client.read_page(page, read_point), READ_TIMEOUT_S)
        return reply.version, reply.image

    def append(self, writes: Sequence[PageWrite]) -> LSN:
        lsn: LSN = self._run(self.client.append(writes), None)
        return lsn


@dataclass
class Result:
    """What a statement returned: its rows, their column names, and the rows it changed."""

    rows: list[tuple[Any, ...]]
    columns: list[str] = field(default_factory=list)
    changes: int = 0
    decltypes: list[str | None] = field(default_factory=list)
    """Each column's declared type in the schema (None for an expression)."""
    last_changes: int = 0
    """Rows the last INSERT/UPDATE/DELETE itself changed (``changes`` also counts what
    functions it called changed, such as a sequence's row)."""


@dataclass(frozen=True)
class Description:
    """What a statement would return, learned by preparing it without running it."""

    columns: list[tuple[str, str | None]]
    """(name, declared type or None) per result column."""
    parameters: int
    read_only: bool


class _Many:
    """Parameters for ``executemany``: one sequence per row."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        self.rows = rows


@dataclass
class DatabaseStats:
    statements: int = 0
    commits: int = 0
    serialization_failures: int = 0
    lock_timeouts: int = 0
    durability_wait_s: float = 0.0


class Database:
    """The SQL engine of one instance on one volume: the writer, or a reader (replica)."""

    def __init__(self, client: VolumeClient, *, cache_bytes: int = CACHE_BYTES_DEFAULT,
                 lock_timeout_s: float = LOCK_TIMEOUT_S_DEFAULT,
                 commit_latency: Histogram | None = None) -> None:
        self.client = client
        self.lock_timeout_s = lock_timeout_s
        self.cache = PageCache(cache_bytes)
        self.stats = DatabaseStats()
        self.commit_latency = commit_latency if commit_latency is not None else Histogram()
        """Seconds from running a statement that commits to its acknowledgement (durable);
        an instance passes its own, so that it outlives a promotion's new engine."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: VolumeState | None = None
        self._vfs: VolumeVfs | None = None
        self._open_lock = threading.Lock()
        self._sessions: set[Session] = set()
        self.write_turn = asyncio.Lock()
        """Held by a session from a statement that starts writing outside a transaction
        (BEGIN IMMEDIATE, an INSERT/UPDATE/DELETE...) until it is out of its transaction.
        Never taken inside a transaction: a session there may hold SHARED, which the turn's
        holder needs released to commit."""
        self.reader = False

    @classmethod
    async def open_writer(cls, client: VolumeClient, **kwargs: Any) -> Database:
        """Recover the volume as its writer (fencing any older one) and open the engine."""
        if client.core is None:
            await client.open_writer()
        db = cls(client, **kwargs)
        db._start(asyncio.get_running_loop(), reader=False)
        return db

    @classmethod
    async def open_reader(cls, client: VolumeClient, **kwargs: Any) -> Database:
        """Open the engine as a reader (replica): read-only sessions at read points that
        the writer's redo stream brings (``reader_state.apply``)."""
        client.open_reader()
        db = cls(client, **kwargs)
        db._start(asyncio.get_running_loop(), reader=True)
        return db

    def _start(self, loop: asyncio.AbstractEventLoop, *, reader: bool) -> None:
        self._loop = loop
        backend = LoopBackend(self.client, loop)
        self.reader = reader
        if reader:
            self._state = ReaderState(backend, self.cache)
        else:
            self._state = VolumeState(backend, self.cache)
            # Versions above VDL are pinned in the cache: storage could not serve them back.
            self.cache.pin_above = self.client.vdl
            self.client.on_vdl.append(self._pin_at)
        name = f"borealis-{self.client.spec.geometry.volume}-{next(_vfs_names)}"
        self._vfs = VolumeVfs(name, self._state)

    @property
    def reader_state(self) -> ReaderState:
        assert isinstance(self._state, ReaderState), "not a reader"
        return self._state

    def _pin_at(self, vdl: LSN) -> None:
        self.cache.pin_above = vdl

    @property
    def vdl(self) -> LSN:
        if isinstance(self._state, ReaderState):
            return self._state.vdl
        return self.client.vdl

    async def session(self, setup: Callable[[apsw.Connection], None] | None = None
                      ) -> Session:
        """A new session; ``setup`` runs on its SQLite connection in its thread once it is
        open, before any statement (functions, the catalog)."""
        session = Session(self)
        await session._open(setup)
        self._sessions.add(session)
        return session

    @property
    def sessions_open(self) -> int:
        return len(self._sessions)

    def interrupt_all(self) -> None:
        """Stop every running statement (shutting down): their sessions' threads are then
        free to close their connections. Safe from any thread."""
        for session in list(self._sessions):
            session.interrupt()

    async def close(self) -> None:
        for session in list(self._sessions):
            await session.close()
        if self._pin_at in self.client.on_vdl:
            self.client.on_vdl.remove(self._pin_at)
        if self._vfs is not None:
            self._vfs.unregister()

    async def wait_durable(self, lsn: LSN) -> None:
        if self.reader or lsn <= self.client.vdl:
            return  # a reader reads only at read points at or below a VDL
        started = time.perf_counter()
        await self.client.wait_durable(lsn)
        self.stats.durability_wait_s += time.perf_counter() - started

    # -- run in a session's thread ----------------------------------------------------

    def _connect(self) -> tuple[apsw.Connection, VolumeFile]:
        assert self._vfs is not None and self._state is not None
        flags = (apsw.SQLITE_OPEN_READONLY if self.reader
                 else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        with self._open_lock:  # so that take_opened() is this connection's file
            conn = apsw.Connection(DATABASE_FILE, vfs=self._vfs.vfs_name, flags=flags)
            file = self._vfs.take_opened()
        # Another session may hold the write lock: wait for it here too (the session's own
        # busy handler replaces this once the connection is set up).
        conn.set_busy_timeout(int(self.lock_timeout_s * 1000))
        if not self.reader:
            conn.execute(f"PRAGMA page_size={self._state.page_size}")
        conn.execute("PRAGMA journal_mode=MEMORY")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        return conn, file


class Session:
    """One SQL session: an SQLite connection and the thread it runs in."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="borealis-sql")
        self._conn: apsw.Connection | None = None
        self._file: VolumeFile | None = None
        self._refusal: str | None = None
        self._waited_s = 0.0
        self._timed_out = False
        self._deferred = LSN(0)
        self._holds_turn = False

    async def _open(self, setup: Callable[[apsw.Connection], None] | None = None) -> None:
        loop = asyncio.get_running_loop()

        def connect() -> tuple[apsw.Connection, VolumeFile]:
            conn, file = self.db._connect()
            if setup is not None:
                setup(conn)
            return conn, file

        try:
            conn, self._file = await loop.run_in_executor(self._executor, connect)
        except apsw.BusyError:
            self._executor.shutdown(wait=False)
            raise LockTimeoutError("a new session could not read the database: the write "
                                   f"lock was held for {self.db.lock_timeout_s} s") from None
        except apsw.Error as exc:
            self._executor.shutdown(wait=False)
            raise EngineError(f"cannot open a session: {exc}") from None
        conn.authorizer = self._authorize
        conn.set_busy_handler(self._busy)
        self._conn = conn

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None and not self._conn.getautocommit()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
                      ) -> Result:
        """Run ``sql`` (one statement or several); the rows of the last one, once every
        version it read and everything it committed are durable."""
        if self._conn is None:
            raise EngineError("the session is closed")
        loop = asyncio.get_running_loop()
        if not self._holds_turn and not self.in_transaction and _WRITE_START.match(sql):
            # Writers queue here, first come first served, rather than in SQLite's busy
            # handler: there every release woke every waiting thread, and their fight for
            # the GIL slowed the one holding the lock (bench/engine.py, 8 sessions).
            await self._acquire_turn()
            self._holds_turn = True
        started = time.perf_counter()
        try:
            result, wait_for, in_transaction, committed = await loop.run_in_executor(
                self._executor, self._run, sql, params)
        except BaseException:
            self._release_turn()
            raise
        if not in_transaction:
            self._release_turn()
        self.db.stats.statements += 1
        wait_for = LSN(max(wait_for, self._deferred))
        if in_transaction and not result.rows:
            # Inside a transaction, a statement that returns no rows does not wait: the
            # transaction's end does (a COMMIT waits for its own LSN, above all it read).
            # Waiting here would hold the write lock through a durability round trip and
            # serialise every commit behind the one before it.
            self._deferred = wait_for
            return result
        self._deferred = LSN(0)
        if wait_for:
            await self.db.wait_durable(wait_for)
        if committed:  # acknowledged durable here
            self.db.commit_latency.observe(time.perf_counter() - started)
        return result

    async def describe(self, sql: str) -> Description:
        """Prepare ``sql`` (its first statement) without running it: its result columns
        with their declared types, its parameter count, and whether it only reads."""
        if self._conn is None:
            raise EngineError("the session is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._describe, sql)

    def _describe(self, sql: str) -> Description:
        conn = self._conn
        assert conn is not None
        found: list[Description] = []

        def tracer(cursor: apsw.Cursor, _sql: str, _bindings: Any) -> bool:
            found.append(Description(list(cursor.get_description()), cursor.bindings_count,
                                     bool(cursor.is_readonly)))
            return False

        cursor = conn.cursor()
        cursor.exec_trace = tracer
        try:
            # APSW's marker for "no bindings yet": the tracer runs before they are needed
            cursor.execute(sql, apsw._null_bindings)  # type: ignore[attr-defined]
        except apsw.ExecTraceAbort:
            pass
        except apsw.Error as exc:
            raise sql_error(exc) from None
        if not found:
            return Description([], 0, True)
        return found[0]

    async def call(self, fn: Callable[[apsw.Connection], Any]) -> Any:
        """Run ``fn(connection)`` in the session's thread (schema lookups, bulk loads);
        SQLite errors come back as ``SqlError``."""
        if self._conn is None:
            raise EngineError("the session is closed")
        loop = asyncio.get_running_loop()
        conn = self._conn

        def run() -> Any:
            try:
                return fn(conn)
            except apsw.Error as exc:
                raise sql_error(exc) from None

        return await loop.run_in_executor(self._executor, run)

    async def _acquire_turn(self) -> None:
        """The write turn, waited for no longer than the lock timeout (a session whose
        client went away mid-transaction must not stall every writer forever)."""
        turn = self.db.write_turn
        task = asyncio.ensure_future(turn.acquire())
        try:
            done, _ = await asyncio.wait({task}, timeout=self.db.lock_timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                if await task:
                    turn.release()
            raise
        if task in done:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            turn.release()  # acquired just as the wait gave up: give it back
        self.db.stats.lock_timeouts += 1
        raise LockTimeoutError(
            f"the write lock was not free within {self.db.lock_timeout_s} s")

    def _release_turn(self) -> None:
        if self._holds_turn and (self._conn is None or self._conn.getautocommit()):
            self._holds_turn = False
            self.db.write_turn.release()

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Result:
        """Run ``sql`` once per row of parameters (a bulk load: COPY FROM)."""
        return await self.execute(sql, _Many(rows))  # type: ignore[arg-type]

    def interrupt(self) -> None:
        """Stop the statement running in this session (a cancel request); it fails with
        SQLSTATE 57014. Safe from any thread."""
        if self._conn is not None:
            self._conn.interrupt()

    def _run(self, sql: str, params: Any) -> tuple[Result, LSN, bool, bool]:
        conn, file = self._conn, self._file
        assert conn is not None and file is not None
        file.max_version_read = LSN(0)
        file.commit_lsn = LSN(0)
        file.failure = None
        self._refusal = None
        self._waited_s = 0.0
        self._timed_out = False
        changes_before = conn.total_changes()
        try:
            if isinstance(params, _Many):
                cursor = conn.executemany(sql, params.rows)
            else:
                cursor = conn.execute(sql, params)
            try:
                description = cursor.get_description()
            except apsw.ExecutionCompleteError:
                # it finished at once: no row, or no result at all (DML). A query with no
                # row still has columns (a client prints their names): describe it again,
                # prepared and not run.
                description = _described(conn, sql, params) \
                    if _is_query(sql) and not isinstance(params, _Many) else ()
            columns = [d[0] for d in description]
            decltypes: list[str | None] = [d[1] for d in description]
            rows = cursor.fetchall()
        except apsw.InterruptError:
            raise SqlError("canceling statement due to user request", "57014") from None
        except apsw.ReadOnlyError:
            raise ReadOnlyError(
                "cannot execute a write on a reader (replica): it is read-only; send writes "
                "to the writer (the cluster endpoint)"
            ) from None
        except apsw.AuthError as exc:
            if self._refusal is not None:
                raise UnsafeSettingError(self._refusal) from None
            raise SqlError(str(exc)) from None
        except apsw.BusyError:
            if self._timed_out:
                self.db.stats.lock_timeouts += 1
                raise LockTimeoutError(
                    f"the write lock was not free within {self.db.lock_timeout_s} s"
                ) from None
            self.db.stats.serialization_failures += 1
            raise SerializationError(
                "could not serialize access: another session holds the write lock; "
                "retry the transaction"
            ) from None
        except apsw.Error as exc:
            failure = file.failure
            if isinstance(failure, BorealisError):
                raise failure from None
            raise sql_error(exc) from None
        except BorealisError:
            raise  # from the volume, raised again by APSW out of the VFS (a fenced commit)
        except Exception as exc:
            log.exception("statement failed inside the engine: %s", sql[:200])
            raise EngineError(f"internal error: {type(exc).__name__}: {exc}") from None
        if file.commit_lsn:  # this statement committed (the counter is shared: not it)
            self.db.stats.commits += 1
        result = Result(rows, columns, conn.total_changes() - changes_before, decltypes,
                        conn.changes())
        return (result, LSN(max(file.max_version_read, file.commit_lsn)),
                not conn.getautocommit(), bool(file.commit_lsn))

    def _authorize(self, op: int, p1: str | None, p2: str | None, dbname: str | None,
                   trigger: str | None) -> int:
        if op == apsw.SQLITE_ATTACH:
            self._refusal = ("ATTACH is not supported: a Borealis database is one volume, "
                             "and other files would not be replicated")
            return apsw.SQLITE_DENY
        if op == apsw.SQLITE_PRAGMA and p1 is not None and p2 is not None:
            name, value = p1.lower(), str(p2).strip().strip("'\"").lower()
            refusal = _pragma_refusal(name, value, self.db)
            if refusal is not None:
                self._refusal = refusal
                return apsw.SQLITE_DENY
        return apsw.SQLITE_OK

    def _busy(self, count: int) -> bool:
        """SQLite's busy handler: wait for a lock change, up to the lock timeout."""
        if self._waited_s >= self.db.lock_timeout_s:
            self._timed_out = True
            return False
        state, file = self.db._state, self._file
        assert state is not None and file is not None
        started = time.monotonic()
        state.locks.wait_for_release(file.refused_at, BUSY_WAIT_SLICE_S)
        self._waited_s += time.monotonic() - started
        return True

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if self._holds_turn:
            self._holds_turn = False
            self.db.write_turn.release()
        if conn is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)
        self.db._sessions.discard(self)


_CONSTRAINT_STATES = {
    apsw.SQLITE_CONSTRAINT_UNIQUE: "23505",
    apsw.SQLITE_CONSTRAINT_PRIMARYKEY: "23505",
    apsw.SQLITE_CONSTRAINT_NOTNULL: "23502",
    apsw.SQLITE_CONSTRAINT_FOREIGNKEY: "23503",
    apsw.SQLITE_CONSTRAINT_CHECK: "23514",
}
_MESSAGE_STATES = (
    ("no such table", "42P01"), ("no such column", "42703"), ("already exists", "42P07"),
    ("syntax error", "42601"), ("no such index", "42704"), ("no such function", "42883"),
    ("datatype mismatch", "42804"), ("too many", "54000"), ("ambiguous column", "42702"),
    ("integer overflow", "22003"), ("no such savepoint", "3B001"),
    ("cannot start a transaction within a transaction", "25001"),
    ("cannot commit - no transaction is active", "25P01"),
)


def sql_error(exc: apsw.Error) -> SqlError:
    """An SQLite error as an ``SqlError`` with the SQLSTATE PostgreSQL uses for it."""
    message = str(exc)
    for prefix in ("SQLError: ", "ConstraintError: ", "MismatchError: "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if isinstance(exc, apsw.ConstraintError):
        code = _CONSTRAINT_STATES.get(getattr(exc, "extendedresult", 0), "23000")
        return SqlError(message, code)
    if isinstance(exc, apsw.MismatchError):
        return SqlError(message, "22P02")
    if isinstance(exc, apsw.TooBigError):
        return SqlError(message, "54000")
    lowered = message.lower()
    for needle, code in _MESSAGE_STATES:
        if needle in lowered:
            return SqlError(message, code)
    return SqlError(message)


def _pragma_refusal(name: str, value: str, db: Database) -> str | None:
    if name == "journal_mode" and value not in _ALLOWED_JOURNAL_MODES:
        return (f"PRAGMA journal_mode={value} is not supported: Borealis keeps the rollback "
                "journal in memory (MEMORY); the volume's redo log is the durable log")
    if name == "synchronous" and value in _UNSAFE_SYNCHRONOUS:
        return ("PRAGMA synchronous=OFF is not supported: a commit is acknowledged only once "
                "it is durable on 4 of 6 storage nodes")
    if name == "locking_mode" and value == "exclusive":
        return ("PRAGMA locking_mode=EXCLUSIVE is not supported: the sessions of an instance "
                "share the database")
    if name == "page_size" and db._state is not None and value != str(db._state.page_size):
        return (f"PRAGMA page_size={value} is not supported: the volume's page size is "
                f"{db._state.page_size}")
    return None


_QUERY_WORDS = ("select", "with", "values")


def _is_query(sql: str) -> bool:
    return sql.lstrip()[:6].lower().startswith(_QUERY_WORDS)


def _described(conn: apsw.Connection, sql: str, params: Any) -> tuple[tuple[str, str], ...]:
    """The columns of ``sql``'s statement, prepared but not run: an exec tracer reads them
    and stops it before its first step."""
    found: list[tuple[tuple[str, str], ...]] = [()]

    def trace(cursor: apsw.Cursor, _sql: str, _bindings: Any) -> bool:
        found[0] = tuple(cursor.get_description())
        return False

    cursor = conn.cursor()
    cursor.exec_trace = trace
    # ExecTraceAbort: stopped as meant; any other error: the statement ran once already,
    # so it is left undescribed rather than failed
    with contextlib.suppress(apsw.Error):
        cursor.execute(sql, params)
    return found[0]
