"""A relay: one connection to the daemon, any number of viewers behind it.

``cygno-online relay`` subscribes to a daemon (or to another relay) exactly as
a viewer does (:class:`~cygno_online.publish.client.MonitorClient`: snapshot,
then updates, re-snapshot on a gap or a restart) and serves its own viewers
with the same protocol on its own three sockets:

* PUB: every message it applied, re-sent with the daemon's ``seq`` unchanged.
  The relay's state is the daemon's state at that ``seq``, so a viewer behind
  it detects gaps and restarts (the daemon's or the relay's) as it would with
  the daemon itself, and the TUI needs no change.
* snapshot ROUTER: answered from the relay's state, only while the relay is in
  step with the daemon (a request waiting meanwhile is answered once it is).
* control ROUTER: each request is forwarded upstream on a socket of its own
  (at most ``max_inflight`` at once; more are refused, counted) and the reply
  goes back to the viewer; no reply in ``control_timeout_s`` gives
  ``{"ok": false, "error": "timeout ..."}``. An acknowledgement names who made
  it: the viewer's ``user`` plus its CURVE key name (the file name of the key
  in the relay's authorized keys directory; the peer address without CURVE)
  and the relay, e.g. ``anna (key alice via relay lngs)``.

Everything runs on the client's one thread (ZeroMQ sockets belong to one
thread): a message is applied to the state and sent on the PUB before the next
snapshot request is read, so a snapshot never claims a ``seq`` that the PUB has
not sent yet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from cygno_online.publish import guard
from cygno_online.publish.client import MonitorClient, _next_port
from cygno_online.publish.messages import Message, encode
from cygno_online.publish.publisher import setup_curve_server
from cygno_online.publish.snapshot import SnapshotServer

log = logging.getLogger(__name__)


def authorized_key_names(directory: str | Path | None) -> dict[str, str]:
    """Z85 public key -> name (the key file's stem) of a CURVE keys folder."""
    if not directory:
        return {}
    import zmq.auth

    names = {}
    for path in sorted(Path(directory).glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as exc:
            log.warning("relay: cannot read viewer key %s: %s", path, exc)
            continue
        names[public.decode()] = path.stem
    return names


class Relay(MonitorClient):
    """Subscribe upstream, serve viewers downstream (see the module docstring)."""

    def __init__(
        self,
        connect: str,
        snapshot_connect: str | None = None,
        control_connect: str | None = None,
        server_key: bytes | str | None = None,
        *,
        client_key_file: str | None = None,
        bind: str = "tcp://127.0.0.1:6556",
        snapshot_bind: str | None = None,
        control_bind: str | None = None,
        curve_secret_key_file: str | None = None,
        curve_authorized_keys_dir: str | None = None,
        name: str = "relay",
        hwm: int = 1000,
        timeout_s: float = 3.0,
        control_timeout_s: float = 3.0,
        max_inflight: int = 64,
        start: bool = True,
    ) -> None:
        super().__init__(
            connect,
            snapshot_connect,
            control_connect,
            server_key,
            client_key_file=client_key_file,
            timeout_s=timeout_s,
            start=False,
        )
        self.bind = bind
        self.snapshot_bind = snapshot_bind or _next_port(bind, 1)
        self.control_bind = control_bind or _next_port(bind, 2)
        self.curve_secret_key_file = curve_secret_key_file
        self.curve_authorized_keys_dir = curve_authorized_keys_dir
        self.name = name
        self.hwm = hwm
        self.control_timeout_s = control_timeout_s
        self.max_inflight = max_inflight
        self._key_names = authorized_key_names(curve_authorized_keys_dir)
        #: endpoints actually bound (port 0 / wildcard binds)
        self.endpoints: dict[str, str] = {}
        self.forwarded = 0
        self.dropped_send = 0
        self.control_forwarded = 0
        self.control_timeouts = 0
        self.control_refused = 0
        #: the daemon's limits on control requests, per viewer: no viewer can
        #: make the relay flood the daemon
        self._buckets = guard.PeerBuckets()
        self.control_stats = guard.RequestStats()
        self._ready_error: BaseException | None = None
        self._bound = threading.Event()
        self._pub: Any = None
        self._snap_srv: SnapshotServer | None = None
        self._ctl: Any = None
        self._auth: Any = None
        #: upstream control socket -> (viewer reply prefix, deadline)
        self._inflight: dict[Any, tuple[list[bytes], float]] = {}
        if start:
            self.start()

    # -- public -----------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        import zmq

        # Its own context: a CURVE authenticator is one per context, and a
        # daemon in the same process (tests, demo) has its own on the global one.
        self.context = zmq.Context()
        super().start()
        if not self._bound.wait(timeout):
            raise RuntimeError("relay did not start")
        if self._ready_error is not None:
            self.close()
            raise self._ready_error

    def close(self, timeout: float = 2.0) -> None:
        super().close(timeout)
        if self._thread is not None and self._thread.is_alive():
            log.warning("relay %s: its thread did not stop in %.0f s", self.name, timeout)
            return
        if self.context is not None:
            self.context.term()
            self.context = None

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "in_sync": self.in_sync,
            "seq": self.state.seq,
            "messages_in": self.messages,
            "forwarded": self.forwarded,
            "dropped_send": self.dropped_send,
            "gaps": self.gaps,
            "snapshots_loaded": self.snapshots,
            "snapshots_served": self._snap_srv.served if self._snap_srv else 0,
            "control_forwarded": self.control_forwarded,
            "control_timeouts": self.control_timeouts,
            "control_refused": self.control_refused,
            "control_inflight": len(self._inflight),
            "control_requests": self.control_stats.as_dict(),
        }

    # -- the client thread's extra sockets ---------------------------------------------------
    def _open_extra(self, ctx: Any, poller: Any) -> None:
        import zmq

        self._poller = poller
        opened: list[Any] = []
        try:
            if self.curve_secret_key_file:
                from zmq.auth.thread import ThreadAuthenticator

                self._auth = ThreadAuthenticator(ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=self.curve_authorized_keys_dir)

            def make(kind: int, endpoint: str, label: str) -> Any:
                s = ctx.socket(kind)
                s.linger = 0
                guard.use_tcp_keepalive(s)  # never ZMTP heartbeats (a flood would abort)
                if self.curve_secret_key_file:
                    setup_curve_server(s, self.curve_secret_key_file)
                if kind == zmq.PUB:
                    s.sndhwm = self.hwm
                else:
                    guard.configure_socket(s)  # the daemon's bounds on request sockets
                try:
                    s.bind(endpoint)
                except zmq.ZMQError as exc:
                    s.close(linger=0)
                    from cygno_online.errors import ConfigError

                    option = {"pub": "--bind"}.get(label, f"--{label}-bind")
                    raise ConfigError(
                        option, f"cannot bind {endpoint}: {exc.strerror or exc}"
                    ) from None
                opened.append(s)
                self.endpoints[label] = s.getsockopt_string(zmq.LAST_ENDPOINT)
                return s

            self._pub = make(zmq.PUB, self.bind, "pub")
            snap = make(zmq.ROUTER, self.snapshot_bind, "snapshot")
            self._ctl = make(zmq.ROUTER, self.control_bind, "control")
            self._snap_srv = SnapshotServer(snap, self.state)
            poller.register(self._ctl, zmq.POLLIN)
        except Exception as exc:
            for s in opened:
                s.close(linger=0)
            self._pub = self._ctl = self._snap_srv = None
            self._ready_error = exc
            self._stop.set()
        finally:
            self._bound.set()

    def _handle_extra(self, events: dict[Any, int]) -> None:
        if self._snap_srv is None:
            return
        # Snapshot requests wait in the ROUTER until the relay is in step again.
        if self.in_sync:
            self._snap_srv.handle()
        if self._ctl in events:
            self._read_control()
        if self._inflight:
            self._read_replies(events)

    def _close_extra(self) -> None:
        for sock in list(self._inflight):
            sock.close()
        self._inflight.clear()
        for s in (self._pub, self._ctl, self._snap_srv.socket if self._snap_srv else None):
            if s is not None:
                s.close(linger=0)
        if self._auth is not None:
            self._auth.stop()

    # -- forwarding live messages -----------------------------------------------------------
    def _notify(self, msg: Message) -> None:
        # Called right after the message was applied to the state.
        if msg.kind != "snapshot" and self._pub is not None:
            import zmq

            try:
                self._pub.send_multipart(encode(msg), zmq.NOBLOCK, copy=False)
                self.forwarded += 1
            except zmq.Again:
                self.dropped_send += 1
        super()._notify(msg)

    # -- control requests -------------------------------------------------------------------
    def _viewer_identity(self, frame: Any) -> str:
        for prop in ("User-Id", "Peer-Address"):
            try:
                value = frame.get(prop)
            except Exception:  # property not set on this transport
                value = None
            if value:
                if prop == "User-Id":
                    return "key " + self._key_names.get(value, value[:8] + "...")
                return "peer " + value
        return "peer unknown"

    def _read_control(self) -> None:
        import zmq

        for _ in range(guard.BUDGET_REQUESTS):
            try:
                frames = self._ctl.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            raw = [f.bytes for f in frames]
            self.control_stats.requests += 1
            if not self._buckets.allow(raw[0] if raw else b""):
                self.control_stats.dropped["rate_limited"] += 1
                continue
            try:
                prefix, req = guard.parse_request(raw)
            except guard.RequestError as exc:
                self.control_stats.rejected[exc.code] += 1
                if raw:
                    self._reply(guard.split_envelope(raw)[0], exc.reply())
                continue
            if len(self._inflight) >= self.max_inflight:
                self.control_refused += 1
                self._reply(prefix, {"ok": False, "error": f"relay {self.name} busy, retry"})
                continue
            operator_cmds = ("ack", "shelve", "unshelve", "disable", "enable")
            if req.get("cmd") in operator_cmds and isinstance(req.get("user"), str) and req["user"]:
                who = self._viewer_identity(frames[-1])
                req = {**req, "user": f"{req['user']} ({who} via relay {self.name})"}
            up = self.context.socket(zmq.DEALER)
            up.linger = 0
            self._secure(up)
            up.connect(self.control_endpoint)
            up.send(json.dumps(req).encode())
            self._poller.register(up, zmq.POLLIN)
            self._inflight[up] = (prefix, time.monotonic() + self.control_timeout_s)
            self.control_forwarded += 1

    def _read_replies(self, events: dict[Any, int]) -> None:
        now = time.monotonic()
        for up, (prefix, deadline) in list(self._inflight.items()):
            if up in events:
                reply = up.recv_multipart()
                self._send([*prefix, reply[-1]])
            elif now > deadline:
                self.control_timeouts += 1
                self._reply(
                    prefix, {"ok": False, "error": f"timeout (daemon behind relay {self.name})"}
                )
            else:
                continue
            self._poller.unregister(up)
            up.close()
            del self._inflight[up]

    def _reply(self, prefix: list[bytes], body: dict[str, Any]) -> None:
        self._send([*prefix, json.dumps(body).encode()])

    def _send(self, frames: list[bytes]) -> None:
        import zmq

        try:
            self._ctl.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("relay %s: control reply dropped: viewer not reading", self.name)
