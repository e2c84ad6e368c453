"""Load report arithmetic on synthetic samples."""

from __future__ import annotations

from dispatcher.loadreport import (
    LoadResult,
    Sample,
    format_report,
    percentile,
    summarize,
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
) -> Sample:
    return Sample(sent, received, (received - sent) * 1000, queued, service, rank, rc, error)


def test_percentiles_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([], 50) == 0.0


def test_rate_utilisation_and_window() -> None:
    result = LoadResult(
        mode="open", offered_rate=10.0, concurrency=None, duration_s=2.0, warmup_s=1.0
    )
    result.samples = [sample(0.5, 0.6, 0, 50, 1)]  # answered in the warm-up: not measured
    result.samples += [sample(1 + i * 0.1, 1.05 + i * 0.1, 1.0, 50.0, 1 + i % 2) for i in range(20)]
    result.samples += [sample(2.9, 3.5, 0, 50, 1, rc=None, error="overloaded")]  # after the window
    s = summarize(result)
    assert s["achieved_rate"] == 10.0
    assert s["workers"] == {
        "1": {"jobs": 10, "utilisation": 0.25},
        "2": {"jobs": 10, "utilisation": 0.25},
    }
    assert s["rc"] == {"200": 20} and s["errors"] == {}
    assert s["latency"]["queue"]["p50"] == 1.0


def test_backend_and_failover_deltas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = LoadResult(
        mode="closed", offered_rate=None, concurrency=4, duration_s=1.0, warmup_s=0.0
    )
    result.samples = [sample(0.1, 0.2, 0, 10, 1) for _ in range(10)]
    result.backend_before = {"connections_accepted": 5, "connections_open": 1, "requests": 100}
    result.backend_after = {"connections_accepted": 10, "connections_open": 5, "requests": 113}
    result.stats_before = {"httpclient:connok": 0, "httpclient:connfail": 0}
    result.stats_after = {"httpclient:connok": 10, "httpclient:connfail": 3}
    s = summarize(result)
    assert s["backend"] == {"connections_accepted": 4, "connections_open": 4, "requests": 13}
    assert s["failovers"] == 3
    text = format_report(result)
    assert "closed loop, 4 in flight" in text and "failovers 3" in text
    write_plot(result, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
