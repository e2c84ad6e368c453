"""The test servers themselves, proved with plain sockets and pycurl: every other test
trusts what they record and how they misbehave."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pycurl
import pytest

from tests.servers import (
    HttpTestServer,
    ProxyServer,
    TlsMaterial,
    free_port,
    live_listeners,
    refused_url,
)

DEADLINE_S = 5.0


def fetch(url: str, **opts: Any) -> tuple[int, bytes, list[str], int]:
    """(status, body, response header lines, curl error code) with one fresh handle."""
    curl = pycurl.Curl()
    body, head = io.BytesIO(), io.BytesIO()
    curl.setopt(pycurl.URL, url)
    curl.setopt(pycurl.WRITEDATA, body)
    curl.setopt(pycurl.HEADERFUNCTION, head.write)
    curl.setopt(pycurl.TIMEOUT_MS, int(DEADLINE_S * 1000))
    for key, value in opts.items():
        curl.setopt(getattr(pycurl, key), value)
    err = 0
    try:
        curl.perform()
    except pycurl.error as exc:
        err = exc.args[0]
    status = curl.getinfo(pycurl.RESPONSE_CODE)
    curl.close()
    lines = head.getvalue().decode("latin-1").splitlines()
    return status, body.getvalue(), lines, err


def connect(server: HttpTestServer | ProxyServer) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=DEADLINE_S)
    return sock


def read_until_close(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while len(data) < limit:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece
    raise AssertionError("peer never closed")


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One Content-Length framed response: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"closed before a full head: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece
        body += piece
    return head, body


def until(check: Callable[[], bool], timeout_s: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# -- recording and keep-alive --


def test_keep_alive_requests_recorded_in_wire_order(http_server: HttpTestServer) -> None:
    with connect(http_server) as sock:
        sock.sendall(
            b"POST /echo/x?a=1 HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nX-A: 1\r\nX-B: 3\r\n"
            b"Content-Length: 3\r\n\r\nabc"
        )
        head, body = read_response(sock)
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
        read_response(sock)
        assert http_server.accepts == 1 and http_server.open_connections == 1
    first, second = http_server.requests
    assert (first.method, first.path, first.body, first.connection) == (
        "POST",
        "/echo/x?a=1",
        b"abc",
        1,
    )
    assert first.headers[:4] == [("Host", "h"), ("X-B", "2"), ("X-A", "1"), ("X-B", "3")]
    assert first.header_values("x-b") == ["2", "3"] and first.header("X-B") == "3"
    assert second.connection == 1
    assert b"Content-Type: application/json" in head
    echoed = json.loads(body)
    assert echoed["body"] == "abc" and echoed["path"] == "/echo/x?a=1"
    assert echoed["headers"][1] == ["X-B", "2"]
    assert until(lambda: http_server.open_connections == 0)


def test_connection_close_and_http10_end_the_connection(http_server: HttpTestServer) -> None:
    for request in (
        b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"GET /echo HTTP/1.0\r\n\r\n",
        b"GET /close-after HTTP/1.1\r\nHost: h\r\n\r\n",
    ):
        with connect(http_server) as sock:
            sock.sendall(request)
            reply = read_until_close(sock)
        assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: close\r\n" in reply
    assert http_server.accepts == 3


def test_new_connections_are_counted_and_reset_forgets(http_server: HttpTestServer) -> None:
    for _ in range(3):
        assert fetch(http_server.url("/echo"), FORBID_REUSE=1)[0] == 200
    assert http_server.accepts == 3 and [r.connection for r in http_server.requests] == [1, 2, 3]
    http_server.reset()
    assert http_server.accepts == 0 and http_server.requests == []


def test_curl_reuses_one_connection(http_server: HttpTestServer) -> None:
    curl = pycurl.Curl()
    curl.setopt(pycurl.WRITEDATA, io.BytesIO())
    for path in ("/echo", "/status/500", "/body?size=10"):
        curl.setopt(pycurl.URL, http_server.url(path))
        curl.perform()
    curl.close()
    assert http_server.accepts == 1 and len(http_server.requests) == 3


def test_expect_100_continue_is_answered_at_once(http_server: HttpTestServer) -> None:
    with connect(http_server) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hi")
        _, body = read_response(sock)
    assert json.loads(body)["body"] == "hi"


def test_chunked_request_body_is_decoded(http_server: HttpTestServer) -> None:
    status, _, _, _ = fetch(
        http_server.url("/echo"),
        POSTFIELDS="x=1",
        HTTPHEADER=["Transfer-Encoding: chunked"],
    )
    assert status == 200 and http_server.requests[-1].body == b"x=1"


def test_malformed_request_and_bad_arguments_get_400(http_server: HttpTestServer) -> None:
    with connect(http_server) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        assert read_until_close(sock).startswith(b"HTTP/1.1 400 ")
    assert fetch(http_server.url("/status/abc"))[0] == 400
    assert fetch(http_server.url("/body?size=-1"))[0] == 400
    assert fetch(http_server.url("/headers?set=novalue"))[0] == 400
    assert fetch(http_server.url("/nowhere"))[0] == 404


# -- routes --


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/status/503", 503, b"status 503\n"),
        ("/status/404/extra/segments", 404, b"status 404\n"),
        ("/status/204", 204, b""),
        ("/status/304", 304, b""),
        ("/status/100", 200, b"after informational\n"),
        ("/text?content=a%0D%0Ab%0Ac%00d", 200, b"a\r\nb\nc\0d"),
        ("/text?content=%C3%A9", 200, b"\xc3\xa9"),
        ("/body?size=12", 200, b"012345678901"),
        ("/body?size=7&nul=1", 200, b"ab\0cdab"),
        ("/body?lines=3", 200, b"line1\nline2\nline3\n"),
        ("/body?size=20000&chunked=1", 200, (b"0123456789" * 2000)),
    ],
)
def test_route_status_and_body(
    http_server: HttpTestServer, path: str, status: int, body: bytes
) -> None:
    got_status, got_body, _, err = fetch(http_server.url(path))
    assert (got_status, got_body, err) == (status, body, 0)


def test_status_text_has_its_content_type_and_chunked_is_chunked(
    http_server: HttpTestServer,
) -> None:
    _, _, head, _ = fetch(http_server.url("/status/500"))
    assert "Content-Type: text/plain" in head
    _, _, head, _ = fetch(http_server.url("/body?size=5&chunked=1&ctype=application/x-test"))
    assert "Transfer-Encoding: chunked" in head and "Content-Type: application/x-test" in head
    assert not any(line.lower().startswith("content-length") for line in head)


def test_head_gets_no_body(http_server: HttpTestServer) -> None:
    with connect(http_server) as sock:
        sock.sendall(b"HEAD /body?size=50 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        reply = read_until_close(sock)
    assert reply.endswith(b"\r\n\r\n") and b"Content-Length: 50" in reply


def test_headers_route_sets_repeated_headers_in_order(http_server: HttpTestServer) -> None:
    _, _, head, _ = fetch(http_server.url("/headers?set=X-R:1&set=X-R:2&set=X-S:a%20b"))
    assert [line for line in head if line.startswith("X-")] == ["X-R: 1", "X-R: 2", "X-S: a b"]


def test_redirects(http_server: HttpTestServer) -> None:
    status, body, head, _ = fetch(http_server.url("/redirect/2"))
    assert (status, body) == (302, b"moved\n") and "Location: /redirect/1" in head
    status, body, _, _ = fetch(http_server.url("/redirect/2"), FOLLOWLOCATION=1)
    assert status == 200 and json.loads(body)["path"] == "/echo"
    assert [r.path for r in http_server.requests[1:]] == [
        "/redirect/2",
        "/redirect/1",
        "/redirect/0",
        "/echo",
    ]
    _, _, head, _ = fetch(http_server.url("/redirect-to?url=file:///etc/passwd&code=301"))
    assert "HTTP/1.1 301 Moved Permanently" in head and "Location: file:///etc/passwd" in head
    _, _, head, err = fetch(http_server.url("/loop"), FOLLOWLOCATION=1, MAXREDIRS=3)
    assert err == pycurl.E_TOO_MANY_REDIRECTS and "Location: /loop" in head


def test_slow_and_trickle_take_their_time(http_server: HttpTestServer) -> None:
    start = time.monotonic()
    assert fetch(http_server.url("/slow?ms=200"))[:2] == (200, b"slow\n")
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    assert fetch(http_server.url("/trickle?bytes=5&ms=50"))[:2] == (200, b"xxxxx")
    assert time.monotonic() - start >= 0.25


def test_stall_never_answers_until_stop() -> None:
    server = HttpTestServer()
    with connect(server) as sock:
        sock.sendall(b"GET /stall HTTP/1.1\r\nHost: h\r\n\r\n")
        assert server.wait_for_requests(1)
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        sock.settimeout(DEADLINE_S)
        server.stop()
        assert sock.recv(10) == b""
    assert server.threads_alive == 0


def test_close_reset_and_cut(http_server: HttpTestServer) -> None:
    with connect(http_server) as sock:
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: h\r\n\r\n")
        assert sock.recv(10) == b""
    with connect(http_server) as sock:
        sock.sendall(b"GET /reset HTTP/1.1\r\nHost: h\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    assert fetch(http_server.url("/close"))[3] == pycurl.E_GOT_NOTHING
    assert fetch(http_server.url("/reset"))[3] == pycurl.E_RECV_ERROR
    status, body, _, err = fetch(http_server.url("/cut?bytes=7"))
    assert (status, body, err) == (200, b"xxxxxxx", pycurl.E_PARTIAL_FILE)


def test_endless_stops_when_the_client_goes_away(http_server: HttpTestServer) -> None:
    with connect(http_server) as sock:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: h\r\n\r\n")
        received = 0
        while received < 200_000:
            received += len(sock.recv(65536))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    assert until(lambda: http_server.open_connections == 0)


# -- authentication --


@pytest.mark.parametrize(
    ("scheme", "flag"), [("basic", pycurl.HTTPAUTH_BASIC), ("digest", pycurl.HTTPAUTH_DIGEST)]
)
def test_auth_challenges_and_accepts_the_right_password(
    http_server: HttpTestServer, scheme: str, flag: int
) -> None:
    url = http_server.url(f"/auth/{scheme}/alice/s3cret")
    status, _, head, _ = fetch(url)
    assert status == 401
    assert any(line.startswith(f"WWW-Authenticate: {scheme.capitalize()} realm=") for line in head)
    status, body, _, _ = fetch(url, USERPWD="alice:s3cret", HTTPAUTH=flag)
    assert status == 200 and json.loads(body)["user"] == "alice"
    assert fetch(url, USERPWD="alice:wrong", HTTPAUTH=flag)[0] == 401
    assert fetch(url, USERPWD="bob:s3cret", HTTPAUTH=flag)[0] == 401


def test_digest_is_md5_with_qop_auth_and_a_fresh_challenge_each_time(
    http_server: HttpTestServer,
) -> None:
    url = http_server.url("/auth/digest/u/p?x=1")
    assert fetch(url, USERPWD="u:p", HTTPAUTH=pycurl.HTTPAUTH_DIGEST)[0] == 200
    challenge, answer = http_server.requests[-2:]
    assert challenge.header("Authorization") is None
    sent = answer.header("Authorization") or ""
    assert (
        sent.startswith("Digest ") and "qop=auth" in sent and 'uri="/auth/digest/u/p?x=1"' in sent
    )
    forged = sent.replace('nonce="', 'nonce="1-')  # a nonce the server never issued
    with connect(http_server) as sock:
        sock.sendall(
            f"GET /auth/digest/u/p?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: {forged}\r\n\r\n".encode()
        )
        head, _ = read_response(sock)
    assert head.startswith(b"HTTP/1.1 401 ")


# -- TLS --


def test_tls_server_is_trusted_for_both_names(
    tls_server: HttpTestServer, tls_ca: TlsMaterial
) -> None:
    for host in ("127.0.0.1", "localhost"):
        status, body, _, err = fetch(tls_server.url("/echo", host=host), CAINFO=str(tls_ca.ca_file))
        assert (status, err) == (200, 0) and json.loads(body)["method"] == "GET"
    assert tls_server.url().startswith("https://")
    assert fetch(tls_server.url("/echo"))[3] == pycurl.E_PEER_FAILED_VERIFICATION  # system CAs


@pytest.mark.parametrize(
    "variant", [{"hosts": ("other.example",)}, {"untrusted": True}, {"expired": True}]
)
def test_bad_certificates_are_refused(
    tls_server_factory: Callable[..., HttpTestServer], tls_ca: TlsMaterial, variant: dict[str, Any]
) -> None:
    server = tls_server_factory(**variant)
    _, _, _, err = fetch(server.url("/echo"), CAINFO=str(tls_ca.ca_file))
    assert err == pycurl.E_PEER_FAILED_VERIFICATION and server.requests == []
    assert (
        fetch(server.url("/echo"), CAINFO=str(tls_ca.ca_file), SSL_VERIFYPEER=0, SSL_VERIFYHOST=0)[
            0
        ]
        == 200
    )


def test_client_certificate_required_and_recorded(
    tls_server_factory: Callable[..., HttpTestServer], tls_ca: TlsMaterial
) -> None:
    server = tls_server_factory(require_client_cert=True)
    ca = str(tls_ca.ca_file)
    assert fetch(server.url("/echo"), CAINFO=ca)[3] != 0
    assert server.requests == [] and until(lambda: server.tls_failures >= 1)
    status, _, _, err = fetch(
        server.url("/echo"),
        CAINFO=ca,
        SSLCERT=str(tls_ca.client_cert),
        SSLKEY=str(tls_ca.client_key),
    )
    assert (status, err) == (200, 0)
    assert server.requests[-1].client_subject == tls_ca.client_subject
    assert tls_ca.client_subject == "O=sipcurl tests,OU=client,CN=sipcurl test client"


# -- proxy --


def test_proxy_forwards_and_records(http_server: HttpTestServer, http_proxy: ProxyServer) -> None:
    target = http_server.url("/echo/p?q=1")
    status, body, _, _ = fetch(
        target, PROXY=http_proxy.url(), POSTFIELDS="a=b", PROXYUSERPWD="pu:pp"
    )
    assert status == 200 and json.loads(body)["body"] == "a=b"
    assert http_proxy.seen == [f"POST {target}"] and http_proxy.count == 1
    assert http_proxy.requests[0].header("Proxy-Authorization") is not None
    forwarded = http_server.requests[-1]
    assert forwarded.path == "/echo/p?q=1" and forwarded.header("Proxy-Authorization") is None
    assert fetch(refused_url() + "x", PROXY=http_proxy.url())[0] == 502
    with connect(http_proxy) as sock:
        sock.sendall(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
        assert read_until_close(sock).startswith(b"HTTP/1.1 501 ")
    assert http_proxy.count == 2


def test_proxy_keeps_the_client_connection_and_relays_every_framing(
    http_server: HttpTestServer, http_proxy: ProxyServer
) -> None:
    curl = pycurl.Curl()
    body = io.BytesIO()
    curl.setopt(pycurl.WRITEDATA, body)
    curl.setopt(pycurl.PROXY, http_proxy.url())
    curl.setopt(pycurl.TIMEOUT_MS, int(DEADLINE_S * 1000))
    expected = {
        "/echo": None,
        "/body?size=20000&chunked=1": b"0123456789" * 2000,
        "/status/100": b"after informational\n",
        "/status/204": b"",
        "/status/503": b"status 503\n",
        "/text?content=last": b"last",
    }
    for path, want in expected.items():
        body.seek(0)
        body.truncate()
        curl.setopt(pycurl.URL, http_server.url(path))
        curl.perform()
        assert want is None or body.getvalue() == want, path
    curl.close()
    assert http_proxy.accepts == 1 and http_proxy.count == len(expected)
    assert http_server.accepts == len(expected)  # a fresh upstream connection each
    assert fetch(http_server.url("/close"), PROXY=http_proxy.url())[0] == 502


# -- lifecycle --


def test_stop_closes_everything_and_frees_the_port() -> None:
    server, proxy = HttpTestServer(), ProxyServer()
    assert server in live_listeners() and proxy in live_listeners()
    idle = connect(server)
    idle.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
    read_response(idle)
    busy = connect(server)
    busy.sendall(b"GET /endless HTTP/1.1\r\nHost: h\r\n\r\n")
    busy.recv(100)
    start = time.monotonic()
    server.stop()
    proxy.stop()
    server.stop()  # idempotent
    assert time.monotonic() - start < 1.0
    assert server.threads_alive == 0 and proxy.threads_alive == 0
    assert not [t for t in threading.enumerate() if t.name.startswith(server.name)]
    assert server not in live_listeners()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_S)
    idle.close()
    busy.close()


def test_free_port_is_not_listening() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port()), timeout=DEADLINE_S)


def test_make_temp_dir_gives_fresh_folders(make_temp_dir: Callable[[str], Any]) -> None:
    a, b = make_temp_dir("a"), make_temp_dir("b/c")
    assert a.is_dir() and b.is_dir() and a != b and not any(a.iterdir())


def test_module_server_is_shared_and_resettable(module_http_server: HttpTestServer) -> None:
    module_http_server.reset()
    assert fetch(module_http_server.url("/echo"))[0] == 200
    assert len(module_http_server.requests) == 1 and module_http_server.accepts == 1


def test_keep_alive_throughput(http_server: HttpTestServer) -> None:
    """At least ~1,000 requests/s on one kept connection even on a loaded machine."""
    request = b"GET /status/200 HTTP/1.1\r\nHost: h\r\n\r\n"
    count = 1000
    with connect(http_server) as sock:
        start = time.monotonic()
        for _ in range(count):
            sock.sendall(request)
            read_response(sock)
        elapsed = time.monotonic() - start
    assert http_server.accepts == 1 and len(http_server.requests) == count
    assert elapsed < 1.0, f"{count / elapsed:.0f} requests/s"


def test_a_test_that_leaves_a_server_running_fails(tmp_path: Path) -> None:
    leaky = tmp_path / "test_leaky.py"
    leaky.write_text(
        "from tests.servers import HttpTestServer\n\n"
        "def test_forgets_to_stop():\n    HttpTestServer()\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(leaky),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "test left servers running (now stopped)" in run.stdout
