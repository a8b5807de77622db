"""The fault model: the proxy's errors, a direction's ``Faults`` and counters, and the
sans-I/O ``FrameSplitter`` that lets a frame link fault whole frames.

Everything here is pure (no sockets, no loop): ``Faults`` validates on construction, so a bad
control request is refused before any connection sees it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, cast

from borealis.errors import BorealisError
from borealis.transport.frames import (
    FRAME_BYTES_MAX_DEFAULT,
    LENGTH_BYTES,
    FrameDecoder,
    encode_frame,
)

_LENGTH: Final = struct.Struct(">I")
# The proxy splits frames without decoding them: its length prefix must be the transport's.
assert _LENGTH.size == LENGTH_BYTES
assert FrameDecoder().feed(_LENGTH.pack(1) + b"\xc0") == [None]
assert encode_frame(None) == _LENGTH.pack(1) + b"\xc0"


# --- errors --------------------------------------------------------------------------------


class FaultProxyError(BorealisError):
    """A control request the proxy refuses; ``status`` is its HTTP status."""

    code = "fault_proxy"
    status: ClassVar[int] = 400


class BadFaultsError(FaultProxyError):
    code = "bad_request"
    status = 400


class UnknownLinkError(FaultProxyError):
    code = "unknown_link"
    status = 404


class LinkExistsError(FaultProxyError):
    code = "link_exists"
    status = 409


class ListenError(FaultProxyError):
    code = "listen_failed"
    status = 409


class NotFoundError(FaultProxyError):
    code = "not_found"
    status = 404


class MethodNotAllowedError(FaultProxyError):
    code = "method_not_allowed"
    status = 405


# --- faults --------------------------------------------------------------------------------


class Direction(enum.Enum):
    TO_TARGET = "to_target"
    FROM_TARGET = "from_target"


BOTH: Final = "both"


def directions(direction: str | Direction) -> tuple[Direction, ...]:
    """The directions ``direction`` names: one, or both for ``"both"``."""
    if isinstance(direction, Direction):
        return (direction,)
    if direction == BOTH:
        return (Direction.TO_TARGET, Direction.FROM_TARGET)
    try:
        return (Direction(direction),)
    except ValueError:
        raise BadFaultsError(
            f"direction must be to_target, from_target or both, not {direction!r}"
        ) from None


class HealAction(enum.Enum):
    """What happens to held bytes when a block is lifted."""

    DELIVER = "deliver"
    DROP = "drop"
    RESET = "reset"


def _number(name: str, value: object) -> float:
    if type(value) not in (int, float):
        raise BadFaultsError(f"{name} must be a number, not {value!r}")
    number = float(cast(float, value))
    if not math.isfinite(number) or number < 0:
        raise BadFaultsError(f"{name} must be finite and >= 0, not {value!r}")
    return number


def _probability(name: str, value: object) -> float:
    number = _number(name, value)
    if number > 1:
        raise BadFaultsError(f"{name} is a probability: at most 1, not {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults of one direction of a link; ``Faults()`` is none at all."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    """Each chunk's delay is ``latency_ms`` plus uniform(-jitter_ms, +jitter_ms), at least 0;
    order is kept, so a chunk drawn early waits for the one before it."""
    stall_probability: float = 0.0
    stall_ms: float = 200.0
    stall_ms_max: float = 3200.0
    reset_probability_per_s: float = 0.0
    blocked: bool = False
    on_heal: HealAction = HealAction.DELIVER
    duplicate_probability: float = 0.0
    """Frame links only: the chance that a frame is sent twice."""
    frame_delay_ms_max: float = 0.0
    """Frame links only: each frame is delayed by uniform(0, this) on its own."""
    passthrough: bool = field(init=False, compare=False, repr=False)
    """No fault delays, holds or alters bytes: a chunk may be written straight through."""

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "stall_ms", "stall_ms_max",
                     "frame_delay_ms_max"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        for name in ("stall_probability", "reset_probability_per_s", "duplicate_probability"):
            object.__setattr__(self, name, _probability(name, getattr(self, name)))
        if type(self.blocked) is not bool:
            raise BadFaultsError(f"blocked must be true or false, not {self.blocked!r}")
        if not isinstance(self.on_heal, HealAction):
            raise BadFaultsError(f"on_heal must be a HealAction, not {self.on_heal!r}")
        if self.stall_ms <= 0:
            raise BadFaultsError("stall_ms must be > 0")
        if self.stall_ms_max < self.stall_ms:
            raise BadFaultsError("stall_ms_max must be >= stall_ms")
        passthrough = (self.latency_ms == 0 and self.jitter_ms == 0
                       and self.stall_probability == 0 and not self.blocked
                       and self.duplicate_probability == 0 and self.frame_delay_ms_max == 0)
        object.__setattr__(self, "passthrough", passthrough)

    @property
    def frame_only(self) -> bool:
        return self.duplicate_probability > 0 or self.frame_delay_ms_max > 0

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        out["on_heal"] = self.on_heal.value
        return out

    def updated(self, changes: dict[str, Any]) -> Faults:
        """These faults with ``changes`` (JSON-like: ``on_heal`` may be a string)."""
        if not isinstance(changes, dict):
            raise BadFaultsError(f"faults must be a JSON object, not {changes!r}")
        known = {f.name for f in dataclasses.fields(self) if f.init}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise BadFaultsError(f"unknown fault fields {unknown}; known: {sorted(known)}")
        values = dict(changes)
        if "on_heal" in values and not isinstance(values["on_heal"], HealAction):
            try:
                values["on_heal"] = HealAction(values["on_heal"])
            except (ValueError, TypeError):
                raise BadFaultsError(
                    f"on_heal must be deliver, drop or reset, not {values['on_heal']!r}"
                ) from None
        return dataclasses.replace(self, **values)


NO_FAULTS: Final = Faults()


@dataclass(slots=True)
class DirectionStats:
    """Counters of one direction of a link, over all its connections."""

    bytes: int = 0
    """Bytes read from the source (duplicates not counted)."""
    bytes_delivered: int = 0
    frames_duplicated: int = 0
    stalls: int = 0
    bytes_dropped: int = 0
    held_bytes_peak: int = 0
    """The most one connection held in this direction at once."""

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


# --- frames --------------------------------------------------------------------------------


class FrameSplitter:
    """Sans-I/O: cuts a byte stream into whole frames (prefix included) without decoding them.

    A length above ``frame_bytes_max`` means the stream is not ours (or is out of step): the
    splitter then gives up on framing and passes everything on as it comes (``broken``), and
    the endpoint, not the proxy, decides what to do about it.
    """

    __slots__ = ("_buffer", "_needed", "broken", "frame_bytes_max")

    def __init__(self, *, frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT) -> None:
        assert frame_bytes_max >= 0
        self.frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self._needed = LENGTH_BYTES
        """Buffered bytes needed before another frame can complete."""
        self.broken: str | None = None

    @property
    def partial_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        if self.broken is not None:
            return [bytes(data)] if data else []
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._needed:
            return []
        frames: list[bytes] = []
        offset = 0
        end = len(buffer)
        needed = LENGTH_BYTES
        with memoryview(buffer) as view:
            while end - offset >= LENGTH_BYTES:
                (length,) = _LENGTH.unpack_from(view, offset)
                if length > self.frame_bytes_max:
                    self.broken = (f"frame length {length} is above "
                                   f"frame_bytes_max={self.frame_bytes_max}")
                    frames.append(bytes(view[offset:]))
                    offset = end
                    break
                stop = offset + LENGTH_BYTES + length
                if stop > end:
                    needed = stop - offset
                    break
                frames.append(bytes(view[offset:stop]))
                offset = stop
        del buffer[:offset]
        self._needed = needed
        assert len(buffer) < self._needed or self.broken is not None
        return frames

    def flush(self) -> bytes:
        """The incomplete frame, if any (the stream ended inside it)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._needed = LENGTH_BYTES
        return rest
