"""Cluster classification helpers: 55Fe-like, alpha-like, muon-like, other.

Cuts (defaults tuned on the project's simulator at LIME scale, see
sample.yaml; lime.md gives the collaboration's 55Fe selection
1500 < integral < 2e4, rms > 8, length < 50 mm, and alpha integral/nhits > 25,
length > 100 px):

* alpha: density >= alpha.density_min and length >= alpha.length_min_px;
* muon (long and thin, not an alpha): length >= muon.length_min_px and
  slimness <= muon.slimness_max;
* 55Fe: integral in (fe55.integral_min, fe55.integral_max), rms > fe55.rms_min,
  length < fe55.length_max_mm and slimness >= fe55.slimness_min;
* everything else: other. A cluster gets the first class that matches in the
  order alpha, muon, 55Fe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cygno_online.analyzers.camera import kernels as kn

from cygno_online.params import Params

CLASS_NAMES = ("other", "fe55", "alpha", "muon")
OTHER, FE55, ALPHA, MUON = 0, 1, 2, 3


@dataclass(slots=True, frozen=True)
class ClassCuts:
    fe55_integral_min: float = 1500.0
    fe55_integral_max: float = 2.0e4
    fe55_rms_min: float = 4.0
    fe55_length_max_mm: float = 50.0
    fe55_slimness_min: float = 0.4
    alpha_density_min: float = 25.0
    alpha_length_min_px: float = 100.0
    muon_length_min_px: float = 200.0
    muon_slimness_max: float = 0.2
    pixel_mm: float = 0.152

    @classmethod
    def from_params(cls, p: Params, pixel_mm: float) -> ClassCuts:
        d = cls()
        fe = p.section("fe55")
        al = p.section("alpha")
        mu = p.section("muon")
        cuts = cls(
            fe55_integral_min=fe.number("integral_min", d.fe55_integral_min, minimum=0),
            fe55_integral_max=fe.number("integral_max", d.fe55_integral_max, minimum=0),
            fe55_rms_min=fe.number("rms_min", d.fe55_rms_min, minimum=0),
            fe55_length_max_mm=fe.number("length_max_mm", d.fe55_length_max_mm, minimum=0),
            fe55_slimness_min=fe.number("slimness_min", d.fe55_slimness_min, minimum=0, maximum=1),
            alpha_density_min=al.number("density_min", d.alpha_density_min, minimum=0),
            alpha_length_min_px=al.number("length_min_px", d.alpha_length_min_px, minimum=0),
            muon_length_min_px=mu.number("length_min_px", d.muon_length_min_px, minimum=0),
            muon_slimness_max=mu.number("slimness_max", d.muon_slimness_max, minimum=0, maximum=1),
            pixel_mm=pixel_mm,
        )
        for s in (fe, al, mu):
            s.check_unknown()
        if cuts.fe55_integral_max <= cuts.fe55_integral_min:
            fe.error(
                "integral_max", "must be larger than integral_min", value=cuts.fe55_integral_max
            )
        return cuts


def classify(features: np.ndarray, cuts: ClassCuts) -> np.ndarray:
    """Class code (int8) of every row of a feature table (one numba loop: a
    frame has a few clusters, and twenty numpy calls on arrays of four cost
    ten times more than the cuts themselves)."""
    return kn.classify_rows(
        features,
        cuts.fe55_integral_min,
        cuts.fe55_integral_max,
        cuts.fe55_rms_min,
        cuts.fe55_length_max_mm,
        cuts.fe55_slimness_min,
        cuts.alpha_density_min,
        cuts.alpha_length_min_px,
        cuts.muon_length_min_px,
        cuts.muon_slimness_max,
        cuts.pixel_mm,
        OTHER,
        FE55,
        ALPHA,
        MUON,
    )
