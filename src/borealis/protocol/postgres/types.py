"""PostgreSQL data types: the catalog of built-in types, how each one is stored in SQLite,
and its text and binary wire formats.

Borealis runs PostgreSQL SQL on SQLite, so every value has three forms: the Python value
handed to and read from SQLite (the *storage value*), PostgreSQL's text format and
PostgreSQL's binary format. This module owns the conversions between them and the registry
of types they are keyed on. It is pure functions and constant tables: no I/O, no clock, no
session state (the session is taken to be DateStyle ISO, MDY, TimeZone UTC, IntervalStyle
postgres, bytea_output hex, extra_float_digits >= 1, client_encoding UTF8), so that the wire
protocol, the catalog emulation and the SQL translator can share it and tests can compare it
byte for byte with a real PostgreSQL 15.

- ``PgType`` rows carry the real PostgreSQL 15 ``pg_type`` values (``BY_OID``, ``BY_NAME``);
  ``lookup()`` resolves a type as written in SQL to (type, typmod), ``format_type()`` spells
  it back as PostgreSQL does.
- ``sqlite_decltype()`` / ``type_from_decltype()``: a column's PostgreSQL type lives in its
  SQLite declared type, chosen so that SQLite's type affinity never rewrites a stored value.
- ``decode_text`` / ``encode_text`` / ``decode_binary`` / ``encode_binary``: one codec per
  type, in a table rather than a class hierarchy. Decoders raise only ``PgValueError``,
  which carries the SQLSTATE PostgreSQL reports for the same input. ``coerce_to_typmod``
  applies a column's modifier (varchar length, numeric scale, timestamp precision).

Declared types. SQLite derives affinity from the declared type's text, and "INT" anywhere
wins (INTEGER affinity), so no non-integer type may contain those letters: interval is
declared as DURATION and arrays by OID. NUMERIC affinity would turn '1.10' into 1.1, hence
TEXT for every type whose storage value is text.

    ===================  ==============================================  ========  ================
    PostgreSQL           SQLite declared type                            affinity  storage value
    ===================  ==============================================  ========  ================
    bool                 BOOL_INT                                        INTEGER   int 1 / 0
    int2, int4, int8     SMALLINT, INTEGER, BIGINT                       INTEGER   int
    float4, float8       REAL, DOUBLE PRECISION                          REAL      float
    numeric(p,s)         NUMERIC_TEXT, NUMERIC_TEXT(p,s)                 TEXT      str '1.50'
    text                 TEXT                                            TEXT      str
    varchar(n)           VARCHAR, VARCHAR(n)                             TEXT      str
    bpchar(n)            BPCHAR, BPCHAR(n)                               TEXT      str (padded)
    name, "char"         NAME_TEXT, CHAR_TEXT                            TEXT      str
    json, xml, ...       JSON_TEXT, XML_TEXT, REFCURSOR_TEXT, ...        TEXT      str as given
    jsonb                JSONB_TEXT                                      TEXT      str (jsonb_out)
    bytea                BYTEA_BLOB                                      BLOB      bytes
    uuid                 UUID_TEXT                                       TEXT      str, lower case
    date                 DATE_TEXT                                       TEXT      'YYYY-MM-DD'
    time(p)              TIME_TEXT, TIME_TEXT(p)                         TEXT      'HH:MM:SS[.f]'
    timetz(p)            TIMETZ_TEXT, TIMETZ_TEXT(p)                     TEXT      'HH:MM:SS+HH'
    timestamp(p)         TIMESTAMP_TEXT, TIMESTAMP_TEXT(p)               TEXT      see below
    timestamptz(p)       TIMESTAMPTZ_TEXT, TIMESTAMPTZ_TEXT(p)           TEXT      see below, UTC
    interval f(p)        DURATION_TEXT, DURATION_DAY_TO_SECOND_TEXT(p)   TEXT      ISO 8601
    oid, xid, cid, reg*  OID_INT, XID_INT, REGCLASS_INT, ...             INTEGER   int
    int2vector           INT2VECTOR_TEXT                                 INTEGER*  JSON '[1,2]'
    oidvector            OIDVECTOR_TEXT                                  TEXT      JSON '[1,2]'
    T[] (any array)      ARRAY_TEXT(array oid[,typmod])                  TEXT      JSON (below)
    ===================  ==============================================  ========  ================

    * "INT2VECTOR" contains INT; harmless, as JSON text never looks like a number.

Storage forms that need a word:
- timestamp: 'YYYY-MM-DD HH:MM:SS[.ffffff]' with no trailing zeros in the fraction, so text
  order is time order and equal times are equal text; 'infinity' and '-infinity' sort after
  and before every date. timestamptz is the same text converted to UTC (the output adds
  '+00'). Years 1 to 9999 only (PostgreSQL goes from 4713 BC to 294276 AD).
- interval: the ISO 8601 text PostgreSQL prints with IntervalStyle iso_8601
  ('P1Y2M3DT4H5M6.5S', 'P-1DT1H', 'PT0S'); it keeps months, days and microseconds apart, as
  PostgreSQL does, so '1 day' and '24 hours' are different texts (and equal in PostgreSQL).
- arrays: compact JSON of the element storage values, nested lists for more dimensions
  ('[1,null,3]', '[["a","b"],["c",null]]'), except that bytea elements are their '\\x..'
  hex text and non-finite floats the strings "NaN", "Infinity", "-Infinity". Lower bounds
  are always 1.
- reg* types store the OID; their text form is the OID too (this module has no catalog),
  except regtype, which knows the built-in types, and regnamespace for pg_catalog/public.

Text input follows PostgreSQL for the common forms and refuses the rest with a PgValueError
that says why: dates and timestamps as ISO 8601 (space or 'T'), MM/DD/YYYY or YYYYMMDD,
with an offset ('+02', '+0530', '-05:30', 'Z', 'UTC', 'GMT') and 'infinity', 'epoch'; no
named time zones, no 'now'/'today' (they need a clock), no BC. Intervals in the postgres
('1 year 2 mons -3 days 04:05:06.5 ago', '@ 1 day') and ISO 8601 ('P1Y2M3DT4H') forms.
xml and aclitem are taken as they come, without validation.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Final, NoReturn

from borealis.errors import EngineError

# --- SQLSTATEs, as PostgreSQL reports them for the same inputs -----------------------------------

INVALID_TEXT_REPRESENTATION: Final = "22P02"
INVALID_BINARY_REPRESENTATION: Final = "22P03"
NUMERIC_VALUE_OUT_OF_RANGE: Final = "22003"
INVALID_DATETIME_FORMAT: Final = "22007"
DATETIME_FIELD_OVERFLOW: Final = "22008"
INVALID_TIME_ZONE_DISPLACEMENT_VALUE: Final = "22009"
INTERVAL_FIELD_OVERFLOW: Final = "22015"
STRING_DATA_RIGHT_TRUNCATION: Final = "22001"
CHARACTER_NOT_IN_REPERTOIRE: Final = "22021"
INVALID_PARAMETER_VALUE: Final = "22023"
UNTRANSLATABLE_CHARACTER: Final = "22P05"
FEATURE_NOT_SUPPORTED: Final = "0A000"
INVALID_SCHEMA_NAME: Final = "3F000"
SYNTAX_ERROR: Final = "42601"
NAME_TOO_LONG: Final = "42622"
UNDEFINED_TABLE: Final = "42P01"
UNDEFINED_OBJECT: Final = "42704"
DATATYPE_MISMATCH: Final = "42804"
UNDEFINED_FUNCTION: Final = "42883"
INVALID_TABLE_DEFINITION: Final = "42P16"
PROGRAM_LIMIT_EXCEEDED: Final = "54000"
STATEMENT_TOO_COMPLEX: Final = "54001"


class PgValueError(EngineError, ValueError):
    """A value (or a type name) PostgreSQL would refuse; ``sqlstate`` is the code it reports."""

    def __init__(self, message: str, *, sqlstate: str) -> None:
        super().__init__(message)
        assert len(sqlstate) == 5, sqlstate
        self.sqlstate = sqlstate


class UnknownTypeError(PgValueError):
    """``lookup()`` was given a name that is no supported type (``42704`` undefined_object)."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f'type "{type_name}" does not exist', sqlstate=UNDEFINED_OBJECT)
        self.type_name = type_name


def _fail(sqlstate: str, message: str) -> NoReturn:
    raise PgValueError(message, sqlstate=sqlstate)


class _Mismatch(Exception):
    """The storage value's class does not fit its declared type (SQLite is dynamically typed:
    an int4 column can hold 'abc'). Never escapes this module."""


# --- the registry --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PgType:
    """One ``pg_type`` row, with the columns the catalog emulation needs. The ``*_fn``
    fields are function names as ``regproc`` prints them, '-' for none."""

    oid: int
    name: str  # typname
    array_oid: int  # typarray, 0 for arrays and most pseudo-types
    typlen: int  # -1 varlena, -2 C string
    category: str  # typcategory
    elem_oid: int = 0  # typelem
    byval: bool = False
    align: str = "i"
    storage: str = "p"
    typtype: str = "b"  # 'b' base, 'p' pseudo
    preferred: bool = False
    delim: str = ","
    input_fn: str = "-"
    output_fn: str = "-"
    receive_fn: str = "-"
    send_fn: str = "-"
    modin_fn: str = "-"
    modout_fn: str = "-"

    def __post_init__(self) -> None:
        if self.oid <= 0 or not self.name:
            raise ValueError(f"PgType needs an oid and a name: {self.oid} {self.name!r}")
        if self.typlen == 0 or self.typlen < -2:
            raise ValueError(f"PgType {self.name}: typlen {self.typlen}")
        if len(self.category) != 1 or self.align not in ("c", "s", "i", "d"):
            raise ValueError(f"PgType {self.name}: category/align {self.category}/{self.align}")
        if self.storage not in ("p", "e", "m", "x") or self.typtype not in ("b", "p"):
            raise ValueError(f"PgType {self.name}: storage/typtype {self.storage}/{self.typtype}")
        if self.byval != (self.typlen in (1, 2, 4, 8)):
            raise ValueError(f"PgType {self.name}: typbyval must follow typlen")

    @property
    def is_array(self) -> bool:
        """A true array (``array_in``): int2vector and oidvector have an element type but
        are not arrays (``format_type`` prints them by name)."""
        return self.input_fn == "array_in"


# Checked against pg_type of PostgreSQL 15.18. Columns: oid, typname, typarray, typlen,
# typcategory, typelem, typalign, typstorage, typtype, typispreferred, function stem ("" for
# typname+"in"/"out"/..., "_" for typname+"_in"/..., else the stem itself), has
# typreceive/typsend, has typmodin/typmodout. typbyval follows from typlen, typdelim is ','.
_BASE_TYPES: Final = (
    (16, "bool", 1000, 1, "B", 0, "c", "p", "b", True, "", True, False),
    (17, "bytea", 1001, -1, "U", 0, "i", "x", "b", False, "", True, False),
    (18, "char", 1002, 1, "Z", 0, "c", "p", "b", False, "", True, False),
    (19, "name", 1003, 64, "S", 18, "c", "p", "b", False, "", True, False),
    (20, "int8", 1016, 8, "N", 0, "d", "p", "b", False, "", True, False),
    (21, "int2", 1005, 2, "N", 0, "s", "p", "b", False, "", True, False),
    (22, "int2vector", 1006, -1, "A", 21, "i", "p", "b", False, "", True, False),
    (23, "int4", 1007, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (24, "regproc", 1008, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (25, "text", 1009, -1, "S", 0, "i", "x", "b", True, "", True, False),
    (26, "oid", 1028, 4, "N", 0, "i", "p", "b", True, "", True, False),
    (28, "xid", 1011, 4, "U", 0, "i", "p", "b", False, "", True, False),
    (29, "cid", 1012, 4, "U", 0, "i", "p", "b", False, "", True, False),
    (30, "oidvector", 1013, -1, "A", 26, "i", "p", "b", False, "", True, False),
    (114, "json", 199, -1, "U", 0, "i", "x", "b", False, "_", True, False),
    (142, "xml", 143, -1, "U", 0, "i", "x", "b", False, "_", True, False),
    (194, "pg_node_tree", 0, -1, "Z", 0, "i", "x", "b", False, "_", True, False),
    (700, "float4", 1021, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (701, "float8", 1022, 8, "N", 0, "d", "p", "b", True, "", True, False),
    (705, "unknown", 0, -2, "X", 0, "c", "p", "p", False, "", True, False),
    (1033, "aclitem", 1034, 12, "U", 0, "i", "p", "b", False, "", False, False),
    (1042, "bpchar", 1014, -1, "S", 0, "i", "x", "b", False, "", True, True),
    (1043, "varchar", 1015, -1, "S", 0, "i", "x", "b", False, "", True, True),
    (1082, "date", 1182, 4, "D", 0, "i", "p", "b", False, "_", True, False),
    (1083, "time", 1183, 8, "D", 0, "d", "p", "b", False, "_", True, True),
    (1114, "timestamp", 1115, 8, "D", 0, "d", "p", "b", False, "_", True, True),
    (1184, "timestamptz", 1185, 8, "D", 0, "d", "p", "b", True, "_", True, True),
    (1186, "interval", 1187, 16, "T", 0, "d", "p", "b", True, "_", True, True),
    (1266, "timetz", 1270, 12, "D", 0, "d", "p", "b", False, "_", True, True),
    (1700, "numeric", 1231, -1, "N", 0, "i", "m", "b", False, "_", True, True),
    (1790, "refcursor", 2201, -1, "U", 0, "i", "x", "b", False, "text", True, False),
    (2202, "regprocedure", 2207, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (2203, "regoper", 2208, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (2204, "regoperator", 2209, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (2205, "regclass", 2210, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (2206, "regtype", 2211, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (2249, "record", 2287, -1, "P", 0, "d", "x", "p", False, "_", True, False),
    (2275, "cstring", 1263, -2, "P", 0, "c", "p", "p", False, "_", True, False),
    (2276, "any", 0, 4, "P", 0, "i", "p", "p", False, "_", False, False),
    (2277, "anyarray", 0, -1, "P", 0, "d", "x", "p", False, "_", True, False),
    (2278, "void", 0, 4, "P", 0, "i", "p", "p", False, "_", True, False),
    (2279, "trigger", 0, 4, "P", 0, "i", "p", "p", False, "_", False, False),
    (2281, "internal", 0, 8, "P", 0, "d", "p", "p", False, "_", False, False),
    (2283, "anyelement", 0, 4, "P", 0, "i", "p", "p", False, "_", False, False),
    (2776, "anynonarray", 0, 4, "P", 0, "i", "p", "p", False, "_", False, False),
    (2950, "uuid", 2951, 16, "U", 0, "c", "p", "b", False, "_", True, False),
    (3500, "anyenum", 0, 4, "P", 0, "i", "p", "p", False, "_", False, False),
    (3734, "regconfig", 3735, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (3769, "regdictionary", 3770, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (3802, "jsonb", 3807, -1, "U", 0, "i", "x", "b", False, "_", True, False),
    (3838, "event_trigger", 0, 4, "P", 0, "i", "p", "p", False, "_", False, False),
    (4089, "regnamespace", 4090, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (4096, "regrole", 4097, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (4191, "regcollation", 4192, 4, "N", 0, "i", "p", "b", False, "", True, False),
    (5077, "anycompatible", 0, 4, "P", 0, "i", "p", "p", False, "_", False, False),
    (5078, "anycompatiblearray", 0, -1, "P", 0, "d", "x", "p", False, "_", True, False),
)


def _build_registry() -> dict[int, PgType]:
    types: dict[int, PgType] = {}
    for row in _BASE_TYPES:
        oid, name, array_oid, typlen, category, elem, align, storage, typtype = row[:9]
        preferred, stem, binary, typmod = row[9:]
        assert isinstance(name, str) and isinstance(stem, str)
        stem = {"": name, "_": f"{name}_"}.get(stem, stem)
        types[int(oid)] = PgType(
            oid=int(oid),
            name=name,
            array_oid=int(array_oid),
            typlen=int(typlen),
            category=str(category),
            elem_oid=int(elem),
            byval=typlen in (1, 2, 4, 8),
            align=str(align),
            storage=str(storage),
            typtype=str(typtype),
            preferred=bool(preferred),
            input_fn=f"{stem}in",
            output_fn=f"{stem}out",
            receive_fn=f"{stem}recv" if binary else "-",
            send_fn=f"{stem}send" if binary else "-",
            modin_fn=f"{name}typmodin" if typmod else "-",
            modout_fn=f"{name}typmodout" if typmod else "-",
        )
    for element in list(types.values()):
        if element.array_oid == 0:
            continue
        of_record = element.name == "record"  # _record is itself a pseudo-type
        types[element.array_oid] = PgType(
            oid=element.array_oid,
            name=f"_{element.name}",
            array_oid=0,
            typlen=-1,
            category="P" if of_record else "A",
            elem_oid=element.oid,
            align="d" if element.align == "d" else "i",
            storage="x",
            typtype="p" if of_record else "b",
            input_fn="array_in",
            output_fn="array_out",
            receive_fn="array_recv",
            send_fn="array_send",
            modin_fn=element.modin_fn,
            modout_fn=element.modout_fn,
        )
    return dict(sorted(types.items()))


BY_OID: Final[dict[int, PgType]] = _build_registry()
BY_NAME: Final[dict[str, PgType]] = {t.name: t for t in BY_OID.values()}
assert len(BY_NAME) == len(BY_OID), "typnames are unique"

BOOL: Final = BY_NAME["bool"]
BYTEA: Final = BY_NAME["bytea"]
INT2: Final = BY_NAME["int2"]
INT4: Final = BY_NAME["int4"]
INT8: Final = BY_NAME["int8"]
TEXT: Final = BY_NAME["text"]
OID: Final = BY_NAME["oid"]
FLOAT4: Final = BY_NAME["float4"]
FLOAT8: Final = BY_NAME["float8"]
UNKNOWN: Final = BY_NAME["unknown"]
BPCHAR: Final = BY_NAME["bpchar"]
VARCHAR: Final = BY_NAME["varchar"]
DATE: Final = BY_NAME["date"]
TIME: Final = BY_NAME["time"]
TIMETZ: Final = BY_NAME["timetz"]
TIMESTAMP: Final = BY_NAME["timestamp"]
TIMESTAMPTZ: Final = BY_NAME["timestamptz"]
INTERVAL: Final = BY_NAME["interval"]
NUMERIC: Final = BY_NAME["numeric"]
UUID: Final = BY_NAME["uuid"]
JSON: Final = BY_NAME["json"]
JSONB: Final = BY_NAME["jsonb"]

# --- typmods -------------------------------------------------------------------------------------

_VARHDRSZ: Final = 4
_CHAR_LENGTH_MAX: Final = 10 * 1024 * 1024  # MaxAttrSize
_NUMERIC_PRECISION_MAX: Final = 1000
_NUMERIC_SCALE_MIN: Final = -1000
_NUMERIC_SCALE_MAX: Final = 1000
_TIME_PRECISION_MAX: Final = 6
_INTERVAL_FULL_RANGE: Final = 0x7FFF
_INTERVAL_FULL_PRECISION: Final = 0xFFFF
_TIME_TYPES: Final = frozenset({1083, 1266, 1114, 1184})

# INTERVAL_MASK() bits of the interval field phrases (datetime.h: MONTH 1, YEAR 2, DAY 3,
# HOUR 10, MINUTE 11, SECOND 12), as intervaltypmodout spells them.
_MONTH, _YEAR, _DAY = 1 << 1, 1 << 2, 1 << 3
_HOUR, _MINUTE, _SECOND = 1 << 10, 1 << 11, 1 << 12
_INTERVAL_FIELDS: Final = {
    "year": _YEAR,
    "month": _MONTH,
    "day": _DAY,
    "hour": _HOUR,
    "minute": _MINUTE,
    "second": _SECOND,
    "year to month": _YEAR | _MONTH,
    "day to hour": _DAY | _HOUR,
    "day to minute": _DAY | _HOUR | _MINUTE,
    "day to second": _DAY | _HOUR | _MINUTE | _SECOND,
    "hour to minute": _HOUR | _MINUTE,
    "hour to second": _HOUR | _MINUTE | _SECOND,
    "minute to second": _MINUTE | _SECOND,
}
_INTERVAL_FIELD_NAMES: Final = {mask: phrase for phrase, mask in _INTERVAL_FIELDS.items()}


def _numeric_typmod(precision: int, scale: int) -> int:
    if not 1 <= precision <= _NUMERIC_PRECISION_MAX:
        _fail(
            INVALID_PARAMETER_VALUE,
            f"NUMERIC precision {precision} must be between 1 and {_NUMERIC_PRECISION_MAX}",
        )
    if not _NUMERIC_SCALE_MIN <= scale <= _NUMERIC_SCALE_MAX:
        _fail(
            INVALID_PARAMETER_VALUE,
            f"NUMERIC scale {scale} must be between {_NUMERIC_SCALE_MIN} and {_NUMERIC_SCALE_MAX}",
        )
    return ((precision << 16) | (scale & 0x7FF)) + _VARHDRSZ


def _numeric_precision_scale(typmod: int) -> tuple[int, int]:
    assert typmod >= _VARHDRSZ, typmod
    precision = ((typmod - _VARHDRSZ) >> 16) & 0xFFFF
    scale = (((typmod - _VARHDRSZ) & 0x7FF) ^ 1024) - 1024  # 11-bit two's complement
    return precision, scale


def _char_typmod(length: int, sql_name: str) -> int:
    if length < 1:
        _fail(INVALID_PARAMETER_VALUE, f"length for type {sql_name} must be at least 1")
    if length > _CHAR_LENGTH_MAX:
        _fail(
            INVALID_PARAMETER_VALUE,
            f"length for type {sql_name} cannot exceed {_CHAR_LENGTH_MAX}",
        )
    return length + _VARHDRSZ


def _precision_typmod(precision: int, sql_name: str) -> int:
    if precision < 0:
        _fail(INVALID_PARAMETER_VALUE, f"{sql_name}({precision}) precision must not be negative")
    return min(precision, _TIME_PRECISION_MAX)  # PostgreSQL warns and reduces it


def _interval_typmod(fields: int, precision: int | None) -> int:
    if precision is None:
        precision = _INTERVAL_FULL_PRECISION
    else:
        precision = _precision_typmod(precision, "INTERVAL")
    return ((fields & 0x7FFF) << 16) | (precision & 0xFFFF)


def _check_typmod(pgtype: PgType, typmod: int) -> None:
    """Raise PgValueError unless ``typmod`` is one PostgreSQL could give a ``pgtype`` column."""
    if typmod == -1:
        return
    oid = BY_OID[pgtype.elem_oid].oid if pgtype.is_array else pgtype.oid
    valid = False
    if oid in (1042, 1043):
        valid = _VARHDRSZ < typmod <= _CHAR_LENGTH_MAX + _VARHDRSZ
    elif oid == 1700:
        if typmod >= _VARHDRSZ:
            precision, scale = _numeric_precision_scale(typmod)
            valid = _numeric_typmod(precision, scale) == typmod
    elif oid in _TIME_TYPES:
        valid = 0 <= typmod <= _TIME_PRECISION_MAX
    elif oid == 1186 and typmod >= 0:
        fields, precision = typmod >> 16, typmod & 0xFFFF
        field_ok = fields == _INTERVAL_FULL_RANGE or fields in _INTERVAL_FIELD_NAMES
        precision_ok = precision == _INTERVAL_FULL_PRECISION or precision <= _TIME_PRECISION_MAX
        valid = field_ok and precision_ok
    if not valid:
        _fail(INVALID_PARAMETER_VALUE, f"invalid type modifier {typmod} for type {pgtype.name}")


# --- lookup(): a type as written in SQL ----------------------------------------------------------

# SQL-standard spellings (gram.y keywords); an unquoted, unqualified name is tried here first.
_KEYWORD_TYPES: Final = {
    "int": "int4",
    "integer": "int4",
    "smallint": "int2",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "boolean": "bool",
    "decimal": "numeric",
    "dec": "numeric",
    "numeric": "numeric",
    "character varying": "varchar",
    "char varying": "varchar",
    "varchar": "varchar",
    "character": "bpchar",
    "char": "bpchar",
    "serial": "int4",
    "serial4": "int4",
    "bigserial": "int8",
    "serial8": "int8",
    "smallserial": "int2",
    "serial2": "int2",
}
_RESERVED_WORDS: Final = frozenset({"any"})  # a typname that is a reserved SQL keyword
_FLOAT4_PRECISION_MAX: Final = 24
_FLOAT8_PRECISION_MAX: Final = 53
_SPACE: Final = " \t\n\r\v\f"  # PostgreSQL's isspace()
_ARRAY_SUFFIX_RE: Final = re.compile(
    r"(?:\s*\[\s*[0-9]*\s*\])+\Z|\s+array(?:\s*\[\s*[0-9]*\s*\])?\Z", re.IGNORECASE
)
_QUALIFIED_RE: Final = re.compile(r'(?:"pg_catalog"|(?i:pg_catalog))\s*\.\s*(.+)', re.DOTALL)
_MODIFIERS_RE: Final = re.compile(r"([^()]*?)\s*(?:\(([^()]*)\)\s*([^()]*))?", re.DOTALL)


# Both name resolutions run per column and per cast; the names a database uses are few.
_NAME_CACHE_MAX: Final = 1024


@lru_cache(maxsize=_NAME_CACHE_MAX)
def lookup(name: str) -> tuple[PgType, int]:
    """A type as written in SQL -> (type, typmod), as PostgreSQL resolves it: keywords
    ('integer', 'double precision', 'character varying(20)', 'timestamp(3) with time
    zone', 'interval day to second(3)', 'float(24)', 'serial'), typnames in any case
    ('INT4', '_int4', '"char"'), 'pg_catalog.'-qualified names and array suffixes ('[]',
    '[3]', ' ARRAY'). Raises ``UnknownTypeError`` for an unknown name and ``PgValueError``
    for a modifier PostgreSQL refuses (22023, or 42601 where none is allowed)."""
    text = name.strip()
    suffix = _ARRAY_SUFFIX_RE.search(text)
    if suffix is not None:
        text = text[: suffix.start()].rstrip()
    pgtype, typmod = _lookup_scalar(text, name.strip())
    if suffix is None or pgtype.is_array:
        return pgtype, typmod
    if pgtype.array_oid == 0:
        raise UnknownTypeError(name.strip())
    return BY_OID[pgtype.array_oid], typmod


def _lookup_scalar(text: str, original: str) -> tuple[PgType, int]:
    qualified = _QUALIFIED_RE.fullmatch(text)
    if qualified is not None:
        text = qualified.group(1)
    parts = _MODIFIERS_RE.fullmatch(text)
    if parts is None or not parts.group(1) or "[" in text or "]" in text:
        _fail(SYNTAX_ERROR, f'syntax error in type name "{original}"')
    head, raw_modifiers, tail = parts.group(1), parts.group(2), parts.group(3) or ""
    modifiers = _parse_modifiers(raw_modifiers)
    if head.startswith('"'):
        if len(head) < 3 or not head.endswith('"') or '"' in head[1:-1] or tail:
            raise UnknownTypeError(original)
        return _generic_type(head[1:-1], modifiers, original)
    words = " ".join(head.lower().split())
    tail_words = " ".join(tail.lower().split())
    first, _, rest = words.partition(" ")
    if raw_modifiers is None and first in ("time", "timestamp"):
        words, tail_words = first, rest  # 'timestamp with time zone'
    if qualified is not None:
        if tail_words:
            raise UnknownTypeError(original)
        return _generic_type(words, modifiers, original)
    if words in ("time", "timestamp"):
        with_zone = {"": False, "without time zone": False, "with time zone": True}.get(tail_words)
        if with_zone is None:
            raise UnknownTypeError(original)
        typname = words + ("tz" if with_zone else "")  # time, timetz, timestamp(tz)
        return _generic_type(typname, modifiers, original)
    if tail_words:
        raise UnknownTypeError(original)
    if words in _RESERVED_WORDS:
        _fail(SYNTAX_ERROR, f'syntax error at or near "{words}" (a reserved word: quote it)')
    if words == "interval" or words.startswith("interval "):
        return _interval_type(words[len("interval") :].strip(), modifiers, original)
    if words == "float":
        return _float_type(modifiers)
    keyword = _KEYWORD_TYPES.get(words)
    if keyword is None:
        return _generic_type(words, modifiers, original)
    if words in ("char", "character") and not modifiers:
        return BY_NAME["bpchar"], _char_typmod(1, "char")
    if "serial" in words and modifiers:
        _fail(SYNTAX_ERROR, f'type modifier is not allowed for type "{words}"')
    return _generic_type(keyword, modifiers, original)


def _parse_modifiers(raw: str | None) -> list[int]:
    if raw is None:
        return []
    values = []
    for item in raw.split(","):
        item = item.strip()
        if not re.fullmatch(r"[+-]?[0-9]{1,9}", item):
            _fail(SYNTAX_ERROR, f"syntax error in type modifier: ({raw})")
        values.append(int(item))
    return values


def _generic_type(typname: str, modifiers: list[int], original: str) -> tuple[PgType, int]:
    pgtype = BY_NAME.get(typname)
    if pgtype is None:
        raise UnknownTypeError(original)
    if not modifiers:
        return pgtype, -1
    if pgtype.modin_fn == "-" or pgtype.is_array:
        _fail(SYNTAX_ERROR, f'type modifier is not allowed for type "{typname}"')
    if typname in ("varchar", "bpchar"):
        if len(modifiers) != 1:
            _fail(INVALID_PARAMETER_VALUE, "invalid type modifier")
        return pgtype, _char_typmod(modifiers[0], "varchar" if typname == "varchar" else "char")
    if typname == "numeric":
        if len(modifiers) > 2:
            _fail(INVALID_PARAMETER_VALUE, "invalid NUMERIC type modifier")
        scale = modifiers[1] if len(modifiers) == 2 else 0
        return pgtype, _numeric_typmod(modifiers[0], scale)
    if len(modifiers) != 1:
        _fail(INVALID_PARAMETER_VALUE, "invalid type modifier")
    if typname == "interval":
        return pgtype, _interval_typmod(_INTERVAL_FULL_RANGE, modifiers[0])
    sql_name = "TIMESTAMP" if typname.startswith("timestamp") else "TIME"
    return pgtype, _precision_typmod(modifiers[0], sql_name)


def _interval_type(fields: str, modifiers: list[int], original: str) -> tuple[PgType, int]:
    if len(modifiers) > 1:
        _fail(INVALID_PARAMETER_VALUE, "invalid INTERVAL type modifier")
    precision = modifiers[0] if modifiers else None
    if not fields:
        return INTERVAL, -1 if precision is None else _interval_typmod(
            _INTERVAL_FULL_RANGE, precision
        )
    mask = _INTERVAL_FIELDS.get(fields)
    if mask is None or (precision is not None and not fields.endswith("second")):
        raise UnknownTypeError(original)
    return INTERVAL, _interval_typmod(mask, precision)


def _float_type(modifiers: list[int]) -> tuple[PgType, int]:
    if not modifiers:
        return FLOAT8, -1
    if len(modifiers) != 1:
        _fail(SYNTAX_ERROR, "syntax error in float precision")
    bits = modifiers[0]
    if bits < 1:
        _fail(INVALID_PARAMETER_VALUE, "precision for type float must be at least 1 bit")
    if bits > _FLOAT8_PRECISION_MAX:
        _fail(INVALID_PARAMETER_VALUE, "precision for type float must be less than 54 bits")
    return (FLOAT4 if bits <= _FLOAT4_PRECISION_MAX else FLOAT8), -1


# --- format_type() -------------------------------------------------------------------------------

_SQL_NAMES: Final = {
    "bool": "boolean",
    "float4": "real",
    "float8": "double precision",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
}
# Type names that are SQL keywords PostgreSQL's quote_identifier() quotes.
_QUOTED_NAMES: Final = frozenset({"char", "any"})


def format_type(oid: int, typmod: int | None) -> str:
    """PostgreSQL's ``format_type(oid, typmod)``; ``typmod=None`` is SQL NULL ("no typmod
    given": bpchar then prints as 'character', as ``regtype`` does). '???' for an unknown
    OID, as PostgreSQL prints."""
    pgtype = BY_OID.get(oid)
    if pgtype is None:
        return "???"
    if pgtype.is_array:
        return format_type(pgtype.elem_oid, typmod) + "[]"
    name = pgtype.name
    modifier = typmod if typmod is not None and typmod >= 0 else None
    if name in _SQL_NAMES:
        return _SQL_NAMES[name]
    if name == "bpchar":
        if modifier is not None:
            return "character" + _char_typmod_text(modifier)
        return "bpchar" if typmod is not None else "character"
    if name == "varchar":
        return "character varying" + ("" if modifier is None else _char_typmod_text(modifier))
    if name == "numeric":
        if modifier is None or modifier < _VARHDRSZ:
            return "numeric"
        precision, scale = _numeric_precision_scale(modifier)
        return f"numeric({precision},{scale})"
    if name in ("time", "timetz", "timestamp", "timestamptz"):
        base = "timestamp" if name.startswith("timestamp") else "time"
        zone = " with time zone" if name.endswith("tz") else " without time zone"
        return base + ("" if modifier is None else f"({modifier})") + zone
    if name == "interval":
        return "interval" + ("" if modifier is None else _interval_typmod_text(modifier))
    quoted = f'"{name}"' if name in _QUOTED_NAMES else name
    return quoted + ("" if modifier is None else f"({modifier})")


def _char_typmod_text(typmod: int) -> str:
    return f"({typmod - _VARHDRSZ})" if typmod > _VARHDRSZ else ""


def _interval_typmod_text(typmod: int) -> str:
    fields, precision = (typmod >> 16) & 0x7FFF, typmod & 0xFFFF
    text = "" if fields == _INTERVAL_FULL_RANGE else " " + _INTERVAL_FIELD_NAMES.get(fields, "")
    return text + (f"({precision})" if precision != _INTERVAL_FULL_PRECISION else "")


# --- the SQLite declared type --------------------------------------------------------------------

_PLAIN_DECLTYPES: Final = {
    23: "INTEGER",  # exactly INTEGER: "INTEGER PRIMARY KEY" must stay the rowid alias
    20: "BIGINT",
    21: "SMALLINT",
    700: "REAL",
    701: "DOUBLE PRECISION",
    25: "TEXT",
    1043: "VARCHAR",
    1042: "BPCHAR",
}
_DECLTYPE_RE: Final = re.compile(
    r"([A-Z0-9_ ]+?) ?(?:\( ?([+-]?[0-9]{1,10}) ?(?:, ?([+-]?[0-9]{1,10}) ?)?\))?"
)


def sqlite_decltype(pgtype: PgType, typmod: int) -> str:
    """The SQLite declared type for a ``pgtype`` column (the table in the module docstring).
    Raises PgValueError for a pseudo-type (42P16) or a typmod the type cannot have (22023)."""
    if pgtype.typtype == "p":
        _fail(INVALID_TABLE_DEFINITION, f"column cannot be of pseudo-type {pgtype.name}")
    _check_typmod(pgtype, typmod)
    if pgtype.is_array:
        return f"ARRAY_TEXT({pgtype.oid})" if typmod == -1 else f"ARRAY_TEXT({pgtype.oid},{typmod})"
    if pgtype.oid == 1186:
        return _interval_decltype(typmod)
    base = _PLAIN_DECLTYPES.get(pgtype.oid)
    if base is None:
        suffix = {int: "INT", str: "TEXT", bytes: "BLOB"}[_codec(pgtype).storage]
        base = f"{pgtype.name.upper()}_{suffix}"
    if typmod == -1:
        return base
    if pgtype.oid == 1700:
        precision, scale = _numeric_precision_scale(typmod)
        return f"{base}({precision},{scale})"
    if pgtype.oid in (1042, 1043):
        return f"{base}({typmod - _VARHDRSZ})"
    return f"{base}({typmod})"


def _interval_decltype(typmod: int) -> str:
    if typmod == -1:
        return "DURATION_TEXT"
    fields, precision = typmod >> 16, typmod & 0xFFFF
    words = "" if fields == _INTERVAL_FULL_RANGE else _INTERVAL_FIELD_NAMES[fields]
    base = "_".join(["DURATION", *words.upper().split(), "TEXT"])
    return base if precision == _INTERVAL_FULL_PRECISION else f"{base}({precision})"


def _decltype_bases() -> dict[str, PgType]:
    bases = {}
    for pgtype in BY_OID.values():
        if pgtype.typtype == "p" or pgtype.is_array or pgtype.oid == 1186:
            continue
        bases[sqlite_decltype(pgtype, -1)] = pgtype
    return bases


@lru_cache(maxsize=_NAME_CACHE_MAX)
def type_from_decltype(decltype: str | None) -> tuple[PgType, int] | None:
    """The (type, typmod) a SQLite declared type stands for: ``sqlite_decltype``'s output
    exactly, else the PostgreSQL meaning of the name ('INT' is int4, 'REAL' float4,
    'VARCHAR(10)', 'BOOLEAN'), else SQLite's affinity rules for SQLite-only names ('BLOB'
    bytea, 'CLOB' text, 'DATETIME' timestamp, 'TINYINT' int8). None for no declared type or
    a name with NUMERIC affinity that means nothing else: the caller types by value."""
    if decltype is None:
        return None
    words = " ".join(decltype.upper().split())
    if not words:
        return None
    match = _DECLTYPE_RE.fullmatch(words)
    if match is not None:
        found = _from_borealis_decltype(match.group(1).strip(), match.group(2), match.group(3))
        if found is not None:
            return found
    try:
        pgtype, typmod = lookup(decltype)
    except PgValueError:
        return _from_sqlite_affinity(words)
    return None if pgtype.typtype == "p" else (pgtype, typmod)


def _from_borealis_decltype(
    base: str, first: str | None, second: str | None
) -> tuple[PgType, int] | None:
    numbers = [int(x) for x in (first, second) if x is not None]
    try:
        if base == "ARRAY_TEXT":
            pgtype = BY_OID.get(numbers[0]) if numbers else None
            if pgtype is None or not pgtype.is_array or pgtype.typtype == "p":
                return None
            typmod = numbers[1] if len(numbers) == 2 else -1
            _check_typmod(pgtype, typmod)
            return pgtype, typmod
        if base.startswith("DURATION_") and base.endswith("_TEXT"):
            words = base[len("DURATION_") : -len("_TEXT")].replace("_", " ").lower()
            fields = _INTERVAL_FIELDS.get(words) if words else _INTERVAL_FULL_RANGE
            if fields is None or len(numbers) > 1:
                return None
            if fields == _INTERVAL_FULL_RANGE and not numbers:
                return INTERVAL, -1
            return INTERVAL, _interval_typmod(fields, numbers[0] if numbers else None)
        pgtype = _DECLTYPE_BASES.get(base)
        if pgtype is None:
            return None
        if not numbers:
            return pgtype, -1
        if pgtype.oid == 1700:
            return pgtype, _numeric_typmod(numbers[0], numbers[1] if len(numbers) == 2 else 0)
        if len(numbers) != 1:
            return None
        if pgtype.oid in (1042, 1043):
            return pgtype, _char_typmod(numbers[0], pgtype.name)
        if pgtype.oid in _TIME_TYPES and 0 <= numbers[0] <= _TIME_PRECISION_MAX:
            return pgtype, numbers[0]
        return None
    except PgValueError:
        return None


def _from_sqlite_affinity(words: str) -> tuple[PgType, int] | None:
    # https://sqlite.org/datatype3.html section 3.1, in its order ("INT" first).
    if words == "DATETIME":
        return TIMESTAMP, -1
    if "INT" in words:
        return INT8, -1
    if any(word in words for word in ("CHAR", "CLOB", "TEXT")):
        return TEXT, -1
    if "BLOB" in words:
        return BYTEA, -1
    if any(word in words for word in ("REAL", "FLOA", "DOUB")):
        return FLOAT8, -1
    return None


# --- shared helpers ------------------------------------------------------------------------------


def _sql_name(pgtype: PgType) -> str:
    return format_type(pgtype.oid, None)


def _utf8(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = data[exc.start]
        raise PgValueError(
            f'invalid byte sequence for encoding "UTF8": 0x{byte:02x}',
            sqlstate=CHARACTER_NOT_IN_REPERTOIRE,
        ) from exc
    if "\x00" in text:
        _fail(CHARACTER_NOT_IN_REPERTOIRE, 'invalid byte sequence for encoding "UTF8": 0x00')
    return text


def _syntax(pgtype: PgType, text: str, sqlstate: str = INVALID_TEXT_REPRESENTATION) -> NoReturn:
    _fail(sqlstate, f'invalid input syntax for type {_sql_name(pgtype)}: "{text}"')


def _binary_length(pgtype: PgType, data: bytes, length: int) -> None:
    if len(data) != length:
        _fail(
            INVALID_BINARY_REPRESENTATION,
            f"incorrect binary data format: {_sql_name(pgtype)} takes {length} bytes, "
            f"got {len(data)}",
        )


def _fraction_text(usec: int) -> str:
    """'.5' for 500000 microseconds, '' for 0: PostgreSQL prints no trailing zeros."""
    assert 0 <= usec < 1_000_000, usec
    return f".{usec:06d}".rstrip("0") if usec else ""


def _tdiv(numerator: int, denominator: int) -> tuple[int, int]:
    """C's truncating division: (quotient, remainder with the numerator's sign)."""
    assert denominator > 0
    quotient = abs(numerator) // denominator
    if numerator < 0:
        quotient = -quotient
    return quotient, numerator - quotient * denominator


# --- bool ----------------------------------------------------------------------------------------


def _bool_in(pgtype: PgType, text: str) -> object:
    # parse_bool_with_len(): any prefix of true/false/yes/no, 'on', 'of[f]', '1', '0'.
    word = text.strip(_SPACE).lower()
    if word in ("1", "on") or (word and ("true".startswith(word) or "yes".startswith(word))):
        return 1
    if word == "0" or (len(word) >= 2 and "off".startswith(word)):
        return 0
    if word and ("false".startswith(word) or "no".startswith(word)):
        return 0
    _syntax(pgtype, text)


def _bool_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, int):
        raise _Mismatch
    return "t" if value else "f"


def _bool_recv(pgtype: PgType, data: bytes) -> object:
    _binary_length(pgtype, data, 1)
    return 1 if data[0] else 0


def _bool_send(pgtype: PgType, value: object) -> bytes:
    if not isinstance(value, int):
        raise _Mismatch
    return b"\x01" if value else b"\x00"


# --- integers and OIDs ---------------------------------------------------------------------------

_INT_FORMATS: Final = {21: (">h", 16), 23: (">i", 32), 20: (">q", 64)}
_INT_RE: Final = re.compile(r"[ \t\n\r\v\f]*([+-]?)0*([0-9]+)[ \t\n\r\v\f]*")
_INT_DIGITS_MAX: Final = 20  # more digits than any int8 or oid: out of range, not int()ed
_OID_MAX: Final = 2**32 - 1


def _int_in(pgtype: PgType, text: str) -> object:
    value = _int_of(pgtype, text)
    _, bits = _INT_FORMATS[pgtype.oid]
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        _out_of_range(pgtype, text)
    return value


def _int_of(pgtype: PgType, text: str) -> int:
    match = _INT_RE.fullmatch(text)
    if match is None:
        _syntax(pgtype, text)
    sign, digits = match.groups()
    if len(digits) > _INT_DIGITS_MAX:
        _out_of_range(pgtype, text)
    return -int(digits) if sign == "-" else int(digits)


def _out_of_range(pgtype: PgType, text: str) -> NoReturn:
    _fail(
        NUMERIC_VALUE_OUT_OF_RANGE,
        f'value "{text}" is out of range for type {_sql_name(pgtype)}',
    )


def _int_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, int):
        raise _Mismatch
    return str(int(value))


def _int_recv(pgtype: PgType, data: bytes) -> object:
    code, bits = _INT_FORMATS[pgtype.oid]
    _binary_length(pgtype, data, bits // 8)
    value: int = struct.unpack(code, data)[0]
    return value


def _int_send(pgtype: PgType, value: object) -> bytes:
    if not isinstance(value, int):
        raise _Mismatch
    code, bits = _INT_FORMATS[pgtype.oid]
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, f"{_sql_name(pgtype)} out of range: {value}")
    return struct.pack(code, value)


def _oid_in(pgtype: PgType, text: str) -> object:
    # oidin() takes what strtoul takes: negative values wrap (-1 is 4294967295).
    value = _int_of(pgtype, text)
    if not -(2**31) <= value <= _OID_MAX:
        _out_of_range(pgtype, text)
    return value % 2**32


_NAMESPACES: Final = {"pg_catalog": 11, "public": 2200}
_REG_UNDEFINED: Final = {
    "regclass": (UNDEFINED_TABLE, "relation"),
    "regnamespace": (INVALID_SCHEMA_NAME, "schema"),
    "regproc": (UNDEFINED_FUNCTION, "function"),
    "regprocedure": (UNDEFINED_FUNCTION, "function"),
    "regoper": (UNDEFINED_FUNCTION, "operator"),
    "regoperator": (UNDEFINED_FUNCTION, "operator"),
    "regrole": (UNDEFINED_OBJECT, "role"),
}


def _reg_in(pgtype: PgType, text: str) -> object:
    """A reg* value: '-' (InvalidOid), an OID, or a name this module can resolve without a
    catalog (built-in types for regtype, pg_catalog/public for regnamespace)."""
    stripped = text.strip(_SPACE)
    if stripped == "-":
        return 0
    if re.fullmatch(r"[0-9]+", stripped):
        return _oid_in(pgtype, text)
    if pgtype.name == "regtype":
        found, _ = lookup(stripped)
        return found.oid
    if pgtype.name == "regnamespace" and stripped.lower() in _NAMESPACES:
        return _NAMESPACES[stripped.lower()]
    sqlstate, noun = _REG_UNDEFINED.get(pgtype.name, (UNDEFINED_OBJECT, "object"))
    _fail(sqlstate, f'{noun} "{stripped}" does not exist')


def _reg_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, int):
        raise _Mismatch
    if value == 0:
        return "-"
    if pgtype.name == "regtype" and value in BY_OID:
        return format_type(value, None)
    if pgtype.name == "regnamespace":
        for namespace, oid in _NAMESPACES.items():
            if oid == value:
                return namespace
    return str(int(value))


def _oid_recv(pgtype: PgType, data: bytes) -> object:
    _binary_length(pgtype, data, 4)
    value: int = struct.unpack(">I", data)[0]
    return value


def _oid_send(pgtype: PgType, value: object) -> bytes:
    if not isinstance(value, int):
        raise _Mismatch
    if not 0 <= value <= _OID_MAX:
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, f"{_sql_name(pgtype)} out of range: {value}")
    return struct.pack(">I", value)


# --- float4, float8 ------------------------------------------------------------------------------

_FLOAT_RE: Final = re.compile(
    r"[ \t\n\r\v\f]*([+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan))"
    r"[ \t\n\r\v\f]*",
    re.IGNORECASE,
)


def _to_float4(value: float) -> float:
    """The float4 nearest ``value``, as a Python float; OverflowError if there is none."""
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result


def _float_in(pgtype: PgType, text: str) -> object:
    match = _FLOAT_RE.fullmatch(text)
    if match is None:
        _syntax(pgtype, text)
    body = match.group(1)
    value = float(body)
    named = body.lower().lstrip("+-") in ("inf", "infinity", "nan")
    out_of_range = f'"{text}" is out of range for type {_sql_name(pgtype)}'
    if math.isinf(value) and not named:
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, out_of_range)
    mantissa = re.split("[eE]", body)[0]
    if value == 0.0 and any(digit in mantissa for digit in "123456789"):
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, out_of_range)  # underflow
    if pgtype.oid == 700:
        try:
            single = _to_float4(value)
        except OverflowError:
            _fail(NUMERIC_VALUE_OUT_OF_RANGE, out_of_range)
        if single == 0.0 and value != 0.0:
            _fail(NUMERIC_VALUE_OUT_OF_RANGE, out_of_range)
        value = single
    return value


def _float_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, (int, float)):
        raise _Mismatch
    number = float(value)
    if pgtype.oid == 700 and math.isfinite(number):
        try:
            number = _to_float4(number)
        except OverflowError as exc:
            raise _Mismatch from exc
    return _format_float(number, single=pgtype.oid == 700)


def _format_float(number: float, *, single: bool) -> str:
    """float4out/float8out with extra_float_digits > 0: the shortest exact text (Ryu),
    fixed-point for decimal exponents -4 .. 14 (float4: .. 5), else 'd.ddde+XX'."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, number) < 0 else ""
    magnitude = abs(number)
    if magnitude == 0.0:
        return sign + "0"
    digits, exponent = _shortest_digits(magnitude, single)
    if -4 <= exponent < (6 if single else 15):
        if exponent < 0:
            body = "0." + "0" * (-exponent - 1) + digits
        elif len(digits) <= exponent + 1:
            body = digits + "0" * (exponent + 1 - len(digits))
        else:
            body = digits[: exponent + 1] + "." + digits[exponent + 1 :]
    else:
        fraction = "." + digits[1:] if len(digits) > 1 else ""
        body = f"{digits[0]}{fraction}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return sign + body


def _scientific(text: str) -> tuple[str, int]:
    """'0.0015' -> ('15', -3): significant digits and the exponent of the first one."""
    mantissa, _, exponent = text.partition("e")
    integer, _, fraction = mantissa.partition(".")
    digits = integer + fraction
    significant = digits.lstrip("0")
    position = len(integer) - 1 - (len(digits) - len(significant)) + int(exponent or 0)
    return significant.rstrip("0") or "0", position


def _shortest_digits(magnitude: float, single: bool) -> tuple[str, int]:
    """The fewest significant digits that read back as ``magnitude``, nearest first, as Ryu
    finds them: strictly inside the rounding interval. Python's repr() also accepts a
    decimal exactly halfway to a neighbouring float (it reads back by round-half-even);
    PostgreSQL never prints one (1.1114132368442959e+18, not repr's 1.111413236844296e+18)."""
    assert magnitude > 0.0 and math.isfinite(magnitude), magnitude
    if single:
        digit_counts = range(1, 10)  # 9 significant digits always identify a float4
    else:
        shortest = _scientific(repr(magnitude))  # nearest of the shortest, halfway included
        if not _halfway(shortest, magnitude, single):
            return shortest
        digit_counts = range(len(shortest[0]) + 1, 18)
    for count in digit_counts:
        candidate = f"{magnitude:.{count - 1}e}"
        try:
            reads_back = float(candidate) == magnitude
            if single:
                reads_back = _to_float4(float(candidate)) == magnitude
        except OverflowError:  # rounded up past the largest float4
            reads_back = False
        if reads_back and not _halfway(_scientific(candidate), magnitude, single):
            return _scientific(candidate)
    raise AssertionError(f"no decimal reads back as {magnitude!r}")


def _halfway(decimal: tuple[str, int], magnitude: float, single: bool) -> bool:
    """Whether a decimal that reads back as ``magnitude`` lies exactly halfway to one of
    its neighbouring floats, which only a dyadic rational can."""
    digits, position = decimal
    power = position - len(digits) + 1  # value = int(digits) * 10**power
    if power < 0 and int(digits) % 5**-power:
        return False  # not dyadic
    if power >= 0 and magnitude < (2**24 if single else 2**53):
        return False  # spacing <= 1 here: halfway points are not integers
    if single:
        bits: int = struct.unpack(">I", struct.pack(">f", magnitude))[0]
        below: float = struct.unpack(">f", struct.pack(">I", bits - 1))[0]
        above: float = struct.unpack(">f", struct.pack(">I", bits + 1))[0]
    else:
        below, above = math.nextafter(magnitude, 0.0), math.nextafter(magnitude, math.inf)
    exact, value = Fraction(magnitude), Fraction(int(digits)) * Fraction(10) ** power
    if value < exact:
        return value == (exact + Fraction(below)) / 2
    if math.isinf(above):  # above the largest float: the gap mirrors the one below
        return value == exact + (exact - Fraction(below)) / 2
    return value == (exact + Fraction(above)) / 2


def _float_recv(pgtype: PgType, data: bytes) -> object:
    single = pgtype.oid == 700
    _binary_length(pgtype, data, 4 if single else 8)
    value: float = struct.unpack(">f" if single else ">d", data)[0]
    return value


def _float_send(pgtype: PgType, value: object) -> bytes:
    if not isinstance(value, (int, float)):
        raise _Mismatch
    if pgtype.oid == 701:
        return struct.pack(">d", float(value))
    try:
        return struct.pack(">f", float(value))
    except OverflowError:
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, f"value out of range for type real: {value}")


# --- numeric -------------------------------------------------------------------------------------

_NUMERIC_RE: Final = re.compile(
    r"[ \t\n\r\v\f]*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[ \t\n\r\v\f]*"
)
_NUMERIC_SPECIALS: Final = {
    "nan": "NaN",
    "infinity": "Infinity",
    "+infinity": "Infinity",
    "inf": "Infinity",
    "+inf": "Infinity",
    "-infinity": "-Infinity",
    "-inf": "-Infinity",
}
_NUMERIC_INTEGER_DIGITS_MAX: Final = 131072  # (NUMERIC_WEIGHT_MAX + 1) * DEC_DIGITS
_NUMERIC_DSCALE_MAX: Final = 0x3FFF
_NUMERIC_NDIGITS_RECV_MAX: Final = 3000  # NUMERIC_MAX_PRECISION + NUMERIC_MAX_RESULT_SCALE
_NUMERIC_POS, _NUMERIC_NEG, _NUMERIC_NAN = 0x0000, 0x4000, 0xC000
_NUMERIC_PINF, _NUMERIC_NINF = 0xD000, 0xF000
# numeric_send() reads dscale from the short header of an infinity, which holds 0x20 there.
_NUMERIC_INFINITY_DSCALE: Final = 0x20


def decimal_text(number: Decimal) -> str:
    """numeric_out() of a Decimal: exact digits, the scale kept ('1.50'), no exponent."""
    if number.is_nan():
        return "NaN"
    if number.is_infinite():
        return "Infinity" if number > 0 else "-Infinity"
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if number.is_zero():
        scale = max(0, -exponent)
        return "0" + ("." + "0" * scale if scale else "")
    return format(number, "f")


def _numeric_text(number: Decimal) -> str:
    """``decimal_text``, refused as numeric_in refuses a value beyond numeric's range."""
    if number.is_finite():
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if max(0, -exponent) > _NUMERIC_DSCALE_MAX or (
            not number.is_zero() and number.adjusted() >= _NUMERIC_INTEGER_DIGITS_MAX
        ):
            _fail(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format")
    return decimal_text(number)


def _numeric_in(pgtype: PgType, text: str) -> object:
    special = _NUMERIC_SPECIALS.get(text.strip(_SPACE).lower())
    if special is not None:
        return special
    match = _NUMERIC_RE.fullmatch(text)
    if match is None:
        _syntax(pgtype, text)
    return _numeric_text(Decimal(match.group(1)))


def _numeric_out(pgtype: PgType, value: object) -> str:
    if isinstance(value, str):
        special = _NUMERIC_SPECIALS.get(value.lower())
        if special is not None:
            return special
        if _NUMERIC_RE.fullmatch(value) is None:
            raise _Mismatch
        try:
            return _numeric_text(Decimal(value.strip(_SPACE)))
        except PgValueError as exc:
            raise _Mismatch from exc
    if isinstance(value, Decimal):
        return _numeric_text(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        # What float8 -> numeric gives: 15 significant digits (SQLite's SUM over numeric
        # text columns comes back as a float).
        if not math.isfinite(value):
            return _NUMERIC_SPECIALS[str(value).lower()]
        return _numeric_text(Decimal(f"{value:.15g}"))
    raise _Mismatch


def _numeric_send(pgtype: PgType, value: object) -> bytes:
    text = _numeric_out(pgtype, value)
    if text == "NaN":
        return struct.pack(">HhHH", 0, 0, _NUMERIC_NAN, 0)
    if text in ("Infinity", "-Infinity"):
        sign = _NUMERIC_PINF if text == "Infinity" else _NUMERIC_NINF
        return struct.pack(">HhHH", 0, 0, sign, _NUMERIC_INFINITY_DSCALE)
    negative = text.startswith("-")
    integer, _, fraction = text.lstrip("-").partition(".")
    integer = integer.lstrip("0")
    integer = "0" * (-len(integer) % 4) + integer
    digits_text = integer + fraction + "0" * (-len(fraction) % 4)
    groups = [int(digits_text[i : i + 4]) for i in range(0, len(digits_text), 4)]
    weight = len(integer) // 4 - 1
    leading = 0
    while leading < len(groups) and groups[leading] == 0:
        leading += 1
    groups = groups[leading:]
    weight -= leading
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight, negative = 0, False
    sign = _NUMERIC_NEG if negative else _NUMERIC_POS
    header = struct.pack(">HhHH", len(groups), weight, sign, len(fraction))
    return header + struct.pack(f">{len(groups)}H", *groups)


def _numeric_recv(pgtype: PgType, data: bytes) -> object:
    if len(data) < 8:
        _fail(INVALID_BINARY_REPRESENTATION, "insufficient data for a numeric header")
    ndigits, weight, sign, dscale = struct.unpack_from(">HhHH", data)
    if ndigits > _NUMERIC_NDIGITS_RECV_MAX:
        _fail(INVALID_BINARY_REPRESENTATION, 'invalid length in external "numeric" value')
    _binary_length(pgtype, data, 8 + 2 * ndigits)
    if sign not in (_NUMERIC_POS, _NUMERIC_NEG, _NUMERIC_NAN, _NUMERIC_PINF, _NUMERIC_NINF):
        _fail(INVALID_BINARY_REPRESENTATION, 'invalid sign in external "numeric" value')
    groups = struct.unpack_from(f">{ndigits}H", data, 8)
    if any(group >= 10000 for group in groups):
        _fail(INVALID_BINARY_REPRESENTATION, 'invalid digit in external "numeric" value')
    if dscale > _NUMERIC_DSCALE_MAX:
        _fail(INVALID_BINARY_REPRESENTATION, 'invalid scale in external "numeric" value')
    if sign == _NUMERIC_NAN:
        return "NaN"
    if sign in (_NUMERIC_PINF, _NUMERIC_NINF):
        return "Infinity" if sign == _NUMERIC_PINF else "-Infinity"
    digits_text = "".join(f"{group:04d}" for group in groups)
    point = 4 * (weight + 1)  # where the decimal point falls in digits_text
    if point <= 0:
        integer, fraction = "0", "0" * -point + digits_text
    elif point >= len(digits_text):
        integer, fraction = digits_text + "0" * (point - len(digits_text)), ""
    else:
        integer, fraction = digits_text[:point], digits_text[point:]
    fraction = (fraction + "0" * dscale)[:dscale]  # numeric_recv truncates hidden digits
    integer = integer.lstrip("0") or "0"
    text = integer + ("." + fraction if dscale else "")
    if len(integer) > _NUMERIC_INTEGER_DIGITS_MAX:
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format")
    nonzero = any(c not in "0." for c in text)
    return "-" + text if sign == _NUMERIC_NEG and nonzero else text


# --- text-like types, "char", bytea, uuid --------------------------------------------------------

_NAME_BYTES_MAX: Final = 63  # NAMEDATALEN - 1


def _text_in(pgtype: PgType, text: str) -> object:
    if pgtype.name == "name":
        encoded = text.encode("utf-8")
        if len(encoded) > _NAME_BYTES_MAX:
            return encoded[:_NAME_BYTES_MAX].decode("utf-8", "ignore")  # whole characters
    return text


def _text_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, str):
        raise _Mismatch
    return value


def _text_recv(pgtype: PgType, data: bytes) -> object:
    text = _utf8(data)
    if pgtype.name == "name" and len(data) > _NAME_BYTES_MAX:
        _fail(NAME_TOO_LONG, "identifier too long")
    return text


def _text_send(pgtype: PgType, value: object) -> bytes:
    return _text_out(pgtype, value).encode("utf-8", "replace")


def _json_in(pgtype: PgType, text: str) -> object:
    parsed = _json_parse(text)
    return _jsonb_text(parsed) if pgtype.oid == 3802 else text


def _json_recv(pgtype: PgType, data: bytes) -> object:
    if pgtype.oid == 3802:
        if not data or data[0] != 1:
            version = data[0] if data else "none"
            _fail(INVALID_BINARY_REPRESENTATION, f"unsupported jsonb version number {version}")
        data = data[1:]
    return _json_in(pgtype, _utf8(data))


def _json_send(pgtype: PgType, value: object) -> bytes:
    body = _text_out(pgtype, value).encode("utf-8", "replace")
    return b"\x01" + body if pgtype.oid == 3802 else body


def _char_in(pgtype: PgType, text: str) -> object:
    # charin(): '\ooo' is one byte in octal, otherwise the first byte (0 for '').
    raw = text.encode("utf-8")
    if len(raw) == 4 and raw[0] == 0x5C and all(0x30 <= b <= 0x37 for b in raw[1:]):
        byte = int(raw[1:], 8) & 0xFF
    else:
        byte = raw[0] if raw else 0
    return chr(byte) if byte else ""


def _char_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, str) or len(value) > 1 or (value and ord(value) > 0xFF):
        raise _Mismatch
    if not value or value == "\x00":
        return ""
    return value if ord(value) < 0x80 else f"\\{ord(value):03o}"


def _char_recv(pgtype: PgType, data: bytes) -> object:
    _binary_length(pgtype, data, 1)
    return chr(data[0]) if data[0] else ""


def _char_send(pgtype: PgType, value: object) -> bytes:
    _char_out(pgtype, value)  # the class check
    assert isinstance(value, str)
    return bytes([ord(value)]) if value else b"\x00"


_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_BYTEA_ESCAPE_RE: Final = re.compile(r"\\(\\|[0-3][0-7][0-7])")


def _bytea_in(pgtype: PgType, text: str) -> object:
    if text.startswith("\\x"):
        # hex_decode(): whitespace may come between byte pairs, never inside one.
        out = bytearray()
        position, end = 2, len(text)
        while position < end:
            char = text[position]
            if char in " \t\n\r":
                position += 1
                continue
            pair = text[position : position + 2]
            for digit in pair:
                if digit not in _HEX_DIGITS:
                    _fail(INVALID_PARAMETER_VALUE, f'invalid hexadecimal digit: "{digit}"')
            if len(pair) < 2:
                _fail(INVALID_PARAMETER_VALUE, "invalid hexadecimal data: odd number of digits")
            out.append(int(pair, 16))
            position += 2
        return bytes(out)
    pieces = _BYTEA_ESCAPE_RE.split(text)
    out = bytearray()
    for index, piece in enumerate(pieces):
        if index % 2:
            out += b"\\" if piece == "\\" else bytes([int(piece, 8)])
        elif "\\" in piece:
            _fail(INVALID_TEXT_REPRESENTATION, "invalid input syntax for type bytea")
        else:
            out += piece.encode("utf-8")
    return bytes(out)


def _bytea_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _Mismatch
    return "\\x" + bytes(value).hex()


def _bytea_recv(pgtype: PgType, data: bytes) -> object:
    return bytes(data)


def _bytea_send(pgtype: PgType, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _Mismatch
    return bytes(value)


_UUID_CANONICAL_RE: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


def _uuid_hex(text: str) -> str | None:
    """string_to_uuid(): optional braces, 32 hex digits, a '-' allowed after any group of
    four; no surrounding space."""
    position, digits = 0, []
    braces = text.startswith("{")
    if braces:
        position = 1
    for index in range(16):
        pair = text[position : position + 2]
        if len(pair) != 2 or not set(pair) <= _HEX_DIGITS:
            return None
        digits.append(pair.lower())
        position += 2
        if index % 2 == 1 and index < 15 and text[position : position + 1] == "-":
            position += 1
    if braces:
        if text[position : position + 1] != "}":
            return None
        position += 1
    return "".join(digits) if position == len(text) else None


def _uuid_canonical(hex_digits: str) -> str:
    h = hex_digits
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid_in(pgtype: PgType, text: str) -> object:
    hex_digits = _uuid_hex(text)
    if hex_digits is None:
        _syntax(pgtype, text)
    return _uuid_canonical(hex_digits)


def _uuid_out(pgtype: PgType, value: object) -> str:
    if not isinstance(value, str):
        raise _Mismatch
    if _UUID_CANONICAL_RE.fullmatch(value):
        return value
    hex_digits = _uuid_hex(value)
    if hex_digits is None:
        raise _Mismatch
    return _uuid_canonical(hex_digits)


def _uuid_recv(pgtype: PgType, data: bytes) -> object:
    _binary_length(pgtype, data, 16)
    return _uuid_canonical(data.hex())


def _uuid_send(pgtype: PgType, value: object) -> bytes:
    return bytes.fromhex(_uuid_out(pgtype, value).replace("-", ""))


# --- json, jsonb ---------------------------------------------------------------------------------


class _JsonNumber:
    """A JSON number kept as its text, so jsonb can print it as numeric does."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _json_parse(text: str) -> object:
    try:
        return json.loads(
            text,
            parse_float=_JsonNumber,
            parse_int=_JsonNumber,
            parse_constant=_reject_constant,
            object_pairs_hook=dict,  # a repeated key keeps its last value, as jsonb does
        )
    except RecursionError as exc:
        raise PgValueError("stack depth limit exceeded", sqlstate=STATEMENT_TOO_COMPLEX) from exc
    except ValueError as exc:
        raise PgValueError(
            f"invalid input syntax for type json: {exc}", sqlstate=INVALID_TEXT_REPRESENTATION
        ) from exc


_JSON_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_JSON_ESCAPE_RE: Final = re.compile(r'["\\\x00-\x1f]')
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


def _json_string(text: str) -> str:
    # escape_json(): the two-character escapes, \u00XX for other controls, all else as is.
    if _SURROGATE_RE.search(text):
        _fail(INVALID_TEXT_REPRESENTATION, "invalid input syntax for type json")
    if "\x00" in text:
        _fail(UNTRANSLATABLE_CHARACTER, "unsupported Unicode escape sequence")
    escaped = _JSON_ESCAPE_RE.sub(
        lambda m: _JSON_ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text
    )
    return f'"{escaped}"'


def _jsonb_text(value: object) -> str:
    """jsonb_out(): keys sorted by (byte length, bytes), ', ' and ': ', numbers as numeric."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, _JsonNumber):
        return _numeric_text(Decimal(value.text))
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_jsonb_text(item) for item in value) + "]"
    assert isinstance(value, dict), type(value)
    keys = sorted(value, key=lambda key: (len(key.encode("utf-8", "surrogatepass")), key))
    items = (f"{_json_string(key)}: {_jsonb_text(value[key])}" for key in keys)
    return "{" + ", ".join(items) + "}"


# --- dates and times -----------------------------------------------------------------------------

_USEC_PER_SECOND: Final = 1_000_000
_USEC_PER_MINUTE: Final = 60 * _USEC_PER_SECOND
_USEC_PER_HOUR: Final = 60 * _USEC_PER_MINUTE
_USEC_PER_DAY: Final = 24 * _USEC_PER_HOUR
_PG_EPOCH_ORDINAL: Final = date(2000, 1, 1).toordinal()  # PostgreSQL counts from 2000-01-01
_UNIX_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_ORDINAL_MIN: Final = date.min.toordinal()
_ORDINAL_MAX: Final = date.max.toordinal()
_TIMESTAMP_MIN: Final = (_ORDINAL_MIN - _PG_EPOCH_ORDINAL) * _USEC_PER_DAY
_TIMESTAMP_MAX: Final = (_ORDINAL_MAX - _PG_EPOCH_ORDINAL + 1) * _USEC_PER_DAY - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TZ_DISPLACEMENT_LIMIT: Final = 16 * 3600  # TZDISP_LIMIT: offsets stay within +-15:59:59
_DATETIME_TEXT_MAX: Final = 153  # ParseDateTime's buffer: MAXDATELEN + MAXDATEFIELDS
_INFINITIES: Final = ("infinity", "-infinity")
_CLOCK_WORDS: Final = frozenset({"now", "today", "tomorrow", "yesterday"})

_W: Final = r"[ \t\n\r\v\f]"
_DATE_PART: Final = (
    r"(?:(?P<y>[0-9]{4,})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"|(?P<m2>[0-9]{1,2})/(?P<d2>[0-9]{1,2})/(?P<y2>[0-9]{4,})"
    r"|(?P<y3>[0-9]{4})(?P<m3>[0-9]{2})(?P<d3>[0-9]{2}))"
)
_TIME_PART: Final = (
    r"(?P<H>[0-9]{1,2}):(?P<M>[0-9]{1,2})(?::(?P<S>[0-9]{1,2})(?:\.(?P<F>[0-9]*))?)?"
)
_ZONE_PART: Final = r"(?P<zone>[+-][0-9]{1,2}(?::?[0-9]{2}){0,2}|[A-Za-z][A-Za-z0-9_/+-]*)"
_DATETIME_RE: Final = re.compile(
    rf"{_W}*{_DATE_PART}(?:(?:{_W}+|[Tt]){_TIME_PART})?{_W}*{_ZONE_PART}?{_W}*"
)
_TIME_RE: Final = re.compile(
    rf"{_W}*(?:{_DATE_PART}(?:{_W}+|[Tt]))?{_TIME_PART}{_W}*{_ZONE_PART}?{_W}*"
)
_OFFSET_RE: Final = re.compile(r"([+-])([0-9]{1,2})(?::?([0-9]{2}))?(?::?([0-9]{2}))?")
_TIMESTAMP_STORAGE_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?"
)
_TIMESTAMP_CANONICAL_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{0,5}[1-9])?"
)
_DATE_CANONICAL_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_STORAGE_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME_STORAGE_RE: Final = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?")
_TIMETZ_STORAGE_RE: Final = re.compile(
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?([+-][0-9]{2}(?::[0-9]{2}){0,2})"
)


def _date_kind_name(pgtype: PgType) -> str:
    return {1114: "timestamp", 1184: "timestamp with time zone", 1266: "time with time zone"}.get(
        pgtype.oid, pgtype.name
    )


def _datetime_syntax(pgtype: PgType, text: str) -> NoReturn:
    _fail(
        INVALID_DATETIME_FORMAT,
        f'invalid input syntax for type {_date_kind_name(pgtype)}: "{text}"',
    )


def _field_overflow(text: str) -> NoReturn:
    _fail(DATETIME_FIELD_OVERFLOW, f'date/time field value out of range: "{text}"')


def _special_datetime(pgtype: PgType, text: str) -> str | None:
    """'infinity', '-infinity' or 'epoch' (normalised), None for anything else."""
    word = text.strip(_SPACE).lower()
    if word in ("infinity", "+infinity", "-infinity"):
        if pgtype.oid not in (1082, 1114, 1184):
            _datetime_syntax(pgtype, text)
        return word.lstrip("+")
    if word in _CLOCK_WORDS:
        _fail(
            FEATURE_NOT_SUPPORTED,
            f'the special value "{word}" depends on the clock: send a literal '
            "or use the SQL function",
        )
    if word == "epoch" and pgtype.oid in (1082, 1114, 1184):
        return "epoch"
    if word == "allballs" and pgtype.oid in (1083, 1266):
        return "allballs"
    return None


def _ordinal(match: re.Match[str], text: str, what: str) -> int:
    """The proleptic Gregorian ordinal of the date a _DATE_PART matched."""
    year = match.group("y") or match.group("y2") or match.group("y3")
    month = match.group("m") or match.group("m2") or match.group("m3")
    day = match.group("d") or match.group("d2") or match.group("d3")
    assert year is not None and month is not None and day is not None
    if len(year) > 4 or int(year) == 0:
        if int(year) == 0:
            _field_overflow(text)
        _fail(
            DATETIME_FIELD_OVERFLOW,
            f'{what} out of range: "{text}" (Borealis supports the years 1 to 9999)',
        )
    try:
        return date(int(year), int(month), int(day)).toordinal()
    except ValueError:
        _field_overflow(text)


def _time_of_day(match: re.Match[str], text: str) -> int:
    """Microseconds since midnight of a _TIME_PART match; 24:00:00 and a leap second
    (:60, which rolls over) are allowed as PostgreSQL allows them."""
    if match.group("H") is None:
        return 0
    hour, minute = int(match.group("H")), int(match.group("M"))
    second = int(match.group("S") or 0)
    fraction = match.group("F") or ""
    # ParseFractionalSecond(): rint(strtod("0.<digits>") * 1e6).
    usec = round(float("0." + fraction) * _USEC_PER_SECOND) if fraction else 0
    if hour > 24 or minute > 59 or second > 60:
        _field_overflow(text)
    if hour == 24 and (minute or second or usec):
        _field_overflow(text)
    return ((hour * 60 + minute) * 60 + second) * _USEC_PER_SECOND + usec


def _zone_offset(zone: str | None, text: str) -> int | None:
    """Seconds east of UTC of a zone token; None for no zone."""
    if zone is None or zone.lower() == "ad":
        return None
    lowered = zone.lower()
    if lowered in ("z", "utc", "gmt", "zulu", "ut"):
        return 0
    if lowered == "bc":
        _fail(DATETIME_FIELD_OVERFLOW, f'dates before the year 1 are not supported: "{text}"')
    match = _OFFSET_RE.fullmatch(zone)
    if match is None:
        _fail(INVALID_PARAMETER_VALUE, f'time zone "{lowered}" not recognized')
    sign, hours, minutes, seconds = match.groups()
    offset = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
    if int(minutes or 0) > 59 or int(seconds or 0) > 59 or offset >= _TZ_DISPLACEMENT_LIMIT:
        _fail(
            INVALID_TIME_ZONE_DISPLACEMENT_VALUE,
            f'time zone displacement out of range: "{text}"',
        )
    return -offset if sign == "-" else offset


def _parse_instant(pgtype: PgType, text: str) -> int | str:
    """date_in/timestamp_in/timestamptz_in: days since 2000-01-01 for date, microseconds
    since 2000-01-01 00:00 (UTC for timestamptz) for timestamps, or 'infinity'/'-infinity'."""
    if len(text) > _DATETIME_TEXT_MAX:
        _datetime_syntax(pgtype, text)
    special = _special_datetime(pgtype, text)
    if special in _INFINITIES:
        assert special is not None
        return special
    if special == "epoch":
        days = _UNIX_EPOCH_ORDINAL - _PG_EPOCH_ORDINAL
        return days if pgtype.oid == 1082 else days * _USEC_PER_DAY
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        _datetime_syntax(pgtype, text)
    what = "date" if pgtype.oid == 1082 else "timestamp"
    days = _ordinal(match, text, what) - _PG_EPOCH_ORDINAL
    usec = _time_of_day(match, text)
    offset = _zone_offset(match.group("zone"), text)
    if pgtype.oid == 1082:
        return days
    instant = days * _USEC_PER_DAY + usec
    if pgtype.oid == 1184 and offset:
        instant -= offset * _USEC_PER_SECOND
    if not _TIMESTAMP_MIN <= instant <= _TIMESTAMP_MAX:
        _fail(
            DATETIME_FIELD_OVERFLOW,
            f'timestamp out of range: "{text}" (Borealis supports the years 1 to 9999)',
        )
    return instant


def _date_text(days: int) -> str:
    day = date.fromordinal(days + _PG_EPOCH_ORDINAL)
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def _time_text(usec: int) -> str:
    assert 0 <= usec <= _USEC_PER_DAY, usec
    seconds, fraction = divmod(usec, _USEC_PER_SECOND)
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}{_fraction_text(fraction)}"


def _timestamp_text(instant: int | str) -> str:
    if isinstance(instant, str):
        return instant
    days, usec = divmod(instant, _USEC_PER_DAY)
    return f"{_date_text(days)} {_time_text(usec)}"


def _date_in(pgtype: PgType, text: str) -> object:
    days = _parse_instant(pgtype, text)
    return days if isinstance(days, str) else _date_text(days)


def _timestamp_in(pgtype: PgType, text: str) -> object:
    return _timestamp_text(_parse_instant(pgtype, text))


def _storage_instant(pgtype: PgType, value: object) -> int | str:
    """The instant a date/timestamp storage value holds; _Mismatch if it holds none."""
    if not isinstance(value, str):
        raise _Mismatch
    if value in _INFINITIES:
        return value
    if pgtype.oid == 1082:
        match = _DATE_STORAGE_RE.fullmatch(value)
        if match is not None:
            try:
                return date(*map(int, match.groups())).toordinal() - _PG_EPOCH_ORDINAL
            except ValueError as exc:
                raise _Mismatch from exc
    else:
        match = _TIMESTAMP_STORAGE_RE.fullmatch(value)
        if match is not None:
            year, month, day, hour, minute, second, fraction = match.groups()
            try:
                days = date(int(year), int(month), int(day)).toordinal() - _PG_EPOCH_ORDINAL
            except ValueError as exc:
                raise _Mismatch from exc
            if int(hour) < 24 and int(minute) < 60 and int(second) < 60:
                usec = int((fraction or "").ljust(6, "0"))
                seconds = (int(hour) * 60 + int(minute)) * 60 + int(second)
                return days * _USEC_PER_DAY + seconds * _USEC_PER_SECOND + usec
    try:  # not canonical (written by hand into SQLite): read it as text input
        return _parse_instant(pgtype, value)
    except PgValueError as exc:
        raise _Mismatch from exc


def _date_out(pgtype: PgType, value: object) -> str:
    if isinstance(value, str):
        canonical = _DATE_CANONICAL_RE if pgtype.oid == 1082 else _TIMESTAMP_CANONICAL_RE
        if canonical.fullmatch(value) is not None:  # the storage form, printed as it is
            return value + "+00" if pgtype.oid == 1184 else value
    instant = _storage_instant(pgtype, value)
    if pgtype.oid == 1082:
        return instant if isinstance(instant, str) else _date_text(instant)
    text = _timestamp_text(instant)
    return text + "+00" if pgtype.oid == 1184 and not isinstance(instant, str) else text


def _date_recv(pgtype: PgType, data: bytes) -> object:
    if pgtype.oid == 1082:
        _binary_length(pgtype, data, 4)
        days: int = struct.unpack(">i", data)[0]
        if days in (_INT32_MIN, _INT32_MAX):
            return "infinity" if days == _INT32_MAX else "-infinity"
        if not _ORDINAL_MIN <= days + _PG_EPOCH_ORDINAL <= _ORDINAL_MAX:
            _fail(DATETIME_FIELD_OVERFLOW, "date out of range (Borealis supports years 1-9999)")
        return _date_text(days)
    _binary_length(pgtype, data, 8)
    instant: int = struct.unpack(">q", data)[0]
    if instant in (_INT64_MIN, _INT64_MAX):
        return "infinity" if instant == _INT64_MAX else "-infinity"
    if not _TIMESTAMP_MIN <= instant <= _TIMESTAMP_MAX:
        _fail(DATETIME_FIELD_OVERFLOW, "timestamp out of range (Borealis supports years 1-9999)")
    return _timestamp_text(instant)


def _date_send(pgtype: PgType, value: object) -> bytes:
    instant = _storage_instant(pgtype, value)
    if pgtype.oid == 1082:
        if isinstance(instant, str):
            instant = _INT32_MAX if instant == "infinity" else _INT32_MIN
        return struct.pack(">i", instant)
    if isinstance(instant, str):
        instant = _INT64_MAX if instant == "infinity" else _INT64_MIN
    return struct.pack(">q", instant)


def _parse_time(pgtype: PgType, text: str) -> tuple[int, int]:
    """time_in/timetz_in: (microseconds since midnight, zone offset east in seconds)."""
    if len(text) > _DATETIME_TEXT_MAX:
        _datetime_syntax(pgtype, text)
    if _special_datetime(pgtype, text) == "allballs":
        return 0, 0
    match = _TIME_RE.fullmatch(text)
    if match is None:
        _datetime_syntax(pgtype, text)
    if match.group("y") or match.group("y2") or match.group("y3"):
        _ordinal(match, text, "date")
    usec = _time_of_day(match, text)
    if usec > _USEC_PER_DAY:
        _field_overflow(text)
    offset = _zone_offset(match.group("zone"), text)
    return usec, offset or 0


def _zone_text(offset: int) -> str:
    """EncodeTimezone(): '+HH', '+HH:MM' or '+HH:MM:SS' for an offset east of UTC."""
    hours, rest = divmod(abs(offset), 3600)
    text = f"{'-' if offset < 0 else '+'}{hours:02d}"
    if rest:
        text += f":{rest // 60:02d}"
    if rest % 60:
        text += f":{rest % 60:02d}"
    return text


def _time_in(pgtype: PgType, text: str) -> object:
    usec, offset = _parse_time(pgtype, text)
    return _time_text(usec) + (_zone_text(offset) if pgtype.oid == 1266 else "")


def _storage_time(pgtype: PgType, value: object) -> tuple[int, int]:
    if not isinstance(value, str):
        raise _Mismatch
    pattern = _TIMETZ_STORAGE_RE if pgtype.oid == 1266 else _TIME_STORAGE_RE
    match = pattern.fullmatch(value)
    if match is not None:
        hour, minute, second = (int(g) for g in match.groups()[:3])
        usec = int((match.group(4) or "").ljust(6, "0"))
        usec += ((hour * 60 + minute) * 60 + second) * _USEC_PER_SECOND
        offset = 0
        if pgtype.oid == 1266:
            zone = _OFFSET_RE.fullmatch(match.group(5))
            assert zone is not None
            sign, hours, minutes, seconds = zone.groups()
            offset = int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0)
            offset = -offset if sign == "-" else offset
        in_range = hour <= 24 and minute < 60 and second < 60 and usec <= _USEC_PER_DAY
        if in_range and abs(offset) < _TZ_DISPLACEMENT_LIMIT:
            return usec, offset
    try:
        return _parse_time(pgtype, value)
    except PgValueError as exc:
        raise _Mismatch from exc


def _time_out(pgtype: PgType, value: object) -> str:
    usec, offset = _storage_time(pgtype, value)
    return _time_text(usec) + (_zone_text(offset) if pgtype.oid == 1266 else "")


def _time_recv(pgtype: PgType, data: bytes) -> object:
    _binary_length(pgtype, data, 12 if pgtype.oid == 1266 else 8)
    usec: int = struct.unpack_from(">q", data)[0]
    if not 0 <= usec <= _USEC_PER_DAY:
        _fail(INVALID_BINARY_REPRESENTATION, "time out of range")
    if pgtype.oid == 1083:
        return _time_text(usec)
    zone_west: int = struct.unpack_from(">i", data, 8)[0]
    if abs(zone_west) >= _TZ_DISPLACEMENT_LIMIT:
        _fail(INVALID_BINARY_REPRESENTATION, "time zone displacement out of range")
    return _time_text(usec) + _zone_text(-zone_west)


def _time_send(pgtype: PgType, value: object) -> bytes:
    usec, offset = _storage_time(pgtype, value)
    if pgtype.oid == 1083:
        return struct.pack(">q", usec)
    return struct.pack(">qi", usec, -offset)  # timetz keeps seconds *west* of UTC


# --- interval ------------------------------------------------------------------------------------

_DAYS_PER_MONTH: Final = 30  # PostgreSQL's fixed conversion for fractional months
# unit word -> (field, multiplier): months, days, or microseconds.
_INTERVAL_UNIT_WORDS: Final = (
    (("microsecond", "microseconds", "us", "usec", "usecs", "useconds"), ("usec", 1)),
    (("millisecond", "milliseconds", "ms", "msec", "msecs", "mseconds"), ("usec", 1000)),
    (("second", "seconds", "s", "sec", "secs"), ("usec", _USEC_PER_SECOND)),
    (("minute", "minutes", "m", "min", "mins"), ("usec", _USEC_PER_MINUTE)),
    (("hour", "hours", "h", "hr", "hrs"), ("usec", _USEC_PER_HOUR)),
    (("day", "days", "d"), ("day", 1)),
    (("week", "weeks", "w"), ("day", 7)),
    (("month", "months", "mon", "mons"), ("month", 1)),
    (("year", "years", "y", "yr", "yrs"), ("month", 12)),
    (("decade", "decades", "dec", "decs"), ("month", 120)),
    (("century", "centuries", "c", "cent"), ("month", 1200)),
    (("millennium", "millennia", "mil", "mils"), ("month", 12000)),
)
_INTERVAL_UNITS: Final = {word: unit for words, unit in _INTERVAL_UNIT_WORDS for word in words}
_NUMBER: Final = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_INTERVAL_TOKEN_RE: Final = re.compile(
    rf"{_W}*(?:(?P<number>{_NUMBER})(?P<clock>(?::[0-9]+(?:\.[0-9]*)?)*)"
    r"|(?P<word>[a-z]+)|(?P<at>@))"
)
_INTERVAL_ISO_RE: Final = re.compile(
    rf"p(?:(?P<year>{_NUMBER})y)?(?:(?P<month>{_NUMBER})m)?(?:(?P<week>{_NUMBER})w)?"
    rf"(?:(?P<day>{_NUMBER})d)?(?:t(?:(?P<hour>{_NUMBER})h)?(?:(?P<minute>{_NUMBER})m)?"
    rf"(?:(?P<second>{_NUMBER})s)?)?"
)
_INTERVAL_STORAGE_RE: Final = re.compile(
    r"P(?:(-?[0-9]+)Y)?(?:(-?[0-9]+)M)?(?:(-?[0-9]+)D)?"
    r"(?:T(?:(-?[0-9]+)H)?(?:(-?[0-9]+)M)?(?:(-?)([0-9]+)(?:\.([0-9]{1,6}))?S)?)?"
)


@dataclass(slots=True)
class _IntervalSum:
    """An interval being read: PostgreSQL keeps months, days and microseconds apart."""

    months: int = 0
    days: int = 0
    usec: int = 0

    def add(self, value: Decimal, unit: str) -> None:
        field, multiplier = _INTERVAL_UNITS[unit]
        whole = int(value)
        fraction = value - whole
        if field == "usec":
            self.usec += int((value * multiplier).to_integral_value())
        elif field == "day":
            self.days += whole * multiplier
            self._spill_days(fraction * multiplier)
        elif multiplier == 1:  # months: the fraction becomes 30-day days, then time
            self.months += whole
            self._spill_days(fraction * _DAYS_PER_MONTH)
        else:  # years and up: the fraction becomes whole months (rint)
            self.months += whole * multiplier
            self.months += int((fraction * multiplier).to_integral_value())

    def _spill_days(self, days: Decimal) -> None:
        whole = int(days)
        self.days += whole
        self.usec += int(((days - whole) * _USEC_PER_DAY).to_integral_value())


def _interval_in(pgtype: PgType, text: str) -> object:
    if len(text) > _DATETIME_TEXT_MAX:
        _datetime_syntax(pgtype, text)
    lowered = text.strip(_SPACE).lower()
    total = _IntervalSum()
    if lowered.startswith("p"):
        match = _INTERVAL_ISO_RE.fullmatch(lowered)
        if match is None or not any(match.groups()):
            _datetime_syntax(pgtype, text)
        for field, unit in (
            ("year", "year"),
            ("month", "month"),
            ("week", "week"),
            ("day", "day"),
            ("hour", "hour"),
            ("minute", "minute"),
            ("second", "second"),
        ):
            if match.group(field) is not None:
                total.add(Decimal(match.group(field)), unit)
    else:
        _interval_postgres_in(pgtype, text, lowered, total)
    for value, low, high in (
        (total.months, _INT32_MIN, _INT32_MAX),
        (total.days, _INT32_MIN, _INT32_MAX),
        (total.usec, _INT64_MIN, _INT64_MAX),
    ):
        if not low <= value <= high:
            _fail(INTERVAL_FIELD_OVERFLOW, f'interval field value out of range: "{text}"')
    return _interval_iso(total.months, total.days, total.usec)


def _interval_postgres_in(pgtype: PgType, text: str, lowered: str, total: _IntervalSum) -> None:
    """'1 year 2 mons -3 days 04:05:06.5 ago', '@ 1 day', '1.5 weeks', '10:00'."""
    tokens = []
    position = 0
    while position < len(lowered):
        token = _INTERVAL_TOKEN_RE.match(lowered, position)
        if token is None or token.end() == position:
            if lowered[position:].strip(_SPACE) == "":
                break
            _datetime_syntax(pgtype, text)
        tokens.append(token)
        position = token.end()
    if not tokens:
        _datetime_syntax(pgtype, text)
    ago = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.group("at") is not None:
            if index != 1:
                _datetime_syntax(pgtype, text)
        elif token.group("word") is not None:
            if token.group("word") != "ago" or index != len(tokens) or ago:
                _datetime_syntax(pgtype, text)
            ago = True
        elif token.group("clock"):
            total.usec += _interval_clock(pgtype, text, token.group("number"), token.group("clock"))
        else:
            unit = "second"  # a bare number counts seconds
            if index < len(tokens) and tokens[index].group("word") in _INTERVAL_UNITS:
                unit = tokens[index].group("word")
                index += 1
            total.add(Decimal(token.group("number")), unit)
    if ago:
        total.months, total.days, total.usec = -total.months, -total.days, -total.usec


def _interval_clock(pgtype: PgType, text: str, first: str, rest: str) -> int:
    """'[-]h:m[:s[.f]]', or 'm:s.f' when the second field has a fraction."""
    negative = first.startswith("-")
    parts = [first.lstrip("+-"), *rest[1:].split(":")]
    if "." in parts[0] or len(parts) > 3 or any(not p or p == "." for p in parts):
        _datetime_syntax(pgtype, text)
    if len(parts) == 2 and "." in parts[1]:
        parts = ["0", *parts]
    parts += ["0"] * (3 - len(parts))
    if any("." in p for p in parts[:2]):
        _datetime_syntax(pgtype, text)
    hours, minutes, seconds = int(parts[0]), int(parts[1]), Decimal(parts[2])
    if minutes > 59 or seconds >= 61:
        _field_overflow(text)
    usec = int((seconds * _USEC_PER_SECOND).to_integral_value())
    usec += (hours * 60 + minutes) * _USEC_PER_MINUTE
    return -usec if negative else usec


def _interval_fields(months: int, days: int, usec: int) -> tuple[int, ...]:
    years, months = _tdiv(months, 12)
    hours, usec = _tdiv(usec, _USEC_PER_HOUR)
    minutes, usec = _tdiv(usec, _USEC_PER_MINUTE)
    seconds, usec = _tdiv(usec, _USEC_PER_SECOND)
    return years, months, days, hours, minutes, seconds, usec


def _interval_iso(months: int, days: int, usec: int) -> str:
    """The storage form: EncodeInterval() with IntervalStyle iso_8601."""
    years, months, days, hours, minutes, seconds, fraction = _interval_fields(months, days, usec)
    if not any((years, months, days, hours, minutes, seconds, fraction)):
        return "PT0S"

    def part(value: int, letter: str) -> str:
        return f"{value}{letter}" if value else ""

    text = "P" + part(years, "Y") + part(months, "M") + part(days, "D")
    if hours or minutes or seconds or fraction:
        text += "T"
    text += part(hours, "H") + part(minutes, "M")
    if seconds or fraction:
        sign = "-" if seconds < 0 or fraction < 0 else ""
        text += f"{sign}{abs(seconds)}{_fraction_text(abs(fraction))}S"
    return text


def _interval_postgres(months: int, days: int, usec: int) -> str:
    """The text output: EncodeInterval() with IntervalStyle postgres."""
    years, months, days, hours, minutes, seconds, fraction = _interval_fields(months, days, usec)
    pieces: list[str] = []
    before = False  # AddPostgresIntPart: a field after a negative one shows its '+'
    for value, unit in ((years, "year"), (months, "mon"), (days, "day")):
        if value:
            plus = "+" if before and value > 0 else ""
            pieces.append(f"{plus}{value} {unit}{'' if value == 1 else 's'}")
            before = value < 0
    if not pieces or hours or minutes or seconds or fraction:
        minus = hours < 0 or minutes < 0 or seconds < 0 or fraction < 0
        sign = "-" if minus else ("+" if before else "")
        clock = f"{abs(hours):02d}:{abs(minutes):02d}:{abs(seconds):02d}"
        pieces.append(sign + clock + _fraction_text(abs(fraction)))
    return " ".join(pieces)


def _storage_interval(pgtype: PgType, value: object) -> tuple[int, int, int]:
    if not isinstance(value, str):
        raise _Mismatch
    match = _INTERVAL_STORAGE_RE.fullmatch(value)
    if match is None:
        try:
            value = _interval_in(pgtype, value)
        except PgValueError as exc:
            raise _Mismatch from exc
        assert isinstance(value, str)
        match = _INTERVAL_STORAGE_RE.fullmatch(value)
        assert match is not None, value
    years, months, days, hours, minutes, sign, seconds, fraction = match.groups()
    usec = int(seconds or 0) * _USEC_PER_SECOND + int((fraction or "").ljust(6, "0"))
    usec = -usec if sign else usec
    usec += int(hours or 0) * _USEC_PER_HOUR + int(minutes or 0) * _USEC_PER_MINUTE
    return int(years or 0) * 12 + int(months or 0), int(days or 0), usec


def _interval_out(pgtype: PgType, value: object) -> str:
    return _interval_postgres(*_storage_interval(pgtype, value))


def _interval_recv(pgtype: PgType, data: bytes) -> object:
    _binary_length(pgtype, data, 16)
    usec, days, months = struct.unpack(">qii", data)
    return _interval_iso(months, days, usec)


def _interval_send(pgtype: PgType, value: object) -> bytes:
    months, days, usec = _storage_interval(pgtype, value)
    if not (_INT32_MIN <= months <= _INT32_MAX and _INT32_MIN <= days <= _INT32_MAX):
        raise _Mismatch
    if not _INT64_MIN <= usec <= _INT64_MAX:
        raise _Mismatch
    return struct.pack(">qii", usec, days, months)


# --- arrays, int2vector, oidvector ---------------------------------------------------------------

_ARRAY_DIMENSIONS_MAX: Final = 6  # MAXDIM
_ARRAY_SPACE: Final = frozenset(_SPACE)
_ARRAY_BOUNDS_RE: Final = re.compile(r"\[([+-]?[0-9]{1,10})(?::([+-]?[0-9]{1,10}))?\]")


def _malformed(text: str, detail: str) -> NoReturn:
    _fail(INVALID_TEXT_REPRESENTATION, f'malformed array literal: "{text}" ({detail})')


class _ArrayReader:
    """array_in()'s reader: nested lists of element texts (None for an unquoted NULL)."""

    def __init__(self, text: str, delimiter: str) -> None:
        self.text = text
        self.delimiter = delimiter
        self.position = 0

    def skip_space(self) -> None:
        while self.position < len(self.text) and self.text[self.position] in _ARRAY_SPACE:
            self.position += 1

    def peek(self) -> str:
        return self.text[self.position : self.position + 1]

    def read(self) -> list[object]:
        self.skip_space()
        bounds = []
        while self.peek() == "[":
            match = _ARRAY_BOUNDS_RE.match(self.text, self.position)
            if match is None:
                _malformed(self.text, "bad dimension bounds")
            lower, upper = match.groups()
            bounds.append((int(lower), int(upper)) if upper else (1, int(lower)))
            self.position = match.end()
            self.skip_space()
        if bounds:
            if self.peek() != "=":
                _malformed(self.text, 'missing "=" after array dimensions')
            self.position += 1
            self.skip_space()
        if self.peek() != "{":
            _malformed(self.text, 'array value must start with "{" or dimension information')
        value = self.read_level(1)
        self.skip_space()
        if self.position != len(self.text):
            _malformed(self.text, "junk after closing right brace")
        shape = _array_shape(value)
        if shape is None:
            _malformed(self.text, "sub-arrays must have matching dimensions")
        if bounds:
            if any(lower != 1 for lower, _ in bounds):
                _fail(FEATURE_NOT_SUPPORTED, "arrays with lower bounds other than 1")
            if [upper for _, upper in bounds] != list(shape):
                _malformed(self.text, "dimensions do not match the array contents")
        return value

    def read_level(self, depth: int) -> list[object]:
        if depth > _ARRAY_DIMENSIONS_MAX:
            _fail(
                PROGRAM_LIMIT_EXCEEDED,
                f"number of array dimensions ({depth}) exceeds the maximum allowed "
                f"({_ARRAY_DIMENSIONS_MAX})",
            )
        assert self.peek() == "{"
        self.position += 1
        items: list[object] = []
        self.skip_space()
        if self.peek() == "}":
            self.position += 1
            return items
        while True:
            self.skip_space()
            if self.peek() == "{":
                items.append(self.read_level(depth + 1))
            else:
                items.append(self.read_element())
            self.skip_space()
            char = self.peek()
            self.position += 1
            if char == "}":
                return items
            if char != self.delimiter:
                _malformed(self.text, "unexpected character")

    def read_element(self) -> str | None:
        text, out = self.text, []
        quoted = self.peek() == '"'
        escaped_any = quoted
        if quoted:
            self.position += 1
        trailing_space = 0  # unquoted: trailing blanks are dropped, escaped ones kept
        while True:
            if self.position >= len(text):
                _malformed(text, "unexpected end of input")
            char = text[self.position]
            if char == "\\":
                if self.position + 1 >= len(text):
                    _malformed(text, "unexpected end of input")
                out.append(text[self.position + 1])
                self.position += 2
                escaped_any, trailing_space = True, 0
                continue
            if quoted:
                self.position += 1
                if char == '"':
                    return "".join(out)
                out.append(char)
                continue
            if char in (self.delimiter, "}"):
                break
            if char in ('"', "{"):
                _malformed(text, "unexpected character")
            out.append(char)
            trailing_space = trailing_space + 1 if char in _ARRAY_SPACE else 0
            self.position += 1
        element = "".join(out[: len(out) - trailing_space])
        if not element and not escaped_any:
            _malformed(text, "unexpected character")
        if not escaped_any and element.upper() == "NULL":
            return None
        return element


def _array_shape(value: list[object]) -> tuple[int, ...] | None:
    """The dimensions of a rectangular nested list, None if it is ragged; () if empty."""
    if not value:
        return ()
    sublists = [item for item in value if isinstance(item, list)]
    if not sublists:
        return (len(value),)
    if len(sublists) != len(value):
        return None
    shapes = {_array_shape(item) for item in sublists}
    if len(shapes) != 1:
        return None
    (inner,) = shapes
    if not inner:  # ragged (None) or empty sub-arrays ('{{}}')
        return None
    return (len(value), *inner)


def _flatten(value: list[object]) -> list[object]:
    items: list[object] = []
    for item in value:
        items.extend(_flatten(item) if isinstance(item, list) else [item])
    return items


def _nest(items: list[object], shape: tuple[int, ...]) -> list[object]:
    if len(shape) <= 1:
        return items
    step = len(items) // shape[0]
    return [_nest(items[i : i + step], shape[1:]) for i in range(0, len(items), step)]


def _element_to_json(element: PgType, value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return _format_float(value, single=False)
    return value


def _element_from_json(element: PgType, value: object) -> object:
    if element.oid == 17 and isinstance(value, str) and value.startswith("\\x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return value
    if element.oid in (700, 701):
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return float(value.replace("Infinity", "inf"))
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    return value


def _array_json(element: PgType, value: list[object]) -> str:
    nested = _map_nested(value, lambda item: _element_to_json(element, item))
    return json.dumps(nested, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _map_nested(value: list[object], function: Callable[[object], object]) -> list[object]:
    return [
        _map_nested(item, function) if isinstance(item, list) else function(item) for item in value
    ]


def _storage_array(pgtype: PgType, value: object) -> list[object]:
    """The nested list of element storage values an array's JSON text holds."""
    if not isinstance(value, str):
        raise _Mismatch
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise _Mismatch from exc
    if not isinstance(parsed, list) or _array_shape(parsed) is None:
        raise _Mismatch
    element = BY_OID[pgtype.elem_oid]
    return _map_nested(parsed, lambda item: _element_from_json(element, item))


def _array_in(pgtype: PgType, text: str) -> object:
    element = BY_OID[pgtype.elem_oid]
    codec = _codec(element)
    if codec is _PSEUDO_CODEC:
        _fail(FEATURE_NOT_SUPPORTED, f"cannot accept a value of type {_sql_name(pgtype)}")
    raw = _ArrayReader(text, element.delim).read()
    values = _map_nested(
        raw, lambda item: None if item is None else codec.text_in(element, str(item))
    )
    return _array_json(element, values)


def _quote_element(text: str, delimiter: str) -> str:
    needs_quotes = (
        not text
        or text.upper() == "NULL"
        or any(char in '{}"\\' or char == delimiter or char in _ARRAY_SPACE for char in text)
    )
    if not needs_quotes:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_out(pgtype: PgType, value: object) -> str:
    element = BY_OID[pgtype.elem_oid]
    values = _storage_array(pgtype, value)

    def render(level: list[object]) -> str:
        parts = []
        for item in level:
            if isinstance(item, list):
                parts.append(render(item))
            elif item is None:
                parts.append("NULL")
            else:
                text = encode_text(element, item)
                assert text is not None
                parts.append(_quote_element(text.decode("utf-8"), element.delim))
        return "{" + element.delim.join(parts) + "}"

    return render(values)


def _array_recv(pgtype: PgType, data: bytes) -> object:
    element = BY_OID[pgtype.elem_oid]
    items, shape = _read_array_binary(pgtype, data, lower_bound=1)
    return _array_json(element, _nest(items, shape))


def _read_array_binary(
    pgtype: PgType, data: bytes, *, lower_bound: int
) -> tuple[list[object], tuple[int, ...]]:
    """array_recv(): header, dimensions, then each element as int4 length (-1 NULL) + bytes."""
    element = BY_OID[pgtype.elem_oid]
    if len(data) < 12:
        _fail(INVALID_BINARY_REPRESENTATION, "insufficient data for an array header")
    ndim, flags, element_oid = struct.unpack_from(">iiI", data)
    if not 0 <= ndim <= _ARRAY_DIMENSIONS_MAX:
        _fail(INVALID_BINARY_REPRESENTATION, f"invalid number of dimensions: {ndim}")
    if flags not in (0, 1):
        _fail(INVALID_BINARY_REPRESENTATION, "invalid array flags")
    if element_oid != element.oid:
        _fail(
            DATATYPE_MISMATCH,
            f"binary data has array element type {element_oid} instead of expected "
            f"{element.oid} ({_sql_name(element)})",
        )
    position = 12
    if len(data) < position + 8 * ndim:
        _fail(INVALID_BINARY_REPRESENTATION, "insufficient data for the array dimensions")
    shape = []
    for _ in range(ndim):
        size, lower = struct.unpack_from(">ii", data, position)
        position += 8
        if size < 0:
            _fail(INVALID_BINARY_REPRESENTATION, "invalid array dimension size")
        if size and lower != lower_bound:
            _fail(FEATURE_NOT_SUPPORTED, "arrays with lower bounds other than 1")
        shape.append(size)
    count = math.prod(shape) if shape else 0
    if count * 4 > len(data) - position:
        _fail(INVALID_BINARY_REPRESENTATION, "insufficient data for the array elements")
    codec = _codec(element)
    items: list[object] = []
    for _ in range(count):
        if len(data) < position + 4:
            _fail(INVALID_BINARY_REPRESENTATION, "insufficient data left in array")
        (length,) = struct.unpack_from(">i", data, position)
        position += 4
        if length == -1:
            items.append(None)
            continue
        if length < 0 or position + length > len(data):
            _fail(INVALID_BINARY_REPRESENTATION, f"invalid array element length {length}")
        items.append(codec.binary_in(element, data[position : position + length]))
        position += length
    if position != len(data):
        _fail(INVALID_BINARY_REPRESENTATION, "incorrect binary data format: trailing bytes")
    return items, (tuple(shape) if count else ())


def _write_array_binary(
    element: PgType, values: list[object], shape: tuple[int, ...], lower_bound: int
) -> bytes:
    items = _flatten(values)
    has_null = any(item is None for item in items)
    parts = [struct.pack(">iiI", len(shape), int(has_null), element.oid)]
    parts += [struct.pack(">ii", size, lower_bound) for size in shape]
    for item in items:
        if item is None:
            parts.append(struct.pack(">i", -1))
            continue
        encoded = encode_binary(element, item)
        assert encoded is not None
        parts.append(struct.pack(">i", len(encoded)) + encoded)
    return b"".join(parts)


def _array_send(pgtype: PgType, value: object) -> bytes:
    values = _storage_array(pgtype, value)
    shape = _array_shape(values)
    assert shape is not None
    return _write_array_binary(BY_OID[pgtype.elem_oid], values, shape, lower_bound=1)


def _vector_in(pgtype: PgType, text: str) -> object:
    element = BY_OID[pgtype.elem_oid]
    words = [word for word in re.split(_W, text) if word]
    codec = _codec(element)
    return json.dumps([codec.text_in(element, word) for word in words], separators=(",", ":"))


def _storage_vector(pgtype: PgType, value: object) -> list[int]:
    numbers = [item for item in _storage_array(pgtype, value) if isinstance(item, int)]
    if len(numbers) != len(_storage_array(pgtype, value)):
        raise _Mismatch
    return numbers


def _vector_out(pgtype: PgType, value: object) -> str:
    return " ".join(str(item) for item in _storage_vector(pgtype, value))


def _vector_recv(pgtype: PgType, data: bytes) -> object:
    items, _ = _read_array_binary(pgtype, data, lower_bound=0)
    if any(item is None for item in items):
        _fail(INVALID_PARAMETER_VALUE, f"invalid {pgtype.name} data")
    return json.dumps(items, separators=(",", ":"))


def _vector_send(pgtype: PgType, value: object) -> bytes:
    items: list[object] = list(_storage_vector(pgtype, value))
    # int2vector/oidvector are one-dimensional with lower bound 0, even when empty.
    return _write_array_binary(BY_OID[pgtype.elem_oid], items, (len(items),), lower_bound=0)


# --- pseudo-types --------------------------------------------------------------------------------


def _refuse_in(pgtype: PgType, text: str) -> object:
    _fail(FEATURE_NOT_SUPPORTED, f"cannot accept a value of type {_sql_name(pgtype)}")


def _refuse_out(pgtype: PgType, value: object) -> str:
    raise _Mismatch


def _refuse_recv(pgtype: PgType, data: bytes) -> object:
    if pgtype.receive_fn == "-":
        _fail(
            UNDEFINED_FUNCTION,
            f"no binary input function available for type {_sql_name(pgtype)}",
        )
    _fail(FEATURE_NOT_SUPPORTED, f"binary input of type {_sql_name(pgtype)} is not supported")


def _refuse_send(pgtype: PgType, value: object) -> bytes:
    if pgtype.send_fn == "-":
        _fail(
            UNDEFINED_FUNCTION,
            f"no binary output function available for type {_sql_name(pgtype)}",
        )
    _fail(FEATURE_NOT_SUPPORTED, f"binary output of type {_sql_name(pgtype)} is not supported")


def _void_in(pgtype: PgType, text: str) -> object:
    return ""


def _void_out(pgtype: PgType, value: object) -> str:
    return ""


def _void_recv(pgtype: PgType, data: bytes) -> object:
    return ""


def _void_send(pgtype: PgType, value: object) -> bytes:
    return b""


# --- the codec table -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Codec:
    text_in: Callable[[PgType, str], object]
    text_out: Callable[[PgType, object], str]  # raises _Mismatch
    binary_in: Callable[[PgType, bytes], object]
    binary_out: Callable[[PgType, object], bytes]  # raises _Mismatch
    storage: type  # the storage value's class, which picks the declared type's affinity


_BOOL_CODEC: Final = _Codec(_bool_in, _bool_out, _bool_recv, _bool_send, int)
_INT_CODEC: Final = _Codec(_int_in, _int_out, _int_recv, _int_send, int)
_OID_CODEC: Final = _Codec(_oid_in, _int_out, _oid_recv, _oid_send, int)
_REG_CODEC: Final = _Codec(_reg_in, _reg_out, _oid_recv, _oid_send, int)
_FLOAT_CODEC: Final = _Codec(_float_in, _float_out, _float_recv, _float_send, float)
_NUMERIC_CODEC: Final = _Codec(_numeric_in, _numeric_out, _numeric_recv, _numeric_send, str)
_TEXT_CODEC: Final = _Codec(_text_in, _text_out, _text_recv, _text_send, str)
_JSON_CODEC: Final = _Codec(_json_in, _text_out, _json_recv, _json_send, str)
_CHAR_CODEC: Final = _Codec(_char_in, _char_out, _char_recv, _char_send, str)
_BYTEA_CODEC: Final = _Codec(_bytea_in, _bytea_out, _bytea_recv, _bytea_send, bytes)
_UUID_CODEC: Final = _Codec(_uuid_in, _uuid_out, _uuid_recv, _uuid_send, str)
_DATE_CODEC: Final = _Codec(_date_in, _date_out, _date_recv, _date_send, str)
_TIMESTAMP_CODEC: Final = _Codec(_timestamp_in, _date_out, _date_recv, _date_send, str)
_TIME_CODEC: Final = _Codec(_time_in, _time_out, _time_recv, _time_send, str)
_INTERVAL_CODEC: Final = _Codec(_interval_in, _interval_out, _interval_recv, _interval_send, str)
_ARRAY_CODEC: Final = _Codec(_array_in, _array_out, _array_recv, _array_send, str)
_VECTOR_CODEC: Final = _Codec(_vector_in, _vector_out, _vector_recv, _vector_send, str)
_TEXT_ONLY_CODEC: Final = _Codec(_text_in, _text_out, _refuse_recv, _refuse_send, str)
_VOID_CODEC: Final = _Codec(_void_in, _void_out, _void_recv, _void_send, str)
_PSEUDO_CODEC: Final = _Codec(_refuse_in, _refuse_out, _refuse_recv, _refuse_send, str)

_CODECS: Final[dict[int, _Codec]] = {
    16: _BOOL_CODEC,
    17: _BYTEA_CODEC,
    18: _CHAR_CODEC,
    19: _TEXT_CODEC,
    20: _INT_CODEC,
    21: _INT_CODEC,
    22: _VECTOR_CODEC,
    23: _INT_CODEC,
    25: _TEXT_CODEC,
    26: _OID_CODEC,
    28: _OID_CODEC,
    29: _OID_CODEC,
    30: _VECTOR_CODEC,
    114: _JSON_CODEC,
    142: _TEXT_CODEC,  # xml: not validated
    194: _TEXT_CODEC,
    700: _FLOAT_CODEC,
    701: _FLOAT_CODEC,
    705: _TEXT_CODEC,  # unknown: an untyped literal or parameter is its text
    1033: _TEXT_ONLY_CODEC,  # aclitem: no binary I/O in PostgreSQL either; not validated
    1042: _TEXT_CODEC,
    1043: _TEXT_CODEC,
    1082: _DATE_CODEC,
    1083: _TIME_CODEC,
    1114: _TIMESTAMP_CODEC,
    1184: _TIMESTAMP_CODEC,
    1186: _INTERVAL_CODEC,
    1266: _TIME_CODEC,
    1700: _NUMERIC_CODEC,
    1790: _TEXT_CODEC,
    2275: _TEXT_CODEC,  # cstring
    2278: _VOID_CODEC,
    2950: _UUID_CODEC,
    3802: _JSON_CODEC,
}
for _pgtype in BY_OID.values():
    if _pgtype.name.startswith("reg") and _pgtype.typlen == 4:
        _CODECS[_pgtype.oid] = _REG_CODEC
    elif _pgtype.is_array:
        _CODECS[_pgtype.oid] = _ARRAY_CODEC
    _CODECS.setdefault(_pgtype.oid, _PSEUDO_CODEC)
    assert _pgtype.typtype == "p" or _CODECS[_pgtype.oid] is not _PSEUDO_CODEC, _pgtype


def _codec(pgtype: PgType) -> _Codec:
    codec = _CODECS.get(pgtype.oid)
    if codec is None:
        _fail(FEATURE_NOT_SUPPORTED, f"type {pgtype.name} (oid {pgtype.oid}) is not supported")
    return codec


_DECLTYPE_BASES: Final = _decltype_bases()


# --- the public codecs ---------------------------------------------------------------------------


def _fallback_text(value: object) -> str:
    """The text of a storage value whose class does not fit its column's type."""
    if isinstance(value, float):
        return _format_float(value, single=False)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    return str(value)


def encode_text(pgtype: PgType, value: object) -> bytes | None:
    """A storage value in PostgreSQL's text format (None for NULL). A value of the wrong class
    for the type (SQLite is dynamically typed) is sent as its own text, never refused."""
    if value is None:
        return None
    codec = _codec(pgtype)
    try:
        text = codec.text_out(pgtype, value)
    except _Mismatch:
        text = _fallback_text(value)
    return text.encode("utf-8", "replace")


def decode_text(pgtype: PgType, data: bytes) -> object:
    """PostgreSQL's text format to the storage value; PgValueError if PostgreSQL would refuse
    it (with its SQLSTATE) or if this module does not support that input."""
    codec = _codec(pgtype)
    text = _utf8(bytes(data))
    try:
        return codec.text_in(pgtype, text)
    except PgValueError:
        raise
    except (ValueError, ArithmeticError, RecursionError, struct.error) as exc:
        # Foreign exceptions from int()/Decimal/json/datetime end here, translated once.
        raise PgValueError(
            f"invalid input for type {_sql_name(pgtype)}: {exc}",
            sqlstate=INVALID_TEXT_REPRESENTATION,
        ) from exc


def encode_binary(pgtype: PgType, value: object) -> bytes | None:
    """A storage value in PostgreSQL's binary format (None for NULL); PgValueError (42804) if
    its class does not fit the type, or if the value is out of the format's range."""
    if value is None:
        return None
    codec = _codec(pgtype)
    try:
        return codec.binary_out(pgtype, value)
    except _Mismatch as exc:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise PgValueError(
            f"a stored {type(value).__name__} {shown} has no binary form as type "
            f"{_sql_name(pgtype)}",
            sqlstate=DATATYPE_MISMATCH,
        ) from exc


def decode_binary(pgtype: PgType, data: bytes) -> object:
    """PostgreSQL's binary format to the storage value; PgValueError for malformed data."""
    codec = _codec(pgtype)
    try:
        return codec.binary_in(pgtype, bytes(data))
    except PgValueError:
        raise
    except (ValueError, ArithmeticError, RecursionError, struct.error) as exc:
        raise PgValueError(
            f"incorrect binary data format for type {_sql_name(pgtype)}: {exc}",
            sqlstate=INVALID_BINARY_REPRESENTATION,
        ) from exc


# --- typmod coercion -----------------------------------------------------------------------------

_BIG_CONTEXT: Final = Context(prec=_NUMERIC_INTEGER_DIGITS_MAX + _NUMERIC_DSCALE_MAX + 10)


def coerce_to_typmod(
    pgtype: PgType, typmod: int, value: object, *, explicit: bool = False
) -> object:
    """A storage value made to fit ``typmod`` as PostgreSQL does on assignment (INSERT,
    UPDATE): char(n) pads, varchar(n)/char(n) refuse excess non-blank characters (22001;
    an ``explicit`` cast truncates them instead), numeric(p,s) rounds half away from zero
    to s and refuses more than p-s integer digits (22003), time types round to their
    precision, interval fields truncate. Values of the wrong class are returned unchanged."""
    if value is None or typmod < 0:
        return value
    if pgtype.is_array:
        element = BY_OID[pgtype.elem_oid]
        try:
            values = _storage_array(pgtype, value)
        except _Mismatch:
            return value
        coerced = _map_nested(
            values, lambda item: coerce_to_typmod(element, typmod, item, explicit=explicit)
        )
        return _array_json(element, coerced)
    oid = pgtype.oid
    if oid in (1042, 1043) and isinstance(value, str):
        length = typmod - _VARHDRSZ
        if len(value) > length:
            if value[length:].strip(" ") and not explicit:
                _fail(
                    STRING_DATA_RIGHT_TRUNCATION,
                    f"value too long for type {format_type(oid, typmod)}",
                )
            value = value[:length]
        return value.ljust(length) if oid == 1042 else value
    if oid == 1700 and isinstance(value, str) and value not in ("NaN",):
        return _coerce_numeric(value, typmod)
    if oid in _TIME_TYPES and isinstance(value, str) and value not in _INFINITIES:
        return _coerce_time(pgtype, typmod, value)
    if oid == 1186 and isinstance(value, str):
        return _coerce_interval(pgtype, typmod, value)
    return value


def _coerce_numeric(value: str, typmod: int) -> str:
    precision, scale = _numeric_precision_scale(typmod)
    overflow = f"numeric field overflow: precision {precision}, scale {scale}"
    if value in ("Infinity", "-Infinity"):
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, overflow + " cannot hold an infinite value")
    try:
        number = Decimal(value)
    except ArithmeticError:
        return value
    rounded = number.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP, _BIG_CONTEXT)
    if not rounded.is_zero() and rounded.adjusted() >= precision - scale:
        _fail(NUMERIC_VALUE_OUT_OF_RANGE, overflow)
    return _numeric_text(rounded)


def _round_usec(usec: int, precision: int) -> int:
    """AdjustTimestampForTypmod(): round half away from zero to ``precision`` digits."""
    scale = 10 ** (_TIME_PRECISION_MAX - precision)
    rounded = (abs(usec) + scale // 2) // scale * scale
    return -rounded if usec < 0 else rounded


def _coerce_time(pgtype: PgType, typmod: int, value: str) -> object:
    if pgtype.oid in (1083, 1266):
        try:
            usec, offset = _storage_time(pgtype, value)
        except _Mismatch:
            return value
        usec = _round_usec(usec, typmod)
        return _time_text(usec) + (_zone_text(offset) if pgtype.oid == 1266 else "")
    try:
        instant = _storage_instant(pgtype, value)
    except _Mismatch:
        return value
    if isinstance(instant, str):
        return instant
    instant = _round_usec(instant, typmod)
    if instant > _TIMESTAMP_MAX:
        _fail(DATETIME_FIELD_OVERFLOW, "timestamp out of range")
    return _timestamp_text(instant)


def _coerce_interval(pgtype: PgType, typmod: int, value: str) -> object:
    try:
        months, days, usec = _storage_interval(pgtype, value)
    except _Mismatch:
        return value
    fields, precision = typmod >> 16, typmod & 0xFFFF
    if fields == _YEAR:
        months, days, usec = _tdiv(months, 12)[0] * 12, 0, 0
    elif fields in (_MONTH, _YEAR | _MONTH):
        days, usec = 0, 0
    elif fields == _DAY:
        usec = 0
    elif fields in (_HOUR, _DAY | _HOUR):
        usec = _tdiv(usec, _USEC_PER_HOUR)[0] * _USEC_PER_HOUR
    elif fields in (_MINUTE, _HOUR | _MINUTE, _DAY | _HOUR | _MINUTE):
        usec = _tdiv(usec, _USEC_PER_MINUTE)[0] * _USEC_PER_MINUTE
    if precision != _INTERVAL_FULL_PRECISION:
        usec = _round_usec(usec, precision)
    return _interval_iso(months, days, usec)
