"""Partitions through the fault proxy, the fallback where network namespaces are missing
(issue 6): ``python -m borealis.chaos --network proxy`` forces it on a machine that has them
too, so that CI here runs both implementations.

The proxy and nftables share which hosts a variant cuts off (``nemesis_partition``); here,
first the pure half — how a cut becomes blocked link directions, and which implementation
is registered — then two runs on clusters of their own: bank under an isolate-writer
partition (failover, the old writer fenced and acknowledging nothing once cut off, a valid
verdict) and list-append under a one-way partition.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from borealis.chaos.nemesis_base import Nemesis
from borealis.chaos.nemesis_net import NETWORK_NEMESES, Partition, PartitionOneWay, register
from borealis.chaos.nemesis_partition import (
    ONE_WAY_PARTITIONS,
    PARTITIONS,
    Hosts,
    kind_for_seed,
    plan_one_way,
    plan_partition,
)
from borealis.chaos.nemesis_proxy import (
    PARTITION_FAULTS,
    ProxyPartition,
    ProxyPartitionOneWay,
    link_blocks,
)
from borealis.control.netns import CONTROL_PLANE, unavailable

pytestmark = pytest.mark.timeout(300)

CLIENTS = 4
HEALTHY_WAIT_S = 20

HOSTS = Hosts({"az1": ("az1-n1", "az1-n2"), "az2": ("az2-n1", "az2-n2"),
               "az3": ("az3-n1", "az3-n2")}, ("i1", "i2"))


def links_of(hosts: Hosts) -> dict[str, dict[str, str]]:
    """The links ``ProxyNetwork.install`` makes: every instance, node and the control plane
    calling every node and instance but itself."""
    targets = [*hosts.nodes, *hosts.instances]
    callers = [*hosts.instances, *hosts.nodes, CONTROL_PLANE]
    return {f"{c}.{t}": {"caller": c, "target": t} for c in callers for t in targets if c != t}


def seed_for(kind: str, kinds: tuple[str, ...]) -> int:
    """The smallest seed whose run chooses ``kind`` (the variant is the first draw)."""
    return next(s for s in range(1, 1000) if kind_for_seed(s, kinds) == kind)


# --- the pure half ------------------------------------------------------------------------------


def test_isolate_writer_blocks_every_link_between_the_writer_and_the_rest_both_ways() -> None:
    cut = plan_partition("isolate-writer", random.Random(1), HOSTS, "i1")
    assert cut is not None and cut.both_ways
    assert cut.sources == ("i1",) and cut.targets == (*HOSTS.nodes, CONTROL_PLANE)
    blocks = link_blocks(links_of(HOSTS), cut)
    expected = {f"i1.{n}" for n in HOSTS.nodes} | {f"{n}.i1" for n in HOSTS.nodes} | {
        f"{CONTROL_PLANE}.i1"}
    assert set(blocks) == expected
    assert set(blocks.values()) == {"both"}
    # The writer still reaches the other instance (the netns cut leaves that link too).
    assert "i1.i2" not in blocks and "i2.i1" not in blocks


def test_writer_deaf_blocks_only_what_storage_sends_the_writer() -> None:
    cut = plan_one_way("writer-deaf", random.Random(1), HOSTS, "i1")
    assert cut is not None and not cut.both_ways
    blocks = link_blocks(links_of(HOSTS), cut)
    # The writer's requests reach storage; the replies on its links are held...
    assert {name: d for name, d in blocks.items() if name.startswith("i1.")} == {
        f"i1.{n}": "from_target" for n in HOSTS.nodes}
    # ...and so is what storage nodes would send the writer on links of their own.
    assert {name: d for name, d in blocks.items() if not name.startswith("i1.")} == {
        f"{n}.i1": "to_target" for n in HOSTS.nodes}


def test_az_deaf_and_halves_cut_the_sets_the_netns_nemesis_cuts() -> None:
    cut = plan_one_way("az-deaf", random.Random(3), HOSTS, None)
    assert cut is not None
    deaf = set(HOSTS.by_az[cut.detail["az"]])
    blocks = link_blocks(links_of(HOSTS), cut)
    for name, direction in blocks.items():
        caller, target = name.split(".")
        # What reaches the deaf AZ is held, whoever opened the connection.
        assert (target in deaf and direction == "to_target") or \
            (caller in deaf and direction == "from_target"), name
    halves = plan_partition("halves", random.Random(3), HOSTS, None)
    assert halves is not None
    assert len(halves.sources) == 3 and CONTROL_PLANE in halves.targets
    assert set(link_blocks(links_of(HOSTS), halves).values()) == {"both"}


def test_a_seed_chooses_the_same_variant_and_hosts_in_both_implementations() -> None:
    """Both draw the variant first from the run's random source, then the same hosts."""
    for seed in range(1, 30):
        kind = kind_for_seed(seed, PARTITIONS)
        rng = random.Random(seed)
        assert rng.choice(PARTITIONS) == kind
        assert plan_partition(kind, rng, HOSTS, "i1") == plan_partition(
            kind, _after_first_draw(seed, PARTITIONS), HOSTS, "i1")
    assert kind_for_seed(seed_for("isolate-writer", PARTITIONS), PARTITIONS) == "isolate-writer"
    assert kind_for_seed(seed_for("writer-deaf", ONE_WAY_PARTITIONS),
                         ONE_WAY_PARTITIONS) == "writer-deaf"


def _after_first_draw(seed: int, kinds: tuple[str, ...]) -> random.Random:
    rng = random.Random(seed)
    rng.choice(kinds)
    return rng


def test_partitions_are_healed_by_resetting_what_they_held() -> None:
    assert PARTITION_FAULTS == {"blocked": True, "on_heal": "reset"}


def test_partitions_are_always_offered_and_the_proxy_can_be_forced() -> None:
    nemeses: dict[str, type[Nemesis]] = {}
    not_implemented: dict[str, str] = {}
    assert register(nemeses, not_implemented, requested="proxy") == "proxy"
    assert nemeses == {"partition": ProxyPartition, "partition-one-way": ProxyPartitionOneWay}
    assert "packet-loss" in not_implemented
    assert all(cls.cluster_network == "loopback" for cls in nemeses.values())
    chosen = register(nemeses, not_implemented)
    if unavailable() is None:
        assert chosen == "netns"
        assert nemeses == NETWORK_NEMESES and not not_implemented
        assert Partition.cluster_network == PartitionOneWay.cluster_network == "netns"
    else:
        assert chosen == "proxy"
        assert nemeses["partition"] is ProxyPartition


# --- runs -----------------------------------------------------------------------------------------


def chaos(out: Path, workload: str, nemesis: str, time_s: float, seed: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "borealis.chaos", "--workload", workload, "--nemesis",
            nemesis, "--time", str(time_s), "--clients", str(CLIENTS), "--seed", str(seed),
            "--out", str(out), "--healthy-wait", str(HEALTHY_WAIT_S), "--network", "proxy"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False,
                          env=dict(os.environ))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no summary printed (rc {done.returncode}):\n{done.stderr[-3000:]}"
    assert (out / "verdict.json").exists(), (
        f"no verdict (rc {done.returncode}): {lines[-1]}\n{done.stderr[-4000:]}")
    verdict: dict[str, Any] = json.loads((out / "verdict.json").read_text())
    verdict["_returncode"] = done.returncode
    verdict["_stderr_tail"] = done.stderr[-2000:]
    return verdict


def explain(verdict: dict[str, Any]) -> str:
    short = {k: v for k, v in verdict.items() if k != "checkers"}
    return json.dumps(short, indent=1, default=str)[:5000]


def actions(verdict: dict[str, Any], f: str) -> list[dict[str, Any]]:
    return [a for a in verdict["nemesis_actions"] if a["f"] == f]


def assert_safe(verdict: dict[str, Any]) -> None:
    assert verdict["valid"] is True, explain(verdict)
    assert verdict["acknowledged_commits_lost"] == 0, explain(verdict)
    assert verdict["anomaly_count"] == 0, explain(verdict)
    assert verdict["_returncode"] == 0, explain(verdict)
    assert verdict["operations"]["ok"] > 100, explain(verdict)
    assert verdict["operations"]["final_reads"].get("ok", 0) >= 1, explain(verdict)


def test_bank_under_an_isolated_writer_through_the_proxy(tmp_path: Path) -> None:
    seed = seed_for("isolate-writer", PARTITIONS)
    out = tmp_path / "bank-partition"
    verdict = chaos(out, "bank", "partition", 36, seed)
    assert_safe(verdict)
    run = json.loads((out / "run.json").read_text())
    assert run["cluster"]["network"] == "loopback", "a proxy run is never put in netns mode"
    [proxy] = actions(verdict, "proxy")
    assert proxy["links"] > 0 and "error" not in proxy
    [cut] = actions(verdict, "partition")
    assert cut["kind"] == "isolate-writer" and "error" not in cut, explain(verdict)
    old = cut["writer"]
    assert cut["links"] > 0 and cut["on_heal"] == "reset"
    # Failover: another instance became the writer while the old one was cut off.
    [new] = [a for a in actions(verdict, "observe") if a["what"] == "new writer"]
    assert new["writer"] not in (None, old), explain(verdict)
    assert verdict["events"].get("failover", 0) >= 1, explain(verdict)
    # Fencing: the control plane deposed the old writer and restarted it as a reader (here
    # it still hears the old writer's status, so it may do so before the heal)...
    [fenced] = [a for a in actions(verdict, "observe") if a["what"] == "old writer fenced"]
    assert "failover" in fenced["events"], explain(verdict)
    assert {"instance-fenced", "instance-restart"} & set(fenced["events"]), explain(verdict)
    events = json.loads((out / "events.json").read_text())
    failover = next(e for e in events if e["kind"] == "failover")
    assert failover["old_writer"] == old and failover["new_writer"] == new["writer"]
    assert any(e["kind"] == "instance-started" and e.get("instance") == old
               and e.get("role") == "reader" and e["seq"] > failover["seq"] for e in events)
    fencing = next(c for c in verdict["checkers"] if c["checker"] == "fencing")
    assert fencing["valid"] is True and fencing["writer_changes"] >= 1
    # ...and acknowledged nothing once it was cut off: no commit of its completed after
    # the cut was in place (its clients still reach it through the router; its commits
    # wait for storage that cannot hear it, and are refused at the stale epoch after).
    cut_done_ns = int((cut["t_s"] + cut["took_s"]) * 1e9)
    late = [op for op in map(json.loads, (out / "history.jsonl").read_text().splitlines())
            if op["type"] == "ok" and op.get("instance") == old and op["f"] == "transfer"
            and op["time_ns"] > cut_done_ns]
    assert late == [], late[:5]
    assert actions(verdict, "heal") and verdict["recovered"] is True, explain(verdict)


def test_list_append_under_a_one_way_partition_through_the_proxy(tmp_path: Path) -> None:
    seed = seed_for("writer-deaf", ONE_WAY_PARTITIONS)
    verdict = chaos(tmp_path / "list-append-one-way", "list-append", "partition-one-way", 24,
                    seed)
    assert_safe(verdict)
    [cut] = actions(verdict, "partition-one-way")
    assert cut["kind"] == "writer-deaf" and cut["both_ways"] is False, explain(verdict)
    assert cut["links"] > 0 and "error" not in cut, explain(verdict)
    elle = next(c for c in verdict["checkers"] if c["checker"] == "list-append")
    assert elle["valid"] is True and elle["realtime"] is True
    assert actions(verdict, "heal") and verdict["recovered"] is True, explain(verdict)
