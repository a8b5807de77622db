"""The bank checker: money is neither made nor lost, whatever the faults.

The bank workload moves money between a fixed set of accounts with ``f="transfer"``
(``{"from": a, "to": b, "amount": n}``) and reads every balance in one transaction with
``f="read"`` (ok value ``{account: balance}``). Under snapshot isolation or stronger, every
read sees one consistent snapshot, so every ok read sums to the same total; a read that
does not is a read of a torn state (a lost or half-applied transfer). Accounts are compared
by their string form, since JSON object keys are strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from borealis.chaos.checkers import Validity, Verdict
from borealis.chaos.history import History, HistoryError, OpType

FUNCTIONS = ("read", "transfer")


def check(history: History, *, total: int, accounts: Iterable[Any] | None = None,
          negative_allowed: bool = False) -> Verdict:
    """Checks every ok read of all balances.

    Anomalies: ``wrong-total`` (``{"read", "sum", "expected"}``), ``negative-balance``
    (``{"read", "account", "balance"}``) unless ``negative_allowed``, and ``wrong-accounts``
    (``{"read", "missing", "unexpected"}``) when ``accounts`` is given. Valid is "unknown"
    when no read completed.
    """
    expected_accounts = None if accounts is None else {str(account) for account in accounts}
    anomalies: dict[str, list[dict[str, Any]]] = {}
    read_count = 0
    bad_reads: set[int] = set()
    transfers = {OpType.OK: 0, OpType.FAIL: 0, OpType.INFO: 0}
    for pair in history.pairs(FUNCTIONS):
        if pair.f == "transfer":
            transfers[pair.outcome] += 1
            continue
        if pair.outcome is not OpType.OK:
            continue
        balances = pair.value
        if not isinstance(balances, dict):
            raise HistoryError(f"op {pair.index}: a bank read returns {{account: balance}}")
        read_count += 1
        read = pair.to_json()
        balance_sum = sum(balances.values())
        if balance_sum != total:
            anomalies.setdefault("wrong-total", []).append(
                {"read": read, "sum": balance_sum, "expected": total}
            )
            bad_reads.add(pair.index)
        if not negative_allowed:
            for account, balance in sorted(balances.items()):
                if balance < 0:
                    anomalies.setdefault("negative-balance", []).append(
                        {"read": read, "account": account, "balance": balance}
                    )
                    bad_reads.add(pair.index)
        if expected_accounts is not None:
            seen = {str(account) for account in balances}
            if seen != expected_accounts:
                anomalies.setdefault("wrong-accounts", []).append({
                    "read": read,
                    "missing": sorted(expected_accounts - seen),
                    "unexpected": sorted(seen - expected_accounts),
                })
                bad_reads.add(pair.index)
    valid: Validity = False if anomalies else (True if read_count else "unknown")
    return Verdict(
        checker="bank",
        valid=valid,
        anomalies=anomalies,
        counts={
            "read_count": read_count,
            "bad_read_count": len(bad_reads),
            "transfer_ok_count": transfers[OpType.OK],
            "transfer_fail_count": transfers[OpType.FAIL],
            "transfer_info_count": transfers[OpType.INFO],
        },
        details={"total": total},
    )
