"""``borealis router`` as a process, following a fake control plane.

The control plane here is a ``borealis.http.HttpServer`` on a background event loop serving
``GET /v1/topology`` with the real one's long-poll semantics; the instances are loopback
servers that answer a client's first message with their name and then echo (the router
relays bytes after the first message, so that is all routing needs), and one test puts a
real PostgreSQL 15 behind the router and connects with psycopg. The router learns
everything from the control plane: the endpoints it opens and closes, where the writer is,
and when a held connection may go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from borealis.chaos.oracle import OracleError, StockPostgres, binaries_missing
from borealis.http import HttpError, HttpServer, Request, Response

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
_PARAMETERS = b"user\x00x\x00\x00"
STARTUP = struct.pack(">ii", 8 + len(_PARAMETERS), 196608) + _PARAMETERS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def eventually(check: Callable[[], Any], what: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)


# --- a background event loop for the fakes ---------------------------------------------------


class Background:
    """An event loop in a thread: the fake control plane and instances run there while
    the test's thread makes blocking client connections."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        """Cancel what still runs there (servers' connection handlers), then stop."""

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class FakeInstance:
    """Answers a client's first message with its name and a newline, then echoes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> FakeInstance:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            (length,) = struct.unpack(">i", await reader.readexactly(4))
            await reader.readexactly(length - 4)
            writer.write(self.name.encode() + b"\n")
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()

    def doc(self, role: str, healthy: bool = True) -> dict[str, Any]:
        return {"id": self.name, "role": role, "healthy": healthy,
                "pg_address": f"127.0.0.1:{self.port}", "az": "az1"}


class FakeControlPlane:
    """``GET /v1/topology?after=REV&wait=S``: answers once the revision passes REV, or
    after S seconds with the current state, as the control plane does."""

    def __init__(self, background: Background) -> None:
        self.background = background
        self.doc: dict[str, Any] = {"revision": 0, "instances": [], "endpoints": []}
        self.changed: asyncio.Condition | None = None
        self.server: HttpServer | None = None
        self.port = 0

    async def _handle(self, request: Request) -> Response:
        if request.path != "/v1/topology" or request.method != "GET":
            raise HttpError(404, f"no route {request.path}")
        after = int(request.query.get("after", "-1"))
        wait_s = float(request.query.get("wait", "0"))
        assert self.changed is not None
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: self.doc["revision"] > after), wait_s)
        return Response.json(self.doc)

    def start(self) -> FakeControlPlane:
        async def start() -> None:
            self.changed = self.changed or asyncio.Condition()
            self.server = HttpServer(self._handle, name="fake control plane")
            self.port = (await self.server.start("127.0.0.1", self.port))[1]

        self.background.call(start())
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.background.call(self.server.close())

    def publish(self, instances: list[dict[str, Any]], endpoints: list[dict[str, Any]]) -> int:
        async def publish() -> int:
            assert self.changed is not None
            async with self.changed:
                self.doc = {"revision": self.doc["revision"] + 1, "instances": instances,
                            "endpoints": endpoints}
                self.changed.notify_all()
                revision: int = self.doc["revision"]
                return revision

        revision: int = self.background.call(publish())
        return revision

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def endpoint(name: str, kind: str, port: int, members: tuple[str, ...] = (),
             excluded: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": name, "kind": kind, "host": "127.0.0.1", "port": port,
            "members": list(members), "excluded": list(excluded)}


# --- the router process ------------------------------------------------------------------------


class RouterProcess:
    def __init__(self, tmp_path: Path, control_url: str, *, hold_s: float = 10.0) -> None:
        self.ready_file = tmp_path / "router-ready.json"
        self.log_path = tmp_path / "router.log"
        self.argv = [sys.executable, "-m", "borealis", "router", "--control", control_url,
                     "--ready-file", str(self.ready_file), "--metrics-listen", "127.0.0.1:0",
                     "--hold-s", str(hold_s), "--log-level", "DEBUG"]
        self.popen: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    def start(self) -> RouterProcess:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env={**os.environ, "PYTHONPATH": _src_path()})
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready_file.exists():
            assert self.popen.poll() is None, f"router exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"router not ready:\n{self.log()}"
            time.sleep(0.02)
        self.ready = json.loads(self.ready_file.read_text())
        return self

    def stop(self) -> int:
        """SIGTERM and its exit status (SIGKILL, and a failure, if it does not exit)."""
        assert self.popen is not None
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(STOP_TIMEOUT_S)
                raise AssertionError(f"router ignored SIGTERM:\n{self.log()}") from None
        return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> dict[str, float]:
        """The samples of ``GET /metrics``, by name with labels as written."""
        url = f"http://{self.ready['metrics_address']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples


def _src_path() -> str:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


@pytest.fixture
def background() -> Iterator[Background]:
    bg = Background()
    try:
        yield bg
    finally:
        bg.stop()


@pytest.fixture
def plane(background: Background) -> Iterator[FakeControlPlane]:
    plane = FakeControlPlane(background).start()
    yield plane
    plane.stop()


@pytest.fixture
def fakes(background: Background) -> Iterator[dict[str, FakeInstance]]:
    made = {name: background.call(FakeInstance(name).start())
            for name in ("w", "r1", "r2", "r3")}
    yield made
    for fake in made.values():
        background.call(fake.close())


@pytest.fixture
def routers(tmp_path: Path) -> Iterator[list[RouterProcess]]:
    made: list[RouterProcess] = []
    try:
        yield made
    finally:
        for r in made:
            if r.popen is not None and r.popen.poll() is None:
                r.stop()


def start_router(routers: list[RouterProcess], tmp_path: Path, plane: FakeControlPlane,
                 **kwargs: Any) -> RouterProcess:
    router = RouterProcess(tmp_path, plane.url, **kwargs)
    routers.append(router)
    return router.start()


# --- the client side -----------------------------------------------------------------------------


def connect(port: int, timeout_s: float = 5.0) -> tuple[socket.socket, bytes]:
    """A client connection through the router: the startup message, and the name of the
    instance that answered it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    s.sendall(STARTUP)
    return s, _readline(s)


def _readline(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# --- tests ---------------------------------------------------------------------------------------


def test_each_endpoint_routes_to_its_instances_and_metrics_count_them(
        tmp_path: Path, plane: FakeControlPlane, fakes: dict[str, FakeInstance],
        routers: list[RouterProcess]) -> None:
    w, r1, r2, r3 = (fakes[n] for n in ("w", "r1", "r2", "r3"))
    ports = {name: free_port() for name in ("writer", "reader", "analytics", "only-r1")}
    revision = plane.publish(
        [w.doc("writer"), r1.doc("reader"), r2.doc("reader"), r3.doc("reader", healthy=False)],
        [endpoint("writer", "writer", ports["writer"]),
         endpoint("reader", "reader", ports["reader"]),
         endpoint("analytics", "custom-reader", ports["analytics"], members=("r2", "r3")),
         endpoint("only-r1", "instance", ports["only-r1"], members=("r1",))])
    router = start_router(routers, tmp_path, plane)
    assert router.ready["endpoints"] == {n: f"127.0.0.1:{p}" for n, p in ports.items()}
    assert router.ready["address"] == f"127.0.0.1:{ports['writer']}"  # the first endpoint
    assert router.ready["pid"] == router.popen.pid  # type: ignore[union-attr]
    assert router.ready["revision"] == revision

    kept = []
    s, name = connect(ports["writer"])
    assert name == b"w\n"
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"  # relayed both ways
    kept.append(s)
    # Least connections over the healthy readers, while every connection stays open.
    names = []
    for _ in range(6):
        s, name = connect(ports["reader"])
        kept.append(s)
        names.append(name)
    assert sorted(names) == [b"r1\n"] * 3 + [b"r2\n"] * 3
    for _ in range(3):  # r3 is a member but unhealthy; w is no member
        s, name = connect(ports["analytics"])
        kept.append(s)
        assert name == b"r2\n"
    s, name = connect(ports["only-r1"])
    kept.append(s)
    assert name == b"r1\n"

    def routed() -> dict[str, float]:
        m = router.metrics()
        return m if m['borealis_router_connections_routed_total{instance="r2"}'] == 6 else {}

    m = eventually(routed, "the metrics count every routed connection")
    assert m['borealis_router_connections_routed_total{instance="w"}'] == 1
    assert m['borealis_router_connections_routed_total{instance="r1"}'] == 4
    assert m['borealis_router_connections_routed_total{instance="r3"}'] == 0
    assert m['borealis_router_instance_connections_open{instance="r2"}'] == 6
    assert m['borealis_router_endpoint_connections_open{endpoint="reader"}'] == 6
    assert m['borealis_router_endpoint_connections_open{endpoint="analytics"}'] == 3
    assert m["borealis_router_endpoints"] == 4
    assert m["borealis_router_topology_revision"] == revision
    assert m["borealis_router_control_plane_reachable"] == 1
    assert m["borealis_router_connections_held"] == 0
    for s in kept:
        s.close()
    eventually(lambda: router.metrics()[
        'borealis_router_instance_connections_open{instance="r2"}'] == 0,
        "closed connections are no longer counted")
    assert router.stop() == 0


def test_a_held_connection_goes_to_the_writer_that_appears_and_new_ones_follow_it(
        tmp_path: Path, plane: FakeControlPlane, fakes: dict[str, FakeInstance],
        routers: list[RouterProcess]) -> None:
    w, r1 = fakes["w"], fakes["r1"]
    port = free_port()
    plane.publish([w.doc("writer", healthy=False), r1.doc("reader")],
                  [endpoint("writer", "writer", port)])
    router = start_router(routers, tmp_path, plane)

    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(STARTUP)
    eventually(lambda: router.metrics()["borealis_router_connections_held"] == 1,
               "the connection is held while there is no writer")
    # A failover: r1 is promoted; the held connection goes on to it.
    plane.publish([w.doc("reader", healthy=False), r1.doc("writer")],
                  [endpoint("writer", "writer", port)])
    assert _readline(held) == b"r1\n"
    held.close()
    # The old writer comes back as the writer (a second failover): new connections go there.
    plane.publish([w.doc("writer"), r1.doc("reader")], [endpoint("writer", "writer", port)])

    def routed_to_w() -> bool:
        s, name = connect(port)
        s.close()
        return name == b"w\n"

    eventually(routed_to_w, "new connections go to the new writer")
    m = router.metrics()
    assert m["borealis_router_connections_held"] == 0
    assert m["borealis_router_held_timed_out_total"] == 0
    assert router.stop() == 0


def test_a_held_connection_is_dropped_when_its_client_leaves_and_times_out_with_57p03(
        tmp_path: Path, plane: FakeControlPlane, fakes: dict[str, FakeInstance],
        routers: list[RouterProcess]) -> None:
    port = free_port()
    plane.publish([fakes["r1"].doc("reader")], [endpoint("writer", "writer", port)])
    router = start_router(routers, tmp_path, plane, hold_s=4.0)
    leaving = socket.create_connection(("127.0.0.1", port), timeout=5)
    leaving.sendall(STARTUP)
    eventually(lambda: router.metrics()["borealis_router_connections_held"] == 1,
               "the connection is held")
    leaving.close()

    def none_held() -> dict[str, float] | None:
        m = router.metrics()
        return m if m["borealis_router_connections_held"] == 0 else None

    m = eventually(none_held, "a held connection whose client left is dropped before hold_s",
                   timeout_s=2.0)
    assert m["borealis_router_held_abandoned_total"] == 1
    assert m['borealis_router_endpoint_connections_open{endpoint="writer"}'] == 0

    started = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(STARTUP)
    reply = s.recv(1024)
    assert reply[:1] == b"E" and b"57P03" in reply
    assert 3.5 < time.monotonic() - started < 8
    s.close()
    m = router.metrics()
    assert m["borealis_router_held_timed_out_total"] == 1
    assert m["borealis_router_held_abandoned_total"] == 1
    assert fakes["r1"].connections == 0  # a reader never stands in for the writer
    assert router.stop() == 0


def test_endpoints_created_listen_deleted_refuse_and_moved_listen_elsewhere(
        tmp_path: Path, plane: FakeControlPlane, fakes: dict[str, FakeInstance],
        routers: list[RouterProcess]) -> None:
    w, r1, r2 = fakes["w"], fakes["r1"], fakes["r2"]
    instances = [w.doc("writer"), r1.doc("reader"), r2.doc("reader")]
    writer_port, custom_port, moved_port = free_port(), free_port(), free_port()
    plane.publish(instances, [endpoint("writer", "writer", writer_port)])
    router = start_router(routers, tmp_path, plane)
    assert refused(custom_port)

    plane.publish(instances, [endpoint("writer", "writer", writer_port),
                              endpoint("custom", "any", custom_port, members=("r2",))])
    eventually(lambda: not refused(custom_port), "a new endpoint listens")
    kept, name = connect(custom_port)
    assert name == b"r2\n"

    plane.publish(instances, [endpoint("writer", "writer", writer_port)])
    eventually(lambda: refused(custom_port), "a deleted endpoint refuses connections")
    kept.sendall(b"still here")  # a connection made through it goes on
    assert kept.recv(10) == b"still here"
    kept.close()

    plane.publish(instances, [endpoint("writer", "writer", moved_port)])
    eventually(lambda: refused(writer_port) and not refused(moved_port),
               "an endpoint whose port changed listens on the new one only")
    s, name = connect(moved_port)
    assert name == b"w\n"
    s.close()
    assert router.metrics()["borealis_router_endpoints"] == 1
    assert router.stop() == 0


def test_the_router_keeps_routing_while_the_control_plane_is_away(
        tmp_path: Path, plane: FakeControlPlane, fakes: dict[str, FakeInstance],
        routers: list[RouterProcess]) -> None:
    w, r1 = fakes["w"], fakes["r1"]
    port = free_port()
    plane.publish([w.doc("writer"), r1.doc("reader")], [endpoint("writer", "writer", port)])
    router = start_router(routers, tmp_path, plane)

    plane.stop()
    eventually(lambda: router.metrics()["borealis_router_control_plane_reachable"] == 0,
               "the router notices the control plane is gone")
    time.sleep(2.5)  # several retries
    s, name = connect(port)
    assert name == b"w\n"  # by the last topology it had
    s.close()
    unreachable = [line for line in router.log().splitlines() if "unreachable" in line]
    assert len(unreachable) == 1, unreachable  # once per outage, not per attempt

    plane.start()  # on the same port
    revision = plane.publish([w.doc("reader"), r1.doc("writer")],
                             [endpoint("writer", "writer", port)])
    eventually(lambda: router.metrics()["borealis_router_topology_revision"] == revision,
               "the router follows the control plane again")
    assert router.metrics()["borealis_router_control_plane_reachable"] == 1
    s, name = connect(port)
    assert name == b"r1\n"
    s.close()
    assert "reachable again" in router.log()
    assert router.stop() == 0


def test_the_ready_file_waits_for_a_control_plane_that_starts_late(
        tmp_path: Path, background: Background, fakes: dict[str, FakeInstance],
        routers: list[RouterProcess]) -> None:
    plane = FakeControlPlane(background)
    plane.port = free_port()
    router = RouterProcess(tmp_path, plane.url)
    routers.append(router)
    with open(router.log_path, "ab") as log:
        router.popen = subprocess.Popen(router.argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        env={**os.environ, "PYTHONPATH": _src_path()})
    time.sleep(1.5)
    assert not router.ready_file.exists()  # no topology yet: not ready
    assert router.popen.poll() is None
    port = free_port()
    plane.start()
    plane.publish([fakes["w"].doc("writer")], [endpoint("writer", "writer", port)])
    eventually(router.ready_file.exists, "the router is ready once it has a topology")
    router.ready = json.loads(router.ready_file.read_text())
    assert router.ready["endpoints"] == {"writer": f"127.0.0.1:{port}"}
    s, name = connect(port)
    assert name == b"w\n"
    s.close()
    assert router.stop() == 0


# --- psycopg through the router to a real PostgreSQL ----------------------------------------

@pytest.fixture
def postgres() -> Iterator[int]:
    """A PostgreSQL 15 on 127.0.0.1 (trust authentication); its port. Stopped by PID."""
    if binaries_missing():
        pytest.skip(f"no PostgreSQL server programs: {binaries_missing()}")
    try:
        with StockPostgres() as server:
            yield server.port
    except OracleError as exc:  # e.g. root without a postgres user to run it as
        if "refuses" in str(exc):
            pytest.skip(str(exc))
        raise


def test_psycopg_through_the_router_to_a_real_postgresql(
        tmp_path: Path, plane: FakeControlPlane, postgres: int,
        routers: list[RouterProcess]) -> None:
    psycopg = pytest.importorskip("psycopg")
    writer_port, reader_port = free_port(), free_port()
    plane.publish([{"id": "pg", "role": "writer", "healthy": True,
                    "pg_address": f"127.0.0.1:{postgres}", "az": "az1"}],
                  [endpoint("writer", "writer", writer_port),
                   endpoint("reader", "reader", reader_port)])
    router = start_router(routers, tmp_path, plane)
    # sslmode=prefer: the SSLRequest goes to PostgreSQL, which says no, and the startup
    # message follows on the same relayed connection.
    for port in (writer_port, reader_port):  # the reader endpoint falls back to the writer
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             sslmode="prefer", connect_timeout=5) as conn:
            row = conn.execute("SELECT inet_server_port(), 6 * 7").fetchone()
            assert row == (postgres, 42)
            conn.execute("CREATE TABLE IF NOT EXISTS t (v text)")
            conn.execute("INSERT INTO t VALUES (%s)", ("through the router",))
    with psycopg.connect(host="127.0.0.1", port=writer_port, user="postgres",
                         dbname="postgres", connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
        # A cancel request goes through the router to the instance that holds the key.
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            timer = threading.Timer(0.5, conn.cancel)
            timer.start()
            conn.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - started < 10
    m = router.metrics()
    assert m['borealis_router_connections_routed_total{instance="pg"}'] == 3
    assert re.search(r"endpoint serving name=writer", router.log())
    assert router.stop() == 0
