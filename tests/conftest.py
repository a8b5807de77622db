"""Suite-wide options.

Tests marked ``soak`` are the longer fault runs that CI leaves out to stay within its time
budget: each repeats a fault that a shorter test in CI already covers (see the reason on each
mark). ``--soak`` (or ``BOREALIS_SOAK=1``) runs them; ``scripts/soak`` runs them with the
long simulator and chaos runs.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False,
                     help="also run the tests marked soak (longer fault runs CI leaves out)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak") or os.environ.get("BOREALIS_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak or scripts/soak")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)
