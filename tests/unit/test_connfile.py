"""Kamailio's connections file, read with cfg_parser's lexer rules."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.config import Connection, HttpClientSettings
from dispatcher.connfile import parse_connections_file
from dispatcher.errors import ConfigError

DEFAULTS = HttpClientSettings()


def parse(text: str, defaults: HttpClientSettings = DEFAULTS) -> tuple[Connection, ...]:
    return parse_connections_file(textwrap.dedent(text), filename="c.cfg", defaults=defaults)


def one(text: str, defaults: HttpClientSettings = DEFAULTS) -> Connection:
    (con,) = parse(text, defaults)
    return con


def test_every_key_both_spellings_and_file_order() -> None:
    a, b = parse(
        """\
        # comment
        [a]
        URL = http://u@127.0.0.1:8080/a;x=1   # credentials and ;params stay in the URL
        username = bob
        password = "p@ss word"
        failover = b
        useragent = "agent 1"
        verify_peer = no
        verify_host = off
        client_cert = /c.pem
        client_key = /k.pem
        cipher_suites = HIGH:!aNULL
        tlsversion = TLSv1.2
        timeout = 7
        maxdatasize = 100
        httpredirect = yes
        httpproxy = 10.0.0.1
        httpproxyport = 3128
        authmethod = 1
        KeepConnections = 1

        [b]
        url = https://h/b
        http_follow_redirect = enabled
        keep_connections = 0
        """
    )
    assert (a.name, a.schema, a.url, a.username, a.password, a.failover) == (
        "a", "http", "u@127.0.0.1:8080/a;x=1", "bob", "p@ss word", "b",
    )  # fmt: skip
    assert (a.useragent, a.verify_peer, a.verify_host, a.client_cert, a.client_key) == (
        "agent 1", 0, 0, "/c.pem", "/k.pem",
    )  # fmt: skip
    assert (a.cipher_suites, a.tlsversion, a.timeout, a.maxdatasize, a.httpredirect) == (
        "HIGH:!aNULL", 6, 7, 100, 1,
    )  # fmt: skip
    assert (a.http_proxy, a.http_proxy_port, a.authmethod, a.keep_connections) == (
        "10.0.0.1", 3128, 1, 1,
    )  # fmt: skip
    assert (b.name, b.httpredirect, b.keep_connections, b.source) == ("b", 1, 0, "config_file")
    assert (a.origin, b.origin) == ("c.cfg:2", "c.cfg:22")


@pytest.mark.parametrize(
    ("word", "value"),
    [(w, 1) for w in ("yes", "TRUE", "enable", "Enabled", "1", "on")]
    + [(w, 0) for w in ("no", "false", "DISABLE", "disabled", "0", "Off")],
)
def test_booleans(word: str, value: int) -> None:
    assert one(f"[a]\nurl = http://h/\nverify_peer = {word}\n").verify_peer == value


@pytest.mark.parametrize(
    ("name", "value"),
    [("default", 0), ("TLSv1", 1), ("sslv2", 2), ("SSLv3", 3), ("TLSv1.0", 4), ("tlsv1.1", 5)],
)
def test_tlsversion_names(name: str, value: int) -> None:
    assert one(f"[a]\nurl = http://h/\ntlsversion = {name}\n").tlsversion == value


def test_defaults_come_from_the_final_http_client_values() -> None:
    d = HttpClientSettings(
        maxdatasize=20, useragent="ua", authmethod=2, keep_connections=1, verify_peer=0,
        client_cert="/c", connection_timeout=5, httpredirect=1, tlsversion=4,
    )  # fmt: skip
    c = one("[a]\nurl = http://h/\n", d)
    assert (c.maxdatasize, c.useragent, c.authmethod, c.keep_connections, c.verify_peer) == (
        20, "ua", 2, 1, 0,
    )  # fmt: skip
    assert (c.client_cert, c.timeout, c.httpredirect, c.tlsversion) == ("/c", 5, 1, 4)


def test_empty_quoted_string_is_null() -> None:
    c = one('[a]\nurl = http://h/\nclient_cert = ""\nuseragent = ""\nfailover = ""\n',
            HttpClientSettings(client_cert="/c"))  # fmt: skip
    assert (c.client_cert, c.useragent, c.failover) == (None, "", None)


def test_proxy_port_zero_disables_the_proxy() -> None:
    c = one("[a]\nurl = http://h/\nhttpproxy = p\nhttpproxyport = 0\n")
    assert (c.http_proxy, c.http_proxy_port) == (None, 0)
    c = one("[a]\nurl = http://h/\nhttpproxyport = 8080\n", HttpClientSettings(httpproxy="p"))
    assert c.http_proxy is None  # the default proxy is taken only with a default port > 0
    c = one("[a]\nurl = http://h/\n", HttpClientSettings(httpproxy="p", httpproxyport=1080))
    assert (c.http_proxy, c.http_proxy_port) == ("p", 1080)
    c = one("[a]\nurl = http://h/\nhttpproxyport = 0\n", HttpClientSettings(httpproxy="p", httpproxyport=1080))  # fmt: skip
    assert c.http_proxy is None


def test_lexer_details() -> None:
    c = one('[ a ]   # comment\nurl = "http://h/x y"\nuseragent = "a\\"b\\tc"\n')
    assert (c.name, c.url, c.useragent) == ("a", "h/x y", 'a"b\tc')
    c = one('[a]\nurl = http://h/\\ x\nuseragent = ab"c"\n')  # escapes and quotes inside tokens
    assert (c.url, c.useragent) == ("h/ x", 'ab"c"')
    assert (
        one("[a]\nurl = http://h/\nuseragent = \\q\n").useragent == "\\q"
    )  # a leading one is kept
    c = one('[a]\nurl = "http://h/\\\nmore"\n')  # backslash-newline continues a string
    assert c.url == "h/more"
    c = one("[a]\n# a comment ending in a backslash \\\ntimeout = 9\nurl = http://h/\n")
    assert c.timeout == 0  # ...swallows the next line, as in Kamailio
    c = one('[a]\nurl = http://h/\ntimeout = "12"\nmaxdatasize = "+3"\n')
    assert (c.timeout, c.maxdatasize) == (12, 3)
    c = one("[a]\nurl = http://h/\ntimeout = 4\ntimeout = 6\n")
    assert c.timeout == 6  # a repeated option: the last one
    assert one("[a]\nurl = http://h/").url == "h/"  # no final newline
    assert one("[a]\nurl = http://h/\ntimeout =").timeout == 0  # Kamailio only logs this


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("url = http://h/\n", 1, "before the first"),
        ("\n\n[a]\nurl = http://h/\nbogus = 1\n", 5, "unsupported option"),
        ("[a]\nhttp_redirect = 1\n", 2, "unsupported option"),
        ("[a]\ntimeout = 5\n", 1, "no url"),
        ('[a]\nurl = ""\n', 1, "no url"),
        ("[a]\nurl = http:/h\n", 1, "schema://"),
        ("[a]\nurl = http://\n", 1, "schema://"),
        ("[a]\nurl = http://h/\nverify_peer = maybe\n", 3, "boolean"),
        ("[a]\nurl = http://h/\ntlsversion = TLSv1.3\n", 3, "tlsversion"),
        ("[a]\nurl = http://h/\ntimeout = 5s\n", 3, "integer"),
        ("[a]\nurl = http://h/\ntimeout = -5\n", 3, "invalid value"),
        ('[a]\nurl = http://h/\ntimeout = "-5"\n', 3, "negative"),
        ('[a]\nurl = http://h/\ntimeout = "99999999999"\n', 3, "range"),
        ("[a]\nurl = http://h/\ntimeout = 5.0\n", 3, "end of line"),
        ("[a]\nurl = http://h/{x}\n", 2, "invalid character"),
        ("[a]\nurl = http://h/ x\n", 2, "end of line"),
        ("[a]\nurl\n", 2, "'=' expected"),
        ("[a]\nurl =\n", 2, "value missing"),
        ('[a]\nurl = "http://h/\n', 2, "quote"),
        ("[a-b]\nurl = http://h/\n", 1, "']' expected"),
        ("[]\n", 1, "connection name"),
        ("[a] x\n", 1, "end of line"),
        ("[a]\nurl = http://h/\n= x\n", 3, "syntax error"),
        ("[a]\nurl = http://h/\n[a]\nurl = http://h/\n", 3, "duplicate"),
        ("[a]\nurl = " + "x" * 513 + "\n", 2, "512"),
        ("[a]\nurl = http://h/\nuseragent = a\\q\n", 3, "escape"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_connections_file(text, filename="c.cfg", defaults=DEFAULTS)
    assert err.value.file == "c.cfg" and err.value.line == line, str(err.value)
    assert words in str(err.value)


def test_a_bad_password_is_not_printed() -> None:
    with pytest.raises(ConfigError) as err:
        parse_connections_file("[a]\nurl = http://h/\npassword = se{cret\n", filename="f", defaults=DEFAULTS)  # fmt: skip
    assert "cret" not in str(err.value)


def test_a_512_character_token_is_fine() -> None:
    assert len(one("[a]\nurl = http://" + "h" * 505 + "\n").url) == 505


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=100),
        st.lists(
            st.sampled_from(
                ["[", "]", "a", "url", " = ", "=", "http://h/", '"', "\\", "#", "\n", " ",
                 "timeout", "5", "-", "yes", "verify_peer", "tlsversion", "TLSv1", ";", "é"]
            ),
            max_size=30,
        ).map("".join),
    )
)  # fmt: skip
def test_fuzz_only_config_errors(text: str) -> None:
    try:
        conns = parse_connections_file(text, filename="f", defaults=DEFAULTS)
    except ConfigError as err:
        assert err.file == "f"
        return
    assert all(c.source == "config_file" and "://" not in c.url[:0] for c in conns)
