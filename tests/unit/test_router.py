"""The endpoint router against fake instances (loopback servers that record what they get
and answer with their name): routing per endpoint kind, least connections, the fallback to
the writer, holding a connection through a failover, cancel requests sent to every
instance, and a client that is not speaking PostgreSQL. Then the endpoint set changing
while the router runs (``Router.apply``), a held connection whose client leaves, the
router's metrics, the control plane's topology document and the follower that long-polls
for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from borealis.errors import ConfigError, ProtocolError
from borealis.http import HttpError, HttpServer, Request, Response
from borealis.metrics import Metrics
from borealis.router.control_client import ControlUrl, TopologyFollower
from borealis.router.proxy import (
    CANCEL_REQUEST_CODE,
    SSL_REQUEST_CODE,
    Endpoint,
    EndpointKind,
    EndpointSpec,
    Member,
    Router,
    StaticTopology,
)
from borealis.router.topology import TopologySnapshot, parse_topology

_PARAMETERS = b"user\x00x\x00\x00"
STARTUP = struct.pack(">ii", 8 + len(_PARAMETERS), 196608) + _PARAMETERS


class FakeInstance:
    """Answers every connection with its name, then echoes what it receives."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.first_messages: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None
        self.address: tuple[str, int] = ("", 0)

    async def start(self) -> FakeInstance:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readexactly(4)
        (length,) = struct.unpack(">i", head)
        self.first_messages.append(head + await reader.readexactly(length - 4))
        writer.write(self.name.encode() + b"\n")
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def member(self, role: str, healthy: bool = True) -> Member:
        return Member(self.name, self.address, role, healthy)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()


def run(body: Callable[..., Awaitable[Any]], *names: str) -> Any:
    async def main() -> Any:
        instances = [await FakeInstance(n).start() for n in names]
        try:
            return await asyncio.wait_for(body(*instances), 20)
        finally:
            for instance in instances:
                await instance.close()

    return asyncio.run(main())


async def connect(address: tuple[str, int], first: bytes = STARTUP
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(first)
    await writer.drain()
    return reader, writer, await reader.readline()


def test_each_endpoint_kind_routes_to_its_instances() -> None:
    async def body(w: FakeInstance, r1: FakeInstance, r2: FakeInstance) -> None:
        topology = StaticTopology([w.member("writer"), r1.member("reader"),
                                   r2.member("reader")])
        router = Router(topology)
        writer_ep = await router.serve(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
        reader_ep = await router.serve(Endpoint("ro", EndpointKind.READER), "127.0.0.1", 0)
        custom_ep = await router.serve(
            Endpoint("only-r2", EndpointKind.ANY, static_members=frozenset({"r2"})),
            "127.0.0.1", 0)
        excluded = await router.serve(
            Endpoint("not-r1", EndpointKind.CUSTOM_READER,
                     excluded_members=frozenset({"r1"})), "127.0.0.1", 0)
        _, cw, name = await connect(writer_ep)
        assert name == b"w\n"
        assert w.first_messages == [STARTUP]  # the startup message went through unchanged
        held = []
        for _ in range(4):  # least connections: two each, while all four stay open
            _, rw, name = await connect(reader_ep)
            held.append((rw, name))
        assert sorted(n for _, n in held) == [b"r1\n", b"r1\n", b"r2\n", b"r2\n"]
        for _ in range(2):
            assert (await connect(custom_ep))[2] == b"r2\n"
            assert (await connect(excluded))[2] == b"r2\n"
        reader, writer, _ = await connect(writer_ep)
        writer.write(b"ping")
        await writer.drain()
        assert await reader.readexactly(4) == b"ping"  # bytes relayed both ways
        for rw, _ in held:
            rw.close()
        cw.close()
        writer.close()
        await router.close()

    run(body, "w", "r1", "r2")


def test_the_reader_endpoint_falls_back_to_the_writer() -> None:
    async def body(w: FakeInstance, r1: FakeInstance) -> None:
        topology = StaticTopology([w.member("writer"), r1.member("reader", healthy=False)])
        router = Router(topology)
        address = await router.serve(Endpoint("ro", EndpointKind.READER), "127.0.0.1", 0)
        assert (await connect(address))[2] == b"w\n"
        await router.close()

    run(body, "w", "r1")


def test_a_new_connection_is_held_through_a_failover() -> None:
    async def body(old: FakeInstance, new: FakeInstance) -> None:
        topology = StaticTopology([old.member("writer", healthy=False),
                                   new.member("reader")])
        router = Router(topology, hold_s=5.0)
        address = await router.serve(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
        pending = asyncio.create_task(connect(address))
        await asyncio.sleep(0.3)
        assert not pending.done()  # held, not refused
        topology.current = [old.member("reader", healthy=False), new.member("writer")]
        _, writer, name = await asyncio.wait_for(pending, 5)
        assert name == b"new\n"
        writer.close()
        await router.close()

    run(body, "old", "new")


def test_a_held_connection_gives_up_with_57p03() -> None:
    async def body(r1: FakeInstance) -> None:
        router = Router(StaticTopology([r1.member("reader")]), hold_s=0.2)
        address = await router.serve(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(STARTUP)
        await writer.drain()
        reply = await reader.read(1024)
        assert reply[:1] == b"E" and b"57P03" in reply
        writer.close()
        await router.close()

    run(body, "r1")


def test_an_ssl_request_goes_to_the_instance_and_a_cancel_to_every_instance() -> None:
    async def body(w: FakeInstance, r1: FakeInstance) -> None:
        router = Router(StaticTopology([w.member("writer"), r1.member("reader")]))
        address = await router.serve(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
        ssl_request = struct.pack(">ii", 8, SSL_REQUEST_CODE)
        assert (await connect(address, ssl_request))[2] == b"w\n"
        assert w.first_messages == [ssl_request]  # TLS is negotiated with the instance
        cancel = struct.pack(">iiii", 16, CANCEL_REQUEST_CODE, 1234, 5678)
        _, writer = await asyncio.open_connection(*address)
        writer.write(cancel)
        await writer.drain()
        for _ in range(100):
            if cancel in w.first_messages and cancel in r1.first_messages:
                break
            await asyncio.sleep(0.02)
        assert cancel in w.first_messages and cancel in r1.first_messages
        writer.close()
        await router.close()

    run(body, "w", "r1")


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", struct.pack(">i", 3),
                                     struct.pack(">i", 2**30) + b"x"])
def test_a_client_not_speaking_postgresql_is_closed(garbage: bytes) -> None:
    async def body(w: FakeInstance) -> None:
        router = Router(StaticTopology([w.member("writer")]))
        address = await router.serve(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*address)
        writer.write(garbage)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(1024), 5) == b""
        assert w.first_messages == []
        writer.close()
        await router.close()

    run(body, "w")


# --- the endpoint set changing while the router runs --------------------------------------


async def refused(address: tuple[str, int]) -> bool:
    try:
        _, writer = await asyncio.open_connection(*address)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


def test_apply_opens_closes_and_redefines_endpoints() -> None:
    async def body(w: FakeInstance, r1: FakeInstance, r2: FakeInstance) -> None:
        router = Router(StaticTopology([w.member("writer"), r1.member("reader"),
                                        r2.member("reader")]))
        cluster = EndpointSpec(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
        custom = EndpointSpec(Endpoint("custom", EndpointKind.ANY,
                                       static_members=frozenset({"r1"})), "127.0.0.1", 0)
        assert await router.apply([cluster, custom]) == {}
        addresses = router.addresses()
        assert set(addresses) == {"cluster", "custom"}
        assert (await connect(addresses["custom"]))[2] == b"r1\n"
        # A connection through "custom" stays up after the endpoint is removed.
        kept_reader, kept_writer, _ = await connect(addresses["custom"])

        # New members, same address: the listener stays, new connections follow the
        # new definition.
        redefined = EndpointSpec(Endpoint("custom", EndpointKind.ANY,
                                          static_members=frozenset({"r2"})), "127.0.0.1", 0)
        assert await router.apply([cluster, redefined]) == {}
        assert router.addresses()["custom"] == addresses["custom"]
        assert (await connect(addresses["custom"]))[2] == b"r2\n"

        # Removed: refused; the connection made before goes on relaying.
        assert await router.apply([cluster]) == {}
        assert set(router.addresses()) == {"cluster"}
        assert await refused(addresses["custom"])
        kept_writer.write(b"still")
        await kept_writer.drain()
        assert await kept_reader.readexactly(5) == b"still"
        kept_writer.close()

        # A new port: the old address is refused, the new one serves.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = probe.getsockname()[1]
        moved = EndpointSpec(cluster.endpoint, "127.0.0.1", free_port)
        assert await router.apply([moved]) == {}
        assert router.addresses()["cluster"] == ("127.0.0.1", free_port)
        assert await refused(addresses["cluster"])
        assert (await connect(("127.0.0.1", free_port)))[2] == b"w\n"
        await router.close()

    run(body, "w", "r1", "r2")


def test_apply_reports_an_endpoint_that_cannot_listen_and_serves_the_others() -> None:
    async def body(w: FakeInstance) -> None:
        router = Router(StaticTopology([w.member("writer")]))
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        specs = [EndpointSpec(Endpoint("blocked", EndpointKind.WRITER), "127.0.0.1", port),
                 EndpointSpec(Endpoint("open", EndpointKind.WRITER), "127.0.0.1", 0)]
        failed = await router.apply(specs)
        assert set(failed) == {"blocked"}
        assert isinstance(failed["blocked"], OSError)
        assert set(router.addresses()) == {"open"}
        assert (await connect(router.addresses()["open"]))[2] == b"w\n"
        taken.close()
        assert await router.apply(specs) == {}  # retried: it listens now
        assert router.addresses()["blocked"] == ("127.0.0.1", port)
        await router.close()

    run(body, "w")


def test_two_endpoints_can_swap_addresses() -> None:
    async def body(w: FakeInstance, r1: FakeInstance) -> None:
        router = Router(StaticTopology([w.member("writer"), r1.member("reader")]))
        writer_ep = Endpoint("writer", EndpointKind.WRITER)
        reader_ep = Endpoint("reader", EndpointKind.CUSTOM_READER)
        ports = []
        for _ in range(2):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                ports.append(probe.getsockname()[1])
        a, b = ports
        assert await router.apply([EndpointSpec(writer_ep, "127.0.0.1", a),
                                   EndpointSpec(reader_ep, "127.0.0.1", b)]) == {}
        assert (await connect(("127.0.0.1", a)))[2] == b"w\n"
        assert await router.apply([EndpointSpec(writer_ep, "127.0.0.1", b),
                                   EndpointSpec(reader_ep, "127.0.0.1", a)]) == {}
        assert (await connect(("127.0.0.1", a)))[2] == b"r1\n"
        assert (await connect(("127.0.0.1", b)))[2] == b"w\n"
        await router.close()

    run(body, "w", "r1")


def test_a_held_connection_whose_client_leaves_is_dropped_at_once() -> None:
    async def body(w: FakeInstance) -> None:
        topology = StaticTopology([w.member("writer", healthy=False)])
        router = Router(topology, hold_s=10.0)
        address = await router.serve(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
        _, writer = await asyncio.open_connection(*address)
        writer.write(STARTUP)
        await writer.drain()
        for _ in range(100):
            if router.held == 1:
                break
            await asyncio.sleep(0.02)
        assert router.held == 1
        assert router.open["cluster"] == 1
        writer.close()  # the client gives up
        for _ in range(100):
            if router.held == 0 and router.open["cluster"] == 0:
                break
            await asyncio.sleep(0.02)
        assert (router.held, router.held_abandoned, router.open["cluster"]) == (0, 1, 0)
        # The writer comes back: the dead client must not cost it a connection.
        topology.current = [w.member("writer")]
        await asyncio.sleep(0.3)
        assert w.first_messages == []
        assert router.held_timed_out == 0
        await router.close()

    run(body, "w")


def test_a_held_connection_follows_its_endpoints_new_definition() -> None:
    async def body(r1: FakeInstance, r2: FakeInstance) -> None:
        topology = StaticTopology([r1.member("reader"), r2.member("reader", healthy=False)])
        router = Router(topology, hold_s=5.0)
        only_r2 = Endpoint("custom", EndpointKind.ANY, static_members=frozenset({"r2"}))
        assert await router.apply([EndpointSpec(only_r2, "127.0.0.1", 0)]) == {}
        pending = asyncio.create_task(connect(router.addresses()["custom"]))
        await asyncio.sleep(0.2)
        assert not pending.done()
        only_r1 = Endpoint("custom", EndpointKind.ANY, static_members=frozenset({"r1"}))
        assert await router.apply([EndpointSpec(only_r1, "127.0.0.1", 0)]) == {}
        assert (await asyncio.wait_for(pending, 5))[2] == b"r1\n"
        await router.close()

    run(body, "r1", "r2")


def test_router_metrics_count_connections_per_endpoint_and_instance() -> None:
    async def body(w: FakeInstance, r1: FakeInstance) -> None:
        router = Router(StaticTopology([w.member("writer"), r1.member("reader")]),
                        hold_s=0.1)
        metrics = Metrics()
        router.register_metrics(metrics)
        assert await router.apply([
            EndpointSpec(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0),
            EndpointSpec(Endpoint("nobody", EndpointKind.INSTANCE,
                                  static_members=frozenset({"gone"})), "127.0.0.1", 0),
        ]) == {}
        kept = [await connect(router.addresses()["cluster"]) for _ in range(2)]
        reader, writer = await asyncio.open_connection(*router.addresses()["nobody"])
        writer.write(STARTUP)
        assert b"57P03" in await reader.read(1024)  # held 0.1 s, then refused
        text = metrics.render()
        assert 'borealis_router_endpoint_connections_open{endpoint="cluster"} 2' in text
        assert 'borealis_router_instance_connections_open{instance="w"} 2' in text
        assert 'borealis_router_instance_connections_open{instance="r1"} 0' in text
        assert 'borealis_router_connections_routed_total{instance="w"} 2' in text
        assert "borealis_router_held_timed_out_total 1" in text
        assert "borealis_router_connections_held 0" in text
        assert "borealis_router_endpoints 2" in text
        for _, w_, _ in kept:
            w_.close()
        await router.close()

    run(body, "w", "r1")


# --- the control plane's topology document ------------------------------------------------

TOPOLOGY = {
    "revision": 3,
    "instances": [
        {"id": "i1", "role": "writer", "healthy": True, "pg_address": "127.0.0.1:5433",
         "az": "az1"},
        {"id": "i2", "role": "reader", "healthy": False, "pg_address": "127.0.0.1:5434",
         "az": "az2"},
        {"id": "i3", "role": "reader", "healthy": True, "pg_address": None, "az": "az3"},
    ],
    "endpoints": [
        {"name": "writer", "kind": "writer", "host": "127.0.0.1", "port": 5432,
         "members": [], "excluded": []},
        {"name": "analytics", "kind": "custom-reader", "host": "127.0.0.1", "port": 5440,
         "members": ["i2"], "excluded": ["i1"]},
        {"name": "i1", "kind": "instance", "host": "0.0.0.0", "port": 0, "members": ["i1"]},
    ],
}


def test_a_topology_document_is_parsed_into_members_and_endpoint_specs() -> None:
    snapshot = parse_topology(TOPOLOGY)
    assert snapshot.revision == 3
    assert snapshot.members == (Member("i1", ("127.0.0.1", 5433), "writer", True),
                                Member("i2", ("127.0.0.1", 5434), "reader", False))
    assert [s.endpoint.name for s in snapshot.endpoints] == ["writer", "analytics", "i1"]
    analytics = snapshot.endpoints[1]
    assert analytics == EndpointSpec(
        Endpoint("analytics", EndpointKind.CUSTOM_READER, frozenset({"i2"}),
                 frozenset({"i1"})), "127.0.0.1", 5440)
    assert snapshot.endpoints[2].endpoint.kind is EndpointKind.INSTANCE


def _broken(path: str, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(TOPOLOGY))
    *parents, last = path.split(".")
    target: Any = doc
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is _DROP:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return doc


_DROP = object()


@pytest.mark.parametrize(("path", "value"), [
    ("revision", -1), ("revision", "3"), ("revision", _DROP), ("instances", {}),
    ("instances.0.role", "primary"), ("instances.0.id", ""),
    ("instances.1.id", "i1"), ("instances.0.pg_address", "localhost"),
    ("instances.0.healthy", "yes"), ("endpoints.0.kind", "primary"),
    ("endpoints.0.port", 70000), ("endpoints.0.port", "5432"), ("endpoints.0.host", ""),
    ("endpoints.1.name", "writer"), ("endpoints.1.members", "i2"),
    ("endpoints.2.members", ["i1", "i2"]),
])
def test_an_invalid_topology_document_is_refused_whole(path: str, value: Any) -> None:
    with pytest.raises(ProtocolError):
        parse_topology(_broken(path, value))


def test_parse_topology_refuses_what_is_not_an_object() -> None:
    with pytest.raises(ProtocolError):
        parse_topology([TOPOLOGY])


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "https://h:1", "http://h", "http://h:x",
                                 "http://h:1/?a=b"])
def test_a_control_url_must_be_http_host_port(url: str) -> None:
    with pytest.raises(ConfigError):
        ControlUrl.parse(url)


def test_a_control_url_may_carry_a_path_prefix() -> None:
    assert ControlUrl.parse("http://127.0.0.1:8080/") == ControlUrl("127.0.0.1", 8080, "")
    assert ControlUrl.parse("http://[::1]:80/api/") == ControlUrl("::1", 80, "/api")


# --- following the control plane ----------------------------------------------------------


class FakeControlPlane:
    """``GET /v1/topology`` with the control plane's long-poll semantics."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"revision": 1, "instances": [], "endpoints": []}
        self.changed = asyncio.Condition()
        self.requests: list[dict[str, str]] = []
        self.server = HttpServer(self.handle, name="fake control plane")
        self.address: tuple[str, int] = ("", 0)

    async def handle(self, request: Request) -> Response:
        if request.path != "/v1/topology":
            raise HttpError(404, "no such path")
        self.requests.append(request.query)
        after = int(request.query["after"])
        wait_s = float(request.query["wait"])
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: self.doc["revision"] > after), wait_s)
        return Response.json(self.doc)

    async def publish(self, **changes: Any) -> None:
        async with self.changed:
            self.doc = {**self.doc, **changes, "revision": self.doc["revision"] + 1}
            self.changed.notify_all()

    async def start(self, port: int = 0) -> FakeControlPlane:
        self.address = await self.server.start("127.0.0.1", port)
        return self

    async def stop(self) -> None:
        await self.server.close()
        self.server = HttpServer(self.handle, name="fake control plane")


def test_the_follower_applies_each_revision_and_rides_out_an_outage(
        caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        plane = await FakeControlPlane().start()
        applied: list[int] = []

        async def on_topology(snapshot: TopologySnapshot) -> None:
            applied.append(snapshot.revision)

        url = ControlUrl(*plane.address)
        follower = TopologyFollower(url, on_topology, wait_s=5.0)
        task = asyncio.create_task(follower.run())

        async def until(check: Callable[[], bool]) -> None:
            for _ in range(250):
                if check():
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("condition not reached")

        await until(lambda: applied == [1])
        assert plane.requests[0] == {"after": "0", "wait": "0"}  # the first asks at once
        await plane.publish(instances=[TOPOLOGY["instances"][0]])
        await until(lambda: applied == [1, 2])
        assert follower.reachable and follower.revision == 2
        assert plane.requests[-1] == {"after": "2", "wait": "5"}  # now a long poll

        with caplog.at_level(logging.INFO, logger="borealis.router.control_client"):
            await plane.stop()
            await until(lambda: not follower.reachable)
            await asyncio.sleep(0.8)  # several retries, one log line
            # It comes back from a fresh store: its revision is behind the router's, and
            # the router asks without waiting, so it learns that at once.
            seen = len(plane.requests)
            plane.doc = {"revision": 1, "instances": [], "endpoints": []}
            await plane.start(plane.address[1])
            started = asyncio.get_running_loop().time()
            await until(lambda: applied == [1, 2, 1])
            assert asyncio.get_running_loop().time() - started < 2.5  # not after wait_s
            assert plane.requests[seen] == {"after": "2", "wait": "0"}
            await plane.publish()
            await until(lambda: applied == [1, 2, 1, 2])
        assert follower.reachable
        lines = [r.getMessage() for r in caplog.records]
        assert sum("unreachable" in line for line in lines) == 1, lines
        assert sum("reachable again" in line for line in lines) == 1, lines
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plane.stop()

    asyncio.run(asyncio.wait_for(body(), 20))
