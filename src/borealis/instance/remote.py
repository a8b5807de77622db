"""A client of an instance's control interface (``borealis.instance.process``): what tests,
benchmarks and the cluster's control plane use (SQL, status, and the control plane's
``promote``, ``follow``, ``add_storage_node`` and ``replace_segment``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from borealis.engine.database import Result
from borealis.errors import ProtocolError
from borealis.transport.rpc import RpcClient, connect

EXECUTE_TIMEOUT_S = 60.0


class InstanceClient:
    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    @classmethod
    async def connect(cls, address: str, *, timeout_s: float = 5.0) -> InstanceClient:
        host, _, port = address.rpartition(":")
        return cls(await connect(host, int(port), timeout_s=timeout_s))

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
                      session: str = "default",
                      timeout_s: float = EXECUTE_TIMEOUT_S) -> Result:
        """Run ``sql`` in ``session`` (of this connection); typed errors as raised there."""
        if params is not None and not isinstance(params, dict):
            params = list(params)
        reply = await self.rpc.call("execute", [session, sql, params], timeout_s=timeout_s)
        try:
            columns, rows, changes = reply
            return Result([tuple(row) for row in rows], list(columns), int(changes))
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed execute reply: {exc}") from exc

    async def close_session(self, session: str) -> None:
        await self.rpc.call("close_session", session, timeout_s=EXECUTE_TIMEOUT_S)

    async def status(self, *, timeout_s: float = 5.0) -> dict[str, Any]:
        return _status(await self.rpc.call("status", None, timeout_s=timeout_s))

    async def promote(self, *, timeout_s: float = 60.0) -> dict[str, Any]:
        """Make this reader the writer; its new ``status``."""
        return _status(await self.rpc.call("promote", None, timeout_s=timeout_s))

    async def follow(self, writer_address: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """Re-point this reader to the writer at ``writer_address``; its new ``status``."""
        return _status(await self.rpc.call("follow", writer_address, timeout_s=timeout_s))

    async def add_storage_node(self, node: str, az: str, address: str, *,
                               timeout_s: float = 10.0) -> bool:
        """Make a storage node known to the writer's volume; False if it was already."""
        reply = await self.rpc.call("add_storage_node", [node, az, address],
                                    timeout_s=timeout_s)
        if not isinstance(reply, dict) or not isinstance(reply.get("added"), bool):
            raise ProtocolError("malformed add_storage_node reply")
        return reply["added"]

    async def replace_segment(self, pg: int, old_segment: str, node: str, *,
                              timeout_s: float = 150.0) -> str:
        """Rebuild ``old_segment`` of PG ``pg`` on ``node``; the new segment's id."""
        reply = await self.rpc.call("replace_segment", [pg, old_segment, node],
                                    timeout_s=timeout_s)
        if not isinstance(reply, str):
            raise ProtocolError("malformed replace_segment reply")
        return reply

    async def close(self) -> None:
        await self.rpc.close()


def _status(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise ProtocolError("malformed status reply")
    return reply
