"""A text block that repaints only the lines that changed.

``Static.update`` repaints its whole region: an Overview whose run time
ticks every second would send every line of it to the terminal every second
(8 kB/s at 80x24 with nothing else changing). :class:`DiffText` renders the
Rich renderable to lines itself, compares them with what is on screen and
refreshes only the changed lines (Line API), so a tick costs one line.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.segment import Segment
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget


class DiffText(Widget):
    DEFAULT_CSS = "DiffText { height: auto; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._renderable: RenderableType = ""
        self._lines: list[list[Segment]] = []
        self._width = 0
        #: lines refreshed since the start (the tests' and the bench's view)
        self.lines_refreshed = 0

    def update(self, renderable: RenderableType) -> None:
        self._renderable = renderable
        width = self.content_region.width or self.size.width
        if width <= 0:
            self._width = 0  # laid out later: get_content_height renders
            self.refresh(layout=True)
            return
        new = self._compute(width)
        old = self._lines
        self._lines = new
        if len(new) != len(old) or width != self._width:
            self._width = width
            self.lines_refreshed += len(new)
            self.refresh(layout=len(new) != len(old))
            return
        for y, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                self.lines_refreshed += 1
                self.refresh(Region(0, y, self.size.width, 1))

    def _compute(self, width: int) -> list[list[Segment]]:
        console = self.app.console
        options = console.options.update(width=width, min_width=width, max_width=width)
        options = options.update(highlight=False)
        lines = console.render_lines(self._renderable, options, pad=True)
        return [list(Segment.simplify(line)) for line in lines]

    def on_resize(self) -> None:
        width = self.content_region.width or self.size.width
        if width > 0 and width != self._width:
            self._lines = self._compute(width)
            self._width = width
            self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        # called during layout: compute, never refresh from here
        if width > 0 and width != self._width:
            self._lines = self._compute(width)
            self._width = width
        return len(self._lines)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if 0 <= y < len(self._lines):
            strip = Strip(self._lines[y])
        else:
            strip = Strip([])
        return strip.extend_cell_length(width).crop(0, width).apply_style(self.rich_style)

    @property
    def text(self) -> str:
        return "\n".join("".join(s.text for s in line).rstrip() for line in self._lines)
