"""Per-process curl state, as each Kamailio child keeps it: built after the fork only.

Per named connection: the kept easy handle (keep_connections), the last redirect URL
(CURLINFO_EFFECTIVE_URL) and the last Content-Type. Per process: the connok/connfail
counters' share and the response headers of the last transfer. TCP connections are counted
as curl opens and closes them, so `core.workers` can show what a backend sees.
"""

from __future__ import annotations

import os
import socket

import pycurl

from dispatcher.config import Settings


class CurlState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connok = 0
        self.connfail = 0
        self.kept: dict[str, pycurl.Curl] = {}
        self.last_redirect: dict[str, str] = {}
        self.last_content_type: dict[str, str] = {}
        self.response_headers: list[tuple[str, str]] = []
        self.open_tcp_connections = 0

    def handle_for(self, name: str, keep: bool) -> pycurl.Curl:
        """A kept handle is reset (options cleared, live connections kept), as Kamailio does."""
        if keep:
            handle = self.kept.get(name)
            if handle is not None:
                handle.reset()
                return handle
            handle = self.kept[name] = pycurl.Curl()
            return handle
        return pycurl.Curl()

    def release(self, name: str, handle: pycurl.Curl) -> None:
        if self.kept.get(name) is not handle:
            handle.close()

    def count_connections(self, handle: pycurl.Curl) -> None:
        handle.setopt(pycurl.OPENSOCKETFUNCTION, self._open_socket)
        handle.setopt(pycurl.CLOSESOCKETFUNCTION, self._close_socket)

    def _open_socket(self, _purpose: int, address: object) -> socket.socket:
        family, socktype, protocol = address.family, address.socktype, address.protocol  # type: ignore[attr-defined]
        sock = socket.socket(family, socktype, protocol)
        self.open_tcp_connections += 1
        return sock

    def _close_socket(self, fd: int) -> int:
        self.open_tcp_connections -= 1
        try:
            os.close(fd)
        except OSError:
            pass
        return 0

    def reload(self, settings: Settings) -> None:
        """Connections that changed or went away lose their handle and remembered state."""
        old = {c.name: c for c in self.settings.connections}
        new = {c.name: c for c in settings.connections}
        for name in list(self.kept):
            if old.get(name) != new.get(name):
                self.kept.pop(name).close()
                self.last_redirect.pop(name, None)
                self.last_content_type.pop(name, None)
        self.settings = settings

    def close(self) -> None:
        for handle in self.kept.values():
            handle.close()
        self.kept.clear()
