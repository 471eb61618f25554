"""A training signal closer to the boundary benchmark: rank the embedding's grid edges like the humans do.

The table scores UCMs built from spectral boundaries, ``sum_k w_k |d (G_sigma * v_k)|`` of the NCuts
eigenvectors (:func:`matbackprop.segmentation.spectral_boundaries`), while the projector loss of
Ionescu et al. (2015) compares column spaces. A lower projector loss has not meant better UCMs here, so
this module adds a term on what the hierarchy reads: on the node grid, the strength of the edge between
neighbours ``i`` and ``j`` is ``g_ij = sum_k |z_ik - z_jk|`` (the finite-difference form of the
eigenvectors' gradient, unweighted), taken on a log scale and standardised over the grid, so that only
the ordering matters and no single textured edge dominates. Edges across a human boundary should be
stronger than edges inside a region; the loss is the logistic surrogate of the area under the ROC curve
of that ordering,

    L = mean_{a in across, b in inside} log(1 + exp(tau (s_b - s_a))),   s = standardise(log g),

which is what merging weakest boundaries first (the mean-boundary hierarchy) rewards. ``O(|across|
|inside|)`` work per image, a few million terms on a training crop. The log scale matters: on raw
strengths scaled by their mean, a few strong edges inside textured regions dominate the mean of the
surrogate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from scipy.stats import rankdata

__all__ = ["grid_edge_strengths", "grid_boundary_labels", "boundary_ranking_loss", "edge_auc"]


def grid_edge_strengths(Z: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Strengths ``(E,)`` of the 4-neighbour edges of an embedding ``Z (N, k)`` on an ``(h, w)`` grid.

    ``g_ij = sum_k |z_ik - z_jk|``; horizontal edges first (row-major), then vertical ones, so
    ``E = h (w - 1) + (h - 1) w``.
    """
    h, w = grid
    if Z.dim() != 2 or Z.shape[0] != h * w:
        raise ValueError(f"Z must be (h*w, k) = ({h * w}, k) for the grid {grid}, got {tuple(Z.shape)}")
    img = Z.reshape(h, w, -1)
    across_cols = (img[:, 1:] - img[:, :-1]).abs().sum(-1)
    across_rows = (img[1:] - img[:-1]).abs().sum(-1)
    return torch.cat([across_cols.reshape(-1), across_rows.reshape(-1)])


def grid_boundary_labels(labels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(E,)`` bool: whether each edge of :func:`grid_edge_strengths` joins two different segments."""
    h, w = grid
    if labels.numel() != h * w:
        raise ValueError(f"labels must hold h*w = {h * w} entries for the grid {grid}, got {labels.numel()}")
    lab = labels.reshape(h, w)
    return torch.cat([(lab[:, 1:] != lab[:, :-1]).reshape(-1), (lab[1:] != lab[:-1]).reshape(-1)])


def boundary_ranking_loss(
    Z: torch.Tensor, labels: torch.Tensor, grid: tuple[int, int], tau: float = 2.0
) -> torch.Tensor:
    """Logistic ranking loss (scalar, ``Z``'s dtype) of edges across segments above edges inside them.

    Parameters
    ----------
    Z : (N, k) embedding on the ``(h, w)`` grid, ``N = h w`` (row-major).
    labels : (N,) integer segment of each node.
    grid : (h, w).
    tau : sharpness of the surrogate, applied to standardised log strengths.

    Returns 0 (with a zero gradient) when the grid has no edge of one of the two kinds.

    Example:
        >>> import torch
        >>> labels = torch.tensor([0, 0, 1, 1] * 4)               # a 4 x 4 grid, left and right halves
        >>> good = torch.nn.functional.one_hot(labels).double()   # constant inside, a step at the cut
        >>> bad = torch.nn.functional.one_hot(torch.tensor([0, 1] * 8)).double()  # steps everywhere else
        >>> bool(boundary_ranking_loss(good, labels, (4, 4)) < 0.1 < boundary_ranking_loss(bad, labels, (4, 4)))
        True
    """
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    g = grid_edge_strengths(Z, grid)
    across = grid_boundary_labels(labels, grid)
    if bool(across.all()) or not bool(across.any()):
        return Z.sum() * 0.0
    # The floor keeps log finite on edges of exactly equal neighbours (e.g. zero-feature nodes).
    log_g = torch.log(g + 1e-6 * g.mean().detach() + torch.finfo(g.dtype).tiny)
    s = (log_g - log_g.mean()) / log_g.std().clamp_min(1e-6)
    margins = s[~across].unsqueeze(0) - s[across].unsqueeze(1)  # (|across|, |inside|)
    return nnf.softplus(tau * margins).mean()


def edge_auc(Z: torch.Tensor, labels: torch.Tensor, grid: tuple[int, int]) -> float:
    """Area under the ROC curve of the grid-edge strengths of ``Z (N, k)`` as a detector of the edges across
    the segments of ``labels (N,)``: the share of (across, inside) pairs ordered correctly, ties counted
    half (the Mann-Whitney statistic). NaN when the grid has no edge of one of the two kinds.

    Example:
        >>> import torch
        >>> labels = torch.tensor([0, 0, 1, 1] * 4)
        >>> edge_auc(torch.nn.functional.one_hot(labels).double(), labels, (4, 4))
        1.0
    """
    g = grid_edge_strengths(Z.detach(), grid).double().cpu().numpy()
    across = grid_boundary_labels(labels, grid).cpu().numpy()
    n_across, n_inside = int(across.sum()), int((~across).sum())
    if n_across == 0 or n_inside == 0:
        return float("nan")
    ranks = rankdata(g)
    return float((ranks[across].sum() - n_across * (n_across + 1) / 2) / (n_across * n_inside))
