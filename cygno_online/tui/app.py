"""The shifter's terminal view of the monitor.

The app renders a :class:`~cygno_online.publish.state.MonitorState` that a
:class:`~cygno_online.tui.source.StateSource` keeps up to date from another
thread. It never receives one message per update: a timer on the UI thread
polls the state (:data:`POLL_S`), and only the visible tab is refreshed, and
only when ``state.seq``, the connection, or the second changed (run time,
ages, staleness). Images repaint at most twice a second.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.filter import NoColor
from textual.widgets import Footer, TabbedContent, TabPane

from cygno_online.tui.alarmview import summarize
from cygno_online.tui.keymetrics import cameras
from cygno_online.tui.screens.alarms import AlarmsPanel, ShelveScreen
from cygno_online.tui.screens.base import Panel, ViewContext
from cygno_online.tui.screens.camera import IMAGE_MIN_INTERVAL_S, CameraPanel
from cygno_online.tui.screens.clusters import ClustersPanel
from cygno_online.tui.screens.logview import LogPanel
from cygno_online.tui.screens.modals import ConfirmScreen, HelpScreen
from cygno_online.tui.screens.overview import OverviewPanel
from cygno_online.tui.screens.pmt import PmtPanel, boards
from cygno_online.tui.screens.runs import RunsPanel
from cygno_online.tui.screens.slowcontrol import SlowControlPanel
from cygno_online.tui.source import (
    Expectations,
    Limit,
    StateSource,
    fetch_view_config,
    track_units,
)
from cygno_online.tui.terminal import (
    AsciiFilter,
    SafeMonochrome,
    TerminalMode,
    resolve_mode,
)
from cygno_online.tui.widgets.banner import Banner
from cygno_online.tui.widgets.statusline import StatusLine, status_text

log = logging.getLogger(__name__)

_UNKNOWN = object()

P = TypeVar("P", bound=Panel)

#: state poll period (the visible tab repaints only when something changed;
#: a poll that finds nothing new costs a tuple comparison)
POLL_S = 0.25
#: no message (data or the daemon's 1 s heartbeat) for this long: the link is
#: shown lost; with POLL_S the banner is up within 2 s of the last message
LOST_AFTER_S = 1.6
#: repaint at least this often (run time, ages, staleness)
TICK_S = 1.0
#: how often the live checks' reference run is looked at (its 55Fe peak is
#: the Overview's reference when the configuration gives none)
REFERENCE_CHECK_S = 5.0
#: --low-bandwidth: clock and ages every 5 s, camera frame every 10 s
LOW_BANDWIDTH_TICK_S = 5.0
LOW_BANDWIDTH_IMAGE_S = 10.0
#: alarm limits are asked again this often (rules change on a daemon reload)
LIMITS_REFRESH_S = 300.0
#: ... and this soon when the daemon did not answer
LIMITS_RETRY_S = 30.0

#: (pane id, tab title, panel class)
TABS: tuple[tuple[str, str, type[Panel]], ...] = (
    ("overview", "1 Overview", OverviewPanel),
    ("camera", "2 Camera", CameraPanel),
    ("clusters", "3 Clusters", ClustersPanel),
    ("pmt", "4 PMT", PmtPanel),
    ("slow", "5 Slow", SlowControlPanel),
    ("alarms", "6 Alarms", AlarmsPanel),
    ("runs", "7 Runs", RunsPanel),
    ("log", "8 Log", LogPanel),
)

#: actions that only make sense on some tabs (hidden from the footer elsewhere)
TAB_ACTIONS: dict[str, tuple[str, ...]] = {
    "camera_pause": ("camera",),
    "camera_auto": ("camera",),
    "camera_range": ("camera",),
    "camera_zoom": ("camera",),
    "camera_reset": ("camera",),
    "camera_boxes": ("camera",),
    "next_camera": ("camera", "clusters"),
    "clusters_log": ("clusters",),
    "clusters_spectrum": ("clusters",),
    "pmt_board": ("pmt",),
    "pmt_mode": ("pmt",),
    "pmt_channel": ("pmt",),
    "slow_sort": ("slow",),
    "slow_raw": ("slow",),
    "slow_filter": ("slow",),
    "slow_clear": ("slow",),
    "ack": ("alarms",),
    "shelve": ("alarms",),
    "unshelve": ("alarms",),
}


class MonitorCommands(Provider):
    """Command palette entries: switch tab, acknowledge, camera controls."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        assert isinstance(app, MonitorApp)
        cmds: list[tuple[str, Callable[[], Any], str]] = [
            (
                f"Go to {title.split(' ', 1)[1]}",
                partial(app.action_show_tab, pane),
                f"key {title[0]}",
            )
            for pane, title, _ in TABS
        ]
        cmds += [
            ("Acknowledge selected alarm", app.action_ack_from_palette, "Alarms tab, key a"),
            ("Pause / resume camera", app.action_camera_pause, "key p on the Camera tab"),
            ("Camera: automatic colour range", app.action_camera_auto, "key r"),
            ("Camera: reset zoom", app.action_camera_reset, "key 0"),
            ("Camera: next camera", app.action_next_camera, "key c"),
            ("Slow control: cycle sort column", app.action_slow_sort, "key s"),
            ("Show keys (help)", app.action_help, "key ?"),
        ]
        return cmds

    async def discover(self) -> Hits:
        for name, fn, help_text in self._commands():
            yield DiscoveryHit(name, fn, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, fn, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), fn, help=help_text)


class MonitorApp(App[int]):
    # absolute: subclasses (the benchmark's) live in other packages
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "CYGNO online"
    COMMANDS: ClassVar = App.COMMANDS | {MonitorCommands}
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        *[
            Binding(str(i + 1), f"show_tab('{pane}')", title, show=False)
            for i, (pane, title, _) in enumerate(TABS)
        ],
        Binding("p", "camera_pause", "pause"),
        Binding("r", "camera_auto", "auto range"),
        Binding("plus,equals_sign", "camera_range('max', 1)", "max+", show=False),
        Binding("minus", "camera_range('max', -1)", "max-", show=False),
        Binding("right_square_bracket", "camera_range('min', 1)", "min+", show=False),
        Binding("left_square_bracket", "camera_range('min', -1)", "min-", show=False),
        Binding("z", "camera_zoom(1)", "zoom"),
        Binding("x", "camera_zoom(-1)", "unzoom"),
        Binding("0", "camera_reset", "reset", show=False),
        Binding("b", "camera_boxes", "boxes", show=False),
        Binding("c", "next_camera", "camera"),
        Binding("l", "clusters_log", "log/lin"),
        Binding("i", "clusters_spectrum", "spectrum"),
        Binding("n", "pmt_board", "board"),
        Binding("v", "pmt_mode", "latest/avg"),
        Binding("h", "pmt_channel", "channel"),
        Binding("s", "slow_sort", "sort"),
        Binding("w", "slow_raw", "raw channels"),
        Binding("slash", "slow_filter", "filter"),
        Binding("escape", "slow_clear", "clear filter", show=False),
        Binding("a", "ack", "acknowledge"),
        Binding("e", "shelve", "shelve"),
        Binding("u", "unshelve", "unshelve"),
    ]

    def __init__(
        self,
        source: StateSource,
        *,
        title: str = "CYGNO online",
        clock: Callable[[], float] = time.time,
        user: str | None = None,
        poll_s: float = POLL_S,
        image_interval_s: float | None = None,
        palette: str = "auto",
        ascii: bool | None = None,
        mouse: bool = False,
        low_bandwidth: bool = False,
    ) -> None:
        super().__init__()
        self.source = source
        self.title = title
        self.clock = clock
        self.user = user
        self.poll_s = poll_s
        #: colours, characters, mouse (see cygno_online.tui.terminal)
        self.terminal_mode = resolve_mode(
            palette,
            ascii=ascii,
            mouse=mouse,
            low_bandwidth=low_bandwidth,
            detected=self.console.color_system,
        )
        self.palette = self.terminal_mode.palette
        self._apply_terminal_mode()
        #: minimum time between two repaints of the camera frame
        if image_interval_s is None:
            image_interval_s = LOW_BANDWIDTH_IMAGE_S if low_bandwidth else IMAGE_MIN_INTERVAL_S
        self.image_interval_s = image_interval_s
        #: the clock on the status line and ages tick this often
        self.tick_s = LOW_BANDWIDTH_TICK_S if low_bandwidth else TICK_S
        self.limits: list[Limit] = []
        #: references the Overview compares with (daemon configuration, and
        #: the 55Fe peak of the checks' reference run when none is configured)
        self.expectations = Expectations()
        self._config_expect = Expectations()
        #: (reference run, its 55Fe peak or None) once asked from the daemon
        self._ref_fe55: tuple[int, float | None] | None = None
        self._ref_asking: int | None = None
        self._ref_check_due = 0.0
        self.camera: str | None = None
        self.polls = 0
        self.repaints = 0
        self._last_key: tuple | None = None
        self._was_connected: bool | None = None
        self._limits_pending = False
        #: monotonic time of the next limits refresh (rules change on reload)
        self._limits_due = 0.0
        self.last_ack: dict[str, Any] | None = None
        self.last_alarm_reply: dict[str, Any] | None = None
        self._panels: dict[str, Panel] = {}
        self._alarm_tab: Any = None
        self._alarm_label = "6 Alarms"
        self._bad_alarms: int | None = None
        self.bells = 0
        #: exceptions while updating a tab (shown once, logged always)
        self.view_errors = 0
        track_units(source)

    @property
    def mode_info(self) -> TerminalMode:
        return self.terminal_mode

    def _apply_terminal_mode(self) -> None:
        """Force the colour system (whatever TERM says) and add the
        monochrome / ASCII line filters."""
        from rich.console import ColorSystem
        from textual.filter import Monochrome

        mode = self.terminal_mode
        systems = {
            "truecolor": ColorSystem.TRUECOLOR,
            "256": ColorSystem.EIGHT_BIT,
            "16": ColorSystem.STANDARD,
        }
        if mode.palette in systems:
            # Rich has no public setter; the console is the app's own.
            self.console._color_system = systems[mode.palette]
        filters = [f for f in self._filters if not isinstance(f, Monochrome)]
        if mode.mono and not any(isinstance(f, NoColor) for f in filters):
            filters.append(SafeMonochrome())
        if mode.ascii:
            filters.append(AsciiFilter())
        self._filters[:] = filters
        if mode.ascii:
            self.add_class("-ascii")

    # -- layout ----------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield Banner(id="banner")
        with TabbedContent(id="tabs", initial="overview"):
            for pane, title, cls in TABS:
                with TabPane(title, id=pane):
                    yield cls()
        yield Footer()

    def on_mount(self) -> None:
        # References to the main screen's widgets: app.query_one() searches the
        # active screen, which is a modal while help or a confirmation is open.
        self._tabs = self.query_one(TabbedContent)
        self._banner = self.query_one(Banner)
        self._status = self.query_one(StatusLine)
        self._panels = {pane: self.query_one(f"#{pane} Panel", Panel) for pane, _, _ in TABS}
        self._first_poll = self.clock()
        self.set_interval(self.poll_s, self.poll)
        self.poll_now()

    # -- helpers ---------------------------------------------------------------------
    @property
    def active_tab(self) -> str:
        return self._tabs.active or "overview"

    def panel(self, pane: str | None = None) -> Panel:
        return self._panels[pane or self.active_tab]

    def _get(self, cls: type[P]) -> P:
        return next(p for p in self._panels.values() if isinstance(p, cls))

    def poll_now(self) -> None:
        """Refresh at once (after a key press), whatever changed."""
        self._last_key = None
        self.poll()

    def link(self, now: float) -> tuple[str, float | None]:
        """The link to the daemon: ``("live", None)``, ``("lost", time of the
        last message)`` or ``("never", None)``.

        Sources that know when their last message came (the ZeroMQ client:
        data or the daemon's heartbeat every second) are lost after
        :data:`LOST_AFTER_S` of silence, sooner than their own reconnect
        timeout; the others by their ``connected`` flag."""
        src = self.source
        last = getattr(src, "last_message_at", _UNKNOWN)
        connected = bool(src.connected)
        if last is _UNKNOWN:
            if connected:
                return "live", None
            return "lost", src.disconnected_since
        if last is None:
            return "never", None
        if connected and now - float(last) <= LOST_AFTER_S:
            return "live", None
        return "lost", float(last)

    def poll(self) -> None:
        if not self._panels:
            return
        self.polls += 1
        now = self.clock()
        link, since = self.link(now)
        connected = link == "live"
        mono = time.monotonic()
        if connected and (self._was_connected is not True or mono >= self._limits_due):
            self._fetch_limits()
        self._was_connected = connected
        state = self.source.state
        if connected:
            self._follow_reference_run(state)
        if self.terminal_mode.low_bandwidth:
            # slow links: data at the tick (5 s); alarms and the link at once
            data = (len(state.alarm_history), len(state.alarms))
        else:
            data = (state.seq,)
        key = (*data, link, int(now / self.tick_s), self.active_tab)
        if key == self._last_key:
            return
        self._last_key = key
        self.repaints += 1
        self._banner.show(
            link,
            since,
            now,
            str(getattr(self.source, "endpoint", "") or ""),
            self.size.width,
            getattr(self, "_first_poll", None),
        )
        self._tabs.set_class(not connected, "-disconnected")
        with state.lock:
            ctx = ViewContext(state, now, connected, self.limits, self.camera, self.expectations)
            summary = summarize(state)
            self._status.set(
                status_text(self.title, state.run, summary, connected, now, self.size.width)
            )
            n = summary.attention
            self._label_alarm_tab(f"6 Alarms ({n})" if n and connected else "6 Alarms")
            if connected:
                self._ring_on_new_alarm(summary.bad)
            try:
                self.panel().update_view(ctx)
            except Exception as exc:
                # A message the panel cannot show must not end the shift's TUI.
                self.view_errors += 1
                log.exception("cannot show tab %s", self.active_tab)
                if self.view_errors == 1 or self.view_errors % 100 == 0:
                    self.notify(
                        f"cannot show part of tab {self.active_tab}: {exc}", severity="error"
                    )

    def _ring_on_new_alarm(self, bad: int) -> None:
        """Terminal bell when more error/critical alarms need attention than
        at the previous repaint (not for those already there at start)."""
        if self._bad_alarms is not None and bad > self._bad_alarms:
            self.bell()
            self.bells += 1
        self._bad_alarms = bad

    def _label_alarm_tab(self, label: str) -> None:
        if label == self._alarm_label:
            return
        if self._alarm_tab is None:
            try:
                self._alarm_tab = self._tabs.get_tab("alarms")
            except NoMatches:
                return  # tabs not mounted yet: next poll
        self._alarm_tab.label = label
        self._alarm_label = label

    def _fetch_limits(self) -> None:
        if self._limits_pending:
            return
        self._limits_pending = True
        self._limits_due = time.monotonic() + LIMITS_REFRESH_S

        def work() -> None:
            got = fetch_view_config(self.source)
            with contextlib.suppress(RuntimeError):  # the app closed meanwhile
                self.call_from_thread(self._set_view_config, got)

        self.run_worker(work, thread=True, exclusive=False, group="limits")

    def _set_view_config(self, got: tuple[list[Limit], Expectations] | None) -> None:
        self._limits_pending = False
        if got is None:
            # the daemon did not answer: try again soon
            self._limits_due = min(self._limits_due, time.monotonic() + LIMITS_RETRY_S)
            return
        limits, expect = got
        self._config_expect = expect
        expect = self._merged_expectations()
        if limits != self.limits or expect != self.expectations:
            self.limits = limits
            self.expectations = expect
            self.poll_now()

    # -- the reference run's 55Fe peak -----------------------------------------------
    def _merged_expectations(self) -> Expectations:
        """The configuration's references; without a configured 55Fe peak,
        that of the live checks' reference run (asked from the daemon)."""
        from dataclasses import replace

        base = self._config_expect
        ref = self._ref_fe55
        if base.fe55_peak is None and ref is not None and ref[1] is not None:
            return replace(base, fe55_peak=ref[1], fe55_from=f"run {ref[0]}")
        return base

    def _follow_reference_run(self, state: Any) -> None:
        """Ask the daemon once per reference run for its 55Fe peak (worker
        thread; only when the configuration gives none)."""
        from cygno_online.tui.answers import reference_run_of

        if self._config_expect.fe55_peak is not None or not hasattr(self.source, "query"):
            return
        mono = time.monotonic()
        if mono < self._ref_check_due:
            return
        self._ref_check_due = mono + REFERENCE_CHECK_S
        with state.lock:
            ref = reference_run_of(state)
            run = state.run.get("run")
        if ref is None or ref == self._ref_asking or (self._ref_fe55 or (None,))[0] == ref:
            return
        self._ref_asking = ref
        source = self.source

        def work() -> None:
            from cygno_online.tui.screens.runs import ask_reference

            req = {"run": int(run) if isinstance(run, int) else ref + 1, "reference_run": ref}
            row, _how = ask_reference(source, req)
            peak = row.get("fe55_peak") if isinstance(row, dict) else None
            ok = isinstance(peak, (int, float)) and not isinstance(peak, bool) and peak > 0
            with contextlib.suppress(RuntimeError):  # the app closed meanwhile
                self.call_from_thread(self._set_reference_fe55, ref, float(peak) if ok else None)

        self.run_worker(work, thread=True, exclusive=False, group="reference")

    def _set_reference_fe55(self, ref: int, peak: float | None) -> None:
        self._ref_fe55 = (ref, peak)
        self._ref_asking = None
        expect = self._merged_expectations()
        if expect != self.expectations:
            self.expectations = expect
            self.poll_now()

    # -- tabs ------------------------------------------------------------------------
    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id not in self._panels:
            return  # before on_mount
        self.refresh_bindings()
        target = self.panel(event.pane.id).focus_target()
        if target is not None:
            target.focus()  # type: ignore[attr-defined]
        self.poll_now()

    def action_show_tab(self, pane: str) -> None:
        self._tabs.active = pane

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tabs = TAB_ACTIONS.get(action)
        if tabs is None:
            return True
        try:
            return self.active_tab in tabs
        except Exception:
            return False

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # -- camera ----------------------------------------------------------------------
    def _camera(self) -> CameraPanel:
        return self._get(CameraPanel)

    def action_camera_pause(self) -> None:
        self._camera().toggle_pause()
        self.poll_now()

    def action_camera_auto(self) -> None:
        self._camera().heatmap.set_auto()

    def action_camera_range(self, which: str, direction: int) -> None:
        self._camera().heatmap.adjust_range(which, direction)

    def action_camera_zoom(self, direction: int) -> None:
        hm = self._camera().heatmap
        hm.zoom_in() if direction > 0 else hm.zoom_out()
        self.poll_now()

    def action_camera_reset(self) -> None:
        self._camera().heatmap.reset_view()
        self.poll_now()

    def action_camera_boxes(self) -> None:
        self._camera().heatmap.toggle_boxes()

    def action_next_camera(self) -> None:
        with self.source.state.lock:
            cams = cameras(self.source.state)
        if cams:
            cur = self.camera if self.camera in cams else self._camera().camera
            i = cams.index(cur) if cur in cams else -1
            self.camera = cams[(i + 1) % len(cams)]
        self.poll_now()

    # -- clusters / pmt ------------------------------------------------------------
    def action_clusters_log(self) -> None:
        self._get(ClustersPanel).toggle_log()

    def action_clusters_spectrum(self) -> None:
        self._get(ClustersPanel).next_spectrum()
        self.poll_now()

    def action_pmt_board(self) -> None:
        p = self._get(PmtPanel)
        with self.source.state.lock:
            bs = boards(self.source.state)
        if bs:
            i = bs.index(p.board) if p.board in bs else -1
            p.board = bs[(i + 1) % len(bs)]
            p._seen.clear()
        self.poll_now()

    def action_pmt_mode(self) -> None:
        self._get(PmtPanel).toggle_mode()
        self.poll_now()

    def action_pmt_channel(self) -> None:
        self._get(PmtPanel).next_channel()
        self.poll_now()

    # -- slow control --------------------------------------------------------------------
    def action_slow_sort(self) -> None:
        self._get(SlowControlPanel).cycle_sort()
        self.poll_now()

    def action_slow_raw(self) -> None:
        self._get(SlowControlPanel).toggle_raw()
        self.poll_now()

    def action_slow_filter(self) -> None:
        self._get(SlowControlPanel).open_filter()

    def action_slow_clear(self) -> None:
        self._get(SlowControlPanel).clear_filter()
        self.poll_now()

    # -- alarms ----------------------------------------------------------------------
    def action_ack(self) -> None:
        alarm_id = self._get(AlarmsPanel).selected_alarm()
        if alarm_id is None:
            self.notify("no alarm selected", severity="warning")
            return
        with self.source.state.lock:
            rec = self.source.state.alarms.get(alarm_id)
            name = (rec.name or rec.id) if rec else alarm_id
            needs = rec.needs_attention if rec else False
        question = f"Acknowledge alarm '{name}'?"
        if not needs:
            question += "\n(it does not need attention right now)"
        self.push_screen(ConfirmScreen(question), partial(self._ack_answer, alarm_id))

    def _selected_record(self) -> tuple[str | None, Any]:
        alarm_id = self._get(AlarmsPanel).selected_alarm()
        if alarm_id is None:
            self.notify("no alarm selected", severity="warning")
            return None, None
        with self.source.state.lock:
            rec = self.source.state.alarms.get(alarm_id)
        return alarm_id, rec

    def action_shelve(self) -> None:
        """Shelve the selected alarm for a chosen time (the choice confirms)."""
        alarm_id, rec = self._selected_record()
        if alarm_id is None:
            return
        name = (rec.name or rec.id) if rec else alarm_id
        self.push_screen(ShelveScreen(name), partial(self._shelve_answer, alarm_id))

    def _shelve_answer(self, alarm_id: str, seconds: float | None) -> None:
        if not seconds:
            return
        user = self.user or _user()
        self._alarm_request(
            alarm_id, "shelved", lambda src: src.shelve(alarm_id, user, seconds, "from the TUI")
        )

    def action_unshelve(self) -> None:
        alarm_id, rec = self._selected_record()
        if alarm_id is None:
            return
        if rec is None or rec.state != "shelved":
            self.notify(f"alarm {alarm_id} is not shelved", severity="warning")
            return
        question = f"Unshelve alarm '{rec.name or rec.id}'? It shows its true state at once."
        self.push_screen(ConfirmScreen(question), partial(self._unshelve_answer, alarm_id))

    def _unshelve_answer(self, alarm_id: str, yes: bool | None) -> None:
        if not yes:
            return
        user = self.user or _user()
        self._alarm_request(alarm_id, "unshelved", lambda src: src.unshelve(alarm_id, user))

    def _alarm_request(self, alarm_id: str, what: str, call: Callable[[Any], Any]) -> None:
        """Ask the daemon in a worker thread; the answer is a notification."""

        def work() -> None:
            try:
                reply = call(self.source)
            except Exception as exc:
                reply = {"ok": False, "error": str(exc)}
            with contextlib.suppress(RuntimeError):  # the app closed meanwhile
                self.call_from_thread(self._alarm_done, alarm_id, what, reply)

        self.run_worker(work, thread=True, group="alarm")

    def _alarm_done(self, alarm_id: str, what: str, reply: Any) -> None:
        self.last_alarm_reply = reply if isinstance(reply, dict) else {"ok": False}
        if self.last_alarm_reply.get("ok"):
            self.notify(f"alarm {alarm_id} {what}")
        else:
            self.notify(
                f"alarm {alarm_id} not {what}: {self.last_alarm_reply.get('error')}",
                severity="error",
            )
        self.poll_now()

    def action_ack_from_palette(self) -> None:
        self.action_show_tab("alarms")
        self.call_after_refresh(self.action_ack)

    def _ack_answer(self, alarm_id: str, yes: bool | None) -> None:
        if not yes:
            return
        user = self.user or _user()

        def work() -> None:
            try:
                reply = self.source.ack(alarm_id, user=user)
            except Exception as exc:
                reply = {"ok": False, "error": str(exc)}
            with contextlib.suppress(RuntimeError):  # the app closed meanwhile
                self.call_from_thread(self._ack_done, alarm_id, reply)

        self.run_worker(work, thread=True, group="ack")

    def _ack_done(self, alarm_id: str, reply: dict[str, Any]) -> None:
        self.last_ack = reply if isinstance(reply, dict) else {"ok": False, "error": str(reply)}
        if self.last_ack.get("ok"):
            self.notify(f"alarm {alarm_id} acknowledged")
        else:
            self.notify(
                f"acknowledging {alarm_id} failed: {self.last_ack.get('error')}", severity="error"
            )
        self.poll_now()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "shifter"


def run_tui(source: StateSource, *, title: str = "CYGNO online", **kw: Any) -> int:
    """Run the TUI in this terminal until the shifter quits. The caller owns
    ``source`` (and closes it)."""
    app = MonitorApp(source, title=title, **kw)
    with _exit_on_hangup(app):
        result = app.run(mouse=app.terminal_mode.mouse)
    if result is None and app.return_code:
        return int(app.return_code)  # the app ended with an error: say so
    return int(result or 0)


@contextlib.contextmanager
def _exit_on_hangup(app: App) -> Any:
    """A dropped SSH session (SIGHUP) or a SIGTERM ends the TUI cleanly; without
    this, a TUI whose terminal is gone keeps running (and, in ``demo``, the
    daemon's SIGHUP handler would take the hangup for a reload)."""
    import asyncio
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        try:
            # Runs on the main thread, inside the app's event loop: hand the
            # exit to the loop instead of touching the app mid-step.
            asyncio.get_running_loop().call_soon_threadsafe(app.exit)
        except RuntimeError:
            raise SystemExit(128 + signum) from None

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
