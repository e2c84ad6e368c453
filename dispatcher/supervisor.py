"""Forks workers and replaces the ones that die, under the same rank (gunicorn's arbiter, small).

The worker entry function is injected (only `dispatcher.cli` imports `workers`). Nothing
with curl or ZeroMQ state exists in this process before a fork: the child builds its own.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import multiprocess

log = logging.getLogger("sipcurl.supervisor")

WorkerTarget = Callable[[int, Any, str], None]


class Supervisor:
    def __init__(self, target: WorkerTarget, settings: Any, endpoint: str) -> None:
        self._target = target
        self._settings = settings
        self._endpoint = endpoint
        self._ctx = multiprocess.get_context("fork")
        self.procs: dict[int, Any] = {}

    def update_settings(self, settings: Any) -> None:
        """A replacement worker starts with the connections as they are now."""
        self._settings = settings

    def spawn_worker(self, rank: int) -> Any:
        proc = self._ctx.Process(
            target=self._target,
            args=(rank, self._settings, self._endpoint),
            name=f"sipcurl-worker-{rank}",
            daemon=True,
        )
        proc.start()
        self.procs[rank] = proc
        log.info("worker %d started, pid %d", rank, proc.pid)
        return proc

    def sentinels(self) -> dict[int, int]:
        """fd -> rank, for the poller: a sentinel becomes readable when the child exits."""
        return {proc.sentinel: rank for rank, proc in self.procs.items()}

    def reap(self, rank: int) -> int | None:
        proc = self.procs.pop(rank, None)
        if proc is None:
            return None
        proc.join(timeout=1.0)
        code = proc.exitcode
        if code == -signal.SIGKILL:
            log.warning("worker %d (pid %d) was killed (SIGKILL; out of memory?)", rank, proc.pid)
        else:
            log.warning("worker %d (pid %d) exited with %s", rank, proc.pid, code)
        proc.close()
        return code

    def kill(self, rank: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(rank)
        if proc is not None and proc.pid:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass

    def pid(self, rank: int) -> int:
        proc = self.procs.get(rank)
        return proc.pid if proc is not None else 0

    def stop(self, timeout_s: float) -> None:
        """SIGTERM every worker, then SIGKILL what is still there after the timeout."""
        for rank in list(self.procs):
            self.kill(rank, signal.SIGTERM)
        for proc in self.procs.values():
            proc.join(timeout=timeout_s)
        for rank, proc in list(self.procs.items()):
            if proc.is_alive():
                self.kill(rank, signal.SIGKILL)
                proc.join(timeout=1.0)
        self.procs.clear()
