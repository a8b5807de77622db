"""The control plane's topology document, as the router reads it: which instances serve
PostgreSQL where, in which role, and which endpoints listen where.

``GET /v1/topology?after=REV&wait=SECONDS`` answers, once the control plane's revision is
past ``REV`` (or after ``SECONDS`` with the current state)::

    {"revision": 12,
     "instances": [{"id": "i1", "role": "writer", "healthy": true,
                    "pg_address": "127.0.0.1:5433", "az": "az1"}],
     "endpoints": [{"name": "writer", "kind": "writer", "host": "127.0.0.1", "port": 5432,
                    "members": [], "excluded": []}]}

``parse_topology`` is pure: it checks the whole document and builds a ``TopologySnapshot``
or raises ``ProtocolError`` naming what is wrong, so a bad answer never half-applies.
``kind`` is an ``EndpointKind`` value; ``members`` and ``excluded`` are a custom endpoint's
static and exclusion lists, and the one instance of an ``instance`` endpoint. An instance
without a ``pg_address`` does not serve PostgreSQL and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from borealis.errors import ProtocolError
from borealis.router.proxy import Endpoint, EndpointKind, EndpointSpec, Member

ROLES = frozenset({"writer", "reader"})
INSTANCES_MAX = 1_000
ENDPOINTS_MAX = 1_000


@dataclass(frozen=True, slots=True)
class TopologySnapshot:
    revision: int
    members: tuple[Member, ...]
    endpoints: tuple[EndpointSpec, ...]

    def __post_init__(self) -> None:
        assert self.revision >= 0
        ids = [m.instance_id for m in self.members]
        assert len(ids) == len(set(ids)), f"instance ids repeat: {ids}"
        names = [e.endpoint.name for e in self.endpoints]
        assert len(names) == len(set(names)), f"endpoint names repeat: {names}"


def parse_topology(doc: Any) -> TopologySnapshot:
    """The snapshot ``doc`` describes; ProtocolError if it is not a valid document."""
    if not isinstance(doc, dict):
        raise ProtocolError(f"topology: expected an object, got {type(doc).__name__}")
    revision = doc.get("revision")
    if type(revision) is not int or revision < 0:
        raise ProtocolError(f"topology: revision must be an integer >= 0, got {revision!r}")
    instances = _list(doc, "instances", INSTANCES_MAX)
    endpoints = _list(doc, "endpoints", ENDPOINTS_MAX)
    members = [m for m in (_member(i, item) for i, item in enumerate(instances))
               if m is not None]
    ids = [m.instance_id for m in members]
    if len(ids) != len(set(ids)):
        raise ProtocolError(f"topology: instance ids repeat: {sorted(ids)}")
    specs = [_endpoint(i, item) for i, item in enumerate(endpoints)]
    names = [s.endpoint.name for s in specs]
    if len(names) != len(set(names)):
        raise ProtocolError(f"topology: endpoint names repeat: {sorted(names)}")
    return TopologySnapshot(revision, tuple(members), tuple(specs))


def parse_address(text: Any, what: str) -> tuple[str, int]:
    if not isinstance(text, str):
        raise ProtocolError(f"topology: {what} must be \"host:port\", got {text!r}")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProtocolError(f"topology: {what} must be \"host:port\", got {text!r}")
    return host.strip("[]"), int(port)


def _list(doc: dict[str, Any], key: str, count_max: int) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ProtocolError(f"topology: {key} must be a list")
    if len(value) > count_max:
        raise ProtocolError(f"topology: more than {count_max} {key}")
    return value


def _member(index: int, item: Any) -> Member | None:
    where = f"instances[{index}]"
    if not isinstance(item, dict):
        raise ProtocolError(f"topology: {where} must be an object")
    instance_id = item.get("id")
    if not isinstance(instance_id, str) or not instance_id:
        raise ProtocolError(f"topology: {where}.id must be a non-empty string")
    role = item.get("role")
    if role not in ROLES:
        raise ProtocolError(f"topology: {where}.role must be writer or reader, got {role!r}")
    healthy = item.get("healthy", True)
    if not isinstance(healthy, bool):
        raise ProtocolError(f"topology: {where}.healthy must be true or false")
    pg_address = item.get("pg_address")
    if pg_address is None:
        return None
    return Member(instance_id, parse_address(pg_address, f"{where}.pg_address"), role,
                  healthy)


def _endpoint(index: int, item: Any) -> EndpointSpec:
    where = f"endpoints[{index}]"
    if not isinstance(item, dict):
        raise ProtocolError(f"topology: {where} must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"topology: {where}.name must be a non-empty string")
    try:
        kind = EndpointKind(item.get("kind"))
    except ValueError:
        kinds = ", ".join(k.value for k in EndpointKind)
        raise ProtocolError(f"topology: {where}.kind must be one of {kinds}, got "
                            f"{item.get('kind')!r}") from None
    host = item.get("host")
    port = item.get("port")
    if not isinstance(host, str) or not host:
        raise ProtocolError(f"topology: {where}.host must be a non-empty string")
    if type(port) is not int or not 0 <= port < 65536:
        raise ProtocolError(f"topology: {where}.port must be an integer in [0, 65535]")
    members = _names(item, "members", where)
    excluded = _names(item, "excluded", where)
    if kind is EndpointKind.INSTANCE and len(members) != 1:
        raise ProtocolError(f"topology: {where} (kind instance) must name one member")
    return EndpointSpec(Endpoint(name, kind, members, excluded), host, port)


def _names(item: dict[str, Any], key: str, where: str) -> frozenset[str]:
    value = item.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"topology: {where}.{key} must be a list of instance ids")
    if len(value) > INSTANCES_MAX:
        raise ProtocolError(f"topology: {where}.{key}: more than {INSTANCES_MAX} ids")
    return frozenset(value)
