"""`run_load` against a running service and backend: the figures a capacity planner reads."""

from __future__ import annotations

from pathlib import Path

from dispatcher import localrun
from dispatcher.loadtest import parse_jobs, parse_op, result_to_json, run_load


def test_failovers_queue_wait_and_backend_connections(tmp_path: Path) -> None:
    backend, url = localrun.start_backend(["--latency-ms", "20"], tmp_path)
    service = None
    try:
        dead = f"http://127.0.0.1:{localrun.free_port()}/down"  # refused: fails over to api
        text, frontend, _ = localrun.service_config(
            workers=2,
            http_client=f"keep_connections = 1\nhttpcon =\n  api=>{url}/api\n  dead=>{dead};failover=api",
        )
        service = localrun.start_service(text, 2, tmp_path)
        # Alternating jobs: even ids go to `dead` (then fail over), odd ones straight to api.
        jobs = [
            parse_op("http_connect:dead:/f"),
            *parse_jobs(["op=http_connect connection=api url=/a"]),
        ]
        result = run_load(frontend, jobs, None, 4, 1.0, 0.3, url, progress=False)
    finally:
        if service is not None:
            service.stop()
        backend.stop()
    assert result.error is None
    s = result_to_json(result)
    assert s["unanswered"] == 0 and set(s["rc"]) == {"200"}
    assert s["http_jobs"] == s["answered"] == result.sent
    assert s["failovers"] == (result.sent + 1) // 2
    # 4 in flight on 2 workers that each take ~20 ms: every job waits about one service time.
    assert s["latency"]["service"]["p50"] >= 19
    assert s["latency"]["queue"]["p50"] >= 10
    assert s["achieved_rate"] <= 2 * 1000 / 20 * 1.1
    # One kept connection per worker; every request reached the backend once.
    assert s["backend"] == {
        "connections_accepted": 2,
        "connections_open": 2,
        "requests": result.sent,
    }
    assert set(s["workers"]) == {"1", "2"}
    assert all(0.5 < w["utilisation"] <= 1.05 for w in s["workers"].values())
