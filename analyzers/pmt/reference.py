"""Plain numpy/scipy reference of the PMT waveform features.

The oracle of tests/pmt and the "reference" column of ``cygno-online bench
pmt``: the same quantities as :func:`kernels.waveform_features`, written the
obvious way.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.signal import find_peaks

from . import kernels as kern


def waveform_features_reference(
    wf: np.ndarray,
    chans: np.ndarray,
    nbase: int,
    sign: float,
    nsigma: float,
    distance: float,
    min_width: float,
    sat_high: int,
) -> np.ndarray:
    """(ntriggers, len(chans), NFEATURES) float64, columns as in ``kernels``."""
    ntr, _, ns = wf.shape
    out = np.zeros((ntr, len(chans), kern.NFEATURES))
    nb = min(nbase, ns)
    for t in range(ntr):
        for c, ch in enumerate(chans):
            raw = wf[t, ch]
            base = float(np.mean(raw[:nb]))
            rms = float(np.std(raw[:nb]))
            x = sign * (raw.astype(np.float64) - base)
            thr = nsigma * rms
            peaks, _ = find_peaks(x, height=thr, distance=distance, width=min_width)
            o = out[t, c]
            o[kern.F_BASELINE] = base
            o[kern.F_RMS] = rms
            o[kern.F_AMPLITUDE] = x.max()
            o[kern.F_PEAK_SAMPLE] = int(np.argmax(x))
            o[kern.F_INTEGRAL] = x.sum()
            o[kern.F_TOT] = np.count_nonzero(x > thr)
            o[kern.F_NPEAKS] = len(peaks)
            o[kern.F_SATURATED] = float(bool(np.any((raw >= sat_high) | (raw == 0))))
    return out


def ttt_deltas_reference(ttt: np.ndarray, bits: int = 31) -> np.ndarray:
    """Tick differences of consecutive trigger time tags, unwrapping a counter
    of ``bits`` bits with Python integers."""
    period = 1 << bits
    values = [int(v) % period for v in ttt]
    return np.array([(b - a) % period for a, b in itertools.pairwise(values)], dtype=np.int64)


def synthetic_block(
    rng: np.random.Generator,
    ntriggers: int,
    nchannels: int,
    nsamples: int,
    *,
    baseline: float = 3850.0,
    noise: float = 2.0,
    max_pulses: int = 4,
    adcmax: int = 4096,
) -> np.ndarray:
    """A realistic-looking digitizer block for tests and the bench: integer
    noise around ``baseline`` plus negative pulses (fast rise, exponential
    tail) of random amplitude, some of them clipped at the lower ADC rail."""
    t = np.arange(nsamples, dtype=np.float64)
    wf = baseline + rng.normal(0.0, noise, (ntriggers, nchannels, nsamples))
    for tr in range(ntriggers):
        for ch in range(1, nchannels):
            for _ in range(int(rng.integers(0, max_pulses + 1))):
                t0 = rng.uniform(0.15, 0.9) * nsamples
                amp = rng.choice([rng.uniform(15, 200), rng.uniform(200, baseline * 1.2)])
                tau = rng.uniform(3, 25)
                dt = t - t0
                shape = np.where(dt >= 0, np.exp(-np.clip(dt, 0, None) / tau), 0.0)
                shape *= 1.0 - np.exp(-np.clip(dt, 0, None) / 1.5)
                wf[tr, ch] -= amp * shape
    return np.clip(np.rint(wf), 0, adcmax - 1).astype(np.uint16)
