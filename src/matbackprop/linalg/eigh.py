"""Symmetric eigendecomposition with the paper's EIG backward.

Forward: ``X = Q diag(L) Q^T`` with ascending ``L`` (as ``torch.linalg.eigh``).

Backward (Ionescu et al. 2015, symmetric EIG proposition): with ``Kt_ij = 1 / (l_i - l_j)`` off the
diagonal,

    dL/dX = sym( Q (Kt^T o (Q^T dL/dQ) + diag(dL/dL)) Q^T ).

Couplings of tied eigenvalues (clusters of eigenvalues whose neighbouring gaps are below
:func:`~matbackprop.linalg.common.tie_tolerance`, see :func:`~matbackprop.linalg.common.tied_pairs`)
are set to zero. This is exact whenever the loss sees eigenvectors only through whole eigenspaces
(projectors onto eigenspaces, eigenvalues): then ``Q^T dL/dQ`` is symmetric inside each eigenspace,
and the antisymmetric coupling contributes nothing there. Losses that depend on individual
eigenvectors of a repeated eigenvalue have no derivative at all; smooth spectral functions should use
:func:`funm`, whose Daleckii-Krein backward is exact at ties.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from . import parallel
from .checks import check_square, symmetrize_checked
from .common import apply, no_autocast, sym, tied_pairs
from .dtypes import as_spectral

__all__ = ["eigh", "eigh_backward", "eigh_jvp"]


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


def eigh_jvp(L: torch.Tensor, Q: torch.Tensor, dX: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tangents ``(dL, dQ)`` of the eigendecomposition in the direction ``sym(dX)`` (forward mode).

    With ``H = Q^T sym(dX) Q``: ``dL = diag(H)`` and ``dQ = Q (K o H)``, ``K_ij = 1 / (l_j - l_i)`` off the
    diagonal. Tied pairs get ``K_ij = 0``, the same policy as :func:`eigh_backward` (whose adjoint
    this is), so forward and reverse mode agree at ties too.
    """
    H = sym(Q.transpose(-2, -1) @ dX @ Q)
    gap = L.unsqueeze(-2) - L.unsqueeze(-1)  # gap_ij = l_j - l_i
    tied = tied_pairs(L)
    K = H / torch.where(tied, torch.ones_like(gap), gap)
    return H.diagonal(dim1=-2, dim2=-1), Q @ K.masked_fill(tied, 0.0)


class _Eigh(torch.autograd.Function):
    """Reverse mode only (the class ``torch.compile`` traces); :class:`_EighFwAD` adds the forward mode."""

    generate_vmap_rule = True

    @staticmethod
    def forward(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # A plain tuple, not torch's named structseq: vmap's generated rule flattens outputs as pytrees.
        L, Q = parallel.map_batch(torch.linalg.eigh, X, core_dims=(2,))
        return L, Q

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        L, Q = output
        ctx.save_for_backward(L, Q)

    @staticmethod
    def backward(ctx: Any, gL: torch.Tensor | None, gQ: torch.Tensor | None) -> torch.Tensor:
        L, Q = ctx.saved_tensors
        return cast(
            torch.Tensor, parallel.map_batch(eigh_backward, L, Q, gL, gQ, core_dims=(1, 2, 1, 2), phase="products")
        )


class _EighFwAD(_Eigh):
    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _Eigh.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*output)

    @staticmethod
    def jvp(ctx: Any, gX: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L, Q = ctx.saved_tensors
        return eigh_jvp(L, Q, gX)


def eigh(X: torch.Tensor, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition ``X = Q diag(L) Q^T`` of symmetric ``X (..., n, n)``.

    Returns ``(L, Q)``: eigenvalues ``(..., n)`` in ascending order and orthonormal eigenvectors
    ``(..., n, n)`` as columns, like :func:`torch.linalg.eigh`. The backward is the paper's EIG rule
    with tied-eigenvalue couplings set to zero (never NaN or inf); see the module docstring for when
    that is exact. Half-precision input is computed in float32.

    Raises ``ValueError`` for non-square, non-finite or non-symmetric input unless ``check=False``; input
    symmetric up to rounding is symmetrised first (policy: :mod:`matbackprop.linalg.checks`). The
    forward mode (``torch.func.jvp``/``jacfwd``) uses the same tie policy as the backward.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> L, Q = mb.eigh(X)                         # ascending, like torch.linalg.eigh
        >>> L
        tensor([1., 3.], dtype=torch.float64)
        >>> torch.allclose(Q @ torch.diag(L) @ Q.mT, X)
        True
    """
    check_square(X, "eigh")
    if check:
        X = symmetrize_checked(X, "eigh")
    with no_autocast(X):
        function = _Eigh if torch.compiler.is_compiling() else _EighFwAD
        return cast(tuple[torch.Tensor, torch.Tensor], apply(function, as_spectral(X)))
