"""SPD-network operations: BiMap, Karcher mean, geodesics, transport."""

import torch
from torch.autograd import gradcheck

import matbackprop as mb
from tests.helpers import random_spd, sym


def test_bimap_and_gradcheck():
    X = random_spd(5, 3).requires_grad_(True)
    W, _ = torch.linalg.qr(torch.randn(5, 2, dtype=torch.float64))
    W.requires_grad_(True)
    Y = mb.bimap(X, W)
    assert Y.shape == (3, 2, 2)
    assert gradcheck(lambda X, W: mb.bimap(sym(X), W), (X, W))


def test_karcher_mean_of_commuting_matrices_is_geometric_mean():
    L = torch.tensor([[1.0, 4.0, 9.0], [4.0, 1.0, 1.0]], dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    X = (Q * L.unsqueeze(-2)) @ Q.T
    G = mb.spd_karcher_mean(X, num_iters=20)
    expected = (Q * (L[0] * L[1]).sqrt()) @ Q.T
    assert torch.allclose(G, expected, atol=1e-10)


def test_geodesic_endpoints_and_midpoint():
    A, B = random_spd(4), random_spd(4)
    assert torch.allclose(mb.spd_geodesic(A, B, 0.0), A, atol=1e-12)
    assert torch.allclose(mb.spd_geodesic(A, B, 1.0), B, atol=1e-12)
    M = mb.spd_geodesic(A, B, 0.5)  # the geometric mean A # B solves M A^-1 M = B
    assert torch.allclose(M @ torch.linalg.inv(A) @ M, B, atol=1e-10)


def test_transport_maps_mean_to_bias_and_gradcheck():
    X = random_spd(3, 6)
    G = mb.spd_karcher_mean(X, num_iters=30)
    bias = random_spd(3)
    T = mb.spd_transport(X, G, bias)
    assert torch.allclose(mb.spd_karcher_mean(T, num_iters=30), bias, atol=1e-8)
    Xg = X[:3].clone().requires_grad_(True)
    assert gradcheck(lambda X: mb.spd_transport(sym(X), mb.spd_karcher_mean(sym(X)), bias), (Xg,))
