"""The pipeline and the in-process daemon with a fake chain and source."""

from __future__ import annotations

import threading

import yaml
from fakes import FakeChain, FakeSource, fake_event, fake_summary, fake_write

from cygno_online.daemon.config import parse_config
from cygno_online.daemon.health import Health
from cygno_online.daemon.main import Daemon, run_in_thread
from cygno_online.daemon.pipeline import EventQueue, Pipeline, QItem
from cygno_online.decode.items import RunInfo
from cygno_online.publish.client import MonitorClient
from cygno_online.testing.waiting import wait_for


def test_queue_newest_wins_and_keeps_control_items():
    q = EventQueue(2)
    q.put_control(QItem("bor", 1))
    assert q.put_event(QItem("event", "a")) is None
    assert q.put_event(QItem("event", "b")) is None
    dropped = q.put_event(QItem("event", "c"))
    assert dropped.payload == "a"
    q.put_control(QItem("eor"))
    kinds = []
    while (item := q.get(0.01)) is not None:
        kinds.append((item.kind, item.payload))
    assert kinds == [("bor", 1), ("event", "b"), ("event", "c"), ("eor", None)]
    assert q.depth() == 0


class Recorder:
    def __init__(self):
        self.started, self.done, self.finished, self.states = [], [], [], []
        self.failed = None

    def run_started(self, run, outputs):
        self.started.append(run.run)

    def event_done(self, result, event, run):
        self.done.append(event.header.serial_number)

    def run_finished(self, run, summary):
        self.finished.append(summary)

    def periodic(self):
        pass

    def source_state(self, state, detail):
        self.states.append(state)

    def source_failed(self, exc):
        self.failed = exc

    def shutdown_requested(self):
        pass


def make_pipeline(chain, source, tmp_path, queue_events=2):
    rec = Recorder()
    p = Pipeline(
        chain,
        source,
        rec,
        Health(),
        queue_events=queue_events,
        summary_dir=tmp_path,
        summarize=fake_summary,
        write_summary=fake_write,
    )
    return p, rec


def test_slow_analysis_drops_oldest_and_counts(tmp_path, caplog):
    caplog.set_level("WARNING", logger="cygno_online.daemon.pipeline")
    gate = threading.Event()
    chain = FakeChain(gate)
    source = FakeSource(n=20)
    p, rec = make_pipeline(chain, source, tmp_path)
    p.start()
    wait_for(lambda: p.source_done.is_set(), what="source finished")
    gate.set()
    wait_for(lambda: p.finished, what="pipeline drained")
    assert p.stop()
    [summary] = rec.finished
    c = summary["counters"]
    assert c["events_seen"] + c["events_dropped"] == 20
    assert c["events_dropped"] >= 15  # 1 in analysis + 2 queued survive
    assert c["dropped_by_id"] == {"1": c["events_dropped"]}
    assert p.health.counters()["events_dropped"] == c["events_dropped"]
    # newest wins: the last event is always analysed
    assert rec.done[-1] == 19
    # the operator's log: the first drop in full (run, event id, serial),
    # the others summarised, never a line each
    lines = [r.getMessage() for r in caplog.records if "dropped event" in r.getMessage()]
    assert lines and len(lines) <= 2
    assert "run 5: the monitor dropped event id 1 serial 0 (large event queue full" in lines[0]
    assert (tmp_path / "run00005-summary.json").exists()


def test_lossless_source_waits_instead_of_dropping(tmp_path):
    chain = FakeChain()
    p, rec = make_pipeline(chain, FakeSource(n=50, lossless=True), tmp_path)
    p.start()
    wait_for(lambda: p.finished, what="pipeline drained")
    p.stop()
    assert rec.done == list(range(50))
    assert rec.finished[0]["counters"]["events_dropped"] == 0


def test_call_runs_between_events_and_stop_closes_run(tmp_path):
    chain = FakeChain()
    p, rec = make_pipeline(chain, FakeSource(n=0, endless=True), tmp_path)
    p.start()
    p.event(fake_event(1), 0)  # outside any run: analysed under a synthetic "idle" run 0
    wait_for(lambda: rec.done == [1], what="event processed")
    assert rec.started[-1] == 0
    assert p.call(lambda: chain.seen[-1]) == 1
    # stop with a run still open: it is closed as incomplete, summary written
    p.begin_run(RunInfo(run=9, start_time_ns=0))
    wait_for(lambda: 9 in rec.started, what="run 9")
    assert p.stop()
    # the synthetic run got no summary; run 9 is closed as incomplete
    assert [doc["run"] for doc in rec.finished] == [5, 9]  # 5: the fake source's own run
    assert rec.finished[-1]["counters"]["complete"] is False


CONFIG = {
    "experiment": "TEST",
    "source": {"type": "simulator"},
    "publish": {
        "bind": "tcp://127.0.0.1:*",
        "snapshot_bind": "tcp://127.0.0.1:*",
        "control_bind": "tcp://127.0.0.1:*",
        "heartbeat_s": 0.1,
    },
    "pipeline": {"health_every_s": 0.2, "queue_events": 4},
    "alarms": {
        "rules": [
            {"id": "bright", "family": "camera", "field": "mean", "above": 5, "severity": "error"}
        ]
    },
}


def make_daemon(tmp_path, source, data=None, path=None):
    data = dict(data or CONFIG)
    data["state_dir"] = str(tmp_path / "state")
    cfg, _ = parse_config(data, source=path, build_chain=False)
    chain = FakeChain()
    d = Daemon(cfg, chain, source=source)
    d.pipeline._summarize, d.pipeline._write_summary = fake_summary, fake_write
    return d, chain


def test_daemon_in_process_publishes_everything(tmp_path):
    gate = threading.Event()
    source = FakeSource(n=10, gate=gate, endless=True, lossless=True)
    d, chain = make_daemon(tmp_path, source)
    run_in_thread(d)
    ep = d.publisher.endpoints
    try:
        with MonitorClient(ep["pub"], ep["snapshot"], ep["control"]) as c:
            wait_for(lambda: c.snapshots >= 1, what="snapshot")
            seen = []
            c.on_update = lambda m: seen.append(m)
            gate.set()
            wait_for(
                lambda: c.state.summary.get("run") == 5 and c.state.run.get("state") == "stopped",
                what="run finished at the viewer",
            )
            serials = [
                m.body["serial"]
                for m in seen
                if m.kind == "metric" and m.body["family"] == "camera"
            ]
            assert serials == list(range(10))
            # alarm raised by the rule on camera.mean > 5, seen by the viewer and MIDAS
            alarm = c.state.alarms["bright{camera=cam0}"]
            assert alarm.state == "active_unack" and alarm.severity == "error"
            assert alarm.tags == {"camera": "cam0"} and alarm.rule == "bright"
            assert any("bright" in t and err for t, err in source.messages)
            reply = c.ack("bright{camera=cam0}", "tester")
            assert reply["ok"], reply
            wait_for(
                lambda: c.state.alarms["bright{camera=cam0}"].state == "active_ack",
                what="ack visible",
            )
            # acknowledged but active: still counted
            assert c.state.alarm_counts()["error"] == 1
            # shelve and unshelve through the control socket
            reply = c.shelve("bright{camera=cam0}", "tester", 600, "testing")
            assert reply["ok"] and reply["alarm"]["state"] == "shelved", reply
            wait_for(
                lambda: c.state.alarms["bright{camera=cam0}"].state == "shelved",
                what="shelved visible",
            )
            assert c.state.alarm_counts()["error"] == 0
            assert not c.shelve("bright{camera=cam0}", "tester", -1)["ok"]
            assert not c.shelve("nope", "tester", 60)["ok"]
            assert c.unshelve("bright{camera=cam0}", "tester")["ok"]
            status = c.query("status")
            assert status["ok"] and status["status"]["counters"]["events_processed"] == 10
            wait_for(lambda: c.state.health.get("events_processed") == 10, what="health")
            assert c.state.find_series("monitor")
            # the fields the shipped health alarm rules watch really arrive
            (mon,) = [r for r in c.state.find_series("monitor") if not r.tags]
            assert mon.fields["watchdog_failed"] == 0 and "events_dropped" in mon.fields
            assert c.gaps == 0
    finally:
        d.request_stop()
        d.shutdown()
    assert chain.closed
    assert (tmp_path / "state" / "summaries" / "run00005-summary.json").exists()
    assert (tmp_path / "state" / "alarms.json").exists()


def test_reload_applies_good_config_and_rejects_bad(tmp_path):
    path = tmp_path / "cfg.yaml"
    data = dict(CONFIG, state_dir=str(tmp_path / "state"))
    path.write_text(yaml.safe_dump(data))
    d, chain = make_daemon(tmp_path, FakeSource(n=0, endless=True), data, str(path))
    d.validate_reload_chain = False  # the fake plugin is not discoverable
    run_in_thread(d)
    try:
        good = dict(data)
        good["analyzers"] = [{"plugin": "fake", "params": {"gain": 3.0}}]
        good["alarms"] = {
            "rules": [
                {"id": "new_rule", "family": "monitor", "field": "events_dropped", "above": 1}
            ]
        }
        path.write_text(yaml.safe_dump(good))
        assert d.reload() is True
        assert chain.gain == 3.0
        assert [r.id for r in d.alarms.rules] == ["new_rule"]
        bad = dict(good)
        bad["alarms"] = {"rules": [{"id": "x", "family": "monitor", "field": "x", "above": "high"}]}
        path.write_text(yaml.safe_dump(bad))
        assert d.reload() is False
        bad2 = dict(good)
        bad2["analyzers"] = [{"plugin": "fake", "params": {"gain": -1}}]
        path.write_text(yaml.safe_dump(bad2))
        assert d.reload() is False
        assert chain.gain == 3.0 and [r.id for r in d.alarms.rules] == ["new_rule"]
    finally:
        d.request_stop()
        d.shutdown()


def test_influx_sink_gets_metrics_and_alarm_points(tmp_path):
    data = dict(CONFIG)
    data["influx"] = {
        "enabled": True,
        "url": "http://127.0.0.1:9",  # nothing listens: points stay in the spool
        "org": "-",
        "bucket": "cygno/autogen",
    }
    source = FakeSource(n=10, endless=True, lossless=True)
    d, _ = make_daemon(tmp_path, source, data)
    run_in_thread(d)
    try:
        wait_for(
            lambda: d.pipeline.chain.run is None and d.health.counters()["events_processed"] == 10,
            what="run done",
        )
        # camera metrics, the alarm transition and monitor points, all spooled
        wait_for(lambda: d.sink.stats()["points_pending"] >= 11, what="points spooled")
        wait_for(lambda: d.publisher.state.health.get("sink"), what="sink stats in health")
    finally:
        d.request_stop()
        d.shutdown()


def test_alarm_state_acks_and_history_survive_a_daemon_restart(tmp_path):
    """A real daemon raises and an operator acknowledges; the next daemon on
    the same state directory shows the acknowledged alarm, its shelving-free
    state and the history to a viewer that joins after the restart."""
    source = FakeSource(n=10, lossless=True)
    d, _ = make_daemon(tmp_path, source)
    run_in_thread(d)
    aid = "bright{camera=cam0}"
    try:
        wait_for(
            lambda: aid in d.alarms.ids() and d.alarms.get(aid).state == "active_unack",
            what="alarm raised",
        )
        d.alarms.acknowledge(aid, "night-shift")
    finally:
        d.request_stop()
        d.shutdown()
    history = [h["transition"] for h in d.alarms.history]
    assert history[:2] == ["raised", "acknowledged"]
    # restart on the same state directory; no events this time
    d2, _ = make_daemon(tmp_path, FakeSource(n=0, lossless=True))
    rec = d2.alarms.get(aid)
    assert rec.state == "active_ack" and rec.acked_by == "night-shift"
    assert rec.tags == {"camera": "cam0"}
    run_in_thread(d2)
    ep = d2.publisher.endpoints
    try:
        with MonitorClient(ep["pub"], ep["snapshot"], ep["control"]) as c:
            wait_for(lambda: aid in c.state.alarms, what="restored alarm at the viewer")
            assert c.state.alarms[aid].state == "active_ack"
            assert c.state.alarm_counts()["error"] == 1  # acknowledged, still counted
            wait_for(lambda: len(c.state.alarm_history) >= 2, what="history at the viewer")
            assert [h.transition for h in c.state.alarm_history][:2] == history[:2]
    finally:
        d2.request_stop()
        d2.shutdown()


class _Sized:
    """An event stand-in with the real Event's ``nbytes()``."""

    def __init__(self, name, nbytes):
        self.name, self._n = name, nbytes

    def nbytes(self):
        return self._n


def test_small_events_have_their_own_slots():
    # the run-start burst: a 10.6 MB frame being analysed, the next frame
    # and five slow-control events of < 6 kB arrive; with one bound of 2
    # events the slow-control readings were dropped, now only a third large
    # event drops the oldest large one, and small ones drop small ones
    q = EventQueue(2, max_small=3)
    frame = 10_616_832 + 16
    assert q.put_event(QItem("event", _Sized("f1", frame))) is None
    assert q.put_event(QItem("event", _Sized("f2", frame))) is None
    for k in range(3):
        assert q.put_event(QItem("event", _Sized(f"s{k}", 5840))) is None
    assert q.depth() == 5
    d = q.put_event(QItem("event", _Sized("s3", 720)))
    assert d.payload.name == "s0" and d.small
    d = q.put_event(QItem("event", _Sized("f3", frame)))
    assert d.payload.name == "f1" and not d.small
    # no size known (a test's string, a source without nbytes): large
    assert q.put_event(QItem("event", "x")).payload.name == "f2"
    order = []
    while (item := q.get(0.01)) is not None:
        order.append(item.payload if isinstance(item.payload, str) else item.payload.name)
    assert order == ["s1", "s2", "s3", "f3", "x"] and q.depth() == 0
    # the bound is the size: 64 kB is small, one byte more is not
    q = EventQueue(1, max_small=1)
    assert q.put_event(QItem("event", _Sized("a", 64 * 1024))) is None
    assert q.put_event(QItem("event", _Sized("b", 64 * 1024 + 1))) is None
