"""GEMM-only square roots: the coupled Newton-Schulz iteration.

For symmetric positive definite ``X`` scaled to ``A = X / tr(X)`` (all eigenvalues in ``(0, 1]``), the
coupled iteration (Higham, Functions of Matrices, 2008, eq. 6.35; used for second-order pooling by
Lin & Maji 2017 and Li et al. 2018)

    T_k = (3 I - Z_k Y_k) / 2,    Y_{k+1} = Y_k T_k,    Z_{k+1} = T_k Z_k,    Y_0 = A, Z_0 = I

converges quadratically to ``Y -> A^(1/2)`` and ``Z -> A^(-1/2)``. Undoing the scaling gives
``X^(1/2) = sqrt(tr X) Y`` and ``X^(-1/2) = Z / sqrt(tr X)``. Only matrix products are used, which
suits large batches on GPUs; the backward is autograd through the iterations (also products only).

Accuracy: the error after ``k`` iterations is governed by the smallest eigenvalue of ``A``, i.e. by
``tr(X) / lambda_min`` (at least ``n`` times the condition number's effect): about
``log(tr(X) / lambda_min) / log(2.25) + 3`` iterations reach 1e-3 relative error in value and gradient,
one more reaches 1e-6 (measured at n = 64: 10 iterations for condition number 10, 14-15 for 1e3;
``docs/newton_schulz.md``). Use :func:`sqrtm` when exactness matters.
"""

from __future__ import annotations

import torch

from .checks import check_finite_symmetric, check_square, is_tracing, physical, require
from .common import no_autocast, sym
from .dtypes import as_spectral

__all__ = ["sqrtm_newton_schulz", "invsqrtm_newton_schulz", "newton_schulz"]


def _check_positive_definite(X: torch.Tensor, name: str) -> None:
    # A Cholesky factorisation is a cheap positive-definiteness test, far cheaper than eigh.
    if X.numel() == 0:
        return
    _, info = torch.linalg.cholesky_ex(X if is_tracing() else physical(X))
    require(info == 0, name, "input must be positive definite, but it is not")


def newton_schulz(X: torch.Tensor, num_iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coupled Newton-Schulz iteration: ``(X^(1/2), X^(-1/2))`` for SPD ``X (..., n, n)``, unchecked."""
    if num_iters < 1:
        raise ValueError(f"newton_schulz: num_iters must be >= 1, got {num_iters}")
    # Symmetrising first makes the autograd gradient symmetric, as for the exact functions.
    X = sym(X)
    n = X.shape[-1]
    trace = X.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    eye = torch.eye(n, dtype=X.dtype, device=X.device).expand_as(X)
    Y = X / trace
    Z = eye
    for _ in range(num_iters):
        T = 0.5 * (3.0 * eye - Z @ Y)
        Y, Z = Y @ T, T @ Z
    root = trace.sqrt()
    return Y * root, Z / root


def _prepare(X: torch.Tensor, name: str, check: bool) -> torch.Tensor:
    check_square(X, name)
    if check:
        check_finite_symmetric(X, name)
        _check_positive_definite(as_spectral(X), name)
    return as_spectral(X)


def sqrtm_newton_schulz(X: torch.Tensor, num_iters: int = 10, *, check: bool = True) -> torch.Tensor:
    """Approximate ``X^(1/2)`` of SPD ``X (..., n, n)`` by ``num_iters`` coupled Newton-Schulz steps.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64)
        >>> R = mb.sqrtm_newton_schulz(X, num_iters=20)
        >>> torch.allclose(R, mb.sqrtm(X), atol=1e-6)
        True
    """
    with no_autocast(X):
        return newton_schulz(_prepare(X, "sqrtm_newton_schulz", check), num_iters)[0]


def invsqrtm_newton_schulz(X: torch.Tensor, num_iters: int = 10, *, check: bool = True) -> torch.Tensor:
    """Approximate ``X^(-1/2)`` of SPD ``X (..., n, n)`` by ``num_iters`` coupled Newton-Schulz steps.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64)
        >>> R = mb.invsqrtm_newton_schulz(X, num_iters=20)
        >>> torch.allclose(R, mb.invsqrtm(X), atol=1e-6)
        True
    """
    with no_autocast(X):
        return newton_schulz(_prepare(X, "invsqrtm_newton_schulz", check), num_iters)[1]
