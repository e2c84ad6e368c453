"""Builds the one `Settings` object from the main INI file (or a kamailio.cfg).

Each option is converted and checked against its dataclass field once, here; an error names
file, line, option and value and stops start-up. httpcon lines take the http_client values
written above them, as Kamailio's modparam parser does; the connections file takes the final
values. Secrets come from the environment only by explicit `${env:NAME}` reference: an `env`
section filled from os.environ exists only inside the parser, never in Settings or a message.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import math
import os
import re
from collections.abc import Iterable
from typing import Any

from dispatcher.config import (
    ROUTING_POLICIES,
    Connection,
    DispatcherSettings,
    HttpAsyncClientSettings,
    HttpClientSettings,
    Settings,
)
from dispatcher.connfile import parse_connections_file
from dispatcher.errors import ConfigError, mask_credentials
from dispatcher.httpcon import CURL_SSLVERSION_LAST, parse_httpcon
from dispatcher.kamailio_cfg import read_modparams

log = logging.getLogger("sipcurl.config")

SECTIONS = {
    "dispatcher": DispatcherSettings,
    "http_client": HttpClientSettings,
    "http_async_client": HttpAsyncClientSettings,
}
ENV_SECTION = "env"
# Kamailio http_async_client modparams that have no meaning outside Kamailio's process model.
IGNORED_ASYNC_MODPARAMS = {"workers", "hash_size", "memory_manager"}
# Options that may be negative; every other integer is a count, a size, a flag or a time.
_SIGNED: set[str] = set()
_INT = re.compile(r"[+-]?[0-9]+")


def _field_types(cls: type) -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


def convert_value(type_text: str, raw: str | int, option: str = "") -> Any:
    """One option's text -> its field's type; ValueError says why not."""
    if isinstance(raw, int) and type_text == "int":
        value: Any = raw
    elif type_text == "int":
        text = str(raw).strip()
        if not _INT.fullmatch(text):
            raise ValueError("not an integer")
        value = int(text)
    elif type_text == "float":
        value = float(str(raw).strip())
        if not math.isfinite(value):
            raise ValueError("not a finite number")
    elif type_text in ("str", "str | None"):
        text = str(raw).strip()
        if text == '""':
            return ""  # an explicit empty string
        return None if (text == "" and type_text == "str | None") else text
    else:  # tuple[str, ...]: only httpcon, handled by the builder
        raise ValueError(f"cannot be set here ({type_text})")
    if value < 0 and option not in _SIGNED:
        raise ValueError("must not be negative")
    return value


def resolve_connections_path(config_file: str, main_file: str | None) -> str:
    """SPEC: `.`-relative to the working directory, `/` absolute, else beside the main file."""
    if config_file.startswith(("/", ".")):
        return config_file
    base = os.path.dirname(os.path.abspath(main_file)) if main_file else os.getcwd()
    return os.path.join(base, config_file)


def load_connections_file(path: str, http_client: HttpClientSettings) -> tuple[Connection, ...]:
    """Re-read Kamailio's connections file (start-up, httpclient.reload, SIGHUP)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the connections file: {exc.strerror}", file=path) from None
    return fixup_timeouts(
        parse_connections_file(text, filename=path, defaults=http_client), http_client
    )


def fixup_timeouts(conns: Iterable[Connection], http: HttpClientSettings) -> tuple[Connection, ...]:
    """curl_conn_list_fixup: 0 becomes the global default; no timeouts unless mode is 1 or 2."""
    out = []
    for con in conns:
        timeout = 0 if http.timeout_mode not in (1, 2) else con.timeout or http.effective_timeout
        out.append(dataclasses.replace(con, timeout=timeout))
    return tuple(out)


def build_connections(
    http_client: HttpClientSettings,
    httpcons: Iterable[Connection],
    from_file: Iterable[Connection] = (),
    *,
    where: str | None = None,
) -> tuple[Connection, ...]:
    """Kamailio's list order: file sections in file order, then httpcons newest first.

    `httpcons` in definition order, with the defaults each captured; `from_file` as
    load_connections_file returns them. A name used twice stops start-up.
    """
    file_conns = tuple(from_file)
    httpcon_conns = fixup_timeouts(reversed(tuple(httpcons)), http_client)
    seen: dict[str, Connection] = {}
    for con in httpcon_conns[::-1] + file_conns:  # report the later definition
        if con.name in seen:
            raise ConfigError(
                f"duplicate connection name {con.name!r} (first defined at {seen[con.name].origin})",
                file=where if not con.origin else None,
                value=con.origin or con.name,
            )
        seen[con.name] = con
    return file_conns + httpcon_conns


class _HttpClientBuilder:
    """Applies http_client options in file order, so each httpcon captures what is above it."""

    def __init__(self, where: str) -> None:
        self.values: dict[str, Any] = {}
        self.httpcons: list[Connection] = []
        self.lines: list[str] = []
        self.where = where
        self.types = _field_types(HttpClientSettings)

    def current(self) -> HttpClientSettings:
        return HttpClientSettings(**self.values)

    def set(self, name: str, raw: Any, line: int | None, shown: Any = None) -> None:
        """`shown` is what an error may print (the raw text when it references ${env:...})."""
        if name not in self.types:
            raise ConfigError(
                "unknown http_client parameter",
                file=self.where,
                line=line,
                option=name,
                value=raw if shown is None else shown,
            )
        if name == "httpcon":
            self.add_httpcon(str(raw), line)
            return
        try:
            self.values[name] = convert_value(self.types[name], raw, name)
        except ValueError as exc:
            raise ConfigError(
                str(exc),
                file=self.where,
                line=line,
                option=name,
                value=raw if shown is None else shown,
            ) from None

    def add_httpcon(self, text: str, line: int | None) -> None:
        masked = mask_credentials(text)
        try:
            con, warnings = parse_httpcon(text, self.current(), origin=f"{self.where}:{line}")
        except ConfigError as err:
            raise ConfigError(
                err.message, file=self.where, line=line, option="httpcon", value=masked
            ) from None
        for warning in warnings:
            log.warning("%s:%s: %s", self.where, line, warning)
        for other in self.httpcons:
            if other.name == con.name:
                raise ConfigError(
                    f"duplicate connection name {con.name!r} (first defined at {other.origin})",
                    file=self.where,
                    line=line,
                    option="httpcon",
                    value=masked,
                )
        self.httpcons.append(con)
        self.lines.append(text)

    def finish(self) -> HttpClientSettings:
        """mod_init's checks of the final values."""
        http = dataclasses.replace(self.current(), httpcon=tuple(self.lines))
        if http.tlsversion >= CURL_SSLVERSION_LAST:
            log.warning("%s: tlsversion %d unsupported, using 0", self.where, http.tlsversion)
            http = dataclasses.replace(http, tlsversion=0)
        if http.timeout_mode not in (1, 2) and http.connection_timeout:
            log.warning(
                "%s: timeout_mode %d disables timeouts; connection_timeout %d is ignored",
                self.where, http.timeout_mode, http.connection_timeout,
            )  # fmt: skip
        return http


def _section_settings(
    cls: type, items: dict[str, tuple[Any, int | None, Any]], where: str, section: str
) -> Any:
    types = _field_types(cls)
    values = {}
    for name, (raw, line, shown) in items.items():
        if name not in types:
            raise ConfigError(
                f"unknown option in [{section}]", file=where, line=line, option=name, value=shown
            )
        try:
            values[name] = convert_value(types[name], raw, name)
        except ValueError as exc:
            raise ConfigError(str(exc), file=where, line=line, option=name, value=shown) from None
    return cls(**values)


MAX_ASYNC_TRANSFERS = 900


def _validate(settings: Settings, where: str, lines: dict[str, int | None]) -> None:
    d = settings.dispatcher
    checks = [
        (d.workers >= 1, "workers", "must be at least 1"),
        (d.routing in ROUTING_POLICIES, "routing", f"must be one of {', '.join(ROUTING_POLICIES)}"),
        (d.max_pending >= 1, "max_pending", "must be at least 1"),
        (d.async_max_transfers >= 1, "async_max_transfers", "must be at least 1"),
        (
            d.async_max_transfers <= MAX_ASYNC_TRANSFERS,
            "async_max_transfers",
            f"must be at most {MAX_ASYNC_TRANSFERS} (a worker's curl sockets must stay below "
            "1024, the most curl_multi_fdset can report)",
        ),
        (d.sync_depth >= 1, "sync_depth", "must be at least 1"),
        (d.suspend_timeout > 0, "suspend_timeout", "must be positive"),
        (d.heartbeat_ms >= 10, "heartbeat_ms", "must be at least 10"),
        (d.heartbeat_liveness >= 1, "heartbeat_liveness", "must be at least 1"),
    ]
    for name in ("frontend", "events"):
        ok = re.fullmatch(r"(tcp|ipc|inproc)://\S+", getattr(d, name)) is not None
        checks.append((ok, name, "must be a ZeroMQ endpoint (tcp://host:port)"))
    if d.worker_endpoint:
        ok = re.fullmatch(r"(tcp|ipc)://\S+", d.worker_endpoint) is not None
        checks.append((ok, "worker_endpoint", "must be empty, tcp://host:port or ipc://path"))
    for ok, option, message in checks:
        if not ok:
            raise ConfigError(
                message, file=where, line=lines.get(option), option=option, value=getattr(d, option)
            )


def _option_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, option) -> line: configparser does not track lines, so scan the text."""
    out: dict[tuple[str, str], int] = {}
    current = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line[:1] in " \t":
            continue  # blank, or a continuation of a multi-line value
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            current = stripped[1 : stripped.index("]")]
        elif current is not None and stripped[0] not in "#;":
            m = re.match(r"(.+?)\s*[=:]", stripped)
            if m:
                out.setdefault((current, m[1].strip()), lineno)
    return out


def _section_lines(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if line[:1] == "[" and "]" in stripped:
            out.setdefault(stripped[1 : stripped.index("]")], lineno)
    return out


def _httpcon_entries(
    value: str, text_lines: list[str], first: int | None
) -> list[tuple[str, int | None]]:
    """Each connection of a multi-line httpcon value, with the file line it is written on."""
    out: list[tuple[str, int | None]] = []
    cursor = (first or 1) - 1
    for entry in value.splitlines():
        entry = entry.strip()
        if not entry or entry[0] in "#;":
            continue
        line = None
        if first is not None:
            for i in range(cursor, len(text_lines)):
                if entry in text_lines[i]:
                    line, cursor = i + 1, i + 1
                    break
        out.append((entry, line or first))
    return out


def _read_ini(path: str) -> tuple[str, configparser.ConfigParser]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read: {why}", file=path) from None
    parser = configparser.ConfigParser(
        interpolation=configparser.ExtendedInterpolation(),
        strict=True,
        inline_comment_prefixes=("#", ";"),
        default_section="\0no default section",  # [DEFAULT] is an unknown section here
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # Kamailio's names are exact
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        message = exc.message.splitlines()[0] if hasattr(exc, "message") else str(exc)
        raise ConfigError(f"not a valid INI file: {message}", file=path, line=line) from None
    if parser.has_section(ENV_SECTION):
        raise ConfigError(
            "[env] is reserved: ${env:NAME} reads the environment",
            file=path,
            line=_section_lines(text).get(ENV_SECTION),
        )
    parser.add_section(ENV_SECTION)
    for name, value in os.environ.items():
        parser.set(ENV_SECTION, name, value.replace("$", "$$"))  # values are data, not templates
    return text, parser


def _get(
    parser: configparser.ConfigParser, path: str, section: str, option: str, line: int | None
) -> tuple[str, str]:
    """(value, what an error may show): the raw text stands in for anything from the environment."""
    raw = parser.get(section, option, raw=True)
    try:
        value = parser.get(section, option)
    except configparser.InterpolationMissingOptionError as exc:
        name = exc.reference
        if name.startswith(f"{ENV_SECTION}:"):
            message = f"environment variable {name.split(':', 1)[1]} is not set"
        else:
            message = f"${{{name}}} refers to an option that does not exist"
        raise ConfigError(message, file=path, line=line, option=option, value=raw) from None
    except configparser.Error as exc:
        message = exc.message if hasattr(exc, "message") else str(exc)
        raise ConfigError(
            f"bad interpolation: {message.splitlines()[0]}",
            file=path,
            line=line,
            option=option,
            value=raw,
        ) from None
    return value, (raw if "${" in raw else value)


def load_settings(
    path: str | None = None, *, kamailio_cfg: str | None = None, workers: int | None = None
) -> Settings:
    """The whole configuration, checked; None means the embedded defaults (no connections).

    kamailio_cfg takes http_client/http_async_client from a kamailio.cfg's modparams instead
    of the INI's sections; workers overrides [dispatcher] workers.
    """
    where = path or "<embedded defaults>"
    # section -> option -> (value, line, what an error may show)
    sections: dict[str, dict[str, tuple[Any, int | None, Any]]] = {name: {} for name in SECTIONS}
    text = ""
    if path is not None:
        text, parser = _read_ini(path)
        lines = _option_lines(text)
        for section in parser.sections():
            if section == ENV_SECTION:
                continue
            if section not in SECTIONS:
                raise ConfigError(
                    f"unknown section [{section}] (known: {', '.join(SECTIONS)})",
                    file=path,
                    line=_section_lines(text).get(section),
                )
            for option in parser.options(section):
                line = lines.get((section, option))
                value, shown = _get(parser, path, section, option, line)
                sections[section][option] = (value, line, shown)
    if workers is not None:
        sections["dispatcher"]["workers"] = (workers, None, workers)

    builder = _HttpClientBuilder(where)
    async_items = sections["http_async_client"]
    main_for_paths = path
    if kamailio_cfg is not None:
        if sections["http_client"] or async_items:
            log.warning(
                "--kamailio-cfg given: [http_client]/[http_async_client] of %s ignored", where
            )
        builder.where = kamailio_cfg
        main_for_paths = kamailio_cfg
        async_items = {}
        for mp in read_modparams(kamailio_cfg):
            if mp.module == "http_client":
                builder.set(mp.name, mp.value, mp.line)
            elif mp.name not in IGNORED_ASYNC_MODPARAMS:
                if mp.name not in _field_types(HttpAsyncClientSettings):
                    raise ConfigError(
                        "unknown http_async_client parameter",
                        file=kamailio_cfg,
                        line=mp.line,
                        option=mp.name,
                        value=mp.value,
                    )
                async_items[mp.name] = (mp.value, mp.line, mp.value)
    else:
        text_lines = text.splitlines()
        for name, (raw, line, shown) in sections["http_client"].items():
            if name == "httpcon":
                for entry, entry_line in _httpcon_entries(str(raw), text_lines, line):
                    builder.set(name, entry, entry_line)
            else:
                builder.set(name, raw, line, shown)
    http = builder.finish()
    conns_file = None
    from_file: tuple[Connection, ...] = ()
    if http.config_file:
        conns_file = resolve_connections_path(http.config_file, main_for_paths)
        from_file = load_connections_file(conns_file, http)
    connections = build_connections(http, builder.httpcons, from_file, where=builder.where)
    settings = Settings(
        dispatcher=_section_settings(
            DispatcherSettings, sections["dispatcher"], where, "dispatcher"
        ),
        http_client=http,
        http_async_client=_section_settings(
            HttpAsyncClientSettings, async_items, kamailio_cfg or where, "http_async_client"
        ),
        connections=connections,
        main_file=path,
        connections_file=conns_file,
    )
    _validate(settings, where, {o: v[1] for o, v in sections["dispatcher"].items()})
    return settings
