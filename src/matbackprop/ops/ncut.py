"""Normalized cuts as a layer (Shi & Malik 2000; DeepNCuts of Ionescu et al. 2015), and the projector loss.

Low-rank route. For non-negative features ``F (N, d)`` and the linear affinity ``W = F F^T``, the
degrees are ``deg = F (F^T 1)`` and the normalised affinity is ``M = D^{-1/2} W D^{-1/2} = G G^T`` with
``G = D^{-1/2} F``. The top-``k`` eigenvectors of ``M`` are the top-``k`` left singular vectors ``U_k`` of
``G``, and the embedding is ``Z = D^{-1/2} U_k``. Nothing of size ``N x N`` is formed: the cost is
``O(N d^2)``. Gradients flow through the SVD rule with ``dL/dU != 0``.

Dense route, for small ``N`` and any symmetric non-negative affinity (e.g. Gaussian on colour and
position): ``M = D^{-1/2} W D^{-1/2}``, eigendecomposition, ``Z = D^{-1/2} U_k``. It checks the low-rank
route and serves as the classic NCuts baseline.

Ties. A well-trained network drives the top-``k`` eigenvalues of ``M`` towards 1 (exactly 1, ``k``-fold,
for ``k`` perfectly separated segments). Losses that see ``Z`` only through its column span (such as
:func:`projector_loss`) depend on ``U_k`` only through its span; then couplings between tied
eigenvalues inside the top-``k`` cancel, only the gaps between selected and rejected eigenvalues enter,
and the tie policy of :func:`matbackprop.svd` and :func:`matbackprop.eigh` keeps the gradient finite and
exact.
"""

from __future__ import annotations

import torch

from ..linalg._checks import batch_index, check_finite, check_square, check_symmetric, spectral_dtype
from ..linalg._common import no_autocast
from ..linalg.eigh import eigh
from ..linalg.svd import svd

__all__ = ["ncut_embedding", "ncut_embedding_dense", "gaussian_affinity", "projector_loss"]


def _degree_floor(deg: torch.Tensor, eps: float) -> torch.Tensor:
    # A node whose features are all zero has degree 0 and a zero row in G; the floor, relative to the
    # mean degree, only keeps 1/sqrt(deg) finite there.
    return deg + eps * deg.mean(-1, keepdim=True).clamp_min(torch.finfo(deg.dtype).tiny)


def _check_k(k: int, limit: int, name: str) -> None:
    if not 1 <= k <= limit:
        raise ValueError(f"{name}: k must be between 1 and {limit}, got {k}")


def ncut_embedding(
    F: torch.Tensor, k: int, *, eps: float = 1e-6, return_eigenvalues: bool = False, check: bool = True
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Normalized-cuts embedding ``Z (..., N, k)`` of non-negative features ``F (..., N, d)``.

    ``Z = D^{-1/2} U_k`` with ``U_k`` the top-``k`` left singular vectors of ``G = D^{-1/2} F`` and degrees
    ``deg = F (F^T 1) + eps * mean(deg)``; ``k <= min(N, d)``. With ``return_eigenvalues`` also returns
    the top-``k`` eigenvalues ``s^2 (..., k)`` of ``D^{-1/2} F F^T D^{-1/2}`` (descending, at most 1).
    Tall ``G`` (``N >= d``) is decomposed through its float64 Gram matrix (``svd(gram=True)``).
    Half-precision features (e.g. under autocast) are computed in float32 and give a float32 ``Z``.
    """
    if F.dim() < 2:
        raise ValueError(f"ncut_embedding: features must be (..., N, d), got shape {tuple(F.shape)}")
    N, d = F.shape[-2:]
    _check_k(k, min(N, d), "ncut_embedding")
    if check and F.numel() > 0:
        lo, hi = torch.aminmax(F)
        if not (bool(lo >= 0) and bool(torch.isfinite(hi))):  # one pass; NaN fails both comparisons
            check_finite(F, "ncut_embedding")
            negative = (F < 0).flatten(-2).any(-1)
            where = f" at batch index {batch_index(negative)}" if negative.dim() else ""
            raise ValueError(
                f"ncut_embedding: features must be non-negative for the linear affinity F F^T{where} "
                "(apply a ReLU first)"
            )
    # Half-precision features (autocast) are upcast and the degrees formed with autocast off: bfloat16
    # degrees would perturb the normalised affinity by 1e-2 before the SVD could upcast it.
    F = spectral_dtype(F)
    with no_autocast(F):
        deg = _degree_floor((F @ F.sum(-2, keepdim=True).transpose(-2, -1)).squeeze(-1), eps)  # (..., N)
        scale = deg.rsqrt().unsqueeze(-1)
        U, S, _ = svd(scale * F, gram=N >= d, check=False)
        Z = scale * U[..., :k]
    if return_eigenvalues:
        return Z, S[..., :k] ** 2
    return Z


def ncut_embedding_dense(
    W: torch.Tensor, k: int, *, eps: float = 1e-6, return_eigenvalues: bool = False, check: bool = True
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Normalized-cuts embedding ``Z (..., N, k)`` from a dense symmetric non-negative affinity
    ``W (..., N, N)``, through the eigendecomposition of ``D^{-1/2} W D^{-1/2}``."""
    check_square(W, "ncut_embedding_dense")
    N = W.shape[-1]
    _check_k(k, N, "ncut_embedding_dense")
    if check:
        check_finite(W, "ncut_embedding_dense")
        check_symmetric(W, "ncut_embedding_dense")
        if bool((W < 0).any()):
            raise ValueError("ncut_embedding_dense: the affinity must be non-negative")
    scale = _degree_floor(W.sum(-1), eps).rsqrt()
    M = scale.unsqueeze(-1) * W * scale.unsqueeze(-2)
    L, Q = eigh(0.5 * (M + M.transpose(-2, -1)), check=False)
    Z = scale.unsqueeze(-1) * Q[..., -k:].flip(-1)
    if return_eigenvalues:
        return Z, L[..., -k:].flip(-1)
    return Z


def gaussian_affinity(X: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Dense Gaussian affinity ``W_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))`` of points ``X (..., N, f)``."""
    sq = X.pow(2).sum(-1)
    dist2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * X @ X.transpose(-2, -1)).clamp_min(0.0)
    return torch.exp(-dist2 / (2.0 * torch.as_tensor(sigma, dtype=X.dtype, device=X.device) ** 2))


def _segment_statistics(Z: torch.Tensor, E: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``E^T Z (..., s, k)`` and the pseudo-inverse of ``E^T E (..., s, s)`` for labels or an indicator."""
    if not E.is_floating_point():
        if E.shape != Z.shape[:-1]:
            raise ValueError(f"projector_loss: label map {tuple(E.shape)} must have shape {tuple(Z.shape[:-1])}")
        if bool((E < 0).any()):
            raise ValueError("projector_loss: labels must be non-negative integers")
        s = int(E.max()) + 1 if E.numel() else 1
        index = E.long().unsqueeze(-1).expand_as(Z)
        EtZ = Z.new_zeros(Z.shape[:-2] + (s, Z.shape[-1])).scatter_add(-2, index, Z)
        counts = torch.zeros(E.shape[:-1] + (s,), dtype=Z.dtype, device=Z.device)
        counts = counts.scatter_add(-1, E.long(), torch.ones_like(E, dtype=Z.dtype))
        inv = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
        return EtZ, torch.diag_embed(inv)
    if E.shape[:-1] != Z.shape[:-1]:
        raise ValueError(f"projector_loss: indicator {tuple(E.shape)} must have shape {tuple(Z.shape[:-1])} + (s,)")
    E = E.to(Z.dtype)
    return E.transpose(-2, -1) @ Z, torch.linalg.pinv(E.transpose(-2, -1) @ E, hermitian=True)


def projector_loss(Z: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """``J = 1/2 ||Pi_Z - Pi_E||_F^2`` between the column spaces of ``Z (..., N, k)`` and of a segmentation.

    ``E`` is an integer label map ``(..., N)`` (labels ``0..s-1``; empty labels are ignored) or an
    indicator matrix ``(..., N, s)``. With ``Pi_Z = Z (Z^T Z)^{-1} Z^T`` and ``Pi_E = E (E^T E)^+ E^T``,

        J = (rank Z + rank E) / 2 - tr(Pi_Z Pi_E),
        tr(Pi_Z Pi_E) = tr((Z^T Z)^{-1} (E^T Z)^T (E^T E)^+ (E^T Z)),

    ``O(N k (k + s))`` work for a label map (an indicator adds ``O(N s^2)`` for ``E^T E``), no ``N x N``
    matrix; everything is accumulated in float64, so that a float32 network still sees a loss accurate
    near its minimum 0. Its gradient is the projector rule ``dJ/dZ = -2 (I - Pi_Z) Pi_E Z (Z^T Z)^{-1}``. Returns
    ``(...)``: one loss per batch element. ``Z`` must have full column rank.
    """
    if Z.dim() < 2:
        raise ValueError(f"projector_loss: Z must be (..., N, k), got shape {tuple(Z.shape)}")
    out_dtype = Z.dtype
    Z = Z.double()
    EtZ, EtE_pinv = _segment_statistics(Z, E)
    gram = Z.transpose(-2, -1) @ Z
    # Numerically rank deficient: Z^T Z's eigenvalues spread beyond k * eps of Z's own dtype.
    ev = torch.linalg.eigvalsh(gram.detach())
    deficient = ev[..., 0] <= Z.shape[-1] * torch.finfo(out_dtype).eps * ev[..., -1].clamp_min(torch.finfo(torch.float64).tiny)
    if bool(deficient.any()):
        where = f" at batch index {batch_index(deficient)}" if deficient.dim() else ""
        raise ValueError(f"projector_loss: Z is rank deficient (Z^T Z is numerically singular){where}")
    chol = torch.linalg.cholesky(gram)
    cross = EtZ.transpose(-2, -1) @ EtE_pinv @ EtZ  # (..., k, k)
    overlap = torch.cholesky_solve(cross, chol).diagonal(dim1=-2, dim2=-1).sum(-1)
    rank_E = torch.linalg.matrix_rank(EtE_pinv, hermitian=True).to(torch.float64)
    J = 0.5 * (Z.shape[-1] + rank_E) - overlap
    return J.to(out_dtype)
