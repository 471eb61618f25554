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


def test_rounding_level_asymmetry_is_accepted():
    A = torch.randn(50, 8, dtype=torch.float32)
    C = A.T @ A  # matmul rounding may leave asymmetry at eps level
    C = C + 1e-6 * C.abs().max() * torch.finfo(torch.float32).eps * torch.randn(8, 8)
    mb.logm(C + torch.eye(8))


@pytest.mark.parametrize(
    "name,fn",
    [
        ("logm", mb.logm),
        ("invsqrtm", mb.invsqrtm),
        ("powm", lambda X: mb.powm(X, -0.5)),
    ],
)
def test_positive_definite_required(name, fn):
    X = random_spd(3, 4)
    X[3] = torch.diag(torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match=rf"{name}: input must be positive definite at batch index \(3,\)"):
        fn(X)


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
    from matbackprop.linalg._checks import check_finite_symmetric
    from matbackprop.linalg._common import use_slabs

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
