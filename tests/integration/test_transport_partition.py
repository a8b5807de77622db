"""A connection across a partition is closed, not kept: real packet drops in a network
namespace of the test's own (nftables), with the RPC client and server inside it.

Without TCP_USER_TIMEOUT a call across a partition waits for its own timeout, the
connection stays, and once the partition heals TCP's retransmission backoff delays the
traffic for seconds more. With it the connection is closed ~5 s into the partition and the
pool's next connection gets through as soon as it heals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from borealis.transport.rpc import USER_TIMEOUT_MS

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None,
    reason="needs root, ip and nft to drop packets in a network namespace")

SCRIPT = r'''
import asyncio, json, subprocess, sys, time
from borealis.errors import TransportError
from borealis.transport.pool import ConnectionPool
from borealis.transport.rpc import RpcServer, run

def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)

async def main():
    server = RpcServer(lambda method, body, peer: "pong", name="peer")
    host, port = await server.start("127.0.0.1", 0)
    address = f"{host}:{port}"
    pool = ConnectionPool(name="test")
    assert await (await pool.get(address)).call("ping", None, timeout_s=2) == "pong"
    nft(f"table inet cut {{ chain out {{ type filter hook output priority 0; "
        f"tcp dport {port} drop; }}; }}")
    started = time.monotonic()
    try:
        await (await pool.get(address)).call("ping", None, timeout_s=30)
        outcome = "answered"
    except TransportError as exc:
        outcome = str(exc)
    lost_after_s = time.monotonic() - started
    subprocess.run(["nft", "delete", "table", "inet", "cut"], check=True)
    healed = time.monotonic()
    while True:
        try:
            answer = await (await pool.get(address)).call("ping", None, timeout_s=1)
            break
        except TransportError:
            await asyncio.sleep(0.05)
    print(json.dumps({"outcome": outcome, "lost_after_s": lost_after_s,
                      "answer": answer, "back_after_s": time.monotonic() - healed}))
    await pool.close()
    await server.close()

run(main())
'''


def test_a_partitioned_connection_is_closed_and_the_pool_reconnects_after_the_heal() -> None:
    namespace = f"borealis-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
                       check=True)
        done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", SCRIPT],
                              capture_output=True, text=True, timeout=90, check=False,
                              env={**os.environ})
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.splitlines()[-1])
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False)
    # Closed by the kernel's user timeout, well before the call's own 30 s timeout.
    assert "timed out" not in result["outcome"], result
    assert USER_TIMEOUT_MS / 1000 - 0.5 <= result["lost_after_s"] <= 15, result
    assert result["answer"] == "pong"
    assert result["back_after_s"] < 2.0, result
