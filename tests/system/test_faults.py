"""Service faults provoked for real: every job answered, nothing left behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import zmq

from dispatcher import localrun
from dispatcher.client import Client
from tests.system.service import Service


@contextmanager
def two_workers_on(http_server: Any, path: str) -> Iterator[Service]:
    """2 workers, room for a burst, a kept connection `api` to `path` of the test server."""
    svc = Service(
        workers=2,
        extra="max_pending = 5000\n",
        http_client=f"keep_connections = 1\nhttpcon = api=>{http_server.url(path)}\n",
    )
    try:
        yield svc
    finally:
        svc.stop()


def outcomes_of_interrupted_burst(
    svc: Service, urls: list[str], interrupt: Callable[[], None]
) -> list[Any]:
    """http_connect to each url, all at once; `interrupt` 50 ms in; each call's rc or error."""
    with Client(svc.frontend, timeout_s=30) as client:
        ids = client.submit_many(
            [{"op": "http_connect", "connection": "api", "url": u} for u in urls]
        )
        time.sleep(0.05)
        interrupt()
        replies = [client.wait(i) for i in ids]
    return [r.get("rc") or r["error"]["code"] for r in replies]


def test_sigterm_with_a_thousand_jobs_in_flight_answers_every_one(http_server: Any) -> None:
    with two_workers_on(http_server, "/echo") as svc:
        urls = [f"/{i}" for i in range(1000)]
        outcomes = outcomes_of_interrupted_burst(svc, urls, lambda: svc.signal(signal.SIGTERM))
        assert len(outcomes) == 1000 and set(outcomes) <= {200, "shutting_down"}
        assert svc.proc.wait(timeout=20) == 0


def test_a_slow_subscriber_never_blocks_the_workers(http_server: Any) -> None:
    svc = Service(workers=2, http_client="")
    ctx = zmq.Context.instance()
    lazy = ctx.socket(zmq.SUB)
    lazy.linger = 0
    lazy.rcvhwm = 10
    lazy.setsockopt(zmq.SUBSCRIBE, b"")
    lazy.connect(svc.events)  # connected, never reads
    try:
        with Client(svc.frontend, timeout_s=30) as client:
            ids = client.submit_many(
                [
                    {
                        "op": "http_async_query",
                        "url": http_server.url("/body?size=20000"),
                        "route": "FLOOD",
                        "timeout": 5000,
                    }
                    for _ in range(3000)
                ]
            )
            assert all(client.wait(i)["rc"] == 1 for i in ids)
            start = time.monotonic()
            assert client.call("http_connection_exists", connection="x")["rc"] == 0
            assert time.monotonic() - start < 1.0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                stats = client.call("rpc", method="stats.get_statistics")["result"]
                if stats["sipcurl:transfers"] == 0:
                    break
                time.sleep(0.1)
            assert stats["sipcurl:transfers"] == 0 and stats["http_async_client:replies"] >= 3000
    finally:
        lazy.close(0)
        svc.stop()


def test_a_client_that_disconnects_leaves_no_suspended_transaction_behind(http_server: Any) -> None:
    svc = Service(workers=1, http_client="")
    try:
        with Client(svc.frontend) as gone:
            for _ in range(20):
                assert (
                    gone.call(
                        "http_async_query",
                        url=http_server.url("/slow?ms=300"),
                        route="R",
                        mode="suspend",
                        timeout=3000,
                    )["rc"]
                    == 1
                )
        with Client(svc.frontend) as watcher:
            assert (
                watcher.call("rpc", method="stats.get_statistics")["result"]["sipcurl:suspended"]
                == 20
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                stats = watcher.call("rpc", method="stats.get_statistics")["result"]
                if stats["sipcurl:suspended"] == 0:
                    break
                time.sleep(0.1)
            assert stats["sipcurl:suspended"] == 0 and stats["sipcurl:in_flight"] == 0
    finally:
        svc.stop()


def test_curve_keys_are_required_when_configured(http_server: Any) -> None:
    from dispatcher.client import CurveKeys

    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    stranger_public, stranger_secret = zmq.curve_keypair()
    svc = Service(
        workers=1,
        # z85 keys may hold "$", which the INI interpolation needs written as "$$"
        extra=f"curve_secret_key = {server_secret.decode().replace('$', '$$')}\n"
        f"curve_allowed_clients = {client_public.decode().replace('$', '$$')}\n",
        http_client="",
        ready_keys=CurveKeys(client_public, client_secret, server_public),
    )
    try:
        with Client(
            svc.frontend, curve=CurveKeys(client_public, client_secret, server_public), timeout_s=5
        ) as ok:
            assert ok.call("http_connection_exists", connection="x")["rc"] == 0
        with Client(svc.frontend, timeout_s=1) as plain:
            try:
                plain.call("http_connection_exists", connection="x")
                raise AssertionError("a client without keys got an answer")
            except TimeoutError:
                pass
        with Client(
            svc.frontend,
            curve=CurveKeys(stranger_public, stranger_secret, server_public),
            timeout_s=1,
        ) as stranger:
            try:
                stranger.call("http_connection_exists", connection="x")
                raise AssertionError("a client not on the allow list got an answer")
            except TimeoutError:
                pass
    finally:
        svc.stop()


def test_host_guard_keeps_a_hanging_backend_from_capturing_every_worker(http_server: Any) -> None:
    from tests.servers import HttpTestServer

    healthy = HttpTestServer()
    svc = Service(
        workers=4,
        extra="host_guard = 2\nrouting = least_busy\n",
        http_client=f"connection_timeout = 3\nhttpcon = hang=>{http_server.url('/stall')}\n          ok=>{healthy.url('/echo')}\n",
    )
    try:
        with Client(svc.frontend, timeout_s=15) as client:
            hanging = [
                client.submit({"op": "http_connect", "connection": "hang", "url": ""})
                for _ in range(6)
            ]
            time.sleep(0.2)
            start = time.monotonic()
            fine = [
                client.submit({"op": "http_connect", "connection": "ok", "url": f"/{i}"})
                for i in range(20)
            ]
            assert all(client.wait(i)["rc"] == 200 for i in fine)
            assert time.monotonic() - start < 2.0  # not stuck behind the hanging host
            codes = sorted(client.wait(i)["rc"] for i in hanging)
        assert codes == [-4, -4, -4, -4, 28, 28]  # two waited and timed out, the rest failed fast
    finally:
        svc.stop()
        healthy.stop()


def test_sigkill_during_a_hundred_async_transfers_publishes_each_failure_once(
    http_server: Any,
) -> None:
    from dispatcher.client import Subscriber

    svc = Service(workers=2, extra="async_max_transfers = 200\n", http_client="")
    sub = Subscriber(svc.events, ["KILL"])
    try:
        with Client(svc.frontend, timeout_s=10) as client:
            deadline = time.monotonic() + 10  # subscriber joined: probe until an event arrives
            while not sub.recv(0.2) and time.monotonic() < deadline:
                client.call(
                    "http_async_query", url=http_server.url("/echo"), route="KILL", worker=1
                )
            firsts = [
                client.call(
                    "http_async_query",
                    url=http_server.url("/slow?ms=5000"),
                    route="KILL",
                    worker=2,
                    timeout=9000,
                )
                for _ in range(100)
            ]
            txns = {f["txn"] for f in firsts}
            before = client.call("rpc", method="stats.get_statistics")["result"]
            victim = next(
                w["pid"]
                for w in client.call("rpc", method="core.workers")["result"]
                if w["rank"] == 2
            )
            os.kill(victim, signal.SIGKILL)
            failed: dict[str, int] = {}
            deadline = time.monotonic() + 10
            while len(failed) < 100 and time.monotonic() < deadline:
                for _route, msg in sub.recv(0.5):
                    if msg["txn"] in txns:
                        assert msg["http_ok"] is False and msg["http_err"] == "worker lost"
                        failed[msg["txn"]] = failed.get(msg["txn"], 0) + 1
            time.sleep(0.3)
            for _route, msg in sub.recv(0.3):
                if msg["txn"] in txns:
                    failed[msg["txn"]] += 1
            assert len(failed) == 100 and set(failed.values()) == {1}
            after = client.call("rpc", method="stats.get_statistics")["result"]
            assert (
                after["http_async_client:requests"] >= before["http_async_client:requests"]
            )  # kept across the death
            assert after["sipcurl:transfers"] == 0
    finally:
        sub.close()
        svc.stop()


def test_a_flood_past_max_pending_is_refused_and_memory_stays_bounded(http_server: Any) -> None:
    svc = Service(
        workers=1,
        extra="max_pending = 100\n",
        http_client=f"httpcon = slow=>{http_server.url('/slow')}\n",
    )

    try:
        with Client(svc.frontend, timeout_s=30) as client:
            before = localrun.rss_kib(svc.proc.pid)
            ids = []
            for _ in range(20):
                ids += client.submit_many(
                    [
                        {"op": "http_connect", "connection": "slow", "url": "?ms=50"}
                        for _ in range(1000)
                    ]
                )
            replies = [client.wait(i) for i in ids[100:]]  # the refusals come at once
            grown = localrun.rss_kib(svc.proc.pid) - before
        codes = [r.get("error", {}).get("code") for r in replies]
        assert codes.count("overloaded") >= 19_000
        assert grown < 20_000  # KiB: refused jobs are not kept
    finally:
        svc.stop()


def test_sigkill_under_synchronous_load_answers_each_call_once_and_sends_none_twice(
    http_server: Any,
) -> None:
    """Calls sent ahead to a worker, and replies it holds to send in a batch, die with it:
    each call still gets exactly one answer, and no HTTP request goes out twice."""
    with two_workers_on(http_server, "/slow") as svc:
        victim = svc.worker_pids()[1]
        before = len(http_server.requests)
        paths = [f"/{i}?ms=2" for i in range(600)]  # ~0.6 s in all: killed mid-way
        outcomes = outcomes_of_interrupted_burst(
            svc, paths, lambda: os.kill(victim, signal.SIGKILL)
        )
        assert len(outcomes) == 600 and set(outcomes) <= {200, "worker_lost"}
        assert outcomes.count("worker_lost") >= 1
        assert outcomes.count(200) >= 300  # rank 2 never stopped, rank 1's replacement took over
        seen = [r.path for r in http_server.requests[before:]]
        assert len(seen) == len(set(seen))  # no call reached the server twice
        served = {p for p, o in zip(paths, outcomes, strict=True) if o == 200}
        assert served <= {s.removeprefix("/slow") for s in seen}
