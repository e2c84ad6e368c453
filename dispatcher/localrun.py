"""Start a backend and a service as child processes, for the demo and the scripts.

Each child runs in its own session and is stopped by process group, so nothing is left
behind; readiness is a real answer (the backend's `listening` line, every worker answering
`core.workers`), never a sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

SIPCURL = [sys.executable, "-m", "dispatcher.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    def __init__(self, cmd: list[str], log_path: Path) -> None:
        self.log_path = log_path
        log = open(log_path, "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        return stop_session(self.proc)


def stop_session(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM (a service drains its work), then SIGKILL to whatever is left of the child's
    session, so no worker outlives it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)
    return proc.returncode


def workdir(prefix: str = "sipcurl-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def start_backend(args: list[str], folder: Path, timeout_s: float = 15.0) -> tuple[Child, str]:
    """`sipcurl backend` on a free port; returns the child and its base URL."""
    child = Child([*SIPCURL, "backend", "--listen", "127.0.0.1:0", *args], folder / "backend.log")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in child.output().splitlines():
            if line.startswith("listening "):
                return child, line.split()[1]
        if child.proc.poll() is not None:
            break
        time.sleep(0.05)
    child.stop()
    raise RuntimeError(f"the backend did not start:\n{child.output()}")


def start_service(config_text: str, workers: int, folder: Path, timeout_s: float = 30.0) -> Child:
    config = folder / "sipcurl.ini"
    config.write_text(config_text)
    child = Child([*SIPCURL, "serve", "-c", str(config)], folder / "serve.log")
    frontend = next(
        line.split("=", 1)[1].strip()
        for line in config_text.splitlines()
        if line.startswith("frontend")
    )
    try:
        wait_ready(frontend, workers, child, timeout_s)
    except Exception:
        child.stop()
        raise
    return child


def wait_ready(frontend: str, workers: int, child: Child, timeout_s: float) -> None:
    ctx: zmq.Context = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(frontend)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(f"the service exited during start-up:\n{child.output()}")
            sock.send(msgpack.packb({"id": 0, "op": "rpc", "method": "core.workers"}))
            if sock.poll(500):
                rows: list[dict[str, Any]] = msgpack.unpackb(sock.recv()).get("result") or []
                if sum(r.get("state") == "ready" for r in rows) == workers:
                    return
        raise RuntimeError(f"the service did not become ready:\n{child.output()}")
    finally:
        sock.close(0)


def service_config(*, workers: int, http_client: str, dispatcher: str = "") -> tuple[str, str, str]:
    """A config on free loopback ports; returns (text, frontend, events)."""
    frontend = f"tcp://127.0.0.1:{free_port()}"
    events = f"tcp://127.0.0.1:{free_port()}"
    text = (
        f"[dispatcher]\nfrontend = {frontend}\nevents = {events}\nworkers = {workers}\n"
        f"max_pending = 1000000\n{dispatcher}\n[http_client]\n{http_client}\n"
    )
    return text, frontend, events


def rss_kib(pid: int) -> int:
    """A child's resident memory, as the scripts and tests that watch it report it."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
