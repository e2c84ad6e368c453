"""Hostile input at the running service: every frame gets exactly one clear answer, and the
service keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.servers import refused_url
from tests.system.service import Service


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    svc = Service(workers=1, http_client="httpcon = api=>" + refused_url() + "\n")
    try:
        yield svc
    finally:
        svc.stop()


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                    st.text(max_size=40), st.binary(max_size=40))  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ops = st.sampled_from(["http_connect", "http_connect_raw", "http_client_query", "http_client_get", "http_client_request",
                       "http_get_redirect", "http_get_content_type", "http_connection_exists", "http_async_query",
                       "rpc", "t_cancel", "nope", ""])  # fmt: skip
fields = st.sampled_from(["connection", "url", "data", "content_type", "post", "hdrs", "body", "method", "route",
                          "headers", "timeout", "mode", "worker", "key", "pv", "txn", "params", "xdata"])  # fmt: skip
requests = st.builds(
    lambda op, extra, rid: {"id": rid, "op": op, **extra},
    ops,
    st.dictionaries(fields, values, max_size=5),
    st.integers(0, 2**31),
)


def one_answer(service: Service, payload: bytes, rid: Any) -> dict[str, Any]:
    service.client.send_raw(payload)
    msg = service.client.wait_for(
        lambda m: m.get("id") == rid and m.get("type") != "resume", timeout_s=10
    )
    return msg


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(req=requests)
def test_random_requests_each_get_one_answer(service: Service, req: dict[str, Any]) -> None:
    reply = one_answer(service, msgpack.packb(req, use_bin_type=True), req["id"])
    if "error" in reply:
        assert reply["error"]["code"] in ("bad_request", "unknown_op") and reply["error"]["message"]
    assert not [
        m for m in service.client.inbox if m.get("id") == req["id"] and m.get("type") != "resume"
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(min_size=1, max_size=300))
def test_random_bytes_never_stop_the_service(service: Service, data: bytes) -> None:
    service.client.send_raw(data)
    service.client.receive(0.05)
    assert service.client.call(op="http_connection_exists", connection="api")["rc"] == 1


def test_huge_strings_and_deep_nesting(service: Service) -> None:
    big = {"id": 1, "op": "http_client_query", "url": refused_url() + "a" * 2_000_000}
    assert one_answer(service, msgpack.packb(big), 1)["rc"] in (3, 7, -1)
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    nested = {
        "id": 2,
        "op": "http_connect",
        "connection": "api",
        "url": "/",
        "pv": {"$var(x)": deep},
    }
    assert one_answer(service, msgpack.packb(nested), 2)["error"]["code"] == "bad_request"
    assert service.client.call(op="http_connection_exists", connection="api")["rc"] == 1
