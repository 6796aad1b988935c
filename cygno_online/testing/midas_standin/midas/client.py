"""Stand-in of ``midas.client`` (MIDAS develop 2022-12, see
/work/shared/docs/midas.md "The real bindings in detail"). Each behaviour below
is one point of that section and is pinned by tests/daemon/test_midas_standin.py:

* ``midas.client`` holds ``MidasClient`` only; constants live in ``midas``.
* One connected client per process (a second raises ``RuntimeError``); the
  library is "loaded" once per process and never unloaded.
* ``receive_event`` is a thin wrapper of
  ``client.lib.c_bm_receive_event(handle, byref(buf), byref(size), c_int(flag))``
  with ``buf = client.event_buffers[handle]`` (max_event_size+100 bytes);
  ``BM_ASYNC_RETURN`` becomes ``None``; an event larger than the buffer raises
  ``MidasError`` ``BM_TRUNCATED``; the unpacker raises ``TypeError`` on
  STRING/STRUCT/ARRAY banks.
* ``communicate(0)`` does nothing; transition and shutdown RPCs are served only
  inside ``communicate(ms > 0)``, on the calling thread. A shutdown prints
  "Midas shutdown", disconnects and raises ``SystemExit(0)``.
* Registered transitions live in a process-wide table that ``disconnect()``
  does not clear: registering again in the same process fails with
  ``CM_INVALID_TRANSITION``.
* Connecting installs a SIGINT/SIGTERM handler that stays installed: the first
  signal is reported as a shutdown at the next yield, the second exits(0) at
  once with no Python clean-up.
* A local client whose experiment shared memory vanished ``abort()``s in its
  next buffer call (SIGABRT, exit 134).

What is the stand-in's own (the doc is silent, see the module docstring of
``cygno_online.testing.midas_standin.experiment``): the experiment is a process
reached over a Unix socket (local) or TCP (``MIDAS_SERVER_HOST`` = "host:port",
standing for mserver); connecting to an experiment whose process is not running
fails with ``RPC_NET_ERROR``; a lost connection makes calls raise
``MidasError`` ``RPC_NET_ERROR``. Python can install signal handlers only from
the main thread, so the handler is installed only when connecting there.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import midas
import midas.event
from midas import MidasError, MidasLib

from cygno_online.testing.midas_standin import wire

_status = midas.status_codes
_TR_NAMES = {1: "START", 2: "STOP", 4: "PAUSE", 8: "RESUME", 16: "STARTABORT"}
DEFAULT_PORT = 1175  # mserver's port; the stand-in accepts "host:port"

# -- process-wide state of "libmidas" -----------------------------------------------------
_lib: MidasLib | None = None
_connected: MidasClient | None = None
_state_lock = threading.Lock()
#: (transition, sequence) -> callback; disconnect() never clears it
_transition_table: dict[tuple[int, int], Callable] = {}
_signals = {"installed": False, "count": 0, "pending": False}


def _on_signal(signum: int, frame: Any) -> None:
    _signals["count"] += 1
    if _signals["count"] >= 2:
        os.write(2, b"2nd Ctrl-C, hard abort\n")
        os._exit(0)  # no Python clean-up, as libmidas's exit(0) from its handler
    _signals["pending"] = True


def _install_signal_handler() -> None:
    if _signals["installed"] or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    _signals["installed"] = True


def _exptab(name: str | None) -> tuple[str, str]:
    """(experiment name, directory) from ``MIDAS_EXPTAB`` (lines "name dir user")."""
    path = os.environ.get("MIDAS_EXPTAB", "/etc/exptab")
    entries: list[tuple[str, str]] = []
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and not parts[0].startswith("#"):
                    entries.append((parts[0], parts[1]))
    except OSError:
        pass
    for ename, edir in entries:
        if name is None or ename == name:
            return ename, edir
    raise MidasError(_status["CM_UNDEF_EXP"], f"experiment {name!r} not defined in exptab {path}")


class MidasClient:
    def __init__(
        self,
        client_name: str,
        host_name: str | None = None,
        expt_name: str | None = None,
        daemon_flag: Any = None,
    ) -> None:
        global _lib, _connected
        with _state_lock:
            if _connected is not None:
                raise RuntimeError("a MIDAS client is already connected in this process")
            if _lib is None:
                _lib = MidasLib(os.path.join(os.environ["MIDASSYS"], "lib", "libmidas-c-compat.so"))
        self.lib = _lib
        self.lib.c_bm_receive_event = self._c_bm_receive_event
        self.client_name = client_name
        self.host_name = host_name or os.environ.get("MIDAS_SERVER_HOST") or None
        self.expt_name = expt_name or os.environ.get("MIDAS_EXPT_NAME") or None
        #: handle -> ctypes char array of max_event_size + 100 bytes
        self.event_buffers: dict[int, Any] = {}
        self._buffer_names: dict[int, str] = {}
        self._shm_path: str | None = None
        self._shm_map: mmap.mmap | None = None
        self._shm_pos = 0
        self._closed = False
        if self.host_name:
            host, _, port = self.host_name.partition(":")
            addr: Any = (host, int(port or DEFAULT_PORT))
            family = socket.AF_INET
        else:
            self.expt_name, directory = _exptab(self.expt_name)
            addr = os.path.join(directory, ".standin.sock")
            family = socket.AF_UNIX
        try:
            self._req = socket.socket(family, socket.SOCK_STREAM)
            self._req.connect(addr)
            hello = wire.call(
                self._req,
                "hello",
                role="client",
                name=client_name,
                expt=self.expt_name,
                pid=os.getpid(),
                local=not self.host_name,
            )
            self._rpc = socket.socket(family, socket.SOCK_STREAM)
            self._rpc.connect(addr)
            wire.call(self._rpc, "hello", role="rpc", id=hello["id"])
        except wire.RemoteError as exc:
            raise MidasError(exc.code or _status["RPC_NET_ERROR"], exc.text) from None
        except OSError as exc:
            raise MidasError(
                _status["RPC_NET_ERROR"], f"cannot connect to experiment at {addr}: {exc}"
            ) from None
        self._id = hello["id"]
        self.expt_name = hello["expt"]
        if not self.host_name:
            self._shm_path = hello["shm"]
        with _state_lock:
            _connected = self
        _install_signal_handler()

    # -- plumbing --------------------------------------------------------------------------
    def _call(self, op: str, **args: Any) -> Any:
        if self._closed:
            raise MidasError(_status["RPC_NET_ERROR"], "client is disconnected")
        try:
            return wire.call(self._req, op, **args)
        except wire.RemoteError as exc:
            raise MidasError(exc.code or _status["RPC_NET_ERROR"], exc.text) from None
        except (OSError, ConnectionError) as exc:
            raise MidasError(
                _status["RPC_NET_ERROR"], f"connection to the experiment lost: {exc}"
            ) from None

    def _buffer_call(self, handle: int) -> None:
        """Every buffer call of a local client locks the buffer's shared
        memory; when it vanished libmidas aborts the process."""
        if self._shm_path is None:
            return
        if not os.path.exists(self._shm_path):
            name = self._buffer_names.get(handle, "SYSTEM")
            os.write(2, f"Cannot lock buffer {name}, shared memory gone, aborting\n".encode())
            os.abort()
        if self._shm_map is None:
            with open(self._shm_path, "r+b") as fh:
                self._shm_map = mmap.mmap(fh.fileno(), 0)

    def _touch_shm(self, data: bytes) -> None:
        # A local client reads events out of the mapped buffer: the pages it
        # touches count in its RSS as shared memory (RssShmem).
        m = self._shm_map
        if m is None or not data or len(data) > len(m):
            return
        if self._shm_pos + len(data) > len(m):
            self._shm_pos = 0
        m[self._shm_pos : self._shm_pos + len(data)] = data
        self._shm_pos += len(data)

    # -- event buffers ---------------------------------------------------------------------
    def open_event_buffer(
        self, buffer_name: str, buf_size: int | None = None, max_event_size: int | None = None
    ) -> int:
        if max_event_size is None:
            max_event_size = int(self.odb_get("/Experiment/MAX_EVENT_SIZE"))
        handle = self._call("open_buffer", name=buffer_name, size=buf_size)
        self._buffer_names[handle] = buffer_name
        self._buffer_call(handle)
        self.event_buffers[handle] = ctypes.create_string_buffer(max_event_size + 100)
        return handle

    def register_event_request(
        self,
        buffer_handle: int,
        event_id: int = -1,
        trigger_mask: int = -1,
        sampling_type: int = midas.GET_ALL,
    ) -> int:
        self._buffer_call(buffer_handle)
        return self._call(
            "register_request",
            handle=buffer_handle,
            event_id=event_id,
            trigger_mask=trigger_mask,
            sampling=sampling_type,
        )

    def deregister_event_request(self, buffer_handle: int, request_id: int) -> None:
        self._buffer_call(buffer_handle)
        self._call("deregister_request", handle=buffer_handle, request=request_id)

    def _c_bm_receive_event(self, handle: Any, buf_ref: Any, size_ref: Any, flag: Any) -> int:
        """``c_bm_receive_event(handle, byref(buf), byref(size), c_int(flag))``:
        copies the event as sent into ``buf`` (``size`` in: buffer size; out:
        event size, header included). flag 1 = at once, 0 = forever, n > 1 = n ms."""
        h = int(getattr(handle, "value", handle))
        buf = buf_ref._obj
        size = size_ref._obj
        self._buffer_call(h)
        room = int(size.value)
        status, data, full = self._call(
            "receive", handle=h, flag=int(getattr(flag, "value", flag)), size=room
        )
        if status == _status["BM_ASYNC_RETURN"]:
            raise MidasError(status, "no event")
        ctypes.memmove(ctypes.addressof(buf), data, len(data))
        self._touch_shm(data)
        size.value = full
        if full > room:
            sys.stderr.write(
                f"[{self.client_name},ERROR] buffer size {room} is smaller than event size "
                f"{full}, event truncated\n"
            )
            raise MidasError(_status["BM_TRUNCATED"], "event truncated")
        return 1

    def receive_event(
        self, buffer_handle: int, async_flag: bool | int = True, use_numpy: bool = False
    ) -> midas.event.Event | None:
        """``async_flag``: True = return at once, False = wait forever, an int
        > 1 = wait at most that many milliseconds."""
        buf = self.event_buffers[buffer_handle]
        size = ctypes.c_int(ctypes.sizeof(buf))
        flag = 1 if async_flag is True else 0 if async_flag is False else int(async_flag)
        try:
            self.lib.c_bm_receive_event(
                buffer_handle, ctypes.byref(buf), ctypes.byref(size), ctypes.c_int(flag)
            )
        except MidasError as exc:
            if exc.code == _status["BM_ASYNC_RETURN"]:
                return None
            raise
        ev = midas.event.Event()
        ev.unpack(buf.raw[: size.value], use_numpy=use_numpy)
        return ev

    # -- ODB -------------------------------------------------------------------------------
    def odb_get(
        self, path: str, recurse_dir: bool = True, include_key_metadata: bool = False
    ) -> Any:
        return self._call("odb_get", path=path, recurse=recurse_dir)

    def odb_set(self, path: str, contents: Any, create_if_needed: bool = True, **kw: Any) -> None:
        if not create_if_needed and not self.odb_exists(path):
            raise KeyError(path)
        self._call("odb_set", path=path, value=contents)

    def odb_exists(self, path: str) -> bool:
        return bool(self._call("odb_exists", path=path))

    # -- transitions, messages, communicate ---------------------------------------------------
    def register_transition_callback(
        self, transition: int, sequence: int, callback: Callable
    ) -> None:
        key = (int(transition), int(sequence))
        with _state_lock:
            if key in _transition_table:
                raise MidasError(
                    _status["CM_INVALID_TRANSITION"],
                    f"transition {_TR_NAMES.get(transition, transition)} with sequence number "
                    f"{sequence} is already registered",
                )
            self._call("register_tr", tr=key[0], seq=key[1])
            _transition_table[key] = callback

    def deregister_transition_callback(self, transition: int) -> None:
        # needs the connection: when it is gone the entry stays (doc: "only
        # while the connection still works"; how it fails is not documented)
        self._call("deregister_tr", tr=int(transition))
        with _state_lock:
            for key in [k for k in _transition_table if k[0] == int(transition)]:
                del _transition_table[key]

    def msg(self, message: str, is_error: bool = False, facility: str = "midas") -> None:
        self._call("msg", text=message, is_error=bool(is_error))

    def communicate(self, time_ms: int) -> None:
        """Loop ``cm_yield`` until ``time_ms`` passed; ``communicate(0)`` does
        nothing at all. Transition callbacks run here, on this thread."""
        if time_ms <= 0:
            return
        import time

        deadline = time.monotonic() + time_ms / 1000.0
        while True:
            self._yield(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return

    def _yield(self, timeout: float) -> None:
        if self._closed:
            raise MidasError(_status["RPC_NET_ERROR"], "client is disconnected")
        if _signals["pending"]:
            _signals["pending"] = False
            self._shutdown()
        try:
            ready, _, _ = select.select([self._rpc], [], [], timeout)
            if not ready:
                return
            msg = wire.recv(self._rpc)
        except (OSError, ConnectionError) as exc:
            raise MidasError(
                _status["RPC_NET_ERROR"], f"connection to the experiment lost: {exc}"
            ) from None
        if msg["op"] == "shutdown":
            self._shutdown()
        if msg["op"] == "tr":
            tr, run = int(msg["tr"]), int(msg["run"])
            error = None
            for (t, _seq), cb in sorted(_transition_table.items()):
                if t == tr:
                    try:
                        cb(self, run)
                    except Exception as exc:  # reported to the run control
                        error = f"{type(exc).__name__}: {exc}"
            wire.send(self._rpc, {"result": error})

    def _shutdown(self) -> None:
        sys.stdout.write("Midas shutdown\n")
        sys.stdout.flush()
        self.disconnect()
        raise SystemExit(0)

    def disconnect(self) -> None:
        global _connected
        if self._closed:
            return
        self._closed = True
        for s in (self._req, self._rpc):
            with contextlib.suppress(OSError):
                s.close()
        if self._shm_map is not None:
            self._shm_map.close()
            self._shm_map = None
        with _state_lock:
            if _connected is self:
                _connected = None
