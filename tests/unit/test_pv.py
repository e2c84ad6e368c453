"""Pseudo-variable expansion: Kamailio's grammar, its null printing, and CR/LF safety.

Expected outputs and rejections were checked against Kamailio 5.6.3 (xlog formats in
event_route[core:worker-one-init]); where sipcurl deliberately differs it says so.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.errors import PvError
from workers.pv import compile_template, expand

PV = {
    "$ru": "sip:alice@example.com",
    "$fU": "alice",
    "$ci": "abc@host",
    "$var(x)": "abc",
    "$var(n)": 7,
    "$avp(x)": "av",
    "$hdr(X-Foo)": "foo-value",
    "$var(raw)": b"caf\xc3\xa9",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("/u/$ru", "/u/sip:alice@example.com"),
        ("$fU@$ci", "alice@abc@host"),
        ("$var(x)", "abc"),
        ("n=$var(n)", "n=7"),
        ("$hdr(X-Foo)", "foo-value"),
        ("$(var(x))", "abc"),
        ("$(var(x){s.toupper})", "ABC"),
        ("$(hdr(X-Foo){s.len})", "9"),
        ("$(ru{s.escape.param})", "sip:alice%40example.com"),
        ("$var(raw)", "café"),
        # a variable ends where Kamailio's name ends: after `)` or at a non-name character
        ("$avp(x)abc", "avabc"),
        ("$var(x).x", "abc.x"),
        ("$var(x)(y)", "abc(y)"),
        ("$(var(x)){s.len}", "abc{s.len}"),
        ("$fU-$fU", "alice-alice"),
        ("$fU/x", "alice/x"),
        # $$ is a literal dollar
        ("$$", "$"),
        ("$($)", "$"),
        ("a$$b$$", "a$b$"),
        ("price: 5$$", "price: 5$"),
        # inner names nest parentheses and may hold anything else
        ("$var((x))", "0"),
        ("$var(a b)", "0"),
        ("", ""),
        ("no variables at all", "no variables at all"),
    ],
)
def test_forms(template: str, expected: str) -> None:
    assert expand(template, PV) == expected


def test_missing_values_print_as_kamailio_prints_a_null() -> None:
    got = expand("$avp(nope)|$hdr(X-None)|$ru|$var(nope)|$(var(nope))", {})
    assert got == "<null>|<null>|<null>|0|0"


def test_a_transformation_of_a_null_prints_nothing_but_an_unset_var_is_zero() -> None:
    assert expand("[$(avp(nope){s.len})][$(hdr(X){s.toupper})]", {}) == "[][]"
    # a never-set $var is the integer 0, so transformations see "0"
    assert expand("[$(var(nope){s.len})][$(var(nope){s.toupper})]", {}) == "[1][0]"


def test_none_in_the_map_is_missing() -> None:
    assert expand("$avp(x)/$var(x)", {"$avp(x)": None, "$var(x)": None}) == "<null>/0"


def test_an_index_zero_falls_back_to_the_plain_name() -> None:
    assert expand("$(avp(x)[0])", {"$avp(x)": "first"}) == "first"
    assert expand("$(avp(x)[1])", {"$avp(x)[1]": "second"}) == "second"
    assert expand("$(hdr(Via)[-1]{s.len})", {"$hdr(Via)[-1]": "abc"}) == "3"


@pytest.mark.parametrize(
    "template",
    [
        "a$",  # a lone $ at the end
        "$ x",
        "${s.len}",
        "$()",
        "$(var(x)",
        "$var(",
        "$var()",
        "$var",  # needs an inner name
        "$(var(x)x)",
        "$(var(x) {s.len})",
        "$(var(x){s.len)",
        "$(var(x){s.len}x)",
        "$(var(x){})",
        "$(var(x){s})",
        "$(var(x){s.})",
        "$(var(x){ s.len })",
        "$(var(x){s.nope})",
        "$(var(x){uri.user})",  # a class sipcurl does not implement
        "$(var(x){s.len,1})",
        "$(var(x){s.strip})",
        "$(var(x){s.substr,1})",
        "$(var(x){s.substr,1,-1})",
        "$(var(x){s.substr,1,2 3})",
        "$(var(x){s.substr,1,2,3})",
        "$(var(x){s.select,a,;})",
        "$(var(x){s.select,0})",
        "$(var(x){s.select,0,})",
        "$(var(x){s.select,0,\\q})",
        "$(var(x){s.select,0,é})",
        "$(avp(x)[1x])",
    ],
)
def test_malformed_expressions_raise_pv_error_naming_where(template: str) -> None:
    with pytest.raises(PvError) as caught:
        expand(template, PV)
    message = str(caught.value)
    assert "position" in message and "$" in message


def test_the_error_names_the_expression_and_its_position() -> None:
    with pytest.raises(
        PvError,
        match=r"'\$\(var\(x\)\{s\.nope\}\)' at position 4: unknown transformation s\.nope \(at position 12\)",
    ):
        expand("abc/$(var(x){s.nope})", PV)


def test_values_of_other_types_are_a_clear_error() -> None:
    with pytest.raises(PvError, match=r"\$var\(x\) is a list"):
        expand("$var(x)", {"$var(x)": [1, 2]})
    with pytest.raises(PvError, match="map"):
        expand("$var(x)", ["not", "a", "map"])  # type: ignore[arg-type]
    with pytest.raises(PvError, match="text"):
        expand(b"$var(x)", PV)  # type: ignore[arg-type]


def test_crlf_through_a_value_is_refused_when_asked() -> None:
    pv = {"$var(h)": "a\r\nX-Injected: 1", "$var(b64)": "YQ0KYg=="}
    assert expand("X: $var(h)", pv) == "X: a\r\nX-Injected: 1"
    with pytest.raises(PvError, match=r"\$var\(h\)") as caught:
        expand("X: $var(h)", pv, reject_crlf_in_values=True)
    assert "CR/LF" in str(caught.value)
    # also when a transformation is what produces it
    with pytest.raises(PvError, match="b64"):
        expand("$(var(b64){s.decode.base64})", pv, reject_crlf_in_values=True)
    # the template's own CR/LF is not the value's
    assert expand("A: 1\r\nB: $var(x)", PV, reject_crlf_in_values=True) == "A: 1\r\nB: abc"
    # escaping first makes it safe
    assert expand("$(var(h){s.encode.base64})", pv, reject_crlf_in_values=True) == (
        "YQ0KWC1JbmplY3RlZDogMQ=="
    )


def test_a_nul_right_after_a_variable_ends_the_template_as_in_kamailio() -> None:
    assert expand("a$var(x)\0rest", PV) == "aabc"
    assert expand("a\0b$var(x)", PV) == "a\0babc"


def test_templates_are_parsed_once_and_plain_text_is_returned_as_is() -> None:
    plain = "http://127.0.0.1/no/variables"
    assert expand(plain, PV) is plain
    template = "http://h/$var(x)/$(var(n){s.len})"
    assert compile_template(template) is compile_template(template)
    compiled = compile_template(template)
    assert [compiled.expand({"$var(x)": str(i), "$var(n)": i}) for i in (1, 22)] == [
        "http://h/1/1",
        "http://h/22/2",
    ]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    template = "$(var(v){s.strip,$(var(v){s.strip," * 60 + "1" + "})})" * 60
    with pytest.raises(PvError, match="nested"):
        expand(template, PV)


_TEMPLATE_ALPHABET = st.sampled_from(
    list("$(){}[],.;:\\ \t\r\n\0-+0123456789sxvarhdé") + ["s.", "var", "avp"]
)
_VALUES = st.one_of(st.text(max_size=20), st.integers(), st.binary(max_size=20), st.none())
_KEYS = st.sampled_from(["$var(x)", "$avp(x)", "$var(n)", "$hdr(X)", "$ru", "$s"])


@settings(max_examples=400, deadline=None)
@given(
    template=st.one_of(
        st.text(max_size=40),
        st.lists(_TEMPLATE_ALPHABET, max_size=25).map("".join),
    ),
    pv=st.dictionaries(_KEYS, _VALUES, max_size=6),
    reject=st.booleans(),
)
def test_expand_never_raises_anything_but_pv_error(
    template: str, pv: dict[str, object], reject: bool
) -> None:
    try:
        out = expand(template, pv, reject_crlf_in_values=reject)
    except PvError:
        return
    assert isinstance(out, str)


_TR_CHAINS = st.lists(
    st.sampled_from(
        [
            "{s.escape.param}",
            "{s.unescape.param}",
            "{s.escape.user}",
            "{s.unescape.user}",
            "{s.escape.common}",
            "{s.unescape.common}",
            "{s.encode.base64}",
            "{s.decode.base64}",
            "{s.encode.hexa}",
            "{s.decode.hexa}",
            "{s.tolower}",
            "{s.toupper}",
            "{s.len}",
            "{s.md5}",
            "{s.trim}",
            "{s.int}",
            "{s.substr,1,2}",
            "{s.substr,-3,0}",
            "{s.select,1,,}",
            "{s.select,-1,\\n}",
            "{s.strip,2}",
            "{s.striptail,$var(n)}",
        ]
    ),
    min_size=1,
    max_size=4,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(chain=_TR_CHAINS, value=_VALUES, n=st.one_of(st.integers(-5, 5), st.text(max_size=3)))
def test_any_chain_on_any_value_expands(chain: str, value: object, n: object) -> None:
    out = expand(f"$(var(x){chain})", {"$var(x)": value, "$var(n)": n})
    assert isinstance(out, str)
