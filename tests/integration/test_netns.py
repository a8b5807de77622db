"""Netns mode for real: ``borealis up`` with ``[network] mode = "netns"`` puts every storage
node and instance in a network namespace of its own, and ``control.netns.Faults`` cuts the
links between them with nftables: one AZ cut off (writes go on: Aurora SIGMOD 2017 §2.2,
4 of 6 segments), the writer cut off from storage and the control plane (a failover on the
hung-writer timeout, and the old writer never acknowledges a commit again), heal, ``down``
(no namespace and no process left), and a crashed run's leftovers cleared by the next up.

The first tests (the rules nft is given, the spec option) are pure and run anywhere; the
cluster tests need root, ``ip`` and ``nft`` and are skipped, saying so, without them.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cluster_harness
import pytest
from cluster_harness import served_by, spec_toml, wait_for

from borealis.control.clusterspec import ClusterSpec
from borealis.control.netns import (
    CHAOS_TABLE,
    CONTROL_PLANE,
    IFNAME_MAX,
    Block,
    Faults,
    Loss,
    Names,
    between,
    choose_subnet,
    cluster_namespaces,
    cluster_tag,
    remove_namespaces,
    ruleset,
    unavailable,
)
from borealis.errors import ConfigError

pytestmark = pytest.mark.timeout(300)

PASSWORD = "borealis-netns-password"
SPEC = spec_toml(repair_after_s=60.0, tiers=(0, 1, 2), writer_hung_after_s=3.0,
                 network="netns")
borealis = functools.partial(cluster_harness.borealis, password=PASSWORD)
connect = functools.partial(cluster_harness.connect, password=PASSWORD,
                            connect_timeout=10)


# --- pure: names, subnets, rules, the spec --------------------------------------------------


def test_names_fit_linux_limits_and_differ_between_data_dirs(tmp_path: Path) -> None:
    a, b = Names(cluster_tag(tmp_path / "a")), Names(cluster_tag(tmp_path / "b"))
    assert a.tag != b.tag
    assert a.namespace("az1-n1") != b.namespace("az1-n1")
    for names in (a, b):
        assert len(names.bridge) <= IFNAME_MAX
        assert len(names.veth(251)) <= IFNAME_MAX and len(names.peer(251)) <= IFNAME_MAX
    assert cluster_tag(tmp_path / "a") == cluster_tag(tmp_path / "x" / ".." / "a")


def test_the_subnet_avoids_routes_in_use() -> None:
    first = choose_subnet("00abcd", [])
    assert first.prefixlen == 24 and first.subnet_of(ipaddress.IPv4Network("10.128.0.0/9"))
    second = choose_subnet("00abcd", [first])
    assert not second.overlaps(first)
    with pytest.raises(ConfigError, match="no free /24"):
        choose_subnet("00abcd", [ipaddress.IPv4Network("10.0.0.0/8")])


def test_a_one_way_block_is_written_on_the_sending_side_or_the_receiving_one() -> None:
    addresses = {CONTROL_PLANE: "10.200.0.1", "n1": "10.200.0.2", "n2": "10.200.0.3",
                 "w": "10.200.0.4"}
    scripts = ruleset(between(["n1", "n2"], ["w"], both_ways=False), [], addresses)
    assert set(scripts) == {"n1", "n2"}
    assert "ip daddr { 10.200.0.4 } drop" in scripts["n1"]
    assert "saddr" not in scripts["n1"]
    # The control plane's side is never touched: its packets are dropped where they arrive.
    scripts = ruleset([Block(CONTROL_PLANE, "w")], [], addresses)
    assert set(scripts) == {"w"}
    assert "ip saddr { 10.200.0.1 } drop" in scripts["w"]
    # Both ways, and loss: one table per host, replaced whole in one transaction.
    scripts = ruleset(between(["w"], ["n1", CONTROL_PLANE]), [Loss("n2", 20)], addresses)
    assert set(scripts) == {"w", "n1", "n2"}
    assert "ip daddr { 10.200.0.1, 10.200.0.2 } drop" in scripts["w"]
    assert "ip saddr { 10.200.0.1 } drop" in scripts["w"]
    assert 'numgen random mod 100 < 20 drop' in scripts["n2"]
    for script in scripts.values():
        assert script.startswith(f"add table inet {CHAOS_TABLE}\n"
                                 f"delete table inet {CHAOS_TABLE}\n")
    with pytest.raises(AssertionError):
        Loss(CONTROL_PLANE, 10)


def test_the_network_mode_is_a_spec_option() -> None:
    assert ClusterSpec().network_mode == "loopback"
    assert ClusterSpec.from_toml({"network": {"mode": "netns"}}).network_mode == "netns"
    with pytest.raises(ConfigError, match=r"network\.mode"):
        ClusterSpec.from_toml({"network": {"mode": "vlan"}})
    with pytest.raises(ConfigError, match=r"unknown key network\.host"):
        ClusterSpec.from_toml({"network": {"host": "x"}})
    with pytest.raises(ConfigError, match="another host"):
        ClusterSpec.from_toml({"instances": [{"id": "az1-n1", "az": "az1"}]})


def test_a_network_nemesis_refuses_a_cluster_on_loopback(tmp_path: Path) -> None:
    """The runner gives the network nemeses a netns cluster where it can; on loopback they
    refuse (exit 2, as for a nemesis not implemented) before touching anything."""
    from borealis.chaos.clients import Recorder
    from borealis.chaos.cluster import ChaosCluster, ClusterShape
    from borealis.chaos.nemesis_base import NemesisContext
    from borealis.chaos.nemesis_net import NETWORK_NEMESES, shape_for
    from borealis.chaos.runner import NotImplementedNemesis

    cluster = ChaosCluster(tmp_path / "data", shape=ClusterShape())
    for name, nemesis in NETWORK_NEMESES.items():
        ctx = NemesisContext(cluster, Recorder(), random.Random(1))
        with pytest.raises(NotImplementedNemesis, match="netns mode"):
            nemesis().run(ctx, time.monotonic() + 1)
        assert ctx.actions == []
        expected = "netns" if unavailable() is None else "loopback"
        assert shape_for(name, ClusterShape()).network == expected
    assert shape_for("kill-writer", ClusterShape()).network == "loopback"
    assert 'mode = "netns"' in ClusterShape(network="netns").toml()


# --- the cluster in netns mode (root) --------------------------------------------------------

needs_netns = pytest.mark.skipif(unavailable() is not None,
                                 reason=f"netns mode unavailable: {unavailable()}")


def processes_of(data_dir: Path) -> list[int]:
    """PIDs whose command line names this data dir."""
    marker = os.fsencode(str(data_dir))
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"borealis" in cmdline and marker in cmdline:
                found.append(int(entry.name))
    return found


@dataclass
class Cluster:
    data_dir: Path

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(borealis(self.data_dir, "status", "--json").stdout)
        return result

    def writer_endpoint(self) -> str:
        return str(self.status()["endpoints"]["writer"])

    def writer(self) -> dict[str, Any] | None:
        return next((i for i in self.status()["instances"] if i["role"] == "writer"), None)

    def whole(self) -> bool:
        view = self.status()
        return ([i["role"] for i in view["instances"]].count("writer") == 1
                and all(i["state"] == "available" for i in view["instances"])
                and all(pg.get("healthy") == 6 for pg in view["protection_groups"]))

    def events(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(
            borealis(self.data_dir, "events", "--json").stdout)
        return result


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if unavailable() is not None:
        pytest.skip(f"netns mode unavailable: {unavailable()}")
    root = tmp_path_factory.mktemp("netns")
    spec = root / "cluster.toml"
    spec.write_text(SPEC)
    data_dir = (root / "data").resolve()
    try:
        borealis(data_dir, "up", "--spec", str(spec), "--quiet")
        yield Cluster(data_dir)
    finally:
        Faults(data_dir).heal()
        borealis(data_dir, "down", check=False)
        for pid in processes_of(data_dir):   # a last resort, by PID
            os.kill(pid, signal.SIGKILL)
        remove_namespaces(data_dir)


@needs_netns
def test_every_node_and_instance_runs_in_a_namespace_of_its_own(cluster: Cluster) -> None:
    view = cluster.status()
    state = json.loads((cluster.data_dir / "network.json").read_text())
    subnet = ipaddress.IPv4Network(state["subnet"])
    names = Names(cluster_tag(cluster.data_dir))
    hosts = [*view["storage_nodes"], *view["instances"]]
    assert len(hosts) == 12
    assert sorted(cluster_namespaces(cluster.data_dir)) == sorted(
        names.namespace(h["id"]) for h in hosts)
    for h in hosts:
        address = h.get("address") or h["pg_address"]
        assert ipaddress.IPv4Address(address.rpartition(":")[0]) in subnet, h
        # ``ip netns exec`` execs: the recorded PID is the program, inside the namespace.
        ns = os.stat(f"/run/netns/{names.namespace(h['id'])}").st_ino
        assert os.stat(f"/proc/{h['pid']}/ns/net").st_ino == ns, h["id"]
        assert b"borealis" in Path(f"/proc/{h['pid']}/cmdline").read_bytes()
    # The endpoints stay on the root namespace's loopback, where the clients are.
    assert view["endpoints"]["writer"].startswith("127.0.0.1:")
    with connect(cluster.writer_endpoint()) as conn:
        conn.execute("CREATE TABLE kv (k int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO kv VALUES (0, 'netns')")
        assert served_by(conn) == "i1"
        assert conn.execute("SELECT v FROM kv WHERE k = 0").fetchone() == ("netns",)


@needs_netns
def test_writes_go_on_with_one_az_cut_off(cluster: Cluster) -> None:
    view = cluster.status()
    az3 = [n["id"] for n in view["storage_nodes"] if n["az"] == "az3"]
    rest = ([n["id"] for n in view["storage_nodes"] if n["az"] != "az3"]
            + [i["id"] for i in view["instances"]] + [CONTROL_PLANE])
    faults = Faults(cluster.data_dir)
    faults.block(az3, rest)
    try:
        started = time.monotonic()
        with connect(cluster.writer_endpoint()) as conn:
            for k in range(1, 21):
                conn.execute("INSERT INTO kv VALUES (%s, 'az3 cut off')", (k,))
        # Aurora SIGMOD 2017 §2.2: an AZ down leaves 4 of 6 segments, a write quorum.
        assert time.monotonic() - started < 30
        wait_for("az3 seen down", lambda: all(
            n["state"] != "up" for n in cluster.status()["storage_nodes"] if n["az"] == "az3"),
            timeout_s=20)
    finally:
        faults.heal()
    wait_for("the cluster whole again", cluster.whole, timeout_s=90)
    with connect(cluster.writer_endpoint()) as conn:
        assert conn.execute("SELECT count(*) FROM kv WHERE v = 'az3 cut off'").fetchone() == (20,)


# Runs inside another instance's namespace, which the partition leaves connected to the old
# writer: it commits on the old writer directly, one row at a time, and prints each
# acknowledgment with when it was asked for.
CLIENT = r"""
import json, sys, time
import psycopg
host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
n = 1000
while True:
    try:
        with psycopg.connect(host=host, port=port, user="postgres", password=password,
                             dbname="postgres", autocommit=True, connect_timeout=5) as conn:
            while True:
                n += 1
                asked = time.time()
                conn.execute("INSERT INTO kv VALUES (%s, 'old writer')", (n,))
                print(json.dumps({"k": n, "asked": asked, "acked": time.time()}), flush=True)
                time.sleep(0.05)
    except psycopg.Error as exc:
        print(json.dumps({"error": str(exc)[:200], "at": time.time()}), flush=True)
        time.sleep(0.3)
"""


@needs_netns
def test_an_isolated_writer_is_failed_over_and_never_acknowledges_again(
        cluster: Cluster, tmp_path: Path) -> None:
    old = cluster.writer()
    assert old is not None and old["state"] == "available"
    view = cluster.status()
    nodes = [n["id"] for n in view["storage_nodes"]]
    bystander = next(i["id"] for i in view["instances"] if i["id"] != old["id"])
    host, _, port = old["pg_address"].rpartition(":")
    log_path = tmp_path / "old-writer-client.jsonl"
    namespace = Names(cluster_tag(cluster.data_dir)).namespace(bystander)
    with open(log_path, "w") as out:
        client = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-c",
                                   CLIENT, host, port, PASSWORD], stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    faults = Faults(cluster.data_dir)
    try:
        wait_for("the client's first commit", lambda: '"acked"' in log_path.read_text(),
                 timeout_s=30)
        faults.block([old["id"]], [*nodes, CONTROL_PLANE])
        cut_at = time.time()   # every rule in place
        new = wait_for("a failover", lambda: (w := cluster.writer()) is not None
                       and w["id"] != old["id"] and w["state"] == "available" and w,
                       timeout_s=60)
        with connect(cluster.writer_endpoint()) as conn:
            assert served_by(conn) == new["id"]
            conn.execute("INSERT INTO kv VALUES (500, 'new writer')")
        time.sleep(2)
        faults.heal()
        wait_for("the old writer back as a reader", lambda: next(
            i for i in cluster.status()["instances"] if i["id"] == old["id"])["role"]
            == "reader", timeout_s=60)
        time.sleep(2)
    finally:
        faults.heal()
        os.kill(client.pid, signal.SIGKILL)
        client.wait(10)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()
             if line.startswith("{")]
    acked = [x for x in lines if "acked" in x]
    failover = next(e for e in cluster.events() if e["kind"] == "failover")
    assert failover["old_writer"] == old["id"] and failover["new_writer"] == new["id"]
    # Cut off from storage, the old writer cannot reach a write quorum; after the heal its
    # epoch is stale: nothing it was asked after the cut may ever be acknowledged.
    late = [x for x in acked if x["asked"] > cut_at]
    assert not late, (cut_at, late)
    wait_for("the cluster whole again", cluster.whole, timeout_s=90)
    with connect(cluster.writer_endpoint()) as conn:
        assert served_by(conn) == new["id"]
        rows = {k for (k,) in conn.execute("SELECT k FROM kv WHERE k > 1000").fetchall()}
        assert {x["k"] for x in acked} <= rows   # every acknowledged commit is durable
        assert conn.execute("SELECT v FROM kv WHERE k = 500").fetchone() == ("new writer",)


@needs_netns
def test_down_leaves_no_namespace_and_no_process(cluster: Cluster) -> None:
    borealis(cluster.data_dir, "down")
    assert cluster_namespaces(cluster.data_dir) == []
    names = Names(cluster_tag(cluster.data_dir))
    assert subprocess.run(["ip", "link", "show", names.bridge], capture_output=True,
                          check=False).returncode != 0
    assert wait_for("no process left", lambda: not processes_of(cluster.data_dir),
                    timeout_s=10)


@needs_netns
def test_a_crashed_run_is_cleared_at_the_next_up_with_the_same_addresses(
        cluster: Cluster) -> None:
    borealis(cluster.data_dir, "up", "--quiet")
    before = cluster.status()
    addresses = {n["id"]: n["address"] for n in before["storage_nodes"]}
    # A control plane that stops alone: the next one adopts the processes in their
    # namespaces by PID (``ip netns exec`` execs, so /proc/PID/cmdline is the program's).
    pids = {h["id"]: h["pid"] for h in [*before["storage_nodes"], *before["instances"]]}
    os.kill(int(before["control_plane"]["pid"]), signal.SIGTERM)
    wait_for("the control plane gone", lambda: not (
        cluster.data_dir / "control" / "ready.json").exists(), timeout_s=20)
    borealis(cluster.data_dir, "up", "--quiet")
    adopted = cluster.status()
    assert {h["id"]: h["pid"] for h in [*adopted["storage_nodes"], *adopted["instances"]]} \
        == pids
    # The crash: every process of the cluster killed, a partition rule left in place.
    faults = Faults(cluster.data_dir)
    faults.block(["az1-n1"], [CONTROL_PLANE])
    killed = processes_of(cluster.data_dir)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    # Reaped, not only dead: the next control plane takes a zombie's lease for a live one.
    wait_for("all gone", lambda: not any(Path(f"/proc/{pid}").exists() for pid in killed),
             timeout_s=20)
    assert cluster_namespaces(cluster.data_dir)   # left behind
    borealis(cluster.data_dir, "up", "--quiet")
    after = cluster.status()
    assert {n["id"]: n["address"] for n in after["storage_nodes"]} == addresses
    wait_for("every storage node up", lambda: all(
        n["state"] == "up" for n in cluster.status()["storage_nodes"]), timeout_s=30)
    namespace = Names(cluster_tag(cluster.data_dir)).namespace("az1-n1")
    tables = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "tables"],
                            capture_output=True, text=True, check=True).stdout
    assert CHAOS_TABLE not in tables
    with connect(cluster.writer_endpoint()) as conn:
        assert conn.execute("SELECT v FROM kv WHERE k = 0").fetchone() == ("netns",)
    borealis(cluster.data_dir, "down")
    assert cluster_namespaces(cluster.data_dir) == []
