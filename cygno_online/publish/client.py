"""The viewer side: keep a :class:`MonitorState` in step with a daemon.

:class:`MonitorClient` runs one background thread that owns the SUB and
snapshot sockets (ZeroMQ "clone" pattern):

1. subscribe to everything, 2. ask the snapshot, buffering live messages
meanwhile, 3. load the snapshot and apply the buffered messages with a higher
``seq``, 4. apply live messages; a ``seq`` that skips numbers (a gap: the
viewer was too slow and ZeroMQ dropped for it) or goes backwards (the daemon
restarted) triggers a new snapshot. No heartbeat for ``timeout_s`` marks the
client disconnected (``disconnected_since``); ZeroMQ reconnects by itself and
the next message brings a fresh snapshot.

:meth:`ack` and :meth:`query` talk to the control socket with a short-lived
socket of the calling thread (sockets are never shared between threads).

:class:`LocalClient` gives the same interface over an in-process
:class:`~cygno_online.publish.publisher.Publisher` (``cygno-online demo``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cygno_online.logs import RateLimitedLog, log_key
from cygno_online.publish import guard
from cygno_online.publish.messages import Message, ProtocolError, decode
from cygno_online.publish.state import MonitorState

log = logging.getLogger(__name__)
_bad_log = RateLimitedLog(log, "client")

#: after a snapshot, a live message it already contains is stale, not a sign
#: of a daemon restart (a restart is still seen once this window has passed)
STALE_WINDOW_S = 1.0


def _next_port(endpoint: str, offset: int) -> str:
    scheme, rest = endpoint.split("://", 1)
    host, port = rest.rsplit(":", 1)
    return f"{scheme}://{host}:{int(port) + offset}"


class MonitorClient:
    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5556",
        snapshot_endpoint: str | None = None,
        control_endpoint: str | None = None,
        server_key: bytes | str | None = None,
        *,
        client_key_file: str | None = None,
        timeout_s: float = 3.0,
        snapshot_timeout_s: float = 2.0,
        on_update: Callable[[Message], None] | None = None,
        state: MonitorState | None = None,
        start: bool = True,
    ) -> None:
        self._log_id = log_key()
        self.endpoint = endpoint
        self.snapshot_endpoint = snapshot_endpoint or _next_port(endpoint, 1)
        self.control_endpoint = control_endpoint or _next_port(endpoint, 2)
        self.server_key = server_key.encode() if isinstance(server_key, str) else server_key
        self.client_key_file = client_key_file
        self.timeout_s = timeout_s
        self.snapshot_timeout_s = snapshot_timeout_s
        self.on_update = on_update
        self.state = state or MonitorState()
        self.connected = False
        self.disconnected_since: float | None = time.time()
        #: wall time of the last message from the daemon (data, heartbeat or
        #: snapshot); None until the first one: "never connected"
        self.last_message_at: float | None = None
        #: number of sequence gaps seen (each led to a new snapshot)
        self.gaps = 0
        #: number of snapshots loaded
        self.snapshots = 0
        self.messages = 0
        self.protocol_errors = 0
        #: True while the state is a snapshot plus every update since (no gap
        #: pending); a relay serves snapshots only then
        self.in_sync = False
        #: the ZeroMQ context of the thread's sockets (None: the global one);
        #: a relay with its own CURVE authenticator needs its own context
        self.context: Any = None
        #: live messages already in a just-loaded snapshot (they travel on
        #: another connection and may arrive after it): ignored, counted
        self.stale = 0
        self._stale_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- public -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="monitor-client", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ack(self, alarm_id: str, user: str, timeout_s: float = 3.0) -> dict[str, Any]:
        return self.request({"cmd": "ack", "alarm": alarm_id, "user": user}, timeout_s)

    def shelve(
        self, alarm_id: str, user: str, duration_s: float, reason: str = "", timeout_s: float = 3.0
    ) -> dict[str, Any]:
        req = {"cmd": "shelve", "alarm": alarm_id, "user": user, "duration_s": duration_s}
        return self.request({**req, "reason": reason}, timeout_s)

    def unshelve(self, alarm_id: str, user: str, timeout_s: float = 3.0) -> dict[str, Any]:
        return self.request({"cmd": "unshelve", "alarm": alarm_id, "user": user}, timeout_s)

    def query(self, cmd: str, timeout_s: float = 3.0, **args: Any) -> dict[str, Any]:
        return self.request({"cmd": cmd, **args}, timeout_s)

    def request(self, req: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any]:
        """One control request; ``{"ok": False, "error": "timeout"}`` when the
        daemon does not answer."""
        import zmq

        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        try:
            self._secure(sock)
            sock.connect(self.control_endpoint)
            sock.send(json.dumps(req).encode())
            if not sock.poll(int(timeout_s * 1000)):
                return {"ok": False, "error": "timeout"}
            reply = sock.recv_multipart()
            return json.loads(reply[-1].decode())
        finally:
            sock.close()

    # -- socket helpers ------------------------------------------------------------------
    def _secure(self, sock: Any) -> None:
        if not self.server_key:
            return
        import zmq
        import zmq.auth

        if self.client_key_file:
            public, secret = zmq.auth.load_certificate(self.client_key_file)
        else:
            public, secret = zmq.curve_keypair()
        sock.curve_serverkey = self.server_key
        sock.curve_publickey = public
        sock.curve_secretkey = secret

    def _open_sub(self, ctx: Any) -> Any:
        import zmq

        sub = ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = 10000
        guard.use_tcp_keepalive(sub)  # never ZMTP heartbeats: a slow viewer would abort
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self._secure(sub)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.endpoint)
        return sub

    def _open_snap(self, ctx: Any) -> Any:
        import zmq

        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        self._secure(s)
        s.connect(self.snapshot_endpoint)
        return s

    # -- the thread ------------------------------------------------------------------
    def _main(self) -> None:
        import zmq

        ctx = self.context or zmq.Context.instance()
        sub = self._open_sub(ctx)
        snap = self._open_snap(ctx)
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(snap, zmq.POLLIN)
        self._open_extra(ctx, poller)
        need_snapshot = True
        asked_at = 0.0
        buffered: list[Message] = []
        last_rx = opened_at = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                # Ask for the snapshot only once the subscription is live (a
                # first message arrived, or the daemon is silent for longer
                # than the snapshot timeout): a snapshot taken before the
                # publisher knows of this SUB ("slow joiner") would be followed
                # by a seq gap and a second snapshot that folds the updates
                # in between into the state instead of delivering them.
                live = bool(buffered) or now - opened_at > self.snapshot_timeout_s
                if need_snapshot and live and now - asked_at > self.snapshot_timeout_s:
                    if asked_at:
                        # The daemon is not answering: a fresh socket drops
                        # the stale request once it comes back.
                        poller.unregister(snap)
                        snap.close()
                        snap = self._open_snap(ctx)
                        poller.register(snap, zmq.POLLIN)
                    snap.send(json.dumps({"cmd": "snapshot"}).encode())
                    asked_at = now
                events = dict(poller.poll(100))
                now = time.monotonic()
                self.in_sync = not need_snapshot
                self._handle_extra(events)
                if snap in events:
                    frames = snap.recv_multipart(copy=False)
                    try:
                        msg = decode(list(frames))
                    except ProtocolError as exc:
                        self.protocol_errors += 1
                        _bad_log.warning(
                            "bad snapshot reply: %s", exc, key=f"{self._log_id}:snapshot"
                        )
                        continue
                    if msg.kind == "snapshot" and need_snapshot:
                        self.state.apply(msg)
                        self.snapshots += 1
                        need_snapshot = False
                        self._stale_until = now + STALE_WINDOW_S
                        asked_at = 0.0
                        self._set_connected(True)
                        last_rx = now
                        self.last_message_at = time.time()
                        self._notify(msg)
                        pending, buffered = buffered, []
                        for m in pending:
                            if m.seq > self.state.seq and not self._apply_live(m):
                                need_snapshot = True
                                break
                if sub in events:
                    while True:
                        try:
                            frames = sub.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        try:
                            msg = decode(list(frames))
                        except ProtocolError as exc:
                            self.protocol_errors += 1
                            _bad_log.warning("bad message: %s", exc, key=f"{self._log_id}:message")
                            continue
                        last_rx = now
                        self.last_message_at = time.time()
                        self.messages += 1
                        if need_snapshot:
                            buffered.append(msg)
                            if len(buffered) > 100000:
                                buffered = buffered[-50000:]
                            continue
                        if msg.seq <= self.state.seq and now < self._stale_until:
                            self.stale += 1
                            continue
                        if not self._apply_live(msg):
                            need_snapshot = True
                            buffered = [msg]
                            asked_at = 0.0
                        if not self.connected:
                            self._set_connected(True)
                if self.connected and now - last_rx > self.timeout_s:
                    self._set_connected(False)
                    need_snapshot = True
                    asked_at = 0.0
                    buffered = []
                    opened_at = now
        finally:
            self.in_sync = False
            self._close_extra()
            sub.close()
            snap.close()

    # -- hooks for a subclass that serves other sockets on this thread (relay) ----
    def _open_extra(self, ctx: Any, poller: Any) -> None:
        """Open more sockets on the client thread and register them in ``poller``."""

    def _handle_extra(self, events: dict[Any, int]) -> None:
        """Called after every poll with its events (``in_sync`` is current)."""

    def _close_extra(self) -> None:
        """Close the sockets of :meth:`_open_extra` (the thread is ending)."""

    def _apply_live(self, msg: Message) -> bool:
        """Apply one live message; False when a new snapshot is needed."""
        if msg.seq == self.state.seq + 1:
            self.state.apply(msg)
            self._notify(msg)
            return True
        if msg.seq <= self.state.seq:
            # Sequence went backwards: the daemon restarted.
            log.info("daemon restarted (seq %d after %d): new snapshot", msg.seq, self.state.seq)
            return False
        self.gaps += 1
        log.info("gap: seq %d after %d: new snapshot", msg.seq, self.state.seq)
        return False

    def _set_connected(self, value: bool) -> None:
        if value == self.connected:
            return
        self.connected = value
        # "since" is the last message, not the moment the silence was noticed
        self.disconnected_since = None if value else (self.last_message_at or time.time())

    def _notify(self, msg: Message) -> None:
        if self.on_update is not None:
            try:
                self.on_update(msg)
            except Exception:
                _bad_log.error(
                    "on_update callback failed", key=f"{self._log_id}:on_update", exc_info=True
                )


class LocalClient:
    """The :class:`MonitorClient` interface over an in-process publisher."""

    def __init__(
        self,
        publisher: Any,
        control_handlers: dict[str, Callable[[dict], dict]] | None = None,
        on_update: Callable[[Message], None] | None = None,
    ) -> None:
        from cygno_online.publish.control import ControlServer

        self.publisher = publisher
        self.state: MonitorState = publisher.state
        self._control = ControlServer(None, control_handlers or publisher.control_handlers)
        self.connected = True
        self.disconnected_since: float | None = None
        self.gaps = 0
        self.on_update = on_update
        publisher.listeners.append(self._listen)

    def _listen(self, msg: Message) -> None:
        if self.on_update is not None:
            self.on_update(msg)

    def ack(self, alarm_id: str, user: str, timeout_s: float = 3.0) -> dict[str, Any]:
        return self.request({"cmd": "ack", "alarm": alarm_id, "user": user})

    def shelve(
        self, alarm_id: str, user: str, duration_s: float, reason: str = "", timeout_s: float = 3.0
    ) -> dict[str, Any]:
        req = {"cmd": "shelve", "alarm": alarm_id, "user": user, "duration_s": duration_s}
        return self.request({**req, "reason": reason})

    def unshelve(self, alarm_id: str, user: str, timeout_s: float = 3.0) -> dict[str, Any]:
        return self.request({"cmd": "unshelve", "alarm": alarm_id, "user": user})

    def query(self, cmd: str, timeout_s: float = 3.0, **args: Any) -> dict[str, Any]:
        return self.request({"cmd": cmd, **args})

    def request(self, req: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any]:
        return json.loads(json.dumps(self._control.answer(req), default=str))

    def close(self, timeout: float = 0.0) -> None:
        if self._listen in self.publisher.listeners:
            self.publisher.listeners.remove(self._listen)
