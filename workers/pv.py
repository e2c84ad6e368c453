"""Kamailio pseudo-variables in request strings, expanded from the request's `pv` map.

Forms: `$name`, `$name(inner)`, `$(name{tr}...)` and `$(name(inner){tr}...)`; the map is
keyed by the canonical spelling without transformations (`"$ru"`, `"$var(x)"`). A missing
variable prints as Kamailio prints a null: `<null>`, except `0` for a never-set `$var`, and
nothing once a transformation has been applied to it. Templates are parsed once and cached:
the hot path expands the same URL again and again.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from dispatcher.errors import PvError
from workers.transformations import Transformation, parse_transformation

NULL_TEXT = "<null>"


class _Var:
    __slots__ = ("key", "klass", "transforms", "text")

    def __init__(
        self, key: str, klass: str, transforms: tuple[Transformation, ...], text: str
    ) -> None:
        self.key = key
        self.klass = klass
        self.transforms = transforms
        self.text = text


Part = str | _Var


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _match_paren(s: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index of the bracket closing the one at `start`, nesting counted."""
    depth = 0
    for i in range(start, len(s)):
        if s[i] == open_ch:
            depth += 1
        elif s[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
    raise PvError(f"unclosed {open_ch!r} at position {start} in {s!r}")


def _parse_name(s: str, i: int, end: int) -> tuple[str, str, int]:
    """Read `name` or `name(inner)` from s[i:end]; returns (key, class, next index)."""
    j = i
    while j < end and _is_name_char(s[j]):
        j += 1
    if j == i:
        raise PvError(f"a pseudo-variable name must follow '$' at position {i - 1} in {s!r}")
    klass = s[i:j]
    if j < end and s[j] == "(":
        close = _match_paren(s, j, "(", ")")
        if close >= end:
            raise PvError(f"unclosed '(' at position {j} in {s!r}")
        return f"${s[i : close + 1]}", klass, close + 1
    return f"${klass}", klass, j


@lru_cache(maxsize=4096)
def compile_template(template: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch != "$":
            literal.append(ch)
            i += 1
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        start = i
        if i + 1 < n and template[i + 1] == "(":
            close = _match_paren(template, i + 1, "(", ")")
            inner_start = i + 2
            key, klass, j = _parse_name(template, inner_start, close)
            transforms: list[Transformation] = []
            while j < close:
                if template[j] != "{":
                    raise PvError(
                        f"unexpected {template[j]!r} at position {j} in {template!r}: "
                        "expected a {transformation}"
                    )
                tr_close = _match_paren(template, j, "{", "}")
                transforms.append(parse_transformation(template[j + 1 : tr_close]))
                j = tr_close + 1
            parts.append(_Var(key, klass, tuple(transforms), template[start : close + 1]))
            i = close + 1
        else:
            key, klass, j = _parse_name(template, i + 1, n)
            parts.append(_Var(key, klass, (), template[start:j]))
            i = j
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _value(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "surrogateescape")
    if isinstance(raw, bool):
        return "1" if raw else "0"
    return str(raw)


def expand(template: str, pv: Mapping[str, Any], *, reject_crlf_in_values: bool = False) -> str:
    if "$" not in template:
        return template
    out: list[str] = []
    for part in compile_template(template):
        if isinstance(part, str):
            out.append(part)
            continue
        value = _value(pv.get(part.key))
        if value is not None and reject_crlf_in_values and ("\r" in value or "\n" in value):
            raise PvError(
                f"the value of {part.key} holds a CR/LF and may not go into a header or URL"
            )
        if part.transforms:
            for tr in part.transforms:
                value = None if value is None else tr(value)
            out.append("" if value is None else value)
        elif value is None:
            out.append("0" if part.klass == "var" else NULL_TEXT)
        else:
            out.append(value)
    return "".join(out)
