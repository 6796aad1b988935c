"""Unit tests of the TUI's pieces: plots, staleness, limits, FakeSource, command."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fakedata import NOW, NOW_NS, make_source

from cygno_online.cli import build_parser
from cygno_online.errors import ConfigError
from cygno_online.publish.client import MonitorClient
from cygno_online.publish.state import MonitorState
from cygno_online.tui import keymetrics as km
from cygno_online.tui.source import (
    FakeSource,
    Limit,
    StateSource,
    fetch_limits,
    limits_from_rules,
    read_server_key,
    track_units,
)
from cygno_online.tui.widgets.heatmap import _resample, auto_range
from cygno_online.tui.widgets.histogram import histogram_lines, rebin
from cygno_online.tui.widgets.scatter import GUTTER, scatter_lines
from cygno_online.tui.widgets.sparkline import sparkline
from cygno_online.tui.widgets.waveform import braille_lines


def test_sparkline_scales_between_min_and_max():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0] * 5, 3) == "▄▄▄"
    assert sparkline([], 5) == ""
    assert len(sparkline(list(range(100)), 10)) == 10


def test_sparkline_draws_an_isolated_spike_outside_the_scale():
    # the demo's image mean: one spark frame (452 ADU) among ~99.6 had
    # flattened the other points of the trend to the lowest bar
    vals = [99.6, 99.7, 99.6, 99.8, 452.7, 99.6, 99.7, 99.9, 99.6, 99.7]
    line = sparkline(vals, 10)
    assert line[4] == "▲" and "█" in line and "▁" in line
    assert sparkline([-v for v in vals], 10)[4] == "▼"
    # a spike on a flat line; a step (half the points) is the trend, not outliers
    assert sparkline([5.0] * 9 + [50.0], 10) == "▄" * 9 + "▲"
    assert sparkline([1.0] * 5 + [2.0] * 5, 10) == "▁" * 5 + "█" * 5
    # a ramp and few points: no outliers
    assert "▲" not in sparkline([float(x * x) for x in range(20)], 20)
    assert sparkline([1, 1, 100], 3) == "▁▁█"
    # a second population (the demo's analysed rate: bursts of ~7 Hz among
    # 2 Hz; the image RMS of frames with an alpha) is the trend: no marks
    rate = [2.0, 2.0, 6.97, 2.0, 1.0, 6.9, 2.0, 5.5, 2.0, 2.0] * 2
    assert "▲" not in sparkline(rate, 20)
    # a spike among two populations is still one (the demo's image RMS: a
    # spark frame's 2960 ADU among 8.5 and the alpha frames' 9.0-9.3)
    rms = [8.5, 8.5, 9.01, 8.5, 8.51, 9.31, 8.5, 8.5, 2960.75, 8.5] * 2
    line = sparkline(rms, 20)
    assert line.count("▲") == 2 and line[2] != "▁" and line[5] == "█"
    # a bright frame just above the others is not a spike either
    mean = [99.64, 99.65, 99.66, 99.70, 99.65, 99.64, 99.79, 99.66, 99.65, 99.67]
    assert "▲" not in sparkline(mean, 10)


def test_histogram_bars_and_fit_marker():
    counts = np.array([0, 1, 4, 8, 4, 1, 0], dtype=float)
    edges = np.arange(8, dtype=float)
    lines = histogram_lines(counts, edges, 7, 5, mark=3.5)
    assert len(lines) == 5  # 4 rows of bars + axis
    assert lines[0].plain[3] == "█"  # the tallest bin reaches the top
    assert lines[-1].plain.startswith("0") and lines[-1].plain.endswith("7")
    assert rebin(np.arange(10.0), 5).tolist() == [1, 5, 9, 13, 17]
    assert rebin(np.array([1.0, 2.0]), 4).tolist() == [1, 1, 2, 2]


def test_scatter_and_braille_plots_have_the_requested_size():
    x = np.linspace(0, 1, 50)
    lines, outside = scatter_lines(x, x, 20, 6)
    assert len(lines) == 6 and all(len(line.plain) == 20 for line in lines)
    assert outside == 0
    # a y-axis gutter, then the diagonal from corner to corner
    assert lines[0].plain[-1] != " " and lines[-2].plain[GUTTER] != " "
    wave = braille_lines(np.r_[np.zeros(50), -np.ones(10), np.zeros(40)], 10, 2)
    assert len(wave) == 2 and all(len(r) == 10 for r in wave)
    assert all(0x2800 <= ord(c) <= 0x28FF for r in wave for c in r)
    assert wave[1].strip("\u2800")  # the negative pulse reaches the bottom row


def test_resample_shrinks_by_block_mean_and_enlarges_by_nearest():
    img = np.arange(16, dtype=float).reshape(4, 4)
    assert _resample(img, 2, 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert _resample(img[:2, :2], 4, 4)[0].tolist() == [0, 0, 1, 1]
    lo, hi = auto_range(np.full((10, 10), 5.0))
    assert hi > lo


def test_256_colour_palette_stays_readable():
    from rich.color import ColorSystem

    from cygno_online.tui.widgets.heatmap import PALETTE, palette_for

    assert palette_for("truecolor") is PALETTE
    pal = palette_for("256")
    assert all(c.type.name == "EIGHT_BIT" for c in pal)

    def lum(c):
        t = c.get_truecolor()
        return 0.2126 * t.red + 0.7152 * t.green + 0.0722 * t.blue

    steps = [lum(c) for c in pal]
    assert all(b >= a for a, b in itertools.pairwise(steps))  # monotonic
    assert len({c.number for c in pal}) >= 15
    # what Rich's own downgrade of the truecolour palette would give: fewer steps
    assert len({c.downgrade(ColorSystem.EIGHT_BIT).number for c in PALETTE}) < 15


def test_staleness_rules():
    st = MonitorState()
    src = FakeSource()
    src.state = st
    for i in range(5):
        src.metric("camera", {"mean": 1.0}, time_ns=NOW_NS - (4 - i) * 10**9)
    assert km.usual_period_s(st, "camera") == pytest.approx(1.0)
    assert not km.is_stale(st, "camera", NOW + 9)  # floor of 10 s
    assert km.is_stale(st, "camera", NOW + 11)
    src.metric("hv", {"v": 1.0}, time_ns=NOW_NS)  # one point: default 60 s
    assert not km.is_stale(st, "hv", NOW + 59) and km.is_stale(st, "hv", NOW + 61)
    for i in range(4):
        src.metric("gas", {"f": 1.0}, time_ns=NOW_NS - (3 - i) * 60 * 10**9)
    assert not km.is_stale(st, "gas", NOW + 170) and km.is_stale(st, "gas", NOW + 181)


def test_key_metrics_use_the_first_present_field():
    src = make_source()
    with src.state.lock:
        rows = km.key_rows(src.state, km.KEY_METRICS[0])
        boxes = km.pedestal_boxes(src.state, "cam0")
        assert km.cameras(src.state) == ["cam0"]
    assert rows and rows[0][2] == "rate_hz"
    assert boxes[0] == (100.0, 2.0) and len(boxes) == 9
    assert km.fmt_duration(3725) == "01:02:05" and km.fmt_duration(90000) == "1d 01:00:00"
    assert km.fmt_value(True) == "yes" and km.fmt_value(float("nan")) == "-"


def test_limits_from_rules_and_alarm_ids():
    rules = [
        {
            "id": "p",
            "family": "environment",
            "tags": {"name": "lime_pressure"},
            "field": "value",
            "band": [0.95, 1.05],
        },
        {"id": "hv_i", "family": "hv", "field": "current", "above": 2, "severity": "error"},
        {"id": "nodata", "family": "gas", "field": "flow", "no_data_s": 60},
        {"family": "bad"},
    ]
    lims = limits_from_rules(rules)
    assert [(x.rule_id, x.low, x.high) for x in lims] == [("p", 0.95, 1.05), ("hv_i", None, 2.0)]
    assert lims[0].text() == "0.95..1.05" and lims[1].text() == "<= 2"
    assert lims[1].matches("hv", {"channel": "GEM1"}, "current")
    assert lims[1].alarm_id({"channel": "GEM1"}) == "hv_i{channel=GEM1}"
    assert lims[0].alarm_id({"name": "lime_pressure"}) == "p"


def test_fetch_limits_asks_the_daemon_configuration_once():
    class Querying:
        calls = 0

        def query(self, cmd, timeout_s=3.0):
            Querying.calls += 1
            assert cmd == "config"
            return {
                "config": {
                    "alarms": {"rules": [{"id": "x", "family": "hv", "field": "v", "below": 1}]}
                }
            }

    lims = fetch_limits(Querying())
    assert Querying.calls == 1 and lims[0].low == 1.0

    class Failing:
        def query(self, cmd, timeout_s=3.0):
            return {"ok": False, "error": "timeout"}

    assert fetch_limits(Failing()) is None
    assert fetch_limits(object()) is None
    assert fetch_limits(FakeSource(limits=[Limit("a", "f", {}, "x", 1, 2)]))[0].rule_id == "a"


def test_fake_source_ack_marks_the_alarm_acknowledged():
    src = make_source()
    reply = src.ack("lime_pressure", "alice")
    assert reply["ok"] and src.acks == [("lime_pressure", "alice")]
    rec = src.state.alarms["lime_pressure"]
    assert rec.acked and rec.acked_by == "alice" and not rec.needs_attention
    assert src.state.alarm_history[-1].transition == "acknowledged"
    assert not src.ack("nope", "alice")["ok"]


def test_units_are_tracked_per_field_and_previous_hook_kept():
    seen = []
    src = FakeSource()
    src.on_update = seen.append
    assert track_units(src) and track_units(src)  # idempotent
    src.metric("hv", {"demand": 1.0}, tags={"channel": "X9"}, units={"demand": "V"})
    src.metric("hv", {"current": 1.0}, tags={"channel": "X9"}, units={"current": "uA"})
    assert len(seen) == 2
    with src.state.lock:
        assert km.unit_of(src.state, "hv{channel=X9}", "demand") == "V"
        assert km.unit_of(src.state, "hv{channel=X9}", "current") == "uA"
        assert km.series_fields(src.state, "hv{channel=X9}") == {"demand": 1.0, "current": 1.0}
    assert not track_units(object())


def test_real_clients_satisfy_the_protocol():
    client = MonitorClient("tcp://127.0.0.1:1", start=False)
    assert isinstance(client, StateSource)
    assert isinstance(FakeSource(), StateSource)


def test_read_server_key(tmp_path):
    import zmq.auth

    public, _ = zmq.auth.create_certificates(str(tmp_path), "server")
    key, _ = zmq.auth.load_certificate(public)
    assert read_server_key(public) == key
    plain = tmp_path / "plain.txt"
    plain.write_text(key.decode() + "\n")
    assert read_server_key(plain) == key
    bad = tmp_path / "bad.txt"
    bad.write_text("nothing here")
    with pytest.raises(ConfigError):
        read_server_key(bad)
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"public-key = \xff\xfe" + bytes(range(256)))
    with pytest.raises(ConfigError, match="byte 0xff at offset 13"):
        read_server_key(binary)
    with pytest.raises(ConfigError, match="No such file"):
        read_server_key(tmp_path / "missing.key")
    huge = tmp_path / "huge.key"
    huge.write_bytes(b"x" * 100_000)
    with pytest.raises(ConfigError, match="not a key file"):
        read_server_key(huge)


def test_tui_command_arguments():
    args = build_parser().parse_args(
        [
            "tui",
            "--connect",
            "tcp://daq:6000",
            "--server-key",
            "k.key",
            "--control",
            "tcp://daq:7000",
        ]
    )
    assert args.command == "tui" and args.connect == "tcp://daq:6000"
    assert args.server_key == "k.key" and args.control == "tcp://daq:7000" and args.snapshot is None
    assert args.palette == "auto"
    defaults = build_parser().parse_args(["tui"])
    assert defaults.connect == "tcp://127.0.0.1:5556"


def test_cluster_class_rates_over_the_last_minute():
    from cygno_online.tui.screens.clusters import class_rate

    src = FakeSource()
    for i in range(200):  # 2 alphas per image, 2 images per second
        src.metric(
            "clusters",
            {"n_alpha": 2},
            tags={"camera": "cam0"},
            time_ns=NOW_NS - (199 - i) * 500_000_000,
        )
    sid = "clusters{camera=cam0}"
    assert class_rate(src.state, sid, "n_alpha", NOW) == pytest.approx(4.0)
    assert class_rate(src.state, sid, "n_alpha", NOW + 3600) == 0.0  # nothing recent
    assert class_rate(src.state, sid, "n_muon", NOW) is None


def test_camera_side_shows_occupancy_beside_the_noise_expectation():
    from cygno_online.tui.screens.base import ViewContext
    from cygno_online.tui.screens.camera import side_text

    st = MonitorState()
    src = FakeSource()
    src.state = st
    fields = {"frac_over_threshold": 0.117, "n_clusters": 4}
    src.metric("camera", fields, tags={"camera": "cam0"}, time_ns=NOW_NS)
    ctx = ViewContext(state=st, now=NOW, connected=True)
    assert "11.7 %" in side_text(ctx, "cam0", ["cam0"]).plain
    assert "noise" not in side_text(ctx, "cam0", ["cam0"]).plain
    # the analyzer publishes what Gaussian noise alone passes at its nsigma
    src.metric(
        "camera",
        {**fields, "frac_over_threshold_noise": 0.0968},
        tags={"camera": "cam0"},
        time_ns=NOW_NS + 10**9,
    )
    line = next(x for x in side_text(ctx, "cam0", ["cam0"]).plain.splitlines() if "over thr." in x)
    assert "11.7 %, noise 9.68" in line


def test_a_box_with_a_track_is_not_a_pedestal_problem():
    # box2 is off (+24 +- 30 on a 2.6 sigma map): without cluster light it
    # is a pedestal problem; with a cluster in it this frame (box2_light,
    # the camera analyzer's) it is the track's light, shown "~" and not
    # counted as off; a lit box that is fine stays unflagged.
    from cygno_online.tui import answers

    src = make_source()
    with src.state.lock:
        a = answers.pedestal_check(src.state, "cam0")
    assert a.status == "bad" and a.text == "1/9 boxes off" and a.boxes[2][2] == "off"
    fields = {f"box{k}_ped_mean": 0.1 for k in range(9)}
    fields.update({f"box{k}_ped_rms": 2.6 for k in range(9)})
    fields.update(box2_ped_mean=24.0, box2_ped_rms=30.0, box2_light=True, box5_light=True)
    src.metric("camera", fields, tags={"camera": "cam0"}, time_ns=NOW_NS + 10**9)
    with src.state.lock:
        a = answers.pedestal_check(src.state, "cam0")
    assert a.status == "ok" and a.text == "8/9 boxes ok, 1 with a track"
    assert a.boxes[2][2] == "light" and a.boxes[5][2] == "" and a.boxes[0][2] == ""
    # a lit box beside a real drift: the drift still counts
    fields.update(box0_ped_mean=-30.0)
    src.metric("camera", fields, tags={"camera": "cam0"}, time_ns=NOW_NS + 2 * 10**9)
    with src.state.lock:
        a = answers.pedestal_check(src.state, "cam0")
    assert a.status == "bad" and a.text == "1/9 boxes off, 1 with a track"
