"""Fuzz the structured layers: second-order pooling (all routes), the SPD ops and modules (BiMap, ReEig,
LogEig, SPDBatchNorm, geodesic, Karcher mean, recentring, parallel transport) and normalized cuts with the projector loss.

References are float64: the pooled matrix and its spectral function from numpy's eigh with mpmath divided
differences (O2P), closed forms for commuting SPD matrices (SPD ops), a dense eigendecomposition and
finite differences of the float64 loss (normalized cuts).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

import matbackprop as mb
from matbackprop.nn import BiMap, LogEig, ReEig, SPDBatchNorm

from . import record
from . import reference as ref
from .profiles import fuzz_settings
from .strategies import spectra

DTYPES = [torch.float32, torch.float64]
IDS = ["float32", "float64"]
LAYER_BOUND = 32.0  # in units of the first-order scale (pooling rounding included), see docs
SCALARS = {"log": ref.LOG, "sqrt": ref.power(0.5), "power": ref.power(2.0)}


# ---------------------------------------------------------------------------------------------------
# Second-order pooling


@st.composite
def feature_maps(draw) -> np.ndarray:
    """``(1, C, H, W)`` float64 features: random, with duplicated, near-duplicated (1e-7) or zero channels,
    fewer pixels than channels (rank deficiency), scales 1e-3 .. 1e3."""
    C = draw(st.integers(1, 6))
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    F = rng.standard_normal((1, C, H, W)) * 10.0 ** draw(st.floats(-3.0, 3.0))
    kind = draw(st.sampled_from(["generic", "duplicate", "near_duplicate", "zero_channel"]))
    if C >= 2 and kind != "generic":
        F[:, 1] = {"duplicate": F[:, 0], "near_duplicate": F[:, 0] * (1 + 1e-7), "zero_channel": 0.0 * F[:, 0]}[kind]
    return F


def _pooled(F: np.ndarray, w: np.ndarray, ridge: float, centered: bool) -> tuple[np.ndarray, np.ndarray]:
    """Float64 reference ``(C_r, X_r)`` for one region: pooled matrix and the (centred) feature matrix."""
    X = F.reshape(F.shape[1], -1)
    if centered:
        X = X - (X * w).sum(-1, keepdims=True)
    return (X * w) @ X.T + ridge * np.eye(X.shape[0]), X


def _spectral_reference(
    fn: ref.ScalarFunction, C: np.ndarray, G: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    L, Q = np.linalg.eigh(C)
    return ref.spectral_output(fn, list(L), Q), ref.spectral_gradient(fn, list(L), Q, G), list(L)


@pytest.mark.parametrize(
    "route, normalization",
    [("eig", "log"), ("eig", "sqrt"), ("eig", "power"), ("svd", "log"), ("svd", "sqrt"), ("svd", "power")],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(0.5)
def test_second_order_pooling(route: str, normalization: str, dtype: torch.dtype, data) -> None:
    F64 = data.draw(feature_maps())
    ridge = data.draw(st.sampled_from([1e-3, 1e-6, 1.0]))
    centered = data.draw(st.booleans())
    _, C, H, W = F64.shape
    masked = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    mask = (rng.random((1, 1, H, W)) < 0.6).astype(float) if masked else np.ones((1, 1, H, W))
    mask.flat[0] = 1.0  # never empty: the empty mask is an invalid-input case of its own
    record.count(f"second_order_pooling/{route}")
    note(f"o2p {route} {normalization} {dtype} ridge={ridge} centered={centered} F={F64.tolist()} mask={mask.tolist()}")

    features = torch.from_numpy(F64).to(dtype).requires_grad_(True)
    w = (mask / mask.sum()).reshape(-1)
    lam_max = float(np.linalg.eigvalsh(_pooled(F64, w, ridge, centered)[0])[-1])
    # A ridge below the rounding of the pooled matrix ((C + P) eps ||C||) makes C numerically singular:
    # the eig route then rejects it for log with a ValueError (use a larger eps, spectral_dtype=float64
    # or the svd route), which is the documented contract, not a failure.
    singular = ridge <= 10 * (C + H * W) * torch.finfo(dtype).eps * lam_max
    try:
        Y = mb.second_order_pooling(
            features,
            torch.from_numpy(mask) if masked else None,
            eps=ridge,
            normalization=normalization,
            p=2.0,
            route=route,
            centered=centered,
        )
    except ValueError as error:
        assert singular and route == "eig" and normalization == "log", f"unexpected ValueError: {error}"
        assert "positive definite" in str(error)
        record.count("second_order_pooling/rejected_singular")
        return
    assert Y.dtype == dtype and Y.shape == (1, 1, C, C) and bool(torch.isfinite(Y).all())
    if singular and route == "eig":
        # The ridge is lost in rounding: a pooled eigenvalue can come out <= 0 and be clamped to 0, where
        # sqrt has infinite slope; the gradient is then NaN (test_o2p_ridge_below_resolution_regression).
        record.count("second_order_pooling/ridge_below_resolution")
        return
    G = rng.standard_normal((C, C))
    G /= ref.frobenius(G)
    (gF,) = torch.autograd.grad((Y[0, 0] * torch.from_numpy(G).to(dtype)).sum(), features)
    assert bool(torch.isfinite(gF).all())

    # Reference from the features as the layer saw them (after the cast), in float64.
    Fin = ref.to_numpy(features)
    Cm, X = _pooled(Fin, w, ridge, centered)
    fn = SCALARS[normalization]
    Y_ref, gC_ref, L = _spectral_reference(fn, Cm, G)
    # dL/dF through C = X diag(w) X^T (+ centring, whose extra term vanishes: sum_p w_p (f_p - mu) = 0).
    gF_ref = (2.0 * ref.sym(gC_ref) @ X * w).reshape(Fin.shape)
    eps = torch.finfo(dtype).eps
    P = H * W
    # Pooling rounds each entry of C by ~P eps sum_p w_p |f_p|^2 <= P eps ||C||: scale eps by (n + P) / n.
    scale = ref.perturbation_scale(fn, L, G, eps * (C + P) / C, torch.finfo(dtype).tiny)
    key = f"second_order_pooling/{route}-{normalization}/{str(dtype)[6:]}"
    err = ref.frobenius(ref.to_numpy(Y[0, 0]) - Y_ref)
    assert record.ratio(f"{key}/output", err, scale.output) <= LAYER_BOUND
    gerr = ref.frobenius(ref.to_numpy(gF) - gF_ref)
    gscale = 2.0 * math.sqrt(max(L[-1], 0.0)) * scale.gradient + (C + P) * eps * ref.frobenius(gF_ref)
    assert record.ratio(f"{key}/gradient", gerr, gscale) <= LAYER_BOUND


def test_o2p_ridge_below_resolution_regression() -> None:
    """Regression (found by fuzzing): two pixels, centred: the covariance has rank 1, the ridge 1e-6 is
    below float32's resolution of a pooled matrix of norm ~1e3, an eigenvalue is clamped to 0, and the
    gradient came out NaN. sqrt has no derivative there: the backward now raises, naming the cause."""
    F = torch.tensor(
        [[[[12.57302210933933, -13.21048632913019]], [[64.0422650443282, 10.490011715303972]]]],
        dtype=torch.float32,
        requires_grad=True,
    )
    Y = mb.second_order_pooling(F, eps=1e-6, normalization="sqrt", route="eig", centered=True)
    with pytest.raises(ValueError, match="infinite at a zero eigenvalue"):
        torch.autograd.grad(Y.sum(), F)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(0.5)
def test_second_order_pooling_newton_schulz(dtype: torch.dtype, data) -> None:
    """GEMM-only route: finite output and gradient always; the documented 1e-3 accuracy once
    ``num_iters >= log(tr C / l_min) / log 2.25 + 3`` (docs/newton_schulz.md)."""
    F64 = data.draw(feature_maps())
    ridge = data.draw(st.sampled_from([1e-3, 1e-1, 1.0]))
    C = F64.shape[1]
    w = np.full(F64.shape[2] * F64.shape[3], 1.0 / (F64.shape[2] * F64.shape[3]))
    Cm, _ = _pooled(F64, w, ridge, False)
    L = np.linalg.eigvalsh(Cm)
    iters = min(40, math.ceil(math.log(L.sum() / L[0]) / math.log(2.25) + 3))
    record.count("second_order_pooling/newton_schulz")
    features = torch.from_numpy(F64).to(dtype).requires_grad_(True)
    P = F64.shape[2] * F64.shape[3]
    try:
        Y = mb.second_order_pooling(features, eps=ridge, normalization="sqrt", route="newton_schulz", num_iters=iters)
    except ValueError as error:  # ridge lost in rounding: C numerically singular, rejected by name
        assert ridge <= 10 * (C + P) * torch.finfo(dtype).eps * L[-1], f"unexpected ValueError: {error}"
        assert "positive definite" in str(error)
        record.count("second_order_pooling/rejected_singular")
        return
    (gF,) = torch.autograd.grad(Y.sum(), features)
    assert bool(torch.isfinite(Y).all()) and bool(torch.isfinite(gF).all())
    Y_ref = ref.spectral_output(ref.power(0.5), list(L), np.linalg.eigh(Cm)[1])
    rel = ref.frobenius(ref.to_numpy(Y[0, 0]) - Y_ref) / ref.frobenius(Y_ref)
    record.ratio(f"second_order_pooling/newton_schulz/{str(dtype)[6:]}/output_rel", rel, 1.0)
    if L[-1] / L[0] <= 1e3:  # the documented range
        assert rel <= 1e-3


@given(data=st.data())
@fuzz_settings(0.5)
def test_second_order_pooling_invalid_input(data) -> None:
    kind = data.draw(
        st.sampled_from(
            [
                "nan",
                "inf",
                "dims",
                "empty_mask",
                "negative_mask",
                "mask_shape",
                "normalization",
                "route",
                "ns_log",
                "output",
            ]
        )
    )
    record.count("second_order_pooling/invalid")
    F = torch.randn(1, 3, 2, 2)
    masks, options = torch.ones(1, 1, 2, 2), {}
    expected = {
        "nan": "NaN",
        "inf": "NaN",
        "dims": "(B, C, H, W)",
        "empty_mask": "empty mask",
        "negative_mask": "non-negative",
        "mask_shape": "do not match",
        "normalization": "normalization",
        "route": "route",
        "ns_log": "newton_schulz",
        "output": "output",
    }[kind]
    if kind in ("nan", "inf"):
        F[0, data.draw(st.integers(0, 2)), 1, 0] = float("nan") if kind == "nan" else float("inf")
    elif kind == "dims":
        F = F[0]
    elif kind == "empty_mask":
        masks = torch.zeros(1, 1, 2, 2)
    elif kind == "negative_mask":
        masks[0, 0, 0, 0] = -1.0
    elif kind == "mask_shape":
        masks = torch.ones(1, 1, 3, 2)
    else:
        options = {
            "normalization": dict(normalization="tanh"),
            "route": dict(route="qr"),
            "ns_log": dict(route="newton_schulz", normalization="log"),
            "output": dict(output="vec"),
        }[kind]
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        mb.second_order_pooling(F, masks, **options)


# ---------------------------------------------------------------------------------------------------
# SPD ops and modules: commuting inputs have closed-form references


def _commuting(data, dtype: torch.dtype, count: int) -> tuple[list[np.ndarray], np.ndarray, list[torch.Tensor]]:
    """``count`` SPD matrices sharing one eigenbasis ``Q``: their spectra and the tensors."""
    first = data.draw(
        spectra(dtype=dtype, domain="pd", log_scale=(-3.0, 3.0), max_log_cond=3.0, sizes=st.integers(1, 6))
    )
    Ls = [np.asarray(first.eigenvalues)]
    for _ in range(count - 1):
        Ls.append(Ls[0] * np.asarray([10.0 ** data.draw(st.floats(-1.0, 1.0)) for _ in range(first.n)]))
    Q = first.basis()
    mats = [torch.from_numpy(ref.sym((Q * L) @ Q.T)).to(dtype) for L in Ls]
    return Ls, Q, mats


def _check_close(
    key: str, got: torch.Tensor, want: np.ndarray, dtype: torch.dtype, cond: float, floor: float = 0.0
) -> None:
    """Relative error ``<= LAYER_BOUND n eps cond``; ``floor`` bounds the denominator below (outputs
    like ``log(X)`` are accurate in absolute, not relative, terms near 0)."""
    assert bool(torch.isfinite(got).all())
    n = want.shape[-1]
    err = ref.frobenius(ref.to_numpy(got) - want) / max(ref.frobenius(want), floor, torch.finfo(dtype).tiny)
    assert record.ratio(key, err, n * torch.finfo(dtype).eps * cond) <= LAYER_BOUND


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(0.5)
def test_spd_ops_commuting_closed_forms(dtype: torch.dtype, data) -> None:
    """geodesic = ``Q L_A^(1-t) L_B^t Q^T``; one Karcher step from the arithmetic mean of commuting
    matrices lands on the geometric mean ``Q exp(mean log L_i) Q^T``; recentring ``X`` from ``M`` to ``B`` and the
    parallel transport of ``X`` from ``M`` to ``B`` (equal when everything commutes) = ``Q L_X L_B / L_M Q^T``."""
    Ls, Q, mats = _commuting(data, dtype, 3)
    t = data.draw(st.sampled_from([0.0, 0.5, 1.0, 0.1, 2.0]))
    record.count("spd_ops")
    cond = max(float(L.max() / L.min()) for L in Ls) ** 2
    A, B, M = mats
    _check_close(
        f"spd_geodesic/{str(dtype)[6:]}",
        mb.spd_geodesic(A, B, t),
        (Q * (Ls[0] ** (1 - t) * Ls[1] ** t)) @ Q.T,
        dtype,
        cond,
    )
    stack = torch.stack(mats)
    geo = np.exp(np.mean([np.log(L) for L in Ls], axis=0))
    _check_close(f"spd_karcher_mean/{str(dtype)[6:]}", mb.spd_karcher_mean(stack, 1), (Q * geo) @ Q.T, dtype, cond)
    moved = (Q * (Ls[0] * Ls[1] / Ls[2])) @ Q.T
    _check_close(f"spd_recenter/{str(dtype)[6:]}", mb.spd_recenter(A, M, B), moved, dtype, cond)
    _check_close(f"spd_parallel_transport/{str(dtype)[6:]}", mb.spd_parallel_transport(A, M, B), moved, dtype, cond)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(0.5)
def test_spd_batchnorm_and_stack(dtype: torch.dtype, data) -> None:
    """SPDBatchNorm maps a batch of identical SPD matrices to the bias (identity at init), with finite
    gradients; BiMap -> ReEig -> LogEig gives finite output and gradients and matches float64."""
    spectrum = data.draw(
        spectra(dtype=dtype, domain="pd", log_scale=(-3.0, 3.0), max_log_cond=3.0, sizes=st.integers(1, 6))
    )
    n = spectrum.n
    X, _ = spectrum.matrix(dtype)
    record.count("spd_modules")
    batch = X.expand(3, n, n).clone().requires_grad_(True)
    norm = SPDBatchNorm(n).to(dtype)
    out = norm(batch)
    cond = max(spectrum.eigenvalues) / min(spectrum.eigenvalues)
    _check_close(f"SPDBatchNorm/{str(dtype)[6:]}", out, np.broadcast_to(np.eye(n), (3, n, n)), dtype, cond)
    out.sum().backward()
    assert bool(torch.isfinite(batch.grad).all()) and bool(torch.isfinite(norm.bias_log.grad).all())

    m = data.draw(st.integers(1, n))
    torch.manual_seed(spectrum.seed % 2**31)
    stack64 = torch.nn.Sequential(BiMap(n, m), ReEig(data.draw(st.sampled_from([1e-4, 1e-2]))), LogEig()).double()
    stack = torch.nn.Sequential(BiMap(n, m), ReEig(stack64[1].floor), LogEig()).to(dtype)
    stack.load_state_dict(stack64.state_dict())
    Xg = X.clone().requires_grad_(True)
    Y = stack(Xg)
    Y.sum().backward()
    assert bool(torch.isfinite(Xg.grad).all())
    assert all(bool(torch.isfinite(p.grad).all()) for p in stack.parameters())
    Y64 = stack64(X.double())
    # BiMap(...).double() is orthonormal only to float32 accuracy (docs/layers/spd_layers.md), the same
    # weights in both runs make that irrelevant here.
    _check_close(f"BiMap-ReEig-LogEig/{str(dtype)[6:]}", Y, ref.to_numpy(Y64), dtype, cond, floor=1.0)


@given(data=st.data())
@fuzz_settings(0.5)
def test_spd_invalid_input(data) -> None:
    kind = data.draw(st.sampled_from(["indefinite", "nan", "asymmetric", "bimap_shape", "batchnorm_dims"]))
    record.count("spd_ops/invalid")
    X = torch.eye(3, dtype=torch.float64).expand(4, 3, 3).clone()
    norm = SPDBatchNorm(3).double()
    if kind == "indefinite":
        X[1, 0, 0] = -data.draw(st.floats(1e-3, 10.0))
        fn, expected = data.draw(
            st.sampled_from(
                [(norm, "positive"), (LogEig(), "positive"), (lambda A: mb.spd_karcher_mean(A), "positive")]
            )
        )
    elif kind == "nan":
        X[2, 1, 1] = float("nan")
        fn, expected = data.draw(st.sampled_from([(norm, "NaN"), (LogEig(), "NaN"), (ReEig(), "NaN")])), None
        fn, expected = fn
    elif kind == "asymmetric":
        X[0, 0, 1] = 0.5
        fn, expected = data.draw(
            st.sampled_from([(norm, "symmetric"), (LogEig(), "symmetric"), (ReEig(), "symmetric")])
        )
    elif kind == "bimap_shape":
        fn, expected = (lambda A: mb.bimap(A, torch.eye(4, 2, dtype=torch.float64))), "bimap"
    else:
        # a single matrix is no batch: SPDBatchNorm names the shape it expects ("(..., n, n)" since it
        # takes leading batch dimensions, formerly "(N, n, n)")
        fn, expected = (lambda A: norm(A[0])), "expected a batch"
    with pytest.raises(ValueError) as info:
        fn(X)
    assert expected in str(info.value)


# ---------------------------------------------------------------------------------------------------
# Normalized cuts and the projector loss


@st.composite
def segment_features(draw) -> tuple[np.ndarray, np.ndarray, int]:
    """Non-negative features ``(N, d)`` of ``s`` segments (one-hot blocks plus noise, exact top-k ties at
    1 when the noise is 0), labels ``(N,)`` and ``k``."""
    s = draw(st.integers(1, 4))
    d = draw(st.integers(s, 6))
    N = draw(st.integers(d, 16))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = np.concatenate([np.arange(s), rng.integers(0, s, N - s)])
    F = np.zeros((N, d))
    F[np.arange(N), labels] = 1.0
    noise = draw(st.sampled_from([0.0, 1e-7, 1e-3, 0.1, 1.0]))
    F = F + noise * rng.random((N, d))
    F *= 10.0 ** draw(st.floats(-3.0, 3.0))
    k = draw(st.integers(1, min(N, d)))
    return F, labels, k


def _dense_top_projector(F: np.ndarray, k: int, floor: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Projector onto span(Z) and eigenvalues of D^-1/2 F F^T D^-1/2, float64, independently of the layer."""
    deg = F @ F.sum(0)
    # exact normalized cuts (issue 12): the floor acts only where a degree vanishes
    deg = np.where(deg > 0, deg, floor * deg.mean())
    M = (F / np.sqrt(deg)[:, None]) @ (F / np.sqrt(deg)[:, None]).T
    L, V = np.linalg.eigh(M)
    Z = V[:, -k:] / np.sqrt(deg)[:, None]
    Qz, _ = np.linalg.qr(Z)
    return Qz @ Qz.T, L[::-1]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@given(data=st.data())
@fuzz_settings(0.5)
def test_ncut_embedding_and_projector_loss(dtype: torch.dtype, data) -> None:
    F64, labels, k = data.draw(segment_features())
    record.count("ncut_embedding+projector_loss")
    note(f"ncut {dtype} k={k} F={F64.tolist()} labels={labels.tolist()}")
    F = torch.from_numpy(F64).to(dtype).requires_grad_(True)
    Z = mb.ncut_embedding(F, k)
    assert Z.shape == (F64.shape[0], k) and bool(torch.isfinite(Z).all())
    P_ref, L = _dense_top_projector(ref.to_numpy(F), k)
    gap = L[k - 1] - (L[k] if k < L.size else 0.0)
    eps = torch.finfo(dtype).eps
    N = F64.shape[0]
    if gap > 1e3 * N * eps:  # the span is determined: compare projectors, error ~ eps / gap
        Zn = ref.to_numpy(Z)
        Qz, _ = np.linalg.qr(Zn)
        err = ref.frobenius(Qz @ Qz.T - P_ref)
        assert (
            record.ratio(f"ncut_embedding/{str(dtype)[6:]}/span", err, N * eps / gap * max(1.0, 1.0 / math.sqrt(gap)))
            <= LAYER_BOUND
        )
    try:
        J = mb.projector_loss(Z, torch.from_numpy(labels))
    except ValueError as error:  # Z numerically rank deficient (a zero-degree-like node): documented
        assert "rank deficient" in str(error)
        return
    J.backward()
    assert bool(torch.isfinite(J)) and bool(torch.isfinite(F.grad).all())
    # float64 only: near the loss's minimum J ~ 0 the float32 gradient is dominated by absolute rounding
    # of cancelling O(1) terms, for which a difference quotient gives no usable reference.
    if gap > 1e-2 and dtype == torch.float64:
        _check_directional_derivative(F64, labels, k, F.grad, gap, dtype, data)


def _ncut_loss64(F: np.ndarray, labels: np.ndarray, k: int) -> float:
    with torch.no_grad():
        return float(mb.projector_loss(mb.ncut_embedding(torch.from_numpy(F), k), torch.from_numpy(labels)))


def _check_directional_derivative(
    F64: np.ndarray, labels: np.ndarray, k: int, grad: torch.Tensor, gap: float, dtype: torch.dtype, data
) -> None:
    """``<dJ/dF, E>`` against a central difference of the float64 loss along ``E = F o R`` (keeps F >= 0).

    Error unit: ``N eps / gap`` (the span's conditioning) times ``||g|| ||E||``, plus the difference
    quotient's own ``h^2 / gap^2`` truncation and rounding: ``J = (k + rank E) / 2 - tr(Pi_Z Pi_E)``
    is a difference of O(k + s) terms, so it carries an absolute ``eps_64 (k + s)``, divided by ``h``.
    """
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    E = F64 * rng.uniform(-1.0, 1.0, F64.shape)
    h = 1e-4
    fd = (_ncut_loss64(F64 + h * E, labels, k) - _ncut_loss64(F64 - h * E, labels, k)) / (2 * h)
    g = ref.to_numpy(grad)
    analytic = float((g * E).sum())
    size = ref.frobenius(g) * ref.frobenius(E) + abs(fd)
    N = F64.shape[0]
    terms = k + int(labels.max()) + 1
    if size < 1e3 * 2.2e-16 * terms / h:  # derivative below what the difference quotient resolves
        return
    unit = N * torch.finfo(dtype).eps / gap * size + h**2 / gap**2 * size + 2.2e-16 * terms / h
    if N >= F64.shape[1]:
        unit += math.sqrt(2.2e-16) * terms * ref.frobenius(E) / ref.frobenius(F64)
    assert (
        record.ratio(f"ncut_embedding+projector_loss/{str(dtype)[6:]}/gradient", abs(analytic - fd), unit)
        <= LAYER_BOUND
    )


def test_projector_loss_invalid_input() -> None:
    Z = torch.rand(6, 2, dtype=torch.float64)
    for bad, fragment in [
        (torch.zeros(5, dtype=torch.int64), "label map"),
        (-torch.ones(6, dtype=torch.int64), "non-negative"),
        (torch.zeros(5, 2), "indicator"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            mb.projector_loss(Z, bad)
    with pytest.raises(ValueError, match="rank deficient"):
        mb.projector_loss(torch.ones(6, 2, dtype=torch.float64), torch.zeros(6, dtype=torch.int64))
    for F, k, fragment in [
        (-torch.ones(4, 3), 1, "non-negative"),
        (torch.full((4, 3), float("nan")), 1, "NaN"),
        (torch.ones(4, 3), 4, "k must be"),
        (torch.ones(3), 1, "(..., N, d)"),
    ]:
        with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
            mb.ncut_embedding(F, k)
