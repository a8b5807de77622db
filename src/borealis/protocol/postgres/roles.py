"""Roles: the users that may log in besides the master user, with their passwords.

``CREATE ROLE|USER name [WITH] [LOGIN|NOLOGIN] [[ENCRYPTED] PASSWORD 'secret'|NULL]``,
``ALTER ROLE|USER name [WITH] ...`` and ``DROP ROLE|USER [IF EXISTS] name, ...`` keep
roles in the database itself (``_borealis_roles``), so every instance of the cluster,
readers included, authenticates them from the shared volume. A password is kept only as
its SCRAM-SHA-256 secret, as PostgreSQL keeps it (``ScramSecret.encode``); a secret given
in that form (from a dump) is kept as it is.

Borealis has no privileges: every role may do everything the master user may. Options and
statements that would grant or take away privileges (``NOSUPERUSER``, ``NOCREATEDB``,
``GRANT``, ``REVOKE``, ``VALID UNTIL``...) are refused with 0A000 rather than accepted and
not enforced. The master user (``--pg-user``, default ``postgres``) is configured on the
instance, not stored here.

The parsing is by regular expression on the statement text (sqlglot does not parse these
statements); the functions taking a connection run in the session's thread.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import apsw

from borealis.errors import SqlError
from borealis.protocol.postgres import sqltext
from borealis.protocol.postgres.scram import ScramSecret

ROLES_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS _borealis_roles (name TEXT PRIMARY KEY, secret TEXT, "
    "can_login INTEGER NOT NULL DEFAULT 1, created TEXT NOT NULL)"
)

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_CREATE = re.compile(rf"^\s*CREATE\s+(?P<kind>ROLE|USER)\s+(?P<name>{_NAME})"
                     r"(?:\s+WITH)?(?P<options>[\s\S]*)$", re.I)
_ALTER = re.compile(rf"^\s*ALTER\s+(?P<kind>ROLE|USER)\s+(?P<name>{_NAME})"
                    r"(?:\s+WITH)?(?P<options>[\s\S]*)$", re.I)
_DROP = re.compile(rf"^\s*DROP\s+(?P<kind>ROLE|USER)\s+(?P<exists>IF\s+EXISTS\s+)?"
                   rf"(?P<names>{_NAME}(?:\s*,\s*{_NAME})*)\s*$", re.I)
_PRIVILEGES = re.compile(r"^\s*(GRANT|REVOKE)\b", re.I)
_OPTION = re.compile(
    r"\s*(?:(?P<login>LOGIN|NOLOGIN)|(?P<password>(?:ENCRYPTED\s+)?PASSWORD\s+"
    r"(?P<value>NULL|'(?:[^']|'')*'|[eE]'(?:[^'\\]|\\.|'')*'))|(?P<harmless>SUPERUSER|"
    r"INHERIT|CREATEDB|CREATEROLE|REPLICATION|BYPASSRLS)|(?P<other>\S+))", re.I)


@dataclass(frozen=True, slots=True)
class RoleStatement:
    verb: str                      # create, alter, drop
    names: tuple[str, ...]
    login: bool | None = None      # None: not said
    password: str | None = None    # the text given (or a SCRAM secret)
    clear_password: bool = False   # PASSWORD NULL
    if_exists: bool = False

    @property
    def tag(self) -> str:
        return {"create": "CREATE ROLE", "alter": "ALTER ROLE", "drop": "DROP ROLE"}[self.verb]


class RoleError(SqlError):
    """A role statement that cannot be carried out."""


def _identifier(text: str) -> str:
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def parse(sql: str) -> RoleStatement | None:
    """The role statement ``sql`` is, or None when it is not one. GRANT and REVOKE are
    refused (0A000)."""
    if _PRIVILEGES.match(sql):
        raise RoleError("GRANT and REVOKE are not supported by Borealis: it has no "
                        "privileges, every role may do everything", "0A000")
    if (match := _DROP.match(sql)) is not None:
        names = tuple(_identifier(n.strip()) for n in re.findall(_NAME, match["names"]))
        return RoleStatement("drop", names, if_exists=bool(match["exists"]))
    for verb, pattern in (("create", _CREATE), ("alter", _ALTER)):
        match = pattern.match(sql)
        if match is None:
            continue
        name = _identifier(match["name"])
        login: bool | None = True if verb == "create" and match["kind"].upper() == "USER" \
            else None
        password: str | None = None
        clear = False
        for option in _OPTION.finditer(match["options"]):
            if option["login"]:
                login = option["login"].upper() == "LOGIN"
            elif option["password"]:
                value = option["value"]
                if value.upper() == "NULL":
                    clear, password = True, None
                else:
                    password = sqltext.string_literal_value(value)
            elif option["other"]:
                raise RoleError(f"the role option {option['other'].upper()} is not supported "
                                "by Borealis (it has no privileges: every role may do "
                                "everything)", "0A000")
        if verb == "create" and login is None:
            login = False  # CREATE ROLE: NOLOGIN unless said, as in PostgreSQL
        return RoleStatement(verb, (name,), login, password, clear)
    return None


def _secret(password: str) -> str:
    if password.startswith("SCRAM-SHA-256$"):
        ScramSecret.decode(password)  # a stored secret from a dump: kept as it is
        return password
    if password.startswith("md5") and len(password) == 35:
        raise RoleError("MD5 password hashes are not supported by Borealis (SCRAM-SHA-256 "
                        "only)", "0A000")
    return ScramSecret.from_password(password).encode()


def _exists(conn: apsw.Connection) -> bool:
    return bool(list(conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_borealis_roles'")))


def run(conn: apsw.Connection, statement: RoleStatement, *, master: str) -> None:
    """Carry out ``statement`` (inside the caller's transaction)."""
    if any(name == master for name in statement.names):
        if statement.verb == "create":
            raise RoleError(f'role "{master}" already exists', "42710")
        raise RoleError(f'role "{master}" is the master user: it is configured on the '
                        "instance (--pg-user, --pg-password), not by SQL", "0A000")
    if statement.verb == "drop":
        if not _exists(conn):
            if statement.if_exists:
                return
            raise RoleError(f'role "{statement.names[0]}" does not exist', "42704")
        for name in statement.names:
            if not list(conn.execute("SELECT 1 FROM _borealis_roles WHERE name = ?", (name,))):
                if statement.if_exists:
                    continue
                raise RoleError(f'role "{name}" does not exist', "42704")
            conn.execute("DELETE FROM _borealis_roles WHERE name = ?", (name,))
        return
    conn.execute(ROLES_TABLE_DDL)
    name = statement.names[0]
    found = list(conn.execute("SELECT can_login FROM _borealis_roles WHERE name = ?", (name,)))
    secret = _secret(statement.password) if statement.password is not None else None
    if statement.verb == "create":
        if found:
            raise RoleError(f'role "{name}" already exists', "42710")
        conn.execute("INSERT INTO _borealis_roles (name, secret, can_login, created) "
                     "VALUES (?, ?, ?, ?)",
                     (name, secret, 1 if statement.login else 0,
                      dt.datetime.now(dt.UTC).isoformat()))
        return
    if not found:
        raise RoleError(f'role "{name}" does not exist', "42704")
    if statement.login is not None:
        conn.execute("UPDATE _borealis_roles SET can_login = ? WHERE name = ?",
                     (1 if statement.login else 0, name))
    if secret is not None or statement.clear_password:
        conn.execute("UPDATE _borealis_roles SET secret = ? WHERE name = ?", (secret, name))


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    secret: ScramSecret | None
    can_login: bool


def lookup(conn: apsw.Connection, name: str) -> Role | None:
    """The stored role ``name``, or None."""
    if not _exists(conn):
        return None
    rows = list(conn.execute("SELECT secret, can_login FROM _borealis_roles WHERE name = ?",
                             (name,)))
    if not rows:
        return None
    secret_text, can_login = rows[0]
    secret = ScramSecret.decode(secret_text) if secret_text else None
    return Role(name, secret, bool(can_login))
