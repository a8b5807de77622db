"""Choose the storage node's page-version store: LMDB versus SQLite (DESIGN decision 5).

The workload is the storage node's: coalescing writes batches of page versions (64 versions
of 4 KiB pages spread over 2,000 pages, one transaction and one durable ``sync()`` per batch);
GetPage answers point reads ``get_version_at`` at random pages and read points; GC passes
delete versions below the lowest read point. Both stores run the same seeded workload in
temporary directories (``--dir``; it must be a real disk: on tmpfs an fsync costs nothing).

Rule for ``chosen``: the higher geometric mean of durable versions written per second and
point reads per second; both paths are on the node's critical path (materialisation must keep
up with redo, reads serve every cache miss of every instance). GC time and bytes on disk per
version are reported beside it.

Run: ``python bench/pagestore.py``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from borealis.storage.pagestore import LmdbPageStore, PageStore, SqlitePageStore

SEGMENT_KEY = "vol1/pg0/s0"
PAGES = 2000
PAGE_BYTES = 4096
BATCH_VERSIONS = 64
BATCHES_DEFAULT = 600
READS_DEFAULT = 50_000
FSYNC_PROBES = 200


@dataclass(frozen=True, slots=True)
class Result:
    store: str
    versions: int
    write_s: float
    batch_ms_p50: float
    batch_ms_p99: float
    reads: int
    read_s: float
    gc_s: float
    gc_deleted: int
    bytes_per_version: float

    @property
    def writes_per_s(self) -> float:
        return self.versions / self.write_s

    @property
    def reads_per_s(self) -> float:
        return self.reads / self.read_s

    @property
    def score(self) -> float:
        return math.sqrt(self.writes_per_s * self.reads_per_s)


@dataclass(frozen=True, slots=True)
class Workload:
    batches: list[list[tuple[int, int]]]  # (page, lsn) per version, lsn strictly increasing
    reads: list[tuple[int, int]]  # (page, read lsn)
    images: list[bytes]
    lsn_max: int

    def image(self, page: int, lsn: int) -> bytes:
        # Distinct per version, like real pages, without generating megabytes per run.
        base = self.images[lsn % len(self.images)]
        return page.to_bytes(8, "big") + lsn.to_bytes(8, "big") + base[16:]


def make_workload(rng: random.Random, batches: int, reads: int) -> Workload:
    lsn = 0
    plan: list[list[tuple[int, int]]] = []
    for _ in range(batches):
        batch = []
        for _ in range(BATCH_VERSIONS):
            lsn += 1
            batch.append((rng.randrange(PAGES), lsn))
        plan.append(batch)
    queries = [(rng.randrange(PAGES), rng.randrange(1, lsn + 1)) for _ in range(reads)]
    images = [rng.randbytes(PAGE_BYTES) for _ in range(64)]
    return Workload(plan, queries, images, lsn)


def run(name: str, open_store: Callable[[Path], PageStore], workload: Workload,
        root: Path) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-", dir=root) as tmp:
        store = open_store(Path(tmp) / "pages")
        try:
            batch_s: list[float] = []
            started = time.perf_counter()
            for batch in workload.batches:
                t0 = time.perf_counter()
                store.put_versions(
                    (SEGMENT_KEY, page, lsn, workload.image(page, lsn)) for page, lsn in batch
                )
                store.sync()
                batch_s.append(time.perf_counter() - t0)
            write_s = time.perf_counter() - started
            versions = sum(len(batch) for batch in workload.batches)
            bytes_on_disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())

            started = time.perf_counter()
            hits = 0
            for page, lsn in workload.reads:
                if store.get_version_at(SEGMENT_KEY, page, lsn) is not None:
                    hits += 1
            read_s = time.perf_counter() - started
            assert hits > len(workload.reads) // 2

            # Two passes, as PGMRPL advances: to the middle of the history, then to its end.
            started = time.perf_counter()
            deleted = store.gc(SEGMENT_KEY, workload.lsn_max // 2)
            deleted += store.gc(SEGMENT_KEY, workload.lsn_max)
            store.sync()
            gc_s = time.perf_counter() - started
            assert deleted == versions - len({p for b in workload.batches for p, _ in b})
        finally:
            store.close()
    batch_ms = sorted(s * 1000 for s in batch_s)
    return Result(
        store=name, versions=versions, write_s=write_s,
        batch_ms_p50=statistics.median(batch_ms),
        batch_ms_p99=batch_ms[min(len(batch_ms) - 1, int(len(batch_ms) * 0.99))],
        reads=len(workload.reads), read_s=read_s, gc_s=gc_s, gc_deleted=deleted,
        bytes_per_version=bytes_on_disk / versions,
    )


def fsync_ms(root: Path) -> float:
    """The cost of appending 4 KiB and fdatasyncing it, on the disk under ``root``."""
    with tempfile.TemporaryDirectory(prefix="bench-fsync-", dir=root) as tmp:
        fd = os.open(Path(tmp) / "probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            block = b"\xa5" * 4096
            started = time.perf_counter()
            for _ in range(FSYNC_PROBES):
                os.write(fd, block)
                os.fdatasync(fd)
            return (time.perf_counter() - started) / FSYNC_PROBES * 1000
        finally:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary stores go (a real disk)")
    parser.add_argument("--batches", type=int, default=BATCHES_DEFAULT)
    parser.add_argument("--reads", type=int, default=READS_DEFAULT)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    workload = make_workload(random.Random(args.seed), args.batches, args.reads)
    fsync_cost_ms = fsync_ms(args.dir)
    results = [
        run("lmdb", lambda path: LmdbPageStore(path), workload, args.dir),
        run("sqlite", lambda path: SqlitePageStore(path), workload, args.dir),
    ]
    chosen = max(results, key=lambda r: r.score)

    print(f"page store benchmark: {args.batches} batches x {BATCH_VERSIONS} versions of "
          f"{PAGE_BYTES} B over {PAGES} pages, durable sync per batch; {args.reads} point "
          f"reads; 2 gc passes. fdatasync of a 4 KiB append: {fsync_cost_ms:.3f} ms")
    header = (f"{'store':<8}{'writes/s':>11}{'batch p50 ms':>14}{'batch p99 ms':>14}"
              f"{'reads/s':>11}{'gc s':>8}{'gc deleted':>12}{'B/version':>11}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.store:<8}{r.writes_per_s:>11,.0f}{r.batch_ms_p50:>14.2f}{r.batch_ms_p99:>14.2f}"
              f"{r.reads_per_s:>11,.0f}{r.gc_s:>8.2f}{r.gc_deleted:>12,}"
              f"{r.bytes_per_version:>11,.0f}")
    print(f"chosen: {chosen.store} (higher geometric mean of writes/s and reads/s)")
    by_name = {r.store: r for r in results}
    print(json.dumps({
        "bench": "pagestore",
        "versions": by_name["lmdb"].versions,
        "reads": by_name["lmdb"].reads,
        "fsync_ms": round(fsync_cost_ms, 4),
        **{
            f"{r.store}_{field}": round(value, 3)
            for r in results
            for field, value in (
                ("writes_per_s", r.writes_per_s),
                ("reads_per_s", r.reads_per_s),
                ("batch_ms_p50", r.batch_ms_p50),
                ("batch_ms_p99", r.batch_ms_p99),
                ("gc_s", r.gc_s),
                ("bytes_per_version", r.bytes_per_version),
            )
        },
        "chosen": chosen.store,
    }))


if __name__ == "__main__":
    main()
