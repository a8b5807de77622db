"""Linearizability of registers, key by key, by Wing-Gong search with memoisation.

The workload keeps many independent registers. Linearizability is *local* (Herlihy & Wing
1990, P-compositionality in Horn & Kroening 2015): a history is linearizable iff each key's
sub-history is, so each key is searched alone and the search stays small.

Values (JSON, one key per operation):

- ``f="read"``:  invoke ``[key, null]``, ok ``[key, value_read]``;
- ``f="write"``: ``[key, value]``;
- ``f="cas"``:   ``[key, [expected, new]]`` (ok only if the register held ``expected``).

The search (Wing & Gong 1993, with Lowe's memoisation as in Knossos's ``linear``) builds a
linearization one operation at a time: an operation may go next when no operation still
waiting *returned* before it was *invoked*. Each search state is the set of operations
linearized so far and the register's value; a state seen once is never explored again.
Outcomes shape the operations:

- **ok**: must be linearized, between its invocation and its completion;
- **fail**: did not happen, and is left out;
- **info**: may be linearized at any point after its invocation, or never (it never
  returns, so it never forces anything to wait). An info read constrains nothing and is
  left out.

The search stops with a verdict of "unknown" for a key after ``states_max`` states rather
than run for ever; pending info writes are what makes the space grow. When a key has no
linearization, the verdict explains it with the longest linearizable prefix found, the
register's value after it, and the operations that could not be placed next.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from borealis.chaos.checkers import Validity, Verdict, hashable, json_value
from borealis.chaos.history import History, HistoryError, OpType, Pair

STATES_MAX_DEFAULT = 1_000_000
"""Search states explored per key before the key is declared unknown."""

EXPLANATION_PREFIX_MAX = 8
"""The explanation shows the last this-many operations of the longest linearizable prefix."""

FUNCTIONS = ("read", "write", "cas")

_NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class _RegisterOp:
    pair: Pair
    f: str
    argument: Any      # read: the value read; write: the value; cas: (expected, new)
    call: int          # invocation index
    ret: float         # completion index; infinite for info
    required: bool     # ok: must be linearized


def _parse(pair: Pair) -> tuple[Hashable, _RegisterOp] | None:
    value = pair.value
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise HistoryError(f"op {pair.index}: a register value is [key, argument], not {value!r}")
    key, argument = hashable(value[0]), hashable(value[1])
    outcome = pair.outcome
    if outcome is OpType.FAIL:
        return None
    if pair.f == "read" and outcome is not OpType.OK:
        return None
    if pair.f == "cas" and (not isinstance(argument, tuple) or len(argument) != 2):
        raise HistoryError(f"op {pair.index}: a cas argument is [expected, new]")
    end = pair.end_index
    op = _RegisterOp(
        pair=pair,
        f=pair.f,
        argument=argument,
        call=pair.start_index,
        ret=_NEVER if end is None else end,
        required=outcome is OpType.OK,
    )
    return key, op


def _step(state: Any, op: _RegisterOp) -> tuple[bool, Any]:
    """The register model: whether ``op`` can happen in ``state``, and the state after it."""
    if op.f == "read":
        return op.argument == state, state
    if op.f == "write":
        return True, op.argument
    expected, new = op.argument
    if expected == state:
        return True, new
    return False, state


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The search's answer for one key."""

    key: Hashable
    valid: Validity
    states_explored: int
    explanation: dict[str, Any] | None = None


def check_key(key: Hashable, ops: list[_RegisterOp], *, initial: Any = None,
              states_max: int = STATES_MAX_DEFAULT) -> KeyResult:
    """Searches one key's operations for a linearization (see the module docstring)."""
    assert states_max > 0
    ops = sorted(ops, key=lambda op: op.call)
    count = len(ops)
    required_mask = 0
    for i, op in enumerate(ops):
        if op.required:
            required_mask |= 1 << i

    start = (0, hashable(initial))
    parent: dict[tuple[int, Any], tuple[tuple[int, Any], int] | None] = {start: None}
    stack = [start]
    deepest = start
    deepest_depth = 0
    explored = 0
    while stack:
        node = stack.pop()
        mask, state = node
        if mask & required_mask == required_mask:
            return KeyResult(key, True, explored)
        explored += 1
        if explored > states_max:
            return KeyResult(key, "unknown", explored)
        depth = (mask & required_mask).bit_count()
        if depth > deepest_depth:
            deepest, deepest_depth = node, depth
        # What may go next: operations invoked before the earliest return of a required one
        # still waiting. Operations are sorted by invocation and return after it, so both
        # scans stop at the edge of the window of concurrent operations.
        first_open = (~mask & (mask + 1)).bit_length() - 1
        bound = _NEVER
        for i in range(first_open, count):
            op = ops[i]
            if op.call >= bound:
                break
            if op.required and op.ret < bound and not mask >> i & 1:
                bound = op.ret
        for i in range(first_open, count):
            op = ops[i]
            if op.call >= bound:
                break
            if mask >> i & 1:
                continue
            possible, after = _step(state, op)
            if not possible:
                continue
            child = (mask | 1 << i, after)
            if child in parent:
                continue
            parent[child] = (node, i)
            stack.append(child)
    return KeyResult(key, False, explored, _explain(ops, parent, deepest))


def _explain(ops: list[_RegisterOp], parent: dict[tuple[int, Any], Any],
             deepest: tuple[int, Any]) -> dict[str, Any]:
    """The longest linearizable prefix, the value after it, and what could not go next."""
    path: list[int] = []
    node = deepest
    while parent[node] is not None:
        node, i = parent[node]
        path.append(i)
    path.reverse()
    mask, state = deepest
    waiting = [i for i in range(len(ops)) if ops[i].required and not mask >> i & 1]
    bound = min(ops[i].ret for i in waiting)
    stuck = [
        ops[i].pair.to_json()
        for i in waiting
        if ops[i].call < bound and not _step(state, ops[i])[0]
    ]
    return {
        "state": json_value(state),
        "linearized_count": len(path),
        "linearized_tail": [ops[i].pair.to_json() for i in path[-EXPLANATION_PREFIX_MAX:]],
        "cannot_linearize": stuck,
    }


def check(history: History, *, initial: Any = None,
          states_max: int = STATES_MAX_DEFAULT) -> Verdict:
    """Per-key linearizability of the read / write / cas operations in ``history``.

    Anomaly ``nonlinearizable``: one report per key, ``{"key", "state", "linearized_count",
    "linearized_tail", "cannot_linearize"}``. Keys whose search ran out of ``states_max``
    are listed in ``unknown_keys``.
    """
    by_key: dict[Hashable, list[_RegisterOp]] = {}
    op_count = 0
    for pair in history.pairs(FUNCTIONS):
        op_count += 1
        parsed = _parse(pair)
        if parsed is None:
            continue
        key, op = parsed
        by_key.setdefault(key, []).append(op)
    reports: list[dict[str, Any]] = []
    unknown: list[Any] = []
    explored = 0
    for key in sorted(by_key, key=repr):
        result = check_key(key, by_key[key], initial=initial, states_max=states_max)
        explored += result.states_explored
        if result.valid == "unknown":
            unknown.append(json_value(key))
        elif result.valid is False:
            assert result.explanation is not None
            reports.append({"key": json_value(key), **result.explanation})
    valid: Validity = False if reports else ("unknown" if unknown else True)
    return Verdict(
        checker="linearizable",
        valid=valid,
        anomalies={"nonlinearizable": reports} if reports else {},
        counts={
            "op_count": op_count,
            "key_count": len(by_key),
            "unknown_key_count": len(unknown),
            "states_explored": explored,
        },
        details={"unknown_keys": unknown},
    )
