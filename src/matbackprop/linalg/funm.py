"""Spectral functions of symmetric matrices, ``Y = Q f(L) Q^T``, with the Daleckii-Krein backward.

First order. The Frechet derivative of ``f`` at symmetric ``X = Q diag(L) Q^T`` in a symmetric direction
``E`` is ``Df(X)[E] = Q (F o (Q^T E Q)) Q^T`` with the Loewner matrix of first divided differences

    F_ij = f[l_i, l_j] = (f(l_i) - f(l_j)) / (l_i - l_j),    F_ii = f'(l_i).

``Df(X)`` is self-adjoint, so the backward of ``Y = f(X)`` is ``dL/dX = Df(X)[sym(dL/dY)]``: four matrix
products. The divided differences are evaluated in closed, cancellation-free forms (``log1p``,
``expm1``, ``1/(sqrt a + sqrt b)``), so the backward is exact at repeated eigenvalues and keeps full
relative precision at near ties, where the EIG route (``1/(l_i - l_j)``) divides by zero.

Second order. The derivative of ``Df(X)[E]`` with respect to ``X`` in a direction ``H`` is, in the
eigenbasis (``E^ = Q^T E Q``, ``H^ = Q^T H Q``),

    (D^2 f(X)[E, H])^_ij = sum_k f[l_i, l_k, l_j] (E^_ik H^_kj + H^_ik E^_kj),

with second divided differences ``f[a, b, c]`` (Daleckii-Krein; Bhatia, Matrix Analysis, Thm. V.3.5).
Its adjoint gives the double backward, so Hessian-vector products through these layers work. It costs
``O(n^3)`` elementwise work and memory (chunked), more than the first order but rarely on a hot path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ._checks import _where, check_eigenvalues, check_finite_symmetric, check_square, spectral_dtype
from ._common import add_transpose, no_autocast, sym

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
]

Elementwise = Callable[[torch.Tensor], torch.Tensor]
Pairwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SpectralFunction:
    """A scalar function lifted to symmetric matrices.

    ``f``, ``df`` and ``d2f`` act elementwise on eigenvalues. ``divided_difference(a, b)`` returns
    ``f[a, b]`` elementwise for broadcast tensors, including ``a == b`` (then ``f'(a)``); when ``None``
    a generic rule is used (see :func:`loewner_matrix`). ``d2f=None`` takes ``f''`` from autograd
    through ``df``. ``domain`` is ``"all"``, ``"psd"`` (eigenvalues >= 0; rounding negatives are
    clamped to 0) or ``"pd"`` (eigenvalues > 0).
    """

    name: str
    f: Elementwise
    df: Elementwise
    divided_difference: Pairwise | None = None
    d2f: Elementwise | None = None
    domain: str = "all"


# ---------------------------------------------------------------------------------------------------
# Divided differences


def _generic_divided_difference(spec: SpectralFunction, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The quotient loses eps*|f|/|a-b| to cancellation, the midpoint derivative is off by
    # (a-b)^2 f'''/24: the two balance at a relative gap of eps^(1/3).
    gap = a - b
    scale = torch.maximum(a.abs(), b.abs()).clamp_min(torch.finfo(a.dtype).tiny)
    close = gap.abs() <= torch.finfo(a.dtype).eps ** (1.0 / 3.0) * scale
    quotient = (spec.f(a) - spec.f(b)) / torch.where(close, torch.ones_like(gap), gap)
    return torch.where(close, spec.df(0.5 * (a + b)), quotient)


def _pairs(L: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return L.unsqueeze(-1), L.unsqueeze(-2)


def divided_difference(spec: SpectralFunction, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """First divided differences ``f[a, b]`` elementwise (``f'(a)`` where ``a == b``)."""
    if spec.divided_difference is not None:
        return spec.divided_difference(a, b)
    return _generic_divided_difference(spec, a, b)


def loewner_matrix(spec: SpectralFunction, L: torch.Tensor) -> torch.Tensor:
    """Loewner matrix ``F_ij = f[l_i, l_j]`` of first divided differences, ``(..., n, n)``."""
    return divided_difference(spec, *_pairs(L))


def _second_derivative(spec: SpectralFunction, x: torch.Tensor) -> torch.Tensor:
    if spec.d2f is not None:
        return spec.d2f(x)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (d2,) = torch.autograd.grad(spec.df(x).sum(), x)
    return d2


def _second_divided_differences(spec: SpectralFunction, L: torch.Tensor, F: torch.Tensor, k: slice) -> torch.Tensor:
    """``T[..., i, c, j] = f[l_i, l_k, l_j]`` for ``k`` in the slice, shape ``(..., n, len(k), n)``.

    Each entry divides by the widest of its three gaps, using the (accurate) first divided differences
    of the two closer pairs: ``f[x, z, y] = (f[x, z] - f[z, y]) / (x - y)``. When all three points lie
    within ``eps^(1/3)`` relative, ``f''(mean) / 2`` is used instead (its error is second order in the
    spread, the quotient's cancellation error is ``eps`` over the spread: they balance at ``eps^(1/3)``).
    """
    li = L[..., :, None, None]
    lk = L[..., None, k, None]
    lj = L[..., None, None, :]
    F_ik = F[..., :, k].unsqueeze(-1)  # f[l_i, l_k]
    F_kj = F[..., k, :].unsqueeze(-3)  # f[l_k, l_j]
    F_ij = F.unsqueeze(-2)  # f[l_i, l_j]
    g_ij, g_ik, g_kj = (li - lj).abs(), (li - lk).abs(), (lk - lj).abs()

    one = torch.ones((), dtype=L.dtype, device=L.device)
    via_ij = (F_ik - F_kj) / torch.where(g_ij > 0, li - lj, one)
    via_ik = (F_ij - F_kj) / torch.where(g_ik > 0, li - lk, one)
    via_kj = (F_ik - F_ij) / torch.where(g_kj > 0, lk - lj, one)
    out = torch.where(g_ij >= torch.maximum(g_ik, g_kj), via_ij, torch.where(g_ik >= g_kj, via_ik, via_kj))

    widest = torch.maximum(g_ij, torch.maximum(g_ik, g_kj))
    scale = torch.maximum(li.abs(), torch.maximum(lk.abs(), lj.abs())).clamp_min(torch.finfo(L.dtype).tiny)
    clustered = widest <= torch.finfo(L.dtype).eps ** (1.0 / 3.0) * scale
    mean = (li + lk + lj) / 3.0
    return torch.where(clustered, 0.5 * _second_derivative(spec, mean), out)


# ---------------------------------------------------------------------------------------------------
# Autograd Functions


def _conjugate(Q: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    return Q @ inner @ Q.transpose(-2, -1)


def _to_eigenbasis(Q: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    return Q.transpose(-2, -1) @ A @ Q


def _frechet(Q: torch.Tensor, F: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """``Df(X)[sym(E)] = Q (F o sym(Q^T E Q)) Q^T`` for any square ``E``.

    Symmetrising in the eigenbasis, fused with the Hadamard product, costs one pass over the matrix
    where ``sym(E)`` first would cost two; its factor 1/2 rides on the last product. The four products
    are the minimum for a dense ``E``.
    """
    V = _to_eigenbasis(Q, E)
    W = Q @ add_transpose(V).mul_(F)
    n = Q.shape[-1]
    W3, Q3 = W.reshape(-1, n, n), Q.expand_as(W).reshape(-1, n, n)
    return torch.baddbmm(W3.new_zeros(()), W3, Q3.transpose(-2, -1), beta=0.0, alpha=0.5).reshape(W.shape)


class _SpectralApply(torch.autograd.Function):
    """``Y = Q f(L) Q^T`` from a precomputed eigendecomposition of ``X``; ``X`` is the only
    differentiable input (it anchors the graph for the double backward)."""

    @staticmethod
    def forward(X, L, Q, spec, zero_eigenvalue_error=None):
        # Exactly symmetric output, so that the next spectral layer's symmetry check takes its fast
        # path; halving f(L) first (exact) makes the symmetrisation a single pass.
        return add_transpose((Q * (0.5 * spec.f(L)).unsqueeze(-2)) @ Q.transpose(-2, -1))

    @staticmethod
    def setup_context(ctx, inputs, output):
        X, L, Q, spec, *error = inputs
        ctx.save_for_backward(X, L, Q)
        ctx.spec = spec
        ctx.zero_eigenvalue_error = error[0] if error else None

    @staticmethod
    def backward(ctx, gY):
        if ctx.zero_eigenvalue_error is not None:
            raise ValueError(ctx.zero_eigenvalue_error)
        X, L, Q = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: record the derivative itself for a double backward
            return _FrechetDerivative.apply(X, gY, L, Q, ctx.spec), None, None, None, None
        return _frechet(Q, loewner_matrix(ctx.spec, L), gY), None, None, None, None


class _FrechetDerivative(torch.autograd.Function):
    """``Df(X)[sym(E)] = Q (F o sym(Q^T E Q)) Q^T``; differentiable in ``X`` and ``E``.

    The map ``E -> Df(X)[sym(E)]`` is self-adjoint, so its gradient in ``E`` is itself applied to the
    incoming gradient.
    """

    @staticmethod
    def forward(X, E, L, Q, spec):
        return _frechet(Q, loewner_matrix(spec, L), E)

    @staticmethod
    def setup_context(ctx, inputs, output):
        X, E, L, Q, spec = inputs
        ctx.save_for_backward(E, L, Q)
        ctx.spec = spec

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gZ):
        E, L, Q = ctx.saved_tensors
        spec = ctx.spec
        F = loewner_matrix(spec, L)
        gE = _frechet(Q, F, gZ) if ctx.needs_input_grad[1] else None
        gX = None
        if ctx.needs_input_grad[0]:
            E_hat = sym(_to_eigenbasis(Q, E))
            V = sym(_to_eigenbasis(Q, gZ))
            n = L.shape[-1]
            batch = max(1, math.prod(L.shape[:-1]))
            # A_kj = sum_i E^_ki V^_ij f[l_i, l_k, l_j], in chunks of k to bound the O(n^3) memory.
            chunk = max(1, (1 << 24) // max(1, batch * n * n))
            parts = []
            for start in range(0, n, chunk):
                k = slice(start, min(n, start + chunk))
                T = _second_divided_differences(spec, L, F, k)
                parts.append(torch.einsum("...ik,...ij,...ikj->...kj", E_hat[..., :, k], V, T))
            A = torch.cat(parts, dim=-2) if parts else torch.zeros_like(V)
            gX = sym(_conjugate(Q, A + A.transpose(-2, -1)))
        return gX, gE, None, None, None


# ---------------------------------------------------------------------------------------------------
# Public functions


def spectral_apply(X: torch.Tensor, spec: SpectralFunction, *, check: bool = True, name: str | None = None) -> torch.Tensor:
    """``Y = Q f(L) Q^T`` for symmetric ``X (..., n, n)`` with the Daleckii-Krein backward.

    The eigendecomposition runs once, outside autograd, and is reused by the backward. Half-precision
    input (or autocast) is computed in float32. With ``check=True`` (default) non-square, non-finite
    or non-symmetric input and eigenvalues outside ``spec.domain`` raise ``ValueError`` naming the
    first offending batch index.
    """
    name = name or spec.name
    check_square(X, name)
    if check:
        check_finite_symmetric(X, name)
    with no_autocast(X):
        X = spectral_dtype(X)
        with torch.no_grad():
            L, Q = torch.linalg.eigh(X.detach())
        if spec.domain == "pd":
            if check:
                check_eigenvalues(L, name, strict=True, requirement="input must be positive definite")
        elif spec.domain == "psd":
            if check:
                check_eigenvalues(L, name, strict=False, requirement="input must be positive semi-definite")
            L = L.clamp_min(0.0)
            if check and X.requires_grad and _infinite_slope_at_zero(spec):
                return _SpectralApply.apply(X, L, Q, spec, _zero_eigenvalue_error(L, name))
        return _SpectralApply.apply(X, L, Q, spec)


def _infinite_slope_at_zero(spec: SpectralFunction) -> bool:
    return math.isinf(float(spec.df(torch.zeros((), dtype=torch.float64))))


def _zero_eigenvalue_error(L: torch.Tensor, name: str) -> str | None:
    """The message the backward raises when ``f'`` is infinite at an eigenvalue that is exactly zero."""
    zero = (L == 0).any(-1)
    if not bool(zero.any()):
        return None
    return (f"{name}: the gradient is infinite at a zero eigenvalue ({_where(zero)}); add a ridge, e.g. X + eps * I, "
            "or use check=False to get non-finite gradients instead of this error")


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
    """
    spec = SpectralFunction("funm", f, df, divided_difference, d2f, domain)
    return spectral_apply(X, spec, check=check)


def _ordered(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.maximum(a, b), torch.minimum(a, b)


def _safe(x: torch.Tensor, bad: torch.Tensor) -> torch.Tensor:
    return torch.where(bad, torch.ones_like(x), x)


def _log_dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # log(hi) - log(lo) = log1p(x) with x = hi / lo - 1 >= 0, and f[a, b] = g(x) / lo with
    # g(x) = log1p(x) / x. g is well conditioned (|x g'(x) / g(x)| <= 1, and |g'| <= 1/2 near 0), so
    # the rounding of hi / lo, an absolute error of eps (1 + x) / 2, costs about eps relative: one
    # formula is accurate at every ratio of eigenvalues. Shifting x by eps/2 (1 - eps/2 is exact, and so is
    # hi / lo - (1 - eps/2) for hi / lo < 2) moves f[a, b] by at most eps/4 relative and spares ties
    # a pass of their own: there x = eps/2, log1p(x) rounds to x, and f[a, a] = 1 / a exactly.
    hi, lo = _ordered(a, b)
    eps = torch.finfo(lo.dtype).eps
    x = torch.addcdiv(torch.full((), eps / 2 - 1.0, dtype=lo.dtype, device=lo.device), hi, lo)
    return torch.log1p(x).div_(x).div_(lo)


def _pow_dd(p: float) -> Pairwise:
    def dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if p == 0.0:  # constant function; the general form would meet 0 * log(0)
            return torch.zeros_like(a * b)
        # Close pairs (lo > hi / 2): hi^p - lo^p = hi^p expm1(p log1p(x)), x = (lo - hi) / hi in
        # (-1/2, 0], free of cancellation. Far pairs: the plain quotient, whose two terms differ by a
        # constant factor at least, so nothing cancels (while x would lose lo / hi against -1).
        hi, lo = _ordered(a, b)
        degenerate = hi == 0
        hi_safe = _safe(hi, degenerate)
        close = lo > 0.5 * hi
        x = (lo - hi) / hi_safe
        zero = x == 0
        near = hi_safe ** (p - 1.0) * torch.expm1(p * torch.log1p(x)) / _safe(x, zero)
        far = (hi_safe**p - lo**p) / _safe(hi - lo, close | degenerate)
        return torch.where(zero | degenerate, p * hi ** (p - 1.0), torch.where(close, near, far))

    return dd


def _exp_dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    hi, lo = _ordered(a, b)
    d = lo - hi
    zero = d == 0
    return torch.exp(hi) * torch.where(zero, torch.ones_like(d), torch.expm1(d) / _safe(d, zero))


def _sqrt_dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 / (a.sqrt() + b.sqrt())


def _invsqrt_dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ra, rb = a.sqrt(), b.sqrt()
    return -1.0 / (ra * rb * (ra + rb))


LOG = SpectralFunction("logm", torch.log, torch.reciprocal, _log_dd, lambda x: -x.pow(-2), "pd")
SQRT = SpectralFunction(
    "sqrtm", torch.sqrt, lambda x: 0.5 * x.rsqrt(), _sqrt_dd, lambda x: -0.25 * x.pow(-1.5), "psd"
)
INVSQRT = SpectralFunction(
    "invsqrtm", torch.rsqrt, lambda x: -0.5 * x.pow(-1.5), _invsqrt_dd, lambda x: 0.75 * x.pow(-2.5), "pd"
)
EXP = SpectralFunction("expm", torch.exp, torch.exp, _exp_dd, torch.exp, "all")


def power_function(p: float) -> SpectralFunction:
    """``x -> x^p`` with its cancellation-free divided differences."""
    p = float(p)
    return SpectralFunction(
        "powm",
        lambda x: x.pow(p),
        lambda x: p * x.pow(p - 1.0),
        _pow_dd(p),
        lambda x: p * (p - 1.0) * x.pow(p - 2.0),
        "pd" if p < 0 else "psd",
    )


def logm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Matrix logarithm ``Q log(L) Q^T`` of symmetric positive definite ``X (..., n, n)``."""
    return spectral_apply(X, LOG, check=check)


def sqrtm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Principal square root ``Q sqrt(L) Q^T`` of symmetric positive semi-definite ``X (..., n, n)``.

    There is no gradient where an eigenvalue is exactly zero (``sqrt`` has infinite slope at 0): with
    ``check=True`` the backward then raises ``ValueError``, with ``check=False`` it returns non-finite
    values. Add a ridge ``eps * I`` to rank-deficient input.
    """
    return spectral_apply(X, SQRT, check=check)


def invsqrtm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Inverse square root ``Q L^(-1/2) Q^T`` of symmetric positive definite ``X (..., n, n)``."""
    return spectral_apply(X, INVSQRT, check=check)


def powm(X: torch.Tensor, p: float, *, check: bool = True) -> torch.Tensor:
    """Matrix power ``Q L^p Q^T`` of symmetric ``X (..., n, n)`` for real, finite ``p``.

    ``p >= 0`` needs positive semi-definite input, ``p < 0`` positive definite input.
    """
    _check_finite_parameter(p, "powm", "exponent p")
    return spectral_apply(X, power_function(p), check=check)


def _check_finite_parameter(value: float, name: str, what: str) -> None:
    if not math.isfinite(float(value)):
        raise ValueError(f"{name}: the {what} must be a finite number, got {value!r}")


def expm(X: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Matrix exponential ``Q exp(L) Q^T`` of symmetric ``X (..., n, n)``."""
    return spectral_apply(X, EXP, check=check)


def clamp_eigs(X: torch.Tensor, floor: float, *, check: bool = True) -> torch.Tensor:
    """Eigenvalue floor ``Q max(L, floor) Q^T`` of symmetric ``X (..., n, n)`` (ReEig).

    The derivative of ``max(l, floor)`` is taken as 1 above the floor and 0 at or below it.
    """
    _check_finite_parameter(floor, "clamp_eigs", "floor")
    floor = float(floor)

    def dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        hi, lo = _ordered(a, b)
        above = (lo > floor).to(a.dtype)
        straddle = (hi > floor) & (lo <= floor)
        return torch.where(straddle, (hi - floor) / _safe(hi - lo, hi == lo), above)

    spec = SpectralFunction(
        "clamp_eigs",
        lambda x: x.clamp_min(floor),
        lambda x: (x > floor).to(x.dtype),
        dd,
        torch.zeros_like,
        "all",
    )
    return spectral_apply(X, spec, check=check)
