"""``borealis down``: stop the cluster cleanly (readers, writer, router, storage nodes,
then the control plane). Data stays in the data dir; ``borealis up`` brings it back.

With no control plane running, the processes the store still records (a control plane
that was killed) are stopped by PID, each only after checking that its command line
names this data dir. In netns mode the cluster's network namespaces and bridge are removed
too (the control plane removes them; this is the last resort when it could not).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import time
from pathlib import Path

from borealis.cli.cluster_api import call, control_ready, data_dir_argument

STOP_TIMEOUT_S = 120.0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("down", help="stop the cluster (data is kept)")
    data_dir_argument(p)
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    from borealis.control.processes import pid_alive

    ready = control_ready(args.data_dir)
    if ready is not None:
        result = call(args.data_dir, "POST", "/v1/shutdown", {}, timeout_s=STOP_TIMEOUT_S)
        pid = int(ready["pid"])
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"{len(result['stopped'])} processes stopped, and the control plane; data kept "
              f"in {args.data_dir.resolve()}.")
        _remove_namespaces(args.data_dir.resolve())
        return 0
    stopped = _stop_orphans(args.data_dir.resolve())
    removed = _remove_namespaces(args.data_dir.resolve())
    if removed:
        print(f"Network namespaces removed: {', '.join(removed)}.")
    if stopped:
        print(f"No control plane was running; {stopped} processes it had started were "
              "stopped. Data kept.")
    else:
        print(f"No cluster is running in {args.data_dir}.")
    return 0


def _remove_namespaces(data_dir: Path) -> list[str]:
    """The netns-mode namespaces and bridge of this data dir, if there are any."""
    from borealis.control.netns import STATE_FILE, remove_namespaces, unavailable

    if not (data_dir / STATE_FILE).exists() or unavailable() is not None:
        return []
    return remove_namespaces(data_dir)


def _stop_orphans(data_dir: Path) -> int:
    """SIGTERM (then SIGKILL) the processes the store records, each only if its command
    line is this cluster's."""
    from borealis.control.plane import owned
    from borealis.control.processes import pid_alive
    from borealis.control.store import SqliteStore

    path = data_dir / "control" / "store.db"
    if not path.exists():
        return 0
    store = SqliteStore(path)
    candidates: list[tuple[int, tuple[str, ...]]] = []
    try:
        for entry in store.range("instances/"):
            r = json.loads(entry.value)
            candidates.append((int(r.get("pid") or 0),
                               ("instance", str(data_dir / "volume.json"), r["id"])))
        for entry in store.range("nodes/"):
            r = json.loads(entry.value)
            candidates.append((int(r.get("pid") or 0),
                               ("storage-node", str(data_dir / "storage" / r["id"]))))
        router = store.get("router")
        if router is not None:
            candidates.append((int(json.loads(router.value).get("pid") or 0),
                               ("router", str(data_dir / "router" / "ready.json"))))
    finally:
        store.close()
    ours = [pid for pid, markers in candidates if pid and owned(pid, *markers)]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for pid in ours:
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(ours)
