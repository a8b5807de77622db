"""The engine's page cache: validity ranges, LRU eviction by bytes, pinning, gc and stats.

The example tests pin down each rule; the property test runs random operations against a
model built from the page histories themselves (which version of a page is current at each
LSN), not from the cache's own bookkeeping: every hit must be the version and image that
history says, and, when nothing can be evicted, a lookup must hit exactly when the cache was
given that version and told about every newer one.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borealis.engine.pagecache import CACHE_BYTES_DEFAULT, CacheStats, PageCache


def image(page: int, version: int, size: int = 100) -> bytes:
    """A page image that says which (page, version) it is, ``size`` bytes long."""
    stamp = f"p{page}v{version}|".encode()
    return (stamp * (size // len(stamp) + 1))[:size]


# --- lookups at read points ----------------------------------------------------------------


def test_empty_cache_misses() -> None:
    cache = PageCache()
    assert cache.bytes_max == CACHE_BYTES_DEFAULT
    assert cache.get(0) is None
    assert cache.get(0, 10) is None
    assert cache.newest(0) is None
    assert len(cache) == 0
    assert cache.bytes == 0


def test_newest_entry_is_open_ended() -> None:
    cache = PageCache()
    cache.put(3, 10, image(3, 10))
    assert cache.get(3) == (10, image(3, 10))
    assert cache.get(3, 10) == (10, image(3, 10))
    assert cache.get(3, 10**6) == (10, image(3, 10))
    # Below its first version the page did not exist as far as the cache knows: a miss.
    assert cache.get(3, 9) is None
    # Another page is not this one.
    assert cache.get(4) is None


def test_put_closes_the_previous_version_range() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    cache.put(1, 20, image(1, 20))
    assert cache.get(1) == (20, image(1, 20))
    assert cache.get(1, 25) == (20, image(1, 20))
    assert cache.get(1, 20) == (20, image(1, 20))
    # Read points in [10, 19] see version 10: its range was closed at 19, not before.
    assert cache.get(1, 19) == (10, image(1, 10))
    assert cache.get(1, 10) == (10, image(1, 10))
    assert cache.get(1, 9) is None
    assert len(cache) == 2
    assert cache.bytes == 200


def test_put_not_newest_leaves_the_range_below_alone() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    # An older version learnt from a read at a read point, with its known range.
    cache.put(1, 5, image(1, 5), valid_to=9, newest=False)
    assert cache.get(1, 7) == (5, image(1, 5))
    assert cache.get(1, 9) == (5, image(1, 5))
    assert cache.get(1) == (10, image(1, 10))
    assert cache.get(1, 10) == (10, image(1, 10))


def test_put_of_an_older_version_as_newest_is_refused() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    with pytest.raises(AssertionError):
        cache.put(1, 5, image(1, 5))


def test_put_again_replaces_the_image_and_its_bytes() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10, 100))
    cache.put(1, 10, image(1, 10, 300))
    assert cache.get(1) == (10, image(1, 10, 300))
    assert len(cache) == 1
    assert cache.bytes == 300


def test_supersede_closes_the_range_without_a_new_entry() -> None:
    cache = PageCache()
    cache.put(2, 10, image(2, 10))
    # A version 15 exists that this cache does not hold (a reader could not build it).
    cache.supersede(2, 15)
    assert cache.get(2) is None  # the newest is not cached
    assert cache.get(2, 15) is None
    assert cache.get(2, 20) is None
    assert cache.get(2, 14) == (10, image(2, 10))
    assert cache.get(2, 10) == (10, image(2, 10))
    assert len(cache) == 1
    # Once storage serves version 15 (or newer), the cache is current again.
    cache.put(2, 15, image(2, 15))
    assert cache.get(2) == (15, image(2, 15))
    assert cache.get(2, 14) == (10, image(2, 10))


def test_supersede_never_widens_a_range() -> None:
    cache = PageCache()
    cache.put(2, 10, image(2, 10))
    cache.supersede(2, 15)
    cache.supersede(2, 30)  # a later version: the range already ends at 14
    assert cache.get(2, 14) == (10, image(2, 10))
    assert cache.get(2, 15) is None
    cache.supersede(2, 12)  # learnt late: an earlier version exists, the range shrinks
    assert cache.get(2, 11) == (10, image(2, 10))
    assert cache.get(2, 12) is None
    assert cache.get(2, 14) is None


def test_supersede_between_held_versions_closes_only_the_one_below() -> None:
    cache = PageCache()
    cache.put(2, 10, image(2, 10))
    cache.put(2, 30, image(2, 30))
    cache.supersede(2, 20)
    assert cache.get(2, 19) == (10, image(2, 10))
    assert cache.get(2, 20) is None
    assert cache.get(2, 29) is None
    assert cache.get(2, 30) == (30, image(2, 30))
    assert cache.get(2) == (30, image(2, 30))


def test_supersede_of_an_unknown_page_or_below_every_version_is_a_no_op() -> None:
    cache = PageCache()
    cache.supersede(9, 5)
    assert len(cache) == 0
    cache.put(9, 10, image(9, 10))
    cache.supersede(9, 10)  # the version held itself: nothing below it
    cache.supersede(9, 3)
    assert cache.get(9) == (10, image(9, 10))


def test_close_open_ends_every_open_range_at_the_lsn() -> None:
    """A reader that missed part of the redo stream knows nothing past its position."""
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    cache.put(1, 20, image(1, 20))  # (1, 10) closed at 19 by its successor
    cache.put(2, 5, image(2, 5))
    cache.put(3, 8, image(3, 8))
    cache.supersede(3, 12)  # (3, 8) closed at 11: already below the position
    assert cache.close_open(30) == 2  # (1, 20) and (2, 5)
    assert cache.get(1) is None
    assert cache.get(1, 30) == (20, image(1, 20))
    assert cache.get(1, 31) is None
    assert cache.get(1, 19) == (10, image(1, 10))
    assert cache.get(2, 30) == (5, image(2, 5))
    assert cache.get(2, 31) is None
    assert cache.get(3, 11) == (8, image(3, 8))
    assert cache.close_open(30) == 0
    # Narrowing again: a range past the LSN ends there, but never below its own version.
    assert cache.close_open(15) == 2
    assert cache.get(2, 15) == (5, image(2, 5))
    assert cache.get(2, 16) is None
    assert cache.get(1, 20) == (20, image(1, 20))
    assert cache.get(1, 21) is None
    # A later put opens the page again.
    cache.put(2, 40, image(2, 40))
    assert cache.get(2) == (40, image(2, 40))


def test_newest_ignores_validity_and_counts_no_lookup() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    cache.supersede(1, 15)
    assert cache.newest(1) == (10, image(1, 10))
    assert cache.stats.hits == 0
    assert cache.stats.misses == 0


def test_newest_lookup_does_not_return_an_older_entry_whose_successor_was_evicted() -> None:
    # Two versions of page 1 exactly fill the cache.
    cache = PageCache(bytes_max=200)
    cache.put(1, 10, image(1, 10))
    cache.put(1, 20, image(1, 20))
    # A reader at LSN 15 touches version 10: version 20 is now the least recently used.
    assert cache.get(1, 15) == (10, image(1, 10))
    cache.put(2, 30, image(2, 30))
    assert cache.stats.evictions == 1
    assert cache.newest(1) == (10, image(1, 10))  # version 20 is the one that went
    # Version 10 is not the newest any more: the newest lookup must miss, not return it.
    assert cache.get(1) is None
    assert cache.get(1, 20) is None
    assert cache.get(1, 15) == (10, image(1, 10))
    assert cache.get(2) == (30, image(2, 30))


# --- eviction and pinning ------------------------------------------------------------------


def test_lru_eviction_by_bytes() -> None:
    cache = PageCache(bytes_max=300)
    for page in range(3):
        cache.put(page, 10 + page, image(page, 10 + page))
    assert cache.bytes == 300
    assert cache.stats.evictions == 0
    # Page 0 used: page 1 is now the least recently used.
    assert cache.get(0) is not None
    cache.put(3, 20, image(3, 20))
    assert cache.stats.evictions == 1
    assert cache.newest(1) is None
    assert {p for p in range(4) if cache.newest(p) is not None} == {0, 2, 3}
    assert cache.bytes == 300
    # A big image pushes out as many of the least recently used as it needs.
    cache.put(4, 30, image(4, 30, 250))
    assert cache.bytes <= cache.bytes_max
    assert cache.newest(4) is not None
    assert cache.newest(3) is None  # LRU order was 2, 0, 3: all three had to go
    assert cache.newest(0) is None
    assert cache.newest(2) is None
    assert cache.bytes == 250
    assert cache.stats.evictions == 4


def test_eviction_counts_bytes_not_entries() -> None:
    cache = PageCache(bytes_max=1000)
    for page in range(10):
        cache.put(page, 1, image(page, 1, 10))
    cache.put(10, 1, image(10, 1, 900))
    assert cache.stats.evictions == 0
    assert len(cache) == 11
    assert cache.bytes == 1000
    cache.put(11, 1, image(11, 1, 10))
    assert cache.stats.evictions == 1
    assert cache.newest(0) is None
    assert cache.bytes == 1000


def test_an_image_bigger_than_the_cache_is_not_kept() -> None:
    cache = PageCache(bytes_max=50)
    cache.put(1, 10, image(1, 10, 100))
    assert len(cache) == 0
    assert cache.bytes == 0
    assert cache.get(1) is None


def test_pinned_versions_are_never_evicted() -> None:
    cache = PageCache(bytes_max=300)
    cache.pin_above = 100  # versions above 100 are not durable yet
    cache.put(1, 101, image(1, 101))
    cache.put(2, 102, image(2, 102))
    cache.put(3, 50, image(3, 50))
    cache.put(4, 60, image(4, 60))  # over budget: the only unpinned victim is page 3
    assert cache.newest(3) is None
    assert cache.newest(1) == (101, image(1, 101))
    assert cache.newest(2) == (102, image(2, 102))
    assert cache.newest(4) == (60, image(4, 60))
    # Everything else pinned: the cache goes over budget rather than drop them.
    cache.put(5, 103, image(5, 103))
    cache.put(6, 104, image(6, 104))
    assert cache.newest(4) is None
    for page, version in [(1, 101), (2, 102), (5, 103), (6, 104)]:
        assert cache.newest(page) == (version, image(page, version))
    assert cache.bytes == 400
    assert cache.bytes > cache.bytes_max
    # Once durable (the pin moves up), they are evicted on the next put.
    cache.pin_above = 104
    cache.put(7, 105, image(7, 105))
    assert cache.bytes <= cache.bytes_max
    assert cache.newest(7) == (105, image(7, 105))


def test_the_pin_is_strictly_above() -> None:
    cache = PageCache(bytes_max=100)
    cache.pin_above = 10
    cache.put(1, 10, image(1, 10))  # version 10 is durable: not pinned
    cache.put(2, 11, image(2, 11))
    assert cache.newest(1) is None
    assert cache.newest(2) == (11, image(2, 11))


def test_drop_page_and_clear_release_bytes() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    cache.put(1, 20, image(1, 20, 50))
    cache.put(2, 10, image(2, 10, 70))
    cache.drop_page(1)
    assert cache.newest(1) is None
    assert cache.get(1, 15) is None
    assert cache.bytes == 70
    assert len(cache) == 1
    cache.drop_page(1)  # twice: nothing left to drop
    cache.clear()
    assert cache.bytes == 0
    assert len(cache) == 0
    assert cache.get(2) is None


# --- gc ------------------------------------------------------------------------------------


def test_gc_drops_only_versions_invalid_below_the_oldest_read_point() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10))  # valid 10..19
    cache.put(1, 20, image(1, 20))  # valid 20..29
    cache.put(1, 30, image(1, 30))  # valid from 30
    cache.put(2, 5, image(2, 5))  # valid 5..24 (superseded at 25)
    cache.supersede(2, 25)
    cache.put(3, 7, image(3, 7))  # valid from 7
    assert cache.gc(20) == 1  # only (1, 10): it ends at 19
    assert cache.get(1, 19) is None
    assert cache.get(1, 20) == (20, image(1, 20))
    assert cache.gc(20) == 0
    assert cache.gc(25) == 1  # (2, 5) ends at 24; (1, 20) still serves 25..29
    assert cache.newest(2) is None
    assert cache.get(1, 29) == (20, image(1, 20))
    assert cache.gc(10**9) == 1  # (1, 20); open-ended entries are never dropped
    assert cache.get(1) == (30, image(1, 30))
    assert cache.get(3) == (7, image(3, 7))
    assert len(cache) == 2
    assert cache.bytes == 200
    assert cache.stats.gced == 3
    assert cache.stats.evictions == 0


def test_gc_keeps_a_version_valid_exactly_at_the_oldest_read_point() -> None:
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    cache.put(1, 20, image(1, 20))  # (1, 10) valid up to 19
    assert cache.gc(19) == 0
    assert cache.get(1, 19) == (10, image(1, 10))


def test_gc_drops_pinned_versions_no_read_can_see() -> None:
    cache = PageCache()
    cache.pin_above = 0
    cache.put(1, 10, image(1, 10))
    cache.put(1, 20, image(1, 20))
    assert cache.gc(20) == 1
    assert cache.newest(1) == (20, image(1, 20))


# --- stats ---------------------------------------------------------------------------------


def test_stats_count_lookups() -> None:
    assert CacheStats().hit_ratio == 0.0
    cache = PageCache()
    cache.put(1, 10, image(1, 10))
    assert cache.get(1) is not None
    assert cache.get(1, 10) is not None
    assert cache.get(1, 12) is not None
    assert cache.get(1, 9) is None
    assert cache.stats.hits == 3
    assert cache.stats.misses == 1
    assert cache.stats.hit_ratio == pytest.approx(0.75)
    cache.newest(1)
    cache.supersede(1, 11)
    assert cache.stats.hits == 3
    assert cache.stats.misses == 1
    assert cache.get(1) is None
    assert cache.stats.hit_ratio == pytest.approx(0.6)


def test_concurrent_puts_and_gets_keep_the_byte_count() -> None:
    """SQL runs in worker threads: the lock must keep the accounting exact."""
    cache = PageCache(bytes_max=5_000)
    threads_count = 4
    puts_per_thread = 500

    def work(thread: int) -> None:
        for i in range(puts_per_thread):
            page = (thread * 7 + i) % 40
            cache.put(page, thread * puts_per_thread + i + 1, image(page, i, 50 + i % 50),
                      newest=False)
            cache.get(page)
            cache.get((page + 1) % 40, i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.bytes <= cache.bytes_max
    assert cache.stats.hits + cache.stats.misses == 2 * threads_count * puts_per_thread
    for page in range(40):
        cache.drop_page(page)
    assert cache.bytes == 0
    assert len(cache) == 0


# --- property: the cache against the pages' histories --------------------------------------


class History:
    """What really happened to every page: its versions in LSN order, and their images."""

    def __init__(self) -> None:
        self.lsn = 0
        self.versions: dict[int, list[int]] = {}
        self.images: dict[tuple[int, int], bytes] = {}

    def new_version(self, page: int, size: int) -> int:
        self.lsn += 1
        self.versions.setdefault(page, []).append(self.lsn)
        self.images[(page, self.lsn)] = image(page, self.lsn, size)
        return self.lsn

    def at(self, page: int, read_point: int | None) -> int | None:
        """The version of ``page`` current at ``read_point`` (None: the newest)."""
        versions = self.versions.get(page, [])
        if read_point is None:
            return versions[-1] if versions else None
        below = [v for v in versions if v <= read_point]
        return below[-1] if below else None

    def successor(self, page: int, version: int) -> int | None:
        later = [v for v in self.versions[page] if v > version]
        return later[0] if later else None


PAGES = 3
SIZES = st.sampled_from([10, 40, 100])
BACK = st.integers(0, 12)
"""How far back from the newest LSN a read point, a gc point or the pin is."""

operations = st.lists(
    st.one_of(
        # The writer commits a version and caches it (put closes the one below).
        st.tuples(st.just("commit"), st.integers(0, PAGES - 1), SIZES),
        # A version the cache does not get (a reader could not build it): supersede.
        st.tuples(st.just("external"), st.integers(0, PAGES - 1), SIZES),
        # A miss at the newest read from storage: its newest version is put.
        st.tuples(st.just("load"), st.integers(0, PAGES - 1), st.just(0)),
        # Lookups at a read point, and at the newest.
        st.tuples(st.just("get"), st.integers(0, PAGES - 1), BACK),
        st.tuples(st.just("get_newest"), st.integers(0, PAGES - 1), st.just(0)),
        st.tuples(st.just("gc"), st.just(0), BACK),
        # The pin follows durability: it only moves up.
        st.tuples(st.just("pin"), st.just(0), BACK),
    ),
    min_size=5,
    max_size=80,
)


class CacheChecker:
    """Runs operations on a cache and on ``History``, checking every answer.

    ``exact``: nothing can be evicted, so the checker knows which (page, version) entries
    the cache holds and every lookup must hit exactly when the version current at the read
    point is one of them. Otherwise only safety is checked: every hit is right, pinned
    versions stay, and a put evicts down to the budget.
    """

    def __init__(self, cache: PageCache, *, exact: bool, pinning: bool) -> None:
        self.cache = cache
        self.exact = exact
        self.pinning = pinning
        self.history = History()
        self.held: set[tuple[int, int]] = set()  # exact mode only
        self.live: set[tuple[int, int]] = set()  # put, and not yet due for gc
        self.lookups = 0
        self.gced = 0

    def back(self, arg: int) -> int:
        """An LSN from 0 to the newest, ``arg`` steps back (wrapping)."""
        return self.history.lsn - arg % (self.history.lsn + 1)

    def run(self, op: str, page: int, arg: int) -> None:
        cache, history = self.cache, self.history
        if op == "commit":
            version = history.new_version(page, arg)
            self.put(page, version)
        elif op == "external":
            cache.supersede(page, history.new_version(page, arg))
        elif op == "load":
            newest = history.at(page, None)
            if newest is not None:
                self.put(page, newest)
        elif op in ("get", "get_newest"):
            self.get(page, None if op == "get_newest" else self.back(arg))
        elif op == "gc":
            self.gc(self.back(arg))
        else:
            assert op == "pin"
            if self.pinning:
                cache.pin_above = max(cache.pin_above, self.back(arg))
        self.check()

    def put(self, page: int, version: int) -> None:
        self.cache.put(page, version, self.history.images[(page, version)])
        self.held.add((page, version))
        self.live.add((page, version))
        if not self.exact:
            # A put evicts down to the budget, or until everything left is pinned.
            pinned = self.pinned()
            pinned_bytes = sum(len(self.history.images[key]) for key in pinned)
            assert self.cache.bytes <= self.cache.bytes_max or (
                len(self.cache) == len(pinned) and self.cache.bytes == pinned_bytes
            )

    def get(self, page: int, read_point: int | None) -> None:
        self.lookups += 1
        got = self.cache.get(page, read_point)
        truth = self.history.at(page, read_point)
        if got is not None:
            # Safety, whatever was evicted: a hit is the version current at the read point.
            assert truth is not None
            assert got == (truth, self.history.images[(page, truth)]), (page, read_point)
        if self.exact:
            # Liveness: nothing evicted, and the cache was told of every version.
            expect_hit = truth is not None and (page, truth) in self.held
            assert (got is not None) == expect_hit, (page, read_point, truth)

    def gc(self, oldest: int) -> None:
        dropped = self.cache.gc(oldest)
        self.gced += dropped
        due = set()
        for page, version in self.live:
            successor = self.history.successor(page, version)
            if successor is not None and successor - 1 < oldest:
                due.add((page, version))
        self.live -= due
        self.held -= due
        if self.exact:
            assert dropped == len(due)
        else:
            assert dropped <= len(due)  # some were evicted already
        for page, version in due:
            # Gone: at its own version the page now misses (the version below it ended
            # before it, so nothing else can answer there).
            self.lookups += 1
            assert self.cache.get(page, version) is None, (page, version)
        if self.exact:
            for page, version in self.held:
                # Kept: still answering at the end of its range.
                successor = self.history.successor(page, version)
                last = None if successor is None else successor - 1
                self.lookups += 1
                assert self.cache.get(page, last) == (
                    version, self.history.images[(page, version)])

    def pinned(self) -> set[tuple[int, int]]:
        return {(p, v) for p, v in self.live if v > self.cache.pin_above}

    def check(self) -> None:
        cache = self.cache
        assert cache.bytes >= 0
        if self.exact:
            assert len(cache) == len(self.held)
            assert cache.bytes == sum(len(self.history.images[key]) for key in self.held)
        for page, version in self.pinned():
            # A pinned version is never evicted: still there, valid at its own version.
            self.lookups += 1
            assert cache.get(page, version) == (version, self.history.images[(page, version)])
        assert cache.stats.hits + cache.stats.misses == self.lookups
        assert cache.stats.gced == self.gced

    def finish(self) -> None:
        # The byte count never drifted: dropping everything leaves exactly nothing.
        for page in range(PAGES):
            self.cache.drop_page(page)
        assert self.cache.bytes == 0
        assert len(self.cache) == 0


@settings(max_examples=120, deadline=None)
@given(ops=operations, pinning=st.booleans())
def test_unbounded_cache_agrees_with_page_histories(ops: list[tuple[str, int, int]],
                                                    pinning: bool) -> None:
    cache = PageCache(10**9)
    if pinning:
        cache.pin_above = 0  # nothing durable yet: every version pinned until "pin"
    checker = CacheChecker(cache, exact=True, pinning=pinning)
    for op in ops:
        checker.run(*op)
    assert cache.stats.evictions == 0
    checker.finish()


@settings(max_examples=120, deadline=None)
@given(ops=operations, bytes_max=st.sampled_from([0, 60, 150, 400]), pinning=st.booleans())
def test_bounded_cache_never_answers_wrong(ops: list[tuple[str, int, int]], bytes_max: int,
                                           pinning: bool) -> None:
    cache = PageCache(bytes_max)
    if pinning:
        cache.pin_above = 0
    checker = CacheChecker(cache, exact=False, pinning=pinning)
    for op in ops:
        checker.run(*op)
    checker.finish()
