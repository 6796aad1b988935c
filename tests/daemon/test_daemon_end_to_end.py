"""End to end on loopback with the real chain: replay of a small simulated
file, a subscriber that checks every message arrived in order, a late viewer,
a stuck viewer, and the live source on the MIDAS stand-in going away and
coming back."""

from __future__ import annotations

import threading

import pytest
import zmq
from conftest import wait_for
from standin import get_midas, standin  # noqa: F401

from cygno_online.daemon.config import parse_config
from cygno_online.daemon.main import Daemon
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.messages import decode
from cygno_online.sources.replay import ReplaySource

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
    finally:
        sub.close()
        stuck.close()
        daemon.shutdown()


@pytest.mark.usefixtures("standin")
def test_live_midas_standin_disappears_and_returns(tmp_path):

    from cygno_online.simulate import Simulator

    midas = get_midas()
    exp = midas.experiment.create("e2e")
    data = base_config(
        tmp_path,
        type="midas",
        midas={
            "experiment": "e2e",
            "receive_timeout_ms": 20,
            "retry": {"initial_s": 0.05, "max_s": 0.2},
        },
    )
    cfg, chain = parse_config(data, source="test")
    daemon = Daemon(cfg, chain)
    daemon.start()
    sim = Simulator(LAYOUT, seed=2, run=30, pedestal=False, exposure_s=0.3)
    events = [e.data for e in sim.events(6)]  # 6 images + slow-control events
    first, rest = events[:3], events[3:]
    try:
        ep = daemon.publisher.endpoints
        with MonitorClient(ep["pub"], ep["snapshot"], ep["control"]) as c:
            wait_for(lambda: daemon.source.connects == 1, what="connected")
            exp.start_run(30, "S001:DATA:test")
            wait_for(lambda: c.state.run.get("run") == 30, what="run 30 at the viewer")
            for data_ in first:
                exp.produce(data_)
            wait_for(lambda: daemon.health.counters()["events_in"] == 3, what="first events")
            exp.go_away()
            wait_for(
                lambda: any("disconnected" in r.text for r in list(c.state.log)),
                what="viewer told about the disconnection",
            )
            exp.come_back()
            wait_for(lambda: daemon.source.connects == 2, what="reconnected")
            exp.start_run(31)
            wait_for(lambda: c.state.run.get("run") == 31, what="run 31")
            for data_ in rest:
                exp.produce(data_)
            before = daemon.health.counters()["events_processed"]

            def all_accounted():
                c = daemon.health.counters()
                # a burst into a live (newest-wins) queue may drop: every
                # event is either analysed or counted as a monitor drop
                return c["events_in"] == len(events) and (
                    c["events_processed"] + c["events_dropped"] == len(events)
                )

            wait_for(all_accounted, what="events flow again")
            assert daemon.health.counters()["events_processed"] > before
    finally:
        daemon.shutdown()
