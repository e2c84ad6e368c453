"""`sipcurl demo`: the capacity question answered on this machine in under a minute.

It starts a backend with a fixed latency L, the service with C workers doing synchronous
`http_connect` calls on a kept connection, and offers loads below, near and past the
capacity C/L. The report shows the achieved rate levelling off at C/L while the queue wait
grows, and that the backend saw exactly C TCP connections (keep_connections=1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dispatcher import localrun

DEMO_WORKERS = 4
DEMO_LATENCY_MS = 20
LOAD_FACTORS = (0.5, 0.9, 1.3)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=DEMO_WORKERS, help="C: synchronous workers")
    p.add_argument("--latency-ms", type=float, default=DEMO_LATENCY_MS, help="L: backend latency")
    p.add_argument("--seconds", type=float, default=6.0, help="duration of each load step")
    p.add_argument("--out", default="out/demo", help="folder for the plot and the JSON report")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from dispatcher import loadtest

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = localrun.workdir("sipcurl-demo-")
    capacity = args.workers * 1000.0 / args.latency_ms
    print(
        f"sipcurl demo: C={args.workers} workers, backend latency L={args.latency_ms:g} ms, "
        f"capacity C/L = {capacity:.0f} calls/s",
        flush=True,
    )
    backend, backend_url = localrun.start_backend(["--latency-ms", str(args.latency_ms)], work)
    service = None
    try:
        text, frontend, _events = localrun.service_config(
            workers=args.workers,
            http_client=f"keep_connections = 1\nhttpcon = api=>{backend_url}/api",
        )
        service = localrun.start_service(text, args.workers, work)
        jobs = loadtest.parse_jobs(["op=http_connect connection=api url=/demo"])
        results = []
        for factor in LOAD_FACTORS:
            rate = capacity * factor
            print(f"\n== offered {rate:.0f}/s ({factor:.0%} of capacity) ==", flush=True)
            result = loadtest.run_load(
                frontend=frontend,
                jobs=jobs,
                rate=rate,
                concurrency=None,
                duration_s=args.seconds,
                warmup_s=1.0,
                backend_url=backend_url,
                progress=not args.quiet,
            )
            print(loadtest.format_report(result), flush=True)
            results.append((factor, result))
        plot = out / "demo.png"
        loadtest.write_plot(results[-1][1], str(plot))
        print(f"\nsummary: offered -> achieved calls/s (capacity C/L = {capacity:.0f})")
        print(
            f"  {'load':>6} {'offered/s':>10} {'achieved/s':>11} {'queue p99 ms':>13} {'backend TCP':>12}"
        )
        for factor, result in results:
            s = loadtest.result_to_json(result)
            print(
                f"  {factor:>6.0%} {s['offered_rate']:>10.1f} {s['achieved_rate']:>11.1f} "
                f"{s['latency']['queue']['p99']:>13.1f} {s.get('backend', {}).get('connections_accepted', '?'):>12}"
            )
        service.stop()
        text, frontend, _events = localrun.service_config(
            workers=args.workers,
            http_client=f"keep_connections = 0\nhttpcon = api=>{backend_url}/api",
        )
        service = localrun.start_service(text, args.workers, work)
        print("\n== keep_connections = 0, offered 50% of capacity ==", flush=True)
        fresh = loadtest.run_load(
            frontend=frontend, jobs=jobs, rate=capacity * 0.5, concurrency=None,
            duration_s=args.seconds / 2, warmup_s=0.0, backend_url=backend_url, progress=not args.quiet,
        )  # fmt: skip
        f = loadtest.result_to_json(fresh)
        print(
            f"  keep_connections=1: {args.workers} workers kept {args.workers} TCP connections for every call; "
            f"keep_connections=0: {f['answered']} calls opened {f.get('backend', {}).get('connections_accepted', '?')}"
        )
        print(f"\nplot: {plot}")
        return 0
    finally:
        if service is not None:
            service.stop()
        backend.stop()
