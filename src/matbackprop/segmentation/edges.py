"""Thin edge maps: non-maximum suppression along the edge normal, and the sharpened arc strengths of a UCM.

An edge detector's probability map (HED's, for instance) is a few pixels thick around every contour. The
watershed of such a map puts its arcs on the crests, but the mean value along an arc then mixes the crest
with the flanks of nearby contours. :func:`edge_nms` keeps only the crests (the orientation of the normal
comes from the second derivatives of the smoothed map, as in the non-maximum suppression of Dollar &
Zitnick's structured edges, TPAMI 2015); :func:`sharpened_edges` mixes the map with its suppressed,
slightly widened crests, the arc strengths :func:`.ultrametric_contour_map` can take through its
``arc_strength`` argument.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["edge_nms", "sharpened_edges"]


def _check(edges: np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 2 or min(e.shape) < 1:
        raise ValueError(f"edges must be a non-empty (H, W) map, got shape {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("edges hold non-finite values")
    return e


def edge_nms(edges: np.ndarray, smooth: float = 2.0) -> np.ndarray:
    """The edge map with every pixel set to 0 that is below either neighbour along its normal.

    The normal's orientation is ``theta = arctan(E_yy sign(-E_xy) / E_xx)`` of the map smoothed by a
    Gaussian of standard deviation ``smooth``; the two neighbours at distance 1 along it are read with
    bilinear interpolation.

    Parameters
    ----------
    edges : (H, W) edge strength, finite.
    smooth : scale (pixels) of the smoothing the orientation is estimated from.

    Returns
    -------
    (H, W) float64: ``edges`` on its crests, 0 elsewhere.

    Example:
        >>> import numpy as np
        >>> from matbackprop import segmentation
        >>> x = np.arange(15.0)
        >>> blurred = np.tile(np.exp(-0.5 * (x - 7) ** 2 / 2.0), (9, 1))   # a vertical edge 3-4 px wide
        >>> thin = segmentation.edge_nms(blurred)
        >>> np.flatnonzero(thin[4])                                          # one pixel wide
        array([7])
    """
    e = _check(edges)
    if not smooth > 0:
        raise ValueError(f"smooth must be positive, got {smooth}")
    s = ndimage.gaussian_filter(e, smooth)
    gy, gx = np.gradient(s)
    gyy, _ = np.gradient(gy)
    gxy, gxx = np.gradient(gx)
    normal = np.mod(np.arctan(gyy * np.sign(-gxy) / (gxx + 1e-5)), np.pi)
    rows, cols = np.mgrid[0 : e.shape[0], 0 : e.shape[1]].astype(np.float64)
    out = e.copy()
    for step in (-1.0, 1.0):
        beside = ndimage.map_coordinates(
            e, [rows + step * np.sin(normal), cols + step * np.cos(normal)], order=1, mode="nearest"
        )
        out[e < beside] = 0.0
    return out


def sharpened_edges(edges: np.ndarray, crest_weight: float = 0.5) -> np.ndarray:
    """``(1 - c) E + c max_3x3(NMS(E))``: an edge map pulled towards its crests, widened by one pixel.

    Used as the arc strength of a UCM whose watershed runs on ``E`` itself: an arc on a crest keeps its
    value, an arc that runs off the crests (through a flank or a flat region) loses up to ``c`` of it. The
    3 x 3 maximum lets an arc half a pixel off the crest still read it.

    Parameters
    ----------
    edges : (H, W) edge strength in [0, 1].
    crest_weight : ``c`` in [0, 1]; 0 returns ``edges``.

    Returns
    -------
    (H, W) float64 in [0, 1].

    Example:
        >>> import numpy as np
        >>> from matbackprop import segmentation
        >>> x = np.arange(15.0)
        >>> blurred = np.tile(np.exp(-0.5 * (x - 7) ** 2 / 2.0), (9, 1))
        >>> sharp = segmentation.sharpened_edges(blurred)
        >>> bool(sharp[4, 7] == blurred[4, 7]), bool(sharp[4, 3] < blurred[4, 3])   # crest kept, flank lowered
        (True, True)
    """
    e = _check(edges)
    if e.min() < 0 or e.max() > 1:
        raise ValueError(f"edges must lie in [0, 1], got [{e.min():.3g}, {e.max():.3g}]")
    if not 0 <= crest_weight <= 1:
        raise ValueError(f"crest_weight must lie in [0, 1], got {crest_weight}")
    crests = ndimage.maximum_filter(edge_nms(e), size=3)
    return (1.0 - crest_weight) * e + crest_weight * crests
