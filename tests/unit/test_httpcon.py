"""httpcon strings: Kamailio's curl_parse_param and parse_param, quirk for quirk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.config import Connection, HttpClientSettings
from dispatcher.errors import ConfigError
from dispatcher.httpcon import parse_httpcon, str2int

DEFAULTS = HttpClientSettings()


def con(text: str, defaults: HttpClientSettings = DEFAULTS) -> Connection:
    return parse_httpcon(text, defaults).connection


def warnings(text: str) -> list[str]:
    return parse_httpcon(text, DEFAULTS).warnings


def test_the_documented_examples() -> None:
    c = con("apithree=>http://annabella:mysecret@atlanta.example.com/api/12")
    assert (c.name, c.schema, c.url, c.username, c.password) == (
        "apithree", "http", "atlanta.example.com/api/12", "annabella", "mysecret",
    )  # fmt: skip
    c = con("apifour=>http://stockholm.example.com/api/getstuff;timeout=12;failover=apione")
    assert (c.url, c.timeout, c.failover, c.username) == (
        "stockholm.example.com/api/getstuff", 12, "apione", None,
    )  # fmt: skip
    assert c.base_url == "http://stockholm.example.com/api/getstuff"


@pytest.mark.parametrize(
    ("text", "name", "url"),
    [
        ("name =>http://h/", "name", "h/"),
        ("name=> http://h/", "name", "h/"),
        ("  \t name\t=>\thttp://h:8080/p?q=1", "name", "h:8080/p?q=1"),
        ("n=>http://h/p ;timeout=1", "n", "h/p "),  # the base URL keeps trailing blanks
        ("n=>http://h/p;", "n", "h/p"),  # a lone ';' at the very end is fine
        ("n=>ftp://h/", "n", "h/"),  # the schema is not checked here
    ],
)
def test_accepted_shapes(text: str, name: str, url: str) -> None:
    c = con(text)
    assert (c.name, c.url) == (name, url)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "name = > http://h/",  # '=' and '>' must touch
        "name http://h/",
        "name",
        "name=",
        "x=>http:/h",
        "x=>nocolon",
        "x=>http:h",
        "x=>http://h/;timeout=1;",  # ';' after a parameter: "Param name missing"
        "x=>http://h/;timeout=1;   ",
        "x=>http://h/; timeout=1",  # no blank may precede the first name
        "x=>http://h/;timeout=;maxdatasize=1",  # an empty unquoted value before more text
        "x=>http://h/;timeout=1 x",  # junk after a value
        'x=>http://h/;useragent="abc',  # unclosed quote
        "x=>http://h/;useragent='",
    ],
)
def test_inputs_kamailio_refuses(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        con(text)
    assert "invalid curl parameter" in err.value.message or "empty" in err.value.message


def test_credentials_split_at_the_first_at_sign_even_inside_params() -> None:
    c = con("x=>http://h/p;useragent=a@b")
    assert (c.username, c.password, c.url) == ("h/p;useragent=a", None, "b")
    c = con("x=>http://u:p:q@h/")
    assert (c.username, c.password) == ("u", "p:q")
    c = con("x=>http://:p@h/")
    assert (c.username, c.password, c.url) == ("", "p", "h/")


def test_parameter_values_quotes_and_list_ends() -> None:
    assert con("x=>http://h/;cipher_suites=A,B").cipher_suites == "A"  # ',' ends the list
    assert con('x=>http://h/;cipher_suites="A,B"').cipher_suites == "A,B"
    assert con("x=>http://h/;cipher_suites='A;B';timeout=3").timeout == 3
    c = con("x=>http://h/;timeout=3 >;maxdatasize=9")  # a '>' after a value ends it too
    assert (c.timeout, c.maxdatasize) == (3, 0)
    assert con("x=>http://h/;timeout=3>;maxdatasize=9").timeout == 0  # ...inside one it doesn't
    assert con("x=>http://h/;timeout = 3 ; maxdatasize = 9").maxdatasize == 9
    assert con("x=>http://h/;useragent=").useragent == ""  # '=' then the end: empty body
    assert con("x=>http://h/;useragent").useragent == ""
    assert con('x=>http://h/;useragent=""').useragent == ""
    assert con("x=>http://h/;timeout=1;timeout=2").timeout == 1  # the first one wins
    assert con("x=>http://h/;timeout=x;timeout=2").timeout == 0  # ...even when invalid


def test_a_parameter_without_value_is_null() -> None:
    d = HttpClientSettings(client_cert="/c.pem")
    assert con("x=>http://h/;client_cert", d).client_cert is None  # NULL body in C
    assert con("x=>http://h/;client_cert=", d).client_cert == ""
    assert con("x=>http://h/", d).client_cert == "/c.pem"
    assert con("x=>http://h/;failover").failover is None


def test_integer_parameters_and_invalid_values() -> None:
    assert str2int("12") == 12 and str2int("+7") == 7 and str2int("") == 0
    assert str2int("-1") is None and str2int("1e3") is None and str2int("٣") is None
    assert str2int(str(2**32)) is None and str2int(str(2**32 - 1)) == 2**32 - 1
    assert str2int(None) is None
    c = con("x=>http://h/;timeout=+5;verify_host=7;tlsversion=7;maxdatasize=")
    assert (c.timeout, c.maxdatasize, c.verify_host, c.tlsversion) == (5, 0, 7, 7)
    d = HttpClientSettings(verify_peer=0, httpredirect=1, tlsversion=6)
    c = con("x=>http://h/;verify_peer=2;httpredirect=5;tlsversion=8;timeout", d)
    assert (c.verify_peer, c.httpredirect, c.tlsversion, c.timeout) == (0, 1, 6, 0)
    ws = warnings("x=>http://h/;verify_peer=2;timeout=abc;maxdatasize=99999999999")
    assert len(ws) == 3 and all("bad value" in w for w in ws)


def test_unknown_parameters_are_only_warned_about() -> None:
    parsed = parse_httpcon(
        "x=>http://h/;keep_connections=1;httpproxy=p;authmethod=1;Timeout=3", DEFAULTS
    )
    c = parsed.connection
    assert (c.keep_connections, c.http_proxy, c.authmethod, c.timeout) == (0, None, 3, 0)
    assert [w.split("[")[1].split("]")[0] for w in parsed.warnings] == [
        "keep_connections", "httpproxy", "authmethod", "Timeout",
    ]  # fmt: skip
    assert "Unknown parameter [a>b]" in warnings("x=>http://h/;a>b=1")[0]
    assert len(warnings("x=>http://h/;a;;b")) == 3  # an empty name is a parameter too


def test_kamailio_accepts_an_empty_name_or_url_with_a_warning() -> None:
    assert con("=>http://h/").name == ""
    assert warnings("x=>http://") == ["httpcon x: empty base URL"]


def test_defaults_captured_from_the_modparams() -> None:
    d = HttpClientSettings(
        maxdatasize=10, useragent="ua", authmethod=1, keep_connections=1, verify_host=0,
        client_key="/k", cipher_suites="C", connection_timeout=9, httpredirect=1,
    )  # fmt: skip
    c = con("x=>http://h/", d)
    assert (c.maxdatasize, c.useragent, c.authmethod, c.keep_connections, c.verify_host) == (
        10, "ua", 1, 1, 0,
    )  # fmt: skip
    assert (c.client_key, c.cipher_suites, c.timeout, c.httpredirect) == ("/k", "C", 9, 1)


def test_proxy_only_with_a_port() -> None:
    c = con("x=>http://h/", HttpClientSettings(httpproxy="p", httpproxyport=0))
    assert (c.http_proxy, c.http_proxy_port) == (None, 0)
    c = con("x=>http://h/", HttpClientSettings(httpproxy="p", httpproxyport=3128))
    assert (c.http_proxy, c.http_proxy_port) == ("p", 3128)


def test_a_nul_ends_the_definition_as_in_c() -> None:
    assert con("x=>http://h/\0;timeout=5").timeout == 0


def test_parsed_result_unpacks_as_a_pair() -> None:
    connection, ws = parse_httpcon("x=>http://h/;bogus", DEFAULTS)
    assert connection.name == "x" and len(ws) == 1


_HTTPCON_PIECES = st.lists(
    st.sampled_from(
        ["a", "n", "=", ">", "=>", " ", "\t", "http", ":", "//", "@", "u:p@", "h", "/p", ";",
         "timeout", "=5", "useragent", '"', "'", ",", "x", "\n", "+", "1"]
    ),
    max_size=24,
).map("".join)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), _HTTPCON_PIECES))
def test_fuzz_only_config_errors(text: str) -> None:
    try:
        parsed = parse_httpcon(text, DEFAULTS)
    except ConfigError as err:
        assert err.value == text.split("\0")[0]
        return
    assert isinstance(parsed.connection, Connection)
    assert "=>" in text
