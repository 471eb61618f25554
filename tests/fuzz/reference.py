"""Float64 / mpmath references for the fuzz tests, built from a KNOWN eigendecomposition.

The strategies construct ``X = Q diag(L) Q^T`` from eigenvalues ``L`` and an orthogonal ``Q`` that they
chose, so the exact spectral function ``f(X) = Q f(L) Q^T`` and its Daleckii-Krein gradient
``Q (F o (Q^T sym(G) Q)) Q^T`` never go through the code under test. Divided differences are evaluated
in mpmath with 40 digits plus twice the digits that the closest pair of eigenvalues cancels
(:func:`digits`), so near ties keep full float64 accuracy in the reference.

Error bounds are first-order perturbation bounds with an explicit unit ``scale``: a backward-stable
computation perturbs ``X`` by ``O(n eps ||X||)``, which moves ``f(X)`` by at most
``||Df(X)|| = max |f[l_i, l_j]|`` times that (Frobenius norm; Daleckii-Krein), and the gradient
``Df(X)[G]`` by the second divided differences ``max |f[l_i, l_j, l_k]|`` times it. Rounding in forming
the products adds ``n eps (max |f(l)| resp. max |F| ||G||)``. The tests assert ``error <= C * scale``
with a constant ``C`` measured by the thorough run (docs/robustness.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import numpy as np
import torch

MpFunc = Callable[[mpmath.mpf], mpmath.mpf]


@dataclass(frozen=True)
class ScalarFunction:
    """``f``, ``f'``, ``f''`` in mpmath, and the Hoelder exponent of ``f`` near 0 (``None``: Lipschitz)."""

    f: MpFunc
    df: MpFunc
    d2f: MpFunc
    holder: float | None = None
    lipschitz: float = 0.0  # global Lipschitz constant where the local max |F| can miss it (kinks)


def power(p: float) -> ScalarFunction:
    """``x^p`` (``x >= 0``); Hoelder-``p`` at 0 for ``0 < p < 1`` (operator monotone, Bhatia X.1)."""
    p_mp = mpmath.mpf(p)

    def f(x):
        return mpmath.mpf(0) if x == 0 and p > 0 else x**p_mp

    return ScalarFunction(
        f,
        lambda x: p_mp * x ** (p_mp - 1),
        lambda x: p_mp * (p_mp - 1) * x ** (p_mp - 2),
        p if 0 < p < 1 else None,
    )


LOG = ScalarFunction(mpmath.log, lambda x: 1 / x, lambda x: -1 / x**2)
EXP = ScalarFunction(mpmath.exp, mpmath.exp, mpmath.exp)
SIN = ScalarFunction(mpmath.sin, mpmath.cos, lambda x: -mpmath.sin(x))


def clamp(floor: float) -> ScalarFunction:
    """``max(x, floor)`` with ``f'(floor) = 0``, the convention of :func:`matbackprop.clamp_eigs`."""
    c = mpmath.mpf(floor)
    return ScalarFunction(
        lambda x: x if x > c else c,
        lambda x: mpmath.mpf(1) if x > c else mpmath.mpf(0),
        lambda x: mpmath.mpf(0),
        lipschitz=1.0,
    )


def indicator(threshold: float) -> ScalarFunction:
    """Step ``1[x > threshold]``: the spectral projector onto the eigenvalues above ``threshold``."""
    t = mpmath.mpf(threshold)
    return ScalarFunction(
        lambda x: mpmath.mpf(1) if x > t else mpmath.mpf(0),
        lambda x: mpmath.mpf(0),
        lambda x: mpmath.mpf(0),
    )


def digits(L: Sequence[float]) -> int:
    """Working precision for the divided differences of ``L``.

    ``f(a) - f(b)`` cancels about ``log10((1 + max(|a|, |b|)) / |a - b|)`` digits (the ``1 +`` covers
    functions like ``exp`` whose values stay O(1) near 0); second differences cancel twice.
    """
    lost = 0.0
    distinct = sorted(set(float(x) for x in L))
    for a, b in itertools.pairwise(distinct):
        lost = max(lost, math.log10(1.0 + max(abs(a), abs(b))) - math.log10(b - a))
    return 40 + 2 * math.ceil(lost)


def _mp(values: Sequence[float]) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(v)) for v in values]


def first_dd(fn: ScalarFunction, a: mpmath.mpf, b: mpmath.mpf) -> mpmath.mpf:
    """``f[a, b]`` (``f'(a)`` at ``a == b``), exact up to 60 digits."""
    if a == b:
        return fn.df(a)
    return (fn.f(a) - fn.f(b)) / (a - b)


def second_dd(fn: ScalarFunction, a: mpmath.mpf, b: mpmath.mpf, c: mpmath.mpf) -> mpmath.mpf:
    """``f[a, b, c]`` for any coincidences (``f''/2`` when all three are equal)."""
    lo, mid, hi = sorted((a, b, c))
    if lo == hi:
        return fn.d2f(lo) / 2
    return (first_dd(fn, hi, mid) - first_dd(fn, mid, lo)) / (hi - lo)


def _values(fn: ScalarFunction, L: Sequence[float]) -> np.ndarray:
    """``f(l_i)`` rounded to float64."""
    return np.array([float(fn.f(x)) for x in _mp(L)])


def _loewner(fn: ScalarFunction, L: Sequence[float]) -> np.ndarray:
    """Loewner matrix ``F_ij = f[l_i, l_j]`` rounded to float64."""
    m = _mp(L)
    return np.array([[float(first_dd(fn, a, b)) for b in m] for a in m])


def _max_second_dd(fn: ScalarFunction, L: Sequence[float]) -> float:
    """``max |f[l_i, l_j, l_k]|`` over all index triples (repeats included)."""
    m = sorted(set(_mp(L)))
    best = mpmath.mpf(0)
    for a, b, c in itertools.combinations_with_replacement(m, 3):
        best = max(best, abs(second_dd(fn, a, b, c)))
    # A value may appear once in L but twice in a triple (f[a, a, b] needs f'(a)): covered above,
    # since combinations_with_replacement repeats elements.
    return float(best)


def conjugate(Q: np.ndarray, inner: np.ndarray) -> np.ndarray:
    return Q @ inner @ Q.T


def sym(A: np.ndarray) -> np.ndarray:
    return 0.5 * (A + A.T)


def spectral_output(fn: ScalarFunction, L: Sequence[float], Q: np.ndarray) -> np.ndarray:
    """``Q f(L) Q^T`` in float64."""
    return conjugate(Q, np.diag(values(fn, L)))


def spectral_gradient(fn: ScalarFunction, L: Sequence[float], Q: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Daleckii-Krein gradient of ``<G, f(X)>``: ``Q (F o (Q^T sym(G) Q)) Q^T`` in float64."""
    return conjugate(Q, loewner(fn, L) * (Q.T @ sym(G) @ Q))


@dataclass(frozen=True)
class Bounds:
    """Units of error (Frobenius norm) for the output and the gradient of ``<G, f(X)>``."""

    output: float
    gradient: float


def perturbation_scale(fn: ScalarFunction, L: Sequence[float], G: np.ndarray, eps: float, tiny: float = 0.0) -> Bounds:
    """First-order error units for ``f(X)`` and ``Df(X)[G]`` under ``O(n eps ||X||)`` backward error.

    ``output = n eps (||X|| max|F| + max|f(l)|)``; for Hoelder-``p`` functions (``sqrt``, ``x^p``,
    ``0 < p < 1``) also ``sqrt(n) (n eps ||X||)^p + n eps max|f|`` and the smaller of the two.
    ``gradient = n eps ||sym G|| (||X|| max|f[.,.,.]| + max|F|)``; ``||X||`` is at least
    ``tiny / eps`` (the absolute rounding floor of the cast to a dtype with smallest normal ``tiny``).
    """
    n = max(len(L), 1)
    # Entries below the dtype's smallest normal number lose relative accuracy when X is cast
    # (subnormals or zero): an absolute input error of ``tiny`` is the floor of ``eps ||X||``.
    norm_x = max(max((abs(x) for x in L), default=0.0), tiny / eps)
    max_f = float(np.abs(values(fn, L)).max(initial=0.0))
    try:
        max_F = float(np.abs(loewner(fn, L)).max(initial=0.0))
        max_F2 = max_second_dd(fn, L)
    except ZeroDivisionError:  # infinite slope at a zero eigenvalue (sqrt, x^p with p < 1)
        max_F = max_F2 = math.inf
    lipschitz = n * eps * (norm_x * max(max_F, fn.lipschitz) + max_f)
    output = lipschitz
    if fn.holder is not None:
        output = min(lipschitz, math.sqrt(n) * (n * eps * norm_x) ** fn.holder + n * eps * max_f)
    g = frobenius(sym(G))
    gradient = n * eps * g * (norm_x * max_F2 + max_F)
    return Bounds(output, gradient)


def frobenius(a: np.ndarray) -> float:
    """Frobenius norm without overflow of the squares (entries up to 1e300 occur at tiny scales)."""
    m = float(np.abs(a).max(initial=0.0))
    if m == 0 or not math.isfinite(m):
        return m
    return m * float(np.linalg.norm(a / m))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b||_F``."""
    return frobenius(a - b)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def values(fn: ScalarFunction, L: Sequence[float]) -> np.ndarray:
    """``f(l_i)`` rounded to float64."""
    with mpmath.workdps(digits(L)):
        return _values(fn, L)


def loewner(fn: ScalarFunction, L: Sequence[float]) -> np.ndarray:
    """Loewner matrix ``F_ij = f[l_i, l_j]`` rounded to float64."""
    with mpmath.workdps(digits(L)):
        return _loewner(fn, L)


def max_second_dd(fn: ScalarFunction, L: Sequence[float]) -> float:
    """``max |f[l_i, l_j, l_k]|`` over all index triples (repeats included)."""
    with mpmath.workdps(digits(L)):
        return _max_second_dd(fn, L)
