"""A camera frame as a half-block heatmap at terminal resolution.

Each terminal cell shows two image pixels: ``"▀"`` with the foreground colour
of the upper pixel and the background colour of the lower one. Drawn with the
Line API: the frame is resampled once per new frame / resize / zoom into a
small array of colour levels, and each line is a :class:`Strip` of segments,
one per run of equal colours, with cached :class:`Style` objects (the
engineering notes measured ~3x less CPU than one Rich Text per cell).

A palette of :data:`LEVELS` RGB colours (viridis: monotonic in lightness) for
truecolour terminals, a luminance-ordered pick of xterm-256 colours for 256,
and of the 16 ANSI colours for 16-colour terminals (``TERM=xterm``, the Linux
console). Without colour (``NO_COLOR``, ``--palette mono``) or in ``--ascii``
mode each cell is one character of a shade ramp instead (``" ░▒▓█"``, or
``" .:-=+*#%@"`` in ASCII), coloured when the terminal has colours.
"""

from __future__ import annotations

import itertools

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

LEVELS = 48
#: viridis anchor colours (position, r, g, b)
_ANCHORS = (
    (0.0, 68, 1, 84),
    (0.25, 59, 82, 139),
    (0.5, 33, 145, 140),
    (0.75, 94, 201, 98),
    (1.0, 253, 231, 37),
)
BOX_RGB = (255, 40, 40)
#: level index used for cluster box outlines; NONE for cells outside the image
BOX = LEVELS
NONE = LEVELS + 1
ZOOMS = (1, 2, 4, 8, 16)
#: most terminal cells a frame is drawn on (about 96x42)
MAX_CELLS = 4000
HALF = "▀"
#: every segment gets a style (Textual's monochrome filter fails on None)
PLAIN = Style()


def _palette_rgb(n: int) -> list[tuple[int, int, int]]:
    xs = [a[0] for a in _ANCHORS]
    out = []
    for i in range(n):
        t = i / max(n - 1, 1)
        rgb = tuple(round(np.interp(t, xs, [a[k] for a in _ANCHORS])) for k in (1, 2, 3))
        out.append(rgb)  # type: ignore[arg-type]
    return out


PALETTE_RGB = _palette_rgb(LEVELS)
PALETTE = [Color.from_rgb(*rgb) for rgb in PALETTE_RGB]

#: xterm-256 colours along the viridis path with strictly increasing
#: luminance: Rich's automatic downgrade of PALETTE merges its dark half
#: into two colours, this keeps 15 distinguishable steps.
XTERM_VIRIDIS = (53, 54, 24, 25, 30, 31, 36, 37, 72, 77, 113, 149, 185, 220, 226)
PALETTE_256 = [
    Color.from_ansi(XTERM_VIRIDIS[i * (len(XTERM_VIRIDIS) - 1) // (LEVELS - 1)])
    for i in range(LEVELS)
]


#: the 16 ANSI colours from dark to light (black, blue, magenta, cyan, green,
#: bright green, yellow, bright yellow, bright white): distinguishable steps
#: in every common 16-colour scheme, dark-to-light like viridis
ANSI16_RAMP = (0, 4, 5, 6, 2, 10, 3, 11, 15)
PALETTE_16 = [
    Color.from_ansi(ANSI16_RAMP[i * (len(ANSI16_RAMP) - 1) // (LEVELS - 1)]) for i in range(LEVELS)
]
#: one character per cell when colours cannot carry the picture
SHADES = " ░▒▓█"
ASCII_SHADES = " .:-=+*#%@"
BOX_CHAR = "+"


def app_color_system(widget: Widget) -> str | None:
    """The app's palette ("truecolor", "256", "16", "mono"), else what the
    terminal supports."""
    try:
        app = widget.app
    except Exception:
        return None
    mode = getattr(app, "mode_info", None)
    if mode is not None:
        return str(mode.palette)
    choice = getattr(app, "palette", "auto")
    if choice and choice != "auto":
        return str(choice)
    system = app.console.color_system
    return "16" if system in ("standard", "windows") else system


def app_ascii(widget: Widget) -> bool:
    try:
        mode = getattr(widget.app, "mode_info", None)
    except Exception:
        return False
    return bool(mode is not None and mode.ascii)


def palette_for(color_system: str | None) -> list[Color]:
    """The heatmap palette for the terminal's colour system."""
    if color_system in (None, "truecolor"):
        return PALETTE
    if color_system == "16":
        return PALETTE_16
    return PALETTE_256


def shade_ramp(ascii: bool) -> str:
    return ASCII_SHADES if ascii else SHADES


def _colors(color_system: str | None) -> list[Color | None]:
    if color_system == "mono":
        return [None] * (LEVELS + 2)
    if color_system in (None, "truecolor"):
        box = Color.from_rgb(*BOX_RGB)
    else:
        box = Color.from_ansi(9 if color_system == "16" else 196)
    return [*palette_for(color_system), box, None]


def auto_range(image: np.ndarray) -> tuple[float, float]:
    """Robust display range: 1st to 99.7th percentile of finite pixels."""
    sample = image[:: max(1, image.shape[0] // 256), :: max(1, image.shape[1] // 256)]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, (1.0, 99.7))
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _resample(region: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Block mean when shrinking, nearest pixel when enlarging."""

    def axis(a: np.ndarray, n: int, ax: int) -> np.ndarray:
        size = a.shape[ax]
        if size >= n:
            edges = np.linspace(0, size, n + 1).astype(np.int64)
            sums = np.add.reduceat(a, edges[:-1], axis=ax)
            counts = np.diff(edges).astype(np.float64)
            shape = [1, 1]
            shape[ax] = n
            return sums / counts.reshape(shape)
        idx = np.minimum((np.arange(n) + 0.5) * size / n, size - 1).astype(np.int64)
        return np.take(a, idx, axis=ax)

    a = np.nan_to_num(region.astype(np.float64, copy=False))
    return axis(axis(a, rows, 0), cols, 1)


class Heatmap(Widget, can_focus=True):
    """Shows one 2-D frame. Arrow keys pan when zoomed (the app binds zoom,
    range and pause keys)."""

    DEFAULT_CSS = """
    Heatmap { height: 1fr; min-height: 4; }
    """

    BINDINGS = [
        Binding("up", "pan(-1, 0)", "pan", show=False),
        Binding("down", "pan(1, 0)", "pan", show=False),
        Binding("left", "pan(0, -1)", "pan", show=False),
        Binding("right", "pan(0, 1)", "pan", show=False),
    ]

    class ViewChanged(Message):
        """Range, zoom or pan changed (the panel updates its labels)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.image: np.ndarray | None = None
        self.boxes: list[list[float]] = []
        self.show_boxes = True
        self.auto = True
        self.lo, self.hi = 0.0, 1.0
        self.zoom_index = 0
        self.center: tuple[float, float] = (0.0, 0.0)
        self.frames_drawn = 0
        self._levels: np.ndarray | None = None
        self._offset = 0
        self._grid_for: tuple | None = None
        self._strips: dict[int, Strip] = {}
        self._styles: dict[tuple[int, int], Style] = {}
        self._colors: list[Color | None] | None = None
        self._char_mode: bool | None = None
        #: terminal cells of the last drawn frame (the panel's refresh budget)
        self.cells = 0

    # -- data --------------------------------------------------------------------
    def set_frame(self, image: np.ndarray, boxes: list | None = None) -> bool:
        """Show ``image``; False (and nothing changes) when it is not a
        non-empty 2-D numeric array."""
        img = np.asarray(image)
        if img.ndim != 2 or img.size == 0 or not np.issubdtype(img.dtype, np.number):
            return False
        if self.image is None or self.image.shape != img.shape:
            self.center = (img.shape[0] / 2, img.shape[1] / 2)
        self.image = img
        self.boxes = [list(b) for b in (boxes or []) if len(b) == 4]
        if self.auto:
            self.lo, self.hi = auto_range(img)
        self._invalidate()
        return True

    # -- view controls -------------------------------------------------------------
    @property
    def zoom(self) -> int:
        return ZOOMS[self.zoom_index]

    def view_region(self) -> tuple[int, int, int, int]:
        """Visible image rows r0:r1 and columns c0:c1."""
        if self.image is None:
            return 0, 0, 0, 0
        nr, nc = self.image.shape
        hr, hc = nr / self.zoom / 2, nc / self.zoom / 2
        cr = min(max(self.center[0], hr), nr - hr)
        cc = min(max(self.center[1], hc), nc - hc)
        self.center = (cr, cc)
        return (
            max(0, round(cr - hr)),
            max(1, min(nr, round(cr + hr))),
            max(0, round(cc - hc)),
            max(1, min(nc, round(cc + hc))),
        )

    def zoom_in(self) -> None:
        self.zoom_index = min(self.zoom_index + 1, len(ZOOMS) - 1)
        self._view_changed()

    def zoom_out(self) -> None:
        self.zoom_index = max(self.zoom_index - 1, 0)
        self._view_changed()

    def reset_view(self) -> None:
        self.zoom_index = 0
        if self.image is not None:
            self.center = (self.image.shape[0] / 2, self.image.shape[1] / 2)
        self._view_changed()

    def action_pan(self, drow: int, dcol: int) -> None:
        self.pan(drow, dcol)

    def pan(self, drow: int, dcol: int) -> None:
        """Move by a quarter of the visible region."""
        if self.image is None:
            return
        r0, r1, c0, c1 = self.view_region()
        self.center = (
            self.center[0] + drow * (r1 - r0) / 4,
            self.center[1] + dcol * (c1 - c0) / 4,
        )
        self._view_changed()

    def set_auto(self) -> None:
        self.auto = True
        if self.image is not None:
            self.lo, self.hi = auto_range(self.image)
        self._view_changed()

    def adjust_range(self, which: str, direction: int) -> None:
        """Move the ``min`` or ``max`` of the colour range by 10% of its span
        (manual range from then on)."""
        self.auto = False
        step = 0.1 * (self.hi - self.lo or 1.0)
        if which == "max":
            self.hi = max(self.hi + direction * step, self.lo + 1e-6 * abs(self.lo or 1) + 1e-9)
        else:
            self.lo = min(self.lo + direction * step, self.hi - 1e-9)
        self._view_changed()

    def toggle_boxes(self) -> None:
        self.show_boxes = not self.show_boxes
        self._view_changed()

    def _view_changed(self) -> None:
        self._invalidate()
        self.post_message(self.ViewChanged())

    def _invalidate(self) -> None:
        self._grid_for = None
        self._strips.clear()
        self.refresh()

    # -- drawing ------------------------------------------------------------------
    def _grid(self, size: Size) -> None:
        key = (size.width, size.height)
        if self._grid_for == key:
            return
        self._grid_for = key
        self._strips.clear()
        self._levels = None
        if self.image is None or size.width < 1 or size.height < 1:
            return
        r0, r1, c0, c1 = self.view_region()
        rh, rw = r1 - r0, c1 - c0
        # Half-blocks give two square-ish pixels per cell: keep the aspect.
        max_rows, max_cols = 2 * size.height, size.width
        scale = min(max_rows / rh, max_cols / rw)
        # at most MAX_CELLS cells: a big terminal does not need more detail
        # than the eye takes in, and every cell is ~25 bytes of output
        scale = min(scale, (2 * MAX_CELLS / (rh * rw)) ** 0.5)
        rows = max(1, min(max_rows, round(rh * scale)))
        cols = max(1, min(max_cols, round(rw * scale)))
        grid = _resample(self.image[r0:r1, c0:c1], rows, cols)
        span = self.hi - self.lo if self.hi > self.lo else 1.0
        levels = np.clip((grid - self.lo) / span * (LEVELS - 1) + 0.5, 0, LEVELS - 1)
        levels = levels.astype(np.int16)
        if self.show_boxes and self.boxes:
            sr, sc = rows / rh, cols / rw
            for br0, bc0, br1, bc1 in self.boxes:
                y0 = int((br0 - r0) * sr)
                y1 = int((br1 - r0) * sr)
                x0 = int((bc0 - c0) * sc)
                x1 = int((bc1 - c0) * sc)
                if y1 < 0 or x1 < 0 or y0 >= rows or x0 >= cols:
                    continue
                ya, yb = max(y0, 0), min(y1, rows - 1)
                xa, xb = max(x0, 0), min(x1, cols - 1)
                if 0 <= y0 < rows:
                    levels[y0, xa : xb + 1] = BOX
                if 0 <= y1 < rows:
                    levels[y1, xa : xb + 1] = BOX
                if 0 <= x0 < cols:
                    levels[ya : yb + 1, x0] = BOX
                if 0 <= x1 < cols:
                    levels[ya : yb + 1, x1] = BOX
        if rows % 2:
            levels = np.vstack([levels, np.full((1, cols), NONE, dtype=np.int16)])
        self._levels = levels
        self.cells = levels.shape[0] // 2 * cols
        self._offset = (size.width - cols) // 2
        self.frames_drawn += 1

    @property
    def colors(self) -> list[Color | None]:
        if self._colors is None:
            self._colors = _colors(app_color_system(self))
        return self._colors

    def _style(self, upper: int, lower: int) -> Style:
        key = (upper, lower)
        style = self._styles.get(key)
        if style is None:
            colors = self.colors
            style = Style(color=colors[upper], bgcolor=colors[lower])
            self._styles[key] = style
        return style

    def render_line(self, y: int) -> Strip:
        try:
            return self._render_line(y)
        except Exception:  # bad data must not take the TUI down
            self._levels = None
            return Strip.blank(self.size.width, PLAIN)

    @property
    def char_mode(self) -> bool:
        """One shade character per cell (no colour, or ASCII only)."""
        if self._char_mode is None:
            self._char_mode = app_color_system(self) == "mono" or app_ascii(self)
        return self._char_mode

    def _render_line(self, y: int) -> Strip:
        size = self.size
        self._grid(size)
        strip = self._strips.get(y)
        if strip is not None:
            return strip
        levels = self._levels
        if levels is None or 2 * y + 1 >= levels.shape[0]:
            if levels is None and y == size.height // 2 and self.image is None:
                text = "waiting for a frame"
                pad = max(0, (size.width - len(text)) // 2)
                strip = Strip([Segment(" " * pad, PLAIN), Segment(text, Style(dim=True))])
                return strip.extend_cell_length(size.width, PLAIN).crop(0, size.width)
            return Strip.blank(size.width, PLAIN)
        upper = levels[2 * y]
        lower = levels[2 * y + 1]
        segments = [Segment(" " * self._offset, PLAIN)] if self._offset else []
        if self.char_mode:
            segments += self._char_segments(upper, lower)
        else:
            segments += self._block_segments(upper, lower)
        strip = Strip(segments).extend_cell_length(size.width, PLAIN).crop(0, size.width)
        self._strips[y] = strip
        return strip

    def _block_segments(self, upper: np.ndarray, lower: np.ndarray) -> list[Segment]:
        codes = upper.astype(np.int32) * 256 + lower
        starts = np.flatnonzero(np.diff(codes)) + 1
        bounds = [0, *starts.tolist(), len(codes)]
        segments = []
        for a, b in itertools.pairwise(bounds):
            u, lo = int(upper[a]), int(lower[a])
            if u == NONE and lo == NONE:
                segments.append(Segment(" " * (b - a), PLAIN))
            elif u == NONE:
                segments.append(Segment("▄" * (b - a), Style(color=self.colors[lo])))
            else:
                segments.append(Segment(HALF * (b - a), self._style(u, lo)))
        return segments

    def _char_segments(self, upper: np.ndarray, lower: np.ndarray) -> list[Segment]:
        """Shade characters: the brighter of the cell's two pixels (a one-row
        track stays visible), boxes as ``+``."""
        ramp = shade_ramp(app_ascii(self))
        u = upper.astype(np.int32)
        lo = lower.astype(np.int32)
        u_img = np.where(u >= BOX, -1, u)
        l_img = np.where(lo >= BOX, -1, lo)
        level = np.maximum(u_img, l_img)
        box = (u == BOX) | (lo == BOX)
        codes = np.where(box, BOX, np.where(level < 0, NONE, level))
        starts = np.flatnonzero(np.diff(codes)) + 1
        bounds = [0, *starts.tolist(), len(codes)]
        segments = []
        n = len(ramp) - 1
        for a, b in itertools.pairwise(bounds):
            c = int(codes[a])
            if c == NONE:
                segments.append(Segment(" " * (b - a), PLAIN))
            elif c == BOX:
                segments.append(Segment(BOX_CHAR * (b - a), self._fg(BOX)))
            else:
                ch = ramp[(c * n + (LEVELS - 1) // 2) // (LEVELS - 1)]
                segments.append(Segment(ch * (b - a), self._fg(c)))
        return segments

    def _fg(self, level: int) -> Style:
        key = (level, -1)
        style = self._styles.get(key)
        if style is None:
            color = self.colors[level]
            style = Style(color=color) if color is not None else PLAIN
            self._styles[key] = style
        return style

    def on_resize(self) -> None:
        self._invalidate()

    # -- colour bar ------------------------------------------------------------------
    def level_of(self, value: float) -> int:
        span = self.hi - self.lo if self.hi > self.lo else 1.0
        return int(np.clip((value - self.lo) / span * (LEVELS - 1) + 0.5, 0, LEVELS - 1))
