"""CurveZMQ on the client-facing sockets, for endpoints exposed beyond the host.

Off unless `curve_secret_key` is set. Then the frontend and events sockets are CURVE
servers: a client must know the server's public key, and when `curve_allowed_clients`
lists public keys, only those clients are let in (checked by a ZAP authenticator); a
client without keys gets nothing at all, not even an error.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import zmq

from dispatcher.config import DispatcherSettings

log = logging.getLogger("sipcurl.security")

_LOOPBACK = re.compile(r"^(tcp|ws)://(127\.[0-9.]+|localhost|\[::1\]):")


def is_loopback(endpoint: str) -> bool:
    return endpoint.startswith(("ipc://", "inproc://")) or bool(_LOOPBACK.match(endpoint))


class _AllowList:
    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, _domain: str, key: bytes) -> bool:
        return not self.keys or key in self.keys  # pyzmq hands over the z85 text


class CurveServer:
    """Holds the ZAP authenticator thread for as long as the sockets live."""

    def __init__(self, ctx: zmq.Context, conf: DispatcherSettings) -> None:
        self.enabled = bool(conf.curve_secret_key)
        self._auth: Any = None
        self._secret = conf.curve_secret_key.encode() if conf.curve_secret_key else b""
        if not self.enabled:
            for endpoint in (conf.frontend, conf.events):
                if not is_loopback(endpoint):
                    log.warning("%s is reachable beyond this host without CurveZMQ keys", endpoint)
            return
        allowed = frozenset(
            k.strip().encode() for k in conf.curve_allowed_clients.split(",") if k.strip()
        )
        import zmq.auth.thread  # only with CURVE on: it brings asyncio into every worker's RSS

        self._auth = zmq.auth.thread.ThreadAuthenticator(ctx)
        self._auth.start()
        self._auth.configure_curve_callback(
            domain="sipcurl", credentials_provider=_AllowList(allowed)
        )

    def secure(self, sock: zmq.Socket) -> None:
        if self.enabled:
            sock.curve_server = True
            sock.curve_secretkey = self._secret
            sock.zap_domain = b"sipcurl"

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def public_key_of(secret_z85: str) -> str:
    return zmq.curve_public(secret_z85.encode()).decode()
