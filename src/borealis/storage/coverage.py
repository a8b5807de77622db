"""Which LSN ranges a segment holds every record of: a set of half-open intervals ``(a, b]``.

A segment learns coverage from three sources: a write batch ``(prev_through, through]`` that
carries every record of its PG in that range, a truncation (a range where no valid record
exists), and a gossip reply from a peer. The segment complete LSN (SCL) is the end of the
interval that starts at zero: below it the segment has every record of its PG. Ranges
received ahead of a hole are kept as islands and merge when the hole is filled.
"""

from __future__ import annotations

import bisect

from borealis.types import LSN

ISLANDS_MAX = 100_000
"""Bound on disjoint intervals: beyond it the segment is badly behind and the oldest
islands above the SCL are forgotten (they will be fetched again by gossip)."""


class Coverage:
    """A sorted list of disjoint, non-adjacent intervals ``(start, end]`` with start < end."""

    __slots__ = ("_ends", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def __repr__(self) -> str:
        return f"Coverage({list(zip(self._starts, self._ends, strict=True))})"

    def intervals(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def add(self, start: int, end: int) -> None:
        """Mark ``(start, end]`` as covered."""
        assert start >= 0
        if end <= start:
            return
        starts, ends = self._starts, self._ends
        # First interval whose end >= start (it touches or follows the new one).
        i = bisect.bisect_left(ends, start)
        j = i
        new_start, new_end = start, end
        while j < len(starts) and starts[j] <= end:
            new_start = min(new_start, starts[j])
            new_end = max(new_end, ends[j])
            j += 1
        starts[i:j] = [new_start]
        ends[i:j] = [new_end]
        if len(starts) > ISLANDS_MAX:
            del starts[1], ends[1]
        self._check()

    def remove(self, start: int, end: int) -> None:
        """Mark ``(start, end]`` as not covered (a record there was lost or corrupt)."""
        if end <= start:
            return
        new_starts: list[int] = []
        new_ends: list[int] = []
        for s, e in zip(self._starts, self._ends, strict=True):
            if e <= start or s >= end:
                new_starts.append(s)
                new_ends.append(e)
                continue
            if s < start:
                new_starts.append(s)
                new_ends.append(start)
            if e > end:
                new_starts.append(end)
                new_ends.append(e)
        self._starts, self._ends = new_starts, new_ends
        self._check()

    def complete_through(self, base: int = 0) -> LSN:
        """The highest LSN ``x`` with ``(base, x]`` covered: the SCL when base is zero."""
        i = bisect.bisect_left(self._ends, base)
        if i < len(self._starts) and self._starts[i] <= base:
            return LSN(self._ends[i])
        return LSN(base)

    def covers(self, start: int, end: int) -> bool:
        if end <= start:
            return True
        i = bisect.bisect_left(self._ends, end)
        return i < len(self._starts) and self._starts[i] <= start

    def high(self) -> LSN:
        """The highest covered LSN (possibly on an island above a hole)."""
        return LSN(self._ends[-1]) if self._ends else LSN(0)

    def first_hole(self, base: int = 0) -> tuple[int, int] | None:
        """The first missing range ``(a, b]`` above ``base`` that an island lies beyond."""
        scl = self.complete_through(base)
        i = bisect.bisect_right(self._starts, scl)
        if i < len(self._starts):
            return scl, self._starts[i]
        return None

    def intersect(self, start: int, end: int) -> list[tuple[int, int]]:
        out = []
        for s, e in zip(self._starts, self._ends, strict=True):
            lo, hi = max(s, start), min(e, end)
            if lo < hi:
                out.append((lo, hi))
        return out

    def _check(self) -> None:
        starts, ends = self._starts, self._ends
        assert len(starts) == len(ends)
        for k in range(len(starts)):
            assert starts[k] < ends[k], (starts, ends)
            if k:
                assert ends[k - 1] < starts[k], (starts, ends)
