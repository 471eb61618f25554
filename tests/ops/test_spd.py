"""SPD-network operations: BiMap, Karcher mean, geodesics, batch-norm recentring, parallel transport."""

import pytest
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


def test_recenter_maps_mean_to_bias_and_gradcheck():
    X = random_spd(3, 6)
    G = mb.spd_karcher_mean(X, num_iters=30)
    bias = random_spd(3)
    T = mb.spd_recenter(X, G, bias)
    assert torch.allclose(mb.spd_karcher_mean(T, num_iters=30), bias, atol=1e-8)
    Xg = X[:3].clone().requires_grad_(True)
    assert gradcheck(lambda X: mb.spd_recenter(sym(X), mb.spd_karcher_mean(sym(X)), bias), (Xg,))
    with pytest.warns(DeprecationWarning, match="spd_recenter"):
        assert torch.equal(mb.spd_transport(X, G, bias), T)


def _log_map(A, B):
    """Affine-invariant Riemannian logarithm Log_A(B) = A^1/2 logm(A^-1/2 B A^-1/2) A^1/2 (reference, float64)."""
    root, inv_root = mb.sqrtm(A), mb.invsqrtm(A)
    return root @ mb.logm(inv_root @ B @ inv_root) @ root


def test_parallel_transport_properties():
    A, B = random_spd(4), random_spd(4)
    X, Y = sym(torch.randn(2, 4, 4, dtype=torch.float64)).unbind(0)
    PX, PY = mb.spd_parallel_transport(X, A, B), mb.spd_parallel_transport(Y, A, B)
    Ai, Bi = torch.linalg.inv(A), torch.linalg.inv(B)
    # an isometry of the affine-invariant metric <X, Y>_A = tr(A^-1 X A^-1 Y)
    assert torch.allclose(torch.trace(Bi @ PX @ Bi @ PY), torch.trace(Ai @ X @ Ai @ Y), atol=1e-10)
    # the geodesic's velocity is transported to the (reversed) velocity at the other end
    assert torch.allclose(mb.spd_parallel_transport(_log_map(A, B), A, B), -_log_map(B, A), atol=1e-10)
    # back and forth is the identity; from I it is B^1/2 X B^1/2
    assert torch.allclose(mb.spd_parallel_transport(PX, B, A), X, atol=1e-10)
    I = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(mb.spd_parallel_transport(X, I, B), mb.sqrtm(B) @ X @ mb.sqrtm(B), atol=1e-10)
    # and it differs from the recentring through the identity when A and B do not commute
    assert not torch.allclose(PX, mb.spd_recenter(X, A, B), atol=1e-3)
    Xg = X.clone().requires_grad_(True)
    Ag = A.clone().requires_grad_(True)
    assert gradcheck(lambda X, A: mb.spd_parallel_transport(sym(X), sym(A), B), (Xg, Ag))


def test_bimap_increases_dimension():
    X = random_spd(3, 2)
    W, _ = torch.linalg.qr(torch.randn(5, 3, dtype=torch.float64))  # (5, 3), orthonormal columns
    Y = mb.bimap(X, W.T)  # (3, 5): orthonormal rows, maps 3x3 to 5x5
    assert Y.shape == (2, 5, 5)
    L = torch.linalg.eigvalsh(Y)
    assert torch.allclose(L[..., -3:], torch.linalg.eigvalsh(X), atol=1e-12)  # an isometric embedding
    assert L[..., :2].abs().max() < 1e-12  # rank 3
