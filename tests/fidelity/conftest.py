"""Fixtures of the fidelity suite: Kamailio installed (or every test skipped, saying why)
and the real HTTP servers both Kamailio and sipcurl are pointed at."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from functools import cache

import pytest

from tests.conftest import TlsMaterial
from tests.fidelity.compare import Env
from tests.fidelity.kamailio import kamailio_available
from tests.servers import HttpTestServer, ProxyServer

Servers = tuple[Env, HttpTestServer, ProxyServer]


@cache
def _why_not() -> str | None:
    """Installing takes a while on a fresh machine: try once per session."""
    return kamailio_available()


@pytest.fixture(autouse=True)
def _kamailio_installed() -> None:
    """Skip (not fail) only where Kamailio cannot be installed."""
    reason = _why_not()
    if reason is not None:
        pytest.skip(f"fidelity: {reason}")


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """A plain server, a forward proxy, and TLS servers (trusted, wrong name, untrusted CA)."""
    if _why_not() is not None:
        pytest.skip(f"fidelity: {_why_not()}")
    server = HttpTestServer()
    proxy = ProxyServer()
    tls = TlsMaterial(tmp_path_factory.mktemp("fidelity-tls"))
    good = HttpTestServer(tls=tls.server_context())
    wrong = HttpTestServer(tls=tls.server_context(hosts=("other.example",)))
    untrusted = HttpTestServer(tls=tls.server_context(untrusted=True))
    # TLS 1.2 at most: a missing client certificate then fails the handshake itself (rc 35),
    # where 1.3's post-handshake alert races the request (55 or 56 by timing).
    mutual_ctx = tls.server_context(require_client_cert=True)
    mutual_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    mutual = HttpTestServer(tls=mutual_ctx)

    env = Env(
        server.url("").rstrip("/"),
        server.port,
        _refused_port(),
        proxy.port,
        str(tls.ca_file),
        tls_good=good.url("").rstrip("/"),
        tls_wrong_host=wrong.url("").rstrip("/"),
        tls_untrusted=untrusted.url("").rstrip("/"),
        tls_client_required=mutual.url("").rstrip("/"),
        client_cert=str(tls.client_cert),
        client_key=str(tls.client_key),
        files_dir=str(tmp_path_factory.mktemp("fidelity-files")),
    )
    try:
        yield env, server, proxy
    finally:
        for srv in (good, wrong, untrusted, mutual):
            srv.stop()
        proxy.stop()
        server.stop()
