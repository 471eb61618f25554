"""Ultrametric contour maps from boundary maps, with higra's oriented watershed and mean-boundary merging.

The pipeline is gPb-owt-ucm's (Arbelaez, Maire, Fowlkes & Malik, TPAMI 2011, Sec. 4) without its
gradient: a watershed of the boundary map gives the finest regions, the strength of every arc between
two regions is the mean boundary value along it (optionally weighted by how well the arc's direction
agrees with the contour orientation: the *oriented* watershed), and regions are merged greedily
along the weakest arc, the merged arc strengths being recomputed as means. The saliency of that
hierarchy, drawn on the doubled (Khalimsky) grid, is the ultrametric contour map.

All of this is :mod:`higra` (Perret, Chierchia, Cousty et al., "Higra: Hierarchical Graph Analysis",
SoftwareX 2019): ``mean_pb_hierarchy``, ``saliency`` and ``graph_4_adjacency_2_khalimsky``. We only
prepare the inputs and fix the output convention: shape ``(2H+1, 2W+1)``, pixels at odd coordinates,
contour strengths at even ones, values in [0, 1], the grid :func:`matbackprop.metrics.ucm_to_segmentation`
reads (regions at threshold ``t`` are the 8-connected components of ``ucm2 <= t``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ultrametric_contour_map", "ucm_levels"]


def _higra():
    try:
        import higra as hg
    except ImportError as e:  # optional dependency of the experiments extra
        raise ImportError(
            "ultrametric contour maps need higra: pip install 'higra==0.6.13' (part of the experiments extra)"
        ) from e
    return hg


def ultrametric_contour_map(
    boundary: np.ndarray, orientation: np.ndarray | None = None, *, arc_strength: np.ndarray | None = None
) -> np.ndarray:
    """Ultrametric contour map (UCM) of a boundary map.

    Parameters
    ----------
    boundary : (H, W) boundary strength, finite, in [0, 1] (e.g. a spectral boundary map or an edge
        detector's output). Edge weights of the 4-adjacency graph are the means of their two pixels.
    orientation : optional (H, W) contour-normal orientation in radians (0: the boundary value
        changes along x, i.e. a vertical contour; pi/2: along y, the row index). When given, arcs are
        weighted by how well their direction agrees with it (the oriented watershed); orientations of
        an edge are taken from its first pixel (angles cannot be averaged).
    arc_strength : optional (H, W) map in [0, 1] the arc strengths are read from instead of
        ``boundary`` (e.g. :func:`.sharpened_edges` of it): the watershed still runs on ``boundary``,
        an arc's strength is the mean over its graph edges of the larger ``arc_strength`` of their two
        pixels, and regions merge along the weakest mean, as with ``boundary`` (average linkage weighted
        by arc length). Not combined with ``orientation``.

    Returns
    -------
    ucm2 : (2H+1, 2W+1) float32 in [0, 1]. ``ucm2[1::2, 1::2]`` (pixels) is 0; a contour between two
        pixels sits at the even coordinate between them. Thresholding at ``t`` and taking 8-connected
        components of ``ucm2 <= t`` gives nested segmentations, coarser as ``t`` grows.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import segmentation
    >>> boundary = np.zeros((6, 8))
    >>> boundary[:, 3] = 1.0                               # a vertical boundary
    >>> ucm2 = segmentation.ultrametric_contour_map(boundary)
    >>> ucm2.shape, segmentation.ucm_levels(ucm2)          # (2H+1, 2W+1): one contour
    ((13, 17), array([0.5]...))
    """
    hg = _higra()
    b = np.asarray(boundary, dtype=np.float64)
    if b.ndim != 2 or min(b.shape) < 1:
        raise ValueError(f"boundary must be a non-empty (H, W) map, got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("boundary holds non-finite values")
    if b.min() < 0 or b.max() > 1:
        raise ValueError(f"boundary must lie in [0, 1], got [{b.min():.3g}, {b.max():.3g}]")
    shape = b.shape
    graph = hg.get_4_adjacency_graph(shape)
    weights = hg.weight_graph(graph, b, hg.WeightFunction.mean)
    edge_orient = None
    if orientation is not None:
        o = np.asarray(orientation, dtype=np.float64)
        if o.shape != shape or not np.all(np.isfinite(o)):
            raise ValueError(f"orientation must be a finite map of shape {shape}, got {o.shape}")
        edge_orient = hg.weight_graph(graph, np.mod(o, np.pi), hg.WeightFunction.source)
    arcs = None
    if arc_strength is not None:
        if orientation is not None:
            raise ValueError("arc_strength and orientation cannot be combined")
        a = np.asarray(arc_strength, dtype=np.float64)
        if a.shape != shape or not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
            raise ValueError(f"arc_strength must be a finite map in [0, 1] of shape {shape}, got {a.shape}")
        arcs = hg.weight_graph(graph, a, hg.WeightFunction.max)
    flat = np.zeros((2 * shape[0] + 1, 2 * shape[1] + 1), dtype=np.float32)
    if b.size == 1:  # no edges: a single region, no contour
        return flat
    if arcs is None:
        tree, altitudes = hg.mean_pb_hierarchy(graph, weights, shape=shape, edge_orientations=edge_orient)
    else:
        tree, altitudes = _mean_arc_hierarchy(hg, graph, weights, arcs)
    if tree.num_leaves() <= 1:  # one watershed basin (e.g. a constant map): one region, no contour
        return flat
    saliency = hg.saliency(tree, altitudes)
    ucm2 = hg.graph_4_adjacency_2_khalimsky(graph, saliency, shape=shape, add_extra_border=True)
    ucm2 = np.asarray(ucm2, dtype=np.float32)
    if ucm2.shape != (2 * shape[0] + 1, 2 * shape[1] + 1):  # guard the convention we rely on
        raise RuntimeError(f"unexpected Khalimsky grid {ucm2.shape} for an image of shape {shape}")
    return np.clip(ucm2, 0.0, 1.0)


def _mean_arc_hierarchy(hg, graph, watershed_weights: np.ndarray, arc_weights: np.ndarray):
    """``mean_pb_hierarchy`` with the arc means read from other edge weights than the watershed's:
    watershed regions of ``watershed_weights``, their adjacency graph, and average linkage of the mean
    ``arc_weights`` along each frontier weighted by the frontier's length (with ``arc_weights ==
    watershed_weights`` this is ``mean_pb_hierarchy`` without orientations, to rounding)."""
    labels = hg.labelisation_watershed(graph, watershed_weights)
    rag = hg.make_region_adjacency_graph_from_labelisation(graph, labels)
    total = hg.rag_accumulate_on_edges(rag, hg.Accumulators.sum, arc_weights)
    length = hg.rag_accumulate_on_edges(rag, hg.Accumulators.sum, np.ones_like(arc_weights))
    return hg.binary_partition_tree_average_linkage(rag, total / length, length)


def ucm_levels(ucm2: np.ndarray) -> np.ndarray:
    """Distinct contour strengths of a UCM (its hierarchy's levels), ascending, 0 excluded.

    Example:
        >>> import numpy as np
        >>> from matbackprop import segmentation
        >>> ucm2 = np.zeros((7, 9))
        >>> ucm2[:, 4], ucm2[4, :] = 0.4, 0.8                  # two contours of a 3 x 4 image
        >>> segmentation.ucm_levels(ucm2)
        array([0.4, 0.8])
    """
    u = np.asarray(ucm2)
    levels = np.unique(u[::2, ::2])  # contours live on even rows or even columns
    levels = np.union1d(levels, np.unique(u[1::2, ::2]))
    levels = np.union1d(levels, np.unique(u[::2, 1::2]))
    return levels[levels > 0]


def remove_small_regions(ucm2: np.ndarray, min_area: int) -> np.ndarray:
    """The UCM of the same hierarchy without regions of fewer than ``min_area`` pixels.

    The UCM is read back as a hierarchy (the single-linkage tree of its contour strengths on the pixel
    grid, which is the hierarchy it encodes), every region smaller than ``min_area`` is merged into its
    neighbours with higra's ``filter_small_nodes_from_tree``, and the saliency of what remains is the new
    UCM. Regions of at least ``min_area`` pixels keep their levels; a small region's contours disappear,
    so a small, strongly bounded blob no longer survives up to coarse thresholds. Only the order of the
    levels matters, so the step commutes with a monotone re-spacing such as :func:`.respace_ucm`.

    Parameters
    ----------
    ucm2 : (2H+1, 2W+1) UCM on the doubled grid (as :func:`ultrametric_contour_map` returns).
    min_area : smallest region size kept, in pixels; 0 or 1 returns the UCM unchanged.

    Returns
    -------
    (2H+1, 2W+1) float32 UCM.

    Example:
        >>> import numpy as np
        >>> from matbackprop import segmentation
        >>> b = np.zeros((10, 10)); b[:, 6] = 0.5                    # two halves ...
        >>> b[1, 1:5] = b[4, 1:5] = b[1:5, 1] = b[1:5, 4] = 1.0      # ... and a small ring in the left one
        >>> ucm2 = segmentation.ultrametric_contour_map(b)
        >>> segmentation.ucm_levels(ucm2)                         # the ring's region is the strongest level
        array([0.25      , 0.6666667], dtype=float32)
        >>> segmentation.ucm_levels(segmentation.remove_small_regions(ucm2, 9))
        array([0.25], dtype=float32)
    """
    u = np.asarray(ucm2, dtype=np.float64)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0 or min(u.shape) < 3:
        raise ValueError(f"ucm2 must be a (2H+1, 2W+1) map, got shape {u.shape}")
    if min_area < 0:
        raise ValueError(f"min_area must be >= 0, got {min_area}")
    if min_area <= 1 or u.max() <= 0:
        return u.astype(np.float32)
    hg = _higra()
    shape = ((u.shape[0] - 1) // 2, (u.shape[1] - 1) // 2)
    graph, weights = hg.khalimsky_2_graph_4_adjacency(u, extra_border=True)
    tree, altitudes = hg.bpt_canonical(graph, weights)
    tree, altitudes = hg.filter_small_nodes_from_tree(tree, altitudes, min_area)
    saliency = hg.saliency(tree, altitudes)
    out = hg.graph_4_adjacency_2_khalimsky(graph, saliency, shape=shape, add_extra_border=True)
    return np.asarray(out, dtype=np.float32)
