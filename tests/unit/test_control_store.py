"""The coordination store: compare-and-set, leases, watches and compaction, the same tests
for the in-memory and the SQLite implementation, a property test of both against a naive
model, and compare-and-set between real processes sharing one SQLite file."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from borealis.control import store as store_module
from borealis.control.store import (
    CompactedError,
    ConflictError,
    CoordinationStore,
    LeaseError,
    MemoryStore,
    SqliteStore,
    StoreError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def stores(request: pytest.FixtureRequest, tmp_path: Path
           ) -> Iterator[tuple[CoordinationStore, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield MemoryStore(clock), clock
    else:
        made = SqliteStore(tmp_path / "store.db", clock)
        yield made, clock
        made.close()


def test_compare_and_set(stores: tuple[CoordinationStore, Clock]) -> None:
    store, _ = stores
    first = store.put("/cluster/writer", b"i1", expected=0)  # create only if absent
    with pytest.raises(ConflictError) as lost:
        store.put("/cluster/writer", b"i2", expected=0)
    assert (lost.value.expected, lost.value.actual) == (0, first)
    second = store.put("/cluster/writer", b"i2", expected=first)
    assert second > first and store.revision == second
    entry = store.get("/cluster/writer")
    assert entry is not None and (entry.value, entry.revision) == (b"i2", second)
    with pytest.raises(ConflictError):
        store.delete("/cluster/writer", expected=first)
    store.delete("/cluster/writer", expected=second)
    assert store.get("/cluster/writer") is None
    assert store.put("/cluster/writer", b"i3", expected=0) > second


def test_range_is_ordered_and_bounded_by_the_prefix(
        stores: tuple[CoordinationStore, Clock]) -> None:
    store, _ = stores
    for key in ("/b/2", "/a", "/b/1", "/b0", "/c"):
        store.put(key, key.encode())
    assert [e.key for e in store.range("/b/")] == ["/b/1", "/b/2"]
    assert [e.key for e in store.range("")] == ["/a", "/b/1", "/b/2", "/b0", "/c"]


def test_a_lease_not_kept_alive_deletes_its_keys(
        stores: tuple[CoordinationStore, Clock]) -> None:
    store, clock = stores
    lease = store.grant(2.0)
    store.put("/health/i1", b"up", lease=lease)
    store.put("/config", b"kept")
    clock.now += 1.5
    store.keepalive(lease)
    clock.now += 1.5
    assert store.get("/health/i1") is not None  # kept alive 1.5 s ago, TTL 2 s
    before = store.revision
    clock.now += 2.5
    assert store.get("/health/i1") is None
    assert store.get("/config") is not None
    events = store.events("/health/", before)
    assert [(e.kind, e.key) for e in events] == [("delete", "/health/i1")]
    with pytest.raises(LeaseError):
        store.keepalive(lease)
    with pytest.raises(LeaseError):
        store.put("/health/i1", b"up", lease=lease)
    other = store.grant(5.0)
    store.put("/health/i2", b"up", lease=other)
    store.revoke(other)
    assert store.get("/health/i2") is None
    with pytest.raises(StoreError):
        store.grant(0)


def test_watch_sees_every_change_after_a_revision_in_order(
        stores: tuple[CoordinationStore, Clock]) -> None:
    store, _ = stores
    start = store.revision
    store.put("/cluster/a", b"1")
    store.put("/other", b"x")

    async def main() -> list[tuple[str, str, bytes]]:
        seen: list[tuple[str, str, bytes]] = []

        async def consume() -> None:
            async for event in store.watch("/cluster/", start):
                seen.append((event.kind, event.key, event.value))
                if len(seen) == 3:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        store.put("/cluster/b", b"2")
        store.delete("/cluster/a")
        await asyncio.wait_for(task, 5)
        return seen

    assert asyncio.run(main()) == [("put", "/cluster/a", b"1"), ("put", "/cluster/b", b"2"),
                                   ("delete", "/cluster/a", b"")]


def test_a_watch_below_the_kept_history_is_told_to_reread(
        stores: tuple[CoordinationStore, Clock], monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = stores
    monkeypatch.setattr(store_module, "HISTORY_MAX", 5)
    for i in range(12):
        store.put(f"/k/{i}", b"v")
    with pytest.raises(CompactedError):
        store.events("/k/", 0)
    recent = store.events("/k/", store.revision - 3)
    assert [e.key for e in recent] == ["/k/9", "/k/10", "/k/11"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "cas", "delete"]),
                          st.sampled_from(["/a", "/b", "/c"]), st.integers(0, 6)),
                max_size=30))
def test_both_stores_agree_with_a_naive_model(ops: list[tuple[str, str, int]]) -> None:
    import tempfile

    clock = Clock()
    with tempfile.TemporaryDirectory() as directory:
        sqlite_store = SqliteStore(Path(directory) / "s.db", clock)
        try:
            for store in (MemoryStore(clock), sqlite_store):
                model: dict[str, tuple[bytes, int]] = {}
                revision = 0
                for op, key, number in ops:
                    value = str(number).encode()
                    current = model.get(key, (b"", 0))[1]
                    if op == "put":
                        revision += 1
                        assert store.put(key, value) == revision
                        model[key] = (value, revision)
                    elif op == "cas":
                        expected = number  # right only sometimes
                        if expected == current:
                            revision += 1
                            assert store.put(key, value, expected=expected) == revision
                            model[key] = (value, revision)
                        else:
                            with pytest.raises(ConflictError):
                                store.put(key, value, expected=expected)
                    else:
                        if key in model:
                            revision += 1
                            del model[key]
                        store.delete(key)
                    assert store.revision == revision
                assert {e.key: (e.value, e.revision) for e in store.range("")} == model
        finally:
            sqlite_store.close()


def _increment(path: str, times: int) -> None:
    store = SqliteStore(Path(path))
    try:
        for _ in range(times):
            while True:
                entry = store.get("/counter")
                value = int(entry.value) if entry is not None else 0
                try:
                    store.put("/counter", str(value + 1).encode(),
                              expected=entry.revision if entry is not None else 0)
                    break
                except ConflictError:
                    continue
    finally:
        store.close()


def test_compare_and_set_between_processes_loses_no_increment(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SqliteStore(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_increment, args=(str(path), 50)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    store = SqliteStore(path)
    try:
        entry = store.get("/counter")
        assert entry is not None and entry.value == b"150"
    finally:
        store.close()
