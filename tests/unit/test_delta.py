"""The page delta codec against naive reference models, and against every malformed payload."""

from __future__ import annotations

import random
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from borealis import delta
from borealis.delta import DeltaFormat, apply, apply_delta, encode, encode_delta
from borealis.errors import CorruptionError

PAGE_BYTES = 4096


# --- naive reference models ----------------------------------------------------------------


def reference_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def reference_patch(old: bytes, new: bytes) -> bytes:
    """PATCH built byte by byte: runs of changed bytes, merged across short unchanged gaps."""
    runs: list[list[int]] = []
    for i in range(len(new)):
        if old[i] != new[i]:
            if runs and i - runs[-1][1] <= delta.GAP_MERGE_MAX:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
    out = reference_varint(len(new)) + reference_varint(len(runs))
    previous_end = 0
    for start, end in runs:
        out += reference_varint(start - previous_end) + reference_varint(end - start)
        out += new[start:end]
        previous_end = end
    return out


def reference_xor_zstd(old: bytes, new: bytes) -> bytes:
    xor = bytes(a ^ b for a, b in zip(old, new, strict=True))
    return bytes(delta._zstd.compressor.compress(xor))


def reference_choice(old: bytes, new: bytes) -> tuple[DeltaFormat, bytes]:
    """The smallest candidate; on a tie the cheaper to apply: IMAGE, then PATCH, then XOR_ZSTD."""
    candidates = [(DeltaFormat.IMAGE, new), (DeltaFormat.PATCH, reference_patch(old, new))]
    if new and old != new:  # the encoder skips zstd where a no-run patch always wins
        candidates.append((DeltaFormat.XOR_ZSTD, reference_xor_zstd(old, new)))
    return min(candidates, key=lambda candidate: (len(candidate[1]), candidate[0]))


# --- page pairs ----------------------------------------------------------------------------


def _base_page(rng: random.Random, kind: str, size: int) -> bytes:
    if kind == "zeros":
        return bytes(size)
    if kind == "text":
        words = [b"alice", b"bob", b"    ", b"\x00\x00\x01", b"Oslo", b"2024-06-01"]
        text = b"".join(rng.choice(words) for _ in range(size // 3 + 1))
        return text[:size]
    return rng.randbytes(size)


@st.composite
def page_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(old, new) pages of one length: none, a few, many or all bytes changed."""
    size = draw(st.one_of(st.just(PAGE_BYTES), st.integers(min_value=0, max_value=300)))
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
    old = _base_page(rng, draw(st.sampled_from(["random", "zeros", "text"])), size)
    change = draw(st.sampled_from(["none", "few", "many", "whole", "fill"]))
    new = bytearray(old)
    if size == 0 or change == "none":
        pass
    elif change == "whole":
        new[:] = rng.randbytes(size)
    else:
        ranges = {"few": (1, 3), "many": (10, 200), "fill": (1, 20)}[change]
        for _ in range(rng.randint(*ranges)):
            offset = rng.randrange(size)
            length = min(size - offset, rng.randint(1, 8 if change == "many" else 64))
            if change == "fill":  # compressible new bytes: XOR_ZSTD's territory
                new[offset : offset + length] = bytes([rng.randrange(256)]) * length
            else:
                new[offset : offset + length] = rng.randbytes(length)
    return old, bytes(new)


# --- round trips and the choice ------------------------------------------------------------


@given(page_pairs())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(pair: tuple[bytes, bytes]) -> None:
    old, new = pair
    fmt, payload = encode_delta(old, new)
    event(f"chose {fmt.name}")
    page = apply_delta(old, fmt, payload)
    assert page == new
    assert type(page) is bytes
    assert apply(old, encode(old, new)) == new
    assert encode(old, new) == bytes([fmt]) + payload


@given(page_pairs())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_choice_is_never_larger_than_any_alternative(pair: tuple[bytes, bytes]) -> None:
    # DESIGN decision 2: "a byte-range patch or XOR+zstd against the previous version,
    # whichever is smaller".
    old, new = pair
    fmt, payload = encode_delta(old, new)
    patch = reference_patch(old, new)
    assert apply_delta(old, DeltaFormat.PATCH, patch) == new
    alternatives = {DeltaFormat.IMAGE: new, DeltaFormat.PATCH: patch}
    if new:
        alternatives[DeltaFormat.XOR_ZSTD] = reference_xor_zstd(old, new)
    for alternative in alternatives.values():
        assert len(payload) <= len(alternative)
    assert payload == alternatives[fmt], "the chosen encoding is the one the model builds"


@given(page_pairs())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_choice_and_bytes_match_the_reference_model(pair: tuple[bytes, bytes]) -> None:
    # The numpy XOR and change map must not move a single output byte, ties included.
    old, new = pair
    assert encode_delta(old, new) == reference_choice(old, new)


def _flipped(old: bytes, offsets: list[int]) -> bytes:
    new = bytearray(old)
    for offset in offsets:
        new[offset] ^= 0xA5
    return bytes(new)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 512, 4095, 65536])
@pytest.mark.parametrize("base", ["random", "zeros"])
def test_runs_at_page_edges_and_sizes_match_the_reference(size: int, base: str) -> None:
    # Runs touching the first and the last byte, gaps of exactly GAP_MERGE_MAX (merged) and
    # one more (split), and on a 64 KiB page gaps that need three-byte varints.
    rng = random.Random(size)
    old = _base_page(rng, base, size)
    gap = delta.GAP_MERGE_MAX
    middle = size // 2
    edges = [0, size - 1]
    merged = [middle, middle + gap + 1, middle + 2 * gap + 2]
    split = [middle + 2 * gap + 2 + gap + 2]
    far = [20_000, 40_000, 40_001] if size > 40_001 else []
    for offsets in (edges, edges + merged, edges + merged + split + far, [size - 1], far):
        new = _flipped(old, [offset for offset in offsets if 0 <= offset < size])
        fmt, payload = encode_delta(old, new)
        assert (fmt, payload) == reference_choice(old, new)
        assert apply_delta(old, fmt, payload) == new
        assert apply_delta(old, DeltaFormat.PATCH, reference_patch(old, new)) == new


def test_every_page_byte_changed_round_trips() -> None:
    # No unchanged byte at all: one run as long as the page, which only IMAGE can beat.
    old = random.Random(11).randbytes(PAGE_BYTES)
    new = bytes(byte ^ 0xFF for byte in old)
    assert encode_delta(old, new) == reference_choice(old, new)
    assert apply(old, encode(old, new)) == new


@given(st.binary(max_size=5000))
def test_no_base_is_an_image(new: bytes) -> None:
    assert encode_delta(None, new) == (DeltaFormat.IMAGE, new)
    assert apply(None, encode(None, new)) == new
    assert apply(b"any old page", encode(None, new)) == new


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_pages_of_different_lengths_round_trip(old: bytes, new: bytes) -> None:
    fmt, payload = encode_delta(old, new)
    if len(old) != len(new):
        assert fmt == DeltaFormat.IMAGE
    assert apply_delta(old, fmt, payload) == new


def test_unchanged_page_is_three_bytes() -> None:
    page = random.Random(1).randbytes(PAGE_BYTES)
    fmt, payload = encode_delta(page, page)
    assert fmt == DeltaFormat.PATCH
    assert payload == reference_varint(PAGE_BYTES) + b"\x00"
    assert apply_delta(page, fmt, payload) == page


def test_wire_format_is_stable() -> None:
    old = bytes(16)
    new = bytes(3) + b"abc" + bytes(4) + b"z" + bytes(5)
    # tag PATCH, page length 16, 2 runs: (gap 3, 3 bytes "abc"), (gap 4, 1 byte "z")
    assert encode(old, new) == b"\x01\x10\x02\x03\x03abc\x04\x01z"
    assert [int(f) for f in DeltaFormat] == [0, 1, 2]


def test_short_gaps_are_merged_into_one_run() -> None:
    old = bytes(64)
    new = bytearray(old)
    new[10] = new[10 + delta.GAP_MERGE_MAX + 1] = 1
    fmt, payload = encode_delta(old, bytes(new))
    assert fmt == DeltaFormat.PATCH
    assert payload[1] == 1, "one run"
    new[10 + delta.GAP_MERGE_MAX + 2] = 1
    new[10 + delta.GAP_MERGE_MAX + 1] = 0
    fmt, payload = encode_delta(old, bytes(new))
    assert fmt == DeltaFormat.PATCH
    assert payload[1] == 2, "a gap wider than GAP_MERGE_MAX splits the runs"


def test_typical_oltp_change_is_small() -> None:
    rng = random.Random(7)
    old = rng.randbytes(PAGE_BYTES)
    new = bytearray(old)
    new[1:5] = rng.randbytes(4)  # page header: cell count, content area start
    new[1200:1260] = rng.randbytes(60)
    new[3000:3040] = rng.randbytes(40)
    blob = encode(old, bytes(new))
    assert len(blob) < 200
    assert apply(old, blob) == new


def test_compressible_scattered_change_uses_xor_zstd() -> None:
    old = bytes(PAGE_BYTES)
    new = bytearray(old)
    for offset in range(0, PAGE_BYTES, 16):
        new[offset : offset + 4] = b"\x07\x07\x07\x07"
    fmt, payload = encode_delta(old, bytes(new))
    assert fmt == DeltaFormat.XOR_ZSTD
    assert len(payload) < 100
    assert apply_delta(old, fmt, payload) == new


def test_real_sqlite_row_update_is_small(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size={PAGE_BYTES}")
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, balance INT, filler TEXT)")
    con.executemany("INSERT INTO t VALUES (?, 1000, ?)", ((i, " " * 84) for i in range(500)))
    before = path.read_bytes()
    con.execute("UPDATE t SET balance = balance + 17 WHERE id = 250")
    after = path.read_bytes()
    con.close()
    assert len(before) == len(after)
    changed = 0
    for offset in range(0, len(after), PAGE_BYTES):
        old, new = before[offset : offset + PAGE_BYTES], after[offset : offset + PAGE_BYTES]
        if old != new:
            changed += 1
            blob = encode(old, new)
            assert len(blob) < 64
            assert apply(old, blob) == new
    assert changed >= 2, "the row's leaf page and page 1's change counter"


def test_threads_each_get_their_own_zstd_contexts() -> None:
    pairs = [(bytes(PAGE_BYTES), random.Random(i).randbytes(64) * 64) for i in range(64)]

    def round_trip(pair: tuple[bytes, bytes]) -> bool:
        old, new = pair
        return all(apply(old, encode(old, new)) == new for _ in range(20))

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(round_trip, pairs))


# --- malformed payloads --------------------------------------------------------------------


def _pair_with_format(fmt: DeltaFormat) -> tuple[bytes, bytes]:
    rng = random.Random(3)
    old = bytes(PAGE_BYTES) if fmt == DeltaFormat.XOR_ZSTD else rng.randbytes(PAGE_BYTES)
    new = bytearray(old)
    step = 16 if fmt == DeltaFormat.XOR_ZSTD else 1000
    for offset in range(0, PAGE_BYTES, step):
        new[offset : offset + 4] = b"\x07\x07\x07\x07"
    blob = encode(old, bytes(new))
    assert blob[0] == fmt
    return old, blob


@pytest.mark.parametrize("fmt", [DeltaFormat.PATCH, DeltaFormat.XOR_ZSTD])
def test_every_truncation_is_detected(fmt: DeltaFormat) -> None:
    old, blob = _pair_with_format(fmt)
    for length in range(len(blob)):
        with pytest.raises(CorruptionError):
            apply(old, blob[:length])


@pytest.mark.parametrize("fmt", [DeltaFormat.PATCH, DeltaFormat.XOR_ZSTD])
def test_trailing_bytes_are_detected(fmt: DeltaFormat) -> None:
    old, blob = _pair_with_format(fmt)
    with pytest.raises(CorruptionError, match=r"trailing|unused"):
        apply(old, blob + b"\x00")


@pytest.mark.parametrize("fmt", [DeltaFormat.PATCH, DeltaFormat.XOR_ZSTD])
def test_wrong_or_missing_base_is_detected(fmt: DeltaFormat) -> None:
    old, blob = _pair_with_format(fmt)
    with pytest.raises(CorruptionError, match="byte"):
        apply(old[:-1], blob)
    with pytest.raises(CorruptionError, match="byte"):
        apply(old + b"\x00", blob)
    with pytest.raises(CorruptionError, match="needs a base"):
        apply(None, blob)


@pytest.mark.parametrize("tag", [3, 4, 0x7F, 0xFF])
def test_unknown_tag_is_detected(tag: int) -> None:
    with pytest.raises(CorruptionError, match="unknown format"):
        apply(bytes(16), bytes([tag]) + b"\x10\x00")


def test_unknown_format_number_is_detected() -> None:
    with pytest.raises(CorruptionError, match="unknown format"):
        apply_delta(bytes(16), 9, b"")


def test_empty_blob_is_detected() -> None:
    with pytest.raises(CorruptionError, match="empty"):
        apply(bytes(16), b"")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x10\x01\x0c\x05abcde", "beyond"),  # run [12, 17) on a 16-byte page
        (b"\x10\x02\x00\x02ab\x0f\x01c", "beyond"),  # second run starts at 17
        (b"\x10\x01\x03\x00abc", "empty run"),
        (b"\x10\x01\x00\x08abc", "truncated"),  # 8 bytes announced, 3 present
        (b"\x10\x7f\x00\x01a", "claims 127 runs"),
        (b"\x10\xff\xff\xff\xff\x0f", "claims"),  # absurd run count
        (b"\x10\x01" + b"\x80" * 11 + b"\x01", "longer than"),
        (b"\x90", "truncated varint"),
        (b"", "truncated varint"),
        (b"\x11\x00", "16 bytes"),  # made for a 17-byte page
    ],
)
def test_malformed_patch_is_detected(payload: bytes, message: str) -> None:
    with pytest.raises(CorruptionError, match=message):
        apply_delta(bytes(16), DeltaFormat.PATCH, payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"garbage, not a zstd frame at all",
        random.Random(5).randbytes(64),
        # A valid frame of the wrong length: the XOR of a 15-byte page.
        delta._zstd.compressor.compress(bytes(15)),
        # A valid frame with the magic number, which XOR_ZSTD leaves out.
        zstandard.ZstdCompressor().compress(bytes(16)),
    ],
)
def test_malformed_xor_zstd_is_detected(payload: bytes) -> None:
    with pytest.raises(CorruptionError, match="XOR_ZSTD"):
        apply_delta(bytes(16), DeltaFormat.XOR_ZSTD, payload)


def test_xor_zstd_against_an_empty_base_is_detected() -> None:
    with pytest.raises(CorruptionError, match="empty base"):
        apply_delta(b"", DeltaFormat.XOR_ZSTD, delta._zstd.compressor.compress(b""))


@given(st.binary(max_size=64), st.binary(max_size=200))
def test_arbitrary_bytes_never_leak_a_foreign_exception(old: bytes, blob: bytes) -> None:
    # Garbage may happen to decode (no checksum here; the record CRC covers that), but then
    # it must make a page of the base's length, and otherwise it must raise CorruptionError.
    try:
        page = apply(old, blob)
    except CorruptionError:
        return
    if blob[0] != DeltaFormat.IMAGE:
        assert len(page) == len(old)


@given(page_pairs(), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_damaged_blob_raises_or_keeps_the_page_length(
    pair: tuple[bytes, bytes], position: int, mask: int
) -> None:
    old, new = pair
    blob = bytearray(encode(old, new))
    blob[position % len(blob)] ^= mask
    try:
        page = apply(old, bytes(blob))
    except CorruptionError:
        return
    if blob[0] != DeltaFormat.IMAGE:
        assert len(page) == len(old)
