"""Settings as a user sees them take effect: timeouts by timeout_mode, TLS verification
switches one by one, and TLS on named connections (global CA, kept sessions)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dispatcher.settings_loader import load_settings
from tests.servers import HttpTestServer
from workers.curlstate import CurlState
from workers.http_client import HttpClient, run_blocking


def make_client(tmp_path: Path, http_client: str) -> HttpClient:
    ini = tmp_path / "sipcurl.ini"
    ini.write_text("[http_client]\n" + http_client)
    settings = load_settings(str(ini))
    return HttpClient(settings, CurlState(settings))


def timed(client: HttpClient, request: dict) -> tuple[dict, float]:
    start = time.monotonic()
    reply = run_blocking(client, request)
    return reply, time.monotonic() - start


def test_timeout_mode_2_is_milliseconds_for_the_whole_transfer(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(
        tmp_path,
        f"timeout_mode = 2\nconnection_timeout = 300\nhttpcon = slow=>{http_server.url('/slow')}\n",
    )
    for request in (
        {"op": "http_client_query", "url": http_server.url("/slow?ms=1500")},
        {"op": "http_connect", "connection": "slow", "url": "?ms=1500"},
    ):
        reply, elapsed = timed(client, request)
        assert reply["rc"] == 28 and reply["curlerror"] == "Timeout was reached"
        assert 0.25 <= elapsed < 1.0
    # a trickling body is cut too: the limit is on the transfer, not on silence
    reply, elapsed = timed(
        client, {"op": "http_client_query", "url": http_server.url("/trickle?bytes=20&ms=50")}
    )
    assert reply["rc"] == 28 and elapsed < 0.9


def test_timeout_mode_0_sets_no_timeout_at_all(tmp_path: Path, http_server: HttpTestServer) -> None:
    client = make_client(tmp_path, "timeout_mode = 0\nconnection_timeout = 1\n")
    reply = run_blocking(
        client, {"op": "http_client_query", "url": http_server.url("/slow?ms=400")}
    )
    assert reply["rc"] == 200 and reply["result"] == b"slow"


def test_timeout_on_a_connection_uses_its_own_value(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(
        tmp_path,
        "timeout_mode = 2\nconnection_timeout = 5000\n"
        f"httpcon = quick=>{http_server.url('/slow')};timeout=200\n",
    )
    reply, elapsed = timed(client, {"op": "http_connect", "connection": "quick", "url": "?ms=1500"})
    assert reply["rc"] == 28 and elapsed < 0.8


def test_verification_switches_one_at_a_time(
    tmp_path: Path, tls_material: Any, tls_server_factory: Any
) -> None:
    wrong_name = tls_server_factory(hosts=("other.example",))
    untrusted = tls_server_factory(untrusted=True)
    ca = tls_material.ca_file
    name_unchecked = make_client(tmp_path, f"cacert = {ca}\nverify_host = 0\n")
    assert (
        run_blocking(name_unchecked, {"op": "http_client_query", "url": wrong_name.url("/echo")})[
            "rc"
        ]
        == 200
    )
    assert (
        run_blocking(name_unchecked, {"op": "http_client_query", "url": untrusted.url("/echo")})[
            "rc"
        ]
        == 60
    )
    peer_unchecked = make_client(tmp_path, f"cacert = {ca}\nverify_peer = 0\n")
    assert (
        run_blocking(peer_unchecked, {"op": "http_client_query", "url": untrusted.url("/echo")})[
            "rc"
        ]
        == 200
    )
    # any non-zero verify_host means 2 (Kamailio): the name is checked
    odd = make_client(tmp_path, f"cacert = {ca}\nverify_host = 1\n")
    assert (
        run_blocking(odd, {"op": "http_client_query", "url": wrong_name.url("/echo")})["rc"] == 60
    )


def test_connections_trust_the_global_ca_and_keep_their_tls_connection(
    tmp_path: Path, tls_material: Any, tls_server_factory: Any
) -> None:
    server = tls_server_factory(require_client_cert=True)
    client = make_client(
        tmp_path,
        f"cacert = {tls_material.ca_file}\nclient_cert = {tls_material.client_cert}\n"
        f"client_key = {tls_material.client_key}\nkeep_connections = 1\n"
        f"httpcon = s=>{server.url('/echo')}\n",
    )
    for _ in range(5):
        assert (
            run_blocking(client, {"op": "http_connect", "connection": "s", "url": ""})["rc"] == 200
        )
    assert server.accepts == 1
    assert server.requests[-1].client_cert is not None
    no_ca = make_client(tmp_path, f"httpcon = s=>{server.url('/echo')}\n")
    assert run_blocking(no_ca, {"op": "http_connect", "connection": "s", "url": ""})["rc"] == 60


def test_timeout_mode_1_is_seconds(tmp_path: Path, http_server: HttpTestServer) -> None:
    client = make_client(tmp_path, "timeout_mode = 1\nconnection_timeout = 1\n")
    reply, elapsed = timed(
        client, {"op": "http_client_query", "url": http_server.url("/slow?ms=2500")}
    )
    assert reply["rc"] == 28 and 0.9 <= elapsed < 2.0
