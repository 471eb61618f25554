"""Per-image evaluation (metrics/image_eval.py) of a stack of segmentations, worked out by hand."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from matbackprop.metrics import evaluate_regions


def test_evaluate_regions_best_takes_each_region_at_its_best_level():
    gt = np.array([[1, 1], [2, 2]])
    segs = [np.array([[1, 1], [1, 2]]), np.array([[1, 2], [2, 2]])]
    e = evaluate_regions(segs, [gt])
    # level 1: region 1 IoU 2/3, region 2 IoU 1/2; level 2: 1/2, 2/3
    assert e.cnt_r / e.sum_r == pytest.approx([(4 / 3 + 1) / 4, (1 + 4 / 3) / 4])
    assert e.cnt_r_best == pytest.approx(2 * 2 / 3 + 2 * 2 / 3)
