"""The control socket: alarm acknowledgement and runtime queries.

A ROUTER socket (REQ or DEALER clients) taking one JSON request per message
and answering one JSON reply::

    {"cmd": "ack", "alarm": "<alarm id>", "user": "<name>"} -> {"ok": true, "alarm": {...}}
    {"cmd": "status"}  -> {"ok": true, "status": {run, health, source...}}
    {"cmd": "alarms"}  -> {"ok": true, "alarms": [AlarmRecord...]}
    {"cmd": "config"}  -> {"ok": true, "config": {...the loaded file...}}
    {"cmd": "reference", "run": N, ...} -> a run's reference run (cygno_online.daemon.runlookup)
    anything else      -> {"ok": false, "error": "...", "code": "..."}

Requests are bounded by :mod:`cygno_online.publish.guard` (size, frames,
nesting, a rate per peer, a budget per publisher-loop iteration): a refused
request gets a typed error reply, a peer over its rate is dropped and
counted. Handlers run on the publisher thread (which owns the socket) and must
be quick; any exception of a handler becomes an error reply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from cygno_online.logs import RateLimitedLog, log_key
from cygno_online.publish import guard

log = logging.getLogger(__name__)
_bad = RateLimitedLog(log, "control")

Handler = Callable[[dict[str, Any]], dict[str, Any]]

#: longest command name echoed back in an error reply
_ECHO = 64


class ControlServer:
    def __init__(
        self,
        socket: Any,
        handlers: dict[str, Handler],
        *,
        buckets: guard.PeerBuckets | None = None,
    ) -> None:
        self._log_id = log_key()
        self.socket = socket
        self.handlers = handlers
        self.buckets = buckets or guard.PeerBuckets()
        self.stats = guard.RequestStats()

    @property
    def requests(self) -> int:
        return self.stats.requests

    def answer(self, req: dict[str, Any] | None) -> dict[str, Any]:
        if not isinstance(req, dict):
            return {"ok": False, "error": "request must be a JSON object", "code": "malformed"}
        cmd = req.get("cmd")
        handler = self.handlers.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            shown = repr(cmd)
            if len(shown) > _ECHO:
                shown = shown[:_ECHO] + "..."
            return {
                "ok": False,
                "error": f"unknown command {shown}",
                "code": "unknown_command",
                "commands": sorted(self.handlers),
            }
        try:
            reply = handler(req)
        except KeyError as exc:
            return {
                "ok": False,
                "error": f"unknown {exc.args[0]!r}" if exc.args else "not found",
                "code": "not_found",
            }
        except (ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc), "code": "bad_request"}
        except Exception as exc:
            _bad.error(
                "control command %s failed", cmd, key=f"{self._log_id}:handler:{cmd}", exc_info=True
            )
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "code": "internal"}
        return {"ok": True, **reply}

    def handle(self, budget: int = guard.BUDGET_REQUESTS) -> int:
        """Answer up to ``budget`` pending requests (non-blocking); returns
        how many were taken off the socket."""
        import zmq

        n = 0
        while n < budget:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            n += 1
            admitted = guard.admit(
                frames,
                buckets=self.buckets,
                stats=self.stats,
                log=_bad,
                what="control",
                key=self._log_id,
                send_error=self._send,
            )
            if admitted is None:
                continue
            prefix, req = admitted
            reply = self.answer(req)
            if not reply.get("ok") and "code" in reply:
                self.stats.rejected[reply["code"]] += 1
            self._send(prefix, reply)
        return n

    def _send(self, prefix: list[bytes], reply: dict[str, Any]) -> None:
        import zmq

        try:
            body = json.dumps(reply, default=str).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            body = json.dumps(
                {"ok": False, "error": f"reply not encodable: {exc}", "code": "internal"}
            ).encode()
        try:
            self.socket.send_multipart([*prefix, body], zmq.NOBLOCK)
        except zmq.Again:
            self.stats.dropped["reply_not_read"] += 1
            _bad.warning(
                "control reply dropped: client not reading", key=f"{self._log_id}:not_reading"
            )
