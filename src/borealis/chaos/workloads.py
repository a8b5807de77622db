"""Workloads: what each client operation is, the final reads, and how a history is judged.

Each workload owns its tables (``setup``), what one client operation is (``plan``), the final
reads made after the faults healed (``final``) and how its history is judged (``check``,
which calls the checkers of ``..checkers``). The clients that perform the operations and
record the history — sessions, outcomes, the watchdog, the recorder — are ``.clients``.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import psycopg

from borealis.chaos.checkers import Validity, Verdict, linearizable, listappend, sets
from borealis.chaos.checkers import bank as bank_checker
from borealis.chaos.clients import ClientEnvironment, Planned, Refused, Session, perform_final
from borealis.chaos.clients import Recorder as Recorder  # the nemeses import it from here
from borealis.chaos.history import History, Op, OpType, Pair

# --- judging ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkloadCheck:
    """What a workload's checkers said, and how many acknowledged commits were lost."""

    verdicts: tuple[Verdict, ...]
    acknowledged_lost: int
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.acknowledged_lost >= 0
        assert self.verdicts, "a check calls at least one checker"

    @property
    def valid(self) -> Validity:
        return combine(verdict.valid for verdict in self.verdicts)

    def anomaly_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for verdict in self.verdicts:
            for name, reports in verdict.anomalies.items():
                if reports:
                    counts[name] = counts.get(name, 0) + len(reports)
        return counts


def combine(validities: Iterable[Validity]) -> Validity:
    """False if any is false, else unknown if any is unknown, else true."""
    result: Validity = True
    for valid in validities:
        if valid is False:
            return False
        if valid == "unknown":
            result = "unknown"
    return result


def _derived(history: History, mapping: Callable[[Op], Op | None]) -> History:
    """A history with each op replaced (or dropped) by ``mapping``; indices kept, so the
    real-time order is the original one. ``mapping`` keeps pairs whole."""
    ops = [mapped for op in history if (mapped := mapping(op)) is not None]
    return History(tuple(ops))


# --- the workloads ----------------------------------------------------------------------------


class Workload:
    """The base of every workload: its name, its parameters (stored with the verdict so a
    history can be judged again) and the four steps."""

    name: ClassVar[str]
    client_minimum: ClassVar[int] = 1

    def __init__(self, clients: int, seed: int) -> None:
        assert clients >= self.client_minimum, f"{self.name} needs {self.client_minimum} clients"
        self.clients = clients
        self.seed = seed
        self._lock = threading.Lock()

    def params(self) -> dict[str, Any]:
        return {}

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        raise NotImplementedError

    def plan(self, client: int, rng: random.Random) -> Planned:
        raise NotImplementedError

    def final(self, env: ClientEnvironment) -> None:
        raise NotImplementedError

    def check(self, history: History, meta: Mapping[int, Mapping[str, Any]]) -> WorkloadCheck:
        raise NotImplementedError

    def is_write(self, pair: Pair) -> bool:
        raise NotImplementedError


class BankWorkload(Workload):
    """Transfers between accounts in one transaction, each also logged with a unique id; reads
    of every balance in one SELECT, three clients in four on the writer endpoint and the
    fourth on the reader endpoint. Checked: every read sums to the total, no balance is
    negative (bank checker); every acknowledged transfer is in the final log and no failed
    one is (set checker over the log); the final balances are those the log implies."""

    name = "bank"
    ACCOUNTS = 8
    BALANCE = 100

    def __init__(self, clients: int, seed: int) -> None:
        super().__init__(clients, seed)
        self._transfers = itertools.count(1)

    @property
    def total(self) -> int:
        return self.ACCOUNTS * self.BALANCE

    def params(self) -> dict[str, Any]:
        return {"accounts": self.ACCOUNTS, "balance": self.BALANCE}

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE bank_accounts (id int PRIMARY KEY, balance int NOT NULL)")
        conn.execute("CREATE TABLE bank_log (id text PRIMARY KEY, src int NOT NULL, "
                     "dst int NOT NULL, amount int NOT NULL)")
        with conn.transaction():
            for account in range(self.ACCOUNTS):
                conn.execute("INSERT INTO bank_accounts VALUES (%s, %s)",
                             (account, self.BALANCE))

    def _read(self, endpoint: str) -> Planned:
        def run(session: Session) -> dict[str, int]:
            rows = session.read("SELECT id, balance FROM bank_accounts")
            return {str(account): int(balance) for account, balance in rows}

        return Planned("read", None, run, endpoint=endpoint)

    def plan(self, client: int, rng: random.Random) -> Planned:
        if client % 4 == 3:
            return self._read("reader")
        if rng.random() < 0.2:
            return self._read("writer")
        with self._lock:
            transfer_id = f"t{next(self._transfers)}"
        src, dst = rng.sample(range(self.ACCOUNTS), 2)
        amount = rng.randint(1, 5)
        value = {"id": transfer_id, "from": src, "to": dst, "amount": amount}

        def run(session: Session) -> dict[str, Any]:
            session.begin()
            if not session.body_write(
                    "UPDATE bank_accounts SET balance = balance - %s "
                    "WHERE id = %s AND balance >= %s", (amount, src, amount)):
                raise Refused("insufficient-funds")
            session.body_write("UPDATE bank_accounts SET balance = balance + %s WHERE id = %s",
                               (amount, dst))
            session.body_write("INSERT INTO bank_log VALUES (%s, %s, %s, %s)",
                               (transfer_id, src, dst, amount))
            session.commit()
            return value

        return Planned("transfer", value, run, write=True)

    def final(self, env: ClientEnvironment) -> None:
        def run(session: Session) -> dict[str, Any]:
            session.begin()
            balances = session.read("SELECT id, balance FROM bank_accounts")
            logged = session.read("SELECT id, src, dst, amount FROM bank_log")
            session.commit()
            return {"balances": {str(a): int(b) for a, b in balances},
                    "log": sorted([str(t), int(s), int(d), int(m)] for t, s, d, m in logged)}

        perform_final(env, Planned("final-read", None, run))

    def is_write(self, pair: Pair) -> bool:
        return pair.f == "transfer"

    def check(self, history: History, meta: Mapping[int, Mapping[str, Any]]) -> WorkloadCheck:
        # The final read is a read of every balance to the bank checker, and a read of the
        # set of logged transfer ids to the set checker.
        def as_balances(op: Op) -> Op | None:
            if op.f != "final-read":
                return op
            value = op.value["balances"] if op.type is OpType.OK else None
            return Op(op.index, op.time_ns, op.process, op.type, "read", value)

        def as_set(op: Op) -> Op | None:
            if op.f == "transfer":
                return Op(op.index, op.time_ns, op.process, op.type, "add", op.value["id"])
            if op.f == "final-read":
                value = [t[0] for t in op.value["log"]] if op.type is OpType.OK else None
                return Op(op.index, op.time_ns, op.process, op.type, "read", value)
            return None

        money = bank_checker.check(_derived(history, as_balances), total=self.total,
                                   accounts=range(self.ACCOUNTS))
        logged = sets.check(_derived(history, as_set))
        verdicts = [money, _renamed(logged, "bank-log")]
        final = _last_ok(history, "final-read")
        if final is not None:
            verdicts.append(self._balances_match_log(final))
        return WorkloadCheck(tuple(verdicts), int(logged.counts.get("lost_count", 0)))

    def _balances_match_log(self, final: Pair) -> Verdict:
        expected = dict.fromkeys((str(a) for a in range(self.ACCOUNTS)), self.BALANCE)
        for _, src, dst, amount in final.value["log"]:
            expected[str(src)] -= amount
            expected[str(dst)] += amount
        found = final.value["balances"]
        anomalies = {} if found == expected else {"balances-disagree-with-log": [
            {"balances": found, "from_log": expected, "read": final.to_json()}]}
        return Verdict("bank-balances", not anomalies, anomalies,
                       counts={"logged_transfer_count": len(final.value["log"])})


class ListAppendWorkload(Workload):
    """Elle's list-append on the writer endpoint: transactions of 1-4 micro-ops, each an
    append of a unique value to a key's list (a text column grown with ``v || ',' || x``,
    the row created by the first append) or a read of the whole list; keys rotate so lists
    stay short. Checked with the list-append checker, real-time order included (the writer
    should be strictly serializable); lost appends are acknowledged commits lost.

    ``keys_active`` sets the contention: fewer keys, more transactions on the same rows (the
    PostgreSQL oracle runs use few keys so that write skew shows in seconds)."""

    name = "list-append"
    KEYS_ACTIVE = 8
    APPENDS_PER_KEY_MAX = 32

    def __init__(self, clients: int, seed: int, *, keys_active: int = KEYS_ACTIVE,
                 appends_per_key_max: int = APPENDS_PER_KEY_MAX) -> None:
        super().__init__(clients, seed)
        assert keys_active >= 1
        assert appends_per_key_max >= 1
        self.keys_active = keys_active
        self.appends_per_key_max = appends_per_key_max
        self._active = list(range(keys_active))
        self._next_key = keys_active
        self._appends: dict[int, int] = {}
        self._values = itertools.count(1)
        self._used: set[int] = set()

    def params(self) -> dict[str, Any]:
        return {"keys_active": self.keys_active, "appends_per_key_max": self.appends_per_key_max}

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE la_lists (k int PRIMARY KEY, v text NOT NULL)")

    def _micro_ops(self, rng: random.Random) -> list[list[Any]]:
        micro: list[list[Any]] = []
        with self._lock:
            for _ in range(rng.randint(1, 4)):
                slot = rng.randrange(len(self._active))
                key = self._active[slot]
                self._used.add(key)
                if rng.random() < 0.5:
                    micro.append(["r", key, None])
                    continue
                micro.append(["append", key, next(self._values)])
                self._appends[key] = self._appends.get(key, 0) + 1
                if self._appends[key] >= self.appends_per_key_max:
                    self._active[slot] = self._next_key
                    self._next_key += 1
        return micro

    def plan(self, client: int, rng: random.Random) -> Planned:
        micro = self._micro_ops(rng)
        writes = any(f == "append" for f, _, _ in micro)

        def run(session: Session) -> list[list[Any]]:
            session.begin()
            done: list[list[Any]] = []
            for f, key, value in micro:
                if f == "append":
                    session.body_write(
                        "INSERT INTO la_lists (k, v) VALUES (%s, %s) ON CONFLICT (k) "
                        "DO UPDATE SET v = la_lists.v || ',' || excluded.v", (key, str(value)))
                    done.append([f, key, value])
                else:
                    rows = session.read("SELECT v FROM la_lists WHERE k = %s", (key,))
                    done.append([f, key, _parse_list(rows[0][0] if rows else None)])
            session.commit()
            return done

        return Planned("txn", listappend.invocation(micro), run, write=writes)

    def final(self, env: ClientEnvironment) -> None:
        with self._lock:
            keys = sorted(self._used)

        def run(session: Session) -> list[list[Any]]:
            session.begin()
            rows = dict(session.read("SELECT k, v FROM la_lists"))
            session.commit()
            return [["r", key, _parse_list(rows.get(key))] for key in keys]

        perform_final(env, Planned("txn", [["r", key, None] for key in keys], run))

    def is_write(self, pair: Pair) -> bool:
        return any(micro[0] == "append" for micro in pair.invoke.value)

    def check(self, history: History, meta: Mapping[int, Mapping[str, Any]]) -> WorkloadCheck:
        verdict = listappend.check(history, realtime=True)
        return WorkloadCheck((verdict,), len(verdict.anomalies.get("lost-append", ())))


def _parse_list(text: str | None) -> list[int]:
    return [int(item) for item in text.split(",")] if text else []


class RegisterWorkload(Workload):
    """Single-key reads, writes and compare-and-sets (``UPDATE ... WHERE v = expected``: the
    row count says whether it happened) on the writer endpoint, over a few keys at a time
    (each retired after ``OPS_PER_KEY_MAX`` operations, so each key's search stays small).
    Checked for linearizability key by key; an acknowledged write that nothing could have
    overwritten and that the final read does not show is an acknowledged commit lost."""

    name = "register"
    KEYS_ACTIVE = 4
    OPS_PER_KEY_MAX = 80
    VALUES = 5

    def __init__(self, clients: int, seed: int) -> None:
        super().__init__(clients, seed)
        self._active = list(range(self.KEYS_ACTIVE))
        self._next_key = self.KEYS_ACTIVE
        self._ops: dict[int, int] = {}

    def params(self) -> dict[str, Any]:
        return {"keys_active": self.KEYS_ACTIVE, "ops_per_key_max": self.OPS_PER_KEY_MAX}

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE reg (k int PRIMARY KEY, v int)")

    def _key(self, rng: random.Random) -> int:
        with self._lock:
            slot = rng.randrange(len(self._active))
            key = self._active[slot]
            self._ops[key] = self._ops.get(key, 0) + 1
            if self._ops[key] >= self.OPS_PER_KEY_MAX:
                self._active[slot] = self._next_key
                self._next_key += 1
            return key

    def plan(self, client: int, rng: random.Random) -> Planned:
        key = self._key(rng)
        dice = rng.random()
        if dice < 0.4:
            return self._read(key)
        if dice < 0.7:
            value = rng.randrange(self.VALUES)

            def write(session: Session) -> list[Any]:
                session.write("INSERT INTO reg (k, v) VALUES (%s, %s) ON CONFLICT (k) "
                              "DO UPDATE SET v = excluded.v", (key, value))
                return [key, value]

            return Planned("write", [key, value], write, write=True)
        expected, new = rng.randrange(self.VALUES), rng.randrange(self.VALUES)

        def cas(session: Session) -> list[Any]:
            if not session.write("UPDATE reg SET v = %s WHERE k = %s AND v = %s",
                                 (new, key, expected)):
                raise Refused("cas-mismatch")
            return [key, [expected, new]]

        return Planned("cas", [key, [expected, new]], cas, write=True)

    @staticmethod
    def _read(key: int) -> Planned:
        def run(session: Session) -> list[Any]:
            rows = session.read("SELECT v FROM reg WHERE k = %s", (key,))
            return [key, rows[0][0] if rows else None]

        return Planned("read", [key, None], run)

    def final(self, env: ClientEnvironment) -> None:
        with self._lock:
            keys = sorted(self._ops)
        for key in keys:
            perform_final(env, self._read(key))

    def is_write(self, pair: Pair) -> bool:
        return pair.f in ("write", "cas")

    def check(self, history: History, meta: Mapping[int, Mapping[str, Any]]) -> WorkloadCheck:
        verdict = linearizable.check(history, initial=None)
        lost = _lost_last_writes(history)
        lost_verdict = Verdict("register-last-write", not lost,
                               {"lost-write": lost} if lost else {},
                               counts={"lost_write_count": len(lost)})
        return WorkloadCheck((verdict, lost_verdict), len(lost))


def _lost_last_writes(history: History) -> list[dict[str, Any]]:
    """Keys whose last write is certain — acknowledged, and every other write or cas to the
    key (not failed) completed before it was invoked — yet the final read shows another
    value: a lost acknowledged commit, said plainly (the linearizability check finds it too)."""
    writes: dict[Any, list[Pair]] = {}
    finals: dict[Any, Pair] = {}
    for pair in history.pairs(("read", "write", "cas")):
        key = pair.invoke.value[0]
        if pair.f == "read":
            if pair.process == "final" and pair.outcome is OpType.OK:
                finals[key] = pair
            continue
        if pair.outcome is not OpType.FAIL:
            writes.setdefault(key, []).append(pair)
    lost: list[dict[str, Any]] = []
    for key, final in finals.items():
        candidates = writes.get(key, [])
        if not candidates:
            continue
        last = max(candidates, key=lambda pair: pair.start_index)
        if last.outcome is not OpType.OK:
            continue
        if any(other is not last and (other.end_index is None
                                      or other.end_index > last.start_index)
               for other in candidates):
            continue
        written = last.invoke.value[1] if last.f == "write" else last.invoke.value[1][1]
        if final.value[1] != written:
            lost.append({"key": key, "write": last.to_json(), "final_read": final.to_json()})
    return lost


class SetWorkload(Workload):
    """Inserts of unique elements on the writer endpoint (and, now and then, a read of the
    whole set); a final read after healing. Checked with the set checker: every acknowledged
    insert is there, no failed one is, nothing unexpected."""

    name = "set"

    def __init__(self, clients: int, seed: int) -> None:
        super().__init__(clients, seed)
        self._elements = itertools.count(1)

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE set_elems (e int PRIMARY KEY)")

    @staticmethod
    def _read() -> Planned:
        def run(session: Session) -> list[int]:
            return sorted(int(row[0]) for row in session.read("SELECT e FROM set_elems"))

        return Planned("read", None, run)

    def plan(self, client: int, rng: random.Random) -> Planned:
        if rng.random() < 0.03:
            return self._read()
        with self._lock:
            element = next(self._elements)

        def add(session: Session) -> int:
            session.write("INSERT INTO set_elems (e) VALUES (%s)", (element,))
            return element

        return Planned("add", element, add, write=True)

    def final(self, env: ClientEnvironment) -> None:
        perform_final(env, self._read())

    def is_write(self, pair: Pair) -> bool:
        return pair.f == "add"

    def check(self, history: History, meta: Mapping[int, Mapping[str, Any]]) -> WorkloadCheck:
        verdict = sets.check(history)
        return WorkloadCheck((verdict,), int(verdict.counts.get("lost_count", 0)))


class ReplicaReadsWorkload(Workload):
    """Writes through the writer endpoint, reads through the reader endpoint.

    A write increments one of a few counters and appends a row to a log in the same
    transaction, the row numbered ``max(seq) + 1``: the log is the writer's commit order, and
    the counters are a function of its prefix. A read takes, in one read-only transaction,
    the last log row and every counter. Checked (``check_replica_reads``): each read is a
    committed prefix of the final log (its counters are those of the prefix ending at the
    row it saw — no torn or forked snapshot); it never shows data that the final log does
    not hold (data that later disappeared); within one session (one connection, one
    instance) reads never go back; every acknowledged write is in the final log, where it
    said it was, and no failed write is."""

    name = "replica-reads"
    client_minimum = 2
    KEYS = 4

    def __init__(self, clients: int, seed: int) -> None:
        super().__init__(clients, seed)
        self._writes = itertools.count(1)

    def params(self) -> dict[str, Any]:
        return {"keys": self.KEYS}

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE rr_counters (k int PRIMARY KEY, n int NOT NULL)")
        conn.execute("CREATE TABLE rr_log (seq int PRIMARY KEY, k int NOT NULL, "
                     "n int NOT NULL, wid text NOT NULL)")
        with conn.transaction():
            for key in range(self.KEYS):
                conn.execute("INSERT INTO rr_counters VALUES (%s, 0)", (key,))

    def plan(self, client: int, rng: random.Random) -> Planned:
        if client % 2 == 1:
            return self._read("reader")
        with self._lock:
            write_id = f"w{next(self._writes)}"
        key = rng.randrange(self.KEYS)

        def run(session: Session) -> dict[str, Any]:
            session.begin()
            session.body_write("UPDATE rr_counters SET n = n + 1 WHERE k = %s", (key,))
            count = int(session.read("SELECT n FROM rr_counters WHERE k = %s", (key,))[0][0])
            seq = int(session.read("SELECT coalesce(max(seq), 0) + 1 FROM rr_log")[0][0])
            session.body_write("INSERT INTO rr_log VALUES (%s, %s, %s, %s)",
                               (seq, key, count, write_id))
            session.commit()
            return {"id": write_id, "k": key, "n": count, "seq": seq}

        return Planned("write", {"id": write_id, "k": key}, run, write=True)

    def _read(self, endpoint: str) -> Planned:
        def run(session: Session) -> dict[str, Any]:
            session.begin()
            last = session.read("SELECT seq, k, n, wid FROM rr_log ORDER BY seq DESC LIMIT 1")
            counters = session.read("SELECT k, n FROM rr_counters")
            session.commit()
            return {"seq": int(last[0][0]) if last else 0,
                    "last": [int(last[0][0]), int(last[0][1]), int(last[0][2]),
                             str(last[0][3])] if last else None,
                    "counters": {str(k): int(n) for k, n in counters},
                    "instance": session.instance, "session": session.number}

        return Planned("read", None, run, endpoint=endpoint)

    def final(self, env: ClientEnvironment) -> None:
        def run(session: Session) -> dict[str, Any]:
            session.begin()
            rows = session.read("SELECT seq, k, n, wid FROM rr_log ORDER BY seq")
            counters = session.read("SELECT k, n FROM rr_counters")
            session.commit()
            return {"log": [[int(s), int(k), int(n), str(w)] for s, k, n, w in rows],
                    "counters": {str(k): int(n) for k, n in counters}}

        perform_final(env, Planned("final-read", None, run))

    def is_write(self, pair: Pair) -> bool:
        return pair.f == "write"

    def check(self, history: History, meta: Mapping[int, Mapping[str, Any]]) -> WorkloadCheck:
        verdict = check_replica_reads(history, keys=self.KEYS)
        return WorkloadCheck((verdict,), int(verdict.counts.get("lost_write_count", 0)))


def check_replica_reads(history: History, *, keys: int) -> Verdict:
    """The replica-reads check (see ``ReplicaReadsWorkload``); "unknown" without a final read."""
    final = _last_ok(history, "final-read")
    writes = history.pairs(("write",))
    reads = [pair for pair in history.pairs(("read",)) if pair.outcome is OpType.OK]
    counts: dict[str, int] = {
        "write_ok_count": sum(1 for w in writes if w.outcome is OpType.OK),
        "read_ok_count": len(reads),
    }
    if final is None:
        return Verdict("replica-reads", "unknown", counts=counts)
    anomalies: dict[str, list[dict[str, Any]]] = {}

    def add(name: str, report: dict[str, Any]) -> None:
        anomalies.setdefault(name, []).append(report)

    log_rows = [tuple(row) for row in final.value["log"]]
    by_seq = {row[0]: row for row in log_rows}
    by_id = {row[3]: row for row in log_rows}
    # The final log itself: seqs 1..M without a gap, each key's n counting 1, 2, 3...
    prefix_counters: list[dict[str, int]] = [dict.fromkeys(map(str, range(keys)), 0)]
    for position, (seq, key, count, _) in enumerate(log_rows, start=1):
        now = dict(prefix_counters[-1])
        if seq != position or count != now.get(str(key), 0) + 1:
            add("log-inconsistent", {"row": list(log_rows[position - 1]), "position": position,
                                     "counter_before": now.get(str(key))})
        now[str(key)] = count
        prefix_counters.append(now)
    if final.value["counters"] != prefix_counters[-1]:
        add("log-inconsistent", {"counters": final.value["counters"],
                                 "from_log": prefix_counters[-1]})
    if len(by_id) != len(log_rows):
        add("duplicate-write", {"rows": len(log_rows), "distinct_ids": len(by_id)})
    lost = 0
    for write in writes:
        row = by_id.get(write.invoke.value["id"])
        if write.outcome is OpType.OK:
            got = write.completion.value if write.completion is not None else None
            assert got is not None
            if row is None or list(row) != [got["seq"], got["k"], got["n"], got["id"]]:
                lost += 1
                add("lost-write", {"write": write.to_json(),
                                   "final_row": None if row is None else list(row)})
        elif write.outcome is OpType.FAIL and row is not None:
            add("failed-write-present", {"write": write.to_json(), "final_row": list(row)})
    # How far behind reads are: the newest row acknowledged before each read was invoked.
    acked = sorted((w.end_index, w.value["seq"]) for w in writes
                   if w.outcome is OpType.OK and w.end_index is not None)
    acked_ends = [end for end, _ in acked]
    acked_seq_max = list(itertools.accumulate((seq for _, seq in acked), max))
    behind_max = 0
    last_seen: dict[tuple[Any, Any], tuple[int, Pair]] = {}
    for read in sorted(reads, key=lambda pair: pair.index):
        seen = read.value["seq"]
        if read.process == "final":
            continue
        row = by_seq.get(seen)
        if seen > len(log_rows) or (seen and (row is None or list(row) != read.value["last"])):
            add("read-of-lost-data", {"read": read.to_json(),
                                      "final_row": None if row is None else list(row)})
        elif read.value["counters"] != prefix_counters[seen]:
            add("non-prefix-read", {"read": read.to_json(), "prefix": prefix_counters[seen]})
        session = (read.process, read.value["session"])
        previous = last_seen.get(session)
        if previous is not None and seen < previous[0]:
            add("non-monotonic-read", {"read": read.to_json(), "before": previous[1].to_json()})
        last_seen[session] = (seen, read)
        before = bisect.bisect_left(acked_ends, read.start_index)
        if before:
            behind_max = max(behind_max, acked_seq_max[before - 1] - seen)
    counts.update(lost_write_count=lost, final_log_rows=len(log_rows),
                  read_behind_acked_rows_max=behind_max)
    return Verdict("replica-reads", not anomalies, anomalies, counts=counts)


def _last_ok(history: History, f: str) -> Pair | None:
    done = [pair for pair in history.pairs((f,)) if pair.outcome is OpType.OK]
    return max(done, key=lambda pair: pair.end_index or 0) if done else None


def _renamed(verdict: Verdict, checker: str) -> Verdict:
    return Verdict(checker, verdict.valid, verdict.anomalies, verdict.counts, verdict.details)


WORKLOADS: dict[str, type[Workload]] = {
    cls.name: cls for cls in (BankWorkload, ListAppendWorkload, RegisterWorkload, SetWorkload,
                              ReplicaReadsWorkload)
}
