"""The endpoint router: one listening address per endpoint, each new client connection
routed to an instance and then relayed byte for byte.

It reads only the client's first message, which the PostgreSQL protocol makes small and
self-describing:
- a **CancelRequest** (16 bytes) carries the key of the session to cancel. The router does
  not see the keys (they travel inside the session, possibly under TLS), so it sends the
  request to every instance of the cluster; the one that issued the key acts on it, the
  others find no such key and ignore it, as PostgreSQL's postmaster does;
- an **SSLRequest**, a **GSSENCRequest** or a **StartupMessage** opens a session: the
  router picks an instance for the endpoint (``Endpoint.choose``), connects, forwards the
  message and relays both directions until either side closes. TLS, when the client asks
  for it, is negotiated with the instance itself, end to end: the router never holds a
  certificate or sees a password.

When an endpoint has no instance to offer (the writer endpoint during a failover), the new
connection is **held**, not refused: the router looks again every ``HOLD_POLL_S`` until
``hold_s`` passes, then closes it. Where instances are comes from a ``Topology``
(``typing.Protocol``): the control plane's view in a cluster, a static one in tests.

Reader endpoints balance by least connections (the connections this router relays to each
instance now), falling back to the writer when no reader is healthy.

The set of endpoints can change while the router runs (``Router.apply``): a new endpoint
starts listening, a removed one stops (its connections go on until they end), one whose
address changed listens again on the new address, and one whose definition changed (a
custom endpoint's members) routes new connections, and held ones, by the new definition.
A held connection whose client goes away is dropped at once, not kept until ``hold_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from borealis.metrics import Labels, Metrics

log = logging.getLogger(__name__)

FIRST_MESSAGE_BYTES_MAX = 10_004
"""PostgreSQL's limit on a startup packet (MAX_STARTUP_PACKET_LENGTH + the length word)."""
FIRST_MESSAGE_TIMEOUT_S = 10.0
HOLD_S_DEFAULT = 30.0
HOLD_POLL_S = 0.05
CONNECT_TIMEOUT_S = 5.0
RELAY_CHUNK_BYTES = 256 * 1024

CANCEL_REQUEST_CODE = 80877102
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104


class EndpointKind(enum.Enum):
    WRITER = "writer"      # the cluster endpoint: the current writer
    READER = "reader"      # the healthy readers, least connections; the writer if none
    ANY = "any"            # custom: its members, readers or the writer
    CUSTOM_READER = "custom-reader"  # custom: its members that are readers
    INSTANCE = "instance"  # one instance


@dataclass(frozen=True, slots=True)
class Member:
    instance_id: str
    address: tuple[str, int]   # where the instance serves PostgreSQL
    role: str                  # "writer" or "reader"
    healthy: bool = True


class Topology(Protocol):
    """Where the cluster's instances are now."""

    def members(self) -> list[Member]: ...


@dataclass
class StaticTopology:
    """A topology set by hand (tests; a cluster without a control plane)."""

    current: list[Member] = field(default_factory=list)

    def members(self) -> list[Member]:
        return list(self.current)


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: EndpointKind
    static_members: frozenset[str] = frozenset()   # custom endpoints: instance ids
    excluded_members: frozenset[str] = frozenset()  # custom endpoints: all but these

    def eligible(self, members: list[Member]) -> list[Member]:
        healthy = [m for m in members if m.healthy]
        if self.kind is EndpointKind.WRITER:
            return [m for m in healthy if m.role == "writer"]
        if self.kind is EndpointKind.READER:
            readers = [m for m in healthy if m.role == "reader"]
            return readers or [m for m in healthy if m.role == "writer"]
        if self.kind is EndpointKind.INSTANCE:
            return [m for m in healthy if m.instance_id in self.static_members]
        chosen = [m for m in healthy
                  if (not self.static_members or m.instance_id in self.static_members)
                  and m.instance_id not in self.excluded_members]
        if self.kind is EndpointKind.CUSTOM_READER:
            chosen = [m for m in chosen if m.role == "reader"]
        return chosen

    def choose(self, members: list[Member], load: Counter[str]) -> Member | None:
        """The instance for a new connection: the eligible one with the fewest connections
        (ties: the lowest id), or None."""
        eligible = self.eligible(members)
        if not eligible:
            return None
        return min(eligible, key=lambda m: (load[m.instance_id], m.instance_id))


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """An endpoint and the address it should listen on (port 0: any free one)."""

    endpoint: Endpoint
    host: str
    port: int

    def __post_init__(self) -> None:
        assert self.endpoint.name, "an endpoint has a name"
        assert 0 <= self.port < 65536, f"port {self.port} out of range"


@dataclass
class _Listener:
    spec: EndpointSpec
    server: asyncio.AbstractServer
    address: tuple[str, int]   # as bound


class Router:
    """Serves a set of endpoints over one topology."""

    def __init__(self, topology: Topology, *, hold_s: float = HOLD_S_DEFAULT) -> None:
        assert hold_s >= 0
        self.topology = topology
        self.hold_s = hold_s
        self.load: Counter[str] = Counter()    # connections relayed per instance, now
        self.routed: Counter[str] = Counter()  # connections routed per instance, ever
        self.open: Counter[str] = Counter()    # client connections per endpoint, now
        self.held = 0                  # connections waiting for an instance, now
        self.held_timed_out = 0        # connections given up on after ``hold_s``, ever
        self.held_abandoned = 0        # connections whose client left while held, ever
        self._listeners: dict[str, _Listener] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._apply_lock = asyncio.Lock()

    # --- the endpoint set -------------------------------------------------------------

    def addresses(self) -> dict[str, tuple[str, int]]:
        """Every endpoint listening now and its bound address."""
        return {name: listener.address for name, listener in self._listeners.items()}

    async def serve(self, endpoint: Endpoint, host: str, port: int) -> tuple[str, int]:
        """Listen for ``endpoint`` on host:port (replacing its listener if it has one);
        the address bound. Raises OSError when the address cannot be bound."""
        spec = EndpointSpec(endpoint, host, port)
        self.close_endpoint(endpoint.name)
        name = endpoint.name
        server = await asyncio.start_server(
            lambda r, w: self._accept(name, endpoint, r, w), host, port)
        bound = server.sockets[0].getsockname()
        self._listeners[name] = _Listener(spec, server, (bound[0], bound[1]))
        log.info("endpoint serving name=%s kind=%s address=%s:%d", name,
                 endpoint.kind.value, bound[0], bound[1])
        return bound[0], bound[1]

    def close_endpoint(self, name: str) -> bool:
        """Stop listening for endpoint ``name``; whether it was listening. Connections made
        through it go on until they end."""
        listener = self._listeners.pop(name, None)
        if listener is None:
            return False
        # Not ``wait_closed``: from Python 3.12 it waits for every connection to end.
        listener.server.close()
        log.info("endpoint closed name=%s address=%s:%d", name, *listener.address)
        return True

    async def apply(self, specs: list[EndpointSpec]) -> dict[str, OSError]:
        """Make the endpoints served exactly ``specs``: close the ones not in it or whose
        address changed, then listen for the new ones and those; an endpoint whose address
        is unchanged keeps its listener and takes the new definition. Returns the
        endpoints that could not listen, with why; ``apply`` again to retry them."""
        names = [spec.endpoint.name for spec in specs]
        assert len(names) == len(set(names)), f"endpoint names repeat: {names}"
        wanted = {spec.endpoint.name: spec for spec in specs}
        failed: dict[str, OSError] = {}
        async with self._apply_lock:
            # Every close before any open: two endpoints may swap addresses.
            for name, listener in list(self._listeners.items()):
                spec = wanted.get(name)
                if spec is None or (spec.host, spec.port) != (listener.spec.host,
                                                              listener.spec.port):
                    self.close_endpoint(name)
                elif spec != listener.spec:
                    listener.spec = spec
                    log.info("endpoint changed name=%s kind=%s", name, spec.endpoint.kind.value)
            for name, spec in wanted.items():
                if name in self._listeners:
                    continue
                try:
                    await self.serve(spec.endpoint, spec.host, spec.port)
                except OSError as exc:
                    failed[name] = exc
        assert set(self._listeners) <= set(wanted)
        assert set(self._listeners) | set(failed) == set(wanted)
        return failed

    async def close(self) -> None:
        for name in list(self._listeners):
            self.close_endpoint(name)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _current(self, endpoint: Endpoint) -> Endpoint:
        """The endpoint's definition now: a custom endpoint's members may have changed
        since a connection came in; a removed endpoint keeps the one it had."""
        listener = self._listeners.get(endpoint.name)
        return endpoint if listener is None else listener.spec.endpoint

    def register_metrics(self, metrics: Metrics) -> None:
        """The router's connection families (``borealis_router_*``), read at scrape time."""
        p = "borealis_router_"

        def per_endpoint() -> list[tuple[Labels, int]]:
            names = sorted(set(self._listeners) | set(self.open))
            return [({"endpoint": name}, self.open[name]) for name in names]

        def per_instance(counts: Counter[str]) -> list[tuple[Labels, int]]:
            ids = sorted({m.instance_id for m in self.topology.members()} | set(counts))
            return [({"instance": i}, counts[i]) for i in ids]

        metrics.gauge(p + "endpoints", "Endpoints listening", lambda: len(self._listeners))
        metrics.gauge(p + "endpoint_connections_open",
                      "Client connections open, per endpoint (relayed, held or starting)",
                      per_endpoint)
        metrics.gauge(p + "instance_connections_open",
                      "Connections relayed to each instance now", lambda: per_instance(self.load))
        metrics.counter(p + "connections_routed_total", "Connections routed to each instance",
                        lambda: per_instance(self.routed))
        metrics.gauge(p + "connections_held", "Connections waiting for an instance now",
                      lambda: self.held)
        metrics.counter(p + "held_timed_out_total",
                        "Held connections refused (57P03) after waiting hold_s",
                        lambda: self.held_timed_out)
        metrics.counter(p + "held_abandoned_total",
                        "Held connections whose client went away while waiting",
                        lambda: self.held_abandoned)

    # --- connections ------------------------------------------------------------------

    async def _accept(self, name: str, endpoint: Endpoint, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open[name] += 1
        try:
            await self._session(self._current(endpoint), reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            log.debug("endpoint connection ended endpoint=%s: %s", name, exc)
        except asyncio.CancelledError:
            # The router is closing. The handler ends normally: asyncio's stream server
            # would log a cancelled handler task as an error.
            pass
        finally:
            self.open[name] -= 1
            if self.open[name] == 0 and name not in self._listeners:
                del self.open[name]
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _session(self, endpoint: Endpoint, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        first = await asyncio.wait_for(_first_message(reader), FIRST_MESSAGE_TIMEOUT_S)
        if first is None:
            return
        code = struct.unpack(">i", first[4:8])[0] if len(first) >= 8 else 0
        if code == CANCEL_REQUEST_CODE and len(first) == 16:
            await self._broadcast_cancel(first)
            return
        member = await self._pick(endpoint, reader, writer)
        if member is None:
            if _client_gone(reader, writer):
                return
            writer.write(_fatal("57P03", f"endpoint {endpoint.name}: no instance is "
                                         "available (the cluster may be failing over)"))
            await writer.drain()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(*member.address), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            log.info("endpoint %s: connecting to %s failed: %s", endpoint.name,
                     member.instance_id, exc)
            writer.write(_fatal("08006", f"endpoint {endpoint.name}: instance "
                                         f"{member.instance_id} is unreachable"))
            await writer.drain()
            return
        self.load[member.instance_id] += 1
        self.routed[member.instance_id] += 1
        try:
            upstream_writer.write(first)
            await upstream_writer.drain()
            await _relay(reader, writer, upstream_reader, upstream_writer)
        finally:
            self.load[member.instance_id] -= 1
            upstream_writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await upstream_writer.wait_closed()

    async def _pick(self, endpoint: Endpoint, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> Member | None:
        """An instance for the endpoint, waiting up to ``hold_s`` for one to appear; None
        when none did, or when the client went away meanwhile (a client that gives up on a
        held connection must not cost an instance connection ``hold_s`` later)."""
        member = self._current(endpoint).choose(self.topology.members(), self.load)
        if member is not None:
            return member
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hold_s
        self.held += 1
        try:
            while True:
                if _client_gone(reader, writer):
                    self.held_abandoned += 1
                    log.debug("held connection abandoned by its client endpoint=%s",
                              endpoint.name)
                    return None
                if loop.time() >= deadline:
                    self.held_timed_out += 1
                    log.info("held connection timed out endpoint=%s hold_s=%s",
                             endpoint.name, self.hold_s)
                    return None
                await asyncio.sleep(HOLD_POLL_S)
                member = self._current(endpoint).choose(self.topology.members(), self.load)
                if member is not None:
                    return member
        finally:
            self.held -= 1

    async def _broadcast_cancel(self, request: bytes) -> None:
        async def send(member: Member) -> None:
            with contextlib.suppress(OSError, TimeoutError):
                _, w = await asyncio.wait_for(asyncio.open_connection(*member.address),
                                              CONNECT_TIMEOUT_S)
                w.write(request)
                await w.drain()
                w.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await w.wait_closed()

        await asyncio.gather(*(send(m) for m in self.topology.members()))


def _client_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """The client closed or reset its connection. A client waits for the server's answer
    to its first message and sends nothing meanwhile, so the stream is otherwise quiet; a
    client that sent more keeps its bytes buffered for the instance."""
    return reader.at_eof() or reader.exception() is not None or writer.is_closing()


async def _first_message(reader: asyncio.StreamReader) -> bytes | None:
    """The client's first message, whole: a length word and that many bytes in all."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError:
        return None
    (length,) = struct.unpack(">i", head)
    if not 8 <= length <= FIRST_MESSAGE_BYTES_MAX:
        return None  # not a PostgreSQL client: closed without a word, as PostgreSQL does
    return head + await reader.readexactly(length - 4)


async def _relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                 upstream_reader: asyncio.StreamReader,
                 upstream_writer: asyncio.StreamWriter) -> None:
    """Copy both ways until either side closes."""
    async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(RELAY_CHUNK_BYTES):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if sink.can_write_eof():
                sink.write_eof()

    tasks = [asyncio.create_task(pump(client_reader, upstream_writer)),
             asyncio.create_task(pump(upstream_reader, client_writer))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _fatal(code: str, message: str) -> bytes:
    """A FATAL ErrorResponse (the client has not started its session yet)."""
    fields = (b"SFATAL\x00VFATAL\x00C" + code.encode() + b"\x00M"
              + message.replace("\x00", "").encode() + b"\x00\x00")
    return b"E" + struct.pack(">i", 4 + len(fields)) + fields
