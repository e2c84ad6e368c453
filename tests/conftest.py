"""Fixtures: real servers on 127.0.0.1, stopped when the test ends."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.servers import HttpTestServer, ProxyServer


@pytest.fixture()
def http_server() -> Iterator[HttpTestServer]:
    with HttpTestServer() as server:
        yield server


@pytest.fixture()
def http_proxy() -> Iterator[ProxyServer]:
    proxy = ProxyServer()
    try:
        yield proxy
    finally:
        proxy.stop()


class TlsMaterial:
    """A trusted CA with its files on disk, a client certificate, and an untrusted CA."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        client = self.ca.issue_cert("client@example.test")
        self.client_cert = folder / "client.pem"
        self.client_key = folder / "client.key"
        client.cert_chain_pems[0].write_to_path(str(self.client_cert))
        client.private_key_pem.write_to_path(str(self.client_key))

    def server_context(
        self,
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        untrusted: bool = False,
        expired: bool = False,
        require_client_cert: bool = False,
    ) -> ssl.SSLContext:
        ca = trustme.CA() if untrusted else self.ca
        kwargs = {}
        if expired:
            kwargs["not_after"] = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        cert = ca.issue_cert(*hosts, **kwargs)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return TlsMaterial(tmp_path_factory.mktemp("tls"))


@pytest.fixture()
def tls_server_factory(tls_material: TlsMaterial) -> Iterator[Callable[..., HttpTestServer]]:
    servers: list[HttpTestServer] = []

    def make(**kwargs: object) -> HttpTestServer:
        server = HttpTestServer(tls=tls_material.server_context(**kwargs))  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
