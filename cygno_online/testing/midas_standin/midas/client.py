"""Stand-in of ``midas.client.MidasClient`` (see /work/shared/docs/midas.md).

Differences from libmidas are limited to what cannot exist without it: the
experiment is the in-process :mod:`midas.experiment`, and signal handlers are
installed only when the client connects on the main thread (Python allows
signal handlers only there; libmidas installs them from any thread).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import midas
import midas.event
from midas import MidasError
from midas import experiment as _experiment

# Status codes used in errors (values as in midas.h where they exist)
CM_SUCCESS = 1
CM_UNDEF_EXP = 103
CM_WRONG_PASSWORD = 110
BM_TRUNCATED = 211
RPC_NET_ERROR = 503
DB_NO_KEY = 312

_current: MidasClient | None = None
_current_lock = threading.Lock()
_ids = itertools.count(1)


class MidasClient:
    def __init__(
        self,
        client_name: str,
        host_name: str | None = None,
        expt_name: str | None = None,
        daemon_flag: Any = None,
    ) -> None:
        global _current
        host = host_name if host_name is not None else os.environ.get("MIDAS_SERVER_HOST")
        name = expt_name or os.environ.get("MIDAS_EXPT_NAME") or "Default"
        exp = _experiment.get(name)
        if exp is None:
            raise MidasError(CM_UNDEF_EXP, f"experiment {name!r} not defined (host {host!r})")
        if not exp.available:
            raise MidasError(RPC_NET_ERROR, f"cannot connect to experiment {name!r}")
        with _current_lock:
            if _current is not None and not _current._closed:
                raise MidasError(CM_WRONG_PASSWORD, "only one MIDAS client per process")
            _current = self
        self.name = client_name
        self.host_name = host
        self.expt_name = name
        self._exp = exp
        self._id = next(_ids)
        self._closed = False
        self._lost = False
        self._shutdown = False
        self._handles: dict[int, tuple[_experiment.Buffer, int]] = {}
        self._next_handle = 1
        self._requests: dict[int, tuple[int, int]] = {}
        self._next_request = 1
        self._transition_cbs: dict[int, list[tuple[int, Callable]]] = {}
        self._pending: deque[tuple[int, int]] = deque()
        self._watches: dict[str, Callable] = {}
        self._changed: deque[str] = deque()
        self._cond = threading.Condition()
        with exp.lock:
            exp.clients[self._id] = self
            exp.connects += 1
        self._install_signals()

    # -- signals -------------------------------------------------------------------------
    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._shutdown = True
        with self._cond:
            self._cond.notify_all()

    # -- plumbing --------------------------------------------------------------------------
    def _check(self) -> None:
        if self._closed:
            raise MidasError(RPC_NET_ERROR, "client is disconnected")
        if self._lost:
            raise MidasError(RPC_NET_ERROR, "connection to the experiment lost")

    def _queue_transition(self, transition: int, run: int) -> None:
        with self._cond:
            self._pending.append((transition, run))
            self._cond.notify_all()

    def _odb_changed(self, path: str) -> None:
        with self._cond:
            self._changed.append(path)
            self._cond.notify_all()

    # -- event buffers ---------------------------------------------------------------------
    def open_event_buffer(
        self, buffer_name: str, buf_size: int | None = None, max_event_size: int | None = None
    ) -> int:
        self._check()
        buf = self._exp.buffer(buffer_name, buf_size)
        if max_event_size is None:
            max_event_size = int(self._exp.get("/Experiment/MAX_EVENT_SIZE"))
        handle = self._next_handle
        self._next_handle += 1
        self._handles[handle] = (buf, max_event_size + 100)
        buf.reader(self._id)
        return handle

    def register_event_request(
        self,
        buffer_handle: int,
        event_id: int = -1,
        trigger_mask: int = -1,
        sampling_type: int = midas.GET_ALL,
    ) -> int:
        self._check()
        if buffer_handle not in self._handles:
            raise MidasError(204, f"invalid buffer handle {buffer_handle}")
        if sampling_type not in (midas.GET_ALL, midas.GET_NONBLOCKING, midas.GET_RECENT):
            raise ValueError(f"invalid sampling type {sampling_type}")
        buf, _ = self._handles[buffer_handle]
        reader = buf.reader(self._id)
        rid = self._next_request
        self._next_request += 1
        with buf.cond:
            reader.requests[rid] = (event_id, trigger_mask, sampling_type)
            reader.next_index = buf.next_index
        self._requests[rid] = (buffer_handle, rid)
        return rid

    def deregister_event_request(self, buffer_handle: int, request_id: int) -> None:
        self._check()
        buf, _ = self._handles[buffer_handle]
        reader = buf.reader(self._id)
        with buf.cond:
            reader.requests.pop(request_id, None)
            buf.cond.notify_all()
        self._requests.pop(request_id, None)

    def receive_event(
        self, buffer_handle: int, async_flag: bool | int = True, use_numpy: bool = False
    ) -> midas.event.Event | None:
        """``async_flag``: True = return at once, False = wait forever, an int
        > 1 = wait at most that many milliseconds."""
        self._check()
        if buffer_handle not in self._handles:
            raise MidasError(204, f"invalid buffer handle {buffer_handle}")
        buf, recv_size = self._handles[buffer_handle]
        if isinstance(async_flag, bool):
            timeout = 0.0 if async_flag else None
        else:
            timeout = max(0, int(async_flag)) / 1000.0
        data = buf.get(self._id, timeout)
        self._check()
        if data is None:
            return None
        if len(data) > recv_size:
            raise MidasError(
                BM_TRUNCATED,
                f"event of {len(data)} bytes does not fit the receive buffer of {recv_size} bytes",
            )
        ev = midas.event.Event()
        # a private copy per call, like the ctypes buffer the bindings fill
        ev.unpack(bytearray(data), use_numpy=use_numpy)
        return ev

    # -- ODB -------------------------------------------------------------------------------
    def odb_get(
        self, path: str, recurse_dir: bool = True, include_key_metadata: bool = False
    ) -> Any:
        self._check()
        value = self._exp.get(path)
        if isinstance(value, dict) and not recurse_dir:
            return {k: v for k, v in value.items() if not isinstance(v, dict)}
        return value

    def odb_set(self, path: str, contents: Any, create_if_needed: bool = True, **kw: Any) -> None:
        self._check()
        if not create_if_needed and not self.odb_exists(path):
            raise KeyError(path)
        self._exp.set(path, contents)

    def odb_exists(self, path: str) -> bool:
        self._check()
        try:
            self._exp.get(path)
            return True
        except KeyError:
            return False

    def odb_watch(
        self, path: str, callback: Callable, pass_changed_value_only: bool = False
    ) -> None:
        self._check()
        self._exp.get(path)  # KeyError when missing, as the bindings
        self._watches[path] = callback

    # -- transitions, messages, communicate ---------------------------------------------------
    def register_transition_callback(
        self, transition: int, sequence: int, callback: Callable
    ) -> None:
        self._check()
        self._transition_cbs.setdefault(transition, []).append((sequence, callback))
        self._transition_cbs[transition].sort(key=lambda t: t[0])

    def msg(self, message: str, is_error: bool = False, facility: str = "midas") -> None:
        self._check()
        with self._exp.lock:
            self._exp.messages.append((self.name, message, bool(is_error)))

    def communicate(self, time_ms: int) -> None:
        """Serve transitions and ODB watches (callbacks run here, on the
        calling thread), waiting up to ``time_ms``. Raises SystemExit after a
        shutdown request or SIGINT/SIGTERM, having disconnected."""
        if self._shutdown:
            self.disconnect()
            raise SystemExit(0)
        self._check()
        deadline = time.monotonic() + max(0, time_ms) / 1000.0
        while True:
            with self._cond:
                if not self._pending and not self._changed and not self._shutdown:
                    remaining = deadline - time.monotonic()
                    if remaining > 0:
                        self._cond.wait(remaining)
                pending = list(self._pending)
                self._pending.clear()
                changed = list(self._changed)
                self._changed.clear()
            for transition, run in pending:
                for _, cb in self._transition_cbs.get(transition, []):
                    cb(self, run)
            for path in changed:
                for wpath, cb in list(self._watches.items()):
                    if path.lower().startswith(wpath.lower()):
                        cb(self, wpath, self._exp.get(wpath))
            if self._shutdown:
                self.disconnect()
                raise SystemExit(0)
            if self._lost:
                self._check()
            if time.monotonic() >= deadline:
                return

    def disconnect(self) -> None:
        global _current
        if self._closed:
            return
        self._closed = True
        for buf, _ in self._handles.values():
            buf.drop_reader(self._id)
        with self._exp.lock:
            self._exp.clients.pop(self._id, None)
        with _current_lock:
            if _current is self:
                _current = None
