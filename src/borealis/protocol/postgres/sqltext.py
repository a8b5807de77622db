"""PostgreSQL SQL as text, before any parsing: splitting a query string into statements and
normalising a statement's literals into parameters.

Both run on every simple-protocol statement, so they are one pass of a small lexer rather
than sqlglot's tokenizer: ``normalize`` turns ``UPDATE t SET v = v + 2695 WHERE id = 5``
into the key ``UPDATE t SET v = v + $1 WHERE id = $2`` and the values ``[2695, 5]``, and
the translator's cache (``translate.Translator``) then translates each shape of statement
once, however many different literals pgbench sends (DESIGN decision 8).

A literal stays in the text (and in the key) where its value is part of the statement's
meaning rather than data: after a type name (``interval '1 day'``, ``date '2024-01-01'``),
before a ``::`` cast (``'t'::regclass``), after ``BY`` (``ORDER BY 1`` sorts by the first
column, ``ORDER BY $1`` by a constant), and anywhere in statements other than queries and
DML (a DDL default, a SET value). The translator refuses the remaining positions where a
parameter cannot stand for a literal (``NeedsLiteral``), and the statement is then
translated as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<estring>[eE]'(?:[^'\\]|\\.|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<param>\$[0-9]+)
  | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*|)\$[\s\S]*?\$(?P=tag)\$)
  | (?P<open_dollar>\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$)
  | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<word>[A-Za-z_\u0080-\uffff][A-Za-z_0-9$\u0080-\uffff]*)
  | (?P<cast>::)
  | (?P<semicolon>;)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_INSIGNIFICANT = frozenset({"space", "line_comment", "block_comment"})
_SPECIAL = re.compile(r"[;'\"$]|--|/\*")
"""Text without any of these is one statement of plain tokens (the common case)."""

NORMALIZED_FIRST_WORDS = frozenset({"select", "insert", "update", "delete", "with", "values"})
"""Only queries and DML have their literals made parameters: elsewhere a literal is
usually part of the statement's meaning (a default, a setting, a type modifier)."""

_DATA_BEFORE = frozenset({
    "select", "where", "and", "or", "not", "like", "ilike", "in", "is", "then", "else",
    "when", "between", "set", "values", "limit", "offset", "on", "returning", "case",
    "distinct", "all", "any", "some", "having", "escape", "similar", "to", "do",
})
"""Words after which a literal is data. After any other word it is part of a typed literal
(``interval '1 day'``) or syntax, and stays."""

LITERALS_MAX = 1000
"""A statement with more literals than this is not normalised (a bulk VALUES list would
make a cache entry per row count, for no gain)."""


class SqlTextError(ValueError):
    """The text cannot be split: an unterminated quote, comment or dollar-quoted string."""

    sqlstate = "42601"


@dataclass(frozen=True, slots=True)
class Normalized:
    """A statement with its data literals replaced by ``$1..$n``."""

    key: str
    values: tuple[int | str, ...]
    kinds: tuple[str, ...]
    """Per value: 'int4', 'int8', 'numeric' (a decimal literal, bound as its exact text) or
    'unknown' (a string literal, typed by its context as in PostgreSQL)."""


def _block_comment_end(sql: str, start: int) -> int:
    """PostgreSQL block comments nest."""
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlTextError("unterminated /* comment")


def _tokens(sql: str) -> list[tuple[str, str, int]]:
    """(kind, text, start) for every token, comments and spaces included."""
    if "/*" in sql:
        return _tokens_nested(sql)
    out: list[tuple[str, str, int]] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        if kind == "tag":
            kind = "dollar"
        elif kind == "open_dollar":
            raise SqlTextError(f"unterminated dollar-quoted string at {match.group()}")
        elif kind == "other" and match.group() in "'\"":
            what = "string" if match.group() == "'" else "identifier"
            raise SqlTextError(f"unterminated quoted {what}")
        assert kind is not None
        out.append((kind, match.group(), match.start()))
    return out


def _tokens_nested(sql: str) -> list[tuple[str, str, int]]:
    """``_tokens`` for text with block comments, which nest in PostgreSQL (a regular
    expression cannot find their end)."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(sql)
    while i < n:
        match = _TOKEN.match(sql, i)
        assert match is not None  # 'other' matches any character
        kind = match.lastgroup
        assert kind is not None
        if kind == "tag":
            kind = "dollar"
        end = match.end()
        if kind == "block_comment":
            end = _block_comment_end(sql, i)
        elif kind == "open_dollar":
            raise SqlTextError(f"unterminated dollar-quoted string at {match.group()}")
        elif kind == "other" and sql[i] in "'\"":
            what = "string" if sql[i] == "'" else "identifier"
            raise SqlTextError(f"unterminated quoted {what}")
        out.append((kind, sql[i:end], i))
        i = end
    return out


def split(sql: str) -> list[str]:
    """The statements of a simple Query, without their semicolons; blank ones dropped."""
    body = sql.rstrip().rstrip(";")
    if _SPECIAL.search(body) is None:
        return [body] if body.strip() else []
    statements: list[str] = []
    start = 0
    for kind, _text, position in _tokens(sql):
        if kind == "semicolon":
            statements.append(sql[start:position])
            start = position + 1
    statements.append(sql[start:])
    return [s for s in statements if not is_blank(s)]


def is_blank(sql: str) -> bool:
    """True for text with no statement: only spaces and comments."""
    if not sql.strip():
        return True
    if "--" not in sql and "/*" not in sql:
        return False
    return all(kind in _INSIGNIFICANT for kind, _, _ in _tokens(sql))


def first_word(sql: str) -> str:
    """The statement's first keyword, lower-cased ('' for none)."""
    for kind, text, _ in _tokens(sql):
        if kind == "word":
            return text.lower()
        if kind not in ("space", "line_comment", "block_comment", "other"):
            return ""
    return ""


def space_parameters(sql: str) -> str:
    """``$1,$2`` with a space after each parameter: sqlglot's tokenizer reads ``$1,$`` as
    the start of a dollar-quoted string."""
    if "$" not in sql:
        return sql
    return "".join(text + " " if kind == "param" else text for kind, text, _ in _tokens(sql))


def standard_string(value: str) -> str:
    """A standard-conforming string literal ('...', quotes doubled) of ``value``."""
    return "'" + value.replace("'", "''") + "'"


def prepare(sql: str) -> str:
    """The text sqlglot parses: parameters spaced (``space_parameters``) and ``E'...'``
    strings written as standard strings of the same value (sqlglot reads them as byte
    strings; in PostgreSQL they are text)."""
    if "$" not in sql and "'" not in sql:
        return sql
    parts = []
    for kind, text, _ in _tokens(sql):
        if kind == "param":
            parts.append(text + " ")
        elif kind == "estring":
            parts.append(standard_string(_string_value(kind, text)))
        else:
            parts.append(text)
    return "".join(parts)


def strip_overriding(sql: str) -> tuple[str, str]:
    """An INSERT's ``OVERRIDING SYSTEM VALUE`` or ``OVERRIDING USER VALUE`` (which sqlglot
    does not parse) taken out: (the statement without it, 'system', 'user' or '')."""
    if first_word(sql) != "insert" or "overriding" not in sql.lower():
        return sql, ""
    tokens = [t for t in _tokens(sql) if t[0] not in ("space", "block_comment", "line_comment")]
    for index, (kind, text, start) in enumerate(tokens[:-2]):
        if kind == "word" and text.lower() == "overriding":
            which, value = tokens[index + 1], tokens[index + 2]
            if which[1].lower() in ("system", "user") and value[1].lower() == "value":
                end = value[2] + len(value[1])
                return sql[:start] + sql[end:], which[1].lower()
    return sql, ""


def _string_value(kind: str, text: str) -> str:
    if kind == "string":
        return text[1:-1].replace("''", "'")
    body = text[2:-1]
    out: list[str] = []
    i = 0
    escapes = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
    while i < len(body):
        ch = body[i]
        if ch == "'" and body.startswith("''", i):
            out.append("'")
            i += 2
        elif ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in escapes:
                out.append(escapes[nxt])
                i += 2
            elif nxt in "01234567":
                digits = re.match(r"[0-7]{1,3}", body[i + 1:])
                assert digits is not None
                out.append(chr(int(digits.group(0), 8)))
                i += 1 + len(digits.group(0))
            elif nxt == "x" and re.match(r"[0-9A-Fa-f]", body[i + 2:i + 3]):
                digits = re.match(r"[0-9A-Fa-f]{1,2}", body[i + 2:])
                assert digits is not None
                out.append(chr(int(digits.group(0), 16)))
                i += 2 + len(digits.group(0))
            elif nxt in "uU":
                width = 4 if nxt == "u" else 8
                code = body[i + 2:i + 2 + width]
                if len(code) != width or not re.fullmatch(r"[0-9A-Fa-f]+", code):
                    raise SqlTextError("invalid Unicode escape in E'' string")
                out.append(chr(int(code, 16)))
                i += 2 + width
            else:
                out.append(nxt)
                i += 2
        else:
            out.append(ch)
            i += 1
    value = "".join(out)
    if "\x00" in value:
        raise SqlTextError("invalid byte sequence: a string cannot contain the NUL character")
    return value


def string_literal_value(text: str) -> str:
    """The value of a string literal token as written ('it''s' or E'a\\n')."""
    return _string_value("estring" if text[:1] in "eE" else "string", text)


def _number_value(text: str) -> tuple[int | str, str]:
    """A numeric literal's value and kind: an integer, or the exact decimal text of a
    numeric one (a float would round it)."""
    if re.fullmatch(r"[0-9]+", text):
        value = int(text)
        if value < 2**31:
            return value, "int4"
        if value < 2**63:
            return value, "int8"
        return text, "numeric"
    return text, "numeric"


def number_kind(text: str) -> str:
    """'int4', 'int8' or 'numeric': the type PostgreSQL gives a numeric literal."""
    return _number_value(text)[1]


def normalize(sql: str) -> Normalized | None:
    """The statement's shape and its data literals, or None when it is not normalised
    (not a query or DML, it has parameters of its own, or too many literals)."""
    tokens = _tokens(sql)
    significant = [i for i, t in enumerate(tokens) if t[0] not in _INSIGNIFICANT]
    if not significant:
        return None
    first = tokens[significant[0]]
    if first[0] != "word" or first[1].lower() not in NORMALIZED_FIRST_WORDS:
        return None
    parts: list[str] = []
    values: list[int | str] = []
    kinds: list[str] = []
    previous: tuple[str, str, int] | None = None
    position = 0  # in significant
    for token in tokens:
        kind, text, _ = token
        if kind in _INSIGNIFICANT:
            parts.append(" " if kind != "space" or parts else "")
            continue
        if kind == "param":
            return None  # the client's own parameters: prepared by the client, not here
        position += 1
        if kind in ("string", "estring", "number"):
            after = tokens[significant[position]] if position < len(significant) else None
            before_ok = previous is None or previous[0] == "other" or (
                previous[0] == "word" and previous[1].lower() in _DATA_BEFORE)
            if before_ok and not (after is not None and after[0] == "cast"):
                if len(values) >= LITERALS_MAX:
                    return None
                if kind == "number":
                    number, number_kind = _number_value(text)
                    values.append(number)
                    kinds.append(number_kind)
                else:
                    values.append(_string_value(kind, text))
                    kinds.append("unknown")
                parts.append(f"${len(values)}")
                previous = token
                continue
        parts.append(text)
        previous = token
    return Normalized("".join(parts).strip(), tuple(values), tuple(kinds))


def rename_calls(sql: str, names: dict[str, str]) -> str:
    """``sql`` with the calls of the functions ``names`` maps (lower-case names) renamed, in
    code only: not in strings, quoted identifiers or comments."""
    tokens = _tokens(sql)
    out: list[str] = []
    for index, (kind, text, _) in enumerate(tokens):
        if kind == "word" and text.lower() in names:
            following = next((t for t in tokens[index + 1:] if t[0] not in _INSIGNIFICANT),
                             None)
            if following is not None and following[1] == "(":
                out.append(names[text.lower()])
                continue
        out.append(text)
    return "".join(out)
