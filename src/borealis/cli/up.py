"""``borealis up``: start a complete local cluster and return once it is healthy.

It starts the control plane (``borealis control-plane``, detached, logging to
``DATA_DIR/logs/control-plane.log``), which starts the storage nodes, the writer, the
readers and the router (see ``control.plane``); meanwhile ``up`` prints the cluster's
events as progress. Then it prints the endpoints and a ``psql`` command to paste. Run
again on a running cluster, it starts the storage nodes that are not running (after a
node or an AZ was killed) and says so; after ``borealis down`` it brings the same cluster
back, data included.

In netns mode (``[network] mode = "netns"`` in the spec) it must run as root with ``ip``
and ``nft`` on PATH: that is checked here, before anything starts (see docs/cluster.md).

The master password comes from ``--master-password``, else ``BOREALIS_MASTER_PASSWORD``,
else the one generated at the first ``up``: stored in ``DATA_DIR/master-password``
(mode 0600) and printed that one time.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from borealis.cli.cluster_api import call, control_ready, data_dir_argument
from borealis.errors import BorealisError

START_TIMEOUT_S = 20.0
HEALTHY_TIMEOUT_S = 300.0
PASSWORD_FILE = "master-password"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="start a local cluster (storage nodes, writer, readers, "
                       "endpoints, control plane)")
    data_dir_argument(p)
    p.add_argument("--spec", type=Path,
                   help="cluster spec (TOML; see docs/cluster.md), used at the first up")
    p.add_argument("--master-password",
                   help="password of the master user (default: BOREALIS_MASTER_PASSWORD, "
                   "else generated at the first up and stored in DATA_DIR/master-password)")
    p.add_argument("--timeout", type=float, default=HEALTHY_TIMEOUT_S,
                   help="seconds to wait for the cluster to become healthy")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(fn=run)


def say(text: str = "") -> None:
    print(text, flush=True)


def master_password(data_dir: Path, given: str | None) -> tuple[str, str]:
    """(password, where it came from). Generates and stores one when none is given."""
    if given:
        return given, "--master-password"
    env = os.environ.get("BOREALIS_MASTER_PASSWORD")
    if env:
        return env, "BOREALIS_MASTER_PASSWORD"
    path = data_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text().strip(), str(path)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password, "generated"


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    log = (lambda text="": None) if args.quiet else say
    if control_ready(data_dir) is not None:
        started = call(data_dir, "POST", "/v1/start", {}, timeout_s=120)
        cluster = call(data_dir, "GET", "/v1/cluster")
        say(f"The cluster in {data_dir} is already running ({cluster['state']}).")
        if started["started"]:
            say(f"Started again: storage nodes {', '.join(started['started'])}.")
        for node, error in started["failed"].items():
            say(f"Storage node {node} did not start: {error}")
        _summary(data_dir, cluster, None)
        return 0
    if args.spec is not None:
        from borealis.control.clusterspec import ClusterSpec
        from borealis.control.netns import require

        if ClusterSpec.load(args.spec).network_mode == "netns":
            require()
    password, source = master_password(data_dir, args.master_password)
    log(f"Starting a Borealis cluster in {data_dir}")
    (data_dir / "logs").mkdir(exist_ok=True)
    control_log = data_dir / "logs" / "control-plane.log"
    argv = [sys.executable, "-m", "borealis", "control-plane", "--data-dir", str(data_dir)]
    if args.spec is not None:
        argv += ["--spec", str(args.spec.resolve())]
    ready_file = data_dir / "control" / "ready.json"
    ready_file.unlink(missing_ok=True)
    env = {**os.environ, "BOREALIS_MASTER_PASSWORD": password}
    with open(control_log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while control_ready(data_dir) is None:
        if proc.poll() is not None:
            raise BorealisError(f"the control plane exited with {proc.returncode}:\n"
                                + _tail(control_log))
        if time.monotonic() > deadline:
            raise BorealisError(f"the control plane did not start in {START_TIMEOUT_S:.0f} "
                                f"s; see {control_log}")
        time.sleep(0.05)
    log(f"  control plane        pid {proc.pid}  (log: {control_log})")
    seen = _last_event(data_dir)
    deadline = time.monotonic() + args.timeout
    while True:
        for event in call(data_dir, "GET", f"/v1/events?after={seen}"):
            seen = event["seq"]
            log(f"  {event['message']}")
        cluster = call(data_dir, "GET", "/v1/cluster")
        if cluster["state"] == "healthy":
            break
        if cluster["state"] == "failed":
            # Nothing half-started is left behind: what it started is stopped again.
            call(data_dir, "POST", "/v1/shutdown", {}, timeout_s=120)
            raise BorealisError(f"the cluster did not start: {cluster.get('error')} (what "
                                f"had started was stopped; logs in {data_dir / 'logs'})")
        if time.monotonic() > deadline:
            raise BorealisError(f"the cluster was not healthy after {args.timeout:.0f} s "
                                f"(state {cluster['state']}); logs in {data_dir / 'logs'}")
        time.sleep(0.2)
    _summary(data_dir, cluster, (password, source))
    return 0


def _last_event(data_dir: Path) -> int:
    events = call(data_dir, "GET", "/v1/events")
    return int(events[-1]["seq"]) if events else 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _summary(data_dir: Path, cluster: dict[str, Any],
             password: tuple[str, str] | None) -> None:
    writer = cluster["endpoints"]["writer"]
    reader = cluster["endpoints"]["reader"]
    host, _, wport = writer.rpartition(":")
    user, database = cluster["master_user"], cluster["database"]
    say()
    say(f"Writer endpoint:  {writer}")
    say(f"Reader endpoint:  {reader}")
    for e in cluster.get("endpoint_list", []):
        if e.get("custom"):
            say(f"Custom endpoint:  {e['address']}  ({e['name']}, {e['type']})")
    say("Instances:        " + ", ".join(
        f"{i['id']} ({i['role']}, {i['az']})" for i in cluster["instances"]))
    say(f"Storage nodes:    {len(cluster['storage_nodes'])} in "
        f"{len({n['az'] for n in cluster['storage_nodes']})} AZs")
    stored = data_dir / PASSWORD_FILE
    if password is not None and password[1] == "generated":
        say()
        say(f"Master user {user}, password (shown once; kept in {stored}, mode 0600):")
        say(f"  {password[0]}")
    say()
    say("Connect:")
    if stored.exists() and (password is None or password[1] in ("generated", str(stored))):
        say(f"  PGPASSWORD=\"$(cat {stored})\" psql -h {host} -p {wport} -U {user} {database}")
    else:
        say(f"  psql -h {host} -p {wport} -U {user} {database}")
    say()
    say(f"  borealis status --data-dir {data_dir}     borealis down --data-dir {data_dir}")
