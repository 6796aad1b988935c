"""The MIDAS reader process: one MIDAS session, then exit.

Started by the daemon's supervisor (:mod:`cygno_online.sources.midas_live`)
as ``python -m cygno_online.sources.midas_reader CONFIG_JSON`` with the
hand-off socket and the slots' memfd inherited. libmidas lives only here, so
nothing it does can touch the daemon: its abort() on vanished shared memory,
its SIGINT/SIGTERM handler, its process-wide transition table (a new session
is a fresh process) and its blocking calls.

The loop alternates bounded work and yields: receive (``flag`` 1 = return at
once) into free slots for at most ``budget_ms``, then ``communicate(ms > 0)``,
the only place libmidas serves run transitions and shutdown requests
(``communicate(0)`` does nothing). So a transition waits at most about
``budget_ms`` + the yield, whatever the event rate. The transition callbacks
only record the run: the ODB is read right after the yield, before the next
event, so the run control is not kept waiting by ODB reads.

Raw events: the receive call writes the event exactly as the frontend sent it
into the slot; the bindings' unpacker (which raises on STRING/STRUCT/ARRAY
banks) is never used. An event larger than a slot (``BM_TRUNCATED``) is
reported as a skip, never as the end of the session.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections import deque
from typing import Any

from cygno_online.sources.midas_bindings import IncompatibleBindings, check_bindings
from cygno_online.sources.midas_handoff import (
    EXIT_BUG,
    EXIT_CONNECT,
    EXIT_DONE,
    EXIT_INCOMPATIBLE,
    EXIT_LOST,
    Channel,
    Slots,
)

#: ODB sections a run's RunInfo is built from
RUN_PATHS = ("/Runinfo", "/Experiment", "/Configurations")
TRANSITION_SEQUENCE = 500


class StopRequested(Exception):
    pass


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: SIGKILL when the daemon dies, so a reader never
    # outlives it (holding a MIDAS client slot).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def read_run_odb(client: Any) -> dict[str, Any]:
    """The parts of the ODB a run's RunInfo needs (missing keys skipped)."""
    tree: dict[str, Any] = {}
    for path in RUN_PATHS:
        with contextlib.suppress(KeyError):
            tree[path.strip("/")] = client.odb_get(path)
    equipment: dict[str, Any] = {}
    try:
        eqs = client.odb_get("/Equipment", recurse_dir=True) or {}
        for name, eq in eqs.items():
            if isinstance(eq, dict) and "Settings" in eq:
                equipment[name] = {"Settings": eq["Settings"]}
    except KeyError:
        pass
    tree["Equipment"] = equipment
    return tree


class Reader:
    def __init__(self, cfg: dict[str, Any], ch: Channel, slots: Slots) -> None:
        self.cfg = cfg
        self.ch = ch
        self.slots = slots
        self.budget_s = cfg.get("budget_ms", 20) / 1000.0
        self.idle_ms = max(1, int(cfg.get("communicate_ms", 10)))
        self.transitions: list[tuple[str, int, int]] = []
        self.counts = {"received": 0, "no_slot": 0, "oversized": 0}
        #: slots the reader may fill (the daemon gives each back with "free")
        self.free: deque[int] = deque(range(slots.n))
        self.scratch = ctypes.create_string_buffer(slots.slot_size)
        self.arrays = [
            (ctypes.c_char * slots.slot_size).from_buffer(slots.map, slots.offset(i))
            for i in range(slots.n)
        ]

    def run(self, b: Any) -> int:
        midas = b.midas
        cfg = self.cfg
        try:
            client = b.client.MidasClient(
                cfg["client_name"], host_name=cfg.get("host"), expt_name=cfg.get("experiment")
            )
        except Exception as exc:
            self.ch.send(["connect_failed", f"{type(exc).__name__}: {exc}"])
            return EXIT_CONNECT
        try:
            return self._session(client, midas, b.status)
        except SystemExit:
            self._flush_transitions(None)
            # communicate() answered a shutdown request (odbedit "shutdown",
            # "shutdown all", a signal): it has disconnected already.
            self.ch.send(["ended", "shutdown", "MIDAS shutdown request", self.counts])
            return EXIT_DONE
        except StopRequested:
            self._disconnect(client)
            self.ch.send(["ended", "stopped", "stop requested by the daemon", self.counts])
            return EXIT_DONE
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self._disconnect(client)
            return EXIT_DONE  # the daemon is gone
        except midas.MidasError as exc:
            self._flush_transitions(None)
            self._disconnect(client)
            self.ch.send(["ended", "lost", f"MidasError {exc.code}: {exc}", self.counts])
            return EXIT_LOST

    @staticmethod
    def _disconnect(client: Any) -> None:
        with contextlib.suppress(Exception):
            client.disconnect()

    def _session(self, client: Any, midas: Any, status: dict[str, int]) -> int:
        cfg = self.cfg
        sampling = {
            "nonblocking": midas.GET_NONBLOCKING,
            "all": midas.GET_ALL,
            "recent": midas.GET_RECENT,
        }
        handle = client.open_event_buffer(cfg["buffer"], max_event_size=self.slots.slot_size - 100)
        for r in cfg["requests"]:
            client.register_event_request(
                handle,
                event_id=r["event_id"],
                trigger_mask=r["trigger_mask"],
                sampling_type=sampling[r["sampling"]],
            )
        client.register_transition_callback(
            midas.TR_START,
            TRANSITION_SEQUENCE,
            lambda c, run: self.transitions.append(("start", int(run), time.time_ns())),
        )
        client.register_transition_callback(
            midas.TR_STOP,
            TRANSITION_SEQUENCE,
            lambda c, run: self._on_stop(int(run)),
        )
        state = int(client.odb_get("/Runinfo/State"))
        run = int(client.odb_get("/Runinfo/Run number"))
        self.ch.send(["connected", state, run, read_run_odb(client), os.getpid()])
        async_return = status["BM_ASYNC_RETURN"]
        truncated = status["BM_TRUNCATED"]
        receive = client.lib.c_bm_receive_event
        size = ctypes.c_int(0)
        size_ref = ctypes.byref(size)
        flag = ctypes.c_int(1)
        room = self.slots.slot_size
        next_stats = time.monotonic() + 1.0
        while True:
            got = 0
            deadline = time.monotonic() + self.budget_s
            while time.monotonic() < deadline:
                if not self.free:
                    self._commands(client)  # slots the daemon gave back
                # LIFO: the slot given back last is reused first, so at LIME
                # rates only one or two slots' pages are ever touched
                slot = self.free.pop() if self.free else None
                target = self.arrays[slot] if slot is not None else self.scratch
                size.value = room
                try:
                    receive(handle, ctypes.byref(target), size_ref, flag)
                except midas.MidasError as exc:
                    if slot is not None:
                        self.free.append(slot)  # still empty
                    if exc.code == async_return:
                        break
                    if exc.code == truncated:
                        self.counts["oversized"] += 1
                        # the header (first 16 bytes) arrived: name the event
                        eid, _mask, serial = struct.unpack_from("<HHI", target, 0)
                        self.ch.send(["skip", "oversized", int(size.value), room, serial, eid])
                        continue
                    raise
                got += 1
                self.counts["received"] += 1
                if slot is None:
                    self.counts["no_slot"] += 1
                    continue
                # the daemon owns the slot until it sends "free"
                self.ch.send(["ev", slot, int(size.value), time.time_ns()])
            client.communicate(1 if got else self.idle_ms)
            self._flush_transitions(client)
            self._commands(client)
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + 1.0
                self.ch.send(["stats", self.counts, self.slots.n - len(self.free)])

    def _on_stop(self, run: int) -> None:
        # sent at once (the session may end before the yield returns), after
        # a start recorded in the same yield
        self._flush_transitions(None)
        self.ch.send(["stop", run, None, time.time_ns()])

    def _flush_transitions(self, client: Any | None) -> None:
        """Send the recorded run starts with their ODB (read now, after the
        yield: the run control is not kept waiting); ``client=None`` when the
        session is over (the start is still reported, without ODB)."""
        while self.transitions:
            kind, run, t_ns = self.transitions.pop(0)
            tree = None
            if client is not None:
                tree = read_run_odb(client)
            self.ch.send([kind, run, tree, t_ns])

    def _commands(self, client: Any) -> None:
        while True:
            ready, _, _ = select.select([self.ch.sock], [], [], 0)
            if not ready:
                return
            for msg in self.ch.read_available():
                if msg[0] == "free":
                    self.free.append(int(msg[1]))
                elif msg[0] == "stop":
                    raise StopRequested
                elif msg[0] == "msg":
                    client.msg(msg[1], is_error=bool(msg[2]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg = json.loads(argv[0])
    _die_with_parent()
    # the terminal's Ctrl-C is the daemon's business (until libmidas
    # installs its own handler at connect)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ch = Channel(socket.socket(fileno=cfg["sock_fd"]))
    slots = Slots(cfg["slots"], cfg["slot_size"], fd=cfg["shm_fd"])
    try:
        b = check_bindings()
    except IncompatibleBindings as exc:
        ch.send(["incompatible", exc.missing])
        return EXIT_INCOMPATIBLE
    try:
        return Reader(cfg, ch, slots).run(b)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return EXIT_DONE
    except Exception as exc:
        with contextlib.suppress(OSError):
            ch.send(["ended", "bug", f"{type(exc).__name__}: {exc}", {}])
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
