"""A simulated volume: six or more storage nodes, a writer, readers, and a faulty network.

Everything runs on one seeded ``random.Random`` and a virtual clock, so a seed replays
exactly. The storage nodes host real ``Segment`` cores; the writer is a real ``WriterCore``
and recovers with the real ``Recovery``. The world injects message drop, delay,
duplication and reordering, AZ and one-way partitions, crashes that lose the unsynced log
tail (a random prefix of it survives: a torn tail), bit flips in retained records, and
stale writers. Checkers run after every step; see ``borealis.sim.checkers``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from dataclasses import dataclass
from typing import Any, NamedTuple

from borealis.errors import BorealisError, StaleEpochError
from borealis.storage.messages import (
    GetPage,
    GossipPull,
    GossipPush,
    PageVersion,
    QueryCpl,
    ReadRecords,
    Seal,
    SegmentState,
    SetMembership,
    WriteAck,
    WriteBatch,
)
from borealis.storage.pagestore import MemoryPageStore
from borealis.storage.segment import Segment, SendGossip
from borealis.types import LSN, Epoch, NodeId, PageNo, PgIndex, SegmentId, VolumeId
from borealis.volume.geometry import Geometry, PgLayout, SegmentPlacement, place_pg
from borealis.volume.recovery import Phase, Recovery
from borealis.volume.writer import PageWrite, WriterCore

log = logging.getLogger(__name__)

AZS = ("az1", "az2", "az3")


class Violation(AssertionError):
    """A checker found a broken guarantee."""


@dataclass
class SimConfig:
    nodes_per_az: int = 2
    spare_nodes_per_az: int = 0
    pgs: int = 3
    pg_pages: int = 8
    page_size: int = 512
    lal: int = 2_000
    drop_p: float = 0.0
    dup_p: float = 0.0
    delay_ms: tuple[float, float] = (0.1, 2.0)
    fsync_ms: tuple[float, float] = (0.05, 1.0)
    commit_every_ms: float = 0.5
    read_every_ms: float = 1.0
    flush_every_ms: float = 0.3
    resend_after_ms: float = 20.0
    tick_every_ms: float = 2.0
    checkpoint_every_entries: int = 120
    """Entries a node logs between checkpoints, which trim its log (0: never)."""


SCRUB_EVERY_TICKS = 4
"""A node scrubs a slice of each segment's records every 4th tick (8 ms of simulated time;
a real node scrubs every second): every tick took 15% of the simulator's time."""


class _Event(NamedTuple):
    """A scheduled event. A tuple, so that the heap compares (at, seq) in C; seq is unique,
    so kind and data are never compared."""

    at: float
    seq: int
    kind: str
    data: Any


class SimNode:
    """A storage node: a redo log of (segment, entry) items with a synced prefix, a page
    store, and the segments it hosts. Seqs count from 1 over the node's life: ``trimmed``
    entries were dropped from the front by checkpoints, as ``StorageNode.checkpoint`` does."""

    def __init__(self, world: World, node_id: NodeId, az: str) -> None:
        self.world = world
        self.id = node_id
        self.az = az
        self.up = True
        self.log: list[tuple[SegmentId, tuple[Any, ...]]] = []
        self.trimmed = 0  # entries dropped from the front: log[0] has seq trimmed + 1
        self.synced = 0
        self.checkpointed_at = 0  # the seq after which the last checkpoint was logged
        self.trim_pending: tuple[int, int] | None = None  # (first seq kept, seq to sync)
        self.ticks = 0
        self.sync_in_flight: tuple[int, dict[SegmentId, LSN]] | None = None
        self.held: list[tuple[int, str, Any, Any]] = []  # (seq needed, dst, reply, request id)
        self.store = MemoryPageStore()
        self.segments: dict[SegmentId, Segment] = {}
        self.specs: dict[SegmentId, tuple[PageNo, int, tuple[SegmentId, ...]]] = {}
        self.synced_scl: dict[SegmentId, LSN] = {}

    def create_segment(
        self, sid: SegmentId, first_page: PageNo, pg_pages: int, peers: tuple[SegmentId, ...]
    ) -> None:
        self.specs[sid] = (first_page, pg_pages, peers)
        self.segments[sid] = Segment(sid, self.store, first_page, pg_pages, peers)
        self.synced_scl[sid] = LSN(0)

    @property
    def last_seq(self) -> int:
        return self.trimmed + len(self.log)

    def append(self, sid: SegmentId, entries: list[tuple[Any, ...]]) -> int:
        for entry in entries:
            self.log.append((sid, entry))
        if self.last_seq > self.synced and self.sync_in_flight is None:
            self._start_sync()
        return self.last_seq

    def checkpoint(self) -> None:
        """Log every segment's checkpoint; the log is trimmed once they are synced. The
        page store is synced first (the simulated one keeps writes across a crash anyway,
        as a killed process's page cache does; the order is the node's)."""
        self.store.sync()
        first = self.last_seq + 1
        for sid, seg in self.segments.items():
            self.append(sid, seg.checkpoint())
        self.checkpointed_at = self.last_seq
        self.trim_pending = (first, self.last_seq)
        self.world.stats["checkpoints"] += 1

    def _trim(self) -> None:
        if self.trim_pending is None or self.synced < self.trim_pending[1]:
            return
        first, _ = self.trim_pending
        del self.log[: first - 1 - self.trimmed]
        self.trimmed = first - 1
        self.trim_pending = None

    def _start_sync(self) -> None:
        snapshot = {sid: seg.scl for sid, seg in self.segments.items()}
        self.sync_in_flight = (self.last_seq, snapshot)
        self.world.schedule(self.world.rand_ms(self.world.config.fsync_ms), "sync", self.id)

    def on_sync(self) -> None:
        if not self.up or self.sync_in_flight is None:
            return
        upto, snapshot = self.sync_in_flight
        self.synced = max(self.synced, upto)
        for sid, scl in snapshot.items():
            self.synced_scl[sid] = scl
        self.sync_in_flight = None
        still = []
        for need, dst, reply, rid in self.held:
            if need <= self.synced:
                self.world.send(self.id, dst, reply, rid)
            else:
                still.append((need, dst, reply, rid))
        self.held = still
        self._trim()
        if self.last_seq > self.synced:
            self._start_sync()

    def reply_after(self, seq: int, dst: str, reply: Any, rid: Any) -> None:
        if seq <= self.synced:
            self.world.send(self.id, dst, reply, rid)
        else:
            self.held.append((seq, dst, reply, rid))

    def crash(self, rng: random.Random) -> None:
        """Lose the unsynced tail, except a random prefix of it (a torn tail)."""
        unsynced = self.last_seq - self.synced
        keep = self.synced + (rng.randrange(unsynced + 1) if unsynced else 0)
        del self.log[keep - self.trimmed :]
        self.synced = keep
        self.trim_pending = None  # the trim never happened (a restart keeps its old start)
        self.checkpointed_at = min(self.checkpointed_at, keep)
        self.up = False
        self.held = []
        self.sync_in_flight = None

    def restart(self) -> None:
        """Rebuild every segment from the durable log and page store."""
        self.up = True
        if self.trimmed:
            self.world.stats["trimmed_restarts"] += 1
        for sid, (first_page, pg_pages, peers) in self.specs.items():
            seg = Segment(sid, self.store, first_page, pg_pages, peers)
            self.segments[sid] = seg
        for sid, entry in self.log:
            self.segments[sid].apply_entry(entry)
        for sid, seg in self.segments.items():
            seg.restarted(self.store.get_meta(f"coalesced:{sid}"))
            self.synced_scl[sid] = seg.scl

    def handle(self, src: str, msg: Any, rid: Any) -> None:
        if not hasattr(msg, "segment"):
            return  # an error reply to a gossip pull: the puller simply tries again later
        seg = self.segments.get(msg.segment)
        if seg is None:
            return
        try:
            if isinstance(msg, WriteBatch):
                entries, ack = seg.on_write(msg)
                self.reply_after(self.append(seg.segment_id, entries), src, ack, rid)
            elif isinstance(msg, Seal):
                entries, state = seg.on_seal(msg)
                self.reply_after(self.append(seg.segment_id, entries), src, state, rid)
            elif isinstance(msg, GetPage):
                self.world.send(self.id, src, seg.on_get_page(msg), rid)
            elif isinstance(msg, QueryCpl):
                reply = ("cpl", seg.highest_cpl_at_or_below(msg.upto))
                self.world.send(self.id, src, reply, rid)
            elif isinstance(msg, ReadRecords):
                records, covered = seg.on_read_records(msg)
                self.world.send(self.id, src, ("records", records, covered), rid)
            elif isinstance(msg, GossipPull):
                self.world.send(self.id, src, seg.on_gossip_pull(msg), rid)
            elif isinstance(msg, GossipPush):
                had = seg.scl
                entries, pages = seg.on_gossip_push(msg)
                if pages:
                    self.store.drop_segment(seg.key)
                    self.store.put_versions(
                        [(seg.key, p, v, img) for p, v, img in pages],
                        meta={f"coalesced:{seg.segment_id}": str(msg.after).encode()},
                    )
                self.append(seg.segment_id, entries)
                self.world.stats["gossip_lsns"] += max(0, seg.scl - had)
            elif isinstance(msg, SetMembership):
                self.append(seg.segment_id, seg.on_membership(msg))
            else:
                raise AssertionError(f"unknown message {msg!r}")
        except StaleEpochError as exc:
            self.world.send(self.id, src, ("stale", msg.segment, exc.current_epoch), rid)
        except BorealisError as exc:
            self.world.send(self.id, src, ("error", msg.segment, exc), rid)

    def tick(self) -> None:
        for sid, seg in self.segments.items():
            _, effects = seg.tick(self.world.now)
            for effect in effects:
                if isinstance(effect, SendGossip):
                    node = self.world.segment_node[effect.message.segment]
                    self.world.send(self.id, node, effect.message, None)
            if self.ticks % SCRUB_EVERY_TICKS == 0:
                entries = seg.scrub_step()
                if entries:
                    self.append(sid, entries)
            versions, upto = seg.coalesce(self.synced_scl.get(sid, LSN(0)))
            if versions or upto > seg.coalesced:
                self.store.put_versions(versions, meta={f"coalesced:{sid}": str(upto).encode()})
                seg.coalesced_to(upto)
            seg.gc()
        self.ticks += 1
        every = self.world.config.checkpoint_every_entries
        if every and self.trim_pending is None and self.last_seq - self.checkpointed_at >= every:
            self.checkpoint()


class SimWriter:
    """A writer instance: WriterCore once recovered, Recovery before that."""

    def __init__(self, world: World, name: str, epoch: Epoch) -> None:
        self.world = world
        self.name = name
        self.core: WriterCore | None = None
        self.recovery: Recovery | None = Recovery(
            world.layouts, writer_id=name, epoch=epoch, lal=world.config.lal
        )
        self.up = True
        self.isolated = False
        self.acked: list[LSN] = []
        self.group_pages: dict[LSN, dict[int, bytes]] = {}
        self.last_resend = 0.0
        self.sealed_quorum_at: float | None = None
        for msg in self.recovery.start():
            self.world.send_to_segment(self.name, msg)

    @property
    def vdl(self) -> LSN:
        return self.core.vdl if self.core else LSN(0)

    def on_reply(self, src: str, reply: Any, request: Any) -> None:
        if not self.up:
            return
        if self.recovery is not None:
            self._recovery_reply(reply, request)
            return
        assert self.core is not None
        if isinstance(reply, WriteAck):
            before = self.core.vdl
            if self.core.on_ack(reply.segment, reply.scl, reply.epoch):
                self.world.on_vdl_advanced(self, before, self.core.vdl)
        elif isinstance(reply, tuple) and reply[0] == "stale":
            self.core.on_stale_epoch(reply[2])
        elif isinstance(reply, PageVersion):
            self.world.check_read(self, request, reply)
        elif isinstance(reply, tuple) and reply[0] == "error":
            self.world.read_failed(request)

    def _recovery_reply(self, reply: Any, request: Any) -> None:
        rec = self.recovery
        assert rec is not None
        out: list[Any] = []
        if not hasattr(request, "segment"):
            return  # a reply to something this writer did not send while recovering
        if isinstance(reply, SegmentState):
            out = rec.on_sealed(reply)
            if rec.phase == Phase.CPL and self.sealed_quorum_at is None:
                self.sealed_quorum_at = self.world.now
                self.world.on_sealed(self)
        elif isinstance(reply, tuple) and reply[0] == "stale":
            out = rec.on_refused(reply[1], reply[2])
        elif isinstance(reply, tuple) and reply[0] == "cpl":
            out = rec.on_cpl(request.segment, reply[1])
        elif isinstance(reply, tuple) and reply[0] == "records":
            out = rec.on_records(request.segment, reply[1], reply[2])
        elif isinstance(reply, WriteAck):
            out = rec.on_ack(reply)
        for msg in out:
            self.world.send_to_segment(self.name, msg)
        if rec.phase == Phase.DONE:
            self._become_writer()
        elif rec.phase == Phase.FAILED:
            self.world.on_recovery_failed(self, rec)

    def _become_writer(self) -> None:
        rec = self.recovery
        assert rec is not None and rec.result is not None
        result = rec.result
        self.core = WriterCore(
            self.world.geometry, self.world.layouts, writer_id=self.name, epoch=result.epoch,
            start=result.start, truncation=result.truncation, lal=self.world.config.lal,
        )
        for sid, scl in result.acked.items():
            self.core.on_ack(sid, scl, result.epoch)
        self.recovery = None
        self.world.on_recovered(self, result.vdl, result.start)

    def retry(self) -> None:
        """Timers: resend what was not acknowledged."""
        if not self.up:
            return
        if self.recovery is not None:
            for sid in self.world.segment_node:
                for msg in self.recovery.pending_for(sid):
                    self.world.send_to_segment(self.name, msg)
            return
        assert self.core is not None
        for sid in self.core.lagging_segments():
            batch = self.core.resend(sid)
            if batch is not None:
                self.world.send_to_segment(self.name, batch)

    def commit(self, writes: list[PageWrite]) -> None:
        core = self.core
        if core is None or core.fenced or core.room() < len(writes):
            return
        lsn = core.append_group(writes)
        self.group_pages[lsn] = {w.page: w.new for w in writes}
        self.world.on_appended(self, lsn, writes)

    def flush(self) -> None:
        if self.core is None:
            return
        self.core.min_read_point = self.world.min_read_point(self)
        for batch in self.core.flush():
            self.world.send_to_segment(self.name, batch)


class World:
    def __init__(self, seed: int, config: SimConfig | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config or SimConfig()
        self.now = 0.0
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self.geometry = Geometry(
            VolumeId("sim"), page_size=self.config.page_size,
            pg_bytes=self.config.page_size * self.config.pg_pages,
            volume_bytes_max=self.config.page_size * self.config.pg_pages * 64,
        )
        self.nodes: dict[str, SimNode] = {}
        self.spares: dict[str, list[NodeId]] = {az: [] for az in AZS}
        nodes_by_az: dict[str, list[NodeId]] = {}
        for az in AZS:
            for k in range(self.config.nodes_per_az + self.config.spare_nodes_per_az):
                nid = NodeId(f"{az}-n{k}")
                self.nodes[nid] = SimNode(self, nid, az)
                if k < self.config.nodes_per_az:
                    nodes_by_az.setdefault(az, []).append(nid)
                else:
                    self.spares[az].append(nid)
        self.layouts: dict[PgIndex, PgLayout] = {}
        self.segment_node: dict[SegmentId, str] = {}
        for pg in range(self.config.pgs):
            self._create_pg(place_pg(VolumeId("sim"), pg, nodes_by_az))
        self.blocked: set[tuple[str, str]] = set()  # (src, dst) one-way blocks
        self.writers: list[SimWriter] = []
        self.epoch = 0
        self.stats: dict[str, int] = {
            "messages": 0, "dropped": 0, "duplicated": 0, "commits_acked": 0,
            "reads_checked": 0, "gossip_lsns": 0, "steps": 0, "recoveries": 0,
            "checkpoints": 0, "trimmed_restarts": 0,
        }
        # The model: every record appended, by page, and which commits were acknowledged.
        self.page_history: dict[int, list[tuple[LSN, bytes]]] = {}
        self.acked_commits: dict[LSN, str] = {}
        self.durable_floor = LSN(0)
        self.fenced_after: dict[str, float] = {}
        self.reads: dict[int, tuple[SimWriter, LSN, int]] = {}
        self._read_ids = itertools.count()
        self.violations: list[str] = []
        from borealis.sim.checkers import Checkers

        self.checkers = Checkers(self)

    # --- topology -------------------------------------------------------------------------

    def _create_pg(self, layout: PgLayout) -> None:
        self.layouts[layout.pg] = layout
        for p in layout.segments:
            self.nodes[p.node].create_segment(
                p.segment, self.geometry.first_page(layout.pg), self.geometry.pg_pages,
                layout.segment_ids,
            )
            self.segment_node[p.segment] = p.node

    def replace_segment(self, pg: PgIndex, old: SegmentId, node: NodeId) -> SegmentId:
        """Membership change: a new segment of ``pg`` on ``node`` (same AZ as ``old``)."""
        layout = self.layouts[pg]
        az = self.nodes[node].az
        new_id = SegmentId(f"{old}.r{layout.membership_epoch + 1}")
        new_layout = layout.replace(old, SegmentPlacement(new_id, node, az))
        union = tuple(dict.fromkeys(layout.segment_ids + new_layout.segment_ids))
        self.nodes[node].create_segment(new_id, self.geometry.first_page(pg),
                                        self.geometry.pg_pages, union)
        self.segment_node[new_id] = node
        self.layouts[pg] = new_layout
        for w in self.writers:
            if w.core is not None:
                w.core.change_membership(pg, new_layout)
        for sid in union:
            self.send_to_segment("control", SetMembership(
                sid, new_layout.membership_epoch, union))  # type: ignore[arg-type]
        return new_id

    # --- events ---------------------------------------------------------------------------

    def rand_ms(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds) / 1000.0

    def schedule(self, delay_s: float, kind: str, data: Any) -> None:
        heapq.heappush(self._events, _Event(self.now + delay_s, next(self._seq), kind, data))

    def send(self, src: str, dst: str, msg: Any, rid: Any) -> None:
        self.stats["messages"] += 1
        if self._blocked(src, dst) or self.rng.random() < self.config.drop_p:
            self.stats["dropped"] += 1
            return
        copies = 2 if self.rng.random() < self.config.dup_p else 1
        self.stats["duplicated"] += copies - 1
        for _ in range(copies):
            self.schedule(self.rand_ms(self.config.delay_ms), "deliver", (src, dst, msg, rid))

    def _blocked(self, src: str, dst: str) -> bool:
        return (self._group(src), self._group(dst)) in self.blocked or (
            src, dst) in self.blocked

    def _group(self, name: str) -> str:
        node = self.nodes.get(name)
        return node.az if node is not None else name

    def send_to_segment(self, src: str, msg: Any) -> None:
        node = self.segment_node[msg.segment]
        self.send(src, node, msg, msg)

    def _deliver(self, src: str, dst: str, msg: Any, rid: Any) -> None:
        node = self.nodes.get(dst)
        if node is not None:
            if node.up:
                node.handle(src, msg, rid)
            return
        for w in self.writers:
            if w.name == dst:
                w.on_reply(src, msg, rid)

    def step(self) -> bool:
        if not self._events:
            return False
        event = heapq.heappop(self._events)
        assert event.at >= self.now, "the virtual clock never goes backwards"
        self.now = event.at
        self.stats["steps"] += 1
        if event.kind == "deliver":
            self._deliver(*event.data)
        elif event.kind == "sync":
            self.nodes[event.data].on_sync()
        elif event.kind == "call":
            event.data()
        self.checkers.after_step()
        return True

    def run_until(self, t: float) -> None:
        while self._events and self._events[0].at <= t:
            self.step()
        self.now = max(self.now, t)

    def every(self, interval_s: float, fn: Any, until: float) -> None:
        def tick() -> None:
            fn()
            if self.now + interval_s <= until:
                self.schedule(interval_s, "call", tick)
        self.schedule(self.rng.uniform(0, interval_s), "call", tick)

    # --- actors ---------------------------------------------------------------------------

    def start_writer(self) -> SimWriter:
        self.epoch += 1
        writer = SimWriter(self, f"writer{self.epoch}", Epoch(self.epoch))
        self.writers.append(writer)
        return writer

    @property
    def writer(self) -> SimWriter | None:
        live = [w for w in self.writers if w.up and not w.isolated]
        return live[-1] if live else None

    def random_commit(self) -> None:
        w = self.writer
        if w is None or w.core is None:
            return
        n = self.rng.randint(1, 4)
        pages = self.rng.sample(range(self.config.pgs * self.config.pg_pages), n)
        writes = []
        for page in pages:
            old = self.current_image(page)
            new = bytearray(old if old is not None else bytes(self.config.page_size))
            for _ in range(self.rng.randint(1, 3)):
                at = self.rng.randrange(self.config.page_size - 8)
                new[at : at + 8] = self.rng.randbytes(8)
            writes.append(PageWrite(PageNo(page), bytes(new), old))
        w.commit(writes)

    def current_image(self, page: int) -> bytes | None:
        history = self.page_history.get(page)
        return history[-1][1] if history else None

    def on_appended(self, writer: SimWriter, lsn: LSN, writes: list[PageWrite]) -> None:
        first = lsn - len(writes) + 1
        for i, w in enumerate(writes):
            self.page_history.setdefault(w.page, []).append((LSN(first + i), w.new))

    def on_vdl_advanced(self, writer: SimWriter, before: LSN, after: LSN) -> None:
        for lsn in list(writer.group_pages):
            if lsn <= after:
                del writer.group_pages[lsn]
                self.acked_commits[lsn] = writer.name
                self.stats["commits_acked"] += 1
        self.checkers.on_ack(writer, before, after)

    def on_sealed(self, writer: SimWriter) -> None:
        for old in self.writers:
            if old is not writer and old.name not in self.fenced_after:
                self.fenced_after[old.name] = self.now

    def on_recovered(self, writer: SimWriter, vdl: LSN, start: LSN) -> None:
        self.stats["recoveries"] += 1
        self.checkers.on_recovered(writer, vdl)
        # The model forgets what was truncated: records above VDL never happened.
        for page, history in list(self.page_history.items()):
            kept = [(lsn, img) for lsn, img in history if lsn <= vdl]
            if kept:
                self.page_history[page] = kept
            else:
                del self.page_history[page]
        for other in self.writers:
            if other is not writer:
                other.group_pages.clear()

    def on_recovery_failed(self, writer: SimWriter, rec: Recovery) -> None:
        writer.up = False
        if rec.newer_epoch >= self.epoch:
            self.epoch = rec.newer_epoch
        self.schedule(0.01, "call", self.start_writer)

    def random_read(self) -> None:
        w = self.writer
        if w is None or w.core is None or w.core.vdl == 0:
            return
        read_point = w.core.vdl
        page = self.rng.randrange(self.config.pgs * self.config.pg_pages)
        pg = self.geometry.pg_of(page)
        ready = [
            s for s in self.layouts[pg].segment_ids
            if w.core.tracker.acked.get(s, LSN(0)) >= read_point
        ]
        if not ready:
            return
        sid = self.rng.choice(ready)
        rid = next(self._read_ids)
        self.reads[rid] = (w, read_point, page)
        msg = GetPage(sid, PageNo(page), read_point)
        self.send(w.name, self.segment_node[sid], msg, ("read", rid, msg))

    def min_read_point(self, writer: SimWriter) -> LSN:
        points = [rp for (w, rp, _) in self.reads.values() if w is writer]
        return LSN(min(points, default=writer.vdl))

    def check_read(self, writer: SimWriter, request: Any, reply: PageVersion) -> None:
        _, rid, _msg = request
        entry = self.reads.pop(rid, None)
        if entry is None:
            return
        self.checkers.check_read(entry[1], entry[2], reply)

    def read_failed(self, request: Any) -> None:
        if isinstance(request, tuple) and request and request[0] == "read":
            self.reads.pop(request[1], None)

    def expected_image(self, page: int, read_point: int) -> tuple[LSN, bytes | None]:
        version, image = LSN(0), None
        for lsn, img in self.page_history.get(page, ()):
            if lsn <= read_point:
                version, image = lsn, img
        return version, image

    # --- faults ---------------------------------------------------------------------------

    def crash_node(self, name: str) -> None:
        self.nodes[name].crash(self.rng)

    def restart_node(self, name: str) -> None:
        self.nodes[name].restart()

    def crash_writer(self, writer: SimWriter) -> None:
        writer.up = False

    def partition(self, a: str, b: str, *, one_way: bool = False) -> None:
        self.blocked.add((a, b))
        if not one_way:
            self.blocked.add((b, a))

    def heal(self) -> None:
        self.blocked.clear()

    def flip_bit(self) -> None:
        """Corrupt a random retained record in a random up node's segment."""
        nodes = [n for n in self.nodes.values() if n.up]
        node = self.rng.choice(nodes)
        segs = [s for s in node.segments.values() if s.records]
        if not segs:
            return
        seg = self.rng.choice(segs)
        lsn = self.rng.choice(sorted(seg.records))
        seg.records[lsn] = seg.records[lsn].with_payload_bit_flipped(self.rng.randrange(64))
        self.stats["bitflips"] = self.stats.get("bitflips", 0) + 1
