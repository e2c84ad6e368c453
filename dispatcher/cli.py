"""`sipcurl` command line: the one place that wires the packages together.

Only this module imports `workers` (the dispatcher forks them; see STYLE's dependency rule).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from dispatcher.config import SIPCURL_VERSION
from dispatcher.errors import ConfigError

DEFAULT_CONFIG = os.path.join("conf", "sipcurl.ini")


def default_config_path(given: str | None) -> str | None:
    """`-c FILE`, else conf/sipcurl.ini when present, else the embedded defaults."""
    if given:
        return given
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="main INI file (default conf/sipcurl.ini if present)")
    p.add_argument("--workers", type=int, help="number of workers (overrides [dispatcher])")
    p.add_argument("--kamailio-cfg", help="take http_client/http_async_client modparams from it")


def run_serve(args: argparse.Namespace) -> int:
    from dispatcher.service import Dispatcher, StartupError
    from dispatcher.settings_loader import load_settings
    from workers.process import main as worker_main

    try:
        settings = load_settings(
            default_config_path(args.config), kamailio_cfg=args.kamailio_cfg, workers=args.workers
        )
    except ConfigError as err:
        print(f"sipcurl: configuration error: {err}", file=sys.stderr)
        return 2
    service = Dispatcher(settings, worker_main)
    try:
        service.start()
    except (StartupError, OSError) as err:
        print(f"sipcurl: cannot start: {err}", file=sys.stderr)
        service.supervisor.stop(timeout_s=1.0)
        return 1
    try:
        return service.run()
    finally:
        service.close()


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connect", required=True, help="the dispatcher's worker_endpoint")
    p.add_argument("-c", "--config", help="this worker's own settings file")


def run_worker(args: argparse.Namespace) -> int:
    from dispatcher.settings_loader import load_settings
    from workers.process import main as worker_main

    try:
        settings = load_settings(default_config_path(args.config))
    except ConfigError as err:
        print(f"sipcurl: configuration error: {err}", file=sys.stderr)
        return 2
    worker_main(0, settings, args.connect)
    return 0


def _commands() -> dict[str, tuple[str, Callable, Callable]]:
    """name -> (help, add_arguments, run); modules are imported only for the command used."""

    def lazy(module: str, add: str, run: str) -> tuple[Callable, Callable]:
        def add_fn(p: argparse.ArgumentParser) -> None:
            getattr(__import__(module, fromlist=[add]), add)(p)

        def run_fn(a: argparse.Namespace) -> int:
            return int(getattr(__import__(module, fromlist=[run]), run)(a))

        return add_fn, run_fn

    return {
        "serve": ("run the dispatcher and its workers", add_serve_arguments, run_serve),
        "call": (
            "send one request, print the reply as JSON",
            *lazy("dispatcher.client_commands", "add_call_arguments", "run_call"),
        ),
        "rpc": (
            "run an RPC command",
            *lazy("dispatcher.client_commands", "add_rpc_arguments", "run_rpc"),
        ),
        "events": (
            "print async completions as they arrive",
            *lazy("dispatcher.client_commands", "add_events_arguments", "run_events"),
        ),
        "worker": ("join a dispatcher as a remote worker", add_worker_arguments, run_worker),
        "backend": (
            "a local HTTP test server for load tests",
            *lazy("dispatcher.backend", "add_arguments", "run"),
        ),
        "load": (
            "load-test the running service",
            *lazy("dispatcher.loadtest", "add_arguments", "run"),
        ),
        "demo": (
            "backend + service + load on the embedded defaults",
            *lazy("dispatcher.demo", "add_arguments", "run"),
        ),
    }


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Only the selected command's arguments are built, so `sipcurl call` never imports
    matplotlib or curl just to parse its command line."""
    parser = argparse.ArgumentParser(
        prog="sipcurl", description="sipcurl: " + __doc__.splitlines()[0]
    )
    parser.add_argument("--version", action="version", version=f"sipcurl {SIPCURL_VERSION}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add, run) in _commands().items():
        p = sub.add_parser(name, help=help_text)
        if name == selected:
            add(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected).parse_args(argv)
    level = logging.WARNING - 10 * args.verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
