"""History checkers and the verdict they all return.

Each checker is a pure function of a ``History`` (see ``..history``): ``linearizable``
(registers, Wing-Gong search), ``listappend`` (Elle's dependency-graph checker), ``bank``
and ``sets``. Each returns a ``Verdict``, whose ``to_dict()`` is the JSON a run stores:
``{"valid": true | false | "unknown", "checker": ..., "anomaly_types": [...],
"anomalies": {name: [report, ...]}, <counts>...}``. ``valid`` is false exactly when some
anomaly was found, and "unknown" when the checker could not decide (a search budget ran
out, or the history lacks what the check needs) without finding one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Validity = bool | Literal["unknown"]

REPORTS_PER_ANOMALY_MAX = 100
"""A verdict lists at most this many reports of one anomaly type; counts say how many there were."""


@dataclass(frozen=True, slots=True)
class Verdict:
    checker: str
    valid: Validity
    anomalies: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.valid not in (True, False, "unknown"):
            raise ValueError(f"valid must be true, false or 'unknown', not {self.valid!r}")
        found = any(reports for reports in self.anomalies.values())
        if self.valid is False and not found:
            raise ValueError("an invalid verdict must name its anomalies")
        if self.valid is not False and found:
            raise ValueError("a verdict with anomalies cannot be valid or unknown")
        clash = {"valid", "checker", "anomalies", "anomaly_types"} & (
            set(self.counts) | set(self.details)
        )
        if clash:
            raise ValueError(f"counts and details cannot use the names {sorted(clash)}")

    @property
    def anomaly_types(self) -> list[str]:
        return sorted(name for name, reports in self.anomalies.items() if reports)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "valid": self.valid,
            "checker": self.checker,
            "anomaly_types": self.anomaly_types,
            "anomalies": {
                name: [dict(report) for report in reports[:REPORTS_PER_ANOMALY_MAX]]
                for name, reports in sorted(self.anomalies.items())
                if reports
            },
        }
        out.update(self.counts)
        out.update(self.details)
        return out


def hashable(value: Any) -> Any:
    """JSON data as a hashable value: lists become tuples, objects sorted item tuples."""
    if isinstance(value, list | tuple):
        flat = tuple(value)
        try:
            hash(flat)   # the common case, a list of scalars (a read), in one C call
        except TypeError:
            return tuple(hashable(item) for item in value)
        return flat
    if isinstance(value, dict):
        return tuple(sorted((key, hashable(item)) for key, item in value.items()))
    return value


def json_value(value: Any) -> Any:
    """The inverse of ``hashable`` for sequences: tuples back to lists, for reports."""
    if isinstance(value, tuple):
        return [json_value(item) for item in value]
    return value
