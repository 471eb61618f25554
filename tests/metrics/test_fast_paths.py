"""The benchmark's fast paths give the reference results: thinning on foreground pixels, cached
matching components, and region counts of nested UCM levels from the finest level's tables."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from matbackprop.metrics import HumanBoundaries, boundary_counts, evaluate_ucm_regions, thin, ucm_to_segmentation
from matbackprop.metrics.boundaries import _NEIGHBOUR_WEIGHTS, _THIN_FIRST, _THIN_SECOND
from matbackprop.metrics.hierarchy_regions import evaluate_ucm_regions_nested

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "bsds500" / "bench-fixture"


def _thin_reference(bw: np.ndarray) -> np.ndarray:
    """Whole-image thinning, one 3x3 correlation per sub-iteration (the straightforward form)."""
    skel = bw.astype(bool).copy()
    while True:
        before = int(skel.sum())
        for table in (_THIN_FIRST, _THIN_SECOND):
            code = ndimage.correlate(skel.astype(np.int32), _NEIGHBOUR_WEIGHTS, mode="constant")
            skel &= ~table[code]
        if int(skel.sum()) == before:
            return skel


@pytest.mark.parametrize("seed", range(6))
def test_thin_matches_whole_image_reference(seed):
    rng = np.random.default_rng(seed)
    bw = ndimage.binary_dilation(rng.random((45, 70)) < 0.08, iterations=int(rng.integers(0, 3)))
    bw[0, :] |= rng.random(70) < 0.5  # shapes touching the border
    bw[:, -1] |= rng.random(45) < 0.5
    out = thin(bw)
    assert np.array_equal(out, _thin_reference(bw))
    assert out.sum() < bw.sum()


def _ucm(shape=(40, 60), seed=0) -> np.ndarray:
    higra = pytest.importorskip("higra")  # noqa: F841
    from matbackprop.segmentation import ultrametric_contour_map

    rng = np.random.default_rng(seed)
    return ultrametric_contour_map(ndimage.gaussian_filter(rng.random(shape), 1.5) ** 2 * 8 % 1.0)


def _gts(shape, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    a = 1 + (xx > rng.integers(10, 50)) + 2 * (yy > rng.integers(10, 30))
    b = 1 + ((xx + yy) // 17)
    return [a.astype(np.int32), b.astype(np.int32)]


def test_cached_components_give_the_counts_of_a_fresh_matcher():
    u = _ucm()
    pb = u[2::2, 2::2]
    gts_b = [ndimage.binary_dilation(g != np.roll(g, 1, axis=1)) for g in _gts(pb.shape)]
    shared = HumanBoundaries(gts_b)
    for t in np.linspace(0.01, 0.99, 25):
        cached = boundary_counts(pb >= t, shared)
        fresh = boundary_counts(pb >= t, HumanBoundaries(gts_b))
        assert cached == fresh
    assert sum(len(nb.solutions) for nb in shared.neighbourhoods) > 0


def test_nested_regions_equal_reference_on_a_synthetic_ucm():
    u = _ucm(seed=1)
    gts = _gts((40, 60), seed=1)
    ref = evaluate_ucm_regions(u, gts)
    fast = evaluate_ucm_regions_nested(u, gts)
    for f in ("thresholds", "cnt_r", "sum_r", "cnt_p", "sum_p", "pri", "vi"):
        np.testing.assert_allclose(getattr(fast, f), getattr(ref, f), rtol=1e-12, atol=1e-9)
    assert fast.cnt_r_best == pytest.approx(ref.cnt_r_best, rel=1e-12)


def test_nested_regions_on_a_map_that_is_not_ultrametric():
    # hand-drawn lines whose strengths vary along them (no UCM would): the level sets still grow
    # with the threshold, so the nested path must still agree with scoring every level's pixels
    u = np.zeros((41, 61), dtype=np.float32)
    u[:, 30] = np.linspace(0.2, 0.9, 41)
    u[10, 10:21] = u[20, 10:21] = 0.9
    u[10:21, 10] = u[10:21, 20] = 0.6
    u[30, :31] = 0.3
    gts = _gts((20, 30), seed=2)
    ref = evaluate_ucm_regions(u, gts)
    fast = evaluate_ucm_regions_nested(u, gts)
    np.testing.assert_allclose(fast.cnt_r, ref.cnt_r, rtol=1e-12)
    np.testing.assert_allclose(fast.cnt_p, ref.cnt_p, rtol=1e-12)
    np.testing.assert_allclose(fast.vi, ref.vi, rtol=1e-12, atol=1e-12)
    assert len(set(np.round(ref.cnt_r, 6))) >= 3  # several distinct levels were compared


@pytest.mark.skipif(not (FIXTURE / "ucm2").is_dir(), reason=f"BSDS bench fixture not found at {FIXTURE}")
def test_nested_regions_equal_reference_on_official_ucms():
    from scipy.io import loadmat

    from matbackprop.data.bsds500 import load_ground_truth

    for path in sorted((FIXTURE / "ucm2").glob("*.mat"))[:2]:
        u = loadmat(path)["ucm2"]
        segs, _ = load_ground_truth(FIXTURE / "groundTruth" / path.name)
        ref = evaluate_ucm_regions(u, segs)
        fast = evaluate_ucm_regions_nested(u, segs)
        np.testing.assert_allclose(fast.cnt_r, ref.cnt_r, rtol=1e-12)
        np.testing.assert_allclose(fast.pri, ref.pri, rtol=1e-12)
        np.testing.assert_allclose(fast.vi, ref.vi, rtol=1e-12, atol=1e-12)
        # and it is a real hierarchy: every level is a union of finest regions
        fine = ucm_to_segmentation(u, 0.01)
        assert np.unique(fine).size >= np.unique(ucm_to_segmentation(u, 0.5)).size
