"""`sipcurl load`: open-loop (fixed arrival rate) or closed-loop (fixed concurrency) load.

Open loop keeps its schedule whatever the replies do, so a saturated service shows up as a
growing queue wait instead of a slower sender; requests that fall due together travel as
one batch frame (SPEC §2) so the sender keeps up. It speaks the wire protocol directly on
one DEALER socket: a client library would only add per-request cost here.
"""

from __future__ import annotations

import argparse
import configparser
import json
import shlex
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from dispatcher.loadreport import (
    LoadResult,
    Sample,
    format_report,
    summarize,
    write_plot,
)

__all__ = [
    "JobSpec",
    "format_report",
    "load_mix",
    "parse_jobs",
    "parse_op",
    "result_to_json",
    "run_load",
    "write_plot",
]

DEFAULT_FRONTEND = "tcp://127.0.0.1:5570"
DRAIN_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 5.0
MAX_BATCH = 64
# Ops whose first `--op` argument is a connection name; the others take a URL.
CONNECTION_OPS = frozenset(
    {"http_connect", "http_connect_raw", "http_get_redirect", "http_get_content_type",
     "http_connection_exists"}
)  # fmt: skip


@dataclass(frozen=True)
class JobSpec:
    request: dict[str, Any]
    weight: int = 1


def _job(request: dict[str, Any], weight: Any, where: str) -> JobSpec:
    if not isinstance(request.get("op"), str) or not request["op"]:
        raise ValueError(f"job {where} has no op")
    if "id" in request:
        raise ValueError(f"job {where}: no id (the load test numbers its requests)")
    try:
        weight = int(weight)
    except (TypeError, ValueError):
        raise ValueError(f"job {where}: weight must be a whole number, got {weight!r}") from None
    if not 1 <= weight <= 1000:
        raise ValueError(f"job {where}: weight must be 1-1000, got {weight}")
    return JobSpec(request, weight)


def parse_jobs(specs: list[str]) -> list[JobSpec]:
    """`op=http_connect connection=api url=/x weight=3`; `key:=json` for typed values,
    `pv.$var(x)=1` for pseudo-variables. ValueError names the bad spec."""
    jobs = []
    for spec in specs:
        request: dict[str, Any] = {}
        weight: Any = 1
        try:
            tokens = shlex.split(spec)
        except ValueError as err:
            raise ValueError(f"job {spec!r}: {err}") from None
        for token in tokens:
            key, sep, value = token.partition("=")
            if sep and key.endswith(":"):
                key = key[:-1]
                try:
                    request[key] = json.loads(value)
                except json.JSONDecodeError:
                    raise ValueError(f"job {spec!r}: {key}:= needs JSON, got {value!r}") from None
            elif sep:
                if key == "weight":
                    weight = value
                elif key.startswith("pv."):
                    request.setdefault("pv", {})[key[3:]] = value
                else:
                    request[key] = value
            else:
                raise ValueError(f"job {spec!r}: expected key=value, got {token!r}")
        jobs.append(_job(request, weight, repr(spec)))
    return jobs


def parse_op(spec: str) -> JobSpec:
    """`http_connect:api:/path`, `http_connection_exists:api` or `http_client_query:URL`."""
    op, _, rest = spec.partition(":")
    request: dict[str, Any] = {"op": op.strip()}
    if op in CONNECTION_OPS:
        connection, _, url = rest.partition(":")
        if not connection:
            raise ValueError(f"--op {spec!r}: expected {op}:CONNECTION[:URL]")
        request["connection"] = connection
        if op in ("http_connect", "http_connect_raw"):
            request["url"] = url
    elif rest:
        request["url"] = rest
    return _job(request, 1, f"--op {spec!r}")


def load_mix(path: str) -> list[JobSpec]:
    """A JSON list of jobs (`{"op": ..., "weight": 3}`, or `{"jobs": [...]}`), an INI file
    with one section per job, or lines of `--job` specs."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise ValueError(f"cannot read the mix {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if data is not None:
        items = data.get("jobs") if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError(f"{path}: expected a JSON list of job objects")
        return [
            _job(
                {k: v for k, v in item.items() if k != "weight"},
                item.get("weight", 1),
                f"{path}[{n}]",
            )
            for n, item in enumerate(items)
        ]
    if text.lstrip().startswith("["):
        ini = configparser.ConfigParser(interpolation=None)
        ini.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            ini.read_string(text, source=path)
        except configparser.Error as err:
            raise ValueError(f"{path}: {err}") from None
        jobs = []
        for name in ini.sections():
            fields = dict(ini[name])
            weight = fields.pop("weight", "1")
            request: dict[str, Any] = {}
            for key, value in fields.items():
                if key.startswith("pv."):
                    request.setdefault("pv", {})[key[3:]] = value
                else:
                    request[key] = value
            jobs.append(_job(request, weight, f"[{name}] in {path}"))
        return jobs
    lines = [line.strip() for line in text.splitlines()]
    return parse_jobs([line for line in lines if line and not line.startswith("#")])


def _fetch_json(url: str, data: bytes | None = None) -> dict[str, Any]:
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as resp:
        return dict(json.loads(resp.read()))


def _backend_stats(url: str, result: LoadResult) -> dict[str, Any] | None:
    try:
        return _fetch_json(url.rstrip("/") + "/_stats")
    except (OSError, ValueError, urllib.error.URLError) as err:
        result.notes.append(f"no backend figures: {url}/_stats: {getattr(err, 'reason', err)}")
        return None


def _rpc(sock: zmq.Socket, method: str, timeout_s: float | None = None) -> dict[str, Any] | None:
    """One RPC on the load's own socket; stray replies are dropped (there are none yet)."""
    rid = f"rpc-{method}-{time.monotonic()}"
    sock.send(msgpack.packb({"id": rid, "op": "rpc", "method": method}))
    deadline = time.monotonic() + (RPC_TIMEOUT_S if timeout_s is None else timeout_s)
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1):
            break
        obj = msgpack.unpackb(sock.recv(), raw=False, strict_map_key=False)
        for msg in obj if isinstance(obj, list) else [obj]:
            if isinstance(msg, dict) and msg.get("id") == rid:
                return {"result": msg.get("result"), "error": msg.get("error")}
    return None


def first_connection(frontend: str, timeout_s: float | None = None) -> str | None:
    """The first connection the configuration defines, for the default job.

    `httpclient.listcon` lists in Kamailio's order, which is the reverse of the httpcon
    lines (its list is built by prepending): the first one written comes last."""
    ctx: zmq.Context = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(frontend)
    try:
        reply = _rpc(sock, "httpclient.listcon", timeout_s)
    finally:
        sock.close(0)
    rows = (reply or {}).get("result")
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        return str(rows[-1].get("NAME"))
    return None


class _Mix:
    """The weighted job cycle, each request pre-packed so sending only appends the id."""

    def __init__(self, jobs: list[JobSpec]) -> None:
        self.ops: list[str] = []
        self.bodies: list[bytes] = []
        for job in jobs:
            packed = msgpack.packb(job.request)
            if not 0x80 <= packed[0] < 0x8F:
                packed = b""  # 15+ fields: not a fixmap, pack whole each time
            for _ in range(job.weight):
                self.ops.append(str(job.request.get("op", "")))
                self.bodies.append(packed)
        self.requests = [job.request for job in jobs for _ in range(job.weight)]

    def pack(self, rid: int) -> bytes:
        i = rid % len(self.bodies)
        body = self.bodies[i]
        if not body:
            return bytes(msgpack.packb({**self.requests[i], "id": rid}))
        # A fixmap's first byte holds its size: one more pair, "id" appended.
        return bytes((body[0] + 1,)) + body[1:] + b"\xa2id" + msgpack.packb(rid)


def _array(frames: list[bytes]) -> bytes:
    n = len(frames)
    head = bytes((0x90 | n,)) if n < 16 else b"\xdc" + n.to_bytes(2, "big")
    return head + b"".join(frames)


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
    """One load run; problems come back in `result.error` / `result.notes`, never raised."""
    result = LoadResult(
        mode="open" if rate else "closed",
        offered_rate=rate,
        concurrency=None if rate else (concurrency or 1),
        duration_s=duration_s,
        warmup_s=warmup_s,
    )
    if not jobs:
        result.error = "no jobs to send"
        return result
    if (rate is not None and rate <= 0) or (concurrency is not None and concurrency <= 0):
        result.error = "--rate and --concurrency must be positive"
        return result
    if duration_s <= 0 or warmup_s < 0:
        result.error = "--duration must be positive and --warmup not negative"
        return result
    ctx: zmq.Context = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.sndhwm = sock.rcvhwm = 1_000_000
    try:
        sock.connect(frontend)
    except zmq.ZMQError as err:
        sock.close(0)
        result.error = f"bad frontend endpoint {frontend!r}: {err}"
        return result
    try:
        reply = _rpc(sock, "stats.get_statistics")
        if reply is None:
            result.error = (
                f"no reply from {frontend} within {RPC_TIMEOUT_S:g} s (is `sipcurl serve` running?)"
            )
            return result
        result.stats_before = reply.get("result") if isinstance(reply.get("result"), dict) else None
        if result.stats_before is None:
            result.notes.append("no failover figures: stats.get_statistics gave no result")
        if backend_url:
            result.backend_before = _backend_stats(backend_url, result)
        _drive(sock, _Mix(jobs), result, rate, result.concurrency, progress)
        after = _rpc(sock, "stats.get_statistics")
        result.stats_after = (
            (after or {}).get("result") if isinstance((after or {}).get("result"), dict) else None
        )
        if backend_url and result.backend_before is not None:
            result.backend_after = _backend_stats(backend_url, result)
        if any(
            r.get("op") == "http_async_query" and r.get("mode") != "suspend"
            for r in (j.request for j in jobs)
        ):
            result.notes.append(
                "http_async_query in event mode: latency is until accepted, not completed"
            )
    finally:
        sock.close(0)
    return result


def _drive(
    sock: zmq.Socket,
    mix: _Mix,
    result: LoadResult,
    rate: float | None,
    concurrency: int | None,
    progress: bool,
) -> None:
    total_s = result.warmup_s + result.duration_s
    window = (result.warmup_s, total_s)
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=round(total_s, 1), unit="s", file=sys.stderr, leave=False,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s{postfix}")  # fmt: skip
    start = time.monotonic()
    in_flight: dict[int, tuple[float, int]] = {}  # id -> (sent, index in the mix)
    next_id = 0
    interval = 1.0 / rate if rate else 0.0
    errors = 0
    last_bar, last_count = start, 0
    samples = result.samples
    while True:
        now = time.monotonic()
        elapsed = now - start
        sending = elapsed < total_s
        if sending:
            batch: list[bytes] = []
            if rate:
                due = min(int(elapsed / interval) + 1, int(total_s / interval) + 1)
                if due > next_id:
                    result.send_lag_max_ms = max(
                        result.send_lag_max_ms, (elapsed - next_id * interval) * 1000.0
                    )
                while next_id < due:
                    at = next_id * interval  # the schedule, not the send: queueing shows
                    in_flight[next_id] = (at, next_id % len(mix.bodies))
                    result.sent_in_window += window[0] <= at < window[1]
                    batch.append(mix.pack(next_id))
                    next_id += 1
            else:
                while len(in_flight) < (concurrency or 1):
                    in_flight[next_id] = (elapsed, next_id % len(mix.bodies))
                    result.sent_in_window += window[0] <= elapsed < window[1]
                    batch.append(mix.pack(next_id))
                    next_id += 1
            for i in range(0, len(batch), MAX_BATCH):
                part = batch[i : i + MAX_BATCH]
                sock.send(part[0] if len(part) == 1 else _array(part))
        elif not in_flight or elapsed > total_s + DRAIN_TIMEOUT_S:
            break
        wait_ms = 50
        if sending and rate:
            wait_ms = max(0, min(50, int((start + next_id * interval - time.monotonic()) * 1000)))
        if sock.poll(wait_ms):
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                got = time.monotonic() - start
                try:
                    obj = msgpack.unpackb(frame, raw=False, strict_map_key=False)
                except (ValueError, msgpack.UnpackException):
                    continue
                for msg in obj if isinstance(obj, list) else [obj]:
                    if not isinstance(msg, dict):
                        continue
                    rid = msg.get("id")
                    if not isinstance(rid, int) or rid not in in_flight:
                        continue
                    resume = msg.get("type") == "resume"
                    if msg.get("suspended") and not resume:
                        continue  # suspend mode: the sample ends with the resume message
                    t0, index = in_flight.pop(rid)
                    timing = msg.get("timing") or {}
                    err = (msg.get("error") or {}).get("code")
                    if resume and not msg.get("http_ok"):
                        err = "http_failed"
                    errors += bool(err)
                    rc = msg.get("http_rs") if resume else msg.get("rc")
                    samples.append(
                        Sample(
                            sent=t0,
                            received=got,
                            latency_ms=(got - t0) * 1000.0,
                            queued_ms=float(timing.get("queued_ms", 0.0)),
                            service_ms=float(timing.get("service_ms", 0.0)),
                            rank=int((msg.get("worker") or {}).get("rank", 0) or 0),
                            rc=rc if isinstance(rc, int) else None,
                            error=str(err) if err else None,
                            op=mix.ops[index],
                        )
                    )
        if bar is not None and time.monotonic() - last_bar > 0.5:
            now = time.monotonic()
            rate_now = (len(samples) - last_count) / (now - last_bar)
            last_bar, last_count = now, len(samples)
            bar.n = min(round(now - start, 1), bar.total)
            bar.set_postfix_str(f"{rate_now:.0f}/s  in flight {len(in_flight)}  errors {errors}")
            bar.refresh()
    if bar is not None:
        bar.close()
    result.sent = next_id
    result.unanswered = len(in_flight)


def result_to_json(result: LoadResult) -> dict[str, Any]:
    return summarize(result)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="service settings (for the frontend endpoint)")
    p.add_argument("--frontend", help=f"frontend endpoint (default from -c or {DEFAULT_FRONTEND})")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--rate", type=float, help="open loop: requests per second")
    group.add_argument(
        "--concurrency", type=int, help="closed loop: requests in flight (default 8)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--op", action="append", default=[], help="OP:CONNECTION[:URL] or OP:URL")
    p.add_argument(
        "--job",
        action="append",
        default=[],
        help="'op=http_connect connection=api url=/x?latency_ms=50 weight=2'",
    )
    p.add_argument("--mix", help="jobs from a JSON list, an INI file or lines of --job specs")
    p.add_argument("--backend", help="backend base URL, to count the TCP connections it saw")
    p.add_argument("--json", dest="json_path", help="write the summary as JSON here")
    p.add_argument("--plot", help="write a PNG plot here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    def fail(message: str, code: int = 2) -> int:
        print(f"sipcurl load: {message}", file=sys.stderr)
        return code

    frontend = args.frontend
    if frontend is None:
        frontend = DEFAULT_FRONTEND
        if args.config:
            from dispatcher.errors import ConfigError
            from dispatcher.settings_loader import load_settings

            try:
                frontend = load_settings(args.config).dispatcher.frontend
            except ConfigError as err:
                return fail(str(err))
    try:
        jobs = [parse_op(spec) for spec in args.op] + parse_jobs(list(args.job))
        if args.mix:
            jobs += load_mix(args.mix)
    except ValueError as err:
        return fail(str(err))
    if not jobs:
        name = first_connection(frontend)
        if name is None:
            return fail(
                f"no job given and no connection learnt from {frontend} (is the service running?)",
                1,
            )
        jobs = [JobSpec({"op": "http_connect", "connection": name, "url": ""})]
        print(f"sipcurl load: no job given: http_connect on connection {name!r}", file=sys.stderr)
    if args.rate is None and args.concurrency is None:
        args.concurrency = 8
    result = run_load(frontend, jobs, args.rate, args.concurrency, args.duration, args.warmup,
                      args.backend, progress=not args.quiet)  # fmt: skip
    if result.error:
        return fail(result.error, 1)
    print(format_report(result))
    if args.json_path:
        try:
            with open(args.json_path, "w", encoding="utf-8") as f:
                json.dump(result_to_json(result), f, indent=2)
        except OSError as err:
            return fail(f"cannot write {args.json_path}: {err.strerror}", 1)
    if args.plot:
        problem = write_plot(result, args.plot)
        if problem:
            return fail(problem, 1)
        print(f"plot: {args.plot}")
    return 0 if result.unanswered == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="sipcurl load")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
