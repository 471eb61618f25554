"""Ultrametric contour maps (UCMs) on the doubled grid: the benchmark's thresholds, the segmentation at
a threshold, and the image-size boundary strength (BSR conventions: Arbelaez et al., TPAMI 2011)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["ucm_thresholds", "ucm_to_segmentation", "ucm_boundary_strength"]

_EIGHT = np.ones((3, 3), dtype=bool)


def ucm_thresholds(n: int = 99) -> np.ndarray:
    """The benchmark's ``n`` evenly spaced thresholds ``k / (n + 1)``, k = 1..n.

    ``n = 99`` gives 0.01, 0.02, ..., 0.99.

    >>> ucm_thresholds(4)
    array([0.2, 0.4, 0.6, 0.8])
    """
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def ucm_to_segmentation(ucm2: np.ndarray, t: float) -> np.ndarray:
    """Segmentation of an ultrametric contour map at threshold ``t``.

    The UCM lives on the doubled grid, shape (2H+1, 2W+1): pixels at odd
    coordinates, contour strengths between them at even ones. The regions are
    the 8-connected components of ``ucm2 <= t`` on that grid, read at the pixel
    centres ``ucm2[1::2, 1::2]`` (the official ``bwlabel`` convention).

    Parameters
    ----------
    ucm2 : (2H+1, 2W+1) float array.
    t : threshold.

    Returns
    -------
    (H, W) int32 label map, labels 1..n.

    A 2x2 image with a contour of strength 0.5 between its two columns:

    >>> import numpy as np
    >>> ucm2 = np.zeros((5, 5)); ucm2[:, 2] = 0.5
    >>> ucm_to_segmentation(ucm2, 0.3).tolist(), ucm_to_segmentation(ucm2, 0.6).tolist()
    ([[1, 2], [1, 2]], [[1, 1], [1, 1]])
    """
    u = np.asarray(ucm2)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0:
        raise ValueError(f"ucm2 must be (2H+1, 2W+1), got shape {u.shape}")
    labels, _ = ndimage.label(u <= t, structure=_EIGHT)
    return labels[1::2, 1::2]


def ucm_boundary_strength(ucm2: np.ndarray) -> np.ndarray:
    """Image-size contour strength of a doubled-grid UCM, ``ucm2[2::2, 2::2]``.

    This is the soft boundary map the official benchmark thresholds with
    ``>= t``: the strength at the lower-right corner of every pixel.

    >>> import numpy as np
    >>> ucm2 = np.zeros((5, 5)); ucm2[:, 2] = 0.5
    >>> ucm_boundary_strength(ucm2).tolist()
    [[0.5, 0.0], [0.5, 0.0]]
    """
    u = np.asarray(ucm2)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0:
        raise ValueError(f"ucm2 must be (2H+1, 2W+1), got shape {u.shape}")
    return u[2::2, 2::2]
