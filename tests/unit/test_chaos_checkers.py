"""The chaos suite's history model and checkers, on histories with known anomalies.

Each anomaly test is a hand-written history that exhibits exactly the anomaly it names
(Adya 1999 for G0..G2-item; Kingsbury & Alvaro, Elle, VLDB 2020 for the list-append
inference), so each can fail if the checker misses or misnames it. Property tests compare
the list-append checker with a serial reference model: a serial execution is always valid,
and one read permuted is always caught.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from borealis.chaos.checkers import Verdict, bank, linearizable, listappend, sets
from borealis.chaos.checkers.listappend import invocation
from borealis.chaos.history import (
    History,
    HistoryBuilder,
    HistoryError,
    Op,
    OpType,
    load,
    read_jsonl,
    save,
    write_jsonl,
)

# --- helpers -------------------------------------------------------------------------------


def begin(b: HistoryBuilder, process: int, micro_ops: list[list[Any]]) -> None:
    b.invoke(process, "txn", invocation(micro_ops))


def txn(b: HistoryBuilder, process: int, micro_ops: list[list[Any]],
        outcome: OpType = OpType.OK) -> None:
    """A transaction that overlaps nothing: invoked and completed at once."""
    begin(b, process, micro_ops)
    if outcome is OpType.OK:
        b.ok(process, micro_ops)
    else:
        b.complete(process, outcome)


def elle(b: HistoryBuilder, *, realtime: bool = False) -> Verdict:
    verdict = listappend.check(b.history(), realtime=realtime)
    json.dumps(verdict.to_dict())  # every verdict is JSON
    return verdict


def cycle_kinds(verdict: Verdict, name: str) -> list[str]:
    return [step["kind"] for step in verdict.anomalies[name][0]["cycle"]]


def cycle_txns(verdict: Verdict, name: str) -> set[int]:
    return {t["index"] for t in verdict.anomalies[name][0]["transactions"]}


# --- the history model ---------------------------------------------------------------------


def test_pairs_match_invocations_with_completions_per_process() -> None:
    b = HistoryBuilder()
    b.invoke(1, "write", ["a", 1])
    b.invoke(2, "read", ["a", None])
    b.ok(2, ["a", None])
    b.info(1)
    b.invoke(3, "write", ["a", 2])  # never completes: counts as info
    pairs = b.history().pairs()
    assert [(p.index, p.outcome) for p in pairs] == [
        (0, OpType.INFO), (1, OpType.OK), (4, OpType.INFO)
    ]
    assert pairs[0].end_index is None  # info never completes
    assert pairs[1].end_index == 2
    assert pairs[2].completion is None
    assert pairs[0].value == ["a", 1]


def test_pairing_refuses_a_malformed_history() -> None:
    write = Op(0, 0, 1, OpType.INVOKE, "write", 1)
    with pytest.raises(HistoryError, match="invoked again"):
        History((write, Op(1, 1, 1, OpType.INVOKE, "write", 2))).pairs()
    with pytest.raises(HistoryError, match="completed nothing"):
        History((Op(0, 0, 1, OpType.OK, "write", 1),)).pairs()
    with pytest.raises(HistoryError, match="completes 'read'"):
        History((write, Op(1, 1, 1, OpType.OK, "read", 1))).pairs()
    with pytest.raises(HistoryError, match="does not follow"):
        History((Op(1, 0, 1, OpType.INVOKE, "w"), Op(0, 1, 2, OpType.INVOKE, "w")))
    with pytest.raises(HistoryError, match="clock went back"):
        History((Op(0, 5, 1, OpType.INVOKE, "w"), Op(1, 4, 2, OpType.INVOKE, "w")))
    with pytest.raises(HistoryError):
        Op(-1, 0, 1, OpType.INVOKE, "w")


def test_jsonl_round_trip(tmp_path: Any) -> None:
    b = HistoryBuilder()
    txn(b, 1, [["append", "x", 1], ["r", "x", [1]]])
    b.invoke("nemesis", "kill", "writer")
    b.info("nemesis")
    history = b.history()
    stream = io.StringIO()
    write_jsonl(history, stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert json.loads(lines[0])["type"] == "invoke"
    assert read_jsonl(io.StringIO(stream.getvalue())) == history
    save(history, tmp_path / "history.jsonl")
    assert load(tmp_path / "history.jsonl") == history
    # Jepsen's name for the clock field is read too.
    jepsen = '{"index": 0, "time": 7, "process": 0, "type": "invoke", "f": "read"}\n'
    assert read_jsonl(io.StringIO(jepsen)).ops[0].time_ns == 7
    with pytest.raises(HistoryError, match="line 1"):
        read_jsonl(io.StringIO("{not json\n"))


def test_a_verdict_names_anomalies_exactly_when_invalid() -> None:
    with pytest.raises(ValueError):
        Verdict("x", False)
    with pytest.raises(ValueError):
        Verdict("x", True, anomalies={"G0": [{"cycle": []}]})
    with pytest.raises(ValueError):
        Verdict("x", "unknown", anomalies={"G0": [{"cycle": []}]})
    out = Verdict("x", False, anomalies={"G0": [{}], "G1a": []}, counts={"n": 1}).to_dict()
    assert out == {"valid": False, "checker": "x", "anomaly_types": ["G0"],
                   "anomalies": {"G0": [{}]}, "n": 1}


# --- linearizability -----------------------------------------------------------------------


def lin(b: HistoryBuilder, **options: Any) -> Verdict:
    verdict = linearizable.check(b.history(), **options)
    json.dumps(verdict.to_dict())
    return verdict


def test_a_linearizable_register_history_passes() -> None:
    b = HistoryBuilder()
    b.call(1, "read", ["a", None], ["a", None])
    b.call(1, "write", ["a", 1])
    b.call(2, "read", ["a", None], ["a", 1])
    b.call(2, "cas", ["a", [1, 2]])
    b.call(1, "read", ["a", None], ["a", 2])
    b.call(1, "cas", ["a", [1, 3]], outcome=OpType.FAIL)  # refused: the register held 2
    b.call(1, "read", ["a", None], ["a", 2])
    verdict = lin(b)
    assert verdict.valid is True
    assert verdict.counts["key_count"] == 1


def test_a_stale_read_is_not_linearizable() -> None:
    b = HistoryBuilder()
    b.call(1, "write", ["a", 1])
    b.call(1, "write", ["a", 2])
    stale = b.call(2, "read", ["a", None], ["a", 1])
    verdict = lin(b)
    assert verdict.valid is False
    [report] = verdict.anomalies["nonlinearizable"]
    assert report["key"] == "a"
    assert report["state"] == 2
    assert [op["index"] for op in report["cannot_linearize"]] == [stale.index - 1]
    assert [op["index"] for op in report["linearized_tail"]] == [0, 2]


def test_only_the_bad_key_is_reported() -> None:
    b = HistoryBuilder()
    b.call(1, "write", ["a", 1])
    b.call(1, "write", ["b", 1])
    b.call(1, "write", ["b", 2])
    b.call(2, "read", ["a", None], ["a", 1])
    b.call(2, "read", ["b", None], ["b", 1])
    verdict = lin(b)
    assert [r["key"] for r in verdict.anomalies["nonlinearizable"]] == ["b"]


@pytest.mark.parametrize("seen", [1, 2])
def test_concurrent_writes_may_take_effect_in_either_order(seen: int) -> None:
    b = HistoryBuilder()
    b.invoke(1, "write", ["a", 1])
    b.invoke(2, "write", ["a", 2])
    b.ok(1)
    b.ok(2)
    b.call(3, "read", ["a", None], ["a", seen])
    b.call(3, "read", ["a", None], ["a", seen])
    assert lin(b).valid is True


def test_concurrent_writes_take_effect_once_each() -> None:
    b = HistoryBuilder()
    b.invoke(1, "write", ["a", 1])
    b.invoke(2, "write", ["a", 2])
    b.ok(1)
    b.ok(2)
    b.call(3, "read", ["a", None], ["a", 2])
    b.call(3, "read", ["a", None], ["a", 1])  # 1 cannot come back after 2 was seen
    assert lin(b).valid is False


def test_an_info_write_may_take_effect_later_or_never() -> None:
    b = HistoryBuilder()
    b.invoke(1, "write", ["a", 1])
    b.info(1)
    b.call(2, "read", ["a", None], ["a", None])
    b.call(2, "read", ["a", None], ["a", 1])
    b.invoke(3, "write", ["b", 1])
    b.info(3)
    b.call(2, "read", ["b", None], ["b", None])  # never took effect: also fine
    assert lin(b).valid is True


def test_an_info_cas_that_could_never_apply_did_not_happen() -> None:
    b = HistoryBuilder()
    b.call(1, "write", ["a", 1])
    b.invoke(2, "cas", ["a", [5, 6]])  # the register never holds 5
    b.info(2)
    b.call(1, "read", ["a", None], ["a", 1])
    assert lin(b).valid is True


def test_an_info_write_takes_effect_at_most_once() -> None:
    b = HistoryBuilder()
    b.invoke(1, "write", ["a", 1])
    b.info(1)
    b.call(2, "read", ["a", None], ["a", 1])
    b.call(2, "read", ["a", None], ["a", None])
    assert lin(b).valid is False


def test_a_failed_write_did_not_take_effect() -> None:
    b = HistoryBuilder()
    b.call(1, "write", ["a", 1], outcome=OpType.FAIL)
    b.call(2, "read", ["a", None], ["a", 1])
    assert lin(b).valid is False


def test_a_cas_on_a_stale_value_is_not_linearizable() -> None:
    b = HistoryBuilder()
    b.call(1, "write", ["a", 1])
    b.call(1, "write", ["a", 2])
    cas = b.call(2, "cas", ["a", [1, 3]])
    verdict = lin(b)
    assert verdict.valid is False
    [report] = verdict.anomalies["nonlinearizable"]
    assert [op["index"] for op in report["cannot_linearize"]] == [cas.index - 1]


def test_a_search_over_budget_is_unknown_not_a_hang() -> None:
    b = HistoryBuilder()
    for process in range(16):
        b.invoke(process, "write", ["a", process])
    for process in range(16):
        b.info(process)
    b.call(99, "read", ["a", None], ["a", "never written"])
    verdict = lin(b, states_max=1_000)
    assert verdict.valid == "unknown"
    assert verdict.to_dict()["unknown_keys"] == ["a"]
    # An invalid key still makes the verdict invalid, whatever the other keys say.
    b.call(1, "write", ["b", 1], outcome=OpType.FAIL)
    b.call(2, "read", ["b", None], ["b", 1])
    assert lin(b, states_max=1_000).valid is False


# --- list-append (Elle) --------------------------------------------------------------------


def test_a_serializable_history_passes() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["append", "x", 1], ["r", "y", []]])
    begin(b, 2, [["append", "y", 1], ["r", "x", None]])
    b.ok(1, [["append", "x", 1], ["r", "y", []]])
    b.ok(2, [["append", "y", 1], ["r", "x", [1]]])
    txn(b, 3, [["r", "x", [1]], ["append", "x", 2], ["r", "x", [1, 2]]])
    txn(b, 1, [["append", "z", 1]], OpType.FAIL)
    txn(b, 2, [["r", "x", [1, 2]], ["r", "y", [1]], ["r", "z", []]])
    verdict = elle(b, realtime=True)
    assert verdict.valid is True, verdict.to_dict()
    assert verdict.counts["ww_edge_count"] == 1
    assert verdict.counts["wr_edge_count"] >= 3
    assert verdict.counts["rw_edge_count"] == 2  # T1 -> T2 on y, T2 -> T3 on x


def test_a_read_only_run_passes() -> None:
    b = HistoryBuilder()
    for process in range(4):
        txn(b, process, [["r", "x", []], ["r", "y", []]])
    verdict = elle(b, realtime=True)
    assert verdict.valid is True
    assert verdict.counts["read_count"] == 8


def test_g0_write_cycle() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["append", "x", 1], ["append", "y", 1]])
    begin(b, 2, [["append", "x", 2], ["append", "y", 2]])
    b.ok(1)
    b.ok(2)
    txn(b, 3, [["r", "x", [1, 2]], ["r", "y", [2, 1]]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["G0"]
    assert cycle_kinds(verdict, "G0") == ["ww", "ww"]
    assert cycle_txns(verdict, "G0") == {0, 1}


def test_g1a_aborted_read() -> None:
    b = HistoryBuilder()
    txn(b, 1, [["append", "x", 1]], OpType.FAIL)
    txn(b, 2, [["r", "x", [1]]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["G1a"]
    [report] = verdict.anomalies["G1a"]
    assert (report["writer"]["index"], report["reader"]["index"], report["value"]) == (0, 2, 1)


def test_g1b_intermediate_read() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["append", "x", 1], ["append", "x", 2]])
    txn(b, 2, [["r", "x", [1]]])
    b.ok(1)
    txn(b, 2, [["r", "x", [1, 2]]])
    verdict = elle(b)
    assert "G1b" in verdict.anomaly_types
    [report] = verdict.anomalies["G1b"]
    assert (report["value"], report["final_value"]) == (1, 2)


def test_g1c_circular_information_flow() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["append", "x", 1], ["r", "y", None]])
    begin(b, 2, [["append", "y", 1], ["r", "x", None]])
    b.ok(1, [["append", "x", 1], ["r", "y", [1]]])
    b.ok(2, [["append", "y", 1], ["r", "x", [1]]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["G1c"]
    assert cycle_kinds(verdict, "G1c") == ["wr", "wr"]


def test_g_single_read_skew() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["r", "x", None], ["r", "y", None]])
    txn(b, 2, [["append", "x", 1], ["append", "y", 1]])
    b.ok(1, [["r", "x", []], ["r", "y", [1]]])
    txn(b, 3, [["r", "x", [1]]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["G-single"]
    assert sorted(cycle_kinds(verdict, "G-single")) == ["rw", "wr"]


def test_g2_item_anti_dependency_cycle() -> None:
    b = HistoryBuilder()
    t1 = [["r", "x", []], ["append", "y", 1]]
    t2 = [["r", "y", []], ["append", "z", 1]]
    t3 = [["r", "z", []], ["append", "x", 1]]
    for process, micro_ops in enumerate((t1, t2, t3)):
        begin(b, process, micro_ops)
    for process, micro_ops in enumerate((t1, t2, t3)):
        b.ok(process, micro_ops)
    txn(b, 9, [["r", "x", [1]], ["r", "y", [1]], ["r", "z", [1]]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["G2-item"]
    assert cycle_kinds(verdict, "G2-item") == ["rw", "rw", "rw"]


def test_write_skew_is_g2_item() -> None:
    # The classic write skew that snapshot isolation (PostgreSQL REPEATABLE READ) allows.
    b = HistoryBuilder()
    t1 = [["r", "x", []], ["r", "y", []], ["append", "x", 1]]
    t2 = [["r", "x", []], ["r", "y", []], ["append", "y", 1]]
    begin(b, 1, t1)
    begin(b, 2, t2)
    b.ok(1, t1)
    b.ok(2, t2)
    txn(b, 3, [["r", "x", [1]], ["r", "y", [1]]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["G2-item"]
    assert cycle_kinds(verdict, "G2-item") == ["rw", "rw"]
    assert cycle_txns(verdict, "G2-item") == {0, 1}


def test_an_observed_info_transaction_counts_as_committed() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["append", "x", 1], ["r", "y", None]])
    begin(b, 2, [["append", "y", 1], ["r", "x", None]])
    b.info(1)
    b.ok(2, [["append", "y", 1], ["r", "x", [1]]])
    txn(b, 3, [["r", "x", [1]], ["r", "y", [1]]])
    verdict = elle(b)
    assert verdict.valid is True
    assert verdict.counts["info_committed_count"] == 1
    # Its appends order it: here they close a write cycle with T2.
    b2 = HistoryBuilder()
    begin(b2, 1, [["append", "x", 1], ["append", "y", 1]])
    txn(b2, 2, [["append", "x", 2], ["append", "y", 2]])
    b2.info(1)
    txn(b2, 3, [["r", "x", [1, 2]], ["r", "y", [2, 1]]])
    assert elle(b2).anomaly_types == ["G0"]


def test_lost_append() -> None:
    b = HistoryBuilder()
    txn(b, 1, [["append", "x", 1]])
    txn(b, 2, [["r", "x", []]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["lost-append"]
    [report] = verdict.anomalies["lost-append"]
    assert (report["key"], report["value"], report["later_read_count"]) == ("x", 1, 1)


def test_an_append_concurrent_with_every_read_is_not_lost() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["append", "x", 1]])
    txn(b, 2, [["r", "x", []]])
    b.ok(1)
    assert elle(b).valid is True


def test_duplicated_append() -> None:
    b = HistoryBuilder()
    txn(b, 1, [["append", "x", 1]])
    txn(b, 2, [["r", "x", [1, 1]]])
    verdict = elle(b)
    assert verdict.anomaly_types == ["duplicate-append"]
    assert verdict.anomalies["duplicate-append"][0]["values"] == [1]


def test_incompatible_order() -> None:
    b = HistoryBuilder()
    begin(b, 1, [["append", "x", 1]])
    begin(b, 2, [["append", "x", 2]])
    b.ok(1)
    b.ok(2)
    txn(b, 3, [["r", "x", [1, 2]]])
    txn(b, 4, [["r", "x", [2, 1]]])
    verdict = elle(b)
    assert "incompatible-order" in verdict.anomaly_types
    report = verdict.anomalies["incompatible-order"][0]
    assert (report["read"], report["longest_read"]) == ([2, 1], [1, 2])


def test_internal_inconsistency() -> None:
    b = HistoryBuilder()
    txn(b, 1, [["append", "x", 1], ["r", "x", []]])
    verdict = elle(b)
    assert "internal" in verdict.anomaly_types
    assert verdict.anomalies["internal"][0]["own_appends"] == [1]
    b2 = HistoryBuilder()
    txn(b2, 1, [["append", "x", 1]])
    txn(b2, 2, [["r", "x", [1]], ["append", "x", 2], ["r", "x", [1]]])
    assert "internal" in elle(b2).anomaly_types
    b3 = HistoryBuilder()  # a read showing an append the transaction makes only later
    txn(b3, 1, [["r", "x", [1]], ["append", "x", 1]])
    assert "internal" in elle(b3).anomaly_types


def test_a_value_never_appended_is_unexpected() -> None:
    b = HistoryBuilder()
    txn(b, 1, [["r", "x", [42]]])
    assert elle(b).anomaly_types == ["unexpected-value"]


def test_a_stale_read_is_g_single_realtime_only_under_realtime() -> None:
    b = HistoryBuilder()
    txn(b, 1, [["append", "x", 1]])
    txn(b, 2, [["r", "x", []]])  # began after T1 completed, yet missed its append
    txn(b, 3, [["r", "x", [1]]])
    assert elle(b).valid is True  # serializable: T2 can be ordered before T1
    verdict = elle(b, realtime=True)
    assert verdict.anomaly_types == ["G-single-realtime"]
    assert sorted(cycle_kinds(verdict, "G-single-realtime")) == ["rt", "rw"]
    assert verdict.counts["rt_edge_count"] == 2  # transitively reduced: T1->T2->T3


def test_unique_values_are_required() -> None:
    b = HistoryBuilder()
    txn(b, 1, [["append", "x", 1]])
    txn(b, 2, [["append", "x", 1]])
    with pytest.raises(HistoryError, match="unique"):
        elle(b)


# --- list-append against a serial reference model ------------------------------------------

OUTCOMES = ("ok", "ok", "ok", "fail", "info-applied", "info-lost")

serial_specs = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from(["append", "r"]), st.integers(0, 2)),
                 min_size=1, max_size=5),
        st.sampled_from(OUTCOMES),
    ),
    min_size=1,
    max_size=14,
)


def serial_run(specs: list[tuple[list[tuple[str, int]], str]]) -> tuple[
        list[tuple[int, list[list[Any]], str]], dict[tuple[int, int], str]]:
    """Transactions applied one at a time to a model: (process, micro-ops, outcome), and
    the outcome of each append's writer."""
    state: dict[int, list[int]] = {0: [], 1: [], 2: []}
    counter = 0
    run: list[tuple[int, list[list[Any]], str]] = []
    writer_outcome: dict[tuple[int, int], str] = {}
    for number, (spec, outcome) in enumerate(specs):
        local = {key: list(values) for key, values in state.items()}
        micro_ops: list[list[Any]] = []
        for f, key in spec:
            if f == "append":
                counter += 1
                local[key].append(counter)
                micro_ops.append(["append", key, counter])
                writer_outcome[(key, counter)] = outcome
            else:
                micro_ops.append(["r", key, list(local[key])])
        if outcome in ("ok", "info-applied"):
            state = local
        run.append((number % 3, micro_ops, outcome))
    return run, writer_outcome


def build(run: list[tuple[int, list[list[Any]], str]]) -> History:
    b = HistoryBuilder()
    for process, micro_ops, outcome in run:
        kind = {"ok": OpType.OK, "fail": OpType.FAIL}.get(outcome, OpType.INFO)
        txn(b, process, micro_ops, kind)
    return b.history()


@settings(max_examples=150, deadline=None)
@given(serial_specs)
def test_a_serial_execution_is_always_valid(specs: Any) -> None:
    run, _ = serial_run(specs)
    for realtime in (False, True):
        verdict = listappend.check(build(run), realtime=realtime)
        assert verdict.valid is True, verdict.to_dict()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(serial_specs, st.data())
def test_one_permuted_read_is_always_caught(specs: Any, data: st.DataObject) -> None:
    # Swapping two values of a read whose writers both committed (ok) contradicts either
    # another read, a transaction's own appends, or the real-time order of the writers:
    # in a serial run the earlier value's writer completed before the later one's began.
    run, writer_outcome = serial_run(specs)
    candidates = [
        (number, position)
        for number, (_, micro_ops, outcome) in enumerate(run)
        if outcome == "ok"
        for position, (f, key, values) in enumerate(micro_ops)
        if f == "r" and sum(writer_outcome[(key, v)] == "ok" for v in values) >= 2
    ]
    assume(candidates)
    number, position = data.draw(st.sampled_from(candidates))
    _, key, values = run[number][1][position]
    committed = [i for i, v in enumerate(values) if writer_outcome[(key, v)] == "ok"]
    first, second = sorted(data.draw(st.lists(st.sampled_from(committed), min_size=2,
                                              max_size=2, unique=True)))
    swapped = list(values)
    swapped[first], swapped[second] = swapped[second], swapped[first]
    run[number][1][position] = ["r", key, swapped]
    verdict = listappend.check(build(run), realtime=True)
    assert verdict.valid is False


def snapshot_isolation_run(seed: int, txn_count: int, *, clients: int = 5) -> History:
    """A store with snapshot isolation, as PostgreSQL's REPEATABLE READ: each transaction
    reads the snapshot taken when it was invoked, plus its own appends, and commits unless a
    transaction that committed meanwhile appended to a key it appends to (first committer
    wins). Some commits end info, applied or not."""
    rng = random.Random(seed)
    b = HistoryBuilder()
    committed: dict[int, list[tuple[int, int]]] = {key: [] for key in range(3)}  # (seq, v)
    sequence = counter = started = 0
    running: dict[int, tuple[int, list[list[Any]]]] = {}
    while started < txn_count or running:
        client = rng.randrange(clients)
        if client not in running:
            if started == txn_count:
                continue
            micro_ops: list[list[Any]] = []
            for _ in range(rng.randint(1, 4)):
                key = rng.randrange(3)
                if rng.random() < 0.5:
                    counter += 1
                    micro_ops.append(["append", key, counter])
                else:
                    micro_ops.append(["r", key, None])
            b.invoke(client, "txn", micro_ops)
            running[client] = (sequence, micro_ops)
            started += 1
            continue
        snapshot, micro_ops = running.pop(client)
        local = {k: [v for s, v in versions if s <= snapshot] for k, versions in committed.items()}
        result: list[list[Any]] = []
        for f, key, value in micro_ops:
            if f == "append":
                local[key].append(value)
                result.append([f, key, value])
            else:
                result.append([f, key, list(local[key])])
        written = {key for f, key, _ in micro_ops if f == "append"}
        if any(s > snapshot for key in written for s, _ in committed[key]):
            b.fail(client)
            continue
        unknown = rng.random() < 0.1
        if not unknown or rng.random() < 0.5:
            sequence += 1
            for f, key, value in micro_ops:
                if f == "append":
                    committed[key].append((sequence, value))
        if unknown:
            b.info(client)
        else:
            b.ok(client, result)
    return b.history()


def test_snapshot_isolation_shows_write_skew_and_nothing_stronger() -> None:
    # What the PostgreSQL 15 oracle run expects of REPEATABLE READ: G2-item, never G0, G1
    # or G-single (Adya 1999 §4.3; Berenson et al. 1995: SI forbids all but write skew).
    found: set[str] = set()
    for seed in range(3):
        verdict = listappend.check(snapshot_isolation_run(seed, 300), realtime=True)
        found |= set(verdict.anomaly_types)
        assert verdict.counts["info_committed_count"] > 0
    assert found and found <= {"G2-item", "G2-item-realtime"}, found
    assert "G2-item" in found


# --- bank ----------------------------------------------------------------------------------


def bank_history(*reads: dict[str, int]) -> History:
    b = HistoryBuilder()
    b.call(1, "transfer", {"from": "a", "to": "b", "amount": 5})
    b.call(2, "transfer", {"from": "b", "to": "a", "amount": 50}, outcome=OpType.FAIL)
    b.invoke(3, "transfer", {"from": "a", "to": "b", "amount": 1})
    b.info(3)
    for read in reads:
        b.call(4, "read", None, read)
    b.call(4, "read", None, outcome=OpType.FAIL)
    return b.history()


def test_bank_reads_that_sum_to_the_total_pass() -> None:
    verdict = bank.check(bank_history({"a": 5, "b": 15}, {"a": 4, "b": 16}), total=20,
                         accounts=["a", "b"])
    assert verdict.valid is True
    assert verdict.counts["read_count"] == 2
    assert (verdict.counts["transfer_ok_count"], verdict.counts["transfer_fail_count"],
            verdict.counts["transfer_info_count"]) == (1, 1, 1)


def test_bank_read_with_the_wrong_total_fails() -> None:
    history = bank_history({"a": 5, "b": 15}, {"a": 5, "b": 16})
    verdict = bank.check(history, total=20)
    assert verdict.anomaly_types == ["wrong-total"]
    [report] = verdict.anomalies["wrong-total"]
    assert (report["sum"], report["read"]["value"]) == (21, {"a": 5, "b": 16})
    assert verdict.counts["bad_read_count"] == 1


def test_bank_negative_balance_fails_unless_allowed() -> None:
    history = bank_history({"a": -5, "b": 25})
    assert bank.check(history, total=20).anomaly_types == ["negative-balance"]
    assert bank.check(history, total=20, negative_allowed=True).valid is True


def test_bank_read_missing_an_account_fails() -> None:
    history = bank_history({"a": 20})
    verdict = bank.check(history, total=20, accounts=["a", "b"])
    assert verdict.anomaly_types == ["wrong-accounts"]
    assert verdict.anomalies["wrong-accounts"][0]["missing"] == ["b"]
    assert bank.check(bank_history(), total=20).valid == "unknown"


# --- set -----------------------------------------------------------------------------------


def set_history(final: list[int], *, early_read: list[int] | None = None) -> History:
    b = HistoryBuilder()
    for element in (1, 2, 3):
        b.call(1, "add", element)
    b.call(1, "add", 4, outcome=OpType.INFO)
    b.call(1, "add", 5, outcome=OpType.INFO)
    b.call(1, "add", 6, outcome=OpType.FAIL)
    if early_read is not None:
        b.call(3, "read", None, early_read)
    b.invoke(2, "add", 7)        # still running when the final read begins
    b.call(3, "read", None, final)
    b.ok(2)
    return b.history()


def test_set_with_every_acknowledged_add_passes() -> None:
    verdict = sets.check(set_history([1, 2, 3, 5]))
    assert verdict.valid is True
    assert verdict.counts["recovered_count"] == 1          # info add 5 made it
    assert verdict.counts["concurrent_missing_count"] == 1  # add 7 overlapped the read
    assert verdict.counts["lost_count"] == 0


def test_set_lost_add_fails() -> None:
    verdict = sets.check(set_history([1, 3]))
    assert verdict.anomaly_types == ["lost"]
    assert verdict.anomalies["lost"][0]["element"] == 2
    assert verdict.counts["lost_count"] == 1


def test_set_unexpected_and_failed_elements_fail() -> None:
    verdict = sets.check(set_history([1, 2, 3], early_read=[1, 99]))
    assert verdict.anomaly_types == ["unexpected"]
    assert verdict.counts["unexpected_count"] == 1
    verdict = sets.check(set_history([1, 2, 3, 6]))
    assert verdict.anomaly_types == ["failed-add-present"]


def test_set_without_a_read_is_unknown() -> None:
    b = HistoryBuilder()
    b.call(1, "add", 1)
    assert sets.check(b.history()).valid == "unknown"
