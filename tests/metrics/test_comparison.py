"""Paired bootstrap of a covering-ODS gap (metrics/comparison.py), on counts worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from matbackprop.metrics import ImageRegionEval, collect_regions, covering_ods_gap


def _image(cnt, tot):
    """Region counts of one image at len(cnt) thresholds (only covering matters here)."""
    cnt, tot = np.asarray(cnt, float), np.asarray(tot, float)
    t = np.arange(1, cnt.size + 1, dtype=float)
    z = np.zeros(cnt.size)
    return ImageRegionEval(t, cnt, tot, cnt, tot, z, z, float(cnt.max()))


def test_observed_gap_is_the_difference_of_the_pooled_ods():
    rng = np.random.default_rng(3)
    tot = rng.integers(50, 200, size=(30, 1)) * np.ones(4)
    a = [_image(rng.uniform(0.3, 0.9, 4) * t, t) for t in tot]
    b = [_image(rng.uniform(0.3, 0.9, 4) * t, t) for t in tot]
    g = covering_ods_gap(a, b, resamples=500)
    assert g.gap == pytest.approx(collect_regions(a).cover_ods - collect_regions(b).cover_ods, abs=1e-12)
    assert g.images == 30 and g.resamples == 500 and g.low < g.high


def test_swapping_the_methods_mirrors_the_interval():
    rng = np.random.default_rng(0)
    a = [_image(rng.uniform(0, 10, 3), [10, 10, 10]) for _ in range(25)]
    b = [_image(rng.uniform(0, 10, 3), [10, 10, 10]) for _ in range(25)]
    ab, ba = covering_ods_gap(a, b, seed=7), covering_ods_gap(b, a, seed=7)
    assert ab.gap == pytest.approx(-ba.gap)
    assert ab.low == pytest.approx(-ba.high) and ab.high == pytest.approx(-ba.low)


def test_a_method_ahead_on_every_image_is_ahead_in_every_resample():
    a = [_image([6, 8], [10, 10]), _image([5, 9], [10, 10]), _image([7, 7], [10, 10])]
    b = [_image([6, 7], [10, 10]), _image([5, 8], [10, 10]), _image([6, 6], [10, 10])]
    g = covering_ods_gap(a, b, resamples=200)
    assert g.gap == pytest.approx(0.8 - 0.7) and g.share_ahead == 1.0 and g.low > 0


def test_identical_methods_have_a_zero_interval():
    a = [_image([1, 4], [5, 5]), _image([3, 2], [5, 5])]
    g = covering_ods_gap(a, list(a), resamples=100)
    assert (g.gap, g.low, g.high, g.share_ahead) == (0.0, 0.0, 0.0, 0.0)


def test_one_image_drawn_twice_counts_twice():
    # the ODS of a resample pools each drawn image's counts as many times as it was drawn
    a = [_image([9, 0], [10, 10]), _image([0, 1], [100, 100])]
    b = [_image([0, 0], [10, 10]), _image([0, 0], [100, 100])]
    g = covering_ods_gap(a, b, resamples=2000, seed=1)
    # possible draws: {a0, a0}: 0.9, {a0, a1}: 9/110, {a1, a1}: 0.01; b is always 0
    assert g.high == pytest.approx(0.9) and g.low == pytest.approx(0.01)


def test_bad_input_is_refused():
    a = [_image([1, 2], [5, 5])]
    with pytest.raises(ValueError, match="same, non-zero number"):
        covering_ods_gap(a, [])
    with pytest.raises(ValueError, match="level"):
        covering_ods_gap(a, a, level=1.0)
    with pytest.raises(ValueError, match="same thresholds"):
        covering_ods_gap(a, [_image([1, 2, 3], [5, 5, 5])])
