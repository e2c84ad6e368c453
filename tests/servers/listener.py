"""A listening socket on 127.0.0.1 with a thread per connection, that stops cleanly.

Both test servers build on it: `stop()` closes the listener and every connection, then
joins every thread it started, so no test leaves a socket or thread behind.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref

STOP_JOIN_S = 5.0

# Listeners not yet stopped, so a fixture can find the ones a test forgot to stop.
_live: weakref.WeakSet[Listener] = weakref.WeakSet()


def live_listeners() -> list[Listener]:
    return list(_live)


class Listener:
    """Accepts on 127.0.0.1:<free port>; subclasses serve one connection in `handle`."""

    def __init__(self, name: str) -> None:
        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0), backlog=256)
        self.port: int = self._listener.getsockname()[1]
        self.name = f"{name}-{self.port}"
        self.accepts = 0
        self.open_connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = False
        self._conns: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept", daemon=True
        )
        _live.add(self)
        self._acceptor.start()

    def handle(self, conn: socket.socket, number: int) -> None:
        raise NotImplementedError

    def track(self, conn: socket.socket) -> None:
        """Also abort this socket (a TLS wrapper, an upstream link) at stop."""
        with self._lock:
            self._conns.add(conn)
        if self._stop.is_set():
            abort(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def threads_alive(self) -> int:
        with self._lock:
            threads = list(self._threads)
        return sum(t.is_alive() for t in threads) + self._acceptor.is_alive()

    def stop(self) -> None:
        """Close the listener and every connection, then join every thread (bounded)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            abort(conn)
        deadline = time.monotonic() + STOP_JOIN_S
        self._acceptor.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        _live.discard(self)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self.accepts += 1
                self.open_connections += 1
                self._conns.add(conn)
                thread = threading.Thread(
                    target=self._run,
                    args=(conn, self.accepts),
                    name=f"{self.name}-conn{self.accepts}",
                    daemon=True,
                )
                self._threads.add(thread)
            thread.start()

    def _run(self, conn: socket.socket, number: int) -> None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.handle(conn, number)
        except (OSError, ValueError):  # ssl.SSLError is an OSError; ValueError: closed file
            pass
        finally:
            with self._lock:
                self.open_connections -= 1
                self._conns.discard(conn)
                self._threads.discard(threading.current_thread())
            conn.close()


def abort(conn: socket.socket) -> None:
    """Unblock a thread reading or writing this socket, without waiting for the peer."""
    try:
        # The plain socket's shutdown even for TLS: SSLSocket.shutdown would drop its SSL
        # object under the feet of the thread still reading it.
        socket.socket.shutdown(conn, socket.SHUT_RDWR)
    except OSError:
        pass
