"""Unit tests of the region, boundary and aggregation metrics on small synthetic maps.

Expected values are worked out by hand in the comments.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from matbackprop.metrics import (
    ImageBoundaryEval,
    ImageRegionEval,
    boundary_counts,
    collect_boundaries,
    collect_regions,
    contingency_table,
    correspond_pixels,
    covering_counts,
    evaluate_regions,
    probabilistic_rand_index,
    region_counts,
    seg_to_boundaries,
    segmentation_covering,
    thin,
    ucm_thresholds,
    ucm_to_segmentation,
    variation_of_information,
)

# Rows split vs columns split of a 2x2 image.
ROWS = np.array([[1, 1], [2, 2]])
COLS = np.array([[1, 2], [1, 2]])
ONE = np.ones((2, 2), dtype=int)


# ---------------------------------------------------------------- regions --

def test_identical_segmentations_are_perfect():
    seg = np.array([[1, 1, 2], [3, 3, 2], [3, 3, 2]])
    relabelled = np.array([[7, 7, 1], [4, 4, 1], [4, 4, 1]])
    assert segmentation_covering(seg, [relabelled]) == pytest.approx(1.0)
    assert probabilistic_rand_index(seg, [relabelled]) == pytest.approx(1.0)
    assert variation_of_information(seg, [relabelled]) == pytest.approx(0.0, abs=1e-12)


def test_rows_against_columns_by_hand():
    # Each column region meets each row region in 1 pixel: IoU = 1 / 3.
    assert segmentation_covering(ROWS, [COLS]) == pytest.approx(1 / 3)
    # 6 pixel pairs; both maps agree only on the 2 "diagonal" pairs, which
    # are separated in both: RI = 2 / 6.
    assert probabilistic_rand_index(ROWS, [COLS]) == pytest.approx(1 / 3)
    # independent binary partitions: H = 1 bit each, I = 0, VI = 2 bits
    assert variation_of_information(ROWS, [COLS]) == pytest.approx(2.0)


def test_one_region_against_two_by_hand():
    # the single region covers each half with IoU 2/4: covering 1/2
    assert segmentation_covering(ONE, [ROWS]) == pytest.approx(0.5)
    # pairs agree only when both pixels are in the same row: 2 of 6
    assert probabilistic_rand_index(ONE, [ROWS]) == pytest.approx(1 / 3)
    # VI = H(ROWS | ONE) = 1 bit
    assert variation_of_information(ONE, [ROWS]) == pytest.approx(1.0)
    # ROWS against ONE: the 4-pixel region meets each 2-pixel row with IoU
    # 2/4, and each row meets it with the same IoU, in both directions
    c = covering_counts(ROWS, [ONE])
    assert c.cnt_r / c.sum_r == pytest.approx(0.5)
    assert c.cnt_p / c.sum_p == pytest.approx(0.5)


def test_several_ground_truths_pool_covering_and_average_pri_vi():
    # ROWS vs [ROWS, COLS]: ROWS regions 2+2 px at IoU 1, COLS regions 2+2 px
    # at IoU 1/3: (4 * 1 + 4 / 3) / 8 = 2/3.
    assert segmentation_covering(ROWS, [ROWS, COLS]) == pytest.approx(2 / 3)
    assert probabilistic_rand_index(ROWS, [ROWS, COLS]) == pytest.approx((1 + 1 / 3) / 2)
    assert variation_of_information(ROWS, [ROWS, COLS]) == pytest.approx(1.0)
    rc = region_counts(ROWS, [ROWS, COLS])
    assert rc.covering.cnt_r / rc.covering.sum_r == pytest.approx(2 / 3)
    assert rc.pri == pytest.approx(2 / 3)
    assert rc.vi == pytest.approx(1.0)


def test_pooling_weights_by_region_area():
    # One annotator with a 3-pixel and a 1-pixel region (pooled total 4 px).
    gt = np.array([[1, 1], [1, 2]])
    seg = np.array([[1, 1], [2, 2]])
    # gt region 1 (3 px): best IoU with seg 1 = 2/3; gt region 2 (1 px): with
    # seg 2 = 1/2. covering = (3 * 2/3 + 1 * 1/2) / 4 = 2.5 / 4
    assert segmentation_covering(seg, [gt]) == pytest.approx(2.5 / 4)


def test_label_zero_is_ignored_by_pri_and_vi():
    seg = np.array([[1, 1, 0], [2, 2, 0]])
    gt = np.array([[1, 1, 5], [2, 2, 6]])
    assert probabilistic_rand_index(seg, [gt]) == pytest.approx(1.0)
    assert variation_of_information(seg, [gt]) == pytest.approx(0.0, abs=1e-12)


def test_contingency_table_counts():
    t = contingency_table(ROWS, COLS)
    dense = np.zeros((3, 3), int)
    dense[t.rows, t.cols] = t.counts
    assert dense[1:, 1:].tolist() == [[1, 1], [1, 1]]
    assert t.area_a.tolist() == [0, 2, 2] and t.area_b.tolist() == [0, 2, 2]


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        segmentation_covering(ROWS, [])
    with pytest.raises(ValueError):
        segmentation_covering(ROWS, [np.ones((3, 3), int)])
    with pytest.raises(ValueError):
        probabilistic_rand_index(np.array([[0.5, 1.0], [1.0, 1.0]]), [ROWS])


label_maps = arrays(np.int64, (6, 7), elements=st.integers(1, 4))


@settings(max_examples=40, deadline=None)
@given(label_maps, label_maps)
def test_metric_ranges_and_symmetry(a, b):
    ri = probabilistic_rand_index(a, [b])
    vi = variation_of_information(a, [b])
    cov = segmentation_covering(a, [b])
    assert 0.0 <= ri <= 1.0 + 1e-12
    assert 0.0 <= cov <= 1.0 + 1e-12
    assert vi >= 0.0
    # RI and VI are symmetric in their two arguments
    assert ri == pytest.approx(probabilistic_rand_index(b, [a]))
    assert vi == pytest.approx(variation_of_information(b, [a]))


@settings(max_examples=30, deadline=None)
@given(label_maps, label_maps)
def test_matches_brute_force_definitions(a, b):
    pa, pb = a.ravel(), b.ravel()
    n = pa.size
    iu = np.triu_indices(n, 1)
    same_a = (pa[:, None] == pa[None, :])[iu]
    same_b = (pb[:, None] == pb[None, :])[iu]
    assert probabilistic_rand_index(a, [b]) == pytest.approx(np.mean(same_a == same_b))
    # covering: sum over b regions |R| max IoU / N
    cov = 0.0
    for rb in np.unique(pb):
        mb = pb == rb
        cov += mb.sum() * max(
            (mb & (pa == ra)).sum() / (mb | (pa == ra)).sum() for ra in np.unique(pa)
        )
    assert segmentation_covering(a, [b]) == pytest.approx(cov / n)


# ------------------------------------------------------------- hierarchy --

def test_ucm_to_segmentation_uses_8_connectivity_on_doubled_grid():
    # 2x2 image; a contour of strength 0.5 separates the left column
    ucm2 = np.zeros((5, 5))
    ucm2[:, 2] = 0.5
    assert ucm_to_segmentation(ucm2, 0.4).tolist() == [[1, 2], [1, 2]]
    assert ucm_to_segmentation(ucm2, 0.5).tolist() == [[1, 1], [1, 1]]
    # pixels (0, 0) and (1, 1) touch only diagonally through the junction at
    # doubled coordinate (2, 2): joined by 8-connectivity; the other two
    # pixel centres lie above the threshold and get label 0
    ucm2 = np.ones((5, 5))
    ucm2[1, 1] = ucm2[2, 2] = ucm2[3, 3] = 0
    seg = ucm_to_segmentation(ucm2, 0.5)
    assert seg[0, 0] == seg[1, 1] != 0 and seg[0, 1] == seg[1, 0] == 0


def test_ucm_thresholds():
    t = ucm_thresholds(99)
    assert t.size == 99 and t[0] == pytest.approx(0.01) and t[-1] == pytest.approx(0.99)
    assert np.allclose(ucm_thresholds(5), np.arange(1, 6) / 6)


def test_collect_regions_ods_ois_best_by_hand():
    # Two images, two levels each, counts chosen by hand.
    im1 = ImageRegionEval(np.array([1.0, 2.0]), np.array([6.0, 8.0]), np.array([10.0, 10.0]),
                          np.ones(2), np.ones(2), np.array([0.7, 0.9]),
                          np.array([2.0, 1.0]), cnt_r_best=9.0)
    im2 = ImageRegionEval(np.array([1.0, 2.0]), np.array([9.0, 2.0]), np.array([10.0, 10.0]),
                          np.ones(2), np.ones(2), np.array([0.8, 0.6]),
                          np.array([1.0, 3.0]), cnt_r_best=9.5)
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


def test_evaluate_regions_best_takes_each_region_at_its_best_level():
    gt = np.array([[1, 1], [2, 2]])
    segs = [np.array([[1, 1], [1, 2]]), np.array([[1, 2], [2, 2]])]
    e = evaluate_regions(segs, [gt])
    # level 1: region 1 IoU 2/3, region 2 IoU 1/2; level 2: 1/2, 2/3
    assert e.cnt_r / e.sum_r == pytest.approx([(4 / 3 + 1) / 4, (1 + 4 / 3) / 4])
    assert e.cnt_r_best == pytest.approx(2 * 2 / 3 + 2 * 2 / 3)


# ------------------------------------------------------------- boundaries --

def test_thin_reduces_a_thick_bar_to_a_line():
    bw = np.zeros((9, 20), bool)
    bw[3:6, 2:18] = True
    t = thin(bw)
    assert t.sum() < bw.sum()
    assert (t.sum(axis=0) <= 1).all()  # one pixel wide
    assert t[:, 4:16].any(axis=0).all()  # still spans the bar
    assert np.array_equal(thin(t), t)  # idempotent


def test_seg_to_boundaries_marks_label_changes():
    seg = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
    b = seg_to_boundaries(seg)
    # each pixel reports the junction at its lower-right corner, lit when any
    # of the 4 edges meeting there separates two labels; on the last column
    # only the edge below the pixel counts, on the last row only the one to
    # its right (the official seg2bdry convention)
    assert b.astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 0, 0]]


def test_correspond_pixels_tolerance():
    # 100x100 image: tolerance 0.0075 * 141.4 = 1.06 px
    a = np.zeros((100, 100), bool)
    a[50, 10:90] = True
    b_near = np.roll(a, 1, axis=0)
    b_far = np.roll(a, 2, axis=0)
    m1, m2 = correspond_pixels(a, b_near)
    assert m1.sum() == 80 and m2.sum() == 80
    m1, m2 = correspond_pixels(a, b_far)
    assert m1.sum() == 0 and m2.sum() == 0


def test_correspondence_is_one_to_one_and_maximal():
    # two machine pixels next to one human pixel: only one can be paired
    a = np.zeros((60, 60), bool)
    a[30, 30] = a[30, 31] = True
    b = np.zeros_like(a)
    b[30, 30] = True
    for min_cost in (True, False):
        m1, m2 = correspond_pixels(a, b, min_cost=min_cost)
        assert m1.sum() == 1 and m2.sum() == 1
    # min cost pairs the coincident pixel, not the one 1 px away
    m1, _ = correspond_pixels(a, b)
    assert m1[30, 30] and not m1[30, 31]


def test_boundary_counts_precision_uses_union_over_annotators():
    a = np.zeros((100, 100), bool)
    a[20, 10:90] = True
    a[70, 10:90] = True
    g1 = np.zeros_like(a)
    g1[20, 10:90] = True
    g2 = np.zeros_like(a)
    g2[70, 10:50] = True
    c = boundary_counts(a, [g1, g2], thin_map=False)
    assert (c.cnt_r, c.sum_r) == (120, 120)  # every human pixel paired
    assert (c.cnt_p, c.sum_p) == (120, 160)  # 80 + 40 machine pixels paired


def test_collect_boundaries_by_hand():
    th = np.array([1.0, 2.0])
    im = ImageBoundaryEval(th, np.array([8.0, 4.0]), np.array([10.0, 10.0]),
                           np.array([4.0, 4.0]), np.array([8.0, 5.0]))
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
