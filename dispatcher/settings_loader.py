"""Builds the one `Settings` object from the main INI file (or a kamailio.cfg).

Each option is converted and checked against its dataclass field once, here; an error names
file, line, option and value and stops start-up. httpcon lines take the http_client values
written above them, as Kamailio's modparam parser does; the connections file takes the final
values. Secrets come from the environment only by explicit `${env:NAME}` reference.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
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
from dispatcher.httpcon import parse_httpcon
from dispatcher.kamailio_cfg import read_modparams

log = logging.getLogger("sipcurl.config")

SECTIONS = {
    "dispatcher": DispatcherSettings,
    "http_client": HttpClientSettings,
    "http_async_client": HttpAsyncClientSettings,
}
# Kamailio http_async_client modparams that have no meaning outside Kamailio's process model.
IGNORED_ASYNC_MODPARAMS = {"workers", "hash_size", "memory_manager"}


class _EnvInterpolation(configparser.ExtendedInterpolation):
    """`${env:NAME}` reads the environment; every other `${section:option}` as usual."""

    _ENV = re.compile(r"\$\{env:([^}]*)\}")

    def before_get(self, parser: Any, section: str, option: str, value: str, defaults: Any) -> str:
        def env(match: re.Match[str]) -> str:
            name = match[1]
            if name not in os.environ:
                raise ConfigError(
                    f"environment variable {name} is not set", option=option, value=match[0]
                )
            return os.environ[name].replace("$", "$$")

        return super().before_get(parser, section, option, self._ENV.sub(env, value), defaults)


def _field_types(cls: type) -> dict[str, Any]:
    return {f.name: f.type for f in dataclasses.fields(cls)}


def _convert(type_text: Any, raw: str) -> Any:
    text = str(type_text)
    if text in ("int",):
        return int(raw.strip(), 0)
    if text == "float":
        return float(raw.strip())
    if text == "str":
        value = raw.strip()
        return "" if value == '""' else value
    if text == "str | None":
        value = raw.strip()
        return None if value in ("", '""') else value
    raise TypeError(text)


def _line_of(text: str, section: str, option: str) -> int | None:
    current = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and "]" in stripped:
            current = stripped[1 : stripped.index("]")].strip()
        elif current == section and re.match(rf"{re.escape(option)}\s*[=:]", stripped):
            return lineno
    return None


def resolve_connections_path(config_file: str, main_file: str | None) -> str:
    """SPEC: `.`-relative to the working directory, `/` absolute, else beside the main file."""
    if config_file.startswith("/") or config_file.startswith("."):
        return config_file
    base = os.path.dirname(os.path.abspath(main_file)) if main_file else os.getcwd()
    return os.path.join(base, config_file)


def load_connections_file(path: str, http_client: HttpClientSettings) -> tuple[Connection, ...]:
    try:
        with open(path, encoding="utf-8") as f:
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

    def set(self, name: str, raw: Any, line: int | None) -> None:
        if name == "httpcon":
            for text in str(raw).splitlines():
                text = text.strip()
                if not text or text[0] in "#;":
                    continue
                self.add_httpcon(text, line)
            return
        if name not in self.types:
            raise ConfigError(
                "unknown http_client parameter", file=self.where, line=line, option=name, value=raw
            )
        try:
            value = (
                raw
                if isinstance(raw, int) and str(self.types[name]) == "int"
                else _convert(self.types[name], str(raw))
            )
        except (TypeError, ValueError):
            raise ConfigError(
                "invalid value", file=self.where, line=line, option=name, value=raw
            ) from None
        self.values[name] = value

    def add_httpcon(self, text: str, line: int | None) -> None:
        try:
            parsed = parse_httpcon(text, self.current(), origin=f"{self.where}:{line}")
        except ConfigError as err:
            masked = mask_credentials(text)
            message = err.message.replace(text, masked)
            raise ConfigError(
                message, file=self.where, line=line, option="httpcon", value=masked
            ) from None
        for warning in parsed.warnings:
            log.warning("%s:%s: %s", self.where, line, warning)
        if any(c.name == parsed.connection.name for c in self.httpcons):
            raise ConfigError(
                "duplicate connection name",
                file=self.where,
                line=line,
                option="httpcon",
                value=mask_credentials(text),
            )
        self.httpcons.append(parsed.connection)
        self.lines.append(text)


def _section_settings(
    cls: type, items: dict[str, tuple[Any, int | None]], where: str, section: str
) -> Any:
    types = _field_types(cls)
    values = {}
    for name, (raw, line) in items.items():
        if name not in types:
            raise ConfigError(
                f"unknown option in [{section}]", file=where, line=line, option=name, value=raw
            )
        try:
            values[name] = (
                raw
                if isinstance(raw, int) and str(types[name]) == "int"
                else _convert(types[name], str(raw))
            )
        except (TypeError, ValueError):
            raise ConfigError(
                "invalid value", file=where, line=line, option=name, value=raw
            ) from None
    return cls(**values)


def _validate(settings: Settings, where: str) -> None:
    d = settings.dispatcher
    checks = [
        (d.workers >= 1, "dispatcher", "workers", d.workers, "must be at least 1"),
        (
            d.routing in ROUTING_POLICIES,
            "dispatcher",
            "routing",
            d.routing,
            f"must be one of {ROUTING_POLICIES}",
        ),
        (d.max_pending >= 1, "dispatcher", "max_pending", d.max_pending, "must be at least 1"),
        (
            d.async_max_transfers >= 1,
            "dispatcher",
            "async_max_transfers",
            d.async_max_transfers,
            "must be at least 1",
        ),
        (
            d.suspend_timeout > 0,
            "dispatcher",
            "suspend_timeout",
            d.suspend_timeout,
            "must be positive",
        ),
        (d.heartbeat_ms >= 10, "dispatcher", "heartbeat_ms", d.heartbeat_ms, "must be at least 10"),
        (
            d.heartbeat_liveness >= 1,
            "dispatcher",
            "heartbeat_liveness",
            d.heartbeat_liveness,
            "must be at least 1",
        ),
    ]
    for endpoint_name in ("frontend", "events"):
        ep = getattr(d, endpoint_name)
        checks.append(
            (
                re.match(r"^(tcp|ipc|inproc)://.+", ep) is not None,
                "dispatcher",
                endpoint_name,
                ep,
                "must be a ZeroMQ endpoint (tcp://host:port)",
            )
        )
    for ok, section, option, value, message in checks:
        if not ok:
            raise ConfigError(message, file=where, option=f"{section}.{option}", value=value)
    names = [c.name for c in settings.connections]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"duplicate connection name(s): {', '.join(sorted(dup))}", file=where)


def load_settings(
    path: str | None = None, *, kamailio_cfg: str | None = None, workers: int | None = None
) -> Settings:
    where = path or "<embedded defaults>"
    sections: dict[str, dict[str, tuple[Any, int | None]]] = {name: {} for name in SECTIONS}
    text = ""
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
        parser = configparser.ConfigParser(
            interpolation=_EnvInterpolation(), strict=True, inline_comment_prefixes=("#", ";")
        )
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # Kamailio's names are exact
        try:
            parser.read_string(text, source=path)
        except configparser.Error as exc:
            raise ConfigError(f"not a valid INI file: {exc}", file=path) from None
        for section in parser.sections():
            if section not in SECTIONS:
                raise ConfigError(
                    f"unknown section [{section}]", file=path, line=_line_of_section(text, section)
                )
            for option in parser.options(section):
                line = _line_of(text, section, option)
                try:
                    sections[section][option] = (parser.get(section, option), line)
                except ConfigError as err:
                    raise ConfigError(
                        err.message, file=path, line=line, option=option, value=err.value
                    ) from None
                except configparser.Error as exc:
                    raise ConfigError(
                        f"bad interpolation: {exc}", file=path, line=line, option=option
                    ) from None
    if workers is not None:
        sections["dispatcher"]["workers"] = (workers, None)

    builder = _HttpClientBuilder(where)
    async_items = sections["http_async_client"]
    if kamailio_cfg is not None:
        if sections["http_client"] or async_items:
            log.warning(
                "--kamailio-cfg given: [http_client]/[http_async_client] of %s ignored", where
            )
        builder.where = kamailio_cfg
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
                async_items[mp.name] = (mp.value, mp.line)
    else:
        for name, (raw, line) in sections["http_client"].items():
            builder.set(name, raw, line)
    http = builder.current()
    http = dataclasses.replace(http, httpcon=tuple(builder.lines))
    conns_file = None
    from_file: tuple[Connection, ...] = ()
    if http.config_file:
        conns_file = resolve_connections_path(http.config_file, kamailio_cfg or path)
        from_file = load_connections_file(conns_file, http)
    # Kamailio's list order: file sections first, then httpcons newest first.
    connections = from_file + fixup_timeouts(reversed(builder.httpcons), http)
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
    _validate(settings, where)
    return settings


def _line_of_section(text: str, section: str) -> int | None:
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(f"[{section}]"):
            return lineno
    return None
