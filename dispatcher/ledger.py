"""Every accepted job, until its one answer has gone out: pure bookkeeping, no sockets.

A job is in `jobs` from admission until its reply leaves. An async job whose reply said
rc 1 then lives in `transfers` (by txn) until its completion is published or resumed; a
suspended one also has a deadline (`suspend_timeout`, like tm's fr_timer). One way out each:
whatever removes a job from these maps is the only code that may answer it.
"""

from __future__ import annotations

import heapq
import itertools
import sys
from dataclasses import dataclass
from typing import Any

MAX_CLIENT_IDENTITIES = 10_000


@dataclass(slots=True)  # no per-job __dict__: 10,000 suspended transactions are 10,000 Jobs
class Job:
    ticket: int
    client: bytes  # frontend ROUTER identity
    rid: Any
    op: str
    raw: bytes
    received: float
    rank: int = 0
    sync: bool = True
    req_delimiter: bool = False  # REQ clients need the empty frame back
    dispatched: float | None = None
    txn: str | None = None
    mode: str | None = None
    route: str | None = None
    xdata: Any = None
    host: str | None = None  # host:port of a synchronous call, for the host guard


class Ledger:
    def __init__(self, txn_prefix: str) -> None:
        self._tickets = itertools.count(1)
        self._txns = itertools.count(1)
        self._txn_prefix = txn_prefix
        self.jobs: dict[int, Job] = {}
        self.transfers: dict[str, Job] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._clients: dict[bytes, bytes] = {}

    def admit(self, client: bytes, rid: Any, op: str, raw: bytes, now: float) -> Job:
        # One copy of each client identity and op name, however many jobs refer to them.
        client = self._clients.setdefault(client, client)
        if len(self._clients) > MAX_CLIENT_IDENTITIES:
            self._clients.clear()
        job = Job(next(self._tickets), client, rid, sys.intern(op), raw, now)
        self.jobs[job.ticket] = job
        return job

    def new_txn(self) -> str:
        return f"{self._txn_prefix}-{next(self._txns)}"

    def answer(self, ticket: int) -> Job | None:
        """The job's reply is leaving: it stops being in flight."""
        return self.jobs.pop(ticket, None)

    def start_transfer(self, job: Job, suspend_deadline: float | None) -> None:
        assert job.txn is not None
        job.raw = b""  # the worker has the request; only the completion's routing stays
        self.transfers[job.txn] = job
        if suspend_deadline is not None:
            heapq.heappush(self._deadlines, (suspend_deadline, job.txn))

    def finish_transfer(self, txn: str) -> Job | None:
        return self.transfers.pop(txn, None)

    def expired(self, now: float) -> list[Job]:
        """Suspended transactions past their deadline, removed (the caller resumes them)."""
        out = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, txn = heapq.heappop(self._deadlines)
            job = self.transfers.pop(txn, None)
            if job is not None:
                out.append(job)
        if not self.transfers and self._deadlines:
            self._deadlines.clear()
        return out

    def next_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] not in self.transfers:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def held_by(self, rank: int) -> tuple[list[Job], list[Job]]:
        """Jobs a worker holds: dispatched and unanswered, and transfers it is running."""
        answering = [j for j in self.jobs.values() if j.rank == rank and j.dispatched is not None]
        running = [j for j in self.transfers.values() if j.rank == rank]
        return answering, running

    def in_flight(self) -> int:
        return len(self.jobs) + len(self.transfers)
