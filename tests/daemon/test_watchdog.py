"""The progress watchdog: stalls and deaths of any registered component are
logged once, counted in the monitor metric and stop the systemd feed."""

from __future__ import annotations

import logging
import threading

import pytest
from fakes import FakeChain, FakeSource

from cygno_online.daemon.config import parse_config
from cygno_online.daemon.health import Health, health_metric
from cygno_online.daemon.main import Daemon, run_in_thread
from cygno_online.daemon.watchdog import Watchdog
from cygno_online.testing.waiting import wait_for


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_stall_recovery_death_and_done_with_a_fake_clock(caplog):
    clock = Clock()
    changes = []
    wd = Watchdog(clock=clock, on_change=lambda c, old: changes.append((c.name, old, c.state)))
    a = wd.register("analysis", stall_s=10)
    probe = {"alive": True}
    wd.register("reader", stall_s=5, alive=lambda: probe["alive"])
    assert wd.check() == [] and wd.healthy()
    clock.t += 6  # the reader has not beaten for 6 s > 5 s
    a.beat()
    with caplog.at_level(logging.INFO, "cygno_online.watchdog"):
        assert [c.name for c in wd.check()] == ["reader"]
        assert [c.name for c in wd.check()] == ["reader"]  # still failed, logged once
    assert not wd.healthy()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "reader stalled" in errors[0].getMessage()
    fields = wd.fields()
    assert fields["watchdog_failed"] == 1 and fields["watchdog_failed_names"] == "reader:stalled"
    assert fields["watchdog_age_s_reader"] == 6.0 and fields["watchdog_age_s_analysis"] == 0.0
    wd.beat("reader")
    assert wd.check() == [] and wd.healthy()
    probe["alive"] = False  # the reader process died
    assert [c.state for c in wd.check()] == ["dead"]
    wd.done("reader")  # ... but it was stopped on purpose
    assert wd.check() == [] and wd.healthy()
    assert changes == [
        ("reader", "ok", "stalled"),
        ("reader", "stalled", "ok"),
        ("reader", "ok", "dead"),
        ("reader", "dead", "done"),
    ]
    assert wd.fields()["watchdog_failures_total"] == 2


def test_a_thread_that_ends_without_saying_done_is_dead():
    wd = Watchdog()
    t = threading.Thread(target=lambda: None)
    wd.register("sink", stall_s=60, thread=t)
    t.start()
    t.join()
    assert [c.state for c in wd.check()] == ["dead"]


def test_a_raising_alive_probe_counts_as_dead():
    wd = Watchdog()
    wd.register("reader", stall_s=60, alive=lambda: 1 / 0)
    assert [c.state for c in wd.check()] == ["dead"]


def test_monitor_metric_carries_the_watchdog_fields():
    clock = Clock()
    h = Health(clock=clock)
    h.watchdog = Watchdog(clock=clock)
    h.watchdog.register("source", stall_s=1)
    h.beat("source")
    clock.t += 2
    h.watchdog.check()
    m = health_metric(h.report(), run=3)
    assert m.fields["watchdog_failed"] == 1
    assert m.fields["watchdog_failed_names"] == "source:stalled"
    assert m.fields["watchdog_age_s_source"] == 2.0


class FeedCounter:
    """A Notifier that records what the daemon tells systemd."""

    watchdog_s = 0.2
    enabled = True

    def __init__(self) -> None:
        self.feeds = 0

    def watchdog(self) -> None:
        self.feeds += 1

    def __getattr__(self, name):
        return lambda *a, **k: None


class StallingChain(FakeChain):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def process_event(self, event, **kw):
        self.entered.set()
        self.release.wait(30)
        return super().process_event(event, **kw)


@pytest.mark.parametrize("component", ["analysis", "publisher"])
def test_daemon_stops_feeding_systemd_when_a_thread_stalls(tmp_path, component):
    data = {
        "state_dir": str(tmp_path / "state"),
        "publish": {"enabled": False},
        "watchdog": {"stall_s": 1},
    }
    cfg, _ = parse_config(data, build_chain=False)
    chain = StallingChain()
    if component == "publisher":
        chain.release.set()
    notifier = FeedCounter()
    d = Daemon(cfg, chain, source=FakeSource(n=3, endless=True), notifier=notifier)
    checks = []
    real_check = d.watchdog.check
    d.watchdog.check = lambda: checks.append(1) or real_check()
    if component == "publisher":
        # a publisher thread stuck in a call: its loop no longer beats
        stuck = threading.Event()
        d.publisher.listeners.append(lambda m: stuck.wait(30))
    run_in_thread(d)
    try:
        wait_for(lambda: notifier.feeds >= 1, what="systemd fed while healthy")
        wait_for(
            lambda: d.watchdog.component(component).state == "stalled",
            what=f"{component} stalled",
        )
        fed = notifier.feeds
        n = len(checks)
        wait_for(lambda: len(checks) >= n + 5, what="five more main-loop iterations")
        assert notifier.feeds == fed and not d.alive()
        body = d.health.report()
        assert body["watchdog"]["failed"] >= 1
        assert component in health_metric(body, 0).fields["watchdog_failed_names"]
    finally:
        chain.release.set()
        if component == "publisher":
            stuck.set()
        d.request_stop()
        d.shutdown()
