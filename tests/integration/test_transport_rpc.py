"""RPC over real TCP on loopback: pipelining, typed errors, and peers that break the protocol.

Every test runs on both the asyncio and the uvloop event loop: their transports differ in
detail (pseudo-sockets, read sizes, flow control), and production runs on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import msgpack
import pytest
import uvloop

from borealis.errors import (
    BorealisError,
    NotCaughtUpError,
    StaleEpochError,
    TransportError,
)
from borealis.transport.frames import encode_frame
from borealis.transport.rpc import RpcClient, RpcServer, connect

TEST_TIMEOUT_S = 20.0
RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run_async(request: pytest.FixtureRequest) -> RunAsync:
    loop_factory = asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop

    def run(main: Coroutine[Any, Any, Any]) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(main, TEST_TIMEOUT_S)

        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(bounded())

    return run


class WeirdError(BorealisError):
    """A code the client's ERROR_TYPES does not know."""

    code = "weird"


class Handler:
    """The storage node stand-in: one method per behaviour under test."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.rng = random.Random(7)

    def dispatch(self, method: str, body: Any, peer: str) -> Any:
        if method == "echo":
            return body
        if method == "async_echo":
            return self._async_echo(body)
        if method == "jitter":
            return self._jitter(body)
        if method == "peer":
            return peer
        if method == "stale":
            raise StaleEpochError(f"epoch is stale, now {body}", current_epoch=body)
        if method == "not_caught_up":
            return self._not_caught_up()
        if method == "weird":
            error = WeirdError("something odd")
            error.segment = "vol1/pg0/s3"  # type: ignore[attr-defined]
            raise error
        if method == "bug":
            raise KeyError("no such thing")
        if method == "async_bug":
            return self._async_bug()
        if method == "unencodable":
            return {"x": object()}
        if method == "block":
            return self._block(body)
        raise AssertionError(f"unknown method {method}")

    async def _async_echo(self, body: Any) -> Any:
        await asyncio.sleep(0)
        return body

    async def _jitter(self, body: Any) -> Any:
        await asyncio.sleep(self.rng.random() * 0.02)
        return body

    async def _not_caught_up(self) -> Any:
        await asyncio.sleep(0)
        raise NotCaughtUpError("SCL 10 is below read point 12")

    async def _async_bug(self) -> Any:
        await asyncio.sleep(0)
        return 1 / 0

    async def _block(self, body: Any) -> Any:
        self.started += 1
        await self.release.wait()
        return body


@contextlib.asynccontextmanager
async def serving(
    handler: Any, **options: Any
) -> AsyncIterator[tuple[RpcServer, str, int]]:
    server = RpcServer(handler, name="test-node", **options)
    host, port = await server.start("127.0.0.1", 0)
    try:
        yield server, host, port
    finally:
        await server.close(timeout_s=2.0)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


def test_echo_sync_and_async(run_async: RunAsync) -> None:
    async def main() -> None:
        async with serving(Handler()) as (server, host, port), await connect(host, port) as client:
            body = {"page": 3, "bytes": b"\x00" * 500, "text": "abc", 1: [1.5, None]}
            assert await client.call("echo", body) == body
            assert await client.call("async_echo", body) == body
            assert await client.call("peer", None) == client_peer(client)
            assert client.calls == 3
            assert server.calls == 3
            assert client.bytes_sent > 1000
            assert client.bytes_received > 1000
            assert server.bytes_received == client.bytes_sent

    run_async(main())


def client_peer(client: RpcClient) -> str:
    connection = client._connection
    assert connection is not None
    assert connection.transport is not None
    host, port = connection.transport.get_extra_info("sockname")[:2]
    return f"{host}:{port}"


def test_thousand_pipelined_calls_on_one_connection(run_async: RunAsync) -> None:
    async def main() -> None:
        async with serving(Handler()) as (server, host, port), await connect(host, port) as client:
            completed: list[int] = []

            async def one(index: int) -> None:
                method = ("echo", "async_echo", "jitter")[index % 3]
                assert await client.call(method, [index, b"r" * 100]) == [index, b"r" * 100]
                completed.append(index)

            await asyncio.gather(*(one(index) for index in range(1000)))
            assert sorted(completed) == list(range(1000))
            # Jittered handlers finish out of order: replies are matched by id, not by order.
            assert completed != sorted(completed)
            assert client.calls == 1000
            assert server.calls == 1000
            assert client.inflight == 0

    run_async(main())


def test_typed_errors_cross_the_wire(run_async: RunAsync) -> None:
    async def main() -> None:
        async with serving(Handler()) as (_, host, port), await connect(host, port) as client:
            with pytest.raises(StaleEpochError, match="epoch is stale") as stale:
                await client.call("stale", 42)
            assert stale.value.current_epoch == 42
            assert stale.value.code == "stale_epoch"

            with pytest.raises(NotCaughtUpError, match="read point 12") as lagging:
                await client.call("not_caught_up", None)
            assert lagging.value.retryable

            # An unknown code: the root type, carrying the code and details it was sent.
            with pytest.raises(BorealisError, match="something odd") as weird:
                await client.call("weird", None)
            assert type(weird.value) is BorealisError
            assert weird.value.code == "weird"
            assert weird.value.segment == "vol1/pg0/s3"  # type: ignore[attr-defined]

            assert await client.call("echo", "still serving") == "still serving"

    run_async(main())


@pytest.mark.parametrize("method", ["bug", "async_bug", "unencodable"])
def test_handler_bug_is_internal_and_the_server_keeps_serving(
    run_async: RunAsync, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with serving(Handler()) as (_, host, port), await connect(host, port) as client:
            with (
                caplog.at_level(logging.ERROR, logger="borealis.transport.rpc"),
                pytest.raises(BorealisError) as failure,
            ):
                await client.call(method, None)
            assert type(failure.value) is BorealisError
            assert failure.value.code == "internal"
            assert not failure.value.retryable
            record = next(r for r in caplog.records if "handler failed" in r.getMessage())
            assert f"method={method}" in record.getMessage()
            assert record.exc_info is not None  # the traceback is logged
            assert await client.call("echo", 1) == 1
            assert not client.closed

    run_async(main())


def length_prefixed(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


BAD_STREAMS = {
    "garbage-body": length_prefixed(b"\xc1\xc1\xc1"),
    "oversized-length": struct.pack(">I", 64 * 1024 * 1024 + 1) + b"x" * 100,
    "http-request": b"GET / HTTP/1.1\r\nHost: storage\r\n\r\n",
    "not-an-array": encode_frame({"method": "echo"}),
    "unknown-kind": encode_frame([9, 1, "echo", None]),
    "response-to-server": encode_frame([1, 1, "hello"]),
    "request-id-not-int": encode_frame([0, "one", "echo", None]),
    "method-not-str": encode_frame([0, 1, b"echo", None]),
    "short-request": encode_frame([0, 1, "echo"]),
    "valid-then-garbage": encode_frame([0, 1, "echo", "ok"]) + length_prefixed(b"\xc1"),
}


async def expect_disconnect(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before closing the connection."""
    received = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


@pytest.mark.parametrize("stream", BAD_STREAMS.values(), ids=BAD_STREAMS.keys())
def test_protocol_violation_closes_only_that_connection(
    run_async: RunAsync, stream: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with serving(Handler()) as (server, host, port), await connect(host, port) as good:
            reader, writer = await asyncio.open_connection(host, port)
            bad_peer = "{}:{}".format(*writer.get_extra_info("sockname")[:2])
            # The good client keeps calling while the bad one misbehaves.
            background = asyncio.gather(*(good.call("jitter", index) for index in range(200)))
            with caplog.at_level(logging.WARNING, logger="borealis.transport.rpc"):
                writer.write(stream)
                await writer.drain()
                await expect_disconnect(reader)
                await wait_until(lambda: server.violations == 1)
            writer.close()
            assert await background == list(range(200))
            assert await good.call("echo", "after") == "after"
            assert not good.closed
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any(f"peer={bad_peer}" in m and "reason=" in m for m in warnings), warnings
            # New connections are still accepted.
            async with await connect(host, port) as fresh:
                assert await fresh.call("echo", 2) == 2

    run_async(main())


def test_random_garbage_never_hurts_the_server(run_async: RunAsync) -> None:
    async def main() -> None:
        rng = random.Random(1234)
        async with serving(Handler()) as (server, host, port), await connect(host, port) as good:
            for _ in range(30):
                garbage = rng.randbytes(rng.randrange(1, 2000))
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(garbage)
                # The server either finds a violation or waits for the rest of a frame; after
                # our end-of-stream it must close the connection either way.
                with contextlib.suppress(ConnectionError):
                    writer.write_eof()
                await expect_disconnect(reader)
                writer.close()
                assert await good.call("echo", len(garbage)) == len(garbage)
            await wait_until(lambda: server.connection_count == 1)
            assert server.violations > 0

    run_async(main())


def test_server_close_fails_pending_calls_with_transport_error(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        server = RpcServer(handler, name="test-node")
        host, port = await server.start("127.0.0.1", 0)
        try:
            client = await connect(host, port)
            pending = asyncio.ensure_future(client.call("block", None))
            await wait_until(lambda: handler.started == 1)
        finally:
            await server.close(timeout_s=2.0)
        with pytest.raises(TransportError, match="closed by the server"):
            await pending
        await wait_until(lambda: client.closed)
        with pytest.raises(TransportError):
            await client.call("echo", 1)
        await client.close()

    run_async(main())


def test_timeout_is_a_transport_error_and_the_connection_survives(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        async with serving(handler) as (_, host, port), await connect(host, port) as client:
            with pytest.raises(TransportError, match="timed out"):
                await client.call("block", "late", timeout_s=0.05)
            assert client.inflight == 0
            handler.release.set()  # the late reply arrives and is dropped
            assert await client.call("echo", "next", timeout_s=5.0) == "next"
            assert not client.closed

    run_async(main())


def test_client_inflight_bound_applies_backpressure(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        async with serving(handler) as (_, host, port):
            client = await connect(host, port, inflight_max=4)
            calls = [asyncio.ensure_future(client.call("block", index)) for index in range(10)]
            await wait_until(lambda: handler.started == 4)
            await asyncio.sleep(0.05)
            assert handler.started == 4
            assert client.inflight == 4
            handler.release.set()
            assert await asyncio.gather(*calls) == list(range(10))
            await client.close()

    run_async(main())


def test_server_inflight_bound_stops_reading(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        async with serving(handler, inflight_max=3) as (_, host, port):
            client = await connect(host, port)
            # All ten requests leave in one write, so they arrive in one chunk: the bound must
            # hold inside a chunk too.
            calls = [asyncio.ensure_future(client.call("block", index)) for index in range(10)]
            await wait_until(lambda: handler.started == 3)
            more = [asyncio.ensure_future(client.call("block", index)) for index in range(10, 15)]
            await asyncio.sleep(0.05)
            assert handler.started == 3
            handler.release.set()
            assert await asyncio.gather(*calls, *more) == list(range(15))
            await client.close()

    run_async(main())


def test_connect_refused_is_a_transport_error(run_async: RunAsync) -> None:
    async def main() -> None:
        async with serving(Handler()) as (_, host, port):
            pass
        with pytest.raises(TransportError, match="cannot connect"):
            await connect(host, port, timeout_s=2.0)

    run_async(main())


@pytest.mark.parametrize(
    "reply",
    [
        length_prefixed(b"\xc1"),
        encode_frame([0, 1, "echo", None]),  # a request sent to a client
        encode_frame([2, 1, "code", "message", "details-not-a-dict"]),
    ],
    ids=["garbage", "request-to-client", "malformed-error"],
)
def test_client_disconnects_a_server_that_breaks_the_protocol(
    run_async: RunAsync, reply: bytes
) -> None:
    async def main() -> None:
        async def bad_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(4)
            writer.write(reply)
            await writer.drain()
            await reader.read()  # until the client disconnects
            writer.close()

        server = await asyncio.start_server(bad_server, "127.0.0.1", 0)
        try:
            host, port = server.sockets[0].getsockname()[:2]
            client = await connect(host, port)
            with pytest.raises(TransportError, match="broke the protocol"):
                await client.call("echo", None, timeout_s=5.0)
            assert client.closed
            await client.close()
        finally:
            server.close()
            await server.wait_closed()

    run_async(main())


def test_unencodable_request_is_refused_before_sending(run_async: RunAsync) -> None:
    async def main() -> None:
        async with serving(Handler()) as (_, host, port), await connect(host, port) as client:
            with pytest.raises(BorealisError, match="cannot encode"):
                await client.call("echo", object())
            assert client.calls == 0
            assert await client.call("echo", 1) == 1

    run_async(main())


def test_error_reply_shape_on_the_wire(run_async: RunAsync) -> None:
    """The wire format other implementations (and the simulator) rely on."""

    async def main() -> None:
        async with serving(Handler()) as (_, host, port):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(encode_frame([0, 7, "stale", 5]) + encode_frame([0, 8, "echo", b"x"]))
            replies = []
            for _ in range(2):
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                replies.append(msgpack.unpackb(await reader.readexactly(length), raw=False))
            writer.close()
            assert replies == [
                [2, 7, "stale_epoch", "epoch is stale, now 5", {"current_epoch": 5}],
                [1, 8, b"x"],
            ]

    run_async(main())


def test_shorter_timeout_behind_a_longer_one_still_fires(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        async with serving(handler) as (_, host, port), await connect(host, port) as client:
            long = asyncio.ensure_future(client.call("block", "long", timeout_s=10.0))
            await wait_until(lambda: handler.started == 1)
            started = asyncio.get_running_loop().time()
            with pytest.raises(TransportError, match=r"timed out after 0\.05s"):
                await client.call("block", "short", timeout_s=0.05)
            assert asyncio.get_running_loop().time() - started < 1.0
            assert not long.done()
            handler.release.set()
            assert await long == "long"

    run_async(main())


def test_deadline_entries_of_finished_calls_are_bounded(run_async: RunAsync) -> None:
    async def main() -> None:
        async with serving(Handler()) as (_, host, port):
            client = await connect(host, port, inflight_max=8)
            assert client._connection is not None
            entries_max = 0
            for index in range(500):
                assert await client.call("echo", index, timeout_s=30.0) == index
                entries_max = max(entries_max, len(client._connection._deadlines))
            assert entries_max <= 4 * 8
            await client.close()

    run_async(main())


def test_slot_handed_to_a_cancelled_waiter_passes_on(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        async with serving(handler) as (_, host, port):
            client = await connect(host, port, inflight_max=1)
            second: asyncio.Future[Any] | None = None

            async def first() -> Any:
                try:
                    return await client.call("block", 1)
                finally:
                    # The slot has just been handed to the second call, which has not run yet.
                    assert second is not None
                    second.cancel()

            one = asyncio.ensure_future(first())
            await wait_until(lambda: handler.started == 1)
            second = asyncio.ensure_future(client.call("echo", 2))
            third = asyncio.ensure_future(client.call("echo", 3))
            await asyncio.sleep(0.01)
            handler.release.set()
            assert await one == 1
            assert await third == 3
            assert second.cancelled()
            assert client._slots_free == 1
            assert await client.call("echo", 4) == 4
            await client.close()

    run_async(main())


def test_random_cancellations_never_leak_a_slot(run_async: RunAsync) -> None:
    async def main() -> None:
        rng = random.Random(99)
        async with serving(Handler()) as (_, host, port):
            client = await connect(host, port, inflight_max=4)
            calls = [asyncio.ensure_future(client.call("jitter", index)) for index in range(300)]
            for _ in range(100):
                await asyncio.sleep(rng.random() * 0.002)
                rng.choice(calls).cancel()
            results = await asyncio.gather(*calls, return_exceptions=True)
            finished = [r for r in results if not isinstance(r, BaseException)]
            assert 0 < len(finished) < 300
            assert client._slots_free == 4
            assert not client._slot_waiters
            assert client.inflight == 0
            assert await client.call("echo", "ok") == "ok"
            await client.close()

    run_async(main())


def test_calls_waiting_for_a_slot_fail_when_the_connection_is_lost(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        server = RpcServer(handler, name="test-node")
        host, port = await server.start("127.0.0.1", 0)
        try:
            client = await connect(host, port, inflight_max=2)
            calls = [asyncio.ensure_future(client.call("block", index)) for index in range(5)]
            await wait_until(lambda: handler.started == 2)
        finally:
            await server.close(timeout_s=2.0)
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(result, TransportError) for result in results), results
        await client.close()

    run_async(main())


def test_handler_outlives_its_connection_until_the_server_closes(run_async: RunAsync) -> None:
    async def main() -> None:
        handler = Handler()
        server = RpcServer(handler, name="test-node")
        host, port = await server.start("127.0.0.1", 0)
        try:
            client = await connect(host, port)
            call = asyncio.ensure_future(client.call("block", None))
            await wait_until(lambda: handler.started == 1)
            await client.close()
            with pytest.raises(TransportError, match="closed by the client"):
                await call
            await wait_until(lambda: server.connection_count == 0)
            (task,) = server._tasks
            assert not task.done()  # still running: it may be half way through a disk write
        finally:
            await server.close(timeout_s=2.0)
        assert task.cancelled()
        assert not server._tasks

    run_async(main())
