"""TPC-B-like transactions through the engine on six storage nodes, against plain SQLite.

Six ``borealis storage-node`` processes in a temporary directory; the writer instance's
engine (``borealis.engine.Database``) in this process on uvloop, SQL in session threads, as
in an instance process. The schema and the transaction are pgbench's (TPC-B-like): at scale
``--scale`` (100,000 accounts each), a transaction updates an account, reads its balance,
updates a teller and a branch and inserts a history row, each statement sent separately as
a client would, in ``BEGIN IMMEDIATE`` ... ``COMMIT``. Measured, in this order:

1. commits per second and p50/p99 commit latency with 1 and with 8 sessions, ``--seconds``
   each after a warm-up, and the bytes the volume client sent per commit;
2. the same transactions on plain SQLite on local disk in the same run (APSW, a rollback
   journal, ``synchronous=FULL``, one connection per thread): the engine's ceiling;
3. recovery: the writer is closed and a new one opens the volume (a quorum read of every PG,
   a new epoch, a truncation; no redo replay): seconds until it answers a query, with the
   database at its loaded size (~15 MB at scale 1) and again after it has grown to
   ``--large-mib`` MiB (bulk inserts of 4 KiB rows). Before each, the storage nodes are
   let finish materialising what they were sent (``settle``): otherwise the second
   measures their background work, not the recovery. Reported apart: the volume recovery
   itself, and the time until the first query has answered with a cold cache.

Replica lag: a reader instance process follows the writer's redo stream throughout; its
lag is the time from the writer sending a VDL advance to the reader applying it (wall
clocks of one machine), p50/p99 over its last 4,096 advances, read from its ``status``.

    python bench/engine.py [--seconds 5] [--scale 1] [--large-mib 1024]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import apsw

from borealis.control.processes import InstanceProcess, NodeProcess, storage_fleet
from borealis.engine.database import Database, Session
from borealis.errors import LockTimeoutError, SerializationError
from borealis.instance.process import Instance, InstanceConfig
from borealis.instance.remote import InstanceClient
from borealis.transport.rpc import connect
from borealis.transport.rpc import run as run_loop
from borealis.types import VolumeId
from borealis.volume.client import VolumeClient
from borealis.volume.geometry import Geometry
from borealis.volume.spec import VolumeSpec

ACCOUNTS_PER_SCALE = 100_000
TELLERS_PER_SCALE = 10
PG_MIB = 64
WARMUP_S = 0.5
BULK_ROW_BYTES = 4000
BULK_ROWS_PER_COMMIT = 250
SETTLED_LAG_LSNS = 1_000
SETTLE_TIMEOUT_S = 900.0

SCHEMA = [
    "CREATE TABLE pgbench_branches (bid INTEGER PRIMARY KEY, bbalance INTEGER, filler TEXT)",
    "CREATE TABLE pgbench_tellers (tid INTEGER PRIMARY KEY, bid INTEGER, tbalance INTEGER, "
    "filler TEXT)",
    "CREATE TABLE pgbench_accounts (aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER, "
    "filler TEXT)",
    "CREATE TABLE pgbench_history (tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, "
    "mtime TEXT, filler TEXT)",
]
TRANSACTION = [
    "BEGIN IMMEDIATE",
    "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid",
    "SELECT abalance FROM pgbench_accounts WHERE aid = :aid",
    "UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid",
    "UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES (:tid, :bid, :aid, :delta, datetime('now'))",
    "COMMIT",
]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def transaction_params(rng: random.Random, scale: int) -> dict[str, int]:
    return {"aid": rng.randint(1, ACCOUNTS_PER_SCALE * scale),
            "tid": rng.randint(1, TELLERS_PER_SCALE * scale),
            "bid": rng.randint(1, scale), "delta": rng.randint(-5000, 5000)}


def load_statements(scale: int) -> list[tuple[str, list[Any]]]:
    """The initial data, as (statement, rows) pairs for executemany-style loading."""
    filler = " " * 84
    return [
        ("INSERT INTO pgbench_branches VALUES (?, 0, NULL)",
         [(b,) for b in range(1, scale + 1)]),
        ("INSERT INTO pgbench_tellers VALUES (?, ?, 0, NULL)",
         [(t, (t - 1) // TELLERS_PER_SCALE + 1)
          for t in range(1, TELLERS_PER_SCALE * scale + 1)]),
        ("INSERT INTO pgbench_accounts VALUES (?, ?, 0, ?)",
         [(a, (a - 1) // ACCOUNTS_PER_SCALE + 1, filler)
          for a in range(1, ACCOUNTS_PER_SCALE * scale + 1)]),
    ]


# --- the engine --------------------------------------------------------------------------------


async def run_transaction(session: Session, params: dict[str, int]) -> None:
    for _attempt in range(100):
        try:
            for sql in TRANSACTION:
                await session.execute(sql, params if ":" in sql else None)
            return
        except (SerializationError, LockTimeoutError):
            if session.in_transaction:
                await session.execute("ROLLBACK")
    raise RuntimeError("a transaction failed 100 times")


async def engine_commits(db: Database, client: VolumeClient, *, sessions: int, seconds: float,
                         scale: int, seed: int) -> dict[str, Any]:
    handles = [await db.session() for _ in range(sessions)]
    latencies: list[float] = []
    measuring = False
    stop = False

    async def worker(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        while not stop:
            started = time.perf_counter()
            await run_transaction(handles[k], transaction_params(rng, scale))
            if measuring:
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(worker(k)) for k in range(sessions)]
    try:
        await asyncio.sleep(WARMUP_S)
        sent_before = client.pool.bytes_sent
        flushes_before = client.stats.flushes
        cpu_before = time.process_time()
        measuring = True
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        measuring = False
        elapsed = time.perf_counter() - started
        n = len(latencies)
        sent = client.pool.bytes_sent - sent_before
        flushes = client.stats.flushes - flushes_before
        cpu = time.process_time() - cpu_before
    finally:
        stop = True
        await asyncio.gather(*tasks)
        for handle in handles:
            await handle.close()
    return {
        "sessions": sessions, "commits": n, "commits_per_s": round(n / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1e3, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 2),
        "bytes_per_commit": round(sent / n) if n else 0,
        "commits_per_flush": round(n / flushes, 2) if flushes else 0.0,
        "instance_cpu_us_per_commit": round(cpu / n * 1e6) if n else 0,
    }


async def load_engine(db: Database, scale: int) -> float:
    started = time.perf_counter()
    s = await db.session()
    for sql in SCHEMA:
        await s.execute(sql)
    for sql, rows in load_statements(scale):
        for first in range(0, len(rows), 5000):
            await s.execute("BEGIN")
            for row in rows[first:first + 5000]:
                await s.execute(sql, row)
            await s.execute("COMMIT")
    await s.close()
    return time.perf_counter() - started


async def grow(db: Database, target_bytes: int) -> float:
    """Bulk rows until the database reaches ``target_bytes``; returns the MB/s."""
    s = await db.session()
    await s.execute("CREATE TABLE IF NOT EXISTS bulk (id INTEGER PRIMARY KEY, payload BLOB)")
    payload = os.urandom(BULK_ROW_BYTES)
    size = (await s.execute("PRAGMA page_count")).rows[0][0] * 4096
    started, start_size = time.perf_counter(), size
    last_report = started
    while size < target_bytes:
        await s.execute("BEGIN")
        for _ in range(BULK_ROWS_PER_COMMIT):
            await s.execute("INSERT INTO bulk (payload) VALUES (?)", (payload,))
        await s.execute("COMMIT")
        size = (await s.execute("PRAGMA page_count")).rows[0][0] * 4096
        if time.perf_counter() - last_report > 10:
            last_report = time.perf_counter()
            print(f"  grown to {size / 2**20:.0f} of {target_bytes / 2**20:.0f} MiB",
                  flush=True)
    await s.close()
    return (size - start_size) / 1e6 / max(1e-9, time.perf_counter() - started)


async def settle(nodes: list[NodeProcess], *, timeout_s: float = SETTLE_TIMEOUT_S) -> float:
    """Wait until the storage nodes have materialised what they were sent (their
    background work would otherwise slow whatever is measured next); seconds waited."""
    started = last_report = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        lags = []
        for node in nodes:
            host, _, port = node.address.rpartition(":")
            rpc = await connect(host, int(port), timeout_s=5)
            try:
                status = await rpc.call("node_status", None, timeout_s=5)
            finally:
                await rpc.close()
            lags += [max(0, seg["coalesce_target"] - seg["coalesced"])
                     for seg in status["segments"].values()]
        if max(lags, default=0) <= SETTLED_LAG_LSNS:
            break
        if time.perf_counter() - last_report > 15:
            last_report = time.perf_counter()
            print(f"  storage materialising: {max(lags)} LSNs behind at most", flush=True)
        await asyncio.sleep(1.0)
    return time.perf_counter() - started


async def recover(spec_path: Path, writer: str
                  ) -> tuple[float, float, VolumeClient, Database]:
    """Open the volume as a new writer: seconds of volume recovery, and seconds until the
    first query has answered (with a cold cache)."""
    started = time.perf_counter()
    client = VolumeClient(VolumeSpec.load(spec_path), writer_id=writer, spec_path=spec_path)
    db = await Database.open_writer(client)
    recovered = time.perf_counter() - started
    s = await db.session()
    await s.execute("SELECT count(*) FROM pgbench_branches")
    elapsed = time.perf_counter() - started
    await s.close()
    return recovered, elapsed, client, db


async def engine_bench(nodes: list[NodeProcess], data_dir: Path,
                       args: argparse.Namespace) -> dict[str, Any]:
    geometry = Geometry(VolumeId("engine"), pg_bytes=PG_MIB * 2**20)
    spec_path = data_dir / "volume.json"
    VolumeSpec(geometry, {n.node: n.info() for n in nodes}).save(spec_path)
    client = VolumeClient(VolumeSpec.load(spec_path), writer_id="bench-1", spec_path=spec_path)
    # The writer instance in this process (its engine driven directly), serving the redo
    # stream to a reader instance process.
    writer = Instance(InstanceConfig("bench-writer", "az1"), client)
    await writer.open()
    await writer.serve("127.0.0.1", 0)
    assert writer.db is not None
    db = writer.db
    reader = InstanceProcess("bench-reader", "az2", spec_path, data_dir / "reader",
                             data_dir / "logs" / "reader.log", role="reader",
                             extra_args=("--writer", writer.address))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, reader.start)
    out: dict[str, Any] = {}
    try:
        out["load_s"] = round(await load_engine(db, args.scale), 2)
        print(f"loaded scale {args.scale} in {out['load_s']} s", flush=True)
        for sessions in (1, 8):
            result = await engine_commits(db, client, sessions=sessions, seconds=args.seconds,
                                          scale=args.scale, seed=args.seed)
            out[f"engine_{sessions}"] = result
            print(f"engine: {result}", flush=True)
        remote = await InstanceClient.connect(reader.address)
        out["reader"] = await remote.status()
        out["reader_sees"] = (await remote.execute(
            "SELECT count(*) FROM pgbench_history")).rows[0][0]
        await remote.close()
        print(f"reader: lag p50 {out['reader']['lag_p50_ms']} ms, p99 "
              f"{out['reader']['lag_p99_ms']} ms over its last VDL messages; cache hit ratio "
              f"{out['reader']['cache']['hit_ratio']}", flush=True)
        out["cache"] = {"hit_ratio": round(db.cache.stats.hit_ratio, 4),
                        "bytes": db.cache.bytes}
        small = (await db.session())
        pages = (await small.execute("PRAGMA page_count")).rows[0][0]
        await small.close()
        out["small_mb"] = round(pages * 4096 / 1e6, 1)
    finally:
        await writer.close()
        await loop.run_in_executor(None, reader.stop)
    out["settle_s_small"] = round(await settle(nodes), 1)
    out["recovery_s_small"], out["first_query_s_small"], client, db = await recover(
        spec_path, "bench-2")
    print(f"recovery at {out['small_mb']} MB: {out['recovery_s_small']:.3f} s, first query "
          f"answered after {out['first_query_s_small']:.3f} s", flush=True)
    try:
        out["grow_mb_per_s"] = round(await grow(db, args.large_mib * 2**20), 2)
        s = await db.session()
        out["large_mb"] = round((await s.execute("PRAGMA page_count")).rows[0][0] * 4096 / 1e6,
                                1)
        await s.close()
    finally:
        await db.close()
        await client.close()
    out["settle_s_large"] = round(await settle(nodes), 1)
    out["recovery_s_large"], out["first_query_s_large"], client, db = await recover(
        spec_path, "bench-3")
    print(f"recovery at {out['large_mb']} MB: {out['recovery_s_large']:.3f} s, first query "
          f"answered after {out['first_query_s_large']:.3f} s (storage settled for "
          f"{out['settle_s_large']} s first)", flush=True)
    await db.close()
    await client.close()
    return out


# --- plain SQLite --------------------------------------------------------------------------


def sqlite_local(path: Path, *, threads: int, seconds: float, scale: int,
                 seed: int) -> dict[str, Any]:
    """The same transactions on plain SQLite on local disk (synchronous=FULL)."""
    if not path.exists():
        conn = apsw.Connection(str(path))
        conn.execute("PRAGMA journal_mode=DELETE")
        for sql in SCHEMA:
            conn.execute(sql)
        conn.execute("BEGIN")
        for sql, rows in load_statements(scale):
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
        conn.close()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + WARMUP_S + seconds
    measure_from = time.perf_counter() + WARMUP_S

    def worker(k: int) -> None:
        conn = apsw.Connection(str(path))
        conn.set_busy_timeout(10_000)
        conn.execute("PRAGMA synchronous=FULL")
        rng = random.Random(seed * 1000 + k)
        while time.perf_counter() < deadline:
            params = transaction_params(rng, scale)
            started = time.perf_counter()
            for sql in TRANSACTION:
                conn.execute(sql, params if ":" in sql else None).fetchall()
            if started >= measure_from:
                with lock:
                    latencies.append(time.perf_counter() - started)
        conn.close()

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return {"threads": threads, "commits": len(latencies),
            "commits_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1e3, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1e3, 2)}


def main() -> int:
    # SIGTERM ends the run like Ctrl-C: the storage nodes are still stopped by PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--large-mib", type=int, default=1024,
                        help="database size for the second recovery (default 1024)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    data_dir = Path(tempfile.mkdtemp(prefix="borealis-engine-"))
    nodes = storage_fleet(data_dir)
    try:
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.start(), nodes))
        print(f"{len(nodes)} storage nodes in {data_dir}; {os.cpu_count()} cores", flush=True)
        # The baseline first, while the storage nodes are idle.
        local = {t: sqlite_local(data_dir / "local.sqlite", threads=t, seconds=args.seconds,
                                 scale=args.scale, seed=args.seed) for t in (1, 8)}
        for t, r in local.items():
            print(f"plain SQLite, {t} threads: {r}", flush=True)
        results = run_loop(engine_bench(nodes, data_dir, args))
    finally:
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.stop(), nodes))
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    e1, e8 = results["engine_1"], results["engine_8"]
    summary = {
        "commits_per_s_1": e1["commits_per_s"],
        "commit_p50_ms_1": e1["p50_ms"],
        "commit_p99_ms_1": e1["p99_ms"],
        "commits_per_s_8": e8["commits_per_s"],
        "commit_p50_ms_8": e8["p50_ms"],
        "commit_p99_ms_8": e8["p99_ms"],
        "sqlite_local_commits_per_s": local[8]["commits_per_s"],
        "sqlite_local_commits_per_s_1": local[1]["commits_per_s"],
        "ratio_8_to_local": round(e8["commits_per_s"] / local[8]["commits_per_s"], 3)
        if local[8]["commits_per_s"] else None,
        "replica_lag_p50_ms": results["reader"]["lag_p50_ms"],
        "replica_lag_p99_ms": results["reader"]["lag_p99_ms"],
        "reader_cache_hit_ratio": results["reader"]["cache"]["hit_ratio"],
        "bytes_per_commit": e8["bytes_per_commit"],
        "instance_cpu_us_per_commit_8": e8["instance_cpu_us_per_commit"],
        "recovery_s_small": round(results["recovery_s_small"], 3),
        "recovery_s_large": round(results["recovery_s_large"], 3),
        "first_query_s_small": round(results["first_query_s_small"], 3),
        "first_query_s_large": round(results["first_query_s_large"], 3),
        "small_mb": results["small_mb"],
        "large_mb": results["large_mb"],
        "grow_mb_per_s": results["grow_mb_per_s"],
        "cache_hit_ratio": results["cache"]["hit_ratio"],
        "scale": args.scale,
        "seconds": args.seconds,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
