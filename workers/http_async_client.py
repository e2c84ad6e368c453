"""Kamailio's http_async_query on the worker's "async" CurlMulti.

All of a worker's async transfers share one multi, as Kamailio's async worker does, so
keep-alive connections are reused across queries; easy handles come from a free list
(reset between uses) because a fresh handle per request is measurably slower.

Kamailio's semantics kept: no User-Agent unless a connection gives one, redirects only
with follow_redirect, `$http_time` all zero on errors, `TIMEOUT` as the error of a timeout.
Safer than Kamailio by SPEC: http/https only, bodies binary-safe (Kamailio cuts at a NUL),
and only the final response is reported (never a redirect hop or an auth challenge).
The timeout is curl's total transfer timeout (Kamailio's is a per-socket inactivity timer,
so a server trickling a byte at a time never timed out there; here it does); 0 times out at
once, as in Kamailio. Deliberately different: an unsupported method is refused with rc -1
(Kamailio logs and keeps the default method), and a redirect chain stops at
`options.MAX_REDIRECTS` hops. A `connection` lends its base URL, credentials, User-Agent,
TLS settings and proxy; per-query fields still override them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pycurl

from dispatcher.config import Connection, Settings
from dispatcher.errors import PvError, mask_credentials
from dispatcher.protocol import HTTP_TIME_FIELDS
from workers import options
from workers.engine import Engine
from workers.http_client import join_url
from workers.pv import expand

log = logging.getLogger("sipcurl.async")

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
# curl's timer for each $http_time name, in the order of HTTP_TIME_FIELDS.
TIMES = tuple(
    zip(
        HTTP_TIME_FIELDS,
        (
            pycurl.TOTAL_TIME_T,
            pycurl.NAMELOOKUP_TIME_T,
            pycurl.CONNECT_TIME_T,
            pycurl.APPCONNECT_TIME_T,
            pycurl.PRETRANSFER_TIME_T,
            pycurl.STARTTRANSFER_TIME_T,
            pycurl.REDIRECT_TIME_T,
        ),
        strict=True,
    )
)
ZERO_TIMES = dict.fromkeys(HTTP_TIME_FIELDS, 0.0)
MAX_FREE_HANDLES = 256


class _Query:
    __slots__ = ("request", "txn", "body", "header_lines", "handle", "started")

    def __init__(self, request: dict, txn: str, handle: pycurl.Curl) -> None:
        self.request = request
        self.txn = txn
        self.handle = handle
        self.body: list[bytes] = []
        self.header_lines: list[bytes] = []
        self.started = time.monotonic()

    def on_header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):
            self.header_lines = []  # a new response: only the final one is reported
        self.header_lines.append(line)


class AsyncHttpClient:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        on_complete: Callable[[dict], None],
        worker: dict,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.on_complete = on_complete
        self.worker = worker
        self._free: list[pycurl.Curl] = []
        self._running: dict[str, _Query] = {}
        self.counts = {"requests": 0, "replies": 0, "errors": 0, "timeouts": 0}

    def stats(self) -> dict[str, int]:
        return self.counts

    def in_flight(self) -> int:
        return len(self._running)

    def start(self, request: dict, txn: str) -> dict[str, Any]:
        """Begin one http_async_query: the immediate reply, then on_complete exactly once.

        A request that cannot start gets rc -1 and no completion (Kamailio's SIP worker
        returns -1 the same way; counted in `errors` like a failed new_request)."""
        self.counts["requests"] += 1
        if txn in self._running:  # its completion would be mistaken for the other's
            self.counts["errors"] += 1
            return {"rc": -1, "txn": txn, "error_detail": f"transaction {txn!r} is in flight"}
        try:
            handle = self._prepare(request)
        except (ValueError, TypeError, AttributeError, OverflowError, PvError) as err:
            self.counts["errors"] += 1
            return {"rc": -1, "txn": txn, "error_detail": mask_credentials(str(err))}
        query = _Query(request, txn, handle)
        handle.setopt(pycurl.WRITEFUNCTION, query.body.append)
        handle.setopt(pycurl.HEADERFUNCTION, query.on_header)
        try:
            self.engine.add("async", handle, lambda h, code, msg: self._done(query, code, msg))
        except pycurl.error as err:
            self.counts["errors"] += 1
            self._recycle(handle)
            return {"rc": -1, "txn": txn, "error_detail": f"cannot start the transfer: {err}"}
        self._running[txn] = query
        reply: dict[str, Any] = {"rc": 1, "txn": txn}
        if request.get("mode") == "suspend":
            reply["suspended"] = True
        return reply

    def cancel(self, txn: str) -> bool:
        query = self._running.pop(txn, None)
        if query is None:
            return False
        self.engine.remove(query.handle)
        self._recycle(query.handle)
        return True

    def _prepare(self, request: dict) -> pycurl.Curl:
        """Everything that can refuse a request happens here, before a handle is used."""
        conf = self.settings.http_async_client
        pv = request.get("pv") or {}
        url = request.get("url", "")
        if not isinstance(url, str):
            raise TypeError("url must be a string")
        if "$" in url:
            url = expand(url, pv, reject_crlf_in_values=True)
        if "\r" in url or "\n" in url:
            raise ValueError("CR/LF in url")
        con = None
        if request.get("connection"):
            con = self.settings.connection(request["connection"])
            if con is None:
                raise ValueError(f"no connection named {request['connection']!r}")
            url = join_url(con, url)
        if not url:
            raise ValueError("url has no value")
        headers = request.get("headers") or []
        if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
            raise TypeError("headers must be a list of 'Name: value' strings")
        for header in headers:
            if "\r" in header or "\n" in header:
                raise ValueError("CR/LF in a header")
        method = request.get("method") or None  # "" = the default, as with no method
        if method is not None and method.upper() not in METHODS:
            # Kamailio logs and keeps the default method; a clear refusal is friendlier.
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        timeout = request.get("timeout", conf.connection_timeout)
        if not isinstance(timeout, int) or timeout < 0:
            raise ValueError(f"timeout must be a number of ms >= 0, got {timeout!r}")
        body = request.get("body")
        if body is not None and not isinstance(body, (bytes, str)):
            raise TypeError("body must be bytes or a string")
        handle = self._free.pop() if self._free else pycurl.Curl()
        try:
            self._apply(handle, request, url, con, headers, method, timeout)
        except (pycurl.error, TypeError, ValueError, OverflowError) as err:
            self._recycle(handle)
            raise ValueError(f"cannot set up the transfer: {err.args[-1]}") from None
        return handle

    def _apply(
        self,
        handle: pycurl.Curl,
        request: dict,
        url: str,
        con: Connection | None,
        headers: list[str],
        method: str | None,
        timeout: int,
    ) -> None:
        conf = self.settings.http_async_client
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PROTOCOLS, options.HTTP_ONLY)
        handle.setopt(pycurl.REDIR_PROTOCOLS, options.HTTP_ONLY)
        # Kamailio's timeout 0 fires at once (a zero libevent timeout); curl's 0 means never.
        handle.setopt(pycurl.TIMEOUT_MS, timeout or 1)
        self._apply_tls(handle, request, con)
        if headers:
            handle.setopt(pycurl.HTTPHEADER, headers)
        body = request.get("body")
        if body:
            data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogateescape")
            # POSTFIELDS, not COPYPOSTFIELDS: pycurl refuses a NUL in the latter; it keeps
            # a reference to `data` until reset(), so curl may read it later.
            handle.setopt(pycurl.POSTFIELDSIZE, len(data))
            handle.setopt(pycurl.POSTFIELDS, data)
        if method is not None:
            handle.setopt(pycurl.CUSTOMREQUEST, method.upper())
        username = request.get("username", con.username if con else None)
        password = request.get("password", con.password if con else None)
        if username:
            handle.setopt(pycurl.USERNAME, username)
            handle.setopt(
                pycurl.HTTPAUTH,
                request.get("authmethod", con.authmethod if con else conf.authmethod),
            )
        if password:
            handle.setopt(pycurl.PASSWORD, password)
        if con is None:
            handle.setopt(pycurl.USERAGENT, "")  # pycurl sets "PycURL/..."; Kamailio sends none
        else:
            handle.setopt(pycurl.USERAGENT, con.useragent)
            if con.http_proxy is not None and con.http_proxy_port > 0:
                handle.setopt(pycurl.PROXY, con.http_proxy)
                handle.setopt(pycurl.PROXYPORT, con.http_proxy_port)
        options.apply_redirects(handle, request.get("follow_redirect", conf.curl_follow_redirect))
        if request.get("keepalive", conf.tcp_keepalive):
            handle.setopt(pycurl.TCP_KEEPALIVE, 1)
            idle = request.get("ka_idle", conf.tcp_ka_idle)
            interval = request.get("ka_interval", conf.tcp_ka_interval)
            if idle:
                handle.setopt(pycurl.TCP_KEEPIDLE, idle)
            if interval:
                handle.setopt(pycurl.TCP_KEEPINTVL, interval)
        if conf.curl_verbose:
            handle.setopt(pycurl.VERBOSE, 1)
            handle.setopt(pycurl.DEBUGFUNCTION, _debug)

    def _apply_tls(self, handle: pycurl.Curl, request: dict, con: Connection | None) -> None:
        """Module-wide TLS settings, or a named connection's; per-query overrides win.

        An empty string override clears a file, as `$http_req(tls_client_cert) = ""` does."""
        conf = self.settings.http_async_client
        if con is None:
            peer, host = conf.tls_verify_peer, conf.tls_verify_host
            cert, key, ca_path = conf.tls_client_cert, conf.tls_client_key, conf.tls_ca_path
            version = conf.tls_version
        else:
            peer, host = con.verify_peer, con.verify_host
            cert, key, ca_path = con.client_cert, con.client_key, None
            version = con.tlsversion or conf.tls_version
            if con.cipher_suites:
                handle.setopt(pycurl.SSL_CIPHER_LIST, con.cipher_suites)
            if self.settings.http_client.cacert:  # what http_connect trusts for it
                handle.setopt(pycurl.CAINFO, self.settings.http_client.cacert)
        handle.setopt(pycurl.SSL_VERIFYPEER, 1 if request.get("tls_verify_peer", peer) else 0)
        handle.setopt(pycurl.SSL_VERIFYHOST, 2 if request.get("tls_verify_host", host) else 0)
        handle.setopt(pycurl.SSLVERSION, version)  # Kamailio sets it always
        cert = request.get("tls_client_cert", cert)
        key = request.get("tls_client_key", key)
        ca_path = request.get("tls_ca_path", ca_path)
        if cert:
            handle.setopt(pycurl.SSLCERT, cert)
        if key:
            handle.setopt(pycurl.SSLKEY, key)
        if ca_path:
            handle.setopt(pycurl.CAPATH, ca_path)  # a directory, as in Kamailio (not CAINFO)

    def _done(self, query: _Query, code: int, message: str) -> None:
        if self._running.pop(query.txn, None) is None:
            return  # cancelled meanwhile
        handle, req = query.handle, query.request
        completion: dict[str, Any] = {
            "id": req.get("id"),
            "txn": query.txn,
            "route": req.get("route"),
            "xdata": req.get("xdata"),
            "worker": self.worker,
        }
        if code == 0:
            self.counts["replies"] += 1
            status_line, headers = _parse_head(query.header_lines)
            body = b"".join(query.body)
            completion.update(
                http_ok=True,
                http_err=None,
                http_rs=int(handle.getinfo(pycurl.RESPONSE_CODE)),
                http_rr=status_line,
                http_hdrs=headers,
                http_rb=body,
                http_bs=len(body),
                http_time={name: handle.getinfo(info) / 1000.0 for name, info in TIMES},
            )
        else:
            if code == pycurl.E_OPERATION_TIMEDOUT:
                self.counts["timeouts"] += 1
                err = "TIMEOUT"
            else:
                self.counts["errors"] += 1
                err = message or f"curl error {code}"
            completion.update(
                http_ok=False, http_err=err, http_rs=0, http_rr="", http_hdrs=[],
                http_rb=b"", http_bs=0, http_time=dict(ZERO_TIMES),
            )  # fmt: skip
        self._recycle(handle)
        self.on_complete(completion)

    def _recycle(self, handle: pycurl.Curl) -> None:
        if len(self._free) < MAX_FREE_HANDLES:
            handle.reset()
            self._free.append(handle)
        else:
            handle.close()

    def close(self) -> None:
        for txn in list(self._running):
            self.cancel(txn)
        for handle in self._free:
            handle.close()
        self._free.clear()


def _parse_head(lines: list[bytes]) -> tuple[str, list[list[str]]]:
    """Reason phrase and headers of the final response."""
    reason = ""
    headers: list[list[str]] = []
    for raw in lines:
        text = raw.decode("latin-1").rstrip("\r\n")
        if text.startswith("HTTP/"):
            parts = text.split(" ", 2)
            reason = parts[2] if len(parts) > 2 else ""
            continue
        if not text or text[0] in " \t":
            continue
        name, sep, value = text.partition(":")
        if sep:
            headers.append([name.strip(), value.strip()])
    return reason, headers


_SECRET_HEADER = re.compile(r"^((?:Proxy-)?Authorization:\s*\S+)\s+\S+", re.I | re.M)


def _debug(kind: int, data: bytes) -> None:
    prefix = {0: "[cURL]", 1: "[cURL hdr in]", 2: "[cURL hdr out]"}.get(kind)
    if prefix:
        text = _SECRET_HEADER.sub(r"\1 ********", data.decode("latin-1", "replace").rstrip())
        log.info("%s %s", prefix, text)
