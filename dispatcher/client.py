"""Python clients for sipcurl: blocking (`Client`), asyncio (`AsyncClient`), and the events
`Subscriber`. Replies are correlated by `id` (they may arrive out of order, or batched in
one array frame); a suspended transaction's later `resume` is correlated by `txn`.

Whatever arrives for someone else while one request is waited for is kept, in arrival
order, until it is waited for or `poll`ed. With several frontends (several dispatchers),
requests are spread round-robin over one DEALER each; ids stay unique per client, so every
reply still finds its request. A frame that is not a reply (not msgpack, not a map) is
counted in `malformed` and skipped: a broken peer must not break the caller's loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from dispatcher import protocol as wire

DEFAULT_FRONTEND = "tcp://127.0.0.1:5570"
DEFAULT_EVENTS = "tcp://127.0.0.1:5571"

# A kept message is found again by ("id", id) for a reply or ("txn", txn) for a resume.
Key = tuple[str, Any]


@dataclass(frozen=True)
class CurveKeys:
    """CurveZMQ client keys (z85 text) and the server's public key."""

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def for_server(cls, server_public: str | bytes, secret: str | bytes | None = None) -> CurveKeys:
        """Keys to reach a server: the given client secret, or a fresh pair (enough when the
        server keeps no allow list)."""
        server = server_public.encode() if isinstance(server_public, str) else server_public
        if secret is None:
            public, own_secret = zmq.curve_keypair()
        else:
            own_secret = secret.encode() if isinstance(secret, str) else secret
            public = zmq.curve_public(own_secret)
        return cls(public, own_secret, server)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server_public


def _endpoints(value: str | Sequence[str]) -> list[str]:
    endpoints = [value] if isinstance(value, str) else list(value)
    if not endpoints:
        raise ValueError("no endpoint given")
    return endpoints


def _connect_all(
    ctx: zmq.Context, kind: int, endpoints: list[str], curve: CurveKeys | None, sndtimeo_ms: int
) -> list[Any]:
    """One socket per endpoint; a bad endpoint closes what was opened and says which it was."""
    socks: list[Any] = []
    for endpoint in endpoints:
        sock = ctx.socket(kind)
        socks.append(sock)
        sock.linger = 0
        sock.sndtimeo = sndtimeo_ms  # a peer that never completes its handshake
        try:
            if curve is not None:
                curve.apply(sock)
            sock.connect(endpoint)
        except (zmq.ZMQError, TypeError, ValueError) as err:
            for s in socks:
                s.close(0)
            raise ValueError(f"cannot connect to {endpoint!r}: {err}") from None
    return socks


def _key(msg: Any) -> Key | None:
    if not isinstance(msg, dict):
        return None
    key: Key = ("txn", msg.get("txn")) if msg.get("type") == "resume" else ("id", msg.get("id"))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _messages(frame: bytes) -> Iterable[Any]:
    try:
        return wire.iter_replies(frame)
    except Exception:  # msgpack raises several unrelated types for bad input
        return (None,)


class Client:
    """Blocking client: one DEALER per frontend, replies correlated by id."""

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
        self._socks: list[zmq.Socket] = _connect_all(
            self._ctx, zmq.DEALER, _endpoints(frontend), curve, int(timeout_s * 1000)
        )
        self._poller = zmq.Poller()
        for sock in self._socks:
            self._poller.register(sock, zmq.POLLIN)
        self._rr = itertools.cycle(self._socks)
        self._ids = itertools.count(1)
        self._kept: dict[Key, dict[str, Any]] = {}
        self.malformed = 0

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

    def submit_many(self, reqs: list[dict[str, Any]]) -> list[Any]:
        """One batched frame; each request still gets its own reply."""
        batch = [dict(r) for r in reqs]
        for r in batch:
            r.setdefault("id", next(self._ids))
        ids = [r["id"] for r in batch]
        if batch:
            self._send(wire.pack(batch), ids)
        return ids

    def _send(self, payload: bytes, rid: Any) -> None:
        try:
            next(self._rr).send(payload)
        except zmq.Again:
            raise TimeoutError(f"could not send request {rid!r}: no frontend took it") from None

    def request(self, req: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        return self.wait(self.submit(req), timeout_s)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        return self.request({"op": op, **fields})

    def wait(self, rid: Any, timeout_s: float | None = None) -> dict[str, Any]:
        """The reply to `rid`; replies to other ids that come first are kept."""
        return self._wait(("id", rid), timeout_s, f"no reply for id {rid!r}")

    def wait_resume(self, txn: str, timeout_s: float | None = None) -> dict[str, Any]:
        """The `{"type": "resume"}` message of a suspended transaction."""
        return self._wait(("txn", txn), timeout_s, f"no resume for transaction {txn!r}")

    def _wait(self, key: Key, timeout_s: float | None, missing: str) -> dict[str, Any]:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while key not in self._kept:
            if not self._receive(deadline):
                raise TimeoutError(missing)
        return self._kept.pop(key)

    def poll(self, timeout_s: float) -> list[dict[str, Any]]:
        """Everything that arrived (replies and resumes, in arrival order), taken out of the
        client's keeping; waits up to `timeout_s` only when nothing is kept yet."""
        self._receive(time.monotonic() + (0.0 if self._kept else timeout_s))
        out = list(self._kept.values())
        self._kept.clear()
        return out

    def _receive(self, deadline: float) -> bool:
        """One poll until `deadline`, then drain every socket. False once the time is up
        with nothing received, so callers' loops are bounded."""
        left = max(0.0, deadline - time.monotonic())
        got = False
        for sock, _ in self._poller.poll(int(left * 1000) + 1 if left else 0):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                got = True
                for msg in _messages(frames[-1]):  # [-1]: tolerate a REQ-style delimiter
                    key = _key(msg)
                    if key is None:
                        self.malformed += 1
                    else:
                        self._kept.pop(key, None)  # re-insert: arrival order for poll()
                        self._kept[key] = msg
        return got or time.monotonic() < deadline


class AsyncClient:
    """asyncio flavour. One reader task per socket hands each reply to the coroutine waiting
    for its id (or resume for its txn), or keeps it until someone waits or polls."""

    def __init__(
        self,
        frontend: str | Sequence[str] = DEFAULT_FRONTEND,
        *,
        context: zmq.asyncio.Context | None = None,
        timeout_s: float = 10.0,
        curve: CurveKeys | None = None,
    ) -> None:
        self._ctx = context or zmq.asyncio.Context.instance()
        self.timeout_s = timeout_s
        self._socks: list[zmq.asyncio.Socket] = _connect_all(
            self._ctx, zmq.DEALER, _endpoints(frontend), curve, int(timeout_s * 1000)
        )
        self._rr = itertools.cycle(self._socks)
        self._ids = itertools.count(1)
        self._kept: dict[Key, dict[str, Any]] = {}
        self._waiters: dict[Key, asyncio.Future[dict[str, Any]]] = {}
        self._arrived = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []
        self.malformed = 0

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _start_readers(self) -> None:
        if not self._readers and self._socks:
            loop = asyncio.get_running_loop()
            self._readers = [loop.create_task(self._read(s)) for s in self._socks]

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError:
                return  # closed under us
            for msg in _messages(frames[-1]):
                self._deliver(msg)

    def _deliver(self, msg: Any) -> None:
        key = _key(msg)
        if key is None:
            self.malformed += 1
            return
        fut = self._waiters.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)
            return
        self._kept.pop(key, None)
        self._kept[key] = msg
        self._arrived.set()

    async def submit(self, req: dict[str, Any]) -> Any:
        req = dict(req)
        req.setdefault("id", next(self._ids))
        await self._send(wire.pack(req), req["id"])
        return req["id"]

    async def submit_many(self, reqs: list[dict[str, Any]]) -> list[Any]:
        batch = [dict(r) for r in reqs]
        for r in batch:
            r.setdefault("id", next(self._ids))
        ids = [r["id"] for r in batch]
        if batch:
            await self._send(wire.pack(batch), ids)
        return ids

    async def _send(self, payload: bytes, rid: Any) -> None:
        self._start_readers()
        try:
            await asyncio.wait_for(next(self._rr).send(payload), self.timeout_s)
        except (TimeoutError, zmq.Again):
            raise TimeoutError(f"could not send request {rid!r}: no frontend took it") from None

    async def request(self, req: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        return await self.wait(await self.submit(req), timeout_s)

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        return await self.request({"op": op, **fields})

    async def wait(self, rid: Any, timeout_s: float | None = None) -> dict[str, Any]:
        return await self._wait(("id", rid), timeout_s, f"no reply for id {rid!r}")

    async def wait_resume(self, txn: str, timeout_s: float | None = None) -> dict[str, Any]:
        return await self._wait(("txn", txn), timeout_s, f"no resume for transaction {txn!r}")

    async def _wait(self, key: Key, timeout_s: float | None, missing: str) -> dict[str, Any]:
        self._start_readers()
        if key in self._kept:
            return self._kept.pop(key)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        try:
            return await asyncio.wait_for(fut, self.timeout_s if timeout_s is None else timeout_s)
        except TimeoutError:
            raise TimeoutError(missing) from None
        finally:
            if self._waiters.get(key) is fut:
                del self._waiters[key]

    async def poll(self, timeout_s: float) -> list[dict[str, Any]]:
        """Everything kept (nobody waited for it), waiting up to `timeout_s` for a first one."""
        self._start_readers()
        if not self._kept:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
            except TimeoutError:
                pass
        out = list(self._kept.values())
        self._kept.clear()
        return out

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers = []
        for fut in self._waiters.values():
            fut.cancel()
        self._waiters.clear()
        for sock in self._socks:
            sock.close(0)
        self._socks = []


class Subscriber:
    """Reads completions from one or more events sockets and counts the ones missed.

    ZeroMQ subscriptions match topic prefixes; only the exact routes asked for are
    returned. `seq` counts per dispatcher and route (the txn's prefix names the
    dispatcher), so a jump in it is a completion this subscriber never got.
    """

    def __init__(
        self,
        events: str | Sequence[str] = DEFAULT_EVENTS,
        routes: Sequence[str] = (),
        *,
        context: zmq.Context | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self._ctx = context or zmq.Context.instance()
        self._routes = frozenset(routes)
        endpoints = _endpoints(events)
        self.sock = self._ctx.socket(zmq.SUB)
        self.sock.linger = 0
        for route in self._routes or ("",):
            self.sock.setsockopt(zmq.SUBSCRIBE, route.encode())
        try:
            if curve is not None:
                curve.apply(self.sock)
            for endpoint in endpoints:
                self.sock.connect(endpoint)
        except (zmq.ZMQError, TypeError, ValueError) as err:
            self.sock.close(0)
            raise ValueError(f"cannot connect to {endpoints!r}: {err}") from None
        self._last_seq: dict[tuple[str, str], int] = {}
        self.missed = 0
        self.malformed = 0

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv(self, timeout_s: float) -> list[tuple[str, dict[str, Any]]]:
        """(route, completion) pairs: returns as soon as some arrived, else after timeout_s
        (0: only what is already here)."""
        out: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        while not out:
            left = deadline - time.monotonic()
            if not self.sock.poll(int(left * 1000) + 1 if left > 0 else 0):
                break
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 2:
                    self.malformed += 1
                    continue
                route = frames[0].decode("utf-8", "replace")
                if self._routes and route not in self._routes:
                    continue  # a longer route that merely starts with a subscribed one
                for msg in _messages(frames[1]):
                    if not isinstance(msg, dict):
                        self.malformed += 1
                        continue
                    self._note(route, msg)
                    out.append((route, msg))
        return out

    def _note(self, route: str, msg: dict[str, Any]) -> None:
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        source = (str(msg.get("txn", "")).split("-", 1)[0], route)
        last = self._last_seq.get(source)
        if last is not None and seq > last + 1:
            self.missed += seq - last - 1
        # PUB/SUB keeps one publisher's order, so a smaller seq means it restarted.
        self._last_seq[source] = seq

    def gaps(self) -> int:
        """Completions missed so far, from jumps in each publisher's `seq`."""
        return self.missed

    def close(self) -> None:
        self.sock.close(0)
