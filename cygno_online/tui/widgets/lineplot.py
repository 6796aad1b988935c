"""A plot drawn once per change of what it shows, repainting only changed lines.

A Textual widget's ``render`` runs whenever anything asks for a repaint of
its region, and Rich turns the returned text into segments each time: a
histogram redrawn for every display message (2 Hz) re-bins, re-styles and
re-sends every line although most of them did not change. :class:`LinePlot`
draws its :class:`~rich.text.Text` only when :meth:`set_digest` sees new
content (a cheap digest of the data and the options) or the size changed,
keeps the lines as segments, compares them with those on screen and
refreshes only the lines that differ (Line API), like
:class:`~cygno_online.tui.widgets.difftext.DiffText`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from rich.segment import Segment
from rich.text import Text
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget


def array_digest(a: Any) -> Hashable:
    """A cheap identity of an array's content (a hash of its bytes)."""
    if a is None:
        return None
    arr = np.asarray(a)
    return (arr.shape, arr.dtype.str, hash(arr.tobytes()))


class LinePlot(Widget):
    """Subclasses implement :meth:`draw` (``Text`` for the widget's size) and
    call :meth:`set_digest` from their ``set_data`` with everything ``draw``
    depends on besides the size."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._digest: Hashable = object()
        self._lines: list[list[Segment]] = []
        self._drawn_size: tuple[int, int] = (0, 0)
        self._text: Text | None = None
        #: times the plot was drawn / lines sent for repaint (tests, bench)
        self.draws = 0
        self.lines_refreshed = 0

    # -- for subclasses ------------------------------------------------------------
    def draw(self) -> Text:
        raise NotImplementedError

    def set_digest(self, digest: Hashable) -> bool:
        """Redraw when ``digest`` differs from the last one; True when it did."""
        if digest == self._digest:
            return False
        self._digest = digest
        self.redraw()
        return True

    def redraw(self) -> None:
        """Draw now (an option changed that the digest does not cover)."""
        w, h = self.content_region.width, self.content_region.height
        if w <= 0 or h <= 0:
            self._text = None  # not laid out yet: drawn on the first resize
            self._drawn_size = (0, 0)
            return
        self._text = self._safe_draw()
        new = self._to_lines(self._text, w, h)
        old, self._lines = self._lines, new
        self.draws += 1
        if (w, h) != self._drawn_size or len(old) != len(new):
            self._drawn_size = (w, h)
            self.lines_refreshed += len(new)
            self.refresh()
            return
        # repaint regions are relative to the widget's outer region
        top = self.styles.gutter.top
        outer = self.outer_size.width
        for y, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                self.lines_refreshed += 1
                self.refresh(Region(0, top + y, outer, 1))

    # -- internals ---------------------------------------------------------------------
    def _safe_draw(self) -> Text:
        try:
            return self.draw()
        except Exception as exc:  # bad data must not take the TUI down
            return Text(f"{getattr(self, 'title', '')}: cannot draw ({exc})", style="red")

    def _to_lines(self, text: Text, width: int, height: int) -> list[list[Segment]]:
        console = self.app.console
        options = console.options.update(
            width=width, min_width=width, max_width=width, height=height, highlight=False
        )
        lines = console.render_lines(text, options, pad=True)[:height]
        blank = [Segment(" " * width)]
        lines += [blank] * (height - len(lines))
        return [list(Segment.simplify(line)) for line in lines]

    def on_resize(self) -> None:
        if (self.content_region.width, self.content_region.height) != self._drawn_size:
            self.redraw()

    def render_line(self, y: int) -> Strip:
        # y counts content lines: the styles cache adds padding and border
        width = self.size.width
        strip = Strip(self._lines[y]) if 0 <= y < len(self._lines) else Strip([])
        return strip.extend_cell_length(width).crop(0, width).apply_style(self.rich_style)

    def render(self) -> Text:
        """The plot as text (what is on screen; drawn now if never drawn)."""
        if self._text is None:
            return self._safe_draw()
        return self._text
