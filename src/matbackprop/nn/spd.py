"""SPD-network layers (SPDNet, Huang & Van Gool 2017; Riemannian batch normalisation, Brooks et al. 2019).

Every layer takes ``check`` with the meaning it has in the functional API: ``True`` validates the
input of the spectral steps, ``False`` skips those checks (for ``torch.compile`` without guards).
Half-precision input (autocast) is computed in float32 (:func:`matbackprop.linalg.dtypes.spectral_dtype`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

from ..linalg.common import sym
from ..linalg.dtypes import spectral_dtype
from ..linalg.funm import clamp_eigs, expm, logm
from ..ops.o2p import triu_vectorize
from ..ops.spd import bimap, spd_geodesic, spd_karcher_mean, spd_recenter

__all__ = ["BiMap", "ReEig", "LogEig", "SPDBatchNorm"]


class BiMap(nn.Module):
    """``W^T X W`` with ``W (in_size, out_size)`` semi-orthogonal: maps ``(..., in_size, in_size)`` to
    ``(..., out_size, out_size)``, in either direction.

    The orthogonal parametrisation keeps ``W`` on the Stiefel manifold of its larger side: orthonormal
    columns (``W^T W = I``) when ``out_size <= in_size``, so SPD maps to SPD; orthonormal rows
    (``W W^T = I``) when ``out_size > in_size``, so ``X`` is embedded isometrically into a larger, rank
    ``in_size``, positive semi-definite matrix (follow with :class:`ReEig` for a definite one).

    Example:
        >>> import torch
        >>> from matbackprop.nn import BiMap
        >>> layer = BiMap(5, 3)
        >>> W = layer.weight                                           # (5, 3), orthonormal columns
        >>> torch.allclose(W.T @ W, torch.eye(3), atol=1e-6)
        True
        >>> A = torch.randn(4, 5, 5)
        >>> layer(A @ A.mT + torch.eye(5)).shape
        torch.Size([4, 3, 3])
    """

    def __init__(self, in_size: int, out_size: int, *, check: bool = True) -> None:
        super().__init__()
        if in_size < 1 or out_size < 1:
            raise ValueError(f"BiMap: sizes must be positive, got in_size={in_size}, out_size={out_size}")
        self.check = check
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(in_size, out_size)))
        parametrizations.orthogonal(self, "weight")

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        # Half-precision X (autocast) is upcast inside bimap; the weight is never rounded below float32.
        return bimap(X, self.weight.to(spectral_dtype(X)), check=self.check)


class ReEig(nn.Module):
    """Eigenvalue floor ``Q max(L, floor) Q^T`` (rectified eigenvalues).

    Example:
        >>> import torch
        >>> from matbackprop.nn import ReEig
        >>> X = torch.diag(torch.tensor([2.0, 1e-6], dtype=torch.float64))
        >>> torch.linalg.eigvalsh(ReEig(floor=1e-3)(X)).tolist()
        [0.001, 2.0]
    """

    def __init__(self, floor: float = 1e-4, *, check: bool = True) -> None:
        super().__init__()
        self.floor = floor
        self.check = check

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return clamp_eigs(X, self.floor, check=self.check)

    def extra_repr(self) -> str:
        return f"floor={self.floor}"


class LogEig(nn.Module):
    """Matrix logarithm to the tangent space; ``output="triu"`` vectorises the upper triangle.

    Example:
        >>> import torch
        >>> from matbackprop.nn import LogEig
        >>> X = torch.diag(torch.tensor([1.0, 2.0, 4.0]))
        >>> LogEig()(X).diagonal()                                     # the matrix logarithm
        tensor([0.0000, 0.6931, 1.3863])
        >>> LogEig("triu")(X).shape                                    # its upper triangle, n (n + 1) / 2
        torch.Size([6])
    """

    def __init__(self, output: str = "matrix", *, check: bool = True) -> None:
        super().__init__()
        if output not in ("matrix", "triu"):
            raise ValueError(f"LogEig: output must be 'matrix' or 'triu', got {output!r}")
        self.output = output
        self.check = check

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = logm(X, check=self.check)
        return triu_vectorize(Y) if self.output == "triu" else Y


class SPDBatchNorm(nn.Module):
    """Riemannian batch normalisation of SPD matrices ``(..., n, n)`` (Brooks et al., NeurIPS 2019).

    Every leading dimension is a batch dimension: ``(N, n, n)``, ``(N, C, n, n)``, ... are normalised
    with one mean over all their matrices. Training: the Karcher mean ``G`` of the batch
    (``karcher_iters`` steps) is carried to the learnt SPD bias ``B = expm(sym(P))`` through the
    identity, ``B^(1/2) G^(-1/2) X G^(-1/2) B^(1/2)`` (:func:`~matbackprop.spd_recenter`); the running
    mean moves along the geodesic towards ``G`` by ``momentum``. Evaluation uses the running mean.

    Example:
        >>> import torch
        >>> from matbackprop.nn import SPDBatchNorm
        >>> bn = SPDBatchNorm(3)
        >>> A = torch.randn(8, 3, 3)
        >>> X = A @ A.mT + torch.eye(3)                                # (N, n, n) SPD
        >>> bn(X).shape
        torch.Size([8, 3, 3])
        >>> _ = bn.eval(); bn(X).shape                                  # evaluation uses the running mean
        torch.Size([8, 3, 3])
    """

    def __init__(self, size: int, momentum: float = 0.1, karcher_iters: int = 1, *, check: bool = True) -> None:
        super().__init__()
        self.momentum = momentum
        self.karcher_iters = karcher_iters
        self.check = check
        self.bias_log = nn.Parameter(torch.zeros(size, size))
        self.running_mean: torch.Tensor
        self.register_buffer("running_mean", torch.eye(size))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        n = self.bias_log.shape[-1]
        if X.dim() < 3 or X.shape[-2:] != (n, n):
            raise ValueError(f"SPDBatchNorm: expected a batch (..., {n}, {n}), got shape {tuple(X.shape)}")
        # Half-precision input (autocast) is normalised in float32: the running mean and the bias would
        # otherwise be rounded to bfloat16 and their gradients with them.
        X = X.to(spectral_dtype(X))
        if self.training:
            mean = spd_karcher_mean(X.reshape(-1, n, n), self.karcher_iters, check=self.check)
            with torch.no_grad():
                running = self.running_mean.to(X.dtype)
                self.running_mean.copy_(spd_geodesic(running, mean.detach(), self.momentum, check=self.check))
        else:
            mean = self.running_mean.to(X.dtype)
        bias = expm(sym(self.bias_log.to(X.dtype)), check=self.check)
        return spd_recenter(X, mean, bias, check=self.check)

    def extra_repr(self) -> str:
        return f"size={self.bias_log.shape[-1]}, momentum={self.momentum}, karcher_iters={self.karcher_iters}"
