"""HTTP/1.1 framing shared by the test server and the proxy.

Percent-escapes and header bytes are read as latin-1 everywhere, so a test that sends
byte X gets byte X back: `str.encode("latin-1")` undoes every decode made here.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

MAX_LINE = 65536
MAX_HEADERS = 256
MAX_BODY = 64 * 1024 * 1024


class BadRequest(ValueError):
    """The peer sent something that is not HTTP/1.x; answered with 400 and a close."""


@dataclass
class Recorded:
    """One request exactly as the server received it."""

    method: str
    path: str  # the request target, query included
    headers: list[tuple[str, str]]  # wire order, repeated names kept
    body: bytes
    connection: int  # 1-based number of the TCP connection it arrived on
    client_cert: dict[str, Any] | None = None  # ssl.getpeercert() of a TLS client
    version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The last value of a header (what a lenient server would use), or None."""
        values = self.header_values(name)
        return values[-1] if values else None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def client_subject(self) -> str | None:
        """The TLS client certificate's subject as `CN=...,O=...`, or None."""
        if not self.client_cert:
            return None
        names = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
        parts = [
            f"{names.get(key, key)}={value}"
            for rdn in self.client_cert.get("subject", ())
            for key, value in rdn
        ]
        return ",".join(parts) or None

    @property
    def wants_close(self) -> bool:
        tokens = {t.strip().lower() for v in self.header_values("Connection") for t in v.split(",")}
        if "close" in tokens:
            return True
        return self.version == "HTTP/1.0" and "keep-alive" not in tokens


def read_head(reader: BinaryIO) -> tuple[str, str, str, list[tuple[str, str]]] | None:
    """Request line and headers; None when the peer closed before a request began."""
    line = reader.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore blank lines before a request
        line = reader.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise BadRequest("request line too long or cut")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) < 2 or not parts[0]:
        raise BadRequest(f"bad request line {line[:80]!r}")
    # A target with raw spaces is kept whole, so a test can see what a client really sent.
    version = parts.pop() if len(parts) > 2 and parts[-1].startswith("HTTP/") else "HTTP/1.0"
    method, target = parts[0], " ".join(parts[1:])
    headers: list[tuple[str, str]] = []
    while True:
        raw = reader.readline(MAX_LINE + 1)
        if raw in (b"\r\n", b"\n"):
            break
        if not raw.endswith(b"\n") or len(headers) >= MAX_HEADERS:
            raise BadRequest("header block cut, too long or too many headers")
        # Lenient on purpose: a malformed line is recorded, so a test can see what arrived.
        name, _, value = raw.decode("latin-1").rstrip("\r\n").partition(":")
        headers.append((name.strip(), value.strip(" \t")))
    return method, target, version, headers


def announces_body(headers: list[tuple[str, str]]) -> bool:
    for name, value in headers:
        if name.lower() == "transfer-encoding" or (
            name.lower() == "content-length" and value.strip() != "0"
        ):
            return True
    return False


def read_request(
    conn: Any, reader: BinaryIO
) -> tuple[str, str, str, list[tuple[str, str]], bytes] | None:
    """(method, target, version, headers, body) of the next request, None at a clean end of
    the connection; a client that expects 100-continue gets it (sparing curl its 1 s wait).
    Raises BadRequest."""
    head = read_head(reader)
    if head is None:
        return None
    method, target, version, headers = head
    expect = {v.lower() for n, v in headers if n.lower() == "expect"}
    if "100-continue" in expect and announces_body(headers):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    return method, target, version, headers, read_body(reader, headers)


def serve_requests(
    conn: Any,
    number: int,
    stopping: Callable[[], bool],
    record: Callable[[Recorded], None],
    answer: Callable[[Any, Recorded], bool],
) -> None:
    """Requests one after another on one connection: each recorded, then answered, until
    `answer` says False, the client ends or the server stops; a malformed one gets a 400."""
    reader = conn.makefile("rb")
    while not stopping():
        try:
            request = read_request(conn, reader)
        except BadRequest as exc:
            answer_text(conn, 400, str(exc))
            return
        if request is None:
            return
        method, target, version, headers, body = request
        cert = conn.getpeercert() if isinstance(conn, ssl.SSLSocket) else None
        req = Recorded(method, target, headers, body, number, cert or None, version)
        record(req)
        if not answer(conn, req):
            return


def answer_text(conn: Any, status: int, text: str) -> bool:
    """A plain-text answer that closes the connection (False: serve nothing more on it)."""
    data = f"{text}\n".encode("latin-1", "replace")
    conn.sendall(
        f"HTTP/1.1 {status} {reason_phrase(status)}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    return False


def read_body(reader: BinaryIO, headers: list[tuple[str, str]]) -> bytes:
    """The body framed by Content-Length or chunked encoding (trailers dropped)."""
    lookup = {name.lower(): value for name, value in headers}
    if "chunked" in lookup.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = reader.readline(MAX_LINE)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BadRequest(f"bad chunk size {size_line[:40]!r}") from None
            total += size
            if size < 0 or total > MAX_BODY:
                raise BadRequest("chunked body too large")
            if size == 0:
                while reader.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(chunks)
            chunks.append(_read_exactly(reader, size))
            reader.readline(MAX_LINE)
    if "content-length" in lookup:
        try:
            length = int(lookup["content-length"])
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise BadRequest("Content-Length out of range")
        return _read_exactly(reader, length)
    return b""


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise BadRequest("body cut short")
    return data


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


class Exchange:
    """One request on one connection, and the ways a route may answer it."""

    def __init__(self, conn: Any, req: Recorded, stop: threading.Event) -> None:
        self.conn = conn
        self.req = req
        self._stop = stop
        split = urlsplit(req.path)
        self.segments = [unquote(s, encoding="latin-1") for s in split.path.split("/")[1:]]
        self.query = parse_qs(split.query, keep_blank_values=True, encoding="latin-1")

    def segment(self, index: int, default: str = "") -> str:
        return self.segments[index] if index < len(self.segments) else default

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[0]

    def int_arg(self, name: str, default: int) -> int:
        """An integer query argument; ValueError (answered as 400) when it is not one."""
        value = int(self.arg(name, str(default)))
        if value < 0:
            raise ValueError(f"{name} must not be negative")
        return value

    def wait(self, seconds: float) -> bool:
        """Sleep that ends early when the server stops; True means stopping."""
        return self._stop.wait(seconds)

    def send_raw(self, data: bytes) -> None:
        self.conn.sendall(data)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        *,
        close: bool = False,
        chunked: bool = False,
    ) -> bool:
        """Send a whole response; returns whether the connection stays open."""
        headers = list(headers or [])
        names = {name.lower() for name, _ in headers}
        bodiless_status = status < 200 or status in (204, 304)
        lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if not bodiless_status and not names & {"content-length", "transfer-encoding"}:
            lines.append(
                "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
            )
        close = close or self.req.wants_close
        if close:
            lines.append("Connection: close")
        elif self.req.version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not bodiless_status and self.req.method != "HEAD":
            if chunked:
                data += b"".join(chunk(body[i : i + 8192]) for i in range(0, len(body), 8192))
                data += b"0\r\n\r\n"
            else:
                data += body
        self.conn.sendall(data)
        return not close
