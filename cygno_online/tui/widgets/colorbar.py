"""The colour scale of the heatmap: ``lo ▕gradient▏ hi (auto|manual)``."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from cygno_online.tui.keymetrics import fmt_value
from cygno_online.tui.widgets.heatmap import (
    LEVELS,
    PALETTE,
    app_ascii,
    app_color_system,
    palette_for,
    shade_ramp,
)


def colorbar_text(
    lo: float,
    hi: float,
    width: int,
    auto: bool,
    palette: list = PALETTE,
    ramp: str | None = None,
    unit: str = "",
) -> Text:
    """``ramp``: the heatmap's shade characters when it draws characters
    instead of colours (the bar then shows the same characters)."""
    left = fmt_value(lo, "{:.4g}")
    right = fmt_value(hi, "{:.4g}") + (f" {unit}" if unit else "")
    mode = "auto" if auto else "manual"
    n = max(4, width - len(left) - len(right) - len(mode) - 5)
    text = Text(left + " ", style="bold")
    for i in range(n):
        level = round(i * (LEVELS - 1) / max(n - 1, 1))
        if ramp is not None:
            ch = ramp[round(i * (len(ramp) - 1) / max(n - 1, 1))]
            text.append(ch)
        else:
            text.append(" ", Style(bgcolor=palette[level]))
    text.append(" " + right, style="bold")
    text.append(f" {mode}", style="dim")
    return text


class ColorBar(Widget):
    DEFAULT_CSS = "ColorBar { height: 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lo, self.hi, self.auto = 0.0, 1.0, True
        self.unit = ""

    def set_range(self, lo: float, hi: float, auto: bool, unit: str = "") -> None:
        if (lo, hi, auto, unit) != (self.lo, self.hi, self.auto, self.unit):
            self.lo, self.hi, self.auto, self.unit = lo, hi, auto, unit
            self.refresh()

    def render(self) -> Text:
        system = app_color_system(self)
        ascii = app_ascii(self)
        ramp = shade_ramp(ascii) if system == "mono" or ascii else None
        palette = palette_for(system)
        return colorbar_text(self.lo, self.hi, self.size.width, self.auto, palette, ramp, self.unit)
