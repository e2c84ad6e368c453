"""The host guard's bookkeeping and how it finds a request's host."""

from __future__ import annotations

from dispatcher.config import Connection, Settings
from dispatcher.hostguard import HostGuard, target_host

SETTINGS = Settings(
    connections=(Connection(name="api", schema="https", url="api.example:8443/v1"),)
)


def test_target_host_of_connections_and_urls() -> None:
    assert target_host({"connection": "api"}, SETTINGS) == "api.example:8443"
    assert target_host({"url": "http://h/x"}, SETTINGS) == "h:80"
    assert target_host({"url": "https://h/x"}, SETTINGS) == "h:443"
    assert target_host({"url": "http://$var(h)/x"}, SETTINGS) is None
    assert target_host({"connection": "nope"}, SETTINGS) is None


def test_at_most_limit_per_host() -> None:
    guard = HostGuard(2)
    assert guard.enter("a:80") and guard.enter("a:80") and not guard.enter("a:80")
    assert guard.enter("b:80")
    guard.leave("a:80")
    assert guard.enter("a:80")
    off = HostGuard(0)
    assert all(off.enter("a:80") for _ in range(10))
