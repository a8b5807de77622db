"""Backend messages of the PostgreSQL protocol 3.0: what the server sends, as bytes.

Each message is a frozen dataclass that validates on construction (``ValueError``: a bad
backend message is a bug in the server, not the client's fault) and encodes itself with
``encode() -> bytes``: the type byte, an Int32 length that counts itself, the body. The
messages without fields are also bytes constants (``PARSE_COMPLETE``...), and the two hot ones
have functions that skip the dataclass: ``encode_data_row`` for each row of a result and
``encode_row_description`` for its header. Strings are encoded as UTF-8 (the only client
encoding the server speaks) and must not contain NUL, which would end them early on the
wire: text that comes from SQL data must be cleaned before it goes into an error message.

``ErrorResponse`` and ``NoticeResponse`` carry their fields by name and send them with the
one-letter codes of the protocol, in PostgreSQL's order; the severity goes out twice, as
``S`` (which PostgreSQL localises; we do not) and ``V`` (never localised, since 9.6).

Not here: anything the client sends (``messages``, ``parser``), any I/O, the server's
decisions (which messages, in which order).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from borealis.protocol.postgres.messages import (
    COUNT_MAX,
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    INT32_MIN,
    OID_MAX,
    PROTOCOL_VERSION_3_0,
    CopyData,
    CopyDone,
    Format,
    PgProtocolError,
)

BODY_BYTES_MAX: Final = 2**30 - 1 - 4
"""Largest body we send: the length word (counting itself) stays within PostgreSQL's
MaxAllocSize, which clients size their buffers by."""

_HEADER = struct.Struct(">cI")
_HEADER_COUNT = struct.Struct(">cIH")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_AUTH = struct.Struct(">cIi")
_FIELD = struct.Struct(">IhIhih")
"""A RowDescription field after its name: table OID, attnum, type OID, size, modifier, format."""
_NULL: Final = b"\xff\xff\xff\xff"


def _frame(type_byte: bytes, body: bytes) -> bytes:
    if len(body) > BODY_BYTES_MAX:
        raise ValueError(f"{type_byte!r} message body of {len(body)} bytes is too large")
    return _HEADER.pack(type_byte, len(body) + 4) + body


def _cstring(text: str, what: str) -> bytes:
    if "\x00" in text:
        raise ValueError(f"{what} contains a NUL character: {text!r}")
    return text.encode("utf-8") + b"\x00"


def _check_range(value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is out of range [{low}, {high}]")


def _check_count(count: int, what: str) -> None:
    if count > COUNT_MAX:
        raise ValueError(f"{count} {what}: the protocol allows at most {COUNT_MAX}")


# --- encryption answers (single bytes, not messages) ---------------------------------------

SSL_ACCEPTED: Final = b"S"
GSSENC_ACCEPTED: Final = b"G"
ENCRYPTION_REFUSED: Final = b"N"

# --- messages without fields ---------------------------------------------------------------

PARSE_COMPLETE: Final = b"1\x00\x00\x00\x04"
BIND_COMPLETE: Final = b"2\x00\x00\x00\x04"
CLOSE_COMPLETE: Final = b"3\x00\x00\x00\x04"
NO_DATA: Final = b"n\x00\x00\x00\x04"
PORTAL_SUSPENDED: Final = b"s\x00\x00\x00\x04"
EMPTY_QUERY_RESPONSE: Final = b"I\x00\x00\x00\x04"
COPY_DONE: Final = b"c\x00\x00\x00\x04"


@dataclass(frozen=True, slots=True)
class ParseComplete:
    def encode(self) -> bytes:
        return PARSE_COMPLETE


@dataclass(frozen=True, slots=True)
class BindComplete:
    def encode(self) -> bytes:
        return BIND_COMPLETE


@dataclass(frozen=True, slots=True)
class CloseComplete:
    def encode(self) -> bytes:
        return CLOSE_COMPLETE


@dataclass(frozen=True, slots=True)
class NoData:
    """The answer to Describe of a statement or portal that returns no rows."""

    def encode(self) -> bytes:
        return NO_DATA


@dataclass(frozen=True, slots=True)
class PortalSuspended:
    """Execute stopped at its row count; the portal can be executed again for more."""

    def encode(self) -> bytes:
        return PORTAL_SUSPENDED


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse:
    """Sent instead of CommandComplete for a query string with no statement."""

    def encode(self) -> bytes:
        return EMPTY_QUERY_RESPONSE


# --- authentication ------------------------------------------------------------------------


class AuthenticationCode(enum.IntEnum):
    """The Int32 after an ``'R'`` message's length word (the ones we send)."""

    OK = 0
    CLEARTEXT_PASSWORD = 3
    MD5_PASSWORD = 5
    SASL = 10
    SASL_CONTINUE = 11
    SASL_FINAL = 12


def _authentication(code: AuthenticationCode, extra: bytes = b"") -> bytes:
    return _AUTH.pack(b"R", 8 + len(extra), code) + extra


@dataclass(frozen=True, slots=True)
class AuthenticationOk:
    def encode(self) -> bytes:
        return _authentication(AuthenticationCode.OK)


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword:
    def encode(self) -> bytes:
        return _authentication(AuthenticationCode.CLEARTEXT_PASSWORD)


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    """Ask for ``"md5" + md5(md5(password + user) + salt)`` in hex."""

    salt: bytes

    def __post_init__(self) -> None:
        if type(self.salt) is not bytes or len(self.salt) != 4:
            raise ValueError(f"the MD5 salt must be 4 bytes, got {self.salt!r}")

    def encode(self) -> bytes:
        return _authentication(AuthenticationCode.MD5_PASSWORD, self.salt)


@dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    """Offer SASL mechanisms (``SCRAM-SHA-256``...), most preferred first."""

    mechanisms: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.mechanisms:
            raise ValueError("AuthenticationSASL needs at least one mechanism")
        for mechanism in self.mechanisms:
            if not mechanism:
                raise ValueError("an empty SASL mechanism name would end the list")
            _cstring(mechanism, "a SASL mechanism name")

    def encode(self) -> bytes:
        names = b"".join(_cstring(name, "a SASL mechanism name") for name in self.mechanisms)
        return _authentication(AuthenticationCode.SASL, names + b"\x00")


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue:
    data: bytes

    def encode(self) -> bytes:
        return _authentication(AuthenticationCode.SASL_CONTINUE, self.data)


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal:
    data: bytes

    def encode(self) -> bytes:
        return _authentication(AuthenticationCode.SASL_FINAL, self.data)


# --- session -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    """A run-time parameter the client tracks (server_version, client_encoding, ...)."""

    name: str
    value: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ParameterStatus needs a parameter name")
        _cstring(self.name, "the parameter name")
        _cstring(self.value, f"the value of parameter {self.name!r}")

    def encode(self) -> bytes:
        body = _cstring(self.name, "the parameter name") + _cstring(self.value, "the value")
        return _frame(b"S", body)


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    """What the client sends back in a CancelRequest to cancel this session's query."""

    process_id: int
    secret_key: int

    def __post_init__(self) -> None:
        _check_range(self.process_id, INT32_MIN, INT32_MAX, "BackendKeyData process_id")
        _check_range(self.secret_key, INT32_MIN, INT32_MAX, "BackendKeyData secret_key")

    def encode(self) -> bytes:
        return struct.pack(">cIii", b"K", 12, self.process_id, self.secret_key)


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    """The answer to a StartupMessage asking for 3.x with x > 0 or for ``_pq_.`` options.

    PostgreSQL 15 sends its full latest version (3.0: 196608), not only the minor number
    the documentation of the time describes, and libpq reads it that way.
    """

    newest_version: int = PROTOCOL_VERSION_3_0
    unrecognized_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_range(self.newest_version, 0, OID_MAX, "the protocol version")
        _check_count(len(self.unrecognized_options), "protocol options")
        for name in self.unrecognized_options:
            _cstring(name, "a protocol option name")

    def encode(self) -> bytes:
        names = b"".join(_cstring(name, "an option") for name in self.unrecognized_options)
        body = struct.pack(">Ii", self.newest_version, len(self.unrecognized_options)) + names
        return _frame(b"v", body)


class TransactionStatus(enum.Enum):
    """The session's state in ReadyForQuery."""

    IDLE = "I"
    IN_TRANSACTION = "T"
    FAILED = "E"
    """In a transaction block that failed: only ROLLBACK is accepted until it ends."""


_READY_FOR_QUERY: Final = {
    status: b"Z\x00\x00\x00\x05" + status.value.encode("ascii") for status in TransactionStatus
}


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    status: TransactionStatus

    def __post_init__(self) -> None:
        if not isinstance(self.status, TransactionStatus):
            raise ValueError(f"ReadyForQuery status must be a TransactionStatus: {self.status!r}")

    def encode(self) -> bytes:
        return _READY_FOR_QUERY[self.status]


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    """A NOTIFY on a channel the session listens to."""

    process_id: int
    channel: str
    payload: str

    def __post_init__(self) -> None:
        _check_range(self.process_id, INT32_MIN, INT32_MAX, "the notifying process_id")
        _cstring(self.channel, "the channel")
        _cstring(self.payload, "the payload")

    def encode(self) -> bytes:
        body = (
            _INT32.pack(self.process_id)
            + _cstring(self.channel, "the channel")
            + _cstring(self.payload, "the payload")
        )
        return _frame(b"A", body)


# --- query results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldDescription:
    """One column of a RowDescription.

    ``table_oid`` and ``column_attnum`` name the table column it comes from (0: none);
    ``type_size`` is the type's ``typlen`` (negative for variable width: -1 varlena,
    -2 cstring); ``type_modifier`` its ``atttypmod`` (-1: none).
    """

    name: str
    type_oid: int
    table_oid: int = 0
    column_attnum: int = 0
    type_size: int = -1
    type_modifier: int = -1
    format: Format = Format.TEXT

    def __post_init__(self) -> None:
        _cstring(self.name, "a column name")
        _check_range(self.table_oid, 0, OID_MAX, f"column {self.name!r} table OID")
        _check_range(self.column_attnum, INT16_MIN, INT16_MAX, f"column {self.name!r} attnum")
        _check_range(self.type_oid, 0, OID_MAX, f"column {self.name!r} type OID")
        _check_range(self.type_size, INT16_MIN, INT16_MAX, f"column {self.name!r} type size")
        _check_range(
            self.type_modifier, INT32_MIN, INT32_MAX, f"column {self.name!r} type modifier"
        )
        if self.format not in (Format.TEXT, Format.BINARY):
            raise ValueError(f"column {self.name!r} format {self.format!r} is not 0 or 1")

    def encode(self) -> bytes:
        """The field as it appears inside a RowDescription body."""
        return (
            self.name.encode("utf-8")
            + b"\x00"
            + _FIELD.pack(
                self.table_oid,
                self.column_attnum,
                self.type_oid,
                self.type_size,
                self.type_modifier,
                self.format,
            )
        )


def encode_row_description(fields: Sequence[FieldDescription]) -> bytes:
    """A RowDescription of ``fields``, which validated themselves on construction."""
    _check_count(len(fields), "columns")
    parts = [field.encode() for field in fields]
    length = 6 + sum(map(len, parts))
    return _HEADER_COUNT.pack(b"T", length, len(fields)) + b"".join(parts)


@dataclass(frozen=True, slots=True)
class RowDescription:
    fields: tuple[FieldDescription, ...]

    def __post_init__(self) -> None:
        _check_count(len(self.fields), "columns")
        for field in self.fields:
            if not isinstance(field, FieldDescription):
                raise ValueError(f"a RowDescription field must be a FieldDescription: {field!r}")

    def encode(self) -> bytes:
        return encode_row_description(self.fields)


def encode_data_row(values: Sequence[bytes | None]) -> bytes:
    """A DataRow: each value's bytes in its column's format, ``None`` for NULL.

    The hottest encoder (one call per row sent), hence no dataclass and no per-value checks
    beyond what building the bytes does: a value must be ``bytes`` (or ``bytearray``).
    Length prefix and value are joined per value, then once for the row: 25% faster than
    one flat join for rows of short values (measured 1.4 us against 1.9 for five columns).
    """
    count = len(values)
    if count > COUNT_MAX:
        raise ValueError(f"{count} columns: the protocol allows at most {COUNT_MAX}")
    pack_length = _INT32.pack
    body = b"".join(
        [_NULL if value is None else pack_length(len(value)) + value for value in values]
    )
    if len(body) + 2 > BODY_BYTES_MAX:
        raise ValueError(f"DataRow body of {len(body) + 2} bytes is too large")
    return _HEADER_COUNT.pack(b"D", len(body) + 6, count) + body


@dataclass(frozen=True, slots=True)
class DataRow:
    values: tuple[bytes | None, ...]

    def __post_init__(self) -> None:
        _check_count(len(self.values), "columns")
        for value in self.values:
            if value is not None and type(value) is not bytes:
                raise ValueError(f"a DataRow value must be bytes or None: {value!r}")

    def encode(self) -> bytes:
        return encode_data_row(self.values)


_COMMAND_TAG: Final = re.compile(r"[A-Z]+( [A-Z]+)*( [0-9]+){0,2}")


@dataclass(frozen=True, slots=True)
class CommandComplete:
    """The command tag: ``SELECT 3``, ``INSERT 0 1``, ``UPDATE 2``, ``BEGIN``..."""

    tag: str

    def __post_init__(self) -> None:
        if not _COMMAND_TAG.fullmatch(self.tag):
            raise ValueError(f"malformed command tag {self.tag!r}")

    def encode(self) -> bytes:
        return _frame(b"C", self.tag.encode("ascii") + b"\x00")


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    """The type OIDs of a prepared statement's parameters."""

    type_oids: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_count(len(self.type_oids), "parameters")
        for oid in self.type_oids:
            _check_range(oid, 0, OID_MAX, "a parameter type OID")

    def encode(self) -> bytes:
        count = len(self.type_oids)
        return _frame(b"t", struct.pack(f">H{count}I", count, *self.type_oids))


# --- COPY ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CopyResponse:
    TYPE: ClassVar[bytes]
    format: Format
    column_formats: tuple[Format, ...]

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.format not in (Format.TEXT, Format.BINARY):
            raise ValueError(f"{name} format {self.format!r} is not 0 or 1")
        _check_count(len(self.column_formats), "columns")
        for column_format in self.column_formats:
            if column_format not in (Format.TEXT, Format.BINARY):
                raise ValueError(f"{name} column format {column_format!r} is not 0 or 1")
        # The protocol: with the text (or CSV) format every column must be text.
        if self.format == Format.TEXT and any(self.column_formats):
            raise ValueError(f"{name}: a text COPY has only text columns")

    def encode(self) -> bytes:
        count = len(self.column_formats)
        body = struct.pack(f">bH{count}h", self.format, count, *self.column_formats)
        return _frame(self.TYPE, body)


@dataclass(frozen=True, slots=True)
class CopyInResponse(_CopyResponse):
    """COPY FROM STDIN starts: the client sends CopyData, then CopyDone or CopyFail."""

    TYPE: ClassVar[bytes] = b"G"


@dataclass(frozen=True, slots=True)
class CopyOutResponse(_CopyResponse):
    """COPY TO STDOUT starts: the server sends CopyData, then CopyDone."""

    TYPE: ClassVar[bytes] = b"H"


# --- errors and notices --------------------------------------------------------------------


class Severity(enum.Enum):
    ERROR = "ERROR"
    FATAL = "FATAL"
    PANIC = "PANIC"
    WARNING = "WARNING"
    NOTICE = "NOTICE"
    DEBUG = "DEBUG"
    INFO = "INFO"
    LOG = "LOG"


ERROR_SEVERITIES: Final = frozenset({Severity.ERROR, Severity.FATAL, Severity.PANIC})
NOTICE_SEVERITIES: Final = frozenset(Severity) - ERROR_SEVERITIES

_SQLSTATE: Final = re.compile(r"[0-9A-Z]{5}")

_TEXT_FIELDS: Final = (
    # (attribute, field code), in the order PostgreSQL's send_message_to_frontend uses;
    # severity (S, V), code (C) and message (M) come first and are handled apart.
    ("detail", b"D"),
    ("hint", b"H"),
    ("position", b"P"),
    ("internal_position", b"p"),
    ("internal_query", b"q"),
    ("where", b"W"),
    ("schema_name", b"s"),
    ("table_name", b"t"),
    ("column_name", b"c"),
    ("data_type_name", b"d"),
    ("constraint_name", b"n"),
    ("file", b"F"),
    ("line", b"L"),
    ("routine", b"R"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Report:
    """The fields of an ErrorResponse or a NoticeResponse.

    ``position`` and ``internal_position`` are 1-based character (not byte) offsets into
    the query string (``internal_query`` for the latter).
    """

    TYPE: ClassVar[bytes]
    SEVERITIES: ClassVar[frozenset[Severity]]

    severity: Severity
    code: str
    message: str
    detail: str | None = None
    hint: str | None = None
    position: int | None = None
    internal_position: int | None = None
    internal_query: str | None = None
    where: str | None = None
    schema_name: str | None = None
    table_name: str | None = None
    column_name: str | None = None
    data_type_name: str | None = None
    constraint_name: str | None = None
    file: str | None = None
    line: int | None = None
    routine: str | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.severity not in self.SEVERITIES:
            raise ValueError(f"{name} cannot have severity {self.severity!r}")
        if not _SQLSTATE.fullmatch(self.code):
            raise ValueError(f"{name} code {self.code!r} is not a SQLSTATE")
        if self.internal_position is not None and self.internal_query is None:
            raise ValueError(f"{name}: internal_position needs internal_query")
        for attribute in ("position", "internal_position", "line"):
            value = getattr(self, attribute)
            if value is not None and not 1 <= value <= INT32_MAX:
                raise ValueError(f"{name} {attribute} {value} must be a positive Int32")
        _cstring(self.message, f"{name} message")
        for attribute, _ in _TEXT_FIELDS:
            value = getattr(self, attribute)
            if isinstance(value, str):
                _cstring(value, f"{name} {attribute}")

    def encode(self) -> bytes:
        severity = self.severity.value.encode("ascii") + b"\x00"
        parts = [
            b"S",
            severity,
            b"V",
            severity,
            b"C",
            self.code.encode("ascii") + b"\x00",
            b"M",
            _cstring(self.message, "message"),
        ]
        for attribute, field_code in _TEXT_FIELDS:
            value = getattr(self, attribute)
            if value is not None:
                parts.append(field_code)
                parts.append(_cstring(str(value), attribute))
        parts.append(b"\x00")
        return _frame(self.TYPE, b"".join(parts))


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorResponse(_Report):
    """An error: ERROR ends the statement (and, in a transaction block, fails it); FATAL
    ends the session; the server then closes the connection."""

    TYPE: ClassVar[bytes] = b"E"
    SEVERITIES: ClassVar[frozenset[Severity]] = ERROR_SEVERITIES

    @classmethod
    def from_protocol_error(cls, exc: PgProtocolError) -> ErrorResponse:
        """The FATAL error to send before closing a connection that broke the protocol."""
        return cls(severity=Severity.FATAL, code=exc.sqlstate, message=_printable(str(exc)))


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeResponse(_Report):
    """A warning or notice: the statement goes on."""

    TYPE: ClassVar[bytes] = b"N"
    SEVERITIES: ClassVar[frozenset[Severity]] = NOTICE_SEVERITIES


def _printable(text: str) -> str:
    return text.replace("\x00", "\\x00")


BackendMessage = (
    AuthenticationOk
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
    | ParameterStatus
    | BackendKeyData
    | NegotiateProtocolVersion
    | ReadyForQuery
    | NotificationResponse
    | RowDescription
    | DataRow
    | CommandComplete
    | EmptyQueryResponse
    | ErrorResponse
    | NoticeResponse
    | ParseComplete
    | BindComplete
    | CloseComplete
    | NoData
    | ParameterDescription
    | PortalSuspended
    | CopyInResponse
    | CopyOutResponse
    | CopyData
    | CopyDone
)


def encode_all(messages: Iterable[BackendMessage]) -> bytes:
    """The messages back to back, for one write."""
    return b"".join(message.encode() for message in messages)
