"""Small waveform line plots in braille dots (2x4 dots per cell)."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.widget import Widget

# braille dot bits by (dot row 0..3, dot column 0..1)
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


def braille_lines(samples: np.ndarray, width: int, height: int) -> list[str]:
    """The trace of ``samples`` (min..max span per dot column) on
    ``width`` x ``height`` cells."""
    s = np.nan_to_num(np.asarray(samples, dtype=np.float64).ravel())
    if s.size == 0 or width <= 0 or height <= 0:
        return [" " * max(width, 0)] * max(height, 0)
    ncol, nrow = 2 * width, 4 * height
    edges = np.linspace(0, s.size, ncol + 1).astype(np.int64)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, s.size)
    lo_v, hi_v = float(s.min()), float(s.max())
    span = hi_v - lo_v if hi_v > lo_v else 1.0
    cells = np.zeros((height, width), dtype=np.int64)
    prev = None
    for c in range(ncol):
        a, b = edges[c], max(edges[c + 1], edges[c] + 1)
        chunk = s[a:b] if a < s.size else s[-1:]
        # dot rows count from the top: high values at the top
        top = int((hi_v - chunk.max()) / span * (nrow - 1) + 0.5)
        bot = int((hi_v - chunk.min()) / span * (nrow - 1) + 0.5)
        if prev is not None:
            # join to the previous column so steep edges stay visible
            top, bot = min(top, prev), max(bot, prev)
        prev = int((hi_v - chunk[-1]) / span * (nrow - 1) + 0.5)
        for r in range(top, bot + 1):
            cells[r // 4, c // 2] |= _BITS[r % 4][c % 2]
    return ["".join(chr(0x2800 + int(v)) for v in row) for row in cells]


class WaveformPlot(Widget):
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
        self.refresh()

    def render(self) -> Text:
        try:
            return self._draw()
        except Exception as exc:  # bad data must not take the TUI down
            return Text(f"{self.label}: cannot draw ({exc})", style="red")

    def _draw(self) -> Text:
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
