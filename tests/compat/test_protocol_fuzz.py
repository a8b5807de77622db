"""Protocol fuzzing against a real writer: random and mutated PostgreSQL messages, seeded.

The issue's requirement: no input a client can send crashes the server; the worst a client
may get is an ErrorResponse and a closed connection. This module sends the writer of the
module's ``cluster`` a deterministic stream of hostile conversations, each on a connection
of its own: random bytes before and after a valid startup; valid conversations (startup
packets with odd parameters, simple Query, Parse/Bind/Describe/Execute/Close/Sync/Flush,
COPY in and out, SQL cursors, DDL on a table of the case's own, Terminate, SSLRequest,
GSSENCRequest, CancelRequest) built with correct framing and then mutated: flipped bits,
truncated bodies, wrong length words, Bind counts that disagree, invalid format codes,
unknown type bytes, messages out of order, NUL bytes and invalid UTF-8 inside strings,
lengths beyond the parser's bounds, parameters that do not decode for their type, deeply
nested and enormous SQL.

The checkers run as the fuzzer goes, as in TigerBeetle's VOPR, not only at the end:
- after every case: the writer process is alive, its log has no ``Traceback``, ``internal
  error``, ``Task exception was never retrieved`` or ``postgres connection failed`` (an
  exception the server did not expect reached a connection's task: a bug, not a rejected
  input), and the server closed its side promptly after the client's EOF;
- after every batch of cases and at the end: a fresh, well-behaved psycopg connection runs
  ``SELECT 1`` and an INSERT whose count is checked, within a deadline.

A log record is pinned on a case by replaying the last few cases one at a time. Every case
derives its own ``random.Random`` from the seed and its index, so any case replays alone; a
failure shows the seed, the case index and the bytes sent (all of them in a file).
Environment: ``BOREALIS_FUZZ_SEED`` (the seed), ``BOREALIS_FUZZ_CASES`` (how many; the
default is sized for CI), ``BOREALIS_FUZZ_ONLY=17,40-45`` (replay just those),
``BOREALIS_FUZZ_BATCH`` (cases between health checks; 1 finds the case that wedged the
server). No hypothesis here: the server is one process shared by the module and its log is
the oracle, so cases run one at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from compat_cluster import Cluster

from borealis.protocol.postgres import types as pgtypes

SEED_DEFAULT = 0xB0_4EA1
CASES_DEFAULT = 800
SEED = int(os.environ.get("BOREALIS_FUZZ_SEED", str(SEED_DEFAULT)), 0)
CASES = int(os.environ.get("BOREALIS_FUZZ_CASES", str(CASES_DEFAULT)))
BATCH_CASES = int(os.environ.get("BOREALIS_FUZZ_BATCH", "100"))
"""Cases between two health checks (the log is checked after every case)."""


def _only(text: str) -> tuple[int, ...]:
    """``17,42,100-120``: the cases to replay."""
    out: list[int] = []
    for item in (i.strip() for i in text.split(",")):
        if "-" in item:
            first, last = item.split("-")
            out += range(int(first), int(last) + 1)
        elif item:
            out.append(int(item))
    return tuple(out)


ONLY = _only(os.environ.get("BOREALIS_FUZZ_ONLY", ""))
CASE_TIMEOUT_S = 5.0
"""Longest a case may take to send and to see the server close after the client's EOF."""
REPLY_IDLE_S = 0.1
"""A patient case stops reading once the server has been quiet this long."""
SETTLE_S = 0.3
"""Time for the server to finish a connection's queued messages after the client left."""
HEALTH_TIMEOUT_S = 20.0
FAILURES_MAX = 20
"""Distinct failures collected before the run stops (each costs a replay to attribute)."""
HEX_SHOWN_BYTES_MAX = 2048
ATTRIBUTION_CASES = 6
"""Recent cases replayed, one at a time, to find the one behind a new log record."""
RECORD_LINES_SHOWN = 60

LOG_MARKERS = ("Traceback", "internal error", "Task exception was never retrieved",
               "postgres connection failed")
_LOG_RECORD_START = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.MULTILINE)

INT32_MAX = 2**31 - 1
PROTOCOL_3_0 = 196608
CANCEL_REQUEST_CODE = 80877102
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
MESSAGE_BYTES_MAX = 2**30 - 2  # parser.MESSAGE_BYTES_MAX_DEFAULT
SMALL_MESSAGE_BYTES_MAX = 10_000  # parser.SMALL_MESSAGE_BYTES_MAX
AUTHENTICATION_BYTES_MAX = 65_535  # parser.AUTHENTICATION_BYTES_MAX
STARTUP_BYTES_MAX = 10_004  # parser.STARTUP_BYTES_MAX_DEFAULT
FRONTEND_TYPES = b"QPBDECSHXdcfFp"

TABLE = "fuzz_items"
HEALTH_TABLE = "fuzz_health"
TABLE_DDL = (f"CREATE TABLE {TABLE} (id serial PRIMARY KEY, n int8, t text, b bytea, "
             "f float8, d date, ts timestamptz, j jsonb, u uuid, ok boolean, "
             "num numeric(10,2), iv interval, arr int4[], small int2, v varchar(4))")
COLUMNS = ("n", "t", "b", "f", "d", "ts", "j", "u", "ok", "num", "iv", "arr", "small", "v")


# --- framing -----------------------------------------------------------------------------


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">i", 4 + len(body)) + body


def _cstring(text: str | bytes) -> bytes:
    return (text.encode() if isinstance(text, str) else text) + b"\x00"


def startup(parameters: list[tuple[bytes, bytes]] | None = None,
            version: int = PROTOCOL_3_0) -> bytes:
    if parameters is None:
        parameters = [(b"user", b"postgres"), (b"database", b"postgres")]
    body = struct.pack(">i", version) + b"".join(_cstring(k) + _cstring(v)
                                                 for k, v in parameters) + b"\x00"
    return struct.pack(">i", 4 + len(body)) + body


def ssl_request() -> bytes:
    return struct.pack(">ii", 8, SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return struct.pack(">ii", 8, GSSENC_REQUEST_CODE)


def cancel_request(process_id: int, secret_key: int) -> bytes:
    return struct.pack(">iiii", 16, CANCEL_REQUEST_CODE, process_id, secret_key)


def query(sql: str | bytes) -> bytes:
    return _message(b"Q", _cstring(sql))


def parse(name: str | bytes, sql: str | bytes, oids: tuple[int, ...] = ()) -> bytes:
    return _message(b"P", _cstring(name) + _cstring(sql) + struct.pack(">H", len(oids))
                    + b"".join(struct.pack(">I", oid & 0xFFFFFFFF) for oid in oids))


def bind(portal: str | bytes, statement: str | bytes, parameter_formats: tuple[int, ...],
         parameters: tuple[bytes | None, ...], result_formats: tuple[int, ...], *,
         parameter_format_count: int | None = None, parameter_count: int | None = None,
         result_format_count: int | None = None) -> bytes:
    """A Bind; the ``*_count`` overrides write a count that disagrees with what follows."""

    def count(override: int | None, actual: int) -> bytes:
        return struct.pack(">H", (actual if override is None else override) & 0xFFFF)

    body = [_cstring(portal), _cstring(statement),
            count(parameter_format_count, len(parameter_formats)),
            b"".join(struct.pack(">h", _int16(f)) for f in parameter_formats),
            count(parameter_count, len(parameters))]
    for value in parameters:
        body.append(struct.pack(">i", -1) if value is None
                    else struct.pack(">i", len(value)) + value)
    body.append(count(result_format_count, len(result_formats)))
    body.append(b"".join(struct.pack(">h", _int16(f)) for f in result_formats))
    return _message(b"B", b"".join(body))


def _int16(value: int) -> int:
    return (value + 2**15) % 2**16 - 2**15


def describe(target: bytes, name: str | bytes) -> bytes:
    return _message(b"D", target + _cstring(name))


def execute(portal: str | bytes, max_rows: int = 0) -> bytes:
    return _message(b"E", _cstring(portal) + struct.pack(">i", max_rows))


def close(target: bytes, name: str | bytes) -> bytes:
    return _message(b"C", target + _cstring(name))


def copy_data(data: bytes) -> bytes:
    return _message(b"d", data)


def copy_fail(reason: str | bytes) -> bytes:
    return _message(b"f", _cstring(reason))


def function_call(oid: int, arguments: tuple[bytes | None, ...]) -> bytes:
    body = struct.pack(">IH", oid, 0) + struct.pack(">H", len(arguments))
    for value in arguments:
        body += struct.pack(">i", -1) if value is None else struct.pack(">i", len(value)) + value
    return _message(b"F", body + struct.pack(">h", 0))


def password(data: bytes) -> bytes:
    return _message(b"p", data)


SYNC = _message(b"S", b"")
FLUSH = _message(b"H", b"")
TERMINATE = _message(b"X", b"")
COPY_DONE = _message(b"c", b"")


# --- what a case is ----------------------------------------------------------------------


@dataclass
class Case:
    """One conversation: ``parts`` (one message each, or a blob) are sent back to back, cut
    into TCP writes at ``cuts``; ``typed_from`` is the index of the first part after the
    startup packet (parts before it have no type byte)."""

    index: int
    generator: str
    parts: list[bytes]
    typed_from: int
    cuts: list[int] = field(default_factory=list)
    patient: bool = False
    """Read the replies until the server goes quiet; otherwise half-close at once."""
    mutations: list[str] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)

    def chunks(self) -> list[bytes]:
        data = self.data
        edges = [0, *sorted(c for c in self.cuts if 0 < c < len(data)), len(data)]
        return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]

    def describe(self) -> str:
        """The case for a failure report: how it was made and its bytes, in hex, part by
        part (up to ``HEX_SHOWN_BYTES_MAX`` of them; the file has all)."""
        cuts = f", TCP writes cut at offsets {self.cuts}" if self.cuts else ""
        lines = [f"case {self.index} (seed {SEED:#x}): generator {self.generator}, "
                 f"mutations {self.mutations or 'none'}, "
                 f"{'patient' if self.patient else 'half-closes at once'}, "
                 f"{len(self.data)} bytes{cuts}"]
        budget = HEX_SHOWN_BYTES_MAX
        for number, part in enumerate(self.parts):
            if budget <= 0:
                lines.append(f"  ... {len(self.parts) - number} more parts")
                break
            more = f" ... ({len(part)} bytes)" if len(part) > budget else ""
            lines.append(f"  part {number}: {part[:budget].hex()}{more}")
            budget -= len(part)
        return "\n".join(lines)


# --- values --------------------------------------------------------------------------------

TEXT_VALUES: tuple[bytes, ...] = (
    b"", b" ", b"abc", b"1", b"-1", b"0", b"2147483647", b"2147483648", b"-2147483649",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775809",
    b"1" * 400, b"9" * 5000, b"1e400", b"-1e-400", b"1e", b"1.2.3", b".", b"-", b"+",
    b"NaN", b"Infinity", b"-inf", b"0x10", b"1_000", b"t", b"yes", b"maybe", b"on", b"2",
    b"2024-02-30", b"0000-01-01", b"99999-01-01", b"2024-01-01 25:00", b"epoch",
    b"infinity", b"-infinity", b"allballs", b"12:00+25", b"2024-01-01T00:00:00+99:99",
    b"1 day 99999999999 hours", b"P1Y", b"P", b"@ ago", b"1 mons -2147483648 days",
    b"{1,2", b"{{1},{2,3}}", b"{", b"[1:2]={1,2}", b'{"a":', b"null", b"[[[[[[[[[[",
    b"[" * 5000, b"{" * 5000, b"\\x4", b"\\xzz", b"\\\\", b"\\", b"a\x00b", b"\xff\xfe",
    b"\xc3(", b"\xed\xa0\x80", b"12345678-1234-1234-1234-12345678901z",
    b"00000000-0000-0000-0000-000000000000", b"(1,2)", b"1 2", b"'", b"''", b"\"",
    b"-0", b"1e-400", b"123456789012345678901234567890.123", b"99999999.999",
)

_TYPE_OIDS = sorted(pgtypes.BY_OID)
_LENGTHS = {t.oid: t.typlen for t in pgtypes.BY_OID.values()}


def text_value(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.7:
        return rng.choice(TEXT_VALUES)
    if roll < 0.85:
        return rng.randbytes(rng.randrange(0, 24))
    return rng.choice(TEXT_VALUES) + rng.choice(TEXT_VALUES)


def binary_value(rng: random.Random, oid: int) -> bytes:
    """Bytes for the binary format of type ``oid``: right-sized, wrong-sized or shaped like
    the type's layout with wild fields."""
    typlen = _LENGTHS.get(oid, -1)
    roll = rng.random()
    if roll < 0.3 and typlen > 0:
        return rng.randbytes(typlen)
    if roll < 0.5 and typlen > 0:
        return rng.randbytes(max(0, typlen + rng.choice((-3, -1, 1, 2))))
    if roll < 0.65:
        return rng.randbytes(rng.randrange(0, 40))
    if roll < 0.8:  # an array header: ndim, has-nulls flag, element OID, then dimensions
        ndim = rng.choice((0, 1, 2, 6, 7, -1, 1000))
        out = struct.pack(">iiI", ndim, rng.choice((0, 1, 2)), rng.choice([*_TYPE_OIDS, 0, 1]))
        for _ in range(min(max(ndim, 0), 8)):
            out += struct.pack(">ii", rng.choice((0, 1, 3, -1, INT32_MAX)), rng.choice((1, 0)))
        for _ in range(rng.randrange(0, 4)):
            size = rng.choice((-1, 0, 4, 8, 100, -5))
            out += struct.pack(">i", size) + rng.randbytes(max(0, min(size, 8)))
        return out
    if roll < 0.9:  # numeric: ndigits, weight, sign, dscale, digits
        ndigits = rng.choice((0, 1, 2, 1000, -1))
        sign = rng.choice((0x0000, 0x4000, 0xC000, 0xD000, 0xF000, 0x1234))
        out = struct.pack(">hhHh", ndigits, rng.choice((0, -1, 32767, -32768)), sign,
                          rng.choice((0, 2, 1000, -1, 16383)))
        return out + b"".join(struct.pack(">H", rng.choice((0, 9999, 10000, 65535)))
                              for _ in range(rng.randrange(0, 4)))
    # jsonb's version byte, or text, with something wrong in it
    return bytes([rng.choice((1, 2, 0))]) + rng.choice(TEXT_VALUES)


# --- SQL -----------------------------------------------------------------------------------

SQL_CORPUS: tuple[str, ...] = (
    "SELECT 1", "SELECT 1; SELECT 2", "", ";", " -- a comment", "/* c */", "SELECT $1",
    "SELECT $1::int4 + 1", "SELECT $1::text || $2::text", "SELECT $2", "SELECT $0",
    "SELECT $99999999999", "SELECT $1, $1::int8",
    f"INSERT INTO {TABLE} (n, t) VALUES ($1, $2)",
    f"INSERT INTO {TABLE} (n, t) VALUES (1, 'x') RETURNING *",
    f"INSERT INTO {TABLE} (d, ts, num) VALUES ($1, $2, $3) RETURNING id, d, ts, num",
    f"SELECT * FROM {TABLE} ORDER BY id DESC LIMIT 3",
    f"SELECT * FROM {TABLE} WHERE n = $1 LIMIT $2",
    f"UPDATE {TABLE} SET t = t || 'y' WHERE n = $1", f"DELETE FROM {TABLE} WHERE n < 0",
    f"DELETE FROM {TABLE} WHERE id % 5 = 0", f"TRUNCATE {TABLE}",
    "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT s1", "ROLLBACK TO SAVEPOINT s1",
    "RELEASE SAVEPOINT s1", "BEGIN READ ONLY", "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "END", "ABORT", "SET extra_float_digits = 3", "SET application_name = 'fuzz'",
    "SET statement_timeout = '1e400'", "SET DateStyle = 'German'", "SET TimeZone = 'Mars/Base'",
    "SET client_encoding = 'LATIN1'", "SET search_path = ''", "SET LOCAL lock_timeout = -1",
    "SET intervalstyle = 'sql_standard'", "SET bytea_output = 'escape'", "SET no.such = 1",
    "SHOW server_version", "SHOW all", "SHOW transaction isolation level", "SHOW nothing",
    "RESET ALL", "DISCARD ALL", "VACUUM", "ANALYZE",
    f"COPY {TABLE} (n, t) FROM STDIN", f"COPY {TABLE} (n, t, b) FROM STDIN (FORMAT csv)",
    f"COPY {TABLE} (n, t) FROM STDIN (FORMAT csv, HEADER true)",
    f"COPY {TABLE} (n, f, d, j) FROM STDIN (FORMAT binary)",
    f"COPY {TABLE} (n, arr, iv) FROM STDIN (DELIMITER ',', NULL 'x')",
    f"COPY {TABLE} TO STDOUT", f"COPY {TABLE} (n, t) TO STDOUT (FORMAT csv, HEADER)",
    "COPY (SELECT 1, 'a') TO STDOUT (FORMAT csv)", "COPY no_such_table FROM STDIN",
    "SELECT * FROM no_such_table", "SELEC 1", "SELECT 'unterminated", 'SELECT "unterminated',
    "SELECT $$x", "/* unterminated", "SELECT E'\\u12'", "SELECT E'\\0'",
    "SELECT 2147483647::int4 + 1", "SELECT 9223372036854775807::int8 + 1",
    "SELECT -32768::int2 - 1", "SELECT 1e308::float8 * 10", "SELECT 'NaN'::float8",
    "SELECT 'Infinity'::float4", "SELECT 1/0", "SELECT 0.1::numeric(1000, 999)",
    "SELECT '2024-13-01'::date", "SELECT now()", "SELECT ARRAY[1, 2, NULL]",
    "SELECT ARRAY[[1], [2]]", "SELECT '{\"a\": [1, {\"b\": null}]}'::jsonb",
    "SELECT gen_random_uuid()", "SELECT 'abc'::bytea", "SELECT '\\xff00'::bytea",
    "SELECT interval '1 day'", "SELECT 1.5::numeric(3, 1)", "SELECT true, NULL, 'x'::varchar(1)",
    "SELECT 'infinity'::timestamptz", "SELECT '12:00'::time", "SELECT 99999999999999999999",
    "SELECT x'ff'", "SELECT count(*) FROM pg_catalog.pg_type", "SELECT current_setting('x')",
    "SELECT pg_backend_pid()", "SELECT version()", "SELECT $1::regclass",
    "SELECT 'fuzz_items'::regclass", "SELECT 1 UNION SELECT 'a'", "SELECT ROW(1, 2)",
    "VALUES (1, 'a'), (2, 'b')", "WITH x AS (SELECT 1) SELECT * FROM x",
    "SELECT 1 FROM generate_series(1, 3)", "EXPLAIN SELECT 1", "LISTEN x", "NOTIFY x",
    "PREPARE p AS SELECT 1", "EXECUTE p", "DEALLOCATE ALL", "FETCH ALL FROM c",
    "DECLARE c CURSOR FOR SELECT 1", "LOCK TABLE fuzz_items", "CHECKPOINT",
    # SQL cursors and prepared statements share their names with the protocol's portals
    # and statements (p1, s1 below)
    f"DECLARE p1 CURSOR WITH HOLD FOR SELECT n, t FROM {TABLE}",
    f"DECLARE c1 CURSOR FOR SELECT * FROM {TABLE}", "DECLARE c1 BINARY CURSOR FOR SELECT 1",
    "FETCH 1 FROM p1", "FETCH ALL IN c1", "MOVE 2 IN c1", "FETCH PRIOR FROM c1",
    "FETCH FORWARD 99999999999 FROM p1", "CLOSE p1", "CLOSE ALL", "CLOSE nope",
    "PREPARE s1 (int) AS SELECT $1", "EXECUTE s1 (1)", "EXECUTE s1 ('x')", "DEALLOCATE s1",
    "SET statement_timeout = 1", "SET statement_timeout = 0", "SELECT pg_cancel_backend(1000)",
    "CREATE ROLE fuzz_role", "DROP ROLE IF EXISTS fuzz_role", "ALTER ROLE nope LOGIN",
    f"SELECT t FROM {TABLE} WHERE t LIKE $1", f"SELECT n::int4 FROM {TABLE}",
    f"SELECT arr, iv, j, u FROM {TABLE} ORDER BY id DESC LIMIT 2",
)


def nested_sql(rng: random.Random) -> str:
    """Deeply nested or enormous SQL text."""
    depth = rng.choice((30, 200, 1000, 5000, 20_000))
    form = rng.choice(("parens", "subquery", "plus", "not", "case", "array", "in_list",
                       "string", "statements", "comments", "identifier", "parameters",
                       "unary", "json", "cast"))
    if form == "parens":
        return "SELECT " + "(" * depth + "1" + ")" * depth
    if form == "subquery":
        depth = min(depth, 5000)
        return "SELECT " + "(SELECT " * depth + "1" + ")" * depth
    if form == "plus":
        return "SELECT " + "+".join(["1"] * depth)
    if form == "not":
        return "SELECT " + "NOT " * depth + "true"
    if form == "case":
        depth = min(depth, 5000)
        return "SELECT " + "CASE WHEN true THEN " * depth + "1" + " END" * depth
    if form == "array":
        return "SELECT " + "ARRAY[" * depth + "1" + "]" * depth
    if form == "in_list":
        return "SELECT 1 IN (" + ", ".join(str(i) for i in range(depth * 5)) + ")"
    if form == "string":
        return "SELECT '" + "x" * (depth * 50) + "'"
    if form == "statements":
        return "SELECT 1;" * min(depth, 2000)
    if form == "comments":
        return "/*" * depth + "*/" * depth + " SELECT 1"
    if form == "identifier":
        return "SELECT 1 AS " + "a" * (depth * 10)
    if form == "parameters":
        return "SELECT " + ", ".join(f"${i}" for i in range(1, min(depth, 70_000) + 1))
    if form == "unary":
        return "SELECT " + "-" * depth + "1"
    if form == "json":
        return "SELECT '" + "[" * depth + "]" * depth + "'::jsonb"
    return "SELECT 1" + "::text" * depth


def sql_text(rng: random.Random) -> str:
    if rng.random() < 0.08:
        return nested_sql(rng)
    return rng.choice(SQL_CORPUS)


# --- generators of conversations --------------------------------------------------------

Generator = Callable[[random.Random], tuple[list[bytes], int]]
"""A conversation: its parts and the index of the first typed one."""


def gen_random_before_startup(rng: random.Random) -> tuple[list[bytes], int]:
    roll = rng.random()
    if roll < 0.4:
        return [rng.randbytes(rng.randrange(0, 64))], 1
    # a plausible length word, then random code and body
    length = rng.choice((0, 4, 7, 8, 9, 16, 17, 100, STARTUP_BYTES_MAX, STARTUP_BYTES_MAX + 1,
                         rng.randrange(0, 2**32)))
    code = rng.choice((PROTOCOL_3_0, PROTOCOL_3_0 + 1, 0x20000, 0x40000, CANCEL_REQUEST_CODE,
                       SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, rng.randrange(0, 2**32)))
    body = struct.pack(">I", code) + rng.randbytes(rng.randrange(0, 40))
    return [struct.pack(">I", length & 0xFFFFFFFF) + body], 1


def gen_random_after_startup(rng: random.Random) -> tuple[list[bytes], int]:
    parts = [startup()]
    roll = rng.random()
    if roll < 0.3:
        parts.append(rng.randbytes(rng.randrange(1, 80)))
    else:  # well-framed messages of real types with random bodies
        for _ in range(rng.randrange(1, 6)):
            kind = bytes([rng.choice(FRONTEND_TYPES)])
            parts.append(_message(kind, rng.randbytes(rng.randrange(0, 30))))
    if rng.random() < 0.5:
        parts.append(query("SELECT 1"))
    return parts, 1


def startup_parameter(rng: random.Random) -> tuple[bytes, bytes]:
    names = (b"user", b"database", b"options", b"application_name", b"client_encoding",
             b"DateStyle", b"TimeZone", b"extra_float_digits", b"search_path",
             b"statement_timeout", b"default_transaction_read_only", b"IntervalStyle",
             b"bytea_output", b"replication", b"_pq_.unknown", b"lock_timeout",
             b"standard_conforming_strings", b"server_version", b"is_superuser", b"work_mem",
             b"no.such", b"nosuch", b"", b"\xff", b"search_path\x01")
    values = (b"postgres", b"fuzz_user", b"fuzz_nologin", b"", b"0", b"-1", b"3",
              b"99999999999999999999", b"on", b"off", b"UTF8", b"LATIN1", b"SQL_ASCII",
              b"ISO, MDY", b"German", b"UTC", b"Mars/Base",
              b"-c extra_float_digits=2", b"-c statement_timeout=abc", b"--DateStyle=x",
              b"-c search_path=a\\ b", b"-c", b"\xff\xfe", b"x" * 3000, b"true", b"database",
              b"'quoted'", b"1e400", b"-c TimeZone=Europe/Paris -c work_mem=1GB")
    return rng.choice(names), rng.choice(values)


def gen_startup(rng: random.Random) -> tuple[list[bytes], int]:
    """Startup packets with odd parameters, versions and encryption requests."""
    parts: list[bytes] = []
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        parts.append(rng.choice((ssl_request(), gssenc_request())))
    parameters = [(b"user", rng.choice((b"postgres", b"postgres", b"fuzz_user",
                                         b"fuzz_nologin"))), (b"database", b"postgres")]
    if rng.random() < 0.15:
        parameters = parameters[rng.randrange(0, 2):rng.randrange(0, 3)]
    for _ in range(rng.randrange(0, 4)):
        parameters.insert(rng.randrange(0, len(parameters) + 1), startup_parameter(rng))
    version = PROTOCOL_3_0
    if rng.random() < 0.15:
        version = rng.choice((PROTOCOL_3_0 + 1, PROTOCOL_3_0 + 0xFFFF, 0x20000, 0x40000, 0,
                              CANCEL_REQUEST_CODE, SSL_REQUEST_CODE, GSSENC_REQUEST_CODE))
    if rng.random() < 0.15:
        parts.append(cancel_request(rng.choice((1000, 1001, 0, -1)), rng.randrange(-2**31,
                                                                                  2**31)))
    parts.append(startup(parameters, version))
    typed_from = len(parts)
    parts.append(query(rng.choice(("SELECT 1", "SHOW all", "SELECT now()", "SHOW DateStyle"))))
    if rng.random() < 0.3:
        parts.append(TERMINATE)
    return parts, typed_from


def gen_simple(rng: random.Random) -> tuple[list[bytes], int]:
    parts = [startup()]
    for _ in range(rng.randrange(1, 5)):
        parts.append(query(sql_text(rng)))
    return parts, 1


def gen_extended(rng: random.Random) -> tuple[list[bytes], int]:
    """A well-formed extended-protocol batch: Parse, Bind, Describe, Execute, Close, Sync."""
    parts = [startup()]
    for _ in range(rng.randrange(1, 4)):
        name = rng.choice(("", "", "s1", "s2"))
        portal = rng.choice(("", "", "p1"))
        sql = sql_text(rng)
        oids = tuple(rng.choice((0, 23, 20, 25, 17, 701, 16, 1700, 1082, 1184, 3802, 2950))
                     for _ in range(rng.choice((0, 0, 1, 2, 3))))
        parts.append(parse(name, sql, oids))
        if rng.random() < 0.5:
            parts.append(describe(b"S", name))
        count = rng.choice((0, 0, 1, 1, 2, 3))
        formats = tuple(rng.choice((0, 1)) for _ in range(rng.choice((0, 1, count))))
        values = tuple(None if rng.random() < 0.1 else text_value(rng) for _ in range(count))
        results = tuple(rng.choice((0, 1)) for _ in range(rng.choice((0, 1, 2, 5))))
        parts.append(bind(portal, name, formats, values, results))
        if rng.random() < 0.5:
            parts.append(describe(b"P", portal))
        for _ in range(rng.choice((1, 1, 2, 3))):
            parts.append(execute(portal, rng.choice((0, 0, 1, 2))))
        if rng.random() < 0.3:
            parts.append(close(rng.choice((b"S", b"P")), rng.choice((name, portal))))
        parts.append(rng.choice((SYNC, SYNC, SYNC, FLUSH)))
    return parts, 1


def gen_typed_parameters(rng: random.Random) -> tuple[list[bytes], int]:
    """A parameter of every type, in text and binary, fitting or not; results in both."""
    parts = [startup()]
    for _ in range(rng.randrange(1, 4)):
        oid = rng.choice(_TYPE_OIDS)
        roll = rng.random()
        if roll < 0.4:
            statement = parse("", f"SELECT $1::{pgtypes.BY_OID[oid].name}")
        elif roll < 0.7:
            statement = parse("", "SELECT $1", (oid,))
        else:
            column = rng.choice(COLUMNS)
            statement = parse("", f"INSERT INTO {TABLE} ({column}) VALUES ($1) "
                                  f"RETURNING {column}")
        binary = rng.random() < 0.5
        value = binary_value(rng, oid) if binary else text_value(rng)
        parts += [statement,
                  bind("", "", (int(binary),), (value,), (rng.choice((0, 1)),)),
                  describe(b"P", ""), execute("", rng.choice((0, 1))), SYNC]
    return parts, 1


def gen_results(rng: random.Random) -> tuple[list[bytes], int]:
    """Edge values out in text and binary, through portals run a row at a time."""
    parts = [startup()]
    sql = rng.choice(SQL_CORPUS)
    if rng.random() < 0.5:
        column = rng.choice(COLUMNS)
        sql = f"SELECT {column} FROM {TABLE} ORDER BY id DESC LIMIT 5"
    results = tuple(rng.choice((0, 1, 1)) for _ in range(rng.choice((1, 1, 2, 3))))
    parts += [parse("", sql), bind("p", "", (), (), results)]
    if rng.random() < 0.5:
        parts.append(describe(b"P", "p"))
    for _ in range(rng.randrange(1, 4)):
        parts.append(execute("p", rng.choice((0, 1, 2))))
    parts += [close(b"P", "p"), execute("p"), SYNC]
    return parts, 1


def copy_rows(rng: random.Random) -> bytes:
    fields = [b"1", b"a", b"\\N", b"", b"\\x00ff", b"x\ty", b'"q', b'"a""b"', b"\\", b"1.5",
              b"2024-01-01", b"{1,2}", b"1 day", b"\xff", b"\\.", b"NaN", b'"', b'a"b', b"x"]
    rows = []
    for _ in range(rng.randrange(0, 5)):
        delimiter = rng.choice((b"\t", b",", b"\t"))
        rows.append(delimiter.join(rng.choice(fields) for _ in range(rng.randrange(0, 5))))
    return b"\n".join(rows) + rng.choice((b"\n", b"", b"\r\n", b"\n\\.\n"))


def binary_copy(rng: random.Random) -> bytes:
    out = b"PGCOPY\n\xff\r\n\x00" if rng.random() < 0.8 else rng.randbytes(11)
    out += struct.pack(">iI", rng.choice((0, 0, 0x10000, -1)), rng.choice((0, 0, 4, 2**31)))
    for _ in range(rng.randrange(0, 3)):
        count = rng.choice((4, 4, 0, 1, 5, -2, 32767))
        out += struct.pack(">h", count)
        for _ in range(max(0, min(count, 6))):
            size = rng.choice((-1, 0, 4, 8, 3, -7, 1000))
            out += struct.pack(">i", size) + rng.randbytes(max(0, min(size, 12)))
    if rng.random() < 0.7:
        out += struct.pack(">h", -1)
    return out


def gen_copy(rng: random.Random) -> tuple[list[bytes], int]:
    parts = [startup()]
    if rng.random() < 0.3:
        parts.append(query("BEGIN"))
    sql = rng.choice([s for s in SQL_CORPUS if s.startswith("COPY")])
    parts.append(query(sql))
    binary = "binary" in sql
    for _ in range(rng.randrange(0, 4)):
        roll = rng.random()
        if roll < 0.75:
            parts.append(copy_data(binary_copy(rng) if binary else copy_rows(rng)))
        elif roll < 0.85:
            parts.append(rng.choice((FLUSH, SYNC)))
        else:  # what does not belong in COPY IN
            parts.append(rng.choice((query("SELECT 1"), parse("", "SELECT 1"),
                                     execute(""), describe(b"S", ""), password(b"x\x00"))))
    if rng.random() < 0.2:
        return parts, 1  # the client goes away in the middle of the COPY
    parts.append(rng.choice((COPY_DONE, COPY_DONE, copy_fail("stop"), copy_fail(b"\xff\x00"))))
    parts.append(query(rng.choice(("SELECT 1", "COMMIT", f"SELECT count(*) FROM {TABLE}"))))
    return parts, 1


def gen_out_of_order(rng: random.Random) -> tuple[list[bytes], int]:
    """Messages where the protocol does not expect them."""
    pool = [
        bind("", "", (), (), ()), bind("p", "nope", (), (), ()), execute(""), execute("nope"),
        execute("", 1), describe(b"P", "nope"), describe(b"S", "nope"), close(b"P", "nope"),
        close(b"S", ""), copy_data(b"1\tx\n"), COPY_DONE, copy_fail("x"), SYNC, FLUSH,
        password(b"secret\x00"), password(b"SCRAM-SHA-256\x00\xff\xff\xff\xff"),
        function_call(1598, (b"x",)), parse("s1", "SELECT 1"), parse("s1", "SELECT 2"),
        bind("p1", "s1", (), (), ()), bind("p1", "s1", (), (), ()), execute("p1", 1),
        close(b"S", "s1"), execute("p1"), query("SELECT 1"), query("BEGIN"),
        query("ROLLBACK"), query("SELECT nope"), startup(), ssl_request(), cancel_request(1, 2),
    ]
    parts = [startup()]
    parts += [rng.choice(pool) for _ in range(rng.randrange(1, 10))]
    if rng.random() < 0.5:
        parts.append(rng.choice((SYNC, TERMINATE)))
    return parts, 1


def gen_bind_counts(rng: random.Random) -> tuple[list[bytes], int]:
    """Bind's counts and codes disagreeing with each other and with the statement."""
    parts = [startup(), parse("s", rng.choice(("SELECT $1::int4, $2::text", "SELECT 1",
                                                 "SELECT $1")))]
    values = tuple(rng.choice((b"1", b"x", None, b"\x00\x00\x00\x01"))
                   for _ in range(rng.choice((0, 1, 2, 3))))
    formats = tuple(rng.choice((0, 1, 2, -1, 32767, -32768))
                    for _ in range(rng.choice((0, 1, 2, 3, len(values)))))
    results = tuple(rng.choice((0, 1, 2, -1)) for _ in range(rng.choice((0, 1, 2, 3))))
    overrides: dict[str, int] = {}
    for key in ("parameter_format_count", "parameter_count", "result_format_count"):
        if rng.random() < 0.4:
            overrides[key] = rng.choice((0, 1, 2, 3, 100, 65535))
    parts.append(bind("", "s", formats, values, results, **overrides))
    parts += [describe(b"P", ""), execute(""), SYNC, query("SELECT 1")]
    return parts, 1


def gen_cancel(rng: random.Random) -> tuple[list[bytes], int]:
    parts: list[bytes] = []
    if rng.random() < 0.3:
        parts.append(ssl_request())
    parts.append(cancel_request(rng.randrange(-2**31, 2**31), rng.randrange(-2**31, 2**31)))
    if rng.random() < 0.5:
        parts.append(rng.choice((startup(), query("SELECT 1"), rng.randbytes(3))))
    return parts, len(parts)


DDL_CORPUS: tuple[str, ...] = (
    "CREATE TABLE {t} (a int PRIMARY KEY, b text, c int8 DEFAULT 7, d numeric(5, 2))",
    "CREATE TABLE IF NOT EXISTS {t} (a serial, b varchar(3) NOT NULL, UNIQUE (b))",
    "ALTER TABLE {t} ADD COLUMN e jsonb", "ALTER TABLE {t} ADD COLUMN f int DEFAULT 1",
    "ALTER TABLE {t} DROP COLUMN b", "ALTER TABLE {t} DROP COLUMN IF EXISTS nope",
    "ALTER TABLE {t} RENAME COLUMN a TO z", "ALTER TABLE {t} RENAME TO {t}_r",
    "ALTER TABLE {t} ADD PRIMARY KEY (c)", "ALTER TABLE {t} ALTER COLUMN b TYPE int",
    "CREATE INDEX ON {t} (c)", "CREATE UNIQUE INDEX {t}_i ON {t} (b)", "DROP INDEX {t}_i",
    "INSERT INTO {t} (a, b) VALUES (1, 'x'), (2, NULL)", "SELECT * FROM {t}",
    "UPDATE {t} SET b = b || b", "TRUNCATE {t} RESTART IDENTITY",
    "CREATE VIEW {t}_v AS SELECT * FROM {t}", "SELECT * FROM {t}_v", "DROP VIEW {t}_v",
    "CREATE SEQUENCE {t}_s", "SELECT nextval('{t}_s')", "DROP SEQUENCE {t}_s",
    "CREATE TABLE {t}_c AS SELECT * FROM {t}", "DROP TABLE {t}_c", "DROP TABLE {t}",
    "CREATE TEMP TABLE {t}_tmp (a int)", "COPY {t} (a, b) FROM STDIN", "COPY {t} TO STDOUT",
)


def gen_ddl(rng: random.Random) -> tuple[list[bytes], int]:
    """DDL on a table of the case's own, with statements prepared and portals described
    before the schema changes under them."""
    table = f"fuzz_t{rng.randrange(10**9)}"
    parts = [startup(), query(f"DROP TABLE IF EXISTS {table}"), query(DDL_CORPUS[0]
                                                                      .format(t=table))]
    for _ in range(rng.randrange(2, 7)):
        sql = rng.choice(DDL_CORPUS).format(t=table)
        roll = rng.random()
        if roll < 0.5:
            parts.append(query(sql))
        elif roll < 0.8:
            parts += [parse("", sql), bind("", "", (), (), (rng.choice((0, 1)),)),
                      execute(""), SYNC]
        else:  # described before the DDL that follows, run after it
            parts += [parse("", f"SELECT * FROM {table}"),
                      bind("pd", "", (), (), (rng.choice((0, 1)),)), describe(b"P", "pd"),
                      query(sql), execute("pd"), SYNC]
        if "COPY" in sql and "STDIN" in sql:
            parts += [copy_data(b"5\tx\n6\t\\N\n"), COPY_DONE]
    parts += [query(f"DROP TABLE IF EXISTS {table}"), query(f"DROP TABLE IF EXISTS {table}_r")]
    return parts, 1


GENERATORS: dict[str, tuple[float, Generator]] = {
    "random_before_startup": (0.07, gen_random_before_startup),
    "random_after_startup": (0.08, gen_random_after_startup),
    "startup": (0.08, gen_startup),
    "simple": (0.12, gen_simple),
    "extended": (0.14, gen_extended),
    "typed_parameters": (0.14, gen_typed_parameters),
    "results": (0.08, gen_results),
    "copy": (0.1, gen_copy),
    "out_of_order": (0.08, gen_out_of_order),
    "bind_counts": (0.08, gen_bind_counts),
    "cancel": (0.03, gen_cancel),
    "ddl": (0.05, gen_ddl),
}


# --- mutations -----------------------------------------------------------------------------

BAD_UTF8 = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80")


def _typed(part: bytes) -> bool:
    return len(part) >= 5 and part[0] in FRONTEND_TYPES


def _with_length(part: bytes, length: int, *, typed: bool) -> bytes:
    word = struct.pack(">I", length & 0xFFFFFFFF)
    return part[:1] + word + part[5:] if typed else word + part[4:]


def _refit(part: bytes, body: bytes, *, typed: bool) -> bytes:
    """The message with a new body and the length word that fits it."""
    if typed:
        return part[:1] + struct.pack(">i", 4 + len(body)) + body
    return struct.pack(">i", 4 + len(body)) + body


def mutate(rng: random.Random, case: Case) -> str:
    """Apply one mutation to the case's parts, in place; returns what it did."""
    parts, typed_from = case.parts, case.typed_from
    index = rng.randrange(len(parts))
    part = parts[index]
    typed = index >= typed_from and _typed(part)
    header = 5 if typed else 4
    body = part[header:]
    kind = rng.choice(("flip", "flip", "truncate", "truncate_refit", "extend_refit", "length",
                       "length", "type", "nul", "utf8", "duplicate", "drop", "swap", "insert",
                       "oversize"))
    if kind == "flip":
        data = bytearray(part)
        for _ in range(rng.randrange(1, 9)):
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        parts[index] = bytes(data)
    elif kind == "truncate":
        parts[index] = part[:rng.randrange(len(part))] if part else part
    elif kind == "truncate_refit" and len(body) > 0:
        parts[index] = _refit(part, body[:rng.randrange(len(body))], typed=typed)
    elif kind == "extend_refit" and len(part) >= header:
        parts[index] = _refit(part, body + rng.randbytes(rng.randrange(1, 9)), typed=typed)
    elif kind == "length" and len(part) >= header:
        actual = len(part) - (1 if typed else 0)
        length = rng.choice((0, 1, 3, 4, 7, actual - 1, actual - 2, actual + 1, actual + 100,
                             -1, -(2**31), INT32_MAX, MESSAGE_BYTES_MAX,
                             MESSAGE_BYTES_MAX + 1, SMALL_MESSAGE_BYTES_MAX,
                             SMALL_MESSAGE_BYTES_MAX + 1, AUTHENTICATION_BYTES_MAX + 1,
                             STARTUP_BYTES_MAX, STARTUP_BYTES_MAX + 1, 2**31, 2**32 - 5))
        parts[index] = _with_length(part, length, typed=typed)
        kind = f"length={length}"
    elif kind == "type" and typed:
        code = rng.choice((rng.randrange(256), 0, ord("Z"), ord("R"), ord("q"), ord("x")))
        parts[index] = bytes([code]) + part[1:]
        kind = f"type={code}"
    elif kind in ("nul", "utf8") and len(part) > header:
        at = header + rng.randrange(len(body) + 1)
        insert = b"\x00" if kind == "nul" else rng.choice(BAD_UTF8)
        parts[index] = _refit(part, part[header:at] + insert + part[at:], typed=typed)
    elif kind == "duplicate":
        parts.insert(index, part)
        case.typed_from += index < typed_from
    elif kind == "drop" and len(parts) > 1:
        del parts[index]
        case.typed_from -= index < typed_from
    elif kind == "swap" and len(parts) > 1:
        other = rng.randrange(len(parts))
        parts[index], parts[other] = parts[other], parts[index]
    elif kind == "insert":
        extra = rng.choice((SYNC, FLUSH, TERMINATE, COPY_DONE, copy_data(b"x\n"), execute(""),
                            copy_fail("x"), password(b"p\x00"), ssl_request(), startup(),
                            bind("", "", (), (), ()), describe(b"P", ""),
                            rng.randbytes(rng.randrange(1, 6))))
        at = index + rng.randrange(2)
        parts.insert(at, extra)
        case.typed_from += at < typed_from
    elif kind == "oversize" and typed:
        limit = (SMALL_MESSAGE_BYTES_MAX if part[:1] in b"DECSHX" else
                 AUTHENTICATION_BYTES_MAX if part[:1] == b"p" else MESSAGE_BYTES_MAX)
        length = limit + rng.choice((1, 2, 1000))
        parts[index] = _with_length(part, length, typed=True) + rng.randbytes(64)
        kind = f"oversize={length}"
    else:
        return "none"
    return f"{kind}@{index}"


def make_case(seed: int, index: int) -> Case:
    """Case ``index`` of the run with ``seed``, from its own generator: the same bytes on
    every run and whatever other cases are run."""
    rng = random.Random(f"{seed}/{index}")
    names = list(GENERATORS)
    name = rng.choices(names, weights=[GENERATORS[n][0] for n in names])[0]
    parts, typed_from = GENERATORS[name][1](rng)
    case = Case(index, name, parts, typed_from)
    if rng.random() < 0.6:
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            case.mutations.append(mutate(rng, case))
    total = len(case.data)
    if total > 1 and rng.random() < 0.4:
        case.cuts = sorted(rng.randrange(1, total) for _ in range(rng.randrange(1, 6)))
    case.patient = rng.random() < 0.5
    return case


# --- running a case -------------------------------------------------------------------------


@dataclass
class Outcome:
    replies: bytes
    closed_by_server: bool
    seconds: float
    hang: str | None = None


def run_case(address: tuple[str, int], case: Case) -> Outcome:
    """Send the case on a fresh connection. A patient case reads replies until the server
    closes or goes quiet; the other half-closes at once (the server still handles what it
    queued). Either way the client then half-closes and the server must close promptly."""
    started = time.monotonic()
    replies = bytearray()
    closed = False
    with socket.create_connection(address, timeout=CASE_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for chunk in case.chunks():
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection before everything was sent: allowed
        except TimeoutError:
            return Outcome(bytes(replies), closed, time.monotonic() - started,
                           hang=f"the server read nothing for {CASE_TIMEOUT_S}s")
        if case.patient:
            sock.settimeout(REPLY_IDLE_S)
            while time.monotonic() - started < CASE_TIMEOUT_S:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                except ConnectionResetError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                replies += chunk
        if not closed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + CASE_TIMEOUT_S
            sock.settimeout(CASE_TIMEOUT_S)
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                except TimeoutError:
                    return Outcome(bytes(replies), closed, time.monotonic() - started,
                                   hang=f"the server kept the connection open {CASE_TIMEOUT_S}s "
                                        "after the client's EOF")
                if not chunk:
                    break
                replies += chunk
                if time.monotonic() > deadline:
                    return Outcome(bytes(replies), closed, time.monotonic() - started,
                                   hang="the server kept sending after the client's EOF")
    return Outcome(bytes(replies), closed, time.monotonic() - started)


# --- the oracles --------------------------------------------------------------------------


class LogWatch:
    """New records of the writer's log that show a bug, since the last look."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size

    def problems(self) -> list[str]:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        end = data.rfind(b"\n") + 1  # a record still being written waits for the next look
        data = data[:end]
        self.offset += end
        if not any(marker.encode() in data for marker in LOG_MARKERS):
            return []
        starts = [m.start() for m in _LOG_RECORD_START.finditer(data)]
        if not starts or starts[0] != 0:
            starts.insert(0, 0)
        records = [data[a:b] for a, b in itertools.pairwise([*starts, len(data)])]
        return [record.decode("utf-8", "replace").rstrip() for record in records
                if any(marker.encode() in record for marker in LOG_MARKERS)]


def signature(record: str) -> str:
    """What makes two log records the same bug: the innermost server frame and the
    exception's type (the message varies with the input)."""
    frames = re.findall(r'File "([^"]+)", line \d+, in (\w+)', record)
    ours = [f"{Path(file).name}:{function}" for file, function in frames
            if "borealis" in file] or [f"{Path(file).name}:{function}" for file, function in frames]
    exception = ""
    for line in reversed(record.splitlines()):
        match = re.match(r"^([\w.]+(?:Error|Exception|Exit|Interrupt|Warning|error)\b)", line)
        if match:
            exception = match.group(1)
            break
    first = record.splitlines()[0] if record else ""
    first = re.sub(r"^\S+ \S+ \w+ ", "", first)  # the time and level
    first = re.sub(r"\d+", "N", first)[:80]
    return f"{exception or first} at {ours[-1] if ours else '?'}"


class Health:
    """A well-behaved client on a fresh connection: SELECT 1 and a write that is counted."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.writes = 0
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {HEALTH_TABLE} (id serial PRIMARY KEY, n int8 NOT NULL)")
            conn.execute(TABLE_DDL)
            conn.execute("CREATE ROLE fuzz_user LOGIN")
            conn.execute("CREATE ROLE fuzz_nologin NOLOGIN")

    def check(self) -> str | None:
        """None if the writer is healthy, else what is wrong. The client runs in a daemon
        thread so that a server that never answers fails the check instead of hanging it."""
        if not self.cluster.writer.alive():
            return "the writer process is dead"
        outcome: list[str | None] = []
        stages: list[str] = []
        worker = threading.Thread(target=lambda: outcome.append(self._client(stages)),
                                  daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(HEALTH_TIMEOUT_S)
        if not outcome:
            return (f"a well-behaved client got no answer in {HEALTH_TIMEOUT_S:.0f}s "
                    f"(stuck at: {stages[-1] if stages else 'nothing yet'})")
        if outcome[0] is None and time.monotonic() - started > HEALTH_TIMEOUT_S:
            return f"a well-behaved client took {time.monotonic() - started:.1f}s"
        return outcome[0]

    def _client(self, stages: list[str]) -> str | None:
        number = self.writes + 1
        try:
            stages.append("connect")
            with psycopg.connect(self.cluster.dsn(), autocommit=True) as conn:
                stages.append("SELECT 1")
                if conn.execute("SELECT 1").fetchone() != (1,):
                    return "SELECT 1 did not return 1"
                stages.append(f"INSERT INTO {HEALTH_TABLE}")
                conn.execute(f"INSERT INTO {HEALTH_TABLE} (n) VALUES (%s)", (number,))
                stages.append(f"SELECT count(*) FROM {HEALTH_TABLE}")
                row = conn.execute(f"SELECT count(*), max(n) FROM {HEALTH_TABLE}").fetchone()
                if row != (number, number):
                    return f"after {number} health writes the table holds {row}"
        except psycopg.Error as exc:
            return f"a well-behaved client failed at {stages[-1]}: {type(exc).__name__}: {exc}"
        self.writes = number
        return None


@dataclass
class Failure:
    kind: str
    signature: str
    case: Case | None
    detail: str
    count: int = 1
    reproduced: bool = True


class Fuzzer:
    def __init__(self, cluster: Cluster, out_dir: Path) -> None:
        self.cluster = cluster
        self.address = cluster.writer_address
        self.out_dir = out_dir
        self.health = Health(cluster)
        self.log = LogWatch(cluster.writer.log_path)
        self.failures: dict[str, Failure] = {}
        self.recent: list[Case] = []
        self.stats: dict[str, int] = {}
        self.stopped: str | None = None
        self.unchecked: list[int] = []
        """Cases run since the last good health check."""

    def record(self, failure: Failure) -> None:
        known = self.failures.get(failure.signature)
        if known is not None:
            known.count += 1
            return
        self.failures[failure.signature] = failure
        if failure.case is not None:
            path = self.out_dir / f"fuzz-seed{SEED:#x}-case{failure.case.index}.bin"
            path.write_bytes(failure.case.data)
            failure.detail += f"\n  (all {len(failure.case.data)} bytes sent: {path})"
        where = f" (case {failure.case.index})" if failure.case is not None else ""
        print(f"protocol fuzz: found [{failure.kind}] {failure.signature}{where}")

    def run(self, case: Case) -> None:
        outcome = run_case(self.address, case)
        self.recent = [*self.recent[-(ATTRIBUTION_CASES - 1):], case]
        self.unchecked.append(case.index)
        self.stats[case.generator] = self.stats.get(case.generator, 0) + 1
        if outcome.hang is not None:
            self.record(Failure("hang", f"hang: {outcome.hang}", case, outcome.hang))
            self.check_health(f"the hang of case {case.index}")
        problems = self.log.problems()
        if problems:
            self.attribute(problems)
        if not self.cluster.writer.alive():
            time.sleep(SETTLE_S)
            tail = "\n".join(self.log.problems())
            self.record(Failure("dead", "the writer died", case, _shorten(tail)))
            self.stopped = f"the writer died at case {case.index}"

    def attribute(self, problems: list[str]) -> None:
        """Which recent case wrote these records: replay each alone, latest first, and wait
        for the server to be idle before looking at the log (a slow case's records may come
        several cases later)."""
        self.barrier()
        problems += self.log.problems()
        for record in problems:
            sig = signature(record)
            if sig in self.failures:
                self.failures[sig].count += 1
                continue
            culprit, reproduced = self.recent[-1], False
            for candidate in reversed(self.recent):
                run_case(self.address, candidate)
                self.barrier()
                again = self.log.problems()
                for other in again:
                    if signature(other) not in (sig, *self.failures):
                        self.record(Failure("log", signature(other), candidate,
                                            "writer log:\n" + _indent(_shorten(other))))
                if any(signature(r) == sig for r in again):
                    culprit, reproduced = candidate, True
                    break
            detail = "writer log:\n" + _indent(_shorten(record))
            if not reproduced:
                detail += ("\n  (did not reproduce alone; the cases just before it: "
                           + ", ".join(str(c.index) for c in self.recent) + ")")
            self.record(Failure("log", sig, culprit, detail, reproduced=reproduced))

    def barrier(self) -> None:
        """Wait (boundedly) until the server answers a well-behaved client, then a little
        more: the connections before it have then been served."""

        def select() -> None:
            with contextlib.suppress(psycopg.Error), psycopg.connect(
                    self.cluster.dsn(), autocommit=True) as conn:
                conn.execute("SELECT 1")

        worker = threading.Thread(target=select, daemon=True)
        worker.start()
        worker.join(HEALTH_TIMEOUT_S)
        time.sleep(SETTLE_S)

    def check_health(self, after: str) -> None:
        problem = self.health.check()
        if problem is not None:
            # The server may be wedged, so the culprit cannot be found by replaying here.
            suspects = _ranges(self.unchecked)
            self.record(Failure(
                "health", f"health: {problem}", self.recent[-1] if self.recent else None,
                f"after {after}: {problem}\n  (the case that broke it is one of those run "
                f"since the last good check; find it with BOREALIS_FUZZ_SEED={SEED:#x} "
                f"BOREALIS_FUZZ_BATCH=1 BOREALIS_FUZZ_ONLY={suspects})"))
            self.stopped = f"the writer is unhealthy after {after}"
        else:
            self.unchecked = []
        problems = self.log.problems()
        if problems:
            self.attribute(problems)

    def report(self) -> str:
        lines = [f"protocol fuzz, seed {SEED:#x}: {len(self.failures)} distinct failure(s)"
                 + (f"; stopped: {self.stopped}" if self.stopped else ""),
                 f"replay one case: BOREALIS_FUZZ_SEED={SEED:#x} BOREALIS_FUZZ_ONLY=<index>"]
        for failure in self.failures.values():
            lines.append(f"\n[{failure.kind}] {failure.signature} (seen {failure.count}x)")
            if failure.case is not None:
                lines.append(failure.case.describe())
            lines.append(failure.detail)
        return "\n".join(lines)


def _ranges(indexes: list[int]) -> str:
    """``[3, 4, 5, 9]`` as ``3-5,9``, as ``BOREALIS_FUZZ_ONLY`` reads it."""
    spans: list[list[int]] = []
    for index in indexes:
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


def _shorten(record: str) -> str:
    """A log record cut to its head and tail (a RecursionError's traceback is thousands of
    frames long)."""
    lines = record.splitlines()
    if len(lines) <= RECORD_LINES_SHOWN:
        return record
    head, tail = lines[:RECORD_LINES_SHOWN * 2 // 3], lines[-RECORD_LINES_SHOWN // 3:]
    return "\n".join([*head, f"... ({len(lines) - len(head) - len(tail)} lines)", *tail])


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def test_protocol_fuzz_never_crashes_the_writer(cluster: Cluster, tmp_path: Path) -> None:
    indexes = list(ONLY) if ONLY else list(range(CASES))
    print(f"protocol fuzz: seed {SEED:#x} (BOREALIS_FUZZ_SEED), {len(indexes)} cases "
          f"(BOREALIS_FUZZ_CASES); writer log {cluster.writer.log_path}")
    fuzzer = Fuzzer(cluster, tmp_path)
    fuzzer.check_health("setup")
    started = time.monotonic()
    for position, index in enumerate(indexes):
        fuzzer.run(make_case(SEED, index))
        if fuzzer.stopped is None and (position + 1) % BATCH_CASES == 0:
            fuzzer.check_health(f"case {index}")
        if fuzzer.stopped is not None or len(fuzzer.failures) >= FAILURES_MAX:
            break
    elapsed = time.monotonic() - started
    if fuzzer.stopped is None:
        time.sleep(SETTLE_S)
        fuzzer.check_health("the last case")
    print(f"protocol fuzz: {sum(fuzzer.stats.values())} cases in {elapsed:.1f}s; "
          f"by generator {fuzzer.stats}")
    if fuzzer.failures:
        pytest.fail(fuzzer.report(), pytrace=False)
