"""The storage commit path end to end: real storage-node processes, a real volume client.

Six storage nodes (three AZs, two per AZ) run as processes in a temporary directory; the
volume client (the writer) runs in this process on uvloop, as a DB instance would. The volume
has ``--pgs`` protection groups of ``--pg-mib`` MiB and a working set of every page in them.
Measured, in this order:

1. fill: every page of the working set written once as a full image (commit groups of
   ``FILL_GROUP_PAGES``), so that later writes are deltas;
2. commits with 1 and then 8 concurrent committers for ``--seconds`` each: a commit group is
   ``--group-pages`` page writes, each changing the page header and ~92 bytes elsewhere
   (``PageWrite(page, new, base=old)``, so the records are ~116-byte PATCH deltas, the OLTP
   case of ``bench/delta.py``). Reported: durable commit groups per second, p50/p99 commit
   latency, and the bytes the client's connections sent per commit;
3. repair: one node is killed with -9, its data directory wiped and the node restarted on
   the same port; the writer re-creates its (now empty) segments and keeps committing
   lightly, and the segments fill from their peers by gossip (a snapshot of the peer's
   materialised pages plus the records above it). Reported: the volume's data bytes (pages
   written x page size: each node holds one segment of every PG) over the time from the
   segments' creation until every one of them has an SCL at the writer's VDL of that moment;
4. the simulator: ``--sim-seeds`` seeds of ``borealis.sim`` (scenarios in turn), events
   (steps) per second of wall time.

Every node process is stopped by its PID at the end, also on error or Ctrl-C.

    python bench/storage.py [--seconds 5] [--pgs 4] [--pg-mib 4] [--sim-seeds 4]

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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from borealis.control.processes import NodeProcess, storage_fleet
from borealis.sim.runner import run_seed
from borealis.sim.scenarios import SCENARIOS
from borealis.transport.rpc import RpcClient, connect
from borealis.transport.rpc import run as run_loop
from borealis.types import PageNo, VolumeId
from borealis.volume.client import VolumeClient
from borealis.volume.geometry import Geometry
from borealis.volume.spec import VolumeSpec
from borealis.volume.writer import PageWrite

PAGE_BYTES = 4096
FILL_GROUP_PAGES = 16
FILL_COMMITTERS = 8
CHANGE_BYTES = 92
"""Bytes changed in a page besides its 8-byte header: with the header, a ~116-byte PATCH."""
WARMUP_S = 0.5
REPAIR_TIMEOUT_S = 40.0
REPAIR_POLL_S = 0.02
REPAIR_TRICKLE_S = 0.01
"""While a segment is repaired the writer commits one group this often: a repaired segment
learns how far it must catch up from the write batches it receives."""


class Pages:
    """The working set: the current image of every page, and who may change it."""

    def __init__(self, count: int, rng: random.Random) -> None:
        self.rng = rng
        self.images: list[bytes] = []
        for page in range(count):
            # A page about half full: a header, some rows, then zeros.
            body = rng.randbytes(PAGE_BYTES // 2)
            self.images.append(page.to_bytes(8, "little") + body + bytes(PAGE_BYTES // 2 - 8))
        self.counter = 0

    def change(self, page: int) -> PageWrite:
        """A new version of ``page``: a new header and ~92 changed bytes at one place."""
        old = self.images[page]
        new = bytearray(old)
        self.counter += 1
        new[0:8] = self.counter.to_bytes(8, "little")
        at = self.rng.randrange(16, PAGE_BYTES - CHANGE_BYTES)
        new[at : at + CHANGE_BYTES] = self.rng.randbytes(CHANGE_BYTES)
        image = bytes(new)
        self.images[page] = image
        return PageWrite(PageNo(page), image, base=old)


def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def fill(client: VolumeClient, pages: Pages) -> dict[str, Any]:
    count = len(pages.images)
    started = time.perf_counter()

    async def committer(k: int) -> None:
        for first in range(k * FILL_GROUP_PAGES, count, FILL_GROUP_PAGES * FILL_COMMITTERS):
            group = range(first, min(count, first + FILL_GROUP_PAGES))
            await client.commit([PageWrite(PageNo(p), pages.images[p]) for p in group])

    await asyncio.gather(*(committer(k) for k in range(FILL_COMMITTERS)))
    elapsed = time.perf_counter() - started
    return {"pages": count, "s": round(elapsed, 2),
            "mb_per_s": round(count * PAGE_BYTES / elapsed / 1e6, 2)}


async def commits(client: VolumeClient, pages: Pages, *, committers: int, seconds: float,
                  group_pages: int, node_pids: list[int]) -> dict[str, Any]:
    """``committers`` loops committing groups of page deltas for ``seconds`` after a warm-up.

    Committer ``k`` owns the pages ``p % committers == k``: a page's next version is made
    against the version the writer appended last, so two committers never race on a page.
    """
    count = len(pages.images)
    owned = [list(range(k, count, committers)) for k in range(committers)]
    latencies: list[float] = []
    measuring = False
    stop = False
    done = 0

    async def committer(k: int) -> None:
        nonlocal done
        mine = owned[k]
        while not stop:
            group = [pages.change(p) for p in pages.rng.sample(mine, group_pages)]
            t = time.perf_counter()
            await client.commit(group)
            if measuring:
                latencies.append(time.perf_counter() - t)
                done += 1

    tasks = [asyncio.create_task(committer(k)) for k in range(committers)]
    try:
        await asyncio.sleep(WARMUP_S)
        measuring = True
        bytes_before = client.pool.bytes_sent
        flushes_before = client.stats.flushes
        cpu_before = (cpu_s([os.getpid()]), cpu_s(node_pids))
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        measuring = False
        elapsed = time.perf_counter() - started
        cpu_client = cpu_s([os.getpid()]) - cpu_before[0]
        cpu_nodes = cpu_s(node_pids) - cpu_before[1]
        sent = client.pool.bytes_sent - bytes_before
        flushes = client.stats.flushes - flushes_before
        n = done
    finally:
        stop = True
        await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "committers": committers,
        "commits": n,
        "commits_per_s": round(n / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1e3, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1e3, 2) if latencies else 0.0,
        "bytes_per_commit": round(sent / n) if n else 0,
        "commits_per_flush": round(n / flushes, 2) if flushes else 0.0,
        # CPU per commit: steadier than rates on a shared machine. The client's includes
        # this benchmark's own page changes.
        "client_cpu_us": round(cpu_client / n * 1e6) if n else 0,
        "nodes_cpu_us": round(cpu_nodes / n * 1e6) if n else 0,
    }


async def node_status(node: NodeProcess) -> dict[str, Any] | None:
    host, _, port = node.address.rpartition(":")
    rpc: RpcClient | None = None
    try:
        rpc = await connect(host, int(port), timeout_s=1.0)
        return await rpc.call("node_status", None, timeout_s=2.0)  # type: ignore[no-any-return]
    except Exception:  # the node is restarting: ask again later
        return None
    finally:
        if rpc is not None:
            await rpc.close()


async def repair(client: VolumeClient, pages: Pages, victim: NodeProcess) -> dict[str, Any]:
    """Kill -9 a node, wipe it, restart it empty and time its segments' refill."""
    hosted = [p.segment for layout in client.spec.layouts.values()
              for p in layout.segments if p.node == victim.node]
    data_bytes = len(pages.images) * PAGE_BYTES
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, victim.kill)
    shutil.rmtree(victim.data_dir)
    await loop.run_in_executor(None, victim.start)
    stop = False

    async def trickle() -> None:
        while not stop:
            await client.commit([pages.change(pages.rng.randrange(len(pages.images)))])
            await asyncio.sleep(REPAIR_TRICKLE_S)

    # The writer's connection to the node may be in its reconnect back-off for a moment
    # after the restart: create until the node hosts every segment again.
    deadline = time.perf_counter() + REPAIR_TIMEOUT_S
    while True:
        await client.ensure_segments()
        status = await node_status(victim)
        if status is not None and all(s in status["segments"] for s in hosted):
            break
        if time.perf_counter() > deadline:
            return {"ok": False, "s": REPAIR_TIMEOUT_S, "mb": round(data_bytes / 1e6, 2),
                    "mb_per_s": 0.0, "status": status}
        await asyncio.sleep(REPAIR_POLL_S)
    started = time.perf_counter()
    target = client.vdl
    task = asyncio.create_task(trickle())
    try:
        while time.perf_counter() - started < REPAIR_TIMEOUT_S:
            status = await node_status(victim)
            if status is not None:
                segments = status["segments"]
                if all(s in segments and segments[s]["scl"] >= target for s in hosted):
                    break
            await asyncio.sleep(REPAIR_POLL_S)
        else:
            return {"ok": False, "s": REPAIR_TIMEOUT_S, "mb": round(data_bytes / 1e6, 2),
                    "mb_per_s": 0.0, "status": status}
        elapsed = time.perf_counter() - started
    finally:
        stop = True
        await task
    assert status is not None
    snapshots = sum(status["segments"][s]["snapshots_installed"] for s in hosted)
    return {"ok": True, "segments": len(hosted), "mb": round(data_bytes / 1e6, 2),
            "s": round(elapsed, 2), "mb_per_s": round(data_bytes / elapsed / 1e6, 2),
            "snapshots_installed": snapshots}


async def storage_bench(nodes: list[NodeProcess], data_dir: Path,
                        args: argparse.Namespace) -> dict[str, Any]:
    geometry = Geometry(VolumeId("bench"), page_size=PAGE_BYTES, pg_bytes=args.pg_mib * 2**20)
    spec = VolumeSpec(geometry, {n.node: n.info() for n in nodes})
    client = VolumeClient(spec, writer_id="bench", spec_path=data_dir / "volume.json")
    rng = random.Random(args.seed)
    pages = Pages(args.pgs * geometry.pg_pages, rng)
    out: dict[str, Any] = {}
    try:
        await client.open_writer()
        out["fill"] = await fill(client, pages)
        print(f"fill: {out['fill']}", flush=True)
        for committers in args.committers:
            result = await commits(client, pages, committers=committers, seconds=args.seconds,
                                   group_pages=args.group_pages,
                                   node_pids=[n.pid for n in nodes])
            # What the nodes still hold: coalescing yields to writes and catches up after.
            statuses = [await node_status(n) for n in nodes]
            segments = [seg for st in statuses if st for seg in st["segments"].values()]
            result["records_retained_max"] = max((seg["records"] for seg in segments), default=0)
            result["coalesce_lag_lsns_max"] = max(
                (seg["scl"] - seg["coalesced"] for seg in segments), default=0
            )
            out[f"commits_{committers}"] = result
            print(f"commits: {result}", flush=True)
        if args.repair:
            out["repair"] = await repair(client, pages, nodes[0])
            print(f"repair: {out['repair']}", flush=True)
        out["stats"] = {k: v for k, v in vars(client.stats).items()}
    finally:
        await client.close()
    return out


def sim_bench(seeds: int) -> dict[str, Any]:
    scenarios = list(SCENARIOS)
    steps = 0
    wall = 0.0
    failures = 0
    # The simulator injects corruption: its segments' warnings about it are expected.
    logging.getLogger("borealis").setLevel(logging.ERROR)
    for seed in range(seeds):
        result = run_seed(seed, scenarios[seed % len(scenarios)])
        steps += result.steps
        wall += result.wall_s
        failures += not result.ok
    return {"seeds": seeds, "steps": steps, "wall_s": round(wall, 2),
            "events_per_s": round(steps / wall) if wall else 0, "failures": failures}


def start_all(nodes: list[NodeProcess]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(node.start) for node in nodes]:
            future.result()


def stop_all(nodes: list[NodeProcess]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.stop(), nodes))


def main() -> int:
    # SIGTERM ends the run like Ctrl-C: the storage nodes are still stopped by PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="measured seconds per committer count (default 5)")
    parser.add_argument("--pgs", type=int, default=4, help="protection groups (default 4)")
    parser.add_argument("--pg-mib", type=int, default=4, help="MiB per PG (default 4)")
    parser.add_argument("--group-pages", type=int, default=4,
                        help="page deltas per commit group (default 4)")
    parser.add_argument("--sim-seeds", type=int, default=4, help="simulator seeds (default 4)")
    parser.add_argument("--committers", type=lambda text: [int(x) for x in text.split(",")],
                        default=[1, 8], help="committer counts to measure (default 1,8)")
    parser.add_argument("--no-repair", dest="repair", action="store_false")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    data_dir = Path(tempfile.mkdtemp(prefix="borealis-bench-"))
    nodes = storage_fleet(data_dir)
    started = time.perf_counter()
    try:
        start_all(nodes)
        print(f"{len(nodes)} storage nodes in {data_dir} (pids "
              f"{', '.join(str(n.pid) for n in nodes)}); {os.cpu_count()} cores", flush=True)
        results = run_loop(storage_bench(nodes, data_dir, args))
    finally:
        stop_all(nodes)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    sim = sim_bench(args.sim_seeds)
    print(f"sim: {sim}", flush=True)

    if args.committers != [1, 8]:
        print(json.dumps({k: v for k, v in results.items() if k.startswith("commits_")}))
        return 0
    c1, c8 = results["commits_1"], results["commits_8"]
    rep = results.get("repair", {})
    print()
    print(f"{'committers':>10} {'commits/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'bytes/commit':>13} {'commits/flush':>14} {'client CPU us':>14} "
          f"{'6 nodes CPU us':>15}")
    for r in (c1, c8):
        print(f"{r['committers']:>10} {r['commits_per_s']:>10} {r['p50_ms']:>8} "
              f"{r['p99_ms']:>8} {r['bytes_per_commit']:>13} {r['commits_per_flush']:>14} "
              f"{r['client_cpu_us']:>14} {r['nodes_cpu_us']:>15}")
    if rep:
        print(f"repair: {rep.get('mb')} MB in {rep.get('s')} s = {rep.get('mb_per_s')} MB/s "
              f"(ok={rep.get('ok')})")
    print(f"simulator: {sim['events_per_s']} events/s over {sim['seeds']} seeds")
    print(f"total {time.perf_counter() - started:.1f} s")
    summary = {
        "commits_per_s_1": c1["commits_per_s"],
        "commit_p50_ms_1": c1["p50_ms"],
        "commit_p99_ms_1": c1["p99_ms"],
        "commits_per_s_8": c8["commits_per_s"],
        "commit_p50_ms_8": c8["p50_ms"],
        "commit_p99_ms_8": c8["p99_ms"],
        "bytes_per_commit": c8["bytes_per_commit"],
        "bytes_per_commit_1": c1["bytes_per_commit"],
        "client_cpu_us_per_commit_8": c8["client_cpu_us"],
        "nodes_cpu_us_per_commit_8": c8["nodes_cpu_us"],
        "repair_mb_per_s": rep.get("mb_per_s", 0.0),
        "repair_ok": rep.get("ok", False),
        "sim_events_per_s": sim["events_per_s"],
        "fill_mb_per_s": results["fill"]["mb_per_s"],
        "seconds": args.seconds,
        "group_pages": args.group_pages,
        "pgs": args.pgs,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
