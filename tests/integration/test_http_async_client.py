"""http_async_query stepped in process against real local servers: what a script author
would see in the completion map, and what the HTTP server would see on the wire."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pycurl
import pytest
import zmq

from dispatcher.config import Connection, HttpAsyncClientSettings, HttpClientSettings, Settings
from dispatcher.protocol import HTTP_TIME_FIELDS
from tests.conftest import TlsMaterial
from tests.servers import HttpTestServer, ProxyServer, refused_url
from workers.engine import Engine, run_until_idle
from workers.http_async_client import AsyncHttpClient

WORKER = {"rank": 2, "pid": 4242}


class Harness:
    def __init__(self, settings: Settings | None = None) -> None:
        self.engine = Engine()
        self.done: list[dict[str, Any]] = []
        self.client = AsyncHttpClient(settings or Settings(), self.engine, self.done.append, WORKER)

    def query(self, txn: str = "t", **request: Any) -> dict[str, Any]:
        """One query to its completion (the reply must be rc 1)."""
        request.setdefault("route", "R")
        reply = self.client.start(request, txn)
        assert reply["rc"] == 1, reply
        run_until_idle(self.engine, 5)
        (completion,) = [c for c in self.done if c["txn"] == txn]
        return completion


@pytest.fixture()
def h() -> Harness:
    return Harness()


def echoed(completion: dict[str, Any]) -> dict[str, Any]:
    return json.loads(completion["http_rb"])


def test_status_reason_headers_and_body_of_an_error_status(
    h: Harness, http_server: HttpTestServer
) -> None:
    c = h.query(url=http_server.url("/status/503"))
    assert c["http_ok"] is True and c["http_err"] is None  # any HTTP status is a reply
    assert (c["http_rs"], c["http_rr"]) == (503, "Service Unavailable")
    assert c["http_rb"] == b"status 503\n" and c["http_bs"] == 11
    assert ["Content-Type", "text/plain"] in c["http_hdrs"]
    assert c["worker"] == WORKER and c["route"] == "R"


def test_headers_are_those_the_server_set(h: Harness, http_server: HttpTestServer) -> None:
    c = h.query(url=http_server.url("/headers?set=X-One:1&set=X-Two:a%20b"))
    assert ["X-One", "1"] in c["http_hdrs"] and ["X-Two", "a b"] in c["http_hdrs"]


def test_a_100_continue_is_not_the_reply(h: Harness, http_server: HttpTestServer) -> None:
    c = h.query(url=http_server.url("/status/100"))
    assert (c["http_rs"], c["http_rr"]) == (200, "OK")
    assert c["http_rb"] == b"after informational\n"


def test_large_chunked_body_with_nuls_arrives_whole(
    h: Harness, http_server: HttpTestServer
) -> None:
    c = h.query(url=http_server.url("/body?size=300000&nul=1&chunked=1"))
    assert c["http_bs"] == 300000 and c["http_rb"][:10] == b"ab\0cdab\0cd"
    assert c["http_rb"].count(b"\0") == 60000


def test_body_makes_a_post_and_methods_are_sent_as_asked(
    h: Harness, http_server: HttpTestServer
) -> None:
    post = echoed(h.query("a", url=http_server.url("/echo"), body=b"k=\0v"))
    assert post["method"] == "POST" and post["body"] == "k=\0v"
    assert ["Content-Type", "application/x-www-form-urlencoded"] in post["headers"]
    put = echoed(
        h.query(
            "b",
            url=http_server.url("/echo"),
            method="put",
            body="é",
            headers=["Content-Type: text/plain; charset=utf-8"],
        )
    )
    assert put["method"] == "PUT" and put["body"].encode("latin-1") == "é".encode()
    assert ["Content-Type", "text/plain; charset=utf-8"] in put["headers"]
    for txn, method in (("c", "PATCH"), ("d", "DELETE"), ("e", "GET")):
        assert echoed(h.query(txn, url=http_server.url("/echo"), method=method))["method"] == method
    assert echoed(h.query("f", url=http_server.url("/echo"), method=""))["method"] == "GET"
    assert all(r.header("User-Agent") is None for r in http_server.requests)


def test_url_expands_pseudo_variables_but_refuses_crlf_in_them(
    h: Harness, http_server: HttpTestServer
) -> None:
    url = http_server.url("/echo?user=$var(u)")
    c = h.query(url=url, pv={"$var(u)": "alice"})
    assert echoed(c)["path"] == "/echo?user=alice"
    bad = h.client.start({"url": url, "route": "R", "pv": {"$var(u)": "a\r\nX-Evil: 1"}}, "x")
    assert bad["rc"] == -1 and bad["error_detail"]
    assert len(http_server.requests) == 1


def test_timeout_is_reported_as_TIMEOUT_with_zero_times(
    h: Harness, http_server: HttpTestServer
) -> None:
    start = time.monotonic()
    c = h.query(url=http_server.url("/slow?ms=800"), timeout=200)
    assert time.monotonic() - start < 0.6
    assert c["http_ok"] is False and c["http_err"] == "TIMEOUT"
    assert c["http_rs"] == 0 and c["http_rb"] == b"" and c["http_hdrs"] == []
    assert set(c["http_time"].values()) == {0.0}


def test_timeout_zero_fires_at_once(h: Harness, http_server: HttpTestServer) -> None:
    start = time.monotonic()
    c = h.query(url=http_server.url("/slow?ms=300"), timeout=0)
    assert c["http_err"] == "TIMEOUT" and time.monotonic() - start < 0.25


def test_timeout_counts_the_whole_transfer(h: Harness, http_server: HttpTestServer) -> None:
    """Deliberately unlike Kamailio's per-socket inactivity timer: a trickle ends too."""
    c = h.query(url=http_server.url("/trickle?bytes=20&ms=50"), timeout=300)
    assert c["http_err"] == "TIMEOUT"


def test_refused_port_gives_libcurls_text(h: Harness) -> None:
    c = h.query(url=refused_url())
    assert c["http_ok"] is False and "connect" in c["http_err"].lower()
    assert set(c["http_time"].values()) == {0.0}


def test_redirects_followed_show_only_the_final_response(http_server: HttpTestServer) -> None:
    h = Harness(Settings(http_async_client=HttpAsyncClientSettings(curl_follow_redirect=1)))
    c = h.query(url=http_server.url("/redirect/3"))
    assert (c["http_rs"], c["http_rr"]) == (200, "OK")
    assert echoed(c)["path"] == "/echo"
    assert not any(name == "Location" for name, _ in c["http_hdrs"])
    assert len(http_server.requests) == 5  # 3, 2, 1, 0, /echo
    off = h.query("off", url=http_server.url("/redirect/3"), follow_redirect=0)
    assert off["http_rs"] == 302 and ["Location", "/redirect/2"] in off["http_hdrs"]


def test_redirects_are_not_followed_by_default(h: Harness, http_server: HttpTestServer) -> None:
    c = h.query(url=http_server.url("/redirect/1"))
    assert c["http_rs"] == 302 and c["http_rb"] == b"moved\n"
    assert h.query("on", url=http_server.url("/redirect/1"), follow_redirect=1)["http_rs"] == 200


def test_digest_challenge_is_never_the_reply(h: Harness, http_server: HttpTestServer) -> None:
    c = h.query(url=http_server.url("/auth/digest/u/pw"), username="u", password="pw")
    assert c["http_rs"] == 200 and echoed(c)["user"] == "u"
    assert not any(name == "WWW-Authenticate" for name, _ in c["http_hdrs"])
    assert [r.header("Authorization") is not None for r in http_server.requests] == [False, True]
    wrong = h.query("w", url=http_server.url("/auth/basic/u/pw"), username="u", password="no")
    assert wrong["http_rs"] == 401 and wrong["http_ok"] is True


def test_file_urls_are_never_fetched(http_server: HttpTestServer) -> None:
    h = Harness(Settings(http_async_client=HttpAsyncClientSettings(curl_follow_redirect=1)))
    direct = h.query("d", url="file:///etc/hostname")
    assert direct["http_ok"] is False and "protocol" in direct["http_err"].lower()
    via = h.query("v", url=http_server.url("/redirect-to?url=file:///etc/hostname"))
    assert via["http_ok"] is False and via["http_rb"] == b""


def test_bad_requests_get_rc_minus_1_not_a_traceback(h: Harness) -> None:
    bad: list[dict[str, Any]] = [
        {"url": ""},
        {"url": "http://h/\r\nX: 1"},
        {"url": "http://h/", "headers": ["X: 1\r\nY: 2"]},
        {"url": "http://h/", "headers": "X: 1"},
        {"url": "http://h/", "headers": [1]},
        {"url": "http://h/", "method": "BREW"},
        {"url": "http://h/", "method": 7},
        {"url": "http://h/", "connection": "nope"},
        {"url": "http://h/", "timeout": -1},
        {"url": "http://h/", "timeout": "100"},
        {"url": "http://h/", "body": 12},
        {"url": 5},
        {"url": "http://h/$bogus(("},
        {"url": "http://h/", "ka_idle": "x", "keepalive": 1},
    ]
    for i, request in enumerate(bad):
        reply = h.client.start({"route": "R", **request}, f"b{i}")
        assert reply["rc"] == -1 and reply["txn"] == f"b{i}", request
        assert isinstance(reply["error_detail"], str) and reply["error_detail"], request
    assert h.engine.active() == 0 and h.done == [] and h.client.in_flight() == 0
    assert h.client.stats() == {
        "requests": len(bad),
        "replies": 0,
        "errors": len(bad),
        "timeouts": 0,
    }


def test_suspend_mode_says_so_and_a_busy_txn_is_refused(
    h: Harness, http_server: HttpTestServer
) -> None:
    url = http_server.url("/slow?ms=100")
    reply = h.client.start({"url": url, "route": "R", "mode": "suspend", "id": 7}, "s")
    assert reply == {"rc": 1, "txn": "s", "suspended": True}
    assert h.client.start({"url": url, "route": "R"}, "s")["rc"] == -1
    run_until_idle(h.engine, 5)
    assert [(c["txn"], c["id"]) for c in h.done] == [("s", 7)]


def test_cancel_stops_the_transfer_and_the_handle_serves_again(
    h: Harness, http_server: HttpTestServer
) -> None:
    h.client.start({"url": http_server.url("/stall"), "route": "R", "timeout": 5000}, "c")
    h.engine.step()
    assert h.client.cancel("c") is True and h.client.cancel("c") is False
    assert h.client.cancel("never") is False
    assert h.engine.active() == 0 and h.client.in_flight() == 0
    c = h.query("next", url=http_server.url("/echo"), xdata=[1, "two"])
    assert c["http_rs"] == 200 and c["xdata"] == [1, "two"]
    assert [x["txn"] for x in h.done] == ["next"]


def test_many_concurrent_share_keep_alive_connections(
    h: Harness, http_server: HttpTestServer
) -> None:
    for round_ in range(3):
        for i in range(30):
            h.client.start({"url": http_server.url("/slow?ms=100"), "route": "R"}, f"{round_}.{i}")
        run_until_idle(h.engine, 5)
    assert len(h.done) == 90 and all(c["http_rs"] == 200 for c in h.done)
    assert http_server.accepts == 30  # later rounds reused the first round's connections


def test_stats_count_as_kamailio_does(h: Harness, http_server: HttpTestServer) -> None:
    h.query("ok", url=http_server.url("/status/404"))
    h.query("slow", url=http_server.url("/slow?ms=500"), timeout=100)
    h.query("refused", url=refused_url())
    assert h.client.start({"url": "", "route": "R"}, "bad")["rc"] == -1
    assert h.client.stats() == {"requests": 4, "replies": 1, "errors": 2, "timeouts": 1}


def test_named_connection_lends_base_url_credentials_and_proxy(
    http_server: HttpTestServer, http_proxy: ProxyServer
) -> None:
    api = Connection(
        name="api",
        schema="http",
        url=f"127.0.0.1:{http_server.port}/auth/basic/u",
        username="u",
        password="pw",
        useragent="api-agent",
    )
    via = Connection(
        name="via",
        schema="http",
        url=f"127.0.0.1:{http_server.port}/echo",
        http_proxy="127.0.0.1",
        http_proxy_port=http_proxy.port,
    )
    h = Harness(Settings(connections=(api, via)))
    c = h.query("a", url="pw", connection="api")
    assert c["http_rs"] == 200 and echoed(c)["path"] == "/auth/basic/u/pw"
    assert http_server.requests[-1].header("User-Agent") == "api-agent"
    wrong = h.query("b", url="pw", connection="api", password="nope")  # the query's wins
    assert wrong["http_rs"] == 401
    p = h.query("c", url="x?q=1", connection="via")
    assert p["http_rs"] == 200 and http_proxy.seen[-1].endswith("/echo/x?q=1")


def test_tls_settings_module_connection_and_per_query(
    tls_material: TlsMaterial, tls_server_factory: Callable[..., HttpTestServer]
) -> None:
    server = tls_server_factory()
    other = tls_server_factory(hosts=("other.test",))
    cafile = str(tls_material.ca_file)
    cons = tuple(
        Connection(name=name, schema="https", url=f"127.0.0.1:{srv.port}")
        for name, srv in (("secure", server), ("misnamed", other))
    )
    h = Harness(Settings(http_client=HttpClientSettings(cacert=cafile), connections=cons))
    # The module-wide trust store is the system's: this private CA is not in it.
    untrusted = h.query("a", url=server.url("/echo"))
    assert untrusted["http_ok"] is False and untrusted["http_err"]
    assert h.query("b", url=server.url("/echo"), tls_verify_peer=0)["http_rs"] == 200
    # A named connection trusts what http_connect trusts ([http_client] cacert).
    assert h.query("c", url="/echo", connection="secure")["http_rs"] == 200
    # Its verify_host (2) refuses a certificate for another name; the query may relax it.
    assert h.query("d", url="/echo", connection="misnamed")["http_ok"] is False
    lax = h.query("e", url="/echo", connection="misnamed", tls_verify_host=0)
    assert lax["http_rs"] == 200


def test_curl_verbose_logs_at_info_without_secrets(
    http_server: HttpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(Settings(http_async_client=HttpAsyncClientSettings(curl_verbose=1)))
    with caplog.at_level(logging.INFO, logger="sipcurl.async"):
        h.query(url=http_server.url("/auth/basic/u/s3cret"), username="u", password="s3cret")
    assert "[cURL hdr out] GET /auth/basic/u/s3cret" in caplog.text
    assert "[cURL hdr in] HTTP/1.1 200" in caplog.text
    assert "dTpzM2NyZXQ=" not in caplog.text  # base64 of u:s3cret


def test_a_hundred_slow_transfers_run_concurrently_without_spinning(
    h: Harness, http_server: HttpTestServer
) -> None:
    for i in range(100):
        reply = h.client.start(
            {"url": http_server.url("/slow?ms=300"), "route": "R", "timeout": 5000}, f"t{i}"
        )
        assert reply["rc"] == 1
    poller = zmq.Poller()
    steps = 0
    start = time.monotonic()
    while h.engine.active() and time.monotonic() - start < 5:
        h.engine.sync_poller(poller)
        poller.poll(h.engine.timeout_ms())
        h.engine.step()
        steps += 1
    assert len(h.done) == 100 and all(c["http_rs"] == 200 for c in h.done)
    assert time.monotonic() - start < 2.0
    assert steps < 2000  # it waited on sockets and timers, not in a busy loop
    h.engine.sync_poller(poller)
    assert not h.engine._registered  # every curl fd left the poller


def test_the_completion_carries_every_field(h: Harness, http_server: HttpTestServer) -> None:
    url = http_server.url("/body?size=10&nul=1&ctype=application/x-test")
    c = h.query("t1", id=9, url=url, xdata={"k": 1})
    assert c["id"] == 9 and c["txn"] == "t1" and c["route"] == "R" and c["xdata"] == {"k": 1}
    assert (c["http_ok"], c["http_err"], c["http_rs"], c["http_rr"]) == (True, None, 200, "OK")
    assert ["Content-Type", "application/x-test"] in c["http_hdrs"]
    assert c["http_rb"] == b"ab\0cdab\0cd" and c["http_bs"] == 10  # NULs kept
    assert set(c["http_time"]) == set(HTTP_TIME_FIELDS)
    assert c["http_time"]["total"] > 0 and c["worker"] == WORKER


def test_no_user_agent_and_the_headers_asked_for(h: Harness, http_server: HttpTestServer) -> None:
    h.query("p", url=http_server.url("/echo"), body=b"x=1", headers=["X-A: 1", "X-B: 2"])
    post = next(r for r in http_server.requests if r.method == "POST")
    assert post.body == b"x=1" and post.header("X-A") == "1" and post.header("X-B") == "2"
    assert post.header("User-Agent") is None


def test_the_default_timeout_is_500_ms(h: Harness, http_server: HttpTestServer) -> None:
    start = time.monotonic()
    c = h.query(url=http_server.url("/slow?ms=1500"))
    assert c["http_err"] == "TIMEOUT" and 0.4 < time.monotonic() - start < 1.2


def test_queries_one_after_another_reuse_one_handle_and_connection(
    h: Harness, http_server: HttpTestServer
) -> None:
    for i in range(20):
        h.query(f"t{i}", url=http_server.url("/echo"))
    assert len(h.done) == 20 and http_server.accepts == 1
    assert isinstance(h.client._free[0], pycurl.Curl)
