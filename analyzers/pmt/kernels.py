"""Numba kernels of the PMT/GEM waveform analyzer.

Everything here is a small pure function on numpy arrays. The main entry,
:func:`waveform_features`, processes a whole ``(ntriggers, nchannels,
nsamples)`` digitizer block in one call, so the Python glue pays the dispatch
cost once per board and image, not once per waveform.

Peak finding replicates ``scipy.signal.find_peaks(x, height=h, distance=d,
width=w)`` step by step (local maxima with plateau midpoints, height filter,
distance filter by decreasing peak height, prominence bases, width at half
prominence, width filter). The only freedom scipy leaves is the order of
*equal* heights in the distance step: scipy uses numpy's unstable
``argsort``, whose tie order depends on the CPU (AVX-512 builds of numpy 2 sort
ties differently from the portable insertion sort). We use the stable order:
among equal heights the later peak wins, which is what numpy's portable
quicksort gives for small inputs. See tests/pmt/test_kernels.py.
"""

from __future__ import annotations

import numba
import numpy as np

# Columns of the feature array returned by waveform_features.
F_BASELINE = 0  # mean of the first nbase samples (ADC)
F_RMS = 1  # population RMS of those samples (ADC)
F_AMPLITUDE = 2  # max of the baseline-subtracted, polarity-corrected signal (ADC)
F_PEAK_SAMPLE = 3  # index of that maximum (first one)
F_INTEGRAL = 4  # sum of the signal over the whole window (ADC x samples)
F_TOT = 5  # samples with signal > nsigma*rms
F_NPEAKS = 6  # peaks as scipy.signal.find_peaks finds them
F_SATURATED = 7  # 1.0 if any raw sample sits on an ADC rail
NFEATURES = 8


@numba.njit(nogil=True, cache=True)
def local_maxima(x, mids, height):
    """Indices of local maxima of ``x`` with ``x >= height`` into ``mids`` (a
    plateau gives its midpoint, rounded down); returns how many. Edges are
    never maxima and a plateau touching the last sample is not a maximum.

    Testing the height before scanning a plateau finds exactly scipy's maxima
    followed by its height filter: skipping a low plateau sample by sample
    instead of jumping over it detects nothing inside it (its samples are not
    above their left neighbour) and the same sample after it."""
    m = 0
    i = 1
    i_max = x.shape[0] - 1
    while i < i_max:
        if x[i] >= height and x[i - 1] < x[i]:
            i_ahead = i + 1
            while i_ahead < i_max and x[i_ahead] == x[i]:
                i_ahead += 1
            if x[i_ahead] < x[i]:
                mids[m] = (i + i_ahead - 1) // 2
                m += 1
                i = i_ahead
        i += 1
    return m


@numba.njit(nogil=True, cache=True)
def select_by_distance(peaks, n, x, distance, keep):
    """scipy's distance rule on ``peaks[:n]``: visit peaks from the highest
    down, each kept peak removes its lower neighbours closer than ``distance``
    samples. Fills ``keep`` (1/0)."""
    dist = np.ceil(distance)
    for i in range(n):
        keep[i] = 1
    priority = np.empty(n, dtype=np.float64)
    for i in range(n):
        priority[i] = x[peaks[i]]
    order = np.argsort(priority, kind="mergesort")
    for r in range(n - 1, -1, -1):
        j = order[r]
        if keep[j] == 0:
            continue
        k = j - 1
        while k >= 0 and peaks[j] - peaks[k] < dist:
            keep[k] = 0
            k -= 1
        k = j + 1
        while k < n and peaks[k] - peaks[j] < dist:
            keep[k] = 0
            k += 1


@numba.njit(nogil=True, cache=True)
def peak_width(x, peak, rel_height):
    """Width (samples) of the peak at ``peak`` at ``rel_height`` of its
    prominence, with scipy's bases (no window) and linear interpolation."""
    i_max = x.shape[0] - 1
    xp = x[peak]
    left_base = peak
    left_min = xp
    i = peak
    while i >= 0 and x[i] <= xp:
        if x[i] < left_min:
            left_min = x[i]
            left_base = i
        i -= 1
    right_base = peak
    right_min = xp
    i = peak
    while i <= i_max and x[i] <= xp:
        if x[i] < right_min:
            right_min = x[i]
            right_base = i
        i += 1
    prominence = xp - max(left_min, right_min)
    height = xp - prominence * rel_height
    i = peak
    while left_base < i and height < x[i]:
        i -= 1
    left_ip = float(i)
    if x[i] < height:
        left_ip += (height - x[i]) / (x[i + 1] - x[i])
    i = peak
    while i < right_base and height < x[i]:
        i += 1
    right_ip = float(i)
    if x[i] < height:
        right_ip -= (height - x[i]) / (x[i - 1] - x[i])
    return right_ip - left_ip


@numba.njit(nogil=True, cache=True)
def find_peaks_into(x, height, distance, min_width, mids, keep):
    """``scipy.signal.find_peaks(x, height=height, distance=distance,
    width=min_width)`` writing the peak indices to the front of ``mids``
    (scratch of length >= len(x)//2 + 1; ``keep`` the same); returns the count."""
    m = local_maxima(x, mids, height)
    if m > 1:
        select_by_distance(mids, m, x, distance, keep)
        n = 0
        for i in range(m):
            if keep[i]:
                mids[n] = mids[i]
                n += 1
        m = n
    n = 0
    for i in range(m):
        if peak_width(x, mids[i], 0.5) >= min_width:
            mids[n] = mids[i]
            n += 1
    return n


@numba.njit(nogil=True, cache=True)
def find_peaks(x, height, distance, min_width):
    """Allocating convenience form of :func:`find_peaks_into` (tests, bench)."""
    size = x.shape[0] // 2 + 1
    mids = np.empty(size, dtype=np.int64)
    keep = np.empty(size, dtype=np.uint8)
    n = find_peaks_into(x, height, distance, min_width, mids, keep)
    return mids[:n].copy()


@numba.njit(nogil=True, cache=True)
def waveform_features(wf, chans, nbase, sign, nsigma, distance, min_width, sat_high, out, signal):
    """Features of every (trigger, selected channel) of one board block.

    ``wf`` (ntriggers, nchannels, nsamples) uint16; ``chans`` int64 channel
    numbers to analyse; ``nbase`` baseline samples; ``sign`` -1.0 for negative
    pulses; ``sat_high`` the upper ADC rail (adcmax - 1; 0 is the lower rail).
    ``out`` (ntriggers, len(chans), NFEATURES) float64 receives the features;
    ``signal`` (ntriggers, len(chans), nsamples) float32 receives the
    baseline-subtracted, polarity-corrected waveforms (pass a (0, 0, 0) array
    to skip them).

    Sums, extremes and the saturation test run on the integer samples (exact,
    and the loops vectorise); the polarity-corrected signal is monotonic in
    the raw value, so its maximum and first argmax are those of the raw
    extreme, bit for bit.
    """
    ntr = wf.shape[0]
    ns = wf.shape[2]
    nsel = chans.shape[0]
    nb = min(nbase, ns)
    x = np.empty(ns, dtype=np.float64)
    size = ns // 2 + 1
    mids = np.empty(size, dtype=np.int64)
    keep = np.empty(size, dtype=np.uint8)
    want_signal = signal.shape[0] == ntr and ntr > 0
    for t in range(ntr):
        for c in range(nsel):
            w = wf[t, chans[c]]
            s1 = 0
            s2 = 0
            for i in range(nb):
                v = np.int64(w[i])
                s1 += v
                s2 += v * v
            base = s1 / nb if nb > 0 else 0.0
            # exact integer variance: n^2 var = n*s2 - s1^2 (fits int64 for uint16 data)
            rms = np.sqrt(max(nb * s2 - s1 * s1, 0) / (nb * nb)) if nb > 0 else 0.0
            thr = nsigma * rms
            lo = np.int64(65535)
            hi = np.int64(0)
            total = 0
            for i in range(ns):
                v = np.int64(w[i])
                total += v
                lo = min(lo, v)
                hi = max(hi, v)
            tot = 0
            for i in range(ns):
                xv = sign * (w[i] - base)
                x[i] = xv
                tot += xv > thr
            extreme = lo if sign < 0 else hi
            at = 0
            for i in range(ns):
                if w[i] == extreme:
                    at = i
                    break
            if want_signal:
                for i in range(ns):
                    signal[t, c, i] = x[i]
            o = out[t, c]
            o[F_BASELINE] = base
            o[F_RMS] = rms
            o[F_AMPLITUDE] = sign * (extreme - base) if ns > 0 else 0.0
            o[F_PEAK_SAMPLE] = at
            o[F_INTEGRAL] = sign * (total - ns * base)
            o[F_TOT] = tot
            o[F_NPEAKS] = find_peaks_into(x, thr, distance, min_width, mids, keep) if ns > 2 else 0
            o[F_SATURATED] = 1.0 if (ns > 0 and (hi >= sat_high or lo == 0)) else 0.0
