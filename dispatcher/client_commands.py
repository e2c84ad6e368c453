"""`sipcurl call`, `sipcurl rpc` and `sipcurl events`: the service from a shell.

Arguments are `key=value` (text), `key:=json` (typed: numbers, lists, maps) and
`pv.NAME=value` (an entry of the request's pseudo-variable map). Bytes print as UTF-8
text when they decode, else as {"$base64": ...}.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from typing import Any

from dispatcher.client import DEFAULT_EVENTS, DEFAULT_FRONTEND, Client, Subscriber


def parse_fields(tokens: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for token in tokens:
        if ":=" in token and token.index(":=") + 1 == token.index("="):
            key, raw = token.split(":=", 1)
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ValueError(f"{key}: not JSON ({err.msg})") from None
        elif "=" in token:
            key, value = token.split("=", 1)
        else:
            raise ValueError(f"expected key=value, key:=json or pv.NAME=value, got {token!r}")
        if key.startswith("pv."):
            fields.setdefault("pv", {})[key[3:]] = value
        else:
            fields[key] = value
    return fields


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def _endpoints(args: argparse.Namespace) -> tuple[str, str]:
    frontend, events = DEFAULT_FRONTEND, DEFAULT_EVENTS
    if getattr(args, "config", None):
        from dispatcher.settings_loader import load_settings

        conf = load_settings(args.config).dispatcher
        frontend, events = conf.frontend, conf.events
    return args.frontend or frontend, getattr(args, "events", None) or events


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="take the endpoints from this settings file")
    p.add_argument("--frontend", help=f"frontend endpoint (default {DEFAULT_FRONTEND})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")


def add_call_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("op", help="operation, e.g. http_connect")
    p.add_argument("fields", nargs="*", help="key=value, key:=json, pv.NAME=value")


def _print(obj: Any) -> None:
    print(json.dumps(to_json(obj), indent=2, sort_keys=True), flush=True)


def run_call(args: argparse.Namespace) -> int:
    try:
        fields = parse_fields(args.fields)
    except ValueError as err:
        print(f"sipcurl call: {err}", file=sys.stderr)
        return 2
    frontend, _ = _endpoints(args)
    with Client(frontend, timeout_s=args.timeout) as client:
        try:
            reply = client.request({"op": args.op, **fields})
            _print(reply)
            if reply.get("suspended"):
                _print(client.wait_resume(reply["txn"], timeout_s=args.timeout))
        except TimeoutError as err:
            print(
                f"sipcurl call: {err} within {args.timeout:g}s (is the service running at {frontend}?)",
                file=sys.stderr,
            )
            return 2
    return 1 if "error" in reply else 0


def add_rpc_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("method", help="e.g. httpclient.listcon, stats.get_statistics, core.workers")
    p.add_argument("params", nargs="*", help="parameters (JSON values or text)")


def run_rpc(args: argparse.Namespace) -> int:
    params: list[Any] = []
    for raw in args.params:
        try:
            params.append(json.loads(raw))
        except json.JSONDecodeError:
            params.append(raw)
    frontend, _ = _endpoints(args)
    with Client(frontend, timeout_s=args.timeout) as client:
        try:
            reply = client.request({"op": "rpc", "method": args.method, "params": params})
        except TimeoutError as err:
            print(
                f"sipcurl rpc: {err} within {args.timeout:g}s (is the service running at {frontend}?)",
                file=sys.stderr,
            )
            return 2
    if "error" in reply or "fault" in reply:
        _print(reply.get("error") or reply.get("fault"))
        return 1
    _print(reply.get("result"))
    return 0


def add_events_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="take the endpoints from this settings file")
    p.add_argument("--events", help=f"events endpoint (default {DEFAULT_EVENTS})")
    p.add_argument("--frontend", help=argparse.SUPPRESS)
    p.add_argument("routes", nargs="*", help="routes (topics) to print; all when none")
    p.add_argument("--count", type=int, help="stop after this many completions")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")


def run_events(args: argparse.Namespace) -> int:
    _, events = _endpoints(args)
    sub = Subscriber(events, args.routes)
    seen = 0
    end = time.monotonic() + args.timeout if args.timeout else None
    try:
        while (args.count is None or seen < args.count) and (end is None or time.monotonic() < end):
            wait = 1.0 if end is None else max(0.0, min(1.0, end - time.monotonic()))
            for route, completion in sub.recv(wait):
                print(
                    json.dumps({"route": route, **to_json(completion)}, sort_keys=True), flush=True
                )
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    if sub.gaps():
        print(f"sipcurl events: {sub.gaps()} completions missed (seq gaps)", file=sys.stderr)
    return 0
