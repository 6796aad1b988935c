"""Hostile input on the snapshot and control sockets.

Unit level (a fake socket, hypothesis, derandomized): every request, however
broken, gets a typed error reply or is dropped and counted; the servers never
raise. Loopback level: random, truncated, nested, huge and flooding requests
from many peers while live messages are published; every live message still
reaches a subscriber in order (counted), a well-behaved viewer and control
client are still served, and the publisher thread is alive afterwards.
"""

from __future__ import annotations

import json
import random
import threading

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cygno_online.analysis.outputs import Display, Metric
from cygno_online.publish import guard
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.control import ControlServer
from cygno_online.publish.messages import decode
from cygno_online.publish.publisher import Publisher
from cygno_online.publish.snapshot import SnapshotServer
from cygno_online.publish.state import MonitorState
from cygno_online.testing.waiting import wait_for

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


class FakeSocket:
    """Just enough of a ROUTER socket: queued requests in, replies recorded."""

    def __init__(self, requests=()) -> None:
        self.incoming = list(requests)
        self.sent: list[list] = []

    def recv_multipart(self, flags=0, copy=True):
        if not self.incoming:
            raise zmq.Again()
        return self.incoming.pop(0)

    def send_multipart(self, frames, flags=0, copy=True):
        self.sent.append(list(frames))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE = [
    nested(1100),  # the 2.2 kB message that killed the publisher thread
    b'{"cmd": "status", "x": ' + nested(20) + b"}",
    b"\xff\xfe\x00garbage",
    b'{"cmd": "stat',  # truncated
    b"[]",
    b"null",
    b'"cmd"',
    b'{"cmd": 12}',
    b'{"cmd": ' + b"9" * 5000 + b"}",  # huge
    b" " * (guard.MAX_REQUEST_BYTES + 1),
    b'{"cmd": "ack"}',
    b'{"cmd": "ack", "alarm": ' + nested(12) + b', "user": "u"}',
    b"",
    b'{"cmd": "boom"}',
]

handlers = {
    "status": lambda req: {"status": {"ok": 1}},
    "ack": lambda req: {"alarm": {"id": req["alarm"], "user": req["user"]}},
    "boom": lambda req: {"x": 1 / 0},
}

frames_strategy = st.one_of(
    st.lists(st.binary(max_size=64), min_size=0, max_size=5),
    st.builds(lambda b: [b], st.sampled_from(HOSTILE)),
    st.builds(lambda b: [b"", b], st.sampled_from(HOSTILE)),
    st.builds(
        lambda v: [json.dumps(v).encode()],
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=5), children, max_size=4)
            ),
            max_leaves=30,
        ),
    ),
)


def check_reply(frames, n_prefix):
    reply = json.loads(frames[n_prefix].decode())
    assert isinstance(reply, dict) and "ok" in reply
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]
        assert isinstance(reply.get("code"), str)
    return reply


@SETTINGS
@given(st.lists(frames_strategy, min_size=1, max_size=8))
def test_control_server_answers_or_counts_every_request(requests):
    msgs = [[b"peer%d" % i, *f] for i, f in enumerate(requests)]
    sock = FakeSocket(msgs)
    server = ControlServer(sock, handlers)
    while server.handle(budget=3):
        pass
    assert server.stats.requests == len(msgs)
    assert len(sock.sent) + sum(server.stats.dropped.values()) == len(msgs)
    for out in sock.sent:
        check_reply(out, len(out) - 1)


@SETTINGS
@given(st.lists(frames_strategy, min_size=1, max_size=8))
def test_snapshot_server_answers_or_counts_every_request(requests):
    msgs = [[b"peer%d" % i, *f] for i, f in enumerate(requests)]
    sock = FakeSocket(msgs)
    server = SnapshotServer(sock, MonitorState())
    while server.handle(budget=3):
        pass
    server.serve_pending()
    assert server.stats.requests == len(msgs)
    answered = len(sock.sent) + sum(server.stats.dropped.values())
    assert answered == len(msgs)


def test_every_hostile_request_has_a_typed_error():
    for body in HOSTILE:
        sock = FakeSocket([[b"p", body]])
        server = ControlServer(sock, handlers)
        server.handle()
        [reply] = sock.sent
        r = check_reply(reply, len(reply) - 1)
        assert r["ok"] is False, body[:40]
    sock = FakeSocket([[b"p", nested(1100)]])
    server = ControlServer(sock, handlers)
    server.handle()
    assert check_reply(sock.sent[0], 1)["code"] == "too_deep"


def test_a_flood_of_snapshot_requests_costs_one_snapshot_per_interval():
    class Clock:
        t = 0.0

        def __call__(self):
            return self.t

    clock = Clock()
    state = MonitorState()
    req = json.dumps({"cmd": "snapshot"}).encode()
    sock = FakeSocket([[b"viewer%d" % (i % 100), req] for i in range(5000)])
    server = SnapshotServer(sock, state, clock=clock, min_interval_s=0.2)
    while sock.incoming:
        server.handle()
    # 100 viewers, 50 requests each, all at the same instant: the first
    # budget of requests was served at once by one prepared snapshot, every
    # viewer asking meanwhile waits (once) for the next interval
    assert server.prepared == 1 and server.served == guard.BUDGET_REQUESTS
    assert server.pending == 100
    clock.t = 0.2
    server.serve_pending()
    assert server.prepared == 2 and server.pending == 0
    assert server.served == guard.BUDGET_REQUESTS + 100
    # each viewer asked 50 times in no time: its bucket refused the excess
    assert server.stats.dropped["rate_limited"] == 5000 - 100 * int(guard.PEER_BURST)


def test_peer_buckets_refill_and_forget_old_peers():
    class Clock:
        t = 0.0

        def __call__(self):
            return self.t

    clock = Clock()
    b = guard.PeerBuckets(rate_hz=10, burst=2, max_peers=3, clock=clock)
    assert [b.allow(b"a") for _ in range(3)] == [True, True, False]
    clock.t = 0.1
    assert b.allow(b"a") and not b.allow(b"a")
    for p in (b"b", b"c", b"d"):
        b.allow(p)
    assert len(b._peers) == 3  # bounded


# -- over real sockets ---------------------------------------------------------------


def _metric(i):
    return Metric("camera", 1_000 + i, 7, i, {"mean": float(i)}, {"camera": "cam0"})


def _attack(endpoint: str, stop: threading.Event, seed: int, counts: dict) -> None:
    """Random, truncated, nested, huge and flooding requests from many peers
    (new connections, some never reading their replies)."""
    rng = random.Random(seed)
    ctx = zmq.Context.instance()
    socks = []
    try:
        while not stop.is_set():
            if len(socks) < 20:
                s = ctx.socket(zmq.DEALER)
                s.linger = 0
                s.sndhwm = 100
                s.connect(endpoint)
                socks.append(s)
            s = rng.choice(socks)
            kind = rng.randrange(6)
            if kind == 3 and counts["reconnects"] >= 50:
                kind = 1  # each oversize message costs a connection: keep fds bounded
            if kind == 0:
                body = rng.randbytes(rng.randrange(1, 200))
            elif kind == 1:
                body = nested(rng.randrange(10, 2000))
            elif kind == 2:
                body = json.dumps({"cmd": "snapshot"}).encode()[: rng.randrange(1, 18)]
            elif kind == 3:
                body = b"[" * 100 + b"x" * rng.randrange(
                    guard.HARD_MAX_BYTES, 2 * guard.HARD_MAX_BYTES
                )
            elif kind == 4:
                body = json.dumps({"cmd": "snapshot"}).encode()
            else:
                body = json.dumps({"cmd": "status"}).encode()
            try:
                s.send(body, zmq.NOBLOCK)
                counts["sent"] += 1
            except zmq.Again:
                counts["blocked"] += 1
            if kind == 3:
                # libzmq disconnected this peer (ZMQ_MAXMSGSIZE): a new one
                socks.remove(s)
                s.close()
                counts["reconnects"] += 1
                continue
            # drain some replies, leave others unread (a stuck client)
            if rng.random() < 0.3:
                while s.poll(0):
                    s.recv_multipart()
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("target", ["snapshot", "control"])
def test_publishing_goes_on_under_a_request_flood(target):
    pub = Publisher(
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
        heartbeat_s=0.05,
        control_handlers=handlers,
    )
    pub.start()
    # a sizeable state: every snapshot costs something
    img = np.ones((512, 512), dtype=np.float32)
    pub.submit_outputs([Display("image", "camera/cam0/frame", 7, 0, 5, {"image": img})])
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.rcvhwm = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"metric")
    sub.connect(pub.endpoints["pub"])
    stop = threading.Event()
    counts = {"sent": 0, "blocked": 0, "reconnects": 0}
    attackers = [
        threading.Thread(target=_attack, args=(pub.endpoints[target], stop, seed, counts))
        for seed in (1, 2)
    ]
    try:
        # subscription live before the count starts
        def primed():
            pub.submit_outputs([_metric(-1)])
            return sub.poll(50)

        wait_for(primed, what="subscription live")
        while sub.poll(100):
            sub.recv_multipart()
        for t in attackers:
            t.start()
        wait_for(lambda: counts["sent"] > 2000, timeout=60, what="the flood under way")
        serials = []
        for batch in range(10):
            pub.submit_outputs([_metric(batch * 100 + i) for i in range(100)])
            while len(serials) < (batch + 1) * 100:
                assert sub.poll(10000), f"live message missing after {len(serials)}"
                serials.append(decode(sub.recv_multipart()).body["serial"])
        # every live message arrived, in order, during the flood
        assert serials == list(range(1000))
        # a well-behaved viewer and control client are still served
        with MonitorClient(
            pub.endpoints["pub"], pub.endpoints["snapshot"], pub.endpoints["control"]
        ) as c:
            wait_for(lambda: c.snapshots >= 1, timeout=60, what="snapshot during the flood")
            assert c.query("status", timeout_s=10)["ok"]
    finally:
        stop.set()
        for t in attackers:
            t.join(10)
        sub.close()
        alive = pub._thread.is_alive()
        stats = pub.stats()
        pub.stop()
    assert alive
    assert stats[f"{target}_requests"] > 0
    assert stats[f"{target}_rejected"] > 0
    assert stats["dropped_queue"] == 0


def test_the_daemon_publishes_every_event_while_both_sockets_are_flooded(tmp_path):
    """The whole daemon (fake chain and source): 300 events analysed and every
    camera metric published, counted at a subscriber, while attackers flood
    the snapshot and the control socket."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
    from fakes import FakeChain, FakeSource

    from cygno_online.daemon.config import parse_config
    from cygno_online.daemon.main import Daemon, run_in_thread

    data = {
        "state_dir": str(tmp_path / "state"),
        "publish": {
            "bind": "tcp://127.0.0.1:*",
            "snapshot_bind": "tcp://127.0.0.1:*",
            "control_bind": "tcp://127.0.0.1:*",
        },
    }
    cfg, _ = parse_config(data, build_chain=False)
    gate = threading.Event()
    source = FakeSource(n=300, gate=gate, endless=True, lossless=True)
    d = Daemon(cfg, FakeChain(), source=source)
    run_in_thread(d)
    ep = d.publisher.endpoints
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.rcvhwm = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"metric.camera")
    sub.connect(ep["pub"])
    stop = threading.Event()
    counts = {"sent": 0, "blocked": 0, "reconnects": 0}
    attackers = [
        threading.Thread(target=_attack, args=(ep[name], stop, seed, counts))
        for seed, name in ((3, "snapshot"), (4, "control"))
    ]
    try:
        probe = zmq.Context.instance().socket(zmq.SUB)
        probe.setsockopt(zmq.SUBSCRIBE, b"hb")
        probe.connect(ep["pub"])
        wait_for(lambda: probe.poll(50), what="publisher live")
        probe.close()
        # the camera SUB connected before the probe: its subscription is live
        for t in attackers:
            t.start()
        wait_for(lambda: counts["sent"] > 1000, timeout=60, what="the flood under way")
        gate.set()
        serials = []
        while len(serials) < 300:
            assert sub.poll(10000), f"camera metric missing after {len(serials)}"
            serials.append(decode(sub.recv_multipart()).body["serial"])
        assert serials == list(range(300))
        assert d.pipeline._analysis_thread.is_alive() and d.publisher._thread.is_alive()
        assert d.watchdog.healthy()
    finally:
        stop.set()
        for t in attackers:
            t.join(10)
        sub.close()
        stats = d.publisher.stats()
        d.request_stop()
        d.shutdown()
    assert stats["dropped_queue"] == 0
    assert stats["snapshot_rejected"] > 0 and stats["control_rejected"] > 0


ATTACKER = """
import sys, threading, time
sys.path[:0] = [{tests!r}, {publish!r}]
from test_socket_fuzz import _attack
stop = threading.Event()
counts = {{"sent": 0, "blocked": 0, "reconnects": 0}}
ts = [threading.Thread(target=_attack, args=(ep, stop, i, counts)) for i, ep in enumerate(sys.argv[1:])]
for t in ts:
    t.start()
# flood until enough requests went out (not for a fixed time: a loaded
# machine sends fewer per second), bounded
deadline = time.monotonic() + 60
while counts["sent"] < 3000 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1)  # and keep flooding a moment beyond it
stop.set()
for t in ts:
    t.join()
print(counts["sent"])
"""


def test_a_flooding_process_cannot_abort_the_publisher():
    """From another process (no GIL shared): floods of unread requests once
    made libzmq abort the daemon (assertion `!_io_error` when a ZMTP
    heartbeat timeout met a connection stopped by a full queue)."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    pub = Publisher(
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
        heartbeat_s=0.05,
        control_handlers=handlers,
    )
    pub.start()
    try:
        code = ATTACKER.format(tests=str(here.parent), publish=str(here))
        eps = [pub.endpoints["snapshot"], pub.endpoints["control"], pub.endpoints["snapshot"]]
        out = subprocess.run(
            [sys.executable, "-c", code, *eps], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert int(out.stdout.split()[-1]) > 1000
        assert pub._thread.is_alive()
        with MonitorClient(
            pub.endpoints["pub"], pub.endpoints["snapshot"], pub.endpoints["control"]
        ) as c:
            wait_for(lambda: c.snapshots >= 1, timeout=60, what="snapshot after the flood")
            assert c.query("status", timeout_s=10)["ok"]
    finally:
        pub.stop()
