"""The client library and the call/rpc/events commands against real ZeroMQ sockets that
stand in for a dispatcher: a ROUTER that answers out of order, in batches and with resumes,
and a PUB that skips sequence numbers."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import zmq
import zmq.asyncio

from dispatcher import client_commands as cmd
from dispatcher import protocol as wire
from dispatcher.client import AsyncClient, Client, Subscriber

Answer = Callable[[dict[str, Any]], list[Any]]


def bind_free(ctx: zmq.Context, kind: int) -> tuple[zmq.Socket, str]:
    sock = ctx.socket(kind)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


def take(router: zmq.Socket, n: int, timeout_s: float = 5.0) -> list[tuple[bytes, Any]]:
    """n request frames as (client identity, decoded payload), each within the deadline."""
    out: list[tuple[bytes, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        left_ms = int((deadline - time.monotonic()) * 1000)
        assert left_ms > 0 and router.poll(left_ms), f"got {len(out)} of {n} requests"
        identity, payload = router.recv_multipart()
        out.append((identity, wire.unpack(payload)))
    return out


@pytest.fixture()
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture()
def router(ctx: zmq.Context) -> Iterator[tuple[zmq.Socket, str]]:
    sock, endpoint = bind_free(ctx, zmq.ROUTER)
    yield sock, endpoint
    sock.close(0)


# -- blocking client --


def test_out_of_order_and_batched_replies_each_reach_their_request(
    ctx: zmq.Context, router: tuple[zmq.Socket, str]
) -> None:
    sock, endpoint = router
    with Client(endpoint, context=ctx, timeout_s=5) as client:
        ids = [
            client.submit({"op": "http_connection_exists", "connection": f"c{i}"}) for i in range(3)
        ]
        assert len(set(ids)) == 3
        got = take(sock, 3)
        identity = got[0][0]
        by_id = {req["id"]: req for _, req in got}
        assert {req["connection"] for req in by_id.values()} == {"c0", "c1", "c2"}
        # the last request's reply alone, then the first two together in one array frame
        sock.send_multipart([identity, wire.pack({"id": ids[2], "rc": 2})])
        sock.send_multipart(
            [identity, wire.pack([{"id": ids[0], "rc": 0}, {"id": ids[1], "rc": 1}])]
        )
        assert client.wait(ids[1])["rc"] == 1  # the others arrived first and are kept
        assert client.wait(ids[0])["rc"] == 0
        assert client.wait(ids[2])["rc"] == 2


def test_submit_many_sends_one_array_frame_and_keeps_caller_ids(
    ctx: zmq.Context, router: tuple[zmq.Socket, str]
) -> None:
    sock, endpoint = router
    with Client(endpoint, context=ctx, timeout_s=5) as client:
        reqs = [{"op": "rpc", "method": "core.workers"} for _ in range(3)] + [
            {"op": "rpc", "method": "core.workers", "id": "mine"}
        ]
        ids = client.submit_many(reqs)
        assert ids[-1] == "mine" and len(set(ids)) == 4
        assert "id" not in reqs[0]  # the caller's maps are left alone
        [(identity, batch)] = take(sock, 1)
        assert isinstance(batch, list) and [r["id"] for r in batch] == ids
        sock.send_multipart(
            [identity, wire.pack([{"id": i, "result": str(i)} for i in reversed(ids)])]
        )
        assert [client.wait(i)["result"] for i in ids] == [str(i) for i in ids]
        assert client.submit_many([]) == []


def test_a_resume_that_comes_before_its_reply_is_kept_and_poll_returns_strays(
    ctx: zmq.Context, router: tuple[zmq.Socket, str]
) -> None:
    sock, endpoint = router
    with Client(endpoint, context=ctx, timeout_s=5) as client:
        rid = client.submit(
            {"op": "http_async_query", "url": "http://x/", "route": "R", "mode": "suspend"}
        )
        [(identity, _)] = take(sock, 1)
        resume = {
            "type": "resume",
            "id": rid,
            "txn": "7-1",
            "http_ok": True,
            "http_rb": b"\xff\x00",
        }
        stray = {"id": "someone-else", "rc": 200}
        sock.send_multipart(
            [
                identity,
                wire.pack([resume, stray, {"id": rid, "rc": 1, "txn": "7-1", "suspended": True}]),
            ]
        )
        reply = client.wait(rid)
        assert reply["suspended"] is True and "type" not in reply
        assert client.wait_resume(reply["txn"])["http_rb"] == b"\xff\x00"
        assert client.poll(0.01) == [stray]
        assert client.poll(0.05) == []


def test_every_wait_has_a_deadline_that_names_what_was_missing(
    ctx: zmq.Context, router: tuple[zmq.Socket, str]
) -> None:
    _, endpoint = router
    with Client(endpoint, context=ctx, timeout_s=0.2) as client:
        rid = client.submit({"op": "rpc", "method": "core.workers"})
        start = time.monotonic()
        with pytest.raises(TimeoutError, match=repr(rid)):
            client.wait(rid)
        with pytest.raises(TimeoutError, match="'9-9'"):
            client.wait_resume("9-9", timeout_s=0.1)
        assert time.monotonic() - start < 2.0


def test_frames_that_are_not_replies_are_skipped_not_raised(
    ctx: zmq.Context, router: tuple[zmq.Socket, str]
) -> None:
    sock, endpoint = router
    with Client(endpoint, context=ctx, timeout_s=5) as client:
        rid = client.submit({"op": "rpc", "method": "core.workers"})
        [(identity, _)] = take(sock, 1)
        sock.send_multipart([identity, b"\xc1 not msgpack"])
        sock.send_multipart([identity, wire.pack([7, {"id": [1, 2]}])])
        sock.send_multipart([identity, wire.pack({"id": rid, "result": []})])
        assert client.wait(rid)["result"] == []
        assert client.malformed == 3


def test_requests_spread_over_several_frontends_and_all_replies_correlate(
    ctx: zmq.Context,
) -> None:
    first, ep1 = bind_free(ctx, zmq.ROUTER)
    second, ep2 = bind_free(ctx, zmq.ROUTER)
    try:
        with Client([ep1, ep2], context=ctx, timeout_s=5) as client:
            ids = [client.submit({"op": "rpc", "method": "core.workers"}) for _ in range(6)]
            for router in (first, second):
                got = take(router, 3)  # round robin: half each
                identity = got[0][0]
                router.send_multipart(
                    [identity, wire.pack([{"id": r["id"], "via": id(router)} for _, r in got])]
                )
            replies = [client.wait(i) for i in ids]
            assert len({r["via"] for r in replies}) == 2
            assert [r["id"] for r in replies] == ids
    finally:
        first.close(0)
        second.close(0)


def test_a_bad_endpoint_is_a_clear_error(ctx: zmq.Context) -> None:
    with pytest.raises(ValueError, match="not-an-endpoint"):
        Client("not-an-endpoint", context=ctx)
    with pytest.raises(ValueError, match="no endpoint"):
        Subscriber([], context=ctx)


# -- asyncio client --


def test_async_client_correlates_batches_resumes_and_timeouts() -> None:
    async def main() -> None:
        actx = zmq.asyncio.Context()
        router = actx.socket(zmq.ROUTER)
        router.linger = 0
        endpoint = f"tcp://127.0.0.1:{router.bind_to_random_port('tcp://127.0.0.1')}"

        async def dispatcher() -> None:
            got = []
            for _ in range(5):
                identity, payload = await router.recv_multipart()
                got.append(wire.unpack(payload))
            replies: list[dict[str, Any]] = [
                {"id": r["id"], "n": r["n"] * 10} for r in reversed(got)
            ]
            replies.insert(2, {"type": "resume", "txn": "1-5", "http_ok": True})
            replies.append({"id": "unasked", "rc": 0})
            await router.send_multipart([identity, wire.pack(replies)])

        try:
            async with AsyncClient(endpoint, context=actx, timeout_s=5) as client:
                server = asyncio.create_task(dispatcher())
                replies = await asyncio.wait_for(
                    asyncio.gather(*(client.call("rpc", method="m", n=i) for i in range(5))), 10
                )
                assert [r["n"] for r in replies] == [0, 10, 20, 30, 40]
                assert (await client.wait_resume("1-5"))["http_ok"] is True
                assert await client.poll(1.0) == [{"id": "unasked", "rc": 0}]
                await server
                rid = await client.submit({"op": "rpc", "method": "m"})
                with pytest.raises(TimeoutError, match=repr(rid)):
                    await client.wait(rid, timeout_s=0.1)
                assert await client.poll(0.05) == []
        finally:
            router.close(0)
            actx.destroy(linger=0)

    asyncio.run(main())


# -- subscriber --


def subscribed(ctx: zmq.Context, routes: list[str]) -> tuple[zmq.Socket, Subscriber]:
    """A PUB and a Subscriber that has been shown to receive (probe until the first arrives)."""
    pub, endpoint = bind_free(ctx, zmq.PUB)
    sub = Subscriber(endpoint, [*routes, "PROBE"], context=ctx)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pub.send_multipart([b"PROBE", wire.pack({"probe": True})])
        if sub.recv(0.05):
            return pub, sub
    raise AssertionError("the subscription never became live")


def collect(sub: Subscriber, route: str, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while len(out) < n and time.monotonic() < deadline:
        out += [m for r, m in sub.recv(0.2) if r == route]
    return out


def test_subscriber_unpacks_arrays_counts_seq_gaps_and_keeps_to_its_routes(
    ctx: zmq.Context,
) -> None:
    pub, sub = subscribed(ctx, ["R"])
    try:
        ev = [{"txn": f"100-{s}", "route": "R", "seq": s, "http_ok": True} for s in range(1, 7)]
        pub.send_multipart([b"R", wire.pack(ev[0])])
        pub.send_multipart([b"RX", wire.pack({"txn": "100-x", "route": "RX", "seq": 1})])
        pub.send_multipart([b"R", wire.pack(ev[1])])
        pub.send_multipart([b"R"])  # one frame: malformed, skipped
        pub.send_multipart([b"R", wire.pack([ev[4], ev[5]])])  # seq 3 and 4 never came
        pub.send_multipart(
            [b"R", wire.pack({"txn": "200-1", "route": "R", "seq": 9})]
        )  # another dispatcher
        got = collect(sub, "R", 5)
        assert [m["seq"] for m in got] == [1, 2, 5, 6, 9]
        assert sub.gaps() == 2
        assert sub.malformed == 1
    finally:
        sub.close()
        pub.close(0)


def test_subscriber_recv_zero_returns_what_is_already_there_without_waiting(
    ctx: zmq.Context,
) -> None:
    pub, sub = subscribed(ctx, ["Z"])
    try:
        started = time.monotonic()
        assert [m for r, m in sub.recv(0) if r == "Z"] == []  # (a late probe may be there)
        assert time.monotonic() - started < 0.05
        pub.send_multipart([b"Z", wire.pack({"txn": "1-1", "route": "Z", "seq": 1})])
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
            got = [m for r, m in sub.recv(0) if r == "Z"]
        assert [m["seq"] for m in got] == [1]
    finally:
        sub.close()
        pub.close(0)


# -- command line: argument parsing and rendering --


def test_fields_text_typed_json_and_pv_entries() -> None:
    fields = cmd.parse_fields(
        [
            "connection=api",
            "url=/a?x=1:=2",
            "timeout:=2000",
            'headers:=["X-A: 1"]',
            'xdata:={"k": [1, null]}',
            "pv.$ru=sip:alice@example.com",
            "pv.$var(n):=5",
            "data=",
        ]
    )
    assert fields == {
        "connection": "api",
        "url": "/a?x=1:=2",
        "timeout": 2000,
        "headers": ["X-A: 1"],
        "xdata": {"k": [1, None]},
        "pv": {"$ru": "sip:alice@example.com", "$var(n)": 5},
        "data": "",
    }
    assert cmd.parse_fields(['pv:={"$a": "1"}', "pv.$b=2"]) == {"pv": {"$a": "1", "$b": "2"}}


@pytest.mark.parametrize(
    ("token", "complaint"),
    [("nothing", "key=value"), ("n:={oops", "not JSON"), ("=v", "empty"), ("pv.=x", "pv.")],
)
def test_unreadable_fields_say_which_token(token: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        cmd.parse_fields([token])
    with pytest.raises(ValueError, match="non-map"):
        cmd.parse_fields(["pv=text", "pv.$x=1"])


def test_json_rendering_of_bytes_and_odd_keys() -> None:
    out = json.loads(
        cmd.render({"result": b"caf\xc3\xa9", "http_rb": b"\x00\xff", "m": {1: [b"x"]}, b"k": None})
    )
    assert out == {"result": "café", "http_rb": {"$base64": "AP8="}, "m": {"1": ["x"]}, "k": None}
    assert "\n" not in cmd.render({"a": [1, 2]}, pretty=False)
    assert cmd.parse_params(["1", "[2]", "text"]) == [1, [2], "text"]


# -- command line: run against a stand-in dispatcher --


class Dispatcher(threading.Thread):
    """A ROUTER in a thread that answers every request with answer(request)."""

    def __init__(self, ctx: zmq.Context, answer: Answer) -> None:
        super().__init__(daemon=True)
        self.sock, self.endpoint = bind_free(ctx, zmq.ROUTER)
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 10
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if self.sock.poll(20):
                identity, payload = self.sock.recv_multipart()
                req = wire.unpack(payload)
                self.requests.append(req)
                for msg in self.answer(req):
                    self.sock.send_multipart([identity, wire.pack(msg)])

    def __enter__(self) -> Dispatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.join(5)
        self.sock.close(0)


def parse(add: Callable[[argparse.ArgumentParser], None], argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


def test_call_prints_the_reply_and_a_suspended_query_s_resume(
    ctx: zmq.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    def answer(req: dict[str, Any]) -> list[Any]:
        if req.get("mode") == "suspend":
            return [
                {"id": req["id"], "rc": 1, "txn": "5-1", "suspended": True},
                {"type": "resume", "txn": "5-1", "http_ok": True, "http_rb": b"\xfe"},
            ]
        if req.get("worker") == 99:
            return [{"id": req["id"], "error": {"code": "bad_request", "message": "no worker"}}]
        return [{"id": req["id"], "rc": 200, "result": b"hello"}]

    with Dispatcher(ctx, answer) as disp:
        argv = ["--frontend", disp.endpoint, "--timeout", "5"]
        rc = cmd.run_call(
            parse(
                cmd.add_call_arguments, [*argv, "http_connect", "connection=api", "pv.$ru=sip:a@b"]
            )
        )
        assert rc == 0
        assert json.loads(capsys.readouterr().out) == {"id": 1, "rc": 200, "result": "hello"}
        assert disp.requests[0] == {
            "op": "http_connect",
            "connection": "api",
            "pv": {"$ru": "sip:a@b"},
            "id": 1,
        }

        rc = cmd.run_call(
            parse(
                cmd.add_call_arguments,
                [*argv, "http_async_query", "url=http://h/", "route=R", "mode=suspend"],
            )
        )
        assert rc == 0
        out = capsys.readouterr().out
        reply, end = json.JSONDecoder().raw_decode(out)
        resume = json.loads(out[end:])
        assert reply["suspended"] is True and resume["http_rb"] == {"$base64": "/g=="}

        rc = cmd.run_call(parse(cmd.add_call_arguments, [*argv, "http_connect", "worker:=99"]))
        assert rc == 1 and json.loads(capsys.readouterr().out)["error"]["code"] == "bad_request"


def test_call_exits_2_on_timeout_and_on_bad_arguments(
    ctx: zmq.Context, router: tuple[zmq.Socket, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, silent = router  # accepts the request, never answers
    rc = cmd.run_call(
        parse(cmd.add_call_arguments, ["--frontend", silent, "--timeout", "0.2", "rpc", "method=x"])
    )
    assert rc == 2 and "no reply for id 1" in capsys.readouterr().err
    rc = cmd.run_call(parse(cmd.add_call_arguments, ["--frontend", silent, "http_connect", "oops"]))
    assert rc == 2 and "'oops'" in capsys.readouterr().err
    rc = cmd.run_call(parse(cmd.add_call_arguments, ["--frontend", "nowhere", "rpc", "method=x"]))
    assert rc == 2 and "nowhere" in capsys.readouterr().err
    rc = cmd.run_rpc(
        parse(cmd.add_rpc_arguments, ["-c", "/nonexistent/sipcurl.ini", "core.workers"])
    )
    assert rc == 2 and "/nonexistent/sipcurl.ini" in capsys.readouterr().err
    rc = cmd.run_events(
        parse(cmd.add_events_arguments, ["--server-key", "short", "--timeout", "1"])
    )
    assert rc == 2 and "--server-key" in capsys.readouterr().err


def test_rpc_prints_the_result_or_the_error(
    ctx: zmq.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    def answer(req: dict[str, Any]) -> list[Any]:
        if req["method"] == "nope":
            return [
                {"id": req["id"], "error": {"code": "bad_request", "message": "unknown method"}}
            ]
        return [{"id": req["id"], "result": {"params": req["params"]}}]

    with Dispatcher(ctx, answer) as disp:
        argv = ["--frontend", disp.endpoint, "--timeout", "5"]
        assert (
            cmd.run_rpc(parse(cmd.add_rpc_arguments, [*argv, "stats.get_statistics", "all", "3"]))
            == 0
        )
        assert json.loads(capsys.readouterr().out) == {"params": ["all", 3]}
        assert cmd.run_rpc(parse(cmd.add_rpc_arguments, [*argv, "nope"])) == 1
        assert json.loads(capsys.readouterr().out)["message"] == "unknown method"


def test_events_prints_one_line_per_completion_until_count_or_timeout(
    ctx: zmq.Context, capsys: pytest.CaptureFixture[str]
) -> None:
    pub, endpoint = bind_free(ctx, zmq.PUB)
    stop = threading.Event()

    def publish() -> None:  # until the command has what it asked for (the subscriber joins late)
        seq = 0
        deadline = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < deadline:
            seq += 1
            pub.send_multipart(
                [b"EV", wire.pack({"txn": f"1-{seq}", "seq": seq, "http_rb": b"ok"})]
            )
            stop.wait(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        rc = cmd.run_events(
            parse(
                cmd.add_events_arguments,
                ["--events", endpoint, "EV", "--count", "2", "--timeout", "8"],
            )
        )
    finally:
        stop.set()
        thread.join(5)
        pub.close(0)
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(lines) == 2
    first = json.loads(lines[0])
    assert first["route"] == "EV" and first["http_rb"] == "ok"
    assert json.loads(lines[1])["seq"] == first["seq"] + 1

    silent_pub, quiet = bind_free(ctx, zmq.PUB)
    rc = cmd.run_events(
        parse(cmd.add_events_arguments, ["--events", quiet, "--count", "1", "--timeout", "0.2"])
    )
    silent_pub.close(0)
    assert rc == 2 and "0 of 1" in capsys.readouterr().err


def test_call_with_a_config_that_requires_curvezmq_gets_through(
    ctx: zmq.Context, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server_public, server_secret = zmq.curve_keypair()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    sock.curve_server = True
    sock.curve_secretkey = server_secret
    endpoint = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"
    conf = tmp_path / "sipcurl.ini"
    secret_text = server_secret.decode().replace("$", "$$")  # INI interpolation escapes "$"
    conf.write_text(f"[dispatcher]\nfrontend = {endpoint}\ncurve_secret_key = {secret_text}\n")
    args = parse(cmd.add_call_arguments, ["-c", str(conf), "--timeout", "5", "rpc", "method=m"])
    assert cmd.resolve_target(args).curve is not None
    assert cmd.resolve_target(args).curve.server_public == server_public  # type: ignore[union-attr]
    outcome: list[int] = []
    caller = threading.Thread(target=lambda: outcome.append(cmd.run_call(args)), daemon=True)
    caller.start()
    try:
        [(identity, req)] = take(sock, 1)
        sock.send_multipart([identity, wire.pack({"id": req["id"], "result": "secure"})])
        caller.join(5)
    finally:
        sock.close(0)
    assert outcome == [0] and json.loads(capsys.readouterr().out)["result"] == "secure"
