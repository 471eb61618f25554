"""From normalized-cuts embeddings to segmentations: k-means on the rows of the embedding.

As in spectral clustering (Ng, Jordan & Weiss 2001), the rows of ``Z`` are normalised to unit length
before clustering, so the scale of each pixel's degree does not matter. One hierarchy level per number
of clusters ``c``; the levels are scored at ODS/OIS like the thresholds of a UCM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as nnf

__all__ = ["kmeans", "segment_embedding"]


def _normalise_rows(Z: torch.Tensor) -> torch.Tensor:
    return Z / Z.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _sq_distances(X: torch.Tensor, sq: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return (sq.unsqueeze(1) - 2.0 * X @ centres.T + (centres * centres).sum(1)).clamp_min(0.0)


def kmeans(X: torch.Tensor, num_clusters: int, *, iters: int = 30, restarts: int = 2, seed: int = 0) -> torch.Tensor:
    """Centroids ``(c, f)`` of k-means on points ``X (N, f)`` (k-means++ seeding, best of ``restarts``)."""
    if X.dim() != 2 or X.shape[0] < num_clusters:
        raise ValueError(f"kmeans: need at least {num_clusters} points (N, f), got shape {tuple(X.shape)}")
    g = torch.Generator().manual_seed(seed)
    sq = (X * X).sum(1)
    if restarts < 1:
        raise ValueError(f"kmeans: restarts must be >= 1, got {restarts}")
    best, best_cost = None, float("inf")
    for _ in range(restarts):
        chosen = [int(torch.randint(len(X), (1,), generator=g))]
        d2 = _sq_distances(X, sq, X[chosen[-1:]]).squeeze(1)
        for _ in range(1, num_clusters):
            total = d2.sum()
            probs = d2 / total if total > 0 else torch.full_like(d2, 1.0 / len(d2))
            chosen.append(int(torch.multinomial(probs, 1, generator=g)))
            d2 = torch.minimum(d2, _sq_distances(X, sq, X[chosen[-1:]]).squeeze(1))
        centres = X[chosen]
        assign = None
        for _ in range(iters):
            new_assign = _sq_distances(X, sq, centres).argmin(1)
            if assign is not None and torch.equal(new_assign, assign):
                break
            assign = new_assign
            counts = torch.bincount(assign, minlength=num_clusters).to(X.dtype)
            sums = torch.zeros_like(centres).index_add_(0, assign, X)
            filled = counts > 0
            centres = torch.where(filled.unsqueeze(1), sums / counts.clamp_min(1).unsqueeze(1), centres)
        cost = float(_sq_distances(X, sq, centres).amin(1).sum())
        if cost < best_cost:
            best, best_cost = centres, cost
    assert best is not None, "restarts >= 1, so at least one clustering ran"
    return best


@torch.no_grad()
def segment_embedding(
    Z: torch.Tensor, grid: tuple[int, int], out_size: tuple[int, int], cluster_counts: Sequence[int], seed: int = 0
) -> list[np.ndarray]:
    """Segmentations ``(H, W)`` with labels ``1..c``, one per ``c`` in ``cluster_counts``.

    ``Z (h*w, k)`` is the embedding on a ``grid = (h, w)`` working grid. k-means runs on the grid's
    normalised rows; every pixel of the ``out_size`` image is then assigned to the nearest centroid of
    its bilinearly upsampled embedding, which gives boundaries finer than the grid.
    """
    h, w = grid
    Z = Z.float()
    rows = _normalise_rows(Z)
    fine = nnf.interpolate(Z.T.reshape(1, -1, h, w), size=out_size, mode="bilinear", align_corners=False)
    fine = _normalise_rows(fine.reshape(Z.shape[1], -1).T)
    levels = []
    for c in cluster_counts:
        c = min(int(c), len(rows))
        centres = kmeans(rows, c, restarts=1, seed=seed)
        # Rows are unit vectors: the nearest centre is the one with the largest 2 x.c - |c|^2.
        labels = (2.0 * fine @ centres.T - (centres * centres).sum(1)).argmax(1).reshape(out_size)
        levels.append(labels.numpy().astype(np.int32) + 1)
    return levels
