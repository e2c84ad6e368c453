#!/usr/bin/env python3
"""Performance of sipcurl against its ceilings and against Kamailio, in one run, one nginx.

Every figure is measured here, now, against the same local nginx (installed and started by
this script) and printed with its ratio to its ceiling and to Kamailio: these machines are
noisy, so only ratios within one run mean anything.
Usage: scripts/bench [--seconds 4] [--rounds 2] [--json out/bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pycurl
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dispatcher import localrun  # noqa: E402
from dispatcher.client import Client, Subscriber  # noqa: E402
from dispatcher.loadreport import percentile  # noqa: E402
from tests.fidelity.kamailio import MODULES, kamailio_available  # noqa: E402

IN_FLIGHT = 64


# -- nginx --


def start_nginx(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    port = localrun.free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        f"worker_processes 1; daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; client_body_temp_path {folder}; proxy_temp_path {folder};\n"
        f"  fastcgi_temp_path {folder}; uwsgi_temp_path {folder}; scgi_temp_path {folder};\n"
        "  keepalive_requests 1000000;\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok\\n'; }} }} }}\n"
    )
    proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(folder)],
                            start_new_session=True, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start")


# -- ceilings (each runs in its own processes) --


def easy_loop(url: str, seconds: float) -> int:
    handle = pycurl.Curl()
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.WRITEFUNCTION, lambda _b: None)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        handle.perform()
        n += 1
    return n


def multi_loop(url: str, seconds: float) -> int:
    multi = pycurl.CurlMulti()
    free = []
    for _ in range(IN_FLIGHT):
        h = pycurl.Curl()
        h.setopt(pycurl.URL, url)
        h.setopt(pycurl.WRITEFUNCTION, lambda _b: None)
        free.append(h)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        while free:
            multi.add_handle(free.pop())
        multi.select(0.01)
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, ok, err = multi.info_read()
            for h in ok + [e[0] for e in err]:
                multi.remove_handle(h)
                free.append(h)
                n += 1
            if not queued:
                break
    return n


def in_processes(
    fn: Callable[[str, float], int], url: str, seconds: float, processes: int
) -> float:
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import bench; print(bench.{fn.__name__}({url!r}, {seconds}))")  # fmt: skip
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    return sum(int(p.communicate()[0].strip() or 0) for p in procs) / seconds


# -- sipcurl --


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def closed_loop(
    frontend: str, request: dict[str, Any], seconds: float, expect_resume: bool = False
) -> int:
    """Answers (or resumes) per second with IN_FLIGHT requests outstanding."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(frontend)
    body = msgpack.packb(request)
    outstanding, done, rid = 0, 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        while outstanding < IN_FLIGHT:
            # the request is a small fixmap: one more entry, the id, appended without re-packing
            sock.send(bytes((body[0] + 1,)) + body[1:] + msgpack.packb("id") + msgpack.packb(rid))
            rid += 1
            outstanding += 1
        if sock.poll(1000):
            obj = msgpack.unpackb(sock.recv(), raw=False)
            for msg in obj if isinstance(obj, list) else [obj]:
                if expect_resume and msg.get("type") != "resume":
                    continue
                outstanding -= 1
                done += 1
    sock.close(0)
    return done


def event_loop(frontend: str, events: str, request: dict[str, Any], seconds: float) -> int:
    sub = Subscriber(events, ["BENCH"])
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(frontend)
    body = msgpack.packb(request)
    with Client(frontend) as probe:  # the subscription is live once a probe event arrives
        deadline = time.monotonic() + 10
        while not sub.recv(0.2) and time.monotonic() < deadline:
            probe.call(**request)
    outstanding, done = 0, 0
    end = time.monotonic() + seconds
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(sub.sock, zmq.POLLIN)
    while time.monotonic() < end:
        while outstanding < IN_FLIGHT:
            sock.send(body)
            outstanding += 1
        for s, _ in poller.poll(1000):
            if s is sock:
                while sock.poll(0):
                    sock.recv()
            else:
                got = len(sub.recv(0))
                outstanding -= got
                done += got
    sock.close(0)
    sub.close()
    return done


def latency_at(
    frontend: str, request: dict[str, Any], rate: float, seconds: float
) -> tuple[float, float]:
    from dispatcher import loadtest

    result = loadtest.run_load(frontend, loadtest.parse_jobs([" ".join(f"{k}={v}" for k, v in request.items())]),
                               rate, None, seconds, 0.5, None, progress=False)  # fmt: skip
    values = [s.latency_ms for s in result.samples]
    return percentile(values, 50), percentile(values, 99)


# -- kamailio --


def kamailio_sync(url: str, seconds: float, folder: Path) -> float:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = folder / "kamailio.cfg"
    cfg.write_text(
        f"#!KAMAILIO\ndebug=0\nlog_stderror=yes\nchildren=2\nauto_aliases=no\nlisten=udp:127.0.0.1:{port}\n"
        f'mpath="{MODULES}/"\nloadmodule "sl.so"\nloadmodule "pv.so"\nloadmodule "http_client.so"\n'
        'modparam("http_client", "keep_connections", 1)\n'
        f'modparam("http_client", "httpcon", "api=>{url}/k")\n'
        'request_route {\n    http_connect("api", "", "$var(r)");\n    sl_send_reply("200", "OK");\n    exit;\n}\n'
    )
    proc = subprocess.Popen(["kamailio", "-f", str(cfg), "-DD", "-E", "-w", str(folder), "-Y", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    me = sock.getsockname()[1]
    sock.settimeout(1.0)
    try:
        time.sleep(1.5)
        n = done = outstanding = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            while outstanding < IN_FLIGHT:
                msg = (f"OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{n}\r\n"
                       f"From: <sip:a@h>;tag={n}\r\nTo: <sip:b@h>\r\nCall-ID: b{n}\r\nCSeq: 1 OPTIONS\r\n"
                       "Content-Length: 0\r\n\r\n")  # fmt: skip
                sock.sendto(msg.encode(), ("127.0.0.1", port))
                n += 1
                outstanding += 1
            try:
                sock.recv(65535)
                outstanding -= 1
                done += 1
            except TimeoutError:
                outstanding = 0  # a datagram was dropped: refill the window
        return done / seconds
    finally:
        sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument(
        "--rounds", type=int, default=2, help="sipcurl and Kamailio alternate this many times"
    )
    p.add_argument("--json", help="write every figure here")
    args = p.parse_args()
    t = args.seconds
    work = Path(tempfile.mkdtemp(prefix="sipcurl-bench-"))
    nginx, url = start_nginx(work)
    fig: dict[str, Any] = {}
    try:
        print("ceilings ...", flush=True)
        fig["easy_1p"] = in_processes(easy_loop, url + "/e", t, 1)
        fig["easy_2p"] = in_processes(easy_loop, url + "/e", t, 2)
        fig["multi_1p"] = in_processes(multi_loop, url + "/m", t, 1)
        fig["multi_2p"] = in_processes(multi_loop, url + "/m", t, 2)
        text, frontend, events = localrun.service_config(
            workers=2,
            http_client=f"keep_connections = 1\nhttpcon = api=>{url}/s",
            dispatcher="async_max_transfers = 900\n",
        )
        kam_ok = kamailio_available() is None
        sync_runs, kam_runs = [], []
        for r in range(args.rounds):
            print(f"round {r + 1}: sipcurl ...", flush=True)
            service = localrun.start_service(text, 2, work)
            try:
                with Client(frontend) as c:
                    pids = [w["pid"] for w in c.call("rpc", method="core.workers")["result"]]
                dpid = service.proc.pid
                if r == 0:
                    fig["rss_idle_worker_kib"] = max(rss_kib(q) for q in pids)
                before = {pid: cpu_s(pid) for pid in (dpid, *pids)}
                done = closed_loop(
                    frontend, {"op": "http_connect", "connection": "api", "url": "/x"}, t
                )
                after = {pid: cpu_s(pid) for pid in before}
                sync_runs.append(done / t)
                fig.setdefault("cpu_us_dispatcher", []).append(
                    (after[dpid] - before[dpid]) / done * 1e6
                )
                fig.setdefault("cpu_us_workers", []).append(
                    sum(after[q] - before[q] for q in pids) / done * 1e6
                )
                if r == 0:
                    fig["async_event"] = (
                        event_loop(
                            frontend,
                            events,
                            {"op": "http_async_query", "url": f"{url}/a", "route": "BENCH"},
                            t,
                        )
                        / t
                    )
                    fig["async_suspend"] = (
                        closed_loop(
                            frontend,
                            {
                                "op": "http_async_query",
                                "url": f"{url}/a",
                                "route": "R",
                                "mode": "suspend",
                            },
                            t,
                            expect_resume=True,
                        )
                        / t
                    )
                    fig["latency_1000_p50"], fig["latency_1000_p99"] = latency_at(
                        frontend, {"op": "http_connect", "connection": "api", "url": "/l"}, 1000, t
                    )
                    fig["dispatcher_kib_per_10k_suspended"] = safely(
                        suspended_growth, frontend, dpid, rss_kib(dpid)
                    )
            finally:
                service.stop()
            if kam_ok:
                print(f"round {r + 1}: kamailio ...", flush=True)
                kam_runs.append(kamailio_sync(url, t, work))
        fig["sync_e2e"] = max(sync_runs)
        fig["kamailio_sync"] = max(kam_runs) if kam_runs else None
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=10)
    report(fig)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(fig, indent=2))
    return 0


SUSPENDED = 1600  # x 6.25 = 10,000: each holds a socket in a worker, and fdset() stops at 1024


def suspended_growth(frontend: str, dpid: int, base_kib: int) -> float:
    """Dispatcher RSS growth per 10,000 suspended transactions (on a server that stalls)."""
    stall = subprocess.Popen([*localrun.SIPCURL, "backend", "--listen", "127.0.0.1:0", "--stall-rate", "1"],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        line = stall.stdout.readline() if stall.stdout else ""
        target = line.split()[1]
        with Client(frontend, timeout_s=30) as c:
            for _ in range(10):
                ids = c.submit_many(
                    [
                        {
                            "op": "http_async_query",
                            "url": f"{target}/s",
                            "route": "R",
                            "mode": "suspend",
                            "timeout": 60000,
                        }
                    ]
                    * 1000
                )
                for i in ids:
                    c.wait(i)
            return rss_kib(dpid) - base_kib
    finally:
        stall.terminate()
        stall.wait(timeout=5)


def safely(fn: Callable[..., float], *args: Any) -> float | None:
    """A figure that could not be measured is reported as missing, with the reason."""
    try:
        return fn(*args)
    except Exception as exc:
        print(f"bench: {fn.__name__} not measured: {exc}", flush=True)
        return None


def report(f: dict[str, Any]) -> None:
    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:5.2f}x" if a and b else "   - "

    kam = f.get("kamailio_sync")
    print("\nfigure                                   value      vs ceiling   vs Kamailio")
    rows = [
        ("plain pycurl, reused handle, 1 process", f["easy_1p"], None, None),
        ("plain pycurl, reused handle, 2 processes", f["easy_2p"], None, None),
        ("plain CurlMulti, 64 in flight, 1 process", f["multi_1p"], None, None),
        ("plain CurlMulti, 64 in flight, 2 processes", f["multi_2p"], None, None),
        ("sipcurl sync http_connect, 2 workers", f["sync_e2e"], f["easy_2p"], kam),
        ("Kamailio sync http_connect, 2 children", kam, f["easy_2p"], None),
        ("sipcurl async event completions/s", f["async_event"], f["multi_2p"], None),
        ("sipcurl async suspend resumes/s", f["async_suspend"], f["multi_2p"], None),
    ]
    for name, value, ceiling, kamailio in rows:
        v = f"{value:9.0f}/s" if value else "        -  "
        print(f"{name:<42}{v}   {ratio(value, ceiling)}      {ratio(value, kamailio)}")
    print(
        f"latency at 1,000 jobs/s: p50 {f['latency_1000_p50']:.2f} ms, p99 {f['latency_1000_p99']:.2f} ms (target p50 <= 1 ms)"
    )
    print(
        f"CPU per job: dispatcher {min(f['cpu_us_dispatcher']):.0f} us (target 40), workers {min(f['cpu_us_workers']):.0f} us (target 100)"
    )
    growth = f["dispatcher_kib_per_10k_suspended"]
    shown = f"{growth / 1024:.1f} MiB" if growth is not None else "not measured"
    print(f"RSS per idle worker {f['rss_idle_worker_kib'] / 1024:.1f} MiB (target 32); "
          f"dispatcher growth per 10,000 suspended {shown} (target 5)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
