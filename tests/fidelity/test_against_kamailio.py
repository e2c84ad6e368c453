"""Every case through the real Kamailio 5.6 and through sipcurl, against the same servers.

Asserted equal: `rc`, `result`, `$curlerror` (libcurl 7's and 8's wordings normalised),
the connection's last redirect, the connok/connfail deltas, and what the HTTP server
received (method, path, headers, body) and how many TCP connections it accepted.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dispatcher.settings_loader import load_settings
from tests.conftest import TlsMaterial
from tests.fidelity.harness import Case, Kamailio, Outcome, kamailio_available
from tests.servers import HttpTestServer, ProxyServer
from workers.curlstate import CurlState
from workers.http_client import HttpClient, run_blocking

_why_not = kamailio_available()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Env:
    s: str  # base URL of the plain server
    port: int
    dead: int
    proxy: int
    ca: str = ""
    tls_good: str = ""
    tls_wrong_host: str = ""
    tls_untrusted: str = ""


def group_default(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s, dead = e.s, e.dead
    params: list[tuple[str, Any]] = [
        ("useragent", "fidelity/1.0"),
        ("httpcon", f"api=>{s}/echo"),
        ("httpcon", f"st=>{s}/status"),
        ("httpcon", f"red=>{s}/redirect"),
        ("httpcon", f"body=>{s}/body"),
        ("httpcon", f"txt=>{s}/text"),
        ("httpcon", f"dead=>http://127.0.0.1:{dead}/x"),
        ("httpcon", f"fo=>{s}/status/500;failover=api"),
        ("httpcon", f"fodead=>http://127.0.0.1:{dead}/a;failover=fodead2"),
        ("httpcon", f"fodead2=>http://127.0.0.1:{dead}/b;failover=api"),
        ("httpcon", f"self=>{s}/status/503;failover=self"),
        ("httpcon", f"lost=>{s}/status/502;failover=nowhere"),
        ("httpcon", f"fo404=>{s}/status/404;failover=api"),
        ("httpcon", f"basic=>http://alice:s3cret@127.0.0.1:{e.port}/auth/basic/alice/s3cret"),
        ("httpcon", f"basicbad=>http://alice:nope@127.0.0.1:{e.port}/auth/basic/alice/s3cret"),
        ("httpcon", f"digest=>http://alice:s3cret@127.0.0.1:{e.port}/auth/digest/alice/s3cret"),
        ("httpcon", f"slash=>{s}/echo/"),
        ("httpcon", f"odd =>  {s}/echo;timeout=3;bogus=1;useragent=custom-ua,ignored=1"),
        ("httpcon", f'quoted=>{s}/echo;useragent="a b;c"'),
        ("httpcon", f"dup=>{s}/echo;useragent=first;useragent=second"),
        ("httpcon", f"keepparam=>{s}/echo;keep_connections=1"),
    ]
    C = Case
    cases = [
        C("get", "http_connect", {"connection": "api", "url": "/users?id=7"}),
        C("get-empty-suffix", "http_connect", {"connection": "api", "url": ""}),
        C("join-query", "http_connect", {"connection": "api", "url": "?a=1"}),
        C("join-double-slash", "http_connect", {"connection": "slash", "url": "x"}),
        C("join-double-slash-2", "http_connect", {"connection": "slash", "url": "/x"}),
        C(
            "post-json",
            "http_connect",
            {
                "connection": "api",
                "url": "/p",
                "content_type": "application/json",
                "data": '{"a":1}',
            },
        ),
        C(
            "post-empty-data-is-get",
            "http_connect",
            {"connection": "api", "url": "/e", "content_type": "text/plain", "data": ""},
        ),
        C(
            "post-pv-data",
            "http_connect",
            {
                "connection": "api",
                "url": "/pv",
                "content_type": "text/plain",
                "data": "n=$var(n)&a=$avp(a)",
            },
            pv={"$var(n)": "7", "$avp(a)": "x y"},
        ),
        C(
            "raw-dollar",
            "http_connect_raw",
            {
                "connection": "api",
                "url": "/raw",
                "content_type": "application/json",
                "data": '{"price": "$var(n)"}',
            },
            pv={"$var(n)": "7"},
        ),
        C(
            "url-pv-escape",
            "http_connect",
            {"connection": "api", "url": "/u/$(var(u){s.escape.param})"},
            pv={"$var(u)": "sip:alice@example.com;x=1 2&y/z"},
            known_difference="escape-case",
        ),
        C(
            "url-pv-base64",
            "http_connect",
            {"connection": "api", "url": "/b/$(var(u){s.encode.base64})"},
            pv={"$var(u)": "hello world"},
        ),
        C(
            "url-pv-lower-upper",
            "http_connect",
            {"connection": "api", "url": "/l/$(var(u){s.tolower})/$(var(u){s.toupper})"},
            pv={"$var(u)": "MiXeD"},
        ),
        C("url-pv-null-avp", "http_connect", {"connection": "api", "url": "/n/$avp(missing)"}),
        C(
            "url-pv-null-tr",
            "http_connect",
            {"connection": "api", "url": "/t/$(avp(missing){s.tolower})"},
        ),
        C("url-pv-unset-var", "http_connect", {"connection": "api", "url": "/v/$var(neverset)"}),
        C("status-200", "http_connect", {"connection": "st", "url": "200"}),
        C("status-201", "http_connect", {"connection": "st", "url": "201"}),
        C("status-204", "http_connect", {"connection": "st", "url": "204"}),
        C("status-101", "http_connect", {"connection": "st", "url": "101"}),
        C("status-302-not-followed", "http_connect", {"connection": "red", "url": "2"}),
        C("status-404-body-kept", "http_connect", {"connection": "st", "url": "404"}),
        C("status-500-body-dropped", "http_connect", {"connection": "st", "url": "500"}),
        C("status-503", "http_connect", {"connection": "st", "url": "503"}),
        C("refused", "http_connect", {"connection": "dead", "url": ""}),
        C("failover-500", "http_connect", {"connection": "fo", "url": "/x"}),
        C("failover-chain-one-step", "http_connect", {"connection": "fodead", "url": ""}),
        C("failover-self", "http_connect", {"connection": "self", "url": "/s"}),
        C("failover-unknown", "http_connect", {"connection": "lost", "url": ""}),
        C("failover-not-on-404", "http_connect", {"connection": "fo404", "url": ""}),
        C("basic-auth", "http_connect", {"connection": "basic", "url": ""}),
        C("basic-auth-wrong", "http_connect", {"connection": "basicbad", "url": ""}),
        C(
            "digest-auth",
            "http_connect",
            {"connection": "digest", "url": ""},
            compare_request=False,
        ),
        C("httpcon-odd-params", "http_connect", {"connection": "odd", "url": "/o"}),
        C("httpcon-quoted-param", "http_connect", {"connection": "quoted", "url": "/q"}),
        C("httpcon-duplicate-param", "http_connect", {"connection": "dup", "url": "/d"}),
        C("httpcon-keep-param-ignored", "http_connect", {"connection": "keepparam", "url": "/k"}),
        C("httpcon-keep-param-ignored-2", "http_connect", {"connection": "keepparam", "url": "/k"}),
        C("body-binary", "http_connect", {"connection": "body", "url": "?size=20&nul=1"}),
        C(
            "content-type-stored",
            "http_connect",
            {"connection": "txt", "url": "?content=x&ctype=application/x-odd"},
        ),
        C(
            "query-get-first-line",
            "http_client_query",
            {"url": f"{s}/text?content=line1%0D%0Aline2"},
        ),
        C("query-first-line-lf-only", "http_client_query", {"url": f"{s}/text?content=a%0Ab"}),
        C("query-leading-lf", "http_client_query", {"url": f"{s}/text?content=%0Afoo"}),
        C("query-crlf-start", "http_client_query", {"url": f"{s}/text?content=%0D%0Afoo"}),
        C("query-no-lf", "http_client_query", {"url": f"{s}/text?content=nolinebreak"}),
        C("query-post-form", "http_client_query", {"url": f"{s}/echo", "post": "a=1&b=2"}),
        C("query-empty-post-is-get", "http_client_query", {"url": f"{s}/echo", "post": ""}),
        C(
            "query-hdrs-one",
            "http_client_query",
            {"url": f"{s}/echo", "post": "x=1", "hdrs": "Authorization: Bearer XYZ"},
        ),
        C(
            "query-hdrs-two-crlf",
            "http_client_query",
            {
                "url": f"{s}/echo",
                "post": '{"a":1}',
                "hdrs": "Content-Type: application/json\r\nAuthorization: Bearer XYZ",
            },
        ),
        C(
            "query-hdrs-get",
            "http_client_query",
            {"url": f"{s}/echo", "post": "", "hdrs": "X-Only: 1"},
        ),
        C("query-404", "http_client_query", {"url": f"{s}/status/404"}),
        C("query-500", "http_client_query", {"url": f"{s}/status/500"}),
        C("query-refused", "http_client_query", {"url": f"http://127.0.0.1:{dead}/"}),
        C(
            "query-dns-failure",
            "http_client_query",
            {"url": "http://no-such-host.invalid/"},
            compare_request=False,
        ),
        C("query-file-scheme", "http_client_query", {"url": "file:///etc/hostname"}),
        C("query-gopher-scheme", "http_client_query", {"url": f"gopher://127.0.0.1:{dead}/"}),
        C("query-redirect-not-followed", "http_client_query", {"url": f"{s}/redirect/1"}),
        C("query-pv-url", "http_client_query", {"url": f"{s}/echo/$var(p)"}, pv={"$var(p)": "seg"}),
        C(
            "get-with-body",
            "http_client_get",
            {"url": f"{s}/echo", "body": "q=1", "hdrs": "X-Q: 1"},
        ),
        C("get-no-body", "http_client_get", {"url": f"{s}/echo", "body": "", "hdrs": ""}),
    ]
    return params, cases


def group_redirect(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s = e.s
    params = [("useragent", "fidelity/1.0"), ("httpredirect", 1), ("httpcon", f"red=>{s}/redirect")]
    return params, [
        Case("redirect-followed", "http_connect", {"connection": "red", "url": "3"}),
        Case("redirect-loop-many-hops", "http_connect", {"connection": "red", "url": "30"}),
        Case(
            "redirect-to-file-refused",
            "http_client_query",
            {"url": f"{s}/redirect-to?url=file:///etc/hostname"},
        ),
        Case("redirect-query-followed", "http_client_query", {"url": f"{s}/redirect/2"}),
    ]


def group_caps(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s = e.s
    params = [
        ("useragent", "fidelity/1.0"),
        ("maxdatasize", 10),
        ("httpcon", f"capped=>{s}/body"),
        ("maxdatasize", 20),
        ("query_maxdatasize", 5),
        ("config_file_marker", 0),
    ]
    params = [p for p in params if p[0] != "config_file_marker"]
    return params, [
        Case(
            "maxdatasize-captured-above",
            "http_connect",
            {"connection": "capped", "url": "?size=100"},
        ),
        Case("query-cap-no-lf", "http_client_query", {"url": f"{s}/text?content=ABCDEFGHIJ"}),
        Case(
            "query-cap-first-line-kept-whole",
            "http_client_query",
            {"url": f"{s}/text?content=ABCDEFGHIJ%0Ax"},
        ),
    ]


def group_whole_body(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s = e.s
    params = [("useragent", "fidelity/1.0"), ("query_result", 0), ("query_maxdatasize", 8)]
    return params, [
        Case(
            "query-result-0-whole-body-capped",
            "http_client_query",
            {"url": f"{s}/text?content=abcdef%0Aghijkl"},
        ),
        Case("query-result-0-short", "http_client_query", {"url": f"{s}/text?content=ab%0Ac"}),
        Case(
            "get-result-0",
            "http_client_get",
            {"url": f"{s}/text?content=12%0A34", "body": "", "hdrs": ""},
        ),
    ]


def group_keep(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s = e.s
    params = [
        ("useragent", "fidelity/1.0"),
        ("keep_connections", 1),
        ("httpcon", f"kept=>{s}/echo"),
    ]
    cases = [
        Case(f"keep-connections-call-{i}", "http_connect", {"connection": "kept", "url": f"/{i}"})
        for i in range(3)
    ]
    cases.append(Case("keep-does-not-apply-to-query", "http_client_query", {"url": f"{s}/echo"}))
    return params, cases


def group_timeouts(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s = e.s  # timeout_mode came with Kamailio 5.8: in 5.6 the timeout is in seconds
    params = [
        ("useragent", "fidelity/1.0"),
        ("connection_timeout", 1),
        ("httpcon", f"slow=>{s}/slow"),
    ]
    return params, [
        Case(
            "timeout-seconds",
            "http_connect",
            {"connection": "slow", "url": "?ms=1800"},
            compare_request=False,
        ),
        Case("within-timeout", "http_connect", {"connection": "slow", "url": "?ms=10"}),
    ]


def group_proxy(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s = e.s
    params = [
        ("useragent", "fidelity/1.0"),
        ("httpproxy", "127.0.0.1"),
        ("httpproxyport", e.proxy),
        ("httpcon", f"viaproxy=>{s}/echo"),
    ]
    return params, [
        Case("proxy-connection", "http_connect", {"connection": "viaproxy", "url": "/p"}),
        Case("proxy-query", "http_client_query", {"url": f"{s}/echo/q"}),
    ]


def group_proxy_port_zero(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    s = e.s
    params = [
        ("useragent", "fidelity/1.0"),
        ("httpproxy", "127.0.0.1"),
        ("httpproxyport", 0),
        ("httpcon", f"direct=>{s}/echo"),
    ]
    return params, [
        Case(
            "proxy-port-0-connection-direct", "http_connect", {"connection": "direct", "url": "/d"}
        ),
        Case(
            "proxy-port-0-query-still-proxied",
            "http_client_query",
            {"url": f"{s}/echo/q"},
            compare_request=False,
        ),
    ]


def group_tls(e: Env) -> tuple[list[tuple[str, Any]], list[Case]]:
    params: list[tuple[str, Any]] = [
        ("useragent", "fidelity/1.0"),
        ("cacert", e.ca),
        ("httpcon", f"tls=>{e.tls_good}/echo"),
        ("httpcon", f"tlsname=>{e.tls_wrong_host}/echo"),
        ("httpcon", f"tlsca=>{e.tls_untrusted}/echo"),
        ("httpcon", f"tlslax=>{e.tls_untrusted}/echo;verify_peer=0;verify_host=0"),
    ]
    return params, [
        Case("tls-trusted", "http_connect", {"connection": "tls", "url": "/t"}),
        Case(
            "tls-wrong-hostname",
            "http_connect",
            {"connection": "tlsname", "url": ""},
            compare_request=False,
        ),
        Case(
            "tls-untrusted-ca",
            "http_connect",
            {"connection": "tlsca", "url": ""},
            compare_request=False,
        ),
        Case("tls-verify-off", "http_connect", {"connection": "tlslax", "url": "/lax"}),
        Case("tls-query-trusted", "http_client_query", {"url": f"{e.tls_good}/echo/q"}),
        Case(
            "tls-query-untrusted",
            "http_client_query",
            {"url": f"{e.tls_untrusted}/echo/q"},
            compare_request=False,
        ),
    ]


GROUPS = [
    group_tls,
    group_default,
    group_redirect,
    group_caps,
    group_whole_body,
    group_keep,
    group_timeouts,
    group_proxy,
    group_proxy_port_zero,
]


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Env, HttpTestServer, ProxyServer]]:
    server = HttpTestServer()
    proxy = ProxyServer()
    tls = TlsMaterial(tmp_path_factory.mktemp("fidelity-tls"))
    good = HttpTestServer(tls=tls.server_context())
    wrong = HttpTestServer(tls=tls.server_context(hosts=("other.example",)))
    untrusted = HttpTestServer(tls=tls.server_context(untrusted=True))
    base = [srv.url("").rstrip("/") for srv in (good, wrong, untrusted)]
    try:
        yield (
            Env(
                server.url("").rstrip("/"),
                server.port,
                _refused_port(),
                proxy.port,
                str(tls.ca_file),
                *base,
            ),
            server,
            proxy,
        )
    finally:
        for srv in (good, wrong, untrusted):
            srv.stop()
        proxy.stop()
        server.stop()


def _normalise_curlerror(text: str) -> str:
    """libcurl 7.88 (Kamailio's) and 8 (ours) word some codes differently."""
    return (
        text.lower()
        .replace("couldn't", "could not")
        .replace("host name", "hostname")
        .replace("peer's", "peer")
    )


def _upper_escapes(data: bytes) -> bytes:
    """libcurl 8 writes a URL's %-escapes in upper case; Kamailio's libcurl 7.88 sent them
    as given (the README's differences table)."""
    return re.sub(rb"%[0-9a-f]{2}", lambda m: m[0].upper(), data)


def _received(
    server: HttpTestServer, start: int
) -> list[tuple[str, str, list[tuple[str, str]], bytes]]:
    out = []
    for req in server.requests[start:]:
        headers = sorted((k.lower(), v) for k, v in req.headers if k.lower() not in ("host",))
        out.append((req.method, req.path, headers, req.body))
    return out


def _run_sipcurl(client: HttpClient, state: CurlState, case: Case) -> Outcome:
    ok, fail = state.connok, state.connfail
    reply = run_blocking(client, case.sipcurl_request())
    redirect = None
    if case.op.startswith("http_connect"):
        redirect = run_blocking(
            client, {"op": "http_get_redirect", "connection": case.args["connection"]}
        )["result"]
    return Outcome(
        rc=reply["rc"],
        result=reply["result"],
        curlerror=reply["curlerror"],
        redirect=redirect,
        counters={
            "httpclient:connok": state.connok - ok,
            "httpclient:connfail": state.connfail - fail,
        },
    )


ALL_CASES = []
for _group in GROUPS:
    _params, _cases = _group(Env("http://x", 1, 2, 3))
    ALL_CASES += [(_group.__name__, c.name) for c in _cases]


@pytest.fixture(scope="module")
def outcomes(
    env: tuple[Env, HttpTestServer, ProxyServer], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Run every group once through both; each test then asserts one case."""
    e, server, proxy = env
    results: dict[str, Any] = {}
    for group in GROUPS:
        params, cases = group(e)
        kamailio = Kamailio(params, cases)
        try:
            settings = load_settings(None, kamailio_cfg=str(kamailio.cfg))
            state = CurlState(settings)
            client = HttpClient(settings, state)
            for i, case in enumerate(cases):
                mark, accepts, proxied = len(server.requests), server.accepts, len(proxy.seen)
                theirs = kamailio.run(i)
                k_seen = (_received(server, mark), server.accepts - accepts, proxy.seen[proxied:])
                mark, accepts, proxied = len(server.requests), server.accepts, len(proxy.seen)
                ours = _run_sipcurl(client, state, case)
                o_seen = (_received(server, mark), server.accepts - accepts, proxy.seen[proxied:])
                results[case.name] = (case, theirs, ours, k_seen, o_seen)
        finally:
            kamailio.stop()
            CurlState.close(state) if "state" in locals() else None
    return results


@pytest.mark.parametrize(("group", "name"), ALL_CASES)
def test_same_as_kamailio(outcomes: dict[str, Any], group: str, name: str) -> None:
    case, theirs, ours, k_seen, o_seen = outcomes[name]
    if case.known_difference == "escape-case":
        theirs.result = _upper_escapes(theirs.result)
        k_seen = (
            [(m, _upper_escapes(p.encode()).decode(), h, b) for m, p, h, b in k_seen[0]],
            *k_seen[1:],
        )
    assert ours.rc == theirs.rc, f"{name}: rc"
    assert ours.result == theirs.result, f"{name}: result"
    assert _normalise_curlerror(ours.curlerror) == _normalise_curlerror(theirs.curlerror), (
        f"{name}: $curlerror"
    )
    if theirs.redirect is not None:
        assert ours.redirect == theirs.redirect, f"{name}: last redirect"
    assert ours.counters == theirs.counters, f"{name}: counter deltas"
    if case.compare_request:
        assert o_seen[0] == k_seen[0], f"{name}: what the HTTP server received"
        assert o_seen[1] == k_seen[1], f"{name}: TCP connections the server accepted"
        assert o_seen[2] == k_seen[2], f"{name}: what the proxy forwarded"


def test_there_are_at_least_sixty_cases() -> None:
    assert len(ALL_CASES) >= 60
