"""SQL cursors: ``DECLARE name CURSOR FOR query``, ``FETCH``, ``MOVE`` and ``CLOSE``; and
``DEALLOCATE`` of prepared statements.

A cursor is a portal with a name (PostgreSQL's protocol and SQL share the namespace:
psycopg describes a DECLAREd cursor with a Describe of that portal), so the server keeps
cursors among its portals: DECLARE runs the query and keeps its rows, FETCH hands them out
forward. Cursors that move backward (SCROLL, FETCH PRIOR/BACKWARD/ABSOLUTE/RELATIVE) are
refused with 0A000. A cursor ends with its transaction unless declared WITH HOLD, as in
PostgreSQL. This module parses the statements (sqlglot does not); ``query.py`` runs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from borealis.errors import SqlError

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_DECLARE = re.compile(
    rf"^\s*DECLARE\s+(?P<name>{_NAME})\s+(?P<options>(?:(?:BINARY|INSENSITIVE|ASENSITIVE|"
    r"NO\s+SCROLL|SCROLL)\s+)*)CURSOR\s+(?:(?P<hold>WITH|WITHOUT)\s+HOLD\s+)?FOR\s+"
    r"(?P<query>[\s\S]+?)\s*$", re.I)
_FETCH = re.compile(
    rf"^\s*(?P<verb>FETCH|MOVE)\s+(?:(?P<direction>NEXT|FORWARD\s+ALL|FORWARD\s+\d+|FORWARD|"
    rf"ALL|\d+|PRIOR|FIRST|LAST|BACKWARD(?:\s+ALL|\s+\d+)?|ABSOLUTE\s+-?\d+|"
    rf"RELATIVE\s+-?\d+)\s+)?(?:(?:FROM|IN)\s+)?(?P<name>{_NAME})\s*$", re.I)
_CLOSE = re.compile(rf"^\s*CLOSE\s+(?P<name>ALL|{_NAME})\s*$", re.I)
_DEALLOCATE = re.compile(rf"^\s*DEALLOCATE\s+(?:PREPARE\s+)?(?P<name>ALL|{_NAME})\s*$", re.I)


@dataclass(frozen=True, slots=True)
class Declare:
    name: str
    query: str
    binary: bool
    hold: bool


@dataclass(frozen=True, slots=True)
class Fetch:
    name: str
    count: int | None   # None: all the rows left
    move: bool          # MOVE: skip the rows, send none

    @property
    def verb(self) -> str:
        return "MOVE" if self.move else "FETCH"


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


def parse(sql: str) -> CursorStatement | None:
    """The cursor statement ``sql`` is, or None for any other statement."""
    if (match := _DECLARE.match(sql)) is not None:
        options = " ".join(match["options"].upper().split())
        if "SCROLL" in options.replace("NO SCROLL", ""):
            raise SqlError("SCROLL cursors are not supported by Borealis (cursors move "
                           "forward only)", "0A000")
        return Declare(_identifier(match["name"]), match["query"], "BINARY" in options,
                       (match["hold"] or "").upper() == "WITH")
    if (match := _FETCH.match(sql)) is not None:
        direction = " ".join((match["direction"] or "NEXT").upper().split())
        count: int | None
        if direction in ("NEXT", "FORWARD"):
            count = 1
        elif direction in ("ALL", "FORWARD ALL"):
            count = None
        elif direction.isdigit():
            count = int(direction)
        elif direction.startswith("FORWARD "):
            count = int(direction.split()[1])
        else:
            raise SqlError(f"FETCH {direction} is not supported by Borealis (cursors move "
                           "forward only)", "0A000")
        return Fetch(_identifier(match["name"]), count, match["verb"].upper() == "MOVE")
    if (match := _CLOSE.match(sql)) is not None:
        name = match["name"]
        return CloseCursor(None if name.upper() == "ALL" else _identifier(name))
    if (match := _DEALLOCATE.match(sql)) is not None:
        name = match["name"]
        return Deallocate(None if name.upper() == "ALL" else _identifier(name))
    return None
