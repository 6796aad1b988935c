"""The fan-out: one thread owns every daemon-side ZeroMQ socket.

* PUB (``publish.bind``): every message, topics as in
  :mod:`cygno_online.publish.messages`, one global ``seq``. Sends never block
  (``NOBLOCK``; ``EAGAIN`` is counted as a drop); ZeroMQ drops silently for a
  viewer whose queue is full, which the viewer detects as a ``seq`` gap.
* ROUTER snapshot socket and ROUTER control socket (see ``snapshot.py`` and
  ``control.py``), served between sends.
* Every message is applied to :attr:`Publisher.state` before it is sent, so the
  snapshot is exactly the sum of the messages up to its ``seq``.
* Displays are rate-limited per display name to ``display_hz`` (the newest
  waiting one wins) and images larger than ``display_max_side`` are
  block-averaged.
* An application heartbeat (kind ``hb``) every ``heartbeat_s``; dead peers
  are found by TCP keepalive (no ZMTP heartbeats on the daemon's sockets: see
  ``_open``).

Other threads only call :meth:`submit` (non-blocking, bounded queue; a full
queue is counted as a drop). With ``enabled=False`` no socket is opened and
the state is still maintained (the in-process demo viewer reads it).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.errors import ConfigError
from cygno_online.logs import RateLimitedLog, log_key
from cygno_online.publish import guard
from cygno_online.publish.messages import Message, display_message, encode, metric_message
from cygno_online.publish.state import MonitorState

log = logging.getLogger(__name__)
_loop_errors = RateLimitedLog(log, "publisher-loop")


def downsample_image(image: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """Block-average a 2-D image so that no side exceeds ``max_side``."""
    if image.ndim != 2 or max(image.shape) <= max_side:
        return image, 1
    f = math.ceil(max(image.shape) / max_side)
    rows, cols = (image.shape[0] // f) * f, (image.shape[1] // f) * f
    view = image[:rows, :cols].reshape(rows // f, f, cols // f, f)
    return view.mean(axis=(1, 3), dtype=np.float32), f


def setup_curve_server(socket: Any, secret_key_file: str) -> None:
    import zmq.auth

    public, secret = zmq.auth.load_certificate(secret_key_file)
    if secret is None:
        raise ValueError(f"{secret_key_file} holds no secret key")
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


class Publisher:
    def __init__(
        self,
        *,
        enabled: bool = True,
        bind: str = "tcp://127.0.0.1:5556",
        snapshot_bind: str | None = "tcp://127.0.0.1:5557",
        control_bind: str | None = "tcp://127.0.0.1:5558",
        hwm: int = 1000,
        heartbeat_s: float = 1.0,
        display_hz: float = 2.0,
        display_max_side: int = 1024,
        queue_size: int = 20000,
        curve_secret_key_file: str | None = None,
        curve_authorized_keys_dir: str | None = None,
        control_handlers: dict[str, Callable[[dict], dict]] | None = None,
        on_drop: Callable[[str, int], None] | None = None,
        state: MonitorState | None = None,
    ) -> None:
        self._log_id = log_key()
        self.enabled = enabled
        self.bind = bind
        self.snapshot_bind = snapshot_bind
        self.control_bind = control_bind
        self.hwm = hwm
        self.heartbeat_s = heartbeat_s
        self.display_interval_s = 1.0 / display_hz if display_hz > 0 else 0.0
        self.display_max_side = display_max_side
        self.curve_secret_key_file = curve_secret_key_file
        self.curve_authorized_keys_dir = curve_authorized_keys_dir
        self.control_handlers = control_handlers or {}
        self.on_drop = on_drop
        self.state = state or MonitorState()
        self._queue: queue.Queue[Message | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.seq = 0
        self.sent = 0
        self.dropped_queue = 0
        self.dropped_send = 0
        self.displays_skipped = 0
        #: endpoints actually bound (useful with port 0 / wildcard binds)
        self.endpoints: dict[str, str] = {}
        self._pending_displays: dict[str, Message] = {}
        self._last_display: dict[str, float] = {}
        #: called on the publisher thread after a message is applied/sent
        self.listeners: list[Callable[[Message], None]] = []
        #: the request servers (publisher thread; None until started/disabled)
        self.snapshot_server: Any = None
        self.control_server: Any = None
        #: called on every loop of the publisher thread (the daemon's watchdog)
        self.on_beat: Callable[[], None] | None = None
        #: exceptions caught in the loop (the thread survives them)
        self.loop_errors = 0

    # -- any thread ----------------------------------------------------------------
    def submit(self, msg: Message) -> bool:
        try:
            self._queue.put_nowait(msg)
            return True
        except queue.Full:
            self.dropped_queue += 1
            if self.on_drop:
                self.on_drop("publish_queue", 1)
            return False

    def submit_outputs(self, outputs: list[Any]) -> None:
        for out in outputs:
            if isinstance(out, Metric):
                self.submit(metric_message(out))
            elif isinstance(out, Display):
                self.submit(display_message(out))

    def stats(self) -> dict[str, int]:
        return {
            "seq": self.seq,
            "sent": self.sent,
            "dropped_queue": self.dropped_queue,
            "dropped_send": self.dropped_send,
            "displays_skipped": self.displays_skipped,
            "queue_depth": self._queue.qsize(),
            # series forgotten because of state.MAX_SERIES (high-cardinality tags)
            "series_evicted": self.state.series_evicted,
            "loop_errors": self.loop_errors,
            **self.request_stats(),
        }

    def request_stats(self) -> dict[str, int]:
        """Requests refused (typed error reply) and dropped (rate limit,
        reply not read) on the snapshot and control sockets."""
        out: dict[str, int] = {}
        for name in ("snapshot", "control"):
            server = getattr(self, f"{name}_server", None)
            if server is None:
                continue
            st = server.stats
            out[f"{name}_requests"] = st.requests
            out[f"{name}_rejected"] = sum(st.rejected.values())
            out[f"{name}_dropped"] = sum(st.dropped.values())
        return out

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._main, name="publisher", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("publisher did not start")
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = 3.0) -> None:
        """Send what is queued (bounded by ``timeout``), then close."""
        self._stopping.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- publisher thread ------------------------------------------------------------
    def _open(self) -> tuple[Any, Any, Any, Any, Any]:
        import zmq

        ctx = zmq.Context.instance()
        auth = None
        if self.curve_secret_key_file:
            from zmq.auth.thread import ThreadAuthenticator

            auth = ThreadAuthenticator(ctx)
            auth.start()
            auth.configure_curve(domain="*", location=self.curve_authorized_keys_dir)

        def make(kind: int, endpoint: str, name: str) -> Any:
            s = ctx.socket(kind)
            s.linger = 0
            guard.use_tcp_keepalive(s)  # never ZMTP heartbeats (see there)
            if self.curve_secret_key_file:
                setup_curve_server(s, self.curve_secret_key_file)
            if kind == zmq.PUB:
                s.sndhwm = self.hwm
                # peers only send subscriptions (a few bytes): bound them too
                s.setsockopt(zmq.MAXMSGSIZE, 65536)
            else:
                guard.configure_socket(s)
            try:
                s.bind(endpoint)
            except zmq.ZMQError as exc:
                s.close(linger=0)
                for other in opened:
                    other.close(linger=0)
                key = {"pub": "bind"}.get(name, f"{name}_bind")
                raise ConfigError(
                    f"publish.{key}", f"cannot bind {endpoint}: {exc.strerror or exc}"
                ) from None
            opened.append(s)
            self.endpoints[name] = s.getsockopt_string(zmq.LAST_ENDPOINT)
            return s

        opened: list[Any] = []

        pub = make(zmq.PUB, self.bind, "pub")
        snap = make(zmq.ROUTER, self.snapshot_bind, "snapshot") if self.snapshot_bind else None
        ctl = make(zmq.ROUTER, self.control_bind, "control") if self.control_bind else None
        return ctx, pub, snap, ctl, auth

    def _main(self) -> None:
        import zmq

        pub = snap = ctl = auth = None
        poller = None
        try:
            if self.enabled:
                try:
                    _, pub, snap, ctl, auth = self._open()
                except Exception as exc:
                    self._error = exc
                    return
                from cygno_online.publish.control import ControlServer
                from cygno_online.publish.snapshot import SnapshotServer

                snapshot_server = SnapshotServer(snap, self.state) if snap is not None else None
                control_server = (
                    ControlServer(ctl, self.control_handlers) if ctl is not None else None
                )
                self.snapshot_server, self.control_server = snapshot_server, control_server
                poller = zmq.Poller()
                for s in (snap, ctl):
                    if s is not None:
                        poller.register(s, zmq.POLLIN)
            self._ready.set()
            next_hb = 0.0
            deadline = None
            while True:
                if self.on_beat is not None:
                    self.on_beat()
                try:
                    msg = self._queue.get(timeout=0.02)
                except queue.Empty:
                    msg = None
                n = 0
                while msg is not None:
                    try:
                        self._handle(msg, pub)
                    except Exception:
                        # An unencodable body must not silence the monitor.
                        _loop_errors.error(
                            "cannot publish a %s message",
                            msg.kind,
                            key=f"{self._log_id}:{msg.kind}",
                            exc_info=True,
                        )
                    n += 1
                    if n >= 200:
                        break
                    try:
                        msg = self._queue.get_nowait()
                    except queue.Empty:
                        msg = None
                now = time.monotonic()
                try:
                    self._flush_displays(pub, now, force=self._stopping.is_set())
                    if now >= next_hb:
                        next_hb = now + self.heartbeat_s
                        self._publish(Message("hb", {"time_ns": time.time_ns()}), pub)
                    if poller is not None:
                        # Each socket gets a bounded budget per iteration:
                        # a flood waits in libzmq's bounded queue while the
                        # live messages above go on.
                        for sock, _ in poller.poll(0):
                            if sock is snap:
                                snapshot_server.handle()
                            elif sock is ctl:
                                control_server.handle()
                        if snapshot_server is not None:
                            snapshot_server.serve_pending()
                except Exception:
                    # Nothing a viewer or a control client sends may end the
                    # thread that owns every socket.
                    self.loop_errors += 1
                    _loop_errors.error(
                        "publisher loop error (the thread goes on)",
                        key=str(self._log_id),
                        exc_info=True,
                    )
                if self._stopping.is_set():
                    if deadline is None:
                        deadline = time.monotonic() + 2.0
                    if self._queue.empty() or time.monotonic() > deadline:
                        break
        finally:
            self._ready.set()
            for s in (pub, snap, ctl):
                if s is not None:
                    s.close(linger=200 if s is pub else 0)
            if auth is not None:
                auth.stop()

    def _handle(self, msg: Message | None, pub: Any) -> None:
        if msg is None:
            return
        if msg.kind == "display" and self.display_interval_s > 0:
            name = msg.body["name"]
            if name in self._pending_displays:
                self.displays_skipped += 1
            self._pending_displays[name] = msg
            return
        self._publish(msg, pub)

    def _flush_displays(self, pub: Any, now: float, force: bool = False) -> None:
        for name in list(self._pending_displays):
            if force or now - self._last_display.get(name, -1e18) >= self.display_interval_s:
                msg = self._pending_displays.pop(name)
                self._last_display[name] = now
                self._publish(self._shrink(msg), pub)

    def _shrink(self, msg: Message) -> Message:
        if msg.body.get("kind") != "image":
            return msg
        arrays = {}
        scale = 1
        for k, a in msg.arrays.items():
            arrays[k], f = downsample_image(np.asarray(a), self.display_max_side)
            scale = max(scale, f)
        if scale == 1:
            return msg
        body = dict(msg.body)
        meta = dict(body.get("meta") or {})
        meta["scale"] = meta.get("scale", 1) * scale
        if meta.get("boxes"):
            meta["boxes"] = [_scale_box(b, scale) for b in meta["boxes"]]
        body["meta"] = meta
        return Message(msg.kind, body, arrays, topic=msg.topic)

    def _publish(self, msg: Message, pub: Any) -> None:
        self.seq += 1
        msg.seq = self.seq
        self.state.apply(msg)
        for listener in self.listeners:
            try:
                listener(msg)
            except Exception:
                _loop_errors.error(
                    "publisher listener failed", key=f"{self._log_id}:listener", exc_info=True
                )
        if pub is None:
            self.sent += 1
            return
        import zmq

        try:
            pub.send_multipart(encode(msg), zmq.NOBLOCK, copy=False)
            self.sent += 1
        except zmq.Again:
            self.dropped_send += 1
            if self.on_drop:
                self.on_drop("publish_hwm", 1)


_BOX_KEYS = ("row0", "col0", "row1", "col1")


def _scale_box(box: Any, factor: int) -> Any:
    """A cluster box in the coordinates of an image downsampled by ``factor``
    (boxes are dicts with row0/col0/row1/col1 or [r0, c0, r1, c1] lists)."""
    if isinstance(box, dict):
        return {k: (v / factor if k in _BOX_KEYS else v) for k, v in box.items()}
    if isinstance(box, (list, tuple)):
        return [v / factor if i < 4 else v for i, v in enumerate(box)]
    return box
