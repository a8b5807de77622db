"""Disk nemeses: faults in what a storage node's disk keeps, not only in its process.

``lose-unsynced`` is a power loss: a storage node is killed with -9 (by PID) and its files
are then rolled back to what its syncs had made durable (``storage/crashmodel.py``:
``lose_unsynced`` cuts each redo chunk to its synced length, deletes chunks created after the
last sync, may leave a torn write at the tail, and puts the page store's checkpoint of its
last sync back), and ``borealis up`` starts it again. The nodes must run with
``BOREALIS_CRASH_MODEL=lose-unsynced`` (``LoseUnsynced.cluster_env``), which makes them
record what each sync made durable; a node without that record is never touched.

What "no acknowledged commit lost" requires, and why the victims are chosen as they are. A
commit is acknowledged once its redo is durable on a write quorum, 4 of the 6 segments of
each PG it touched: each of those nodes answered only after a redo-log sync covering it
returned. A power loss removes only what no returned sync covered, so it never removes an
acknowledged copy, however many nodes lose power: after they restart, any read quorum (3 of
6) meets those 4 copies (4 + 3 > 6) and recovery finds every acknowledged commit. A lost
acknowledged commit therefore means a node lost data it had reported synced: a durability
bug. The nemesis still stays within the failures Aurora is designed to ride through with
writes available, so that a run makes progress and a failure points at storage, not at the
fault: at most ``COPIES - WRITE_QUORUM`` = 2 nodes of any PG down at once (one node, or one
whole AZ, which holds exactly 2 of each PG's segments), and the next crash waits until the
cluster is whole again (every PG 6/6, every instance available), so crashes never add up.

Victims over a run: one node holding segments at a time, rotating over the AZs from a
seeded start, and once (as the first or second crash) every node of one AZ killed in one
action, within milliseconds: a correlated power loss.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from borealis.chaos.nemesis_base import Nemesis, NemesisContext, NemesisError
from borealis.cli.storage_node import CHECKPOINT_MIB_ENV
from borealis.storage.crashmodel import CRASH_MODEL_ENV, LOSE_UNSYNCED, lose_unsynced
from borealis.types import COPIES, WRITE_QUORUM

NODES_PER_PG_DOWN_MAX = COPIES - WRITE_QUORUM
"""Crashed nodes holding segments of one PG at any moment: a write quorum stays up."""
WHOLE_WAIT_S = 30.0
"""How long a crash waits for the cluster to be whole after the previous one."""
UP_WAIT_S = 15.0
"""How long, after ``borealis up``, to wait for the crashed nodes to answer again."""
GAP_S = (1.0, 3.0)
"""Pause between the cluster being whole again and the next crash."""
STEP_S_MIN = 4.0
"""A crash starts only if the window leaves at least this long."""
POLL_S = 0.5
CHECKPOINT_MIB = "1"
"""Redo MiB between a node's checkpoints in these runs (64 by default): a few a minute."""

assert NODES_PER_PG_DOWN_MAX == 2


class LoseUnsynced(Nemesis):
    name = "lose-unsynced"
    cluster_env: ClassVar[Mapping[str, str]] = {CRASH_MODEL_ENV: LOSE_UNSYNCED,
                                                CHECKPOINT_MIB_ENV: CHECKPOINT_MIB}
    """The environment ``borealis up`` (and so every storage node) must run with: the
    crash model, and checkpoints often enough that the power losses meet trimmed logs."""

    def __init__(self) -> None:
        self.down: list[str] = []   # killed, not yet started again

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        az_step = ctx.rng.randrange(2)
        azs: list[str] = []
        crashes = 0
        whole_az_done = False
        while time.monotonic() + STEP_S_MIN < deadline:
            view = self.wait_whole(ctx, deadline)
            if view is None:
                continue
            if not azs:
                azs = sorted({str(n["az"]) for n in ctx.cluster.storage_nodes(view=view)})
                ctx.rng.shuffle(azs)
            whole_az = not whole_az_done and crashes >= az_step
            az = azs[crashes % len(azs)]
            victims = choose_victims(view, az, whole_az=whole_az, rng=ctx.rng)
            if not victims:
                ctx.act("crash", {"az": az}, _fails(f"no storage node of {az} to crash"))
            else:
                self.crash(ctx, victims, "power-loss-az" if whole_az else "power-loss")
                whole_az_done = whole_az_done or whole_az
            crashes += 1
            pause_s = ctx.rng.uniform(*GAP_S)
            time.sleep(max(0.0, min(pause_s, deadline - time.monotonic())))
        sleep_until(deadline)

    def wait_whole(self, ctx: NemesisContext, deadline: float) -> dict[str, Any] | None:
        """The cluster's view once it is whole, or None (recorded) if it was not in time."""
        until = min(deadline, time.monotonic() + WHOLE_WAIT_S)
        view = ctx.status()
        while not ctx.cluster.fully_healthy(view):
            if time.monotonic() >= until:
                ctx.observe("not whole", {"protection_groups_healthy": [
                    pg.get("healthy") for pg in view.get("protection_groups") or []]})
                return None
            time.sleep(POLL_S)
            view = ctx.status()
        return view

    def crash(self, ctx: NemesisContext, victims: list[dict[str, Any]], f: str) -> None:
        """Kill every victim (one action: the same instant), roll each one that exited back
        to its synced state, then start them again."""
        exited: list[dict[str, Any]] = []

        def kill() -> dict[str, Any]:
            killed = [n for n in victims if ctx.cluster.signal_node(n, signal.SIGKILL)]
            self.down += [str(n["id"]) for n in killed]
            exited.extend(n for n in killed if ctx.cluster.wait_exit(int(n["pid"])))
            return {"killed": [n["id"] for n in killed], "exited": [n["id"] for n in exited]}

        ctx.act(f, {"nodes": [n["id"] for n in victims],
                    "pids": [n["pid"] for n in victims]}, kill)
        for node in exited:   # never the files of a process that may still run
            node_id = str(node["id"])
            seed = ctx.rng.randrange(2**32)
            directory = ctx.cluster.storage_dir(node_id)
            ctx.act("lose-unsynced", {"node": node_id, "seed": seed},
                    _roll_back(directory, seed))
        restarted = list(self.down)
        self.heal(ctx)
        ctx.act("observe", {"what": "restarted", "nodes": restarted},
                lambda: _wait_up(ctx, restarted))

    def heal(self, ctx: NemesisContext) -> None:
        if self.down:
            ctx.up()
            self.down = []


def choose_victims(view: dict[str, Any], az: str, *, whole_az: bool,
                   rng: random.Random) -> list[dict[str, Any]]:
    """Every running storage node of ``az`` (``whole_az``), or one of them holding segments;
    never more than ``NODES_PER_PG_DOWN_MAX`` of any PG's segments (``view`` is the control
    plane's ``GET /v1/cluster``)."""
    running = sorted((n for n in view["storage_nodes"]
                      if n["az"] == az and n["state"] == "up" and n["pid"]),
                     key=lambda n: str(n["id"]))
    if not whole_az:
        holding = [n for n in running if n["segments"]]
        running = [rng.choice(holding)] if holding else []
    pgs_of = _pgs_by_node(view)
    per_pg: Counter[int] = Counter()
    chosen = []
    for node in running:
        pgs = pgs_of.get(str(node["id"]), [])
        if any(per_pg[pg] + pgs.count(pg) > NODES_PER_PG_DOWN_MAX for pg in set(pgs)):
            continue   # a layout after repairs may put more of a PG in one AZ
        per_pg.update(pgs)
        chosen.append(node)
    assert all(count <= NODES_PER_PG_DOWN_MAX for count in per_pg.values())
    return chosen


def _roll_back(directory: Path, seed: int) -> Callable[[], dict[str, Any]]:
    return lambda: lose_unsynced(directory, random.Random(seed))


def _pgs_by_node(view: dict[str, Any]) -> dict[str, list[int]]:
    """node id -> the PG of each segment it holds (a PG twice if it holds two of it)."""
    pgs: dict[str, list[int]] = {}
    for pg in view.get("protection_groups") or []:
        for segment in pg.get("segments") or []:
            pgs.setdefault(str(segment["node"]), []).append(int(pg["pg"]))
    return pgs


def _wait_up(ctx: NemesisContext, node_ids: list[str]) -> dict[str, Any]:
    """Which of the restarted nodes answer again (a node that cannot restart after the loss
    of its unsynced writes is the finding this nemesis looks for)."""
    deadline = time.monotonic() + UP_WAIT_S
    states: dict[str, str] = {}
    while True:
        nodes = {str(n["id"]): n for n in ctx.cluster.storage_nodes(view=ctx.status())}
        states = {i: str(nodes[i]["state"]) if i in nodes else "unknown" for i in node_ids}
        if all(state == "up" for state in states.values()) or time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    not_up = sorted(i for i, state in states.items() if state != "up")
    if not_up:
        raise NemesisError(f"storage nodes not up {UP_WAIT_S:.0f} s after borealis up: "
                           f"{not_up} ({states})")
    return {"up": sorted(states)}


def sleep_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _fails(message: str) -> Callable[[], dict[str, Any]]:
    def fail() -> dict[str, Any]:
        raise NemesisError(message)

    return fail
