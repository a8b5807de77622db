"""The storage node's redo log: group commit, torn-tail recovery, corruption, chunks, crashes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from borealis.errors import CorruptionError, StorageError
from borealis.storage import redolog as redolog_module
from borealis.storage.redolog import (
    HEADER_BYTES,
    FileRedoLog,
    MemoryRedoLog,
    RedoLog,
    chunk_name,
    encode_entry,
)


def open_log(path: Path, **kwargs: int) -> tuple[FileRedoLog, list[tuple[int, bytes]]]:
    """Open and recover: the way a storage node starts."""
    redo = FileRedoLog(path, **kwargs)
    return redo, list(redo.replay())


def write_synced(path: Path, payloads: list[bytes], **kwargs: int) -> FileRedoLog:
    redo, _ = open_log(path, **kwargs)
    for payload in payloads:
        redo.append(payload)
    redo.sync()
    redo.close()
    return redo


def payloads(count: int, size: int = 10) -> list[bytes]:
    return [bytes([i % 256]) * size + f"entry{i}".encode() for i in range(1, count + 1)]


def test_append_sync_replay_round_trip(tmp_path: Path) -> None:
    redo, entries = open_log(tmp_path / "redo")
    assert entries == []
    assert redo.synced_seq == 0
    assert [redo.append(b"a"), redo.append(b""), redo.append(b"c" * 1000)] == [1, 2, 3]
    assert redo.synced_seq == 0  # appended is not durable
    assert redo.sync() == 3
    assert redo.synced_seq == 3
    assert redo.sync() == 3  # nothing new: no write
    assert list(redo.replay()) == [(1, b"a"), (2, b""), (3, b"c" * 1000)]
    redo.close()

    redo, entries = open_log(tmp_path / "redo")
    assert entries == [(1, b"a"), (2, b""), (3, b"c" * 1000)]
    assert redo.synced_seq == 3
    assert redo.next_seq == 4
    assert redo.append(b"d") == 4
    redo.close()


def test_unsynced_appends_are_lost_at_close(tmp_path: Path) -> None:
    redo, _ = open_log(tmp_path)
    redo.append(b"kept")
    redo.sync()
    redo.append(b"lost")
    redo.close()
    redo, entries = open_log(tmp_path)
    assert entries == [(1, b"kept")]
    assert redo.append(b"again") == 2  # the lost seq is reused, as after a crash


def test_append_before_recovery_is_refused(tmp_path: Path) -> None:
    redo = FileRedoLog(tmp_path)
    with pytest.raises(AssertionError):
        redo.append(b"x")


@pytest.mark.parametrize(
    "tear",
    ["half_header", "half_payload", "crc_of_last", "zeros_after", "garbage_after"],
)
def test_torn_tail_is_truncated_and_appends_continue(tmp_path: Path, tear: str) -> None:
    write_synced(tmp_path, payloads(3, size=100))
    (chunk,) = sorted(tmp_path.iterdir())
    good_size = chunk.stat().st_size
    last_entry_bytes = HEADER_BYTES + len(payloads(3, size=100)[2])
    data = bytearray(chunk.read_bytes())
    expected = 3
    if tear == "half_header":
        data += encode_entry(4, b"x" * 50)[: HEADER_BYTES // 2]
    elif tear == "half_payload":
        data += encode_entry(4, b"x" * 50)[: HEADER_BYTES + 20]
    elif tear == "crc_of_last":
        data[-1] ^= 0xFF  # bit rot in the last entry looks exactly like a torn write
        expected = 2
        good_size -= last_entry_bytes
    elif tear == "zeros_after":
        data += bytes(4096)  # a crash after the file grew but before its data landed
    else:
        data += b"\x13\x37" * 100
    chunk.write_bytes(bytes(data))

    redo, entries = open_log(tmp_path)
    assert [seq for seq, _ in entries] == list(range(1, expected + 1))
    assert chunk.stat().st_size == good_size
    assert redo.append(b"after") == expected + 1
    redo.sync()
    redo.close()
    redo, entries = open_log(tmp_path)
    assert entries[-1] == (expected + 1, b"after")
    assert len(entries) == expected + 1


def test_first_entry_torn_leaves_an_empty_chunk(tmp_path: Path) -> None:
    write_synced(tmp_path, [])
    (chunk,) = sorted(tmp_path.iterdir())
    chunk.write_bytes(encode_entry(1, b"y" * 30)[:25])
    redo, entries = open_log(tmp_path)
    assert entries == []
    assert chunk.stat().st_size == 0
    assert redo.append(b"first") == 1


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_corrupt_entry_in_the_middle_raises(tmp_path: Path) -> None:
    write_synced(tmp_path, payloads(3, size=100))
    (chunk,) = sorted(tmp_path.iterdir())
    entry_bytes = HEADER_BYTES + len(payloads(3, size=100)[0])
    flip(chunk, entry_bytes + HEADER_BYTES + 5)  # inside entry 2's payload; entry 3 follows
    redo = FileRedoLog(tmp_path)
    with pytest.raises(CorruptionError) as caught:
        list(redo.replay())
    assert str(chunk) in str(caught.value)
    assert f"offset {entry_bytes}" in str(caught.value)
    assert chunk.stat().st_size == 3 * entry_bytes  # nothing truncated


def test_corrupt_header_in_the_middle_raises(tmp_path: Path) -> None:
    write_synced(tmp_path, payloads(3, size=100))
    (chunk,) = sorted(tmp_path.iterdir())
    flip(chunk, 0)  # entry 1's magic
    with pytest.raises(CorruptionError, match="offset 0"):
        list(FileRedoLog(tmp_path).replay())


def test_chunk_rotation_and_drop_chunks_before(tmp_path: Path) -> None:
    entries_in = payloads(10, size=50)
    frame_bytes = HEADER_BYTES + len(entries_in[0])
    chunk_bytes_max = 2 * frame_bytes + 10  # two entries a chunk
    redo, _ = open_log(tmp_path, chunk_bytes_max=chunk_bytes_max)
    for payload in entries_in[:3]:
        redo.append(payload)
    redo.sync()
    for payload in entries_in[3:]:
        redo.append(payload)
    redo.sync()  # one sync that fills several chunks
    names = [path.name for path in redo.chunk_paths]
    assert names == [chunk_name(seq) for seq in (1, 3, 5, 7, 9)]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert all(path.stat().st_size <= chunk_bytes_max for path in redo.chunk_paths)
    assert list(redo.replay()) == list(enumerate(entries_in, start=1))

    assert redo.drop_chunks_before(4) == 2  # [1, 2] only: chunk [3, 4] holds seq 4
    assert [seq for seq, _ in redo.replay()] == list(range(4, 11))  # exactly from 4
    assert redo.drop_chunks_before(4) == 0
    assert redo.drop_chunks_before(7) == 4  # [3, 4] and [5, 6]
    assert [path.name for path in redo.chunk_paths] == [chunk_name(7), chunk_name(9)]
    redo.close()
    redo, entries = open_log(tmp_path, chunk_bytes_max=chunk_bytes_max)
    assert [seq for seq, _ in entries] == [7, 8, 9, 10]

    # Past every synced entry: the start is the next seq, and the open chunk stays.
    assert redo.drop_chunks_before(1000) == 2
    assert [path.name for path in redo.chunk_paths] == [chunk_name(9)]
    assert list(redo.replay()) == []
    redo.close()

    redo, entries = open_log(tmp_path, chunk_bytes_max=chunk_bytes_max)
    assert entries == []
    assert redo.append(b"next") == 11
    redo.sync()
    redo.close()
    redo, entries = open_log(tmp_path, chunk_bytes_max=chunk_bytes_max)
    assert entries == [(11, b"next")]


def test_a_trim_interrupted_after_its_start_is_finished_by_recovery(tmp_path: Path) -> None:
    entries_in = payloads(8, size=50)
    chunk_bytes_max = 2 * (HEADER_BYTES + len(entries_in[0])) + 10
    write_synced(tmp_path, entries_in, chunk_bytes_max=chunk_bytes_max)
    chunks_before = sorted(p.name for p in tmp_path.glob("*.redo"))
    # A crash right after START was written: no chunk deleted yet.
    redolog_module._write_start(tmp_path, 6)
    redo, entries = open_log(tmp_path, chunk_bytes_max=chunk_bytes_max)
    assert [seq for seq, _ in entries] == [6, 7, 8]
    assert sorted(p.name for p in tmp_path.glob("*.redo")) == chunks_before[2:]
    assert redo.append(b"next") == 9


def test_a_start_beyond_the_entries_is_corruption(tmp_path: Path) -> None:
    write_synced(tmp_path, payloads(3, size=50))
    redolog_module._write_start(tmp_path, 9)
    with pytest.raises(CorruptionError, match="starts at seq 9"):
        list(FileRedoLog(tmp_path).replay())


def test_a_corrupt_start_file_is_corruption(tmp_path: Path) -> None:
    write_synced(tmp_path, payloads(3, size=50))
    redolog_module._write_start(tmp_path, 2)
    flip(tmp_path / redolog_module.START_NAME, 0)
    with pytest.raises(CorruptionError, match="START"):
        list(FileRedoLog(tmp_path).replay())


def test_corruption_in_an_older_chunk_raises_even_at_its_tail(tmp_path: Path) -> None:
    entries_in = payloads(6, size=50)
    chunk_bytes_max = 2 * (HEADER_BYTES + len(entries_in[0]))
    write_synced(tmp_path, entries_in, chunk_bytes_max=chunk_bytes_max)
    first = sorted(tmp_path.iterdir())[0]
    flip(first, first.stat().st_size - 1)
    with pytest.raises(CorruptionError, match=first.name):
        list(FileRedoLog(tmp_path, chunk_bytes_max=chunk_bytes_max).replay())


def test_a_missing_chunk_raises(tmp_path: Path) -> None:
    entries_in = payloads(6, size=50)
    chunk_bytes_max = 2 * (HEADER_BYTES + len(entries_in[0]))
    write_synced(tmp_path, entries_in, chunk_bytes_max=chunk_bytes_max)
    (tmp_path / chunk_name(3)).unlink()
    with pytest.raises(CorruptionError, match="missing"):
        list(FileRedoLog(tmp_path, chunk_bytes_max=chunk_bytes_max).replay())


def test_sync_on_another_thread_while_appending(tmp_path: Path) -> None:
    redo, _ = open_log(tmp_path, chunk_bytes_max=64 * 1024)
    count = 5000
    done = threading.Event()
    synced: list[int] = []

    def syncer() -> None:
        while not done.is_set():
            synced.append(redo.sync())

    worker = threading.Thread(target=syncer)
    worker.start()
    try:
        for i in range(count):
            assert redo.append(i.to_bytes(4, "big") * 8) == i + 1
    finally:
        done.set()
        worker.join()
    assert synced == sorted(synced)  # synced_seq never goes back
    redo.sync()
    redo.close()
    _, entries = open_log(tmp_path, chunk_bytes_max=64 * 1024)
    assert [seq for seq, _ in entries] == list(range(1, count + 1))
    assert all(payload == (seq - 1).to_bytes(4, "big") * 8 for seq, payload in entries)


def test_a_failed_sync_makes_the_log_refuse_further_syncs(tmp_path: Path) -> None:
    redo, _ = open_log(tmp_path)
    redo.append(b"a")
    fd = redo._fd
    assert fd is not None
    os.close(fd)  # the disk goes away under the log
    with pytest.raises(StorageError, match="sync failed"):
        redo.sync()
    redo.append(b"b")
    with pytest.raises(StorageError, match="unusable"):
        redo.sync()
    redo._fd = None


# --- MemoryRedoLog, the simulator's log ----------------------------------------------------


def test_memory_crash_loses_exactly_the_unsynced_entries() -> None:
    redo = MemoryRedoLog()
    for payload in (b"a", b"b", b"c"):
        redo.append(payload)
    assert redo.sync() == 3
    assert redo.append(b"d") == 4
    assert redo.append(b"e") == 5
    assert list(redo.replay()) == [(1, b"a"), (2, b"b"), (3, b"c")]  # durable only
    assert redo.crash() == 2
    assert list(redo.replay()) == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert redo.synced_seq == 3
    assert redo.append(b"f") == 4  # seqs reused, like the file log after a restart
    assert redo.crash(unsynced_kept=1) == 0
    assert list(redo.replay())[-1] == (4, b"f")
    assert redo.synced_seq == 4


def test_memory_crash_may_keep_a_prefix_of_the_unsynced() -> None:
    redo = MemoryRedoLog()
    redo.append(b"a")
    redo.sync()
    for payload in (b"b", b"c", b"d"):
        redo.append(payload)
    assert redo.crash(unsynced_kept=2) == 1
    assert list(redo.replay()) == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert redo.next_seq == 4


def test_memory_drop_chunks_before_keeps_every_entry_at_or_above() -> None:
    redo = MemoryRedoLog()
    for i in range(10):
        redo.append(bytes([i]))
    redo.sync()
    redo.append(b"unsynced")
    assert redo.drop_chunks_before(5) == 4
    assert [seq for seq, _ in redo.replay()] == list(range(5, 11))
    assert redo.drop_chunks_before(100) == 6  # the durable ones; the unsynced one stays
    redo.sync()
    assert list(redo.replay()) == [(11, b"unsynced")]


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_both_logs_keep_the_protocol(tmp_path: Path, kind: str) -> None:
    redo: RedoLog
    if kind == "memory":
        redo = MemoryRedoLog()
    else:
        redo, _ = open_log(tmp_path)
    assert redo.next_seq == 1
    seqs = [redo.append(f"p{i}".encode()) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert redo.synced_seq == 0
    assert redo.sync() == 5
    assert [payload for _, payload in redo.replay()] == [f"p{i}".encode() for i in range(5)]
    assert redo.drop_chunks_before(1) == 0
    redo.close()


def test_an_entry_larger_than_a_chunk_gets_a_chunk_of_its_own(tmp_path: Path) -> None:
    chunk_bytes_max = 200
    redo, _ = open_log(tmp_path, chunk_bytes_max=chunk_bytes_max)
    big = b"x" * 1000
    for payload in (b"a", big, b"b"):
        redo.append(payload)
    redo.sync()
    assert [path.name for path in redo.chunk_paths] == [chunk_name(1), chunk_name(2),
                                                       chunk_name(3)]
    redo.close()
    _, entries = open_log(tmp_path, chunk_bytes_max=chunk_bytes_max)
    assert entries == [(1, b"a"), (2, big), (3, b"b")]
