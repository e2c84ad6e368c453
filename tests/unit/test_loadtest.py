"""`sipcurl load` job specs and mixes, and the requests it puts on the wire."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from dispatcher import loadtest
from dispatcher.loadtest import JobSpec, _array, _Mix, load_mix, parse_jobs, parse_op, run_load


def test_job_specs() -> None:
    jobs = parse_jobs(
        [
            "op=http_connect connection=api 'url=/x?latency_ms=50&status=503' weight=3",
            "op=http_connect_raw connection=api url=/p content_type=text/plain 'data:=\"a b\"'",
            "op=http_client_query url=http://h/$var(x) pv.$var(x)=1 worker:=2",
        ]
    )
    assert jobs[0] == JobSpec(
        {"op": "http_connect", "connection": "api", "url": "/x?latency_ms=50&status=503"}, 3
    )
    assert jobs[1].request["data"] == "a b"
    assert jobs[2].request["pv"] == {"$var(x)": "1"} and jobs[2].request["worker"] == 2
    for bad in ("connection=api", "op=x id=1", "op=x weight=lots", "op=x data:={", "op=x y"):
        with pytest.raises(ValueError):
            parse_jobs([bad])


def test_op_shorthand() -> None:
    assert parse_op("http_connect:api:/path?latency_ms=5").request == {
        "op": "http_connect",
        "connection": "api",
        "url": "/path?latency_ms=5",
    }
    assert parse_op("http_connection_exists:api").request == {
        "op": "http_connection_exists",
        "connection": "api",
    }
    assert parse_op("http_client_query:http://127.0.0.1:9/x").request == {
        "op": "http_client_query",
        "url": "http://127.0.0.1:9/x",
    }
    with pytest.raises(ValueError):
        parse_op("http_connect:")


def test_mix_files(tmp_path: Path) -> None:
    as_json = tmp_path / "mix.json"
    as_json.write_text('[{"op": "http_connect", "connection": "api", "url": "/a", "weight": 3},'
                       ' {"op": "http_connection_exists", "connection": "api"}]')  # fmt: skip
    as_ini = tmp_path / "mix.ini"
    as_ini.write_text(
        "[slow]\nop = http_connect\nconnection = api\nurl = /s?latency_ms=100\nweight = 2\n"
        "[exists]\nop = http_connection_exists\nconnection = api\npv.$var(A) = 1\n"
    )
    lines = tmp_path / "mix.txt"
    lines.write_text("# comment\nop=http_connect connection=api url=/a weight=2\n\n")
    assert [j.weight for j in load_mix(str(as_json))] == [3, 1]
    ini = load_mix(str(as_ini))
    assert ini[0] == JobSpec(
        {"op": "http_connect", "connection": "api", "url": "/s?latency_ms=100"}, 2
    )
    assert ini[1].request["pv"] == {"$var(A)": "1"}
    assert load_mix(str(lines))[0].weight == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"jobs": 3}')
    for path in (str(bad), str(tmp_path / "missing")):
        with pytest.raises(ValueError):
            load_mix(path)


def test_wire_requests_carry_the_job_and_a_fresh_id() -> None:
    big = {"op": "http_connect", **{f"f{i}": i for i in range(20)}}
    mix = _Mix([JobSpec({"op": "http_connect", "connection": "api", "url": "/"}, 2), JobSpec(big)])
    decoded = [msgpack.unpackb(mix.pack(rid)) for rid in range(4)]
    assert decoded[0] == {"op": "http_connect", "connection": "api", "url": "/", "id": 0}
    assert decoded[1]["id"] == 1 and decoded[2] == {**big, "id": 2}
    assert decoded[3]["connection"] == "api"
    frames = [mix.pack(rid) for rid in range(40)]
    assert [m["id"] for m in msgpack.unpackb(_array(frames))] == list(range(40))
    assert [m["id"] for m in msgpack.unpackb(_array(frames[:3]))] == [0, 1, 2]


def test_no_service_is_an_error_value_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadtest, "RPC_TIMEOUT_S", 0.3)  # nobody will answer: wait less
    result = run_load("tcp://127.0.0.1:1", parse_jobs(["op=x"]), None, 1, 0.1, 0.0, None, False)
    assert result.error is not None and "no reply" in result.error
    assert run_load("bogus", parse_jobs(["op=x"]), 5.0, None, 1.0, 0.0).error is not None
    assert run_load("tcp://127.0.0.1:1", [], 5.0, None, 1.0, 0.0).error == "no jobs to send"
