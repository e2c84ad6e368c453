"""The wire protocol: every frame layout, in one place.

Clients (SPEC §2)::

    client DEALER --> frontend ROUTER   [identity][payload]          (REQ: [identity][""][payload])
                      payload = msgpack map | msgpack array of maps
    client DEALER <-- frontend ROUTER   [identity][payload]          payload = map | array of maps
    subscriber SUB <-- events PUB       [route (utf-8)][msgpack completion map | array of them]

Dispatcher <-> worker (internal; worker DEALER -> dispatcher ROUTER at worker_endpoint)::

    worker -> dispatcher  [b"R"][hello map]                 READY: {"rank", "pid", "host"}
                          [b"H"][status map]                heartbeat
                          [b"P" head reply-map]             the one answer to a job (one frame;
                                                            head = ticket, transfer started,
                                                            six counters: see reply_frame)
                          [b"E" head completion-map]        an async completion (one frame; the
                                                            dispatcher adds seq)
                          [b"G"][gather id][status map]     answer to a gather (RPC fan-out)
    dispatcher -> worker  [b"W"][welcome map]               rank assignment: {"rank"}
                          [b"J" head request-map]           a job (one frame; head = ticket,
                                                            queued_ms, txn)
                          [b"C"][txn]                       abort an async transfer
                          [b"L"][connections]               reload the named connections
                          [b"G"][gather id]                 report status now
                          [b"H"]                            heartbeat
                          [b"Q"]                            quit after finishing in-flight work

The request map is forwarded to the worker as the client's own bytes: the dispatcher decodes
it to route and validate, but never re-encodes a body. Tickets are dispatcher-local ints.
Jobs, replies and completions are single frames with a fixed binary head: every frame of a
multipart message is a send of its own, and these three cross for every job.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack

from dispatcher.errors import WireError

# -- frame kinds (dispatcher <-> worker) --
READY = b"R"
HEARTBEAT = b"H"
REPLY = b"P"
COMPLETION = b"E"
GATHER = b"G"
WELCOME = b"W"
JOB = b"J"
CANCEL = b"C"
RELOAD = b"L"
QUIT = b"Q"

SYNC_OPS = frozenset(
    {
        "http_connect",
        "http_connect_raw",
        "http_get_redirect",
        "http_client_query",
        "http_client_get",
        "http_client_request",
        "http_get_content_type",
        "http_connection_exists",
    }
)
ASYNC_OPS = frozenset({"http_async_query"})
DISPATCHER_OPS = frozenset({"rpc", "t_cancel"})
ALL_OPS = SYNC_OPS | ASYNC_OPS | DISPATCHER_OPS

_STR = (str,)
_BIN = (bytes, str)
_INT = (int,)
_SCALAR = (str, bytes, int, float, bool, type(None))

# Field types per op; "required" fields must be present. Values are checked here, in the
# dispatcher, so a malformed request never reaches a worker.
_COMMON: dict[str, tuple[type, ...]] = {
    "id": _SCALAR,
    "op": _STR,
    "worker": _INT,
    "key": _STR,
    "pv": (dict,),
}
OP_FIELDS: dict[str, tuple[dict[str, tuple[type, ...]], frozenset[str]]] = {
    "http_connect": (
        {"connection": _STR, "url": _STR, "content_type": _STR, "data": _BIN},
        frozenset({"connection", "url"}),
    ),
    "http_connect_raw": (
        {"connection": _STR, "url": _STR, "content_type": _STR, "data": _BIN},
        frozenset({"connection", "url"}),
    ),
    "http_get_redirect": ({"connection": _STR}, frozenset({"connection"})),
    "http_client_query": ({"url": _STR, "post": _BIN, "hdrs": _STR}, frozenset({"url"})),
    "http_client_get": ({"url": _STR, "body": _BIN, "hdrs": _STR}, frozenset({"url"})),
    "http_client_request": (
        {"method": _STR, "url": _STR, "body": _BIN, "hdrs": _STR},
        frozenset({"method", "url"}),
    ),
    "http_get_content_type": ({"connection": _STR}, frozenset({"connection"})),
    "http_connection_exists": ({"connection": _STR}, frozenset({"connection"})),
    "http_async_query": (
        {
            "url": _STR,
            "route": _STR,
            "method": _STR,
            "headers": (list,),
            "body": _BIN,
            "timeout": _INT,
            "connection": _STR,
            "tls_client_cert": _STR,
            "tls_client_key": _STR,
            "tls_ca_path": _STR,
            "tls_verify_peer": _INT,
            "tls_verify_host": _INT,
            "authmethod": _INT,
            "username": _STR,
            "password": _STR,
            "follow_redirect": _INT,
            "keepalive": _INT,
            "ka_idle": _INT,
            "ka_interval": _INT,
            "xdata": _SCALAR + (list, dict),
            "mode": _STR,
        },
        frozenset({"url", "route"}),
    ),
    "rpc": ({"method": _STR, "params": (list,)}, frozenset({"method"})),
    "t_cancel": ({"txn": _STR}, frozenset({"txn"})),
}
# Each op's own fields with the common ones: one lookup per field on the hot path.
_FIELD_TYPES = {op: {**fields, **_COMMON} for op, (fields, _) in OP_FIELDS.items()}
ASYNC_MODES = ("event", "suspend")
# The keys of a completion's `http_time` (Kamailio's $http_time names), in milliseconds.
HTTP_TIME_FIELDS = (
    "total",
    "lookup",
    "connect",
    "appconnect",
    "pretransfer",
    "starttransfer",
    "redirect",
)

_packer = msgpack.Packer(use_bin_type=True)
_JOB_HEAD = struct.Struct("<QdH")  # ticket, queued_ms, length of txn
_REPLY_HEAD = struct.Struct("<QB6q")  # ticket, transfer started, counters
_COMPLETION_HEAD = struct.Struct("<6qH")  # counters, length of txn


def job_frame(ticket: int, queued_ms: float, txn: str | None, request: bytes) -> bytes:
    t = txn.encode() if txn else b""
    return JOB + _JOB_HEAD.pack(ticket, queued_ms, len(t)) + t + request


def parse_job(frame: bytes) -> tuple[int, float, str | None, bytes]:
    ticket, queued_ms, n = _JOB_HEAD.unpack_from(frame, 1)
    start = 1 + _JOB_HEAD.size
    txn = frame[start : start + n].decode() if n else None
    return ticket, queued_ms, txn, frame[start + n :]


def reply_frame(ticket: int, started: bool, counters: list[int], reply: bytes) -> bytes:
    return REPLY + _REPLY_HEAD.pack(ticket, started, *counters) + reply


def parse_reply(frame: bytes) -> tuple[int, bool, list[int], bytes]:
    ticket, started, *counters = _REPLY_HEAD.unpack_from(frame, 1)
    return ticket, bool(started), counters, frame[1 + _REPLY_HEAD.size :]


def completion_frame(txn: str, counters: list[int], completion: bytes) -> bytes:
    t = txn.encode()
    return COMPLETION + _COMPLETION_HEAD.pack(*counters, len(t)) + t + completion


def parse_completion(frame: bytes) -> tuple[str, list[int], bytes]:
    *counters, n = _COMPLETION_HEAD.unpack_from(frame, 1)
    start = 1 + _COMPLETION_HEAD.size
    return frame[start : start + n].decode(), counters, frame[start + n :]


def pack(obj: Any) -> bytes:
    return _packer.pack(obj)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def split_payload(payload: bytes) -> Iterator[tuple[Any, bytes]]:
    """Yield (decoded request, its own raw bytes) for a map frame or each map of an array frame.

    Raises WireError(bad_request) for bytes that are not msgpack. The raw slice lets the
    dispatcher forward a request without re-encoding it.
    """
    if not payload:
        raise WireError("bad_request", "empty frame")
    first = payload[0]
    is_array = 0x90 <= first <= 0x9F or first in (0xDC, 0xDD)
    try:
        if not is_array:
            obj = unpack(payload)
            yield obj, payload
            return
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(payload))
        unpacker.feed(payload)
        count = unpacker.read_array_header()
        start = unpacker.tell()
        items: list[tuple[Any, bytes]] = []
        for _ in range(count):
            obj = unpacker.unpack()
            end = unpacker.tell()
            items.append((obj, payload[start:end]))
            start = end
        if start != len(payload):
            raise WireError("bad_request", "trailing bytes after the msgpack array")
    except WireError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError("bad_request", f"frame is not valid msgpack: {exc}") from None
    yield from items


def validate_request(req: Any) -> dict[str, Any]:
    """Check a decoded request's shape; raise WireError naming what was wrong."""
    if not isinstance(req, dict):
        raise WireError("bad_request", f"a request must be a map, got {type(req).__name__}")
    op = req.get("op")
    if not isinstance(op, str):
        raise WireError("bad_request", "field 'op' is missing or not a string")
    spec = OP_FIELDS.get(op)
    if spec is None:
        raise WireError("unknown_op", f"unknown op {op!r}")
    _, required = spec
    field_types = _FIELD_TYPES[op]
    for name, value in req.items():
        types = field_types.get(name) if isinstance(name, str) else None
        if types is None:
            raise WireError("bad_request", f"unknown field {name!r} for op {op!r}")
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise WireError(
                "bad_request",
                f"field {name!r} must be {'/'.join(t.__name__ for t in types)}, "
                f"got {type(value).__name__}",
            )
    missing = required.difference(req)
    if missing:
        raise WireError("bad_request", f"op {op!r} needs field(s) {', '.join(sorted(missing))}")
    pv = req.get("pv")
    if pv is not None:
        for pv_name, pv_value in pv.items():
            if not isinstance(pv_name, str) or not isinstance(
                pv_value, (str, bytes, int, type(None))
            ):
                raise WireError("bad_request", f"pv entry {pv_name!r} must map a name to a scalar")
    if op == "http_async_query":
        mode = req.get("mode", "event")
        if mode not in ASYNC_MODES:
            raise WireError("bad_request", f"mode must be 'event' or 'suspend', got {mode!r}")
        for header in req.get("headers", ()):
            if not isinstance(header, str):
                raise WireError("bad_request", "headers must be a list of 'Name: value' strings")
    return req


def request_id(req: Any) -> Any:
    """The id to echo, or nil when the request could not be read as a map."""
    if isinstance(req, dict):
        rid = req.get("id")
        if isinstance(rid, _SCALAR):
            return rid
    return None


def error_reply(rid: Any, code: str, message: str) -> bytes:
    return pack({"id": rid, "error": {"code": code, "message": message}})


def array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def join_array(encoded: list[bytes]) -> bytes:
    """Pack already-encoded maps into one array frame without decoding them."""
    if len(encoded) == 1:
        return encoded[0]
    return array_header(len(encoded)) + b"".join(encoded)


def append_fields(encoded_map: bytes, extra: dict[str, Any]) -> bytes:
    """Add fields to an encoded map without decoding it (the dispatcher stamps `seq`/`type`).

    The caller guarantees the keys are not already present.
    """
    first = encoded_map[0]
    if 0x80 <= first <= 0x8F:
        count, body = first & 0x0F, encoded_map[1:]
    elif first == 0xDE:
        count, body = struct.unpack(">H", encoded_map[1:3])[0], encoded_map[3:]
    elif first == 0xDF:
        count, body = struct.unpack(">I", encoded_map[1:5])[0], encoded_map[5:]
    else:
        raise ValueError("not an encoded msgpack map")
    count += len(extra)
    if count < 16:
        header = bytes((0x80 | count,))
    elif count < 0x10000:
        header = b"\xde" + struct.pack(">H", count)
    else:
        header = b"\xdf" + struct.pack(">I", count)
    return header + body + b"".join(pack(k) + pack(v) for k, v in extra.items())


def iter_replies(payload: bytes) -> Iterable[dict[str, Any]]:
    """Client side: a reply frame is one map or an array of maps."""
    obj = unpack(payload)
    if isinstance(obj, list):
        return obj
    return (obj,)
