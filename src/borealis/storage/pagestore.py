"""The page-version store: materialised page images of a storage node's segments.

A storage node keeps redo in its log (``storage/redolog.py``) and, in the background,
coalesces it into page *versions*: the full image of a page as of an LSN. A read at a read
point is answered from the newest version at or below it (plus any newer redo still in the
log). This module owns only that store; it knows nothing about redo or quorums.

Every backend sits behind the ``PageStore`` protocol (DESIGN decision 5): ``MemoryPageStore``
for tests and the simulator, ``LmdbPageStore`` and ``SqlitePageStore`` on disk. Which one the
node uses is decided by ``bench/pagestore.py``.

Integrity: each version is stored with a CRC32 (``zlib.crc32``) over its identity
(segment key, page, LSN) and its image, and every read of an image verifies it: a mismatch
raises ``CorruptionError`` naming segment, page and LSN, and the node repairs the version
from a peer. Images are stored uncompressed, so that a test (or an operator) can find a known
byte pattern in the data file and flip a byte inside it.

Durability: ``put_versions`` (and ``put_meta``, ``gc``, ``delete_version``, ``drop_segment``)
is atomic; it is durable once ``sync()`` returns. The node trims its redo log only past what
a ``sync()`` has made durable here.

Limits shared by all backends: a segment key is a non-empty string without NUL; stored pages
and LSNs are in ``[0, 2**63)`` (SQLite integers are signed); a query LSN may be anything up to
``LSN_MAX``.
"""

from __future__ import annotations

import bisect
import logging
import os
import sqlite3
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import lmdb

from borealis.errors import CorruptionError, StorageError
from borealis.types import LSN_MAX

log = logging.getLogger(__name__)

T = TypeVar("T")

STORED_INT_MAX = 2**63 - 1
"""Highest page number or LSN a version may carry (SQLite's INTEGER is signed 64-bit)."""

SEGMENT_KEY_BYTES_MAX = 256
"""UTF-8 length bound of a segment key (LMDB keys are at most 511 bytes)."""

META_KEY_BYTES_MAX = 256

ITER_PAGES_BATCH_MAX = 256
"""Pages ``iter_pages`` reads per transaction: no transaction stays open across a yield."""

WRITE_KEYS_PER_TXN_MAX = 10_000
"""Keys ``gc`` and ``drop_segment`` scan in one write transaction, to bound its size."""

_PAGE_LSN = struct.Struct(">QQ")
_PAGE = struct.Struct(">Q")
_CRC = struct.Struct("<I")

Version = tuple[str, int, int, bytes]
"""(segment_key, page, lsn, image): one materialised page version."""


def _identity(segment_key: str, page: int, lsn: int) -> bytes:
    """The bytes that name a version: also the LMDB key, and covered by the CRC."""
    return segment_key.encode() + b"\0" + _PAGE_LSN.pack(page, lsn)


def version_crc(segment_key: str, page: int, lsn: int, image: bytes) -> int:
    """The CRC stored beside a version: over its identity and its image."""
    return zlib.crc32(image, zlib.crc32(_identity(segment_key, page, lsn)))


def _check_segment_key(segment_key: str) -> None:
    assert isinstance(segment_key, str)
    assert segment_key, "a segment key must not be empty"
    assert "\0" not in segment_key, "a segment key must not contain NUL"
    assert len(segment_key.encode()) <= SEGMENT_KEY_BYTES_MAX, "segment key too long"


def _check_page(page: int) -> None:
    assert 0 <= page <= STORED_INT_MAX, f"page {page} out of range"


def _check_meta_key(key: str) -> None:
    assert isinstance(key, str)
    assert key, "a meta key must not be empty"
    assert len(key.encode()) <= META_KEY_BYTES_MAX, "meta key too long"


def _check_version(segment_key: str, page: int, lsn: int, image: bytes) -> None:
    _check_segment_key(segment_key)
    _check_page(page)
    assert 0 <= lsn <= STORED_INT_MAX, f"version lsn {lsn} out of range"
    assert isinstance(image, bytes | bytearray | memoryview)


def _check_query_lsn(lsn: int) -> None:
    assert 0 <= lsn <= LSN_MAX, f"query lsn {lsn} out of range"


def _verified(segment_key: str, page: int, lsn: int, crc: int, image: bytes) -> bytes:
    if version_crc(segment_key, page, lsn, image) != crc:
        raise CorruptionError(
            f"page store: version segment={segment_key} page={page} lsn={lsn}: CRC mismatch"
        )
    return image


def _each_version_at(store: PageStore, segment_key: str, pages: Iterable[int],
                     lsn: int) -> dict[int, tuple[int, bytes]]:
    """``get_versions_at`` one ``get_version_at`` at a time."""
    found: dict[int, tuple[int, bytes]] = {}
    for page in pages:
        version = store.get_version_at(segment_key, page, lsn)
        if version is not None:
            found[page] = version
    return found


class PageStore(Protocol):
    """Materialised page versions of the segments a storage node hosts, plus its metadata."""

    def put_versions(self, items: Iterable[Version], *,
                     meta: dict[str, bytes] | None = None) -> None:
        """Write versions (and ``meta``) in one atomic transaction; a repeated key overwrites."""
        ...

    def get_version_at(self, segment_key: str, page: int, lsn: int) -> tuple[int, bytes] | None:
        """(version_lsn, image) of the newest version with version_lsn <= lsn, CRC verified."""
        ...

    def get_versions_at(self, segment_key: str, pages: Iterable[int],
                        lsn: int) -> dict[int, tuple[int, bytes]]:
        """``get_version_at`` of each page (all at ``lsn``) in one read: the pages that have
        a version there, mapped to it. Coalescing reads its bases this way: one transaction
        a pass rather than one a record."""
        ...

    def versions(self, segment_key: str, page: int) -> list[int]:
        """The version LSNs kept for a page, ascending."""
        ...

    def gc(self, segment_key: str, below_lsn: int) -> int:
        """Delete, for every page, the versions older than its newest one <= below_lsn.

        That newest one stays: it is what a read at ``below_lsn`` sees. Returns how many were
        deleted.
        """
        ...

    def delete_version(self, segment_key: str, page: int, lsn: int) -> bool:
        """Delete one version (repair drops a corrupt one); whether it existed."""
        ...

    def drop_segment(self, segment_key: str) -> int:
        """Delete every version of a segment; how many there were."""
        ...

    def iter_pages(self, segment_key: str, upto_lsn: int) -> Iterator[tuple[int, int, bytes]]:
        """(page, version_lsn, image) of the newest version <= upto_lsn of every page.

        Pages ascending, CRC verified. Used to rebuild a segment on another node. Runs in
        several read transactions: the caller must not ``gc`` the segment above ``upto_lsn``
        while it iterates.
        """
        ...

    def get_meta(self, key: str) -> bytes | None: ...

    def put_meta(self, items: dict[str, bytes]) -> None: ...

    def sync(self) -> None:
        """Make every write so far durable."""
        ...

    def close(self) -> None: ...


# --- in memory -----------------------------------------------------------------------------

_Key = tuple[str, int, int]


class MemoryPageStore:
    """The page store in memory, for unit tests and the simulator.

    By default a write is kept from the moment ``put_versions`` returns: a killed process
    loses nothing from the file-backed stores either (their commits are in the OS page
    cache). With ``lose_unsynced_on_crash=True`` the store models a machine crash instead:
    it keeps an undo record of every change until the next ``sync()`` (so the caller must
    sync regularly), and ``crash()`` undoes them. ``flip_bit`` corrupts a stored image
    (keeping its CRC) for fault injection; the file-backed stores are corrupted by flipping
    bytes in their files.
    """

    def __init__(self, *, lose_unsynced_on_crash: bool = False) -> None:
        self.lose_unsynced_on_crash = lose_unsynced_on_crash
        self._lock = threading.Lock()
        self._versions: dict[_Key, tuple[int, bytes]] = {}  # -> (crc, image)
        self._lsns: dict[tuple[str, int], list[int]] = {}  # (segment, page) -> lsns sorted
        self._pages: dict[str, set[int]] = {}  # segment -> pages with at least one version
        self._meta: dict[str, bytes] = {}
        # Undo records since the last sync, newest last: (versions key | meta key, old value).
        self._undo: list[tuple[_Key | str, tuple[int, bytes] | bytes | None]] = []
        self._closed = False

    # -- the primitive mutations, undoable ------------------------------------------------

    def _set_version(self, key: _Key, value: tuple[int, bytes] | None) -> None:
        segment_key, page, lsn = key
        old = self._versions.get(key)
        if self.lose_unsynced_on_crash:
            self._undo.append((key, old))
        if value is None:
            if old is None:
                return
            lsns = self._lsns[(segment_key, page)]
            del self._versions[key]
            lsns.remove(lsn)
            if not lsns:
                del self._lsns[(segment_key, page)]
                self._pages[segment_key].discard(page)
                if not self._pages[segment_key]:
                    del self._pages[segment_key]
            return
        self._versions[key] = value
        if old is None:
            bisect.insort(self._lsns.setdefault((segment_key, page), []), lsn)
            self._pages.setdefault(segment_key, set()).add(page)

    def _set_meta(self, key: str, value: bytes | None) -> None:
        if self.lose_unsynced_on_crash:
            self._undo.append((key, self._meta.get(key)))
        if value is None:
            self._meta.pop(key, None)
        else:
            self._meta[key] = value

    # -- PageStore ------------------------------------------------------------------------

    def put_versions(self, items: Iterable[Version], *,
                     meta: dict[str, bytes] | None = None) -> None:
        batch = list(items)
        for segment_key, page, lsn, image in batch:
            _check_version(segment_key, page, lsn, image)
        for key in meta or {}:
            _check_meta_key(key)
        with self._lock:
            assert not self._closed
            for segment_key, page, lsn, image in batch:
                image = bytes(image)
                crc = version_crc(segment_key, page, lsn, image)
                self._set_version((segment_key, page, lsn), (crc, image))
            for key, value in (meta or {}).items():
                self._set_meta(key, bytes(value))

    def get_version_at(self, segment_key: str, page: int, lsn: int) -> tuple[int, bytes] | None:
        _check_segment_key(segment_key)
        _check_page(page)
        _check_query_lsn(lsn)
        with self._lock:
            assert not self._closed
            lsns = self._lsns.get((segment_key, page))
            if not lsns:
                return None
            index = bisect.bisect_right(lsns, lsn)
            if index == 0:
                return None
            version_lsn = lsns[index - 1]
            crc, image = self._versions[(segment_key, page, version_lsn)]
        return version_lsn, _verified(segment_key, page, version_lsn, crc, image)

    def get_versions_at(self, segment_key: str, pages: Iterable[int],
                        lsn: int) -> dict[int, tuple[int, bytes]]:
        return _each_version_at(self, segment_key, pages, lsn)

    def versions(self, segment_key: str, page: int) -> list[int]:
        _check_segment_key(segment_key)
        _check_page(page)
        with self._lock:
            return list(self._lsns.get((segment_key, page), []))

    def gc(self, segment_key: str, below_lsn: int) -> int:
        _check_segment_key(segment_key)
        _check_query_lsn(below_lsn)
        deleted = 0
        with self._lock:
            assert not self._closed
            for page in sorted(self._pages.get(segment_key, ())):
                lsns = self._lsns[(segment_key, page)]
                keep_index = bisect.bisect_right(lsns, below_lsn) - 1
                for lsn in lsns[: max(keep_index, 0)]:
                    self._set_version((segment_key, page, lsn), None)
                    deleted += 1
        return deleted

    def delete_version(self, segment_key: str, page: int, lsn: int) -> bool:
        _check_segment_key(segment_key)
        _check_page(page)
        assert 0 <= lsn <= STORED_INT_MAX, f"version lsn {lsn} out of range"
        with self._lock:
            assert not self._closed
            if (segment_key, page, lsn) not in self._versions:
                return False
            self._set_version((segment_key, page, lsn), None)
            return True

    def drop_segment(self, segment_key: str) -> int:
        _check_segment_key(segment_key)
        with self._lock:
            assert not self._closed
            keys = [
                (segment_key, page, lsn)
                for page in self._pages.get(segment_key, set())
                for lsn in self._lsns[(segment_key, page)]
            ]
            for key in keys:
                self._set_version(key, None)
            assert segment_key not in self._pages
            return len(keys)

    def iter_pages(self, segment_key: str, upto_lsn: int) -> Iterator[tuple[int, int, bytes]]:
        _check_segment_key(segment_key)
        _check_query_lsn(upto_lsn)
        with self._lock:
            pages = sorted(self._pages.get(segment_key, ()))
        for page in pages:
            found = self.get_version_at(segment_key, page, upto_lsn)
            if found is not None:
                yield page, found[0], found[1]

    def get_meta(self, key: str) -> bytes | None:
        _check_meta_key(key)
        with self._lock:
            return self._meta.get(key)

    def put_meta(self, items: dict[str, bytes]) -> None:
        for key in items:
            _check_meta_key(key)
        with self._lock:
            assert not self._closed
            for key, value in items.items():
                self._set_meta(key, bytes(value))

    def sync(self) -> None:
        with self._lock:
            self._undo.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    # -- fault injection ------------------------------------------------------------------

    def crash(self) -> int:
        """Undo every change since the last ``sync``; return how many changes were undone."""
        assert self.lose_unsynced_on_crash, "crash() needs lose_unsynced_on_crash=True"
        with self._lock:
            undo, self._undo = self._undo, []
            for key, old in reversed(undo):
                if isinstance(key, str):
                    assert old is None or isinstance(old, bytes)
                    self._set_meta(key, old)
                else:
                    assert old is None or isinstance(old, tuple)
                    self._set_version(key, old)
            self._undo.clear()
            self._closed = False
            return len(undo)

    def flip_bit(self, segment_key: str, page: int, lsn: int, bit: int = 0) -> None:
        """Flip one bit of a stored image, keeping the old CRC (a bit rot)."""
        with self._lock:
            crc, image = self._versions[(segment_key, page, lsn)]
            data = bytearray(image or b"\0")
            data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
            self._versions[(segment_key, page, lsn)] = (crc, bytes(data))


# --- LMDB ----------------------------------------------------------------------------------

LMDB_MAP_SIZE_DEFAULT = 256 * 2**20
LMDB_MAP_SIZE_MAX_DEFAULT = 4 * 2**40


class LmdbPageStore:
    """The page store in an LMDB environment in the directory ``path`` (``data.mdb``).

    Layout: database ``versions`` maps ``segment_key NUL page(u64 BE) lsn(u64 BE)`` to
    ``crc(u32 LE) image``, so the image is the value from byte 4 on, uncompressed; big-endian
    numbers make a cursor's ``set_range`` land next to the newest version <= lsn. Database
    ``meta`` maps UTF-8 keys to values. A 4 KiB image does not fit in a leaf: LMDB puts it in
    two overflow pages of its own, contiguous in the file (so about 8 KiB on disk a version).

    Durability: opened with ``metasync=False``: a commit fdatasyncs the data pages but not
    the meta page that points at them, and ``sync()`` (``env.sync(True)``) flushes that
    meta page. A crash before ``sync()`` may undo the last commits but never corrupts the
    environment (LMDB's documented guarantee for MDB_NOMETASYNC), and the node never trims
    redo past a ``sync()``. ``sync=False`` (MDB_NOSYNC) is not used: without ordered writes
    a crash could corrupt the environment.

    Map growth: the map starts at ``map_size`` and doubles on ``MapFullError`` up to
    ``map_size_max``; the failed transaction is retried. LMDB allows a resize only while
    this process has no transaction open, which the store's lock guarantees: every
    transaction is opened and closed under it, none is left open across a yield. One process
    per environment (LMDB forbids opening one twice in a process).
    """

    def __init__(self, path: str | os.PathLike[str], *, map_size: int = LMDB_MAP_SIZE_DEFAULT,
                 map_size_max: int = LMDB_MAP_SIZE_MAX_DEFAULT) -> None:
        assert 0 < map_size <= map_size_max
        self.path = Path(path)
        self.map_size_max = map_size_max
        self._lock = threading.Lock()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._env = lmdb.open(
                str(self.path), map_size=map_size, subdir=True, max_dbs=2,
                metasync=False, sync=True, readahead=False, lock=True,
            )
            self._versions = self._env.open_db(b"versions")
            self._meta = self._env.open_db(b"meta")
        except lmdb.Error as exc:
            raise _lmdb_error(exc, f"page store {self.path}: cannot open") from exc
        except OSError as exc:
            raise StorageError(f"page store {self.path}: cannot open: {exc}") from exc
        self._closed = False

    @property
    def data_path(self) -> Path:
        """The file that holds every version (for tests that flip bytes in it)."""
        return self.path / "data.mdb"

    @property
    def map_size(self) -> int:
        return int(self._env.info()["map_size"])

    # -- transactions ---------------------------------------------------------------------

    def _write(self, body: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``body`` in one write transaction, growing the map and retrying when full."""
        with self._lock:
            assert not self._closed
            while True:
                try:
                    with self._env.begin(write=True) as txn:
                        return body(txn)
                except lmdb.MapFullError:
                    self._grow()
                except lmdb.Error as exc:
                    raise _lmdb_error(exc, f"page store {self.path}: write failed") from exc

    def _read(self, body: Callable[[lmdb.Transaction], T]) -> T:
        with self._lock:
            assert not self._closed
            try:
                with self._env.begin(write=False) as txn:
                    return body(txn)
            except lmdb.Error as exc:
                raise _lmdb_error(exc, f"page store {self.path}: read failed") from exc

    def _grow(self) -> None:
        current = self.map_size
        if current >= self.map_size_max:
            raise StorageError(
                f"page store {self.path}: full at map_size_max={self.map_size_max} bytes"
            )
        new = min(current * 2, self.map_size_max)
        self._env.set_mapsize(new)
        log.info("page store map grown path=%s map_size=%d", self.path, new)

    # -- PageStore ------------------------------------------------------------------------

    def put_versions(self, items: Iterable[Version], *,
                     meta: dict[str, bytes] | None = None) -> None:
        rows: list[tuple[bytes, bytes]] = []
        for segment_key, page, lsn, image in items:
            _check_version(segment_key, page, lsn, image)
            image = bytes(image)
            crc = version_crc(segment_key, page, lsn, image)
            rows.append((_identity(segment_key, page, lsn), _CRC.pack(crc) + image))
        for key in meta or {}:
            _check_meta_key(key)
        meta_rows = [(key.encode(), bytes(value)) for key, value in (meta or {}).items()]

        def body(txn: lmdb.Transaction) -> None:
            for key, value in rows:
                txn.put(key, value, db=self._versions)
            for key, value in meta_rows:
                txn.put(key, value, db=self._meta)

        self._write(body)

    def get_version_at(self, segment_key: str, page: int, lsn: int) -> tuple[int, bytes] | None:
        return self.get_versions_at(segment_key, (page,), lsn).get(page)

    def get_versions_at(self, segment_key: str, pages: Iterable[int],
                        lsn: int) -> dict[int, tuple[int, bytes]]:
        _check_segment_key(segment_key)
        _check_query_lsn(lsn)
        prefix = segment_key.encode() + b"\0"
        queries: list[tuple[int, bytes, bytes]] = []
        for page in pages:
            _check_page(page)
            page_prefix = prefix + _PAGE.pack(page)
            queries.append((page, page_prefix, page_prefix + _PAGE.pack(lsn)))

        def body(txn: lmdb.Transaction) -> list[tuple[int, int, bytes]]:
            cursor = txn.cursor(db=self._versions)
            found: list[tuple[int, int, bytes]] = []
            for page, page_prefix, target in queries:
                if cursor.set_range(target):
                    if cursor.key() != target and not cursor.prev():
                        continue
                elif not cursor.last():
                    continue
                key = bytes(cursor.key())
                if len(key) != len(target) or not key.startswith(page_prefix):
                    continue
                version_lsn = _PAGE.unpack_from(key, len(page_prefix))[0]
                found.append((page, version_lsn, bytes(cursor.value())))
            return found

        # CRCs are verified outside the store's lock.
        return {
            page: (version_lsn, _lmdb_image(segment_key, page, version_lsn, value))
            for page, version_lsn, value in self._read(body)
        }

    def versions(self, segment_key: str, page: int) -> list[int]:
        _check_segment_key(segment_key)
        _check_page(page)
        page_prefix = segment_key.encode() + b"\0" + _PAGE.pack(page)

        def body(txn: lmdb.Transaction) -> list[int]:
            cursor = txn.cursor(db=self._versions)
            lsns: list[int] = []
            if not cursor.set_range(page_prefix):
                return lsns
            for raw in cursor.iternext(keys=True, values=False):
                key = bytes(raw)
                if not key.startswith(page_prefix):
                    break
                lsns.append(_PAGE.unpack_from(key, len(page_prefix))[0])
            return lsns

        return self._read(body)

    def gc(self, segment_key: str, below_lsn: int) -> int:
        _check_segment_key(segment_key)
        _check_query_lsn(below_lsn)
        prefix = segment_key.encode() + b"\0"
        # The newest key <= below_lsn seen so far of the page being scanned: it stays unless
        # a newer one <= below_lsn of the same page turns up. It may span transactions.
        candidate: bytes | None = None
        resume: bytes | None = prefix
        deleted = 0
        while resume is not None:
            start, kept = resume, candidate

            def body(txn: lmdb.Transaction, start: bytes = start, kept: bytes | None = kept
                     ) -> tuple[bytes | None, bytes | None, int]:
                return self._gc_batch(txn, prefix, start, kept, below_lsn)

            resume, candidate, count = self._write(body)
            deleted += count
        return deleted

    def _gc_batch(self, txn: lmdb.Transaction, prefix: bytes, start: bytes,
                  candidate: bytes | None, below_lsn: int
                  ) -> tuple[bytes | None, bytes | None, int]:
        """Scan up to WRITE_KEYS_PER_TXN_MAX keys from ``start``; (resume, candidate, deleted).

        Pure in its arguments, so ``_write`` may rerun it after growing the map.
        """
        doomed: list[bytes] = []
        cursor = txn.cursor(db=self._versions)
        resume: bytes | None = None
        if cursor.set_range(start):
            for scanned, raw in enumerate(cursor.iternext(keys=True, values=False)):
                key = bytes(raw)
                if not key.startswith(prefix):
                    break
                if scanned >= WRITE_KEYS_PER_TXN_MAX:
                    resume = key
                    break
                if candidate is not None and candidate[:-8] != key[:-8]:
                    candidate = None  # the first key of another page
                if _PAGE.unpack_from(key, len(key) - 8)[0] <= below_lsn:
                    if candidate is not None:
                        doomed.append(candidate)
                    candidate = key
        # Deleting after the scan keeps the cursor away from keys that vanish under it.
        for key in doomed:
            deleted = txn.delete(key, db=self._versions)
            assert deleted
        return resume, candidate, len(doomed)

    def delete_version(self, segment_key: str, page: int, lsn: int) -> bool:
        _check_segment_key(segment_key)
        _check_page(page)
        assert 0 <= lsn <= STORED_INT_MAX, f"version lsn {lsn} out of range"
        key = _identity(segment_key, page, lsn)
        return self._write(lambda txn: bool(txn.delete(key, db=self._versions)))

    def drop_segment(self, segment_key: str) -> int:
        _check_segment_key(segment_key)
        prefix = segment_key.encode() + b"\0"

        def body(txn: lmdb.Transaction) -> int:
            cursor = txn.cursor(db=self._versions)
            count = 0
            if not cursor.set_range(prefix):
                return count
            while count < WRITE_KEYS_PER_TXN_MAX and bytes(cursor.key()).startswith(prefix):
                count += 1
                if not cursor.delete():
                    break
            return count

        dropped = 0
        while True:
            count = self._write(body)
            dropped += count
            if count < WRITE_KEYS_PER_TXN_MAX:
                return dropped

    def iter_pages(self, segment_key: str, upto_lsn: int) -> Iterator[tuple[int, int, bytes]]:
        _check_segment_key(segment_key)
        _check_query_lsn(upto_lsn)
        prefix = segment_key.encode() + b"\0"
        resume: bytes | None = prefix
        while resume is not None:
            start = resume

            def body(txn: lmdb.Transaction, start: bytes = start
                     ) -> tuple[list[tuple[int, int, bytes]], bytes | None]:
                batch: list[tuple[int, int, bytes]] = []
                cursor = txn.cursor(db=self._versions)
                if not cursor.set_range(start):
                    return batch, None
                best: bytes | None = None  # newest key <= upto_lsn of the current page
                page: int | None = None
                for raw in cursor.iternext(keys=True, values=False):
                    key = bytes(raw)
                    if not key.startswith(prefix):
                        break
                    key_page, key_lsn = _PAGE_LSN.unpack_from(key, len(prefix))
                    if key_page != page:
                        if best is not None:
                            batch.append(self._pick(txn, segment_key, best, len(prefix)))
                            best = None
                        if len(batch) >= ITER_PAGES_BATCH_MAX:
                            return batch, prefix + _PAGE.pack(key_page)
                        page = key_page
                    if key_lsn <= upto_lsn:
                        best = key
                if best is not None:
                    batch.append(self._pick(txn, segment_key, best, len(prefix)))
                return batch, None

            batch, resume = self._read(body)
            yield from batch

    def _pick(self, txn: lmdb.Transaction, segment_key: str, key: bytes,
              prefix_bytes: int) -> tuple[int, int, bytes]:
        page, lsn = _PAGE_LSN.unpack_from(key, prefix_bytes)
        value = txn.get(key, db=self._versions)
        assert value is not None
        return page, lsn, _lmdb_image(segment_key, page, lsn, bytes(value))

    def get_meta(self, key: str) -> bytes | None:
        _check_meta_key(key)
        value = self._read(lambda txn: txn.get(key.encode(), db=self._meta))
        return None if value is None else bytes(value)

    def put_meta(self, items: dict[str, bytes]) -> None:
        self.put_versions((), meta=items)

    def sync(self) -> None:
        with self._lock:
            assert not self._closed
            try:
                self._env.sync(True)
            except lmdb.Error as exc:
                raise _lmdb_error(exc, f"page store {self.path}: sync failed") from exc

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._env.close()
                self._closed = True

    def copy_to(self, path: str | os.PathLike[str]) -> int:
        """Write a consistent copy of the environment as of its last commit to the file
        ``path`` (a ``data.mdb`` that ``lmdb.open(..., subdir=False)`` opens as is); return
        its size in bytes. Under the store's lock: no commit and no map resize meanwhile.
        For checkpoints (``storage/crashmodel.py``) and offline copies."""
        with self._lock:
            assert not self._closed
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except OSError as exc:
                raise StorageError(f"page store {self.path}: cannot copy to {path}: "
                                   f"{exc}") from exc
            try:
                self._env.copyfd(fd)
                return os.fstat(fd).st_size
            except lmdb.Error as exc:
                raise _lmdb_error(exc, f"page store {self.path}: copy failed") from exc
            finally:
                os.close(fd)


def _lmdb_image(segment_key: str, page: int, lsn: int, value: bytes) -> bytes:
    if len(value) < _CRC.size:
        raise CorruptionError(
            f"page store: version segment={segment_key} page={page} lsn={lsn}: value too short"
        )
    (crc,) = _CRC.unpack_from(value)
    return _verified(segment_key, page, lsn, crc, bytes(value[_CRC.size :]))


def _lmdb_error(exc: lmdb.Error, what: str) -> StorageError:
    if isinstance(exc, lmdb.CorruptedError | lmdb.PageNotFoundError | lmdb.InvalidError):
        return CorruptionError(f"{what}: {exc}")
    return StorageError(f"{what}: {exc}")


# --- SQLite --------------------------------------------------------------------------------

SQLITE_FILE_NAME = "pages.sqlite"

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    segment TEXT NOT NULL,
    page INTEGER NOT NULL,
    lsn INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    image BLOB NOT NULL,
    PRIMARY KEY (segment, page, lsn)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"""


class SqlitePageStore:
    """The page store in a SQLite database ``pages.sqlite`` in the directory ``path``.

    Table ``versions(segment, page, lsn, crc, image)`` WITHOUT ROWID, keyed by
    (segment, page, lsn): the newest version <= lsn is one index seek. Images are BLOBs,
    uncompressed; a 4 KiB image spills from its b-tree cell into an overflow page, where its
    bytes sit contiguously after the first ~1 KiB.

    Durability: WAL with ``synchronous=FULL``: a commit fsyncs the WAL once and is durable
    when it returns, so ``sync()`` has nothing left to do. (``synchronous=NORMAL`` would skip
    that fsync, but SQLite has no "fsync the WAL now" call to make ``sync()`` cheap, only a
    checkpoint, which costs more.) Closing the store checkpoints the WAL into the main file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.data_path, isolation_level=None, check_same_thread=False
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StorageError(f"page store {self.path}: journal_mode is {mode}, not wal")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SQLITE_SCHEMA)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, f"page store {self.path}: cannot open") from exc
        except OSError as exc:
            raise StorageError(f"page store {self.path}: cannot open: {exc}") from exc
        self._closed = False

    @property
    def data_path(self) -> Path:
        """The main database file (the WAL is beside it until ``close``)."""
        return self.path / SQLITE_FILE_NAME

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            assert not self._closed
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = body(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise _sqlite_error(exc, f"page store {self.path}: write failed") from exc

    def _read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            assert not self._closed
            try:
                return body(self._db)
            except sqlite3.Error as exc:
                raise _sqlite_error(exc, f"page store {self.path}: read failed") from exc

    def put_versions(self, items: Iterable[Version], *,
                     meta: dict[str, bytes] | None = None) -> None:
        rows: list[tuple[str, int, int, int, bytes]] = []
        for segment_key, page, lsn, image in items:
            _check_version(segment_key, page, lsn, image)
            image = bytes(image)
            rows.append((segment_key, page, lsn, version_crc(segment_key, page, lsn, image),
                         image))
        for key in meta or {}:
            _check_meta_key(key)
        meta_rows = [(key, bytes(value)) for key, value in (meta or {}).items()]

        def body(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta_rows)

        self._write(body)

    def get_version_at(self, segment_key: str, page: int, lsn: int) -> tuple[int, bytes] | None:
        _check_segment_key(segment_key)
        _check_page(page)
        _check_query_lsn(lsn)
        row = self._read(lambda db: db.execute(
            "SELECT lsn, crc, image FROM versions WHERE segment = ? AND page = ? AND lsn <= ? "
            "ORDER BY lsn DESC LIMIT 1",
            (segment_key, page, min(lsn, STORED_INT_MAX)),
        ).fetchone())
        if row is None:
            return None
        version_lsn, crc, image = row
        return version_lsn, _verified(segment_key, page, version_lsn, crc, image)

    def get_versions_at(self, segment_key: str, pages: Iterable[int],
                        lsn: int) -> dict[int, tuple[int, bytes]]:
        return _each_version_at(self, segment_key, pages, lsn)

    def versions(self, segment_key: str, page: int) -> list[int]:
        _check_segment_key(segment_key)
        _check_page(page)
        rows = self._read(lambda db: db.execute(
            "SELECT lsn FROM versions WHERE segment = ? AND page = ? ORDER BY lsn",
            (segment_key, page),
        ).fetchall())
        return [lsn for (lsn,) in rows]

    def gc(self, segment_key: str, below_lsn: int) -> int:
        _check_segment_key(segment_key)
        _check_query_lsn(below_lsn)
        below = min(below_lsn, STORED_INT_MAX)

        def body(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM versions AS v WHERE segment = ?1 AND lsn < ("
                "  SELECT max(w.lsn) FROM versions AS w"
                "  WHERE w.segment = ?1 AND w.page = v.page AND w.lsn <= ?2)",
                (segment_key, below),
            )
            return cursor.rowcount

        return self._write(body)

    def delete_version(self, segment_key: str, page: int, lsn: int) -> bool:
        _check_segment_key(segment_key)
        _check_page(page)
        assert 0 <= lsn <= STORED_INT_MAX, f"version lsn {lsn} out of range"
        return self._write(lambda db: db.execute(
            "DELETE FROM versions WHERE segment = ? AND page = ? AND lsn = ?",
            (segment_key, page, lsn),
        ).rowcount > 0)

    def drop_segment(self, segment_key: str) -> int:
        _check_segment_key(segment_key)
        return self._write(lambda db: db.execute(
            "DELETE FROM versions WHERE segment = ?", (segment_key,)
        ).rowcount)

    def iter_pages(self, segment_key: str, upto_lsn: int) -> Iterator[tuple[int, int, bytes]]:
        _check_segment_key(segment_key)
        _check_query_lsn(upto_lsn)
        upto = min(upto_lsn, STORED_INT_MAX)
        after_page = -1
        while True:
            start = after_page

            def body(db: sqlite3.Connection, start: int = start) -> list[tuple[int, int, int,
                                                                               bytes]]:
                newest = db.execute(
                    "SELECT page, max(lsn) FROM versions WHERE segment = ? AND page > ? "
                    "AND lsn <= ? GROUP BY page ORDER BY page LIMIT ?",
                    (segment_key, start, upto, ITER_PAGES_BATCH_MAX),
                ).fetchall()
                batch = []
                for page, lsn in newest:
                    crc, image = db.execute(
                        "SELECT crc, image FROM versions WHERE segment = ? AND page = ? "
                        "AND lsn = ?", (segment_key, page, lsn),
                    ).fetchone()
                    batch.append((page, lsn, crc, image))
                return batch

            batch = self._read(body)
            for page, lsn, crc, image in batch:
                yield page, lsn, _verified(segment_key, page, lsn, crc, image)
            if len(batch) < ITER_PAGES_BATCH_MAX:
                return
            after_page = batch[-1][0]

    def get_meta(self, key: str) -> bytes | None:
        _check_meta_key(key)
        row = self._read(lambda db: db.execute(
            "SELECT value FROM meta WHERE key = ?", (key,)
        ).fetchone())
        return None if row is None else bytes(row[0])

    def put_meta(self, items: dict[str, bytes]) -> None:
        self.put_versions((), meta=items)

    def sync(self) -> None:
        # Every commit already fsynced the WAL (synchronous=FULL): nothing is pending.
        with self._lock:
            assert not self._closed

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                try:
                    self._db.close()
                except sqlite3.Error as exc:
                    raise _sqlite_error(exc, f"page store {self.path}: close failed") from exc
                self._closed = True


def _sqlite_error(exc: sqlite3.Error, what: str) -> StorageError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return CorruptionError(f"{what}: {exc}")
    return StorageError(f"{what}: {exc}")
