"""The `modparam("http_client"|"http_async_client", ...)` statements of a real kamailio.cfg.

Understood: `#` and `//` line comments, `/* */` block comments, statements spread over
several lines, double- and single-quoted strings with backslash escapes, integers,
`#!define`d names used as values (also `!!define`, `#!trydef`, `#!redefine`, `#!undef`),
`#!ifdef`/`#!ifndef` on names defined in the file itself, a module name given as a regular
expression (`"http_client|tm"`), and `include_file`/`import_file`.

What cannot be known without Kamailio's preprocessor and command line -- a name that is
never defined (it may come from `-A`), a modparam inside `#!ifdef` of such a name or inside
`#!ifexp`, a `#!subst` that may rewrite values, an expression -- is a *problem*: reported
with file, line and value, never guessed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from dispatcher.errors import ConfigError

MODULES = ("http_client", "http_async_client")
MAX_INCLUDE_DEPTH = 10
_DIRECTIVE = re.compile(r"^\s*(?:#!|!!)([a-z]+)\b[ \t]*(.*)$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:0x[0-9a-fA-F]+|[0-9]+)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class Modparam:
    module: str
    name: str
    value: str | int
    line: int
    file: str = ""


@dataclass
class KamailioModparams:
    """Modparams of our two modules in file order, and what could not be resolved."""

    entries: list[Modparam] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)

    def __iter__(self) -> Iterator[Modparam]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def raise_problems(self) -> None:
        """The first problem as the error; the rest are listed in its message."""
        if not self.problems:
            return
        first = self.problems[0]
        if len(self.problems) > 1:
            others = "; ".join(str(p) for p in self.problems[1:])
            raise ConfigError(
                f"{first.message} (and {len(self.problems) - 1} more: {others})",
                file=first.file, line=first.line, option=first.option, value=first.value,
            )  # fmt: skip
        raise first


@dataclass
class _Token:
    kind: str  # "str", "num", "name", or the punctuation character itself
    text: str
    line: int
    value: str | int = ""


class _Reader:
    """Comment-free tokens of one file, with preprocessor directives applied line by line."""

    def __init__(self, path: str, out: KamailioModparams, defines: dict[str, str | None],
                 depth: int = 0) -> None:  # fmt: skip
        self.path, self.out, self.defines, self.depth = path, out, defines, depth
        # Conditional stack: True/False when known, None when it depends on the command line.
        self.conds: list[bool | None] = []
        self.substs = False

    def problem(
        self, message: str, line: int, value: object = None, option: str | None = None
    ) -> None:
        self.out.problems.append(ConfigError(message, file=self.path, line=line, option=option, value=value))  # fmt: skip

    @property
    def active(self) -> bool | None:
        """False: skipped for sure; None: depends on defines only Kamailio knows."""
        if any(c is False for c in self.conds):
            return False
        return None if any(c is None for c in self.conds) else True

    def directive(self, name: str, rest: str, line: int) -> None:
        if name in ("ifdef", "ifndef"):
            word = rest.split()[0] if rest.split() else ""
            known = word in self.defines
            state: bool | None = known if name == "ifdef" else (not known)
            if not known:
                state = None  # it may be defined with -A on Kamailio's command line
            self.conds.append(state)
        elif name == "ifexp":
            self.conds.append(None)
        elif name == "else":
            if self.conds:
                last = self.conds[-1]
                self.conds[-1] = None if last is None else not last
        elif name == "endif":
            if self.conds:
                self.conds.pop()
        elif self.active is False:
            return
        elif name in ("define", "trydef", "redefine", "undef", "substdef", "substdefs"):
            if name.startswith("substdef"):
                self.substs = True
                self.problem(f"#!{name} may rewrite values: not supported", line, rest.strip())
                return
            m = _NAME.match(rest)
            if not m:
                self.problem(f"#!{name} without a name", line, rest.strip())
                return
            key, value = m[0], rest[m.end() :].strip() or None
            if self.active is None:
                self.defines[key] = None  # may or may not exist: its value is unknown
            elif name == "undef":
                self.defines.pop(key, None)
            elif name == "trydef" and key in self.defines:
                pass
            else:
                self.defines[key] = value
        elif name in ("subst", "substs"):
            self.substs = True
            self.problem(f"#!{name} may rewrite values: not supported", line, rest.strip())

    def tokens(self, text: str) -> Iterator[_Token]:
        i, n, line = 0, len(text), 1
        at_line_start = True
        while i < n:
            c = text[i]
            if c == "\n":
                line += 1
                i += 1
                at_line_start = True
                continue
            if c in " \t\r":
                i += 1
                continue
            if at_line_start and (text.startswith("#!", i) or text.startswith("!!", i)):
                end = text.find("\n", i)
                end = n if end < 0 else end
                m = _DIRECTIVE.match(text[i:end])
                if m:
                    self.directive(m[1], m[2], line)
                i = end
                continue
            at_line_start = False
            if c == "#" or text.startswith("//", i):
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            if text.startswith("/*", i):
                end = text.find("*/", i + 2)
                end = n if end < 0 else end + 2
                line += text.count("\n", i, end)
                i = end
                continue
            if c in "\"'":
                j, buf, start_line = i + 1, [], line
                while j < n and text[j] != c:
                    if text[j] == "\\" and j + 1 < n:
                        buf.append(_ESCAPES.get(text[j + 1], text[j + 1]))
                        line += text[j + 1] == "\n"
                        j += 2
                        continue
                    line += text[j] == "\n"
                    buf.append(text[j])
                    j += 1
                if j >= n:
                    self.problem("unterminated string", start_line, text[i : i + 40])
                    return
                yield _Token("str", text[i : j + 1], start_line, "".join(buf))
                i = j + 1
                continue
            m = _NAME.match(text, i)
            if m:
                yield _Token("name", m[0], line)
                i = m.end()
                continue
            m = _NUMBER.match(text, i)
            if m:
                yield _Token("num", m[0], line, int(m[0], 0))
                i = m.end()
                continue
            yield _Token(c, c, line)
            i += 1


def _module_matches(pattern: str, module: str) -> bool:
    """Kamailio matches a modparam's module name as a regular expression."""
    if pattern == module:
        return True
    if not re.search(r"[|.*+?\[\]()^$\\]", pattern):
        return False
    try:
        return re.fullmatch(pattern, module) is not None
    except re.error:
        return False


def _value(tokens: list[_Token], reader: _Reader) -> str | int | None:
    """One modparam argument: a literal, or a #!define'd name standing for one."""
    if len(tokens) == 1:
        tok = tokens[0]
        if tok.kind in ("str", "num"):
            return tok.value
        if tok.kind == "name":
            if tok.text in reader.defines and reader.defines[tok.text] is not None:
                inner = list(reader.tokens(str(reader.defines[tok.text])))
                if len(inner) == 1 and inner[0].kind in ("str", "num"):
                    return inner[0].value
                reader.problem("this #!define's value is not a single literal", tok.line, reader.defines[tok.text], tok.text)  # fmt: skip
                return None
            why = (
                "is defined only conditionally or without a value"
                if tok.text in reader.defines
                else "is not #!define'd in this file (it may come from Kamailio's command line)"
            )
            reader.problem(f"{tok.text} {why}", tok.line, tok.text)
            return None
    if len(tokens) == 2 and tokens[0].kind in "+-" and tokens[1].kind == "num":
        value = tokens[1].value
        assert isinstance(value, int)
        return -value if tokens[0].kind == "-" else value
    text = " ".join(t.text for t in tokens)
    reader.problem("not a literal: cannot resolve without Kamailio", tokens[0].line if tokens else 0, text)  # fmt: skip
    return None


def _read(path: str, out: KamailioModparams, defines: dict[str, str | None], depth: int) -> None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        out.problems.append(ConfigError(f"cannot read: {exc.strerror}", file=path))
        return
    reader = _Reader(path, out, defines, depth)
    toks: list[_Token] = []
    for tok in reader.tokens(text):
        if reader.active is False:
            continue
        toks.append(tok)
        toks = _statement(toks, reader)


def _statement(toks: list[_Token], reader: _Reader) -> list[_Token]:
    """Consume a complete `modparam(...)` or `include_file "..."` at the head of `toks`."""
    if not toks:
        return toks
    head = toks[0]
    if head.kind != "name" or head.text not in ("modparam", "include_file", "import_file"):
        return []
    if head.text != "modparam":
        if len(toks) < 2:
            return toks
        target = toks[1]
        if target.kind != "str":
            reader.problem(f"{head.text} needs a quoted file name", head.line, target.text)
            return []
        _include(str(target.value), head, reader)
        return []
    if len(toks) < 2:
        return toks
    if toks[1].kind != "(":
        return []
    level = 0
    for end, tok in enumerate(toks):
        level += (tok.kind == "(") - (tok.kind == ")")
        if level == 0 and end > 0:
            break
    else:
        return toks  # not closed yet
    _modparam(toks[2:end], head, reader)
    return []


def _include(name: str, head: _Token, reader: _Reader) -> None:
    path = name if os.path.isabs(name) else os.path.join(os.path.dirname(reader.path), name)
    if reader.active is None:
        reader.problem(f"{head.text} inside #!ifdef of a name only Kamailio knows", head.line, name)
        return
    if not os.path.exists(path):
        if head.text == "include_file":
            reader.problem("included file not found", head.line, name)
        return
    if reader.depth >= MAX_INCLUDE_DEPTH:
        reader.problem("includes nested too deep", head.line, name)
        return
    _read(path, reader.out, reader.defines, reader.depth + 1)


def _modparam(args: list[_Token], head: _Token, reader: _Reader) -> None:
    parts: list[list[_Token]] = [[]]
    level = 0
    for tok in args:
        if tok.kind == "," and level == 0:
            parts.append([])
            continue
        level += (tok.kind == "(") - (tok.kind == ")")
        parts[-1].append(tok)
    if len(parts) != 3 or not parts[0]:
        return  # not a modparam Kamailio would accept; not ours to judge unless it names our module
    module = _value(parts[0], _Quiet(reader))
    if not isinstance(module, str):
        return
    targets = [m for m in MODULES if _module_matches(module, m)]
    if not targets:
        return
    statement = " ".join(t.text for group in parts for t in group)
    if reader.active is None:
        reader.problem(
            "this modparam is inside #!ifdef/#!ifndef/#!ifexp on a name only Kamailio's command line can set",
            head.line, f"modparam({statement})",
        )  # fmt: skip
        return
    before = len(reader.out.problems)
    name = _value(parts[1], reader)
    value = _value(parts[2], reader)
    if len(reader.out.problems) > before or not isinstance(name, str) or value is None:
        return
    for module_name in targets:
        reader.out.entries.append(Modparam(module_name, name, value, head.line, reader.path))


class _Quiet(_Reader):
    """A reader whose problems are dropped: a modparam of another module is none of ours."""

    def __init__(self, reader: _Reader) -> None:
        super().__init__(reader.path, KamailioModparams(), reader.defines, reader.depth)


def read_modparams(path: str, *, strict: bool = True) -> KamailioModparams:
    """http_client and http_async_client modparams of a kamailio.cfg, in file order.

    strict: raise the first problem as a ConfigError (naming file, line and value); with
    strict=False the problems come back in `.problems` for the caller to report.
    """
    out = KamailioModparams()
    _read(path, out, {}, 0)
    if strict:
        out.raise_problems()
    return out
