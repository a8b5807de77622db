"""Clock skew under libfaketime (issue 6): a cluster whose processes each have a wall clock of
their own (``BOREALIS_FAKETIME_DIR``, ``control.processes.faketime_env``), skewed while they
run by rewriting their clock files, as the ``clock-skew`` nemesis does.

What must hold: a skewed process really runs on the skewed time (its SQL ``now()``), the
replica lag each reader reports stays what it means — how far behind the writer it is, a
few milliseconds here — whichever way its clock and the writer's are off (it was the
difference of two machines' wall clocks: a reader 120 s ahead showed 120,000 ms, one behind
showed 0), and a short register run under the ``clock-skew`` nemesis is valid.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from borealis.chaos.cluster import ChaosCluster
from borealis.chaos.nemesis_clock import ClockSkew, write_offset
from borealis.chaos.runner import RunConfig, run
from borealis.control.processes import FAKETIME_DIR_ENV, LIBFAKETIME_DEFAULT, LIBFAKETIME_ENV

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not Path(os.environ.get(LIBFAKETIME_ENV) or LIBFAKETIME_DEFAULT).is_file(),
                       reason="libfaketime is not installed (Debian package faketime)"),
]

BEHIND_S = -120
AHEAD_S = 120
LAG_SANE_MS = 2000.0
"""Far above a loopback cluster's lag, far below any of the skews."""


def now_through(address: str, password: str) -> dt.datetime:
    host, _, port = address.rpartition(":")
    with psycopg.connect(host=host, port=int(port), user="postgres", password=password,
                         dbname="postgres", autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("select now()").fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def readers_status(cluster: ChaosCluster) -> dict[str, dict[str, Any]]:
    return {str(i["id"]): i for i in cluster.instances(role="reader")}


def test_a_skewed_reader_sees_its_own_time_and_reports_a_sane_lag() -> None:
    with ChaosCluster.temporary(env=ClockSkew.cluster_env) as cluster:
        clocks = Path(cluster.env[FAKETIME_DIR_ENV])
        writer = cluster.writer()
        assert writer is not None
        readers = sorted(readers_status(cluster))
        assert len(readers) == 2
        behind, ahead = readers
        assert sorted(p.name for p in clocks.iterdir()) == sorted(
            [*[str(n["id"]) for n in cluster.storage_nodes()], writer["id"], *readers,
             "router"]), "every process the control plane started has a clock file"
        write_offset(clocks, behind, BEHIND_S)
        write_offset(clocks, ahead, AHEAD_S)

        view = {str(i["id"]): i for i in cluster.instances()}
        for instance_id, offset_s in ((behind, BEHIND_S), (ahead, AHEAD_S),
                                      (str(writer["id"]), 0)):
            seen = now_through(str(view[instance_id]["pg_address"]), cluster.password)
            skew_s = (seen - dt.datetime.now(dt.UTC)).total_seconds()
            assert abs(skew_s - offset_s) < 10, (instance_id, seen, skew_s)

        # Commits stream redo (and VDLs) to the readers, each sampled for lag.
        host, port = cluster.endpoint("writer")
        with psycopg.connect(host=host, port=port, user="postgres", password=cluster.password,
                             dbname="postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute("create table t (k int primary key, v int)")
            for k in range(50):
                conn.execute("insert into t values (%s, %s)", (k, k))
                time.sleep(0.02)
        time.sleep(1.5)   # the control plane polls each instance's status
        for _ in range(3):
            lags = {i: s["lag_ms"] for i, s in readers_status(cluster).items()}
            assert all(isinstance(lag, int | float) and 0 < lag < LAG_SANE_MS
                       for lag in lags.values()), lags
            time.sleep(0.5)


def test_a_short_register_run_under_clock_skew_is_valid(tmp_path: Path) -> None:
    verdict = run(RunConfig(workload="register", nemesis="clock-skew", time_s=16.0,
                            clients=4, seed=3, out=tmp_path, healthy_wait_s=20.0))
    actions = [a["f"] for a in verdict["nemesis_actions"]]
    assert "heal" in actions and len(actions) >= 3, actions
    assert not [a for a in verdict["nemesis_actions"] if "error" in a]
    assert verdict["valid"] is True, {k: v for k, v in verdict.items() if k != "checkers"}
    assert verdict["acknowledged_commits_lost"] == 0
