"""Normalized-cuts layer and projector loss: low-rank equals dense, gradients, ties at convergence."""

import pytest
import torch
from torch.autograd import gradcheck

import matbackprop as mb


def _features(B=2, N=30, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, N, d, dtype=torch.float64, generator=g)


def _dense_projector(Z):
    return Z @ torch.linalg.solve(Z.mT @ Z, Z.mT)


def test_low_rank_path_equals_dense_path():
    F = _features().requires_grad_(True)
    labels = torch.randint(0, 3, (2, 30), generator=torch.Generator().manual_seed(1))
    Z_low, ev_low = mb.ncut_embedding(F, 3, return_eigenvalues=True)
    Z_dense, ev_dense = mb.ncut_embedding_dense(F @ F.mT, 3, return_eigenvalues=True)
    assert torch.allclose(ev_low, ev_dense, atol=1e-12)
    assert torch.allclose(ev_low[:, 0], torch.ones(2, dtype=torch.float64), atol=1e-12)  # trivial eigenvector
    assert torch.allclose(_dense_projector(Z_low), _dense_projector(Z_dense), atol=1e-10)
    (g_low,) = torch.autograd.grad(mb.projector_loss(Z_low, labels).sum(), F)
    (g_dense,) = torch.autograd.grad(mb.projector_loss(Z_dense, labels).sum(), F)
    assert torch.allclose(g_low, g_dense, atol=1e-10)


def test_gradcheck_low_rank_and_dense():
    F = _features(N=12, d=4).requires_grad_(True)
    labels = torch.randint(0, 3, (2, 12), generator=torch.Generator().manual_seed(2))
    assert gradcheck(lambda F: mb.projector_loss(mb.ncut_embedding(F, 3), labels), (F,))
    assert gradcheck(lambda F: mb.projector_loss(mb.ncut_embedding_dense(F @ F.mT, 3), labels), (F,))
    X = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(
        lambda X: mb.projector_loss(mb.ncut_embedding_dense(mb.gaussian_affinity(X, 1.5), 3), labels[0]), (X,)
    )


def test_projector_loss_equals_dense_formula():
    g = torch.Generator().manual_seed(3)
    Z = torch.randn(2, 20, 4, dtype=torch.float64, generator=g)
    labels = torch.randint(0, 5, (2, 20), generator=g)
    labels[:, 0] = 7  # labels 5 and 6 are empty and must be ignored
    E = torch.nn.functional.one_hot(labels, 8).double()
    E_nonempty = E[..., E.sum(-2).amax(0) > 0]
    expected = 0.5 * ((_dense_projector(Z) - _dense_projector(E_nonempty)) ** 2).sum((-2, -1))
    assert torch.allclose(mb.projector_loss(Z, labels), expected, atol=1e-12)
    assert torch.allclose(mb.projector_loss(Z, E), expected, atol=1e-12)
    Z.requires_grad_(True)
    assert gradcheck(lambda Z: mb.projector_loss(Z, labels), (Z,))
    assert gradcheck(lambda Z: mb.projector_loss(Z, E), (Z,))


def test_projector_loss_gradient_is_the_projector_rule():
    g = torch.Generator().manual_seed(4)
    Z = torch.randn(15, 3, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (15,), generator=g)
    (grad,) = torch.autograd.grad(mb.projector_loss(Z, labels), Z)
    E = torch.nn.functional.one_hot(labels, 4).double()
    Pz, Pe = _dense_projector(Z.detach()), _dense_projector(E)
    expected = (
        -2 * (torch.eye(15, dtype=torch.float64) - Pz) @ Pe @ Z.detach() @ torch.linalg.inv(Z.detach().T @ Z.detach())
    )
    assert torch.allclose(grad, expected, atol=1e-12)


def _perfect_features(N=24, k=3, d=5, noise=0.0, seed=5):
    """Features whose linear affinity splits the nodes into k disconnected groups."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N) % k
    F = torch.zeros(N, d, dtype=torch.float64)
    F[torch.arange(N), labels] = 1.0 + torch.rand(N, dtype=torch.float64, generator=g)
    F = F + noise * torch.rand(N, d, dtype=torch.float64, generator=g)
    return F, labels


def test_perfect_segmentation_k_fold_unit_eigenvalue():
    F, labels = _perfect_features()
    F.requires_grad_(True)
    # eps=0: no degree floor, so the segmentation is exactly perfect.
    Z, ev = mb.ncut_embedding(F, 3, eps=0.0, return_eigenvalues=True)
    assert torch.allclose(ev, torch.ones(3, dtype=torch.float64), atol=1e-12)  # 3-fold tie at 1
    J = mb.projector_loss(Z, labels)
    assert abs(J.item()) < 1e-10
    (g,) = torch.autograd.grad(J, F)
    assert torch.isfinite(g).all() and g.abs().max() < 1e-8  # a minimum: zero gradient


def test_near_perfect_segmentation_gradients_are_finite_and_correct():
    F, labels = _perfect_features(noise=1e-9)
    wrong = labels.clone()
    wrong[:4] = (wrong[:4] + 1) % 3
    F.requires_grad_(True)
    _, ev = mb.ncut_embedding(F, 3, eps=0.0, return_eigenvalues=True)
    assert (1 - ev).abs().max() < 1e-8  # top-3 eigenvalues within 1e-8 of each other
    # Finite differences step into slightly negative features at the exact zeros: skip that check.
    assert gradcheck(lambda F: mb.projector_loss(mb.ncut_embedding(F, 3, eps=0.0, check=False), wrong), (F,))
    assert gradcheck(
        lambda F: mb.projector_loss(mb.ncut_embedding_dense(F @ F.T, 3, eps=0.0, check=False), wrong), (F,)
    )


def test_constant_features_and_zero_rows():
    F = torch.ones(10, 3, dtype=torch.float64)
    F[4] = 0.0  # an isolated node
    Z = mb.ncut_embedding(F, 1)
    assert torch.isfinite(Z).all() and Z[4].abs().max() == 0


def test_bad_inputs_raise():
    F = _features()
    with pytest.raises(ValueError, match=r"non-negative .* batch index \(1,\)"):
        G = F.clone()
        G[1, 3, 2] = -0.5
        mb.ncut_embedding(G, 2)
    with pytest.raises(ValueError, match="k must be between 1 and 6"):
        mb.ncut_embedding(F, 7)
    with pytest.raises(ValueError, match="NaN"):
        G = F.clone()
        G[0, 0, 0] = float("nan")
        mb.ncut_embedding(G, 2)
    with pytest.raises(ValueError, match="features must be"):
        mb.ncut_embedding(torch.ones(5), 1)
    with pytest.raises(ValueError, match="non-negative"):
        mb.ncut_embedding_dense(-torch.ones(4, 4), 1)
    with pytest.raises(ValueError, match="label map"):
        mb.projector_loss(torch.randn(2, 10, 3), torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="rank deficient"):
        mb.projector_loss(torch.zeros(10, 2, dtype=torch.float64), torch.zeros(10, dtype=torch.long))


def test_collinear_columns_raise():
    g = torch.Generator().manual_seed(6)
    z = torch.randn(20, 1, dtype=torch.float64, generator=g)
    Z = torch.cat([z, 2 * z, torch.randn(20, 1, dtype=torch.float64, generator=g)], dim=1)
    with pytest.raises(ValueError, match="rank deficient"):
        mb.projector_loss(Z, torch.zeros(20, dtype=torch.long))


def _reference_embedding(W, k):
    """Normalized cuts by the book: dense D^-1/2 W D^-1/2, torch.linalg.eigh, Z = D^-1/2 Q_k."""
    scale = W.sum(-1).rsqrt()
    _, Q = torch.linalg.eigh(scale.unsqueeze(-1) * W * scale.unsqueeze(-2))
    return scale.unsqueeze(-1) * Q[..., -k:]


@pytest.mark.parametrize("shape", [(3, 50, 8, 3), (2, 300, 20, 5), (1, 40, 40, 6), (2, 20, 60, 4)])
def test_embedding_is_exact_by_default(shape):
    # Issue 12: the default eps used to add 1e-6 mean(deg) to every degree (projectors off by ~1e-7).
    B, N, d, k = shape
    g = torch.Generator().manual_seed(N + d)
    # Three noisy clusters: the top-k eigenvalues are close to each other, as after training.
    centres = torch.rand(3, d, dtype=torch.float64, generator=g) ** 4
    F = centres[torch.randint(0, 3, (B, N), generator=g)] + 0.05 * torch.rand(B, N, d, dtype=torch.float64, generator=g)
    W = F @ F.mT
    want = _dense_projector(_reference_embedding(W, k))
    assert (_dense_projector(mb.ncut_embedding(F, k)) - want).abs().max() < 1e-12
    assert (_dense_projector(mb.ncut_embedding_dense(W, k)) - want).abs().max() < 1e-12
    # and a perturbation of 1e-6 mean(deg) on every degree is visible at this tolerance (the test can fail)
    deg = W.sum(-1)
    scale = (deg + 1e-6 * deg.mean(-1, keepdim=True)).rsqrt()
    _, Q = torch.linalg.eigh(scale.unsqueeze(-1) * W * scale.unsqueeze(-2))
    assert (_dense_projector(scale.unsqueeze(-1) * Q[..., -k:]) - want).abs().max() > 1e-10


def test_floor_acts_only_on_vanished_degrees():
    g = torch.Generator().manual_seed(3)
    F = torch.rand(25, 6, dtype=torch.float64, generator=g)
    F[[4, 17]] = 0.0  # isolated nodes: degree exactly 0
    keep = torch.ones(25, dtype=torch.bool)
    keep[[4, 17]] = False
    want = _dense_projector(_reference_embedding(F[keep] @ F[keep].T, 3))  # the graph without them
    for Z in (mb.ncut_embedding(F, 3), mb.ncut_embedding_dense(F @ F.T, 3)):
        assert torch.isfinite(Z).all()
        assert Z[~keep].abs().max() < 1e-12
        assert (_dense_projector(Z[keep]) - want).abs().max() < 1e-12
    F.requires_grad_(True)
    labels = torch.arange(25) % 3
    (grad,) = torch.autograd.grad(mb.projector_loss(mb.ncut_embedding(F, 3), labels), F)
    assert torch.isfinite(grad).all()
