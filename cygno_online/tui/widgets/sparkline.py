"""Text sparklines (``▁▂▃▄▅▆▇█``) for tables and labels."""

from __future__ import annotations

import math
from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"
#: a point far above / below the others (drawn outside the scale)
ABOVE, BELOW = "▲", "▼"
#: a point is an outlier beyond this many robust sigmas (1.4826 MAD) of the
#: median; with fewer points than OUTLIER_MIN_POINTS nothing is
OUTLIER_SIGMAS = 8.0
#: ... and beyond the other points' range by this many times that range
OUTLIER_GAP = 3.0
OUTLIER_MIN_POINTS = 8


def _bulk_range(vals: list[float]) -> tuple[float, float]:
    """The range of the values that are not isolated outliers. A point is an
    outlier when it lies beyond OUTLIER_SIGMAS robust sigmas (1.4826 MAD) of
    the median and beyond the other points' range by more than
    OUTLIER_GAP times that range, and such points are at most a tenth of
    them (at least one): a spike, not a second population (the analysed
    rate's bursts, the image RMS of frames with an alpha)."""
    lo, hi = min(vals), max(vals)
    n = len(vals)
    if n < OUTLIER_MIN_POINTS:
        return lo, hi
    s = sorted(vals)
    med = 0.5 * (s[(n - 1) // 2] + s[n // 2])
    dev = sorted(abs(v - med) for v in vals)
    mad = 0.5 * (dev[(n - 1) // 2] + dev[n // 2])
    cut = OUTLIER_SIGMAS * 1.4826 * mad
    inside = [v for v in vals if abs(v - med) <= cut]
    b_lo, b_hi = min(inside), max(inside)
    gap = OUTLIER_GAP * (b_hi - b_lo)
    far = [v for v in vals if v > b_hi + gap or v < b_lo - gap]
    if not far or len(far) > max(1, n // 10):
        return lo, hi
    # the points between the bulk and the gap stay on the scale
    kept = [v for v in vals if b_lo - gap <= v <= b_hi + gap]
    return min(kept), max(kept)


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
