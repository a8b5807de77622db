"""The first slice of the PostgreSQL protocol: psql against a writer instance process.

Simple queries only (the extended protocol, TLS, COPY, SQL translation and the catalog are
issue 4's next steps), with SCRAM-SHA-256 when the instance has a password: statements run as SQLite SQL, errors carry their
SQLSTATE and leave the connection usable, a failed transaction block refuses everything
but ROLLBACK (25P02), and a malformed message closes that connection only.
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
    assert block.stdout.split() == ["ROLLBACK", "2"]

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


def test_the_extended_protocol_is_refused_with_0a000_for_now(writer: InstanceProcess) -> None:
    async def main() -> bytes:
        host, _, port = writer.ready["pg_address"].rpartition(":")
        reader, w = await asyncio.open_connection(host, int(port))
        params = b"user\x00postgres\x00database\x00postgres\x00\x00"
        w.write(struct.pack(">ii", 8 + len(params), 196608) + params)
        parse = b"\x00SELECT 1\x00\x00\x00"
        w.write(b"P" + struct.pack(">i", 4 + len(parse)) + parse + b"S\x00\x00\x00\x04")
        await w.drain()
        data = b""
        while data.count(b"Z\x00\x00\x00\x05") < 2:
            chunk = await asyncio.wait_for(reader.read(4096), 10)
            assert chunk
            data += chunk
        w.close()
        return data

    data = asyncio.run(main())
    assert b"0A000" in data and b"extended query protocol" in data


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
