"""The main INI file: options checked once, errors naming file/line/option/value, Kamailio's order."""

from __future__ import annotations

import configparser
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.config import HttpClientSettings, Settings
from dispatcher.errors import ConfigError
from dispatcher.settings_loader import (
    build_connections,
    load_connections_file,
    load_settings,
    resolve_connections_path,
)

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_of(path: str, **kw: object) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_settings(path, **kw)  # type: ignore[arg-type]
    return err.value


def test_no_file_means_the_embedded_defaults() -> None:
    assert load_settings() == Settings()
    assert load_settings(workers=2).dispatcher.workers == 2


def test_the_sample_configuration_loads() -> None:
    s = load_settings(str(ROOT / "conf" / "sipcurl.ini"))
    assert [c.name for c in s.connections] == ["authapi", "billing", "apitwo", "apione"]
    assert s.httpcon_count == 2 and s.http_client.keep_connections == 1
    assert s.connections_file == str(ROOT / "conf" / "http_connections.cfg")
    assert s.connection("billing").http_proxy is None  # type: ignore[union-attr]
    assert s.connection("apione").timeout == 2 and s.connection("apitwo").timeout == 4  # type: ignore[union-attr]


def test_every_option_is_converted_to_its_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.ini",
        """\
        [dispatcher]
        frontend = tcp://127.0.0.1:6000
        workers = 3
        routing = least_busy
        suspend_timeout = 2.5
        worker_endpoint = tcp://127.0.0.1:6002
        [http_client]
        httpproxy = proxy.local
        httpproxyport = 3128
        useragent = my agent
        cacert = ""
        client_cert =
        timeout_mode = 2
        [http_async_client]
        connection_timeout = 900
        tls_ca_path = /etc/ssl/certs
        """,
    )
    s = load_settings(path)
    d, h, a = s.dispatcher, s.http_client, s.http_async_client
    assert (d.frontend, d.workers, d.routing, d.suspend_timeout) == (
        "tcp://127.0.0.1:6000", 3, "least_busy", 2.5,
    )  # fmt: skip
    assert (h.httpproxy, h.httpproxyport, h.useragent, h.cacert, h.client_cert) == (
        "proxy.local", 3128, "my agent", "", None,
    )  # fmt: skip
    assert h.effective_timeout == 4000
    assert (a.connection_timeout, a.tls_ca_path) == (900, "/etc/ssl/certs")
    assert load_settings(path, workers=7).dispatcher.workers == 7


@pytest.mark.parametrize(
    ("text", "line", "option", "value", "words"),
    [
        ("[dispatcher]\nworkers = 2\n\n[http_client]\nmaxdatasize = lots\n", 5, "maxdatasize", "lots", "integer"),
        ("[http_client]\nmaxdatasize = -1\n", 2, "maxdatasize", "-1", "negative"),
        ("[http_client]\nmaxdatasize = 0x10\n", 2, "maxdatasize", "0x10", "integer"),
        ("[http_client]\n\nhttp_redirect = 1\n", 3, "http_redirect", "1", "unknown http_client parameter"),
        ("[dispatcher]\nbogus = 1\n", 2, "bogus", "1", "unknown option"),
        ("[http_async_client]\nworkers = 1\n", 2, "workers", "1", "unknown option"),
        ("[dispatcher]\nrouting = random\n", 2, "routing", "random", "round_robin"),
        ("[dispatcher]\nworkers = 0\n", 2, "workers", 0, "at least 1"),
        ("[dispatcher]\nasync_max_transfers = 2000\n", 2, "async_max_transfers", 2000, "below 1024"),
        ("[dispatcher]\n\nsync_depth = 0\n", 3, "sync_depth", 0, "at least 1"),
        ("[dispatcher]\nsuspend_timeout = nan\n", 2, "suspend_timeout", "nan", "finite"),
        ("[dispatcher]\nfrontend = 127.0.0.1:5570\n", 2, "frontend", "127.0.0.1:5570", "endpoint"),
    ],
)  # fmt: skip
def test_errors_name_file_line_option_and_value(
    tmp_path: Path, text: str, line: int, option: str, value: object, words: str
) -> None:
    path = write(tmp_path, "s.ini", text)
    err = error_of(path)
    assert (err.file, err.line, err.option, err.value) == (path, line, option, value)
    assert words in str(err)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[dispatchers]\nworkers = 1\n", 1, "unknown section"),
        ("[DEFAULT]\nworkers = 1\n", 1, "unknown section"),
        ("workers = 1\n", 1, "section header"),
        ("[dispatcher]\nworkers = 1\nworkers = 2\n", 3, "already exists"),
        ("[env]\nX = 1\n", 1, "reserved"),
    ],
)
def test_file_structure_errors(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, "s.ini", text)
    err = error_of(path)
    assert (err.file, err.line) == (path, line) and words in str(err)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    err = error_of(str(tmp_path / "nope.ini"))
    assert "cannot read" in str(err)


def test_secrets_come_from_the_environment_only_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIPCURL_TEST_SECRET", "pa$$word")
    monkeypatch.setenv("SIPCURL_TEST_PORT", "x8080")
    path = write(
        tmp_path,
        "s.ini",
        """\
        [http_client]
        useragent = $${env:SIPCURL_TEST_SECRET}
        httpcon = a=>http://u:${env:SIPCURL_TEST_SECRET}@h/
        """,
    )
    s = load_settings(path)
    assert s.connection("a").password == "pa$$word"  # type: ignore[union-attr]
    assert s.http_client.useragent == "${env:SIPCURL_TEST_SECRET}"  # $$ escapes the reference
    err = error_of(write(tmp_path, "m.ini", "[http_client]\nuseragent = ${env:SIPCURL_NOT_SET_ANYWHERE}\n"))  # fmt: skip
    assert (err.line, err.option) == (2, "useragent") and "SIPCURL_NOT_SET_ANYWHERE" in str(err)
    # a bad value from the environment is shown as the reference, not as the secret
    err = error_of(write(tmp_path, "p.ini", "[http_client]\nhttpproxyport = ${env:SIPCURL_TEST_PORT}\n"))  # fmt: skip
    assert err.value == "${env:SIPCURL_TEST_PORT}" and "x8080" not in str(err)


def test_section_references_interpolate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.ini",
        """\
        [dispatcher]
        frontend = tcp://127.0.0.1:7000
        [http_client]
        useragent = via ${dispatcher:frontend}
        """,
    )
    assert load_settings(path).http_client.useragent == "via tcp://127.0.0.1:7000"
    err = error_of(write(tmp_path, "b.ini", "[http_client]\nuseragent = ${dispatcher:nothing}\n"))
    assert err.line == 2 and "does not exist" in str(err)


def test_each_httpcon_takes_only_the_options_above_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.ini",
        """\
        [http_client]
        maxdatasize = 10
        httpcon = first=>http://h/1
            # a comment line inside the value
            second=>http://h/2;maxdatasize=5

            third=>http://h/3
        keep_connections = 1
        config_file = conns.cfg
        """,
    )
    write(tmp_path, "conns.cfg", "[file1]\nurl = http://h/f1\n[file2]\nurl = http://h/f2\n")
    s = load_settings(path)
    # Kamailio's list: config-file sections in file order, then httpcons newest first.
    assert [c.name for c in s.connections] == ["file1", "file2", "third", "second", "first"]
    assert [c.maxdatasize for c in s.connections] == [10, 10, 10, 5, 10]
    assert [c.keep_connections for c in s.connections] == [1, 1, 0, 0, 0]
    assert [c.origin.rsplit(":", 1)[1] for c in s.connections[2:]] == ["7", "5", "3"]
    assert s.http_client.httpcon == (
        "first=>http://h/1", "second=>http://h/2;maxdatasize=5", "third=>http://h/3",
    )  # fmt: skip


def test_timeouts_are_fixed_up_as_in_mod_init(tmp_path: Path) -> None:
    text = "[http_client]\n{mode}httpcon = a=>http://h/\n  b=>http://h/;timeout=9\nconfig_file = c.cfg\n"
    write(tmp_path, "c.cfg", "[f]\nurl = http://h/\n")
    s = load_settings(write(tmp_path, "s.ini", text.format(mode="")))
    assert {c.name: c.timeout for c in s.connections} == {"f": 4, "a": 4, "b": 9}
    s = load_settings(write(tmp_path, "s.ini", text.format(mode="timeout_mode = 2\nconnection_timeout = 250\n")))  # fmt: skip
    assert {c.name: c.timeout for c in s.connections} == {"f": 250, "a": 250, "b": 9}
    s = load_settings(write(tmp_path, "s.ini", text.format(mode="timeout_mode = 0\n")))
    assert {c.name: c.timeout for c in s.connections} == {"f": 0, "a": 0, "b": 0}


def test_httpcon_errors_name_their_own_line_and_hide_passwords(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.ini",
        "[http_client]\nhttpcon = ok=>http://h/\n  bad=>http://bob:TopSecret9@h/;timeout=1;\n",
    )
    err = error_of(path)
    assert (err.line, err.option) == (3, "httpcon")
    assert "TopSecret9" not in str(err) and "bob:********@h" in str(err)


def test_duplicate_names_stop_start_up(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "s.ini", "[http_client]\nhttpcon = a=>http://h/\n  a=>http://h/2\n"))  # fmt: skip
    assert err.line == 3 and "duplicate" in str(err)
    write(tmp_path, "c.cfg", "[a]\nurl = http://h/\n")
    err = error_of(write(tmp_path, "t.ini", "[http_client]\nhttpcon = a=>http://h/\nconfig_file = c.cfg\n"))  # fmt: skip
    assert "duplicate" in str(err) and "c.cfg:1" in str(err)


def test_connections_file_path_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_connections_path("/abs/c.cfg", "/etc/x/s.ini") == "/abs/c.cfg"
    assert resolve_connections_path("./c.cfg", "/etc/x/s.ini") == "./c.cfg"
    assert resolve_connections_path("c.cfg", "/etc/x/s.ini") == "/etc/x/c.cfg"
    assert resolve_connections_path("sub/c.cfg", None) == os.path.join(os.getcwd(), "sub/c.cfg")
    (tmp_path / "conf").mkdir()
    write(tmp_path, "conf/c.cfg", "[beside]\nurl = http://h/\n")
    write(tmp_path, "c.cfg", "[cwd]\nurl = http://h/\n")
    monkeypatch.chdir(tmp_path)
    ini = write(tmp_path, "conf/s.ini", "[http_client]\nconfig_file = c.cfg\n")
    assert [c.name for c in load_settings(ini).connections] == ["beside"]
    ini = write(tmp_path, "conf/s.ini", "[http_client]\nconfig_file = ./c.cfg\n")
    assert [c.name for c in load_settings(ini).connections] == ["cwd"]
    ini = write(tmp_path, "conf/s.ini", "[http_client]\nconfig_file = missing.cfg\n")
    assert "cannot read the connections file" in str(error_of(ini))


def test_reload_reads_the_file_with_the_final_values(tmp_path: Path) -> None:
    path = write(tmp_path, "c.cfg", "[a]\nurl = http://h/\n")
    (con,) = load_connections_file(path, HttpClientSettings(maxdatasize=3, connection_timeout=6))
    assert (con.maxdatasize, con.timeout, con.source) == (3, 6, "config_file")
    assert build_connections(HttpClientSettings(), [], [con]) == (con,)


def test_kamailio_cfg_replaces_the_http_sections(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "kamailio.cfg",
        """\
        #!KAMAILIO
        #!define HTTP_TIMEOUT 7
        loadmodule "http_client.so"
        modparam("http_client", "maxdatasize", 300)   # above the first httpcon
        modparam("http_client", "httpcon",
                 "api=>http://127.0.0.1:8080/api;timeout=2")
        modparam("http_client", "maxdatasize", 400)
        modparam("http_client", "httpcon", "late=>http://127.0.0.1:8080/late")
        modparam("http_client", "connection_timeout", HTTP_TIMEOUT)
        modparam("http_client", "config_file", "conns.cfg")
        modparam("http_async_client", "workers", 2)
        modparam("http_async_client", "connection_timeout", 900)
        """,
    )
    write(tmp_path, "conns.cfg", "[file]\nurl = http://h/\n")
    ini = write(tmp_path, "s.ini", "[dispatcher]\nworkers = 3\n[http_client]\nmaxdatasize = 1\n")
    s = load_settings(ini, kamailio_cfg=cfg)
    assert s.dispatcher.workers == 3  # the INI still supplies [dispatcher]
    assert (s.http_client.maxdatasize, s.http_client.connection_timeout) == (400, 7)
    assert [(c.name, c.maxdatasize, c.timeout) for c in s.connections] == [
        ("file", 400, 7), ("late", 400, 7), ("api", 300, 2),
    ]  # fmt: skip
    assert s.http_async_client.connection_timeout == 900
    assert s.connections_file == str(tmp_path / "conns.cfg")  # beside the kamailio.cfg


def test_kamailio_cfg_errors(tmp_path: Path) -> None:
    cfg = write(tmp_path, "k.cfg", '\nmodparam("http_client", "no_such_param", 1)\n')
    err = error_of(None, kamailio_cfg=cfg)  # type: ignore[arg-type]
    assert (err.file, err.line, err.option) == (cfg, 2, "no_such_param")
    cfg = write(tmp_path, "k.cfg", 'modparam("http_async_client", "nope", 1)\n')
    assert "unknown http_async_client parameter" in str(error_of(None, kamailio_cfg=cfg))  # type: ignore[arg-type]
    cfg = write(tmp_path, "k.cfg", 'modparam("http_client", "httpcon", "x = > http://h/")\n')
    err = error_of(None, kamailio_cfg=cfg)  # type: ignore[arg-type]
    assert (err.line, err.option) == (1, "httpcon")
    cfg = write(tmp_path, "k.cfg", 'modparam("http_client", "maxdatasize", MAYBE)\n')
    err = error_of(None, kamailio_cfg=cfg)  # type: ignore[arg-type]
    assert (err.line, err.value) == (1, "MAYBE")


_INI_PIECES = st.lists(
    st.sampled_from(
        ["[dispatcher]\n", "[http_client]\n", "[http_async_client]\n", "[x]\n", "workers", "httpcon",
         "maxdatasize", "useragent", "routing", " = ", "=", ":", "1", "-1", "abc", "a=>http://h/",
         ";timeout=1", "${env:HOME}", "${env:NOPE_X}", "$", "${dispatcher:workers}", "\n", "  ",
         "#", ";", "config_file", "%", "é"]
    ),
    max_size=25,
).map("".join)  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(_INI_PIECES, st.text(max_size=80)))
def test_fuzz_only_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.ini"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_settings(str(path))
    except ConfigError as err:
        assert err.file is not None
    except configparser.Error as exc:  # pragma: no cover - would be a bug
        raise AssertionError(f"configparser error escaped: {exc!r}") from None
