"""Simulated LIME/CYGNO-04 metric streams at the real rate, for the shipped
alarm rules.

A few events of the simulator go through the real analysis chain of a
shipped configuration (its bank map and analyzers); their outputs are the
templates of a long stream replayed at the real rates: a trigger every
``exposure + readout`` (0.6 s, ~1.7 Hz, lime.md), each slow-control event id
at its real period (``simulate.slowcontrol.PERIODS_S``: environment, HV, gas
60 s, camera status and trigger module 10 s). Trigger templates are cycled;
the ``daq`` points are recomputed by a real DAQ-health analyzer for every
replayed event (rates, serials and counters progress as in a real run). The
daemon's health report comes every 5 s (``pipeline.health_every_s``) through
the real :func:`health_metric`, the InfluxDB sink's health from a real
:class:`InfluxSink` that is not sending (nominal: nothing pending).

Analysing every one of the ~1500 frames of 15 minutes would take minutes on
the shared 2-core machine; cycling K analysed frames keeps the values
realistic (their noise included) and the test fast.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cygno_online.analysis.outputs import Metric
from cygno_online.daemon.config import parse_config
from cygno_online.decode.items import EventContext, EventSeen
from cygno_online.decode.runinfo import run_info_from_odb
from cygno_online.midas.event import parse_event
from cygno_online.simulate.run import Simulator
from cygno_online.simulate.slowcontrol import EVENTID_TRIGGER, PERIODS_S

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
#: the daemon's health report period in the shipped configurations
HEALTH_EVERY_S = 5.0

LAYOUT = {"lime.yaml": "lime", "cygno04.yaml": "cygno04", "demo.yaml": "lime"}


def load_config(name: str, edit: Callable[[dict], None] | None = None) -> tuple[Any, Any]:
    data = yaml.safe_load((ROOT / "config" / name).read_text())
    # a fresh state directory: no pedestal maps or alarm state of this machine
    data["state_dir"] = tempfile.mkdtemp(prefix="cygno-alarms-")
    if edit is not None:
        edit(data)
    return parse_config(data, source=name)


@dataclass
class Templates:
    run: Any
    begin: list[Metric]
    #: per analysed trigger: its non-daq metrics
    triggers: list[list[Metric]]
    #: per slow-control event id: list of per-event metric lists
    slow: dict[int, list[list[Metric]]]
    #: (size, bank names) of each analysed event, by event id
    shapes: dict[int, list[tuple[int, tuple[str, ...]]]]
    all_metrics: list[Metric]
    chain: Any
    cfg: Any


def analyse(
    name: str,
    k: int,
    edit: Callable[[dict], None] | None = None,
    pedestal_frames: int = 0,
    layout: str | None = None,
) -> Templates:
    """Run ``k`` simulated triggers (each with every slow-control event)
    through the shipped configuration's chain; first a pedestal run of
    ``pedestal_frames`` images when asked (stored maps, as in a real shift)."""
    cfg, chain = load_config(name, edit)
    layout = layout or LAYOUT[name]
    if pedestal_frames:
        ped = Simulator(layout, seed=6, run=4241, pedestal=True, sc_every_n_triggers=1)
        bor = parse_event(ped.bor(), source="sim")
        prun = run_info_from_odb(
            bor.odb(), run=bor.header.serial_number, time_stamp=bor.header.time_stamp, source="s"
        )
        chain.begin_run(prun)
        for ev in ped.events(pedestal_frames):
            chain.process_event(parse_event(ev.data, source="sim"), run=prun.run, source="sim")
        chain.end_run()
    sim = Simulator(layout, seed=7, run=4242, sc_every_n_triggers=1)
    bor = parse_event(sim.bor(), source="sim")
    run = run_info_from_odb(
        bor.odb(), run=bor.header.serial_number, time_stamp=bor.header.time_stamp, source="sim"
    )
    begin = [m for m in chain.begin_run(run) if isinstance(m, Metric)]
    triggers: list[list[Metric]] = []
    slow: dict[int, list[list[Metric]]] = {}
    shapes: dict[int, list[tuple[int, tuple[str, ...]]]] = {}
    everything: list[Metric] = list(begin)
    for ev in sim.events(k):
        event = parse_event(ev.data, source="sim")
        res = chain.process_event(event, run=run.run, source="sim", received_ns=ev.time_ns)
        assert not res.errors and not res.analyzer_errors, (res.errors, res.analyzer_errors)
        metrics = [m for m in res.outputs if isinstance(m, Metric)]
        everything += metrics
        own = [m for m in metrics if not (m.family == "daq" and "event_id" in m.tags)]
        shapes.setdefault(ev.event_id, []).append((len(ev.data), tuple(event.banks)))
        if ev.event_id == EVENTID_TRIGGER:
            triggers.append(own)
        else:
            slow.setdefault(ev.event_id, []).append(own)
    return Templates(run, begin, triggers, slow, shapes, everything, chain, cfg)


def _clone(m: Metric, t: int, serial: int) -> Metric:
    return Metric(m.family, t, m.run, serial, dict(m.fields), dict(m.tags), dict(m.units))


def health_body(events: int, uptime_s: float, analyzers: list[str]) -> dict[str, Any]:
    """A nominal health report of the daemon (nothing dropped, all alive)."""
    return {
        "uptime_s": uptime_s,
        "events_in": events,
        "events_processed": events,
        "events_dropped": 0,
        "rate_in_hz": 1.7,
        "rate_processed_hz": 1.7,
        "drops": {},
        "decode_errors": 0,
        "analyzer_errors": 0,
        "queue_depth": 0,
        "cpu_percent": 80.0,
        "rss_bytes": 900_000_000,
        "analyzer_ms": {a: 50.0 for a in analyzers},
        "source_state": "running",
        "publisher": {
            "dropped_queue": 0,
            "dropped_send": 0,
            "displays_skipped": 0,
            "series_evicted": 0,
        },
        "watchdog": {
            "failed": 0,
            "failures_total": 0,
            "components": {
                n: {"state": "ok", "age_s": 0.4, "beats": int(uptime_s * 2)}
                for n in ("source", "analysis", "publisher", "influx")
            },
        },
    }


def sink_metric(t: int, run: int) -> Metric:
    """The real sink's health point, nominal (not started: nothing pending)."""
    from cygno_online.sinks.influx import InfluxSink

    sink = _SINK.get("sink")
    if sink is None:
        from cygno_online.params import Params

        cfg = {"enabled": True, "url": "http://127.0.0.1:9", "api": "v1", "database": "x"}
        sink = InfluxSink.from_params(
            Params(cfg, "influx"), state_dir=Path(tempfile.mkdtemp()), experiment="LIME"
        )
        # a started sender thread with nothing to send reports "ok"
        # (InfluxSink._run); the thread itself is not needed here
        sink.state = "ok"
        _SINK["sink"] = sink
    (m,) = sink.health_metrics(t)
    m.run = run
    return m


_SINK: dict[str, Any] = {}


def stream(tpl: Templates, minutes: float, *, start_ns: int | None = None) -> Iterator[Metric]:
    """``minutes`` of metrics in time order at the real rates."""
    from cygno_online.analyzers.daqhealth.analyzer import DaqHealthAnalyzer

    from cygno_online.daemon.health import health_metric
    from cygno_online.params import Params

    daq = DaqHealthAnalyzer()
    daq.configure(Params({"sampling": "nonblocking"}, "daqhealth"), tpl.chain._env)
    run = tpl.run
    list(daq.begin_run(run))
    t0 = start_ns if start_ns is not None else run.start_time_ns
    end = t0 + int(minutes * 60 * S)
    period = int(0.6 * S)
    nxt = {EVENTID_TRIGGER: t0 + period}
    for eid in tpl.slow:
        nxt[eid] = t0 + int(PERIODS_S[eid] * S) // 3 + eid * S
    next_health = t0 + int(HEALTH_EVERY_S * S)
    serials = dict.fromkeys(nxt, 0)
    events = 0
    analyzers = [a.instance_name for a in tpl.chain.analyzers]
    for m in tpl.begin:
        yield _clone(m, t0, 0)
    while True:
        eid = min(nxt, key=nxt.get)
        t = nxt[eid]
        if next_health <= t:
            if next_health > end:
                return
            body = health_body(events, (next_health - t0) / S, analyzers)
            yield health_metric(body, run.run, next_health)
            yield sink_metric(next_health, run.run)
            next_health += int(HEALTH_EVERY_S * S)
            continue
        if t > end:
            return
        serial = serials[eid]
        serials[eid] += 1
        events += 1
        if eid == EVENTID_TRIGGER:
            templates = tpl.triggers[serial % len(tpl.triggers)]
            nxt[eid] = t + period
        else:
            per = tpl.slow[eid]
            templates = per[serial % len(per)]
            nxt[eid] = t + int(PERIODS_S[eid] * S)
        size, banks = tpl.shapes[eid][serial % len(tpl.shapes[eid])]
        ctx = EventContext(run.run, serial, eid, 0, t, "sim")
        yield from daq.process(EventSeen(ctx, size, banks, (), t + 200_000_000), {})
        for m in templates:
            yield _clone(m, t, serial)


class Replay:
    """The shipped rules on a stream, with a fake clock (the stream's time)."""

    def __init__(self, rules: list, start_ns: int) -> None:
        from cygno_online.alarms.engine import AlarmEngine

        self.t = start_ns
        self.transitions: list = []
        self.engine = AlarmEngine(rules, on_transition=self.transitions.append, clock=self._now)
        self.engine.set_running(True)
        self._next_tick = start_ns + S

    def _now(self) -> int:
        return self.t

    def feed(self, metrics, until: Callable[[], bool] | None = None) -> None:
        for m in metrics:
            while self._next_tick <= m.time_ns:
                self.t = self._next_tick
                self.engine.tick()
                self._next_tick += S
            self.t = max(self.t, m.time_ns)
            self.engine.observe(m)
            if until is not None and until():
                return

    def raised(self, rule_id: str | None = None) -> list:
        return [
            r
            for r in self.transitions
            if r.transition == "raised" and (rule_id is None or r.rule == rule_id)
        ]


#: analysed triggers per configuration (cycled in the long streams)
K = {"lime.yaml": 6, "cygno04.yaml": 2, "demo.yaml": 4}
_CACHE: dict[str, Templates] = {}


def _templates(name: str) -> Templates:
    if name not in _CACHE:
        _CACHE[name] = analyse(name, K[name])
    return _CACHE[name]


@pytest.fixture(scope="session")
def shipped_templates():
    """Analysed simulated events of the shipped configurations, shared by the
    alarm and catalogue tests (the analysis is the slow part: once)."""
    yield _templates
    for tpl in _CACHE.values():
        tpl.chain.close()
    _CACHE.clear()
