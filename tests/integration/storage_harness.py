"""Helpers for integration tests that run real storage-node processes on 127.0.0.1.

The ``storage_nodes`` fixture (``conftest.py``) starts the six nodes. ``Model`` is the
test's view of the volume: what every page should hold, and what an unacknowledged commit
might have made of it. ``Load`` drives a ``VolumeClient`` from concurrent tasks with
realistic page changes (about 100 bytes of a 4 KiB page, sent as deltas against the
previous image). ``Probe``
talks to storage nodes directly over RPC, the way a storage operator would, to check what
each segment holds independently of the volume client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from borealis.control.processes import InstanceProcess, NodeProcess
from borealis.errors import BorealisError, QuorumUnavailableError
from borealis.storage import wire
from borealis.storage.messages import GetPage, PageVersion
from borealis.transport.pool import ConnectionPool
from borealis.types import LSN, PageNo, SegmentId, VolumeId
from borealis.volume.client import VolumeClient
from borealis.volume.geometry import Geometry
from borealis.volume.spec import VolumeSpec
from borealis.volume.writer import PageWrite

T = TypeVar("T")

PAGE_SIZE = 4096
PG_PAGES = 64
"""Small protection groups, so that a few hundred pages span several PGs."""
PGS = 4
PAGES = PG_PAGES * PGS
CHANGE_BYTES = 100
"""Bytes a transaction changes in a page: the usual OLTP change of a row and its header."""
TASKS = 8
TEST_TIMEOUT_S = 120.0
"""Upper bound on one test's event loop: a hang fails the test instead of stalling CI."""


def geometry() -> Geometry:
    return Geometry(VolumeId("t"), pg_bytes=PAGE_SIZE * PG_PAGES)


def run(main: Awaitable[T], timeout_s: float = TEST_TIMEOUT_S) -> T:
    """``asyncio.run`` with an upper bound on the whole test."""

    async def bounded() -> T:
        return await asyncio.wait_for(main, timeout_s)

    return asyncio.run(bounded())


# --- processes -----------------------------------------------------------------------------


def make_spec(nodes: list[NodeProcess]) -> VolumeSpec:
    return VolumeSpec(geometry(), {n.node: n.info() for n in nodes})


def node_named(nodes: list[NodeProcess], name: str) -> NodeProcess:
    return next(n for n in nodes if n.node == name)


def log_problems(nodes: list[NodeProcess]) -> list[str]:
    """Lines of the nodes' logs that show a bug rather than a fault we injected: a handler
    that raised something other than a BorealisError, or a traceback anywhere."""
    problems = []
    for n in nodes:
        if not n.log_path.exists():
            continue
        for line in n.log_path.read_text(errors="replace").splitlines():
            if ("Traceback" in line or "rpc handler failed" in line
                    or " CRITICAL " in line or "Task exception was never retrieved" in line):
                problems.append(f"{n.node}: {line}")
    return problems


# --- the model and the load ----------------------------------------------------------------


def first_image(rng: random.Random, page: int) -> bytes:
    """A plausible page: a header naming the page, some rows, free space as zeros."""
    header = f"page {page:08d} ".encode()
    rows = rng.randbytes(rng.randrange(512, 2048))
    return (header + rows).ljust(PAGE_SIZE, b"\0")


def changed_image(rng: random.Random, old: bytes) -> bytes:
    """``old`` with CHANGE_BYTES bytes rewritten at a random place (a row update)."""
    at = rng.randrange(16, PAGE_SIZE - CHANGE_BYTES)
    return old[:at] + rng.randbytes(CHANGE_BYTES) + old[at + CHANGE_BYTES:]


@dataclass
class Model:
    """What every page holds as far as acknowledged commits go (``acked``), the image each
    page was last sent with (``sent``: the base of the next delta), and for a page whose
    commit was never answered, the images that commit could have left (``maybe``)."""

    acked: dict[int, bytes] = field(default_factory=dict)
    sent: dict[int, bytes] = field(default_factory=dict)
    maybe: dict[int, list[bytes]] = field(default_factory=dict)
    commit_lsns: list[int] = field(default_factory=list)

    def writes(self, rng: random.Random, pages: list[int]) -> list[PageWrite]:
        out = []
        for page in pages:
            old = self.sent.get(page)
            new = first_image(rng, page) if old is None else changed_image(rng, old)
            out.append(PageWrite(PageNo(page), new, old))
            self.sent[page] = new
        return out

    def acknowledged(self, writes: list[PageWrite], lsn: int) -> None:
        for w in writes:
            self.acked[w.page] = w.new
            self.maybe.pop(w.page, None)
        self.commit_lsns.append(lsn)

    def unknown(self, writes: list[PageWrite]) -> None:
        """The commit's outcome is unknown: the page holds the old image or this one."""
        for w in writes:
            self.maybe.setdefault(w.page, []).append(w.new)

    def allowed(self, page: int) -> list[bytes | None]:
        return [self.acked.get(page), *self.maybe.get(page, [])]

    def settle(self, page: int, image: bytes | None) -> None:
        """A read decided an unknown outcome: the page holds ``image`` from now on."""
        assert image in self.allowed(page)
        if image is None:
            self.acked.pop(page, None)
            self.sent.pop(page, None)
        else:
            self.acked[page] = image
            self.sent[page] = image
        self.maybe.pop(page, None)


@dataclass
class Load:
    """``TASKS`` tasks committing transactions of 1-4 pages each. Task ``k`` owns the pages
    ``p % TASKS == k``: two transactions in flight never change the same page, as the
    engine's write lock guarantees, so every delta is made against the right base."""

    client: VolumeClient
    model: Model
    seed: int = 1
    pages: int = PAGES
    tasks: int = TASKS
    errors: list[BaseException] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def acked(self) -> int:
        return len(self.model.commit_lsns)

    async def _worker(self, k: int, commits: int | None) -> None:
        rng = random.Random(self.seed * 1000 + k)
        own = [p for p in range(self.pages) if p % self.tasks == k]
        done = 0
        while not self._stop.is_set() and (commits is None or done < commits):
            writes = self.model.writes(rng, rng.sample(own, rng.randint(1, 4)))
            try:
                lsn = await self.client.commit(writes)
            except BaseException as exc:
                self.model.unknown(writes)
                if not isinstance(exc, asyncio.CancelledError):
                    self.errors.append(exc)
                raise
            self.model.acknowledged(writes, lsn)
            done += 1

    def start(self, commits_per_task: int | None = None) -> None:
        assert not self._tasks
        self._tasks = [asyncio.create_task(self._worker(k, commits_per_task))
                       for k in range(self.tasks)]

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks)

    async def stop(self) -> None:
        """Let every task finish the commit it is in, then return."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def crash(self) -> None:
        """Abandon every commit in flight, as a writer process that dies would."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def read_back(client: VolumeClient, model: Model, read_point: LSN | None = None, *,
                    attempts: int = 1) -> int:
    """Read every page the model knows through the client and check it; returns pages read.
    ``attempts`` > 1 retries a read that found no segment to serve it."""
    pages = sorted(set(model.acked) | set(model.maybe))
    sem = asyncio.Semaphore(32)

    async def one(page: int) -> None:
        async with sem:
            for attempt in range(attempts):
                try:
                    got = await client.read_page(page, read_point)
                    break
                except QuorumUnavailableError:
                    if attempt == attempts - 1:
                        raise
        assert got.page == page
        assert got.image in model.allowed(page), (
            f"page {page} at read point {read_point}: got version {got.version}, "
            f"an image that no commit made"
        )

    await asyncio.gather(*(one(p) for p in pages))
    return len(pages)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str,
                     interval_s: float = 0.1) -> float:
    """Poll ``check`` until it holds; the seconds it took. Fails with ``what`` on timeout."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(interval_s)


# --- talking to storage nodes directly -----------------------------------------------------


class Probe:
    """Direct RPCs to storage nodes: status, and page reads from one chosen segment."""

    def __init__(self, spec: VolumeSpec) -> None:
        self.spec = spec
        self.pool = ConnectionPool(name="probe", reconnect_backoff_s=0.05)

    async def call(self, address: str, method: str, body: Any, timeout_s: float = 5.0) -> Any:
        client = await self.pool.get(address)
        return await client.call(method, body, timeout_s=timeout_s)

    async def status(self, node: NodeProcess) -> dict[str, Any]:
        reply = await self.call(node.address, "node_status", None)
        assert reply["node"] == node.node
        return dict(reply)

    async def segment_status(self, nodes: list[NodeProcess]) -> dict[str, dict[str, Any]]:
        """Every segment's status, from every node given."""
        out: dict[str, dict[str, Any]] = {}
        for status in await asyncio.gather(*(self.status(n) for n in nodes)):
            out.update(status["segments"])
        return out

    async def get_page(self, segment: SegmentId, page: int, read_point: int) -> PageVersion:
        body = wire.encode(GetPage(segment, PageNo(page), LSN(read_point)))
        reply = await self.call(self.spec.address_of(segment), "get_page", body)
        return wire.decode(PageVersion, reply)

    def segments(self) -> list[SegmentId]:
        return [s for layout in self.spec.layouts.values() for s in layout.segment_ids]

    def segments_on(self, node: NodeProcess) -> list[SegmentId]:
        return [p.segment for layout in self.spec.layouts.values() for p in layout.segments
                if p.node == node.node]

    async def all_at(self, nodes: list[NodeProcess], lsn: int) -> bool:
        """Every segment of every PG reports SCL == ``lsn``."""
        try:
            status = await self.segment_status(nodes)
        except BorealisError:
            return False
        return all(status.get(s, {}).get("scl") == lsn for s in self.segments())

    async def every_segment_matches(self, model: Model, read_point: int,
                                    only: list[SegmentId] | None = None) -> int:
        """Read every page the model knows from each of its PG's six segments (or from the
        segments in ``only``) at ``read_point``: all must return the same version and
        exactly the model's image. Returns the number of (segment, page) reads."""
        geometry = self.spec.geometry
        sem = asyncio.Semaphore(64)
        seen: dict[int, dict[SegmentId, PageVersion]] = {}

        async def one(segment: SegmentId, page: int) -> None:
            async with sem:
                seen.setdefault(page, {})[segment] = await self.get_page(segment, page,
                                                                         read_point)

        reads: list[Awaitable[None]] = []
        for page in sorted(model.acked):
            layout = self.spec.layouts[geometry.pg_of(page)]
            reads.extend(one(s, page) for s in layout.segment_ids if only is None or s in only)
        await asyncio.gather(*reads)
        for page, by_segment in seen.items():
            versions = {pv.version for pv in by_segment.values()}
            assert len(versions) == 1, f"page {page}: segments disagree on the version " \
                                       f"{ {s: pv.version for s, pv in by_segment.items()} }"
            for segment, pv in by_segment.items():
                assert pv.image == model.acked[page], (
                    f"segment {segment} page {page} version {pv.version}: image differs "
                    "from the acknowledged one"
                )
        return len(reads)

    async def close(self) -> None:
        await self.pool.close()


def start_instance(instances: list[InstanceProcess], tmp_path: Path, volume: Path, name: str,
                   *, role: str = "writer", writer: str | None = None) -> InstanceProcess:
    """Start an instance process on ``volume`` (a reader follows ``writer``); it joins
    ``instances`` (the fixture that stops them all)."""
    p = InstanceProcess(name, "az1", volume, tmp_path / "instances" / name,
                        tmp_path / "logs" / f"{name}.log", role=role,
                        extra_args=("--writer", writer) if writer else ())
    instances.append(p)
    p.start()
    return p
