"""The dispatcher: one poll loop over the frontend, the workers' socket, signals and children.

Lifecycle: `start()` binds the sockets and forks the workers (after which nothing here
touches curl), `run()` loops until SIGTERM/SIGINT has drained the work in flight, `close()`
releases everything. Signal handlers only record the signal; the loop acts on it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import zmq

from dispatcher import protocol as wire
from dispatcher import zmqio
from dispatcher.config import Settings
from dispatcher.errors import WireError
from dispatcher.hostguard import GUARD_RC, HostGuard, target_host
from dispatcher.ledger import Job, Ledger
from dispatcher.routing import Router, WorkerSlot
from dispatcher.rpc import Rpc
from dispatcher.security import CurveServer
from dispatcher.supervisor import Supervisor, WorkerTarget

log = logging.getLogger("sipcurl.dispatcher")

STARTUP_TIMEOUT_S = 15.0
GATHER_TIMEOUT_S = 2.0
COUNTER_NAMES = ("connok", "connfail", "requests", "replies", "errors", "timeouts")


class StartupError(RuntimeError):
    pass


@dataclass
class Gather:
    """An RPC waiting for every worker's status."""

    client: bytes
    delimiter: bool
    rid: Any
    method: str
    params: list
    deadline: float
    waiting: set[int]
    results: dict[int, dict] = field(default_factory=dict)


def failed_completion(job: Job, slot: WorkerSlot | None, reason: str) -> dict[str, Any]:
    """The completion a transfer gets when it cannot finish (its worker died, or it timed out
    while suspended): the same fields as a real one, http_ok false."""
    return {
        "id": job.rid,
        "txn": job.txn,
        "route": job.route,
        "xdata": job.xdata,
        "http_ok": False,
        "http_err": reason,
        "http_rs": 0,
        "http_rr": "",
        "http_hdrs": [],
        "http_rb": b"",
        "http_bs": 0,
        "http_time": dict.fromkeys(wire.HTTP_TIME_FIELDS, 0.0),
        "worker": {"rank": job.rank, "pid": slot.pid if slot else 0},
    }


class Dispatcher:
    def __init__(self, settings: Settings, worker_target: WorkerTarget) -> None:
        self.settings = settings
        conf = settings.dispatcher
        self.worker_endpoint = conf.worker_endpoint or self._private_ipc_endpoint()
        self.supervisor = Supervisor(worker_target, settings, self.worker_endpoint)
        self.guard = HostGuard(conf.host_guard)
        # The guard counts workers waiting on a host, so it sends a job only when it starts.
        self.router = Router(
            conf.routing,
            conf.async_max_transfers,
            sync_depth=1 if self.guard.limit else conf.sync_depth,
        )
        self.ledger = Ledger(txn_prefix=str(os.getpid()))
        self.rpc = Rpc(self)
        self.counters: dict[int, list[int]] = {}  # rank -> live worker's counters
        self.retired = [0] * len(COUNTER_NAMES)  # counters of workers that died
        self.by_identity: dict[bytes, int] = {}
        self.remote_ranks: dict[bytes, int] = {}  # identity of a remote worker -> its rank
        self.gathers: dict[int, Gather] = {}
        self._gather_ids = 0
        self.event_seq: dict[str, int] = defaultdict(
            int
        )  # per route: a route's subscriber sees gaps
        self.resume_seq = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self._signals: list[int] = []
        self._outbox: dict[tuple[bytes, bool], list[bytes]] = defaultdict(list)
        self._events_out: dict[str, list[bytes]] = defaultdict(list)
        self._to_pump: dict[int, WorkerSlot] = {}  # workers that may take more, this turn
        self._next_heartbeat = 0.0
        self._ctx: zmq.Context | None = None

    @staticmethod
    def _private_ipc_endpoint() -> str:
        folder = tempfile.mkdtemp(prefix="sipcurl-")
        return f"ipc://{folder}/workers.ipc"

    # -- lifecycle --

    def start(self) -> None:
        conf = self.settings.dispatcher
        for rank in range(1, conf.workers + 1):
            self.router.add(rank)
        # Fork first: no zmq context exists yet, so none can leak into a child.
        for rank in range(1, conf.workers + 1):
            self.supervisor.spawn_worker(rank)
        ctx = self._ctx = zmq.Context()
        ctx.linger = 0
        self.curve = CurveServer(ctx, conf)
        self.frontend = ctx.socket(zmq.ROUTER)
        self.frontend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.frontend.sndhwm = self.frontend.rcvhwm = 100_000
        self.curve.secure(self.frontend)
        self.frontend.bind(conf.frontend)
        self.events = ctx.socket(zmq.PUB)
        self.events.sndhwm = 100_000
        self.curve.secure(self.events)
        self.events.bind(conf.events)
        self.backend = ctx.socket(zmq.ROUTER)
        self.backend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.backend.sndhwm = self.backend.rcvhwm = 100_000
        self.backend.bind(self.worker_endpoint)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._record_signal)
        self._poller = zmq.Poller()
        for sock in (self.frontend, self.backend, self._wake_r):
            self._poller.register(sock, zmq.POLLIN)
        self._sentinels: dict[int, int] = {}
        self._wait_for_workers()
        log.info(
            "sipcurl serving on %s, events on %s, %d workers",
            conf.frontend,
            conf.events,
            conf.workers,
        )

    def _wait_for_workers(self) -> None:
        """A child that dies before it is ready stops start-up: no respawn loop."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while any(slot.state != "ready" for slot in self.router.slots.values()):
            for rank, proc in self.supervisor.procs.items():
                if proc.exitcode is not None:
                    raise StartupError(f"worker {rank} exited with {proc.exitcode} while starting")
            if time.monotonic() > deadline:
                raise StartupError("workers did not become ready in time")
            if self.backend.poll(100):
                self._on_backend(self.backend.recv_multipart())

    def _record_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)  # no logging here: the loop acts on it

    def run(self) -> int:
        while not self._finished():
            try:
                self.run_once(self._poll_timeout_ms())
            except Exception:  # a bug in one turn must not take every job in flight with it
                log.exception("dispatcher: error in the loop; carrying on")
                self._flush()
        return 0

    def close(self) -> None:
        self.supervisor.stop(timeout_s=2.0)
        signal.set_wakeup_fd(-1)
        for sock in (self.frontend, self.events, self.backend):
            sock.close(0)
        self.curve.stop()
        if self._ctx is not None:
            self._ctx.term()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self.worker_endpoint.startswith("ipc://"):
            try:
                os.unlink(self.worker_endpoint[6:])
                os.rmdir(os.path.dirname(self.worker_endpoint[6:]))
            except OSError:
                pass

    def _finished(self) -> bool:
        if not self.stopping:
            return False
        if self.ledger.in_flight() == 0 and not self.gathers:
            return True
        if time.monotonic() >= self.stop_deadline:
            self._abandon_in_flight()
            return True
        return False

    # -- the loop --

    def _poll_timeout_ms(self) -> int:
        now = time.monotonic()
        wake = self._next_heartbeat
        deadline = self.ledger.next_deadline()
        if deadline is not None:
            wake = min(wake, deadline)
        for gather in self.gathers.values():
            wake = min(wake, gather.deadline)
        if self.stopping:
            wake = min(wake, self.stop_deadline)
        return max(0, int((wake - now) * 1000) + 1)

    def _sync_poller(self) -> dict[int, int]:
        """Children come and go; the poller follows their sentinels without being rebuilt."""
        sentinels = self.supervisor.sentinels()
        if sentinels.keys() != self._sentinels.keys():
            for fd in self._sentinels.keys() - sentinels.keys():
                self._poller.unregister(fd)
            for fd in sentinels.keys() - self._sentinels.keys():
                self._poller.register(fd, zmq.POLLIN)
        self._sentinels = sentinels
        return sentinels

    def run_once(self, timeout_ms: int) -> None:
        sentinels = self._sync_poller()
        ready = dict(self._poller.poll(timeout_ms))
        if self._wake_r in ready:
            self._drain_wakeups()
        if self.backend in ready:
            self._drain(self.backend, self._on_backend)
        if self.frontend in ready:
            self._drain(self.frontend, self._on_frontend)
        for fd, rank in sentinels.items():
            if fd in ready:
                self._on_worker_exit(rank)
        now = time.monotonic()
        for job in self.ledger.expired(now):
            self._send_cancel(job)
            self._complete(
                job,
                wire.pack(
                    failed_completion(job, self.router.slots.get(job.rank), "suspend timeout")
                ),
            )
        for gid in [g for g, gather in self.gathers.items() if gather.deadline <= now]:
            self._finish_gather(gid)
        if now >= self._next_heartbeat:
            self._heartbeat(now)
        self._flush()

    def _drain(self, sock: zmq.Socket, handler: Any, budget: int = 1000) -> None:
        """Take what is queued now (bounded, so neither side starves the other)."""
        for _ in range(budget):
            frames = zmqio.receive(sock)
            if frames is None:
                return
            handler(frames)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except OSError:
            pass
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.handle_term()
            elif signum == signal.SIGHUP:
                self.handle_hup()

    def handle_term(self) -> None:
        if not self.stopping:
            log.info("stopping: draining %d jobs in flight", self.ledger.in_flight())
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.settings.dispatcher.shutdown_grace

    def handle_hup(self) -> None:
        ok, message = self.reload_connections()
        (log.info if ok else log.error)("SIGHUP reload: %s", message)

    # -- frontend --

    def _on_frontend(self, frames: list[bytes]) -> None:
        identity = frames[0]
        if len(frames) == 3 and frames[1] == b"":
            delimiter, payload = True, frames[2]
        elif len(frames) == 2:
            delimiter, payload = False, frames[1]
        else:
            self._queue(
                identity,
                False,
                wire.error_reply(None, "bad_request", f"expected one frame, got {len(frames) - 1}"),
            )
            return
        try:
            for req, raw in wire.split_payload(payload):
                self._on_request(identity, delimiter, req, raw)
        except WireError as err:
            self._queue(identity, delimiter, wire.error_reply(None, err.code, err.message))

    def _on_request(self, identity: bytes, delimiter: bool, req: Any, raw: bytes) -> None:
        rid = wire.request_id(req)
        try:
            wire.validate_request(req)
            if self.stopping:
                raise WireError("shutting_down", "the service is stopping")
            op = req["op"]
            if op == "rpc":
                self.rpc.call(identity, delimiter, rid, req["method"], req.get("params") or [])
                return
            if op == "t_cancel":
                self._queue(
                    identity, delimiter, wire.pack({"id": rid, **self.t_cancel(req["txn"])})
                )
                return
            limit = self.settings.dispatcher.max_pending
            # What waits is part of what is in flight: count it only when that could reach it.
            if self.ledger.in_flight() >= limit and self.router.pending() >= limit:
                raise WireError(
                    "overloaded", f"{self.settings.dispatcher.max_pending} jobs already queued"
                )
            sync = op in wire.SYNC_OPS
            try:
                rank = self.router.choose(sync=sync, pin=req.get("worker"), key=req.get("key"))
            except LookupError as exc:
                raise WireError("bad_request", str(exc)) from None
        except WireError as err:
            self._queue(identity, delimiter, wire.error_reply(rid, err.code, err.message))
            return
        job = self.ledger.admit(identity, rid, op, raw, time.monotonic())
        job.rank, job.sync, job.req_delimiter = rank, sync, delimiter
        if sync and self.guard.limit:
            job.host = target_host(req, self.settings)
        if rank == 0:  # the shared queue: the first free worker takes it
            self.router.shared_sync.append(job.ticket)
            for free in self.router.slots.values():
                if free.sync_ticket is None:
                    self._pump(free)
            return
        slot = self.router.slots[rank]
        if sync:
            slot.sync_queue.append(job.ticket)
        else:
            job.txn = self.ledger.new_txn()
            job.mode = sys.intern(str(req.get("mode", "event")))
            job.route = req["route"]
            job.xdata = req.get("xdata")
            slot.async_queue.append(job.ticket)
        self._pump(slot)

    def t_cancel(self, txn: str) -> dict[str, Any]:
        job = self.ledger.transfers.get(txn)
        if job is None or job.mode != "suspend":
            return {"rc": -1}
        self.ledger.finish_transfer(txn)
        self._send_cancel(job)
        return {"rc": 1, "txn": txn}

    def _send_cancel(self, job: Job) -> None:
        slot = self.router.slots.get(job.rank)
        if slot is None or job.txn is None:
            return
        self._async_done(slot, job.txn)
        if slot.identity is not None and slot.state == "ready":
            self._to_worker(slot, [wire.CANCEL, job.txn.encode()])
        self._pump(slot)  # the freed transfer slot may start an async job that waits for one

    # -- scheduling --

    def _pump(self, slot: WorkerSlot) -> None:
        """The worker may take more: it is sent them before this turn's replies leave, so a
        client's batch or a worker's batch of replies makes one message per worker."""
        self._to_pump[slot.rank] = slot

    def _pump_pending(self) -> None:
        while self._to_pump:
            pending, self._to_pump = self._to_pump, {}
            for slot in pending.values():
                self._pump_now(slot)

    def _pump_now(self, slot: WorkerSlot) -> None:
        if slot.identity is None or slot.state != "ready":
            return
        now = time.monotonic()
        frames: list[bytes] = []
        taken: list[tuple[Job, bool]] = []  # (job, came from the shared queue)
        if self.router.wants_sync(slot):
            while (ticket := self.router.next_sync(slot)) is not None:
                self._take(slot, ticket, now, frames, taken)
        while (ticket := self.router.next_async(slot)) is not None:
            self._take(slot, ticket, now, frames, taken)
        if frames and not self._to_worker(slot, frames):
            self._untake(slot, taken)

    def _take(
        self,
        slot: WorkerSlot,
        ticket: int,
        now: float,
        frames: list[bytes],
        taken: list[tuple[Job, bool]],
    ) -> None:
        job = self.ledger.jobs.get(ticket)
        if job is None:
            return
        queued_ms = round((now - job.received) * 1000.0, 3)
        if job.sync and not self.guard.enter(job.host):
            self._refuse_guarded(job, queued_ms)
            return
        frames.append(wire.job_frame(ticket, queued_ms, job.txn, job.raw))
        taken.append((job, job.rank == 0))
        job.dispatched = now
        job.rank = slot.rank
        if job.sync:
            if not slot.sync_sent:
                slot.busy_since = now
            slot.sync_sent.append(ticket)
        else:
            slot.async_txns.add(job.txn or "")

    def _untake(self, slot: WorkerSlot, taken: list[tuple[Job, bool]]) -> None:
        """The worker could not be sent its jobs: they go back where they waited, in order."""
        for job, shared in reversed(taken):
            job.dispatched = None
            if job.sync:
                self.guard.leave(job.host)
                slot.sync_sent.pop()
                if shared:
                    job.rank = 0
                (self.router.shared_sync if shared else slot.sync_queue).appendleft(job.ticket)
            else:
                slot.async_txns.discard(job.txn or "")
                slot.async_queue.appendleft(job.ticket)
        if not slot.sync_sent:
            slot.busy_since = None

    def _refuse_guarded(self, job: Job, queued_ms: float) -> None:
        """Fail fast instead of letting one more worker wait on a host that is not answering."""
        self.ledger.answer(job.ticket)
        reply = {
            "id": job.rid,
            "rc": GUARD_RC,
            "result": b"",
            "curlerror": "Bad CURL error code",
            "error_detail": f"host guard: {self.guard.limit} workers already waiting on {job.host}",
            "timing": {"queued_ms": queued_ms, "service_ms": 0.0},
        }
        self._queue(job.client, job.req_delimiter, wire.pack(reply))

    def _to_worker(self, slot: WorkerSlot, frames: list[bytes]) -> bool:
        if slot.identity is None:
            return False
        try:
            zmqio.send(self.backend, [slot.identity, *frames])
            return True
        except zmq.ZMQError:
            return False

    # -- workers --

    def _on_backend(self, frames: list[bytes]) -> None:
        identity, kind = frames[0], frames[1][:1]
        rank = self.by_identity.get(identity)
        if kind == wire.READY:
            self._on_ready(identity, wire.unpack(frames[2]))
            return
        if rank is None or rank not in self.router.slots:
            return  # a worker we already declared lost
        slot = self.router.slots[rank]
        slot.last_seen = time.monotonic()
        if kind == wire.REPLY or kind == wire.COMPLETION:
            # A worker sends the replies and completions of one loop turn as one message.
            for frame in frames[1:]:
                if frame[:1] == wire.REPLY:
                    self._on_reply(slot, *wire.parse_reply(frame))
                else:
                    self._on_completion(slot, *wire.parse_completion(frame))
        elif kind == wire.GATHER:
            self._on_gather_part(rank, wire.unpack(frames[2]), wire.unpack(frames[3]))
        elif kind == wire.HEARTBEAT:
            status = wire.unpack(frames[2])
            slot.status.update(status)

    def _on_completion(
        self, slot: WorkerSlot, txn: str, counters: list[int], completion: bytes
    ) -> None:
        self._note_counters(slot.rank, counters)
        self._async_done(slot, txn)
        job = self.ledger.finish_transfer(txn)
        if job is not None:
            self._complete(job, completion)
        self._pump(slot)

    def _on_ready(self, identity: bytes, hello: dict[str, Any]) -> None:
        rank = int(hello.get("rank", 0))
        if rank == 0 or rank not in self.supervisor.procs:
            # A worker of its own (`sipcurl worker --connect`): it gets the next free rank, or
            # its old rank back when it returns after a reconnect.
            rank = self.remote_ranks.get(identity) or max([*self.router.slots, 0]) + 1
            self.remote_ranks[identity] = rank
            self.router.add(rank).remote = True
        slot = self.router.slots.get(rank)
        if slot is None:
            return
        if slot.identity is not None:
            self.by_identity.pop(slot.identity, None)
        slot.identity = identity
        slot.pid = int(hello.get("pid", 0))
        slot.host = str(hello.get("host", ""))
        slot.state = "ready"
        slot.last_seen = time.monotonic()
        self.by_identity[identity] = rank
        self.counters[rank] = [0] * len(COUNTER_NAMES)
        self._to_worker(slot, [wire.WELCOME, wire.pack({"rank": rank})])
        self._pump(slot)

    def _on_reply(
        self, slot: WorkerSlot, ticket: int, started: bool, counters: list[int], reply: bytes
    ) -> None:
        self._note_counters(slot.rank, counters)
        job = self.ledger.answer(ticket)
        if ticket in slot.sync_sent:
            if slot.sync_sent[0] == ticket:  # the worker goes straight on to the next one
                now = time.monotonic()
                if slot.busy_since is not None:
                    slot.busy_total_s += now - slot.busy_since
                slot.busy_since = now if len(slot.sync_sent) > 1 else None
            slot.sync_sent.remove(ticket)
        if job is None:
            return
        slot.jobs_served += 1
        if job.sync:
            self.guard.leave(job.host)
        elif started and job.txn is not None:
            deadline = None
            if job.mode == "suspend":
                deadline = time.monotonic() + self.settings.dispatcher.suspend_timeout
            self.ledger.start_transfer(job, deadline)
        elif job.txn is not None:
            self._async_done(slot, job.txn)
        self._queue(job.client, job.req_delimiter, reply)
        self._pump(slot)

    def _async_done(self, slot: WorkerSlot, txn: str) -> None:
        slot.async_txns.discard(txn)

    def _note_counters(self, rank: int, values: list[int]) -> None:
        if values:
            self.counters[rank] = list(values)

    def _complete(self, job: Job, completion: bytes) -> None:
        """Publish an event, or resume the suspended transaction at its client."""
        if job.mode == "suspend":
            self.resume_seq += 1
            self._queue(
                job.client,
                job.req_delimiter,
                wire.append_fields(completion, {"type": "resume", "seq": self.resume_seq}),
            )
            return
        route = job.route or ""
        self.event_seq[route] += 1
        self._events_out[route].append(
            wire.append_fields(completion, {"seq": self.event_seq[route]})
        )

    def _on_worker_exit(self, rank: int) -> None:
        self.supervisor.reap(rank)
        slot = self.router.slots.get(rank)
        if slot is None:
            return
        self._lose_worker(slot)
        if not self.stopping:
            self.supervisor.update_settings(self.settings)
            self.supervisor.spawn_worker(rank)

    def _lose_worker(self, slot: WorkerSlot) -> None:
        """Every job the worker held gets its one answer now. That includes synchronous
        calls sent ahead of their turn: the worker may have started (even finished) some
        whose replies it was still holding, and an HTTP request must never go out twice."""
        rank = slot.rank
        answering, running = self.ledger.held_by(rank)
        for job in answering:
            self.ledger.answer(job.ticket)
            if job.sync:
                self.guard.leave(job.host)
            self._queue(
                job.client,
                job.req_delimiter,
                wire.error_reply(
                    job.rid, "worker_lost", f"worker {rank} died while holding the job"
                ),
            )
        for job in running:
            self.ledger.finish_transfer(job.txn or "")
            self._complete(job, wire.pack(failed_completion(job, slot, "worker lost")))
        last = self.counters.pop(rank, None)
        if last:
            self.retired = [a + b for a, b in zip(self.retired, last, strict=False)]
        if slot.identity is not None:
            self.by_identity.pop(slot.identity, None)
        slot.identity = None
        slot.state = "starting"
        slot.sync_sent.clear()
        slot.busy_since = None
        slot.async_txns.clear()
        slot.status = {}
        self.router.forget_rank(rank)
        for gather in self.gathers.values():
            gather.waiting.discard(rank)
        for gid in [g for g, gather in self.gathers.items() if not gather.waiting]:
            self._finish_gather(gid)

    def _drop_remote(self, slot: WorkerSlot) -> None:
        """A remote worker is gone: what it held and what waited for it alone is answered."""
        self._lose_worker(slot)
        for ticket in [*slot.sync_queue, *slot.async_queue]:
            job = self.ledger.answer(ticket)
            if job is not None:
                message = f"remote worker {slot.rank} was lost before it could take the job"
                self._queue(
                    job.client, job.req_delimiter, wire.error_reply(job.rid, "worker_lost", message)
                )
        self.router.remove(slot.rank)
        self.remote_ranks = {i: r for i, r in self.remote_ranks.items() if r != slot.rank}

    def _heartbeat(self, now: float) -> None:
        conf = self.settings.dispatcher
        self._next_heartbeat = now + conf.heartbeat_ms / 1000.0
        limit = conf.heartbeat_ms * conf.heartbeat_liveness / 1000.0
        for slot in list(self.router.slots.values()):  # a lost remote worker leaves the table
            if slot.state != "ready":
                continue
            if now - slot.last_seen > limit:
                log.error("worker %d missed %d heartbeats", slot.rank, conf.heartbeat_liveness)
                if slot.remote:
                    self._drop_remote(slot)  # nothing to kill: its jobs are answered now
                else:
                    self.supervisor.kill(slot.rank)  # replaced when its sentinel fires
                continue
            self._to_worker(slot, [wire.HEARTBEAT])

    # -- gathers (RPCs that need every worker's view) --

    def start_gather(
        self, client: bytes, delimiter: bool, rid: Any, method: str, params: list
    ) -> None:
        self._gather_ids += 1
        gid = self._gather_ids
        ready = {rank for rank, slot in self.router.slots.items() if slot.state == "ready"}
        self.gathers[gid] = Gather(
            client, delimiter, rid, method, params, time.monotonic() + GATHER_TIMEOUT_S, set(ready)
        )
        for rank in ready:
            self._to_worker(self.router.slots[rank], [wire.GATHER, wire.pack(gid)])
        if not ready:
            self._finish_gather(gid)

    def _on_gather_part(self, rank: int, gid: int, status: dict) -> None:
        gather = self.gathers.get(gid)
        if gather is None:
            return
        gather.results[rank] = status
        gather.waiting.discard(rank)
        if not gather.waiting:
            self._finish_gather(gid)

    def _finish_gather(self, gid: int) -> None:
        gather = self.gathers.pop(gid)
        result = self.rpc.finish_gather(gather.method, gather.params, gather.results)
        self._queue(gather.client, gather.delimiter, wire.pack({"id": gather.rid, **result}))

    # -- replies --

    def _queue(self, client: bytes, delimiter: bool, encoded: bytes) -> None:
        self._outbox[(client, delimiter)].append(encoded)

    def _flush(self) -> None:
        """Replies to one client that became ready in one loop turn leave as one frame."""
        self._pump_pending()
        outbox, self._outbox = self._outbox, defaultdict(list)
        for (client, delimiter), replies in outbox.items():
            payload = wire.join_array(replies)
            try:
                zmqio.send(
                    self.frontend, (client, b"", payload) if delimiter else (client, payload)
                )
            except zmq.ZMQError:
                pass  # the client is gone (ROUTER_MANDATORY): nobody left to answer
        # Completions of one route that became ready in one loop turn leave as one array.
        events, self._events_out = self._events_out, defaultdict(list)
        for route, completions in events.items():
            try:
                zmqio.send(self.events, (route.encode(), wire.join_array(completions)))
            except zmq.Again:
                pass  # PUB never blocks the loop; subscribers see the gap in seq

    def _abandon_in_flight(self) -> None:
        """The grace period is over: answer what is left, so nothing goes unanswered."""
        for job in list(self.ledger.jobs.values()):
            self.ledger.answer(job.ticket)
            self._queue(
                job.client,
                job.req_delimiter,
                wire.error_reply(
                    job.rid, "shutting_down", "not finished within the shutdown grace period"
                ),
            )
        for job in list(self.ledger.transfers.values()):
            self.ledger.finish_transfer(job.txn or "")
            self._complete(
                job,
                wire.pack(failed_completion(job, self.router.slots.get(job.rank), "shutting down")),
            )
        for gid in list(self.gathers):
            self._finish_gather(gid)
        self._flush()

    # -- configuration --

    def reload_connections(self) -> tuple[bool, str]:
        from dispatcher.settings_loader import load_connections_file

        path = self.settings.connections_file
        if not path:
            return False, "no config_file is configured"
        try:
            from_file = load_connections_file(path, self.settings.http_client)
        except Exception as exc:  # ConfigError, OSError: keep the old connections
            return False, f"kept the old connections: {exc}"
        kept = tuple(c for c in self.settings.connections if c.source != "config_file")
        self.settings = replace(self.settings, connections=from_file + kept)
        self.supervisor.update_settings(self.settings)
        payload = wire.pack([conn_to_wire(c) for c in self.settings.connections])
        for slot in self.router.slots.values():
            if slot.state == "ready":
                self._to_worker(slot, [wire.RELOAD, payload])
        return True, f"{len(from_file)} connections loaded from {path}"

    def counter_totals(self) -> dict[str, int]:
        totals = list(self.retired)
        for values in self.counters.values():
            totals = [a + b for a, b in zip(totals, values, strict=False)]
        return dict(zip(COUNTER_NAMES, totals, strict=False))


def conn_to_wire(con: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(con)
