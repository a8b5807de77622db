"""SQLite's file-lock rules between the connections of one process (``LockManager``).

The rules are SQLite's (https://sqlite.org/lockingv3.html, section 3, and ``unixLock`` in
os_unix.c): any number of SHARED; at most one RESERVED, which lets SHARED readers in and
out; PENDING, taken on the way to EXCLUSIVE, keeps new SHARED locks out until the remaining
readers leave; EXCLUSIVE is alone.
"""

from __future__ import annotations

import threading
import time

import pytest

from borealis.engine.vfs import (
    LOCK_EXCLUSIVE,
    LOCK_NONE,
    LOCK_RESERVED,
    LOCK_SHARED,
    LockManager,
)

A, B, C = 1, 2, 3
"""Three connections (owners)."""


def granted(locks: LockManager, owner: int, level: int) -> bool:
    """Ask for a lock: ``lock`` answers None when granted, else the generation it refused
    at, which must be the current one."""
    refused_at = locks.lock(owner, level)
    if refused_at is not None:
        assert refused_at == locks.generation
    return refused_at is None


def test_many_shared_locks_together() -> None:
    locks = LockManager()
    for owner in (A, B, C):
        assert granted(locks, owner, LOCK_SHARED)
    assert granted(locks, A, LOCK_SHARED)  # again: already held
    assert not locks.reserved()


def test_one_reserved_at_a_time_while_readers_continue() -> None:
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert granted(locks, A, LOCK_RESERVED)  # idempotent
    assert locks.reserved()
    # lockingv3 §3: "only a single RESERVED lock may be active at one time".
    assert not granted(locks, B, LOCK_RESERVED)
    # ... "but new SHARED locks can be acquired": readers come and go.
    assert granted(locks, C, LOCK_SHARED)
    locks.unlock(B, LOCK_NONE)
    assert granted(locks, B, LOCK_SHARED)
    # A's RESERVED given back: now B may take it.
    locks.unlock(A, LOCK_SHARED)
    assert granted(locks, B, LOCK_RESERVED)
    assert not granted(locks, A, LOCK_RESERVED)


def test_reserved_needs_shared_first() -> None:
    locks = LockManager()
    with pytest.raises(AssertionError):
        locks.lock(A, LOCK_RESERVED)
    with pytest.raises(AssertionError):
        locks.lock(A, LOCK_EXCLUSIVE)


def test_exclusive_with_no_other_reader() -> None:
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert granted(locks, A, LOCK_EXCLUSIVE)
    assert granted(locks, A, LOCK_EXCLUSIVE)  # idempotent
    assert locks.reserved()
    # EXCLUSIVE is alone: no reader, no other writer.
    assert not granted(locks, B, LOCK_SHARED)
    locks.unlock(A, LOCK_NONE)
    assert not locks.reserved()
    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, B, LOCK_RESERVED)


def test_exclusive_waits_for_readers_keeping_pending() -> None:
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    # B still reads: A cannot have EXCLUSIVE yet, but holds PENDING from now on.
    assert not granted(locks, A, LOCK_EXCLUSIVE)
    assert locks.reserved()
    # lockingv3 §3 PENDING: "no new SHARED locks will be granted".
    assert not granted(locks, C, LOCK_SHARED)
    # B, already a reader, keeps reading (its SHARED is held) but cannot write.
    assert granted(locks, B, LOCK_SHARED)
    assert not granted(locks, B, LOCK_RESERVED)
    assert not granted(locks, B, LOCK_EXCLUSIVE)
    assert not granted(locks, A, LOCK_EXCLUSIVE)  # retried: B is still there
    assert not granted(locks, C, LOCK_SHARED)
    # The last reader leaves: the retry succeeds.
    locks.unlock(B, LOCK_NONE)
    assert granted(locks, A, LOCK_EXCLUSIVE)
    assert not granted(locks, B, LOCK_SHARED)
    assert not granted(locks, C, LOCK_SHARED)
    # Commit done: A back to SHARED; PENDING and EXCLUSIVE are gone with it.
    locks.unlock(A, LOCK_SHARED)
    assert not locks.reserved()
    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, C, LOCK_SHARED)
    assert granted(locks, C, LOCK_RESERVED)


def test_giving_up_on_exclusive_releases_pending() -> None:
    """A writer that times out waiting for readers rolls back to SHARED: readers return."""
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert not granted(locks, A, LOCK_EXCLUSIVE)
    assert not granted(locks, C, LOCK_SHARED)
    locks.unlock(A, LOCK_SHARED)
    assert not locks.reserved()
    assert granted(locks, C, LOCK_SHARED)
    # B can now write, and A must wait for it in turn.
    assert granted(locks, B, LOCK_RESERVED)
    assert not granted(locks, A, LOCK_RESERVED)


def test_another_writers_pending_refuses_exclusive() -> None:
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert not granted(locks, A, LOCK_EXCLUSIVE)  # PENDING held by A
    assert not granted(locks, B, LOCK_EXCLUSIVE)
    locks.unlock(B, LOCK_NONE)
    assert granted(locks, A, LOCK_EXCLUSIVE)


def test_unlock_to_shared_keeps_reading_and_to_none_leaves() -> None:
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert granted(locks, A, LOCK_EXCLUSIVE)
    locks.unlock(A, LOCK_SHARED)
    assert not locks.reserved()
    # A still holds SHARED: B's EXCLUSIVE must wait for it.
    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, B, LOCK_RESERVED)
    assert not granted(locks, B, LOCK_EXCLUSIVE)
    locks.unlock(A, LOCK_NONE)
    assert granted(locks, B, LOCK_EXCLUSIVE)
    locks.unlock(B, LOCK_NONE)
    # Nobody holds anything: unlocking again is harmless.
    locks.unlock(A, LOCK_NONE)
    locks.unlock(B, LOCK_NONE)
    assert not locks.reserved()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert granted(locks, A, LOCK_EXCLUSIVE)


def test_reserved_reports_any_write_lock() -> None:
    locks = LockManager()
    assert not locks.reserved()
    assert granted(locks, A, LOCK_SHARED)
    assert not locks.reserved()
    assert granted(locks, A, LOCK_RESERVED)
    assert locks.reserved()
    locks.unlock(A, LOCK_SHARED)
    assert not locks.reserved()
    # PENDING alone (a reader straight to EXCLUSIVE, as in hot-journal recovery) counts too.
    assert granted(locks, B, LOCK_SHARED)
    assert not granted(locks, A, LOCK_EXCLUSIVE)
    assert locks.reserved()
    locks.unlock(A, LOCK_NONE)
    assert not locks.reserved()


def test_releasing_a_write_lock_notifies_a_waiter() -> None:
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    waiting = threading.Event()
    woke: list[bool] = []

    def waiter() -> None:
        with locks.changed:
            waiting.set()
            # Holding the condition until wait() releases it: the unlock below cannot
            # notify before this thread waits.
            woke.append(locks.changed.wait(timeout=10))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(timeout=10)
    generation = locks.generation
    locks.unlock(A, LOCK_SHARED)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert woke == [True]
    assert locks.generation == generation + 1


def test_which_releases_count() -> None:
    """Only a release someone can be waiting for moves the generation (and notifies):
    a write lock, or a reader leaving while a writer waits for readers. A reader leaving
    otherwise must not, or refused sessions (each retry takes and drops SHARED) would
    wake each other in a loop."""
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, B, LOCK_SHARED)
    locks.unlock(B, LOCK_NONE)
    locks.unlock(A, LOCK_SHARED)  # SHARED to SHARED: nothing released
    assert locks.generation == 0
    locks.unlock(C, LOCK_NONE)  # held nothing
    assert locks.generation == 0

    assert granted(locks, B, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    locks.unlock(A, LOCK_SHARED)  # RESERVED released
    assert locks.generation == 1
    locks.unlock(A, LOCK_NONE)  # then SHARED, no writer waiting
    assert locks.generation == 1

    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert not granted(locks, A, LOCK_EXCLUSIVE)  # PENDING: A waits for B to leave
    locks.unlock(B, LOCK_NONE)  # the reader A waits for leaves
    assert locks.generation == 2
    assert granted(locks, A, LOCK_EXCLUSIVE)
    locks.unlock(A, LOCK_NONE)
    assert locks.generation == 3


def test_wait_for_release_does_not_miss_a_release_before_it_waits() -> None:
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert granted(locks, B, LOCK_SHARED)
    refused_at = locks.lock(B, LOCK_RESERVED)
    assert refused_at == 0
    # The writer releases between B's refusal and B's wait: B must not wait at all.
    locks.unlock(A, LOCK_SHARED)
    started = time.monotonic()
    locks.wait_for_release(refused_at, timeout_s=10)
    assert time.monotonic() - started < 5
    assert granted(locks, B, LOCK_RESERVED)
    # With nothing released since, the wait lasts its timeout.
    refused_at = locks.lock(A, LOCK_RESERVED)
    assert refused_at is not None
    started = time.monotonic()
    locks.wait_for_release(refused_at, timeout_s=0.05)
    assert time.monotonic() - started >= 0.04


def test_a_refused_writer_waits_for_release_and_gets_the_lock() -> None:
    """What the session's busy handler does: wait for a release, then retry."""
    locks = LockManager()
    assert granted(locks, A, LOCK_SHARED)
    assert granted(locks, A, LOCK_RESERVED)
    assert granted(locks, B, LOCK_SHARED)
    got = threading.Event()
    attempts: list[int] = []

    def writer() -> None:
        for attempt in range(1000):
            attempts.append(attempt)
            refused_at = locks.lock(B, LOCK_RESERVED)
            if refused_at is None:
                got.set()
                return
            locks.wait_for_release(refused_at, timeout_s=10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert not got.wait(timeout=0.1)
    locks.unlock(A, LOCK_NONE)
    assert got.wait(timeout=10)
    thread.join(timeout=10)
    # Woken by the release, not by polling: one refused try, then the granted one.
    assert attempts == [0, 1]
    assert locks.reserved()
    assert granted(locks, A, LOCK_SHARED)
    assert not granted(locks, A, LOCK_RESERVED)
