"""``borealis up``: start the local storage cluster, then run the demo writer.

Six storage-node processes (two in each of three AZs) are started in the background and
keep running after this command returns; the demo writer then becomes the volume's
writer (recovering it: sealing a new epoch, finding VDL, truncating above it), commits
for a few seconds with eight concurrent committers, reads everything back and prints
what it measured. The SQL engine, readers, endpoints and control plane come later.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from borealis.cli.cluster_state import ClusterState
from borealis.errors import BorealisError

DEMO_PAGES = 256
DEMO_COMMITTERS = 8


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="start the local storage cluster and run the demo writer")
    p.add_argument("--data-dir", type=Path, default=Path(".borealis"),
                   help="where the cluster keeps everything (default: ./.borealis)")
    p.add_argument("--demo-seconds", type=float, default=3.0,
                   help="how long the demo writer commits (0: no demo)")
    p.add_argument("--pg-mib", type=int, default=16,
                   help="protection group size in MiB for a new volume (default 16)")
    p.set_defaults(fn=run)


def say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    state = ClusterState.load_or_new(args.data_dir)
    state.data_dir.mkdir(parents=True, exist_ok=True)
    say(f"Borealis local cluster in {state.data_dir}")
    started = 0
    for node in state.nodes:
        if state.is_ours(node):
            say(f"  storage node {node.node:<7} {node.az}  already running  pid {node.pid}  "
                f"{node.address}")
            continue
        t = time.perf_counter()
        try:
            node.start()
        except BorealisError as exc:
            say(f"  storage node {node.node} failed to start: {exc}")
            state.save()
            return 1
        started += 1
        state.save()
        say(f"  storage node {node.node:<7} {node.az}  started in {time.perf_counter() - t:.2f}s"
            f"  pid {node.pid}  {node.address}  (log: {node.log_path})")
    say(f"{started} started, {len(state.nodes) - started} already running.")
    if args.demo_seconds > 0:
        try:
            summary = asyncio.run(_demo(state, args.demo_seconds, args.pg_mib))
        except BorealisError as exc:
            say(f"demo writer failed: {exc}")
            return 1
        say(json.dumps(summary))
    say("")
    say(f"The storage cluster keeps running.  borealis status --data-dir {args.data_dir}   "
        f"borealis down --data-dir {args.data_dir}")
    say("Not built yet: SQL instances, readers, endpoints and the control plane "
        "(so there is no psql command to paste yet).")
    return 0


async def _demo(state: ClusterState, seconds: float, pg_mib: int) -> dict[str, Any]:
    from borealis.transport.rpc import install_uvloop
    from borealis.types import PageNo, VolumeId
    from borealis.volume.client import VolumeClient
    from borealis.volume.geometry import Geometry
    from borealis.volume.spec import VolumeSpec
    from borealis.volume.writer import PageWrite

    del install_uvloop  # asyncio.run already chose the loop; uvloop is for the servers
    nodes = {n.node: n.info() for n in state.nodes}
    if state.spec_path.exists():
        spec = VolumeSpec.load(state.spec_path)
        spec.nodes = nodes
    else:
        spec = VolumeSpec(Geometry(VolumeId("demo"), pg_bytes=pg_mib * 2**20), nodes)
    client = VolumeClient(spec, writer_id=f"demo-{int(time.time())}", spec_path=state.spec_path)
    t = time.perf_counter()
    result = await client.open_writer()
    recovery_s = time.perf_counter() - t
    say(f"Demo writer: recovered the volume in {recovery_s * 1000:.0f} ms: epoch "
        f"{result.epoch}, VDL {result.vdl}, new writes start above {result.start}.")
    rng = random.Random()
    pages: dict[int, bytes] = {}
    for page in range(DEMO_PAGES):
        found = await client.read_page(page)
        if found.image is not None:
            pages[page] = found.image
    say(f"Demo writer: read back {len(pages)} pages written by earlier runs; committing "
        f"for {seconds:.0f}s with {DEMO_COMMITTERS} committers...")
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def committer() -> None:
        while time.perf_counter() < deadline:
            writes = []
            for page in rng.sample(range(DEMO_PAGES), 4):
                old = pages.get(page)
                new = bytearray(old if old is not None else bytes(4096))
                at = rng.randrange(4096 - 100)
                new[at:at + 100] = rng.randbytes(100)
                pages[page] = bytes(new)
                writes.append(PageWrite(PageNo(page), bytes(new), old))
            t0 = time.perf_counter()
            await client.commit(writes)
            latencies.append(time.perf_counter() - t0)

    t = time.perf_counter()
    await asyncio.gather(*(committer() for _ in range(DEMO_COMMITTERS)))
    elapsed = time.perf_counter() - t
    mismatched = 0
    for page, image in pages.items():
        found = await client.read_page(page)
        mismatched += found.image != image
    await client.close()
    latencies.sort()
    summary = {
        "commits": len(latencies),
        "commits_per_s": round(len(latencies) / elapsed, 1),
        "commit_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "commit_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
        if latencies else None,
        "vdl": client.vdl,
        "epoch": result.epoch,
        "recovery_ms": round(recovery_s * 1000, 1),
        "pages_checked": len(pages),
        "pages_mismatched": mismatched,
    }
    if mismatched:
        print(f"ERROR: {mismatched} pages read back differently", file=sys.stderr)
    else:
        say(f"Demo writer: {len(latencies)} durable commits; all {len(pages)} pages read back "
            "exactly as committed.")
    return summary
