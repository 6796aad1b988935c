"""The colour scale of the heatmap: ``lo ▕gradient▏ hi (auto|manual)``."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from cygno_online.tui.keymetrics import fmt_value
from cygno_online.tui.widgets.heatmap import LEVELS, PALETTE, app_color_system, palette_for


def colorbar_text(lo: float, hi: float, width: int, auto: bool, palette: list = PALETTE) -> Text:
    left = fmt_value(lo, "{:.4g}")
    right = fmt_value(hi, "{:.4g}")
    mode = "auto" if auto else "manual"
    n = max(4, width - len(left) - len(right) - len(mode) - 5)
    text = Text(left + " ", style="bold")
    for i in range(n):
        level = round(i * (LEVELS - 1) / max(n - 1, 1))
        text.append(" ", Style(bgcolor=palette[level]))
    text.append(" " + right, style="bold")
    text.append(f" {mode}", style="dim")
    return text


class ColorBar(Widget):
    DEFAULT_CSS = "ColorBar { height: 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lo, self.hi, self.auto = 0.0, 1.0, True

    def set_range(self, lo: float, hi: float, auto: bool) -> None:
        if (lo, hi, auto) != (self.lo, self.hi, self.auto):
            self.lo, self.hi, self.auto = lo, hi, auto
            self.refresh()

    def render(self) -> Text:
        palette = palette_for(app_color_system(self))
        return colorbar_text(self.lo, self.hi, self.size.width, self.auto, palette)
