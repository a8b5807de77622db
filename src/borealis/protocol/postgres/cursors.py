"""SQL cursors: ``DECLARE name CURSOR FOR query``, ``FETCH``, ``MOVE`` and ``CLOSE``; and
``DEALLOCATE`` of prepared statements.

A cursor is a portal with a name (PostgreSQL's protocol and SQL share the namespace:
psycopg describes a DECLAREd cursor with a Describe of that portal), so the server keeps
cursors among its portals: DECLARE runs the query and keeps its rows (``CursorRows``), and
FETCH and MOVE move over them in every direction PostgreSQL has (NEXT, PRIOR, FIRST, LAST,
ABSOLUTE, RELATIVE, FORWARD, BACKWARD, counts and ALL), with its positions: before the
first row, on a row, after the last. A cursor declared NO SCROLL refuses to move backward
(55000), as PostgreSQL does. A cursor ends with its transaction unless declared WITH HOLD,
as in PostgreSQL. This module parses the statements (sqlglot does not); ``query.py`` runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from borealis.errors import SqlError

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_DECLARE = re.compile(
    rf"^\s*DECLARE\s+(?P<name>{_NAME})\s+(?P<options>(?:(?:BINARY|INSENSITIVE|ASENSITIVE|"
    r"NO\s+SCROLL|SCROLL)\s+)*)CURSOR\s+(?:(?P<hold>WITH|WITHOUT)\s+HOLD\s+)?FOR\s+"
    r"(?P<query>[\s\S]+?)\s*$", re.I)
_COUNT = r"[+-]?\d+"
_FETCH = re.compile(
    rf"^\s*(?P<verb>FETCH|MOVE)\s+(?:(?P<direction>NEXT|PRIOR|FIRST|LAST|ALL|{_COUNT}|"
    rf"(?:FORWARD|BACKWARD)(?:\s+ALL|\s+{_COUNT})?|(?:ABSOLUTE|RELATIVE)\s+{_COUNT})\s+)?"
    rf"(?:(?:FROM|IN)\s+)?(?P<name>{_NAME})\s*$", re.I)
_CLOSE = re.compile(rf"^\s*CLOSE\s+(?P<name>ALL|{_NAME})\s*$", re.I)
_DEALLOCATE = re.compile(rf"^\s*DEALLOCATE\s+(?:PREPARE\s+)?(?P<name>ALL|{_NAME})\s*$", re.I)


@dataclass(frozen=True, slots=True)
class Declare:
    name: str
    query: str
    binary: bool
    hold: bool
    scroll: bool = True  # False: declared NO SCROLL


@dataclass(frozen=True, slots=True)
class Fetch:
    name: str
    count: int | None   # forward/backward: how many rows, None for ALL; else the row
    move: bool          # MOVE: skip the rows, send none
    how: str = "forward"  # forward, backward, absolute or relative

    @property
    def verb(self) -> str:
        return "MOVE" if self.move else "FETCH"


class CursorRows:
    """A cursor's rows and its position, as PostgreSQL counts it: 0 before the first row,
    k on the k-th, n + 1 after the last. It also serves as the portal's queue of rows
    (``popleft``, ``len``: the rows ahead) for an Execute of the cursor's portal."""

    def __init__(self, rows: list[tuple[Any, ...]], scroll: bool) -> None:
        self.rows = rows
        self.scroll = scroll
        self.position = 0

    def __len__(self) -> int:
        return max(0, len(self.rows) - self.position)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return self.rows[self.position + index]

    def popleft(self) -> tuple[Any, ...]:
        row = self.rows[self.position]
        self.position += 1
        return row

    def fetch(self, fetch: Fetch) -> list[tuple[Any, ...]]:
        """The rows ``fetch`` returns (in the order it returns them), moving the cursor."""
        n, p, count = len(self.rows), self.position, fetch.count
        if fetch.how in ("forward", "backward") and count == 0:
            return self._go(p, relative=True)
        if fetch.how in ("absolute", "relative"):
            assert count is not None
            target = (p + count if fetch.how == "relative"
                      else count if count >= 0 else n + 1 + count)
            if target < p:
                self._backward()
            return self._go(target, relative=fetch.how == "relative" and count == 0)
        if fetch.how == "forward":
            stop = n if count is None else min(p + count, n)
            out = self.rows[p:stop] if p < n else []
            self.position = n + 1 if count is None or p + count > n else p + count
            return out
        self._backward()
        low = 1 if count is None else max(p - count, 1)
        out = [self.rows[k - 1] for k in range(min(p - 1, n), low - 1, -1)]
        self.position = 0 if count is None or p - count < 1 else p - count
        return out

    def _go(self, target: int, *, relative: bool) -> list[tuple[Any, ...]]:
        """To row ``target`` (clamped to before the first or after the last row)."""
        n = len(self.rows)
        if relative and not 1 <= target <= n:
            return []
        self.position = max(0, min(target, n + 1))
        return [self.rows[target - 1]] if 1 <= target <= n else []

    def _backward(self) -> None:
        if not self.scroll:
            raise SqlError("cursor can only scan forward", "55000")


@dataclass(frozen=True, slots=True)
class CloseCursor:
    name: str | None    # None: CLOSE ALL


@dataclass(frozen=True, slots=True)
class Deallocate:
    """DEALLOCATE: drops a prepared statement (the protocol's named statements and SQL's
    PREPARE share one namespace in PostgreSQL)."""

    name: str | None    # None: DEALLOCATE ALL


CursorStatement = Declare | Fetch | CloseCursor | Deallocate


def _identifier(text: str) -> str:
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def _direction(text: str) -> tuple[str, int | None]:
    """FETCH's direction as (how, count)."""
    fixed: dict[str, tuple[str, int | None]] = {
        "NEXT": ("forward", 1), "FORWARD": ("forward", 1), "PRIOR": ("backward", 1),
        "BACKWARD": ("backward", 1), "FIRST": ("absolute", 1), "LAST": ("absolute", -1),
        "ALL": ("forward", None), "FORWARD ALL": ("forward", None),
        "BACKWARD ALL": ("backward", None)}
    if text in fixed:
        return fixed[text]
    words = text.split()
    count = int(words[-1])
    how = words[0].lower() if len(words) == 2 else "forward"
    if how in ("forward", "backward") and count < 0:  # FETCH -2 is BACKWARD 2
        how, count = ("backward" if how == "forward" else "forward"), -count
    return how, count


def parse(sql: str) -> CursorStatement | None:
    """The cursor statement ``sql`` is, or None for any other statement."""
    if (match := _DECLARE.match(sql)) is not None:
        options = " ".join(match["options"].upper().split())
        return Declare(_identifier(match["name"]), match["query"], "BINARY" in options,
                       (match["hold"] or "").upper() == "WITH", "NO SCROLL" not in options)
    if (match := _FETCH.match(sql)) is not None:
        how, count = _direction(" ".join((match["direction"] or "NEXT").upper().split()))
        return Fetch(_identifier(match["name"]), count, match["verb"].upper() == "MOVE", how)
    if (match := _CLOSE.match(sql)) is not None:
        name = match["name"]
        return CloseCursor(None if name.upper() == "ALL" else _identifier(name))
    if (match := _DEALLOCATE.match(sql)) is not None:
        name = match["name"]
        return Deallocate(None if name.upper() == "ALL" else _identifier(name))
    return None
