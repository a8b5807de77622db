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
Readers (replicas) and promotion are not built yet: ``--role reader`` is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from borealis.engine.database import Database, Session
from borealis.errors import BadRequestError, BorealisError, FencedError, ProtocolError
from borealis.transport.rpc import RpcServer
from borealis.volume.client import VolumeClient

log = logging.getLogger(__name__)

SESSIONS_MAX = 1024
"""Sessions open at once over the control interface; more is refused (BadRequestError)."""
SQL_BYTES_MAX = 1 << 20


@dataclass
class InstanceConfig:
    instance_id: str
    az: str
    role: str = "writer"
    cache_bytes: int = 64 * 2**20
    lock_timeout_s: float = 10.0


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

    async def open(self) -> None:
        if self.config.role != "writer":
            raise BadRequestError(f"role {self.config.role!r} is not available yet "
                                  "(only the writer is built)")
        started = time.perf_counter()
        self.db = await Database.open_writer(
            self.client, cache_bytes=self.config.cache_bytes,
            lock_timeout_s=self.config.lock_timeout_s,
        )
        self.recovery_s = time.perf_counter() - started
        result = self.client.recovery_result
        log.info("instance open instance=%s role=%s epoch=%s vdl=%s recovery_s=%.3f",
                 self.config.instance_id, self.config.role,
                 result.epoch if result else None, result.vdl if result else None,
                 self.recovery_s)

    async def serve(self, host: str, port: int) -> tuple[str, int]:
        self._server = RpcServer(self, name=f"instance {self.config.instance_id}")
        return await self._server.start(host, port)

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
        for session in list(self._sessions.values()):
            await session.close()
        if self.db is not None:
            await self.db.close()
        await self.client.close()

    @property
    def state(self) -> str:
        core = self.client.core
        return "fenced" if core is not None and core.fenced else "serving"

    def status(self) -> dict[str, Any]:
        db = self.db
        core = self.client.core
        cache = db.cache if db is not None else None
        return {
            "instance": self.config.instance_id,
            "role": self.config.role,
            "state": self.state,
            "az": self.config.az,
            "epoch": core.epoch if core is not None else 0,
            "vdl": self.client.vdl,
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
            # The writer is the source of the redo stream: it has no lag.
            "lag_ms": 0.0,
            "lag_lsns": 0,
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
        raise BadRequestError(f"unknown method {method!r}")

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
            session = await self.db.session()
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
