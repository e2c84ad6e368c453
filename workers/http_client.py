"""Kamailio's http_client functions, with the return codes and results its code gives.

Each operation is a generator: it yields a configured `Transfer`, receives that transfer's
curl code, and returns the reply fields. The same code then serves a blocking caller
(`run_blocking`) and the worker's CurlMulti loop, where async transfers keep moving while a
synchronous call waits; failover is simply a second yield.

Return convention (functions.c): the HTTP status, or the CURLcode when the transfer failed,
-1 for internal errors; 0 becomes -1. The result is the body for 200 <= status < 500 only;
the no-connection functions keep its first line when query_result is 1.

Arguments are checked when the operation is created, before any transfer exists, so a
refused request never reaches curl and bad input never raises. Values go to curl as bytes
cut at the first NUL: Kamailio hands curl C strings.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pycurl

from dispatcher.config import Connection, Settings
from dispatcher.errors import PvError, mask_credentials
from workers import options
from workers.curlerrors import curlerror_text
from workers.curlstate import CurlState
from workers.pv import expand


@dataclass(frozen=True)
class Transfer:
    """A configured transfer and the connection cache it may use: a kept connection's
    own (its name), or None for a one-off cache closed with the transfer, which is what a
    Kamailio easy handle cleaned up after the call amounts to."""

    handle: pycurl.Curl
    pool: str | None


Op = Generator[Transfer, int, dict]
FAILOVER_OFFSET = 1000
# Kamailio keeps the last Content-Type and effective URL in 512-byte buffers and skips
# values that do not fit (functions.c: strlen < 511).
STATE_TEXT_LIMIT = 511
# "Content-Type: <type>" is built in a 256-byte buffer: longer lines are cut.
CTYPE_LINE_LIMIT = 255


class BadArgument(Exception):
    """An argument Kamailio would refuse (rc -1): never reaches the server."""


class _Body:
    """Kamailio's write_function: store whole chunks until the cap is reached, then keep
    reading without storing (the status stays what the server said), so an endless body
    under a cap never grows memory beyond the cap and one chunk."""

    __slots__ = ("chunks", "stored", "cap")

    def __init__(self, cap: int) -> None:
        self.chunks: list[bytes] = []
        self.stored = 0
        self.cap = cap

    def write(self, data: bytes) -> None:
        if not self.cap or self.stored < self.cap:
            self.chunks.append(data)
            self.stored += len(data)

    def value(self, oneline: bool) -> bytes:
        body = b"".join(self.chunks)
        if oneline:
            cut = body.find(b"\n")
            if cut >= 0:
                return body[:cut]  # a CR before the LF stays, and no cap applies to the line
        if self.cap and len(body) > self.cap:
            return body[: self.cap]
        return body


class _Headers:
    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)

    def pairs(self) -> list[tuple[str, str]]:
        """Header lines of every response of the transfer, as $httprhdr sees them: split at
        the first colon, trimmed; status lines, blank and folded lines skipped."""
        out = []
        for raw in self.lines:
            if not raw or raw[:1] in (b" ", b"\t", b"\r", b"\n") or raw.startswith(b"HTTP/"):
                continue
            name, sep, value = decode(raw).partition(":")
            if sep:
                out.append((name.strip(), value.strip()))
        return out


def decode(raw: bytes) -> str:
    """Text curl hands back (headers, URLs): UTF-8 when it is, else Latin-1; never lossy,
    and always encodable on the wire."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _text(value: Any, what: str) -> str:
    """A request field as text: str, bytes (msgpack bin) or a number; nothing else."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise BadArgument(f"{what} must be a string, not {type(value).__name__}")


def _c_string(value: str) -> bytes:
    """What curl sees of a value Kamailio hands it as a C string: its bytes up to a NUL."""
    return value.encode("utf-8", "surrogateescape").split(b"\0", 1)[0]


def _name(request: dict, field: str = "connection") -> str:
    value = request.get(field)
    if not isinstance(value, str):
        raise BadArgument(f"{field} must be a string, not {type(value).__name__}")
    return value


def _no_crlf(value: bytes, what: str) -> bytes:
    if b"\r" in value or b"\n" in value:
        raise BadArgument(f"CR/LF in {what}")
    return value


def _check_hdrs(hdrs: bytes) -> bytes:
    """A literal CRLF separates headers, as in Kamailio; nothing may end the header block
    (an empty line, a trailing CRLF) or hide a line break curl would pass on (bare CR/LF)."""
    for line in hdrs.split(b"\r\n"):
        if not line or b"\r" in line or b"\n" in line:
            raise BadArgument("hdrs would end the header block or hold a bare CR/LF")
    return hdrs


def join_url(con: Connection, url: str) -> str:
    """curl_con_query_url_f: only the suffix's first character is looked at."""
    if not url:
        return con.base_url
    return f"{con.base_url}{'' if url[0] == '/' else '/'}{url}"


def _join_url_bytes(con: Connection, url: bytes) -> bytes:
    """join_url on what curl will see."""
    base = _c_string(con.base_url)
    if not url:
        return base
    return base + (b"" if url[:1] == b"/" else b"/") + url


class HttpClient:
    def __init__(self, settings: Settings, state: CurlState) -> None:
        self.settings = settings
        self.http = settings.http_client
        self.state = state
        self.connections = {c.name: c for c in settings.connections}
        self._fixed_options = {
            c.name: options.connection_options(c, self.http) for c in settings.connections
        }
        self._ops: dict[str, Callable[[dict], Op | dict]] = {
            "http_connect": self.http_connect,
            "http_connect_raw": self.http_connect_raw,
            "http_get_redirect": self.http_get_redirect,
            "http_client_query": self.http_client_query,
            "http_client_get": self.http_client_get,
            "http_client_request": self.http_client_request,
            "http_get_content_type": self.http_get_content_type,
            "http_connection_exists": self.http_connection_exists,
        }

    def run(self, request: dict) -> Op | dict:
        op = request.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            return failed(f"unknown operation {op!r}")
        try:
            return handler(request)
        except (BadArgument, PvError) as err:
            return failed(str(err))

    def _expand(self, request: dict, field: str, *, crlf: bool = True) -> bytes:
        value = _text(request.get(field), field)
        if "$" in value:
            value = expand(value, request.get("pv") or {}, reject_crlf_in_values=not crlf)
        return _c_string(value)

    # -- state-only functions --

    def http_connection_exists(self, request: dict) -> dict:
        return {"rc": 1 if _name(request) in self.connections else 0}

    def http_get_redirect(self, request: dict) -> dict:
        name = _name(request)
        if name not in self.connections:
            return {"rc": -1, "result": ""}
        return {"rc": 1, "result": self.state.last_redirect.get(name, "")}

    def http_get_content_type(self, request: dict) -> dict:
        name = _name(request)
        if name not in self.connections:
            return {"result": None}
        return {"result": self.state.last_content_type.get(name, "")}

    # -- named connections --

    def http_connect(self, request: dict) -> Op | dict:
        return self._connect(request, expand_data=True)

    def http_connect_raw(self, request: dict) -> Op | dict:
        return self._connect(request, expand_data=False)

    def _connect(self, request: dict, *, expand_data: bool) -> Op | dict:
        name = _name(request)
        con = self.connections.get(name)
        if con is None:
            return failed(f"no connection named {name!r}")
        # A CR or LF in a URL is refused by libcurl itself (rc 3, connfail), as Kamailio's is.
        url = self._expand(request, "url")
        ctype = _text(request.get("content_type"), "content_type")
        ctype_bytes = _no_crlf(_c_string(ctype), "content_type")
        if expand_data:
            data = self._expand(request, "data")
        else:
            raw = request.get("data")
            if isinstance(raw, bytes):
                data = raw.split(b"\0", 1)[0]
            else:
                data = _c_string(_text(raw, "data"))
        return self._connect_op(con, url, ctype_bytes, data)

    def _connect_op(self, con: Connection, url: bytes, ctype: bytes, data: bytes) -> Op:
        rc, body = yield from self._connection_attempt(con, url, ctype, data)
        if rc > FAILOVER_OFFSET:
            # One failover step at most: the failover's own failure is final (functions.c).
            failover = self.connections.get(con.failover or "")
            if failover is None:
                rc, body = -1, b""
            else:
                rc, body = yield from self._connection_attempt(failover, url, ctype, data)
                if rc > FAILOVER_OFFSET:
                    rc -= FAILOVER_OFFSET
        reply = self._reply(rc, body)
        reply["content_type"] = self.state.last_content_type.get(con.name, "")
        return reply

    def _connection_attempt(
        self, con: Connection, url: bytes, ctype: bytes, data: bytes
    ) -> Generator[Transfer, int, tuple[int, bytes]]:
        state = self.state
        state.last_redirect[con.name] = ""
        state.last_content_type[con.name] = ""
        handle = state.handle_for(con.name, bool(con.keep_connections))
        setopt = handle.setopt
        setopt(pycurl.URL, _join_url_bytes(con, url))
        for option, value in self._fixed_options[con.name]:
            setopt(option, value)
        if data:
            handle.setopt(pycurl.POST, 1)
            handle.setopt(pycurl.POSTFIELDS, data)
            handle.setopt(pycurl.HTTPHEADER, [(b"Content-Type: " + ctype)[:CTYPE_LINE_LIMIT]])
        else:
            handle.setopt(pycurl.POST, 0)
        body, headers = self._collect(handle, con.maxdatasize)
        code = yield Transfer(handle, con.name if con.keep_connections else None)
        rc, result = self._outcome(handle, code, body, headers, oneline=False)
        if code == 0:
            effective = handle.getinfo_raw(pycurl.EFFECTIVE_URL) or b""
            if len(effective) < STATE_TEXT_LIMIT:
                state.last_redirect[con.name] = decode(effective)
            ctype_got = handle.getinfo_raw(pycurl.CONTENT_TYPE) or b""
            if len(ctype_got) < STATE_TEXT_LIMIT:
                state.last_content_type[con.name] = decode(ctype_got)
        state.release(con.name, handle)
        if con.failover and (code != 0 or rc >= 500):
            return rc + FAILOVER_OFFSET, b""
        return rc, result

    # -- no-connection functions --

    def http_client_query(self, request: dict) -> Op | dict:
        url = self._url(request)
        post = self._expand(request, "post")
        hdrs = self._hdrs(request)
        return self._query_op(url, post=post, hdrs=hdrs, method=None)

    def http_client_get(self, request: dict) -> Op | dict:
        url = self._url(request)
        body = self._expand(request, "body")
        return self._query_op(url, post=body, hdrs=self._hdrs(request), method=b"GET")

    def http_client_request(self, request: dict) -> Op | dict:
        method = _no_crlf(self._expand(request, "method", crlf=False), "method")
        if not method:
            return failed("method has no value")
        url = self._url(request)
        body = self._expand(request, "body")
        return self._query_op(url, post=body, hdrs=self._hdrs(request), method=method, request=True)

    def _url(self, request: dict) -> bytes:
        url = self._expand(request, "url")  # CR/LF: libcurl refuses it, rc 3 (see _connect)
        if not url:
            raise BadArgument("URL has no value")
        return url

    def _hdrs(self, request: dict) -> bytes:
        hdrs = self._expand(request, "hdrs", crlf=False)
        return _check_hdrs(hdrs) if hdrs else b""

    def _query_op(
        self,
        url: bytes,
        *,
        post: bytes,
        hdrs: bytes,
        method: bytes | None,
        request: bool = False,
    ) -> Op:
        http = self.http
        handle = pycurl.Curl()
        options.apply_common(handle, url, http)
        options.apply_query_options(handle, http)
        if method is not None:
            handle.setopt(pycurl.CUSTOMREQUEST, method)
        if post:
            if not request:
                handle.setopt(pycurl.POST, 1)
            handle.setopt(pycurl.POSTFIELDS, post)
        elif request:
            handle.setopt(pycurl.POST, 0)
        if hdrs:
            handle.setopt(pycurl.HTTPHEADER, [hdrs])
        body, headers = self._collect(handle, http.query_maxdatasize)
        code = yield Transfer(handle, None)
        rc, result = self._outcome(handle, code, body, headers, oneline=http.query_result == 1)
        handle.close()
        return self._reply(rc, result)

    # -- shared --

    def _collect(self, handle: pycurl.Curl, cap: int) -> tuple[_Body, _Headers | None]:
        body = _Body(cap)
        handle.setopt(pycurl.WRITEFUNCTION, body.write)
        headers = None
        if self.http.response_headers:
            headers = _Headers()
            handle.setopt(pycurl.HEADERFUNCTION, headers.write)
        return body, headers

    def _outcome(
        self,
        handle: pycurl.Curl,
        code: int,
        body: _Body,
        headers: _Headers | None,
        *,
        oneline: bool,
    ) -> tuple[int, bytes]:
        """Counters and the stored result for one attempt (curL_request_url's tail)."""
        if headers is not None:
            self.state.response_headers = headers.pairs()
        if code != 0:
            self.state.connfail += 1
            return code, b""
        status = int(handle.getinfo(pycurl.RESPONSE_CODE))
        if status == 200:
            self.state.connok += 1
        else:
            self.state.connfail += 1
        result = body.value(oneline) if 200 <= status < 500 else b""
        return status, result

    def _reply(self, rc: int, result: bytes) -> dict:
        if rc == 0:
            rc = -1
        reply: dict[str, Any] = {"rc": rc, "result": result, "curlerror": curlerror_text(rc)}
        if self.http.response_headers:
            reply["headers"] = [list(p) for p in self.state.response_headers]
        return reply


def failed(detail: str) -> dict:
    # The detail may quote undecodable request bytes: make it text msgpack can carry.
    text = detail.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return {
        "rc": -1,
        "result": b"",
        "curlerror": curlerror_text(-1),
        "error_detail": mask_credentials(text),
    }


def run_blocking(client: HttpClient, request: dict) -> dict:
    """Drive one operation in the calling thread (in-process use and tests)."""
    op = client.run(request)
    if isinstance(op, dict):
        return op
    code: int | None = None
    while True:
        try:
            transfer = next(op) if code is None else op.send(code)
        except StopIteration as stop:
            return stop.value
        try:
            transfer.handle.perform()
            code = 0
        except pycurl.error as exc:
            code = int(exc.args[0])
