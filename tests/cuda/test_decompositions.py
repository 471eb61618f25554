"""CUDA conformance of the decompositions and spectral functions: ``eigh``, ``svd``, every spectral
function, repeated eigenvalues and the Newton-Schulz roots, on the device against the CPU and exact
references (set-up and tolerances: :mod:`tests.cuda.common`).
"""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import matbackprop as mb
from tests.cuda.common import (
    CPU,
    CUDA,
    F32,
    F64,
    SMOOTH,
    SPECTRAL,
    SPECTRUM,
    TOL,
    align_signs,
    assert_close,
    assert_on_device,
    loss_and_grads,
    requires_device,
    spd,
    value_and_grad,
    with_singular_values,
)
from tests.helpers import daleckii_krein, sym, with_spectrum

pytestmark = requires_device

# ---------------------------------------------------------------------------------------------------
# eigh and svd


@pytest.mark.parametrize("dtype", [F64, F32])
def test_eigh_matches_cpu(dtype):
    n = 8
    X = spd([-3.0 + i for i in range(n)], 3, 2, seed=0, dtype=dtype)  # gaps of 1: well-conditioned vectors
    torch.manual_seed(1)
    gL, B = torch.randn(3, 2, n, dtype=F64), torch.randn(3, 2, n, n, dtype=F64)

    def run(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        A = X.to(device).requires_grad_(True)
        L, Q = mb.eigh(A)
        loss = (L * gL.to(device, dtype)).sum() + (Q * Q * B.to(device, dtype)).sum()  # sign-invariant
        (g,) = torch.autograd.grad(loss, A)
        return L.detach(), Q.detach(), g

    L, Q, g = run(CUDA)
    L0, Q0, g0 = run(CPU)
    for t, what in ((L, "L"), (Q, "Q"), (g, "grad")):
        assert_on_device(t, dtype, f"eigh {what}")
    assert L.shape == (3, 2, n) and Q.shape == (3, 2, n, n)
    tol = TOL[dtype]
    assert_close(L, L0, tol, "eigenvalues vs cpu")
    assert_close(L, torch.arange(-3.0, n - 3.0, dtype=F64).expand(3, 2, n), tol, "eigenvalues vs exact")
    assert bool((L[..., 1:] >= L[..., :-1]).all()), "eigenvalues not ascending"
    assert_close((Q * L.unsqueeze(-2)) @ Q.mT, X, tol, "Q diag(L) Q^T vs X")
    assert_close(Q.mT @ Q, torch.eye(n, dtype=F64).expand(3, 2, n, n), tol, "Q^T Q vs I")
    Qc = Q.to(CPU)
    assert_close(Qc * align_signs(Qc, Q0), Q0, 10 * tol, "sign-aligned eigenvectors vs cpu")
    assert_close(g, g0, 10 * tol, "gradient vs cpu")


SVD_CASES = {
    "square": (8, 8, False),
    "tall": (10, 6, False),
    "wide": (6, 10, False),
    "gram": (40, 6, True),  # svd(gram=True): the route of ncut_embedding
}


@pytest.mark.parametrize("case", SVD_CASES)
@pytest.mark.parametrize("dtype", [F64, F32])
def test_svd_matches_cpu(case, dtype):
    m, n, gram = SVD_CASES[case]
    k = min(m, n)
    s = [6.0 - 0.7 * i for i in range(k)]  # distinct, gaps of 0.7, all >= 0.4
    X = with_singular_values(s, m, n, 3, 2, seed=2).to(dtype)
    torch.manual_seed(3)
    gS, BU, BV = torch.randn(3, 2, k, dtype=F64), torch.randn(3, 2, m, k, dtype=F64), torch.randn(3, 2, k, n, dtype=F64)

    def run(device: torch.device) -> tuple[torch.Tensor, ...]:
        A = X.to(device).requires_grad_(True)
        U, S, Vh = mb.svd(A, gram=gram)
        loss = (S * gS.to(device, dtype)).sum() + (U * U * BU.to(device, dtype)).sum()
        loss = loss + (Vh * Vh * BV.to(device, dtype)).sum()  # invariant under the signs of the vectors
        (g,) = torch.autograd.grad(loss, A)
        return U.detach(), S.detach(), Vh.detach(), g

    U, S, Vh, g = run(CUDA)
    U0, S0, Vh0, g0 = run(CPU)
    for t, what in ((U, "U"), (S, "S"), (Vh, "Vh"), (g, "grad")):
        assert_on_device(t, dtype, f"svd {what}")
    assert U.shape == (3, 2, m, k) and S.shape == (3, 2, k) and Vh.shape == (3, 2, k, n)
    tol = TOL[dtype]
    assert_close(S, S0, tol, "singular values vs cpu")
    assert_close(S, torch.tensor(s, dtype=F64).expand(3, 2, k), tol, "singular values vs exact")
    assert_close((U * S.unsqueeze(-2)) @ Vh, X, tol, "U diag(S) Vh vs X")
    Uc, Vc = U.to(CPU), Vh.to(CPU).mT
    signs = align_signs(Uc, U0)
    assert_close(Uc * signs, U0, 10 * tol, "sign-aligned U vs cpu")
    assert_close(Vc * signs, Vh0.mT, 10 * tol, "V with the same signs vs cpu")
    assert_close(g, g0, 10 * tol, "gradient vs cpu")


# ---------------------------------------------------------------------------------------------------
# Spectral functions


@pytest.mark.parametrize("name", SPECTRAL)
@pytest.mark.parametrize("dtype", [F64, F32])
def test_spectral_function_matches_cpu(name, dtype):
    fn = SPECTRAL[name][0]
    X = spd(SPECTRUM, 3, 2, seed=4, dtype=dtype)
    G = torch.randn(3, 2, 6, 6, dtype=F64, generator=torch.Generator().manual_seed(5)).to(dtype)
    Y, g = value_and_grad(fn, X, G, CUDA)
    Y0, g0 = value_and_grad(fn, X, G, CPU)
    assert_on_device(Y, dtype, f"{name} value")
    assert_on_device(g, dtype, f"{name} gradient")
    assert_close(Y, Y0, TOL[dtype], f"{name} value vs cpu")
    assert_close(g, g0, TOL[dtype], f"{name} gradient vs cpu")


@pytest.mark.parametrize("name", SPECTRAL)
def test_spectral_function_matches_exact_reference(name):
    """Value and gradient on the device against Daleckii-Krein from the exact eigendecomposition."""
    fn, f, df = SPECTRAL[name]
    X, L, Q = with_spectrum(SPECTRUM, 3, generator=torch.Generator().manual_seed(6))
    G = torch.randn(3, 6, 6, dtype=F64, generator=torch.Generator().manual_seed(7))
    Y, g = value_and_grad(fn, X, G, CUDA)
    assert_close(Y, (Q * f(L).unsqueeze(-2)) @ Q.mT, 1e-12, f"{name} value vs exact")
    assert_close(g, daleckii_krein(f, df, L, Q, G), 1e-11, f"{name} gradient vs exact Daleckii-Krein")


@pytest.mark.parametrize("name", SPECTRAL)
def test_gradcheck_spectral_functions_on_device(name):
    fn = SPECTRAL[name][0]
    X = spd([0.5, 1.0, 2.0, 3.5], 2, seed=8).to(CUDA).requires_grad_(True)
    # Symmetric perturbations: differentiate through sym(A), the convention of every spectral function.
    assert gradcheck(lambda A: fn(sym(A)), (X,), check_forward_ad=True)


@pytest.mark.parametrize("name", ["logm", "powm(0.7)"])
def test_gradgradcheck_on_device(name):
    fn = SPECTRAL[name][0]
    X = spd([0.5, 1.0, 2.0, 2.0], 1, seed=9).to(CUDA).requires_grad_(True)  # includes a tie
    assert gradgradcheck(lambda A: fn(sym(A)), (X,))


def test_gradcheck_eigh_on_device():
    X = spd([-1.0, 0.5, 1.3, 2.9], 2, seed=10).to(CUDA).requires_grad_(True)

    def gauge_invariant(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L, Q = mb.eigh(sym(A))
        return L, Q * Q

    assert gradcheck(gauge_invariant, (X,), check_forward_ad=True)


@pytest.mark.parametrize("shape,gram", [((2, 5, 3), False), ((2, 3, 5), False), ((2, 4, 4), False), ((2, 6, 3), True)])
def test_gradcheck_svd_on_device(shape, gram):
    X = torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(11)).to(CUDA).requires_grad_(True)

    def gauge_invariant(A: torch.Tensor) -> tuple[torch.Tensor, ...]:
        U, S, Vh = mb.svd(A, gram=gram)
        V = Vh.mT
        return S, U * U, V * V, U * V.sum(-2, keepdim=True)

    assert gradcheck(gauge_invariant, (X,), check_forward_ad=True)


# ---------------------------------------------------------------------------------------------------
# Repeated eigenvalues


@pytest.mark.parametrize("name", SMOOTH)
def test_repeated_eigenvalues_match_daleckii_krein(name):
    """At ``X = R diag(1, 1, 2, 2) R^T`` the gradient is the exact Daleckii-Krein value (``f'`` on the ties),
    whatever basis of the tied eigenspaces the device's solver returns."""
    fn, f, df = SPECTRAL[name]
    X, L, Q = with_spectrum([1.0, 1.0, 2.0, 2.0], 3, generator=torch.Generator().manual_seed(12))
    G = torch.randn(3, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(13))
    Y, g = value_and_grad(fn, X, G, CUDA)
    assert_close(Y, (Q * f(L).unsqueeze(-2)) @ Q.mT, 1e-12, f"{name} value at ties")
    assert_close(g, daleckii_krein(f, df, L, Q, G), 1e-9, f"{name} gradient at ties vs Daleckii-Krein")


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("c", [1.0, 2.0])
def test_scalar_matrix_gradient_is_derivative_times_sym_g(name, c):
    """At ``X = c I`` (one n-fold eigenvalue) the gradient of ``<G, f(X)>`` is ``f'(c) sym(G)`` exactly."""
    fn, f, df = SPECTRAL[name]
    n = 5
    X = c * torch.eye(n, dtype=F64).expand(2, n, n)
    G = torch.randn(2, n, n, dtype=F64, generator=torch.Generator().manual_seed(14))
    Y, g = value_and_grad(fn, X, G, CUDA)
    c64 = torch.tensor(c, dtype=F64)
    assert_close(Y, float(f(c64)) * torch.eye(n, dtype=F64).expand(2, n, n), 1e-13, f"{name}(c I)")
    assert_close(g, float(df(c64)) * sym(G), 1e-12, f"{name} gradient at c I vs f'(c) sym(G)")


def test_eigh_eigenspace_projector_at_ties():
    """A loss that sees the eigenvectors of a repeated eigenvalue only through their eigenspace: finite
    differences (gradcheck) and the CPU agree, whatever basis of the tied space each solver picks."""
    X = spd([1.0, 1.0, 1.0, 4.0, 4.0], seed=15)
    W = sym(torch.randn(5, 5, dtype=F64, generator=torch.Generator().manual_seed(16)))

    def loss(A: torch.Tensor) -> torch.Tensor:
        _, Q = mb.eigh(sym(A))
        P = Q[..., :3] @ Q[..., :3].mT
        return (P * W.to(A.device)).sum()

    assert gradcheck(loss, (X.to(CUDA).requires_grad_(True),), check_forward_ad=True)
    _, (g,) = loss_and_grads(loss, (X,), CUDA)
    _, (g0,) = loss_and_grads(loss, (X,), CPU)
    assert_close(g, g0, 1e-9, "projector gradient at ties vs cpu")


# ---------------------------------------------------------------------------------------------------
# Newton-Schulz


@pytest.mark.parametrize("name", ["sqrtm_newton_schulz", "invsqrtm_newton_schulz"])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_newton_schulz_matches_cpu_and_the_exact_root(name, dtype):
    approx = getattr(mb, name)
    exact = mb.sqrtm if name.startswith("sqrtm") else mb.invsqrtm
    X = spd([0.5, 0.9, 1.4, 2.0, 2.7, 3.0], 3, 2, seed=17, dtype=dtype)
    G = torch.randn(3, 2, 6, 6, dtype=F64, generator=torch.Generator().manual_seed(18)).to(dtype)
    Y, g = value_and_grad(lambda A: approx(A, num_iters=20), X, G, CUDA)
    Y0, g0 = value_and_grad(lambda A: approx(A, num_iters=20), X, G, CPU)
    assert_on_device(Y, dtype, name)
    assert_close(Y, Y0, TOL[dtype], f"{name} value vs cpu")
    assert_close(g, g0, 10 * TOL[dtype], f"{name} gradient vs cpu")
    # Converged after 20 iterations at this conditioning: the exact function's value and gradient.
    Ye, ge = value_and_grad(exact, X.double(), G.double(), CPU)
    tol = 1e-9 if dtype == F64 else 1e-4
    assert_close(Y, Ye, tol, f"{name} value vs exact")
    assert_close(g, ge, 10 * tol, f"{name} gradient vs exact")
