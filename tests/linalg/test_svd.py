"""svd: the paper's SVD backward for tall, wide and full matrices; ties and rank deficiency."""

import pytest
import torch
from torch.autograd import gradcheck

import matbackprop as mb
from tests.helpers import rotation


def _gauge_invariant(full_matrices):
    def loss(A):
        U, S, Vh = mb.svd(A, full_matrices=full_matrices)
        k = S.shape[-1]
        U1, V1 = U[..., :k], Vh[..., :k, :].mT
        outputs = [S, U1 * U1, V1 * V1, U1 * V1.sum(-2, keepdim=True)]
        if full_matrices:
            U2, V2 = U[..., k:], Vh[..., k:, :].mT
            outputs += [U2 @ U2.mT, V2 @ V2.mT]
        return tuple(outputs)

    return loss


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4), (2, 6, 4), (2, 3, 7), (1, 1)])
@pytest.mark.parametrize("full_matrices", [False, True])
def test_gradcheck(shape, full_matrices):
    torch.manual_seed(0)
    X = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert gradcheck(_gauge_invariant(full_matrices), (X,), check_forward_ad=True)


@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (3, 5, 5)])
def test_agrees_with_plain_autograd(shape):
    torch.manual_seed(1)
    X = torch.randn(*shape, dtype=torch.float64)
    k = min(shape[-2:])
    gS = torch.randn(*shape[:-2], k, dtype=torch.float64)
    BU = torch.randn(*shape[:-1], k, dtype=torch.float64)
    BV = torch.randn(*shape[:-2], k, shape[-1], dtype=torch.float64)
    grads = []
    for decompose in (mb.svd, torch.linalg.svd):
        A = X.clone().requires_grad_(True)
        U, S, Vh = decompose(A, full_matrices=False)
        ((S * gS).sum() + (U * U * BU).sum() + (Vh * Vh * BV).sum()).backward()
        grads.append(A.grad)
    assert (grads[0] - grads[1]).abs().max() <= 1e-8 * grads[1].abs().max()


def _with_singular_values(s, m, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    U, V = rotation(m, generator=g), rotation(n, generator=g)
    S = torch.zeros(m, n, dtype=torch.float64)
    S[range(len(s)), range(len(s))] = torch.tensor(s, dtype=torch.float64)
    return U @ S @ V.mT


@pytest.mark.parametrize("m,n", [(6, 4), (4, 6)])
def test_tied_and_rank_deficient_singular_values(m, n):
    X = _with_singular_values([3.0, 3.0, 1.0, 0.0], m, n).requires_grad_(True)
    U, S, Vh = mb.svd(X)
    # sum s_i^2 = ||X||_F^2: gradient 2X, through S alone.
    (S**2).sum().backward(retain_graph=True)
    assert torch.allclose(X.grad, 2 * X.detach(), atol=1e-12)
    X.grad = None
    # Through U and V as well: the projectors onto the tied top pair and onto the range.
    ((U[:, :2] @ U[:, :2].mT).sum() + (Vh[:3].mT @ Vh[:3]).sum()).backward()
    assert torch.isfinite(X.grad).all()


@pytest.mark.parametrize("m,n", [(6, 4), (4, 6)])
def test_projectors_at_ties_and_rank_deficiency_pass_gradcheck(m, n):
    X = _with_singular_values([3.0, 3.0, 1.0, 0.0], m, n, seed=1).requires_grad_(True)
    W1, W2 = torch.randn(m, m, dtype=torch.float64), torch.randn(n, n, dtype=torch.float64)

    def loss(A):
        U, S, Vh = mb.svd(A)
        top = U[:, :2] @ U[:, :2].mT  # tied pair, separated from the rest
        rng = Vh[:3].mT @ Vh[:3]  # row space of the rank-3 matrix
        return (top * W1).sum() + (rng * W2).sum() + S[:3].sum()

    assert gradcheck(loss, (X,), check_forward_ad=True)


def test_zero_matrix_gives_finite_gradients():
    X = torch.zeros(5, 3, dtype=torch.float64, requires_grad=True)
    U, S, Vh = mb.svd(X)
    (U.sum() + S.sum() + Vh.sum()).backward()
    assert torch.isfinite(X.grad).all()


def test_empty_batch_and_float32():
    E = torch.empty(0, 4, 3, requires_grad=True)
    U, S, Vh = mb.svd(E)
    (U.sum() + S.sum() + Vh.sum()).backward()
    assert E.grad.shape == (0, 4, 3) and E.grad.dtype == torch.float32


def test_polar_factor_at_tied_singular_values():
    # U Vh is smooth although U and V are not unique at s = (2, 2, 1): only the joint rotation is free.
    X = _with_singular_values([2.0, 2.0, 1.0], 5, 3, seed=2).requires_grad_(True)
    W = torch.randn(5, 3, dtype=torch.float64)

    def polar(A):
        U, _, Vh = mb.svd(A)
        return ((U @ Vh) * W).sum()

    assert gradcheck(polar, (X,), check_forward_ad=True)


def test_tiny_distinct_singular_values_keep_their_couplings():
    # s = (1, 2e-8, 1e-8): far apart in ratio though tiny; matches plain autograd.
    X = _with_singular_values([1.0, 2e-8, 1e-8], 6, 3, seed=3)
    B = torch.randn(6, 3, dtype=torch.float64)
    grads = []
    for decompose in (mb.svd, torch.linalg.svd):
        A = X.clone().requires_grad_(True)
        U, _, Vh = decompose(A, full_matrices=False)
        ((U * Vh.mT.sum(-2, keepdim=True)) * B).sum().backward()
        grads.append(A.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-6)
