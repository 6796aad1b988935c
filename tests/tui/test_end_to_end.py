"""The TUI on a real daemon: simulator -> analyzers -> publisher on loopback
-> MonitorClient -> headless app. Live values appear, a frame is drawn, the
alarm limits come from the daemon's rules, and an acknowledgement goes through
the control socket."""

from __future__ import annotations

import time

from helpers import run_app, screen_text

from cygno_online.daemon.config import parse_config
from cygno_online.daemon.main import Daemon, run_in_thread
from cygno_online.publish.client import MonitorClient
from cygno_online.tui.screens.camera import CameraPanel
from cygno_online.tui.screens.modals import ConfirmScreen


def config(tmp_path):
    return {
        "experiment": "E2E",
        "log_level": "WARNING",
        "state_dir": str(tmp_path / "state"),
        "summary_dir": str(tmp_path / "summaries"),
        "source": {
            "type": "simulator",
            "simulator": {
                "layout": "crop:128",
                "seed": 2,
                "run_events": 1000,
                "exposure_s": 0.1,
                "pace": "exposure",
                "slow_control_every": 2,
                "gap_s": 0.5,
            },
        },
        "publish": {
            "bind": "tcp://127.0.0.1:*",
            "snapshot_bind": "tcp://127.0.0.1:*",
            "control_bind": "tcp://127.0.0.1:*",
            "heartbeat_s": 0.2,
        },
        "pipeline": {"health_every_s": 0.3, "queue_events": 4, "display_hz": 4},
        "analyzers": [{"plugin": "daqhealth"}, {"plugin": "camera"}, {"plugin": "slowcontrol"}],
        "alarms": {
            "rules": [
                {
                    "id": "events_seen",
                    "name": "Events are arriving",
                    "family": "daq",
                    "tags": {"event_id": "1"},
                    "field": "rate_hz",
                    "above": 0.0,
                    "severity": "warning",
                },
                {
                    "id": "lime_pressure",
                    "family": "environment",
                    "field": "lime_pressure",
                    "band": [0.5, 2.0],
                    "severity": "error",
                },
            ]
        },
    }


async def until(pilot, app, predicate, what, timeout_s=30.0):
    """Let the app run until ``predicate()`` holds (condition, not a fixed sleep)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{screen_text(app)}")
        await pilot.pause(0.1)
        app.poll_now()


def test_tui_shows_a_live_daemon(tmp_path):
    cfg, chain = parse_config(config(tmp_path), source="test")
    daemon = Daemon(cfg, chain)
    run_in_thread(daemon)
    ep = daemon.publisher.endpoints
    client = MonitorClient(ep["pub"], ep["snapshot"], ep["control"], timeout_s=5.0)
    try:

        async def body(app, pilot):
            out = {}
            await until(pilot, app, lambda: client.connected, "connection")
            await until(
                pilot,
                app,
                lambda: "RUNNING" in screen_text(app) and "Trigger rate" in screen_text(app),
                "a running run with a trigger rate",
            )
            out["overview"] = screen_text(app)
            await pilot.press("2")
            await until(pilot, app, lambda: app.query_one(CameraPanel).shown_time_ns, "a frame")
            out["camera"] = screen_text(app)
            await pilot.press("5")
            await until(pilot, app, lambda: "0.5..2" in screen_text(app), "limits from the rules")
            out["slow"] = screen_text(app)
            await pilot.press("6")
            await until(pilot, app, lambda: "Events are arriving" in screen_text(app), "the alarm")
            await pilot.press("a")
            await pilot.pause()
            out["modal"] = isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await app.workers.wait_for_complete()
            out["ack"] = app.last_ack
            await until(
                pilot,
                app,
                lambda: "tester" in screen_text(app),
                "the acknowledgement published back to the viewer",
            )
            out["alarms"] = screen_text(app)
            return out

        out = run_app(client, body, clock=time.time)["value"]
    finally:
        client.close()
        daemon.request_stop()
        daemon.shutdown()
    assert "E2E" in out["overview"] and "Hz" in out["overview"]
    assert "camera/" in out["camera"] and "▀" in out["camera"]
    assert "lime_pressure" in out["slow"]
    assert out["modal"] and out["ack"]["ok"], out["ack"]
    assert "tester" in out["alarms"]
