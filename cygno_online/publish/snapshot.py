"""The snapshot service (ZeroMQ "clone" pattern, server side).

A ROUTER socket answers ``{"cmd": "snapshot"}`` (JSON) with the publisher's
:class:`~cygno_online.publish.state.MonitorState` as one ``snapshot`` message
(same framing as live messages; its ``seq`` is the last message it includes).
A viewer subscribes first, then asks for the snapshot, then applies the
buffered live messages with a higher ``seq``.

Requests may come from DEALER sockets (``[request]``) or REQ sockets
(``["", request]``); the reply mirrors the envelope. The socket belongs to the
publisher thread (ZeroMQ sockets are not thread-safe).

Bounded cost: a request only puts its peer on the *pending* list (at most
:data:`MAX_PENDING` peers, one entry per peer however often it asks). At most
once per ``min_interval_s`` one snapshot is prepared (state copied and
encoded once) and sent to every pending peer; the snapshot is prepared after
their requests arrived, so the clone pattern holds for each of them. A flood
of requests therefore costs one snapshot per interval, never one per
request; refused requests get a typed JSON error reply (see
:mod:`cygno_online.publish.guard`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cygno_online.logs import RateLimitedLog, log_key
from cygno_online.publish import guard
from cygno_online.publish.messages import encode
from cygno_online.publish.state import MonitorState

log = logging.getLogger(__name__)
_bad = RateLimitedLog(log, "snapshot")

#: peers waiting for the next prepared snapshot
MAX_PENDING = 256
#: at most one snapshot prepared per this many seconds
MIN_INTERVAL_S = 0.2


def parse_request(frames: list[bytes]) -> tuple[list[bytes], dict[str, Any] | None]:
    """``(reply_prefix, request)`` of a ROUTER message; request None if refused."""
    try:
        return guard.parse_request(frames)
    except guard.RequestError:
        return guard.split_envelope(frames)[0] if frames else [], None


def _snapshot_only(req: dict[str, Any]) -> None:
    if req.get("cmd") != "snapshot":
        raise guard.RequestError("unknown_command", 'expected {"cmd": "snapshot"}')


class SnapshotServer:
    def __init__(
        self,
        socket: Any,
        state: MonitorState,
        *,
        min_interval_s: float = MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        buckets: guard.PeerBuckets | None = None,
    ) -> None:
        self._log_id = log_key()
        self.socket = socket
        self.state = state
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.buckets = buckets or guard.PeerBuckets(clock=clock)
        self.stats = guard.RequestStats()
        #: replies sent
        self.served = 0
        #: snapshots prepared (one serves every peer pending at that time)
        self.prepared = 0
        self._pending: OrderedDict[bytes, list[bytes]] = OrderedDict()
        self._last_prepared = -1e18

    def handle(self, budget: int = guard.BUDGET_REQUESTS) -> int:
        """Take up to ``budget`` requests off the socket (non-blocking) and
        serve the pending peers if a snapshot is due."""
        import zmq

        n = 0
        while n < budget:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            n += 1
            self._request(frames)
        self.serve_pending()
        return n

    def _request(self, frames: list[bytes]) -> None:
        admitted = guard.admit(
            frames,
            buckets=self.buckets,
            stats=self.stats,
            log=_bad,
            what="snapshot",
            key=self._log_id,
            send_error=lambda prefix, reply: self._send([*prefix, json.dumps(reply).encode()]),
            check=_snapshot_only,
        )
        if admitted is None:
            return
        prefix, _ = admitted
        peer = prefix[0]  # the ROUTER identity
        if peer in self._pending:
            return  # already waiting: one reply per peer
        if len(self._pending) >= MAX_PENDING:
            self.stats.dropped["busy"] += 1
            _bad.warning(
                "snapshot: %d viewers waiting; request dropped",
                MAX_PENDING,
                key=f"{self._log_id}:busy",
            )
            return
        self._pending[peer] = prefix

    def serve_pending(self) -> int:
        """Prepare one snapshot for every waiting peer (at most once per
        ``min_interval_s``); returns the number of replies sent."""
        if not self._pending:
            return 0
        now = self.clock()
        if now - self._last_prepared < self.min_interval_s:
            return 0
        self._last_prepared = now
        frames = encode(self.state.to_message())
        self.prepared += 1
        pending, self._pending = self._pending, OrderedDict()
        sent = 0
        for prefix in pending.values():
            if self._send(prefix + frames):
                sent += 1
        self.served += sent
        return sent

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _send(self, frames: list) -> bool:
        import zmq

        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            self.stats.dropped["reply_not_read"] += 1
            _bad.warning(
                "snapshot reply dropped: viewer not reading", key=f"{self._log_id}:not_reading"
            )
            return False
