"""`sipcurl backend` for real: latency, status mixes, faults and its connection counts."""

from __future__ import annotations

import json
import socket
import statistics
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pycurl
import pytest

from dispatcher import localrun
from dispatcher.backend import parse_latency


@pytest.fixture()
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    args = getattr(request, "param", [])
    child, url = localrun.start_backend(list(args), localrun.workdir("sipcurl-backend-test-"))
    try:
        yield url
    finally:
        child.stop()


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_stats", timeout=5) as resp:
        return json.loads(resp.read())


def fetch(handle: pycurl.Curl, url: str) -> tuple[int, float]:
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.WRITEFUNCTION, lambda _b: None)
    handle.setopt(pycurl.TIMEOUT_MS, 3000)
    handle.perform()
    return int(handle.getinfo(pycurl.RESPONSE_CODE)), handle.getinfo(pycurl.TOTAL_TIME)


@pytest.mark.parametrize("backend", [["--latency-ms", "30"]], indirect=True)
def test_fixed_latency_is_honoured_and_keep_alive_is_one_connection(backend: str) -> None:
    handle = pycurl.Curl()
    times = [fetch(handle, backend + "/x")[1] for _ in range(20)]
    handle.close()
    assert 0.028 <= statistics.median(times) <= 0.040
    s = stats(backend)
    assert s["requests"] == 20 and s["connections_accepted"] == 2  # ours plus the stats probe
    assert fetch(pycurl.Curl(), backend + "/x?latency_ms=0")[1] < 0.02


@pytest.mark.parametrize(
    "backend",
    [["--error-rate", "0.5", "--status-mix", "500:1,503:1", "--seed", "7"]],
    indirect=True,
)
def test_status_mix_ratios(backend: str) -> None:
    handle = pycurl.Curl()
    codes = [fetch(handle, backend + "/")[0] for _ in range(400)]
    assert 150 <= codes.count(200) <= 250
    assert 50 <= codes.count(500) <= 150 and 50 <= codes.count(503) <= 150
    assert fetch(handle, backend + "/?status=404")[0] == 404
    assert stats(backend)["responses"]["404"] == 1


def test_faults_close_reset_and_stall(backend: str) -> None:
    fresh = [fetch(pycurl.Curl(), backend + "/?close=1")[0] for _ in range(3)]
    assert fresh == [200] * 3
    with pytest.raises(pycurl.error) as reset:
        fetch(pycurl.Curl(), backend + "/?reset=1")
    assert reset.value.args[0] in (52, 56)
    start = time.monotonic()
    with pytest.raises(pycurl.error) as stall:
        c = pycurl.Curl()
        c.setopt(pycurl.TIMEOUT_MS, 300)
        c.setopt(pycurl.URL, backend + "/?stall=1")
        c.setopt(pycurl.WRITEFUNCTION, lambda _b: None)
        c.perform()
    assert stall.value.args[0] == 28 and time.monotonic() - start < 1
    s = stats(backend)
    assert (s["faults_close"], s["faults_reset"], s["faults_stall"]) == (3, 1, 1)
    urllib.request.urlopen(
        urllib.request.Request(backend + "/_stats/reset", data=b""), timeout=5
    ).read()
    assert stats(backend)["requests"] == 0


@pytest.mark.parametrize(
    "backend", [["--tls", "--body-size", "10", "--content-type", "application/json"]], indirect=True
)
def test_tls_backend(backend: str) -> None:
    assert backend.startswith("https://")
    c = pycurl.Curl()
    c.setopt(pycurl.SSL_VERIFYPEER, 0)
    c.setopt(pycurl.SSL_VERIFYHOST, 0)
    assert fetch(c, backend + "/")[0] == 200
    assert c.getinfo(pycurl.CONTENT_TYPE) == "application/json"


def test_latency_distributions_follow_their_percentiles() -> None:
    import random

    rng = random.Random(1)
    draw = parse_latency("lognormal:p50=20,p99=200")
    values = sorted(draw(rng) * 1000 for _ in range(20000))
    assert 18 < values[10000] < 22 and 170 < values[19800] < 230
    normal = parse_latency("normal:p50=20,p99=60")
    values = sorted(normal(rng) * 1000 for _ in range(20000))
    assert 19 < values[10000] < 21 and 55 < values[19800] < 65


def test_port_zero_prints_the_chosen_port(backend: str) -> None:
    port = int(backend.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def raw_exchange(url: str, payload: bytes, expect_responses: int) -> bytes:
    """Send bytes on one socket; read until that many responses or the server closes."""
    port = int(url.rsplit(":", 1)[1])
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(payload)
        deadline = time.monotonic() + 3
        while data.count(b"HTTP/1.1 ") < expect_responses and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_connection_counts_keep_alive_versus_connection_close(backend: str) -> None:
    kept = pycurl.Curl()
    for _ in range(10):
        fetch(kept, backend + "/k")
    kept.close()
    for _ in range(10):
        c = pycurl.Curl()
        c.setopt(pycurl.HTTPHEADER, ["Connection: close"])
        assert fetch(c, backend + "/c")[0] == 200
        c.close()
    s = stats(backend)
    # 1 kept-alive connection, 10 closed ones, 1 for this probe; only the probe is open.
    assert (s["connections_accepted"], s["requests"]) == (12, 20)
    assert s["faults_close"] == 0  # the client asked: not a fault


def test_pipelined_chunked_and_expect_continue_bodies(backend: str) -> None:
    chunked = (
        b"POST /a?size=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    plain = b"POST /b?size=2 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    head = b"HEAD /c?size=3 HTTP/1.1\r\nConnection: close\r\n\r\n"
    data = raw_exchange(backend, chunked + plain + head, 3)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.endswith(b"Content-Length: 3\r\nConnection: close\r\n\r\n")  # HEAD: no body
    # A body over 1 KiB: curl sends Expect: 100-continue and would wait a second for it.
    c = pycurl.Curl()
    c.setopt(pycurl.POSTFIELDS, b"z" * 5000)
    code, took = fetch(c, backend + "/post")
    assert code == 200 and took < 0.5


def test_bad_requests_get_400_not_a_dead_server(backend: str) -> None:
    data = raw_exchange(backend, b"GET / HTTP/1.1\r\nContent-Length: many\r\n\r\n", 1)
    assert data.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in data
    handle = pycurl.Curl()
    assert fetch(handle, backend + "/?latency_ms=soon")[0] == 400
    assert fetch(handle, backend + "/?status=99")[0] == 400
    assert fetch(handle, backend + "/?size=-1")[0] == 400
    assert fetch(handle, backend + "/")[0] == 200
    assert stats(backend)["bad_requests"] == 4


def test_redirect_keeps_the_other_parameters(backend: str) -> None:
    c = pycurl.Curl()
    c.setopt(pycurl.FOLLOWLOCATION, 1)
    body = bytearray()
    c.setopt(pycurl.URL, backend + "/r?redirect=1&size=5&status=201")
    c.setopt(pycurl.WRITEFUNCTION, body.extend)
    c.setopt(pycurl.TIMEOUT_MS, 3000)
    c.perform()
    assert c.getinfo(pycurl.RESPONSE_CODE) == 201 and bytes(body) == b"xxxx\n"
    assert c.getinfo(pycurl.EFFECTIVE_URL).endswith("/_r/r?size=5&status=201")
    s = stats(backend)
    assert s["redirects"] == 1 and s["responses"] == {"302": 1, "201": 1}


@pytest.mark.parametrize("backend", [["--processes", "2"]], indirect=True)
def test_processes_share_exact_counters(backend: str) -> None:
    handles = [pycurl.Curl() for _ in range(8)]
    for _ in range(25):
        for h in handles:
            assert fetch(h, backend + "/")[0] == 200
    s = stats(backend)
    assert s["processes"] == 2
    assert (s["requests"], s["connections_accepted"], s["responses"]) == (200, 9, {"200": 200})


@pytest.mark.parametrize("backend", [["--stall-rate", "1"]], indirect=True)
def test_profile_stall_rate_and_a_query_override(backend: str) -> None:
    c = pycurl.Curl()
    c.setopt(pycurl.URL, backend + "/")
    c.setopt(pycurl.WRITEFUNCTION, lambda _b: None)
    c.setopt(pycurl.TIMEOUT_MS, 200)
    with pytest.raises(pycurl.error) as stalled:
        c.perform()
    assert stalled.value.args[0] == 28
    assert fetch(pycurl.Curl(), backend + "/?stall=0")[0] == 200
    assert stats(backend)["faults_stall"] == 1
