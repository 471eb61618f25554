"""Every bad input raises ValueError naming the problem and the first offending batch index."""

import pytest
import torch

import matbackprop as mb
from tests.helpers import random_spd

SQUARE_FUNCTIONS = {
    "eigh": mb.eigh,
    "logm": mb.logm,
    "sqrtm": mb.sqrtm,
    "invsqrtm": mb.invsqrtm,
    "powm": lambda X, **kw: mb.powm(X, 0.5, **kw),
    "expm": mb.expm,
    "clamp_eigs": lambda X, **kw: mb.clamp_eigs(X, 0.1, **kw),
    "funm": lambda X, **kw: mb.funm(X, torch.sin, torch.cos, **kw),
    "sqrtm_newton_schulz": mb.sqrtm_newton_schulz,
    "invsqrtm_newton_schulz": mb.invsqrtm_newton_schulz,
}


@pytest.mark.parametrize("name", SQUARE_FUNCTIONS)
def test_wrong_rank_and_non_square(name):
    fn = SQUARE_FUNCTIONS[name]
    with pytest.raises(ValueError, match="matrix or a batch"):
        fn(torch.ones(3))
    with pytest.raises(ValueError, match="square"):
        fn(torch.ones(2, 3, 4))


@pytest.mark.parametrize("name", SQUARE_FUNCTIONS)
def test_non_finite_entries_name_the_batch_index(name):
    X = random_spd(3, 2, 4)
    X[1, 2, 0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite entries at batch index \(1, 2\)"):
        SQUARE_FUNCTIONS[name](X)
    X[1, 2, 0, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        SQUARE_FUNCTIONS[name](X)


@pytest.mark.parametrize("name", SQUARE_FUNCTIONS)
def test_non_symmetric_input(name):
    X = random_spd(4, 3)
    X[2, 0, 3] += 0.1
    with pytest.raises(ValueError, match=r"not symmetric at batch index \(2,\)"):
        SQUARE_FUNCTIONS[name](X)


def _one_ulp_asymmetric(X: torch.Tensor, i: int = 0, j: int = 1) -> torch.Tensor:
    """``X`` with entry (i, j) moved to the next representable value: an asymmetry of exactly one ulp."""
    Y = X.clone()
    Y[..., i, j] = torch.nextafter(Y[..., i, j], torch.full_like(Y[..., i, j], float("inf")))
    return Y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rounding_level_asymmetry_is_accepted(dtype):
    """A one-ulp asymmetry (what rounding in A^T A or a congruence leaves) is accepted and symmetrised:
    the result is that of the symmetric part, exactly symmetric itself."""
    A = torch.randn(50, 8, dtype=dtype, generator=torch.Generator().manual_seed(0))
    C = _one_ulp_asymmetric(A.T @ A + torch.eye(8, dtype=dtype), 2, 5)
    assert not torch.equal(C, C.mT)  # the asymmetry is really there
    for fn in (mb.logm, mb.sqrtm, mb.expm, lambda X: mb.eigh(X)[0]):
        Y = fn(C)
        assert torch.equal(Y, fn(0.5 * (C + C.mT)))
    assert torch.equal(mb.logm(C), mb.logm(C).mT)


def test_karcher_tangent_with_cancellation_rounding_is_accepted():
    """The Karcher-mean case of issue 12: a tangent of size 1e-9 carrying 2e-17 of asymmetry (rounding of
    a cancellation among unit-sized logarithms) is relatively 2e-8 asymmetric, above sqrt(eps) = 1.5e-8,
    but far below the absolute rounding floor n eps: accepted by expm (and eigh), symmetrised."""
    S = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    T = 1e-9 * (S + S.T) / (S + S.T).abs().max()
    T[1, 3] += 2e-17
    asym = (T - T.T).abs().max() / T.abs().max()
    assert asym > torch.finfo(torch.float64).eps ** 0.5  # a purely relative tolerance would reject it
    E = mb.expm(T)
    assert torch.equal(E, mb.expm(0.5 * (T + T.T)))
    # expm(T) = I + T + O(1e-18): equal up to the rounding (n eps) of Q exp(L) Q^T with entries of size 1
    assert torch.allclose(E, torch.eye(4, dtype=torch.float64) + 0.5 * (T + T.T), atol=2e-15, rtol=0)
    mb.eigh(T)


def test_real_asymmetry_is_still_rejected_at_every_scale():
    """Asymmetry well above rounding is a fault for unit-sized and for large matrices alike."""
    X = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    X[1, 0, 2] = 1e-6
    with pytest.raises(ValueError, match=r"expm: input is not symmetric at batch index \(1,\)"):
        mb.expm(X)
    with pytest.raises(ValueError, match=r"not symmetric at batch index \(1,\)"):
        mb.expm(1e6 * X)


@pytest.mark.parametrize("seed", range(10))
def test_psd_up_to_rounding_is_clamped_at_the_floor(seed):
    """Q diag(-1e-16, 1, 2) Q^T: PSD up to rounding. PSD domains clamp the eigenvalue at 0 (sqrtm exact
    on the rest), PD domains at the floor eps max|L| (logm: log(eps * 2) whatever the rotation did to
    the computed eigenvalue, in (-3e-16, 3e-16))."""
    Q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    X = Q @ torch.diag(torch.tensor([-1e-16, 1.0, 2.0], dtype=torch.float64)) @ Q.T
    X = 0.5 * (X + X.T)
    R = mb.sqrtm(X)
    assert torch.allclose(R @ R, X, atol=1e-14)
    floor = torch.finfo(torch.float64).eps * torch.linalg.eigvalsh(X).abs().max()
    values = torch.linalg.eigvalsh(mb.logm(X))
    assert torch.allclose(values[0], torch.log(floor), rtol=1e-12)
    assert torch.allclose(values[1:], torch.log(torch.tensor([1.0, 2.0], dtype=torch.float64)), atol=1e-14)
    assert torch.isfinite(mb.invsqrtm(X)).all() and torch.isfinite(mb.powm(X, -0.5)).all()


def test_tensor_exponent_and_floor_broadcast_over_channels():
    """powm / clamp_eigs take a per-channel tensor (broadcast against the batch shape): equal to the
    per-channel calls; a negative exponent makes its channel's domain PD."""
    X = random_spd(4, 2 * 3).reshape(2, 3, 4, 4)
    p = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    floor = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    Y, Z = mb.powm(X, p), mb.clamp_eigs(X, floor)
    for c in range(3):
        assert torch.allclose(Y[:, c], mb.powm(X[:, c], float(p[c])), atol=1e-12, rtol=1e-12)
        assert torch.allclose(Z[:, c], mb.clamp_eigs(X[:, c], float(floor[c])), atol=1e-12, rtol=1e-12)
    Xg = X.detach().requires_grad_(True)
    (gp,) = torch.autograd.grad(mb.powm(Xg, p).sum(), Xg)
    (g1,) = torch.autograd.grad(mb.powm(Xg[:, 1], -1.0).sum(), Xg)
    assert torch.allclose(gp[:, 1], g1[:, 1], atol=1e-12)
    bad = X.clone()
    bad[0, 1] = torch.diag(torch.tensor([1.0, -0.5, 2.0, 3.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"powm: input must be positive semi-definite .*at batch index \(0, 1\)"):
        mb.powm(bad, p)
    with pytest.raises(ValueError, match=r"powm: the exponent p \(shape \(2,\)\) must broadcast against"):
        mb.powm(X, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="clamp_eigs: the floor must be finite"):
        mb.clamp_eigs(X, torch.tensor([0.1, float("nan"), 0.3]))


@pytest.mark.parametrize(
    "name,fn",
    [
        ("logm", mb.logm),
        ("invsqrtm", mb.invsqrtm),
        ("powm", lambda X: mb.powm(X, -0.5)),
    ],
)
def test_positive_definite_required(name, fn):
    """A clearly negative eigenvalue (far below the rounding level) or an all-zero spectrum is a fault."""
    X = random_spd(3, 4)
    X[3] = torch.diag(torch.tensor([1.0, -1e-6, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=rf"{name}: input must be positive definite at batch index \(3,\)"):
        fn(X)
    with pytest.raises(ValueError, match=rf"{name}: input must be positive definite at batch index \(1,\)"):
        fn(torch.stack([torch.eye(3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64)]))


@pytest.mark.parametrize("name,fn", [("sqrtm", mb.sqrtm), ("powm", lambda X: mb.powm(X, 0.5))])
def test_positive_semidefinite_required_and_rounding_negatives_accepted(name, fn):
    X = torch.diag(torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=rf"{name}: input must be positive semi-definite"):
        fn(X)
    A = torch.randn(2, 5, dtype=torch.float64)
    P = A.T @ A  # rank 2: zero eigenvalues may come out slightly negative
    Y = fn(P)
    assert torch.isfinite(Y).all()
    assert torch.allclose(Y @ Y, P, atol=1e-10)


def test_check_false_skips_checks():
    X = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    assert torch.isnan(mb.logm(X, check=False)).any()


def test_svd_checks():
    with pytest.raises(ValueError, match="matrix or a batch"):
        mb.svd(torch.ones(3))
    X = torch.ones(2, 3, 2)
    X[1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"batch index \(1,\)"):
        mb.svd(X)


def test_integer_input_is_rejected():
    with pytest.raises(ValueError, match="floating-point"):
        mb.logm(torch.eye(3, dtype=torch.int64))


def test_large_symmetric_check_scans_slabs_and_still_finds_asymmetry():
    """a 600 x 600 float64 matrix (2.9 MB) is compared with X^T slab by slab: an exactly symmetric matrix passes, one asymmetric
    entry in the last slab is found and named, and a non-finite entry is still reported."""
    from matbackprop.linalg.checks import check_finite_symmetric
    from matbackprop.linalg.common import use_slabs

    A = torch.randn(2, 600, 600, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    X = A + A.mT
    assert use_slabs(X)
    check_finite_symmetric(X, "logm")
    Y = X.clone()
    Y[1, 3, 590] += 1.0
    with pytest.raises(ValueError, match=r"not symmetric at batch index \(1,\)"):
        check_finite_symmetric(Y, "logm")
    Z = X.clone()
    Z[0, 7, 7] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_finite_symmetric(Z, "logm")


def test_tensor_exponent_and_floor_gradcheck():
    """float64 gradcheck (symmetric perturbations through sym) with per-channel exponents and floors,
    forward mode included (check_forward_ad)."""
    from torch.autograd import gradcheck

    X = random_spd(3, 2).reshape(2, 3, 3).requires_grad_(True)
    p = torch.tensor([0.5, -1.5], dtype=torch.float64)
    floor = torch.tensor([0.2, 5.0], dtype=torch.float64)
    assert gradcheck(lambda A: mb.powm(0.5 * (A + A.mT), p), (X,), check_forward_ad=True)
    L = torch.linalg.eigvalsh(X.detach())
    assert (L - 5.0).abs().min() > 1e-3 and (L - 0.2).abs().min() > 1e-3  # no eigenvalue at a kink
    assert gradcheck(lambda A: mb.clamp_eigs(0.5 * (A + A.mT), floor), (X,), check_forward_ad=True)


def test_host_fast_path_accepts_only_spectra_plainly_inside_the_domain():
    from matbackprop.linalg.checks import HOST_CHECK_MAX_NUMEL, spectrum_inside_domain

    eps = torch.finfo(torch.float64).eps
    L = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    assert spectrum_inside_domain(L, strict=True)
    assert spectrum_inside_domain(L, strict=False)
    at_floor = torch.tensor([[3.0 * eps, 1.0, 3.0]], dtype=torch.float64)  # floor is eps * 3
    assert not spectrum_inside_domain(at_floor, strict=True)  # must take the clamp
    assert spectrum_inside_domain(at_floor, strict=False)
    zero = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    assert not spectrum_inside_domain(zero, strict=False)  # zero eigenvalue: the gradient error must be set
    assert not spectrum_inside_domain(torch.tensor([[float("nan"), 1.0]]), strict=False)
    big = torch.ones(HOST_CHECK_MAX_NUMEL + 1, dtype=torch.float64).reshape(1, -1)
    assert not spectrum_inside_domain(big, strict=False)  # large spectra: tensor checks


@pytest.mark.parametrize("name", ["logm", "invsqrtm", "sqrtm"])
def test_small_calls_still_clamp_and_flag_at_the_domain_edge(name):
    # 3 x 3 matrices go through the host fast path when they are plainly inside the domain; a singular
    # PSD matrix must still be clamped (finite result equal to the explicit clamp) and a zero
    # eigenvalue must still make the gradient raise.
    fn = SQUARE_FUNCTIONS[name]
    v = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64) / 2**0.5
    X = (torch.eye(3, dtype=torch.float64) - torch.outer(v, v)).requires_grad_()  # eigenvalues 0, 1, 1
    Y = fn(X)
    assert torch.isfinite(Y).all()
    floor = torch.finfo(torch.float64).eps
    L, Q = torch.linalg.eigh(X.detach())
    Lc = L.clamp_min(floor if name != "sqrtm" else 0.0)
    f = {"logm": torch.log, "invsqrtm": torch.rsqrt, "sqrtm": torch.sqrt}[name]
    torch.testing.assert_close(Y.detach(), Q @ torch.diag(f(Lc)) @ Q.T, rtol=1e-12, atol=1e-12)
    if name == "sqrtm":  # an exactly zero eigenvalue (diagonal input): infinite f', so the backward raises
        Z = fn(torch.diag(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)).requires_grad_())
        with pytest.raises(ValueError, match="zero eigenvalue"):
            Z.sum().backward()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_small_inputs_read_on_the_host_still_reject_non_finite_diagonals(bad):
    # A NaN on the diagonal leaves the matrix "symmetric" entry by entry; the finiteness test must catch it.
    X = random_spd(3, 2)
    X[1, 2, 2] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite entries at batch index \(1,\)"):
        mb.logm(X)


def test_small_inputs_read_on_the_host_symmetrise_one_ulp_asymmetry():
    X = random_spd(4, dtype=torch.float64)
    X[0, 1] = torch.nextafter(X[0, 1], torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(mb.logm(X), mb.logm((X + X.T) / 2), rtol=0, atol=0)
