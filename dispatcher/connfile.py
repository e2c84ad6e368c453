"""Kamailio's connections file (`config_file`), read raw as core/cfg_parser.c reads it.

    [name]                 # a token: letters, digits, '_' (and backslash escapes)
    url = http://h/path    # options belong to the last section; keys are case-insensitive
    timeout = 5

The lexer is cfg_parser's state machine: `#` comments (a backslash at the end of a
comment swallows the line break), double-quoted strings with `\\ \" \n \r \t` escapes and
backslash-newline continuations, unquoted values made of letters, digits and
`= : ; . , ? [ ] / @ ! $ % & * ( ) - + | ' "`, at most 512 characters per token. Numbers are
read in the plain mode, so `-5` or `+5` must be quoted to be numbers at all.

Deliberate differences, all from SPEC or for safety: `""` means null (Kamailio's code gives
an empty string); the documented key spellings `keep_connections` / `http_follow_redirect`
are accepted beside the code's `keepconnections` / `httpredirect`; a missing `url` (Kamailio
crashes), an invalid url or a duplicate name (Kamailio silently drops sections) and a
negative number (Kamailio wraps it) are errors naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatcher.config import Connection, HttpClientSettings
from dispatcher.errors import ConfigError

MAX_TOKEN_LEN = 512
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DELIM = frozenset("=:;.,?[]/@!$%&*()-+|'")
_WS = frozenset(" \t\r")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_BOOLS = {
    "yes": 1, "true": 1, "enable": 1, "enabled": 1, "1": 1, "on": 1,
    "no": 0, "false": 0, "disable": 0, "disabled": 0, "0": 0, "off": 0,
}  # fmt: skip
_TLS_NAMES = {
    "default": 0, "tlsv1": 1, "sslv2": 2, "sslv3": 3, "tlsv1.0": 4, "tlsv1.1": 5, "tlsv1.2": 6,
}  # fmt: skip

ALPHA, STRING = "ALPHA", "STRING"  # token types; any other type is the delimiter itself


@dataclass(frozen=True)
class _Token:
    type: str
    value: str
    line: int


class _Lexer:
    """cfg_get_token: `extended` is CFG_EXTENDED_ALPHA, the mode values are read in."""

    def __init__(self, text: str, filename: str) -> None:
        self.text, self.filename = text, filename
        self.pos, self.line = 0, 1
        self.look_ahead: str | None = None

    def error(self, message: str, line: int | None = None, **kw: Any) -> ConfigError:
        return ConfigError(message, file=self.filename, line=line or self.line, **kw)

    def _read(self) -> str | None:
        if self.look_ahead is not None:
            c, self.look_ahead = self.look_ahead, None
            return c
        if self.pos >= len(self.text):
            return None
        c = self.text[self.pos]
        self.pos += 1
        if c == "\n":
            self.line += 1
        return c

    def token(self, extended: bool) -> _Token | None:
        """The next token, or None at the end of the file."""
        val: list[str] = []
        line = self.line
        state = "S"

        def push(ch: str) -> None:
            nonlocal line
            if len(val) >= MAX_TOKEN_LEN:
                raise self.error(f"token longer than {MAX_TOKEN_LEN} characters")
            if not val:
                line = self.line
            val.append(ch)

        def invalid(ch: str) -> ConfigError:
            return self.error(f"invalid character {ch!r} (quote the value)")

        c = self._read()
        while c is not None:
            if state == "S":
                if c in _WS:
                    pass
                elif c in _ALPHA or (extended and (c == "\\" or c in _DELIM)):
                    push(c)
                    state = "A"
                elif c == '"':
                    line = self.line
                    state = "Q"
                elif c == "#":
                    state = "C"
                elif c == "\\":
                    state = "E"
                elif c == "\n" or c in _DELIM:
                    return _Token(c, c, self.line - (c == "\n"))
                else:
                    raise invalid(c)
            elif state == "A":
                if c in _ALPHA or (extended and (c in _DELIM or c == '"')):
                    push(c)
                elif c == "\\":
                    state = "AE"
                elif c in "#\n" or c in _WS or (not extended and (c in _DELIM or c == '"')):
                    self.look_ahead = c
                    return _Token(ALPHA, "".join(val), line)
                else:
                    raise invalid(c)
            elif state in ("AE", "QE"):
                if c in '#"\\' and (state == "AE" or c != "#"):
                    push(c)
                elif c in _ESCAPES:
                    push(_ESCAPES[c])
                elif c == " " and state == "AE":
                    push(" ")
                elif c != "\n":  # an escaped line break is a continuation
                    raise self.error(f"unsupported escape character {c!r}")
                state = "A" if state == "AE" else "Q"
            elif state == "Q":
                if c == '"':
                    return _Token(STRING, "".join(val), line)
                if c == "\\":
                    state = "QE"
                else:
                    push(c)
            elif state == "C":
                if c == "\\":
                    state = "CE"
                elif c == "\n":
                    state = "S"
                    continue  # the line break ends the comment and is itself a token
            elif state == "CE":
                state = "C"
            elif state == "E":
                if c in '#"\\' or c in _ESCAPES or c == " ":
                    ch = _ESCAPES.get(c, c)
                    return _Token(ch, ch, self.line)
                if c != "\n":
                    raise self.error(f"unsupported escape character {c!r}")
                state = "S"
            c = self._read()
        if state == "A":
            return _Token(ALPHA, "".join(val), line)
        if state == "Q":
            raise self.error("end of file inside a quoted string (missing closing quote)", line)
        if state in ("AE", "QE", "E"):
            raise self.error("end of file after a backslash")
        return None


def _str2sint(text: str) -> int:
    body = text[1:] if text[:1] in "+-" else text
    if not (body == "" or (body.isascii() and body.isdigit())):
        raise ValueError("not an integer")
    value = -int(body or "0") if text[:1] == "-" else int(body or "0")
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError("integer out of range")
    if value < 0:
        raise ValueError("negative numbers are refused (Kamailio would wrap them)")
    return value


def _bool(text: str) -> int:
    try:
        return _BOOLS[text.lower()]
    except KeyError:
        raise ValueError(
            "boolean expected (yes/no, true/false, on/off, enable/disable, 1/0)"
        ) from None


def _tls(text: str) -> int:
    try:
        return _TLS_NAMES[text.lower()]
    except KeyError:
        raise ValueError(
            "tlsversion must be one of DEFAULT, TLSv1, SSLv2, SSLv3, TLSv1.0, TLSv1.1, TLSv1.2"
        ) from None


# key (lower case) -> (raw field, parse mode, converter); mode "int" reads a plain token.
_KEYS: dict[str, tuple[str, str, Callable[[str], object]]] = {
    "url": ("url", "str", str),
    "username": ("username", "str", str),
    "password": ("password", "str", str),
    "failover": ("failover", "str", str),
    "useragent": ("useragent", "str", str),
    "verify_peer": ("verify_peer", "ext", _bool),
    "verify_host": ("verify_host", "ext", _bool),
    "client_cert": ("client_cert", "str", str),
    "client_key": ("client_key", "str", str),
    "cipher_suites": ("cipher_suites", "str", str),
    "tlsversion": ("tlsversion", "ext", _tls),
    "timeout": ("timeout", "int", _str2sint),
    "maxdatasize": ("maxdatasize", "int", _str2sint),
    "httpredirect": ("httpredirect", "ext", _bool),
    "http_follow_redirect": ("httpredirect", "ext", _bool),
    "httpproxy": ("http_proxy", "str", str),
    "httpproxyport": ("http_proxy_port", "int", _str2sint),
    "authmethod": ("authmethod", "int", _str2sint),
    "keepconnections": ("keep_connections", "int", _str2sint),
    "keep_connections": ("keep_connections", "int", _str2sint),
}


def _option(lex: _Lexer, key: _Token, values: dict[str, object]) -> None:
    """cfg_parse_*_opt: '=' then one value token then the end of the line."""
    name = key.value.lower()
    field_name, mode, convert = _KEYS[name]
    eq = lex.token(False)
    if eq is None or eq.type != "=":
        raise lex.error("'=' expected", key.line, option=key.value)
    tok = lex.token(mode != "int")
    if tok is not None:  # at the end of the file Kamailio only logs "value missing"
        if tok.type == "\n":
            raise lex.error("option value missing", key.line, option=key.value)
        if tok.type not in (ALPHA, STRING):
            raise lex.error("invalid value", tok.line, option=key.value, value=tok.value)
        if tok.type == STRING and tok.value == "" and mode == "str":
            values[field_name] = None  # SPEC: "" is null
        else:
            try:
                values[field_name] = convert(tok.value)
            except ValueError as exc:
                shown = "********" if name == "password" else tok.value
                raise lex.error(str(exc), tok.line, option=key.value, value=shown) from None
    end = lex.token(False)
    if end is not None and end.type != "\n":
        raise lex.error("end of line expected", end.line, option=key.value, value=end.value)


def _section(lex: _Lexer, opening: _Token) -> str:
    """curl_parse_conn: `[` NAME `]` then the end of the line."""
    name = lex.token(False)
    if name is None or name.type != ALPHA:
        raise lex.error("invalid or missing connection name", opening.line)
    close = lex.token(False)
    if close is None or close.type != "]":
        raise lex.error("']' expected", opening.line, value=name.value)
    end = lex.token(False)
    if end is not None and end.type != "\n":
        raise lex.error("end of line expected after the section header", end.line)
    return name.value


def parse_connections_file(
    text: str, *, filename: str, defaults: HttpClientSettings
) -> tuple[Connection, ...]:
    """Connections in file order, with the final http_client values as section defaults."""
    lex = _Lexer(text, filename)
    sections: list[tuple[str, int, dict[str, object]]] = []
    while (tok := lex.token(False)) is not None:
        if tok.type == "\n":
            continue
        if tok.type == "[":
            name = _section(lex, tok)
            if any(name == seen for seen, _, _ in sections):
                raise lex.error(f"duplicate connection name [{name}]", tok.line)
            sections.append((name, tok.line, {}))
        elif tok.type == ALPHA:
            if not sections:
                raise lex.error("option before the first [section]", tok.line, option=tok.value)
            if tok.value.lower() not in _KEYS:
                raise lex.error("unsupported option", tok.line, option=tok.value)
            _option(lex, tok, sections[-1][2])
        else:
            raise lex.error("syntax error", tok.line, value=tok.value)
    return tuple(
        _connection(name, line, values, filename, defaults) for name, line, values in sections
    )


def _connection(
    name: str,
    line: int,
    values: dict[str, object],
    filename: str,
    defaults: HttpClientSettings,
) -> Connection:
    """fixup_raw_http_client_conn_list for one section."""
    url = values.pop("url", None)
    if not isinstance(url, str):
        raise ConfigError(f"connection [{name}] has no url", file=filename, line=line)
    schema, colon, rest = url.partition(":")
    if not colon or not rest.startswith("//") or len(rest) < 3:
        raise ConfigError(
            f"connection [{name}]: url is not schema://...", file=filename, line=line, option="url", value=url
        )  # fmt: skip
    # The proxy: the default one only when the default port is > 0; used only with a port > 0.
    port = values.pop(
        "http_proxy_port", defaults.httpproxyport if defaults.httpproxyport > 0 else 0
    )
    proxy = values.pop("http_proxy", defaults.httpproxy if defaults.httpproxyport > 0 else None)
    if not isinstance(port, int):
        port = 0
    if values.get("useragent", "") is None:
        values["useragent"] = ""  # a null useragent: no User-Agent header
    fields: dict[str, Any] = {
        "name": name, "schema": schema, "url": rest[2:],
        "authmethod": defaults.authmethod, "keep_connections": defaults.keep_connections,
        "useragent": defaults.useragent, "client_cert": defaults.client_cert,
        "client_key": defaults.client_key, "cipher_suites": defaults.cipher_suites,
        "tlsversion": defaults.tlsversion, "verify_peer": defaults.verify_peer,
        "verify_host": defaults.verify_host, "timeout": defaults.connection_timeout,
        "maxdatasize": defaults.maxdatasize, "httpredirect": defaults.httpredirect,
        "http_proxy": proxy if port > 0 else None, "http_proxy_port": port,
        "source": "config_file", "origin": f"{filename}:{line}",
    }  # fmt: skip
    return Connection(**{**fields, **values})
