"""Partitions, whatever cuts the links: which hosts a variant cuts off, and a partition's course.

Two implementations cut links: nftables rules between network namespaces (``nemesis_net``,
root only) and blocked links of the fault proxy (``nemesis_proxy``, anywhere). They share
this module so that one seed chooses the same variant in both and the same is expected of
the cluster. The choice is pure: ``plan_partition`` and ``plan_one_way`` take the run's
random source, the hosts and the writer, and give a ``Cut`` — drop what ``sources`` send to
``targets`` (and back, ``both_ways``). The course, ``run_partition`` and ``run_one_way``
(cut, hold, watch for a new writer, heal, watch the old writer being fenced), acts only
through a ``Cutter``: ``start``, ``cut`` and ``heal``.

Hosts are named as the cluster's processes are: storage node ids, instance ids, and
``control-plane`` (``CONTROL_PLANE``) for the control plane — in netns mode its namespace,
shared with the router and the clients; through the proxy, the control plane's RPC pool.

The variant is the first draw from the run's random source, so it depends on the seed
alone (``kind_for_seed``): a test picks the variant it needs by its seed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from borealis.chaos.nemesis_base import (
    NemesisContext,
    fails,
    last_event_seq,
    sleep_until,
    wait_fenced,
)
from borealis.control.netns import CONTROL_PLANE

HOLD_S_MAX = 30.0
"""The longest a fault is held, whatever the window."""
HOLD_AFTER_FAILOVER_S = 3.0
"""How long the old writer stays isolated once a new one serves, before the heal (the rest
of the window is for watching it being fenced)."""
PARTITIONS = ("isolate-writer", "az", "halves")
ONE_WAY_PARTITIONS = ("writer-deaf", "az-deaf")


@dataclass(frozen=True, slots=True)
class Hosts:
    """The cluster's hosts as a partition sees them: storage nodes by AZ, and instances."""

    by_az: dict[str, tuple[str, ...]]
    instances: tuple[str, ...]

    def __post_init__(self) -> None:
        assert self.by_az, "a cluster has storage nodes"
        for nodes in self.by_az.values():
            assert list(nodes) == sorted(nodes), nodes
        assert list(self.instances) == sorted(self.instances), self.instances
        assert CONTROL_PLANE not in self.instances
        assert CONTROL_PLANE not in self.nodes

    @property
    def nodes(self) -> list[str]:
        return sorted(n for nodes in self.by_az.values() for n in nodes)


@dataclass(frozen=True, slots=True)
class Cut:
    """Drop what every host of ``sources`` sends to every host of ``targets``; with
    ``both_ways``, what they send back too. ``detail`` is what the history records beside
    the kind (the AZ, the writer)."""

    kind: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    both_ways: bool
    detail: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.kind in PARTITIONS or self.kind in ONE_WAY_PARTITIONS, self.kind
        assert self.sources, "a cut cuts someone off"
        assert self.targets, "a cut cuts someone off from someone"
        assert list(self.sources) == sorted(set(self.sources)), self.sources
        assert list(self.targets) == sorted(set(self.targets)), self.targets
        assert not set(self.sources) & set(self.targets), "no host is cut off from itself"
        assert self.both_ways is (self.kind in PARTITIONS), "partitions cut both ways"

    def value(self) -> dict[str, Any]:
        """The nemesis operation's value in the history."""
        return {"kind": self.kind, **self.detail, "from": list(self.sources),
                "to": list(self.targets), "both_ways": self.both_ways}


def _cut(kind: str, sources: Sequence[str], targets: Sequence[str], *, both_ways: bool,
         **detail: str) -> Cut:
    return Cut(kind, tuple(sorted(sources)), tuple(sorted(targets)), both_ways, detail)


def kind_for_seed(seed: int, kinds: Sequence[str]) -> str:
    """The variant a run with ``seed`` chooses (the first draw of its random source)."""
    return random.Random(seed).choice(kinds)


def plan_partition(kind: str, rng: random.Random, hosts: Hosts,
                   writer: str | None) -> Cut | None:
    """The cut of a ``partition`` of ``kind`` (None: isolate-writer without a writer).

    *isolate-writer*: the writer from every storage node and the control plane; *az*: one
    AZ's storage nodes from everything else; *halves*: the storage nodes split in two at
    random, the instances and the control plane with the first half."""
    assert kind in PARTITIONS, kind
    nodes = hosts.nodes
    if kind == "isolate-writer":
        if writer is None:
            return None
        assert writer in hosts.instances, writer
        return _cut(kind, [writer], [*nodes, CONTROL_PLANE], both_ways=True, writer=writer)
    if kind == "az":
        az = rng.choice(sorted(hosts.by_az))
        rest = [n for n in nodes if n not in hosts.by_az[az]]
        return _cut(kind, hosts.by_az[az], [*rest, *hosts.instances, CONTROL_PLANE],
                    both_ways=True, az=az)
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    half = len(shuffled) // 2
    return _cut(kind, shuffled[half:], [*shuffled[:half], *hosts.instances, CONTROL_PLANE],
                both_ways=True)


def plan_one_way(kind: str, rng: random.Random, hosts: Hosts,
                 writer: str | None) -> Cut | None:
    """The cut of a ``partition-one-way`` of ``kind`` (None: writer-deaf without a writer).

    *writer-deaf*: the writer's packets reach the storage nodes, their replies are dropped;
    *az-deaf*: one AZ's storage nodes send, and hear nothing back."""
    assert kind in ONE_WAY_PARTITIONS, kind
    nodes = hosts.nodes
    if kind == "writer-deaf":
        if writer is None:
            return None
        assert writer in hosts.instances, writer
        return _cut(kind, nodes, [writer], both_ways=False, writer=writer)
    az = rng.choice(sorted(hosts.by_az))
    rest = [n for n in nodes if n not in hosts.by_az[az]]
    return _cut(kind, [*rest, *hosts.instances, CONTROL_PLANE], hosts.by_az[az],
                both_ways=False, az=az)


# --- the course of a partition (through a Cutter) --------------------------------------------


class Cutter(Protocol):
    """What cuts the links: nftables rules (``nemesis_net``) or the fault proxy."""

    def start(self, ctx: NemesisContext) -> object:
        """Get ready to cut (or refuse, before touching anything)."""

    def cut(self, ctx: NemesisContext, f: str, cut: Cut) -> bool:
        """Apply ``cut``, recorded as the nemesis operation ``f``; whether it was."""

    def heal(self, ctx: NemesisContext) -> None:
        """Undo every cut (idempotent)."""


def hosts(ctx: NemesisContext) -> Hosts:
    """The hosts, from the cluster's view."""
    view = ctx.status()
    by_az: dict[str, list[str]] = {}
    for node in ctx.cluster.storage_nodes(view=view):
        by_az.setdefault(str(node["az"]), []).append(str(node["id"]))
    return Hosts({az: tuple(sorted(nodes)) for az, nodes in by_az.items()},
                 tuple(sorted(str(i["id"]) for i in ctx.cluster.instances(view=view))))


def hold_until(deadline: float) -> float:
    return min(deadline, time.monotonic() + HOLD_S_MAX)


def _writer_id(ctx: NemesisContext) -> str | None:
    writer = ctx.writer()
    return None if writer is None else str(writer["id"])


def run_partition(cutter: Cutter, ctx: NemesisContext, deadline: float) -> None:
    """A seeded ``partition``, held until the window ends (at most ``HOLD_S_MAX``), healed.

    isolate-writer is held until another instance serves as the writer (and
    ``HOLD_AFTER_FAILOVER_S`` more), then healed; the rest of the window watches what the
    control plane does with the old writer (the events naming it since the cut)."""
    cutter.start(ctx)
    kind = ctx.rng.choice(PARTITIONS)
    found = hosts(ctx)
    writer = _writer_id(ctx) if kind == "isolate-writer" else None
    plan = plan_partition(kind, ctx.rng, found, writer)
    if plan is None:
        ctx.act("partition", {"kind": kind}, fails("no available writer to isolate"))
    elif kind == "isolate-writer":
        _isolate_writer(cutter, ctx, plan, deadline)
    else:
        cutter.cut(ctx, "partition", plan)
        sleep_until(hold_until(deadline))
        cutter.heal(ctx)
    sleep_until(deadline)


def _isolate_writer(cutter: Cutter, ctx: NemesisContext, plan: Cut, deadline: float) -> None:
    old = plan.detail["writer"]
    # Events naming the old writer are watched from the cut on: a control plane that still
    # hears it (through the proxy its status checks are not cut) deposes it before the heal.
    events_before = last_event_seq(ctx)
    if not cutter.cut(ctx, "partition", plan):
        return
    started = time.monotonic()
    until = hold_until(deadline)
    new = ctx.wait_writer(other_than=old, timeout_s=max(0.0, until - started))
    ctx.observe("new writer", {"writer": None if new is None else new["id"],
                               "after_s": round(time.monotonic() - started, 3)})
    if new is not None:
        until = min(until, time.monotonic() + HOLD_AFTER_FAILOVER_S)
    sleep_until(until)
    cutter.heal(ctx)
    if new is not None:
        ctx.act("observe", {"what": "old writer fenced", "instance": old},
                lambda: wait_fenced(ctx, old, events_before, deadline))


def run_one_way(cutter: Cutter, ctx: NemesisContext, deadline: float) -> None:
    """A seeded ``partition-one-way``, held until the window ends (at most ``HOLD_S_MAX``),
    healed."""
    cutter.start(ctx)
    kind = ctx.rng.choice(ONE_WAY_PARTITIONS)
    found = hosts(ctx)
    writer = _writer_id(ctx) if kind == "writer-deaf" else None
    plan = plan_one_way(kind, ctx.rng, found, writer)
    if plan is None:
        ctx.act("partition-one-way", {"kind": kind}, fails("no available writer to partition"))
        sleep_until(deadline)
        return
    cutter.cut(ctx, "partition-one-way", plan)
    sleep_until(hold_until(deadline))
    cutter.heal(ctx)
    sleep_until(deadline)
