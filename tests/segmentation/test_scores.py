"""Per-image score cache: round trip, the separate boundary pass, resumability, best thresholds."""

import numpy as np
import pytest

from matbackprop.metrics import HumanBoundaries, collect_regions, evaluate_ucm_boundaries, evaluate_ucm_regions
from matbackprop.segmentation.scores import ScoreCache, best_thresholds, method_slug, score_ucm


def _case():
    u = np.zeros((21, 31), dtype=np.float32)
    u[:, 14] = 0.7  # a vertical contour between pixel columns 6 and 7
    u[10, :14] = 0.3  # a weaker one splitting the left half
    left = np.ones((10, 15), dtype=np.int32)
    left[:, 7:] = 2
    quarters = left.copy()
    quarters[5:, :7] = 3
    gts = [left, quarters]
    bdry = [np.zeros((10, 15), dtype=np.uint8), np.zeros((10, 15), dtype=np.uint8)]
    bdry[0][:, 6] = 1
    bdry[1][:, 6] = 1
    bdry[1][4, :7] = 1
    return u, gts, bdry


def test_round_trip_and_boundary_pass(tmp_path):
    u, gts, bdry = _case()
    cache = ScoreCache(tmp_path, "My method (seed0)")
    assert cache.dir.name == "my-method-seed0" and cache.missing(["a", "b"]) == ["a", "b"]
    regions, none = score_ucm(u, gts, None)
    assert none is None
    cache.put("a", regions, seconds=np.array([1.0, 2.0]))
    assert cache.has("a") and not cache.has_boundaries("a") and cache.missing(["a", "b"]) == ["b"]
    cache.put_boundaries("a", evaluate_ucm_boundaries(u, HumanBoundaries(bdry)))
    regs, b, extra = cache.get("a")
    ref = evaluate_ucm_regions(u, gts)
    np.testing.assert_allclose(regs[0].cnt_r, ref.cnt_r)
    np.testing.assert_allclose(regs[0].vi, ref.vi)
    assert regs[0].cnt_r_best == pytest.approx(ref.cnt_r_best)
    assert cache.has_boundaries("a") and b is not None and b.cnt_r.shape == (99,)
    assert np.allclose(extra["seconds"], [1.0, 2.0])
    # scored together, the counts are stored in one file and read back the same
    r2, b2 = score_ucm(u, gts, HumanBoundaries(bdry))
    cache.put("c", r2, b2)
    assert cache.has_boundaries("c") and np.array_equal(cache.get("c")[1].cnt_p, b.cnt_p)


def test_best_thresholds_and_human_lists(tmp_path):
    u, gts, _ = _case()
    r = evaluate_ucm_regions(u, gts)
    best = best_thresholds(r)
    # below 0.3 the three regions match the 'quarters' annotator exactly; above 0.7 all merge
    assert best["covering"] == pytest.approx((r.cnt_r / r.sum_r).max())
    assert best["covering_threshold"] < 0.7 and best["vi"] == pytest.approx(r.vi.min())
    cache = ScoreCache(tmp_path, "human")
    from matbackprop.metrics import evaluate_human_regions

    cache.put("x", evaluate_human_regions(gts))
    regs, b, _ = cache.get("x")
    assert len(regs) == 2 and b is None
    assert collect_regions(regs).cover_ods == pytest.approx(collect_regions(evaluate_human_regions(gts)).cover_ods)


def test_method_slug_rejects_empty_names():
    assert method_slug("gPb-owt-ucm (official UCMs)") == "gpb-owt-ucm-official-ucms"
    with pytest.raises(ValueError):
        method_slug("!!")


def test_scores_of_another_min_area_are_deleted_and_the_record_kept(tmp_path):
    u, gts, _ = _case()
    cache = ScoreCache(tmp_path, "m")
    logs: list[str] = []
    cache.require_min_area(0, logs.append)  # a new cache: nothing to delete
    cache.put("a", score_ucm(u, gts, None)[0])
    other = tmp_path / "m" / "ucm-like.txt"
    other.write_text("kept")
    cache.require_min_area(0, logs.append)
    assert cache.has("a") and not logs
    cache.require_min_area(50, logs.append)
    assert (
        not cache.has("a") and other.read_text() == "kept" and (tmp_path / "m" / "min_area.txt").read_text() == "50\n"
    )
    assert logs == ["m: scores made with min_area 0, now 50; scoring them again"]
