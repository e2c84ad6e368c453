"""Kamailio's `{s.*}` string transformations, byte for byte.

Semantics follow `tr_eval_string` in src/modules/pv/pv_trans.c and the helpers it calls in
src/core/strutils.c and src/core/basex.h, checked against Kamailio 5.6.3. A value is what
Kamailio holds: `bytes` (a string) or `int`. A transformation returns the new value, or
None where Kamailio's C returns -1: the whole pseudo-variable then prints nothing.

The syntax (`{s.substr,1,$var(n)}`) is parsed in workers.pv, which hands each transformation
its parsed parameters: an int, a one- or two-character separator, or an opaque parsed
pseudo-variable that `resolve` turns into a value when the transformation runs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Final

Value = bytes | int
Resolve = Callable[[object], Value | None]
Param = int | bytes | object  # int literal, select separator, or a parsed pseudo-variable

# Parameter shapes, as tr_parse_string reads them.
NO_PARAMS: Final = "none"
ONE_INT: Final = "int"  # strip, striptail
TWO_INTS: Final = "int,int"  # substr (a negative literal length is a parse error)
INT_SEP: Final = "int,sep"  # select

_DIGITS = frozenset(b"0123456789")
_ALPHANUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MARK = frozenset(b"-_.!~*'()")
# escape_user (strutils.c): unreserved | user-unreserved; note '/' and ':' are escaped.
USER_SAFE: Final = _ALPHANUM | _MARK | frozenset(b"&=+$,;?")
# escape_param (strutils.c): unreserved | param-unreserved; Kamailio 5.6.3 keeps '&' and '/'.
PARAM_SAFE: Final = _ALPHANUM | _MARK | frozenset(b"[]/:&+$")
_USER_SAFE_BYTES: Final = bytes(sorted(USER_SAFE))
_PARAM_SAFE_BYTES: Final = bytes(sorted(PARAM_SAFE))
# trim() in core/trim.h
_TRIM: Final = b" \t\r\n"
# select's escaped separators (tr_eval_string, TR_S_SELECT)
_SEP_ESCAPES: Final = {ord("\\"): ord("\\"), ord("n"): 10, ord("r"): 13, ord("t"): 9}
_HEX_VALUE: Final = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def _as_bytes(value: Value) -> bytes:
    """int2str() where a transformation needs the string form of an integer."""
    return str(value).encode() if isinstance(value, int) else value


def _clone(data: bytes) -> bytes:
    """tr_string_clone_result copies with strncpy: everything after a NUL becomes NUL."""
    cut = data.find(0)
    return data if cut < 0 else data[:cut] + bytes(len(data) - cut)


def _escape(data: bytes, safe: frozenset[int], safe_bytes: bytes) -> bytes | None:
    """escape_user / escape_param: lower-case %hh; a byte outside 32..126 is an error."""
    if not data.translate(None, safe_bytes):  # nothing to escape: the common case
        return data
    out = bytearray()
    for byte in data:
        if byte < 32 or byte > 126:
            return None
        if byte in safe:
            out.append(byte)
        else:
            out += b"%%%02x" % byte
    return bytes(out)


def _unescape(data: bytes) -> bytes | None:
    """unescape_user (unescape_param is the same function): %hh must be printable ASCII."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte != 0x25:  # '%'
            out.append(byte)
            i += 1
            continue
        hi = _HEX_VALUE.get(data[i + 1]) if i + 1 < n else None
        lo = _HEX_VALUE.get(data[i + 2]) if i + 2 < n else None
        if hi is None or lo is None:
            return None
        char = hi * 16 + lo
        if char < 32 or char > 126:
            return None
        out.append(char)
        i += 3
    return bytes(out)


def _escape_common(data: bytes) -> bytes:
    """escape_common: backslash before ' " and \\, NUL written as \\0."""
    return (
        data.replace(b"\\", b"\\\\")
        .replace(b"'", b"\\'")
        .replace(b'"', b'\\"')
        .replace(b"\0", b"\\0")
    )


def _unescape_common(data: bytes) -> bytes:
    """unescape_common: only \\' \\" \\\\ and \\0 lose their backslash; others keep it."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte == 0x5C and i + 1 < n:
            nxt = data[i + 1]
            if nxt in b"'\"\\":
                out.append(nxt)
                i += 2
                continue
            if nxt == 0x30:  # '0'
                out.append(0)
                i += 2
                continue
        out.append(byte)
        i += 1
    return bytes(out)


def _b64_digit(c: int) -> int:
    """base64_dec_char (basex.h): 0xff for anything outside the alphabet, which then
    corrupts the output rather than failing, exactly as Kamailio's lookup table does."""
    if c == 0x2F:
        return 0x3F
    if c == 0x2B:
        return 0x3E
    if 0x30 <= c <= 0x39:
        return c - 0x30 + 0x34
    if 0x41 <= c <= 0x5A:
        return c - 0x41
    if 0x61 <= c <= 0x7A:
        return c - 0x61 + 0x1A
    return 0xFF


_UNBASE64: Final = bytes(_b64_digit(c) for c in range(256))


def _b64decode(data: bytes) -> bytes | None:
    """base64_dec (basex.h): length must be a multiple of 4, no validation of the alphabet."""
    n = len(data)
    if n == 0:
        return b""
    if n < 4 or n % 4 or (data[-2] == 0x3D and data[-1] != 0x3D):
        return None
    size = n // 4 * 3 - (data[-2] == 0x3D) - (data[-1] == 0x3D)
    out = bytearray()
    for i in range(0, n, 4):
        a, b, c, d = (_UNBASE64[x] for x in data[i : i + 4])
        out += bytes(((a << 2 | b >> 4) & 0xFF, (b << 4 | c >> 2) & 0xFF, (c << 6 | d) & 0xFF))
    del out[size:]
    return bytes(out) if size > 0 else None


def _hex_decode(data: bytes) -> bytes | None:
    """TR_S_DECODEHEXA: pairs of hex digits, a trailing odd digit ignored."""
    even = data[: len(data) // 2 * 2]
    if any(c not in _HEX_VALUE for c in even):
        return None
    return bytes.fromhex(even.decode("ascii"))


def _s_int(value: Value) -> Value | None:
    """TR_S_INT: a string must be [+-]digits within a C int; its text is kept as written."""
    if isinstance(value, int):
        return value
    if not value:
        return None
    digits = value[1:] if value[:1] in (b"+", b"-") else value
    if any(c not in _DIGITS for c in digits):
        return None
    number = int(digits or b"0") * (-1 if value[:1] == b"-" else 1)
    return value if _INT_MIN <= number <= _INT_MAX else None


def _substr(value: bytes, start: int, length: int) -> bytes | None:
    """TR_S_SUBSTR: length 0, or one running past the end, means "to the end"."""
    size = len(value)
    if length < 0:
        return None
    if start >= 0:
        if start >= size:
            return None
        if start + length >= size:
            length = 0
        return _clone(value[start:] if length == 0 else value[start : start + length])
    back = -start
    if back > size:
        return None
    if back < length:
        length = 0
    tail = value[size - back :]
    return _clone(tail if length == 0 else tail[:length])


def _select(value: bytes, index: int, sep: int) -> bytes:
    """TR_S_SELECT: field `index` (negative counts from the end); out of range is ""."""
    fields = value.split(bytes((sep,)))
    if index < 0:
        index += len(fields)
        if index < 0:
            return b""
    return _clone(fields[index]) if index < len(fields) else b""


class Transformation:
    """One parsed `{s.name,params}`; calling it applies it to a value."""

    __slots__ = ("name", "params", "_apply")

    def __init__(self, name: str, params: tuple[Param, ...]) -> None:
        self.name = name
        self.params = params
        self._apply = _BUILDERS[name](params)

    def __call__(self, value: Value, resolve: Resolve) -> Value | None:
        return self._apply(value, resolve)

    def __repr__(self) -> str:
        return f"Transformation({self.name!r}, {self.params!r})"


Apply = Callable[[Value, Resolve], Value | None]


def _int_param(param: Param, resolve: Resolve) -> int | None:
    """A numeric parameter: a literal, or a pseudo-variable whose value is an integer."""
    if isinstance(param, int):
        return param
    value = resolve(param)
    return value if isinstance(value, int) else None


def _simple(fn: Callable[[bytes], Value | None]) -> Callable[[tuple[Param, ...]], Apply]:
    return lambda _params: lambda value, _resolve: fn(_as_bytes(value))


def _strip_builder(tail: bool) -> Callable[[tuple[Param, ...]], Apply]:
    def build(params: tuple[Param, ...]) -> Apply:
        def apply(value: Value, resolve: Resolve) -> Value | None:
            count = _int_param(params[0], resolve)
            if count is None:
                return None
            data = _as_bytes(value)
            if count <= 0:
                return data
            if count >= len(data):
                return b""
            return _clone(data[: len(data) - count] if tail else data[count:])

        return apply

    return build


def _substr_builder(params: tuple[Param, ...]) -> Apply:
    def apply(value: Value, resolve: Resolve) -> Value | None:
        start = _int_param(params[0], resolve)
        length = _int_param(params[1], resolve)
        if start is None or length is None:
            return None
        return _substr(_as_bytes(value), start, length)

    return apply


def _select_builder(params: tuple[Param, ...]) -> Apply:
    sep_text = params[1]
    assert isinstance(sep_text, bytes)
    sep = _SEP_ESCAPES[sep_text[1]] if len(sep_text) > 1 else sep_text[0]

    def apply(value: Value, resolve: Resolve) -> Value | None:
        index = _int_param(params[0], resolve)
        if index is None:
            return None
        return _select(_as_bytes(value), index, sep)

    return apply


def _hexdigest(algorithm: str) -> Callable[[bytes], bytes]:
    return lambda data: hashlib.new(algorithm, data).hexdigest().encode("ascii")


_BUILDERS: Final[dict[str, Callable[[tuple[Param, ...]], Apply]]] = {
    "len": _simple(len),
    "int": lambda _params: lambda value, _resolve: _s_int(value),
    "md5": _simple(_hexdigest("md5")),
    "sha256": _simple(_hexdigest("sha256")),
    "sha384": _simple(_hexdigest("sha384")),
    "sha512": _simple(_hexdigest("sha512")),
    "tolower": _simple(bytes.lower),  # bytes.lower is ASCII-only, as Kamailio's loop
    "toupper": _simple(bytes.upper),
    "encode.hexa": _simple(lambda data: data.hex().encode("ascii")),
    "decode.hexa": _simple(_hex_decode),
    "encode.base64": _simple(base64.b64encode),
    "decode.base64": _simple(_b64decode),
    "escape.common": _simple(_escape_common),
    "unescape.common": _simple(_unescape_common),
    "escape.user": _simple(lambda data: _escape(data, USER_SAFE, _USER_SAFE_BYTES)),
    "unescape.user": _simple(_unescape),
    "escape.param": _simple(lambda data: _escape(data, PARAM_SAFE, _PARAM_SAFE_BYTES)),
    "unescape.param": _simple(_unescape),
    "trim": _simple(lambda data: data.strip(_TRIM)),
    "rtrim": _simple(lambda data: data.rstrip(_TRIM)),
    "ltrim": _simple(lambda data: data.lstrip(_TRIM)),
    "strip": _strip_builder(tail=False),
    "striptail": _strip_builder(tail=True),
    "substr": _substr_builder,
    "select": _select_builder,
}

SHAPES: Final[dict[str, str]] = {name: NO_PARAMS for name in _BUILDERS} | {
    "strip": ONE_INT,
    "striptail": ONE_INT,
    "substr": TWO_INTS,
    "select": INT_SEP,
}
