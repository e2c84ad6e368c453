"""One typed, read-only settings object for the whole service.

Every default lives here, once. The dispatcher loads the files (main INI, Kamailio's
connections file, or a kamailio.cfg) and hands the finished `Settings` to its workers:
nobody else re-reads a file. Kamailio's own names and defaults are kept exactly where
its users know them (the *code's* defaults, where the module doc disagrees).

Loading lives in `dispatcher.settings_loader` (INI) with the Kamailio grammars in
`dispatcher.httpcon`, `dispatcher.connfile` and `dispatcher.kamailio_cfg`.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

SIPCURL_VERSION = "0.1.0"


def _default_useragent() -> str:
    """Kamailio's shape NAME (VERSION (ARCH/OS)), e.g. `kamailio (5.6.3 (x86_64/linux))`."""
    return f"sipcurl ({SIPCURL_VERSION} ({platform.machine()}/{platform.system().lower()}))"


DEFAULT_USERAGENT = _default_useragent()

ROUTING_POLICIES = ("round_robin", "least_busy")


@dataclass(frozen=True)
class DispatcherSettings:
    frontend: str = "tcp://127.0.0.1:5570"
    events: str = "tcp://127.0.0.1:5571"
    workers: int = 4
    routing: str = "round_robin"
    max_pending: int = 10000
    async_max_transfers: int = 100
    suspend_timeout: float = 30.0  # seconds, like tm's fr_timer
    worker_endpoint: str = ""  # "" = a private ipc:// endpoint chosen at start
    heartbeat_ms: int = 1000
    heartbeat_liveness: int = 3
    shutdown_grace: float = 10.0  # seconds SIGTERM waits for in-flight work
    host_guard: int = 0  # >0: at most this many workers waiting on one host (beyond Kamailio)
    sync_depth: int = 16  # a rank's synchronous calls at its worker: the running one + those behind
    curve_secret_key: str = ""  # z85; set it (e.g. ${env:SIPCURL_CURVE_SECRET}) to require CurveZMQ
    curve_allowed_clients: str = (
        ""  # comma-separated z85 public keys; empty = any client with the server key
    )


@dataclass(frozen=True)
class HttpClientSettings:
    """Kamailio http_client modparams, code defaults (httpredirect is 0, not the doc's 1)."""

    httpredirect: int = 0
    httpproxy: str | None = None
    httpproxyport: int = 0
    useragent: str = DEFAULT_USERAGENT
    maxdatasize: int = 0
    connection_timeout: int = 0  # 0 = "unset": see effective_timeout
    client_cert: str | None = None
    client_key: str | None = None
    cacert: str | None = None
    cipher_suites: str | None = None
    verify_peer: int = 1
    verify_host: int = 2
    tlsversion: int = 0
    authmethod: int = 3
    keep_connections: int = 0
    query_result: int = 1
    query_maxdatasize: int = 0
    netinterface: str | None = None
    config_file: str | None = None
    timeout_mode: int = 1
    response_headers: int = 0
    httpcon: tuple[str, ...] = ()

    @property
    def effective_timeout(self) -> int:
        """Kamailio's mod_init rewrites an unset timeout to 4 s / 4000 ms; mode 0 has none."""
        if self.timeout_mode not in (1, 2):
            return 0
        if self.connection_timeout:
            return self.connection_timeout
        return 4 if self.timeout_mode == 1 else 4000


@dataclass(frozen=True)
class HttpAsyncClientSettings:
    """http_async_client modparams that make sense here (code defaults)."""

    connection_timeout: int = 500  # ms
    curl_follow_redirect: int = 0
    tls_version: int = 0
    tls_verify_host: int = 1
    tls_verify_peer: int = 1
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    tls_ca_path: str | None = None
    tcp_keepalive: int = 0
    tcp_ka_idle: int = 0
    tcp_ka_interval: int = 0
    curl_verbose: int = 0
    authmethod: int = 3


@dataclass(frozen=True)
class Connection:
    """One named connection, with the defaults Kamailio captured for it already applied.

    `url` is the base URL without scheme or credentials (`host[:port][/path]`), as
    Kamailio stores it; `timeout` is already fixed up (0 -> global default, or 0 when
    timeout_mode disables timeouts) and is in timeout_mode units.
    """

    name: str
    schema: str
    url: str
    username: str | None = None
    password: str | None = None
    authmethod: int = 3
    keep_connections: int = 0
    failover: str | None = None
    useragent: str = DEFAULT_USERAGENT
    client_cert: str | None = None
    client_key: str | None = None
    cipher_suites: str | None = None
    tlsversion: int = 0
    verify_peer: int = 1
    verify_host: int = 2
    timeout: int = 0
    maxdatasize: int = 0
    http_proxy: str | None = None
    http_proxy_port: int = 0
    httpredirect: int = 0
    source: str = "httpcon"  # "httpcon" or "config_file"
    origin: str = ""  # "file:line" it was defined at, for messages

    @property
    def base_url(self) -> str:
        return f"{self.schema}://{self.url}"


@dataclass(frozen=True)
class Settings:
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    http_client: HttpClientSettings = field(default_factory=HttpClientSettings)
    http_async_client: HttpAsyncClientSettings = field(default_factory=HttpAsyncClientSettings)
    # In Kamailio's list order (what httpclient.listcon shows).
    connections: tuple[Connection, ...] = ()
    main_file: str | None = None  # where the settings came from, for reload and messages
    connections_file: str | None = None  # config_file resolved to a path

    def connection(self, name: str) -> Connection | None:
        for con in self.connections:
            if con.name == name:
                return con
        return None

    @property
    def httpcon_count(self) -> int:
        """`httpclient:connections` counts httpcon lines only, as Kamailio does."""
        return sum(1 for con in self.connections if con.source == "httpcon")
