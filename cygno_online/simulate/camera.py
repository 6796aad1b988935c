"""Camera images: fixed pedestal/noise maps and hot pixels per camera, and the
per-frame physics (55Fe spots, alpha tracks, cosmic muons, sparks).

Speed trick (a LIME frame in a few milliseconds instead of ~150 ms of
``rng.normal`` on 5.3 M pixels): a :class:`NoiseBank` holds two fixed arrays
``za``, ``zb`` of standard-normal numbers quantised to int8 (16 steps per
sigma, so quantisation adds 0.03 % to the variance), each one
``max_pixels + 2**20`` long. A frame picks two random offsets and uses
``(za[off_a + i] + zb[off_b + i]) / sqrt(2)`` as the unit noise of flat pixel
``i``. Within a frame every pixel gets different bank entries (independent);
a pixel gets different entries in every frame unless two frames draw the
same offset (about 1 chance in 10 for a pair among 400 frames, and then only
half of its noise repeats). So per-pixel means and RMS over frames, per-frame
sums and spatial statistics are those of independent Gaussian noise. The only
structure left is a correlation between pixel ``i`` of one frame and pixel
``i + d`` of another frame, invisible to any analysis we run. One numba pass
(:func:`~cygno_online.simulate.kernels.compose_frame`) turns pedestal map,
noise map and the two bank slices into the uint16 frame; objects are drawn
into a sparse float buffer and only the pixels under them are re-digitised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from cygno_online.simulate import kernels
from cygno_online.simulate.truth import InjectedObject

#: int8 steps per sigma of the noise bank
Z_STEPS = 16.0
ZSCALE = 1.0 / (Z_STEPS * math.sqrt(2.0))
#: extra bank length beyond the largest camera: the range of frame offsets
BANK_SLACK = 1 << 20
LIME_PIXELS = 2304 * 2304
#: spark-veto threshold of lime.md: sum(raw) > 2*100*npix + 9e6
SPARK_SUM_PER_PIXEL = 200.0
SPARK_SUM_CONST = 9e6


def spark_threshold(npix: int) -> float:
    """The collaboration's spark-veto sum threshold for an image of ``npix``."""
    return SPARK_SUM_PER_PIXEL * npix + SPARK_SUM_CONST


@dataclass(slots=True)
class Rates:
    """Mean number of objects per camera image and their sizes.

    The same per-frame rates are used for crops so that small test images
    still contain objects (a real crop would see fewer)."""

    fe55: float = 3.0
    alpha: float = 0.3
    muon: float = 0.5
    spark: float = 0.01
    #: mean 55Fe spot integral (ADU) and relative resolution (sigma/mean)
    fe55_integral: float = 3000.0
    fe55_resolution: float = 0.15
    fe55_sigma: tuple[float, float] = (2.0, 4.0)
    alpha_length: tuple[float, float] = (100.0, 500.0)
    #: alpha light per px of track (ADU/px)
    alpha_dedx: tuple[float, float] = (800.0, 1500.0)
    alpha_sigma: tuple[float, float] = (3.0, 4.5)
    muon_dedx: tuple[float, float] = (15.0, 30.0)
    muon_sigma: tuple[float, float] = (1.5, 2.5)

    def scaled(self, factor: float) -> Rates:
        """Same sizes, every rate multiplied by ``factor``."""
        return replace(
            self,
            fe55=self.fe55 * factor,
            alpha=self.alpha * factor,
            muon=self.muon * factor,
            spark=self.spark * factor,
        )


class NoiseBank:
    """Two fixed int8 arrays of quantised N(0,1) values (see module doc)."""

    def __init__(self, npix: int, seed: int) -> None:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0xB4CC])))
        n = npix + BANK_SLACK
        self.npix = npix
        self.za = self._draw(rng, n)
        self.zb = self._draw(rng, n)

    @staticmethod
    def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal(n, dtype=np.float32)
        z *= Z_STEPS
        np.rint(z, out=z)
        np.clip(z, -127, 127, out=z)
        return z.astype(np.int8)

    def offsets(self, rng: np.random.Generator) -> tuple[int, int]:
        a, b = rng.integers(0, BANK_SLACK, size=2)
        return int(a), int(b)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a few long-wavelength waves
    along rows and columns plus a radial (vignetting-like) term."""
    rows, cols = shape
    y = (np.arange(rows, dtype=np.float32) + 0.5) / rows
    x = (np.arange(cols, dtype=np.float32) + 0.5) / cols
    fy = np.zeros(rows, np.float32)
    fx = np.zeros(cols, np.float32)
    for k in (1, 2, 3):
        fy += rng.normal(0, 0.5 / k) * np.sin(np.pi * k * y + rng.uniform(0, 2 * np.pi))
        fx += rng.normal(0, 0.5 / k) * np.sin(np.pi * k * x + rng.uniform(0, 2 * np.pi))
    r2 = (y[:, None] - 0.5) ** 2 + (x[None, :] - 0.5) ** 2
    f = fy[:, None] + fx[None, :] - 1.2 * r2.astype(np.float32) + 0.3
    return f.astype(np.float32)


@dataclass(slots=True)
class CameraModel:
    """The fixed properties of one camera: maps and hot pixels."""

    camera: int
    shape: tuple[int, int]
    #: mean pixel value when dark (float32, hot pixels included)
    pedestal: np.ndarray
    #: Gaussian RMS per pixel before digitisation (float32)
    noise: np.ndarray
    #: (k, 2) int array of (row, col)
    hot_pixels: np.ndarray

    @classmethod
    def build(cls, camera: int, shape: tuple[int, int], detector_seed: int) -> CameraModel:
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([detector_seed, 0xCA3, camera]))
        )
        rows, cols = shape
        npix = rows * cols
        ped = 99.5 + 0.35 * _smooth_field(rng, shape)
        spread = rng.standard_normal(shape, dtype=np.float32)
        spread *= 0.3
        ped += spread
        noise = 2.5 + 0.3 * _smooth_field(rng, shape)
        spread = rng.standard_normal(shape, dtype=np.float32)
        spread *= 0.12
        noise += spread
        np.clip(noise, 1.5, 4.0, out=noise)
        # A few noisy (random-telegraph-like) pixels, as on real sensors.
        n_noisy = max(2, round(50 * npix / LIME_PIXELS))
        nr = rng.integers(0, rows, n_noisy)
        nc = rng.integers(0, cols, n_noisy)
        noise[nr, nc] = rng.uniform(5.0, 9.0, n_noisy).astype(np.float32)
        n_hot = max(3, round(12 * npix / LIME_PIXELS))
        flat = rng.choice(npix, size=n_hot, replace=False)
        hot = np.stack([flat // cols, flat % cols], axis=1).astype(np.int64)
        hot = hot[np.lexsort((hot[:, 1], hot[:, 0]))]
        levels = rng.uniform(400.0, 8000.0, n_hot).astype(np.float32)
        ped[hot[:, 0], hot[:, 1]] = levels
        noise[hot[:, 0], hot[:, 1]] = 3.0 * noise[hot[:, 0], hot[:, 1]]
        ped = np.ascontiguousarray(ped, dtype=np.float32)
        noise = np.ascontiguousarray(noise, dtype=np.float32)
        # shared by every simulator of this detector (cache): read-only
        for a in (ped, noise, hot):
            a.setflags(write=False)
        return cls(camera=camera, shape=(rows, cols), pedestal=ped, noise=noise, hot_pixels=hot)

    @property
    def npix(self) -> int:
        return self.shape[0] * self.shape[1]


@lru_cache(maxsize=2)
def detector_models(
    shapes: tuple[tuple[int, int], ...], detector_seed: int
) -> tuple[tuple[CameraModel, ...], NoiseBank]:
    """Camera models and noise bank of a detector, cached: the daemon builds a
    new simulator per run and must not pay ~0.5 s of map generation each time,
    and a pedestal run and the data runs after it must share their maps."""
    cams = tuple(CameraModel.build(i, s, detector_seed) for i, s in enumerate(shapes))
    bank = NoiseBank(max(r * c for r, c in shapes), detector_seed)
    return cams, bank


# --------------------------------------------------------------------- objects


@dataclass(slots=True)
class _Drawn:
    """An object as deposits (arrays for the kernels) plus its truth."""

    rows: np.ndarray
    cols: np.ndarray
    integrals: np.ndarray
    sigmas: np.ndarray
    truth: InjectedObject
    glow: float = 0.0


def _bbox(rows: np.ndarray, cols: np.ndarray, sigma: float, shape: tuple[int, int]):
    h = math.ceil(3.0 * sigma)
    r0 = max(math.floor(rows.min()) - h, 0)
    c0 = max(math.floor(cols.min()) - h, 0)
    r1 = min(math.floor(rows.max()) + h + 1, shape[0])
    c1 = min(math.floor(cols.max()) + h + 1, shape[1])
    return (r0, c0, r1, c1)


def _angle(dr: float, dc: float) -> float:
    a = math.degrees(math.atan2(dr, dc))
    # a direction, not an orientation: fold into [-90, 90)
    while a >= 90.0:
        a -= 180.0
    while a < -90.0:
        a += 180.0
    return a


def _path(
    p0: tuple[float, float], p1: tuple[float, float], sagitta: float, nsteps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points at the middle of ``nsteps`` equal steps along a quadratic curve
    from ``p0`` to ``p1`` bulging by ``sagitta`` px perpendicular to the chord."""
    t = (np.arange(nsteps, dtype=np.float64) + 0.5) / nsteps
    dr, dc = p1[0] - p0[0], p1[1] - p0[1]
    norm = math.hypot(dr, dc) or 1.0
    pr, pc = -dc / norm, dr / norm
    bulge = 4.0 * sagitta * t * (1.0 - t)
    rows = p0[0] + dr * t + pr * bulge
    cols = p0[1] + dc * t + pc * bulge
    return rows, cols


def _fe55(rng: np.random.Generator, cam: CameraModel, rates: Rates) -> _Drawn:
    rows, cols = cam.shape
    r = rng.uniform(0, rows)
    c = rng.uniform(0, cols)
    integral = max(rng.normal(rates.fe55_integral, rates.fe55_resolution * rates.fe55_integral), 50)
    s = rng.uniform(*rates.fe55_sigma)
    truth = InjectedObject("fe55", cam.camera, (r, c), (0, 0, 0, 0), 0.0, 0.0, 0.0, s, 1)
    return _Drawn(np.array([r]), np.array([c]), np.array([integral]), np.array([s]), truth)


def _alpha(rng: np.random.Generator, cam: CameraModel, rates: Rates) -> _Drawn:
    rows, cols = cam.shape
    s = rng.uniform(*rates.alpha_sigma)
    lo, hi = rates.alpha_length
    cap = 0.8 * min(rows, cols) - 6 * s
    length = min(rng.uniform(lo, hi), max(cap, 4.0))
    theta = rng.uniform(0, 2 * np.pi)
    half_r = abs(math.sin(theta)) * length / 2
    half_c = abs(math.cos(theta)) * length / 2
    m = 3 * s
    rc = rng.uniform(half_r + m, max(rows - half_r - m, half_r + m + 1e-3))
    cc = rng.uniform(half_c + m, max(cols - half_c - m, half_c + m + 1e-3))
    dr, dc = math.sin(theta) * length / 2, math.cos(theta) * length / 2
    p0, p1 = (rc - dr, cc - dc), (rc + dr, cc + dc)
    nsteps = max(math.ceil(length), 1)
    sag = rng.uniform(-0.04, 0.04) * length
    pr, pc = _path(p0, p1, sag, nsteps)
    # Bragg-like: more light towards the stopping end.
    t = (np.arange(nsteps) + 0.5) / nsteps
    w = 0.5 + t
    dedx = rng.uniform(*rates.alpha_dedx)
    ints = w / w.sum() * dedx * length
    truth = InjectedObject(
        "alpha",
        cam.camera,
        (rc, cc),
        (0, 0, 0, 0),
        length,
        _angle(p1[0] - p0[0], p1[1] - p0[1]),
        0.0,
        s,
        1,
    )
    return _Drawn(pr, pc, ints, np.full(nsteps, s), truth)


def _border_point(rng: np.random.Generator, side: int, rows: int, cols: int) -> tuple[float, float]:
    if side == 0:
        return (0.0, rng.uniform(0, cols))
    if side == 1:
        return (float(rows), rng.uniform(0, cols))
    if side == 2:
        return (rng.uniform(0, rows), 0.0)
    return (rng.uniform(0, rows), float(cols))


def _muon(rng: np.random.Generator, cam: CameraModel, rates: Rates) -> _Drawn:
    rows, cols = cam.shape
    p0 = p1 = (0.0, 0.0)
    for _ in range(16):
        a, b = rng.choice(4, size=2, replace=False)
        p0 = _border_point(rng, int(a), rows, cols)
        p1 = _border_point(rng, int(b), rows, cols)
        if math.hypot(p1[0] - p0[0], p1[1] - p0[1]) >= 0.6 * min(rows, cols):
            break
    length = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    nsteps = max(math.ceil(length), 1)
    pr, pc = _path(p0, p1, 0.0, nsteps)
    s = rng.uniform(*rates.muon_sigma)
    dedx = rng.uniform(*rates.muon_dedx)
    ints = np.full(nsteps, dedx * length / nsteps)
    center = ((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2)
    truth = InjectedObject(
        "muon",
        cam.camera,
        center,
        (0, 0, 0, 0),
        length,
        _angle(p1[0] - p0[0], p1[1] - p0[1]),
        0.0,
        s,
        1,
    )
    return _Drawn(pr, pc, ints, np.full(nsteps, s), truth)


def _spark(rng: np.random.Generator, cam: CameraModel) -> _Drawn:
    """A discharge: the whole frame brightens (glow) well above the spark-veto
    threshold, around a saturated core."""
    rows, cols = cam.shape
    npix = cam.npix
    # Excess over a ~100 ADU pedestal the veto needs, times a safety factor.
    glow = float(rng.uniform(1.3, 2.0) * (100.0 + SPARK_SUM_CONST / npix))
    r = rng.uniform(0.2 * rows, 0.8 * rows)
    c = rng.uniform(0.2 * cols, 0.8 * cols)
    s = rng.uniform(0.006, 0.015) * min(rows, cols) + 4.0
    peak = rng.uniform(3e4, 2e5)
    integral = peak * 2 * math.pi * s * s
    truth = InjectedObject("spark", cam.camera, (r, c), (0, 0, rows, cols), 0.0, 0.0, 0.0, s, 1)
    return _Drawn(np.array([r]), np.array([c]), np.array([integral]), np.array([s]), truth, glow)


def draw_objects(
    rng: np.random.Generator, cam: CameraModel, rates: Rates, *, physics: bool
) -> list[_Drawn]:
    """The objects of one image (none when ``physics`` is false)."""
    if not physics:
        return []
    out: list[_Drawn] = []
    out += [_fe55(rng, cam, rates) for _ in range(rng.poisson(rates.fe55))]
    out += [_alpha(rng, cam, rates) for _ in range(rng.poisson(rates.alpha))]
    out += [_muon(rng, cam, rates) for _ in range(rng.poisson(rates.muon))]
    if rates.spark > 0 and rng.random() < rates.spark:
        out.append(_spark(rng, cam))
    return out


def render_frame(
    rng: np.random.Generator,
    cam: CameraModel,
    bank: NoiseBank,
    rates: Rates,
    *,
    physics: bool,
    signal: np.ndarray,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, list[InjectedObject]]:
    """One uint16 image (rows, cols) of ``cam`` and the truth of what it holds.

    ``signal`` is a float32 scratch buffer of the image's shape, all zero on
    entry and left all zero (the caller's own: camera models are shared)."""
    drawn = draw_objects(rng, cam, rates, physics=physics)
    off_a, off_b = bank.offsets(rng)
    if out is None:
        out = np.empty(cam.shape, np.uint16)
    glow = float(sum(d.glow for d in drawn))
    kernels.compose_frame(
        cam.pedestal.reshape(-1),
        cam.noise.reshape(-1),
        bank.za,
        bank.zb,
        off_a,
        off_b,
        ZSCALE,
        glow,
        out.reshape(-1),
    )
    objects = []
    for d in drawn:
        inside = kernels.deposit_gaussians(signal, d.rows, d.cols, d.integrals, d.sigmas)
        t = d.truth
        if t.kind == "spark":
            t.integral = inside + d.glow * cam.npix
        else:
            t.integral = inside
            t.bbox = _bbox(d.rows, d.cols, float(d.sigmas[0]), cam.shape)
        objects.append(t)
    for d in drawn:
        kernels.apply_signal(
            out,
            signal,
            cam.pedestal,
            cam.noise,
            bank.za,
            bank.zb,
            off_a,
            off_b,
            ZSCALE,
            glow,
            d.rows,
            d.cols,
            d.sigmas,
        )
    return out, objects
