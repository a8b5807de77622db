"""The storage node process: hosts segments, persists their entries, serves the protocol.

This is the asyncio adapter around ``Segment``. Everything a segment decides reaches disk
through the node's one redo log (entries of all its segments, group-committed: appends go
to a buffer, one fsync in a worker thread covers every append made before it started, and
the replies that waited on those entries go out when it returns). Page versions live in
one LMDB store. On start the node replays its log, so a node killed with -9 comes back
with everything it acknowledged.

Background work runs on a timer: gossip pulls to peer nodes for holes, coalescing into
the page store (only synced records, only up to the writer's VDL), GC below the minimum
read point, and scrubbing of retained records and stored page versions; a corrupt page
version is fetched again from a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from borealis.errors import (
    BadRequestError,
    BorealisError,
    CorruptionError,
    ProtocolError,
    UnknownSegmentError,
)
from borealis.storage import wire
from borealis.storage.messages import GossipPull, GossipPush, PageVersion
from borealis.storage.pagestore import LmdbPageStore, PageStore
from borealis.storage.redolog import FileRedoLog, RedoLog
from borealis.storage.segment import Entry, Segment, SendGossip
from borealis.transport.pool import ConnectionPool
from borealis.transport.rpc import RpcServer
from borealis.types import LSN, PageNo, SegmentId

log = logging.getLogger(__name__)

TICK_S = 0.01
COALESCE_EVERY_S = 0.05
SCRUB_EVERY_S = 1.0
STORE_SYNC_EVERY_S = 1.0
GC_EVERY_S = 1.0
PAGE_SCRUB_PAGES_PER_PASS = 256
GOSSIP_TIMEOUT_S = 2.0


@dataclass
class _Hosted:
    segment: Segment
    spec: wire.CreateSegment
    peer_addresses: dict[SegmentId, str]
    synced_scl: LSN = LSN(0)
    page_scrub_cursor: int = 0


@dataclass
class NodeStats:
    requests: int = 0
    syncs: int = 0
    entries_logged: int = 0
    gossip_errors: int = 0
    pages_repaired: int = 0
    started_s: float = field(default_factory=time.monotonic)


class StorageNode:
    def __init__(self, node_id: str, az: str, data_dir: Path, *,
                 redo_log: RedoLog | None = None, store: PageStore | None = None) -> None:
        self.node_id = node_id
        self.az = az
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log: RedoLog = redo_log or FileRedoLog(data_dir / "redo")
        self.store: PageStore = store or LmdbPageStore(data_dir / "pages")
        self.hosted: dict[SegmentId, _Hosted] = {}
        self.stats = NodeStats()
        self.pool = ConnectionPool(name=f"node {node_id}")
        self._waiters: list[tuple[int, asyncio.Future[Any], Any]] = []
        self._sync_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._server: RpcServer | None = None
        self._closing = False
        self._spawned: set[asyncio.Task[None]] = set()
        self._repairing: set[tuple[SegmentId, int, int]] = set()
        self._replay()

    # --- start-up -------------------------------------------------------------------------

    def _replay(self) -> None:
        started = time.perf_counter()
        count = 0
        for _seq, payload in self.log.replay():
            sid, entry = msgpack.unpackb(payload, raw=False)
            self._apply_logged(SegmentId(sid), tuple(entry))
            count += 1
        for sid, hosted in self.hosted.items():
            hosted.segment.restarted(self.store.get_meta(_coalesced_key(sid)))
            hosted.synced_scl = hosted.segment.scl
        log.info("replayed node=%s entries=%d segments=%d in %.3fs", self.node_id, count,
                 len(self.hosted), time.perf_counter() - started)

    def _apply_logged(self, sid: SegmentId, entry: Entry) -> None:
        if entry[0] == "create":
            self._host(wire.decode(wire.CreateSegment, entry[1]))
            return
        hosted = self.hosted.get(sid)
        if hosted is None:
            raise CorruptionError(f"node {self.node_id}: log entry for unknown segment {sid}")
        hosted.segment.apply_entry(entry)

    def _host(self, spec: wire.CreateSegment) -> _Hosted:
        peers = dict(spec.peers)
        segment = Segment(
            spec.segment, self.store, spec.first_page, spec.pg_pages, tuple(peers),
        )
        hosted = _Hosted(segment, spec, peers)
        self.hosted[spec.segment] = hosted
        return hosted

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = RpcServer(self, name=f"storage {self.node_id}")
        address = await self._server.start(host, port)
        self._tasks.append(asyncio.create_task(self._background()))
        log.info("storage node serving node=%s az=%s address=%s:%d", self.node_id, self.az,
                 *address)
        return address

    async def close(self) -> None:
        self._closing = True
        for task in [*self._tasks, *self._spawned]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.close()
        if self._sync_task is not None:
            await asyncio.gather(self._sync_task, return_exceptions=True)
        await self.pool.close()
        self.log.sync()
        self.store.sync()
        self.log.close()
        self.store.close()

    # --- durability -----------------------------------------------------------------------

    def _log_entries(self, sid: SegmentId, entries: list[Entry]) -> int:
        seq = 0
        for entry in entries:
            seq = self.log.append(msgpack.packb([sid, list(entry)], use_bin_type=True))
        self.stats.entries_logged += len(entries)
        return seq

    def _after_sync(self, seq: int, reply: Any) -> Any:
        """The reply, once every entry up to ``seq`` is on disk."""
        if seq == 0 or seq <= self.log.synced_seq:
            return reply
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future, reply))
        if self._sync_task is None:
            self._sync_task = asyncio.create_task(self._sync_loop())
        return future

    async def _sync_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters:
                snapshot = {sid: h.segment.scl for sid, h in self.hosted.items()}
                synced = await loop.run_in_executor(None, self.log.sync)
                self.stats.syncs += 1
                for sid, scl in snapshot.items():
                    hosted = self.hosted.get(sid)
                    if hosted is not None:
                        hosted.synced_scl = max(hosted.synced_scl, scl)
                still = []
                for seq, future, reply in self._waiters:
                    if seq <= synced:
                        if not future.done():
                            future.set_result(reply)
                    else:
                        still.append((seq, future, reply))
                self._waiters = still
        except BorealisError as exc:
            # A failed fsync leaves the log unusable: nothing more may be acknowledged.
            log.critical("redo log sync failed node=%s: %s", self.node_id, exc)
            for _, future, _ in self._waiters:
                if not future.done():
                    future.set_exception(exc)
            self._waiters = []
            raise
        finally:
            self._sync_task = None

    # --- requests -------------------------------------------------------------------------

    def dispatch(self, method: str, body: Any, peer: str) -> Any:
        self.stats.requests += 1
        if method == "node_status":
            return self.status()
        if method == "page_version":
            return self._page_version(body)
        cls = wire.METHODS.get(method)
        if cls is None:
            raise BadRequestError(f"unknown method {method!r}")
        msg = wire.decode(cls, body)
        if method == "create":
            return self._create(msg)
        hosted = self.hosted.get(msg.segment)
        if hosted is None:
            raise UnknownSegmentError(f"node {self.node_id} does not host {msg.segment}")
        seg = hosted.segment
        if method == "write":
            entries, ack = seg.on_write(msg)
            return self._after_sync(self._log_entries(seg.segment_id, entries), wire.encode(ack))
        if method == "seal":
            entries, state = seg.on_seal(msg)
            return self._after_sync(
                self._log_entries(seg.segment_id, entries), wire.encode(state)
            )
        if method == "get_page":
            return wire.encode(seg.on_get_page(msg))
        if method == "read_records":
            records, covered_to = seg.on_read_records(msg)
            return [[r.to_wire() for r in records], covered_to]
        if method == "query_cpl":
            return seg.highest_cpl_at_or_below(msg.upto)
        if method == "gossip":
            return wire.encode(seg.on_gossip_pull(msg))
        if method == "membership":
            entries = seg.on_membership(msg)
            return self._after_sync(self._log_entries(seg.segment_id, entries), None)
        raise BadRequestError(f"method {method!r} is not served")

    def _create(self, spec: wire.CreateSegment) -> Any:
        existing = self.hosted.get(spec.segment)
        if existing is not None:
            if existing.spec != spec:
                raise BadRequestError(f"segment {spec.segment} exists with another spec")
            return None
        self._host(spec)
        seq = self._log_entries(spec.segment, [("create", wire.encode(spec))])
        return self._after_sync(seq, None)

    def _page_version(self, body: Any) -> Any:
        """The stored image of exactly (segment, page, version): used by peers' repair."""
        try:
            sid, page, version = body
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"page_version: {exc}") from exc
        hosted = self.hosted.get(SegmentId(str(sid)))
        if hosted is None:
            raise UnknownSegmentError(f"node {self.node_id} does not host {sid}")
        found = self.store.get_version_at(str(sid), int(page), int(version))
        if found is None or found[0] != version:
            raise BadRequestError(f"{sid}: no version {version} of page {page}")
        return found[1]

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "az": self.az,
            "uptime_s": round(time.monotonic() - self.stats.started_s, 3),
            "requests": self.stats.requests,
            "syncs": self.stats.syncs,
            "segments": {
                sid: {
                    "scl": h.segment.scl, "epoch": h.segment.epoch,
                    "coalesced": h.segment.coalesced, "records": len(h.segment.records),
                    "corrupt_found": h.segment.stats.corrupt_found,
                    "snapshots_installed": h.segment.stats.snapshots_installed,
                    "gossip_records_in": h.segment.stats.gossip_records_in,
                }
                for sid, h in sorted(self.hosted.items())
            },
            "pages_repaired": self.stats.pages_repaired,
        }

    # --- background -----------------------------------------------------------------------

    async def _background(self) -> None:
        """Gossip every tick; coalescing, scrubbing, GC and page-store syncs less often, so
        that background work never crowds out requests (measured: page scrubbing on every
        tick took most of a node's loop)."""
        loop = asyncio.get_running_loop()
        last = dict.fromkeys(("coalesce", "scrub", "gc", "store_sync"), time.monotonic())

        def due(what: str, every_s: float, now: float) -> bool:
            if now - last[what] < every_s:
                return False
            last[what] = now
            return True

        while not self._closing:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            coalesce = due("coalesce", COALESCE_EVERY_S, now)
            scrub = due("scrub", SCRUB_EVERY_S, now)
            gc = due("gc", GC_EVERY_S, now)
            for sid, hosted in list(self.hosted.items()):
                try:
                    self._tick_segment(sid, hosted, now, coalesce=coalesce, scrub=scrub)
                    if gc:
                        hosted.segment.gc()
                except BorealisError as exc:
                    log.warning("background work failed segment=%s: %s", sid, exc)
            if due("store_sync", STORE_SYNC_EVERY_S, now):
                await loop.run_in_executor(None, self.store.sync)

    def _tick_segment(self, sid: SegmentId, hosted: _Hosted, now: float, *,
                      coalesce: bool, scrub: bool) -> None:
        seg = hosted.segment
        entries, effects = seg.tick(now)
        if scrub:
            entries += seg.scrub_step()
            self._scrub_pages(hosted)
        if entries:
            self._log_entries(sid, entries)
        for effect in effects:
            if isinstance(effect, SendGossip):
                self._spawn(self._gossip(hosted, effect.message))
        if coalesce:
            versions, upto = seg.coalesce(hosted.synced_scl)
            if versions or upto > seg.coalesced:
                self.store.put_versions(versions, meta={_coalesced_key(sid): b"%d" % upto})
            if versions or upto > seg.coalesced or seg.all_scl > seg.records_floor:
                seg.coalesced_to(upto)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def _scrub_pages(self, hosted: _Hosted) -> None:
        seg = hosted.segment
        first = hosted.spec.first_page
        start = hosted.page_scrub_cursor
        pages = [first + (start + k) % hosted.spec.pg_pages
                 for k in range(min(PAGE_SCRUB_PAGES_PER_PASS, hosted.spec.pg_pages))]
        hosted.page_scrub_cursor = (start + len(pages)) % hosted.spec.pg_pages
        for effect in seg.scrub_pages(pages):
            key = (seg.segment_id, effect.page, effect.version)
            if key not in self._repairing:
                self._repairing.add(key)
                self._spawn(self._repair_page(hosted, effect.page, effect.version))

    async def _repair_page(self, hosted: _Hosted, page: PageNo, version: LSN) -> None:
        seg = hosted.segment
        log.warning("corrupt page version segment=%s page=%d version=%d: repairing from a peer",
                    seg.segment_id, page, version)
        for peer, address in hosted.peer_addresses.items():
            if peer == seg.segment_id:
                continue
            try:
                client = await self.pool.get(address)
                image = await client.call("page_version", [peer, page, version],
                                          timeout_s=GOSSIP_TIMEOUT_S)
            except BorealisError:
                continue
            self.store.delete_version(seg.key, page, version)
            self.store.put_versions([(seg.key, page, version, bytes(image))])
            self.stats.pages_repaired += 1
            log.info("repaired segment=%s page=%d version=%d from %s",
                     seg.segment_id, page, version, peer)
            self._repairing.discard((seg.segment_id, page, version))
            return
        self._repairing.discard((seg.segment_id, page, version))
        log.error("could not repair segment=%s page=%d version=%d: no peer had it",
                  seg.segment_id, page, version)

    async def _gossip(self, hosted: _Hosted, pull: GossipPull) -> None:
        address = hosted.peer_addresses.get(pull.segment)
        if address is None:
            return
        try:
            client = await self.pool.get(address)
            body = await client.call("gossip", wire.encode(pull), timeout_s=GOSSIP_TIMEOUT_S)
            push = wire.decode(GossipPush, body)
        except BorealisError as exc:
            self.stats.gossip_errors += 1
            log.debug("gossip failed segment=%s peer=%s: %s", pull.requester, pull.segment, exc)
            return
        seg = hosted.segment
        if self.hosted.get(seg.segment_id) is not hosted or self._closing:
            return
        entries, pages = seg.on_gossip_push(push)
        if pages:
            self.store.drop_segment(seg.key)
            self.store.put_versions(
                [(seg.key, p, v, img) for p, v, img in pages],
                meta={_coalesced_key(seg.segment_id): b"%d" % push.after},
            )
            self.store.sync()
        self._log_entries(seg.segment_id, entries)


def _coalesced_key(sid: str) -> str:
    return f"coalesced:{sid}"


def page_version_reply(body: Any) -> PageVersion:
    return wire.decode(PageVersion, body)
