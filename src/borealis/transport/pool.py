"""Connections to peers by address, reopened on demand after a failure.

A lost connection is not an error of the pool: the next ``get`` reconnects, no sooner than
``reconnect_backoff_s`` after the last failed attempt, so that a dead peer costs one failed
connect per backoff period rather than one per call.

A pool built with a ``caller`` name connects where that caller's ``Routes`` say (the chaos
suite's fault proxy; directly unless ``BOREALIS_ROUTES`` is set), and drops a connection
whose route changed, so that the next call takes the new one.
"""

from __future__ import annotations

import asyncio
import time

from borealis.errors import TransportError
from borealis.transport.routes import Routes
from borealis.transport.rpc import RpcClient

CONNECT_TIMEOUT_S = 1.0
RECONNECT_BACKOFF_S = 0.2


class ConnectionPool:
    def __init__(self, *, name: str, caller: str = "",
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 reconnect_backoff_s: float = RECONNECT_BACKOFF_S) -> None:
        self.name = name
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_backoff_s = reconnect_backoff_s
        # None unless routes are configured: the hot path then skips them entirely.
        routes = Routes.from_env(caller) if caller else None
        self.routes = routes if routes is not None and routes.path is not None else None
        self._clients: dict[str, RpcClient] = {}
        self._routed: dict[str, str] = {}  # address -> where its open connection goes
        self._connecting: dict[str, asyncio.Future[RpcClient]] = {}
        self._failed_at: dict[str, float] = {}
        self._retired_bytes_sent = 0

    def get_nowait(self, address: str) -> RpcClient | None:
        """The open connection to ``address``, or None when ``get`` would have to connect."""
        client = self._clients.get(address)
        if client is not None and not client.closed and self._route_kept(address):
            return client
        return None

    def _route_kept(self, address: str) -> bool:
        return self.routes is None or self.routes.resolve(address) == self._routed[address]

    async def get(self, address: str) -> RpcClient:
        client = self._clients.get(address)
        if client is not None and not client.closed and self._route_kept(address):
            return client
        if client is not None:
            del self._clients[address]
            self._retired_bytes_sent += client.bytes_sent
            if not client.closed:  # its route changed
                await client.close()
        pending = self._connecting.get(address)
        if pending is not None:
            return await asyncio.shield(pending)
        failed_at = self._failed_at.get(address)
        if failed_at is not None and time.monotonic() - failed_at < self.reconnect_backoff_s:
            raise TransportError(f"{address} is unreachable (retrying shortly)")
        future: asyncio.Future[RpcClient] = asyncio.get_running_loop().create_future()
        self._connecting[address] = future
        route = address if self.routes is None else self.routes.resolve(address)
        try:
            host, _, port = route.rpartition(":")
            client = await RpcClient(name=self.name).connect(
                host, int(port), timeout_s=self.connect_timeout_s
            )
        except TransportError as exc:
            self._failed_at[address] = time.monotonic()
            future.set_exception(exc)
            future.exception()  # retrieved: a shielded waiter may be gone
            raise
        finally:
            del self._connecting[address]
        self._failed_at.pop(address, None)
        self._clients[address] = client
        self._routed[address] = route
        future.set_result(client)
        return client

    @property
    def bytes_sent(self) -> int:
        """Bytes every connection of the pool has sent, closed ones included."""
        return self._retired_bytes_sent + sum(c.bytes_sent for c in self._clients.values())

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
