"""Numba kernels of the camera image generator (small pure functions on numpy
arrays; the orchestration lives in :mod:`cygno_online.simulate.camera`).

A pixel value is ``rint(ped + sigma * (za[off_a+i] + zb[off_b+i]) * zscale +
glow + signal)`` clipped to 0..65535, where ``za``/``zb`` are two fixed banks of
quantised standard-normal numbers and ``i`` the flat pixel index. Only the two
offsets change from frame to frame, so a frame costs one pass over memory and
no random-number generation (see camera.py for why this is statistically
sound).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def compose_frame(ped, sig, za, zb, off_a, off_b, zscale, glow, out):  # pragma: no cover
    """Pedestal + noise (+ a uniform spark glow) into ``out`` (flat uint16).

    float32 arithmetic and branch-free clipping let LLVM vectorise the loop
    (~2 ms for a LIME frame instead of ~15 ms with float64 and branches)."""
    n = out.size
    a = za[off_a : off_a + n]
    b = zb[off_b : off_b + n]
    zs = np.float32(zscale)
    g = np.float32(glow + 0.5)
    lo = np.float32(0.0)
    hi = np.float32(65535.0)
    for i in range(n):
        v = ped[i] + sig[i] * (np.float32(a[i]) + np.float32(b[i])) * zs + g
        # +0.5 then truncation of a non-negative value = round half up
        out[i] = np.uint16(min(max(v, lo), hi))


@numba.njit(nogil=True, cache=True)
def deposit_gaussians(signal, rows, cols, integrals, sigmas):  # pragma: no cover
    """Add one normalised 2-D Gaussian per deposit to ``signal`` (2-D float32).

    Each deposit spreads exactly ``integrals[k]`` over its +-3.5 sigma window
    (the Gaussian is separable: two 1-D profiles, no exp per pixel); the part
    of the window outside the image is lost. Returns the amount that landed
    inside the image.
    """
    nr, nc = signal.shape
    inside = 0.0
    for k in range(rows.size):
        s = sigmas[k]
        h = math.ceil(3.5 * s)
        r0 = rows[k]
        c0 = cols[k]
        ir = math.floor(r0)
        ic = math.floor(c0)
        inv = 1.0 / (2.0 * s * s)
        m = 2 * h + 1
        ey = np.empty(m)
        ex = np.empty(m)
        sy = 0.0
        sx = 0.0
        for d in range(m):
            yr = ir + d - h + 0.5 - r0
            xc = ic + d - h + 0.5 - c0
            ey[d] = math.exp(-yr * yr * inv)
            ex[d] = math.exp(-xc * xc * inv)
            sy += ey[d]
            sx += ex[d]
        if sy <= 0.0 or sx <= 0.0:
            continue
        scale = integrals[k] / (sy * sx)
        for dr in range(m):
            r = ir + dr - h
            if r < 0 or r >= nr:
                continue
            wy = scale * ey[dr]
            for dc in range(m):
                c = ic + dc - h
                if c < 0 or c >= nc:
                    continue
                w = wy * ex[dc]
                signal[r, c] += w
                inside += w
    return inside


@numba.njit(nogil=True, cache=True)
def apply_signal(
    out, signal, ped, sig, za, zb, off_a, off_b, zscale, glow, rows, cols, sigmas
):  # pragma: no cover
    """Re-digitise the pixels under every deposit window with the signal added
    (same noise as :func:`compose_frame`, so rounding stays unbiased) and clear
    ``signal`` there. Windows may overlap: a cleared pixel is skipped."""
    nr, nc = out.shape
    zs = np.float32(zscale)
    g = np.float32(glow + 0.5)
    lo = np.float32(0.0)
    hi = np.float32(65535.0)
    for k in range(rows.size):
        h = math.ceil(3.5 * sigmas[k])
        ir = math.floor(rows[k])
        ic = math.floor(cols[k])
        for r in range(max(ir - h, 0), min(ir + h + 1, nr)):
            for c in range(max(ic - h, 0), min(ic + h + 1, nc)):
                s = signal[r, c]
                if s == 0.0:
                    continue
                signal[r, c] = 0.0
                i = r * nc + c
                v = (
                    ped[r, c]
                    + sig[r, c] * (np.float32(za[off_a + i]) + np.float32(zb[off_b + i])) * zs
                    + g
                    + s
                )
                out[r, c] = np.uint16(min(max(v, lo), hi))


@numba.njit(nogil=True, cache=True)
def add_pulses(wave, starts, amps, rise, decay):  # pragma: no cover
    """Subtract a pulse ``amp * (1 - exp(-t/rise)) * exp(-t/decay)`` starting at
    sample ``starts[k]`` from channel row ``k`` of ``wave`` (float32, rows x
    samples). Times are in samples."""
    ns = wave.shape[1]
    for k in range(starts.size):
        a = amps[k]
        if a == 0.0:
            continue
        t0 = starts[k]
        j0 = math.ceil(t0)
        if j0 < 0:
            j0 = 0
        for j in range(j0, ns):
            t = j - t0
            v = a * (1.0 - math.exp(-t / rise[k])) * math.exp(-t / decay[k])
            if t > 8.0 * decay[k] + 8.0 * rise[k]:
                break
            wave[k, j] -= v
