"""Settings to curl options, in one place (Kamailio's functions.c curL_request_url).

Every request: NOSIGNAL, and only http/https for the request and for redirects, whatever
the settings. Connections take their own captured settings; the no-connection functions
take the module-wide ones with the few differences Kamailio's code has (a proxy whenever
httpproxy is set, a User-Agent only when non-empty).
"""

from __future__ import annotations

from typing import Any, Protocol

import pycurl

from dispatcher.config import Connection, HttpClientSettings

HTTP_ONLY = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS


class Settable(Protocol):
    def setopt(self, option: int, value: Any) -> None: ...


class _Recorder:
    """Stands in for a handle to write down what the functions below would set."""

    def __init__(self) -> None:
        self.options: list[tuple[int, Any]] = []

    def setopt(self, option: int, value: Any) -> None:
        self.options.append((option, value))


def connection_options(con: Connection, http: HttpClientSettings) -> tuple[tuple[int, Any], ...]:
    """Everything a named connection sets on each call but the URL, worked out once per
    settings instead of once per call (the worker's hot path)."""
    recorder = _Recorder()
    apply_common(recorder, b"", http)
    apply_connection_options(recorder, con, http)
    return tuple((o, v) for o, v in recorder.options if o != pycurl.URL)


def apply_common(handle: Settable, url: str | bytes, http: HttpClientSettings) -> None:
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.NOSIGNAL, 1)
    handle.setopt(pycurl.PROTOCOLS, HTTP_ONLY)
    handle.setopt(pycurl.REDIR_PROTOCOLS, HTTP_ONLY)
    if http.netinterface:
        handle.setopt(pycurl.INTERFACE, http.netinterface)
    if http.cacert:
        handle.setopt(pycurl.CAINFO, http.cacert)


def apply_timeout(handle: Settable, timeout: int, mode: int) -> None:
    if mode == 1:
        handle.setopt(pycurl.TIMEOUT, timeout)
    elif mode == 2:
        handle.setopt(pycurl.TIMEOUT_MS, timeout)


MAX_REDIRECTS = 1000


def apply_redirects(handle: Settable, follow: int) -> None:
    """Kamailio sets no hop limit and the libcurl 7 it shipped with had none, so a redirect
    loop ran into the timeout; libcurl 8 stops at 30 hops, or with error 100 after 5,000
    header lines. 1,000 hops keeps every real chain working and ends a loop at once with
    a clear 47 (the README's differences table)."""
    handle.setopt(pycurl.FOLLOWLOCATION, 1 if follow else 0)
    if follow:
        handle.setopt(pycurl.MAXREDIRS, MAX_REDIRECTS)


def apply_tls(
    handle: Settable,
    *,
    client_cert: str | None,
    client_key: str | None,
    cipher_suites: str | None,
    tlsversion: int,
    verify_peer: int,
    verify_host: int,
) -> None:
    if client_cert is not None and client_key is not None:
        handle.setopt(pycurl.SSLCERTTYPE, "PEM")
        handle.setopt(pycurl.SSLCERT, client_cert)
        handle.setopt(pycurl.SSLKEYTYPE, "PEM")
        handle.setopt(pycurl.SSLKEY, client_key)
    if cipher_suites:
        handle.setopt(pycurl.SSL_CIPHER_LIST, cipher_suites)
    if tlsversion:
        handle.setopt(pycurl.SSLVERSION, tlsversion)
    handle.setopt(pycurl.SSL_VERIFYPEER, verify_peer)
    handle.setopt(pycurl.SSL_VERIFYHOST, 2 if verify_host else 0)


def apply_connection_options(handle: Settable, con: Connection, http: HttpClientSettings) -> None:
    handle.setopt(pycurl.USERAGENT, con.useragent)
    if con.username is not None:
        handle.setopt(pycurl.USERNAME, con.username)
        handle.setopt(pycurl.HTTPAUTH, con.authmethod)
    if con.password is not None:
        handle.setopt(pycurl.PASSWORD, con.password)
    apply_tls(
        handle,
        client_cert=con.client_cert,
        client_key=con.client_key,
        cipher_suites=con.cipher_suites,
        tlsversion=con.tlsversion,
        verify_peer=con.verify_peer,
        verify_host=con.verify_host,
    )
    if con.http_proxy is not None and con.http_proxy_port > 0:
        handle.setopt(pycurl.PROXY, con.http_proxy)
        handle.setopt(pycurl.PROXYPORT, con.http_proxy_port)
    apply_timeout(handle, con.timeout, http.timeout_mode)
    apply_redirects(handle, con.httpredirect)


def apply_query_options(handle: Settable, http: HttpClientSettings) -> None:
    if http.useragent:
        handle.setopt(pycurl.USERAGENT, http.useragent)
    else:
        handle.setopt(pycurl.USERAGENT, "")  # curl then sends none; pycurl would send its own
    apply_tls(
        handle,
        client_cert=http.client_cert,
        client_key=http.client_key,
        cipher_suites=http.cipher_suites,
        tlsversion=http.tlsversion,
        verify_peer=http.verify_peer,
        verify_host=http.verify_host,
    )
    if http.httpproxy:
        handle.setopt(pycurl.PROXY, http.httpproxy)
        if http.httpproxyport > 0:
            handle.setopt(pycurl.PROXYPORT, http.httpproxyport)
    apply_timeout(handle, http.effective_timeout, http.timeout_mode)
    apply_redirects(handle, http.httpredirect)
