"""The set checker: every acknowledged insert is there at the end, and nothing else is.

The set workload adds unique elements with ``f="add"`` (value: the element) and finally
reads them all with ``f="read"`` (ok value: the list of elements). The *final read* is the
ok read that completed last. Against it (after Jepsen's ``set`` checker):

- **lost**: an ok add that completed before the final read was invoked, missing from it
  (an ok add still running when the final read began may miss it; those are counted as
  ``concurrent_missing_count``, not reported);
- **unexpected**: an element in any ok read that no add ever attempted;
- **failed-add-present**: an element of a failed add in an ok read (fail means it did not
  take effect);
- an info add may or may not be present; those present are counted as recovered.
"""

from __future__ import annotations

from typing import Any

from borealis.chaos.checkers import Validity, Verdict, hashable, json_value
from borealis.chaos.history import History, HistoryError, OpType, Pair

FUNCTIONS = ("add", "read")


def check(history: History) -> Verdict:
    """Checks adds against the final read; valid is "unknown" when no read completed.

    Anomalies: ``lost`` and ``failed-add-present`` (``{"element", "add"}``), ``unexpected``
    (``{"element", "read"}``).
    """
    adds: dict[Any, Pair] = {}
    reads: list[Pair] = []
    for pair in history.pairs(FUNCTIONS):
        if pair.f == "add":
            element = hashable(pair.value)
            if element in adds:
                raise HistoryError(f"op {pair.index}: element {pair.value!r} added twice")
            adds[element] = pair
        elif pair.outcome is OpType.OK:
            if not isinstance(pair.value, list | tuple):
                raise HistoryError(f"op {pair.index}: a set read returns a list")
            reads.append(pair)
    outcomes = [add.outcome for add in adds.values()]
    counts = {
        "attempt_count": len(adds),
        "ok_count": outcomes.count(OpType.OK),
        "fail_count": outcomes.count(OpType.FAIL),
        "info_count": outcomes.count(OpType.INFO),
        "read_count": len(reads),
    }
    if not reads:
        return Verdict(checker="set", valid="unknown", counts=counts)

    anomalies: dict[str, list[dict[str, Any]]] = {}
    for read in reads:
        for element in sorted({hashable(item) for item in read.value}, key=repr):
            add = adds.get(element)
            if add is None:
                anomalies.setdefault("unexpected", []).append(
                    {"element": json_value(element), "read": read.to_json()}
                )
            elif add.outcome is OpType.FAIL:
                anomalies.setdefault("failed-add-present", []).append(
                    {"element": json_value(element), "add": add.to_json(), "read": read.index}
                )

    final = max(reads, key=lambda read: read.end_index or 0)
    present = {hashable(item) for item in final.value}
    lost = recovered = concurrent_missing = 0
    for element, add in sorted(adds.items(), key=lambda item: item[1].index):
        end = add.end_index
        if add.outcome is OpType.OK and element not in present:
            assert end is not None
            if end < final.start_index:
                lost += 1
                anomalies.setdefault("lost", []).append(
                    {"element": json_value(element), "add": add.to_json()}
                )
            else:
                concurrent_missing += 1
        elif add.outcome is OpType.INFO and element in present:
            recovered += 1
    valid: Validity = not anomalies
    return Verdict(
        checker="set",
        valid=valid,
        anomalies=anomalies,
        counts={
            **counts,
            "final_read_size": len(present),
            "lost_count": lost,
            "unexpected_count": len(anomalies.get("unexpected", [])),
            "failed_present_count": len(anomalies.get("failed-add-present", [])),
            "recovered_count": recovered,
            "concurrent_missing_count": concurrent_missing,
        },
        details={"final_read_index": final.index},
    )
