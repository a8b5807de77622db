"""Coverage against a naive model: a Python set of the covered integer LSNs.

Coverage stores half-open intervals ``(a, b]``; the model stores the LSNs ``a + 1 .. b``
themselves, so every query has an obvious (slow) answer to compare with.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from borealis.storage.coverage import Coverage

LSN_TOP = 60
"""Small enough that random adds and removes collide, merge and split often."""


class CoverageModel:
    """The covered LSNs, one by one."""

    def __init__(self) -> None:
        self.lsns: set[int] = set()

    def add(self, start: int, end: int) -> None:
        self.lsns.update(range(start + 1, end + 1))

    def remove(self, start: int, end: int) -> None:
        self.lsns.difference_update(range(start + 1, end + 1))

    def complete_through(self, base: int) -> int:
        x = base
        while x + 1 in self.lsns:
            x += 1
        return x

    def covers(self, start: int, end: int) -> bool:
        return all(x in self.lsns for x in range(start + 1, end + 1))

    def high(self) -> int:
        return max(self.lsns, default=0)

    def first_hole(self, base: int) -> tuple[int, int] | None:
        scl = self.complete_through(base)
        above = [x for x in self.lsns if x > scl]
        if not above:
            return None
        return scl, min(above) - 1

    def intersect(self, start: int, end: int) -> list[tuple[int, int]]:
        return runs(x for x in self.lsns if start < x <= end)

    def intervals(self) -> list[tuple[int, int]]:
        return runs(self.lsns)


def runs(lsns: Iterable[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive LSNs as ``(a, b]`` intervals."""
    out: list[tuple[int, int]] = []
    for x in sorted(lsns):
        if out and out[-1][1] == x - 1:
            out[-1] = (out[-1][0], x)
        else:
            out.append((x - 1, x))
    return out


lsn = st.integers(min_value=0, max_value=LSN_TOP)
operation = st.tuples(st.sampled_from(["add", "remove"]), lsn, lsn)


def build(ops: list[tuple[str, int, int]]) -> tuple[Coverage, CoverageModel]:
    coverage, model = Coverage(), CoverageModel()
    for op, a, b in ops:
        getattr(coverage, op)(a, b)
        getattr(model, op)(a, b)
        assert coverage.intervals() == model.intervals(), (op, a, b)
    return coverage, model


@settings(max_examples=300)
@given(st.lists(operation, max_size=30))
def test_intervals_match_model_after_every_operation(ops: list[tuple[str, int, int]]) -> None:
    coverage, _ = build(ops)
    # Disjoint, non-adjacent, sorted: the representation's own invariant.
    intervals = coverage.intervals()
    for (_, e0), (s1, _) in itertools.pairwise(intervals):
        assert e0 < s1


@settings(max_examples=300)
@given(st.lists(operation, max_size=30), st.lists(st.tuples(lsn, lsn), min_size=1, max_size=10))
def test_queries_match_model(
    ops: list[tuple[str, int, int]], queries: list[tuple[int, int]]
) -> None:
    coverage, model = build(ops)
    assert coverage.high() == model.high()
    assert coverage.complete_through() == model.complete_through(0)
    assert coverage.first_hole() == model.first_hole(0)
    for a, b in queries:
        assert coverage.complete_through(a) == model.complete_through(a), a
        assert coverage.first_hole(a) == model.first_hole(a), a
        assert coverage.covers(a, b) == model.covers(a, b), (a, b)
        assert coverage.intersect(a, b) == model.intersect(a, b), (a, b)


# --- readable examples ---------------------------------------------------------------------


def test_empty_coverage() -> None:
    coverage = Coverage()
    assert coverage.complete_through() == 0
    assert coverage.high() == 0
    assert coverage.first_hole() is None
    assert coverage.covers(5, 5)  # an empty range is always covered
    assert not coverage.covers(0, 1)
    assert coverage.intersect(0, 100) == []


def test_contiguous_batches_advance_the_scl() -> None:
    coverage = Coverage()
    coverage.add(0, 10)
    coverage.add(10, 20)  # adjacent: merges
    assert coverage.intervals() == [(0, 20)]
    assert coverage.complete_through() == 20


def test_island_above_a_hole_keeps_the_scl_until_the_hole_is_filled() -> None:
    coverage = Coverage()
    coverage.add(0, 10)
    coverage.add(15, 20)
    assert coverage.complete_through() == 10
    assert coverage.high() == 20
    assert coverage.first_hole() == (10, 15)
    assert coverage.covers(15, 20)
    assert not coverage.covers(9, 16)
    coverage.add(10, 15)
    assert coverage.intervals() == [(0, 20)]
    assert coverage.first_hole() is None


def test_complete_through_a_base_inside_a_hole_starts_at_the_base() -> None:
    coverage = Coverage()
    coverage.add(0, 5)
    coverage.add(10, 20)
    assert coverage.complete_through(7) == 7
    assert coverage.complete_through(10) == 20
    assert coverage.complete_through(3) == 5
    assert coverage.first_hole(7) == (7, 10)


def test_remove_splits_an_interval() -> None:
    coverage = Coverage()
    coverage.add(0, 20)
    coverage.remove(7, 9)
    assert coverage.intervals() == [(0, 7), (9, 20)]
    assert coverage.complete_through() == 7
    assert coverage.first_hole() == (7, 9)
    assert coverage.intersect(5, 12) == [(5, 7), (9, 12)]


def test_empty_or_backwards_ranges_change_nothing() -> None:
    coverage = Coverage()
    coverage.add(0, 10)
    coverage.add(5, 5)
    coverage.add(8, 3)
    coverage.remove(4, 4)
    coverage.remove(9, 2)
    assert coverage.intervals() == [(0, 10)]
