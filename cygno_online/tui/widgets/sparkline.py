"""Text sparklines (``▁▂▃▄▅▆▇█``) for tables and labels."""

from __future__ import annotations

import math
from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"
#: a point far above / below the others (drawn outside the scale)
ABOVE, BELOW = "▲", "▼"
#: a point is an outlier beyond the other points' range by this many times
#: that range; with fewer points than OUTLIER_MIN_POINTS nothing is
OUTLIER_GAP = 3.0
OUTLIER_MIN_POINTS = 8


def _bulk_range(vals: list[float]) -> tuple[float, float]:
    """The range of the values without their isolated outliers: the most
    points m (at most a tenth of them, at least one) farthest from the
    median such that each lies beyond the range of the others by more than
    OUTLIER_GAP times that range. A spike (a spark frame's image RMS of
    2960 ADU among 8.5-9.3) is one; a second population (the analysed
    rate's bursts, the image RMS of frames with an alpha) or a step is not,
    because the rest still spans it."""
    lo, hi = min(vals), max(vals)
    n = len(vals)
    if n < OUTLIER_MIN_POINTS:
        return lo, hi
    s = sorted(vals)
    med = 0.5 * (s[(n - 1) // 2] + s[n // 2])
    by_dist = sorted(vals, key=lambda v: abs(v - med))
    best = (lo, hi)
    for m in range(1, max(1, n // 10) + 1):
        rest, far = by_dist[: n - m], by_dist[n - m :]
        r_lo, r_hi = min(rest), max(rest)
        gap = OUTLIER_GAP * (r_hi - r_lo)
        if all(v > r_hi + gap or v < r_lo - gap for v in far):
            best = (r_lo, r_hi)
    return best


def sparkline(values: Sequence[float], width: int, include: Sequence[float] = ()) -> str:
    """The last ``width`` values scaled between their min and max (widened to
    ``include``, e.g. a reference band, so the trend is drawn against it);
    blank when there is nothing to draw. An isolated point far from the
    others (a spark frame's image mean: 452 ADU among 99.6) is drawn ``▲``
    or ``▼`` outside the scale, so one point does not flatten the rest of
    the trend to ``▁``."""
    vals = [v for v in values[-width:] if isinstance(v, (int, float)) and math.isfinite(v)]
    if width <= 0 or not vals:
        return ""
    lo, hi = _bulk_range(vals)
    for v in include:
        lo, hi = min(lo, v), max(hi, v)
    out = []
    scale = (len(BARS) - 1) / (hi - lo) if hi > lo else 0.0
    for v in vals:
        if v > hi:
            out.append(ABOVE)
        elif v < lo:
            out.append(BELOW)
        elif scale == 0.0:
            out.append(BARS[3])
        else:
            out.append(BARS[int((v - lo) * scale + 0.5)])
    return "".join(out)


def outlier_marks(line: str) -> list[int]:
    """Positions of the outlier marks in a sparkline (to colour them)."""
    return [i for i, ch in enumerate(line) if ch in (ABOVE, BELOW)]
