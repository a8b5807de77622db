"""Checkers: the guarantees the simulator verifies, after every step and at the end.

- Every commit ever acknowledged (VDL reached it) survives every recovery and stays readable.
- A read at a read point returns exactly the page version committed up to that point.
- LSNs and VDL never go backwards.
- A fenced writer never acknowledges a commit beyond what the new writer recovered.
- After faults heal, every segment of a PG converges to the same pages, byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from borealis.errors import BorealisError
from borealis.storage.messages import PageVersion
from borealis.types import LSN

if TYPE_CHECKING:
    from borealis.sim.world import SimWriter, World


class Checkers:
    def __init__(self, world: World) -> None:
        self.world = world
        self.last_vdl: dict[str, LSN] = {}
        self.last_lsn: dict[str, LSN] = {}
        self.recovered: list[tuple[str, LSN]] = []

    def fail(self, message: str) -> None:
        from borealis.sim.world import Violation

        text = f"seed={self.world.seed} t={self.world.now:.4f}s: {message}"
        self.world.violations.append(text)
        raise Violation(text)

    def after_step(self) -> None:
        for w in self.world.writers:
            core = w.core
            if core is None or not w.up:
                continue  # a crashed writer's core never changes again
            if core.vdl < self.last_vdl.get(w.name, LSN(0)):
                self.fail(f"{w.name}: VDL went backwards")
            if core.allocated < self.last_lsn.get(w.name, LSN(0)):
                self.fail(f"{w.name}: LSN allocation went backwards")
            if core.vdl > core.allocated:
                self.fail(f"{w.name}: VDL {core.vdl} beyond allocated {core.allocated}")
            self.last_vdl[w.name] = core.vdl
            self.last_lsn[w.name] = core.allocated

    def on_ack(self, writer: SimWriter, before: LSN, after: LSN) -> None:
        for name, vdl in self.recovered:
            if name != writer.name and self._newer(name, writer.name) and after > vdl:
                self.fail(
                    f"fenced {writer.name} acknowledged up to {after} after {name} "
                    f"recovered at VDL {vdl}"
                )

    def _newer(self, a: str, b: str) -> bool:
        names = [w.name for w in self.world.writers]
        return names.index(a) > names.index(b)

    def on_recovered(self, writer: SimWriter, vdl: LSN) -> None:
        lost = [lsn for lsn, name in self.world.acked_commits.items() if lsn > vdl]
        if lost:
            self.fail(f"{writer.name} recovered at VDL {vdl}: acknowledged commits lost {lost[:5]}")
        self.recovered.append((writer.name, vdl))

    def check_read(self, read_point: LSN, page: int, reply: PageVersion) -> None:
        version, image = self.world.expected_image(page, read_point)
        if reply.version != version or reply.image != image:
            self.fail(
                f"read page {page} at {read_point}: got version {reply.version}, "
                f"expected {version} (image equal: {reply.image == image})"
            )
        self.world.stats["reads_checked"] += 1

    def final(self) -> None:
        """After healing: all segments converge and hold every acknowledged commit."""
        world = self.world
        w = world.writer
        if w is None or w.core is None:
            self.fail("no writer recovered by the end")
            return
        vdl = w.core.vdl
        for lsn in world.acked_commits:
            if lsn > vdl:
                self.fail(f"acknowledged commit {lsn} is above the final VDL {vdl}")
        for pg, layout in world.layouts.items():
            contents: dict[str, Any] = {}
            for sid in layout.segment_ids:
                node = world.nodes[world.segment_node[sid]]
                seg = node.segments[sid]
                acked = w.core.tracker.acked.get(sid, LSN(0))
                if seg.scl < acked and not seg.stats.corrupt_found:
                    # An acknowledged SCL is durable: only a corrupt record found since may
                    # lower it (it is then fetched again).
                    self.fail(f"segment {sid}: SCL {seg.scl} fell below the {acked} it "
                              "acknowledged")
                if seg.scl < vdl:
                    self.fail(f"segment {sid} did not converge: SCL {seg.scl} < VDL {vdl}")
                pages = {}
                first = world.geometry.first_page(pg)
                for page in range(first, first + world.geometry.pg_pages):
                    try:
                        pv = seg.materialise(page, vdl)
                    except BorealisError as exc:
                        self.fail(f"segment {sid} page {page}: {exc}")
                        return
                    expected = world.expected_image(page, vdl)
                    if (pv.version, pv.image) != expected:
                        self.fail(f"segment {sid} page {page} at VDL {vdl} differs from model")
                    pages[page] = (pv.version, pv.image)
                contents[sid] = pages
            distinct = {repr(sorted(p.items())) for p in contents.values()}
            if len(distinct) != 1:
                self.fail(f"PG {pg}: segments differ after convergence")
