"""RPC message shapes and the round trip of typed errors through an error reply."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from borealis.errors import (
    ERROR_TYPES,
    BorealisError,
    NotCaughtUpError,
    ProtocolError,
    StaleEpochError,
)
from borealis.transport import messages


def over_the_wire(message: list[Any]) -> Any:
    return msgpack.unpackb(msgpack.packb(message, use_bin_type=True), raw=False)


def test_request_round_trip() -> None:
    message = over_the_wire(messages.request(5, "write", {"lsn": 9}))
    assert message == [0, 5, "write", {"lsn": 9}]
    assert messages.parse_request(message) == (5, "write", {"lsn": 9})


def test_response_round_trip() -> None:
    message = over_the_wire(messages.response(6, b"page"))
    assert message == [1, 6, b"page"]
    assert messages.parse_reply(message) == (6, b"page", None)


@pytest.mark.parametrize("cls", sorted(ERROR_TYPES.values(), key=lambda cls: cls.code))
def test_every_error_type_round_trips_as_itself(cls: type[BorealisError]) -> None:
    request_id, body, error = messages.parse_reply(
        over_the_wire(messages.error(7, cls("it went wrong")))
    )
    assert (request_id, body) == (7, None)
    assert type(error) is cls
    assert str(error) == "it went wrong"
    assert error.code == cls.code
    assert error.retryable == cls.retryable


def test_stale_epoch_carries_the_current_epoch() -> None:
    message = over_the_wire(messages.error(1, StaleEpochError("fenced", current_epoch=12)))
    assert message == [2, 1, "stale_epoch", "fenced", {"current_epoch": 12}]
    _, _, error = messages.parse_reply(message)
    assert isinstance(error, StaleEpochError)
    assert error.current_epoch == 12


def test_unknown_code_keeps_code_and_details() -> None:
    _, _, error = messages.parse_reply([2, 1, "from_the_future", "new", {"shard": 3}])
    assert type(error) is BorealisError
    assert error.code == "from_the_future"
    assert error.shard == 3  # type: ignore[attr-defined]


def test_details_cannot_shadow_class_attributes() -> None:
    details = {"retryable": True, "args": [1], "_private": 1, "not an identifier": 1}
    _, _, error = messages.parse_reply([2, 1, "gc", "gone", details])
    assert error is not None
    assert error.retryable is False
    assert error.args == ("gone",)
    assert not hasattr(error, "_private")


def test_unencodable_details_are_dropped() -> None:
    error = NotCaughtUpError("behind")
    error.handle = object()  # type: ignore[attr-defined]
    assert messages.error(1, error)[4] == {}


def test_a_detail_the_constructor_refuses_is_dropped() -> None:
    class Strict(BorealisError):
        code = "strict_test_only"

        def __init__(self, message: str, *, size: int = 0) -> None:
            if not isinstance(size, int):
                raise TypeError("size must be an int")
            super().__init__(message)
            self.size = size

    ERROR_TYPES["strict_test_only"] = Strict
    try:
        _, _, error = messages.parse_reply([2, 1, "strict_test_only", "m", {"size": "big"}])
    finally:
        del ERROR_TYPES["strict_test_only"]
    assert type(error) is Strict
    assert error.size == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"kind": 0}, "got a dict"),
        ([], "empty array"),
        ([7, 1, "m", None], "unknown message kind 7"),
        (["0", 1, "m", None], "unknown message kind '0'"),
        ([1, 1, None], "unexpected response"),
        ([0, 1, "m"], "malformed request"),
        ([0, 1.0, "m", None], "malformed request"),
        ([0, 1, None, None], "malformed request"),
        ([False, 1, "m", None], "unknown message kind False"),
    ],
)
def test_parse_request_refuses(message: Any, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        messages.parse_request(message)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("text", "got a str"),
        ([0, 1, "m", None], "unexpected request"),
        ([1, "1", None], "malformed response"),
        ([1, 1], "malformed response"),
        ([2, 1, "code", "message"], "malformed error"),
        ([2, 1, "code", "message", []], "malformed error"),
        ([2, 1, 5, "message", {}], "malformed error"),
    ],
)
def test_parse_reply_refuses(message: Any, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        messages.parse_reply(message)


def test_a_truncation_carries_what_it_honoured_and_older_ones_read_as_before() -> None:
    from borealis.errors import ProtocolError
    from borealis.storage.messages import Truncation
    from borealis.types import LSN, Epoch

    old = Truncation(Epoch(1), LSN(0), LSN(100), ())
    new = Truncation(Epoch(3), LSN(150), LSN(250), (old,))
    assert Truncation.from_wire(new.to_wire()).honoured == (old,)
    assert new.to_wire() == [3, 150, 250, [[1, 0, 100, []]]]
    assert Truncation.from_wire([2, 5, 9]).honoured is None  # written before honoured lists
    assert new == Truncation(Epoch(3), LSN(150), LSN(250))  # named by epoch and range
    assert new.supersedes(Truncation(Epoch(2), LSN(110), LSN(210)))
    assert not new.supersedes(old)
    for bad in ([3, 150, 250, [[4, 0, 100, []]]],      # honours a newer one
                [3, 150, 250, [[1, 0, 100, [[0, 1, 2, []]]]]],  # nested
                [3, 150, 250, "x"]):
        with pytest.raises(ProtocolError):
            Truncation.from_wire(bad)
