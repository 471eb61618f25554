from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

from ..linalg.funm import clamp_eigs, expm, logm
from ..linalg._common import sym
from ..ops.o2p import triu_vectorize
from ..ops.spd import bimap, spd_geodesic, spd_karcher_mean, spd_transport


def _work_dtype(X: torch.Tensor) -> torch.dtype:
    """float32 for half-precision input (autocast), else the input's dtype."""
    return torch.float32 if X.dtype in (torch.float16, torch.bfloat16) else X.dtype


class BiMap(nn.Module):
    """``W^T X W`` with ``W (in_size, out_size)`` kept orthonormal (Stiefel) by an orthogonal
    parametrisation; maps SPD ``(..., in_size, in_size)`` to SPD ``(..., out_size, out_size)``."""

    def __init__(self, in_size: int, out_size: int) -> None:
        super().__init__()
        if out_size > in_size:
            raise ValueError(f"BiMap: out_size ({out_size}) must not exceed in_size ({in_size})")
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(in_size, out_size)))
        parametrizations.orthogonal(self, "weight")

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        # Half-precision X (autocast) is upcast inside bimap; the weight is never rounded below float32.
        return bimap(X, self.weight.to(_work_dtype(X)))


class ReEig(nn.Module):
    """Eigenvalue floor ``Q max(L, floor) Q^T`` (rectified eigenvalues)."""

    def __init__(self, floor: float = 1e-4) -> None:
        super().__init__()
        self.floor = floor

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return clamp_eigs(X, self.floor)

    def extra_repr(self) -> str:
        return f"floor={self.floor}"


class LogEig(nn.Module):
    """Matrix logarithm to the tangent space; ``output="triu"`` vectorises the upper triangle."""

    def __init__(self, output: str = "matrix") -> None:
        super().__init__()
        if output not in ("matrix", "triu"):
            raise ValueError(f"LogEig: output must be 'matrix' or 'triu', got {output!r}")
        self.output = output

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = logm(X)
        return triu_vectorize(Y) if self.output == "triu" else Y


class SPDBatchNorm(nn.Module):
    """Riemannian batch normalisation of SPD matrices ``(N, n, n)`` (Brooks et al., NeurIPS 2019).

    Training: the batch's Karcher mean ``G`` (``karcher_iters`` steps) is transported to the learnt SPD
    bias ``B = expm(sym(P))``: ``B^(1/2) G^(-1/2) X G^(-1/2) B^(1/2)``; the running mean moves along the
    geodesic towards ``G`` by ``momentum``. Evaluation uses the running mean.
    """

    def __init__(self, size: int, momentum: float = 0.1, karcher_iters: int = 1) -> None:
        super().__init__()
        self.momentum = momentum
        self.karcher_iters = karcher_iters
        self.bias_log = nn.Parameter(torch.zeros(size, size))
        self.register_buffer("running_mean", torch.eye(size))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if X.dim() != 3:
            raise ValueError(f"SPDBatchNorm: expected a batch (N, n, n), got shape {tuple(X.shape)}")
        # Half-precision input (autocast) is normalised in float32: the running mean and the bias would
        # otherwise be rounded to bfloat16 and their gradients with them.
        X = X.to(_work_dtype(X))
        if self.training:
            mean = spd_karcher_mean(X, self.karcher_iters)
            with torch.no_grad():
                running = self.running_mean.to(X.dtype)
                self.running_mean.copy_(spd_geodesic(running, mean.detach(), self.momentum))
        else:
            mean = self.running_mean.to(X.dtype)
        bias = expm(sym(self.bias_log.to(X.dtype)))
        return spd_transport(X, mean, bias)
