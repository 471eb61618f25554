"""Spectral boundaries: oriented gradients of normalized-cuts eigenvectors, as gPb's sPb.

The eigenvectors ``v_k`` of the generalized problem ``(D - W) v = lambda D v`` carry contour
information: they change quickly across the boundaries the affinity separates. gPb's spectral
component (Arbelaez, Maire, Fowlkes & Malik, TPAMI 2011, Sec. 3.2, eq. 8) filters every eigenvector
image with Gaussian directional-derivative filters at several orientations and sums them with weights
``1 / sqrt(lambda_k)``, so the smooth, most important eigenvectors (small ``lambda``) count most::

    sPb(x, y, theta) = sum_k  |d/dtheta (G_sigma * v_k)(x, y)| / sqrt(lambda_k)

The boundary strength is the maximum over ``theta``; the arg-max is the contour orientation.

:func:`matbackprop.ncut_embedding` returns the top eigenvalues ``mu`` of ``D^{-1/2} W D^{-1/2}``; the
generalized eigenvalues are ``lambda = 1 - mu`` (:func:`ncut_eigenvalues_from_normalized`). The trivial
eigenvector (``lambda = 0``, constant up to the degree scaling) and, after training, the near-trivial
ones would get unbounded weights: ``lambda`` is floored at ``min_eigenvalue``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "ncut_eigenvalues_from_normalized",
    "oriented_gradients",
    "spectral_boundaries",
    "combine_boundaries",
]


def ncut_eigenvalues_from_normalized(mu: np.ndarray) -> np.ndarray:
    """Generalized NCuts eigenvalues ``lambda = 1 - mu`` from those of ``D^{-1/2} W D^{-1/2}``.

    Parameters
    ----------
    mu : (k,) eigenvalues of the normalized affinity (at most 1), as returned by
        ``ncut_embedding(..., return_eigenvalues=True)``.

    Returns
    -------
    (k,) float64 array, clipped at 0 (round-off can push ``mu`` a hair above 1).

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import segmentation
    >>> segmentation.ncut_eigenvalues_from_normalized(np.array([1.0 + 1e-9, 0.9, 0.5]))   # 1 - mu, clipped at 0
    array([0. , 0.1, 0.5])
    """
    m = np.asarray(mu, dtype=np.float64)
    if m.ndim != 1:
        raise ValueError(f"mu must be a 1-D array of eigenvalues, got shape {m.shape}")
    return np.clip(1.0 - m, 0.0, None)


def _as_stack(maps: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (C, H, W), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds non-finite values")
    return a


def oriented_gradients(maps: np.ndarray, sigma: float = 1.5, num_orientations: int = 8) -> np.ndarray:
    """Absolute Gaussian directional derivatives of each map at evenly spaced orientations.

    ``|cos(theta) d/dx + sin(theta) d/dy| (G_sigma * m)`` for ``theta = o pi / O``, ``o = 0..O-1``.
    The derivative of a Gaussian is steerable, so two filtered maps per channel give every
    orientation (Freeman & Adelson, PAMI 1991).

    Parameters
    ----------
    maps : (H, W) or (C, H, W) real maps.
    sigma : Gaussian scale in pixels (> 0).
    num_orientations : number O of orientations in [0, pi) (>= 1).

    Returns
    -------
    (C, O, H, W) float64 array of non-negative derivatives.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import segmentation
    >>> step = np.zeros((8, 8))
    >>> step[:, 4:] = 1.0                                  # a vertical step edge
    >>> g = segmentation.oriented_gradients(step, sigma=1.0, num_orientations=4)
    >>> g.shape                                            # (C, O, H, W)
    (1, 4, 8, 8)
    >>> g[0].max(axis=(1, 2)).round(3)                     # strongest across the edge (theta = 0), none along it
    array([0.364, 0.257, 0.   , 0.257])
    """
    a = _as_stack(maps, "maps")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if num_orientations < 1:
        raise ValueError(f"num_orientations must be >= 1, got {num_orientations}")
    # order=(0, 1): derivative along columns (x); (1, 0): along rows (y). "nearest" keeps the
    # image border from looking like a step.
    gx = np.stack([ndimage.gaussian_filter(m, sigma, order=(0, 1), mode="nearest") for m in a])
    gy = np.stack([ndimage.gaussian_filter(m, sigma, order=(1, 0), mode="nearest") for m in a])
    theta = np.arange(num_orientations) * np.pi / num_orientations
    c = np.cos(theta)[None, :, None, None]
    s = np.sin(theta)[None, :, None, None]
    return np.abs(c * gx[:, None] + s * gy[:, None])


def spectral_boundaries(
    eigenvectors: np.ndarray,
    eigenvalues: np.ndarray,
    *,
    sigma: float = 1.5,
    num_orientations: int = 8,
    min_eigenvalue: float = 1e-3,
    skip_trivial: bool = True,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """gPb-style spectral boundary map of NCuts eigenvectors (sPb).

    ``sPb(x, theta) = sum_k w_k |d_theta (G_sigma * v_k)(x)|`` with ``w_k = 1 / sqrt(max(lambda_k,
    min_eigenvalue))``; the map is ``max_theta sPb`` and the orientation its arg-max.

    Parameters
    ----------
    eigenvectors : (k, H, W) eigenvector images ``v_k`` (e.g. the columns of ``Z`` reshaped and
        upsampled to the image), normalised as ``Z^T D Z = I``.
    eigenvalues : (k,) generalized eigenvalues ``lambda_k >= 0`` of ``(D - W) v = lambda D v``
        (use :func:`ncut_eigenvalues_from_normalized` for those of the normalized affinity).
    sigma : scale of the derivative filters, pixels.
    num_orientations : orientations in [0, pi).
    min_eigenvalue : floor on ``lambda`` so near-trivial eigenvectors get a bounded weight.
    skip_trivial : leave out the eigenvector of the smallest ``lambda`` (the constant one of NCuts).
    normalize : divide by the map's maximum so the result lies in [0, 1].

    Returns
    -------
    boundary : (H, W) float64, non-negative (in [0, 1] with ``normalize``).
    orientation : (H, W) float64 contour-normal orientation ``theta`` in [0, pi) of the strongest
        derivative at each pixel.

    Examples
    --------
    >>> import torch, matbackprop as mb
    >>> from matbackprop import segmentation
    >>> F = torch.full((64, 2), 0.05, dtype=torch.float64)   # an 8 x 8 grid: left half, right half
    >>> F[torch.arange(64) % 8 < 4, 0] += 1.0
    >>> F[torch.arange(64) % 8 >= 4, 1] += 1.0
    >>> Z, mu = mb.ncut_embedding(F, 2, return_eigenvalues=True)
    >>> v = segmentation.upsample_embedding(Z, (8, 8), (16, 16))       # (k, H, W)
    >>> lam = segmentation.ncut_eigenvalues_from_normalized(mu.numpy())
    >>> strength, orientation = segmentation.spectral_boundaries(v, lam)
    >>> strength.shape, orientation.shape
    ((16, 16), (16, 16))
    """
    v = _as_stack(eigenvectors, "eigenvectors")
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1 or lam.size != v.shape[0]:
        raise ValueError(f"need one eigenvalue per eigenvector: {lam.shape} eigenvalues, {v.shape[0]} eigenvectors")
    if not np.all(np.isfinite(lam)) or np.any(lam < -1e-6):
        raise ValueError("eigenvalues must be finite and non-negative (generalized NCuts eigenvalues 1 - mu)")
    if min_eigenvalue <= 0:
        raise ValueError(f"min_eigenvalue must be positive, got {min_eigenvalue}")
    keep = np.ones(lam.size, dtype=bool)
    if skip_trivial and lam.size > 1:
        keep[int(np.argmin(lam))] = False
    v, lam = v[keep], lam[keep]
    if sigma <= 0 or num_orientations < 1:
        raise ValueError(f"need sigma > 0 and num_orientations >= 1, got {sigma}, {num_orientations}")
    w = 1.0 / np.sqrt(np.maximum(lam, min_eigenvalue))
    # Weighting the derivatives before steering them saves one pass; one orientation at a time keeps
    # memory at O(k H W) instead of the O(k O H W) of oriented_gradients.
    gx = np.stack([wk * ndimage.gaussian_filter(m, sigma, order=(0, 1), mode="nearest") for wk, m in zip(w, v)])
    gy = np.stack([wk * ndimage.gaussian_filter(m, sigma, order=(1, 0), mode="nearest") for wk, m in zip(w, v)])
    boundary = np.full(v.shape[1:], -1.0)
    orientation = np.zeros(v.shape[1:])
    for o in range(num_orientations):
        theta = o * np.pi / num_orientations
        spb = np.abs(np.cos(theta) * gx + np.sin(theta) * gy).sum(axis=0)
        better = spb > boundary
        boundary = np.where(better, spb, boundary)
        orientation[better] = theta
    if normalize:
        top = float(boundary.max())
        if top > 0:
            boundary = boundary / top
    return boundary, orientation


def combine_boundaries(maps: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum ``sum_i w_i b_i / sum_i w_i`` of boundary maps in [0, 1] (a convex combination).

    Parameters
    ----------
    maps : N (H, W) maps with values in [0, 1].
    weights : N non-negative weights, not all zero (chosen on the val split, never on test).

    Returns
    -------
    (H, W) float64 map in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop import segmentation
    >>> segmentation.combine_boundaries([np.zeros((2, 2)), np.ones((2, 2))], [1.0, 3.0])
    array([[0.75, 0.75],
           [0.75, 0.75]])
    """
    if len(maps) == 0 or len(maps) != len(weights):
        raise ValueError(f"need one weight per map, got {len(maps)} maps and {len(weights)} weights")
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or not np.any(w > 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    stack = _as_stack(np.stack([np.asarray(m, dtype=np.float64) for m in maps]), "maps")
    if stack.min() < 0 or stack.max() > 1:
        raise ValueError("boundary maps must lie in [0, 1]")
    return np.clip(np.tensordot(w / w.sum(), stack, axes=(0, 0)), 0.0, 1.0)
