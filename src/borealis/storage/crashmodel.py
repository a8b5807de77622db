"""A crash model for a real storage-node process: kill -9 plus the loss of what was not synced.

A kill -9 loses nothing a process wrote: its ``write``s and LMDB commits are in the OS page
cache and the restarted process reads them back. A power loss keeps only what an fsync made
durable. To test the second without a FUSE file system, a node started with
``BOREALIS_CRASH_MODEL=lose-unsynced`` (``cli/storage_node.py``) runs its redo log and page
store inside wrappers that keep, beside the data, a record of what is durable at every moment
the node could rely on it; ``lose_unsynced`` then rolls a node's files back to that record
after the node was killed. The model is the storage contracts, exactly:

* Redo log (``RedoLog``): an entry is durable once a ``sync`` that started after its
  ``append`` has returned. ``SyncRecordingRedoLog.sync`` records, before it returns and only
  when the sync wrote and fdatasynced something, the size of every chunk file (all of them:
  the log fsyncs a chunk before it creates the next, so every byte of every chunk is then
  durable). The end of the recovery pass records the same (FileRedoLog's recovery fdatasyncs
  the last chunk: what it yields it reports as synced). A no-op sync records nothing: bytes
  a previous process wrote and never synced stay undurable until a real fdatasync.
* Page store (``PageStore``): durable once ``sync()`` returns. ``CheckpointingPageStore.sync``
  takes, after the real sync and under a lock that keeps every write out, a consistent copy of
  the LMDB environment (``LmdbPageStore.copy_to`` to a temporary file, then an atomic
  rename), so no sync the node relies on is newer than the checkpoint. A sync with no write
  since the last checkpoint copies nothing.

The records only have to survive a kill -9 (the kill is the crash; the model is applied to
the files afterwards), so they are written without fsync: a redo record is one ``pwrite``
into one of two CRC-checked slots (the other keeps the previous record, as LMDB's two meta
pages do), a checkpoint is renamed into place.

``lose_unsynced`` is conservative where the model cannot see: a sync killed after its
fdatasync but before it returned loses its entries (the node never acknowledged them, and the
contract allows it). It may leave a torn tail (random bytes, or the start of the first lost
entry) at the end of the last chunk, which FileRedoLog's recovery must truncate.

Everything lives in ``DIR/crash-model/``: ``redo-synced`` (the record) and ``pages.mdb`` (the
checkpoint). A test mode: it costs a copy of the page store per page-store sync.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis.errors import ConfigError, StorageError
from borealis.storage.pagestore import LmdbPageStore, Version
from borealis.storage.redolog import (
    CHUNK_BYTES_MAX_DEFAULT,
    HEADER_BYTES,
    MAGIC,
    REDO_DIR_NAME,
    FileRedoLog,
)

log = logging.getLogger(__name__)

CRASH_MODEL_ENV = "BOREALIS_CRASH_MODEL"
LOSE_UNSYNCED = "lose-unsynced"
CRASH_MODELS = (LOSE_UNSYNCED,)

MODEL_DIR_NAME = "crash-model"
REDO_RECORD_NAME = "redo-synced"
PAGES_CHECKPOINT_NAME = "pages.mdb"
PAGES_DIR_NAME = "pages"
"""As ``StorageNode`` names them: ``DIR/redo`` and ``DIR/pages``."""

RECORD_SLOT_BYTES = 16384
"""One slot of the redo record: ~400 chunks of 64 MiB (25 GiB of log) fit in one."""
TORN_TAIL_BYTES_MAX = HEADER_BYTES + 64
CHECKPOINT_LOG_EVERY = 20
"""Checkpoints between two INFO lines summing up their cost."""

_SLOT_HEADER = struct.Struct("<4sQII")  # magic, counter, length, crc32 of the JSON body
_SLOT_MAGIC = b"BCM1"
_FRAME = struct.Struct("<4sIIQ")  # the redo log's entry header: magic, crc, length, seq

assert _FRAME.size == HEADER_BYTES
assert _SLOT_HEADER.size < RECORD_SLOT_BYTES


class CrashModelError(StorageError):
    """The files contradict the model (a byte recorded as synced is gone), or a node was
    not run with the crash model: nothing was rolled back."""

    code = "crash_model"


def crash_model_from_env(environ: Mapping[str, str]) -> str | None:
    """The crash model ``BOREALIS_CRASH_MODEL`` asks for, or None (the default: none)."""
    value = environ.get(CRASH_MODEL_ENV, "").strip()
    if not value:
        return None
    if value not in CRASH_MODELS:
        raise ConfigError(f"{CRASH_MODEL_ENV}={value!r}: expected one of {list(CRASH_MODELS)}")
    return value


def model_dir(data_dir: Path) -> Path:
    return data_dir / MODEL_DIR_NAME


def open_node_files(data_dir: Path, *, chunk_bytes_max: int = CHUNK_BYTES_MAX_DEFAULT
                    ) -> tuple[SyncRecordingRedoLog, CheckpointingPageStore]:
    """The redo log and page store a ``StorageNode`` in ``data_dir`` would open, wrapped."""
    directory = model_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    redo = SyncRecordingRedoLog(
        FileRedoLog(data_dir / REDO_DIR_NAME, chunk_bytes_max=chunk_bytes_max), directory)
    store = CheckpointingPageStore(LmdbPageStore(data_dir / PAGES_DIR_NAME), directory)
    log.warning("crash model %s: redo syncs recorded and the page store checkpointed at "
                "every sync, in %s (a test mode)", LOSE_UNSYNCED, directory)
    return redo, store


# --- the redo record -------------------------------------------------------------------------


def _encode_slot(counter: int, record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":")).encode()
    if _SLOT_HEADER.size + len(body) > RECORD_SLOT_BYTES:
        raise CrashModelError(f"crash model: a redo record of {len(body)} bytes does not fit "
                              f"a slot of {RECORD_SLOT_BYTES}")
    return _SLOT_HEADER.pack(_SLOT_MAGIC, counter, len(body), zlib.crc32(body)) + body


def _decode_slot(data: bytes) -> tuple[int, dict[str, Any]] | None:
    if len(data) < _SLOT_HEADER.size:
        return None
    magic, counter, length, crc = _SLOT_HEADER.unpack_from(data)
    body = data[_SLOT_HEADER.size : _SLOT_HEADER.size + length]
    if magic != _SLOT_MAGIC or len(body) != length or zlib.crc32(body) != crc:
        return None
    record: dict[str, Any] = json.loads(body)
    return counter, record


def read_redo_record(path: Path) -> tuple[int, dict[str, Any]] | None:
    """(counter, record) of the newer valid slot of a record file, or None."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CrashModelError(f"crash model: cannot read {path}: {exc}") from exc
    slots = [_decode_slot(data[k * RECORD_SLOT_BYTES : (k + 1) * RECORD_SLOT_BYTES])
             for k in range(2)]
    valid = [slot for slot in slots if slot is not None]
    return max(valid, key=lambda slot: slot[0]) if valid else None


class _RecordFile:
    """The two-slot record file, open for the life of a log: one ``pwrite`` a record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        found = read_redo_record(path)
        self.counter = found[0] if found is not None else 0
        self.record = found[1] if found is not None else None
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CrashModelError(f"crash model: cannot open {path}: {exc}") from exc

    def write(self, record: dict[str, Any]) -> None:
        assert self._fd is not None
        counter = self.counter + 1
        data = _encode_slot(counter, record)
        # A pwrite the kill interrupts can only tear the slot it writes: the other one holds
        # the previous record.
        written = os.pwrite(self._fd, data, (counter % 2) * RECORD_SLOT_BYTES)
        assert written == len(data)
        self.counter = counter
        self.record = record

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_redo_record(path: Path, chunks: list[tuple[str, int]]) -> None:
    """Write a record (used by ``lose_unsynced`` for the state it leaves, all durable)."""
    record = _RecordFile(path)
    try:
        record.write({"chunks": [[name, size] for name, size in chunks]})
    finally:
        record.close()


def _chunk_sizes(paths: Iterable[Path]) -> list[tuple[str, int]]:
    try:
        return [(path.name, os.stat(path).st_size) for path in paths]
    except OSError as exc:
        raise CrashModelError(f"crash model: cannot stat a redo chunk: {exc}") from exc


# --- the wrappers ----------------------------------------------------------------------------


class SyncRecordingRedoLog:
    """A ``FileRedoLog`` that records the size of its chunks each time a sync that wrote
    something returns (and when its recovery pass ends). Otherwise the log itself."""

    def __init__(self, inner: FileRedoLog, directory: Path) -> None:
        self.inner = inner
        self._record = _RecordFile(directory / REDO_RECORD_NAME)
        # Serialises the syncs with their records: a record always describes a sync that
        # has completed, never one that runs.
        self._lock = threading.Lock()
        self._recovered = False
        self.records_written = 0

    @property
    def synced_seq(self) -> int:
        return self.inner.synced_seq

    @property
    def next_seq(self) -> int:
        return self.inner.next_seq

    @property
    def start_seq(self) -> int:
        return self.inner.start_seq

    def append(self, payload: bytes) -> int:
        return self.inner.append(payload)

    def sync(self) -> int:
        with self._lock:
            before = self.inner.synced_seq
            synced = self.inner.sync()
            if synced != before:
                # The sync wrote and fdatasynced: every byte of every chunk is durable.
                assert synced > before
                self._write_record()
            return synced

    def replay(self) -> Iterator[tuple[int, bytes]]:
        if self._recovered:
            yield from self.inner.replay()
            return
        yield from self.inner.replay()
        # The recovery pass ended: it truncated a torn tail (fsynced) and fdatasynced the
        # last chunk, and reports everything it yielded as synced.
        with self._lock:
            self._recovered = True
            self._write_record()

    def drop_chunks_before(self, seq: int) -> int:
        with self._lock:
            dropped = self.inner.drop_chunks_before(seq)
            if dropped:
                self._write_record()  # an unlink is durable once the dir is fsynced
            return dropped

    def close(self) -> None:
        with self._lock:
            self.inner.close()
            self._record.close()

    def _write_record(self) -> None:
        chunks = _chunk_sizes(self.inner.chunk_paths)
        self._record.write({"chunks": [[name, size] for name, size in chunks],
                            "synced_seq": self.inner.synced_seq})
        self.records_written += 1


@dataclass
class CheckpointStats:
    """What the checkpoints cost: how many, how long the copies took, how big they were."""

    syncs: int = 0
    checkpoints: int = 0
    copy_s_total: float = 0.0
    copy_s_max: float = 0.0
    bytes_last: int = 0


class CheckpointingPageStore:
    """An ``LmdbPageStore`` whose ``sync`` also leaves a checkpoint: a consistent copy of the
    environment as of that sync. Reads go straight through; writes and the sync with its
    copy take one lock, so no write lands between the sync and its copy."""

    def __init__(self, inner: LmdbPageStore, directory: Path) -> None:
        self.inner = inner
        self.checkpoint_path = directory / PAGES_CHECKPOINT_NAME
        self.stats = CheckpointStats()
        self._lock = threading.Lock()
        if self.checkpoint_path.exists():
            # What the store holds beyond the checkpoint was committed by a process that
            # was killed before it synced it: not durable until this process syncs.
            self._dirty = True
        else:
            # The first open under the model: what is there is the baseline.
            self._checkpoint()
            self._dirty = False

    # -- writes ---------------------------------------------------------------------------

    def put_versions(self, items: Iterable[Version], *,
                     meta: dict[str, bytes] | None = None) -> None:
        with self._lock:
            self._dirty = True
            self.inner.put_versions(items, meta=meta)

    def put_meta(self, items: dict[str, bytes]) -> None:
        with self._lock:
            self._dirty = True
            self.inner.put_meta(items)

    def gc(self, segment_key: str, below_lsn: int) -> int:
        with self._lock:
            self._dirty = True
            return self.inner.gc(segment_key, below_lsn)

    def delete_version(self, segment_key: str, page: int, lsn: int) -> bool:
        with self._lock:
            self._dirty = True
            return self.inner.delete_version(segment_key, page, lsn)

    def drop_segment(self, segment_key: str) -> int:
        with self._lock:
            self._dirty = True
            return self.inner.drop_segment(segment_key)

    def sync(self) -> None:
        with self._lock:
            self.inner.sync()
            self.stats.syncs += 1
            if self._dirty:
                self._checkpoint()
                self._dirty = False

    def close(self) -> None:
        with self._lock:
            self.inner.close()

    # -- reads ----------------------------------------------------------------------------

    def get_version_at(self, segment_key: str, page: int, lsn: int) -> tuple[int, bytes] | None:
        return self.inner.get_version_at(segment_key, page, lsn)

    def get_versions_at(self, segment_key: str, pages: Iterable[int],
                        lsn: int) -> dict[int, tuple[int, bytes]]:
        return self.inner.get_versions_at(segment_key, pages, lsn)

    def versions(self, segment_key: str, page: int) -> list[int]:
        return self.inner.versions(segment_key, page)

    def iter_pages(self, segment_key: str, upto_lsn: int) -> Iterator[tuple[int, int, bytes]]:
        return self.inner.iter_pages(segment_key, upto_lsn)

    def get_meta(self, key: str) -> bytes | None:
        return self.inner.get_meta(key)

    # -- the checkpoint -------------------------------------------------------------------

    def _checkpoint(self) -> None:
        """Copy the environment (as of its last commit, which the caller just synced)
        beside the data, then rename the copy into place: a kill leaves the old checkpoint
        or the new one, never half of one."""
        started = time.perf_counter()
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        size = self.inner.copy_to(tmp)
        try:
            os.replace(tmp, self.checkpoint_path)
        except OSError as exc:
            raise CrashModelError(f"crash model: cannot install {self.checkpoint_path}: "
                                  f"{exc}") from exc
        took_s = time.perf_counter() - started
        stats = self.stats
        stats.checkpoints += 1
        stats.copy_s_total += took_s
        stats.copy_s_max = max(stats.copy_s_max, took_s)
        stats.bytes_last = size
        if stats.checkpoints % CHECKPOINT_LOG_EVERY == 0:
            log.info("crash model checkpoints=%d syncs=%d copy_ms_mean=%.1f copy_ms_max=%.1f "
                     "bytes=%d", stats.checkpoints, stats.syncs,
                     1000 * stats.copy_s_total / stats.checkpoints, 1000 * stats.copy_s_max,
                     size)


# --- the crash -------------------------------------------------------------------------------


def _frames(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, end, seq) of each complete frame at the start of ``data``, in order: how
    many entries a discarded tail held (the CRC is not checked: these bytes are dropped)."""
    frames: list[tuple[int, int, int]] = []
    offset = 0
    while len(data) - offset >= HEADER_BYTES:
        magic, _, length, seq = _FRAME.unpack_from(data, offset)
        end = offset + HEADER_BYTES + length
        if magic != MAGIC or end > len(data):
            break
        frames.append((offset, end, seq))
        offset = end
    return frames


def _truncate(path: Path, size_bytes: int) -> None:
    try:
        os.truncate(path, size_bytes)
    except OSError as exc:
        raise CrashModelError(f"crash model: cannot truncate {path}: {exc}") from exc


def lose_unsynced(data_dir: Path, rng: random.Random, *,
                  torn_probability: float = 0.5) -> dict[str, Any]:
    """Roll the files of a storage node that is NOT running back to what its last syncs
    made durable, as a power loss would; return what was discarded.

    Redo: each chunk is cut to its recorded size; a chunk not in the record, and every chunk
    after one that was cut, is deleted (the log stays a contiguous run of seqs). When bytes
    were lost, with ``torn_probability`` the last chunk kept then ends in a torn write: the
    first bytes of the first entry lost, random bytes or zeros. Pages: the checkpoint
    replaces ``data.mdb``.

    Raises ``CrashModelError`` (having changed nothing) if the node never ran with the model,
    or if a byte the record says was synced is missing (the log lost synced data).
    """
    assert 0.0 <= torn_probability <= 1.0
    directory = model_dir(data_dir)
    found = read_redo_record(directory / REDO_RECORD_NAME)
    if found is None:
        raise CrashModelError(f"crash model: no redo record in {directory}: the node did "
                              "not run with the crash model")
    recorded = {str(name): int(size) for name, size in found[1]["chunks"]}
    redo_dir = data_dir / REDO_DIR_NAME
    chunks = sorted(p for p in redo_dir.glob("*.redo") if p.is_file())
    # Check everything before changing anything.
    for path in chunks:
        durable = recorded.get(path.name)
        if durable is not None and path.stat().st_size < durable:
            raise CrashModelError(f"crash model: {path} holds {path.stat().st_size} bytes, "
                                  f"{durable} were synced: the log lost synced data")
    discarded_bytes = 0
    discarded_seqs: list[int] = []
    first_lost = b""
    deleted: list[str] = []
    cut_chunks: list[str] = []
    kept: list[Path] = []
    cut = False  # once a chunk lost bytes, every later chunk is newer than the last sync
    for path in chunks:
        data = path.read_bytes()
        durable = None if cut else recorded.get(path.name)
        keep_bytes = durable or 0
        if len(data) > keep_bytes:
            lost = data[keep_bytes:]
            frames = _frames(lost)
            discarded_seqs += [seq for _, _, seq in frames]
            if not first_lost:
                first_lost = lost[frames[0][0] : frames[0][1]] if frames else lost
            discarded_bytes += len(lost)
        if durable is None:
            path.unlink()
            deleted.append(path.name)
            cut = True
            continue
        if len(data) > durable:
            _truncate(path, durable)
            cut_chunks.append(path.name)
            cut = True
        kept.append(path)
    torn: dict[str, Any] | None = None
    if kept and discarded_bytes and rng.random() < torn_probability:
        torn = _tear(kept[-1], first_lost, rng)
    write_redo_record(directory / REDO_RECORD_NAME, _chunk_sizes(kept))
    return {
        "redo": {"bytes": discarded_bytes, "entries": len(discarded_seqs),
                 "seqs": [min(discarded_seqs), max(discarded_seqs)] if discarded_seqs else [],
                 "chunks_cut": cut_chunks, "chunks_deleted": deleted, "torn": torn},
        "pages": restore_pages(data_dir),
    }


def _tear(path: Path, first_lost: bytes, rng: random.Random) -> dict[str, Any]:
    """Append a torn write to ``path``: the start of the first lost entry (its end never
    reached the disk), or random bytes, or zeros (a block the file grew by but whose data
    never came)."""
    kind = rng.choice(("partial-entry", "random-bytes", "zeros"))
    if kind == "partial-entry" and len(first_lost) > 1:
        tail = first_lost[: rng.randrange(1, len(first_lost))]
    elif kind == "zeros":
        tail = bytes(rng.randint(1, TORN_TAIL_BYTES_MAX))
    else:
        kind = "random-bytes"
        tail = rng.randbytes(rng.randint(1, TORN_TAIL_BYTES_MAX))
    with open(path, "ab") as file:
        file.write(tail)
    return {"chunk": path.name, "kind": kind, "bytes": len(tail)}


def restore_pages(data_dir: Path) -> dict[str, Any]:
    """Put the page-store checkpoint in place of ``data.mdb`` (the lock file goes too)."""
    checkpoint = model_dir(data_dir) / PAGES_CHECKPOINT_NAME
    pages = data_dir / PAGES_DIR_NAME
    if not checkpoint.exists():
        return {"restored": False}
    data_path = pages / "data.mdb"
    before = _coalesced_points(data_path)
    after = _coalesced_points(checkpoint)
    tmp = pages / "data.mdb.crash-model"
    try:
        shutil.copyfile(checkpoint, tmp)
        os.replace(tmp, data_path)
        (pages / "lock.mdb").unlink(missing_ok=True)
    except OSError as exc:
        raise CrashModelError(f"crash model: cannot restore {data_path}: {exc}") from exc
    back = {key: before[key] - after.get(key, 0) for key in before
            if before[key] > after.get(key, 0)}
    return {"restored": True, "bytes": checkpoint.stat().st_size,
            "segments_rolled_back": len(back), "lsns_rolled_back": sum(back.values())}


def _coalesced_points(path: Path) -> dict[str, int]:
    """The coalesced point of every segment a page store file records (its ``meta``)."""
    import lmdb

    if not path.exists():
        return {}
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, subdir=False, max_dbs=2)
    except lmdb.Error as exc:
        raise CrashModelError(f"crash model: cannot open {path}: {exc}") from exc
    try:
        meta = env.open_db(b"meta", create=False)
        with env.begin(db=meta) as txn:
            return {bytes(key).decode(): int(bytes(value))
                    for key, value in txn.cursor() if bytes(key).startswith(b"coalesced:")}
    except lmdb.NotFoundError:
        return {}
    except lmdb.Error as exc:
        raise CrashModelError(f"crash model: cannot read {path}: {exc}") from exc
    finally:
        env.close()
