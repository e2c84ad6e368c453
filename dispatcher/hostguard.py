"""An opt-in guard against one hanging backend capturing every worker.

Kamailio has none: if an API hangs, every child blocks on it until its timeout and calls to
healthy backends wait behind them. With `host_guard = N`, at most N workers may be
connecting to or waiting on one host at once; a synchronous call that would be the
(N+1)th fails at once with rc -4, a code beyond Kamailio's (as OpenSIPS'
`no_concurrent_connects` answers -4 "already connecting"). Pure: no sockets, no clocks.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from dispatcher.config import Settings

GUARD_RC = -4


def target_host(req: dict[str, Any], settings: Settings) -> str | None:
    """host:port a synchronous request will connect to, when it can be known unexpanded."""
    if "connection" in req:
        con = settings.connection(str(req["connection"]))
        if con is None:
            return None
        base = con.base_url
    else:
        base = str(req.get("url", ""))
    try:
        parts = urlsplit(base)
        if "$" in parts.netloc:
            return None  # the host comes from a pseudo-variable: only the worker knows it
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return f"{host}:{port}" if host else None


class HostGuard:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy: Counter[str] = Counter()

    def enter(self, host: str | None) -> bool:
        if not self.limit or host is None:
            return True
        if self.busy[host] >= self.limit:
            return False
        self.busy[host] += 1
        return True

    def leave(self, host: str | None) -> None:
        if self.limit and host is not None and self.busy[host] > 0:
            self.busy[host] -= 1
            if not self.busy[host]:
                del self.busy[host]
