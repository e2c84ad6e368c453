"""Ports for tests that need one nobody listens on."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the kernel just handed out and released (port 1 is not safe: root may use it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused_url() -> str:
    """A URL on a port nobody listens on: connecting to it is refused at once."""
    return f"http://127.0.0.1:{free_port()}/"


env_free_port = free_port  # the name older tests import
