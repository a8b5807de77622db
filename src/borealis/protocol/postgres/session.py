"""The state of one PostgreSQL session that SQL can see, and the SQL functions that see it.

``SqlSession`` holds a connection's settings (SET/SHOW/RESET, ``current_setting``,
``set_config``), the transaction's and the statement's start time (``now()`` is the
transaction's, as in PostgreSQL), and the sequence values this session has taken
(``currval``, ``lastval``). ``register`` puts the ``_pg_*`` functions that the translator
(``translate``) calls into an SQLite connection, these and the session-independent ones of
``functions``; they run in the session's thread.

Times are UTC: the session's TimeZone is UTC and setting another zone is refused (0A000)
rather than shown in a zone it would not be computed in.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

import apsw

from borealis.protocol.postgres import functions
from borealis.protocol.postgres import schema as pgschema
from borealis.protocol.postgres.numeric import SqlFunctionError
from borealis.protocol.postgres.schema import ColumnInfo

SERVER_VERSION = "15.0 (Borealis)"
SERVER_VERSION_NUM = "150000"
REGEX_CACHE_MAX = 256


def _any(_value: str) -> str | None:
    return None


def _on_off(value: str) -> str | None:
    if value.lower() in ("on", "off", "true", "false", "yes", "no", "1", "0"):
        return None
    return "parameter requires a Boolean value"


def _utc_only(value: str) -> str | None:
    if value.lower().strip("'\"") in ("utc", "gmt", "etc/utc", "z", "+00", "+00:00", "0",
                                      "zulu", "universal", "etc/gmt"):
        return None
    return "time zones other than UTC"


def _iso_datestyle(value: str) -> str | None:
    parts = {p.strip().lower() for p in value.split(",")}
    if "iso" in parts and not parts & {"dmy", "ymd", "sql", "postgres", "german"}:
        return None
    return "DateStyle other than ISO, MDY"


def _utf8(value: str) -> str | None:
    if value.lower().replace("-", "").replace("_", "") in ("utf8", "unicode"):
        return None
    return "client encodings other than UTF8"


def _search_path(value: str) -> str | None:
    names = {p.strip().strip('"').lower() for p in value.split(",") if p.strip()}
    if names <= {"$user", "public", "pg_catalog"}:
        return None
    return "schemas other than public in search_path"


_SETTINGS: dict[str, tuple[str, Callable[[str], str | None], bool]] = {
    # name: (default, check -> refusal or None, reported at startup / on change)
    "application_name": ("", _any, True),
    "client_encoding": ("UTF8", _utf8, True),
    "datestyle": ("ISO, MDY", _iso_datestyle, True),
    "intervalstyle": ("postgres", lambda v: None if v.lower() == "postgres"
                      else "IntervalStyle other than postgres", True),
    "timezone": ("UTC", _utc_only, True),
    "standard_conforming_strings": ("on", lambda v: None if v.lower() in ("on", "true")
                                    else "standard_conforming_strings=off", True),
    "integer_datetimes": ("on", _any, True),
    "server_version": (SERVER_VERSION, _any, True),
    "server_version_num": (SERVER_VERSION_NUM, _any, False),
    "server_encoding": ("UTF8", _any, True),
    "is_superuser": ("on", _any, True),
    "default_transaction_read_only": ("off", _on_off, True),
    "in_hot_standby": ("off", _any, True),
    "search_path": ('"$user", public', _search_path, False),
    "extra_float_digits": ("1", _any, False),
    "statement_timeout": ("0", _any, False),
    "lock_timeout": ("0", _any, False),
    "idle_in_transaction_session_timeout": ("0", _any, False),
    "jit": ("off", _any, False),
    "work_mem": ("4MB", _any, False),
    "maintenance_work_mem": ("64MB", _any, False),
    "synchronous_commit": ("on", _any, False),
    "transaction_isolation": ("serializable", _any, False),
    "default_transaction_isolation": ("serializable", _any, False),
    "transaction_read_only": ("off", _any, False),
    "max_connections": ("100", _any, False),
    "max_identifier_length": ("63", _any, False),
    "lc_messages": ("C", _any, False),
    "lc_monetary": ("C", _any, False),
    "lc_numeric": ("C", _any, False),
    "lc_time": ("C", _any, False),
    "lc_collate": ("C.UTF-8", _any, False),
    "lc_ctype": ("C.UTF-8", _any, False),
    "bytea_output": ("hex", lambda v: None if v.lower() == "hex"
                     else "bytea_output other than hex", False),
    "client_min_messages": ("notice", _any, False),
    "row_security": ("on", _any, False),
    "session_replication_role": ("origin", _any, False),
    "enable_seqscan": ("on", _any, False),
    "geqo": ("on", _any, False),
    "random_page_cost": ("4", _any, False),
    "block_size": ("8192", _any, False),
    "password_encryption": ("scram-sha-256", _any, False),
    "default_with_oids": ("off", _any, False),
    "escape_string_warning": ("on", _any, False),
    "check_function_bodies": ("on", _any, False),
    "xmloption": ("content", _any, False),
    "max_stack_depth": ("2MB", _any, False),
    "cursor_tuple_fraction": ("0.1", _any, False),
    "plan_cache_mode": ("auto", _any, False),
    "default_table_access_method": ("heap", _any, False),
    "synchronize_seqscans": ("on", _on_off, False),
    "quote_all_identifiers": ("off", _on_off, False),
}

DISPLAY_NAMES = {"datestyle": "DateStyle", "intervalstyle": "IntervalStyle",
                 "timezone": "TimeZone"}
"""How a setting's name is spelled in ParameterStatus and SHOW ALL."""

_ALIASES = {"time zone": "timezone", "transaction isolation level": "transaction_isolation",
            "session authorization": "session_authorization"}


def _storage_timestamp(moment: dt.datetime) -> str:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text


class SqlSession:
    """One PostgreSQL session's state as SQL sees it."""

    def __init__(self, *, user: str, database: str, application_name: str = "",
                 read_only: bool = False, instance_id: str = "") -> None:
        self.user = user
        self.database = database
        self.instance_id = instance_id
        self.settings: dict[str, str] = {name: d for name, (d, _, _) in _SETTINGS.items()}
        self.settings["application_name"] = application_name
        if read_only:
            self.settings["default_transaction_read_only"] = "on"
            self.settings["transaction_read_only"] = "on"
            self.settings["in_hot_standby"] = "on"
        self._local: dict[str, str] = {}  # SET LOCAL: undone at the transaction's end
        self.transaction_started: dt.datetime | None = None
        self.statement_started = dt.datetime.now(dt.UTC)
        self.currvals: dict[str, int] = {}
        self.last_sequence: str | None = None
        self.changed: list[str] = []  # settings to report with ParameterStatus
        self._regex: dict[tuple[str, str], re.Pattern[str]] = {}

    # settings ----------------------------------------------------------------------
    @staticmethod
    def canonical(name: str) -> str:
        name = " ".join(name.lower().split())
        return _ALIASES.get(name, name)

    def get(self, name: str, *, missing_ok: bool = False) -> str | None:
        key = self.canonical(name)
        if key in self._local:
            return self._local[key]
        if key in self.settings:
            return self.settings[key]
        if key == "session_authorization":
            return self.user
        if "." in key or missing_ok:
            return None if missing_ok else ""
        raise SqlFunctionError(f'unrecognized configuration parameter "{name}"', "42704")

    def set(self, name: str, value: str | None, *, local: bool = False,
            in_transaction: bool = False) -> None:
        key = self.canonical(name)
        if key == "all" and value is None:
            for setting, (default, _, report) in _SETTINGS.items():
                if setting in ("application_name",) or setting.startswith("server_"):
                    continue
                if self.settings.get(setting) != default and report:
                    self.changed.append(setting)
                self.settings[setting] = default
            return
        known = _SETTINGS.get(key)
        if known is None and "." not in key:
            raise SqlFunctionError(f'unrecognized configuration parameter "{name}"', "42704")
        if known is not None and (key.startswith("server_") or key in (
                "integer_datetimes", "is_superuser", "in_hot_standby", "max_connections",
                "block_size", "lc_collate", "lc_ctype", "max_identifier_length")):
            raise SqlFunctionError(f'parameter "{name}" cannot be changed', "55P02")
        if value is not None and len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("''", "'")  # a quoted value, as asyncpg sends them
        if value is None or value == "":
            value = known[0] if known is not None else ""
        if known is not None:
            refusal = known[1](value)
            if refusal is not None:
                raise SqlFunctionError(f"{refusal} is not supported by Borealis "
                                       f"({name} = {value})", "0A000")
        if key == "timezone":
            value = "UTC"
        if local:
            if in_transaction:
                self._local[key] = value
            return
        self.settings[key] = value
        if known is not None and known[2]:
            self.changed.append(key)

    def end_transaction(self) -> None:
        self._local.clear()
        self.transaction_started = None

    def show_all(self) -> list[tuple[str, str, str]]:
        return [(DISPLAY_NAMES.get(n, n), self.get(n) or "", "") for n in sorted(self.settings)]

    def take_changes(self) -> list[tuple[str, str]]:
        out = [(DISPLAY_NAMES.get(n, n), self.settings[n]) for n in dict.fromkeys(self.changed)]
        self.changed.clear()
        return out

    # timestamps -------------------------------------------------------------------
    def begin_statement(self, in_transaction: bool) -> None:
        self.statement_started = dt.datetime.now(dt.UTC)
        if not in_transaction or self.transaction_started is None:
            self.transaction_started = self.statement_started

    # functions --------------------------------------------------------------------
    def register(self, conn: apsw.Connection) -> None:
        """Put the ``_pg_*`` functions into ``conn``: this session's (clocks, settings,
        sequences) and every other one translated statements call (``functions``)."""
        functions.register(conn)

        def add(name: str, fn: Callable[..., Any], args: int = -1) -> None:
            conn.create_scalar_function(name, fn, args)

        add("_pg_now", lambda: _storage_timestamp(self._transaction_time()), 0)
        add("_pg_current_timestamp", self._current_timestamp)
        add("_pg_localtimestamp", self._current_timestamp)
        add("_pg_statement_timestamp", lambda: _storage_timestamp(self.statement_started), 0)
        add("_pg_clock_timestamp", lambda: _storage_timestamp(dt.datetime.now(dt.UTC)), 0)
        add("_pg_current_date", lambda: self._transaction_time().strftime("%Y-%m-%d"), 0)
        add("_pg_current_time", lambda: self._transaction_time().strftime("%H:%M:%S.%f")
            .rstrip("0").rstrip(".") + "+00", 0)
        add("_pg_gen_random_uuid", lambda: str(uuid.uuid4()), 0)
        # aurora_db_instance_identifier(), as Aurora PostgreSQL names it: which instance
        # serves this session (behind an endpoint, the way to see where one landed).
        add("_pg_instance_id", lambda: self.instance_id, 0)
        add("_pg_current_setting", self._current_setting)
        add("_pg_set_config", self._set_config, 3)
        add("_pg_regexp", self._regexp, 3)
        add("_pg_nextval", lambda name: self._nextval(conn, name), 1)
        add("_pg_currval", self._currval, 1)
        add("_pg_default", lambda table, column: _column_default(conn, table, column), 2)
        add("_pg_user_value", lambda table, column, value: _user_value(
            conn, table, column, value), 3)
        add("_pg_lastval", self._lastval, 0)
        add("_pg_setval", lambda name, value, called=1: self._setval(conn, name, value,
                                                                      called))

    def _transaction_time(self) -> dt.datetime:
        return self.transaction_started or self.statement_started

    def _current_timestamp(self, precision: Any = None) -> str:
        """CURRENT_TIMESTAMP[(p)] and LOCALTIMESTAMP[(p)]: the transaction's start,
        rounded to ``p`` fractional digits."""
        moment = self._transaction_time()
        if precision is not None:
            digits = max(0, min(int(precision), 6))
            scale = 10 ** (6 - digits)
            usec = (moment.microsecond + scale // 2) // scale * scale
            moment = moment.replace(microsecond=0) + dt.timedelta(microseconds=usec)
        return _storage_timestamp(moment)

    def _current_setting(self, name: str, missing_ok: int = 0) -> str | None:
        return self.get(str(name), missing_ok=bool(missing_ok))

    def _set_config(self, name: str, value: str, local: int) -> str | None:
        self.set(str(name), None if value is None else str(value), local=bool(local),
                 in_transaction=True)
        return self.get(str(name), missing_ok=True)

    def _regexp(self, text: Any, pattern: Any, flags: str) -> int | None:
        if text is None or pattern is None:
            return None
        key = (str(pattern), flags)
        compiled = self._regex.get(key)
        if compiled is None:
            try:
                compiled = re.compile(str(pattern), re.IGNORECASE if "i" in flags else 0)
            except re.error as exc:
                raise SqlFunctionError(f"invalid regular expression: {exc}", "2201B") from None
            if len(self._regex) >= REGEX_CACHE_MAX:
                self._regex.clear()
            self._regex[key] = compiled
        return int(compiled.search(str(text)) is not None)

    # sequences --------------------------------------------------------------------
    def _nextval(self, conn: apsw.Connection, name: Any) -> int:
        sequence = sequence_name(name)
        rows = list(conn.execute(
            "SELECT last_value, is_called, increment_by, min_value, max_value, cycle "
            "FROM _borealis_sequences WHERE name = ?", (sequence,))) if _has_sequences(
            conn) else []
        if not rows:
            raise SqlFunctionError(f'relation "{sequence}" does not exist', "42P01")
        last, called, step, low, high, cycle = rows[0]
        value = last + step if called else last
        if value > high or value < low:
            if not cycle:
                bound = "maximum" if value > high else "minimum"
                raise SqlFunctionError(
                    f'nextval: reached {bound} value of sequence "{sequence}" '
                    f"({high if value > high else low})", "2200H")
            value = low if value > high else high
        conn.execute("UPDATE _borealis_sequences SET last_value = ?, is_called = 1 "
                     "WHERE name = ?", (value, sequence))
        self.currvals[sequence] = value
        self.last_sequence = sequence
        return int(value)

    def _currval(self, name: Any) -> int:
        sequence = sequence_name(name)
        if sequence not in self.currvals:
            raise SqlFunctionError(f'currval of sequence "{sequence}" is not yet defined in '
                                   "this session", "55000")
        return self.currvals[sequence]

    def _lastval(self) -> int:
        if self.last_sequence is None:
            raise SqlFunctionError("lastval is not yet defined in this session", "55000")
        return self.currvals[self.last_sequence]

    def _setval(self, conn: apsw.Connection, name: Any, value: int, called: int) -> int:
        sequence = sequence_name(name)
        rows = list(conn.execute("SELECT min_value, max_value FROM _borealis_sequences "
                                 "WHERE name = ?", (sequence,))) if _has_sequences(conn) else []
        if not rows:
            raise SqlFunctionError(f'relation "{sequence}" does not exist', "42P01")
        low, high = rows[0]
        if not low <= int(value) <= high:
            raise SqlFunctionError(f'setval: value {value} is out of bounds for sequence '
                                   f'"{sequence}" ({low}..{high})', "22003")
        conn.execute("UPDATE _borealis_sequences SET last_value = ?, is_called = ? "
                     "WHERE name = ?", (int(value), 1 if called else 0, sequence))
        if called:
            self.currvals[sequence] = int(value)
            self.last_sequence = sequence
        return int(value)


def _has_sequences(conn: apsw.Connection) -> bool:
    return bool(list(conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_borealis_sequences'")))


def sequence_name(name: Any) -> str:
    text = str(name).strip()
    if text.lower().startswith("public."):
        text = text[len("public."):]
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


cast_value = functions.cast_value
"""Kept here for callers of the session's casts (``functions`` owns them)."""


def _target_column(conn: apsw.Connection, table: Any, column: Any) -> ColumnInfo | None:
    """``table``'s column ``column``: a name, or a position (a VALUES without a column
    list); None for a position past the last column."""
    found = pgschema.columns(conn, str(table))
    if isinstance(column, int):
        return found[column] if 0 <= column < len(found) else None
    named = [c for c in found if c.name.lower() == str(column).lower()]
    if not named:
        raise SqlFunctionError(f'column "{column}" of relation "{table}" does not exist',
                               "42703")
    return named[0]


def _column_default(conn: apsw.Connection, table: Any, column: Any) -> Any:
    """The value of ``table``'s default for ``column`` (a name, or a position), evaluated
    now: ``DEFAULT`` where SQLite has no keyword for it (``UPDATE ... SET c = DEFAULT``,
    DEFAULT in some rows of a VALUES only)."""
    target = _target_column(conn, table, column)
    if target is None:
        raise SqlFunctionError("INSERT has more expressions than target columns", "42601")
    if target.default is None:
        return None
    return next(iter(conn.execute(f"SELECT {target.default}")))[0]


def _user_value(conn: apsw.Connection, table: Any, column: Any, value: Any) -> Any:
    """OVERRIDING USER VALUE: the default of an identity column, else ``value``."""
    target = _target_column(conn, table, column)
    if target is None or not any(conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE name = '_borealis_sequences'")):
        return value
    identity = list(conn.execute(
        "SELECT 1 FROM _borealis_sequences WHERE owner_table = ? AND owner_column = ? "
        "COLLATE NOCASE AND identity <> ''", (str(table), target.name)))
    return _column_default(conn, table, target.name) if identity else value
