"""The client library, the client commands, reloads, overload and timeouts, end to end."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.client import AsyncClient, Client, Subscriber
from tests.system.service import ROOT, Service


@pytest.fixture()
def service(http_server: Any, tmp_path: Path) -> Iterator[Service]:
    conns = tmp_path / "conns.cfg"
    conns.write_text(f"[filecon]\nurl = {http_server.url('/echo/file')}\n")
    svc = Service(
        workers=2,
        extra="suspend_timeout = 0.5\nasync_max_transfers = 50\n",
        http_client=f"""\
            config_file = {conns}
            httpcon = api=>{http_server.url("/echo")}
                      slow=>{http_server.url("/slow")}
            """,
    )
    svc.conns_file = conns  # type: ignore[attr-defined]
    try:
        yield svc
    finally:
        svc.stop()


def sipcurl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_blocking_client_correlates_out_of_order_replies(
    service: Service, http_server: Any
) -> None:
    with Client(service.frontend) as client:
        slow = client.submit(
            {"op": "http_connect", "connection": "slow", "url": "?ms=400", "worker": 1}
        )
        fast = client.submit({"op": "http_connect", "connection": "api", "url": "/f", "worker": 2})
        assert client.wait(fast)["rc"] == 200  # arrives first, the slow one is kept for later
        assert client.wait(slow)["rc"] == 200
        ids = client.submit_many(
            [{"op": "http_connection_exists", "connection": "api"} for _ in range(10)]
        )
        assert all(client.wait(i)["rc"] == 1 for i in ids)
        first = client.call(
            "http_async_query",
            url=http_server.url("/echo"),
            route="R",
            mode="suspend",
            timeout=2000,
        )
        assert client.wait_resume(first["txn"])["http_rs"] == 200


def test_asyncio_client(service: Service) -> None:
    async def main() -> list[dict[str, Any]]:
        async with AsyncClient(service.frontend) as client:
            return await asyncio.gather(
                *(client.call("http_connect", connection="api", url=f"/{i}") for i in range(20))
            )

    replies = asyncio.run(main())
    assert [r["rc"] for r in replies] == [200] * 20


def test_call_rpc_and_events_commands(service: Service, http_server: Any) -> None:
    out = sipcurl(
        "call", "http_connect", "connection=api", "url=/cli", "--frontend", service.frontend
    )
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert reply["rc"] == 200 and '"/echo/cli"' in reply["result"]
    out = sipcurl(
        "call",
        "--config",
        str(service.config),
        "http_connect",
        "connection=api",
        "url=/x",
        "worker:=9",
    )
    assert out.returncode == 1 and json.loads(out.stdout)["error"]["code"] == "bad_request"
    out = sipcurl("rpc", "httpclient.listcon", "--frontend", service.frontend)
    assert out.returncode == 0
    assert {c["NAME"] for c in json.loads(out.stdout)} == {"api", "slow", "filecon"}
    events = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "events", "--events", service.events, "CLI", "--count", "1", "--timeout", "15"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with Client(service.frontend) as client:
            deadline = time.monotonic() + 12
            while (
                events.poll() is None and time.monotonic() < deadline
            ):  # the subscriber joins late
                client.call("http_async_query", url=http_server.url("/echo"), route="CLI")
                time.sleep(0.2)
        stdout, _ = events.communicate(timeout=10)
    finally:
        events.kill()
    line = json.loads(stdout.splitlines()[0])
    assert line["route"] == "CLI" and line["http_rs"] == 200


def test_max_pending_refuses_with_overloaded(http_server: Any) -> None:
    svc = Service(
        workers=1,
        extra="max_pending = 5\n",
        http_client=f"httpcon = slow=>{http_server.url('/slow')}\n",
    )
    try:
        with Client(svc.frontend) as client:
            ids = [
                client.submit({"op": "http_connect", "connection": "slow", "url": "?ms=200"})
                for _ in range(12)
            ]
            replies = [client.wait(i, timeout_s=15) for i in ids]
    finally:
        svc.stop()
    codes = [r.get("error", {}).get("code") for r in replies]
    assert codes.count("overloaded") == 6  # one in service, five queued, the rest refused
    assert [r.get("rc") for r in replies].count(200) == 6  # every accepted job was served


def test_suspend_timeout_resumes_with_http_ok_false(service: Service, http_server: Any) -> None:
    with Client(service.frontend) as client:
        first = client.call(
            "http_async_query",
            url=http_server.url("/slow?ms=3000"),
            route="R",
            mode="suspend",
            timeout=5000,
        )
        start = time.monotonic()
        resume = client.wait_resume(first["txn"], timeout_s=5)
    assert resume["http_ok"] is False and "timeout" in resume["http_err"]
    assert 0.3 < time.monotonic() - start < 2.0


def test_async_transfers_progress_while_the_worker_is_in_a_sync_call(
    service: Service, http_server: Any
) -> None:
    sub = Subscriber(service.events, ["PAR"])
    try:
        with Client(service.frontend) as client:
            # wait for the subscription to be live
            deadline = time.monotonic() + 10
            while not sub.recv(0.2) and time.monotonic() < deadline:
                client.call("http_async_query", url=http_server.url("/echo"), route="PAR", worker=1)
            sync_id = client.submit(
                {"op": "http_connect", "connection": "slow", "url": "?ms=1500", "worker": 1}
            )
            time.sleep(0.2)
            start = time.monotonic()
            client.call(
                "http_async_query",
                url=http_server.url("/echo?during"),
                route="PAR",
                worker=1,
                xdata="during",
            )
            got = []
            while time.monotonic() - start < 1.0 and not got:
                got = [m for _, m in sub.recv(0.2) if m.get("xdata") == "during"]
            assert got and time.monotonic() - start < 1.0  # not held back by the 1.5 s sync call
            assert client.wait(sync_id, timeout_s=5)["rc"] == 200
    finally:
        sub.close()


def test_reload_keeps_old_connections_on_a_bad_file_and_sighup_reloads(
    service: Service, http_server: Any
) -> None:
    conns: Path = service.conns_file  # type: ignore[attr-defined]
    with Client(service.frontend) as client:
        conns.write_text("[broken\nurl = nowhere\n")
        result = client.call("rpc", method="httpclient.reload")["result"]
        assert result["ok"] is False and "kept the old connections" in result["message"]
        assert client.call("http_connection_exists", connection="filecon")["rc"] == 1
        conns.write_text(f"[newcon]\nurl = {http_server.url('/echo/new')}\n")
        service.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if all(
                client.call("http_connection_exists", connection="newcon", worker=w)["rc"] == 1
                for w in (1, 2)
            ):
                break
            time.sleep(0.05)
        assert client.call("http_connect", connection="newcon", url="", worker=2)["rc"] == 200
        assert client.call("http_connection_exists", connection="filecon")["rc"] == 0
        assert client.call("http_connection_exists", connection="api")["rc"] == 1  # httpcons stay


def test_a_bad_configuration_stops_start_up_naming_file_line_and_value(tmp_path: Path) -> None:
    ini = tmp_path / "bad.ini"
    ini.write_text("[dispatcher]\nworkers = 1\n\n[http_client]\nhttpcon = api = > http://h/\n")
    out = sipcurl("serve", "-c", str(ini))
    assert out.returncode == 2
    assert f"{ini}:5" in out.stderr and "api = > http://h/" in out.stderr
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text('loadmodule "http_client.so"\nmodparam("http_client", "maxdatasize", MAXSIZE)\n')
    out = sipcurl("serve", "-c", str(ini), "--kamailio-cfg", str(cfg))
    assert out.returncode == 2 and f"{cfg}:2" in out.stderr and "MAXSIZE" in out.stderr


def test_serve_takes_modparams_from_a_kamailio_cfg(tmp_path: Path, http_server: Any) -> None:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(
        '#!define API "api=>' + http_server.url("/echo") + '"\n'
        'modparam("http_client", "keep_connections", 1)\n'
        'modparam("http_client", "httpcon", API)\n'
    )
    svc = Service(workers=1, http_client="", extra="")
    svc.stop()
    ini = tmp_path / "s.ini"
    ini.write_text(svc.config.read_text().replace("[http_client]\n", ""))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dispatcher.cli",
            "serve",
            "-c",
            str(ini),
            "--kamailio-cfg",
            str(cfg),
        ],
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        with Client(svc.frontend, timeout_s=15) as client:
            assert client.call("http_connect", connection="api", url="/k")["rc"] == 200
            for _ in range(4):
                client.call("http_connect", connection="api", url="/k")
        assert http_server.accepts == 1  # keep_connections came from the kamailio.cfg
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_async_max_transfers_bounds_each_worker_and_the_rest_wait(http_server: Any) -> None:
    svc = Service(workers=1, extra="async_max_transfers = 2\n", http_client="")
    try:
        with Client(svc.frontend) as client:
            firsts = [
                client.call(
                    "http_async_query",
                    url=http_server.url("/slow?ms=400"),
                    route="R",
                    mode="suspend",
                    timeout=5000,
                )
                for _ in range(2)
            ]
            queued = client.submit(
                {
                    "op": "http_async_query",
                    "url": http_server.url("/slow?ms=400"),
                    "route": "R",
                    "mode": "suspend",
                    "timeout": 5000,
                }
            )
            time.sleep(0.1)
            row = client.call("rpc", method="core.workers")["result"][0]
            assert (row["async_inflight"], row["queued"]) == (2, 1)
            third = client.wait(queued)  # answered once a transfer slot frees
            resumes = [client.wait_resume(t["txn"]) for t in (*firsts, third)]
        assert all(r["http_rs"] == 200 for r in resumes)
    finally:
        svc.stop()


def test_a_transfer_slot_freed_by_suspend_timeout_or_t_cancel_starts_the_next_job(
    http_server: Any,
) -> None:
    svc = Service(
        workers=1, extra="async_max_transfers = 1\nsuspend_timeout = 0.5\n", http_client=""
    )
    try:
        with Client(svc.frontend, timeout_s=10) as client:
            stalled = {
                "op": "http_async_query",
                "url": http_server.url("/stall"),
                "route": "R",
                "mode": "suspend",
                "timeout": 30000,
            }
            first = client.call(**stalled)
            waiting = client.submit(stalled)  # no transfer slot: it waits in the dispatcher
            assert client.wait_resume(first["txn"])["http_err"] == "suspend timeout"
            second = client.wait(waiting, timeout_s=3)  # started once the slot was freed
            third = client.submit(stalled)
            assert client.call("t_cancel", txn=second["txn"])["rc"] == 1
            assert client.wait(third, timeout_s=3)["rc"] == 1
    finally:
        svc.stop()
