"""Whole ZeroMQ messages in and out, non-blocking, on the hot paths.

pyzmq's send_multipart/recv_multipart combine flag enums on every frame, which showed in
the dispatcher's and the workers' profiles; these take plain ints.
"""

from __future__ import annotations

from collections.abc import Sequence

import zmq

NOBLOCK = int(zmq.NOBLOCK)
MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
RCVMORE = int(zmq.RCVMORE)


def receive(sock: zmq.Socket) -> list[bytes] | None:
    """The next whole message if one is waiting, else None."""
    try:
        frames = [sock.recv(NOBLOCK)]
    except zmq.Again:
        return None
    while sock.get(RCVMORE):
        frames.append(sock.recv(NOBLOCK))
    return frames


def send(sock: zmq.Socket, frames: Sequence[bytes]) -> None:
    """Raises zmq.ZMQError (zmq.Again at the high-water mark) as send_multipart does."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        sock.send(frame, MORE if i < last else NOBLOCK)
