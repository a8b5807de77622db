"""``borealis router``: run the endpoint router in the foreground until SIGTERM/SIGINT.

It learns the instances and the endpoints from the control plane (``--control``) and keeps
following it; ``borealis.router.service`` does the work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from borealis.cli.storage_node import (
    parse_address,
    setup_logging,
    until_signalled,
    write_ready_file,
)
from borealis.router.proxy import HOLD_S_DEFAULT


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("router", help="run the endpoint router (foreground)")
    p.add_argument("--control", required=True, metavar="URL",
                   help="the control plane, http://HOST:PORT (topology from /v1/topology)")
    p.add_argument("--ready-file", type=Path,
                   help="write {\"address\", \"pid\", \"endpoints\": {name: \"host:port\"}, "
                   "\"metrics_address\", \"revision\"} here once every endpoint listens")
    p.add_argument("--metrics-listen",
                   help="HOST:PORT to serve Prometheus metrics on (GET /metrics)")
    p.add_argument("--hold-s", type=float, default=HOLD_S_DEFAULT,
                   help="seconds a new connection waits for an instance (the writer during "
                   f"a failover) before it is refused with 57P03 (default {HOLD_S_DEFAULT:g})")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    from borealis.router.control_client import ControlUrl
    from borealis.router.service import RouterConfig, RouterService
    from borealis.transport.rpc import run as run_loop

    setup_logging(args.log_level)
    config = RouterConfig(
        ControlUrl.parse(args.control), hold_s=args.hold_s,
        metrics_listen=parse_address(args.metrics_listen) if args.metrics_listen else None)

    def ready(fields: dict[str, object]) -> None:
        write_ready_file(args.ready_file, fields)
        print(f"router serving endpoints {fields['endpoints']}", flush=True)

    async def main() -> None:
        service = RouterService(config, on_ready=ready)
        await service.start()
        signalled = asyncio.create_task(until_signalled())
        failed = asyncio.create_task(service.wait())
        try:
            await asyncio.wait([signalled, failed], return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                failed.result()   # a bug in the service: raised, the process exits
        finally:
            for task in (signalled, failed):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.close()

    run_loop(main())
    return 0

