"""A storage node's Prometheus metrics (``--metrics-listen``) against what it really did:
six node processes, commits through a ``VolumeClient``, then ``GET /metrics`` on each
node, checked against the node's own ``node_status`` and against each other (every fsync
observed once in the latency histogram)."""

from __future__ import annotations

import concurrent.futures
import random
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from storage_harness import Model, Probe, geometry, run

from borealis.control.processes import NodeProcess, storage_fleet
from borealis.volume.client import VolumeClient
from borealis.volume.spec import VolumeSpec

COMMITS = 40
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


@dataclass
class MetricsNodeProcess(NodeProcess):
    """A storage node that also serves its metrics on a free loopback port."""

    def argv(self) -> list[str]:
        return [*super().argv(), "--metrics-listen", "127.0.0.1:0"]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[MetricsNodeProcess]]:
    made = [MetricsNodeProcess(n.node, n.az, n.data_dir, n.log_path)
            for n in storage_fleet(tmp_path)]
    try:
        with concurrent.futures.ThreadPoolExecutor(len(made)) as pool:
            for future in [pool.submit(n.start) for n in made]:
                future.result()
        yield made
    finally:
        for n in made:
            n.stop()
        for n in made:
            assert not n.alive(), f"{n.node} (pid {n.pid}) still running"


def scrape(node: NodeProcess) -> dict[str, dict[str, float]]:
    """Every sample, by family name then by its labels as written (without the node's
    constant labels)."""
    with urllib.request.urlopen(f"http://{node.ready['metrics_address']}/metrics",
                                timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    out: dict[str, dict[str, float]] = {}
    const = f'node="{node.node}",az="{node.az}"'
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = m["labels"] or ""
        assert labels.startswith(const), f"constant labels missing: {line!r}"
        labels = labels[len(const):].lstrip(",")
        out.setdefault(m["name"], {})[labels] = float(m["value"])
    return out


def test_a_nodes_metrics_count_what_it_received_and_synced(
        nodes: list[MetricsNodeProcess], tmp_path: Path) -> None:
    for n in nodes:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", n.ready["metrics_address"])

    before = {n.node: scrape(n) for n in nodes}

    async def main() -> dict[str, dict[str, Any]]:
        spec = VolumeSpec(geometry(), {n.node: n.info() for n in nodes})
        client = VolumeClient(spec, writer_id="w1", spec_path=tmp_path / "volume.json")
        probe = Probe(spec)
        try:
            await client.open_writer()
            model, rng = Model(), random.Random(7)
            for k in range(COMMITS):
                await client.commit(model.writes(rng, [k % 50, (k * 7 + 3) % 50]))
            return {n.node: await probe.status(n) for n in nodes}
        finally:
            await probe.close()
            await client.close()

    status = run(main(), timeout_s=60)

    for n in nodes:
        got = scrape(n)
        was = before[n.node]

        def value(name: str, labels: str = "", *, scrape: dict[str, dict[str, float]] = got
                  ) -> float:
            return scrape[name][labels]

        # Writes arrived and were made durable on this node.
        assert value("borealis_storage_bytes_received_total") > \
            value("borealis_storage_bytes_received_total", scrape=was)
        assert value("borealis_storage_records_received_total") >= 1
        assert value("borealis_storage_entries_logged_total") > \
            value("borealis_storage_entries_logged_total", scrape=was)
        assert value("borealis_storage_redo_bytes_total") > \
            value("borealis_storage_redo_bytes_total", scrape=was)
        # A quiet test logs far less than a checkpoint's 64 MiB: none taken, none trimmed.
        assert value("borealis_storage_checkpoints_total") == 0
        assert value("borealis_storage_redo_entries_trimmed_total") == 0
        fsyncs = value("borealis_storage_fsyncs_total")
        assert fsyncs > value("borealis_storage_fsyncs_total", scrape=was)
        # Every group-commit fsync is observed once in the histogram.
        buckets = got["borealis_storage_fsync_seconds_bucket"]
        assert value("borealis_storage_fsync_seconds_count") == fsyncs
        assert buckets['le="+Inf"'] == fsyncs
        counts = list(buckets.values())
        assert counts == sorted(counts), "buckets are cumulative"
        assert 0 < value("borealis_storage_fsync_seconds_sum") < fsyncs * 5.0
        # The node's own status agrees (it was asked after the commits, before the scrape).
        node_status = status[n.node]
        assert value("borealis_storage_requests_total") >= node_status["requests"] > COMMITS
        assert fsyncs >= node_status["syncs"]
        segments = node_status["segments"]
        assert value("borealis_storage_segments") == len(segments) > 0
        scl = got["borealis_storage_segment_scl"]
        assert set(scl) == {f'segment="{sid}"' for sid in segments}
        for sid, seg in segments.items():
            assert scl[f'segment="{sid}"'] >= seg["scl"]
        assert max(scl.values()) > 0
        assert value("borealis_storage_pages_repaired_total") == 0
        assert value("borealis_storage_uptime_seconds") > \
            value("borealis_storage_uptime_seconds", scrape=was)
