"""Named scenarios and the random fault schedule, all on the simulator harness.

Each scenario takes a fresh ``World`` and schedules faults over ``duration_s`` of virtual
time, then the runner heals everything, lets the cluster settle and runs the final checks.
"""

from __future__ import annotations

from collections.abc import Callable

from borealis.sim.world import AZS, SimConfig, World
from borealis.types import LSN, WRITE_QUORUM
from borealis.volume.recovery import Phase

Scenario = Callable[[World, float], None]


def _nodes_of(world: World, az: str) -> list[str]:
    return sorted(n for n, node in world.nodes.items() if node.az == az)


def _later(world: World, at: float, fn: Callable[[], None]) -> None:
    world.schedule(max(0.0, at - world.now), "call", fn)


def random_faults(world: World, duration: float) -> None:
    """A random mix: crashes and restarts of up to one node at a time beyond a dead AZ's
    worth, partitions, bit flips, and writer crashes."""
    rng = world.rng
    t = 0.02
    while t < duration:
        t += rng.uniform(0.005, duration / 6)
        kind = rng.choice(["crash", "partition", "one-way", "bitflip", "writer", "clog"])
        node = rng.choice(sorted(world.nodes))
        heal_at = t + rng.uniform(0.005, 0.05)
        if kind == "crash":
            _later(world, t, lambda n=node: world.crash_node(n))  # type: ignore[misc]
            _later(world, heal_at, lambda n=node: world.restart_node(n))  # type: ignore[misc]
        elif kind in ("partition", "one-way"):
            az_a, az_b = rng.sample(list(AZS), 2)
            _later(world, t, lambda a=az_a, b=az_b, o=(kind == "one-way"):  # type: ignore[misc]
                   world.partition(a, b, one_way=o))
            _later(world, heal_at, world.heal)
        elif kind == "bitflip":
            _later(world, t, world.flip_bit)
        elif kind == "writer":
            def crash_and_replace() -> None:
                w = world.writer
                if w is not None and w.core is not None:
                    world.crash_writer(w)
                    world.start_writer()
            _later(world, t, crash_and_replace)
        elif kind == "clog":
            w = world.writer
            name = w.name if w is not None else "writer1"
            _later(world, t, lambda n=node, wn=name: world.partition(wn, n))  # type: ignore[misc]
            _later(world, heal_at, world.heal)


def az_plus_one(world: World, duration: float) -> None:
    """Lose an AZ and one more node: acknowledged data stays readable, writes must wait."""
    az = world.rng.choice(AZS)
    victims = _nodes_of(world, az)
    other = world.rng.choice([n for n in world.nodes if n not in victims and
                              n in {world.segment_node[s] for s in world.segment_node}])
    victims = [*victims, other]
    state: dict[str, LSN] = {}

    def down() -> None:
        for n in victims:
            world.crash_node(n)
        w = world.writer
        state["vdl_at_loss"] = w.vdl if w is not None else LSN(0)

    def check_writes_wait() -> None:
        w = world.writer
        if w is None or w.core is None:
            return
        # In-flight commits could complete just after the loss; beyond that, nothing may.
        if w.core.vdl > state["vdl_at_loss"] and w.core.vdl > state.get("vdl_settled", w.core.vdl):
            world.checkers.fail("a commit was acknowledged with AZ + 1 down (< 4 copies)")
        state["vdl_settled"] = w.core.vdl

    def up() -> None:
        for n in victims:
            world.restart_node(n)

    _later(world, duration * 0.3, down)
    _later(world, duration * 0.3 + 0.02, check_writes_wait)
    _later(world, duration * 0.75, check_writes_wait)
    _later(world, duration * 0.8, up)


def az_down_while_writing(world: World, duration: float) -> None:
    """A whole AZ is lost while the writer commits: writes must keep being acknowledged."""
    az = world.rng.choice(AZS)
    victims = _nodes_of(world, az)
    state: dict[str, int] = {}

    def down() -> None:
        for n in victims:
            world.crash_node(n)
        state["acked"] = world.stats["commits_acked"]

    def check_progress() -> None:
        if world.stats["commits_acked"] <= state["acked"] and world.writer is not None:
            world.checkers.fail(f"no commit acknowledged with AZ {az} down")

    def up() -> None:
        for n in victims:
            world.restart_node(n)

    _later(world, duration * 0.2, down)
    _later(world, duration * 0.7, check_progress)
    _later(world, duration * 0.75, up)


def writer_crash_mid_commit(world: World, duration: float) -> None:
    """The writer dies with batches in flight; a new writer recovers and continues."""
    for frac in (0.3, 0.6):
        def crash() -> None:
            w = world.writer
            if w is not None and w.core is not None:
                world.crash_writer(w)
                world.start_writer()
        _later(world, duration * frac + world.rng.uniform(0, 0.01), crash)


def stale_writer(world: World, duration: float) -> None:
    """The writer is cut off (not dead); a new one takes over; the old one comes back and
    keeps trying. It must never get a commit acknowledged beyond the new writer's VDL."""
    def isolate() -> None:
        w = world.writer
        if w is None or w.core is None:
            return
        w.isolated = True
        for node in world.nodes:
            world.partition(w.name, node)
        world.start_writer()
        state["old"] = w.name

    def wake() -> None:
        world.heal()

    state: dict[str, str] = {}
    _later(world, duration * 0.3, isolate)
    _later(world, duration * 0.5, wake)


def repair_during_writes(world: World, duration: float) -> None:
    """A node dies for good; each of its segments is rebuilt on a spare in the same AZ under
    a new membership epoch while writes continue."""
    victim = world.rng.choice(sorted(n for n in world.nodes if not any(
        n in spares for spares in world.spares.values())))
    az = world.nodes[victim].az

    def kill() -> None:
        world.crash_node(victim)

    def repair() -> None:
        spare = world.spares[az][0]
        for pg, layout in list(world.layouts.items()):
            for placement in layout.segments:
                if placement.node == victim:
                    world.replace_segment(pg, placement.segment, spare)

    def finish() -> None:
        w = world.writer
        if w is None or w.core is None:
            return
        for pg in world.layouts:
            new_ids = world.layouts[pg].segment_ids
            acked = [w.core.tracker.acked.get(s, LSN(0)) for s in new_ids]
            if sum(1 for a in acked if a >= w.core.vdl) >= WRITE_QUORUM:
                w.core.finish_membership(pg)

    _later(world, duration * 0.2, kill)
    _later(world, duration * 0.3, repair)
    _later(world, duration * 0.9, finish)


def unknown_truncation(world: World, duration: float) -> None:
    """A recovery dies once its truncation reached two segments of each PG; the next
    recovery seals the other four, never hears of it, and may declare committed records
    that truncation voids (the known hole: architecture.md, "Known limits").

    Nodes in three pairs, by seed: the old writer's last batches reach pair B only; the
    second writer seals A + C, and is cut from C before its repair (which carries its
    truncation) goes out, so only A gets it, and A is cut from the other nodes (gossip
    would spread it); the third seals B + C. Once it has recovered, everything heals: A
    hears of the third writer, which reads from it too, and gossip may spread A's
    truncation, before the writer has overwritten the pages it voids."""
    a, b, c = (lambda n: (n[:2], n[2:4], n[4:]))(world.rng.sample(sorted(world.nodes), 6))
    phases: dict[str, bool] = {}

    def starve_old_writer() -> None:
        w = world.writer
        if w is None or w.core is None:
            return
        for node in a + c:
            world.partition(w.name, node)

    def second_writer() -> None:
        w = world.writer
        if w is None:
            return
        world.crash_writer(w)
        second = world.start_writer()
        for node in b:
            world.partition(second.name, node)

        def watch() -> None:
            rec = second.recovery
            if not phases.get("cut") and rec is not None and rec.phase == Phase.CPL:
                phases["cut"] = True
                # One way: the commit-point queries already sent still get their answers.
                for node in c:
                    world.partition(second.name, node, one_way=True)
                for node in a:
                    for other in b + c:
                        world.partition(node, other)

        world.every(0.0001, watch, world.now + duration * 0.2)

    def third_writer() -> None:
        for w in list(world.writers):
            if w.up:
                world.crash_writer(w)
        third = world.start_writer()
        for node in a:
            world.partition(third.name, node)

        def watch() -> None:
            if third.core is not None and not phases.get("healed"):
                phases["healed"] = True
                world.heal()  # the dead writers stay dead

        world.every(0.0001, watch, world.now + duration * 0.2)

    _later(world, duration * 0.2, starve_old_writer)
    _later(world, duration * 0.25, second_writer)
    _later(world, duration * 0.45, third_writer)


def swizzle_clog(world: World, duration: float) -> None:
    """FoundationDB's swizzle-clog: clog nodes' links one by one, unclog in random order."""
    nodes = world.rng.sample(sorted(world.nodes), k=min(4, len(world.nodes)))
    step = duration * 0.4 / len(nodes)
    for i, n in enumerate(nodes):
        def clog(n: str = n) -> None:
            for other in world.nodes:
                if other != n:
                    world.partition(n, other)
            for w in world.writers:
                world.partition(w.name, n)
        _later(world, duration * 0.1 + i * step, clog)
    order = nodes[:]
    world.rng.shuffle(order)
    for i, n in enumerate(order):
        def unclog(n: str = n) -> None:
            world.blocked = {(a, b) for a, b in world.blocked if n not in (a, b)}
        _later(world, duration * 0.55 + i * step, unclog)


SCENARIOS: dict[str, tuple[Scenario, SimConfig]] = {
    "random": (random_faults, SimConfig(drop_p=0.02, dup_p=0.02)),
    "az-plus-one": (az_plus_one, SimConfig()),
    "az-down-while-writing": (az_down_while_writing, SimConfig(drop_p=0.01)),
    "writer-crash-mid-commit": (writer_crash_mid_commit, SimConfig(drop_p=0.01)),
    "stale-writer": (stale_writer, SimConfig()),
    "repair-during-writes": (repair_during_writes, SimConfig(spare_nodes_per_az=1)),
    "swizzle-clog": (swizzle_clog, SimConfig(dup_p=0.01)),
    "unknown-truncation": (unknown_truncation, SimConfig()),
}
