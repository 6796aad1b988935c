"""The alarm state machine.

Each rule instance (one per matching series, id ``rule`` or ``rule{tag=v}``)
goes ``ok -> pending -> active -> ok``: a condition must hold for ``delay_s``
before the alarm is raised, and an active alarm clears only when the value is
back past the threshold by ``hysteresis``. A latched alarm stays flagged after
clearing until someone acknowledges it. State and acknowledgements survive
restarts (JSON file, atomic replace), so a restart never shows "OK" for an
alarm nobody has seen.

Thread-safety: one lock; :meth:`observe`/:meth:`tick` run on the analysis
thread, :meth:`acknowledge` on the control thread.
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
from cygno_online.analysis.outputs import Metric
from cygno_online.publish.state import AlarmRecord, series_id

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(slots=True)
class _Instance:
    rule: Rule
    record: AlarmRecord
    tags: dict[str, str]
    #: wall time the condition became true (pending start), 0 when false
    since_ns: int = 0
    #: last evaluated condition (used by tick for delays)
    condition: bool = False
    last_value: Any = None
    last_seen_ns: int = 0
    prev_value: float | None = None
    prev_time_ns: int = 0
    #: event times at which the value condition held (window/count rules)
    hits: deque = field(default_factory=deque)


def instance_id(rule: Rule, tags: dict[str, str]) -> str:
    extra = {k: v for k, v in tags.items() if k not in rule.tags}
    return series_id(rule.id, extra)


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
        self._started_ns = clock()
        self._restored: dict[str, dict[str, Any]] = self._load()
        self.set_rules(rules)

    # -- configuration -------------------------------------------------------
    def set_rules(self, rules: list[Rule]) -> None:
        """Install (new) rules; instances of rules that still exist keep
        their state, instances of removed rules disappear."""
        with self._lock:
            by_id = {r.id: r for r in rules}
            kept: dict[str, _Instance] = {}
            for iid, inst in self._instances.items():
                rule = by_id.get(inst.rule.id)
                if rule is not None and rule.matches(rule.family, inst.tags):
                    inst.rule = rule
                    inst.record.name = rule.name
                    inst.record.severity = rule.severity
                    kept[iid] = inst
            removed = [inst for iid, inst in self._instances.items() if iid not in kept]
            self._instances = kept
            self.rules = list(rules)
            # Viewers delete these records; without it an alarm of a rule
            # removed by SIGHUP would stay on every screen until restart.
            for inst in removed:
                self._emit(inst, "removed")
            for rule in rules:
                # A rule with no series yet still exists (no-data alarms, and
                # restored state must be visible at once).
                if rule.id not in self._instances and not any(
                    i.rule.id == rule.id for i in self._instances.values()
                ):
                    self._instance(rule, dict(rule.tags))
            for iid, saved in list(self._restored.items()):
                for rule in rules:
                    if saved.get("rule") == rule.id and iid not in self._instances:
                        self._instance(rule, dict(saved.get("tags") or rule.tags))
            self._save()

    def _instance(self, rule: Rule, tags: dict[str, str]) -> _Instance:
        iid = instance_id(rule, tags)
        inst = self._instances.get(iid)
        if inst is None:
            rec = AlarmRecord(id=iid, name=rule.name, severity=rule.severity, state="ok")
            inst = _Instance(rule, rec, dict(tags))
            saved = self._restored.pop(iid, None)
            if saved:
                for k, v in (saved.get("record") or {}).items():
                    if k in AlarmRecord.__slots__ and k not in ("id", "name", "severity"):
                        setattr(rec, k, v)
                inst.since_ns = int(saved.get("since_ns", 0))
                if rec.state == "pending":
                    rec.state = "ok"
                    inst.since_ns = 0
                inst.condition = rec.state == "active"
            # A no-data timer starts when the rule starts to exist.
            inst.last_seen_ns = self.clock()
            self._instances[iid] = inst
            # A rule-level placeholder is replaced by the first real series.
            base = self._instances.get(rule.id)
            if (
                iid != rule.id
                and base is not None
                and base.record.state == "ok"
                and not (base.record.latched)
            ):
                del self._instances[rule.id]
        return inst

    # -- inputs ----------------------------------------------------------------
    def set_running(self, running: bool, now_ns: int | None = None) -> None:
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            if running and not self.running:
                self._running_since_ns = now
                for inst in self._instances.values():
                    if inst.rule.only_when_running:
                        inst.last_seen_ns = max(inst.last_seen_ns, now)
            self.running = running
            if not running:
                for inst in list(self._instances.values()):
                    if inst.rule.only_when_running:
                        self._evaluate(inst, False, inst.last_value, now)

    def observe(self, metric: Metric, now_ns: int | None = None) -> None:
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            for rule in self.rules:
                if not rule.matches(metric.family, metric.tags):
                    continue
                if rule.field not in metric.fields:
                    continue
                value = metric.fields[rule.field]
                inst = self._instance(rule, metric.tags)
                inst.last_seen_ns = now
                cond = self._condition(inst, value, metric.time_ns)
                if rule.only_when_running and not self.running:
                    cond = False
                self._evaluate(inst, cond, value, now)

    def _condition(self, inst: _Instance, value: Any, time_ns: int) -> bool:
        rule = inst.rule
        if not isinstance(value, (int, float)):
            return False
        v = float(value)  # booleans count as 0/1 (spark flags...)
        active = inst.record.state == "active"
        # Hysteresis: an active alarm keeps holding until the value is back
        # past the threshold by the margin.
        h = rule.hysteresis if active else 0.0
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
            elif active:
                cond = inst.condition
            if time_ns > inst.prev_time_ns:
                inst.prev_value, inst.prev_time_ns = v, time_ns
        if rule.window_s is not None and rule.count_above is not None:
            if cond:
                inst.hits.append(time_ns)
            horizon = time_ns - rule.window_s * 1e9
            while inst.hits and inst.hits[0] <= horizon:
                inst.hits.popleft()
            cond = len(inst.hits) > rule.count_above
        return cond

    def tick(self, now_ns: int | None = None) -> None:
        """Delays and no-data timeouts; call about once a second."""
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            for inst in list(self._instances.values()):
                rule = inst.rule
                if rule.no_data_s is not None:
                    stale = now - inst.last_seen_ns > rule.no_data_s * 1e9
                    if rule.only_when_running:
                        stale = (
                            stale
                            and self.running
                            and now - self._running_since_ns > rule.no_data_s * 1e9
                        )
                    if stale:
                        self._evaluate(inst, True, None, now, no_data=True)
                        continue
                    if inst.record.value == "no data" and inst.record.state != "ok":
                        self._evaluate(
                            inst, inst.condition and rule.has_value_condition, inst.last_value, now
                        )
                        continue
                if inst.condition and inst.record.state == "pending":
                    self._evaluate(inst, True, inst.last_value, now)

    # -- the state machine -------------------------------------------------------
    def _evaluate(
        self, inst: _Instance, cond: bool, value: Any, now: int, *, no_data: bool = False
    ) -> None:
        rec = inst.record
        rule = inst.rule
        inst.condition = cond
        if not no_data:
            inst.last_value = value
        shown = "no data" if no_data else value
        if cond:
            if rec.state == "ok":
                inst.since_ns = now
                rec.state = "pending"
                rec.value = shown
            if rec.state == "pending" and now - inst.since_ns >= rule.delay_s * 1e9:
                rec.state = "active"
                rec.value = shown
                rec.raised_ns = now
                rec.acked = False
                rec.acked_by = ""
                rec.acked_ns = 0
                rec.latched = rule.latch
                rec.message = (
                    f"{rule.name}: no data for {rule.no_data_s:g} s"
                    if no_data
                    else format_message(rule, value, inst.tags)
                )
                self._emit(inst, "raised")
            elif rec.state == "active":
                rec.value = shown
        else:
            if rec.state == "pending":
                rec.state = "ok"
                inst.since_ns = 0
            elif rec.state == "active":
                rec.state = "ok"
                rec.value = value
                rec.cleared_ns = now
                rec.latched = rule.latch and not rec.acked
                self._emit(inst, "cleared")

    def acknowledge(self, alarm_id: str, user: str, now_ns: int | None = None) -> AlarmRecord:
        """Acknowledge an alarm; raises KeyError for an unknown id."""
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            inst = self._instances[alarm_id]
            rec = inst.record
            rec.acked = True
            rec.acked_by = user
            rec.acked_ns = now
            if rec.state != "active":
                rec.latched = False
            self._emit(inst, "acknowledged")
            return AlarmRecord(**asdict(rec))

    def _emit(self, inst: _Instance, transition: str) -> None:
        inst.record.transition = transition
        rec = AlarmRecord(**asdict(inst.record))
        self._save()
        if self.on_transition is not None:
            try:
                self.on_transition(rec)
            except Exception:
                log.exception("alarm transition callback failed for %s", rec.id)

    # -- views -------------------------------------------------------------------
    def records(self) -> list[AlarmRecord]:
        with self._lock:
            out = []
            for inst in self._instances.values():
                rec = AlarmRecord(**asdict(inst.record))
                rec.transition = "updated"
                out.append(rec)
            return out

    def get(self, alarm_id: str) -> AlarmRecord:
        with self._lock:
            return AlarmRecord(**asdict(self._instances[alarm_id].record))

    # -- persistence ---------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            doc = json.loads(self.state_path.read_text())
            if doc.get("version") != STATE_VERSION:
                raise ValueError(f"version {doc.get('version')!r}")
            return dict(doc.get("alarms") or {})
        except (OSError, ValueError, AttributeError) as exc:
            log.error("alarm state %s unreadable (%s): starting without it", self.state_path, exc)
            return {}

    def _save(self) -> None:
        if self.state_path is None:
            return
        doc: dict[str, Any] = {"version": STATE_VERSION, "alarms": {}}
        for iid, inst in self._instances.items():
            doc["alarms"][iid] = {
                "rule": inst.rule.id,
                "tags": inst.tags,
                "since_ns": inst.since_ns,
                "record": asdict(inst.record),
            }
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
            "active": rec.state == "active",
            "acked": bool(rec.acked),
            "latched": bool(rec.latched),
            "transition": rec.transition,
            "message": rec.message,
        },
        tags={"alarm": rec.id, "severity": rec.severity},
    )
