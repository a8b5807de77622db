"""Automatic failover, the loop around ``failover.plan``: observe, decide, act.

- **Observe**: every ``check_interval_s`` each instance's ``status`` is asked for over its
  control interface with a short timeout; an instance that answers is healthy (and says its
  role and replica lag), one that does not keeps the time it last answered, and whether
  its port refused the connection (the process is gone) or only did not answer in time
  (hung or busy: a longer grace, ``Policy.writer_hung_after_s``).
- **Decide**: ``failover.plan`` on that ``ClusterView`` (pure).
- **Act**: ``Promote`` calls the reader's ``promote`` (volume recovery raises the epoch,
  so the old writer, if it is only paused, is fenced by storage); the roles are then
  recorded, and the topology the endpoints route by (``router.proxy.Topology``) follows,
  so the writer endpoint hands its held connections to the new writer. ``Follow`` for a
  reader is logged: re-pointing a running reader at a new writer is not implemented yet
  (a reader keeps following the address it was started with), so the other readers must
  be restarted after a failover; issue 5 continues there.

The loop holds no state the decision needs beyond what it observed; it can be restarted
at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from borealis.control.failover import (
    ClusterView,
    Follow,
    InstanceView,
    NoCandidate,
    Policy,
    Promote,
    Role,
    plan,
)
from borealis.errors import BorealisError
from borealis.router.proxy import Member
from borealis.transport.routes import Routes

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.2
CHECK_TIMEOUT_S = 0.5
PROMOTE_TIMEOUT_S = 60.0


@dataclass
class Managed:
    """An instance the orchestrator watches: how to reach it and what it last knew."""

    instance_id: str
    control_address: str            # host:port of its control interface
    pg_address: tuple[str, int]     # where it serves PostgreSQL
    az: str
    role: Role
    promotion_tier: int = 1
    healthy: bool = False
    last_seen_s: float = 0.0
    lag_ms: float | None = None
    refused: bool = False   # the last check found its port closed: the process is gone
    state: str = ""         # what it last said of itself: "serving" or "fenced"
    epoch: int = 0          # the volume epoch it last said it writes at
    stalled_s: float = 0.0  # a writer's commits waiting with its VDL stuck, as it said


@dataclass
class FailoverEvent:
    at_s: float
    old_writer: str | None
    new_writer: str
    promote_s: float


@dataclass
class Orchestrator:
    instances: list[Managed]
    policy: Policy = field(default_factory=Policy)
    check_interval_s: float = CHECK_INTERVAL_S
    events: list[FailoverEvent] = field(default_factory=list)
    storage_writable: Callable[[], bool] = lambda: True
    """Whether a write quorum of every PG answers (the control plane's storage checks)."""
    _clients: dict[str, Any] = field(default_factory=dict)
    # Where each instance's control interface is reached: directly, or through the chaos
    # suite's fault proxy (``transport.routes``); a client whose route changed is replaced.
    _routes: Routes = field(default_factory=lambda: Routes.from_env("control-plane"))
    _routed: dict[str, str] = field(default_factory=dict)

    # -- the topology the router reads ------------------------------------------------
    def members(self) -> list[Member]:
        return [Member(i.instance_id, i.pg_address, i.role.value, i.healthy)
                for i in self.instances]

    # -- observe --------------------------------------------------------------------------
    async def _client(self, instance: Managed) -> Any:
        from borealis.instance.remote import InstanceClient

        route = self._routes.resolve(instance.control_address)
        client = self._clients.get(instance.instance_id)
        if client is not None and self._routed.get(instance.instance_id) != route:
            del self._clients[instance.instance_id]
            with contextlib.suppress(BorealisError, OSError):
                await client.close()
            client = None
        if client is None:
            client = await InstanceClient.connect(route, timeout_s=CHECK_TIMEOUT_S)
            self._clients[instance.instance_id] = client
            self._routed[instance.instance_id] = route
        return client

    async def _check(self, instance: Managed, now_s: float) -> None:
        try:
            client = await self._client(instance)
            status = await client.status(timeout_s=CHECK_TIMEOUT_S)
        except (BorealisError, OSError, TimeoutError) as exc:
            if instance.healthy:
                log.warning("instance unreachable instance=%s: %s", instance.instance_id, exc)
            instance.healthy = False
            instance.refused = isinstance(exc.__cause__, ConnectionRefusedError) or \
                isinstance(exc, ConnectionRefusedError)
            stale = self._clients.pop(instance.instance_id, None)
            if stale is not None:
                with contextlib.suppress(BorealisError, OSError):
                    await stale.close()
            return
        instance.state = str(status.get("state") or "")
        epoch = status.get("epoch")
        instance.epoch = epoch if isinstance(epoch, int) else 0
        instance.healthy = instance.state == "serving"
        instance.refused = False
        instance.last_seen_s = now_s
        instance.role = Role.WRITER if status.get("role") == "writer" else Role.READER
        lag = status.get("lag_ms")
        instance.lag_ms = float(lag) if isinstance(lag, int | float) else None
        stalled = status.get("stalled_s")
        instance.stalled_s = float(stalled) if isinstance(stalled, int | float) else 0.0

    async def observe(self) -> ClusterView:
        now_s = time.monotonic()
        await asyncio.gather(*(self._check(i, now_s) for i in self.instances))
        writers = [i for i in self.instances if i.role is Role.WRITER]
        if len(writers) > 1:
            # A deposed old writer (paused through a failover, idle since) still says
            # "writer, serving" until a write of its own reaches storage: the writer with
            # the newest epoch wins, the others are readers to the plan and deposed (the
            # control plane restarts them as readers). Never the lowest id: that handed the
            # writer endpoint back to a deposed writer (found by the chaos suite).
            ranked = sorted(writers, key=lambda i: (not i.healthy, -i.epoch, i.instance_id))
            for extra in ranked[1:]:
                extra.role = Role.READER
                extra.healthy = False
                extra.state = "deposed"
        return ClusterView(tuple(InstanceView(
            i.instance_id, i.role, i.az, i.healthy, i.last_seen_s, i.lag_ms,
            i.promotion_tier, refused=i.refused, stalled_s=i.stalled_s)
            for i in self.instances), now_s, self.storage_writable())

    # -- decide and act -------------------------------------------------------------------
    async def step(self, *, target: str | None = None) -> None:
        view = await self.observe()
        for action in plan(view, self.policy, target=target):
            if isinstance(action, Promote):
                await self._promote(view, action.instance_id)
            elif isinstance(action, NoCandidate):
                log.error("no failover possible: %s", action.reason)
            elif isinstance(action, Follow):
                # Re-pointing is the supervisor's (the control plane's ``follow``); seen
                # every step until it is done, so not worth more than a debug line.
                log.debug("instance=%s should follow writer=%s", action.instance_id,
                          action.writer)

    async def _promote(self, view: ClusterView, instance_id: str) -> None:
        old = next((i.instance_id for i in view.instances if i.role is Role.WRITER), None)
        chosen = next(i for i in self.instances if i.instance_id == instance_id)
        log.warning("failing over old_writer=%s new_writer=%s", old, instance_id)
        started = time.monotonic()
        client = await self._client(chosen)
        await client.rpc.call("promote", None, timeout_s=PROMOTE_TIMEOUT_S)
        for instance in self.instances:
            if instance.instance_id == instance_id:
                instance.role = Role.WRITER
                instance.healthy = True
            elif instance.role is Role.WRITER:
                instance.role = Role.READER
                instance.healthy = False
        elapsed = time.monotonic() - started
        self.events.append(FailoverEvent(time.time(), old, instance_id, elapsed))
        log.warning("failed over to new_writer=%s in %.3f s (promotion)", instance_id,
                    elapsed)

    async def run(self) -> None:
        """Observe, decide and act until cancelled."""
        while True:
            try:
                await self.step()
            except (BorealisError, OSError) as exc:
                log.warning("failover step failed: %s", exc)
            await asyncio.sleep(self.check_interval_s)

    async def close(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(BorealisError, OSError):
                await client.close()
        self._clients.clear()


class ControlThread:
    """The failover loop and an endpoint router on their own event loop in a thread, for
    a process whose main thread is busy with blocking work (a benchmark, a test)."""

    def __init__(self, orchestrator: Orchestrator, *, hold_s: float = 30.0) -> None:
        from borealis.router.proxy import Router

        self.orchestrator = orchestrator
        self.router = Router(orchestrator, hold_s=hold_s)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.task: asyncio.Task[None] = self.call(self._start())

    async def _start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.orchestrator.run())

    def call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def serve(self, endpoint: Any, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        bound: tuple[str, int] = self.call(self.router.serve(endpoint, host, port))
        return bound

    def stop(self) -> None:
        async def shutdown() -> None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            await self.router.close()
            await self.orchestrator.close()

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
