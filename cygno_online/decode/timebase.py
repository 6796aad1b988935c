"""Absolute event times (:attr:`EventContext.time_ns`).

MIDAS header time stamps are Unix seconds, except in CYGNO-04 where the
first trigger event of a run carries a TIME bank (UINT32 Unix seconds of "time
zero") and every later trigger-event time stamp counts milliseconds since
that time zero. Modes, chosen per event id:

``seconds``
    ``time_stamp * 1e9``.
``cygno04_ms``
    ``(t0 + time_stamp/1000) * 1e9``; before any TIME bank of the run, t0 is
    the run start time.
``auto`` (default)
    ``seconds`` until a TIME bank is seen in this event id during the run,
    ``cygno04_ms`` from that event on (the TIME event included: its own stamp
    is already relative to the time zero it announces). Slow-control events
    never carry TIME, so they stay in seconds.
"""

from __future__ import annotations

MODES = ("seconds", "cygno04_ms", "auto")
NS = 1_000_000_000


class TimeBase:
    def __init__(self, modes: dict[int, str] | None = None, default: str = "auto") -> None:
        self.modes = dict(modes or {})
        self.default = default
        self.t0_s: int | None = None
        self.run_start_ns = 0
        #: event ids that switched to milliseconds in this run (auto mode)
        self._ms_ids: set[int] = set()

    def begin_run(self, start_time_ns: int) -> None:
        self.t0_s = None
        self.run_start_ns = int(start_time_ns)
        self._ms_ids.clear()

    def mode(self, event_id: int) -> str:
        return self.modes.get(event_id, self.default)

    def set_time_zero(self, event_id: int, t0_s: int) -> None:
        """A TIME bank was decoded in an event of ``event_id``."""
        self.t0_s = int(t0_s)
        self._ms_ids.add(event_id)

    def time_ns(self, event_id: int, time_stamp: int) -> int:
        mode = self.mode(event_id)
        if mode == "cygno04_ms" or (mode == "auto" and event_id in self._ms_ids):
            base = self.t0_s * NS if self.t0_s is not None else self.run_start_ns
            return base + int(time_stamp) * 1_000_000
        return int(time_stamp) * NS
