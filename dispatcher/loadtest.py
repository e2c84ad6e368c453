"""`sipcurl load`: open-loop (fixed arrival rate) or closed-loop (fixed concurrency) load.

Open loop keeps its schedule whatever the replies do, so a saturated service shows up as a
growing queue wait instead of a slower sender. It speaks the wire protocol directly on one
DEALER socket: a client library would only add per-request cost here.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from dispatcher.loadreport import LoadResult, Sample, format_report, summarize, write_plot

__all__ = ["JobSpec", "format_report", "parse_jobs", "result_to_json", "run_load", "write_plot"]

DRAIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class JobSpec:
    request: dict[str, Any]
    weight: int = 1


def parse_jobs(specs: list[str]) -> list[JobSpec]:
    """`op=http_connect connection=api url=/x weight=3`; `key:=json` for typed values."""
    jobs = []
    for spec in specs:
        request: dict[str, Any] = {}
        weight = 1
        for token in shlex.split(spec):
            if ":=" in token:
                key, value = token.split(":=", 1)
                request[key] = json.loads(value)
            elif "=" in token:
                key, value = token.split("=", 1)
                if key == "weight":
                    weight = int(value)
                elif key.startswith("pv."):
                    request.setdefault("pv", {})[key[3:]] = value
                else:
                    request[key] = value
            else:
                raise ValueError(f"expected key=value, got {token!r}")
        if "op" not in request:
            raise ValueError(f"job {spec!r} has no op=")
        if "id" in request or len(request) >= 15:
            raise ValueError(f"job {spec!r}: no id= and at most 14 fields (ids are the load's own)")
        jobs.append(JobSpec(request, weight))
    return jobs


def _fetch_json(url: str, data: bytes | None = None) -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as resp:
        return json.loads(resp.read())


def _rpc(sock: zmq.Socket, method: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
    rid = f"rpc-{method}-{time.monotonic()}"
    sock.send(msgpack.packb({"id": rid, "op": "rpc", "method": method}))
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1):
            break
        obj = msgpack.unpackb(sock.recv(), raw=False)
        for msg in obj if isinstance(obj, list) else [obj]:
            if msg.get("id") == rid:
                return msg.get("result")
    return None


def run_load(
    frontend: str,
    jobs: list[JobSpec],
    rate: float | None,
    concurrency: int | None,
    duration_s: float,
    warmup_s: float,
    backend_url: str | None = None,
    progress: bool = True,
) -> LoadResult:
    ctx: zmq.Context = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.sndhwm = sock.rcvhwm = 1_000_000
    sock.connect(frontend)
    cycle: list[bytes] = []
    for job in jobs:
        cycle.extend([msgpack.packb({k: v for k, v in job.request.items()})] * job.weight)
    result = LoadResult(
        mode="open" if rate else "closed",
        offered_rate=rate,
        concurrency=concurrency,
        duration_s=duration_s,
        warmup_s=warmup_s,
    )
    try:
        if backend_url:
            result.backend_before = _fetch_json(backend_url.rstrip("/") + "/_stats")
        result.stats_before = _rpc(sock, "stats.get_statistics")
        _drive(sock, cycle, result, rate, concurrency, duration_s + warmup_s, progress)
        result.stats_after = _rpc(sock, "stats.get_statistics")
        if backend_url:
            result.backend_after = _fetch_json(backend_url.rstrip("/") + "/_stats")
    finally:
        sock.close(0)
    return result


def _drive(
    sock: zmq.Socket,
    cycle: list[bytes],
    result: LoadResult,
    rate: float | None,
    concurrency: int | None,
    total_s: float,
    progress: bool,
) -> None:
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=round(total_s, 1), unit="s", file=sys.stderr, leave=False,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s {postfix}")  # fmt: skip
    start = time.monotonic()
    sent_at: dict[int, float] = {}
    next_id = 0
    interval = 1.0 / rate if rate else 0.0
    errors = 0
    last_bar = start
    # Each request is the job's map with an id appended (msgpack maps concatenate cheaply).
    while True:
        now = time.monotonic()
        elapsed = now - start
        sending = elapsed < total_s
        if sending:
            if rate:
                due = int(elapsed / interval) + 1
                while next_id < due:
                    _send(sock, cycle, next_id)
                    sent_at[next_id] = start + next_id * interval  # the schedule, not the send
                    next_id += 1
            else:
                while len(sent_at) < (concurrency or 1):
                    _send(sock, cycle, next_id)
                    sent_at[next_id] = time.monotonic()
                    next_id += 1
        elif not sent_at or now - start > total_s + DRAIN_TIMEOUT_S:
            break
        wait_ms = 50
        if sending and rate:
            wait_ms = max(0, int((start + next_id * interval - time.monotonic()) * 1000))
        if sock.poll(wait_ms):
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                got = time.monotonic()
                obj = msgpack.unpackb(frame, raw=False, strict_map_key=False)
                for msg in obj if isinstance(obj, list) else [obj]:
                    rid = msg.get("id")
                    if (
                        not isinstance(rid, int)
                        or rid not in sent_at
                        or msg.get("type") == "resume"
                    ):
                        continue
                    t0 = sent_at.pop(rid)
                    timing = msg.get("timing") or {}
                    err = (msg.get("error") or {}).get("code")
                    errors += bool(err)
                    result.samples.append(
                        Sample(
                            sent=t0 - start,
                            received=got - start,
                            latency_ms=(got - t0) * 1000.0,
                            queued_ms=float(timing.get("queued_ms", 0.0)),
                            service_ms=float(timing.get("service_ms", 0.0)),
                            rank=int((msg.get("worker") or {}).get("rank", 0)),
                            rc=msg.get("rc"),
                            error=err,
                        )
                    )
        if bar is not None and time.monotonic() - last_bar > 0.25:
            last_bar = time.monotonic()
            bar.n = min(round(last_bar - start, 1), bar.total)
            bar.set_postfix_str(f"sent {next_id} in flight {len(sent_at)} errors {errors}")
            bar.refresh()
    if bar is not None:
        bar.close()
    result.sent = next_id
    result.unanswered = len(sent_at)


def _send(sock: zmq.Socket, cycle: list[bytes], rid: int) -> None:
    body = cycle[rid % len(cycle)]
    count = body[0] & 0x0F  # job maps are small fixmaps: add "id" by bumping the count
    sock.send(bytes((0x80 | (count + 1),)) + body[1:] + msgpack.packb("id") + msgpack.packb(rid))


def result_to_json(result: LoadResult) -> dict[str, Any]:
    return summarize(result)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="service settings (for the frontend endpoint)")
    p.add_argument("--frontend", help="frontend endpoint (default from -c or tcp://127.0.0.1:5570)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--rate", type=float, help="open loop: requests per second")
    group.add_argument("--concurrency", type=int, help="closed loop: requests in flight")
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument(
        "--job",
        action="append",
        default=[],
        help="'op=http_connect connection=api url=/x weight=2'",
    )
    p.add_argument("--mix", help="file with one --job spec per line")
    p.add_argument("--backend", help="backend base URL, to count the TCP connections it saw")
    p.add_argument("--json", dest="json_path", help="write the summary as JSON here")
    p.add_argument("--plot", help="write a PNG plot here")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    frontend = args.frontend
    if frontend is None:
        from dispatcher.settings_loader import load_settings

        frontend = (
            load_settings(args.config).dispatcher.frontend
            if args.config
            else "tcp://127.0.0.1:5570"
        )
    specs = list(args.job)
    if args.mix:
        with open(args.mix, encoding="utf-8") as f:
            specs += [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if not specs:
        specs = ["op=http_connection_exists connection=api"]
    try:
        jobs = parse_jobs(specs)
    except ValueError as err:
        print(f"sipcurl load: {err}", file=sys.stderr)
        return 2
    if args.rate is None and args.concurrency is None:
        args.concurrency = 8
    result = run_load(frontend, jobs, args.rate, args.concurrency, args.duration, args.warmup,
                      args.backend, progress=not args.quiet)  # fmt: skip
    print(format_report(result))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(result_to_json(result), f, indent=2)
    if args.plot:
        write_plot(result, args.plot)
        print(f"plot: {args.plot}")
    return 0 if result.unanswered == 0 else 1
