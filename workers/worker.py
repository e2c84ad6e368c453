"""A worker's loop: one poll over its ZeroMQ socket, curl's sockets and a wake-up pipe.

Synchronous operations are generators (see `workers.http_client`): each transfer they yield
joins the worker's CurlMulti engine, so async transfers keep moving while a synchronous call
waits for its server. A worker starts one synchronous job at a time, which is what makes it
behave as a Kamailio child does; the dispatcher sends it the next one early, and that one
waits in `sync_backlog` (its wait still counted in `queued_ms`).

Every job ends in exactly one `_reply` (inside try/finally where code can fail).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Generator
from dataclasses import replace
from typing import Any

import zmq

from dispatcher import protocol as wire
from dispatcher import zmqio
from dispatcher.config import Connection, Settings
from workers.curlerrors import curlerror_text
from workers.curlstate import CurlState
from workers.engine import Engine
from workers.http_async_client import AsyncHttpClient
from workers.http_client import HttpClient, Transfer

log = logging.getLogger("sipcurl.worker")
REPLY_BATCH = 8
REPLY_HOLD_S = 0.001


class Worker:
    def __init__(
        self,
        settings: Settings,
        rank: int,
        endpoint: str,
        *,
        context: zmq.Context | None = None,
        wakeup_fd: int | None = None,
    ) -> None:
        self.settings = settings
        self.rank = rank
        self.pid = os.getpid()
        self.info = {"rank": rank, "pid": self.pid}
        self._own_context = context is None
        self.ctx = context or zmq.Context()
        self.endpoint = endpoint
        self.remote = rank == 0  # `sipcurl worker --connect`: the dispatcher assigns the rank
        self.sock = self._connect()
        port = endpoint.rsplit(":", 1)[-1]
        self._dispatcher_ports = frozenset(
            {int(port)} if endpoint.startswith("tcp://") and port.isdigit() else ()
        )
        self.state = CurlState(settings)
        self.engine = Engine()
        self.http = HttpClient(settings, self.state)
        self.async_http = AsyncHttpClient(settings, self.engine, self._on_completion, self.info)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.wakeup_fd = wakeup_fd
        if wakeup_fd is not None:
            self.poller.register(wakeup_fd, zmq.POLLIN)
        self.jobs_served = 0
        self._outbox: list[bytes] = []  # reply and completion frames not sent yet
        self._outbox_since = 0.0
        self.sync_in_progress = 0
        # (ticket, queued_ms, request, arrived): synchronous jobs sent ahead of their turn
        self.sync_backlog: deque[tuple[int, float, dict[str, Any], float]] = deque()
        self.quitting = False
        self.heartbeat_s = settings.dispatcher.heartbeat_ms / 1000.0
        self.dispatcher_seen = time.monotonic()
        self._next_heartbeat = 0.0
        self._send(wire.READY, wire.pack({**self.info, "host": socket.gethostname()}))

    def _connect(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.sndhwm = sock.rcvhwm = 100_000
        sock.identity = f"{self.rank}:{self.pid}:{socket.gethostname()}".encode()
        sock.connect(self.endpoint)
        return sock

    def _reconnect(self) -> None:
        """The dispatcher went silent: start over with a new socket and a new READY."""
        log.warning("worker %d: dispatcher silent, reconnecting to %s", self.rank, self.endpoint)
        self.poller.unregister(self.sock)
        self.sock.close(0)
        self.sock = self._connect()
        self.poller.register(self.sock, zmq.POLLIN)
        self.dispatcher_seen = time.monotonic()
        self._send(wire.READY, wire.pack({**self.info, "host": socket.gethostname()}))

    # -- loop --

    def run(self) -> None:
        while not self.done():
            self.run_once(self._timeout_ms())

    def done(self) -> bool:
        if (
            self.quitting
            and self.sync_in_progress == 0
            and not self.sync_backlog
            and self.engine.active() == 0
        ):
            return True
        liveness = self.settings.dispatcher.heartbeat_liveness * self.heartbeat_s
        if time.monotonic() - self.dispatcher_seen > max(liveness, 1.0) * 2:
            if self.remote:
                self._reconnect()
                return False
            log.error("worker %d: dispatcher silent, exiting", self.rank)
            return True
        return False

    def _timeout_ms(self) -> int:
        curl = self.engine.timeout_ms()
        now = time.monotonic()
        wake = max(0, int((self._next_heartbeat - now) * 1000) + 1)
        if self._outbox:
            wake = min(wake, max(0, math.ceil((self._outbox_since + REPLY_HOLD_S - now) * 1000)))
        return wake if curl < 0 else min(curl, wake)

    def run_once(self, timeout_ms: int) -> None:
        self.engine.sync_poller(self.poller)
        events = self.poller.poll(timeout_ms)
        for sock, _ in events:
            if sock is self.sock:
                self._drain()
            elif sock == self.wakeup_fd:
                self._on_wakeup()
        self.engine.step(dict(events))
        while self.sync_backlog and not self.sync_in_progress:
            # The next call's request leaves in this turn, not after another poll.
            self._start_backlog()
            self.engine.step(())
        now = time.monotonic()
        if self._outbox and not self._hold_replies(now):
            self.flush()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_s
            beat = {"jobs_served": self.jobs_served, "async_inflight": self.async_http.in_flight()}
            self._send(wire.HEARTBEAT, wire.pack(beat))

    def _drain(self) -> None:
        for _ in range(1000):
            frames = zmqio.receive(self.sock)
            if frames is None:
                return
            self.dispatcher_seen = time.monotonic()
            self._on_message(frames)

    def _on_wakeup(self) -> None:
        try:
            while os.read(self.wakeup_fd or -1, 512):
                pass
        except OSError:
            pass

    def _on_message(self, frames: list[bytes]) -> None:
        kind = frames[0][:1]
        if kind == wire.JOB:  # the dispatcher sends what a worker may take now as one message
            for frame in frames:
                self._on_job(*wire.parse_job(frame))
        elif kind == wire.CANCEL:
            self.async_http.cancel(frames[1].decode())
        elif kind == wire.GATHER:
            self._send(wire.GATHER, frames[1], wire.pack(self.status()))
        elif kind == wire.RELOAD:
            self.reload([Connection(**fields) for fields in wire.unpack(frames[1])])
        elif kind == wire.QUIT:
            self.quitting = True
        elif kind == wire.WELCOME:
            self.info["rank"] = int(wire.unpack(frames[1])["rank"])

    # -- jobs --

    def _on_job(self, ticket: int, queued_ms: float, txn: str | None, raw: bytes) -> None:
        started = time.monotonic()
        req: dict[str, Any] = {}
        try:
            req = wire.unpack(raw)
            if req["op"] == "http_async_query":
                out = self.async_http.start(req, txn or "")
                self._reply(
                    ticket, req, out, queued_ms, started, transfer_started=out.get("rc") == 1
                )
                return
        except Exception as exc:  # a bug must still answer the job
            log.exception("worker %d: job failed", self.rank)
            self._reply(ticket, req, internal_error(exc), queued_ms, started)
            return
        if self.sync_in_progress or self.sync_backlog:
            self.sync_backlog.append((ticket, queued_ms, req, started))
            return
        self._start_sync(ticket, queued_ms, req, started)

    def _start_backlog(self) -> None:
        while self.sync_backlog and not self.sync_in_progress:
            ticket, queued_ms, req, arrived = self.sync_backlog.popleft()
            now = time.monotonic()
            self._start_sync(ticket, round(queued_ms + (now - arrived) * 1000.0, 3), req, now)

    def _start_sync(self, ticket: int, queued_ms: float, req: dict, started: float) -> None:
        try:
            result = self.http.run(req)
        except Exception as exc:  # a bug must still answer the job
            log.exception("worker %d: job failed", self.rank)
            self._reply(ticket, req, internal_error(exc), queued_ms, started)
            return
        if isinstance(result, dict):
            self._reply(ticket, req, result, queued_ms, started)
            return
        self.sync_in_progress += 1
        self._advance(result, None, ticket, req, queued_ms, started)

    def _advance(
        self,
        op: Generator[Transfer, int, dict],
        code: int | None,
        ticket: int,
        req: dict,
        queued_ms: float,
        started: float,
    ) -> None:
        """Resume a synchronous operation with its last transfer's curl code."""
        try:
            transfer = next(op) if code is None else op.send(code)
        except StopIteration as stop:
            self.sync_in_progress -= 1
            self._reply(ticket, req, stop.value, queued_ms, started)
            return
        except Exception as exc:
            log.exception("worker %d: operation failed", self.rank)
            self.sync_in_progress -= 1
            self._reply(ticket, req, internal_error(exc), queued_ms, started)
            return

        def on_done(_handle: Any, curl_code: int, _message: str) -> None:
            self._advance(op, curl_code, ticket, req, queued_ms, started)

        self.engine.add(transfer.pool, transfer.handle, on_done)

    def _reply(
        self,
        ticket: int,
        req: dict,
        fields: dict,
        queued_ms: float,
        began_at: float,
        *,
        transfer_started: bool = False,
    ) -> None:
        self.jobs_served += 1
        service_ms = round((time.monotonic() - began_at) * 1000.0, 3)
        reply = {
            "id": req.get("id") if isinstance(req, dict) else None,
            **fields,
            "worker": self.info,
            "timing": {"queued_ms": queued_ms, "service_ms": service_ms},
        }
        self._queue(wire.reply_frame(ticket, transfer_started, self.counters(), wire.pack(reply)))

    def _on_completion(self, completion: dict) -> None:
        self._queue(
            wire.completion_frame(completion["txn"], self.counters(), wire.pack(completion))
        )

    # -- state --

    def counters(self) -> list[int]:
        a = self.async_http.stats()
        return [
            self.state.connok,
            self.state.connfail,
            a.get("requests", 0),
            a.get("replies", 0),
            a.get("errors", 0),
            a.get("timeouts", 0),
        ]

    def status(self) -> dict[str, Any]:
        return {
            **self.info,
            "jobs_served": self.jobs_served,
            "tcp_connections": self.state.tcp_connections(self._dispatcher_ports),
            "async_inflight": self.async_http.in_flight(),
        }

    def reload(self, connections: list[Connection]) -> None:
        """New named connections from the dispatcher; handles of changed ones start afresh."""
        self.settings = replace(self.settings, connections=tuple(connections))
        self.state.reload(self.settings)
        self.http = HttpClient(self.settings, self.state)
        self.async_http.settings = self.settings

    def _hold_replies(self, now: float) -> bool:
        """While calls wait in the backlog the worker is saturated: replies then leave
        REPLY_BATCH at a time, or REPLY_HOLD_S after the first, whichever comes first (one
        message instead of one each, in the worker and in the dispatcher). Otherwise they
        leave at the end of the turn, as soon as they exist."""
        if not self.sync_backlog:
            return False
        return len(self._outbox) < REPLY_BATCH and now - self._outbox_since < REPLY_HOLD_S

    def _queue(self, frame: bytes) -> None:
        if not self._outbox:
            self._outbox_since = time.monotonic()
        self._outbox.append(frame)

    def flush(self) -> None:
        """Replies and completions of one loop turn leave as one message, in order."""
        if self._outbox:
            frames, self._outbox = self._outbox, []
            self._send(*frames)

    def _send(self, *frames: bytes) -> None:
        if self._outbox:
            self.flush()  # nothing overtakes what is already waiting
        try:
            zmqio.send(self.sock, frames)
        except zmq.ZMQError as exc:
            log.error("worker %d: cannot reach the dispatcher: %s", self.rank, exc)

    def close(self) -> None:
        self.engine.close()
        self.state.close()
        self.sock.close(0)
        if self._own_context:
            self.ctx.term()


def internal_error(exc: BaseException) -> dict[str, Any]:
    return {
        "rc": -1,
        "result": b"",
        "curlerror": curlerror_text(-1),
        "error_detail": f"internal error: {type(exc).__name__}: {exc}",
    }
