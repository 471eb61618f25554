"""eigh: the paper's EIG backward, exact for eigenspace losses at ties, never NaN."""

import pytest
import torch
from torch.autograd import gradcheck

import matbackprop as mb
from tests.helpers import random_sym, sym, with_spectrum


def _gauge_invariant(A):
    # Squared eigenvector entries do not see the sign of each eigenvector.
    L, Q = mb.eigh(sym(A))
    return L, Q * Q


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 6, 6), (2, 1, 4, 4)])
def test_gradcheck(shape):
    torch.manual_seed(0)
    X = random_sym(shape[-1], *shape[:-2]).requires_grad_(True)
    assert gradcheck(_gauge_invariant, (X,), check_forward_ad=True)


def test_agrees_with_plain_autograd():
    torch.manual_seed(1)
    X = random_sym(8, 4)
    gL, B = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 8, 8, dtype=torch.float64)
    grads = []
    for decompose in (mb.eigh, torch.linalg.eigh):
        A = X.clone().requires_grad_(True)
        L, Q = decompose(A)
        ((L * gL).sum() + (Q * Q * B).sum()).backward()
        grads.append(sym(A.grad))
    assert (grads[0] - grads[1]).abs().max() <= 1e-8 * grads[1].abs().max()


def test_forward_matches_torch():
    X = random_sym(5, 3)
    L, Q = mb.eigh(X)
    L0, _ = torch.linalg.eigh(X)
    assert torch.equal(L, L0)
    assert torch.allclose((Q * L.unsqueeze(-2)) @ Q.mT, X, atol=1e-12)


def test_projector_loss_at_ties_passes_gradcheck():
    # The projector onto the 3-fold lowest eigenspace is smooth here although the eigenvectors are not.
    X, _, _ = with_spectrum([1.0, 1.0, 1.0, 4.0, 4.0])
    X.requires_grad_(True)
    W = random_sym(5)

    def loss(A):
        _, Q = mb.eigh(sym(A))
        P = Q[:, :3] @ Q[:, :3].mT
        return (P * W).sum()

    assert gradcheck(loss, (X,), check_forward_ad=True)


def test_projector_loss_at_ties_value():
    X, L, Q = with_spectrum([1.0, 1.0, 1.0, 4.0, 4.0])
    X.requires_grad_(True)
    W = random_sym(5)
    _, Qc = mb.eigh(X)
    ((Qc[:, :3] @ Qc[:, :3].mT) * W).sum().backward()
    sel = torch.tensor([1, 1, 1, 0, 0], dtype=torch.bool)
    cross = sel.unsqueeze(1) ^ sel.unsqueeze(0)
    gap = L.unsqueeze(1) - L.unsqueeze(0)
    # f = indicator of the lower cluster: f[l_i, l_j] = (f_i - f_j) / (l_i - l_j) across, 0 within.
    one = torch.ones((), dtype=torch.float64)
    F = torch.where(
        cross, (sel.unsqueeze(1).double() - sel.unsqueeze(0).double()) / torch.where(cross, gap, one), 0 * one
    )
    expected = Q @ (F * (Q.mT @ W @ Q)) @ Q.mT
    assert torch.allclose(X.grad, expected, atol=1e-12)


def test_eigenvalue_only_loss_at_ties():
    X, _, _ = with_spectrum([2.0, 2.0, 2.0, 5.0])
    X.requires_grad_(True)
    L_, _ = mb.eigh(X)
    (L_**3).sum().backward()  # tr(X^3): gradient 3 X^2
    assert torch.allclose(X.grad, 3 * X.detach() @ X.detach(), atol=1e-11)


def test_eigenvector_gradient_at_exact_tie_is_finite():
    X = torch.eye(4, dtype=torch.float64, requires_grad=True)
    L, Q = mb.eigh(X)
    (Q.sum() + L.sum()).backward()
    assert torch.isfinite(X.grad).all()
    assert torch.allclose(X.grad, torch.eye(4, dtype=torch.float64), atol=1e-12)  # Q-part vanishes at ties


def test_empty_batch():
    E = torch.empty(0, 4, 4, dtype=torch.float64, requires_grad=True)
    L, Q = mb.eigh(E)
    (L.sum() + Q.sum()).backward()
    assert L.shape == (0, 4) and E.grad.shape == (0, 4, 4)


def test_float32():
    X = random_sym(6, 2).float().requires_grad_(True)
    L, Q = mb.eigh(X)
    (L.sum() + (Q * Q).sum()).backward()
    assert L.dtype == torch.float32 and X.grad.dtype == torch.float32


def test_tied_pairs_clusters_transitively():
    """Neighbouring gaps inside the tolerance chain into one cluster even when the ends are further
    apart than the tolerance; a gap beyond it starts a new cluster (ascending and descending)."""
    from matbackprop.linalg.common import tie_tolerance, tied_pairs

    tol = float(tie_tolerance(torch.tensor([1.0] * 5, dtype=torch.float64)))
    step = 0.6 * tol
    L = torch.tensor([0.5, 1.0, 1.0 + step, 1.0 + 2 * step, 1.0 + 3 * step], dtype=torch.float64)
    assert 3 * step > tol  # the ends of the cluster are further apart than the tolerance
    tied = tied_pairs(L)
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[0, 0] = True
    expected[1:, 1:] = True
    assert torch.equal(tied, expected)
    assert torch.equal(tied_pairs(L.flip(-1)), expected.flip(0, 1))
    assert tied_pairs(torch.empty(0, dtype=torch.float64)).shape == (0, 0)
    assert torch.equal(tied_pairs(torch.ones(3, 1)), torch.ones(3, 1, 1, dtype=torch.bool))
