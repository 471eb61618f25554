"""torch.compile(fullgraph=True) and torch.export on the math core (few, small cases: compiling is slow)."""

from __future__ import annotations

import io

import pytest
import torch

import matbackprop as mb

DT = torch.float64


def _spd(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    A = torch.randn(batch, n, n, dtype=DT, generator=torch.Generator().manual_seed(seed))
    return A @ A.mT + torch.eye(n, dtype=DT)


def _pipeline(X: torch.Tensor, check: bool) -> torch.Tensor:
    """logm, powm, eigh and svd in one graph (a projector of eigh and the singular values of svd)."""
    L, Q = mb.eigh(X, check=check)
    _, S, _ = mb.svd(X[..., :, :3], check=check)
    P = Q[..., :, -2:] @ Q[..., :, -2:].mT
    return mb.logm(X, check=check).sum() + mb.powm(X, 0.3, check=check).sum() + P.sum() + S.sum() + L.sum()


@pytest.mark.slow
@pytest.mark.parametrize("check", [False, True])
def test_compile_fullgraph_forward_backward_equals_eager(check):
    """No graph break (fullgraph=True raises on one), with or without the checks; values and gradients
    equal eager to rounding."""
    torch._dynamo.reset()
    X = _spd(3, 5).requires_grad_(True)
    compiled = torch.compile(lambda A: _pipeline(A, check), fullgraph=True)
    y = compiled(X)
    (g,) = torch.autograd.grad(y, X)
    y_eager = _pipeline(X, check)
    (g_eager,) = torch.autograd.grad(y_eager, X)
    assert torch.allclose(y, y_eager, atol=1e-12, rtol=1e-12)
    assert torch.allclose(g, g_eager, atol=1e-12, rtol=1e-12)
    if check:
        bad = X.detach().clone()
        bad[1, 0, 2] += 1.0
        with pytest.raises(RuntimeError, match="logm|eigh"):
            compiled(bad)


class _LogEuclidean(torch.nn.Module):
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return mb.logm(X) @ mb.sqrtm(X)


def test_export_round_trip_equals_eager():
    """torch.export with the checks on, saved and loaded: the program gives the eager outputs, and the
    checks survive as assertions."""
    X = _spd(2, 4)
    program = torch.export.export(_LogEuclidean(), (X,))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    X2 = _spd(2, 4, seed=1)
    for A in (X, X2):
        assert torch.allclose(loaded.module()(A), _LogEuclidean()(A), atol=1e-13, rtol=0)
    bad = X2.clone()
    bad[1, 0, 1] += 1.0
    with pytest.raises(RuntimeError, match="logm: input has NaN or infinite entries or is not symmetric"):
        loaded.module()(bad)
