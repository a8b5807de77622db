"""The deterministic simulator over every named scenario (Aurora SIGMOD 2017 §2-4: quorums,
VDL, fencing by epochs). A failing seed prints the command that replays it."""

from __future__ import annotations

import pytest
from sim_seeds import SEEDS_PER_SCENARIO, seed_results

from borealis.sim.runner import run_seed
from borealis.sim.scenarios import SCENARIOS

RESTARTING = {"random", "az-plus-one", "az-down-while-writing"}
"""Scenarios that restart crashed nodes: from logs their checkpoints trimmed."""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_seeds(scenario: str) -> None:
    """Every seed of the scenario: they ran in the background since collection
    (``sim_seeds.py``)."""
    failures = []
    acked = checkpoints = trimmed_restarts = 0
    for result in seed_results(scenario):
        acked += result.commits_acked
        checkpoints += result.checkpoints
        trimmed_restarts += result.trimmed_restarts
        if not result.ok:
            failures.append(result.message.splitlines()[0])
    assert not failures, "\n".join(
        f"{m}\n  replay: python -m borealis.sim --seeds 1 --seed-start "
        f"{m.split('seed=')[1].split()[0]} --scenario {scenario}" for m in failures
    )
    # The load really ran: commits were acknowledged through the faults; nodes trimmed
    # their logs, and those that crashed came back from trimmed logs.
    assert acked > SEEDS_PER_SCENARIO * 100
    assert checkpoints > SEEDS_PER_SCENARIO * 10
    if scenario in RESTARTING:
        assert trimmed_restarts >= SEEDS_PER_SCENARIO


def test_same_seed_replays_exactly() -> None:
    a = run_seed(7, "random")
    b = run_seed(7, "random")
    assert (a.steps, a.commits_acked, a.reads_checked, a.virtual_s) == (
        b.steps, b.commits_acked, b.reads_checked, b.virtual_s
    )


def test_checker_catches_a_lost_commit() -> None:
    """The durability checker is not vacuous: forge an acknowledgement above VDL."""
    from borealis.sim.world import Violation, World

    world = World(3)
    world.start_writer()
    world.run_until(0.05)
    writer = world.writer
    assert writer is not None and writer.core is not None
    world.acked_commits[writer.core.vdl + 1_000_000] = writer.name
    with pytest.raises(Violation):
        world.checkers.final()
