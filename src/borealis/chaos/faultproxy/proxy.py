"""Links and the proxy: a ``Link`` listens on one address and forwards to one target; a
``FaultProxy`` hosts many named links in one event loop and changes their faults at run time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from typing import Any, Final

from borealis.chaos.faultproxy.connections import _Connection
from borealis.chaos.faultproxy.faults import (
    NO_FAULTS,
    BadFaultsError,
    Direction,
    DirectionStats,
    Faults,
    LinkExistsError,
    ListenError,
    UnknownLinkError,
    directions,
)

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
HELD_BYTES_MAX_DEFAULT: Final = 4 * 1024 * 1024
"""Delayed or blocked bytes one connection direction may hold before reading stops."""


class Link:
    """One listening address forwarding to one target, with the faults of both directions."""

    def __init__(self, name: str, target_host: str, target_port: int, *, frames: bool,
                 held_bytes_max: int, rng: random.Random) -> None:
        assert held_bytes_max > 0
        self.name = name
        self.target_host = target_host
        self.target_port = target_port
        self.frames = frames
        self.held_bytes_max = held_bytes_max
        self.rng = rng
        self.loop = asyncio.get_running_loop()
        self.faults: dict[Direction, Faults] = {d: NO_FAULTS for d in Direction}
        self.stats: dict[Direction, DirectionStats] = {d: DirectionStats() for d in Direction}
        self.connections: set[_Connection] = set()
        self.connection_ids = itertools.count(1)
        self.connections_total = 0
        self.connect_failures = 0
        self.resets = 0
        self.server: asyncio.AbstractServer | None = None
        self.listen: tuple[str, int] = (HOST, 0)

    async def start(self, port: int) -> tuple[str, int]:
        try:
            self.server = await self.loop.create_server(
                lambda: _Connection(self).client_side, HOST, port)
        except OSError as exc:
            raise ListenError(f"link {self.name} cannot listen on {HOST}:{port}: {exc}") \
                from exc
        bound = self.server.sockets[0].getsockname()
        self.listen = (bound[0], bound[1])
        return self.listen

    def set_faults(self, direction: Direction, faults: Faults) -> None:
        if faults.frame_only and not self.frames:
            raise BadFaultsError(f"link {self.name} is not a frame link: duplicate_probability "
                                 "and frame_delay_ms_max need frames=true")
        old = self.faults[direction]
        self.faults[direction] = faults
        if old != faults:
            logger.info("fault proxy faults link=%s direction=%s faults=%s", self.name,
                        direction.value, faults.to_json())
        for connection in list(self.connections):
            connection.faults_changed(direction, old, faults)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "listen": f"{self.listen[0]}:{self.listen[1]}",
            "target": f"{self.target_host}:{self.target_port}",
            "frames": self.frames,
            "connections_open": len(self.connections),
            "connections_total": self.connections_total,
            "connect_failures": self.connect_failures,
            "resets": self.resets,
            "faults": {d.value: self.faults[d].to_json() for d in Direction},
        }
        for d in Direction:
            held = sum(c.pipe(d).held_bytes for c in self.connections)
            out[d.value] = {**self.stats[d].to_json(), "held_bytes": held}
        return out

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.reset("link closed")
        if self.server is not None:
            await self.server.wait_closed()


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise BadFaultsError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


class FaultProxy:
    """Many named links in one event loop; faults change at run time.

    ``seed`` seeds the one random source of every fault (log it to replay a run's draws;
    the timing of chunks still varies).
    """

    def __init__(self, *, seed: int | None = None,
                 held_bytes_max: int = HELD_BYTES_MAX_DEFAULT) -> None:
        assert held_bytes_max > 0
        self.seed = seed if seed is not None else random.randrange(2**32)
        self.rng = random.Random(self.seed)
        self.held_bytes_max = held_bytes_max
        self.links: dict[str, Link] = {}

    def link(self, name: str) -> Link:
        link = self.links.get(name)
        if link is None:
            raise UnknownLinkError(f"no link named {name!r}")
        return link

    async def add_link(self, name: str, target_host: str, target_port: int, *,
                       listen_port: int = 0, frames: bool = False) -> tuple[str, int]:
        """Listen on 127.0.0.1:``listen_port`` (0: any free port) and forward to the target;
        the address it listens on."""
        if not isinstance(name, str) or not name or "/" in name:
            raise BadFaultsError(f"a link name is a non-empty string without '/', not {name!r}")
        if type(target_port) is not int or not 0 < target_port <= 65535:
            raise BadFaultsError(f"target port must be 1-65535, not {target_port!r}")
        if type(listen_port) is not int or not 0 <= listen_port <= 65535:
            raise BadFaultsError(f"listen port must be 0-65535, not {listen_port!r}")
        if name in self.links:
            raise LinkExistsError(f"link {name!r} exists")
        link = Link(name, target_host, target_port, frames=frames,
                    held_bytes_max=self.held_bytes_max, rng=self.rng)
        self.links[name] = link
        try:
            listen = await link.start(listen_port)
        except BaseException:
            del self.links[name]
            raise
        logger.info("fault proxy link=%s listen=%s:%d target=%s:%d frames=%s", name, *listen,
                    target_host, target_port, frames)
        return listen

    async def remove_link(self, name: str) -> None:
        link = self.link(name)
        del self.links[name]
        await link.close()

    def faults(self, name: str, direction: str | Direction) -> Faults:
        chosen = directions(direction)
        if len(chosen) != 1:
            raise BadFaultsError("faults() reads one direction, not both")
        return self.link(name).faults[chosen[0]]

    def set_faults(self, name: str, direction: str | Direction, *, replace: bool = False,
                   **changes: Any) -> None:
        """Change the named fault fields of ``direction`` (or ``"both"``); the others keep
        their values, or return to none with ``replace``."""
        link = self.link(name)
        chosen = directions(direction)
        new = [(d, (NO_FAULTS if replace else link.faults[d]).updated(changes)) for d in chosen]
        for d, faults in new:
            link.set_faults(d, faults)

    def replace_faults(self, name: str, direction: str | Direction, faults: Faults) -> None:
        link = self.link(name)
        for d in directions(direction):
            link.set_faults(d, faults)

    def heal(self, name: str) -> None:
        """Clear every fault of one link and release what it holds (idempotent)."""
        link = self.link(name)
        for d in Direction:
            link.set_faults(d, NO_FAULTS)

    def heal_all(self) -> None:
        """Clear every fault of every link and release every held byte (idempotent)."""
        for link in list(self.links.values()):
            for d in Direction:
                link.set_faults(d, NO_FAULTS)

    def status(self) -> dict[str, Any]:
        return {"seed": self.seed, "held_bytes_max": self.held_bytes_max,
                "links": {name: link.status() for name, link in self.links.items()}}

    async def close(self) -> None:
        links, self.links = list(self.links.values()), {}
        for link in links:
            await link.close()
