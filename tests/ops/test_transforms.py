"""The functional layers under torch.func: vmap equals the batched call; jacrev equals jacfwd equals finite
differences (float64), at generic inputs and at tied spectra."""

import pytest
import torch
from torch.func import jacfwd, jacrev, vmap

import matbackprop as mb
from tests.helpers import random_spd, sym

D = torch.float64


def _directional_fd(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


def _check_jacobians(f, x, *, symmetric=False, rtol=1e-6, seed=0):
    """jacrev == jacfwd (to rounding), and both == central finite differences along random directions."""
    jr, jf = jacrev(f)(x), jacfwd(f)(x)
    scale = jr.abs().max().clamp_min(1e-12)
    assert (jr - jf).abs().max() <= 1e-9 * scale, "jacrev and jacfwd differ"
    g = torch.Generator().manual_seed(seed)
    for _ in range(2):
        v = torch.randn(x.shape, dtype=D, generator=g)
        v = sym(v) if symmetric else v
        jv = torch.tensordot(jf, v, dims=v.dim())
        fd = _directional_fd(f, x, v)
        assert (jv - fd).abs().max() <= rtol * (fd.abs().max() + 1), "jacobian differs from finite differences"
    return jr


def _clusters(N=18, d=5, k=3, noise=0.0, seed=0):
    """Non-negative features of k clusters; noise=0 makes the top-k eigenvalues of the normalised affinity
    exactly 1 (a k-fold tie, the converged state of DeepNCuts)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(N) % k
    F = torch.zeros(N, d, dtype=D)
    F[torch.arange(N), labels] = 1.0 + torch.rand(N, dtype=D, generator=g)
    return F + noise * torch.rand(N, d, dtype=D, generator=g), labels


# ------------------------------------------------------------------------------------------------ vmap


def _projector(Z):
    return Z @ torch.linalg.solve(Z.mT @ Z, Z.mT)


def test_vmap_equals_batched_call_ncut_and_loss():
    g = torch.Generator().manual_seed(1)
    F = torch.rand(4, 20, 6, dtype=D, generator=g)
    labels = torch.randint(0, 3, (4, 20), generator=g)
    assert torch.allclose(
        _projector(vmap(lambda f: mb.ncut_embedding(f, 3))(F)), _projector(mb.ncut_embedding(F, 3)), atol=1e-12
    )
    W = F @ F.mT
    assert torch.allclose(
        _projector(vmap(lambda w: mb.ncut_embedding_dense(w, 3))(W)),
        _projector(mb.ncut_embedding_dense(W, 3)),
        atol=1e-12,
    )
    loss = vmap(lambda f, e: mb.projector_loss(mb.ncut_embedding(f, 3), e))(F, labels)
    assert torch.allclose(loss, mb.projector_loss(mb.ncut_embedding(F, 3), labels), atol=1e-12)
    # num_segments: the shape no longer depends on the labels' values
    loss_s = vmap(lambda f, e: mb.projector_loss(mb.ncut_embedding(f, 3), e, num_segments=5))(F, labels)
    assert torch.allclose(loss_s, loss, atol=1e-12)


@pytest.mark.parametrize("route", ["eig", "svd"])
def test_vmap_equals_batched_call_second_order_pooling(route):
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(3, 4, 5, 5, dtype=D, generator=g)
    masks = torch.rand(3, 2, 5, 5, dtype=D, generator=g)
    got = vmap(lambda f, m: mb.second_order_pooling(f, m, route=route))(feats.unsqueeze(1), masks.unsqueeze(1))
    assert torch.allclose(got.squeeze(1), mb.second_order_pooling(feats, masks, route=route), atol=1e-12)


def test_vmap_equals_batched_call_spd_ops():
    X, A, B = random_spd(4, 5), random_spd(4, 5), random_spd(4, 5)
    W, _ = torch.linalg.qr(torch.randn(4, 3, dtype=D))
    T = sym(torch.randn(5, 4, 4, dtype=D))
    cases = [
        (lambda x: mb.bimap(x, W), (X,)),
        (lambda a, b: mb.spd_geodesic(a, b, 0.3), (A, B)),
        (mb.spd_recenter, (X, A, B)),
        (mb.spd_parallel_transport, (T, A, B)),
    ]
    for f, args in cases:
        assert torch.allclose(vmap(f)(*args), f(*args), atol=1e-12)
    stacks = torch.stack([random_spd(3, 6), random_spd(3, 6)])  # two batches of 6 matrices
    got = vmap(lambda s: mb.spd_karcher_mean(s, num_iters=3))(stacks)
    assert torch.allclose(got, mb.spd_karcher_mean(stacks, num_iters=3, dim=1), atol=1e-12)


def test_vmap_checks_name_the_bad_element():
    F = torch.rand(3, 10, 4, dtype=D)
    F[2, 1, 1] = -1.0
    with pytest.raises(ValueError, match=r"non-negative.*batch index \(2,\)"):
        vmap(lambda f: mb.ncut_embedding(f, 2))(F)


# ------------------------------------------------------------------------------------ jacobians


def test_jacobians_ncut_projector_loss_generic():
    F, labels = _clusters(noise=0.3)
    _check_jacobians(lambda f: mb.projector_loss(mb.ncut_embedding(f, 3), labels), F)
    _check_jacobians(lambda f: mb.projector_loss(mb.ncut_embedding_dense(f @ f.T, 3), labels), F)


def test_jacobians_ncut_projector_loss_at_a_k_fold_tie():
    # Top-3 eigenvalues exactly 1: plain autograd through torch.linalg.eigh would divide by zero here.
    F, labels = _clusters(noise=0.0)
    _, ev = mb.ncut_embedding(F, 3, return_eigenvalues=True)
    assert (ev - 1).abs().max() < 1e-12
    wrong = (labels + (torch.arange(len(labels)) % 2)) % 3  # a loss away from its minimum
    # finite differences step into negative entries at the zeros: the data check is off
    jr = _check_jacobians(lambda f: mb.projector_loss(mb.ncut_embedding(f, 3, check=False), wrong), F)
    assert torch.isfinite(jr).all() and jr.abs().max() > 1e-3
    _check_jacobians(lambda f: mb.projector_loss(mb.ncut_embedding_dense(f @ f.T, 3, check=False), wrong), F)


@pytest.mark.parametrize("route", ["eig", "svd"])
@pytest.mark.parametrize("normalization", ["log", "sqrt", "power"])
def test_jacobians_second_order_pooling_generic(route, normalization):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(1, 3, 4, 4, dtype=D, generator=g)
    masks = torch.rand(1, 2, 4, 4, dtype=D, generator=g)
    _check_jacobians(
        lambda f: mb.second_order_pooling(f, masks, route=route, normalization=normalization, output="triu"), feats
    )


@pytest.mark.parametrize("route", ["eig", "svd"])
def test_jacobians_second_order_pooling_at_a_tied_spectrum(route):
    # Rows of the 3 x 16 feature matrix orthogonal with equal norms: the pooled matrix is c I (3-fold tie).
    Q, _ = torch.linalg.qr(torch.randn(16, 3, dtype=D, generator=torch.Generator().manual_seed(4)))
    feats = (4.0 * Q.T).reshape(1, 3, 4, 4)
    pooled = feats.reshape(3, 16) @ feats.reshape(3, 16).T / 16
    assert torch.allclose(pooled, torch.eye(3, dtype=D), atol=1e-12)
    _check_jacobians(lambda f: mb.second_order_pooling(f, route=route, output="triu"), feats)


def test_jacobians_second_order_pooling_newton_schulz():
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(1, 3, 4, 4, dtype=D, generator=g)
    _check_jacobians(
        lambda f: mb.second_order_pooling(f, normalization="sqrt", route="newton_schulz", output="triu"), feats
    )


def test_jacobians_spd_ops():
    A, B = random_spd(3), random_spd(3)
    X = random_spd(3, 4)
    _check_jacobians(lambda x: mb.spd_karcher_mean(sym(x), num_iters=2), X, symmetric=True)
    _check_jacobians(lambda a: mb.spd_geodesic(sym(a), B, 0.3), A, symmetric=True)
    _check_jacobians(lambda a: mb.spd_parallel_transport(X[0], sym(a), B), A, symmetric=True)
    _check_jacobians(lambda a: mb.spd_recenter(X, sym(a), B), A, symmetric=True)
    W, _ = torch.linalg.qr(torch.randn(3, 2, dtype=D))
    _check_jacobians(lambda w: mb.logm(mb.bimap(X, w)), W)


def test_jvp_and_linearize():
    g = torch.Generator().manual_seed(6)
    feats, v = torch.randn(1, 3, 4, 4, dtype=D, generator=g), torch.randn(1, 3, 4, 4, dtype=D, generator=g)
    F, dF = torch.rand(6, 8, dtype=D, generator=g), torch.rand(6, 8, dtype=D, generator=g)  # N < d: LAPACK SVD
    labels = torch.arange(6) % 3
    cases = [
        (lambda f: mb.second_order_pooling(f, route="eig"), feats, v),
        (lambda f: mb.second_order_pooling(f, route="svd"), feats, v),
        # linearize traces with make_fx: the label count must be given (it sets a shape)
        (lambda f: mb.projector_loss(mb.ncut_embedding(f, 3), labels, num_segments=3), F, dF),
    ]
    for f, x, dx in cases:
        _, tangent = torch.func.jvp(f, (x,), (dx,))
        assert torch.allclose(tangent, _directional_fd(f, x, dx), rtol=1e-6, atol=1e-8)
        _, lin = torch.func.linearize(f, x)
        assert torch.allclose(lin(dx), tangent, atol=1e-10)
    with pytest.raises(ValueError, match="num_segments"):
        torch.func.linearize(lambda z: mb.projector_loss(z, labels), torch.rand(6, 3, dtype=D))


def test_hessian_of_the_projector_loss():
    F, labels = _clusters(N=9, d=4, noise=0.3)
    f = lambda x: mb.projector_loss(mb.ncut_embedding(x, 3), labels)  # noqa: E731
    H = torch.func.hessian(f)(F)
    v = torch.randn(F.shape, dtype=D, generator=torch.Generator().manual_seed(7))
    h = 1e-5
    fd = (torch.func.grad(f)(F + h * v) - torch.func.grad(f)(F - h * v)) / (2 * h)
    assert torch.allclose(torch.tensordot(H, v, dims=2), fd, rtol=1e-5, atol=1e-7)
