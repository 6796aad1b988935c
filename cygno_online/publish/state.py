"""The monitor's current state, identical on both ends of the wire.

The daemon applies every message it publishes to its own :class:`MonitorState`
and serves it as the snapshot; a viewer loads the snapshot and applies the live
messages that follow. One piece of code on both sides means a viewer that
joined late sees exactly what a viewer that was there from the start sees.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cygno_online.publish.messages import Message, display_from_message

#: points of history kept per (series, field) for sparklines and trends
HISTORY_POINTS = 240
#: log lines kept
LOG_LINES = 500
#: finished alarm records kept in the history
ALARM_HISTORY = 200
#: run summaries kept for the viewers' Runs tab (without their bulky
#: ``sections``; the latest one is also kept whole in ``summary``)
RECENT_SUMMARIES = 20
#: series kept; a high-cardinality tag (per-cluster rows) must not grow a
#: daemon that runs for months: the least recently updated series goes first
MAX_SERIES = 5000

SEVERITIES = ("info", "warning", "error", "critical")


def compact_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """A run summary without the analyzers' raw ``sections`` (histograms...)."""
    return {k: v for k, v in doc.items() if k != "sections"}


def series_id(family: str, tags: dict[str, str]) -> str:
    """Stable text id of a series: ``family`` or ``family{k=v,k=v}``."""
    if not tags:
        return family
    return family + "{" + ",".join(f"{k}={v}" for k, v in sorted(tags.items())) + "}"


@dataclass(slots=True)
class SeriesRecord:
    family: str
    tags: dict[str, str]
    fields: dict[str, Any]
    units: dict[str, str]
    time_ns: int
    run: int
    serial: int


#: alarm states (ISA-18.2 / Phoebus); see cygno_online.alarms.engine
ALARM_STATES = (
    "normal",
    "active_unack",
    "active_ack",
    "cleared_unack",
    "shelved",
    "disabled",
)


@dataclass(slots=True)
class AlarmRecord:
    """One alarm instance's state (one per rule and tag set).

    ``state`` is one of :data:`ALARM_STATES`: ``normal``; ``active_unack``
    (raised, nobody acknowledged); ``active_ack`` (acknowledged, the
    condition persists: still counted everywhere); ``cleared_unack`` (the
    condition cleared before anyone acknowledged: latched); ``shelved``
    (silenced by an operator until ``shelved_until_ns``); ``disabled``.
    ``active`` is the condition itself (also while shelved or disabled);
    ``pending`` means the condition holds but its delay has not elapsed.
    """

    id: str
    name: str
    severity: str
    state: str
    message: str = ""
    value: Any = None
    raised_ns: int = 0
    cleared_ns: int = 0
    acked_ns: int = 0
    acked_by: str = ""
    latched: bool = False
    acked: bool = False
    #: the transition that produced this record: raised, cleared,
    #: acknowledged, shelved, unshelved, disabled, enabled, updated, or
    #: removed (its rule is gone from the configuration)
    transition: str = "updated"
    rule: str = ""
    tags: dict = field(default_factory=dict)
    #: the rule's limit as text ("outside [0.88, 0.94] for 120 s")
    limit: str = ""
    unit: str = ""
    guidance: str = ""
    contact: str = ""
    #: when the current state began
    since_ns: int = 0
    active: bool = False
    pending: bool = False
    shelved_until_ns: int = 0
    shelved_by: str = ""
    shelve_reason: str = ""
    #: False when this transition's log line/MIDAS message was rate-limited
    notify: bool = True

    @property
    def needs_attention(self) -> bool:
        """Unacknowledged: active or latched (cleared_unack)."""
        return self.state in ("active_unack", "cleared_unack")

    @property
    def counts(self) -> bool:
        """Counted in the status line, verdict and tab counts: active
        (acknowledged or not) or latched."""
        return self.state in ("active_unack", "active_ack", "cleared_unack")


def _alarm_record(body: dict[str, Any]) -> AlarmRecord:
    return AlarmRecord(**{k: v for k, v in body.items() if k in AlarmRecord.__slots__})


@dataclass(slots=True)
class LogRecord:
    time_ns: int
    level: str
    origin: str
    text: str
    run: int | None = None
    serial: int | None = None


@dataclass(slots=True)
class MonitorState:
    """Everything a viewer shows. Thread-safe for one writer and many readers
    through :attr:`lock`."""

    seq: int = 0
    run: dict[str, Any] = field(default_factory=dict)
    series: dict[str, SeriesRecord] = field(default_factory=dict)
    #: series id -> field -> deque[(time_ns, value)]
    history: dict[str, dict[str, deque]] = field(default_factory=dict)
    displays: dict[str, Any] = field(default_factory=dict)
    alarms: dict[str, AlarmRecord] = field(default_factory=dict)
    alarm_history: deque = field(default_factory=lambda: deque(maxlen=ALARM_HISTORY))
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    health: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    #: the last RECENT_SUMMARIES run summaries, oldest first (compact)
    summaries: deque = field(default_factory=lambda: deque(maxlen=RECENT_SUMMARIES))
    last_heartbeat_ns: int = 0
    #: series dropped because of MAX_SERIES (counted, never silent)
    series_evicted: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- applying live messages ------------------------------------------------
    def apply(self, msg: Message) -> None:
        with self.lock:
            handler = getattr(self, f"_apply_{msg.kind}", None)
            if handler is not None:
                handler(msg)
            if msg.seq:
                self.seq = msg.seq

    def _apply_metric(self, msg: Message) -> None:
        b = msg.body
        sid = series_id(b["family"], b.get("tags") or {})
        if sid not in self.series and len(self.series) >= MAX_SERIES:
            oldest = min(self.series, key=lambda k: self.series[k].time_ns)
            del self.series[oldest]
            self.history.pop(oldest, None)
            self.series_evicted += 1
        rec = self.series.get(sid)
        if rec is None:
            self.series[sid] = SeriesRecord(
                b["family"],
                dict(b.get("tags") or {}),
                dict(b["fields"]),
                dict(b.get("units") or {}),
                b["time_ns"],
                b["run"],
                b["serial"],
            )
        else:
            # Several analyzers (and HV's one-field-per-bank messages) feed one
            # series: merge, so no field or unit disappears from the viewers.
            rec.fields.update(b["fields"])
            rec.units.update(b.get("units") or {})
            rec.time_ns, rec.run, rec.serial = b["time_ns"], b["run"], b["serial"]
        hist = self.history.setdefault(sid, {})
        for name, value in b["fields"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                hist.setdefault(name, deque(maxlen=HISTORY_POINTS)).append((b["time_ns"], value))

    def _apply_display(self, msg: Message) -> None:
        # Arrays are copied: a viewer keeps them after the ZeroMQ frame is freed.
        arrays = {k: np.array(v) for k, v in msg.arrays.items()}
        self.displays[msg.body["name"]] = display_from_message(msg.body, arrays)

    def _apply_run(self, msg: Message) -> None:
        self.run = dict(msg.body)

    def _apply_alarm(self, msg: Message) -> None:
        if msg.body.get("transition") == "sync":
            # The daemon's full list of instances: anything else is a ghost
            # (missed "removed", a viewer that outlived a daemon restart).
            ids = set(msg.body.get("ids") or ())
            for aid in [a for a in self.alarms if a not in ids]:
                del self.alarms[aid]
            history = msg.body.get("history")
            if history and not self.alarm_history:
                for h in history:
                    self.alarm_history.append(_alarm_record(h))
            return
        rec = AlarmRecord(**{k: v for k, v in msg.body.items() if k in AlarmRecord.__slots__})
        if rec.transition == "removed":
            # its rule was removed from the configuration (SIGHUP)
            self.alarms.pop(rec.id, None)
            return
        self.alarms[rec.id] = rec
        if rec.transition not in ("updated", "removed"):
            self.alarm_history.append(AlarmRecord(**asdict(rec)))

    def _apply_log(self, msg: Message) -> None:
        b = msg.body
        self.log.append(
            LogRecord(
                b["time_ns"],
                b["level"],
                b.get("origin", "daemon"),
                b["text"],
                b.get("run"),
                b.get("serial"),
            )
        )

    def _apply_summary(self, msg: Message) -> None:
        self.summary = dict(msg.body)
        self.add_summary(self.summary)

    def add_summary(self, doc: dict[str, Any]) -> None:
        """Keep a compact copy of a run summary; a summary of the same run
        and part replaces the earlier one."""
        compact = compact_summary(doc)
        key = (compact.get("run"), compact.get("part") or 1)
        for i, old in enumerate(self.summaries):
            if (old.get("run"), old.get("part") or 1) == key:
                del self.summaries[i]
                break
        self.summaries.append(compact)

    def _apply_health(self, msg: Message) -> None:
        self.health = dict(msg.body)

    def _apply_hb(self, msg: Message) -> None:
        self.last_heartbeat_ns = int(msg.body.get("time_ns", 0))

    def _apply_snapshot(self, msg: Message) -> None:
        self.load(msg.body, msg.arrays)

    # -- snapshot --------------------------------------------------------------
    def to_message(self) -> Message:
        """The whole state as one ``snapshot`` message (arrays as frames)."""
        with self.lock:
            arrays: dict[str, np.ndarray] = {}
            displays = []
            for i, (name, d) in enumerate(self.displays.items()):
                keys = []
                for k, a in d.arrays.items():
                    arrays[f"{i}:{k}"] = a
                    keys.append(k)
                displays.append(
                    {
                        "index": i,
                        "kind": d.kind,
                        "name": name,
                        "run": d.run,
                        "serial": d.serial,
                        "time_ns": d.time_ns,
                        "meta": d.meta,
                        "keys": keys,
                    }
                )
            body = {
                "seq": self.seq,
                "run": self.run,
                "series": {sid: asdict(r) for sid, r in self.series.items()},
                "history": {
                    sid: {f: [list(p) for p in pts] for f, pts in h.items()}
                    for sid, h in self.history.items()
                },
                "displays": displays,
                "alarms": [asdict(a) for a in self.alarms.values()],
                "alarm_history": [asdict(a) for a in self.alarm_history],
                "log": [asdict(r) for r in self.log],
                "health": self.health,
                "summary": self.summary,
                "summaries": list(self.summaries),
                "last_heartbeat_ns": self.last_heartbeat_ns,
            }
            return Message("snapshot", body, arrays, seq=self.seq)

    def load(self, body: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Replace everything with a snapshot body (see :meth:`to_message`)."""
        from cygno_online.analysis.outputs import Display

        with self.lock:
            self.seq = int(body.get("seq", 0))
            self.run = dict(body.get("run") or {})
            self.series = {sid: SeriesRecord(**r) for sid, r in (body.get("series") or {}).items()}
            self.history = {
                sid: {
                    f: deque((tuple(p) for p in pts), maxlen=HISTORY_POINTS) for f, pts in h.items()
                }
                for sid, h in (body.get("history") or {}).items()
            }
            self.displays = {}
            for d in body.get("displays") or []:
                arrs = {k: np.array(arrays[f"{d['index']}:{k}"]) for k in d["keys"]}
                self.displays[d["name"]] = Display(
                    d["kind"], d["name"], d["run"], d["serial"], d["time_ns"], arrs, dict(d["meta"])
                )
            self.alarms = {a["id"]: _alarm_record(a) for a in body.get("alarms") or []}
            self.alarm_history = deque(
                (_alarm_record(a) for a in body.get("alarm_history") or []), maxlen=ALARM_HISTORY
            )
            self.log = deque((LogRecord(**r) for r in body.get("log") or []), maxlen=LOG_LINES)
            self.health = dict(body.get("health") or {})
            self.summary = dict(body.get("summary") or {})
            self.summaries = deque(
                (dict(d) for d in body.get("summaries") or [] if isinstance(d, dict)),
                maxlen=RECENT_SUMMARIES,
            )
            self.last_heartbeat_ns = int(body.get("last_heartbeat_ns", 0))

    # -- convenience for viewers ---------------------------------------------
    def alarm_counts(self) -> dict[str, int]:
        """Alarms that count (active, acknowledged or not, and latched), by
        severity (:func:`cygno_online.alarms.summary.summarize`)."""
        from cygno_online.alarms.summary import summarize

        with self.lock:
            return summarize(self.alarms.values()).counts

    def find_series(self, family: str, **tags: str) -> list[SeriesRecord]:
        with self.lock:
            return [
                r
                for r in self.series.values()
                if r.family == family and all(r.tags.get(k) == v for k, v in tags.items())
            ]
