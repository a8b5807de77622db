"""Starts the simulator's seeds in the background once the suite is collected (see
``sim_seeds.py``), and stops what is left of them at the end."""

from __future__ import annotations

import pytest
import sim_seeds


def pytest_collection_finish(session: pytest.Session) -> None:
    sim_seeds.start(session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    sim_seeds.stop()
