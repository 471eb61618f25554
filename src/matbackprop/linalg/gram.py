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

from typing import Any, cast

import torch

from . import parallel
from .checks import check_finite, check_matrix, physical, require
from .common import apply, no_autocast, sym
from .dtypes import as_spectral
from .funm import SpectralFunction, divided_difference, loewner_matrix

__all__ = ["gram_spectral_apply"]


class _GramSpectral(torch.autograd.Function):
    """Reverse mode only (the class ``torch.compile`` traces); :class:`_GramSpectralFwAD` adds the
    forward mode. ``generate_vmap_rule``: batched torch operations throughout."""

    generate_vmap_rule = True

    @staticmethod
    def forward(A: torch.Tensor, ridge: float, spec: SpectralFunction) -> tuple[torch.Tensor, ...]:
        U, S, Vh = parallel.map_batch(
            lambda A: torch.linalg.svd(A, full_matrices=False), A, core_dims=(2,), n=parallel.matrix_size(A)
        )
        lam = S * S + ridge
        f_ridge = spec.f(torch.full((), ridge, dtype=A.dtype, device=A.device))
        c = A.shape[-1]
        eye = torch.eye(c, dtype=A.dtype, device=A.device)
        Y = f_ridge * eye + sym((Vh.transpose(-2, -1) * (spec.f(lam) - f_ridge).unsqueeze(-2)) @ Vh)
        return Y, U, S, Vh

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _, ridge, spec = inputs
        _, U, S, Vh = output
        ctx.mark_non_differentiable(U, S, Vh)
        ctx.save_for_backward(U, S, Vh)
        ctx.ridge, ctx.spec = ridge, spec

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gY: torch.Tensor, *unused: Any) -> tuple[torch.Tensor | None, ...]:
        U, S, Vh = ctx.saved_tensors
        ridge, spec = ctx.ridge, ctx.spec
        gA = parallel.map_batch(
            lambda U, S, Vh, gY: _gram_backward(U, S, Vh, gY, ridge, spec),
            U,
            S,
            Vh,
            gY,
            core_dims=(2, 1, 2, 2),
            n=parallel.matrix_size(U, Vh),
            phase="products",
        )
        return gA, None, None


class _GramSpectralFwAD(_GramSpectral):
    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _GramSpectral.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*output[1:])

    @staticmethod
    def jvp(ctx: Any, gA: torch.Tensor, gridge: Any, gspec: Any) -> tuple[torch.Tensor | None, ...]:
        U, S, Vh = ctx.saved_tensors
        return _gram_jvp(U, S, Vh, gA, ctx.ridge, ctx.spec), None, None, None


def _gram_jvp(
    U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, dA: torch.Tensor, ridge: float, spec: SpectralFunction
) -> torch.Tensor:
    """``dY = Df(C + r I)[dA^T A + A^T dA]`` through the SVD ``A = U diag(s) V^T``.

    With ``G = U^T dA V``: on ``span(V)`` the variation of ``C`` is ``G^T S + S G`` (Loewner matrix
    ``F``); between ``span(V)`` and its complement (eigenvalue ``r``, annihilated by ``A``) it is
    ``S U^T dA (I - V V^T)`` (divided differences ``phi_i = f[s_i^2 + r, r]``); the complement block
    does not vary. So ``dY = V (F o (G^T S + S G)) V^T + W + W^T``,
    ``W = V diag(phi s) (U^T dA - G V^T)``: the adjoint of :func:`_gram_backward`.
    """
    lam = S * S + ridge
    V = Vh.transpose(-2, -1)
    UtdA = U.transpose(-2, -1) @ dA
    G = UtdA @ V
    SG = S.unsqueeze(-1) * G
    F = loewner_matrix(spec, lam)
    phi = divided_difference(spec, lam, torch.full_like(lam, ridge))
    W = V @ ((phi * S).unsqueeze(-1) * (UtdA - G @ Vh))
    return V @ (F * (SG + SG.transpose(-2, -1))) @ Vh + W + W.transpose(-2, -1)


def _gram_backward(
    U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, gY: torch.Tensor, ridge: float, spec: SpectralFunction
) -> torch.Tensor:
    lam = S * S + ridge
    W = Vh @ sym(gY)
    M = W @ Vh.transpose(-2, -1)
    F = loewner_matrix(spec, lam)
    phi = divided_difference(spec, lam, torch.full_like(lam, ridge)).unsqueeze(-1)
    inner = ((F - phi) * M) @ Vh + phi * W
    return 2.0 * (U * S.unsqueeze(-2)) @ inner


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
                raise ValueError(
                    f"{name}: A^T A is singular (fewer rows than columns); {spec.name} needs a positive ridge"
                )
            singular = torch.linalg.svdvals(physical(A)).amin(-1) == 0
            require(~singular, name, f"A^T A is singular; {spec.name} needs a positive ridge")
    function = _GramSpectral if torch.compiler.is_compiling() else _GramSpectralFwAD
    with no_autocast(A):
        return cast(torch.Tensor, apply(function, as_spectral(A), ridge, spec)[0])
