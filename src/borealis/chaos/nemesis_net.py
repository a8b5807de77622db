"""Network nemeses: partitions, one-way partitions and packet loss, as nftables rules.

They need a cluster in netns mode (``ClusterShape.network = "netns"``: a network namespace
per storage node and per instance, ``control.netns``), so they run only as root with ``ip``
and ``nft``; elsewhere they are refused as not implemented (exit 2), as is a run whose
cluster is on loopback. The hosts are named as the cluster's processes are: storage node
ids, instance ids, and ``control-plane`` for the root namespace (the control plane, the
router and the clients share it, so cutting a host off from the control plane also cuts it
off from the endpoints).

- ``partition`` (a seeded choice): *isolate-writer* — the writer cut off from every
  storage node and the control plane, longer than the hung-writer timeout: the control
  plane fails over, and the old writer, healed, must be fenced and never get a commit
  acknowledged; *az* — one AZ's storage nodes cut off from everything else: writes go on
  (4 of 6 segments); *halves* — the storage nodes split in two at random, the instances and
  the control plane with the first half.
- ``partition-one-way`` (a seeded choice): *writer-deaf* — the writer's packets reach the
  storage nodes, their replies are dropped; *az-deaf* — one AZ's storage nodes can send
  but receive nothing.
- ``packet-loss``: 10-30 % of the packets in and out of every storage node dropped, at
  random (``nft numgen``; ``net-chaos`` is the fault proxy's, ``nemesis_proxy``).

Each fault is held until the window ends (at most ``HOLD_S_MAX``), then healed: ``heal``
deletes the chaos table of every namespace, is idempotent, and runs again from the runner's
``finally``. ``nemesis`` builds the registry: ``register`` offers these nemeses where they
can run and names them in ``NOT_IMPLEMENTED`` with the reason elsewhere; ``shape_for`` is
the cluster the runner starts for them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from borealis.chaos.cluster import ClusterShape
from borealis.chaos.nemesis_base import (
    Nemesis,
    NemesisContext,
    fails,
    last_event_seq,
    sleep_until,
    wait_fenced,
)
from borealis.control.netns import CONTROL_PLANE, Faults, unavailable

HOLD_S_MAX = 30.0
"""The longest a fault is held, whatever the window."""
HOLD_AFTER_FAILOVER_S = 3.0
"""How long the old writer stays isolated once a new one serves, before the heal (the rest
of the window is for watching it being fenced)."""
LOSS_PERCENT = (10, 30)
PARTITIONS = ("isolate-writer", "az", "halves")
ONE_WAY_PARTITIONS = ("writer-deaf", "az-deaf")


class NetworkNemesis(Nemesis):
    """A nemesis whose faults are nftables rules (``control.netns.Faults``)."""

    def __init__(self) -> None:
        self.faults: Faults | None = None

    def start(self, ctx: NemesisContext) -> Faults:
        if ctx.cluster.shape.network != "netns":
            # Imported here: the runner imports the nemeses, not the other way round.
            from borealis.chaos.runner import NotImplementedNemesis

            raise NotImplementedNemesis(
                f"nemesis {self.name} needs the cluster in netns mode (network namespaces; "
                f"root, ip and nft), this run's is {ctx.cluster.shape.network!r}: "
                "not implemented yet on loopback")
        self.faults = Faults(ctx.cluster.data_dir)
        return self.faults

    def cut(self, ctx: NemesisContext, f: str, value: dict[str, Any],
            sources: Iterable[str], targets: Iterable[str], *, both_ways: bool) -> bool:
        """Drop packets from ``sources`` to ``targets`` (and back); recorded as ``f``."""
        faults = self.faults
        assert faults is not None, "start first"
        sources, targets = sorted(sources), sorted(targets)

        def block() -> dict[str, Any]:
            return {"rules": len(faults.block(sources, targets, both_ways=both_ways))}

        return ctx.act(f, {**value, "from": sources, "to": targets,
                           "both_ways": both_ways}, block) is not None

    def heal(self, ctx: NemesisContext) -> None:
        faults = self.faults
        if faults is None or not faults.active:
            return
        ctx.act("heal", {}, lambda: {"namespaces": len(faults.heal())})


def hosts(ctx: NemesisContext) -> tuple[dict[str, list[str]], list[str]]:
    """(storage node ids by AZ, instance ids), from the cluster's view."""
    view = ctx.status()
    by_az: dict[str, list[str]] = {}
    for node in ctx.cluster.storage_nodes(view=view):
        by_az.setdefault(str(node["az"]), []).append(str(node["id"]))
    for nodes in by_az.values():
        nodes.sort()
    return by_az, sorted(str(i["id"]) for i in ctx.cluster.instances(view=view))


def _hold_until(deadline: float) -> float:
    return min(deadline, time.monotonic() + HOLD_S_MAX)


class Partition(NetworkNemesis):
    name: ClassVar[str] = "partition"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        self.start(ctx)
        kind = ctx.rng.choice(PARTITIONS)
        by_az, instances = hosts(ctx)
        nodes = sorted(n for az in by_az.values() for n in az)
        if kind == "isolate-writer":
            self.isolate_writer(ctx, nodes, deadline)
        elif kind == "az":
            az = ctx.rng.choice(sorted(by_az))
            rest = [n for n in nodes if n not in by_az[az]] + instances + [CONTROL_PLANE]
            self.cut(ctx, "partition", {"kind": kind, "az": az}, by_az[az], rest,
                     both_ways=True)
            sleep_until(_hold_until(deadline))
            self.heal(ctx)
        else:
            shuffled = list(nodes)
            ctx.rng.shuffle(shuffled)
            half = len(shuffled) // 2
            first = shuffled[:half] + instances + [CONTROL_PLANE]
            self.cut(ctx, "partition", {"kind": kind}, shuffled[half:], first,
                     both_ways=True)
            sleep_until(_hold_until(deadline))
            self.heal(ctx)
        sleep_until(deadline)

    def isolate_writer(self, ctx: NemesisContext, nodes: list[str], deadline: float) -> None:
        writer = ctx.writer()
        if writer is None:
            ctx.act("partition", {"kind": "isolate-writer"},
                    fails("no available writer to isolate"))
            return
        old = str(writer["id"])
        if not self.cut(ctx, "partition", {"kind": "isolate-writer", "writer": old},
                        [old], [*nodes, CONTROL_PLANE], both_ways=True):
            return
        started = time.monotonic()
        hold_until = _hold_until(deadline)
        new = ctx.wait_writer(other_than=old, timeout_s=max(0.0, hold_until - started))
        ctx.observe("new writer", {"writer": None if new is None else new["id"],
                                   "after_s": round(time.monotonic() - started, 3)})
        if new is not None:
            hold_until = min(hold_until, time.monotonic() + HOLD_AFTER_FAILOVER_S)
        sleep_until(hold_until)
        events_before = last_event_seq(ctx)
        self.heal(ctx)
        if new is not None:
            ctx.act("observe", {"what": "old writer fenced", "instance": old},
                    lambda: wait_fenced(ctx, old, events_before, deadline))


class PartitionOneWay(NetworkNemesis):
    name: ClassVar[str] = "partition-one-way"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        self.start(ctx)
        kind = ctx.rng.choice(ONE_WAY_PARTITIONS)
        by_az, instances = hosts(ctx)
        nodes = sorted(n for az in by_az.values() for n in az)
        if kind == "writer-deaf":
            writer = ctx.writer()
            if writer is None:
                ctx.act("partition-one-way", {"kind": kind},
                        fails("no available writer to partition"))
                sleep_until(deadline)
                return
            # The writer's packets to storage pass; the storage nodes' replies are dropped.
            self.cut(ctx, "partition-one-way", {"kind": kind, "writer": writer["id"]},
                     nodes, [str(writer["id"])], both_ways=False)
        else:
            az = ctx.rng.choice(sorted(by_az))
            rest = [n for n in nodes if n not in by_az[az]] + instances + [CONTROL_PLANE]
            # The AZ's nodes send, and hear nothing back.
            self.cut(ctx, "partition-one-way", {"kind": kind, "az": az}, rest, by_az[az],
                     both_ways=False)
        sleep_until(_hold_until(deadline))
        self.heal(ctx)
        sleep_until(deadline)


class PacketLoss(NetworkNemesis):
    name: ClassVar[str] = "packet-loss"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        faults = self.start(ctx)
        by_az, _ = hosts(ctx)
        nodes = sorted(n for az in by_az.values() for n in az)
        percent = ctx.rng.randint(*LOSS_PERCENT)

        def lose() -> dict[str, Any]:
            faults.lose(nodes, percent)
            return {}

        ctx.act("loss", {"nodes": nodes, "percent": percent}, lose)
        sleep_until(_hold_until(deadline))
        self.heal(ctx)
        sleep_until(deadline)


NETWORK_NEMESES: dict[str, type[Nemesis]] = {
    cls.name: cls for cls in (Partition, PartitionOneWay, PacketLoss)
}


def shape_for(nemesis: str, shape: ClusterShape) -> ClusterShape:
    """The cluster a nemesis runs on: netns mode for these, when this machine can."""
    if nemesis in NETWORK_NEMESES and unavailable() is None:
        return dataclasses.replace(shape, network="netns")
    return shape


def register(nemeses: dict[str, type[Nemesis]], not_implemented: dict[str, str]) -> None:
    """Offer the network nemeses where they can run; elsewhere say what they need."""
    reason = unavailable()
    for name, cls in NETWORK_NEMESES.items():
        if reason is None:
            nemeses[name] = cls
            not_implemented.pop(name, None)
        else:
            nemeses.pop(name, None)
            not_implemented[name] = f"needs network namespaces: {reason}; not implemented yet"
