"""``borealis status [--json]``: the cluster's instances, storage nodes, protection groups
and endpoints, as the control plane sees them; from the coordination store (everything
down) when no control plane runs.

``--json`` keys (stable): ``state``, ``endpoints`` (name -> "host:port", at least
``writer`` and ``reader``), ``instances[]`` (``id``, ``role``, ``az``, ``state``, ``pid``,
``lag_ms``, ``pg_address``...), ``storage_nodes[]`` (``id``, ``az``, ``state``, ``pid``,
``segments``...), ``protection_groups[]`` (``pg``, ``healthy`` of 6, ``segments[]``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from borealis.cli.cluster_api import call, control_ready, data_dir_argument


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="show the cluster")
    data_dir_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=run)


def offline_view(data_dir: Path) -> dict[str, Any]:
    """What the store says about a cluster whose control plane is not running."""
    from borealis.control.clusterspec import ClusterSpec
    from borealis.control.store import SqliteStore

    path = data_dir.resolve() / "control" / "store.db"
    view: dict[str, Any] = {"state": "down", "data_dir": str(data_dir.resolve()),
                            "endpoints": {}, "instances": [], "storage_nodes": [],
                            "protection_groups": []}
    if not path.exists():
        view["state"] = "absent"
        return view
    store = SqliteStore(path)
    try:
        saved = store.get("spec")
        spec = ClusterSpec.from_json(json.loads(saved.value)) if saved else ClusterSpec()
        endpoints = [json.loads(entry.value) for entry in store.range("endpoints/")]
        for e in sorted(endpoints, key=lambda e: (e["name"] != "writer",
                                                  e["name"] != "reader", e["name"])):
            view["endpoints"][e["name"]] = f"{spec.host}:{e['port']}"
        for entry in store.range("instances/"):
            r = json.loads(entry.value)
            view["instances"].append({"id": r["id"], "role": r["role"], "az": r["az"],
                                      "state": "down", "pid": None, "lag_ms": None,
                                      "promotion_tier": r["promotion_tier"]})
        for entry in store.range("nodes/"):
            r = json.loads(entry.value)
            view["storage_nodes"].append({"id": r["id"], "az": r["az"], "state": "down",
                                          "pid": None})
    finally:
        store.close()
    return view


def _routes_to(view: dict[str, Any], name: str) -> str:
    """Where an endpoint sends new connections now, as the router decides it."""
    available = [i for i in view["instances"] if i["state"] == "available"]
    writers = [i["id"] for i in available if i["role"] == "writer"]
    readers = [i["id"] for i in available if i["role"] == "reader"]
    if name == "writer":
        return ", ".join(writers) or "(held: no writer)"
    if name == "reader":
        return ", ".join(readers) or ", ".join(writers) + " (no reader: the writer)"
    detail = next((e for e in view.get("endpoint_list", []) if e["name"] == name), None)
    if detail is None:
        return "?"
    pool = readers if detail["type"] == "READER" else readers + writers
    members = [i for i in pool if (not detail["members"] or i in detail["members"])
               and i not in detail["excluded"]]
    return ", ".join(sorted(members)) or "(no member available)"


def run(args: argparse.Namespace) -> int:
    if control_ready(args.data_dir) is not None:
        view = call(args.data_dir, "GET", "/v1/cluster")
    else:
        view = offline_view(args.data_dir)
    if args.json:
        print(json.dumps(view, indent=1))
        return 0
    if view["state"] == "absent":
        print(f"No cluster in {args.data_dir} (borealis up --data-dir {args.data_dir}).")
        return 0
    print(f"Cluster in {view['data_dir']}: {view['state']}")
    if view["state"] == "down":
        print(f"  (not running: borealis up --data-dir {args.data_dir})")
    print()
    print("Endpoints")
    for name, address in view["endpoints"].items():
        routes = "" if view["state"] == "down" else f"  -> {_routes_to(view, name)}"
        print(f"  {name:<14} {address}{routes}")
    print()
    print("Instances")
    print(f"  {'id':<8} {'role':<7} {'az':<5} {'state':<10} {'pid':>7}  {'lag ms':>8}  "
          f"{'tier':>4}  postgres")
    for i in view["instances"]:
        lag = "" if i.get("lag_ms") is None else f"{i['lag_ms']:.1f}"
        print(f"  {i['id']:<8} {i['role']:<7} {i['az']:<5} {i['state']:<10} "
              f"{i['pid'] or '-':>7}  {lag:>8}  {i.get('promotion_tier', ''):>4}  "
              f"{i.get('pg_address', '')}")
    print()
    print("Storage nodes")
    for az in sorted({n["az"] for n in view["storage_nodes"]}):
        row = [f"{n['id']} {n['state']}" + (f" ({n['segments']} seg)" if "segments" in n
                                            else "")
               for n in view["storage_nodes"] if n["az"] == az]
        print(f"  {az}: " + ", ".join(row))
    pgs = view.get("protection_groups") or []
    if pgs:
        print()
        print("Protection groups (segments keeping up with the writer, of 6)")
        for pg in pgs:
            healthy = pg.get("healthy")
            mark = "?" if healthy is None else f"{healthy}/6"
            lagging = [s["node"] for s in pg.get("segments", []) if s.get("healthy") is False]
            note = f"  behind or down: {', '.join(lagging)}" if lagging else ""
            print(f"  PG {pg['pg']:<4} {mark}{note}")
    return 0
