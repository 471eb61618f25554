"""Spectral functions of ridge-regularised Gram matrices, ``Y = f(A^T A + r I)``, through the SVD of A.

Second-order pooling needs ``f(A^T A + r I)`` for a (weighted) feature matrix ``A (..., p, c)``.
Forming ``C = A^T A`` squares the condition number; the paper therefore went through the SVD of ``A``
instead. Here the SVD ``A = U diag(s) V^T`` (thin, ``k = min(p, c)``) gives the eigendecomposition of
``C + r I`` directly: eigenvalues ``s^2 + r`` on ``span(V)`` and ``r`` on its complement, so

    Y = f(r) I + V diag(f(s^2 + r) - f(r)) V^T.

Backward. ``dL/dA = 2 A Df(C + r I)[sym(G)]`` (chain rule through ``C = A^T A``), and ``A`` annihilates
the complement of ``span(V)``. With ``W = V^T sym(G)``, ``M = W V``, the Loewner matrix
``F_ij = f[s_i^2 + r, s_j^2 + r]`` and ``phi_i = f[s_i^2 + r, r]``:

    dL/dA = 2 U diag(s) [ ((F - phi 1^T) o M) V^T + diag(phi) W ].

This is the paper's SVD route with the Daleckii-Krein divided differences in place of the
``1 / (s_i^2 - s_j^2)`` couplings: identical in exact arithmetic, but exact at tied singular values and
free of cancellation at near ties. ``C`` is never formed.
"""

from __future__ import annotations

import torch

from ._checks import batch_index, check_finite, check_matrix, spectral_dtype
from ._common import no_autocast, sym
from .funm import SpectralFunction, divided_difference, loewner_matrix

__all__ = ["gram_spectral_apply"]


class _GramSpectral(torch.autograd.Function):
    @staticmethod
    def forward(A, ridge, spec):
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        lam = S * S + ridge
        f_ridge = spec.f(torch.full((), ridge, dtype=A.dtype, device=A.device))
        c = A.shape[-1]
        eye = torch.eye(c, dtype=A.dtype, device=A.device)
        Y = f_ridge * eye + sym((Vh.transpose(-2, -1) * (spec.f(lam) - f_ridge).unsqueeze(-2)) @ Vh)
        return Y, U, S, Vh

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, ridge, spec = inputs
        _, U, S, Vh = output
        ctx.mark_non_differentiable(U, S, Vh)
        ctx.save_for_backward(U, S, Vh)
        ctx.ridge, ctx.spec = ridge, spec

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, *unused):
        U, S, Vh = ctx.saved_tensors
        lam = S * S + ctx.ridge
        W = Vh @ sym(gY)
        M = W @ Vh.transpose(-2, -1)
        F = loewner_matrix(ctx.spec, lam)
        phi = divided_difference(ctx.spec, lam, torch.full_like(lam, ctx.ridge)).unsqueeze(-1)
        inner = ((F - phi) * M) @ Vh + phi * W
        return 2.0 * (U * S.unsqueeze(-2)) @ inner, None, None


def gram_spectral_apply(A: torch.Tensor, spec: SpectralFunction, ridge: float, *, check: bool = True) -> torch.Tensor:
    """``f(A^T A + ridge I)`` for ``A (..., p, c)``, shape ``(..., c, c)``, through the SVD of ``A``.

    ``ridge`` must be positive when ``f`` needs positive definite input and ``p < c`` (then ``A^T A``
    is singular). Half-precision input is computed in float32.
    """
    name = f"{spec.name} of a Gram matrix"
    check_matrix(A, name)
    ridge = float(ridge)
    if ridge < 0:
        raise ValueError(f"{name}: ridge must be >= 0, got {ridge}")
    if check:
        check_finite(A, name)
        if spec.domain == "pd" and ridge == 0 and A.numel() > 0:
            if A.shape[-2] < A.shape[-1]:
                raise ValueError(f"{name}: A^T A is singular (fewer rows than columns); {spec.name} needs a positive ridge")
            singular = torch.linalg.svdvals(A.detach()).amin(-1) == 0
            if bool(singular.any()):
                where = f" at batch index {batch_index(singular)}" if singular.dim() else ""
                raise ValueError(f"{name}: A^T A is singular{where}; {spec.name} needs a positive ridge")
    with no_autocast(A):
        return _GramSpectral.apply(spectral_dtype(A), ridge, spec)[0]
