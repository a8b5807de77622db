"""LocalClient keeps the RpcClient contract without sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from borealis.errors import BorealisError, ProtocolError, StaleEpochError, TransportError
from borealis.transport.local import LocalClient
from borealis.transport.rpc import RpcCaller


class Handler:
    def dispatch(self, method: str, body: Any, peer: str) -> Any:
        if method == "echo":
            return body
        if method == "async_echo":
            return self._async_echo(body)
        if method == "stale":
            raise StaleEpochError("stale", current_epoch=body)
        if method == "bug":
            raise ValueError("oops")
        if method == "unencodable":
            return object()
        if method == "hang":
            return asyncio.Event().wait()
        raise AssertionError(method)

    async def _async_echo(self, body: Any) -> Any:
        await asyncio.sleep(0)
        return body


def test_local_client_speaks_the_rpc_contract() -> None:
    async def main() -> None:
        client: RpcCaller = LocalClient(Handler())
        assert await client.call("echo", {"a": (1, 2)}) == {"a": [1, 2]}  # as msgpack sees it
        assert await client.call("async_echo", b"x") == b"x"
        with pytest.raises(StaleEpochError) as stale:
            await client.call("stale", 4)
        assert stale.value.current_epoch == 4
        for method in ("bug", "unencodable"):
            with pytest.raises(BorealisError) as internal:
                await client.call(method, None)
            assert internal.value.code == "internal"
        with pytest.raises(ProtocolError):
            await client.call("echo", object())
        with pytest.raises(TransportError, match="timed out"):
            await client.call("hang", None, timeout_s=0.01)
        await client.close()
        assert client.closed
        with pytest.raises(TransportError):
            await client.call("echo", 1)

    asyncio.run(main())


def test_local_client_accepts_a_plain_function() -> None:
    async def main() -> None:
        client = LocalClient(lambda method, body, peer: [method, body, peer], peer="p:1")
        assert await client.call("m", 1) == ["m", 1, "p:1"]

    asyncio.run(main())
