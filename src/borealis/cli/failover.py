"""``borealis failover [--target ID]``: make a reader the writer now (a switchover: the
writer is stopped cleanly first; it comes back as a reader). Without ``--target`` the
control plane picks the reader with the lowest promotion tier, then the lowest lag."""

from __future__ import annotations

import argparse

from borealis.cli.cluster_api import call, data_dir_argument

FAILOVER_TIMEOUT_S = 120.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("failover", help="fail over to a reader (manual failover)")
    data_dir_argument(p)
    p.add_argument("--target", help="the reader to promote (default: the best one)")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    result = call(args.data_dir, "POST", "/v1/failover", {"target": args.target},
                  timeout_s=FAILOVER_TIMEOUT_S)
    print(f"Failed over from {result['old_writer']} to {result['new_writer']} in "
          f"{result['seconds']:.2f} s; {result['old_writer']} returns as a reader.")
    return 0
