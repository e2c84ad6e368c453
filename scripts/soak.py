#!/usr/bin/env python3
"""Soak: N mixed jobs through the service; RSS and file descriptors of every process
sampled as it goes; every job must get its answer (and every suspended one its resume).

Mix: http_connect on a kept connection, http_client_query, http_async_query as event and
as suspend, a 404 and a refused port. Closed loop at --concurrency.
Usage: scripts/soak [--jobs 1000000] [--concurrency 64] [--json out/soak.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import sys
import time

import msgpack
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dispatcher import localrun  # noqa: E402
from dispatcher.client import Client  # noqa: E402


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", help="write the samples here")
    args = p.parse_args()
    work = localrun.workdir("sipcurl-soak-")
    backend, url = localrun.start_backend(["--latency-ms", "0"], work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    text, frontend, _ = localrun.service_config(
        workers=args.workers, http_client=f"keep_connections = 1\nhttpcon = api=>{url}/api\n"
    )
    service = localrun.start_service(text, args.workers, work)
    mix = [
        {"op": "http_connect", "connection": "api", "url": "/soak"},
        {"op": "http_connect", "connection": "api", "url": "/soak?status=404"},
        {"op": "http_client_query", "url": f"{url}/q"},
        {"op": "http_client_query", "url": f"http://127.0.0.1:{dead}/"},
        {"op": "http_async_query", "url": f"{url}/e", "route": "SOAK", "timeout": 5000},
        {
            "op": "http_async_query",
            "url": f"{url}/s",
            "route": "SOAK",
            "mode": "suspend",
            "timeout": 5000,
        },
    ]
    samples = []
    try:
        with Client(frontend) as c:
            pids = [service.proc.pid] + [
                r["pid"] for r in c.call("rpc", method="core.workers")["result"]
            ]
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(frontend)
        pending: set[int] = set()  # answers outstanding (replies and resumes)
        waiting_resume: set[str] = set()
        ids = itertools.count()
        sent = answered = resumed = errors = 0
        start = last = time.monotonic()
        while answered < args.jobs or pending or waiting_resume:
            while sent < args.jobs and len(pending) + len(waiting_resume) < args.concurrency:
                rid = next(ids)
                sock.send(msgpack.packb({**mix[rid % len(mix)], "id": rid}))
                pending.add(rid)
                sent += 1
            if not sock.poll(10_000):
                print(
                    f"soak: nothing for 10 s with {len(pending)} replies and {len(waiting_resume)} resumes outstanding"
                )
                break
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                obj = msgpack.unpackb(frame, raw=False)
                for msg in obj if isinstance(obj, list) else [obj]:
                    if msg.get("type") == "resume":
                        waiting_resume.discard(msg["txn"])
                        resumed += 1
                        continue
                    pending.discard(msg.get("id"))
                    answered += 1
                    errors += "error" in msg
                    if msg.get("suspended"):
                        waiting_resume.add(msg["txn"])
            now = time.monotonic()
            if now - last >= 5 or answered >= args.jobs and not pending and not waiting_resume:
                last = now
                row = {"t": round(now - start, 1), "answered": answered, "rate": round(answered / (now - start)),
                       "rss_kib": [localrun.rss_kib(p) for p in pids], "fds": [fds(p) for p in pids]}  # fmt: skip
                samples.append(row)
                print(json.dumps(row), flush=True)
        sock.close(0)
    finally:
        service.stop()
        backend.stop()
    warm = samples[min(2, len(samples) - 1)]
    end = samples[-1]
    growth = [e - w for e, w in zip(end["rss_kib"], warm["rss_kib"], strict=False)]
    fd_growth = [e - w for e, w in zip(end["fds"], warm["fds"], strict=False)]
    unanswered = args.jobs - answered
    print(
        f"\njobs {args.jobs}, answered {answered}, unanswered {unanswered}, error replies {errors}, resumes {resumed}"
    )
    print(
        f"RSS after warm-up (KiB, dispatcher then workers): {warm['rss_kib']} -> {end['rss_kib']} (growth {growth})"
    )
    print(f"file descriptors: {warm['fds']} -> {end['fds']} (growth {fd_growth})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "samples": samples,
                    "unanswered": unanswered,
                    "errors": errors,
                    "resumes": resumed,
                },
                f,
                indent=1,
            )
    flat = all(g < 8 * 1024 for g in growth) and all(g <= 2 for g in fd_growth)
    return 0 if unanswered == 0 and flat else 1


if __name__ == "__main__":
    sys.exit(main())
