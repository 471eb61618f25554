"""Spectral functions of symmetric matrices, ``Y = Q f(L) Q^T``, with the Daleckii-Krein derivatives.

First order. The Frechet derivative of ``f`` at symmetric ``X = Q diag(L) Q^T`` in a symmetric direction
``E`` is ``Df(X)[E] = Q (F o (Q^T E Q)) Q^T`` with the Loewner matrix of first divided differences

    F_ij = f[l_i, l_j] = (f(l_i) - f(l_j)) / (l_i - l_j),    F_ii = f'(l_i).

``Df(X)`` is self-adjoint, so the backward of ``Y = f(X)`` is ``dL/dX = Df(X)[sym(dL/dY)]``: four matrix
products. The divided differences are evaluated in closed, cancellation-free forms (``log1p``,
``expm1``, ``1/(sqrt a + sqrt b)``), so the backward is exact at repeated eigenvalues and keeps full
relative precision at near ties, where the EIG route (``1/(l_i - l_j)``) divides by zero. The same
map is the forward mode: ``jvp`` returns ``dY = Df(X)[sym(dX)]``.

Second order. The derivative of ``Df(X)[E]`` with respect to ``X`` in a direction ``H`` is, in the
eigenbasis (``E^ = Q^T E Q``, ``H^ = Q^T H Q``),

    (D^2 f(X)[E, H])^_ij = sum_k f[l_i, l_k, l_j] (E^_ik H^_kj + H^_ik E^_kj),

with second divided differences ``f[a, b, c]`` (Daleckii-Krein; Bhatia, Matrix Analysis, Thm. V.3.5).
Its adjoint gives the double backward, and the map itself the forward mode of the first derivative,
so Hessians work both as reverse-over-reverse and as ``torch.func.hessian`` (forward-over-reverse). It
costs ``O(n^3)`` elementwise work and memory (chunked), more than the first order but rarely on a hot path.

Transforms. The autograd Functions declare ``generate_vmap_rule`` (``vmap``, ``jacrev``, ``jacfwd``);
each comes in a reverse-only form, which ``torch.compile`` traces (Dynamo refuses a custom ``jvp``),
and a form with ``jvp`` used everywhere else. Checks under each transform: ``docs/transforms.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, cast

import torch

from . import parallel
from .checks import (
    _where,
    check_eigenvalues,
    check_square,
    clamp_to_domain,
    is_tracing,
    physical,
    require,
    spectrum_inside_domain,
    symmetrize_checked,
)
from .common import add_transpose, apply, no_autocast, sym
from .divided_differences import (
    EXP,
    INVSQRT,
    LOG,
    SQRT,
    Elementwise,
    Pairwise,
    SpectralFunction,
    clamp_function,
    divided_difference,
    loewner_matrix,
    power_function,
    second_divided_differences,
)
from .dtypes import as_spectral

__all__ = [
    "SpectralFunction",
    "funm",
    "logm",
    "sqrtm",
    "invsqrtm",
    "powm",
    "expm",
    "clamp_eigs",
    "spectral_apply",
    "loewner_matrix",
    "divided_difference",
    "LOG",
    "SQRT",
    "INVSQRT",
    "EXP",
    "power_function",
    "clamp_function",
]

# ---------------------------------------------------------------------------------------------------
# Autograd Functions


def _conjugate(Q: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    return Q @ inner @ Q.transpose(-2, -1)


def _to_eigenbasis(Q: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    return Q.transpose(-2, -1) @ A @ Q


#: Batches up to this many entries take the plain product in :func:`_frechet`, where the fixed cost of
#: each tensor call outweighs the pass over memory that the fused form saves.
_SMALL_NUMEL = 4096


def _frechet(Q: torch.Tensor, F: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """``Df(X)[sym(E)] = Q (F o sym(Q^T E Q)) Q^T`` for any square ``E``.

    Symmetrising in the eigenbasis, fused with the Hadamard product, costs one pass over the matrix
    where ``sym(E)`` first would cost two; its factor 1/2 rides on the last product. The four products
    are the minimum for a dense ``E``.
    """
    V = _to_eigenbasis(Q, E)
    W = Q @ add_transpose(V).mul_(F)
    if W.numel() <= _SMALL_NUMEL:  # the fused product below costs more calls than it saves here
        return (W @ Q.transpose(-2, -1)).mul_(0.5)
    n = Q.shape[-1]
    W3, Q3 = W.reshape(-1, n, n), Q.expand_as(W).reshape(-1, n, n)
    return torch.baddbmm(W3.new_zeros(()), W3, Q3.transpose(-2, -1), beta=0.0, alpha=0.5).reshape(W.shape)


def _reconstruct(L: torch.Tensor, Q: torch.Tensor, spec: SpectralFunction) -> torch.Tensor:
    # Exactly symmetric output, so that the next spectral layer's symmetry check takes its fast
    # path; halving f(L) first (exact) makes the symmetrisation a single pass.
    return add_transpose((Q * (0.5 * spec.f(L)).unsqueeze(-2)) @ Q.transpose(-2, -1))


def _chunks(L: torch.Tensor) -> Iterator[slice]:
    """Slices of the middle index ``k`` of ``f[l_i, l_k, l_j]`` that bound its ``O(n^3)`` memory."""
    n = L.shape[-1]
    batch = max(1, math.prod(L.shape[:-1]))
    chunk = max(1, (1 << 24) // max(1, batch * n * n))
    for start in range(0, n, chunk):
        yield slice(start, min(n, start + chunk))


def _second_order(
    spec: SpectralFunction, L: torch.Tensor, F: torch.Tensor, E_hat: torch.Tensor, H_hat: torch.Tensor
) -> torch.Tensor:
    """``S_ij = sum_k f[l_i, l_k, l_j] (E^_ik H^_kj + H^_ik E^_kj)``: ``D^2 f(X)[E, H]`` in the eigenbasis."""
    S = torch.zeros_like(E_hat * H_hat)
    for k in _chunks(L):
        T = second_divided_differences(spec, L, F, k)
        S = S + torch.einsum("...ik,...kj,...ikj->...ij", E_hat[..., :, k], H_hat[..., k, :], T)
        S = S + torch.einsum("...ik,...kj,...ikj->...ij", H_hat[..., :, k], E_hat[..., k, :], T)
    return S


class _SpectralApply(torch.autograd.Function):
    """``Y = Q f(L) Q^T`` from a precomputed eigendecomposition of ``X``; ``X`` is the only
    differentiable input (it anchors the graph for the double backward).

    Reverse mode only: this is the class traced by ``torch.compile`` (Dynamo refuses Functions with a
    custom ``jvp``); :class:`_SpectralApplyFwAD` adds the forward mode for eager and ``torch.func``.
    ``generate_vmap_rule``: every step is a batched torch operation, so ``vmap`` runs it as is.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        X: torch.Tensor,
        L: torch.Tensor,
        Q: torch.Tensor,
        spec: SpectralFunction,
        zero_eigenvalue_error: str | None = None,
    ) -> torch.Tensor:
        return _reconstruct(L, Q, spec)  # not split: measured slower than torch's own threads (parallel.py)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        X, L, Q, spec, *error = inputs
        ctx.save_for_backward(X, L, Q)
        ctx.spec = spec
        ctx.zero_eigenvalue_error = error[0] if error else None

    @staticmethod
    def backward(ctx: Any, gY: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.zero_eigenvalue_error is not None:
            raise ValueError(ctx.zero_eigenvalue_error)
        X, L, Q = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: record the derivative itself for a double backward
            frechet = _FrechetDerivative if torch.compiler.is_compiling() else _FrechetDerivativeFwAD
            return apply(frechet, X, gY, L, Q, ctx.spec), None, None, None, None
        spec = ctx.spec
        gX = parallel.map_batch(
            lambda L, Q, gY: _frechet(Q, loewner_matrix(spec, L), gY), L, Q, gY, core_dims=(1, 2, 2), phase="products"
        )
        return gX, None, None, None, None


class _SpectralApplyFwAD(_SpectralApply):
    """:class:`_SpectralApply` with the analytic forward mode: the Daleckii-Krein directional derivative
    ``dY = Q (F o (Q^T sym(dX) Q)) Q^T``, the same divided differences as the backward (exact at ties)."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _SpectralApply.setup_context(ctx, inputs, output)
        ctx.save_for_forward(inputs[1], inputs[2])

    @staticmethod
    def jvp(ctx: Any, gX: torch.Tensor, gL: Any, gQ: Any, gspec: Any, gerror: Any = None) -> torch.Tensor:
        if ctx.zero_eigenvalue_error is not None:
            raise ValueError(ctx.zero_eigenvalue_error)
        L, Q = ctx.saved_tensors
        return _frechet(Q, loewner_matrix(ctx.spec, L), gX)


class _FrechetDerivative(torch.autograd.Function):
    """``Df(X)[sym(E)] = Q (F o sym(Q^T E Q)) Q^T``; differentiable in ``X`` and ``E``.

    The map ``E -> Df(X)[sym(E)]`` is self-adjoint, so its gradient in ``E`` is itself applied to the
    incoming gradient.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        X: torch.Tensor, E: torch.Tensor, L: torch.Tensor, Q: torch.Tensor, spec: SpectralFunction
    ) -> torch.Tensor:
        return _frechet(Q, loewner_matrix(spec, L), E)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _, E, L, Q, spec = inputs
        ctx.save_for_backward(E, L, Q)
        ctx.spec = spec

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gZ: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        E, L, Q = ctx.saved_tensors
        spec = ctx.spec
        F = loewner_matrix(spec, L)
        gE = _frechet(Q, F, gZ) if ctx.needs_input_grad[1] else None
        gX = None
        if ctx.needs_input_grad[0]:
            E_hat = sym(_to_eigenbasis(Q, E))
            V = sym(_to_eigenbasis(Q, gZ))
            # A_kj = sum_i E^_ki V^_ij f[l_i, l_k, l_j], in chunks of k to bound the O(n^3) memory.
            parts = [
                torch.einsum(
                    "...ik,...ij,...ikj->...kj", E_hat[..., :, k], V, second_divided_differences(spec, L, F, k)
                )
                for k in _chunks(L)
            ]
            A = torch.cat(parts, dim=-2) if parts else torch.zeros_like(V)
            gX = sym(_conjugate(Q, A + A.transpose(-2, -1)))
        return gX, gE, None, None, None


class _FrechetDerivativeFwAD(_FrechetDerivative):
    """:class:`_FrechetDerivative` with its forward mode (Hessians by ``jacfwd(jacrev(...))``):
    ``dZ = Df(X)[sym(dE)] + Q S Q^T`` with ``S`` the second-order Daleckii-Krein term
    ``D^2 f(X)[sym(E), sym(dX)]`` in the eigenbasis."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _FrechetDerivative.setup_context(ctx, inputs, output)
        ctx.save_for_forward(inputs[1], inputs[2], inputs[3])

    @staticmethod
    def jvp(
        ctx: Any, gX: torch.Tensor | None, gE: torch.Tensor | None, gL: Any, gQ: Any, gspec: Any
    ) -> torch.Tensor | None:
        E, L, Q = ctx.saved_tensors
        F = loewner_matrix(ctx.spec, L)
        out = _frechet(Q, F, gE) if gE is not None else None
        if gX is not None:
            E_hat = sym(_to_eigenbasis(Q, E))
            H_hat = sym(_to_eigenbasis(Q, gX))
            second = _conjugate(Q, _second_order(ctx.spec, L, F, E_hat, H_hat))
            out = second if out is None else out + second
        return out


# ---------------------------------------------------------------------------------------------------
# Public functions


def spectral_apply(
    X: torch.Tensor, spec: SpectralFunction, *, check: bool = True, name: str | None = None
) -> torch.Tensor:
    """``Y = Q f(L) Q^T`` for symmetric ``X (..., n, n)`` with the Daleckii-Krein derivatives.

    The eigendecomposition runs once, outside autograd, and is reused by the backward, the forward
    mode (``jvp``) and the double backward. Half-precision input (or autocast) is computed in float32.
    With ``check=True`` (default) the input is validated and rounding is forgiven as stated in
    :mod:`matbackprop.linalg.checks` (non-square, non-finite, non-symmetric input and eigenvalues
    outside ``spec.domain`` raise ``ValueError`` naming the first offending batch index; input
    symmetric up to rounding is symmetrised, PD/PSD up to rounding is clamped). ``check=False`` uses
    the lower triangle as it is and clamps only the eigenvalues of a ``"psd"`` domain at 0.

    Example:
        >>> import torch, matbackprop as mb
        >>> from matbackprop.linalg.divided_differences import SQRT
        >>> X = torch.tensor([[4.0, 0.0], [0.0, 9.0]], dtype=torch.float64)
        >>> mb.spectral_apply(X, SQRT)
        tensor([[2., 0.],
                [0., 3.]], dtype=torch.float64)
    """
    name = name or spec.name
    check_square(X, name)
    if check:
        X = symmetrize_checked(X, name)
    with no_autocast(X):
        X = as_spectral(X)
        with torch.no_grad():
            L, Q = parallel.map_batch(torch.linalg.eigh, X.detach(), core_dims=(2,))
        error = None
        if spec.domain != "all":
            strict: bool | torch.Tensor = spec.domain == "pd" if spec.pd_where is None else spec.pd_where
            if check and isinstance(strict, bool) and spectrum_inside_domain(L, strict):
                pass  # small eager call, every eigenvalue plainly inside: nothing to check, clamp or flag
            elif check:
                check_eigenvalues(L, name, strict=strict, requirement=_requirement(spec))
                L = clamp_to_domain(L, strict)
                if X.requires_grad and not is_tracing():
                    error = _zero_eigenvalue_error(L, spec, name)
            elif isinstance(strict, torch.Tensor):
                L = torch.where(strict.unsqueeze(-1), L, L.clamp_min(0.0))
            elif not strict:
                L = L.clamp_min(0.0)
        function = _SpectralApply if torch.compiler.is_compiling() else _SpectralApplyFwAD
        return cast(torch.Tensor, apply(function, X, L, Q, spec, error))


def _requirement(spec: SpectralFunction) -> str:
    if spec.pd_where is not None:
        return "input must be positive semi-definite (positive definite where p < 0)"
    return "input must be positive definite" if spec.domain == "pd" else "input must be positive semi-definite"


def _zero_eigenvalue_error(L: torch.Tensor, spec: SpectralFunction, name: str) -> str | None:
    """The message the derivatives raise when ``f'`` is infinite at an eigenvalue that is exactly zero."""
    L = physical(L)
    zero = ((L == 0) & torch.isinf(spec.df(L))).any(-1)
    if not bool(zero.any()):
        return None
    return (
        f"{name}: the gradient is infinite at a zero eigenvalue ({_where(zero)}); add a ridge, e.g. X + eps * I, "
        "or use check=False to get non-finite gradients instead of this error"
    )


def funm(
    X: torch.Tensor,
    f: Elementwise,
    df: Elementwise,
    *,
    divided_difference: Pairwise | None = None,
    d2f: Elementwise | None = None,
    domain: str = "all",
    check: bool = True,
) -> torch.Tensor:
    """Spectral function ``Y = Q f(L) Q^T`` of symmetric ``X (..., n, n)``.

    ``f`` and ``df = f'`` act elementwise on a tensor of eigenvalues. The backward is the
    Daleckii-Krein formula ``dL/dX = Q (F o (Q^T sym(G) Q)) Q^T``, ``F_ij = f[l_i, l_j]``. Give
    ``divided_difference(a, b)`` (elementwise ``f[a, b]``, equal to ``f'(a)`` at ``a == b``) for full
    precision at near-equal eigenvalues; without it the quotient is replaced by ``f'`` at the midpoint
    when the relative gap is below ``eps^(1/3)``. ``d2f`` (``f''``) serves the double backward and is
    otherwise derived from ``df`` by autograd. ``domain`` is ``"all"``, ``"psd"`` or ``"pd"``.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> Y = mb.funm(X, torch.log1p, lambda l: 1 / (1 + l))   # log(I + X), eigenvalues 1 and 3
        >>> torch.allclose(Y, mb.logm(torch.eye(2, dtype=torch.float64) + X))
        True
    """
    spec = SpectralFunction("funm", f, df, divided_difference, d2f, domain)
    return spectral_apply(X, spec, check=check)


def logm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Matrix logarithm ``Q log(L) Q^T`` of symmetric positive definite ``X (..., n, n)``.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> Y = mb.logm(X)
        >>> torch.allclose(mb.expm(Y), X)
        True
        >>> mb.logm(2 * torch.eye(3)).diagonal()      # repeated eigenvalues are fine, backward included
        tensor([0.6931, 0.6931, 0.6931])
    """
    return spectral_apply(X, LOG, check=check)


def sqrtm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Principal square root ``Q sqrt(L) Q^T`` of symmetric positive semi-definite ``X (..., n, n)``.

    There is no gradient where an eigenvalue is exactly zero (``sqrt`` has infinite slope at 0): with
    ``check=True`` the backward then raises ``ValueError``, with ``check=False`` it returns non-finite
    values. Add a ridge ``eps * I`` to rank-deficient input.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64)
        >>> mb.sqrtm(X).round(decimals=10)            # eigenvalues 1 and 9
        tensor([[2., 1.],
                [1., 2.]], dtype=torch.float64)
    """
    return spectral_apply(X, SQRT, check=check)


def invsqrtm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Inverse square root ``Q L^(-1/2) Q^T`` of symmetric positive definite ``X (..., n, n)``.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64)
        >>> R = mb.invsqrtm(X)
        >>> torch.allclose(R @ X @ R, torch.eye(2, dtype=torch.float64))
        True
    """
    return spectral_apply(X, INVSQRT, check=check)


def powm(X: torch.Tensor, p: float | torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Matrix power ``Q L^p Q^T`` of symmetric ``X (..., n, n)`` for real, finite ``p``.

    ``p >= 0`` needs positive semi-definite input, ``p < 0`` positive definite input. ``p`` may be a
    tensor broadcasting against the batch shape ``(...)`` (one exponent per channel, say); it is a
    parameter, not differentiated.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64)
        >>> torch.allclose(mb.powm(X, 2.0), X @ X), torch.allclose(mb.powm(X, 0.5), mb.sqrtm(X))
        (True, True)
        >>> Y = mb.powm(torch.stack([X, X]), torch.tensor([1.0, -1.0]))   # one exponent per matrix
        >>> torch.allclose(Y[0], X), torch.allclose(Y[1] @ X, torch.eye(2, dtype=torch.float64))
        (True, True)
    """
    p = _parameter(X, p, "powm", "exponent p", check)
    return spectral_apply(X, power_function(p, X.dim() - 2), check=check)


def _parameter(X: torch.Tensor, value: float | torch.Tensor, name: str, what: str, check: bool) -> float | torch.Tensor:
    """A finite scalar, or a finite tensor broadcasting against the batch shape of ``X (..., n, n)``."""
    if not isinstance(value, torch.Tensor):
        if not math.isfinite(float(value)):
            raise ValueError(f"{name}: the {what} must be a finite number, got {value!r}")
        return float(value)
    check_square(X, name)
    batch = X.shape[:-2]
    try:
        ok = value.dim() <= len(batch) and torch.broadcast_shapes(value.shape, batch) == batch  # type: ignore[no-untyped-call]
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name}: the {what} (shape {tuple(value.shape)}) must broadcast against the batch shape "
            f"{tuple(batch)} of the input {tuple(X.shape)}"
        )
    value = value.detach().to(device=X.device, dtype=as_spectral(X).dtype)
    if check:
        require(torch.isfinite(value), name, f"the {what} must be finite")
    return value


def expm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Matrix exponential ``Q exp(L) Q^T`` of symmetric ``X (..., n, n)``.

    Example:
        >>> import torch, matbackprop as mb
        >>> S = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> torch.allclose(mb.expm(S), torch.linalg.matrix_exp(S))
        True
    """
    return spectral_apply(X, EXP, check=check)


def clamp_eigs(X: torch.Tensor, floor: float | torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Eigenvalue floor ``Q max(L, floor) Q^T`` of symmetric ``X (..., n, n)`` (ReEig).

    The derivative of ``max(l, floor)`` is taken as 1 above the floor and 0 at or below it. ``floor``
    may be a tensor broadcasting against the batch shape ``(...)`` (one floor per channel, say); it
    is a parameter, not differentiated.

    Example:
        >>> import torch, matbackprop as mb
        >>> X = torch.tensor([[2.0, 0.0], [0.0, 1e-6]], dtype=torch.float64)
        >>> Y = mb.clamp_eigs(X, 1e-3)                # ReEig: eigenvalues below the floor are raised to it
        >>> torch.linalg.eigvalsh(Y).tolist()
        [0.001, 2.0]
    """
    floor = _parameter(X, floor, "clamp_eigs", "floor", check)
    return spectral_apply(X, clamp_function(floor, X.dim() - 2), check=check)
