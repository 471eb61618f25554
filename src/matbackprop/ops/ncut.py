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

from typing import Literal, overload

import torch

from ..linalg.checks import check_finite, check_square, check_symmetric, is_tracing, physical, require
from ..linalg.common import no_autocast
from ..linalg.dtypes import as_spectral
from ..linalg.eigh import eigh
from ..linalg.svd import svd

__all__ = ["ncut_embedding", "ncut_embedding_dense", "gaussian_affinity", "projector_loss"]


def _degree_floor(deg: torch.Tensor, eps: float) -> torch.Tensor:
    """The degrees, with ``eps * mean(deg)`` in place of those that vanish, and only there.

    A node whose features are all zero (or an isolated node of a dense affinity) has degree 0 and a
    zero row in ``G``: its embedding row is 0 whatever the floor, which only keeps ``1/sqrt(deg)``
    finite. Positive degrees are left exactly as they are, so the embedding is exactly the
    normalized-cuts one whenever every degree is positive.
    """
    floor = eps * deg.mean(-1, keepdim=True).clamp_min(torch.finfo(deg.dtype).tiny)
    return torch.where(deg > 0, deg, floor)


def _check_non_negative(X: torch.Tensor, name: str, problem: str) -> None:
    """Finite and non-negative entries, per matrix; eagerly one pass over the physical batch (also under
    vmap), traced one branch-free assertion (the policy of :mod:`matbackprop.linalg.checks`)."""
    P = X if is_tracing() else physical(X)
    if P.numel() == 0:
        return
    if not is_tracing():
        lo, hi = torch.aminmax(P)
        if bool(lo >= 0) and bool(torch.isfinite(hi)):  # the common case: one pass; NaN fails both
            return
        check_finite(P, name)
    require(((P >= 0) & torch.isfinite(P)).flatten(-2).all(-1), name, problem)  # traced: NaN/Inf fail here


def _check_k(k: int, limit: int, name: str) -> None:
    if not 1 <= k <= limit:
        raise ValueError(f"{name}: k must be between 1 and {limit}, got {k}")


# The return type follows `return_eigenvalues` (overloads so that type checkers see `Z` alone by default).
@overload
def ncut_embedding(
    F: torch.Tensor, k: int, *, eps: float = ..., return_eigenvalues: Literal[False] = ..., check: bool = ...
) -> torch.Tensor: ...
@overload
def ncut_embedding(
    F: torch.Tensor, k: int, *, eps: float = ..., return_eigenvalues: Literal[True], check: bool = ...
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def ncut_embedding(
    F: torch.Tensor, k: int, *, eps: float = ..., return_eigenvalues: bool, check: bool = ...
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...


def ncut_embedding(
    F: torch.Tensor, k: int, *, eps: float = 1e-6, return_eigenvalues: bool = False, check: bool = True
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Normalized-cuts embedding ``Z (..., N, k)`` of non-negative features ``F (..., N, d)``.

    ``Z = D^{-1/2} U_k`` with ``U_k`` the top-``k`` left singular vectors of ``G = D^{-1/2} F`` and degrees
    ``deg = F (F^T 1)``; ``k <= min(N, d)``. A node with degree 0 (all-zero features) gets the floor
    ``eps * mean(deg)`` instead, and an embedding row of 0; no other degree is changed, so ``Z`` is
    exactly the normalized-cuts embedding of ``W = F F^T`` whenever every degree is positive.
    With ``return_eigenvalues`` also returns the top-``k`` eigenvalues ``s^2 (..., k)`` of
    ``D^{-1/2} F F^T D^{-1/2}`` (descending, at most 1).
    Tall ``G`` (``N >= d``) is decomposed through its float64 Gram matrix (``svd(gram=True)``).
    Half-precision features (e.g. under autocast) are computed in float32 and give a float32 ``Z``.
    ``check=False`` skips the data checks (finite, non-negative); see :mod:`matbackprop.linalg.checks`
    for how they behave under ``torch.func``, ``torch.compile`` and ``torch.export``.

    Example:
        >>> import torch, matbackprop as mb
        >>> F = torch.zeros(6, 2, dtype=torch.float64)            # 6 nodes in two disconnected groups
        >>> F[:3, 0], F[3:, 1] = 1.0, 1.0
        >>> Z, eigenvalues = mb.ncut_embedding(F, 2, return_eigenvalues=True)
        >>> Z.shape, eigenvalues
        (torch.Size([6, 2]), tensor([1., 1.], dtype=torch.float64))
        >>> mb.projector_loss(Z, torch.tensor([0, 0, 0, 1, 1, 1])).item() < 1e-12   # Z spans the two groups
        True
    """
    if F.dim() < 2:
        raise ValueError(f"ncut_embedding: features must be (..., N, d), got shape {tuple(F.shape)}")
    N, d = F.shape[-2:]
    _check_k(k, min(N, d), "ncut_embedding")
    if check:
        _check_non_negative(
            F, "ncut_embedding", "features must be non-negative for the linear affinity F F^T (apply a ReLU first)"
        )
    # Half-precision features (autocast) are upcast and the degrees formed with autocast off: bfloat16
    # degrees would perturb the normalised affinity by 1e-2 before the SVD could upcast it.
    F = as_spectral(F)
    with no_autocast(F):
        deg = _degree_floor((F @ F.sum(-2, keepdim=True).transpose(-2, -1)).squeeze(-1), eps)  # (..., N)
        scale = deg.rsqrt().unsqueeze(-1)
        U, S, _ = svd(scale * F, gram=N >= d, check=False)
        Z = scale * U[..., :k]
    if return_eigenvalues:
        return Z, S[..., :k] ** 2
    return Z


# The return type follows `return_eigenvalues` (overloads so that type checkers see `Z` alone by default).
@overload
def ncut_embedding_dense(
    W: torch.Tensor, k: int, *, eps: float = ..., return_eigenvalues: Literal[False] = ..., check: bool = ...
) -> torch.Tensor: ...
@overload
def ncut_embedding_dense(
    W: torch.Tensor, k: int, *, eps: float = ..., return_eigenvalues: Literal[True], check: bool = ...
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def ncut_embedding_dense(
    W: torch.Tensor, k: int, *, eps: float = ..., return_eigenvalues: bool, check: bool = ...
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...


def ncut_embedding_dense(
    W: torch.Tensor, k: int, *, eps: float = 1e-6, return_eigenvalues: bool = False, check: bool = True
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Normalized-cuts embedding ``Z (..., N, k)`` from a dense symmetric non-negative affinity
    ``W (..., N, N)``, through the eigendecomposition of ``D^{-1/2} W D^{-1/2}``.

    Degrees ``deg = W 1``; as in :func:`ncut_embedding` only a vanishing degree is replaced by the floor
    ``eps * mean(deg)``, so ``Z`` is exact whenever every degree is positive. ``check=False`` skips the
    data checks (finite, symmetric, non-negative).

    Example:
        >>> import torch, matbackprop as mb
        >>> F = torch.rand(10, 3, dtype=torch.float64)
        >>> Z = mb.ncut_embedding_dense(F @ F.mT, 2)              # the same affinity as ncut_embedding(F, 2)
        >>> Z0 = mb.ncut_embedding(F, 2)
        >>> P, P0 = Z @ torch.linalg.pinv(Z), Z0 @ torch.linalg.pinv(Z0)   # same column space
        >>> torch.allclose(P, P0)
        True
    """
    check_square(W, "ncut_embedding_dense")
    N = W.shape[-1]
    _check_k(k, N, "ncut_embedding_dense")
    if check:
        _check_non_negative(W, "ncut_embedding_dense", "the affinity must be non-negative")
        check_symmetric(physical(W) if not is_tracing() else W, "ncut_embedding_dense")
    scale = _degree_floor(W.sum(-1), eps).rsqrt()
    M = scale.unsqueeze(-1) * W * scale.unsqueeze(-2)
    L, Q = eigh(0.5 * (M + M.transpose(-2, -1)), check=False)
    Z = scale.unsqueeze(-1) * Q[..., -k:].flip(-1)
    if return_eigenvalues:
        return Z, L[..., -k:].flip(-1)
    return Z


def gaussian_affinity(X: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Dense Gaussian affinity ``W_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))`` of points ``X (..., N, f)``.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
        >>> mb.gaussian_affinity(X, sigma=1.0)
        tensor([[1.0000e+00, 6.0653e-01, 3.7267e-06],
                [6.0653e-01, 1.0000e+00, 3.3546e-04],
                [3.7267e-06, 3.3546e-04, 1.0000e+00]])
    """
    sq = X.pow(2).sum(-1)
    dist2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * X @ X.transpose(-2, -1)).clamp_min(0.0)
    return torch.exp(-dist2 / (2.0 * torch.as_tensor(sigma, dtype=X.dtype, device=X.device) ** 2))


def _num_segments(E: torch.Tensor, num_segments: int | None, check: bool) -> int:
    if num_segments is not None:
        if num_segments < 1:
            raise ValueError(f"projector_loss: num_segments must be positive, got {num_segments}")
        if check:
            P = E if is_tracing() else physical(E)
            if P.numel():
                require(
                    (P < num_segments).flatten(-1).all(-1),
                    "projector_loss",
                    f"labels must be below num_segments={num_segments}",
                )
        return num_segments
    if is_tracing():
        raise ValueError(
            "projector_loss: while tracing (torch.compile, torch.export, torch.func.linearize) pass "
            "num_segments= (a bound on E.max() + 1): it sets a shape, which must not depend on the data"
        )
    P = physical(E)  # under vmap: the largest label of the whole batch
    return int(P.max()) + 1 if P.numel() else 1


def _segment_statistics(
    Z: torch.Tensor, E: torch.Tensor, num_segments: int | None, check: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``E^T Z (..., s, k)``, the pseudo-inverse of ``E^T E (..., s, s)`` and ``rank E (...)`` for labels or
    an indicator."""
    if not E.is_floating_point():
        if E.shape != Z.shape[:-1]:
            raise ValueError(f"projector_loss: label map {tuple(E.shape)} must have shape {tuple(Z.shape[:-1])}")
        if check:
            P = E if is_tracing() else physical(E)
            if P.numel():
                require((P >= 0).flatten(-1).all(-1), "projector_loss", "labels must be non-negative integers")
        s = _num_segments(E, num_segments, check)
        index = E.long().unsqueeze(-1).expand_as(Z)
        EtZ = Z.new_zeros(Z.shape[:-2] + (s, Z.shape[-1])).scatter_add(-2, index, Z)
        counts = torch.zeros(E.shape[:-1] + (s,), dtype=Z.dtype, device=Z.device)
        counts = counts.scatter_add(-1, E.long(), torch.ones_like(E, dtype=Z.dtype))
        inv = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
        return EtZ, torch.diag_embed(inv), (counts > 0).sum(-1).to(Z.dtype)
    if E.shape[:-1] != Z.shape[:-1]:
        raise ValueError(f"projector_loss: indicator {tuple(E.shape)} must have shape {tuple(Z.shape[:-1])} + (s,)")
    E = E.to(Z.dtype)
    EtE_pinv = torch.linalg.pinv(E.transpose(-2, -1) @ E, hermitian=True)
    return E.transpose(-2, -1) @ Z, EtE_pinv, torch.linalg.matrix_rank(EtE_pinv, hermitian=True).to(Z.dtype)


def projector_loss(
    Z: torch.Tensor, E: torch.Tensor, *, num_segments: int | None = None, check: bool = True
) -> torch.Tensor:
    """``J = 1/2 ||Pi_Z - Pi_E||_F^2`` between the column spaces of ``Z (..., N, k)`` and of a segmentation.

    ``E`` is an integer label map ``(..., N)`` (labels ``0..s-1``; empty labels are ignored) or an
    indicator matrix ``(..., N, s)``. With ``Pi_Z = Z (Z^T Z)^{-1} Z^T`` and ``Pi_E = E (E^T E)^+ E^T``,

        J = (rank Z + rank E) / 2 - tr(Pi_Z Pi_E),
        tr(Pi_Z Pi_E) = tr((Z^T Z)^{-1} (E^T Z)^T (E^T E)^+ (E^T Z)),

    ``O(N k (k + s))`` work for a label map (an indicator adds ``O(N s^2)`` for ``E^T E``), no ``N x N``
    matrix; everything is accumulated in float64, so that a float32 network still sees a loss accurate
    near its minimum 0. Its gradient is the projector rule ``dJ/dZ = -2 (I - Pi_Z) Pi_E Z (Z^T Z)^{-1}``. Returns
    ``(...)``: one loss per batch element. ``Z`` must have full column rank.

    ``num_segments``: for a label map, a bound on ``E.max() + 1`` (the size of ``E^T Z``); default the
    value itself, a host synchronisation, so pass it under ``torch.compile``/``torch.export``.
    ``check=False`` skips the data checks (labels non-negative and below ``num_segments``, ``Z`` of
    full column rank).

    Example:
        >>> import torch, matbackprop as mb
        >>> labels = torch.tensor([0, 0, 1, 1])
        >>> Z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.0]])   # spans the two segments
        >>> mb.projector_loss(Z, labels).item() < 1e-12
        True
        >>> mb.projector_loss(torch.ones(4, 1), labels)          # one direction short: 1/2 ||Pi_Z - Pi_E||^2
        tensor(0.5000)
    """
    if Z.dim() < 2:
        raise ValueError(f"projector_loss: Z must be (..., N, k), got shape {tuple(Z.shape)}")
    out_dtype = Z.dtype
    Z = Z.double()
    EtZ, EtE_pinv, rank_E = _segment_statistics(Z, E, num_segments, check)
    gram = Z.transpose(-2, -1) @ Z
    if check:
        # Numerically rank deficient: Z^T Z's eigenvalues spread beyond k * eps of Z's own dtype.
        G = gram if is_tracing() else physical(gram)
        ev = torch.linalg.eigvalsh(G.detach())
        tiny = torch.finfo(torch.float64).tiny
        full_rank = ev[..., 0] > Z.shape[-1] * torch.finfo(out_dtype).eps * ev[..., -1].clamp_min(tiny)
        require(full_rank, "projector_loss", "Z is rank deficient (Z^T Z is numerically singular)")
    chol = torch.linalg.cholesky(gram)
    cross = EtZ.transpose(-2, -1) @ EtE_pinv @ EtZ  # (..., k, k)
    overlap = torch.cholesky_solve(cross, chol).diagonal(dim1=-2, dim2=-1).sum(-1)
    J = 0.5 * (Z.shape[-1] + rank_E) - overlap
    return J.to(out_dtype)
