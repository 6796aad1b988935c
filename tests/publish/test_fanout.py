"""The ZeroMQ fan-out on loopback: publisher + snapshot + control served by
one thread, MonitorClient keeping a MonitorState in step (clone pattern)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zmq

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.messages import Message, decode
from cygno_online.publish.publisher import Publisher, downsample_image
from cygno_online.testing.waiting import wait_for


def make_publisher(**kw):
    handlers = kw.pop("control_handlers", None) or {
        "status": lambda req: {"status": {"hello": "world"}},
        "ack": lambda req: {"alarm": {"id": req["alarm"], "acked_by": req["user"]}},
    }
    pub = Publisher(
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
        heartbeat_s=0.1,
        control_handlers=handlers,
        **kw,
    )
    pub.start()
    return pub


def client_for(pub, **kw):
    return MonitorClient(
        pub.endpoints["pub"],
        pub.endpoints["snapshot"],
        pub.endpoints["control"],
        timeout_s=kw.pop("timeout_s", 2.0),
        **kw,
    )


def metric(i, family="camera"):
    return Metric(family, 1_000 + i, 7, i, {"mean": float(i), "n": i}, {"camera": "cam0"})


@pytest.fixture
def publisher():
    pub = make_publisher()
    yield pub
    pub.stop()


def test_every_message_arrives_in_order(publisher):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(publisher.endpoints["pub"])
    # The subscription is live once a heartbeat comes through.
    wait_for(lambda: sub.poll(50), timeout=30, what="first heartbeat")
    first = decode(sub.recv_multipart())
    publisher.submit_outputs([metric(i) for i in range(500)])
    seqs, serials = [first.seq], []
    while len(serials) < 500:
        assert sub.poll(5000), "message missing"
        msg = decode(sub.recv_multipart())
        seqs.append(msg.seq)
        if msg.kind == "metric":
            serials.append(msg.body["serial"])
    assert serials == list(range(500))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    sub.close()


def test_late_viewer_gets_the_snapshot(publisher):
    publisher.submit_outputs([metric(i) for i in range(50)])
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    publisher.submit_outputs([Display("image", "camera/cam0/frame", 7, 49, 5, {"image": img})])
    publisher.submit(Message("run", {"run": 7, "state": "running"}))
    wait_for(lambda: publisher.state.run.get("run") == 7, what="run applied")
    with client_for(publisher) as c:
        wait_for(lambda: c.snapshots >= 1 and c.state.run.get("run") == 7, what="snapshot")
        [rec] = c.state.find_series("camera", camera="cam0")
        assert rec.serial == 49
        np.testing.assert_array_equal(c.state.displays["camera/cam0/frame"].arrays["image"], img)
        assert len(c.state.history["camera{camera=cam0}"]["mean"]) == 50
        # and live updates keep flowing after the snapshot
        publisher.submit_outputs([metric(1000)])
        wait_for(lambda: c.state.find_series("camera")[0].serial == 1000, what="live update")
        assert c.connected and c.gaps == 0


def test_display_rate_limit_and_downsampling():
    pub = make_publisher(display_hz=0.5, display_max_side=64)
    try:
        big = np.ones((256, 200), dtype=np.uint16)
        for i in range(20):
            boxes = [
                {"row0": 40, "col0": 8, "row1": 80, "col1": 24, "class": "alpha"},
                [4, 8, 12, 16],
            ]
            pub.submit_outputs(
                [Display("image", "cam/x", 1, i, i, {"image": big * i}, {"boxes": boxes})]
            )
        wait_for(lambda: "cam/x" in pub.state.displays, what="first display")
        d = pub.state.displays["cam/x"]
        assert max(d.arrays["image"].shape) <= 64 and d.meta["scale"] == 4
        # cluster boxes follow the image into its downsampled coordinates
        assert d.meta["boxes"] == [
            {"row0": 10, "col0": 2, "row1": 20, "col1": 6, "class": "alpha"},
            [1, 2, 3, 4],
        ]
        # at 0.5 Hz one or two of the 20 displays went out, the rest
        # were replaced by newer ones before being sent
        wait_for(lambda: pub.displays_skipped >= 15, what="replaced displays")
    finally:
        pub.stop()
    assert pub.state.displays["cam/x"].serial == 19  # flushed at stop (newest wins)


def test_downsample_image_block_mean():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    out, f = downsample_image(a, 2)
    assert f == 2
    np.testing.assert_allclose(out, [[2.5, 4.5], [10.5, 12.5]])
    same, f1 = downsample_image(a, 4)
    assert f1 == 1 and same is a


def test_stuck_viewer_does_not_slow_the_publisher(publisher):
    ctx = zmq.Context.instance()
    stuck = ctx.socket(zmq.SUB)
    stuck.rcvhwm = 1
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(publisher.endpoints["pub"])
    with client_for(publisher) as live:
        wait_for(lambda: live.snapshots >= 1, what="live viewer")
        arr = np.zeros(256 * 1024, dtype=np.uint8)  # 256 KiB per message
        n = 400
        for i in range(n):
            body = {"family": "camera", "time_ns": i, "run": 1, "serial": i}
            body.update(tags={}, fields={"v": i}, units={})
            publisher.submit(Message("metric", body, {"blob": arr}))
        # the publisher got rid of every message although one viewer never reads
        wait_for(
            lambda: (
                publisher.stats()["queue_depth"] == 0
                and publisher.state.find_series("camera")[0].serial == n - 1
            ),
            timeout=30,
            what="all published",
        )
        assert publisher.dropped_queue == 0
        # and the live viewer converges on the last message (via gaps + snapshots if needed)
        wait_for(
            lambda: (
                live.state.find_series("camera")
                and live.state.find_series("camera")[0].serial == n - 1
            ),
            timeout=30,
            what="live viewer up to date",
        )
    stuck.close()


def test_gap_triggers_a_new_snapshot(publisher):
    with client_for(publisher) as c:
        wait_for(lambda: c.snapshots >= 1, what="snapshot")
        # A message with a jump in seq, as when ZeroMQ dropped for this viewer.
        assert c._apply_live(Message("hb", {"time_ns": 1}, seq=c.state.seq + 5)) is False
        assert c.gaps == 1
        assert c._apply_live(Message("hb", {"time_ns": 1}, seq=1)) is False  # restart
        publisher.submit_outputs([metric(1)])
        wait_for(lambda: c.state.find_series("camera"), what="update after gap handling")


def test_control_commands(publisher):
    with client_for(publisher) as c:
        assert c.query("status") == {"ok": True, "status": {"hello": "world"}}
        reply = c.ack("gas_alarm", "anna")
        assert reply["ok"] and reply["alarm"] == {"id": "gas_alarm", "acked_by": "anna"}
        bad = c.query("reboot")
        assert not bad["ok"] and "unknown command" in bad["error"]
    # a REQ client works too (e.g. a shell one-liner)
    req = zmq.Context.instance().socket(zmq.REQ)
    req.connect(publisher.endpoints["control"])
    req.send(b"not json")
    assert req.poll(5000)
    assert json.loads(req.recv())["ok"] is False
    req.close()


def test_viewer_survives_daemon_restart():
    pub = make_publisher()
    ports = dict(pub.endpoints)
    c = client_for(pub, timeout_s=0.5)
    try:
        pub.submit_outputs([metric(i) for i in range(30)])
        wait_for(
            lambda: c.state.find_series("camera") and c.state.find_series("camera")[0].serial == 29,
            what="first daemon",
        )
        pub.stop()
        wait_for(lambda: not c.connected, what="disconnected")
        assert c.disconnected_since is not None
        pub2 = Publisher(
            bind=ports["pub"],
            snapshot_bind=ports["snapshot"],
            control_bind=ports["control"],
            heartbeat_s=0.1,
        )
        pub2.start()
        try:
            pub2.submit_outputs([metric(500, family="pmt")])
            wait_for(
                lambda: c.connected and c.state.find_series("pmt"), timeout=15, what="reconnected"
            )
            # the new daemon's state replaced the old one
            assert not c.state.find_series("camera")
        finally:
            pub2.stop()
    finally:
        c.close()


def test_disabled_publisher_keeps_state_without_sockets():
    pub = Publisher(enabled=False)
    pub.start()
    try:
        pub.submit_outputs([metric(3)])
        wait_for(lambda: pub.state.find_series("camera"), what="state")
        assert pub.endpoints == {}
    finally:
        pub.stop()


def test_curve_encryption_and_client_authentication(tmp_path):
    import zmq.auth

    keys = tmp_path / "keys"
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    keys.mkdir()
    zmq.auth.create_certificates(str(keys), "server")
    alice_pub, alice_secret = zmq.auth.create_certificates(str(keys), "alice")
    _, mallory_secret = zmq.auth.create_certificates(str(keys), "mallory")
    (authorized / "alice.key").write_text(Path(alice_pub).read_text())
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    pub = make_publisher(
        curve_secret_key_file=str(keys / "server.key_secret"),
        curve_authorized_keys_dir=str(authorized),
    )
    try:
        pub.submit_outputs([metric(5)])
        with client_for(pub, server_key=server_public, client_key_file=alice_secret) as alice:
            wait_for(
                lambda: alice.snapshots >= 1 and alice.state.find_series("camera"), what="alice"
            )
            assert alice.query("status")["ok"]
        with client_for(pub, server_key=server_public, client_key_file=mallory_secret) as mallory:
            assert mallory.query("status", timeout_s=0.5) == {"ok": False, "error": "timeout"}
            assert mallory.snapshots == 0
    finally:
        pub.stop()
