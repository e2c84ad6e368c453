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

from kamailio_async_module import http_async_client_module  # noqa: E402

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
        f"  server {{ listen 127.0.0.1:{port}; location = /status {{ stub_status; }} location / {{ return 200 'ok\\n'; }} }} }}\n"
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


def switches(pids: list[int]) -> int:
    """Context switches so far of every thread of these processes: each ZeroMQ message wakes
    an I/O thread on both sides, and on two shared cores that is where sync time goes."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
            except (OSError, ValueError):
                continue
    return total


def group_pids(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def closed_loop(
    frontend: str, request: dict[str, Any], seconds: float, expect_resume: bool = False
) -> int:
    """Answers (or resumes) per second with IN_FLIGHT requests outstanding."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(frontend)
    body = msgpack.packb(request)
    # the request is a small fixmap: one more entry, the id, appended without re-packing
    head, id_key = bytes((body[0] + 1,)) + body[1:], msgpack.packb("id")
    outstanding, done, rid = 0, 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if outstanding < IN_FLIGHT:  # the window refilled with one batch frame
            n = IN_FLIGHT - outstanding
            sock.send(msgpack.packb([None] * n)[:-n] + b"".join(
                head + id_key + msgpack.packb(rid + i) for i in range(n)))  # fmt: skip
            rid += n
            outstanding += n
        if sock.poll(1000):
            while True:
                try:
                    obj = msgpack.unpackb(sock.recv(zmq.NOBLOCK), raw=False)
                except zmq.Again:
                    break
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


def kamailio_cfg(port: int, url: str, async_module: Path | None) -> str:
    """2 children; http_connect on a kept connection, or (async_module given) the
    http_async_query of Kamailio's own module with 2 async workers: the transaction is
    suspended and the reply sent from the resumed route, as sipcurl's `suspend` mode."""
    head = (f"#!KAMAILIO\ndebug=0\nlog_stderror=yes\nchildren=2\nauto_aliases=no\n"
            f"listen=udp:127.0.0.1:{port}\n"
            f'mpath="{MODULES}/"\n' + ('loadmodule "tm.so"\n' if async_module else "")
            + 'loadmodule "sl.so"\nloadmodule "pv.so"\n')  # fmt: skip
    if async_module is None:
        return head + (
            'loadmodule "http_client.so"\nmodparam("http_client", "keep_connections", 1)\n'
            f'modparam("http_client", "httpcon", "api=>{url}/k")\n'
            'request_route {\n    http_connect("api", "", "$var(r)");\n'
            '    sl_send_reply("200", "OK");\n    exit;\n}\n'
        )
    return head + (
        f'loadmodule "{async_module}"\n'
        'modparam("http_async_client", "workers", 2)\n'
        f'request_route {{\n    t_newtran();\n    http_async_query("{url}/ka", "DONE");\n    exit;\n}}\n'
        'route[DONE] {\n    t_reply("200", "OK");\n}\n'
    )


def kamailio_rate(
    url: str, seconds: float, folder: Path, async_module: Path | None = None
) -> tuple[float, float, float]:
    """Replies/s to SIP OPTIONS over UDP with IN_FLIGHT outstanding, each reply after one
    HTTP request to nginx; Kamailio's context switches and CPU µs (all processes) per reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = folder / "kamailio.cfg"
    cfg.write_text(kamailio_cfg(port, url, async_module))
    proc = subprocess.Popen(["kamailio", "-f", str(cfg), "-DD", "-E", "-m", "2048", "-w", str(folder), "-Y", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    me = sock.getsockname()[1]
    sock.settimeout(1.0)
    try:
        time.sleep(1.5)
        done, cpu, switched = cpu_per_job(
            group_pids(proc.pid), lambda: options_loop(sock, port, me, seconds)
        )
        return done / seconds, switched, sum(cpu)
    finally:
        sock.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # http_async_client's workers may not stop on TERM
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def options_loop(sock: socket.socket, port: int, me: int, seconds: float) -> int:
    """Replies to SIP OPTIONS sent to 127.0.0.1:port, IN_FLIGHT outstanding, for `seconds`."""
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
    return done


def cpu_per_job(pids: list[int], run: Callable[[], int]) -> tuple[int, list[float], float]:
    """Jobs done by `run`, the CPU time (user + system, every thread) per job in µs of
    each process in `pids`, and their context switches per job."""
    before = [cpu_s(pid) for pid in pids]
    switched = switches(pids)
    done = run()
    cpu = [(cpu_s(pid) - b) / max(done, 1) * 1e6 for pid, b in zip(pids, before, strict=True)]
    return done, cpu, (switches(pids) - switched) / max(done, 1)


def sipcurl_round(frontend: str, events: str, url: str, t: float, fig: dict[str, Any],
                  dpid: int, wpids: list[int], first: bool) -> None:  # fmt: skip
    sync = {"op": "http_connect", "connection": "api", "url": "/x"}
    done, cpu, switched = cpu_per_job([dpid, *wpids], lambda: closed_loop(frontend, sync, t))
    fig["sync_e2e_runs"].append(done / t)
    fig["switches_per_sync_job_runs"].append(switched)
    fig["cpu_us_dispatcher_runs"].append(cpu[0])
    fig["cpu_us_workers_runs"].append(sum(cpu[1:]))
    event = {"op": "http_async_query", "url": f"{url}/a", "route": "BENCH"}
    done, cpu, _ = cpu_per_job([dpid, *wpids], lambda: event_loop(frontend, events, event, t))
    fig["async_event_runs"].append(done / t)
    fig["cpu_us_dispatcher_event_runs"].append(cpu[0])
    fig["cpu_us_workers_event_runs"].append(sum(cpu[1:]))
    suspend = {**event, "route": "R", "mode": "suspend"}
    fig["async_suspend_runs"].append(closed_loop(frontend, suspend, t, expect_resume=True) / t)
    if first:
        fig["latency_1000_p50"], fig["latency_1000_p99"] = latency_at(
            frontend, {**sync, "url": "/l"}, 1000, t
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument(
        "--rounds", type=int, default=2, help="sipcurl and Kamailio alternate this many times"
    )
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--plot", default="out/bench.png", help="the figures as a bar chart (PNG)")
    args = p.parse_args()
    t = args.seconds
    work = Path(tempfile.mkdtemp(prefix="sipcurl-bench-"))
    nginx, url = start_nginx(work)
    fig: dict[str, Any] = {"seconds": t, "rounds": args.rounds, "in_flight": IN_FLIGHT}
    for name in ("sync_e2e", "async_event", "async_suspend", "cpu_us_dispatcher", "cpu_us_workers",
                 "cpu_us_dispatcher_event", "cpu_us_workers_event", "kamailio_sync", "kamailio_async",
                 "switches_per_sync_job", "kamailio_switches_per_call", "cpu_us_kamailio"):  # fmt: skip
        fig[f"{name}_runs"] = []
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
        why_not = kamailio_available()
        module = http_async_client_module() if why_not is None else why_not
        if isinstance(module, str):
            print(f"bench: Kamailio's http_async_query not measured: {module}", flush=True)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: sipcurl ...", flush=True)
            service = localrun.start_service(text, 2, work)
            try:
                with Client(frontend) as c:
                    wpids = [w["pid"] for w in c.call("rpc", method="core.workers")["result"]]
                if r == 0:
                    fig["rss_idle_worker_kib"] = max(localrun.rss_kib(q) for q in wpids)
                sipcurl_round(frontend, events, url, t, fig, service.proc.pid, wpids, r == 0)
            finally:
                service.stop()
            if why_not is None:
                print(f"round {r + 1}/{args.rounds}: kamailio ...", flush=True)
                rate, switched, cpu_us = kamailio_rate(url, t, work)
                fig["kamailio_sync_runs"].append(rate)
                fig["kamailio_switches_per_call_runs"].append(switched)
                fig["cpu_us_kamailio_runs"].append(cpu_us)
                if isinstance(module, Path):
                    fig["kamailio_async_runs"].append(kamailio_rate(url, t, work, module)[0])
        print("memory per 10,000 suspended transactions ...", flush=True)
        fig["dispatcher_kib_per_10k_suspended"] = safely(suspended_growth, work)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=10)
    for name in [k[:-5] for k in fig if k.endswith("_runs")]:
        runs = fig[name + "_runs"]
        # The best round of each: noise on a shared machine only ever slows a run down.
        lower_is_better = name.startswith("cpu_") or "switches" in name
        fig[name] = (min(runs) if lower_is_better else max(runs)) if runs else None
    report(fig)
    if args.plot:
        plot(fig, Path(args.plot))
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(fig, indent=2))
    return 0


SUSPENDED = 10_000
PER_WORKER = 800  # a worker's curl sockets must stay below FD_SETSIZE (1024): see README


def suspended_growth(work: Path) -> float:
    """Dispatcher RSS growth (KiB) with 10,000 suspended transactions, each waiting on a
    server that never answers; enough workers that each holds PER_WORKER of them."""
    stall = subprocess.Popen([*localrun.SIPCURL, "backend", "--listen", "127.0.0.1:0", "--stall-rate", "1"],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    workers = -(-SUSPENDED // PER_WORKER)
    text, frontend, _ = localrun.service_config(
        workers=workers,
        http_client="",
        dispatcher=f"async_max_transfers = {PER_WORKER}\nsuspend_timeout = 600\n",
    )
    service = localrun.start_service(text, workers, work)
    try:
        line = stall.stdout.readline() if stall.stdout else ""
        target = line.split()[1]
        dpid = service.proc.pid
        request = {"op": "http_async_query", "url": f"{target}/s", "route": "R",
                   "mode": "suspend", "timeout": 600_000}  # fmt: skip
        with Client(frontend, timeout_s=60) as c:
            for i in range(20):  # warm-up: the dispatcher's own buffers, then the baseline
                c.call(**request, worker=1 + i % workers)
            base = localrun.rss_kib(dpid)
            for start in range(0, SUSPENDED, 100):
                ids = c.submit_many([request] * 100)
                for i in ids:
                    if c.wait(i).get("suspended") is not True:
                        raise RuntimeError("a transaction was not suspended")
                if (start + 100) % 2000 == 0:
                    print(f"  {start + 100} suspended", flush=True)
            return (localrun.rss_kib(dpid) - base) * 10_000 / SUSPENDED
    finally:
        service.stop()
        stall.terminate()
        stall.wait(timeout=5)


def safely(fn: Callable[..., float], *args: Any) -> float | None:
    """A figure that could not be measured is reported as missing, with the reason."""
    try:
        return fn(*args)
    except Exception as exc:
        print(f"bench: {fn.__name__} not measured: {exc}", flush=True)
        return None


def plot(f: dict[str, Any], path: Path) -> None:
    """Throughput beside Kamailio's and the ceilings, and CPU per call: one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [
        ("pycurl easy\n2 proc", f["easy_2p"], "#bbbbbb"),
        ("Kamailio\nhttp_connect", f.get("kamailio_sync"), "#d62728"),
        ("sipcurl\nsync", f["sync_e2e"], "#1f77b4"),
        ("CurlMulti\n2 proc", f["multi_2p"], "#bbbbbb"),
        ("Kamailio\nasync_query", f.get("kamailio_async"), "#d62728"),
        ("sipcurl\nevent", f["async_event"], "#1f77b4"),
        ("sipcurl\nsuspend", f["async_suspend"], "#1f77b4"),
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    shown = [(n, v or 0.0, c) for n, v, c in bars]
    ax1.bar([n for n, _, _ in shown], [v for _, v, _ in shown], color=[c for _, _, c in shown])
    for i, (_, v, _) in enumerate(shown):
        ax1.text(i, v, f"{v:,.0f}" if v else "n/a", ha="center", va="bottom", fontsize=8)
    ax1.set_ylabel("calls or completions per second")
    ax1.set_title(f"2 workers / 2 children, {f['in_flight']} in flight, one nginx")
    cpu = [("sipcurl\ndispatcher", f["cpu_us_dispatcher"]), ("sipcurl\nworkers", f["cpu_us_workers"]),
           ("Kamailio\nall", f.get("cpu_us_kamailio") or 0.0)]  # fmt: skip
    ax2.bar([n for n, _ in cpu], [v for _, v in cpu], color=["#1f77b4", "#1f77b4", "#d62728"])
    ax2.set_ylabel("CPU µs per sync call")
    ax2.set_title("CPU per sync call")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(f: dict[str, Any]) -> None:
    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:5.2f}x" if a and b else "   - "

    kam, kam_async = f.get("kamailio_sync"), f.get("kamailio_async")
    print(f"\nfigure ({f['in_flight']} in flight, best of {f['rounds']} rounds of {f['seconds']:g} s)"
          "          value   vs ceiling   vs Kamailio")  # fmt: skip
    rows = [
        ("plain pycurl, reused handle, 1 process", f["easy_1p"], None, None),
        ("plain pycurl, reused handle, 2 processes", f["easy_2p"], None, None),
        ("plain CurlMulti, 1 process", f["multi_1p"], None, None),
        ("plain CurlMulti, 2 processes", f["multi_2p"], None, None),
        ("Kamailio 2 children, http_connect", kam, f["easy_2p"], None),
        ("Kamailio 2 children, http_async_query", kam_async, f["multi_2p"], None),
        ("sipcurl 2 workers, sync http_connect", f["sync_e2e"], f["easy_2p"], kam),
        ("sipcurl 2 workers, async event completions", f["async_event"], f["multi_2p"], kam_async),
        ("sipcurl 2 workers, async suspend resumes", f["async_suspend"], f["multi_2p"], kam_async),
    ]
    for name, value, ceiling, kamailio in rows:
        v = f"{value:9.0f}/s" if value else "        -  "
        print(f"{name:<62}{v}   {ratio(value, ceiling)}      {ratio(value, kamailio)}")
    print(
        f"latency at 1,000 jobs/s: p50 {f['latency_1000_p50']:.2f} ms, p99 {f['latency_1000_p99']:.2f} ms (target p50 <= 1 ms)"
    )
    print(f"CPU per sync job: dispatcher {f['cpu_us_dispatcher']:.0f} us (target 40), "
          f"workers {f['cpu_us_workers']:.0f} us (target 100); per event completion: "
          f"dispatcher {f['cpu_us_dispatcher_event']:.0f} us, workers {f['cpu_us_workers_event']:.0f} us")  # fmt: skip
    if f.get("kamailio_switches_per_call"):
        print(f"per sync call, sipcurl (dispatcher + workers) vs Kamailio (every process): CPU "
              f"{f['cpu_us_dispatcher'] + f['cpu_us_workers']:.0f} vs {f['cpu_us_kamailio']:.0f} us, context switches "
              f"{f['switches_per_sync_job']:.1f} vs {f['kamailio_switches_per_call']:.1f}")  # fmt: skip
    growth = f["dispatcher_kib_per_10k_suspended"]
    shown = f"{growth / 1024:.1f} MiB" if growth is not None else "not measured"
    print(f"RSS per idle worker {f['rss_idle_worker_kib'] / 1024:.1f} MiB (target 32); "
          f"dispatcher growth per 10,000 suspended {shown} (target 5)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
