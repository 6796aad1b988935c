"""The numba DBSCAN gives labels identical to scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from camera_framegen import Gen
from cygno_online.analyzers.camera import kernels as kn
from cygno_online.analyzers.camera import reference as kref
from cygno_online.analyzers.camera.pedestals import threshold_map
from hypothesis import given, settings
from hypothesis import strategies as st


def _both(pr, pc, eps, ms):
    return kn.dbscan(pr, pc, eps, ms), kref.dbscan_points(pr, pc, eps, ms)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("eps", "ms"), [(2, 10), (1, 3), (2.5, 5), (3, 12), (1.5, 1)])
def test_random_maps_identical(seed, eps, ms):
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.05, 0.5)
    m = rng.random((60, 70)) < density
    pr, pc = np.nonzero(m)
    got, ref = _both(pr, pc, eps, ms)
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=60, deadline=None)
@given(
    pts=st.lists(st.tuples(st.integers(0, 25), st.integers(0, 25)), min_size=0, max_size=200),
    eps=st.sampled_from([0.5, 1, 2, 2.7, 4]),
    ms=st.integers(1, 12),
)
def test_arbitrary_point_lists_identical(pts, eps, ms):
    # any order, duplicates allowed: border points reachable from several
    # clusters must get the same label as sklearn gives them
    a = np.array(pts, dtype=np.int64).reshape(-1, 2)
    got, ref = _both(a[:, 0].copy(), a[:, 1].copy(), eps, ms)
    np.testing.assert_array_equal(got, ref)


def test_border_point_goes_to_first_cluster():
    # two cores (min_samples 2, eps 1) at cols 0-1 and 3-4 share border col 2?
    # point layout along one row: 0 1 _ 3 4 plus the border point at col 2
    pr = np.zeros(5, np.int64)
    pc = np.array([3, 4, 2, 0, 1], np.int64)
    got, ref = _both(pr, pc, 1, 3)
    np.testing.assert_array_equal(got, ref)
    assert got[2] == got[0]  # the cluster seeded first (index 0) takes the border


@pytest.mark.parametrize("seed", [5, 6])
def test_real_frame_identical(seed):
    g = Gen((512, 512), seed=seed)
    raw, _ = g.frame(n_fe=6, n_alpha=1, n_muon=1)
    thr = threshold_map(g.sigma, 1.3)
    z = kref.zero_suppress(raw, g.mean, thr, 5000, (0, 512, 0, 512))
    rb = kref.rebin_mean(kref.median2x2(z), 4)
    for nb in (0.0, 1.2):
        rbf = kref.neighbour_filter(rb, nb, 3 if nb else 1)
        pr, pc = np.nonzero(rbf)
        got, ref = _both(pr, pc, 2, 10)
        np.testing.assert_array_equal(got, ref)
        assert got.max() >= 5
