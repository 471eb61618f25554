"""Coupled Newton-Schulz square roots: accuracy against sqrtm and gradients."""

import pytest
import torch
from torch.autograd import gradcheck

import matbackprop as mb
from tests.helpers import random_spd, sym, with_spectrum


def test_converges_to_sqrtm_for_well_conditioned_input():
    X, _, _ = with_spectrum([1.0, 2.0, 3.0, 5.0, 10.0], 3)
    R = mb.sqrtm_newton_schulz(X, num_iters=20)
    assert torch.allclose(R, mb.sqrtm(X), rtol=1e-10, atol=1e-10)
    Z = mb.invsqrtm_newton_schulz(X, num_iters=20)
    assert torch.allclose(Z, mb.invsqrtm(X), rtol=1e-10, atol=1e-10)


def test_error_decreases_with_iterations():
    X = random_spd(16, 2)
    ref = mb.sqrtm(X)
    errors = [float(torch.linalg.norm(mb.sqrtm_newton_schulz(X, k) - ref)) for k in (2, 5, 10)]
    assert errors[0] > errors[1] > errors[2]


def test_gradcheck_and_gradient_close_to_exact():
    X = random_spd(5, 2).requires_grad_(True)
    assert gradcheck(lambda A: mb.sqrtm_newton_schulz(sym(A), 6), (X,))
    assert gradcheck(lambda A: mb.invsqrtm_newton_schulz(sym(A), 6), (X,))
    G = torch.randn(2, 5, 5, dtype=torch.float64)
    (g_ns,) = torch.autograd.grad((mb.sqrtm_newton_schulz(X, 25) * G).sum(), X)
    (g_exact,) = torch.autograd.grad((mb.sqrtm(X) * G).sum(), X)
    assert torch.allclose(g_ns, g_exact, rtol=1e-8, atol=1e-9)


def test_rejects_indefinite_input_and_bad_iteration_count():
    X = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="positive definite"):
        mb.sqrtm_newton_schulz(X)
    with pytest.raises(ValueError, match="num_iters"):
        mb.sqrtm_newton_schulz(torch.eye(2), num_iters=0)
