"""The command line, ``python -m borealis.chaos.faultproxy``: links from flags, a control
server, a ready file, and serving until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from borealis.chaos.faultproxy.control import ControlServer
from borealis.chaos.faultproxy.faults import BadFaultsError, FaultProxyError, ListenError
from borealis.chaos.faultproxy.proxy import (
    HELD_BYTES_MAX_DEFAULT,
    HOST,
    FaultProxy,
    parse_address,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """``NAME=LISTEN_PORT:TARGET_HOST:TARGET_PORT`` from the command line."""

    name: str
    listen_port: int
    target_host: str
    target_port: int
    frames: bool

    @classmethod
    def parse(cls, text: str, *, frames: bool) -> LinkSpec:
        name, sep, rest = text.partition("=")
        listen, _, target = rest.partition(":")
        if not sep or not name or not listen.isdigit():
            raise argparse.ArgumentTypeError(
                f"expected NAME=LISTEN_PORT:TARGET_HOST:TARGET_PORT, got {text!r}")
        try:
            host, port = parse_address(target)
        except BadFaultsError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
        return cls(name, int(listen), host, port, frames)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m borealis.chaos.faultproxy",
        description="A TCP fault proxy (latency, stalls, resets, partitions, frame "
        "duplication) with an HTTP/JSON control server; see the module's docstring.")
    p.add_argument("--control", default=f"{HOST}:0", help="HOST:PORT of the control server")
    p.add_argument("--ready-file", type=Path,
                   help="write {\"control\", \"links\": {NAME: {\"listen\", \"target\"}}, "
                   "\"pid\", \"seed\"} here once serving")
    p.add_argument("--link", action="append", default=[], metavar="NAME=PORT:HOST:PORT",
                   type=lambda text: LinkSpec.parse(text, frames=False),
                   help="a byte link (repeatable); listen port 0: any free one")
    p.add_argument("--frame-link", action="append", default=[], metavar="NAME=PORT:HOST:PORT",
                   type=lambda text: LinkSpec.parse(text, frames=True),
                   help="a link carrying Borealis RPC frames only (repeatable)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--held-bytes-max", type=int, default=HELD_BYTES_MAX_DEFAULT)
    p.add_argument("--log-level", default="INFO")
    return p


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT, then close every link and the control server."""
    from borealis.cli.storage_node import until_signalled, write_ready_file

    proxy = FaultProxy(seed=args.seed, held_bytes_max=args.held_bytes_max)
    control = ControlServer(proxy)
    try:
        links: dict[str, dict[str, str]] = {}
        for spec in [*args.link, *args.frame_link]:
            host, port = await proxy.add_link(spec.name, spec.target_host, spec.target_port,
                                              listen_port=spec.listen_port,
                                              frames=spec.frames)
            links[spec.name] = {"listen": f"{host}:{port}",
                                "target": f"{spec.target_host}:{spec.target_port}"}
        control_host, control_port = parse_address(args.control)
        try:
            bound = await control.start(control_host, control_port)
        except OSError as exc:
            raise ListenError(f"cannot serve control on {args.control}: {exc}") from exc
        write_ready_file(args.ready_file, {"control": f"{bound[0]}:{bound[1]}",
                                           "links": links, "seed": proxy.seed})
        logger.info("fault proxy serving control=%s:%d links=%d seed=%d", *bound, len(links),
                    proxy.seed)
        await until_signalled()
    finally:
        await control.close()
        await proxy.close()


def main(argv: list[str] | None = None) -> int:
    from borealis.cli.storage_node import setup_logging
    from borealis.transport.rpc import run

    args = parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.held_bytes_max <= 0:
        print("error: --held-bytes-max must be > 0", file=sys.stderr)
        return 2
    try:
        run(serve(args))
    except FaultProxyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
