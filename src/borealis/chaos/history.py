"""The history of a fault-injection run: what each client asked for and what it was told.

A history is the sequence of events the clients recorded, in the order they happened (one
monotonic clock for the whole run). A client (a *process*) records an **invoke** when it
sends an operation, then at most one completion for it:

- **ok**: the operation took effect, and its result (a read's value) is known;
- **fail**: the operation certainly did not take effect (a rollback, a refused connection);
- **info**: the outcome is unknown (a timeout, a connection lost during commit). The
  operation may take effect at any time after its invocation, or never; it never counts as
  completed, so it constrains nothing that happens after the info event.

This is Jepsen's model, so that the checkers beside this module read like the published ones
(Knossos for registers, Elle for list-append). Checkers work on ``Pair``s, an invocation
with its completion; an invocation that the history ends before completing counts as info.

Events are ordered by ``index`` (their position in the recording); ``time_ns`` is the
monotonic clock reading, kept for people and plots. Real-time order ("A completed before B
was invoked") is read from the indices, so equal clock readings never make it ambiguous.

Histories are stored as JSON Lines, one event per line, so that a run's history can be kept,
fed to the checkers again and read by a person. ``HistoryBuilder`` writes histories by hand
for tests.
"""

from __future__ import annotations

import enum
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from borealis.errors import BorealisError

Process = int | str
"""A client id; Jepsen names the nemesis's process ``"nemesis"``, so strings are allowed."""


class HistoryError(BorealisError):
    """The history itself is malformed (not a verdict on the database): fatal."""

    code = "history"


class OpType(enum.Enum):
    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


COMPLETIONS = frozenset({OpType.OK, OpType.FAIL, OpType.INFO})


@dataclass(frozen=True, slots=True)
class Op:
    """One event of a history. ``value`` is JSON data whose shape depends on ``f``."""

    index: int
    time_ns: int
    process: Process
    type: OpType
    f: str
    value: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise HistoryError(f"op index must be an int >= 0, not {self.index!r}")
        if isinstance(self.time_ns, bool) or not isinstance(self.time_ns, int):
            raise HistoryError(f"op {self.index}: time_ns must be an int, not {self.time_ns!r}")
        if self.time_ns < 0:
            raise HistoryError(f"op {self.index}: time_ns {self.time_ns} is negative")
        if isinstance(self.process, bool) or not isinstance(self.process, int | str):
            raise HistoryError(f"op {self.index}: process must be an int or a str")
        if not isinstance(self.type, OpType):
            raise HistoryError(f"op {self.index}: type must be an OpType, not {self.type!r}")
        if not isinstance(self.f, str) or not self.f:
            raise HistoryError(f"op {self.index}: f must be a non-empty str")

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time_ns": self.time_ns,
            "process": self.process,
            "type": self.type.value,
            "f": self.f,
            "value": self.value,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Op:
        """Reads ``to_json``'s shape; ``time`` is accepted for ``time_ns`` (Jepsen's name)."""
        if not isinstance(obj, Mapping):
            raise HistoryError(f"an op must be a JSON object, not {type(obj).__name__}")
        try:
            kind = OpType(obj["type"])
        except (KeyError, ValueError) as exc:
            raise HistoryError(f"op has no valid type: {obj.get('type')!r}") from exc
        time_ns = obj.get("time_ns", obj.get("time"))
        for name in ("index", "process", "f"):
            if name not in obj:
                raise HistoryError(f"op has no {name}: {dict(obj)!r}")
        if time_ns is None:
            raise HistoryError(f"op has no time_ns: {dict(obj)!r}")
        return cls(obj["index"], time_ns, obj["process"], kind, obj["f"], obj.get("value"))


@dataclass(frozen=True, slots=True)
class Pair:
    """An invocation and its completion; ``completion`` is None when the history ended first.

    ``end_index`` is where the operation is known to have finished: the completion's index
    for ok and fail, None for info (it may still take effect at any later time).
    """

    invoke: Op
    completion: Op | None

    def __post_init__(self) -> None:
        if self.invoke.type is not OpType.INVOKE:
            raise HistoryError(f"op {self.invoke.index} is not an invocation")
        done = self.completion
        if done is None:
            return
        if done.type not in COMPLETIONS:
            raise HistoryError(f"op {done.index} is not a completion")
        if done.process != self.invoke.process:
            raise HistoryError(f"op {done.index} completes another process's invocation")
        if done.f != self.invoke.f:
            raise HistoryError(
                f"op {done.index} completes {done.f!r} but {self.invoke.index} invoked "
                f"{self.invoke.f!r}"
            )
        if done.index <= self.invoke.index:
            raise HistoryError(f"op {done.index} completes a later invocation")

    @property
    def index(self) -> int:
        return self.invoke.index

    @property
    def process(self) -> Process:
        return self.invoke.process

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def outcome(self) -> OpType:
        return OpType.INFO if self.completion is None else self.completion.type

    @property
    def value(self) -> Any:
        """The completion's value when it has one (an ok read's result), else the invocation's."""
        if self.completion is not None and self.completion.value is not None:
            return self.completion.value
        return self.invoke.value

    @property
    def start_index(self) -> int:
        return self.invoke.index

    @property
    def end_index(self) -> int | None:
        if self.completion is None or self.completion.type is OpType.INFO:
            return None
        return self.completion.index

    def to_json(self) -> dict[str, Any]:
        """A compact description for verdicts."""
        return {
            "index": self.index,
            "process": self.process,
            "f": self.f,
            "type": self.outcome.value,
            "value": self.value,
            "end_index": self.end_index,
        }


@dataclass(frozen=True, slots=True)
class History:
    """Events in recording order: indices strictly increase and the clock never goes back."""

    ops: tuple[Op, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for before, after in itertools.pairwise(self.ops):
            if after.index <= before.index:
                raise HistoryError(f"op index {after.index} does not follow {before.index}")
            if after.time_ns < before.time_ns:
                raise HistoryError(f"op {after.index}: the clock went back")

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def pairs(self, functions: Iterable[str] | None = None) -> list[Pair]:
        """Every invocation with its completion, in invocation order; ``functions`` filters by f.

        Raises HistoryError when a process invokes twice without a completion in between, or
        completes what it did not invoke.
        """
        wanted = None if functions is None else frozenset(functions)
        open_by_process: dict[Process, Op] = {}
        pairs: list[Pair] = []
        for op in self.ops:
            if op.type is OpType.INVOKE:
                if op.process in open_by_process:
                    raise HistoryError(
                        f"op {op.index}: process {op.process!r} invoked again before "
                        f"{open_by_process[op.process].index} completed"
                    )
                open_by_process[op.process] = op
                continue
            invoke = open_by_process.pop(op.process, None)
            if invoke is None:
                raise HistoryError(f"op {op.index}: process {op.process!r} completed nothing")
            pairs.append(Pair(invoke, op))
        pairs.extend(Pair(invoke, None) for invoke in open_by_process.values())
        pairs.sort(key=lambda pair: pair.index)
        if wanted is None:
            return pairs
        return [pair for pair in pairs if pair.f in wanted]


# --- JSON Lines ----------------------------------------------------------------------------


def write_jsonl(history: History, stream: TextIO) -> None:
    for op in history:
        stream.write(json.dumps(op.to_json(), separators=(",", ":")))
        stream.write("\n")


def read_jsonl(stream: TextIO | Iterable[str]) -> History:
    ops: list[Op] = []
    for line_number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(f"line {line_number}: not JSON: {exc}") from exc
        ops.append(Op.from_json(obj))
    return History(tuple(ops))


def save(history: History, path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        write_jsonl(history, stream)


def load(path: str | os.PathLike[str]) -> History:
    with open(path, encoding="utf-8") as stream:
        return read_jsonl(stream)


# --- building histories by hand ------------------------------------------------------------

_SAME = object()


class HistoryBuilder:
    """Writes histories for tests, on a virtual clock that ticks ``tick_ns`` per event.

    ``invoke`` opens an operation for a process; ``ok``/``fail``/``info`` complete it, with
    the invocation's value unless another is given (an ok read passes what it read).
    ``call`` does both at once, for operations that overlap nothing.
    """

    def __init__(self, *, tick_ns: int = 1_000) -> None:
        if tick_ns < 0:
            raise ValueError("tick_ns cannot be negative")
        self.tick_ns = tick_ns
        self._ops: list[Op] = []
        self._open: dict[Process, Op] = {}

    def _append(self, process: Process, kind: OpType, f: str, value: Any) -> Op:
        op = Op(len(self._ops), len(self._ops) * self.tick_ns, process, kind, f, value)
        self._ops.append(op)
        return op

    def invoke(self, process: Process, f: str, value: Any = None) -> Op:
        if process in self._open:
            raise HistoryError(f"process {process!r} already has an operation open")
        op = self._append(process, OpType.INVOKE, f, value)
        self._open[process] = op
        return op

    def complete(self, process: Process, kind: OpType, value: Any = _SAME) -> Op:
        if kind not in COMPLETIONS:
            raise HistoryError(f"{kind} is not a completion")
        invoke = self._open.pop(process, None)
        if invoke is None:
            raise HistoryError(f"process {process!r} has no operation open")
        return self._append(process, kind, invoke.f, invoke.value if value is _SAME else value)

    def ok(self, process: Process, value: Any = _SAME) -> Op:
        return self.complete(process, OpType.OK, value)

    def fail(self, process: Process, value: Any = _SAME) -> Op:
        return self.complete(process, OpType.FAIL, value)

    def info(self, process: Process, value: Any = _SAME) -> Op:
        return self.complete(process, OpType.INFO, value)

    def call(self, process: Process, f: str, value: Any = None, result: Any = _SAME,
             outcome: OpType = OpType.OK) -> Op:
        self.invoke(process, f, value)
        return self.complete(process, outcome, result)

    def history(self) -> History:
        """The events so far; operations still open count as info."""
        return History(tuple(self._ops))
