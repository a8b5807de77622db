"""The endpoint router against fake instances (loopback servers that record what they get
and answer with their name): routing per endpoint kind, least connections, the fallback to
the writer, holding a connection through a failover, cancel requests sent to every
instance, and a client that is not speaking PostgreSQL."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from borealis.router.proxy import (
    CANCEL_REQUEST_CODE,
    SSL_REQUEST_CODE,
    Endpoint,
    EndpointKind,
    Member,
    Router,
    StaticTopology,
)

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
