"""``borealis endpoint create|delete|list``: custom endpoints (Aurora's custom endpoints).

A custom endpoint of type READER routes to its members that are readers, one of type ANY
to its members whatever their role. Members are a static list (``--members``) or every
instance but some (``--excluded``); instances added later join an exclusion-list endpoint.
"""

from __future__ import annotations

import argparse

from borealis.cli.cluster_api import call, data_dir_argument


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("endpoint", help="custom endpoints: create, delete, list")
    verbs = p.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="create a custom endpoint")
    data_dir_argument(create)
    create.add_argument("name")
    create.add_argument("--type", choices=["READER", "ANY", "reader", "any"], default="ANY",
                        help="READER: its members that are readers; ANY: all its members")
    group = create.add_mutually_exclusive_group()
    group.add_argument("--members", help="static members: instance ids, comma-separated")
    group.add_argument("--excluded", help="all instances but these (comma-separated)")
    create.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    create.set_defaults(fn=run_create)
    delete = verbs.add_parser("delete", help="delete a custom endpoint")
    data_dir_argument(delete)
    delete.add_argument("name")
    delete.set_defaults(fn=run_delete)
    listing = verbs.add_parser("list", help="list the endpoints")
    data_dir_argument(listing)
    listing.set_defaults(fn=run_list)


def _ids(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def run_create(args: argparse.Namespace) -> int:
    e = call(args.data_dir, "POST", "/v1/endpoints", {
        "name": args.name, "kind": args.type.lower(), "members": _ids(args.members),
        "excluded": _ids(args.excluded), "port": args.port})
    who = (f"members {', '.join(e['members'])}" if e["members"] else
           f"all instances but {', '.join(e['excluded'])}" if e["excluded"] else
           "all instances")
    print(f"Endpoint {e['name']} ({e['type']}, {who}) on {e['address']}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    call(args.data_dir, "DELETE", f"/v1/endpoints/{args.name}")
    print(f"Endpoint {args.name} deleted.")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for e in call(args.data_dir, "GET", "/v1/cluster")["endpoint_list"]:
        extra = (f"  members: {', '.join(e['members'])}" if e["members"] else
                 f"  excluded: {', '.join(e['excluded'])}" if e["excluded"] else "")
        print(f"{e['name']:<14} {e['type']:<7} {e['address']}{extra}")
    return 0
