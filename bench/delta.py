"""Page delta codec benchmark: microseconds per encode/apply and bytes saved against full pages.

Run ``python bench/delta.py`` (``--sweep`` adds the merge-gap and zstd-level sweeps that chose
``GAP_MERGE_MAX`` and ``ZSTD_LEVEL``). The workloads:

* synthetic changes to a 4 KiB page of random bytes: the typical OLTP change (page header plus
  about 100 bytes in two ranges), a single integer, many small scattered ranges, a row written
  into a mostly empty page, a cell pointer array shifted by an insert, a whole new page;
* real SQLite pages: a database file is snapshotted page by page before and after a one-row
  UPDATE and before and after pgbench-style TPC-B transactions, and every page that changed
  is encoded against its previous version (a page new to the file is an IMAGE).

The last line printed is one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

from borealis import delta

PAGE_BYTES = 4096
SEED = 20240601
TIMING_BATCH = 50
TIMING_BATCHES = 200
TPCB_TRANSACTIONS = 300
ACCOUNTS = 20_000
TELLERS = 10
BRANCHES = 1


# --- workloads -----------------------------------------------------------------------------


def _changed(rng: random.Random, base: bytes, ranges: list[tuple[int, int]]) -> bytes:
    page = bytearray(base)
    for offset, length in ranges:
        page[offset : offset + length] = rng.randbytes(length)
    return bytes(page)


def synthetic_pairs(rng: random.Random) -> dict[str, tuple[bytes, bytes]]:
    base = rng.randbytes(PAGE_BYTES)
    empty_ish = bytearray(PAGE_BYTES)
    empty_ish[:8] = rng.randbytes(8)
    row = b"name=alice;email=alice@example.com;city=Oslo;" * 6
    with_row = bytearray(empty_ish)
    with_row[0:8] = rng.randbytes(8)
    with_row[PAGE_BYTES - len(row) :] = row
    pointers = bytearray(base)
    pointers[12:412] = base[10:410]  # a 2-byte cell pointer inserted at the front of 200
    pointers[10:12] = rng.randbytes(2)
    scattered = [(offset, 8) for offset in range(16, PAGE_BYTES - 8, PAGE_BYTES // 32)]
    return {
        # Page header bytes plus 100 bytes in two ranges: the typical OLTP row change.
        "oltp": (base, _changed(rng, base, [(1, 4), (1200, 60), (3000, 40)])),
        "one_int": (base, _changed(rng, base, [(2000, 4)])),
        "scattered_32x8": (base, _changed(rng, base, scattered)),
        "row_into_empty_page": (bytes(empty_ish), bytes(with_row)),
        "pointer_shift": (base, bytes(pointers)),
        "whole_page": (base, rng.randbytes(PAGE_BYTES)),
    }


def _pages(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert len(data) % PAGE_BYTES == 0
    return [data[i : i + PAGE_BYTES] for i in range(0, len(data), PAGE_BYTES)]


def _page_changes(before: list[bytes], after: list[bytes]) -> Iterator[tuple[bytes | None, bytes]]:
    for number, page in enumerate(after):
        old = before[number] if number < len(before) else None
        if page != old:
            yield old, page


def sqlite_pairs(rng: random.Random) -> dict[str, list[tuple[bytes | None, bytes]]]:
    """Changed pages, as (previous version, new version), per SQLite workload."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        con = sqlite3.connect(path, isolation_level=None)
        con.execute(f"PRAGMA page_size={PAGE_BYTES}")
        con.execute("PRAGMA journal_mode=DELETE")  # commits land in the main file at once
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(
            """
            CREATE TABLE accounts (aid INTEGER PRIMARY KEY, bid INT, abalance INT, filler TEXT);
            CREATE TABLE tellers (tid INTEGER PRIMARY KEY, bid INT, tbalance INT, filler TEXT);
            CREATE TABLE branches (bid INTEGER PRIMARY KEY, bbalance INT, filler TEXT);
            CREATE TABLE history (tid INT, bid INT, aid INT, delta INT, mtime TEXT, filler TEXT);
            """
        )
        con.execute("BEGIN")
        con.executemany(
            "INSERT INTO accounts VALUES (?, 1, ?, ?)",
            ((aid, rng.randrange(-5000, 5000), " " * 84) for aid in range(1, ACCOUNTS + 1)),
        )
        con.executemany(
            "INSERT INTO tellers VALUES (?, 1, 0, ?)",
            ((tid, " " * 84) for tid in range(1, TELLERS + 1)),
        )
        con.executemany(
            "INSERT INTO branches VALUES (?, 0, ?)",
            ((bid, " " * 88) for bid in range(1, BRANCHES + 1)),
        )
        con.execute("COMMIT")

        before = _pages(path)
        con.execute("UPDATE accounts SET abalance = abalance + 17 WHERE aid = ?", (ACCOUNTS // 2,))
        after = _pages(path)
        update_one = list(_page_changes(before, after))

        tpcb: list[tuple[bytes | None, bytes]] = []
        for _ in range(TPCB_TRANSACTIONS):
            aid = rng.randint(1, ACCOUNTS)
            tid = rng.randint(1, TELLERS)
            bid = rng.randint(1, BRANCHES)
            amount = rng.randint(-5000, 5000)
            before = after
            con.execute("BEGIN")
            con.execute("UPDATE accounts SET abalance = abalance + ? WHERE aid = ?", (amount, aid))
            con.execute("SELECT abalance FROM accounts WHERE aid = ?", (aid,)).fetchone()
            con.execute("UPDATE tellers SET tbalance = tbalance + ? WHERE tid = ?", (amount, tid))
            con.execute("UPDATE branches SET bbalance = bbalance + ? WHERE bid = ?", (amount, bid))
            con.execute(
                "INSERT INTO history VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, ?)",
                (tid, bid, aid, amount, " " * 22),
            )
            con.execute("COMMIT")
            after = _pages(path)
            tpcb.extend(_page_changes(before, after))
        con.close()
    return {"sqlite_update_one_row": update_one, "sqlite_tpcb": tpcb}


# --- measuring -----------------------------------------------------------------------------


def _us_per_op(call: Callable[[], object], batches: int = TIMING_BATCHES) -> list[float]:
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(TIMING_BATCH):
            call()
        samples.append((time.perf_counter_ns() - start) / TIMING_BATCH / 1000)
    return samples


def _p(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True, slots=True)
class Measurement:
    format: str
    blob_bytes: int  # the self-describing encode() blob, tag byte included
    encode_us_p50: float
    encode_us_p99: float
    apply_us_p50: float


def measure(old: bytes | None, new: bytes, batches: int = TIMING_BATCHES) -> Measurement:
    blob = delta.encode(old, new)
    assert delta.apply(old, blob) == new
    encode_us = _us_per_op(lambda: delta.encode_delta(old, new), batches)
    fmt, payload = delta.encode_delta(old, new)
    apply_us = _us_per_op(lambda: delta.apply_delta(old, fmt, payload), batches)
    return Measurement(
        fmt.name, len(blob), _p(encode_us, 0.5), _p(encode_us, 0.99), _p(apply_us, 0.5)
    )


def _varint_len(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def reference_patch_bytes(old: bytes, new: bytes, gap_merge_max: int) -> int:
    """PATCH size for a given merge gap, computed the slow obvious way."""
    runs: list[list[int]] = []
    for i in range(len(new)):
        if old[i] != new[i]:
            if runs and i - runs[-1][1] <= gap_merge_max:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
    size = _varint_len(len(new)) + _varint_len(len(runs))
    previous_end = 0
    for start, end in runs:
        size += _varint_len(start - previous_end) + _varint_len(end - start) + end - start
        previous_end = end
    return size


def _xor(old: bytes, new: bytes) -> bytes:
    return (int.from_bytes(old, "little") ^ int.from_bytes(new, "little")).to_bytes(
        len(new), "little"
    )


def sweep(pairs: list[tuple[bytes, bytes]]) -> None:
    print(f"\nmerge-gap sweep over {len(pairs)} page changes (total PATCH bytes):")
    for gap in range(9):
        total = sum(reference_patch_bytes(old, new, gap) for old, new in pairs)
        print(f"  gap_merge_max={gap}: {total} bytes")
    print("\nzstd level sweep (total XOR_ZSTD bytes, compress us p50 per page):")
    xors = [_xor(old, new) for old, new in pairs]
    for level in (-5, -1, 1, 3, 6):
        params = zstandard.ZstdCompressionParameters.from_level(
            level, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=False,
            write_checksum=False, write_dict_id=False,
        )
        compress = zstandard.ZstdCompressor(compression_params=params).compress
        total = sum(len(compress(x)) for x in xors)
        us = statistics.median(
            _p(_us_per_op(functools.partial(compress, x), 20), 0.5) for x in xors[:60]
        )
        print(f"  level={level}: {total} bytes, {us:.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="also sweep merge gap and level")
    args = parser.parse_args()
    rng = random.Random(SEED)

    print(f"{'workload':<24} {'format':<9} {'bytes':>6} {'ratio':>7} "
          f"{'enc p50':>8} {'enc p99':>8} {'apply p50':>9}  (us)")
    results: dict[str, Measurement] = {}
    for name, (old, new) in synthetic_pairs(rng).items():
        result = results[name] = measure(old, new)
        print(f"{name:<24} {result.format:<9} {result.blob_bytes:>6} "
              f"{PAGE_BYTES / result.blob_bytes:>7.1f} {result.encode_us_p50:>8.2f} "
              f"{result.encode_us_p99:>8.2f} {result.apply_us_p50:>9.2f}")

    sqlite_ratios: dict[str, float] = {}
    sqlite_encode_us: list[float] = []
    sqlite_apply_us: list[float] = []
    diffable: list[tuple[bytes, bytes]] = []
    for name, changes in sqlite_pairs(rng).items():
        full = sum(len(new) for _, new in changes)
        encoded = [delta.encode(old, new) for old, new in changes]
        for (base, page), blob in zip(changes, encoded, strict=True):
            assert delta.apply(base, blob) == page
        formats = Counter(delta.DeltaFormat(blob[0]).name for blob in encoded)
        delta_bytes = sum(len(blob) for blob in encoded)
        sqlite_ratios[name] = full / delta_bytes
        for base, page in changes[:200]:
            if base is not None:
                result = measure(base, page, batches=10)
                sqlite_encode_us.append(result.encode_us_p50)
                sqlite_apply_us.append(result.apply_us_p50)
        diffable += [(base, page) for base, page in changes if base is not None]
        sizes = sorted(len(blob) for blob in encoded)
        print(f"{name:<24} {len(changes)} pages changed, {full} bytes as pages, {delta_bytes} "
              f"as deltas (ratio {full / delta_bytes:.1f}); bytes per page p50 "
              f"{sizes[len(sizes) // 2]} max {sizes[-1]}; formats {dict(formats)}")
    print(f"sqlite page deltas: encode p50 {statistics.median(sqlite_encode_us):.2f} us, "
          f"apply p50 {statistics.median(sqlite_apply_us):.2f} us")

    if args.sweep:
        synthetic = [(old, new) for old, new in synthetic_pairs(random.Random(SEED)).values()]
        sweep(diffable + synthetic)

    oltp = results["oltp"]
    print(json.dumps({
        "bench": "delta",
        "page_bytes": PAGE_BYTES,
        "encode_us_p50": round(oltp.encode_us_p50, 2),
        "encode_us_p99": round(oltp.encode_us_p99, 2),
        "apply_us_p50": round(oltp.apply_us_p50, 2),
        "bytes_oltp": oltp.blob_bytes,
        "format_oltp": oltp.format,
        "ratio_full_over_delta_oltp": round(PAGE_BYTES / oltp.blob_bytes, 1),
        "ratio_full_over_delta_sqlite_update_one_row":
            round(sqlite_ratios["sqlite_update_one_row"], 1),
        "ratio_full_over_delta_sqlite_tpcb": round(sqlite_ratios["sqlite_tpcb"], 1),
        "sqlite_encode_us_p50": round(statistics.median(sqlite_encode_us), 2),
        "sqlite_apply_us_p50": round(statistics.median(sqlite_apply_us), 2),
        "gap_merge_max": delta.GAP_MERGE_MAX,
        "zstd_level": delta.ZSTD_LEVEL,
    }))


if __name__ == "__main__":
    main()
