"""The volume client over the network: the asyncio adapter around ``WriterCore`` and
``Recovery``.

``VolumeClient.open_writer`` creates any missing segments, runs recovery (retrying at a
higher epoch when another writer holds the one it tried), then accepts commits.
``commit`` returns once VDL covers the commit: the records are on four of six segments of
every PG. Commits made in the same event-loop turn are flushed together (group commit), and
flushes are pipelined: a new one never waits for the previous one's acknowledgements.
``read_page`` reads at a read point from a segment whose acknowledged SCL covers it, hedged
to a second segment if the first is slow.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis.errors import (
    BadRequestError,
    BorealisError,
    FencedError,
    QuorumUnavailableError,
    StaleEpochError,
    TransportError,
)
from borealis.storage import wire
from borealis.storage.messages import (
    GetPage,
    PageVersion,
    QueryCpl,
    ReadRecords,
    Seal,
    SegmentState,
    SetMembership,
    WriteAck,
    WriteBatch,
)
from borealis.storage.record import RedoRecord, encode_block
from borealis.transport.pool import ConnectionPool
from borealis.types import (
    LSN,
    WRITE_QUORUM,
    Epoch,
    MembershipEpoch,
    NodeId,
    PageNo,
    PgIndex,
    SegmentId,
)
from borealis.volume.geometry import PgLayout, SegmentPlacement, place_pg
from borealis.volume.recovery import Phase, Recovery, RecoveryResult
from borealis.volume.spec import NodeInfo, VolumeSpec
from borealis.volume.writer import LAL_DEFAULT, PageWrite, WriterCore

log = logging.getLogger(__name__)

RPC_TIMEOUT_S = 2.0
RESEND_EVERY_S = 0.05
RESEND_AFTER_S = 0.25
RECOVERY_ATTEMPTS_MAX = 20
RECOVERY_TIMEOUT_S = 60.0
HEDGE_AFTER_S = 0.02
READ_ATTEMPTS_MAX = 12


@dataclass
class ClientStats:
    commits: int = 0
    flushes: int = 0
    batches_sent: int = 0
    bytes_sent: int = 0
    """Bytes of redo record blocks in the write batches sent (resends included)."""
    resends: int = 0
    reads: int = 0
    hedged_reads: int = 0


class VolumeClient:
    def __init__(
        self, spec: VolumeSpec, *, writer_id: str, spec_path: Path | None = None,
        lal: int = LAL_DEFAULT, rpc_timeout_s: float = RPC_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.spec_path = spec_path
        self.writer_id = writer_id
        self.lal = lal
        self.rpc_timeout_s = rpc_timeout_s
        self.pool = ConnectionPool(name=f"volume {writer_id}", caller=writer_id)
        self.core: WriterCore | None = None
        self.recovery_result: RecoveryResult | None = None
        self.stats = ClientStats()
        # Who waits for VDL to reach an LSN, as a heap: (lsn, tie-breaker, future).
        self._waiters: list[tuple[LSN, int, asyncio.Future[LSN]]] = []
        # For ``stalled_s``: since when a commit has waited, and when VDL last advanced.
        self._waiting_since = 0.0
        self._vdl_advanced_at = 0.0
        self._waiter_seq = itertools.count()
        self._room = asyncio.Event()
        self._flush_scheduled = False
        self._grow_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resend_task: asyncio.Task[None] | None = None
        self._read_points: collections.Counter[int] = collections.Counter()
        # Oldest read points of other instances (replicas): storage keeps what they need.
        self.external_read_points: dict[str, LSN] = {}
        # Who follows the redo stream (a writer instance's replication): called with each
        # commit group's records as it is appended, and with each new VDL.
        self.on_append: list[Callable[[tuple[RedoRecord, ...]], None]] = []
        self.on_vdl: list[Callable[[LSN], None]] = []
        self.reader = False
        self._closed = False
        self._addresses: dict[SegmentId, str] = {}
        self._progress: dict[SegmentId, tuple[LSN, float]] = {}
        for layout in spec.layouts.values():
            self._learn(layout)

    # --- plumbing -------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _learn(self, layout: PgLayout) -> None:
        for p in layout.segments:
            self._addresses[p.segment] = self.spec.nodes[p.node].address

    async def _call(self, segment: SegmentId, method: str, body: Any,
                    timeout_s: float | None = None) -> Any:
        client = await self.pool.get(self._addresses[segment])
        return await client.call(method, body, timeout_s=timeout_s or self.rpc_timeout_s)

    async def close(self) -> None:
        self._closed = True
        if self._resend_task is not None:
            self._resend_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._resend_task is not None:
            await asyncio.gather(self._resend_task, return_exceptions=True)
        for _, _, future in self._waiters:
            if not future.done():
                future.set_exception(TransportError("volume client closed"))
        await self.pool.close()

    @property
    def vdl(self) -> LSN:
        return self.core.vdl if self.core is not None else LSN(0)

    # --- segments -------------------------------------------------------------------------

    async def _create_pg(self, layout: PgLayout) -> None:
        """Create the PG's six segments; a write quorum must succeed (the rest catch up)."""
        self._learn(layout)
        peers = tuple((p.segment, self.spec.nodes[p.node].address) for p in layout.segments)
        first = self.spec.geometry.first_page(layout.pg)

        async def create(segment: SegmentId) -> bool:
            msg = wire.CreateSegment(segment, self.spec.geometry.volume, layout.pg, first,
                                     self.spec.geometry.pg_pages, peers)
            try:
                await self._call(segment, "create", wire.encode(msg))
                return True
            except BorealisError as exc:
                log.warning("create segment=%s failed: %s", segment, exc)
                return False

        results = await asyncio.gather(*(create(s) for s in layout.segment_ids))
        if sum(results) < WRITE_QUORUM:
            raise QuorumUnavailableError(
                f"PG {layout.pg}: only {sum(results)} of 6 segments could be created"
            )

    async def ensure_segments(self) -> None:
        """Create any segment of any PG that its node no longer hosts (idempotent): a node
        that lost its data comes back empty, and its new segments fill from their peers."""
        for layout in list(self.spec.layouts.values()):
            await self._create_pg(layout)

    async def replace_segment(
        self, pg: PgIndex, old: SegmentId, node: NodeId, *, timeout_s: float = 120.0
    ) -> SegmentId:
        """Membership change: rebuild ``old`` (a dead or corrupt segment) as a new segment on
        ``node``, in the same AZ, while writes go on.

        Invariant, at every step: a commit is acknowledged only with a write quorum in the
        old set AND in the new set, until the new segment has caught up with the VDL the
        change started at; only then does the new set alone count and the spec change.
        A writer that crashes before the end recovers with the old set, which is complete.
        """
        core = self._writer()
        layout = self.spec.layouts[pg]
        placement = next((p for p in layout.segments if p.segment == old), None)
        if placement is None:
            raise BadRequestError(f"{old} is not a segment of PG {pg}")
        info = self.spec.nodes.get(node)
        if info is None or info.az != placement.az:
            raise BadRequestError(f"node {node} is not a storage node of AZ {placement.az}")
        if node in {p.node for p in layout.segments}:
            raise BadRequestError(f"node {node} already holds a segment of PG {pg}")
        if core.in_membership_change(pg):
            raise BadRequestError(f"PG {pg} is already changing membership")
        base = old.split(".m")[0]
        new_id = SegmentId(f"{base}.m{layout.membership_epoch + 1}")
        new_layout = layout.replace(old, SegmentPlacement(new_id, node, placement.az))
        self._learn(new_layout)
        union = list(layout.segments) + [p for p in new_layout.segments if p.segment == new_id]
        peers = tuple((p.segment, self.spec.nodes[p.node].address) for p in union)
        await self._call(new_id, "create", wire.encode(wire.CreateSegment(
            new_id, self.spec.geometry.volume, pg, self.spec.geometry.first_page(pg),
            self.spec.geometry.pg_pages, peers,
        )))
        core.change_membership(pg, new_layout)
        assert core.in_membership_change(pg)
        target = core.vdl
        log.info("membership change pg=%d old=%s new=%s on %s: filling up to %d", pg, old,
                 new_id, node, target)
        # An empty flush advances the new segment's known range, so that it starts pulling.
        self._schedule_flush()
        started = time.monotonic()
        try:
            while core.tracker.acked.get(new_id, LSN(0)) < target:
                if time.monotonic() - started > timeout_s:
                    raise QuorumUnavailableError(
                        f"new segment {new_id} did not catch up to {target} in {timeout_s}s"
                    )
                await asyncio.sleep(RESEND_EVERY_S)
                if not self._waiters:
                    self._schedule_flush()
        except BaseException:
            # Timed out or cancelled: the old set alone again, so that the PG is not left
            # needing two quorums for good and the change can be tried again.
            if core.abort_membership(pg, layout):
                self._release(core.vdl)
            log.warning("membership change aborted pg=%d new=%s", pg, new_id)
            raise
        if core.finish_membership(pg):
            self._release(core.vdl)
        assert not core.in_membership_change(pg)
        self.spec.layouts[pg] = new_layout
        self._save_spec()
        members = tuple(new_layout.segment_ids)
        for s in members:
            self._spawn(self._call(s, "membership", wire.encode(
                SetMembership(s, MembershipEpoch(new_layout.membership_epoch), members))))
        log.info("membership change done pg=%d new=%s after %.2fs", pg, new_id,
                 time.monotonic() - started)
        return new_id

    def add_node(self, info: NodeInfo) -> bool:
        """Make a storage node known to the volume (a spare for ``replace_segment``, room
        for new PGs) and save the spec. Returns False when it was known already, with the
        same AZ and address; BadRequestError when it conflicts with what is known."""
        known = self.spec.nodes.get(info.node)
        if known == info:
            return False
        if known is not None:
            raise BadRequestError(f"node {info.node} is known as {known.az} at "
                                  f"{known.address}, not {info.az} at {info.address}")
        same_address = [n.node for n in self.spec.nodes.values() if n.address == info.address]
        if same_address:
            raise BadRequestError(f"address {info.address} is node {same_address[0]}'s")
        azs = {n.az for n in self.spec.nodes.values()}
        if azs and info.az not in azs:
            raise BadRequestError(f"AZ {info.az} is not one of the volume's ({sorted(azs)})")
        self.spec.nodes[info.node] = info
        assert info.node in self.spec.nodes_by_az()[info.az]
        self._save_spec()
        log.info("storage node added node=%s az=%s address=%s", info.node, info.az,
                 info.address)
        return True

    def remove_node(self, node: NodeId) -> bool:
        """Forget a storage node that holds no segment any more (lost, and its segments
        rebuilt elsewhere), so that no new PG is placed on it; save the spec. Returns False
        when it was not known; BadRequestError while it still holds a segment."""
        if node not in self.spec.nodes:
            return False
        held = [str(p.segment) for layout in self.spec.layouts.values()
                for p in layout.segments if p.node == node]
        if held:
            raise BadRequestError(f"node {node} still holds {', '.join(held)}")
        del self.spec.nodes[node]
        self._save_spec()
        log.info("storage node removed node=%s", node)
        return True

    def health(self, healthy_from: LSN) -> list[dict[str, Any]]:
        """Per PG of an open writer, each segment's acknowledged SCL and whether it has
        reached ``healthy_from`` (the caller's choice: a VDL of a short while ago, so that
        a segment one round trip behind is healthy and a dead one is not for long)."""
        core = self.core
        if core is None:
            return []
        acked = core.tracker.acked
        out = []
        for pg, layout in sorted(core.layouts.items()):
            segments = []
            for p in layout.segments:
                scl = acked.get(p.segment, LSN(0))
                segments.append({"segment": p.segment, "node": p.node, "az": p.az,
                                 "acked": scl, "healthy": scl >= healthy_from})
            out.append({"pg": pg, "membership_epoch": layout.membership_epoch,
                        "changing": core.in_membership_change(pg),
                        "healthy": sum(1 for x in segments if x["healthy"]),
                        "segments": segments})
        return out

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _save_spec(self) -> None:
        if self.spec_path is not None:
            self.spec.save(self.spec_path)

    # --- recovery -------------------------------------------------------------------------

    async def open_writer(self, *, epoch: int | None = None) -> RecoveryResult:
        """Become the volume's writer: recover, fence any older writer, start serving."""
        if not self.spec.layouts:
            layout = place_pg(self.spec.geometry.volume, 0, self.spec.nodes_by_az())
            self.spec.layouts[layout.pg] = layout
            self._save_spec()
        # Every PG at once: a recovery's round trips must not grow with the volume's size.
        await asyncio.gather(*(self._create_pg(layout) for layout in self.spec.layouts.values()))
        next_epoch = epoch if epoch is not None else self.spec.epoch + 1
        for _attempt in range(RECOVERY_ATTEMPTS_MAX):
            recovery = Recovery(self.spec.layouts, writer_id=self.writer_id,
                                epoch=Epoch(next_epoch), lal=self.lal)
            result = await self._run_recovery(recovery)
            if result is not None:
                break
            next_epoch = max(next_epoch, recovery.newer_epoch) + 1
            log.info("recovery: epoch taken, retrying writer=%s epoch=%d", self.writer_id,
                     next_epoch)
        else:
            raise QuorumUnavailableError("recovery did not succeed")
        self.recovery_result = result
        self.spec.epoch = result.epoch
        self._save_spec()
        core = WriterCore(
            self.spec.geometry, self.spec.layouts, writer_id=self.writer_id,
            epoch=result.epoch, start=result.start, truncation=result.truncation, lal=self.lal,
        )
        for segment, scl in result.acked.items():
            core.on_ack(segment, scl, result.epoch)
        self.core = core
        self._room.set()
        self._resend_task = asyncio.create_task(self._resend_loop())
        log.info("writer open writer=%s epoch=%d vdl=%d start=%d", self.writer_id,
                 result.epoch, result.vdl, result.start)
        return result

    async def _run_recovery(self, recovery: Recovery) -> RecoveryResult | None:
        started = time.monotonic()
        inbox: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()

        async def send(msg: Any) -> None:
            method, body = _request(msg)
            try:
                reply = await self._call(msg.segment, method, body)
            except StaleEpochError as exc:
                await inbox.put((msg, ("stale", exc.current_epoch)))
                return
            except BorealisError as exc:
                log.debug("recovery request %s to %s failed: %s", method, msg.segment, exc)
                return
            await inbox.put((msg, reply))

        for msg in recovery.start():
            self._spawn(send(msg))
        while recovery.phase not in (Phase.DONE, Phase.FAILED):
            if time.monotonic() - started > RECOVERY_TIMEOUT_S:
                raise QuorumUnavailableError(
                    f"recovery stuck in phase {recovery.phase.value} for {RECOVERY_TIMEOUT_S}s"
                )
            try:
                msg, reply = await asyncio.wait_for(inbox.get(), RESEND_EVERY_S * 4)
            except TimeoutError:
                for segment in recovery.segment_pg:
                    for again in recovery.pending_for(segment):
                        self._spawn(send(again))
                continue
            out: list[Any] = []
            if isinstance(reply, tuple) and reply[0] == "stale":
                out = recovery.on_refused(msg.segment, reply[1])
            elif isinstance(msg, Seal):
                out = recovery.on_sealed(wire.decode(SegmentState, reply))
            elif isinstance(msg, QueryCpl):
                out = recovery.on_cpl(msg.segment, LSN(int(reply)))
            elif isinstance(msg, ReadRecords):
                records = wire.decode_records(reply[0], verify=True)
                out = recovery.on_records(msg.segment, records, LSN(int(reply[1])))
            elif isinstance(msg, WriteBatch):
                out = recovery.on_ack(wire.decode(WriteAck, reply))
            for again in out:
                self._spawn(send(again))
        if recovery.phase == Phase.FAILED:
            log.warning("recovery failed writer=%s: %s", self.writer_id, recovery.failure)
            if recovery.newer_epoch == 0:
                raise QuorumUnavailableError(recovery.failure)
            return None
        return recovery.result

    # --- commits --------------------------------------------------------------------------

    async def commit(self, writes: Sequence[PageWrite]) -> LSN:
        """Append one transaction's page writes; return its commit LSN once durable."""
        lsn = await self.append(writes)
        await self.wait_durable(lsn)
        self.stats.commits += 1
        return lsn

    async def append(self, writes: Sequence[PageWrite]) -> LSN:
        """Append one transaction's page writes and return its commit LSN at once, before it
        is durable (``wait_durable``): a database instance releases its write lock here.
        The records get consecutive LSNs in the order of ``writes``, ending at the one
        returned. Waits only for room (LAL) and for the volume to grow."""
        core = self._writer()
        needed = core.pgs_needed([w.page for w in writes])
        if needed:
            await self._grow(needed)
        while core.room() < len(writes):
            self._room.clear()
            await self._room.wait()
            core = self._writer()
        lsn = core.append_group(writes)
        self._schedule_flush()
        if self.on_append:
            group = core.last_group
            for listener in self.on_append:
                listener(group)
        return lsn

    async def wait_durable(self, lsn: LSN) -> LSN:
        """Return once VDL covers ``lsn``; FencedError if this writer is fenced first (then
        the outcome of what it appended above its VDL is for the new writer to decide)."""
        core = self._writer()
        if lsn <= core.vdl:
            return lsn
        assert lsn <= core.allocated, f"LSN {lsn} was never allocated"
        future: asyncio.Future[LSN] = asyncio.get_running_loop().create_future()
        if not self._waiters:
            self._waiting_since = time.monotonic()
        heapq.heappush(self._waiters, (lsn, next(self._waiter_seq), future))
        return await future

    def stalled_s(self) -> float:
        """How long commits have waited for durability with VDL not advancing (0: none
        waits, or VDL moved since the oldest began to wait).

        What a writer cut off from storage looks like from inside while it still answers
        health checks: a partition that drops the storage nodes' replies, say. The control
        plane fails such a writer over when storage is reachable from elsewhere."""
        if not self._waiters:
            return 0.0
        return time.monotonic() - max(self._waiting_since, self._vdl_advanced_at)

    def _writer(self) -> WriterCore:
        if self.core is None:
            raise FencedError("the volume client is not open as a writer")
        if self.core.fenced:
            raise FencedError(f"writer {self.writer_id} was fenced by a newer epoch")
        return self.core

    async def _grow(self, pgs: list[PgIndex]) -> None:
        """The volume grows: place and create the PGs, record them, then write to them."""
        async with self._grow_lock:
            core = self._writer()
            for pg in pgs:
                if pg in core.layouts:
                    continue
                layout = place_pg(self.spec.geometry.volume, pg, self.spec.nodes_by_az())
                await self._create_pg(layout)
                self.spec.layouts[pg] = layout
                self._save_spec()
                core.add_pg(layout)
                log.info("volume grew volume=%s pg=%d pgs=%d", self.spec.geometry.volume, pg,
                         len(core.layouts))

    def _flush(self) -> None:
        self._flush_scheduled = False
        core = self.core
        if core is None or self._closed:
            return
        core.min_read_point = LSN(min(
            min(self._read_points, default=core.vdl),
            min(self.external_read_points.values(), default=core.vdl),
        ))
        batches = core.flush()
        self.stats.flushes += 1
        # The six batches of a PG share one records tuple: encode its records once.
        encoded: dict[int, bytes] = {}
        # One request per node, carrying the batches of every segment it hosts.
        by_address: dict[str, list[tuple[SegmentId, list[Any]]]] = {}
        for batch in batches:
            records = encoded.get(id(batch.records))
            if records is None:
                records = encoded[id(batch.records)] = encode_block(batch.records)
            self.stats.bytes_sent += len(records)
            body = _encode_batch(batch, records)
            by_address.setdefault(self._addresses[batch.segment], []).append(
                (batch.segment, body)
            )
        for address, items in by_address.items():
            self.stats.batches_sent += len(items)
            self._send_many(address, items)

    def _send_batch(self, batch: WriteBatch, records: bytes | None = None) -> None:
        if records is None:
            records = encode_block(batch.records)
        body = _encode_batch(batch, records)
        self.stats.batches_sent += 1
        self.stats.bytes_sent += len(records)
        self._spawn(self._write(batch.segment, body))

    def _send_many(self, address: str, items: list[tuple[SegmentId, list[Any]]]) -> None:
        """One ``write_many`` to the node at ``address``. Over an open connection with a free
        slot the reply is handled in a callback; otherwise a task connects or waits."""
        client = self.pool.get_nowait(address)
        if client is not None:
            body = wire.write_many_request([body for _, body in items])
            try:
                future = client.start_call(wire.WRITE_MANY, body, timeout_s=self.rpc_timeout_s)
            except BorealisError as exc:
                self._write_many_failed(address, items, exc)
                return
            if future is not None:
                future.add_done_callback(
                    lambda done: self._write_many_done(address, items, done)
                )
                return
        self._spawn(self._write_many(address, items))

    def _write_many_done(self, address: str, items: list[tuple[SegmentId, list[Any]]],
                         future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self._write_many_reply(address, items, future.result())
        elif isinstance(exc, BorealisError):
            self._write_many_failed(address, items, exc)
        else:
            raise exc

    async def _write_many(self, address: str, items: list[tuple[SegmentId, list[Any]]]) -> None:
        try:
            client = await self.pool.get(address)
            reply = await client.call(wire.WRITE_MANY, wire.write_many_request(
                [body for _, body in items]), timeout_s=self.rpc_timeout_s)
        except BorealisError as exc:
            self._write_many_failed(address, items, exc)
            return
        self._write_many_reply(address, items, reply)

    def _write_many_failed(self, address: str, items: list[tuple[SegmentId, list[Any]]],
                           exc: BorealisError) -> None:
        if isinstance(exc, BadRequestError) and not self._closed:
            # A node that does not know write_many yet (a rolling upgrade): one by one.
            log.debug("write_many to %s refused (%s): writing batch by batch", address, exc)
            for segment, body in items:
                self._spawn(self._write(segment, body))
            return
        # The resend loop sends again what the node's segments did not acknowledge.
        log.debug("write_many to %s failed: %s", address, exc)

    def _write_many_reply(self, address: str, items: list[tuple[SegmentId, list[Any]]],
                          reply: Any) -> None:
        try:
            results = wire.write_many_results(reply, len(items))
        except BorealisError as exc:
            log.warning("write_many to %s: malformed reply: %s", address, exc)
            return
        core = self.core
        if core is None:
            return
        # As many acknowledgements as batches, VDL released once at the end (or before a
        # fence, so that what became durable before it is still acknowledged).
        advanced = False
        for (segment, _), result in zip(items, results, strict=True):
            if isinstance(result, WriteAck):
                advanced = core.on_ack(result.segment, result.scl, result.epoch) or advanced
                if not core.fenced:
                    continue
                fenced_by: int = result.epoch
            elif isinstance(result, StaleEpochError):
                fenced_by = result.current_epoch
            else:
                log.debug("write to %s failed: %s", segment, result)
                continue
            if advanced:
                self._release(core.vdl)
                advanced = False
            self._fenced(fenced_by)
        if advanced:
            self._release(core.vdl)

    async def _write(self, segment: SegmentId, body: list[Any]) -> None:
        try:
            reply = await self._call(segment, "write", body)
        except StaleEpochError as exc:
            self._fenced(exc.current_epoch)
            return
        except BorealisError as exc:
            log.debug("write to %s failed: %s", segment, exc)
            return
        ack = wire.decode(WriteAck, reply)
        core = self.core
        if core is None:
            return
        if core.on_ack(ack.segment, ack.scl, ack.epoch):
            self._release(core.vdl)
        if core.fenced:
            self._fenced(ack.epoch)

    def _release(self, vdl: LSN) -> None:
        self._vdl_advanced_at = time.monotonic()
        waiters = self._waiters
        while waiters and waiters[0][0] <= vdl:
            lsn, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(lsn)
        self._room.set()
        for listener in self.on_vdl:
            listener(vdl)

    def _fenced(self, newer: int) -> None:
        core = self.core
        if core is None:
            return
        core.on_stale_epoch(newer)
        if not core.fenced:
            return
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_exception(FencedError(
                    f"writer {self.writer_id} was fenced by epoch {newer}: the commit's "
                    "outcome is unknown (a new writer decides it)"
                ))
        self._room.set()

    async def _resend_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(RESEND_EVERY_S)
            core = self.core
            if core is None or core.fenced:
                continue
            if core.vdl > core.vdl_sent:
                self._schedule_flush()  # idle: tell storage the last VDL
            now = time.monotonic()
            for segment in core.lagging_segments():
                # In-flight batches are normal: resend only to a segment whose acknowledged
                # SCL has not moved for a while.
                acked = core.tracker.acked.get(segment, LSN(0))
                seen_acked, since = self._progress.get(segment, (LSN(-1), now))
                if acked != seen_acked:
                    self._progress[segment] = (acked, now)
                    continue
                if now - since < RESEND_AFTER_S:
                    continue
                self._progress[segment] = (acked, now)
                batch = core.resend(segment)
                if batch is not None:
                    self.stats.resends += 1
                    self._send_batch(batch)

    # --- reads ----------------------------------------------------------------------------

    def open_reader(self) -> None:
        """Serve reads only, for a replica: at the read points it gives, from any segment
        that has caught up to them (a segment behind answers NotCaughtUpError and the read
        moves on). The PG layouts come from the volume spec, read again from its file when
        a page lies beyond them (the writer grew the volume)."""
        assert self.core is None, "a writer's client cannot become a reader"
        self.reader = True

    async def read_page(self, page: int, read_point: LSN | None = None) -> PageVersion:
        """The page as of ``read_point`` (default, for a writer: the current VDL)."""
        core = self.core
        pg = self.spec.geometry.pg_of(page)
        if core is not None:
            point = core.vdl if read_point is None else read_point
            layout = core.layouts.get(pg)
        else:
            assert self.reader, "reads need an open writer or reader"
            assert read_point is not None, "a reader reads at a read point"
            point = read_point
            layout = self.spec.layouts.get(pg)
            if layout is None and self.spec_path is not None:
                self.spec = VolumeSpec.load(self.spec_path)
                for known in self.spec.layouts.values():
                    self._learn(known)
                layout = self.spec.layouts.get(pg)
        if layout is None:
            return PageVersion(PageNo(page), LSN(0), None)
        self._read_points[point] += 1
        self.stats.reads += 1
        try:
            reply = await self._read(layout, page, point)
        finally:
            self._read_points[point] -= 1
            if not self._read_points[point]:
                del self._read_points[point]
        if core is not None:
            core.note_page_version(page, reply.version)
        return reply

    async def _read(self, layout: PgLayout, page: int, point: LSN) -> PageVersion:
        """Try the segments that can serve ``point`` in random order, each at most once per
        round: a fast failure moves straight on to the next one, a slow answer is hedged
        with the next one. Segments that failed go last in the next round."""
        core = self.core
        last_error: BorealisError | None = None
        failed: set[SegmentId] = set()
        for _round in range(READ_ATTEMPTS_MAX):
            # A writer knows which segments have caught up to the read point; a reader
            # tries them all (one behind refuses with NotCaughtUpError).
            ready = [s for s in layout.segment_ids
                     if core is None or core.tracker.acked.get(s, LSN(0)) >= point]
            if not ready:
                await asyncio.sleep(RESEND_EVERY_S)
                continue
            random.shuffle(ready)
            ready.sort(key=lambda s: s in failed)  # stable: healthy ones first, still shuffled
            pending: set[asyncio.Task[Any]] = set()
            owner: dict[asyncio.Task[Any], SegmentId] = {}
            queue = list(ready)

            def start_next(
                queue: list[SegmentId] = queue,
                owner: dict[asyncio.Task[Any], SegmentId] = owner,
                pending: set[asyncio.Task[Any]] = pending,
            ) -> None:
                segment = queue.pop(0)
                body = wire.encode(GetPage(segment, PageNo(page), point))
                task = self._spawn(self._call(segment, "get_page", body))
                owner[task] = segment
                pending.add(task)

            start_next()
            while pending:
                done, _ = await asyncio.wait(
                    pending, timeout=HEDGE_AFTER_S, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    if queue:
                        self.stats.hedged_reads += 1
                        start_next()
                    continue
                for task in done:
                    pending.discard(task)
                    exc = task.exception()
                    if exc is None:
                        for other in pending:
                            other.cancel()
                        return wire.decode(PageVersion, task.result())
                    if not isinstance(exc, BorealisError):
                        raise exc
                    last_error = exc
                    failed.add(owner[task])
                    if queue:
                        start_next()
        raise QuorumUnavailableError(
            f"page {page} at read point {point}: no segment could serve it ({last_error})"
        )


def _request(msg: Any) -> tuple[str, Any]:
    if isinstance(msg, Seal):
        return "seal", wire.encode(msg)
    if isinstance(msg, QueryCpl):
        return "query_cpl", wire.encode(msg)
    if isinstance(msg, ReadRecords):
        return "read_records", wire.encode(msg)
    if isinstance(msg, WriteBatch):
        return "write", wire.encode(msg)
    raise AssertionError(f"no method for {msg!r}")


def _encode_batch(batch: WriteBatch, records: bytes) -> list[Any]:
    return wire.encode_write_batch(batch, records)
