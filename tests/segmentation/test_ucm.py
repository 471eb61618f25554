"""Ultrametric contour maps from boundary maps (higra's oriented watershed + mean-boundary hierarchy)."""

import numpy as np
import pytest

pytest.importorskip("higra")

import itertools

from matbackprop.metrics import ucm_to_segmentation
from matbackprop.segmentation import edges_ucm, respace_ucm, ucm_levels, ultrametric_contour_map


def _disc_boundary(h=30, w=40, r=9.0):
    """Boundary map of a bright disc on a dark background (two regions), and the disc mask."""
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= r * r
    gy, gx = np.gradient(inside.astype(float))
    b = np.hypot(gx, gy)
    return b / b.max(), inside


def _nested_boxes(h=40, w=60):
    """Three strengths: a strong contour splitting left/right, a weaker box inside the right half."""
    b = np.zeros((h, w))
    b[:, 29:31] = 1.0
    b[10, 38:52] = b[30, 38:52] = 0.4
    b[10:31, 38] = b[10:31, 51] = 0.4
    return b


def _is_ultrametric(ucm2: np.ndarray, thresholds) -> bool:
    """Every region at a threshold lies inside one region at every larger threshold."""
    segs = [ucm_to_segmentation(ucm2, t) for t in thresholds]
    for fine, coarse in itertools.pairwise(segs):
        pairs = np.unique(np.stack([fine.ravel(), coarse.ravel()]), axis=1)
        if np.unique(pairs[0]).size != pairs.shape[1]:  # a fine region split across coarse ones
            return False
    return True


def test_shape_dtype_range_and_pixels():
    b, _ = _disc_boundary()
    u = ultrametric_contour_map(b)
    assert u.shape == (61, 81) and u.dtype == np.float32
    assert u.min() >= 0 and u.max() <= 1 and u.max() > 0.1
    assert np.all(u[1::2, 1::2] == 0)  # pixels carry no contour


def test_two_regions_give_one_closed_contour():
    b, inside = _disc_boundary()
    u = ultrametric_contour_map(b)
    levels = ucm_levels(u)
    assert levels.size >= 1
    # below the contour's strength: exactly two regions, the disc (up to the contour's own pixels)
    # and the background; above it: one region
    seg = ucm_to_segmentation(u, 0.5 * float(levels.max()))
    assert np.unique(seg).size == 2
    disc_label = np.bincount(seg[inside]).argmax()
    agree = np.mean((seg == disc_label) == inside)
    assert agree > 0.97
    assert np.unique(ucm_to_segmentation(u, float(levels.max()))).size == 1


def test_ultrametric_nesting_and_strength_order():
    u = ultrametric_contour_map(_nested_boxes())
    assert _is_ultrametric(u, np.linspace(0.0, 1.0, 21))
    # the strong split survives longer than the weak box: 3 regions, then 2, then 1
    counts = [np.unique(ucm_to_segmentation(u, t)).size for t in (0.05, 0.6, 1.0)]
    assert counts == [3, 2, 1]


def test_ultrametric_on_noise():
    rng = np.random.default_rng(0)
    u = ultrametric_contour_map(rng.random((25, 35)))
    assert _is_ultrametric(u, np.linspace(0.0, 1.0, 41))
    assert u.shape == (51, 71)


def test_oriented_weighting_keeps_aligned_contours():
    b, _ = _disc_boundary()
    yy, xx = np.mgrid[0 : b.shape[0], 0 : b.shape[1]]
    normal = np.mod(np.arctan2(yy - b.shape[0] / 2, xx - b.shape[1] / 2), np.pi)  # radial normals
    aligned = ultrametric_contour_map(b, normal)
    crossed = ultrametric_contour_map(b, np.mod(normal + np.pi / 2, np.pi))
    assert aligned.max() > 2 * crossed.max()


def test_flat_map_is_one_region_and_bad_input_raises():
    u = ultrametric_contour_map(np.zeros((5, 7)))
    assert u.shape == (11, 15) and np.all(u == 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ultrametric_contour_map(np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="non-finite"):
        ultrametric_contour_map(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="shape"):
        ultrametric_contour_map(np.zeros((2, 3, 4)))


def test_respace_is_monotone_and_keeps_the_hierarchy():
    u = ultrametric_contour_map(_nested_boxes())
    r = respace_ucm(u, 0.5)
    assert r.dtype == np.float32 and np.allclose(r, np.sqrt(u), atol=1e-6)
    t = 0.3
    assert np.array_equal(ucm_to_segmentation(u, t), ucm_to_segmentation(r, np.sqrt(t)))
    e = edges_ucm(_nested_boxes(), power=1.0)
    assert np.array_equal(e, u)
    with pytest.raises(ValueError):
        respace_ucm(u, 0.0)


def test_remove_small_regions_keeps_large_regions_and_their_levels():
    from matbackprop.segmentation import remove_small_regions

    rng = np.random.default_rng(1)
    u = ultrametric_contour_map(rng.random((30, 40)))
    levels = ucm_levels(u)
    for min_area in (5, 40, 200):
        r = remove_small_regions(u, min_area)
        assert r.shape == u.shape and r.dtype == np.float32 and np.all(r[1::2, 1::2] == 0)
        assert _is_ultrametric(r, np.linspace(0.0, 1.0, 41))
        assert set(ucm_levels(r)) <= set(levels)  # surviving contours keep their strengths
        for t in [0.0, *levels[:-1]]:
            seg = ucm_to_segmentation(r, float(t))
            sizes = np.bincount(seg.ravel())[1:]
            assert sizes[sizes > 0].min() >= min_area  # no small region at any threshold
            # never finer than the input at the same threshold
            assert np.unique(seg).size <= np.unique(ucm_to_segmentation(u, float(t))).size
    assert ucm_levels(remove_small_regions(u, 5)).size < levels.size  # the noise has small basins


def test_remove_small_regions_removes_a_small_ring_only():
    from matbackprop.segmentation import remove_small_regions

    b = _nested_boxes()
    b[2, 2:6] = b[5, 2:6] = b[2:6, 2] = b[2:6, 5] = 1.0  # a strong ring around a few pixels, top left
    u = ultrametric_contour_map(b)
    assert [np.unique(ucm_to_segmentation(u, t)).size for t in (0.05, 0.6)] == [4, 3]  # the ring survives
    r = remove_small_regions(u, 30)
    assert [np.unique(ucm_to_segmentation(r, t)).size for t in (0.05, 0.6, 1.0)] == [3, 2, 1]
    # only the ring's level is gone; the box (about 14 x 21 pixels) and the split keep theirs
    assert set(ucm_levels(r)) < set(ucm_levels(u)) and ucm_levels(r).size == ucm_levels(u).size - 1
    far = np.ones(u.shape, dtype=bool)
    far[:16, :16] = False  # away from the ring, the contours are untouched
    np.testing.assert_array_equal(r[far], u[far])
    np.testing.assert_array_equal(remove_small_regions(u, 0), u)
    np.testing.assert_array_equal(remove_small_regions(u, 1), u)
    with pytest.raises(ValueError, match="min_area"):
        remove_small_regions(u, -1)
    with pytest.raises(ValueError, match="shape"):
        remove_small_regions(np.zeros((4, 5)), 10)
