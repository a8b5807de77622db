"""The fault proxy on real sockets (127.0.0.1): bytes intact and in order under every delay,
partitions that hold and deliver on heal, resets, whole duplicated frames, bounded memory,
and the HTTP control server and the command line.

Timing bounds are one-sided where they can be (a delay is never shorter than configured) and
generous where they cannot, so a loaded 2-core machine does not make them flaky; each
assertion still fails if the fault does nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from borealis.chaos.faultproxy import (
    BadFaultsError,
    ControlServer,
    FaultProxy,
    Faults,
    FrameSplitter,
    HealAction,
    UnknownLinkError,
)
from borealis.transport.frames import FrameDecoder, encode_frame
from borealis.transport.rpc import run

HOST = "127.0.0.1"
TEST_TIMEOUT_S = 30.0
QUIET_S = 0.3
"""How long a held direction must stay silent to count as holding."""
SRC = Path(__file__).resolve().parents[2] / "src"


def arun(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            return await coro

    return run(bounded())


class Target:
    """A target server that records every connection; ``on_connect`` drives each one."""

    def __init__(self, on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                            Awaitable[None]] | None = None) -> None:
        self.on_connect = on_connect
        self.connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.connected = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Target:
        self.server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append((reader, writer))
        self.connected.set()
        if self.on_connect is not None:
            await self.on_connect(reader, writer)

    async def wait_connections(self, count: int, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.connections) < count:
                self.connected.clear()
                await self.connected.wait()

    async def close(self) -> None:
        for _, writer in self.connections:
            writer.close()
        assert self.server is not None
        self.server.close()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    except ConnectionError:
        pass


async def proxied(target: Target, *, frames: bool = False, held_bytes_max: int | None = None,
                  seed: int = 7) -> tuple[FaultProxy, int]:
    proxy = FaultProxy(seed=seed) if held_bytes_max is None else \
        FaultProxy(seed=seed, held_bytes_max=held_bytes_max)
    _, port = await proxy.add_link("link", HOST, target.port, frames=frames)
    return proxy, port


async def silent(reader: asyncio.StreamReader, seconds: float = QUIET_S) -> bool:
    """True if nothing arrives on ``reader`` for ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            data = await reader.read(1)
    except TimeoutError:
        return True
    raise AssertionError(f"expected silence, got {data!r}")


# --- faults and frames, pure ---------------------------------------------------------------


def test_faults_validate_and_update() -> None:
    assert Faults().passthrough
    assert not Faults(latency_ms=1).passthrough
    assert not Faults(blocked=True).passthrough
    assert Faults(reset_probability_per_s=0.5).passthrough  # resets do not delay bytes
    faults = Faults().updated({"latency_ms": 5, "on_heal": "reset"})
    assert faults.latency_ms == 5.0
    assert faults.on_heal is HealAction.RESET
    assert faults.updated({"blocked": True}).latency_ms == 5.0
    for bad in ({"latency_ms": -1}, {"latency_ms": float("nan")}, {"latency_ms": "5"},
                {"latency_ms": True}, {"stall_probability": 1.5}, {"blocked": 1},
                {"on_heal": "later"}, {"on_heal": []}, {"no_such_fault": 1},
                {"stall_ms": 0}, {"stall_ms": 500, "stall_ms_max": 100}):
        with pytest.raises(BadFaultsError):
            Faults().updated(bad)


def test_frame_splitter_cuts_whole_frames_from_any_chunking() -> None:
    rng = random.Random(3)
    frames = [encode_frame([0, i, "m", rng.randbytes(rng.randrange(0, 3000))])
              for i in range(200)]
    stream = b"".join(frames)
    splitter = FrameSplitter()
    out: list[bytes] = []
    offset = 0
    while offset < len(stream):
        step = rng.choice([1, 3, 4, 5, 100, 4096, 20000])
        out += splitter.feed(stream[offset:offset + step])
        offset += step
    assert out == frames
    assert splitter.partial_bytes == 0
    assert splitter.broken is None


def test_frame_splitter_passes_a_foreign_stream_through() -> None:
    splitter = FrameSplitter(frame_bytes_max=100)
    good = encode_frame("ok")
    bad = b"\xff\xff\xff\xffgarbage"
    assert splitter.feed(good + bad) == [good, bad]
    assert splitter.broken is not None
    assert splitter.feed(b"more") == [b"more"]


# --- bytes, latency, stalls ----------------------------------------------------------------


def test_bytes_pass_unchanged_and_in_order_under_latency_jitter_and_stalls() -> None:
    size = 1_500_000

    async def main() -> None:
        payloads: dict[int, bytes] = {}
        received: dict[int, bytes] = {}

        async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # The client's first 4 bytes name the connection; the server sends its own payload.
            key = int.from_bytes(await reader.readexactly(4), "big")
            writer.write(payloads[key])
            received[key] = await reader.readexactly(size)
            await writer.drain()

        target = await Target(exchange).start()
        proxy, port = await proxied(target)
        proxy.set_faults("link", "both", latency_ms=3, jitter_ms=3, stall_probability=0.05,
                         stall_ms=2, stall_ms_max=8)

        async def client(key: int) -> None:
            payloads[key] = os.urandom(size)
            mine = os.urandom(size)
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(key.to_bytes(4, "big"))
            for offset in range(0, size, 50_000):  # many chunks: many draws of the faults
                writer.write(mine[offset:offset + 50_000])
                await asyncio.sleep(0)
            got = await reader.readexactly(size)
            assert got == payloads[key]
            await writer.drain()
            writer.close()
            await _wait_for(lambda: key in received)
            assert received[key] == mine

        await asyncio.gather(*(client(k) for k in range(3)))
        status = proxy.status()["links"]["link"]
        assert status["to_target"]["bytes"] == 3 * (size + 4)
        assert status["from_target"]["bytes_delivered"] == 3 * size
        await proxy.close()
        await target.close()

    arun(main())


async def _wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


async def _round_trips(port: int, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection(HOST, port)
    times = []
    for _ in range(count):
        started = time.monotonic()
        writer.write(b"p")
        await reader.readexactly(1)
        times.append(time.monotonic() - started)
    writer.close()
    return times


def test_added_latency_is_within_bounds() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy, port = await proxied(target)
        baseline = await _round_trips(port, 10)
        proxy.set_faults("link", "to_target", latency_ms=40)
        proxy.set_faults("link", "from_target", latency_ms=60)
        delayed = await _round_trips(port, 8)
        # Never earlier than configured (1 ms of timer slack per direction) ...
        assert min(delayed) >= 0.098, delayed
        # ... and not much later, even on a busy machine.
        assert statistics.median(delayed) < 0.100 + 0.150, delayed
        assert statistics.median(baseline) < 0.050, baseline
        proxy.heal_all()
        assert statistics.median(await _round_trips(port, 5)) < 0.050
        await proxy.close()
        await target.close()

    arun(main())


def test_stalls_hold_a_direction_for_a_retransmission_timeout() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy, port = await proxied(target)
        proxy.set_faults("link", "to_target", stall_probability=0.5, stall_ms=20,
                         stall_ms_max=40)
        times = await _round_trips(port, 16)
        stalls = proxy.status()["links"]["link"]["to_target"]["stalls"]
        assert stalls >= 1  # P(no stall in 16 draws) = 2**-16
        assert sum(1 for t in times if t >= 0.019) >= stalls
        await proxy.close()
        await target.close()

    arun(main())


def test_heal_releases_delayed_bytes_at_once_and_is_idempotent() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy, port = await proxied(target)
        proxy.heal_all()  # nothing to heal: fine
        proxy.set_faults("link", "both", latency_ms=20_000)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"held")
        assert await silent(reader)
        started = time.monotonic()
        proxy.heal_all()
        proxy.heal_all()
        assert await reader.readexactly(4) == b"held"
        assert time.monotonic() - started < 2.0
        assert proxy.faults("link", "to_target") == Faults()
        writer.close()
        await proxy.close()
        await target.close()

    arun(main())


# --- partitions ----------------------------------------------------------------------------


def test_blocked_link_holds_silently_then_delivers_on_heal() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy, port = await proxied(target)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"before")
        assert await reader.readexactly(6) == b"before"
        proxy.set_faults("link", "both", blocked=True)
        writer.write(b"during")
        # A connection made during the partition is accepted and held: no SYN got through.
        late_reader, late_writer = await asyncio.open_connection(HOST, port)
        late_writer.write(b"late")
        assert await silent(reader)
        assert await silent(late_reader, 0.05)
        assert len(target.connections) == 1
        status = proxy.status()["links"]["link"]
        assert status["to_target"]["held_bytes"] == len(b"during") + len(b"late")
        assert status["connections_open"] == 2
        proxy.heal_all()
        assert await reader.readexactly(6) == b"during"
        assert await late_reader.readexactly(4) == b"late"
        assert len(target.connections) == 2
        for w in (writer, late_writer):
            w.close()
        await proxy.close()
        await target.close()

    arun(main())


def test_one_way_block_lets_requests_through_and_holds_replies() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy, port = await proxied(target)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"a")
        assert await reader.readexactly(1) == b"a"
        proxy.set_faults("link", "from_target", blocked=True)
        writer.write(b"request")
        await _wait_for(lambda: proxy.status()["links"]["link"]["from_target"]["held_bytes"]
                        == len(b"request"))  # the target got it and echoed it
        assert proxy.status()["links"]["link"]["to_target"]["bytes_delivered"] == 8
        assert await silent(reader)
        proxy.heal("link")
        assert await reader.readexactly(7) == b"request"
        writer.close()
        await proxy.close()
        await target.close()

    arun(main())


def test_heal_with_reset_aborts_and_with_drop_discards_whole_frames() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy, port = await proxied(target, frames=True)
        reader, writer = await asyncio.open_connection(HOST, port)
        proxy.set_faults("link", "to_target", blocked=True, on_heal="drop")
        writer.write(encode_frame("lost") + encode_frame("also lost"))
        await _wait_for(lambda: proxy.status()["links"]["link"]["to_target"]["held_bytes"] > 0)
        proxy.heal_all()
        writer.write(encode_frame("kept"))
        decoder = FrameDecoder()
        values: list[Any] = []
        while not values:
            values += decoder.feed(await reader.read(1000))
        assert values == ["kept"]
        assert proxy.status()["links"]["link"]["to_target"]["bytes_dropped"] > 0

        proxy.set_faults("link", "both", blocked=True, on_heal="reset")
        writer.write(encode_frame("never"))
        assert await silent(reader, 0.1)
        proxy.heal_all()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await reader.readexactly(1)
        assert proxy.status()["links"]["link"]["resets"] == 1
        writer.close()
        await proxy.close()
        await target.close()

    arun(main())


# --- resets --------------------------------------------------------------------------------


def test_reset_aborts_both_sides() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy, port = await proxied(target)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        proxy.set_faults("link", "from_target", reset_probability_per_s=1.0)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            async with asyncio.timeout(2.0):
                await reader.readexactly(1)
        target_reader = target.connections[0][0]
        async with asyncio.timeout(2.0):  # the target's side is closed too
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await target_reader.readexactly(1)
        # A rate below certainty: a Poisson process, mean 1/ln(100) = 0.22 s.
        proxy.set_faults("link", "from_target", reset_probability_per_s=0.99)
        reader, writer = await asyncio.open_connection(HOST, port)
        # uvloop refuses a write to a transport it has seen reset: a RuntimeError.
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError, RuntimeError)):
            async with asyncio.timeout(5.0):
                while True:
                    writer.write(b"y")
                    await reader.readexactly(1)
                    await asyncio.sleep(0.01)
        assert proxy.status()["links"]["link"]["resets"] == 2
        proxy.heal_all()
        assert await _round_trips(port, 1)  # healed: connections live again
        await proxy.close()
        await target.close()

    arun(main())


# --- frames --------------------------------------------------------------------------------


def _requests(count: int, rng: random.Random) -> list[bytes]:
    return [encode_frame([0, i, "write", rng.randbytes(rng.randrange(1, 5000))])
            for i in range(count)]


async def _frames_at_target(target: Target, port: int, frames: list[bytes],
                            done: Callable[[list[Any]], bool]) -> list[Any]:
    """Send ``frames`` through the proxy on a new connection, in chunks that cut frames
    anywhere; the values the target decodes, once ``done`` says they are all there."""
    before = len(target.connections)
    _, writer = await asyncio.open_connection(HOST, port)
    stream = b"".join(frames)
    for offset in range(0, len(stream), 7001):
        writer.write(stream[offset:offset + 7001])
    await target.wait_connections(before + 1)
    reader = target.connections[before][0]
    decoder = FrameDecoder()  # the project's decoder: it refuses anything but whole frames
    values: list[Any] = []
    async with asyncio.timeout(10.0):
        while not done(values):
            values += decoder.feed(await reader.read(65536))
    assert decoder.buffered_bytes == 0
    writer.close()
    return values


def test_frame_duplication_sends_exactly_whole_frames_twice() -> None:
    async def main() -> None:
        rng = random.Random(5)
        target = await Target().start()
        proxy, port = await proxied(target, frames=True)
        proxy.set_faults("link", "to_target", duplicate_probability=1.0)
        values = await _frames_at_target(target, port, _requests(100, rng),
                                         lambda values: len(values) >= 200)
        assert [v[1] for v in values] == [i for i in range(100) for _ in range(2)]
        assert values[::2] == values[1::2]

        proxy.set_faults("link", "to_target", duplicate_probability=0.5)
        before = proxy.status()["links"]["link"]["to_target"]["frames_duplicated"]
        # The last frame's id is 199 whether or not it was duplicated: wait for both copies.
        values = await _frames_at_target(
            target, port, _requests(200, rng),
            lambda values: len(values) >= 2 and values[-1][1] == 199 and (
                values[-2][1] == 199 or proxy.status()["links"]["link"]["to_target"][
                    "frames_duplicated"] - before == len(values) - 200))
        duplicated = proxy.status()["links"]["link"]["to_target"]["frames_duplicated"] - before
        assert len(values) == 200 + duplicated
        assert 50 < duplicated < 150  # binomial(200, 0.5): sd 7
        ids = [v[1] for v in values]
        assert sorted(set(ids)) == list(range(200))
        assert all(ids.count(i) in (1, 2) for i in range(200))
        await proxy.close()
        await target.close()

    arun(main())


def test_frame_delays_reorder_whole_frames_only() -> None:
    async def main() -> None:
        target = await Target().start()
        proxy, port = await proxied(target, frames=True)
        proxy.set_faults("link", "to_target", frame_delay_ms_max=30)
        frames = _requests(150, random.Random(9))
        values = await _frames_at_target(target, port, frames, lambda v: len(v) >= 150)
        ids = [v[1] for v in values]
        assert sorted(ids) == list(range(150))
        assert ids != sorted(ids)  # some frame overtook another
        assert sorted(values, key=lambda v: v[1]) == [
            FrameDecoder().feed(f)[0] for f in frames]
        await proxy.close()
        await target.close()

    arun(main())


def test_frame_faults_are_refused_on_a_byte_link() -> None:
    async def main() -> None:
        target = await Target().start()
        proxy, _ = await proxied(target)
        with pytest.raises(BadFaultsError):
            proxy.set_faults("link", "both", duplicate_probability=0.1)
        assert proxy.faults("link", "to_target") == Faults()
        with pytest.raises(UnknownLinkError):
            proxy.set_faults("nope", "both", latency_ms=1)
        await proxy.close()
        await target.close()

    arun(main())


# --- memory --------------------------------------------------------------------------------


@pytest.mark.parametrize("hold", ["blocked", "slow-target"])
def test_backpressure_caps_held_bytes(hold: str) -> None:
    cap = 256 * 1024
    size = 16 * 1024 * 1024

    async def main() -> None:
        reading = asyncio.Event()
        if hold == "blocked":
            reading.set()

        async def reader_when_allowed(reader: asyncio.StreamReader,
                                      writer: asyncio.StreamWriter) -> None:
            await reading.wait()
            got = await reader.readexactly(size)
            writer.write(len(got).to_bytes(8, "big") + got[-16:])
            await writer.drain()

        target = await Target(reader_when_allowed).start()
        proxy, port = await proxied(target, held_bytes_max=cap)
        if hold == "blocked":
            proxy.set_faults("link", "to_target", blocked=True)
        else:
            proxy.set_faults("link", "both", latency_ms=1)  # through the queue, not around it
        payload = os.urandom(size)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(payload)
        await asyncio.sleep(0.5)
        status = proxy.status()["links"]["link"]["to_target"]
        # One read past the cap at most, where an unbounded proxy would hold most of 16 MiB.
        assert status["held_bytes_peak"] <= cap + 1024 * 1024, status
        assert writer.transport.get_write_buffer_size() > 0  # the sender is pushed back
        proxy.heal_all()
        reading.set()
        answer = await reader.readexactly(24)
        assert int.from_bytes(answer[:8], "big") == size
        assert answer[8:] == payload[-16:]
        writer.close()
        await proxy.close()
        await target.close()

    arun(main())


# --- control -------------------------------------------------------------------------------


async def http(address: tuple[str, int] | str, method: str, path: str,
               body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    if isinstance(address, str):
        host, _, port = address.rpartition(":")
        address = (host, int(port))
    reader, writer = await asyncio.open_connection(*address)
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode()
                                        if not isinstance(body, bytes) else body)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + data)
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def test_control_server_changes_faults_and_answers_typed_errors() -> None:
    async def main() -> None:
        target = await Target(echo).start()
        proxy = FaultProxy(seed=1)
        control = ControlServer(proxy)
        address = await control.start()
        status, created = await http(address, "POST", "/links",
                                     {"name": "s1", "target": f"{HOST}:{target.port}",
                                      "frames": True})
        assert status == 201
        assert created["frames"] is True
        port = int(created["listen"].rpartition(":")[2])

        status, answer = await http(address, "POST", "/links/s1/faults",
                                    {"direction": "to_target", "faults": {"blocked": True}})
        assert status == 200
        assert answer["faults"]["to_target"]["blocked"] is True
        assert answer["faults"]["from_target"]["blocked"] is False
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(encode_frame("ping"))
        assert await silent(reader)
        status, answer = await http(address, "POST", "/heal")
        assert status == 200
        assert answer["links"]["s1"]["faults"]["to_target"]["blocked"] is False
        decoder = FrameDecoder()
        values: list[Any] = []
        while not values:
            values += decoder.feed(await reader.read(100))
        assert values == ["ping"]

        bad: list[tuple[str, str, Any, int, str]] = [
            ("POST", "/links/s1/faults", b"{not json", 400, "bad_request"),
            ("POST", "/links/s1/faults", [1, 2], 400, "bad_request"),
            ("POST", "/links/s1/faults", {"direction": "sideways"}, 400, "bad_request"),
            ("POST", "/links/s1/faults", {"faults": {"latency_ms": -5}}, 400, "bad_request"),
            ("POST", "/links/s1/faults", {"faults": {"stall_probability": 2}}, 400,
             "bad_request"),
            ("POST", "/links/s1/faults", {"faults": {"warp": 9}}, 400, "bad_request"),
            ("POST", "/links/s1/faults", {"faults": "fast"}, 400, "bad_request"),
            ("POST", "/links/s1/faults", {"replace": "yes"}, 400, "bad_request"),
            ("POST", "/links/s1/faults", {"extra": 1}, 400, "bad_request"),
            ("POST", "/links/nope/faults", {"faults": {}}, 404, "unknown_link"),
            ("GET", "/links/nope", None, 404, "unknown_link"),
            ("POST", "/links", {"name": "s1", "target": f"{HOST}:1"}, 409, "link_exists"),
            ("POST", "/links", {"name": "s2", "target": "nowhere"}, 400, "bad_request"),
            ("POST", "/links", {"name": 5, "target": f"{HOST}:1"}, 400, "bad_request"),
            ("POST", "/links", {"name": "s3", "target": f"{HOST}:1", "listen_port": "x"},
             400, "bad_request"),
            ("DELETE", "/heal", None, 405, "method_not_allowed"),
            ("GET", "/nothing/here", None, 404, "not_found"),
        ]
        for method, path, body, expected, code in bad:
            status, answer = await http(address, method, path, body)
            assert (status, answer.get("code")) == (expected, code), (method, path, body, answer)
            assert answer["error"]
        # Not HTTP at all: the HTTP layer refuses it, and the server goes on.
        reader2, writer2 = await asyncio.open_connection(*address)
        writer2.write(b"\x00\x01 garbage\r\n\r\n")
        assert b" 400 " in await reader2.read()
        writer2.close()
        assert await http(address, "GET", "/health") == (200, {"ok": True})
        status, answer = await http(address, "GET", "/links/s1")
        assert status == 200
        assert answer["connections_open"] == 1
        status, _ = await http(address, "DELETE", "/links/s1")
        assert status == 200
        assert "s1" not in proxy.links
        writer.close()
        await control.close()
        await proxy.close()
        await target.close()

    arun(main())


def test_cli_writes_its_ready_file_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    async def main() -> None:
        target = await Target(echo).start()
        ready = tmp_path / "proxy.json"
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "borealis.chaos.faultproxy", "--control", f"{HOST}:0",
            "--ready-file", str(ready), "--link", f"bytes=0:{HOST}:{target.port}",
            "--frame-link", f"frames=0:{HOST}:{target.port}", "--seed", "3",
            "--log-level", "WARNING", env=env)
        try:
            await _wait_for(ready.exists, timeout_s=15.0)
            info = json.loads(ready.read_text())
            assert info["pid"] == process.pid
            assert set(info["links"]) == {"bytes", "frames"}
            port = int(info["links"]["bytes"]["listen"].rpartition(":")[2])
            assert await _round_trips(port, 2)
            status, _ = await http(info["control"], "POST", "/links/frames/faults",
                                        {"faults": {"duplicate_probability": 0.5}})
            assert status == 200
            status, _ = await http(info["control"], "POST", "/links/bytes/faults",
                                   {"faults": {"duplicate_probability": 0.5}})
            assert status == 400
            assert (await http(info["control"], "GET", "/health"))[0] == 200
            os.kill(process.pid, signal.SIGTERM)
            async with asyncio.timeout(10.0):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()
        await target.close()

    arun(main())


def test_cli_refuses_a_malformed_link() -> None:
    async def main() -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "borealis.chaos.faultproxy", "--link", "broken",
            env={**os.environ, "PYTHONPATH": str(SRC)},
            stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        assert process.returncode == 2
        assert b"NAME=LISTEN_PORT:TARGET_HOST:TARGET_PORT" in stderr

    arun(main())
