"""Random test matrices with prescribed spectra."""

from __future__ import annotations

import torch


def rotation(n: int, *batch: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    """Haar-distributed orthogonal matrices (..., n, n)."""
    A = torch.randn(*batch, n, n, dtype=dtype, generator=generator)
    Q, R = torch.linalg.qr(A)
    return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)


def with_spectrum(eigenvalues, *batch: int, dtype=torch.float64, generator=None):
    """(X, L, Q): X = Q diag(L) Q^T with the given eigenvalues under a random rotation."""
    L = torch.as_tensor(eigenvalues, dtype=torch.float64)
    Q = rotation(L.shape[-1], *batch, dtype=torch.float64, generator=generator)
    X = (Q * L.unsqueeze(-2)) @ Q.mT
    X = 0.5 * (X + X.mT)
    return X.to(dtype), L.to(dtype), Q.to(dtype)


def random_spd(n: int, *batch: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    A = torch.randn(*batch, n, n, dtype=torch.float64, generator=generator)
    return (A @ A.mT / n + 0.5 * torch.eye(n, dtype=torch.float64)).to(dtype)


def random_sym(n: int, *batch: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    A = torch.randn(*batch, n, n, dtype=torch.float64, generator=generator)
    return (0.5 * (A + A.mT)).to(dtype)


def sym(A: torch.Tensor) -> torch.Tensor:
    return 0.5 * (A + A.mT)


def daleckii_krein(f, df, L: torch.Tensor, Q: torch.Tensor, G: torch.Tensor, tie: float = 0.0) -> torch.Tensor:
    """Reference gradient of <G, f(X)> at X = Q diag(L) Q^T from exact eigenvalues, entry by entry."""
    n = L.shape[-1]
    F = torch.empty(L.shape + (n,), dtype=L.dtype)
    Lf = L.reshape(-1, n)
    Ff = F.reshape(-1, n, n)
    for b in range(Lf.shape[0]):
        for i in range(n):
            for j in range(n):
                a, c = float(Lf[b, i]), float(Lf[b, j])
                Ff[b, i, j] = (
                    float(df(torch.tensor(a, dtype=torch.float64)))
                    if abs(a - c) <= tie
                    else (
                        float(f(torch.tensor(a, dtype=torch.float64)) - f(torch.tensor(c, dtype=torch.float64)))
                        / (a - c)
                    )
                )
    return Q @ (F * (Q.mT @ sym(G) @ Q)) @ Q.mT
