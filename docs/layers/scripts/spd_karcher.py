"""One-step Karcher mean against the converged one, and how well SPDBatchNorm centres a batch
(docs/layers/spd_layers.md). 64 sample covariances of m Gaussian samples in n=8 dimensions (+1e-3 I),
float64; distances are affine-invariant, ||logm(A^-1/2 B A^-1/2)||_F; the reference mean uses 50 steps.

    .venv/bin/python docs/layers/scripts/spd_karcher.py
"""

import torch

import matbackprop as mb
from matbackprop.nn import SPDBatchNorm


def dist(A, B):
    R = mb.invsqrtm(A)
    return float(mb.logm(R @ B @ R).norm())


g = torch.Generator().manual_seed(0)
for n, m in [(8, 200), (8, 40), (8, 12)]:  # m samples per covariance: fewer samples, wider spread
    A = torch.randn(64, n, m, dtype=torch.float64, generator=g)
    X = A @ A.mT / m + 1e-3 * torch.eye(n, dtype=torch.float64)
    ref = mb.spd_karcher_mean(X, num_iters=50)
    spread = sum(dist(ref, x) for x in X) / len(X)
    d = {k: dist(ref, mb.spd_karcher_mean(X, num_iters=k)) for k in (0, 1, 2, 3)}
    bn = SPDBatchNorm(n).double()
    out_mean = mb.spd_karcher_mean(bn(X).detach(), num_iters=50)
    print(
        f"n={n}, {m:3d} samples/cov: mean spread {spread:.2f}; distance to converged mean after "
        + ", ".join(f"{k} steps {v:.1e}" for k, v in d.items())
        + f"; SPDBatchNorm output mean to I: {dist(torch.eye(n, dtype=torch.float64), out_mean):.1e}"
    )
