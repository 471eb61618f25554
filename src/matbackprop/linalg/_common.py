"""Small numerical helpers shared by the autograd Functions."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["sym", "tie_tolerance", "tied_pairs", "no_autocast"]


def sym(A: torch.Tensor) -> torch.Tensor:
    """Symmetric part ``(A + A^T) / 2`` of ``(..., n, n)``."""
    return torch.add(A, A.transpose(-2, -1)).mul_(0.5)


#: LAPACK splits an exact k-fold eigenvalue by up to about ``n eps max|L|`` and sometimes a little more
#: (a double eigenvalue at n = 5 came out 5 eps apart); the factor keeps such splits inside the tolerance.
TIE_FACTOR = 4


def tie_tolerance(values: torch.Tensor) -> torch.Tensor:
    """Gap below which two spectral values count as tied, shape ``(..., 1, 1)``.

    ``4 n eps max|value|``: a few times the spread that rounding alone gives a repeated eigenvalue (or
    singular value) computed by a backward-stable solver, so gaps at this level carry no information.
    """
    n = max(values.shape[-1], 1)
    eps = torch.finfo(values.dtype).eps
    scale = values.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(values.dtype).tiny)
    return (TIE_FACTOR * n * eps * scale).unsqueeze(-1)


def tied_pairs(values: torch.Tensor) -> torch.Tensor:
    """Boolean ``(..., n, n)``: whether values ``i`` and ``j`` of a sorted ``(..., n)`` spectrum are tied.

    Ties are clusters of consecutive values whose neighbouring gaps are within :func:`tie_tolerance`,
    closed transitively: a k-fold value spread a little wider than the tolerance end to end, with
    every neighbouring gap inside it, is one cluster. ``values`` must be monotone (ascending as from
    ``eigh`` or descending as from ``svd``).
    """
    n = values.shape[-1]
    if n == 0 or values.numel() == 0:
        return torch.ones(values.shape + (n,), dtype=torch.bool, device=values.device)
    split = (values[..., 1:] - values[..., :-1]).abs() > tie_tolerance(values).squeeze(-1)
    first = torch.zeros(values.shape[:-1] + (1,), dtype=torch.long, device=values.device)
    cluster = torch.cat([first, split.long().cumsum(-1)], dim=-1)
    return cluster.unsqueeze(-1) == cluster.unsqueeze(-2)


def no_autocast(X: torch.Tensor) -> contextlib.AbstractContextManager:
    """Switch autocast off for the spectral computation on ``X``'s device."""
    try:
        return torch.autocast(device_type=X.device.type, enabled=False)
    except RuntimeError:  # device types without autocast support
        return contextlib.nullcontext()
