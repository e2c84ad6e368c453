"""Kamailio's `s.*` string transformations, byte for byte where users see the output.

The character sets follow core/strutils.c: escape_param keeps RFC 3261's paramchar set
(alphanumerics, `-_.!~*'()` and `[]/:&+$`), escape_user the user set (`&=+$,;?/`), both
writing lower-case hex as Kamailio 5.6 was seen to do; escape_common backslash-escapes
quotes, backslash and NUL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable

from dispatcher.errors import PvError

Transformation = Callable[[str], str | None]

_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()")
PARAM_SAFE = _UNRESERVED | frozenset("[]/:&+$")
USER_SAFE = _UNRESERVED | frozenset("&=+$,;?/")


def _escape(value: str, safe: frozenset[str]) -> str:
    out = []
    for byte in value.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        out.append(ch if ch in safe else f"%{byte:02x}")
    return "".join(out)


def _unescape(value: str) -> str:
    data = value.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x25 and i + 2 < len(data):
            try:
                out.append(int(data[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(data[i])
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _escape_common(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"').replace("\0", "\\0")


def _unescape_common(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"0": "\0"}.get(nxt, nxt))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _b64encode(value: str) -> str:
    return base64.b64encode(value.encode("utf-8", "surrogateescape")).decode("ascii")


def _b64decode(value: str) -> str | None:
    try:
        return base64.b64decode(value.encode("ascii"), validate=False).decode(
            "utf-8", "surrogateescape"
        )
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _hex_decode(value: str) -> str | None:
    try:
        return bytes.fromhex(value).decode("utf-8", "surrogateescape")
    except ValueError:
        return None


def _int(value: str) -> str:
    digits = []
    for i, ch in enumerate(value):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits.append(ch)
        else:
            break
    try:
        return str(int("".join(digits)))
    except ValueError:
        return "0"


_SIMPLE: dict[str, Transformation] = {
    "s.escape.param": lambda v: _escape(v, PARAM_SAFE),
    "s.unescape.param": _unescape,
    "s.escape.user": lambda v: _escape(v, USER_SAFE),
    "s.unescape.user": _unescape,
    "s.escape.common": _escape_common,
    "s.unescape.common": _unescape_common,
    "s.encode.base64": _b64encode,
    "s.decode.base64": _b64decode,
    "s.encode.hexa": lambda v: v.encode("utf-8", "surrogateescape").hex(),
    "s.decode.hexa": _hex_decode,
    "s.tolower": lambda v: "".join(c.lower() if c.isascii() else c for c in v),
    "s.toupper": lambda v: "".join(c.upper() if c.isascii() else c for c in v),
    "s.len": lambda v: str(len(v.encode("utf-8", "surrogateescape"))),
    "s.md5": lambda v: hashlib.md5(v.encode("utf-8", "surrogateescape")).hexdigest(),
    "s.trim": lambda v: v.strip(" \t\r\n"),
    "s.rtrim": lambda v: v.rstrip(" \t\r\n"),
    "s.ltrim": lambda v: v.lstrip(" \t\r\n"),
    "s.int": _int,
}


def _int_arg(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PvError(f"transformation {name} needs an integer, got {text!r}") from None


def _substr(offset: int, length: int) -> Transformation:
    def apply(v: str) -> str:
        start = offset if offset >= 0 else max(len(v) + offset, 0)
        if start > len(v):
            return ""
        return v[start:] if length == 0 else v[start : start + length]

    return apply


def _select(index: int, sep: str) -> Transformation:
    def apply(v: str) -> str | None:
        fields = v.split(sep)
        try:
            return fields[index]
        except IndexError:
            return None

    return apply


def parse_transformation(spec: str) -> Transformation:
    """`s.escape.param`, `s.substr,1,3`, `s.select,0,;` ... -> a function."""
    name, _, args_text = spec.partition(",")
    name = name.strip()
    if name in _SIMPLE and not args_text:
        return _SIMPLE[name]
    args = args_text.split(",") if args_text else []
    if name == "s.substr" and len(args) == 2:
        return _substr(_int_arg(name, args[0]), _int_arg(name, args[1]))
    if name == "s.select" and len(args) >= 2:
        return _select(_int_arg(name, args[0]), ",".join(args[1:]) or ",")
    if name == "s.strip" and len(args) == 1:
        n = _int_arg(name, args[0])
        return lambda v: v[n:]
    if name == "s.striptail" and len(args) == 1:
        n = _int_arg(name, args[0])
        return lambda v: v[: len(v) - n] if n < len(v) else ""
    raise PvError(f"unknown or malformed transformation {{{spec}}}")
