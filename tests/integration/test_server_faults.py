"""Broken and hostile servers: Kamailio's code each time, and no worker held past its timeout."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_http_client import engine
from tests.servers import HttpTestServer


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        ("/reset", {52, 56}),  # RST after the request: empty reply / receive error
        ("/close", {52}),  # closed without a word
        ("/cut?bytes=100", {18}),  # Content-Length promised more than came
    ],
)
def test_connections_that_break(
    tmp_path: Path, http_server: HttpTestServer, path: str, codes: set[int]
) -> None:
    e = engine(tmp_path, f"httpcon = f=>{http_server.url(path)}\n")
    assert e(op="http_connect", connection="f", url="")["rc"] in codes
    assert e.state.connfail == 1


@pytest.mark.parametrize("path", ["/stall", "/trickle?bytes=100&ms=200", "/endless"])
def test_servers_that_never_finish_hold_a_worker_only_until_its_timeout(
    tmp_path: Path, http_server: HttpTestServer, path: str
) -> None:
    e = engine(
        tmp_path,
        f"connection_timeout = 1\nhttpredirect = 1\nmaxdatasize = 1000\nhttpcon = f=>{http_server.url(path)}\n",
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    reply = e(op="http_connect", connection="f", url="")
    assert reply["rc"] == 28 and reply["curlerror"] == "Timeout was reached"
    assert 0.9 < time.monotonic() - start < 1.6
    assert (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 20_000
    )  # KiB: the endless body is not kept


def test_a_redirect_loop_ends_with_too_many_redirects(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    e = engine(
        tmp_path,
        f"connection_timeout = 10\nhttpredirect = 1\nhttpcon = f=>{http_server.url('/loop')}\n",
    )
    start = time.monotonic()
    assert e(op="http_connect", connection="f", url="")["rc"] == 47
    assert time.monotonic() - start < 5


def test_expired_certificate(tmp_path: Path, tls_material: Any, tls_server_factory: Any) -> None:
    expired = tls_server_factory(expired=True)
    e = engine(tmp_path, f"cacert = {tls_material.ca_file}\n")
    assert e(op="http_client_query", url=expired.url("/echo"))["rc"] == 60
