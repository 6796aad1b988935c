"""End to end on loopback with the real chain: replay of a small simulated
file, a subscriber that checks every message arrived in order, a late viewer,
a stuck viewer, and the live source on the MIDAS stand-in going away and
coming back."""

from __future__ import annotations

import os
import signal
import threading

import zmq

from cygno_online.daemon.config import parse_config
from cygno_online.daemon.main import Daemon
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.messages import decode
from cygno_online.sources.replay import ReplaySource
from cygno_online.testing.waiting import wait_for

N_EVENTS = 12
LAYOUT = "crop:128"


def write_run(path, run=12, n=N_EVENTS):
    from cygno_online.simulate import Simulator

    sim = Simulator(LAYOUT, seed=5, run=run, pedestal=False, exposure_s=0.3)
    count = 0
    with open(path, "wb") as fh:
        fh.write(sim.bor())
        for ev in sim.events(n):  # n images plus the slow-control events between them
            fh.write(ev.data)
            count += 1
        fh.write(sim.eor())
    return path, count


class Gated:
    """Holds a source until the test's viewers are connected."""

    def __init__(self, inner, gate):
        self.inner, self.gate = inner, gate
        self.name, self.sampling = inner.name, inner.sampling
        self.endless = inner.endless
        self.lossless = getattr(inner, "lossless", False)

    def run(self, sink, stop):
        while not self.gate.wait(0.1):
            sink.heartbeat()
            if stop.is_set():
                return
        self.inner.run(sink, stop)

    def send_message(self, text, is_error=False):
        self.inner.send_message(text, is_error)

    def describe(self):
        return self.inner.describe()


def base_config(tmp_path, **source):
    return {
        "experiment": "TEST",
        "state_dir": str(tmp_path / "state"),
        "summary_dir": str(tmp_path / "summaries"),
        "source": source or {"type": "simulator"},
        "publish": {
            "bind": "tcp://127.0.0.1:*",
            "snapshot_bind": "tcp://127.0.0.1:*",
            "control_bind": "tcp://127.0.0.1:*",
            "heartbeat_s": 0.2,
        },
        "pipeline": {"health_every_s": 0.3, "queue_events": 4},
        "analyzers": [{"plugin": "daqhealth"}],
    }


def test_replay_subscriber_late_viewer_and_stuck_viewer(tmp_path):
    path, n_events = write_run(tmp_path / "run00012.mid")
    cfg, chain = parse_config(base_config(tmp_path), source="test")
    gate = threading.Event()
    source = Gated(ReplaySource([path], speed="max"), gate)
    daemon = Daemon(cfg, chain, source=source)
    daemon.start()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.rcvhwm = 100000
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    stuck = ctx.socket(zmq.SUB)
    stuck.rcvhwm = 1
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        ep = daemon.publisher.endpoints
        sub.connect(ep["pub"])
        stuck.connect(ep["pub"])
        wait_for(lambda: sub.poll(50), what="subscription live")
        gate.set()
        messages = []
        while not any(m.kind == "summary" for m in messages):
            assert sub.poll(20000), "daemon went silent"
            messages.append(decode(sub.recv_multipart()))
        seqs = [m.seq for m in messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq gap"
        runs = [m.body["state"] for m in messages if m.kind == "run"]
        assert runs[:1] == ["running"]
        summary = next(m for m in messages if m.kind == "summary").body
        assert summary["counters"]["events_processed"] == n_events
        assert summary["counters"]["events_dropped"] == 0
        per_event = [
            m.body["serial"] for m in messages if m.kind == "metric" and m.body["serial"] > 0
        ]
        assert per_event == sorted(per_event) and per_event
        # the stuck viewer (never reads) did not stop the daemon: everything was processed
        assert daemon.health.counters()["events_processed"] == n_events
        # a late viewer gets the same state from the snapshot
        with MonitorClient(ep["pub"], ep["snapshot"], ep["control"]) as late:
            wait_for(lambda: late.snapshots >= 1, what="late snapshot")
            assert late.state.summary.get("run") == summary.get("run")
            wait_for(lambda: late.state.run.get("state") == "stopped", what="run state")
            assert set(late.state.series) == set(daemon.publisher.state.series)
        assert list((tmp_path / "summaries").glob("*"))
        # the run's row in the default registry (SQLite in the state directory)
        from cygno_online.sinks.registry import RunRegistry

        with RunRegistry(f"sqlite://{tmp_path}/state/runs.sqlite") as reg:
            row = wait_for(lambda: reg.get(summary["run"]), what="registry row")
        assert row["events_processed"] == n_events and row["verdict"] in ("good", "warning")
        # the reference checks ran at end of run (same code as offline)
        assert summary["verdict"] == row["verdict"] and isinstance(summary["checks"], list)
        assert {c["name"] for c in summary["checks"]} == {c["name"] for c in row["checks"]}
    finally:
        sub.close()
        stuck.close()
        daemon.shutdown()


def live_daemon(tmp_path, exp, monkeypatch, name="d"):
    for k, v in exp.client_env().items():
        monkeypatch.setenv(k, v)  # the reader process inherits them
    data = base_config(tmp_path / name, type="midas", midas={})
    data["summary_dir"] = str(tmp_path / "summaries")
    cfg, chain = parse_config(data, source="test")
    daemon = Daemon(cfg, chain)
    daemon.start()
    return daemon


def test_live_midas_standin_disappears_and_returns(tmp_path, experiment, monkeypatch):
    from cygno_online.simulate import Simulator

    exp = experiment
    daemon = live_daemon(tmp_path, exp, monkeypatch)
    sim = Simulator(LAYOUT, seed=2, run=30, pedestal=False, exposure_s=0.3)
    events = [e.data for e in sim.events(6)]  # 6 images + slow-control events
    first, rest = events[:3], events[3:]
    try:
        ep = daemon.publisher.endpoints
        with MonitorClient(ep["pub"], ep["snapshot"], ep["control"]) as c:
            wait_for(lambda: daemon.source.connects == 1, what="connected")
            exp.start_run(30, "S001:DATA:test")
            wait_for(lambda: c.state.run.get("run") == 30, what="run 30 at the viewer")
            exp.produce(first)
            wait_for(lambda: daemon.health.counters()["events_in"] == 3, what="first events")
            exp.kill()
            wait_for(
                lambda: any("disconnected" in r.text for r in list(c.state.log)),
                what="viewer told about the disconnection",
            )
            exp.restart()
            wait_for(lambda: daemon.source.connects == 2, what="reconnected")
            exp.stop_run()  # run 30 ends (complete) after the reconnection
            exp.start_run(31)
            wait_for(lambda: c.state.run.get("run") == 31, what="run 31")
            exp.produce(rest)

            def all_accounted():
                n = daemon.health.counters()
                # a burst into a live (newest-wins) queue may drop: every
                # event is either analysed or counted as a monitor drop
                return n["events_in"] == len(events) and (
                    n["events_processed"] + n["events_dropped"] == len(events)
                )

            wait_for(all_accounted, what="events flow again")
            # the reader is a watchdog component; a reader crash is the
            # supervisor's business, not a watchdog failure
            os.kill(daemon.source.reader_pid, signal.SIGKILL)
            wait_for(lambda: daemon.source.connects == 3, what="new reader")
            daemon.watchdog.check()
            assert daemon.watchdog.component("reader").state == "ok"
            assert daemon.watchdog.healthy()
            health = daemon.health.report()
            assert health["source"]["connects"] == 3
            assert set(health["memory"]) == {"anon", "file", "shmem"}
    finally:
        daemon.shutdown()
    assert (tmp_path / "summaries" / "run00030-summary.json").exists()
    assert (tmp_path / "summaries" / "run00031-summary.json").exists()


def test_shutdown_all_ends_the_session_not_the_daemon(tmp_path, experiment, monkeypatch):
    daemon = live_daemon(tmp_path, experiment, monkeypatch)
    try:
        wait_for(lambda: daemon.source.connects == 1, what="connected")
        experiment.shutdown_all()
        wait_for(lambda: daemon.source.connects == 2, what="a new session")
        assert not daemon.signals.stop and daemon.exit_code == 0
    finally:
        daemon.shutdown()


def test_a_run_survives_a_daemon_restart_in_parts(tmp_path, experiment, monkeypatch):
    import json

    from cygno_online.testing.midas_standin.frontend import small_event

    experiment.start_run(42, "long run")
    first = live_daemon(tmp_path, experiment, monkeypatch, "one")
    try:
        wait_for(lambda: first.source.connects == 1, what="connected")
        experiment.produce([small_event(1), small_event(2)])
        wait_for(lambda: first.health.counters()["events_processed"] == 2, what="events")
    finally:
        first.shutdown()  # mid-run: part 1 written, incomplete
    part1 = tmp_path / "summaries" / "run00042-summary.json"
    text1 = part1.read_text()
    assert json.loads(text1)["counters"]["complete"] is False
    second = live_daemon(tmp_path, experiment, monkeypatch, "two")
    try:
        wait_for(lambda: second.source.connects == 1, what="connected again")
        experiment.produce([small_event(3)])
        wait_for(lambda: second.health.counters()["events_processed"] == 1, what="events")
        experiment.stop_run()
        part2 = tmp_path / "summaries" / "run00042-part2-summary.json"
        wait_for(part2.exists, what="part 2")
    finally:
        second.shutdown()
    assert part1.read_text() == text1  # never overwritten
    doc = json.loads(part2.read_text())
    assert doc["part"] == 2 and doc["previous_parts"] == [part1.name]
    assert doc["counters"]["complete"] is True
    total = doc["counters_all_parts"]
    assert total["parts"] == 2 and total["events_processed"] == 3
    assert total["events_by_id"] == {"1": 3}
