"""Every terminal: NO_COLOR, 16/256/truecolour palettes whatever TERM says,
ASCII consoles, mouse off; and the link states (live, lost, never connected)."""

from __future__ import annotations

import pytest
from fakedata import NOW, make_source
from helpers import run_app, screen_lines, screen_text

from cygno_online.tui.terminal import AsciiFilter, resolve_mode, to_ascii
from cygno_online.tui.widgets.heatmap import ASCII_SHADES, SHADES, Heatmap


@pytest.mark.parametrize(
    "env, palette, ascii",
    [
        ({"TERM": "xterm-256color", "NO_COLOR": "1"}, "mono", False),
        ({"TERM": "xterm"}, "16", False),
        ({"TERM": "xterm-256color"}, "256", False),
        ({"TERM": "xterm-256color", "COLORTERM": "truecolor"}, "truecolor", False),
        ({"TERM": "tmux-256color"}, "256", False),
        ({"TERM": "linux"}, "16", True),
        ({"TERM": "vt100"}, "mono", True),
        ({"TERM": "vt220"}, "16", True),
    ],
)
def test_mode_follows_no_color_and_term(env, palette, ascii):
    mode = resolve_mode("auto", environ=env, detected="truecolor")
    assert (mode.palette, mode.ascii, mode.mouse) == (palette, ascii, False)


def test_explicit_flags_win_over_term():
    env = {"TERM": "vt100", "NO_COLOR": "1"}
    mode = resolve_mode("256", ascii=False, environ=env)
    assert (mode.palette, mode.ascii) == ("256", False)
    with pytest.raises(ValueError, match="palette"):
        resolve_mode("bogus", environ={})


def test_to_ascii_keeps_cell_widths():
    for text in ("━━╸╺", "▁▂▃▄▅▆▇█", "⣿⠁", "● live ○", "+0.1±2.6", "▀▄", "📈x"):
        out = to_ascii(text)
        assert out.isascii()
        from rich.cells import cell_len

        assert cell_len(out) == cell_len(text), text


def _heatmap_chars(app) -> set[str]:
    hm = app.query_one(Heatmap)
    chars = set()
    for y in range(hm.size.height):
        chars |= set(hm.render_line(y).text)
    return chars


def test_no_color_camera_tab_draws_shades_and_does_not_crash(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")

    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        await pilot.pause()
        return app.terminal_mode.palette, _heatmap_chars(app), screen_text(app)

    got = run_app(make_source(), body)
    palette, chars, text = got["value"]
    assert got["app"].return_code in (None, 0)
    assert palette == "mono"
    assert chars <= set(SHADES) | {"+", " "} and len(chars & set(SHADES[1:])) >= 3
    assert "cam0" in text


def test_sixteen_colour_heatmap_uses_distinct_ansi_colours():
    async def body(app, pilot):
        await pilot.press("2")
        await pilot.pause()
        hm = app.query_one(Heatmap)
        colours = set()
        for y in range(hm.size.height):
            for seg in hm.render_line(y):
                for c in (seg.style.color, seg.style.bgcolor) if seg.style else ():
                    if c is not None:
                        colours.add(c.number)
        return app.console.color_system, colours

    system, colours = run_app(make_source(), body, palette="16")["value"]
    assert system == "standard"
    assert colours and all(n is not None and n < 16 for n in colours)
    assert len(colours) >= 4  # a noisy frame with a track spans several steps


def test_palette_256_is_honoured_whatever_term_says(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")  # Rich alone would downgrade to 16 colours

    async def body(app, pilot):
        return app.console.color_system, app.terminal_mode.palette

    assert run_app(make_source(), body, palette="256")["value"] == ("256", "256")
    assert run_app(make_source(), body, palette="truecolor")["value"] == (
        "truecolor",
        "truecolor",
    )


def test_ascii_mode_puts_only_ascii_on_every_tab():
    async def body(app, pilot):
        bad = {}
        for key in "12345678":
            await pilot.press(key)
            await pilot.pause()
            await pilot.pause()
            text = screen_text(app)
            odd = {c for c in text if not c.isascii()}
            if odd:
                bad[key] = odd
        await pilot.press("2")
        await pilot.pause()
        return bad, _heatmap_chars(app)

    bad, chars = run_app(make_source(), body, ascii=True)["value"]
    assert bad == {}
    assert chars <= set(ASCII_SHADES) | {"+"}


def test_ascii_filter_replaces_segments():
    from rich.segment import Segment
    from textual.color import Color

    out = AsciiFilter().apply([Segment("━●"), Segment("ok")], Color(0, 0, 0))
    assert "".join(s.text for s in out) == "-*ok"


def test_mouse_is_off_by_default(monkeypatch):
    from cygno_online.tui import app as app_mod

    seen = {}

    def fake_run(self, **kw):
        seen.update(kw)
        return 0

    monkeypatch.setattr(app_mod.MonitorApp, "run", fake_run)
    assert app_mod.run_tui(make_source()) == 0
    assert seen["mouse"] is False
    app_mod.run_tui(make_source(), mouse=True)
    assert seen["mouse"] is True


def test_a_crash_is_not_exit_status_zero(monkeypatch):
    from cygno_online.tui import app as app_mod

    def failing_run(self, **kw):
        self._return_code = 1
        return None

    monkeypatch.setattr(app_mod.MonitorApp, "run", failing_run)
    monkeypatch.setattr(app_mod.MonitorApp, "return_code", property(lambda self: 1))
    assert app_mod.run_tui(make_source()) == 1


# -- link states ------------------------------------------------------------------------
class HeartbeatSource:
    """A source that knows when its last message came, like MonitorClient."""

    def __init__(self, last):
        self._inner = make_source()
        self.state = self._inner.state
        self.connected = last is not None
        self.disconnected_since = None
        self.last_message_at = last
        self.limits = self._inner.limits
        self.expectations = self._inner.expectations
        self.endpoint = "tcp://127.0.0.1:5556"

    def ack(self, alarm_id, user):
        return {"ok": False}

    def close(self):
        pass


def _lines(src, size=(80, 24)):
    async def body(app, pilot):
        app.poll_now()
        await pilot.pause()
        return screen_lines(app)

    return run_app(src, body, size=size)["value"]


def test_silence_of_more_than_the_heartbeat_is_lost_before_2_s():
    import datetime as dt

    live = _lines(HeartbeatSource(NOW - 1.0))
    assert not any("LOST" in line for line in live)
    lost = _lines(HeartbeatSource(NOW - 1.7))  # the client itself still says connected
    since = dt.datetime.fromtimestamp(NOW - 1.7).strftime("%H:%M:%S")
    assert f"LOST since {since} (2s ago)" in lost[1]
    assert all(len(line.rstrip()) <= 80 for line in lost)
    assert "alarms: unknown" in lost[0] and "OFFLINE" in lost[0]
    assert "NOT LIVE" in "\n".join(lost)


def test_never_connected_is_distinct_and_says_what_to_check():
    lines = _lines(HeartbeatSource(None))
    text = "\n".join(lines)
    assert "NEVER CONNECTED to 127.0.0.1:5556" in lines[1]
    assert "check:" in lines[2] and "daemon running" in lines[2] and "--connect" in lines[2]
    assert "LOST" not in text
    wide = "\n".join(_lines(HeartbeatSource(None), size=(200, 60)))
    assert "systemctl status cygno-online" in wide


def test_lost_banner_fits_80_columns_with_a_long_endpoint():
    from cygno_online.tui.widgets.banner import banner_text

    text = banner_text("lost", NOW - 3600 * 5, NOW, "tcp://daq-lime-01.lngs.infn.it:15556", 80)
    assert len(text) <= 78 and "LOST since" in text and "5.0h ago" in text
    never = banner_text("never", None, NOW, "tcp://daq-lime-01.lngs.infn.it:15556", 80, NOW - 9)
    assert all(len(line) <= 78 for line in never.splitlines())
