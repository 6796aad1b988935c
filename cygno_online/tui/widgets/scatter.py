"""A character-cell scatter plot: points binned per cell, density shown
with ``·∘o●`` so a few points and a dense band are both visible."""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.widget import Widget

from cygno_online.tui.keymetrics import fmt_value

DENSITY = " ·∘o●"


def scatter_lines(x: np.ndarray, y: np.ndarray, width: int, height: int) -> list[Text]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    n = min(x.size, y.size)
    x, y = x[:n], y[:n]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    rows = max(1, height - 1)
    if x.size == 0:
        return [Text("no points yet", style="dim")]
    x0, x1 = float(x.min()), float(x.max())
    y0, y1 = float(y.min()), float(y.max())
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    cx = np.minimum(((x - x0) / (x1 - x0) * width).astype(np.int64), width - 1)
    cy = np.minimum(((y - y0) / (y1 - y0) * rows).astype(np.int64), rows - 1)
    grid = np.zeros((rows, width), dtype=np.int64)
    np.add.at(grid, (rows - 1 - cy, cx), 1)
    top = grid.max()
    lines = []
    for r in range(rows):
        idx = np.zeros(width, dtype=np.int64)
        nz = grid[r] > 0
        # 1 point -> '·', then log-spaced steps up to the densest cell
        idx[nz] = 1 + np.minimum(
            (np.log1p(grid[r][nz] - 1) / np.log1p(max(top - 1, 1)) * 3).astype(np.int64), 3
        )
        lines.append(Text("".join(DENSITY[i] for i in idx), style="green"))
    lo, hi = fmt_value(x0, "{:.4g}"), fmt_value(x1, "{:.4g}")
    axis = lo + " " * max(1, width - len(lo) - len(hi)) + hi
    lines.append(Text(axis[:width], style="dim"))
    return lines


class ScatterPlot(Widget):
    DEFAULT_CSS = "ScatterPlot { height: 10; }"

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None
        self.stale = False

    def set_data(
        self,
        x: np.ndarray | None,
        y: np.ndarray | None,
        *,
        title: str | None = None,
        stale: bool = False,
    ) -> None:
        self.x, self.y, self.stale = x, y, stale
        if title is not None:
            self.title = title
        self.refresh()

    def render(self) -> Text:
        try:
            return self._draw()
        except Exception as exc:  # bad data must not take the TUI down
            return Text(f"{self.title}: cannot draw ({exc})", style="red")

    def _draw(self) -> Text:
        head = Text(self.title, style="bold")
        if self.y is not None and len(self.y):
            ys = np.asarray(self.y, dtype=np.float64)
            head.append(f"  y {np.nanmin(ys):.4g}..{np.nanmax(ys):.4g}  n={len(ys)}", style="dim")
        if self.x is None or self.y is None or self.size.height < 3:
            return Text.assemble(head, "\n", Text("no data yet", style="dim"))
        body = scatter_lines(self.x, self.y, self.size.width, self.size.height - 1)
        out = Text("\n").join([head, *body])
        if self.stale:
            out.stylize("grey50")
        return out
