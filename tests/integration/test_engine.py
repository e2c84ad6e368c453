"""The CurlMulti engine driven by a real zmq.Poller against a real local server.

Plain pycurl handles, no http_async_client on top: what the worker loop relies on is that
transfers run concurrently, the loop sleeps in poll() instead of spinning, curl's fds come
and go from the poller, and each pool keeps its own connections.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable

import pycurl
import pytest
import zmq

from tests.servers import HttpTestServer, refused_url
from workers.engine import Engine, run_until_idle

Done = list[tuple[pycurl.Curl, int, str]]


def easy(url: str, sink: io.BytesIO | None = None) -> pycurl.Curl:
    handle = pycurl.Curl()
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.NOSIGNAL, 1)
    handle.setopt(pycurl.TIMEOUT_MS, 5000)
    handle.setopt(pycurl.WRITEFUNCTION, (sink or io.BytesIO()).write)
    return handle


def poller_fds(poller: zmq.Poller) -> set[int]:
    return {entry for entry, _flags in poller.sockets if isinstance(entry, int)}


def is_socket(fd: int) -> bool:
    return stat.S_ISSOCK(os.fstat(fd).st_mode)


def drive(
    engine: Engine,
    poller: zmq.Poller,
    deadline_s: float,
    each_turn: Callable[[], None] | None = None,
) -> int:
    """The worker loop's shape: sync fds, poll until curl's deadline, step. Returns turns."""
    turns = 0
    end = time.monotonic() + deadline_s
    while engine.active() and time.monotonic() < end:
        engine.sync_poller(poller)
        if each_turn is not None:
            each_turn()
        left_ms = max(int((end - time.monotonic()) * 1000), 0)
        timeout = engine.timeout_ms()
        poller.poll(left_ms if timeout < 0 else min(timeout, left_ms))
        engine.step()
        turns += 1
    engine.sync_poller(poller)
    return turns


def test_a_hundred_slow_transfers_finish_together(http_server: HttpTestServer) -> None:
    engine, done = Engine(), []
    handles = [easy(http_server.url("/slow?ms=300")) for _ in range(100)]
    start = time.monotonic()
    for handle in handles:
        engine.add("async", handle, lambda h, code, msg: done.append((h, code, msg)))
    drive(engine, zmq.Poller(), 5)
    elapsed = time.monotonic() - start
    assert len(done) == 100 and {code for _, code, _ in done} == {0}
    assert {h.getinfo(pycurl.RESPONSE_CODE) for h, _, _ in done} == {200}
    assert elapsed < 1.5, f"100 x 300 ms took {elapsed:.2f} s: not concurrent"
    engine.close()


def test_the_loop_sleeps_while_a_transfer_waits(http_server: HttpTestServer) -> None:
    engine, done = Engine(), []
    engine.add("async", easy(http_server.url("/slow?ms=300")), lambda *a: done.append(a))
    start = time.monotonic()
    turns = drive(engine, zmq.Poller(), 5)
    assert len(done) == 1 and done[0][1] == 0
    assert time.monotonic() - start >= 0.29
    assert turns < 30, f"{turns} loop turns for one 300 ms transfer: the loop spins"


def test_curl_fds_enter_the_poller_and_leave_it(http_server: HttpTestServer) -> None:
    engine, done, poller = Engine(), [], zmq.Poller()
    for _ in range(5):
        engine.add("async", easy(http_server.url("/slow?ms=200")), lambda *a: done.append(a))
    most = 0

    def look() -> None:
        nonlocal most
        # Sockets only: libcurl 8 also reports each multi's wake-up eventfd.
        sockets = [fd for fd in poller_fds(poller) if is_socket(fd)]
        most = max(most, len(sockets))

    drive(engine, poller, 5, look)
    assert len(done) == 5
    assert most == 5  # one socket per transfer while they wait on the server
    assert poller_fds(poller) == set()  # nothing left behind once they are done
    assert engine.timeout_ms() == -1 and engine.active() == 0


def test_a_second_poller_gets_every_fd(http_server: HttpTestServer) -> None:
    """run_until_idle polls with its own poller; the worker's must still get every fd."""
    engine, done = Engine(), []
    engine.add("p", easy(http_server.url("/echo")), lambda *a: done.append(a))
    run_until_idle(engine, 5)
    engine.add("p", easy(http_server.url("/stall")), lambda *a: done.append(a))
    first, second = zmq.Poller(), zmq.Poller()
    engine.step()
    engine.sync_poller(first)
    engine.sync_poller(second)
    assert poller_fds(first) and poller_fds(second) == poller_fds(first)
    assert len(done) == 1 and http_server.accepts == 1  # the kept connection was reused
    engine.close()


def test_pools_keep_connections_apart(http_server: HttpTestServer) -> None:
    engine, done = Engine(), []
    for pool in ("a", "a", "b", "b", None, None):
        engine.add(pool, easy(http_server.url("/echo")), lambda *a: done.append(a))
        run_until_idle(engine, 5)
    assert len(done) == 6 and all(code == 0 for _, code, _ in done)
    # "a" once, "b" once, and each one-off (None) transfer on a fresh connection.
    assert http_server.accepts == 4


def test_errors_reach_on_done_with_curl_code_and_text() -> None:
    engine, done = Engine(), []
    engine.add("async", easy(refused_url()), lambda *a: done.append(a))
    run_until_idle(engine, 5)
    ((_, code, message),) = done
    assert code == pycurl.E_COULDNT_CONNECT and message


def test_remove_aborts_without_a_completion(http_server: HttpTestServer) -> None:
    engine, done, poller = Engine(), [], zmq.Poller()
    stalled = easy(http_server.url("/stall"))
    engine.add("async", stalled, lambda *a: done.append(a))
    engine.add("async", easy(http_server.url("/echo")), lambda *a: done.append(a))
    engine.step()
    engine.remove(stalled)
    engine.remove(stalled)  # twice is harmless
    drive(engine, poller, 5)
    assert len(done) == 1 and done[0][0] is not stalled
    assert engine.active() == 0 and poller_fds(poller) == set()


def test_a_failing_callback_does_not_strand_the_others(
    http_server: HttpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    engine, done = Engine(), []

    def broken(*_args: object) -> None:
        raise RuntimeError("boom")

    engine.add("async", easy(http_server.url("/echo")), broken)
    for _ in range(3):
        engine.add("async", easy(http_server.url("/echo")), lambda *a: done.append(a))
    run_until_idle(engine, 5)
    assert len(done) == 3 and engine.active() == 0
    assert "boom" in caplog.text


def test_a_handle_curl_refuses_leaves_no_transfer_behind(http_server: HttpTestServer) -> None:
    engine, done = Engine(), []
    handle = easy(http_server.url("/slow?ms=200"))
    engine.add("a", handle, lambda *a: done.append(a))
    with pytest.raises(pycurl.error):
        engine.add("b", handle, lambda *a: done.append(a))  # already in pool "a"'s multi
    assert engine.active() == 1
    run_until_idle(engine, 5)
    assert len(done) == 1


def test_close_aborts_everything() -> None:
    engine, done, poller = Engine(), [], zmq.Poller()
    with HttpTestServer() as server:
        for _ in range(3):
            engine.add("async", easy(server.url("/stall")), lambda *a: done.append(a))
        engine.step()
        engine.sync_poller(poller)
        assert poller_fds(poller)
        engine.close()
    assert done == [] and engine.active() == 0 and poller_fds(poller) == set()
