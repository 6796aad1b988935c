"""The numba waveform kernels against scipy/numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal._peak_finding as scipy_peaks
from cygno_online.analyzers.pmt import kernels as kern
from cygno_online.analyzers.pmt.reference import (
    synthetic_block,
    ttt_deltas_reference,
    waveform_features_reference,
)
from scipy.signal import find_peaks as scipy_find_peaks


def _stable_select_by_peak_distance(peaks, priority, distance):
    # scipy's own rule with a *stable* ordering of equal heights (numpy's
    # argsort orders ties differently on AVX-512 CPUs).
    dist = np.ceil(distance)
    n = len(peaks)
    keep = np.ones(n, dtype=bool)
    order = np.argsort(priority, kind="stable")
    for r in range(n - 1, -1, -1):
        j = order[r]
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and peaks[j] - peaks[k] < dist:
            keep[k] = False
            k -= 1
        k = j + 1
        while k < n and peaks[k] - peaks[j] < dist:
            keep[k] = False
            k += 1
    return keep


@pytest.fixture
def stable_scipy(monkeypatch):
    monkeypatch.setattr(scipy_peaks, "_select_by_peak_distance", _stable_select_by_peak_distance)


def _has_tie_conflict(x, height, distance):
    """Two height-passing local maxima of equal height closer than distance."""
    cand, _ = scipy_find_peaks(x, height=height)
    d = np.ceil(distance)
    for i in range(len(cand)):
        for j in range(i + 1, len(cand)):
            if cand[j] - cand[i] < d and x[cand[i]] == x[cand[j]]:
                return True
    return False


def test_find_peaks_random_floats_with_plateaus_identical_to_scipy():
    rng = np.random.default_rng(1234)
    total = 0
    for _ in range(1500):
        n = int(rng.integers(3, 400))
        x = rng.normal(size=n)
        for _ in range(int(rng.integers(0, 6))):
            a = int(rng.integers(0, n))
            x[a : a + int(rng.integers(1, 7))] = x[a]
        h, d, w = rng.uniform(-1, 2), rng.uniform(1, 12), rng.uniform(0, 5)
        expected, _ = scipy_find_peaks(x, height=h, distance=d, width=w)
        got = kern.find_peaks(x, h, d, w)
        np.testing.assert_array_equal(got, expected)
        total += len(expected)
    assert total > 5000  # the comparison really exercised peaks


@pytest.mark.parametrize(
    "x, h, d, w",
    [
        ([0, 1, 1, 1, 0], 0.5, 1, 0),  # odd plateau -> middle
        ([0, 2, 2, 2, 2, 0], 0.5, 1, 0),  # even plateau -> left of middle
        ([0, 1, 1], 0.5, 1, 0),  # plateau at the edge is no peak
        ([3, 1, 2, 1, 5], 0, 1, 0),  # edges are never peaks
        ([0, 5, 0, 4, 0, 6, 0], 0, 3, 0),  # distance keeps the highest
        ([0, 5, 0, 5, 0], 0, 3, 0),  # tie: the later one wins
        ([0, 1, 9, 1, 0, 3, 0], 0, 1, 1.5),  # width drops the narrow one
        ([0, 4, 4, 4, 0], 4.0, 1, 0),  # height is inclusive
    ],
)
def test_find_peaks_hand_cases(x, h, d, w):
    x = np.asarray(x, dtype=np.float64)
    expected, _ = scipy_find_peaks(x, height=h, distance=d, width=w)
    np.testing.assert_array_equal(kern.find_peaks(x, float(h), float(d), float(w)), expected)


def test_find_peaks_integer_data_matches_scipy_up_to_tie_order(stable_scipy):
    rng = np.random.default_rng(99)
    original = scipy_peaks.__dict__  # patched by the fixture
    assert original["_select_by_peak_distance"] is _stable_select_by_peak_distance
    for _ in range(1500):
        n = int(rng.integers(3, 300))
        x = rng.integers(0, 8, n).astype(np.float64)
        h, d, w = rng.uniform(0, 5), int(rng.integers(1, 10)), rng.uniform(0, 3)
        expected, _ = scipy_find_peaks(x, height=h, distance=d, width=w)
        np.testing.assert_array_equal(kern.find_peaks(x, h, float(d), w), expected)


def test_find_peaks_integer_data_identical_to_unpatched_scipy_without_ties():
    rng = np.random.default_rng(7)
    compared = 0
    for _ in range(1500):
        n = int(rng.integers(3, 300))
        x = rng.integers(0, 8, n).astype(np.float64)
        h, d, w = rng.uniform(0, 5), int(rng.integers(1, 10)), rng.uniform(0, 3)
        if _has_tie_conflict(x, h, d):
            continue
        expected, _ = scipy_find_peaks(x, height=h, distance=d, width=w)
        np.testing.assert_array_equal(kern.find_peaks(x, h, float(d), w), expected)
        compared += 1
    assert compared > 100


def test_waveform_features_match_reference_on_real_like_blocks(stable_scipy):
    rng = np.random.default_rng(5)
    for ntr, nch, ns, nbase in [(7, 8, 1024, 100), (3, 8, 4000, 400), (1, 8, 50, 100)]:
        wf = synthetic_block(rng, ntr, nch, ns)
        chans = np.arange(1, 8, dtype=np.int64)
        args = (chans, nbase, -1.0, 5.0, 10.0, 2.0, 4095)
        out = np.zeros((ntr, len(chans), kern.NFEATURES))
        sig = np.zeros((ntr, len(chans), ns), dtype=np.float32)
        kern.waveform_features(wf, *args, out, sig)
        ref = waveform_features_reference(wf, *args)
        for col in (kern.F_BASELINE, kern.F_RMS, kern.F_AMPLITUDE, kern.F_INTEGRAL):
            np.testing.assert_allclose(out[..., col], ref[..., col], rtol=1e-9, atol=1e-6)
        for col in (kern.F_PEAK_SAMPLE, kern.F_TOT, kern.F_NPEAKS, kern.F_SATURATED):
            np.testing.assert_array_equal(out[..., col], ref[..., col])
        if ns > nbase:
            assert out[..., kern.F_NPEAKS].sum() > ntr
        base = out[..., kern.F_BASELINE][..., None]
        np.testing.assert_allclose(
            sig, -(wf[:, 1:8].astype(np.float64) - base), rtol=1e-6, atol=1e-3
        )


def test_waveform_features_positive_polarity_and_rails():
    wf = np.full((2, 3, 200), 100, dtype=np.uint16)
    wf[0, 1, 120:125] = [150, 300, 400, 300, 150]
    wf[1, 2, 50] = 4095  # upper rail
    wf[1, 1, 60] = 0  # lower rail
    chans = np.array([1, 2], dtype=np.int64)
    out = np.zeros((2, 2, kern.NFEATURES))
    kern.waveform_features(
        wf, chans, 100, 1.0, 5.0, 1.0, 0.0, 4095, out, np.zeros((0, 0, 0), np.float32)
    )
    assert out[0, 0, kern.F_BASELINE] == 100.0 and out[0, 0, kern.F_RMS] == 0.0
    assert out[0, 0, kern.F_AMPLITUDE] == 300.0 and out[0, 0, kern.F_PEAK_SAMPLE] == 122
    assert out[0, 0, kern.F_NPEAKS] == 1 and out[0, 0, kern.F_TOT] == 5
    assert out[0, 0, kern.F_INTEGRAL] == 50 + 200 + 300 + 200 + 50
    assert out[0, 1, kern.F_NPEAKS] == 0 and out[0, 1, kern.F_SATURATED] == 0
    assert out[1, 0, kern.F_SATURATED] == 1 and out[1, 1, kern.F_SATURATED] == 1


def test_ttt_reference_unwraps():
    ttt = np.array([2**31 - 10, 5, 100], dtype=np.uint32)
    np.testing.assert_array_equal(ttt_deltas_reference(ttt), [15, 95])
