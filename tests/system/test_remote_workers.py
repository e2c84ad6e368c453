"""`sipcurl worker --connect`: a worker of its own joins a running dispatcher over tcp."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dispatcher.client import Client
from tests.system.service import ROOT, Service, free_port


def start_remote(endpoint: str, config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "worker", "--connect", endpoint, "-c", str(config)],
        cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_workers(client: Client, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = client.call("rpc", method="core.workers")["result"]
        if sum(r["state"] == "ready" for r in rows) == count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"expected {count} ready workers, have {rows}")


def test_a_remote_worker_joins_serves_and_is_declared_lost(
    http_server: Any, tmp_path: Path
) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    svc = Service(
        workers=1,
        extra=f"worker_endpoint = {endpoint}\nheartbeat_liveness = 3\n",
        http_client=f"httpcon = api=>{http_server.url('/echo')}\n",
    )
    remote_conf = tmp_path / "remote.ini"
    remote_conf.write_text(
        f"[dispatcher]\nheartbeat_ms = 200\n[http_client]\nhttpcon = api=>{http_server.url('/echo/remote')}\n"
    )
    remote = start_remote(endpoint, remote_conf)
    try:
        with Client(svc.frontend, timeout_s=10) as client:
            rows = wait_workers(client, 2)
            joined = next(r for r in rows if r["remote"])
            assert joined["rank"] == 2 and joined["pid"] == remote.pid
            reply = client.call("http_connect", connection="api", url="/x", worker=2)
            assert reply["rc"] == 200 and b"/echo/remote/x" in reply["result"]  # its own settings
            assert reply["worker"] == {"rank": 2, "pid": remote.pid}
            held = client.submit(
                {
                    "op": "http_connect",
                    "connection": "api",
                    "url": "/../../slow?ms=5000",
                    "worker": 2,
                }
            )
            time.sleep(0.3)
            os.kill(remote.pid, signal.SIGKILL)
            lost_at = time.monotonic()
            assert client.wait(held, timeout_s=5)["error"]["code"] == "worker_lost"
            assert time.monotonic() - lost_at < 2.0  # 3 missed beats of 200 ms, plus a turn
            assert [r["rank"] for r in wait_workers(client, 1)] == [1]
            again = start_remote(endpoint, remote_conf)
            try:
                rows = wait_workers(client, 2)
                assert any(r["remote"] and r["pid"] == again.pid for r in rows)
            finally:
                again.kill()
                again.wait(timeout=5)
    finally:
        remote.kill()
        remote.wait(timeout=5)
        svc.stop()


def test_a_remote_worker_reconnects_when_its_dispatcher_returns(
    http_server: Any, tmp_path: Path
) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    extra = f"worker_endpoint = {endpoint}\n"
    http_client = f"httpcon = api=>{http_server.url('/echo')}\n"
    svc = Service(workers=1, extra=extra, http_client=http_client)
    remote_conf = tmp_path / "remote.ini"
    remote_conf.write_text(f"[dispatcher]\nheartbeat_ms = 200\n[http_client]\n{http_client}")
    remote = start_remote(endpoint, remote_conf)
    try:
        with Client(svc.frontend) as client:
            wait_workers(client, 2)
        svc.stop()
        svc2 = Service(workers=1, extra=extra, http_client=http_client)
        svc = svc2
        with Client(svc.frontend, timeout_s=10) as client:
            rows = wait_workers(client, 2, timeout_s=15)
            assert any(r["remote"] and r["pid"] == remote.pid for r in rows)
            assert client.call("http_connect", connection="api", url="/", worker=2)["rc"] == 200
    finally:
        remote.kill()
        remote.wait(timeout=5)
        svc.stop()


def test_a_remote_worker_cut_off_mid_load_every_job_is_answered(
    http_server: Any, tmp_path: Path
) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    http_client = f"keep_connections = 1\nhttpcon = api=>{http_server.url('/slow')}\n"
    svc = Service(
        workers=1,
        extra=f"worker_endpoint = {endpoint}\nrouting = round_robin\n",
        http_client=http_client,
    )
    remote_conf = tmp_path / "remote.ini"
    remote_conf.write_text(f"[dispatcher]\nheartbeat_ms = 200\n[http_client]\n{http_client}")
    remote = start_remote(endpoint, remote_conf)
    try:
        with Client(svc.frontend, timeout_s=20) as client:
            wait_workers(client, 2)
            ids = [
                client.submit({"op": "http_connect", "connection": "api", "url": "?ms=20"})
                for _ in range(200)
            ]
            time.sleep(0.5)
            remote.send_signal(signal.SIGSTOP)  # cut off: alive but silent, like a lost network
            replies = [client.wait(i) for i in ids]
        outcomes = [r.get("rc") or r["error"]["code"] for r in replies]
        assert len(replies) == 200 and set(outcomes) <= {200, "worker_lost"}
        assert outcomes.count("worker_lost") >= 1 and outcomes.count(200) >= 100
    finally:
        remote.kill()
        remote.wait(timeout=5)
        svc.stop()
