"""Failover time and replica lag, on a cluster started by ``borealis up``.

One cluster (nine storage nodes, a writer and two readers, the router and the control
plane, each its own process) runs in a temporary data dir. A client commits small bank
transfers through the writer endpoint; the writer is killed with SIGKILL; the measure is
the time from the kill to the first commit that succeeds through the same endpoint address
(the control plane's detection, promotion with volume recovery, the router learning the new
writer, a new connection and a commit). The killed instance comes back as a reader; once
all three are available again the next run kills the new writer. ``--runs`` runs; the
median and the worst are reported.

Replica lag: before the first kill, pgbench runs TPC-B (``-M prepared``, ``--clients``
clients, ``--lag-seconds``) through the writer endpoint, and each reader's lag (writer
sends a VDL advance -> reader applies it; one machine's clock) is read from its ``status``
as p50/p99 over its last 4,096 advances; the worst reader is reported.

    python bench/failover.py [--runs 5] [--lag-seconds 10] [--clients 4]

The bar (issue 5): failover <= 5 s; the aim <= 1 s. The last line printed is one JSON
object with ``failover_s_median``, ``failover_s_max``, ``replica_lag_p50_ms`` and
``replica_lag_p99_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from borealis.control.clusterspec import ClusterSpec
from borealis.instance.remote import InstanceClient

ACCOUNTS = 10
GIVE_UP_S = 60.0
PASSWORD = "bench-failover"
SPEC = """
[cluster]
api_port = 0
[endpoints]
writer_port = 0
reader_port = 0
"""


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def borealis(data_dir: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "borealis", *args, "--data-dir",
                           str(data_dir)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BOREALIS_MASTER_PASSWORD": PASSWORD})
    if done.returncode != 0:
        raise RuntimeError(f"borealis {' '.join(args)}: {done.stderr.strip()[-800:]}")
    return done.stdout


def status(data_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(borealis(data_dir, "status", "--json"))
    return result


def transfer(conn: psycopg.Connection, n: int) -> None:
    with conn.transaction():
        conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s",
                     (n % ACCOUNTS,))
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s",
                     ((n + 1) % ACCOUNTS,))


def reader_lag(address: str) -> dict[str, float]:
    async def ask() -> dict[str, Any]:
        client = await InstanceClient.connect(address)
        try:
            return await client.status()
        finally:
            await client.close()

    answer = asyncio.run(ask())
    return {"p50": float(answer.get("lag_p50_ms", 0.0)),
            "p99": float(answer.get("lag_p99_ms", 0.0))}


def all_available(data_dir: Path, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        view = status(data_dir)
        if all(i["state"] == "available" for i in view["instances"]):
            return view
        if time.monotonic() > deadline:
            raise RuntimeError(f"instances not all available: {view['instances']}")
        time.sleep(0.2)


def measure_lag(data_dir: Path, dsn_args: list[str], args: argparse.Namespace) -> dict[str, float]:
    progress(f"pgbench TPC-B through the writer endpoint, {args.clients} clients, "
             f"{args.lag_seconds} s, for the replica lag")
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    init = subprocess.run(["pgbench", *dsn_args, "-i", "-s", "1", "-q", "postgres"],
                          capture_output=True, text=True, timeout=600, env=env)
    if init.returncode != 0:
        raise RuntimeError(f"pgbench -i failed: {init.stderr.strip()[-500:]}")
    done = subprocess.run(["pgbench", *dsn_args, "-M", "prepared", "-c", str(args.clients),
                           "-j", "2", "-T", str(args.lag_seconds), "-n", "postgres"],
                          capture_output=True, text=True, timeout=600, env=env)
    tps = [line for line in done.stdout.splitlines() if line.startswith("tps")]
    progress(tps[0] if tps else done.stderr.strip()[:200])
    lags = [reader_lag(i["control_address"]) for i in status(data_dir)["instances"]
            if i["role"] == "reader"]
    worst = max(lags, key=lambda lag: lag["p99"])
    progress(f"reader lag p50 {worst['p50']} ms, p99 {worst['p99']} ms (worst reader)")
    return worst


def one_kill(data_dir: Path, dsn: str, index: int) -> dict[str, Any]:
    view = all_available(data_dir)
    writer = next(i for i in view["instances"] if i["role"] == "writer")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n in range(10):
            transfer(conn, n)
    time.sleep(0.5)
    os.kill(writer["pid"], signal.SIGKILL)
    killed = time.monotonic()
    n = 1000
    while True:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                transfer(conn, n)
            break
        except psycopg.OperationalError:
            if time.monotonic() - killed > GIVE_UP_S:
                raise RuntimeError("no commit through the endpoint within "
                                   f"{GIVE_UP_S} s of the kill") from None
            time.sleep(0.02)
    failover_s = time.monotonic() - killed
    with psycopg.connect(dsn, autocommit=True) as conn:
        total = conn.execute("SELECT sum(balance) FROM accounts").fetchone()
    if total != (ACCOUNTS * 1000,):
        raise RuntimeError(f"the total balance is {total}, not {ACCOUNTS * 1000}")
    events = json.loads(borealis(data_dir, "events", "--json"))
    failovers = [e for e in events if e["kind"] == "failover"]
    promote_s = failovers[-1]["promote_s"] if failovers else None
    new_writer = next(i["id"] for i in status(data_dir)["instances"] if i["role"] == "writer")
    progress(f"run {index}: killed {writer['id']}; {new_writer} took over; first commit "
             f"through the endpoint after {failover_s:.3f} s (promotion {promote_s} s)")
    return {"failover_s": failover_s, "promote_s": promote_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lag-seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="borealis-failover-"))
    data_dir = root / "data"
    (root / "cluster.toml").write_text(SPEC)
    results = []
    lag = {"p50": None, "p99": None}
    try:
        progress("borealis up: nine storage nodes, a writer, two readers, router, control "
                 "plane")
        borealis(data_dir, "up", "--spec", str(root / "cluster.toml"), "--quiet")
        host, _, port = status(data_dir)["endpoints"]["writer"].rpartition(":")
        dsn = (f"host={host} port={port} user=postgres password={PASSWORD} dbname=postgres "
               "sslmode=disable connect_timeout=30")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id integer PRIMARY KEY, balance integer)")
            for i in range(ACCOUNTS):
                conn.execute("INSERT INTO accounts VALUES (%s, 1000)", (i,))
        if args.lag_seconds > 0:
            lag = measure_lag(data_dir, ["-h", host, "-p", port, "-U", "postgres"], args)
        for index in range(args.runs):
            results.append(one_kill(data_dir, dsn, index))
    finally:
        subprocess.run([sys.executable, "-m", "borealis", "down", "--data-dir",
                        str(data_dir)], capture_output=True, timeout=300)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    times = [r["failover_s"] for r in results]
    promotions = [r["promote_s"] for r in results if r["promote_s"] is not None]
    print(json.dumps({
        "failover_s_median": round(statistics.median(times), 3),
        "failover_s_max": round(max(times), 3),
        "failover_s_all": [round(t, 3) for t in times],
        "promote_s_median": round(statistics.median(promotions), 3) if promotions else None,
        "detect_s": ClusterSpec().writer_dead_after_s,
        "replica_lag_p50_ms": lag["p50"],
        "replica_lag_p99_ms": lag["p99"],
        "runs": args.runs, "lag_clients": args.clients, "lag_seconds": args.lag_seconds,
        "cluster": "borealis up: 9 storage nodes, 1 writer, 2 readers, router, control plane",
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bar_failover_s": 5.0, "aim_failover_s": 1.0,
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
