"""A PostgreSQL protocol server for an instance: the first slice (issue 4 builds it out).

What works: the startup phase (an SSL or GSSAPI request is refused with 'N', so clients
that prefer encryption go on in the clear; a cancel request closes the connection), the
parameters clients expect at startup, and the simple query protocol: each Query runs on the
connection's engine session and answers RowDescription, DataRow, CommandComplete or an
ErrorResponse with the error's SQLSTATE, then ReadyForQuery with the transaction status.
A statement that fails inside a transaction block leaves it failed (25P02 for everything
but ROLLBACK, and COMMIT rolls back), as in PostgreSQL.

Authentication: SCRAM-SHA-256 against one password (the master user's) when the server
has one (``scram.py``); without one every user is let in, which the instance allows only
on a loopback address.

What does not work yet: TLS, the extended query protocol (answered with 0A000 until the
next Sync), COPY, SQL translation (statements run as SQLite SQL), binary formats, and a
catalog. Values are sent as text, typed int8, float8, text or bytea from their
SQLite storage class.

A protocol violation gets a FATAL ErrorResponse and closes that connection only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import Callable
from typing import Any, cast

from borealis.engine.database import Database, Result, Session
from borealis.errors import BorealisError
from borealis.protocol.postgres.backend import (
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    BackendKeyData,
    CommandComplete,
    EmptyQueryResponse,
    ErrorResponse,
    FieldDescription,
    ParameterStatus,
    ReadyForQuery,
    Severity,
    TransactionStatus,
    encode_data_row,
    encode_row_description,
)
from borealis.protocol.postgres.messages import (
    AuthenticationResponse,
    CancelRequest,
    GSSENCRequest,
    PgProtocolError,
    Query,
    SSLRequest,
    StartupMessage,
    Sync,
    Terminate,
    parse_sasl_initial_response,
    parse_sasl_response,
)
from borealis.protocol.postgres.parser import FrontendParser
from borealis.protocol.postgres.scram import MECHANISM, ScramError, ScramExchange, ScramSecret

log = logging.getLogger(__name__)

SERVER_VERSION = "15.0 (Borealis)"
OID_INT8 = 20
OID_FLOAT8 = 701
OID_TEXT = 25
OID_BYTEA = 17

_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)(?:\s+([A-Za-z]+))?")
_ROLLBACK = re.compile(r"\s*(ROLLBACK|ABORT)\b", re.IGNORECASE)
_COMMIT = re.compile(r"\s*(COMMIT|END)\b", re.IGNORECASE)
_SINGLE_WORD_TAGS = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE",
                               "VACUUM", "ANALYZE", "PRAGMA", "END"})
_TWO_WORD_TAGS = frozenset({"CREATE", "DROP", "ALTER"})


def startup_parameters(user: str, application_name: str) -> list[ParameterStatus]:
    """What PostgreSQL 15 reports at startup (clients read several of them)."""
    return [ParameterStatus(name, value) for name, value in (
        ("server_version", SERVER_VERSION),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("application_name", application_name),
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("TimeZone", "UTC"),
        ("is_superuser", "on"),
        ("session_authorization", user),
        ("default_transaction_read_only", "off"),
        ("in_hot_standby", "off"),
    )]


def command_tag(sql: str, result: Result) -> str:
    """The CommandComplete tag PostgreSQL would send for ``sql``."""
    match = _FIRST_WORD.match(sql)
    word = match.group(1).upper() if match else ""
    if result.columns or word in ("SELECT", "WITH", "VALUES"):
        return f"SELECT {len(result.rows)}"
    if word == "INSERT":
        return f"INSERT 0 {result.changes}"
    if word in ("UPDATE", "DELETE"):
        return f"{word} {result.changes}"
    if word in _TWO_WORD_TAGS and match and match.group(2):
        return f"{word} {match.group(2).upper()}"
    if word == "END":
        return "COMMIT"
    if word in _SINGLE_WORD_TAGS:
        return word
    return word or "OK"


def _field(name: str, rows: list[tuple[Any, ...]], column: int) -> FieldDescription:
    oid = OID_TEXT
    for row in rows:
        value = row[column]
        if value is None:
            continue
        if isinstance(value, bool | int):
            oid = OID_INT8
        elif isinstance(value, float):
            oid = OID_FLOAT8
        elif isinstance(value, bytes):
            oid = OID_BYTEA
        break
    return FieldDescription(name=name.replace("\x00", ""), type_oid=oid)


def _text(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return b"\\x" + value.hex().encode("ascii")
    if isinstance(value, float):
        return repr(value).encode("ascii")
    return str(value).encode("utf-8")


def _error(exc: BaseException, *, code: str | None = None) -> bytes:
    sqlstate = code or getattr(exc, "sqlstate", None) or "XX000"
    message = str(exc).replace("\x00", "") or type(exc).__name__
    return ErrorResponse(severity=Severity.ERROR, code=sqlstate, message=message).encode()


class PgServer:
    """Serves the PostgreSQL protocol on ``host:port`` for one instance's engine."""

    def __init__(self, database: Callable[[], Database | None], *, name: str,
                 secret: ScramSecret | None = None) -> None:
        self._database = database
        self.name = name
        self.secret = secret
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[_Connection] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        sockname = self._server.sockets[0].getsockname()
        log.info("postgres protocol serving instance=%s address=%s:%d", self.name,
                 sockname[0], sockname[1])
        return sockname[0], sockname[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.abort()
        for connection in list(self.connections):
            await connection.finished()


class _Connection(asyncio.Protocol):
    """One client: messages are parsed as they arrive and handled in order by one task."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.parser = FrontendParser()
        self.transport: asyncio.Transport | None = None
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.session: Session | None = None
        self.failed = False  # a transaction block that failed: only ROLLBACK goes through
        self.skip_to_sync = False
        self.startup: StartupMessage | None = None
        self.scram: ScramExchange | None = None  # while authenticating
        self.scram_started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        try:
            for message in self.parser.feed(data):
                self.inbox.put_nowait(message)
        except PgProtocolError as exc:
            self.inbox.put_nowait(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.inbox.put_nowait(None)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def finished(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _run(self) -> None:
        try:
            while True:
                message = await self.inbox.get()
                if message is None:
                    return
                try:
                    if isinstance(message, PgProtocolError):
                        raise message
                    if not await self._handle(message):
                        return
                except PgProtocolError as exc:
                    log.info("postgres protocol violation, closing: %s", exc)
                    self._send(ErrorResponse.from_protocol_error(exc).encode())
                    return
        finally:
            if self.session is not None:
                await self.session.close()
            if self.transport is not None:
                self.transport.close()

    async def _handle(self, message: Any) -> bool:
        """Answer one message; False ends the connection."""
        if isinstance(message, SSLRequest | GSSENCRequest):
            self._send(self.parser.answer_encryption_request(accepted=False))
            return True
        if isinstance(message, CancelRequest):
            return False  # query cancellation comes later; the connection just closes
        if isinstance(message, StartupMessage):
            self.startup = message
            if self.server.secret is None:
                return await self._startup(message)
            self.scram = ScramExchange(self.server.secret)
            self._send(AuthenticationSASL((MECHANISM,)).encode())
            return True
        if self.scram is not None:
            return await self._authenticate(message)
        if isinstance(message, AuthenticationResponse):
            raise PgProtocolError("a password message outside authentication")
        if isinstance(message, Terminate):
            return False
        if isinstance(message, Query):
            await self._query(message.query)
            return True
        if isinstance(message, Sync):
            self.skip_to_sync = False
            self._ready()
            return True
        if not self.skip_to_sync:
            self._send(_error(BorealisError(
                f"{type(message).__name__}: the extended query protocol is not supported yet "
                "(use the simple query protocol)"), code="0A000"))
            self.skip_to_sync = True
        return True

    async def _authenticate(self, message: Any) -> bool:
        """The SCRAM exchange: client-first, then client-final."""
        assert self.scram is not None and self.startup is not None
        if not isinstance(message, AuthenticationResponse):
            raise PgProtocolError(f"{type(message).__name__} during authentication")
        try:
            if not self.scram_started:
                first = parse_sasl_initial_response(message)
                if first.mechanism != MECHANISM or first.data is None:
                    raise ScramError(f"unsupported SASL mechanism {first.mechanism!r}")
                self.scram_started = True
                self._send(AuthenticationSASLContinue(
                    self.scram.client_first(first.data)).encode())
                return True
            final = self.scram.client_final(parse_sasl_response(message).data)
        except ScramError as exc:
            log.info("authentication failed user=%s: %s", self.startup.user, exc)
            self._send(ErrorResponse(
                severity=Severity.FATAL, code="28P01",
                message=f'password authentication failed for user "{self.startup.user}"'
                .replace("\x00", "")).encode())
            return False
        self.scram = None
        self._send(AuthenticationSASLFinal(final).encode())
        return await self._startup(self.startup)

    async def _startup(self, message: StartupMessage) -> bool:
        database = self.server._database()
        if database is None:
            self._send(ErrorResponse(severity=Severity.FATAL, code="57P03",
                                     message="the instance is starting up").encode())
            return False
        try:
            self.session = await database.session()
        except BorealisError as exc:
            self._send(ErrorResponse(severity=Severity.FATAL, code="53300",
                                     message=str(exc).replace("\x00", "")).encode())
            return False
        user = message.user or "postgres"
        out = [AuthenticationOk().encode()]
        out += [p.encode() for p in startup_parameters(user, message.application_name or "")]
        out.append(BackendKeyData(os.getpid() & 0x7FFFFFFF,
                                  secrets.randbits(31)).encode())
        self._send(b"".join(out))
        self._ready()
        return True

    def _ready(self) -> None:
        session = self.session
        if self.failed:
            status = TransactionStatus.FAILED
        elif session is not None and session.in_transaction:
            status = TransactionStatus.IN_TRANSACTION
        else:
            status = TransactionStatus.IDLE
        self._send(ReadyForQuery(status).encode())

    async def _query(self, sql: str) -> None:
        session = self.session
        if session is None:
            self._send(_error(BorealisError("no session"), code="08P01"))
            return
        if not sql.strip().strip(";").strip():
            self._send(EmptyQueryResponse().encode())
            self._ready()
            return
        if self.failed:
            if _ROLLBACK.match(sql) or _COMMIT.match(sql):
                await self._run_statement(session, "ROLLBACK", tag="ROLLBACK")
                self.failed = False
            else:
                self._send(_error(BorealisError(
                    "current transaction is aborted, commands ignored until end of "
                    "transaction block"), code="25P02"))
            self._ready()
            return
        await self._run_statement(session, sql)
        self._ready()

    async def _run_statement(self, session: Session, sql: str, *, tag: str | None = None
                             ) -> None:
        in_block = session.in_transaction
        try:
            result = await session.execute(sql)
        except BorealisError as exc:
            self._send(_error(exc))
            if in_block or session.in_transaction:
                self.failed = True
            return
        out: list[bytes] = []
        if result.columns:
            fields = [_field(name, result.rows, i) for i, name in enumerate(result.columns)]
            out.append(encode_row_description(fields))
            out += [encode_data_row([_text(v) for v in row]) for row in result.rows]
        out.append(CommandComplete(tag or command_tag(sql, result)).encode())
        self._send(b"".join(out))

