"""The frontend parser: bytes from a client, in any chunks, to typed frontend messages.

Sans-I/O, like h11: ``FrontendParser.feed`` takes whatever the socket delivered and returns
every message those bytes completed; a partial message waits for the next chunk. The asyncio
server owns the socket and answers; the tests and the simulator drive the parser directly.

A connection has two phases. In the *startup* phase packets have no type byte: an Int32
length (counting itself) and an Int32 code, which is a protocol version (a StartupMessage) or
one of the request codes (SSLRequest, GSSENCRequest, CancelRequest). After a StartupMessage
the parser switches itself to the *messages* phase: a type byte, an Int32 length, a body.

Encryption requests follow PostgreSQL 15 (``ProcessStartupPacket``): after an SSLRequest or
a GSSENCRequest the parser refuses any byte until the caller has answered it through
``answer_encryption_request`` (bytes the client sent before reading the answer would
otherwise be trusted as if they had come over TLS: CVE-2021-23214). Each request may come
once; a GSSENCRequest may follow a refused SSLRequest and the other way round, as libpq
negotiates; a repeated one is an unsupported protocol version, as in PostgreSQL. A
CancelRequest or a Terminate ends the stream: any byte after it is a violation.

Lengths are checked as soon as the length word is in, before the body is buffered, so a
client cannot make the server hold more than the bound of the message it announces. The
bounds are PostgreSQL's: 10,000 bytes after the length word of a startup packet, 10,000 for
the small messages (Describe, Close, Execute, Sync, Flush, Terminate), 65,535 for an
authentication response, and ``message_bytes_max`` (1 GiB - 2 by default) for the others.

Every violation raises ``PgProtocolError``, and the parser is dead afterwards: every later
``feed`` raises again. The caller sends a FATAL ErrorResponse and closes the connection.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from borealis.protocol.postgres.backend import ENCRYPTION_REFUSED, GSSENC_ACCEPTED, SSL_ACCEPTED
from borealis.protocol.postgres.messages import (
    CANCEL_REQUEST_CODE,
    GSSENC_REQUEST_CODE,
    SQLSTATE_FEATURE_NOT_SUPPORTED,
    SSL_REQUEST_CODE,
    AuthenticationResponse,
    Bind,
    BodyReader,
    CancelRequest,
    Close,
    CopyData,
    CopyDone,
    CopyFail,
    Describe,
    Execute,
    Flush,
    FrontendMessage,
    FunctionCall,
    GSSENCRequest,
    Parse,
    PgProtocolError,
    Query,
    SSLRequest,
    StartupMessage,
    Sync,
    Terminate,
    TypedMessage,
)

MESSAGE_BYTES_MAX_DEFAULT: Final = 2**30 - 2
"""PostgreSQL's PQ_LARGE_MESSAGE_LIMIT (MaxAllocSize - 1): the largest length word of a
Query, Parse, Bind, CopyData, CopyFail or FunctionCall."""

SMALL_MESSAGE_BYTES_MAX: Final = 10_000
"""PostgreSQL's PQ_SMALL_MESSAGE_LIMIT, for messages that carry at most a name."""

AUTHENTICATION_BYTES_MAX: Final = 65_535
"""PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH, for ``'p'`` messages."""

STARTUP_BYTES_MAX_DEFAULT: Final = 10_004
"""PostgreSQL's MAX_STARTUP_PACKET_LENGTH (10,000 bytes after the length word) plus the
4-byte length word itself, which ``startup_bytes_max`` counts."""

STARTUP_BYTES_MIN: Final = 8
"""A length word and a protocol version or request code."""

CANCEL_REQUEST_BYTES: Final = 16
ENCRYPTION_REQUEST_BYTES: Final = 8

_UINT32 = struct.Struct(">I")
_CANCEL = struct.Struct(">ii")


class Phase(enum.Enum):
    STARTUP = "startup"
    """Untyped packets: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest."""
    AWAITING_ENCRYPTION_ANSWER = "awaiting_encryption_answer"
    """An SSLRequest or GSSENCRequest was returned; no byte may come before the answer."""
    MESSAGES = "messages"
    """Typed messages, after the StartupMessage."""
    CLOSED = "closed"
    """After a CancelRequest or a Terminate: the client may send nothing more."""
    FAILED = "failed"
    """A violation was raised; every later ``feed`` raises again."""


@dataclass(frozen=True, slots=True)
class _TypedSpec:
    name: str
    bytes_max: int
    decode: Callable[[bytes], TypedMessage]


_TYPED_SPECS: Final[dict[int, _TypedSpec]] = {
    ord(cls.TYPE): _TypedSpec(cls.__name__, bytes_max, cls.decode)
    for cls, bytes_max in (
        (Query, MESSAGE_BYTES_MAX_DEFAULT),
        (Parse, MESSAGE_BYTES_MAX_DEFAULT),
        (Bind, MESSAGE_BYTES_MAX_DEFAULT),
        (Describe, SMALL_MESSAGE_BYTES_MAX),
        (Execute, SMALL_MESSAGE_BYTES_MAX),
        (Close, SMALL_MESSAGE_BYTES_MAX),
        (Sync, SMALL_MESSAGE_BYTES_MAX),
        (Flush, SMALL_MESSAGE_BYTES_MAX),
        (Terminate, SMALL_MESSAGE_BYTES_MAX),
        (CopyData, MESSAGE_BYTES_MAX_DEFAULT),
        (CopyDone, MESSAGE_BYTES_MAX_DEFAULT),
        (CopyFail, MESSAGE_BYTES_MAX_DEFAULT),
        (FunctionCall, MESSAGE_BYTES_MAX_DEFAULT),
        (AuthenticationResponse, AUTHENTICATION_BYTES_MAX),
    )
}


class FrontendParser:
    """Turns the bytes a client sends into frontend messages; see the module docstring.

    ``message_bytes_max`` bounds the length word of the large typed messages (the small
    ones keep PostgreSQL's 10,000 and 65,535 when it is larger); ``startup_bytes_max``
    bounds a startup packet, length word included.
    """

    __slots__ = (
        "_buffer",
        "_failure",
        "_gssenc_done",
        "_pending_request",
        "_phase",
        "_ssl_done",
        "message_bytes_max",
        "startup_bytes_max",
    )

    def __init__(
        self,
        *,
        message_bytes_max: int = MESSAGE_BYTES_MAX_DEFAULT,
        startup_bytes_max: int = STARTUP_BYTES_MAX_DEFAULT,
    ) -> None:
        assert 4 <= message_bytes_max <= 2**31 - 1
        assert CANCEL_REQUEST_BYTES <= startup_bytes_max <= 2**31 - 1
        self.message_bytes_max = message_bytes_max
        self.startup_bytes_max = startup_bytes_max
        self._buffer = bytearray()
        self._phase = Phase.STARTUP
        self._failure: PgProtocolError | None = None
        self._ssl_done = False
        self._gssenc_done = False
        self._pending_request: type[SSLRequest] | type[GSSENCRequest] | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a returned message."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[FrontendMessage]:
        """Every message completed by ``data``, in order; ``PgProtocolError`` on a violation."""
        if self._failure is not None:
            raise PgProtocolError(
                f"the client already broke the protocol: {self._failure}",
                sqlstate=self._failure.sqlstate,
            )
        if not data:
            return []
        buffer = self._buffer
        buffer += data
        messages: list[FrontendMessage] = []
        offset = 0
        try:
            while offset < len(buffer):
                phase = self._phase
                message: FrontendMessage | None
                if phase is Phase.MESSAGES:
                    message, offset = self._next_typed(offset)
                elif phase is Phase.STARTUP:
                    message, offset = self._next_startup(offset)
                else:
                    raise self._unexpected_bytes(len(buffer) - offset)
                if message is None:
                    break
                messages.append(message)
        except PgProtocolError as exc:
            self._fail(exc)
            raise
        assert offset <= len(buffer)
        # Moves only the incomplete tail, which then sits at the front until it completes:
        # each byte is moved at most once.
        del buffer[:offset]
        return messages

    def answer_encryption_request(self, *, accepted: bool) -> bytes:
        """The byte to send for the SSLRequest or GSSENCRequest just returned.

        If it accepts, the caller switches the connection to TLS (GSSAPI) before it feeds
        anything more; the parser then expects a StartupMessage (or a CancelRequest) in the
        clear bytes of the encrypted stream.
        """
        assert self._phase is Phase.AWAITING_ENCRYPTION_ANSWER, self._phase
        assert not self._buffer, "feed raises on any byte after an encryption request"
        pending = self._pending_request
        assert pending is not None
        self._pending_request = None
        self._phase = Phase.STARTUP
        # libpq asks for the other kind of encryption only if the first was refused; once
        # inside one, a request for the other is refused as a protocol violation.
        if pending is SSLRequest:
            assert self._ssl_done
            self._gssenc_done = self._gssenc_done or accepted
            return SSL_ACCEPTED if accepted else ENCRYPTION_REFUSED
        assert self._gssenc_done
        self._ssl_done = self._ssl_done or accepted
        return GSSENC_ACCEPTED if accepted else ENCRYPTION_REFUSED

    # --- internals -----------------------------------------------------------------------

    def _fail(self, exc: PgProtocolError) -> None:
        self._failure = exc
        self._phase = Phase.FAILED
        self._buffer.clear()

    def _unexpected_bytes(self, count: int) -> PgProtocolError:
        if self._phase is Phase.AWAITING_ENCRYPTION_ANSWER:
            # postmaster.c: "received unencrypted data after SSL request".
            return PgProtocolError(
                f"received {count} unencrypted bytes after an encryption request, before "
                "the server answered it"
            )
        assert self._phase is Phase.CLOSED
        return PgProtocolError(f"received {count} bytes after the end of the session")

    def _next_typed(self, offset: int) -> tuple[TypedMessage | None, int]:
        buffer = self._buffer
        available = len(buffer) - offset
        assert available >= 1
        type_code = buffer[offset]
        spec = _TYPED_SPECS.get(type_code)
        if spec is None:
            raise PgProtocolError(
                f"invalid frontend message type {type_code} ({bytes([type_code])!r})"
            )
        if available < 5:
            return None, offset
        (length,) = _UINT32.unpack_from(buffer, offset + 1)
        if length < 4:
            raise PgProtocolError(f"{spec.name} message: invalid length {length} (below 4)")
        bytes_max = min(spec.bytes_max, self.message_bytes_max)
        if length > bytes_max:
            raise PgProtocolError(
                f"{spec.name} message: invalid length {length} (above {bytes_max})"
            )
        stop = offset + 1 + length
        if stop > len(buffer):
            return None, offset
        with memoryview(buffer) as view:
            body = bytes(view[offset + 5 : stop])
        message = spec.decode(body)
        if type(message) is Terminate:
            self._phase = Phase.CLOSED
        return message, stop

    def _next_startup(self, offset: int) -> tuple[FrontendMessage | None, int]:
        buffer = self._buffer
        available = len(buffer) - offset
        if available < 4:
            return None, offset
        (length,) = _UINT32.unpack_from(buffer, offset)
        if not STARTUP_BYTES_MIN <= length <= self.startup_bytes_max:
            raise PgProtocolError(
                f"invalid length of startup packet: {length} "
                f"(must be {STARTUP_BYTES_MIN} to {self.startup_bytes_max})"
            )
        if available < length:
            return None, offset
        with memoryview(buffer) as view:
            body = bytes(view[offset + 4 : offset + length])
        stop = offset + length
        (code,) = _UINT32.unpack_from(body, 0)
        if code == CANCEL_REQUEST_CODE:
            if length != CANCEL_REQUEST_BYTES:
                raise PgProtocolError(
                    f"invalid length of cancel request: {length} (must be {CANCEL_REQUEST_BYTES})"
                )
            process_id, secret_key = _CANCEL.unpack_from(body, 4)
            self._phase = Phase.CLOSED
            return CancelRequest(process_id, secret_key), stop
        if code == SSL_REQUEST_CODE and not self._ssl_done:
            self._encryption_request("SSLRequest", length)
            self._ssl_done = True
            self._pending_request = SSLRequest
            return SSLRequest(), stop
        if code == GSSENC_REQUEST_CODE and not self._gssenc_done:
            self._encryption_request("GSSENCRequest", length)
            self._gssenc_done = True
            self._pending_request = GSSENCRequest
            return GSSENCRequest(), stop
        # A repeated encryption request falls through to here and is refused as a protocol
        # version, as PostgreSQL does ("unsupported frontend protocol 1234.5679").
        message = _decode_startup(body, code)
        self._phase = Phase.MESSAGES
        return message, stop

    def _encryption_request(self, name: str, length: int) -> None:
        if length != ENCRYPTION_REQUEST_BYTES:
            raise PgProtocolError(
                f"invalid length of {name}: {length} (must be {ENCRYPTION_REQUEST_BYTES})"
            )
        self._phase = Phase.AWAITING_ENCRYPTION_ANSWER


def _decode_startup(body: bytes, version: int) -> StartupMessage:
    """A StartupMessage from the body after the length word; ``version`` is its first Int32."""
    major, minor = version >> 16, version & 0xFFFF
    if major != 3:
        # Checked before the parameters, as PostgreSQL does: their layout is version's.
        raise PgProtocolError(
            f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
            sqlstate=SQLSTATE_FEATURE_NOT_SUPPORTED,
        )
    reader = BodyReader(body, "StartupMessage", offset=4)
    parameters: list[tuple[str, str]] = []
    while True:
        if reader.remaining == 0:
            raise PgProtocolError("invalid startup packet layout: expected terminator as last byte")
        if body[reader.offset] == 0:
            reader.offset += 1
            break
        name = reader.cstring("a parameter name")
        value = reader.cstring(f"the value of parameter {name!r}")
        parameters.append((name, value))
    if reader.remaining:
        raise PgProtocolError(
            "invalid startup packet layout: expected terminator as last byte "
            f"({reader.remaining} bytes follow it)"
        )
    return StartupMessage(major, minor, tuple(parameters))
