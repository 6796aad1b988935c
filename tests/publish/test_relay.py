"""The relay on loopback: a daemon-side Publisher, a Relay, viewers behind it
(the same MonitorClient the TUI uses), restarts on either side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.messages import Message
from cygno_online.publish.publisher import Publisher
from cygno_online.publish.relay import Relay
from cygno_online.testing.waiting import wait_for


def daemon(acks: list | None = None, ports: dict | None = None, **kw) -> Publisher:
    def ack(req):
        if acks is not None:
            acks.append(req["user"])
        return {"alarm": {"id": req["alarm"], "acked_by": req["user"]}}

    ports = ports or {}
    pub = Publisher(
        bind=ports.get("pub", "tcp://127.0.0.1:*"),
        snapshot_bind=ports.get("snapshot", "tcp://127.0.0.1:*"),
        control_bind=ports.get("control", "tcp://127.0.0.1:*"),
        heartbeat_s=0.1,
        control_handlers={"ack": ack, "status": lambda req: {"status": {"hello": "world"}}},
        **kw,
    )
    pub.start()
    return pub


def relay_for(pub: Publisher, ports: dict | None = None, **kw) -> Relay:
    ports = ports or {}
    return Relay(
        pub.endpoints["pub"],
        pub.endpoints["snapshot"],
        pub.endpoints["control"],
        bind=ports.get("pub", "tcp://127.0.0.1:*"),
        snapshot_bind=ports.get("snapshot", "tcp://127.0.0.1:*"),
        control_bind=ports.get("control", "tcp://127.0.0.1:*"),
        timeout_s=kw.pop("timeout_s", 0.5),
        **kw,
    )


def viewer(relay: Relay, **kw) -> MonitorClient:
    return MonitorClient(
        relay.endpoints["pub"],
        relay.endpoints["snapshot"],
        relay.endpoints["control"],
        timeout_s=kw.pop("timeout_s", 0.5),
        **kw,
    )


def metric(i: int, family: str = "camera") -> Metric:
    return Metric(family, 1_000 + i, 7, i, {"mean": float(i)}, {"camera": "cam0"})


def serial(c: MonitorClient, family: str = "camera") -> int | None:
    recs = c.state.find_series(family)
    return recs[0].serial if recs else None


def test_fifty_viewers_through_one_relay_see_what_the_daemon_has():
    pub = daemon()
    # The relay's dead-daemon timeout well above any stall of a loaded 2-core
    # machine serving 50 viewers: at 0.5 s (the other tests' value) a stall
    # of the relay thread counted as a lost daemon and a second snapshot
    # (seen once in CI while a demo ran beside it), which is not the claim
    # here; the loss of the daemon has its own tests below.
    relay = relay_for(pub, timeout_s=30.0)
    viewers = [viewer(relay) for _ in range(50)]
    try:
        pub.submit_outputs([metric(i) for i in range(20)])
        img = np.arange(12, dtype=np.float32).reshape(3, 4)
        pub.submit_outputs([Display("image", "camera/cam0/frame", 7, 19, 5, {"image": img})])
        pub.submit(Message("run", {"run": 7, "state": "running"}))
        wait_for(
            lambda: all(serial(v) == 19 and v.state.run.get("run") == 7 for v in viewers),
            timeout=30,
            what="every viewer up to date",
        )
        for v in viewers:
            np.testing.assert_array_equal(
                v.state.displays["camera/cam0/frame"].arrays["image"], img
            )
            assert len(v.state.history["camera{camera=cam0}"]["mean"]) == 20
        # the daemon serves one subscriber and one snapshot, whatever the viewers
        assert relay.snapshots == 1
        assert relay.stats()["snapshots_served"] >= 50
        # live updates keep flowing to everyone
        pub.submit_outputs([metric(100)])
        wait_for(lambda: all(serial(v) == 100 for v in viewers), timeout=30, what="live update")
        assert relay.state.seq == pub.state.seq or relay.state.seq <= pub.seq
    finally:
        for v in viewers:
            v.close()
        relay.close()
        pub.stop()


def test_control_through_relay_carries_the_viewers_identity():
    acks: list[str] = []
    pub = daemon(acks)
    relay = relay_for(pub, name="lngs")
    try:
        with viewer(relay) as v:
            assert v.query("status") == {"ok": True, "status": {"hello": "world"}}
            reply = v.ack("gas_alarm", "anna")
            assert reply["ok"]
            assert reply["alarm"]["acked_by"].startswith("anna (peer 127.0.0.1 ")
            assert reply["alarm"]["acked_by"].endswith(" via relay lngs)")
            assert acks == [reply["alarm"]["acked_by"]]
            assert not v.query("reboot")["ok"]
        assert relay.stats()["control_forwarded"] == 3
    finally:
        relay.close()
        pub.stop()


def test_control_timeout_when_the_daemon_is_gone():
    pub = daemon()
    relay = relay_for(pub, control_timeout_s=0.3)
    try:
        with viewer(relay) as v:
            wait_for(lambda: v.snapshots >= 1, what="viewer in step")
            pub.stop()
            reply = v.query("status", timeout_s=5)
            assert reply == {"ok": False, "error": "timeout (daemon behind relay relay)"}
            assert relay.control_timeouts == 1
    finally:
        relay.close()


def test_relay_restart_every_viewer_recovers():
    pub = daemon()
    relay = relay_for(pub)
    ports = dict(relay.endpoints)
    viewers = [viewer(relay) for _ in range(5)]
    try:
        pub.submit_outputs([metric(i) for i in range(10)])
        wait_for(lambda: all(serial(v) == 9 for v in viewers), what="first relay")
        relay.close()
        wait_for(lambda: not any(v.connected for v in viewers), what="viewers disconnected")
        pub.submit_outputs([metric(50)])  # missed by everyone while the relay is down
        relay = relay_for(pub, ports)
        pub.submit_outputs([metric(51, family="pmt")])
        wait_for(
            lambda: all(
                v.connected and serial(v) == 50 and serial(v, "pmt") == 51 for v in viewers
            ),
            timeout=20,
            what="every viewer back with the missed update",
        )
    finally:
        for v in viewers:
            v.close()
        relay.close()
        pub.stop()


def test_daemon_restart_behind_a_relay_every_viewer_recovers():
    pub = daemon()
    ports = dict(pub.endpoints)
    relay = relay_for(pub)
    viewers = [viewer(relay) for _ in range(5)]
    try:
        pub.submit_outputs([metric(i) for i in range(30)])
        wait_for(lambda: all(serial(v) == 29 for v in viewers), what="first daemon")
        pub.stop()
        wait_for(lambda: not any(v.connected for v in viewers), what="viewers see it gone")
        assert all(v.disconnected_since is not None for v in viewers)
        pub = daemon(ports=ports)
        pub.submit_outputs([metric(500, family="pmt")])
        wait_for(
            lambda: all(v.connected and serial(v, "pmt") == 500 for v in viewers),
            timeout=20,
            what="every viewer on the new daemon",
        )
        # the new daemon's state replaced the old one everywhere
        assert all(serial(v) is None for v in viewers)
    finally:
        for v in viewers:
            v.close()
        relay.close()
        pub.stop()


def test_relay_of_a_relay():
    pub = daemon()
    first = relay_for(pub)
    second = Relay(
        first.endpoints["pub"],
        first.endpoints["snapshot"],
        first.endpoints["control"],
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
        name="second",
    )
    try:
        pub.submit_outputs([metric(i) for i in range(5)])
        with viewer(second) as v:
            wait_for(lambda: serial(v) == 4, what="two hops")
            who = v.ack("x", "bob")["alarm"]["acked_by"]
            assert who.startswith("bob (peer ") and "via relay second) (peer " in who
            assert who.endswith("via relay relay)")
    finally:
        second.close()
        first.close()
        pub.stop()


@pytest.fixture
def keys(tmp_path: Path) -> dict:
    import zmq.auth

    folder = tmp_path / "keys"
    folder.mkdir()
    out = {}
    for name in ("daemon", "relay", "alice", "mallory"):
        pub_file, secret_file = zmq.auth.create_certificates(str(folder), name)
        out[name] = (zmq.auth.load_certificate(pub_file)[0], secret_file)
    for side, names in (("daemon_ok", ["relay"]), ("relay_ok", ["alice"])):
        d = tmp_path / side
        d.mkdir()
        for n in names:
            (d / f"{n}.key").write_text(Path(folder / f"{n}.key").read_text())
        out[side] = str(d)
    return out


def test_curve_on_both_sides(keys):
    acks: list[str] = []
    pub = daemon(
        acks,
        curve_secret_key_file=keys["daemon"][1],
        curve_authorized_keys_dir=keys["daemon_ok"],
    )
    relay = relay_for(
        pub,
        server_key=keys["daemon"][0],
        client_key_file=keys["relay"][1],
        curve_secret_key_file=keys["relay"][1],
        curve_authorized_keys_dir=keys["relay_ok"],
        name="lngs",
    )
    try:
        pub.submit_outputs([metric(3)])
        with viewer(relay, server_key=keys["relay"][0], client_key_file=keys["alice"][1]) as alice:
            wait_for(lambda: serial(alice) == 3, what="alice through the relay")
            reply = alice.ack("gas_alarm", "anna")
            assert reply["alarm"]["acked_by"] == "anna (key alice via relay lngs)"
        with viewer(relay, server_key=keys["relay"][0], client_key_file=keys["mallory"][1]) as m:
            assert m.query("status", timeout_s=0.5) == {"ok": False, "error": "timeout"}
            assert m.snapshots == 0
        assert acks == ["anna (key alice via relay lngs)"]
    finally:
        relay.close()
        pub.stop()


def test_relay_command_refuses_an_open_bind_without_curve():
    from cygno_online.cli import main

    assert main(["relay", "--bind", "tcp://0.0.0.0:6556"]) == 2


def test_relay_command_end_to_end():
    import os
    import re
    import signal
    import subprocess
    import sys

    pub = daemon()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cygno_online",
            "relay",
            "--connect",
            pub.endpoints["pub"],
            "--snapshot",
            pub.endpoints["snapshot"],
            "--control",
            pub.endpoints["control"],
            "--bind",
            "tcp://127.0.0.1:*",
            "--snapshot-bind",
            "tcp://127.0.0.1:*",
            "--control-bind",
            "tcp://127.0.0.1:*",
            "--name",
            "cli",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = ""
        while "snapshot" not in line:
            line = proc.stderr.readline()
            assert line, "relay exited before announcing its endpoints"
        pub_ep, snap_ep, ctl_ep = re.findall(r"tcp://127\.0\.0\.1:\d+", line)[1:4]
        pub.submit_outputs([metric(8)])
        with MonitorClient(pub_ep, snap_ep, ctl_ep, timeout_s=1.0) as v:
            wait_for(lambda: serial(v) == 8, timeout=60, what="viewer through the relay process")
            assert v.ack("a", "eve")["alarm"]["acked_by"].endswith("via relay cli)")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.stop()


def test_bench_relay_small():
    """The 0 / N direct / N via relay bench runs end to end (figures reported, not asserted)."""
    import argparse

    from cygno_online.bench import relay as bench_relay

    parser = argparse.ArgumentParser()
    bench_relay.add_arguments(parser)
    args = parser.parse_args(["--viewers", "3", "--seconds", "0.5", "--rate", "20"])
    report = bench_relay.run(args)
    zero, direct, via = report.rows
    assert zero.runs == 0 and direct.runs > 0 and via.runs > 0
    assert "relay_cpu_pct" in via.extra and "daemon_cpu_pct" in zero.extra


def test_relay_bind_conflict_is_a_config_error():
    from cygno_online.errors import ConfigError

    pub = daemon()
    first = relay_for(pub)
    try:
        with pytest.raises(ConfigError, match="--bind: cannot bind"):
            Relay(
                pub.endpoints["pub"],
                pub.endpoints["snapshot"],
                pub.endpoints["control"],
                bind=first.endpoints["pub"],
                snapshot_bind="tcp://127.0.0.1:*",
                control_bind="tcp://127.0.0.1:*",
            )
    finally:
        first.close()
        pub.stop()


def test_relay_and_daemon_sockets_use_keepalive_never_zmtp_heartbeats():
    """libzmq 4.3 aborts the process when a ZMTP heartbeat timeout meets a
    connection stopped by a full queue (see guard.use_tcp_keepalive): every
    socket of the daemon, the relay and the viewer sets its liveness options
    in that one place, so none may set heartbeats of its own."""
    import pathlib

    import zmq

    from cygno_online.publish import guard

    root = pathlib.Path(guard.__file__).resolve().parents[1]
    setters = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "HEARTBEAT_" in p.read_text(encoding="utf-8")
    )
    assert setters == ["publish/guard.py"]
    s = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        guard.use_tcp_keepalive(s)
        assert s.getsockopt(zmq.HEARTBEAT_IVL) == 0
        assert s.getsockopt(zmq.TCP_KEEPALIVE) == 1
    finally:
        s.close(linger=0)
