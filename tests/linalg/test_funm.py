"""Spectral functions: gradients by finite differences, Daleckii-Krein at ties, float32 accuracy."""

import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

import matbackprop as mb
from tests.helpers import daleckii_krein, random_spd, random_sym, sym, with_spectrum

# name -> (function of X, scalar f, scalar f', input kind)
FAMILY = {
    "logm": (mb.logm, torch.log, torch.reciprocal, "spd"),
    "sqrtm": (mb.sqrtm, torch.sqrt, lambda x: 0.5 / torch.sqrt(x), "spd"),
    "invsqrtm": (mb.invsqrtm, torch.rsqrt, lambda x: -0.5 * x**-1.5, "spd"),
    "powm(0.5)": (lambda X: mb.powm(X, 0.5), lambda x: x**0.5, lambda x: 0.5 * x**-0.5, "spd"),
    "powm(2.7)": (lambda X: mb.powm(X, 2.7), lambda x: x**2.7, lambda x: 2.7 * x**1.7, "spd"),
    "powm(-1.3)": (lambda X: mb.powm(X, -1.3), lambda x: x**-1.3, lambda x: -1.3 * x**-2.3, "spd"),
    "expm": (mb.expm, torch.exp, torch.exp, "sym"),
    "clamp_eigs(0.2)": (
        lambda X: mb.clamp_eigs(X, 0.2),
        lambda x: x.clamp_min(0.2),
        lambda x: (x > 0.2).double(),
        "sym",
    ),
    "funm(atan)": (
        lambda X: mb.funm(X, torch.atan, lambda x: 1 / (1 + x * x)),
        torch.atan,
        lambda x: 1 / (1 + x * x),
        "sym",
    ),
}


def _input(kind, n, *batch, dtype=torch.float64):
    return random_spd(n, *batch, dtype=dtype) if kind == "spd" else random_sym(n, *batch, dtype=dtype)


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (2, 3, 5, 5)])
def test_gradcheck(name, shape):
    fn, _, _, kind = FAMILY[name]
    torch.manual_seed(0)
    X = _input(kind, shape[-1], *shape[:-2]).requires_grad_(True)
    # Symmetric perturbations: differentiate through sym(A).
    assert gradcheck(lambda A: fn(sym(A)), (X,), check_forward_ad=True)


@pytest.mark.parametrize("name", FAMILY)
def test_gradgradcheck(name):
    fn, _, _, kind = FAMILY[name]
    torch.manual_seed(1)
    X = _input(kind, 4, 2).requires_grad_(True)
    assert gradgradcheck(lambda A: fn(sym(A)), (X,))


def test_gradgradcheck_at_repeated_eigenvalues():
    X, _, _ = with_spectrum([1.0, 1.0, 2.0, 2.0, 2.0])
    X.requires_grad_(True)
    assert gradgradcheck(lambda A: mb.logm(sym(A)), (X,))
    assert gradgradcheck(lambda A: mb.powm(sym(A), 0.5), (X,))


def test_hessian_vector_product_matches_finite_difference_of_gradient():
    torch.manual_seed(2)
    X = random_spd(6)
    G, V = random_sym(6), random_sym(6)

    def grad_at(A):
        A = A.clone().requires_grad_(True)
        (g,) = torch.autograd.grad((mb.logm(A) * G).sum(), A, create_graph=True)
        return A, g

    A, g = grad_at(X)
    (hvp,) = torch.autograd.grad((g * V).sum(), A)
    h = 1e-5
    fd = (grad_at(X + h * V)[1] - grad_at(X - h * V)[1]) / (2 * h)
    assert torch.allclose(sym(hvp), fd.detach(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", [n for n in FAMILY if not n.startswith("clamp")])
@pytest.mark.parametrize("c", [0.5, 2.0])
def test_fully_degenerate_input(name, c):
    """At X = c I the gradient of <G, f(X)> is f'(c) sym(G) exactly."""
    fn, _, df, _ = FAMILY[name]
    n = 5
    X = (c * torch.eye(n, dtype=torch.float64)).requires_grad_(True)
    G = torch.randn(n, n, dtype=torch.float64)
    (grad,) = torch.autograd.grad((fn(X) * G).sum(), X)
    expected = float(df(torch.tensor(c, dtype=torch.float64))) * sym(G)
    assert torch.allclose(grad, expected, rtol=1e-12, atol=1e-12)


def test_powm_half_at_2I_value():
    # A peer library's powm gets this 99% wrong; d/dX <G, X^0.5> at 2I is 0.5 * 2^-0.5 * sym(G).
    X = (2 * torch.eye(3, dtype=torch.float64)).requires_grad_(True)
    G = torch.arange(9, dtype=torch.float64).reshape(3, 3)
    (grad,) = torch.autograd.grad((mb.powm(X, 0.5) * G).sum(), X)
    assert torch.allclose(grad, 0.5 / math.sqrt(2) * sym(G), rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", [n for n in FAMILY if not n.startswith("clamp")])
def test_clusters_of_repeated_eigenvalues_match_daleckii_krein(name):
    fn, f, df, _ = FAMILY[name]
    torch.manual_seed(3)
    X, L, Q = with_spectrum([0.3, 0.3, 0.3, 1.5, 1.5, 4.0])
    X.requires_grad_(True)
    G = torch.randn(6, 6, dtype=torch.float64)
    (grad,) = torch.autograd.grad((fn(X) * G).sum(), X)
    expected = daleckii_krein(f, df, L, Q, G)
    assert torch.allclose(grad, expected, rtol=1e-9, atol=1e-10)


def test_clamp_eigs_ties_below_and_above_the_floor():
    X, L, Q = with_spectrum([-1.0, -1.0, 0.5, 2.0, 2.0])
    X.requires_grad_(True)
    G = torch.randn(5, 5, dtype=torch.float64)
    Y = mb.clamp_eigs(X, 0.0)
    assert torch.allclose(Y, (Q * L.clamp_min(0).unsqueeze(-2)) @ Q.mT, atol=1e-12)
    (grad,) = torch.autograd.grad((Y * G).sum(), X)
    expected = daleckii_krein(lambda x: x.clamp_min(0.0), lambda x: (x > 0).double(), L, Q, G)
    assert torch.allclose(grad, expected, atol=1e-12)


@pytest.mark.parametrize("name", ["logm", "sqrtm", "invsqrtm", "expm", "powm(2.7)"])
def test_agrees_with_plain_autograd_on_generic_input(name):
    fn, f, _, kind = FAMILY[name]
    torch.manual_seed(4)
    X = _input(kind, 7, 3)
    G = torch.randn(3, 7, 7, dtype=torch.float64)
    A = X.clone().requires_grad_(True)
    (ours,) = torch.autograd.grad((fn(A) * G).sum(), A)
    B = X.clone().requires_grad_(True)
    L, Q = torch.linalg.eigh(B)
    (plain,) = torch.autograd.grad((((Q * f(L).unsqueeze(-2)) @ Q.mT) * G).sum(), B)
    assert (ours - sym(plain)).abs().max() <= 1e-8 * plain.abs().max()


def test_forward_values():
    torch.manual_seed(5)
    X = random_spd(6, 2)
    assert torch.allclose(mb.expm(mb.logm(X)), X, atol=1e-12)
    R = mb.sqrtm(X)
    assert torch.allclose(R @ R, X, atol=1e-12)
    assert torch.allclose(
        mb.invsqrtm(X) @ X @ mb.invsqrtm(X), torch.eye(6, dtype=torch.float64).expand(2, 6, 6), atol=1e-12
    )
    assert torch.allclose(mb.powm(X, 3.0), X @ X @ X, atol=1e-10)
    assert torch.allclose(mb.expm(random_sym(6) * 0), torch.eye(6, dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("name", ["logm", "sqrtm", "invsqrtm", "powm(-1.3)", "expm"])
@pytest.mark.parametrize("rel_gap", [0.0, 1e-4, 1e-2])
def test_float32_accuracy_against_float64(name, rel_gap):
    """Cancellation-free divided differences keep float32 gradients accurate at (near) ties."""
    fn, _, _, _ = FAMILY[name]
    torch.manual_seed(6)
    errors = []
    for _ in range(5):
        spectrum = [1.0, 1.0 + rel_gap, 1.0 + 2 * rel_gap, 3.0, 3.0 * (1 + rel_gap), 7.0]
        X64, _, _ = with_spectrum(spectrum)
        G64 = random_sym(6)
        grads = []
        for dtype in (torch.float64, torch.float32):
            X = X64.to(dtype).requires_grad_(True)
            (g,) = torch.autograd.grad((fn(X) * G64.to(dtype)).sum(), X)
            grads.append(g.double())
        errors.append(float(torch.linalg.norm(grads[1] - grads[0]) / torch.linalg.norm(grads[0])))
    # The float32 eigendecomposition alone limits this to a few float32 ulps times the conditioning.
    assert max(errors) < 5e-6, errors


def test_generic_funm_is_accurate_at_near_ties_in_float64():
    X, _, _ = with_spectrum([1.0, 1.0 + 1e-9, 2.0, 2.0 + 1e-7])
    X.requires_grad_(True)
    G = random_sym(4)
    (grad,) = torch.autograd.grad((mb.funm(X, torch.atan, lambda x: 1 / (1 + x * x)) * G).sum(), X)
    (ref,) = torch.autograd.grad(
        (mb.funm(X, torch.atan, lambda x: 1 / (1 + x * x), divided_difference=_atan_dd) * G).sum(), X
    )
    assert torch.allclose(grad, ref, rtol=1e-9, atol=1e-12)


def _atan_dd(a, b):
    # atan(a) - atan(b) = atan((a - b) / (1 + a b)) for a b > -1: no cancellation.
    d = a - b
    zero = d == 0
    return torch.where(zero, 1 / (1 + a * a), torch.atan(d / (1 + a * b)) / torch.where(zero, torch.ones_like(d), d))


@pytest.mark.parametrize("fn", [mb.logm, mb.sqrtm, mb.expm, lambda X: mb.powm(X, 0.3)])
def test_empty_batch_and_one_by_one(fn):
    E = torch.empty(0, 3, 3, dtype=torch.float64, requires_grad=True)
    Y = fn(E)
    assert Y.shape == (0, 3, 3)
    Y.sum().backward()
    assert E.grad.shape == (0, 3, 3)
    x = torch.tensor([[[2.5]]], dtype=torch.float64, requires_grad=True)
    assert gradcheck(fn, (x,))


def test_half_precision_and_autocast_compute_in_float32():
    X = random_spd(4, dtype=torch.float32)
    Y = mb.logm(X.to(torch.bfloat16))
    assert Y.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        A = X.clone().requires_grad_(True)
        Z = mb.logm(A @ torch.eye(4))  # the product runs in bfloat16 under autocast
        assert Z.dtype == torch.float32
        Z.sum().backward()
    assert torch.isfinite(A.grad).all()


spectra = st.lists(st.sampled_from([0.25, 0.5, 1.0, 1.0, 2.0, 3.0, 3.0 + 1e-9, 10.0]), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(spectrum=spectra, seed=st.integers(0, 2**16))
def test_property_logm_backward_is_daleckii_krein(spectrum, seed):
    g = torch.Generator().manual_seed(seed)
    X, L, Q = with_spectrum(spectrum, generator=g)
    X.requires_grad_(True)
    G = torch.randn(len(spectrum), len(spectrum), dtype=torch.float64, generator=g)
    (grad,) = torch.autograd.grad((mb.logm(X) * G).sum(), X)
    expected = daleckii_krein(torch.log, torch.reciprocal, L, Q, G, tie=1e-6)
    assert torch.allclose(grad, expected, rtol=1e-7, atol=1e-8)
    assert torch.allclose(mb.expm(mb.logm(X.detach())), X.detach(), atol=1e-10)


def test_powm_zero_exponent_with_zero_eigenvalue():
    X = torch.diag(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)).requires_grad_(True)
    Y = mb.powm(X, 0.0)
    assert torch.allclose(Y, torch.eye(3, dtype=torch.float64))
    Y.sum().backward()
    assert torch.equal(X.grad, torch.zeros(3, 3, dtype=torch.float64))


# check=False: in float32 the spectrum 1e-6..1e4 (condition 1e10) counts as numerically singular for
# a generic matrix; on this diagonal input the eigenvalues are exact, and the divided differences are
# what is under test.
MP_FUNCTIONS = {
    "logm": (lambda X: mb.logm(X, check=False), lambda x: mpmath.log(x), lambda x: 1 / x),
    "sqrtm": (mb.sqrtm, lambda x: mpmath.sqrt(x), lambda x: 1 / (2 * mpmath.sqrt(x))),
    "invsqrtm": (
        lambda X: mb.invsqrtm(X, check=False),
        lambda x: 1 / mpmath.sqrt(x),
        lambda x: -(x ** mpmath.mpf(-1.5)) / 2,
    ),
    "powm(-1.3)": (
        lambda X: mb.powm(X, -1.3, check=False),
        lambda x: x ** mpmath.mpf(-1.3),
        lambda x: -1.3 * x ** mpmath.mpf(-2.3),
    ),
    "powm(0.5)": (lambda X: mb.powm(X, 0.5), lambda x: x ** mpmath.mpf(0.5), lambda x: x ** mpmath.mpf(-0.5) / 2),
    "expm": (mb.expm, mpmath.exp, mpmath.exp),
}


def _mp_loewner(f, df, values):
    with mpmath.workdps(60):
        v = [mpmath.mpf(float(x)) for x in values]
        return torch.tensor(
            [[float(df(a)) if a == b else float((f(a) - f(b)) / (a - b)) for b in v] for a in v], dtype=torch.float64
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(MP_FUNCTIONS))
def test_divided_differences_near_and_far_against_mpmath(dtype, name):
    """On diagonal input (an exact eigendecomposition) the gradient of <G, f(X)> is F o sym(G), with the
    Loewner matrix F checked entry by entry against 60-digit arithmetic, for gaps from 1e-4 relative
    to ten orders of magnitude."""
    fn, f, df = MP_FUNCTIONS[name]
    values = (
        [1e-6, 1e-2, 0.999, 1.0, 1.0001, 7.0, 1e4] if name != "expm" else [-30.0, -1.0, 0.999, 1.0, 1.0001, 5.0, 20.0]
    )
    values = torch.tensor(values, dtype=dtype).double()  # exactly representable in dtype
    X = torch.diag(values).to(dtype).requires_grad_(True)
    G = torch.ones(len(values), len(values), dtype=dtype)
    (grad,) = torch.autograd.grad((fn(X) * G).sum(), X)
    expected = _mp_loewner(f, df, values)
    rel = ((grad.double() - expected).abs() / expected.abs()).max()
    assert rel < (2e-6 if dtype == torch.float32 else 1e-13), float(rel)


def test_sqrtm_backward_at_a_zero_eigenvalue_raises_instead_of_nan():
    """sqrt has no derivative at 0: with checks the backward names the problem and the batch element;
    without them the gradient is non-finite, as documented. A positive spectrum is unaffected."""
    Q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    X = torch.stack(
        [Q @ torch.diag(torch.tensor(v, dtype=torch.float64)) @ Q.T for v in ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])]
    )
    X = sym(X).requires_grad_(True)
    Y = mb.sqrtm(X)
    with pytest.raises(
        ValueError, match=r"sqrtm: the gradient is infinite at a zero eigenvalue \(batch index \(1,\)\)"
    ):
        torch.autograd.grad(Y.sum(), X)
    (g,) = torch.autograd.grad(mb.sqrtm(X, check=False).sum(), X)
    assert torch.isfinite(g[0]).all() and not torch.isfinite(g[1]).all()
    (g2,) = torch.autograd.grad(mb.powm(X, 2.0).sum(), X)  # finite slope at 0: no error
    assert torch.isfinite(g2).all()


def test_large_matrices_take_the_slab_path_and_agree_with_plain_autograd():
    """float64 matrices from 512 x 512 (2 MB) sum A + A^T in column slabs (a cache optimisation): the result must be the same
    exactly symmetric sum, and logm's output and gradient must match plain autograd through eigh."""
    from matbackprop.linalg.common import add_transpose, use_slabs

    g = torch.Generator().manual_seed(3)
    A = torch.randn(2, 600, 600, dtype=torch.float64, generator=g)
    assert use_slabs(A) and use_slabs(A[0, :530, :530]) and not use_slabs(A[0, :500, :500].float())
    assert torch.equal(add_transpose(A), A + A.mT)
    X = random_spd(530, generator=g).requires_grad_(True)
    G = torch.randn(530, 530, dtype=torch.float64, generator=g)
    Y = mb.logm(X)
    assert torch.equal(Y, Y.mT)
    (gX,) = torch.autograd.grad(Y, X, G)
    L, Q = torch.linalg.eigh(X.detach())
    X2 = X.detach().clone().requires_grad_(True)
    L2, Q2 = torch.linalg.eigh(X2)
    (g_ref,) = torch.autograd.grad((Q2 * L2.log().unsqueeze(-2)) @ Q2.mT, X2, G)
    assert torch.allclose(Y, (Q * L.log().unsqueeze(-2)) @ Q.mT, atol=1e-12)
    assert torch.allclose(gX, sym(g_ref), atol=1e-9 * float(g_ref.abs().max()))
