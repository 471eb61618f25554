"""Hypothesis strategies for adversarial spectra, matrices and invalid inputs.

A :class:`Spectrum` is a list of float64 eigenvalues plus an integer seed for the eigenvectors; the
matrix ``X = Q diag(L) Q^T`` is built in float64 from that known decomposition (see ``reference.py``)
and only then cast to the dtype under test. Spectra mix the input classes of issue 7: exact and near
ties (relative gaps 0, 1e-12, 1e-7), clusters, zero eigenvalues, condition numbers up to 1e12 (float64;
float32 is capped where the cast itself would destroy positive definiteness), scales 1e-8 .. 1e8, and
random signs where the function accepts any symmetric input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import event
from hypothesis import strategies as st

TIE_GAPS = (0.0, 1e-12, 1e-7)
SIZES = st.one_of(st.integers(1, 8), st.sampled_from([12, 16]))


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues (float64), eigenvector seed and the input class, for statistics."""

    eigenvalues: tuple[float, ...]
    seed: int
    kind: str
    identity_basis: bool = False

    @property
    def n(self) -> int:
        return len(self.eigenvalues)

    def basis(self) -> np.ndarray:
        """Orthogonal ``Q`` (float64): Haar from the seed, or the identity (diagonal input)."""
        if self.identity_basis:
            return np.eye(self.n)
        rng = np.random.default_rng(self.seed)
        A = rng.standard_normal((self.n, self.n))
        Q, R = np.linalg.qr(A)
        return Q * np.sign(np.diag(R))

    def matrix(self, dtype: torch.dtype) -> tuple[torch.Tensor, np.ndarray]:
        """``(X in dtype, Q)`` with ``X = Q diag(L) Q^T`` symmetrised in float64 before the cast."""
        Q = self.basis()
        X = (Q * np.asarray(self.eigenvalues)) @ Q.T
        X = 0.5 * (X + X.T)
        return torch.from_numpy(X).to(dtype), Q


def max_log_condition(dtype: torch.dtype, n: int = 16) -> float:
    """Largest ``log10`` condition number for which rounding ``X`` to ``dtype`` keeps it definite.

    Casting perturbs eigenvalues by up to ``||dX||_2 <= sqrt(n) eps ||X||``; keeping the smallest one
    above ``10 n eps ||X||`` leaves a margin for the solver's own backward error.
    float64: 12 (the issue's 1e12), float32: about 4.7.
    """
    eps = torch.finfo(dtype).eps
    return min(12.0, float(-np.log10(10 * n * eps)))


def _apply_structure(draw, L: list[float], kind: str) -> list[float]:
    n = len(L)
    if n < 2 or kind == "generic":
        return L
    if kind in ("tie", "near_tie"):
        i, j = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
        gap = 0.0 if kind == "tie" else draw(st.sampled_from(TIE_GAPS[1:]))
        L[j] = L[i] * (1.0 + gap)
    elif kind == "cluster":
        size = draw(st.integers(2, n))
        gap = draw(st.sampled_from(TIE_GAPS))
        centre = L[0]
        for k in range(size):
            L[k] = centre * (1.0 + k * gap)
    return L


@st.composite
def spectra(
    draw,
    *,
    dtype: torch.dtype,
    domain: str = "pd",
    log_scale: tuple[float, float] = (-8.0, 8.0),
    max_abs: float | None = None,
    max_log_cond: float | None = None,
    allow_identity: bool = True,
    sizes: st.SearchStrategy[int] = SIZES,
) -> Spectrum:
    """Valid spectra for a function with ``domain`` ``"pd"``, ``"psd"`` or ``"all"``.

    ``pd``/``psd``: magnitudes log-uniform in ``[s 10^-k, s]`` with scale ``s = 10^u`` from
    ``log_scale`` and ``k`` up to :func:`max_log_condition`; ``psd`` adds exact zeros (rank deficiency).
    ``all``: uniform in ``[-max_abs, max_abs]`` with the same tie structure, exact zeros included.
    """
    n = draw(sizes)
    kind = draw(
        st.sampled_from(["generic", "tie", "near_tie", "cluster"] + (["rank_deficient"] if domain != "pd" else []))
    )
    if domain == "all":
        L = [draw(st.floats(-max_abs, max_abs, allow_nan=False)) for _ in range(n)]
    else:
        scale = 10.0 ** draw(st.floats(*log_scale))
        kmax = max_log_cond if max_log_cond is not None else max_log_condition(dtype)
        k = draw(st.floats(0.0, kmax))
        u = [draw(st.floats(0.0, 1.0)) for _ in range(n)]
        u[0], u[-1] = 0.0, 1.0  # hit both ends: the condition number is exactly 10^k
        L = [scale * 10.0 ** (-k * t) for t in u]
        if n == 1:
            L = [scale]
    if kind == "rank_deficient" and n >= 1:
        zeros = draw(st.integers(1, max(1, n - 1)))
        for i in range(zeros):
            L[i] = 0.0
    else:
        L = _apply_structure(draw, L, kind)
    seed = draw(st.integers(0, 2**32 - 1))
    identity = allow_identity and draw(st.integers(0, 9)) == 0
    event(f"class={kind}")
    return Spectrum(tuple(float(x) for x in L), seed, kind, identity)


@st.composite
def directions(draw, n: int) -> np.ndarray:
    """A general (non-symmetric) output gradient ``G (n, n)`` of unit Frobenius norm."""
    seed = draw(st.integers(0, 2**32 - 1))
    G = np.random.default_rng(seed).standard_normal((n, n))
    return G / max(np.linalg.norm(G), 1e-300)


# ---------------------------------------------------------------------------------------------------
# Invalid input

INVALID_KINDS = ("nan", "inf", "asymmetric", "vector", "non_square", "integer")


@st.composite
def invalid_matrices(draw, *, dtype: torch.dtype, kinds: tuple[str, ...] = INVALID_KINDS) -> tuple[str, torch.Tensor]:
    """``(kind, X)``: an input every square-matrix function must reject with ``ValueError``.

    ``nan``/``inf``: one entry (and its mirror, so that only finiteness is wrong); ``asymmetric``: a
    relative asymmetry of 1e-2 .. 1 (far above the ``sqrt(eps)`` rounding allowance); ``vector``,
    ``non_square``: wrong shape; ``integer``: wrong dtype. Batched inputs hide the bad matrix at a
    random batch index.
    """
    kind = draw(st.sampled_from(kinds))
    n = draw(st.integers(2, 6))
    batch = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.standard_normal((batch, n, n))
    X = torch.from_numpy(A @ A.transpose(0, 2, 1) + n * np.eye(n)).to(dtype)
    b = draw(st.integers(0, batch - 1))
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    if kind in ("nan", "inf"):
        value = float("nan") if kind == "nan" else draw(st.sampled_from([float("inf"), float("-inf")]))
        X[b, i, j] = value
        X[b, j, i] = value
    elif kind == "asymmetric":
        j = (i + 1 + draw(st.integers(0, n - 2))) % n
        X[b, i, j] += draw(st.floats(1e-2, 1.0)) * float(X[b].abs().max())
    elif kind == "vector":
        X = X[b, 0]
    elif kind == "non_square":
        X = X[..., :-1]
    elif kind == "integer":
        X = X.round().to(torch.int64)
    event(f"invalid={kind}")
    return kind, X


EXPECTED_MESSAGE = {
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "asymmetric": "not symmetric",
    "vector": "shape",
    "non_square": "square",
    "integer": "floating-point",
}


@st.composite
def indefinite_spectra(draw, *, dtype: torch.dtype, zero: bool = False) -> Spectrum:
    """Spectra with a clearly negative eigenvalue (``-r max|L|``, ``r`` in 1e-3 .. 1), or (``zero``)
    an exact zero; a PD function must reject both, a PSD function the first."""
    n = draw(st.integers(1, 6))
    L = [10.0 ** draw(st.floats(-3.0, 3.0)) for _ in range(n)]
    i = draw(st.integers(0, n - 1))
    L[i] = 0.0 if zero else -draw(st.floats(1e-3, 1.0)) * max(abs(x) for x in L)
    return Spectrum(tuple(L), draw(st.integers(0, 2**32 - 1)), "zero" if zero else "negative")
