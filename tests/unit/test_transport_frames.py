"""Frames: round trips, every chunking of a stream, and refusal of what breaks the protocol."""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borealis.errors import ProtocolError
from borealis.transport import frames
from borealis.transport.frames import (
    FrameDecoder,
    FrameEncoder,
    decode_body,
    encode_body,
    encode_frame,
)

VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    "",
    "h\u00e9llo \U0001f30c",
    b"",
    b"\x00\xff" * 300,
    [],
    [0, 17, "get_page", {"page": 3, "read_point": 99}],
    {1: "int keys survive", "nested": {"list": [1, [2, [3]]]}},
    {"blob": b"x" * 70_000},
]


def naive_decode(stream: bytes) -> list[Any]:
    """Reference model: walk the whole stream at once."""
    values = []
    offset = 0
    while offset < len(stream):
        (length,) = struct.unpack_from(">I", stream, offset)
        body = stream[offset + 4 : offset + 4 + length]
        values.append(msgpack.unpackb(body, raw=False, strict_map_key=False))
        offset += 4 + length
    return values


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_round_trip(value: Any) -> None:
    frame = encode_frame(value)
    assert frame[:4] == struct.pack(">I", len(frame) - 4)
    assert FrameDecoder().feed(frame) == [value]


def test_bytes_and_str_stay_distinct() -> None:
    (decoded,) = FrameDecoder().feed(encode_frame([b"abc", "abc"]))
    assert type(decoded[0]) is bytes
    assert type(decoded[1]) is str


def test_split_at_every_byte_boundary() -> None:
    stream = b"".join(encode_frame(value) for value in VALUES[:13])
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        decoded = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert decoded == VALUES[:13], cut
        assert decoder.buffered_bytes == 0


def test_the_decoder_keeps_no_reference_to_a_fed_buffer() -> None:
    frame = encode_frame([1, 2, b"payload"])
    chunk = bytearray(frame + frame[:9])
    decoder = FrameDecoder()
    assert decoder.feed(memoryview(chunk)) == [[1, 2, b"payload"]]
    chunk[:] = b"\xff" * len(chunk)  # the caller reuses its buffer
    assert decoder.feed(frame[9:]) == [[1, 2, b"payload"]]


def test_one_byte_at_a_time() -> None:
    stream = b"".join(encode_frame(value) for value in VALUES[:13])
    decoder = FrameDecoder()
    decoded: list[Any] = []
    for index in range(len(stream)):
        decoded += decoder.feed(stream[index : index + 1])
    assert decoded == VALUES[:13]


def test_many_frames_in_one_chunk() -> None:
    requests = [[0, request_id, "write", b"r" * 500] for request_id in range(5000)]
    decoder = FrameDecoder()
    chunk = b"".join(encode_frame(request) for request in requests)
    assert decoder.feed(chunk) == requests
    assert decoder.buffered_bytes == 0


def test_large_frame_in_small_chunks_keeps_the_buffer_compact() -> None:
    payload = b"p" * 3_000_000
    stream = encode_frame(payload) + encode_frame("next")
    decoder = FrameDecoder()
    decoded: list[Any] = []
    for start in range(0, len(stream), 4096):
        decoded += decoder.feed(stream[start : start + 4096])
    assert decoded == [payload, "next"]
    assert decoder.buffered_bytes == 0


def test_consumed_bytes_are_dropped_while_a_partial_frame_waits() -> None:
    frame = encode_frame(b"s" * 1000)
    stream = frame * 2000
    decoder = FrameDecoder()
    decoded = 0
    buffer_bytes_max = 0
    # Chunks of 1500 bytes end mid-frame, so the buffer never empties by itself.
    for start in range(0, len(stream), 1500):
        decoded += len(decoder.feed(stream[start : start + 1500]))
        buffer_bytes_max = max(buffer_bytes_max, len(decoder._buffer))
    assert decoded == 2000
    assert buffer_bytes_max <= 2 * frames._COMPACT_BYTES_MIN + 1500


def test_length_above_the_bound_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(frame_bytes_max=1024)
    with pytest.raises(ProtocolError, match="frame_bytes_max"):
        decoder.feed(struct.pack(">I", 1025))


def test_default_bound_is_64_mib() -> None:
    assert frames.FRAME_BYTES_MAX_DEFAULT == 64 * 1024 * 1024
    decoder = FrameDecoder()
    assert decoder.feed(struct.pack(">I", 64 * 1024 * 1024)) == []
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">I", 64 * 1024 * 1024 + 1))


def test_frame_exactly_at_the_bound_is_accepted() -> None:
    body = encode_body(b"x" * 100)
    decoder = FrameDecoder(frame_bytes_max=len(body))
    assert decoder.feed(encode_frame(b"x" * 100)) == [b"x" * 100]


@pytest.mark.parametrize(
    "body",
    [
        b"",  # no value at all
        b"\xc1",  # the one byte msgpack never uses
        b"\x92\x01",  # an array of two with one element: truncated
        msgpack.packb(1) + b"\x01",  # trailing bytes after the value
        b"\xa2\xff\xfe",  # a str that is not UTF-8
        b"\x81\x91\x01\x02",  # a map whose key is an array: unhashable
    ],
    ids=["empty", "never-used", "truncated", "extra-data", "bad-utf8", "unhashable-key"],
)
def test_undecodable_body_is_a_protocol_error(body: bytes) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match="undecodable"):
        decoder.feed(struct.pack(">I", len(body)) + body)
    # The stream is out of step for good, and the buffer can still grow (no leaked export).
    with pytest.raises(ProtocolError, match="already broken"):
        decoder.feed(encode_frame("fine"))
    decoder._buffer += b"resizable"


def test_good_frames_before_garbage_are_not_returned() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(encode_frame("ok") + struct.pack(">I", 1) + b"\xc1")


def test_encode_refuses_what_msgpack_cannot_carry() -> None:
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode_frame({"a": object()})
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode_frame(2**64)


def test_encode_refuses_a_frame_the_peer_would_refuse() -> None:
    with pytest.raises(ProtocolError, match="frame_bytes_max"):
        encode_frame(b"x" * 100, frame_bytes_max=50)


def test_frame_encoder_matches_encode_frame_and_survives_failures() -> None:
    encoder = FrameEncoder(frame_bytes_max=1000)
    for value in VALUES[:13]:
        assert encoder.encode(value) == encode_frame(value)
    with pytest.raises(ProtocolError, match="cannot encode"):
        encoder.encode([1, 2, object()])
    with pytest.raises(ProtocolError, match="frame_bytes_max"):
        encoder.encode(b"x" * 1000)
    # Nothing of the failed values leaks into the next frame.
    assert encoder.encode("after") == encode_frame("after")


def test_decode_body_matches_the_decoder() -> None:
    for value in VALUES:
        assert decode_body(encode_body(value)) == value
    with pytest.raises(ProtocolError):
        decode_body(b"\xc1")


msgpack_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | msgpack_ints
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=200),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=5) | msgpack_ints, children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(msgpack_values, max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_chunking_decodes_like_the_whole_stream(values: list[Any], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(value) for value in values)
    encoder = FrameEncoder()
    assert b"".join(encoder.encode(value) for value in values) == stream
    positions = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *positions], [*positions, len(stream)], strict=True)]
    decoder = FrameDecoder()
    decoded: list[Any] = []
    for chunk in chunks:
        decoded += decoder.feed(chunk)
    assert decoded == naive_decode(stream)
    assert decoded == values
    assert decoder.buffered_bytes == 0


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=300), cut=st.integers(min_value=0, max_value=300))
def test_random_bytes_never_raise_anything_but_protocol_error(garbage: bytes, cut: int) -> None:
    decoder = FrameDecoder(frame_bytes_max=1 << 16)
    try:
        decoder.feed(garbage[:cut])
        decoder.feed(garbage[cut:])
    except ProtocolError:
        pass
