"""The sipcurl side of a fidelity case, and how two outcomes are compared.

Each settings group runs through one Kamailio and one in-process sipcurl engine built
from the same generated kamailio.cfg; a case is sent to Kamailio first, then to sipcurl,
and what the HTTP server and proxy saw during each is recorded separately.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatcher.settings_loader import load_settings
from tests.fidelity.kamailio import Case, Kamailio, Outcome
from tests.servers import HttpTestServer, ProxyServer
from workers.curlerrors import curlerror_text
from workers.curlstate import CurlState
from workers.http_client import HttpClient, run_blocking

Seen = tuple[list[tuple[str, str, list[tuple[str, str]], bytes]], int, list[str]]
Group = Callable[["Env"], tuple[list[tuple[str, Any]], list[Case]]]


@dataclass
class Env:
    """Where the servers of one test module listen."""

    s: str  # base URL of the plain server
    port: int
    dead: int  # a port nobody listens on
    proxy: int
    ca: str = ""
    tls_good: str = ""
    tls_wrong_host: str = ""
    tls_untrusted: str = ""
    tls_client_required: str = ""  # a TLS server that asks for a client certificate
    client_cert: str = ""
    client_key: str = ""
    files_dir: str = ""  # where groups write connections files ("" while collecting)

    def file(self, name: str, text: str) -> str:
        """Write a file a group's config refers to; its absolute path."""
        path = f"{self.files_dir or '/nonexistent'}/{name}"
        if self.files_dir:
            with open(path, "w") as f:
                f.write(text)
        return path


@dataclass
class Result:
    case: Case
    theirs: Outcome
    ours: Outcome
    k_seen: Seen
    o_seen: Seen


def normalise_curlerror(text: str) -> str:
    """libcurl 7.88 (Kamailio's) and 8 (ours) word some codes differently; the README's
    differences table allows either wording."""
    return (
        text.lower()
        .replace("couldn't", "could not")
        .replace("host name", "hostname")
        .replace("peer's", "peer")
        .replace("can't", "cannot")
        .replace("initialise", "initialize")
    )


def upper_escapes(data: bytes) -> bytes:
    """libcurl 8 writes a URL's %-escapes in upper case; Kamailio's libcurl 7.88 sent them
    as given (the README's differences table)."""
    return re.sub(rb"%[0-9a-f]{2}", lambda m: m[0].upper(), data)


_DIGEST_RANDOM = re.compile(rb'((?:c?nonce|response)=\\?")[^"\\]*(\\?")')


def without_digest_randoms(data: bytes) -> bytes:
    """A Digest exchange's nonce, cnonce and response differ on every run (and libcurl 7's
    cnonce is longer than 8's): blank them, keep everything else of the header."""
    return _DIGEST_RANDOM.sub(rb"\1*\2", data)


def received(
    server: HttpTestServer, start: int
) -> list[tuple[str, str, list[tuple[str, str]], bytes]]:
    out = []
    for req in server.requests[start:]:
        headers = sorted((k.lower(), v) for k, v in req.headers if k.lower() != "host")
        out.append((req.method, req.path, headers, req.body))
    return out


def run_sipcurl(client: HttpClient, state: CurlState, case: Case) -> Outcome:
    ok, fail = state.connok, state.connfail
    if case.op == "curlerror":
        text = curlerror_text(int(case.args["n"]))
        return Outcome(
            0,
            text.encode(),
            curlerror_text(0),
            None,
            {"httpclient:connok": 0, "httpclient:connfail": 0},
        )
    reply = run_blocking(client, case.sipcurl_request())
    redirect = None
    if case.op.startswith("http_connect"):
        redirect = run_blocking(
            client, {"op": "http_get_redirect", "connection": case.args["connection"]}
        )["result"]
        if isinstance(redirect, bytes):
            redirect = redirect.decode("latin-1")
    result = reply.get("result") or b""
    if isinstance(result, str):  # http_get_redirect answers text
        result = result.encode("latin-1")
    return Outcome(
        rc=reply["rc"],
        result=result,
        curlerror=reply.get("curlerror", ""),
        redirect=redirect or None,
        counters={
            "httpclient:connok": state.connok - ok,
            "httpclient:connfail": state.connfail - fail,
        },
    )


def run_group(
    group: Group, env: Env, server: HttpTestServer, proxy: ProxyServer
) -> dict[str, Result]:
    """Every case of one settings group through one Kamailio and one sipcurl engine."""
    params, cases = group(env)
    results: dict[str, Result] = {}
    kamailio = Kamailio(params, cases)
    state: CurlState | None = None
    try:
        settings = load_settings(None, kamailio_cfg=str(kamailio.cfg))
        state = CurlState(settings)
        client = HttpClient(settings, state)
        for i, case in enumerate(cases):
            mark, accepts, proxied = len(server.requests), server.accepts, len(proxy.seen)
            theirs = kamailio.run(i)
            k_seen = (received(server, mark), server.accepts - accepts, proxy.seen[proxied:])
            mark, accepts, proxied = len(server.requests), server.accepts, len(proxy.seen)
            ours = run_sipcurl(client, state, case)
            o_seen = (received(server, mark), server.accepts - accepts, proxy.seen[proxied:])
            results[case.name] = Result(case, theirs, ours, k_seen, o_seen)
    finally:
        kamailio.stop()
        if state is not None:
            state.close()
    return results


def assert_same(r: Result) -> None:
    """Everything a script or a backend could notice, equal on both sides."""
    name, theirs, ours, k_seen, o_seen = r.case.name, r.theirs, r.ours, r.k_seen, r.o_seen
    if r.case.on_purpose is not None:
        told = f"{name}: Kamailio gave rc {theirs.rc} and sent {k_seen[0]}; sipcurl rc {ours.rc}, sent {o_seen[0]}"
        assert ours.rc == r.case.on_purpose, told
        if r.case.compare_request:  # refused before anything went out
            assert (o_seen[0], o_seen[2]) == ([], []), told
            assert ours.counters == {"httpclient:connok": 0, "httpclient:connfail": 0}, told
        return
    if r.case.known_difference == "escape-case":
        theirs.result = upper_escapes(theirs.result)
        k_seen = (
            [(m, upper_escapes(p.encode()).decode(), h, b) for m, p, h, b in k_seen[0]],
            *k_seen[1:],
        )
    if r.case.known_difference == "digest":
        theirs.result, ours.result = (
            without_digest_randoms(theirs.result),
            without_digest_randoms(ours.result),
        )
        k_seen, o_seen = (
            (
                [
                    (m, p, [(k, without_digest_randoms(v.encode()).decode()) for k, v in h], b)
                    for m, p, h, b in seen[0]
                ],
                *seen[1:],
            )
            for seen in (k_seen, o_seen)
        )
    if r.case.known_difference == "redirect-userinfo" and theirs.redirect:
        # libcurl 7.88 keeps `user:password@` in the effective URL; sipcurl's has none.
        theirs.redirect = re.sub(r"^(\w+://)[^/@]*@", r"\1", theirs.redirect)
    assert ours.rc == theirs.rc, f"{name}: rc"
    if r.case.op == "curlerror":
        assert normalise_curlerror(ours.result.decode()) == normalise_curlerror(
            theirs.result.decode()
        ), f"{name}: $curlerror({r.case.args['n']})"
    else:
        assert ours.result == theirs.result, f"{name}: result"
    if r.case.op not in ("http_get_redirect", "curlerror"):  # no $curlerror of their own
        assert normalise_curlerror(ours.curlerror) == normalise_curlerror(theirs.curlerror), (
            f"{name}: $curlerror"
        )
    if r.case.op.startswith("http_connect"):
        assert ours.redirect == theirs.redirect, f"{name}: last redirect"
    assert ours.counters == theirs.counters, f"{name}: counter deltas"
    if r.case.compare_request:
        assert o_seen[0] == k_seen[0], f"{name}: what the HTTP server received"
        if r.case.our_accepts is None:
            assert o_seen[1] == k_seen[1], f"{name}: TCP connections the server accepted"
        else:
            assert o_seen[1] == r.case.our_accepts, (
                f"{name}: TCP connections (Kamailio: {k_seen[1]})"
            )
        assert o_seen[2] == k_seen[2], f"{name}: what the proxy forwarded"
