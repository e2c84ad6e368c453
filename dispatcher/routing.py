"""Which worker runs a job, and when: pure policy, no sockets, no clocks.

A worker serves one synchronous call at a time, as a Kamailio child does. With
`round_robin` each job is given to the next rank on arrival and waits in that rank's FIFO;
the head of that FIFO (up to `sync_depth` calls in all) is already sent to the worker while
its call runs, so the worker never sits idle for a dispatcher round trip and the dispatcher
sends and reads in batches. That changes nothing a client can see: the job was that rank's
next one either way, its `queued_ms` still counts until it starts, and it still counts as
queued. A worker that dies held them all: each gets `worker_lost`, as the running one.
With `least_busy` a synchronous job that is neither pinned nor keyed waits in one shared
FIFO and goes to the first worker that is free, as SIP requests on a shared UDP socket go
to whichever Kamailio child reads next. Async transfers go to a worker while it holds
fewer than `async_max_transfers`, and wait in that rank's async FIFO past it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

MAX_STICKY_KEYS = 100_000


@dataclass
class WorkerSlot:
    rank: int
    identity: bytes | None = None
    pid: int = 0
    host: str = ""
    state: str = "starting"  # starting -> ready -> (lost | stopping)
    remote: bool = False  # joined with `sipcurl worker --connect`: not ours to respawn
    sync_sent: deque[int] = field(default_factory=deque)  # at the worker; the head is running
    sync_queue: deque[int] = field(default_factory=deque)
    async_txns: set[str] = field(default_factory=set)  # transfers running at the worker
    async_queue: deque[int] = field(default_factory=deque)
    jobs_served: int = 0
    last_seen: float = 0.0
    busy_since: float | None = None
    busy_total_s: float = 0.0
    status: dict = field(default_factory=dict)  # last status the worker reported

    @property
    def async_inflight(self) -> int:
        return len(self.async_txns)

    @property
    def sync_ticket(self) -> int | None:
        """The synchronous job the worker is serving now."""
        return self.sync_sent[0] if self.sync_sent else None

    @property
    def queued(self) -> int:
        waiting_at_worker = len(self.sync_sent) - 1 if self.sync_sent else 0
        return len(self.sync_queue) + waiting_at_worker + len(self.async_queue)

    def sync_load(self) -> int:
        return len(self.sync_sent) + len(self.sync_queue)

    def async_load(self) -> int:
        return self.async_inflight + len(self.async_queue)


class Router:
    def __init__(self, policy: str, async_max_transfers: int, sync_depth: int = 2) -> None:
        self.policy = policy
        self.async_max_transfers = async_max_transfers
        self.sync_depth = sync_depth  # synchronous jobs at a worker: its call and those behind
        self.slots: dict[int, WorkerSlot] = {}
        self._next = 0
        self._sticky: OrderedDict[str, int] = OrderedDict()
        self.shared_sync: deque[int] = deque()  # least_busy: unpinned sync jobs, first free worker

    def add(self, rank: int) -> WorkerSlot:
        slot = self.slots.get(rank)
        if slot is None:
            slot = self.slots[rank] = WorkerSlot(rank)
        return slot

    def remove(self, rank: int) -> None:
        self.slots.pop(rank, None)
        self.forget_rank(rank)

    def forget_rank(self, rank: int) -> None:
        """Keys stick to a worker 'while it lives': a replaced worker starts without them."""
        for key in [k for k, r in self._sticky.items() if r == rank]:
            del self._sticky[key]

    def choose(self, *, sync: bool, pin: int | None = None, key: str | None = None) -> int:
        """Pick the rank for a new job, 0 for the shared queue; raises LookupError for a
        pinned rank that doesn't exist."""
        if pin is not None:
            if pin not in self.slots:
                raise LookupError(f"no worker with rank {pin}")
            return pin
        if key is not None:
            rank = self._sticky.get(key)
            if rank is not None and rank in self.slots:
                self._sticky.move_to_end(key)
                return rank
        if key is None and sync and self.policy == "least_busy":
            if not self.slots:
                raise LookupError("no workers")
            return 0
        rank = self._pick(sync)
        if key is not None:
            self._sticky[key] = rank
            if len(self._sticky) > MAX_STICKY_KEYS:
                self._sticky.popitem(last=False)
        return rank

    def _pick(self, sync: bool) -> int:
        ranks = sorted(self.slots)
        if not ranks:
            raise LookupError("no workers")
        start = self._next % len(ranks)
        self._next += 1
        if self.policy != "least_busy":
            return ranks[start]
        rotation = ranks[start:] + ranks[:start]
        load = WorkerSlot.sync_load if sync else WorkerSlot.async_load
        return min(rotation, key=lambda r: load(self.slots[r]))

    def wants_sync(self, slot: WorkerSlot) -> bool:
        """A worker is sent more synchronous jobs once it holds half its depth or fewer,
        so they leave in batches rather than one message per reply."""
        return len(slot.sync_sent) <= self.sync_depth // 2

    def next_sync(self, slot: WorkerSlot) -> int | None:
        """The next synchronous ticket to send this worker: its own FIFO's head while fewer
        than `sync_depth` are there, a shared job only when it is free (least_busy's first
        free worker must stay exact)."""
        if slot.state != "ready":
            return None
        at_worker = len(slot.sync_sent)
        if at_worker >= self.sync_depth:
            return None
        if slot.sync_queue:
            return slot.sync_queue.popleft()
        if at_worker == 0 and self.shared_sync:
            return self.shared_sync.popleft()
        return None

    def next_async(self, slot: WorkerSlot) -> int | None:
        if slot.state != "ready" or slot.async_inflight >= self.async_max_transfers:
            return None
        if not slot.async_queue:
            return None
        return slot.async_queue.popleft()

    def pending(self) -> int:
        """Jobs that wait for a worker: not those a free worker starts in this loop turn
        (the dispatcher sends work once per turn, so `max_pending` counts as if at once)."""
        total, free_for_shared = 0, 0
        for slot in self.slots.values():
            total += slot.queued
            if slot.state != "ready":
                continue
            if not slot.sync_sent:
                if slot.sync_queue:
                    total -= 1
                else:
                    free_for_shared += 1
            room = max(0, self.async_max_transfers - slot.async_inflight)
            total -= min(room, len(slot.async_queue))
        return total + max(0, len(self.shared_sync) - free_for_shared)
