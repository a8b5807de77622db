"""The PostgreSQL protocol with psql against a writer instance process: simple queries,
SCRAM-SHA-256 when the instance has a password, errors with their SQLSTATE that leave the
connection usable, a failed transaction block that refuses everything but ROLLBACK
(25P02), and a malformed message that closes that connection only. The real-client suites
(psycopg, asyncpg, pgbench, SQLAlchemy) are in ``tests/compat``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from borealis.control.processes import InstanceProcess, NodeProcess

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


def psql(address: str, *commands: str, password: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    host, _, port = address.rpartition(":")
    args = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=0",
            f"host={host} port={port} user=postgres dbname=postgres sslmode=prefer"]
    for command in commands:
        args += ["-c", command]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(args, capture_output=True, text=True, timeout=30, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def writer(storage_nodes: list[NodeProcess], instances: list[InstanceProcess],
           tmp_path: Path, volume: Path) -> InstanceProcess:
    p = InstanceProcess("pg", "az1", volume, tmp_path / "instances" / "pg",
                        tmp_path / "logs" / "pg.log", extra_args=("--pg-listen", "127.0.0.1:0"))
    instances.append(p)
    p.start()
    return p


def test_psql_runs_statements_and_gets_errors_with_their_sqlstate(
        writer: InstanceProcess) -> None:
    address = writer.ready["pg_address"]
    done = psql(address, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                "INSERT INTO t (v) VALUES ('a'), ('b')", "SELECT id, v FROM t ORDER BY id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CREATE", "TABLE", "INSERT", "0", "2", "1|a", "2|b"]

    failed = psql(address, "SELECT * FROM missing", "SELECT count(*) FROM t")
    assert "ERROR:" in failed.stderr and "no such table" in failed.stderr
    assert failed.stdout.split() == ["2"]  # the connection went on after the error

    # As in PostgreSQL: the block failed, so the next statement is refused until ROLLBACK,
    # and the insert inside it never happened.
    block = psql(address, "BEGIN; INSERT INTO t (v) VALUES ('c'); SELECT nope FROM t; "
                          "SELECT 1; COMMIT", "SELECT count(*) FROM t", "ROLLBACK",
                 "SELECT count(*) FROM t")
    assert "current transaction is aborted" in block.stderr
    # psql 15 shows every result of a multi-statement query up to the failing one
    assert block.stdout.split() == ["BEGIN", "INSERT", "0", "1", "ROLLBACK", "2"]

    refused = psql(address, "PRAGMA journal_mode=WAL")
    assert "not supported" in refused.stderr


def test_a_malformed_message_closes_only_that_connection(writer: InstanceProcess) -> None:
    host, _, port = writer.ready["pg_address"].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(struct.pack(">ii", 8, 1234) + b"garbage!")  # a bad protocol version
        reply = s.recv(4096)
        assert reply[:1] == b"E" and b"FATAL" in reply
        assert s.recv(4096) == b""  # closed
    ok = psql(writer.ready["pg_address"], "SELECT 40 + 2")
    assert ok.stdout.split() == ["42"], ok.stderr


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">i", 4 + len(body)) + body


def _messages(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    while len(data) >= 5:
        (length,) = struct.unpack(">i", data[1:5])
        out.append((data[:1], data[5:1 + length]))
        data = data[1 + length:]
    return out


def test_the_extended_protocol_describes_types_before_running(writer: InstanceProcess) -> None:
    """Parse / Describe / Bind / Execute / Sync byte by byte: the parameter and result
    types come with Describe, before Execute; an error ends the batch at its Sync."""

    async def main() -> list[tuple[bytes, bytes]]:
        host, _, port = writer.ready["pg_address"].rpartition(":")
        reader, w = await asyncio.open_connection(host, int(port))
        params = b"user\x00postgres\x00database\x00postgres\x00\x00"
        w.write(struct.pack(">ii", 8 + len(params), 196608) + params)
        w.write(_message(b"P", b"s1\x00SELECT $1::int + 1 AS answer\x00\x00\x00")
                + _message(b"D", b"Ss1\x00")
                + _message(b"B", b"\x00s1\x00\x00\x00\x00\x01\x00\x00\x00\x0241\x00\x00")
                + _message(b"E", b"\x00\x00\x00\x00\x00")
                + _message(b"S", b"")
                + _message(b"P", b"\x00SELECT * FROM no_such_table\x00\x00\x00")
                + _message(b"B", b"\x00\x00\x00\x00\x00\x00\x00\x00")
                + _message(b"E", b"\x00\x00\x00\x00\x00")
                + _message(b"S", b""))
        await w.drain()
        data = b""
        while data.count(b"Z\x00\x00\x00\x05") < 3:
            chunk = await asyncio.wait_for(reader.read(4096), 10)
            assert chunk
            data += chunk
        w.close()
        return _messages(data)

    replies = asyncio.run(main())
    kinds = [kind for kind, _ in replies]
    start = kinds.index(b"1")  # after the startup's R, S..., K, Z
    # (PostgreSQL reports a missing table at Parse; Borealis at Execute: both before Sync)
    assert kinds[start:] == [b"1", b"t", b"T", b"2", b"D", b"C", b"Z", b"1", b"2", b"E", b"Z"]
    parameter_description = replies[start + 1][1]
    assert parameter_description == struct.pack(">hI", 1, 23)  # $1 is int4
    row_description = replies[start + 2][1]
    assert row_description.startswith(b"\x00\x01answer\x00")
    assert struct.unpack(">I", row_description[15:19]) == (23,)  # int4 column
    assert replies[start + 4][1] == struct.pack(">hi", 1, 2) + b"42"
    assert replies[start + 5][1] == b"SELECT 1\x00"
    assert b"42P01" in replies[start + 9][1]


def test_scram_sha_256_lets_the_right_password_in_and_keeps_a_wrong_one_out(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess],
        tmp_path: Path, volume: Path) -> None:
    p = InstanceProcess("pg-auth", "az1", volume, tmp_path / "instances" / "pg-auth",
                        tmp_path / "logs" / "pg-auth.log",
                        extra_args=("--pg-listen", "127.0.0.1:0", "--pg-password", "s3cret"))
    instances.append(p)
    p.start()
    address = p.ready["pg_address"]
    ok = psql(address, "SELECT 6 * 7", password="s3cret")
    assert ok.returncode == 0 and ok.stdout.split() == ["42"], ok.stderr
    wrong = psql(address, "SELECT 1", password="wrong")
    assert wrong.returncode != 0
    assert 'password authentication failed for user "postgres"' in wrong.stderr
    missing = psql(address, "SELECT 1")
    assert missing.returncode != 0


def test_roles_log_in_with_their_own_passwords_on_the_writer_and_a_reader(
        storage_nodes: list[NodeProcess], instances: list[InstanceProcess],
        tmp_path: Path, volume: Path) -> None:
    """CREATE ROLE ... LOGIN PASSWORD keeps a SCRAM secret in the database, so every
    instance, a reader too, authenticates the role from the shared volume."""
    writer = InstanceProcess("pg-roles", "az1", volume, tmp_path / "instances" / "w",
                             tmp_path / "logs" / "w.log",
                             extra_args=("--pg-listen", "127.0.0.1:0", "--pg-password", "m"))
    instances.append(writer)
    writer.start()
    address = writer.ready["pg_address"]
    made = psql(address, "CREATE ROLE app WITH LOGIN PASSWORD 'app-pw'",
                "CREATE ROLE nologin PASSWORD 'x'", "CREATE USER old PASSWORD 'old-pw'",
                "ALTER USER old WITH PASSWORD 'new-pw'", password="m")
    assert made.returncode == 0, made.stderr
    assert made.stdout.split() == ["CREATE", "ROLE"] * 3 + ["ALTER", "ROLE"]

    def as_user(user: str, password: str, at: str = address) -> subprocess.CompletedProcess[str]:
        host, _, port = at.rpartition(":")
        env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
        return subprocess.run(["psql", "-X", "-A", "-t", f"host={host} port={port} "
                               f"user={user} dbname=postgres", "-c", "SELECT current_user"],
                              capture_output=True, text=True, timeout=30, env=env,
                              stdin=subprocess.DEVNULL)

    ok = as_user("app", "app-pw")
    assert ok.returncode == 0 and ok.stdout.strip() == "app", ok.stderr
    assert 'password authentication failed for user "app"' in as_user("app", "no").stderr
    assert "not permitted to log in" in as_user("nologin", "x").stderr
    assert as_user("old", "new-pw").returncode == 0
    assert as_user("old", "old-pw").returncode != 0
    assert 'role "ghost" does not exist' in as_user("ghost", "x").stderr

    reader = InstanceProcess("pg-roles-r", "az2", volume, tmp_path / "instances" / "r",
                             tmp_path / "logs" / "r.log", role="reader",
                             extra_args=("--writer", writer.address, "--pg-listen",
                                         "127.0.0.1:0", "--pg-password", "m"))
    instances.append(reader)
    reader.start()
    on_reader = as_user("app", "app-pw", reader.ready["pg_address"])
    assert on_reader.returncode == 0 and on_reader.stdout.strip() == "app", on_reader.stderr

    refused = psql(address, "GRANT SELECT ON t TO app", "ALTER ROLE app NOSUPERUSER",
                   "DROP ROLE app", password="m")
    assert refused.stderr.count("not supported by Borealis") == 2, refused.stderr
    assert refused.stdout.split() == ["DROP", "ROLE"]
    assert as_user("app", "app-pw").returncode != 0
