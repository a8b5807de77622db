"""``borealis instance add|remove|list``: the cluster's database instances.

``add`` starts a new reader (``--az``: default the AZ with the fewest instances;
``--promotion-tier`` 0-15, default 1) following the writer; ``remove`` stops a reader and
forgets it (the writer cannot be removed: fail over first). ``borealis instance run``
runs one instance in the foreground, as the control plane does.
"""

from __future__ import annotations

import argparse
from typing import Any

from borealis.cli.cluster_api import call, data_dir_argument

ADD_TIMEOUT_S = 120.0


def add_verbs(verbs: Any) -> None:
    add = verbs.add_parser("add", help="add a reader to the cluster")
    data_dir_argument(add)
    add.add_argument("--id", help="its id (default: the next free iN)")
    add.add_argument("--az", help="its AZ (default: the one with the fewest instances)")
    add.add_argument("--promotion-tier", type=int, default=1,
                     help="0-15: failover promotes the lowest tier first (default 1)")
    add.set_defaults(fn=run_add)
    remove = verbs.add_parser("remove", help="stop and remove a reader")
    data_dir_argument(remove)
    remove.add_argument("id")
    remove.set_defaults(fn=run_remove)
    listing = verbs.add_parser("list", help="list the instances")
    data_dir_argument(listing)
    listing.set_defaults(fn=run_list)


def run_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"promotion_tier": args.promotion_tier}
    if args.id:
        body["id"] = args.id
    if args.az:
        body["az"] = args.az
    i = call(args.data_dir, "POST", "/v1/instances", body, timeout_s=ADD_TIMEOUT_S)
    print(f"Instance {i['id']} ({i['role']}, {i['az']}, tier {i['promotion_tier']}) "
          f"started, pid {i['pid']}, PostgreSQL on {i['pg_address']}.")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    call(args.data_dir, "DELETE", f"/v1/instances/{args.id}", timeout_s=ADD_TIMEOUT_S)
    print(f"Instance {args.id} stopped and removed.")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for i in call(args.data_dir, "GET", "/v1/cluster")["instances"]:
        print(f"{i['id']:<8} {i['role']:<7} {i['az']:<5} {i['state']:<10} "
              f"pid {i['pid'] or '-':<8} {i['pg_address']}")
    return 0
