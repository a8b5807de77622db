"""``borealis storage-node``: run one storage node in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path

from borealis.errors import ConfigError

CHECKPOINT_MIB_ENV = "BOREALIS_CHECKPOINT_MIB"
"""A default for ``--checkpoint-mib`` that reaches nodes a control plane starts (tests)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("storage-node", help="run one storage node (foreground)")
    p.add_argument("--az", required=True, help="availability zone of this node, e.g. az1")
    p.add_argument("--data-dir", type=Path, required=True, help="where its log and pages live")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free one)")
    p.add_argument("--node-id", help="node name (default: the data dir's name)")
    p.add_argument("--metrics-listen",
                   help="HOST:PORT to serve Prometheus metrics on (GET /metrics)")
    p.add_argument("--ready-file", type=Path,
                   help="write {\"address\": \"host:port\", \"pid\": ..., "
                   "\"metrics_address\"} here once serving")
    p.add_argument("--checkpoint-mib", type=float, default=None,
                   help="MiB of redo logged between checkpoints, which trim the log "
                   f"(default: ${CHECKPOINT_MIB_ENV}, else 64)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(fn=run)


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def setup_logging(level: str) -> None:
    """One format for every Borealis process's log (a line per record, timestamped)."""
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def write_ready_file(path: Path | None, fields: dict[str, object]) -> None:
    """Tell whoever started this process that it serves (atomically: a starter polls)."""
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**fields, "pid": os.getpid()}))
    tmp.replace(path)


async def until_signalled() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run(args: argparse.Namespace) -> int:
    from borealis.metrics import Metrics, serve_metrics
    from borealis.storage.crashmodel import crash_model_from_env, open_node_files
    from borealis.storage.node import CHECKPOINT_BYTES_DEFAULT, StorageNode, redo_chunk_bytes
    from borealis.transport.rpc import run as run_loop

    setup_logging(args.log_level)
    host, port = parse_address(args.listen)
    metrics_listen = parse_address(args.metrics_listen) if args.metrics_listen else None
    node_id = args.node_id or args.data_dir.name
    # A test mode (the chaos suite's lose-unsynced nemesis): BOREALIS_CRASH_MODEL.
    crash_model = crash_model_from_env(os.environ)
    checkpoint_bytes = CHECKPOINT_BYTES_DEFAULT
    checkpoint_mib = args.checkpoint_mib
    if checkpoint_mib is None and os.environ.get(CHECKPOINT_MIB_ENV):
        try:
            checkpoint_mib = float(os.environ[CHECKPOINT_MIB_ENV])
        except ValueError as exc:
            raise ConfigError(f"{CHECKPOINT_MIB_ENV}: not a number: "
                              f"{os.environ[CHECKPOINT_MIB_ENV]!r}") from exc
    if checkpoint_mib is not None:
        if not checkpoint_mib > 0:
            raise ConfigError(f"--checkpoint-mib must be positive, got {checkpoint_mib}")
        checkpoint_bytes = max(1, int(checkpoint_mib * 2**20))

    async def main() -> None:
        if crash_model is None:
            node = StorageNode(node_id, args.az, args.data_dir,
                               checkpoint_bytes=checkpoint_bytes)
        else:
            redo_log, store = open_node_files(
                args.data_dir, chunk_bytes_max=redo_chunk_bytes(checkpoint_bytes))
            node = StorageNode(node_id, args.az, args.data_dir, redo_log=redo_log, store=store,
                               checkpoint_bytes=checkpoint_bytes)
        bound_host, bound_port = await node.start(host, port)
        ready: dict[str, object] = {"address": f"{bound_host}:{bound_port}",
                                    "node": node_id, "az": args.az}
        metrics_server = None
        if metrics_listen is not None:
            metrics = Metrics({"node": node_id, "az": args.az})
            node.register_metrics(metrics)
            try:
                metrics_server, bound = await serve_metrics(metrics, *metrics_listen,
                                                            name=f"metrics {node_id}")
            except OSError as exc:
                await node.close()
                raise ConfigError(f"cannot serve metrics on {args.metrics_listen}: "
                                  f"{exc}") from exc
            ready["metrics_address"] = f"{bound[0]}:{bound[1]}"
        write_ready_file(args.ready_file, ready)
        print(f"storage node {node_id} ({args.az}) serving on {bound_host}:{bound_port}",
              flush=True)
        await until_signalled()
        if metrics_server is not None:
            await metrics_server.close()
        await node.close()

    profile_path = os.environ.get("BOREALIS_PROFILE_DIR")
    if not profile_path:
        run_loop(main())
        return 0
    # A developer's tool: profile the node's CPU while it runs (docs/benchmarks.md).
    import cProfile

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        run_loop(main())
    finally:
        profiler.disable()
        profiler.dump_stats(str(Path(profile_path) / f"{node_id}.prof"))
    return 0
