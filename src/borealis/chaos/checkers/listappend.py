"""Elle's list-append checker: transactional anomalies from a dependency graph.

The workload (Kingsbury & Alvaro, "Elle: Inferring Isolation Anomalies from Experimental
Observations", VLDB 2020) runs transactions of micro-operations over keys whose values are
lists: ``["append", key, v]`` appends ``v`` (unique per key over the whole run) and
``["r", key, list]`` reads the whole list (``null`` in the invocation). Because every
value is unique and a list remembers the order of its appends, a read names the exact
version it saw and every version before it, so the dependencies between transactions can
be *inferred* rather than guessed. The history is ``f="txn"`` operations of
``..history``; ``invocation`` blanks the reads of a transaction for its invoke event.

What is checked, in order:

1. Each committed transaction's reads against its own appends (**internal**): a read of a
   key shows the transaction's earlier appends to it, on top of its earlier read if any.
2. Each read alone: a value twice (**duplicate-append**); a value no transaction appended
   (**unexpected-value**); a value from a failed transaction (**G1a**, aborted read); a
   last value that its writer followed with another append to the key (**G1b**,
   intermediate read).
3. The version order of each key is its longest read; every other read must be a prefix of
   it, and each transaction's appends must show in the order it made them, and only as a
   prefix of them (else **incompatible-order**).
4. The dependency graph over committed transactions: ok ones, and info ones whose appends
   some read saw (info reads are unknown, so they give no edges). Edges (Adya 1999): ww
   (a version and the next one of a key), wr (a read and the writer of its last value), rw
   (a read and the writer of the version after the one it saw: an anti-dependency). With
   ``realtime=True`` also rt: T1 completed before T2 was invoked (strict serializability;
   kept transitively reduced so that the edge count stays linear).
5. Cycles, searched inside each strongly connected component (networkx), shortest first
   from each edge of the kind that names the class, and named by their edges: **G0** (ww
   only), **G1c** (ww and wr, at least one wr), **G-single** (exactly one rw),
   **G2-item** (two or more rw). A cycle that needs an rt edge gets the suffix
   ``-realtime`` (reported only when no dependency-only cycle of the same component
   explains it). Every component of two or more transactions yields at least one report.
6. **lost-append**: an ok append that no read saw, though some read of the key began after
   the append's transaction completed.

Each report lists the transactions (``Pair.to_json``) and, for cycles, each edge with its
kind, key, value and a sentence saying why it is there.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from borealis.chaos.checkers import Verdict, hashable, json_value
from borealis.chaos.history import History, HistoryError, OpType, Pair

FUNCTION = "txn"

CYCLE_STARTS_MAX = 200
"""Start edges tried per anomaly class per component; past that the shortest found is kept."""

KINDS = ("ww", "wr", "rw", "rt")
"""Edge kinds in order of preference when an edge has several: a cycle is named by the
strongest dependency each of its edges carries, so rt counts only where nothing else does."""

Key = Hashable
Edge = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class MicroOp:
    f: str              # "append" or "r"
    key: Key
    value: Any          # the appended value, or the list read (a tuple; None if unknown)


def parse_txn(value: Any, *, index: int = -1) -> tuple[MicroOp, ...]:
    """Micro-ops from a txn value ``[["append", k, v] | ["r", k, list | None], ...]``."""
    if not isinstance(value, list | tuple):
        raise HistoryError(f"op {index}: a txn value is a list of micro-ops, not {value!r}")
    parsed: list[MicroOp] = []
    for micro in value:
        if not isinstance(micro, list | tuple) or len(micro) != 3:
            raise HistoryError(f"op {index}: a micro-op is [f, key, value], not {micro!r}")
        f, key, argument = micro
        if f == "append":
            parsed.append(MicroOp(f, hashable(key), hashable(argument)))
        elif f == "r":
            if argument is not None and not isinstance(argument, list | tuple):
                raise HistoryError(f"op {index}: a read returns a list, not {argument!r}")
            parsed.append(MicroOp(f, hashable(key), hashable(argument)))
        else:
            raise HistoryError(f"op {index}: unknown micro-op {f!r}")
    return tuple(parsed)


def invocation(micro_ops: Iterable[Any]) -> list[list[Any]]:
    """A transaction's value as invoked: its reads' results blanked to None."""
    return [[f, key, None if f == "r" else argument] for f, key, argument in micro_ops]


@dataclass(slots=True)
class _Txn:
    id: int
    pair: Pair
    outcome: OpType
    ops: tuple[MicroOp, ...]
    appends: dict[Key, list[Any]] = field(default_factory=dict)  # in program order

    @property
    def name(self) -> str:
        return f"T{self.id}"


@dataclass(frozen=True, slots=True)
class _Read:
    txn: int
    key: Key
    values: tuple[Any, ...]      # as read
    distinct: tuple[Any, ...]    # first occurrences only
    external: tuple[Any, ...]    # distinct, less the reader's own appends at its end


class _Anomalies:
    def __init__(self) -> None:
        self.by_name: dict[str, list[dict[str, Any]]] = {}

    def add(self, name: str, report: dict[str, Any]) -> None:
        self.by_name.setdefault(name, []).append(report)

    @property
    def count(self) -> int:
        return sum(len(reports) for reports in self.by_name.values())


def check(history: History, *, realtime: bool = False,
          cycle_starts_max: int = CYCLE_STARTS_MAX) -> Verdict:
    """Checks the ``txn`` operations of ``history``; see the module docstring.

    Anomaly names: internal, duplicate-append, unexpected-value, G1a, G1b,
    incompatible-order, lost-append, G0, G1c, G-single, G2-item, and with ``realtime`` also
    G0-realtime, G1c-realtime, G-single-realtime, G2-item-realtime.
    """
    assert cycle_starts_max > 0
    txns = _transactions(history)
    writers = _writers(txns)
    anomalies = _Anomalies()
    reads = _reads(txns, anomalies)
    observed = _observed(reads)
    _check_reads(reads, observed, txns, writers, anomalies)
    committed = _committed(txns, observed)
    orders = _version_orders(reads, txns, anomalies)
    graph = _graph(txns, committed, reads, orders, writers, realtime)
    _lost_appends(txns, reads, orders, anomalies)
    scc_count = _cycles(graph, txns, realtime, cycle_starts_max, anomalies)

    outcomes = [txn.outcome for txn in txns.values()]
    edge_counts = {f"{kind}_edge_count": 0 for kind in KINDS}
    for _, _, kinds in graph.edges(data="kinds"):
        for kind in kinds:
            edge_counts[f"{kind}_edge_count"] += 1
    return Verdict(
        checker="list-append",
        valid=not anomalies.by_name,
        anomalies=anomalies.by_name,
        counts={
            "txn_count": len(txns),
            "ok_count": outcomes.count(OpType.OK),
            "fail_count": outcomes.count(OpType.FAIL),
            "info_count": outcomes.count(OpType.INFO),
            "info_committed_count": sum(
                1 for tid in committed if txns[tid].outcome is OpType.INFO
            ),
            "key_count": len(orders),
            "read_count": len(reads),
            "cyclic_component_count": scc_count,
            "anomaly_count": anomalies.count,
            **edge_counts,
        },
        details={"realtime": realtime},
    )


# --- the transactions and what they read --------------------------------------------------


def _transactions(history: History) -> dict[int, _Txn]:
    txns: dict[int, _Txn] = {}
    for pair in history.pairs([FUNCTION]):
        txn = _Txn(pair.index, pair, pair.outcome, parse_txn(pair.value, index=pair.index))
        for op in txn.ops:
            if op.f == "append":
                txn.appends.setdefault(op.key, []).append(op.value)
        txns[txn.id] = txn
    return txns


def _writers(txns: dict[int, _Txn]) -> dict[tuple[Key, Any], int]:
    """Which transaction appended each (key, value); values must be unique per key."""
    writers: dict[tuple[Key, Any], int] = {}
    for txn in txns.values():
        for key, values in txn.appends.items():
            for value in values:
                other = writers.setdefault((key, value), txn.id)
                if other != txn.id or values.count(value) > 1:
                    raise HistoryError(
                        f"value {value!r} appended to key {key!r} more than once (ops {other} "
                        f"and {txn.id}): list-append needs unique values"
                    )
    return writers


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def _reads(txns: dict[int, _Txn], anomalies: _Anomalies) -> list[_Read]:
    """The reads of ok transactions, checking each against the transaction's own appends."""
    reads: list[_Read] = []
    for txn in txns.values():
        if txn.outcome is not OpType.OK:
            continue
        known: dict[Key, tuple[Any, ...]] = {}      # the key as last read by this txn
        own_since: dict[Key, list[Any]] = {}        # own appends since that read
        for op in txn.ops:
            if op.f == "append":
                own_since.setdefault(op.key, []).append(op.value)
                continue
            if op.value is None:
                continue
            values: tuple[Any, ...] = op.value
            own = tuple(own_since.pop(op.key, []))
            mine = set(txn.appends.get(op.key, ()))
            if op.key in known:
                # Exactly what it read before, and what it appended since.
                expected: tuple[Any, ...] | None = known[op.key] + own
                consistent = values == expected
            else:
                # Others' values, then its own appends so far, in order.
                expected = None
                cut = len(values) - len(own)
                consistent = cut >= 0 and values[cut:] == own and mine.isdisjoint(values[:cut])
            if not consistent:
                anomalies.add("internal", {
                    "key": json_value(op.key),
                    "read": json_value(values),
                    "expected": json_value(expected),
                    "own_appends": json_value(own),
                    "txn": txn.pair.to_json(),
                    "why": (
                        f"{txn.name}'s read of {op.key!r} disagrees with its own earlier "
                        f"reads and appends"
                    ),
                })
            known[op.key] = values
            distinct = _distinct(values)
            end = len(distinct)
            while end > 0 and distinct[end - 1] in mine:
                end -= 1
            reads.append(_Read(txn.id, op.key, values, distinct, distinct[:end]))
    return reads


def _observed(reads: list[_Read]) -> dict[Key, set[Any]]:
    """Every value some ok read saw, per key."""
    observed: dict[Key, set[Any]] = {}
    for read in reads:
        observed.setdefault(read.key, set()).update(read.distinct)
    return observed


def _check_reads(reads: list[_Read], observed: dict[Key, set[Any]], txns: dict[int, _Txn],
                 writers: dict[tuple[Key, Any], int], anomalies: _Anomalies) -> None:
    # Each value seen is judged once per key; only the bad ones are traced to their readers.
    bad: dict[Key, set[Any]] = {}
    for key, values in observed.items():
        for value in values:
            writer_id = writers.get((key, value))
            if writer_id is None or txns[writer_id].outcome is OpType.FAIL:
                bad.setdefault(key, set()).add(value)
    for read in reads:
        reader = txns[read.txn]
        if len(read.distinct) < len(read.values):
            twice = [v for v in read.distinct if read.values.count(v) > 1]
            anomalies.add("duplicate-append", {
                "key": json_value(read.key),
                "values": json_value(tuple(twice)),
                "read": json_value(read.values),
                "txn": reader.pair.to_json(),
            })
        suspicious = bad.get(read.key, set())
        seen_bad = [] if suspicious.isdisjoint(read.distinct) else [
            value for value in read.distinct if value in suspicious
        ]
        for value in seen_bad:
            writer_id = writers.get((read.key, value))
            if writer_id is None:
                anomalies.add("unexpected-value", {
                    "key": json_value(read.key),
                    "value": json_value(value),
                    "txn": reader.pair.to_json(),
                    "why": f"{reader.name} read {value!r} in {read.key!r}, never appended",
                })
            else:
                writer = txns[writer_id]
                anomalies.add("G1a", {
                    "key": json_value(read.key),
                    "value": json_value(value),
                    "reader": reader.pair.to_json(),
                    "writer": writer.pair.to_json(),
                    "why": f"{reader.name} read {value!r}, appended by {writer.name}, which failed",
                })
        if not read.external:
            continue
        last = read.external[-1]
        writer_id = writers.get((read.key, last))
        if writer_id is None or writer_id == read.txn:
            continue
        writer = txns[writer_id]
        final = writer.appends[read.key][-1]
        if writer.outcome is not OpType.FAIL and last != final:
            anomalies.add("G1b", {
                "key": json_value(read.key),
                "value": json_value(last),
                "final_value": json_value(final),
                "reader": reader.pair.to_json(),
                "writer": writer.pair.to_json(),
                "why": (
                    f"{reader.name} read {read.key!r} ending at {last!r}, an intermediate "
                    f"append of {writer.name} (its last was {final!r})"
                ),
            })


def _committed(txns: dict[int, _Txn], observed: dict[Key, set[Any]]) -> set[int]:
    """Ok transactions, and info ones whose appends an ok read saw."""
    committed = {tid for tid, txn in txns.items() if txn.outcome is OpType.OK}
    for tid, txn in txns.items():
        if txn.outcome is OpType.INFO and any(
            not observed.get(key, set()).isdisjoint(values)
            for key, values in txn.appends.items()
        ):
            committed.add(tid)
    return committed


def _version_orders(reads: list[_Read], txns: dict[int, _Txn],
                    anomalies: _Anomalies) -> dict[Key, tuple[Any, ...]]:
    """Each key's version order: its longest read, which every other read must prefix."""
    longest: dict[Key, _Read] = {}
    for read in reads:
        best = longest.get(read.key)
        if best is None or len(read.distinct) > len(best.distinct):
            longest[read.key] = read
    orders = {key: read.distinct for key, read in longest.items()}
    reported: set[tuple[Key, tuple[Any, ...]]] = set()
    for read in reads:
        order = orders[read.key]
        if order[: len(read.distinct)] == read.distinct or (read.key, read.distinct) in reported:
            continue
        reported.add((read.key, read.distinct))
        anomalies.add("incompatible-order", {
            "key": json_value(read.key),
            "read": json_value(read.distinct),
            "longest_read": json_value(order),
            "txns": [txns[read.txn].pair.to_json(), txns[longest[read.key].txn].pair.to_json()],
            "why": f"{read.key!r} read two ways that cannot both be prefixes of one order",
        })
    positions = {key: {value: i for i, value in enumerate(order)} for key, order in orders.items()}
    for txn in txns.values():
        for key, values in txn.appends.items():
            if key not in orders:
                continue
            order = orders[key]
            position = positions[key]
            shown = [position.get(value) for value in values]
            visible = [p for p in shown if p is not None]
            prefix = shown[: len(visible)] == visible
            if prefix and visible == sorted(visible):
                continue
            anomalies.add("incompatible-order", {
                "key": json_value(key),
                "appends": json_value(tuple(values)),
                "longest_read": json_value(order),
                "txns": [txn.pair.to_json()],
                "why": (
                    f"{txn.name}'s appends to {key!r} show out of their order, or only in part"
                ),
            })
    return orders


def _lost_appends(txns: dict[int, _Txn], reads: list[_Read],
                  orders: dict[Key, tuple[Any, ...]], anomalies: _Anomalies) -> None:
    # For each (key, value): the latest start of a read that saw it. A read that is a prefix
    # of the version order saw exactly the values before its length, so a running maximum
    # over lengths answers for all of them; only incompatible reads are walked value by value.
    starts: dict[Key, list[int]] = {}
    start_max_by_length: dict[Key, list[int]] = {
        key: [-1] * (len(order) + 1) for key, order in orders.items()
    }
    seen_start_max: dict[tuple[Key, Any], int] = {}
    for read in reads:
        start = txns[read.txn].pair.start_index
        starts.setdefault(read.key, []).append(start)
        order = orders[read.key]
        length = len(read.distinct)
        if order[:length] == read.distinct:
            by_length = start_max_by_length[read.key]
            by_length[length] = max(by_length[length], start)
            continue
        for value in read.distinct:
            if seen_start_max.get((read.key, value), -1) < start:
                seen_start_max[(read.key, value)] = start
    for key, order in orders.items():
        by_length = start_max_by_length[key]
        latest = -1
        for position in range(len(order), 0, -1):   # reads at least this long saw it
            latest = max(latest, by_length[position])
            value = order[position - 1]
            seen_start_max[(key, value)] = max(seen_start_max.get((key, value), -1), latest)
    for key_starts in starts.values():
        key_starts.sort()
    for txn in txns.values():
        end = txn.pair.end_index
        if txn.outcome is not OpType.OK or end is None:
            continue
        for key, values in txn.appends.items():
            key_starts = starts.get(key, [])
            later = len(key_starts) - bisect.bisect_right(key_starts, end)
            if later == 0:
                continue
            for value in values:
                if seen_start_max.get((key, value), -1) > end:
                    continue
                anomalies.add("lost-append", {
                    "key": json_value(key),
                    "value": json_value(value),
                    "txn": txn.pair.to_json(),
                    "later_read_count": later,
                    "why": (
                        f"{txn.name}'s append of {value!r} to {key!r} was acknowledged, "
                        f"yet none of the {later} reads of {key!r} begun later saw it"
                    ),
                })


# --- the dependency graph -----------------------------------------------------------------


def _graph(txns: dict[int, _Txn], committed: set[int], reads: list[_Read],
           orders: dict[Key, tuple[Any, ...]], writers: dict[tuple[Key, Any], int],
           realtime: bool) -> Any:
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(committed))

    def link(source: int | None, target: int | None, kind: str, key: Key, value: Any) -> None:
        if source is None or target is None or source == target:
            return
        if source not in committed or target not in committed:
            return
        if not graph.has_edge(source, target):
            graph.add_edge(source, target, kinds={})
        graph[source][target]["kinds"].setdefault(kind, (key, value))

    for key, order in orders.items():
        for earlier, later in itertools.pairwise(order):
            link(writers.get((key, earlier)), writers.get((key, later)), "ww", key, later)
    for read in reads:
        if read.external:
            last = read.external[-1]
            link(writers.get((read.key, last)), read.txn, "wr", read.key, last)
        order = orders[read.key]
        seen = len(read.external)
        if order[:seen] == read.external and seen < len(order):
            following = order[seen]
            link(read.txn, writers.get((read.key, following)), "rw", read.key, following)
    if realtime:
        # Transitively reduced real-time order: a transaction that completes supersedes, in
        # the frontier, every transaction that had completed before it was invoked.
        events: list[tuple[int, int, int]] = []
        for tid in committed:
            pair = txns[tid].pair
            events.append((pair.start_index, 1, tid))
            end = pair.end_index
            if end is not None and txns[tid].outcome is OpType.OK:
                events.append((end, 0, tid))
        frontier: set[int] = set()
        before: dict[int, frozenset[int]] = {}
        for _, is_invoke, tid in sorted(events):
            if is_invoke:
                before[tid] = frozenset(frontier)
                for earlier in frontier:
                    link(earlier, tid, "rt", None, None)
            else:
                frontier -= before[tid]
                frontier.add(tid)
    return graph


def _label(kinds: dict[str, Any], allowed: frozenset[str]) -> str | None:
    for kind in KINDS:
        if kind in kinds and kind in allowed:
            return kind
    return None


def _name(labels: list[str]) -> str:
    rw = labels.count("rw")
    if rw == 0:
        base = "G1c" if "wr" in labels else "G0"
    else:
        base = "G-single" if rw == 1 else "G2-item"
    return f"{base}-realtime" if "rt" in labels else base


@dataclass(frozen=True, slots=True)
class _Search:
    start: str                # the label of the edge each candidate cycle starts with
    path: frozenset[str]      # kinds the rest of the cycle may use
    path_needs_rw: bool       # the rest must carry an rw edge of its own


_SEARCHES = (
    _Search("ww", frozenset({"ww"}), False),                  # G0
    _Search("wr", frozenset({"ww", "wr"}), False),            # G1c
    _Search("rw", frozenset({"ww", "wr"}), False),            # G-single
    _Search("rw", frozenset({"ww", "wr", "rw"}), True),       # G2-item
)


Adjacency = dict[int, list[tuple[int, str]]]


def _adjacency(graph: Any, nodes: set[int], allowed: frozenset[str]) -> Adjacency:
    """The edges inside ``nodes`` that ``allowed`` kinds may use, each with its label: built
    once per search so that each breadth-first walk reads plain lists."""
    adjacency: Adjacency = {}
    for source in nodes:
        out: list[tuple[int, str]] = []
        for target, data in graph.succ[source].items():
            if target in nodes and (label := _label(data["kinds"], allowed)) is not None:
                out.append((target, label))
        adjacency[source] = out
    return adjacency


def _path(adjacency: Adjacency, source: int, target: int, needs_rw: bool,
          length_max: int) -> list[Edge] | None:
    """The shortest path source ⇝ target (with an rw edge on it when ``needs_rw``) of at
    most ``length_max`` edges; breadth first over (node, rw seen yet) so that the rw
    condition is part of the state."""
    first = (source, not needs_rw)
    goal = (target, True)
    parents: dict[tuple[int, bool], tuple[tuple[int, bool], str] | None] = {first: None}
    frontier = [first]
    for _ in range(length_max):
        following: list[tuple[int, bool]] = []
        for state in frontier:
            node, has_rw = state
            for successor, label in adjacency[node]:
                reached = (successor, has_rw or label == "rw")
                if reached in parents:
                    continue
                parents[reached] = (state, label)
                if reached == goal:
                    edges: list[Edge] = []
                    step: tuple[int, bool] = reached
                    while (link := parents[step]) is not None:
                        previous, edge_label = link
                        edges.append((previous[0], step[0], edge_label))
                        step = previous
                    edges.reverse()
                    return edges
                following.append(reached)
        if not following:
            return None
        frontier = following
    return None


def _shortest_cycle(graph: Any, nodes: set[int], search: _Search, allow_rt: bool,
                    starts_max: int) -> list[Edge] | None:
    path_kinds = search.path | {"rt"} if allow_rt else search.path
    start_kinds = path_kinds | {search.start}
    starts: list[tuple[int, int]] = []
    for source in sorted(nodes):
        for target, data in graph.succ[source].items():
            if target in nodes and _label(data["kinds"], start_kinds) == search.start:
                starts.append((source, target))
    if not starts:
        return None
    adjacency = _adjacency(graph, nodes, path_kinds)
    best: list[Edge] | None = None
    for source, target in sorted(starts)[:starts_max]:
        length_max = len(nodes) - 1 if best is None else len(best) - 2
        if length_max < 1:
            break
        rest = _path(adjacency, target, source, search.path_needs_rw, length_max)
        if rest is not None:
            best = [(source, target, search.start), *rest]
    return best


def _report(graph: Any, txns: dict[int, _Txn], cycle: list[Edge]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for source, target, kind in cycle:
        key, value = graph[source][target]["kinds"][kind]
        a, b = txns[source].name, txns[target].name
        why = {
            "ww": f"{b} appended {value!r} to {key!r} right after {a}'s append",
            "wr": f"{b} read {key!r} and saw {a}'s append of {value!r}",
            "rw": f"{a} read {key!r} without {b}'s append of {value!r}, the next version",
            "rt": f"{a} completed before {b} was invoked",
        }[kind]
        step: dict[str, Any] = {"from": source, "to": target, "kind": kind, "why": why}
        if kind != "rt":
            step.update(key=json_value(key), value=json_value(value))
        steps.append(step)
    return {
        "cycle": steps,
        "transactions": [txns[source].pair.to_json() for source, _, _ in cycle],
    }


def _cycles(graph: Any, txns: dict[int, _Txn], realtime: bool, starts_max: int,
            anomalies: _Anomalies) -> int:
    """Finds and names cycles per strongly connected component; returns how many components
    of two or more transactions there were."""
    dependencies = nx.subgraph_view(
        graph, filter_edge=lambda u, v: any(kind != "rt" for kind in graph[u][v]["kinds"])
    )
    everything = frozenset(KINDS)
    dependency_kinds = frozenset({"ww", "wr", "rw"})
    explained: set[int] = set()
    components = 0
    for component in sorted(nx.strongly_connected_components(dependencies), key=min):
        if len(component) < 2:
            continue
        components += 1
        explained |= component
        names: set[str] = set()
        for search in _SEARCHES:
            cycle = _shortest_cycle(graph, component, search, False, starts_max)
            if cycle is not None and (name := _name([k for _, _, k in cycle])) not in names:
                names.add(name)
                anomalies.add(name, _report(graph, txns, cycle))
        if not names:
            cycle = _any_cycle(dependencies, component, dependency_kinds)
            anomalies.add(_name([k for _, _, k in cycle]), _report(graph, txns, cycle))
    if not realtime:
        return components
    for component in sorted(nx.strongly_connected_components(graph), key=min):
        if len(component) < 2:
            continue
        names = set()
        for search in _SEARCHES:
            cycle = _shortest_cycle(graph, component, search, True, starts_max)
            if cycle is None:
                continue
            name = _name([k for _, _, k in cycle])
            if name.endswith("-realtime") and name not in names:
                names.add(name)
                anomalies.add(name, _report(graph, txns, cycle))
        if component & explained:
            continue
        components += 1
        if not names:
            cycle = _any_cycle(graph, component, everything)
            anomalies.add(_name([k for _, _, k in cycle]), _report(graph, txns, cycle))
    return components


def _any_cycle(graph: Any, component: set[int], allowed: frozenset[str]) -> list[Edge]:
    """Some cycle of a strongly connected component: the fallback when the bounded shortest
    searches found none, so that no cyclic component goes unreported."""
    found = nx.find_cycle(graph.subgraph(component))
    cycle: list[Edge] = []
    for source, target in found:
        label = _label(graph[source][target]["kinds"], allowed)
        assert label is not None
        cycle.append((source, target, label))
    return cycle
