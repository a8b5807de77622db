"""The database instance process: the engine on a volume, and its control interface.

``borealis instance --role writer ...`` opens the volume as its writer (volume recovery: a
quorum read of every PG, a new epoch, a truncation; no redo replay, so the time to serve
does not grow with the data), then serves an RPC control interface on the same transport as
the storage nodes (length-prefixed msgpack frames):

``status``
    ``{"instance", "role", "state", "az", "epoch", "vdl", "recovery_s", "sessions",
    "statements", "commits", "cache": {...}, "lag_ms", "lag_lsns"}``; ``state`` is
    ``serving`` or ``fenced`` (a newer writer took the volume: nothing is acknowledged any
    more, and the process should be replaced).
``execute`` ``[session, sql, params]``
    Runs SQL in the caller's session ``session`` (a name the caller picks; a session is
    created on first use, per connection) and answers ``[columns, rows, changes]`` once
    durable. Errors are typed (``borealis.errors``: ``SqlError``, ``SerializationError``,
    ``UnsafeSettingError``, ``FencedError``...), each with its PostgreSQL SQLSTATE.
``close_session`` ``session``
    Closes it (an open transaction is rolled back).

The PostgreSQL wire protocol (a later step) runs in this process on the same engine.
``subscribe`` ``[name, address]`` (writer)
    A reader asks for the redo stream; the writer then calls ``redo`` on ``address``.
``redo`` ``[prev, last, block, vdl, allocated, sent_at]`` (reader)
    One message of the stream (``borealis.engine.replication``); answers
    ``[vdl, oldest_read_point]``.
``promote`` (reader)
    Become the writer: stop following, run volume recovery (which fences the old writer),
    and serve writes. The reader's sessions are closed (clients reconnect, as after any
    failover); the answer is the new ``status``.

A reader started with ``--writer HOST:PORT`` subscribes there, answers only once it has a
first VDL, and subscribes again when it has heard nothing for ``SILENCE_S`` (the writer
sends a heartbeat when idle), catching up from storage.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis.engine.database import Database, Session
from borealis.engine.replication import SILENCE_S, RedoPublisher
from borealis.errors import (
    BadRequestError,
    BorealisError,
    ConfigError,
    FencedError,
    ProtocolError,
)
from borealis.protocol.postgres.scram import ScramSecret
from borealis.protocol.postgres.server import PgServer, server_tls_context
from borealis.protocol.postgres.session import SqlSession
from borealis.transport.pool import ConnectionPool
from borealis.transport.rpc import RpcServer
from borealis.volume.client import VolumeClient
from borealis.volume.spec import VolumeSpec

log = logging.getLogger(__name__)

SESSIONS_MAX = 1024
"""Sessions open at once over the control interface; more is refused (BadRequestError)."""
SQL_BYTES_MAX = 1 << 20


FIRST_VDL_TIMEOUT_S = 30.0
REDO_TIMEOUT_S = 5.0


@dataclass
class InstanceConfig:
    instance_id: str
    az: str
    role: str = "writer"
    cache_bytes: int = 64 * 2**20
    lock_timeout_s: float = 10.0
    writer_address: str | None = None
    pg_listen: tuple[str, int] | None = None
    """Where to serve the PostgreSQL protocol (``protocol/postgres/server.py``), if at all."""
    pg_password: str | None = None
    """The master user's password (SCRAM-SHA-256); without one, only a loopback address."""
    pg_user: str = "postgres"
    """The master user's name; the one database is named ``pg_database``."""
    pg_database: str = "postgres"
    pg_connections_max: int = 100
    pg_tls_cert: Path | None = None
    """PEM certificate (chain) and key for TLS; clients then may use sslmode=require or
    verify-full (the certificate must name the address they connect to)."""
    pg_tls_key: Path | None = None
    pg_tls_required: bool = False


class Instance:
    """One database instance: its engine, its sessions, its control interface."""

    def __init__(self, config: InstanceConfig, client: VolumeClient) -> None:
        self.config = config
        self.client = client
        self.db: Database | None = None
        self.recovery_s = 0.0
        self.started_s = time.monotonic()
        self._sessions: dict[tuple[str, str], Session] = {}
        self._session_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._server: RpcServer | None = None
        self.address = ""
        self.pg_server: PgServer | None = None
        self.pg_address = ""
        self.publisher: RedoPublisher | None = None
        self.pool = ConnectionPool(name=f"instance {config.instance_id}")
        self._tasks: list[asyncio.Task[None]] = []
        self._last_redo_s = 0.0

    async def open(self) -> None:
        if self.config.role == "writer":
            await self._open_writer()
        elif self.config.role == "reader":
            if not self.config.writer_address:
                raise BadRequestError("a reader needs the writer's address (--writer)")
            self.db = await Database.open_reader(
                self.client, cache_bytes=self.config.cache_bytes,
                lock_timeout_s=self.config.lock_timeout_s,
            )
        else:
            raise BadRequestError(f"unknown role {self.config.role!r}")

    async def _open_writer(self) -> None:
        started = time.perf_counter()
        self.db = await Database.open_writer(
            self.client, cache_bytes=self.config.cache_bytes,
            lock_timeout_s=self.config.lock_timeout_s,
        )
        self.recovery_s = time.perf_counter() - started
        self.publisher = RedoPublisher(self.client)
        self._tasks.append(asyncio.create_task(self.publisher.heartbeat()))
        result = self.client.recovery_result
        log.info("instance open instance=%s role=writer epoch=%s vdl=%s recovery_s=%.3f",
                 self.config.instance_id, result.epoch if result else None,
                 result.vdl if result else None, self.recovery_s)

    async def serve(self, host: str, port: int) -> tuple[str, int]:
        self._server = RpcServer(self, name=f"instance {self.config.instance_id}")
        bound = await self._server.start(host, port)
        self.address = f"{bound[0]}:{bound[1]}"
        if self.config.pg_listen is not None:
            secret = None
            if self.config.pg_password:
                secret = ScramSecret.from_password(self.config.pg_password)
            elif not _loopback(self.config.pg_listen[0]):
                raise ConfigError("serving the PostgreSQL protocol beyond this machine needs "
                                  "a password (--pg-password or BOREALIS_MASTER_PASSWORD)")
            tls = None
            if self.config.pg_tls_cert is not None:
                tls = server_tls_context(self.config.pg_tls_cert, self.config.pg_tls_key)
            self.pg_server = PgServer(lambda: self.db, name=self.config.instance_id,
                                      secret=secret, user=self.config.pg_user,
                                      database_name=self.config.pg_database,
                                      connections_max=self.config.pg_connections_max,
                                      tls=tls, tls_required=self.config.pg_tls_required)
            pg_host, pg_port = await self.pg_server.start(*self.config.pg_listen)
            self.pg_address = f"{pg_host}:{pg_port}"
        if self.config.role == "reader":
            self._tasks.append(asyncio.create_task(self._follow()))
            await self._first_vdl()
        return bound

    async def _first_vdl(self) -> None:
        assert self.db is not None
        deadline = time.monotonic() + FIRST_VDL_TIMEOUT_S
        while self.db.reader_state.stats.messages == 0:
            if time.monotonic() > deadline:
                raise BadRequestError(
                    f"no redo stream from the writer at {self.config.writer_address} within "
                    f"{FIRST_VDL_TIMEOUT_S} s")
            await asyncio.sleep(0.01)
        log.info("reader following instance=%s writer=%s vdl=%d", self.config.instance_id,
                 self.config.writer_address, self.db.vdl)

    async def _follow(self) -> None:
        """Subscribe to the writer, and again whenever it has been silent too long."""
        assert self.config.writer_address is not None
        while True:
            try:
                rpc = await self.pool.get(self.config.writer_address)
                await rpc.call("subscribe", [self.config.instance_id, self.address],
                               timeout_s=REDO_TIMEOUT_S)
                self._last_redo_s = time.monotonic()
            except BorealisError as exc:
                log.info("subscribe to the writer at %s failed: %s",
                         self.config.writer_address, exc)
                await asyncio.sleep(SILENCE_S / 4)
                continue
            while time.monotonic() - self._last_redo_s < SILENCE_S:
                await asyncio.sleep(SILENCE_S / 4)
            log.warning("no redo from the writer for %.1f s: subscribing again", SILENCE_S)

    async def promote(self) -> dict[str, Any]:
        """Become the writer (see the module docstring)."""
        if self.config.role == "writer":
            return self.status()
        log.warning("promoting instance=%s to writer", self.config.instance_id)
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        for key in list(self._sessions):
            await self._close_session(key)
        if self.db is not None:
            await self.db.close()
        await self.client.close()
        spec_path = self.client.spec_path
        assert spec_path is not None
        self.client = VolumeClient(VolumeSpec.load(spec_path), writer_id=self.config.instance_id,
                                   spec_path=spec_path)
        self.config.role = "writer"
        await self._open_writer()
        return self.status()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.publisher is not None:
            self.publisher.close()
        if self._server is not None:
            await self._server.close()
        if self.pg_server is not None:
            await self.pg_server.close()
        for session in list(self._sessions.values()):
            await session.close()
        if self.db is not None:
            await self.db.close()
        await self.client.close()
        await self.pool.close()

    @property
    def state(self) -> str:
        core = self.client.core
        return "fenced" if core is not None and core.fenced else "serving"

    def status(self) -> dict[str, Any]:
        db = self.db
        core = self.client.core
        cache = db.cache if db is not None else None
        lag: dict[str, Any] = {"lag_ms": 0.0, "lag_lsns": 0}
        if db is not None and db.reader:
            reader = db.reader_state
            p50, p99 = reader.lag_percentiles()
            lag = {"lag_ms": round(reader.stats.last_lag_ms, 3),
                   "lag_p50_ms": round(p50, 3), "lag_p99_ms": round(p99, 3),
                   "lag_lsns": reader.stats.lag_lsns, "position": reader.position,
                   "redo_messages": reader.stats.messages, "redo_gaps": reader.stats.gaps,
                   "writer": self.config.writer_address}
        return {
            "instance": self.config.instance_id,
            "role": self.config.role,
            "state": self.state,
            "az": self.config.az,
            "address": self.address,
            "pg_address": self.pg_address,
            "epoch": core.epoch if core is not None else 0,
            "vdl": db.vdl if db is not None else 0,
            "recovery_s": round(self.recovery_s, 4),
            "uptime_s": round(time.monotonic() - self.started_s, 3),
            "sessions": len(self._sessions),
            "statements": db.stats.statements if db else 0,
            "commits": db.stats.commits if db else 0,
            "serialization_failures": db.stats.serialization_failures if db else 0,
            "cache": {
                "bytes": cache.bytes, "bytes_max": cache.bytes_max, "pages": len(cache),
                "hits": cache.stats.hits, "misses": cache.stats.misses,
                "hit_ratio": round(cache.stats.hit_ratio, 4),
            } if cache is not None else {},
            "readers": sorted(self.publisher.subscribers) if self.publisher else [],
            **lag,  # a writer is the source of the redo stream: no lag
        }

    # -- the control interface --------------------------------------------------------

    def dispatch(self, method: str, body: Any, peer: str) -> Any:
        if method == "status":
            return self.status()
        if method == "execute":
            return self._execute(body, peer)
        if method == "close_session":
            if not isinstance(body, str):
                raise ProtocolError("close_session takes a session name")
            return self._close_session((peer, body))
        if method == "redo":
            if self.db is None or not self.db.reader:
                raise BadRequestError("redo is for readers; this instance is the writer")
            self._last_redo_s = time.monotonic()
            return self.db.reader_state.apply(body)
        if method == "subscribe":
            return self._subscribe(body)
        if method == "promote":
            return self.promote()
        raise BadRequestError(f"unknown method {method!r}")

    def _subscribe(self, body: Any) -> dict[str, Any]:
        if self.publisher is None:
            raise BadRequestError("only the writer has a redo stream")
        if not (isinstance(body, list) and len(body) == 2
                and all(isinstance(x, str) for x in body)):
            raise ProtocolError("subscribe takes [name: str, address: str]")
        name, address = body
        pool = self.pool

        async def send(message: list[Any]) -> Any:
            rpc = await pool.get(address)
            return await rpc.call("redo", message, timeout_s=REDO_TIMEOUT_S)

        log.info("reader subscribed name=%s address=%s", name, address)
        return self.publisher.subscribe(name, send)

    async def _execute(self, body: Any, peer: str) -> list[Any]:
        if not (isinstance(body, list) and len(body) == 3 and isinstance(body[0], str)
                and isinstance(body[1], str) and (body[2] is None
                                                  or isinstance(body[2], list | dict))):
            raise ProtocolError("execute takes [session: str, sql: str, params: list|map|nil]")
        name, sql, params = body
        if len(sql.encode()) > SQL_BYTES_MAX:
            raise BadRequestError(f"statement of more than {SQL_BYTES_MAX} bytes")
        if self.state == "fenced":
            raise FencedError(f"instance {self.config.instance_id} was fenced by a newer "
                              "writer: it acknowledges nothing any more")
        key = (peer, name)
        lock = self._session_locks.setdefault(key, asyncio.Lock())
        async with lock:  # a session runs one statement at a time
            session = await self._session(key)
            result = await session.execute(sql, params)
        return [result.columns, [list(row) for row in result.rows], result.changes]

    async def _session(self, key: tuple[str, str]) -> Session:
        session = self._sessions.get(key)
        if session is None:
            if len(self._sessions) >= SESSIONS_MAX:
                raise BadRequestError(f"too many sessions (at most {SESSIONS_MAX})")
            assert self.db is not None
            # The functions and collations that PostgreSQL-made schemas refer to (a
            # NUMERIC column's collation, SERIAL defaults' nextval), so that control-
            # interface sessions can use the tables PostgreSQL clients created.
            sql = SqlSession(user=self.config.pg_user, database=self.config.pg_database,
                             read_only=self.db.reader)
            session = await self.db.session(sql.register)
            self._sessions[key] = session
        return session

    async def _close_session(self, key: tuple[str, str]) -> None:
        session = self._sessions.pop(key, None)
        self._session_locks.pop(key, None)
        if session is not None:
            try:
                await session.close()
            except BorealisError as exc:
                log.warning("closing session %s failed: %s", key, exc)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
