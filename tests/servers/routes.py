"""What the test server answers, by the first path segment (any suffix is allowed).

Each handler gets the `Exchange` and returns whether the connection stays open. A bad
argument (ValueError/IndexError) is answered with 400 before anything else is sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from tests.servers.wire import Exchange, Recorded, chunk, reason_phrase

Handler = Callable[[Exchange], bool]

TEXT = [("Content-Type", "text/plain")]
JSON = [("Content-Type", "application/json")]
STALL_MAX_S = 120.0  # /stall and /endless end at server stop, or at this bound
REALM = "test"
_NONCE_KEY = secrets.token_bytes(16)


def echo_payload(req: Recorded) -> dict[str, Any]:
    return {
        "method": req.method,
        "path": req.path,
        "headers": req.headers,
        "body": req.body.decode("latin-1"),
    }


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def echo(ex: Exchange) -> bool:
    return ex.respond(200, _json(echo_payload(ex.req)), JSON)


def close_after(ex: Exchange) -> bool:
    ex.respond(200, _json(echo_payload(ex.req)), JSON, close=True)
    return False


def status(ex: Exchange) -> bool:
    code = int(ex.segment(1))
    if not 100 <= code <= 999:
        raise ValueError(f"status {code} out of range")
    if code < 200:
        # An interim response cannot be the last one: the real answer follows it.
        ex.send_raw(f"HTTP/1.1 {code} {reason_phrase(code)}\r\n\r\n".encode())
        return ex.respond(200, b"after informational\n", TEXT)
    return ex.respond(code, f"status {code}\n".encode(), TEXT)


def text(ex: Exchange) -> bool:
    ctype = ex.arg("ctype", "text/plain")
    body = ex.arg("content").encode("latin-1")
    return ex.respond(ex.int_arg("status", 200), body, [("Content-Type", ctype)])


def body(ex: Exchange) -> bool:
    if "lines" in ex.query:
        data = b"".join(b"line%d\n" % i for i in range(1, ex.int_arg("lines", 0) + 1))
    else:
        size = ex.int_arg("size", 0)
        unit = b"ab\0cd" if ex.arg("nul") else b"0123456789"
        data = (unit * (size // len(unit) + 1))[:size]
    ctype = ex.arg("ctype", "application/octet-stream")
    return ex.respond(200, data, [("Content-Type", ctype)], chunked=bool(ex.arg("chunked")))


def redirect(ex: Exchange) -> bool:
    """`/redirect/<n>`: n+1 hops, the last one to /echo (so the last Location is /echo)."""
    hops = int(ex.segment(1, "1"))
    target = "/echo" if hops <= 0 else f"/redirect/{hops - 1}"
    return ex.respond(302, b"moved\n", [("Location", target), *TEXT])


def redirect_to(ex: Exchange) -> bool:
    code = ex.int_arg("code", 302)
    return ex.respond(code, b"moved\n", [("Location", ex.arg("url", "/echo")), *TEXT])


def loop(ex: Exchange) -> bool:
    return ex.respond(302, b"", [("Location", "/loop")])


def slow(ex: Exchange) -> bool:
    if ex.wait(ex.int_arg("ms", 1000) / 1000):
        return False
    return ex.respond(200, b"slow\n", TEXT)


def trickle(ex: Exchange) -> bool:
    count, gap_s = ex.int_arg("bytes", 10), ex.int_arg("ms", 100) / 1000
    ex.send_raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % count
    )
    for _ in range(count):
        if ex.wait(gap_s):
            return False
        ex.send_raw(b"x")
    return not ex.req.wants_close


def stall(ex: Exchange) -> bool:
    ex.wait(STALL_MAX_S)
    return False


def close(ex: Exchange) -> bool:
    return False


def reset(ex: Exchange) -> bool:
    # Linger on with a zero timeout: close() then sends RST instead of FIN.
    ex.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def cut(ex: Exchange) -> bool:
    sent = ex.int_arg("bytes", 10)
    ex.send_raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (sent + 1000) + b"x" * sent)
    return False


def endless(ex: Exchange) -> bool:
    ex.send_raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = chunk(b"y" * 4096)
    deadline = time.monotonic() + STALL_MAX_S
    while not ex.wait(0) and time.monotonic() < deadline:
        ex.send_raw(piece)  # OSError once the client goes away ends the connection
    return False


def headers(ex: Exchange) -> bool:
    pairs = []
    for item in ex.query.get("set", []):
        name, colon, value = item.partition(":")
        if not colon or not name:
            raise ValueError(f"set={item!r} is not Name:Value")
        pairs.append((name, value.strip()))
    return ex.respond(200, b"headers\n", pairs)


def auth(ex: Exchange) -> bool:
    scheme, user, password = ex.segment(1), ex.segment(2), ex.segment(3)
    if scheme not in ("basic", "digest") or len(ex.segments) < 4:
        raise ValueError("use /auth/basic/<user>/<pass> or /auth/digest/<user>/<pass>")
    given = ex.req.header("Authorization") or ""
    if scheme == "basic":
        token = base64.b64encode(f"{user}:{password}".encode("latin-1")).decode()
        accepted = given.partition(" ")[0].lower() == "basic" and given.partition(" ")[2] == token
        challenge = f'Basic realm="{REALM}"'
    else:
        accepted = given[:7].lower() == "digest " and _digest_ok(ex.req, given[7:], user, password)
        challenge = (
            f'Digest realm="{REALM}", qop="auth", nonce="{_new_nonce()}", '
            f'opaque="{REALM}-opaque", algorithm=MD5'
        )
    if accepted:
        return ex.respond(200, _json({**echo_payload(ex.req), "user": user}), JSON)
    return ex.respond(401, b"auth\n", [("WWW-Authenticate", challenge), *TEXT])


def _new_nonce() -> str:
    stamp = str(time.time_ns())
    return stamp + "-" + hmac.new(_NONCE_KEY, stamp.encode(), "sha256").hexdigest()[:24]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("latin-1")).hexdigest()


def _digest_ok(req: Recorded, params: str, user: str, password: str) -> bool:
    """RFC 7616/2617 MD5 digest, qop=auth (or none, as RFC 2069), with a nonce we issued."""
    fields = digest_fields(params)
    nonce = fields.get("nonce", "")
    stamp, _, mac = nonce.partition("-")
    if not hmac.compare_digest(
        mac, hmac.new(_NONCE_KEY, stamp.encode(), "sha256").hexdigest()[:24]
    ):
        return False
    if fields.get("algorithm", "MD5").upper() != "MD5" or fields.get("realm") != REALM:
        return False
    if fields.get("username") != user or fields.get("uri") != req.path:
        return False
    ha1 = _md5(f"{user}:{REALM}:{password}")
    ha2 = _md5(f"{req.method}:{fields['uri']}")
    qop = fields.get("qop")
    if qop == "auth":
        expect = _md5(f"{ha1}:{nonce}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
    elif qop is None:
        expect = _md5(f"{ha1}:{nonce}:{ha2}")
    else:
        return False
    return hmac.compare_digest(fields.get("response", ""), expect)


def digest_fields(text: str) -> dict[str, str]:
    """`k=v, k="v, with comma"` pairs of a Digest header."""
    out: dict[str, str] = {}
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    for part in parts:
        key, _, value = part.strip().partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[key.strip().lower()] = value
    return out


def not_found(ex: Exchange) -> bool:
    return ex.respond(404, b"no such route\n", TEXT)


ROUTES: dict[str, Handler] = {
    "": echo,
    "echo": echo,
    "close-after": close_after,
    "status": status,
    "text": text,
    "body": body,
    "redirect": redirect,
    "redirect-to": redirect_to,
    "loop": loop,
    "slow": slow,
    "trickle": trickle,
    "stall": stall,
    "close": close,
    "reset": reset,
    "cut": cut,
    "endless": endless,
    "headers": headers,
    "auth": auth,
}


def dispatch(ex: Exchange) -> bool:
    handler = ROUTES.get(ex.segment(0), not_found)
    try:
        return handler(ex)
    except (ValueError, IndexError) as exc:
        return ex.respond(400, f"bad request: {exc}\n".encode(), TEXT)
