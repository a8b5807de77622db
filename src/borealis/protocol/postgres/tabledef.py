"""A table's CREATE TABLE text, edited as text.

SQLite keeps each table's definition as the CREATE TABLE statement that made it (with the
column definitions of ALTER TABLE ADD COLUMN appended), and Borealis' declared column types
carry PostgreSQL's types (``types.sqlite_decltype``). The changes SQLite has no ALTER TABLE
for (a primary key, a column's NOT NULL, default or type, a constraint) are made on an
edited copy of that text. A parser that regenerates the statement would rewrite the declared
types (sqlglot turns ``INT`` into ``INTEGER``, which makes a SERIAL column SQLite's rowid
alias, and ``VARCHAR(20)`` into ``TEXT(20)``), so this splits the text and splices it: the
body into its top-level items, an item into tokens with their offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from borealis.protocol.postgres.statement import TranslationError

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<string>'(?:[^']|'')*')
  | (?P<open>\()
  | (?P<close>\))
  | (?P<comma>,)
  | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
  | (?P<number>[0-9.][0-9A-Za-z_.]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_CONSTRAINT_WORDS = frozenset({"constraint", "primary", "not", "null", "unique", "check",
                               "default", "collate", "references", "generated", "as"})
"""Words that end a column's type and start its constraints (SQLite's grammar)."""

_TABLE_CONSTRAINT_WORDS = frozenset({"constraint", "primary", "unique", "check", "foreign"})


@dataclass(frozen=True)
class Token:
    kind: str     # ident, string, group (a parenthesised whole), word, number, other
    text: str
    start: int
    end: int

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def tokens(text: str) -> list[Token]:
    """``text``'s tokens, a parenthesised part as one ``group`` token; no whitespace."""
    out: list[Token] = []
    depth = 0
    group_start = 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        if kind == "space":
            continue
        if kind == "open":
            if depth == 0:
                group_start = match.start()
            depth += 1
            continue
        if kind == "close":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' at {match.start()}")
            if depth == 0:
                out.append(Token("group", text[group_start:match.end()], group_start,
                                 match.end()))
            continue
        if depth == 0:
            out.append(Token(kind, match.group(), match.start(), match.end()))
    if depth:
        raise ValueError("unbalanced '('")
    return out


def unquote(token: Token) -> str:
    if token.kind == "ident":
        body = token.text[1:-1]
        return body.replace('""', '"') if token.text[0] == '"' else body.replace("``", "`")
    return token.text


def _splice(text: str, spans: list[tuple[int, int]], insert: str = "") -> str:
    """``text`` without ``spans``, and ``insert`` appended; single spaces between words."""
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + text[end:]
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    return f"{text} {insert}" if insert else text


@dataclass
class Column:
    """One column definition: its name, and where its type and constraints are."""

    text: str
    name: str
    _tokens: list[Token] = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Column:
        toks = tokens(text)
        if not toks or toks[0].kind not in ("ident", "word"):
            raise ValueError(f"not a column definition: {text[:60]!r}")
        return cls(text, unquote(toks[0]), toks)

    def _type_end(self) -> int:
        """The index of the first token after the declared type."""
        i = 1
        while i < len(self._tokens):
            token = self._tokens[i]
            if (token.kind == "word" and token.word not in _CONSTRAINT_WORDS) or (token.kind == "group" and i > 1):
                i += 1
            else:
                break
        return i

    @property
    def decltype(self) -> str:
        end = self._type_end()
        if end == 1:
            return ""
        return self.text[self._tokens[1].start:self._tokens[end - 1].end]

    def _find(self, *words: str) -> list[tuple[int, int]]:
        """Spans of the constraint ``words`` (consecutive), with a CONSTRAINT name before."""
        spans = []
        toks = self._tokens
        for i in range(self._type_end(), len(toks) - len(words) + 1):
            if all(toks[i + k].word == w for k, w in enumerate(words)):
                if words == ("null",) and i > 0 and toks[i - 1].word == "not":
                    continue
                start = toks[i].start
                if i >= 2 and toks[i - 2].word == "constraint":
                    start = toks[i - 2].start
                spans.append((start, toks[i + len(words) - 1].end))
        return spans

    def _default_spans(self) -> list[tuple[int, int]]:
        toks = self._tokens
        spans = []
        for i in range(self._type_end(), len(toks)):
            if toks[i].word != "default" or i + 1 >= len(toks):
                continue
            j = i + 1
            if toks[j].kind == "other" and toks[j].text in "+-" and j + 1 < len(toks):
                j += 1
            start = toks[i - 2].start if i >= 2 and toks[i - 2].word == "constraint" \
                else toks[i].start
            spans.append((start, toks[j].end))
        return spans

    @property
    def not_null(self) -> bool:
        return bool(self._find("not", "null"))

    @property
    def default(self) -> str | None:
        """The default's text as SQLite holds it (a parenthesised expression, a literal)."""
        spans = self._default_spans()
        if not spans:
            return None
        start, end = spans[0]
        text = self.text[start:end]
        return text[text.lower().index("default") + len("default"):].strip()

    @property
    def collation(self) -> str | None:
        toks = self._tokens
        for i in range(self._type_end(), len(toks) - 1):
            if toks[i].word == "collate":
                return unquote(toks[i + 1])
        return None

    def with_not_null(self, not_null: bool) -> Column:
        spans = self._find("not", "null") + self._find("null")
        return Column.parse(_splice(self.text, spans, "NOT NULL" if not_null else ""))

    def with_default(self, default: str | None) -> Column:
        """``default``: SQLite's text of the new default (parenthesised), None for none."""
        insert = f"DEFAULT {default}" if default is not None else ""
        return Column.parse(_splice(self.text, self._default_spans(), insert))

    def with_type(self, decltype: str, collation: str | None) -> Column:
        """The column with declared type ``decltype`` and ``collation`` (None: none)."""
        toks = self._tokens
        end = self._type_end()
        name_end = toks[0].end
        spans = [(toks[1].start, toks[end - 1].end)] if end > 1 else []
        spans += [(toks[i].start, toks[i + 1].end) for i in range(end, len(toks) - 1)
                  if toks[i].word == "collate"]
        rest = _splice(self.text[name_end:], [(a - name_end, b - name_end) for a, b in spans])
        parts = [self.text[:name_end], decltype]
        if collation is not None:
            parts.append(f"COLLATE {collation}")
        if rest:
            parts.append(rest)
        return Column.parse(" ".join(parts))


@dataclass
class TableDef:
    """A CREATE TABLE statement: the text before its items, the items, and the rest."""

    head: str
    items: list[str]
    tail: str

    @classmethod
    def parse(cls, sql: str) -> TableDef:
        toks = tokens(sql)
        group = next((t for t in toks if t.kind == "group"), None)
        if group is None or not any(t.word == "table" for t in toks[:4]):
            raise ValueError(f"not a CREATE TABLE statement: {sql[:60]!r}")
        body = sql[group.start + 1:group.end - 1]
        items: list[str] = []
        depth = 0
        start = 0
        for match in _TOKEN.finditer(body):
            kind = match.lastgroup
            if kind == "open":
                depth += 1
            elif kind == "close":
                depth -= 1
            elif kind == "comma" and depth == 0:
                items.append(body[start:match.start()].strip())
                start = match.end()
        items.append(body[start:].strip())
        return cls(sql[:group.start + 1], items, sql[group.end - 1:])

    @staticmethod
    def is_column(item: str) -> bool:
        toks = tokens(item)
        return bool(toks) and not (toks[0].kind == "word"
                                   and toks[0].word in _TABLE_CONSTRAINT_WORDS)

    def columns(self) -> list[Column]:
        return [Column.parse(item) for item in self.items if self.is_column(item)]

    def column_index(self, name: str) -> int:
        """The item index of column ``name`` (exact, else the one case-insensitive match)."""
        found = [(i, Column.parse(item).name) for i, item in enumerate(self.items)
                 if self.is_column(item)]
        for i, column in found:
            if column == name:
                return i
        folded = [i for i, column in found if column.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        raise KeyError(name)

    def column(self, name: str) -> Column:
        return Column.parse(self.items[self.column_index(name)])

    def replace_column(self, column: Column) -> None:
        self.items[self.column_index(column.name)] = column.text

    def constraint_index(self, name: str) -> int:
        """The item index of the table constraint named ``name``."""
        for i, item in enumerate(self.items):
            toks = tokens(item)
            if len(toks) >= 2 and toks[0].word == "constraint" \
                    and unquote(toks[1]).lower() == name.lower():
                return i
        raise KeyError(name)

    def sql(self) -> str:
        return f"{self.head}{', '.join(self.items)}{self.tail}"


def parse(sql: str, table: str) -> TableDef:
    """``table``'s definition; a definition this module cannot split is refused (0A000)."""
    try:
        return TableDef.parse(sql)
    except ValueError:
        raise TranslationError(
            f'changing the definition of table "{table}" (its CREATE TABLE text is not in '
            "a form Borealis edits)", "0A000") from None
