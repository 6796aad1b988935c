"""DAQ-health analyzer (plugin ``daqhealth``).

Consumes one :class:`~cygno_online.decode.items.EventSeen` per event and
watches the DAQ through the monitor's eyes: events seen, rates, throughput,
serial-number gaps, lag, decode errors and the camera frame period.

Serial gaps. MIDAS numbers the events of each equipment (event id)
consecutively, so a jump of the serial means events we never saw. Who lost
them depends on how we read:

* events the *monitor itself* dropped (its bounded queue was full) are
  reported by the host through :meth:`DaqHealthAnalyzer.note_dropped` -> they
  count as ``monitor_dropped``; a note may arrive before or after the gap shows
  up, both are matched;
* the rest of the gap, with ``sampling: nonblocking`` or ``recent``
  (GET_NONBLOCKING / GET_RECENT), is ``sampled_out``: the DAQ buffer
  overwrote them before we asked - normal, by design;
* with ``sampling: all`` (GET_ALL), ``file`` (replay) or ``simulator`` every
  event should have reached us, so the rest is ``daq_lost``: a gap written into
  the data stream by the DAQ.

The sampling mode is the parameter ``sampling``; when absent the host's
``env.options["sampling"]`` is used, else ``nonblocking``.

Rates use event time stamps (``ctx.time_ns``; MIDAS stamps have 1 s
resolution, so rates are meaningful over the ``window_s`` sliding window, not
per event). ``rate_hz`` counts events *seen*; ``daq_rate_hz`` uses the serial
progression, i.e. the DAQ's own rate whatever we sampled. The camera frame
period is ``1 / daq_rate_hz`` of event ids that carry camera banks (``CAM*``),
compared with the run's configured exposure.

Lag (``lag_s``: monitor receive time minus event time) is only reported for
live sampling: for a replayed file it would be the file's age.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cygno_online.analysis.catalogue import CatalogueContext, SeriesSpec, fields_from_units
from cygno_online.analysis.outputs import Metric, Output
from cygno_online.analysis.plugin import Analyzer, AnalyzerEnv, Flow
from cygno_online.decode.items import EventSeen, RunInfo
from cygno_online.params import Params

SAMPLING_MODES = ("nonblocking", "recent", "all", "file", "simulator")
#: modes in which the monitor may legitimately miss events between reads
LOSSY_SAMPLING = ("nonblocking", "recent")

UNITS = {
    "events_seen": "",
    "size_bytes": "B",
    "rate_hz": "Hz",
    "daq_rate_hz": "Hz",
    "bytes_per_s": "B/s",
    "missing": "",
    "sampled_out": "",
    "daq_lost": "",
    "monitor_dropped": "",
    "serial_resets": "",
    "decode_errors": "",
    "lag_s": "s",
    "run_duration_s": "s",
    "frame_period_s": "s",
    "exposure_s": "s",
    "frame_overhead_s": "s",
}
DESCRIPTIONS = {
    "events_seen": "events of this id seen in the run (counter)",
    "rate_hz": "events seen per second (sliding window)",
    "daq_rate_hz": "the DAQ's rate from the serial progression",
    "missing": "serial gaps (counter)",
    "sampled_out": "gaps by design of nonblocking sampling (counter)",
    "daq_lost": "gaps written into the data stream (counter)",
    "monitor_dropped": "events the monitor dropped itself (counter)",
    "lag_s": "receive time minus event time (live only)",
}
RUN_UNITS = {"state": "", "run_number": "", "pedestal": "", "exposure_s": "s", "description": ""}


@dataclass(slots=True)
class _IdState:
    seen: int = 0
    bytes: int = 0
    first_serial: int | None = None
    last_serial: int | None = None
    missing: int = 0
    sampled_out: int = 0
    daq_lost: int = 0
    monitor_dropped: int = 0
    serial_resets: int = 0
    #: monitor drops reported before the gap that explains them appeared
    pending_drops: int = 0
    decode_errors: int = 0
    camera: bool = False
    first_time_ns: int | None = None
    last_time_ns: int | None = None
    #: (time_ns, serial, size) of recent events, for the sliding window
    window: deque = field(default_factory=deque)
    #: sum of the sizes in ``window`` (kept, not recomputed: O(1) per event)
    window_bytes: int = 0
    period_sum: float = 0.0
    period_n: int = 0


class DaqHealthAnalyzer(Analyzer):
    name = "daqhealth"
    consumes = (EventSeen,)
    description = "DAQ health: rates, throughput, serial gaps, lag, decode errors, frame period"
    #: run-scoped state, checkpointed so that a run survives a daemon restart
    run_state = ("_ids", "_errors_by_kind", "_lag_sum", "_lag_max", "_lag_n", "_last_time_ns")

    def __init__(self) -> None:
        super().__init__()
        self.sampling = "nonblocking"
        self.window_s = 30.0
        self.run: RunInfo | None = None
        self._lock = threading.Lock()
        self._ids: dict[int, _IdState] = {}
        self._errors_by_kind: Counter[str] = Counter()
        self._lag_sum = 0.0
        self._lag_max = 0.0
        self._lag_n = 0
        self._last_time_ns = 0

    def configure(self, params: Params, env: AnalyzerEnv) -> None:
        host = env.options.get("sampling")
        default = host if host in SAMPLING_MODES else "nonblocking"
        sampling = params.choice("sampling", default, SAMPLING_MODES)
        window_s = float(params.number("window_s", 30.0, minimum=0, exclusive_minimum=True))
        self.env = env
        self.sampling = sampling
        self.window_s = window_s

    # -- host interface --------------------------------------------------------
    def note_dropped(self, event_id: int, n: int = 1) -> None:
        """The host dropped ``n`` events of ``event_id`` itself (queue full,
        analysis too slow). Called from any thread."""
        if n <= 0:
            return
        with self._lock:
            st = self._ids.setdefault(int(event_id), _IdState())
            # A gap already classified by the sampling rule is re-attributed.
            field_name = "sampled_out" if self.sampling in LOSSY_SAMPLING else "daq_lost"
            k = min(n, getattr(st, field_name))
            setattr(st, field_name, getattr(st, field_name) - k)
            st.monitor_dropped += k
            st.pending_drops += n - k

    def export_run_state(self) -> dict[str, Any]:
        # note_dropped runs on the source thread: copy under the lock
        with self._lock:
            return copy.deepcopy(super().export_run_state())

    def import_run_state(self, state: Any) -> None:
        with self._lock:
            super().import_run_state(state)

    # -- run life cycle ----------------------------------------------------------
    def begin_run(self, run: RunInfo) -> Iterable[Output]:
        with self._lock:
            self.run = run
            self._ids = {}
            self._errors_by_kind = Counter()
            self._lag_sum = self._lag_max = 0.0
            self._lag_n = 0
            self._last_time_ns = run.start_time_ns
        fields: dict[str, Any] = {
            "state": "running",
            "run_number": int(run.run),
            "pedestal": bool(run.pedestal),
            "description": run.description or "",
        }
        if run.exposure_s is not None:
            fields["exposure_s"] = float(run.exposure_s)
        return [
            Metric(
                "runs",
                run.start_time_ns,
                run.run,
                0,
                fields,
                {},
                {k: RUN_UNITS[k] for k in fields},
            )
        ]

    # -- per event -------------------------------------------------------------------
    def _gap(self, st: _IdState, serial: int) -> None:
        last = st.last_serial
        if last is None:
            st.first_serial = serial
        elif serial > last + 1:
            gap = serial - last - 1
            st.missing += gap
            mine = min(gap, st.pending_drops)
            st.pending_drops -= mine
            st.monitor_dropped += mine
            rest = gap - mine
            if self.sampling in LOSSY_SAMPLING:
                st.sampled_out += rest
            else:
                st.daq_lost += rest
        elif serial <= last:
            # Restarted frontend or out-of-order replay: start counting anew.
            st.serial_resets += 1
            st.first_serial = serial
            st.window.clear()
            st.window_bytes = 0
        st.last_serial = serial

    def process(self, item: EventSeen, flow: Flow) -> Iterable[Output]:
        ctx = item.ctx
        eid = int(ctx.event_id)
        t = int(ctx.time_ns)
        with self._lock:
            st = self._ids.setdefault(eid, _IdState())
            self._gap(st, int(ctx.serial))
            st.seen += 1
            st.bytes += int(item.size_bytes)
            if st.first_time_ns is None:
                st.first_time_ns = t
            st.last_time_ns = t
            self._last_time_ns = max(self._last_time_ns, t)
            if any(b.startswith("CAM") for b in item.bank_names):
                st.camera = True
            for _bank, kind, _msg in item.errors:
                self._errors_by_kind[kind] += 1
            st.decode_errors += len(item.errors)
            w = st.window
            w.append((t, int(ctx.serial), int(item.size_bytes)))
            st.window_bytes += int(item.size_bytes)
            horizon = t - int(self.window_s * 1e9)
            while len(w) > 1 and w[0][0] < horizon:
                st.window_bytes -= w.popleft()[2]
            fields: dict[str, Any] = {
                "events_seen": st.seen,
                "size_bytes": int(item.size_bytes),
                "missing": st.missing,
                "sampled_out": st.sampled_out,
                "daq_lost": st.daq_lost,
                "monitor_dropped": st.monitor_dropped,
                "serial_resets": st.serial_resets,
                "decode_errors": st.decode_errors,
            }
            span_s = (w[-1][0] - w[0][0]) / 1e9
            if len(w) > 1 and span_s > 0:
                fields["rate_hz"] = (len(w) - 1) / span_s
                # bytes that arrived after the window's first event, per second
                fields["bytes_per_s"] = (st.window_bytes - w[0][2]) / span_s
                fields["daq_rate_hz"] = (w[-1][1] - w[0][1]) / span_s
                if st.camera and w[-1][1] > w[0][1]:
                    period = span_s / (w[-1][1] - w[0][1])
                    fields["frame_period_s"] = period
                    st.period_sum += period
                    st.period_n += 1
                    exposure = self.run.exposure_s if self.run is not None else None
                    if exposure:
                        fields["exposure_s"] = float(exposure)
                        fields["frame_overhead_s"] = period - float(exposure)
            if item.received_ns and self.sampling not in ("file",):
                lag = (int(item.received_ns) - t) / 1e9
                fields["lag_s"] = lag
                self._lag_sum += lag
                self._lag_n += 1
                self._lag_max = max(self._lag_max, lag) if self._lag_n > 1 else lag
            if self.run is not None:
                fields["run_duration_s"] = (t - self.run.start_time_ns) / 1e9
        return [
            Metric(
                "daq",
                t,
                ctx.run,
                ctx.serial,
                fields,
                {"event_id": str(eid)},
                {k: UNITS[k] for k in fields},
            )
        ]

    def catalogue(self, ctx: CatalogueContext) -> list[SeriesSpec]:
        src = f"analyzer {self.instance_name}"
        floats = (
            "rate_hz",
            "daq_rate_hz",
            "bytes_per_s",
            "lag_s",
            "run_duration_s",
            "frame_period_s",
            "exposure_s",
            "frame_overhead_s",
        )
        types = {k: ("float" if k in floats else "int") for k in UNITS}
        run_types = {
            "state": "string",
            "run_number": "int",
            "pedestal": "bool",
            "exposure_s": "float",
            "description": "string",
        }
        return [
            SeriesSpec(
                "daq",
                fields_from_units(UNITS, types, descriptions=DESCRIPTIONS),
                ("event_id",),
                src,
                "one point per event seen, by MIDAS event id",
            ),
            SeriesSpec(
                "runs",
                fields_from_units(RUN_UNITS, run_types),
                (),
                src,
                "one point at each run start (annotations)",
            ),
        ]

    # -- end of run ------------------------------------------------------------------
    def end_run(self, run: RunInfo) -> dict[str, Any]:
        with self._lock:
            ids = dict(self._ids)
            events: dict[str, Any] = {}
            periods = []
            for eid, st in sorted(ids.items()):
                span = (
                    (st.last_time_ns - st.first_time_ns) / 1e9
                    if st.first_time_ns is not None and st.last_time_ns is not None
                    else 0.0
                )
                serial_span = (
                    st.last_serial - st.first_serial
                    if st.first_serial is not None and st.last_serial is not None
                    else 0
                )
                entry = {
                    "seen": st.seen,
                    "bytes": st.bytes,
                    "first_serial": st.first_serial,
                    "last_serial": st.last_serial,
                    "missing": st.missing,
                    "sampled_out": st.sampled_out,
                    "daq_lost": st.daq_lost,
                    # drops whose gap never showed (before the first serial
                    # seen, after the last) happened all the same: the run
                    # summary must agree with the daemon's drop counter
                    "monitor_dropped": st.monitor_dropped + st.pending_drops,
                    "serial_resets": st.serial_resets,
                    "decode_errors": st.decode_errors,
                    "rate_hz": (st.seen - 1) / span if span > 0 and st.seen > 1 else None,
                    "daq_rate_hz": serial_span / span if span > 0 and serial_span > 0 else None,
                    "camera": st.camera,
                }
                if st.camera and st.period_n:
                    periods.append(st.period_sum / st.period_n)
                events[str(eid)] = entry
            totals = {
                k: sum(e[k] for e in events.values())
                for k in (
                    "seen",
                    "bytes",
                    "missing",
                    "sampled_out",
                    "daq_lost",
                    "monitor_dropped",
                    "decode_errors",
                )
            }
            period = sum(periods) / len(periods) if periods else None
            exposure = run.exposure_s
            doc: dict[str, Any] = {
                "sampling": self.sampling,
                "run_duration_s": max(0.0, (self._last_time_ns - run.start_time_ns) / 1e9),
                "events": events,
                "totals": totals,
                "decode_errors_by_kind": dict(sorted(self._errors_by_kind.items())),
                "lag_s": (
                    {"mean": self._lag_sum / self._lag_n, "max": self._lag_max}
                    if self._lag_n
                    else None
                ),
                "camera": {
                    "frame_period_s": period,
                    "exposure_s": exposure,
                    "frame_overhead_s": (
                        period - exposure if period is not None and exposure else None
                    ),
                },
            }
        return doc
