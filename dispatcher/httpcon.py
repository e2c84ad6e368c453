"""Kamailio's `httpcon` grammar, scanner quirks included (curlcon.c curl_parse_param).

    httpcon := WS* NAME WS* "=>" WS* SCHEMA ":" "//" [USER [":" PASS] "@"] BASEURL [";" PARAMS]

Quirks kept because Kamailio users see them: credentials split at the first `@` anywhere
after `//` (so `;useragent=a@b` is read as credentials), an unquoted `,` or `>` silently
ends the parameter list, the first of a repeated parameter wins, an unknown parameter is
only warned about, and a `;` after the last parameter refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatcher.config import Connection, HttpClientSettings
from dispatcher.errors import ConfigError

_WS = " \t\r\n"
CURL_SSLVERSION_LAST = 8


@dataclass
class ParsedHttpcon:
    connection: Connection
    warnings: list[str] = field(default_factory=list)


def _str2int(text: str) -> int | None:
    """Kamailio's str2int: digits with an optional leading '+'; empty is 0."""
    body = text[1:] if text.startswith("+") else text
    if body == "":
        return 0
    return int(body) if body.isdigit() else None


def parse_params(text: str, whole: str) -> list[tuple[str, str]]:
    """The core SIP parameter parser as http_client calls it (CLASS_ANY)."""
    params: list[tuple[str, str]] = []
    n, i = len(text), 0
    if text.strip(_WS) == "":
        return params
    while True:
        while i < n and text[i] in _WS:
            i += 1
        start = i
        while i < n and text[i] not in _WS + "=;,>":
            i += 1
        name = text[start:i]
        if not name:
            raise ConfigError(f"invalid curl parameter [{whole}]: param name missing", value=whole)
        while i < n and text[i] in _WS:
            i += 1
        body = ""
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in _WS:
                i += 1
            if i < n and text[i] in "\"'":
                quote = text[i]
                end = text.find(quote, i + 1)
                if end < 0:
                    raise ConfigError(
                        f"invalid curl parameter [{whole}]: unclosed quote", value=whole
                    )
                body = text[i + 1 : end]
                i = end + 1
            else:
                start = i
                while i < n and text[i] not in _WS + ",;":
                    i += 1
                body = text[start:i]
            while i < n and text[i] in _WS:
                i += 1
        params.append((name, body))
        if i >= n:
            return params
        if text[i] == ";":
            i += 1
            continue
        if text[i] in ",>":
            return params  # silently the end of the list, as in Kamailio
        raise ConfigError(
            f"invalid curl parameter [{whole}] at [{i}]: unexpected {text[i]!r}", value=whole
        )


def parse_httpcon(text: str, defaults: HttpClientSettings, *, origin: str = "") -> ParsedHttpcon:
    whole = text
    i, n = 0, len(text)
    while i < n and text[i] in _WS:
        i += 1
    if i >= n:
        raise ConfigError("empty httpcon definition", value=whole)
    start = i
    while i < n and text[i] not in "=" + _WS:
        i += 1
    name = text[start:i]
    while i < n and text[i] in _WS:
        i += 1
    if not name or text[i : i + 2] != "=>":
        raise ConfigError(
            f"invalid curl parameter [{whole}] at [{i}]: expected 'name=>url'", value=whole
        )
    i += 2
    while i < n and text[i] in _WS:
        i += 1
    colon = text.find(":", i)
    if colon < 0 or text[colon + 1 : colon + 3] != "//":
        raise ConfigError(
            f"invalid curl parameter [{whole}] at [{i}]: expected 'schema://'", value=whole
        )
    schema = text[i:colon]
    rest = text[colon + 3 :]
    username = password = None
    at = rest.find("@")
    if at >= 0:
        user, sep, pw = rest[:at].partition(":")
        username, password = user, (pw if sep else None)
        rest = rest[at + 1 :]
    url, sep, params_text = rest.partition(";")
    if not url:
        raise ConfigError(f"invalid curl parameter [{whole}]: no URL", value=whole)
    params = parse_params(params_text, whole) if sep else []

    warnings: list[str] = []
    values: dict[str, object] = {}
    for pname, pbody in params:
        if pname in values:
            continue  # the first occurrence wins (the list is built by prepending)
        values[pname] = pbody

    def int_param(pname: str, default: int, ok: object = None) -> int:
        if pname not in values:
            return default
        got = _str2int(str(values[pname]))
        if got is None or (callable(ok) and not ok(got)):
            warnings.append(f"httpcon {name}: invalid {pname} {values[pname]!r}, using {default}")
            return default
        return got

    known = {
        "httpredirect", "timeout", "useragent", "failover", "maxdatasize", "verify_peer",
        "verify_host", "tlsversion", "client_cert", "client_key", "cipher_suites",
    }  # fmt: skip
    for pname in values:
        if pname not in known:
            warnings.append(f"httpcon {name}: curl Unknown parameter [{pname}] ignored")
    proxy_on = defaults.httpproxyport > 0 and defaults.httpproxy is not None
    con = Connection(
        name=name,
        schema=schema,
        url=url,
        username=username,
        password=password,
        authmethod=defaults.authmethod,
        keep_connections=defaults.keep_connections,
        failover=str(values["failover"]) if "failover" in values else None,
        useragent=str(values.get("useragent", defaults.useragent)),
        client_cert=str(values["client_cert"]) if "client_cert" in values else defaults.client_cert,
        client_key=str(values["client_key"]) if "client_key" in values else defaults.client_key,
        cipher_suites=str(values["cipher_suites"])
        if "cipher_suites" in values
        else defaults.cipher_suites,
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
