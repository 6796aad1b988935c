"""The viewer asks its snapshot only once its subscription is live, so a
subscription that reaches the publisher after the snapshot ("slow joiner")
never costs a gap and a second snapshot that folds updates into the state
(the cause of a flaky daemon pipeline test under CPU load)."""

from __future__ import annotations

import zmq

from cygno_online.analysis.outputs import Metric
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.messages import metric_message
from cygno_online.publish.publisher import Publisher
from cygno_online.testing.waiting import wait_for


def test_snapshot_is_requested_after_the_first_live_message(monkeypatch):
    seen_by_client_at_request = []
    clients = []
    real_send = zmq.Socket.send

    def spy(self, data, *args, **kw):
        if clients and isinstance(data, bytes) and b'"snapshot"' in data:
            seen_by_client_at_request.append(clients[0].messages)
        return real_send(self, data, *args, **kw)

    # recorded on the client's side, when it sends the request
    monkeypatch.setattr(zmq.Socket, "send", spy)
    # one heartbeat at start, then none for an hour: the client's only live
    # messages are the metrics below
    pub = Publisher(
        bind="tcp://127.0.0.1:*",
        snapshot_bind="tcp://127.0.0.1:*",
        control_bind="tcp://127.0.0.1:*",
        heartbeat_s=3600,
    )
    pub.start()
    try:
        wait_for(lambda: pub.seq >= 1, what="first heartbeat")
        c = MonitorClient(
            pub.endpoints["pub"],
            pub.endpoints["snapshot"],
            pub.endpoints["control"],
            snapshot_timeout_s=60,
            start=False,
        )
        clients.append(c)
        c.start()
        updates = []
        c.on_update = updates.append
        i = 0

        def step():
            nonlocal i
            i += 1
            pub.submit(metric_message(Metric("camera", i, 1, i, {"mean": 1.0}, {"camera": "c0"})))
            return c.snapshots >= 1

        wait_for(step, interval=0.05, what="snapshot after a live message")
        assert seen_by_client_at_request and seen_by_client_at_request[0] >= 1
        n = i
        wait_for(lambda: c.state.find_series("camera")[0].serial == n, what="in step")
        assert c.gaps == 0 and c.snapshots == 1
        c.close()
    finally:
        pub.stop()
