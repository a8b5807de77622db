"""Page deltas: how a redo record says what changed in a page, in as few bytes as possible.

The writer never ships pages, only redo records (DESIGN decision 2), and a record's payload
is the new version of one page expressed against the version before it. Three encodings:

``IMAGE``
    The page itself. Used when there is no base version, when the base has another length,
    and whenever nothing else is smaller (a page rewritten with incompressible bytes).
``PATCH``
    The byte ranges that changed, as runs ``(gap since the previous run, length, new bytes)``.
    Runs separated by at most ``GAP_MERGE_MAX`` unchanged bytes are merged, because a run
    header costs two varint bytes and copying one or two unchanged bytes costs no more.
    Best for the usual OLTP change: a few small ranges (a row, a cell pointer, the page
    header) in an otherwise untouched page; random new bytes do not compress anyway.
``XOR_ZSTD``
    zstd of ``old XOR new``: unchanged bytes become zeros, which zstd squeezes to almost
    nothing. Best when changes are many and scattered (a page defragmented, an index page
    with shifted cells) or when the new bytes themselves are compressible.

``encode_delta`` computes every candidate and returns the smallest, so the choice is made
per record on measured size rather than by a heuristic (ties go to the cheaper one to
apply: IMAGE, then PATCH, then XOR_ZSTD). No Python loop ever walks the 4096 bytes of a page.
numpy views both pages as byte arrays and makes, in two passes, the XOR that zstd compresses
(applying XOR_ZSTD XORs back the same way) and a 0/1 map of the changed bytes; the runs are then found with C-speed ``bytes.find`` on
that map, one Python step per run, and the building stops as soon as the patch is larger than
the best candidate so far. Encoding a typical 4 KiB OLTP change costs about eleven
microseconds, four of them zstd's; ``bench/delta.py`` measures it. Finding the runs with numpy
too (index arithmetic on ``nonzero()``) was measured and is slower for the usual handful of
runs: each numpy call costs most of a microsecond however small its array.

Wire layouts (varints are unsigned LEB128)::

    IMAGE     page bytes
    PATCH     varint page_len, varint run_count, run_count x (varint gap, varint len, bytes)
    XOR_ZSTD  zstd frame of old XOR new: magicless, no content size, no checksum

``encode``/``apply`` prefix one tag byte (the ``DeltaFormat``) so a payload describes itself.

This module catches *malformed* payloads (truncated, runs past the page end, trailing bytes,
a base of the wrong length, undecodable zstd) and raises ``CorruptionError`` for each. It
does not checksum contents: a flipped bit inside the new bytes of a run decodes to a wrong
page, and detecting that is the job of the redo record's CRC, which covers the payload.
Likewise the caller must apply a delta to the version it was made against
(``prev_page_lsn``); a wrong base of the right length cannot be told apart here.
"""

from __future__ import annotations

import enum
import threading

import numpy as np
import zstandard

from borealis.errors import CorruptionError

GAP_MERGE_MAX = 2
"""Changed runs separated by at most this many unchanged bytes are merged into one run.

A separate run costs a gap varint plus a length varint (two bytes below 128), so merging a
gap of one or two bytes never grows the patch and a wider gap does. ``bench/delta.py --sweep``
over 1,500 SQLite TPC-B page changes: 1 and 2 tie for the smallest total (1% below 0 or 8);
2 makes fewer runs, so apply is a little faster.
"""

ZSTD_LEVEL = 3
"""zstd level for XOR_ZSTD. On 4 KiB XOR pages (mostly zeros) level 3 is both smaller (1%) and
no slower than level 1 (about 2 us a page either way); level 6 is 4x slower for 2% fewer
bytes. Measured by ``bench/delta.py --sweep``."""

VARINT_BYTES_MAX = 10
"""A varint longer than this (a value of 2**70 or more) can only be garbage."""


class DeltaFormat(enum.IntEnum):
    """How a payload encodes a page; the value is the tag byte of ``encode`` (wire-stable)."""

    IMAGE = 0
    PATCH = 1
    XOR_ZSTD = 2


_RUN_END = bytes(GAP_MERGE_MAX + 1)
"""In the 0/1 map of changed bytes, the first gap wide enough to end a run."""

_VARINT_ONE_BYTE = [bytes((value,)) for value in range(0x80)]

_TAG = {fmt: bytes((fmt,)) for fmt in DeltaFormat}

_IMAGE, _PATCH, _XOR_ZSTD = DeltaFormat.IMAGE, DeltaFormat.PATCH, DeltaFormat.XOR_ZSTD
"""The members looked up once: on Python 3.11 each ``DeltaFormat.X`` costs about 0.25 us, and
encode and apply run for every page write."""


class _ZstdCodec(threading.local):
    """Per-thread zstd contexts: python-zstandard objects must not be shared across threads."""

    def __init__(self) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_content_size=False,  # apply knows the length: it is the base's.
            write_checksum=False,  # the redo record's CRC covers the payload.
            write_dict_id=False,
        )
        self.compressor = zstandard.ZstdCompressor(compression_params=params)
        self.decompressor = zstandard.ZstdDecompressor(format=zstandard.FORMAT_ZSTD1_MAGICLESS)


_zstd = _ZstdCodec()


# --- encoding ------------------------------------------------------------------------------


def encode_delta(old: bytes | None, new: bytes) -> tuple[DeltaFormat, bytes]:
    """The smallest encoding of ``new`` against ``old``: IMAGE when there is no usable base."""
    page_len = len(new)
    if old is None or len(old) != page_len or page_len == 0:
        return _IMAGE, new
    if old == new:  # A patch of no runs: 3 bytes, less than any zstd frame.
        no_runs = _varint(page_len) + _varint(0)
        if len(no_runs) < page_len:
            return _PATCH, no_runs
        return _IMAGE, new

    old_bytes = np.frombuffer(old, np.uint8)
    new_bytes = np.frombuffer(new, np.uint8)
    best_format, best = _IMAGE, new
    # PATCH is built second so that it can stop as soon as it is larger than the best so far.
    packed: bytes = _zstd.compressor.compress(np.bitwise_xor(old_bytes, new_bytes).data)
    if len(packed) < len(best):
        best_format, best = _XOR_ZSTD, packed
    # A bool array's bytes are 0 and 1: the map that bytes.find searches.
    changed = np.not_equal(old_bytes, new_bytes).tobytes()
    patch = _encode_patch(new, changed, size_max=len(best))
    if patch is not None:
        # On a tie PATCH beats XOR_ZSTD (cheaper to apply) but not IMAGE (cheaper still).
        tie_wins = best_format == _XOR_ZSTD
        if len(patch) < len(best) or (len(patch) == len(best) and tie_wins):
            best_format, best = _PATCH, patch
    assert len(best) <= page_len
    return best_format, best


def _encode_patch(new: bytes, changed: bytes, *, size_max: int) -> bytes | None:
    """The PATCH payload, or None as soon as it would be larger than ``size_max`` bytes.

    ``changed`` maps the page byte for byte: 1 where ``new`` differs from the base, else 0.
    """
    page_len = len(new)
    assert len(changed) == page_len
    page_len_varint = _varint(page_len)
    parts = [page_len_varint, b""]  # parts[1], the run count, is known at the end
    append = parts.append
    find = changed.find
    # A lower bound until the run count (one varint byte or more) is known: stopping early
    # on a lower bound never drops a patch that would have been the smallest.
    size = len(page_len_varint) + 1
    previous_end = 0
    start = find(b"\x01")
    assert start != -1, "the pages differ, so some byte changed"
    # Bounded: each pass moves past at least one changed byte, so at most page_len passes,
    # and the size_max cut-off ends scattered changes long before that.
    while start != -1:
        # The first GAP_MERGE_MAX + 1 unchanged bytes after start end the run: the byte before
        # them changed, or they would start one byte earlier. None of them means every change
        # left is at most GAP_MERGE_MAX bytes from the next: one run, to the last change.
        end = find(_RUN_END, start)
        if end == -1:
            end = changed.rfind(b"\x01") + 1
        gap = start - previous_end
        length = end - start
        if gap < 0x80 and length < 0x80:  # the common case, without two _varint calls
            header = bytes((gap, length))
        else:
            header = _varint(gap) + _varint(length)
        size += len(header) + length
        if size > size_max:
            return None
        append(header)
        append(new[start:end])
        previous_end = end
        start = find(b"\x01", end)
    run_count = (len(parts) - 2) // 2
    assert 0 < run_count <= page_len
    assert changed[previous_end - 1] == 1, "the last run ends on a changed byte"
    parts[1] = _varint(run_count)
    return b"".join(parts)


def encode(old: bytes | None, new: bytes) -> bytes:
    """``encode_delta`` as one self-describing blob: a ``DeltaFormat`` tag byte, then payload."""
    delta_format, payload = encode_delta(old, new)
    return _TAG[delta_format] + payload


# --- applying ------------------------------------------------------------------------------


def apply_delta(old: bytes | None, fmt: DeltaFormat | int, payload: bytes) -> bytes:
    """The page that ``payload`` (in format ``fmt``) makes of ``old``; inverse of encode_delta.

    Raises CorruptionError for an unknown format, a missing or wrong-length base, or a
    payload that does not decode exactly.
    """
    if fmt == _IMAGE:
        return bytes(payload)
    if fmt == _PATCH:
        return _apply_patch(_base(old, fmt), payload)
    if fmt == _XOR_ZSTD:
        return _apply_xor_zstd(_base(old, fmt), payload)
    raise CorruptionError(f"page delta: unknown format {fmt!r}")


def apply(old: bytes | None, blob: bytes) -> bytes:
    """The page that an ``encode`` blob makes of ``old``; inverse of encode."""
    if not blob:
        raise CorruptionError("page delta: empty blob, no format tag")
    return apply_delta(old, blob[0], blob[1:])


def _base(old: bytes | None, fmt: int) -> bytes:
    if old is None:
        raise CorruptionError(f"page delta: {DeltaFormat(fmt).name} needs a base page, got none")
    return old


def _apply_patch(old: bytes, payload: bytes) -> bytes:
    page_len, pos = _read_varint(payload, 0)
    if page_len != len(old):
        raise CorruptionError(
            f"page delta: PATCH is for a {page_len}-byte page, base has {len(old)} bytes"
        )
    run_count, pos = _read_varint(payload, pos)
    # Every run takes at least three bytes; checking this first bounds the loop by the
    # payload's length whatever count a corrupt header claims.
    if 3 * run_count > len(payload) - pos:
        raise CorruptionError(
            f"page delta: PATCH claims {run_count} runs in {len(payload) - pos} bytes"
        )
    payload_len = len(payload)
    page = bytearray(old)
    end = 0
    for _ in range(run_count):
        # The common case, one-byte gap and length, without two _read_varint calls.
        if pos + 1 < payload_len and payload[pos] < 0x80 and payload[pos + 1] < 0x80:
            gap = payload[pos]
            length = payload[pos + 1]
            pos += 2
        else:
            gap, pos = _read_varint(payload, pos)
            length, pos = _read_varint(payload, pos)
        start = end + gap
        end = start + length
        if length == 0:
            raise CorruptionError(f"page delta: PATCH has an empty run at offset {start}")
        if end > page_len:
            raise CorruptionError(
                f"page delta: PATCH run [{start}, {end}) ends beyond the {page_len}-byte page"
            )
        if pos + length > payload_len:
            raise CorruptionError(
                f"page delta: PATCH truncated in the run at offset {start} "
                f"({payload_len - pos} of {length} bytes)"
            )
        page[start:end] = payload[pos : pos + length]
        pos += length
    if pos != payload_len:
        raise CorruptionError(
            f"page delta: PATCH has {payload_len - pos} trailing bytes after {run_count} runs"
        )
    return bytes(page)


def _apply_xor_zstd(old: bytes, payload: bytes) -> bytes:
    page_len = len(old)
    if page_len == 0:
        raise CorruptionError("page delta: XOR_ZSTD against an empty base page")
    try:
        xor = _zstd.decompressor.decompress(
            payload, max_output_size=page_len, allow_extra_data=False
        )
    except zstandard.ZstdError as exc:
        raise CorruptionError(
            f"page delta: XOR_ZSTD payload does not decode to a {page_len}-byte page: {exc}"
        ) from exc
    if len(xor) != page_len:
        raise CorruptionError(
            f"page delta: XOR_ZSTD decodes to {len(xor)} bytes, base has {page_len} bytes"
        )
    return np.bitwise_xor(np.frombuffer(old, np.uint8), np.frombuffer(xor, np.uint8)).tobytes()


# --- varints -------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    """Unsigned LEB128: seven bits a byte, low bits first, high bit set on all but the last."""
    if value < 0x80:
        return _VARINT_ONE_BYTE[value]
    if value < 0x4000:  # Offsets and lengths within a 4 KiB page: skip the general loop.
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    assert value >= 0
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``data[pos:]`` and the position after it."""
    # One- and two-byte varints (values below 16384) are nearly all of them: no loop.
    if pos + 1 < len(data):
        first = data[pos]
        if first < 0x80:
            return first, pos + 1
        second = data[pos + 1]
        if second < 0x80:
            return (first & 0x7F) | (second << 7), pos + 2
    value = 0
    for index in range(VARINT_BYTES_MAX):
        if pos + index >= len(data):
            raise CorruptionError(f"page delta: truncated varint at byte {pos}")
        byte = data[pos + index]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            return value, pos + index + 1
    raise CorruptionError(f"page delta: varint at byte {pos} longer than {VARINT_BYTES_MAX} bytes")
