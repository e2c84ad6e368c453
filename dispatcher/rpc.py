"""Kamailio's RPC commands for this service (`op: "rpc"`).

A Kamailio RPC fault (`500 No Connection Definitions`, an unknown command) is a normal
reply with a `fault` map, as kamcmd prints it: the request itself was fine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispatcher import protocol as wire

if TYPE_CHECKING:
    from dispatcher.service import Dispatcher

PASSWORD_MASK = "********"


def fault(code: int, message: str) -> dict[str, Any]:
    return {"fault": {"code": code, "message": message}}


class Rpc:
    def __init__(self, service: Dispatcher) -> None:
        self.service = service

    def call(self, client: bytes, delimiter: bool, rid: Any, method: str, params: list) -> None:
        svc = self.service
        if method == "core.workers":
            svc.start_gather(client, delimiter, rid, method, params)
            return
        handler = {
            "httpclient.listcon": self.listcon,
            "httpclient.reload": self.reload,
            "stats.get_statistics": self.statistics,
            "system.listMethods": self.list_methods,
        }.get(method)
        result = handler(params) if handler else fault(500, f"command {method} not found")
        svc._queue(client, delimiter, wire.pack({"id": rid, **result}))

    def list_methods(self, _params: list) -> dict[str, Any]:
        return {
            "result": [
                "core.workers",
                "httpclient.listcon",
                "httpclient.reload",
                "stats.get_statistics",
                "system.listMethods",
            ]
        }

    def listcon(self, _params: list) -> dict[str, Any]:
        """Kamailio's fields and list order; the password never leaves the service."""
        conns = self.service.settings.connections
        if not conns:
            return fault(500, "No Connection Definitions")
        return {
            "result": [
                {
                    "NAME": c.name,
                    "SCHEMA": c.schema,
                    "URI": c.url,
                    "USERNAME": c.username or "",
                    "PASSWORD": PASSWORD_MASK if c.password else "",
                    "FAILOVER": c.failover or "",
                    "TIMEOUT": c.timeout,
                    "KEEP_CONNECTIONS": c.keep_connections,
                    "SOURCE": c.source,
                }
                for c in conns
            ]
        }

    def reload(self, _params: list) -> dict[str, Any]:
        ok, message = self.service.reload_connections()
        return {"result": {"ok": ok, "message": message}}

    def statistics(self, params: list) -> dict[str, Any]:
        """`all`, a group (`httpclient:`) or names; per-worker figures under `workers`."""
        svc = self.service
        totals = svc.counter_totals()
        stats: dict[str, Any] = {
            "httpclient:connections": svc.settings.httpcon_count,
            "httpclient:connok": totals["connok"],
            "httpclient:connfail": totals["connfail"],
            "http_async_client:requests": totals["requests"],
            "http_async_client:replies": totals["replies"],
            "http_async_client:errors": totals["errors"],
            "http_async_client:timeouts": totals["timeouts"],
            "sipcurl:queued": svc.router.pending(),
            "sipcurl:in_flight": len(svc.ledger.jobs),
            "sipcurl:transfers": len(svc.ledger.transfers),
            "sipcurl:suspended": sum(
                1 for j in svc.ledger.transfers.values() if j.mode == "suspend"
            ),
        }
        wanted = [str(p) for p in params if str(p) != "all"]
        if wanted:
            stats = {
                k: v
                for k, v in stats.items()
                if any(k == w or (w.endswith(":") and k.startswith(w)) for w in wanted)
            }
        workers = {}
        for rank, slot in sorted(svc.router.slots.items()):
            values = svc.counters.get(rank) or [0] * 6
            workers[str(rank)] = {
                "pid": slot.pid,
                "jobs": slot.jobs_served,
                "connok": values[0],
                "connfail": values[1],
                "async_requests": values[2],
                "busy_s": round(slot.busy_total_s, 3),
                "queued": slot.queued,
                "async_inflight": slot.async_inflight,
            }
        return {"result": {**stats, "workers": workers}}

    def finish_gather(self, method: str, params: list, results: dict[int, dict]) -> dict[str, Any]:
        svc = self.service
        rows = []
        for rank, slot in sorted(svc.router.slots.items()):
            status = results.get(rank, {})
            rows.append(
                {
                    "rank": rank,
                    "pid": slot.pid,
                    "host": slot.host,
                    "remote": slot.remote,
                    "state": slot.state
                    if rank in results or slot.state != "ready"
                    else "unresponsive",
                    "jobs_served": slot.jobs_served,
                    "tcp_connections": status.get("tcp_connections", 0),
                    "async_inflight": slot.async_inflight,
                    "queued": slot.queued,
                    "busy": slot.sync_ticket is not None,
                }
            )
        return {"result": rows}
