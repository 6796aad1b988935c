"""Tab 2: the latest camera frame, its pedestal boxes and per-image numbers."""

from __future__ import annotations

import math
import time

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from cygno_online.tui.keymetrics import (
    camera_fields,
    camera_time_ns,
    cameras,
    fmt_age,
    fmt_value,
    image_array,
    image_boxes,
    pedestal_boxes,
)
from cygno_online.tui.screens.base import Panel, ViewContext
from cygno_online.tui.widgets.colorbar import ColorBar
from cygno_online.tui.widgets.heatmap import Heatmap

#: images repaint at most this often (terminal output over SSH)
IMAGE_MIN_INTERVAL_S = 0.5
#: per-image fields listed beside the frame (when present)
SIDE_FIELDS = (
    ("raw_mean", "mean"),
    ("raw_rms", "rms"),
    ("ped_rms", "ped. rms"),
    ("n_clusters", "clusters"),
    ("n_over_threshold", "px > thr."),
    ("hot_pixels", "hot px"),
    ("spark", "spark"),
    ("sensor_temperature", "sensor T"),
    ("pedestal_age_days", "ped. age d"),
)


def boxes_table(boxes: list[tuple[float, float]] | None, stale: bool) -> Table | Text:
    if boxes is None:
        return Text("pedestal boxes: n/a", style="dim")
    t = Table.grid(padding=(0, 1))
    for _ in range(3):
        t.add_column(justify="right", no_wrap=True)
    style = "grey50" if stale else ""
    for r in range(3):
        cells = []
        for c in range(3):
            m, s = boxes[3 * r + c]
            txt = "-" if math.isnan(m) else f"{m:.1f}"
            if not math.isnan(m) and not math.isnan(s):
                # keep each cell <= 9 characters so three fit at 80 columns
                txt += f"±{s:.1f}" if s < 10 else f"±{s:.0f}"
            cells.append(Text(txt, style=style))
        t.add_row(*cells)
    return t


class CameraPanel(Panel):
    DEFAULT_CSS = """
    CameraPanel #cam-title { height: 1; padding: 0 1; }
    CameraPanel #cam-body { height: 1fr; }
    CameraPanel #cam-side { width: 33; padding: 0 1; }
    CameraPanel #cam-bar { margin: 0 1; }
    CameraPanel Heatmap.-stale { tint: black 45%; }
    """

    def __init__(self) -> None:
        super().__init__(id="panel-camera")
        self.paused = False
        self.camera: str | None = None
        self.shown_time_ns = 0
        self._last_image = -1e9
        self._side_key: tuple | None = None
        self._title_key: tuple | None = None
        self._pending = False

    def compose(self) -> ComposeResult:
        yield Static(id="cam-title")
        with Horizontal(id="cam-body"):
            with Vertical():
                yield Heatmap(id="heatmap")
                yield ColorBar(id="cam-bar")
            yield Static(id="cam-side")

    def on_mount(self) -> None:
        self.heatmap = self.query_one(Heatmap)

    def focus_target(self) -> object | None:
        return self.heatmap

    def on_heatmap_view_changed(self, _msg: Heatmap.ViewChanged) -> None:
        hm = self.heatmap
        self.query_one(ColorBar).set_range(hm.lo, hm.hi, hm.auto)
        self._title_key = None

    def update_view(self, ctx: ViewContext) -> None:
        st = ctx.state
        cams = cameras(st)
        cam = ctx.camera if ctx.camera in cams else (cams[0] if cams else None)
        self.camera = cam
        d = st.displays.get(f"camera/{cam}/frame") if cam else None
        if d is None:
            # any image display at all (other naming)
            d = next((x for x in st.displays.values() if x.kind == "image"), None)
        now_mono = time.monotonic()
        hm = self.heatmap
        frame_stale = d is None or ctx.display_stale(d.time_ns)
        hm.set_class(bool(d is not None and frame_stale), "-stale")
        interval = getattr(self.app, "image_interval_s", IMAGE_MIN_INTERVAL_S)
        due = now_mono - self._last_image >= interval
        if d is not None and not self.paused and d.time_ns != self.shown_time_ns and due:
            img = image_array(d.arrays)
            if img is not None and hm.set_frame(img, image_boxes(d.meta)):
                self.query_one(ColorBar).set_range(hm.lo, hm.hi, hm.auto)
                self.shown_time_ns = d.time_ns
                self._shown = (
                    d.name,
                    d.serial,
                    d.run,
                    d.meta.get("scale", 1),
                    bool(d.meta.get("spark")),
                )
                self._last_image = now_mono
        # title
        if self.shown_time_ns:
            name, serial, run, scale, spark = self._shown
            age = fmt_age(ctx.now - self.shown_time_ns / 1e9)
            title_key = (name, serial, age, self.paused, hm.zoom, hm.view_region(), frame_stale)
        else:
            title_key = ("none", self.paused)
        if title_key != self._title_key:
            self._title_key = title_key
            t = Text()
            if self.shown_time_ns:
                t.append(f"{name}", style="bold")
                t.append(f"  run {run} #{serial}  {age} ago", style="grey50" if frame_stale else "")
                if scale and scale != 1:
                    t.append(f"  1:{scale}", style="dim")
                if spark:
                    t.append("  SPARK", style="bold white on red")
                if hm.zoom > 1:
                    r0, r1, c0, c1 = hm.view_region()
                    t.append(f"  zoom x{hm.zoom} rows {r0}-{r1} cols {c0}-{c1}", style="cyan")
            else:
                t.append("no camera frame yet", style="dim")
            if self.paused:
                t.append("  PAUSED (p)", style="bold black on yellow")
            elif frame_stale and self.shown_time_ns:
                t.append("  STALE", style="bold grey50")
            self.query_one("#cam-title", Static).update(t)
        # side panel: boxes and per-image numbers
        side_key = (st.seq, cam, ctx.connected, int(ctx.now) // 5)
        if side_key != self._side_key:
            self._side_key = side_key
            fields = camera_fields(st, cam) if cam else {}
            t_ns = camera_time_ns(st, cam) if cam else 0
            stale = not ctx.connected or not t_ns or ctx.now - t_ns / 1e9 > 60
            side = Table.grid(padding=(0, 1))
            side.add_column(style="bold", no_wrap=True)
            side.add_column(no_wrap=True, justify="right")
            side.add_row("camera", cam or "-")
            if len(cams) > 1:
                side.add_row("", Text(f"{len(cams)} cameras (c)", style="dim"))
            for f, label in SIDE_FIELDS:
                if f in fields:
                    value = fields[f]
                    style = "grey50" if stale else ""
                    if f == "spark" and value and not stale:
                        style = "bold red"
                    side.add_row(label, Text(fmt_value(value, "{:.4g}"), style=style))
            side.add_row("boxes", "mean±rms")
            out = Table.grid()
            out.add_row(side)
            out.add_row(boxes_table(pedestal_boxes(st, cam) if cam else None, stale))
            self.query_one("#cam-side", Static).update(out)

    # -- keys (bound by the app) -------------------------------------------------------
    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self._title_key = None
        if not self.paused:
            self._last_image = -1e9
