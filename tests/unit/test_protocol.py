"""The wire format as a client sees it: batches, raw forwarding, errors that name the field."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher import protocol as wire
from dispatcher.errors import WireError


def test_a_batch_is_split_into_the_original_bytes_of_each_request() -> None:
    reqs = [{"id": i, "op": "http_connect", "connection": "c", "url": f"/{i}"} for i in range(20)]
    frame = wire.pack(reqs)
    parts = list(wire.split_payload(frame))
    assert [p[0] for p in parts] == reqs
    assert [msgpack.unpackb(raw) for _, raw in parts] == reqs
    assert b"".join(raw for _, raw in parts) == frame[3:]  # 20 items: array16 header


def test_join_array_packs_encoded_maps_without_decoding() -> None:
    encoded = [wire.pack({"id": i}) for i in range(17)]
    assert wire.unpack(wire.join_array(encoded)) == [{"id": i} for i in range(17)]
    assert wire.join_array(encoded[:1]) == encoded[0]


@pytest.mark.parametrize("size", [1, 14, 15, 16, 70000])
def test_append_fields_keeps_every_existing_field(size: int) -> None:
    original = {f"k{i}": i for i in range(size)}
    out = wire.unpack(wire.append_fields(wire.pack(original), {"seq": 7, "type": "resume"}))
    assert out == {**original, "seq": 7, "type": "resume"}


def test_not_msgpack_is_a_bad_request() -> None:
    with pytest.raises(WireError) as err:
        list(wire.split_payload(b"\xc1\xc1\xc1"))
    assert err.value.code == "bad_request"


@pytest.mark.parametrize(
    ("req", "code", "words"),
    [
        ({"op": "http_connect", "url": "/x"}, "bad_request", "connection"),
        ({"op": "nope"}, "unknown_op", "nope"),
        ({"op": "http_connect", "connection": 5, "url": "/"}, "bad_request", "'connection'"),
        ({"op": "http_client_query", "url": "/", "bogus": 1}, "bad_request", "bogus"),
        ({"op": "http_async_query", "url": "/", "route": "r", "mode": "x"}, "bad_request", "mode"),
        ({"op": "http_client_query", "url": "/", "worker": True}, "bad_request", "worker"),
        ([1, 2], "bad_request", "map"),
        ({"id": 1}, "bad_request", "op"),
    ],
)
def test_malformed_requests_name_what_was_wrong(req: object, code: str, words: str) -> None:
    with pytest.raises(WireError) as err:
        wire.validate_request(req)
    assert err.value.code == code
    assert words in err.value.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_either_decode_or_give_bad_request(data: bytes) -> None:
    try:
        for req, _raw in wire.split_payload(data):
            try:
                wire.validate_request(req)
            except WireError as err:
                assert err.code in ("bad_request", "unknown_op")
    except WireError as err:
        assert err.code == "bad_request"


def test_job_reply_and_completion_frames_round_trip() -> None:
    request = wire.pack({"id": 1, "op": "http_connect"})
    assert wire.parse_job(wire.job_frame(7, 1.5, "123-4", request)) == (7, 1.5, "123-4", request)
    assert wire.parse_job(wire.job_frame(8, 0.0, None, request)) == (8, 0.0, None, request)
    counters = [1, 2, 3, 4, 5, 2**40]
    assert wire.parse_reply(wire.reply_frame(9, True, counters, b"\x80")) == (
        9,
        True,
        counters,
        b"\x80",
    )
    assert wire.parse_completion(wire.completion_frame("p-1", counters, b"\x81\xa1a\x01")) == (
        "p-1",
        counters,
        b"\x81\xa1a\x01",
    )
