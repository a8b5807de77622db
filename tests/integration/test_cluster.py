"""The cluster for real, through the CLI a user types: ``borealis up`` starts the control
plane, nine storage nodes in three AZs, a writer, two readers and the router; then SQL
through the endpoints with psycopg, custom endpoints, instances added and removed, kill -9
of the writer under a bank workload, a storage node lost and rebuilt on a spare, an AZ
down while writes go on, and ``down``/``up`` keeping the data.

The tests share one cluster (it takes seconds to start) and run in file order; none
assumes which instance is the writer: each asks ``borealis status --json``.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cluster_harness
import psycopg
import pytest
from cluster_harness import served_by, spec_toml, wait_for

pytestmark = pytest.mark.timeout(240)

PASSWORD = "borealis-test-password"
ACCOUNTS = 10
START_BALANCE = 1000
SPEC = spec_toml(repair_after_s=2.0)
borealis = functools.partial(cluster_harness.borealis, password=PASSWORD)
connect = functools.partial(cluster_harness.connect, password=PASSWORD,
                            connect_timeout=20)


def status(data_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(borealis(data_dir, "status", "--json").stdout)
    return result


@dataclass
class Cluster:
    data_dir: Path
    up_output: str
    lost_node: str = ""

    def status(self) -> dict[str, Any]:
        return status(self.data_dir)

    def writer_endpoint(self) -> str:
        return str(self.status()["endpoints"]["writer"])

    def reader_endpoint(self) -> str:
        return str(self.status()["endpoints"]["reader"])

    def writer(self) -> dict[str, Any]:
        return next(i for i in self.status()["instances"] if i["role"] == "writer")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("cluster") / "data"
    spec = data_dir.parent / "cluster.toml"
    spec.write_text(SPEC)
    try:
        up = borealis(data_dir, "up", "--spec", str(spec))
        yield Cluster(data_dir, up.stdout)
    finally:
        borealis(data_dir, "down", check=False)
        # Anything still running was started for this data dir: stop it by its PID.
        for pid in _pids_of(data_dir):
            os.kill(pid, signal.SIGKILL)


def _pids_of(data_dir: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"borealis" in cmdline and os.fsencode(str(data_dir)) in cmdline:
            pids.append(int(entry.name))
    return pids


def test_up_prints_the_endpoints_and_a_psql_command(cluster: Cluster) -> None:
    out = cluster.up_output
    view = cluster.status()
    assert f"Writer endpoint:  {view['endpoints']['writer']}" in out
    assert f"Reader endpoint:  {view['endpoints']['reader']}" in out
    host, _, port = view["endpoints"]["writer"].rpartition(":")
    assert f"psql -h {host} -p {port} -U postgres postgres" in out
    # Progress while starting: every process, with its pid.
    assert out.count("storage node az") >= 9 and "instance i1 (writer, az1) started" in out
    # The password came from the environment: it is neither printed nor stored.
    assert PASSWORD not in out
    assert not (cluster.data_dir / "master-password").exists()


def test_status_json_has_the_documented_shape(cluster: Cluster) -> None:
    view = cluster.status()
    assert view["state"] == "healthy"
    for name in ("writer", "reader"):
        host, _, port = view["endpoints"][name].rpartition(":")
        assert host == "127.0.0.1" and port.isdigit()
    instances = view["instances"]
    assert sorted(i["id"] for i in instances) == ["i1", "i2", "i3"]
    assert [i["role"] for i in instances].count("writer") == 1
    for i in instances:
        assert i["state"] == "available" and isinstance(i["pid"], int)
        assert i["az"] in ("az1", "az2", "az3")
        os.kill(i["pid"], 0)  # a live local process
    nodes = view["storage_nodes"]
    assert len(nodes) == 9 and Counter(n["az"] for n in nodes) == {"az1": 3, "az2": 3,
                                                                    "az3": 3}
    assert all(n["state"] == "up" and isinstance(n["pid"], int) for n in nodes)
    pgs = wait_for("quorum health", lambda: [
        pg for pg in cluster.status()["protection_groups"] if pg.get("healthy") == 6])
    assert pgs
    readable = borealis(cluster.data_dir, "status").stdout
    assert "Instances" in readable and "Storage nodes" in readable and "PG 0" in readable


def test_sql_through_the_writer_and_reader_endpoints(cluster: Cluster) -> None:
    with connect(cluster.writer_endpoint()) as conn:
        assert served_by(conn) == cluster.writer()["id"]
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)")
        conn.execute("CREATE TABLE transfers (id text PRIMARY KEY, src int, dst int, "
                     "amount int)")
        with conn.transaction():
            for i in range(ACCOUNTS):
                conn.execute("INSERT INTO accounts VALUES (%s, %s)", (i, START_BALANCE))
    with connect(cluster.reader_endpoint()) as conn:
        assert served_by(conn) != cluster.writer()["id"]
        total = wait_for("the rows on a reader", lambda: conn.execute(
            "SELECT sum(balance) FROM accounts").fetchone()[0])  # type: ignore[index]
        assert total == ACCOUNTS * START_BALANCE
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE accounts SET balance = 0")


def test_reader_endpoint_spreads_connections(cluster: Cluster) -> None:
    readers = {i["id"] for i in cluster.status()["instances"] if i["role"] == "reader"}
    conns = [connect(cluster.reader_endpoint()) for _ in range(6)]
    try:
        landed = Counter(served_by(c) for c in conns)
    finally:
        for c in conns:
            c.close()
    assert set(landed) == readers, landed
    assert max(landed.values()) - min(landed.values()) <= 1, landed  # least connections


def test_custom_endpoint_routes_only_to_its_members(cluster: Cluster) -> None:
    readers = sorted(i["id"] for i in cluster.status()["instances"] if i["role"] == "reader")
    member = readers[-1]
    out = borealis(cluster.data_dir, "endpoint", "create", "analytics", "--type", "READER",
                   "--members", member).stdout
    address = out.strip().rsplit(" ", 1)[-1]
    assert cluster.status()["endpoints"]["analytics"] == address
    conns = [connect(address) for _ in range(4)]
    try:
        assert {served_by(c) for c in conns} == {member}
    finally:
        for c in conns:
            c.close()
    borealis(cluster.data_dir, "endpoint", "delete", "analytics")
    assert "analytics" not in cluster.status()["endpoints"]
    with pytest.raises(psycopg.OperationalError):
        wait_for("the endpoint to close", lambda: connect(address).close(), timeout_s=10)
    bad = borealis(cluster.data_dir, "endpoint", "create", "x", "--members", "nope",
                   check=False)
    assert bad.returncode == 1 and "no such instances" in bad.stderr


def test_instance_add_and_remove(cluster: Cluster) -> None:
    out = borealis(cluster.data_dir, "instance", "add", "--az", "az2",
                   "--promotion-tier", "5").stdout
    assert "Instance i4 (reader, az2, tier 5) started" in out
    i4 = next(i for i in cluster.status()["instances"] if i["id"] == "i4")
    assert i4["role"] == "reader" and i4["state"] == "available"
    with connect(i4["pg_address"]) as conn:  # the instance's own endpoint
        assert served_by(conn) == "i4"
        assert wait_for("replicated rows", lambda: conn.execute(
            "SELECT count(*) FROM accounts").fetchone()[0]) == ACCOUNTS  # type: ignore[index]
    refused = borealis(cluster.data_dir, "instance", "remove", cluster.writer()["id"],
                       check=False)
    assert refused.returncode == 1 and "fail over first" in refused.stderr
    borealis(cluster.data_dir, "instance", "remove", "i4")
    assert "i4" not in {i["id"] for i in cluster.status()["instances"]}
    wait_for("i4 to exit", lambda: not _alive(i4["pid"]), timeout_s=15)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Bank:
    """Transfers through the writer endpoint; the acknowledged ones are recorded."""

    address: str
    acknowledged: list[str] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    last_ok_s: float = 0.0

    def run(self) -> None:
        rng = random.Random(7)
        conn: psycopg.Connection[Any] | None = None
        n = 0
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.address)
                src, dst = rng.sample(range(ACCOUNTS), 2)
                amount = rng.randint(1, 20)
                n += 1
                tid = f"t{n}"
                with conn.transaction():
                    conn.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s",
                                 (amount, src))
                    conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s",
                                 (amount, dst))
                    conn.execute("INSERT INTO transfers VALUES (%s, %s, %s, %s)",
                                 (tid, src, dst, amount))
                self.acknowledged.append(tid)
                self.last_ok_s = time.monotonic()
            except psycopg.Error:
                # Outcome unknown (the writer died mid-commit): not counted as acknowledged.
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def check_bank(address: str, acknowledged: list[str]) -> None:
    with connect(address) as conn:
        balances = dict(conn.execute("SELECT id, balance FROM accounts").fetchall())
        transfers = conn.execute("SELECT id, src, dst, amount FROM transfers").fetchall()
    assert sum(balances.values()) == ACCOUNTS * START_BALANCE
    present = {t[0] for t in transfers}
    lost = [t for t in acknowledged if t not in present]
    assert not lost, f"acknowledged transfers lost: {lost[:10]}"
    expected = dict.fromkeys(range(ACCOUNTS), START_BALANCE)
    for _, src, dst, amount in transfers:
        expected[src] -= amount
        expected[dst] += amount
    assert balances == expected, "the balances are not those of the recorded transfers"


def test_kill_writer_under_load_fails_over_and_loses_nothing(cluster: Cluster) -> None:
    address = cluster.writer_endpoint()
    old = cluster.writer()
    bank = Bank(address)
    worker = threading.Thread(target=bank.run, daemon=True)
    worker.start()
    try:
        wait_for("transfers before the kill", lambda: len(bank.acknowledged) >= 20)
        before = len(bank.acknowledged)
        killed_at = time.monotonic()
        os.kill(old["pid"], signal.SIGKILL)
        wait_for("transfers after the failover",
                 lambda: len(bank.acknowledged) >= before + 20, timeout_s=60)
        recovered_s = time.monotonic() - killed_at
    finally:
        bank.stop.set()
        worker.join(30)
    assert recovered_s < 30, recovered_s
    new = cluster.writer()
    assert new["id"] != old["id"]
    check_bank(address, bank.acknowledged)
    # The old writer returns as a reader; the other reader follows the new writer.
    back = wait_for("the old writer back as a reader", lambda: next(
        (i for i in cluster.status()["instances"]
         if i["id"] == old["id"] and i["role"] == "reader" and i["state"] == "available"),
        None), timeout_s=60)
    assert back["pid"] != old["pid"]
    with connect(back["pg_address"]) as conn:
        wait_for("the old writer replicating the new writer's commits", lambda: conn.execute(
            "SELECT count(*) FROM transfers").fetchone()[0] >= len(bank.acknowledged))  # type: ignore[index]
    kinds = [e["kind"] for e in json.loads(
        borealis(cluster.data_dir, "events", "--json").stdout)]
    assert "failover" in kinds


def test_manual_failover_to_a_target(cluster: Cluster) -> None:
    old = cluster.writer()["id"]
    target = sorted(i["id"] for i in cluster.status()["instances"] if i["role"] == "reader")[0]
    out = borealis(cluster.data_dir, "failover", "--target", target).stdout
    assert f"from {old} to {target}" in out
    assert cluster.writer()["id"] == target
    with connect(cluster.writer_endpoint()) as conn:
        assert served_by(conn) == target
        conn.execute("UPDATE accounts SET balance = balance WHERE id = 0")
    wait_for(f"{old} back as a reader", lambda: any(
        i["id"] == old and i["role"] == "reader" and i["state"] == "available"
        for i in cluster.status()["instances"]))


def _write_some(address: str, n: int, tag: str) -> None:
    with connect(address) as conn:
        for k in range(n):
            conn.execute("INSERT INTO transfers VALUES (%s, 0, 0, 0)", (f"{tag}{k}",))


def test_lost_storage_node_is_rebuilt_on_a_spare(cluster: Cluster) -> None:
    view = cluster.status()
    victim = max((n for n in view["storage_nodes"] if n["az"] == "az1"),
                 key=lambda n: n["segments"])
    assert victim["segments"] > 0
    os.kill(victim["pid"], signal.SIGKILL)
    _write_some(cluster.writer_endpoint(), 30, "during-repair-")  # writes go on

    def rebuilt() -> bool:
        v = cluster.status()
        node = next(n for n in v["storage_nodes"] if n["id"] == victim["id"])
        return node["segments"] == 0 and all(pg["healthy"] == 6
                                             for pg in v["protection_groups"])

    wait_for("the segments rebuilt on a spare, 6/6", rebuilt, timeout_s=90)
    # Holding nothing, the lost node gets no new PG while it is down.
    wait_for("the lost node out of the volume spec", lambda: victim["id"] not in {
        n[0] for n in json.loads((cluster.data_dir / "volume.json").read_text())["nodes"]})
    cluster.lost_node = victim["id"]
    events = json.loads(borealis(cluster.data_dir, "events", "--json").stdout)
    done = [e for e in events if e["kind"] == "repair-done" and e["node"] == victim["id"]]
    assert done and all(e["spare"].startswith("az1-") for e in done)


def test_writes_go_on_with_an_az_down(cluster: Cluster) -> None:
    az3 = [n for n in cluster.status()["storage_nodes"] if n["az"] == "az3"]
    for n in az3:
        os.kill(n["pid"], signal.SIGKILL)
    started = time.monotonic()
    _write_some(cluster.writer_endpoint(), 20, "az-down-")
    assert time.monotonic() - started < 30
    with connect(cluster.writer_endpoint()) as conn:
        row = conn.execute("SELECT count(*) FROM transfers WHERE id LIKE 'az-down-%'")
        assert row.fetchone() == (20,)
    # `up` on the running cluster brings the AZ back; its segments catch up by gossip.
    out = borealis(cluster.data_dir, "up").stdout
    assert "already running" in out and "az3-n1" in out
    wait_for("PGs 6/6 with the AZ back", lambda: all(
        pg["healthy"] == 6 for pg in cluster.status()["protection_groups"]), timeout_s=60)
    # The node lost earlier is back too, as a spare the writer may place segments on.
    wait_for("the repaired node back in the volume spec", lambda: cluster.lost_node in {
        n[0] for n in json.loads((cluster.data_dir / "volume.json").read_text())["nodes"]})


def test_a_killed_router_is_started_again(cluster: Cluster) -> None:
    router = cluster.status()["router"]
    os.kill(router["pid"], signal.SIGKILL)

    def writes() -> bool:
        try:
            _write_some(cluster.writer_endpoint(), 1, f"after-router-{time.monotonic()}-")
        except psycopg.OperationalError:
            return False
        return True

    wait_for("the endpoints back", writes, timeout_s=30)
    assert cluster.status()["router"]["pid"] not in (None, router["pid"])


def test_control_plane_metrics_show_the_cluster(cluster: Cluster) -> None:
    import urllib.request

    ready = json.loads((cluster.data_dir / "control" / "ready.json").read_text())
    with urllib.request.urlopen(f"http://{ready['address']}/metrics", timeout=10) as r:
        text = r.read().decode()
    up = [line for line in text.splitlines()
          if line.startswith("borealis_cluster_instance_up{")]
    assert len(up) == 3 and sum(float(line.rsplit(" ", 1)[1]) for line in up) >= 1
    failovers = next(line for line in text.splitlines()
                     if line.startswith("borealis_cluster_failovers_total"))
    assert float(failovers.rsplit(" ", 1)[1]) >= 1


def test_down_then_up_keeps_the_data(cluster: Cluster) -> None:
    with connect(cluster.writer_endpoint()) as conn:
        before = conn.execute("SELECT count(*), sum(amount) FROM transfers").fetchone()
    down = borealis(cluster.data_dir, "down")
    assert "processes stopped" in down.stdout
    offline = cluster.status()
    assert offline["state"] == "down"
    assert all(i["pid"] is None for i in offline["instances"])
    assert all(n["pid"] is None for n in offline["storage_nodes"])
    borealis(cluster.data_dir, "up")
    with connect(cluster.writer_endpoint()) as conn:
        assert conn.execute("SELECT count(*), sum(amount) FROM transfers").fetchone() == before
        assert conn.execute("SELECT sum(balance) FROM accounts").fetchone() == (
            ACCOUNTS * START_BALANCE,)


def test_up_with_an_endpoint_port_in_use_says_so_and_leaves_nothing_running(
        tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = tmp_path / "cluster.toml"
        spec.write_text(SPEC.replace("writer_port = 0", f"writer_port = {port}"))
        data_dir = tmp_path / "data"
        up = borealis(data_dir, "up", "--spec", str(spec), check=False)
    assert up.returncode == 1
    assert f"port {port} of the writer endpoint is in use" in up.stderr
    assert not _pids_of(data_dir) or wait_for("nothing left running",
                                              lambda: not _pids_of(data_dir), timeout_s=10)
    assert status(data_dir)["state"] == "down"
