"""``to_char``, ``to_date`` and ``to_timestamp``: PostgreSQL's template formatting of dates,
times, intervals and numbers, and the reading of dates and times by a template.

The value arrives in its storage form (``temporal``: 'YYYY-MM-DD', 'YYYY-MM-DD HH:MM:SS[.f]'
in UTC, ISO 8601 intervals; numbers as integers, floats or exact decimal text), so the
form says which of PostgreSQL's ``to_char`` functions applies. The template is read as
PostgreSQL reads it (its ``formatting.c``): the keywords of its table, matched longest
first and exactly in the spellings it lists; the FM (no padding), TM (no padding in names,
the C locale's names) and FX prefixes; the TH/th ordinal suffix; double-quoted text and
backslash escapes copied; anything else copied as it is. The time zone fields (TZ, OF...)
print the session's zone, UTC, and are refused where the translator could not tell a
timestamptz from a timestamp (their output differs). Number templates: 9, 0, the decimal
point (. or D), group separators (, or G), FM, S, MI, PL, SG; others (RN, EEEE, V, L, TH)
are refused (0A000).
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from borealis.protocol.postgres import temporal
from borealis.protocol.postgres.numeric import SqlFunctionError

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")

_KEYWORDS = sorted((
    "A.D.", "A.M.", "AD", "AM", "B.C.", "BC", "CC", "DAY", "DDD", "DD", "DY", "Day", "Dy", "D",
    "FF1", "FF2", "FF3", "FF4", "FF5", "FF6", "FX", "HH24", "HH12", "HH", "IDDD", "ID", "IW",
    "IYYY", "IYY", "IY", "I", "J", "MI", "MM", "MONTH", "MON", "MS", "Month", "Mon", "OF",
    "P.M.", "PM", "Q", "RM", "SSSSS", "SSSS", "SS", "TZH", "TZM", "TZ", "US", "WW", "W",
    "Y,YYY", "YYYY", "YYY", "YY", "Y",
    "a.d.", "a.m.", "ad", "am", "b.c.", "bc", "cc", "day", "ddd", "dd", "dy", "d", "ff1",
    "ff2", "ff3", "ff4", "ff5", "ff6", "fx", "hh24", "hh12", "hh", "iddd", "id", "iw", "iyyy",
    "iyy", "iy", "i", "j", "mi", "mm", "month", "mon", "ms", "of", "p.m.", "pm", "q", "rm",
    "sssss", "ssss", "ss", "tzh", "tzm", "tz", "us", "ww", "w", "y,yyy", "yyyy", "yyy", "yy",
    "y"), key=len, reverse=True)
"""PostgreSQL 15's DCH_keywords, longest first."""

_NOT_OF_INTERVALS = frozenset({"MONTH", "MON", "DAY", "DY", "DDD", "IDDD", "D", "ID", "W",
                               "WW", "IW", "AD", "BC", "A.D.", "B.C.", "TZ", "TZH", "TZM",
                               "OF"})
"""Fields PostgreSQL refuses for an interval (22007)."""

_ODD_OF_INTERVALS = frozenset({"Q", "CC", "J", "IYYY", "IYY", "IY", "I", "RM"})
"""Fields PostgreSQL prints for an interval as if from a date; Borealis refuses them."""


def _ordinal(number: int, upper: bool) -> str:
    last_two = abs(number) % 100
    suffix = "th" if 11 <= last_two <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(
        last_two % 10, "th")
    return suffix.upper() if upper else suffix


def _case(text: str, keyword: str) -> str:
    """A name in the case its keyword asks: MONTH, Month, month."""
    if keyword.isupper():
        return text.upper()
    if keyword.islower():
        return text.lower()
    return text


class _Moment:
    """What a template's fields read, from a timestamp, a date or an interval."""

    def __init__(self, value: Any, zone: str | None) -> None:
        self.interval = temporal.as_interval(value)
        self.zone = zone
        if self.interval is not None:
            span = self.interval
            self.year, self.month = divmod(span.months, 12) if span.months >= 0 else (
                -((-span.months) // 12), -((-span.months) % 12))
            self.day = span.days
            usec = span.usec
            sign = -1 if usec < 0 else 1
            usec = abs(usec)
            self.hour = sign * (usec // (3600 * 1_000_000))
            self.minute = sign * (usec // (60 * 1_000_000) % 60)
            self.second = sign * (usec // 1_000_000 % 60)
            self.usec = sign * (usec % 1_000_000)
            self.moment = None
            return
        moment = temporal.as_timestamp(value)
        if moment is None:
            day = temporal.as_date(value)
            if day is None:
                raise SqlFunctionError("to_char of this value is not supported by Borealis",
                                       "0A000")
            moment = dt.datetime.combine(day, dt.time())
        self.moment = moment
        self.year, self.month, self.day = moment.year, moment.month, moment.day
        self.hour, self.minute, self.second = moment.hour, moment.minute, moment.second
        self.usec = moment.microsecond

    def _date(self, keyword: str) -> dt.datetime:
        if self.moment is None:
            raise SqlFunctionError(f'invalid format specification for an interval value: '
                                   f'"{keyword}"', "22007")
        return self.moment

    def field(self, keyword: str, fill: bool, translate: bool) -> tuple[str, int | None]:
        """The text of ``keyword``, and the number it printed (for TH), if any."""
        k = keyword
        upper = k.upper()
        if self.moment is None:
            if upper in _NOT_OF_INTERVALS:
                raise SqlFunctionError("invalid format specification for an interval value",
                                       "22007")
            if upper in _ODD_OF_INTERVALS:
                raise SqlFunctionError(f"to_char's {k} field of an interval is not supported "
                                       "by Borealis", "0A000")

        def number(value: int, width: int) -> tuple[str, int]:
            if fill:
                return str(value), value
            text = f"{abs(value):0{width}d}"
            return ("-" + text if value < 0 else text), value

        if upper == "HH24":
            return number(self.hour, 2)
        if upper in ("HH", "HH12"):
            hour = self.hour % 12
            return number(12 if hour == 0 else hour, 2)
        if upper == "MI":
            return number(self.minute, 2)
        if upper == "SS":
            return number(self.second, 2)
        if upper == "MS":
            return number(self.usec // 1000, 3)
        if upper == "US":
            return number(self.usec, 6)
        if upper.startswith("FF"):
            digits = int(upper[2])
            return number(self.usec // 10 ** (6 - digits), digits)
        if upper in ("SSSS", "SSSSS"):
            return str(self.hour * 3600 + self.minute * 60 + self.second), None
        if upper in ("AM", "PM", "A.M.", "P.M."):
            text = ("PM" if self.hour % 24 >= 12 else "AM")
            if "." in k:
                text = text[0] + "." + text[1] + "."
            return (text if k[0].isupper() else text.lower()), None
        if upper in ("AD", "BC", "A.D.", "B.C."):
            text = "AD" if self.year > 0 else "BC"
            if "." in k:
                text = text[0] + "." + text[1] + "."
            return (text if k[0].isupper() else text.lower()), None
        if upper == "Y,YYY":
            text = f"{self.year // 1000},{self.year % 1000:03d}"
            return text, self.year
        if upper in ("YYYY", "YYY", "YY", "Y"):
            width = len(upper)
            value = self.year if width == 4 else self.year % 10 ** width
            return number(value, width)
        if upper in ("IYYY", "IYY", "IY", "I"):
            iso_year = self._date(k).isocalendar()[0]
            width = len(upper)
            return number(iso_year if width == 4 else iso_year % 10 ** width, width)
        if upper == "MM":
            return number(self.month, 2)
        if upper in ("MONTH", "MON"):
            name = _MONTHS[self.month - 1]   # (an interval has no month name: refused above)
            if upper == "MON":
                return _case(name[:3], k), None
            text = _case(name, k)
            return (text if fill or translate else text.ljust(9)), None
        if upper in ("DAY", "DY"):
            weekday = (self._date(k).weekday() + 1) % 7
            name = _DAYS[weekday]
            if upper == "DY":
                return _case(name[:3], k), None
            text = _case(name, k)
            return (text if fill or translate else text.ljust(9)), None
        if upper == "DDD":
            return number(self._date(k).timetuple().tm_yday, 3)
        if upper == "IDDD":
            iso = self._date(k).isocalendar()
            return number((iso[1] - 1) * 7 + iso[2], 3)
        if upper == "DD":
            return number(self.day, 2)
        if upper == "D":
            return number((self._date(k).weekday() + 1) % 7 + 1, 1)
        if upper == "ID":
            return number(self._date(k).isoweekday(), 1)
        if upper == "W":
            return number((self.day - 1) // 7 + 1, 1)
        if upper == "WW":
            return number((self._date(k).timetuple().tm_yday - 1) // 7 + 1, 2)
        if upper == "IW":
            return number(self._date(k).isocalendar()[1], 2)
        if upper == "CC":
            century = (self.year + 99) // 100 if self.year > 0 else -((99 - self.year) // 100)
            return number(century, 2)
        if upper == "J":
            ordinal = self._date(k).toordinal()
            return str(ordinal + 1_721_425), None
        if upper == "Q":
            return number((self.month - 1) // 3 + 1, 1)
        if upper == "RM":
            text = _ROMAN[self.month - 1] if 1 <= self.month <= 12 else ""
            text = text if k == "RM" else text.lower()
            return (text if fill else text.ljust(4)), None
        if upper == "TZ":   # the zone's abbreviation: none for a timestamp without one
            if self.zone is None:
                raise SqlFunctionError(
                    f"to_char's {k} field of a value Borealis cannot tell is a timestamp "
                    "with time zone (cast it: to_char(x::timestamptz, ...))", "0A000")
            return (self.zone if k == "TZ" else self.zone.lower()), None
        if upper in ("OF", "TZH"):  # the session's offset: its zone is UTC
            return "+00", None
        if upper == "TZM":
            return "00", None
        raise AssertionError(k)  # pragma: no cover - every keyword is handled above


def _template(template: str) -> list[tuple[str, str, bool, bool, str]]:
    """The template's parts: (kind, text, FM, TM, suffix); kind 'field' or 'text'."""
    parts: list[tuple[str, str, bool, bool, str]] = []
    i, n = 0, len(template)
    while i < n:
        fill = translate = False
        while True:
            head = template[i:i + 2]
            if head.upper() == "FM":
                fill, i = True, i + 2
            elif head.upper() == "TM":
                translate, i = True, i + 2
            elif head.upper() == "FX":
                i += 2
            else:
                break
        if i >= n:
            break
        keyword = next((k for k in _KEYWORDS if template.startswith(k, i)), None)
        if keyword is not None:
            i += len(keyword)
            suffix = ""
            if template[i:i + 2] in ("TH", "th"):
                suffix, i = template[i:i + 2], i + 2
            parts.append(("field", keyword, fill, translate, suffix))
            continue
        char = template[i]
        if char == '"':
            end = i + 1
            text = []
            while end < n and template[end] != '"':
                if template[end] == "\\" and end + 1 < n:
                    end += 1
                text.append(template[end])
                end += 1
            parts.append(("text", "".join(text), False, False, ""))
            i = end + 1
            continue
        if char == "\\" and i + 1 < n and template[i + 1] == '"':
            parts.append(("text", '"', False, False, ""))
            i += 2
            continue
        parts.append(("text", char, False, False, ""))
        i += 1
    return parts


def format_moment(value: Any, template: str, zone: str | None) -> str:
    moment = _Moment(value, zone)
    out = []
    for kind, text, fill, translate, suffix in _template(template):
        if kind == "text":
            out.append(text)
            continue
        printed, number = moment.field(text, fill, translate)
        out.append(printed)
        if suffix and number is not None:
            out.append(_ordinal(number, suffix == "TH"))
    return "".join(out)


# --- numbers -----------------------------------------------------------------------------------


def format_number(value: Any, template: str) -> str:
    """to_char(number, template) for 9, 0, . / D, , / G, FM, S, MI, PL, SG."""
    number = _decimal(value)
    upper = template.upper()
    fill = False
    if upper.startswith("FM"):
        fill, template, upper = True, template[2:], upper[2:]
    for feature in ("RN", "EEEE", "V", "L", "TH"):
        if feature in upper.replace("SG", "").replace("PL", "").replace("MI", ""):
            raise SqlFunctionError(f'to_char\'s number template "{feature}" is not supported '
                                   "by Borealis", "0A000")
    sign_at = None
    sign_kind = ""
    body = ""
    i = 0
    while i < len(template):
        two = upper[i:i + 2]
        if two in ("SG", "PL", "MI"):
            sign_kind, sign_at = two, len(body)
            i += 2
            continue
        char = upper[i]
        if char == "S":
            sign_kind, sign_at = "S", len(body)
        elif char in "90.D,G":
            body += {"D": ".", "G": ","}.get(char, char)
        else:
            body += template[i]
        i += 1
    digits_part, _, fraction_part = body.partition(".")
    has_point = "." in body
    int_slots = [c for c in digits_part if c in "90"]
    frac_slots = [c for c in fraction_part if c in "90"]
    rounding = ROUND_HALF_EVEN if isinstance(value, float) else ROUND_HALF_UP
    rounded = abs(number).quantize(Decimal(1).scaleb(-len(frac_slots)), rounding)
    whole, _, fraction = f"{rounded:f}".partition(".")
    fraction = fraction.ljust(len(frac_slots), "0")
    # no digit position before the point: PostgreSQL shows '#' whatever the value
    overflow = len(whole.lstrip("0")) > len(int_slots) or not int_slots
    negative = number < 0 and rounded != 0
    # the integer part, right to left over its template
    out_int: list[str] = []
    digits = list(whole.lstrip("0")) if whole.strip("0") else []
    first_zero = next((i for i, c in enumerate(digits_part) if c == "0"), None)
    slot_index = len(int_slots)
    for position in range(len(digits_part) - 1, -1, -1):
        c = digits_part[position]
        if c in "90":
            slot_index -= 1
            if overflow:
                out_int.append("#")
            elif digits:
                out_int.append(digits.pop())
            elif c == "0" or (first_zero is not None and position >= first_zero) or (
                    slot_index == len(int_slots) - 1 and not has_point and not frac_slots):
                out_int.append("0")
            else:
                out_int.append(" ")
        else:
            out_int.append(c)
    int_text = "".join(reversed(out_int))
    # a group separator before the first digit shown is a space, as PostgreSQL prints
    shown = len(int_text) - len(int_text.lstrip(" ,"))
    int_text = int_text[:shown].replace(",", " ") + int_text[shown:]
    frac_text = ""
    if has_point:
        digit_iter = iter(fraction if not overflow else "#" * len(frac_slots))
        frac_text = "." + "".join(next(digit_iter) if c in "90" else c for c in fraction_part)
    text = int_text + frac_text
    if fill:
        text = text.lstrip(" ")
        if has_point and frac_slots and not overflow:
            head, _, frac = text.partition(".")
            while frac and frac.endswith("0") and fraction_part.rstrip(" ")[
                    len(frac) - 1:len(frac)] == "9":
                frac = frac[:-1]
            if not frac and not any(c.isdigit() for c in head):
                head += "0"
            text = head + "." + frac
    lead = trail = ""
    adjacent: str | None = None
    at_end = sign_at is not None and sign_at >= len(body)
    if sign_kind in ("", "PL"):
        adjacent = "-" if negative else ("" if fill else " ")
        if sign_kind == "PL":
            piece = ("" if fill else " ") if negative else "+"
            trail, lead = (piece, "") if at_end else ("", piece)
    elif sign_kind == "S":
        piece = "-" if negative else "+"
        if at_end:
            trail = piece
        else:
            adjacent = piece
    else:
        piece = ("-" if negative else "+") if sign_kind == "SG" else (
            "-" if negative else ("" if fill else " "))
        trail, lead = (piece, "") if at_end else ("", piece)
    if adjacent:
        first = next((i for i, c in enumerate(text) if c in "0123456789.#"), len(text))
        text = text[:first] + adjacent + text[first:]   # a position of its own
    return lead + text + trail


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise SqlFunctionError("to_char of a boolean does not exist", "42883")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise SqlFunctionError("to_char of NaN or infinity is not supported by Borealis",
                                   "0A000")
        return Decimal(value)   # exactly: a float rounds as C's printf rounds it
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise SqlFunctionError("to_char of this value is not supported by Borealis",
                               "0A000") from None


# --- the SQL function ------------------------------------------------------------------------


def to_char(value: Any, template: Any, type_name: Any = None) -> str | None:
    """to_char(value, template); ``type_name``, when the translator knew the value's type:
    'timestamptz' or 'timestamp' (for the time zone fields)."""
    if value is None or template is None:
        return None
    text = str(template)
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        return format_number(value, text)
    # a date is formatted as the timestamptz it converts to
    zone = {"timestamptz": "UTC", "date": "UTC", "timestamp": ""}.get(str(type_name or ""))
    return format_moment(value, text, zone)


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return not text.strip().upper().startswith(("P", "N", "I"))


_ONE_ARGUMENT: Any = object()


# --- to_date and to_timestamp ------------------------------------------------------------------

_PARSED_FIELDS = frozenset({"YYYY", "YYY", "YY", "Y", "MM", "DD", "HH", "HH12", "HH24", "MI",
                            "SS", "MS", "US", "FF1", "FF2", "FF3", "FF4", "FF5", "FF6", "AM",
                            "PM", "A.M.", "P.M.", "MONTH", "MON", "DDD", "Y,YYY", "DAY", "DY"})
_WIDTHS = {"YYYY": 4, "YYY": 3, "YY": 2, "Y": 1, "MM": 2, "DD": 2, "HH": 2, "HH12": 2,
           "HH24": 2, "MI": 2, "SS": 2, "MS": 3, "US": 6, "DDD": 3,
           **{f"FF{d}": d for d in range(1, 7)}}


def _out_of_range(what: str) -> SqlFunctionError:
    return SqlFunctionError(f"date/time field value out of range: {what}", "22008")


def parse_moment(text: str, template: str) -> dt.datetime:
    """The instant ``text`` gives under ``template``, as to_timestamp reads it without FX:
    blanks skipped around values, a template separator matching any one separator (or
    none), numbers read up to their field's width when another field follows at once."""
    parts = _template(template)
    fields: dict[str, int] = {}
    i, n = 0, len(text)
    for index, (kind, word, _fill, _translate, _suffix) in enumerate(parts):
        if kind == "text":
            if word.isspace():
                while i < n and text[i].isspace():
                    i += 1
            elif not word.isalnum():
                if i < n and not text[i].isalnum():
                    i += 1
            else:
                i += 1   # a letter or digit of the template skips one character
            continue
        upper = word.upper()
        if upper not in _PARSED_FIELDS:
            raise SqlFunctionError(f"to_timestamp's {word} field is not supported by "
                                   "Borealis", "0A000")
        while i < n and text[i].isspace():
            i += 1
        if upper in ("AM", "PM", "A.M.", "P.M."):
            rest = text[i:].upper()
            for marker, pm in (("A.M.", False), ("P.M.", True), ("AM", False), ("PM", True)):
                if rest.startswith(marker):
                    fields["pm"] = int(pm)
                    i += len(marker)
                    break
            else:
                raise SqlFunctionError(f'invalid value "{text[i:i + 2]}" for "{word}"',
                                       "22007")
            continue
        if upper in ("MONTH", "MON", "DAY", "DY"):
            names = _MONTHS if upper in ("MONTH", "MON") else _DAYS
            rest = text[i:].lower()
            for number, name in enumerate(names, start=1):
                for form in (name.lower(), name[:3].lower()):
                    if rest.startswith(form):
                        if upper in ("MONTH", "MON"):
                            fields["month"] = number
                        i += len(form)
                        break
                else:
                    continue
                break
            else:
                raise SqlFunctionError(f'invalid value "{text[i:i + 3]}" for "{word}"',
                                       "22007")
            continue
        if upper == "Y,YYY":
            digits = ""
            while i < n and (text[i].isdigit() or (text[i] == "," and digits)):
                digits += text[i] if text[i].isdigit() else ""
                i += 1
            fields["year"] = int(digits or "0")
            continue
        follows_field = index + 1 < len(parts) and parts[index + 1][0] == "field"
        width = _WIDTHS[upper]
        start = i
        if i < n and text[i] in "+-" and upper in ("YYYY", "YYY", "YY", "Y"):
            i += 1
        while i < n and text[i].isdigit() and (not follows_field or i - start < width):
            i += 1
        if i == start or not text[start:i].lstrip("+-"):
            raise SqlFunctionError(f'invalid value "{text[start:start + width]}" for '
                                   f'"{word}"', "22007")
        value = int(text[start:i])
        if upper in ("YYY", "YY", "Y") and i - start <= width:
            # PostgreSQL's adjustment of short years: to the century nearest 2020
            value = value + (2000 if value < 70 else 1900) if upper == "YY" else (
                value + 2000 if upper == "Y" else value + (1000 if value >= 100 else 2000))
        if upper.startswith("FF") or upper == "US":   # a fraction: '5' is 500000 us
            value = value * 10 ** (6 - (i - start))
        elif upper == "MS":
            value = value * 10 ** (3 - (i - start))
        key = {"YYYY": "year", "YYY": "year", "YY": "year", "Y": "year", "MM": "month",
               "DD": "day", "HH": "hour12", "HH12": "hour12", "HH24": "hour", "MI": "minute",
               "SS": "second", "MS": "ms", "US": "us", "DDD": "doy"}.get(upper, "us")
        fields[key] = value
    return _moment_of_fields(fields)   # text past the template is ignored, as PostgreSQL does


def _moment_of_fields(fields: dict[str, int]) -> dt.datetime:
    year = fields.get("year", 1)
    hour = fields.get("hour", 0)
    if "hour12" in fields:
        if not 1 <= fields["hour12"] <= 12:
            raise SqlFunctionError(f"hour \"{fields['hour12']}\" is invalid for the 12-hour "
                                   "clock", "22007")
        hour = fields["hour12"] % 12 + 12 * fields.get("pm", 0)
    elif "pm" in fields and hour < 12:
        hour += 12 * fields["pm"]
    usec = fields.get("us", 0) + fields.get("ms", 0) * 1000
    try:
        if "doy" in fields:
            day = dt.date(year, 1, 1) + dt.timedelta(days=fields["doy"] - 1)
            month, mday = day.month, day.day
        else:
            month, mday = fields.get("month", 1), fields.get("day", 1)
        return dt.datetime(year, month, mday, hour, fields.get("minute", 0),
                           fields.get("second", 0), usec)
    except (ValueError, OverflowError):
        raise _out_of_range(str(fields)) from None


def to_date(text: Any, template: Any) -> str | None:
    if text is None or template is None:
        return None
    return parse_moment(str(text), str(template)).strftime("%Y-%m-%d").zfill(10)


def to_timestamp(text: Any, template: Any = _ONE_ARGUMENT) -> str | None:
    """to_timestamp(text, template), or to_timestamp(seconds since 1970-01-01 UTC): a
    timestamptz in its storage form (the session's zone is UTC)."""
    if template is _ONE_ARGUMENT:
        if text is None:
            return None
        seconds = Decimal(str(text))
        if not seconds.is_finite():
            raise SqlFunctionError("to_timestamp of infinity or NaN is not supported by "
                                   "Borealis", "0A000")
        usec = int((seconds * 1_000_000).to_integral_value(ROUND_HALF_EVEN))
        try:
            moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=usec)
        except OverflowError:
            raise SqlFunctionError("timestamp out of range", "22008") from None
        return temporal.timestamp_text(moment)
    if text is None or template is None:
        return None
    return temporal.timestamp_text(parse_moment(str(text), str(template)))
