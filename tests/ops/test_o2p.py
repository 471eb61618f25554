"""Second-order pooling: gradients, routes, masks and degenerate regions."""

import math

import pytest
import torch
from torch.autograd import gradcheck

import matbackprop as mb
from matbackprop.linalg.funm import LOG, SQRT
from matbackprop.linalg.gram import gram_spectral_apply, weighted_gram_spectral_apply


def _data(B=2, C=3, H=4, W=5, R=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(B, C, H, W, dtype=torch.float64, generator=g)
    masks = torch.rand(B, R, H, W, dtype=torch.float64, generator=g)
    return feats, masks


@pytest.mark.parametrize("normalization", ["log", "sqrt", "power", "none"])
@pytest.mark.parametrize("route", ["eig", "svd"])
@pytest.mark.parametrize("centered", [False, True])
def test_gradcheck(normalization, route, centered):
    feats, masks = _data()
    feats.requires_grad_(True)
    masks.requires_grad_(True)

    def fn(F, M):
        return mb.second_order_pooling(F, M, normalization=normalization, route=route, centered=centered, eps=0.1)

    assert gradcheck(fn, (feats, masks))


def test_gradcheck_newton_schulz_and_whole_image():
    feats, _ = _data()
    feats.requires_grad_(True)
    assert gradcheck(
        lambda F: mb.second_order_pooling(F, normalization="sqrt", route="newton_schulz", eps=0.1), (feats,)
    )
    assert gradcheck(lambda F: mb.second_order_pooling(F, output="triu", eps=0.1), (feats,))


@pytest.mark.parametrize("normalization", ["log", "sqrt", "power"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 8, 2, 2)])  # more and fewer pixels than channels
def test_eig_route_equals_svd_route(normalization, shape):
    feats, masks = _data(*shape)
    feats.requires_grad_(True)
    G = torch.randn(shape[0], 2, shape[1], shape[1], dtype=torch.float64)
    outs, grads = [], []
    for route in ("eig", "svd"):
        Y = mb.second_order_pooling(feats, masks, normalization=normalization, route=route, eps=1e-2)
        (g,) = torch.autograd.grad((Y * G).sum(), feats)
        outs.append(Y)
        grads.append(g)
    assert torch.allclose(outs[0], outs[1], atol=1e-10)
    assert torch.allclose(grads[0], grads[1], atol=1e-9)


@pytest.mark.parametrize("normalization", ["log", "sqrt", "power"])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 8, 2, 2)])  # more and fewer pixels than channels
def test_svd_route_mask_gradient_at_zero_weights_equals_the_eig_route(normalization, shape):
    # binary masks: d sqrt(w) at w = 0 would give 0/0; the pooled matrix is linear in w, so the
    # gradient is finite, and both routes compute the same function
    feats, soft = _data(*shape)
    masks = (soft > 0.4).double()
    masks[..., 0, 0] = 1.0
    feats.requires_grad_(True)
    masks.requires_grad_(True)
    G = torch.randn(shape[0], 2, shape[1], shape[1], dtype=torch.float64)
    grads = [
        torch.autograd.grad(
            (mb.second_order_pooling(feats, masks, normalization=normalization, route=r, eps=1e-2) * G).sum(),
            (feats, masks),
        )
        for r in ("eig", "svd")
    ]
    assert bool((masks == 0).any())
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("spec,ridge", [(LOG, 0.1), (SQRT, 0.05)])
@pytest.mark.parametrize("shape", [(3, 5), (6, 4)])  # pixels >= channels, and a complement of span(V)
def test_weighted_gram_spectral_apply_gradcheck(shape, spec, ridge):
    c, p = shape
    g = torch.Generator().manual_seed(3)
    X = torch.randn(2, c, p, dtype=torch.float64, generator=g).requires_grad_(True)
    w = (0.1 + torch.rand(2, 1, p, dtype=torch.float64, generator=g)).requires_grad_(True)
    assert gradcheck(lambda X, w: weighted_gram_spectral_apply(X, w, spec, ridge), (X, w), check_forward_ad=True)


def test_weighted_gram_spectral_apply_at_tied_singular_values_and_zero_weights():
    # X diag(w) X^T = diag(2, 2, 1) with a pixel of weight zero: the gradient is the exact
    # Daleckii-Krein one, x_j^T D x_j for w and 2 D X diag(w) for X (D = Df(C + r I)[sym(G)])
    X = torch.tensor([[1.0, 0.0, 0.0, 0.7], [0.0, 1.0, 0.0, -0.2], [0.0, 0.0, 1.0, 0.4]], dtype=torch.float64)
    w = torch.tensor([[2.0, 2.0, 1.0, 0.0]], dtype=torch.float64)
    X.requires_grad_(True)
    w.requires_grad_(True)
    G = torch.randn(3, 3, dtype=torch.float64)
    gX, gw = torch.autograd.grad((weighted_gram_spectral_apply(X, w, LOG, 0.0) * G).sum(), (X, w))
    lam = torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    F = torch.where(
        lam[:, None] == lam[None, :],
        1.0 / lam[:, None],
        (lam[:, None].log() - lam[None, :].log()) / (lam[:, None] - lam[None, :] + (lam[:, None] == lam[None, :])),
    )
    D = F * (0.5 * (G + G.T))  # C is diagonal: its eigenbasis is the identity
    torch.testing.assert_close(gw, ((X.detach() * (D @ X.detach())).sum(0, keepdim=True)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gX, 2.0 * (D @ X.detach()) * w.detach(), rtol=1e-12, atol=1e-12)
    assert gw[0, 3] != 0  # the zero-weight pixel still has its gradient


def test_weighted_gram_spectral_apply_rejects_bad_weights():
    X = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        weighted_gram_spectral_apply(X, torch.tensor([[1.0, -0.5, 1.0, 1.0]], dtype=torch.float64), LOG, 0.1)
    with pytest.raises(ValueError, match=r"weights must have shape \(\.\.\., 1, 4\)"):
        weighted_gram_spectral_apply(X, torch.ones(4, dtype=torch.float64), LOG, 0.1)
    with pytest.raises(ValueError, match="needs a positive ridge"):
        weighted_gram_spectral_apply(X, torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64), LOG, 0.0)


def test_pooled_matrix_definition():
    feats, masks = _data(B=1, C=3, H=3, W=3, R=1)
    Y = mb.second_order_pooling(feats, masks, normalization="none", eps=0.5)
    F = feats[0].reshape(3, -1)
    w = masks[0, 0].reshape(-1) / masks[0, 0].sum()
    expected = (F * w) @ F.T + 0.5 * torch.eye(3, dtype=torch.float64)
    assert torch.allclose(Y[0, 0], expected, atol=1e-14)
    Yc = mb.second_order_pooling(feats, masks, normalization="none", eps=0.5, centered=True)
    mu = F @ w
    assert torch.allclose(Yc[0, 0], expected - torch.outer(mu, mu), atol=1e-14)
    L = mb.second_order_pooling(feats, masks, normalization="log", eps=0.5)
    assert torch.allclose(L[0, 0], mb.logm(expected), atol=1e-12)


def test_triu_vectorize_preserves_inner_products():
    A, B = torch.randn(2, 4, 4, dtype=torch.float64)
    A, B = A + A.T, B + B.T
    a, b = mb.triu_vectorize(A), mb.triu_vectorize(B)
    assert a.shape == (10,)
    assert torch.allclose(a @ b, (A * B).sum())


def test_single_pixel_mask_and_constant_features():
    feats = torch.ones(1, 4, 3, 3, dtype=torch.float64) * 2.0
    masks = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    masks[0, 0, 1, 2] = 1.0
    feats.requires_grad_(True)
    for route in ("eig", "svd"):
        Y = mb.second_order_pooling(feats, masks, eps=1e-3, route=route)
        # Rank one 4 ff^T + eps I: eigenvalue 16 + eps along f = (1,1,1,1)/2, eps elsewhere.
        u = torch.full((4,), 0.5, dtype=torch.float64)
        P = torch.outer(u, u)
        expected = math.log(16 + 1e-3) * P + math.log(1e-3) * (torch.eye(4, dtype=torch.float64) - P)
        assert torch.allclose(Y[0, 0], expected, atol=1e-10)
        (g,) = torch.autograd.grad(Y.sum(), feats)
        assert torch.isfinite(g).all()
    assert gradcheck(lambda F: mb.second_order_pooling(F, masks, eps=1e-2, route="svd"), (feats,))
    assert gradcheck(lambda F: mb.second_order_pooling(F, masks, eps=1e-2, route="eig"), (feats,))


def test_rank_deficient_region_gradients_agree_across_routes():
    feats = torch.randn(1, 6, 2, 2, dtype=torch.float64)  # 4 pixels, 6 channels: rank <= 4
    feats.requires_grad_(True)
    G = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    grads = [
        torch.autograd.grad((mb.second_order_pooling(feats, route=r, eps=1e-3) * G).sum(), feats)[0]
        for r in ("eig", "svd")
    ]
    assert torch.allclose(grads[0], grads[1], rtol=1e-7, atol=1e-9)


def test_float64_spectral_step_inside_float32():
    feats, masks = _data()
    Y = mb.second_order_pooling(feats.float(), masks.float(), spectral_dtype=torch.float64)
    assert Y.dtype == torch.float32
    assert torch.allclose(Y.double(), mb.second_order_pooling(feats, masks), atol=1e-5)


def test_gram_spectral_apply_at_tied_singular_values():
    # A with singular values (2, 2, 1): exact at ties, unlike the 1/(s_i^2 - s_j^2) couplings.
    Q1, _ = torch.linalg.qr(torch.randn(5, 3, dtype=torch.float64))
    Q2, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    A = (Q1 * torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)) @ Q2.T
    A.requires_grad_(True)
    assert gradcheck(lambda A: gram_spectral_apply(A, LOG, 1e-3), (A,))
    assert gradcheck(lambda A: gram_spectral_apply(A, SQRT, 0.0), (A,))


def test_bad_inputs_raise():
    feats, masks = _data()
    with pytest.raises(ValueError, match="region 1 of batch element 0 has an empty mask"):
        m = masks.clone()
        m[0, 1] = 0
        mb.second_order_pooling(feats, m)
    with pytest.raises(ValueError, match=r"features must be \(B, C, H, W\)"):
        mb.second_order_pooling(feats[0])
    with pytest.raises(ValueError, match="do not match"):
        mb.second_order_pooling(feats, masks[..., :3])
    with pytest.raises(ValueError, match="non-negative"):
        mb.second_order_pooling(feats, -masks)
    with pytest.raises(ValueError, match="normalization"):
        mb.second_order_pooling(feats, normalization="l2")
    with pytest.raises(ValueError, match="route"):
        mb.second_order_pooling(feats, route="qr")
    with pytest.raises(ValueError, match="newton_schulz"):
        mb.second_order_pooling(feats, route="newton_schulz", normalization="log")
    bad = feats.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        mb.second_order_pooling(bad)
