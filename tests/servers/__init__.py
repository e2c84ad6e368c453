"""Real HTTP servers on 127.0.0.1 for the tests: they count TCP connections and record
every request, so tests assert what a backend would really see.

Routes (a suffix after the route is allowed, e.g. `/status/500/x`):
`/echo` JSON of the request; `/status/<code>`; `/text?content=`; `/body?size=&ctype=&nul=1`;
`/redirect/<n>` (302 hops down to /echo); `/redirect-to?url=&code=`; `/loop`;
`/slow?ms=`; `/stall`; `/close`; `/reset`; `/cut?bytes=`; `/endless`; `/headers?set=N:V`;
`/auth/basic/<u>/<p>`; `/auth/digest/<u>/<p>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int
    client_cert: dict | None = None

    def header(self, name: str) -> str | None:
        for key, value in reversed(self.headers):
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


class HttpTestServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.accepts = 0
        self.open_connections = 0
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def reset(self) -> None:
        with self._lock:
            self.accepts = 0
            self.requests.clear()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving --

    def _serve(self) -> None:
        try:
            self.sock.settimeout(0.2)
        except OSError:
            return  # stopped before it started
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepts += 1
                number = self.accepts
                self.open_connections += 1
                self._conns.add(conn)
            threading.Thread(target=self._connection, args=(conn, number), daemon=True).start()

    def _connection(self, conn: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                conn.settimeout(5)
                conn = self.tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._conns.add(conn)
            conn.settimeout(None)
            reader = conn.makefile("rb")
            while not self._stop.is_set():
                req = self._read_request(reader, conn, number)
                if req is None:
                    return
                with self._lock:
                    self.requests.append(req)
                if not self._respond(conn, req):
                    return
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            with self._lock:
                self.open_connections -= 1
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _read_request(self, reader, conn: socket.socket, number: int) -> Recorded | None:  # type: ignore[no-untyped-def]
        line = reader.readline(65536)
        if not line:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) < 2:
            return None
        method, target = parts[0], parts[1]
        headers: list[tuple[str, str]] = []
        while True:
            h = reader.readline(65536)
            if not h or h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode("latin-1").rstrip("\r\n").partition(":")
            headers.append((name.strip(), value.strip()))
        lookup = {k.lower(): v for k, v in headers}
        body = b""
        if "content-length" in lookup:
            body = reader.read(int(lookup["content-length"]))
        elif lookup.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(reader.readline().strip().split(b";")[0], 16)
                if size == 0:
                    reader.readline()
                    break
                chunks.append(reader.read(size))
                reader.readline()
            body = b"".join(chunks)
        if lookup.get("expect", "").lower() == "100-continue" and not body:
            pass
        cert = None
        if isinstance(conn, ssl.SSLSocket):
            cert = conn.getpeercert() or None
        return Recorded(method, target, headers, body, number, cert)

    def _send(self, conn: socket.socket, resp: _Response, req: Recorded) -> bool:
        reason = REASONS.get(resp.status, "Status")
        head = [f"HTTP/1.1 {resp.status} {reason}"]
        names = {k.lower() for k, _ in resp.headers}
        head += [f"{k}: {v}" for k, v in resp.headers]
        no_body = resp.status < 200 or resp.status in (204, 304) or req.method == "HEAD"
        if (
            "content-length" not in names
            and "transfer-encoding" not in names
            and not (resp.status < 200 or resp.status in (204, 304))
        ):
            head.append(f"Content-Length: {len(resp.body)}")
        close = resp.close or (req.header("Connection") or "").lower() == "close"
        if close:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if not no_body:
            data += resp.body
        conn.sendall(data)
        return not close

    def _respond(self, conn: socket.socket, req: Recorded) -> bool:
        split = urlsplit(req.path)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        segs = [unquote(s) for s in path.split("/")[1:]]
        route = segs[0] if segs else ""
        q = {k: v[0] for k, v in query.items()}
        if route == "echo" or route == "":
            payload = {
                "method": req.method,
                "path": req.path,
                "headers": req.headers,
                "body": req.body.decode("latin-1"),
            }
            return self._send(
                conn,
                _Response(
                    200, json.dumps(payload).encode(), [("Content-Type", "application/json")]
                ),
                req,
            )
        if route == "status":
            code = int(segs[1])
            body = b"" if code < 200 or code in (204, 304) else f"status {code}\n".encode()
            if 100 <= code < 200:
                conn.sendall(f"HTTP/1.1 {code} {REASONS.get(code, 'Info')}\r\n\r\n".encode())
                return self._send(
                    conn,
                    _Response(200, b"after informational\n", [("Content-Type", "text/plain")]),
                    req,
                )
            return self._send(conn, _Response(code, body, [("Content-Type", "text/plain")]), req)
        if route == "text":
            ctype = q.get("ctype", "text/plain")
            return self._send(
                conn,
                _Response(
                    int(q.get("status", 200)),
                    q.get("content", "").encode("latin-1"),
                    [("Content-Type", ctype)],
                ),
                req,
            )
        if route == "body":
            size = int(q.get("size", 0))
            if "lines" in q:
                data = b"".join(f"line{i}\n".encode() for i in range(1, int(q["lines"]) + 1))
            else:
                unit = b"ab\0cd" if q.get("nul") else b"0123456789"
                data = (unit * (size // len(unit) + 1))[:size]
            headers = [("Content-Type", q.get("ctype", "application/octet-stream"))]
            if q.get("chunked"):
                conn.sendall(
                    f"HTTP/1.1 200 OK\r\nContent-Type: {headers[0][1]}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                    + b"".join(
                        b"%x\r\n%s\r\n" % (len(data[i : i + 1000]), data[i : i + 1000])
                        for i in range(0, len(data), 1000)
                    )
                    + b"0\r\n\r\n"
                )
                return True
            return self._send(conn, _Response(200, data, headers), req)
        if route == "redirect":
            n = int(segs[1]) if len(segs) > 1 else 1
            target = "/echo" if n <= 0 else f"/redirect/{n - 1}"
            return self._send(
                conn,
                _Response(302, b"moved\n", [("Location", target), ("Content-Type", "text/plain")]),
                req,
            )
        if route == "redirect-to":
            code = int(q.get("code", 302))
            return self._send(
                conn, _Response(code, b"moved\n", [("Location", q.get("url", "/echo"))]), req
            )
        if route == "loop":
            return self._send(conn, _Response(302, b"", [("Location", "/loop")]), req)
        if route == "slow":
            delay = float(q.get("ms", 1000)) / 1000.0
            if self._stop.wait(delay):
                return False
            return self._send(
                conn, _Response(200, b"slow\n", [("Content-Type", "text/plain")]), req
            )
        if route == "trickle":
            n, gap = int(q.get("bytes", 10)), float(q.get("ms", 100)) / 1000
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
            for _ in range(n):
                if self._stop.wait(gap):
                    return False
                conn.sendall(b"x")
            return True
        if route == "stall":
            self._stop.wait(60)
            return False
        if route == "close":
            return False
        if route == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if route == "cut":
            n = int(q.get("bytes", 10))
            conn.sendall(
                f"HTTP/1.1 200 OK\r\nContent-Length: {n + 1000}\r\n\r\n".encode() + b"x" * n
            )
            return False
        if route == "endless":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"1000\r\n" + b"y" * 4096 + b"\r\n"
            deadline = time.monotonic() + 30
            while not self._stop.is_set() and time.monotonic() < deadline:
                conn.sendall(chunk)
            return False
        if route == "headers":
            pairs = [tuple(v.split(":", 1)) for v in query.get("set", [])]
            return self._send(
                conn, _Response(200, b"headers\n", [(k, v.strip()) for k, v in pairs]), req
            )
        if route == "auth" and len(segs) >= 4:
            return self._auth(conn, req, segs[1], segs[2], segs[3])
        return self._send(
            conn, _Response(404, b"no such route\n", [("Content-Type", "text/plain")]), req
        )

    def _auth(
        self, conn: socket.socket, req: Recorded, scheme: str, user: str, password: str
    ) -> bool:
        given = req.header("Authorization") or ""
        ok_body = json.dumps({"method": req.method, "path": req.path, "user": user}).encode()
        if scheme == "basic":
            import base64

            want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if given == want:
                return self._send(
                    conn, _Response(200, ok_body, [("Content-Type", "application/json")]), req
                )
            return self._send(
                conn, _Response(401, b"auth\n", [("WWW-Authenticate", 'Basic realm="test"')]), req
            )
        realm = "test"
        if given.startswith("Digest "):
            fields = _digest_fields(given[7:])
            ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"{req.method}:{fields.get('uri', '')}".encode()).hexdigest()
            if fields.get("qop"):
                expect = hashlib.md5(
                    f"{ha1}:{fields.get('nonce')}:{fields.get('nc')}:{fields.get('cnonce')}:{fields.get('qop')}:{ha2}".encode()
                ).hexdigest()
            else:
                expect = hashlib.md5(f"{ha1}:{fields.get('nonce')}:{ha2}".encode()).hexdigest()
            if fields.get("username") == user and fields.get("response") == expect:
                return self._send(
                    conn, _Response(200, ok_body, [("Content-Type", "application/json")]), req
                )
        nonce = secrets.token_hex(16)
        challenge = f'Digest realm="{realm}", qop="auth", nonce="{nonce}", algorithm=MD5'
        return self._send(conn, _Response(401, b"auth\n", [("WWW-Authenticate", challenge)]), req)


def _digest_fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in _split_commas(text):
        key, _, value = part.strip().partition("=")
        out[key.strip()] = value.strip().strip('"')
    return out


def _split_commas(text: str) -> list[str]:
    parts, buf, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


class ProxyServer:
    """A forward HTTP proxy for absolute-URI requests; records what it forwarded."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            line = reader.readline().decode("latin-1")
            if not line:
                return
            method, target, _ = line.split(" ", 2)
            self.seen.append(f"{method} {target}")
            headers = []
            length = 0
            while True:
                h = reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                if name.lower() not in ("proxy-connection", "connection"):
                    headers.append(h)
            body = reader.read(length) if length else b""
            split = urlsplit(target)
            path = split.path + (f"?{split.query}" if split.query else "")
            try:
                up = socket.create_connection((split.hostname, split.port or 80), timeout=5)
            except OSError:
                conn.sendall(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            with up:
                up.sendall(
                    f"{method} {path} HTTP/1.1\r\n".encode()
                    + b"".join(headers)
                    + b"Connection: close\r\n\r\n"
                    + body
                )
                while data := up.recv(65536):
                    conn.sendall(data)

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=5)


def refused_url() -> str:
    """A URL on a port nobody listens on (port 1 is not safe: anything run as root may take it)."""
    return f"http://127.0.0.1:{env_free_port()}/"


def env_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["HttpTestServer", "ProxyServer", "Recorded", "env_free_port", "os", "refused_url"]
