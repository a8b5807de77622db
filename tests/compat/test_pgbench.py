"""pgbench against a Borealis writer: ``-i`` (with COPY, then ALTER TABLE ADD PRIMARY KEY)
and its TPC-B script in the simple, extended and prepared protocols, with no failed
transaction and balances that add up (every transaction adds the same delta to an
account, its teller and its branch, and writes one history row)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from compat_cluster import Cluster

pytestmark = pytest.mark.skipif(shutil.which("pgbench") is None,
                                reason="pgbench is not installed")


def pgbench(cluster: Cluster, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    host, port = cluster.writer_address
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGPASSWORD", None)
    return subprocess.run(["pgbench", "-h", host, "-p", str(port), "-U", "postgres", *args,
                           "postgres"], capture_output=True, text=True, timeout=timeout_s,
                          env=env, stdin=subprocess.DEVNULL)


def psql_value(cluster: Cluster, sql: str) -> str:
    host, port = cluster.writer_address
    done = subprocess.run(["psql", "-X", "-A", "-t", "-h", host, "-p", str(port), "-U",
                           "postgres", "-c", sql, "postgres"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def failed_transactions(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("number of failed transactions:"):
            return int(line.split(":")[1].split()[0])
    raise AssertionError(f"no failed-transaction count in pgbench's output:\n{output}")


def processed(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("number of transactions actually processed:"):
            return int(line.split(":")[1].split("/")[0])
    raise AssertionError(f"no transaction count in pgbench's output:\n{output}")


def test_pgbench_initialises_and_runs_tpcb_in_every_protocol(cluster: Cluster) -> None:
    init = pgbench(cluster, "-i", "-s", "1", "-q")
    assert init.returncode == 0, init.stderr
    assert psql_value(cluster, "SELECT count(*) FROM pgbench_accounts") == "100000"
    assert psql_value(cluster, "SELECT count(*) FROM pgbench_tellers") == "10"
    # ALTER TABLE ADD PRIMARY KEY made aid the key (a duplicate is refused)
    duplicate = subprocess.run(
        ["psql", "-X", "-h", cluster.writer_address[0], "-p", str(cluster.writer_address[1]),
         "-U", "postgres", "-c", "INSERT INTO pgbench_accounts (aid, bid, abalance) "
         "VALUES (1, 1, 0)", "postgres"], capture_output=True, text=True, timeout=60)
    assert "UNIQUE constraint failed" in duplicate.stderr or "duplicate" in duplicate.stderr

    total = 0
    for mode in ("simple", "extended", "prepared"):
        run = pgbench(cluster, "-M", mode, "-c", "4", "-j", "2", "-t", "25", "-n")
        assert run.returncode == 0, f"{mode}: {run.stderr}\n{run.stdout}"
        assert failed_transactions(run.stdout) == 0, run.stdout
        assert processed(run.stdout) == 100
        total += 100
    assert psql_value(cluster, "SELECT count(*) FROM pgbench_history") == str(total)
    sums = psql_value(cluster, "SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                               "(SELECT sum(tbalance) FROM pgbench_tellers), "
                               "(SELECT sum(bbalance) FROM pgbench_branches), "
                               "(SELECT sum(delta) FROM pgbench_history)")
    values = sums.split("|")
    assert len(set(values)) == 1, sums

    select_only = pgbench(cluster, "-S", "-M", "prepared", "-c", "2", "-t", "50", "-n")
    assert select_only.returncode == 0, select_only.stderr
    assert failed_transactions(select_only.stdout) == 0
