"""PostgreSQL's JSON operators for translated SQL: ``->``, ``->>``, ``#>``, ``#>>``, ``@>``,
``<@``, ``?``, ``?|``, ``?&`` and the ``json[b]_build_*`` functions, on JSON text.

SQLite has ``->`` and ``->>`` too, with other meanings: its ``->>`` returns SQL integers and
reals (PostgreSQL's returns text, so ``data->>'n' = '1'`` would be false), its right operand
is a JSON path when it starts with ``$``, and it has no containment or key-existence
operators. These functions parse the document with numbers kept as written and answer as
PostgreSQL does; a JSON value comes back in jsonb's output form (``{"a": 1, "b": [1, 2]}``),
which is how Borealis stores jsonb. PostgreSQL arrays are stored as JSON too (``types``), so
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


def _scalar_text(value: Any) -> str | None:
    """``->>``'s text of a JSON value: strings unquoted, null as NULL."""
    if value is None:
        return None
    if isinstance(value, str) and not isinstance(value, _Number):
        return value
    return dumps(value)


def _member(value: Any, key: Any) -> Any:
    """The member or element ``key`` names; ``_MISSING`` when there is none."""
    if isinstance(key, bool):
        return _MISSING
    if isinstance(value, dict):
        return value.get(str(key), _MISSING) if isinstance(key, str) else _MISSING
    if isinstance(value, list) and isinstance(key, int):
        index = key if key >= 0 else len(value) + key
        return value[index] if 0 <= index < len(value) else _MISSING
    return _MISSING


_MISSING = object()


def get(document: Any, key: Any) -> str | None:
    """``document -> key``: the member as JSON text."""
    if document is None or key is None:
        return None
    found = _member(parse(document), key)
    return None if found is _MISSING else dumps(found)


def get_text(document: Any, key: Any) -> str | None:
    """``document ->> key``: the member as text."""
    if document is None or key is None:
        return None
    found = _member(parse(document), key)
    return None if found is _MISSING else _scalar_text(found)


def _text_array(value: Any) -> list[Any]:
    """A text[] operand: Borealis' JSON storage or PostgreSQL's '{a,b}' text."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        stored = pgtypes.decode_text(pgtypes.BY_NAME["_text"], value.encode())
        value = stored
    items = parse(value)
    if not isinstance(items, list):
        raise SqlFunctionError("a path must be a text array", "22P02")
    return [None if item is None else str(item) for item in items]


def _walk(document: Any, path: Any) -> Any:
    value = parse(document)
    for step in _text_array(path):
        if step is None:
            return _MISSING
        if isinstance(value, list):
            try:
                key: Any = int(step)
            except ValueError:
                return _MISSING
        else:
            key = step
        value = _member(value, key)
        if value is _MISSING:
            return _MISSING
    return value


def get_path(document: Any, path: Any) -> str | None:
    """``document #> path``."""
    if document is None or path is None:
        return None
    found = _walk(document, path)
    return None if found is _MISSING else dumps(found)


def get_path_text(document: Any, path: Any) -> str | None:
    """``document #>> path``."""
    if document is None or path is None:
        return None
    found = _walk(document, path)
    return None if found is _MISSING else _scalar_text(found)


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
