"""DurabilityTracker against a brute-force model (Aurora SIGMOD 2017 §4.1: PGCL, VCL, VDL)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from borealis.types import LSN, WRITE_QUORUM, PgIndex, SegmentId
from borealis.volume.durability import DurabilityTracker, quorum_lsn

PGS = 3


def seg(pg: int, slot: int) -> SegmentId:
    return SegmentId(f"v/pg{pg}/s{slot}")


def model_vcl(acked: dict[SegmentId, int], top: int) -> int:
    """The highest L such that every PG has a write quorum with SCL >= L."""
    best = 0
    for candidate in range(top + 1):
        if all(
            sum(1 for slot in range(6) if acked.get(seg(pg, slot), 0) >= candidate)
            >= WRITE_QUORUM
            for pg in range(PGS)
        ):
            best = candidate
    return best


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, PGS - 1), st.integers(0, 5), st.integers(1, 60)),
                max_size=80),
       st.lists(st.integers(1, 60), max_size=12, unique=True))
def test_vdl_is_the_highest_commit_point_at_or_below_the_quorum_complete_lsn(
    acks: list[tuple[int, int, int]], cpls: list[int]
) -> None:
    tracker = DurabilityTracker()
    for pg in range(PGS):
        tracker.set_pg(PgIndex(pg), [tuple(seg(pg, s) for s in range(6))])
    for c in sorted(cpls):
        tracker.add_cpl(LSN(c))
    acked: dict[SegmentId, int] = {}
    vdl_seen = 0
    for pg, slot, scl in acks:
        s = seg(pg, slot)
        acked[s] = max(acked.get(s, 0), scl)
        tracker.on_ack(PgIndex(pg), s, LSN(scl))
        vcl = model_vcl(acked, 60)
        assert tracker.vcl == vcl
        expected_vdl = max([c for c in cpls if c <= vcl], default=0)
        assert tracker.vdl == expected_vdl
        assert tracker.vdl >= vdl_seen, "VDL never goes backwards"
        vdl_seen = tracker.vdl


def test_three_acks_are_not_durable_four_are() -> None:
    tracker = DurabilityTracker()
    segments = tuple(seg(0, s) for s in range(6))
    tracker.set_pg(PgIndex(0), [segments])
    tracker.add_cpl(LSN(5))
    for s in segments[:3]:
        assert not tracker.on_ack(PgIndex(0), s, LSN(5))
    assert tracker.vdl == 0
    assert tracker.on_ack(PgIndex(0), segments[3], LSN(5))
    assert tracker.vdl == 5


def test_membership_change_needs_a_quorum_in_both_sets() -> None:
    old = tuple(seg(0, s) for s in range(6))
    new = (*old[1:], SegmentId("v/pg0/s0.m1"))
    tracker = DurabilityTracker()
    tracker.set_pg(PgIndex(0), [old, new])
    tracker.add_cpl(LSN(9))
    # Four acks in the old set, of which only three are in the new set: not durable.
    for s in (old[0], old[1], old[2], old[3]):
        tracker.on_ack(PgIndex(0), s, LSN(9))
    assert tracker.vdl == 0
    tracker.on_ack(PgIndex(0), new[-1], LSN(9))
    assert tracker.vdl == 9


def test_dropping_the_old_set_completes_a_pg_at_once() -> None:
    """Regression (CI, test_repair): when the old set was what held a PG back, finishing
    the change must advance VDL right away; no later acknowledgement may come to do it."""
    old = tuple(seg(0, s) for s in range(6))
    new = (*old[1:], SegmentId("v/pg0/s0.m1"))
    tracker = DurabilityTracker()
    tracker.set_pg(PgIndex(0), [old, new])
    tracker.add_cpl(LSN(9))
    for s in (old[1], old[2], old[3], new[-1]):  # old[0] is dead; old[4], old[5] are slow
        tracker.on_ack(PgIndex(0), s, LSN(9))
    assert tracker.vdl == 0, "three of the old set are not a quorum of it"
    assert tracker.set_pg(PgIndex(0), [new])
    assert tracker.vdl == 9


def test_quorum_lsn() -> None:
    assert quorum_lsn([9, 8, 7, 6, 5, 4]) == 6
    assert quorum_lsn([9, 8, 7]) == 0
