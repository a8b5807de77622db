"""``borealis down``: stop the local cluster's processes (SIGTERM, then SIGKILL after a
timeout). Data stays in the data dir; ``borealis up`` brings it back."""

from __future__ import annotations

import argparse
from pathlib import Path

from borealis.cli.cluster_state import ClusterState


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("down", help="stop the local cluster (data is kept)")
    p.add_argument("--data-dir", type=Path, default=Path(".borealis"))
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    if not (args.data_dir / "cluster.json").exists():
        print(f"No cluster in {args.data_dir}.")
        return 0
    state = ClusterState.load_or_new(args.data_dir)
    stopped = 0
    for node in state.nodes:
        if state.is_ours(node):
            node.stop()
            stopped += 1
            print(f"  stopped storage node {node.node} (pid {node.pid})", flush=True)
        node.pid = 0
    state.save()
    print(f"{stopped} processes stopped; data kept in {state.data_dir}.")
    return 0
