"""Per-process curl state, as each Kamailio child keeps it: built after the fork only.

Per named connection: the kept easy handle (keep_connections), the last redirect URL
(CURLINFO_EFFECTIVE_URL) and the last Content-Type. Per process: the connok/connfail
counters' share and the response headers of the last transfer. The TCP connections the
process holds are read from /proc, so `core.workers` can show what a backend sees.
"""

from __future__ import annotations

import os

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

    def tcp_connections(self, exclude_ports: frozenset[int] = frozenset()) -> int:
        """Established TCP connections this process holds, read from /proc (curl closes
        some sockets where no Python callback can run, so counting callbacks undercounts).
        `exclude_ports`: remote ports that are not HTTP backends (the dispatcher's)."""
        inodes = set()
        try:
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            return 0
        count = 0
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            try:
                with open(table, encoding="ascii") as f:
                    next(f)
                    for line in f:
                        fields = line.split()
                        if fields[3] == "01" and fields[9] in inodes:
                            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                            count += remote_port not in exclude_ports
            except OSError:
                continue
        return count

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
