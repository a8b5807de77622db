"""Prometheus text exposition (format 0.0.4) of ``borealis.metrics`` and its ``/metrics``
server on a real socket: line format, label escaping, cumulative histogram buckets, and an
HTTP server that answers 404/405/400 and goes on serving."""

from __future__ import annotations

import asyncio
import math

import pytest

from borealis.metrics import Histogram, Metrics, serve_metrics


def lines(text: str) -> list[str]:
    assert text.endswith("\n"), "the exposition ends with a line feed"
    return text[:-1].split("\n")


def test_counter_and_gauge_lines_with_help_and_type() -> None:
    m = Metrics()
    m.counter("borealis_commits_total", "Commits acknowledged", lambda: 42)
    m.gauge("borealis_cache_hit_ratio", "Hits over lookups", lambda: 0.25)
    assert lines(m.render()) == [
        "# HELP borealis_commits_total Commits acknowledged",
        "# TYPE borealis_commits_total counter",
        "borealis_commits_total 42",
        "# HELP borealis_cache_hit_ratio Hits over lookups",
        "# TYPE borealis_cache_hit_ratio gauge",
        "borealis_cache_hit_ratio 0.25",
    ]


def test_values_are_read_at_scrape_time() -> None:
    value = [1]
    m = Metrics()
    m.gauge("g", "a gauge", lambda: value[0])
    assert "g 1" in lines(m.render())
    value[0] = 7
    assert "g 7" in lines(m.render())


def test_special_numbers_and_booleans() -> None:
    m = Metrics()
    m.gauge("a", "nan", lambda: math.nan)
    m.gauge("b", "inf", lambda: math.inf)
    m.gauge("c", "-inf", lambda: -math.inf)
    m.gauge("d", "bool", lambda: True)
    m.gauge("e", "float", lambda: 2.0)
    out = lines(m.render())
    assert "a NaN" in out
    assert "b +Inf" in out
    assert "c -Inf" in out
    assert "d 1" in out
    assert "e 2.0" in out


def test_a_family_without_a_value_has_no_sample_line() -> None:
    m = Metrics()
    m.gauge("borealis_replica_lag_ms", "only on readers", lambda: None)
    assert lines(m.render()) == ["# HELP borealis_replica_lag_ms only on readers",
                                 "# TYPE borealis_replica_lag_ms gauge"]


def test_labelled_samples_merge_const_labels_and_escape_values() -> None:
    m = Metrics({"instance_id": "w1"})
    m.gauge("borealis_role", "role", lambda: [({"role": "writer"}, 1), ({"role": "reader"}, 0)])
    m.gauge("odd", "escapes", lambda: [({"v": 'a"b\\c\nd'}, 3)])
    out = lines(m.render())
    assert 'borealis_role{instance_id="w1",role="writer"} 1' in out
    assert 'borealis_role{instance_id="w1",role="reader"} 0' in out
    # Prometheus text format: backslash, double quote and line feed are escaped in values.
    assert 'odd{instance_id="w1",v="a\\"b\\\\c\\nd"} 3' in out


def test_help_text_escapes_backslash_and_line_feed() -> None:
    m = Metrics()
    m.counter("c_total", "two\nlines \\ here", lambda: 0)
    assert lines(m.render())[0] == "# HELP c_total two\\nlines \\\\ here"


def test_a_name_registered_twice_is_a_bug() -> None:
    m = Metrics()
    m.counter("c_total", "x", lambda: 0)
    with pytest.raises(AssertionError):
        m.gauge("c_total", "y", lambda: 0)


def test_histogram_buckets_are_cumulative_and_end_with_inf() -> None:
    m = Metrics()
    h = m.histogram("borealis_commit_latency_seconds", "latency",
                    Histogram(buckets=(0.001, 0.01, 0.1)))
    for value in (0.0005, 0.001, 0.005, 0.05, 0.05, 3.0):
        h.observe(value)
    out = lines(m.render())
    assert out[:2] == ["# HELP borealis_commit_latency_seconds latency",
                       "# TYPE borealis_commit_latency_seconds histogram"]
    # A bucket counts observations <= its bound (0.001 falls in le="0.001").
    assert out[2:] == [
        'borealis_commit_latency_seconds_bucket{le="0.001"} 2',
        'borealis_commit_latency_seconds_bucket{le="0.01"} 3',
        'borealis_commit_latency_seconds_bucket{le="0.1"} 5',
        'borealis_commit_latency_seconds_bucket{le="+Inf"} 6',
        f"borealis_commit_latency_seconds_sum {0.0005 + 0.001 + 0.005 + 0.05 + 0.05 + 3.0!r}",
        "borealis_commit_latency_seconds_count 6",
    ]
    counts = [int(line.rsplit(" ", 1)[1]) for line in out[2:6]]
    assert counts == sorted(counts), "cumulative: never decreasing"


def test_histogram_quantile_is_the_upper_bound_of_its_bucket() -> None:
    h = Histogram(buckets=(0.001, 0.01, 0.1))
    assert h.quantile(0.5) == 0.0
    for value in [0.0005] * 90 + [0.05] * 9 + [5.0]:
        h.observe(value)
    assert h.quantile(0.5) == 0.001
    assert h.quantile(0.95) == 0.1
    assert h.quantile(1.0) == math.inf


def test_histogram_with_const_labels_keeps_le_last() -> None:
    m = Metrics({"node": "az1-n1"})
    m.histogram("h_seconds", "h", Histogram(buckets=(1.0,))).observe(0.5)
    out = lines(m.render())
    assert 'h_seconds_bucket{node="az1-n1",le="1.0"} 1' in out
    assert 'h_seconds_count{node="az1-n1"} 1' in out


# --- the HTTP server, over a real socket ----------------------------------------------------


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split(" ")[1]), headers, body
    finally:
        writer.close()


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def test_metrics_are_served_over_http_and_errors_do_not_stop_the_server() -> None:
    async def main() -> None:
        m = Metrics({"instance_id": "w1"})
        m.counter("borealis_commits_total", "Commits", lambda: 5)
        server, (host, port) = await serve_metrics(m, "127.0.0.1", 0)
        assert host == "127.0.0.1" and port > 0
        try:
            status, headers, body = await request(port, get("/metrics"))
            assert status == 200
            assert headers["content-type"].startswith("text/plain; version=0.0.4")
            assert 'borealis_commits_total{instance_id="w1"} 5' in body.decode().splitlines()

            status, _, _ = await request(port, get("/other"))
            assert status == 404
            status, _, _ = await request(port, get("/metrics", "POST"))
            assert status == 405

            # A malformed request line gets 400 and its connection closed...
            status, _, _ = await request(port, b"garbage\r\n\r\n")
            assert status == 400
            status, _, _ = await request(port, b"GET /metrics SPDY/3\r\n\r\n")
            assert status == 400
            # ...a client that hangs up mid-request is no harm either...
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metr")
            await writer.drain()
            writer.close()
            # ...and the server goes on serving.
            status, _, body = await request(port, get("/metrics"))
            assert status == 200
            assert b"borealis_commits_total" in body

            # Keep-alive: two requests on one connection.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(2):
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
            writer.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 20))
