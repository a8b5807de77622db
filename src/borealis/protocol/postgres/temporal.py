"""Date and time arithmetic for translated SQL, on Borealis' storage forms.

Dates, timestamps and intervals are stored as text (``types``: 'YYYY-MM-DD',
'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC for timestamptz, ISO 8601 'P1Y2M3DT4H5M6.5S' for
intervals), and SQLite would read '2024-01-31' + 1 as 2025. ``numeric``'s operators hand any
operand that is not a number to ``arithmetic`` here, which recognises the storage forms and
does what PostgreSQL does: timestamp ± interval (months first, clamped to the month's last
day, then days, then time), date ± integer, date - date (days), timestamp - timestamp (an
interval of days and time), interval ± interval, interval * or / a number. ``extract`` and
``date_trunc`` read the same forms. The session's time zone is always UTC, so a day is 24
hours and timestamp and timestamptz share one arithmetic.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.numeric import SqlFunctionError, decimal_of, numeric_text

USEC_PER_SECOND = 1_000_000
USEC_PER_DAY = 86_400 * USEC_PER_SECOND
DAYS_PER_MONTH = 30  # PostgreSQL's interval arithmetic counts a month as 30 days

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?")
_INTERVAL = re.compile(
    r"P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(?:\.(\d{1,6}))?S)?)?")
_INFINITIES = ("infinity", "-infinity")


class Interval:
    """PostgreSQL's interval: months, days and microseconds kept apart."""

    __slots__ = ("days", "months", "usec")

    def __init__(self, months: int, days: int, usec: int) -> None:
        self.months, self.days, self.usec = months, days, usec

    def text(self) -> str:
        """The storage form (IntervalStyle iso_8601)."""
        years, months = _tdiv(self.months, 12)
        hours, usec = _tdiv(self.usec, 3600 * USEC_PER_SECOND)
        minutes, usec = _tdiv(usec, 60 * USEC_PER_SECOND)
        seconds, fraction = _tdiv(usec, USEC_PER_SECOND)
        if not any((years, months, self.days, hours, minutes, seconds, fraction)):
            return "PT0S"
        text = "P" + _part(years, "Y") + _part(months, "M") + _part(self.days, "D")
        if hours or minutes or seconds or fraction:
            text += "T" + _part(hours, "H") + _part(minutes, "M")
        if seconds or fraction:
            sign = "-" if seconds < 0 or fraction < 0 else ""
            digits = f".{abs(fraction):06d}".rstrip("0") if fraction else ""
            text += f"{sign}{abs(seconds)}{digits}S"
        return text


def _tdiv(numerator: int, denominator: int) -> tuple[int, int]:
    """C's division: the quotient truncated toward zero, the remainder with its sign."""
    quotient = abs(numerator) // denominator
    quotient = quotient if numerator >= 0 else -quotient
    return quotient, numerator - quotient * denominator


def _part(value: int, letter: str) -> str:
    return f"{value}{letter}" if value else ""


def _range_error(what: str) -> SqlFunctionError:
    return SqlFunctionError(f"{what} out of range (Borealis supports the years 1 to 9999)", "22008")


def as_interval(value: Any) -> Interval | None:
    if not isinstance(value, str):
        return None
    match = _INTERVAL.fullmatch(value)
    if match is None:
        return None
    years, months, days, hours, minutes, sign, seconds, fraction = match.groups()
    usec = int(seconds or 0) * USEC_PER_SECOND + int((fraction or "").ljust(6, "0"))
    usec = -usec if sign else usec
    usec += (int(hours or 0) * 3600 + int(minutes or 0) * 60) * USEC_PER_SECOND
    return Interval(int(years or 0) * 12 + int(months or 0), int(days or 0), usec)


def as_date(value: Any) -> dt.date | None:
    if isinstance(value, str) and (match := _DATE.fullmatch(value)) is not None:
        try:
            return dt.date(*map(int, match.groups()))
        except ValueError:
            return None
    return None


def as_timestamp(value: Any) -> dt.datetime | None:
    if isinstance(value, str) and (match := _TIMESTAMP.fullmatch(value)) is not None:
        year, month, day, hour, minute, second, fraction = match.groups()
        try:
            return dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                               int(second), int((fraction or "").ljust(6, "0")))
        except ValueError:
            return None
    return None


def timestamp_text(moment: dt.datetime) -> str:
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {moment:%H:%M:%S}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text


def date_text(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def add_interval(moment: dt.datetime, span: Interval, sign: int = 1) -> dt.datetime:
    """timestamp_pl_interval: months (day clamped to the month's end), then days, then
    microseconds."""
    try:
        if span.months:
            months = moment.year * 12 + moment.month - 1 + sign * span.months
            year, month = divmod(months, 12)
            last = _days_in_month(year, month + 1)
            moment = moment.replace(year=year, month=month + 1, day=min(moment.day, last))
        if span.days:
            moment += dt.timedelta(days=sign * span.days)
        return moment + dt.timedelta(microseconds=sign * span.usec)
    except (ValueError, OverflowError):
        raise _range_error("timestamp") from None


def _days_in_month(year: int, month: int) -> int:
    if not 1 <= year <= 9999:
        raise _range_error("timestamp")
    following = dt.date(year + (month == 12), month % 12 + 1, 1)
    return (following - dt.timedelta(days=1)).day


def _interval_between(later: dt.datetime, earlier: dt.datetime) -> Interval:
    """timestamp_mi: the difference as days and time (interval_justify_hours)."""
    delta = later - earlier
    usec = (delta.days * 86_400 + delta.seconds) * USEC_PER_SECOND + delta.microseconds
    days, usec = _tdiv(usec, USEC_PER_DAY)
    if days > 0 and usec < 0:
        usec += USEC_PER_DAY
        days -= 1
    elif days < 0 and usec > 0:
        usec -= USEC_PER_DAY
        days += 1
    return Interval(0, days, usec)


def _scale_interval(span: Interval, factor: Decimal | float, divide: bool) -> Interval:
    """interval_mul / interval_div: fractions of months spill into days (30 a month) and
    fractions of days into time, as PostgreSQL does."""
    if divide:
        if factor == 0:
            raise SqlFunctionError("division by zero", "22012")
        factor = 1 / float(factor)
    value = float(factor)
    month_value = span.months * value
    months = int(month_value)
    day_value = span.days * value
    days = int(day_value)
    month_remainder_days = (month_value - months) * DAYS_PER_MONTH
    month_remainder_days = round(month_remainder_days * USEC_PER_SECOND) / USEC_PER_SECOND
    seconds = (day_value - days + month_remainder_days - int(month_remainder_days)) * 86_400
    seconds = round(seconds * USEC_PER_SECOND) / USEC_PER_SECOND
    if abs(seconds) >= 86_400:
        days += int(seconds / 86_400)
        seconds -= int(seconds / 86_400) * 86_400
    days += int(month_remainder_days)
    usec = span.usec * value + seconds * USEC_PER_SECOND
    if not math.isfinite(usec):
        raise SqlFunctionError("interval out of range", "22008")
    return Interval(months, days, round(usec))


def arithmetic(operator: str, a: Any, b: Any) -> Any:
    """``a <operator> b`` where an operand is a date, timestamp or interval."""
    if a in _INFINITIES or b in _INFINITIES:
        if operator in "+-" and (as_interval(a) or as_interval(b)):
            return a if a in _INFINITIES else b
        raise SqlFunctionError("cannot do arithmetic on infinite dates and timestamps", "22008")
    left_interval, right_interval = as_interval(a), as_interval(b)
    if operator == "+" and left_interval is not None and right_interval is None:
        a, b, left_interval, right_interval = b, a, right_interval, left_interval
    moment = as_timestamp(a)
    day = as_date(a)
    if operator in "+-":
        sign = 1 if operator == "+" else -1
        if left_interval is not None and right_interval is not None:
            return Interval(left_interval.months + sign * right_interval.months,
                            left_interval.days + sign * right_interval.days,
                            left_interval.usec + sign * right_interval.usec).text()
        start = moment if moment is not None else (
            dt.datetime.combine(day, dt.time()) if day is not None else None)
        if right_interval is not None and start is not None:
            return timestamp_text(add_interval(start, right_interval, sign))
        if day is not None and isinstance(b, int) and not isinstance(b, bool):
            try:
                return date_text(day + dt.timedelta(days=sign * b))
            except OverflowError:
                raise _range_error("date") from None
        if operator == "+" and isinstance(a, int) and as_date(b) is not None:
            return arithmetic("+", b, a)
        if operator == "-":
            other_day = as_date(b)
            if day is not None and other_day is not None:
                return (day - other_day).days
            later = moment or (dt.datetime.combine(day, dt.time()) if day else None)
            other = as_timestamp(b) or (dt.datetime.combine(other_day, dt.time())
                                        if other_day else None)
            if later is not None and other is not None:
                return _interval_between(later, other).text()
    if operator in "*/":
        span, factor = (left_interval, b) if left_interval is not None else (right_interval, a)
        number = decimal_of(factor) if not isinstance(factor, float) else factor
        if span is not None and number is not None and (operator == "*" or
                                                        left_interval is not None):
            return _scale_interval(span, number, operator == "/").text()
    raise SqlFunctionError(f"operator does not exist: {_describe(a)} {operator} {_describe(b)}",
                       "42883")


def _describe(value: Any) -> str:
    if isinstance(value, bool | int):
        return "integer"
    if isinstance(value, float):
        return "double precision"
    if as_interval(value) is not None:
        return "interval"
    if as_timestamp(value) is not None:
        return "timestamp"
    if as_date(value) is not None:
        return "date"
    return "text" if isinstance(value, str) else type(value).__name__


def negate(value: Any) -> Any:
    span = as_interval(value)
    if span is None:
        raise SqlFunctionError(f"operator does not exist: - {_describe(value)}", "42883")
    return Interval(-span.months, -span.days, -span.usec).text()


# --- extract and date_trunc ------------------------------------------------------------------

_FIELD_ALIASES = {"years": "year", "months": "month", "mon": "month", "days": "day",
                  "hours": "hour", "minutes": "minute", "min": "minute", "seconds": "second",
                  "sec": "second", "dow": "dow", "doy": "doy", "quarter": "quarter",
                  "week": "week", "epoch": "epoch", "microseconds": "microseconds",
                  "milliseconds": "milliseconds", "isodow": "isodow", "isoyear": "isoyear",
                  "decade": "decade", "century": "century", "millennium": "millennium",
                  "julian": "julian"}


def _field(name: Any) -> str:
    text = str(name).strip().lower()
    return _FIELD_ALIASES.get(text, text)


def _moment_of(value: Any) -> tuple[dt.datetime, bool] | None:
    """(the instant, whether it was a date) of a date or timestamp storage value."""
    moment = as_timestamp(value)
    if moment is not None:
        return moment, False
    day = as_date(value)
    if day is not None:
        return dt.datetime.combine(day, dt.time()), True
    if isinstance(value, str) and value not in _INFINITIES:
        try:  # a literal as written: read it as timestamptz input
            stored = pgtypes.decode_text(pgtypes.BY_NAME["timestamptz"], value.encode())
        except pgtypes.PgValueError:
            return None
        moment = as_timestamp(stored)
        return (moment, False) if moment is not None else None
    return None


def extract(field: Any, value: Any) -> Any:
    """EXTRACT(field FROM x) and date_part: numeric, as PostgreSQL 14+ returns it."""
    if field is None or value is None:
        return None
    name = _field(field)
    span = as_interval(value)
    if span is not None:
        return _extract_interval(name, span)
    found = _moment_of(value)
    if found is None:
        raise SqlFunctionError(f'unit "{name}" not supported for this value', "0A000")
    moment, is_date = found
    if is_date and name in ("hour", "minute", "second", "milliseconds", "microseconds"):
        raise SqlFunctionError(f'unit "{name}" not supported for type date', "0A000")
    seconds = Decimal(moment.second) + Decimal(moment.microsecond).scaleb(-6)
    simple: dict[str, Any] = {
        "year": moment.year, "month": moment.month, "day": moment.day, "hour": moment.hour,
        "minute": moment.minute, "dow": (moment.weekday() + 1) % 7,
        "isodow": moment.isoweekday(), "doy": moment.timetuple().tm_yday,
        "quarter": (moment.month - 1) // 3 + 1, "week": moment.isocalendar()[1],
        "isoyear": moment.isocalendar()[0], "decade": moment.year // 10,
        "century": (moment.year + 99) // 100, "millennium": (moment.year + 999) // 1000,
    }
    if name in simple:
        return simple[name]
    if name == "second":
        return numeric_text(seconds.quantize(Decimal("0.000001")))
    if name == "milliseconds":
        return numeric_text((seconds * 1000).quantize(Decimal("0.001")))
    if name == "microseconds":
        return moment.second * USEC_PER_SECOND + moment.microsecond
    if name == "epoch":
        delta = moment - dt.datetime(1970, 1, 1)
        usec = (delta.days * 86_400 + delta.seconds) * USEC_PER_SECOND + delta.microseconds
        if is_date:  # a date's epoch has no fraction
            return numeric_text(Decimal(usec // USEC_PER_SECOND))
        return numeric_text(Decimal(usec).scaleb(-6).quantize(Decimal("0.000001")))
    raise SqlFunctionError(f'unit "{name}" not supported by Borealis', "0A000")


def _extract_interval(name: str, span: Interval) -> Any:
    years, months = _tdiv(span.months, 12)
    hours, rest = _tdiv(span.usec, 3600 * USEC_PER_SECOND)
    minutes, rest = _tdiv(rest, 60 * USEC_PER_SECOND)
    simple = {"year": years, "month": months, "day": span.days, "hour": hours,
              "minute": minutes}
    if name in simple:
        return simple[name]
    if name == "second":
        return numeric_text(Decimal(rest).scaleb(-6).quantize(Decimal("0.000001")))
    if name == "epoch":
        seconds = (Decimal(years * 365.25).to_integral_value() + months * DAYS_PER_MONTH
                   + span.days) * 86_400 + Decimal(span.usec).scaleb(-6)
        return numeric_text(seconds.quantize(Decimal("0.000001")))
    raise SqlFunctionError(f'unit "{name}" not supported for interval by Borealis', "0A000")


def date_trunc(field: Any, value: Any) -> Any:
    """date_trunc(field, timestamp): the storage text of the truncated instant."""
    if field is None or value is None:
        return None
    name = _field(field)
    found = _moment_of(value)
    if found is None:
        raise SqlFunctionError("date_trunc of this value is not supported by Borealis", "0A000")
    moment, _is_date = found
    if name == "millennium":
        moment = moment.replace(year=((moment.year - 1) // 1000) * 1000 + 1, month=1, day=1)
    elif name == "century":
        moment = moment.replace(year=((moment.year - 1) // 100) * 100 + 1, month=1, day=1)
    elif name == "decade":
        moment = moment.replace(year=(moment.year // 10) * 10, month=1, day=1)
    elif name == "year":
        moment = moment.replace(month=1, day=1)
    elif name == "quarter":
        moment = moment.replace(month=((moment.month - 1) // 3) * 3 + 1, day=1)
    elif name == "month":
        moment = moment.replace(day=1)
    elif name == "week":
        moment -= dt.timedelta(days=moment.weekday())
    elif name not in ("day", "hour", "minute", "second", "milliseconds", "microseconds"):
        raise SqlFunctionError(f'unit "{name}" not recognized for date_trunc', "22023")
    keep = {"hour": 1, "minute": 2, "second": 3, "milliseconds": 4, "microseconds": 5}.get(
        name, 0)
    moment = moment.replace(
        hour=moment.hour if keep >= 1 else 0, minute=moment.minute if keep >= 2 else 0,
        second=moment.second if keep >= 3 else 0,
        microsecond=(moment.microsecond if keep == 5 else
                     moment.microsecond // 1000 * 1000 if keep == 4 else 0))
    return timestamp_text(moment)
