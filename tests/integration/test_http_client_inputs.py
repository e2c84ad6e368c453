"""What reaches the server, and what comes back, when requests carry odd or hostile input.

Requests arrive from any ZeroMQ client: a wrong type, a NUL, non-ASCII text or a huge
header must give an answer (rc -1 with a reason, or what Kamailio's C strings would send),
never a traceback in the worker.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.settings_loader import load_settings
from tests.servers import HttpTestServer
from workers.curlstate import CurlState
from workers.http_client import HttpClient, Transfer, run_blocking

OPS = (
    "http_connect",
    "http_connect_raw",
    "http_get_redirect",
    "http_client_query",
    "http_client_get",
    "http_client_request",
    "http_get_content_type",
    "http_connection_exists",
)


def make_client(tmp_path: Path, http_client: str) -> HttpClient:
    ini = tmp_path / "sipcurl.ini"
    ini.write_text("[http_client]\n" + http_client)
    settings_ = load_settings(str(ini))
    return HttpClient(settings_, CurlState(settings_))


@pytest.mark.parametrize(
    ("request_fields", "detail"),
    [
        ({"op": "http_connect", "connection": ["api"], "url": ""}, "connection"),
        ({"op": "http_connection_exists", "connection": {}}, "connection"),
        ({"op": "http_get_content_type", "connection": None}, "connection"),
        ({"op": "http_connect_raw", "connection": "api", "url": "", "data": ["x"]}, "data"),
        ({"op": "http_client_query", "url": {"a": 1}}, "url"),
        ({"op": "http_client_query", "url": "/echo", "hdrs": [b"X: 1"]}, "hdrs"),
        ({"op": "http_client_query", "url": "/echo", "pv": [1, 2], "post": "$var(x)"}, "pv"),
        ({"op": "http_client_request", "method": True, "url": "/echo"}, "method"),
        ({"op": ["http_connect"]}, "operation"),
    ],
)
def test_wrong_types_are_rc_minus_one_naming_the_field(
    tmp_path: Path, http_server: HttpTestServer, request_fields: dict, detail: str
) -> None:
    client = make_client(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    request = dict(request_fields)
    if isinstance(request.get("url"), str) and request["url"].startswith("/"):
        request["url"] = http_server.url(request["url"])
    reply = run_blocking(client, request)
    assert reply["rc"] == -1 and reply["curlerror"] == "Bad CURL error code"
    assert detail in reply["error_detail"]
    assert http_server.requests == []


def test_a_nul_ends_each_value_as_kamailios_c_strings_do(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    reply = run_blocking(
        client,
        {
            "op": "http_connect",
            "connection": "api",
            "url": "/a\0/../secret",
            "content_type": "text/plain\0; x=1",
            "data": "body\0hidden",
        },
    )
    assert reply["rc"] == 200
    seen = http_server.requests[-1]
    assert (seen.path, seen.header("Content-Type"), seen.body) == ("/echo/a", "text/plain", b"body")
    run_blocking(
        client,
        {"op": "http_client_query", "url": http_server.url("/echo"), "hdrs": "X-A: 1\0\r\n\r\nX"},
    )
    assert http_server.requests[-1].header("X-A") == "1"


def test_non_ascii_and_binary_values_reach_the_server_as_utf8_bytes(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(tmp_path, "")
    reply = run_blocking(
        client,
        {
            "op": "http_client_request",
            "method": "POST",
            "url": http_server.url("/echo/é"),
            "body": "$var(b)",
            "hdrs": "X-Name: José",
            "pv": {"$var(b)": b"caf\xc3\xa9"},
        },
    )
    assert reply["rc"] == 200
    seen = http_server.requests[-1]
    assert seen.path == "/echo/%C3%A9"  # libcurl 8 escapes what a URL cannot hold
    assert seen.body == "café".encode()
    assert seen.header("X-Name") == "José".encode().decode("latin-1")
    msgpack.packb(reply)  # every field can go back on the wire


def test_long_content_types_and_urls_are_not_kept_as_kamailios_buffers(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(tmp_path, f"httpcon = t=>{http_server.url('/text')}\n")
    fits = "a/" + "b" * 508  # 510 bytes: stored
    too_long = "a/" + "b" * 509  # 511 bytes: Kamailio leaves ""
    reply = run_blocking(client, {"op": "http_connect", "connection": "t", "url": f"?ctype={fits}"})
    assert reply["rc"] == 200 and reply["content_type"] == fits
    reply = run_blocking(
        client, {"op": "http_connect", "connection": "t", "url": f"?ctype={too_long}"}
    )
    assert reply["rc"] == 200 and reply["content_type"] == ""
    long_url = "?x=" + "y" * 600
    run_blocking(client, {"op": "http_connect", "connection": "t", "url": long_url})
    assert run_blocking(client, {"op": "http_get_redirect", "connection": "t"})["result"] == ""


def test_a_long_content_type_is_cut_to_kamailios_256_byte_line(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(tmp_path, f"httpcon = api=>{http_server.url('/echo')}\n")
    ctype = "text/" + "x" * 400
    run_blocking(
        client,
        {"op": "http_connect", "connection": "api", "url": "", "content_type": ctype, "data": "d"},
    )
    assert http_server.requests[-1].header("Content-Type") == ctype[: 255 - len("Content-Type: ")]


def test_an_endless_body_under_a_cap_does_not_grow_memory(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(
        tmp_path,
        "timeout_mode = 2\nconnection_timeout = 400\nquery_maxdatasize = 1000\nquery_result = 0\n",
    )
    tracemalloc.start()
    try:
        start = time.monotonic()
        reply = run_blocking(
            client, {"op": "http_client_query", "url": http_server.url("/endless")}
        )
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply["rc"] == 28 and elapsed < 2.0
    assert peak < 2_000_000  # megabytes went by; only the cap and a chunk were kept


def test_response_headers_of_every_hop_in_order_without_status_lines(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(tmp_path, "httpredirect = 1\nresponse_headers = 1\n")
    reply = run_blocking(client, {"op": "http_client_query", "url": http_server.url("/redirect/2")})
    assert reply["rc"] == 200
    names = [name for name, _ in reply["headers"]]
    assert [v for n, v in reply["headers"] if n == "Location"] == [
        "/redirect/1",
        "/redirect/0",
        "/echo",
    ]
    assert names[-2:] == ["Content-Type", "Content-Length"]
    assert not any(n.startswith("HTTP/") or not n for n in names)
    informational = run_blocking(
        client, {"op": "http_client_query", "url": http_server.url("/status/100")}
    )
    assert informational["rc"] == 200
    assert not any(n.startswith("HTTP/") for n, _ in informational["headers"])


def test_a_kept_handle_forgets_authentication_between_calls_as_reset_does(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(
        tmp_path,
        "keep_connections = 1\n"
        f"httpcon = a=>http://alice:s3cret@127.0.0.1:{http_server.port}/auth/digest/alice/s3cret\n",
    )
    for _ in range(3):
        assert (
            run_blocking(client, {"op": "http_connect", "connection": "a", "url": ""})["rc"] == 200
        )
    # An unauthenticated probe before each call (as Kamailio), over one kept TCP connection.
    assert (len(http_server.requests), http_server.accepts) == (6, 1)


def test_the_reply_describes_the_primary_connection_after_failover(
    tmp_path: Path, http_server: HttpTestServer
) -> None:
    client = make_client(
        tmp_path,
        f"httpcon = a=>{http_server.url('/status/503')};failover=b\n"
        f"          b=>{http_server.url('/echo')}\n",
    )
    reply = run_blocking(client, {"op": "http_connect", "connection": "a", "url": "/x"})
    assert reply["rc"] == 200 and json.loads(reply["result"])["path"] == "/echo/x"
    # content_type is what http_get_content_type("a") gives next, as Kamailio's API: the
    # primary's own 503 response, not the failover's.
    assert reply["content_type"] == "text/plain"
    redirect = run_blocking(client, {"op": "http_get_redirect", "connection": "a"})
    assert redirect["result"] == http_server.url("/status/503/x")
    assert run_blocking(client, {"op": "http_get_content_type", "connection": "b"})["result"] == (
        "application/json"
    )


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
_texty = st.one_of(
    _values,
    st.sampled_from(["api", "", "/x", "$var(x)", "$(ru{s.escape.param})", "$", "a\r\nb", "\0"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    op=st.one_of(st.sampled_from(OPS), _values),
    fields=st.dictionaries(
        st.sampled_from(
            ["connection", "url", "content_type", "data", "post", "hdrs", "body", "method", "pv"]
        ),
        _texty,
        max_size=6,
    ),
    curl_code=st.sampled_from([0, 7, 28]),
)
def test_any_request_gets_an_answer_msgpack_can_carry(
    tmp_path: Path, op: Any, fields: dict, curl_code: int
) -> None:
    """No transfer runs: each yielded handle is answered with a curl code, as the worker's
    loop would, so only the engine's own handling is under test."""
    client = make_client(tmp_path, "httpcon = api=>http://127.0.0.1:9/base;failover=api\n")
    result = client.run({"op": op, **fields})
    if not isinstance(result, dict):
        steps = 0
        try:
            transfer = next(result)
            while True:
                assert isinstance(transfer, Transfer)
                steps += 1
                assert steps <= 2  # a primary and at most one failover
                transfer = result.send(curl_code)
        except StopIteration as stop:
            result = stop.value
    assert isinstance(result, dict)
    if "rc" in result:
        assert isinstance(result["rc"], int)
    msgpack.packb(result)
