"""The router as its own process: endpoints from the control plane, served by ``Router``.

Three parts, each owning one thing: ``TopologyFollower`` brings each new topology from the
control plane; ``Router`` relays connections and keeps its listeners equal to the
endpoints it is given; this service joins them. Applying a topology sets the instances
first, then the endpoints, so a new endpoint's first connection already sees the
instances that came with it. An endpoint that cannot listen (its port is taken) is tried
again every ``BIND_RETRY_S``, logged once until it listens or changes.

The service is ready (``on_ready``, which the CLI turns into the ready file) once the first
topology is applied and every one of its endpoints listens; from then on a control plane
that cannot be reached changes nothing but ``control_plane_reachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from borealis.errors import ConfigError
from borealis.http import HttpServer
from borealis.metrics import Metrics, serve_metrics
from borealis.router.control_client import POLL_WAIT_S_DEFAULT, ControlUrl, TopologyFollower
from borealis.router.proxy import HOLD_S_DEFAULT, EndpointSpec, Router, StaticTopology
from borealis.router.topology import TopologySnapshot

log = logging.getLogger(__name__)

BIND_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class RouterConfig:
    control_url: ControlUrl
    hold_s: float = HOLD_S_DEFAULT
    metrics_listen: tuple[str, int] | None = None
    poll_wait_s: float = POLL_WAIT_S_DEFAULT

    def __post_init__(self) -> None:
        if self.hold_s < 0:
            raise ConfigError(f"hold_s must not be negative, got {self.hold_s}")
        if self.poll_wait_s <= 0:
            raise ConfigError(f"poll_wait_s must be positive, got {self.poll_wait_s}")


ReadyCallback = Callable[[dict[str, Any]], None]


class RouterService:
    def __init__(self, config: RouterConfig, *, on_ready: ReadyCallback | None = None) -> None:
        self.config = config
        self.on_ready = on_ready
        self.topology = StaticTopology()
        self.router = Router(self.topology, hold_s=config.hold_s)
        self.follower = TopologyFollower(config.control_url, self._apply,
                                         wait_s=config.poll_wait_s)
        self.metrics = Metrics()
        self.metrics_address: tuple[str, int] | None = None
        self.ready = False
        self.started_s = time.monotonic()
        self._wanted: list[EndpointSpec] = []
        self._revision: int | None = None
        self._bind_failures: dict[str, str] = {}   # endpoint -> why, as logged
        self._metrics_server: HttpServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._reconciling = asyncio.Lock()
        self._register_metrics()

    async def start(self) -> None:
        if self.config.metrics_listen is not None:
            try:
                self._metrics_server, self.metrics_address = await serve_metrics(
                    self.metrics, *self.config.metrics_listen, name="router metrics")
            except OSError as exc:
                host, port = self.config.metrics_listen
                raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
            log.info("router metrics serving address=%s:%d", *self.metrics_address)
        self._task = asyncio.create_task(self._run())

    async def wait(self) -> None:
        """Until the service fails (it runs until closed otherwise): a bug, raised here."""
        assert self._task is not None, "start() first"
        await asyncio.shield(self._task)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.router.close()
        if self._metrics_server is not None:
            await self._metrics_server.close()

    async def _run(self) -> None:
        follow = asyncio.create_task(self.follower.run())
        try:
            while True:
                done, _ = await asyncio.wait([follow], timeout=BIND_RETRY_S)
                if done:
                    follow.result()  # it returns only by raising
                    raise AssertionError("the topology follower returned")
                if self._bind_failures:
                    await self._reconcile()
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow

    async def _apply(self, snapshot: TopologySnapshot) -> None:
        self.topology.current = list(snapshot.members)
        self._wanted = list(snapshot.endpoints)
        self._revision = snapshot.revision
        log.info("topology applied revision=%d instances=%d endpoints=%d", snapshot.revision,
                 len(snapshot.members), len(snapshot.endpoints))
        await self._reconcile()

    async def _reconcile(self) -> None:
        # One at a time, each with the newest endpoint set: a retry that read the set
        # before a new topology came must not apply it after that topology.
        async with self._reconciling:
            await self._reconcile_once()

    async def _reconcile_once(self) -> None:
        failed = await self.router.apply(self._wanted)
        for name, exc in failed.items():
            why = str(exc)
            if self._bind_failures.get(name) != why:
                spec = next(s for s in self._wanted if s.endpoint.name == name)
                log.error("endpoint cannot listen name=%s address=%s:%d: %s (retrying every "
                          "%s s)", name, spec.host, spec.port, why, BIND_RETRY_S)
        for name in set(self._bind_failures) - set(failed):
            if name in self.router.addresses():
                log.info("endpoint listening after all name=%s", name)
        self._bind_failures = {name: str(exc) for name, exc in failed.items()}
        if not failed and not self.ready:
            self.ready = True
            if self.on_ready is not None:
                self.on_ready(self.ready_fields())

    def ready_fields(self) -> dict[str, Any]:
        """What the ready file says: where the endpoints (and the metrics) listen."""
        addresses = self.router.addresses()
        endpoints = {s.endpoint.name: _text(addresses[s.endpoint.name]) for s in self._wanted
                     if s.endpoint.name in addresses}
        metrics = None if self.metrics_address is None else _text(self.metrics_address)
        fields: dict[str, Any] = {
            "address": next(iter(endpoints.values()), metrics),
            "endpoints": endpoints,
            "revision": self._revision,
        }
        if metrics is not None:
            fields["metrics_address"] = metrics
        return fields

    def _register_metrics(self) -> None:
        self.router.register_metrics(self.metrics)
        p = "borealis_router_"
        self.metrics.gauge(p + "topology_revision", "Revision of the topology applied",
                           lambda: self.follower.revision)
        self.metrics.gauge(p + "control_plane_reachable",
                           "Whether the last request to the control plane succeeded (0/1)",
                           lambda: int(self.follower.reachable))
        self.metrics.gauge(p + "endpoints_not_listening",
                           "Endpoints of the topology that cannot listen (port taken)",
                           lambda: len(self._bind_failures))
        self.metrics.gauge(p + "uptime_seconds", "Seconds since the router started",
                           lambda: time.monotonic() - self.started_s)


def _text(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"
