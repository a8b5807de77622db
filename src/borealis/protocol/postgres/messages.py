"""Frontend messages of the PostgreSQL protocol 3.0: what a client may send, as typed values.

Every message is a frozen dataclass that validates on construction and raises
``PgProtocolError`` if it could not have come from a client that follows the protocol: the
parser (``borealis.protocol.postgres.parser``) builds them from the wire and relies on those checks, so
each rule is written once. Each typed message class knows its type byte and decodes its own
body (``decode``); the framing (type byte, length word, phases of the connection) is the
parser's job.

The rules follow PostgreSQL 15 (``postgres.c``, ``pqformat.c``): Int16 counts are read
unsigned, as ``pq_getmsgint(msg, 2)`` does, so a Bind may carry up to 65,535 parameters (libpq
allows that many since 14); Int32 lengths are signed and only -1 (NULL) may be negative;
every string is a NUL-terminated UTF-8 string (the server speaks UTF8 only, so a byte
sequence that is not UTF-8 is refused with SQLSTATE 22021, as PostgreSQL does); a body must
end exactly where its last field ends. Unlike PostgreSQL, which answers a well-framed but
malformed message with an ERROR and keeps the session, every violation here is fatal to the
connection: the caller sends a FATAL ErrorResponse built from the exception and closes.

The ``'p'`` type byte carries a password, a SASL initial response or a SASL response: which
one depends on the authentication exchange, which this module does not know. The parser
yields the raw ``AuthenticationResponse`` and ``parse_password_message``,
``parse_sasl_initial_response`` and ``parse_sasl_response`` read it once the caller knows
what it expects.

Not here: framing and phases (``parser``), what the server sends (``backend``), any I/O,
authentication logic, SQL.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from borealis.errors import ProtocolError

# --- SQLSTATEs a protocol violation is reported with -------------------------------------

SQLSTATE_PROTOCOL_VIOLATION: Final = "08P01"
SQLSTATE_FEATURE_NOT_SUPPORTED: Final = "0A000"
SQLSTATE_CHARACTER_NOT_IN_REPERTOIRE: Final = "22021"
SQLSTATE_INVALID_PARAMETER_VALUE: Final = "22023"
SQLSTATE_INVALID_AUTHORIZATION_SPECIFICATION: Final = "28000"


class PgProtocolError(ProtocolError):
    """A client broke the PostgreSQL protocol; its connection must be closed.

    ``sqlstate`` is the code PostgreSQL reports for the same violation, so that the server
    can send a FATAL ErrorResponse with it (and the message) before closing: 08P01 for a
    malformed message, 0A000 for an unsupported protocol version, 22021 for bad UTF-8, 28000
    for a startup packet without a user name.
    """

    def __init__(self, message: str, *, sqlstate: str = SQLSTATE_PROTOCOL_VIOLATION) -> None:
        super().__init__(message)
        assert len(sqlstate) == 5, sqlstate
        self.sqlstate = sqlstate


# --- protocol constants --------------------------------------------------------------------

PROTOCOL_MAJOR: Final = 3
PROTOCOL_MINOR_LATEST: Final = 0
"""PostgreSQL 15 speaks 3.0 only; a client asking for 3.x gets a NegotiateProtocolVersion."""
PROTOCOL_VERSION_3_0: Final = 196608  # (3 << 16) | 0

CANCEL_REQUEST_CODE: Final = 80877102  # (1234 << 16) | 5678
SSL_REQUEST_CODE: Final = 80877103  # (1234 << 16) | 5679
GSSENC_REQUEST_CODE: Final = 80877104  # (1234 << 16) | 5680

COUNT_MAX: Final = 65535
"""Largest Int16 count on the wire (parameters, formats, columns), read unsigned."""

OID_MAX: Final = 2**32 - 1
INT16_MIN: Final = -(2**15)
INT16_MAX: Final = 2**15 - 1
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

_INT16 = struct.Struct(">h")
_UINT16 = struct.Struct(">H")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_HEADER = struct.Struct(">cI")
"""Type byte and length word of a typed message; the length counts itself, not the type."""


class Format(enum.IntEnum):
    """The format of a parameter or column value."""

    TEXT = 0
    BINARY = 1


_FORMAT_BY_CODE: Final = {int(member): member for member in Format}


class Target(enum.Enum):
    """What a Describe or Close names: a prepared statement or a portal."""

    STATEMENT = "S"
    PORTAL = "P"


_TARGET_BY_BYTE: Final = {ord(member.value): member for member in Target}


# --- reading a body --------------------------------------------------------------------------


class BodyReader:
    """A cursor over one message body that raises ``PgProtocolError`` naming the message
    and the field for anything that does not fit: a field that runs past the end, a string
    without its NUL, bytes that are not UTF-8, bytes left over after the last field."""

    __slots__ = ("body", "message", "offset")

    def __init__(self, body: bytes, message: str, offset: int = 0) -> None:
        assert 0 <= offset <= len(body)
        self.body = body
        self.message = message
        """The message's name, for error messages."""
        self.offset = offset

    @property
    def remaining(self) -> int:
        return len(self.body) - self.offset

    def error(
        self, problem: str, *, sqlstate: str = SQLSTATE_PROTOCOL_VIOLATION
    ) -> PgProtocolError:
        return PgProtocolError(f"{self.message} message: {problem}", sqlstate=sqlstate)

    def _need(self, size: int, field: str) -> None:
        if size > len(self.body) - self.offset:
            raise self.error(
                f"{field} needs {size} bytes at offset {self.offset} but the body has only "
                f"{len(self.body) - self.offset} left (of {len(self.body)})"
            )

    def byte1(self, field: str) -> int:
        self._need(1, field)
        value = self.body[self.offset]
        self.offset += 1
        return value

    def int16(self, field: str) -> int:
        self._need(2, field)
        (value,) = _INT16.unpack_from(self.body, self.offset)
        self.offset += 2
        return int(value)

    def count16(self, field: str) -> int:
        """An Int16 count, read unsigned as PostgreSQL does (0 to 65,535)."""
        self._need(2, field)
        (value,) = _UINT16.unpack_from(self.body, self.offset)
        self.offset += 2
        return int(value)

    def int32(self, field: str) -> int:
        self._need(4, field)
        (value,) = _INT32.unpack_from(self.body, self.offset)
        self.offset += 4
        return int(value)

    def uint32(self, field: str) -> int:
        self._need(4, field)
        (value,) = _UINT32.unpack_from(self.body, self.offset)
        self.offset += 4
        return int(value)

    def int16_array(self, count: int, field: str) -> tuple[int, ...]:
        if count == 0:  # the usual count of format codes
            return ()
        self._need(2 * count, field)
        values = struct.unpack_from(f">{count}h", self.body, self.offset)
        self.offset += 2 * count
        return values

    def uint32_array(self, count: int, field: str) -> tuple[int, ...]:
        self._need(4 * count, field)
        values = struct.unpack_from(f">{count}I", self.body, self.offset)
        self.offset += 4 * count
        return values

    def raw(self, size: int, field: str) -> bytes:
        assert size >= 0
        self._need(size, field)
        start = self.offset
        self.offset = start + size
        return self.body[start : self.offset]

    def rest(self) -> bytes:
        start = self.offset
        self.offset = len(self.body)
        return self.body[start:]

    def cstring(self, field: str) -> str:
        """A NUL-terminated UTF-8 string."""
        body = self.body
        start = self.offset
        end = body.find(b"\x00", start)
        if end < 0:
            raise self.error(f"{field} at offset {start} has no terminating NUL byte")
        self.offset = end + 1
        try:
            return body[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(
                f"{field} is not valid UTF-8 (byte {exc.start} of the string: {exc.reason})",
                sqlstate=SQLSTATE_CHARACTER_NOT_IN_REPERTOIRE,
            ) from exc

    def values(self, count: int, field: str) -> tuple[bytes | None, ...]:
        """``count`` values, each an Int32 length (-1: NULL) and that many bytes."""
        body = self.body
        end = len(body)
        offset = self.offset
        values: list[bytes | None] = []
        append = values.append
        unpack_from = _INT32.unpack_from
        for index in range(count):
            if end - offset < 4:
                self.offset = offset
                self._need(4, f"the length of {field} {index + 1}")
            (length,) = unpack_from(body, offset)
            offset += 4
            if length == -1:
                append(None)
                continue
            if length < 0:
                raise self.error(
                    f"{field} {index + 1} has length {length}; only -1 (NULL) may be negative"
                )
            if length > end - offset:
                self.offset = offset
                self._need(length, f"{field} {index + 1}")
            append(body[offset : offset + length])
            offset += length
        self.offset = offset
        return tuple(values)

    def finish(self) -> None:
        if self.offset != len(self.body):
            raise self.error(
                f"{len(self.body) - self.offset} bytes left after the last field "
                f"(body of {len(self.body)} bytes)"
            )


def _formats(codes: tuple[int, ...], message: str, field: str) -> tuple[Format, ...]:
    if not codes:
        return ()
    try:
        return tuple(_FORMAT_BY_CODE[code] for code in codes)
    except KeyError as exc:
        raise PgProtocolError(
            f"{message} message: unsupported {field} format code {exc.args[0]} "
            "(0 is text, 1 is binary)",
            sqlstate=SQLSTATE_INVALID_PARAMETER_VALUE,
        ) from None


def _check_count(count: int, message: str, field: str) -> None:
    if count > COUNT_MAX:
        raise PgProtocolError(
            f"{message} message: {count} {field} is more than the protocol's {COUNT_MAX}"
        )


def _check_formats(formats: tuple[Format, ...], message: str, field: str) -> None:
    _check_count(len(formats), message, f"{field} format codes")
    for code in formats:
        if code not in _FORMAT_BY_CODE:
            raise PgProtocolError(
                f"{message} message: unsupported {field} format code {code}",
                sqlstate=SQLSTATE_INVALID_PARAMETER_VALUE,
            )


def _check_nul_free(text: str, message: str, field: str) -> None:
    if "\x00" in text:
        raise PgProtocolError(f"{message} message: {field} contains a NUL character")


def _check_formats_match(
    formats: tuple[Format, ...], value_count: int, message: str, field: str
) -> None:
    # postgres.c exec_bind_message: zero codes (all text), one (applies to every value) or
    # one per value.
    if len(formats) > 1 and len(formats) != value_count:
        raise PgProtocolError(
            f"{message} message has {len(formats)} {field} formats but {value_count} {field}s"
        )


def _format_of(formats: tuple[Format, ...], index: int) -> Format:
    if not formats:
        return Format.TEXT
    if len(formats) == 1:
        return formats[0]
    return formats[index]


# --- startup-phase packets (no type byte) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """The first packet of a session: the protocol version and ``name = value`` parameters.

    ``parameters`` keeps the order the client sent them in. PostgreSQL requires ``user``
    (28000 otherwise); ``database`` defaults to it. Names starting with ``_pq_.`` are protocol
    options, not settings: we know none, so ``needs_negotiation`` says whether the server
    must answer with a ``NegotiateProtocolVersion`` listing them (as it must for a minor
    version above 0).
    """

    major: int
    minor: int
    parameters: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if self.major != PROTOCOL_MAJOR or not 0 <= self.minor <= 0xFFFF:
            raise PgProtocolError(
                f"unsupported frontend protocol {self.major}.{self.minor}: server supports "
                f"{PROTOCOL_MAJOR}.0 to {PROTOCOL_MAJOR}.{PROTOCOL_MINOR_LATEST}",
                sqlstate=SQLSTATE_FEATURE_NOT_SUPPORTED,
            )
        seen: set[str] = set()
        for name, value in self.parameters:
            if not name:
                raise PgProtocolError("startup packet: a parameter has an empty name")
            _check_nul_free(name, "StartupMessage", "a parameter name")
            _check_nul_free(value, "StartupMessage", f"the value of parameter {name!r}")
            if name in seen:
                raise PgProtocolError(f"startup packet: parameter {name!r} appears twice")
            seen.add(name)
        if not self.get("user"):
            raise PgProtocolError(
                "no PostgreSQL user name specified in startup packet",
                sqlstate=SQLSTATE_INVALID_AUTHORIZATION_SPECIFICATION,
            )

    def get(self, name: str) -> str | None:
        for key, value in self.parameters:
            if key == name:
                return value
        return None

    @property
    def protocol_version(self) -> int:
        return (self.major << 16) | self.minor

    @property
    def user(self) -> str:
        user = self.get("user")
        assert user  # __post_init__
        return user

    @property
    def database(self) -> str:
        """The database, or the user name when the client named none (as PostgreSQL)."""
        return self.get("database") or self.user

    @property
    def options(self) -> str | None:
        """Command-line style options (``-c name=value ...``), unparsed."""
        return self.get("options")

    @property
    def application_name(self) -> str | None:
        return self.get("application_name")

    @property
    def settings(self) -> tuple[tuple[str, str], ...]:
        """The run-time parameters to apply: everything but user, database, options,
        replication and protocol options."""
        return tuple(
            (name, value)
            for name, value in self.parameters
            if name not in _NOT_SETTINGS and not name.startswith("_pq_.")
        )

    @property
    def protocol_options(self) -> tuple[str, ...]:
        """The ``_pq_.`` option names, all unrecognised (PostgreSQL 15 knows none)."""
        return tuple(name for name, _ in self.parameters if name.startswith("_pq_."))

    @property
    def needs_negotiation(self) -> bool:
        return self.minor > PROTOCOL_MINOR_LATEST or bool(self.protocol_options)


_NOT_SETTINGS: Final = frozenset({"user", "database", "options", "replication"})


@dataclass(frozen=True, slots=True)
class SSLRequest:
    """The client asks for TLS; the server answers one byte, ``S`` or ``N``."""


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    """The client asks for GSSAPI encryption; the server answers ``G`` or ``N``."""


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Sent on a fresh connection: cancel what the session with this key is running."""

    process_id: int
    secret_key: int

    def __post_init__(self) -> None:
        for name, value in (("process_id", self.process_id), ("secret_key", self.secret_key)):
            if not INT32_MIN <= value <= INT32_MAX:
                raise PgProtocolError(f"CancelRequest: {name} {value} is not an Int32")


# --- typed messages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """Simple query: one string that may hold several statements."""

    TYPE: ClassVar[bytes] = b"Q"
    query: str

    @classmethod
    def decode(cls, body: bytes) -> Self:
        reader = BodyReader(body, "Query")
        query = reader.cstring("the query string")
        reader.finish()
        return cls(query)


@dataclass(frozen=True, slots=True)
class Parse:
    """Prepare ``query`` as ``statement`` (empty: the unnamed statement).

    ``parameter_types`` may name fewer types than the query has parameters; 0 leaves a type
    for the server to infer.
    """

    TYPE: ClassVar[bytes] = b"P"
    statement: str
    query: str
    parameter_types: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_count(len(self.parameter_types), "Parse", "parameter types")
        for oid in self.parameter_types:
            if not 0 <= oid <= OID_MAX:
                raise PgProtocolError(f"Parse message: parameter type OID {oid} out of range")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        reader = BodyReader(body, "Parse")
        statement = reader.cstring("the statement name")
        query = reader.cstring("the query string")
        count = reader.count16("the parameter type count")
        types = reader.uint32_array(count, "the parameter type OIDs")
        reader.finish()
        return cls(statement, query, types)


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind a prepared statement's parameters into ``portal`` (empty: the unnamed portal).

    ``parameters`` holds each value's bytes, ``None`` for NULL. ``parameter_formats`` has no
    code (all text), one (for every value) or one per value: ``parameter_format`` resolves
    it; ``result_formats`` likewise for the result columns (``result_format``), checked
    against the column count by whoever knows it.
    """

    TYPE: ClassVar[bytes] = b"B"
    portal: str
    statement: str
    parameter_formats: tuple[Format, ...]
    parameters: tuple[bytes | None, ...]
    result_formats: tuple[Format, ...]

    def __post_init__(self) -> None:
        _check_formats(self.parameter_formats, "Bind", "parameter")
        _check_count(len(self.parameters), "Bind", "parameters")
        _check_formats_match(self.parameter_formats, len(self.parameters), "Bind", "parameter")
        _check_formats(self.result_formats, "Bind", "result")

    def parameter_format(self, index: int) -> Format:
        assert 0 <= index < len(self.parameters)
        return _format_of(self.parameter_formats, index)

    def result_format(self, column: int) -> Format:
        """The format of result column ``column`` (0-based)."""
        assert column >= 0
        return _format_of(self.result_formats, column)

    @classmethod
    def decode(cls, body: bytes) -> Self:
        reader = BodyReader(body, "Bind")
        portal = reader.cstring("the portal name")
        statement = reader.cstring("the statement name")
        count = reader.count16("the parameter format count")
        parameter_formats = _formats(
            reader.int16_array(count, "the parameter format codes"), "Bind", "parameter"
        )
        count = reader.count16("the parameter count")
        parameters = reader.values(count, "parameter")
        count = reader.count16("the result format count")
        result_formats = _formats(
            reader.int16_array(count, "the result format codes"), "Bind", "result"
        )
        reader.finish()
        return cls(portal, statement, parameter_formats, parameters, result_formats)


def _decode_target(reader: BodyReader) -> tuple[Target, str]:
    code = reader.byte1("the target kind")
    target = _TARGET_BY_BYTE.get(code)
    if target is None:
        raise reader.error(f"invalid target kind {bytes([code])!r} (must be 'S' or 'P')")
    name = reader.cstring("the name")
    reader.finish()
    return target, name


@dataclass(frozen=True, slots=True)
class Describe:
    """Ask for a statement's ParameterDescription and RowDescription, or a portal's
    RowDescription (NoData when it returns no rows)."""

    TYPE: ClassVar[bytes] = b"D"
    target: Target
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.target, Target):
            raise PgProtocolError(f"Describe message: invalid target {self.target!r}")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        return cls(*_decode_target(BodyReader(body, "Describe")))


@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``portal``, returning at most ``max_rows`` rows (0: all of them)."""

    TYPE: ClassVar[bytes] = b"E"
    portal: str
    max_rows: int

    def __post_init__(self) -> None:
        # PostgreSQL treats a negative count as 0 (all rows); no client sends one, and a
        # negative count is more likely a broken client than a request for everything.
        if not 0 <= self.max_rows <= INT32_MAX:
            raise PgProtocolError(f"Execute message: negative row count {self.max_rows}")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        reader = BodyReader(body, "Execute")
        portal = reader.cstring("the portal name")
        max_rows = reader.int32("the row count")
        reader.finish()
        return cls(portal, max_rows)


@dataclass(frozen=True, slots=True)
class Close:
    """Drop a prepared statement or a portal (a missing one is not an error)."""

    TYPE: ClassVar[bytes] = b"C"
    target: Target
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.target, Target):
            raise PgProtocolError(f"Close message: invalid target {self.target!r}")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        return cls(*_decode_target(BodyReader(body, "Close")))


def _check_empty(body: bytes, name: str) -> None:
    if body:
        raise PgProtocolError(f"{name} message: {len(body)} bytes in a message that has none")


@dataclass(frozen=True, slots=True)
class Sync:
    """End of an extended-query batch: commit an implicit transaction, then ReadyForQuery."""

    TYPE: ClassVar[bytes] = b"S"

    @classmethod
    def decode(cls, body: bytes) -> Self:
        _check_empty(body, "Sync")
        return cls()


@dataclass(frozen=True, slots=True)
class Flush:
    """Send whatever output is pending, without ending the batch."""

    TYPE: ClassVar[bytes] = b"H"

    @classmethod
    def decode(cls, body: bytes) -> Self:
        _check_empty(body, "Flush")
        return cls()


@dataclass(frozen=True, slots=True)
class Terminate:
    """The client closes the session."""

    TYPE: ClassVar[bytes] = b"X"

    @classmethod
    def decode(cls, body: bytes) -> Self:
        _check_empty(body, "Terminate")
        return cls()


@dataclass(frozen=True, slots=True)
class CopyData:
    """A chunk of a COPY stream. Both sides send it, so it also encodes itself."""

    TYPE: ClassVar[bytes] = b"d"
    data: bytes

    @classmethod
    def decode(cls, body: bytes) -> Self:
        return cls(body)

    def encode(self) -> bytes:
        return _HEADER.pack(b"d", len(self.data) + 4) + self.data


@dataclass(frozen=True, slots=True)
class CopyDone:
    """The COPY stream ended normally. Both sides send it."""

    TYPE: ClassVar[bytes] = b"c"

    @classmethod
    def decode(cls, body: bytes) -> Self:
        _check_empty(body, "CopyDone")
        return cls()

    def encode(self) -> bytes:
        return b"c\x00\x00\x00\x04"


@dataclass(frozen=True, slots=True)
class CopyFail:
    """The client aborts a COPY FROM STDIN, with a reason."""

    TYPE: ClassVar[bytes] = b"f"
    message: str

    @classmethod
    def decode(cls, body: bytes) -> Self:
        reader = BodyReader(body, "CopyFail")
        message = reader.cstring("the error message")
        reader.finish()
        return cls(message)


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The legacy fast-path function call (used by libpq's large-object API).

    Decoded so that a server can refuse it with a proper ErrorResponse (0A000) instead of
    dropping the connection; ``arguments`` follow the same rules as Bind's parameters.
    """

    TYPE: ClassVar[bytes] = b"F"
    function_oid: int
    argument_formats: tuple[Format, ...]
    arguments: tuple[bytes | None, ...]
    result_format: Format

    def __post_init__(self) -> None:
        if not 0 <= self.function_oid <= OID_MAX:
            raise PgProtocolError(f"FunctionCall message: OID {self.function_oid} out of range")
        _check_formats(self.argument_formats, "FunctionCall", "argument")
        _check_count(len(self.arguments), "FunctionCall", "arguments")
        _check_formats_match(self.argument_formats, len(self.arguments), "FunctionCall", "argument")
        _check_formats((self.result_format,), "FunctionCall", "result")

    @classmethod
    def decode(cls, body: bytes) -> Self:
        reader = BodyReader(body, "FunctionCall")
        function_oid = reader.uint32("the function OID")
        count = reader.count16("the argument format count")
        argument_formats = _formats(
            reader.int16_array(count, "the argument format codes"), "FunctionCall", "argument"
        )
        count = reader.count16("the argument count")
        arguments = reader.values(count, "argument")
        (result_format,) = _formats(
            (reader.int16("the result format code"),), "FunctionCall", "result"
        )
        reader.finish()
        return cls(function_oid, argument_formats, arguments, result_format)


@dataclass(frozen=True, slots=True)
class AuthenticationResponse:
    """A ``'p'`` message, undecoded: a PasswordMessage, a SASLInitialResponse, a
    SASLResponse or a GSSResponse, depending on what the server asked for. Read it with
    ``parse_password_message``, ``parse_sasl_initial_response`` or ``parse_sasl_response``.

    PostgreSQL accepts ``'p'`` only while it authenticates (it is an unknown message type
    afterwards); the parser cannot know that, so the server checks it.
    """

    TYPE: ClassVar[bytes] = b"p"
    data: bytes

    @classmethod
    def decode(cls, body: bytes) -> Self:
        return cls(body)


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """A cleartext password, or ``md5`` and 32 hex digits, as the server asked."""

    password: str

    def __post_init__(self) -> None:
        _check_nul_free(self.password, "PasswordMessage", "the password")


@dataclass(frozen=True, slots=True)
class SASLInitialResponse:
    """The mechanism the client chose and its first message (``None``: it sent none)."""

    mechanism: str
    data: bytes | None

    def __post_init__(self) -> None:
        if not self.mechanism:
            raise PgProtocolError("SASLInitialResponse message: empty mechanism name")
        _check_nul_free(self.mechanism, "SASLInitialResponse", "the mechanism name")


@dataclass(frozen=True, slots=True)
class SASLResponse:
    """A later message of the SASL exchange, mechanism-specific bytes."""

    data: bytes


def parse_password_message(response: AuthenticationResponse) -> PasswordMessage:
    reader = BodyReader(response.data, "PasswordMessage")
    password = reader.cstring("the password")
    reader.finish()
    return PasswordMessage(password)


def parse_sasl_initial_response(response: AuthenticationResponse) -> SASLInitialResponse:
    reader = BodyReader(response.data, "SASLInitialResponse")
    mechanism = reader.cstring("the mechanism name")
    length = reader.int32("the initial response length")
    data: bytes | None
    if length == -1:
        data = None
    elif length < 0:
        raise reader.error(f"initial response length {length}; only -1 (none) may be negative")
    else:
        data = reader.raw(length, "the initial response")
    reader.finish()
    return SASLInitialResponse(mechanism, data)


def parse_sasl_response(response: AuthenticationResponse) -> SASLResponse:
    return SASLResponse(response.data)


FrontendMessage = (
    StartupMessage
    | SSLRequest
    | GSSENCRequest
    | CancelRequest
    | Query
    | Parse
    | Bind
    | Describe
    | Execute
    | Close
    | Sync
    | Flush
    | Terminate
    | CopyData
    | CopyDone
    | CopyFail
    | FunctionCall
    | AuthenticationResponse
)

TypedMessage = (
    Query
    | Parse
    | Bind
    | Describe
    | Execute
    | Close
    | Sync
    | Flush
    | Terminate
    | CopyData
    | CopyDone
    | CopyFail
    | FunctionCall
    | AuthenticationResponse
)
