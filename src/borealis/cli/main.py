"""``borealis``: the command-line entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import os
import sys

from borealis.cli import (
    control_plane,
    down,
    endpoint,
    events,
    failover,
    instance,
    instances,
    router,
    status,
    storage,
    storage_node,
    up,
)
from borealis.errors import BorealisError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="borealis", description="Borealis database")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (up, down, status, failover):
        module.add_parser(sub)
    group = sub.add_parser("instance", help="database instances: add, remove, list, run")
    verbs = group.add_subparsers(dest="verb", required=True)
    instances.add_verbs(verbs)
    instance.add_parser(verbs)  # instance run: one instance in the foreground
    for module in (endpoint, storage, events, storage_node, router, control_plane):
        module.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except BorealisError as exc:
        print(f"borealis {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`borealis status | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
