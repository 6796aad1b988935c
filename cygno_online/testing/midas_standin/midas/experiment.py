"""The fake experiment behind the stand-in client (stand-in only; no such
module exists in MIDAS). Tests create one, start and stop runs, produce events
into its buffers and make it disappear and return::

    exp = experiment.create("test")          # MIDAS_EXPT_NAME / expt_name
    exp.start_run(42)                        # TR_START callbacks fire in communicate()
    exp.produce(event_bytes)                 # into the SYSTEM buffer
    exp.go_away(); exp.come_back()           # connection errors, then reconnects work
    exp.request_shutdown()                   # like odbedit "shutdown": communicate() raises SystemExit
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import midas

DEFAULT_BUFFER_SIZE = 32 * 1024 * 1024

_registry: dict[str, Experiment] = {}
_lock = threading.Lock()


@dataclass
class _Stored:
    index: int
    time: float
    data: bytes


@dataclass
class Reader:
    """One client's read cursor on one buffer (its requests are OR-ed)."""

    client_id: int
    requests: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    next_index: int = 0
    missed: int = 0

    @property
    def sampling(self) -> int:
        types = {r[2] for r in self.requests.values()}
        if midas.GET_ALL in types:
            return midas.GET_ALL
        if midas.GET_NONBLOCKING in types:
            return midas.GET_NONBLOCKING
        return midas.GET_RECENT if types else midas.GET_NONBLOCKING

    def wants(self, data: bytes) -> bool:
        eid = int.from_bytes(data[0:2], "little")
        mask = int.from_bytes(data[2:4], "little")
        for r_id, r_mask, _ in self.requests.values():
            if (r_id in (-1, eid)) and (r_mask == -1 or (r_mask & mask)):
                return True
        return False


class Buffer:
    """A ring buffer of events: GET_ALL readers make the producer wait,
    GET_NONBLOCKING readers lose events when it wraps, GET_RECENT readers see
    only events younger than one second."""

    def __init__(self, name: str, size: int = DEFAULT_BUFFER_SIZE) -> None:
        self.name = name
        self.size = size
        self.events: deque[_Stored] = deque()
        self.used = 0
        self.next_index = 0
        self.readers: dict[int, Reader] = {}
        self.cond = threading.Condition()
        self.produced = 0

    def reader(self, client_id: int) -> Reader:
        with self.cond:
            r = self.readers.get(client_id)
            if r is None:
                r = Reader(client_id, next_index=self.next_index)
                self.readers[client_id] = r
            return r

    def drop_reader(self, client_id: int) -> None:
        with self.cond:
            self.readers.pop(client_id, None)
            self.cond.notify_all()

    def put(self, data: bytes, timeout: float | None = None) -> None:
        if len(data) > self.size:
            raise ValueError(f"event of {len(data)} bytes does not fit buffer {self.name}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while self.used + len(data) > self.size:
                oldest = self.events[0]
                blocking = [
                    r
                    for r in self.readers.values()
                    if r.requests and r.sampling == midas.GET_ALL and r.next_index <= oldest.index
                ]
                if blocking:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"buffer {self.name} full: a GET_ALL reader is slow")
                    self.cond.wait(remaining if remaining is not None else 0.5)
                    continue
                self.events.popleft()
                self.used -= len(oldest.data)
            self.events.append(_Stored(self.next_index, time.monotonic(), bytes(data)))
            self.used += len(data)
            self.next_index += 1
            self.produced += 1
            self.cond.notify_all()

    def get(self, client_id: int, timeout: float | None) -> bytes | None:
        """Next wanted event for this reader (None after ``timeout`` seconds;
        ``timeout=None`` waits forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while True:
                r = self.readers.get(client_id)
                if r is None:
                    return None
                first = self.events[0].index if self.events else self.next_index
                if r.next_index < first:
                    r.missed += first - r.next_index
                    r.next_index = first
                now = time.monotonic()
                for ev in list(self.events):
                    if ev.index < r.next_index:
                        continue
                    r.next_index = ev.index + 1
                    if r.sampling == midas.GET_RECENT and now - ev.time > 1.0:
                        r.missed += 1
                        continue
                    if r.wants(ev.data):
                        self.cond.notify_all()
                        return ev.data
                self.cond.notify_all()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.cond.wait(remaining if remaining is not None else 0.5)


class Experiment:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.available = True
        self.buffers: dict[str, Buffer] = {}
        self.clients: dict[int, Any] = {}
        #: every msg() as (client name, text, is_error)
        self.messages: list[tuple[str, str, bool]] = []
        self.connects = 0
        self.odb: dict[str, Any] = {
            "Runinfo": {"State": 1, "Run number": 0, "Start time binary": 0, "Stop time binary": 0},
            "Experiment": {
                "Name": name,
                "MAX_EVENT_SIZE": 4 * 1024 * 1024,
                "Run Parameters": {"Run description": ""},
            },
            "Configurations": {"Exposure": 0.3, "Pedestal": 0, "FreeRunning": 0},
            "Equipment": {},
        }

    # -- test controls -----------------------------------------------------------------
    def buffer(self, name: str = "SYSTEM", size: int | None = None) -> Buffer:
        with self.lock:
            buf = self.buffers.get(name)
            if buf is None:
                buf = Buffer(name, size or DEFAULT_BUFFER_SIZE)
                self.buffers[name] = buf
            return buf

    def produce(self, data: bytes, buffer: str = "SYSTEM", timeout: float | None = 10.0) -> None:
        self.buffer(buffer).put(data, timeout)

    def start_run(self, run: int, description: str = "", **odb: Any) -> None:
        with self.lock:
            ri = self.odb["Runinfo"]
            ri["Run number"] = run
            ri["State"] = midas.STATE_RUNNING
            ri["Start time binary"] = int(time.time())
            self.odb["Experiment"]["Run Parameters"]["Run description"] = description
            for path, value in odb.items():
                self.set(path, value)
            for c in list(self.clients.values()):
                c._queue_transition(midas.TR_START, run)

    def stop_run(self) -> None:
        with self.lock:
            ri = self.odb["Runinfo"]
            ri["State"] = midas.STATE_STOPPED
            ri["Stop time binary"] = int(time.time())
            for c in list(self.clients.values()):
                c._queue_transition(midas.TR_STOP, ri["Run number"])

    def go_away(self) -> None:
        """mserver/shared memory gone: every call of connected clients fails."""
        with self.lock:
            self.available = False
            for c in list(self.clients.values()):
                c._lost = True
            self.clients.clear()
            for buf in self.buffers.values():
                with buf.cond:
                    buf.readers.clear()
                    buf.cond.notify_all()

    def come_back(self) -> None:
        with self.lock:
            self.available = True

    def request_shutdown(self) -> None:
        """Like odbedit's ``shutdown``: the next communicate() raises SystemExit."""
        with self.lock:
            for c in list(self.clients.values()):
                c._shutdown = True

    # -- ODB -------------------------------------------------------------------------
    def _walk(self, path: str, create: bool = False) -> tuple[dict, str]:
        parts = [p for p in path.strip("/").split("/") if p]
        node = self.odb
        for p in parts[:-1]:
            key = _find(node, p)
            if key is None:
                if not create:
                    raise KeyError(path)
                node[p] = {}
                key = p
            node = node[key]
            if not isinstance(node, dict):
                raise KeyError(path)
        return node, parts[-1] if parts else ""

    def get(self, path: str) -> Any:
        with self.lock:
            if path.strip("/") == "":
                return copy.deepcopy(self.odb)
            node, last = self._walk(path)
            key = _find(node, last)
            if key is None:
                raise KeyError(path)
            return copy.deepcopy(node[key])

    def set(self, path: str, value: Any) -> None:
        with self.lock:
            node, last = self._walk(path, create=True)
            key = _find(node, last) or last
            node[key] = copy.deepcopy(value)
            for c in list(self.clients.values()):
                c._odb_changed(path)


def _find(node: dict, name: str) -> str | None:
    if name in node:
        return name
    low = name.lower()
    for k in node:
        if k.lower() == low:
            return k
    return None


def create(name: str = "Default") -> Experiment:
    """A fresh experiment under ``name`` (replaces an existing one)."""
    with _lock:
        exp = Experiment(name)
        _registry[name] = exp
        return exp


def get(name: str) -> Experiment | None:
    with _lock:
        return _registry.get(name)


def remove(name: str) -> None:
    with _lock:
        exp = _registry.pop(name, None)
    if exp is not None:
        exp.go_away()
