"""``borealis control-plane``: run the control plane of the cluster in DATA_DIR (foreground).

``borealis up`` starts it detached; there is rarely a reason to run it by hand. SIGTERM
stops the control plane only: the cluster's processes keep serving, and the next control
plane adopts them. ``borealis down`` (``POST /v1/shutdown``) stops the whole cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from borealis.cli.cluster_api import data_dir_argument
from borealis.cli.storage_node import setup_logging, write_ready_file
from borealis.errors import ConfigError

LEADER_TTL_S = 5.0
KEEPALIVE_S = 1.0
CONTROL_DIR = "control"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("control-plane", help="run the cluster's control plane (foreground; "
                       "`borealis up` starts it)")
    data_dir_argument(p)
    p.add_argument("--spec", type=Path, help="cluster spec (TOML), read at the first start")
    p.add_argument("--api-port", type=int,
                   help="port of the HTTP API (default: the spec's, 5480; 0: any free one)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    from borealis.control.api import handler
    from borealis.control.clusterspec import ClusterSpec
    from borealis.control.plane import ControlPlane
    from borealis.control.processes import pid_alive
    from borealis.control.store import ConflictError, SqliteStore
    from borealis.http import HttpServer
    from borealis.transport.rpc import run as run_loop

    setup_logging(args.log_level)
    data_dir: Path = args.data_dir.resolve()
    control = data_dir / CONTROL_DIR
    control.mkdir(parents=True, exist_ok=True)
    spec = ClusterSpec.load(args.spec) if args.spec else ClusterSpec()
    store = SqliteStore(control / "store.db")
    saved = store.get("spec")
    if saved is not None:
        spec = ClusterSpec.from_json(json.loads(saved.value))
    api_port = spec.api_port if args.api_port is None else args.api_port

    def loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def main() -> None:
        lease = store.grant(LEADER_TTL_S)
        deadline = loop_time() + LEADER_TTL_S + 1
        while True:
            try:
                store.put("leader", json.dumps({"pid": os.getpid()}).encode(), expected=0,
                          lease=lease)
                break
            except ConflictError:
                held = store.get("leader")
                holder = int(json.loads(held.value).get("pid", 0)) if held else 0
                # A holder that died leaves its lease to expire: wait that long, no more.
                if (held is not None and pid_alive(holder)) or loop_time() > deadline:
                    raise ConfigError(f"another control plane (pid {holder}) runs for "
                                      f"{data_dir}") from None
                await asyncio.sleep(0.2)

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(KEEPALIVE_S)
                store.keepalive(lease)

        plane = ControlPlane(data_dir, store, spec)
        plane.load()
        plane.adopt_router()
        shutdown = asyncio.Event()
        server = HttpServer(handler(plane, shutdown), name="control plane API")
        try:
            host, port = await server.start("127.0.0.1", api_port)
        except OSError as exc:
            store.revoke(lease)
            raise ConfigError(f"cannot serve the control plane API on 127.0.0.1:{api_port}: "
                              f"{exc} (set [cluster] api_port in the spec)") from exc
        plane.api_address = f"{host}:{port}"
        write_ready_file(control / "ready.json", {"address": plane.api_address})
        print(f"control plane for {data_dir} serving on http://{plane.api_address}",
              flush=True)
        tasks = [asyncio.create_task(keepalive()), asyncio.create_task(plane.boot())]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)
        await shutdown.wait()
        await asyncio.sleep(0.1)  # the answer to /v1/shutdown leaves first
        for task in tasks + plane._tasks:
            task.cancel()
        await asyncio.gather(*tasks, *plane._tasks, return_exceptions=True)
        await server.close()
        with contextlib.suppress(Exception):
            store.revoke(lease)
        (control / "ready.json").unlink(missing_ok=True)

    run_loop(main())
    return 0
