"""Live events from MIDAS: the daemon's side, a supervisor of reader processes.

libmidas never runs in the daemon. Each MIDAS session is one reader process
(:mod:`cygno_online.sources.midas_reader`) started here: it connects, reads
events straight into shared slots (:mod:`cygno_online.sources.midas_handoff`)
and reports connection state, run transitions with their ODB, skipped events
and counters over a socket. Whatever ends a session (a MIDAS shutdown
request, ``shutdown all``, the experiment or mserver gone, the shared memory
gone and libmidas's abort(), a crash or SIGKILL of the reader, a reader that
stopped making progress) ends only that process: the supervisor starts a new
one after ``retry.initial_s`` doubling up to ``retry.max_s`` (defaults 0.5 s
and 2 s, so events flow again within a few seconds of the experiment being
back), for ever. A fresh process also gets a fresh libmidas: its
process-wide transition table and its signal handler cannot block a
reconnect or the daemon's own SIGTERM handling.

Source states (``health.source_state``, the ``monitor`` metric, log lines):
``connecting``, ``connected`` (no run), ``running``, ``disconnected``
(waiting for the experiment; the detail says why and when the next try is),
``incompatible`` (the MIDAS install lacks something: one ERROR naming it; no
connection is retried, the install is checked again every
``recheck_incompatible_s``).

Runs: TR_START/TR_STOP begin and end runs. A run open when a session ends is
kept open; when the next session finds the same run still running it simply
continues (one summary), otherwise it is closed as incomplete. A run found
"running" in the ODB at connect is opened only when its first event arrives:
``shutdown all`` can leave ``/Runinfo/State`` at 3 with no run taking data,
and such a stale state never makes a phantom run.

Events: copied once out of their slot (the slot is free at once, so no
analysis can hold one) and parsed by :func:`cygno_online.midas.event.parse_event`:
bank formats as sent, STRING/STRUCT/ARRAY banks kept as in files. Oversized
events (``BM_TRUNCATED``), unparsable events and events dropped for want of a
free slot are counted by kind (``describe()["skipped"]``) and logged
summarised; none ends a session.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from typing import Any

from cygno_online.daemon.health import memory as proc_memory
from cygno_online.sources.base import Source, SourceSink
from cygno_online.sources.midas_handoff import (
    EXIT_BUG,
    EXIT_CONNECT,
    EXIT_INCOMPATIBLE,
    EXIT_LOST,
    Channel,
    Slots,
)

log = logging.getLogger(__name__)

STATE_RUNNING = 3


def exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    if returncode == 134:
        return "aborted (exit 134)"
    return {
        0: "ended",
        EXIT_INCOMPATIBLE: "incompatible MIDAS install",
        EXIT_CONNECT: "could not connect",
        EXIT_LOST: "session lost",
        EXIT_BUG: "reader error",
    }.get(returncode, f"exit {returncode}")


class _Summarised:
    """One log line for the first problem of a kind, then one line per
    ``every_s`` with the count of the further ones."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self.pending: Counter[str] = Counter()
        self._next = 0.0

    def note(self, kind: str, text: str, first: bool) -> None:
        if first:
            log.warning("%s", text)
        else:
            self.pending[kind] += 1

    def flush(self, name: str, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self.every_s
        for kind, n in sorted(self.pending.items()):
            log.warning(
                "%s: %d more %s events skipped in the last %.0f s", name, n, kind, self.every_s
            )
        self.pending.clear()


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
        retry_initial_s: float = 0.5,
        retry_max_s: float = 2.0,
        experiment: str | None = None,
        slots: int = 8,
        budget_ms: int = 20,
        env: dict[str, str] | None = None,
        stop_grace_s: float = 1.0,
        reader_timeout_s: float = 10.0,
        recheck_incompatible_s: float = 30.0,
    ) -> None:
        from cygno_online.daemon.config import MidasRequest

        self.buffer = buffer
        self.client_name = client_name
        self.host = host
        self.expt_name = expt_name
        self.requests = requests or [MidasRequest()]
        self.max_event_size = max_event_size
        #: kept for configuration compatibility: the reader never blocks in
        #: a receive (it polls and yields instead)
        self.receive_timeout_ms = receive_timeout_ms
        self.communicate_ms = max(1, communicate_ms)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.experiment = experiment
        self.n_slots = slots
        self.budget_ms = budget_ms
        #: extra environment of the reader process (tests: the stand-in's)
        self.env = dict(env or {})
        self.stop_grace_s = stop_grace_s
        self.reader_timeout_s = reader_timeout_s
        self.recheck_incompatible_s = recheck_incompatible_s
        self.name = f"midas:{buffer}"
        self.sampling = self.requests[0].sampling
        #: sessions that reached "connected"
        self.connects = 0
        #: connection attempts that failed
        self.failures = 0
        #: how sessions ended, by reason
        self.session_ends: Counter[str] = Counter()
        #: events skipped by kind: oversized, corrupt, no_slot
        self.skipped: Counter[str] = Counter()
        self.events = 0
        #: what is missing from the MIDAS install (state ``incompatible``)
        self.incompatible: list[str] = []
        self.reader_pid: int | None = None
        #: slots filled by the reader and not yet given back (its last report)
        self.slots_in_use = 0
        self.state = "starting"
        self.reader_counts: dict[str, int] = {}
        self.message_drops = 0
        self.slots: Slots | None = None
        self._outbox: deque[tuple[str, bool]] = deque(maxlen=1000)
        self._sink: SourceSink | None = None
        self._run: Any = None
        self._pending: tuple[int, dict] | None = None
        self._summary = _Summarised()
        self._lock = threading.Lock()
        self._wd: Any = None
        self._supervisor: threading.Thread | None = None

    @classmethod
    def from_config(cls, c: Any, experiment: str | None = None) -> MidasLiveSource:
        kw = {k: getattr(c, k) for k in ("slots", "budget_ms") if getattr(c, k, None) is not None}
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
            **kw,
        )

    def attach_watchdog(self, watchdog: Any, stall_s: float) -> None:
        """Register the reader process with the daemon's progress watchdog.
        It beats whenever the reader reports (at least once a second while
        connected) and while no reader is needed (waiting to reconnect). A
        reader without progress is killed here after ``reader_timeout_s``
        and replaced; the watchdog sees a stall only if that fails too."""
        self._wd = watchdog.register(
            "reader", stall_s=max(stall_s, 2 * self.reader_timeout_s), alive=self._supervising
        )
        self._wd.beat()

    def _supervising(self) -> bool:
        return self._supervisor is None or self._supervisor.is_alive()

    def _beat(self, detail: str | None = None) -> None:
        if self._wd is not None:
            self._wd.beat(detail)

    def send_message(self, text: str, is_error: bool = False) -> None:
        with self._lock:
            if len(self._outbox) == self._outbox.maxlen:
                self.message_drops += 1
            self._outbox.append((text, is_error))

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        pid = self.reader_pid
        d.update(
            buffer=self.buffer,
            connects=self.connects,
            failures=self.failures,
            session_ends=dict(self.session_ends),
            skipped=dict(self.skipped),
            events=self.events,
            reader_pid=pid,
            reader_counts=dict(self.reader_counts),
            reader_memory=proc_memory(pid) if pid else {},
            slots=self.n_slots,
            slots_in_use=self.slots_in_use,
            message_drops=self.message_drops,
            incompatible=list(self.incompatible),
        )
        return d

    # -- the supervisor (source thread) --------------------------------------------------
    def run(self, sink: SourceSink, stop: threading.Event) -> None:
        self._sink = sink
        self._supervisor = threading.current_thread()
        self.slots = Slots(self.n_slots, self.max_event_size + 100)
        backoff = self.retry_initial_s
        try:
            while not stop.is_set():
                outcome = self._session(sink, stop)
                if stop.is_set():
                    break
                if outcome == "incompatible":
                    wait = self.recheck_incompatible_s
                elif outcome == "connected":
                    backoff = self.retry_initial_s  # it worked: retry at once
                    wait = backoff
                else:
                    wait = backoff
                    backoff = min(backoff * 2, self.retry_max_s)
                self._wait(sink, stop, wait)
        finally:
            if self._wd is not None:
                self._wd.done()
            slots, self.slots = self.slots, None
            if slots is not None:
                # a view still exported: freed with the process
                with contextlib.suppress(BufferError):
                    slots.close()

    def _status(self, sink: SourceSink, state: str, detail: str) -> None:
        self.state = state
        sink.status(state, detail)

    def _wait(self, sink: SourceSink, stop: threading.Event, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            stop.wait(min(0.25, left))
            sink.heartbeat()
            self._beat("waiting to reconnect")

    def _spawn(self) -> tuple[subprocess.Popen, Channel]:
        self.reader_counts = {}
        self.slots_in_use = 0
        parent, child = socket.socketpair()
        cfg = {
            "sock_fd": child.fileno(),
            "shm_fd": self.slots.fd,
            "slots": self.n_slots,
            "slot_size": self.slots.slot_size,
            "buffer": self.buffer,
            "client_name": self.client_name,
            "host": self.host,
            "experiment": self.expt_name,
            "requests": [
                {"event_id": r.event_id, "trigger_mask": r.trigger_mask, "sampling": r.sampling}
                for r in self.requests
            ],
            "communicate_ms": self.communicate_ms,
            "budget_ms": self.budget_ms,
        }
        os.set_inheritable(self.slots.fd, True)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cygno_online.sources.midas_reader", json.dumps(cfg)],
                pass_fds=(child.fileno(), self.slots.fd),
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                # the terminal's Ctrl-C and systemd's SIGTERM go to the daemon,
                # which stops the reader itself
                start_new_session=True,
            )
        finally:
            child.close()
            os.set_inheritable(self.slots.fd, False)
        return proc, Channel(parent)

    def _session(self, sink: SourceSink, stop: threading.Event) -> str:
        if self.state not in ("disconnected", "incompatible"):
            self._status(sink, "connecting", f"starting a MIDAS reader for {self.buffer}")
        proc, ch = self._spawn()
        self.reader_pid = proc.pid
        st = {
            "outcome": "failed",
            "ended": None,
            "last": time.monotonic(),
            "connected": False,
            "ch": ch,
        }
        try:
            while True:
                sink.heartbeat()
                if stop.is_set():
                    self._stop_reader(proc, ch)
                    break
                if st["connected"]:
                    self._flush_outbox(ch)
                try:
                    ready, _, _ = select.select([ch], [], [], 0.2)
                except (OSError, ValueError):
                    break
                now = time.monotonic()
                if ready:
                    try:
                        msgs = ch.read_available()
                    except (EOFError, OSError):
                        break
                    st["last"] = now
                    self._beat()
                    for m in msgs:
                        try:
                            self._handle(m, st, sink)
                        except Exception as exc:
                            # one odd message (an ODB the run info cannot
                            # use...) must not end the supervision
                            first = self.skipped["bad_message"] == 0
                            self.skipped["bad_message"] += 1
                            kind = m[0] if isinstance(m, list) and m else "?"
                            self._summary.note(
                                "bad_message",
                                f"{self.name}: reader message {kind!r} not usable: "
                                f"{type(exc).__name__}: {exc}",
                                first,
                            )
                elif proc.poll() is not None:
                    break
                elif now - st["last"] > self.reader_timeout_s:
                    log.error(
                        "%s: the MIDAS reader (pid %d) made no progress for %.0f s: killed",
                        self.name,
                        proc.pid,
                        self.reader_timeout_s,
                    )
                    st["ended"] = ("hung", "no progress")
                    proc.kill()
                    break
                self._summary.flush(self.name, now)
        finally:
            ch.close()
            try:
                proc.wait(self.stop_grace_s + 1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            self.reader_pid = None
        if stop.is_set():
            return "stopped"
        return self._session_ended(proc.returncode, st, sink)

    def _session_ended(self, rc: int, st: dict[str, Any], sink: SourceSink) -> str:
        if st["outcome"] == "incompatible":
            return "incompatible"
        ended = st["ended"]
        if ended is not None:
            reason, text = ended
        elif st["connected"]:
            reason, text = "crash", f"the MIDAS reader {exit_reason(rc)}"
        else:
            reason, text = "crash", f"the MIDAS reader {exit_reason(rc)} before connecting"
        if not st["connected"]:
            # no session: a failed attempt. The state and its detail repeat
            # identically while the experiment is away: one log line, not one
            # per attempt.
            if reason != "connect_failed":
                self.failures += 1
            if reason == "hung":
                text = f"no answer from MIDAS within {self.reader_timeout_s:g} s"
            self._status(sink, "disconnected", f"{text}; retrying")
            return "failed"
        self.session_ends[reason] += 1
        if self._run is not None:
            text += f"; run {self._run.run} kept open until the experiment is back"
        log.warning("%s: session ended: %s", self.name, text)
        self._status(sink, "disconnected", f"{text}; reconnecting")
        return "connected" if st["connected"] else "failed"

    def _stop_reader(self, proc: subprocess.Popen, ch: Channel) -> None:
        """Ask the reader to disconnect; SIGKILL it after ``stop_grace_s``
        (never SIGTERM: libmidas's handler would swallow it)."""
        with contextlib.suppress(OSError):
            ch.send(["stop"])
        try:
            proc.wait(self.stop_grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()

    def _flush_outbox(self, ch: Channel) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    return
                text, is_error = self._outbox.popleft()
            try:
                ch.send(["msg", text, is_error])
            except OSError:
                return

    # -- messages from the reader ----------------------------------------------------------
    def _handle(self, m: list, st: dict[str, Any], sink: SourceSink) -> None:
        kind = m[0]
        if kind == "ev":
            self._event(m[1], m[2], m[3], sink, st["ch"])
        elif kind == "skip":
            self._skip(m[1], m[2:], sink)
        elif kind == "stats":
            self._reader_counts(dict(m[1]))
            self.slots_in_use = int(m[2])
        elif kind == "start":
            if self._run is not None:
                sink.end_run(None, complete=False)
            self._pending = None
            self._begin(m[1], m[2] or {}, sink)
        elif kind == "stop":
            if self._run is not None:
                sink.end_run(int(m[3]), complete=True)
                self._run = None
            self._pending = None
            self._status(sink, "connected", f"run {m[1]} stopped")
        elif kind == "connected":
            st["connected"] = True
            st["outcome"] = "connected"
            self.connects += 1
            if self.incompatible:
                log.info("%s: the MIDAS install is usable now", self.name)
                self.incompatible = []
            self._connected(int(m[1]), int(m[2]), m[3] or {}, sink)
        elif kind == "ended":
            st["ended"] = (m[1], m[2])
            self._reader_counts(dict(m[3] or {}))
        elif kind == "connect_failed":
            self.failures += 1
            st["ended"] = ("connect_failed", m[1])
            self._status(sink, "disconnected", f"{m[1]}; retrying")
        elif kind == "incompatible":
            st["outcome"] = "incompatible"
            missing = list(m[1])
            if missing != self.incompatible:
                log.error("%s: MIDAS bindings unusable: %s", self.name, "; ".join(missing))
            self.incompatible = missing
            self._status(sink, "incompatible", "; ".join(missing))

    def _reader_counts(self, counts: dict[str, int]) -> None:
        # per-session counters of the reader; drops for want of a free slot
        # join the source's skip counts
        before = self.reader_counts.get("no_slot", 0)
        now = counts.get("no_slot", before)
        if now > before:
            first = self.skipped["no_slot"] == 0
            self.skipped["no_slot"] += now - before
            self._summary.note(
                "no_slot",
                f"{self.name}: {now - before} events dropped: every hand-off slot busy "
                "(analysis slower than the event rate)",
                first,
            )
        self.reader_counts = counts

    def _connected(self, state: int, run: int, tree: dict, sink: SourceSink) -> None:
        if self._run is not None:
            if state == STATE_RUNNING and run == self._run.run:
                log.info("%s: run %d continues after the reconnection", self.name, run)
                self._status(sink, "running", f"run {run}")
                return
            sink.end_run(None, complete=False)
            self._run = None
        if state == STATE_RUNNING:
            # maybe stale (shutdown all leaves it): the run opens with its first event
            self._pending = (run, tree)
            self._status(
                sink, "connected", f"ODB says run {run} is running; waiting for its events"
            )
        else:
            self._pending = None
            self._status(sink, "connected", "no run in progress")

    def _begin(self, run: int, tree: dict, sink: SourceSink) -> None:
        from cygno_online.decode.runinfo import run_info_from_odb
        from cygno_online.midas.odb import Odb

        try:
            odb = Odb(tree)
            start = int(tree.get("Runinfo", {}).get("Start time binary", 0) or time.time())
        except Exception as exc:
            log.warning("run %s: unusable ODB (%s); using defaults", run, exc)
            odb, start = None, int(time.time())
        info = run_info_from_odb(
            odb, run=int(run), time_stamp=start, source=self.name, experiment=self.experiment
        )
        self._run = info
        sink.begin_run(info)
        self._status(sink, "running", f"run {run}")

    def _event(self, slot: int, size: int, received_ns: int, sink: SourceSink, ch: Channel) -> None:
        from cygno_online.midas.event import parse_event

        data = self.slots.take(slot, size)
        with contextlib.suppress(OSError):  # a dead reader needs no slot back
            ch.send(["free", slot])
        if self._pending is not None and self._run is None:
            run, tree = self._pending
            self._pending = None
            self._begin(run, tree, sink)
        try:
            event = parse_event(data, source=self.name, offset=0)
        except Exception as exc:
            first = self.skipped["corrupt"] == 0
            self.skipped["corrupt"] += 1
            run = self._run.run if self._run is not None else "-"
            self._summary.note(
                "corrupt", f"{self.name}: run {run}: unreadable event skipped: {exc}", first
            )
            return
        self.events += 1
        sink.event(event, received_ns)

    def _skip(self, kind: str, info: list, sink: SourceSink) -> None:
        first = self.skipped[kind] == 0
        self.skipped[kind] += 1
        run = self._run.run if self._run is not None else "-"
        if kind == "oversized":
            size, room, serial, event_id = (list(info) + [None] * 4)[:4]
            text = (
                f"{self.name}: run {run} serial {serial} (event id {event_id}): event of "
                f"{size} bytes larger than the receive buffer ({room} bytes, "
                "source.midas.max_event_size): skipped"
            )
        else:
            text = f"{self.name}: run {run}: {kind} event skipped"
        self._summary.note(kind, text, first)
