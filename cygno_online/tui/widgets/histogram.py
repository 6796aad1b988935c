"""A histogram as vertical text bars (eighth blocks), with an optional
marker for a fitted peak (``mu``, ``sigma``)."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.widget import Widget

from cygno_online.tui.keymetrics import fmt_value

EIGHTHS = " ▁▂▃▄▅▆▇█"


def rebin(counts: np.ndarray, cols: int) -> np.ndarray:
    """``counts`` summed (when shrinking) or repeated (when stretching) to ``cols``."""
    n = len(counts)
    if n == 0 or cols <= 0:
        return np.zeros(max(cols, 0))
    if n >= cols:
        edges = np.linspace(0, n, cols + 1).astype(np.int64)
        return np.add.reduceat(counts.astype(np.float64), edges[:-1])
    idx = np.minimum((np.arange(cols) * n) // cols, n - 1)
    return counts.astype(np.float64)[idx]


def histogram_lines(
    counts: np.ndarray,
    edges: np.ndarray,
    width: int,
    height: int,
    *,
    log: bool = False,
    mark: float | None = None,
) -> list[Text]:
    """``height`` lines of bars plus one line of x labels."""
    rows = max(1, height - 1)
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64))
    col = rebin(counts, width)
    vals = np.log10(col + 1) if log else col
    top = float(vals.max()) if vals.size and vals.max() > 0 else 1.0
    eighths = np.round(vals / top * rows * 8).astype(np.int64)
    mark_col = None
    if mark is not None and len(edges) >= 2 and edges[-1] > edges[0]:
        f = (mark - edges[0]) / (edges[-1] - edges[0])
        if 0 <= f <= 1:
            mark_col = min(width - 1, int(f * width))
    lines = []
    for r in range(rows):
        level = (rows - 1 - r) * 8
        chars = []
        for c in range(width):
            e = int(eighths[c]) - level
            chars.append(EIGHTHS[8] if e >= 8 else EIGHTHS[max(e, 0)])
        line = Text("".join(chars), style="cyan")
        if mark_col is not None:
            ch = chars[mark_col]
            line.stylize("bold yellow" if ch != " " else "", mark_col, mark_col + 1)
            if ch == " ":
                line = line[:mark_col] + Text("┊", style="yellow") + line[mark_col + 1 :]
        lines.append(line)
    lo = fmt_value(float(edges[0]), "{:.4g}") if len(edges) else ""
    hi = fmt_value(float(edges[-1]), "{:.4g}") if len(edges) else ""
    axis = lo + " " * max(1, width - len(lo) - len(hi)) + hi
    lines.append(Text(axis[:width], style="dim"))
    return lines


class HistogramPlot(Widget):
    DEFAULT_CSS = "HistogramPlot { height: 10; }"

    def __init__(
        self, title: str = "", *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.counts: np.ndarray | None = None
        self.edges: np.ndarray | None = None
        self.mark: float | None = None
        self.note = ""
        self.log_scale = False
        self.stale = False

    def set_data(
        self,
        counts: np.ndarray | None,
        edges: np.ndarray | None,
        *,
        mark: float | None = None,
        note: str = "",
        stale: bool = False,
    ) -> None:
        self.counts = None if counts is None else np.asarray(counts)
        self.edges = None if edges is None else np.asarray(edges)
        self.mark, self.note, self.stale = mark, note, stale
        self.refresh()

    def render(self) -> Text:
        try:
            return self._draw()
        except Exception as exc:  # bad data must not take the TUI down
            return Text(f"{self.title}: cannot draw ({exc})", style="red")

    def _draw(self) -> Text:
        w, h = self.size.width, self.size.height
        head = Text(self.title, style="bold")
        if self.counts is not None and self.counts.size:
            total = float(np.nansum(self.counts))
            head.append(f"  n={total:.0f}" + ("  log" if self.log_scale else ""), style="dim")
        if self.note:
            head.append("  " + self.note, style="yellow")
        if self.stale:
            head.append("  (stale)", style="grey50")
        if self.counts is None or self.edges is None or self.counts.size == 0 or h < 3:
            return Text.assemble(head, "\n", Text("no data yet", style="dim"))
        body = histogram_lines(
            self.counts, self.edges, w, h - 1, log=self.log_scale, mark=self.mark
        )
        out = Text("\n").join([head, *body])
        if self.stale:
            out.stylize("grey50")
        return out
