"""Kamailio's `httpcon` grammar, scanner quirks included (curlcon.c curl_parse_param).

    httpcon := WS* NAME WS* "=>" WS* SCHEMA ":" "//" [USER [":" PASS] "@"] BASEURL [";" PARAMS]

Quirks kept because Kamailio users see them: credentials split at the first `@` anywhere
after `//` (so `;useragent=a@b` is read as credentials), an unquoted `,` or `>` silently
ends the parameter list, the first of a repeated parameter wins, an unknown parameter is
only warned about, and a `;` after the last parameter refuses to start. PARAMS go through
Kamailio's SIP parameter parser (parse_param.c), whose corner cases are reproduced too:
no whitespace may precede the first name, names may be empty, `name=` with nothing after
it is fine only at the very end.
"""

from __future__ import annotations

from typing import NamedTuple

from dispatcher.config import Connection, HttpClientSettings
from dispatcher.errors import ConfigError

_WS = " \t\r\n"
CURL_SSLVERSION_LAST = 8
UINT_MAX = 2**32 - 1
KNOWN_PARAMS = (
    "httpredirect", "timeout", "useragent", "failover", "maxdatasize", "verify_peer",
    "verify_host", "tlsversion", "client_cert", "client_key", "cipher_suites",
)  # fmt: skip


class ParsedHttpcon(NamedTuple):
    """The connection plus what Kamailio would only log (unknown or invalid parameters)."""

    connection: Connection
    warnings: list[str]


def str2int(text: str | None) -> int | None:
    """Kamailio's str2int: ASCII digits after an optional '+', at most UINT_MAX; "" is 0.

    None (a parameter written without `=`) fails, as a NULL body does in C.
    """
    if text is None:
        return None
    body = text[1:] if text.startswith("+") else text
    if body and not (body.isascii() and body.isdigit()):
        return None
    value = int(body) if body else 0
    return value if value <= UINT_MAX else None


def _invalid(whole: str, pos: int, why: str) -> ConfigError:
    return ConfigError(f"invalid curl parameter at [{pos}]: {why}", value=whole)


def parse_params(text: str, whole: str, offset: int = 0) -> list[tuple[str, str | None]]:
    """parse_params(CLASS_ANY) over the text after the first `;`: (name, body) in text order.

    body None means the parameter had no `=` (Kamailio's NULL body). `offset` only places
    error positions within the whole httpcon string.
    """
    params: list[tuple[str, str | None]] = []
    n, i = len(text), 0
    if n == 0:
        return params
    while True:
        # The name runs to whitespace, ',', '=' or ';' -- no whitespace is skipped before it.
        start = i
        while i < n and text[i] not in _WS + ",=;":
            i += 1
        name = text[start:i]
        while i < n and text[i] in _WS:
            i += 1
        body: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in _WS:
                i += 1
            if i >= n:
                body = ""  # `name=` at the very end: forgiven, an empty body
            elif text[i] in "\"'":
                end = text.find(text[i], i + 1)
                if n - i < 2 or end < 0:
                    raise _invalid(whole, offset + i, "unclosed quote")
                body = text[i + 1 : end]
                i = end + 1
            else:
                start = i
                while i < n and text[i] not in _WS + ",;":
                    i += 1
                if i == start:
                    raise _invalid(whole, offset + i, f"value missing for {name!r}")
                body = text[start:i]
            while i < n and text[i] in _WS:
                i += 1
        params.append((name, body))
        if i >= n or text[i] in ",>":
            return params  # an unquoted ',' or '>' silently ends the list, as in Kamailio
        if text[i] != ";":
            raise _invalid(whole, offset + i, f"unexpected {text[i]!r}, expected ';'")
        i += 1
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            raise _invalid(whole, offset + i, "parameter name missing after ';'")


def parse_httpcon(text: str, defaults: HttpClientSettings, *, origin: str = "") -> ParsedHttpcon:
    """One httpcon definition with the http_client values captured for it (`defaults`).

    Raises ConfigError exactly where Kamailio refuses to start; everything Kamailio only
    logs comes back in `warnings`.
    """
    whole = text.split("\0", 1)[0]  # Kamailio sees a C string
    text = whole
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    if i >= n:
        raise _invalid(whole, i, "empty definition")
    start = i
    while i < n and text[i] not in "=" + _WS:
        i += 1
    name = text[start:i]
    while i < n and text[i] in _WS:
        i += 1
    if text[i : i + 2] != "=>":
        raise _invalid(whole, i, "expected 'name=>url'")
    i += 2
    while i < n and text[i] in _WS:
        i += 1
    colon = text.find(":", i)
    if colon < 0:
        raise _invalid(whole, n, "expected 'schema://'")
    if text[colon + 1 : colon + 3] != "//":
        raise _invalid(whole, colon + 1, "expected '//' after the schema")
    schema = text[i:colon]
    rest_at = colon + 3
    rest = text[rest_at:]
    username = password = None
    at = rest.find("@")  # anywhere, even inside the parameters: Kamailio's scanner does so
    if at >= 0:
        user, sep, pw = rest[:at].partition(":")
        username, password = user, (pw if sep else None)
        rest_at += at + 1
        rest = rest[at + 1 :]
    url, sep, params_text = rest.partition(";")
    params = parse_params(params_text, whole, rest_at + len(url) + 1) if sep else []

    warnings: list[str] = []
    if not name:
        warnings.append("httpcon with an empty connection name")
    if not url:
        warnings.append(f"httpcon {name}: empty base URL")
    values: dict[str, str | None] = {}
    for pname, pbody in params:
        if pname not in KNOWN_PARAMS:
            warnings.append(f"httpcon {name}: curl Unknown parameter [{pname}] ignored")
        elif pname not in values:
            values[pname] = pbody  # the first occurrence wins (Kamailio prepends, then overrides)

    def int_param(pname: str, default: int, ok: object = None) -> int:
        if pname not in values:
            return default
        got = str2int(values[pname])
        if got is None or (callable(ok) and not ok(got)):
            shown = "(no value)" if values[pname] is None else repr(values[pname])
            warnings.append(f"httpcon {name}: {pname} bad value {shown}, using {default}")
            return default
        return got

    def str_param(pname: str, default: str | None) -> str | None:
        # Without '=' the body is NULL in C: the connection then has no value at all.
        return values.get(pname, default)

    proxy_on = defaults.httpproxyport > 0 and defaults.httpproxy is not None
    con = Connection(
        name=name,
        schema=schema,
        url=url,
        username=username,
        password=password,
        authmethod=defaults.authmethod,
        keep_connections=defaults.keep_connections,
        failover=str_param("failover", None) or None,
        useragent=str_param("useragent", defaults.useragent) or "",
        client_cert=str_param("client_cert", defaults.client_cert),
        client_key=str_param("client_key", defaults.client_key),
        cipher_suites=str_param("cipher_suites", defaults.cipher_suites),
        tlsversion=int_param("tlsversion", defaults.tlsversion, lambda v: v < CURL_SSLVERSION_LAST),
        verify_peer=int_param("verify_peer", defaults.verify_peer, lambda v: v in (0, 1)),
        verify_host=int_param("verify_host", defaults.verify_host),
        timeout=int_param("timeout", defaults.connection_timeout),
        maxdatasize=int_param("maxdatasize", defaults.maxdatasize),
        http_proxy=defaults.httpproxy if proxy_on else None,
        http_proxy_port=defaults.httpproxyport if proxy_on else 0,
        httpredirect=int_param("httpredirect", defaults.httpredirect, lambda v: v in (0, 1)),
        source="httpcon",
        origin=origin,
    )
    return ParsedHttpcon(con, warnings)
