"""The storage node process: hosts segments, persists their entries, serves the protocol.

This is the asyncio adapter around ``Segment``. Everything a segment decides reaches disk
through the node's one redo log (entries of all its segments, group-committed: appends go
to a buffer, and one fdatasync at the end of the loop iteration covers every append made
by its requests; the replies that waited on those entries go out after it). A reply that
reports an SCL waits for every entry appended so far, not only its own. A volume client
sends the batches of one flush for all the segments a node hosts in one ``write_many``
request. Page versions live in one LMDB store. On start the node replays its log, so a
node killed with -9 comes back with everything it acknowledged.

Background work runs on a timer: gossip pulls to peer nodes for holes, coalescing into
the page store (only synced records, only up to the writer's VDL), GC below the minimum
read point, and scrubbing of retained records and stored page versions; a corrupt page
version is fetched again from a peer.

The log is trimmed by checkpoints (``checkpoint``): once ``checkpoint_bytes`` were logged
since the last one, the node syncs its page store, logs every segment's state with the
records it still retains (``Segment.checkpoint``), and once that is synced makes the
checkpoint the log's first entry. So the log holds about ``checkpoint_bytes`` plus the
retained records, and a restart replays that much, not the node's whole history.

``register_metrics`` exposes the node to Prometheus (``borealis_storage_*``). Counters are
read at scrape time from ``NodeStats``, the segments' own statistics and the RPC server's;
the one thing recorded as it happens is the group-commit fsync's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import msgpack

from borealis.errors import (
    BadRequestError,
    BorealisError,
    CorruptionError,
    ProtocolError,
    UnknownSegmentError,
    UnknownVolumeError,
)
from borealis.metrics import Histogram, Labels, Metrics
from borealis.storage import wire
from borealis.storage.messages import GossipPull, GossipPush, WriteBatch
from borealis.storage.pagestore import LmdbPageStore, PageStore
from borealis.storage.record import encode_block
from borealis.storage.redolog import CHUNK_BYTES_MAX_DEFAULT, FileRedoLog, RedoLog
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
PAGE_SCRUB_PAGES_PER_PASS_BUSY = 16
"""Pages a node scrubs per pass (one a second, one segment a pass in turn) while idle and
while writes arrive: a page scrub reads and CRC-checks every stored version of the page. At
256 pages a second for every segment it took ~14% of a busy node's loop (py-spy,
bench/storage.py, 8 committers), and a node holding 17 segments of a 1 GB volume spent
its background time scrubbing and GC-scanning instead of materialising (bench/engine.py)."""
BACKGROUND_SHARE_IDLE = 0.25
BACKGROUND_SHARE_BUSY = 0.08
BACKGROUND_SHARE_BEHIND = 0.5
"""The most of the loop's time that background work (coalescing, scrubbing, GC, gossip)
takes: after a pass that took t seconds the next one starts no sooner than
t * (1 / share - 1) later. As in Aurora (SIGMOD 2017 §3.3), background work yields to
foreground work, and foreground work is slowed once a backlog builds up: the share is BUSY
while writes arrive, BEHIND once coalescing lags more than ``COALESCE_LAG_LSNS_MAX``, IDLE
otherwise. Measured with bench/storage.py (8 committers, alternating runs): unpaced,
coalescing took about 60% of a busy node's loop and a pass stalled requests for tens of
milliseconds; a fixed share of 0.25 gave 740-980 commits/s with p99 46-79 ms, 0.08 while
busy 1,160-1,480 commits/s with p99 13-17 ms."""
COALESCE_LAG_LSNS_MAX = 100_000
"""How far (in LSNs) a segment's coalesced point may trail what it could coalesce before
background work takes the BEHIND share: bounds the records a node holds in memory under a
sustained load that its coalescing cannot follow."""
COALESCE_RECORDS_PER_PASS = 256
"""Records materialised per coalescing pass, over all segments, in one page-store
transaction (one sync rather than one per segment: 11 us a version instead of 18-26)."""
COALESCE_RECORDS_PER_SEGMENT_MIN = 32
GOSSIP_TIMEOUT_S = 2.0
CHECKPOINT_BYTES_DEFAULT = 64 * 2**20
"""Redo bytes logged between checkpoints (the log's size, about, in steady state)."""


def redo_chunk_bytes(checkpoint_bytes: int) -> int:
    """Chunks of a quarter of the checkpoint interval (64 KiB to 64 MiB), so that a trim
    frees most of what the checkpoint made useless: storage is freed in whole chunks."""
    return min(CHUNK_BYTES_MAX_DEFAULT, max(64 * 2**10, checkpoint_bytes // 4))


@dataclass
class _Hosted:
    segment: Segment
    spec: wire.CreateSegment
    peer_addresses: dict[SegmentId, str]
    synced_scl: LSN = LSN(0)
    page_scrub_cursor: int = 0
    gossip_in_flight: bool = False
    gc_done_below: LSN = LSN(0)
    coalesce_error: str = ""
    """The last coalescing failure, logged once until a pass succeeds again."""


def _geometry(spec: wire.CreateSegment) -> tuple[str, int, int, int]:
    return spec.volume, spec.pg, spec.first_page, spec.pg_pages


@dataclass
class NodeStats:
    requests: int = 0
    syncs: int = 0
    entries_logged: int = 0
    gossip_errors: int = 0
    pages_repaired: int = 0
    bytes_logged: int = 0
    """Bytes of entries appended since start, plus those replayed at start."""
    checkpoints: int = 0
    checkpoint_bytes_last: int = 0
    checkpoint_s_last: float = 0.0
    entries_trimmed: int = 0
    started_s: float = field(default_factory=time.monotonic)


class StorageNode:
    def __init__(self, node_id: str, az: str, data_dir: Path, *,
                 redo_log: RedoLog | None = None, store: PageStore | None = None,
                 checkpoint_bytes: int = CHECKPOINT_BYTES_DEFAULT) -> None:
        assert checkpoint_bytes > 0
        self.node_id = node_id
        self.az = az
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log: RedoLog = redo_log or FileRedoLog(
            data_dir / "redo", chunk_bytes_max=redo_chunk_bytes(checkpoint_bytes))
        self.store: PageStore = store or LmdbPageStore(data_dir / "pages")
        self.hosted: dict[SegmentId, _Hosted] = {}
        self.stats = NodeStats()
        self.fsync_seconds = Histogram()
        """The group-commit fsyncs' latency (seconds), observed around ``log.sync``."""
        self.pool = ConnectionPool(name=f"node {node_id}", caller=node_id)
        self._waiters: list[tuple[int, asyncio.Future[Any], Any]] = []
        self._sync_scheduled = False
        self._writes_served = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._server: RpcServer | None = None
        self._closing = False
        self._spawned: set[asyncio.Task[None]] = set()
        self._repairing: set[tuple[SegmentId, int, int]] = set()
        self.checkpoint_bytes = checkpoint_bytes
        self._checkpointed_at_bytes = 0
        self._checkpointing = False
        self._replay()

    # --- start-up -------------------------------------------------------------------------

    def _replay(self) -> None:
        started = time.perf_counter()
        count = 0
        for _seq, payload in self.log.replay():
            sid, entry = msgpack.unpackb(payload, raw=False)
            self._apply_logged(SegmentId(sid), tuple(entry))
            count += 1
            self.stats.bytes_logged += len(payload)
        for sid, hosted in self.hosted.items():
            hosted.segment.restarted(self.store.get_meta(_coalesced_key(sid)))
            hosted.synced_scl = hosted.segment.scl
        log.info("replayed node=%s entries=%d segments=%d in %.3fs", self.node_id, count,
                 len(self.hosted), time.perf_counter() - started)

    def _apply_logged(self, sid: SegmentId, entry: Entry) -> None:
        if entry[0] == "create":
            spec = wire.decode(wire.CreateSegment, entry[1])
            hosted = self.hosted.get(spec.segment)
            if hosted is None:
                self._host(spec)
            else:
                # A checkpoint logs the segment's creation again, with the peer addresses
                # it knows by then.
                hosted.peer_addresses.update(dict(spec.peers))
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
        await self.pool.close()
        self.log.sync()
        self.store.sync()
        self.log.close()
        self.store.close()

    # --- durability -----------------------------------------------------------------------

    def _log_entries(self, sid: SegmentId, entries: list[Entry]) -> int:
        seq = 0
        logged = 0
        for entry in entries:
            payload = msgpack.packb([sid, list(entry)], use_bin_type=True)
            seq = self.log.append(payload)
            logged += len(payload)
        self.stats.entries_logged += len(entries)
        self.stats.bytes_logged += logged
        return seq

    def _reply_when_synced(self, reply: Any) -> Any:
        """``reply`` once every entry appended so far is on disk. Not only the request's own
        entries: a reply that reports an SCL (a write acknowledgement, a segment state) may
        rest on entries that another request appended and whose sync is still running, as
        when a resent batch adds nothing new. Group commit makes it the same fsync."""
        return self._after_sync(self.log.next_seq - 1, reply)

    def _after_sync(self, seq: int, reply: Any) -> Any:
        """The reply, once every entry up to ``seq`` is on disk."""
        if seq == 0 or seq <= self.log.synced_seq:
            return reply
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiters.append((seq, future, reply))
        if not self._sync_scheduled:
            self._sync_scheduled = True
            loop.call_soon(self._sync_now)
        return future

    def _sync_now(self) -> None:
        """Group commit on the loop: one fdatasync for every entry appended by the requests
        of this loop iteration, then their replies.

        Inline rather than in a worker thread: measured with bench/storage.py (8
        committers, alternating runs), the thread hop cost each node more CPU than the
        fdatasync itself (nodes 1,400-1,570 us of CPU a commit inline against 1,630-1,740
        through the executor) and throughput was higher in every pair. The loop waits for
        the disk meanwhile; requests that arrive then are read in the next iteration and
        share the next sync."""
        self._sync_scheduled = False
        if not self._waiters or self._closing:
            return
        snapshot = [(h, h.segment.scl) for h in self.hosted.values()]
        started = time.perf_counter()
        try:
            synced = self.log.sync()
        except BorealisError as exc:
            # A failed fsync leaves the log unusable: nothing more may be acknowledged.
            log.critical("redo log sync failed node=%s: %s", self.node_id, exc)
            waiters, self._waiters = self._waiters, []
            for _, future, _ in waiters:
                if not future.done():
                    future.set_exception(exc)
            return
        self.fsync_seconds.observe(time.perf_counter() - started)
        self.stats.syncs += 1
        for hosted, scl in snapshot:
            if scl > hosted.synced_scl:
                hosted.synced_scl = scl
        still = []
        for seq, future, reply in self._waiters:
            if seq <= synced:
                if not future.done():
                    future.set_result(reply)
            else:
                still.append((seq, future, reply))
        self._waiters = still

    # --- requests -------------------------------------------------------------------------

    def dispatch(self, method: str, body: Any, peer: str) -> Any:
        self.stats.requests += 1
        if method == "node_status":
            return self.status()
        if method == "page_version":
            return self._page_version(body)
        if method == wire.WRITE_MANY:
            return self._write_many(body)
        cls = wire.METHODS.get(method)
        if cls is None:
            raise BadRequestError(f"unknown method {method!r}")
        msg = wire.decode(cls, body)
        if method == "create":
            return self._create(msg)
        hosted = self.hosted.get(msg.segment)
        if hosted is None:
            self._unknown(msg.segment)
        seg = hosted.segment
        if method == "write":
            self._writes_served += 1
            entries, ack = seg.on_write(msg, block=wire.received_block(body))
            self._log_entries(seg.segment_id, entries)
            return self._reply_when_synced(wire.encode(ack))
        if method == "seal":
            entries, state = seg.on_seal(msg)
            self._log_entries(seg.segment_id, entries)
            return self._reply_when_synced(wire.encode(state))
        if method == "get_page":
            return wire.encode(seg.on_get_page(msg))
        if method == "read_records":
            records, covered_to = seg.on_read_records(msg)
            return [encode_block(records), covered_to]
        if method == "query_cpl":
            return seg.highest_cpl_at_or_below(msg.upto)
        if method == "gossip":
            return wire.encode(seg.on_gossip_pull(msg))
        if method == "membership":
            entries = seg.on_membership(msg)
            return self._after_sync(self._log_entries(seg.segment_id, entries), None)
        raise BadRequestError(f"method {method!r} is not served")

    def _write_many(self, body: Any) -> Any:
        """The batches of one flush for several of our segments: each is applied and logged
        as a ``write`` would be, and all the answers leave together once synced. A batch
        that is refused fails alone (its result is the error) and changes nothing."""
        self._writes_served += 1
        results: list[Any] = []
        for index, item in enumerate(wire.write_many_batches(body)):
            try:
                msg = wire.decode(WriteBatch, item)
                hosted = self.hosted.get(msg.segment)
                if hosted is None:
                    self._unknown(msg.segment)
                seg = hosted.segment
                entries, ack = seg.on_write(msg, block=wire.received_block(item))
                self._log_entries(seg.segment_id, entries)
                results.append(wire.write_result_ack(index, ack))
            except BorealisError as exc:
                results.append(wire.write_result_error(index, exc))
        return self._reply_when_synced(results)

    def _unknown(self, segment: str) -> NoReturn:
        volume = segment.split("/", 1)[0]
        if not any(h.spec.volume == volume for h in self.hosted.values()):
            raise UnknownVolumeError(f"node {self.node_id} hosts nothing of volume {volume!r}")
        raise UnknownSegmentError(f"node {self.node_id} does not host {segment}")

    def _create(self, spec: wire.CreateSegment) -> Any:
        existing = self.hosted.get(spec.segment)
        if existing is not None:
            if _geometry(existing.spec) != _geometry(spec):
                raise BadRequestError(f"segment {spec.segment} exists with another geometry")
            # A writer creates every PG again when it opens (idempotent); after a membership
            # change its peers differ from those we were created with: learn their
            # addresses, for gossip. (Who the members are is the membership epoch's.)
            existing.peer_addresses.update(dict(spec.peers))
            return None
        self._host(spec)
        seq = self._log_entries(spec.segment, [("create", wire.encode(spec))])
        return self._after_sync(seq, None)

    def _page_version(self, body: Any) -> Any:
        """The image of exactly (segment, page, version), stored or read: for peers' repair."""
        try:
            sid, page, version = body
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"page_version: {exc}") from exc
        if not isinstance(sid, str) or not all(
            type(x) is int and 0 <= x < 2**63 for x in (page, version)
        ):
            raise ProtocolError("page_version takes [segment: str, page: int, version: int]")
        hosted = self.hosted.get(SegmentId(sid))
        if hosted is None:
            raise UnknownSegmentError(f"node {self.node_id} does not host {sid}")
        image = hosted.segment.image_at(page, version)
        if image is None:
            raise BadRequestError(f"{sid}: cannot show version {version} of page {page}")
        return image

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
                    # How far it may materialise: not past the writer's VDL or the
                    # minimum read point it was told, nor past what it holds.
                    "coalesce_target": min(h.segment.scl, h.segment.known_vdl,
                                           h.segment.min_read_point),
                    "corrupt_found": h.segment.stats.corrupt_found,
                    "snapshots_installed": h.segment.stats.snapshots_installed,
                    "rebuilds_asked": h.segment.stats.rebuilds_asked,
                    "rebuild_wanted": h.segment.rebuild_wanted,
                    "gossip_records_in": h.segment.stats.gossip_records_in,
                }
                for sid, h in sorted(self.hosted.items())
            },
            "pages_repaired": self.stats.pages_repaired,
            "redo": {
                "first_seq": self.log.start_seq, "next_seq": self.log.next_seq,
                "bytes_logged": self.stats.bytes_logged,
                "checkpoints": self.stats.checkpoints,
                "entries_trimmed": self.stats.entries_trimmed,
                "checkpoint_bytes_last": self.stats.checkpoint_bytes_last,
                "checkpoint_s_last": round(self.stats.checkpoint_s_last, 4),
            },
        }

    def register_metrics(self, metrics: Metrics) -> None:
        """The node's ``borealis_storage_*`` families, read at scrape time."""
        p = "borealis_storage_"

        def segments_sum(attribute: str) -> int:
            # Segments are never dropped from ``hosted``: the sums only grow.
            return sum(getattr(h.segment.stats, attribute) for h in self.hosted.values())

        def server_value(attribute: str) -> int | None:
            return None if self._server is None else int(getattr(self._server, attribute))

        def scl() -> list[tuple[Labels, int]]:
            return [({"segment": sid}, int(h.segment.scl))
                    for sid, h in sorted(self.hosted.items())]

        metrics.counter(p + "requests_total", "RPC requests dispatched",
                        lambda: self.stats.requests)
        metrics.counter(p + "bytes_received_total", "Bytes received over RPC",
                        lambda: server_value("bytes_received"))
        metrics.counter(p + "bytes_sent_total", "Bytes sent over RPC",
                        lambda: server_value("bytes_sent"))
        metrics.counter(p + "records_received_total",
                        "Redo records received in write batches",
                        lambda: segments_sum("records_received"))
        metrics.counter(p + "entries_logged_total", "Entries appended to the node's redo log",
                        lambda: self.stats.entries_logged)
        metrics.counter(p + "fsyncs_total", "Group-commit fsyncs of the redo log",
                        lambda: self.stats.syncs)
        metrics.histogram(p + "fsync_seconds", "Latency of a group-commit fsync",
                          self.fsync_seconds)
        metrics.counter(p + "redo_bytes_total", "Bytes of entries logged (and replayed at start)",
                        lambda: self.stats.bytes_logged)
        metrics.counter(p + "checkpoints_total", "Checkpoints that trimmed the redo log",
                        lambda: self.stats.checkpoints)
        metrics.counter(p + "redo_entries_trimmed_total",
                        "Redo entries deleted by checkpoints", lambda: self.stats.entries_trimmed)
        metrics.gauge(p + "segments", "Segments hosted", lambda: len(self.hosted))
        metrics.gauge(p + "segment_scl", "Segment complete LSN, per segment", scl)
        metrics.counter(p + "records_coalesced_total", "Records materialised into pages",
                        lambda: segments_sum("records_coalesced"))
        metrics.counter(p + "gossip_pulls_total", "Gossip pulls sent to peers",
                        lambda: segments_sum("gossip_pulls"))
        metrics.counter(p + "gossip_records_pulled_total", "Records filled in by gossip",
                        lambda: segments_sum("gossip_records_in"))
        metrics.counter(p + "gossip_errors_total", "Gossip pulls that failed or were refused",
                        lambda: self.stats.gossip_errors)
        metrics.counter(p + "snapshots_installed_total",
                        "Segment snapshots installed from a peer",
                        lambda: segments_sum("snapshots_installed"))
        metrics.counter(p + "segment_rebuilds_asked_total",
                        "Segments rebuilt from a peer's snapshot: a corrupt page version no "
                        "peer could show", lambda: segments_sum("rebuilds_asked"))
        metrics.counter(p + "corrupt_found_total", "Corrupt records or page versions found",
                        lambda: segments_sum("corrupt_found"))
        metrics.counter(p + "pages_repaired_total", "Corrupt page versions repaired from a peer",
                        lambda: self.stats.pages_repaired)
        metrics.gauge(p + "uptime_seconds", "Seconds since the node started",
                      lambda: time.monotonic() - self.stats.started_s)

    # --- background -----------------------------------------------------------------------

    async def _background(self) -> None:
        """Gossip every tick; coalescing, scrubbing, GC and page-store syncs less often, so
        that background work never crowds out requests (measured: page scrubbing on every
        tick took most of a node's loop). Each pass is bounded, and a long one delays the
        next (``BACKGROUND_SHARE_*``): under load, coalescing lags rather than requests, until
        it lags too far."""
        loop = asyncio.get_running_loop()
        pause_s = TICK_S
        writes_seen = self._writes_served
        last = dict.fromkeys(("coalesce", "scrub", "gc", "store_sync"), time.monotonic())

        def due(what: str, every_s: float, now: float) -> bool:
            if now - last[what] < every_s:
                return False
            last[what] = now
            return True

        busy = False
        rounds = 0
        while not self._closing:
            await asyncio.sleep(pause_s)
            started = time.perf_counter()
            now = time.monotonic()
            coalesce = due("coalesce", COALESCE_EVERY_S, now)
            scrub = due("scrub", SCRUB_EVERY_S, now)
            gc = due("gc", GC_EVERY_S, now)
            hosted_now = list(self.hosted.items())
            # Page scrubbing and GC take one segment a pass, in turn: their cost grows with
            # a segment's size, and a node may hold many.
            turn = rounds % len(hosted_now) if hosted_now else 0
            rounds += scrub or gc
            for k, (sid, hosted) in enumerate(hosted_now):
                try:
                    self._tick_segment(sid, hosted, now, scrub=scrub, scrub_pages=k == turn,
                                       busy=busy)
                    if gc and k == turn:
                        self._gc(hosted)
                except BorealisError as exc:
                    log.warning("background work failed segment=%s: %s", sid, exc)
            if coalesce:
                self._coalesce(hosted_now)
            spent_s = time.perf_counter() - started
            busy = self._writes_served != writes_seen
            writes_seen = self._writes_served
            share = self._background_share(hosted_now, busy=busy)
            pause_s = max(TICK_S, spent_s * (1 / share - 1))
            if due("store_sync", STORE_SYNC_EVERY_S, now):
                await loop.run_in_executor(None, self.store.sync)
            if self.stats.bytes_logged - self._checkpointed_at_bytes >= self.checkpoint_bytes:
                try:
                    await self.checkpoint()
                except BorealisError as exc:
                    log.error("checkpoint failed node=%s: %s", self.node_id, exc)

    async def checkpoint(self) -> int:
        """Log every segment's state and make it the start of the log; return the entries
        deleted from the log.

        In order: the page store is synced, so that every record at or below a segment's
        ``records_floor`` is durable in it; the checkpoint entries are appended in one go
        on the loop (no other entry between them); once they are synced, the log starts
        at the first of them. A crash anywhere before the last step leaves the old start,
        and the checkpoint entries, replayed after what they replace, change nothing."""
        if self._checkpointing:
            return 0
        self._checkpointing = True
        try:
            started = time.perf_counter()
            self.store.sync()
            first = self.log.next_seq
            before = self.stats.bytes_logged
            for sid, hosted in list(self.hosted.items()):
                spec = dataclasses.replace(
                    hosted.spec, peers=tuple(sorted(hosted.peer_addresses.items())))
                self._log_entries(sid, [("create", wire.encode(spec)),
                                        *hosted.segment.checkpoint()])
            self._checkpointed_at_bytes = self.stats.bytes_logged
            last = self.log.next_seq - 1
            if last < first:
                return 0
            synced = self._after_sync(last, None)
            if isinstance(synced, asyncio.Future):
                await synced
            dropped = self.log.drop_chunks_before(first)
            self.stats.checkpoints += 1
            self.stats.entries_trimmed += dropped
            self.stats.checkpoint_bytes_last = self.stats.bytes_logged - before
            self.stats.checkpoint_s_last = time.perf_counter() - started
            log.info("checkpoint node=%s segments=%d bytes=%d entries_deleted=%d in %.3fs",
                     self.node_id, len(self.hosted), self.stats.checkpoint_bytes_last,
                     dropped, self.stats.checkpoint_s_last)
            return dropped
        finally:
            self._checkpointing = False

    @staticmethod
    def _background_share(hosted_now: list[tuple[SegmentId, _Hosted]], *, busy: bool) -> float:
        lag = max(
            (min(h.segment.scl, h.segment.known_vdl) - h.segment.coalesced
             for _, h in hosted_now),
            default=0,
        )
        if lag > COALESCE_LAG_LSNS_MAX:
            return BACKGROUND_SHARE_BEHIND
        return BACKGROUND_SHARE_BUSY if busy else BACKGROUND_SHARE_IDLE

    def _coalesce(self, hosted_now: list[tuple[SegmentId, _Hosted]]) -> None:
        """One bounded coalescing pass over every segment, stored in one transaction."""
        limit = max(COALESCE_RECORDS_PER_SEGMENT_MIN,
                    COALESCE_RECORDS_PER_PASS // max(1, len(hosted_now)))
        versions: list[tuple[str, int, int, bytes]] = []
        meta: dict[str, bytes] = {}
        advanced: list[tuple[Segment, LSN]] = []
        for sid, hosted in hosted_now:
            seg = hosted.segment
            try:
                seg_versions, upto = seg.coalesce(hosted.synced_scl, limit)
            except BorealisError as exc:
                # A corrupt base version: the page scrub finds it and repairs it (or asks
                # for a rebuild); until then every pass fails the same way.
                if str(exc) != hosted.coalesce_error:
                    log.warning("coalescing failed segment=%s: %s", sid, exc)
                    hosted.coalesce_error = str(exc)
                continue
            hosted.coalesce_error = ""
            if seg_versions or upto > seg.coalesced:
                versions += seg_versions
                meta[_coalesced_key(sid)] = b"%d" % upto
            if seg_versions or upto > seg.coalesced or seg.all_scl > seg.records_floor:
                advanced.append((seg, LSN(upto)))
        if meta:
            try:
                self.store.put_versions(versions, meta=meta)
            except BorealisError as exc:
                log.warning("coalescing failed node=%s: %s", self.node_id, exc)
                return
        # Only once the versions and the points are stored: records may then be dropped.
        for seg, upto in advanced:
            seg.coalesced_to(upto)

    def _gc(self, hosted: _Hosted) -> None:
        """GC a segment's page versions, if there can be anything new to collect: a pass
        scans every key of the segment."""
        seg = hosted.segment
        below = min(seg.min_read_point, seg.coalesced)
        if below > hosted.gc_done_below:
            seg.gc()
            hosted.gc_done_below = below

    def _tick_segment(self, sid: SegmentId, hosted: _Hosted, now: float, *,
                      scrub: bool, scrub_pages: bool, busy: bool) -> None:
        seg = hosted.segment
        entries, effects = seg.tick(now)
        if scrub:
            entries += seg.scrub_step()
        if scrub and scrub_pages:
            self._scrub_pages(hosted, PAGE_SCRUB_PAGES_PER_PASS_BUSY if busy
                              else PAGE_SCRUB_PAGES_PER_PASS)
        if entries:
            self._log_entries(sid, entries)
        for effect in effects:
            # One pull at a time per segment: a snapshot can take longer than the gossip
            # interval, and a second one in flight would be installed over the first.
            if isinstance(effect, SendGossip) and not hosted.gossip_in_flight:
                hosted.gossip_in_flight = True
                self._spawn(self._gossip(hosted, effect.message))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def _scrub_pages(self, hosted: _Hosted, count: int) -> None:
        seg = hosted.segment
        first = hosted.spec.first_page
        start = hosted.page_scrub_cursor
        pages = [first + (start + k) % hosted.spec.pg_pages
                 for k in range(min(count, hosted.spec.pg_pages))]
        hosted.page_scrub_cursor = (start + len(pages)) % hosted.spec.pg_pages
        for effect in seg.scrub_pages(pages):
            key = (seg.segment_id, effect.page, effect.version)
            if key not in self._repairing:
                self._repairing.add(key)
                self._spawn(self._repair_page(hosted, effect.page, effect.version))

    async def _repair_page(self, hosted: _Hosted, page: PageNo, version: LSN) -> None:
        seg = hosted.segment
        key = (seg.segment_id, page, version)
        log.warning("corrupt page version segment=%s page=%d version=%d: repairing",
                    seg.segment_id, page, version)
        if seg.superseded(page, version):
            # No read starts from it any more: dropping it is what GC would do.
            self.store.delete_version(seg.key, page, version)
            self.store.sync()
            self.stats.pages_repaired += 1
            log.info("repaired segment=%s page=%d version=%d: superseded, dropped",
                     seg.segment_id, page, version)
            self._repairing.discard(key)
            return
        for peer, address in hosted.peer_addresses.items():
            if peer == seg.segment_id:
                continue
            try:
                client = await self.pool.get(address)
                image = await client.call("page_version", [peer, page, version],
                                          timeout_s=GOSSIP_TIMEOUT_S)
            except BorealisError:
                continue
            if self.hosted.get(seg.segment_id) is not hosted or self._closing:
                break
            self.store.delete_version(seg.key, page, version)
            self.store.put_versions([(seg.key, page, version, bytes(image))])
            self.store.sync()
            self.stats.pages_repaired += 1
            log.info("repaired segment=%s page=%d version=%d from %s",
                     seg.segment_id, page, version, peer)
            self._repairing.discard(key)
            return
        self._repairing.discard(key)
        if self.hosted.get(seg.segment_id) is hosted and not self._closing:
            log.error("no peer can show segment=%s page=%d version=%d: rebuilding the segment "
                      "from a peer's snapshot", seg.segment_id, page, version)
            seg.want_rebuild(f"page {page} version {version} is corrupt")

    async def _gossip(self, hosted: _Hosted, pull: GossipPull) -> None:
        try:
            await self._gossip_once(hosted, pull)
        finally:
            hosted.gossip_in_flight = False

    async def _gossip_once(self, hosted: _Hosted, pull: GossipPull) -> None:
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
        try:
            entries, pages = seg.on_gossip_push(push)
        except BorealisError as exc:
            # A corrupt record from a peer: take nothing from this reply, pull again later.
            self.stats.gossip_errors += 1
            log.warning("gossip reply refused segment=%s peer=%s: %s", pull.requester,
                        pull.segment, exc)
            return
        if pages:
            self.store.drop_segment(seg.key)
            self.store.put_versions(
                [(seg.key, p, v, img) for p, v, img in pages],
                meta={_coalesced_key(seg.segment_id): b"%d" % push.after},
            )
            self.store.sync()
            log.info("installed a snapshot segment=%s from=%s pages=%d base=%d",
                     seg.segment_id, push.sender, len(pages), push.after)
        self._log_entries(seg.segment_id, entries)


def _coalesced_key(sid: str) -> str:
    return f"coalesced:{sid}"

