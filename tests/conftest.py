"""Fixtures: real servers on 127.0.0.1, stopped when the test (or module) ends.

Function-scoped servers start fresh for each test; `module_http_server` is shared by a
module and must be `reset()` by the test that wants clean counts. A test that starts a
server itself and forgets to stop it fails: the server is stopped and named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import (
    HttpTestServer,
    ProxyServer,
    TlsMaterial,
    free_port,
    live_listeners,
)

__all__ = ["TlsMaterial", "free_port"]  # older tests import TlsMaterial from here


@pytest.fixture(autouse=True)
def _no_server_left_running() -> Iterator[None]:
    """Servers started during a test must be stopped by it (fixtures stop theirs first)."""
    before = set(map(id, live_listeners()))
    yield
    leaked = [s for s in live_listeners() if id(s) not in before]
    for server in leaked:
        server.stop()
    if leaked:
        names = ", ".join(s.name for s in leaked)
        pytest.fail(f"test left servers running (now stopped): {names}", pytrace=False)


@pytest.fixture()
def http_server() -> Iterator[HttpTestServer]:
    with HttpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def module_http_server() -> Iterator[HttpTestServer]:
    """One server for a whole module: cheap, but call `reset()` before counting."""
    with HttpTestServer() as server:
        yield server


@pytest.fixture()
def http_proxy() -> Iterator[ProxyServer]:
    with ProxyServer() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """The trusted CA (`ca_file`) and a client cert it issued (`client_cert`, `client_key`)."""
    return TlsMaterial(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_material(tls_ca: TlsMaterial) -> TlsMaterial:
    return tls_ca


@pytest.fixture()
def tls_server(tls_ca: TlsMaterial) -> Iterator[HttpTestServer]:
    """HTTPS with a certificate for localhost and 127.0.0.1 from `tls_ca`."""
    with HttpTestServer(tls=tls_ca.server_context()) as server:
        yield server


@pytest.fixture()
def tls_server_factory(tls_ca: TlsMaterial) -> Iterator[Callable[..., HttpTestServer]]:
    """make(hosts=..., untrusted=, expired=, require_client_cert=) -> a started server."""
    servers: list[HttpTestServer] = []

    def make(
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        untrusted: bool = False,
        expired: bool = False,
        require_client_cert: bool = False,
    ) -> HttpTestServer:
        context = tls_ca.server_context(
            hosts=hosts,
            untrusted=untrusted,
            expired=expired,
            require_client_cert=require_client_cert,
        )
        server = HttpTestServer(tls=context)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture()
def make_temp_dir(tmp_path: Path) -> Callable[[str], Path]:
    """make_temp_dir(name) -> a new empty folder under this test's tmp_path."""

    def make(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True)
        return folder

    return make
