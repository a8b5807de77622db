"""``borealis status [--json]``: the local cluster's processes and storage state."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from borealis.cli.cluster_state import ClusterState
from borealis.errors import BorealisError
from borealis.types import WRITE_QUORUM


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="show the local cluster")
    p.add_argument("--data-dir", type=Path, default=Path(".borealis"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=run)


async def _node_status(address: str) -> dict[str, Any] | None:
    from borealis.transport.rpc import RpcClient

    host, _, port = address.rpartition(":")
    try:
        client = await RpcClient(name="status").connect(host, int(port), timeout_s=1.0)
    except BorealisError:
        return None
    try:
        result: dict[str, Any] = await client.call("node_status", None, timeout_s=2.0)
        return result
    except BorealisError:
        return None
    finally:
        await client.close()


def collect(data_dir: Path) -> dict[str, Any]:
    state = ClusterState.load_or_new(data_dir)
    running = [n for n in state.nodes if state.is_ours(n)]
    statuses = {}
    if running:
        async def gather() -> list[dict[str, Any] | None]:
            return await asyncio.gather(*(_node_status(n.address) for n in running))
        statuses = dict(zip([n.node for n in running], asyncio.run(gather()), strict=True))
    nodes = []
    segments: dict[str, list[tuple[str, int]]] = {}
    for n in state.nodes:
        st = statuses.get(n.node)
        state_name = "up" if st is not None else ("unresponsive" if n in running else "down")
        nodes.append({
            "id": n.node, "az": n.az, "state": state_name, "pid": n.pid if n in running else None,
            "address": n.address, "segments": (st or {}).get("segments", {}),
        })
        for sid, info in ((st or {}).get("segments") or {}).items():
            pg = sid.split("/")[1]
            segments.setdefault(pg, []).append((sid, int(info["scl"])))
    pgs = []
    for pg, members in sorted(segments.items()):
        scls = sorted((scl for _, scl in members), reverse=True)
        pgs.append({"pg": pg, "segments_up": len(members),
                    "pgcl": scls[WRITE_QUORUM - 1] if len(scls) >= WRITE_QUORUM else None,
                    "write_quorum": len(members) >= WRITE_QUORUM})
    return {
        "data_dir": str(state.data_dir),
        "endpoints": {"writer": None, "reader": None},
        "instances": [],
        "storage_nodes": nodes,
        "protection_groups": pgs,
        "note": "SQL instances and endpoints are not built yet",
    }


def run(args: argparse.Namespace) -> int:
    data = collect(args.data_dir)
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"Borealis local cluster in {data['data_dir']}")
    print(f"{'storage node':<14}{'az':<6}{'state':<14}{'pid':<9}{'address':<22}segments")
    for n in data["storage_nodes"]:
        print(f"{n['id']:<14}{n['az']:<6}{n['state']:<14}{n['pid'] or '-'!s:<9}"
              f"{n['address'] or '-':<22}{len(n['segments'])}")
    if data["protection_groups"]:
        print(f"\n{'PG':<8}{'segments up':<14}{'PGCL':<12}write quorum")
        for pg in data["protection_groups"]:
            print(f"{pg['pg']:<8}{pg['segments_up']:<14}{pg['pgcl']!s:<12}"
                  f"{'yes' if pg['write_quorum'] else 'NO'}")
    print("\nEndpoints: none yet (SQL instances are not built yet).")
    return 0
