"""A character-cell scatter plot: points binned per cell, density shown
with ``·∘o●`` so a few points and a dense band are both visible.  The axes
follow the data (0.5-99.5 % of the points on each axis, padded); points
outside are counted in the header, never dropped silently."""

from __future__ import annotations

import numpy as np
from rich.text import Text

from cygno_online.tui.widgets.histogram import RANGE_PAD, RANGE_QUANTILES, short_num, tick_line
from cygno_online.tui.widgets.lineplot import LinePlot, array_digest

DENSITY = " ·∘o●"
#: columns of the y-axis gutter (tick values and the axis line)
GUTTER = 7


def axis_range(v: np.ndarray) -> tuple[float, float]:
    """The range holding 0.5-99.5 % of ``v``, padded (never empty)."""
    qlo, qhi = (float(q) for q in np.quantile(v, RANGE_QUANTILES))
    pad = (qhi - qlo) * RANGE_PAD
    # padded, but no wider than the data themselves
    lo, hi = max(qlo - pad, float(v.min())), min(qhi + pad, float(v.max()))
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return lo, hi


def scatter_lines(
    x: np.ndarray,
    y: np.ndarray,
    width: int,
    height: int,
    *,
    xlabel: str = "",
) -> tuple[list[Text], int]:
    """The plot lines (y ticks in a left gutter, x ticks and label below) and
    the number of points outside the shown range."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    n = min(x.size, y.size)
    x, y = x[:n], y[:n]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    rows = max(1, height - 1)
    if x.size == 0:
        return [Text("no points yet", style="dim")], 0
    gutter = GUTTER if width > GUTTER + 10 else 0
    pw = width - gutter
    x0, x1 = axis_range(x)
    y0, y1 = axis_range(y)
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    outside = int((~inside).sum())
    xi, yi = x[inside], y[inside]
    cx = np.minimum(((xi - x0) / (x1 - x0) * pw).astype(np.int64), pw - 1)
    cy = np.minimum(((yi - y0) / (y1 - y0) * rows).astype(np.int64), rows - 1)
    grid = np.zeros((rows, pw), dtype=np.int64)
    np.add.at(grid, (rows - 1 - cy, cx), 1)
    top = grid.max() if grid.size else 0
    ticks = {0: y1, rows - 1: y0}
    if rows >= 5:
        ticks[(rows - 1) // 2] = y1 - (y1 - y0) * ((rows - 1) // 2 + 0.5) / rows
    lines = []
    for r in range(rows):
        idx = np.zeros(pw, dtype=np.int64)
        nz = grid[r] > 0
        # 1 point -> '·', then log-spaced steps up to the densest cell
        idx[nz] = 1 + np.minimum(
            (np.log1p(grid[r][nz] - 1) / np.log1p(max(top - 1, 1)) * 3).astype(np.int64), 3
        )
        line = Text()
        if gutter:
            tick = short_num(ticks[r]) if r in ticks else ""
            line.append(f"{tick:>{gutter - 1}}"[: gutter - 1] + ("┤" if r in ticks else "│"), "dim")
        line.append("".join(DENSITY[i] for i in idx), style="green")
        lines.append(line)
    axis = Text(" " * gutter, style="dim") if gutter else Text()
    axis.append_text(tick_line(np.array([x0, x1]), pw, xlabel))
    lines.append(axis)
    return lines, outside


class ScatterPlot(LinePlot):
    """Drawn only when its points or options change."""

    DEFAULT_CSS = "ScatterPlot { height: 10; }"

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.title = title
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None
        self.xlabel = ""
        self.ylabel = ""
        self.stale = False

    def set_data(
        self,
        x: np.ndarray | None,
        y: np.ndarray | None,
        *,
        title: str | None = None,
        stale: bool = False,
        xlabel: str = "",
        ylabel: str = "",
    ) -> None:
        self.x, self.y, self.stale = x, y, stale
        self.xlabel, self.ylabel = xlabel, ylabel
        if title is not None:
            self.title = title
        self.set_digest((array_digest(x), array_digest(y), stale, xlabel, ylabel, self.title))

    def draw(self) -> Text:
        head = Text(self.title, style="bold")
        if self.x is None or self.y is None or self.size.height < 3:
            return Text.assemble(head, "\n", Text("no data yet", style="dim"))
        body, outside = scatter_lines(
            self.x, self.y, self.size.width, self.size.height - 1, xlabel=self.xlabel
        )
        if outside:
            head.append(f"  {outside} outside", style="magenta")
        head.append(f"  n={len(self.y)}", style="dim")
        if self.ylabel and self.ylabel not in self.title:  # "y vs x" titles name it
            head.append(f"  y: {self.ylabel}", style="dim")
        if self.stale:
            head.append("  (stale)", style="grey50")
        head.truncate(max(1, self.size.width), overflow="ellipsis")
        out = Text("\n").join([head, *body])
        if self.stale:
            out.stylize("grey50")
        return out
