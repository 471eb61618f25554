"""Ultrametric contour maps (metrics/ucm.py): the segmentation at a threshold and the threshold grid."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from matbackprop.metrics import ucm_thresholds, ucm_to_segmentation


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
