"""Scalar functions lifted to symmetric matrices: their first and second divided differences.

A :class:`SpectralFunction` bundles ``f``, ``f'``, ``f''`` and a cancellation-free first divided
difference ``f[a, b] = (f(a) - f(b)) / (a - b)`` (``f'(a)`` at ``a == b``). The Loewner matrix
``F_ij = f[l_i, l_j]`` drives the first-order Daleckii-Krein formula (reverse and forward mode), the
second divided differences ``f[l_i, l_k, l_j]`` its second order (double backward, Hessians).

Parameters of a function (the exponent of ``powm``, the floor of ``clamp_eigs``) may be tensors that
broadcast against the batch shape ``(...)`` of ``X (..., n, n)`` (one value per channel, say): the
elementwise callables receive tensors whose leading dimensions are the batch dimensions, followed by
one to three spectral dimensions, and :func:`batch_parameter` aligns the parameter with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "SpectralFunction",
    "divided_difference",
    "loewner_matrix",
    "second_divided_differences",
    "batch_parameter",
    "LOG",
    "SQRT",
    "INVSQRT",
    "EXP",
    "power_function",
    "clamp_function",
]

Elementwise = Callable[[torch.Tensor], torch.Tensor]
Pairwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class SpectralFunction:
    """A scalar function lifted to symmetric matrices.

    ``f``, ``df`` and ``d2f`` act elementwise on eigenvalues. ``divided_difference(a, b)`` returns
    ``f[a, b]`` elementwise for broadcast tensors, including ``a == b`` (then ``f'(a)``); when ``None``
    a generic rule is used (see :func:`loewner_matrix`). ``d2f=None`` takes ``f''`` from autograd
    through ``df``. ``domain`` is ``"all"``, ``"psd"`` (eigenvalues >= 0; rounding negatives are
    clamped to 0) or ``"pd"`` (eigenvalues > 0; see :mod:`.checks` for the rounding policy).
    ``pd_where`` (a boolean tensor broadcasting against the batch shape, for ``domain="psd"``) marks
    the matrices whose domain is ``"pd"`` instead, e.g. channels with a negative ``powm`` exponent.

    Example:
        >>> import torch, matbackprop as mb
        >>> cube = mb.SpectralFunction("cube", f=lambda l: l**3, df=lambda l: 3 * l**2)
        >>> X = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
        >>> torch.allclose(mb.spectral_apply(X, cube), X @ X @ X)
        True
    """

    name: str
    f: Elementwise
    df: Elementwise
    divided_difference: Pairwise | None = None
    d2f: Elementwise | None = None
    domain: str = "all"
    pd_where: torch.Tensor | None = None


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


def second_divided_differences(spec: SpectralFunction, L: torch.Tensor, F: torch.Tensor, k: slice) -> torch.Tensor:
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


def batch_parameter(value: torch.Tensor, batch_ndim: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> value`` aligned with ``x (*batch, *spectral)``: trailing singleton dimensions appended
    for the ``x.dim() - batch_ndim`` spectral dimensions, so that ``value`` (broadcasting against the
    batch shape) broadcasts against ``x``."""

    def aligned(x: torch.Tensor) -> torch.Tensor:
        return value.reshape(value.shape + (1,) * (x.dim() - batch_ndim))

    return aligned


Parameter = Callable[[torch.Tensor], "float | torch.Tensor"]


def _pow_dd(param: Parameter) -> Pairwise:
    def dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        p = param(a)
        if isinstance(p, float) and p == 0.0:  # constant function; the general form would meet 0 * log(0)
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
        out = torch.where(zero | degenerate, p * hi ** (p - 1.0), torch.where(close, near, far))
        if isinstance(p, torch.Tensor):
            out = torch.where(p == 0, torch.zeros((), dtype=out.dtype, device=out.device), out)
        return out

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
SQRT = SpectralFunction("sqrtm", torch.sqrt, lambda x: 0.5 * x.rsqrt(), _sqrt_dd, lambda x: -0.25 * x.pow(-1.5), "psd")
INVSQRT = SpectralFunction(
    "invsqrtm", torch.rsqrt, lambda x: -0.5 * x.pow(-1.5), _invsqrt_dd, lambda x: 0.75 * x.pow(-2.5), "pd"
)
EXP = SpectralFunction("expm", torch.exp, torch.exp, _exp_dd, torch.exp, "all")


def _constant(value: float) -> Parameter:
    return lambda x: value


def _parameter(value: float | torch.Tensor, batch_ndim: int) -> Parameter:
    if isinstance(value, torch.Tensor):
        return batch_parameter(value, batch_ndim)
    return _constant(float(value))


def power_function(p: float | torch.Tensor, batch_ndim: int = 0) -> SpectralFunction:
    """``x -> x^p`` with its cancellation-free divided differences.

    A tensor ``p`` broadcasts against the batch shape (``batch_ndim`` dimensions) of the input.
    """
    P = _parameter(p, batch_ndim)
    if isinstance(p, torch.Tensor):
        pd_where = p < 0
        return SpectralFunction(
            "powm",
            lambda x: x.pow(P(x)),
            lambda x: P(x) * x.pow(P(x) - 1.0),
            _pow_dd(P),
            lambda x: P(x) * (P(x) - 1.0) * x.pow(P(x) - 2.0),
            "psd",
            pd_where,
        )
    q = float(p)
    return SpectralFunction(
        "powm",
        lambda x: x.pow(q),
        lambda x: q * x.pow(q - 1.0),
        _pow_dd(P),
        lambda x: q * (q - 1.0) * x.pow(q - 2.0),
        "pd" if q < 0 else "psd",
    )


def clamp_function(floor: float | torch.Tensor, batch_ndim: int = 0) -> SpectralFunction:
    """``x -> max(x, floor)`` (ReEig); the derivative is 1 above the floor, 0 at or below it.

    Its divided difference across the floor is ``(hi - floor) / (hi - lo)``; a tensor ``floor``
    broadcasts against the batch shape (``batch_ndim`` dimensions) of the input.
    """
    FL = _parameter(floor, batch_ndim)

    def dd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fl = FL(a)
        hi, lo = _ordered(a, b)
        above = (lo > fl).to(a.dtype)
        straddle = (hi > fl) & (lo <= fl)
        return torch.where(straddle, (hi - fl) / _safe(hi - lo, hi == lo), above)

    return SpectralFunction(
        "clamp_eigs",
        lambda x: torch.clamp_min(x, FL(x)),
        lambda x: (x > FL(x)).to(x.dtype),
        dd,
        torch.zeros_like,
        "all",
    )
