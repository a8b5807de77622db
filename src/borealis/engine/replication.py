"""The redo stream from a writer instance to its readers (replicas).

The writer sends every commit group's redo records as it hands them to the volume, and
every VDL advance (``RedoPublisher``). A reader (``ReaderState``) applies the records to
the pages it has cached (a delta onto the version it was made against), closes the
validity of the pages it cannot patch, and starts every read transaction at the latest VDL
it has received: whatever it reads there is durable and committed, and since VDL only ever
stops at commit points, transactions become visible whole and in commit order. Pages it
does not hold it reads from storage at that read point, from any segment caught up to it.

A message is ``[prev, last, block, vdl, allocated, sent_at, epoch, lag_ms]``: the records
with LSNs in ``(prev, last]`` (a record block), the writer's VDL, its highest allocated LSN,
the writer's wall time when it sent the message (for a person reading a trace; never
compared with the reader's clock), the writer's volume epoch and the reader's replica lag
as the writer measured it (see below). A message from an older writer may lack the epoch,
or the lag. A reader whose position is not ``prev`` missed messages (it
was slow, or reconnected): it keeps no cached version past its position open-ended
(``PageCache.close_open``) and goes on from ``last``; the pages it needs again come from
storage. Nothing is reloaded and nothing is replayed.

A reader re-pointed to a new writer (after a failover, ``follow``) sees a newer epoch. The
new writer's recovery voided whatever the old one streamed above the recovered VDL (the
truncation ``(VDL, VDL + LAL]``), and the new stream starts above that range, so the reader
handles the change as a gap even when ``prev`` happens to equal its position: no version
it cached from the old stream stays valid past that position, and its new read points (the
new writer's VDLs, above the truncation) miss those versions and read from storage. A
message of an older epoch than the reader's is refused (``FencedError``): the old writer,
fenced but perhaps still sending heartbeats, drops the reader.

The reply is ``[vdl, oldest_read_point]``: how far the reader has come, and the oldest read
point its transactions use, which the writer passes to storage as the minimum read point
(storage must keep every version a reader may still read).

Replica lag (``lag_ms``: how far behind the writer a reader is, in milliseconds) is measured
on one clock only, the writer's monotonic clock, so that it does not depend on two machines'
wall clocks agreeing (it once was the reader's wall time minus ``sent_at``: a reader whose
clock ran 120 s ahead showed 120,000 ms, one behind showed 0). For each reader the writer
notes when it sent each message that carried a VDL new to that reader; when the reader's
reply acknowledges that VDL, the time since is a sample (sending, applying, and the reply's
way back: an upper bound on the one-way lag). The reader's lag is the larger of the last
sample and the age of the oldest VDL it has not acknowledged (so a reader that stops
answering shows a growing lag, not its last good sample), and it travels to the reader in
the next message (``_Subscriber.lag_ms``). The reader reports the last lag it was sent, or,
when the writer has been silent longer than a live writer ever is
(``SILENT_IS_LAG_AFTER_S``), the silence measured on its own monotonic clock, if larger: it
has seen nothing of what the writer did meanwhile (``ReaderState.lag_ms``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from borealis import delta
from borealis.engine.pagecache import PageCache
from borealis.engine.vfs import Backend, VolumeState
from borealis.errors import BorealisError, FencedError, ProtocolError
from borealis.storage.record import RecordKind, RedoRecord, decode_block, encode_block
from borealis.types import LSN
from borealis.volume.client import VolumeClient

log = logging.getLogger(__name__)

SUBSCRIBER_INFLIGHT_MAX = 256
"""Messages a reader may have unanswered; beyond it the writer drops the reader, which
subscribes again and catches up from storage."""
LAG_SAMPLES = 4096
HEARTBEAT_S = 0.2
"""An idle writer still sends a message this often; a reader that hears nothing for
``SILENCE_S`` subscribes again."""
SILENCE_S = 2.0
SILENT_IS_LAG_AFTER_S = 2 * HEARTBEAT_S + 0.1
"""A live writer sends at least every ``2 * HEARTBEAT_S`` (the heartbeat checks every
``HEARTBEAT_S`` for a message in the last ``HEARTBEAT_S``): a longer silence is lag."""

Send = Callable[[list[Any]], Awaitable[Any]]


@dataclass
class _Subscriber:
    name: str
    send: Send
    inflight: int = 0
    vdl: LSN = LSN(0)
    oldest_read_point: LSN = LSN(0)
    vdl_sent: LSN = LSN(0)
    unacknowledged: collections.deque[tuple[LSN, float]] = field(
        default_factory=collections.deque)
    """(VDL, writer's monotonic time sent) of each message that carried a VDL new to this
    reader and is not acknowledged yet, oldest first (at most one per message in flight)."""
    lag_s: float = 0.0
    """The last sample: from sending a VDL to the reply that acknowledged it."""

    def lag_ms(self, now_s: float) -> float:
        """How far behind the writer this reader is, on the writer's monotonic clock."""
        oldest_s = now_s - self.unacknowledged[0][1] if self.unacknowledged else 0.0
        return max(self.lag_s, oldest_s, 0.0) * 1e3

    def sent(self, vdl: LSN, now_s: float) -> None:
        if vdl > self.vdl_sent:
            self.vdl_sent = vdl
            self.unacknowledged.append((vdl, now_s))
        assert len(self.unacknowledged) <= SUBSCRIBER_INFLIGHT_MAX + 1

    def acknowledged(self, vdl: LSN, now_s: float) -> None:
        newest: tuple[LSN, float] | None = None
        while self.unacknowledged and self.unacknowledged[0][0] <= vdl:
            newest = self.unacknowledged.popleft()
        if newest is not None:
            self.lag_s = max(0.0, now_s - newest[1])


class RedoPublisher:
    """The writer's side: one stream position, fanned out to every subscribed reader."""

    def __init__(self, client: VolumeClient) -> None:
        self.client = client
        self.position = client.core.allocated if client.core is not None else LSN(0)
        self.subscribers: dict[str, _Subscriber] = {}
        self._pending: list[RedoRecord] = []
        self._vdl = client.vdl
        self._vdl_sent = LSN(0)
        self._scheduled = False
        self._last_sent_s = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.messages_sent = 0
        self.bytes_sent = 0
        """Bytes of record blocks sent, summed over the readers they were sent to."""
        client.on_append.append(self._appended)
        client.on_vdl.append(self._vdl_moved)

    def subscribe(self, name: str, send: Send) -> dict[str, Any]:
        """Start streaming to ``name`` from now on (it was told where the stream is)."""
        self.subscribers[name] = _Subscriber(name, send)
        self._vdl_sent = LSN(0)  # the new reader needs a VDL to start from
        self._schedule()
        return {"position": self.position, "vdl": self.client.vdl}

    def unsubscribe(self, name: str) -> None:
        self.subscribers.pop(name, None)
        self.client.external_read_points.pop(name, None)

    def close(self) -> None:
        for listener_list, listener in ((self.client.on_append, self._appended),
                                        (self.client.on_vdl, self._vdl_moved)):
            if listener in listener_list:
                listener_list.remove(listener)  # type: ignore[arg-type]
        for task in self._tasks:
            task.cancel()

    def _appended(self, records: tuple[RedoRecord, ...]) -> None:
        self._pending.extend(records)
        self._schedule()

    def _vdl_moved(self, vdl: LSN) -> None:
        if vdl > self._vdl:
            self._vdl = vdl
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def heartbeat(self) -> None:
        """Send a message at least every ``HEARTBEAT_S``, so that readers of an idle
        writer know it is there (and find out when it is not)."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if time.monotonic() - self._last_sent_s >= HEARTBEAT_S and self.subscribers:
                self._flush(force=True)

    def _flush(self, *, force: bool = False) -> None:
        """One message for everything since the last: batched per loop iteration."""
        self._scheduled = False
        if not self._pending and self._vdl <= self._vdl_sent and not force:
            return
        now_s = self._last_sent_s = time.monotonic()
        records, self._pending = self._pending, []
        prev = self.position
        last = LSN(records[-1].lsn) if records else prev
        self.position = last
        self._vdl_sent = self._vdl
        core = self.client.core
        allocated = core.allocated if core is not None else last
        epoch = core.epoch if core is not None else 0
        block = encode_block(records)
        message = [prev, last, block, self._vdl, allocated, time.time(), epoch]
        for sub in list(self.subscribers.values()):
            if sub.inflight >= SUBSCRIBER_INFLIGHT_MAX:
                log.warning("reader %s is %d messages behind: dropped (it catches up from "
                            "storage when it subscribes again)", sub.name, sub.inflight)
                self.unsubscribe(sub.name)
                continue
            sub.inflight += 1
            self.messages_sent += 1
            self.bytes_sent += len(block)
            lag_ms = round(sub.lag_ms(now_s), 3)   # as of the messages before this one
            sub.sent(self._vdl, now_s)
            task = asyncio.get_running_loop().create_task(
                self._send(sub, [*message, lag_ms]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, sub: _Subscriber, message: list[Any]) -> None:
        try:
            reply = await sub.send(message)
        except BorealisError as exc:
            if self.subscribers.get(sub.name) is sub:
                log.info("reader %s unreachable (%s): dropped", sub.name, exc)
                self.unsubscribe(sub.name)
            return
        finally:
            sub.inflight -= 1
        try:
            vdl, oldest = reply
            sub.vdl = LSN(int(vdl))
            sub.oldest_read_point = LSN(int(oldest))
            sub.acknowledged(sub.vdl, time.monotonic())
        except (TypeError, ValueError):
            log.warning("reader %s sent a malformed redo reply: dropped", sub.name)
            self.unsubscribe(sub.name)
            return
        if self.subscribers.get(sub.name) is sub:
            self.client.external_read_points[sub.name] = sub.oldest_read_point


@dataclass
class ReplicaStats:
    messages: int = 0
    records: int = 0
    patched: int = 0
    superseded: int = 0
    gaps: int = 0
    writer_changes: int = 0
    stale_refused: int = 0
    lags_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LAG_SAMPLES))
    last_lag_ms: float = 0.0
    """The lag the writer last sent (measured on its monotonic clock)."""
    lag_lsns: int = 0


class ReaderState(VolumeState):
    """A reader's shared state: the VFS reads through it at each transaction's read point,
    and ``apply`` feeds it the writer's redo stream."""

    def __init__(self, backend: Backend, cache: PageCache, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(backend, cache)
        self._monotonic = monotonic  # the only clock a reader reads (a fake in tests)
        self.read_only = True
        self.position = LSN(0)  # the stream position: every record up to it applied
        self.vdl = LSN(0)  # the read point of new transactions
        self.epoch = 0  # the volume epoch of the writer whose stream this is (0: none yet)
        self.stats = ReplicaStats()
        self._apply_lock = threading.Lock()
        self._last_seen: dict[int, int] = {}  # page -> the newest LSN streamed for it
        self._missed_through = LSN(0)  # records up to here may have been missed (gaps)
        self._read_points: collections.Counter[int] = collections.Counter()
        self._read_points_lock = threading.Lock()
        self._last_message_s: float | None = None  # this process's monotonic clock

    # -- read points --------------------------------------------------------------------

    def begin_read(self) -> LSN:
        """A read transaction starts: its read point is the latest VDL received."""
        with self._read_points_lock:
            point = self.vdl
            self._read_points[point] += 1
            return point

    def end_read(self, point: LSN) -> None:
        with self._read_points_lock:
            self._read_points[point] -= 1
            if not self._read_points[point]:
                del self._read_points[point]

    def oldest_read_point(self) -> LSN:
        with self._read_points_lock:
            return LSN(min(self._read_points, default=self.vdl))

    # -- reads --------------------------------------------------------------------------

    def page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        if read_point is None:  # SQLite reads the header once before any lock
            read_point = self.vdl
        hit = self.cache.get(page, read_point)
        if hit is not None:
            return LSN(hit[0]), hit[1]
        version, image = self.backend.read_page(page, read_point)
        if image is not None:
            with self._apply_lock:
                # Cache it open-ended only if the stream has brought nothing newer for the
                # page since the read point, no newer version is cached, and no record the
                # stream skipped (a gap) lies above the read point: then it is the page's
                # newest version until a record says otherwise.
                if (self._last_seen.get(page, 0) <= read_point
                        and read_point >= self._missed_through):
                    self.cache.put_if_newest(page, version, image)
        return version, image

    def size_pages(self, read_point: LSN | None = None) -> int:
        if read_point is None:
            read_point = self.vdl
        _, image = self.page(0, read_point)
        return 0 if image is None else int.from_bytes(image[28:32], "big")

    # -- the redo stream ----------------------------------------------------------------

    def apply(self, message: Any) -> list[int]:
        """Apply one message of the writer's stream; the reply for the writer."""
        try:
            prev, last, block, vdl, allocated, sent_at, *rest = message
            prev, last, vdl, allocated = int(prev), int(last), int(vdl), int(allocated)
            sent_at = float(sent_at)   # checked, never used: it is another machine's clock
            epoch = int(rest[0]) if rest else 0
            writer_lag_ms = float(rest[1]) if len(rest) > 1 else None
            if len(rest) > 2:
                raise ValueError(f"{len(message)} elements")
            if writer_lag_ms is not None and not writer_lag_ms >= 0:
                raise ValueError(f"replica lag {writer_lag_ms}")
            records = decode_block(block)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed redo message: {exc}") from exc
        with self._apply_lock:
            if epoch and epoch < self.epoch:
                self.stats.stale_refused += 1
                raise FencedError(f"this reader follows the writer of epoch {self.epoch}; "
                                  f"a stream of epoch {epoch} is stale")
            new_writer = bool(epoch and self.epoch and epoch > self.epoch)
            if new_writer:
                # A failover: what the old writer streamed above the recovered VDL is void.
                self.stats.writer_changes += 1
                log.info("redo stream from a new writer: epoch %d after %d, position %d, "
                         "stream at %d", epoch, self.epoch, self.position, prev)
                if prev < self.position:
                    # Never expected: the old writer allocated at most LAL above its VDL, and
                    # the new one starts LAL above the recovered VDL, which is not lower.
                    log.warning("the new writer's stream starts at %d, below this reader's "
                                "position %d", prev, self.position)
                # Versions cached above the last VDL may be void: drop their pages, or the
                # void version, newest in the cache, would keep the page from being cached.
                for page, lsn in self._last_seen.items():
                    if lsn > self.vdl:
                        self.cache.drop_page(page)
            if epoch:
                self.epoch = max(self.epoch, epoch)
            if prev != self.position or new_writer:
                # Messages were missed: what is cached may be stale past our position, and a
                # page read from storage below ``prev`` may miss a record we never saw.
                self.stats.gaps += 1
                self.cache.close_open(self.position)
                self._missed_through = LSN(max(self._missed_through, prev))
                log.info("redo stream gap: at %d, the stream is at %d; reading what is "
                         "needed from storage", self.position, prev)
            for record in records:
                self._apply_record(record)
            self.position = LSN(max(self.position, last))
            self.stats.messages += 1
            self.stats.records += len(records)
        self._last_message_s = self._monotonic()
        if writer_lag_ms is not None:
            self.stats.last_lag_ms = writer_lag_ms
        if vdl > self.vdl:
            self.vdl = LSN(vdl)
            if writer_lag_ms is not None:
                self.stats.lags_ms.append(writer_lag_ms)
        self.stats.lag_lsns = max(0, allocated - self.vdl)
        oldest = self.oldest_read_point()
        if self.stats.messages % 64 == 0:
            self.cache.gc(oldest)
        return [self.vdl, oldest]

    def _apply_record(self, record: RedoRecord) -> None:
        page = record.page
        self._last_seen[page] = record.lsn
        if not record.crc_ok():
            self.cache.supersede(page, record.lsn)
            return
        base = self.cache.newest(page)
        if record.kind == RecordKind.IMAGE:
            self.cache.put(page, record.lsn, delta.apply(None, record.payload))
            self.stats.patched += 1
        elif base is not None and base[0] == record.prev_page_lsn:
            self.cache.put(page, record.lsn, delta.apply(base[1], record.payload))
            self.stats.patched += 1
        else:
            self.cache.supersede(page, record.lsn)
            self.stats.superseded += 1

    def lag_ms(self) -> float:
        """How far behind the writer this reader is (ms): the lag the writer last measured
        and sent, or the time the writer has been silent, on this process's monotonic
        clock, once that is longer than a live writer is ever silent (see the module
        docstring). No wall clock is read: a skewed clock on either side changes nothing."""
        if self._last_message_s is None:
            return self.stats.last_lag_ms
        silent_s = self._monotonic() - self._last_message_s
        if silent_s > SILENT_IS_LAG_AFTER_S:
            return max(self.stats.last_lag_ms, silent_s * 1e3)
        return self.stats.last_lag_ms

    def lag_percentiles(self) -> tuple[float, float]:
        samples = sorted(self.stats.lags_ms)
        if not samples:
            return 0.0, 0.0

        def at(q: float) -> float:
            return samples[min(len(samples) - 1, round(q * (len(samples) - 1)))]

        return at(0.5), at(0.99)
