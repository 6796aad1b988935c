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

Point times (:attr:`EventContext.point_ns`, the time of every InfluxDB point
of an event) add a deterministic sub-second part taken from the event itself
to the stamp, so that events of one kind in the same second are distinct
points and a replay of the same file rewrites exactly the same points (see
:func:`point_time_ns` and docs/influx-schema.md).
"""

from __future__ import annotations

MODES = ("seconds", "cygno04_ms", "auto")
NS = 1_000_000_000
MS = 1_000_000
#: serials that share one second (millisecond) of stamp without colliding
SLOTS = 1000


def point_time_ns(stamp_ns: int, serial: int, event_id: int, resolution_ns: int) -> int:
    """The point time of an event: its stamp plus a slot inside the stamp's
    resolution, derived from the event itself (never from the clock).

    * second stamps: ``+ (serial mod 1000) ms + (event_id mod 1000) us`` -
      up to 1000 events of one event id per second are distinct points even
      on a millisecond server (VictoriaMetrics), and events of different ids
      never share a nanosecond;
    * millisecond stamps (CYGNO-04): ``+ (serial mod 1000) us + (event_id mod
      1000) ns`` - the point stays inside its millisecond.

    MIDAS serials count up per event id, so two events of one id within one
    stamp differ in ``serial mod 1000`` unless 1000 of them share the stamp.
    """
    serial = int(serial) % SLOTS
    eid = int(event_id) % SLOTS
    if resolution_ns >= NS:
        return int(stamp_ns) + serial * MS + eid * 1000
    return int(stamp_ns) + serial * 1000 + eid


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

    def resolution_ns(self, event_id: int) -> int:
        """Resolution of this event id's stamps right now (1 s or 1 ms)."""
        mode = self.mode(event_id)
        if mode == "cygno04_ms" or (mode == "auto" and event_id in self._ms_ids):
            return MS
        return NS

    def time_ns(self, event_id: int, time_stamp: int) -> int:
        if self.resolution_ns(event_id) == MS:
            base = self.t0_s * NS if self.t0_s is not None else self.run_start_ns
            return base + int(time_stamp) * 1_000_000
        return int(time_stamp) * NS

    def point_ns(self, event_id: int, time_stamp: int, serial: int) -> int:
        """The point time of this event (see :func:`point_time_ns`)."""
        return point_time_ns(
            self.time_ns(event_id, time_stamp), serial, event_id, self.resolution_ns(event_id)
        )
