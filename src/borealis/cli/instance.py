"""``borealis instance run``: one database instance in the foreground until SIGTERM/SIGINT.

On the signal it closes everything in order, within ``SHUTDOWN_GRACE_S``: running
statements are interrupted, but a thread can be stuck where that does not reach (a long
translation in sqlglot, a sleep inside an SQL function), and closing its session, or the
interpreter's exit, would wait for it. Past the grace the process logs and exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path

from borealis.cli.storage_node import (
    parse_address,
    setup_logging,
    until_signalled,
    write_ready_file,
)
from borealis.errors import ConfigError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0
"""From SIGTERM/SIGINT to the process's exit, at most (then ``os._exit``)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run one database instance (foreground)")
    p.add_argument("--role", choices=["writer", "reader"], default="writer")
    p.add_argument("--volume", type=Path, required=True,
                   help="the volume spec (JSON) shared by the cluster's instances")
    p.add_argument("--instance-id", required=True, help="this instance's name")
    p.add_argument("--az", default="az1", help="availability zone of this instance")
    p.add_argument("--listen", default="127.0.0.1:0",
                   help="HOST:PORT of the control interface (port 0: any free one)")
    p.add_argument("--writer", help="HOST:PORT of the writer's control interface (readers)")
    p.add_argument("--pg-listen", help="HOST:PORT to serve the PostgreSQL protocol on")
    p.add_argument("--pg-password", default=os.environ.get("BOREALIS_MASTER_PASSWORD"),
                   help="the master user's password, for SCRAM-SHA-256 (default: the "
                   "environment variable BOREALIS_MASTER_PASSWORD; none: no authentication, "
                   "allowed on a loopback address only)")
    p.add_argument("--pg-user", default="postgres", help="the master user's name")
    p.add_argument("--pg-database", default="postgres", help="the database's name")
    p.add_argument("--pg-connections-max", type=int, default=100,
                   help="PostgreSQL connections served at once (more get 53300)")
    p.add_argument("--pg-tls-cert", type=Path,
                   help="PEM certificate for TLS on the PostgreSQL port (sslmode=require, "
                   "verify-full)")
    p.add_argument("--pg-tls-key", type=Path, help="PEM private key of --pg-tls-cert")
    p.add_argument("--pg-tls-required", action="store_true",
                   help="refuse PostgreSQL connections that do not use TLS")
    p.add_argument("--metrics-listen",
                   help="HOST:PORT to serve Prometheus metrics on (GET /metrics)")
    p.add_argument("--cache-mib", type=int, default=64, help="page cache size (MiB)")
    p.add_argument("--lock-timeout", type=float, default=10.0,
                   help="seconds a session waits for the write lock")
    p.add_argument("--ready-file", type=Path,
                   help="write {\"address\", \"pid\", \"recovery_s\", \"pg_address\", "
                   "\"metrics_address\"} here once serving")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    from borealis.instance.process import Instance, InstanceConfig
    from borealis.transport.rpc import run as run_loop
    from borealis.volume.client import VolumeClient
    from borealis.volume.spec import VolumeSpec

    setup_logging(args.log_level)
    host, port = parse_address(args.listen)
    if args.cache_mib < 0:
        raise ConfigError("--cache-mib must not be negative")
    if args.pg_connections_max < 1:
        raise ConfigError("--pg-connections-max must be at least 1")
    if args.pg_tls_required and args.pg_tls_cert is None:
        raise ConfigError("--pg-tls-required needs --pg-tls-cert")
    spec = VolumeSpec.load(args.volume)
    config = InstanceConfig(args.instance_id, args.az, args.role,
                            cache_bytes=args.cache_mib * 2**20,
                            lock_timeout_s=args.lock_timeout, writer_address=args.writer,
                            pg_listen=parse_address(args.pg_listen) if args.pg_listen else None,
                            pg_password=args.pg_password, pg_user=args.pg_user,
                            pg_database=args.pg_database,
                            pg_connections_max=args.pg_connections_max,
                            pg_tls_cert=args.pg_tls_cert, pg_tls_key=args.pg_tls_key,
                            pg_tls_required=args.pg_tls_required,
                            metrics_listen=(parse_address(args.metrics_listen)
                                            if args.metrics_listen else None))

    async def main() -> None:
        client = VolumeClient(spec, writer_id=args.instance_id, spec_path=args.volume)
        instance = Instance(config, client)
        try:
            await instance.open()
            bound_host, bound_port = await instance.serve(host, port)
        except BaseException:
            await instance.close()
            raise
        write_ready_file(args.ready_file, {
            "address": f"{bound_host}:{bound_port}", "instance": args.instance_id,
            "role": args.role, "recovery_s": instance.recovery_s,
            "pg_address": instance.pg_address, "metrics_address": instance.metrics_address})
        print(f"instance {args.instance_id} ({args.role}, {args.az}) serving on "
              f"{bound_host}:{bound_port}; volume recovered in {instance.recovery_s:.3f} s",
              flush=True)
        await until_signalled()
        exit_after(SHUTDOWN_GRACE_S, args.instance_id)
        await instance.close()

    run_loop(main())
    return 0


def exit_after(grace_s: float, instance_id: str) -> None:
    """Exit the process in ``grace_s`` whatever it is doing (a daemon timer: an orderly
    exit before then does not wait for it)."""

    def expire() -> None:
        threads = sorted(t.name for t in threading.enumerate()
                         if t is not threading.current_thread() and not t.daemon)
        log.error("shutdown not finished %.1f s after the signal: exiting now instance=%s "
                  "threads=%s", grace_s, instance_id, ",".join(threads))
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(grace_s, expire)
    timer.daemon = True
    timer.name = "borealis-shutdown-grace"
    timer.start()
