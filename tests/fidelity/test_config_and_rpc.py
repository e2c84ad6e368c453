"""httpcon strings and `httpclient.listcon`: what Kamailio 5.6 and sipcurl make of the
same kamailio.cfg.

Start-up verdicts are compared with `kamailio -c` (httpcon is parsed while the config is
read); what each accepted string became is compared through listcon, the one place
Kamailio shows it.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from dispatcher.config import Settings
from dispatcher.errors import ConfigError
from dispatcher.rpc import PASSWORD_MASK, Rpc
from dispatcher.settings_loader import load_settings
from tests.fidelity.kamailio import Kamailio, config_accepted, write_cfg

# One httpcon modparam per string, in order.
VERDICTS: dict[str, list[str]] = {
    "space-between-=-and->": ["a = > http://h/p"],
    "one-slash": ["a=>http:/h"],
    "no-scheme-separator": ["a=>h"],
    "no-arrow": ["noarrow"],
    "empty": [""],
    "trailing-semicolon-after-param": ["a=>http://h/p;timeout=1;"],
    "space-before-param-name": ["a=>http://h/p; timeout=1"],
    "lone-trailing-semicolon": ["a=>http://h/p;"],
    "leading-spaces": ["  a=>http://h"],
    "tab-before-arrow": ["a\t=>http://h"],
    "other-scheme": ["a=>ftp://h/p"],
    "empty-scheme": ["a=>://h"],
    "empty-base-url": ["a=>http://"],
    "credentials": ["a=>http://u:p@h/p"],
    "at-inside-params": ["a=>http://h/p;useragent=a@b"],
    "bad-int-values": ["a=>http://h/p;timeout=abc;maxdatasize=x;verify_peer=2;httpredirect=5"],
    "tlsversion-out-of-range": ["a=>http://h/p;tlsversion=99"],
    "unknown-param-without-value": ["a=>http://h/p;bogus"],
    "param-without-name": ["a=>http://h/p;=1"],
    "spaces-around-param-=": ["a=>http://h/p;timeout = 1"],
    "quoted-values": ["a=>http://h/p;useragent=\"x;y\";cipher_suites='A:B'"],
    "self-failover": ["a=>http://h/p;failover=a"],
    "duplicate-name": ["a=>http://h/1", "a=>http://h/2"],
    "names-differing-in-case": ["a=>http://h/1", "A=>http://h/2"],
}


def _sipcurl_accepts(cfg: Path) -> bool:
    """Refusal must be a ConfigError naming the problem, never another exception."""
    try:
        load_settings(None, kamailio_cfg=str(cfg))
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_same_start_up_verdict(name: str, tmp_path: Path) -> None:
    modparams: list[tuple[str, Any]] = [("httpcon", v) for v in VERDICTS[name]]
    theirs, log = config_accepted(modparams)
    cfg = tmp_path / "kamailio.cfg"
    write_cfg(cfg, 5060, tmp_path / "ctl.sock", modparams, [])
    assert _sipcurl_accepts(cfg) == theirs, (
        f"{name}: Kamailio {'accepts' if theirs else 'refuses'}: {log}"
    )


# Accepted strings without credentials (listcon with credentials crashes 5.6.3, below).
LISTED = [
    "c0=>http://127.0.0.1:9/p;timeout=3;failover=c1",
    "c1=>https://h.example:8443/x/y?z=1;useragent=ab",
    "c2=>http://h/p;keep_connections=1",
    "c3=>http://h/p;",
    "  c4=>http://h",
    "c5\t=>http://h",
    "c6=>ftp://h/p",
    "c7=>://h",
    "c8=>http://",
    "c9=>http://h/p;timeout=abc",
    "c10=>http://h/p;timeout = 7",
    "c11=>http://h/p;timeout=0",
    "c12=>http://h/p;failover=c12",
    'c13=>http://h/p;useragent="x;y",timeout=9',
    "c14=>http://h/p;timeout=2;timeout=5",
    "C14=>http://h/case",
    "c15=>http://h/p path with spaces ",
]


def _kamcmd_listcon(text: str) -> list[dict[str, str]]:
    """kamcmd's printout of listcon's struct: one CONNECTION block per connection."""
    out: list[dict[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.strip("\t").partition(":")
        value = value.removeprefix(" ")
        if line.strip() == "CONNECTION: {":
            out.append({})
        elif sep and out and key.isupper():
            out[-1][key] = "" if value == "<null string>" else value
    return out


class _Service:
    """What Rpc reads of the dispatcher for listcon: its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def _sipcurl_listcon(cfg: Path) -> list[dict[str, Any]]:
    reply = Rpc(_Service(load_settings(None, kamailio_cfg=str(cfg)))).listcon([])  # type: ignore[arg-type]
    return list(reply["result"])


@pytest.fixture(scope="module")
def both_listcons() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    kamailio = Kamailio([("httpcon", v) for v in LISTED], [])
    try:
        done = kamailio.rpc("httpclient.listcon")
        assert done.returncode == 0, done.stderr + kamailio.output()
        return _kamcmd_listcon(done.stdout), _sipcurl_listcon(kamailio.cfg)
    finally:
        kamailio.stop()


def test_listcon_same_order(
    both_listcons: tuple[list[dict[str, str]], list[dict[str, Any]]],
) -> None:
    """Kamailio lists in the reverse of the modparams' order, and so must sipcurl."""
    theirs, ours = both_listcons
    assert len(theirs) == len(LISTED)
    assert [c["NAME"] for c in ours] == [c["NAME"] for c in theirs]


@pytest.mark.parametrize("index", range(len(LISTED)))
def test_listcon_shows_what_kamailio_parsed(
    both_listcons: tuple[list[dict[str, str]], list[dict[str, Any]]], index: int
) -> None:
    """Name, scheme, base URL, user, password, failover and timeout of each httpcon; sipcurl
    adds KEEP_CONNECTIONS and SOURCE."""
    theirs, ours = both_listcons
    name = LISTED[index].split("=>")[0].strip()
    fields = ("NAME", "SCHEMA", "URI", "USERNAME", "PASSWORD", "FAILOVER", "TIMEOUT")
    mine = next(c for c in ours if c["NAME"] == name)
    kam = next(c for c in theirs if c["NAME"] == name)
    if "timeout=0" in LISTED[index]:
        # On purpose (DIFFERENCES.md): 5.6.3 keeps an explicit 0, i.e. no timeout at all;
        # Kamailio 5.8's fix-up, which comes with the timeout_mode SPEC asks for, and
        # sipcurl give the connection the global timeout.
        assert kam["TIMEOUT"] == "0" and int(mine["TIMEOUT"]) > 0
        fields = tuple(f for f in fields if f != "TIMEOUT")
    assert {f: str(mine[f]) for f in fields} == {f: kam[f] for f in fields}


@pytest.mark.parametrize(
    "modparams",
    [
        pytest.param(["cred=>http://alice:s3cret@h/p"], id="credentials-listed-first"),
        pytest.param(
            ["cred=>http://alice:s3cret@h/p", "plain=>http://h/p"], id="credentials-listed-second"
        ),
        pytest.param(["useronly=>http://alice@h/p"], id="user-without-password"),
        pytest.param(["atbug=>http://h/p;useragent=a@b"], id="at-inside-params"),
    ],
)
def test_listcon_with_credentials_differs_on_purpose(modparams: list[str]) -> None:
    """5.6.3's listcon cannot print credentials: with a password it answers `500 Internal
    error set structure` or, when another connection follows, kills the server; without
    one it prints USERNAME empty. sipcurl lists them, the password masked (DIFFERENCES.md),
    so only sipcurl's side is asserted; Kamailio's answer goes into the message."""
    kamailio = Kamailio([("httpcon", v) for v in modparams], [])
    try:
        theirs = kamailio.rpc("httpclient.listcon")
        crashed = not kamailio.alive() or kamailio.rpc("core.uptime").returncode != 0
        ours = {c["NAME"]: c for c in _sipcurl_listcon(kamailio.cfg)}
    finally:
        kamailio.stop()
    seen = f"Kamailio: rc {theirs.returncode} {theirs.stdout!r} {theirs.stderr!r} crashed={crashed}"
    expected = {
        "cred": ("alice", PASSWORD_MASK, "h/p"),
        "plain": ("", "", "h/p"),
        "useronly": ("alice", "", "h/p"),
        "atbug": ("h/p;useragent=a", "", "b"),
    }
    assert set(ours) == {v.split("=>")[0] for v in modparams}, seen
    for name, conn in ours.items():
        assert (conn["USERNAME"], conn["PASSWORD"], conn["URI"]) == expected[name], seen
        assert "s3cret" not in str(conn), seen


def test_listcon_without_connections_is_the_same_fault(tmp_path: Path) -> None:
    kamailio = Kamailio([], [])
    try:
        theirs = kamailio.rpc("httpclient.listcon")
    finally:
        kamailio.stop()
    with tempfile.TemporaryDirectory() as folder:
        cfg = Path(folder, "kamailio.cfg")
        write_cfg(cfg, 5060, Path(folder, "ctl.sock"), [], [])
        ours = Rpc(_Service(load_settings(None, kamailio_cfg=str(cfg)))).listcon([])  # type: ignore[arg-type]
    assert ours == {"fault": {"code": 500, "message": "No Connection Definitions"}}
    assert "500" in theirs.stdout + theirs.stderr
    assert "No Connection Definitions" in theirs.stdout + theirs.stderr


CONNECTION_FILES = {
    "order-and-keys": "[f1]\nurl = http://h/1\n[f2]\nurl = http://h/2\ntimeout = 7\n"
    "[f3]\nurl = https://h/3\nfailover = f1\n",
    "bool-forms-and-comments": "# leading comment\n[f1]\nurl = http://h/1  # trailing\n"
    "httpredirect = enabled\nverify_peer = OFF\nkeepconnections = 1\n",
    "quoted": '[f1]\nurl = "http://h/a b"\nuseragent = "x # y"\n',
}


@pytest.mark.parametrize("name", sorted(CONNECTION_FILES))
def test_connections_file_listed_as_kamailio_does(name: str, tmp_path: Path) -> None:
    """config_file connections come after the httpcon ones in Kamailio's list, in file order."""
    conns = tmp_path / "connections.ini"
    conns.write_text(CONNECTION_FILES[name])
    kamailio = Kamailio([("httpcon", "h1=>http://h/h1"), ("config_file", str(conns))], [])
    try:
        done = kamailio.rpc("httpclient.listcon")
        theirs = _kamcmd_listcon(done.stdout)
        ours = _sipcurl_listcon(kamailio.cfg)
    finally:
        kamailio.stop()
    fields = ("NAME", "SCHEMA", "URI", "USERNAME", "PASSWORD", "FAILOVER", "TIMEOUT")
    assert [{f: str(c[f]) for f in fields} for c in ours] == [
        {f: c[f] for f in fields} for c in theirs
    ]


BAD_CONNECTION_FILES = {
    # Kamailio 5.6.3 logs an error and starts with a partial, order-dependent set:
    "duplicate-of-an-httpcon": (
        "[f1]\nurl = http://h/1\n[h1]\nurl = http://h/dup\n[f3]\nurl = http://h/3\n",
        (3,),
    ),
    "duplicate-in-the-file": (
        "[f1]\nurl = http://h/1\n[f2]\nurl = http://h/2\n[f1]\nurl = http://h/1b\n",
        (5,),
    ),
    # ... and keeps a connection with an empty scheme and URL and timeout 0:
    "url-without-scheme": (
        "[f1]\nurl = http://h/1\n[f2]\nurl = nourl\n[f3]\nurl = http://h/3\n",
        (3, 4),  # the section's line or the option's
    ),
    # ... and dies at start-up without a word:
    "section-without-url": ("[f1]\nurl = http://h/1\n[f2]\ntimeout = 3\n", (3,)),
}


@pytest.mark.parametrize("name", sorted(BAD_CONNECTION_FILES))
def test_bad_connections_file_stops_sipcurl_where_kamailio_limps_on(
    name: str, tmp_path: Path
) -> None:
    """A difference on purpose (DIFFERENCES.md): a half-loaded connection list is a silent
    outage; sipcurl refuses to start, naming the file and line."""
    text, lines = BAD_CONNECTION_FILES[name]
    conns = tmp_path / "connections.ini"
    conns.write_text(text)
    cfg = tmp_path / "kamailio.cfg"
    write_cfg(
        cfg,
        5060,
        tmp_path / "ctl.sock",
        [("httpcon", "h1=>http://h/h1"), ("config_file", str(conns))],
        [],
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(None, kamailio_cfg=str(cfg))
    assert str(conns) in str(refused.value)
    named = re.findall(re.escape(str(conns)) + r":(\d+)", str(refused.value))
    assert named and int(named[0]) in lines, str(refused.value)
