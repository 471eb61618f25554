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

Weighted rows. Second-order pooling weights pixel ``j`` by ``w_j >= 0``: ``A = diag(sqrt(w)) X^T``.
Differentiating through ``sqrt(w)`` divides by ``2 sqrt(w_j)``, which is ``0 / 0`` at a zero weight
(a pixel outside a binary mask), although ``C = X diag(w) X^T`` is linear in ``w``.
:func:`weighted_gram_spectral_apply` therefore takes ``X`` and ``w`` and differentiates ``C`` itself:
with ``D = Df(C + r I)[sym(G)]``,

    dL/dX = 2 D X diag(w),        dL/dw_j = x_j^T D x_j,

where ``D`` is the Daleckii-Krein formula in the eigenbasis ``[V, V_perp]`` of ``C + r I``:
``V (F o V^T E V) V^T``, the cross terms ``V diag(phi) V^T E P + P E V diag(phi) V^T`` and
``f'(r) P E P`` on the complement (``P = I - V V^T``).
"""

from __future__ import annotations

from typing import Any, cast

import torch

from . import parallel
from .checks import check_finite, check_matrix, is_tracing, physical, require
from .common import apply, no_autocast, sym
from .dtypes import as_spectral, as_spectral_all
from .funm import SpectralFunction, divided_difference, loewner_matrix

__all__ = ["gram_spectral_apply", "weighted_gram_spectral_apply"]


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


class _WeightedGramSpectral(torch.autograd.Function):
    """``Y = f(X diag(w) X^T + r I)`` through the SVD of ``(X * sqrt(w))^T``, differentiated in ``C``
    (module docstring). Reverse mode only; :class:`_WeightedGramSpectralFwAD` adds the forward mode."""

    generate_vmap_rule = True

    @staticmethod
    def forward(X: torch.Tensor, w: torch.Tensor, ridge: float, spec: SpectralFunction) -> tuple[torch.Tensor, ...]:
        Y, _, S, Vh = _GramSpectral.forward((X * w.sqrt()).transpose(-2, -1), ridge, spec)
        return Y, S, Vh

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        X, w, ridge, spec = inputs
        _, S, Vh = output
        ctx.mark_non_differentiable(S, Vh)
        ctx.save_for_backward(X, w, S, Vh)
        ctx.ridge, ctx.spec = ridge, spec

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gY: torch.Tensor, *unused: Any) -> tuple[torch.Tensor | None, ...]:
        X, w, S, Vh = ctx.saved_tensors
        DX = _gram_frechet(S, Vh, sym(gY), ctx.ridge, ctx.spec) @ X
        return 2.0 * DX * w, (X * DX).sum(-2, keepdim=True), None, None


class _WeightedGramSpectralFwAD(_WeightedGramSpectral):
    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _WeightedGramSpectral.setup_context(ctx, inputs, output)
        ctx.save_for_forward(inputs[0], inputs[1], *output[1:])

    @staticmethod
    def jvp(ctx: Any, dX: torch.Tensor, dw: torch.Tensor, gridge: Any, gspec: Any) -> tuple[torch.Tensor | None, ...]:
        X, w, S, Vh = ctx.saved_tensors
        cross = (X * w) @ dX.transpose(-2, -1)
        dC = cross + cross.transpose(-2, -1) + (X * dw) @ X.transpose(-2, -1)
        return _gram_frechet(S, Vh, dC, ctx.ridge, ctx.spec), None, None


def _gram_frechet(
    S: torch.Tensor, Vh: torch.Tensor, E: torch.Tensor, ridge: float, spec: SpectralFunction
) -> torch.Tensor:
    """``Df(C + r I)[E]`` for symmetric ``E (..., c, c)``, where ``C`` has the eigenvectors ``V = Vh^T`` with
    eigenvalues ``s^2`` and is zero on the complement of ``span(V)`` (Daleckii-Krein in that basis; self-adjoint,
    so it serves the backward and the forward mode alike)."""
    lam = S * S + ridge
    V = Vh.transpose(-2, -1)
    EV = E @ V
    M = Vh @ EV  # V^T E V
    out = V @ (loewner_matrix(spec, lam) * M) @ Vh
    if Vh.shape[-2] < Vh.shape[-1]:  # span(V) has a complement, of eigenvalue r
        r = torch.full_like(lam[..., :1], ridge)
        phi = divided_difference(spec, lam, r.expand_as(lam))
        cross = ((EV - V @ M) * phi.unsqueeze(-2)) @ Vh  # P E V diag(phi) V^T
        EP = E - EV @ Vh
        out = (
            out + cross + cross.transpose(-2, -1) + divided_difference(spec, r, r).unsqueeze(-1) * (EP - V @ (Vh @ EP))
        )
    return out


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
    ridge = _check_ridge(name, ridge)
    if check:
        check_finite(A, name)
        _check_positive_definite(A, name, spec, ridge)
    function = _GramSpectral if torch.compiler.is_compiling() else _GramSpectralFwAD
    with no_autocast(A):
        return cast(torch.Tensor, apply(function, as_spectral(A), ridge, spec)[0])


def weighted_gram_spectral_apply(
    X: torch.Tensor, w: torch.Tensor, spec: SpectralFunction, ridge: float, *, check: bool = True
) -> torch.Tensor:
    """``f(X diag(w) X^T + ridge I)`` for ``X (..., c, p)`` and weights ``w (..., 1, p) >= 0``, shape ``(..., c, c)``.

    The value is :func:`gram_spectral_apply` of ``A = (X * sqrt(w))^T``; the gradient is taken with
    respect to ``C = X diag(w) X^T`` (module docstring), so it stays finite and exact at zero weights.
    ``X`` and ``w`` broadcast against each other in their batch dimensions.

    Example:
        >>> import torch
        >>> from matbackprop.linalg.funm import LOG
        >>> X = torch.randn(3, 5, dtype=torch.float64)
        >>> w = torch.tensor([[0.5, 0.5, 0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
        >>> Y = weighted_gram_spectral_apply(X, w, LOG, 0.1)
        >>> (gw,) = torch.autograd.grad(Y.trace(), w)
        >>> bool(torch.isfinite(gw).all())                  # finite at the zero weights
        True
    """
    name = f"{spec.name} of a weighted Gram matrix"
    check_matrix(X, name)
    if w.dim() < 2 or w.shape[-2] != 1 or w.shape[-1] != X.shape[-1]:
        raise ValueError(f"{name}: weights must have shape (..., 1, {X.shape[-1]}), got {tuple(w.shape)}")
    ridge = _check_ridge(name, ridge)
    X, w = as_spectral_all(X, w)
    batch = torch.broadcast_shapes(X.shape[:-2], w.shape[:-2])  # type: ignore[no-untyped-call]
    X = X.expand(*batch, *X.shape[-2:])
    w = w.expand(*batch, *w.shape[-2:])
    if check:
        check_finite(X, name)
        check_finite(w, name)
        require(((w if is_tracing() else physical(w)) >= 0).flatten(-2).all(-1), name, "weights must be non-negative")
        _check_positive_definite((X * w.clamp_min(0).sqrt()).transpose(-2, -1), name, spec, ridge)
    function = _WeightedGramSpectral if torch.compiler.is_compiling() else _WeightedGramSpectralFwAD
    with no_autocast(X):
        return cast(torch.Tensor, apply(function, X, w, ridge, spec)[0])


def _check_ridge(name: str, ridge: float) -> float:
    ridge = float(ridge)
    if ridge < 0:
        raise ValueError(f"{name}: ridge must be >= 0, got {ridge}")
    return ridge


def _check_positive_definite(A: torch.Tensor, name: str, spec: SpectralFunction, ridge: float) -> None:
    """A positive definite ``A^T A + ridge I`` where ``f`` needs one (only a zero ridge can fail)."""
    if spec.domain == "pd" and ridge == 0 and A.numel() > 0:
        if A.shape[-2] < A.shape[-1]:
            raise ValueError(f"{name}: A^T A is singular (fewer rows than columns); {spec.name} needs a positive ridge")
        singular = torch.linalg.svdvals(physical(A)).amin(-1) == 0
        require(~singular, name, f"A^T A is singular; {spec.name} needs a positive ridge")
