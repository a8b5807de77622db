"""The database instance process: the engine on a volume, and its control interface.

``borealis instance run --role writer ...`` opens the volume as its writer (volume recovery: a
quorum read of every PG, a new epoch, a truncation; no redo replay, so the time to serve
does not grow with the data), then serves an RPC control interface on the same transport as
the storage nodes (length-prefixed msgpack frames):

``status``
    ``{"instance", "role", "state", "az", "epoch", "vdl", "recovery_s", "sessions",
    "statements", "commits", "cache": {...}, "lag_ms", "lag_lsns", "volume": {...}}``;
    ``state`` is ``serving`` or ``fenced`` (a newer writer took the volume: nothing is
    acknowledged any more, and the process should be replaced). Cheap: it may be polled
    every 200 ms. On a writer, ``volume`` is ``{"pgs", "epoch", "vdl", "healthy_from",
    "protection_groups": [{"pg", "membership_epoch", "changing", "healthy", "segments":
    [{"segment", "node", "az", "acked", "healthy"}]}]}``: a segment is healthy when its
    acknowledged SCL has reached ``healthy_from``, the VDL of ``HEALTH_WINDOW_S`` ago (so a
    segment a round trip behind is healthy, and a dead node's segments turn unhealthy
    within about that long while commits go on; an idle writer learns nothing new, so a node
    that dies while it is idle shows unhealthy only once commits resume). ``healthy`` of a
    PG counts its healthy segments of six; ``changing``: a membership change is under way
    (its new segment is the one filling up). On a reader, ``volume`` is ``{"pgs"}`` (from
    its copy of the volume spec).
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
``redo`` ``[prev, last, block, vdl, allocated, sent_at, epoch, lag_ms]`` (reader)
    One message of the stream (``borealis.engine.replication``); answers
    ``[vdl, oldest_read_point]``.
``promote`` (reader)
    Become the writer: stop following, run volume recovery (which fences the old writer),
    and serve writes. The reader's sessions are closed (clients reconnect, as after any
    failover); the answer is the new ``status``.
``follow`` ``"host:port"`` (reader)
    Follow the writer at that control address from now on (after a failover, the new
    one): subscribe there, and only once that succeeded stop the current follow loop and
    re-point (``writer`` in ``status``). The reader serves reads throughout; its first
    message from the new writer (a newer epoch) is handled as a gap, so it reads from
    storage what it needs and caches nothing the old writer streamed above its VDL
    (``borealis.engine.replication``). A failed subscription raises its error and
    changes nothing. On a writer: ``BadRequestError``. The answer is the new ``status``.
``add_storage_node`` ``[node_id, az, address]`` (writer)
    Make a storage node known to the volume (a spare for ``replace_segment``, a place
    for new PGs) and save the volume spec. ``{"node", "az", "address", "added"}``;
    ``added`` is false when it was known already with the same AZ and address; a
    conflicting one (same id or address, other values; an AZ the volume does not use) is
    a ``BadRequestError``.
``remove_storage_node`` ``node_id`` (writer)
    Forget a storage node that holds no segment any more, so that no new PG is placed on
    it (``{"node", "removed"}``); ``BadRequestError`` while it holds a segment.
``replace_segment`` ``[pg, old_segment_id, node_id]`` (writer)
    Rebuild a segment (lost with its node) as a new segment on ``node_id``, in the same
    AZ, by a membership change while commits go on (``VolumeClient.replace_segment``);
    answers the new segment's id once it has caught up and the spec is saved. It can take
    seconds; other calls are served meanwhile. Changes of different PGs run at once (at
    most ``REPLACEMENTS_MAX``); a second one for a PG already changing is refused
    (``BadRequestError``).

With ``--metrics-listen``, the instance serves Prometheus metrics (``GET /metrics``,
``register_metrics``: the ``borealis_*`` families).

A reader started with ``--writer HOST:PORT`` subscribes there, answers only once it has a
first VDL, and subscribes again when it has heard nothing for ``SILENCE_S`` (the writer
sends a heartbeat when idle), catching up from storage.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
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
    SqlError,
)
from borealis.http import HttpServer
from borealis.metrics import Histogram, Labels, Metrics, serve_metrics
from borealis.protocol.postgres.scram import ScramSecret
from borealis.protocol.postgres.server import PgServer, server_tls_context
from borealis.protocol.postgres.session import SqlSession
from borealis.transport.pool import ConnectionPool
from borealis.transport.rpc import RpcServer
from borealis.types import LSN, NodeId, PgIndex, SegmentId
from borealis.volume.client import VolumeClient
from borealis.volume.spec import NodeInfo, VolumeSpec

log = logging.getLogger(__name__)

SESSIONS_MAX = 1024
"""Sessions open at once over the control interface; more is refused (BadRequestError)."""
SQL_BYTES_MAX = 1 << 20


FIRST_VDL_TIMEOUT_S = 30.0
REDO_TIMEOUT_S = 5.0
HEALTH_WINDOW_S = 2.0
"""A segment is healthy when it has acknowledged the VDL the writer had this long ago."""
HEALTH_SAMPLE_S = 0.25
REPLACEMENTS_MAX = 16
"""Membership changes (``replace_segment``) under way at once."""


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
    metrics_listen: tuple[str, int] | None = None
    """Where to serve Prometheus metrics (``GET /metrics``), if at all."""


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
        self.pool = ConnectionPool(name=f"instance {config.instance_id}",
                                   caller=config.instance_id)
        self._tasks: list[asyncio.Task[None]] = []
        self._follow_task: asyncio.Task[None] | None = None
        self._follow_lock = asyncio.Lock()
        """Held while re-pointing (``follow``) or promoting: one change of who this
        instance follows, or whether it does, at a time."""
        self._last_redo_s = 0.0
        self._replacing: set[PgIndex] = set()
        # The VDL every HEALTH_SAMPLE_S over HEALTH_WINDOW_S: the oldest is what a healthy
        # segment has acknowledged.
        self._vdl_samples: collections.deque[LSN] = collections.deque(
            maxlen=round(HEALTH_WINDOW_S / HEALTH_SAMPLE_S) + 1)
        self.commit_latency = Histogram()
        # Counters of engines this process closed (a promotion opens a new one), so that
        # the metrics' totals never go backwards.
        self._retired: collections.Counter[str] = collections.Counter()
        self.metrics_server: HttpServer | None = None
        self.metrics_address = ""

    async def open(self) -> None:
        if self.config.role == "writer":
            await self._open_writer()
        elif self.config.role == "reader":
            if not self.config.writer_address:
                raise BadRequestError("a reader needs the writer's address (--writer)")
            self.db = await Database.open_reader(
                self.client, cache_bytes=self.config.cache_bytes,
                lock_timeout_s=self.config.lock_timeout_s,
                commit_latency=self.commit_latency,
            )
        else:
            raise BadRequestError(f"unknown role {self.config.role!r}")

    async def _open_writer(self) -> None:
        started = time.perf_counter()
        self.db = await Database.open_writer(
            self.client, cache_bytes=self.config.cache_bytes,
            lock_timeout_s=self.config.lock_timeout_s,
            commit_latency=self.commit_latency,
        )
        self.recovery_s = time.perf_counter() - started
        self.publisher = RedoPublisher(self.client)
        self._tasks.append(asyncio.create_task(self.publisher.heartbeat()))
        self._vdl_samples.clear()
        self._tasks.append(asyncio.create_task(self._sample_vdl()))
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
        if self.config.metrics_listen is not None:
            metrics = Metrics({"instance_id": self.config.instance_id, "az": self.config.az})
            self.register_metrics(metrics)
            try:
                self.metrics_server, (m_host, m_port) = await serve_metrics(
                    metrics, *self.config.metrics_listen,
                    name=f"metrics {self.config.instance_id}")
            except OSError as exc:
                raise ConfigError(f"cannot serve metrics on {self.config.metrics_listen}: "
                                  f"{exc}") from exc
            self.metrics_address = f"{m_host}:{m_port}"
        if self.config.role == "reader":
            self._follow_task = asyncio.create_task(self._follow())
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

    async def _subscribe_to(self, address: str) -> Any:
        rpc = await self.pool.get(address)
        return await rpc.call("subscribe", [self.config.instance_id, self.address],
                              timeout_s=REDO_TIMEOUT_S)

    async def _follow(self, *, subscribed: bool = False) -> None:
        """Subscribe to the writer, and again whenever it has been silent too long."""
        while True:
            address = self.config.writer_address
            assert address is not None
            if not subscribed:
                try:
                    await self._subscribe_to(address)
                except BorealisError as exc:
                    log.info("subscribe to the writer at %s failed: %s", address, exc)
                    await asyncio.sleep(SILENCE_S / 4)
                    continue
            subscribed = False
            self._last_redo_s = time.monotonic()
            while time.monotonic() - self._last_redo_s < SILENCE_S:
                await asyncio.sleep(SILENCE_S / 4)
            log.warning("no redo from the writer for %.1f s: subscribing again", SILENCE_S)

    async def _stop_following(self) -> None:
        task, self._follow_task = self._follow_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def follow(self, address: Any) -> dict[str, Any]:
        """Follow the writer at ``address`` from now on (see the module docstring)."""
        if not isinstance(address, str):
            raise ProtocolError("follow takes the writer's control address, \"host:port\"")
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise BadRequestError(f"expected HOST:PORT, got {address!r}")
        if self.config.role != "reader" or self.db is None or not self.db.reader:
            raise BadRequestError("follow is for readers; this instance is the writer")
        if address == self.address:
            raise BadRequestError("a reader cannot follow itself")
        async with self._follow_lock:  # one re-pointing at a time
            # Subscribe first: if the new writer refuses (or is not one), nothing changed.
            answer = await self._subscribe_to(address)
            if self.config.role != "reader" or self.db is None or not self.db.reader:
                raise BadRequestError("promoted while re-pointing: this is the writer now")
            following = self.db.reader_state.epoch
            if not isinstance(answer, dict):
                raise ProtocolError(f"malformed subscribe answer from {address}")
            epoch = int(answer.get("epoch", 0))
            if answer.get("state") == "fenced" or epoch < following:
                raise BadRequestError(
                    f"the writer at {address} (epoch {epoch}) was fenced or is older than "
                    f"the one this reader follows (epoch {following})")
            old = self.config.writer_address
            await self._stop_following()
            self.config.writer_address = address
            self._follow_task = asyncio.create_task(self._follow(subscribed=True))
        log.warning("reader re-pointed instance=%s writer=%s (was %s)",
                    self.config.instance_id, address, old)
        return self.status()

    async def _sample_vdl(self) -> None:
        while True:
            self._vdl_samples.append(self.client.vdl)
            await asyncio.sleep(HEALTH_SAMPLE_S)

    async def promote(self) -> dict[str, Any]:
        """Become the writer (see the module docstring)."""
        async with self._follow_lock:
            if self.config.role != "writer":
                await self._promote()
        return self.status()

    async def _promote(self) -> None:
        log.warning("promoting instance=%s to writer", self.config.instance_id)
        await self._stop_following()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        for key in list(self._sessions):
            await self._close_session(key)
        db, self.db = self.db, None  # sessions opened meanwhile are told to retry (57P03)
        if db is not None:
            self._retire(db)
            await db.close()
        self._retired["volume_bytes"] += self.client.stats.bytes_sent
        await self.client.close()
        spec_path = self.client.spec_path
        assert spec_path is not None
        self.client = VolumeClient(VolumeSpec.load(spec_path), writer_id=self.config.instance_id,
                                   spec_path=spec_path)
        self.config.role = "writer"
        await self._open_writer()

    # -- metrics ------------------------------------------------------------------------

    def register_metrics(self, metrics: Metrics) -> None:
        """The instance's ``borealis_*`` families, read at scrape time (they follow a
        promotion: each reads the current engine, client and publisher)."""
        p = "borealis_"

        def total(name: str, current: Callable[[Database], int]) -> int:
            return self._retired[name] + (current(self.db) if self.db is not None else 0)

        def role() -> list[tuple[Labels, int]]:
            return [({"role": r}, int(self.config.role == r)) for r in ("writer", "reader")]

        def lag(attribute: str) -> float | None:
            db = self.db
            if db is None or not db.reader:
                return None
            if attribute == "lag_ms":
                return db.reader_state.lag_ms()
            return float(getattr(db.reader_state.stats, attribute))

        def hit_ratio() -> float:
            hits = total("cache_hits", lambda db: db.cache.stats.hits)
            misses = total("cache_misses", lambda db: db.cache.stats.misses)
            return hits / (hits + misses) if hits + misses else 0.0

        def pg_health() -> list[tuple[Labels, int]] | None:
            if self.client.core is None:
                return None
            return [({"pg": str(h["pg"])}, h["healthy"])
                    for h in self.client.health(self.healthy_from())]

        metrics.histogram(p + "commit_latency_seconds",
                          "From running a statement that commits to its acknowledgement, "
                          "once durable on 4 of 6 segments of every PG", self.commit_latency)
        metrics.gauge(p + "vdl", "Volume durable LSN (a reader: its read point)",
                      lambda: self.db.vdl if self.db is not None else 0)
        metrics.gauge(p + "epoch", "Volume epoch of the writer (0 on a reader)",
                      lambda: self.client.core.epoch if self.client.core is not None else 0)
        metrics.gauge(p + "role", "1 for the instance's role", role)
        metrics.gauge(p + "fenced", "1 once a newer writer fenced this one",
                      lambda: int(self.state == "fenced"))
        metrics.gauge(p + "replica_lag_ms", "A reader's lag behind the writer's VDL (ms)",
                      lambda: lag("lag_ms"))
        metrics.gauge(p + "replica_lag_lsns", "LSNs the writer allocated beyond a reader's "
                      "read point", lambda: lag("lag_lsns"))
        metrics.gauge(p + "postgres_connections_open", "PostgreSQL connections open",
                      lambda: len(self.pg_server.connections) if self.pg_server else 0)
        metrics.gauge(p + "sessions", "SQL sessions open (PostgreSQL and control interface)",
                      lambda: self.db.sessions_open if self.db is not None else 0)
        metrics.counter(p + "statements_total", "SQL statements run",
                        lambda: total("statements", lambda db: db.stats.statements))
        metrics.counter(p + "commits_total", "Commits acknowledged",
                        lambda: total("commits", lambda db: db.stats.commits))
        metrics.counter(p + "serialization_failures_total",
                        "Transactions refused with SQLSTATE 40001",
                        lambda: total("serialization_failures",
                                      lambda db: db.stats.serialization_failures))
        metrics.counter(p + "cache_hits_total", "Page cache hits",
                        lambda: total("cache_hits", lambda db: db.cache.stats.hits))
        metrics.counter(p + "cache_misses_total", "Page cache misses (read from storage)",
                        lambda: total("cache_misses", lambda db: db.cache.stats.misses))
        metrics.gauge(p + "cache_hit_ratio", "Page cache hits over lookups", hit_ratio)
        metrics.counter(p + "volume_bytes_sent_total",
                        "Redo bytes in write batches sent to storage nodes",
                        lambda: self._retired["volume_bytes"] + self.client.stats.bytes_sent)
        metrics.counter(p + "replication_bytes_sent_total",
                        "Redo bytes streamed to readers (summed over readers)",
                        lambda: self.publisher.bytes_sent if self.publisher else 0)
        metrics.gauge(p + "protection_group_healthy_segments",
                      "Segments of a PG (of 6) that have acknowledged the VDL of "
                      f"{HEALTH_WINDOW_S:g} s ago", pg_health)

    def _retire(self, db: Database) -> None:
        self._retired.update({
            "statements": db.stats.statements, "commits": db.stats.commits,
            "serialization_failures": db.stats.serialization_failures,
            "cache_hits": db.cache.stats.hits, "cache_misses": db.cache.stats.misses,
        })

    async def close(self) -> None:
        if self._follow_task is not None:
            self._follow_task.cancel()
        for task in self._tasks:
            task.cancel()
        if self.publisher is not None:
            self.publisher.close()
        if self.db is not None:
            # Running statements would hold their sessions' threads, and closing a session
            # waits for its thread (the CLI gives up on a thread stuck past that).
            self.db.interrupt_all()
        if self.metrics_server is not None:
            await self.metrics_server.close()
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
            lag = {"lag_ms": round(reader.lag_ms(), 3),
                   "lag_p50_ms": round(p50, 3), "lag_p99_ms": round(p99, 3),
                   "lag_lsns": reader.stats.lag_lsns, "position": reader.position,
                   "redo_messages": reader.stats.messages, "redo_gaps": reader.stats.gaps,
                   "redo_epoch": reader.epoch,
                   "redo_writer_changes": reader.stats.writer_changes,
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
            "volume": self.volume_health(),
            # A writer's commits waiting with VDL stuck (the control plane's stalled-writer
            # check); 0 on a reader.
            "stalled_s": round(self.client.stalled_s(), 3) if core is not None else 0.0,
            **lag,  # a writer is the source of the redo stream: no lag
        }

    def healthy_from(self) -> LSN:
        """The VDL of about ``HEALTH_WINDOW_S`` ago (the oldest sample kept)."""
        vdl = self.client.vdl
        if not self._vdl_samples:
            return vdl
        return LSN(min(self._vdl_samples[0], vdl))

    def volume_health(self) -> dict[str, Any]:
        """``status``'s ``volume`` (see the module docstring)."""
        client = self.client
        core = client.core
        if core is None:
            return {"pgs": len(client.spec.layouts)}
        healthy_from = self.healthy_from()
        return {"pgs": len(core.layouts), "epoch": core.epoch, "vdl": core.vdl,
                "healthy_from": healthy_from,
                "protection_groups": client.health(healthy_from)}

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
            reply = self.db.reader_state.apply(body)
            self._last_redo_s = time.monotonic()  # a message it accepted
            return reply
        if method == "subscribe":
            return self._subscribe(body)
        if method == "promote":
            return self.promote()
        if method == "follow":
            return self.follow(body)
        if method == "add_storage_node":
            return self._add_storage_node(body)
        if method == "replace_segment":
            return self._replace_segment(body)
        if method == "remove_storage_node":
            if not isinstance(body, str) or not body:
                raise ProtocolError("remove_storage_node takes node_id: str")
            removed = self._writer_client("remove_storage_node").remove_node(NodeId(body))
            return {"node": body, "removed": removed}
        raise BadRequestError(f"unknown method {method!r}")

    def _writer_client(self, method: str) -> VolumeClient:
        if self.config.role != "writer" or self.client.core is None:
            raise BadRequestError(f"{method} is for the writer; this instance is a reader")
        if self.state == "fenced":
            raise FencedError(f"instance {self.config.instance_id} was fenced by a newer "
                              "writer")
        return self.client

    def _add_storage_node(self, body: Any) -> dict[str, Any]:
        if not (isinstance(body, list) and len(body) == 3
                and all(isinstance(x, str) and x for x in body)):
            raise ProtocolError("add_storage_node takes [node_id: str, az: str, address: str]")
        node, az, address = body
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise BadRequestError(f"expected HOST:PORT, got {address!r}")
        added = self._writer_client("add_storage_node").add_node(
            NodeInfo(NodeId(node), az, address))
        return {"node": node, "az": az, "address": address, "added": added}

    async def _replace_segment(self, body: Any) -> str:
        if not (isinstance(body, list) and len(body) == 3 and isinstance(body[0], int)
                and not isinstance(body[0], bool) and isinstance(body[1], str)
                and isinstance(body[2], str)):
            raise ProtocolError("replace_segment takes [pg: int, old_segment_id: str, "
                                "node_id: str]")
        client = self._writer_client("replace_segment")
        pg, old, node = PgIndex(body[0]), SegmentId(body[1]), NodeId(body[2])
        if pg not in client.spec.layouts:
            raise BadRequestError(f"the volume has no PG {pg}")
        # VolumeClient.replace_segment checks for a change under way only once it has
        # created the new segment: two calls for one PG must not both get that far.
        if pg in self._replacing:
            raise BadRequestError(f"PG {pg} is already changing membership")
        if len(self._replacing) >= REPLACEMENTS_MAX:
            raise BadRequestError(f"{REPLACEMENTS_MAX} membership changes are under way")
        self._replacing.add(pg)
        try:
            new = await client.replace_segment(pg, old, node)
        finally:
            self._replacing.discard(pg)
        log.info("segment replaced instance=%s pg=%d old=%s new=%s node=%s",
                 self.config.instance_id, pg, old, new, node)
        return str(new)

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
        core = self.client.core
        return {**self.publisher.subscribe(name, send),
                "epoch": core.epoch if core is not None else 0, "state": self.state}

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
            if self.db is None:  # promoting
                raise SqlError("the database system is starting up", "57P03")
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
