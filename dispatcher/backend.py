"""`sipcurl backend`: a local HTTP/HTTPS server to load-test against, never the bottleneck.

asyncio with a raw protocol and a hand-written HTTP/1.1 parser (keep-alive, pipelining,
Content-Length and chunked request bodies, `Expect: 100-continue`): no per-request
framework cost. `--processes N` adds SO_REUSEPORT processes; their counters live in shared
memory created before the fork, one row per process, so the sums are exact without locks.

Profiles come from the command line and can be overridden per request by query parameters
(`latency_ms`, `status`, `size`, `ctype`, `redirect`, `close`, `reset`, `stall`), so one
backend serves a mixed load. The fault parameters take `1` (always), `0` (never) or a
probability such as `0.05`; `latency_ms` takes a number or a distribution.
`GET /_stats` reports TCP connections accepted and open, requests, responses by status and
faults; `POST /_stats/reset` zeroes them (the open-connection gauge stays).

Capacity measured on this machine (one process, keep-alive, 64-byte body, no latency,
`wrk -t1 -c16`, 2 cores shared with wrk and other work): 43,000-55,000 requests/s; with
`--latency-ms 20` and 400 connections about 19,000 requests/s (the 20,000/s that 400/20 ms
allows). The service under test runs out long before this does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

import multiprocess

COUNTERS = (
    "accepted",
    "open",
    "requests",
    "faults_close",
    "faults_reset",
    "faults_stall",
    "redirects",
    "bad_requests",
)
STATUS_SLOTS = 600  # responses by status code 0..599
TIMER_LEAD_S = 0.0005
MAX_HEAD_BYTES = 65536
MAX_BODY_BYTES = 64 * 1024 * 1024
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

Latency = Callable[[random.Random], float]  # seconds


@dataclass(frozen=True)
class Profile:
    latency: Latency
    status: int
    status_mix: tuple[tuple[int, float], ...]
    error_rate: float
    body_size: int
    content_type: str
    redirect_rate: float
    close_rate: float
    reset_rate: float
    stall_rate: float


def parse_latency(text: str) -> Latency:
    """`20` (ms), `normal:p50=20,p99=60` or `lognormal:p50=20,p99=200`; ValueError if bad.

    Users know their API's p50 and p99, not mu and sigma, so both distributions are
    fitted to those two percentiles (z99 = 2.326 standard deviations apart).
    """
    text = text.strip()
    if ":" not in text:
        fixed = float(text) / 1000.0
        if not math.isfinite(fixed) or fixed < 0:
            raise ValueError(f"latency must be a number of ms >= 0, got {text!r}")
        return lambda _rng: fixed
    kind, _, params = text.partition(":")
    try:
        values = {
            k.strip(): float(v) for k, v in (item.split("=", 1) for item in params.split(","))
        }
        p50, p99 = values["p50"], values["p99"]
    except (ValueError, KeyError):
        raise ValueError(f"latency {text!r}: expected {kind}:p50=MS,p99=MS") from None
    if not (0 < p50 <= p99) or not math.isfinite(p99):
        raise ValueError(f"latency {text!r}: need 0 < p50 <= p99")
    z99 = statistics.NormalDist().inv_cdf(0.99)
    if kind == "normal":
        sigma = (p99 - p50) / z99
        return lambda rng: max(rng.gauss(p50, sigma), 0.0) / 1000.0
    if kind == "lognormal":
        mu = math.log(p50)
        sigma = (math.log(p99) - mu) / z99
        return lambda rng: rng.lognormvariate(mu, sigma) / 1000.0
    raise ValueError(f"unknown latency distribution {kind!r} (fixed, normal or lognormal)")


def parse_status_mix(text: str) -> tuple[tuple[int, float], ...]:
    """`500:1,503:2` -> ((500, 1/3), (503, 2/3)); ValueError if bad."""
    if not text.strip():
        return ((500, 1.0),)
    try:
        pairs = [
            (int(c), float(w)) for c, _, w in (item.partition(":") for item in text.split(","))
        ]
    except ValueError:
        raise ValueError(f"status mix {text!r}: expected CODE:WEIGHT,...") from None
    total = sum(w for _, w in pairs)
    if total <= 0 or any(not 100 <= c < STATUS_SLOTS or w < 0 for c, w in pairs):
        raise ValueError(f"status mix {text!r}: codes 100-599 and positive weights")
    return tuple((code, w / total) for code, w in pairs)


class Stats:
    """Counters in shared memory, one row per process, summed when read."""

    def __init__(self, processes: int = 1) -> None:
        self.rows = processes
        self.values = multiprocess.Array("q", processes * len(COUNTERS), lock=False)
        self.statuses = multiprocess.Array("q", processes * STATUS_SLOTS, lock=False)
        self.index = {name: i for i, name in enumerate(COUNTERS)}
        self.row = 0  # set in each child after the fork
        self.started = time.time()

    def add(self, name: str, n: int = 1) -> None:
        self.values[self.row * len(COUNTERS) + self.index[name]] += n

    def status(self, code: int) -> None:
        if 0 <= code < STATUS_SLOTS:
            self.statuses[self.row * STATUS_SLOTS + code] += 1

    def snapshot(self) -> dict[str, Any]:
        width = len(COUNTERS)
        total = [sum(self.values[r * width + i] for r in range(self.rows)) for i in range(width)]
        out: dict[str, Any] = {name: int(total[i]) for name, i in self.index.items()}
        out["connections_accepted"] = out.pop("accepted")
        out["connections_open"] = out.pop("open")
        codes: dict[str, int] = {}
        for r in range(self.rows):
            row = self.statuses[r * STATUS_SLOTS : (r + 1) * STATUS_SLOTS]
            for code, n in enumerate(row):
                if n:
                    codes[str(code)] = codes.get(str(code), 0) + int(n)
        out["responses"] = dict(sorted(codes.items()))
        out["processes"] = self.rows
        out["uptime_s"] = round(time.time() - self.started, 3)
        return out

    def reset(self) -> None:
        # Another process adding at this very moment may keep its old figure: reset
        # between runs, not during one.
        open_i = self.index["open"]
        for r in range(self.rows):
            for i in range(len(COUNTERS)):
                if i != open_i:
                    self.values[r * len(COUNTERS) + i] = 0
        for i in range(self.rows * STATUS_SLOTS):
            self.statuses[i] = 0


@dataclass
class Request:
    method: str
    target: str
    close: bool  # the client asked to close (Connection: close, or HTTP/1.0)
    http10: bool


# What to do with one request: (response bytes, close after it, delay s), or None for
# "nothing, ever" (a stall, or a reset that already happened).
Action = tuple[bytes, bool, float] | None


class _Http(asyncio.Protocol):
    """One connection: parses requests as bytes arrive and answers them in order."""

    def __init__(self, server: BackendServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a response is being delayed, or the connection is stalled
        self.pending: deque[Request] = deque()
        self.head: Request | None = None  # parsed head whose body is still arriving
        self.length = 0  # Content-Length of that body, or -1 for chunked
        self.chunk_at = 0  # chunked: where the next chunk-size line starts in buf

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.stats.add("accepted")
        self.server.stats.add("open")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.stats.add("open", -1)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            while self._parse_one():
                pass
        except ValueError as err:
            self.pending.clear()
            self.server.stats.add("bad_requests")
            self.server.stats.status(400)
            self._write(self.server.plain(400, f"bad request: {err}\n", close=True), True)
            return
        self._pump()

    def _parse_one(self) -> bool:
        """Move one complete request from the buffer to `pending`; False if incomplete."""
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    raise ValueError("request head too large")
                return False
            self.head, self.length, expect = self._parse_head(
                bytes(self.buf[:end]).decode("latin-1")
            )
            del self.buf[: end + 4]
            self.chunk_at = 0
            if expect and (self.length < 0 or len(self.buf) < self.length) and self.transport:
                # curl waits up to a second for this before sending a body over 1 KiB.
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.length >= 0:
            if len(self.buf) < self.length:
                return False
            del self.buf[: self.length]
        elif not self._chunked_complete():
            return False
        self.pending.append(self.head)
        self.head = None
        return True

    def _parse_head(self, head: str) -> tuple[Request, int, bool]:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError(f"request line {lines[0][:80]!r}")
        http10 = parts[2] == "HTTP/1.0"
        length, chunked, expect, conn = 0, False, False, ""
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"header line {line[:80]!r}")
            lname = name.strip().lower()
            if lname == "content-length":
                if not value.strip().isdigit():
                    raise ValueError(f"Content-Length {value.strip()[:40]!r}")
                length = int(value)
                if length > MAX_BODY_BYTES:
                    raise ValueError("body too large")
            elif lname == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lname == "expect":
                expect = value.strip().lower() == "100-continue"
            elif lname == "connection":
                conn = value.strip().lower()
        close = "close" in conn or (http10 and "keep-alive" not in conn)
        request = Request(parts[0], parts[1], close, http10)
        return request, -1 if chunked else length, expect

    def _chunked_complete(self) -> bool:
        """Consume chunks incrementally; True once the last chunk and trailers are in."""
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n", self.chunk_at)
            if eol < 0:
                if len(buf) - self.chunk_at > 1024:
                    raise ValueError("chunk size line too long")
                return False
            size_text = bytes(buf[self.chunk_at : eol]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ValueError(f"chunk size {size_text[:20]!r}") from None
            if size == 0:
                # Trailers (usually none) end with an empty line.
                if buf[eol + 2 : eol + 4] == b"\r\n":
                    del buf[: eol + 4]
                    return True
                end = buf.find(b"\r\n\r\n", eol)
                if end < 0:
                    return False
                del buf[: end + 4]
                return True
            if len(buf) < eol + 2 + size + 2:
                return False
            if buf[eol + 2 + size : eol + 4 + size] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            # The body itself is not needed: drop it to keep the buffer small.
            del buf[self.chunk_at : eol + 4 + size]
            if len(buf) > MAX_BODY_BYTES:
                raise ValueError("body too large")

    def _pump(self) -> None:
        """Answer pending requests in order, until one must wait."""
        while self.pending and not self.busy and self.transport is not None:
            action = self.server.respond(self, self.pending.popleft())
            if action is None:
                self.busy = True  # stalled for good, or already reset
                self.pending.clear()
                return
            data, close, delay = action
            if delay > 0:
                self.busy = True
                self.server.loop.call_later(delay, self._deliver, data, close)
                return
            self._write(data, close)

    def _deliver(self, data: bytes, close: bool) -> None:
        self.busy = False
        self._write(data, close)
        self._pump()

    def _write(self, data: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self.pending.clear()
            self.transport.close()
            self.transport = None

    def reset(self) -> None:
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER on with a zero timeout: close() sends RST, not FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            self.transport.abort()
            self.transport = None


REASONS = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           408: "Request Timeout", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip


def _chance(value: str | None, default: float, rng: random.Random) -> bool:
    """A query flag: blank/`1`/`true` always, `0`/`false` never, `0.05` that probability."""
    if value is None:
        return default > 0 and rng.random() < default
    value = value.strip().lower()
    if value in FALSE_WORDS:
        return False
    try:
        p = float(value)
    except ValueError:
        return True
    return p >= 1 or rng.random() < p


class BackendServer:
    """The per-process responder: profile + per-request overrides -> one action."""

    def __init__(self, profile: Profile, stats: Stats, seed: int | None = None) -> None:
        self.profile = profile
        self.stats = stats
        self.rng = random.Random(seed)
        self.loop = asyncio.get_event_loop()
        self._bodies: dict[tuple[int, str, int], bytes] = {}
        self._latencies: dict[str, Latency] = {}

    def respond(self, conn: _Http, req: Request) -> Action:
        path, _, query_text = req.target.partition("?")
        if path == "/_stats" or path.startswith("/_stats/"):
            return self._stats(req, path)
        self.stats.add("requests")
        q = {k: v[0] for k, v in parse_qs(query_text, keep_blank_values=True).items()}
        p, rng = self.profile, self.rng
        try:
            if _chance(q.get("stall"), p.stall_rate, rng):
                self.stats.add("faults_stall")
                return None  # never answer; the connection stays until the client gives up
            if _chance(q.get("reset"), p.reset_rate, rng):
                self.stats.add("faults_reset")
                conn.reset()
                return None
            delay = self._latency(q["latency_ms"])(rng) if "latency_ms" in q else p.latency(rng)
            status = int(q["status"]) if "status" in q else self._status()
            if not 100 <= status < STATUS_SLOTS:
                raise ValueError(f"status {status}")
            size = int(q.get("size", p.body_size))
            if not 0 <= size <= MAX_BODY_BYTES:
                raise ValueError(f"size {size}")
        except ValueError as err:
            self.stats.add("bad_requests")
            self.stats.status(400)
            return self.plain(400, f"bad query parameter: {err}\n", req.close), req.close, 0.0
        ctype = q.get("ctype", p.content_type).replace("\r", "").replace("\n", "")
        location = None
        # A redirected request lands on /_r...: it is never redirected again by the profile.
        if _chance(
            q.pop("redirect", None), 0.0 if path.startswith("/_r") else p.redirect_rate, rng
        ):
            self.stats.add("redirects")
            status = 302
            location = f"/_r{path}" + (f"?{urlencode(q)}" if q else "")
        close = req.close or _chance(q.get("close"), p.close_rate, rng)
        if close and not req.close:
            self.stats.add("faults_close")
        self.stats.status(status)
        data = self._response(status, size, ctype, close, location, req)
        # epoll rounds its timeout up to whole milliseconds, so timers fire 0-1 ms late;
        # aiming half a millisecond early centres the latency on what was asked for.
        return data, close, (max(delay - TIMER_LEAD_S, 1e-6) if delay > 0 else 0.0)

    def _latency(self, spec: str) -> Latency:
        draw = self._latencies.get(spec)
        if draw is None:
            draw = parse_latency(spec)
            if len(self._latencies) < 256:
                self._latencies[spec] = draw
        return draw

    def _status(self) -> int:
        p = self.profile
        if p.error_rate and self.rng.random() < p.error_rate:
            x, acc = self.rng.random(), 0.0
            for code, weight in p.status_mix:
                acc += weight
                if x <= acc:
                    return code
            return p.status_mix[-1][0]
        return p.status

    def _response(
        self, status: int, size: int, ctype: str, close: bool, location: str | None, req: Request
    ) -> bytes:
        key = (status, ctype, size)
        body = self._bodies.get(key)
        if body is None:
            body = (b"x" * (size - 1) + b"\n") if size > 0 else b""
            if len(self._bodies) < 1024 and size <= 65536:
                self._bodies[key] = body
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        )
        if location:
            head += f"Location: {location}\r\n"
        if close:
            head += "Connection: close\r\n"
        elif req.http10:
            head += "Connection: keep-alive\r\n"
        return (head + "\r\n").encode("latin-1") + (b"" if req.method == "HEAD" else body)

    def plain(self, status: int, text: str, close: bool) -> bytes:
        body = text.encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        )
        return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body

    def _stats(self, req: Request, path: str) -> Action:
        if path.rstrip("/") == "/_stats/reset":
            if req.method != "POST":
                return self.plain(405, "POST /_stats/reset\n", req.close), req.close, 0.0
            self.stats.reset()
        body = json.dumps(self.stats.snapshot()).encode()
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        )
        if req.close:
            head += "Connection: close\r\n"
        return (head + "\r\n").encode() + body, req.close, 0.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (port 0 = any free port)")
    p.add_argument("--processes", type=int, default=1, help="server processes (SO_REUSEPORT)")
    p.add_argument(
        "--latency-ms",
        "--latency",
        dest="latency_ms",
        default="0",
        help="ms: 20, normal:p50=20,p99=60 or lognormal:p50=20,p99=200",
    )
    p.add_argument("--status", type=int, default=200, help="status of a normal response")
    p.add_argument(
        "--error-rate", type=float, default=0.0, help="share of responses from --status-mix"
    )
    p.add_argument(
        "--status-mix", default="500:1", help="error statuses and weights, e.g. 500:1,503:2"
    )
    p.add_argument("--body-size", type=int, default=64, help="response body bytes")
    p.add_argument("--content-type", default="text/plain")
    p.add_argument("--redirect-rate", type=float, default=0.0, help="302 to /_r<path>")
    p.add_argument(
        "--close-rate", type=float, default=0.0, help="close the connection after a response"
    )
    p.add_argument("--reset-rate", type=float, default=0.0, help="RST instead of a response")
    p.add_argument("--stall-rate", type=float, default=0.0, help="never answer")
    p.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate")
    p.add_argument("--seed", type=int, default=None, help="for repeatable random profiles")
    p.add_argument(
        "--verbose",
        dest="print_stats",
        action="store_true",
        help="print the counters to stderr every --stats-every seconds",
    )
    p.add_argument("--stats-every", type=float, default=5.0, help=argparse.SUPPRESS)


def _profile(args: argparse.Namespace) -> Profile:
    for name in ("error_rate", "redirect_rate", "close_rate", "reset_rate", "stall_rate"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
    if not 100 <= args.status < STATUS_SLOTS or args.body_size < 0:
        raise ValueError("--status must be 100-599 and --body-size >= 0")
    return Profile(
        latency=parse_latency(str(args.latency_ms)),
        status=args.status,
        status_mix=parse_status_mix(args.status_mix),
        error_rate=args.error_rate,
        body_size=args.body_size,
        content_type=args.content_type,
        redirect_rate=args.redirect_rate,
        close_rate=args.close_rate,
        reset_rate=args.reset_rate,
        stall_rate=args.stall_rate,
    )


def _tls_context() -> ssl.SSLContext:
    """A throw-away self-signed certificate for localhost and 127.0.0.1."""
    folder = tempfile.mkdtemp(prefix="sipcurl-backend-")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", key, "-out", cert],
            check=True, capture_output=True,
        )  # fmt: skip
    else:
        import trustme  # optional: only needed where openssl is not installed

        leaf = trustme.CA().issue_cert("localhost", "127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(cert)
        leaf.private_key_pem.write_to_path(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _serve(
    sock: socket.socket,
    profile: Profile,
    stats: Stats,
    row: int,
    tls: ssl.SSLContext | None,
    seed: int | None,
    print_every_s: float,
) -> None:
    stats.row = row

    async def print_stats() -> None:
        while True:
            await asyncio.sleep(print_every_s)
            print(json.dumps(stats.snapshot()), file=sys.stderr, flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = BackendServer(profile, stats, seed)
        srv = await loop.create_server(lambda: _Http(server), sock=sock, ssl=tls, backlog=4096)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        printer = loop.create_task(print_stats()) if print_every_s > 0 else None
        async with srv:
            await stop.wait()
        if printer is not None:
            printer.cancel()

    asyncio.run(main())


def run(args: argparse.Namespace) -> int:
    host, _, port_text = args.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
        profile = _profile(args)
        if args.processes < 1:
            raise ValueError("--processes must be at least 1")
    except ValueError as err:
        print(f"sipcurl backend: {err}", file=sys.stderr)
        return 2
    many = args.processes > 1
    try:
        sock = _listen_socket(host, port, reuse_port=many)
        port = sock.getsockname()[1]
        # Every process binds before any accepts, so the first line means "ready".
        extra = [_listen_socket(host, port, reuse_port=True) for _ in range(1, args.processes)]
        tls = _tls_context() if args.tls else None
    except (OSError, subprocess.CalledProcessError, ImportError) as err:
        print(f"sipcurl backend: cannot listen on {args.listen}: {err}", file=sys.stderr)
        return 1
    stats = Stats(args.processes)
    every = args.stats_every if (args.print_stats or getattr(args, "verbose", 0)) else 0.0
    children = []
    for i, child_sock in enumerate(extra, start=1):
        child = multiprocess.get_context("fork").Process(
            target=_serve,
            args=(
                child_sock,
                profile,
                stats,
                i,
                tls,
                None if args.seed is None else args.seed + i,
                0.0,
            ),
            daemon=True,
        )
        child.start()
        child_sock.close()
        children.append(child)
    shown = f"[{host}]" if ":" in host else host
    print(f"listening {'https' if tls else 'http'}://{shown}:{port}", flush=True)
    try:
        _serve(sock, profile, stats, 0, tls, args.seed, every)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(timeout=2)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="sipcurl backend")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
