"""Kamailio's connections file (`config_file`), read raw as core/cfg_parser.c reads it.

    [name]                 # a plain token: letters, digits, '_'
    url = http://h/path    # options belong to the last section; keys are case-insensitive
    timeout = 5

Deliberate differences, both from SPEC: `""` means null (Kamailio's code gives an empty
string), and the documented key spellings `keep_connections` / `http_follow_redirect` are
accepted beside the code's `keepconnections` / `httpredirect`. A missing `url` is an error
naming the section (Kamailio crashes on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dispatcher.config import Connection, HttpClientSettings
from dispatcher.errors import ConfigError

MAX_TOKEN_LEN = 512
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_=:;.,?[]/@!$%&*()-+|'\""
)
_TRUE = {"yes", "true", "enable", "enabled", "1", "on"}
_FALSE = {"no", "false", "disable", "disabled", "0", "off"}
_TLS_NAMES = {
    "default": 0,
    "tlsv1": 1,
    "sslv2": 2,
    "sslv3": 3,
    "tlsv1.0": 4,
    "tlsv1.1": 5,
    "tlsv1.2": 6,
}


def _bool(text: str) -> int:
    low = text.lower()
    if low in _TRUE:
        return 1
    if low in _FALSE:
        return 0
    raise ValueError("not a boolean (yes/no, true/false, on/off, enable/disable, 1/0)")


def _int(text: str) -> int:
    if not text.isdigit():
        raise ValueError("not a non-negative integer")
    return int(text)


def _tls(text: str) -> int:
    low = text.lower()
    if low in _TLS_NAMES:
        return _TLS_NAMES[low]
    raise ValueError(f"not one of {', '.join(_TLS_NAMES)}")


# key (lower case) -> (Connection field, converter)
_KEYS: dict[str, tuple[str, Callable[[str], object]]] = {
    "url": ("url", str),
    "username": ("username", str),
    "password": ("password", str),
    "failover": ("failover", str),
    "useragent": ("useragent", str),
    "verify_peer": ("verify_peer", _bool),
    "verify_host": ("verify_host", _bool),
    "client_cert": ("client_cert", str),
    "client_key": ("client_key", str),
    "cipher_suites": ("cipher_suites", str),
    "tlsversion": ("tlsversion", _tls),
    "timeout": ("timeout", _int),
    "maxdatasize": ("maxdatasize", _int),
    "httpredirect": ("httpredirect", _bool),
    "http_follow_redirect": ("httpredirect", _bool),
    "httpproxy": ("http_proxy", str),
    "httpproxyport": ("http_proxy_port", _int),
    "authmethod": ("authmethod", _int),
    "keepconnections": ("keep_connections", _int),
    "keep_connections": ("keep_connections", _int),
}


def _read_value(
    line: str, pos: int, filename: str, lineno: int, key: str
) -> tuple[str | None, int]:
    """One value token: quoted (escapes, `""` is null) or a plain token."""
    if pos < len(line) and line[pos] == '"':
        out: list[str] = []
        i = pos + 1
        while i < len(line):
            ch = line[i]
            if ch == "\\" and i + 1 < len(line):
                out.append({"n": "\n", "r": "\r", "t": "\t"}.get(line[i + 1], line[i + 1]))
                i += 2
                continue
            if ch == '"':
                text = "".join(out)
                return (text if text else None), i + 1
            out.append(ch)
            i += 1
        raise ConfigError("unterminated quoted string", file=filename, line=lineno, option=key)
    start = pos
    while pos < len(line) and line[pos] not in " \t\r#":
        if line[pos] not in _TOKEN_CHARS:
            raise ConfigError(
                f"invalid character {line[pos]!r} (quote the value)",
                file=filename, line=lineno, option=key, value=line[start:].strip(),
            )  # fmt: skip
        pos += 1
    return line[start:pos], pos


def parse_connections_file(
    text: str, *, filename: str, defaults: HttpClientSettings
) -> tuple[Connection, ...]:
    base = Connection(
        name="", schema="", url="",
        authmethod=defaults.authmethod, keep_connections=defaults.keep_connections,
        useragent=defaults.useragent, client_cert=defaults.client_cert,
        client_key=defaults.client_key, cipher_suites=defaults.cipher_suites,
        tlsversion=defaults.tlsversion, verify_peer=defaults.verify_peer,
        verify_host=defaults.verify_host, timeout=defaults.connection_timeout,
        maxdatasize=defaults.maxdatasize,
        httpredirect=defaults.httpredirect, source="config_file",
    )  # fmt: skip
    sections: list[tuple[str, int, dict[str, object]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            end = line.find("]")
            name = line[1:end] if end > 0 else ""
            after = line[end + 1 :].strip(" \t") if end > 0 else "x"
            if (
                not name
                or not all(c.isalnum() or c == "_" for c in name)
                or (after and not after.startswith("#"))
            ):
                raise ConfigError("invalid section header", file=filename, line=lineno, value=line)
            sections.append((name, lineno, {}))
            continue
        key, eq, rest = line.partition("=")
        key = key.strip(" \t").lower()
        if not eq or not key:
            raise ConfigError("expected 'option = value'", file=filename, line=lineno, value=line)
        if not sections:
            raise ConfigError(
                "option before the first [section]", file=filename, line=lineno, option=key
            )
        if key not in _KEYS:
            raise ConfigError("unsupported option", file=filename, line=lineno, option=key)
        rest = rest.lstrip(" \t")
        value, pos = _read_value(rest, 0, filename, lineno, key)
        tail = rest[pos:].strip(" \t\r")
        if tail and not tail.startswith("#"):
            raise ConfigError(
                "unexpected text after the value",
                file=filename,
                line=lineno,
                option=key,
                value=tail,
            )
        if value is not None and len(value) > MAX_TOKEN_LEN:
            raise ConfigError(
                "value longer than 512 characters", file=filename, line=lineno, option=key
            )
        field_name, convert = _KEYS[key]
        if value is None:
            if convert is not str:
                raise ConfigError(
                    "an empty value is not a number or boolean",
                    file=filename,
                    line=lineno,
                    option=key,
                )
            sections[-1][2][field_name] = None
            continue
        try:
            sections[-1][2][field_name] = convert(value)
        except ValueError as exc:
            shown = "********" if key == "password" else value
            raise ConfigError(
                str(exc), file=filename, line=lineno, option=key, value=shown
            ) from None

    out: list[Connection] = []
    seen: set[str] = set()
    for name, lineno, values in sections:
        url = values.pop("url", None)
        if not isinstance(url, str):
            raise ConfigError(f"connection [{name}] has no url", file=filename, line=lineno)
        schema, _, rest = url.partition(":")
        if not rest.startswith("//") or len(rest) < 3 or not schema:
            raise ConfigError(
                f"connection [{name}]: invalid url",
                file=filename,
                line=lineno,
                option="url",
                value=url,
            )
        if name in seen:
            raise ConfigError(f"duplicate connection name [{name}]", file=filename, line=lineno)
        seen.add(name)
        port = values.get("http_proxy_port", defaults.httpproxyport)
        proxy = values.get("http_proxy", defaults.httpproxy)
        on = isinstance(port, int) and port > 0 and proxy is not None  # port 0 disables it
        values["http_proxy"], values["http_proxy_port"] = (proxy, port) if on else (None, 0)
        fields: dict[str, Any] = {**values, "name": name, "schema": schema, "url": rest[2:]}
        out.append(replace(base, origin=f"{filename}:{lineno}", **fields))
    return tuple(out)
