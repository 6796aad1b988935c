"""Small waveform line plots in braille dots (2x4 dots per cell)."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from cygno_online.tui.widgets.lineplot import LinePlot, array_digest

# braille dot bits by (dot row 0..3, dot column 0..1)
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


def braille_lines(samples: np.ndarray, width: int, height: int) -> list[str]:
    """The trace of ``samples`` (min..max span per dot column) on
    ``width`` x ``height`` cells (numpy throughout: one pass per draw)."""
    s = np.nan_to_num(np.asarray(samples, dtype=np.float64).ravel())
    if s.size == 0 or width <= 0 or height <= 0:
        return [" " * max(width, 0)] * max(height, 0)
    ncol, nrow = 2 * width, 4 * height
    edges = np.linspace(0, s.size, ncol + 1).astype(np.int64)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, s.size)
    starts = np.minimum(edges[:-1], s.size - 1)
    lo_v, hi_v = float(s.min()), float(s.max())
    span = hi_v - lo_v if hi_v > lo_v else 1.0
    # min, max and last sample of each dot column's chunk
    cmax = np.maximum.reduceat(s, starts)
    cmin = np.minimum.reduceat(s, starts)
    ends = np.maximum(np.minimum(edges[1:], s.size) - 1, starts)
    clast = s[ends]

    def row_of(v: np.ndarray) -> np.ndarray:
        # dot rows count from the top: high values at the top
        return ((hi_v - v) / span * (nrow - 1) + 0.5).astype(np.int64)

    top, bot, last = row_of(cmax), row_of(cmin), row_of(clast)
    # join each column to the previous one's last sample: steep edges stay visible
    top[1:] = np.minimum(top[1:], last[:-1])
    bot[1:] = np.maximum(bot[1:], last[:-1])
    rows = np.arange(nrow)[:, None]
    on = (rows >= top[None, :]) & (rows <= bot[None, :])  # (nrow, ncol)
    bits = np.array(_BITS, dtype=np.int64)  # (4, 2)
    weights = bits[np.arange(nrow) % 4][:, np.arange(ncol) % 2]
    cells = (on * weights).reshape(height, 4, width, 2).sum(axis=(1, 3))
    return ["".join(chr(0x2800 + int(v)) for v in row) for row in cells]


class WaveformPlot(LinePlot):
    """Drawn only when its samples or label change."""

    DEFAULT_CSS = "WaveformPlot { height: 5; }"

    def __init__(self, label: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        #: the array key this plot shows (set by the panel)
        self.channel = label
        self.samples: np.ndarray | None = None
        self.stale = False

    def set_data(
        self, samples: np.ndarray | None, *, label: str | None = None, stale: bool = False
    ) -> None:
        self.samples, self.stale = samples, stale
        if label is not None:
            self.label = label
        self.set_digest((array_digest(samples), self.label, stale))

    def draw(self) -> Text:
        head = Text(self.label, style="bold")
        if self.samples is None or len(self.samples) == 0:
            return Text.assemble(head, "\n", Text("no data", style="dim"))
        s = np.asarray(self.samples, dtype=np.float64)
        head.append(f"  min {np.nanmin(s):.4g} max {np.nanmax(s):.4g}", style="dim")
        body = braille_lines(s, self.size.width, max(1, self.size.height - 1))
        out = Text("\n").join([head, *(Text(b, style="magenta") for b in body)])
        if self.stale:
            out.stylize("grey50")
        return out
