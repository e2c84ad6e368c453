"""A minimal forward HTTP proxy: absolute-URI requests forwarded over a fresh upstream
connection each, the answer streamed back; the client's connection is kept alive when the
answer is framed (no CONNECT).

`seen` holds each proxied request line as `"METHOD absolute-URI"`, so a test asserts
that a transfer really went through the proxy.
"""

from __future__ import annotations

import socket
from typing import BinaryIO
from urllib.parse import urlsplit

from tests.servers.listener import Listener
from tests.servers.wire import MAX_LINE, Recorded, answer_text, serve_requests

UPSTREAM_TIMEOUT_S = 30.0
# Hop-by-hop: for this proxy only, never passed upstream (the body is re-framed).
HOP_BY_HOP = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "content-length",
    "upgrade",
}


class ProxyServer(Listener):
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.requests: list[Recorded] = []  # as received, Proxy-Authorization included
        super().__init__("testproxy")

    @property
    def count(self) -> int:
        """How many requests were forwarded."""
        return len(self.seen)

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.accepts = 0
            self.seen.clear()
            self.requests.clear()

    def __enter__(self) -> ProxyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(UPSTREAM_TIMEOUT_S)
        serve_requests(conn, number, lambda: self.stopping, self._record, self._forward)

    def _record(self, req: Recorded) -> None:
        with self._lock:
            self.requests.append(req)  # as received, Proxy-Authorization included

    def _forward(self, conn: socket.socket, req: Recorded) -> bool:
        """Forward one request; False ends the client connection."""
        method, target, headers, body = req.method, req.path, req.headers, req.body
        split = urlsplit(target)
        if method == "CONNECT" or split.scheme != "http" or not split.hostname:
            return answer_text(conn, 501, f"this proxy only forwards http:// URIs, not {target}")
        with self._lock:
            self.seen.append(f"{method} {target}")
        try:
            upstream = socket.create_connection(
                (split.hostname, split.port or 80), timeout=UPSTREAM_TIMEOUT_S
            )
        except OSError as exc:
            return answer_text(conn, 502, f"upstream unreachable: {exc}")
        self.track(upstream)
        try:
            path = (split.path or "/") + (f"?{split.query}" if split.query else "")
            forwarded = [f"{n}: {v}\r\n" for n, v in headers if n.lower() not in HOP_BY_HOP]
            if body or any(
                n.lower() in ("content-length", "transfer-encoding") for n, _ in headers
            ):
                forwarded.append(f"Content-Length: {len(body)}\r\n")
            request = f"{method} {path} HTTP/1.1\r\n{''.join(forwarded)}Connection: close\r\n\r\n"
            upstream.sendall(request.encode("latin-1") + body)
            return _relay(upstream.makefile("rb"), conn, method, keep=not req.wants_close)
        finally:
            self.untrack(upstream)
            upstream.close()


def _relay(upstream: BinaryIO, conn: socket.socket, method: str, *, keep: bool) -> bool:
    """Pass the upstream answer on as it arrives, framed for a kept client connection."""
    while True:
        status_line = upstream.readline(MAX_LINE)
        if not status_line:
            return answer_text(conn, 502, "upstream closed without an answer")
        status = int(status_line.split(b" ")[1]) if status_line.count(b" ") else 0
        head = [status_line]
        framing: dict[str, bytes] = {}
        while (line := upstream.readline(MAX_LINE)) not in (b"\r\n", b"\n", b""):
            name = line.split(b":")[0].strip().lower()
            if name in (b"connection", b"keep-alive", b"proxy-connection"):
                continue
            if name in (b"content-length", b"transfer-encoding"):
                framing[name.decode()] = line.split(b":", 1)[1].strip()
            head.append(line)
        if 100 <= status < 200 and status != 101:
            conn.sendall(b"".join(head) + b"\r\n")  # interim: the real answer follows
            continue
        break
    bodiless = method == "HEAD" or status in (204, 304)
    chunked = b"chunked" in framing.get("transfer-encoding", b"").lower()
    keep = keep and (bodiless or chunked or "content-length" in framing)
    conn.sendall(b"".join(head) + (b"" if keep else b"Connection: close\r\n") + b"\r\n")
    if bodiless:
        return keep
    if chunked:
        while True:
            size_line = upstream.readline(MAX_LINE)
            conn.sendall(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (line := upstream.readline(MAX_LINE)) not in (b"\r\n", b"\n", b""):
                    conn.sendall(line)
                conn.sendall(b"\r\n")
                return keep
            _copy(upstream, conn, size + 2)  # the data and its CRLF
    elif "content-length" in framing:
        _copy(upstream, conn, int(framing["content-length"]))
    else:
        while data := upstream.read1(65536):  # type: ignore[attr-defined]
            conn.sendall(data)
    return keep


def _copy(upstream: BinaryIO, conn: socket.socket, size: int) -> None:
    while size > 0:
        data = upstream.read1(min(size, 65536))  # type: ignore[attr-defined]
        if not data:
            raise OSError("upstream cut the body short")
        conn.sendall(data)
        size -= len(data)
