"""The CurlMulti engine and http_async_query, stepped in process against real servers."""

from __future__ import annotations

import time
from typing import Any

import pycurl
import zmq

from dispatcher.config import Connection, HttpAsyncClientSettings, Settings
from tests.servers import HttpTestServer, refused_url
from workers.engine import Engine, run_until_idle
from workers.http_async_client import AsyncHttpClient

WORKER = {"rank": 1, "pid": 1}


def make(settings: Settings | None = None) -> tuple[Engine, AsyncHttpClient, list[dict[str, Any]]]:
    engine = Engine()
    done: list[dict[str, Any]] = []
    client = AsyncHttpClient(settings or Settings(), engine, done.append, WORKER)
    return engine, client, done


def test_a_hundred_slow_transfers_run_concurrently_without_spinning(
    http_server: HttpTestServer,
) -> None:
    engine, client, done = make()
    for i in range(100):
        assert (
            client.start(
                {"url": http_server.url("/slow?ms=300"), "route": "R", "timeout": 5000}, f"t{i}"
            )["rc"]
            == 1
        )
    poller = zmq.Poller()
    steps = 0
    start = time.monotonic()
    while engine.active() and time.monotonic() - start < 5:
        engine.sync_poller(poller)
        poller.poll(engine.timeout_ms())
        engine.step()
        steps += 1
    elapsed = time.monotonic() - start
    assert len(done) == 100 and all(c["http_rs"] == 200 for c in done)
    assert elapsed < 2.0
    assert steps < 2000  # it waited on sockets and timers, not in a busy loop
    engine.sync_poller(poller)
    assert not engine._registered  # every curl fd left the poller


def test_completion_carries_every_field(http_server: HttpTestServer) -> None:
    engine, client, done = make()
    client.start(
        {
            "id": 9,
            "url": http_server.url("/body?size=10&nul=1&ctype=application/x-test"),
            "route": "R",
            "xdata": {"k": 1},
        },
        "t1",
    )
    run_until_idle(engine, 5)
    (c,) = done
    assert c["id"] == 9 and c["txn"] == "t1" and c["route"] == "R" and c["xdata"] == {"k": 1}
    assert (
        c["http_ok"] is True
        and c["http_err"] is None
        and c["http_rs"] == 200
        and c["http_rr"] == "OK"
    )
    assert ["Content-Type", "application/x-test"] in c["http_hdrs"]
    assert c["http_rb"] == b"ab\0cdab\0cd" and c["http_bs"] == 10  # NULs kept
    assert set(c["http_time"]) == {
        "total",
        "lookup",
        "connect",
        "appconnect",
        "pretransfer",
        "starttransfer",
        "redirect",
    }
    assert c["http_time"]["total"] > 0 and c["worker"] == WORKER


def test_no_user_agent_post_method_and_headers(http_server: HttpTestServer) -> None:
    engine, client, done = make()
    client.start(
        {
            "url": http_server.url("/echo"),
            "route": "R",
            "body": b"x=1",
            "headers": ["X-A: 1", "X-B: 2"],
        },
        "p",
    )
    client.start({"url": http_server.url("/echo"), "route": "R", "method": "DELETE"}, "d")
    run_until_idle(engine, 5)
    post = next(r for r in http_server.requests if r.method == "POST")
    assert post.body == b"x=1" and post.header("X-A") == "1" and post.header("X-B") == "2"
    assert post.header("User-Agent") is None
    assert any(r.method == "DELETE" for r in http_server.requests)


def test_timeout_gives_http_ok_false_and_TIMEOUT(http_server: HttpTestServer) -> None:
    engine, client, done = make()
    client.start({"url": http_server.url("/slow?ms=800"), "route": "R", "timeout": 200}, "t")
    start = time.monotonic()
    run_until_idle(engine, 5)
    assert time.monotonic() - start < 0.6
    (c,) = done
    assert c["http_ok"] is False and c["http_err"] == "TIMEOUT" and c["http_time"]["total"] == 0.0
    assert client.stats()["timeouts"] == 1


def test_default_timeout_is_500_ms(http_server: HttpTestServer) -> None:
    engine, client, done = make()
    client.start({"url": http_server.url("/slow?ms=1500"), "route": "R"}, "t")
    start = time.monotonic()
    run_until_idle(engine, 5)
    assert done[0]["http_err"] == "TIMEOUT" and 0.4 < time.monotonic() - start < 1.2


def test_refused_and_redirect_and_schemes(http_server: HttpTestServer) -> None:
    settings = Settings(http_async_client=HttpAsyncClientSettings(curl_follow_redirect=1))
    engine, client, done = make(settings)
    client.start({"url": refused_url(), "route": "R"}, "refused")
    client.start({"url": http_server.url("/redirect/2"), "route": "R"}, "hops")
    client.start(
        {"url": http_server.url("/redirect-to?url=file:///etc/passwd"), "route": "R"}, "file"
    )
    run_until_idle(engine, 5)
    by = {c["txn"]: c for c in done}
    assert by["refused"]["http_ok"] is False and by["refused"]["http_err"]
    assert by["hops"]["http_rs"] == 200 and all(h[0] != "Location" for h in by["hops"]["http_hdrs"])
    assert by["file"]["http_ok"] is False
    assert client.start({"url": "file:///etc/passwd", "route": "R"}, "f2")["rc"] == 1
    run_until_idle(engine, 5)
    assert done[-1]["http_ok"] is False  # never fetched
    assert client.stats()["errors"] >= 3


def test_bad_requests_are_refused_at_once() -> None:
    engine, client, done = make()
    assert client.start({"url": "http://h/\r\nX: 1", "route": "R"}, "a")["rc"] == -1
    assert (
        client.start({"url": "http://h/", "route": "R", "headers": ["X: 1\r\nY: 2"]}, "b")["rc"]
        == -1
    )
    assert client.start({"url": "http://h/", "route": "R", "method": "BREW"}, "c")["rc"] == -1
    assert client.start({"url": "http://h/", "route": "R", "connection": "nope"}, "d")["rc"] == -1
    assert engine.active() == 0 and done == []


def test_named_connection_settings_apply(http_server: HttpTestServer) -> None:
    con = Connection(
        name="api",
        schema="http",
        url=f"127.0.0.1:{http_server.port}/auth/basic/u/p",
        username="u",
        password="p",
    )
    engine, client, done = make(Settings(connections=(con,)))
    client.start({"url": "", "route": "R", "connection": "api"}, "c")
    run_until_idle(engine, 5)
    assert done[0]["http_rs"] == 200


def test_cancel_means_no_completion(http_server: HttpTestServer) -> None:
    engine, client, done = make()
    client.start({"url": http_server.url("/slow?ms=500"), "route": "R", "timeout": 2000}, "c")
    assert client.cancel("c") is True
    run_until_idle(engine, 1)
    assert done == [] and client.in_flight() == 0


def test_async_handles_are_reused_and_keep_alive_is_shared(http_server: HttpTestServer) -> None:
    engine, client, done = make()
    for i in range(20):
        client.start({"url": http_server.url("/echo"), "route": "R"}, f"t{i}")
        run_until_idle(engine, 5)
    assert len(done) == 20 and http_server.accepts == 1
    assert isinstance(client._free[0], pycurl.Curl)
