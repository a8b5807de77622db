"""The data path: one proxied connection (``_Connection``), its two sockets (``_Side``) and
its two directions (``_Pipe``), which delay, hold, stall, duplicate and release bytes.

Each ``_Pipe`` reads the faults of its direction from its ``Link`` on every chunk, so a fault
change takes effect at once; ``Link.set_faults`` tells every connection (``faults_changed``)
so that held bytes are released, dropped or reset on heal.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import socket
import struct
from typing import TYPE_CHECKING, Final, cast

from borealis.chaos.faultproxy.faults import (
    NO_FAULTS,
    Direction,
    Faults,
    FrameSplitter,
    HealAction,
)

if TYPE_CHECKING:
    from borealis.chaos.faultproxy.proxy import Link

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 5.0
STALL_RETRIES_MAX: Final = 15
"""Retransmissions of one lost chunk before the connection is reset (Linux tcp_retries2)."""
FLUSH_BYTES_MAX: Final = 256 * 1024
"""Bytes handed to a sink per write, so that its ``pause_writing`` is seen between writes."""
TIMER_SLACK_S: Final = 0.001
"""A timer may fire up to the clock resolution early; count that as due."""

_EOF: Final = None
"""The unit that stands for the end of a direction's stream."""


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _abort_with_rst(transport: asyncio.BaseTransport | None) -> None:
    """Abort so that the peer sees a reset, not an orderly close (SO_LINGER 0)."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cast(asyncio.Transport, transport).abort()


class _Pipe:
    """One direction of one connection: the units on their way from source to sink.

    Units wait in a heap by release time. Within a direction release times never decrease,
    except by a frame link's independent frame delay, which moves whole frames only.
    """

    __slots__ = ("_frame_splitter", "_loop", "_ordered_release", "_queue", "_release_max",
                 "_seq", "_source_paused", "_stalled_until", "_timer", "_timer_at",
                 "connection", "direction", "done", "eof_queued", "held_bytes", "sink",
                 "sink_paused", "source", "stats")

    def __init__(self, connection: _Connection, direction: Direction) -> None:
        self.connection = connection
        self.direction = direction
        link = connection.link
        self.stats = link.stats[direction]
        self._loop = connection.loop
        self.source: asyncio.Transport | None = None
        self.sink: asyncio.Transport | None = None
        self.sink_paused = False
        self._source_paused = False
        self._queue: list[tuple[float, int, bytes | None]] = []
        self._seq = 0
        self.held_bytes = 0
        self._ordered_release = 0.0
        """Release time of the last unit that keeps stream order."""
        self._release_max = 0.0
        self._stalled_until = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._frame_splitter = FrameSplitter() if link.frames else None
        self.eof_queued = False
        self.done = False
        """The end of the stream reached the sink, or the sink is gone."""

    @property
    def faults(self) -> Faults:
        return self.connection.link.faults[self.direction]

    def _ready(self, faults: Faults) -> bool:
        return (not faults.blocked and self.sink is not None and not self.sink_paused
                and not self.done and not self.sink.is_closing())

    # input

    def push(self, data: bytes) -> None:
        if self.done or self.eof_queued:
            self.stats.bytes_dropped += len(data)
            return
        self.stats.bytes += len(data)
        faults = self.faults
        units: list[bytes] = (
            [data] if self._frame_splitter is None else self._frame_splitter.feed(data)
        )
        if not units:
            return
        if faults.passthrough and not self._queue and self._ready(faults):
            assert self.sink is not None
            out = units[0] if len(units) == 1 else b"".join(units)
            self.stats.bytes_delivered += len(out)
            self.sink.write(out)
            return
        now = self._loop.time()
        release = self._next_release(now, faults)
        if release is None:
            return  # the connection was reset
        frame_link = self._frame_splitter is not None and self._frame_splitter.broken is None
        rng = self.connection.link.rng
        for unit in units:
            if not frame_link:
                # Never ahead of a frame delayed on its own (a frame link's stream broke).
                self._enqueue(max(release, self._release_max), unit)
                continue
            copies = 1
            if faults.duplicate_probability > 0 and rng.random() < faults.duplicate_probability:
                copies = 2
                self.stats.frames_duplicated += 1
            for _ in range(copies):
                delay_s = rng.uniform(0, faults.frame_delay_ms_max) / 1000.0 \
                    if faults.frame_delay_ms_max > 0 else 0.0
                self._enqueue(release + delay_s, unit)
        self._schedule()

    def push_eof(self) -> None:
        if self.eof_queued or self.done:
            return
        self.eof_queued = True
        self.source = None
        if self._frame_splitter is not None:
            rest = self._frame_splitter.flush()
            if rest:  # the stream ended inside a frame: pass on what there is
                self._enqueue(max(self._loop.time(), self._ordered_release), rest)
        # Last of all, after every frame however it was delayed.
        self._enqueue(max(self._loop.time(), self._ordered_release, self._release_max), _EOF)
        self._schedule()

    def _next_release(self, now: float, faults: Faults) -> float | None:
        """When a chunk read now may leave, keeping stream order; None if TCP gave up."""
        if faults.stall_probability > 0 and now >= self._stalled_until:
            rng = self.connection.link.rng
            if rng.random() < faults.stall_probability:
                self.stats.stalls += 1
                rto_ms = faults.stall_ms
                stall_ms = rto_ms
                retries = 1
                while rng.random() < faults.stall_probability:
                    retries += 1
                    if retries > STALL_RETRIES_MAX:
                        self.connection.reset(f"{self.direction.value} chunk lost "
                                              f"{STALL_RETRIES_MAX} times")
                        return None
                    rto_ms = min(rto_ms * 2, faults.stall_ms_max)
                    stall_ms += rto_ms
                self._stalled_until = now + stall_ms / 1000.0
        delay_ms = faults.latency_ms
        if faults.jitter_ms > 0:
            delay_ms += self.connection.link.rng.uniform(-faults.jitter_ms, faults.jitter_ms)
        release = max(now, self._stalled_until) + max(0.0, delay_ms) / 1000.0
        release = max(release, self._ordered_release)
        self._ordered_release = release
        return release

    def _enqueue(self, release: float, unit: bytes | None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (release, self._seq, unit))
        self._release_max = max(self._release_max, release)
        if unit is None:
            return
        self.held_bytes += len(unit)
        if self.held_bytes > self.stats.held_bytes_peak:
            self.stats.held_bytes_peak = self.held_bytes
        if (self.held_bytes >= self.connection.link.held_bytes_max
                and self.source is not None and not self._source_paused):
            self._source_paused = True
            with contextlib.suppress(RuntimeError, AttributeError):
                self.source.pause_reading()

    # output

    def _schedule(self) -> None:
        """Flush now or set the timer for the head of the queue."""
        if not self._queue or not self._ready(self.faults):
            return
        head = self._queue[0][0]
        if head <= self._loop.time() + TIMER_SLACK_S:
            self.flush()
            return
        if self._timer is not None and self._timer_at <= head:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(head, self._on_timer)
        self._timer_at = head

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self.flush()

    def flush(self, *, release_all: bool = False) -> None:
        """Write every unit that is due (every unit, with ``release_all``) to the sink."""
        queue = self._queue
        while queue and self._ready(self.faults):
            sink = self.sink
            assert sink is not None
            now = self._loop.time() + TIMER_SLACK_S
            out: list[bytes] = []
            out_bytes = 0
            eof = False
            while queue and out_bytes < FLUSH_BYTES_MAX and (release_all or queue[0][0] <= now):
                _, _, unit = heapq.heappop(queue)
                if unit is _EOF:
                    eof = True
                    break
                self.held_bytes -= len(unit)
                out.append(unit)
                out_bytes += len(unit)
            if out:
                self.stats.bytes_delivered += out_bytes
                sink.write(out[0] if len(out) == 1 else b"".join(out))
            if eof:
                self._deliver_eof()
                return
            if not out:
                break
        assert self.held_bytes >= 0
        self._maybe_resume_source()
        if self._timer is None or (queue and queue[0][0] < self._timer_at):
            self._schedule()

    def _deliver_eof(self) -> None:
        sink = self.sink
        assert sink is not None
        self.done = True
        self._cancel_timer()
        if sink.can_write_eof():
            sink.write_eof()
        else:
            sink.close()
        self.connection.pipe_done()

    def _maybe_resume_source(self) -> None:
        if (self._source_paused and self.source is not None
                and self.held_bytes <= self.connection.link.held_bytes_max // 2):
            self._source_paused = False
            with contextlib.suppress(RuntimeError, AttributeError):
                self.source.resume_reading()

    def drop_held(self) -> None:
        """Forget every held data unit (not the end of the stream)."""
        self._queue = [entry for entry in self._queue if entry[2] is _EOF]
        heapq.heapify(self._queue)
        self.stats.bytes_dropped += self.held_bytes
        self.held_bytes = 0
        self._maybe_resume_source()

    def release_all(self) -> None:
        """Healed: forget stalls and delays; everything held is due now, in its order."""
        now = self._loop.time()
        entries = sorted(self._queue)
        base = self._seq
        self._queue = [(now, base + i, unit) for i, (_, _, unit) in enumerate(entries, 1)]
        self._seq = base + len(entries)
        self._stalled_until = self._ordered_release = self._release_max = now
        self._cancel_timer()
        self.flush()

    def set_sink_paused(self, paused: bool) -> None:
        self.sink_paused = paused
        if not paused:
            self._schedule()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf

    def close(self) -> None:
        self._cancel_timer()
        self._queue.clear()
        self.held_bytes = 0
        self.done = True


class _Side(asyncio.Protocol):
    """One of a connection's two sockets: the client's (accepted) or the target's."""

    def __init__(self, connection: _Connection, *, client: bool) -> None:
        self.connection = connection
        self.client = client
        self.inbound = connection.up if client else connection.down
        """The pipe this socket's bytes go into."""
        self.outbound = connection.down if client else connection.up

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connection.side_made(self, cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        self.inbound.push(data)

    def eof_received(self) -> bool:
        self.inbound.push_eof()
        return True  # keep the other direction open (a half-close, as TCP allows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.side_lost(self, exc)

    def pause_writing(self) -> None:
        self.outbound.set_sink_paused(True)

    def resume_writing(self) -> None:
        self.outbound.set_sink_paused(False)


class _Connection:
    """One client connection through a link and, once ``to_target`` lets it, the target's."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.loop = link.loop
        self.id = next(link.connection_ids)
        self.up = _Pipe(self, Direction.TO_TARGET)
        self.down = _Pipe(self, Direction.FROM_TARGET)
        self.client_side = _Side(self, client=True)
        self.client: asyncio.Transport | None = None
        self.target: asyncio.Transport | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._reset_timer: asyncio.Handle | None = None
        self.closed = False

    def pipe(self, direction: Direction) -> _Pipe:
        return self.up if direction is Direction.TO_TARGET else self.down

    # sockets

    def side_made(self, side: _Side, transport: asyncio.Transport) -> None:
        _set_nodelay(transport)
        if self.closed:
            _abort_with_rst(transport)
            return
        if side.client:
            self.client = transport
            self.up.source = transport
            self.down.sink = transport
            self.link.connections.add(self)
            self.link.connections_total += 1
            logger.debug("fault proxy connection link=%s id=%d", self.link.name, self.id)
            self.reschedule_reset()
            if not self.link.faults[Direction.TO_TARGET].blocked:
                self.start_connect()
        else:
            self.target = transport
            self.up.sink = transport
            self.down.source = transport
            self.up.flush()

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        if side.client:
            self.client = None
        else:
            self.target = None
        if exc is not None:  # a reset or an error: pass it on at once
            self.reset(f"{'client' if side.client else 'target'} lost: {exc}", rst=False)
            return
        if self.closed:
            return
        # Closed cleanly: nothing can go into this socket now, nothing more comes out.
        side.outbound.close()
        side.inbound.push_eof()
        if self.client is None and self.target is None:
            self._finish()
        else:
            self.pipe_done()

    def start_connect(self) -> None:
        if self._connect_task is None and not self.closed:
            self._connect_task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        link = self.link
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: _Side(self, client=False),
                                            link.target_host, link.target_port),
                CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            link.connect_failures += 1
            logger.info("fault proxy cannot reach target link=%s target=%s:%d reason=%s",
                        link.name, link.target_host, link.target_port, exc)
            self.reset(f"cannot connect to the target: {exc}")

    def pipe_done(self) -> None:
        """A pipe delivered its end of stream: once both have, close both sockets."""
        if self.up.done and self.down.done:
            for transport in (self.client, self.target):
                if transport is not None:
                    transport.close()

    # faults

    def faults_changed(self, direction: Direction, old: Faults, new: Faults) -> None:
        if self.closed:
            return
        pipe = self.pipe(direction)
        if old.blocked and not new.blocked:
            if old.on_heal is HealAction.RESET:
                self.reset(f"{direction.value} unblocked with on_heal=reset")
                return
            if old.on_heal is HealAction.DROP:
                pipe.drop_held()
        if direction is Direction.TO_TARGET and not new.blocked:
            self.start_connect()
        if new == NO_FAULTS:
            pipe.release_all()
        else:
            pipe.flush()
        self.reschedule_reset()

    def reschedule_reset(self) -> None:
        """Arm the reset timer: a Poisson process whose rate makes the chance of a reset
        within one second the directions' ``reset_probability_per_s`` combined."""
        if self._reset_timer is not None:
            self._reset_timer.cancel()
            self._reset_timer = None
        if self.closed:
            return
        probabilities = [self.link.faults[d].reset_probability_per_s for d in Direction]
        if max(probabilities) >= 1.0:
            self._reset_timer = self.loop.call_soon(self.reset, "reset fault (p=1)")
            return
        rate_per_s = -sum(math.log1p(-p) for p in probabilities)
        if rate_per_s <= 0:
            return
        delay_s = self.link.rng.expovariate(rate_per_s)
        self._reset_timer = self.loop.call_later(delay_s, self.reset, "reset fault")

    def reset(self, reason: str, *, rst: bool = True) -> None:
        """Abort both sockets (with an RST unless the socket is already gone)."""
        if self.closed:
            return
        logger.debug("fault proxy reset link=%s id=%d reason=%s", self.link.name, self.id,
                     reason)
        self.link.resets += 1
        self.closed = True
        for transport in (self.client, self.target):
            if rst:
                _abort_with_rst(transport)
            elif transport is not None:
                transport.abort()
        self._finish()

    def _finish(self) -> None:
        self.closed = True
        if self._reset_timer is not None:
            self._reset_timer.cancel()
            self._reset_timer = None
        task = self._connect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self.up.close()
        self.down.close()
        self.link.connections.discard(self)
