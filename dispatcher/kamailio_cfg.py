"""The `modparam("http_client"|"http_async_client", ...)` lines of a real kamailio.cfg.

Comments (`#`, `//`, `/* */`), statements spread over several lines and `#!define`d
names used as values are understood. What cannot be known without running Kamailio's
preprocessor (a name defined on its command line, a modparam inside `#!ifdef`, an
expression) is reported as an error naming file, line and value, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dispatcher.errors import ConfigError

MODULES = ("http_client", "http_async_client")
_DEFINE = re.compile(r"^\s*#!(define|trydef|redefine)\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+(.*))?$")
_COND = re.compile(r"^\s*#!(ifdef|ifndef|ifexp|else|endif)\b")


@dataclass(frozen=True)
class Modparam:
    module: str
    name: str
    value: str | int
    line: int


def _strip_comments(text: str) -> list[tuple[int, str]]:
    """Code text per line, comments removed, strings kept intact."""
    out: list[tuple[int, str]] = []
    in_block = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if not in_block and line.lstrip().startswith("#!"):
            out.append((lineno, line))
            continue
        buf: list[str] = []
        i, quote = 0, ""
        while i < len(line):
            ch = line[i]
            if in_block:
                if line.startswith("*/", i):
                    in_block = False
                    i += 2
                else:
                    i += 1
                continue
            if quote:
                buf.append(ch)
                if ch == "\\" and i + 1 < len(line):
                    buf.append(line[i + 1])
                    i += 2
                    continue
                if ch == quote:
                    quote = ""
                i += 1
                continue
            if ch in "\"'":
                quote = ch
            elif ch == "#" or line.startswith("//", i):
                break
            elif line.startswith("/*", i):
                in_block = True
                i += 2
                continue
            buf.append(ch)
            i += 1
        out.append((lineno, "".join(buf)))
    return out


def _literal(token: str, defines: dict[str, str | None], path: str, line: int) -> str | int:
    token = token.strip()
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        body = token[1:-1]
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m[1], m[1]), body)
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token) and defines.get(token) is not None:
        return _literal(str(defines[token]), {}, path, line)
    raise ConfigError(
        "cannot resolve this value without Kamailio's preprocessor",
        file=path,
        line=line,
        value=token,
    )


def _split_args(args: str) -> list[str]:
    parts, buf, quote = [], [], ""
    for ch in args:
        if quote:
            buf.append(ch)
            if ch == quote and (len(buf) < 2 or buf[-2] != "\\"):
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        if ch == "," and not quote:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return parts


def read_modparams(path: str) -> list[Modparam]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    defines: dict[str, str | None] = {}
    depth = 0
    statement, start_line = "", 0
    found: list[Modparam] = []
    for lineno, code in _strip_comments(text):
        if m := _DEFINE.match(code):
            if depth == 0:
                defines[m[2]] = (m[3] or "").strip() or None
            continue
        if m := _COND.match(code):
            depth += {"ifdef": 1, "ifndef": 1, "ifexp": 1, "endif": -1}.get(m[1], 0)
            continue
        if code.lstrip().startswith("#!"):
            continue
        if not statement and "modparam" not in code:
            continue
        if not statement:
            start_line = lineno
        statement += " " + code.strip()
        if ")" not in statement or statement.count("(") > statement.count(")"):
            continue
        m = re.search(r"modparam\s*\((.*)\)", statement, re.S)
        statement_text, statement = statement, ""
        if not m:
            continue
        args = _split_args(m[1])
        if len(args) != 3:
            continue
        module = _literal(args[0], defines, path, start_line)
        if module not in MODULES:
            continue
        if depth > 0:
            raise ConfigError(
                "this modparam is inside #!ifdef/#!ifndef: its value depends on defines only Kamailio knows",
                file=path, line=start_line, value=statement_text.strip(),
            )  # fmt: skip
        name = _literal(args[1], defines, path, start_line)
        value = _literal(args[2], defines, path, start_line)
        found.append(Modparam(str(module), str(name), value, start_line))
    return found
