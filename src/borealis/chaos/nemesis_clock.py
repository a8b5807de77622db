"""Clock skew: every process of the cluster on a wall clock of its own, moved while it runs.

The run's cluster is started with ``BOREALIS_FAKETIME_DIR=DATA_DIR/clocks``
(``ClockSkew.cluster_env``), so every storage node, instance and the router runs under
libfaketime with a clock file of its own there, named by its id (``az1-n2``, ``i1``,
``router``; ``control.processes.faketime_env``). Writing ``-45s`` into a file sets that
process's wall clock 45 s behind the real one at once (libfaketime reads the file on every
call). Only wall time moves: ``CLOCK_MONOTONIC`` stays real, as on a real machine whose clock
is wrong or stepped by NTP. The control plane, the runner and its clients keep the real
clock, so the history and the control plane's events stay on one time line.

The steps, in a seeded order (each held ``HOLD_S``; an offset stays until a later step or
the heal changes it, as a wrong clock stays wrong):

- ``skew-writer``: the writer's clock ± 10-60 s.
- ``skew-readers``: each reader's clock its own ± 5-90 s, none equal to the writer's.
- ``skew-storage``: about half the storage nodes, each ± 1-60 s.
- ``ntp-step``: one process (an instance, a storage node or the router) jumps ± 2-10 minutes
  from where its clock is.
- ``strobe``: one instance's clock flips between two offsets 30-120 s apart every
  100-500 ms, for 2-5 s.

``heal`` writes ``+0`` into every clock file. What the cluster should do: nothing a client
can see. No protocol decision reads the wall clock (timeouts, heartbeats, failover waits,
segment health run on the monotonic clock); the wall clock shows only in SQL's ``now()`` and
friends (each instance's own), in log lines, and, until it was measured on the writer's
monotonic clock (``engine.replication``), in each reader's ``lag_ms``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from borealis.chaos.cluster import DATA_DIR_MARK
from borealis.chaos.nemesis_base import Nemesis, NemesisContext, fails, sleep_until
from borealis.control.processes import CLOCK_OFFSET_NONE, FAKETIME_DIR_ENV

CLOCKS_DIR = "clocks"
STEPS = ("skew-writer", "skew-readers", "skew-storage", "ntp-step", "strobe")
HOLD_S = (2.0, 4.0)
"""How long each step's offsets hold before the next step."""
WRITER_SKEW_S = (10, 60)
READER_SKEW_S = (5, 90)
STORAGE_SKEW_S = (1, 60)
NTP_STEP_S = (120, 600)
STROBE_APART_S = (30, 120)
STROBE_EVERY_S = (0.1, 0.5)
STROBE_FOR_S = (2.0, 5.0)
STROBE_FLIPS_MAX = 100
"""A bound on one strobe's flips (5 s at 100 ms is 50)."""


def offset_text(offset_s: int) -> str:
    """A clock file's content: libfaketime's relative offset (``+30s``, ``-120s``, ``+0``)."""
    return f"{offset_s:+d}s" if offset_s else CLOCK_OFFSET_NONE


def write_offset(directory: Path, clock_name: str, offset_s: int) -> None:
    """Set one process's clock, atomically (libfaketime never reads a half-written file)."""
    assert clock_name and "/" not in clock_name and not clock_name.startswith(".")
    temporary = directory / f".{clock_name}.tmp"
    temporary.write_text(offset_text(offset_s) + "\n")
    os.replace(temporary, directory / clock_name)


class ClockSkew(Nemesis):
    name = "clock-skew"
    cluster_env: ClassVar[Mapping[str, str]] = {
        FAKETIME_DIR_ENV: f"{DATA_DIR_MARK}/{CLOCKS_DIR}"}
    """Every process the control plane starts runs under libfaketime, its clock file there."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}   # clock name -> offset (s), as last written

    @staticmethod
    def directory(ctx: NemesisContext) -> Path:
        return Path(ctx.cluster.env[FAKETIME_DIR_ENV])

    def set_offsets(self, ctx: NemesisContext, f: str, offsets: dict[str, int],
                    **value: Any) -> None:
        def write() -> dict[str, Any]:
            for clock_name, offset_s in sorted(offsets.items()):
                write_offset(self.directory(ctx), clock_name, offset_s)
                self.offsets[clock_name] = offset_s
            return {}

        ctx.act(f, {**value, "offsets_s": offsets}, write)

    def run(self, ctx: NemesisContext, deadline: float) -> None:
        order = list(STEPS)
        ctx.rng.shuffle(order)
        steps: dict[str, Callable[[NemesisContext, float], None]] = {
            "skew-writer": self.skew_writer, "skew-readers": self.skew_readers,
            "skew-storage": self.skew_storage, "ntp-step": self.ntp_step,
            "strobe": self.strobe}
        done = 0
        while time.monotonic() + HOLD_S[0] < deadline:
            step = order[done] if done < len(order) else ctx.rng.choice(STEPS)
            done += 1
            hold_until = time.monotonic() + ctx.rng.uniform(*HOLD_S)
            steps[step](ctx, deadline)
            sleep_until(min(deadline, hold_until))
        sleep_until(deadline)

    def skew_writer(self, ctx: NemesisContext, deadline: float) -> None:
        writer = ctx.writer()
        if writer is None:
            ctx.act("skew-writer", {}, fails("no available writer to skew"))
            return
        offset_s = _signed(ctx, WRITER_SKEW_S)
        self.set_offsets(ctx, "skew-writer", {str(writer["id"]): offset_s})

    def skew_readers(self, ctx: NemesisContext, deadline: float) -> None:
        view = ctx.status()
        readers = sorted(str(i["id"]) for i in ctx.cluster.instances(role="reader", view=view))
        writer = ctx.cluster.writer(view)
        writer_offset_s = self.offsets.get(str(writer["id"]), 0) if writer else 0
        offsets: dict[str, int] = {}
        for reader in readers:
            offset_s = writer_offset_s
            while offset_s == writer_offset_s or offset_s in offsets.values():
                offset_s = _signed(ctx, READER_SKEW_S)
            offsets[reader] = offset_s
        if not offsets:
            ctx.act("skew-readers", {}, fails("no reader to skew"))
            return
        self.set_offsets(ctx, "skew-readers", offsets)

    def skew_storage(self, ctx: NemesisContext, deadline: float) -> None:
        nodes = sorted(str(n["id"]) for n in ctx.cluster.storage_nodes(view=ctx.status())
                       if n["pid"])
        if not nodes:
            ctx.act("skew-storage", {}, fails("no running storage node to skew"))
            return
        chosen = ctx.rng.sample(nodes, max(1, len(nodes) // 2))
        self.set_offsets(ctx, "skew-storage",
                         {node: _signed(ctx, STORAGE_SKEW_S) for node in sorted(chosen)})

    def ntp_step(self, ctx: NemesisContext, deadline: float) -> None:
        view = ctx.status()
        processes = sorted([str(i["id"]) for i in ctx.cluster.instances(view=view)]
                           + [str(n["id"]) for n in ctx.cluster.storage_nodes(view=view)
                              if n["pid"]] + ["router"])
        victim = ctx.rng.choice(processes)
        step_s = _signed(ctx, NTP_STEP_S)
        self.set_offsets(ctx, "ntp-step", {victim: self.offsets.get(victim, 0) + step_s},
                         step_s=step_s)

    def strobe(self, ctx: NemesisContext, deadline: float) -> None:
        instances = sorted(str(i["id"]) for i in ctx.cluster.instances(view=ctx.status()))
        if not instances:
            ctx.act("strobe", {}, fails("no instance to strobe"))
            return
        victim = ctx.rng.choice(instances)
        first_s = self.offsets.get(victim, 0)
        second_s = first_s + _signed(ctx, STROBE_APART_S)
        every_s = ctx.rng.uniform(*STROBE_EVERY_S)
        for_s = min(ctx.rng.uniform(*STROBE_FOR_S), max(0.0, deadline - time.monotonic()))
        directory = self.directory(ctx)

        def flip() -> dict[str, Any]:
            until = time.monotonic() + for_s
            flips = 0
            offset_s = first_s
            while time.monotonic() < until and flips < STROBE_FLIPS_MAX:
                offset_s = second_s if offset_s == first_s else first_s
                write_offset(directory, victim, offset_s)
                self.offsets[victim] = offset_s
                flips += 1
                time.sleep(every_s)
            return {"flips": flips, "left_at_s": offset_s}

        ctx.act("strobe", {"process": victim, "offsets_s": [first_s, second_s],
                           "every_s": round(every_s, 3), "for_s": round(for_s, 3)}, flip)

    def heal(self, ctx: NemesisContext) -> None:
        """``+0`` in every clock file there is (idempotent; recorded when a clock was off)."""
        directory = self.directory(ctx)
        names = sorted(p.name for p in directory.iterdir()
                       if p.is_file() and not p.name.startswith(".")) \
            if directory.is_dir() else []
        skewed = {name: s for name, s in self.offsets.items() if s}

        def heal() -> dict[str, Any]:
            for name in names:
                write_offset(directory, name, 0)
            self.offsets = dict.fromkeys(names, 0)
            return {"clocks": names}

        if skewed:
            ctx.act("heal", {"was_s": skewed}, heal)
        else:
            with contextlib.suppress(OSError):
                heal()


def _signed(ctx: NemesisContext, bounds: tuple[int, int]) -> int:
    """A seeded offset of ``bounds[0]``..``bounds[1]`` seconds, forward or back."""
    low, high = bounds
    assert 0 < low <= high
    return ctx.rng.choice((-1, 1)) * ctx.rng.randint(low, high)
