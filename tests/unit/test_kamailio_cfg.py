"""modparams of a real-looking kamailio.cfg: what is read, and what is reported, never guessed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.errors import ConfigError
from dispatcher.kamailio_cfg import read_modparams

KAMAILIO_CFG = r"""
#!KAMAILIO
#
# A routing script as deployments write them.
#!define WITH_HTTP
#!define API_URL "http://127.0.0.1:8080/api"
#!define HTTP_TIMEOUT 7
#!trydef HTTP_TIMEOUT 99
!!define UA 'kamailio-test'
#!substdef_not_a_directive_here

loadmodule "tm.so"
loadmodule "http_client.so"   # the module itself

# ----- http_client params -----
# modparam("http_client", "maxdatasize", 1)
/* modparam("http_client", "maxdatasize", 2)
   modparam("http_client", "maxdatasize", 3) */
modparam("http_client", "maxdatasize", 300)   // trailing comment
modparam("http_client", "useragent", UA)
modparam("http_client", "httpcon",
         "api=>http://127.0.0.1:8080/api;timeout=2;useragent=\"a b\"")
modparam("http_client", "connection_timeout", HTTP_TIMEOUT)
modparam("http_client",
    "httpcon", "paren=>http://h/x(1);failover=api")   /* parentheses inside a string */
modparam("http_client|tm", "keep_connections", 1)
#!ifdef WITH_HTTP
modparam("http_client", "verify_host", 0)
#!else
modparam("http_client", "verify_host", 1)
#!endif
#!ifndef WITH_HTTP
modparam("http_client", "verify_peer", 0)
#!endif
modparam("http_async_client", "workers", 2)
modparam("http_async_client", "connection_timeout", -0)
modparam("tm", "fr_timer", 3000)
modparam("tm", "fr_inv_timer", UNDEFINED_ELSEWHERE)

request_route {
    http_client_query("http://h/", "$var(r)");   # a string with modparam( inside: "modparam("
}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_real_looking_cfg(tmp_path: Path) -> None:
    params = read_modparams(write(tmp_path, "kamailio.cfg", KAMAILIO_CFG))
    assert [(p.module, p.name, p.value) for p in params] == [
        ("http_client", "maxdatasize", 300),
        ("http_client", "useragent", "kamailio-test"),
        ("http_client", "httpcon", 'api=>http://127.0.0.1:8080/api;timeout=2;useragent="a b"'),
        ("http_client", "connection_timeout", 7),
        ("http_client", "httpcon", "paren=>http://h/x(1);failover=api"),
        ("http_client", "keep_connections", 1),
        ("http_client", "verify_host", 0),
        ("http_async_client", "workers", 2),
        ("http_async_client", "connection_timeout", 0),
    ]
    assert [p.line for p in params][:5] == [19, 20, 21, 23, 24]
    assert params.problems == []


@pytest.mark.parametrize(
    ("text", "value", "words"),
    [
        ('modparam("http_client", "httpcon", UNDEFINED_NAME)', "UNDEFINED_NAME", "command line"),
        ('modparam("http_client", "maxdatasize", 1 + 2)', "1 + 2", "not a literal"),
        ('modparam("http_client", "maxdatasize", "a" "b")', '"a" "b"', "not a literal"),
        ('#!define X\nmodparam("http_client", "maxdatasize", X)', "X", "without a value"),
        (
            '#!define X $var(x)\nmodparam("http_client", "useragent", X)',
            "$var(x)",
            "single literal",
        ),
    ],
)
def test_values_it_cannot_resolve_are_reported(
    tmp_path: Path, text: str, value: str, words: str
) -> None:
    cfg = write(tmp_path, "k.cfg", "# first line\n" + text + "\n")
    with pytest.raises(ConfigError) as err:
        read_modparams(cfg)
    assert (err.value.file, err.value.value) == (cfg, value)
    assert err.value.line == text.count("\n") + 2
    assert words in str(err.value)


def test_modparams_under_an_unknown_ifdef_are_reported(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        "k.cfg",
        """\
        #!ifdef WITH_CMDLINE_ONLY
        modparam("http_client", "maxdatasize", 5)
        #!endif
        #!ifexp KAMAILIO_VERSION >= 050600
        modparam("http_async_client", "tls_version", 6)
        #!endif
        #!ifdef WITH_CMDLINE_ONLY
        modparam("tm", "fr_timer", 1)
        #!endif
        """,
    )
    result = read_modparams(cfg, strict=False)
    assert result.entries == []
    assert [(p.line, "ifdef" in p.message) for p in result.problems] == [(2, True), (5, True)]
    with pytest.raises(ConfigError, match=r"and 1 more"):
        read_modparams(cfg)


def test_includes_are_followed(tmp_path: Path) -> None:
    write(tmp_path, "http.cfg", 'modparam("http_client", "maxdatasize", 42)\n')
    cfg = write(
        tmp_path,
        "k.cfg",
        """\
        include_file "http.cfg"
        import_file "missing-is-fine.cfg"
        modparam("http_client", "httpcon", "a=>http://h/")
        """,
    )
    params = read_modparams(cfg)
    assert [(Path(p.file).name, p.name) for p in params] == [
        ("http.cfg", "maxdatasize"),
        ("k.cfg", "httpcon"),
    ]
    cfg = write(tmp_path, "k2.cfg", 'include_file "missing.cfg"\n')
    with pytest.raises(ConfigError, match="not found"):
        read_modparams(cfg)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_modparams(str(tmp_path / "nope.cfg"))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(
            ['modparam(', '"http_client"', '"httpcon"', '"a=>http://h/"', ",", ")", "(", "\n",
             "#!define X 1\n", "#!ifdef X\n", "#!endif\n", "#!else\n", "X", "5", "/*", "*/",
             "//", "#", "'", '"', "\\", "include_file ", '"k.cfg"', " "]
        ),
        max_size=30,
    ).map("".join)
)  # fmt: skip
def test_fuzz_only_config_errors(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "k.cfg"  # an include of itself is cut by the depth limit
    cfg.write_text(text)
    try:
        result = read_modparams(str(cfg), strict=False)
    except ConfigError:
        raise AssertionError("strict=False must not raise") from None
    for problem in result.problems:
        assert isinstance(problem, ConfigError) and problem.file
