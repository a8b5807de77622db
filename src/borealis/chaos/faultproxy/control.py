"""The HTTP/JSON control server: another process (the chaos nemesis) adds links, sets faults
and heals through it; refusals are ``FaultProxyError``s answered with their HTTP status.
"""

from __future__ import annotations

import json
from typing import Any

from borealis.chaos.faultproxy.faults import (
    BOTH,
    BadFaultsError,
    FaultProxyError,
    MethodNotAllowedError,
    NotFoundError,
)
from borealis.chaos.faultproxy.proxy import HOST, FaultProxy, parse_address
from borealis.http import HttpServer, Request, Response


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadFaultsError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadFaultsError("the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any) -> Any:
    value = body.get(name, default)
    if type(value) not in kinds:
        raise BadFaultsError(f"{name} must be {' or '.join(k.__name__ for k in kinds)}, "
                             f"not {value!r}")
    return value


class ControlServer:
    """HTTP/JSON control of a ``FaultProxy`` for another process (the chaos nemesis).

    ``GET /health``; ``GET /links``, ``GET /links/NAME``; ``POST /links`` with ``{"name",
    "target": "host:port", "listen_port": 0, "frames": false}``; ``DELETE /links/NAME``;
    ``POST /links/NAME/faults`` with ``{"direction": "to_target"|"from_target"|"both",
    "faults": {...}, "replace": false}``; ``POST /links/NAME/heal``; ``POST /heal``. A refused
    request answers ``{"error": message, "code": code}`` with a 4xx status.
    """

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.http = HttpServer(self.handle, name="fault proxy control")
        self.address: tuple[str, int] | None = None

    async def start(self, host: str = HOST, port: int = 0) -> tuple[str, int]:
        self.address = await self.http.start(host, port)
        return self.address

    async def close(self) -> None:
        await self.http.close()

    async def handle(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except FaultProxyError as exc:
            return Response.json({"error": str(exc), "code": exc.code}, exc.status)

    async def _route(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if parts == ["health"]:
            _allow(method, "GET")
            return Response.json({"ok": True})
        if parts == ["heal"]:
            _allow(method, "POST")
            self.proxy.heal_all()
            return Response.json(self.proxy.status())
        if parts == ["links"]:
            _allow(method, "GET", "POST")
            if method == "GET":
                return Response.json(self.proxy.status())
            return await self._add_link(_json_body(request))
        if len(parts) >= 2 and parts[0] == "links":
            name = parts[1]
            if len(parts) == 2:
                _allow(method, "GET", "DELETE")
                if method == "DELETE":
                    await self.proxy.remove_link(name)
                    return Response.json({"removed": name})
                return Response.json(self.proxy.link(name).status())
            if parts[2:] == ["faults"]:
                _allow(method, "POST")
                body = _json_body(request)
                unknown = sorted(set(body) - {"direction", "faults", "replace"})
                if unknown:
                    raise BadFaultsError(f"unknown fields {unknown}")
                self.proxy.set_faults(
                    name, _field(body, "direction", (str,), BOTH),
                    replace=_field(body, "replace", (bool,), False),
                    **_field(body, "faults", (dict,), {}))
                return Response.json(self.proxy.link(name).status())
            if parts[2:] == ["heal"]:
                _allow(method, "POST")
                self.proxy.heal(name)
                return Response.json(self.proxy.link(name).status())
        raise NotFoundError(f"no such resource: {method} {request.path}")

    async def _add_link(self, body: dict[str, Any]) -> Response:
        unknown = sorted(set(body) - {"name", "target", "listen_port", "frames"})
        if unknown:
            raise BadFaultsError(f"unknown fields {unknown}")
        name = _field(body, "name", (str,), None)
        host, port = parse_address(_field(body, "target", (str,), None))
        await self.proxy.add_link(name, host, port,
                                  listen_port=_field(body, "listen_port", (int,), 0),
                                  frames=_field(body, "frames", (bool,), False))
        return Response.json(self.proxy.link(name).status(), 201)


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise MethodNotAllowedError(f"{method} is not allowed here; use {', '.join(allowed)}")
