"""An in-process ``RpcCaller``: the RPC contract without sockets, for tests.

``LocalClient`` hands each call straight to a handler, but sends the request and the reply
through the same msgpack encoding and error mapping as ``RpcClient``: a handler that works
here returns values that survive the wire, and a caller sees the same typed errors
(``"internal"`` for a handler bug, ``TransportError`` for a timeout or a closed client).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from borealis.errors import BorealisError, ProtocolError, TransportError
from borealis.transport import messages
from borealis.transport.frames import decode_body, encode_body
from borealis.transport.rpc import DispatchFunction, RpcHandler

logger = logging.getLogger(__name__)


class LocalClient:
    """Calls ``handler`` in this process as if it were an ``RpcServer`` behind a connection."""

    def __init__(
        self, handler: RpcHandler | DispatchFunction, *, peer: str = "local:0"
    ) -> None:
        dispatch = getattr(handler, "dispatch", None)
        if dispatch is None:
            assert callable(handler), "handler must have dispatch() or be callable"
            dispatch = handler
        self._dispatch: DispatchFunction = dispatch
        self.peer = peer
        self._closed = False
        self.calls = 0

    @property
    def closed(self) -> bool:
        return self._closed

    async def call(self, method: str, body: Any, *, timeout_s: float | None = None) -> Any:
        if self._closed:
            raise TransportError("local client closed")
        request_body = decode_body(encode_body(body))
        self.calls += 1
        try:
            async with asyncio.timeout(timeout_s):
                reply = await self._reply(method, request_body)
        except TimeoutError as exc:
            raise TransportError(f"{method} timed out after {timeout_s}s") from exc
        _, reply_body, error = messages.parse_reply(decode_body(encode_body(reply)))
        if error is not None:
            raise error
        return reply_body

    async def _reply(self, method: str, body: Any) -> list[Any]:
        """The reply message a server would send, with the same error mapping as the server."""
        try:
            result = self._dispatch(method, body, self.peer)
            if inspect.isawaitable(result):
                result = await result
        except BorealisError as exc:
            return messages.error(0, exc)
        except Exception as exc:
            return self._internal_error(method, exc)
        try:
            encode_body(result)
        except ProtocolError as exc:  # the handler returned something no server could send
            return self._internal_error(method, exc)
        return messages.response(0, result)

    def _internal_error(self, method: str, exc: Exception) -> list[Any]:
        logger.error("local handler failed method=%s", method, exc_info=exc)
        return messages.internal_error(
            0, f"internal error in {method}: {type(exc).__name__}: {exc}"
        )

    async def close(self) -> None:
        self._closed = True
