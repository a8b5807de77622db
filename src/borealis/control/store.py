"""The coordination store: where the control plane keeps cluster, volume and membership
metadata (DESIGN decision 9), behind an interface an etcd client can implement for a fleet.

The interface is etcd's, reduced to what the control plane needs:
- a flat, ordered key space of ``str`` keys and ``bytes`` values, each write giving the
  whole store a new **revision** (a counter that only grows);
- **compare-and-set**: ``put(key, value, expected=R)`` writes only if the key's current
  modification revision is ``R`` (``expected=0``: only if the key does not exist), else
  ``ConflictError`` — the building block of leader election and of every multi-step
  transition that must not interleave with another control plane's;
- **leases**: a key written with a lease is deleted when the lease expires (it is not kept
  alive within ``ttl_s``), which is how a dead process loses what it held;
- **watches**: the events (puts and deletes) after a revision, under a prefix, in
  revision order; a watcher that falls behind the history kept gets ``CompactedError``
  and must read the current state again.

``MemoryStore`` is the in-memory implementation for tests and the simulator (its clock is
injected); ``SqliteStore`` keeps the same model in one SQLite file, safe for the processes
of one machine (SQLite's file locking; each operation is one immediate transaction), with
watches by polling the change log. Expiry uses wall-clock time there, as the processes
sharing the file share no other clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from borealis.errors import BorealisError

HISTORY_MAX = 10_000
"""Change events kept for watches; a watch that starts below them gets CompactedError."""
WATCH_POLL_S = 0.05
LEASE_TTL_S_MAX = 3600.0


class StoreError(BorealisError):
    """A coordination-store operation failed."""

    code = "store"


class ConflictError(StoreError):
    """Compare-and-set lost: the key's revision was not the one expected."""

    code = "store_conflict"

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"{key}: expected revision {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class LeaseError(StoreError):
    """The lease does not exist (it expired or was revoked)."""

    code = "store_lease"


class CompactedError(StoreError):
    """A watch asked for history older than the store keeps."""

    code = "store_compacted"


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: bytes
    revision: int          # the revision of the write that made this value
    lease: int = 0         # 0: no lease


@dataclass(frozen=True, slots=True)
class Event:
    kind: str              # "put" or "delete"
    key: str
    value: bytes           # b"" for a delete
    revision: int


class CoordinationStore(Protocol):
    """What the control plane needs from a coordination store (see the module docstring)."""

    def get(self, key: str) -> Entry | None: ...

    def range(self, prefix: str) -> list[Entry]: ...

    def put(self, key: str, value: bytes, *, expected: int | None = None,
            lease: int = 0) -> int: ...

    def delete(self, key: str, *, expected: int | None = None) -> int: ...

    def grant(self, ttl_s: float) -> int: ...

    def keepalive(self, lease: int) -> None: ...

    def revoke(self, lease: int) -> None: ...

    @property
    def revision(self) -> int: ...

    def events(self, prefix: str, after: int) -> list[Event]: ...

    def watch(self, prefix: str, after: int) -> AsyncIterator[Event]: ...


def _check_ttl(ttl_s: float) -> None:
    if not 0 < ttl_s <= LEASE_TTL_S_MAX:
        raise StoreError(f"a lease's TTL must be in (0, {LEASE_TTL_S_MAX}] s, not {ttl_s}")


class MemoryStore:
    """The coordination store in memory, with an injected clock (tests, the simulator)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, Entry] = {}
        self._leases: dict[int, tuple[float, float]] = {}  # id -> (ttl_s, expires_at)
        self._next_lease = 1
        self._revision = 0
        self._history: list[Event] = []
        self._changed = asyncio.Event()

    @property
    def revision(self) -> int:
        self._expire()
        return self._revision

    def _record(self, event: Event) -> None:
        self._history.append(event)
        if len(self._history) > HISTORY_MAX:
            del self._history[: len(self._history) - HISTORY_MAX]
        self._changed.set()

    def _expire(self) -> None:
        now = self._clock()
        for lease, (_ttl, expires_at) in list(self._leases.items()):
            if expires_at <= now:
                self._drop_lease(lease)

    def _drop_lease(self, lease: int) -> None:
        del self._leases[lease]
        for key, entry in sorted(self._entries.items()):
            if entry.lease == lease:
                self._revision += 1
                del self._entries[key]
                self._record(Event("delete", key, b"", self._revision))

    def get(self, key: str) -> Entry | None:
        self._expire()
        return self._entries.get(key)

    def range(self, prefix: str) -> list[Entry]:
        self._expire()
        return [e for k, e in sorted(self._entries.items()) if k.startswith(prefix)]

    def put(self, key: str, value: bytes, *, expected: int | None = None,
            lease: int = 0) -> int:
        self._expire()
        current = self._entries.get(key)
        actual = current.revision if current is not None else 0
        if expected is not None and expected != actual:
            raise ConflictError(key, expected, actual)
        if lease and lease not in self._leases:
            raise LeaseError(f"lease {lease} does not exist")
        self._revision += 1
        self._entries[key] = Entry(key, bytes(value), self._revision, lease)
        self._record(Event("put", key, bytes(value), self._revision))
        return self._revision

    def delete(self, key: str, *, expected: int | None = None) -> int:
        self._expire()
        current = self._entries.get(key)
        actual = current.revision if current is not None else 0
        if expected is not None and expected != actual:
            raise ConflictError(key, expected, actual)
        if current is None:
            return self._revision
        self._revision += 1
        del self._entries[key]
        self._record(Event("delete", key, b"", self._revision))
        return self._revision

    def grant(self, ttl_s: float) -> int:
        _check_ttl(ttl_s)
        self._expire()
        lease = self._next_lease
        self._next_lease += 1
        self._leases[lease] = (ttl_s, self._clock() + ttl_s)
        return lease

    def keepalive(self, lease: int) -> None:
        self._expire()
        if lease not in self._leases:
            raise LeaseError(f"lease {lease} does not exist")
        ttl_s, _ = self._leases[lease]
        self._leases[lease] = (ttl_s, self._clock() + ttl_s)

    def revoke(self, lease: int) -> None:
        self._expire()
        if lease in self._leases:
            self._drop_lease(lease)

    def events(self, prefix: str, after: int) -> list[Event]:
        self._expire()
        if self._history and after < self._history[0].revision - 1:
            raise CompactedError(f"revision {after} is compacted (oldest kept: "
                                 f"{self._history[0].revision})")
        return [e for e in self._history if e.revision > after and e.key.startswith(prefix)]

    async def watch(self, prefix: str, after: int) -> AsyncIterator[Event]:
        while True:
            self._changed.clear()
            found = self.events(prefix, after)
            for event in found:
                yield event
                after = event.revision
            if not found:
                # leases expire by the clock, not by a write: look again after a while
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), WATCH_POLL_S)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('next_lease', 1);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,
                               revision INTEGER NOT NULL, lease INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl_s REAL NOT NULL,
                                   expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (revision INTEGER PRIMARY KEY, kind TEXT NOT NULL,
                                   key TEXT NOT NULL, value BLOB NOT NULL);
"""


class SqliteStore:
    """The coordination store in one SQLite file, shared by the processes of a machine."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time,
                 busy_timeout_s: float = 10.0) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    # -- one immediate transaction per operation --------------------------------------
    class _Tx:
        def __init__(self, store: SqliteStore) -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._db

        def __exit__(self, kind: object, exc: object, tb: object) -> None:
            try:
                self.store._db.execute("COMMIT" if kind is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _transaction(self) -> SqliteStore._Tx:
        return SqliteStore._Tx(self)

    def _bump(self, db: sqlite3.Connection) -> int:
        db.execute("UPDATE meta SET value = value + 1 WHERE name = 'revision'")
        return int(db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0])

    def _event(self, db: sqlite3.Connection, kind: str, key: str, value: bytes,
               revision: int) -> None:
        db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (revision, kind, key, value))
        db.execute("DELETE FROM events WHERE revision <= ?", (revision - HISTORY_MAX,))

    def _expire(self, db: sqlite3.Connection) -> None:
        now = self._clock()
        for (lease,) in db.execute("SELECT id FROM leases WHERE expires_at <= ?",
                                   (now,)).fetchall():
            self._drop_lease(db, lease)

    def _drop_lease(self, db: sqlite3.Connection, lease: int) -> None:
        db.execute("DELETE FROM leases WHERE id = ?", (lease,))
        for (key,) in db.execute("SELECT key FROM kv WHERE lease = ? ORDER BY key",
                                 (lease,)).fetchall():
            revision = self._bump(db)
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            self._event(db, "delete", key, b"", revision)

    @staticmethod
    def _entry(row: tuple[str, bytes, int, int] | None) -> Entry | None:
        if row is None:
            return None
        return Entry(row[0], bytes(row[1]), int(row[2]), int(row[3]))

    # -- the interface ------------------------------------------------------------------
    @property
    def revision(self) -> int:
        with self._transaction() as db:
            self._expire(db)
            return int(db.execute("SELECT value FROM meta WHERE name = 'revision'"
                                  ).fetchone()[0])

    def get(self, key: str) -> Entry | None:
        with self._transaction() as db:
            self._expire(db)
            return self._entry(db.execute("SELECT key, value, revision, lease FROM kv "
                                          "WHERE key = ?", (key,)).fetchone())

    def range(self, prefix: str) -> list[Entry]:
        with self._transaction() as db:
            self._expire(db)
            rows = db.execute("SELECT key, value, revision, lease FROM kv WHERE key >= ? "
                              "ORDER BY key", (prefix,)).fetchall()
        out = []
        for row in rows:
            if not row[0].startswith(prefix):
                break
            entry = self._entry(row)
            assert entry is not None
            out.append(entry)
        return out

    def put(self, key: str, value: bytes, *, expected: int | None = None,
            lease: int = 0) -> int:
        with self._transaction() as db:
            self._expire(db)
            row = db.execute("SELECT revision FROM kv WHERE key = ?", (key,)).fetchone()
            actual = int(row[0]) if row is not None else 0
            if expected is not None and expected != actual:
                raise ConflictError(key, expected, actual)
            if lease and db.execute("SELECT 1 FROM leases WHERE id = ?",
                                    (lease,)).fetchone() is None:
                raise LeaseError(f"lease {lease} does not exist")
            revision = self._bump(db)
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)",
                       (key, bytes(value), revision, lease))
            self._event(db, "put", key, bytes(value), revision)
            return revision

    def delete(self, key: str, *, expected: int | None = None) -> int:
        with self._transaction() as db:
            self._expire(db)
            row = db.execute("SELECT revision FROM kv WHERE key = ?", (key,)).fetchone()
            actual = int(row[0]) if row is not None else 0
            if expected is not None and expected != actual:
                raise ConflictError(key, expected, actual)
            if row is None:
                return int(db.execute("SELECT value FROM meta WHERE name = 'revision'"
                                      ).fetchone()[0])
            revision = self._bump(db)
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
            self._event(db, "delete", key, b"", revision)
            return revision

    def grant(self, ttl_s: float) -> int:
        _check_ttl(ttl_s)
        with self._transaction() as db:
            self._expire(db)
            lease = int(db.execute("SELECT value FROM meta WHERE name = 'next_lease'"
                                   ).fetchone()[0])
            db.execute("UPDATE meta SET value = value + 1 WHERE name = 'next_lease'")
            db.execute("INSERT INTO leases VALUES (?, ?, ?)",
                       (lease, ttl_s, self._clock() + ttl_s))
            return lease

    def keepalive(self, lease: int) -> None:
        with self._transaction() as db:
            self._expire(db)
            row = db.execute("SELECT ttl_s FROM leases WHERE id = ?", (lease,)).fetchone()
            if row is None:
                raise LeaseError(f"lease {lease} does not exist")
            db.execute("UPDATE leases SET expires_at = ? WHERE id = ?",
                       (self._clock() + float(row[0]), lease))

    def revoke(self, lease: int) -> None:
        with self._transaction() as db:
            self._expire(db)
            if db.execute("SELECT 1 FROM leases WHERE id = ?", (lease,)).fetchone():
                self._drop_lease(db, lease)

    def events(self, prefix: str, after: int) -> list[Event]:
        with self._transaction() as db:
            self._expire(db)
            oldest = db.execute("SELECT min(revision) FROM events").fetchone()[0]
            if oldest is not None and after < int(oldest) - 1:
                raise CompactedError(f"revision {after} is compacted (oldest kept: {oldest})")
            rows = db.execute("SELECT kind, key, value, revision FROM events "
                              "WHERE revision > ? ORDER BY revision", (after,)).fetchall()
        return [Event(kind, key, bytes(value), int(revision))
                for kind, key, value, revision in rows if key.startswith(prefix)]

    async def watch(self, prefix: str, after: int) -> AsyncIterator[Event]:
        while True:
            found = await asyncio.to_thread(self.events, prefix, after)
            for event in found:
                yield event
                after = event.revision
            if not found:
                await asyncio.sleep(WATCH_POLL_S)
