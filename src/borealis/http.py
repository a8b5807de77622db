"""A small HTTP/1.1 server on asyncio, for the control plane's API and every process's
Prometheus ``/metrics``.

Only what those need: one request per connection at a time with keep-alive, a
``Content-Length`` body (no chunked requests), JSON or text answers. A request that is
malformed or too large gets a 400/413 and its connection closed; a handler that raises
``HttpError`` answers with its status and a JSON ``{"error": ...}`` body; any other
exception is logged and answered 500, and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

HEAD_BYTES_MAX = 16 * 1024
BODY_BYTES_MAX = 1 << 20
IDLE_TIMEOUT_S = 60.0

REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
           400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error",
           503: "Service Unavailable"}

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, f"the body is not JSON: {exc}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, (json.dumps(value, indent=1) + "\n").encode())

    @classmethod
    def text(cls, text: str, content_type: str = PROMETHEUS_TEXT) -> Response:
        return cls(200, text.encode(), content_type)


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    """Serves ``handler`` on one address until closed."""

    def __init__(self, handler: Handler, *, name: str = "http") -> None:
        self.handler = handler
        self.name = name
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port)
        bound = self._server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await asyncio.wait_for(_read_request(reader), IDLE_TIMEOUT_S)
                except HttpError as exc:
                    _write(writer, Response.json({"error": exc.message}, exc.status), False)
                    await writer.drain()
                    return
                if request is None:
                    return
                response = await self._answer(request)
                keep = request.headers.get("connection", "").lower() != "close"
                _write(writer, response, keep)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except HttpError as exc:
            return Response.json({"error": exc.message}, exc.status)
        except Exception:
            log.exception("%s: %s %s failed", self.name, request.method, request.path)
            return Response.json({"error": "internal error (see the server's log)"}, 500)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(413, "request head too large") from None
    if len(head) > HEAD_BYTES_MAX:
        raise HttpError(413, "request head too large")
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise HttpError(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise HttpError(400, f"unsupported protocol {version!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "malformed header line")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise HttpError(400, "chunked request bodies are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "malformed Content-Length") from None
    if length < 0 or length > BODY_BYTES_MAX:
        raise HttpError(413, f"body larger than {BODY_BYTES_MAX} bytes")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    return Request(method.upper(), url.path, query, headers, body)


def _write(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
    reason = REASONS.get(response.status, "Unknown")
    head = [f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    head += [f"{k}: {v}" for k, v in response.headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
