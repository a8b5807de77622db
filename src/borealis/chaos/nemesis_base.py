"""What every nemesis is built on: the base class, the context it acts through, and errors.

Kept apart from the nemeses themselves (``nemesis``, ``nemesis_disk``, ``nemesis_net``,
``nemesis_proxy``, and ``nemesis_partition`` which the last two share) so that each of
those modules imports this one and ``nemesis`` can import them all to build the registry,
without an import cycle.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from borealis.chaos.clients import Recorder
from borealis.chaos.cluster import ChaosCluster
from borealis.chaos.history import OpType
from borealis.errors import BorealisError

log = logging.getLogger("borealis.chaos.nemesis")

STATUS_RETRIES_MAX = 20
FENCE_WAIT_S = 20.0


class NemesisError(BorealisError):
    """A nemesis could not act (no writer to kill, the API did not answer)."""

    code = "nemesis"


@dataclass
class NemesisContext:
    """What a nemesis works with: the cluster, the history, a seeded random source."""

    cluster: ChaosCluster
    recorder: Recorder
    rng: random.Random
    actions: list[dict[str, Any]] = field(default_factory=list)

    def act(self, f: str, value: dict[str, Any],
            action: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Do one action, recorded as a nemesis operation; its answer completes it."""
        invoke = self.recorder.invoke("nemesis", f, value)
        started = time.monotonic()
        try:
            result = action()
        except (BorealisError, OSError) as exc:
            self.recorder.complete(invoke, OpType.INFO, {**value, "error": str(exc)})
            self.actions.append({"t_s": self._t(invoke.time_ns), "f": f, **value,
                                 "error": str(exc)})
            log.warning("nemesis %s failed: %s", f, exc)
            return None
        done = {**value, **(result or {}), "took_s": round(time.monotonic() - started, 3)}
        self.recorder.complete(invoke, OpType.OK, done)
        self.actions.append({"t_s": self._t(invoke.time_ns), "f": f, **done})
        log.info("nemesis %s %s", f, done)
        return done

    @staticmethod
    def _t(time_ns: int) -> float:
        return round(time_ns / 1e9, 3)

    def status(self) -> dict[str, Any]:
        """The cluster's view; the API may be busy during a fault, so retried a little."""
        for attempt in range(STATUS_RETRIES_MAX):
            try:
                return self.cluster.status()
            except BorealisError:
                if attempt == STATUS_RETRIES_MAX - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def writer(self) -> dict[str, Any] | None:
        writer = self.cluster.writer(self.status())
        if writer is None or writer["state"] != "available" or not writer.get("pid"):
            return None
        return writer

    def wait_writer(self, *, other_than: str | None, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            writer = self.writer()
            if writer is not None and writer["id"] != other_than:
                return writer
            time.sleep(0.2)
        return None

    def observe(self, what: str, found: dict[str, Any]) -> None:
        """Record something the nemesis saw (a new writer, a fencing) as an operation."""
        self.act("observe", {"what": what}, lambda: found)

    def up(self) -> dict[str, Any] | None:
        return self.act("start", {"command": "borealis up"}, self.cluster.up)


def sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


class Nemesis:
    """Injects faults until a deadline (``run``); ``heal`` undoes them (idempotent)."""

    name: ClassVar[str]
    cluster_env: ClassVar[Mapping[str, str]] = {}
    """Environment the run's cluster must be started with (e.g. a storage crash model)."""
    cluster_network: ClassVar[str] = "loopback"
    """The network mode the run's cluster must be in (``ClusterShape.network``): "netns" for
    the nemeses that cut links with nftables (``nemesis_net.shape_for``)."""

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        raise NotImplementedError

    def heal(self, ctx: NemesisContext) -> None:
        pass


def last_event_seq(ctx: NemesisContext) -> int:
    """The sequence number of the control plane's latest event (0: none, or no answer)."""
    with contextlib.suppress(BorealisError):
        events = ctx.cluster.events()
        return int(events[-1]["seq"]) if events else 0
    return 0


def wait_fenced(ctx: NemesisContext, instance_id: str, after: int,
                 deadline: float) -> dict[str, Any]:
    """What the control plane did with the old writer after it woke up (events naming it,
    until it is restarted or the fault window ends)."""
    deadline = min(deadline, time.monotonic() + FENCE_WAIT_S)
    seen: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(BorealisError):
            for event in ctx.cluster.events(after):
                after = int(event["seq"])
                if event.get("instance") == instance_id or event.get("old_writer") == instance_id:
                    seen.append(str(event["kind"]))
        if "instance-restart" in seen:
            break
        time.sleep(0.5)
    return {"events": seen}


def fails(message: str) -> Callable[[], dict[str, Any]]:
    """An action that fails with ``message``: records that a nemesis could not act."""
    def fail() -> dict[str, Any]:
        raise NemesisError(message)

    return fail
