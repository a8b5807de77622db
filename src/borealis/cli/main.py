"""``borealis``: the command-line entry point.

Today the storage node process and the networked volume client are not built yet, so
``borealis up`` runs the storage protocol on a *simulated* six-node, three-AZ cluster in
this process (the same segment, writer and recovery code that the processes will run)
and says so. ``status`` and ``down`` answer honestly that no cluster processes exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATA_DIR_DEFAULT = Path(".borealis")

NOT_YET = (
    "Borealis 0.1 has no storage-node processes yet: `borealis up` runs the storage "
    "protocol on a simulated cluster in one process. See README.md."
)


def _up(args: argparse.Namespace) -> int:
    from borealis.sim.runner import run_seed

    print(NOT_YET, flush=True)
    print("Simulated cluster: 6 storage nodes in 3 AZs (az1, az2, az3), 3 protection groups, "
          "one writer; faults: a whole AZ is lost while the writer commits.", flush=True)
    result = run_seed(args.seed, "az-down-while-writing", duration_s=args.duration)
    summary = {
        "ok": result.ok, "seed": result.seed, "commits_acknowledged": result.commits_acked,
        "reads_checked": result.reads_checked, "virtual_s": round(result.virtual_s, 3),
        "events": result.steps,
    }
    print(json.dumps(summary), flush=True)
    if not result.ok:
        print(result.message, file=sys.stderr)
        return 1
    print("Every acknowledged commit survived, every read matched the model, and all "
          "segments converged byte for byte after the AZ came back.")
    return 0


def _status(args: argparse.Namespace) -> int:
    data = {"data_dir": str(args.data_dir), "endpoints": {}, "instances": [],
            "storage_nodes": [], "note": NOT_YET}
    if args.json:
        print(json.dumps(data))
    else:
        print(NOT_YET)
    return 0


def _down(args: argparse.Namespace) -> int:
    print("No Borealis processes to stop: " + NOT_YET)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="borealis", description="Borealis database")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a local cluster (today: a simulated one)")
    up.add_argument("--data-dir", type=Path, default=DATA_DIR_DEFAULT)
    up.add_argument("--seed", type=int, default=1, help="simulation seed")
    up.add_argument("--duration", type=float, default=0.4, help="virtual seconds of load")
    up.set_defaults(fn=_up)
    status = sub.add_parser("status", help="show the cluster")
    status.add_argument("--data-dir", type=Path, default=DATA_DIR_DEFAULT)
    status.add_argument("--json", action="store_true")
    status.set_defaults(fn=_status)
    down = sub.add_parser("down", help="stop the cluster")
    down.add_argument("--data-dir", type=Path, default=DATA_DIR_DEFAULT)
    down.set_defaults(fn=_down)
    from borealis.cli import storage_node

    storage_node.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
