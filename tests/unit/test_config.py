"""Configuration: Kamailio's grammars exactly, and errors that name file, line and value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.config import HttpClientSettings
from dispatcher.connfile import parse_connections_file
from dispatcher.errors import ConfigError
from dispatcher.httpcon import parse_httpcon
from dispatcher.kamailio_cfg import read_modparams
from dispatcher.settings_loader import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = HttpClientSettings()


def con(text: str, defaults: HttpClientSettings = DEFAULTS):  # type: ignore[no-untyped-def]
    return parse_httpcon(text, defaults).connection


def test_httpcon_credentials_path_and_params() -> None:
    c = con(
        "apithree=>http://annabella:mysecret@atlanta.example.com/api/12;timeout=12;failover=apione"
    )
    assert (c.name, c.schema, c.url) == ("apithree", "http", "atlanta.example.com/api/12")
    assert (c.username, c.password, c.timeout, c.failover) == (
        "annabella",
        "mysecret",
        12,
        "apione",
    )


def test_httpcon_credentials_split_at_the_first_at_sign_even_inside_params() -> None:
    c = con("x=>http://h/p;useragent=a@b")
    assert c.username == "h/p;useragent=a" and c.url == "b"


@pytest.mark.parametrize(
    "text",
    [
        "name = > http://h/",
        "name http://h/",
        "x=>http:/h",
        "x=>nocolon",
        "   ",
        "x=>http://h/;timeout=1;",
    ],
)
def test_httpcon_inputs_kamailio_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        con(text)


def test_httpcon_param_parser_quirks() -> None:
    assert con("x=>http://h/;cipher_suites=A,B").cipher_suites == "A"  # unquoted ',' ends the list
    assert con('x=>http://h/;cipher_suites="A,B"').cipher_suites == "A,B"
    assert con("x=>http://h/;timeout=1;timeout=2").timeout == 1  # the first one wins
    assert con("x =>http://h/p;").url == "h/p"  # a lone ';' at the very end is fine
    parsed = parse_httpcon("x=>http://h/;keep_connections=1;bogus=2", DEFAULTS)
    assert parsed.connection.keep_connections == 0
    assert any("keep_connections" in w for w in parsed.warnings)
    assert con("x=>http://h/;verify_peer=7").verify_peer == 1  # invalid: warned, default kept


def test_httpcon_captures_the_defaults_given_to_it() -> None:
    c = con("x=>http://h/", HttpClientSettings(maxdatasize=10, httpproxy="p", httpproxyport=0))
    assert c.maxdatasize == 10 and c.http_proxy is None  # proxy port 0: no proxy for connections


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_httpcon_fuzz_never_crashes(text: str) -> None:
    try:
        parse_httpcon(text, DEFAULTS)
    except ConfigError:
        pass


def test_connections_file_both_key_spellings_null_and_proxy_port_zero() -> None:
    text = textwrap.dedent(
        """\
        # comment
        [a]
        url = http://127.0.0.1/a
        KEEPCONNECTIONS = 1
        httpredirect = yes
        client_cert = ""
        httpproxy = 10.0.0.1
        httpproxyport = 0
        [b]
        url = https://h:8443/b   # trailing comment
        keep_connections = 0
        http_follow_redirect = off
        tlsversion = TLSv1.2
        password = "p@ss word"
        """
    )
    a, b = parse_connections_file(text, filename="c.cfg", defaults=DEFAULTS)
    assert (a.name, a.url, a.keep_connections, a.httpredirect, a.client_cert, a.http_proxy) == (
        "a",
        "127.0.0.1/a",
        1,
        1,
        None,
        None,
    )
    assert (b.schema, b.url, b.httpredirect, b.tlsversion, b.password) == (
        "https",
        "h:8443/b",
        0,
        6,
        "p@ss word",
    )
    assert a.source == "config_file"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("url = http://h/\n", 1, "before the first"),
        ("[a]\nurl = http://h/\nbogus = 1\n", 3, "unsupported"),
        ("[a]\ntimeout = 5\n", 1, "no url"),
        ("[a]\nurl = http://h/\nverify_peer = maybe\n", 3, "boolean"),
        ("[a]\nurl = http://h/{x}\n", 2, "invalid character"),
        ("[a]\nurl = http://h/\n[a]\nurl = http://h/\n", 3, "duplicate"),
    ],
)
def test_connections_file_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_connections_file(text, filename="c.cfg", defaults=DEFAULTS)
    assert err.value.file == "c.cfg" and err.value.line == line
    assert words in str(err.value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('[]=#"\\ \nabcurl:/1_.;yes')), max_size=120))
def test_connections_file_fuzz_never_crashes(text: str) -> None:
    try:
        parse_connections_file(text, filename="f", defaults=DEFAULTS)
    except ConfigError:
        pass


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_ini_httpcon_takes_only_the_options_above_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.ini",
        """\
        [http_client]
        maxdatasize = 10
        httpcon = above=>http://h/
        maxdatasize = 20
        config_file = conns.cfg
        """,
    )
    with pytest.raises(ConfigError):  # duplicate option in one section is an error in INI
        load_settings(path)
    path = write(
        tmp_path,
        "s.ini",
        """\
        [http_client]
        maxdatasize = 10
        httpcon = above=>http://h/
        config_file = conns.cfg
        keep_connections = 1
        """,
    )
    write(tmp_path, "conns.cfg", "[file]\nurl = http://h/f\n")
    s = load_settings(path)
    assert [c.name for c in s.connections] == ["file", "above"]
    assert s.connection("above").keep_connections == 0  # type: ignore[union-attr]
    assert s.connection("file").keep_connections == 1  # type: ignore[union-attr]
    assert s.httpcon_count == 1


def test_ini_errors_name_file_line_option_and_value(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.ini", "[dispatcher]\nworkers = 2\n\n[http_client]\nmaxdatasize = lots\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert (err.value.file, err.value.line, err.value.option, err.value.value) == (
        path,
        5,
        "maxdatasize",
        "lots",
    )
    path = write(tmp_path, "u.ini", "[http_client]\nhttp_redirect = 1\n")
    with pytest.raises(ConfigError, match="unknown http_client parameter"):
        load_settings(path)
    path = write(tmp_path, "r.ini", "[dispatcher]\nrouting = random\n")
    with pytest.raises(ConfigError, match="routing"):
        load_settings(path)


def test_secrets_come_from_the_environment_only_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIPCURL_TEST_SECRET", "pa$$word")
    path = write(
        tmp_path, "s.ini", "[http_client]\nhttpcon = a=>http://u:${env:SIPCURL_TEST_SECRET}@h/\n"
    )
    assert load_settings(path).connection("a").password == "pa$$word"  # type: ignore[union-attr]
    path = write(tmp_path, "m.ini", "[http_client]\nuseragent = ${env:SIPCURL_NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match="SIPCURL_NOT_SET_ANYWHERE"):
        load_settings(path)


def test_the_sample_configuration_loads() -> None:
    s = load_settings(str(ROOT / "conf" / "sipcurl.ini"))
    assert {c.name for c in s.connections} == {"apione", "apitwo", "authapi", "billing"}


def test_kamailio_cfg_modparams_with_comments_continuations_and_defines(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "kamailio.cfg",
        """\
        #!KAMAILIO
        #!define API_URL "http://127.0.0.1:8080/api"
        #!define TIMEOUT 7
        loadmodule "http_client.so"
        # modparam("http_client", "maxdatasize", 1)
        /* modparam("http_client", "maxdatasize", 2) */
        modparam("http_client", "maxdatasize", 300)   // trailing comment
        modparam("http_client", "httpcon",
                 "api=>http://127.0.0.1:8080/api;timeout=2")
        modparam("http_client", "connection_timeout", TIMEOUT)
        modparam("http_async_client", "workers", 2)
        modparam("http_async_client", "connection_timeout", 900)
        modparam("tm", "fr_timer", 3000)
        """,
    )
    params = read_modparams(cfg)
    assert [(p.module, p.name, p.value) for p in params] == [
        ("http_client", "maxdatasize", 300),
        ("http_client", "httpcon", "api=>http://127.0.0.1:8080/api;timeout=2"),
        ("http_client", "connection_timeout", 7),
        ("http_async_client", "workers", 2),
        ("http_async_client", "connection_timeout", 900),
    ]
    s = load_settings(None, kamailio_cfg=cfg)
    assert s.http_client.maxdatasize == 300 and s.http_client.connection_timeout == 7
    assert s.connection("api").maxdatasize == 300  # type: ignore[union-attr]
    assert s.http_async_client.connection_timeout == 900


def test_kamailio_cfg_values_it_cannot_resolve_are_reported(tmp_path: Path) -> None:
    cfg = write(tmp_path, "k.cfg", 'modparam("http_client", "httpcon", UNDEFINED_NAME)\n')
    with pytest.raises(ConfigError) as err:
        read_modparams(cfg)
    assert err.value.line == 1 and err.value.value == "UNDEFINED_NAME"
    cfg = write(
        tmp_path,
        "k2.cfg",
        '#!ifdef WITH_HTTP\nmodparam("http_client", "maxdatasize", 5)\n#!endif\n',
    )
    with pytest.raises(ConfigError, match="ifdef"):
        read_modparams(cfg)


def test_passwords_never_appear_in_configuration_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.ini", "[http_client]\nhttpcon = a=>http://bob:TopSecret9@h/;timeout=1;\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "TopSecret9" not in str(err.value) and "bob:********@h" in str(err.value)
