"""Small numerical helpers shared by the autograd Functions."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["sym", "tie_tolerance", "no_autocast"]


def sym(A: torch.Tensor) -> torch.Tensor:
    """Symmetric part ``(A + A^T) / 2`` of ``(..., n, n)``."""
    return torch.add(A, A.transpose(-2, -1)).mul_(0.5)


def tie_tolerance(values: torch.Tensor) -> torch.Tensor:
    """Gap below which two spectral values count as tied, shape ``(..., 1, 1)``.

    ``n * eps * max|value|``: the spread that rounding alone gives a repeated eigenvalue (or singular
    value) computed by a backward-stable solver, so gaps at this level carry no information.
    """
    n = max(values.shape[-1], 1)
    eps = torch.finfo(values.dtype).eps
    scale = values.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(values.dtype).tiny)
    return (n * eps * scale).unsqueeze(-1)


def no_autocast(X: torch.Tensor) -> contextlib.AbstractContextManager:
    """Switch autocast off for the spectral computation on ``X``'s device."""
    try:
        return torch.autocast(device_type=X.device.type, enabled=False)
    except RuntimeError:  # device types without autocast support
        return contextlib.nullcontext()
