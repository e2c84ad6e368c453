#!/usr/bin/env python3
"""The capacity model, reproduced: C workers doing synchronous calls against a backend of
fixed latency L saturate at C/L, and the queue grows past it; keep_connections=1 shows C
backend TCP connections, keep_connections=0 one per call.

Each (C, L) is measured open-loop at 1.5x C/L (past saturation) for a few seconds; the
ratio achieved / (C/L) is printed next to the service time the workers really saw
(achieved / (C / mean service time) is what a Kamailio child can do at best).
Usage: scripts/capacity [--quick] [--json out/capacity.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dispatcher import loadtest, localrun  # noqa: E402


def measure(workers: int, latency_ms: float, keep: int, factor: float, seconds: float) -> dict:
    work = localrun.workdir("sipcurl-capacity-")
    backend, url = localrun.start_backend(["--latency-ms", str(latency_ms)], work)
    service = None
    try:
        text, frontend, _ = localrun.service_config(
            workers=workers, http_client=f"keep_connections = {keep}\nhttpcon = api=>{url}/api"
        )
        service = localrun.start_service(text, workers, work)
        capacity = workers * 1000.0 / latency_ms
        result = loadtest.run_load(
            frontend=frontend,
            jobs=loadtest.parse_jobs(["op=http_connect connection=api url=/c"]),
            rate=capacity * factor,
            concurrency=None,
            duration_s=seconds,
            warmup_s=1.0,
            backend_url=url,
            progress=False,
        )
        s = loadtest.result_to_json(result)
        s["capacity"] = capacity
        return s
    finally:
        if service is not None:
            service.stop()
        backend.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points, shorter runs")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    points = (
        [(2, 20.0), (4, 20.0)]
        if args.quick
        else [(2, 20.0), (4, 20.0), (8, 20.0), (4, 50.0), (8, 10.0)]
    )
    seconds = 3.0 if args.quick else 5.0
    rows = []
    print(
        f"{'C':>3} {'L ms':>6} {'C/L /s':>8} {'offered':>8} {'achieved':>9} {'ratio':>6} "
        f"{'service p50':>11} {'queue p99 ms':>12} {'TCP keep=1':>10} {'keep=0 calls->TCP':>18}",
        flush=True,
    )
    for workers, latency in points:
        sat = measure(workers, latency, keep=1, factor=1.5, seconds=seconds)
        fresh = measure(workers, latency, keep=0, factor=0.5, seconds=seconds / 2)
        ratio = sat["achieved_rate"] / sat["capacity"]
        rows.append(
            {
                "workers": workers,
                "latency_ms": latency,
                "saturated": sat,
                "keep0": fresh,
                "ratio": ratio,
            }
        )
        print(
            f"{workers:>3} {latency:>6.0f} {sat['capacity']:>8.0f} {sat['offered_rate']:>8.0f} "
            f"{sat['achieved_rate']:>9.1f} {ratio:>6.2f} {sat['latency']['service']['p50']:>11.1f} "
            f"{sat['latency']['queue']['p99']:>12.0f} {sat['backend']['connections_accepted']:>10} "
            f"{fresh['answered']:>8} -> {fresh['backend']['connections_accepted']:<8}",
            flush=True,
        )
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    bad = [r for r in rows if not 0.9 <= r["ratio"] <= 1.1]
    print(
        "capacity model holds within 10%"
        if not bad
        else f"outside 10%: {[(r['workers'], r['latency_ms']) for r in bad]}"
    )
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
