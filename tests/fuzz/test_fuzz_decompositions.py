"""Fuzz eigh, svd (LAPACK and Gram routes) and the Newton-Schulz square roots.

eigh and svd have no derivative at tied eigen/singular values in general; their documented contract
is exactness for losses that see the vectors through whole eigenspaces (spectral projectors) and the
values. The properties check exactly those: ``sum l_i^2`` (gradient ``X``), the spectral projector onto
the top group (reference: Daleckii-Krein for the indicator function, from the known decomposition),
and the forward residuals.

The EIG/SVD backward divides by every computed gap above the tie tolerance, so rounding in
``Q^T dL/dQ`` (``~eps ||G||``) is amplified by ``1 / delta``, the smallest such gap, even inside a group
where the exact coupling vanishes: the gradient unit carries the extra term ``||G|| / delta``
(:func:`eig_route_scale`). This is the price of the EIG route; ``funm`` avoids it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

import matbackprop as mb

from . import record
from . import reference as ref
from .profiles import fuzz_settings
from .strategies import Spectrum, directions, spectra

DTYPES = [torch.float32, torch.float64]
IDS = ["float32", "float64"]
RESIDUAL_BOUND = 32.0  # forward residuals, in units of n eps ||X||
GRADIENT_BOUND = 32.0  # gradients, in units of eig_route_scale


def _any_spectrum(dtype: torch.dtype) -> st.SearchStrategy[Spectrum]:
    return st.one_of(
        spectra(dtype=dtype, domain="pd"),
        spectra(dtype=dtype, domain="psd"),
        spectra(dtype=dtype, domain="all", max_abs=1.0),
    )


def _top_group(L: np.ndarray, tol: float) -> float | None:
    """Threshold between the largest values and the rest at the widest gap, or ``None`` (no gap > tol)."""
    s = np.sort(L)
    if s.size < 2:
        return None
    gaps = np.diff(s)
    i = int(np.argmax(gaps))
    return None if gaps[i] <= tol else float(0.5 * (s[i] + s[i + 1]))


def smallest_resolved_gap(L: np.ndarray, tol: float) -> float:
    """Smallest gap between any two values that exceeds the tie tolerance ``tol`` (inf if none).

    All pairs, not neighbours: the tie test is pairwise, so in a cluster whose neighbours are all
    within ``tol`` the outer pairs can still be divided by their (small) gap.
    """
    gaps = np.abs(L[:, None] - L[None, :]).ravel()
    gaps = gaps[gaps > tol]
    return float(gaps.min()) if gaps.size else math.inf


def eig_route_scale(
    fn: ref.ScalarFunction,
    L: np.ndarray,
    computed: np.ndarray,
    G: np.ndarray,
    eps: float,
    tiny: float,
    tie_n: int | None = None,
) -> float:
    """``n eps ||G|| (||X|| max|f[.,.,.]| + max|F| + max|f| / delta)`` with ``delta`` the smallest gap
    between the COMPUTED values above the tie tolerance ``n eps max|computed|``: the gaps the backward
    divides by (see the module docstring). ``tie_n``: the ``n`` of the implementation's tolerance
    (the number of singular values for the SVD, which is less than ``L.size`` when padded)."""
    n = max(L.size, 1)
    base = ref.perturbation_scale(fn, list(L), G, eps, tiny).gradient
    delta = smallest_resolved_gap(computed, (tie_n or n) * eps * float(np.abs(computed).max(initial=0.0)))
    return base + n * eps * float(ref.frobenius(ref.sym(G))) * float(np.abs(ref.values(fn, list(L))).max()) / delta


def _key(name: str, dtype: torch.dtype, what: str) -> str:
    return f"{name}/{str(dtype)[6:]}/{what}"


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(1.0)
def test_eigh(dtype: torch.dtype, data) -> None:
    spectrum = data.draw(_any_spectrum(dtype))
    record.count("eigh")
    X, Q = spectrum.matrix(dtype)
    L_true = np.sort(np.asarray(spectrum.eigenvalues))
    n, eps, tiny = spectrum.n, torch.finfo(dtype).eps, torch.finfo(dtype).tiny
    norm = max(float(np.abs(L_true).max()), tiny / eps)
    unit = n * eps * norm
    note(f"eigh {dtype} L={spectrum.eigenvalues} seed={spectrum.seed}")

    X.requires_grad_(True)
    L, V = mb.eigh(X)
    assert bool(torch.isfinite(L).all()) and bool(torch.isfinite(V).all())
    # Weyl: each eigenvalue moves by at most ||dX||_2 under a backward error dX.
    assert (
        record.ratio(_key("eigh", dtype, "eigenvalues"), float(np.abs(ref.to_numpy(L) - L_true).max()), unit)
        <= RESIDUAL_BOUND
    )
    Ln, Vn = ref.to_numpy(L), ref.to_numpy(V)
    recon = float(ref.frobenius((Vn * Ln) @ Vn.T - ref.to_numpy(X)))
    assert record.ratio(_key("eigh", dtype, "residual"), recon, unit) <= RESIDUAL_BOUND
    orth = float(ref.frobenius(Vn.T @ Vn - np.eye(n)))
    assert record.ratio(_key("eigh", dtype, "orthogonality"), orth, n * eps) <= RESIDUAL_BOUND

    # sum l^2 / (2 ||X||): gradient X / ||X||, the eigenvalue part of the backward alone.
    (gX,) = torch.autograd.grad((L * L).sum() / (2 * norm), X, retain_graph=True)
    err = float(ref.frobenius(ref.to_numpy(gX) - ref.to_numpy(X.detach()) / norm))
    assert record.ratio(_key("eigh", dtype, "gradient_values"), err, n * eps) <= GRADIENT_BOUND

    # Spectral projector onto the top group: the eigenvector part, exact under the tie policy.
    threshold = _top_group(L_true, unit * 10)
    if threshold is None:
        return
    k = int((L_true > threshold).sum())
    G = data.draw(directions(n))
    P = V[:, -k:] @ V[:, -k:].T
    (gX,) = torch.autograd.grad((P * torch.from_numpy(G).to(dtype)).sum(), X)
    assert bool(torch.isfinite(gX).all())
    step = ref.indicator(threshold)
    g_ref = ref.spectral_gradient(step, spectrum.eigenvalues, Q, G)
    scale = eig_route_scale(step, L_true, Ln, G, eps, tiny)
    err = float(ref.frobenius(ref.to_numpy(gX) - g_ref))
    assert record.ratio(_key("eigh", dtype, "gradient_projector"), err, scale) <= GRADIENT_BOUND


def _projector_gradient_error(L: tuple[float, ...], seed: int, k: int, threshold: float) -> float:
    X, Q = Spectrum(L, seed=seed, kind="tie").matrix(torch.float64)
    X.requires_grad_(True)
    _, V = mb.eigh(X)
    G = np.random.default_rng(seed).standard_normal((len(L), len(L)))
    (gX,) = torch.autograd.grad((V[:, -k:] @ V[:, -k:].T * torch.from_numpy(G)).sum(), X)
    return float(ref.frobenius(gX.numpy() - ref.spectral_gradient(ref.indicator(threshold), L, Q, G)))


@pytest.mark.parametrize(
    "L, seed, k, threshold",
    [
        # double eigenvalue split by exactly 5 eps, tolerance 5 eps * 0.9999999999999994
        ((0.0, 1.0, 0.0, 0.984375, 0.984375), 1, 3, 0.5),
        # ten ties spread 3.1e-15 end to end, every consecutive gap below the tolerance 2.7e-15
        ((1.0,) * 10 + (0.5424690937011326, 5.623413251903491e-05), 0, 10, 0.77),
    ],
)
def test_missed_tie_regression(L, seed, k, threshold) -> None:
    """Regression (found by fuzzing): LAPACK split these exact ties by slightly more than the old
    pairwise tolerance n eps max|L|, and the gradient of ``<G, P_top>`` (a spectral projector, exact
    under the tie policy) came out O(0.1) off."""
    assert _projector_gradient_error(L, seed, k, threshold) <= 1e-10


def _haar(n: int, seed: int) -> np.ndarray:
    return Spectrum((0.0,) * n, seed, "basis").basis()


@pytest.mark.parametrize("route", ["lapack", "gram"])
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(1.0)
def test_svd(dtype: torch.dtype, route: str, data) -> None:
    """``X = U diag(S) V^T`` from known factors; tall, wide and square; zero and tied singular values.

    The Gram route (tall only) forms ``X^T X`` in float64, so it resolves singular values down to
    ``sqrt(eps_64) max S``: its spectra stay within condition 1e6 (rank deficiency still allowed).
    """
    gram = route == "gram"
    spectrum = data.draw(
        spectra(dtype=dtype, domain="psd", max_log_cond=None if not gram else 6.0, sizes=st.integers(1, 8))
    )
    k = spectrum.n
    extra = data.draw(st.integers(0, 4))
    tall = gram or data.draw(st.booleans())
    m, n = (k + extra, k) if tall else (k, k + extra)
    U, V = _haar(m, spectrum.seed), _haar(n, spectrum.seed + 1)
    S = np.asarray(spectrum.eigenvalues)
    X = torch.from_numpy((U[:, :k] * S) @ V[:, :k].T).to(dtype).requires_grad_(True)
    record.count(f"svd/{route}")
    note(f"svd {route} {dtype} {m}x{n} S={spectrum.eigenvalues} seed={spectrum.seed}")
    eps, tiny = torch.finfo(dtype).eps, torch.finfo(dtype).tiny
    norm = max(float(S.max()), tiny / eps)
    unit = max(m, n) * eps * norm

    Uc, Sc, Vh = mb.svd(X, gram=gram)
    assert all(bool(torch.isfinite(t).all()) for t in (Uc, Sc, Vh))
    S_err = float(np.abs(ref.to_numpy(Sc) - np.sort(S)[::-1]).max())
    # Gram route: a singular value s comes from s^2 + O(eps_64 ||X||^2), i.e. an absolute error
    # of up to sqrt(eps_64) ||X|| for the smallest ones, beyond the cast to dtype.
    gram_unit = unit + (math.sqrt(k * torch.finfo(torch.float64).eps) * norm if gram else 0.0)
    unit = gram_unit
    assert record.ratio(f"svd/{route}/{str(dtype)[6:]}/values", S_err, gram_unit) <= RESIDUAL_BOUND
    Un, Sn, Vn = ref.to_numpy(Uc), ref.to_numpy(Sc), ref.to_numpy(Vh)
    recon = float(ref.frobenius((Un * Sn) @ Vn - ref.to_numpy(X)))
    assert record.ratio(f"svd/{route}/{str(dtype)[6:]}/residual", recon, unit) <= RESIDUAL_BOUND

    # sum s^2 / (2 ||X||): gradient X / ||X||.
    (gX,) = torch.autograd.grad((Sc * Sc).sum() / (2 * norm), X, retain_graph=True)
    assert bool(torch.isfinite(gX).all())
    err = float(ref.frobenius(ref.to_numpy(gX) - ref.to_numpy(X.detach()) / norm))
    assert record.ratio(f"svd/{route}/{str(dtype)[6:]}/gradient_values", err, unit / norm) <= GRADIENT_BOUND

    # Left singular projector onto the top group = spectral projector of X X^T (eigenvalues s^2, 0).
    M_eigs = np.concatenate([S**2, np.zeros(m - k)])
    threshold = _top_group(np.sqrt(M_eigs), unit * 10)
    if threshold is None or gram:  # the Gram route zeroes U's columns of lost values: no projector
        return
    kk = int((np.sqrt(M_eigs) > threshold).sum())
    G = data.draw(directions(m))
    P = Uc[:, :kk] @ Uc[:, :kk].T
    (gX,) = torch.autograd.grad((P * torch.from_numpy(G).to(dtype)).sum(), X)
    assert bool(torch.isfinite(gX).all())
    step = ref.indicator(threshold**2)
    g_ref = 2.0 * ref.spectral_gradient(step, list(M_eigs), U, G) @ ref.to_numpy(X.detach())
    # The SVD rule works with the singular values: gaps s_i - s_j and sums s_i + s_j, and the
    # indicator on s (not s^2) sets the divided differences.
    scale = eig_route_scale(
        ref.indicator(threshold), np.sqrt(M_eigs), np.concatenate([Sn, np.zeros(m - k)]), G, eps, tiny, tie_n=k
    )
    err = float(ref.frobenius(ref.to_numpy(gX) - g_ref))
    assert record.ratio(f"svd/{route}/{str(dtype)[6:]}/gradient_projector", err, scale) <= GRADIENT_BOUND


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(0.5)
def test_newton_schulz_reaches_documented_accuracy(dtype: torch.dtype, data) -> None:
    """The docstring's claim: ``log(tr X / l_min) / log 2.25 + 3`` iterations reach 1e-3 relative error
    in value and gradient (float64 and float32 alike; condition number up to 1e3, all scales)."""
    spectrum = data.draw(spectra(dtype=dtype, domain="pd", max_log_cond=3.0))
    L = np.asarray(spectrum.eigenvalues)
    iters = math.ceil(math.log(L.sum() / L.min()) / math.log(2.25) + 3)
    record.count("sqrtm_newton_schulz")
    note(f"newton_schulz {dtype} L={spectrum.eigenvalues} iters={iters}")
    X, Q = spectrum.matrix(dtype)
    X.requires_grad_(True)
    Y = mb.sqrtm_newton_schulz(X, iters)
    G = data.draw(directions(spectrum.n))
    (gX,) = torch.autograd.grad((Y * torch.from_numpy(G).to(dtype)).sum(), X)
    assert bool(torch.isfinite(Y).all()) and bool(torch.isfinite(gX).all())
    Y_ref = ref.spectral_output(ref.power(0.5), spectrum.eigenvalues, Q)
    g_ref = ref.spectral_gradient(ref.power(0.5), spectrum.eigenvalues, Q, G)
    rel = float(ref.frobenius(ref.to_numpy(Y) - Y_ref) / ref.frobenius(Y_ref))
    grel = float(ref.frobenius(ref.to_numpy(gX) - g_ref) / ref.frobenius(g_ref))
    record.ratio(f"sqrtm_newton_schulz/{str(dtype)[6:]}/output_rel", rel, 1.0)
    record.ratio(f"sqrtm_newton_schulz/{str(dtype)[6:]}/gradient_rel", grel, 1.0)
    assert rel <= 1e-3 and grel <= 1e-3, (
        f"relative error {rel:.3g} (value), {grel:.3g} (gradient) after {iters} iterations"
    )
