"""The per-cluster feature table, and the 55Fe peak fit.

Columns (full-resolution pixel units; ADU = pedestal-subtracted counts):

========== ===== ================================================================
name       unit  meaning
========== ===== ================================================================
integral   ADU   sum of pedestal-subtracted pixels of the integration region
size       px    full-resolution pixels of the cluster's rebinned blocks
nhits      px    of those, pixels above the zero-suppression threshold
row, col   px    barycentre of the hits weighted by their value
row_min..  px    bounding box of the blocks, half-open [row_min, row_max)
length     px    extent of the hits along the major PCA axis (+1 px)
width      px    extent along the minor axis (+1 px)
angle      deg   major axis from the column axis towards rows, (-90, 90]
rms        ADU   standard deviation of the hits' values
slimness         width / length
density    ADU   integral / nhits
sigma_long px    weighted RMS along the major axis
sigma_lat  px    weighted RMS along the minor axis
max        ADU   brightest hit
nblocks          rebinned pixels of the cluster
track_length px  sqrt(12 (sigma_long^2 - sigma_lat^2)): the length of a
                 uniform segment with those moments; unlike ``length`` it
                 does not grow with the threshold halo at the ends
fit_rms    px    directional clustering: RMS distance of the cluster's
                 points to its fitted curve (full-resolution px; 0 = the
                 cluster has no good track fit, as DBSCAN found it)
========== ===== ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cygno_online.analyzers.camera import kernels as kn
from cygno_online.analyzers.camera.classify import CLASS_NAMES

#: (column name, unit) in the order of the kernel's feature table
FEATURES: tuple[tuple[str, str], ...] = (
    ("integral", "ADU"),
    ("size", "px"),
    ("nhits", "px"),
    ("row", "px"),
    ("col", "px"),
    ("row_min", "px"),
    ("row_max", "px"),
    ("col_min", "px"),
    ("col_max", "px"),
    ("length", "px"),
    ("width", "px"),
    ("angle", "deg"),
    ("rms", "ADU"),
    ("slimness", ""),
    ("density", "ADU"),
    ("sigma_long", "px"),
    ("sigma_lat", "px"),
    ("max", "ADU"),
    ("nblocks", ""),
    ("track_length", "px"),
    ("fit_rms", "px"),
)
assert len(FEATURES) == kn.NFEATURES
COLUMN = {name: i for i, (name, _) in enumerate(FEATURES)}


@dataclass(slots=True)
class ClusterTable:
    """The clusters of one camera frame (what goes into ``flow["clusters"]``)."""

    camera: str
    run: int
    serial: int
    time_ns: int
    #: (n, len(FEATURES)) float64
    features: np.ndarray
    #: (n,) int8 class codes, see classify.CLASS_NAMES
    classes: np.ndarray
    pixel_mm: float = 0.152
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def column(self, name: str) -> np.ndarray:
        return self.features[:, COLUMN[name]]

    def count(self, cls: int) -> int:
        return int(np.count_nonzero(self.classes == cls))

    def records(self, limit: int | None = None) -> list[dict[str, Any]]:
        n = len(self) if limit is None else min(limit, len(self))
        out = []
        for i in range(n):
            d: dict[str, Any] = {
                name: float(self.features[i, j]) for j, (name, _) in enumerate(FEATURES)
            }
            d["class"] = CLASS_NAMES[int(self.classes[i])]
            d["length_mm"] = d["length"] * self.pixel_mm
            out.append(d)
        return out

    @classmethod
    def empty(
        cls, camera: str, run: int, serial: int, time_ns: int, pixel_mm: float
    ) -> ClusterTable:
        return cls(
            camera,
            run,
            serial,
            time_ns,
            np.zeros((0, kn.NFEATURES)),
            np.zeros(0, np.int8),
            pixel_mm,
        )


def fit_peak(
    counts: np.ndarray, edges: np.ndarray, *, min_entries: int = 30, iterations: int = 8
) -> dict[str, Any]:
    """Iterative Gaussian fit of the main peak of a histogram.

    The log of the counts is fitted with a parabola by weighted least squares
    (weights = counts, the inverse variance of log(counts) for Poisson bins)
    in a window of +-1.5 sigma around the current estimate, starting from the
    highest bin of the 3-bin smoothed histogram and the RMS around it; the
    window is updated until it stops moving. Returns ``ok`` False (with the
    reason) instead of a wrong number when the peak is not usable.
    """
    counts = np.asarray(counts, dtype=np.float64)
    centres = 0.5 * (edges[1:] + edges[:-1])
    n = float(counts.sum())
    res: dict[str, Any] = {"ok": False, "entries": int(n)}
    if n < min_entries:
        res["reason"] = f"fewer than {min_entries} entries"
        return res
    smooth = np.convolve(counts, np.ones(3) / 3, mode="same")
    mu = centres[int(np.argmax(smooth))]
    width = edges[-1] - edges[0]
    near = np.abs(centres - mu) < 0.15 * width
    w = counts[near]
    sigma = float(np.sqrt(np.sum(w * (centres[near] - mu) ** 2) / max(w.sum(), 1.0))) or (
        edges[1] - edges[0]
    )
    for _ in range(iterations):
        sel = (np.abs(centres - mu) <= 1.5 * sigma) & (counts > 0)
        if np.count_nonzero(sel) < 3:
            res["reason"] = "too few bins in the peak window"
            return res
        x = (centres[sel] - mu) / sigma
        y = np.log(counts[sel])
        sw = np.sqrt(counts[sel])
        a = np.vstack([x * x, x, np.ones_like(x)]).T * sw[:, None]
        coef, *_ = np.linalg.lstsq(a, y * sw, rcond=None)
        c2, c1, _c0 = coef
        if c2 >= 0:
            res["reason"] = "no peak (log-counts not concave)"
            return res
        new_sigma = sigma * float(np.sqrt(-1.0 / (2.0 * c2)))
        new_mu = mu + sigma * float(-c1 / (2.0 * c2))
        if not (edges[0] <= new_mu <= edges[-1]) or not np.isfinite(new_sigma):
            res["reason"] = "peak outside the histogram"
            return res
        done = abs(new_mu - mu) < 1e-4 * sigma and abs(new_sigma - sigma) < 1e-4 * sigma
        mu, sigma = new_mu, new_sigma
        if done:
            break
    in_peak = np.abs(centres - mu) <= 1.5 * sigma
    res.update(
        ok=True,
        mean=float(mu),
        sigma=float(sigma),
        resolution=float(sigma / mu) if mu else None,
        mean_error=float(sigma / np.sqrt(max(counts[in_peak].sum(), 1.0))),
        entries_in_peak=int(counts[in_peak].sum()),
    )
    return res
