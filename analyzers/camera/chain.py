"""Orchestration of the per-frame camera chain (no numba here: only glue).

:class:`CameraConfig` is the validated configuration; :class:`FrameChain`
holds everything one camera needs to run the kernels on its frames (derived
threshold maps, acceptance, boxes, preallocated work buffers, hot-pixel
counters) and turns one raw frame into a :class:`FrameResult`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cygno_online.analyzers.camera import directional as dk
from cygno_online.analyzers.camera import kernels as kn
from cygno_online.analyzers.camera.classify import ClassCuts, classify
from cygno_online.analyzers.camera.clusters import ClusterTable
from cygno_online.analyzers.camera.pedestals import PedestalMaps, threshold_map

from cygno_online.params import Params

LIME_SHAPE = (2304, 2304)
#: lime.md: LIME rows < 304 and >= 2054 are outside the acceptance
LIME_ACCEPTANCE_ROWS = (304, 2054)
NBOXES = 9


@dataclass(slots=True, frozen=True)
class CameraConfig:
    """Validated parameters of the camera analyzer (see sample.yaml)."""

    cameras: tuple[str, ...] | None = None
    clip: int = 5000
    nsigma: float = 1.3
    acceptance_rows: tuple[int, int] | None = None
    acceptance_cols: tuple[int, int] | None = None
    rebin: int = 4
    nb_mean_min: float = 1.2
    nb_min_count: int = 3
    # line rule of the noise filter (ADU; inf = off, `noise.line_min: null`)
    nb_line_min: float = 2.5
    eps: float = 2.0
    min_samples: int = 10
    integral_margin: int = 1
    max_points: int = 100_000
    # directional clustering (see directional.py; lengths in rebinned px)
    dir_enabled: bool = True
    dir_min_points: int = 10
    dir_seed_min_samples: int = 5
    dir_thickness: float = 2.5
    dir_width_nsigma: float = 2.5
    dir_grow_radius: float = 6.0
    dir_min_length: float = 4.0
    dir_min_elongation: float = 2.0
    dir_merge_fraction: float = 0.6
    dir_merge_angle_deg: float = 15.0
    dir_merge_gap: float = 60.0
    dir_max_iterations: int = 30
    dir_n_angles: int = 36
    dir_hole_bridge: float = 3.0
    dir_min_coverage: float = 0.9
    # a track's length past its last point, on the rebinned map's light
    # (directional.extension; window and gap in rebinned px)
    dir_extend: bool = True
    dir_extend_nsigma: float = 3.0
    dir_extend_window: int = 4
    dir_extend_gap: int = 2
    spark_enabled: bool = True
    spark_threshold: float | None = None
    spark_per_pixel: float = 200.0
    spark_offset: float = 9.0e6
    hot_nsigma: float = 10.0
    hot_frames: int = 5
    box_size: int = 256
    pixel_mm: float = 0.152
    cuts: ClassCuts = field(default_factory=ClassCuts)
    # pedestals
    pedestal_store: str | None = None
    pedestal_force: bool = False
    pedestal_max_age_days: float = 10.0
    pedestal_estimate_frames: int = 10
    pedestal_estimate_clip_nsigma: float = 3.0
    pedestal_min_frames: int = 10
    pedestal_max_deferred: int = 8
    pedestal_save: bool = True
    # outputs
    display_every: int = 1
    display_scale: int = 16
    scatter_max: int = 5000
    hist_bins: int = 120
    hist_min: float = 1.0e2
    hist_max: float = 1.0e7
    fe55_bins: int = 100
    fit_min_entries: int = 30
    per_cluster_metrics: bool = False
    max_cluster_metrics: int = 50

    @classmethod
    def from_params(cls, p: Params) -> CameraConfig:
        """Read and validate everything (errors collected in ``p`` with key
        paths; unknown keys in every sub-section are errors)."""
        d = cls()
        cams = p.list_of("cameras", None, str)
        acc = p.section("acceptance")
        rows = acc.list_of("rows", None, int, length=2)
        cols = acc.list_of("cols", None, int, length=2)
        for key, rng in (("rows", rows), ("cols", cols)):
            if rng is not None and not (0 <= rng[0] < rng[1]):
                acc.error(key, "must be [first, stop) with 0 <= first < stop", value=rng)
        acc.check_unknown()
        noise = p.section("noise")
        nb_mean_min = noise.number("neighbour_mean_min", d.nb_mean_min, minimum=0)
        nb_min_count = noise.integer("min_count", d.nb_min_count, minimum=1, maximum=9)
        nb_line_min = noise.number("line_min", d.nb_line_min, minimum=0, exclusive_minimum=True)
        if noise.has("line_min") and noise.raw("line_min") is None:
            nb_line_min = math.inf  # null = no line rule
        noise.check_unknown()
        db = p.section("dbscan")
        eps = db.number("eps", d.eps, minimum=0, exclusive_minimum=True, maximum=16)
        min_samples = db.integer("min_samples", d.min_samples, minimum=1)
        max_points = db.integer("max_points", d.max_points, minimum=1)
        db.check_unknown()
        di = p.section("directional")
        dir_kw = {
            "dir_enabled": di.boolean("enabled", d.dir_enabled),
            "dir_min_points": di.integer("min_points", d.dir_min_points, minimum=3),
            "dir_seed_min_samples": di.integer(
                "seed_min_samples", d.dir_seed_min_samples, minimum=0
            ),
            "dir_thickness": di.number(
                "thickness", d.dir_thickness, minimum=0, exclusive_minimum=True
            ),
            "dir_width_nsigma": di.number("width_nsigma", d.dir_width_nsigma, minimum=0),
            "dir_grow_radius": di.number("grow_radius", d.dir_grow_radius, minimum=0),
            "dir_min_length": di.number("min_length", d.dir_min_length, minimum=0),
            "dir_min_elongation": di.number("min_elongation", d.dir_min_elongation, minimum=0),
            "dir_merge_fraction": di.number(
                "merge_fraction", d.dir_merge_fraction, minimum=0, exclusive_minimum=True, maximum=1
            ),
            "dir_merge_angle_deg": di.number(
                "merge_angle_deg", d.dir_merge_angle_deg, minimum=0, maximum=90
            ),
            "dir_merge_gap": di.number("merge_gap", d.dir_merge_gap, minimum=0),
            "dir_max_iterations": di.integer("max_iterations", d.dir_max_iterations, minimum=1),
            "dir_n_angles": di.integer("n_angles", d.dir_n_angles, minimum=4, maximum=720),
            "dir_hole_bridge": di.number("hole_bridge", d.dir_hole_bridge, minimum=1),
            "dir_min_coverage": di.number(
                "min_coverage", d.dir_min_coverage, minimum=0, exclusive_minimum=True, maximum=1
            ),
            "dir_extend": di.boolean("extend", d.dir_extend),
            "dir_extend_nsigma": di.number(
                "extend_nsigma", d.dir_extend_nsigma, minimum=0, exclusive_minimum=True
            ),
            "dir_extend_window": di.integer(
                "extend_window", d.dir_extend_window, minimum=1, maximum=64
            ),
            "dir_extend_gap": di.integer("extend_gap", d.dir_extend_gap, minimum=0, maximum=64),
        }
        di.check_unknown()
        sp = p.section("spark")
        spark_enabled = sp.boolean("enabled", d.spark_enabled)
        spark_threshold = sp.number("threshold", None, minimum=0)
        spark_per_pixel = sp.number("per_pixel", d.spark_per_pixel, minimum=0)
        spark_offset = sp.number("offset", d.spark_offset)
        sp.check_unknown()
        hot = p.section("hot_pixels")
        hot_nsigma = hot.number("nsigma", d.hot_nsigma, minimum=0)
        hot_frames = hot.integer("frames", d.hot_frames, minimum=1, maximum=255)
        hot.check_unknown()
        ped = p.section("pedestal")
        store = ped.string("store", None)
        force = ped.boolean("force_pedestal_run", d.pedestal_force)
        max_age = ped.number("max_age_days", d.pedestal_max_age_days, minimum=0)
        est_frames = ped.integer("estimate_frames", d.pedestal_estimate_frames, minimum=2)
        est_clip = ped.number(
            "estimate_clip_nsigma",
            d.pedestal_estimate_clip_nsigma,
            minimum=0,
            exclusive_minimum=True,
        )
        min_frames = ped.integer("min_frames", d.pedestal_min_frames, minimum=1)
        max_deferred = ped.integer("max_deferred", d.pedestal_max_deferred, minimum=0)
        save = ped.boolean("save", d.pedestal_save)
        ped.check_unknown()
        disp = p.section("display")
        display_every = disp.integer("every", d.display_every, minimum=1)
        display_scale = disp.integer("scale", d.display_scale, minimum=1)
        scatter_max = disp.integer("scatter_max", d.scatter_max, minimum=0)
        hist_bins = disp.integer("integral_bins", d.hist_bins, minimum=1)
        hist_min = disp.number("integral_min", d.hist_min, minimum=0, exclusive_minimum=True)
        hist_max = disp.number("integral_max", d.hist_max, minimum=0, exclusive_minimum=True)
        disp.check_unknown()
        if hist_max <= hist_min:
            disp.error("integral_max", "must be larger than integral_min", value=hist_max)
        spec = p.section("fe55_spectrum")
        fe55_bins = spec.integer("bins", d.fe55_bins, minimum=5)
        fit_min = spec.integer("fit_min_entries", d.fit_min_entries, minimum=5)
        spec.check_unknown()
        rebin = p.integer("rebin", d.rebin, minimum=1, maximum=64)
        pixel_mm = p.number("pixel_mm", d.pixel_mm, minimum=0, exclusive_minimum=True)
        classes = p.section("classes")
        cuts = ClassCuts.from_params(classes, pixel_mm)
        classes.check_unknown()
        if display_scale % rebin:
            disp.error("scale", f"must be a multiple of rebin ({rebin})", value=display_scale)
        cfg = cls(
            cameras=tuple(cams) if cams is not None else None,
            clip=p.integer("clip", d.clip, minimum=1, maximum=65536),
            nsigma=p.number("nsigma", d.nsigma, minimum=0),
            acceptance_rows=tuple(rows) if rows else None,
            acceptance_cols=tuple(cols) if cols else None,
            rebin=rebin,
            nb_mean_min=nb_mean_min,
            nb_min_count=nb_min_count,
            nb_line_min=nb_line_min,
            eps=eps,
            min_samples=min_samples,
            integral_margin=p.integer("integral_margin", d.integral_margin, minimum=0, maximum=8),
            max_points=max_points,
            **dir_kw,
            spark_enabled=spark_enabled,
            spark_threshold=spark_threshold,
            spark_per_pixel=spark_per_pixel,
            spark_offset=spark_offset,
            hot_nsigma=hot_nsigma,
            hot_frames=hot_frames,
            box_size=p.integer("box_size", d.box_size, minimum=1),
            pixel_mm=pixel_mm,
            cuts=cuts,
            pedestal_store=store,
            pedestal_force=force,
            pedestal_max_age_days=max_age,
            pedestal_estimate_frames=est_frames,
            pedestal_estimate_clip_nsigma=est_clip,
            pedestal_min_frames=min_frames,
            pedestal_max_deferred=max_deferred,
            pedestal_save=save,
            display_every=display_every,
            display_scale=display_scale,
            scatter_max=scatter_max,
            hist_bins=hist_bins,
            hist_min=hist_min,
            hist_max=hist_max,
            fe55_bins=fe55_bins,
            fit_min_entries=fit_min,
            per_cluster_metrics=p.boolean("per_cluster_metrics", d.per_cluster_metrics),
            max_cluster_metrics=p.integer("max_cluster_metrics", d.max_cluster_metrics, minimum=0),
        )
        return cfg

    # -- shape-derived settings ------------------------------------------------
    def acceptance(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """``(r0, r1, c0, c1)``: configured ranges (clamped to the image), else
        the LIME rows for a 2304x2304 frame, else the whole image."""
        rows, cols = shape
        if self.acceptance_rows is not None:
            r0, r1 = self.acceptance_rows
        elif tuple(shape) == LIME_SHAPE:
            r0, r1 = LIME_ACCEPTANCE_ROWS
        else:
            r0, r1 = 0, rows
        c0, c1 = self.acceptance_cols if self.acceptance_cols is not None else (0, cols)
        return (min(r0, rows), min(r1, rows), min(c0, cols), min(c1, cols))

    def directional_args(self) -> tuple[Any, ...]:
        """The parameters of :func:`directional.directional_labels` after
        the points, seeds and number of DBSCAN clusters (shared by chain,
        reference and bench); the reference takes ``seed_min_samples`` first."""
        return (
            self.dir_min_points,
            self.dir_thickness,
            self.dir_width_nsigma,
            self.dir_grow_radius,
            self.dir_min_length,
            self.dir_min_elongation,
            self.dir_merge_fraction,
            math.cos(math.radians(self.dir_merge_angle_deg)),
            self.dir_merge_gap,
            self.dir_max_iterations,
            self.dir_n_angles,
            self.dir_hole_bridge,
            self.dir_min_coverage,
        )

    def length_args(self) -> tuple[float, float, float]:
        """The parameters of :func:`directional.track_lengths` after the
        points, values, labels and fit RMS."""
        return (self.dir_thickness, self.dir_width_nsigma, self.dir_min_coverage)

    def extension_region(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Rows ``[ra, rb)`` and columns ``[ca, cb)`` of the rebinned map
        wholly inside the acceptance: where :func:`directional.extension`
        reads light (a partly accepted pixel is darker, not the track's end)."""
        r0, r1, c0, c1 = self.acceptance(shape)
        f = self.rebin
        return (-(-r0 // f), r1 // f, -(-c0 // f), c1 // f)

    def extension_args(self, sigma: float) -> tuple[Any, ...]:
        """``noise``, ``window``, ``gap``, ``max_steps`` of
        :func:`directional.extended_track_lengths` for a map of pixel spread
        ``sigma`` (noise 0 = no extension: switched off)."""
        noise = self.dir_extend_nsigma * sigma if self.dir_extend else 0.0
        return (noise, self.dir_extend_window, self.dir_extend_gap, 1 << 30)

    def reference_extension(self) -> tuple[float, int, int] | None:
        """``extension`` of :func:`reference.process_frame`: None when
        switched off, else nsigma, window and gap."""
        if not (self.dir_enabled and self.dir_extend):
            return None
        return (self.dir_extend_nsigma, self.dir_extend_window, self.dir_extend_gap)

    def reference_directional(self) -> tuple[Any, ...] | None:
        """``directional`` of :func:`reference.process_frame`: None when
        switched off, else seed_min_samples then :meth:`directional_args`."""
        if not self.dir_enabled:
            return None
        return (self.dir_seed_min_samples, *self.directional_args())

    def spark_sum(self, shape: tuple[int, int]) -> float:
        """Spark veto threshold on sum(raw): lime.md's 2*100*npix + 9e6 for the
        defaults (per_pixel 200, offset 9e6), or the configured absolute value."""
        if self.spark_threshold is not None:
            return float(self.spark_threshold)
        return self.spark_per_pixel * shape[0] * shape[1] + self.spark_offset

    def boxes(self, shape: tuple[int, int]) -> np.ndarray:
        """Nine ``[r0, r1, c0, c1]`` boxes: the image is cut into a 3x3 grid of
        cells and a ``box_size`` square (shrunk to the cell if the image is
        small) is centred in each cell, row-major from the top-left. For LIME:
        rows/cols [256, 512), [1024, 1280), [1792, 2048)."""
        rows, cols = shape
        out = np.zeros((NBOXES, 4), np.int64)
        bh = min(self.box_size, rows // 3)
        bw = min(self.box_size, cols // 3)
        k = 0
        for a in range(3):
            cr = (2 * a + 1) * rows // 6
            for b in range(3):
                cc = (2 * b + 1) * cols // 6
                out[k] = (cr - bh // 2, cr - bh // 2 + bh, cc - bw // 2, cc - bw // 2 + bw)
                k += 1
        return out


def noise_fraction(nsigma: float) -> float:
    """Fraction of pixels that Gaussian noise alone puts over ``nsigma``
    sigma (one-sided tail, ``P(x > nsigma)``): the occupancy of an empty
    frame, 0.0968 at the online nsigma 1.3."""
    return 0.5 * math.erfc(nsigma / math.sqrt(2.0))


def ped_moments(e_sum: Any, e_sq: Any, f_sum: Any, f_sq: Any, n: Any) -> tuple[Any, Any]:
    """Mean and RMS of ``d = raw - mean`` over ``n`` pixels from the exact
    integer sums of ``e = raw - mean_q`` (what the frame pass sums: it reads
    no float map) and those of the rounding ``f = mean - mean_q`` (known per
    map): ``d = e - f``, so the mean is exact and the variance is ``var(e) -
    var(f)`` up to twice the noise-f covariance, which is neglected: its
    expectation is 0 and its spread ~2 sqrt(var(f) var(noise) / n), 0.007
    ADU^2 for a 256x256 box at 3 ADU of noise (1e-3 ADU on its RMS), 20
    times less on a LIME frame. Scalars or arrays (per box)."""
    em = e_sum / n
    fm = f_sum / n
    var = e_sq / n - em * em - (f_sq / n - fm * fm)
    return em - fm, np.sqrt(np.maximum(var, 0.0))


#: derived map sets kept per pedestal map (one per nsigma pair in use; an
#: older pair left behind by a configuration change is dropped)
DERIVED_PER_MAP = 2


def derive_maps(maps: PedestalMaps, nsigma: float, hot_nsigma: float) -> tuple[Any, ...]:
    """The integer maps the frame pass streams, derived from a pedestal map
    (0.4 s CPU for a Quest map): the zero-suppression and hot cuts, the
    rounded mean, the hot margin and the rounding sums. Computed once per
    map object and thresholds and cached on the map (``maps.derived``), so a
    map reused across runs or reinstalled costs nothing; thread-safe (at
    worst two threads derive the same map once each)."""
    key = (float(nsigma), float(hot_nsigma))
    got = maps.derived.get(key)
    if got is not None:
        return got
    cut = kn.threshold_cut(maps.mean, threshold_map(maps.sigma, nsigma))
    hot_cut = kn.threshold_cut(maps.mean, threshold_map(maps.sigma, hot_nsigma))
    # what the frame pass streams (5 bytes per pixel with the frame, 3 in
    # the rows of the packed map) and
    # what it reads in rows with bright pixels only (the hot margin)
    mean_q, hot_delta, frac_sum, frac_sq = kn.pass_maps(maps.mean, cut, hot_cut)
    cut_off, wide = kn.cut_offsets(cut, mean_q)
    # and in the rows where mean and cut fit in one byte: 3 bytes per pixel
    packed = kn.packed_maps(mean_q, cut_off, wide)
    q_total = int(mean_q.sum(dtype=np.int64))
    hot_min = kn.row_min_u8(hot_delta)
    got = (
        cut,
        hot_cut,
        mean_q,
        hot_delta,
        frac_sum,
        frac_sq,
        cut_off,
        wide,
        q_total,
        hot_min,
        packed,
    )
    while len(maps.derived) >= DERIVED_PER_MAP:
        maps.derived.pop(next(iter(maps.derived)), None)
    maps.derived[key] = got
    return got


@dataclass(slots=True)
class FrameResult:
    """Everything the chain computed on one frame."""

    #: "store", "estimated", "estimating", "loading" (a stored map in the background), "pedestal_run"
    pedestal_source: str
    raw_mean: float
    raw_rms: float
    #: (9, 4): raw mean, raw rms, pedestal-subtracted mean, rms per box
    boxes: np.ndarray
    n_clipped: int
    spark: bool
    ped_mean: float | None = None
    ped_rms: float | None = None
    n_over_threshold: int | None = None
    hot_pixels: int | None = None
    clustered: bool = False
    #: too many rebinned pixels to cluster (a spark-like or very noisy frame)
    overflow: bool = False
    #: analysed after the fact with a pedestal estimated after the frame came
    late: bool = False
    n_points: int = 0
    clusters: ClusterTable | None = None
    #: rebinned coordinates of the clustered points and their final labels
    #: (-1 = noise); None when the frame was not clustered
    prow: np.ndarray | None = None
    pcol: np.ndarray | None = None
    labels: np.ndarray | None = None
    #: rebinned (median-filtered, zero-suppressed) map, before noise reduction
    #: (float32 when the rebin factor is a power of two, exact; else float64)
    rebinned: np.ndarray | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class FrameChain:
    """Per-camera kernel driver: derived maps and work buffers for one shape
    and one pedestal. Not thread-safe by itself: one per camera."""

    def __init__(self, cfg: CameraConfig, shape: tuple[int, int], camera: str) -> None:
        self.cfg = cfg
        self.shape = (int(shape[0]), int(shape[1]))
        self.camera = camera
        self.acc = cfg.acceptance(self.shape)
        self.ext_region = cfg.extension_region(self.shape)
        r0, r1, c0, c1 = self.acc
        #: pixels inside the acceptance (the denominator of the occupancy)
        self.n_accepted = max(r1 - r0, 0) * max(c1 - c0, 0)
        self.noise_fraction = noise_fraction(cfg.nsigma)
        self.box_table = cfg.boxes(self.shape)
        self.spark_sum = cfg.spark_sum(self.shape)
        f = cfg.rebin
        self.rb_shape = (self.shape[0] // f, self.shape[1] // f)
        # block means of integer sums: exact in float32 when the block's area
        # is a power of two (sums of 9 of them too, as the noise filter does,
        # up to 9 * 65535), else float64 as the reference computes them; half
        # the bytes to write and to filter (-0.25 ms per LIME frame)
        exact32 = (f & (f - 1)) == 0
        self.rebinned = np.zeros(self.rb_shape, np.float32 if exact32 else np.float64)
        self.zrows = np.zeros((f + 1, self.shape[1]), np.uint16)
        self.box_sums = np.zeros((NBOXES, 4), np.float64)
        self.hot_count = np.zeros(self.shape, np.uint8)
        self.hot_rows = np.zeros(self.shape[0], np.int32)
        # work maps of the integration region (kn.integration_region)
        self.owner = np.full(self.rb_shape, -1, np.int32)
        self.own = np.zeros(self.rb_shape, np.bool_)
        self.maps: PedestalMaps | None = None
        self.cut: np.ndarray | None = None
        self.hot_cut: np.ndarray | None = None
        self.mean_q: np.ndarray | None = None
        self.hot_delta: np.ndarray | None = None
        self.cut_off: np.ndarray | None = None
        self.wide_rows: np.ndarray | None = None
        #: (pk, pbase, packed) of kn.packed_maps
        self.packed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.frac_sum = 0.0
        self.frac_sq = 0.0
        self.q_total = 0
        #: per box: sum and sum of squares of the rounding mean - mean_q
        self.box_frac = np.zeros((NBOXES, 2), np.float64)
        #: per box: the sum of mean_q (the pass's box sums of raw - mean_q)
        self.box_q = np.zeros(NBOXES, np.int64)

    @property
    def packed_rows(self) -> int:
        """Rows of the installed map whose mean and cut fit in one byte per
        pixel (the frame pass streams 3 bytes per pixel there, else 5; see
        ``kernels.packed_maps``): how much of the speed measured on the
        simulator's flat pedestal holds on a real one. 0 without a map."""
        if self.packed is None or self.maps is None:
            return 0
        return int(self.packed[2].sum())

    def set_pedestal(self, maps: PedestalMaps | None) -> None:
        """Install a pedestal (derives the integer cut maps once per map)."""
        self.maps = maps
        self.hot_count[:] = 0
        self.hot_rows[:] = 0
        if maps is None:
            self.cut = self.hot_cut = None
            return
        if maps.shape != self.shape:
            raise ValueError(f"pedestal map shape {maps.shape} != frame shape {self.shape}")
        d = derive_maps(maps, self.cfg.nsigma, self.cfg.hot_nsigma)
        (
            self.cut,
            self.hot_cut,
            self.mean_q,
            self.hot_delta,
            self.frac_sum,
            self.frac_sq,
            self.cut_off,
            self.wide_rows,
            self.q_total,
            self.hot_min,
            self.packed,
        ) = d
        for k, (br0, br1, bc0, bc1) in enumerate(self.box_table):
            q = self.mean_q[br0:br1, bc0:bc1]
            f = maps.mean[br0:br1, bc0:bc1].astype(np.float64) - q
            self.box_frac[k] = (f.sum(), (f * f).sum())
            self.box_q[k] = q.sum(dtype=np.int64)

    def ped_moments(self, s: np.ndarray, npix: int) -> tuple[float, float]:
        """Mean and RMS of ``raw - mean`` of the frame (see :func:`ped_moments`)."""
        m, rms = ped_moments(s[kn.S_PED_SUM], s[kn.S_PED_SUMSQ], self.frac_sum, self.frac_sq, npix)
        return float(m), float(rms)

    def boxes_with_clusters(self, table: ClusterTable) -> list[bool]:
        """Per pedestal box, whether a cluster's bounding box (widened by
        the integration margin, where its light is summed) overlaps it."""
        f = table.features
        m = self.cfg.integral_margin * self.cfg.rebin
        out = []
        for br0, br1, bc0, bc1 in self.box_table:
            hit = (
                (f[:, kn.F_ROW_MIN] - m < br1)
                & (f[:, kn.F_ROW_MAX] + m > br0)
                & (f[:, kn.F_COL_MIN] - m < bc1)
                & (f[:, kn.F_COL_MAX] + m > bc0)
            )
            out.append(bool(hit.any()))
        return out

    def _box_result(self, b: np.ndarray, with_mean: bool) -> np.ndarray:
        t = self.box_table
        n = ((t[:, 1] - t[:, 0]) * (t[:, 3] - t[:, 2])).astype(np.float64)
        n = np.maximum(n, 1.0)
        out = np.zeros((NBOXES, 4))
        out[:, 0] = b[:, 0] / n
        out[:, 1] = np.sqrt(np.maximum(b[:, 1] / n - out[:, 0] ** 2, 0.0))
        if with_mean:
            out[:, 2], out[:, 3] = ped_moments(
                b[:, 2], b[:, 3], self.box_frac[:, 0], self.box_frac[:, 1], n
            )
        else:
            out[:, 2:] = np.nan
        return out

    def raw_only(self, raw: np.ndarray, source: str) -> FrameResult:
        """Statistics of a frame that is not pedestal-subtracted."""
        t0 = time.perf_counter()
        s = kn.raw_pass(raw, self.cfg.clip)
        b = kn.box_stats(raw, self.box_table)
        npix = raw.size
        m = s[kn.S_RAW_SUM] / npix
        res = FrameResult(
            pedestal_source=source,
            raw_mean=m,
            raw_rms=float(np.sqrt(max(s[kn.S_RAW_SUMSQ] / npix - m * m, 0.0))),
            boxes=self._box_result(b, False),
            n_clipped=int(s[kn.S_N_CLIPPED]),
            spark=self.cfg.spark_enabled and s[kn.S_RAW_SUM] > self.spark_sum,
        )
        res.timings_ms["raw_stats"] = (time.perf_counter() - t0) * 1e3
        return res

    def frame_pass(self, raw: np.ndarray) -> np.ndarray:
        """The fused full-resolution pass on one frame with this camera's maps
        and buffers (:func:`kernels.frame_pass_boxes`): the statistics vector;
        the rebinned map in ``self.rebinned``, the box sums in
        ``self.box_sums``, the hot counters updated. Requires a pedestal."""
        r0, r1, c0, c1 = self.acc
        return kn.frame_pass_boxes(
            raw,
            self.mean_q,
            self.cut,
            self.hot_delta,
            self.hot_count,
            self.hot_rows,
            self.cfg.clip,
            r0,
            r1,
            c0,
            c1,
            self.cfg.rebin,
            self.cfg.hot_frames,
            self.rebinned,
            self.zrows,
            self.q_total,
            self.box_table,
            self.box_q,
            self.box_sums,
            self.cut_off,
            self.wide_rows,
            self.hot_min,
            *self.packed,
        )

    def cluster_features(
        self, raw: np.ndarray, prow: np.ndarray, pcol: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        """Feature table of the clusters ``labels`` of the rebinned points
        (:func:`kernels.cluster_features`), their integration region built
        on this camera's work maps and cleared again. Requires a pedestal."""
        if self.maps is None or self.cut is None:
            raise RuntimeError("FrameChain.cluster_features needs a pedestal")
        cfg = self.cfg
        r0, r1, c0, c1 = self.acc
        ncl = int(labels.max()) + 1 if labels.size else 0
        blocks = np.empty(kn.region_room(prow.shape[0], cfg.integral_margin), np.int64)
        nreg = kn.integration_region(
            prow, pcol, labels, cfg.integral_margin, self.owner, self.own, blocks
        )
        try:
            return kn.cluster_features(
                raw,
                self.maps.mean,
                self.cut,
                cfg.clip,
                r0,
                r1,
                c0,
                c1,
                cfg.rebin,
                prow,
                pcol,
                labels,
                ncl,
                self.owner,
                blocks[:nreg],
            )
        finally:
            kn.clear_region(self.owner, self.own, blocks, nreg)

    def process(
        self, raw: np.ndarray, *, run: int, serial: int, time_ns: int, source: str
    ) -> FrameResult:
        """The full chain on one frame; requires a pedestal (``set_pedestal``)."""
        cfg = self.cfg
        maps = self.maps
        if maps is None or self.cut is None or self.mean_q is None or self.hot_delta is None:
            raise RuntimeError("FrameChain.process needs a pedestal")
        tm: dict[str, float] = {}
        t0 = time.perf_counter()
        s = self.frame_pass(raw)
        t1 = time.perf_counter()
        b = self.box_sums
        tm["frame_pass"] = (t1 - t0) * 1e3
        npix = raw.size
        m = s[kn.S_RAW_SUM] / npix
        pm, prms = self.ped_moments(s, npix)
        res = FrameResult(
            pedestal_source=source,
            raw_mean=m,
            raw_rms=float(np.sqrt(max(s[kn.S_RAW_SUMSQ] / npix - m * m, 0.0))),
            boxes=self._box_result(b, True),
            n_clipped=int(s[kn.S_N_CLIPPED]),
            spark=cfg.spark_enabled and s[kn.S_RAW_SUM] > self.spark_sum,
            ped_mean=pm,
            ped_rms=prms,
            n_over_threshold=int(s[kn.S_N_ZS]),
            hot_pixels=int(s[kn.S_N_HOT]),
            rebinned=self.rebinned,
        )
        if res.spark:
            res.timings_ms = tm
            return res
        t0 = time.perf_counter()
        prow, pcol, npts = kn.filtered_points(
            self.rebinned, cfg.nb_mean_min, cfg.nb_min_count, cfg.max_points, cfg.nb_line_min
        )
        t1 = time.perf_counter()
        tm["noise_filter"] = (t1 - t0) * 1e3
        res.n_points = int(npts)
        if npts > cfg.max_points:
            res.overflow = True
            res.timings_ms = tm
            return res
        labels = kn.dbscan(prow, pcol, cfg.eps, cfg.min_samples)
        t2 = time.perf_counter()
        tm["dbscan"] = (t2 - t1) * 1e3
        fit_rms = None
        if cfg.dir_enabled:
            seeds, nprimary = dk.seed_labels(prow, pcol, labels, cfg.eps, cfg.dir_seed_min_samples)
            # a kept pixel keeps its rebinned value: the points' light
            values = self.rebinned[prow, pcol].astype(np.float64)
            labels, fit_rms = dk.directional_labels(
                prow, pcol, values, seeds, nprimary, *cfg.directional_args()
            )
            if cfg.dir_extend:
                ra, rb, ca, cb = self.ext_region
                sig = dk.background_sigma(self.rebinned, prow, pcol, ra, rb, ca, cb)
                # the points' labels on the work map (cleared again: the
                # integration region below starts from an empty one)
                self.owner[prow, pcol] = labels
                try:
                    track_len, ext = dk.extended_track_lengths(
                        prow,
                        pcol,
                        values,
                        labels,
                        fit_rms,
                        *cfg.length_args(),
                        self.rebinned,
                        self.owner,
                        *self.ext_region,
                        *cfg.extension_args(sig),
                    )
                finally:
                    self.owner[prow, pcol] = -1
                # the light past the last points (directional.extension)
                track_len = track_len + ext.sum(axis=1)
            else:
                track_len = dk.track_lengths(
                    prow, pcol, values, labels, fit_rms, *cfg.length_args()
                )
            t3 = time.perf_counter()
            tm["directional"] = (t3 - t2) * 1e3
            t2 = t3
        feats = self.cluster_features(raw, prow, pcol, labels)
        if fit_rms is not None:
            feats[:, kn.F_FIT_RMS] = fit_rms * cfg.rebin
            # tracks: the length along the fitted curve (directional.py)
            fitted = track_len > 0
            feats[fitted, kn.F_TRACK_LENGTH] = track_len[fitted] * cfg.rebin
        classes = classify(feats, cfg.cuts)
        tm["features"] = (time.perf_counter() - t2) * 1e3
        res.clustered = True
        res.prow, res.pcol, res.labels = prow, pcol, labels
        res.clusters = ClusterTable(self.camera, run, serial, time_ns, feats, classes, cfg.pixel_mm)
        res.timings_ms = tm
        return res

    def display_image(self, raw: np.ndarray, res: FrameResult) -> tuple[np.ndarray, str, int]:
        """Downsampled float32 image for viewers, what it shows, and the scale
        (full-resolution pixels per display pixel)."""
        cfg = self.cfg
        if res.rebinned is not None:
            k = cfg.display_scale // cfg.rebin
            img = kn.rebin_mean(res.rebinned, k) if k > 1 else res.rebinned
            return img.astype(np.float32), "zero_suppressed", cfg.display_scale
        return kn.rebin_mean(raw, cfg.display_scale).astype(np.float32), "raw", cfg.display_scale


def warm_up_kernels() -> float:
    """Compile (or load from the numba cache) every kernel with the argument
    types used at run time; returns the seconds spent."""
    t0 = time.perf_counter()
    cfg = CameraConfig()
    rng = np.random.default_rng(0)
    shape = (64, 64)
    raw = (100 + rng.normal(0, 3, shape)).astype(np.uint16)
    raw[20:24, 20:40] += 200
    mean = np.full(shape, 100.0, np.float32)
    sigma = np.full(shape, 3.0, np.float32)
    # decoded frames are read-only views of the event buffer: a different
    # numba signature from writable arrays, so warm both
    frozen = raw.copy()
    frozen.setflags(write=False)
    ch = FrameChain(cfg, shape, "warmup")
    ch.set_pedestal(PedestalMaps("warmup", mean, sigma, 1, 0, 0))
    for img in (raw, frozen):
        res = ch.process(img, run=0, serial=0, time_ns=0, source="store")
        ch.raw_only(img, "estimating")
        ch.display_image(img, res)
        res.rebinned = None
        ch.display_image(img, res)
        kn.pedestal_accumulate(img, raw, np.zeros(shape, np.int64), np.zeros(shape, np.int64))
    kn.zero_suppress(raw, mean, ch.cut, cfg.clip, 0, 64, 0, 64)
    kn.median2x2(np.zeros(shape, np.float32))
    kn.rebin_mean(np.zeros(shape, np.float32), 4)
    kn.pedestal_estimate(np.stack([raw, raw, raw]), 3.0, 3.0)
    return time.perf_counter() - t0


def describe_result(res: FrameResult) -> dict[str, Any]:
    """A compact dict of one frame's result (for ``flow`` and logs)."""
    return {
        "pedestal_source": res.pedestal_source,
        "spark": res.spark,
        "clustered": res.clustered,
        "n_clusters": len(res.clusters) if res.clusters is not None else 0,
        "raw_mean": res.raw_mean,
        "raw_rms": res.raw_rms,
    }
