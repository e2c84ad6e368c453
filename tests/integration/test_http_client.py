"""The http_client engine in process, against real servers on 127.0.0.1.

Each test states a Kamailio behaviour a user would notice: return codes, stored results,
what the server received, how many TCP connections it saw.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from dispatcher.settings_loader import load_settings
from tests.servers import HttpTestServer, ProxyServer
from workers.curlstate import CurlState
from workers.http_client import HttpClient, run_blocking


class Engine:
    def __init__(self, tmp_path: Path, http_client: str) -> None:
        ini = tmp_path / "sipcurl.ini"
        ini.write_text("[http_client]\n" + http_client)
        self.settings = load_settings(str(ini))
        self.state = CurlState(self.settings)
        self.client = HttpClient(self.settings, self.state)

    def __call__(self, **request: Any) -> dict[str, Any]:
        return run_blocking(self.client, request)


def engine(tmp_path: Path, text: str) -> Engine:
    return Engine(tmp_path, text)


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_connect_returns_status_body_and_content_type(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    reply = e(op="http_connect", connection="api", url="/users?id=7")
    assert reply["rc"] == 200
    assert reply["curlerror"] == "HTTP result code"
    assert json.loads(reply["result"])["path"] == "/echo/users?id=7"
    assert reply["content_type"] == "application/json"
    assert e(op="http_get_content_type", connection="api")["result"] == "application/json"
    assert e(op="http_get_redirect", connection="api") == {
        "rc": 1,
        "result": http_server.url("/echo/users?id=7"),
    }


@pytest.mark.parametrize(
    ("base", "suffix", "path"),
    [
        ("/echo", "?a=1", "/echo/?a=1"),
        ("/echo/", "x", "/echo//x"),
        ("/echo/", "/x", "/echo//x"),
        ("/echo", "", "/echo"),
    ],
)
def test_url_joining_looks_only_at_the_suffix(
    tmp_path: Path, http_server: HttpTestServer, base: str, suffix: str, path: str
) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url(base)}\n")
    e(op="http_connect", connection="api", url=suffix)
    assert http_server.requests[-1].path == path


def test_post_sends_content_type_and_data_and_empty_data_is_a_get(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    assert (
        e(
            op="http_connect",
            connection="api",
            url="/p",
            content_type="application/json",
            data='{"a":1}',
        )["rc"]
        == 200
    )
    req = http_server.requests[-1]
    assert (req.method, req.header("Content-Type"), req.body) == (
        "POST",
        "application/json",
        b'{"a":1}',
    )
    e(op="http_connect", connection="api", url="/g", content_type="application/json", data="")
    req = http_server.requests[-1]
    assert req.method == "GET" and req.header("Content-Type") is None and req.body == b""


def test_http_connect_expands_pseudo_variables_and_raw_does_not(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    pv = {"$ru": "sip:alice@example.com", "$var(n)": "7"}
    e(
        op="http_connect",
        connection="api",
        url="/u/$(ru{s.escape.param})",
        content_type="text/plain",
        data="n=$var(n)",
        pv=pv,
    )
    req = http_server.requests[-1]
    assert req.path == "/echo/u/sip:alice%40example.com" and req.body == b"n=7"
    e(
        op="http_connect_raw",
        connection="api",
        url="/r",
        content_type="application/json",
        data='{"price": "$var(n)"}',
        pv=pv,
    )
    assert http_server.requests[-1].body == b'{"price": "$var(n)"}'


def test_malformed_expression_is_rc_minus_one_with_a_clear_error(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    reply = e(op="http_connect", connection="api", url="/$(ru{s.nope})")
    assert reply["rc"] == -1 and reply["curlerror"] == "Bad CURL error code"
    assert "s.nope" in reply["error_detail"]
    assert http_server.requests == []


def test_query_forms_first_line_post_and_headers(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, "")
    got = e(op="http_client_query", url=http_server.url("/text?content=line1%0D%0Aline2"))
    assert got["rc"] == 200 and got["result"] == b"line1\r"  # cut at the LF, the CR kept
    e(op="http_client_query", url=http_server.url("/echo"), post="a=1&b=2")
    req = http_server.requests[-1]
    assert (
        req.method == "POST" and req.header("Content-Type") == "application/x-www-form-urlencoded"
    )
    e(op="http_client_query", url=http_server.url("/echo"), post="x", hdrs="X-A: 1\r\nX-B: 2")
    req = http_server.requests[-1]
    assert req.header("X-A") == "1" and req.header("X-B") == "2"


def test_query_result_zero_gives_the_whole_body_and_caps_apply(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    whole = engine(tmp_path, "query_result = 0\nquery_maxdatasize = 8\n")
    assert (
        whole(op="http_client_query", url=http_server.url("/text?content=abcdef%0Aghijkl"))[
            "result"
        ]
        == b"abcdef\ng"
    )
    first = engine(tmp_path, "query_result = 1\nquery_maxdatasize = 5\n")
    # a first line longer than the cap is kept whole; without a line break the cap applies
    assert (
        first(op="http_client_query", url=http_server.url("/text?content=ABCDEFGHIJ%0Ax"))["result"]
        == b"ABCDEFGHIJ"
    )
    assert (
        first(op="http_client_query", url=http_server.url("/text?content=ABCDEFGHIJ"))["result"]
        == b"ABCDE"
    )


def test_maxdatasize_cuts_the_connection_result_silently(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, f"maxdatasize = 10\nhttpcon = api=>{http_server.url('/body')}\n")
    reply = e(op="http_connect", connection="api", url="?size=100000")
    assert reply["rc"] == 200 and reply["result"] == b"0123456789"


def test_body_is_kept_for_4xx_and_dropped_for_5xx(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url('/status')}\n")
    assert e(op="http_connect", connection="api", url="/404") == {
        "rc": 404,
        "result": b"status 404\n",
        "curlerror": "HTTP result code",
        "content_type": "text/plain",
    }
    assert e(op="http_connect", connection="api", url="/503")["result"] == b""


def test_curl_errors_come_back_as_curl_codes(tmp_path: Path, http_server: HttpTestServer) -> None:
    port = refused_port()
    e = engine(
        tmp_path,
        f"timeout_mode = 2\nconnection_timeout = 300\nhttpcon = dead=>http://127.0.0.1:{port}/\n          slow=>{http_server.url('/slow')}\n",
    )
    dead = e(op="http_connect", connection="dead", url="")
    assert dead["rc"] == 7 and "connect" in dead["curlerror"].lower()
    assert e(op="http_get_redirect", connection="dead")["result"] == ""
    start = time.monotonic()
    slow = e(op="http_connect", connection="slow", url="?ms=1500")
    assert slow["rc"] == 28 and slow["curlerror"] == "Timeout was reached"
    assert time.monotonic() - start < 1.2
    assert e(op="http_client_query", url="file:///etc/passwd")["rc"] == 1
    assert e(op="http_client_query", url="gopher://127.0.0.1/")["rc"] == 1
    assert e(op="http_client_query", url="http://no-such-host.invalid/")["rc"] == 6


def test_a_bad_netinterface_is_rc_45(tmp_path: Path, http_server: HttpTestServer) -> None:
    assert (
        engine(tmp_path, "netinterface = 127.0.0.1\n")(
            op="http_client_query", url=http_server.url("/echo")
        )["rc"]
        == 200
    )
    assert (
        engine(tmp_path, "netinterface = no-such-if0\n")(
            op="http_client_query", url=http_server.url("/echo")
        )["rc"]
        == 45
    )


def test_redirects_off_by_default_and_followed_when_on(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    off = engine(tmp_path, f"httpcon = r=>{http_server.url('/redirect')}\n")
    reply = off(op="http_connect", connection="r", url="2")
    assert reply["rc"] == 302 and reply["result"] == b"moved\n"
    assert off(op="http_get_redirect", connection="r")["result"] == http_server.url("/redirect/2")
    on = engine(tmp_path, f"httpredirect = 1\nhttpcon = r=>{http_server.url('/redirect')}\n")
    assert on(op="http_connect", connection="r", url="2")["rc"] == 200
    assert on(op="http_get_redirect", connection="r")["result"] == http_server.url("/echo")
    assert (
        on(op="http_client_query", url=http_server.url("/redirect-to?url=file:///etc/passwd"))["rc"]
        == 1
    )


def test_failover_is_one_more_attempt_with_the_same_suffix(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    port = refused_port()
    e = engine(
        tmp_path,
        f"httpcon = a=>{http_server.url('/status/500')};failover=b\n"
        f"          b=>{http_server.url('/echo')}\n"
        f"          dead1=>http://127.0.0.1:{port}/;failover=dead2\n"
        f"          dead2=>http://127.0.0.1:{port}/;failover=c\n"
        f"          c=>{http_server.url('/echo')}\n"
        f"          self=>{http_server.url('/status/503')};failover=self\n"
        f"          lost=>{http_server.url('/status/500')};failover=nowhere\n",
    )
    reply = e(op="http_connect", connection="a", url="/x")
    assert reply["rc"] == 200
    assert [r.path for r in http_server.requests] == ["/status/500/x", "/echo/x"]
    assert e.state.connfail == 1 and e.state.connok == 1
    assert e(op="http_connect", connection="dead1", url="")["rc"] == 7  # one failover step only
    http_server.reset()
    assert e(op="http_connect", connection="self", url="")["rc"] == 503
    assert len(http_server.requests) == 2
    assert e(op="http_connect", connection="lost", url="")["rc"] == -1


def test_keep_connections_one_tcp_connection_for_fifty_calls(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    kept = engine(tmp_path, f"keep_connections = 1\nhttpcon = api=>{http_server.url('/echo')}\n")
    for _ in range(50):
        assert kept(op="http_connect", connection="api", url="")["rc"] == 200
    assert http_server.accepts == 1
    http_server.reset()
    fresh = engine(
        tmp_path, f"httpcon = api=>{http_server.url('/echo')}\nkeep_connections = 1\n"
    )  # set below: no effect
    for _ in range(50):
        fresh(op="http_connect", connection="api", url="")
    assert http_server.accepts == 50
    http_server.reset()
    for _ in range(5):
        kept(op="http_client_query", url=http_server.url("/echo"))
    assert http_server.accepts == 5  # the no-connection functions never keep a handle


def test_counters_count_only_http_200_as_ok(tmp_path: Path, http_server: HttpTestServer) -> None:
    e = engine(tmp_path, f"httpcon = s=>{http_server.url('/status')}\n")
    for code in ("200", "201", "204", "302", "404", "500"):
        e(op="http_connect", connection="s", url=code)
    e(op="http_client_query", url=f"http://127.0.0.1:{refused_port()}/")
    assert (e.state.connok, e.state.connfail) == (1, 6)


@pytest.mark.parametrize(
    ("scheme", "authmethod"), [("basic", 1), ("basic", 3), ("digest", 2), ("digest", 3)]
)
def test_basic_and_digest_authentication(
    tmp_path: Path, http_server: HttpTestServer, scheme: str, authmethod: int
) -> None:
    e = engine(tmp_path, f"authmethod = {authmethod}\nhttpcon = a=>http://alice:s3cret@127.0.0.1:{http_server.port}/auth/{scheme}/alice/s3cret\n"
                         f"          bad=>http://alice:wrong@127.0.0.1:{http_server.port}/auth/{scheme}/alice/s3cret\n")  # fmt: skip
    assert e(op="http_connect", connection="a", url="")["rc"] == 200
    assert e(op="http_connect", connection="bad", url="")["rc"] == 401


def test_proxy_rules_for_connections_and_queries(
    tmp_path: Path, http_server: HttpTestServer, http_proxy: ProxyServer
) -> None:
    via = engine(
        tmp_path,
        f"httpproxy = 127.0.0.1\nhttpproxyport = {http_proxy.port}\nhttpcon = api=>{http_server.url('/echo')}\n",
    )
    assert via(op="http_connect", connection="api", url="/p")["rc"] == 200
    assert http_proxy.seen == [f"GET {http_server.url('/echo/p')}"]
    # port 0: connections go direct, the query functions still use the proxy (on its default port)
    direct = engine(
        tmp_path,
        f"httpproxy = 127.0.0.1\nhttpproxyport = 0\nhttpcon = api=>{http_server.url('/echo')}\n",
    )
    assert direct(op="http_connect", connection="api", url="/d")["rc"] == 200
    assert direct(op="http_client_query", url=http_server.url("/echo"))["rc"] == 7


def test_tls_trust_hostname_and_client_certificates(
    tmp_path: Path, tls_material: Any, tls_server_factory: Any
) -> None:
    good = tls_server_factory()
    wrong_name = tls_server_factory(hosts=("other.example",))
    untrusted = tls_server_factory(untrusted=True)
    needs_cert = tls_server_factory(require_client_cert=True)
    ca = tls_material.ca_file
    e = engine(tmp_path, f"cacert = {ca}\n")
    assert e(op="http_client_query", url=good.url("/echo"))["rc"] == 200
    assert e(op="http_client_query", url=wrong_name.url("/echo"))["rc"] == 60
    assert e(op="http_client_query", url=untrusted.url("/echo"))["rc"] == 60
    assert e(op="http_client_query", url=needs_cert.url("/echo"))["rc"] in (
        35,
        55,
        56,
    )  # TLS 1.3: the refusal shows at send or receive
    lax = engine(tmp_path, f"cacert = {ca}\nverify_peer = 0\nverify_host = 0\n")
    assert lax(op="http_client_query", url=untrusted.url("/echo"))["rc"] == 200
    with_cert = engine(
        tmp_path,
        f"cacert = {ca}\nclient_cert = {tls_material.client_cert}\nclient_key = {tls_material.client_key}\n",
    )
    assert with_cert(op="http_client_query", url=needs_cert.url("/echo"))["rc"] == 200
    assert needs_cert.requests[-1].client_cert is not None


def test_default_useragent_has_kamailios_shape(tmp_path: Path, http_server: HttpTestServer) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    e(op="http_connect", connection="api", url="")
    ua = http_server.requests[-1].header("User-Agent") or ""
    name, rest = ua.split(" ", 1)
    assert name == "sipcurl" and rest.startswith("(") and "/linux))" in rest


def test_response_headers_are_returned_when_enabled(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, "response_headers = 1\n")
    reply = e(
        op="http_client_query", url=http_server.url("/headers?set=X-Token:abc&set=X-Token:def")
    )
    assert ["X-Token", "abc"] in reply["headers"] and ["X-Token", "def"] in reply["headers"]


def test_any_method_and_get_with_a_body(tmp_path: Path, http_server: HttpTestServer) -> None:
    e = engine(tmp_path, "query_result = 0\n")
    assert (
        e(op="http_client_request", method="PUT", url=http_server.url("/echo"), body="b=1")["rc"]
        == 200
    )
    assert (http_server.requests[-1].method, http_server.requests[-1].body) == ("PUT", b"b=1")
    e(op="http_client_request", method="PURGE", url=http_server.url("/echo"))
    assert http_server.requests[-1].method == "PURGE"
    e(op="http_client_get", url=http_server.url("/echo"), body="q=1", hdrs="X-Q: 1")
    req = http_server.requests[-1]
    assert (req.method, req.body, req.header("X-Q")) == ("GET", b"q=1", "1")


@pytest.mark.parametrize(
    ("request_fields", "rc"),
    [
        ({"url": "/echo\r\nX-Evil: 1"}, 3),  # libcurl refuses the URL, as Kamailio's does
        ({"url": "/echo/$var(v)", "pv": {"$var(v)": "1\nX-Evil: 2"}}, 3),
        ({"hdrs": "X-A: 1\r\n\r\nGET /smuggled HTTP/1.1"}, -1),
        ({"hdrs": "X-A: 1\r\n"}, -1),
        ({"hdrs": "X-A: $var(v)", "pv": {"$var(v)": "1\r\nX-Evil: 2"}}, -1),
        ({"hdrs": "X-A: 1\nX-Evil: 2"}, -1),
    ],
)
def test_crlf_never_injects_a_header_or_a_request(
    tmp_path: Path, http_server: HttpTestServer, request_fields: dict, rc: int
) -> None:
    e = engine(tmp_path, "")
    request = {"op": "http_client_query", "url": http_server.url("/echo"), **request_fields}
    if request["url"].startswith("/"):
        request["url"] = http_server.url(request["url"])
    before = len(http_server.requests)
    assert run_blocking(e.client, request)["rc"] == rc
    assert len(http_server.requests) == before  # nothing was sent
    assert all(
        r.header("X-Evil") is None and "smuggled" not in r.path for r in http_server.requests
    )


def test_crlf_in_content_type_is_refused(tmp_path: Path, http_server: HttpTestServer) -> None:
    e = engine(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    reply = e(
        op="http_connect",
        connection="api",
        url="",
        content_type="text/plain\r\nX-Evil: 1",
        data="x",
    )
    assert reply["rc"] == -1 and http_server.requests == []


def test_unknown_connections(tmp_path: Path) -> None:
    e = engine(tmp_path, "")
    assert e(op="http_connection_exists", connection="x") == {"rc": 0}
    assert e(op="http_get_content_type", connection="x") == {"result": None}
    assert e(op="http_get_redirect", connection="x")["rc"] == -1
    assert e(op="http_connect", connection="x", url="/")["rc"] == -1


def test_an_empty_useragent_sends_none_for_the_query_functions(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(tmp_path, 'useragent = ""\n')
    e(op="http_client_query", url=http_server.url("/echo"))
    assert http_server.requests[-1].header("User-Agent") is None


def test_tlsversion_and_cipher_suites_reach_curl(
    tmp_path: Path, tls_material: Any, tls_server_factory: Any
) -> None:
    server = tls_server_factory()
    ca = tls_material.ca_file
    tls13 = engine(tmp_path, f"cacert = {ca}\ntlsversion = 7\n")  # CURL_SSLVERSION_TLSv1_3
    assert tls13(op="http_client_query", url=server.url("/echo"))["rc"] == 200
    bogus = engine(tmp_path, f"cacert = {ca}\ncipher_suites = NO-SUCH-CIPHER\ntlsversion = 6\n")
    assert bogus(op="http_client_query", url=server.url("/echo"))["rc"] == 59  # CURLE_SSL_CIPHER
    named = engine(
        tmp_path,
        f"cacert = {ca}\nhttpcon = s=>{server.url('/echo')};cipher_suites=ECDHE-RSA-AES128-GCM-SHA256;tlsversion=6\n",
    )
    assert named(op="http_connect", connection="s", url="")["rc"] == 200
