"""Network nemeses: partitions, one-way partitions and packet loss, as nftables rules.

They need a cluster in netns mode (``ClusterShape.network = "netns"``: a network namespace
per storage node and per instance, ``control.netns``), so they run only as root with ``ip``
and ``nft``, and refuse a cluster on loopback as not implemented (exit 2). The hosts are
named as the cluster's processes are: storage node ids, instance ids, and ``control-plane``
for the root namespace (the control plane, the router and the clients share it, so cutting a
host off from the control plane also cuts it off from the endpoints).

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

Which hosts a variant cuts off, and the course of a partition, are ``nemesis_partition``'s,
shared with the same two nemeses through the fault proxy (``nemesis_proxy``): here only
``cut`` and ``heal`` are nftables'. Each fault is held until the window ends (at most
``HOLD_S_MAX``), then healed: ``heal`` deletes the chaos table of every namespace, is
idempotent, and runs again from the runner's ``finally``.

``nemesis`` builds the registry with ``register``: these nemeses where namespaces work;
elsewhere, or when ``BOREALIS_CHAOS_NETWORK=proxy`` (``--network proxy``) asks for it,
``partition`` and ``partition-one-way`` through the fault proxy, so that those two are
always offered, and ``packet-loss`` named in ``NOT_IMPLEMENTED`` with the reason.
``shape_for`` is the cluster the runner starts: netns only for a nemesis registered here.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

from borealis.chaos.cluster import ClusterShape
from borealis.chaos.nemesis_base import Nemesis, NemesisContext, sleep_until
from borealis.chaos.nemesis_partition import (
    Cut,
    hold_until,
    hosts,
    run_one_way,
    run_partition,
)
from borealis.chaos.nemesis_proxy import PROXY_NEMESES
from borealis.control.netns import Faults, unavailable
from borealis.errors import ConfigError

LOSS_PERCENT = (10, 30)
IMPLEMENTATION_ENV = "BOREALIS_CHAOS_NETWORK"
"""Which implementation cuts links for ``partition`` and ``partition-one-way``: ``netns``,
``proxy``, or ``auto`` (the default: netns where this machine can, the proxy elsewhere)."""
IMPLEMENTATIONS = ("auto", "netns", "proxy")


class NetworkNemesis(Nemesis):
    """A nemesis whose faults are nftables rules (``control.netns.Faults``)."""

    cluster_network: ClassVar[str] = "netns"

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

    def cut(self, ctx: NemesisContext, f: str, cut: Cut) -> bool:
        """Drop the packets ``cut`` names; recorded as ``f``."""
        faults = self.faults
        assert faults is not None, "start first"

        def block() -> dict[str, Any]:
            return {"rules": len(faults.block(cut.sources, cut.targets,
                                              both_ways=cut.both_ways))}

        return ctx.act(f, cut.value(), block) is not None

    def heal(self, ctx: NemesisContext) -> None:
        faults = self.faults
        if faults is None or not faults.active:
            return
        ctx.act("heal", {}, lambda: {"namespaces": len(faults.heal())})


class Partition(NetworkNemesis):
    name: ClassVar[str] = "partition"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        run_partition(self, ctx, deadline)


class PartitionOneWay(NetworkNemesis):
    name: ClassVar[str] = "partition-one-way"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        run_one_way(self, ctx, deadline)


class PacketLoss(NetworkNemesis):
    name: ClassVar[str] = "packet-loss"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        faults = self.start(ctx)
        nodes = hosts(ctx).nodes
        percent = ctx.rng.randint(*LOSS_PERCENT)

        def lose() -> dict[str, Any]:
            faults.lose(nodes, percent)
            return {}

        ctx.act("loss", {"nodes": nodes, "percent": percent}, lose)
        sleep_until(hold_until(deadline))
        self.heal(ctx)
        sleep_until(deadline)


NETWORK_NEMESES: dict[str, type[Nemesis]] = {
    cls.name: cls for cls in (Partition, PartitionOneWay, PacketLoss)
}


def shape_for(nemesis: str, shape: ClusterShape) -> ClusterShape:
    """The cluster a nemesis runs on: netns mode when the nemesis registered under that name
    cuts links with nftables (``cluster_network``), and this machine can; otherwise the
    shape as given (a partition through the fault proxy runs on loopback)."""
    # Imported here: ``nemesis`` builds the registry with ``register`` below.
    from borealis.chaos.nemesis import NEMESES

    cls = NEMESES.get(nemesis)
    if cls is not None and cls.cluster_network == "netns" and unavailable() is None:
        return dataclasses.replace(shape, network="netns")
    return shape


def implementation(requested: str | None = None) -> str:
    """Which links ``partition`` and ``partition-one-way`` cut here: "netns" or "proxy".

    ``requested`` (``--network``), else ``BOREALIS_CHAOS_NETWORK``, else "auto": netns where
    this machine has network namespaces with nftables, the fault proxy elsewhere."""
    chosen = requested or os.environ.get(IMPLEMENTATION_ENV, "") or "auto"
    if chosen not in IMPLEMENTATIONS:
        raise ConfigError(f"{IMPLEMENTATION_ENV} (or --network) must be one of "
                          f"{', '.join(IMPLEMENTATIONS)}, not {chosen!r}")
    if chosen == "auto":
        return "netns" if unavailable() is None else "proxy"
    return chosen


def register(nemeses: dict[str, type[Nemesis]], not_implemented: dict[str, str], *,
             requested: str | None = None) -> str:
    """Offer the network nemeses: the nftables ones where namespaces work (and the proxy is
    not asked for), else ``partition`` and ``partition-one-way`` through the fault proxy;
    what cannot run here is named in ``not_implemented`` with what it needs. Called again
    with ``requested`` (``--network``), it replaces what it offered. Returns the
    implementation chosen."""
    chosen = implementation(requested)
    reason = unavailable()
    for name, cls in NETWORK_NEMESES.items():
        offered: type[Nemesis] | None = None
        if chosen == "netns" and reason is None:
            offered = cls
        elif chosen == "proxy":
            offered = PROXY_NEMESES.get(name)
        if offered is not None:
            nemeses[name] = offered
            not_implemented.pop(name, None)
            continue
        nemeses.pop(name, None)
        if chosen == "netns":
            not_implemented[name] = (f"needs network namespaces ({IMPLEMENTATION_ENV}=netns): "
                                     f"{reason}; not implemented yet")
        else:
            why = reason or f"{IMPLEMENTATION_ENV}=proxy"
            not_implemented[name] = (f"needs network namespaces ({why}); through the fault "
                                     "proxy, loss is net-chaos's: not implemented yet")
    return chosen
