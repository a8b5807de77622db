"""Clock skew (issue 6): the libfaketime plumbing of the processes the control plane starts
(``control.processes.faketime_env``), and replica lag that no wall clock enters
(``engine.replication``: the writer measures it on its monotonic clock and sends it; the
reader adds only a silence it measures on its own monotonic clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from borealis.chaos.nemesis_clock import offset_text, write_offset
from borealis.control.processes import (
    FAKETIME_DIR_ENV,
    LIBFAKETIME_DEFAULT,
    LIBFAKETIME_ENV,
    InstanceProcess,
    NodeProcess,
    _Managed,
    faketime_env,
)
from borealis.engine.pagecache import PageCache
from borealis.engine.replication import (
    SILENT_IS_LAG_AFTER_S,
    ReaderState,
    RedoPublisher,
    _Subscriber,
)
from borealis.errors import ConfigError
from borealis.storage.record import encode_block
from borealis.types import LSN, NodeId

HOUR_S = 3600.0

# --- the plumbing -------------------------------------------------------------------------


def fake_library(tmp_path: Path) -> Path:
    library = tmp_path / "libfaketimeMT.so.1"
    library.write_bytes(b"")
    return library


def test_without_the_variable_nothing_is_added(tmp_path: Path) -> None:
    assert faketime_env("i1", {LIBFAKETIME_ENV: str(fake_library(tmp_path))}) == {}
    assert faketime_env("i1", {FAKETIME_DIR_ENV: ""}) == {}


def test_each_process_gets_libfaketime_and_a_clock_file_of_its_own(tmp_path: Path) -> None:
    library = fake_library(tmp_path)
    clocks = tmp_path / "clocks"
    environ = {FAKETIME_DIR_ENV: str(clocks), LIBFAKETIME_ENV: str(library),
               "LD_PRELOAD": "/other.so"}
    env = faketime_env("az1-n1", environ)
    assert env == {"LD_PRELOAD": f"{library} /other.so",
                   "FAKETIME_TIMESTAMP_FILE": str(clocks / "az1-n1"),
                   "FAKETIME_NO_CACHE": "1", "DONT_FAKE_MONOTONIC": "1",
                   "FAKETIME_FORCE_MONOTONIC_FIX": "0"}
    assert (clocks / "az1-n1").read_text() == "+0\n", "created at the real time"
    write_offset(clocks, "az1-n1", -60)
    faketime_env("az1-n1", environ)
    assert (clocks / "az1-n1").read_text() == "-60s\n", "a restarted process keeps its skew"
    assert faketime_env("i2", environ)["FAKETIME_TIMESTAMP_FILE"] == str(clocks / "i2")


def test_a_missing_library_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="libfaketime is not at"):
        faketime_env("i1", {FAKETIME_DIR_ENV: str(tmp_path),
                            LIBFAKETIME_ENV: str(tmp_path / "missing.so")})


def test_clock_files_are_named_by_process_id(tmp_path: Path) -> None:
    node = NodeProcess(NodeId("az2-n3"), "az2", tmp_path / "n", tmp_path / "n.log")
    instance = InstanceProcess("i3", "az3", tmp_path / "volume.json", tmp_path / "i",
                               tmp_path / "i.log")
    assert (node.clock_name, instance.clock_name) == ("az2-n3", "i3")
    assert [offset_text(s) for s in (0, 30, -120)] == ["+0", "+30s", "-120s"]


@dataclass
class Probe(_Managed):
    """A process that writes, as its ready file, the wall time and monotonic clock it sees."""

    data_dir: Path
    log_path: Path
    port: int = 0
    pid: int = 0
    address: str = ""
    popen: Any = None
    host: str = "127.0.0.1"
    netns: str = ""

    @property
    def label(self) -> str:
        return "probe p1"

    def argv(self) -> list[str]:
        code = ("import json, os, sys, time; open(sys.argv[1], 'w').write(json.dumps("
                "{'address': '127.0.0.1:1', 'time': time.time(), "
                "'monotonic': time.monotonic(), 'preload': os.environ.get('LD_PRELOAD')}))")
        return [sys.executable, "-c", code, str(self.ready_file)]


@pytest.mark.skipif(not LIBFAKETIME_DEFAULT.is_file(), reason="libfaketime is not installed")
def test_a_started_process_runs_on_its_skewed_wall_clock(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    clocks = tmp_path / "clocks"
    clocks.mkdir()
    write_offset(clocks, "p1", -int(HOUR_S))
    monkeypatch.setenv(FAKETIME_DIR_ENV, str(clocks))
    probe = Probe(tmp_path / "probe", tmp_path / "probe.log")
    probe.start()
    assert probe.ready["preload"].startswith(str(LIBFAKETIME_DEFAULT))
    assert abs(probe.ready["time"] - (time.time() - HOUR_S)) < 30, "the wall clock is skewed"
    assert abs(probe.ready["monotonic"] - time.monotonic()) < 30, "the monotonic one is not"
    probe.stop()

    monkeypatch.delenv(FAKETIME_DIR_ENV)
    plain = Probe(tmp_path / "plain", tmp_path / "plain.log")
    plain.start()
    assert plain.ready["preload"] == os.environ.get("LD_PRELOAD")
    assert abs(plain.ready["time"] - time.time()) < 30
    plain.stop()
    assert json.loads(plain.ready_file.read_text())["address"] == "127.0.0.1:1"


# --- replica lag ----------------------------------------------------------------------------


def test_the_writer_measures_lag_from_sending_a_vdl_to_its_acknowledgement() -> None:
    sub = _Subscriber("r1", send=None)
    assert sub.lag_ms(100.0) == 0.0
    sub.sent(LSN(10), 100.0)
    sub.sent(LSN(10), 100.1)   # a heartbeat: no new VDL, nothing to time
    sub.sent(LSN(20), 100.2)
    assert sub.lag_ms(100.5) == pytest.approx(500.0), "the oldest unacknowledged VDL's age"
    sub.acknowledged(LSN(10), 100.03)
    assert sub.lag_ms(100.2) == pytest.approx(30.0)
    sub.acknowledged(LSN(20), 100.25)
    assert sub.lag_ms(200.0) == pytest.approx(50.0), "the last sample, nothing unacknowledged"
    sub.sent(LSN(30), 300.0)
    assert sub.lag_ms(302.0) == pytest.approx(2000.0), "a reader that stops answering"


class NoPages:
    """A backend for a reader that is never asked for a page (empty record blocks)."""

    page_size = 4096

    def read_page(self, page: int, read_point: LSN | None) -> tuple[LSN, bytes | None]:
        raise AssertionError("no page is read")

    def append(self, writes: Any) -> LSN:
        raise AssertionError("a reader never appends")


def new_reader(**clock: Any) -> ReaderState:
    return ReaderState(NoPages(), PageCache(1 << 20), **clock)


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def message(prev: int, vdl: int, *, sent_at: float, lag_ms: float | None) -> list[Any]:
    base = [prev, prev, encode_block([]), vdl, vdl, sent_at, 1]
    return base if lag_ms is None else [*base, lag_ms]


def test_a_skewed_readers_lag_is_what_the_writer_measured() -> None:
    """The writer's ``sent_at`` an hour ahead of, or behind, the reader's wall clock (a
    skewed machine) changes nothing: the reader never reads a wall clock."""
    clock = Clock()
    reader = new_reader(monotonic=clock)
    reader.apply(message(0, 10, sent_at=time.time() + HOUR_S, lag_ms=0.0))
    reader.apply(message(0, 20, sent_at=time.time() + HOUR_S, lag_ms=3.5))
    assert reader.lag_ms() == 3.5
    reader.apply(message(0, 30, sent_at=time.time() - HOUR_S, lag_ms=4.25))
    assert reader.lag_ms() == 4.25
    assert reader.lag_percentiles() == (3.5, 4.25)
    reader.apply(message(0, 30, sent_at=0.0, lag_ms=None))  # an older writer's message
    assert reader.lag_ms() == 4.25

    clock.now_s += SILENT_IS_LAG_AFTER_S / 2   # between heartbeats: not lag
    assert reader.lag_ms() == 4.25
    clock.now_s += 2.0 - SILENT_IS_LAG_AFTER_S / 2   # the writer silent for 2 s
    assert reader.lag_ms() == pytest.approx(2000.0)
    reader.apply(message(0, 40, sent_at=time.time(), lag_ms=2.0))
    assert reader.lag_ms() == 2.0


def test_a_malformed_lag_is_refused() -> None:
    from borealis.errors import ProtocolError

    reader = new_reader()
    with pytest.raises(ProtocolError):
        reader.apply(message(0, 10, sent_at=0.0, lag_ms=-1.0))
    with pytest.raises(ProtocolError):
        reader.apply([*message(0, 10, sent_at=0.0, lag_ms=1.0), "extra"])


class FakeVolumeClient:
    """What ``RedoPublisher`` uses of a ``VolumeClient``."""

    core = None

    def __init__(self) -> None:
        self.vdl = LSN(0)
        self.on_append: list[Any] = []
        self.on_vdl: list[Any] = []
        self.external_read_points: dict[str, LSN] = {}


def test_the_lag_a_slow_reader_is_sent_is_its_round_trip() -> None:
    """A reader that takes 50 ms to apply and answer is told a lag of about 50 ms, whatever
    its clock says."""
    async def scenario() -> list[list[Any]]:
        client = FakeVolumeClient()
        publisher = RedoPublisher(client)
        reader = new_reader()
        received: list[list[Any]] = []

        async def send(message: list[Any]) -> Any:
            received.append(message)
            await asyncio.sleep(0.05)
            return reader.apply(message)

        publisher.subscribe("r1", send)
        for vdl in range(1, 6):
            for listener in client.on_vdl:
                listener(LSN(vdl))
            await asyncio.sleep(0.1)
        publisher.close()
        return received

    received = asyncio.run(scenario())
    lags = [m[7] for m in received]
    assert lags[0] == 0.0
    assert all(45.0 <= lag < 1000.0 for lag in lags[2:]), lags
