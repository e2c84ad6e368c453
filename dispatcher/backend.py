"""`sipcurl backend`: a local HTTP/HTTPS server to load-test against, never the bottleneck.

asyncio with a raw protocol (no per-request framework cost); `--processes N` adds
SO_REUSEPORT processes sharing their counters in shared memory. Profiles come from the
command line and can be overridden per request by query parameters (`latency_ms`, `status`,
`size`, `ctype`, `redirect`, `close`, `reset`, `stall`), so one backend serves a mixed load.
`GET /_stats` reports TCP connections accepted and open, requests, statuses and faults;
`POST /_stats/reset` zeroes them.

Measured here (one process, keep-alive, tiny body, no latency, 2 cores shared with the
client): see the README's backend figure (`scripts/backend-capacity`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import multiprocess

COUNTERS = (
    "accepted",
    "open",
    "requests",
    "faults_close",
    "faults_reset",
    "faults_stall",
    "redirects",
)
STATUS_SLOTS = 600  # responses by status code 0..599
TIMER_LEAD_S = 0.0005


@dataclass(frozen=True)
class Profile:
    latency: Callable[[random.Random], float]  # seconds
    status: int
    status_mix: tuple[tuple[int, float], ...]
    error_rate: float
    body_size: int
    content_type: str
    redirect_rate: float
    close_rate: float
    reset_rate: float
    stall_rate: float


def parse_latency(text: str) -> Callable[[random.Random], float]:
    """`20` (ms), `normal:p50=20,p99=60` or `lognormal:p50=20,p99=200`."""
    if ":" not in text:
        fixed = float(text) / 1000.0
        return lambda _rng: fixed
    kind, _, params = text.partition(":")
    values = dict(item.split("=", 1) for item in params.split(","))
    p50, p99 = float(values["p50"]), float(values["p99"])
    z99 = statistics.NormalDist().inv_cdf(0.99)
    if kind == "normal":
        sigma = max((p99 - p50) / z99, 0.0)
        return lambda rng: max(rng.gauss(p50, sigma), 0.0) / 1000.0
    if kind == "lognormal":
        mu = math.log(p50)
        sigma = max((math.log(p99) - mu) / z99, 0.0)
        return lambda rng: rng.lognormvariate(mu, sigma) / 1000.0
    raise ValueError(f"unknown latency distribution {kind!r}")


def parse_status_mix(text: str) -> tuple[tuple[int, float], ...]:
    if not text:
        return ((500, 1.0),)
    pairs = [item.split(":") for item in text.split(",")]
    total = sum(float(w) for _, w in pairs)
    return tuple((int(code), float(w) / total) for code, w in pairs)


class Stats:
    """Counters in shared memory, so every backend process adds to the same figures."""

    def __init__(self) -> None:
        self.values = multiprocess.Array("q", len(COUNTERS), lock=False)
        self.statuses = multiprocess.Array("q", STATUS_SLOTS, lock=False)
        self.index = {name: i for i, name in enumerate(COUNTERS)}

    def add(self, name: str, n: int = 1) -> None:
        self.values[self.index[name]] += n

    def status(self, code: int) -> None:
        if 0 <= code < STATUS_SLOTS:
            self.statuses[code] += 1

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: int(self.values[i]) for name, i in self.index.items()}
        out["connections_accepted"] = out.pop("accepted")
        out["connections_open"] = out.pop("open")
        out["responses"] = {str(c): int(n) for c, n in enumerate(self.statuses) if n}
        return out

    def reset(self) -> None:
        for name, i in self.index.items():
            if name != "open":
                self.values[i] = 0
        for i in range(STATUS_SLOTS):
            self.statuses[i] = 0


class _Http(asyncio.Protocol):
    def __init__(self, server: BackendServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.pending: list[tuple[str, str, bytes]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.stats.add("accepted")
        self.server.stats.add("open")

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.stats.add("open", -1)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) < 2:
                self._close()
                return
            length = 0
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip() or 0)
                elif lname == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            body_start = head_end + 4
            if chunked:
                end = self.buf.find(b"0\r\n\r\n", body_start)
                if end < 0:
                    return
                body, self.buf = b"", self.buf[end + 5 :]
            else:
                if len(self.buf) < body_start + length:
                    return
                body, self.buf = (
                    self.buf[body_start : body_start + length],
                    self.buf[body_start + length :],
                )
            self.pending.append((parts[0], parts[1], body))
            if not self.busy:
                self._next()

    def _next(self) -> None:
        if not self.pending or self.transport is None:
            self.busy = False
            return
        self.busy = True
        method, target, _body = self.pending.pop(0)
        self.server.respond(self, method, target)

    def send(self, data: bytes, close: bool = False) -> None:
        if self.transport is None:
            return
        self.transport.write(data)
        if close:
            self._close()
            return
        self._next()

    def reset(self) -> None:
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            self.transport.abort()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


REASONS = {200: "OK", 201: "Created", 204: "No Content", 302: "Found", 400: "Bad Request",
           404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip


class BackendServer:
    def __init__(self, profile: Profile, stats: Stats, seed: int | None = None) -> None:
        self.profile = profile
        self.stats = stats
        self.rng = random.Random(seed)
        self.loop = asyncio.get_event_loop()
        self._bodies: dict[tuple[int, str, int], bytes] = {}

    def respond(self, conn: _Http, method: str, target: str) -> None:
        path, _, query_text = target.partition("?")
        if path.startswith("/_stats"):
            self._stats(conn, method, path)
            return
        self.stats.add("requests")
        q = {k: v[0] for k, v in parse_qs(query_text).items()} if query_text else {}
        p, rng = self.profile, self.rng
        if "stall" in q or rng.random() < p.stall_rate:
            self.stats.add("faults_stall")
            return  # never answer; the connection stays until the client gives up
        if "reset" in q or rng.random() < p.reset_rate:
            self.stats.add("faults_reset")
            conn.reset()
            return
        delay = float(q["latency_ms"]) / 1000.0 if "latency_ms" in q else p.latency(rng)
        status = int(q.get("status", 0)) or self._status()
        redirect = ("redirect" in q or rng.random() < p.redirect_rate) and not path.startswith(
            "/_r"
        )
        close = "close" in q or rng.random() < p.close_rate
        size = int(q.get("size", p.body_size))
        ctype = q.get("ctype", p.content_type)
        if redirect:
            self.stats.add("redirects")
            status = 302
        if close:
            self.stats.add("faults_close")
        data = self._response(
            status, size, ctype, close, f"/_r{path}" if redirect else None, method
        )
        self.stats.status(status)
        if delay > 0:
            # epoll rounds its timeout up to whole milliseconds, so timers fire 0-1 ms late;
            # aiming half a millisecond early centres the latency on what was asked for.
            self.loop.call_later(max(delay - TIMER_LEAD_S, 0.0), conn.send, data, close)
        else:
            conn.send(data, close)

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
        self, status: int, size: int, ctype: str, close: bool, location: str | None, method: str
    ) -> bytes:
        key = (status, ctype, size)
        body = self._bodies.get(key)
        if body is None:
            body = (b"x" * (size - 1) + b"\n") if size > 0 else b""
            if len(self._bodies) < 1024:
                self._bodies[key] = body
        head = f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        if location:
            head += f"Location: {location}\r\n"
        if close:
            head += "Connection: close\r\n"
        return (head + "\r\n").encode("latin-1") + (b"" if method == "HEAD" else body)

    def _stats(self, conn: _Http, method: str, path: str) -> None:
        if method == "POST" and path.rstrip("/").endswith("reset"):
            self.stats.reset()
        body = json.dumps(self.stats.snapshot()).encode()
        conn.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (port 0 = any free port)")
    p.add_argument("--processes", type=int, default=1, help="server processes (SO_REUSEPORT)")
    p.add_argument(
        "--latency-ms", default="0", help="20, normal:p50=20,p99=60 or lognormal:p50=20,p99=200"
    )
    p.add_argument("--latency", dest="latency_ms", help=argparse.SUPPRESS)
    p.add_argument("--status", type=int, default=200)
    p.add_argument(
        "--error-rate", type=float, default=0.0, help="share of responses from --status-mix"
    )
    p.add_argument(
        "--status-mix", default="500:1", help="error statuses and weights, e.g. 500:1,503:2"
    )
    p.add_argument("--body-size", type=int, default=64)
    p.add_argument("--content-type", default="text/plain")
    p.add_argument("--redirect-rate", type=float, default=0.0)
    p.add_argument(
        "--close-rate", type=float, default=0.0, help="close the connection after a response"
    )
    p.add_argument("--reset-rate", type=float, default=0.0, help="RST instead of a response")
    p.add_argument("--stall-rate", type=float, default=0.0, help="never answer")
    p.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate")
    p.add_argument("--seed", type=int, default=None)


def _profile(args: argparse.Namespace) -> Profile:
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
    folder = tempfile.mkdtemp(prefix="sipcurl-backend-")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _serve(
    sock: socket.socket,
    profile: Profile,
    stats: Stats,
    tls: ssl.SSLContext | None,
    seed: int | None,
) -> None:
    async def main() -> None:
        server = BackendServer(profile, stats, seed)
        srv = await asyncio.get_running_loop().create_server(
            lambda: _Http(server), sock=sock, ssl=tls
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        async with srv:
            await stop.wait()

    asyncio.run(main())


def run(args: argparse.Namespace) -> int:
    host, _, port_text = args.listen.rpartition(":")
    many = args.processes > 1
    sock = _listen_socket(host or "127.0.0.1", int(port_text), reuse_port=many)
    port = sock.getsockname()[1]
    tls = _tls_context() if args.tls else None
    stats = Stats()
    profile = _profile(args)
    children = []
    for i in range(1, args.processes):
        extra = _listen_socket(host or "127.0.0.1", port, reuse_port=True)
        child = multiprocess.get_context("fork").Process(
            target=_serve,
            args=(extra, profile, stats, tls, None if args.seed is None else args.seed + i),
            daemon=True,
        )
        child.start()
        children.append(child)
    print(f"listening {'https' if tls else 'http'}://{host or '127.0.0.1'}:{port}", flush=True)
    try:
        _serve(sock, profile, stats, tls, args.seed)
    finally:
        for child in children:
            child.terminate()
            child.join(timeout=2)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="sipcurl backend")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
