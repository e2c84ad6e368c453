"""Load report arithmetic on synthetic samples."""

from __future__ import annotations

import json
from pathlib import Path

from dispatcher.loadreport import (
    LoadResult,
    Sample,
    format_report,
    percentile,
    summarize,
    utilisation,
    write_plot,
)


def sample(
    sent: float,
    received: float,
    queued: float,
    service: float,
    rank: int,
    rc: int | None = 200,
    error: str | None = None,
    op: str = "http_connect",
) -> Sample:
    return Sample(sent, received, (received - sent) * 1000, queued, service, rank, rc, error, op)


def test_percentiles_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (
        50.0,
        90.0,
        99.0,
    )
    assert percentile(values, 100) == 100.0 and percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_utilisation_is_service_time_over_wall_time_per_rank() -> None:
    samples = [sample(0, 0.1, 0, 100.0, 1) for _ in range(5)] + [sample(0, 0.1, 0, 250.0, 2)]
    samples.append(sample(0, 0.1, 0, 999.0, 0))  # no worker (refused): not a rank
    assert utilisation(samples, 2.0) == {
        "1": {"jobs": 5, "utilisation": 0.25},
        "2": {"jobs": 1, "utilisation": 0.125},
    }


def test_window_rates_and_latency_of_what_was_sent_in_it() -> None:
    result = LoadResult(
        mode="open", offered_rate=10.0, concurrency=None, duration_s=2.0, warmup_s=1.0
    )
    result.sent, result.sent_in_window = 22, 20
    result.samples = [sample(0.5, 0.6, 0, 50, 1)]  # sent in the warm-up: not measured
    result.samples += [sample(1 + i * 0.1, 1.05 + i * 0.1, 1.0, 50.0, 1 + i % 2) for i in range(19)]
    # Sent in the window, answered 2 s after it: its latency counts, its answer not the rate.
    result.samples += [sample(2.95, 5.0, 2000.0, 50, 1, rc=None, error="overloaded")]
    s = summarize(result)
    assert (s["sent_rate"], s["achieved_rate"]) == (10.0, 9.5)
    assert s["workers"] == {
        "1": {"jobs": 10, "utilisation": 0.25},
        "2": {"jobs": 9, "utilisation": 0.225},
    }
    assert s["rc"] == {"200": 19} and s["errors"] == {"overloaded": 1}
    assert s["latency"]["queue"] == {"p50": 1.0, "p90": 1.0, "p99": 2000.0, "max": 2000.0}
    assert s["latency"]["total"]["max"] == 2050.0
    text = format_report(result)
    assert "offered 10.0/s   sent 10.0/s   achieved 9.5/s" in text
    assert "errors: overloaded: 1" in text
    json.dumps(s)  # the --json output is plain JSON


def test_backend_connections_and_failover_deltas(tmp_path: Path) -> None:
    result = LoadResult(
        mode="closed", offered_rate=None, concurrency=4, duration_s=1.0, warmup_s=0.0
    )
    result.samples = [sample(0.1, 0.2, 0, 10, 1) for _ in range(10)]
    result.samples += [sample(0.1, 0.2, 0, 0, 2, rc=1, op="http_connection_exists")]  # no HTTP
    result.samples += [sample(0.1, 0.2, 0, 0, 2, rc=-1)]  # refused before any attempt
    result.backend_before = {"connections_accepted": 5, "connections_open": 1, "requests": 100}
    result.backend_after = {"connections_accepted": 10, "connections_open": 5, "requests": 113}
    result.stats_before = {"httpclient:connok": 100, "httpclient:connfail": 7}
    result.stats_after = {"httpclient:connok": 110, "httpclient:connfail": 10}
    s = summarize(result)
    # 5 new connections, one of them our own closing /_stats probe.
    assert s["backend"] == {"connections_accepted": 4, "connections_open": 4, "requests": 13}
    assert (s["http_attempts"], s["http_jobs"], s["failovers"]) == (13, 10, 3)
    text = format_report(result)
    assert "closed loop, 4 in flight" in text and "failovers 3" in text
    assert "4 TCP connections accepted" in text
    assert write_plot(result, str(tmp_path / "p.png")) is None
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert write_plot(result, str(tmp_path / "no" / "such" / "p.png")) is not None


def test_a_run_that_could_not_start_reports_why() -> None:
    result = LoadResult(mode="open", offered_rate=5.0, concurrency=None, duration_s=1, warmup_s=0)
    result.error = "no reply from tcp://127.0.0.1:1 within 5 s"
    assert format_report(result) == "load test not run: no reply from tcp://127.0.0.1:1 within 5 s"
    assert summarize(result)["achieved_rate"] == 0.0
