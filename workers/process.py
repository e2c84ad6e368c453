"""A worker process's entry point, run in the child right after the fork.

Everything with state (ZeroMQ context, curl handles) is built here, never inherited.
SIGTERM asks for a graceful stop (finish in-flight work); SIGINT is left to the dispatcher,
which gets it too when a terminal's Ctrl-C reaches the whole process group.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from dispatcher.config import Settings


def main(rank: int, settings: Settings, endpoint: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # libcurl with NOSIGNAL leaves SIGPIPE to us
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)

    from workers.worker import Worker

    worker = Worker(settings, rank, endpoint, wakeup_fd=wake_r)

    def on_term(_signum: int, _frame: Any) -> None:
        worker.quitting = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        worker.run()
    except Exception:
        logging.getLogger("sipcurl.worker").exception("worker %d crashed", rank)
        sys.exit(70)
    finally:
        worker.close()
