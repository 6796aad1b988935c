"""Pilot tests of every tab against the FakeSource (80x24, like a plain SSH terminal)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from fakedata import NOW, NOW_NS, frame, make_source
from helpers import is_grey, run_app, screen_lines, screen_text, styles_of

from cygno_online.tui.screens.camera import CameraPanel
from cygno_online.tui.screens.modals import ConfirmScreen, HelpScreen
from cygno_online.tui.widgets.banner import Banner
from cygno_online.tui.widgets.heatmap import Heatmap


def test_overview_shows_run_rates_alarms_and_key_metrics():
    async def body(app, pilot):
        return screen_text(app)

    text = run_app(make_source(), body)["value"]
    assert "LIME" in text and "42901" in text and "RUNNING" in text
    assert "S003:DATA:Fe, 55Fe source on" in text
    assert "01:02:05" in text  # run time from the injected clock
    assert "trigger 1.72 Hz  events 1.69 Hz" in text
    assert "latency 180 ms" in text
    assert "dropped 2 (0.032%)" in text  # a count with its fraction
    # the verdict names the worst alarm, its message and how many others there are
    assert "ALARM  LIME gas pressure: press" in text
    assert "(error, active, unacked" in text and "+1 more" in text
    # 55Fe against the configured reference, pedestal boxes against the map
    assert "peak 7000 ADU" in text and "ref 7200 ±10%  OK" in text
    assert "!+24±30" in text and "1/9 boxes off" in text and "map age 2.4h" in text
    # PMT channels, gas and camera temperature with the alarm limits
    assert "ch1 ok  ch2 ok  ch3 ok  ch4 ok  4/4 alive" in text
    assert "P 0.994 bar LOW (0.995..1.05)" in text and "T 22.4 °C" in text
    assert "camera T -18.2 °C" in text
    assert "Trigger rate" in text and "1.72 Hz" in text
    assert "Clusters/image" in text
    assert any(ch in text for ch in "▁▂▃▄▅▆▇█")  # sparklines


def test_number_keys_switch_tabs_and_footer_follows():
    async def body(app, pilot):
        seen = []
        for key, pane in zip(
            "23456781",
            ("camera", "clusters", "pmt", "slow", "alarms", "runs", "log", "overview"),
            strict=True,
        ):
            await pilot.press(key)
            await pilot.pause()
            seen.append((app.active_tab, pane))
        await pilot.press("2")
        await pilot.pause()
        camera_footer = screen_lines(app)[-1]
        await pilot.press("5")
        await pilot.pause()
        slow_footer = screen_lines(app)[-1]
        return seen, camera_footer, slow_footer

    seen, camera_footer, slow_footer = run_app(make_source(), body)["value"]
    assert all(a == b for a, b in seen), seen
    assert "pause" in camera_footer and "sort" not in camera_footer
    assert "sort" in slow_footer and "pause" not in slow_footer


def heatmap_picture(hm: Heatmap) -> list:
    return [[(s.text, str(s.style)) for s in hm.render_line(y)] for y in range(hm.size.height)]


def test_heatmap_renders_half_blocks_and_changes_with_a_new_frame():
    src = make_source()

    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        hm = app.query_one(Heatmap)
        lines = [line for line in screen_lines(app) if "▀" in line]
        rows = hm._levels.shape[0] // 2
        before = heatmap_picture(hm)
        src.display(
            "image", "camera/cam0/frame", {"image": frame(3)}, time_ns=NOW_NS, serial=30, run=42901
        )
        app.poll_now()
        await pilot.pause()
        after = heatmap_picture(hm)
        title = screen_text(app)
        return len(lines), rows, hm.size.height, before, after, title

    n_lines, rows, height, before, after, title = run_app(src, body)["value"]
    # square 96x96 frame: two pixels per cell vertically fill the widget height
    assert rows == height == n_lines
    assert before != after
    assert "#30" in title


def test_heatmap_palette_follows_the_choice():
    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        hm = app.query_one(Heatmap)
        return {s.style.bgcolor.type.name for y in range(3) for s in hm.render_line(y) if s.style}

    assert run_app(make_source(), body, palette="256")["value"] == {"EIGHT_BIT"}
    assert run_app(make_source(), body, palette="truecolor")["value"] == {"TRUECOLOR"}


def test_cluster_boxes_are_drawn_and_can_be_hidden():
    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        hm = app.query_one(Heatmap)
        with_boxes = (hm._levels == 48).sum()
        await pilot.press("b")
        await pilot.pause()
        hm.render_line(0)
        without = (hm._levels == 48).sum()
        return with_boxes, without

    with_boxes, without = run_app(make_source(), body)["value"]
    assert with_boxes > 0 and without == 0


def test_zoom_pan_range_and_pause_keys():
    src = make_source()

    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        hm = app.query_one(Heatmap)
        cam = app.query_one(CameraPanel)
        out = {"region0": hm.view_region()}
        await pilot.press("z")
        await pilot.pause()
        out["zoom"] = hm.zoom
        out["region_zoomed"] = hm.view_region()
        out["title_zoom"] = screen_lines(app)[3]
        await pilot.press("right")
        await pilot.pause()
        out["region_panned"] = hm.view_region()
        await pilot.press("x")
        await pilot.pause()
        out["zoom_back"] = hm.zoom
        hi = hm.hi
        await pilot.press("plus")
        await pilot.pause()
        out["manual"] = (hm.auto, hm.hi > hi)
        out["bar"] = screen_text(app)
        await pilot.press("r")
        await pilot.pause()
        out["auto"] = hm.auto
        await pilot.press("p")
        await pilot.pause()
        shown = cam.shown_time_ns
        src.display("image", "camera/cam0/frame", {"image": frame(4)}, time_ns=NOW_NS, serial=31)
        app.poll_now()
        await pilot.pause()
        out["paused_kept"] = cam.shown_time_ns == shown
        out["paused_title"] = screen_lines(app)[3]
        await pilot.press("p")
        await pilot.pause()
        app.poll_now()
        await pilot.pause()
        out["resumed"] = cam.shown_time_ns == NOW_NS
        return out

    out = run_app(src, body)["value"]
    assert out["region0"] == (0, 96, 0, 96)
    assert out["zoom"] == 2 and out["region_zoomed"] == (24, 72, 24, 72)
    assert "zoom x2" in out["title_zoom"]
    assert out["region_panned"] == (24, 72, 36, 84)
    assert out["zoom_back"] == 1
    assert out["manual"] == (False, True) and "manual" in out["bar"]
    assert out["auto"] is True
    assert out["paused_kept"] and "PAUSED" in out["paused_title"]
    assert out["resumed"]


def test_camera_side_panel_shows_pedestal_boxes():
    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        return screen_text(app)

    text = run_app(make_source(), body)["value"]
    # offsets from the pedestal map with their RMS; the bad corner flagged
    assert "boxes vs pedestal map" in text
    assert "+0.1±2.6" in text and "!+24±30" in text and "1/9 boxes off" in text
    assert "clusters" in text and "sensor T" in text and "-18.2 °C" in text
    # fractions and ages for humans, units everywhere
    assert "over thr.   0.149 %" in text and "map age        2.4h" in text
    assert "99.98 ADU" in text
    # the temperature record replaced the per-image record: values survive
    assert "99.98" in text or "100" in text


def test_clusters_tab_shows_fit_and_class_counts():
    async def body(app, pilot):
        await pilot.press("3")
        await pilot.pause()
        return screen_text(app)

    text = run_app(make_source(), body)["value"]
    assert "μ=7000 σ=900 (13%)" in text  # noqa: RUF001
    assert "55Fe" in text and "rate over the last 60 s" in text
    assert "alpha" in text and "120" in text
    assert "integral (ADU) vs length (px)" in text
    assert "●" in text or "o" in text


def test_pmt_tab_waveforms_histograms_and_baselines():
    async def body(app, pilot):
        await pilot.press("4")
        await pilot.pause()
        top = screen_text(app)
        await pilot.press("pagedown")
        await pilot.pause()
        bottom = screen_text(app)
        await pilot.press("v")
        await pilot.pause()
        avg = screen_text(app)
        return top, bottom, avg

    top, bottom, avg = run_app(make_source(), body)["value"]
    assert "board 0" in top and "ch1 PMT1" in top and "ch4" in top
    assert any(0x2800 < ord(c) <= 0x28FF for c in top)  # braille traces
    # the per-channel numbers and states first, at 80x24 above the fold
    assert "3851.0" in top and "baseline" in top and " ok " in top
    assert "Multiplicity" in top + bottom
    assert "average" in avg and "no waveforms yet" in avg


def test_slow_control_sort_filter_limits_and_staleness():
    async def body(app, pilot):
        from textual.widgets import DataTable

        await pilot.press("5")
        await pilot.pause()
        table = app.query_one("#sc-table", DataTable)
        row0 = table.get_row_at(0)
        out = {"n": table.row_count, "first": f"{row0[0]} {row0[1]}"}
        out["text"] = screen_text(app)
        out["grey_flow"] = all(is_grey(s) for s in styles_of(app, "he_flow"))
        out["grey_fresh"] = any(is_grey(s) for s in styles_of(app, "measured"))
        out["alarm_row"] = styles_of(app, "lime_pressure")
        await pilot.press("s")  # sort by value
        await pilot.pause()
        top = table.get_row_at(0)
        out["by_value"] = f"{top[0]} {top[1]}"
        await pilot.press("slash")
        await pilot.press("h", "v")
        await pilot.press("enter")
        await pilot.pause()
        out["filtered"] = table.row_count
        out["filter_title"] = screen_lines(app)[3]
        await pilot.press("escape")
        await pilot.pause()
        out["cleared"] = table.row_count
        return out

    out = run_app(make_source(), body)["value"]
    assert out["n"] == 7  # 2 environment, 3 hv, 1 gas, camera temperature (raw hidden)
    assert out["first"] == "environment gas_temperature"
    assert "0.995..1.05" in out["text"]  # limits from the alarm rule
    assert out["grey_flow"] and not out["grey_fresh"]
    # the pressure row is under an active error alarm: red
    assert any(
        s.color and s.color.triplet and s.color.triplet.red > 150 and s.color.triplet.green < 100
        for s in out["alarm_row"]
    )
    assert out["by_value"] == "HV GEM1 demand"
    assert out["filtered"] == 3 and "'hv'" in out["filter_title"]
    assert out["cleared"] == 7


def test_acknowledge_alarm_with_confirmation():
    src = make_source()

    async def body(app, pilot):
        await pilot.press("6")
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        modal = isinstance(app.screen, ConfirmScreen)
        question = screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        after_no = list(src.acks)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.poll_now()
        await pilot.pause()
        return modal, question, after_no, screen_text(app)

    modal, question, after_no, text = run_app(src, body)["value"]
    assert modal and "Acknowledge alarm 'LIME gas pressure'?" in question
    assert after_no == []
    assert src.acks == [("lime_pressure", "tester")]
    assert "acknowledged" in text and "tester" in text  # history and Ack column


def test_disconnect_banner_greys_everything_and_goes_away_on_reconnect():
    src = make_source()

    async def body(app, pilot):
        src.disconnect(since=NOW - 42)
        app.poll_now()
        await pilot.pause()
        banner = app.query_one(Banner)
        out = {"visible": banner.display, "text": screen_lines(app)[1]}
        out["grey"] = all(is_grey(s) for s in styles_of(app, "Trigger rate"))
        out["status"] = screen_lines(app)[0]
        src.reconnect()
        app.poll_now()
        await pilot.pause()
        out["visible_after"] = banner.display
        out["grey_after"] = any(is_grey(s) for s in styles_of(app, "Trigger rate"))
        return out

    out = run_app(src, body)["value"]
    since = dt.datetime.fromtimestamp(NOW - 42).strftime("%H:%M:%S")
    assert out["visible"] and f"LOST since {since} (42s ago)" in out["text"]
    assert "OFFLINE" in out["status"] and "alarms: unknown" in out["status"]
    assert out["grey"]
    assert not out["visible_after"] and not out["grey_after"]


def test_polling_while_a_modal_is_open_keeps_working():
    src = make_source()

    async def body(app, pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        src.metric("daq", {"rate_hz": 3.25}, tags={"event_id": "1"}, time_ns=NOW_NS)
        src.disconnect(since=NOW - 5)
        app.poll_now()
        await pilot.pause()
        help_open = isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        return help_open, screen_text(app)

    help_open, text = run_app(src, body)["value"]
    assert help_open
    assert "3.25 Hz" in text and "LOST since" in text


def test_verdict_line_and_bell_on_a_new_error_alarm():
    src = make_source()

    async def body(app, pilot):
        out = {"first": screen_lines(app)[3], "bells0": app.bells}
        src.ack("lime_pressure", "tester")
        src.alarm(
            id="lime_pressure",
            name="LIME gas pressure",
            severity="error",
            state="normal",
            transition="cleared",
        )
        src.ack("no_events", "tester")
        app.poll_now()
        await pilot.pause()
        out["ok"] = screen_lines(app)[3]
        src.alarm(
            id="hv_trip",
            name="HV trip",
            severity="critical",
            state="active_unack",
            transition="raised",
        )
        app.poll_now()
        await pilot.pause()
        out["alarm"] = screen_lines(app)[3]
        out["bells"] = app.bells
        return out

    out = run_app(src, body)["value"]
    assert "ALARM" in out["first"] and out["bells0"] == 0  # no bell for what was there
    assert "OK" in out["ok"] and "data flowing" in out["ok"]
    assert "ALARM  HV trip (critical, active" in out["alarm"] and out["bells"] == 1


def test_verdict_says_no_data_when_triggers_stop_during_a_run():
    src = make_source()

    async def body(app, pilot):
        return screen_lines(app)[3]

    line = run_app(src, body, clock=lambda: NOW + 120)["value"]
    assert "ALARM" in line  # the error alarm still wins
    src.ack("lime_pressure", "tester")
    src.alarm(id="lime_pressure", name="p", severity="error", state="normal", transition="cleared")
    src.ack("no_events", "tester")
    line = run_app(src, body, clock=lambda: NOW + 120)["value"]
    assert "NO DATA" in line and "2min" in line


def test_old_metrics_are_greyed_out():
    async def body(app, pilot):
        return styles_of(app, "Trigger rate"), styles_of(app, "Image mean")

    fresh = run_app(make_source(), body)["value"]
    assert not any(is_grey(s) for s in fresh[0] + fresh[1])
    old = run_app(make_source(), body, clock=lambda: NOW + 120)["value"]
    assert old[0] and all(is_grey(s) for s in old[0] + old[1])


def test_help_screen_lists_keys():
    async def body(app, pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        opened = isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        text += screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        return opened, text, isinstance(app.screen, HelpScreen)

    opened, text, still = run_app(make_source(), body)["value"]
    assert opened and not still
    assert "acknowledge the selected alarm" in text and "pause / resume" in text


def test_command_palette_switches_tab():
    async def body(app, pilot):
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Go to Log")
        # the palette searches asynchronously: wait for the hit, not 0.3 s
        from textual.command import CommandList

        for _ in range(3000):
            hits = app.screen.query(CommandList)
            if (
                hits
                and hits.first().option_count
                and "Log" in str(hits.first().get_option_at_index(0).prompt)
            ):
                break
            await pilot.pause(0.01)
        else:
            raise AssertionError("the command palette never offered the Log tab")
        await pilot.press("enter")
        await pilot.pause()
        return app.active_tab

    assert run_app(make_source(), body)["value"] == "log"


def test_log_tab_shows_new_messages_by_level():
    src = make_source()

    async def body(app, pilot):
        await pilot.press("8")
        await pilot.pause()
        first = screen_text(app)
        src.log("HV trip on GEM2", level="error", time_ns=NOW_NS)
        app.poll_now()
        await pilot.pause()
        return first, screen_text(app), styles_of(app, "HV trip")

    first, second, styles = run_app(src, body)["value"]
    assert "spark in image 12" in first and "midas: Run 42901 started" in first
    assert "HV trip on GEM2" in second and "ERRO" in second
    assert any(s.bold and s.color and s.color.triplet and s.color.triplet.red > 150 for s in styles)


def test_repaints_only_when_something_changes():
    src = make_source()

    async def body(app, pilot):
        base = app.repaints
        for _ in range(4):
            app.poll()
        idle = app.repaints - base
        src.metric("daq", {"rate_hz": 1.8}, time_ns=NOW_NS)
        app.poll()
        return idle, app.repaints - base

    idle, after = run_app(src, body)["value"]
    assert idle == 0 and after == 1


def test_quit_key_ends_the_app():
    async def body(app, pilot):
        await pilot.press("q")
        await pilot.pause()
        return app.is_running

    assert run_app(make_source(), body)["value"] is False


def test_large_screen_scales():
    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        return app.query_one(Heatmap).size

    size = run_app(make_source(), body, size=(200, 60))["value"]
    assert size.height > 40 and size.width > 100


def test_camera_board_channel_and_spectrum_keys_cycle():
    src = make_source()
    src.display(
        "image", "camera/cam1/frame", {"image": frame(2, (64, 128))}, time_ns=NOW_NS, serial=5
    )
    src.display(
        "waveforms", "pmt/1/latest", {"ch1": frame(0)[0], "ch2": frame(1)[0]}, time_ns=NOW_NS
    )
    src.display(
        "histogram",
        "pmt/0/amplitude/ch2",
        {"counts": np.ones(10), "edges": np.arange(11.0)},
        meta={"label": "PMT2"},
        time_ns=NOW_NS,
    )
    src.display(
        "histogram",
        "clusters/cam0/integral",
        {"counts": np.ones(10), "edges": np.logspace(2, 5, 11)},
        meta={"log_x": True},
        time_ns=NOW_NS,
    )

    async def body(app, pilot):
        out = {}
        await pilot.press("2")
        await pilot.pause()
        out["cam0"] = screen_lines(app)[3]
        await pilot.press("c")
        await pilot.pause()
        out["cam1"] = screen_lines(app)[3]
        out["shape"] = app.query_one(Heatmap).image.shape
        await pilot.press("3")
        await pilot.pause()
        out["cam1_clusters"] = screen_text(app)  # the camera choice is shared
        await pilot.press("c")
        await pilot.pause()
        out["spec0"] = screen_lines(app)[3]
        await pilot.press("i")
        await pilot.pause()
        out["spec1"] = screen_lines(app)[3]
        await pilot.press("4")
        await pilot.pause()
        out["board0"] = screen_text(app)
        await pilot.press("h")
        await pilot.pause()
        out["chan2"] = screen_text(app)
        await pilot.press("n")
        await pilot.pause()
        out["board1"] = screen_text(app)
        return out

    out = run_app(src, body)["value"]
    assert "camera/cam0/frame" in out["cam0"]
    assert "camera/cam1/frame" in out["cam1"] and out["shape"] == (64, 128)
    assert "no data yet" in out["cam1_clusters"]
    assert "55Fe integral" in out["spec0"]
    assert "Cluster integral (log x)" in out["spec1"]
    assert "board 0" in out["board0"] and "amplitude: ch1" in out["board0"]
    assert "amplitude: ch2" in out["chan2"] and "Amplitude PMT2" in out["chan2"]
    assert "board 1" in out["board1"] and "ch2" in out["board1"]


def test_limits_are_asked_from_the_daemon_and_retried(monkeypatch):
    import cygno_online.tui.app as app_mod

    monkeypatch.setattr(app_mod, "LIMITS_RETRY_S", 0.0)
    src = make_source()
    src.limits = None  # ask like a real client does
    calls = []

    def query(cmd, timeout_s=3.0):
        calls.append(cmd)
        if len(calls) == 1:
            return {"ok": False, "error": "timeout"}
        rule = {"id": "p", "family": "environment", "field": "lime_pressure", "band": [0.9, 1.1]}
        return {"ok": True, "config": {"alarms": {"rules": [rule]}}}

    src.query = query

    async def body(app, pilot):
        await app.workers.wait_for_complete()
        first = list(app.limits)
        app.poll_now()
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("5")
        await pilot.pause()
        return first, list(app.limits), screen_text(app)

    # polls only when the test asks (the timer would retry on its own)
    first, limits, text = run_app(src, body, poll_s=60.0)["value"]
    assert first == [] and calls == ["config", "config"]
    assert [(x.rule_id, x.low, x.high) for x in limits] == [("p", 0.9, 1.1)]
    assert "0.9..1.1" in text


def test_bad_data_never_crashes_the_tui():
    src = make_source()
    nan = float("nan")
    src.display("image", "camera/cam0/frame", {"image": np.zeros(5)}, time_ns=NOW_NS)  # 1-D
    src.display("image", "camera/cam9/frame", {"image": np.full((4, 4), nan)}, time_ns=NOW_NS)
    src.display(
        "histogram",
        "clusters/cam0/fe55_integral",
        {"counts": np.ones(7), "edges": np.arange(3.0)},  # mismatched
        meta={"fit": {"mu": "x"}},
        time_ns=NOW_NS,
    )
    src.display("histogram", "clusters/cam0/integral", {"counts": np.array([])}, time_ns=NOW_NS)
    src.display(
        "scatter",
        "clusters/cam0/length_integral",
        {"x": np.ones(3), "y": np.ones(5)},
        time_ns=NOW_NS,
    )
    src.display(
        "waveforms", "pmt/0/latest", {"ch1": np.ones((3, 4)), "ch2": np.array([])}, time_ns=NOW_NS
    )
    src.display("histogram", "pmt/0/multiplicity", {"counts": np.array([nan, nan])}, time_ns=NOW_NS)
    src.metric("environment", {"lime_pressure": "n/a", "x": nan}, time_ns=NOW_NS)
    src.metric("hv", {"measured": True}, tags={"channel": "G"}, time_ns=NOW_NS)
    src.apply(
        __import__("cygno_online.publish.messages", fromlist=["Message"]).Message(
            "run", {"run": "?"}
        )
    )
    src.alarm(id="weird", name="", severity="unknown", state="active_unack", value=[1, 2])

    async def body(app, pilot):
        keys = ["2", "z", "x", "c", "3", "i", "c", "l", "4", "n", "h", "v", "5", "s", "6", "7", "8"]
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await pilot.press("1")
        await pilot.pause()
        return app.is_running, app.view_errors, screen_text(app)

    running, errors, text = run_app(src, body)["value"]
    assert running and errors == 0
    assert "Run " in text and "Data " in text  # the overview still renders


def test_slow_control_grouped_by_equipment_raw_channels_behind_a_toggle():
    async def body(app, pilot):
        await pilot.press("5")
        await pilot.pause()
        hidden = screen_text(app)
        await pilot.press("w")
        await pilot.pause()
        return hidden, screen_text(app)

    hidden, shown = run_app(make_source(), body, size=(100, 30))["value"]
    lines = [line for line in hidden.splitlines() if line.strip()]
    order = [
        line.split()[0]
        for line in lines
        if line.split()[0] in ("environment", "HV", "gas", "camera")
    ]
    # environment first, then HV, gas, camera; physical quantities with units
    assert order == sorted(order, key=["environment", "HV", "gas", "camera"].index)
    assert "gas_temperature" in hidden and "°C" in hidden and "0.995..1.05" in hidden
    hv = [line for line in lines if line.startswith(" HV GEM1")]
    assert [line.split()[2] for line in hv] == ["measured", "current", "demand"]
    assert "p1uin7" not in hidden and "1 raw channels hidden (w)" in hidden
    assert "p1uin7" in shown and "mA" in shown
