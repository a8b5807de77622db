"""The simulator's seeds run in the background from the moment the suite is collected.

The seeds are pure CPU and independent; the integration tests that run before them spend
much of their time waiting on processes and sockets. So when ``test_scenario_seeds`` is
selected, every seed of every scenario is handed at collection time to a pool of worker
processes (one core short of all) at the lowest CPU priority (``nice 19``): they use the
cycles the rest of the suite leaves idle and yield the processor to it otherwise, and each ``test_scenario_seeds``
case then collects its scenario's results (waiting for any still running). The seeds and the
checks are exactly those of a run in the foreground. ``BOREALIS_SIM_SEEDS`` sets the seeds per
scenario (30: 240 seeds over the 8 scenarios).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

import pytest

from borealis.sim.runner import SeedResult, run_seed
from borealis.sim.scenarios import SCENARIOS

SEEDS_PER_SCENARIO = int(os.environ.get("BOREALIS_SIM_SEEDS", "30"))

_pool: ProcessPoolExecutor | None = None
_futures: dict[str, list[Future[SeedResult]]] = {}


def _worker_setup() -> None:
    """Lowest CPU priority; and the warnings segments log under the simulated faults stay
    out of the suite's output (pytest captures only its own process): a failing seed
    reports itself through its result."""
    os.nice(19)
    logging.getLogger().addHandler(logging.NullHandler())


def _selected(items: list[pytest.Item]) -> list[str]:
    return sorted({item.callspec.params["scenario"] for item in items
                   if item.originalname == "test_scenario_seeds"
                   and hasattr(item, "callspec")})


def start(items: list[pytest.Item]) -> None:
    """Hand every seed of the selected scenarios to the background pool."""
    global _pool
    scenarios = _selected(items)
    if not scenarios or _pool is not None:
        return
    # One core short of all: the foreground tests keep a core the seeds never compete for.
    _pool = ProcessPoolExecutor(max(1, (os.cpu_count() or 1) - 1),
                                mp_context=multiprocessing.get_context("forkserver"),
                                initializer=_worker_setup)
    # In the order the tests run (sorted by scenario), so that each waits only for its own.
    for scenario in scenarios:
        _futures[scenario] = [_pool.submit(run_seed, seed, scenario)
                              for seed in range(SEEDS_PER_SCENARIO)]


def stop() -> None:
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)


def seed_results(scenario: str) -> list[SeedResult]:
    """Every seed's result for ``scenario``, in seed order (from the background pool, or
    run now on every core when the pool was not started, e.g. under ``--noconftest``)."""
    if scenario not in _futures:
        assert scenario in SCENARIOS
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            return list(pool.map(run_seed, range(SEEDS_PER_SCENARIO),
                                 [scenario] * SEEDS_PER_SCENARIO))
    concurrent.futures.wait(_futures[scenario])
    return [future.result() for future in _futures[scenario]]
