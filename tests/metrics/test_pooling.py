"""Data-set pooling (metrics/pooling.py): ODS / OIS / best / AP from per-image counts, worked out by hand;
and the metrics.bsds namespace over ucm / image_eval / pooling."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from matbackprop.metrics import (
    ImageBoundaryEval,
    ImageRegionEval,
    bsds,
    collect_boundaries,
    collect_regions,
    image_eval,
    pooling,
    ucm,
)


def test_count_ratio_reads_zero_over_zero_as_zero():
    r = pooling.count_ratio([3, 0, 2], [4, 0, 8])
    assert r.dtype == np.float64
    assert np.array_equal(r, [0.75, 0.0, 0.25])


def test_fmeasure_is_zero_where_precision_and_recall_are():
    assert np.allclose(pooling.fmeasure([0.5, 0.0, 1.0], [0.5, 0.0, 0.25]), [0.5, 0.0, 0.4])


def test_collect_regions_pools_counts_not_ratios():
    th = np.array([1.0, 2.0])
    a = image_eval.ImageRegionEval(
        th,
        np.array([1.0, 3.0]),
        np.array([4.0, 4.0]),
        np.ones(2),
        np.ones(2),
        np.array([0.5, 0.6]),
        np.array([2.0, 1.0]),
        3.0,
    )
    b = image_eval.ImageRegionEval(
        th,
        np.array([0.0, 1.0]),
        np.array([2.0, 2.0]),
        np.ones(2),
        np.ones(2),
        np.array([0.7, 0.8]),
        np.array([1.5, 1.0]),
        1.0,
    )
    res = pooling.collect_regions([a, b])
    assert res.cover_ods == pytest.approx(4 / 6) and res.cover_threshold == 2.0  # (3 + 1) / (4 + 2)
    assert res.cover_best == pytest.approx((3.0 + 1.0) / 6)
    assert res.pri_ods == pytest.approx(0.7) and res.vi_ods == pytest.approx(1.0)


def test_bsds_namespace_keeps_every_public_name():
    for module in (ucm, image_eval, pooling):
        for name in module.__all__:
            assert getattr(bsds, name) is getattr(module, name), name
    assert set(bsds.__all__) == {n for m in (ucm, image_eval, pooling) for n in m.__all__}


def test_collect_regions_ods_ois_best_by_hand():
    # Two images, two levels each, counts chosen by hand.
    im1 = ImageRegionEval(
        np.array([1.0, 2.0]),
        np.array([6.0, 8.0]),
        np.array([10.0, 10.0]),
        np.ones(2),
        np.ones(2),
        np.array([0.7, 0.9]),
        np.array([2.0, 1.0]),
        cnt_r_best=9.0,
    )
    im2 = ImageRegionEval(
        np.array([1.0, 2.0]),
        np.array([9.0, 2.0]),
        np.array([10.0, 10.0]),
        np.ones(2),
        np.ones(2),
        np.array([0.8, 0.6]),
        np.array([1.0, 3.0]),
        cnt_r_best=9.5,
    )
    r = collect_regions([im1, im2])
    # pooled covering per level: 15/20, 10/20 -> ODS 0.75 at level 1
    assert r.cover_ods == pytest.approx(0.75) and r.cover_threshold == 1.0
    # OIS: image 1 at level 2 (8), image 2 at level 1 (9): 17/20
    assert r.cover_ois == pytest.approx(0.85)
    assert r.cover_best == pytest.approx(18.5 / 20)
    # PRI means 0.75, 0.75 -> first max, level 1; OIS (0.9 + 0.8) / 2
    assert r.pri_ods == pytest.approx(0.75) and r.pri_threshold == 1.0
    assert r.pri_ois == pytest.approx(0.85)
    # VI means 1.5, 2.0 -> ODS 1.5; OIS (1 + 1) / 2
    assert r.vi_ods == pytest.approx(1.5) and r.vi_ois == pytest.approx(1.0)


def test_collect_boundaries_by_hand():
    th = np.array([1.0, 2.0])
    im = ImageBoundaryEval(th, np.array([8.0, 4.0]), np.array([10.0, 10.0]), np.array([4.0, 4.0]), np.array([8.0, 5.0]))
    b = collect_boundaries([im])
    # level 1: R .8 P .5 F .6154; level 2: R .4 P .8 F .5333; interpolation
    # between them can only beat level 1 if F rises along the segment
    f1 = 2 * 0.8 * 0.5 / 1.3
    assert b.ois_f == pytest.approx(f1)
    assert b.ods_f >= f1 - 1e-12
    assert b.recall.tolist() == [0.8, 0.4]
    # AP: precision interpolated on recall in [0.4, 0.8], 0 elsewhere
    grid = np.linspace(0, 1, 101)
    inside = (grid >= 0.4 - 1e-12) & (grid <= 0.8 + 1e-12)
    expected = np.interp(grid[inside], [0.4, 0.8], [0.8, 0.5]).sum() * 0.01
    assert b.ap == pytest.approx(expected)
