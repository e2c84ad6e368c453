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
