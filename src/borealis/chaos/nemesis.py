"""Nemeses: the faults a run injects into its own cluster, each bounded in time and undone.

A nemesis acts between a start and a deadline the runner gives it (``run``), then ``heal``
undoes whatever it did — continues what it paused, starts again with ``borealis up`` what it
stopped. The runner calls ``heal`` in a ``finally``, so a run that fails half-way still
leaves no process paused; ``heal`` is idempotent. Processes are only ever signalled by PID,
after checking that the PID is still the cluster's process (``ChaosCluster.signal_*``).

Every action is recorded in the history under the process ``nemesis`` (an invocation, then
ok with what happened, or info when the action itself failed), so that a reader of the
history sees the faults between the clients' operations, as in Jepsen.

The faults, and what the cluster is expected to do:

- ``kill-writer``: kill -9 the current writer, again when the window leaves time; the
  control plane fails over and starts the old writer again as a reader.
- ``kill-any``: kill -9 any process of the cluster, chosen by the seed each step (the
  writer, a reader, a storage node, the router, the control plane), then ``borealis up``.
- ``kill-storage``: kill -9 a storage node that holds segments, later another; each is
  rebuilt on a spare after ``repair_after_s``, and ``borealis up`` starts it again.
- ``pause-writer``: SIGSTOP the writer for ``PAUSE_S`` (longer than the hung-writer
  timeout), then SIGCONT: the control plane has failed over meanwhile; the old writer must
  be fenced and never get a commit acknowledged.
- ``az-down``: kill -9 every storage node of one AZ: writes go on (4 of 6 segments).
- ``az-plus-one``: an AZ and one more node holding segments: reads stay available (3 of
  6), writes may stop until the nodes are back.
- ``bitflip``: stop a storage node (SIGTERM), flip bits in page versions of its page store
  (inside the images, found through the store's own index), start it with ``borealis up``:
  CRCs must catch every flip and peers repair it; then stop another and flip a bit inside
  one entry of its redo log: the node must refuse the log (or truncate a torn tail) and be
  rebuilt from its peers, never serve the flipped bytes.
- ``mixed``: a seeded random sequence of the above, each held a few seconds and undone.

- ``lose-unsynced`` (``nemesis_disk``): power loss on storage nodes — kill -9, then their
  files rolled back to what their syncs made durable (the storage crash model).
- ``net-chaos`` (``nemesis_proxy``): latency, loss as TCP stalls, resets and duplicated RPC
  frames on the storage links, through the fault proxy.
- ``clock-skew`` (``nemesis_clock``): each process's wall clock skewed, stepped by minutes
  and strobed, through libfaketime; the monotonic clock stays real.

What this machine cannot run (``packet-loss`` without network namespaces, say) is named in
``NOT_IMPLEMENTED`` with what it needs, and refused.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import random
import signal
import struct
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from borealis.chaos.cluster import owned
from borealis.chaos.nemesis_base import (
    Nemesis,
    NemesisContext,
    NemesisError,
    fails,
    last_event_seq,
    sleep_until,
    wait_fenced,
)
from borealis.chaos.nemesis_clock import ClockSkew
from borealis.chaos.nemesis_disk import LoseUnsynced
from borealis.chaos.nemesis_net import register as register_network_nemeses
from borealis.chaos.nemesis_proxy import NetChaos

log = logging.getLogger(__name__)

PAUSE_S = 12.0
"""Longer than the control plane's hung-writer timeout (10 s by default)."""
SHORT_PAUSE_S = 2.0
"""A pause ``mixed`` uses when the window is too short for ``PAUSE_S``: below every
timeout, so the writer resumes as the writer."""
FAILOVER_WAIT_S = 30.0
KILL_INTERVAL_S = 8.0
"""kill-writer waits this long after a failover before it kills the new writer."""
BITFLIP_VERSIONS = 8
"""Page versions corrupted per bitflip; one bit each."""
STEP_S = (5.0, 9.0)
"""How long ``mixed`` holds each fault."""
KILL_ANY_HOLD_S = (3.0, 6.0)
"""How long ``kill-any`` leaves its victim dead before ``borealis up``."""

NOT_IMPLEMENTED: dict[str, str] = {}
"""Nemeses this machine cannot run, with what they need (filled by ``register_*``)."""


class NoNemesis(Nemesis):
    name = "none"

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        sleep_until(deadline)


class KillWriter(Nemesis):
    name = "kill-writer"

    def __init__(self) -> None:
        self.killed = False

    def kill_once(self, ctx: NemesisContext) -> str | None:
        writer = ctx.writer()
        if writer is None:
            ctx.act("kill", {"role": "writer"}, fails("no available writer to kill"))
            return None

        def kill() -> dict[str, Any]:
            if not ctx.cluster.signal_instance(writer, signal.SIGKILL):
                raise NemesisError(f"writer {writer['id']} (pid {writer['pid']}) is gone")
            self.killed = True
            return {}

        ctx.act("kill", {"role": "writer", "instance": writer["id"], "pid": writer["pid"]},
                kill)
        return str(writer["id"])

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        while time.monotonic() < deadline:
            old = self.kill_once(ctx)
            started = time.monotonic()
            new = ctx.wait_writer(other_than=old, timeout_s=max(
                1.0, min(FAILOVER_WAIT_S, deadline - time.monotonic())))
            ctx.observe("new writer", {"writer": None if new is None else new["id"],
                                       "after_s": round(time.monotonic() - started, 3)})
            if time.monotonic() + KILL_INTERVAL_S + 2.0 > deadline:
                break
            time.sleep(KILL_INTERVAL_S)
        sleep_until(deadline)

    def heal(self, ctx: NemesisContext) -> None:
        if self.killed:
            ctx.up()
            self.killed = False


class KillAny(Nemesis):
    """kill -9 of any of the cluster's processes, chosen by the seed each step: the writer,
    a reader, a storage node, the router or the control plane itself; held a few seconds,
    then ``borealis up`` (which starts a control plane again if it was the victim; the
    control plane brings back the rest). Only what is killed changes between steps."""

    name = "kill-any"
    ROLES: ClassVar[tuple[str, ...]] = ("writer", "reader", "storage", "router",
                                        "control-plane")

    def __init__(self) -> None:
        self.killed = False

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        while time.monotonic() < deadline - KILL_ANY_HOLD_S[0]:
            role = ctx.rng.choice(self.ROLES)
            victim = self.victim(ctx, role)
            if victim is None:
                ctx.act("kill", {"role": role}, fails(f"no {role} process to kill"))
            else:
                name, pid, still_it = victim

                def kill(pid: int = pid, still_it: Callable[[], bool] = still_it,
                         name: str = name) -> dict[str, Any]:
                    if not still_it():
                        raise NemesisError(f"pid {pid} is no longer the cluster's {name}")
                    os.kill(pid, signal.SIGKILL)
                    self.killed = True
                    return {"exited": ctx.cluster.wait_exit(pid)}

                ctx.act("kill", {"role": role, "process": name, "pid": pid}, kill)
            sleep_until(min(deadline, time.monotonic() + ctx.rng.uniform(*KILL_ANY_HOLD_S)))
            ctx.up()
        sleep_until(deadline)

    @staticmethod
    def victim(ctx: NemesisContext, role: str) -> tuple[str, int, Callable[[], bool]] | None:
        """(name, pid, whether the pid is still that process), or None."""
        view = ctx.status()
        cluster = ctx.cluster
        if role in ("writer", "reader"):
            found = [i for i in view["instances"] if i["role"] == role and i.get("pid")
                     and i["state"] == "available"]
            if not found:
                return None
            instance = ctx.rng.choice(sorted(found, key=lambda i: str(i["id"])))
            name, pid = str(instance["id"]), int(instance["pid"])
            return name, pid, lambda: cluster.instance_owned(pid, name)
        if role == "storage":
            nodes = [n for n in view["storage_nodes"] if n.get("pid") and n["state"] == "up"]
            if not nodes:
                return None
            node = ctx.rng.choice(sorted(nodes, key=lambda n: str(n["id"])))
            name, pid = str(node["id"]), int(node["pid"])
            return name, pid, lambda: cluster.node_owned(pid, name)
        if role == "router":
            pid = int((view.get("router") or {}).get("pid") or 0)
            ready = str(cluster.data_dir / "router" / "ready.json")
            return ("router", pid, lambda: owned(pid, "router", ready)) if pid else None
        pid = int((view.get("control_plane") or {}).get("pid") or 0)
        data_dir = str(cluster.data_dir)
        return ("control-plane", pid, lambda: owned(pid, "control-plane", data_dir)) \
            if pid else None

    def heal(self, ctx: NemesisContext) -> None:
        if self.killed:
            ctx.up()
            self.killed = False


class KillStorage(Nemesis):
    name = "kill-storage"

    def __init__(self) -> None:
        self.killed: list[str] = []

    def kill_nodes(self, ctx: NemesisContext, nodes: list[dict[str, Any]], f: str) -> None:
        def kill() -> dict[str, Any]:
            done = [n["id"] for n in nodes if ctx.cluster.signal_node(n, signal.SIGKILL)]
            self.killed += done
            return {"killed": done}

        ctx.act(f, {"nodes": [n["id"] for n in nodes]}, kill)

    def victim(self, ctx: NemesisContext, exclude: set[str]) -> dict[str, Any] | None:
        holding = [n for n in ctx.cluster.storage_nodes(view=ctx.status())
                   if n["segments"] and n["state"] == "up" and n["pid"]
                   and n["id"] not in exclude]
        return ctx.rng.choice(sorted(holding, key=lambda n: n["id"])) if holding else None

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        middle = time.monotonic() + (deadline - time.monotonic()) / 2
        first = self.victim(ctx, set())
        if first is not None:
            self.kill_nodes(ctx, [first], "kill")
        sleep_until(middle)
        self.heal(ctx)
        second = self.victim(ctx, {first["id"]} if first else set())
        if second is not None and time.monotonic() + 2.0 < deadline:
            self.kill_nodes(ctx, [second], "kill")
        sleep_until(deadline)

    def heal(self, ctx: NemesisContext) -> None:
        if self.killed:
            ctx.up()
            self.killed = []


class PauseWriter(Nemesis):
    name = "pause-writer"

    def __init__(self, pause_s: float = PAUSE_S) -> None:
        assert pause_s > 0
        self.pause_s = pause_s
        self.paused: list[dict[str, Any]] = []

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        writer = ctx.writer()
        if writer is None:
            ctx.act("pause", {"role": "writer"}, fails("no available writer to pause"))
            sleep_until(deadline)
            return

        def pause() -> dict[str, Any]:
            if not ctx.cluster.signal_instance(writer, signal.SIGSTOP):
                raise NemesisError(f"writer {writer['id']} is gone")
            self.paused.append(writer)
            return {}

        ctx.act("pause", {"role": "writer", "instance": writer["id"], "pid": writer["pid"],
                          "pause_s": self.pause_s}, pause)
        sleep_until(min(deadline, time.monotonic() + self.pause_s))
        events_before = last_event_seq(ctx)
        self.heal(ctx)
        if self.pause_s >= ctx.cluster.shape.writer_hung_after_s:
            ctx.act("observe", {"what": "old writer fenced", "instance": writer["id"]},
                    lambda: wait_fenced(ctx, writer["id"], events_before, deadline))
        sleep_until(deadline)

    def heal(self, ctx: NemesisContext) -> None:
        while self.paused:
            instance = self.paused.pop()

            def resume(instance: dict[str, Any] = instance) -> dict[str, Any]:
                # The control plane may have killed it meanwhile: then there is nothing to do.
                return {"resumed": ctx.cluster.signal_instance(instance, signal.SIGCONT)}

            ctx.act("resume", {"instance": instance["id"], "pid": instance["pid"]}, resume)


class AzDown(Nemesis):
    name = "az-down"
    plus_one = False

    def __init__(self) -> None:
        self.kill = KillStorage()

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        view = ctx.status()
        azs = sorted({n["az"] for n in ctx.cluster.storage_nodes(view=view)})
        az = ctx.rng.choice(azs)
        victims = [n for n in ctx.cluster.storage_nodes(az=az, view=view) if n["pid"]]
        if self.plus_one:
            others = [n for n in ctx.cluster.storage_nodes(view=view)
                      if n["az"] != az and n["segments"] and n["pid"]]
            if others:
                victims.append(ctx.rng.choice(sorted(others, key=lambda n: n["id"])))
        self.kill.kill_nodes(ctx, victims, "kill-az-plus-one" if self.plus_one else "kill-az")
        sleep_until(deadline)

    def heal(self, ctx: NemesisContext) -> None:
        self.kill.heal(ctx)


class AzPlusOne(AzDown):
    name = "az-plus-one"
    plus_one = True


class Bitflip(Nemesis):
    name = "bitflip"

    def __init__(self) -> None:
        self.stopped: list[str] = []

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        middle = time.monotonic() + (deadline - time.monotonic()) / 2
        first = self.corrupt(ctx, "pages", set())
        sleep_until(middle)
        if time.monotonic() + 2.0 < deadline:
            self.corrupt(ctx, "redo", {first} if first else set())
        sleep_until(deadline)

    def corrupt(self, ctx: NemesisContext, what: str, exclude: set[str]) -> str | None:
        """Stop a node holding segments, flip bits in its ``what`` files, start it again."""
        holding = [n for n in ctx.cluster.storage_nodes(view=ctx.status())
                   if n["segments"] and n["state"] == "up" and n["pid"]
                   and n["id"] not in exclude]
        if not holding:
            ctx.act("flip", {"files": what}, fails("no storage node holding segments is up"))
            return None
        node = ctx.rng.choice(sorted(holding, key=lambda n: n["id"]))

        def stop() -> dict[str, Any]:
            if not ctx.cluster.signal_node(node, signal.SIGTERM):
                raise NemesisError(f"storage node {node['id']} is gone")
            self.stopped.append(str(node["id"]))
            if not ctx.cluster.wait_exit(int(node["pid"])):
                ctx.cluster.signal_node(node, signal.SIGKILL)
                if not ctx.cluster.wait_exit(int(node["pid"])):
                    raise NemesisError(f"storage node {node['id']} did not exit")
            return {}

        if ctx.act("stop", {"node": node["id"], "pid": node["pid"]}, stop) is None:
            return None   # never touch the files of a node that may be running
        directory = ctx.cluster.storage_dir(str(node["id"]))
        seed = ctx.rng.randrange(2**32)
        flip = (lambda: flip_page_versions(directory / "pages", random.Random(seed))) \
            if what == "pages" else (lambda: flip_redo_entry(directory / "redo",
                                                               random.Random(seed)))
        ctx.act("flip", {"node": node["id"], "files": what}, flip)
        self.heal(ctx)
        ctx.act("observe", {"what": "corruption found", "node": node["id"]},
                lambda: _corruption_metrics(ctx, str(node["id"])))
        return str(node["id"])

    def heal(self, ctx: NemesisContext) -> None:
        if self.stopped:
            ctx.up()
            self.stopped = []


def flip_page_versions(pages_dir: Path, rng: random.Random,
                       count: int = BITFLIP_VERSIONS) -> dict[str, Any]:
    """Flip one bit inside the image of ``count`` page versions of a stopped node's LMDB
    store. The versions are picked through the store's own index (read-only) and found in
    ``data.mdb`` by their bytes (an image lives in overflow pages, contiguous), so the flips
    land in images, where the per-version CRC must catch them, not in LMDB's own tree."""
    import lmdb

    env = lmdb.open(str(pages_dir), readonly=True, lock=False, subdir=True, max_dbs=2)
    try:
        versions = env.open_db(b"versions", create=False)
        with env.begin(db=versions) as txn:
            keys = [bytes(key) for key, _ in txn.cursor()]
            chosen = rng.sample(keys, min(count, len(keys)))
            values = [bytes(txn.get(key) or b"") for key in chosen]
    finally:
        env.close()
    flipped = 0
    with open(pages_dir / "data.mdb", "r+b") as f, mmap.mmap(f.fileno(), 0) as data:
        for value in values:
            offset = data.find(value)
            if offset < 0 or data.find(value, offset + 1) >= 0 or len(value) <= 4:
                continue  # not found whole, or not unique: leave it alone
            position = offset + 4 + rng.randrange(len(value) - 4)   # inside the image
            data[position] ^= 1 << rng.randrange(8)
            flipped += 1
        data.flush()
    return {"versions": len(keys), "flipped": flipped}


_REDO_HEADER = struct.Struct("<4sIIQ")   # magic, crc, length, seq (storage/redolog.py)


def flip_redo_entry(redo_dir: Path, rng: random.Random) -> dict[str, Any]:
    """Flip one bit inside the payload of one entry of a stopped node's redo log."""
    entries: list[tuple[Path, int, int]] = []   # (chunk, payload offset, payload length)
    for chunk in sorted(redo_dir.glob("*.redo")):
        data = chunk.read_bytes()
        offset = 0
        while offset + _REDO_HEADER.size <= len(data):
            magic, _, length, _ = _REDO_HEADER.unpack_from(data, offset)
            if magic != b"BRL1" or offset + _REDO_HEADER.size + length > len(data):
                break
            if length:
                entries.append((chunk, offset + _REDO_HEADER.size, length))
            offset += _REDO_HEADER.size + length
    if not entries:
        raise NemesisError(f"no redo entry to corrupt in {redo_dir}")
    index = rng.randrange(len(entries))
    chunk, start, length = entries[index]
    position = start + rng.randrange(length)
    with open(chunk, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ (1 << rng.randrange(8))]))
    return {"entries": len(entries), "entry": index, "tail": index == len(entries) - 1,
            "chunk": chunk.name}


def _corruption_metrics(ctx: NemesisContext, node_id: str) -> dict[str, Any]:
    """The node's corruption counters once it repaired something from a peer (scrubbing
    runs once a second) or after a few seconds, or that it did not start."""
    deadline = time.monotonic() + 8.0
    found: dict[str, Any] = {"running": False}
    while time.monotonic() < deadline:
        node = next((n for n in ctx.cluster.storage_nodes(view=ctx.status())
                     if n["id"] == node_id), None)
        if node is not None and node["state"] == "up" and node.get("metrics_address"):
            found = {"running": True, **_scrape(str(node["metrics_address"]))}
            if found.get("pages_repaired", 0) > 0:
                break
        time.sleep(1.0)
    return found


def _scrape(address: str) -> dict[str, float]:
    wanted = {"borealis_storage_corrupt_found_total": "corrupt_found",
              "borealis_storage_pages_repaired_total": "pages_repaired"}
    out: dict[str, float] = {}
    with (contextlib.suppress(OSError, ValueError),
          urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer):
        for line in answer.read().decode().splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in wanted:
                out[wanted[name]] = out.get(wanted[name], 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class Mixed(Nemesis):
    """A seeded random sequence of the faults above, each held a few seconds and undone."""

    name = "mixed"
    CHOICES: ClassVar[tuple[str, ...]] = ("kill-writer", "kill-storage", "pause-writer",
                                          "az-down", "bitflip")

    def __init__(self) -> None:
        self.active: list[Nemesis] = []

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        while time.monotonic() + STEP_S[0] < deadline:
            choice = ctx.rng.choice(self.CHOICES)
            remaining = deadline - time.monotonic()
            hold_s = min(remaining, ctx.rng.uniform(*STEP_S))
            step: Nemesis
            if choice == "pause-writer":
                pause_s = PAUSE_S if remaining > PAUSE_S + 1 else SHORT_PAUSE_S
                step = PauseWriter(pause_s)
                hold_s = min(remaining, max(hold_s, pause_s + 0.5))
            else:
                step = NEMESES[choice]()
            self.active.append(step)
            try:
                step.run(ctx, time.monotonic() + hold_s)
            finally:
                step.heal(ctx)
                self.active.remove(step)
        sleep_until(deadline)

    def heal(self, ctx: NemesisContext) -> None:
        while self.active:
            self.active.pop().heal(ctx)


NEMESES: dict[str, type[Nemesis]] = {
    cls.name: cls for cls in (NoNemesis, KillWriter, KillAny, KillStorage, PauseWriter, AzDown,
                              AzPlusOne, Bitflip, Mixed, LoseUnsynced, NetChaos,
                              ClockSkew)
}
# The network nemeses (namespaces and nftables) are offered where this machine can run them;
# elsewhere they stay in NOT_IMPLEMENTED with what they need.
register_network_nemeses(NEMESES, NOT_IMPLEMENTED)
