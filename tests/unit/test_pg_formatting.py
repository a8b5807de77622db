"""to_char against PostgreSQL 15: every case in ``data/to_char_postgres15.json`` was run on a
real PostgreSQL 15 (dates, timestamps, timestamptz, intervals and numbers, over a range of
templates); Borealis must print the same text, or refuse with 0A000 the few templates it
does not implement (number RN, EEEE, V, L and TH; the date fields PostgreSQL prints for an
interval as if from a date)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from borealis.protocol.postgres import formatting
from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.numeric import SqlFunctionError
from borealis.protocol.postgres.translate import translate_statement

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "to_char_postgres15.json").read_text())["cases"]
REFUSED_NUMBER_TEMPLATES = ("RN", "EEEE", "V99", "L999", "th")
REFUSED_INTERVAL_FIELDS = ("Q", "IYYY", "RM")


def refused_by_design(case: dict[str, Any]) -> bool:
    template = case["template"]
    if case["type"] == "interval":
        return any(field in template for field in REFUSED_INTERVAL_FIELDS)
    if case["type"] == "":
        return any(feature in template for feature in REFUSED_NUMBER_TEMPLATES)
    return False


def test_every_case_prints_what_postgres_printed() -> None:
    matched = refused = 0
    for case in CASES:
        try:
            got = formatting.to_char(case["stored"], case["template"], case["type"])
        except SqlFunctionError as error:
            got = f"ERROR {error.sqlstate}"
        if refused_by_design(case) and got == "ERROR 0A000":
            refused += 1
            continue
        assert got == case["postgres"], case
        matched += 1
    assert matched > 300 and refused < 80, (matched, refused)


def test_the_time_zone_abbreviation_needs_a_known_type() -> None:
    assert formatting.to_char("2024-01-02 03:04:05", "HH24 TZ", "timestamptz") == "03 UTC"
    assert formatting.to_char("2024-01-02 03:04:05", "HH24 TZ", "timestamp") == "03 "
    with pytest.raises(SqlFunctionError) as failure:
        formatting.to_char("2024-01-02 03:04:05", "HH24 TZ", "")
    assert failure.value.sqlstate == "0A000" and "::timestamptz" in str(failure.value)
    assert formatting.to_char("2024-01-02 03:04:05", "HH24 OF", "") == "03 +00"


def test_to_char_keeps_its_template_through_translation() -> None:
    statement = translate_statement(
        "SELECT to_char(now(), 'FMDay, DDth \"of\" FMMonth'), to_char(t.x, 'FM999,990.00'), "
        "pg_catalog.to_char(1, '9') FROM t")
    sql = statement.sqlite[0]
    assert "'FMDay, DDth \"of\" FMMonth', 'timestamptz'" in sql, sql
    assert "_PG_TO_CHAR(t.x, 'FM999,990.00', '')" in sql, sql
    assert [c.name for c in statement.columns or ()] == ["to_char"] * 3
    assert {c.type_oid for c in statement.columns or ()} == {25}
    # a column named to_char, and the word in a string, stay as they are
    other = translate_statement("SELECT to_char, 'to_char(x)' FROM t")
    assert "to_char" in other.sqlite[0] and "'to_char(x)'" in other.sqlite[0]


DATE_CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "to_date_postgres15.json").read_text())["cases"]


def test_to_date_and_to_timestamp_read_as_postgres_reads() -> None:
    """Each case as PostgreSQL 15 printed it (its text output of the date and the
    timestamptz, or the SQLSTATE it refused it with)."""
    for case in DATE_CASES:
        got = []
        for function, type_name in ((formatting.to_date, "date"),
                                    (formatting.to_timestamp, "timestamptz")):
            try:
                value = function(case["text"], case["template"])
                got.append(pgtypes.encode_text(pgtypes.BY_NAME[type_name], value).decode())
            except SqlFunctionError as error:
                got.append(f"ERROR {error.sqlstate}")
        assert got == [case["to_date"], case["to_timestamp"]], case
    assert len(DATE_CASES) >= 25


def test_to_timestamp_of_seconds_since_the_epoch() -> None:
    assert formatting.to_timestamp(1709647629.5) == "2024-03-05 14:07:09.5"
    assert formatting.to_timestamp("0") == "1970-01-01 00:00:00"
    assert formatting.to_timestamp(None) is None
