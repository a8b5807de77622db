"""PostgreSQL's JSON operators for translated SQL: ``->``, ``->>``, ``#>``, ``#>>``, ``@>``,
``<@``, ``?``, ``?|``, ``?&`` and the ``json[b]_build_*`` functions, on JSON text.

SQLite has ``->`` and ``->>`` too, with other meanings: its ``->>`` returns SQL integers and
reals (PostgreSQL's returns text, so ``data->>'n' = '1'`` would be false), its right operand
is a JSON path when it starts with ``$``, and it has no containment or key-existence
operators. These functions parse the document with numbers kept as written and answer as
PostgreSQL does; a JSON value built here comes back in jsonb's output form (``{"a": 1,
"b": [1, 2]}``), which is how Borealis stores jsonb, and a member taken out of a document
(``->``, ``#>``) as the document writes it, which is json's (kept as its input) and jsonb's. PostgreSQL arrays are stored as JSON too (``types``), so
``@>`` and ``<@`` of arrays go through the same containment.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from borealis.protocol.postgres import types as pgtypes
from borealis.protocol.postgres.numeric import SqlFunctionError


class _Number(str):
    """A JSON number, kept as its text (jsonb keeps '1.50' as written)."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise SqlFunctionError(f'invalid input syntax for type json: "{name}"', "22P02")


def parse(text: Any) -> Any:
    """A JSON document (text) as Python values, numbers as ``_Number``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        text = json.dumps(text)
    try:
        return json.loads(text, parse_float=_Number, parse_int=_Number,
                          parse_constant=_reject_constant)
    except ValueError:
        raise SqlFunctionError("invalid input syntax for type json", "22P02") from None


def dumps(value: Any) -> str:
    """jsonb's output form: ', ' and ': ' separators, numbers as written."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return json.dumps(value) if not isinstance(value, Decimal) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dumps(k)}: {dumps(v)}" for k, v in value.items()) + "}"
    raise SqlFunctionError(f"cannot represent {type(value).__name__} in JSON", "22023")


# -- members as the document writes them ------------------------------------------------
# PostgreSQL's json keeps its input text, and ``->`` of a json value gives the member's text
# as written (spaces, the number 2.50, escapes); jsonb is stored in its output form, whose
# members are written in that form too. So ``->``, ``->>``, ``#>`` and ``#>>`` cut the
# member's text out of the document rather than parse and print it again, which is right
# for both types. A key written twice in a json object: the last one counts, as in
# PostgreSQL.

_SPACE = " \t\n\r"
_VALUE_END = ",]} \t\n\r"


def _invalid() -> SqlFunctionError:
    return SqlFunctionError("invalid input syntax for type json", "22P02")


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def _string_end(text: str, i: int) -> int:
    """The end of the string that starts at ``text[i]`` (a quote)."""
    j = i + 1
    while True:
        j = text.find('"', j)
        if j < 0:
            raise _invalid()
        k = j - 1
        while text[k] == "\\":
            k -= 1
        if (j - 1 - k) % 2 == 0:  # an even number of backslashes: not escaped
            return j + 1
        j += 1


def _value_end(text: str, i: int) -> int:
    """The end of the JSON value that starts at ``text[i]``."""
    if i >= len(text):
        raise _invalid()
    first = text[i]
    if first == '"':
        return _string_end(text, i)
    if first in "[{":
        depth, j = 0, i
        while j < len(text):
            ch = text[j]
            if ch == '"':
                j = _string_end(text, j)
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise _invalid()
    j = i
    while j < len(text) and text[j] not in _VALUE_END:
        j += 1
    if j == i:
        raise _invalid()
    return j


def _child(text: str, start: int, key: Any) -> tuple[int, int] | None:
    """The span of member ``key`` (a str) of the object, or element ``key`` (an int) of the
    array, that starts at ``text[start]``; None when there is none."""
    opening = text[start]
    if opening not in "[{" or isinstance(key, bool) or \
            not isinstance(key, str if opening == "{" else int):
        return None
    closing = "}" if opening == "{" else "]"
    found: tuple[int, int] | None = None
    elements: list[tuple[int, int]] = []
    i = _skip(text, start + 1)
    if i < len(text) and text[i] == closing:
        return None
    while True:
        name = ""
        if opening == "{":
            if i >= len(text) or text[i] != '"':
                raise _invalid()
            end = _string_end(text, i)
            raw = text[i + 1:end - 1]
            name = json.loads(text[i:end]) if "\\" in raw else raw
            i = _skip(text, end)
            if i >= len(text) or text[i] != ":":
                raise _invalid()
            i = _skip(text, i + 1)
        end = _value_end(text, i)
        if opening == "{":
            if name == key:
                found = (i, end)
        else:
            elements.append((i, end))
        i = _skip(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
            continue
        if i < len(text) and text[i] == closing:
            break
        raise _invalid()
    if opening == "{":
        return found
    index = key if key >= 0 else len(elements) + key
    return elements[index] if 0 <= index < len(elements) else None


def _document(document: Any) -> tuple[str, int]:
    """A document's text and where its value starts."""
    if isinstance(document, bytes):
        document = document.decode("utf-8", "replace")
    if not isinstance(document, str):
        document = json.dumps(document)
    start = _skip(document, 0)
    if _skip(document, _value_end(document, start)) != len(document):
        raise _invalid()
    return document, start


def _text_of(text: str, span: tuple[int, int]) -> str | None:
    """``->>``'s text of a member: a string unescaped, null as NULL, the rest as written."""
    value = text[span[0]:span[1]]
    if value.startswith('"'):
        return str(json.loads(value))
    return None if value == "null" else value


def get(document: Any, key: Any) -> str | None:
    """``document -> key``: the member as JSON text, as the document writes it."""
    if document is None or key is None:
        return None
    text, start = _document(document)
    span = _child(text, start, key)
    return None if span is None else text[span[0]:span[1]]


def get_text(document: Any, key: Any) -> str | None:
    """``document ->> key``: the member as text."""
    if document is None or key is None:
        return None
    text, start = _document(document)
    span = _child(text, start, key)
    return None if span is None else _text_of(text, span)


def _text_array(value: Any) -> list[Any]:
    """A text[] operand: Borealis' JSON storage or PostgreSQL's '{a,b}' text."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        stored = pgtypes.decode_text(pgtypes.BY_NAME["_text"], value.encode())
        value = stored
    items = parse(value)
    if not isinstance(items, list):
        raise SqlFunctionError("a path must be a text array", "22P02")
    return [None if item is None else str(item) for item in items]


def _walk(document: Any, path: Any) -> tuple[str, tuple[int, int] | None]:
    """The document's text and the span of the value at ``path`` (None: there is none)."""
    text, start = _document(document)
    span: tuple[int, int] | None = (start, _value_end(text, start))
    for step in _text_array(path):
        if step is None or span is None:
            return text, None
        key: Any = step
        if text[span[0]] == "[":
            try:
                key = int(step)
            except ValueError:
                return text, None
        span = _child(text, span[0], key)
    return text, span


def get_path(document: Any, path: Any) -> str | None:
    """``document #> path``."""
    if document is None or path is None:
        return None
    text, span = _walk(document, path)
    return None if span is None else text[span[0]:span[1]]


def get_path_text(document: Any, path: Any) -> str | None:
    """``document #>> path``."""
    if document is None or path is None:
        return None
    text, span = _walk(document, path)
    return None if span is None else _text_of(text, span)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, _Number) and isinstance(b, _Number):
        return Decimal(a) == Decimal(b)
    if isinstance(a, _Number) or isinstance(b, _Number):
        return False
    return type(a) is type(b) and a == b


def _contains(container: Any, contained: Any, top: bool = True) -> bool:
    """jsonb containment (JsonbDeepContains)."""
    if isinstance(container, dict):
        if not isinstance(contained, dict):
            return False
        return all(key in container and _contains(container[key], value, False)
                   for key, value in contained.items())
    if isinstance(container, list):
        if isinstance(contained, list):
            return all(any(_contains(item, wanted, False) if isinstance(wanted, dict | list)
                           else _equal(item, wanted) for item in container)
                       for wanted in contained)
        # a top-level array contains a primitive it holds
        return top and not isinstance(contained, dict) and any(
            _equal(item, contained) for item in container)
    if isinstance(contained, dict | list):
        return False
    return _equal(container, contained)


def contains(container: Any, contained: Any) -> int | None:
    """``container @> contained`` (``contained <@ container``)."""
    if container is None or contained is None:
        return None
    return int(_contains(parse(container), parse(contained)))


def _has_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value
    if isinstance(value, list):
        return any(isinstance(item, str) and not isinstance(item, _Number) and item == key
                   for item in value)
    return isinstance(value, str) and not isinstance(value, _Number) and value == key


def exists(document: Any, key: Any) -> int | None:
    """``document ? key``: a top-level key, or a string element of an array."""
    if document is None or key is None:
        return None
    return int(_has_key(parse(document), str(key)))


def exists_any(document: Any, keys: Any) -> int | None:
    """``document ?| keys``."""
    if document is None or keys is None:
        return None
    value = parse(document)
    return int(any(k is not None and _has_key(value, k) for k in _text_array(keys)))


def exists_all(document: Any, keys: Any) -> int | None:
    """``document ?& keys``."""
    if document is None or keys is None:
        return None
    value = parse(document)
    return int(all(k is None or _has_key(value, k) for k in _text_array(keys)))


def _sql_to_json(value: Any, kind: str = "-") -> Any:
    """An SQL value as a JSON value; ``kind`` (from the translator): 'b' a boolean (stored
    as 0/1), 'j' JSON text, 'n' numeric text."""
    if value is None:
        return None
    if kind == "b":
        return bool(value)
    if kind == "j":
        return parse(value)
    if kind == "n" and isinstance(value, str):
        return _Number(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _Number(json.dumps(value))
    return value


def build_object(kinds: str, *args: Any, jsonb: bool = True) -> str:
    """json[b]_build_object(k1, v1, ...); ``kinds`` has one letter per argument
    (``_sql_to_json``)."""
    if len(args) % 2:
        raise SqlFunctionError("argument list must have even number of elements", "22023")
    pairs = []
    for i in range(0, len(args), 2):
        if args[i] is None:
            raise SqlFunctionError("argument key must not be null", "22004")
        kind = kinds[i + 1] if i + 1 < len(kinds) else "-"
        pairs.append((str(args[i]), _sql_to_json(args[i + 1], kind)))
    if not jsonb:  # json_build_object's own spacing: {"a" : 1, "b" : 2}
        return "{" + ", ".join(f"{dumps(k)} : {dumps(v)}" for k, v in pairs) + "}"
    text = dumps(dict(pairs))
    normalized = pgtypes.decode_text(pgtypes.BY_NAME["jsonb"], text.encode())
    return str(normalized)


def build_array(kinds: str, *args: Any, jsonb: bool = True) -> str:
    """json[b]_build_array(...)."""
    text = "[" + ", ".join(dumps(_sql_to_json(a, kinds[i] if i < len(kinds) else "-"))
                           for i, a in enumerate(args)) + "]"
    if not jsonb:
        return text
    return str(pgtypes.decode_text(pgtypes.BY_NAME["jsonb"], text.encode()))
