"""Limits on what a client may send to the daemon's request sockets.

The snapshot and control sockets are reachable by any local user on the
default loopback binding, so every request is bounded before it costs
anything:

* size: at most :data:`MAX_REQUEST_BYTES` per request (libzmq's
  ``ZMQ_MAXMSGSIZE`` disconnects a peer sending more than
  :data:`HARD_MAX_BYTES`, so an oversized message is never even buffered);
* shape: one JSON object (after the ROUTER envelope), at most
  :data:`MAX_FRAMES` frames, nesting at most :data:`MAX_DEPTH` levels;
* rate: a token bucket per peer (:class:`PeerBuckets`); what exceeds it is
  dropped without a reply and counted;
* cost: the publisher serves at most :data:`BUDGET_REQUESTS` requests per
  loop iteration (the rest wait in libzmq's bounded queue), so live
  publishing never waits for a flood.

Every refusal is a typed error reply (``{"ok": false, "error": "...",
"code": "<reason>"}``) or a counted drop, and is logged once then summarised
(:class:`~cygno_online.logs.RateLimitedLog`).
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

#: a request is a small JSON object ({"cmd": "ack", "alarm": ..., "user": ...})
MAX_REQUEST_BYTES = 4096
#: libzmq drops the connection of a peer sending a bigger frame
HARD_MAX_BYTES = 65536
#: identity + empty delimiter (REQ) + request
MAX_FRAMES = 3
MAX_DEPTH = 8
#: requests served per publisher-loop iteration, per socket
BUDGET_REQUESTS = 32
#: per peer: sustained requests per second and burst
PEER_RATE_HZ = 20.0
PEER_BURST = 40.0
#: peers remembered by the rate limiter (least recently seen forgotten)
MAX_PEERS = 1024
#: libzmq receive queue per socket (messages); beyond it a peer waits
RCVHWM = 1000
#: replies queued per peer that does not read them; beyond it they are dropped
SNDHWM = 16


class RequestError(ValueError):
    """A request refused before it reached a handler; ``code`` is the counter key."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def reply(self) -> dict[str, Any]:
        return {"ok": False, "error": str(self), "code": self.code}


def split_envelope(frames: list[Any]) -> tuple[list[bytes], list[Any]]:
    """``(reply_prefix, rest)`` of a ROUTER message from a DEALER
    (``[id, request]``) or a REQ (``[id, b"", request]``) peer."""
    prefix = [bytes(frames[0])]
    rest = list(frames[1:])
    if rest and len(rest[0]) == 0:
        prefix.append(b"")
        rest = rest[1:]
    return prefix, rest


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists/dicts deeper than ``limit`` (iterative:
    no recursion whatever the input)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            if d > limit:
                return True
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            if d > limit:
                return True
            stack.extend((x, d + 1) for x in v)
    return False


def parse_request(frames: list[Any]) -> tuple[list[bytes], dict[str, Any]]:
    """``(reply_prefix, request)``; raises :class:`RequestError`."""
    if not frames:
        raise RequestError("malformed", "empty message")
    if len(frames) > MAX_FRAMES:
        raise RequestError("malformed", f"request must be one frame, got {len(frames) - 1}")
    prefix, rest = split_envelope(frames)
    if len(rest) != 1:
        raise RequestError("malformed", f"request must be one frame, got {len(rest)}")
    raw = rest[0]
    size = len(raw)
    if size > MAX_REQUEST_BYTES:
        raise RequestError("too_large", f"request of {size} bytes (at most {MAX_REQUEST_BYTES})")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError("not_json", f"request is not UTF-8 (byte {exc.start})") from None
    try:
        req = json.loads(text)
    except RecursionError:
        raise RequestError("too_deep", f"request nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise RequestError("not_json", f"request is not JSON: {exc}") from None
    if not isinstance(req, dict):
        raise RequestError("malformed", "request must be a JSON object")
    if depth_exceeds(req, MAX_DEPTH):
        raise RequestError("too_deep", f"request nests deeper than {MAX_DEPTH} levels")
    return prefix, req


class PeerBuckets:
    """A token bucket per peer identity (bounded number of peers)."""

    def __init__(
        self,
        rate_hz: float = PEER_RATE_HZ,
        burst: float = PEER_BURST,
        max_peers: int = MAX_PEERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_hz = rate_hz
        self.burst = burst
        self.max_peers = max_peers
        self.clock = clock
        self._peers: OrderedDict[bytes, list[float]] = OrderedDict()

    def allow(self, peer: bytes) -> bool:
        now = self.clock()
        b = self._peers.pop(peer, None)
        if b is None:
            b = [self.burst, now]
            if len(self._peers) >= self.max_peers:
                self._peers.popitem(last=False)
        tokens = min(self.burst, b[0] + (now - b[1]) * self.rate_hz)
        ok = tokens >= 1.0
        b[0], b[1] = (tokens - 1.0 if ok else tokens), now
        self._peers[peer] = b
        return ok


class RequestStats:
    """Counters of one request socket (published in the health report)."""

    def __init__(self) -> None:
        self.requests = 0
        #: typed error replies by code (malformed, not_json, too_large, ...)
        self.rejected: Counter[str] = Counter()
        #: requests or replies dropped without answer, by reason
        self.dropped: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rejected": dict(self.rejected),
            "dropped": dict(self.dropped),
        }


def admit(
    frames: list[Any],
    *,
    buckets: PeerBuckets,
    stats: RequestStats,
    log: Any,
    what: str,
    key: str,
    send_error: Callable[[list[bytes], dict[str, Any]], Any],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[bytes], dict[str, Any]] | None:
    """The front of every request socket: count the request, apply the
    peer's rate limit, parse it (and ``check`` it, which may raise
    :class:`RequestError`). Returns ``(envelope, request)``, or None for a
    refused one: a flooding peer is dropped and counted, a bad request is
    counted and answered with its typed error through ``send_error``; both are
    logged through the rate-limited ``log`` (``what`` names the socket,
    ``key`` the server instance)."""
    stats.requests += 1
    if not buckets.allow(bytes(frames[0]) if frames else b""):
        stats.dropped["rate_limited"] += 1
        log.warning(
            "%s: a peer exceeds %.0f requests/s; its requests are dropped",
            what,
            PEER_RATE_HZ,
            key=f"{key}:rate",
        )
        return None
    try:
        prefix, req = parse_request(frames)
        if check is not None:
            check(req)
    except RequestError as exc:
        stats.rejected[exc.code] += 1
        log.warning("%s: request refused: %s", what, exc, key=f"{key}:{exc.code}")
        if frames:
            send_error(split_envelope(frames)[0], exc.reply())
        return None
    return prefix, req


def use_tcp_keepalive(sock: Any) -> None:
    """Find dead peers with TCP keepalive, never with ZMTP heartbeats.

    libzmq 4.3 aborts the whole process (assertion `!_io_error`,
    zeromq/libzmq#3937, #4364) when a heartbeat timeout hits a connection
    whose input is stopped by a full queue, which any client flooding a
    socket without reading (or any slow viewer) can provoke. The daemon's
    own `hb` messages tell a viewer "disconnected"; keepalive only reaps
    dead TCP connections. Every socket of the daemon, the relay and the
    viewer goes through here.
    """
    import zmq

    sock.setsockopt(zmq.HEARTBEAT_IVL, 0)
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 10)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 5)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)


def configure_socket(sock: Any) -> None:
    """Socket options of a request (ROUTER) socket: bounded queues and
    message size."""
    import zmq

    sock.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_BYTES)
    sock.rcvhwm = RCVHWM
    sock.sndhwm = SNDHWM
