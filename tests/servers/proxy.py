"""A minimal forward HTTP proxy: absolute-URI requests forwarded over a fresh upstream
connection, the answer streamed back, one request per client connection (no CONNECT).

`seen` holds each proxied request line as `"METHOD absolute-URI"`, so a test asserts
that a transfer really went through the proxy.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from tests.servers.listener import Listener
from tests.servers.wire import BadRequest, Recorded, read_body, read_head

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
        reader = conn.makefile("rb")
        try:
            head = read_head(reader)
            if head is None:
                return
            method, target, version, headers = head
            body = read_body(reader, headers)
        except BadRequest as exc:
            return _answer(conn, 400, str(exc))
        with self._lock:
            self.requests.append(Recorded(method, target, headers, body, number, None, version))
        split = urlsplit(target)
        if method == "CONNECT" or split.scheme != "http" or not split.hostname:
            return _answer(conn, 501, f"this proxy only forwards http:// URIs, not {target}")
        with self._lock:
            self.seen.append(f"{method} {target}")
        try:
            upstream = socket.create_connection(
                (split.hostname, split.port or 80), timeout=UPSTREAM_TIMEOUT_S
            )
        except OSError as exc:
            return _answer(conn, 502, f"upstream unreachable: {exc}")
        self.track(upstream)
        try:
            path = (split.path or "/") + (f"?{split.query}" if split.query else "")
            forwarded = [f"{n}: {v}\r\n" for n, v in headers if n.lower() not in HOP_BY_HOP]
            if body or any(
                n.lower() in ("content-length", "transfer-encoding") for n, _ in headers
            ):
                forwarded.append(f"Content-Length: {len(body)}\r\n")
            upstream.sendall(
                f"{method} {path} HTTP/1.1\r\n{''.join(forwarded)}Connection: close\r\n\r\n".encode(
                    "latin-1"
                )
                + body
            )
            # The upstream answer carries `Connection: close`, so the client will not reuse
            # this connection either: relaying to EOF is the whole framing needed.
            while data := upstream.recv(65536):
                conn.sendall(data)
        finally:
            self.untrack(upstream)
            upstream.close()


def _answer(conn: socket.socket, status: int, text: str) -> None:
    reasons = {400: "Bad Request", 501: "Not Implemented", 502: "Bad Gateway"}
    data = f"{text}\n".encode("latin-1", "replace")
    conn.sendall(
        f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
