"""The page-version store: the same behaviour from the memory, LMDB and SQLite backends."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from borealis.errors import CorruptionError
from borealis.storage import pagestore
from borealis.storage.pagestore import (
    LmdbPageStore,
    MemoryPageStore,
    PageStore,
    SqlitePageStore,
)
from borealis.types import LSN_MAX

SEG = "vol1/pg0/s1"
OTHER = "vol1/pg0/s10"  # a segment key that extends SEG: no prefix may leak between them


def image(page: int, lsn: int) -> bytes:
    return (f"page={page} lsn={lsn};".encode() * 300)[:4096]


class Opener:
    """Opens the store under test; for file backends each call reopens the same files."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.opened: list[PageStore] = []
        self._memory = MemoryPageStore()

    def __call__(self) -> PageStore:
        store: PageStore
        if self.kind == "memory":
            store = self._memory
        elif self.kind == "lmdb":
            store = LmdbPageStore(self.path, map_size=2**20)
        else:
            store = SqlitePageStore(self.path)
        self.opened.append(store)
        return store


@pytest.fixture(params=["memory", "lmdb", "sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    open_store = Opener(request.param, tmp_path / "pages")
    yield open_store
    for store in open_store.opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> PageStore:
    return opener()


def put(store: PageStore, segment: str, page: int, *lsns: int) -> None:
    store.put_versions((segment, page, lsn, image(page, lsn)) for lsn in lsns)


def test_get_version_at_is_the_newest_version_at_or_below(store: PageStore) -> None:
    put(store, SEG, 0, 1)
    put(store, SEG, 1, 10, 20, 30)
    put(store, SEG, 2, 15)
    put(store, OTHER, 1, 5)
    assert store.get_version_at(SEG, 1, 9) is None  # page 0's version must not leak in
    assert store.get_version_at(SEG, 1, 10) == (10, image(1, 10))
    assert store.get_version_at(SEG, 1, 19) == (10, image(1, 10))
    assert store.get_version_at(SEG, 1, 20) == (20, image(1, 20))
    assert store.get_version_at(SEG, 1, 1000) == (30, image(1, 30))
    assert store.get_version_at(SEG, 1, LSN_MAX) == (30, image(1, 30))
    assert store.get_version_at(SEG, 2, 14) is None
    assert store.get_version_at(SEG, 3, LSN_MAX) is None  # past the last key
    assert store.get_version_at(OTHER, 1, 7) == (5, image(1, 5))
    assert store.get_version_at(OTHER, 0, LSN_MAX) is None
    assert store.get_version_at("vol1/pg0/s", 1, LSN_MAX) is None
    assert store.versions(SEG, 1) == [10, 20, 30]
    assert store.versions(SEG, 9) == []


def test_a_repeated_version_overwrites(store: PageStore) -> None:
    put(store, SEG, 1, 10)
    store.put_versions([(SEG, 1, 10, b"new")])
    assert store.get_version_at(SEG, 1, 10) == (10, b"new")
    assert store.versions(SEG, 1) == [10]


def test_gc_keeps_the_version_visible_at_below_lsn(store: PageStore) -> None:
    put(store, SEG, 1, 10, 20, 30)
    put(store, SEG, 2, 5)
    put(store, SEG, 3, 25, 40)
    put(store, SEG, 4, 50)
    put(store, OTHER, 1, 1, 2, 3)
    reads = [(page, lsn) for page in range(1, 5) for lsn in (25, 26, 30, 45, LSN_MAX)]
    before = [store.get_version_at(SEG, page, lsn) for page, lsn in reads]

    # PGMRPL-style GC: nothing a read at or above below_lsn can see may go.
    assert store.gc(SEG, 25) == 1  # only page 1's lsn 10: 20 is what a read at 25 sees
    assert store.versions(SEG, 1) == [20, 30]
    assert store.versions(SEG, 2) == [5]
    assert store.versions(SEG, 3) == [25, 40]
    assert store.versions(SEG, 4) == [50]
    assert store.versions(OTHER, 1) == [1, 2, 3]
    assert [store.get_version_at(SEG, page, lsn) for page, lsn in reads] == before
    assert store.gc(SEG, 25) == 0
    assert store.gc(SEG, LSN_MAX) == 2
    assert store.versions(SEG, 1) == [30]
    assert store.versions(SEG, 3) == [40]


def test_iter_pages_yields_the_newest_version_of_each_page(store: PageStore) -> None:
    put(store, SEG, 3, 10, 20)
    put(store, SEG, 1, 5)
    put(store, SEG, 2, 30)  # nothing at or below 25
    put(store, OTHER, 0, 1)
    assert list(store.iter_pages(SEG, 25)) == [(1, 5, image(1, 5)), (3, 20, image(3, 20))]
    assert [(page, lsn) for page, lsn, _ in store.iter_pages(SEG, LSN_MAX)] == [
        (1, 5), (2, 30), (3, 20),
    ]
    assert list(store.iter_pages("vol9/pg0/s0", LSN_MAX)) == []


def test_meta_alone_and_with_versions(store: PageStore) -> None:
    assert store.get_meta("scl") is None
    store.put_meta({"scl": b"1", "epoch": b"7"})
    assert store.get_meta("scl") == b"1"
    store.put_versions([(SEG, 1, 10, image(1, 10))], meta={"scl": b"10"})
    assert store.get_meta("scl") == b"10"
    assert store.get_meta("epoch") == b"7"
    assert store.versions(SEG, 1) == [10]


def test_delete_version_and_drop_segment(store: PageStore) -> None:
    put(store, SEG, 1, 10, 20)
    put(store, SEG, 2, 10)
    put(store, OTHER, 1, 10)
    assert store.delete_version(SEG, 1, 20) is True
    assert store.delete_version(SEG, 1, 20) is False
    assert store.get_version_at(SEG, 1, 25) == (10, image(1, 10))
    assert store.drop_segment(SEG) == 2
    assert store.versions(SEG, 1) == []
    assert list(store.iter_pages(SEG, LSN_MAX)) == []
    assert store.versions(OTHER, 1) == [10]
    assert store.drop_segment(SEG) == 0


def test_versions_persist_across_close_and_reopen(opener: Opener) -> None:
    if opener.kind == "memory":
        pytest.skip("the memory store does not outlive its process")
    store = opener()
    put(store, SEG, 1, 10, 20)
    store.put_meta({"scl": b"20"})
    store.sync()
    store.close()
    store = opener()
    assert store.versions(SEG, 1) == [10, 20]
    assert store.get_version_at(SEG, 1, 15) == (10, image(1, 10))
    assert store.get_meta("scl") == b"20"


def test_against_a_naive_model(opener: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random puts, reads, GCs and rebuild scans agree with a dict of lists."""
    # Small batches make gc, drop_segment and iter_pages cross transaction boundaries.
    monkeypatch.setattr(pagestore, "WRITE_KEYS_PER_TXN_MAX", 7)
    monkeypatch.setattr(pagestore, "ITER_PAGES_BATCH_MAX", 3)
    store = opener()
    rng = random.Random(20240501)
    model: dict[tuple[str, int], dict[int, bytes]] = {}
    segments = [SEG, OTHER]
    lsn = 0

    def newest(segment: str, page: int, at: int) -> tuple[int, bytes] | None:
        lsns = [v for v in model.get((segment, page), {}) if v <= at]
        return (max(lsns), model[(segment, page)][max(lsns)]) if lsns else None

    for _ in range(300):
        action = rng.random()
        if action < 0.5:
            batch = []
            for _ in range(rng.randrange(1, 6)):
                lsn += rng.randrange(1, 4)
                segment, page = rng.choice(segments), rng.randrange(12)
                data = rng.randbytes(rng.randrange(0, 64))
                batch.append((segment, page, lsn, data))
                model.setdefault((segment, page), {})[lsn] = data
            store.put_versions(batch)
        elif action < 0.8:
            segment, page, at = rng.choice(segments), rng.randrange(12), rng.randrange(lsn + 2)
            assert store.get_version_at(segment, page, at) == newest(segment, page, at)
        elif action < 0.95:
            segment, below = rng.choice(segments), rng.randrange(lsn + 2)
            expected = 0
            for (seg, page), versions in model.items():
                kept = newest(seg, page, below)
                if seg != segment or kept is None:
                    continue
                for old in [v for v in versions if v < kept[0]]:
                    del versions[old]
                    expected += 1
            assert store.gc(segment, below) == expected
        else:
            segment, upto = rng.choice(segments), rng.randrange(lsn + 2)
            expected_pages = []
            for page in range(12):
                found = newest(segment, page, upto)
                if found is not None:
                    expected_pages.append((page, found[0], found[1]))
            assert list(store.iter_pages(segment, upto)) == expected_pages
    for (segment, page), versions in model.items():
        assert store.versions(segment, page) == sorted(versions)
    dropped = store.drop_segment(SEG)
    assert dropped == sum(len(v) for (seg, _), v in model.items() if seg == SEG)


# --- corruption: bytes flipped on disk are caught by the CRC on read -----------------------

MARKER = b"<<borealis-flip>>"


def test_a_byte_flipped_in_the_data_file_is_a_corruption_error(opener: Opener) -> None:
    if opener.kind == "memory":
        pytest.skip("the memory store has no file; see test_memory_flip_bit")
    store = opener()
    victim = (MARKER * 241)[:4096]
    for page in range(8):
        put(store, SEG, page, 10)
    store.put_versions([(SEG, 3, 20, victim)])
    store.sync()
    store.close()

    assert isinstance(store, LmdbPageStore | SqlitePageStore)
    data = bytearray(store.data_path.read_bytes())
    hits = 0
    position = data.find(MARKER)
    while position != -1:
        data[position + 5] ^= 0x01  # inside the image, never in the B-tree structure
        hits += 1
        position = data.find(MARKER, position + len(MARKER))
    assert hits >= 200  # the image is in this file, uncompressed
    store.data_path.write_bytes(bytes(data))

    store = opener()
    with pytest.raises(CorruptionError) as caught:
        store.get_version_at(SEG, 3, 25)
    for part in (f"segment={SEG}", "page=3", "lsn=20"):
        assert part in str(caught.value)
    with pytest.raises(CorruptionError):
        list(store.iter_pages(SEG, LSN_MAX))
    # The rest of the store is intact, and repair can replace the bad version.
    assert store.get_version_at(SEG, 3, 15) == (10, image(3, 10))
    assert store.get_version_at(SEG, 4, 25) == (10, image(4, 10))
    assert store.delete_version(SEG, 3, 20) is True
    store.put_versions([(SEG, 3, 20, victim)])
    assert store.get_version_at(SEG, 3, 25) == (20, victim)
    assert len(list(store.iter_pages(SEG, LSN_MAX))) == 8


def test_memory_flip_bit_is_a_corruption_error() -> None:
    store = MemoryPageStore()
    put(store, SEG, 1, 10)
    store.flip_bit(SEG, 1, 10, bit=77)
    with pytest.raises(CorruptionError, match="page=1 lsn=10"):
        store.get_version_at(SEG, 1, 10)


def test_memory_crash_undoes_everything_since_the_last_sync() -> None:
    store = MemoryPageStore(lose_unsynced_on_crash=True)
    put(store, SEG, 1, 10, 20)
    store.put_meta({"scl": b"20"})
    store.sync()
    put(store, SEG, 1, 30)
    put(store, SEG, 2, 30)
    store.put_meta({"scl": b"30", "new": b"x"})
    store.gc(SEG, LSN_MAX)
    store.drop_segment(OTHER)
    assert store.crash() > 0
    assert store.versions(SEG, 1) == [10, 20]
    assert store.versions(SEG, 2) == []
    assert store.get_meta("scl") == b"20"
    assert store.get_meta("new") is None
    assert store.get_version_at(SEG, 1, 25) == (20, image(1, 20))


def test_memory_store_keeps_no_undo_unless_asked() -> None:
    store = MemoryPageStore()  # a process crash: nothing committed is lost
    put(store, SEG, 1, 10)
    assert store._undo == []
    with pytest.raises(AssertionError):
        store.crash()


def test_lmdb_map_grows_when_full_and_reopens(tmp_path: Path) -> None:
    store = LmdbPageStore(tmp_path, map_size=2**20)
    for batch in range(20):
        store.put_versions(
            (SEG, page, batch + 1, image(page, batch + 1)) for page in range(64)
        )
    assert store.map_size > 2**20
    store.sync()
    store.close()
    store = LmdbPageStore(tmp_path, map_size=2**20)  # smaller than the data: LMDB adopts it
    try:
        assert store.get_version_at(SEG, 63, 20) == (20, image(63, 20))
        store.put_versions([(SEG, 0, 100, image(0, 100))])
        assert store.versions(SEG, 0)[-1] == 100
    finally:
        store.close()


def test_bad_arguments_are_refused(store: PageStore) -> None:
    with pytest.raises(AssertionError):
        store.put_versions([("", 1, 1, b"x")])
    with pytest.raises(AssertionError):
        store.put_versions([("a\0b", 1, 1, b"x")])
    with pytest.raises(AssertionError):
        store.put_versions([(SEG, 1, 2**63, b"x")])
    with pytest.raises(AssertionError):
        store.get_version_at(SEG, 1, -1)
    with pytest.raises(AssertionError):
        store.get_version_at(SEG, -1, 1)
    with pytest.raises(AssertionError):
        store.put_meta({"": b"x"})
    with pytest.raises(AssertionError):
        store.put_versions([], meta={"k" * 1000: b"x"})
    with pytest.raises(AssertionError):
        store.get_meta("")
