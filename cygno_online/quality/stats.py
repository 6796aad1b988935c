"""Two-sample tests on binned histograms (own code: no scipy at run time).

* :func:`ks_test` - Kolmogorov-Smirnov on the cumulative distributions of two
  histograms with the same binning; p from the asymptotic Kolmogorov
  distribution with Stephens' small-sample correction. On binned data the
  statistic is a lower bound of the unbinned one (the test is conservative),
  as in ROOT's ``TH1::KolmogorovTest``.
* :func:`chi2_test` - chi-square of two unweighted histograms with different
  totals (ROOT's "UU" comparison): ``sum (N2 n1i - N1 n2i)^2 / (N1 N2 (n1i +
  n2i))`` over bins with entries, ``ndf = bins - 1``; p from the regularised
  upper incomplete gamma function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def kolmogorov_q(lam: float) -> float:
    """P(K > lam) of the Kolmogorov distribution."""
    if lam < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def _pair(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Two non-empty histograms with the same binning, and their totals."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"histograms have {x.size} and {y.size} bins")
    n1, n2 = float(x.sum()), float(y.sum())
    if n1 <= 0 or n2 <= 0:
        raise ValueError("an empty histogram")
    return x, y, n1, n2


def ks_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(D, p) of two histograms with the same binning."""
    x, y, n1, n2 = _pair(a, b)
    d = float(np.max(np.abs(np.cumsum(x) / n1 - np.cumsum(y) / n2)))
    ne = math.sqrt(n1 * n2 / (n1 + n2))
    return d, kolmogorov_q((ne + 0.12 + 0.11 / ne) * d)


def gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) (series / continued fraction)."""
    if x <= 0:
        return 1.0
    lg = math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(1000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - lg))
    # Lentz's continued fraction
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - lg) * h)


def chi2_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, int, float]:
    """(chi2, ndf, p) of two unweighted histograms with the same binning."""
    x, y, n1, n2 = _pair(a, b)
    used = (x + y) > 0
    ndf = int(used.sum()) - 1
    if ndf < 1:
        return 0.0, 0, 1.0
    xs, ys = x[used], y[used]
    chi2 = float(np.sum((n2 * xs - n1 * ys) ** 2 / (xs + ys)) / (n1 * n2))
    return chi2, ndf, gammaincc(ndf / 2.0, chi2 / 2.0)
