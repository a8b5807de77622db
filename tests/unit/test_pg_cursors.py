"""Cursor movement: FETCH and MOVE in every direction over a SCROLL cursor of five rows,
against what PostgreSQL 15 returned for the same statements in the same order (recorded from
``DECLARE c SCROLL CURSOR FOR SELECT i FROM generate_series(1, 5) i``)."""

from __future__ import annotations

import pytest

from borealis.errors import SqlError
from borealis.protocol.postgres import cursors

POSTGRES_15 = [
    ("FETCH 2", [1, 2], "FETCH 2"), ("FETCH PRIOR", [1], "FETCH 1"),
    ("FETCH PRIOR", [], "FETCH 0"), ("FETCH PRIOR", [], "FETCH 0"),
    ("FETCH NEXT", [1], "FETCH 1"), ("FETCH LAST", [5], "FETCH 1"),
    ("FETCH NEXT", [], "FETCH 0"), ("FETCH NEXT", [], "FETCH 0"),
    ("FETCH PRIOR", [5], "FETCH 1"), ("FETCH ABSOLUTE 2", [2], "FETCH 1"),
    ("FETCH RELATIVE 2", [4], "FETCH 1"), ("FETCH RELATIVE 0", [4], "FETCH 1"),
    ("FETCH FORWARD 0", [4], "FETCH 1"), ("FETCH BACKWARD 2", [3, 2], "FETCH 2"),
    ("FETCH ABSOLUTE -1", [5], "FETCH 1"), ("FETCH ABSOLUTE 0", [], "FETCH 0"),
    ("FETCH RELATIVE 0", [], "FETCH 0"), ("FETCH ABSOLUTE 9", [], "FETCH 0"),
    ("FETCH BACKWARD ALL", [5, 4, 3, 2, 1], "FETCH 5"),
    ("FETCH FORWARD ALL", [1, 2, 3, 4, 5], "FETCH 5"), ("FETCH -2", [5, 4], "FETCH 2"),
    ("FETCH RELATIVE -10", [], "FETCH 0"), ("FETCH FIRST", [1], "FETCH 1"),
    ("MOVE FORWARD 3", [], "MOVE 3"), ("FETCH BACKWARD 0", [4], "FETCH 1"),
    ("MOVE ALL", [], "MOVE 1"), ("FETCH BACKWARD 1", [5], "FETCH 1"),
    ("MOVE ABSOLUTE 7", [], "MOVE 0"), ("FETCH 1", [], "FETCH 0"),
    ("FETCH ABSOLUTE -6", [], "FETCH 0"), ("FETCH ABSOLUTE -5", [1], "FETCH 1"),
    ("FETCH RELATIVE 10", [], "FETCH 0"), ("FETCH RELATIVE -1", [5], "FETCH 1"),
]


def test_every_direction_moves_as_postgres_moves() -> None:
    declare = cursors.parse("DECLARE c SCROLL CURSOR FOR SELECT 1")
    assert isinstance(declare, cursors.Declare) and declare.scroll
    rows = cursors.CursorRows([(i,) for i in range(1, 6)], declare.scroll)
    for sql, expected, tag in POSTGRES_15:
        fetch = cursors.parse(f"{sql} FROM c")
        assert isinstance(fetch, cursors.Fetch), sql
        got = [row[0] for row in rows.fetch(fetch)]
        assert (got if not fetch.move else [], f"{fetch.verb} {len(got)}") == (
            expected, tag), sql


def test_no_scroll_refuses_to_move_backward() -> None:
    declare = cursors.parse("DECLARE d NO SCROLL CURSOR FOR SELECT 1")
    assert isinstance(declare, cursors.Declare) and not declare.scroll
    rows = cursors.CursorRows([(i,) for i in range(1, 6)], declare.scroll)
    forward = cursors.parse("FETCH 2 FROM d")
    assert isinstance(forward, cursors.Fetch)
    assert rows.fetch(forward) == [(1,), (2,)]
    for sql in ("FETCH PRIOR FROM d", "FETCH ABSOLUTE 1 FROM d", "MOVE BACKWARD ALL IN d",
                "FETCH -1 FROM d"):
        fetch = cursors.parse(sql)
        assert isinstance(fetch, cursors.Fetch)
        with pytest.raises(SqlError) as failure:
            rows.fetch(fetch)
        assert failure.value.sqlstate == "55000"
    forward_again = cursors.parse("FETCH ABSOLUTE 4 FROM d")
    assert isinstance(forward_again, cursors.Fetch)
    assert rows.fetch(forward_again) == [(4,)]


def test_an_execute_of_the_cursor_portal_takes_the_rows_ahead() -> None:
    rows = cursors.CursorRows([(1,), (2,), (3,)], True)
    first = cursors.parse("FETCH 1 FROM c")
    assert isinstance(first, cursors.Fetch)
    rows.fetch(first)
    assert len(rows) == 2 and rows[0] == (2,)
    assert [rows.popleft(), rows.popleft()] == [(2,), (3,)] and not rows
