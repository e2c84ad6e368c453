"""`sipcurl call`, `sipcurl rpc` and `sipcurl events`: the service from a shell.

Arguments are `key=value` (text), `key:=json` (typed: numbers, lists, maps) and
`pv.NAME=value` (an entry of the request's pseudo-variable map). Bytes print as UTF-8
text when they decode, else as {"$base64": ...}.

Exit status: 0 for a reply, 1 for an `error` reply, 2 for a timeout or bad arguments,
as a script running these commands needs to tell the three apart.

Endpoints are SPEC's defaults unless `-c FILE` (its [dispatcher] section) or explicit
`--frontend`/`--events` say otherwise. When that file sets `curve_secret_key`, or
`--server-key` gives the service's public key, the command talks CurveZMQ, with the
client secret from $SIPCURL_CLIENT_SECRET or else a fresh key pair.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils import z85

from dispatcher.client import DEFAULT_EVENTS, DEFAULT_FRONTEND, Client, CurveKeys, Subscriber
from dispatcher.errors import ConfigError

CLIENT_SECRET_ENV = "SIPCURL_CLIENT_SECRET"

EXIT_OK, EXIT_ERROR_REPLY, EXIT_FAILED = 0, 1, 2


def parse_fields(tokens: list[str]) -> dict[str, Any]:
    """`key=value`, `key:=json`, `pv.NAME=value` -> a request's fields; ValueError names the
    token that could not be read."""
    fields: dict[str, Any] = {}
    for token in tokens:
        eq = token.find("=")
        if eq < 0:
            raise ValueError(f"expected key=value, key:=json or pv.NAME=value, got {token!r}")
        if eq > 0 and token[eq - 1] == ":":
            key, raw = token[: eq - 1], token[eq + 1 :]
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ValueError(f"{token!r}: the value after := is not JSON ({err.msg})") from None
        else:
            key, value = token[:eq], token[eq + 1 :]
        if not key:
            raise ValueError(f"{token!r}: the name before = is empty")
        if key.startswith("pv."):
            name = key[3:]
            if not name:
                raise ValueError(f"{token!r}: pv. needs a pseudo-variable name, e.g. pv.$ru=...")
            pv = fields.setdefault("pv", {})
            if not isinstance(pv, dict):
                raise ValueError(f"{token!r}: pv was already given as a non-map value")
            pv[name] = value
        elif key == "pv" and isinstance(fields.get("pv"), dict) and isinstance(value, dict):
            fields["pv"].update(value)
        else:
            fields[key] = value
    return fields


def to_json(value: Any) -> Any:
    """A msgpack value as JSON can carry it: bytes as text, or base64 when not UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {_json_key(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def _json_key(key: Any) -> str:
    if isinstance(key, bytes):
        return key.decode("utf-8", "backslashreplace")
    return key if isinstance(key, str) else json.dumps(to_json(key))


def render(obj: Any, *, pretty: bool = True) -> str:
    if pretty:
        return json.dumps(to_json(obj), indent=2, sort_keys=True, ensure_ascii=False)
    return json.dumps(to_json(obj), sort_keys=True, ensure_ascii=False)


def _print(obj: Any, *, pretty: bool = True) -> None:
    print(render(obj, pretty=pretty), flush=True)


def _fail(command: str, message: str) -> int:
    print(f"sipcurl {command}: {message}", file=sys.stderr)
    return EXIT_FAILED


@dataclass(frozen=True)
class Target:
    frontend: str
    events: str
    curve: CurveKeys | None


def resolve_target(args: argparse.Namespace) -> Target:
    """Endpoints and keys from the defaults, `-c FILE`, then explicit options.
    Raises ConfigError or ValueError with a message fit for the user."""
    frontend, events, server_public = DEFAULT_FRONTEND, DEFAULT_EVENTS, ""
    if getattr(args, "config", None):
        from dispatcher.settings_loader import load_settings

        conf = load_settings(args.config).dispatcher
        frontend, events = conf.frontend, conf.events
        if conf.curve_secret_key:
            server_public = _curve_public(conf.curve_secret_key, "curve_secret_key")
    given = getattr(args, "server_key", None)
    if given:
        _check_z85_key(given, "--server-key")
        server_public = given
    curve = None
    if server_public:
        secret = os.environ.get(CLIENT_SECRET_ENV) or None
        if secret is not None:
            _curve_public(secret, f"${CLIENT_SECRET_ENV}")
        curve = CurveKeys.for_server(server_public, secret)
    return Target(
        getattr(args, "frontend", None) or frontend, getattr(args, "events", None) or events, curve
    )


def _curve_public(secret: str, what: str) -> str:
    try:
        return zmq.curve_public(secret.encode()).decode()
    except (zmq.ZMQError, ValueError) as err:
        raise ValueError(f"{what} is not a z85 CurveZMQ secret key ({err})") from None


def _check_z85_key(key: str, what: str) -> None:
    try:
        ok = len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, UnicodeEncodeError):
        ok = False
    if not ok:
        raise ValueError(f"{what} is not a z85 CurveZMQ key (40 characters)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="take the endpoints (and CurveZMQ key) from this file")
    p.add_argument("--frontend", help=f"frontend endpoint (default {DEFAULT_FRONTEND})")
    p.add_argument("--server-key", help="the service's CurveZMQ public key (z85)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait (default 10)")


def add_call_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("op", help="operation, e.g. http_connect")
    p.add_argument("fields", nargs="*", help="key=value, key:=json, pv.NAME=value")


def run_call(args: argparse.Namespace) -> int:
    """Print the reply; for a suspended async query also wait for and print its resume."""
    try:
        fields = parse_fields(args.fields)
        target = resolve_target(args)
        client = Client(target.frontend, timeout_s=args.timeout, curve=target.curve)
    except (ValueError, ConfigError) as err:
        return _fail("call", str(err))
    with client:
        try:
            reply = client.request({"op": args.op, **fields})
            _print(reply)
            if reply.get("suspended") and "txn" in reply:
                _print(client.wait_resume(reply["txn"], timeout_s=args.timeout))
        except TimeoutError as err:
            return _fail(
                "call",
                f"{err} within {args.timeout:g}s (is the service running at {target.frontend}?)",
            )
    return EXIT_ERROR_REPLY if "error" in reply else EXIT_OK


def add_rpc_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("method", help="e.g. httpclient.listcon, stats.get_statistics, core.workers")
    p.add_argument("params", nargs="*", help="parameters (JSON values, else text)")


def parse_params(tokens: list[str]) -> list[Any]:
    params: list[Any] = []
    for raw in tokens:
        try:
            params.append(json.loads(raw))
        except json.JSONDecodeError:
            params.append(raw)
    return params


def run_rpc(args: argparse.Namespace) -> int:
    try:
        target = resolve_target(args)
        client = Client(target.frontend, timeout_s=args.timeout, curve=target.curve)
    except (ValueError, ConfigError) as err:
        return _fail("rpc", str(err))
    request = {"op": "rpc", "method": args.method, "params": parse_params(args.params)}
    with client:
        try:
            reply = client.request(request)
        except TimeoutError as err:
            return _fail(
                "rpc",
                f"{err} within {args.timeout:g}s (is the service running at {target.frontend}?)",
            )
    if (
        "error" in reply or "fault" in reply
    ):  # fault: a Kamailio RPC fault, e.g. 500 No Connection Definitions
        _print(reply.get("error") or reply["fault"])
        return EXIT_ERROR_REPLY
    _print(reply.get("result"))
    return EXIT_OK


def add_events_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="take the endpoint (and CurveZMQ key) from this file")
    p.add_argument("--events", help=f"events endpoint (default {DEFAULT_EVENTS})")
    p.add_argument("--server-key", help="the service's CurveZMQ public key (z85)")
    p.add_argument("routes", nargs="*", help="routes (topics) to print; all when none")
    p.add_argument("--count", type=int, help="stop after this many completions")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")


def run_events(args: argparse.Namespace) -> int:
    """One JSON line per completion, flushed as it arrives. With --count, a timeout that
    comes first exits 2, so a script can tell "got them" from "gave up"."""
    try:
        target = resolve_target(args)
        sub = Subscriber(target.events, args.routes, curve=target.curve)
    except (ValueError, ConfigError) as err:
        return _fail("events", str(err))
    seen = 0
    end = time.monotonic() + args.timeout if args.timeout is not None else None
    try:
        while args.count is None or seen < args.count:
            left = 1.0 if end is None else end - time.monotonic()
            if left <= 0:
                break
            for route, completion in sub.recv(min(1.0, left)):
                _print({"route": route, **completion}, pretty=False)
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    if sub.gaps():
        print(f"sipcurl events: {sub.gaps()} completions missed (seq gaps)", file=sys.stderr)
    if args.count is not None and seen < args.count and end is not None:
        return _fail("events", f"{seen} of {args.count} completions within {args.timeout:g}s")
    return EXIT_OK
