"""The HTTP/1.1 test server: keep-alive, TLS optional, every request recorded.

It counts TCP connections (`accepts`, `open_connections`) so tests can assert connection
reuse; what it answers is in `routes`.
"""

from __future__ import annotations

import socket
import ssl
import time

from tests.servers import routes
from tests.servers.listener import Listener
from tests.servers.wire import Exchange, Recorded, serve_requests


class HttpTestServer(Listener):
    """A real HTTP server on 127.0.0.1 (port 0), plain or TLS (`tls` is a server context)."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, idle_timeout_s: float = 300.0) -> None:
        self.tls = tls
        self.idle_timeout_s = idle_timeout_s
        self.requests: list[Recorded] = []
        self.tls_failures = 0  # handshakes that failed (wrong name, untrusted CA, no cert...)
        super().__init__("testserver")

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def reset(self) -> None:
        """Forget recorded requests and counts, so a shared server looks new to each test."""
        with self._lock:
            self.accepts = 0
            self.tls_failures = 0
            self.requests.clear()

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> bool:
        """Until `count` requests are recorded; for clients that do not wait for the answer."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def __enter__(self) -> HttpTestServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, conn: socket.socket, number: int) -> None:
        if self.tls is not None:
            conn.settimeout(5)
            try:
                tls_conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                with self._lock:
                    self.tls_failures += 1
                raise
            self.track(tls_conn)
            try:
                self._serve(tls_conn, number)
            finally:
                self.untrack(tls_conn)
                tls_conn.close()
        else:
            self._serve(conn, number)

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(self.idle_timeout_s)
        serve_requests(conn, number, lambda: self.stopping, self._record, self._answer)

    def _record(self, req: Recorded) -> None:
        with self._lock:
            self.requests.append(req)

    def _answer(self, conn: socket.socket, req: Recorded) -> bool:
        return routes.dispatch(Exchange(conn, req, self._stop))
