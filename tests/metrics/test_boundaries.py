"""Boundary benchmark primitives (metrics/boundaries.py) on small synthetic maps: thinning, label-change
boundaries, pixel correspondence and the per-image counts. Expected values are worked out by hand in the comments.
"""

import numpy as np
import pytest

pytest.importorskip("scipy")

from matbackprop.metrics import boundary_counts, correspond_pixels, seg_to_boundaries, thin


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
