"""``borealis storage add-node --az AZ``: add a storage node to an AZ. It holds nothing
until a repair (a node down for longer than ``repair_after_s``) or the volume's growth
places segments on it."""

from __future__ import annotations

import argparse

from borealis.cli.cluster_api import call, data_dir_argument


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("storage", help="storage nodes: add-node")
    verbs = p.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add-node", help="add a storage node (a spare) to an AZ")
    data_dir_argument(add)
    add.add_argument("--az", required=True, help="the AZ, e.g. az1")
    add.set_defaults(fn=run_add)


def run_add(args: argparse.Namespace) -> int:
    node = call(args.data_dir, "POST", "/v1/storage-nodes", {"az": args.az}, timeout_s=60)
    print(f"Storage node {node['id']} ({node['az']}) started, pid {node['pid']}, "
          f"{node['address']}.")
    return 0
