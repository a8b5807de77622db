"""Redo records: construction rules, the CRC over every field, and the wire boundary."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borealis.errors import BorealisError, CorruptionError, ProtocolError
from borealis.storage.record import (
    FLAG_CPL,
    RecordKind,
    RedoRecord,
    decode_block,
    encode_block,
)

U64_MAX = 2**64 - 1

INT_FIELDS_U64 = ("lsn", "page", "prev_page_lsn", "prev_pg_lsn", "epoch")


@st.composite
def records(draw: st.DrawFn) -> RedoRecord:
    lsn = draw(st.integers(min_value=1, max_value=U64_MAX))
    prev_page_lsn = draw(st.integers(min_value=0, max_value=lsn - 1))
    kind = draw(st.sampled_from(RecordKind)) if prev_page_lsn else RecordKind.IMAGE
    return RedoRecord.make(
        lsn,
        draw(st.integers(min_value=0, max_value=U64_MAX)),
        draw(st.binary(max_size=64)),
        kind=kind,
        prev_page_lsn=prev_page_lsn,
        prev_pg_lsn=draw(st.integers(min_value=0, max_value=lsn - 1)),
        epoch=draw(st.integers(min_value=0, max_value=U64_MAX)),
        flags=draw(st.sampled_from([0, FLAG_CPL])),
    )


def sample() -> RedoRecord:
    return RedoRecord.make(
        10, 3, b"\x00hello page", kind=RecordKind.DELTA, prev_page_lsn=7, prev_pg_lsn=9,
        epoch=2, flags=FLAG_CPL,
    )


# --- round trips ---------------------------------------------------------------------------


@given(records())
def test_make_verify_and_wire_round_trip(record: RedoRecord) -> None:
    assert record.crc_ok()
    record.verify()
    assert RedoRecord.from_wire(record.to_wire()) == record
    # Through msgpack too, as the transport and the storage node's log carry it.
    packed = msgpack.packb(record.to_wire(), use_bin_type=True)
    assert RedoRecord.from_wire(msgpack.unpackb(packed, raw=False)) == record


def test_a_readable_record() -> None:
    record = sample()
    assert record.is_cpl
    assert record.kind is RecordKind.DELTA
    assert record.to_wire() == [10, 3, 7, 9, 2, FLAG_CPL, 1, b"\x00hello page", record.crc]
    assert not RedoRecord.make(1, 0, b"x").is_cpl


# --- the CRC covers every field ------------------------------------------------------------


def test_every_single_bit_flip_of_the_payload_is_detected() -> None:
    record = sample()
    for bit in range(8 * len(record.payload)):
        flipped = record.with_payload_bit_flipped(bit)
        assert flipped.payload != record.payload
        assert not flipped.crc_ok(), bit
        with pytest.raises(CorruptionError):
            flipped.verify()
        with pytest.raises(CorruptionError):
            RedoRecord.from_wire(flipped.to_wire())


@settings(max_examples=50)
@given(records())
def test_every_single_bit_flip_of_any_field_is_detected(record: RedoRecord) -> None:
    """A flip either makes the record invalid to construct or makes its CRC mismatch."""
    for name in (*INT_FIELDS_U64, "flags", "kind", "crc"):
        width = {"flags": 8, "kind": 8, "crc": 32}.get(name, 64)
        for bit in range(width):
            value = int(getattr(record, name)) ^ (1 << bit)
            try:
                flipped = record._replace(**{name: value}).check()
            except ProtocolError:
                continue  # e.g. prev_page_lsn no longer below lsn, or an unknown flag
            assert not flipped.crc_ok(), (name, bit)
    for bit in range(8 * len(record.payload)):
        assert not record.with_payload_bit_flipped(bit).crc_ok(), ("payload", bit)


def test_an_empty_payload_flip_is_detected() -> None:
    record = RedoRecord.make(1, 0, b"")
    assert not record.with_payload_bit_flipped(0).crc_ok()


# --- invalid constructions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"lsn": 0}, id="lsn-zero"),
        pytest.param({"lsn": -1}, id="lsn-negative"),
        pytest.param({"lsn": 2**64}, id="lsn-above-u64"),
        pytest.param({"page": -1}, id="page-negative"),
        pytest.param({"page": 2**64}, id="page-above-u64"),
        pytest.param({"prev_page_lsn": 10}, id="prev-page-lsn-equal"),
        pytest.param({"prev_page_lsn": 11}, id="prev-page-lsn-above"),
        pytest.param({"prev_page_lsn": -1}, id="prev-page-lsn-negative"),
        pytest.param({"prev_pg_lsn": 10}, id="prev-pg-lsn-equal"),
        pytest.param({"prev_pg_lsn": -1}, id="prev-pg-lsn-negative"),
        pytest.param({"epoch": -1}, id="epoch-negative"),
        pytest.param({"epoch": 2**64}, id="epoch-above-u64"),
        pytest.param({"kind": RecordKind.DELTA, "prev_page_lsn": 0}, id="delta-without-base"),
        pytest.param({"flags": 0x02}, id="unknown-flag"),
        pytest.param({"flags": 0x80 | FLAG_CPL}, id="unknown-flag-with-cpl"),
        pytest.param({"flags": -1}, id="flags-negative"),
        pytest.param({"kind": 2}, id="unknown-kind"),
    ],
)
def test_invalid_records_raise_protocol_error(kwargs: dict[str, int]) -> None:
    fields = {"lsn": 10, "page": 3, "prev_page_lsn": 0, "prev_pg_lsn": 0, "epoch": 1,
              "flags": 0, "kind": RecordKind.IMAGE}
    fields.update(kwargs)
    lsn, page = fields.pop("lsn"), fields.pop("page")
    with pytest.raises(ProtocolError):
        RedoRecord.make(lsn, page, b"payload", **fields)
    # A record built from parts (not by make) is validated by check, and by every decoder.
    built = RedoRecord(lsn, page, fields["prev_page_lsn"], fields["prev_pg_lsn"],
                       fields["epoch"], fields["flags"], fields["kind"], b"payload", 0)
    with pytest.raises(ProtocolError):
        built.check()
    with pytest.raises(ProtocolError):
        RedoRecord.from_wire(built.to_wire(), verify=False)
    if all(0 <= int(v) < 2**64 for v in built[:5]) and 0 <= built.flags < 256 \
            and 0 <= built.kind < 256:
        with pytest.raises(ProtocolError):
            decode_block(encode_block([built]))


def test_check_refuses_a_payload_that_is_not_bytes() -> None:
    with pytest.raises(ProtocolError):
        RedoRecord(1, 0, 0, 0, 0, 0, RecordKind.IMAGE, "text", 0).check()  # type: ignore[arg-type]


# --- record blocks --------------------------------------------------------------------------


@settings(max_examples=50)
@given(st.lists(records(), max_size=8))
def test_a_block_round_trips_every_record(items: list[RedoRecord]) -> None:
    decoded = decode_block(encode_block(items))
    assert decoded == tuple(items)
    assert all(type(r) is RedoRecord and type(r.kind) is RecordKind for r in decoded)
    assert all(r.crc_ok() for r in decoded)


def test_a_block_keeps_corruption_detectable() -> None:
    record = sample()
    block = bytearray(encode_block([record]))
    block[-1] ^= 0x10  # the last payload byte
    (decoded,) = decode_block(bytes(block))
    assert not decoded.crc_ok()


@pytest.mark.parametrize("cut", [1, 10, 49, 51])
def test_a_truncated_block_is_a_protocol_error(cut: int) -> None:
    block = encode_block([sample(), sample()._replace(lsn=sample().lsn + 1)])
    with pytest.raises(ProtocolError):
        decode_block(block[:-cut])


@pytest.mark.parametrize("value", [None, 7, "text", [1, 2], bytearray(b"\0" * 60)])
def test_a_block_must_be_bytes(value: object) -> None:
    with pytest.raises(ProtocolError):
        decode_block(value)  # type: ignore[arg-type]


def test_a_block_refuses_an_unknown_kind_and_a_zero_lsn() -> None:
    good = encode_block([sample()])
    bad_kind = bytearray(good)
    bad_kind[41] = 7  # the kind byte: five u64 fields, then flags, then kind
    bad_lsn = bytearray(good)
    bad_lsn[0:8] = bytes(8)
    for bad in (bad_kind, bad_lsn):
        with pytest.raises(ProtocolError):
            decode_block(bytes(bad))


# --- the wire boundary ----------------------------------------------------------------------


def _wire_with(index: int, value: object) -> list[object]:
    wire = sample().to_wire()
    wire[index] = value
    return wire


MALFORMED = [
    pytest.param(None, id="none"),
    pytest.param(42, id="int"),
    pytest.param(b"123456789", id="bytes"),
    pytest.param("abcdefghi", id="str"),
    pytest.param([], id="empty"),
    pytest.param(sample().to_wire()[:8], id="short"),
    pytest.param([*sample().to_wire(), 0], id="long"),
    pytest.param({"lsn": 10}, id="dict"),
    pytest.param(_wire_with(0, "ten"), id="lsn-str"),
    pytest.param(_wire_with(0, None), id="lsn-none"),
    pytest.param(_wire_with(0, float("inf")), id="lsn-inf"),
    pytest.param(_wire_with(0, float("nan")), id="lsn-nan"),
    pytest.param(_wire_with(0, 0), id="lsn-zero"),
    pytest.param(_wire_with(0, 2**64), id="lsn-above-u64"),
    pytest.param(_wire_with(1, -3), id="page-negative"),
    pytest.param(_wire_with(1, 2**64), id="page-above-u64"),
    pytest.param(_wire_with(2, 10), id="prev-page-lsn-not-below"),
    pytest.param(_wire_with(3, 11), id="prev-pg-lsn-not-below"),
    pytest.param(_wire_with(4, -1), id="epoch-negative"),
    pytest.param(_wire_with(4, 2**70), id="epoch-above-u64"),
    pytest.param(_wire_with(5, 0x10), id="unknown-flag"),
    pytest.param(_wire_with(6, 7), id="unknown-kind"),
    pytest.param(_wire_with(6, "delta"), id="kind-str"),
    pytest.param(_wire_with(7, "text"), id="payload-str"),
    pytest.param(_wire_with(7, 12), id="payload-int"),
    pytest.param(_wire_with(7, 2**70), id="payload-huge-int"),
    pytest.param(_wire_with(7, None), id="payload-none"),
    pytest.param(_wire_with(7, [1, 2, 3]), id="payload-list"),
    pytest.param(_wire_with(8, "crc"), id="crc-str"),
]


@pytest.mark.parametrize("item", MALFORMED)
def test_from_wire_of_a_malformed_item_raises_protocol_error(item: object) -> None:
    with pytest.raises(ProtocolError):
        RedoRecord.from_wire(item)


def test_from_wire_of_a_wrong_crc_raises_corruption_error() -> None:
    with pytest.raises(CorruptionError):
        RedoRecord.from_wire(_wire_with(8, sample().crc ^ 1))
    with pytest.raises(CorruptionError):
        RedoRecord.from_wire(_wire_with(8, 2**40))


@settings(max_examples=300)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
        | st.binary(max_size=8),
        lambda children: st.lists(children, max_size=10),
        max_leaves=20,
    )
)
def test_from_wire_never_raises_a_foreign_exception(item: object) -> None:
    """Whatever msgpack can decode, from_wire answers with a record or a Borealis error."""
    with contextlib.suppress(ProtocolError, CorruptionError):
        RedoRecord.from_wire(item)


@settings(max_examples=200)
@given(records(), st.integers(min_value=0, max_value=8), st.integers() | st.binary() | st.none())
def test_from_wire_of_one_bad_field_is_a_borealis_error(
    record: RedoRecord, index: int, value: object
) -> None:
    wire = record.to_wire()
    wire[index] = value
    try:
        decoded = RedoRecord.from_wire(wire)
    except BorealisError as exc:
        assert isinstance(exc, ProtocolError | CorruptionError)
    else:
        # Only a value equal to the original (e.g. the same int) may decode, to the same record.
        assert decoded == record
