"""The PostgreSQL oracle's judgement and the client machinery it drives, without a server.

``oracle.judge`` says whether the checkers found exactly what a level of stock PostgreSQL
allows: write skew (G2-item) and nothing stronger at REPEATABLE READ, which is snapshot
isolation (Berenson et al. 1995; Adya 1999 §4.3), and nothing at SERIALIZABLE. Hand-written
histories with known anomalies check that rule here; tests/integration/test_chaos_oracle.py
runs it against a real server.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from borealis.chaos import clients, oracle, workloads
from borealis.chaos.checkers.listappend import invocation
from borealis.chaos.clients import Isolation
from borealis.chaos.history import History, HistoryBuilder


def config(isolation: Isolation, workload: str = "list-append") -> oracle.OracleConfig:
    return oracle.OracleConfig(workload=workload, isolation=isolation, time_s=5, clients=2,
                               seed=1)


def judged(history: History, isolation: Isolation) -> dict[str, Any]:
    cfg = config(isolation)
    return oracle.judge(oracle.make_workload(cfg), cfg, history, {})


def write_skew() -> History:
    """T1 and T2 each read x and y, saw neither append, and appended to one of them."""
    b = HistoryBuilder()
    t1 = [["r", "x", []], ["r", "y", []], ["append", "x", 1]]
    t2 = [["r", "x", []], ["r", "y", []], ["append", "y", 1]]
    b.invoke(1, "txn", invocation(t1))
    b.invoke(2, "txn", invocation(t2))
    b.ok(1, t1)
    b.ok(2, t2)
    b.call(3, "txn", invocation([["r", "x", None], ["r", "y", None]]),
           [["r", "x", [1]], ["r", "y", [1]]])
    return b.history()


def read_skew() -> History:
    """T1 saw T2's append to y but not its append to x: G-single, which SI forbids."""
    b = HistoryBuilder()
    b.invoke(1, "txn", [["r", "x", None], ["r", "y", None]])
    b.call(2, "txn", [["append", "x", 1], ["append", "y", 1]])
    b.ok(1, [["r", "x", []], ["r", "y", [1]]])
    b.call(3, "txn", [["r", "x", None]], [["r", "x", [1]]])
    return b.history()


def serial() -> History:
    b = HistoryBuilder()
    b.call(1, "txn", [["append", "x", 1]])
    b.call(2, "txn", [["r", "x", None], ["append", "y", 2]], [["r", "x", [1]], ["append", "y", 2]])
    b.call(1, "txn", [["r", "y", None]], [["r", "y", [2]]])
    return b.history()


def test_repeatable_read_expects_write_skew() -> None:
    verdict = judged(write_skew(), Isolation.REPEATABLE_READ)
    assert verdict["as_expected"] is True
    assert verdict["valid"] is False
    assert verdict["anomalies"] == {"G2-item": 1}
    assert verdict["examples"]["G2-item"][0]["cycle"][0]["kind"] == "rw"


def test_repeatable_read_without_write_skew_is_not_what_was_expected() -> None:
    # A run too short or too calm to show write skew does not confirm the checker.
    verdict = judged(serial(), Isolation.REPEATABLE_READ)
    assert verdict["as_expected"] is False
    assert verdict["missing"] == ["G2-item"]
    assert verdict["valid"] is True


def test_g_single_at_repeatable_read_is_unexpected() -> None:
    # Snapshot isolation forbids G-single: the checker reporting it would be wrong.
    verdict = judged(read_skew(), Isolation.REPEATABLE_READ)
    assert verdict["as_expected"] is False
    assert verdict["unexpected"] == ["G-single"]


def test_read_committed_expects_read_skew_and_no_g1() -> None:
    verdict = judged(read_skew(), Isolation.READ_COMMITTED)
    assert verdict["as_expected"] is True
    assert verdict["anomalies"] == {"G-single": 1}
    assert judged(serial(), Isolation.READ_COMMITTED)["missing"] == ["G-single"]


def test_serializable_expects_nothing() -> None:
    assert judged(serial(), Isolation.SERIALIZABLE)["as_expected"] is True
    verdict = judged(write_skew(), Isolation.SERIALIZABLE)
    assert verdict["as_expected"] is False
    assert verdict["unexpected"] == ["G2-item"]


def test_the_summary_leaves_the_reports_out() -> None:
    verdict = judged(write_skew(), Isolation.REPEATABLE_READ)
    line = oracle.summary(verdict)
    assert "checkers" not in line
    assert line["list-append_counts"]["txn_count"] == 3
    assert line["as_expected"] is True


def test_oracle_configs_are_checked() -> None:
    with pytest.raises(oracle.OracleConfigError):
        config(Isolation.SERIALIZABLE, workload="nope")
    with pytest.raises(oracle.OracleConfigError):   # replica-reads needs two clients
        oracle.OracleConfig(workload="replica-reads", isolation=Isolation.SERIALIZABLE,
                            time_s=5, clients=1, seed=1)
    cfg = oracle.OracleConfig(workload="list-append", isolation=Isolation.SERIALIZABLE,
                              time_s=5, clients=8, seed=1, keys=3)
    workload = oracle.make_workload(cfg)
    assert workload.params() == {"keys_active": 3, "appends_per_key_max": 32}


def test_a_missing_server_is_an_oracle_error(tmp_path: Any) -> None:
    assert oracle.binaries_missing(tmp_path) == ["initdb", "postgres"]
    with pytest.raises(oracle.OracleError, match="no initdb, postgres"):
        oracle.StockPostgres(tmp_path).start()


# --- the clients ---------------------------------------------------------------------------


def test_isolation_levels_are_spelt_as_sql() -> None:
    assert Isolation("repeatable-read").sql == "REPEATABLE READ"
    assert Isolation.SERIALIZABLE.sql == "SERIALIZABLE"
    assert Isolation.READ_COMMITTED.sql == "READ COMMITTED"


def test_the_client_machinery_is_importable_where_it_was() -> None:
    # nemesis.py imports the recorder from workloads; the clients moved to clients.py.
    assert workloads.Recorder is clients.Recorder


def test_list_append_keys_set_the_contention() -> None:
    few = workloads.ListAppendWorkload(4, 1, keys_active=2, appends_per_key_max=1_000)
    rng = random.Random(1)
    keys = {micro[1] for _ in range(200) for micro in few.plan(0, rng).value}
    assert keys == {0, 1}
    default = workloads.ListAppendWorkload(4, 1)
    assert default.params() == {"keys_active": 8, "appends_per_key_max": 32}
