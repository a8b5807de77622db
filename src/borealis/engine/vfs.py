"""SQLite's database file on the shared volume: an APSW VFS written in Python.

The main database file of every connection of an instance is the volume: SQLite page ``n``
(at file offset ``(n - 1) * page_size``) is volume page ``n - 1``, and SQLite's page size is
the volume's. Nothing is written in place. A connection's page writes are buffered in its
file object until SQLite syncs the file at commit; then, if page 1's change counter moved
(a commit, not the restore of a rolled-back transaction that had spilled pages), the
buffered pages become one redo group handed to the volume (``Backend.append``), which
returns at once with the commit LSN: SQLite releases its write lock right after, and the
session waits for durability outside SQLite (``Database``). The page images go into the
process's page cache at their new versions, pinned until durable.

Journals: ``journal_mode=MEMORY``, so the rollback journal never reaches the VFS; temporary
files (temp tables, sorts, statement journals) are in memory. Locks between the
connections of one process follow SQLite's protocol (SHARED, RESERVED, PENDING,
EXCLUSIVE) in ``LockManager``; there is only one process per volume writer.

Reads: a connection's own buffered page first, then the page cache, then the volume at the
connection's read point (the writer: the newest, read at its VDL; storage can serve it
because every newer version is pinned in the cache). Each read notes the page's version:
a session answers only once VDL covers every version it read.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import apsw

from borealis import delta as page_delta
from borealis.engine.pagecache import PageCache
from borealis.types import LSN, PageNo
from borealis.volume.writer import PageWrite

LOCK_NONE = 0
LOCK_SHARED = 1
LOCK_RESERVED = 2
LOCK_PENDING = 3
LOCK_EXCLUSIVE = 4

_CHANGE_COUNTER = slice(24, 28)
"""Page 1's file change counter: SQLite increments it in every write transaction."""
_DB_SIZE = slice(28, 32)
"""Page 1's in-header database size, in pages (big-endian)."""

SQLITE_IOCAP_POWERSAFE_OVERWRITE = 0x00001000


class Backend(Protocol):
    """What the VFS needs of the volume, called from SQL threads (blocking)."""

    page_size: int

    def read_page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        """(version, image) of ``page`` as of ``read_point`` (None: the writer's newest
        durable state, its VDL); image None if the page was never written."""
        ...

    def append(self, writes: Sequence[PageWrite]) -> LSN:
        """Hand a commit group to the volume; its commit LSN (the records have consecutive
        LSNs in the order of ``writes``). Raises if this writer is fenced."""
        ...


class LockManager:
    """SQLite's file locks between the connections of one process (unixLock's rules)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.generation = 0
        """Counts the releases a waiter may be waiting for (see ``unlock``)."""
        self._shared: set[int] = set()
        self._reserved: int | None = None
        self._pending: int | None = None
        self._exclusive: int | None = None

    def lock(self, owner: int, level: int) -> int | None:
        """Raise ``owner``'s lock to ``level``: None when granted, else the ``generation``
        at the refusal (SQLite then calls its busy handler, which waits until the
        generation moves: ``wait_for_release``; or it gives up at once where waiting could
        deadlock)."""
        with self.changed:
            if self._lock(owner, level):
                return None
            return self.generation

    def _lock(self, owner: int, level: int) -> bool:
        if level == LOCK_SHARED:
            if owner in self._shared:
                return True
            if (self._pending not in (None, owner)) or \
                    (self._exclusive not in (None, owner)):
                return False
            self._shared.add(owner)
            return True
        if level == LOCK_RESERVED:
            assert owner in self._shared, "RESERVED needs SHARED first"
            if self._reserved == owner:
                return True
            if self._reserved is not None or self._exclusive is not None:
                return False
            self._reserved = owner
            return True
        assert level == LOCK_EXCLUSIVE, level
        assert owner in self._shared, "EXCLUSIVE needs SHARED first"
        if self._exclusive == owner:
            return True
        if self._pending not in (None, owner):
            return False
        if self._reserved not in (None, owner):
            return False
        self._pending = owner  # no new SHARED lock from now on
        if self._shared - {owner}:
            return False
        self._reserved = owner
        self._exclusive = owner
        return True

    def unlock(self, owner: int, level: int) -> None:
        """Lower ``owner``'s lock. Waiters are woken only by a release they can wait for:
        a write lock (RESERVED, PENDING, EXCLUSIVE), or a SHARED lock while a writer waits
        for readers to leave. Waking them on every SHARED release made the refused
        sessions wake each other in a loop (each retry takes and drops a SHARED lock)."""
        with self.changed:
            released = owner in (self._exclusive, self._pending, self._reserved)
            if self._exclusive == owner:
                self._exclusive = None
            if self._pending == owner:
                self._pending = None
            if self._reserved == owner:
                self._reserved = None
            if level == LOCK_NONE and owner in self._shared:
                self._shared.discard(owner)
                released = released or self._pending is not None
            if released:
                self.generation += 1
                self.changed.notify_all()

    def wait_for_release(self, seen_generation: int, timeout_s: float) -> None:
        """Return once a lock was released since ``seen_generation``, or after
        ``timeout_s``. Comparing generations means a release between the refusal and
        this call is not missed."""
        with self.changed:
            if self.generation == seen_generation:
                self.changed.wait(timeout_s)

    def reserved(self) -> bool:
        with self.changed:
            return any(x is not None for x in (self._reserved, self._pending, self._exclusive))


class VolumeState:
    """What every connection of one database shares: the backend, the page cache, the locks
    and the committed size of the file."""

    def __init__(self, backend: Backend, cache: PageCache) -> None:
        self.backend = backend
        self.page_size = backend.page_size
        self.cache = cache
        self.locks = LockManager()
        self.commits = 0
        self._size_lock = threading.Lock()
        self._size_pages: int | None = None

    def page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        hit = self.cache.get(page, read_point)
        if hit is not None:
            return LSN(hit[0]), hit[1]
        version, image = self.backend.read_page(page, read_point)
        if image is not None and read_point is None:
            # The newest version at the writer's VDL is the newest there is (every newer
            # one is pinned in the cache), unless a commit landed while it was being read:
            # SQLite reads the header of a new connection before taking any lock.
            self.cache.put_if_newest(page, version, image)
        return version, image

    read_only = False

    def begin_read(self) -> LSN | None:
        """A read transaction's read point: None on the writer, which reads its newest."""
        return None

    def end_read(self, point: LSN) -> None:
        pass

    def size_pages(self, read_point: LSN | None = None) -> int:
        """The committed database size, from page 1's header (read once, then kept)."""
        with self._size_lock:
            if self._size_pages is None:
                _, image = self.page(0, None)
                self._size_pages = 0 if image is None else int.from_bytes(image[_DB_SIZE], "big")
            return self._size_pages

    def committed(self, size_pages: int) -> None:
        with self._size_lock:
            self._size_pages = size_pages


class MemoryFile:
    """A temporary file SQLite asks for (temp tables, sorts, statement journals)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def xRead(self, amount: int, offset: int) -> bytes:
        return bytes(self.data[offset:offset + amount])

    def xWrite(self, data: bytes, offset: int) -> None:
        end = offset + len(data)
        if len(self.data) < end:
            self.data.extend(bytes(end - len(self.data)))
        self.data[offset:end] = data

    def xTruncate(self, size: int) -> None:
        del self.data[size:]

    def xFileSize(self) -> int:
        return len(self.data)

    def xSync(self, flags: int) -> None:
        pass

    def xLock(self, level: int) -> None:
        pass

    def xUnlock(self, level: int) -> None:
        pass

    def xCheckReservedLock(self) -> bool:
        return False

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return 4096

    def xDeviceCharacteristics(self) -> int:
        return 0

    def xClose(self) -> None:
        self.data = bytearray()


class VolumeFile:
    """The main database file as one connection sees it."""

    def __init__(self, state: VolumeState) -> None:
        self.state = state
        self.owner = id(self)
        self.level = LOCK_NONE
        self.dirty: dict[int, bytes] = {}
        self.dirty_size: int | None = None
        self.read_point: LSN | None = None
        # Per statement, read and reset by the session: what it must wait for.
        self.max_version_read = LSN(0)
        self.commit_lsn = LSN(0)
        # An error the volume raised inside a VFS call: SQLite sees only an error code.
        self.failure: BaseException | None = None
        # The lock generation when a lock was last refused (LockManager.wait_for_release).
        self.refused_at = 0

    # -- reads and writes -------------------------------------------------------------

    def _image(self, page: int) -> bytes | None:
        image = self.dirty.get(page)
        if image is not None:
            return image
        try:
            version, image = self.state.page(page, self.read_point)
        except BaseException as exc:
            self.failure = exc
            raise
        if version > self.max_version_read:
            self.max_version_read = version
        return image

    def xRead(self, amount: int, offset: int) -> bytes:
        page_size = self.state.page_size
        out: list[bytes] = []
        while amount > 0:
            page, within = divmod(offset, page_size)
            take = min(amount, page_size - within)
            if page >= self._size_pages():
                break  # past the end: a short read, which SQLite zero-fills
            image = self._image(page)
            if image is None:
                out.append(bytes(take))
            else:
                out.append(image[within:within + take])
            amount -= take
            offset += take
        return b"".join(out)

    def xWrite(self, data: bytes, offset: int) -> None:
        page_size = self.state.page_size
        page, within = divmod(offset, page_size)
        if within == 0 and len(data) == page_size:
            self.dirty[page] = bytes(data)
        else:
            # Not at page granularity (SQLite does not do this to a database file with a
            # page-sized sector, but the VFS must not corrupt a page if it ever does).
            position = 0
            while position < len(data):
                page, within = divmod(offset + position, page_size)
                take = min(len(data) - position, page_size - within)
                existing = self._image(page) if page < self._size_pages() else None
                current = bytearray(existing if existing is not None else bytes(page_size))
                current[within:within + take] = data[position:position + take]
                self.dirty[page] = bytes(current)
                position += take
            page = (offset + len(data) - 1) // page_size
        self.dirty_size = max(self._size_pages(), page + 1)

    def xTruncate(self, size: int) -> None:
        """SQLite shrinks the file after a commit that freed pages (auto_vacuum, VACUUM):
        the committed size is already the one in that commit's page 1 header, so there
        is nothing to do then. Inside a transaction, buffered pages past the end go."""
        if not self.dirty:
            return
        pages = -(-size // self.state.page_size)
        for page in [p for p in self.dirty if p >= pages]:
            del self.dirty[page]
        self.dirty_size = pages

    def _size_pages(self) -> int:
        if self.dirty_size is not None:
            return self.dirty_size
        return self.state.size_pages(self.read_point)

    def xFileSize(self) -> int:
        return self._size_pages() * self.state.page_size

    # -- the commit point -------------------------------------------------------------

    def xSync(self, flags: int) -> None:
        if not self.dirty:
            return
        if self._is_commit():
            try:
                self._commit()
            except BaseException as exc:
                self.failure = exc
                self._discard()
                raise
        else:
            # A rolled-back transaction that had spilled pages: SQLite wrote the old
            # images back. They are what storage holds already.
            self._discard()

    def _is_commit(self) -> bool:
        page1 = self.dirty.get(0)
        if page1 is None:
            return False
        newest = self.state.cache.newest(0)
        if newest is None:
            _, committed = self.state.page(0, None)
        else:
            committed = newest[1]
        return committed is None or committed[_CHANGE_COUNTER] != page1[_CHANGE_COUNTER]

    def _commit(self) -> None:
        state = self.state
        # The size is what the commit's page 1 says (SQLite keeps it exact), not how far
        # the file was written: a commit that frees pages shrinks it.
        size = int.from_bytes(self.dirty[0][_DB_SIZE], "big")
        pages = sorted(p for p in self.dirty if p < size)
        writes: list[PageWrite] = []
        for page in pages:
            base = state.cache.newest(page)
            new = self.dirty[page]
            # The delta is made here, on the session's thread, not on the event loop.
            writes.append(PageWrite(
                PageNo(page), new,
                base=None if base is None else base[1],
                base_version=None if base is None else LSN(base[0]),
                delta=None if base is None else page_delta.encode(base[1], new),
            ))
        if not writes:
            self._discard()
            return
        lsn = state.backend.append(writes)
        first = lsn - len(writes) + 1
        for i, w in enumerate(writes):
            state.cache.put(w.page, first + i, w.new)
        state.committed(size)
        state.commits += 1
        self.commit_lsn = LSN(lsn)
        self._discard()

    def _discard(self) -> None:
        self.dirty.clear()
        self.dirty_size = None

    # -- locks ------------------------------------------------------------------------

    def xLock(self, level: int) -> None:
        if level == LOCK_PENDING:
            level = LOCK_EXCLUSIVE
        if level >= LOCK_RESERVED and self.state.read_only:
            raise apsw.ReadOnlyError("a reader (replica) is read-only")
        refused_at = self.state.locks.lock(self.owner, level)
        if refused_at is not None:
            self.refused_at = refused_at  # for the session's busy handler
            raise apsw.BusyError("the database is locked by another session")
        if self.level == LOCK_NONE:
            # A read transaction starts: on a reader, at the latest VDL it has.
            self.read_point = self.state.begin_read()
        self.level = max(self.level, level)

    def xUnlock(self, level: int) -> None:
        if level < LOCK_RESERVED:
            self._discard()  # anything buffered and never synced was not a commit
        self.state.locks.unlock(self.owner, level)
        self.level = min(self.level, level)
        if level == LOCK_NONE and self.read_point is not None:
            self.state.end_read(self.read_point)
            self.read_point = None

    def xCheckReservedLock(self) -> bool:
        return self.state.locks.reserved()

    # -- the rest ---------------------------------------------------------------------

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return self.state.page_size

    def xDeviceCharacteristics(self) -> int:
        return SQLITE_IOCAP_POWERSAFE_OVERWRITE

    def xClose(self) -> None:
        self._discard()
        if self.level != LOCK_NONE:
            self.xUnlock(LOCK_NONE)


DATABASE_FILE = "borealis.db"
"""The name every connection opens; the VFS maps it to the volume."""


class VolumeVfs(apsw.VFS):
    """Registered under ``name`` for one database: its main file is the volume."""

    def __init__(self, name: str, state: VolumeState) -> None:
        self.state = state
        self.vfs_name = name
        self.opened: list[VolumeFile] = []
        self._opened_lock = threading.Lock()
        super().__init__(name, "")

    def xOpen(self, name: Any, flags: list[int]) -> Any:
        filename = name.filename() if isinstance(name, apsw.URIFilename) else name
        if flags[0] & apsw.SQLITE_OPEN_MAIN_DB:
            if filename is None or not str(filename).endswith("/" + DATABASE_FILE):
                raise apsw.CantOpenError(f"only the volume's database can be opened: {filename}")
            file = VolumeFile(self.state)
            # What the file is opened as: SQLite marks the database read-only only from
            # these output flags.
            flags[1] = flags[0] | (apsw.SQLITE_OPEN_READONLY if self.state.read_only else 0)
            with self._opened_lock:
                self.opened.append(file)
            return file
        return MemoryFile()

    def take_opened(self) -> VolumeFile:
        """The file the connection just opened (connections are opened one at a time)."""
        with self._opened_lock:
            return self.opened.pop()

    def xAccess(self, pathname: str, flags: int) -> bool:
        # No journal, WAL or other side file ever exists: only the database itself.
        return str(pathname).endswith("/" + DATABASE_FILE)

    def xDelete(self, filename: str, syncdir: bool) -> None:
        pass
