"""The control plane's HTTP API. The CLI is a thin client of it; so is the router.

All bodies are JSON. Errors answer ``{"error": MESSAGE}`` with 400 (bad request), 404
(no such route or object), 409 (conflicts with the cluster's state) or 503 (not ready).

``GET  /v1/cluster``                 everything ``borealis status`` shows
``GET  /v1/topology?after=R&wait=S`` instances and endpoints for the router; long-polls
                                     until the revision exceeds R (at most S seconds)
``GET  /v1/events?after=SEQ``        failovers, restarts, repairs, growth... oldest first
``POST /v1/failover``                ``{"target": ID or null}``: switchover to ID or the
                                     best reader (promotion tier, then lag)
``POST /v1/instances``               ``{"id"?, "az"?, "promotion_tier"?}``: add a reader
``DELETE /v1/instances/ID``          remove a reader
``POST /v1/endpoints``               ``{"name", "kind": "reader"|"any", "members"?: [IDs],
                                     "excluded"?: [IDs], "port"?}``: a custom endpoint
``DELETE /v1/endpoints/NAME``        delete a custom endpoint
``POST /v1/storage-nodes``           ``{"az"}``: add a storage node (a spare) to an AZ
``POST /v1/start``                   start the storage nodes that are not running
``POST /v1/shutdown``                stop the cluster (data kept); the control plane exits
``GET  /metrics``                    the cluster's view, Prometheus text
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from borealis.control.plane import ConflictingRequest, ControlPlane
from borealis.errors import BadRequestError, ConfigError
from borealis.http import HttpError, Request, Response
from borealis.metrics import Metrics

TOPOLOGY_WAIT_S_MAX = 30.0


def cluster_metrics(plane: ControlPlane) -> Metrics:
    m = Metrics()

    def per_instance(key: str) -> Callable[[], list[tuple[dict[str, str], float]]]:
        def collect() -> list[tuple[dict[str, str], float]]:
            out = []
            for i in plane.instance_records:
                value = plane.instance_status.get(i, {}).get(key)
                if isinstance(value, int | float):
                    out.append(({"instance": i}, value))
            return out
        return collect

    m.gauge("borealis_cluster_instance_up", "1 when the instance answers its health check",
            lambda: [({"instance": x.instance_id, "role": x.role.value}, int(x.healthy))
                     for x in plane.orchestrator.instances])
    m.gauge("borealis_cluster_replica_lag_ms", "Replica lag behind the writer (ms)",
            per_instance("lag_ms"))
    m.gauge("borealis_cluster_vdl", "Volume durable LSN seen by each instance",
            per_instance("vdl"))
    m.counter("borealis_cluster_commits_total", "Commits acknowledged, per instance",
              per_instance("commits"))
    m.gauge("borealis_cluster_storage_node_up", "1 when the storage node answers",
            lambda: [({"node": n, "az": plane.node_records[n].az},
                      int(n in plane.node_status)) for n in plane.node_records])
    m.gauge("borealis_cluster_pg_healthy_segments",
            "Segments of each protection group keeping up with the writer (of 6)",
            lambda: [({"pg": str(pg["pg"])}, pg["healthy"])
                     for pg in plane.protection_groups() if pg.get("healthy") is not None])
    m.gauge("borealis_cluster_protection_groups", "Protection groups in the volume",
            lambda: len(plane.protection_groups()))
    m.counter("borealis_cluster_failovers_total", "Failovers since the control plane started",
              lambda: len(plane.orchestrator.events))
    m.gauge("borealis_cluster_topology_revision", "Revision of the endpoint topology",
            lambda: plane.revision)
    return m


def handler(plane: ControlPlane, shutdown: asyncio.Event) -> Callable[[Request], Any]:
    metrics = cluster_metrics(plane)

    async def handle(request: Request) -> Response:
        method, parts = request.method, [p for p in request.path.split("/") if p]
        try:
            return await route(method, parts, request)
        except ConflictingRequest as exc:
            raise HttpError(409, str(exc)) from None
        except (BadRequestError, ConfigError, ValueError, TypeError) as exc:
            raise HttpError(400, str(exc)) from None

    async def route(method: str, parts: list[str], request: Request) -> Response:
        if parts == ["metrics"] and method == "GET":
            return Response.text(metrics.render())
        if len(parts) < 2 or parts[0] != "v1":
            raise HttpError(404, f"no route {request.path}")
        what = parts[1]
        body = request.json() if method in ("POST", "PUT") else {}
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        if what == "cluster" and method == "GET":
            return Response.json(plane.cluster_view())
        if what == "topology" and method == "GET":
            after = int(request.query.get("after", "-1"))
            wait = min(float(request.query.get("wait", "0")), TOPOLOGY_WAIT_S_MAX)
            return Response.json(await plane.wait_topology(after, wait))
        if what == "events" and method == "GET":
            return Response.json(plane.events(int(request.query.get("after", "0"))))
        if what == "shutdown" and method == "POST":  # in any state: a failed boot too
            result = await plane.shutdown()
            shutdown.set()
            return Response.json(result)
        if plane.state not in ("healthy", "degraded"):
            raise HttpError(503, f"the cluster is {plane.state}")
        if what == "failover" and method == "POST":
            target = body.get("target")
            return Response.json(await plane.failover(str(target) if target else None))
        if what == "instances" and method == "POST" and len(parts) == 2:
            return Response.json(await plane.add_instance(body), 201)
        if what == "instances" and method == "DELETE" and len(parts) == 3:
            return Response.json(await plane.remove_instance(parts[2]))
        if what == "endpoints" and method == "POST" and len(parts) == 2:
            return Response.json(await plane.create_endpoint(body), 201)
        if what == "endpoints" and method == "DELETE" and len(parts) == 3:
            return Response.json(await plane.delete_endpoint(parts[2]))
        if what == "storage-nodes" and method == "POST":
            return Response.json(await plane.add_storage_node(str(body.get("az") or "")), 201)
        if what == "start" and method == "POST":
            return Response.json(await plane.start_stopped())
        raise HttpError(404, f"no route {method} {request.path}")

    return handle
