"""Python clients for sipcurl: blocking (`Client`), asyncio (`AsyncClient`), and the events
`Subscriber`. Replies are correlated by `id` (they may arrive out of order, or batched in
one array frame); a suspended transaction's later `resume` is correlated by `txn`.

With several frontends (several dispatchers), requests are spread round-robin over one
DEALER each; ids stay unique per client, so every reply still finds its request.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from dispatcher import protocol as wire

DEFAULT_FRONTEND = "tcp://127.0.0.1:5570"
DEFAULT_EVENTS = "tcp://127.0.0.1:5571"


@dataclass(frozen=True)
class CurveKeys:
    """CurveZMQ client keys (z85 text) and the server's public key."""

    public: bytes
    secret: bytes
    server_public: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server_public


def _endpoints(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class Client:
    def __init__(
        self,
        frontend: str | Sequence[str] = DEFAULT_FRONTEND,
        *,
        context: zmq.Context | None = None,
        timeout_s: float = 10.0,
        curve: CurveKeys | None = None,
    ) -> None:
        self._ctx = context or zmq.Context.instance()
        self.timeout_s = timeout_s
        self._socks: list[zmq.Socket] = []
        self._poller = zmq.Poller()
        for endpoint in _endpoints(frontend):
            sock = self._ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.sndtimeo = int(timeout_s * 1000)  # a peer that never completes its handshake
            if curve is not None:
                curve.apply(sock)
            sock.connect(endpoint)
            self._socks.append(sock)
            self._poller.register(sock, zmq.POLLIN)
        self._rr = itertools.cycle(self._socks)
        self._ids = itertools.count(1)
        self._replies: dict[Any, dict[str, Any]] = {}
        self._resumes: dict[Any, dict[str, Any]] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in self._socks:
            sock.close(0)
        self._socks.clear()

    def submit(self, req: dict[str, Any]) -> Any:
        """Send one request; returns its id (one is chosen when the request has none)."""
        req = dict(req)
        req.setdefault("id", next(self._ids))
        self._send(wire.pack(req), req["id"])
        return req["id"]

    def _send(self, payload: bytes, rid: Any) -> None:
        try:
            next(self._rr).send(payload)
        except zmq.Again:
            raise TimeoutError(f"could not send request {rid!r}: no frontend took it") from None

    def submit_many(self, reqs: list[dict[str, Any]]) -> list[Any]:
        """One batched frame; each request still gets its own reply."""
        batch = [dict(r) for r in reqs]
        for r in batch:
            r.setdefault("id", next(self._ids))
        self._send(wire.pack(batch), [r["id"] for r in batch])
        return [r["id"] for r in batch]

    def request(self, req: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        return self.wait(self.submit(req), timeout_s)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        return self.request({"op": op, **fields})

    def wait(self, rid: Any, timeout_s: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while rid not in self._replies:
            if not self._receive(deadline):
                raise TimeoutError(f"no reply for id {rid!r}")
        return self._replies.pop(rid)

    def wait_resume(self, txn: str, timeout_s: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while txn not in self._resumes:
            if not self._receive(deadline):
                raise TimeoutError(f"no resume for transaction {txn!r}")
        return self._resumes.pop(txn)

    def poll(self, timeout_s: float) -> list[dict[str, Any]]:
        """Everything that arrived (replies and resumes), taken out of the client's keeping."""
        self._receive(time.monotonic() + timeout_s)
        out = list(self._replies.values()) + list(self._resumes.values())
        self._replies.clear()
        self._resumes.clear()
        return out

    def _receive(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        got = False
        for sock, _ in self._poller.poll(int(left * 1000) + 1):
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                got = True
                for msg in wire.iter_replies(frame):
                    if msg.get("type") == "resume":
                        self._resumes[msg.get("txn")] = msg
                    else:
                        self._replies[msg.get("id")] = msg
        return got or time.monotonic() < deadline


class AsyncClient:
    """asyncio flavour: a reader task routes replies to per-id futures."""

    def __init__(
        self,
        frontend: str | Sequence[str] = DEFAULT_FRONTEND,
        *,
        timeout_s: float = 10.0,
        curve: CurveKeys | None = None,
    ) -> None:
        self._ctx = zmq.asyncio.Context.instance()
        self.timeout_s = timeout_s
        self._socks = []
        for endpoint in _endpoints(frontend):
            sock = self._ctx.socket(zmq.DEALER)
            sock.linger = 0
            if curve is not None:
                curve.apply(sock)
            sock.connect(endpoint)
            self._socks.append(sock)
        self._rr = itertools.cycle(self._socks)
        self._ids = itertools.count(1)
        self._waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._resumes: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _start_readers(self) -> None:
        if not self._readers:
            self._readers = [
                asyncio.get_running_loop().create_task(self._read(s)) for s in self._socks
            ]

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            frame = await sock.recv()
            for msg in wire.iter_replies(frame):
                if msg.get("type") == "resume":
                    fut = self._resumes.setdefault(
                        msg.get("txn"), asyncio.get_running_loop().create_future()
                    )
                else:
                    fut = self._waiting.setdefault(
                        msg.get("id"), asyncio.get_running_loop().create_future()
                    )
                if not fut.done():
                    fut.set_result(msg)

    async def request(self, req: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        self._start_readers()
        req = dict(req)
        rid = req.setdefault("id", next(self._ids))
        fut = self._waiting.setdefault(rid, asyncio.get_running_loop().create_future())
        await next(self._rr).send(wire.pack(req))
        try:
            return await asyncio.wait_for(fut, self.timeout_s if timeout_s is None else timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no reply for id {rid!r}") from None
        finally:
            self._waiting.pop(rid, None)

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        return await self.request({"op": op, **fields})

    async def wait_resume(self, txn: str, timeout_s: float | None = None) -> dict[str, Any]:
        self._start_readers()
        fut = self._resumes.setdefault(txn, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(fut, self.timeout_s if timeout_s is None else timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no resume for transaction {txn!r}") from None
        finally:
            self._resumes.pop(txn, None)

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        for sock in self._socks:
            sock.close(0)


class Subscriber:
    """Reads completions from one or more events sockets; counts gaps in each `seq`."""

    def __init__(
        self,
        events: str | Sequence[str] = DEFAULT_EVENTS,
        routes: Sequence[str] = (),
        *,
        context: zmq.Context | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self._ctx = context or zmq.Context.instance()
        self.sock = self._ctx.socket(zmq.SUB)
        self.sock.linger = 0
        if curve is not None:
            curve.apply(self.sock)
        for route in routes or ("",):
            self.sock.setsockopt(zmq.SUBSCRIBE, route.encode())
        for endpoint in _endpoints(events):
            self.sock.connect(endpoint)
        self._last_seq: dict[tuple[str, Any], int] = {}
        self.missed = 0

    def recv(self, timeout_s: float) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0 and not out:
            if not self.sock.poll(int(left * 1000) + 1):
                break
            while True:
                try:
                    topic, payload = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                route = topic.decode("utf-8", "replace")
                for msg in wire.iter_replies(payload):
                    self._note(msg)
                    out.append((route, msg))
        return out

    def _note(self, msg: dict[str, Any]) -> None:
        seq = msg.get("seq")
        if not isinstance(seq, int):
            return
        # seq counts per dispatcher and route; the txn prefix names the dispatcher.
        source = (str(msg.get("txn", "")).split("-", 1)[0], msg.get("route"))
        last = self._last_seq.get(source)
        if last is not None and seq > last + 1:
            self.missed += seq - last - 1
        self._last_seq[source] = max(seq, last or 0)

    def gaps(self) -> int:
        return self.missed

    def close(self) -> None:
        self.sock.close(0)
