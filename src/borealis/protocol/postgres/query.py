"""The query protocols of a PostgreSQL connection: transactions, the simple and extended
query protocols and COPY, as a mixin of the server's connection (``server._Connection``,
which owns the socket, the startup and authentication).

- Transactions. PostgreSQL's BEGIN does not start an SQLite transaction at once: the
  block's first statement does, as BEGIN IMMEDIATE when it writes (the session then queues
  for the write lock before it reads anything, so a TPC-B transaction never has to be
  retried) and as a deferred BEGIN when it reads. PostgreSQL, too, takes a block's
  snapshot at its first statement. A failed block refuses everything but ROLLBACK (25P02).
- Simple query: the query string is split into statements, each translated
  (``translate.Translator``, cached by shape) and run; several statements without
  transaction control run in one implicit transaction, as in PostgreSQL.
- Extended query: named and unnamed statements and portals, parameter types from the
  client or inferred from the schema, ParameterDescription and RowDescription at Describe
  before anything runs, text and binary formats, row limits with PortalSuspended. Between
  two Syncs, the Executes outside a transaction block run in one implicit transaction.
  After an error, messages are skipped up to the next Sync.
- COPY FROM STDIN (text, CSV, binary) and COPY TO STDOUT (text, CSV), through
  ``copy.py``; role statements through ``roles.py``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from borealis.engine.database import Result, Session
from borealis.errors import BorealisError, ReadOnlyError, SqlError
from borealis.protocol.postgres import alter as pgalter
from borealis.protocol.postgres import copy as pgcopy
from borealis.protocol.postgres import cursors, functions, roles, sqltext
from borealis.protocol.postgres import schema as pgschema
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.backend import (
    BindComplete,
    CloseComplete,
    CommandComplete,
    CopyInResponse,
    CopyOutResponse,
    EmptyQueryResponse,
    ErrorResponse,
    FieldDescription,
    NoData,
    NoticeResponse,
    ParameterDescription,
    ParameterStatus,
    ParseComplete,
    PortalSuspended,
    ReadyForQuery,
    Severity,
    TransactionStatus,
    encode_data_row,
    encode_row_description,
)
from borealis.protocol.postgres.messages import (
    Bind,
    Close,
    CopyData,
    CopyDone,
    CopyFail,
    Describe,
    Execute,
    Flush,
    Format,
    Parse,
    PgProtocolError,
    Sync,
    Target,
)
from borealis.protocol.postgres.session import SqlSession
from borealis.protocol.postgres.translate import (
    CopyAction,
    ExplainAction,
    Kind,
    ParamHint,
    SequenceOp,
    SetAction,
    ShowAction,
    Statement,
    TransactionAction,
    TranslationError,
)

if TYPE_CHECKING:
    from borealis.protocol.postgres.server import PgServer

log = logging.getLogger(__name__)

PREPARED_STATEMENTS_MAX = 10_000
"""Named statements one connection may hold (a client that never closes its statements
must not take the instance's memory)."""
COPY_BATCH_ROWS = 5_000
"""Rows of a COPY FROM inserted per trip to the session's thread."""
COPY_OUT_LINES_PER_WRITE = 1_000
OID_TEXT = 25
OID_INT8 = 20
OID_FLOAT8 = 701
OID_BYTEA = 17


def command_tag(statement: Statement, result: Result | None, rows: int) -> str:
    """The CommandComplete tag PostgreSQL sends for ``statement``."""
    tag = statement.tag
    changes = result.last_changes if result is not None else 0
    if tag == "SELECT":
        if statement.kind is Kind.DDL:  # CREATE TABLE AS
            return f"SELECT {result.changes if result is not None else 0}"
        return f"SELECT {rows}"
    if tag == "INSERT":
        return f"INSERT 0 {rows if statement.kind is Kind.QUERY else changes}"
    if tag in ("UPDATE", "DELETE"):
        return f"{tag} {rows if statement.kind is Kind.QUERY else changes}"
    if tag == "COPY":
        return f"COPY {rows}"
    return tag


def _error(exc: BaseException, *, code: str | None = None,
           severity: Severity = Severity.ERROR) -> bytes:
    sqlstate = code or getattr(exc, "sqlstate", None) or "XX000"
    message = str(exc).replace("\x00", "") or type(exc).__name__
    return ErrorResponse(severity=severity, code=sqlstate, message=message).encode()


@dataclass
class Prepared:
    """A parsed statement: its translation and parameter types."""

    sql: str
    statement: Statement
    param_types: tuple[int, ...]
    result: list[tuple[str, int, int]] | None = None  # described columns: name, oid, typmod
    role: roles.RoleStatement | None = None  # CREATE/ALTER/DROP ROLE: not SQLite's
    cursor: cursors.CursorStatement | None = None  # DECLARE/FETCH/MOVE/CLOSE
    param_targets: tuple[tuple[int, int] | None, ...] = ()
    """Per parameter, the column type (oid, typmod) its value is cast to at Bind
    (``schema.assignment_targets``); empty when none is."""


@dataclass
class Portal:
    """A bound statement, possibly run part way (its rows are kept between Executes)."""

    prepared: Prepared
    params: tuple[Any, ...]
    result_formats: tuple[Format, ...]
    rows: deque[tuple[Any, ...]] | cursors.CursorRows | None = None
    columns: list[tuple[str, int, int]] | None = None
    sent: int = 0
    done: bool = False
    tag: str = ""
    cursor: bool = False  # a DECLAREd cursor (FETCH takes its rows)
    hold: bool = False    # WITH HOLD: it outlives its transaction


@dataclass
class _Batch:
    """Messages between two Syncs: whether an implicit transaction was opened."""

    implicit: bool = False


class QueryProtocol:
    """The query half of a connection. The connection provides the attributes declared
    here and ``_send``/``_flush``/``_next`` (queue a reply, write the queue, wait for the
    client's next message)."""

    server: PgServer
    session: Session | None
    sql: SqlSession | None
    inbox: deque[Any]
    failed: bool
    skip_to_sync: bool
    prepared: dict[str, Prepared]
    portals: dict[str, Portal]
    batch: _Batch
    read_only_block: bool
    pending_begin: bool
    running: bool

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    async def _next(self) -> Any:
        raise NotImplementedError

    def _execute_follows(self) -> bool:
        """Whether another Execute is already queued before the next Sync."""
        for message in self.inbox:
            if isinstance(message, Sync):
                return False
            if isinstance(message, Execute):
                return True
        return False

    def _status(self) -> TransactionStatus:
        if self.failed and not self.batch.implicit:
            return TransactionStatus.FAILED
        if self.in_block and not self.batch.implicit:
            return TransactionStatus.IN_TRANSACTION
        return TransactionStatus.IDLE

    def _ready(self) -> None:
        self._send(ReadyForQuery(self._status()).encode())

    def _report_settings(self) -> None:
        assert self.sql is not None
        for name, value in self.sql.take_changes():
            self._send(ParameterStatus(name, value).encode())

    # -- transactions ---------------------------------------------------------------
    # A PostgreSQL BEGIN does not start an SQLite transaction at once: the first statement
    # of the block does, as BEGIN IMMEDIATE when it writes (the session then queues for
    # the write lock before it reads anything, so a TPC-B transaction never has to be
    # retried) and as a deferred BEGIN when it reads. PostgreSQL, too, takes a block's
    # snapshot at its first statement, not at BEGIN.

    @property
    def in_block(self) -> bool:
        """In a transaction block (explicit or implicit), begun in SQLite or not yet."""
        return self.pending_begin or (self.session is not None
                                      and self.session.in_transaction)

    async def _open(self, *, write: bool) -> None:
        """Start the SQLite transaction of a block that has none yet."""
        if self.pending_begin:
            self.pending_begin = False
            await self._sqlite("BEGIN IMMEDIATE" if write else "BEGIN")

    async def _sqlite(self, sql: str, params: Any = None) -> Result:
        """Run SQLite SQL in the session, bounded by the session's statement_timeout."""
        assert self.session is not None and self.sql is not None
        self.sql.begin_statement(self.in_block)
        timeout_ms = duration_ms(self.sql.get("statement_timeout") or "0")
        timer = None
        expired = False
        if timeout_ms > 0:
            session = self.session

            def expire() -> None:
                nonlocal expired
                expired = True
                session.interrupt()

            timer = asyncio.get_running_loop().call_later(timeout_ms / 1000, expire)
        self.running = True
        try:
            return await self.session.execute(sql, params)
        except SqlError as exc:
            if expired and exc.sqlstate == "57014":
                raise SqlError("canceling statement due to statement timeout",
                               "57014") from None
            raise
        finally:
            self.running = False
            if timer is not None:
                timer.cancel()

    # Translation is CPU work on the event loop, cheap for what clients send (and a cache
    # hit for what they repeat); a statement that could take sqlglot long (very large, or
    # deeply nested) is translated in a worker thread so that other connections go on.
    async def _translate(self, sql: str) -> Statement:
        if _heavy(sql):
            return await asyncio.to_thread(self.server.translator.translate, sql)
        return self.server.translator.translate(sql)

    async def _translate_simple(self, sql: str) -> tuple[Statement, tuple[Any, ...]]:
        if _heavy(sql):
            return await asyncio.to_thread(self.server.translator.translate_simple, sql)
        return self.server.translator.translate_simple(sql)

    def _after_error(self) -> None:
        """A statement failed: a transaction block (explicit or implicit) is now failed."""
        if self.in_block:
            self.failed = True

    async def _end(self, *, commit: bool) -> None:
        """End the block: COMMIT (its errors propagate, after a rollback) or ROLLBACK."""
        self.portals = {name: p for name, p in self.portals.items() if p.hold}
        self.pending_begin = False
        self.read_only_block = False
        try:
            if self.session is not None and self.session.in_transaction:
                if commit and not self.failed:
                    try:
                        await self._sqlite("COMMIT")
                    except BorealisError:
                        await self._rollback_quietly()
                        raise
                else:
                    await self._rollback_quietly()
        finally:
            self.failed = False
            if self.sql is not None:
                self.sql.end_transaction()

    async def _rollback_quietly(self) -> None:
        if self.session is not None and self.session.in_transaction:
            try:
                await self.session.execute("ROLLBACK")
            except BorealisError as exc:  # the session is gone or the volume failed
                log.warning("rollback failed: %s", exc)

    async def _sync(self) -> None:
        self.skip_to_sync = False
        batch, self.batch = self.batch, _Batch()
        if batch.implicit:
            try:
                await self._end(commit=True)
            except BorealisError as exc:
                self._send(_error(exc))
        # portals end with their transaction, but for cursors declared WITH HOLD
        self.portals = {name: p for name, p in self.portals.items()
                        if p.hold or (name and self.in_block)}
        self._ready()

    async def _transaction(self, action: TransactionAction) -> list[bytes]:
        """BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, ROLLBACK TO."""
        assert self.sql is not None
        out: list[bytes] = []
        verb = action.verb
        in_block = self.in_block and not self.batch.implicit
        if verb == "begin":
            if in_block:
                out.append(NoticeResponse(severity=Severity.WARNING, code="25001", message=(
                    "there is already a transaction in progress")).encode())
                return out
            if self.batch.implicit:
                self.batch.implicit = False  # BEGIN inside a batch: the block takes over
            else:
                self.pending_begin = True
            self.read_only_block = action.read_only
            return out
        if verb in ("commit", "rollback"):
            if not in_block:
                out.append(NoticeResponse(severity=Severity.WARNING, code="25P01", message=(
                    "there is no transaction in progress")).encode())
            if self.batch.implicit:
                self.batch.implicit = False
            await self._end(commit=verb == "commit")
            return out
        name = '"' + action.name.replace('"', '""') + '"'
        if not in_block:
            keyword = {"savepoint": "SAVEPOINT", "release": "RELEASE SAVEPOINT",
                       "rollback_to": "ROLLBACK TO SAVEPOINT"}[verb]
            raise TranslationError(f"{keyword} can only be used in transaction blocks",
                                   "25P01")
        await self._open(write=False)
        if verb == "savepoint":
            await self._sqlite(f"SAVEPOINT {name}")
        elif verb == "release":
            await self._sqlite(f"RELEASE SAVEPOINT {name}")
        else:
            await self._sqlite(f"ROLLBACK TO SAVEPOINT {name}")
            self.failed = False
        return out

    # -- running one statement -------------------------------------------------------
    async def _run_statement(self, statement: Statement, params: tuple[Any, ...],
                             param_types: tuple[int, ...] = ()
                             ) -> tuple[list[tuple[str, int, int]] | None,
                                        list[tuple[Any, ...]], str, list[bytes]]:
        """Run a translated statement: (columns or None, rows, command tag, notices).
        ``param_types``: the parameters' types, where the client's protocol has them."""
        assert self.session is not None and self.sql is not None
        kind = statement.kind
        if self.failed and not (kind is Kind.TRANSACTION and isinstance(
                statement.action, TransactionAction) and statement.action.verb in (
                "rollback", "rollback_to", "commit")):
            raise TranslationError("current transaction is aborted, commands ignored until "
                                   "end of transaction block", "25P02")
        if not statement.read_only and (self.read_only_block or self.session.db.reader):
            raise ReadOnlyError(f"cannot execute {statement.tag} in a read-only transaction")
        if kind is Kind.TRANSACTION:
            assert isinstance(statement.action, TransactionAction)
            rolled_back = self.failed and statement.action.verb == "commit"
            notices = await self._transaction(statement.action)
            return None, [], "ROLLBACK" if rolled_back else statement.tag, notices
        if kind is Kind.SET:
            if isinstance(statement.action, SetAction):
                if statement.action.name in _TIME_SETTINGS and statement.action.value:
                    duration_ms(statement.action.value)  # refused now, not at the next run
                self.sql.set(statement.action.name, statement.action.value,
                             local=statement.action.local, in_transaction=self.in_block)
                self._report_settings()
            return None, [], statement.tag, []
        if kind is Kind.SHOW and isinstance(statement.action, ExplainAction):
            await self._open(write=False)
            sql_text = statement.action.sql
            plan = await self.session.call(lambda c: pgschema.query_plan(c, sql_text, params))
            return [("QUERY PLAN", OID_TEXT, -1)], plan, "EXPLAIN", []
        if kind is Kind.SHOW:
            assert isinstance(statement.action, ShowAction)
            name = statement.action.name
            if name == "all":
                rows = [(n, v, d) for n, v, d in self.sql.show_all()]
                return ([("name", OID_TEXT, -1), ("setting", OID_TEXT, -1),
                         ("description", OID_TEXT, -1)], rows, "SHOW", [])
            value = self.sql.get(name)
            column = name.split()[-1] if " " in name else name
            if name == "transaction isolation level":
                column = "transaction_isolation"
            return [(column, OID_TEXT, -1)], [(value,)], "SHOW", []
        if kind is Kind.UTILITY or kind is Kind.EMPTY:
            return None, [], statement.tag, []
        if kind is Kind.COPY:
            raise TranslationError("COPY is only supported in the simple query protocol",
                                   "0A000")
        if kind is Kind.DDL:
            result = await self._ddl(statement)
            return None, [], command_tag(statement, result, 0), []
        await self._open(write=not statement.read_only)
        result = await self._sqlite(statement.sqlite[0], params or None)
        if kind is Kind.QUERY:
            resolved = await self._result_types(statement, param_types)
            columns = self._columns(statement, result.columns, result.decltypes, result.rows,
                                    resolved)
            return columns, result.rows, command_tag(statement, result, len(result.rows)), []
        return None, [], command_tag(statement, result, 0), []

    async def _ddl(self, statement: Statement) -> Result | None:
        """DDL as one atomic unit: its setup, its statements and its action."""
        assert self.session is not None
        await self._open(write=True)
        own = not self.in_block
        if own:
            await self._sqlite("BEGIN IMMEDIATE")
        try:
            result: Result | None = None
            for sql in statement.setup:
                await self._sqlite(sql)
            action = statement.action
            if isinstance(action, SequenceOp) and action.op == "truncate":
                tables = action.args[0]
                await self.session.call(lambda c: pgschema.check_tables_exist(c, tables))
            if isinstance(action, SequenceOp) and action.op == "drop_cascade":
                kind, names = action.name, action.args[0]
                await self.session.call(lambda c: pgschema.check_no_dependents(c, kind, names))
            for sql in statement.sqlite:
                result = await self._sqlite(sql)
            if isinstance(action, SequenceOp):
                await self._sequence_op(action)
            if own:
                await self._sqlite("COMMIT")
            return result
        except BaseException:
            if own:
                await self._rollback_quietly()
            raise

    async def _role(self, statement: roles.RoleStatement) -> None:
        """CREATE/ALTER/DROP ROLE, in the block's transaction or one of its own."""
        assert self.session is not None
        if self.failed:
            raise TranslationError("current transaction is aborted, commands ignored until "
                                   "end of transaction block", "25P02")
        if self.read_only_block or self.session.db.reader:
            raise ReadOnlyError(f"cannot execute {statement.tag} in a read-only transaction")
        await self._open(write=True)
        own = not self.in_block
        if own:
            await self._sqlite("BEGIN IMMEDIATE")
        try:
            master = self.server.user
            await self.session.call(lambda c: roles.run(c, statement, master=master))
            if own:
                await self._sqlite("COMMIT")
        except BaseException:
            if own:
                await self._rollback_quietly()
            raise

    async def _sequence_op(self, action: SequenceOp) -> None:
        assert self.session is not None
        op, args = action.op, action.args
        if op == "alter":
            if_exists, change = args
            await self.session.call(lambda c: pgalter.run(c, action.name, if_exists, change))
        elif op == "create_sequence":
            options, if_not_exists = args
            await self.session.call(lambda c: pgschema.create_sequence(
                c, action.name, dict(options), if_not_exists))
        elif op == "drop_sequence":
            names, if_exists = args
            await self.session.call(lambda c: pgschema.drop_sequences(c, names, if_exists))
        elif op == "truncate":
            tables, restart = args
            if restart:
                await self.session.call(lambda c: pgschema.restart_owned_sequences(c, tables))
        elif op == "drop_owned":
            await self.session.call(lambda c: pgschema.drop_owned_sequences(c, args))
        elif op == "rename_object":
            kind, new, if_exists = args
            await self.session.call(lambda c: pgalter.rename_object(
                c, kind, action.name, new, if_exists))
        elif op == "replace_view":
            create_sql = args[0]
            await self.session.call(lambda c: pgalter.replace_view(c, action.name, create_sql))
        elif op == "alter_sequence":
            options, if_exists = args
            await self.session.call(lambda c: pgschema.alter_sequence(
                c, action.name, options, if_exists))
        elif op == "set_constraints":
            mode = args[0]
            await self.session.call(lambda c: pgschema.set_constraints(c, mode))
        elif op == "drop_cascade":
            cleanup = args[1]
            await self.session.call(lambda c: pgschema.drop_owned_sequences(c, cleanup))
        # writes made through call() are durable with the COMMIT that follows them

    async def _result_types(self, statement: Statement, param_types: tuple[int, ...]
                            ) -> list[tuple[int, int]] | None:
        """The types of the result columns that are computed from table columns or
        parameters (``exprtypes``), resolved against the schema; None when there are none
        (no round trip to the session's thread then)."""
        static = statement.columns
        if static is None or all(c.formula is None for c in static):
            return None
        assert self.session is not None
        resolved: list[tuple[int, int]] = await self.session.call(
            lambda c: pgschema.result_types(c, static, param_types))
        return resolved

    def _columns(self, statement: Statement, names: list[str], decltypes: list[str | None],
                 rows: list[tuple[Any, ...]] | None,
                 resolved: list[tuple[int, int]] | None = None
                 ) -> list[tuple[str, int, int]]:
        """Each result column's name, type OID and modifier: the statement's type, else the
        one resolved against the schema, else the declared type, else the values'."""
        out = []
        static = statement.columns
        for index, name in enumerate(names):
            oid, typmod = 0, -1
            if static is not None and index < len(static):
                oid, typmod = static[index].type_oid, static[index].typmod
                name = static[index].name
            if not oid and resolved is not None and index < len(resolved):
                oid, typmod = resolved[index]
            if not oid and index < len(decltypes) and decltypes[index]:
                typed = pgtypes.type_from_decltype(decltypes[index])
                if typed is not None:
                    oid, typmod = typed[0].oid, typed[1]
            if not oid and rows:
                oid = _oid_of_values(rows, index)
            out.append((name, oid or OID_TEXT, typmod))
        return out

    # -- simple query ---------------------------------------------------------------
    async def _simple_query(self, text: str) -> None:
        assert self.sql is not None
        try:
            statements = sqltext.split(text)
        except sqltext.SqlTextError as exc:
            self._send(_error(exc))
            self._ready()
            return
        if not statements:
            self._send(EmptyQueryResponse().encode())
            self._ready()
            return
        implicit = False
        if len(statements) > 1 and not self.in_block and not self.failed:
            words = {sqltext.first_word(s) for s in statements}
            if not words & {"begin", "start", "commit", "end", "rollback", "abort",
                            "savepoint", "release", "vacuum", "copy"}:
                # several statements in one Query are one transaction, as in PostgreSQL
                implicit = True
                self.batch.implicit = True
                self.pending_begin = True
        try:
            for sql in statements:
                if not await self._simple_statement(sql):
                    break
        finally:
            if implicit and self.batch.implicit:
                self.batch.implicit = False
                try:
                    await self._end(commit=True)
                except BorealisError as exc:
                    self._send(_error(exc))
        self._ready()

    async def _simple_statement(self, sql: str) -> bool:
        """Run one statement of a simple Query; False stops the rest (an error)."""
        try:
            role = _role_statement(sql)
            if role is not None:
                await self._role(role)
                self._send(CommandComplete(role.tag).encode())
                return True
            cursor = _cursor_statement(sql)
            if cursor is not None:
                columns, rows, tag = await self._cursor(cursor, (), None)
                self._send_rows(columns, rows, tag)
                return True
            statement, params = await self._translate_simple(sql)
            if statement.kind is Kind.COPY:
                assert isinstance(statement.action, CopyAction)
                await self._copy(statement.action)
                return True
            columns, rows, tag, notices = await self._run_statement(statement, params)
        except (BorealisError, pgtypes.PgValueError, sqltext.SqlTextError) as exc:
            self._send(_error(exc))
            self._after_error()
            return False
        out = list(notices)
        if statement.kind is Kind.EMPTY:
            out.append(EmptyQueryResponse().encode())
        if columns is not None:
            out.append(encode_row_description(
                [FieldDescription(name=n.replace("\x00", ""), type_oid=oid, type_modifier=typmod,
                                  type_size=_size(oid)) for n, oid, typmod in columns]))
            types = [pgtypes.BY_OID.get(oid) for _, oid, _ in columns]
            try:
                for row in rows:
                    out.append(encode_data_row([_text(t, v) for t, v in zip(types, row,
                                                                            strict=True)]))
            except pgtypes.PgValueError as exc:
                self._send(b"".join(out[:1]))
                self._send(_error(exc))
                self._after_error()
                return False
        if statement.kind is not Kind.EMPTY:
            out.append(CommandComplete(tag).encode())
        self._send(b"".join(out))
        return True

    # -- extended query -------------------------------------------------------------
    async def _parse(self, message: Parse) -> None:
        assert self.session is not None
        if message.statement and message.statement in self.prepared:
            raise TranslationError(f'prepared statement "{message.statement}" already exists',
                                   "42P05")
        if len(self.prepared) >= PREPARED_STATEMENTS_MAX and message.statement:
            raise TranslationError("too many prepared statements on this connection", "54000")
        statements = sqltext.split(message.query)
        if len(statements) > 1:
            raise TranslationError("cannot insert multiple commands into a prepared statement",
                                   "42601")
        sql = statements[0] if statements else ""
        for oid in message.parameter_types:
            if oid and oid not in pgtypes.BY_OID:
                raise TranslationError(f"type with OID {oid} is not supported", "0A000")
        role = _role_statement(sql)
        if role is not None:
            self.prepared[message.statement] = Prepared(
                sql, Statement(Kind.UTILITY, role.tag),
                tuple(oid or OID_TEXT for oid in message.parameter_types), role=role)
            self._send(ParseComplete().encode())
            return
        cursor = _cursor_statement(sql)
        if isinstance(cursor, cursors.Fetch | cursors.CloseCursor | cursors.Deallocate):
            kind = Kind.QUERY if isinstance(cursor, cursors.Fetch) and not cursor.move \
                else Kind.UTILITY
            self.prepared[message.statement] = Prepared(
                sql, Statement(kind, "FETCH"),
                tuple(oid or OID_TEXT for oid in message.parameter_types), cursor=cursor)
            self._send(ParseComplete().encode())
            return
        statement = await self._translate(
            cursor.query if isinstance(cursor, cursors.Declare) else sql)
        declared = tuple(message.parameter_types)
        hints = statement.param_hints + tuple(
            ParamHint() for _ in range(len(declared) - statement.param_count))
        check = statement.identity_check if statement.param_count else ()
        assigned = any(h.assigned for h in hints)
        targets: tuple[tuple[int, int] | None, ...] = ()
        if any(not d for d in declared) or len(declared) < len(hints) or check or assigned:
            def resolve(conn: Any) -> tuple[tuple[int, ...],
                                            tuple[tuple[int, int] | None, ...]]:
                # the statement's client parameters leave its identity columns to this
                # check, as PostgreSQL's analysis of the statement (``assignments``)
                tables: dict[str, list[pgschema.ColumnInfo]] = {}
                pgschema.check_identity(conn, check, tables)
                types = pgschema.parameter_types(conn, hints, declared, tables)
                return types, (pgschema.assignment_targets(conn, hints, types, tables)
                               if assigned else ())

            param_types, targets = await self.session.call(resolve)
        else:
            param_types = declared
        for oid in param_types:
            if oid not in pgtypes.BY_OID:
                raise TranslationError(f"type with OID {oid} is not supported", "0A000")
        self.prepared[message.statement] = Prepared(
            sql, statement, tuple(param_types), cursor=cursor,
            param_targets=targets if any(t is not None for t in targets) else ())
        self._send(ParseComplete().encode())

    async def _bind(self, message: Bind) -> None:
        prepared = self.prepared.get(message.statement)
        if prepared is None:
            raise TranslationError(
                f'prepared statement "{message.statement}" does not exist', "26000")
        if message.portal and message.portal in self.portals:
            raise TranslationError(f'portal "{message.portal}" already exists', "42P03")
        if len(message.parameters) != len(prepared.param_types):
            raise PgProtocolError(
                f"bind message supplies {len(message.parameters)} parameters, but prepared "
                f'statement "{message.statement}" requires {len(prepared.param_types)}',
                sqlstate="08P01")
        formats = message.parameter_formats
        targets = prepared.param_targets
        values: list[Any] = []
        for index, raw in enumerate(message.parameters):
            fmt = formats[0] if len(formats) == 1 else (
                formats[index] if formats else Format.TEXT)
            pgtype = pgtypes.BY_OID[prepared.param_types[index]]
            if raw is None:
                values.append(None)
                continue
            if fmt == Format.BINARY:
                value = pgtypes.decode_binary(pgtype, raw)
            else:
                value = pgtypes.decode_text(pgtype, raw)
            target = targets[index] if targets else None
            if target is not None:  # PostgreSQL's assignment cast to the column's type
                value = functions.coerce_value(value, pgtypes.BY_OID[target[0]], target[1],
                                               "v")
            values.append(value)
        self.portals[message.portal] = Portal(prepared, tuple(values), message.result_formats)
        self._send(BindComplete().encode())

    async def _describe(self, message: Describe) -> None:
        if message.target is Target.STATEMENT:
            prepared = self.prepared.get(message.name)
            if prepared is None:
                raise TranslationError(
                    f'prepared statement "{message.name}" does not exist', "26000")
            columns = await self._describe_columns(prepared)
            out = [ParameterDescription(prepared.param_types).encode()]
            out.append(self._row_description(columns, ()) if columns is not None
                       else NoData().encode())
            self._send(b"".join(out))
            return
        portal = self.portals.get(message.name)
        if portal is None:
            raise TranslationError(f'portal "{message.name}" does not exist', "34000")
        columns = portal.columns if portal.cursor else await self._describe_columns(
            portal.prepared)  # a DECLAREd cursor ran: its types are known from its rows
        portal.columns = columns
        self._send(self._row_description(columns, portal.result_formats) if columns is not None
                   else NoData().encode())

    async def _describe_columns(self, prepared: Prepared) -> list[tuple[str, int, int]] | None:
        statement = prepared.statement
        if isinstance(prepared.cursor, cursors.Fetch) and not prepared.cursor.move:
            return self._cursor_portal(prepared.cursor.name).columns
        if prepared.cursor is not None:
            return None
        if statement.kind is Kind.SHOW:
            if isinstance(statement.action, ShowAction) and statement.action.name == "all":
                return [("name", OID_TEXT, -1), ("setting", OID_TEXT, -1),
                        ("description", OID_TEXT, -1)]
            name = statement.columns[0].name if statement.columns else "setting"
            return [(name, OID_TEXT, -1)]
        if statement.kind is not Kind.QUERY:
            return None
        if prepared.result is None:
            assert self.session is not None
            description = await self.session.describe(statement.sqlite[0])
            names = [name for name, _ in description.columns]
            decltypes = [decltype for _, decltype in description.columns]
            resolved = await self._result_types(statement, prepared.param_types)
            prepared.result = self._columns(statement, names, decltypes, None, resolved)
        return prepared.result

    def _row_description(self, columns: list[tuple[str, int, int]],
                         formats: tuple[Format, ...]) -> bytes:
        fields = []
        for index, (name, oid, typmod) in enumerate(columns):
            fmt = formats[0] if len(formats) == 1 else (
                formats[index] if index < len(formats) else Format.TEXT)
            fields.append(FieldDescription(name=name.replace("\x00", ""), type_oid=oid,
                                           type_modifier=typmod, type_size=_size(oid),
                                           format=fmt))
        return encode_row_description(fields)

    async def _execute(self, message: Execute) -> None:
        portal = self.portals.get(message.portal)
        if portal is None:
            raise TranslationError(f'portal "{message.portal}" does not exist', "34000")
        statement = portal.prepared.statement
        if portal.rows is None and not portal.done:
            if statement.kind is Kind.EMPTY:
                self._send(EmptyQueryResponse().encode())
                return
            if portal.prepared.role is not None:
                await self._role(portal.prepared.role)
                portal.rows = deque()
                portal.tag = portal.prepared.role.tag
            elif portal.prepared.cursor is not None:
                columns, rows, tag = await self._cursor(portal.prepared.cursor, portal.params,
                                                        portal)
                if portal.columns is None:
                    portal.columns = columns
                portal.rows = deque(rows)
                portal.tag = tag
                statement = Statement(Kind.UTILITY, tag)
        if portal.rows is None and not portal.done:
            if not self.in_block and not self.batch.implicit and (
                    (statement.kind is Kind.QUERY and self._execute_follows())
                    or statement.kind is Kind.DML
                    or (statement.kind is Kind.QUERY and not statement.read_only)):
                # Outside a block, the Executes up to Sync are one transaction (as in
                # PostgreSQL): asyncpg's executemany is atomic.
                self.batch.implicit = True
                self.pending_begin = True
            columns, rows, tag, notices = await self._run_statement(
                statement, portal.params, portal.prepared.param_types)
            if notices:
                self._send(b"".join(notices))
            if portal.columns is None:
                # not described: the types learned from running it (the client was not
                # told a RowDescription, so it reads the rows as text)
                portal.columns = columns
            portal.rows = deque(rows)
            portal.tag = tag
        rows_left = portal.rows
        if rows_left is None:
            rows_left = portal.rows = deque()
        if portal.columns is not None and rows_left and len(rows_left[0]) != len(
                portal.columns):
            # the schema changed between Describe and Execute (as PostgreSQL says it)
            portal.rows = deque()
            raise TranslationError("cached plan must not change result type", "0A000")
        limit = message.max_rows if message.max_rows > 0 else len(rows_left)
        out: list[bytes] = []
        if portal.columns is not None:
            types = [pgtypes.BY_OID.get(oid) for _, oid, _ in portal.columns]
            formats = portal.result_formats
            for _ in range(min(limit, len(rows_left))):
                row = rows_left.popleft()
                values: list[bytes | None] = []
                for index, (pgtype, value) in enumerate(zip(types, row, strict=True)):
                    fmt = formats[0] if len(formats) == 1 else (
                        formats[index] if index < len(formats) else Format.TEXT)
                    if fmt == Format.BINARY:
                        if pgtype is None or value is None:
                            values.append(None if value is None else str(value).encode())
                        else:
                            values.append(pgtypes.encode_binary(pgtype, value))
                    else:
                        values.append(_text(pgtype, value))
                out.append(encode_data_row(values))
                portal.sent += 1
        if rows_left:
            out.append(PortalSuspended().encode())
        else:
            portal.done = True
            tag = portal.tag
            if statement.kind is Kind.QUERY and statement.tag == "SELECT":
                tag = f"SELECT {portal.sent}"
            out.append(CommandComplete(tag).encode())
        self._send(b"".join(out))

    # -- SQL cursors ----------------------------------------------------------------
    def _cursor_portal(self, name: str) -> Portal:
        portal = self.portals.get(name)
        if portal is None or not portal.cursor:
            raise TranslationError(f'cursor "{name}" does not exist', "34000")
        return portal

    async def _cursor(self, statement: cursors.CursorStatement, params: tuple[Any, ...],
                      via: Portal | None) -> tuple[list[tuple[str, int, int]] | None,
                                                   list[tuple[Any, ...]], str]:
        """DECLARE, FETCH, MOVE or CLOSE: (columns, rows, command tag)."""
        if isinstance(statement, cursors.Declare):
            if not self.in_block and not statement.hold:
                raise TranslationError("DECLARE CURSOR can only be used in transaction blocks",
                                       "25P01")
            if statement.name in self.portals:
                raise TranslationError(f'cursor "{statement.name}" already exists', "42P03")
            query = via.prepared.statement if via is not None else \
                await self._translate(statement.query)
            if query.kind is not Kind.QUERY:
                raise TranslationError("DECLARE CURSOR must be given a query (SELECT, VALUES "
                                       "or a statement with RETURNING)", "42601")
            columns, rows, _, _ = await self._run_statement(query, params)
            self.portals[statement.name] = Portal(
                Prepared(statement.query, query, ()), params,
                (Format.BINARY,) if statement.binary else (),
                rows=cursors.CursorRows(rows, statement.scroll),
                columns=columns, tag="SELECT", cursor=True, hold=statement.hold)
            return None, [], "DECLARE CURSOR"
        if isinstance(statement, cursors.Deallocate):
            if statement.name is None:
                unnamed = self.prepared.get("")
                self.prepared = {"": unnamed} if unnamed is not None else {}
                return None, [], "DEALLOCATE ALL"
            if statement.name not in self.prepared:
                raise TranslationError(f'prepared statement "{statement.name}" does not exist',
                                       "26000")
            del self.prepared[statement.name]
            return None, [], "DEALLOCATE"
        if isinstance(statement, cursors.Fetch):
            portal = self._cursor_portal(statement.name)
            assert isinstance(portal.rows, cursors.CursorRows)
            rows = portal.rows.fetch(statement)
            take = len(rows)
            if statement.move:
                return None, [], f"MOVE {take}"
            return portal.columns, rows, f"FETCH {take}"
        if statement.name is None:
            for name in [n for n, p in self.portals.items() if p.cursor]:
                del self.portals[name]
        else:
            self._cursor_portal(statement.name)
            del self.portals[statement.name]
        return None, [], "CLOSE CURSOR"

    def _send_rows(self, columns: list[tuple[str, int, int]] | None,
                   rows: list[tuple[Any, ...]], tag: str) -> None:
        """A simple-protocol result: RowDescription, DataRows (text), CommandComplete."""
        out: list[bytes] = []
        if columns is not None:
            out.append(encode_row_description(
                [FieldDescription(name=n.replace("\x00", ""), type_oid=oid,
                                  type_modifier=typmod, type_size=_size(oid))
                 for n, oid, typmod in columns]))
            types = [pgtypes.BY_OID.get(oid) for _, oid, _ in columns]
            out += [encode_data_row([_text(t, v) for t, v in zip(types, row, strict=True)])
                    for row in rows]
        out.append(CommandComplete(tag).encode())
        self._send(b"".join(out))

    def _close(self, message: Close) -> None:
        if message.target is Target.STATEMENT:
            self.prepared.pop(message.name, None)
        else:
            self.portals.pop(message.name, None)
        self._send(CloseComplete().encode())

    # -- COPY -----------------------------------------------------------------------
    async def _copy(self, action: CopyAction) -> None:
        assert self.session is not None
        if self.failed:
            raise TranslationError("current transaction is aborted, commands ignored until "
                                   "end of transaction block", "25P02")
        if action.direction == "to":
            await self._copy_out(action)
        else:
            if self.read_only_block or self.session.db.reader:
                raise ReadOnlyError("cannot execute COPY FROM in a read-only transaction")
            await self._copy_in(action)

    async def _copy_columns(self, action: CopyAction) -> list[pgschema.ColumnInfo]:
        assert self.session is not None
        found = await self.session.call(lambda c: pgschema.columns(c, action.table))
        if not found:
            raise TranslationError(f'relation "{action.table}" does not exist', "42P01")
        if not action.columns:
            return list(found)
        by_name = {c.name.lower(): c for c in found}
        out = []
        for name in action.columns:
            if name.lower() not in by_name:
                raise TranslationError(
                    f'column "{name}" of relation "{action.table}" does not exist', "42703")
            out.append(by_name[name.lower()])
        return out

    async def _copy_out(self, action: CopyAction) -> None:
        if action.format == "binary":
            raise TranslationError("COPY TO STDOUT in binary format is not supported by "
                                   "Borealis", "0A000")
        if action.query is not None:
            await self._open(write=False)
            result = await self._sqlite(action.query)
            names = result.columns
            types = [pgtypes.BY_OID.get(oid) for _, oid, _ in self._columns(
                Statement(Kind.QUERY, "SELECT"), result.columns, result.decltypes,
                result.rows)]
        else:
            columns = await self._copy_columns(action)
            names = [c.name for c in columns]
            await self._open(write=False)
            result = await self._sqlite(
                f"SELECT {', '.join(_quote(n) for n in names)} FROM {_quote(action.table)}")
            types = [pgtypes.BY_OID.get(c.type_oid) for c in columns]
        self._send(CopyOutResponse(Format.TEXT, tuple([Format.TEXT] * len(types))).encode())
        chunk: list[bytes] = []
        for line in pgcopy.encode_rows(action, names, types, result.rows):
            chunk.append(CopyData(line).encode())
            if len(chunk) >= COPY_OUT_LINES_PER_WRITE:
                self._send(b"".join(chunk))
                self._flush()
                chunk = []
        chunk.append(b"c\x00\x00\x00\x04")  # CopyDone
        chunk.append(CommandComplete(f"COPY {len(result.rows)}").encode())
        self._send(b"".join(chunk))

    async def _copy_in(self, action: CopyAction) -> None:
        """COPY FROM STDIN: rows are inserted in batches as they arrive, in one
        transaction (the block's, or one of their own); an error fails it all."""
        assert self.session is not None
        columns = await self._copy_columns(action)
        types = [pgtypes.BY_OID[c.type_oid] for c in columns]
        marks = ", ".join(f"?{i + 1}" for i in range(len(columns)))
        insert = (f"INSERT INTO {_quote(action.table)} "
                  f"({', '.join(_quote(c.name) for c in columns)}) VALUES ({marks})")
        column_format = Format.BINARY if action.format == "binary" else Format.TEXT
        self._send(CopyInResponse(column_format, tuple([column_format] * len(columns))).encode())
        decoder = pgcopy.CopyInDecoder(action, types)
        await self._open(write=True)
        own = not self.in_block
        if own:
            await self._sqlite("BEGIN IMMEDIATE")
        total = 0
        batch: list[tuple[Any, ...]] = []
        error: BaseException | None = None
        while True:
            message = await self._next()
            if message is None:  # the client went away mid-COPY
                if own:
                    await self._rollback_quietly()
                self.inbox.appendleft(None)  # the connection's loop must see the end too
                return
            if isinstance(message, PgProtocolError):
                raise message
            if isinstance(message, Flush | Sync):
                continue  # PostgreSQL ignores these during COPY FROM STDIN
            if isinstance(message, CopyFail):
                error = TranslationError(f"COPY from stdin failed: {message.message}", "57014")
                break
            if not isinstance(message, CopyData | CopyDone):
                raise PgProtocolError(f"unexpected message type {type(message).__name__} "
                                      "during COPY from stdin", sqlstate="08P01")
            if error is not None:
                if isinstance(message, CopyDone):
                    break
                continue  # the rest of a COPY that failed: read and dropped
            try:
                if isinstance(message, CopyData):
                    batch.extend(decoder.feed(message.data))
                else:
                    batch.extend(decoder.finish())
                if len(batch) >= COPY_BATCH_ROWS or (isinstance(message, CopyDone) and batch):
                    rows, batch = batch, []
                    await self.session.executemany(insert, rows)
                    total += len(rows)
            except BorealisError as exc:
                error = exc
            if isinstance(message, CopyDone):
                break
        if error is not None:
            if own:
                await self._rollback_quietly()
            else:
                self.failed = True
            self._send(_error(error))
            return
        if own:
            await self._sqlite("COMMIT")
        self._send(CommandComplete(f"COPY {total}").encode())


_TIME_SETTINGS = frozenset({"statement_timeout"})
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$", re.I)
_DURATION_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000,
                "d": 86_400_000}


@functools.lru_cache(maxsize=64)
def duration_ms(text: str) -> float:
    """A time setting (statement_timeout) in milliseconds: '0', '500', '5s', '1min'."""
    if text == "0":
        return 0.0
    match = _DURATION.match(text)
    if match is None:
        raise SqlError(f'invalid value for a time parameter: "{text}"', "22023")
    return float(match.group(1)) * _DURATION_MS[(match.group(2) or "ms").lower()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_ROLE_WORDS = ("create", "alter", "drop", "grant", "revoke")


HEAVY_SQL_CHARS = 4096
HEAVY_SQL_NESTING = 32


def _heavy(sql: str) -> bool:
    """Whether translating ``sql`` might take long enough to stall the event loop."""
    return (len(sql) > HEAVY_SQL_CHARS or sql.count("[") > HEAVY_SQL_NESTING // 8
            or sql.count("(") > HEAVY_SQL_NESTING)


_CURSOR_WORDS = ("declare", "fetch", "move", "close", "dealloc")


def _cursor_statement(sql: str) -> cursors.CursorStatement | None:
    head = sql.lstrip()[:10].lower()
    if not head.startswith(_CURSOR_WORDS):
        return None
    return cursors.parse(sql)


def _role_statement(sql: str) -> roles.RoleStatement | None:
    """The role statement ``sql`` is (None for any other): GRANT and REVOKE raise."""
    head = sql.lstrip()[:6].lower()
    if not head.startswith(_ROLE_WORDS):
        return None
    return roles.parse(sql)


def _size(oid: int) -> int:
    pgtype = pgtypes.BY_OID.get(oid)
    return pgtype.typlen if pgtype is not None else -1


def _oid_of_values(rows: list[tuple[Any, ...]], column: int) -> int:
    for row in rows:
        value = row[column]
        if value is None:
            continue
        if isinstance(value, bool | int):
            return OID_INT8
        if isinstance(value, float):
            return OID_FLOAT8
        if isinstance(value, bytes):
            return OID_BYTEA
        return OID_TEXT
    return OID_TEXT


def _text(pgtype: pgtypes.PgType | None, value: Any) -> bytes | None:
    if value is None:
        return None
    if pgtype is None:
        return str(value).encode()
    return pgtypes.encode_text(pgtype, value)
