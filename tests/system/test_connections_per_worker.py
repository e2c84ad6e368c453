"""What the backend sees: kept connections are per worker, as they are per Kamailio child."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.client import Client
from tests.system.service import Service


@pytest.mark.parametrize(("keep", "expected"), [(1, 3), (0, 60)])
def test_backend_sees_one_connection_per_worker_or_one_per_call(
    http_server: Any, keep: int, expected: int
) -> None:
    svc = Service(
        workers=3,
        http_client=f"keep_connections = {keep}\nhttpcon = api=>{http_server.url('/echo')}\n",
    )
    try:
        with Client(svc.frontend) as client:
            ids = [
                client.submit({"op": "http_connect", "connection": "api", "url": f"/{i}"})
                for i in range(60)
            ]
            assert all(client.wait(i)["rc"] == 200 for i in ids)
            workers = client.call("rpc", method="core.workers")["result"]
        assert http_server.accepts == expected
        assert sum(w["jobs_served"] for w in workers) >= 60
        assert [w["tcp_connections"] for w in workers] == ([1, 1, 1] if keep else [0, 0, 0])
    finally:
        svc.stop()
