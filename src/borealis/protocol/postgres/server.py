"""The PostgreSQL protocol server of an instance: the listening socket, connections,
startup and authentication.

A connection is an ``asyncio.Protocol`` whose bytes go through the sans-I/O
``FrontendParser``; one task per connection handles its messages in order, so a slow
statement holds up only its own connection (SQL runs in the session's thread, see
``engine.database``). Replies are queued and written in one system call when the
connection next waits for its client (or at a Flush).

- Startup: an SSLRequest gets TLS when the server has a certificate ('N' otherwise; a byte
  sent after the request and before the handshake closes the connection); GSSAPI is
  refused; a cancel request interrupts the statement its key names; the startup message
  is checked (user, database), the connection limit applied, then SCRAM-SHA-256 against
  the master password or a role's stored secret (``scram.py``, ``roles.py``) or, without
  a password, trust (allowed only on loopback addresses).
- Queries, transactions and COPY: ``query.QueryProtocol``, which this connection mixes in.

A protocol violation gets a FATAL ErrorResponse and closes that connection only; so does
an unexpected exception (logged with its traceback), never the instance.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import ssl
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import apsw

from borealis.engine.database import Database, Session
from borealis.errors import BorealisError, ConfigError
from borealis.protocol.postgres import catalog, roles, sqltext
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.backend import (
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    BackendKeyData,
    ErrorResponse,
    ParameterStatus,
    Severity,
)
from borealis.protocol.postgres.messages import (
    AuthenticationResponse,
    Bind,
    CancelRequest,
    Close,
    CopyData,
    CopyDone,
    CopyFail,
    Describe,
    Execute,
    Flush,
    GSSENCRequest,
    Parse,
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
from borealis.protocol.postgres.query import (
    Portal,
    Prepared,
    QueryProtocol,
    _Batch,
    _error,
    command_tag,
)
from borealis.protocol.postgres.scram import MECHANISM, ScramError, ScramExchange, ScramSecret
from borealis.protocol.postgres.session import DISPLAY_NAMES, SERVER_VERSION, SqlSession
from borealis.protocol.postgres.translate import (
    Translator,
)

log = logging.getLogger(__name__)

__all__ = ["SERVER_VERSION", "PgServer", "command_tag", "server_tls_context"]

CONNECTIONS_MAX_DEFAULT = 100
TLS_HANDSHAKE_TIMEOUT_S = 10.0

_REPORTED_AT_STARTUP = ("application_name", "client_encoding", "datestyle",
                        "default_transaction_read_only", "in_hot_standby", "integer_datetimes",
                        "intervalstyle", "is_superuser", "server_encoding", "server_version",
                        "standard_conforming_strings", "timezone")


def server_tls_context(cert: Path, key: Path | None) -> ssl.SSLContext:
    """A server-side TLS context from a PEM certificate (chain) and its key (TLS 1.2+)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert}: {exc}") from None
    return context


class PgServer:
    """Serves the PostgreSQL protocol on ``host:port`` for one instance's engine."""

    def __init__(self, database: Callable[[], Database | None], *, name: str,
                 secret: ScramSecret | None = None, user: str = "postgres",
                 database_name: str = "postgres",
                 connections_max: int = CONNECTIONS_MAX_DEFAULT,
                 tls: ssl.SSLContext | None = None, tls_required: bool = False) -> None:
        if tls_required and tls is None:
            raise ValueError("TLS cannot be required without a certificate")
        self._database = database
        self.name = name
        self.secret = secret
        self.user = user
        self.database_name = database_name
        self.connections_max = connections_max
        self.tls = tls
        self.tls_required = tls_required
        self.translator = Translator()
        self._server: asyncio.AbstractServer | None = None
        self.connections: set[_Connection] = set()
        self._keys: dict[tuple[int, int], _Connection] = {}
        self._process_ids = itertools.count(1000)

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

    def new_key(self, connection: _Connection) -> tuple[int, int]:
        key = (next(self._process_ids) & 0x7FFFFFFF, secrets.randbits(31))
        self._keys[key] = connection
        return key

    def cancel(self, process_id: int, secret_key: int) -> None:
        connection = self._keys.get((process_id, secret_key))
        if connection is not None:
            log.info("cancel request instance=%s backend=%d", self.name, process_id)
            connection.cancel()

    @property
    def active_sessions(self) -> int:
        return sum(1 for c in self.connections if c.session is not None)


class _Connection(QueryProtocol, asyncio.Protocol):
    """One client: messages are parsed as they arrive and handled in order by one task."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.parser = FrontendParser()
        self.transport: asyncio.Transport | None = None
        self.inbox: deque[Any] = deque()
        self.outbox: list[bytes] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.session: Session | None = None
        self.sql: SqlSession | None = None
        self.failed = False  # a transaction block that failed: only ROLLBACK goes through
        self.skip_to_sync = False
        self.startup: StartupMessage | None = None
        self.scram: ScramExchange | None = None  # while authenticating
        self.scram_started = False
        self.key: tuple[int, int] | None = None
        self.prepared: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.batch = _Batch()
        self.read_only_block = False
        self.pending_begin = False
        self.encrypted = False
        self.running = False

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        try:
            self.inbox.extend(self.parser.feed(data))
        except PgProtocolError as exc:
            self.inbox.append(exc)
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.inbox.append(None)
        self.arrived.set()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def cancel(self) -> None:
        if self.running and self.session is not None:
            self.session.interrupt()

    async def finished(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    def _send(self, data: bytes) -> None:
        """Queue ``data`` for the client: written in one system call when the connection
        next waits for the client (``_next``), so a statement's reply is one write."""
        self.outbox.append(data)

    def _flush(self) -> None:
        if self.outbox:
            data = b"".join(self.outbox)
            self.outbox.clear()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)

    async def _next(self) -> Any:
        if not self.inbox:
            self._flush()
        while not self.inbox:
            self.arrived.clear()
            await self.arrived.wait()
        return self.inbox.popleft()

    async def _run(self) -> None:
        try:
            while True:
                message = await self._next()
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
                except Exception as exc:
                    # A bug here must cost this connection only, never the instance.
                    log.exception("postgres connection failed, closing it")
                    self._send(_error(BorealisError(f"internal error: {exc}"), code="XX000",
                                      severity=Severity.FATAL))
                    return
        finally:
            if self.key is not None:
                self.server._keys.pop(self.key, None)
            self._flush()
            if self.session is not None:
                await self.session.close()
            if self.transport is not None:
                self.transport.close()

    async def _handle(self, message: Any) -> bool:
        """Answer one message; False ends the connection."""
        if isinstance(message, SSLRequest):
            return await self._start_tls()
        if isinstance(message, GSSENCRequest):
            self._send(self.parser.answer_encryption_request(accepted=False))
            return True
        if isinstance(message, CancelRequest):
            self.server.cancel(message.process_id, message.secret_key)
            return False
        if isinstance(message, StartupMessage):
            return await self._begin_startup(message)
        if self.scram is not None:
            return await self._authenticate(message)
        if isinstance(message, AuthenticationResponse):
            raise PgProtocolError("a password message outside authentication")
        if isinstance(message, Terminate):
            return False
        if isinstance(message, Query):
            await self._simple_query(message.query)
            return True
        if isinstance(message, Sync):
            await self._sync()
            return True
        if isinstance(message, CopyData | CopyDone | CopyFail):
            return True  # the rest of a COPY that failed: PostgreSQL ignores it too
        if isinstance(message, Flush):
            self._flush()
            return True
        if self.skip_to_sync:
            return True
        try:
            if isinstance(message, Parse):
                await self._parse(message)
            elif isinstance(message, Bind):
                await self._bind(message)
            elif isinstance(message, Describe):
                await self._describe(message)
            elif isinstance(message, Execute):
                await self._execute(message)
            elif isinstance(message, Close):
                self._close(message)
            else:
                raise PgProtocolError(f"{type(message).__name__} is not supported")
        except PgProtocolError:
            raise
        except (BorealisError, pgtypes.PgValueError, sqltext.SqlTextError) as exc:
            self._send(_error(exc))
            self._after_error()
            self.skip_to_sync = True
        return True

    # -- startup and authentication -------------------------------------------------
    async def _start_tls(self) -> bool:
        """Answer an SSLRequest: 'S' and the TLS handshake when the server has a
        certificate, 'N' otherwise. A byte sent after the request and before the handshake
        is a protocol violation (the parser raises on it), so nothing sent in the clear can
        be taken as sent over TLS."""
        context = self.server.tls
        if context is None or self.encrypted:
            self._send(self.parser.answer_encryption_request(accepted=False))
            return True
        self._send(self.parser.answer_encryption_request(accepted=True))
        self._flush()  # the 'S' goes in the clear, before the handshake
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self.transport, self, context, server_side=True,
                                             ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            log.info("TLS handshake failed: %s", exc)
            return False
        if transport is None:
            return False
        self.transport = transport
        self.encrypted = True
        return True

    async def _begin_startup(self, message: StartupMessage) -> bool:
        """Check the startup message, then authenticate: the master user against the
        instance's password, any other role against its stored secret (which needs a
        session to read, so the session is opened first); without a password, trust."""
        self.startup = message
        if self.server.tls_required and not self.encrypted:
            return self._fatal("28000", "connections without TLS are refused: connect with "
                               "sslmode=require")
        user = message.user
        if self.server.active_sessions >= self.server.connections_max:
            return self._fatal("53300", "sorry, too many clients already")
        if message.database != self.server.database_name:
            return self._fatal("3D000", f'database "{message.database}" does not exist')
        secret = self.server.secret
        if user != self.server.user:
            if not await self._open_session(message):
                return False
            assert self.session is not None
            role = await self.session.call(lambda c: roles.lookup(c, user))
            if role is None:
                return self._fatal("28000", f'role "{user}" does not exist')
            if not role.can_login:
                return self._fatal("28000", f'role "{user}" is not permitted to log in')
            if secret is not None:
                if role.secret is None:
                    log.info("authentication failed user=%s: the role has no password", user)
                    return self._fatal("28P01",
                                       f'password authentication failed for user "{user}"')
                secret = role.secret
        if secret is None:
            return await self._startup(message)
        self.scram = ScramExchange(secret)
        self._send(AuthenticationSASL((MECHANISM,)).encode())
        return True

    def _fatal(self, code: str, message: str) -> bool:
        self._send(ErrorResponse(severity=Severity.FATAL, code=code,
                                 message=message.replace("\x00", "")).encode())
        return False

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
            return self._fatal(
                "28P01", f'password authentication failed for user "{self.startup.user}"')
        self.scram = None
        self._send(AuthenticationSASLFinal(final).encode())
        return await self._startup(self.startup)

    async def _open_session(self, message: StartupMessage) -> bool:
        """The engine session for this connection, with its SQL state, functions and
        catalog; False (the connection ends) when it cannot be had."""
        if self.session is not None:
            return True
        database = self.server._database()
        if database is None:
            return self._fatal("57P03", "the database system is starting up")
        user = message.user
        self.sql = SqlSession(user=user, database=self.server.database_name,
                              application_name=message.application_name or "",
                              read_only=database.reader, instance_id=self.server.name)
        settings = list(message.settings)
        settings += re.findall(r"(?:-c\s*|--)([A-Za-z_][\w.]*)=(\S+)", message.options or "")
        for name, value in settings:
            key = SqlSession.canonical(name)
            if key == "application_name":
                continue
            try:
                self.sql.set(key, value)
            except BorealisError as exc:
                self._send(_error(exc, severity=Severity.FATAL))
                return False
        self.sql.take_changes()
        sql = self.sql
        self.key = self.server.new_key(self)
        process_id = self.key[0]
        in_recovery = database.reader

        def setup(conn: apsw.Connection) -> None:
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA case_sensitive_like=ON")
            sql.register(conn)
            catalog.install(conn, database=sql.database, user=sql.user,
                            in_recovery=in_recovery, backend_pid=process_id,
                            settings=sql.settings)

        try:
            self.session = await database.session(setup)
        except BorealisError as exc:
            return self._fatal(getattr(exc, "sqlstate", None) or "53300", str(exc))
        return True

    async def _startup(self, message: StartupMessage) -> bool:
        """Authenticated: AuthenticationOk, the parameters, the cancel key, ready."""
        if not await self._open_session(message):
            return False
        assert self.sql is not None and self.key is not None
        out = [AuthenticationOk().encode()]
        for name in _REPORTED_AT_STARTUP:
            value = self.sql.get(name) or ""
            if name == "is_superuser":
                value = "on"
            out.append(ParameterStatus(DISPLAY_NAMES.get(name, name), value).encode())
        out.append(ParameterStatus("session_authorization", message.user).encode())
        out.append(BackendKeyData(*self.key).encode())
        self._send(b"".join(out))
        self._ready()
        return True
