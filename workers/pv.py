"""Kamailio pseudo-variables in request strings, expanded from the request's `pv` map.

The grammar is Kamailio's (src/core/pvapi.c: pv_parse_format, pv_locate_name,
pv_parse_spec2, tr_lookup; pv_trans.c: tr_parse_string): `$$`, `$name`, `$name(inner)` and
`$(name(inner)[index]{tr}{tr}...)`, where a name is letters, digits, `_`, `.` and `?`, an
inner part nests parentheses, and transformations may be separated by blanks. Whatever
Kamailio's parser rejects (a lone `$`, an unclosed bracket, an empty inner name, an unknown
transformation...) raises PvError; nothing else ever escapes.

Lookups use the canonical spelling without transformations: `$ru`, `$var(x)`, `$hdr(X-Foo)`,
`$avp(x)[1]` (an index 0 falls back to the name without it). A missing value prints as
Kamailio prints a null: `<null>`, except a never-set `$var` which is the integer 0; a
transformation of a null, or one that fails, prints nothing.

Templates are parsed once and cached: the hot path expands the same URL again and again.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from dispatcher.errors import PvError
from workers.transformations import (
    INT_SEP,
    NO_PARAMS,
    SHAPES,
    TWO_INTS,
    Param,
    Transformation,
    Value,
)

NULL_TEXT = "<null>"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.?")
_BLANKS = " \t\n"
# Classes whose Kamailio parse_name is mandatory: `$var` alone is a config error there.
_NEED_INNER = frozenset(("var", "avp", "hdr", "xavp", "sht", "shv"))
_MAX_NESTING = 32  # pseudo-variables inside transformation parameters inside ...
_LONG_LIMIT = (2**63 - 1) // 10 - 10  # _tr_parse_nparam's "number value is too large"


class Spec:
    """One parsed pseudo-variable: what to look up and what to do to it."""

    __slots__ = ("key", "klass", "fallback", "transforms", "text")

    def __init__(
        self,
        key: str,
        klass: str,
        fallback: str | None,
        transforms: tuple[Transformation, ...],
        text: str,
    ) -> None:
        self.key = key
        self.klass = klass
        self.fallback = fallback  # `$avp(x)` for `$(avp(x)[0])`
        self.transforms = transforms
        self.text = text

    def __repr__(self) -> str:
        return f"Spec({self.text!r})"


class _Parser:
    """A port of Kamailio's format parser over one template.

    Positions index `s`; like the C, which reads past a sub-string's length into the rest
    of the NUL-terminated template, `at()` reads any position and gives NUL past the end.
    """

    def __init__(self, s: str) -> None:
        self.s = s
        self.n = len(s)
        self.outer = (0, 0)  # the top-level variable being parsed, for error messages

    def at(self, i: int) -> str:
        return self.s[i] if i < self.n else "\0"

    def fail(self, where: int, why: str) -> PvError:
        """An error naming the variable as written, its position, and what is wrong where."""
        start, end = self.outer
        expr = self.s[start:end] if end > start else self.s[start : start + 40]
        if len(expr) > 80:
            expr = expr[:77] + "..."
        if where != start:
            why += f" (at position {where})"
        return PvError(f"bad pseudo-variable {expr!r} at position {start}: {why}")

    # -- pv_parse_format --

    def parse_format(self) -> tuple[str | Spec, ...]:
        parts: list[str | Spec] = []
        s, n, p = self.s, self.n, 0
        while p < n:
            marker = s.find("$", p)
            if marker < 0:
                marker = n
            if marker > p:
                parts.append(s[p:marker])
            p = marker
            if p >= n:
                break
            self.outer = (p, p)
            length = self.locate_name(p)
            self.outer = (p, p + length)
            spec, _ = self.parse_spec(p, p + length, 0)
            parts.append(spec)
            p += length
            if self.at(p) == "\0":  # Kamailio stops at a NUL right after a variable
                break
        return _merge_text(parts)

    def locate_name(self, start: int) -> int:
        """pv_locate_name: the length of the variable starting at `start`."""
        s, size = self.s, self.n - start
        if size < 2:
            raise self.fail(start, "a name must follow '$'")
        if s[start + 1] == "$":
            return 2
        if s[start + 1] == "(":
            depth = 1
            for i in range(2, size):
                depth += {"(": 1, ")": -1}.get(s[start + i], 0)
                if depth == 0:
                    return i + 1
            raise self.fail(start, "unclosed '('")
        i = 1
        while i < size and s[start + i] in _NAME_CHARS:
            i += 1
        if i == size or s[start + i] != "(":
            return i
        depth = 1
        for j in range(i + 1, size):
            depth += {"(": 1, ")": -1}.get(s[start + j], 0)
            if depth == 0:
                return j + 1
        raise self.fail(start, "unclosed '(' of the inner name")

    # -- pv_parse_spec2 --

    def parse_spec(self, start: int, end: int, depth: int) -> tuple[Spec, int]:
        """Parse the variable at s[start] within s[start:end]; returns it and where it ended."""
        if depth > _MAX_NESTING:
            raise self.fail(start, "nested too deeply")
        at = self.at
        p = start + 1
        state = 0
        if at(p) == "(":
            p += 1
            state = 1
        name_start = p
        if at(p) == "$":  # $$ or $($): the marker itself
            p += 1
            if state == 1:
                if at(p) != ")":
                    raise self.fail(start, "expected ')' after '$($'")
                p += 1
            return Spec("$", "$", None, (), "$$"), p
        while p < end and at(p) in _NAME_CHARS:
            p += 1
        name = self.s[name_start:p]
        if state == 1:
            c = at(p)
            if c == "(":
                p, state = p + 1, 2
            elif c == "[":
                p, state = p + 1, 3
            elif c == "{":
                p, state = p + 1, 4
            elif c != ")":
                raise self.fail(start, f"unexpected {c!r} after the name")
        elif p < end and at(p) == "(":
            p, state = p + 1, 5
        else:
            p -= 1  # the C steps back here and forward again at the end
        if not name:
            raise self.fail(start, "no name after '$'")
        if name in _NEED_INNER and state not in (2, 5):
            raise self.fail(start, f"${name} needs an inner name, as in ${name}(x)")

        inner = index = None
        if state in (2, 5):
            q = p
            p = self._close(p, end, "(", ")")
            if p < 0:
                raise self.fail(start, "unclosed '(' of the inner name")
            if p == q:
                raise self.fail(start, "empty inner name")
            inner = self.s[q:p]
            if state == 5:
                return self._spec(name, inner, None, (), start, p + 1), p + 1
            p += 1
            c = at(p)
            if c == "[":
                p, state = p + 1, 3
            elif c == "{":
                p, state = p + 1, 4
            elif c != ")":
                raise self.fail(start, f"unexpected {c!r} after the inner name")
        if state == 3:
            q = p
            p = self._close(p, end, "[", "]")
            if p < 0:
                raise self.fail(start, "unclosed '['")
            if p == q:
                raise self.fail(start, "empty index")
            index = self.s[q:p]
            self._check_index(q, p, depth)
            p += 1
            c = at(p)
            if c == "{":
                p, state = p + 1, 4
            elif c != ")":
                raise self.fail(start, f"unexpected {c!r} after the index")
        transforms: tuple[Transformation, ...] = ()
        if state == 4:
            tr_start = p - 1
            tr_depth = 0
            while p < end:
                if at(p) == "}":
                    if tr_depth == 0:
                        p += 1
                        while p < end and at(p) in " \t":
                            p += 1
                        if not p < end or at(p) != "{":
                            p -= 1
                            break
                    tr_depth -= 1
                if at(p) == "{":
                    tr_depth += 1
                p += 1
            if not p < end:
                raise self.fail(start, "unclosed '{' of a transformation")
            transforms, p = self.tr_lookup(tr_start, p + 1, depth)
            if at(p) != ")":
                raise self.fail(start, f"unexpected {at(p)!r} after the transformations")
        return self._spec(name, inner, index, transforms, start, p + 1), p + 1

    def _close(self, p: int, end: int, open_ch: str, close_ch: str) -> int:
        """Index of the bracket closing at nesting level 0 before `end`, or -1."""
        depth = 0
        while p < end:
            c = self.s[p]
            if c == close_ch:
                if depth == 0:
                    return p
                depth -= 1
            elif c == open_ch:
                depth += 1
            p += 1
        return -1

    def _check_index(self, q: int, end: int, depth: int) -> None:
        """pv_parse_index: `*`, `+`, a signed integer or a pseudo-variable."""
        text = self.s[q:end]
        if text[0] == "$":
            self.parse_spec(q, end, depth + 1)
        elif text not in ("*", "+") and any(c not in "0123456789" for c in text.removeprefix("-")):
            raise self.fail(q, f"bad index [{text}]")

    def _spec(
        self,
        name: str,
        inner: str | None,
        index: str | None,
        transforms: tuple[Transformation, ...],
        start: int,
        stop: int,
    ) -> Spec:
        key = f"${name}" if inner is None else f"${name}({inner})"
        fallback = None
        if index is not None:
            fallback = key if index.lstrip("-") in ("0", "") else None
            key = f"{key}[{index}]"
        return Spec(key, name, fallback, transforms, self.s[start:stop])

    # -- tr_lookup / tr_parse_string --

    def tr_lookup(self, start: int, end: int, depth: int) -> tuple[tuple[Transformation, ...], int]:
        at = self.at
        found: list[Transformation] = []
        p = start
        while True:
            while p < end and at(p) in _BLANKS:
                p += 1
            if at(p) != "{":
                break
            open_at = p
            p += 1
            class_start = p
            while p < end and at(p) != ".":
                p += 1
            if at(p) != "." or p == class_start:
                raise self.fail(open_at, "a transformation is written {class.name}")
            tr_class = self.s[class_start:p]
            if tr_class != "s":
                raise self.fail(open_at, f"unsupported transformation class {tr_class!r}")
            tr, p = self.tr_parse_string(open_at, p + 1, end, depth)
            found.append(tr)
            if at(p) != "}":
                raise self.fail(open_at, f"unexpected {at(p)!r} in the transformation")
            p += 1
            if not p < end:
                break
        return tuple(found), p

    def tr_parse_string(
        self, open_at: int, p: int, end: int, depth: int
    ) -> tuple[Transformation, int]:
        at = self.at
        name_start = p
        while p < end and at(p) not in ",}":
            p += 1
        name = self.s[name_start:p].strip(" \t\r\n")
        shape = SHAPES.get(name.lower()) if name.isascii() else None
        name = name.lower()
        if shape is None:
            raise self.fail(open_at, f"unknown transformation s.{name}")
        params: list[Param] = []
        if shape != NO_PARAMS:
            if at(p) != ",":
                raise self.fail(open_at, f"s.{name} needs parameters")
            param, p = self._nparam(open_at, p + 1, end, depth)
            params.append(param)
            p = self._skip_blanks(p)
            if shape == TWO_INTS:
                if at(p) != ",":
                    raise self.fail(open_at, "s.substr needs an offset and a length")
                param, p = self._nparam(open_at, p + 1, end, depth)
                if isinstance(param, int) and param < 0:
                    raise self.fail(open_at, "s.substr with a negative length")
                params.append(param)
                p = self._skip_blanks(p)
            elif shape == INT_SEP:
                if at(p) != "," or at(p + 1) == "\0":
                    raise self.fail(open_at, "s.select needs an index and a separator")
                p += 1
                sep = at(p)
                if not sep.isascii():  # Kamailio takes one byte, then finds no '}'
                    raise self.fail(open_at, "s.select needs a one-byte separator")
                if sep == "\\":
                    p += 1
                    if at(p) not in "\\nrt" or at(p) == "\0":
                        raise self.fail(open_at, f"unexpected escape '\\{at(p)}' in s.select")
                    sep += at(p)
                params.append(sep.encode("utf-8", "surrogateescape")[:2])
                p = self._skip_blanks(p + 1)
            if at(p) != "}":
                raise self.fail(open_at, f"unexpected {at(p)!r} in s.{name}")
        return Transformation(name, tuple(params)), p

    def _skip_blanks(self, p: int) -> int:
        while self.at(p) in _BLANKS and self.at(p) != "\0":
            p += 1
        return p

    def _nparam(self, open_at: int, p: int, end: int, depth: int) -> tuple[Param, int]:
        """_tr_parse_nparam: a pseudo-variable or a signed integer (digits may be absent)."""
        at = self.at
        while p < end and at(p) in _BLANKS:
            p += 1
        c = at(p)
        if c == "$":
            return self.parse_spec(p, end, depth + 1)
        if c not in "+-0123456789" or c == "\0":
            raise self.fail(open_at, f"bad parameter {c!r}: a number or a pseudo-variable")
        sign = -1 if c == "-" else 1
        if c in "+-":
            p += 1
        while p < end and at(p) in _BLANKS:
            p += 1
        number = 0
        while p < end and "0" <= at(p) <= "9":
            if number > _LONG_LIMIT:
                raise self.fail(open_at, "number too large")
            number = number * 10 + ord(at(p)) - 48
            p += 1
        return number * sign, p


def _merge_text(parts: list[str | Spec]) -> tuple[str | Spec, ...]:
    """`$$` is plain text once parsed; joining neighbours keeps the expand loop short."""
    merged: list[str | Spec] = []
    for part in parts:
        if isinstance(part, Spec) and part.klass == "$":
            part = "$"
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return tuple(merged)


class CompiledTemplate:
    """A parsed template; `expand` is the hot path."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str | Spec, ...]) -> None:
        self.parts = parts

    def expand(self, pv: Mapping[str, object], *, reject_crlf_in_values: bool = False) -> str:
        if not isinstance(pv, Mapping):
            raise PvError(f"pv must be a map of pseudo-variables, not {type(pv).__name__}")
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            text = _print(part, pv)
            if reject_crlf_in_values and ("\r" in text or "\n" in text):
                raise PvError(
                    f"{part.text} expands to a value holding CR/LF; "
                    "refused so that it cannot start a new header or request"
                )
            out.append(text)
        return "".join(out)


@lru_cache(maxsize=2048)
def compile_template(template: str) -> CompiledTemplate:
    """Parse once; raises PvError for what Kamailio's parser rejects."""
    if not isinstance(template, str):
        raise PvError(f"a template must be text, not {type(template).__name__}")
    return CompiledTemplate(_Parser(template).parse_format())


def expand(template: str, pv: Mapping[str, object], *, reject_crlf_in_values: bool = False) -> str:
    """Expand Kamailio pseudo-variables in `template` from the request's `pv` map.

    With reject_crlf_in_values, a CR or LF produced by a pseudo-variable (not the
    template's own text) raises PvError naming the variable (SPEC §5).
    """
    if isinstance(template, str) and "$" not in template:
        return template
    try:
        compiled = compile_template(template)
    except TypeError:  # unhashable: not a str
        raise PvError(f"a template must be text, not {type(template).__name__}") from None
    return compiled.expand(pv, reject_crlf_in_values=reject_crlf_in_values)


# -- values --


def _raw(spec: Spec, pv: Mapping[str, object]) -> Value | None:
    """The value as Kamailio would hold it: bytes, int, or None for a null."""
    raw: Any = pv.get(spec.key)
    if raw is None and spec.fallback is not None:
        raw = pv.get(spec.fallback)
    if raw is None:
        return 0 if spec.klass == "var" else None
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    if isinstance(raw, bytes | int):  # bool is an int: Kamailio has no booleans
        return int(raw) if isinstance(raw, bool) else raw
    raise PvError(f"the value of {spec.key} is a {type(raw).__name__}; use text, bytes or an int")


def _evaluate(spec: Spec, pv: Mapping[str, object]) -> Value | None:
    value = _raw(spec, pv)
    for tr in spec.transforms:
        if value is None:
            return None
        value = tr(value, lambda param: _evaluate(param, pv) if isinstance(param, Spec) else None)
    return value


def _print(spec: Spec, pv: Mapping[str, object]) -> str:
    if not spec.transforms:  # fast path: most variables are plain text
        raw = pv.get(spec.key)
        if isinstance(raw, str):
            return raw
    value = _evaluate(spec, pv)
    if value is None:
        return "" if spec.transforms else NULL_TEXT
    if isinstance(value, int):
        return str(value)
    return value.decode("utf-8", "surrogateescape")
