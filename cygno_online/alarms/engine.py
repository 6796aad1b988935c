"""The alarm engine: rule instances and their ISA-18.2 / Phoebus states.

One *instance* per rule and tag set (``rule`` or ``rule{channel=3}``): value
rules get one per matching series, created when the series is first seen;
no-data rules exactly one (it must exist to fire when nothing arrives).

States (``AlarmRecord.state``)::

    normal --raise--> active_unack --ack--> active_ack --clear--> normal
                          |  clear (latch)                           ^
                          v                                           |
                      cleared_unack ------------ack-------------------+
                          (clear without latch: straight to normal;
                           raise again from cleared_unack: active_unack)

    any --shelve(duration)--> shelved --expiry/unshelve--> active_unack|normal
    any --disable--> disabled --enable--> active_unack|normal

While shelved or disabled the condition is still evaluated (``active``), so
unshelving shows the truth at once; nothing is notified meanwhile.

Against flapping: ``delay_s`` (condition true that long before raising),
``clear_delay_s``, ``hysteresis`` (deadband), ``window_s`` with
``count_above`` or ``increase_above``; ``notify_interval_s`` limits the log
lines and MIDAS messages per instance (the state itself is always
published: ``AlarmRecord.notify`` tells the daemon whether to shout).

Persistence: instances (state, acknowledgements, shelving, timers), the
operator's disable list and the transition history live in one JSON file in
the state directory, replaced atomically at every transition, so a restart
shows what was there: never "OK" for an alarm nobody acknowledged.

Thread-safety: one lock; :meth:`observe`/:meth:`tick` run on the analysis
thread, :meth:`acknowledge`/:meth:`shelve`/... on the control thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cygno_online.alarms.rules import Rule, format_message
from cygno_online.analysis.catalogue import FieldSpec, SeriesSpec
from cygno_online.analysis.outputs import Metric
from cygno_online.publish.state import AlarmRecord, series_id

log = logging.getLogger(__name__)

STATE_VERSION = 2
#: transitions kept in the persisted history
HISTORY = 500

NORMAL = "normal"
ACTIVE_UNACK = "active_unack"
ACTIVE_ACK = "active_ack"
CLEARED_UNACK = "cleared_unack"
SHELVED = "shelved"
DISABLED = "disabled"
#: the longest shelving an operator may ask for
MAX_SHELVE_S = 7 * 86400.0

#: the metric catalogue's declaration of :func:`alarm_metric`
ALARM_SERIES = SeriesSpec(
    "alarms",
    (
        FieldSpec("state", "string", "", "normal, active_unack, active_ack, cleared_unack, ..."),
        FieldSpec("transition", "string", "", "raised, cleared, acknowledged, shelved, ..."),
        FieldSpec("active", "bool", "", "the condition holds"),
        FieldSpec("acked", "bool"),
        FieldSpec("latched", "bool", "", "cleared but unacknowledged"),
        FieldSpec("message", "string"),
        FieldSpec("value", "string", "", "the value at the transition, as text"),
        FieldSpec("by", "string", "", "who acknowledged/shelved"),
    ),
    ("alarm", "rule", "severity"),
    "alarm engine",
    "one point per transition",
)


@dataclass(slots=True)
class _Instance:
    rule: Rule
    record: AlarmRecord
    tags: dict[str, str]
    #: the alarm is raised (condition held past its delay); hysteresis applies
    active: bool = False
    #: since when the raw condition has been true (0: false)
    true_since_ns: int = 0
    #: since when the raw condition has been false while active (0: not)
    false_since_ns: int = 0
    last_value: Any = None
    last_seen_ns: int = 0
    prev_value: float | None = None
    prev_time_ns: int = 0
    #: event times at which the value condition held (count rules)
    hits: deque = field(default_factory=deque)
    #: (time_ns, value) of a counter (increase rules)
    samples: deque = field(default_factory=deque)
    last_notify_ns: int = 0
    suppressed: int = 0


def instance_id(rule: Rule, tags: dict[str, str]) -> str:
    extra = {k: v for k, v in tags.items() if k not in rule.tags}
    return series_id(rule.id, extra)


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


class AlarmEngine:
    def __init__(
        self,
        rules: list[Rule],
        *,
        state_path: Path | None = None,
        on_transition: Callable[[AlarmRecord], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._lock = threading.RLock()
        self.state_path = Path(state_path) if state_path else None
        self.on_transition = on_transition
        self.clock = clock
        self.rules: list[Rule] = []
        self._instances: dict[str, _Instance] = {}
        self.running = False
        self._running_since_ns = clock()
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        #: instance ids an operator disabled (survive restarts)
        self.disabled_by_operator: dict[str, str] = {}
        self._restored: dict[str, dict[str, Any]] = self._load()
        self.set_rules(rules)

    # -- configuration -------------------------------------------------------
    def set_rules(self, rules: list[Rule]) -> None:
        """Install (new) rules; instances of rules that still exist keep their
        state, instances of removed rules disappear (viewers are told)."""
        with self._lock:
            by_id = {r.id: r for r in rules}
            kept: dict[str, _Instance] = {}
            removed = []
            for iid, inst in self._instances.items():
                rule = by_id.get(inst.rule.id)
                if (
                    rule is not None
                    and rule.matches(rule.family, inst.tags)
                    and rule.per_series == inst.rule.per_series
                ):
                    inst.rule = rule
                    self._describe(inst)
                    kept[iid] = inst
                else:
                    removed.append(inst)
            self._instances = kept
            self.rules = list(rules)
            for inst in removed:
                # Viewers delete these; without it an alarm of a rule removed
                # by SIGHUP would stay on every screen until restart.
                self._emit(inst, "removed", save=False)
                self._restored[inst.record.id] = self._dump(inst)
            now = self.clock()
            for rule in rules:
                if not rule.per_series and rule.id not in self._instances:
                    self._instance(rule, dict(rule.tags), now)
            # restored instances of configured rules are reported at once
            for iid, saved in list(self._restored.items()):
                rule = by_id.get(saved.get("rule"))
                if rule is not None and iid not in self._instances:
                    tags = {str(k): str(v) for k, v in (saved.get("tags") or {}).items()}
                    if rule.matches(rule.family, tags) and instance_id(rule, tags) == iid:
                        self._instance(rule, tags, now)
            for inst in self._instances.values():
                self._apply_enabled(inst, now)
            self._save()

    def _describe(self, inst: _Instance) -> None:
        rule, rec = inst.rule, inst.record
        rec.name = rule.name
        rec.severity = rule.severity
        rec.rule = rule.id
        rec.tags = dict(inst.tags)
        rec.limit = rule.describe()
        rec.guidance = rule.guidance
        rec.contact = rule.contact

    def _instance(self, rule: Rule, tags: dict[str, str], now: int) -> _Instance:
        iid = instance_id(rule, tags)
        inst = self._instances.get(iid)
        if inst is not None:
            return inst
        rec = AlarmRecord(id=iid, name=rule.name, severity=rule.severity, state=NORMAL)
        inst = _Instance(rule, rec, dict(tags))
        self._describe(inst)
        rec.since_ns = now
        saved = self._restored.pop(iid, None)
        if saved:
            for k, v in (saved.get("record") or {}).items():
                if k in AlarmRecord.__slots__ and k not in ("id", "name", "severity", "tags"):
                    setattr(rec, k, v)
            self._describe(inst)
            inst.active = bool(saved.get("active", rec.active))
            inst.last_notify_ns = int(saved.get("last_notify_ns", 0))
            inst.hits = deque(int(t) for t in saved.get("hits") or ())
            inst.samples = deque(tuple(s) for s in saved.get("samples") or ())
            rec.pending = False
            rec.transition = "updated"
        # a no-data timer starts when the instance starts to exist
        inst.last_seen_ns = now
        self._instances[iid] = inst
        if (not rule.enabled or iid in self.disabled_by_operator) and rec.state != DISABLED:
            self._enter(inst, DISABLED, now)
        return inst

    def _apply_enabled(self, inst: _Instance, now: int) -> None:
        """Rule ``enabled: false`` or an operator's disable -> disabled;
        re-enabled -> the truth of the condition."""
        want_disabled = not inst.rule.enabled or inst.record.id in self.disabled_by_operator
        rec = inst.record
        if want_disabled and rec.state != DISABLED:
            self._enter(inst, DISABLED, now)
            self._emit(inst, "disabled", save=False)
        elif not want_disabled and rec.state == DISABLED:
            self._enter(inst, ACTIVE_UNACK if inst.active else NORMAL, now)
            if inst.active:
                rec.raised_ns = now
            self._emit(inst, "enabled", save=False)

    # -- inputs ----------------------------------------------------------------
    def set_running(self, running: bool, now_ns: int | None = None) -> None:
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            if running and not self.running:
                self._running_since_ns = now
            self.running = running
            if not running:
                for inst in list(self._instances.values()):
                    if inst.rule.only_when_running:
                        inst.true_since_ns = 0
                        inst.hits.clear()
                        if inst.active:
                            self._clear(inst, inst.last_value, now)
                        inst.record.pending = False

    def observe(self, metric: Metric, now_ns: int | None = None) -> None:
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            for rule in self.rules:
                if not rule.matches(metric.family, metric.tags):
                    continue
                if not rule.per_series:
                    if rule.field is None or rule.field in metric.fields:
                        inst = self._instance(rule, dict(rule.tags), now)
                        inst.last_seen_ns = now
                        if inst.active:
                            self._update(inst, False, None, now)
                    continue
                if rule.field not in metric.fields:
                    continue
                value = metric.fields[rule.field]
                inst = self._instance(rule, metric.tags, now)
                inst.last_seen_ns = now
                if rule.field in metric.units:
                    inst.record.unit = metric.units[rule.field]
                cond = self._condition(inst, value, metric.time_ns)
                if rule.only_when_running and not self.running:
                    cond = False
                self._update(inst, cond, value, now)

    def _condition(self, inst: _Instance, value: Any, time_ns: int) -> bool:
        rule = inst.rule
        if rule.equals is not None or rule.not_equals is not None:
            eq = rule.equals if isinstance(rule.equals, list) else [rule.equals]
            ne = rule.not_equals if isinstance(rule.not_equals, list) else [rule.not_equals]
            if rule.equals is not None and value in eq:
                return True
            return rule.not_equals is not None and value not in ne
        v = _num(value)
        if v is None:
            return False
        h = rule.hysteresis if inst.active else 0.0
        cond = False
        if rule.above is not None and v > rule.above - h:
            cond = True
        if rule.below is not None and v < rule.below + h:
            cond = True
        if rule.band is not None and (v < rule.band[0] + h or v > rule.band[1] - h):
            cond = True
        if rule.rate_above is not None or rule.rate_below is not None:
            if inst.prev_value is not None and time_ns > inst.prev_time_ns:
                rate = (v - inst.prev_value) / ((time_ns - inst.prev_time_ns) / 60e9)
                if rule.rate_above is not None and rate > rule.rate_above - h:
                    cond = True
                if rule.rate_below is not None and rate < -(rule.rate_below - h):
                    cond = True
            elif inst.active:
                cond = True  # no new rate yet: keep the state
            if time_ns > inst.prev_time_ns:
                inst.prev_value, inst.prev_time_ns = v, time_ns
        if rule.increase_above is not None and rule.window_s is not None:
            s = inst.samples
            if s and v < s[-1][1]:
                s.clear()  # the counter was reset (restart): a new baseline
            s.append((time_ns, v))
            horizon = time_ns - rule.window_s * 1e9
            # keep one sample at or before the horizon: the window's baseline
            while len(s) > 1 and s[1][0] <= horizon:
                s.popleft()
            cond = (v - s[0][1]) > rule.increase_above - (h if inst.active else 0.0)
        if rule.count_above is not None and rule.window_s is not None:
            if cond:
                inst.hits.append(time_ns)
            horizon = time_ns - rule.window_s * 1e9
            while inst.hits and inst.hits[0] <= horizon:
                inst.hits.popleft()
            cond = len(inst.hits) > rule.count_above
        return cond

    def tick(self, now_ns: int | None = None) -> None:
        """Delays, no-data timeouts and shelving expiry; call about once a second."""
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            for inst in list(self._instances.values()):
                rule, rec = inst.rule, inst.record
                if rec.state == SHELVED and rec.shelved_until_ns and now >= rec.shelved_until_ns:
                    self._unshelve(inst, "expired", now)
                if rule.no_data_s is not None:
                    start = inst.last_seen_ns
                    if rule.only_when_running:
                        start = max(start, self._running_since_ns)
                    stale = now - start > rule.no_data_s * 1e9
                    if rule.only_when_running and not self.running:
                        stale = False
                    self._update(inst, stale, "no data" if stale else None, now, no_data=stale)
                    continue
                if inst.true_since_ns and not inst.active:
                    self._update(inst, True, inst.last_value, now)
                elif inst.active and inst.false_since_ns:
                    self._update(inst, False, inst.last_value, now)

    # -- the state machine -------------------------------------------------------
    def _update(
        self, inst: _Instance, cond: bool, value: Any, now: int, *, no_data: bool = False
    ) -> None:
        rule, rec = inst.rule, inst.record
        if not no_data and value is not None:
            inst.last_value = value
            rec.value = value
        if cond:
            inst.false_since_ns = 0
            if not inst.true_since_ns:
                inst.true_since_ns = now
            if not inst.active:
                if now - inst.true_since_ns >= rule.delay_s * 1e9:
                    self._raise(inst, value, now, no_data)
                else:
                    rec.pending = True
        else:
            inst.true_since_ns = 0
            rec.pending = False
            if inst.active:
                if not inst.false_since_ns:
                    inst.false_since_ns = now
                if now - inst.false_since_ns >= rule.clear_delay_s * 1e9:
                    self._clear(inst, value, now)

    def _enter(self, inst: _Instance, state: str, now: int) -> None:
        rec = inst.record
        rec.state = state
        rec.since_ns = now
        rec.active = inst.active
        rec.acked = state == ACTIVE_ACK
        rec.latched = state == CLEARED_UNACK

    def _raise(self, inst: _Instance, value: Any, now: int, no_data: bool) -> None:
        rule, rec = inst.rule, inst.record
        inst.active = True
        inst.false_since_ns = 0
        rec.pending = False
        rec.active = True
        if no_data:
            rec.value = "no data"
        rec.message = (
            f"{rule.name}: no data for {rule.no_data_s:g} s"
            + (" during a run" if rule.only_when_running else "")
            if no_data
            else format_message(rule, value, inst.tags)
        )
        if rec.state in (SHELVED, DISABLED):
            self._save()
            return
        rec.acked_by, rec.acked_ns = "", 0
        rec.raised_ns = now
        self._enter(inst, ACTIVE_UNACK, now)
        self._emit(inst, "raised", now=now)

    def _clear(self, inst: _Instance, value: Any, now: int) -> None:
        rule, rec = inst.rule, inst.record
        inst.active = False
        inst.false_since_ns = 0
        rec.active = False
        rec.cleared_ns = now
        if rec.state in (SHELVED, DISABLED):
            self._save()
            return
        if rec.state == ACTIVE_UNACK and rule.latch:
            self._enter(inst, CLEARED_UNACK, now)
        else:
            self._enter(inst, NORMAL, now)
        self._emit(inst, "cleared", now=now)

    def _unshelve(self, inst: _Instance, how: str, now: int) -> None:
        rec = inst.record
        rec.shelved_until_ns, rec.shelved_by, rec.shelve_reason = 0, "", ""
        self._enter(inst, ACTIVE_UNACK if inst.active else NORMAL, now)
        if inst.active:
            rec.raised_ns = now
        self._emit(inst, "unshelved", detail=how)

    # -- operator actions (control thread) -----------------------------------------
    def _get(self, alarm_id: str) -> _Instance:
        inst = self._instances.get(alarm_id)
        if inst is None:
            raise KeyError(f"unknown alarm {alarm_id!r}")
        return inst

    def acknowledge(self, alarm_id: str, user: str, now_ns: int | None = None) -> AlarmRecord:
        """Acknowledge an instance; KeyError for an id the engine does not have."""
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            inst = self._get(alarm_id)
            rec = inst.record
            if rec.state in (ACTIVE_UNACK, CLEARED_UNACK):
                rec.acked_by, rec.acked_ns = user, now
                self._enter(inst, ACTIVE_ACK if rec.state == ACTIVE_UNACK else NORMAL, now)
                self._emit(inst, "acknowledged", detail=user)
            return AlarmRecord(**asdict(rec))

    def shelve(
        self,
        alarm_id: str,
        user: str,
        duration_s: float,
        reason: str = "",
        now_ns: int | None = None,
    ) -> AlarmRecord:
        """Silence an instance for ``duration_s`` (at most :data:`MAX_SHELVE_S`)."""
        now = self.clock() if now_ns is None else now_ns
        if not 0 < float(duration_s) <= MAX_SHELVE_S:
            raise ValueError(f"shelve duration must be in (0, {MAX_SHELVE_S:g}] s")
        with self._lock:
            inst = self._get(alarm_id)
            rec = inst.record
            if rec.state == DISABLED:
                raise ValueError(f"alarm {alarm_id!r} is disabled")
            self._enter(inst, SHELVED, now)
            rec.shelved_until_ns = now + int(float(duration_s) * 1e9)
            rec.shelved_by, rec.shelve_reason = user, reason
            self._emit(inst, "shelved", detail=user)
            return AlarmRecord(**asdict(rec))

    def unshelve(self, alarm_id: str, user: str, now_ns: int | None = None) -> AlarmRecord:
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            inst = self._get(alarm_id)
            if inst.record.state != SHELVED:
                raise ValueError(f"alarm {alarm_id!r} is not shelved")
            self._unshelve(inst, f"by {user}", now)
            return AlarmRecord(**asdict(inst.record))

    def disable(self, alarm_id: str, user: str, now_ns: int | None = None) -> AlarmRecord:
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            inst = self._get(alarm_id)
            self.disabled_by_operator[alarm_id] = user
            inst.record.shelved_until_ns = 0
            self._apply_enabled(inst, now)
            self._save()
            return AlarmRecord(**asdict(inst.record))

    def enable(self, alarm_id: str, user: str, now_ns: int | None = None) -> AlarmRecord:
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            inst = self._get(alarm_id)
            self.disabled_by_operator.pop(alarm_id, None)
            self._apply_enabled(inst, now)
            self._save()
            return AlarmRecord(**asdict(inst.record))

    # -- notification --------------------------------------------------------------
    def _emit(
        self,
        inst: _Instance,
        transition: str,
        *,
        now: int | None = None,
        detail: str = "",
        save: bool = True,
    ) -> None:
        rec = inst.record
        rec.transition = transition
        rec.notify = True
        if transition == "raised" and now is not None:
            # Rate limit: one raised line per instance per notify_interval_s;
            # the repeats are counted into the next one that is shown.
            if (
                inst.last_notify_ns
                and now - inst.last_notify_ns < inst.rule.notify_interval_s * 1e9
            ):
                rec.notify = False
                inst.suppressed += 1
            else:
                if inst.suppressed:
                    rec.message += f" (raised {inst.suppressed} more time(s) since last notice)"
                inst.suppressed = 0
                inst.last_notify_ns = now
        elif transition == "cleared" and inst.suppressed:
            rec.notify = False
        out = AlarmRecord(**asdict(rec))
        if transition != "removed":
            entry = asdict(out)
            if detail:
                entry["detail"] = detail
            self.history.append(entry)
        if save:
            self._save()
        if self.on_transition is not None:
            try:
                self.on_transition(out)
            except Exception:
                log.exception("alarm transition callback failed for %s", out.id)

    # -- views -------------------------------------------------------------------
    def records(self) -> list[AlarmRecord]:
        with self._lock:
            out = []
            for inst in self._instances.values():
                rec = AlarmRecord(**asdict(inst.record))
                rec.transition = "updated"
                out.append(rec)
            return out

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._instances)

    def sync_body(self, with_history: bool = False) -> dict[str, Any]:
        """The ``alarm`` message listing every instance (viewers drop others)."""
        with self._lock:
            body: dict[str, Any] = {"transition": "sync", "ids": list(self._instances)}
            if with_history:
                body["history"] = list(self.history)
            return body

    def get(self, alarm_id: str) -> AlarmRecord:
        with self._lock:
            return AlarmRecord(**asdict(self._get(alarm_id).record))

    # -- persistence ---------------------------------------------------------------
    @staticmethod
    def _dump(inst: _Instance) -> dict[str, Any]:
        return {
            "rule": inst.rule.id,
            "tags": inst.tags,
            "active": inst.active,
            "last_notify_ns": inst.last_notify_ns,
            "hits": list(inst.hits),
            "samples": [list(s) for s in inst.samples],
            "record": asdict(inst.record),
        }

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            doc = json.loads(self.state_path.read_text())
            if doc.get("version") != STATE_VERSION:
                raise ValueError(f"version {doc.get('version')!r}, expected {STATE_VERSION}")
            self.history.extend(doc.get("history") or ())
            self.disabled_by_operator = {
                str(k): str(v) for k, v in (doc.get("disabled") or {}).items()
            }
            return dict(doc.get("alarms") or {})
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            log.error("alarm state %s unreadable (%s): starting without it", self.state_path, exc)
            return {}

    def _save(self) -> None:
        if self.state_path is None:
            return
        doc: dict[str, Any] = {
            "version": STATE_VERSION,
            "alarms": {},
            "disabled": dict(self.disabled_by_operator),
            "history": list(self.history),
        }
        for iid, inst in self._instances.items():
            doc["alarms"][iid] = self._dump(inst)
        # Keep restored entries of rules not configured now: a rule
        # commented out and back in must find its acknowledgement again.
        for iid, saved in self._restored.items():
            doc["alarms"].setdefault(iid, saved)
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            with open(tmp, "w") as fh:
                json.dump(doc, fh, default=str)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_path)
        except OSError as exc:
            log.error("cannot write alarm state %s: %s", self.state_path, exc)


def alarm_metric(rec: AlarmRecord, experiment: str, run: int) -> Metric:
    """The InfluxDB point of one transition (family ``alarms``)."""
    return Metric(
        family="alarms",
        time_ns=time.time_ns(),
        run=run,
        serial=0,
        fields={
            "state": rec.state,
            "transition": rec.transition,
            "active": bool(rec.active),
            "acked": rec.state == ACTIVE_ACK,
            "latched": rec.state == CLEARED_UNACK,
            "message": rec.message,
            "value": "" if rec.value is None else str(rec.value),
            "by": rec.shelved_by if rec.transition == "shelved" else rec.acked_by,
        },
        tags={"alarm": rec.id, "rule": rec.rule, "severity": rec.severity},
    )
