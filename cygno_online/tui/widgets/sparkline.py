"""Text sparklines (``▁▂▃▄▅▆▇█``) for tables and labels."""

from __future__ import annotations

import math
from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int, include: Sequence[float] = ()) -> str:
    """The last ``width`` values scaled between their min and max (widened to
    ``include``, e.g. a reference band, so the trend is drawn against it);
    blank when there is nothing to draw."""
    vals = [v for v in values[-width:] if isinstance(v, (int, float)) and math.isfinite(v)]
    if width <= 0 or not vals:
        return ""
    lo, hi = min(vals, default=0.0), max(vals, default=0.0)
    for v in include:
        lo, hi = min(lo, v), max(hi, v)
    if hi == lo:
        return BARS[3] * len(vals)
    scale = (len(BARS) - 1) / (hi - lo)
    return "".join(BARS[int((v - lo) * scale + 0.5)] for v in vals)
