"""RPC messages: what travels inside a frame, and how a typed error crosses the wire.

Every message is a msgpack array whose first element is its kind:

- request  ``[0, request_id, method: str, body]``
- response ``[1, request_id, body]``
- error    ``[2, request_id, code: str, message: str, details: dict]``

Arrays rather than maps (or dataclasses) because these are the hottest objects of the storage
path: a positional array is the smallest encoding and the cheapest to check. The checks live
here, pure, so that the asyncio adapters (``rpc``) and the simulator share them; a message that
fails them is a ``ProtocolError`` and costs the sender its connection.

An error reply carries the ``code`` of a ``BorealisError`` subclass (see ``ERROR_TYPES``), its
message, and its *details*: the exception's public instance attributes (``current_epoch`` for
``StaleEpochError``). The receiver rebuilds the same type, passing details its constructor
accepts as keywords and setting the others as attributes, so a caller can write
``except StaleEpochError as exc: exc.current_epoch`` whatever node raised it.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Final

import msgpack

from borealis.errors import ERROR_TYPES, BorealisError, ProtocolError

logger = logging.getLogger(__name__)

KIND_REQUEST: Final = 0
KIND_RESPONSE: Final = 1
KIND_ERROR: Final = 2

CODE_INTERNAL: Final = BorealisError.code
"""The code of a handler failure that is not a ``BorealisError``: a bug on the serving side."""

_KIND_NAMES: Final = {KIND_REQUEST: "request", KIND_RESPONSE: "response", KIND_ERROR: "error"}


def request(request_id: int, method: str, body: Any) -> list[Any]:
    return [KIND_REQUEST, request_id, method, body]


def response(request_id: int, body: Any) -> list[Any]:
    return [KIND_RESPONSE, request_id, body]


def error(request_id: int, exc: BorealisError) -> list[Any]:
    return [KIND_ERROR, request_id, exc.code, str(exc), error_details(exc)]


def internal_error(request_id: int, message: str) -> list[Any]:
    return [KIND_ERROR, request_id, CODE_INTERNAL, message, {}]


def parse_request(message: Any) -> tuple[int, str, Any]:
    """``(request_id, method, body)`` of a request; ``ProtocolError`` for anything else."""
    if type(message) is list and len(message) == 4:
        kind, request_id, method, body = message
        if (
            type(kind) is int
            and kind == KIND_REQUEST
            and type(request_id) is int
            and type(method) is str
        ):
            return request_id, method, body
    raise ProtocolError(_describe_unexpected(message, KIND_REQUEST))


def parse_reply(message: Any) -> tuple[int, Any, BorealisError | None]:
    """``(request_id, body, None)`` of a response or ``(request_id, None, error)`` of an error.

    ``ProtocolError`` for anything else.
    """
    if type(message) is list and message and type(message[0]) is int:
        kind = message[0]
        if kind == KIND_RESPONSE and len(message) == 3 and type(message[1]) is int:
            return message[1], message[2], None
        if kind == KIND_ERROR and len(message) == 5 and type(message[1]) is int:
            _, request_id, code, text, details = message
            if type(code) is str and type(text) is str and type(details) is dict:
                return request_id, None, error_from_reply(code, text, details)
    raise ProtocolError(_describe_unexpected(message, KIND_RESPONSE, KIND_ERROR))


def _describe_unexpected(message: Any, *expected: int) -> str:
    """Why ``message`` is not one of the ``expected`` kinds: the reason a connection closes."""
    wanted = " or ".join(_KIND_NAMES[kind] for kind in expected)
    if type(message) is not list:
        return f"expected a {wanted} array, got a {type(message).__name__}"
    if not message:
        return f"expected a {wanted} array, got an empty array"
    kind = message[0]
    if type(kind) is not int or kind not in _KIND_NAMES:
        return f"unknown message kind {kind!r}"
    if kind not in expected:
        return f"unexpected {_KIND_NAMES[kind]} message, expected a {wanted}"
    fields = ", ".join(type(field).__name__ for field in message)
    return f"malformed {_KIND_NAMES[kind]}: [{fields}]"


def error_details(exc: BorealisError) -> dict[str, Any]:
    """The public instance attributes of ``exc`` that msgpack can encode."""
    details = {
        name: value
        for name, value in vars(exc).items()
        if not name.startswith("_") and name != "code"
    }
    if details:
        try:
            msgpack.packb(details, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            logger.warning(
                "error details not encodable, sent without them error=%s names=%s",
                type(exc).__name__, sorted(details),
            )
            return {}
    return details


def error_from_reply(code: str, message: str, details: dict[Any, Any]) -> BorealisError:
    """The ``BorealisError`` an error reply stands for; an unknown code gives a ``BorealisError``
    whose ``code`` attribute is the code received."""
    cls = ERROR_TYPES.get(code, BorealisError)
    keywords = _constructor_keywords(cls)
    accepted = {name: value for name, value in details.items() if name in keywords}
    try:
        exc = cls(message, **accepted)
    except (TypeError, ValueError):
        # A detail of a type the constructor refuses: keep the type, lose the details.
        exc = cls(message)
    for name, value in details.items():
        if name in keywords or type(name) is not str:
            continue
        # Never let a peer shadow the class's own attributes (``retryable``, ``args``, ...).
        if name.isidentifier() and not name.startswith("_") and not hasattr(cls, name):
            setattr(exc, name, value)
    if cls.code != code:
        exc.code = code
    return exc


_constructor_keywords_cache: dict[type[BorealisError], frozenset[str]] = {}


def _constructor_keywords(cls: type[BorealisError]) -> frozenset[str]:
    """Keyword-only parameters of ``cls``'s constructor (``current_epoch`` for StaleEpoch)."""
    keywords = _constructor_keywords_cache.get(cls)
    if keywords is None:
        try:
            parameters = list(inspect.signature(cls).parameters.values())
        except ValueError:  # the constructor is BaseException's own: no keywords
            parameters = []
        keywords = frozenset(
            parameter.name for parameter in parameters if parameter.kind is parameter.KEYWORD_ONLY
        )
        # Bounded: only the classes in ERROR_TYPES come here.
        _constructor_keywords_cache[cls] = keywords
    return keywords
