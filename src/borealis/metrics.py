"""Prometheus text metrics (exposition format 0.0.4), served by every Borealis process.

Most values already live in each process's own statistics (commits, VDL, cache hits...), so
a metric is a *family* with a collect function called at scrape time: nothing is added to
the hot paths. Latencies that need recording as they happen use ``Histogram``, whose
``observe`` is one bisect and two additions.

    metrics = Metrics()
    metrics.gauge("borealis_vdl", "Volume durable LSN", lambda: db.vdl)
    metrics.counter("borealis_commits_total", "Commits", lambda: db.stats.commits)
    server = await serve_metrics(metrics, "127.0.0.1", 0)   # GET /metrics
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from borealis.http import HttpError, HttpServer, Request, Response

Labels = dict[str, str]
Collected = float | int | None | Iterable[tuple[Labels, float | int]]

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
                     2.0, 5.0)


@dataclass
class Histogram:
    """A cumulative histogram in Prometheus' sense (``_bucket``, ``_sum``, ``_count``)."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        assert list(self.buckets) == sorted(self.buckets), "buckets ascend"
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def quantile(self, q: float) -> float:
        """An upper bound of the q-quantile (the bucket it falls in); 0 when empty."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for bound, n in zip((*self.buckets, math.inf), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return math.inf


@dataclass
class _Family:
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    collect: Callable[[], Collected] | None = None
    histogram: Histogram | None = None


class Metrics:
    """The metric families of one process."""

    def __init__(self, const_labels: Labels | None = None) -> None:
        self.const_labels = dict(const_labels or {})
        self._families: dict[str, _Family] = {}

    def counter(self, name: str, help: str, collect: Callable[[], Collected]) -> None:
        self._add(_Family(name, "counter", help, collect))

    def gauge(self, name: str, help: str, collect: Callable[[], Collected]) -> None:
        self._add(_Family(name, "gauge", help, collect))

    def histogram(self, name: str, help: str, histogram: Histogram | None = None) -> Histogram:
        h = histogram or Histogram()
        self._add(_Family(name, "histogram", help, histogram=h))
        return h

    def _add(self, family: _Family) -> None:
        assert family.name not in self._families, f"metric {family.name} registered twice"
        self._families[family.name] = family

    def render(self) -> str:
        out: list[str] = []
        for f in self._families.values():
            out.append(f"# HELP {f.name} {_escape_help(f.help)}")
            out.append(f"# TYPE {f.name} {f.kind}")
            if f.histogram is not None:
                h = f.histogram
                seen = 0
                for bound, n in zip((*h.buckets, math.inf), h.counts, strict=True):
                    seen += n
                    le = "+Inf" if bound == math.inf else _number(bound)
                    out.append(self._line(f"{f.name}_bucket", {"le": le}, seen))
                out.append(self._line(f"{f.name}_sum", {}, h.total))
                out.append(self._line(f"{f.name}_count", {}, h.count))
                continue
            assert f.collect is not None
            value = f.collect()
            if value is None:
                continue
            if isinstance(value, int | float):
                out.append(self._line(f.name, {}, value))
            else:
                for labels, v in value:
                    out.append(self._line(f.name, labels, v))
        return "\n".join(out) + "\n"

    def _line(self, name: str, labels: Labels, value: float | int) -> str:
        merged = {**self.const_labels, **labels}
        if not merged:
            return f"{name} {_number(value)}"
        inner = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in merged.items())
        return f"{name}{{{inner}}} {_number(value)}"


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


async def serve_metrics(metrics: Metrics, host: str, port: int,
                        *, name: str = "metrics") -> tuple[HttpServer, tuple[str, int]]:
    """Serve ``GET /metrics`` on host:port (port 0: any free one)."""

    async def handle(request: Request) -> Response:
        if request.path != "/metrics":
            raise HttpError(404, "only /metrics is served here")
        if request.method != "GET":
            raise HttpError(405, "GET only")
        return Response.text(metrics.render())

    server = HttpServer(handle, name=name)
    bound = await server.start(host, port)
    return server, bound
