"""Following the control plane's topology: long polls of ``GET /v1/topology``.

The router asks ``/v1/topology?after=REV&wait=SECONDS`` in a loop: the control plane
answers as soon as its revision passes ``REV``, or after ``SECONDS`` with what it has, so a
change reaches the router within one round trip and an idle router asks every ``wait_s``.
The first request asks with ``wait=0``: a router that starts wants a topology at once; so
does the first after an outage.

While the control plane cannot be reached (or answers something that is not a topology),
the router keeps routing by the last topology it applied and asks again, backing off to
``RETRY_S_MAX``; an outage is logged when it starts and when it ends, not per attempt.

The HTTP client is the least that talks to ``borealis.http.HttpServer``: one GET per
connection (``Connection: close``), a ``Content-Length`` body, JSON. No new dependency, and
no thread: it runs on the router's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from borealis.errors import ConfigError, ProtocolError, TransportError
from borealis.router.topology import TopologySnapshot, parse_topology

log = logging.getLogger(__name__)

POLL_WAIT_S_DEFAULT = 20.0
"""How long the control plane may hold a long poll: under ``borealis.http``'s idle timeout."""
REQUEST_SLACK_S = 5.0
"""A request's deadline past its ``wait``: the control plane answers at ``wait``."""
CONNECT_TIMEOUT_S = 2.0
RETRY_S_MIN = 0.1
RETRY_S_MAX = 2.0
POLL_INTERVAL_S_MIN = 0.05
"""Between two polls that brought nothing new: a control plane that answers at once without
a change (one that ignores ``wait``) must not make the router spin."""
HEAD_BYTES_MAX = 16 * 1024
BODY_BYTES_MAX = 8 << 20


@dataclass(frozen=True, slots=True)
class ControlUrl:
    host: str
    port: int
    base_path: str = ""   # a prefix before /v1/..., without the trailing slash

    @classmethod
    def parse(cls, text: str) -> ControlUrl:
        """``http://HOST:PORT[/prefix]``; ConfigError otherwise."""
        try:
            url = urlsplit(text)
            port = url.port
        except ValueError as exc:
            raise ConfigError(f"control plane URL {text!r}: {exc}") from exc
        if url.scheme != "http" or not url.hostname or port is None:
            raise ConfigError(f"control plane URL must be http://HOST:PORT, got {text!r}")
        if url.query or url.fragment:
            raise ConfigError(f"control plane URL {text!r}: no query or fragment")
        return cls(url.hostname, port, url.path.rstrip("/"))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.base_path}"


async def get_json(url: ControlUrl, target: str, *, timeout_s: float) -> Any:
    """``GET base_path + target`` and its JSON body. TransportError when the server cannot
    be reached, times out or answers other than 200; ProtocolError when the answer is not
    HTTP or not JSON."""
    try:
        return await asyncio.wait_for(_get_json(url, target), timeout_s)
    except TimeoutError as exc:
        raise TransportError(f"{url}: no answer to GET {target} in {timeout_s} s") from exc
    except asyncio.IncompleteReadError as exc:
        raise TransportError(f"{url}: GET {target}: the connection closed before the "
                             "answer was complete") from exc
    except OSError as exc:
        raise TransportError(f"{url}: GET {target}: {exc}") from exc
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError(f"{url}: GET {target}: response head too large") from exc


async def _get_json(url: ControlUrl, target: str) -> Any:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(url.host, url.port, limit=HEAD_BYTES_MAX), CONNECT_TIMEOUT_S)
    try:
        host = f"[{url.host}]" if ":" in url.host else url.host
        writer.write((f"GET {url.base_path}{target} HTTP/1.1\r\nHost: {host}:{url.port}\r\n"
                      "Accept: application/json\r\nConnection: close\r\n\r\n").encode("latin-1"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers = _parse_head(url, head)
        length_text = headers.get("content-length")
        if length_text is not None:
            if not length_text.isdigit() or int(length_text) > BODY_BYTES_MAX:
                raise ProtocolError(f"{url}: bad Content-Length {length_text!r}")
            body = await reader.readexactly(int(length_text))
        else:
            body = b""
            while chunk := await reader.read(BODY_BYTES_MAX + 1 - len(body)):
                body += chunk
                if len(body) > BODY_BYTES_MAX:
                    raise ProtocolError(f"{url}: body larger than {BODY_BYTES_MAX} bytes")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    if status != 200:
        raise TransportError(f"{url}: GET {target} answered {status}: "
                             f"{body[:200].decode('utf-8', 'replace').strip()}")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"{url}: GET {target}: the body is not JSON: {exc}") from exc


def _parse_head(url: ControlUrl, head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"{url}: not an HTTP/1.x answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


OnTopology = Callable[[TopologySnapshot], Awaitable[None]]


class TopologyFollower:
    """Calls ``on_topology`` with every new topology the control plane publishes, in order,
    one at a time; runs until cancelled."""

    def __init__(self, url: ControlUrl, on_topology: OnTopology, *,
                 wait_s: float = POLL_WAIT_S_DEFAULT) -> None:
        assert wait_s >= 0
        self.url = url
        self.on_topology = on_topology
        self.wait_s = wait_s
        self.revision: int | None = None   # of the last topology applied
        self.reachable = False
        self.polls = 0
        self._outage_since: float | None = None

    async def run(self) -> None:
        retry_s = RETRY_S_MIN
        while True:
            started = time.monotonic()
            # At start and after an outage, ask without waiting: a control plane that came
            # back with its revision behind ours (a fresh store) would otherwise hold the
            # poll for ``wait_s`` before telling.
            resync = self.revision is None or self._outage_since is not None
            wait_s = 0.0 if resync else self.wait_s
            after = 0 if self.revision is None else self.revision
            try:
                doc = await get_json(self.url, f"/v1/topology?after={after}&wait={wait_s:g}",
                                     timeout_s=wait_s + REQUEST_SLACK_S)
                snapshot = parse_topology(doc)
            except (TransportError, ProtocolError) as exc:
                self._failed(exc)
                await asyncio.sleep(retry_s)
                retry_s = min(RETRY_S_MAX, retry_s * 2)
                continue
            self.polls += 1
            self._reached()
            retry_s = RETRY_S_MIN
            if snapshot.revision != self.revision:
                if self.revision is not None and snapshot.revision < self.revision:
                    # The control plane lost its history (restarted on a fresh store):
                    # what it says now is still the truth to route by.
                    log.warning("control plane revision went back from=%d to=%d",
                                self.revision, snapshot.revision)
                await self.on_topology(snapshot)
                self.revision = snapshot.revision
                continue
            spent_s = time.monotonic() - started
            if spent_s < POLL_INTERVAL_S_MIN:
                await asyncio.sleep(POLL_INTERVAL_S_MIN - spent_s)

    def _failed(self, exc: Exception) -> None:
        self.reachable = False
        if self._outage_since is not None:
            return
        self._outage_since = time.monotonic()
        if self.revision is None:
            log.warning("control plane unreachable (no topology yet, retrying): %s", exc)
        else:
            log.warning("control plane unreachable (routing by revision=%d, retrying): %s",
                        self.revision, exc)

    def _reached(self) -> None:
        self.reachable = True
        if self._outage_since is None:
            return
        log.info("control plane reachable again url=%s after %.1f s", self.url,
                 time.monotonic() - self._outage_since)
        self._outage_since = None
