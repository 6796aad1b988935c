"""A histogram as vertical text bars (eighth blocks), with an optional
marker for a fitted peak (``mu``, ``sigma``)."""

from __future__ import annotations

import re

import numpy as np
from rich.text import Text

from cygno_online.tui.widgets.lineplot import LinePlot, array_digest

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


#: the displayed range holds this central share of the entries ...
RANGE_QUANTILES = (0.005, 0.995)
#: ... widened by this fraction of its width on each side
RANGE_PAD = 0.15


def display_range(
    counts: np.ndarray,
    *,
    ref: float | None = None,
    edges: np.ndarray | None = None,
    include: tuple[float, ...] = (),
) -> tuple[int, int]:
    """Bin slice ``[lo, hi)`` to show: the bins holding 0.5-99.5 % of the
    entries, padded, widened to include ``ref`` (a fitted or expected peak)
    and every value of ``include`` (a reference band's ends). With no
    entries, the reference values alone (padded) when there are any, else
    the whole range."""
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64)).clip(min=0)
    n = len(counts)
    total = float(counts.sum())
    wanted = [v for v in (ref, *include) if v is not None and np.isfinite(v)]
    ks: list[int] = []
    if wanted and edges is not None and len(edges) == n + 1:
        for v in wanted:
            k = int(np.searchsorted(edges, v, side="right")) - 1
            if 0 <= k < n:
                ks.append(k)
    if n == 0 or (total <= 0 and not ks):
        return 0, n
    if total > 0:
        cum = np.cumsum(counts) / total
        lo = int(np.searchsorted(cum, RANGE_QUANTILES[0], side="right"))
        hi = int(np.searchsorted(cum, RANGE_QUANTILES[1], side="left")) + 1
        lo, hi = min(lo, n - 1), max(min(hi, n), lo + 1)
    else:
        lo, hi = min(ks), max(ks) + 1
    for k in ks:
        lo, hi = min(lo, k), max(hi, k + 1)
    pad = max(1, round((hi - lo) * RANGE_PAD))
    return max(0, lo - pad), min(n, hi + pad)


def _col_of(value: float, edges: np.ndarray, width: int) -> int | None:
    """Column of ``value`` on an axis of ``edges`` (linear in bin index, so a
    log-spaced axis places it right too)."""
    n = len(edges) - 1
    if n < 1 or not (edges[0] <= value <= edges[-1]):
        return None
    k = int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, n - 1))
    lo, hi = float(edges[k]), float(edges[k + 1])
    f = (k + ((value - lo) / (hi - lo) if hi > lo else 0.0)) / n
    return min(width - 1, int(f * width))


def _edge_at(edges: np.ndarray, f: float) -> float:
    """The axis value at fraction ``f`` of the width (interpolated in bin index)."""
    n = len(edges) - 1
    x = f * n
    k = min(int(x), n - 1)
    return float(edges[k] + (x - k) * (edges[k + 1] - edges[k]))


def short_num(v: float) -> str:
    """A tick value in at most ~6 characters (``7000``, ``11.7k``, ``2.5M``)."""
    a = abs(v)
    if a < 1e3:
        return f"{v:.3g}"
    if a < 1e4:
        return f"{v:.0f}"
    for div, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "G")):
        if a < div * 1e3:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.2e}"


def tick_line(
    edges: np.ndarray, width: int, label: str = "", *, below: float = 0, above: float = 0
) -> Text:
    """``min  mid  max`` under the plot, the quantity and unit between them;
    entries below / above the shown range as ``◂N`` / ``N▸`` at the ends."""
    lo = short_num(_edge_at(edges, 0.0))
    mid = short_num(_edge_at(edges, 0.5))
    hi = short_num(_edge_at(edges, 1.0))
    if below:
        lo = f"◂{below:.0f} {lo}"
    if above:
        hi = f"{hi} {above:.0f}▸"

    def build(with_mid: bool) -> str:
        cells = [" "] * width

        def put(pos: int, text: str) -> None:
            pos = max(0, min(pos, width - len(text)))
            for i, ch in enumerate(text[: width - pos]):
                cells[pos + i] = ch

        put(0, lo)
        put(width - len(hi), hi)
        mpos = width // 2 - len(mid) // 2
        if with_mid and mpos > len(lo) + 1 and mpos + len(mid) < width - len(hi) - 1:
            put(mpos, mid)
        return "".join(cells)

    def with_label(line: str) -> str | None:
        # the quantity in the widest free gap
        gaps = [(m.end() - m.start(), m.start()) for m in re.finditer(r" {3,}", line)]
        if not gaps:
            return None
        size, at = max(gaps)
        if size < len(label) + 2:
            return None
        pos = at + (size - len(label)) // 2
        return line[:pos] + label + line[pos + len(label) :]

    line = build(True)
    if label:
        # the label matters more than the mid tick when both do not fit
        line = with_label(line) or with_label(build(False)) or line
    return Text(line[:width], style="dim")


def band_line(
    edges: np.ndarray, width: int, band: tuple[float, float] | None, ref: float | None, label: str
) -> Text:
    """One row under the bars: the reference band as ``├───┼───┤`` (``┼`` at
    the reference value), ``label`` beside it where it fits; ends outside
    the shown range are drawn as ``◂``/``▸`` at the border."""
    cells = [" "] * width
    x0, x1 = float(edges[0]), float(edges[-1])

    def col(v: float) -> int:
        c = _col_of(min(max(v, x0), x1), edges, width)
        return 0 if c is None else c

    span: tuple[int, int] | None = None
    if band is not None:
        a, b = sorted(band)
        if b >= x0 and a <= x1:
            ca, cb = col(a), col(b)
            span = (ca, cb)
            for c in range(ca, cb + 1):
                cells[c] = "─"
            cells[ca] = "├" if a >= x0 else "◂"
            cells[cb] = "┤" if b <= x1 else "▸"
    if ref is not None and x0 <= ref <= x1:
        cells[col(ref)] = "┼"
        if span is None:
            span = (col(ref), col(ref))
    if label and span is not None:
        left, right = span[0], width - 1 - span[1]
        # the whole label beside the band, else its first two words ("ref 7000")
        for text in dict.fromkeys((label, " ".join(label.split()[:2]))):
            if right >= len(text) + 1:
                pos = span[1] + 2
            elif left >= len(text) + 1:
                pos = span[0] - 1 - len(text)
            else:
                continue
            cells[pos : pos + len(text)] = list(text)
            break
    return Text("".join(cells[:width]), style="green")


def histogram_lines(
    counts: np.ndarray,
    edges: np.ndarray,
    width: int,
    height: int,
    *,
    log: bool = False,
    mark: float | None = None,
    xlabel: str = "",
    ylabel: str = "",
    below: float = 0,
    above: float = 0,
    band: tuple[float, float] | None = None,
    ref: float | None = None,
    ref_label: str = "",
) -> list[Text]:
    """``height`` lines of bars plus one line of x ticks (min, mid, max) and label;
    ``ylabel`` is written into the top row where the bars leave room. With a
    reference (``band`` and/or ``ref``) one bar row less and the band's row
    above the ticks."""
    with_band = (band is not None or ref is not None) and len(edges) >= 2 and height >= 4
    rows = max(1, height - 1 - (1 if with_band else 0))
    counts = np.nan_to_num(np.asarray(counts, dtype=np.float64))
    col = rebin(counts, width)
    vals = np.log10(col + 1) if log else col
    top = float(vals.max()) if vals.size and vals.max() > 0 else 1.0
    eighths = np.round(vals / top * rows * 8).astype(np.int64)
    mark_col = None
    if mark is not None and len(edges) >= 2 and edges[-1] > edges[0]:
        mark_col = _col_of(float(mark), np.asarray(edges, dtype=np.float64), width)
    lines = []
    for r in range(rows):
        level = (rows - 1 - r) * 8
        chars = []
        for c in range(width):
            e = int(eighths[c]) - level
            chars.append(EIGHTHS[8] if e >= 8 else EIGHTHS[max(e, 0)])
        line = Text("".join(chars), style="cyan")
        if r == 0 and ylabel and len(ylabel) + 1 < width:
            n = len(ylabel) + 1
            if not "".join(chars[:n]).strip():
                line = Text(ylabel, style="dim") + line[len(ylabel) :]
            elif not "".join(chars[-n:]).strip():
                line = line[: width - len(ylabel)] + Text(ylabel, style="dim")
        if mark_col is not None:
            ch = chars[mark_col]
            line.stylize("bold yellow" if ch != " " else "", mark_col, mark_col + 1)
            if ch == " ":
                line = line[:mark_col] + Text("┊", style="yellow") + line[mark_col + 1 :]
        lines.append(line)
    if with_band:
        lines.append(band_line(np.asarray(edges, dtype=np.float64), width, band, ref, ref_label))
    if len(edges) >= 2:
        lines.append(
            tick_line(np.asarray(edges, dtype=np.float64), width, xlabel, below=below, above=above)
        )
    else:
        lines.append(Text(""))
    return lines


def axis_label(meta: dict, default: str = "") -> str:
    """``quantity (unit)`` from a display's meta (``x``/``units``)."""
    q = str(meta.get("x") or default)
    unit = meta.get("units")
    if unit and f"({unit})" not in q:
        return f"{q} ({unit})" if q else str(unit)
    return q


class HistogramPlot(LinePlot):
    """A published histogram, shown on the range its entries (or the marked
    reference) occupy; entries outside that range are counted in the header,
    never hidden silently. Drawn only when its data or options change."""

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
        self.xlabel = ""
        self.log_scale = False
        self.stale = False
        #: the expected value and band (a reference), drawn as a marker and a shaded band
        self.ref: float | None = None
        self.band: tuple[float, float] | None = None
        self.ref_label = ""
        #: a key hint at the end of the header ("i: next spectrum")
        self.hint = ""

    def set_log(self, log: bool) -> None:
        if log != self.log_scale:
            self.log_scale = log
            self.redraw()

    def set_data(
        self,
        counts: np.ndarray | None,
        edges: np.ndarray | None,
        *,
        mark: float | None = None,
        note: str | Text = "",
        stale: bool = False,
        xlabel: str = "",
        ref: float | None = None,
        band: tuple[float, float] | None = None,
        ref_label: str = "",
    ) -> None:
        """``mark``: the fitted peak (highlighted column); ``ref``/``band``:
        where it should be (a row under the bars, always inside the range)."""
        self.counts = None if counts is None else np.asarray(counts)
        self.edges = None if edges is None else np.asarray(edges)
        self.mark, self.note, self.stale, self.xlabel = mark, note, stale, xlabel
        self.ref, self.band, self.ref_label = ref, band, ref_label
        self.set_digest(
            (
                array_digest(self.counts),
                array_digest(self.edges),
                mark,
                stale,
                xlabel,
                self.title,
                self.hint,
                self.log_scale,
                ref,
                band,
                ref_label,
                str(note) if isinstance(note, Text) else note,
                tuple((sp.start, sp.end, str(sp.style)) for sp in note.spans)
                if isinstance(note, Text)
                else (),
            )
        )

    def view(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """The shown counts and edges, and the entries below and above them."""
        assert self.counts is not None and self.edges is not None
        counts = np.nan_to_num(np.asarray(self.counts, dtype=np.float64))
        edges = np.asarray(self.edges, dtype=np.float64)
        if len(edges) != len(counts) + 1:  # not a histogram we can zoom: show as is
            return counts, edges, 0.0, 0.0
        lo, hi = display_range(
            counts, ref=self.mark, edges=edges, include=(self.ref, *(self.band or ()))
        )
        return counts[lo:hi], edges[lo : hi + 1], float(counts[:lo].sum()), float(counts[hi:].sum())

    def draw(self) -> Text:
        w, h = self.size.width, self.size.height
        head = Text(self.title, style="bold")
        if self.counts is None or self.edges is None or self.counts.size == 0 or h < 3:
            if self.stale:
                head.append("  (stale)", style="grey50")
            return Text.assemble(head, "\n", Text("no data yet", style="dim"))
        total = float(np.nansum(self.counts))
        if total <= 0 and self.ref is None and self.band is None:
            # an empty spectrum on the analyzer's full axis says nothing
            head.append("  n=0", style="dim")
            return Text.assemble(head, "\n", Text("no entries yet", style="dim"))
        counts, edges, below, above = self.view()
        peak = float(rebin(counts, w).max()) if counts.size else 0.0
        # most important first: a narrow terminal cuts the end
        if self.note:
            head.append("  ")
            if isinstance(self.note, Text):
                head.append_text(self.note)
            else:
                head.append(self.note, style="yellow")
        if self.stale:
            head.append("  (stale)", style="grey50")
        head.append(f"  n={total:.0f}", style="dim")
        if self.hint:
            head.append(f"  {self.hint}", style="dim")
        head.truncate(max(1, w), overflow="ellipsis")
        ylabel = f"{short_num(peak)} counts" + (" (log)" if self.log_scale else "")
        body = histogram_lines(
            counts,
            edges,
            w,
            h - 1,
            log=self.log_scale,
            mark=self.mark,
            xlabel=self.xlabel,
            ylabel=ylabel,
            below=below,
            above=above,
            band=self.band,
            ref=self.ref,
            ref_label=self.ref_label,
        )
        out = Text("\n").join([head, *body])
        if self.stale:
            out.stylize("grey50")
        return out
