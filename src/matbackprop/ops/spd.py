"""Functional SPD-network operations: BiMap, the affine-invariant Karcher mean, geodesics and the
Riemannian batch-normalisation transport (Huang & Van Gool, AAAI 2017; Brooks et al., NeurIPS 2019)."""

from __future__ import annotations

import functools

import torch

from ..linalg._common import no_autocast, sym
from ..linalg.funm import expm, invsqrtm, logm, powm, sqrtm

__all__ = ["bimap", "spd_geodesic", "spd_karcher_mean", "spd_transport"]


def bimap(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``W^T X W`` for ``X (..., n, n)`` and ``W (n, m)``: an SPD matrix of size ``m`` when ``W`` has full
    column rank (BiMap keeps ``W`` on the Stiefel manifold, ``W^T W = I``)."""
    if W.dim() != 2 or X.shape[-1] != W.shape[0] or X.shape[-2] != W.shape[0]:
        raise ValueError(f"bimap: expected X (..., n, n) and W (n, m), got {tuple(X.shape)} and {tuple(W.shape)}")
    X, W = _upcast(X, W)
    with no_autocast(X):
        return sym(W.transpose(-2, -1) @ X @ W)


def _upcast(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The operands at their common dtype, at least float32: SPD products in bfloat16/float16 (autocast)
    lose definiteness long before the spectral layers could upcast them."""
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors), torch.float32)
    return tuple(t.to(dtype) for t in tensors)


def _congruence(A: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``A X A`` for symmetric ``A``, symmetrised against rounding, in float32 or better with autocast off."""
    A, X = _upcast(A, X)
    with no_autocast(X):
        return sym(A @ X @ A)


def spd_geodesic(A: torch.Tensor, B: torch.Tensor, t: float) -> torch.Tensor:
    """Point at ``t`` on the affine-invariant geodesic from ``A`` (t = 0) to ``B`` (t = 1):
    ``A^(1/2) (A^(-1/2) B A^(-1/2))^t A^(1/2)``, for SPD ``(..., n, n)``."""
    root, inv_root = sqrtm(A), invsqrtm(A)
    return _congruence(root, powm(_congruence(inv_root, B), t))


def spd_karcher_mean(X: torch.Tensor, num_iters: int = 1, dim: int = 0) -> torch.Tensor:
    """Affine-invariant (Karcher) mean of SPD matrices ``X`` along batch dimension ``dim``.

    Starts from the arithmetic mean and takes ``num_iters`` Riemannian gradient steps
    ``G <- G^(1/2) expm(mean_i logm(G^(-1/2) X_i G^(-1/2))) G^(1/2)``; one step is the usual choice
    inside a network (Brooks et al. 2019). Differentiable with respect to ``X``. Half-precision input
    is computed in float32 (all functions of this module).
    """
    (X,) = _upcast(X)
    with no_autocast(X):
        G = X.mean(dim=dim)
    for _ in range(num_iters):
        root, inv_root = sqrtm(G), invsqrtm(G)
        tangent = sym(logm(_congruence(inv_root.unsqueeze(dim), X)).mean(dim=dim))
        G = _congruence(root, expm(tangent))
    return G


def spd_transport(X: torch.Tensor, mean: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Move SPD ``X (..., n, n)`` from around ``mean`` to around ``bias`` (both ``(n, n)`` SPD):
    ``bias^(1/2) mean^(-1/2) X mean^(-1/2) bias^(1/2)``, the Riemannian batch-norm step."""
    centred = _congruence(invsqrtm(mean), X)
    return _congruence(sqrtm(bias), centred)
