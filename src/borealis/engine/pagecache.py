"""The per-process page cache of a database instance: page images keyed by (page, version).

Every connection of an instance shares one cache (DESIGN decision 7). An entry is the image
of a page at one version (the LSN of the record that made it) together with how far it is
known to stay current: ``valid_to`` is the last LSN at which no newer version of the page
exists (``None``: up to now, as far as this process knows). A lookup at a read point
returns the newest entry at or below it only if that entry is still valid there; otherwise
it is a miss and the caller reads the page from storage at the read point.

Who keeps ``valid_to`` true:
- the writer puts every version it commits (``put`` closes the previous one's range), and
  reads of pages it did not write come from storage as the newest version at its VDL;
- a reader patches the entries that the redo stream touches, and closes (``supersede``)
  the range of a page whose new version it cannot build.

Entries are evicted least recently used beyond ``bytes_max``, except pinned ones: versions
above ``pin_above`` (on the writer, what is not durable yet: storage could not serve them
back). ``gc(oldest_read_point)`` drops versions no read at or above that point can see.
Thread-safe: SQL runs in worker threads.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass

CACHE_BYTES_DEFAULT = 64 * 2**20


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    gced: int = 0

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass(slots=True)
class _Entry:
    image: bytes
    valid_to: int | None


class PageCache:
    def __init__(self, bytes_max: int = CACHE_BYTES_DEFAULT) -> None:
        assert bytes_max >= 0
        self.bytes_max = bytes_max
        self.bytes = 0
        self.pin_above = 2**63
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._versions: dict[int, list[int]] = {}  # page -> versions held, ascending
        self._entries: OrderedDict[tuple[int, int], _Entry] = OrderedDict()  # LRU order

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, page: int, read_point: int | None = None) -> tuple[int, bytes] | None:
        """(version, image) of ``page`` as of ``read_point`` (None: the newest), or None."""
        with self._lock:
            versions = self._versions.get(page)
            if versions:
                if read_point is None:
                    i = len(versions)
                else:
                    i = bisect.bisect_right(versions, read_point)
                if i:
                    version = versions[i - 1]
                    entry = self._entries[(page, version)]
                    # The newest (read_point None) must still be open-ended: an older
                    # entry whose successor was evicted is not the newest.
                    if entry.valid_to is None or (
                        read_point is not None and entry.valid_to >= read_point
                    ):
                        self._entries.move_to_end((page, version))
                        self.stats.hits += 1
                        return version, entry.image
            self.stats.misses += 1
            return None

    def newest(self, page: int) -> tuple[int, bytes] | None:
        """The newest entry of ``page`` whatever its validity, without counting a lookup."""
        with self._lock:
            versions = self._versions.get(page)
            if not versions:
                return None
            version = versions[-1]
            entry = self._entries[(page, version)]
            return version, entry.image

    def put(self, page: int, version: int, image: bytes, *, valid_to: int | None = None,
            newest: bool = True) -> None:
        """Cache ``page`` at ``version``. ``newest``: no newer version is known, so the
        entry below it stops being valid just before ``version``."""
        with self._lock:
            self._put(page, version, image, valid_to, newest)

    def put_if_newest(self, page: int, version: int, image: bytes) -> bool:
        """``put`` as the newest version unless a newer one is cached by now (a commit that
        landed while this version was being read from storage), checked and done under
        one lock. Returns whether it was cached."""
        with self._lock:
            versions = self._versions.get(page)
            if versions and versions[-1] > version:
                return False
            self._put(page, version, image, None, True)
            return True

    def _put(self, page: int, version: int, image: bytes, valid_to: int | None,
             newest: bool) -> None:
        """``put`` under the lock."""
        versions = self._versions.setdefault(page, [])
        key = (page, version)
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old.image)
        else:
            bisect.insort(versions, version)
        i = bisect.bisect_left(versions, version)
        if newest:
            assert i == len(versions) - 1, f"page {page}: a newer version than {version}"
            if i:
                below = self._entries[(page, versions[i - 1])]
                if below.valid_to is None or below.valid_to >= version:
                    below.valid_to = version - 1
        self._entries[key] = _Entry(image, valid_to)
        self.bytes += len(image)
        self._evict()

    def supersede(self, page: int, version: int) -> None:
        """A version ``version`` of ``page`` exists that the cache does not hold: entries
        below it are valid at most up to just before it."""
        with self._lock:
            versions = self._versions.get(page)
            if not versions:
                return
            i = bisect.bisect_left(versions, version)
            if i:
                below = self._entries[(page, versions[i - 1])]
                if below.valid_to is None or below.valid_to >= version:
                    below.valid_to = version - 1

    def close_open(self, lsn: int) -> int:
        """No entry is known valid past ``lsn`` any more (a reader missed part of the
        redo stream): close every open-ended one there. Returns how many."""
        closed = 0
        with self._lock:
            for page, versions in self._versions.items():
                entry = self._entries[(page, versions[-1])]
                if entry.valid_to is None or entry.valid_to > lsn:
                    entry.valid_to = max(lsn, versions[-1])
                    closed += 1
        return closed

    def drop_page(self, page: int) -> None:
        with self._lock:
            for version in self._versions.pop(page, []):
                entry = self._entries.pop((page, version))
                self.bytes -= len(entry.image)

    def clear(self) -> None:
        with self._lock:
            self._versions.clear()
            self._entries.clear()
            self.bytes = 0

    def gc(self, oldest_read_point: int) -> int:
        """Drop the versions that no read at or above ``oldest_read_point`` can see: those
        whose validity ends below it. Returns how many were dropped."""
        dropped = 0
        with self._lock:
            for page in list(self._versions):
                versions = self._versions[page]
                keep: list[int] = []
                for version in versions:
                    entry = self._entries[(page, version)]
                    if entry.valid_to is not None and entry.valid_to < oldest_read_point:
                        del self._entries[(page, version)]
                        self.bytes -= len(entry.image)
                        dropped += 1
                    else:
                        keep.append(version)
                if keep:
                    self._versions[page] = keep
                else:
                    del self._versions[page]
            self.stats.gced += dropped
        return dropped

    def _evict(self) -> None:
        """Least recently used first, skipping pinned entries (under the lock)."""
        if self.bytes <= self.bytes_max:
            return
        skipped: list[tuple[int, int]] = []
        while self.bytes > self.bytes_max and self._entries:
            key, entry = self._entries.popitem(last=False)
            if key[1] > self.pin_above:
                skipped.append(key)
                self._entries[key] = entry  # back at the recent end
                if len(skipped) >= len(self._entries):
                    break  # everything left is pinned
                continue
            page, version = key
            versions = self._versions[page]
            versions.remove(version)
            if not versions:
                del self._versions[page]
            self.bytes -= len(entry.image)
            self.stats.evictions += 1
