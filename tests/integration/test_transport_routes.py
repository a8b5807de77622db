"""Routes: a pool built with a caller name connects where the routes file says, follows the
file when it changes (dropping connections whose route changed), and shrugs off a broken
file. Two real RPC servers on 127.0.0.1 stand for a peer and the proxy in front of it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from borealis.transport.pool import ConnectionPool
from borealis.transport.routes import ENV, Routes, write_routes
from borealis.transport.rpc import RpcServer


async def serve(answer: str) -> tuple[RpcServer, str]:
    def dispatch(method: str, body: Any, peer: str) -> Any:
        return answer

    server = RpcServer(dispatch, name=answer)
    host, port = await server.start("127.0.0.1", 0)
    return server, f"{host}:{port}"


def test_a_pool_follows_the_routes_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "routes.json"
    monkeypatch.setenv(ENV, str(path))

    async def main() -> None:
        peer, peer_address = await serve("peer")
        proxy, proxy_address = await serve("proxy")
        pool = ConnectionPool(name="test", caller="i1")
        other = ConnectionPool(name="test", caller="i2")
        assert pool.routes is not None
        pool.routes.check_every_s = 0.0
        try:
            assert await (await pool.get(peer_address)).call("x", None) == "peer"
            write_routes(path, {"i1": {peer_address: proxy_address}})
            client = await pool.get(peer_address)
            assert await client.call("x", None) == "proxy"
            # Only i1's connections are routed.
            assert await (await other.get(peer_address)).call("x", None) == "peer"
            # A broken file keeps the last routes.
            path.write_text("{not json")
            os.utime(path, ns=(1, 1))
            assert await (await pool.get(peer_address)).call("x", None) == "proxy"
            assert pool.get_nowait(peer_address) is client
            # Routes removed: the routed connection is dropped and the next one is direct.
            write_routes(path, {})
            assert pool.get_nowait(peer_address) is None
            assert await (await pool.get(peer_address)).call("x", None) == "peer"
            assert client.closed
        finally:
            await pool.close()
            await other.close()
            await peer.close()
            await proxy.close()

    asyncio.run(main())


def test_without_the_variable_nothing_is_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert Routes.from_env("i1").resolve("127.0.0.1:1") == "127.0.0.1:1"
    assert ConnectionPool(name="test").routes is None
