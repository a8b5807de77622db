"""SQLite on the volume through ``VolumeVfs``, with real APSW connections and a fake volume.

``FakeBackend`` is the volume as the VFS sees it: the newest version of each page at or
below a read point, commit groups given consecutive LSNs in the order of their writes. The
database lives only there: a new ``VolumeState`` with an empty page cache over the same
backend must see everything committed. What is checked: one commit is one group holding page
0 (SQLite's page 1, whose change counter moved) and exactly the pages that changed; reads
append nothing; transactions bigger than SQLite's cache (pages written before the commit)
commit whole or, rolled back, leave nothing; a commit that shrinks the file (VACUUM,
auto_vacuum) is the new size for every connection; SQLite's locks between two connections;
a volume that refuses the group fails the commit and leaves no trace; the versions a
statement read and the LSN it committed are noted for the session; a read-only state's
transactions read at its read point.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence

import apsw
import pytest

from borealis.engine.pagecache import PageCache
from borealis.engine.vfs import DATABASE_FILE, VolumeFile, VolumeState, VolumeVfs
from borealis.errors import FencedError, StorageError
from borealis.types import LSN
from borealis.volume.writer import PageWrite

PAGE_SIZE = 4096
CHANGE_COUNTER = slice(24, 28)
"""Page 1's file change counter (https://sqlite.org/fileformat.html, 1.3.8)."""

_vfs_names = itertools.count(1)


class FakeBackend:
    """An in-memory volume: every version of every page, and every commit group."""

    page_size = PAGE_SIZE

    def __init__(self) -> None:
        self.lsn = LSN(0)
        self.versions: dict[int, list[tuple[LSN, bytes]]] = {}
        self.groups: list[list[PageWrite]] = []
        self.group_lsns: list[LSN] = []
        self.reads: list[tuple[int, LSN | None]] = []
        self.append_failure: BaseException | None = None
        self.read_failure: BaseException | None = None
        self.during_next_read: Callable[[], object] | None = None
        """Run once, inside the next read, after its answer is chosen: what another
        thread may do while a read is on the network."""

    def read_page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        if self.read_failure is not None:
            raise self.read_failure
        self.reads.append((page, read_point))
        found: tuple[LSN, bytes | None] = (LSN(0), None)
        for version, image in self.versions.get(page, []):
            if read_point is None or version <= read_point:
                found = (version, image)
        during, self.during_next_read = self.during_next_read, None
        if during is not None:
            during()
        return found

    def append(self, writes: Sequence[PageWrite]) -> LSN:
        if self.append_failure is not None:
            raise self.append_failure
        assert writes
        for w in writes:
            assert len(w.new) == self.page_size
            self.lsn = LSN(self.lsn + 1)
            self.versions.setdefault(w.page, []).append((self.lsn, w.new))
        self.groups.append(list(writes))
        self.group_lsns.append(self.lsn)
        return self.lsn

    # -- for the tests --------------------------------------------------------------------

    def newest(self, page: int) -> tuple[LSN, bytes] | None:
        versions = self.versions.get(page)
        return versions[-1] if versions else None

    def snapshot(self) -> dict[int, bytes]:
        return {page: versions[-1][1] for page, versions in self.versions.items()}


class Volume:
    """One process's view of the database: a VolumeState, its VFS and its connections."""

    def __init__(self, backend: FakeBackend, state: VolumeState | None = None) -> None:
        self.backend = backend
        self.state = state if state is not None else VolumeState(backend, PageCache())
        self.vfs = VolumeVfs(f"borealis-test-vfs-{next(_vfs_names)}", self.state)
        self.connections: list[apsw.Connection] = []

    def connect(self) -> tuple[apsw.Connection, VolumeFile]:
        """A connection set up as ``Database._connect`` does, failing at once when busy."""
        conn = apsw.Connection(DATABASE_FILE, vfs=self.vfs.vfs_name,
                               flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        file = self.vfs.take_opened()
        self.connections.append(conn)
        if not self.state.read_only:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=MEMORY")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.set_busy_timeout(0)
        return conn, file

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.connections.clear()
        self.vfs.unregister()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@contextlib.contextmanager
def open_volume(backend: FakeBackend, state: VolumeState | None = None) -> Iterator[Volume]:
    volume = Volume(backend, state)
    try:
        yield volume
    finally:
        volume.close()


@pytest.fixture
def volume(backend: FakeBackend) -> Iterator[Volume]:
    with open_volume(backend) as volume:
        yield volume


def rows(conn: apsw.Connection, sql: str) -> list[tuple[object, ...]]:
    return list(conn.execute(sql))


def root_page(conn: apsw.Connection, table: str) -> int:
    """The volume page of ``table``'s b-tree root (SQLite page n is volume page n - 1)."""
    (root,), = rows(conn, f"SELECT rootpage FROM sqlite_schema WHERE name = '{table}'")
    assert isinstance(root, int)
    return root - 1


def integrity(conn: apsw.Connection) -> list[tuple[object, ...]]:
    return rows(conn, "PRAGMA integrity_check")


# --- round trip and commit groups ----------------------------------------------------------


def test_create_insert_select_round_trip(volume: Volume) -> None:
    conn, _ = volume.connect()
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row {i}",) for i in range(50)])
    assert rows(conn, "SELECT count(*), min(v), max(id) FROM t") == [(50, "row 0", 50)]
    assert rows(conn, "SELECT v FROM t WHERE id = 17") == [("row 16",)]
    assert rows(conn, "PRAGMA page_size") == [(PAGE_SIZE,)]
    assert rows(conn, "PRAGMA journal_mode") == [("memory",)]
    assert integrity(conn) == [("ok",)]


def test_each_commit_is_one_group_with_page_one_and_the_changed_pages(
        volume: Volume, backend: FakeBackend) -> None:
    conn, file = volume.connect()
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, v BLOB)")
    assert len(backend.groups) == 2
    root_t, root_u = root_page(conn, "t"), root_page(conn, "u")

    cases = [
        "INSERT INTO t (v) VALUES (randomblob(100))",
        "BEGIN; INSERT INTO t (v) VALUES (1); INSERT INTO t (v) VALUES (2); "
        "UPDATE t SET v = 3 WHERE id = 1; COMMIT",
        "INSERT INTO u (v) VALUES (zeroblob(3 * 4096))",  # overflow pages: the file grows
        "UPDATE u SET v = zeroblob(10) WHERE id = 1",  # freed pages go on the freelist
    ]
    for sql in cases:
        before = backend.snapshot()
        groups_before = len(backend.groups)
        conn.execute(sql)
        assert len(backend.groups) == groups_before + 1, sql
        group = backend.groups[-1]
        pages = [w.page for w in group]
        # Sorted, page 1 (volume page 0) first, and exactly the pages whose bytes changed.
        assert pages == sorted(pages)
        assert pages[0] == 0
        after = backend.snapshot()
        changed = {p for p in after if before.get(p) != after[p]}
        assert set(pages) == changed, sql
        # Page 1's change counter moved: that is what made it a commit.
        old_counter = int.from_bytes(before[0][CHANGE_COUNTER], "big")
        assert int.from_bytes(group[0].new[CHANGE_COUNTER], "big") > old_counter
        # Consecutive LSNs in the order of the writes, the last one is the commit LSN.
        lsn = backend.group_lsns[-1]
        assert file.commit_lsn == lsn
        for i, w in enumerate(group):
            version = LSN(lsn - len(group) + 1 + i)
            assert backend.newest(w.page) == (version, w.new)
            # Each new image is in the page cache at its version.
            assert volume.state.cache.newest(w.page) == (version, w.new)
            # The base the writer may delta against is the image it replaces.
            if w.page in before:
                assert w.base == before[w.page]
                assert w.base_version is not None
                assert w.base_version < version
            else:
                assert w.base is None
                assert w.base_version is None
    assert root_t in {w.page for w in backend.groups[2]}
    assert root_u in {w.page for w in backend.groups[-1]}
    assert volume.state.commits == len(backend.groups)
    assert integrity(conn) == [("ok",)]


def test_read_only_statements_append_nothing(volume: Volume, backend: FakeBackend) -> None:
    conn, file = volume.connect()
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    conn.execute("INSERT INTO t (v) VALUES ('a'), ('b')")
    groups = len(backend.groups)
    commits = volume.state.commits
    file.commit_lsn = LSN(0)
    assert rows(conn, "SELECT count(*) FROM t") == [(2,)]
    conn.execute("BEGIN")
    assert rows(conn, "SELECT v FROM t ORDER BY v DESC") == [("b",), ("a",)]
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")  # a write lock, but nothing written
    conn.execute("COMMIT")
    assert integrity(conn) == [("ok",)]
    # A write that fails changes nothing either.
    with pytest.raises(apsw.ConstraintError):
        conn.execute("INSERT INTO t (v) VALUES ('a')")
    other, _ = volume.connect()
    assert rows(other, "SELECT count(*) FROM t") == [(2,)]
    assert len(backend.groups) == groups
    assert volume.state.commits == commits
    assert file.commit_lsn == 0


def test_temporary_tables_stay_off_the_volume(volume: Volume, backend: FakeBackend) -> None:
    conn, _ = volume.connect()
    conn.execute("CREATE TABLE t (v)")
    groups = len(backend.groups)
    conn.execute("CREATE TEMP TABLE scratch (v)")
    conn.executemany("INSERT INTO scratch VALUES (?)", [(i,) for i in range(1000)])
    assert rows(conn, "SELECT count(*), sum(v) FROM scratch") == [(1000, 499500)]
    assert len(backend.groups) == groups
    conn.execute("INSERT INTO t SELECT v FROM scratch WHERE v < 10")
    assert len(backend.groups) == groups + 1
    assert rows(conn, "SELECT count(*) FROM t") == [(10,)]


def test_the_database_lives_only_in_the_backend(backend: FakeBackend) -> None:
    with open_volume(backend) as first:
        conn, _ = first.connect()
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"v{i}",) for i in range(200)])
        conn.execute("CREATE INDEX t_v ON t (v)")
    lsn = backend.lsn
    # The writer read the volume only to find it empty; its pages came from its cache.
    assert {page for page, _ in backend.reads} == {0}
    backend.reads.clear()

    with open_volume(backend) as second:  # a fresh cache: everything from the backend
        assert len(second.state.cache) == 0
        conn, file = second.connect()
        assert rows(conn, "SELECT count(*), max(v) FROM t") == [(200, "v99")]
        assert rows(conn, "SELECT id FROM t WHERE v = 'v42'") == [(43,)]
        assert integrity(conn) == [("ok",)]
        assert backend.reads  # it did read the volume
        assert all(read_point is None for _, read_point in backend.reads)
        assert 0 < file.max_version_read <= lsn
        # And it can go on writing where the first left off.
        conn.execute("INSERT INTO t (v) VALUES ('more')")
        assert backend.lsn > lsn
        assert rows(conn, "SELECT count(*) FROM t") == [(201,)]

    with open_volume(backend) as third:
        conn, _ = third.connect()
        assert rows(conn, "SELECT count(*) FROM t") == [(201,)]


def test_the_page_cache_is_shared_by_the_connections(backend: FakeBackend) -> None:
    with open_volume(backend) as first:
        conn, _ = first.connect()
        conn.execute("CREATE TABLE t (v)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    with open_volume(backend) as second:
        a, _ = second.connect()
        assert rows(a, "SELECT sum(v) FROM t") == [(4950,)]
        reads = len(backend.reads)
        assert reads > 0
        b, _ = second.connect()
        assert rows(b, "SELECT sum(v) FROM t") == [(4950,)]
        assert len(backend.reads) == reads  # every page came from the shared cache
        assert second.state.cache.stats.hits > 0


def fill_then_delete(conn: apsw.Connection) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    conn.execute("CREATE TABLE keep (v TEXT)")
    conn.execute("INSERT INTO keep VALUES ('kept')")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(bytes([i]) * 3000,) for i in range(200)])
    conn.execute("DELETE FROM t WHERE id > 10")


def header_size_pages(backend: FakeBackend) -> int:
    """The database size in the committed page 1's header (fileformat.html 1.3.7)."""
    newest = backend.newest(0)
    assert newest is not None
    return int.from_bytes(newest[1][28:32], "big")


def test_vacuum_shrinks_the_database(backend: FakeBackend) -> None:
    """VACUUM rewrites the file through a temporary database and then truncates it."""
    with open_volume(backend) as volume:
        conn, _ = volume.connect()
        fill_then_delete(conn)
        size_before = header_size_pages(backend)
        assert size_before > 150
        conn.execute("VACUUM")
        size_after = header_size_pages(backend)
        assert size_after < 30
        assert rows(conn, "PRAGMA page_count") == [(size_after,)]
        assert integrity(conn) == [("ok",)]
        assert rows(conn, "SELECT count(*), sum(length(v)) FROM t") == [(10, 30000)]
        other, _ = volume.connect()
        assert rows(other, "PRAGMA page_count") == [(size_after,)]
        assert integrity(other) == [("ok",)]

    with open_volume(backend) as again:
        conn, _ = again.connect()
        assert again.state.size_pages() == size_after
        assert integrity(conn) == [("ok",)]
        assert rows(conn, "SELECT count(*) FROM t") == [(10,)]
        assert rows(conn, "SELECT v FROM keep") == [("kept",)]


@pytest.mark.parametrize("shrink", ["vacuum", "auto_vacuum"])
def test_a_shrunk_database_is_the_same_size_for_every_connection(
        volume: Volume, backend: FakeBackend, shrink: str) -> None:
    """SQLite shrinks the file after the commit's sync (pager_end_transaction, rollback
    journal mode): the commit's page 1 header already has the new size. Kept at the old
    size, the shrinking connection's file stayed smaller than the header once another
    connection grew the database again, and SQLite said CorruptError."""
    a, file_a = volume.connect()
    b, _ = volume.connect()
    if shrink == "auto_vacuum":
        a.execute("PRAGMA auto_vacuum=FULL")  # every commit that frees pages truncates
    fill_then_delete(a)
    if shrink == "vacuum":
        a.execute("VACUUM")
    shrunk = header_size_pages(backend)
    assert shrunk < 30
    # Another connection grows the database again, past the shrunk size.
    b.executemany("INSERT INTO t (v) VALUES (?)", [(bytes([i]) * 3000,) for i in range(20)])
    grown = header_size_pages(backend)
    assert grown > shrunk
    # The connection that shrank the file must see the grown file, not its own old size.
    assert rows(a, "SELECT count(*) FROM t") == [(30,)]
    assert integrity(a) == [("ok",)]
    # Every connection, and a new process, agree on the size with the committed header.
    assert file_a.xFileSize() == grown * PAGE_SIZE
    assert volume.state.size_pages() == grown


# --- transactions bigger than SQLite's cache -----------------------------------------------

BIG_ROWS = 300
BIG_ROW_BYTES = 10_000  # 3 MB in all, some 750 pages against a cache of 5


def big_transaction(conn: apsw.Connection, file: VolumeFile, backend: FakeBackend) -> None:
    """Insert ``BIG_ROWS`` rows and update the old ones in one open transaction; check that
    SQLite wrote pages to the file before the commit (the cache spilled)."""
    conn.execute("PRAGMA cache_size=5")
    groups = len(backend.groups)
    conn.execute("BEGIN")
    conn.execute("UPDATE t SET v = 'changed'")
    conn.executemany("INSERT INTO t (v, data) VALUES (?, randomblob(?))",
                     [(f"big {i}", BIG_ROW_BYTES) for i in range(BIG_ROWS)])
    assert len(file.dirty) > 100  # spilled: buffered in the file, not yet a commit
    assert len(backend.groups) == groups
    # The connection reads its own uncommitted pages.
    assert rows(conn, "SELECT count(*) FROM t WHERE v LIKE 'big %'") == [(BIG_ROWS,)]


def make_small_table(conn: apsw.Connection) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, data BLOB)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"old {i}",) for i in range(20)])


def test_a_transaction_larger_than_sqlites_cache_commits(backend: FakeBackend) -> None:
    expected = [(BIG_ROWS + 20, BIG_ROWS * BIG_ROW_BYTES, 20)]
    summary = "SELECT count(*), sum(length(data)), sum(v = 'changed') FROM t"
    with open_volume(backend) as volume:
        conn, file = volume.connect()
        make_small_table(conn)
        groups = len(backend.groups)
        big_transaction(conn, file, backend)
        conn.execute("COMMIT")
        assert len(backend.groups) == groups + 1  # one group, however much was spilled
        assert len(backend.groups[-1]) > BIG_ROWS * BIG_ROW_BYTES // PAGE_SIZE
        assert file.dirty == {}
        assert file.commit_lsn == backend.lsn
        assert rows(conn, summary) == expected
        assert integrity(conn) == [("ok",)]
        other, _ = volume.connect()
        assert rows(other, summary) == expected

    with open_volume(backend) as again:
        conn, _ = again.connect()
        assert rows(conn, summary) == expected
        assert integrity(conn) == [("ok",)]


def test_a_rolled_back_transaction_larger_than_sqlites_cache_leaves_nothing(
        volume: Volume, backend: FakeBackend) -> None:
    conn, file = volume.connect()
    make_small_table(conn)
    groups = len(backend.groups)
    lsn = backend.lsn
    size = volume.state.size_pages()
    big_transaction(conn, file, backend)
    conn.execute("ROLLBACK")
    assert len(backend.groups) == groups
    assert backend.lsn == lsn
    assert file.dirty == {}
    assert volume.state.size_pages() == size
    summary = "SELECT count(*), min(v), max(v), sum(data IS NULL) FROM t"
    expected = [(20, "old 0", "old 9", 20)]
    assert rows(conn, summary) == expected
    assert rows(conn, "PRAGMA page_count") == [(size,)]
    assert integrity(conn) == [("ok",)]
    other, _ = volume.connect()
    assert rows(other, summary) == expected
    # The connection goes on: the next commit is a normal one.
    conn.execute("INSERT INTO t (v) VALUES ('after')")
    assert len(backend.groups) == groups + 1
    assert rows(other, "SELECT count(*) FROM t") == [(21,)]
    assert integrity(other) == [("ok",)]


# --- two connections -----------------------------------------------------------------------


def test_a_reader_sees_committed_data_while_a_writer_holds_its_transaction(
        volume: Volume, backend: FakeBackend) -> None:
    writer, _ = volume.connect()
    reader, _ = volume.connect()
    writer.execute("CREATE TABLE t (v TEXT)")
    writer.execute("INSERT INTO t VALUES ('old')")
    groups = len(backend.groups)

    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES ('new')")
    writer.execute("UPDATE t SET v = 'changed' WHERE v = 'old'")
    assert volume.state.locks.reserved()
    # The reader takes SHARED beside the writer's RESERVED and sees the committed state.
    assert rows(reader, "SELECT v FROM t ORDER BY v") == [("old",)]
    # It cannot write: one RESERVED at a time.
    with pytest.raises(apsw.BusyError):
        reader.execute("INSERT INTO t VALUES ('reader')")
    with pytest.raises(apsw.BusyError):
        reader.execute("BEGIN IMMEDIATE")
    assert reader.getautocommit()
    assert len(backend.groups) == groups

    writer.execute("COMMIT")
    assert len(backend.groups) == groups + 1
    assert not volume.state.locks.reserved()
    assert rows(reader, "SELECT v FROM t ORDER BY v") == [("changed",), ("new",)]
    reader.execute("INSERT INTO t VALUES ('reader')")
    assert rows(writer, "SELECT count(*) FROM t") == [(3,)]
    assert integrity(reader) == [("ok",)]


def test_a_commit_waits_for_an_open_read_transaction(
        volume: Volume, backend: FakeBackend) -> None:
    writer, _ = volume.connect()
    reader, _ = volume.connect()
    late, _ = volume.connect()
    writer.execute("CREATE TABLE t (v TEXT)")
    writer.execute("INSERT INTO t VALUES ('old')")
    # The late reader knows the schema (else a refused SHARED lock while loading it is
    # reported by SQLite as "no such table", as with its own unix VFS).
    assert rows(late, "SELECT v FROM t") == [("old",)]
    groups = len(backend.groups)

    reader.execute("BEGIN")
    assert rows(reader, "SELECT v FROM t") == [("old",)]  # SHARED held until COMMIT
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES ('new')")
    # EXCLUSIVE is refused while the reader holds SHARED; the writer keeps PENDING ...
    with pytest.raises(apsw.BusyError):
        writer.execute("COMMIT")
    assert not writer.getautocommit()  # the transaction is still open: COMMIT may retry
    assert len(backend.groups) == groups
    # ... so no new reader gets in, while the one inside goes on reading the old state.
    with pytest.raises(apsw.BusyError):
        late.execute("SELECT v FROM t")
    assert rows(reader, "SELECT v FROM t") == [("old",)]
    reader.execute("COMMIT")
    writer.execute("COMMIT")
    assert len(backend.groups) == groups + 1
    assert rows(late, "SELECT v FROM t ORDER BY v") == [("new",), ("old",)]
    assert rows(reader, "SELECT v FROM t ORDER BY v") == [("new",), ("old",)]


def test_a_commit_during_a_new_connections_first_read(
        volume: Volume, backend: FakeBackend) -> None:
    writer, _ = volume.connect()
    writer.execute("CREATE TABLE t (v)")
    writer.execute("INSERT INTO t VALUES (1)")
    # Page 1 (volume page 0) left the cache: durable, so not pinned, and evicted.
    volume.state.cache.drop_page(0)
    # While a new connection reads it (before any lock: SQLite reads the header as it
    # opens), the writer commits; the read answers with the version before that commit.
    # Regression: the answer was put in the cache as the newest version and the cache's
    # order check failed (opening the connection raised AssertionError).
    backend.during_next_read = lambda: writer.execute("INSERT INTO t VALUES (2)")
    late, _ = volume.connect()
    assert backend.during_next_read is None  # the commit did run inside the read
    assert rows(late, "SELECT v FROM t ORDER BY v") == [(1,), (2,)]
    assert volume.state.cache.newest(0) == backend.newest(0)
    assert integrity(late) == [("ok",)]


# --- a volume that refuses the commit ------------------------------------------------------


def test_a_fenced_append_fails_the_commit_and_records_nothing(
        volume: Volume, backend: FakeBackend) -> None:
    conn, file = volume.connect()
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES ('committed')")
    groups, lsn, commits = len(backend.groups), backend.lsn, volume.state.commits
    file.commit_lsn = LSN(0)
    fenced = FencedError("writer w1 fenced by epoch 2")
    backend.append_failure = fenced

    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES ('lost')")
    # APSW re-raises the exception the VFS raised (not an apsw error translating it); the
    # file keeps it too, for the session to report when SQLite alone has the error code.
    with pytest.raises(FencedError) as raised:
        conn.execute("COMMIT")
    assert raised.value is fenced
    assert file.failure is fenced
    assert len(backend.groups) == groups
    assert backend.lsn == lsn
    assert volume.state.commits == commits
    assert file.commit_lsn == 0
    assert file.dirty == {}
    # SQLite rolled the transaction back and gave its locks up.
    assert conn.getautocommit()
    assert not volume.state.locks.reserved()
    assert rows(conn, "SELECT v FROM t") == [("committed",)]
    other, _ = volume.connect()
    assert rows(other, "SELECT v FROM t") == [("committed",)]

    # An autocommit statement fails the same way.
    with pytest.raises(FencedError):
        conn.execute("INSERT INTO t VALUES ('lost too')")
    assert len(backend.groups) == groups
    assert rows(other, "SELECT v FROM t") == [("committed",)]
    assert integrity(other) == [("ok",)]

    # A volume that accepts again: the connection is still usable.
    backend.append_failure = None
    conn.execute("INSERT INTO t VALUES ('accepted')")
    assert len(backend.groups) == groups + 1
    assert rows(other, "SELECT v FROM t ORDER BY v") == [("accepted",), ("committed",)]


def test_a_fenced_append_of_a_spilled_transaction_leaves_nothing(
        volume: Volume, backend: FakeBackend) -> None:
    conn, file = volume.connect()
    make_small_table(conn)
    groups, size = len(backend.groups), volume.state.size_pages()
    big_transaction(conn, file, backend)
    backend.append_failure = FencedError("fenced")
    with pytest.raises(FencedError):
        conn.execute("COMMIT")
    assert isinstance(file.failure, FencedError)
    assert len(backend.groups) == groups
    assert file.dirty == {}
    assert volume.state.size_pages() == size
    backend.append_failure = None
    summary = "SELECT count(*), min(v), max(v) FROM t"
    assert rows(conn, summary) == [(20, "old 0", "old 9")]
    assert rows(conn, "PRAGMA page_count") == [(size,)]
    assert integrity(conn) == [("ok",)]


def test_a_failed_page_read_is_kept_as_the_failure(backend: FakeBackend) -> None:
    with open_volume(backend) as first:
        conn, _ = first.connect()
        conn.execute("CREATE TABLE t (v)")
        conn.execute("INSERT INTO t VALUES (1)")
    with open_volume(backend) as second:
        conn, file = second.connect()
        lost = StorageError("the volume did not answer within 30.0 s")
        backend.read_failure = lost
        with pytest.raises(StorageError):
            conn.execute("SELECT v FROM t")
        assert file.failure is lost
        backend.read_failure = None
        file.failure = None
        assert rows(conn, "SELECT v FROM t") == [(1,)]
        assert file.failure is None


# --- what a statement read and committed ---------------------------------------------------


def test_commit_lsn_and_max_version_read(volume: Volume, backend: FakeBackend) -> None:
    writer, wfile = volume.connect()
    writer.execute("CREATE TABLE t (v TEXT)")
    writer.execute("CREATE TABLE u (v TEXT)")
    writer.execute("INSERT INTO t VALUES ('t1')")
    root_t, root_u = root_page(writer, "t"), root_page(writer, "u")
    # A write: the commit LSN is its group's last LSN.
    wfile.commit_lsn = LSN(0)
    writer.execute("INSERT INTO u VALUES ('u1')")
    group = backend.groups[-1]
    assert [w.page for w in group] == [0, root_u]
    assert wfile.commit_lsn == backend.group_lsns[-1]
    assert wfile.commit_lsn == backend.lsn

    # A read notes the newest version among the pages it read, and commits nothing.
    reader, rfile = volume.connect()
    rfile.max_version_read = LSN(0)
    rfile.commit_lsn = LSN(0)
    assert rows(reader, "SELECT v FROM t") == [("t1",)]
    version_page_0 = backend.newest(0)[0]  # type: ignore[index]
    version_t = backend.newest(root_t)[0]  # type: ignore[index]
    assert version_t < version_page_0  # t was last written before page 1 was
    assert rfile.max_version_read == version_page_0
    assert rfile.commit_lsn == 0

    writer.execute("INSERT INTO t VALUES ('t2')")
    version_t = backend.newest(root_t)[0]  # type: ignore[index]
    assert version_t == backend.lsn  # t's root is the group's last page
    rfile.max_version_read = LSN(0)
    assert rows(reader, "SELECT v FROM t ORDER BY v") == [("t1",), ("t2",)]
    assert rfile.max_version_read == version_t
    # Reading u only: the newest version read is page 1's from the last commit.
    rfile.max_version_read = LSN(0)
    assert rows(reader, "SELECT v FROM u") == [("u1",)]
    assert rfile.max_version_read == backend.newest(0)[0]  # type: ignore[index]
    assert rfile.max_version_read < version_t
    assert rfile.commit_lsn == 0


# --- a reader at a read point ---------------------------------------------------------------


class PointState(VolumeState):
    """A read-only state whose transactions all read at one read point: the contract a
    reader (``ReaderState``, at its latest VDL) has with the VFS, without the redo stream."""

    read_only = True

    def __init__(self, backend: FakeBackend, point: LSN) -> None:
        super().__init__(backend, PageCache())
        self.point = point
        self.begun: list[LSN] = []
        self.ended: list[LSN] = []

    def begin_read(self) -> LSN:
        self.begun.append(self.point)
        return self.point

    def end_read(self, point: LSN) -> None:
        self.ended.append(point)

    def page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        # SQLite reads the header once before it takes any lock: at the point too.
        return super().page(page, self.point if read_point is None else read_point)

    def size_pages(self, read_point: LSN | None = None) -> int:
        _, image = self.page(0, read_point)
        return 0 if image is None else int.from_bytes(image[28:32], "big")


def test_a_read_only_state_reads_at_its_read_point(backend: FakeBackend) -> None:
    with open_volume(backend) as writer:
        conn, _ = writer.connect()
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('one')")
        first = backend.lsn
        conn.execute("INSERT INTO t VALUES ('two')")
        conn.execute("CREATE TABLE u (v TEXT)")
        backend.reads.clear()

        state = PointState(backend, first)
        with open_volume(backend, state) as reader:
            rconn, rfile = reader.connect()
            assert rconn.readonly("main")  # from the VFS's output flags
            rfile.max_version_read = LSN(0)
            assert rows(rconn, "SELECT v FROM t") == [("one",)]
            assert rows(rconn, "SELECT count(*) FROM sqlite_schema") == [(1,)]
            assert 0 < rfile.max_version_read <= first
            assert backend.reads
            assert {read_point for _, read_point in backend.reads} == {first}
            # One read point per read transaction, handed back when it ends.
            assert state.begun
            assert state.begun == state.ended
            assert set(state.begun) == {first}
            assert rfile.read_point is None  # between transactions
            groups = len(backend.groups)
            with pytest.raises(apsw.ReadOnlyError):
                rconn.execute("INSERT INTO t VALUES ('reader')")
            with pytest.raises(apsw.ReadOnlyError):
                rconn.execute("CREATE TABLE v (x)")
            assert len(backend.groups) == groups
            assert not state.locks.reserved()
            # The writer goes on; the reader still reads at its point.
            conn.execute("INSERT INTO t VALUES ('three')")
            assert rows(rconn, "SELECT v FROM t") == [("one",)]

        with open_volume(backend, PointState(backend, backend.lsn)) as later:
            lconn, _ = later.connect()
            assert rows(lconn, "SELECT v FROM t ORDER BY v") == [
                ("one",), ("three",), ("two",)]
            assert integrity(lconn) == [("ok",)]


# --- opening ---------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["other.db", "xborealis.db", "borealis.db2"])
def test_only_the_volume_database_can_be_opened(volume: Volume, filename: str) -> None:
    with pytest.raises(apsw.CantOpenError):
        apsw.Connection(filename, vfs=volume.vfs.vfs_name,
                        flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
    assert volume.vfs.opened == []


def test_take_opened_is_the_connections_file(volume: Volume, backend: FakeBackend) -> None:
    a, file_a = volume.connect()
    b, file_b = volume.connect()
    assert file_a is not file_b
    assert volume.vfs.opened == []
    a.execute("CREATE TABLE t (v)")
    assert file_a.commit_lsn == backend.lsn
    assert file_b.commit_lsn == 0
    file_a.max_version_read = LSN(0)
    assert rows(b, "SELECT count(*) FROM t") == [(0,)]
    assert file_b.max_version_read == backend.lsn  # t's root, last of the group
    assert file_a.max_version_read == 0
