"""The incremental boundary matcher against the per-map SciPy assignment: same cardinality and same
optimal cost at every map of a series, in threshold order and in an order where pixels come back."""

import numpy as np
import pytest

from matbackprop.metrics import HumanBoundaries, evaluate_ucm_boundaries, thin
from matbackprop.metrics import boundaries as B
from matbackprop.metrics.augmenting_paths import COMPILED, AssignmentState
from matbackprop.metrics.boundary_series import boundary_counts_series, resolve_matcher, series_matches


def _soft_map(rng, h, w):
    """A boundary-strength map with long curves of different strengths plus clutter."""
    p = np.zeros((h, w))
    yy, xx = np.mgrid[:h, :w]
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, min(h, w) / 2)
        ring = np.abs(np.hypot(yy - cy, xx - cx) - r) < 0.8
        p = np.maximum(p, ring * rng.uniform(0.2, 1.0))
    clutter = rng.random((h, w)) < 0.03
    return np.maximum(p, clutter * rng.uniform(0, 1, (h, w)))


def _human(rng, soft, k=3):
    """Annotators that draw the strong curves, shifted by up to a pixel, plus a few curves of their own."""
    maps = []
    for _ in range(k):
        b = np.roll(soft > 0.5, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
        b |= _soft_map(rng, *soft.shape) > 0.9
        maps.append(thin(b))
    return maps


def _cost(m, h, shape):
    y1, x1 = np.divmod(m, shape[1])
    y2, x2 = np.divmod(h, shape[1])
    return float(np.sum(np.rint(np.hypot(y1 - y2, x1 - x2) * 100.0) + 1.0))


def _check_series(maps, human):
    res = series_matches(maps, human)
    for b, step in zip(maps, res):
        for nb, (m, h) in zip(human.neighbourhoods, step):
            p1, p2 = B._matches(b, nb, True)
            # a matching: one to one, between pixels of the two maps, within the radius
            assert np.unique(m).size == m.size and np.unique(h).size == h.size
            assert b.flat[m].all() and np.isin(h, nb.flat).all()
            y1, x1 = np.divmod(m, b.shape[1])
            y2, x2 = np.divmod(h, b.shape[1])
            assert (np.hypot(y1 - y2, x1 - x2) <= human.radius + 1e-12).all()
            # maximum cardinality, and least cost among those: the SciPy solver's optimum
            assert m.size == p1.size
            assert _cost(m, h, b.shape) == _cost(p1, p2, b.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_series_equals_the_per_map_optimum(seed):
    rng = np.random.default_rng(seed)
    soft = _soft_map(rng, 48, 64)
    human = HumanBoundaries(_human(rng, soft), max_dist=0.05)
    maps = [thin(soft >= t) for t in np.linspace(0.05, 0.95, 12)]
    _check_series(maps, human)


def test_pixels_that_come_back_are_matched_again():
    # a non-monotone order switches pixels off and back on (restore_columns)
    rng = np.random.default_rng(3)
    soft = _soft_map(rng, 40, 50)
    human = HumanBoundaries(_human(rng, soft), max_dist=0.05)
    ts = [0.9, 0.1, 0.6, 0.05, 0.95, 0.3, 0.3, 0.7, 0.0]
    _check_series([thin(soft >= t) for t in ts], human)


def test_degenerate_series():
    h = np.zeros((12, 12), dtype=bool)
    h[:, 5] = True
    empty = np.zeros_like(h)
    far = np.zeros_like(h)
    far[:, 11] = True  # out of reach of the annotator at this tolerance
    counts = boundary_counts_series([empty, far, h, empty], HumanBoundaries([h, empty], max_dist=0.01))
    assert [(c.cnt_r, c.cnt_p, c.sum_p) for c in counts] == [(0, 0, 0), (0, 0, 12), (12, 12, 12), (0, 0, 0)]
    assert all(c.sum_r == 12 for c in counts)
    with pytest.raises(ValueError, match="shape"):
        series_matches([np.zeros((3, 3), dtype=bool)], HumanBoundaries([h]))


def test_ucm_counts_agree_between_matchers():
    rng = np.random.default_rng(4)
    soft = _soft_map(rng, 30, 40)
    ucm2 = np.zeros((61, 81))
    ucm2[2::2, 2::2] = np.round(soft, 1)  # strengths at pixel positions of the doubled grid
    human = HumanBoundaries(_human(rng, soft), max_dist=0.05)
    a = evaluate_ucm_boundaries(ucm2, human, nthresh=19, matcher="incremental")
    b = evaluate_ucm_boundaries(ucm2, human, nthresh=19, matcher="scipy")
    np.testing.assert_array_equal(a.cnt_r, b.cnt_r)
    np.testing.assert_array_equal(a.sum_r, b.sum_r)
    np.testing.assert_array_equal(a.sum_p, b.sum_p)
    # precision counts may differ only where pairings of equal cost tie
    assert np.all(np.abs(a.cnt_p - b.cnt_p) <= 0.05 * np.maximum(b.sum_p, 1))
    assert a.cnt_r.max() > 0


def test_matcher_names():
    assert resolve_matcher("scipy") == "scipy" and resolve_matcher("incremental") == "incremental"
    assert resolve_matcher() == ("incremental" if COMPILED else "scipy")
    with pytest.raises(ValueError, match="matcher"):
        resolve_matcher("hungarian")  # type: ignore[arg-type]


def test_assignment_state_solves_a_small_dense_problem():
    # exhaustive check of the kernel on its own: 4 x 4 dense costs, all 24 permutations
    from itertools import permutations

    rng = np.random.default_rng(5)
    c = rng.integers(1, 20, (4, 4)).astype(float)
    s = AssignmentState(np.arange(0, 17, 4), np.tile(np.arange(4), 4), c.ravel())
    s.augment(np.arange(4))
    got = c[np.arange(4), s.col_of_row].sum()
    assert got == min(c[np.arange(4), list(p)].sum() for p in permutations(range(4)))
    # the potentials certify it: reduced costs >= 0, zero on the assignment
    reduced = c - s.u[:, None] - s.v[None, :]
    assert reduced.min() >= 0 and np.all(reduced[np.arange(4), s.col_of_row] == 0)
