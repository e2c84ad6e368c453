#!/usr/bin/env python3
"""The same synchronous load through the real Kamailio and through sipcurl, side by side.

C Kamailio children (driven by SIP OPTIONS over UDP, each calling `http_connect` on a
kept connection) against C sipcurl workers doing the same call; one backend of latency L;
open loop at the same rate for both. Prints achieved rate, latency percentiles and the
TCP connections the backend accepted. Needs Kamailio 5.6 (`apt-get install kamailio
kamailio-utils-modules`; the fidelity tests install it).
Usage: scripts/compare-kamailio [--children 4] [--latency-ms 20] [--rate 150] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dispatcher import loadtest, localrun  # noqa: E402
from dispatcher.loadreport import percentile  # noqa: E402
from tests.fidelity.kamailio import MODULES, kamailio_available  # noqa: E402


def backend_stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/_stats", timeout=5) as resp:
        return json.loads(resp.read())


def run_kamailio(children: int, url: str, rate: float, seconds: float, work: str) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = os.path.join(work, "kamailio.cfg")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(
            f"#!KAMAILIO\ndebug=1\nlog_stderror=yes\nchildren={children}\nauto_aliases=no\n"
            f'listen=udp:127.0.0.1:{port}\nmpath="{MODULES}/"\n'
            'loadmodule "sl.so"\nloadmodule "pv.so"\nloadmodule "textops.so"\nloadmodule "http_client.so"\n'
            'modparam("http_client", "keep_connections", 1)\n'
            f'modparam("http_client", "httpcon", "api=>{url}/api")\n'
            'request_route {\n    http_connect("api", "/c", "$var(res)");\n    $var(rc) = $rc;\n'
            '    append_to_reply("X-Rc: $var(rc)\\r\\n");\n    sl_send_reply("200", "OK");\n    exit;\n}\n'
        )
    proc = subprocess.Popen(["kamailio", "-f", cfg, "-DD", "-E", "-w", work, "-Y", work],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    me = sock.getsockname()[1]
    try:
        time.sleep(1.5)  # Kamailio forks its children; a probe below confirms it answers
        before = backend_stats(url)
        sent: dict[str, float] = {}
        latencies: list[float] = []
        in_window = 0
        start = time.monotonic()
        n = 0
        interval = 1.0 / rate
        end = start + seconds
        while time.monotonic() < end + 10 and (time.monotonic() < end or sent):
            now = time.monotonic()
            while now < end and n < int((now - start) / interval) + 1:
                cid = f"c{n}"
                msg = (f"OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{n}\r\n"
                       f"From: <sip:a@127.0.0.1>;tag={n}\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: {cid}\r\n"
                       "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
                sock.sendto(msg.encode(), ("127.0.0.1", port))
                sent[cid] = start + n * interval
                n += 1
            try:
                while True:
                    data = sock.recv(65535).decode("latin-1")
                    got = time.monotonic()
                    for line in data.split("\r\n"):
                        if line.lower().startswith("call-id:"):
                            t0 = sent.pop(line.split(":", 1)[1].strip(), None)
                            if t0 is not None:
                                latencies.append((got - t0) * 1000)
                                in_window += got < end
            except BlockingIOError:
                time.sleep(0.0005)
        after = backend_stats(url)
        return {"sent": n, "answered": len(latencies), "achieved_rate": in_window / seconds,
                "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                "backend_connections": after["connections_accepted"] - before["connections_accepted"] - 1}  # fmt: skip
    finally:
        sock.close()
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--children", type=int, default=4)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=150.0)
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    why = kamailio_available()
    if why:
        print(f"compare-kamailio: {why}", file=sys.stderr)
        return 2
    work = str(localrun.workdir("sipcurl-compare-"))
    backend, url = localrun.start_backend(
        ["--latency-ms", str(args.latency_ms)], localrun.workdir()
    )
    try:
        kam = run_kamailio(args.children, url, args.rate, args.seconds, work)
        text, frontend, _ = localrun.service_config(
            workers=args.children, http_client=f"keep_connections = 1\nhttpcon = api=>{url}/api"
        )
        service = localrun.start_service(text, args.children, localrun.workdir())
        try:
            result = loadtest.run_load(frontend, loadtest.parse_jobs(["op=http_connect connection=api url=/c"]),
                                       args.rate, None, args.seconds, 0.0, url, progress=False)  # fmt: skip
        finally:
            service.stop()
        ours = loadtest.result_to_json(result)
    finally:
        backend.stop()
    capacity = args.children * 1000 / args.latency_ms
    print(
        f"C={args.children} L={args.latency_ms:g} ms (C/L = {capacity:.0f}/s), offered {args.rate:g}/s for {args.seconds:g} s"
    )
    print(
        f"{'':12}{'achieved/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'backend TCP':>13}{'answered/sent':>15}"
    )
    print(
        f"{'kamailio':12}{kam['achieved_rate']:>11.1f}{kam['p50']:>9.1f}{kam['p99']:>9.1f}"
        f"{kam['backend_connections']:>13}{kam['answered']:>9}/{kam['sent']}"
    )
    print(f"{'sipcurl':12}{ours['achieved_rate']:>11.1f}{ours['latency']['total']['p50']:>9.1f}"
          f"{ours['latency']['total']['p99']:>9.1f}{ours['backend']['connections_accepted']:>13}"
          f"{ours['answered']:>9}/{ours['sent']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
