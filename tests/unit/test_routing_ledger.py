"""Routing and the ledger are pure: stepped here with explicit `now`, no sockets, no sleeps."""

from __future__ import annotations

import pytest

from dispatcher.ledger import Ledger
from dispatcher.routing import Router


def ready_router(policy: str, ranks: int = 3, async_max: int = 2) -> Router:
    router = Router(policy, async_max)
    for rank in range(1, ranks + 1):
        router.add(rank).state = "ready"
    return router


def test_round_robin_visits_every_rank_in_turn() -> None:
    router = ready_router("round_robin")
    assert [router.choose(sync=True) for _ in range(6)] == [1, 2, 3, 1, 2, 3]


def test_least_busy_async_prefers_the_fewest_transfers() -> None:
    router = ready_router("least_busy")
    router.slots[1].async_txns.update({"a", "b"})
    router.slots[2].async_queue.append(11)
    assert router.choose(sync=False) == 3


def test_least_busy_sync_jobs_wait_in_one_queue_for_the_first_free_worker() -> None:
    router = ready_router("least_busy")
    assert router.choose(sync=True) == 0  # the shared queue
    router.shared_sync.extend([1, 2])
    busy, free = router.slots[1], router.slots[2]
    busy.sync_sent.append(9)
    assert router.next_sync(busy) is None  # a busy worker is never sent a shared job
    assert router.next_sync(free) == 1
    free.sync_sent.append(1)
    free.sync_queue.append(7)  # a job pinned to this worker is sent ahead, behind its call
    assert router.next_sync(free) == 7
    free.sync_sent.append(7)
    assert router.pending() == 1 + 0  # 7 waits at its worker; shared job 2 goes to rank 3 now
    router.slots[3].sync_sent.append(8)
    assert router.pending() == 2
    busy.sync_queue.append(5)  # its own queue's head may wait at the worker
    assert router.next_sync(busy) == 5


def test_a_key_sticks_to_its_worker_until_that_worker_is_replaced() -> None:
    router = ready_router("round_robin")
    first = router.choose(sync=True, key="call-1")
    assert all(router.choose(sync=True, key="call-1") == first for _ in range(5))
    router.forget_rank(first)
    router.choose(sync=True)  # move the rotation on
    assert router.choose(sync=True, key="call-1") != first or len(router.slots) == 1


def test_pinning_a_rank_that_does_not_exist_is_refused() -> None:
    router = ready_router("round_robin")
    assert router.choose(sync=True, pin=2) == 2
    with pytest.raises(LookupError):
        router.choose(sync=True, pin=9)


def test_a_worker_is_sent_its_own_queue_ahead_up_to_its_depth_and_refilled_at_half() -> None:
    router = Router("round_robin", 2, sync_depth=4)
    slot = router.add(1)
    slot.state = "ready"
    slot.sync_queue.extend(range(1, 8))
    sent = []
    while (ticket := router.next_sync(slot)) is not None:
        sent.append(ticket)
        slot.sync_sent.append(ticket)
    assert sent == [1, 2, 3, 4]
    assert slot.sync_ticket == 1
    assert router.pending() == 3 + 3  # the running call is not queued; those behind it are
    slot.sync_sent.popleft()
    assert not router.wants_sync(slot)
    slot.sync_sent.popleft()
    assert router.wants_sync(slot)


def test_depth_one_sends_a_worker_one_synchronous_job_at_a_time() -> None:
    router = Router("round_robin", 2, sync_depth=1)
    slot = router.add(1)
    slot.state = "ready"
    slot.sync_queue.extend([1, 2])
    assert router.next_sync(slot) == 1
    slot.sync_sent.append(1)
    assert not router.wants_sync(slot) and router.next_sync(slot) is None
    slot.sync_sent.popleft()
    assert router.next_sync(slot) == 2


def test_async_transfers_are_capped_per_worker() -> None:
    router = ready_router("round_robin", ranks=1, async_max=2)
    slot = router.slots[1]
    slot.async_queue.extend([1, 2, 3])
    started = []
    while (t := router.next_async(slot)) is not None:
        started.append(t)
        slot.async_txns.add(str(t))
    assert started == [1, 2]
    slot.async_txns.discard("1")
    assert router.next_async(slot) == 3


def test_suspended_transactions_expire_at_their_deadline_once() -> None:
    ledger = Ledger("p")
    job = ledger.admit(b"c", 1, "http_async_query", b"", now=0.0)
    job.txn, job.mode = ledger.new_txn(), "suspend"
    ledger.answer(job.ticket)
    ledger.start_transfer(job, suspend_deadline=5.0)
    assert ledger.next_deadline() == 5.0
    assert ledger.expired(4.9) == []
    assert ledger.expired(5.0) == [job]
    assert ledger.expired(6.0) == []
    assert ledger.finish_transfer(job.txn) is None  # a late completion finds nothing to answer


def test_a_completed_transfer_no_longer_expires() -> None:
    ledger = Ledger("p")
    job = ledger.admit(b"c", 1, "http_async_query", b"", now=0.0)
    job.txn = ledger.new_txn()
    ledger.answer(job.ticket)
    ledger.start_transfer(job, suspend_deadline=1.0)
    assert ledger.finish_transfer(job.txn) is job
    assert ledger.expired(2.0) == []
    assert ledger.next_deadline() is None


def test_held_by_lists_what_a_dying_worker_must_answer() -> None:
    ledger = Ledger("p")
    queued = ledger.admit(b"c", 1, "http_connect", b"", 0.0)
    queued.rank = 1
    running = ledger.admit(b"c", 2, "http_connect", b"", 0.0)
    running.rank, running.dispatched = 1, 0.1
    other = ledger.admit(b"c", 3, "http_connect", b"", 0.0)
    other.rank, other.dispatched = 2, 0.1
    answering, transfers = ledger.held_by(1)
    assert answering == [running] and transfers == []
