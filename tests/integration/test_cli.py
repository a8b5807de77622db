"""The README's commands for real: borealis up / status / down, and data surviving them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def borealis(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "borealis", *args], capture_output=True, text=True,
        timeout=timeout_s, check=False,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "cluster"
    yield d
    borealis("down", "--data-dir", str(d))


def summary_line(out: str) -> dict[str, object]:
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, out
    result: dict[str, object] = json.loads(lines[-1])
    return result


def test_up_status_down_up_keeps_data(data_dir: Path) -> None:
    up = borealis("up", "--data-dir", str(data_dir), "--demo-seconds", "0.5")
    assert up.returncode == 0, up.stdout + up.stderr
    first = summary_line(up.stdout)
    assert first["pages_mismatched"] == 0
    assert isinstance(first["commits"], int) and first["commits"] > 0

    status = borealis("status", "--data-dir", str(data_dir), "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    nodes = data["storage_nodes"]
    assert len(nodes) == 6
    assert {n["az"] for n in nodes} == {"az1", "az2", "az3"}
    assert all(n["state"] == "up" and isinstance(n["pid"], int) for n in nodes)
    assert all(pg["write_quorum"] for pg in data["protection_groups"])
    assert set(data["endpoints"]) == {"writer", "reader"}

    down = borealis("down", "--data-dir", str(data_dir))
    assert down.returncode == 0 and "6 processes stopped" in down.stdout
    status = json.loads(borealis("status", "--data-dir", str(data_dir), "--json").stdout)
    assert all(n["state"] == "down" and n["pid"] is None for n in status["storage_nodes"])

    again = borealis("up", "--data-dir", str(data_dir), "--demo-seconds", "0.5")
    assert again.returncode == 0, again.stdout + again.stderr
    second = summary_line(again.stdout)
    # The new writer recovered everything the first one committed, at a newer epoch.
    assert isinstance(second["epoch"], int) and second["epoch"] > first["epoch"]  # type: ignore[operator]
    assert f"read back {first['pages_checked']} pages written by earlier runs" in again.stdout
    assert second["pages_mismatched"] == 0
