"""The s.* transformations print what Kamailio 5.6.3 prints.

Every expected value below was printed by the real Kamailio 5.6.3 (xlog in
event_route[core:worker-one-init], `$var(v)` set to the input) and agrees with the C
(pv_trans.c tr_eval_string, strutils.c, basex.h). An empty expectation where the C
returns -1 is Kamailio printing nothing for a failed transformation.
"""

from __future__ import annotations

import pytest

from workers.pv import expand

SPECIALS = "Hello World /&=+$,;?:@[]!~*'()_.-\"\\"
BINARY = bytes.fromhex("41ff00e9")


def tr(chain: str, value: object) -> str:
    """`$(var(v){chain})` with $var(v) = value."""
    return expand(f"$(var(v){chain})", {"$var(v)": value})


@pytest.mark.parametrize(
    ("chain", "value", "expected"),
    [
        # escape_param: keeps & / : [ ] + $, lower-case hex
        ("{s.escape.param}", SPECIALS, "Hello%20World%20/&%3d+$%2c%3b%3f:%40[]!~*'()_.-%22%5c"),
        # escape_user: keeps & = + $ , ; ? but escapes / : [ ]
        ("{s.escape.user}", SPECIALS, "Hello%20World%20%2f&=+$,;?%3a%40%5b%5d!~*'()_.-%22%5c"),
        ("{s.escape.common}", SPECIALS, "Hello World /&=+$,;?:@[]!~*\\'()_.-\\\"\\\\"),
        # a byte outside 32..126 makes escape_param/escape_user fail: nothing printed
        ("{s.escape.param}", "MiXeD éÉ", ""),
        ("{s.escape.user}", "MiXeD éÉ", ""),
        ("{s.escape.param}", BINARY, ""),
        ("{s.unescape.user}", "%41%4a%7e", "AJ~"),
        ("{s.unescape.param}", "a+b%20c", "a+b c"),
        ("{s.unescape.user}", "%zz", ""),  # not hex
        ("{s.unescape.user}", "%0a", ""),  # not printable
        ("{s.unescape.user}", "%e9x", ""),  # not ASCII
        ("{s.unescape.user}", "a%4", ""),  # cut short
        # unescape_common keeps the backslash of sequences it does not know (\n here)
        (
            "{s.unescape.common}{s.encode.hexa}",
            "a\\nb\\'c\\\\d\\\"e\\0f\\",
            "615c6e6227635c64226500665c",
        ),
        ("{s.escape.common}", "a\\nb\\'c", "a\\\\nb\\\\\\'c"),
        ("{s.escape.common}{s.encode.hexa}", BINARY, "41ff5c30e9"),
        ("{s.encode.base64}", SPECIALS, "SGVsbG8gV29ybGQgLyY9KyQsOz86QFtdIX4qJygpXy4tIlw="),
        ("{s.encode.base64}", BINARY, "Qf8A6Q=="),
        ("{s.decode.base64}", "aGVsbG8=", "hello"),
        ("{s.decode.base64}", "aGk=", "hi"),
        ("{s.decode.base64}", "aGVsbG8", ""),  # length not a multiple of 4
        ("{s.decode.base64}{s.encode.hexa}", "!!!!", "ffffff"),  # no alphabet check
        ("{s.decode.base64}{s.encode.hexa}", "a=bc", "6ff6dc"),
        ("{s.decode.base64}{s.encode.hexa}", "aGVs bG8=", ""),
        ("{s.encode.hexa}", "Hello", "48656c6c6f"),
        ("{s.decode.hexa}{s.encode.hexa}", "41ff00e9", "41ff00e9"),
        ("{s.decode.hexa}{s.len}", "41ff00e9", "4"),
        ("{s.decode.hexa}", "xyz0", ""),
        ("{s.substr,0,3}{s.decode.hexa}", "41ff", "A"),  # odd length: last digit ignored
        ("{s.md5}", SPECIALS, "a1f535bdff40cd05920855a05705b440"),
        ("{s.md5}", "", "d41d8cd98f00b204e9800998ecf8427e"),
        ("{s.md5}", 3, "eccbc87e4b5ce2fe28308fd9f2a7baf3"),
        ("{s.sha256}", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("{s.tolower}", "MiXeD éÉ", "mixed éÉ"),  # ASCII only
        ("{s.toupper}", "MiXeD éÉ", "MIXED éÉ"),
        ("{s.len}", "MiXeD éÉ", "10"),  # bytes, not characters
        ("{s.len}", 3, "1"),
        ("{s.len}", "", "0"),
        ("{s.trim}{s.encode.hexa}", " \t\r\n x y \r\n\t ", "782079"),
        ("{s.rtrim}{s.encode.hexa}", " \t\r\n x y \r\n\t ", "20090d0a20782079"),
        ("{s.ltrim}{s.encode.hexa}", " \t\r\n x y \r\n\t ", "782079200d0a0920"),
        # s.int keeps the text as written when it is a C int; otherwise it fails
        ("{s.int}", "-5", "-5"),
        ("{s.int}", "+5", "+5"),
        ("{s.int}", "007", "007"),
        ("{s.int}", "-", "-"),
        ("{s.int}", "2147483647", "2147483647"),
        ("{s.int}", "-2147483648", "-2147483648"),
        ("{s.int}", "2147483648", ""),
        ("{s.int}", "12abc", ""),
        ("{s.int}", " 12", ""),
        ("{s.int}", "", ""),
        ("{s.int}", 3, "3"),
        ("{s.substr,1,2}", "abcdef", "bc"),
        ("{s.substr,1,0}", "abcdef", "bcdef"),
        ("{s.substr,4,5}", "abcdef", "ef"),
        ("{s.substr,6,1}", "abcdef", ""),
        ("{s.substr,-2,1}", "abcdef", "e"),
        ("{s.substr,-2,0}", "abcdef", "ef"),
        ("{s.substr,-7,1}", "abcdef", ""),
        ("{s.substr,-6,1}", "abcdef", "a"),
        ("{s.substr, 0 , 3 }", "abcdef", "abc"),
        ("{s.substr, - 1,2}", "abc", "c"),
        ("{s.substr,+1,1}", "abc", "b"),
        ("{s.substr,-,1}", "abc", "a"),  # a sign without digits is 0
        ("{s.substr,0,1}", "", ""),
        ("{s.select,0,,}", "a,b,,c", "a"),
        ("{s.select,1,,}", "a,b,,c", "b"),
        ("{s.select,2,,}", "a,b,,c", ""),
        ("{s.select,3,,}", "a,b,,c", "c"),
        ("{s.select,4,,}", "a,b,,c", ""),
        ("{s.select,-1,,}", "a,b,,c", "c"),
        ("{s.select,-4,,}", "a,b,,c", "a"),
        ("{s.select,-5,,}", "a,b,,c", ""),
        ("{s.select,0,;}", "abcdef", "abcdef"),
        ("{s.select,1,;}", "abcdef", ""),
        ("{s.select,1,\t}", "a b\tc", "c"),
        ("{s.select,1, }", "a b\tc", "b\tc"),
        ("{s.select,1,\\t}", "a b\tc", "c"),
        ("{s.select,1,}}", "a}b{c", "b{c"),
        ("{s.strip,2}", "abcdef", "cdef"),
        ("{s.strip,0}", "abcdef", "abcdef"),
        ("{s.strip,-1}", "abcdef", "abcdef"),
        ("{s.strip,6}", "abcdef", ""),
        ("{s.striptail,2}", "abcdef", "abcd"),
        ("{s.striptail,9}", "abcdef", ""),
        # chains apply left to right, with blanks allowed between them
        ("{s.toupper} {s.substr,1,2}", "abcdef", "BC"),
        ("{s.ToUpper}", "abcdef", "ABCDEF"),
        ("{s. len }", "abc", "3"),
        ("{s.len}\t{s.len} ", "abc", "1"),
        ("{s.encode.hexa}{s.decode.hexa}", "abc", "abc"),
    ],
)
def test_transformation_prints_what_kamailio_prints(
    chain: str, value: object, expected: str
) -> None:
    assert tr(chain, value) == expected


def test_empty_value_through_each_transformation() -> None:
    got = [
        tr(chain, "")
        for chain in (
            "{s.len}",
            "{s.encode.base64}",
            "{s.decode.base64}",
            "{s.escape.common}",
            "{s.select,0,,}",
            "{s.int}",
        )
    ]
    assert got == ["0", "", "", "", "", ""]


def test_numeric_parameters_can_be_pseudo_variables_holding_integers() -> None:
    pv = {"$var(v)": "abcdef", "$var(n)": 3, "$var(t)": "3"}
    assert expand("$(var(v){s.substr,0,$var(n)})", pv) == "abc"
    assert expand("$(var(v){s.strip,$var(n)})", pv) == "def"
    # a text "3" is not an integer to Kamailio: the transformation fails
    assert expand("$(var(v){s.substr,0,$var(t)})", pv) == ""
    # a never-set $var is the integer 0
    assert expand("$(var(v){s.strip,$var(unset)})", pv) == "abcdef"
    assert expand("$(var(v){s.strip,$(var(v){s.len})})", pv) == ""


def test_binary_results_survive_as_bytes_of_the_output() -> None:
    out = expand("$(var(v){s.decode.hexa})", {"$var(v)": "abcdef"})
    assert out.encode("utf-8", "surrogateescape") == b"\xab\xcd\xef"
    assert tr("{s.encode.hexa}", b"\x00\xff") == "00ff"
