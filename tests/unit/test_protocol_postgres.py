"""borealis.protocol.postgres: frontend parsing and backend encoding of the PostgreSQL protocol 3.0.

Frontend: round trips through a test-side encoder written from the protocol documentation
(PostgreSQL 15, "Message Formats"), every chunking of a stream, the startup phase
(encryption requests, cancel, parameters), refusal of each kind of malformed message, and
fuzzing (random and mutated bytes only ever give messages or ``PgProtocolError``).
Backend: byte-exact messages against bytes written by hand from the documentation, and the
optimised encoders against naive reference encoders.
"""

from __future__ import annotations

import itertools
import os
import random
import struct
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from borealis.errors import ProtocolError
from borealis.protocol.postgres import (
    ENCRYPTION_REFUSED,
    GSSENC_ACCEPTED,
    SSL_ACCEPTED,
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationResponse,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    BackendKeyData,
    BackendMessage,
    Bind,
    BindComplete,
    CancelRequest,
    Close,
    CloseComplete,
    CommandComplete,
    CopyData,
    CopyDone,
    CopyFail,
    CopyInResponse,
    CopyOutResponse,
    DataRow,
    Describe,
    EmptyQueryResponse,
    ErrorResponse,
    Execute,
    FieldDescription,
    Flush,
    Format,
    FrontendMessage,
    FrontendParser,
    FunctionCall,
    GSSENCRequest,
    NegotiateProtocolVersion,
    NoData,
    NoticeResponse,
    NotificationResponse,
    ParameterDescription,
    ParameterStatus,
    Parse,
    ParseComplete,
    PasswordMessage,
    PgProtocolError,
    Phase,
    PortalSuspended,
    Query,
    ReadyForQuery,
    RowDescription,
    SASLInitialResponse,
    SASLResponse,
    Severity,
    SSLRequest,
    StartupMessage,
    Sync,
    Target,
    Terminate,
    TransactionStatus,
    encode_all,
    encode_data_row,
    encode_row_description,
    parse_password_message,
    parse_sasl_initial_response,
    parse_sasl_response,
)

# --- a test-side frontend encoder (what a client sends) ------------------------------------
# Written from the documentation, independently of the module under test.


def cstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


def typed(type_byte: bytes, body: bytes) -> bytes:
    """Byte1 type, Int32 length counting itself (not the type byte), the body."""
    return type_byte + struct.pack("!i", len(body) + 4) + body


def untyped(body: bytes) -> bytes:
    return struct.pack("!i", len(body) + 4) + body


def startup_packet(parameters: Sequence[tuple[str, str]], version: int = 196608) -> bytes:
    body = struct.pack("!i", version)
    for name, value in parameters:
        body += cstr(name) + cstr(value)
    return untyped(body + b"\x00")


SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # 8, 1234 << 16 | 5679
GSSENC_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x30"  # 8, 1234 << 16 | 5680


def cancel_request(process_id: int, secret_key: int) -> bytes:
    return struct.pack("!iiii", 16, 80877102, process_id, secret_key)


def values_bytes(values: Sequence[bytes | None]) -> bytes:
    out = struct.pack("!H", len(values))
    for value in values:
        out += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    return out


def formats_bytes(formats: Sequence[int]) -> bytes:
    return struct.pack(f"!H{len(formats)}h", len(formats), *formats)


def encode_frontend(message: FrontendMessage) -> bytes:
    match message:
        case StartupMessage(major=major, minor=minor, parameters=parameters):
            return startup_packet(parameters, (major << 16) | minor)
        case SSLRequest():
            return SSL_REQUEST
        case GSSENCRequest():
            return GSSENC_REQUEST
        case CancelRequest(process_id=process_id, secret_key=secret_key):
            return cancel_request(process_id, secret_key)
        case Query(query=query):
            return typed(b"Q", cstr(query))
        case Parse(statement=statement, query=query, parameter_types=types):
            body = cstr(statement) + cstr(query)
            body += struct.pack(f"!H{len(types)}I", len(types), *types)
            return typed(b"P", body)
        case Bind():
            body = cstr(message.portal) + cstr(message.statement)
            body += formats_bytes(message.parameter_formats)
            body += values_bytes(message.parameters)
            body += formats_bytes(message.result_formats)
            return typed(b"B", body)
        case Describe(target=target, name=name):
            return typed(b"D", target.value.encode() + cstr(name))
        case Close(target=target, name=name):
            return typed(b"C", target.value.encode() + cstr(name))
        case Execute(portal=portal, max_rows=max_rows):
            return typed(b"E", cstr(portal) + struct.pack("!i", max_rows))
        case Sync():
            return b"S\x00\x00\x00\x04"
        case Flush():
            return b"H\x00\x00\x00\x04"
        case Terminate():
            return b"X\x00\x00\x00\x04"
        case CopyData(data=data):
            return typed(b"d", data)
        case CopyDone():
            return b"c\x00\x00\x00\x04"
        case CopyFail(message=text):
            return typed(b"f", cstr(text))
        case FunctionCall():
            body = struct.pack("!I", message.function_oid)
            body += formats_bytes(message.argument_formats)
            body += values_bytes(message.arguments)
            body += struct.pack("!h", message.result_format)
            return typed(b"F", body)
        case AuthenticationResponse(data=data):
            return typed(b"p", data)
    raise AssertionError(f"no test encoder for {message!r}")


def sasl_initial_response_body(mechanism: str, data: bytes | None) -> bytes:
    if data is None:
        return cstr(mechanism) + struct.pack("!i", -1)
    return cstr(mechanism) + struct.pack("!i", len(data)) + data


STARTUP = StartupMessage(3, 0, (("user", "alice"), ("database", "shop")))


def parser_after_startup(**limits: int) -> FrontendParser:
    parser = FrontendParser(**limits)
    assert parser.feed(encode_frontend(STARTUP)) == [STARTUP]
    assert parser.phase is Phase.MESSAGES
    return parser


def parse_all(stream: bytes, parser: FrontendParser | None = None) -> list[FrontendMessage]:
    parser = parser if parser is not None else parser_after_startup()
    messages = parser.feed(stream)
    assert parser.buffered_bytes == 0
    return messages


def feed_chunks(parser: FrontendParser, chunks: Sequence[bytes]) -> list[FrontendMessage]:
    messages: list[FrontendMessage] = []
    for chunk in chunks:
        messages.extend(parser.feed(chunk))
    return messages


def split(stream: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(points)]


# --- hypothesis strategies -----------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
values = st.one_of(st.none(), st.binary(max_size=40))
formats = st.sampled_from(Format)
oids = st.integers(0, 2**32 - 1)


@st.composite
def binds(draw: st.DrawFn) -> Bind:
    parameters = tuple(draw(st.lists(values, max_size=6)))
    count = draw(st.sampled_from(sorted({0, 1, len(parameters)})))
    parameter_formats = tuple(draw(st.lists(formats, min_size=count, max_size=count)))
    result_formats = tuple(draw(st.lists(formats, max_size=4)))
    return Bind(draw(texts), draw(texts), parameter_formats, parameters, result_formats)


@st.composite
def function_calls(draw: st.DrawFn) -> FunctionCall:
    arguments = tuple(draw(st.lists(values, max_size=4)))
    count = draw(st.sampled_from(sorted({0, 1, len(arguments)})))
    argument_formats = tuple(draw(st.lists(formats, min_size=count, max_size=count)))
    return FunctionCall(draw(oids), argument_formats, arguments, draw(formats))


typed_messages = st.one_of(
    st.builds(Query, texts),
    st.builds(Parse, texts, texts, st.lists(oids, max_size=5).map(tuple)),
    binds(),
    st.builds(Describe, st.sampled_from(Target), texts),
    st.builds(Close, st.sampled_from(Target), texts),
    st.builds(Execute, texts, st.integers(0, 2**31 - 1)),
    st.just(Sync()),
    st.just(Flush()),
    st.builds(CopyData, st.binary(max_size=60)),
    st.just(CopyDone()),
    st.builds(CopyFail, texts),
    function_calls(),
    st.builds(AuthenticationResponse, st.binary(max_size=40)),
)

startup_messages = st.builds(
    StartupMessage,
    st.just(3),
    st.integers(0, 3),
    st.lists(st.tuples(names, texts), max_size=5, unique_by=lambda pair: pair[0]).map(
        lambda pairs: (("user", "u"), *((n, v) for n, v in pairs if n != "user"))
    ),
)


# --- frontend: round trips -----------------------------------------------------------------


@given(typed_messages)
def test_typed_message_round_trip(message: FrontendMessage) -> None:
    assert parse_all(encode_frontend(message)) == [message]


@given(startup_messages)
def test_startup_message_round_trip(message: StartupMessage) -> None:
    parser = FrontendParser()
    assert parser.feed(encode_frontend(message)) == [message]
    assert parser.phase is Phase.MESSAGES


@given(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1))
def test_cancel_request_round_trip(process_id: int, secret_key: int) -> None:
    parser = FrontendParser()
    assert parser.feed(cancel_request(process_id, secret_key)) == [
        CancelRequest(process_id, secret_key)
    ]
    assert parser.phase is Phase.CLOSED


# --- frontend: chunking --------------------------------------------------------------------

# What the captured clients send (shared/reference/client-traffic): psql's simple queries,
# pgbench's extended protocol (PQexecParams: Parse, Bind, Describe portal, Execute, Sync),
# pgbench -i's COPY FROM STDIN, asyncpg's named statements with binary results.
TRAFFIC: list[FrontendMessage] = [
    AuthenticationResponse(cstr("md5" + "0" * 32)),
    Query("select 1"),
    Parse("", "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", ()),
    Bind("", "", (), (b"3192", b"12786"), ()),
    Describe(Target.PORTAL, ""),
    Execute("", 0),
    Sync(),
    Query("copy pgbench_accounts from stdin with (freeze on)"),
    CopyData(b"1\t1\t0\t\n"),
    CopyData(b"2\t1\t0\t\n"),
    CopyDone(),
    Parse("__asyncpg_stmt_2__", "select $1::int + 1, $2::text", (23, 25)),
    Describe(Target.STATEMENT, "__asyncpg_stmt_2__"),
    Flush(),
    Bind(
        "",
        "__asyncpg_stmt_2__",
        (Format.BINARY,),
        (b"\x00\x00\x00\x01", b"x", None),
        (Format.BINARY,),
    ),
    Execute("", 100),
    Close(Target.STATEMENT, "__asyncpg_stmt_2__"),
    Sync(),
    Query('SELECT n.nspname as "Schema" FROM pg_catalog.pg_namespace n -- é ✓'),
    Terminate(),
]
TRAFFIC_STREAM = encode_frontend(STARTUP) + b"".join(map(encode_frontend, TRAFFIC))


def test_traffic_whole() -> None:
    parser = FrontendParser()
    assert parser.feed(TRAFFIC_STREAM) == [STARTUP, *TRAFFIC]
    assert parser.phase is Phase.CLOSED


def test_traffic_one_byte_at_a_time() -> None:
    parser = FrontendParser()
    chunks = [TRAFFIC_STREAM[i : i + 1] for i in range(len(TRAFFIC_STREAM))]
    assert feed_chunks(parser, chunks) == [STARTUP, *TRAFFIC]


def test_traffic_every_split_point() -> None:
    for cut in range(len(TRAFFIC_STREAM) + 1):
        parser = FrontendParser()
        messages = feed_chunks(parser, split(TRAFFIC_STREAM, [cut]))
        assert messages == [STARTUP, *TRAFFIC], cut


def test_every_two_cut_chunking_of_a_short_stream() -> None:
    messages: list[FrontendMessage] = [Query("x"), Bind("", "s", (), (None, b"ab"), ()), Sync()]
    stream = encode_frontend(STARTUP) + b"".join(map(encode_frontend, messages))
    expected = FrontendParser().feed(stream)
    assert len(expected) == 4
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            parser = FrontendParser()
            assert feed_chunks(parser, split(stream, [first, second])) == expected
            assert parser.buffered_bytes == 0


@given(st.lists(typed_messages, min_size=1, max_size=8), st.data())
def test_any_chunking_equals_whole_stream(
    messages: list[FrontendMessage], data: st.DataObject
) -> None:
    stream = b"".join(map(encode_frontend, messages))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    parser = parser_after_startup()
    assert feed_chunks(parser, split(stream, cuts)) == messages
    assert parser.buffered_bytes == 0


def test_accepts_bytearray_and_memoryview_chunks() -> None:
    parser = parser_after_startup()
    stream = encode_frontend(Query("select 1")) + encode_frontend(Sync())
    assert parser.feed(bytearray(stream[:3])) == []
    assert parser.feed(memoryview(stream)[3:]) == [Query("select 1"), Sync()]
    assert parser.feed(b"") == []


def test_partial_message_waits_in_the_buffer() -> None:
    parser = parser_after_startup()
    stream = encode_frontend(Query("select 1"))
    assert parser.feed(stream[:-1]) == []
    assert parser.buffered_bytes == len(stream) - 1
    assert parser.feed(stream[-1:]) == [Query("select 1")]
    assert parser.buffered_bytes == 0


# --- frontend: the startup phase -----------------------------------------------------------


def test_startup_with_parameters() -> None:
    parameters = (
        ("user", "alice"),
        ("database", "shop"),
        ("options", "-c search_path=public -c statement_timeout=5s"),
        ("application_name", "psql"),
        ("client_encoding", "UTF8"),
    )
    parser = FrontendParser()
    [message] = parser.feed(startup_packet(parameters))
    assert isinstance(message, StartupMessage)
    assert message.parameters == parameters
    assert message.user == "alice"
    assert message.database == "shop"
    assert message.options == "-c search_path=public -c statement_timeout=5s"
    assert message.application_name == "psql"
    assert message.get("client_encoding") == "UTF8"
    assert message.get("missing") is None
    assert message.settings == (("application_name", "psql"), ("client_encoding", "UTF8"))
    assert message.protocol_version == 196608
    assert not message.needs_negotiation
    assert parser.phase is Phase.MESSAGES


def test_startup_database_defaults_to_user() -> None:
    [message] = FrontendParser().feed(startup_packet([("user", "bob")]))
    assert isinstance(message, StartupMessage)
    assert message.database == "bob"
    assert message.options is None
    assert message.application_name is None


def test_startup_with_newer_minor_version_and_protocol_options_needs_negotiation() -> None:
    # Protocol docs, "Protocol versions": a 3.x server answers a higher minor version and
    # unknown _pq_ options with NegotiateProtocolVersion rather than refusing.
    packet = startup_packet([("user", "u"), ("_pq_.compression", "on")], version=(3 << 16) | 2)
    [message] = FrontendParser().feed(packet)
    assert isinstance(message, StartupMessage)
    assert (message.major, message.minor) == (3, 2)
    assert message.protocol_options == ("_pq_.compression",)
    assert message.settings == ()
    assert message.needs_negotiation
    answer = NegotiateProtocolVersion(unrecognized_options=message.protocol_options).encode()
    assert answer == typed(b"v", struct.pack("!Ii", 196608, 1) + b"_pq_.compression\x00")


def test_ssl_request_refused_then_startup() -> None:
    parser = FrontendParser()
    assert parser.feed(SSL_REQUEST) == [SSLRequest()]
    assert parser.phase is Phase.AWAITING_ENCRYPTION_ANSWER
    assert parser.answer_encryption_request(accepted=False) == ENCRYPTION_REFUSED == b"N"
    assert parser.phase is Phase.STARTUP
    assert parser.feed(encode_frontend(STARTUP) + encode_frontend(Query("select 1"))) == [
        STARTUP,
        Query("select 1"),
    ]


def test_ssl_request_accepted_then_startup_over_tls() -> None:
    parser = FrontendParser()
    assert parser.feed(SSL_REQUEST) == [SSLRequest()]
    assert parser.answer_encryption_request(accepted=True) == SSL_ACCEPTED == b"S"
    # The adapter now runs TLS and feeds the decrypted bytes.
    assert parser.feed(encode_frontend(STARTUP)) == [STARTUP]


def test_ssl_refused_then_gssenc_refused_then_startup() -> None:
    parser = FrontendParser()
    assert parser.feed(SSL_REQUEST) == [SSLRequest()]
    assert parser.answer_encryption_request(accepted=False) == b"N"
    assert parser.feed(GSSENC_REQUEST) == [GSSENCRequest()]
    assert parser.answer_encryption_request(accepted=False) == b"N"
    assert parser.feed(encode_frontend(STARTUP)) == [STARTUP]


def test_gssenc_refused_then_ssl_accepted() -> None:
    parser = FrontendParser()
    assert parser.feed(GSSENC_REQUEST) == [GSSENCRequest()]
    assert parser.answer_encryption_request(accepted=False) == b"N"
    assert parser.feed(SSL_REQUEST) == [SSLRequest()]
    assert parser.answer_encryption_request(accepted=True) == b"S"
    assert parser.feed(encode_frontend(STARTUP)) == [STARTUP]


def test_gssenc_accepted_answers_g() -> None:
    parser = FrontendParser()
    assert parser.feed(GSSENC_REQUEST) == [GSSENCRequest()]
    assert parser.answer_encryption_request(accepted=True) == GSSENC_ACCEPTED == b"G"
    with pytest.raises(PgProtocolError, match=r"1234\.5679") as info:
        parser.feed(SSL_REQUEST)  # TLS inside GSSAPI encryption
    assert info.value.sqlstate == "0A000"


@pytest.mark.parametrize("accepted", [False, True])
def test_second_ssl_request_is_an_unsupported_protocol(accepted: bool) -> None:
    # postmaster.c ProcessStartupPacket: a second SSLRequest is not recognised as one and
    # fails the version check: "unsupported frontend protocol 1234.5679".
    parser = FrontendParser()
    parser.feed(SSL_REQUEST)
    parser.answer_encryption_request(accepted=accepted)
    with pytest.raises(PgProtocolError, match=r"unsupported frontend protocol 1234\.5679") as info:
        parser.feed(SSL_REQUEST)
    assert info.value.sqlstate == "0A000"


def test_gssenc_after_accepted_ssl_is_refused() -> None:
    parser = FrontendParser()
    parser.feed(SSL_REQUEST)
    parser.answer_encryption_request(accepted=True)
    with pytest.raises(PgProtocolError, match=r"1234\.5680"):
        parser.feed(GSSENC_REQUEST)


@pytest.mark.parametrize("request_bytes", [SSL_REQUEST, GSSENC_REQUEST])
def test_bytes_pipelined_after_an_encryption_request_are_refused(request_bytes: bytes) -> None:
    # CVE-2021-23214: bytes sent before the answer must not be taken as if they came over
    # the encrypted channel.
    with pytest.raises(PgProtocolError, match="unencrypted"):
        FrontendParser().feed(request_bytes + encode_frontend(STARTUP))
    parser = FrontendParser()
    parser.feed(request_bytes)
    with pytest.raises(PgProtocolError, match="unencrypted"):
        parser.feed(b"\x00")


def test_answer_without_a_request_is_a_caller_bug() -> None:
    with pytest.raises(AssertionError):
        FrontendParser().answer_encryption_request(accepted=False)


def test_cancel_request_ends_the_stream() -> None:
    parser = FrontendParser()
    assert parser.feed(cancel_request(4242, -17)) == [CancelRequest(4242, -17)]
    assert parser.phase is Phase.CLOSED
    with pytest.raises(PgProtocolError, match="after the end of the session"):
        parser.feed(b"\x00")


def test_cancel_request_after_ssl() -> None:
    parser = FrontendParser()
    parser.feed(SSL_REQUEST)
    parser.answer_encryption_request(accepted=True)
    assert parser.feed(cancel_request(1, 2)) == [CancelRequest(1, 2)]


def test_terminate_ends_the_stream() -> None:
    parser = parser_after_startup()
    with pytest.raises(PgProtocolError, match="after the end of the session"):
        parser.feed(encode_frontend(Terminate()) + encode_frontend(Sync()))


# --- frontend: the 'p' message -------------------------------------------------------------


def test_password_message() -> None:
    [raw] = parse_all(typed(b"p", cstr("s3cret ✓")))
    assert isinstance(raw, AuthenticationResponse)
    assert parse_password_message(raw) == PasswordMessage("s3cret ✓")


def test_sasl_initial_response_with_and_without_data() -> None:
    first = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"
    [raw] = parse_all(typed(b"p", sasl_initial_response_body("SCRAM-SHA-256", first)))
    assert isinstance(raw, AuthenticationResponse)
    assert parse_sasl_initial_response(raw) == SASLInitialResponse("SCRAM-SHA-256", first)
    raw = AuthenticationResponse(sasl_initial_response_body("SCRAM-SHA-256", None))
    assert parse_sasl_initial_response(raw) == SASLInitialResponse("SCRAM-SHA-256", None)
    raw = AuthenticationResponse(sasl_initial_response_body("SCRAM-SHA-256", b""))
    assert parse_sasl_initial_response(raw) == SASLInitialResponse("SCRAM-SHA-256", b"")


def test_sasl_response() -> None:
    data = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF,p=dHzbZapWIk4jUhN+"
    [raw] = parse_all(typed(b"p", data))
    assert isinstance(raw, AuthenticationResponse)
    assert parse_sasl_response(raw) == SASLResponse(data)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"password", "no terminating NUL"),
        (b"pass\x00word\x00", "left after the last field"),
        (b"\xff\xfe\x00", "not valid UTF-8"),
    ],
)
def test_bad_password_message(body: bytes, match: str) -> None:
    with pytest.raises(PgProtocolError, match=match):
        parse_password_message(AuthenticationResponse(body))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (cstr("SCRAM-SHA-256") + struct.pack("!i", -2), "only -1"),
        (cstr("SCRAM-SHA-256") + struct.pack("!i", 10) + b"short", "needs 10 bytes"),
        (cstr("SCRAM-SHA-256") + struct.pack("!i", 1) + b"ab", "left after the last field"),
        (cstr("SCRAM-SHA-256") + b"\x00\x00", "needs 4 bytes"),
        (b"SCRAM", "no terminating NUL"),
        (cstr("") + struct.pack("!i", -1), "empty mechanism"),
    ],
)
def test_bad_sasl_initial_response(body: bytes, match: str) -> None:
    with pytest.raises(PgProtocolError, match=match):
        parse_sasl_initial_response(AuthenticationResponse(body))


def test_authentication_response_has_its_own_bound() -> None:
    # PG_MAX_AUTH_TOKEN_LENGTH: 65,535, checked from the header alone.
    with pytest.raises(PgProtocolError, match="above 65535"):
        parser_after_startup().feed(b"p" + struct.pack("!I", 65_536))


# --- frontend: malformed messages ----------------------------------------------------------


def body_of(message: FrontendMessage) -> bytes:
    return encode_frontend(message)[5:]


MALFORMED_TYPED: list[tuple[str, bytes, str, str]] = [
    # (id, bytes after a valid startup, what the error says, SQLSTATE)
    ("unknown type", b"?\x00\x00\x00\x04", "invalid frontend message type 63", "08P01"),
    ("backend type", b"Z\x00\x00\x00\x05I", "invalid frontend message type 90", "08P01"),
    ("nul type", b"\x00", "invalid frontend message type 0", "08P01"),
    ("length below 4", b"S\x00\x00\x00\x03", "invalid length 3", "08P01"),
    ("length 0", b"Q\x00\x00\x00\x00", "invalid length 0", "08P01"),
    ("negative length", b"Q\xff\xff\xff\xff", "invalid length 4294967295", "08P01"),
    ("small message above 10000", b"D" + struct.pack("!I", 10_001), "above 10000", "08P01"),
    ("unterminated query", typed(b"Q", b"select 1"), "no terminating NUL", "08P01"),
    ("query trailing bytes", typed(b"Q", b"select 1\x00x"), "1 bytes left", "08P01"),
    ("query bad utf-8", typed(b"Q", b"select '\xc3\x28'\x00"), "not valid UTF-8", "22021"),
    ("query surrogate", typed(b"Q", b"select '\xed\xa0\x80'\x00"), "not valid UTF-8", "22021"),
    ("sync with a body", typed(b"S", b"\x00"), "Sync message: 1 bytes", "08P01"),
    ("flush with a body", typed(b"H", b"ab"), "Flush message: 2 bytes", "08P01"),
    ("terminate with a body", typed(b"X", b"x"), "Terminate message", "08P01"),
    ("copydone with a body", typed(b"c", b"x"), "CopyDone message", "08P01"),
    ("copyfail unterminated", typed(b"f", b"oops"), "no terminating NUL", "08P01"),
    ("describe bad target", typed(b"D", b"Xname\x00"), "invalid target kind b'X'", "08P01"),
    ("describe no target", typed(b"D", b""), "the target kind needs 1 bytes", "08P01"),
    ("close bad target", typed(b"C", b"s\x00"), "invalid target kind b's'", "08P01"),
    ("close trailing", typed(b"C", b"Sname\x00\x00"), "1 bytes left", "08P01"),
    ("execute short", typed(b"E", b"\x00\x00\x00"), "the row count needs 4 bytes", "08P01"),
    (
        "execute negative rows",
        typed(b"E", b"\x00" + struct.pack("!i", -1)),
        "negative row count -1",
        "08P01",
    ),
    (
        "parse count past end",
        typed(b"P", b"\x00select 1\x00" + struct.pack("!H", 3) + struct.pack("!I", 23)),
        "parameter type OIDs needs 12 bytes",
        "08P01",
    ),
    (
        "parse count 65535 without data",
        typed(b"P", b"\x00q\x00\xff\xff"),
        "needs 262140 bytes",
        "08P01",
    ),
    ("parse missing count", typed(b"P", b"\x00q\x00"), "parameter type count", "08P01"),
    (
        "bind negative value length",
        typed(b"B", b"\x00\x00" + formats_bytes([]) + b"\x00\x01\xff\xff\xff\xfe"),
        "parameter 1 has length -2",
        "08P01",
    ),
    (
        "bind value past end",
        typed(b"B", b"\x00\x00" + formats_bytes([]) + b"\x00\x01\x00\x00\x00\x09abc"),
        "parameter 1 needs 9 bytes",
        "08P01",
    ),
    (
        "bind format count mismatch",
        typed(
            b"B",
            b"\x00\x00" + formats_bytes([0, 1]) + values_bytes([b"a", b"b", b"c"]) + b"\x00\x00",
        ),
        "2 parameter formats but 3 parameters",
        "08P01",
    ),
    (
        "bind unknown parameter format",
        typed(b"B", b"\x00\x00" + formats_bytes([2]) + values_bytes([b"a"]) + b"\x00\x00"),
        "unsupported parameter format code 2",
        "22023",
    ),
    (
        "bind unknown result format",
        typed(b"B", b"\x00\x00" + formats_bytes([]) + values_bytes([]) + formats_bytes([-1])),
        "unsupported result format code -1",
        "22023",
    ),
    (
        "bind missing result count",
        typed(b"B", b"\x00\x00" + formats_bytes([]) + values_bytes([])),
        "the result format count needs 2 bytes",
        "08P01",
    ),
    (
        "bind trailing",
        typed(b"B", body_of(Bind("", "", (), (), ())) + b"\x00"),
        "1 bytes left",
        "08P01",
    ),
    (
        "bind bad utf-8 portal",
        typed(b"B", b"\x80\x00\x00" + formats_bytes([]) + values_bytes([]) + b"\x00\x00"),
        "portal name is not valid UTF-8",
        "22021",
    ),
    (
        "function call missing result format",
        typed(b"F", struct.pack("!I", 1) + formats_bytes([]) + values_bytes([])),
        "the result format code needs 2 bytes",
        "08P01",
    ),
]


@pytest.mark.parametrize(
    ("stream", "match", "sqlstate"),
    [case[1:] for case in MALFORMED_TYPED],
    ids=[case[0] for case in MALFORMED_TYPED],
)
def test_malformed_typed_message(stream: bytes, match: str, sqlstate: str) -> None:
    parser = parser_after_startup()
    with pytest.raises(PgProtocolError, match=match) as info:
        parser.feed(stream)
    assert info.value.sqlstate == sqlstate
    assert isinstance(info.value, ProtocolError)
    assert parser.phase is Phase.FAILED
    # Dead afterwards, even for valid bytes, with the same SQLSTATE.
    with pytest.raises(PgProtocolError, match="already broke the protocol") as again:
        parser.feed(encode_frontend(Sync()))
    assert again.value.sqlstate == sqlstate
    with pytest.raises(PgProtocolError):
        parser.feed(b"")


MALFORMED_STARTUP: list[tuple[str, bytes, str, str]] = [
    ("length below 8", b"\x00\x00\x00\x07", "invalid length of startup packet: 7", "08P01"),
    ("length 0", b"\x00\x00\x00\x00", "invalid length of startup packet: 0", "08P01"),
    ("length above max", struct.pack("!I", 10_005), "startup packet: 10005", "08P01"),
    ("huge length", b"\xff\xff\xff\xff", "startup packet: 4294967295", "08P01"),
    (
        "protocol 2.0",
        startup_packet([("user", "u")], version=2 << 16),
        "unsupported frontend protocol 2.0: server supports 3.0 to 3.0",
        "0A000",
    ),
    (
        "protocol 4.0",
        startup_packet([("user", "u")], version=4 << 16),
        "unsupported frontend protocol 4.0",
        "0A000",
    ),
    (
        "protocol 0.0",
        untyped(b"\x00\x00\x00\x00\x00"),
        "unsupported frontend protocol 0.0",
        "0A000",
    ),
    (
        "no user",
        startup_packet([("database", "d")]),
        "no PostgreSQL user name specified in startup packet",
        "28000",
    ),
    ("empty user", startup_packet([("user", "")]), "no PostgreSQL user name", "28000"),
    (
        "no terminator",
        untyped(struct.pack("!i", 196608) + cstr("user") + cstr("u")),
        "expected terminator as last byte",
        "08P01",
    ),
    (
        "name without value",
        untyped(struct.pack("!i", 196608) + cstr("user") + b"u"),
        "no terminating NUL",
        "08P01",
    ),
    (
        "bytes after terminator",
        untyped(struct.pack("!i", 196608) + cstr("user") + cstr("u") + b"\x00junk"),
        "expected terminator as last byte",
        "08P01",
    ),
    (
        "duplicate parameter",
        startup_packet([("user", "u"), ("user", "v")]),
        "parameter 'user' appears twice",
        "08P01",
    ),
    (
        "bad utf-8 value",
        untyped(struct.pack("!i", 196608) + cstr("user") + b"\xff\x00\x00"),
        "not valid UTF-8",
        "22021",
    ),
    (
        "cancel too short",
        untyped(struct.pack("!ii", 80877102, 1)),
        "invalid length of cancel request: 12",
        "08P01",
    ),
    (
        "cancel too long",
        untyped(struct.pack("!iiii", 80877102, 1, 2, 3)),
        "invalid length of cancel request: 20",
        "08P01",
    ),
    ("ssl too long", untyped(struct.pack("!ii", 80877103, 0)), "length of SSLRequest", "08P01"),
    (
        "gssenc too long",
        untyped(struct.pack("!ii", 80877104, 0)),
        "length of GSSENCRequest",
        "08P01",
    ),
]


@pytest.mark.parametrize(
    ("stream", "match", "sqlstate"),
    [case[1:] for case in MALFORMED_STARTUP],
    ids=[case[0] for case in MALFORMED_STARTUP],
)
def test_malformed_startup_packet(stream: bytes, match: str, sqlstate: str) -> None:
    parser = FrontendParser()
    with pytest.raises(PgProtocolError, match=match) as info:
        parser.feed(stream)
    assert info.value.sqlstate == sqlstate
    assert parser.phase is Phase.FAILED
    with pytest.raises(PgProtocolError):
        parser.feed(encode_frontend(STARTUP))


def test_length_is_checked_before_the_body_arrives() -> None:
    parser = parser_after_startup(message_bytes_max=1_000)
    with pytest.raises(PgProtocolError, match=r"Query message: invalid length 1001 \(above 1000\)"):
        parser.feed(b"Q" + struct.pack("!I", 1_001))
    parser = parser_after_startup()
    with pytest.raises(PgProtocolError, match="above 1073741822"):
        parser.feed(b"d" + struct.pack("!I", 2**30 - 1))


def test_unknown_type_is_refused_from_its_first_byte() -> None:
    with pytest.raises(PgProtocolError, match="invalid frontend message type"):
        parser_after_startup().feed(b"!")


def test_message_at_the_configured_bound_is_accepted() -> None:
    parser = parser_after_startup(message_bytes_max=100)
    data = b"x" * 96
    assert parser.feed(typed(b"d", data)) == [CopyData(data)]
    with pytest.raises(PgProtocolError, match="above 100"):
        parser.feed(typed(b"d", data + b"x"))


def test_startup_packet_bound_is_configurable() -> None:
    packet = startup_packet([("user", "u"), ("application_name", "a" * 50)])
    assert FrontendParser(startup_bytes_max=len(packet)).feed(packet)[0] == StartupMessage(
        3, 0, (("user", "u"), ("application_name", "a" * 50))
    )
    with pytest.raises(PgProtocolError, match="invalid length of startup packet"):
        FrontendParser(startup_bytes_max=len(packet) - 1).feed(packet[:4])


def test_the_largest_startup_packet_postgres_accepts() -> None:
    # MAX_STARTUP_PACKET_LENGTH: 10,000 bytes after the length word.
    filler = "a" * (10_000 - 4 - len(cstr("user") + cstr("u") + cstr("x")) - 1 - 1)
    packet = startup_packet([("user", "u"), ("x", filler)])
    assert len(packet) == 10_004
    assert FrontendParser().feed(packet)[0] == StartupMessage(3, 0, (("user", "u"), ("x", filler)))


def test_bind_with_65535_parameters() -> None:
    # Int16 counts are unsigned on the wire (pq_getmsgint): libpq 14+ sends up to 65,535.
    message = Bind("", "s", (Format.TEXT,), (None,) * 65_535, ())
    assert parse_all(encode_frontend(message)) == [message]
    assert message.parameter_format(65_534) is Format.TEXT


def test_parse_with_65535_parameter_types() -> None:
    message = Parse("s", "q", (23,) * 65_535)
    assert parse_all(encode_frontend(message)) == [message]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Parse("s", "q", (0,) * 65_536),
        lambda: Bind("", "", (), (None,) * 65_536, ()),
        lambda: Bind("", "", (Format.TEXT,) * 65_536, (None,) * 65_536, ()),
        lambda: Bind("", "", (), (), (Format.TEXT,) * 65_536),
        lambda: FunctionCall(1, (), (None,) * 65_536, Format.TEXT),
    ],
    ids=["parse", "bind values", "bind formats", "bind results", "function call"],
)
def test_more_than_65535_parameters_are_refused(build: Callable[[], object]) -> None:
    with pytest.raises(PgProtocolError, match="more than the protocol's 65535"):
        build()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Parse("", "q", (-1,)), "OID -1 out of range"),
        (lambda: Parse("", "q", (2**32,)), "out of range"),
        (lambda: Bind("", "", (Format.TEXT,) * 2, (b"a",), ()), "2 parameter formats but 1"),
        (lambda: Bind("", "", (2,), (b"a",), ()), "format code 2"),  # type: ignore[arg-type]
        (lambda: Describe("S", ""), "invalid target"),  # type: ignore[arg-type]
        (lambda: Close("P", ""), "invalid target"),  # type: ignore[arg-type]
        (lambda: Execute("", -5), "negative row count"),
        (lambda: CancelRequest(2**31, 0), "not an Int32"),
        (lambda: StartupMessage(3, 0, ()), "no PostgreSQL user name"),
        (lambda: StartupMessage(3, 0, (("user", "a\x00b"),)), "NUL"),
        (lambda: StartupMessage(3, 0, (("", "x"), ("user", "u"))), "empty name"),
        (lambda: StartupMessage(2, 0, (("user", "u"),)), "unsupported frontend protocol 2.0"),
        (lambda: FunctionCall(-1, (), (), Format.TEXT), "out of range"),
        (lambda: PasswordMessage("a\x00"), "NUL"),
    ],
)
def test_frontend_messages_validate_on_construction(
    build: Callable[[], object], match: str
) -> None:
    with pytest.raises(PgProtocolError, match=match):
        build()


def test_bind_format_resolution() -> None:
    none = Bind("", "", (), (b"1", b"2"), ())
    assert [none.parameter_format(i) for i in range(2)] == [Format.TEXT, Format.TEXT]
    assert none.result_format(5) is Format.TEXT
    one = Bind("", "", (Format.BINARY,), (b"1", b"2"), (Format.BINARY,))
    assert [one.parameter_format(i) for i in range(2)] == [Format.BINARY, Format.BINARY]
    assert one.result_format(3) is Format.BINARY
    each = Bind("", "", (Format.TEXT, Format.BINARY), (b"1", b"2"), (Format.BINARY, Format.TEXT))
    assert [each.parameter_format(i) for i in range(2)] == [Format.TEXT, Format.BINARY]
    assert [each.result_format(i) for i in range(2)] == [Format.BINARY, Format.TEXT]


def test_function_call_is_decoded_for_a_proper_refusal() -> None:
    message = FunctionCall(764, (Format.BINARY,), (b"\x00\x00\x00\x01", None), Format.BINARY)
    assert parse_all(encode_frontend(message)) == [message]


# --- frontend: fuzzing ---------------------------------------------------------------------


def assert_only_protocol_errors(parser: FrontendParser, chunks: Sequence[bytes]) -> None:
    """Feeding may yield messages or raise PgProtocolError, nothing else, and is bounded:
    each message takes at least 5 bytes, and nothing is buffered beyond one message."""
    fed = 0
    produced = 0
    for chunk in chunks:
        fed += len(chunk)
        try:
            produced += len(parser.feed(chunk))
        except PgProtocolError:
            assert parser.phase is Phase.FAILED
            assert parser.buffered_bytes == 0
            with pytest.raises(PgProtocolError):
                parser.feed(b"S\x00\x00\x00\x04")
            return
        assert produced <= fed // 5 + 1
        assert parser.buffered_bytes <= max(parser.message_bytes_max, parser.startup_bytes_max)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.booleans(), st.data())
def test_fuzz_random_bytes(data: bytes, after_startup: bool, draw: st.DataObject) -> None:
    parser = parser_after_startup() if after_startup else FrontendParser()
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=6))
    assert_only_protocol_errors(parser, split(data, cuts))


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    messages = draw(st.lists(typed_messages, min_size=1, max_size=6))
    stream = bytearray(encode_frontend(STARTUP) + b"".join(map(encode_frontend, messages)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not stream:
            break
        at = draw(st.integers(0, len(stream) - 1))
        if kind == "flip":
            stream[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            stream[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, ord("p"), ord("B")]))
        elif kind == "insert":
            stream[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del stream[at : at + draw(st.integers(1, 8))]
        else:
            del stream[at:]
    return bytes(stream)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_streams(), st.data())
def test_fuzz_mutated_streams(stream: bytes, draw: st.DataObject) -> None:
    cuts = draw.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    assert_only_protocol_errors(FrontendParser(), split(stream, cuts))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_streams(), st.data())
def test_chunking_never_changes_the_outcome(stream: bytes, draw: st.DataObject) -> None:
    """Reference model: the whole stream at once. Any chunking gives the same messages, or
    fails with the same SQLSTATE."""
    whole = FrontendParser()
    try:
        expected: list[FrontendMessage] | None = whole.feed(stream)
        failure = None
    except PgProtocolError as exc:
        expected, failure = None, exc.sqlstate
    cuts = draw.draw(st.lists(st.integers(0, len(stream)), min_size=1, max_size=8))
    chunked = FrontendParser()
    got: list[FrontendMessage] = []
    try:
        for chunk in split(stream, cuts):
            got.extend(chunked.feed(chunk))
    except PgProtocolError as exc:
        assert exc.sqlstate == failure
        return
    assert failure is None
    assert got == expected
    assert chunked.buffered_bytes == whole.buffered_bytes


@pytest.mark.timeout(120)
def test_fuzz_seeded_mutations() -> None:
    """Many cheap mutations of the captured-traffic stream; a failure prints its seed, and
    BOREALIS_PGWIRE_FUZZ_SEED=<seed> replays it."""
    seed = int(os.environ.get("BOREALIS_PGWIRE_FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    for iteration in range(3_000):
        stream = bytearray(TRAFFIC_STREAM)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(stream))
            stream[at] = rng.randrange(256)
        chunks = split(
            bytes(stream), [rng.randrange(len(stream)) for _ in range(rng.randint(0, 5))]
        )
        parser = FrontendParser()
        try:
            assert_only_protocol_errors(parser, chunks)
        except BaseException:
            print(f"BOREALIS_PGWIRE_FUZZ_SEED={seed} (iteration {iteration})")
            raise


# --- backend: byte-exact against the protocol documentation --------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (AuthenticationOk(), b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
        (AuthenticationCleartextPassword(), b"R\x00\x00\x00\x08\x00\x00\x00\x03"),
        (
            AuthenticationMD5Password(b"\x01\x02\x03\x04"),
            b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04",
        ),
        (
            AuthenticationSASL(("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
            b"R\x00\x00\x00\x2a\x00\x00\x00\x0aSCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00",
        ),
        (
            AuthenticationSASLContinue(b"r=abc,s=xyz,i=4096"),
            b"R\x00\x00\x00\x1a\x00\x00\x00\x0br=abc,s=xyz,i=4096",
        ),
        (AuthenticationSASLFinal(b"v=sig"), b"R\x00\x00\x00\x0d\x00\x00\x00\x0cv=sig"),
        (
            ParameterStatus("client_encoding", "UTF8"),
            b"S\x00\x00\x00\x19client_encoding\x00UTF8\x00",
        ),
        (BackendKeyData(4242, -2), b"K\x00\x00\x00\x0c\x00\x00\x10\x92\xff\xff\xff\xfe"),
        (ReadyForQuery(TransactionStatus.IDLE), b"Z\x00\x00\x00\x05I"),
        (ReadyForQuery(TransactionStatus.IN_TRANSACTION), b"Z\x00\x00\x00\x05T"),
        (ReadyForQuery(TransactionStatus.FAILED), b"Z\x00\x00\x00\x05E"),
        (CommandComplete("SELECT 1"), b"C\x00\x00\x00\x0dSELECT 1\x00"),
        (CommandComplete("INSERT 0 1"), b"C\x00\x00\x00\x0fINSERT 0 1\x00"),
        (CommandComplete("CREATE TABLE"), b"C\x00\x00\x00\x11CREATE TABLE\x00"),
        (EmptyQueryResponse(), b"I\x00\x00\x00\x04"),
        (ParseComplete(), b"1\x00\x00\x00\x04"),
        (BindComplete(), b"2\x00\x00\x00\x04"),
        (CloseComplete(), b"3\x00\x00\x00\x04"),
        (NoData(), b"n\x00\x00\x00\x04"),
        (PortalSuspended(), b"s\x00\x00\x00\x04"),
        (CopyDone(), b"c\x00\x00\x00\x04"),
        (CopyData(b"1\t2\n"), b"d\x00\x00\x00\x081\t2\n"),
        (
            ParameterDescription((23, 25)),
            b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19",
        ),
        (ParameterDescription(()), b"t\x00\x00\x00\x06\x00\x00"),
        (
            DataRow((b"1", None, b"")),
            b"D\x00\x00\x00\x13\x00\x03\x00\x00\x00\x011\xff\xff\xff\xff\x00\x00\x00\x00",
        ),
        (DataRow(()), b"D\x00\x00\x00\x06\x00\x00"),
        (
            RowDescription(
                (
                    FieldDescription(name="?column?", type_oid=23, type_size=4),
                    FieldDescription(
                        name="aid",
                        table_oid=16384,
                        column_attnum=1,
                        type_oid=23,
                        type_size=4,
                        format=Format.BINARY,
                    ),
                )
            ),
            b"T\x00\x00\x00\x37\x00\x02"
            b"?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00"
            b"aid\x00\x00\x00\x40\x00\x00\x01\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x01",
        ),
        (
            CopyInResponse(Format.TEXT, (Format.TEXT,) * 3),
            b"G\x00\x00\x00\x0d\x00\x00\x03\x00\x00\x00\x00\x00\x00",
        ),
        (
            CopyOutResponse(Format.BINARY, (Format.BINARY, Format.TEXT)),
            b"H\x00\x00\x00\x0b\x01\x00\x02\x00\x01\x00\x00",
        ),
        (NegotiateProtocolVersion(), b"v\x00\x00\x00\x0c\x00\x03\x00\x00\x00\x00\x00\x00"),
        (NotificationResponse(7, "jobs", "42"), b"A\x00\x00\x00\x10\x00\x00\x00\x07jobs\x0042\x00"),
        (
            ErrorResponse(
                severity=Severity.ERROR,
                code="42P01",
                message='relation "t" does not exist',
                position=15,
            ),
            b"E\x00\x00\x00\x3b"
            b'SERROR\x00VERROR\x00C42P01\x00Mrelation "t" does not exist\x00P15\x00\x00',
        ),
        (
            NoticeResponse(severity=Severity.WARNING, code="01000", message="careful", hint="look"),
            b"N\x00\x00\x00\x2dSWARNING\x00VWARNING\x00C01000\x00Mcareful\x00Hlook\x00\x00",
        ),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, bytes) else "",
)
def test_backend_message_bytes(message: BackendMessage, expected: bytes) -> None:
    assert message.encode() == expected
    # The length word counts itself and the body, never the type byte.
    assert struct.unpack_from("!I", expected, 1)[0] == len(expected) - 1


def test_error_response_field_order_and_codes() -> None:
    error = ErrorResponse(
        severity=Severity.FATAL,
        code="23505",
        message="duplicate key",
        detail="Key (id)=(1) already exists.",
        hint="h",
        position=3,
        internal_position=2,
        internal_query="iq",
        where="w",
        schema_name="public",
        table_name="t",
        column_name="c",
        data_type_name="int4",
        constraint_name="t_pkey",
        file="nbtinsert.c",
        line=664,
        routine="_bt_check_unique",
    )
    fields = decode_fields(error.encode())
    assert [code for code, _ in fields] == list("SVCMDHPpqWstcdnFLR")
    assert dict(fields) == {
        "S": "FATAL",
        "V": "FATAL",
        "C": "23505",
        "M": "duplicate key",
        "D": "Key (id)=(1) already exists.",
        "H": "h",
        "P": "3",
        "p": "2",
        "q": "iq",
        "W": "w",
        "s": "public",
        "t": "t",
        "c": "c",
        "d": "int4",
        "n": "t_pkey",
        "F": "nbtinsert.c",
        "L": "664",
        "R": "_bt_check_unique",
    }


def test_error_response_from_a_protocol_error() -> None:
    try:
        FrontendParser().feed(startup_packet([("user", "u")], version=2 << 16))
    except PgProtocolError as exc:
        error = ErrorResponse.from_protocol_error(exc)
    assert dict(decode_fields(error.encode())) == {
        "S": "FATAL",
        "V": "FATAL",
        "C": "0A000",
        "M": "unsupported frontend protocol 2.0: server supports 3.0 to 3.0",
    }


def test_encode_all_concatenates() -> None:
    messages: list[BackendMessage] = [
        ParseComplete(),
        BindComplete(),
        ReadyForQuery(TransactionStatus.IDLE),
    ]
    assert encode_all(messages) == b"1\x00\x00\x00\x042\x00\x00\x00\x04Z\x00\x00\x00\x05I"


@pytest.mark.parametrize(
    "build",
    [
        lambda: AuthenticationMD5Password(b"abc"),
        lambda: AuthenticationSASL(()),
        lambda: AuthenticationSASL(("",)),
        lambda: ParameterStatus("a\x00", "b"),
        lambda: ParameterStatus("", "b"),
        lambda: BackendKeyData(2**31, 0),
        lambda: ReadyForQuery("I"),  # type: ignore[arg-type]
        lambda: FieldDescription(name="a", type_oid=-1),
        lambda: FieldDescription(name="a", type_oid=23, type_size=40_000),
        lambda: FieldDescription(name="a\x00", type_oid=23),
        lambda: RowDescription(("a",)),  # type: ignore[arg-type]
        lambda: DataRow(("text",)),  # type: ignore[arg-type]
        lambda: DataRow((None,) * 65_536),
        lambda: CommandComplete("select 1"),
        lambda: CommandComplete("SELECT 1\x00"),
        lambda: ParameterDescription((2**32,)),
        lambda: CopyInResponse(Format.TEXT, (Format.BINARY,)),
        lambda: ErrorResponse(severity=Severity.NOTICE, code="00000", message="m"),
        lambda: NoticeResponse(severity=Severity.ERROR, code="00000", message="m"),
        lambda: ErrorResponse(severity=Severity.ERROR, code="4200", message="m"),
        lambda: ErrorResponse(severity=Severity.ERROR, code="42000", message="a\x00b"),
        lambda: ErrorResponse(severity=Severity.ERROR, code="42000", message="m", position=0),
        lambda: ErrorResponse(
            severity=Severity.ERROR, code="42000", message="m", internal_position=1
        ),
        lambda: NegotiateProtocolVersion(unrecognized_options=("a\x00",)),
    ],
)
def test_backend_messages_validate_on_construction(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


def test_encode_data_row_refuses_too_many_columns() -> None:
    with pytest.raises(ValueError, match="at most 65535"):
        encode_data_row([None] * 65_536)


# --- backend: optimised encoders against naive references ----------------------------------


def naive_data_row(values: Sequence[bytes | None]) -> bytes:
    body = struct.pack("!h", len(values))
    for value in values:
        body += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    return b"D" + struct.pack("!i", len(body) + 4) + body


def naive_row_description(fields: Sequence[FieldDescription]) -> bytes:
    body = struct.pack("!h", len(fields))
    for f in fields:
        body += cstr(f.name)
        body += struct.pack("!I", f.table_oid) + struct.pack("!h", f.column_attnum)
        body += struct.pack("!I", f.type_oid) + struct.pack("!h", f.type_size)
        body += struct.pack("!i", f.type_modifier) + struct.pack("!h", f.format)
    return b"T" + struct.pack("!i", len(body) + 4) + body


def decode_fields(message: bytes) -> list[tuple[str, str]]:
    assert message[:1] in (b"E", b"N")
    body = message[5:]
    fields = []
    offset = 0
    while body[offset] != 0:
        end = body.index(b"\x00", offset + 1)
        fields.append((chr(body[offset]), body[offset + 1 : end].decode()))
        offset = end + 1
    assert offset == len(body) - 1
    return fields


@given(st.lists(values, max_size=30))
def test_encode_data_row_matches_naive(row: list[bytes | None]) -> None:
    assert encode_data_row(row) == naive_data_row(row) == DataRow(tuple(row)).encode()
    assert encode_data_row(tuple(row)) == naive_data_row(row)


field_descriptions = st.builds(
    FieldDescription,
    name=texts,
    type_oid=oids,
    table_oid=oids,
    column_attnum=st.integers(-(2**15), 2**15 - 1),
    type_size=st.integers(-(2**15), 2**15 - 1),
    type_modifier=st.integers(-(2**31), 2**31 - 1),
    format=formats,
)


@given(st.lists(field_descriptions, max_size=10))
def test_encode_row_description_matches_naive(fields: list[FieldDescription]) -> None:
    assert encode_row_description(fields) == naive_row_description(fields)
    assert RowDescription(tuple(fields)).encode() == naive_row_description(fields)


@given(
    st.sampled_from(sorted(Severity, key=lambda s: s.value)),
    st.from_regex(r"[0-9A-Z]{5}", fullmatch=True),
    texts,
    st.one_of(st.none(), texts),
    st.one_of(st.none(), st.integers(1, 2**31 - 1)),
)
def test_error_and_notice_fields_round_trip(
    severity: Severity, code: str, message: str, detail: str | None, position: int | None
) -> None:
    cls = (
        ErrorResponse
        if severity in (Severity.ERROR, Severity.FATAL, Severity.PANIC)
        else NoticeResponse
    )
    report = cls(severity=severity, code=code, message=message, detail=detail, position=position)
    expected = [("S", severity.value), ("V", severity.value), ("C", code), ("M", message)]
    if detail is not None:
        expected.append(("D", detail))
    if position is not None:
        expected.append(("P", str(position)))
    assert decode_fields(report.encode()) == expected
