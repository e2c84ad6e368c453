#!/usr/bin/env python3
"""Throughput before and after a second worker host joins a running dispatcher.

One dispatcher with its local workers, a backend of latency L, open loop past capacity;
then `sipcurl worker --connect` processes join (standing in for another host on this
machine) and the same load runs again.
Usage: scripts/scaleout [--local 2] [--remote 2] [--latency-ms 20] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dispatcher import loadtest, localrun  # noqa: E402
from dispatcher.client import Client  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--local", type=int, default=2)
    p.add_argument("--remote", type=int, default=2)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=4.0)
    args = p.parse_args()
    work = localrun.workdir("sipcurl-scaleout-")
    backend, url = localrun.start_backend(["--latency-ms", str(args.latency_ms)], work)
    endpoint = f"tcp://127.0.0.1:{localrun.free_port()}"
    http = f"keep_connections = 1\nhttpcon = api=>{url}/api"
    text, frontend, _ = localrun.service_config(
        workers=args.local,
        http_client=http,
        dispatcher=f"worker_endpoint = {endpoint}\nrouting = least_busy\n",
    )
    service = localrun.start_service(text, args.local, work)
    remote_conf = work / "remote.ini"
    remote_conf.write_text(f"[http_client]\n{http}\n")
    remotes: list[subprocess.Popen[bytes]] = []
    jobs = loadtest.parse_jobs(["op=http_connect connection=api url=/s"])
    rows = []
    try:
        for step in ("local only", "remote joined"):
            if step == "remote joined":
                remotes = [subprocess.Popen([*localrun.SIPCURL, "worker", "--connect", endpoint, "-c", str(remote_conf)],
                                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                           for _ in range(args.remote)]  # fmt: skip
                with Client(frontend) as client:
                    deadline = time.monotonic() + 15
                    while time.monotonic() < deadline:
                        workers = client.call("rpc", method="core.workers")["result"]
                        if sum(w["state"] == "ready" for w in workers) == args.local + args.remote:
                            break
                        time.sleep(0.1)
            total = args.local + (args.remote if remotes else 0)
            capacity = total * 1000 / args.latency_ms
            offered = (args.local + args.remote) * 1000 / args.latency_ms * 1.2
            result = loadtest.result_to_json(
                loadtest.run_load(
                    frontend, jobs, offered, None, args.seconds, 1.0, url, progress=False
                )
            )
            rows.append(
                (step, total, capacity, offered, result["achieved_rate"], result["workers"])
            )
            print(
                f"{step:>14}: {total} workers, C/L {capacity:.0f}/s, offered {offered:.0f}/s, achieved {result['achieved_rate']:.1f}/s",
                flush=True,
            )
    finally:
        for proc in remotes:
            proc.kill()
            proc.wait(timeout=5)
        service.stop()
        backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
