"""Region metrics (metrics/regions.py: covering, PRI, VI) on small synthetic maps. The boundary, UCM,
per-image and pooling tests sit beside their modules (test_boundaries.py, test_ucm.py, test_image_eval.py,
test_pooling.py).

Expected values are worked out by hand in the comments.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from matbackprop.metrics import (
    contingency_table,
    covering_counts,
    probabilistic_rand_index,
    region_counts,
    segmentation_covering,
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


def test_label_zero_is_a_region_unless_ignored():
    seg = np.array([[1, 1, 0], [2, 2, 0]])
    gt = np.array([[1, 1, 5], [2, 2, 6]])
    # By default the two 0-pixels are one region that gt splits: 1 of the 15 pixel pairs disagrees,
    # and H(gt | seg) = 2/6 of a pixel's bit.
    assert probabilistic_rand_index(seg, [gt]) == pytest.approx(14 / 15)
    assert variation_of_information(seg, [gt]) == pytest.approx(1 / 3)
    # ignore_labels=(0,) leaves those pixels out: the rest agrees exactly.
    assert probabilistic_rand_index(seg, [gt], ignore_labels=(0,)) == pytest.approx(1.0)
    assert variation_of_information(seg, [gt], ignore_labels=[0]) == pytest.approx(0.0, abs=1e-12)


def test_zero_based_and_one_based_label_maps_score_identically():
    rng = np.random.default_rng(0)
    for _ in range(20):
        seg = rng.integers(0, 4, size=(9, 11))  # 0-based, like k-means output
        gts = [rng.integers(0, 3, size=(9, 11)), rng.integers(0, 5, size=(9, 11)) + 1]
        a, b = region_counts(seg, gts), region_counts(seg + 1, [g + 1 for g in gts])
        assert (a.covering.cnt_r, a.covering.sum_r, a.covering.cnt_p, a.covering.sum_p) == pytest.approx(
            (b.covering.cnt_r, b.covering.sum_r, b.covering.cnt_p, b.covering.sum_p)
        )
        assert (a.pri, a.vi) == pytest.approx((b.pri, b.vi))
        assert segmentation_covering(seg, gts) == pytest.approx(segmentation_covering(seg + 1, [g + 1 for g in gts]))
        # every pixel is counted: the covering's denominators are K and 1 times the image
        assert a.covering.sum_r == 2 * seg.size and a.covering.sum_p == seg.size


def test_issue_example_zero_based_partition():
    # The same 2-region vs 3-region partition, 0-based and 1-based (np.unique inverse labels).
    seg0 = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    gt = np.array([[1, 2, 3, 3], [1, 2, 3, 3]])
    # pairs: 28; disagreements: within seg region 0 the gt splits 2 x 2 = 4 pairs -> RI = 24 / 28
    assert probabilistic_rand_index(seg0, [gt]) == pytest.approx(24 / 28)
    assert probabilistic_rand_index(seg0 + 1, [gt]) == pytest.approx(24 / 28)
    # VI = H(gt | seg) + H(seg | gt) = 1/2 * 1 bit + 0
    assert variation_of_information(seg0, [gt]) == pytest.approx(0.5)


def test_ignore_labels_in_covering():
    seg = np.array([[0, 0], [1, 1]])
    gt = np.array([[1, 1], [2, 2]])
    assert segmentation_covering(seg, [gt]) == pytest.approx(1.0)  # default: region 0 covers gt row 1
    # 0 never a region: gt row 1 finds no match (IoU 0), row 2 matches seg 1 exactly
    c = covering_counts(seg, [gt], ignore_labels=(0,))
    assert c.cnt_r / c.sum_r == pytest.approx(0.5) and c.sum_p == 2
    assert segmentation_covering(gt - 1, [seg + 1], ignore_labels=(0,)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ignore_labels"):
        probabilistic_rand_index(seg, [gt], ignore_labels=(-1,))


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
        cov += mb.sum() * max((mb & (pa == ra)).sum() / (mb | (pa == ra)).sum() for ra in np.unique(pa))
    assert segmentation_covering(a, [b]) == pytest.approx(cov / n)
