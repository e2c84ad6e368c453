"""Runs http_client calls through the real Kamailio 5.6, one SIP request per call.

For each settings group one kamailio.cfg is generated: its modparams are the group's
settings (sipcurl reads the very same file with `--kamailio-cfg`'s importer) and its
routing script has one branch per case, chosen by the `X-Case` header of a SIP OPTIONS
request sent over UDP from Python. Connection names, content types, http_connect_raw data
and the N of `$curlerror(N)` are literals in 5.6's script, so the harness writes them in.
The branch replies with the return code, the result (base64), the connection's last
redirect and `$curlerror` as headers; counters come from
kamcmd over a private ctl socket. Kamailio runs with one child, so per-process state
(kept connections, last redirect) is comparable with one sipcurl worker's.
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
# Return codes a case may produce, each with a literal `$curlerror(N)` branch in the script.
CURL_CODES = (1, 2, 3, 5, 6, 7, 18, 22, 23, 28, 35, 45, 47, 51, 52, 55, 56, 58, 59, 60, 77)
# The stock 8 KiB would make `$(var(res){s.encode.base64})` fail for results above ~6 KiB:
# that is a limit of the harness's reply, not of http_client, so it is raised.
PV_BUFFER_SIZE = 131072
START_TIMEOUT_S = 15.0


def binary(name: str) -> str:
    """kamailio and kamcmd live in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin") or name


def kamailio_available() -> str | None:
    """None when Kamailio with http_client is here (installing it if we can), else why not."""
    installed = all(os.path.isabs(binary(b)) for b in ("kamailio", "kamcmd"))
    if installed and Path(MODULES, "http_client.so").exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "kamailio is not installed and cannot be installed here (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in ("install", "update+install"):
        try:
            if attempt == "update+install":
                subprocess.run(
                    ["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600
                )
            done = subprocess.run(
                ["apt-get", "install", "-y", "-qq", "kamailio", "kamailio-utils-modules"],
                env=env, capture_output=True, timeout=900,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and Path(MODULES, "http_client.so").exists():
            # A packaged daemon may have been started: it would only hold port 5060, but stop it.
            subprocess.run(["sh", "-c", "service kamailio stop"], capture_output=True, timeout=30)
            return None
    return "apt-get could not install kamailio and kamailio-utils-modules"


def cfg_string(text: str) -> str:
    """A double-quoted Kamailio cfg string literal (CR/LF written as escapes)."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
    )
    return f'"{escaped}"'


@dataclass
class Case:
    """One script call; `args` are sipcurl's request fields, written as literals for Kamailio."""

    name: str
    op: str  # an http_client function, or "curlerror" ($curlerror(N) with N = args["n"])
    args: dict[str, Any]
    pv: dict[str, str] = field(default_factory=dict)  # "$var(x)" / "$avp(x)" -> value, set first
    compare_request: bool = True  # what the HTTP server received
    # Why this case may not match: the test then asserts sipcurl's behaviour (xfail strict).
    xfail: str | None = None
    known_difference: str | None = None  # a documented difference, normalised before comparing
    # A documented difference where copying Kamailio would be wrong: sipcurl must give this rc
    # and send nothing; Kamailio's outcome is only reported.
    on_purpose: int | None = None
    # Where Kamailio opens more TCP connections on purpose-not-copied grounds (a leaked
    # handle): the number sipcurl must open instead.
    our_accepts: int | None = None

    def kamailio_lines(self) -> list[str]:
        """The branch body: set the pvs, make the call, keep `$rc` and the redirect."""
        q = cfg_string
        a = self.args
        lines = [f"{name} = {q(value)};" for name, value in self.pv.items()]
        if self.op == "curlerror":
            return [*lines, f"$var(res) = $curlerror({int(a['n'])});", "$var(rc) = 0;"]
        if self.op in ("http_connect", "http_connect_raw") and ("data" in a or "content_type" in a):
            call = (
                f"{self.op}({q(a['connection'])}, {q(a['url'])}, {q(a.get('content_type', ''))},"
                f' {q(a.get("data", ""))}, "$var(res)")'
            )
        elif self.op in ("http_connect", "http_connect_raw"):
            call = f'http_connect({q(a["connection"])}, {q(a["url"])}, "$var(res)")'
        elif self.op == "http_get_redirect":
            call = f'http_get_redirect({q(a["connection"])}, "$var(res)")'
        elif self.op == "http_client_query" and "hdrs" in a:
            call = f'http_client_query({q(a["url"])}, {q(a.get("post", ""))}, {q(a["hdrs"])}, "$var(res)")'
        elif self.op == "http_client_query" and "post" in a:
            call = f'http_client_query({q(a["url"])}, {q(a["post"])}, "$var(res)")'
        elif self.op == "http_client_query":
            call = f'http_client_query({q(a["url"])}, "$var(res)")'
        elif self.op == "http_client_get":
            call = f'http_client_get({q(a["url"])}, {q(a.get("body", ""))}, {q(a.get("hdrs", ""))}, "$var(res)")'
        else:
            raise ValueError(f"no Kamailio 5.6 script function for {self.op}")
        lines += [f"{call};", "$var(rc) = $rc;"]
        if self.op.startswith("http_connect"):
            lines.append(f'http_get_redirect({q(a["connection"])}, "$var(redir)");')
        return lines

    def sipcurl_request(self) -> dict[str, Any]:
        return {"op": self.op, **self.args, "pv": dict(self.pv)}


@dataclass
class Outcome:
    rc: int
    result: bytes
    curlerror: str
    redirect: str | None
    counters: dict[str, int]


def write_cfg(
    path: Path, port: int, ctl: Path, modparams: list[tuple[str, Any]], cases: list[Case]
) -> None:
    """The kamailio.cfg for one settings group (also what sipcurl's importer reads)."""
    lines = [
        "#!KAMAILIO",
        "debug=1", "log_stderror=yes", "children=1", "auto_aliases=no",
        f"pv_buffer_size={PV_BUFFER_SIZE}",
        f"listen=udp:127.0.0.1:{port}", f'mpath="{MODULES}/"',
    ]  # fmt: skip
    for module in ("sl", "pv", "textops", "xlog", "kex", "ctl", "http_client"):
        lines.append(f'loadmodule "{module}.so"')
    lines.append(f'modparam("ctl", "binrpc", "unix:{ctl}")')
    for name, value in modparams:
        literal = str(value) if isinstance(value, int) else cfg_string(value)
        lines.append(f'modparam("http_client", "{name}", {literal})')
    lines.append("request_route {")
    lines.append('    $var(res) = ""; $var(redir) = ""; $var(rc) = 0;')
    for i, case in enumerate(cases):
        lines.append(f'    if ($hdr(X-Case) == "{i}") {{')
        lines += [f"        {line}" for line in case.kamailio_lines()]
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
    path.write_text("\n".join(lines) + "\n")


def config_accepted(modparams: list[tuple[str, Any]]) -> tuple[bool, str]:
    """Whether Kamailio accepts these modparams (`kamailio -c`: httpcon is parsed then)."""
    with tempfile.TemporaryDirectory(prefix="sipcurl-kamailio-check-") as tmp:
        cfg = Path(tmp, "kamailio.cfg")
        write_cfg(cfg, 5060, Path(tmp, "ctl.sock"), modparams, [])
        done = subprocess.run(
            [binary("kamailio"), "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30
        )
        return done.returncode == 0, (done.stdout + done.stderr)[-2000:]


class Kamailio:
    """One Kamailio (one SIP child) on a free UDP port, started in the foreground and
    stopped by its pid."""

    def __init__(self, modparams: list[tuple[str, Any]], cases: list[Case]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sipcurl-kamailio-"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.ctl = self.dir / "ctl.sock"
        self.cfg = self.dir / "kamailio.cfg"
        self.cases = cases
        write_cfg(self.cfg, self.port, self.ctl, modparams, cases)
        self.log_path = self.dir / "kamailio.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary("kamailio"), "-f", str(self.cfg), "-DD", "-E", "-w", str(self.dir), "-Y", str(self.dir)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited: {self.output()}")
            if self.ctl.exists() and self.counters():
                return
            time.sleep(0.05)
        raise RuntimeError(f"kamailio did not start: {self.output()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        """The tail of Kamailio's log, for failure messages."""
        if self.log.closed:
            return "(kamailio stopped; its folder is removed)"
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def rpc(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary("kamcmd"), "-s", f"unix:{self.ctl}", *command],
            capture_output=True,
            text=True,
            timeout=10,
        )

    def counters(self) -> dict[str, int]:
        values = {}
        for line in self.rpc("stats.get_statistics", "httpclient:").stdout.splitlines():
            name, _, value = line.partition("=")
            if value.strip().lstrip("-").isdigit():
                values[name.strip()] = int(value)
        return values

    def run(self, index: int, timeout_s: float = 15.0) -> Outcome:
        """Send case `index` as a SIP OPTIONS and read its outcome from the 200 reply."""
        case = self.cases[index]
        before = self.counters()
        call_id = f"case-{index}-{time.monotonic_ns()}"
        msg = (
            f"OPTIONS sip:fidelity@127.0.0.1:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sock.getsockname()[1]};branch=z9hG4bK{time.monotonic_ns()}\r\n"
            f"From: <sip:h@127.0.0.1>;tag=1\r\nTo: <sip:k@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 OPTIONS\r\nX-Case: {index}\r\nContent-Length: 0\r\n\r\n"
        )
        self.sock.sendto(msg.encode(), ("127.0.0.1", self.port))
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no SIP reply for {case.name}: {self.output()}")
            self.sock.settimeout(left)
            try:
                reply = self.sock.recv(65535).decode("latin-1")
            except TimeoutError:
                raise TimeoutError(f"no SIP reply for {case.name}: {self.output()}") from None
            if call_id in reply:
                break
        headers: dict[str, str] = {}
        for line in reply.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())  # the first one wins
        after = self.counters()
        redirect = headers.get("x-redirect")
        return Outcome(
            rc=int(headers["x-rc"]),
            result=base64.b64decode(headers.get("x-result", "")),
            curlerror=headers.get("x-curlerror", ""),
            redirect=base64.b64decode(redirect).decode("latin-1") if redirect else None,
            counters={
                k: after.get(k, 0) - before.get(k, 0)
                for k in ("httpclient:connok", "httpclient:connfail")
            },
        )

    def stop(self) -> None:
        """SIGTERM to our Kamailio's pid (its children share its process group), then KILL."""
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        try:  # children of the pid we started, in the session we created for it
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
