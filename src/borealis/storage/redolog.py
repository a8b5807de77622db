"""The storage node's redo log: an append-only, checksummed, group-committed log of entries.

A storage node acknowledges a redo record only once it is in this log and the log is synced
(DESIGN decision 5). The log does not know what an entry means: entries are opaque bytes (the
node packs a batch of redo records into one). Each entry gets a sequence number (``seq``),
from 1, strictly increasing by one; the node keeps its own map from LSNs to seqs so that it
can trim the log once the page store holds the materialised versions.

Shape: ``append`` only buffers (cheap, called on the event-loop thread for every batch that
arrives); ``sync`` writes everything buffered and fsyncs once (group commit), and may run on
a worker thread while the loop keeps appending. A lock guards only the swap of the buffer;
the write and the fsync run without it, so appends never wait for the disk.

On disk: one directory (``DIR/redo/``) of numbered *chunks*, ``<first seq, 20 digits>.redo``,
each at most ``chunk_bytes_max`` bytes (except a chunk that holds one larger entry alone). An entry is framed as::

    magic "BRL1" | crc32 (u32) | length (u32) | seq (u64) | payload (length bytes)

little-endian, where the CRC (``zlib.crc32``) covers length, seq and payload. A chunk is
fsynced before the next one is created, and the directory is fsynced when a chunk file is
created or deleted, so after any crash the chunks on disk are a contiguous run of seqs and
only the last chunk can end in a partial write.

Trimming: ``drop_chunks_before(seq)`` makes ``seq`` the log's first entry. It first writes
``DIR/redo/START`` (the seq and its CRC, to a temporary file that is fsynced and renamed into
place, then the directory fsynced), then deletes every chunk all of whose entries are below
it. Replay skips the entries below the start that share a chunk with later ones, and a
recovery finishes a drop that a crash interrupted (chunks wholly below the start are deleted).
So a log is trimmed exactly, though it is deleted in whole chunks, and a crash in the middle
of a trim leaves either the old start or the new one, never entries from both.

The recovery rule (``FileRedoLog.replay``, run once at open):

* A torn or corrupt entry at the *tail* of the *last* chunk (no valid entry follows it in that
  chunk) is a crash in the middle of a write: the chunk is truncated there and the log goes on
  from the last good entry. Those entries were never acknowledged, because ``sync`` had not
  returned for them.
* Everything the pass yields is durable when it ends: it fdatasyncs the last chunk, whose
  tail a killed process may have written without syncing (the pass reports it synced).
* A corrupt entry anywhere else (a valid entry follows it, or it is in an older chunk), a gap
  in the seqs, or a chunk that does not start where the previous one ended raises
  ``CorruptionError`` naming the file and offset. The node must not serve from such a log; it
  rebuilds its segments from peers.

Two consequences, both safe under the quorum: a bit flip in the very last entry of the log
looks like a torn write and is truncated, so the node comes back with a lower SCL and gossip
refills the lost records; and a crash that persisted a later page of the final unsynced
write but not an earlier one shows up as corruption (valid entries after a bad one) and
costs a rebuild from peers, never a silent hole.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from borealis.errors import CorruptionError, StorageError

log = logging.getLogger(__name__)

MAGIC = b"BRL1"
_HEADER = struct.Struct("<4sIIQ")  # magic, crc, length, seq
_CRC_FIELDS = struct.Struct("<IQ")  # length, seq: what the CRC covers besides the payload
HEADER_BYTES = _HEADER.size

CHUNK_BYTES_MAX_DEFAULT = 64 * 2**20
ENTRY_BYTES_MAX = 2**32 - 1
"""The length field is a u32. An entry larger than a chunk gets a chunk of its own."""

REDO_DIR_NAME = "redo"
START_NAME = "START"
_START = struct.Struct("<QI")  # first seq kept, crc32 of it
_CHUNK_NAME = re.compile(r"^(\d{20})\.redo$")

assert HEADER_BYTES == 20


def chunk_name(first_seq: int) -> str:
    assert first_seq >= 1
    return f"{first_seq:020d}.redo"


def encode_entry(seq: int, payload: bytes) -> bytes:
    """One framed entry, as written to a chunk."""
    assert seq >= 1
    assert len(payload) <= ENTRY_BYTES_MAX
    crc = zlib.crc32(payload, zlib.crc32(_CRC_FIELDS.pack(len(payload), seq)))
    return _HEADER.pack(MAGIC, crc, len(payload), seq) + payload


class RedoLog(Protocol):
    """An append-only log of opaque entries with group-commit durability.

    Contract shared by every implementation:

    * ``append`` returns the entry's seq: the previous one plus one (from 1). The entry is
      not durable until a ``sync`` that started after the ``append`` has returned.
    * ``synced_seq`` is the highest seq known durable (0: none). It never decreases while the
      log is open.
    * ``replay`` yields ``(seq, payload)`` for every durable entry at or above the log's
      start, in seq order.
    * ``drop_chunks_before(seq)`` moves the start up to ``seq``, or to the first entry not
      yet durable if that is lower: replay never yields an entry below the start again,
      even after a crash. Returns how many entries it deleted (the file log frees storage
      in whole chunks).
    """

    @property
    def synced_seq(self) -> int: ...

    @property
    def next_seq(self) -> int: ...

    @property
    def start_seq(self) -> int:
        """The first entry replay would yield (``next_seq`` if none is kept)."""
        ...

    def append(self, payload: bytes) -> int: ...

    def sync(self) -> int: ...

    def replay(self) -> Iterator[tuple[int, bytes]]: ...

    def drop_chunks_before(self, seq: int) -> int: ...

    def close(self) -> None: ...


# --- in memory -----------------------------------------------------------------------------


class MemoryRedoLog:
    """The redo log in memory, for unit tests and the simulator.

    ``crash()`` models a process or machine crash: entries appended but not synced are lost
    (optionally a prefix of them survives, as when the OS had written some of them), and the
    next append reuses their seqs, exactly as ``FileRedoLog`` does after reopening.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[int, bytes]] = []  # (seq, payload), seq ascending
        self._next_seq = 1
        self._synced_seq = 0
        self._start_seq = 1

    @property
    def synced_seq(self) -> int:
        return self._synced_seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def start_seq(self) -> int:
        return self._start_seq

    def append(self, payload: bytes) -> int:
        assert len(payload) <= ENTRY_BYTES_MAX
        seq = self._next_seq
        self._entries.append((seq, bytes(payload)))
        self._next_seq = seq + 1
        return seq

    def sync(self) -> int:
        self._synced_seq = self._next_seq - 1
        return self._synced_seq

    def replay(self) -> Iterator[tuple[int, bytes]]:
        synced = self._synced_seq
        for seq, payload in list(self._entries):
            if seq > synced:
                break
            yield seq, payload

    def drop_chunks_before(self, seq: int) -> int:
        # Only durable entries are ever dropped, as in the file log.
        limit = min(seq, self._synced_seq + 1)
        self._start_seq = max(self._start_seq, limit)
        keep = [(s, p) for s, p in self._entries if s >= limit]
        dropped = len(self._entries) - len(keep)
        self._entries = keep
        return dropped

    def crash(self, *, unsynced_kept: int = 0) -> int:
        """Lose every unsynced entry but the first ``unsynced_kept``; return how many were lost.

        The survivors become durable: after a restart they are on disk like any other entry.
        """
        assert unsynced_kept >= 0
        unsynced = [entry for entry in self._entries if entry[0] > self._synced_seq]
        kept = unsynced[:unsynced_kept]
        lost = len(unsynced) - len(kept)
        self._entries = self._entries[: len(self._entries) - len(unsynced)] + kept
        self._synced_seq = self._entries[-1][0] if self._entries else self._synced_seq
        self._next_seq = self._synced_seq + 1
        assert all(seq <= self._synced_seq for seq, _ in self._entries)
        return lost

    def close(self) -> None:
        pass


# --- on disk -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Chunk:
    first_seq: int
    path: Path
    size_bytes: int = 0


class FileRedoLog:
    """The redo log in ``path`` (a node's ``DIR/redo/``), in chunks of ``chunk_bytes_max``.

    Call ``replay()`` once, to the end, before the first ``append``: it is the open-time
    recovery (see the module docstring for what it truncates and what it refuses).

    Threads: ``append`` and the ``synced_seq``/``next_seq`` reads may run on one thread while
    ``sync`` runs on another; ``replay``, ``drop_chunks_before`` and ``close`` do file I/O and
    belong where ``sync`` runs (they take the same lock). After a failed write or fsync the log
    refuses every further ``sync``: the kernel may have dropped the dirty pages, so nothing
    written since the last good sync can be trusted; the node must restart and recover.
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 chunk_bytes_max: int = CHUNK_BYTES_MAX_DEFAULT) -> None:
        assert chunk_bytes_max > HEADER_BYTES
        self.path = Path(path)
        self.chunk_bytes_max = chunk_bytes_max
        self.entry_bytes_max = ENTRY_BYTES_MAX
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"redo log {self.path}: cannot create directory: {exc}") from exc
        # Guards _pending and _next_seq: held by append and for the buffer swap in sync.
        self._append_lock = threading.Lock()
        self._pending: list[tuple[int, bytes]] = []
        self._next_seq = 1
        self._synced_seq = 0
        # Serialises everything that touches files: sync, replay, drop, close.
        self._io_lock = threading.Lock()
        self._chunks: list[_Chunk] = []
        self._start_seq = 1  # the first entry replay yields (``START``)
        self._fd: int | None = None  # open for append on self._chunks[-1]
        self._recovered = False
        self._recovering = False
        self._failed: str | None = None
        self._closed = False

    # -- the hot path ---------------------------------------------------------------------

    @property
    def synced_seq(self) -> int:
        return self._synced_seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append(self, payload: bytes) -> int:
        """Buffer one entry and return its seq; durable once a later ``sync`` returns."""
        assert self._recovered, "FileRedoLog: run replay() to the end before appending"
        assert not self._closed
        assert len(payload) <= self.entry_bytes_max, (
            f"redo entry of {len(payload)} bytes exceeds entry_bytes_max={self.entry_bytes_max}"
        )
        with self._append_lock:
            seq = self._next_seq
            self._pending.append((seq, bytes(payload)))
            self._next_seq = seq + 1
        return seq

    def sync(self) -> int:
        """Write every buffered entry, fsync, and return the new ``synced_seq``."""
        assert self._recovered
        with self._io_lock:
            assert not self._closed
            if self._failed is not None:
                raise StorageError(f"redo log {self.path}: unusable after {self._failed}")
            with self._append_lock:
                batch, self._pending = self._pending, []
            if not batch:
                return self._synced_seq
            assert batch[0][0] == self._synced_seq + 1
            try:
                self._write_batch(batch)
            except OSError as exc:
                self._failed = f"a failed write or fsync: {exc}"
                raise StorageError(f"redo log {self.path}: sync failed: {exc}") from exc
            # Plain int store: readers on other threads see the old or the new value, both
            # of which were true at some point.
            self._synced_seq = batch[-1][0]
            return self._synced_seq

    def _write_batch(self, batch: list[tuple[int, bytes]]) -> None:
        """Write ``batch`` across as many chunks as it needs, fsyncing each one it fills."""
        frames: list[bytes] = []
        frames_bytes = 0
        chunk = self._chunks[-1]
        for seq, payload in batch:
            frame = encode_entry(seq, payload)
            if chunk.size_bytes + frames_bytes + len(frame) > self.chunk_bytes_max and (
                chunk.size_bytes + frames_bytes > 0
            ):
                self._write_frames(frames)
                chunk.size_bytes += frames_bytes
                self._fsync_current()
                chunk = self._new_chunk(seq)
                frames, frames_bytes = [], 0
            frames.append(frame)
            frames_bytes += len(frame)
        self._write_frames(frames)
        chunk.size_bytes += frames_bytes
        self._fsync_current()

    def _write_frames(self, frames: list[bytes]) -> None:
        assert self._fd is not None
        view = memoryview(b"".join(frames))
        while view:
            written = os.write(self._fd, view)
            assert written > 0
            view = view[written:]

    def _fsync_current(self) -> None:
        assert self._fd is not None
        # fdatasync flushes the size change too (it is needed to read the data back).
        os.fdatasync(self._fd)

    def _new_chunk(self, first_seq: int) -> _Chunk:
        """Close the current chunk (already fsynced) and create the next, fsyncing the dir."""
        assert not self._chunks or first_seq > self._chunks[-1].first_seq
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        chunk = _Chunk(first_seq, self.path / chunk_name(first_seq))
        self._fd = os.open(chunk.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        _fsync_dir(self.path)
        self._chunks.append(chunk)
        log.debug("redo chunk created path=%s first_seq=%d", chunk.path, first_seq)
        return chunk

    # -- open-time recovery ---------------------------------------------------------------

    def replay(self) -> Iterator[tuple[int, bytes]]:
        """Yield every durable entry in seq order; the first full pass is the recovery.

        Raises ``CorruptionError`` for corruption that is not a torn tail (module docstring).
        The recovery pass runs before any ``append`` or ``sync`` can, so it holds no lock
        while it yields; a later pass reads a snapshot of the chunks taken under the lock.
        """
        assert not self._closed
        if self._recovered:
            yield from self._replay_durable()
            return
        assert not self._recovering, "FileRedoLog: replay() is already recovering"
        self._recovering = True
        try:
            yield from self._recover()
        finally:
            self._recovering = False

    def _list_chunks(self) -> list[_Chunk]:
        try:
            names = sorted(os.listdir(self.path))
        except OSError as exc:
            raise StorageError(f"redo log {self.path}: cannot list: {exc}") from exc
        chunks: list[_Chunk] = []
        for name in names:
            if name in (START_NAME, START_NAME + ".tmp"):
                continue
            match = _CHUNK_NAME.match(name)
            if match is None:
                log.warning("redo log ignores a stray file path=%s", self.path / name)
                continue
            first_seq = int(match.group(1))
            if first_seq < 1:
                raise CorruptionError(f"redo log {self.path / name}: chunk named for seq 0")
            chunks.append(_Chunk(first_seq, self.path / name))
        return chunks

    def _recover(self) -> Iterator[tuple[int, bytes]]:
        chunks = self._list_chunks()
        recorded_start = _read_start(self.path / START_NAME)
        # A log never trimmed has no START: it starts at its first entry.
        start = recorded_start or (chunks[0].first_seq if chunks else 1)
        chunks = self._finish_drop(chunks, start)
        if chunks and chunks[0].first_seq > start:
            raise CorruptionError(
                f"redo log {self.path}: the log starts at seq {start} but its first chunk "
                f"at {chunks[0].first_seq} (a chunk is missing)"
            )
        self._start_seq = start
        expected_seq = chunks[0].first_seq if chunks else start
        for index, chunk in enumerate(chunks):
            is_last = index == len(chunks) - 1
            if chunk.first_seq != expected_seq:
                raise CorruptionError(
                    f"redo log {chunk.path}: chunk starts at seq {chunk.first_seq}, "
                    f"expected {expected_seq} (a chunk is missing)"
                )
            data = _read_file(chunk.path)
            offset = 0
            while offset < len(data):
                entry = _decode_at(data, offset)
                if isinstance(entry, _Bad):
                    if not is_last or _valid_entry_after(data, offset):
                        raise CorruptionError(
                            f"redo log {chunk.path}: corrupt entry at offset {offset} "
                            f"({entry.reason}) that is not the torn tail of the log"
                        )
                    log.warning(
                        "redo log truncates a torn tail path=%s offset=%d bytes_dropped=%d "
                        "reason=%s", chunk.path, offset, len(data) - offset, entry.reason,
                    )
                    _truncate(chunk.path, offset)
                    break
                seq, payload, end = entry
                if seq != expected_seq:
                    raise CorruptionError(
                        f"redo log {chunk.path}: entry at offset {offset} has seq {seq}, "
                        f"expected {expected_seq}"
                    )
                expected_seq += 1
                offset = end
                if seq >= start:
                    yield seq, payload
            chunk.size_bytes = offset
            if not is_last and offset == 0:
                raise CorruptionError(f"redo log {chunk.path}: an empty chunk that is not last")
        if expected_seq < start:
            raise CorruptionError(
                f"redo log {self.path}: the log starts at seq {start} but its entries end "
                f"at {expected_seq - 1} (synced entries are missing)"
            )
        self._chunks = chunks
        self._next_seq = expected_seq
        self._synced_seq = expected_seq - 1
        try:
            if self._chunks:
                self._fd = os.open(self._chunks[-1].path, os.O_WRONLY | os.O_APPEND)
                # What was read may be in the page cache only (a kill -9 between a write and
                # its fdatasync): it is reported synced from here on, so make it durable.
                # Earlier chunks were fsynced before their successors were created.
                self._fsync_current()
            else:
                self._new_chunk(expected_seq)
        except OSError as exc:
            raise StorageError(f"redo log {self.path}: cannot open for append: {exc}") from exc
        self._recovered = True
        log.info("redo log recovered path=%s chunks=%d next_seq=%d",
                 self.path, len(self._chunks), self._next_seq)

    def _finish_drop(self, chunks: list[_Chunk], start: int) -> list[_Chunk]:
        """Delete the chunks wholly below ``start``: a drop that a crash interrupted."""
        stale = _wholly_below(chunks, start)
        if not stale:
            return chunks
        try:
            for chunk in chunks[:stale]:
                os.unlink(chunk.path)
            _fsync_dir(self.path)
        except OSError as exc:
            raise StorageError(f"redo log {self.path}: cannot finish a trim: {exc}") from exc
        log.info("redo log finished an interrupted trim path=%s chunks_deleted=%d",
                 self.path, stale)
        return chunks[stale:]

    def _replay_durable(self) -> Iterator[tuple[int, bytes]]:
        with self._io_lock:
            snapshot = [(chunk.path, chunk.size_bytes) for chunk in self._chunks]
            start = self._start_seq
        for path, size_bytes in snapshot:
            data = _read_file(path)[:size_bytes]
            offset = 0
            while offset < len(data):
                entry = _decode_at(data, offset)
                if isinstance(entry, _Bad):
                    raise CorruptionError(
                        f"redo log {path}: corrupt entry at offset {offset} ({entry.reason})"
                    )
                seq, payload, offset = entry
                if seq >= start:
                    yield seq, payload

    # -- trimming and closing -------------------------------------------------------------

    def drop_chunks_before(self, seq: int) -> int:
        """Make ``seq`` the first entry of the log (at most the first one not yet synced) and
        delete every chunk all of whose entries are below it; return the entries deleted.

        ``START`` is written first, so a crash at any point leaves a log that replays from
        the old start or from the new one (module docstring). The open (last) chunk is never
        deleted; chunks go oldest first, with one directory fsync after the unlinks.
        """
        dropped = 0
        with self._io_lock:
            assert self._recovered
            assert not self._closed
            seq = min(seq, self._synced_seq + 1)
            if seq <= self._start_seq:
                return 0
            try:
                _write_start(self.path, seq)
            except OSError as exc:
                raise StorageError(f"redo log {self.path}: cannot write its start: {exc}") \
                    from exc
            self._start_seq = seq
            doomed = _wholly_below(self._chunks, seq)
            if not doomed:
                return 0
            try:
                for chunk in self._chunks[:doomed]:
                    os.unlink(chunk.path)
                    log.debug("redo chunk dropped path=%s", chunk.path)
                _fsync_dir(self.path)
            except OSError as exc:
                raise StorageError(f"redo log {self.path}: cannot drop a chunk: {exc}") from exc
            dropped = self._chunks[doomed].first_seq - self._chunks[0].first_seq
            del self._chunks[:doomed]
        return dropped

    @property
    def start_seq(self) -> int:
        """The first entry replay yields."""
        return self._start_seq

    @property
    def size_bytes(self) -> int:
        """Bytes in the chunks on disk (entries below the start included)."""
        return sum(chunk.size_bytes for chunk in self._chunks)

    def close(self) -> None:
        """Close the files. Entries appended since the last ``sync`` are lost, as in a crash."""
        with self._io_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._closed = True

    @property
    def chunk_paths(self) -> list[Path]:
        """The chunk files in seq order (for tests and tools)."""
        return [chunk.path for chunk in self._chunks]


# --- the file format -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bad:
    offset: int
    reason: str


def _decode_at(data: bytes | memoryview, offset: int) -> tuple[int, bytes, int] | _Bad:
    """The entry at ``offset``: (seq, payload, offset after it), or why it is not valid."""
    if len(data) - offset < HEADER_BYTES:
        return _Bad(offset, "truncated header")
    magic, crc, length, seq = _HEADER.unpack_from(data, offset)
    if magic != MAGIC:
        return _Bad(offset, "bad magic")
    end = offset + HEADER_BYTES + length
    if end > len(data):
        return _Bad(offset, "truncated payload")
    payload = bytes(data[offset + HEADER_BYTES : end])
    if zlib.crc32(payload, zlib.crc32(_CRC_FIELDS.pack(length, seq))) != crc:
        return _Bad(offset, "CRC mismatch")
    if seq < 1:
        return _Bad(offset, "seq 0")
    return seq, payload, end


def _valid_entry_after(data: bytes, offset: int) -> bool:
    """Whether any CRC-valid entry starts after ``offset``: then ``offset`` is not a tear."""
    position = data.find(MAGIC, offset + 1)
    while position != -1:
        if not isinstance(_decode_at(data, position), _Bad):
            return True
        position = data.find(MAGIC, position + 1)
    return False


def _read_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise StorageError(f"redo log {path}: cannot read: {exc}") from exc


def _truncate(path: Path, size_bytes: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"redo log {path}: cannot truncate: {exc}") from exc


def _wholly_below(chunks: list[_Chunk], seq: int) -> int:
    """How many leading chunks hold only entries below ``seq`` (never the last one)."""
    count = 0
    while count + 1 < len(chunks) and chunks[count + 1].first_seq <= seq:
        count += 1
    return count


def _read_start(path: Path) -> int | None:
    """The seq ``START`` names, or None when there is none (a log never trimmed)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"redo log {path}: cannot read: {exc}") from exc
    if len(data) != _START.size:
        raise CorruptionError(f"redo log {path}: {len(data)} bytes, expected {_START.size}")
    seq, crc = _START.unpack(data)
    if zlib.crc32(data[:8]) != crc or seq < 1:
        raise CorruptionError(f"redo log {path}: CRC mismatch or seq 0")
    return int(seq)


def _write_start(directory: Path, seq: int) -> None:
    """Replace ``START`` atomically and durably: a temporary file, fsync, rename, dir fsync."""
    packed = struct.pack("<Q", seq)
    data = _START.pack(seq, zlib.crc32(packed))
    temporary = directory / (START_NAME + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, directory / START_NAME)
    _fsync_dir(directory)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
