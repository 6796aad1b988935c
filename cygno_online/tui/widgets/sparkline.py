"""Text sparklines (``▁▂▃▄▅▆▇█``) for tables and labels."""

from __future__ import annotations

import math
from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values scaled between their min and max; blank
    when there is nothing to draw."""
    vals = [v for v in values[-width:] if isinstance(v, (int, float)) and math.isfinite(v)]
    if width <= 0 or not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return BARS[3] * len(vals)
    scale = (len(BARS) - 1) / (hi - lo)
    return "".join(BARS[int((v - lo) * scale + 0.5)] for v in vals)
