"""`sipcurl serve` as a real subprocess in its own session, for system tests.

Readiness is shown by a real request (an RPC that every worker answers), and teardown is by
process group, so no test leaves a dispatcher or a worker behind.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import zmq

from dispatcher.localrun import stop_session

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RawClient:
    """A DEALER speaking SPEC §2 directly: the system tests check the wire, not a library."""

    def __init__(self, frontend: str, curve: Any = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.sndtimeo = 5000
        if curve is not None:
            curve.apply(self.sock)
        self.sock.connect(frontend)
        self._ids = itertools.count(1)
        self.inbox: list[dict[str, Any]] = []

    def send(self, req: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.sock.send(msgpack.packb(req, use_bin_type=True))

    def send_raw(self, payload: bytes) -> None:
        self.sock.send(payload)

    def next_id(self) -> int:
        return next(self._ids)

    def receive(self, timeout_s: float) -> list[dict[str, Any]]:
        """Everything that arrives within the timeout (batched frames unpacked)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000) + 1):
                break
            obj = msgpack.unpackb(self.sock.recv(), raw=False, strict_map_key=False)
            out.extend(obj if isinstance(obj, list) else [obj])
        return out

    def wait_for(self, pred: Any, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for i, msg in enumerate(self.inbox):
                if pred(msg):
                    return self.inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message within {timeout_s}s; have {self.inbox}")
            if self.sock.poll(int(left * 1000) + 1):
                obj = msgpack.unpackb(self.sock.recv(), raw=False, strict_map_key=False)
                self.inbox.extend(obj if isinstance(obj, list) else [obj])

    def call(self, timeout_s: float = 10.0, **req: Any) -> dict[str, Any]:
        req.setdefault("id", self.next_id())
        self.send(req)
        return self.wait_for(
            lambda m: m.get("id") == req["id"] and m.get("type") != "resume", timeout_s
        )

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class Service:
    """A running `sipcurl serve` with its own config file and free ports."""

    def __init__(
        self,
        *,
        workers: int = 2,
        extra: str = "",
        http_client: str = "",
        env: dict[str, str] | None = None,
        ready_keys: Any = None,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sipcurl-test-"))
        self.frontend = f"tcp://127.0.0.1:{free_port()}"
        self.events = f"tcp://127.0.0.1:{free_port()}"
        self.config = self.dir / "sipcurl.ini"
        self.config.write_text(
            textwrap.dedent(
                f"""\
                [dispatcher]
                frontend = {self.frontend}
                events = {self.events}
                workers = {workers}
                heartbeat_ms = 200
                """
            )
            + textwrap.dedent(extra)
            + "\n[http_client]\n"
            + textwrap.dedent(http_client)
        )
        self.log = open(self.dir / "serve.log", "w+b")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "serve", "-c", str(self.config)],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.client = RawClient(self.frontend, ready_keys)
        self._wait_ready(workers)

    def _wait_ready(self, workers: int, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipcurl serve exited {self.proc.returncode}: {self.output()}")
            rid = self.client.next_id()
            self.client.send({"id": rid, "op": "rpc", "method": "core.workers"})
            for msg in self.client.receive(0.5):
                rows = msg.get("result") if msg.get("id") == rid else None
                if rows and sum(1 for r in rows if r.get("state") == "ready") == workers:
                    return
        raise RuntimeError(f"sipcurl serve not ready: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def workers(self) -> list[dict[str, Any]]:
        return self.client.call(op="rpc", method="core.workers")["result"]

    def worker_pids(self) -> dict[int, int]:
        return {row["rank"]: row["pid"] for row in self.workers()}

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        self.client.close()
        code = stop_session(self.proc)
        self.log.close()
        return code


def all_replies(messages: Iterable[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {m.get("id"): m for m in messages}
