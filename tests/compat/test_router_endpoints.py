"""psycopg through the endpoint router to the real writer and reader instances: the writer
endpoint writes, the reader endpoint reads what was written and refuses writes (25006), a
cancel request sent to an endpoint reaches the session's instance, and TLS would pass
through end to end (the router relays the SSLRequest; tested with fakes in unit tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from compat_cluster import Cluster
from psycopg import errors

ROUTER_SCRIPT = """
import asyncio, json, sys
from borealis.router.proxy import Endpoint, EndpointKind, Member, Router, StaticTopology

async def main():
    spec = json.loads(sys.argv[1])
    router = Router(StaticTopology([Member(m[0], tuple(m[1]), m[2]) for m in spec]),
                    hold_s=5.0)
    w = await router.serve(Endpoint("cluster", EndpointKind.WRITER), "127.0.0.1", 0)
    r = await router.serve(Endpoint("cluster-ro", EndpointKind.READER), "127.0.0.1", 0)
    print(json.dumps([list(w), list(r)]), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@pytest.fixture
def endpoints(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """The router in its own process (a blocking client such as libpq's cancel must not
    share a GIL with it), stopped by closing its stdin, then by PID."""
    members = [["writer", list(cluster.writer_address), "writer"],
               ["reader", list(cluster.reader_address), "reader"]]
    process = subprocess.Popen([sys.executable, "-c", ROUTER_SCRIPT, json.dumps(members)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        w, r = json.loads(process.stdout.readline())
        dsn = "host={} port={} user=postgres dbname=postgres sslmode=disable connect_timeout=10"
        yield dsn.format(*w), dsn.format(*r)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_writer_and_reader_endpoints(endpoints: tuple[str, str]) -> None:
    writer_dsn, reader_dsn = endpoints
    with psycopg.connect(writer_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE ep_items (id integer PRIMARY KEY, v text)")
        conn.execute("INSERT INTO ep_items VALUES (1, 'through the router')")
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
    with psycopg.connect(reader_dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while True:
            try:
                row = conn.execute("SELECT v FROM ep_items WHERE id = 1").fetchone()
                if row is not None:
                    break
            except errors.UndefinedTable:
                pass
            assert time.monotonic() < deadline, "the reader never saw the row"
            time.sleep(0.1)
        assert row == ("through the router",)
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO ep_items VALUES (2, 'no')")


def test_cancel_through_an_endpoint(endpoints: tuple[str, str]) -> None:
    writer_dsn, _ = endpoints
    with psycopg.connect(writer_dsn, autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)  # psycopg sends it to the endpoint
        timer.start()
        with pytest.raises(errors.QueryCanceled):
            conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                         "SELECT count(*) FROM n")
        timer.join()
        assert conn.execute("SELECT 1").fetchone() == (1,)
