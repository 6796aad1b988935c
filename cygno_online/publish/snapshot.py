"""The snapshot service (ZeroMQ "clone" pattern, server side).

A ROUTER socket answers ``{"cmd": "snapshot"}`` (JSON) with the publisher's
:class:`~cygno_online.publish.state.MonitorState` as one ``snapshot`` message
(same framing as live messages; its ``seq`` is the last message it includes).
A viewer subscribes first, then asks for the snapshot, then applies the
buffered live messages with a higher ``seq``.

Requests may come from DEALER sockets (``[request]``) or REQ sockets
(``["", request]``); the reply mirrors the envelope. The socket belongs to the
publisher thread (ZeroMQ sockets are not thread-safe).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cygno_online.publish.messages import encode
from cygno_online.publish.state import MonitorState

log = logging.getLogger(__name__)


def parse_request(frames: list[bytes]) -> tuple[list[bytes], dict[str, Any] | None]:
    """``(reply_prefix, request)`` of a ROUTER message; request None if unreadable."""
    identity = frames[0]
    rest = frames[1:]
    prefix = [identity]
    if rest and rest[0] == b"":
        prefix.append(b"")
        rest = rest[1:]
    if len(rest) != 1:
        return prefix, None
    try:
        req = json.loads(bytes(rest[0]).decode())
    except (UnicodeDecodeError, ValueError):
        return prefix, None
    return prefix, req if isinstance(req, dict) else None


class SnapshotServer:
    def __init__(self, socket: Any, state: MonitorState) -> None:
        self.socket = socket
        self.state = state
        self.served = 0

    def handle(self) -> None:
        """Answer every pending request (non-blocking)."""
        import zmq

        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            prefix, req = parse_request(frames)
            if req is None or req.get("cmd") != "snapshot":
                reply = [
                    json.dumps({"ok": False, "error": 'expected {"cmd": "snapshot"}'}).encode()
                ]
                self._send(prefix + reply)
                continue
            msg = self.state.to_message()
            self._send(prefix + encode(msg))
            self.served += 1

    def _send(self, frames: list) -> None:
        import zmq

        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            log.warning("snapshot reply dropped: viewer not reading")
