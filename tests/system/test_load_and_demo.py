"""`sipcurl load` and `sipcurl demo` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dispatcher import localrun
from tests.system.service import ROOT


def test_load_command_reports_rates_workers_and_backend_connections(tmp_path: Path) -> None:
    backend, url = localrun.start_backend(["--latency-ms", "5"], tmp_path)
    service = None
    try:
        text, frontend, _ = localrun.service_config(
            workers=2, http_client=f"keep_connections = 1\nhttpcon = api=>{url}/api"
        )
        service = localrun.start_service(text, 2, tmp_path)
        out = subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "load", "--frontend", frontend, "--concurrency", "4",
             "--duration", "2", "--warmup", "0.5", "--job", "op=http_connect connection=api url=/x",
             "--backend", url, "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"), "--quiet"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        if service is not None:
            service.stop()
        backend.stop()
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["unanswered"] == 0 and set(summary["rc"]) == {"200"}
    assert summary["backend"]["connections_accepted"] == 2  # one kept connection per worker
    assert set(summary["workers"]) == {"1", "2"}
    assert 100 < summary["achieved_rate"] < 2 * 1000 / 5 * 1.1  # bounded by C/L
    assert "latency ms" in out.stdout and (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_runs_and_shows_saturation(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "demo", "--seconds", "2", "--quiet", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "capacity C/L = 200" in out.stdout
    rows = [
        line.split()
        for line in out.stdout.splitlines()
        if line.strip().startswith(("50%", "90%", "130%"))
    ]
    achieved = {row[0]: float(row[2]) for row in rows}
    assert achieved["130%"] < 200 * 1.1  # saturated at C/L while 260/s were offered
    assert "keep_connections=0: " in out.stdout
    assert (tmp_path / "demo.png").exists()
