"""The runner: one workload against one nemesis, on a cluster of its own, judged.

A run has three acts on one clock. The clients start on a fresh cluster; from
``FAULT_START`` to ``FAULT_END`` of the run's time the nemesis acts, then heals; the clients
go on to the end, stop, and the final reads run once the cluster is whole again (bounded).
Then the history is judged (``judge``) — a pure function of the saved run, so that
``--check DIR`` judges a stored history again and a test can feed it a corrupted one.

The verdict (``verdict.json``) says, besides what the workload's checkers found:

- **operations** by outcome and by function (the final reads counted apart);
- **acknowledged_commits_lost**: acknowledged writes the final state does not hold;
- **anomalies**: counts by type, from every checker, including ``stale-writer-ack`` (a
  write acknowledged by an instance that was no longer the writer when the write was
  invoked, after a failover event away from it: a fenced writer must never get a commit
  acknowledged) and ``stale-writer-read`` (a read through the writer endpoint answered by
  such an instance);
- **availability** during the fault window (from the fault's start to the end of healing),
  for writes and reads: the fraction of operations invoked in the window whose answer came
  from the database (ok, a definite refusal the workload asked for, such as a cas that
  found another value, or a serialization failure 40001) among all completed ones; and
  ``*_by_time``, the share of the window's seconds in which some operation of the kind
  was acknowledged (a stuck operation counts once above, however long the outage);
- **time_to_recover_s**: from the end of healing to the first acknowledged write and the
  first successful read completed after it (the later of the two); ``recovery`` adds the
  longest stretch without an acknowledged write, and when the cluster was whole again;
- **recovered**: whether the cluster was whole again (one writer, every instance
  available, every PG 6/6) after healing, within ``healthy_wait_s`` of the run's end: a
  liveness fact, kept apart from ``valid``;
- **valid**: true, false (a violation), or "unknown" (a checker could not decide, e.g. no
  final read succeeded). Safety only: a cluster that stays degraded is not invalid.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from borealis.chaos import history as history_io
from borealis.chaos.checkers import Verdict
from borealis.chaos.clients import OP_TIMEOUT_S, Client, ClientEnvironment, Recorder, Watchdog
from borealis.chaos.cluster import ChaosCluster, ClusterShape
from borealis.chaos.history import History, OpType, Pair
from borealis.chaos.nemesis import NEMESES, NOT_IMPLEMENTED, NemesisContext
from borealis.chaos.nemesis_net import shape_for
from borealis.chaos.workloads import WORKLOADS, Workload, WorkloadCheck, combine
from borealis.errors import BorealisError

log = logging.getLogger(__name__)

FAULT_START = 0.2
FAULT_END = 0.7
"""The nemesis acts from 20% to 70% of the run's time; the rest is before and after."""
SETUP_TIMEOUT_S = 60.0
HEALTHY_WAIT_S = 45.0
"""After the clients stop, how long to wait for the cluster to be whole before final reads."""
FINAL_TIMEOUT_S = 90.0
CLIENT_JOIN_S = 20.0
HEALTH_POLL_S = 0.5
TIME_S_MIN = 5.0
CLIENTS_MAX = 64

HISTORY_FILE = "history.jsonl"
VERDICT_FILE = "verdict.json"
EVENTS_FILE = "events.json"
RUN_FILE = "run.json"


class ChaosRunError(BorealisError):
    """The run could not be carried out (not a verdict on the database)."""

    code = "chaos_run"


class NotImplementedNemesis(ChaosRunError):
    code = "not_implemented"


@dataclass(frozen=True, slots=True)
class RunConfig:
    workload: str
    nemesis: str
    time_s: float
    clients: int
    seed: int
    out: Path
    op_timeout_s: float = OP_TIMEOUT_S
    healthy_wait_s: float = HEALTHY_WAIT_S
    shape: ClusterShape = field(default_factory=ClusterShape)

    def __post_init__(self) -> None:
        if self.nemesis in NOT_IMPLEMENTED:
            raise NotImplementedNemesis(f"nemesis {self.nemesis}: {NOT_IMPLEMENTED[self.nemesis]}")
        if self.workload not in WORKLOADS:
            raise ChaosRunError(f"unknown workload {self.workload!r}; one of {sorted(WORKLOADS)}")
        if self.nemesis not in NEMESES:
            raise ChaosRunError(f"unknown nemesis {self.nemesis!r}; one of {sorted(NEMESES)} "
                                f"(not implemented yet: {sorted(NOT_IMPLEMENTED)})")
        if self.time_s < TIME_S_MIN:
            raise ChaosRunError(f"--time must be at least {TIME_S_MIN:.0f} s")
        minimum = WORKLOADS[self.workload].client_minimum
        if not minimum <= self.clients <= CLIENTS_MAX:
            raise ChaosRunError(f"{self.workload} runs with {minimum} to {CLIENTS_MAX} clients")
        assert self.op_timeout_s > 0
        assert self.healthy_wait_s >= 0


def run(config: RunConfig) -> dict[str, Any]:
    """Carry out one run and return its verdict (also written to ``config.out``)."""
    config.out.mkdir(parents=True, exist_ok=True)
    workload = WORKLOADS[config.workload](config.clients, config.seed)
    nemesis = NEMESES[config.nemesis]()
    cluster = ChaosCluster.temporary(shape=shape_for(config.nemesis, config.shape),
                                     env=NEMESES[config.nemesis].cluster_env)
    with cluster:
        endpoints = {"writer": cluster.endpoint("writer"), "reader": cluster.endpoint("reader")}
        _setup(workload, endpoints["writer"], cluster.password)
        # Every time in the history and the verdict counts from here.
        recorder = Recorder()
        timeline: dict[str, Any] = {"origin_wall_s": recorder.origin_wall_s,
                                    "initial_writer": (cluster.writer() or {}).get("id")}
        stop = threading.Event()
        watchdog = Watchdog()
        env = ClientEnvironment(endpoints, cluster.password, recorder, watchdog, stop,
                                op_timeout_s=config.op_timeout_s)
        clients = [Client(n, config.clients, workload, env, config.seed)
                   for n in range(config.clients)]
        ctx = NemesisContext(cluster, recorder, random.Random(config.seed))
        watchdog.start()
        try:
            started = time.monotonic()
            timeline["start_ns"] = recorder.now_ns()
            for client in clients:
                client.start()
            log.info("clients started workload=%s clients=%d", config.workload, config.clients)
            _wait_until(started + FAULT_START * config.time_s)
            timeline["fault_start_ns"] = recorder.now_ns()
            log.info("nemesis starts nemesis=%s", config.nemesis)
            try:
                nemesis.run(ctx, started + FAULT_END * config.time_s)
            finally:
                nemesis.heal(ctx)
            timeline["heal_ns"] = recorder.now_ns()
            log.info("nemesis healed nemesis=%s", config.nemesis)
            healthy_ns = _poll_healthy(cluster, recorder, started + config.time_s)
            _wait_until(started + config.time_s)
            stop.set()
            for client in clients:
                client.join(CLIENT_JOIN_S)
            timeline["end_ns"] = recorder.now_ns()
            if healthy_ns is None:
                healthy_ns = _poll_healthy(cluster, recorder,
                                           time.monotonic() + config.healthy_wait_s)
            timeline["healthy_ns"] = healthy_ns
            env.final_deadline = time.monotonic() + FINAL_TIMEOUT_S
            workload.final(env)
        finally:
            stop.set()
            watchdog.stop()
            events = _events(cluster)
            final_view = _final_view(cluster)
            cluster.copy_logs(config.out / "logs")
    history = recorder.history()
    meta = recorder.meta()
    save_history(history, meta, config.out / HISTORY_FILE)
    (config.out / EVENTS_FILE).write_text(json.dumps(events, indent=1))
    run_record = {"workload": config.workload, "nemesis": config.nemesis,
                  "time_s": config.time_s, "clients": config.clients, "seed": config.seed,
                  "op_timeout_s": config.op_timeout_s, "params": workload.params(),
                  "timeline": timeline, "nemesis_actions": ctx.actions,
                  "final_view": final_view,
                  "cluster": {"repair_after_s": config.shape.repair_after_s,
                              "writer_hung_after_s": config.shape.writer_hung_after_s,
                              "nodes_per_az": config.shape.nodes_per_az,
                              "network": cluster.shape.network},
                  "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    (config.out / RUN_FILE).write_text(json.dumps(run_record, indent=1))
    verdict = judge(run_record, history, meta, events)
    (config.out / VERDICT_FILE).write_text(json.dumps(verdict, indent=1, default=str))
    return verdict


def _wait_until(deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _setup(workload: Workload, writer: tuple[str, int], password: str) -> None:
    deadline = time.monotonic() + SETUP_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(host=writer[0], port=writer[1], user="postgres",
                                 password=password, dbname="postgres", autocommit=True,
                                 connect_timeout=10) as conn:
                workload.setup(conn)
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ChaosRunError(f"the workload's setup failed: {exc}") from exc
            time.sleep(1.0)


def _poll_healthy(cluster: ChaosCluster, recorder: Recorder, until: float) -> int | None:
    """When (recorder ns) the cluster was first whole again, polling until ``until``."""
    while True:
        try:
            if cluster.fully_healthy():
                return recorder.now_ns()
        except BorealisError as exc:
            log.debug("status: %s", exc)
        if time.monotonic() >= until:
            return None
        time.sleep(HEALTH_POLL_S)


def _final_view(cluster: ChaosCluster) -> dict[str, Any]:
    """The cluster as the run left it: instances, storage nodes, PG health."""
    try:
        view = cluster.status()
    except BorealisError as exc:
        return {"error": str(exc)}
    return {
        "state": view.get("state"),
        "instances": [[i["id"], i["role"], i["state"]] for i in view["instances"]],
        "storage_nodes": [[n["id"], n["state"], n["segments"]] for n in view["storage_nodes"]],
        "protection_groups_healthy": [pg.get("healthy") for pg in
                                      view.get("protection_groups") or []],
    }


def _events(cluster: ChaosCluster) -> list[dict[str, Any]]:
    try:
        return cluster.events()
    except BorealisError as exc:
        log.warning("could not read the events: %s", exc)
        return []


# --- history files ----------------------------------------------------------------------------


def save_history(history: History, meta: Mapping[int, Mapping[str, Any]], path: Path) -> None:
    """JSON Lines of ``history``'s shape, each completion with its error and instance beside
    it (``history.load`` reads the file and ignores them)."""
    with open(path, "w", encoding="utf-8") as stream:
        for op in history:
            line = op.to_json()
            line.update(meta.get(op.index, {}))
            stream.write(json.dumps(line, separators=(",", ":")))
            stream.write("\n")


def load_run(directory: Path) -> tuple[dict[str, Any], History, dict[int, dict[str, Any]],
                                      list[dict[str, Any]]]:
    """What ``judge`` needs, from a run's directory."""
    run_record = json.loads((directory / RUN_FILE).read_text())
    history = history_io.load(directory / HISTORY_FILE)
    meta: dict[int, dict[str, Any]] = {}
    with open(directory / HISTORY_FILE, encoding="utf-8") as stream:
        for line in stream:
            obj = json.loads(line)
            extra = {k: obj[k] for k in ("error", "instance", "endpoint") if k in obj}
            if extra:
                meta[int(obj["index"])] = extra
    events_path = directory / EVENTS_FILE
    events = json.loads(events_path.read_text()) if events_path.exists() else []
    return run_record, history, meta, events


# --- judging ---------------------------------------------------------------------------------


def judge(run_record: Mapping[str, Any], history: History,
          meta: Mapping[int, Mapping[str, Any]],
          events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The verdict of a run, from what it recorded (pure: no cluster needed)."""
    workload = WORKLOADS[run_record["workload"]](int(run_record["clients"]),
                                                int(run_record["seed"]))
    timeline = run_record["timeline"]
    check = workload.check(history, meta)
    fencing = check_fencing(workload, history, meta, events, timeline)
    verdicts = (*check.verdicts, fencing)
    combined = WorkloadCheck(verdicts, check.acknowledged_lost)
    pairs = history.pairs()
    client_pairs = [p for p in pairs if isinstance(p.process, int)]
    anomalies = combined.anomaly_counts()
    return {
        "workload": run_record["workload"],
        "nemesis": run_record["nemesis"],
        "valid": combine(v.valid for v in verdicts),
        "seed": run_record["seed"],
        "time_s": run_record["time_s"],
        "clients": run_record["clients"],
        "date": run_record.get("date"),
        "operations": _operation_counts(client_pairs, pairs),
        "acknowledged_commits_lost": check.acknowledged_lost,
        "anomaly_count": sum(anomalies.values()),
        "anomalies": anomalies,
        "availability": availability(workload, client_pairs, meta, timeline),
        **recovery(workload, client_pairs, timeline),
        "recovered": timeline.get("healthy_ns") is not None,
        "final_view": run_record.get("final_view"),
        "errors": dict(Counter(str(m["error"]) for m in meta.values() if "error" in m)),
        "events": dict(Counter(str(e.get("kind")) for e in events)),
        "nemesis_actions": run_record.get("nemesis_actions", []),
        "checkers": [v.to_dict() for v in verdicts],
    }


def _operation_counts(client_pairs: list[Pair], pairs: list[Pair]) -> dict[str, Any]:
    by_type = Counter(p.outcome.value for p in client_pairs)
    by_f: dict[str, dict[str, int]] = {}
    for p in client_pairs:
        by_f.setdefault(p.f, {}).setdefault(p.outcome.value, 0)
        by_f[p.f][p.outcome.value] += 1
    final = Counter(p.outcome.value for p in pairs if p.process == "final")
    return {"total": len(client_pairs), **{t.value: by_type.get(t.value, 0)
                                           for t in (OpType.OK, OpType.FAIL, OpType.INFO)},
            "by_f": by_f, "final_reads": dict(final)}


def _answered(pair: Pair, meta: Mapping[int, Mapping[str, Any]]) -> bool:
    """The database answered: ok, a refusal the workload decided on (a cas that found
    another value), or a transaction rollback (SQLSTATE class 40: a serialization failure
    between clients, which says the database is up, not that it is unavailable)."""
    if pair.outcome is OpType.OK:
        return True
    if pair.outcome is OpType.FAIL and pair.completion is not None:
        error = str(meta.get(pair.completion.index, {}).get("error", ""))
        return error.startswith("refused:") or (len(error) == 5 and error.startswith("40"))
    return False


def availability(workload: Workload, client_pairs: list[Pair],
                 meta: Mapping[int, Mapping[str, Any]],
                 timeline: Mapping[str, Any]) -> dict[str, Any]:
    start, end = timeline.get("fault_start_ns"), timeline.get("heal_ns")
    if start is None or end is None:
        return {"window_s": None, "writes": None, "reads": None}
    out: dict[str, Any] = {"window_s": [round(start / 1e9, 3), round(end / 1e9, 3)]}
    seconds = max(1, (end - start) // 1_000_000_000)   # whole seconds: no partial tail
    for kind, wanted in (("writes", True), ("reads", False)):
        chosen = [p for p in client_pairs if start <= p.invoke.time_ns <= end
                  and workload.is_write(p) is wanted]
        answered = sum(1 for p in chosen if _answered(p, meta))
        out[kind] = round(answered / len(chosen), 4) if chosen else None
        out[f"{kind}_completed"] = len(chosen)
        # By time: the share of the window's seconds in which some operation of this kind
        # was acknowledged (operations stuck for the whole outage count once above).
        served = {(p.completion.time_ns - start) // 1_000_000_000 for p in client_pairs
                  if p.outcome is OpType.OK and p.completion is not None
                  and 0 <= p.completion.time_ns - start < seconds * 1_000_000_000
                  and workload.is_write(p) is wanted}
        out[f"{kind}_by_time"] = round(len(served) / seconds, 4)
    return out


def recovery(workload: Workload, client_pairs: list[Pair],
             timeline: Mapping[str, Any]) -> dict[str, Any]:
    heal = timeline.get("heal_ns")
    ok_ends: dict[bool, list[int]] = {True: [], False: []}
    for p in client_pairs:
        if p.outcome is OpType.OK and p.completion is not None:
            ok_ends[workload.is_write(p)].append(p.completion.time_ns)
    for ends in ok_ends.values():
        ends.sort()
    firsts: dict[str, float | None] = {}
    for kind, wanted in (("write", True), ("read", False)):
        ends = ok_ends[wanted]
        after = bisect.bisect_left(ends, heal) if heal is not None else len(ends)
        firsts[kind] = round((ends[after] - heal) / 1e9, 3) if heal is not None and \
            after < len(ends) else None
    present = [v for v in firsts.values() if v is not None]
    healthy = timeline.get("healthy_ns")
    gap_s, gap_at_s = _longest_gap(ok_ends[True], timeline.get("start_ns"),
                                   timeline.get("end_ns"))
    return {
        "time_to_recover_s": max(present) if present else None,
        "recovery": {
            "first_ok_write_after_heal_s": firsts["write"],
            "first_ok_read_after_heal_s": firsts["read"],
            "cluster_whole_after_heal_s": None if healthy is None or heal is None
            else round(max(0, healthy - heal) / 1e9, 3),
            "write_gap_s_max": gap_s,
            "write_gap_at_s": gap_at_s,
        },
    }


def _longest_gap(ends: list[int], start: int | None,
                 end: int | None) -> tuple[float | None, float | None]:
    if start is None or end is None:
        return None, None
    points = [start, *[t for t in ends if start <= t <= end], end]
    best, at = 0, start
    for before, after in itertools.pairwise(points):
        if after - before > best:
            best, at = after - before, before
    return round(best / 1e9, 3), round(at / 1e9, 3)


def writer_timeline(events: Sequence[Mapping[str, Any]], timeline: Mapping[str, Any]
                    ) -> list[tuple[int, str]]:
    """(recorder ns, writer id) from the start and each failover event."""
    origin = float(timeline.get("origin_wall_s", 0.0))
    changes: list[tuple[int, str]] = []
    initial = timeline.get("initial_writer")
    if initial:
        changes.append((-1, str(initial)))
    for event in events:
        if event.get("kind") == "failover" and event.get("new_writer"):
            changes.append((int((float(event["at"]) - origin) * 1e9), str(event["new_writer"])))
    changes.sort()
    return changes


def check_fencing(workload: Workload, history: History, meta: Mapping[int, Mapping[str, Any]],
                  events: Sequence[Mapping[str, Any]], timeline: Mapping[str, Any]) -> Verdict:
    """A deposed writer serves nothing as the writer: no acknowledged write from an instance
    invoked after a failover made another instance the writer (``stale-writer-ack``), and no
    read through the writer endpoint answered by such an instance (``stale-writer-read``:
    it can only answer from the state it had when it was deposed), until a failover makes it
    the writer again."""
    changes = writer_timeline(events, timeline)
    times = [t for t, _ in changes]
    anomalies: dict[str, list[dict[str, Any]]] = {}
    checked = 0
    for pair in history.pairs():
        if pair.process == "nemesis" or pair.outcome is not OpType.OK or pair.completion is None:
            continue
        facts = meta.get(pair.completion.index, {})
        served_by = facts.get("instance")
        write = workload.is_write(pair) if isinstance(pair.process, int) else False
        if not write and facts.get("endpoint") != "writer":
            continue
        position = bisect.bisect_right(times, pair.invoke.time_ns) - 1
        if served_by is None or position < 0:
            continue
        checked += 1
        writer = changes[position][1]
        former = {w for _, w in changes[:position]}
        following = changes[position + 1][1] if position + 1 < len(changes) else None
        # A new writer may answer before the control plane records the failover event:
        # only an instance that had been the writer, and is not the next one, is stale.
        if served_by != writer and served_by in former and served_by != following:
            anomalies.setdefault("stale-writer-ack" if write else "stale-writer-read", []).append(
                {"op": pair.to_json(), "served_by": served_by, "writer": writer,
                 "invoked_s": round(pair.invoke.time_ns / 1e9, 3)})
    return Verdict("fencing", not anomalies, anomalies,
                   counts={"writer_endpoint_ops_checked": checked,
                           "writer_changes": max(0, len(changes) - 1)})


# --- summaries and the matrix ----------------------------------------------------------------


def summary(verdict: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """The one-line JSON a run prints last."""
    operations = verdict["operations"]
    return {
        "workload": verdict["workload"], "nemesis": verdict["nemesis"],
        "valid": verdict["valid"], "operations": operations["total"],
        "ok": operations["ok"], "fail": operations["fail"], "info": operations["info"],
        "acknowledged_commits_lost": verdict["acknowledged_commits_lost"],
        "anomalies": verdict["anomaly_count"],
        "availability_writes": verdict["availability"].get("writes"),
        "availability_reads": verdict["availability"].get("reads"),
        "availability_writes_by_time": verdict["availability"].get("writes_by_time"),
        "availability_reads_by_time": verdict["availability"].get("reads_by_time"),
        "time_to_recover_s": verdict["time_to_recover_s"],
        "recovered": verdict.get("recovered"),
        "out": str(out),
    }


MATRICES: dict[str, tuple[float, tuple[tuple[str, str], ...]]] = {
    "short": (30.0, (("bank", "kill-writer"), ("list-append", "kill-storage"),
                     ("register", "pause-writer"), ("set", "az-down"),
                     ("replica-reads", "none"))),
    "long": (60.0, tuple((w, n) for w in WORKLOADS for n in NEMESES)),
}


def default_out(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"borealis-chaos-{name}-"))
