"""Run one seed of one scenario: set up, load, inject, heal, settle, check."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from borealis.sim.scenarios import SCENARIOS
from borealis.sim.world import Violation, World


@dataclass
class SeedResult:
    seed: int
    scenario: str
    ok: bool
    message: str
    virtual_s: float
    steps: int
    commits_acked: int
    reads_checked: int
    wall_s: float
    checkpoints: int = 0
    trimmed_restarts: int = 0


def run_seed(seed: int, scenario: str, *, duration_s: float = 0.4) -> SeedResult:
    fn, config = SCENARIOS[scenario]
    world = World(seed, copy.deepcopy(config))
    started = time.perf_counter()
    settle_s = 1.5
    end_load = duration_s
    message = ""
    ok = True
    try:
        world.start_writer()
        cfg = world.config
        world.every(cfg.commit_every_ms / 1000, world.random_commit, end_load)
        world.every(cfg.read_every_ms / 1000, world.random_read, end_load + settle_s)
        world.every(cfg.flush_every_ms / 1000, _each(world.writers, 'flush'),
                    end_load + settle_s)
        world.every(cfg.resend_after_ms / 1000, _each(world.writers, 'retry'),
                    end_load + settle_s)
        world.every(cfg.tick_every_ms / 1000,
                    lambda: _tick_nodes(world),
                    end_load + settle_s)
        fn(world, duration_s)
        world.run_until(end_load)
        # Heal everything and let gossip and retries converge.
        world.heal()
        world.config.drop_p = world.config.dup_p = 0.0
        for name, node in world.nodes.items():
            if not node.up and not _permanently_dead(world, name):
                world.restart_node(name)
        # Settle until every segment has caught up (or the settle time is over), then check.
        t = end_load
        while t < end_load + settle_s:
            t += 0.05
            world.run_until(t)
            if _converged(world):
                break
        world.checkers.final()
    except Violation as exc:
        ok, message = False, str(exc)
    except Exception as exc:  # a crash of a core under simulation is a finding too
        ok, message = False, f"seed={seed} t={world.now:.4f}s: {type(exc).__name__}: {exc}"
        import traceback

        message += "\n" + traceback.format_exc()
    return SeedResult(
        seed, scenario, ok, message, world.now, world.stats["steps"],
        world.stats["commits_acked"], world.stats["reads_checked"],
        time.perf_counter() - started, world.stats["checkpoints"],
        world.stats["trimmed_restarts"],
    )


def _converged(world: World) -> bool:
    w = world.writer
    if w is None or w.core is None or w.core.vdl == 0:
        return False
    vdl = w.core.vdl
    if any(w.group_pages):  # commits still in flight
        return False
    for layout in world.layouts.values():
        for sid in layout.segment_ids:
            node = world.nodes[world.segment_node[sid]]
            if not node.up or node.segments[sid].scl < vdl:
                return False
    return True


def _permanently_dead(world: World, name: str) -> bool:
    """A node replaced by a membership change stays dead."""
    hosted = {world.segment_node[s] for layout in world.layouts.values()
              for s in layout.segment_ids}
    return name not in hosted


def _each(items: list[Any], method: str) -> Callable[[], None]:
    def call() -> None:
        for item in list(items):
            getattr(item, method)()
    return call


def _tick_nodes(world: World) -> None:
    for node in world.nodes.values():
        if node.up:
            node.tick()
