"""Symmetric eigendecomposition with the paper's EIG backward.

Forward: ``X = Q diag(L) Q^T`` with ascending ``L`` (as ``torch.linalg.eigh``).

Backward (Ionescu et al. 2015, symmetric EIG proposition): with ``Kt_ij = 1 / (l_i - l_j)`` off the
diagonal,

    dL/dX = sym( Q (Kt^T o (Q^T dL/dQ) + diag(dL/dL)) Q^T ).

Couplings of tied eigenvalues (clusters of eigenvalues whose neighbouring gaps are below
:func:`~matbackprop.linalg._common.tie_tolerance`, see :func:`~matbackprop.linalg._common.tied_pairs`)
are set to zero. This is exact whenever the loss sees eigenvectors only through whole eigenspaces
(projectors onto eigenspaces, eigenvalues): then ``Q^T dL/dQ`` is symmetric inside each eigenspace,
and the antisymmetric coupling contributes nothing there. Losses that depend on individual
eigenvectors of a repeated eigenvalue have no derivative at all; smooth spectral functions should use
:func:`funm`, whose Daleckii-Krein backward is exact at ties.
"""

from __future__ import annotations

import torch

from ._checks import check_finite_symmetric, check_square, spectral_dtype
from ._common import no_autocast, sym, tied_pairs

__all__ = ["eigh", "eigh_backward"]


def eigh_backward(L: torch.Tensor, Q: torch.Tensor, gL: torch.Tensor | None, gQ: torch.Tensor | None) -> torch.Tensor:
    """Gradient ``(..., n, n)`` of a loss w.r.t. the symmetric input, given the output gradients."""
    if gQ is None:
        if gL is None:
            return torch.zeros_like(Q)
        return (Q * gL.unsqueeze(-2)) @ Q.transpose(-2, -1)
    gap = L.unsqueeze(-2) - L.unsqueeze(-1)  # gap_ij = l_j - l_i, i.e. Kt^T = 1 / gap
    tied = tied_pairs(L)
    inner = (Q.transpose(-2, -1) @ gQ) / torch.where(tied, torch.ones_like(gap), gap)
    inner = inner.masked_fill(tied, 0.0)
    if gL is not None:
        inner = inner + torch.diag_embed(gL)
    return sym(Q @ inner @ Q.transpose(-2, -1))


class _Eigh(torch.autograd.Function):
    @staticmethod
    def forward(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.linalg.eigh(X)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        L, Q = output
        ctx.save_for_backward(L, Q)

    @staticmethod
    def backward(ctx, gL: torch.Tensor | None, gQ: torch.Tensor | None) -> torch.Tensor:
        L, Q = ctx.saved_tensors
        return eigh_backward(L, Q, gL, gQ)


def eigh(X: torch.Tensor, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition ``X = Q diag(L) Q^T`` of symmetric ``X (..., n, n)``.

    Returns ``(L, Q)``: eigenvalues ``(..., n)`` in ascending order and orthonormal eigenvectors
    ``(..., n, n)`` as columns, like :func:`torch.linalg.eigh`. The backward is the paper's EIG rule
    with tied-eigenvalue couplings set to zero (never NaN or inf); see the module docstring for when
    that is exact. Half-precision input is computed in float32.

    Raises ``ValueError`` for non-square, non-finite or non-symmetric input unless ``check=False``.
    """
    check_square(X, "eigh")
    if check:
        check_finite_symmetric(X, "eigh")
    with no_autocast(X):
        return _Eigh.apply(spectral_dtype(X))
