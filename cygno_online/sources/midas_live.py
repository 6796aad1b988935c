"""Live events from MIDAS through its Python bindings (``midas.client``).

One thread (the pipeline's source thread) owns the client: it connects, opens
the event buffer, registers the configured requests (``GET_NONBLOCKING`` by
default: a monitor must never slow the DAQ), and then alternates
``receive_event`` (with a timeout) and ``communicate`` (run-transition
callbacks fire only there, on this thread). Messages for MIDAS (alarms) are
queued by other threads and sent from this one.

Event conversion: the bindings return their own ``midas.event.Event`` (bank
data as numpy views with ``use_numpy=True``), never the raw bytes. The event
is re-serialised into MIDAS bytes (16-byte header, BANK32 area, 8-byte
padding: one copy of ~10 MB, a few ms) and parsed by the project's own
``cygno_online.midas.event.parse_event``, so every decoder sees exactly what
a file replay gives. Events the bindings cannot unpack (STRING/STRUCT/ARRAY
banks) raise inside ``receive_event``; they are counted and skipped.

Failure handling: any connection error (experiment not defined, mserver gone,
shared memory removed) closes the client and retries with exponential backoff
(``retry.initial_s`` doubling up to ``retry.max_s``), reporting the state
through the pipeline (log line, ``monitor`` metric ``source_state``); it never
crashes the daemon. ``SystemExit`` from ``communicate`` (libmidas answering
SIGINT/SIGTERM or an odbedit "shutdown") propagates: the daemon ends cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from cygno_online.sources.base import Source, SourceSink

log = logging.getLogger(__name__)

_TID_FORMAT = {
    1: "B",
    2: "b",
    3: "c",
    4: "H",
    5: "h",
    6: "I",
    7: "i",
    8: "I",
    9: "f",
    10: "d",
    11: "I",
    17: "q",
    18: "Q",
}


def event_bytes(ev: Any) -> bytes:
    """MIDAS bytes of a bindings ``Event`` (BANK32 layout)."""
    parts: list[bytes] = []
    for name, bank in ev.banks.items():
        data = bank.data
        if isinstance(data, np.ndarray):
            raw = np.ascontiguousarray(data).tobytes()
        elif isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)
        else:
            fmt = _TID_FORMAT.get(int(bank.type), "B")
            raw = struct.pack(f"<{len(data)}{fmt}", *data)
        raw = raw[: bank.size_bytes] if bank.size_bytes <= len(raw) else raw
        head = struct.pack("<4sII", name.encode("ascii")[:4].ljust(4), int(bank.type), len(raw))
        parts.append(head + raw + b"\0" * ((-len(raw)) % 8))
    if parts or not getattr(ev, "non_bank_data", None):
        banks = b"".join(parts)
        payload = struct.pack("<II", len(banks), 0x11) + banks
    else:
        payload = bytes(ev.non_bank_data)
    h = ev.header
    header = struct.pack(
        "<HHIII", h.event_id, h.trigger_mask & 0xFFFF, h.serial_number, h.timestamp, len(payload)
    )
    return header + payload


class MidasLiveSource(Source):
    endless = True

    def __init__(
        self,
        *,
        buffer: str = "SYSTEM",
        client_name: str = "cygno-online",
        host: str | None = None,
        expt_name: str | None = None,
        requests: list[Any] | None = None,
        max_event_size: int = 32 * 1024 * 1024,
        receive_timeout_ms: int = 100,
        communicate_ms: int = 10,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        experiment: str | None = None,
    ) -> None:
        from cygno_online.daemon.config import MidasRequest

        self.buffer = buffer
        self.client_name = client_name
        self.host = host
        self.expt_name = expt_name
        self.requests = requests or [MidasRequest()]
        self.max_event_size = max_event_size
        self.receive_timeout_ms = receive_timeout_ms
        self.communicate_ms = communicate_ms
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.experiment = experiment
        self.name = f"midas:{buffer}"
        self.sampling = self.requests[0].sampling
        self.connects = 0
        self.failures = 0
        self.unpack_errors = 0
        self._outbox: deque[tuple[str, bool]] = deque(maxlen=1000)
        self._sink: SourceSink | None = None
        self._run_open = False
        self._bindings: Any = None
        #: what is missing from the MIDAS install (state ``incompatible``)
        self.incompatible: list[str] = []

    @classmethod
    def from_config(cls, c: Any, experiment: str | None = None) -> MidasLiveSource:
        return cls(
            buffer=c.buffer,
            client_name=c.client_name,
            host=c.host,
            expt_name=c.experiment,
            requests=c.requests,
            max_event_size=c.max_event_size,
            receive_timeout_ms=c.receive_timeout_ms,
            communicate_ms=c.communicate_ms,
            retry_initial_s=c.retry_initial_s,
            retry_max_s=c.retry_max_s,
            experiment=experiment,
        )

    def send_message(self, text: str, is_error: bool = False) -> None:
        self._outbox.append((text, is_error))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            buffer=self.buffer,
            connects=self.connects,
            failures=self.failures,
            unpack_errors=self.unpack_errors,
        )
        return d

    # -- the owning thread ---------------------------------------------------------------
    def run(self, sink: SourceSink, stop: threading.Event) -> None:
        self._sink = sink
        from cygno_online.sources.midas_bindings import IncompatibleBindings, check_bindings

        try:
            self._bindings = check_bindings()
        except IncompatibleBindings as exc:
            # Not a transient condition: retrying a connection cannot fix it.
            self.incompatible = exc.missing
            log.error("%s: %s", self.name, exc)
            sink.status("incompatible", "; ".join(exc.missing))
            while not stop.is_set():
                stop.wait(0.5)
                sink.heartbeat()
            return
        backoff = self.retry_initial_s
        while not stop.is_set():
            connected_at = time.monotonic()
            try:
                self._session(sink, stop)
                return
            except SystemExit:
                if self._run_open:
                    sink.end_run(time.time_ns(), complete=False)
                raise
            except Exception as exc:
                self.failures += 1
                if self._run_open:
                    sink.end_run(None, complete=False)
                    self._run_open = False
                if time.monotonic() - connected_at > 2 * self.retry_max_s:
                    backoff = self.retry_initial_s  # it had been working for a while
                sink.status("disconnected", f"{type(exc).__name__}: {exc}; retry in {backoff:g} s")
                waited = 0.0
                while waited < backoff and not stop.is_set():
                    step = min(0.5, backoff - waited)
                    stop.wait(step)
                    waited += step
                    sink.heartbeat()
                backoff = min(backoff * 2, self.retry_max_s)

    def _session(self, sink: SourceSink, stop: threading.Event) -> None:
        midas = self._bindings.midas
        # the constants live in the top-level package, never in midas.client
        sampling = {
            "nonblocking": midas.GET_NONBLOCKING,
            "all": midas.GET_ALL,
            "recent": midas.GET_RECENT,
        }
        client = self._bindings.client.MidasClient(
            self.client_name, host_name=self.host, expt_name=self.expt_name
        )
        try:
            handle = client.open_event_buffer(self.buffer, max_event_size=self.max_event_size)
            for r in self.requests:
                client.register_event_request(
                    handle,
                    event_id=r.event_id,
                    trigger_mask=r.trigger_mask,
                    sampling_type=sampling[r.sampling],
                )
            client.register_transition_callback(
                midas.TR_START, 500, lambda c, run: self._begin(c, run)
            )
            client.register_transition_callback(midas.TR_STOP, 500, lambda c, run: self._end(run))
            self.connects += 1
            state = int(client.odb_get("/Runinfo/State"))
            if state == 3:
                self._begin(client, int(client.odb_get("/Runinfo/Run number")))
            else:
                sink.status("connected", "no run in progress")
            while not stop.is_set():
                sink.heartbeat()
                while self._outbox:
                    text, is_error = self._outbox.popleft()
                    client.msg(text, is_error=is_error)
                got = self._receive(client, handle, sink)
                client.communicate(0 if got else self.communicate_ms)
        finally:
            try:
                client.disconnect()
            except Exception as exc:  # already gone: nothing to close
                log.debug("disconnect failed: %s", exc)

    def _receive(self, client: Any, handle: int, sink: SourceSink) -> bool:
        from cygno_online.midas.event import parse_event

        try:
            ev = client.receive_event(handle, async_flag=self.receive_timeout_ms, use_numpy=True)
        except ValueError as exc:
            # The bindings' unpacker rejects STRING/STRUCT/ARRAY banks.
            self.unpack_errors += 1
            log.warning("%s: event not unpackable by the MIDAS bindings: %s", self.name, exc)
            return True
        if ev is None:
            return False
        received = time.time_ns()
        try:
            event = parse_event(event_bytes(ev), source=self.name, offset=0)
        except Exception as exc:
            self.unpack_errors += 1
            log.warning(
                "%s: serial %s: unreadable event: %s",
                self.name,
                getattr(ev.header, "serial_number", "?"),
                exc,
            )
            return True
        sink.event(event, received)
        return True

    def _begin(self, client: Any, run: int) -> None:
        from cygno_online.decode.runinfo import run_info_from_odb

        sink = self._sink
        if self._run_open:
            sink.end_run(None, complete=False)
        odb = None
        try:
            from cygno_online.midas.odb import Odb

            tree = {}
            for path in ("/Runinfo", "/Experiment", "/Configurations"):
                with contextlib.suppress(KeyError):
                    tree[path.strip("/")] = client.odb_get(path)
            equipment = {}
            try:
                for name, eq in (client.odb_get("/Equipment", recurse_dir=True) or {}).items():
                    if isinstance(eq, dict) and "Settings" in eq:
                        equipment[name] = {"Settings": eq["Settings"]}
            except KeyError:
                pass
            tree["Equipment"] = equipment
            odb = Odb(tree)
            start = int(tree.get("Runinfo", {}).get("Start time binary", 0) or time.time())
        except Exception as exc:
            log.warning("run %s: reading the ODB failed (%s); using defaults", run, exc)
            start = int(time.time())
        info = run_info_from_odb(
            odb, run=int(run), time_stamp=start, source=self.name, experiment=self.experiment
        )
        self._run_open = True
        sink.begin_run(info)
        sink.status("running", f"run {run}")

    def _end(self, run: int) -> None:
        if self._run_open:
            self._sink.end_run(time.time_ns(), complete=True)
            self._run_open = False
        self._sink.status("connected", f"run {run} stopped")
