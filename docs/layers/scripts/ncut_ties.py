"""Ties at (near) perfect segmentations, float64 (docs/layers/normalized_cuts.md).

N=24 nodes in 3 groups, d=5 features, one non-zero feature per node (the group's), k=3, eps=0.
(a) perfect features: top-3 eigenvalues, loss and gradient;
(b) features + 1e-9 noise against a wrong labelling (4 nodes moved): the low-rank gradient against the
    dense-route gradient and against a central finite difference along a random direction;
(c) 4 separated groups with k=3: the top-k subspace is not determined (tie across the boundary).

    .venv/bin/python docs/layers/scripts/ncut_ties.py
"""

import torch

import matbackprop as mb

g = torch.Generator().manual_seed(5)
N, k, d = 24, 3, 5
labels = torch.arange(N) % k
F = torch.zeros(N, d, dtype=torch.float64)
F[torch.arange(N), labels] = 1.0 + torch.rand(N, dtype=torch.float64, generator=g)

X = F.clone().requires_grad_(True)
Z, ev = mb.ncut_embedding(X, k, eps=0.0, return_eigenvalues=True)
J = mb.projector_loss(Z, labels)
(grad,) = torch.autograd.grad(J, X)
print(f"(a) eigenvalues {ev.tolist()}, J {J.item():.1e}, max|grad| {grad.abs().max().item():.1e}")

Fn = F + 1e-9 * torch.rand(N, d, dtype=torch.float64, generator=g)
wrong = labels.clone()
wrong[:4] = (wrong[:4] + 1) % k


def low(A):
    return mb.projector_loss(mb.ncut_embedding(A, k, eps=0.0, check=False), wrong)


def dense(A):
    return mb.projector_loss(mb.ncut_embedding_dense(A @ A.T, k, eps=0.0, check=False), wrong)


X = Fn.clone().requires_grad_(True)
_, ev = mb.ncut_embedding(X, k, eps=0.0, return_eigenvalues=True)
g_low = torch.autograd.grad(low(X), X)[0]
g_dense = torch.autograd.grad(dense(X), X)[0]
V = torch.randn(N, d, dtype=torch.float64, generator=g)
h = 1e-6
fd = (low(Fn + h * V) - low(Fn - h * V)) / (2 * h)
print(
    f"(b) max|1 - eigenvalue| {(1 - ev).abs().max().item():.1e}; "
    f"|g_low - g_dense| / |g_dense| {((g_low - g_dense).norm() / g_dense.norm()).item():.1e}; "
    f"directional derivative {(g_low * V).sum().item():.8f} vs finite difference {fd.item():.8f}"
)

labels4 = torch.arange(N) % 4
F4 = torch.zeros(N, d, dtype=torch.float64)
F4[torch.arange(N), labels4] = 1.0
X = F4.clone().requires_grad_(True)
Z, ev = mb.ncut_embedding(X, 3, eps=0.0, return_eigenvalues=True)
J = mb.projector_loss(Z, labels4)
(grad,) = torch.autograd.grad(J, X)
print(f"(c) 4 groups, k=3: eigenvalues {ev.tolist()}, J {J.item():.3f}, grad finite {bool(torch.isfinite(grad).all())}")
