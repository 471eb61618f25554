"""Non-maximum suppression of edge maps, sharpened arc strengths, and UCMs whose arcs read them."""

import numpy as np
import pytest
from scipy import ndimage

from matbackprop.metrics import ucm_to_segmentation
from matbackprop.segmentation import (
    edge_nms,
    edges_ucm,
    sharpened_edges,
    ucm_levels,
    ultrametric_contour_map,
)


def _blurred_line(h=21, w=31, col=14, width=2.0):
    x = np.arange(w, dtype=float)
    return np.tile(np.exp(-0.5 * (x - col) ** 2 / width**2), (h, 1))


def test_nms_keeps_one_pixel_on_the_crest_of_a_straight_edge():
    thin = edge_nms(_blurred_line())
    for row in thin[3:-3]:  # away from the rows the smoothing pads
        assert np.flatnonzero(row).tolist() == [14]
    assert thin[10, 14] == pytest.approx(1.0)


def test_nms_thins_a_diagonal_edge_and_keeps_its_values():
    n = 40
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    e = np.exp(-0.5 * ((xx - yy) / np.sqrt(2)) ** 2 / 2.0**2)  # a blurred line along the diagonal
    thin = edge_nms(e)
    inner = thin[5:-5, 5:-5]
    assert np.all(np.count_nonzero(inner, axis=1) <= 2)  # at most the crest and a tie beside it
    assert np.all(np.diag(thin)[5:-5] == np.diag(e)[5:-5])  # the crest itself is kept as it was
    assert np.all((thin == 0) | (thin == e))


def test_sharpened_edges_keep_crests_and_lower_flanks():
    e = _blurred_line()
    sharp = sharpened_edges(e)
    assert sharp[10, 14] == e[10, 14]
    assert sharp[10, 13] == pytest.approx(0.5 * e[10, 13] + 0.5 * e[10, 14])  # a 3 x 3 neighbour of the crest
    assert sharp[10, 10] == pytest.approx(0.5 * e[10, 10])  # a flank two pixels away loses half
    np.testing.assert_array_equal(sharpened_edges(e, crest_weight=0.0), e)
    assert sharp.min() >= 0 and sharp.max() <= 1


def test_bad_edge_maps_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        edge_nms(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        edge_nms(np.zeros(5))
    with pytest.raises(ValueError, match="smooth"):
        edge_nms(np.zeros((4, 4)), smooth=0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sharpened_edges(np.full((4, 4), 2.0))
    with pytest.raises(ValueError, match="crest_weight"):
        sharpened_edges(np.zeros((4, 4)), crest_weight=1.5)


def test_mean_arc_hierarchy_reproduces_mean_pb_when_the_arcs_are_the_watershed_weights():
    hg = pytest.importorskip("higra")
    from matbackprop.segmentation.ucm import _mean_arc_hierarchy

    rng = np.random.default_rng(5)
    b = ndimage.gaussian_filter(rng.random((30, 40)), 1.5)
    graph = hg.get_4_adjacency_graph(b.shape)
    w = hg.weight_graph(graph, b, hg.WeightFunction.mean)

    def ucm(tree, altitudes):
        return np.asarray(hg.graph_4_adjacency_2_khalimsky(graph, hg.saliency(tree, altitudes), shape=b.shape))

    want = ucm(*hg.mean_pb_hierarchy(graph, w, shape=b.shape))
    got = ucm(*_mean_arc_hierarchy(hg, graph, w, w))
    assert (want > 0).sum() > 100
    np.testing.assert_allclose(got, want, atol=1e-6)  # equal to rounding


def test_arc_strength_changes_the_strengths_not_the_watershed():
    rng = np.random.default_rng(3)
    b = ndimage.gaussian_filter(rng.random((30, 40)), 1.5)
    b = (b - b.min()) / (b.max() - b.min())
    plain = ultrametric_contour_map(b)
    # graph edges weighted by the larger pixel instead of the mean: the same arcs, other strengths,
    # so compare with arcs read from a map whose max-weights equal the mean-weights: a constant map
    flat = np.full_like(b, 0.5)
    reread = ultrametric_contour_map(b, arc_strength=flat)
    assert (reread > 0).sum() > 0
    np.testing.assert_array_equal(reread > 0, plain > 0)  # the finest partition is the same watershed
    assert np.allclose(reread[reread > 0], 0.5)  # every arc, and every merge of arcs, reads 0.5


def test_arc_strength_decides_the_order_of_the_merges():
    # two vertical contours; the watershed map says the left one is stronger, the arc map the right one
    b = np.zeros((20, 30))
    b[:, 9], b[:, 20] = 0.9, 0.6
    arcs = np.zeros_like(b)
    arcs[:, 9], arcs[:, 20] = 0.3, 0.8
    usual = ultrametric_contour_map(b)
    reread = ultrametric_contour_map(b, arc_strength=arcs)

    def at(ucm2, col):  # the contour's strength on the doubled grid, beside pixel column col, row 10
        return ucm2[21, 2 * col - 1 : 2 * col + 4].max()

    assert at(usual, 9) > at(usual, 20) > 0
    assert 0 < at(reread, 9) < at(reread, 20)
    np.testing.assert_allclose(ucm_levels(reread), [0.3, 0.8], atol=1e-6)
    seg = ucm_to_segmentation(reread, 0.5)  # above the left contour's level: left and middle merged
    assert seg[5, 2] == seg[5, 15] != seg[5, 25]


def test_arc_strength_is_checked_and_not_combined_with_orientation():
    b = np.zeros((8, 8))
    b[:, 4] = 1.0
    with pytest.raises(ValueError, match="cannot be combined"):
        ultrametric_contour_map(b, np.zeros((8, 8)), arc_strength=b)
    with pytest.raises(ValueError, match="arc_strength"):
        ultrametric_contour_map(b, arc_strength=np.zeros((8, 9)))
    with pytest.raises(ValueError, match="arc_strength"):
        ultrametric_contour_map(b, arc_strength=b * 2)


def test_sharpened_edges_ucm_separates_two_regions_by_one_contour():
    e = _blurred_line()
    ucm2 = edges_ucm(e, sharpen=True)
    seg = ucm_to_segmentation(ucm2, 1e-6)
    assert np.unique(seg).size == 2
    assert (seg[:, :12] == seg[0, 0]).all() and (seg[:, 17:] != seg[0, 0]).all()
    assert ucm_levels(ucm2).size == 1
