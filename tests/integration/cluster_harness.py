"""What the tests of a whole cluster share: the CLI as a user types it, SQL through an
endpoint with psycopg, and waiting for a condition.

Every process is started by ``borealis up`` with the test's master password
(``BOREALIS_MASTER_PASSWORD``), so the helpers take it rather than a module constant.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg


def borealis(data_dir: Path, *args: str, password: str, timeout_s: float = 180,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """``borealis ARGS --data-dir DATA_DIR``; with ``check``, it must exit 0."""
    argv = [sys.executable, "-m", "borealis", *args, "--data-dir", str(data_dir)]
    env = {**os.environ, "BOREALIS_MASTER_PASSWORD": password}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                          check=False, env=env)
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def connect(address: str, *, password: str, connect_timeout: int = 20,
            **kwargs: Any) -> psycopg.Connection[Any]:
    """An autocommit connection as the master user to ``host:port``."""
    host, _, port = address.rpartition(":")
    return psycopg.connect(host=host, port=int(port), user="postgres", password=password,
                           dbname="postgres", connect_timeout=connect_timeout,
                           autocommit=True, **kwargs)


def served_by(conn: psycopg.Connection[Any]) -> str:
    """The instance a connection landed on."""
    row = conn.execute("SELECT aurora_db_instance_identifier()").fetchone()
    assert row is not None
    return str(row[0])


def wait_for(what: str, predicate: Any, timeout_s: float = 60.0, every_s: float = 0.3) -> Any:
    """Poll ``predicate`` until it returns something true, which is returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)


def spec_toml(*, repair_after_s: float, tiers: tuple[int, int, int] = (0, 1, 1),
              writer_hung_after_s: float | None = None, network: str | None = None) -> str:
    """A cluster spec for tests: every port chosen by the system, small PGs (so that the
    volume grows by PGs), three instances i1 (the writer), i2 and i3 in az1..az3."""
    lines = ["[cluster]", "api_port = 0", "", "[storage]", "nodes_per_az = 3", "pg_mib = 1",
             f"repair_after_s = {repair_after_s}", "", "[endpoints]", "writer_port = 0",
             "reader_port = 0", ""]
    if writer_hung_after_s is not None:
        lines += ["[failover]", f"writer_hung_after_s = {writer_hung_after_s}", ""]
    if network is not None:
        lines += ["[network]", f'mode = "{network}"', ""]
    for k, tier in enumerate(tiers, start=1):
        lines += ["[[instances]]", f'id = "i{k}"', f'az = "az{k}"', f"promotion_tier = {tier}",
                  ""]
    return "\n".join(lines)
