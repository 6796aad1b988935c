"""The control socket: alarm acknowledgement and runtime queries.

A ROUTER socket (REQ or DEALER clients) taking one JSON request per message
and answering one JSON reply::

    {"cmd": "ack", "alarm": "<alarm id>", "user": "<name>"} -> {"ok": true, "alarm": {...}}
    {"cmd": "status"}  -> {"ok": true, "status": {run, health, source...}}
    {"cmd": "alarms"}  -> {"ok": true, "alarms": [AlarmRecord...]}
    {"cmd": "config"}  -> {"ok": true, "config": {...the loaded file...}}
    anything else      -> {"ok": false, "error": "..."}

Handlers run on the publisher thread (which owns the socket) and must be quick.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from cygno_online.publish.snapshot import parse_request

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlServer:
    def __init__(self, socket: Any, handlers: dict[str, Handler]) -> None:
        self.socket = socket
        self.handlers = handlers
        self.requests = 0

    def answer(self, req: dict[str, Any] | None) -> dict[str, Any]:
        if req is None:
            return {"ok": False, "error": "request must be a JSON object"}
        cmd = req.get("cmd")
        handler = self.handlers.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            return {
                "ok": False,
                "error": f"unknown command {cmd!r}",
                "commands": sorted(self.handlers),
            }
        try:
            reply = handler(req)
        except KeyError as exc:
            return {"ok": False, "error": f"unknown {exc.args[0]!r}" if exc.args else "not found"}
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control command %s failed", cmd)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, **reply}

    def handle(self) -> None:
        import zmq

        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            prefix, req = parse_request(frames)
            self.requests += 1
            reply = self.answer(req)
            try:
                self.socket.send_multipart(
                    [*prefix, json.dumps(reply, default=str).encode()], zmq.NOBLOCK
                )
            except zmq.Again:
                log.warning("control reply dropped: client not reading")
