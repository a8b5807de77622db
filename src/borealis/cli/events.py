"""``borealis events [--json] [--after SEQ]``: what the control plane did and saw
(failovers, restarts, storage nodes down and repaired, volume growth), oldest first."""

from __future__ import annotations

import argparse
import json
import time

from borealis.cli.cluster_api import call, data_dir_argument


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("events", help="show the cluster's events")
    data_dir_argument(p)
    p.add_argument("--after", type=int, default=0, help="only events after this number")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    events = call(args.data_dir, "GET", f"/v1/events?after={args.after}")
    if args.json:
        print(json.dumps(events, indent=1))
        return 0
    for e in events:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
        print(f"{e['seq']:>5}  {at}  {e['kind']:<22} {e['message']}")
    return 0
