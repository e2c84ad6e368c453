"""One client and one subscriber in front of several dispatchers."""

from __future__ import annotations

import time
from typing import Any

from dispatcher.client import Client, Subscriber
from tests.system.service import Service


def test_one_client_spreads_over_two_dispatchers_and_one_subscriber_hears_both(
    http_server: Any,
) -> None:
    http_client = f"httpcon = api=>{http_server.url('/echo')}\n"
    first, second = (
        Service(workers=1, http_client=http_client),
        Service(workers=1, http_client=http_client),
    )
    sub = Subscriber([first.events, second.events], ["BOTH"])
    try:
        with Client([first.frontend, second.frontend]) as client:
            ids = [
                client.submit({"op": "http_connect", "connection": "api", "url": f"/{i}"})
                for i in range(40)
            ]
            replies = [client.wait(i) for i in ids]
            assert all(r["rc"] == 200 for r in replies)
            assert len({r["worker"]["pid"] for r in replies}) == 2  # both dispatchers served
            seen: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 15
            while (
                len({m["txn"].split("-")[0] for m in seen.values()}) < 2
                and time.monotonic() < deadline
            ):
                for _ in range(2):  # one query per dispatcher (round robin)
                    client.call("http_async_query", url=http_server.url("/echo"), route="BOTH")
                for _route, msg in sub.recv(0.3):
                    seen[msg["txn"]] = msg
            assert len({txn.split("-")[0] for txn in seen}) == 2  # events from both dispatchers
    finally:
        sub.close()
        first.stop()
        second.stop()
