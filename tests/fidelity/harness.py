"""Runs the same http_client calls through the real Kamailio and through sipcurl.

For each settings group one kamailio.cfg is generated: its modparams are the group's
settings (sipcurl reads the very same file with `--kamailio-cfg`'s importer) and its
routing script has one branch per case, chosen by the `X-Case` header of a SIP OPTIONS
request. Connection names, content types, http_connect_raw data and the N of
`$curlerror(N)` are literals in Kamailio 5.6's script, so the harness writes them in.
The branch replies with the return code, the result (base64), the connection's last
redirect and `$curlerror` as headers; counters come from kamcmd. Kamailio runs with one
child, so per-process state (kept connections, last redirect) is comparable.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
CURL_CODES = (1, 2, 3, 5, 6, 7, 18, 22, 23, 28, 35, 45, 47, 51, 52, 55, 56, 58, 59, 60, 77)


def kamailio_available() -> str | None:
    """None when Kamailio with http_client is here (installing it if we can), else why not."""
    if shutil.which("kamailio") and os.path.exists(f"{MODULES}/http_client.so"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "kamailio is not installed and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in ("install", "update+install"):
        if attempt == "update+install":
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "kamailio", "kamailio-utils-modules"],
            env=env, capture_output=True, timeout=900,
        )  # fmt: skip
        if done.returncode == 0 and os.path.exists(f"{MODULES}/http_client.so"):
            # The package starts nothing useful for us; make sure no packaged daemon runs.
            subprocess.run(["sh", "-c", "service kamailio stop"], capture_output=True, timeout=30)
            return None
    return "apt-get could not install kamailio and kamailio-utils-modules"


def cfg_string(text: str) -> str:
    """A double-quoted Kamailio cfg string literal (CR/LF written as escapes)."""
    return (
        '"'
        + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
        + '"'
    )


@dataclass
class Case:
    name: str
    op: str
    args: dict[str, Any]
    pv: dict[str, str] = field(default_factory=dict)  # "$var(x)" / "$avp(x)" -> value, set first
    compare_request: bool = True  # what the HTTP server received
    # A difference documented in the README: compare after this normalisation of both sides.
    known_difference: str | None = None

    def kamailio_call(self) -> str:
        a = {k: v for k, v in self.args.items()}
        q = cfg_string
        if self.op in ("http_connect", "http_connect_raw"):
            if "data" in a or "content_type" in a:
                return f'{self.op}({q(a["connection"])}, {q(a["url"])}, {q(a.get("content_type", ""))}, {q(a.get("data", ""))}, "$var(res)")'
            return f'http_connect({q(a["connection"])}, {q(a["url"])}, "$var(res)")'
        if self.op == "http_client_query":
            if "hdrs" in a:
                return f'http_client_query({q(a["url"])}, {q(a.get("post", ""))}, {q(a["hdrs"])}, "$var(res)")'
            if "post" in a:
                return f'http_client_query({q(a["url"])}, {q(a["post"])}, "$var(res)")'
            return f'http_client_query({q(a["url"])}, "$var(res)")'
        if self.op == "http_client_get":
            return f'http_client_get({q(a["url"])}, {q(a.get("body", ""))}, {q(a.get("hdrs", ""))}, "$var(res)")'
        raise ValueError(self.op)

    def sipcurl_request(self) -> dict[str, Any]:
        return {"op": self.op, **self.args, "pv": dict(self.pv)}


@dataclass
class Outcome:
    rc: int
    result: bytes
    curlerror: str
    redirect: str | None
    counters: dict[str, int]


class Kamailio:
    """One Kamailio child process on a free UDP port, stopped by its pid."""

    def __init__(self, modparams: list[tuple[str, str | int]], cases: list[Case]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sipcurl-kamailio-"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.ctl = self.dir / "ctl.sock"
        self.cfg = self.dir / "kamailio.cfg"
        self.cases = cases
        self.cfg.write_text(self._config(modparams))
        self.log = open(self.dir / "kamailio.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["kamailio", "-f", str(self.cfg), "-DD", "-E", "-w", str(self.dir), "-Y", str(self.dir)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self._wait_ready()

    def _config(self, modparams: list[tuple[str, str | int]]) -> str:
        lines = [
            "#!KAMAILIO",
            "debug=1", "log_stderror=yes", "children=1", "auto_aliases=no",
            f"listen=udp:127.0.0.1:{self.port}", f'mpath="{MODULES}/"',
        ]  # fmt: skip
        for module in ("sl", "pv", "textops", "xlog", "kex", "ctl", "http_client"):
            lines.append(f'loadmodule "{module}.so"')
        lines.append(f'modparam("ctl", "binrpc", "unix:{self.ctl}")')
        for name, value in modparams:
            literal = str(value) if isinstance(value, int) else cfg_string(value)
            lines.append(f'modparam("http_client", "{name}", {literal})')
        lines.append("request_route {")
        lines.append('    $var(res) = ""; $var(redir) = ""; $var(rc) = 0;')
        for i, case in enumerate(self.cases):
            lines.append(f'    if ($hdr(X-Case) == "{i}") {{')
            for pv_name, pv_value in case.pv.items():
                lines.append(f"        {pv_name} = {cfg_string(pv_value)};")
            lines.append(f"        {case.kamailio_call()};")
            lines.append("        $var(rc) = $rc;")
            if case.op.startswith("http_connect"):
                lines.append(
                    f'        http_get_redirect({cfg_string(case.args["connection"])}, "$var(redir)");'
                )
            lines.append("    }")
        lines.append("    $var(cerr) = $curlerror(200);")
        lines.append("    if ($var(rc) < 0) { $var(cerr) = $curlerror(-1); }")
        for code in CURL_CODES:
            lines.append(f"    if ($var(rc) == {code}) {{ $var(cerr) = $curlerror({code}); }}")
        lines += [
            '    append_to_reply("X-Rc: $var(rc)\\r\\n");',
            '    append_to_reply("X-Result: $(var(res){s.encode.base64})\\r\\n");',
            '    append_to_reply("X-Redirect: $(var(redir){s.encode.base64})\\r\\n");',
            '    append_to_reply("X-Curlerror: $var(cerr)\\r\\n");',
            '    sl_send_reply("200", "OK");',
            "    exit;",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def _wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited: {self.output()}")
            if self.ctl.exists() and self.counters():
                return
            time.sleep(0.1)
        raise RuntimeError(f"kamailio did not start: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return (self.dir / "kamailio.log").read_text(errors="replace")[-4000:]

    def counters(self) -> dict[str, int]:
        out = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.ctl}", "stats.get_statistics", "httpclient:"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        values = {}
        for line in out.stdout.splitlines():
            name, _, value = line.partition("=")
            if value.strip().lstrip("-").isdigit():
                values[name.strip()] = int(value)
        return values

    def run(self, index: int, timeout_s: float = 15.0) -> Outcome:
        before = self.counters()
        call_id = f"case-{index}-{time.monotonic_ns()}"
        msg = (
            f"OPTIONS sip:fidelity@127.0.0.1:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sock.getsockname()[1]};branch=z9hG4bK{time.monotonic_ns()}\r\n"
            f"From: <sip:h@127.0.0.1>;tag=1\r\nTo: <sip:k@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 OPTIONS\r\nX-Case: {index}\r\nContent-Length: 0\r\n\r\n"
        )
        self.sock.sendto(msg.encode(), ("127.0.0.1", self.port))
        self.sock.settimeout(timeout_s)
        while True:
            reply = self.sock.recv(65535).decode("latin-1")
            if call_id in reply:
                break
        headers = {}
        for line in reply.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        after = self.counters()
        redirect = headers.get("x-redirect")
        return Outcome(
            rc=int(headers["x-rc"]),
            result=base64.b64decode(headers.get("x-result", "")),
            curlerror=headers.get("x-curlerror", ""),
            redirect=base64.b64decode(redirect).decode() if redirect else None,
            counters={
                k: after.get(k, 0) - before.get(k, 0)
                for k in ("httpclient:connok", "httpclient:connfail")
            },
        )

    def stop(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
