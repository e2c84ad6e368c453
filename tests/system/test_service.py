"""`sipcurl serve` end to end: real ZeroMQ sockets, real local HTTP servers, real processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq

from tests.servers import refused_url
from tests.system.service import Service


@pytest.fixture()
def service(http_server: Any) -> Iterator[Service]:
    svc = Service(
        workers=2,
        http_client=f"""\
            keep_connections = 1
            httpcon = api=>{http_server.url("/echo")}
                      slow=>{http_server.url("/slow")}
            """,
    )
    try:
        yield svc
    finally:
        svc.stop()


def test_http_connect_over_the_wire_returns_kamailio_fields(
    service: Service, http_server: Any
) -> None:
    reply = service.client.call(op="http_connect", connection="api", url="/x?a=1")
    assert reply["rc"] == 200
    assert reply["curlerror"] == "HTTP result code"
    assert reply["content_type"] == "application/json"
    assert b'"path": "/echo/x?a=1"' in reply["result"] or b'"/echo/x?a=1"' in reply["result"]
    assert reply["worker"]["rank"] in (1, 2)
    assert set(reply["timing"]) == {"queued_ms", "service_ms"}


def test_every_sync_operation_answers(service: Service, http_server: Any) -> None:
    c = service.client
    url = http_server.url("/text?content=first%0Asecond")
    assert c.call(op="http_client_query", url=url)["result"] == b"first"
    assert c.call(op="http_client_query", url=http_server.url("/echo"), post="a=1")["rc"] == 200
    assert c.call(op="http_client_get", url=http_server.url("/echo"), body="b")["rc"] == 200
    assert (
        c.call(op="http_client_request", method="DELETE", url=http_server.url("/echo"))["rc"] == 200
    )
    assert c.call(op="http_connection_exists", connection="api")["rc"] == 1
    assert c.call(op="http_connection_exists", connection="nope")["rc"] == 0
    pinned = c.call(op="http_connect", connection="api", url="/r", worker=2)
    assert pinned["worker"]["rank"] == 2
    assert (
        c.call(op="http_get_content_type", connection="api", worker=2)["result"]
        == "application/json"
    )
    assert c.call(op="http_get_content_type", connection="nope")["result"] is None
    redirect = c.call(op="http_get_redirect", connection="api", worker=2)
    assert redirect["rc"] == 1 and redirect["result"].endswith("/echo/r")


def test_a_batch_gets_one_reply_per_request(service: Service) -> None:
    c = service.client
    ids = [c.next_id() for _ in range(30)]
    c.send([{"id": i, "op": "http_connect", "connection": "api", "url": f"/{i}"} for i in ids])
    got = {}
    while len(got) < len(ids):
        msg = c.wait_for(lambda m: True, timeout_s=10)
        got[msg["id"]] = msg
    assert set(got) == set(ids)
    assert all(m["rc"] == 200 for m in got.values())


def test_a_worker_serves_one_synchronous_call_at_a_time(service: Service) -> None:
    """Four 300 ms calls pinned to one worker take four times as long as one; the wait shows
    up as queued_ms, the way a Kamailio child's callers wait."""
    c = service.client
    ids = [c.next_id() for _ in range(4)]
    start = time.monotonic()
    for i in ids:
        c.send({"id": i, "op": "http_connect", "connection": "slow", "url": "?ms=300", "worker": 1})
    replies = [c.wait_for(lambda m, i=i: m.get("id") == i, timeout_s=10) for i in ids]
    elapsed = time.monotonic() - start
    assert elapsed >= 1.1
    queued = sorted(r["timing"]["queued_ms"] for r in replies)
    assert queued[0] < 100 and queued[-1] > 800


def test_keys_stick_to_one_worker(service: Service) -> None:
    ranks = {
        service.client.call(op="http_connection_exists", connection="api", key="call-7")["worker"][
            "rank"
        ]
        for _ in range(6)
    }
    assert len(ranks) == 1


def test_async_event_is_published_on_the_route_topic(service: Service, http_server: Any) -> None:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"HTTP_REPLY")
    sub.connect(service.events)
    try:
        # A subscriber joins late (slow joiner): probe until the first event arrives.
        deadline = time.monotonic() + 10
        event = None
        while event is None and time.monotonic() < deadline:
            reply = service.client.call(
                op="http_async_query", url=http_server.url("/echo"), route="HTTP_REPLY", xdata="x1"
            )
            assert reply["rc"] == 1 and reply["txn"]
            if sub.poll(500):
                topic, payload = sub.recv_multipart()
                assert topic == b"HTTP_REPLY"
                got = msgpack.unpackb(payload, raw=False)
                event = got[0] if isinstance(got, list) else got  # completions may come batched
        assert event is not None
        assert event["http_ok"] is True and event["http_rs"] == 200
        assert event["xdata"] == "x1" and isinstance(event["seq"], int)
        assert event["route"] == "HTTP_REPLY"
        assert isinstance(event["http_rb"], bytes)
        assert set(event["http_time"]) >= {"total", "connect", "starttransfer"}
    finally:
        sub.close(0)


def test_suspend_resumes_the_submitting_client(service: Service, http_server: Any) -> None:
    c = service.client
    rid = c.next_id()
    c.send(
        {
            "id": rid,
            "op": "http_async_query",
            "url": http_server.url("/slow?ms=200"),
            "route": "R",
            "mode": "suspend",
            "timeout": 2000,
        }
    )
    first = c.wait_for(lambda m: m.get("id") == rid)
    assert first["rc"] == 1 and first["suspended"] is True
    resume = c.wait_for(lambda m: m.get("type") == "resume" and m.get("txn") == first["txn"])
    assert resume["http_ok"] is True and resume["http_rs"] == 200 and resume["id"] == rid


def test_t_cancel_stops_a_resume(service: Service, http_server: Any) -> None:
    c = service.client
    first = c.call(
        op="http_async_query",
        url=http_server.url("/slow?ms=600"),
        route="R",
        mode="suspend",
        timeout=3000,
    )
    assert c.call(op="t_cancel", txn=first["txn"])["rc"] == 1
    assert c.call(op="t_cancel", txn=first["txn"])["rc"] == -1
    late = [m for m in c.receive(1.0) if m.get("type") == "resume"]
    assert late == []


def test_stats_and_listcon(service: Service) -> None:
    before = service.client.call(op="rpc", method="stats.get_statistics")["result"]
    service.client.call(op="http_connect", connection="api", url="/ok")
    service.client.call(op="http_client_query", url=refused_url())
    after = service.client.call(op="rpc", method="stats.get_statistics")["result"]
    assert after["httpclient:connections"] == 2
    assert after["httpclient:connok"] - before["httpclient:connok"] == 1
    assert after["httpclient:connfail"] - before["httpclient:connfail"] == 1
    conns = service.client.call(op="rpc", method="httpclient.listcon")["result"]
    assert {c["NAME"] for c in conns} == {"api", "slow"}


def test_a_killed_worker_is_replaced_and_its_job_answered(service: Service) -> None:
    c = service.client
    pids = service.worker_pids()
    rid = c.next_id()
    c.send({"id": rid, "op": "http_connect", "connection": "slow", "url": "?ms=5000", "worker": 1})
    time.sleep(0.3)  # let the call reach the worker; the answer is what we assert
    os.kill(pids[1], signal.SIGKILL)
    killed = time.monotonic()
    reply = c.wait_for(lambda m: m.get("id") == rid, timeout_s=5)
    assert reply["error"]["code"] == "worker_lost"
    while time.monotonic() - killed < 3:
        rows = {r["rank"]: r for r in service.workers()}
        if rows[1]["state"] == "ready" and rows[1]["pid"] != pids[1]:
            break
    assert rows[1]["state"] == "ready" and rows[1]["pid"] != pids[1]
    assert time.monotonic() - killed < 1.0  # replaced under its rank within a second
    assert c.call(op="http_connect", connection="api", url="/", worker=1)["rc"] == 200


def test_a_dying_worker_answers_what_it_was_sent_and_the_rest_go_to_its_replacement(
    http_server: Any,
) -> None:
    """With sync_depth 2 a worker holds its running call and the next one: both are answered
    worker_lost (either may have reached the server); calls still queued in the dispatcher
    are served by the replacement under the same rank."""
    svc = Service(
        workers=1,
        extra="sync_depth = 2\n",
        http_client=f"httpcon = api=>{http_server.url('/echo')}\n"
        f"    slow=>{http_server.url('/slow')}\n",
    )
    try:
        c = svc.client
        pid = svc.worker_pids()[1]
        ids = [c.next_id() for _ in range(4)]
        c.send({"id": ids[0], "op": "http_connect", "connection": "slow", "url": "?ms=5000"})
        for rid in ids[1:]:
            c.send({"id": rid, "op": "http_connect", "connection": "api", "url": "/"})
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        replies = [c.wait_for(lambda m, r=rid: m.get("id") == r, timeout_s=10) for rid in ids]
    finally:
        svc.stop()
    outcomes = [r.get("error", {}).get("code") or r.get("rc") for r in replies]
    assert outcomes == ["worker_lost", "worker_lost", 200, 200]
    assert {r["worker"]["pid"] for r in replies[2:]} != {pid}


def test_a_reply_never_waits_behind_the_next_slow_call(service: Service) -> None:
    """A busy worker sends replies in batches, but holds one for a millisecond at most: a
    fast call's answer does not wait for the slow call sent to the same worker after it."""
    c = service.client
    fast, slow, last = c.next_id(), c.next_id(), c.next_id()
    started = time.monotonic()
    c.send({"id": fast, "op": "http_connect", "connection": "api", "url": "/", "worker": 1})
    c.send({"id": slow, "op": "http_connect", "connection": "slow", "url": "?ms=2000", "worker": 1})
    c.send({"id": last, "op": "http_connect", "connection": "api", "url": "/", "worker": 1})
    assert c.wait_for(lambda m: m.get("id") == fast, timeout_s=5)["rc"] == 200
    assert time.monotonic() - started < 1.0
    assert c.wait_for(lambda m: m.get("id") == last, timeout_s=5)["rc"] == 200


def test_queued_ms_counts_the_wait_behind_the_workers_running_call(service: Service) -> None:
    c = service.client
    ids = [c.next_id() for _ in range(3)]
    for rid in ids:
        c.send(
            {"id": rid, "op": "http_connect", "connection": "slow", "url": "?ms=300", "worker": 2}
        )
    replies = [c.wait_for(lambda m, r=rid: m.get("id") == r, timeout_s=10) for rid in ids]
    queued = [r["timing"]["queued_ms"] for r in replies]
    served = [r["timing"]["service_ms"] for r in replies]
    assert queued[0] < 100 and 250 <= queued[1] < 600 and 550 <= queued[2] < 1000
    assert all(250 <= ms < 600 for ms in served)  # each call's own time, not its wait


def test_bad_frames_get_bad_request_and_the_service_carries_on(service: Service) -> None:
    c = service.client
    c.send_raw(b"\xc1not msgpack")
    reply = c.wait_for(lambda m: "error" in m)
    assert reply["error"]["code"] == "bad_request" and reply["id"] is None
    assert c.call(op="nope")["error"]["code"] == "unknown_op"
    assert c.call(op="http_connect", url="/")["error"]["code"] == "bad_request"
    assert c.call(op="http_connection_exists", connection="api")["rc"] == 1


def test_sigterm_drains_in_flight_work_then_exits_zero(service: Service) -> None:
    c = service.client
    ids = [c.next_id() for _ in range(4)]
    for i in ids:
        c.send({"id": i, "op": "http_connect", "connection": "slow", "url": "?ms=300"})
    time.sleep(0.1)
    service.signal(signal.SIGTERM)
    time.sleep(0.05)  # the four calls need >= 600 ms, so the service is still draining
    late = c.call(op="http_connection_exists", connection="api", timeout_s=5)
    assert late["error"]["code"] == "shutting_down"
    replies = {i: c.wait_for(lambda m, i=i: m.get("id") == i, timeout_s=10) for i in ids}
    assert all(r["rc"] == 200 for r in replies.values())
    assert service.proc.wait(timeout=10) == 0


def test_a_killed_worker_s_async_transfers_complete_as_failed(
    service: Service, http_server: Any
) -> None:
    c = service.client
    pids = service.worker_pids()
    firsts = [
        c.call(
            op="http_async_query",
            url=http_server.url("/slow?ms=5000"),
            route="R",
            mode="suspend",
            timeout=9000,
            worker=2,
        )
        for _ in range(5)
    ]
    assert all(f["rc"] == 1 for f in firsts)
    os.kill(pids[2], signal.SIGKILL)
    resumes = [
        c.wait_for(
            lambda m, t=f["txn"]: m.get("type") == "resume" and m.get("txn") == t, timeout_s=5
        )
        for f in firsts
    ]
    assert all(r["http_ok"] is False and r["http_err"] == "worker lost" for r in resumes)
    assert [m for m in c.receive(0.5) if m.get("type") == "resume"] == []  # exactly one each


def test_a_hung_worker_is_detected_and_replaced(service: Service) -> None:
    pids = service.worker_pids()
    os.kill(pids[1], signal.SIGSTOP)  # alive but silent: no more heartbeats
    try:
        deadline = time.monotonic() + 5  # heartbeat 200 ms x liveness 3 in these tests
        while time.monotonic() < deadline:
            rows = {r["rank"]: r for r in service.workers()}
            if rows[1]["state"] == "ready" and rows[1]["pid"] != pids[1]:
                break
            time.sleep(0.1)
        assert rows[1]["pid"] != pids[1] and rows[1]["state"] == "ready"
    finally:
        try:
            os.kill(pids[1], signal.SIGKILL)
        except ProcessLookupError:
            pass
