"""From an NCuts embedding or an edge map to an ultrametric contour map (the whole hierarchy step).

``embedding_ucm``: the embedding ``Z (h*w, k)`` of a working grid is upsampled to the image
(bilinear, per eigenvector), turned into gPb-style spectral boundaries
(:func:`~matbackprop.segmentation.spectral_boundaries`), optionally mixed with an edge map, and fed to
the oriented-watershed mean-boundary hierarchy (:func:`~matbackprop.segmentation.ultrametric_contour_map`).
``edges_ucm`` does the last step for an edge detector's output alone.

``power`` re-spaces the UCM's levels: the benchmark reads a UCM at the 99 fixed thresholds 0.01 ..
0.99, and mean-boundary strengths of spectral maps crowd near 0, where those thresholds are too
coarse to tell the levels apart. ``ucm2 ** power`` (power < 1) is monotone, so the hierarchy is the
same; only which of its levels the thresholds sample changes. It is one number per method, chosen on
the val split.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf

from .edges import sharpened_edges
from .spectral import combine_boundaries, ncut_eigenvalues_from_normalized, spectral_boundaries
from .ucm import ultrametric_contour_map

__all__ = ["upsample_embedding", "embedding_boundaries", "embedding_ucm", "edges_ucm", "respace_ucm"]


def upsample_embedding(Z: torch.Tensor | np.ndarray, grid: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """Eigenvector images ``(k, H, W)`` from an embedding ``Z (h*w, k)`` on a ``grid = (h, w)`` grid.

    Bilinear interpolation with ``align_corners=False`` (each grid node is the centre of its cell).

    Example:
        >>> import torch, matbackprop as mb
        >>> from matbackprop import segmentation
        >>> F = torch.full((64, 2), 0.05, dtype=torch.float64)   # an 8 x 8 grid: left half, right half
        >>> F[torch.arange(64) % 8 < 4, 0] += 1.0
        >>> F[torch.arange(64) % 8 >= 4, 1] += 1.0
        >>> Z, mu = mb.ncut_embedding(F, 2, return_eigenvalues=True)
        >>> segmentation.upsample_embedding(Z, (8, 8), (16, 16)).shape   # (k, H, W) eigenvector images
        (2, 16, 16)
    """
    Zt = torch.as_tensor(Z, dtype=torch.float64)
    h, w = grid
    if Zt.dim() != 2 or Zt.shape[0] != h * w:
        raise ValueError(f"Z must be (h*w, k) = ({h * w}, k) for grid {grid}, got {tuple(Zt.shape)}")
    img = Zt.T.reshape(1, -1, h, w)
    if (h, w) != tuple(out_size):
        img = nnf.interpolate(img, size=tuple(out_size), mode="bilinear", align_corners=False)
    return img[0].numpy()


def respace_ucm(ucm2: np.ndarray, power: float = 1.0) -> np.ndarray:
    """``ucm2 ** power`` as float32 in [0, 1] (a monotone map: the same hierarchy).

    Example:
        >>> import numpy as np
        >>> from matbackprop import segmentation
        >>> segmentation.respace_ucm(np.array([[0.0, 0.5], [0.25, 1.0]]), power=2.0)
        array([[0.    , 0.25  ],
               [0.0625, 1.    ]], dtype=float32)
    """
    if not power > 0:
        raise ValueError(f"power must be positive, got {power}")
    u = np.clip(np.asarray(ucm2, dtype=np.float64), 0.0, 1.0)
    return (u if power == 1.0 else u**power).astype(np.float32)


def embedding_boundaries(
    Z: torch.Tensor | np.ndarray,
    mu: torch.Tensor | np.ndarray,
    grid: tuple[int, int],
    out_size: tuple[int, int],
    *,
    sigma: float = 2.0,
    num_orientations: int = 8,
    min_eigenvalue: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectral boundaries ``(H, W)`` in [0, 1] and orientations of an NCuts embedding.

    Parameters
    ----------
    Z : (h*w, k) embedding (``ncut_embedding``'s output).
    mu : (k,) eigenvalues of ``D^{-1/2} W D^{-1/2}`` (``return_eigenvalues=True``); converted to the
        generalized ``lambda = 1 - mu`` that weight the eigenvectors as ``1 / sqrt(lambda)``.
    grid, out_size : working grid (h, w) and image size (H, W).

    Examples
    --------
    >>> import torch, matbackprop as mb
    >>> from matbackprop import segmentation
    >>> F = torch.full((64, 2), 0.05, dtype=torch.float64)   # an 8 x 8 grid: left half, right half
    >>> F[torch.arange(64) % 8 < 4, 0] += 1.0
    >>> F[torch.arange(64) % 8 >= 4, 1] += 1.0
    >>> Z, mu = mb.ncut_embedding(F, 2, return_eigenvalues=True)
    >>> strength, orientation = segmentation.embedding_boundaries(Z, mu, (8, 8), (16, 16))
    >>> strength.shape, float(strength.max())
    ((16, 16), 1.0)
    >>> bool(strength[:, 7:9].mean() > 10 * strength[:, :4].mean())   # strong at the cut, weak inside
    True
    """
    lam = ncut_eigenvalues_from_normalized(np.asarray(torch.as_tensor(mu, dtype=torch.float64)))
    vectors = upsample_embedding(Z, grid, out_size)
    return spectral_boundaries(
        vectors, lam, sigma=sigma, num_orientations=num_orientations, min_eigenvalue=min_eigenvalue
    )


def embedding_ucm(
    Z: torch.Tensor | np.ndarray,
    mu: torch.Tensor | np.ndarray,
    grid: tuple[int, int],
    out_size: tuple[int, int],
    *,
    sigma: float = 2.0,
    power: float = 1.0,
    oriented: bool = True,
    edges: np.ndarray | None = None,
    edge_weight: float = 0.0,
) -> np.ndarray:
    """UCM ``(2H+1, 2W+1)`` float32 in [0, 1] of an NCuts embedding, optionally mixed with edges.

    With ``edges`` (an (H, W) map in [0, 1]) and ``edge_weight`` ``a`` in [0, 1], the boundary map is
    ``(1 - a) sPb + a edges`` (weights chosen on the val split).

    Example:
        >>> import torch, matbackprop as mb
        >>> from matbackprop import segmentation
        >>> F = torch.full((64, 2), 0.05, dtype=torch.float64)   # an 8 x 8 grid: left half, right half
        >>> F[torch.arange(64) % 8 < 4, 0] += 1.0
        >>> F[torch.arange(64) % 8 >= 4, 1] += 1.0
        >>> Z, mu = mb.ncut_embedding(F, 2, return_eigenvalues=True)
        >>> ucm2 = segmentation.embedding_ucm(Z, mu, (8, 8), (16, 16))    # doubled grid (2H+1, 2W+1)
        >>> ucm2.shape
        (33, 33)
        >>> seg = mb.metrics.ucm_to_segmentation(ucm2, 0.5)
        >>> seg[0]                                                          # the two halves
        array([1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]...)
    """
    boundary, orientation = embedding_boundaries(Z, mu, grid, out_size, sigma=sigma)
    if edges is not None and edge_weight > 0:
        if not 0 <= edge_weight <= 1:
            raise ValueError(f"edge_weight must lie in [0, 1], got {edge_weight}")
        boundary = combine_boundaries([boundary, edges], [1.0 - edge_weight, edge_weight])
    ucm2 = ultrametric_contour_map(boundary, orientation if oriented else None)
    return respace_ucm(ucm2, power)


def edges_ucm(edges: np.ndarray, *, power: float = 1.0, sharpen: bool = False) -> np.ndarray:
    """UCM of an edge map in [0, 1] (no NCuts layer): the "backbone edges -> hierarchy" ablation.

    With ``sharpen``, the watershed runs on ``edges`` and the arc strengths are read from
    :func:`.sharpened_edges` of it (crests kept, flanks lowered).

    Example:
        >>> import numpy as np
        >>> from matbackprop import segmentation
        >>> edges = np.zeros((6, 8))
        >>> edges[:, 3] = 1.0                                  # one vertical edge
        >>> ucm2 = segmentation.edges_ucm(edges)
        >>> ucm2.shape, segmentation.ucm_levels(ucm2)          # one contour, one level
        ((13, 17), array([0.5], dtype=float32))
    """
    arcs = sharpened_edges(edges) if sharpen else None
    return respace_ucm(ultrametric_contour_map(edges, arc_strength=arcs), power)
