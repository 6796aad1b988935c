"""A real in-process daemon (fake chain and source) behind a relay: the alarm
a shifter acknowledges through the relay names who did it, in the daemon's
own record and at every viewer."""

from __future__ import annotations

import threading

from fakes import FakeChain, FakeSource, fake_summary, fake_write

from cygno_online.daemon.config import parse_config
from cygno_online.daemon.main import Daemon, run_in_thread
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.relay import Relay
from cygno_online.testing.waiting import wait_for

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


def test_ack_through_a_relay_names_the_shifter_and_the_relay(tmp_path):
    data = dict(CONFIG, state_dir=str(tmp_path / "state"))
    cfg, _ = parse_config(data, build_chain=False)
    gate = threading.Event()
    d = Daemon(cfg, FakeChain(), source=FakeSource(n=10, gate=gate, endless=True, lossless=True))
    d.pipeline._summarize, d.pipeline._write_summary = fake_summary, fake_write
    run_in_thread(d)
    ep = d.publisher.endpoints
    relay = Relay(
        ep["pub"],
        ep["snapshot"],
        ep["control"],
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
        name="lngs",
    )
    r = relay.endpoints
    try:
        with (
            MonitorClient(r["pub"], r["snapshot"], r["control"]) as anna,
            MonitorClient(r["pub"], r["snapshot"], r["control"]) as bob,
        ):
            wait_for(lambda: anna.snapshots and bob.snapshots, what="viewers in step")
            gate.set()
            alarm_id = "bright{camera=cam0}"
            wait_for(lambda: alarm_id in bob.state.alarms, timeout=60, what="alarm at the viewers")
            reply = anna.ack(alarm_id, "anna")
            assert reply["ok"], reply
            who = reply["alarm"]["acked_by"]
            assert who.startswith("anna (peer 127.0.0.1 ") and who.endswith(" via relay lngs)")
            # the daemon's own record, and the other shifter's view through the relay
            assert d.alarms.records() and any(rec.acked_by == who for rec in d.alarms.records())
            wait_for(lambda: bob.state.alarms[alarm_id].acked_by == who, what="ack seen by bob")
    finally:
        relay.close()
        d.request_stop()
        d.shutdown()
